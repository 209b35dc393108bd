//! Converting between [`Notification`]s and DynamoDB items, pure.
//!
//! A payload is stored inline when the item fits DynamoDB's 400 KB limit, compressed with zstd when it is large
//! and that helps, and in S3 when it still does not fit: the item then keeps a pointer, the size and the
//! SHA-256. When even the record without its payload is too large (giant keys or headers), the key and headers
//! go to S3 too. Nothing is ever dropped.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::model::{Data, Extracted, Header, Notification, PayloadFormat, Summary};
use crate::table::{self, INDEXES};

/// An item as the SDK takes it.
pub type Item = HashMap<String, AttributeValue>;

/// The version of the item layout, stored on every item.
pub const ITEM_VERSION: i64 = 1;

/// How items are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Payloads at least this large are compressed when that makes them smaller.
    pub compress_min_bytes: usize,
    /// Items are kept below this size; what would exceed it goes to S3. DynamoDB allows 409,600 bytes.
    pub max_item_bytes: usize,
    /// The S3 bucket for payloads too large for an item, if any.
    pub bucket: Option<String>,
    /// The key prefix of payload objects.
    pub prefix: String,
    /// Items expire this many seconds after they were received (TTL), if set.
    pub retention_seconds: Option<u64>,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            compress_min_bytes: 8 * 1024,
            max_item_bytes: 350_000,
            bucket: None,
            prefix: "payloads/".into(),
            retention_seconds: None,
        }
    }
}

/// An object to put in S3 before the item that points at it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobObject {
    pub key: String,
    pub bytes: Vec<u8>,
    pub sha256: String,
}

/// An item ready to write, with the S3 objects it needs first.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedItem {
    pub id: String,
    pub item: Item,
    pub blobs: Vec<BlobObject>,
}

/// Why an item could not be laid out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "record {id} needs {size} bytes, over the item limit, and no payload bucket is configured (set PAYLOAD_BUCKET)"
    )]
    NoBucket { id: String, size: usize },
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn data_value(data: &Data) -> AttributeValue {
    match data {
        Data::Text(text) => s(text.clone()),
        Data::Bytes { .. } => AttributeValue::B(Blob::new(data.to_bytes())),
    }
}

/// DynamoDB's size of an attribute value, in bytes (documented rules, rounded up).
fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number.len().div_ceil(2) + 1,
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(items) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        AttributeValue::Ss(items) => items.iter().map(String::len).sum(),
        AttributeValue::Ns(items) => items.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(items) => items.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// DynamoDB's size of an item, in bytes.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The S3 key of a record's payload: its id with `:` as `/`, under the prefix; stable, so redelivery overwrites.
pub fn blob_key(prefix: &str, id: &str, suffix: &str) -> String {
    let path: String = id
        .chars()
        .map(|c| match c {
            ':' => '/',
            c if c.is_ascii_alphanumeric() || "._-".contains(c) => c,
            _ => '_',
        })
        .collect();
    let key = format!("{prefix}{path}{suffix}");
    if key.len() <= 900 {
        key
    } else {
        format!("{prefix}sha256/{}{suffix}", sha256_hex(id.as_bytes()))
    }
}

fn headers_value(headers: &[Header]) -> AttributeValue {
    AttributeValue::L(
        headers
            .iter()
            .map(|h| {
                AttributeValue::M(HashMap::from([
                    ("name".to_owned(), s(h.name.clone())),
                    ("value".to_owned(), data_value(&h.value)),
                ]))
            })
            .collect(),
    )
}

/// Lays a record out as an item (and the S3 objects it needs).
pub fn prepare(
    notification: &Notification,
    layout: &Layout,
    now_epoch_seconds: i64,
) -> Result<PreparedItem, LayoutError> {
    prepare_owned(notification.clone(), layout, now_epoch_seconds)
}

