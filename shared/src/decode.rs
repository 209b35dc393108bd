//! Decoding of the event an MSK or self-managed Kafka trigger sends to Lambda.
//!
//! The envelope must be a Kafka event (a clear [`EventError`] otherwise). Inside it, every record is kept:
//! a record that does not match `aws_lambda_events`' `KafkaRecord` shape is read field by field, and whatever
//! cannot be read becomes a warning on the record instead of an error.

use aws_lambda_events::event::kafka::KafkaRecord;
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::model::KafkaMessage;

/// The `eventSource` values of Lambda's Kafka triggers.
pub const EVENT_SOURCES: [&str; 2] = ["aws:kafka", "SelfManagedKafka"];

/// Why an event is not a Kafka event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("the event is not JSON: {0}")]
    NotJson(String),
    #[error("the event is not a JSON object but {0}")]
    NotAnObject(&'static str),
    #[error("the event has no eventSource; expected one of {EVENT_SOURCES:?} (is this a Kafka trigger?)")]
    MissingEventSource,
    #[error(
        "the event source is {0:?}, expected one of {EVENT_SOURCES:?}: this function only takes Kafka trigger events"
    )]
    WrongEventSource(String),
    #[error("the event's records must be an object of topic-partition arrays, found {0}")]
    BadRecords(&'static str),
}

/// A decoded trigger event: its source and its records in delivery order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedEvent {
    pub event_source: String,
    pub event_source_arn: Option<String>,
    /// Records grouped by `topic-partition` in the event's order, each group in offset order as delivered.
    pub records: Vec<KafkaMessage>,
}

/// Decodes raw event bytes.
pub fn decode_event_bytes(bytes: &[u8]) -> Result<DecodedEvent, EventError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| EventError::NotJson(e.to_string()))?;
    decode_event(&value)
}

