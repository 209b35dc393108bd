//! The fixture corpus (`fixtures/messages/*.json`), table-driven: every message is put into a Kafka trigger event
//! exactly as Lambda delivers it (base64 key and value, headers as arrays of signed bytes), decoded, normalized
//! and compared with the record its file expects. The expectations were derived from the record's contract (README, "The record"), not from
//! this code's output.
//!
//! A fixture file holds one message:
//!
//! ```text
//! description       what the case is about
//! topic, partition, offset, timestamp (Kafka epoch ms; -1 for none), timestamp_type (default CREATE_TIME)
//! key               BYTES, null or absent (no key)
//! value             BYTES or null (a tombstone)
//! headers           [{"name": ..., "value": BYTES}], in order; names may repeat
//! topic_services    optional TOPIC_SERVICE_MAP text
//! record_overrides  optional members that replace the trigger record's own (an invalid base64 value, ...)
//! expect            event_type, correlation_id, order_id, customer_id, source_service, event_id (null: absent),
//!                   occurred_at, payload_format, schema_id, warnings (one substring per expected warning: no
//!                   more, no fewer), and optionally payload (BYTES, when it is not the value), kafka_timestamp
//!                   and payload_encoding (how the view shows the payload)
//! ```
//!
//! BYTES is a string (its UTF-8), `{"json": ...}` (the JSON text exactly as written in the file, so numbers and
//! member order are kept), `{"text": ...}`, `{"hex": "00 0a ..."}`, `{"base64": ...}`, `{"concat": [BYTES, ...]}`,
//! `{"repeat": BYTES, "times": N}` (for huge and deep values) or `{"noise": N}` (N bytes that do not compress).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chrono::Utc;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use shared::decode;
use shared::dynamo::codec::{self, StoredPayload};
use shared::dynamo::placement::{self, Layout};
use shared::model::{Data, Notification, PayloadFormat, RenderedPayload};
use shared::normalize::{self, Context, TopicServiceMap};

const RECEIVED_AT: &str = "2030-01-01T00:00:00.000000Z";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    #[allow(dead_code)]
    description: String,
    topic: String,
    partition: i64,
    offset: i64,
    timestamp: i64,
    #[serde(default = "create_time")]
    timestamp_type: String,
    #[serde(default)]
    key: Option<Box<RawValue>>,
    value: Box<RawValue>,
    #[serde(default)]
    headers: Vec<FixtureHeader>,
    #[serde(default)]
    topic_services: String,
    #[serde(default)]
    record_overrides: Map<String, Value>,
    expect: Box<RawValue>,
}