/// Like [`prepare`], moving the record's text and payload into the item instead of copying them.
pub fn prepare_owned(
    notification: Notification,
    layout: &Layout,
    now_epoch_seconds: i64,
) -> Result<PreparedItem, LayoutError> {
    let Notification {
        id,
        source_topic,
        partition,
        offset,
        kafka_timestamp,
        timestamp_type,
        key,
        headers,
        fields,
        occurred_at,
        received_at,
        payload,
        payload_format,
        schema_id,
        warnings,
    } = notification;
    let mut item = Item::with_capacity(ITEM_ATTRIBUTES);
    item.insert(table::PARTITION_KEY.into(), s(id.clone()));
    item.insert("v".into(), n(ITEM_VERSION));
    item.insert("source_topic".into(), s(source_topic));
    item.insert("partition".into(), n(partition));
    if let Some(offset) = offset {
        item.insert("offset".into(), n(offset));
    }
    if let Some(ts) = kafka_timestamp {
        item.insert("kafka_timestamp".into(), n(ts));
    }
    if let Some(tt) = timestamp_type {
        item.insert("timestamp_type".into(), s(tt));
    }
    let Extracted {
        event_type,
        correlation_id,
        order_id,
        customer_id,
        source_service,
        event_id,
    } = fields;
    for (name, value) in [
        ("event_type", event_type),
        ("correlation_id", correlation_id),
        ("order_id", order_id),
        ("customer_id", customer_id),
        ("source_service", source_service),
        ("event_id", event_id),
    ] {
        if let Some(value) = value {
            item.insert(name.into(), s(value));
        }
    }
    for index in INDEXES {
        if let Some(AttributeValue::S(value)) = item.get(index.field) {
            let key = table::index_key(value);
            item.insert(index.partition_key.into(), s(key));
        }
    }
    item.insert(
        table::EVENT_SORT_KEY.into(),
        s(table::event_sort_key(&occurred_at, &id)),
    );
    item.insert("occurred_at".into(), s(occurred_at));
    item.insert("received_at".into(), s(received_at));
    item.insert("payload_format".into(), s(payload_format.as_str()));
    item.insert("payload_size".into(), n(payload.as_ref().map_or(0, Vec::len)));
    if let Some(schema_id) = schema_id {
        item.insert("schema_id".into(), n(schema_id));
    }
    if !warnings.is_empty() {
        item.insert(
            "warnings".into(),
            AttributeValue::L(warnings.into_iter().map(s).collect()),
        );
    }
    if let Some(retention) = layout.retention_seconds {
        item.insert(
            table::TTL_ATTRIBUTE.into(),
            n(now_epoch_seconds.saturating_add(retention as i64)),
        );
    }

    let mut blobs = Vec::new();
    // Key and headers inline, unless the record without its payload is already too large.
    let mut extras = Item::new();
    if let Some(key) = &key {
        extras.insert("key".into(), data_value(key));
    }
    if !headers.is_empty() {
        extras.insert("headers".into(), headers_value(&headers));
    }
    let pointer_room = 1_200; // pointer, size and digest attributes of up to two S3 objects
    if item_size(&item) + item_size(&extras) + pointer_room > layout.max_item_bytes {
        let document = serde_json::json!({"key": key, "headers": headers});
        let bytes = serde_json::to_vec(&document).unwrap_or_default();
        let blob = BlobObject {
            key: blob_key(&layout.prefix, &id, ".extras.json"),
            sha256: sha256_hex(&bytes),
            bytes,
        };
        let bucket = layout.bucket.clone().ok_or_else(|| LayoutError::NoBucket {
            id: id.clone(),
            size: item_size(&item) + item_size(&extras),
        })?;
        item.insert("extras_s3".into(), s3_pointer(&bucket, &blob));
        blobs.push(blob);
    } else {
        item.extend(extras);
    }

    if let Some(payload) = payload {
        let sha256 = sha256_hex(&payload);
        item.insert("payload_sha256".into(), s(sha256.clone()));
        let room = layout.max_item_bytes.saturating_sub(item_size(&item) + 64);
        if payload.len() <= room && payload.len() < layout.compress_min_bytes {
            item.insert("payload".into(), AttributeValue::B(Blob::new(payload)));
        } else {
            let compressed = if payload.len() >= layout.compress_min_bytes {
                zstd::bulk::compress(&payload, 3)
                    .ok()
                    .filter(|c| c.len() < payload.len())
            } else {
                None
            };
            match compressed {
                Some(c) if c.len() <= room => {
                    item.insert("payload_zstd".into(), AttributeValue::B(Blob::new(c)));
                }
                _ if payload.len() <= room => {
                    item.insert("payload".into(), AttributeValue::B(Blob::new(payload)));
                }
                _ => {
                    let bucket = layout.bucket.clone().ok_or_else(|| LayoutError::NoBucket {
                        id: id.clone(),
                        size: item_size(&item) + payload.len(),
                    })?;
                    let blob = BlobObject {
                        key: blob_key(&layout.prefix, &id, ""),
                        bytes: payload,
                        sha256,
                    };
                    item.insert("payload_s3".into(), s3_pointer(&bucket, &blob));
                    blobs.push(blob);
                }
            }
        }
    }
    Ok(PreparedItem { id, item, blobs })
}

