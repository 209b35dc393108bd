//! The table definition, in one place: the ingest function's tests, the local stack and (through a test that
//! compares them) the deployment template all take it from here.
//!
//! - Table key: `id` (`{topic}:{partition}:{offset}`), so every record has its own partition key and a busy
//!   Kafka partition spreads its writes over the whole key space.
//! - Three sparse global secondary indexes, one per lookup (order, correlation, customer). Their partition key
//!   is the id itself, or its SHA-256 when the id is longer than DynamoDB allows for an index key; their sort
//!   key is `event_sk` = `{occurred_at}#{id}`, so each index is in event-time order with Kafka identity as the
//!   tie-break. They project the summary attributes only, never the payload or headers.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};
use sha2::{Digest, Sha256};

use super::codec::Item;
use crate::model::MAX_FIELD_BYTES;
use crate::ports::{Lookup, Position};

/// Every attribute name of an item, defined once.
pub mod attr {
    /// The table's partition key.
    pub const ID: &str = "id";
    /// The item layout version.
    pub const VERSION: &str = "v";
    pub const SOURCE_TOPIC: &str = "source_topic";
    pub const PARTITION: &str = "partition";
    pub const OFFSET: &str = "offset";
    pub const KAFKA_TIMESTAMP: &str = "kafka_timestamp";
    pub const TIMESTAMP_TYPE: &str = "timestamp_type";
    pub const KEY: &str = "key";
    pub const HEADERS: &str = "headers";
    pub const EVENT_TYPE: &str = "event_type";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const ORDER_ID: &str = "order_id";
    pub const CUSTOMER_ID: &str = "customer_id";
    pub const SOURCE_SERVICE: &str = "source_service";
    pub const EVENT_ID: &str = "event_id";
    pub const OCCURRED_AT: &str = "occurred_at";
    pub const RECEIVED_AT: &str = "received_at";
    pub const PAYLOAD_FORMAT: &str = "payload_format";
    pub const PAYLOAD_SIZE: &str = "payload_size";
    pub const SCHEMA_ID: &str = "schema_id";
    /// What a change event says about the change (a map; the item only, not in the indexes).
    pub const CHANGE: &str = "change";
    /// A registry-framed record's schemas and decoded JSON (text; the item only, not in the indexes).
    pub const DECODED: &str = "decoded";
    /// The same, compressed with zstd.
    pub const DECODED_ZSTD: &str = "decoded_zstd";
    pub const WARNINGS: &str = "warnings";
    /// The payload, inline.
    pub const PAYLOAD: &str = "payload";
    /// The payload, compressed with zstd.
    pub const PAYLOAD_ZSTD: &str = "payload_zstd";
    /// A pointer to the payload in S3.
    pub const PAYLOAD_S3: &str = "payload_s3";
    pub const PAYLOAD_SHA256: &str = "payload_sha256";
    /// A pointer to the key and headers in S3, for records too large to keep them inline.
    pub const EXTRAS_S3: &str = "extras_s3";
    /// The sort key of every index.
    pub const EVENT_SORT_KEY: &str = "event_sk";
    /// The TTL attribute, present when a retention period is configured.
    pub const EXPIRES_AT: &str = "expires_at";
    pub const ORDER_KEY: &str = "order_key";
    pub const CORRELATION_KEY: &str = "correlation_key";
    pub const CUSTOMER_KEY: &str = "customer_key";
}

/// The table's partition key.
pub const PARTITION_KEY: &str = attr::ID;
/// The sort key of every index.
pub const EVENT_SORT_KEY: &str = attr::EVENT_SORT_KEY;
/// The TTL attribute, present when a retention period is configured.
pub const TTL_ATTRIBUTE: &str = attr::EXPIRES_AT;

/// One lookup index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    /// Which field this index looks up.
    pub lookup: Lookup,
    pub name: &'static str,
    /// The index partition key attribute.
    pub partition_key: &'static str,
    /// The record field whose value the key is derived from.
    pub field: &'static str,
}

pub const INDEXES: [Index; 3] = [
    Index {
        lookup: Lookup::Order,
        name: "by_order",
        partition_key: attr::ORDER_KEY,
        field: attr::ORDER_ID,
    },
    Index {
        lookup: Lookup::Correlation,
        name: "by_correlation",
        partition_key: attr::CORRELATION_KEY,
        field: attr::CORRELATION_ID,
    },
    Index {
        lookup: Lookup::Customer,
        name: "by_customer",
        partition_key: attr::CUSTOMER_KEY,
        field: attr::CUSTOMER_ID,
    },
];

/// The index of a lookup.
pub fn index_of(lookup: Lookup) -> &'static Index {
    match lookup {
        Lookup::Order => &INDEXES[0],
        Lookup::Correlation => &INDEXES[1],
        Lookup::Customer => &INDEXES[2],
    }
}