/// Decodes an event already parsed as JSON.
pub fn decode_event(event: &Value) -> Result<DecodedEvent, EventError> {
    let object = event.as_object().ok_or(EventError::NotAnObject(kind(event)))?;
    let source = match object.get("eventSource") {
        Some(Value::String(source)) => source.clone(),
        Some(other) => return Err(EventError::WrongEventSource(other.to_string())),
        None => return Err(EventError::MissingEventSource),
    };
    if !EVENT_SOURCES.contains(&source.as_str()) {
        return Err(EventError::WrongEventSource(source));
    }
    let event_source_arn = object.get("eventSourceArn").and_then(Value::as_str).map(str::to_owned);
    let groups = match object.get("records") {
        Some(Value::Object(groups)) => groups,
        // A trigger never sends an empty batch, but an empty or null one is nothing to store, not an error.
        Some(Value::Null) | None => {
            return Ok(DecodedEvent {
                event_source: source,
                event_source_arn,
                records: Vec::new(),
            })
        }
        Some(other) => return Err(EventError::BadRecords(kind(other))),
    };
    let mut records = Vec::new();
    for (group, entries) in groups {
        match entries {
            Value::Array(entries) => {
                for entry in entries {
                    records.push(decode_record(group, entry));
                }
            }
            other => {
                // Keep even this: a record standing for the unreadable group, so nothing vanishes silently.
                records.push(decode_record(group, other));
            }
        }
    }
    Ok(DecodedEvent {
        event_source: source,
        event_source_arn,
        records,
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Splits a `topic-partition` group key at its last dash.
fn split_group(group: &str) -> (Option<&str>, Option<i64>) {
    match group.rsplit_once('-') {
        Some((topic, partition)) => match partition.parse() {
            Ok(p) => (Some(topic), Some(p)),
            Err(_) => (Some(group), None),
        },
        None => (Some(group).filter(|g| !g.is_empty()), None),
    }
}

fn fingerprint(entry: &Value) -> String {
    let digest = Sha256::digest(entry.to_string().as_bytes());
    hex::encode(&digest[..16])
}

/// Decodes one record. Never fails: what cannot be read is recorded as a warning.
pub fn decode_record(group: &str, entry: &Value) -> KafkaMessage {
    let fingerprint = fingerprint(entry);
    if let Ok(typed) = serde_json::from_value::<KafkaRecord>(entry.clone()) {
        return from_typed(group, typed, fingerprint);
    }
    from_untyped(group, entry, fingerprint)
}

fn decode_base64(field: &str, text: &str, warnings: &mut Vec<String>) -> Vec<u8> {
    match base64::engine::general_purpose::STANDARD.decode(text) {
        Ok(bytes) => bytes,
        Err(err) => {
            warnings.push(format!("{field} is not valid base64 ({err}); stored as received"));
            text.as_bytes().to_vec()
        }
    }
}

fn from_typed(group: &str, record: KafkaRecord, fingerprint: String) -> KafkaMessage {
    let mut warnings = Vec::new();
    let (group_topic, group_partition) = split_group(group);
    let topic = match record.topic.filter(|t| !t.is_empty()) {
        Some(topic) => topic,
        None => {
            warnings.push("record has no topic; taken from its topic-partition group".into());
            group_topic.unwrap_or("unknown").to_owned()
        }
    };
    if let Some(p) = group_partition {
        if p != record.partition {
            warnings.push(format!(
                "record partition {} differs from its group {group:?}",
                record.partition
            ));
        }
    }
    let key = record.key.map(|k| decode_base64("key", &k, &mut warnings));
    let value = record.value.map(|v| decode_base64("value", &v, &mut warnings));
    let headers = record
        .headers
        .into_iter()
        .flat_map(|map| {
            let mut pairs: Vec<_> = map.into_iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            pairs
        })
        .map(|(name, bytes)| (name, bytes.into_iter().map(|b| b as u8).collect()))
        .collect();
    let timestamp = record.timestamp.timestamp_millis();
    KafkaMessage {
        topic,
        partition: record.partition,
        offset: Some(record.offset).filter(|o| *o >= 0),
        timestamp: Some(timestamp).filter(|t| *t >= 0),
        timestamp_type: record.timestamp_type,
        key,
        value,
        headers,
        warnings,
        fingerprint,
    }
}

fn int_field(entry: &Value, name: &str, warnings: &mut Vec<String>) -> Option<i64> {
    match entry.get(name) {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) => Some(v),
            None => {
                warnings.push(format!("record {name} {n} is not an integer"));
                None
            }
        },
        Some(Value::String(s)) => match s.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                warnings.push(format!("record {name} {s:?} is not an integer"));
                None
            }
        },
        Some(Value::Null) | None => {
            warnings.push(format!("record has no {name}"));
            None
        }
        Some(other) => {
            warnings.push(format!("record {name} is {}, not an integer", kind(other)));
            None
        }
    }
}

fn bytes_field(entry: &Value, name: &str, warnings: &mut Vec<String>) -> Option<Vec<u8>> {
    match entry.get(name) {
        Some(Value::String(text)) => Some(decode_base64(name, text, warnings)),
        Some(Value::Null) | None => None,
        Some(other) => {
            warnings.push(format!(
                "record {name} is {}, not base64 text; stored as its JSON",
                kind(other)
            ));
            Some(other.to_string().into_bytes())
        }
    }
}

fn header_bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let n = item.as_i64()?;
                // MSK sends Java's signed bytes; accept unsigned ones too.
                (-128..=255).contains(&n).then_some(n as u8)
            })
            .collect(),
        Value::String(text) => Some(text.as_bytes().to_vec()),
        Value::Null => Some(Vec::new()),
        _ => None,
    }
}

