//! The trigger's event (pure): consumed records grouped by `topic-partition`, key and value in base64, headers
//! as arrays of signed bytes, `timestampType`, exactly as AWS's MSK or self-managed Kafka trigger sends them.

use std::collections::BTreeMap;

use base64::Engine as _;
use rdkafka::message::{Headers, Message, OwnedMessage, Timestamp};
use serde_json::{json, Value};

use crate::config::SourceKind;

/// The trigger's limit on one invocation's payload.
pub const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;

/// One consumed record, as the trigger would carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub timestamp_type: &'static str,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    pub fn from_message(message: &OwnedMessage) -> Record {
        let (timestamp, timestamp_type) = match message.timestamp() {
            Timestamp::CreateTime(ms) => (Some(ms), "CREATE_TIME"),
            Timestamp::LogAppendTime(ms) => (Some(ms), "LOG_APPEND_TIME"),
            Timestamp::NotAvailable => (None, "NO_TIMESTAMP_TYPE"),
        };
        Record {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp,
            timestamp_type,
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers: message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The record's approximate size in the event, to keep batches under 6 MB.
    pub fn event_size(&self) -> usize {
        let b64 = |n: usize| n.div_ceil(3) * 4;
        200 + self.topic.len()
            + self.key.as_ref().map_or(0, |k| b64(k.len()))
            + self.value.as_ref().map_or(0, |v| b64(v.len()))
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + 8 + v.as_ref().map_or(0, |v| v.len() * 5))
                .sum::<usize>()
    }
}

/// The trigger's event for `records` (pure).
pub fn build_event(records: &[Record], source: SourceKind, bootstrap_servers: &str) -> Value {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for record in records {
        let mut entry = serde_json::Map::new();
        entry.insert("topic".into(), json!(record.topic));
        entry.insert("partition".into(), json!(record.partition));
        entry.insert("offset".into(), json!(record.offset));
        entry.insert("timestamp".into(), json!(record.timestamp.unwrap_or(-1)));
        entry.insert("timestampType".into(), json!(record.timestamp_type));
        if let Some(key) = &record.key {
            entry.insert("key".into(), json!(b64(key)));
        }
        if let Some(value) = &record.value {
            entry.insert("value".into(), json!(b64(value)));
        }
        let headers: Vec<Value> = record
            .headers
            .iter()
            .map(|(name, value)| {
                let signed: Vec<i8> = value.as_deref().unwrap_or_default().iter().map(|b| *b as i8).collect();
                json!({ name.clone(): signed })
            })
            .collect();
        entry.insert("headers".into(), json!(headers));
        groups
            .entry(format!("{}-{}", record.topic, record.partition))
            .or_default()
            .push(Value::Object(entry));
    }
    match source {
        SourceKind::Msk => json!({
            "eventSource": "aws:kafka",
            "eventSourceArn": "arn:aws:kafka:us-east-1:000000000000:cluster/local/00000000-0000-0000-0000-000000000000-1",
            "bootstrapServers": bootstrap_servers,
            "records": groups,
        }),
        SourceKind::SelfManaged => json!({
            "eventSource": "SelfManagedKafka",
            "bootstrapServers": bootstrap_servers,
            "records": groups,
        }),
    }
}

/// Keeps the records a partial batch response asks to be delivered again.
pub fn retain_failed(records: Vec<Record>, failures: &[(String, i64)]) -> Vec<Record> {
    records
        .into_iter()
        .filter(|r| {
            let group = format!("{}-{}", r.topic, r.partition);
            failures
                .iter()
                .any(|(partition, offset)| *partition == group && r.offset >= *offset)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invoke::{read_response, Invocation};

    fn record(topic: &str, partition: i32, offset: i64) -> Record {
        Record {
            topic: topic.into(),
            partition,
            offset,
            timestamp: Some(1_700_000_000_000),
            timestamp_type: "CREATE_TIME",
            key: Some(b"k".to_vec()),
            value: Some(b"{}".to_vec()),
            headers: vec![("h".into(), Some(vec![0xff, 0x41])), ("h".into(), None)],
        }
    }

    #[test]
    fn the_event_has_the_msk_trigger_shape() {
        let mut tombstone = record("orders", 1, 8);
        tombstone.value = None;
        tombstone.key = None;
        let event = build_event(
            &[record("orders", 1, 7), tombstone, record("pay-ments", 0, 3)],
            SourceKind::Msk,
            "b:9092",
        );
        assert_eq!(event["eventSource"], "aws:kafka");
        assert!(event["eventSourceArn"].as_str().unwrap().starts_with("arn:aws:kafka:"));
        assert_eq!(event["bootstrapServers"], "b:9092");
        let first = &event["records"]["orders-1"][0];
        assert_eq!(
            first,
            &json!({"topic": "orders", "partition": 1, "offset": 7, "timestamp": 1_700_000_000_000i64,
                    "timestampType": "CREATE_TIME", "key": "aw==", "value": "e30=",
                    "headers": [{"h": [-1, 65]}, {"h": []}]})
        );
        assert!(event["records"]["orders-1"][1].get("value").is_none());
        assert_eq!(event["records"]["pay-ments-0"][0]["offset"], 3);
        // The ingest function reads it back exactly.
        let decoded = shared::decode::decode_event_bytes(&serde_json::to_vec(&event).unwrap()).unwrap();
        assert_eq!(decoded.records.len(), 3);
        assert_eq!(
            decoded.records[0].headers,
            vec![("h".to_owned(), vec![0xff, 0x41]), ("h".to_owned(), vec![])]
        );
        assert_eq!(decoded.records[1].value, None);
    }

    #[test]
    fn the_self_managed_event_has_no_arn() {
        let event = build_event(&[record("t", 0, 0)], SourceKind::SelfManaged, "b:9092");
        assert_eq!(event["eventSource"], "SelfManagedKafka");
        assert!(event.get("eventSourceArn").is_none());
    }

    #[test]
    fn partial_batch_responses_are_read_and_applied() {
        assert_eq!(
            read_response(&json!({"batchItemFailures": []})).ok(),
            Some(Invocation::Success)
        );
        assert_eq!(read_response(&Value::Null).ok(), Some(Invocation::Success));
        let partial =
            read_response(&json!({"batchItemFailures": [{"itemIdentifier": {"partition": "t-0", "offset": 5}}]}))
                .unwrap();
        assert_eq!(partial, Invocation::Partial(vec![("t-0".into(), 5)]));
        let malformed = read_response(&json!({"batchItemFailures": [{"itemIdentifier": "t-0-5"}]}));
        assert!(
            matches!(malformed, Err(crate::InvokeError::MalformedResponse(_))),
            "{malformed:?}"
        );
        let kept = retain_failed(
            vec![
                record("t", 0, 4),
                record("t", 0, 5),
                record("t", 0, 6),
                record("t", 1, 9),
            ],
            &[("t-0".into(), 5)],
        );
        let offsets: Vec<i64> = kept.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [5, 6]);
    }
}