/// Non-key attributes every index projects: the record's summary (no payload, no headers), and its expiry, so
/// that lists leave out what retention has expired before DynamoDB's TTL deletes it.
pub const SUMMARY_ATTRIBUTES: [&str; 19] = [
    attr::SOURCE_TOPIC,
    attr::PARTITION,
    attr::OFFSET,
    attr::KAFKA_TIMESTAMP,
    attr::TIMESTAMP_TYPE,
    attr::KEY,
    attr::EVENT_TYPE,
    attr::CORRELATION_ID,
    attr::ORDER_ID,
    attr::CUSTOMER_ID,
    attr::SOURCE_SERVICE,
    attr::EVENT_ID,
    attr::OCCURRED_AT,
    attr::RECEIVED_AT,
    attr::PAYLOAD_FORMAT,
    attr::PAYLOAD_SIZE,
    attr::SCHEMA_ID,
    attr::WARNINGS,
    attr::EXPIRES_AT,
];

/// DynamoDB's limit on a partition key value of an index, in bytes.
pub const MAX_INDEX_PARTITION_KEY_BYTES: usize = 2048;
/// DynamoDB's limit on a sort key value, in bytes.
pub const MAX_SORT_KEY_BYTES: usize = 1024;

/// The index partition key for an id: the id itself when DynamoDB can hold it, else `sha256:` and its digest.
/// Lookups always also compare the full id, so the two forms can never mix up records.
pub fn index_key(id: &str) -> String {
    if id.len() <= MAX_INDEX_PARTITION_KEY_BYTES {
        id.to_owned()
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(id.as_bytes())))
    }
}

/// An extracted field as an item stores it: whole up to [`MAX_FIELD_BYTES`], else its first bytes (cut at a
/// character boundary), then `…` and its full length and SHA-256, within [`MAX_FIELD_BYTES`] in all. The index key
/// is made from the whole value ([`index_key`]) and lookups compare this form, so a long id is still found exactly.
pub fn stored_field(value: &str) -> std::borrow::Cow<'_, str> {
    if value.len() <= MAX_FIELD_BYTES {
        return std::borrow::Cow::Borrowed(value);
    }
    let suffix = format!(
        "…[{} bytes, sha256:{}]",
        value.len(),
        hex::encode(Sha256::digest(value.as_bytes()))
    );
    let mut end = MAX_FIELD_BYTES - suffix.len();
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}{suffix}", &value[..end]))
}

/// The index sort key of a record.
pub fn event_sort_key(occurred_at: &str, id: &str) -> String {
    let key = format!("{occurred_at}#{id}");
    if key.len() <= MAX_SORT_KEY_BYTES {
        key
    } else {
        // Only ids with absurd topic names get here; the digest keeps the key unique and in time order.
        format!("{occurred_at}#sha256:{}", hex::encode(Sha256::digest(id.as_bytes())))
    }
}

/// The sort-key bounds of a time window: `since` as is (it sorts before every `{since}#{id}`), `until` with
/// `#~`, which sorts after every `{until}#{id}` of that same time.
pub fn sort_key_bounds(since: Option<&str>, until: Option<&str>) -> (Option<String>, Option<String>) {
    (since.map(str::to_owned), until.map(|u| format!("{u}#~")))
}

/// What writing an item costs in write capacity units, by DynamoDB's rules: one per started KB of the item, and
/// one per started KB of its entry in each index it appears in (an item without an index's keys is not in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteUnits {
    pub table: u64,
    pub indexes: u64,
}

impl WriteUnits {
    pub fn total(self) -> u64 {
        self.table + self.indexes
    }
}

/// The write capacity units of putting `item` (a new item; overwriting one costs the larger of the two).
pub fn write_units(item: &Item) -> WriteUnits {
    let units = |size: usize| size.div_ceil(1024).max(1) as u64;
    WriteUnits {
        table: units(super::codec::item_size(item)),
        indexes: INDEXES
            .iter()
            .filter(|index| item.contains_key(index.partition_key) && item.contains_key(attr::EVENT_SORT_KEY))
            .map(|index| units(super::codec::item_size(&projection(item, index))))
            .sum(),
    }
}

/// What an index holds of an item: its keys and the summary attributes (DynamoDB's INCLUDE projection).
pub fn projection(item: &Item, index: &Index) -> Item {
    SUMMARY_ATTRIBUTES
        .iter()
        .chain(&[attr::ID, index.partition_key, attr::EVENT_SORT_KEY])
        .filter_map(|name| Some(((*name).to_owned(), item.get(*name)?.clone())))
        .collect()
}

