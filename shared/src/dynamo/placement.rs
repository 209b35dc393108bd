//! Payload placement, pure: a record is laid out as one item (and the S3 objects it needs). A payload is stored
//! inline when the item fits DynamoDB's 400 KB limit, compressed with zstd when it is large and that helps, and
//! in S3 when it still does not fit: the item then keeps a pointer, the size and the SHA-256. When even the
//! record without its payload is too large (giant keys or headers), the key and headers go to S3 too. Nothing is
//! ever dropped.

use crate::model::sha256_hex;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

use super::codec::{change_value, data_value, headers_value, n, s, PutItem, ITEM_VERSION};
use super::table::{self, attr, INDEXES};
use crate::model::{Extracted, Notification, PayloadFormat};

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
    /// The payload bucket of the layout that made it.
    pub bucket: String,
    pub key: String,
    pub bytes: Vec<u8>,
    pub sha256: String,
}

/// An item ready to write, with the S3 objects it needs first.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedItem {
    pub id: String,
    pub item: PutItem,
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

/// Lays a record out as an item (and the S3 objects it needs).
pub fn prepare(
    notification: &Notification,
    layout: &Layout,
    now_epoch_seconds: i64,
) -> Result<PreparedItem, LayoutError> {
    prepare_owned(notification.clone(), layout, now_epoch_seconds)
}

/// The zstd level items are compressed at.
const ZSTD_LEVEL: i32 = 3;

thread_local! {
    /// One compression context per thread, kept: `zstd::bulk::compress` makes and frees a context of about a
    /// megabyte for every call, which cost more than compressing a 10 KB payload (`make bench`, scaling).
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// `bytes` compressed at [`ZSTD_LEVEL`] (the same bytes `zstd::bulk::compress` gives), or `None` if zstd fails.
fn compress(bytes: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut compressor = cell.borrow_mut();
        if compressor.is_none() {
            *compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        compressor.as_mut()?.compress(bytes).ok()
    })
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
        change,
        decoded,
        warnings,
    } = notification;
    let mut item = PutItem::with_capacity(ITEM_ATTRIBUTES);
    item.insert(attr::ID, s(id.clone()));
    item.insert(attr::VERSION, n(ITEM_VERSION));
    item.insert(attr::SOURCE_TOPIC, s(source_topic));
    item.insert(attr::PARTITION, n(partition));
    if let Some(offset) = offset {
        item.insert(attr::OFFSET, n(offset));
    }
    if let Some(ts) = kafka_timestamp {
        item.insert(attr::KAFKA_TIMESTAMP, n(ts));
    }
    if let Some(tt) = timestamp_type {
        item.insert(attr::TIMESTAMP_TYPE, s(tt));
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
        (attr::EVENT_TYPE, event_type),
        (attr::CORRELATION_ID, correlation_id),
        (attr::ORDER_ID, order_id),
        (attr::CUSTOMER_ID, customer_id),
        (attr::SOURCE_SERVICE, source_service),
        (attr::EVENT_ID, event_id),
    ] {
        let Some(value) = value else { continue };
        // The index key is made from the whole id; the item keeps it within the field limit.
        if let Some(index) = INDEXES.iter().find(|index| index.field == name) {
            item.insert(index.partition_key, s(table::index_key(&value)));
        }
        let stored = match table::stored_field(&value) {
            std::borrow::Cow::Borrowed(_) => value,
            std::borrow::Cow::Owned(cut) => cut,
        };
        item.insert(name, s(stored));
    }
    item.insert(attr::EVENT_SORT_KEY, s(table::event_sort_key(&occurred_at, &id)));
    item.insert(attr::OCCURRED_AT, s(occurred_at));
    item.insert(attr::RECEIVED_AT, s(received_at));
    item.insert(attr::PAYLOAD_FORMAT, s(payload_format.as_str()));
    item.insert(attr::PAYLOAD_SIZE, n(payload.as_ref().map_or(0, Vec::len)));
    if let Some(schema_id) = schema_id {
        item.insert(attr::SCHEMA_ID, n(schema_id));
    }
    if let Some(change) = &change {
        item.insert(attr::CHANGE, change_value(change));
    }
    if !warnings.is_empty() {
        item.insert(
            attr::WARNINGS,
            AttributeValue::L(
                warnings
                    .into_iter()
                    .map(|w| s(table::stored_field(&w.message).into_owned()))
                    .collect(),
            ),
        );
    }
    if let Some(retention) = layout.retention_seconds {
        item.insert(attr::EXPIRES_AT, n(now_epoch_seconds.saturating_add(retention as i64)));
    }

    let mut blobs = Vec::new();
    // Key and headers inline, unless the record without its payload is already too large.
    let mut extras = PutItem::with_capacity(2);
    if let Some(key) = &key {
        extras.insert(attr::KEY, data_value(key));
    }
    if !headers.is_empty() {
        extras.insert(attr::HEADERS, headers_value(&headers));
    }
    let pointer_room = 1_200; // pointer, size and digest attributes of up to two S3 objects
    if item.size() + extras.size() + pointer_room > layout.max_item_bytes {
        let document = serde_json::json!({"key": key, "headers": headers});
        let bytes = serde_json::to_vec(&document).unwrap_or_default();
        let bucket = layout.bucket.clone().ok_or_else(|| LayoutError::NoBucket {
            id: id.clone(),
            size: item.size() + extras.size(),
        })?;
        let blob = BlobObject {
            bucket,
            key: blob_key(&layout.prefix, &id, ".extras.json"),
            sha256: sha256_hex(&bytes),
            bytes,
        };
        item.insert(attr::EXTRAS_S3, s3_pointer(&blob));
        blobs.push(blob);
    } else {
        item.append(extras);
    }

    if let Some(payload) = payload {
        let sha256 = sha256_hex(&payload);
        item.insert(attr::PAYLOAD_SHA256, s(sha256.clone()));
        let room = layout.max_item_bytes.saturating_sub(item.size() + 64);
        // A payload too large to answer inline is read through a link, which only the bucket can give: it goes
        // there even when it would compress into the item.
        let linked = payload.len() as u64 > crate::ports::INLINE_PAYLOAD_MAX && layout.bucket.is_some();
        if !linked && payload.len() <= room && payload.len() < layout.compress_min_bytes {
            item.insert(attr::PAYLOAD, AttributeValue::B(Blob::new(payload)));
        } else {
            let compressed = if !linked && payload.len() >= layout.compress_min_bytes {
                compress(&payload).filter(|c| c.len() < payload.len())
            } else {
                None
            };
            match compressed {
                Some(c) if c.len() <= room => {
                    item.insert(attr::PAYLOAD_ZSTD, AttributeValue::B(Blob::new(c)));
                }
                _ if !linked && payload.len() <= room => {
                    item.insert(attr::PAYLOAD, AttributeValue::B(Blob::new(payload)));
                }
                _ => {
                    let bucket = layout.bucket.clone().ok_or_else(|| LayoutError::NoBucket {
                        id: id.clone(),
                        size: item.size() + payload.len(),
                    })?;
                    let blob = BlobObject {
                        bucket,
                        key: blob_key(&layout.prefix, &id, ""),
                        bytes: payload,
                        sha256,
                    };
                    item.insert(attr::PAYLOAD_S3, s3_pointer(&blob));
                    blobs.push(blob);
                }
            }
        }
    }
    // The decoded JSON, last: it can be made again from the payload and its schema, so when the item has no
    // room left for it, it is left out (the API then answers the record without `decoded`).
    if let Some(mut decoded) = decoded {
        // A JSON body is the payload itself, behind its framing: not stored twice (the reader reads it back
        // from the payload).
        if matches!(payload_format, PayloadFormat::ConfluentJson | PayloadFormat::GlueJson) {
            decoded.value = None;
        }
        let text = decoded.to_json();
        let room = layout.max_item_bytes.saturating_sub(item.size() + 64);
        let compressed = (text.len() >= layout.compress_min_bytes)
            .then(|| compress(text.as_bytes()))
            .flatten()
            .filter(|c| c.len() < text.len() && c.len() <= room);
        match compressed {
            Some(c) => {
                item.insert(attr::DECODED_ZSTD, AttributeValue::B(Blob::new(c)));
            }
            None if text.len() <= room => {
                item.insert(attr::DECODED, s(text));
            }
            None => {}
        }
    }
    Ok(PreparedItem { id, item, blobs })
}

