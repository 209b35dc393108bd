//! Bad input through the real ingest handler against a real moto server: malformed records are all stored
//! (with warnings), and envelopes that are not Kafka events are rejected with a clear error. Nothing panics.

use std::time::Duration;

use ingest::handler::IngestError;
use integration_tests::TestEnv;
use serde_json::{json, Value};

const BUDGET: Duration = Duration::from_secs(60);

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
    let b64 = |bytes: &[u8]| shared::item::b64(bytes);
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
        .process(&event, BUDGET)
        .await
        .expect("a record's content never fails a batch");
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(summary.records, count);
    assert_eq!(summary.stored, count, "{summary:?}");
    assert!(summary.warnings >= 40, "malformed records carry warnings: {summary:?}");
    assert_eq!(env.count_items().await, count);
    // Delivered again: still one item per record, even for those identified by digest.
    ingest.process(&event, BUDGET).await.unwrap();
    assert_eq!(env.count_items().await, count);
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
    let (_, summary) = ingest.process(&event, BUDGET).await.unwrap();
    assert_eq!(summary.records, 6);
    assert_eq!(summary.stored, 6);
    assert_eq!(env.count_items().await, 6);
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
    for (event, expected) in cases {
        match ingest.process(&event, BUDGET).await {
            Err(err @ IngestError::NotKafka(_)) => {
                let message = err.to_string();
                assert!(message.contains(expected), "{event}: {message}");
                assert!(message.starts_with("not a Kafka trigger event"), "{message}");
            }
            other => panic!("{event} was not rejected: {other:?}"),
        }
    }
    assert_eq!(env.count_items().await, 0);
}
