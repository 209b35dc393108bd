//! Bad input through the real ingest handler against a real moto server: malformed records are all stored
//! (with warnings), and envelopes that are not Kafka events are rejected with a clear error. Nothing panics.
//!
//! Every case goes through both entry points: `Ingest::process` on a parsed event (what the local event source
//! mapping calls) and `handle` on the event's bytes, decoded while the runtime deserializes them into
//! `KafkaTrigger` (what the deployed function runs). Both must store the same items and give the same errors.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use ingest::handler::{handle, Ingest, IngestError, Response};
use integration_tests::{event_bytes, TestEnv};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use shared::decode::KafkaTrigger;

const BUDGET: Duration = Duration::from_secs(60);

/// The deployed function's path: the event's bytes, as the Lambda runtime receives them, deserialized into
/// `KafkaTrigger` (records decoded while parsed) and handed to `handle`.
async fn through_runtime(ingest: &Ingest, event: &Value) -> Result<Response, IngestError> {
    let bytes = serde_json::to_vec(event).expect("serializable");
    let trigger: KafkaTrigger =
        serde_json::from_slice(&bytes).expect("any JSON deserializes to a trigger or its error");
    handle(ingest, LambdaEvent::new(trigger, Context::default())).await
}

/// Every item of the table by id, without the attributes that depend on when it was stored.
async fn items_by_id(env: &TestEnv) -> BTreeMap<String, BTreeMap<String, AttributeValue>> {
    let pages = env.scan(|s| s).await;
    pages
        .iter()
        .flat_map(|page| page.items())
        .map(|item| {
            let mut item: BTreeMap<String, AttributeValue> = item.clone().into_iter().collect();
            item.remove("received_at");
            item.remove("expires_at");
            // A record with no time of its own takes the time it was received, which differs between two runs.
            let received = |v: &AttributeValue| v.as_s().is_ok_and(|w| w.contains("occurred_at is the receive time"));
            if let Some(AttributeValue::L(warnings)) = item.get("warnings") {
                if warnings.iter().any(received) {
                    item.remove("occurred_at");
                    item.remove("event_sk");
                }
            }
            let id = item.get("id").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            (id, item)
        })
        .collect()
}