/// The attributes of an item of every record, and a few to spare for warnings, TTL, key and headers.
const ITEM_ATTRIBUTES: usize = 28;

fn s3_pointer(blob: &BlobObject) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("bucket".to_owned(), s(blob.bucket.clone())),
        ("key".to_owned(), s(blob.key.clone())),
        ("size".to_owned(), n(blob.bytes.len())),
        ("sha256".to_owned(), s(blob.sha256.clone())),
    ]))
}

#[cfg(test)]
mod tests {
    use super::super::codec::{decompress, get_n, get_s, parse_extras, record_from_item, StoredPayload};
    use super::*;

    #[test]
    fn the_kept_compression_context_gives_what_a_fresh_one_gives_call_after_call() {
        let inputs: Vec<Vec<u8>> = vec![
            b"{\"orderId\":\"o-1\"}".repeat(600),
            (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect(),
            Vec::new(),
            b"{\"orderId\":\"o-1\"}".repeat(600),
        ];
        for input in &inputs {
            assert_eq!(compress(input), zstd::bulk::compress(input, ZSTD_LEVEL).ok());
            assert_eq!(
                zstd::bulk::decompress(&compress(input).unwrap(), input.len()).unwrap(),
                *input
            );
        }
    }
    use crate::model::{Data, Extracted, Header, Notification, PayloadFormat, Warning, WarningCode};

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
            change: None,
            decoded: None,
            warnings: vec![Warning::new(WarningCode::NoEventTime, "w")],
        }
    }

    #[test]
    fn a_small_record_is_one_item_that_reads_back_the_same() {
        let n_ = notification(Some(br#"{"orderId":"o-1"}"#.to_vec()));
        let prepared = prepare(&n_, &Layout::default(), 0).unwrap();
        assert!(prepared.blobs.is_empty());
        assert_eq!(get_s(&prepared.item.to_item(), "order_key"), Some("o-1"));
        assert!(!prepared.item.contains_key("customer_key"), "indexes are sparse");
        assert!(!prepared.item.contains_key(table::TTL_ATTRIBUTE));
        let back = record_from_item(&prepared.item.to_item()).unwrap();
        assert_eq!(back.summary, n_.summary());
        assert_eq!(back.headers, n_.headers);
        assert_eq!(back.payload, StoredPayload::Inline(n_.payload.clone().unwrap()));
    }

    #[test]
    fn a_change_events_metadata_stays_on_the_item_within_the_field_limit_and_out_of_the_indexes() {
        let mut n_ = notification(Some(br#"{"op":"c"}"#.to_vec()));
        n_.change = Some(crate::model::Change {
            op: "c".into(),
            table: Some(format!("shop.public.{}", "t".repeat(5_000))),
            changed_at: Some("2024-03-01T10:00:00.000000Z".into()),
            connector: None,
        });
        let prepared = prepare(&n_, &Layout::default(), 0).unwrap();
        let back = record_from_item(&prepared.item.to_item())
            .unwrap()
            .change
            .expect("the change is stored");
        assert_eq!(back.op, "c");
        assert_eq!(back.changed_at.as_deref(), Some("2024-03-01T10:00:00.000000Z"));
        assert_eq!(back.connector, None);
        let table = back.table.unwrap();
        assert!(
            table.len() <= crate::model::MAX_FIELD_BYTES && table.starts_with("shop.public.ttt"),
            "{table}"
        );
        assert!(
            !table::SUMMARY_ATTRIBUTES.contains(&attr::CHANGE),
            "indexes keep their projection"
        );
        assert_eq!(
            record_from_item(
                &prepare(&notification(Some(b"{}".to_vec())), &Layout::default(), 0)
                    .unwrap()
                    .item
                    .to_item()
            )
            .unwrap()
            .change,
            None
        );
    }

    #[test]
    fn a_large_compressible_payload_is_compressed() {
        let payload = format!("[{}]", vec!["{\"a\":1}"; 20_000].join(",")).into_bytes();
        let prepared = prepare(&notification(Some(payload.clone())), &Layout::default(), 0).unwrap();
        let StoredPayload::Zstd(c) = record_from_item(&prepared.item.to_item()).unwrap().payload else {
            panic!("not compressed")
        };
        assert_eq!(decompress(&c, payload.len()).unwrap(), payload);
        assert!(prepared.item.size() < 350_000);
    }

    #[test]
    fn a_payload_too_large_to_answer_inline_goes_to_the_bucket_even_when_it_compresses() {
        let payload = vec![b'a'; crate::ports::INLINE_PAYLOAD_MAX as usize + 1];
        let with_bucket = Layout {
            bucket: Some("b".into()),
            ..Layout::default()
        };
        let prepared = prepare(&notification(Some(payload.clone())), &with_bucket, 0).unwrap();
        assert!(matches!(
            record_from_item(&prepared.item.to_item()).unwrap().payload,
            StoredPayload::S3(_)
        ));
        assert_eq!(prepared.blobs[0].bytes, payload);
        // Without a bucket it still compresses into the item: stored, never refused.
        let prepared = prepare(&notification(Some(payload)), &Layout::default(), 0).unwrap();
        assert!(matches!(
            record_from_item(&prepared.item.to_item()).unwrap().payload,
            StoredPayload::Zstd(_)
        ));
    }

    #[test]
    fn a_payload_too_large_for_an_item_goes_to_s3_with_size_and_digest() {
        let payload = crate::fixtures::noise(1_000_000);
        let layout = Layout {
            bucket: Some("b".into()),
            ..Layout::default()
        };
        let prepared = prepare(&notification(Some(payload.clone())), &layout, 0).unwrap();
        assert_eq!(prepared.blobs.len(), 1);
        assert_eq!(prepared.blobs[0].bytes, payload);
        assert_eq!(prepared.blobs[0].key, "payloads/orders/0/42");
        let StoredPayload::S3(pointer) = record_from_item(&prepared.item.to_item()).unwrap().payload else {
            panic!()
        };
        assert_eq!(pointer.size, 1_000_000);
        assert_eq!(pointer.sha256, sha256_hex(&payload));
    }

    #[test]
    fn without_a_bucket_an_over_large_payload_is_a_clear_error() {
        let payload = crate::fixtures::noise(1_000_000);
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
        assert!(prepared.item.size() < layout.max_item_bytes);
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
        assert_eq!(
            get_n::<i64>(&prepared.item.to_item(), table::TTL_ATTRIBUTE),
            Some(87_400)
        );
    }

    #[test]
    fn blob_keys_are_stable_and_safe() {
        assert_eq!(blob_key("p/", "a b:1:2", ""), "p/a_b/1/2");
        assert!(blob_key("p/", &"t".repeat(2000), "").starts_with("p/sha256/"));
    }
}
