//! The item codec: DynamoDB attribute values to and from the domain's records, pure. How a record is laid out
//! into an item (inline, zstd, S3) is [`super::placement`]'s.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;

use super::table::{self, attr};
use crate::model::{Change, Data, Decoded, Extracted, Header, PayloadFormat, Summary};

/// An item as the SDK reads it (GetItem, Query).
pub type Item = HashMap<String, AttributeValue>;

/// An item to write: its attributes in the order they were laid out, named by the table's own names
/// ([`super::table::attr`]). Cheaper to build and to drop than an [`Item`] (no name is allocated or hashed),
/// and written into the BatchWriteItem body as it is ([`super::body`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PutItem(Vec<(&'static str, AttributeValue)>);

impl PutItem {
    pub fn with_capacity(capacity: usize) -> Self {
        PutItem(Vec::with_capacity(capacity))
    }

    /// Adds an attribute. Each name is set once: layout code never sets one twice (checked in debug builds).
    pub fn insert(&mut self, name: &'static str, value: AttributeValue) {
        debug_assert!(!self.contains_key(name), "attribute {name} set twice");
        self.0.push((name, value));
    }

    /// Adds the attributes of `other`.
    pub fn append(&mut self, other: PutItem) {
        for (name, value) in other.0 {
            self.insert(name, value);
        }
    }

    pub fn get(&self, name: &str) -> Option<&AttributeValue> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, value)| value)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &AttributeValue)> + '_ {
        self.0.iter().map(|(name, value)| (*name, value))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The item's id (its partition key).
    pub fn id(&self) -> Option<&str> {
        match self.get(table::PARTITION_KEY) {
            Some(AttributeValue::S(id)) => Some(id),
            _ => None,
        }
    }

    /// DynamoDB's size of the item, in bytes.
    pub fn size(&self) -> usize {
        self.iter().map(|(name, value)| name.len() + value_size(value)).sum()
    }

    /// The same item as GetItem would read it back.
    pub fn to_item(&self) -> Item {
        self.iter()
            .map(|(name, value)| (name.to_owned(), value.clone()))
            .collect()
    }
}

/// The version of the item layout, stored on every item.
pub const ITEM_VERSION: i64 = 1;

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn data_value(data: &Data) -> AttributeValue {
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

pub(super) fn headers_value(headers: &[Header]) -> AttributeValue {
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
    /// What a change event says about the change (only the item holds it, not the indexes).
    pub change: Option<Change>,
    /// A registry-framed record's schemas and decoded JSON (only the item holds it).
    pub decoded: Option<Decoded>,
}

/// Why an item could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored item {id:?} is malformed: {reason}")]
pub struct ItemError {
    pub id: String,
    pub reason: String,
}

pub(super) fn get_s<'i>(item: &'i Item, name: &str) -> Option<&'i str> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => Some(text),
        _ => None,
    }
}

pub(super) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
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

/// The largest decoded JSON read back from its zstd form.
const MAX_DECODED_BYTES: usize = 16 * 1024 * 1024;

fn get_decoded(item: &Item) -> Option<Decoded> {
    let text = match (item.get(attr::DECODED), item.get(attr::DECODED_ZSTD)) {
        (Some(AttributeValue::S(text)), _) => text.clone(),
        (_, Some(AttributeValue::B(blob))) => {
            String::from_utf8(decompress(blob.as_ref(), MAX_DECODED_BYTES).ok()?).ok()?
        }
        _ => return None,
    };
    Decoded::from_json(&text).ok()
}

fn get_change(item: &Item) -> Option<Change> {
    let AttributeValue::M(map) = item.get(attr::CHANGE)? else {
        return None;
    };
    let text = |name: &str| get_s(map, name).map(str::to_owned);
    Some(Change {
        op: text("op")?,
        table: text("table"),
        changed_at: text("changed_at"),
        connector: text("connector"),
    })
}

/// The `change` attribute of an item: a map of its texts, each within the field limit.
pub fn change_value(change: &Change) -> AttributeValue {
    let mut map = HashMap::new();
    map.insert("op".to_owned(), s(table::stored_field(&change.op).into_owned()));
    for (name, value) in [
        ("table", &change.table),
        ("changed_at", &change.changed_at),
        ("connector", &change.connector),
    ] {
        if let Some(value) = value {
            map.insert(name.to_owned(), s(table::stored_field(value).into_owned()));
        }
    }
    AttributeValue::M(map)
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
    let id = get_s(item, attr::ID).unwrap_or_default().to_owned();
    let missing = |field: &str| ItemError {
        id: id.clone(),
        reason: format!("no {field}"),
    };
    let text = |name: &str| get_s(item, name).map(str::to_owned);
    let payload_format = get_s(item, attr::PAYLOAD_FORMAT)
        .and_then(PayloadFormat::parse)
        .ok_or_else(|| missing(attr::PAYLOAD_FORMAT))?;
    Ok(Summary {
        id: id.clone(),
        source_topic: text(attr::SOURCE_TOPIC).ok_or_else(|| missing(attr::SOURCE_TOPIC))?,
        partition: get_n(item, attr::PARTITION).ok_or_else(|| missing(attr::PARTITION))?,
        offset: get_n(item, attr::OFFSET),
        kafka_timestamp: get_n(item, attr::KAFKA_TIMESTAMP),
        timestamp_type: text(attr::TIMESTAMP_TYPE),
        key: get_data(item.get(attr::KEY)),
        fields: Extracted {
            event_type: text(attr::EVENT_TYPE),
            correlation_id: text(attr::CORRELATION_ID),
            order_id: text(attr::ORDER_ID),
            customer_id: text(attr::CUSTOMER_ID),
            source_service: text(attr::SOURCE_SERVICE),
            event_id: text(attr::EVENT_ID),
        },
        occurred_at: text(attr::OCCURRED_AT).ok_or_else(|| missing(attr::OCCURRED_AT))?,
        received_at: text(attr::RECEIVED_AT).ok_or_else(|| missing(attr::RECEIVED_AT))?,
        payload_format,
        payload_size: get_n(item, attr::PAYLOAD_SIZE).unwrap_or(0),
        schema_id: get_n(item, attr::SCHEMA_ID),
        warnings: match item.get(attr::WARNINGS) {
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
    let headers = match item.get(attr::HEADERS) {
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
    let payload = if let Some(AttributeValue::B(blob)) = item.get(attr::PAYLOAD) {
        StoredPayload::Inline(blob.as_ref().to_vec())
    } else if let Some(AttributeValue::B(blob)) = item.get(attr::PAYLOAD_ZSTD) {
        StoredPayload::Zstd(blob.as_ref().to_vec())
    } else if let Some(pointer) = get_pointer(item, attr::PAYLOAD_S3) {
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
        extras: get_pointer(item, attr::EXTRAS_S3),
        change: get_change(item),
        decoded: get_decoded(item),
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