/// Malformed record entries, each distinct, each one record.
fn malformed_records() -> Vec<Value> {
    let good = |offset: i64| {
        json!({"topic": "bad", "partition": 0, "offset": offset, "timestamp": 1_700_000_000_000i64,
               "timestampType": "CREATE_TIME", "key": "aw==", "value": "e30=", "headers": []})
    };
    let with = |offset: i64, field: &str, value: Value| {
        let mut record = good(offset);
        record[field] = value;
        record
    };
    let without = |offset: i64, field: &str| {
        let mut record = good(offset);
        record.as_object_mut().unwrap().remove(field);
        record
    };
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let b64 = |bytes: &[u8]| shared::dynamo::codec::b64(bytes);
    vec![
        // Values and keys that are not base64, or not strings.
        with(1, "value", json!("!!!not base64!!!")),
        with(2, "value", json!("abc")),
        with(3, "value", json!("====")),
        with(4, "value", json!("ünïcödé")),
        with(5, "value", json!(12345)),
        with(6, "value", json!({"an": "object"})),
        with(7, "value", json!([1, 2, 3])),
        with(8, "value", json!(true)),
        with(9, "key", json!("%%%")),
        with(10, "key", json!(99)),
        with(11, "key", json!({"k": 1})),
        // Headers in every wrong shape.
        with(12, "headers", json!({"not": "an array"})),
        with(13, "headers", json!("headers")),
        with(14, "headers", json!(7)),
        with(15, "headers", json!(["a string entry", 5, null, [1, 2]])),
        with(16, "headers", json!([{"h": [300, -200, 5]}])),
        with(17, "headers", json!([{"h": [1.5, 2.5]}])),
        with(18, "headers", json!([{"h": ["a", "b"]}])),
        with(19, "headers", json!([{"h": [[1], [2]]}])),
        with(20, "headers", json!([{"h": "plain string"}])),
        with(21, "headers", json!([{"h": 42}])),
        with(22, "headers", json!([{"h": {"nested": true}}])),
        with(23, "headers", json!([{"h": null}])),
        with(24, "headers", json!([{}, {"a": [65], "b": [66]}])),
        // Partition, offset and timestamp in every wrong shape.
        with(25, "partition", json!("7")),
        with(26, "partition", json!("seven")),
        with(27, "partition", json!(1.5)),
        with(28, "partition", json!(null)),
        with(29, "partition", json!(u64::MAX)),
        without(30, "partition"),
        with(31, "timestamp", json!("yesterday")),
        with(32, "timestamp", json!(-5)),
        with(33, "timestamp", json!(1.5e300)),
        with(34, "timestamp", json!(i64::MAX)),
        without(35, "timestamp"),
        with(36, "timestampType", json!(3)),
        with(37, "timestampType", json!({"t": 1})),
        with(38, "topic", json!("")),
        with(39, "topic", json!(17)),
        without(40, "topic"),
        with(41, "topic", json!("t".repeat(1_000))),
        // Offsets that cannot be used: the record is still kept, under a digest of what was delivered.
        json!({"topic": "bad", "partition": 0, "value": "YQ==", "headers": [], "timestamp": 1}),
        json!({"topic": "bad", "partition": 0, "offset": -1, "value": "Yg==", "headers": [], "timestamp": 1}),
        json!({"topic": "bad", "partition": 0, "offset": "twelve", "value": "Yw==", "headers": [], "timestamp": 1}),
        json!({"topic": "bad", "partition": 0, "offset": 1.25, "value": "ZA==", "headers": [], "timestamp": 1}),
        json!({"topic": "bad", "partition": 0, "offset": null, "value": "ZQ==", "headers": [], "timestamp": 1}),
        json!({"topic": "bad", "partition": 0, "offset": u64::MAX, "value": "Zg==", "headers": [], "timestamp": 1}),
        // Records that are not even objects.
        json!("a record that is a string"),
        json!(404),
        json!(null),
        json!([1, 2, 3]),
        json!({}),
        json!(false),
        // Values whose bytes are nasty.
        with(60, "value", json!(b64(deep.as_bytes()))),
        with(61, "value", json!(b64(&[0xff, 0xfe, 0xfd, 0x00]))),
        with(
            62,
            "value",
            json!(b64(b"{\"orderId\": {\"nested\": 1}, \"time\": \"not a time\"}")),
        ),
        with(
            63,
            "value",
            json!(b64(
                b"{\"orderId\": 1e999999, \"customerId\": 123456789012345678901234567890}"
            )),
        ),
        with(64, "value", json!(b64(b"\x00\x00\x00\x00"))),
        with(65, "value", json!(b64(b"\x00\x00\x00\x00\x01not json"))),
        with(66, "value", json!(b64("\u{feff}{\"orderId\":\"bom\"}".as_bytes()))),
        with(67, "value", json!(b64(b"\"{\\\"orderId\\\":\\\"double\\\"}\""))),
    ]
}

#[tokio::test]
async fn every_malformed_record_is_stored_with_warnings_and_nothing_panics() {
    let env = TestEnv::new().await;
    let ingest = env.ingest(&[]);
    let records = malformed_records();
    assert!(records.len() >= 50, "{} malformed records", records.len());
    let count = records.len();
    let event = json!({"eventSource": "aws:kafka", "eventSourceArn": "arn:aws:kafka:x", "records": {"bad-0": records}});
    let (response, summary) = ingest
        .process(event_bytes(&event), BUDGET)
        .await
        .expect("a record's content never fails a batch");
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(summary.records, count);
    assert_eq!(summary.stored, count, "{summary:?}");
    assert!(summary.warnings >= 40, "malformed records carry warnings: {summary:?}");
    assert_eq!(env.count_items().await, count);
    // Delivered again: still one item per record, even for those identified by digest.
    ingest.process(event_bytes(&event), BUDGET).await.unwrap();
    assert_eq!(env.count_items().await, count);

    // The deployed function's path stores exactly the same items.
    let runtime_env = TestEnv::new().await;
    let response = through_runtime(&runtime_env.ingest(&[]), &event)
        .await
        .expect("a record's content never fails a batch");
    assert!(response.batch_item_failures.is_empty());
    let (parsed, streamed) = (items_by_id(&env).await, items_by_id(&runtime_env).await);
    assert_eq!(streamed.len(), count);
    for (id, item) in &parsed {
        assert_eq!(
            streamed.get(id),
            Some(item),
            "record {id} differs between the two entry points"
        );
    }
}