/// The attributes of an item of every record, and a few to spare for warnings, TTL, key and headers.
const ITEM_ATTRIBUTES: usize = 28;

fn s3_pointer(bucket: &str, blob: &BlobObject) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("bucket".to_owned(), s(bucket)),
        ("key".to_owned(), s(blob.key.clone())),
        ("size".to_owned(), n(blob.bytes.len())),
        ("sha256".to_owned(), s(blob.sha256.clone())),
    ]))
}

/// Where a stored payload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredPayload {
    /// A tombstone.
    None,
    Inline(Vec<u8>),
    Zstd(Vec<u8>),
    S3(S3Pointer),
}

/// A pointer to an S3 object, with what it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Pointer {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub sha256: String,
}

/// A stored item read back: the summary, the headers and where the payload is.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub summary: Summary,
    pub headers: Vec<Header>,
    pub payload: StoredPayload,
    /// Key and headers stored in S3, for records too large to keep them inline.
    pub extras: Option<S3Pointer>,
}

/// Why an item could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored item {id:?} is malformed: {reason}")]
pub struct ItemError {
    pub id: String,
    pub reason: String,
}

fn get_s<'i>(item: &'i Item, name: &str) -> Option<&'i str> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => Some(text),
        _ => None,
    }
}

fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    match item.get(name) {
        Some(AttributeValue::N(number)) => number.parse().ok(),
        _ => None,
    }
}

fn get_data(value: Option<&AttributeValue>) -> Option<Data> {
    match value {
        Some(AttributeValue::S(text)) => Some(Data::Text(text.clone())),
        Some(AttributeValue::B(blob)) => Some(Data::from_bytes(blob.as_ref().to_vec())),
        _ => None,
    }
}

fn get_pointer(item: &Item, name: &str) -> Option<S3Pointer> {
    let AttributeValue::M(map) = item.get(name)? else {
        return None;
    };
    Some(S3Pointer {
        bucket: get_s(map, "bucket")?.to_owned(),
        key: get_s(map, "key")?.to_owned(),
        size: get_n(map, "size")?,
        sha256: get_s(map, "sha256")?.to_owned(),
    })
}

