//! `notifications normalize`, run as users run it: the built binary, the value on standard input, the record
//! printed as JSON.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// Runs `notifications normalize ARGS` with `stdin` as the value.
fn normalize(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_notifications"))
        .arg("normalize")
        .args(args)
        .env_remove("TOPIC_SERVICE_MAP")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the notifications binary runs");
    // A tombstone run does not read standard input and may exit before it is written: that is not an error.
    let _ = child.stdin.take().expect("stdin is piped").write_all(stdin);
    child.wait_with_output().expect("the command finishes")
}

fn printed(output: &Output) -> String {
    assert!(
        output.status.success(),
        "the command failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("the output is UTF-8")
}

/// The printed record, with the payload kept as the exact text that was printed.
#[derive(Deserialize)]
struct Printed {
    payload: Box<RawValue>,
}

#[test]
fn normalize_prints_the_record_of_a_json_value_with_its_key_and_repeated_headers() {
    let value = r#"{"eventType": "OrderCreated", "orderId": 123456789012345678901234567890, "data": {"customerId": "C-1", "total": 12.50}}"#;
    let output = normalize(
        &[
            "--topic",
            "orders",
            "--key",
            "ORD-1",
            "--partition",
            "2",
            "--offset",
            "42",
            "--timestamp",
            "1709287200997",
            "--header",
            "correlation_id=corr-1",
            "--header",
            "correlation_id=corr-2",
            "--header",
            "x-query=a=b",
        ],
        value.as_bytes(),
    );
    let text = printed(&output);
    let record: Value = serde_json::from_str(&text).expect("the output is JSON");
    assert_eq!(record["id"], "orders:2:42");
    assert_eq!(record["source_topic"], "orders");
    assert_eq!(record["partition"], 2);
    assert_eq!(record["offset"], 42);
    assert_eq!(record["kafka_timestamp"], 1_709_287_200_997_i64);
    assert_eq!(record["key"], "ORD-1");
    assert_eq!(record["event_type"], "OrderCreated");
    assert_eq!(record["order_id"], "123456789012345678901234567890");
    assert_eq!(record["customer_id"], "C-1");
    assert_eq!(
        record["correlation_id"], "corr-1",
        "the first of repeated headers gives the id"
    );
    assert_eq!(record["occurred_at"], "2024-03-01T10:00:00.997000Z");
    assert_eq!(record["payload_format"], "json");
    assert_eq!(record["payload_encoding"], "json");
    assert_eq!(
        record["payload"]["eventType"], "OrderCreated",
        "the payload is shown as JSON, not as a string"
    );
    assert_eq!(
        record["headers"],
        serde_json::json!([
            {"name": "correlation_id", "value": "corr-1"},
            {"name": "correlation_id", "value": "corr-2"},
            {"name": "x-query", "value": "a=b"},
        ])
    );
    assert!(record.get("source_service").is_none(), "absent, not null or empty");
    assert!(record.get("event_id").is_none());
    // The payload is the value exactly as it came: the 30-digit number is not rounded, 12.50 keeps its zero.
    let exact: Printed = serde_json::from_str(&text).expect("the output is JSON");
    assert_eq!(exact.payload.get(), value);
}

#[test]
fn normalize_shows_a_text_value_as_text_with_ids_from_headers_and_the_service_from_the_map() {
    let output = normalize(
        &[
            "--topic",
            "legacy.orders",
            "--timestamp",
            "0",
            "--header",
            "orderId=O-9",
            "--service-map",
            "legacy.*=legacy-app",
        ],
        b"order O-9 accepted",
    );
    let record: Value = serde_json::from_str(&printed(&output)).expect("the output is JSON");
    assert_eq!(record["payload_format"], "text");
    assert_eq!(record["payload_encoding"], "text");
    assert_eq!(record["payload"], "order O-9 accepted");
    assert_eq!(record["order_id"], "O-9");
    assert_eq!(record["source_service"], "legacy-app");
    assert_eq!(record["occurred_at"], "1970-01-01T00:00:00.000000Z");
    assert!(record.get("key").is_none(), "no --key, no key");
}

#[test]
fn normalize_shows_bytes_that_are_not_utf8_as_base64() {
    let output = normalize(&["--topic", "media", "--timestamp", "1"], &[0xff, 0x00, 0xfe]);
    let record: Value = serde_json::from_str(&printed(&output)).expect("the output is JSON");
    assert_eq!(record["payload_format"], "binary");
    assert_eq!(record["payload_encoding"], "base64");
    assert_eq!(record["payload"], "/wD+");
}

#[test]
fn normalize_shows_a_tombstone_without_a_payload() {
    let output = normalize(
        &["--topic", "orders.state", "--key", "ORD-1", "--tombstone"],
        b"ignored",
    );
    let record: Value = serde_json::from_str(&printed(&output)).expect("the output is JSON");
    assert_eq!(record["payload_format"], "tombstone");
    assert_eq!(record["payload_encoding"], "none");
    assert_eq!(record["payload"], Value::Null);
    assert_eq!(record["payload_size"], 0);
    assert_eq!(record["key"], "ORD-1");
}

#[test]
fn normalize_rejects_a_header_that_is_not_name_equals_value() {
    let output = normalize(&["--topic", "orders", "--header", "no-equals-sign"], b"{}");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("NAME=VALUE"), "{stderr}");
}
