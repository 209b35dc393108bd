//! One record of a trigger event, read field by field. Never fails: whatever cannot be read is kept as it came
//! and described in a warning (which describes values, never quotes them: warnings are logged).

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::model::{quoted_name, KafkaMessage, Warning, WarningCode};

pub(super) fn kind(value: &Value) -> &'static str {
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
pub(super) fn split_group(group: &str) -> (Option<&str>, Option<i64>) {
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

/// A record in the form the trigger writes it, every field present and of its usual type, read with its text
/// borrowed from the event instead of built into a [`Value`] tree (a map and a string per field). Text with
/// escapes cannot be borrowed: such a record (rare: base64 and topic names need none) is read as a `Value`.
#[derive(serde::Deserialize)]
struct Plain<'a> {
    #[serde(borrow)]
    topic: Cow<'a, str>,
    partition: i64,
    offset: i64,
    timestamp: i64,
    #[serde(rename = "timestampType", default)]
    timestamp_type: Option<&'a str>,
    #[serde(default)]
    key: Option<&'a str>,
    #[serde(default)]
    value: Option<&'a str>,
    /// Each header a one-member object, as the trigger sends them (an object of several members, whose order
    /// a JSON object may or may not keep, goes the `Value` way).
    #[serde(borrow, default)]
    headers: Option<Vec<std::collections::BTreeMap<&'a str, Vec<i64>>>>,
}

/// Decodes one record from its JSON text (valid JSON: the event's parser has read it). A record in the
/// trigger's usual form is read straight from the text; anything else (a missing or odd field, bad base64, a
/// partition that disagrees with its group) goes the way of [`decode_record`], which warns about it. Both give
/// the same record for the same text (a property test checks it).
pub fn decode_record_text(group: &str, text: &str) -> KafkaMessage {
    decode_record_text_after(group, text, None)
}

/// [`decode_record_text`] for the record after `previous` in its group: a record of the same topic shares its
/// name.
pub(super) fn decode_record_text_after(group: &str, text: &str, previous: Option<&KafkaMessage>) -> KafkaMessage {
    if let Some(message) = read_plain(group, text, previous) {
        return message;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(entry) => decode_record(group, &entry),
        // Not reachable for text the event's parser accepted; kept, never dropped.
        Err(_) => decode_record(group, &Value::String(text.to_owned())),
    }
}

/// The record, when `text` is in the trigger's usual form with nothing to warn about; `None` otherwise.
fn read_plain(group: &str, text: &str, previous: Option<&KafkaMessage>) -> Option<KafkaMessage> {
    let plain: Plain<'_> = serde_json::from_str(text).ok()?;
    let (_, group_partition) = split_group(group);
    if plain.topic.is_empty() || plain.offset < 0 || group_partition.is_some_and(|p| p != plain.partition) {
        return None;
    }
    let base64 = |field: Option<&str>| -> Option<Option<Vec<u8>>> {
        match field {
            Some(text) => base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .ok()
                .map(Some),
            None => Some(None),
        }
    };
    let key = base64(plain.key)?;
    let value = base64(plain.value)?;
    let mut headers = Vec::new();
    for pairs in plain.headers.unwrap_or_default() {
        if pairs.len() != 1 {
            return None;
        }
        for (name, numbers) in pairs {
            let bytes = numbers
                .iter()
                .map(|&n| (-128..=255).contains(&n).then_some(n as u8))
                .collect::<Option<Vec<u8>>>()?;
            headers.push((name.to_owned(), bytes));
        }
    }
    let topic = match previous {
        // The records of a group are of one topic: they share its name rather than each copying it.
        Some(previous) if *previous.topic == *plain.topic => previous.topic.clone(),
        _ => Arc::from(&*plain.topic),
    };
    Some(KafkaMessage {
        topic,
        partition: plain.partition,
        offset: Some(plain.offset),
        timestamp: Some(plain.timestamp).filter(|t| *t >= 0),
        timestamp_type: plain.timestamp_type.map(crate::model::timestamp_type),
        key,
        value,
        headers,
        warnings: Vec::new(),
        fingerprint: String::new(),
    })
}

/// Decodes one record. Never fails: what cannot be read is recorded as a warning.
pub fn decode_record(group: &str, entry: &Value) -> KafkaMessage {
    // Read in place: no copy of the record's JSON.
    let mut message = read_record(group, entry);
    // The digest stands in for the offset only when there is none: computed then, not for every record.
    if message.offset.is_none() {
        message.fingerprint = fingerprint(entry);
    }
    message
}

fn decode_base64(field: &str, text: &str, warnings: &mut Vec<Warning>) -> Vec<u8> {
    match base64::engine::general_purpose::STANDARD.decode(text) {
        Ok(bytes) => bytes,
        Err(err) => {
            warnings.push(Warning::new(
                WarningCode::InvalidBase64,
                format!("{field} is not valid base64 ({err}); stored as received"),
            ));
            text.as_bytes().to_vec()
        }
    }
}