/// Reads the summary fields of an item (a full item or an index projection).
pub fn summary_from_item(item: &Item) -> Result<Summary, ItemError> {
    let id = get_s(item, table::PARTITION_KEY).unwrap_or_default().to_owned();
    let missing = |field: &str| ItemError {
        id: id.clone(),
        reason: format!("no {field}"),
    };
    let text = |name: &str| get_s(item, name).map(str::to_owned);
    let payload_format = get_s(item, "payload_format")
        .and_then(PayloadFormat::parse)
        .ok_or_else(|| missing("payload_format"))?;
    Ok(Summary {
        id: id.clone(),
        source_topic: text("source_topic").ok_or_else(|| missing("source_topic"))?,
        partition: get_n(item, "partition").ok_or_else(|| missing("partition"))?,
        offset: get_n(item, "offset"),
        kafka_timestamp: get_n(item, "kafka_timestamp"),
        timestamp_type: text("timestamp_type"),
        key: get_data(item.get("key")),
        fields: Extracted {
            event_type: text("event_type"),
            correlation_id: text("correlation_id"),
            order_id: text("order_id"),
            customer_id: text("customer_id"),
            source_service: text("source_service"),
            event_id: text("event_id"),
        },
        occurred_at: text("occurred_at").ok_or_else(|| missing("occurred_at"))?,
        received_at: text("received_at").ok_or_else(|| missing("received_at"))?,
        payload_format,
        payload_size: get_n(item, "payload_size").unwrap_or(0),
        schema_id: get_n(item, "schema_id"),
        warnings: match item.get("warnings") {
            Some(AttributeValue::L(list)) => list
                .iter()
                .filter_map(|w| match w {
                    AttributeValue::S(text) => Some(text.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        },
    })
}

/// Reads a whole item back.
pub fn record_from_item(item: &Item) -> Result<StoredRecord, ItemError> {
    let summary = summary_from_item(item)?;
    let headers = match item.get("headers") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .filter_map(|h| match h {
                AttributeValue::M(map) => Some(Header {
                    name: get_s(map, "name")?.to_owned(),
                    value: get_data(map.get("value"))?,
                }),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let payload = if let Some(AttributeValue::B(blob)) = item.get("payload") {
        StoredPayload::Inline(blob.as_ref().to_vec())
    } else if let Some(AttributeValue::B(blob)) = item.get("payload_zstd") {
        StoredPayload::Zstd(blob.as_ref().to_vec())
    } else if let Some(pointer) = get_pointer(item, "payload_s3") {
        StoredPayload::S3(pointer)
    } else if summary.payload_format == PayloadFormat::Tombstone {
        StoredPayload::None
    } else {
        return Err(ItemError {
            id: summary.id.clone(),
            reason: "no payload attribute".into(),
        });
    };
    Ok(StoredRecord {
        extras: get_pointer(item, "extras_s3"),
        summary,
        headers,
        payload,
    })
}

/// Decompresses a zstd payload, refusing to grow past `max_bytes`.
pub fn decompress(bytes: &[u8], max_bytes: usize) -> Result<Vec<u8>, String> {
    zstd::bulk::decompress(bytes, max_bytes).map_err(|e| format!("zstd: {e}"))
}

/// The key and headers of an `.extras.json` object.
pub fn parse_extras(bytes: &[u8]) -> Result<(Option<Data>, Vec<Header>), String> {
    #[derive(serde::Deserialize)]
    struct Extras {
        key: Option<Data>,
        #[serde(default)]
        headers: Vec<Header>,
    }
    let extras: Extras = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok((extras.key, extras.headers))
}

/// Base64 of some bytes (used where JSON must carry binary).
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Extracted, Notification};

    fn notification(payload: Option<Vec<u8>>) -> Notification {
        Notification {
            id: "orders:0:42".into(),
            source_topic: "orders".into(),
            partition: 0,
            offset: Some(42),
            kafka_timestamp: Some(1_700_000_000_000),
            timestamp_type: Some("CREATE_TIME".into()),
            key: Some(Data::Text("o-1".into())),
            headers: vec![
                Header {
                    name: "h".into(),
                    value: Data::Text("1".into()),
                },
                Header {
                    name: "h".into(),
                    value: Data::from_bytes(vec![0xff]),
                },
            ],
            fields: Extracted {
                order_id: Some("o-1".into()),
                event_type: Some("OrderCreated".into()),
                ..Default::default()
            },
            occurred_at: "2023-11-14T22:13:20.000000Z".into(),
            received_at: "2023-11-14T22:13:21.000000Z".into(),
            payload,
            payload_format: PayloadFormat::Json,
            schema_id: None,
            warnings: vec!["w".into()],
        }
    }

    #[test]
    fn a_small_record_is_one_item_that_reads_back_the_same() {
        let n_ = notification(Some(br#"{"orderId":"o-1"}"#.to_vec()));
        let prepared = prepare(&n_, &Layout::default(), 0).unwrap();
        assert!(prepared.blobs.is_empty());
        assert_eq!(get_s(&prepared.item, "order_key"), Some("o-1"));
        assert!(!prepared.item.contains_key("customer_key"), "indexes are sparse");
        assert!(!prepared.item.contains_key(table::TTL_ATTRIBUTE));
        let back = record_from_item(&prepared.item).unwrap();
        assert_eq!(back.summary, n_.summary());
        assert_eq!(back.headers, n_.headers);
        assert_eq!(back.payload, StoredPayload::Inline(n_.payload.clone().unwrap()));
    }

    #[test]
    fn a_large_compressible_payload_is_compressed() {
        let payload = format!("[{}]", vec!["{\"a\":1}"; 20_000].join(",")).into_bytes();
        let prepared = prepare(&notification(Some(payload.clone())), &Layout::default(), 0).unwrap();
        let StoredPayload::Zstd(c) = record_from_item(&prepared.item).unwrap().payload else {
            panic!("not compressed")
        };
        assert_eq!(decompress(&c, payload.len()).unwrap(), payload);
        assert!(item_size(&prepared.item) < 350_000);
    }

    #[test]
    fn a_payload_too_large_for_an_item_goes_to_s3_with_size_and_digest() {
        let payload = crate::memory::noise(1_000_000);
        let layout = Layout {
            bucket: Some("b".into()),
            ..Layout::default()
        };
        let prepared = prepare(&notification(Some(payload.clone())), &layout, 0).unwrap();
        assert_eq!(prepared.blobs.len(), 1);
        assert_eq!(prepared.blobs[0].bytes, payload);
        assert_eq!(prepared.blobs[0].key, "payloads/orders/0/42");
        let StoredPayload::S3(pointer) = record_from_item(&prepared.item).unwrap().payload else {
            panic!()
        };
        assert_eq!(pointer.size, 1_000_000);
        assert_eq!(pointer.sha256, sha256_hex(&payload));
    }

    #[test]
    fn without_a_bucket_an_over_large_payload_is_a_clear_error() {
        let payload = crate::memory::noise(1_000_000);
        let err = prepare(&notification(Some(payload)), &Layout::default(), 0).unwrap_err();
        assert!(err.to_string().contains("PAYLOAD_BUCKET"), "{err}");
    }

    #[test]
    fn giant_headers_go_to_s3_and_the_item_still_fits() {
        let mut n_ = notification(Some(b"{}".to_vec()));
        n_.headers = vec![Header {
            name: "big".into(),
            value: Data::Text("x".repeat(500_000)),
        }];
        let layout = Layout {
            bucket: Some("b".into()),
            ..Layout::default()
        };
        let prepared = prepare(&n_, &layout, 0).unwrap();
        assert!(item_size(&prepared.item) < layout.max_item_bytes);
        let extras = prepared.blobs.iter().find(|b| b.key.ends_with(".extras.json")).unwrap();
        let (key, headers) = parse_extras(&extras.bytes).unwrap();
        assert_eq!(key, n_.key);
        assert_eq!(headers, n_.headers);
    }

    #[test]
    fn retention_sets_the_ttl_attribute() {
        let layout = Layout {
            retention_seconds: Some(86_400),
            ..Layout::default()
        };
        let prepared = prepare(&notification(None), &layout, 1_000).unwrap();
        assert_eq!(get_n::<i64>(&prepared.item, table::TTL_ATTRIBUTE), Some(87_400));
    }

    #[test]
    fn blob_keys_are_stable_and_safe() {
        assert_eq!(blob_key("p/", "a b:1:2", ""), "p/a_b/1/2");
        assert!(blob_key("p/", &"t".repeat(2000), "").starts_with("p/sha256/"));
    }
}