fn create_time() -> String {
    "CREATE_TIME".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureHeader {
    name: String,
    value: Box<RawValue>,
}

/// Every field of `expect` must be written out, so that no expectation is forgotten by omission.
const REQUIRED_EXPECTATIONS: [&str; 10] = [
    "event_type",
    "correlation_id",
    "order_id",
    "customer_id",
    "source_service",
    "event_id",
    "occurred_at",
    "payload_format",
    "schema_id",
    "warnings",
];
const OPTIONAL_EXPECTATIONS: [&str; 3] = ["payload", "kafka_timestamp", "payload_encoding"];

use shared::fixtures::bytes_of;

fn signed_bytes(bytes: &[u8]) -> Value {
    Value::Array(bytes.iter().map(|b| json!(*b as i8)).collect())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One fixture, loaded and run through decode and normalize.
struct Case {
    fixture: Fixture,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    expect: Map<String, Value>,
    /// The raw text of `expect.payload`, when given.
    expected_payload: Option<Option<Vec<u8>>>,
    notification: Notification,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/messages")
}

/// The schemas of a fixture's framed value and key, from `fixtures/schemas` (`{id}.avsc`, `{id}.proto`, ...),
/// through the resolver ingest uses.
fn schemas_for(message: &shared::model::KafkaMessage) -> shared::normalize::Schemas {
    use shared::schema::registry::{SchemaDir, SchemaResolver};
    let dir = SchemaDir::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/schemas"));
    let resolver = SchemaResolver::new(vec![std::sync::Arc::new(dir)], 10);
    let ids = [message.value.as_deref(), message.key.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(shared::schema::schema_ref);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
        .block_on(resolver.resolve(ids, deadline))
}

fn fixture_paths() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures/messages exists")
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
}

/// The trigger event Lambda would send for this fixture, as bytes.
fn trigger_event(
    fixture: &Fixture,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(String, Vec<u8>)],
) -> Vec<u8> {
    let mut record = json!({
        "topic": fixture.topic,
        "partition": fixture.partition,
        "offset": fixture.offset,
        "timestamp": fixture.timestamp,
        "timestampType": fixture.timestamp_type,
        "key": key.map(b64),
        "value": value.map(b64),
        "headers": headers
            .iter()
            .map(|(name, bytes)| Value::Object(Map::from_iter([(name.clone(), signed_bytes(bytes))])))
            .collect::<Vec<_>>(),
    });
    if let Value::Object(members) = &mut record {
        for (name, value) in &fixture.record_overrides {
            members.insert(name.clone(), value.clone());
        }
    }
    let group = format!("{}-{}", fixture.topic, fixture.partition);
    serde_json::to_vec(&json!({
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:eu-west-1:123456789012:cluster/orders/1a2b3c4d-5e6f-4a1b-9c8d-7e6f5a4b3c2d-1",
        "bootstrapServers": "b-1.orders.abc123.c2.kafka.eu-west-1.amazonaws.com:9098",
        "records": Map::from_iter([(group, json!([record]))]),
    }))
    .expect("the event serializes")
}

fn load(path: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read: {e}"))?;
    let fixture: Fixture = serde_json::from_str(&text).map_err(|e| format!("fixture: {e}"))?;
    let key = match &fixture.key {
        Some(raw) => bytes_of(raw).map_err(|e| format!("key: {e}"))?,
        None => None,
    };
    let value = bytes_of(&fixture.value).map_err(|e| format!("value: {e}"))?;
    let mut headers = Vec::new();
    for header in &fixture.headers {
        let bytes = bytes_of(&header.value)
            .map_err(|e| format!("header {}: {e}", header.name))?
            .ok_or_else(|| format!("header {} is null", header.name))?;
        headers.push((header.name.clone(), bytes));
    }
    let expect_members: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(fixture.expect.get()).map_err(|e| format!("expect: {e}"))?;
    for field in REQUIRED_EXPECTATIONS {
        if !expect_members.contains_key(field) {
            return Err(format!("expect.{field} is missing (write null for absent)"));
        }
    }
    for field in expect_members.keys() {
        if !REQUIRED_EXPECTATIONS.contains(&field.as_str()) && !OPTIONAL_EXPECTATIONS.contains(&field.as_str()) {
            return Err(format!("expect.{field} is not an expectation this test knows"));
        }
    }
    let expected_payload = match expect_members.get("payload") {
        Some(raw) => Some(bytes_of(raw).map_err(|e| format!("expect.payload: {e}"))?),
        None => None,
    };
    let expect: Map<String, Value> = serde_json::from_str(fixture.expect.get()).map_err(|e| format!("expect: {e}"))?;

    let event = trigger_event(&fixture, key.as_deref(), value.as_deref(), &headers);
    let decoded = decode::decode_event_bytes(&event).map_err(|e| format!("decode: {e}"))?;
    let [message] = decoded.records.as_slice() else {
        return Err(format!("decoded {} records, expected 1", decoded.records.len()));
    };
    let topic_services = TopicServiceMap::parse(&fixture.topic_services).map_err(|e| format!("topic_services: {e}"))?;
    let received_at = chrono::DateTime::parse_from_rfc3339(RECEIVED_AT)
        .map_err(|e| e.to_string())?
        .with_timezone(&Utc);
    let schemas = schemas_for(message);
    let notification = normalize::normalize(
        message,
        &Context {
            received_at,
            topic_services: &topic_services,
            schemas: &schemas,
        },
    );
    Ok(Case {
        fixture,
        key,
        value,
        headers,
        expect,
        expected_payload,
        notification,
    })
}

/// Runs `check` on every fixture and reports every failure, each with its file name.
fn for_every_fixture(check: fn(&Case) -> Vec<String>) {
    let mut failures = Vec::new();
    let paths = fixture_paths();
    for path in &paths {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        match std::panic::catch_unwind(|| load(path).map(|case| check(&case))) {
            Ok(Ok(problems)) => failures.extend(problems.into_iter().map(|p| format!("{name}: {p}"))),
            Ok(Err(problem)) => failures.push(format!("{name}: {problem}")),
            Err(_) => failures.push(format!("{name}: panicked")),
        }
    }
    assert!(!paths.is_empty(), "no fixtures found in {}", fixtures_dir().display());
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
}

fn expected_text(case: &Case, field: &str) -> Result<Option<String>, String> {
    match case.expect.get(field) {
        Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        other => Err(format!("expect.{field} must be a string or null, found {other:?}")),
    }
}

/// Notes a problem when `actual` and `expected` differ (compared and shown by their debug text).
fn same(problems: &mut Vec<String>, what: &str, actual: &dyn std::fmt::Debug, expected: &dyn std::fmt::Debug) {
    let (actual, expected) = (format!("{actual:?}"), format!("{expected:?}"));
    if actual != expected {
        problems.push(format!("{what} is {actual}, expected {expected}"));
    }
}

fn check_record(case: &Case) -> Vec<String> {
    let n = &case.notification;
    let f = &case.fixture;
    let mut problems = Vec::new();

    // Kafka metadata, exactly as delivered.
    same(
        &mut problems,
        "id",
        &n.id,
        &format!("{}:{}:{}", f.topic, f.partition, f.offset),
    );
    same(&mut problems, "source_topic", &n.source_topic, &f.topic);
    same(&mut problems, "partition", &n.partition, &f.partition);
    same(&mut problems, "offset", &n.offset, &Some(f.offset));
    let kafka_timestamp = match case.expect.get("kafka_timestamp") {
        Some(value) => value.as_i64(),
        None => Some(f.timestamp).filter(|t| *t >= 0),
    };
    same(&mut problems, "kafka_timestamp", &n.kafka_timestamp, &kafka_timestamp);
    same(
        &mut problems,
        "timestamp_type",
        &n.timestamp_type,
        &Some(f.timestamp_type.clone()),
    );
    same(&mut problems, "key", &n.key, &case.key.clone().map(Data::from_bytes));
    let headers: Vec<(String, Vec<u8>)> = n.headers.iter().map(|h| (h.name.clone(), h.value.to_bytes())).collect();
    same(&mut problems, "headers", &headers, &case.headers);
    for (header, (_, bytes)) in n.headers.iter().zip(&case.headers) {
        let as_text = std::str::from_utf8(bytes).is_ok();
        if header.value.as_text().is_some() != as_text {
            problems.push(format!(
                "header {} should be text exactly when it is UTF-8",
                header.name
            ));
        }
    }

    // The extracted fields.
    for (field, actual) in n.fields.named() {
        match expected_text(case, field) {
            Ok(expected) => same(&mut problems, field, &actual, &expected),
            Err(e) => problems.push(e),
        }
    }
    match expected_text(case, "occurred_at") {
        Ok(Some(expected)) => same(&mut problems, "occurred_at", &n.occurred_at, &expected),
        Ok(None) | Err(_) => problems.push("expect.occurred_at must be a time".into()),
    }
    same(&mut problems, "received_at", &n.received_at, &RECEIVED_AT);
    match expected_text(case, "payload_format") {
        Ok(Some(expected)) => same(
            &mut problems,
            "payload_format",
            &n.payload_format.as_str(),
            &expected.as_str(),
        ),
        _ => problems.push("expect.payload_format must be a format".into()),
    }
    same(
        &mut problems,
        "schema_id",
        &n.schema_id.map(u64::from),
        &case.expect["schema_id"].as_u64(),
    );

    // Warnings: each expected substring in its own warning, and no warning unexpected.
    let expected_warnings: Vec<&str> = match case.expect.get("warnings") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut unmatched: Vec<&String> = n.warnings.iter().map(|w| &w.message).collect();
    for expected in &expected_warnings {
        match unmatched.iter().position(|w| w.contains(expected)) {
            Some(at) => {
                unmatched.remove(at);
            }
            None => problems.push(format!("no warning contains {expected:?}; warnings: {unmatched:?}")),
        }
    }
    if !unmatched.is_empty() {
        problems.push(format!("unexpected warnings: {unmatched:?}"));
    }
    problems
}

/// The payload the record must carry: the value, unless the fixture says otherwise.
fn expected_payload(case: &Case) -> Option<Vec<u8>> {
    match &case.expected_payload {
        Some(payload) => payload.clone(),
        None => case.value.clone(),
    }
}

fn check_payload(case: &Case) -> Vec<String> {
    let n = &case.notification;
    let mut problems = Vec::new();
    let expected = expected_payload(case);
    if n.payload != expected {
        problems.push(format!(
            "the payload changed: {} bytes, expected {} bytes",
            n.payload.as_ref().map_or(0, Vec::len),
            expected.as_ref().map_or(0, Vec::len)
        ));
    }

    // Shown for people by the API: JSON as JSON, other text as text, bytes as base64; each gives the bytes back.
    let rendered = n.view().payload;
    let (encoding, shown): (&str, Option<Vec<u8>>) = match &rendered {
        RenderedPayload::Json(raw) => ("json", Some(raw.get().as_bytes().to_vec())),
        RenderedPayload::Text(text) => ("text", Some(text.as_bytes().to_vec())),
        RenderedPayload::Base64(text) => ("base64", base64::engine::general_purpose::STANDARD.decode(text).ok()),
        RenderedPayload::None(()) => ("none", None),
        RenderedPayload::Url(url) => ("url", Some(url.as_bytes().to_vec())),
    };
    let default_encoding = match n.payload_format {
        PayloadFormat::Json | PayloadFormat::ConfluentJson => "json",
        PayloadFormat::Tombstone => "none",
        _ if expected.as_deref().is_some_and(|p| std::str::from_utf8(p).is_ok()) => "text",
        _ => "base64",
    };
    let expected_encoding = case
        .expect
        .get("payload_encoding")
        .and_then(Value::as_str)
        .unwrap_or(default_encoding);
    if encoding != expected_encoding {
        problems.push(format!(
            "the payload is shown as {encoding}, expected {expected_encoding}"
        ));
    }
    let body_shown = match (&rendered, &expected) {
        // JSON is shown from the document itself: after the Confluent header, without a BOM or outer white space.
        (RenderedPayload::Json(_), Some(bytes)) => {
            let body = if n.payload_format == PayloadFormat::ConfluentJson {
                bytes.get(5..).unwrap_or_default()
            } else {
                bytes
            };
            let text = String::from_utf8_lossy(body);
            Some(text.trim_start_matches('\u{feff}').trim().as_bytes().to_vec())
        }
        _ => expected.clone(),
    };
    if shown != body_shown {
        problems.push(format!(
            "the payload is shown as {encoding} but does not give its bytes back"
        ));
    }

    // Stored: inline, compressed or in S3, it reads back byte for byte.
    let layout = Layout {
        bucket: Some("payloads-bucket".into()),
        ..Layout::default()
    };
    match placement::prepare(n, &layout, 1_893_456_000) {
        Err(e) => problems.push(format!("the item could not be laid out: {e}")),
        Ok(prepared) => match codec::record_from_item(&prepared.item.to_item()) {
            Err(e) => problems.push(format!("the item does not read back: {e}")),
            Ok(stored) => {
                let back = match stored.payload {
                    StoredPayload::None => None,
                    StoredPayload::Inline(bytes) => Some(bytes),
                    StoredPayload::Zstd(bytes) => codec::decompress(&bytes, 64 << 20).ok(),
                    StoredPayload::S3(pointer) => prepared
                        .blobs
                        .iter()
                        .find(|blob| blob.key == pointer.key)
                        .map(|blob| blob.bytes.clone()),
                };
                if back != expected {
                    problems.push("the stored payload does not read back byte for byte".into());
                }
                if stored.summary != n.summary() {
                    problems.push("the stored summary differs from the record's".into());
                }
            }
        },
    }
    problems
}

#[test]
fn every_fixture_message_becomes_the_record_its_file_expects() {
    for_every_fixture(check_record);
}

#[test]
fn every_fixture_payload_comes_back_byte_for_byte_shown_and_stored() {
    for_every_fixture(check_payload);
}

#[test]
fn the_fixture_corpus_holds_at_least_forty_five_messages() {
    let count = fixture_paths().len();
    assert!(count >= 45, "only {count} fixtures");
}

#[test]
fn a_fixture_that_expects_the_wrong_record_is_caught() {
    // The checks above must be able to fail: a copy of a fixture with one wrong expectation is reported.
    let path = fixtures_dir().join("naming-camel-case.json");
    let mut case = load(&path).expect("the fixture loads");
    assert!(check_record(&case).is_empty());
    case.expect.insert("order_id".into(), json!("not-the-order"));
    case.expect
        .insert("warnings".into(), json!(["a warning that never comes"]));
    let problems = check_record(&case);
    assert_eq!(problems.len(), 2, "{problems:?}");
    case.expected_payload = Some(Some(b"other bytes".to_vec()));
    assert!(!check_payload(&case).is_empty());
}

/// The items the corpus gives, in DynamoDB JSON: every attribute's type and value, a large binary one by its
/// length and SHA-256, and the S3 objects each item needs. Recorded before the store moved behind domain ports,
/// which changed none of them; recorded again when warnings stopped quoting values, which changed only the
/// warnings of three fixtures. Recorded by `RECORD_GOLDEN_ITEMS=1 cargo test -p notifications-shared --test
/// fixtures recorded_item`: a change here is a change to what is stored, made on purpose.
const GOLDEN_ITEMS: &str = "../fixtures/items.json";

fn attribute_json(value: &aws_sdk_dynamodb::types::AttributeValue) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    use sha2::Digest as _;
    match value {
        A::S(text) => json!({ "S": text }),
        A::N(number) => json!({ "N": number }),
        A::B(blob) if blob.as_ref().len() <= 256 => json!({ "B": b64(blob.as_ref()) }),
        A::B(blob) => json!({ "B": {
            "len": blob.as_ref().len(),
            "sha256": hex::encode(sha2::Sha256::digest(blob.as_ref())),
        }}),
        A::L(list) => json!({ "L": list.iter().map(attribute_json).collect::<Vec<_>>() }),
        A::M(map) => json!({ "M": map
            .iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect::<BTreeMap<_, _>>() }),
        A::Bool(flag) => json!({ "BOOL": flag }),
        A::Null(_) => json!({ "NULL": true }),
        other => json!({ "unexpected": format!("{other:?}") }),
    }
}

