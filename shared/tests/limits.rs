//! The item limit, whatever the record: no extracted field, warning, key or header can make an item (or an
//! index's projection of it) larger than DynamoDB takes, so no content can make a write be refused and stall its
//! partition.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;
use shared::dynamo::codec;
use shared::dynamo::placement::{self, Layout};
use shared::dynamo::table::{index_key, projection, INDEXES, MAX_INDEX_PARTITION_KEY_BYTES};
use shared::model::{KafkaMessage, MAX_WARNINGS};
use shared::normalize::{self, Context, TopicServiceMap};

/// A text of one of the sizes that matter: small, just over the stored field limit, over DynamoDB's index key
/// limit, and over the item limit.
fn sized_text() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![1usize, 1_025, 3_000, 420_000]),
        prop::sample::select(vec!['9', 'é', 'x']),
    )
        .prop_map(|(bytes, c)| std::iter::repeat_n(c, bytes / c.len_utf8()).collect())
}

/// A record whose every field may be huge: ids, event type, source, time, key, header names and values, and
/// many malformed headers (each a warning).
fn huge_record() -> impl Strategy<Value = KafkaMessage> {
    (
        prop::collection::vec(sized_text(), 7),
        prop::option::of(sized_text()),
        prop::collection::vec((sized_text(), sized_text()), 0..3),
        0usize..80,
    )
        .prop_map(|(texts, key, headers, bad_headers)| {
            let value = json!({
                "orderId": texts[0], "customerId": texts[1], "correlationId": texts[2], "eventType": texts[3],
                "source": texts[4], "eventId": texts[5], "occurredAt": texts[6],
            });
            let mut headers: Vec<(String, Vec<u8>)> = headers
                .into_iter()
                .map(|(name, value)| (name, value.into_bytes()))
                .collect();
            // Header values that are not UTF-8 under an id's name: a warning each.
            headers.extend((0..bad_headers).map(|i| (format!("order-id-{i}"), vec![0xff, 0xfe])));
            headers.extend((0..bad_headers).map(|_| ("correlation_id".to_owned(), vec![0xc3, 0x28])));
            KafkaMessage {
                topic: "orders".into(),
                partition: 0,
                offset: Some(1),
                timestamp: Some(1_709_287_200_000),
                timestamp_type: Some("CREATE_TIME".into()),
                key: key.map(String::into_bytes),
                value: Some(serde_json::to_vec(&value).unwrap()),
                headers,
                warnings: Vec::new(),
                fingerprint: String::new(),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the record, its item and each index's projection of it stay under the configured maximum:
    /// no content can make DynamoDB refuse the write (ValidationException) and stall its partition.
    #[test]
    fn every_item_and_every_index_projection_stays_under_the_item_limit(message in huge_record()) {
        let services = TopicServiceMap::default();
        let context = Context {
            received_at: Utc.timestamp_opt(1_900_000_000, 0).unwrap(),
            topic_services: &services,
            schemas: shared::normalize::Schemas::none(),
        };
        let n = normalize::normalize(&message, &context);
        prop_assert!(n.warnings.len() <= MAX_WARNINGS, "{} warnings", n.warnings.len());
        for warning in &n.warnings {
            prop_assert!(warning.message.len() <= 512, "a warning of {} bytes", warning.message.len());
        }
        let layout = Layout {
            bucket: Some("payloads".into()),
            ..Layout::default()
        };
        let prepared = placement::prepare(&n, &layout, 1_900_000_000).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let size = prepared.item.size();
        prop_assert_eq!(size, codec::item_size(&prepared.item.to_item()), "the item's size as written and as read back");
        prop_assert!(size <= layout.max_item_bytes, "an item of {size} bytes");
        for index in INDEXES.iter() {
            let projected = codec::item_size(&projection(&prepared.item.to_item(), index));
            prop_assert!(projected <= layout.max_item_bytes, "{}: a projection of {projected} bytes", index.name);
        }
        for field in [&n.fields.order_id, &n.fields.customer_id, &n.fields.correlation_id] {
            let key = field.as_deref().map(index_key);
            prop_assert!(key.is_none_or(|k| k.len() <= MAX_INDEX_PARTITION_KEY_BYTES));
        }
    }
}