#[tokio::test]
async fn groups_that_are_not_arrays_and_odd_group_keys_are_still_stored() {
    let env = TestEnv::new().await;
    let ingest = env.ingest(&[]);
    let record = |offset: i64| json!({"topic": "t", "partition": 0, "offset": offset, "timestamp": 1, "value": "e30=", "headers": []});
    let event = json!({"eventSource": "SelfManagedKafka", "records": {
        "": [record(1)],
        "no-partition-number": [record(2)],
        "t--1": [record(3)],
        "an-object-0": {"topic": "t", "partition": 0, "offset": 4},
        "a-string-0": "junk",
        "a-null-0": null,
        "empty-0": [],
    }});
    let (_, summary) = ingest.process(event_bytes(&event), BUDGET).await.unwrap();
    assert_eq!(summary.records, 6);
    assert_eq!(summary.stored, 6);
    assert_eq!(env.count_items().await, 6);

    let runtime_env = TestEnv::new().await;
    through_runtime(&runtime_env.ingest(&[]), &event).await.unwrap();
    assert_eq!(items_by_id(&runtime_env).await, items_by_id(&env).await);
}

#[tokio::test]
async fn envelopes_that_are_not_kafka_events_are_rejected_with_a_clear_error() {
    let env = TestEnv::new().await;
    let ingest = env.ingest(&[]);
    let cases = vec![
        (json!({}), "no eventSource"),
        (json!([]), "not a JSON object"),
        (json!("text"), "not a JSON object"),
        (json!(42), "not a JSON object"),
        (Value::Null, "not a JSON object"),
        (json!({"eventSource": 5}), "only takes Kafka trigger events"),
        (json!({"eventSource": null}), "only takes Kafka trigger events"),
        (json!({"eventSource": "aws:sqs", "Records": []}), "aws:sqs"),
        (
            json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}),
            "no eventSource",
        ),
        (
            json!({"Records": [{"eventSource": "aws:s3", "s3": {}}]}),
            "no eventSource",
        ),
        (json!({"eventSource": "aws:kinesis", "records": {}}), "aws:kinesis"),
        (json!({"eventSource": "aws:dynamodb"}), "aws:dynamodb"),
        (json!({"eventSource": "AWS:KAFKA", "records": {}}), "AWS:KAFKA"),
        (
            json!({"version": "2.0", "routeKey": "GET /", "rawPath": "/", "requestContext": {}}),
            "no eventSource",
        ),
        (
            json!({"eventSource": "aws:kafka", "records": [1, 2]}),
            "records must be an object",
        ),
        (
            json!({"eventSource": "aws:kafka", "records": "x"}),
            "records must be an object",
        ),
        (
            json!({"eventSource": "aws:kafka", "records": 7}),
            "records must be an object",
        ),
        (
            json!({"source": "aws.events", "detail-type": "Scheduled Event"}),
            "no eventSource",
        ),
    ];
    let check = |event: &Value, expected: &str, path: &str, result: Result<String, String>| match result {
        Err(message) => {
            assert!(message.contains(expected), "{path}: {event}: {message}");
            assert!(message.starts_with("not a Kafka trigger event"), "{path}: {message}");
        }
        Ok(other) => panic!("{path}: {event} was not rejected: {other}"),
    };
    let rejection = |result: Result<String, IngestError>| match result {
        Err(err @ IngestError::NotKafka(_)) => Err(err.to_string()),
        Err(other) => Ok(format!("another error: {other}")),
        Ok(done) => Ok(done),
    };
    for (event, expected) in cases {
        let parsed = ingest
            .process(event_bytes(&event), BUDGET)
            .await
            .map(|r| format!("{:?}", r.0));
        check(&event, expected, "parsed", rejection(parsed));
        let streamed = through_runtime(&ingest, &event).await.map(|r| format!("{r:?}"));
        check(&event, expected, "runtime", rejection(streamed));
    }
    assert_eq!(env.count_items().await, 0);
}