fn int_field(entry: &Value, name: &str, warnings: &mut Vec<Warning>) -> Option<i64> {
    match entry.get(name) {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) => Some(v),
            None => {
                warnings.push(Warning::new(
                    WarningCode::NotAnInteger,
                    format!("record {name} is a number that is not an integer"),
                ));
                None
            }
        },
        Some(Value::String(s)) => match s.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                warnings.push(Warning::new(
                    WarningCode::NotAnInteger,
                    format!("record {name} is text of {} bytes that is not an integer", s.len()),
                ));
                None
            }
        },
        Some(Value::Null) | None => {
            warnings.push(Warning::new(WarningCode::MissingField, format!("record has no {name}")));
            None
        }
        Some(other) => {
            warnings.push(Warning::new(
                WarningCode::NotAnInteger,
                format!("record {name} is {}, not an integer", kind(other)),
            ));
            None
        }
    }
}

fn bytes_field(entry: &Value, name: &str, warnings: &mut Vec<Warning>) -> Option<Vec<u8>> {
    match entry.get(name) {
        Some(Value::String(text)) => Some(decode_base64(name, text, warnings)),
        Some(Value::Null) | None => None,
        Some(other) => {
            warnings.push(Warning::new(
                WarningCode::NotBase64Text,
                format!("record {name} is {}, not base64 text; stored as its JSON", kind(other)),
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

fn read_record(group: &str, entry: &Value) -> KafkaMessage {
    let mut warnings = Vec::new();
    if !entry.is_object() {
        warnings.push(Warning::new(
            WarningCode::RecordNotAnObject,
            format!("record is {}, not an object; stored as its JSON", kind(entry)),
        ));
        let (topic, partition) = split_group(group);
        return KafkaMessage {
            topic: topic.unwrap_or("unknown").into(),
            partition: partition.unwrap_or(-1),
            offset: None,
            timestamp: None,
            timestamp_type: None,
            key: None,
            value: Some(entry.to_string().into_bytes()),
            headers: Vec::new(),
            warnings,
            fingerprint: String::new(),
        };
    }
    let (group_topic, group_partition) = split_group(group);
    let topic = match entry.get("topic").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        Some(topic) => topic.into(),
        None => {
            warnings.push(Warning::new(
                WarningCode::MissingField,
                "record has no topic; taken from its topic-partition group",
            ));
            group_topic.unwrap_or("unknown").into()
        }
    };
    let partition = match (int_field(entry, "partition", &mut warnings), group_partition) {
        (Some(own), Some(grouped)) if own != grouped => {
            warnings.push(Warning::new(
                WarningCode::PartitionMismatch,
                format!("record partition {own} differs from its group {group:?}"),
            ));
            own
        }
        (own, grouped) => own.or(grouped).unwrap_or(-1),
    };
    let offset = int_field(entry, "offset", &mut warnings).filter(|o| *o >= 0);
    let timestamp = int_field(entry, "timestamp", &mut warnings).filter(|t| *t >= 0);
    let timestamp_type = entry
        .get("timestampType")
        .and_then(Value::as_str)
        .map(crate::model::timestamp_type);
    let key = bytes_field(entry, "key", &mut warnings);
    let value = bytes_field(entry, "value", &mut warnings);
    let mut headers = Vec::new();
    match entry.get("headers") {
        Some(Value::Array(maps)) => {
            for (index, map) in maps.iter().enumerate() {
                match map {
                    Value::Object(pairs) => {
                        for (name, raw) in pairs {
                            match header_bytes(raw) {
                                Some(bytes) => headers.push((name.clone(), bytes)),
                                None => {
                                    warnings.push(Warning::new(
                                        WarningCode::MalformedHeader,
                                        format!(
                                            "header {} is not an array of bytes; stored as its JSON",
                                            quoted_name(name)
                                        ),
                                    ));
                                    headers.push((name.clone(), raw.to_string().into_bytes()));
                                }
                            }
                        }
                    }
                    // Kept, under a name no Kafka producer sets, and described without quoting it: warnings are
                    // logged, header values are customer data.
                    other => {
                        let name = format!("#{index}");
                        warnings.push(Warning::new(
                            WarningCode::MalformedHeader,
                            format!(
                                "header entry {index} is {}, not an object; kept as header {} with its JSON",
                                kind(other),
                                quoted_name(&name)
                            ),
                        ));
                        headers.push((name, other.to_string().into_bytes()));
                    }
                }
            }
        }
        Some(Value::Null) | None => {}
        Some(other) => {
            warnings.push(Warning::new(
                WarningCode::MalformedHeader,
                format!(
                    "headers are {}, not an array; kept as header \"#headers\" with their JSON",
                    kind(other)
                ),
            ));
            headers.push(("#headers".to_owned(), other.to_string().into_bytes()));
        }
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
        fingerprint: String::new(),
    }
}