fn from_untyped(group: &str, entry: &Value, fingerprint: String) -> KafkaMessage {
    let mut warnings = Vec::new();
    if !entry.is_object() {
        warnings.push(format!("record is {}, not an object; stored as its JSON", kind(entry)));
        let (topic, partition) = split_group(group);
        return KafkaMessage {
            topic: topic.unwrap_or("unknown").to_owned(),
            partition: partition.unwrap_or(-1),
            offset: None,
            timestamp: None,
            timestamp_type: None,
            key: None,
            value: Some(entry.to_string().into_bytes()),
            headers: Vec::new(),
            warnings,
            fingerprint,
        };
    }
    let (group_topic, group_partition) = split_group(group);
    let topic = match entry.get("topic").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        Some(topic) => topic.to_owned(),
        None => {
            warnings.push("record has no topic; taken from its topic-partition group".into());
            group_topic.unwrap_or("unknown").to_owned()
        }
    };
    let partition = int_field(entry, "partition", &mut warnings)
        .or(group_partition)
        .unwrap_or(-1);
    let offset = int_field(entry, "offset", &mut warnings).filter(|o| *o >= 0);
    let timestamp = int_field(entry, "timestamp", &mut warnings).filter(|t| *t >= 0);
    let timestamp_type = entry.get("timestampType").and_then(Value::as_str).map(str::to_owned);
    let key = bytes_field(entry, "key", &mut warnings);
    let value = bytes_field(entry, "value", &mut warnings);
    let mut headers = Vec::new();
    match entry.get("headers") {
        Some(Value::Array(maps)) => {
            for map in maps {
                match map {
                    Value::Object(pairs) => {
                        for (name, raw) in pairs {
                            match header_bytes(raw) {
                                Some(bytes) => headers.push((name.clone(), bytes)),
                                None => {
                                    warnings
                                        .push(format!("header {name:?} is not an array of bytes; stored as its JSON"));
                                    headers.push((name.clone(), raw.to_string().into_bytes()));
                                }
                            }
                        }
                    }
                    other => warnings.push(format!(
                        "a header entry is {}, not an object; skipped: {other}",
                        kind(other)
                    )),
                }
            }
        }
        Some(Value::Null) | None => {}
        Some(other) => warnings.push(format!("headers are {}, not an array: {other}", kind(other))),
    }
    KafkaMessage {
        topic,
        partition,
        offset,
        timestamp,
        timestamp_type,
        key,
        value,
        headers,
        warnings,
        fingerprint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        serde_json::from_str(include_str!("../../fixtures/events/msk-sample.json")).unwrap()
    }

    #[test]
    fn decodes_aws_sample_msk_event() {
        let event = decode_event(&sample()).unwrap();
        assert_eq!(event.event_source, "aws:kafka");
        assert_eq!(event.records.len(), 1);
        let r = &event.records[0];
        assert_eq!(r.topic, "AWSKafkaTopic");
        assert_eq!(r.partition, 0);
        assert_eq!(r.offset, Some(0));
        assert_eq!(r.timestamp, Some(1_595_035_749_700));
        assert_eq!(r.timestamp_type.as_deref(), Some("CREATE_TIME"));
        assert_eq!(r.key.as_deref(), Some(&b"8d5596b4-1813-4238-b24b-6dad8e3d1c0c"[..]));
        assert_eq!(r.headers, vec![("headerKey".to_owned(), b"headerValue".to_vec())]);
        assert!(r.warnings.is_empty());
        assert_eq!(r.id(), "AWSKafkaTopic:0:0");
    }

    #[test]
    fn self_managed_kafka_events_are_accepted() {
        let mut event = sample();
        event["eventSource"] = json!("SelfManagedKafka");
        assert_eq!(decode_event(&event).unwrap().event_source, "SelfManagedKafka");
    }

    #[test]
    fn events_from_other_sources_are_rejected_with_a_clear_error() {
        let sqs = json!({"Records": [{"eventSource": "aws:sqs"}]});
        assert_eq!(decode_event(&sqs), Err(EventError::MissingEventSource));
        let other = json!({"eventSource": "aws:kinesis", "records": {}});
        let err = decode_event(&other).unwrap_err();
        assert!(err.to_string().contains("aws:kinesis"), "{err}");
        assert_eq!(decode_event(&json!([1])), Err(EventError::NotAnObject("an array")));
        assert!(matches!(decode_event_bytes(b"\xff\x00"), Err(EventError::NotJson(_))));
        assert_eq!(
            decode_event(&json!({"eventSource": "aws:kafka", "records": [1]})),
            Err(EventError::BadRecords("an array"))
        );
    }

    #[test]
    fn a_null_key_and_a_null_value_are_kept_as_absent() {
        let event = json!({"eventSource": "aws:kafka", "records": {"t-1": [
            {"topic": "t", "partition": 1, "offset": 5, "timestamp": 1, "timestampType": "CREATE_TIME",
             "key": null, "value": null, "headers": []}]}});
        let r = &decode_event(&event).unwrap().records[0];
        assert_eq!(r.key, None);
        assert_eq!(r.value, None);
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn signed_header_bytes_become_the_original_bytes() {
        let event = json!({"eventSource": "aws:kafka", "records": {"t-0": [
            {"topic": "t", "partition": 0, "offset": 1, "timestamp": 1, "timestampType": "CREATE_TIME",
             "value": "e30=", "headers": [{"bin": [-1, -128, 0, 127]}, {"bin": [104, 105]}]}]}});
        let r = &decode_event(&event).unwrap().records[0];
        assert_eq!(
            r.headers,
            vec![
                ("bin".into(), vec![0xff, 0x80, 0x00, 0x7f]),
                ("bin".into(), b"hi".to_vec())
            ]
        );
    }

    #[test]
    fn invalid_base64_is_kept_as_received_with_a_warning() {
        let event = json!({"eventSource": "aws:kafka", "records": {"t-0": [
            {"topic": "t", "partition": 0, "offset": 1, "timestamp": 1, "value": "not base64!", "headers": []}]}});
        let r = &decode_event(&event).unwrap().records[0];
        assert_eq!(r.value.as_deref(), Some(&b"not base64!"[..]));
        assert!(r.warnings[0].contains("value is not valid base64"), "{:?}", r.warnings);
    }

    #[test]
    fn a_malformed_record_is_kept_with_what_could_be_read() {
        let event = json!({"eventSource": "aws:kafka", "records": {"orders-3": [
            {"partition": "x", "offset": "12", "timestamp": "soon", "value": 7,
             "headers": [{"h": [1, 2, 999]}, "junk", {"ok": [65]}]},
            "not even an object"]}});
        let records = decode_event(&event).unwrap().records;
        assert_eq!(records.len(), 2);
        let r = &records[0];
        assert_eq!(r.topic, "orders");
        assert_eq!(r.partition, 3);
        assert_eq!(r.offset, Some(12));
        assert_eq!(r.timestamp, None);
        assert_eq!(r.value.as_deref(), Some(&b"7"[..]));
        assert_eq!(r.headers.len(), 2);
        assert!(r.warnings.len() >= 4, "{:?}", r.warnings);
        let junk = &records[1];
        assert_eq!(junk.offset, None);
        assert!(junk.id().starts_with("orders:3:x"));
        assert_eq!(junk.value.as_deref(), Some(&b"\"not even an object\""[..]));
    }

    #[test]
    fn the_same_malformed_record_always_gets_the_same_id() {
        let entry = json!({"topic": "t", "partition": 0, "value": "e30="});
        assert_eq!(decode_record("t-0", &entry).id(), decode_record("t-0", &entry).id());
        let other = json!({"topic": "t", "partition": 0, "value": "e31="});
        assert_ne!(decode_record("t-0", &entry).id(), decode_record("t-0", &other).id());
    }

    #[test]
    fn group_keys_split_at_the_last_dash() {
        assert_eq!(split_group("my-topic-12"), (Some("my-topic"), Some(12)));
        assert_eq!(split_group("topic"), (Some("topic"), None));
        assert_eq!(split_group(""), (None, None));
    }
}