/// The ExclusiveStartKey of an index query that goes on after `position`.
pub fn start_key(position: &Position, lookup: Lookup) -> Item {
    use aws_sdk_dynamodb::types::AttributeValue;
    Item::from([
        (attr::ID.to_owned(), AttributeValue::S(position.id.clone())),
        (
            index_of(lookup).partition_key.to_owned(),
            AttributeValue::S(position.index_key.clone()),
        ),
        (
            attr::EVENT_SORT_KEY.to_owned(),
            AttributeValue::S(position.sort_key.clone()),
        ),
    ])
}

/// The position of an index item (or of a LastEvaluatedKey).
pub fn position_of(item: &Item, lookup: Lookup) -> Option<Position> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(text)) => Some(text.clone()),
        _ => None,
    };
    Some(Position {
        id: text(attr::ID)?,
        index_key: text(index_of(lookup).partition_key)?,
        sort_key: text(attr::EVENT_SORT_KEY)?,
    })
}

/// The CreateTable request for a table named `table_name`: on-demand capacity, the key and the indexes above.
pub fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
) -> aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder {
    let string_attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type are set")
    };
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .expect("name and key type are set")
    };
    let mut request = client
        .create_table()
        .table_name(table_name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PARTITION_KEY, KeyType::Hash))
        .attribute_definitions(string_attribute(PARTITION_KEY))
        .attribute_definitions(string_attribute(EVENT_SORT_KEY));
    for index in INDEXES {
        request = request.attribute_definitions(string_attribute(index.partition_key));
        let projection = Projection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(SUMMARY_ATTRIBUTES.iter().map(|a| a.to_string()).collect()))
            .build();
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.partition_key, KeyType::Hash))
                .key_schema(key(EVENT_SORT_KEY, KeyType::Range))
                .projection(projection)
                .build()
                .expect("name, keys and projection are set"),
        );
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_fields_are_stored_cut_with_their_length_and_digest_and_stay_distinct() {
        assert_eq!(stored_field("order-1"), "order-1");
        let at_limit = "x".repeat(MAX_FIELD_BYTES);
        assert_eq!(stored_field(&at_limit), at_limit);
        let long = "é".repeat(210_000);
        let stored = stored_field(&long);
        assert!(stored.len() <= MAX_FIELD_BYTES, "{}", stored.len());
        assert!(stored.starts_with("éé"));
        assert!(stored.contains("[420000 bytes, sha256:"), "{stored}");
        assert_ne!(stored, stored_field(&format!("{long}x")));
    }

    #[test]
    fn write_units_count_each_started_kilobyte_of_the_item_and_of_each_index_entry() {
        use aws_sdk_dynamodb::primitives::Blob;
        use aws_sdk_dynamodb::types::AttributeValue::{B, S};
        // id (2 + 5) + event_sk (8 + 1) + payload (7 + n): 23 + n bytes.
        let item = |payload: usize, order: bool| {
            let mut item = Item::from([
                (attr::ID.to_owned(), S("t:0:1".into())),
                (attr::EVENT_SORT_KEY.to_owned(), S("x".into())),
                (attr::PAYLOAD.to_owned(), B(Blob::new(vec![0; payload]))),
            ]);
            if order {
                item.insert(attr::ORDER_KEY.to_owned(), S("o".into()));
            }
            item
        };
        assert_eq!(write_units(&item(0, false)), WriteUnits { table: 1, indexes: 0 });
        assert_eq!(write_units(&item(1_001, false)).table, 1);
        assert_eq!(write_units(&item(1_002, false)).table, 2);
        assert_eq!(write_units(&item(10 * 1_024, false)).table, 11);
        // The index entry holds the keys and the summary, not the payload: one unit, whatever the payload.
        let indexed = write_units(&item(10 * 1_024, true));
        assert_eq!(indexed, WriteUnits { table: 11, indexes: 1 });
        assert_eq!(indexed.total(), 12);
    }

    #[test]
    fn short_ids_are_their_own_index_key() {
        assert_eq!(index_key("order-1"), "order-1");
        let at_limit = "x".repeat(MAX_INDEX_PARTITION_KEY_BYTES);
        assert_eq!(index_key(&at_limit), at_limit);
    }

    #[test]
    fn over_long_ids_are_hashed_to_a_key_dynamodb_accepts() {
        let long = "9".repeat(MAX_INDEX_PARTITION_KEY_BYTES + 1);
        let key = index_key(&long);
        assert!(key.starts_with("sha256:") && key.len() == 71, "{key}");
        assert_eq!(key, index_key(&long));
        assert_ne!(key, index_key(&format!("{long}0")));
    }

    #[test]
    fn sort_keys_order_by_time_then_id_and_fit_the_limit() {
        let a = event_sort_key("2024-01-01T00:00:00.000000Z", "t:0:9");
        let b = event_sort_key("2024-01-01T00:00:00.000001Z", "t:0:1");
        assert!(a < b);
        let long = event_sort_key("2024-01-01T00:00:00.000000Z", &"t".repeat(2000));
        assert!(long.len() <= MAX_SORT_KEY_BYTES);
    }
}