fn golden_of(case: &Case) -> Value {
    use sha2::Digest as _;
    let layout = Layout {
        bucket: Some("payloads-bucket".into()),
        retention_seconds: Some(30 * 86_400),
        ..Layout::default()
    };
    match placement::prepare(&case.notification, &layout, 1_893_456_000) {
        Err(e) => json!({ "error": e.to_string() }),
        Ok(prepared) => json!({
            "item": prepared
                .item
                .iter()
                .map(|(k, v)| (k, attribute_json(v)))
                .collect::<BTreeMap<_, _>>(),
            "objects": prepared
                .blobs
                .iter()
                .map(|blob| json!({
                    "key": blob.key,
                    "len": blob.bytes.len(),
                    "sha256": blob.sha256,
                    "content_sha256": hex::encode(sha2::Sha256::digest(&blob.bytes)),
                }))
                .collect::<Vec<_>>(),
        }),
    }
}

#[test]
fn every_fixture_gives_exactly_its_recorded_item() {
    let mut actual = BTreeMap::new();
    for path in fixture_paths() {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let case = load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        actual.insert(name, golden_of(&case));
    }
    let golden_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN_ITEMS);
    if std::env::var_os("RECORD_GOLDEN_ITEMS").is_some() {
        let text = serde_json::to_string_pretty(&actual).expect("items serialize") + "\n";
        std::fs::write(&golden_path, text).expect("the golden file is writable");
    }
    let recorded: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(&golden_path).expect("fixtures/items.json exists"))
            .expect("fixtures/items.json is JSON");
    assert_eq!(recorded.len(), actual.len(), "fixtures added or removed: record again");
    let differing: Vec<String> = actual
        .iter()
        .filter(|(name, item)| recorded.get(*name) != Some(*item))
        .map(|(name, item)| {
            format!(
                "{name}: now {item}\n  was {}",
                recorded.get(name).unwrap_or(&Value::Null)
            )
        })
        .collect();
    assert!(
        differing.is_empty(),
        "{} items changed:\n{}",
        differing.len(),
        differing.join("\n")
    );
}
