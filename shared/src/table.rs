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

/// The table's partition key.
pub const PARTITION_KEY: &str = "id";
/// The sort key of every index.
pub const EVENT_SORT_KEY: &str = "event_sk";
/// The TTL attribute, present when a retention period is configured.
pub const TTL_ATTRIBUTE: &str = "expires_at";

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

/// The three ways to list notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup {
    Order,
    Correlation,
    Customer,
}

pub const INDEXES: [Index; 3] = [
    Index {
        lookup: Lookup::Order,
        name: "by_order",
        partition_key: "order_key",
        field: "order_id",
    },
    Index {
        lookup: Lookup::Correlation,
        name: "by_correlation",
        partition_key: "correlation_key",
        field: "correlation_id",
    },
    Index {
        lookup: Lookup::Customer,
        name: "by_customer",
        partition_key: "customer_key",
        field: "customer_id",
    },
];

impl Lookup {
    pub fn index(self) -> &'static Index {
        match self {
            Lookup::Order => &INDEXES[0],
            Lookup::Correlation => &INDEXES[1],
            Lookup::Customer => &INDEXES[2],
        }
    }
}

/// Non-key attributes every index projects: the summary of BRIEF §3 (no payload, no headers).
pub const SUMMARY_ATTRIBUTES: [&str; 18] = [
    "source_topic",
    "partition",
    "offset",
    "kafka_timestamp",
    "timestamp_type",
    "key",
    "event_type",
    "correlation_id",
    "order_id",
    "customer_id",
    "source_service",
    "event_id",
    "occurred_at",
    "received_at",
    "payload_format",
    "payload_size",
    "schema_id",
    "warnings",
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
