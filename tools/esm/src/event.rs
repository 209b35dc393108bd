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

/// Room kept in the event for its own fields (event source, ARN, bootstrap servers, braces).
const EVENT_OVERHEAD: usize = 4 * 1024;

/// A batch being filled. It is complete at `max_records`, or when the next record would take its event over
/// [`MAX_EVENT_BYTES`]: that record is handed back, to start the next batch. A record over the limit on its own
/// travels alone (and its invocation fails as AWS's would, visibly, instead of being dropped).
#[derive(Debug)]
pub struct BatchBuilder {
    records: Vec<Record>,
    bytes: usize,
    max_records: usize,
}

impl BatchBuilder {
    pub fn new(max_records: usize) -> Self {
        BatchBuilder {
            records: Vec::new(),
            bytes: EVENT_OVERHEAD,
            max_records: max_records.max(1),
        }
    }

    /// Adds `record`, or hands it back when it does not fit: the batch is then complete.
    pub fn offer(&mut self, record: Record) -> Option<Record> {
        let size = record.event_size();
        if !self.records.is_empty() && (self.is_full() || self.bytes + size > MAX_EVENT_BYTES) {
            return Some(record);
        }
        self.bytes += size;
        self.records.push(record);
        None
    }

    pub fn is_full(&self) -> bool {
        self.records.len() >= self.max_records
    }

    pub fn into_records(self) -> Vec<Record> {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Removes the records `unwanted` picks; returns how many.
    pub fn remove(&mut self, unwanted: impl Fn(&Record) -> bool) -> usize {
        let before = self.records.len();
        self.records.retain(|record| !unwanted(record));
        self.bytes = EVENT_OVERHEAD + self.records.iter().map(Record::event_size).sum::<usize>();
        before - self.records.len()
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

    fn sized(offset: i64, value_bytes: usize) -> Record {
        Record {
            topic: "orders".into(),
            partition: 0,
            offset,
            timestamp: Some(1_700_000_000_000),
            timestamp_type: "CREATE_TIME",
            key: Some(b"k".to_vec()),
            value: Some(vec![0xab; value_bytes]),
            headers: vec![("h".into(), Some(vec![0xff; 100]))],
        }
    }

    #[test]
    fn a_record_that_would_take_a_batch_over_6_mb_starts_the_next_one() {
        let mut batch = BatchBuilder::new(10_000);
        // Two records of 2.5 MB (3.3 MB of base64 each) cannot share one event.
        assert!(batch.offer(sized(0, 2_500_000)).is_none());
        let carried = batch.offer(sized(1, 2_500_000)).expect("handed back");
        assert_eq!(carried.offset, 1);
        let records = batch.into_records();
        assert_eq!(records.len(), 1);
        let mut next = BatchBuilder::new(10_000);
        assert!(next.offer(carried).is_none(), "it starts the next batch");
        // Many small records fill a batch up to the limit and never past it, as the event is really written.
        let mut batch = BatchBuilder::new(10_000);
        let mut offset = 0;
        while batch.offer(sized(offset, 30_000)).is_none() {
            offset += 1;
        }
        let records = batch.into_records();
        let event = build_event(&records, SourceKind::SelfManaged, "127.0.0.1:9092");
        let size = serde_json::to_vec(&event).unwrap().len();
        assert!(size <= MAX_EVENT_BYTES, "{size} bytes in {} records", records.len());
        assert!(size > MAX_EVENT_BYTES - 100_000, "the batch is filled: {size}");
    }

    #[test]
    fn a_batch_closes_at_its_record_count_and_a_huge_record_travels_alone() {
        let mut batch = BatchBuilder::new(2);
        assert!(batch.offer(sized(0, 10)).is_none());
        assert!(batch.offer(sized(1, 10)).is_none());
        assert!(batch.is_full());
        assert!(batch.offer(sized(2, 10)).is_some());
        let mut alone = BatchBuilder::new(100);
        assert!(alone.offer(sized(3, 7_000_000)).is_none());
        assert!(alone.offer(sized(4, 10)).is_some());
        assert_eq!(alone.into_records().len(), 1);
    }

    #[test]
    fn records_removed_from_a_batch_give_back_their_room() {
        let mut batch = BatchBuilder::new(3);
        let mut other = sized(1, 2_000_000);
        other.partition = 1;
        assert!(batch.offer(sized(0, 2_000_000)).is_none());
        assert!(batch.offer(other).is_none());
        assert!(batch.offer(sized(2, 2_000_000)).is_some(), "6 MB would be passed");
        assert_eq!(batch.remove(|r| r.partition == 1), 1);
        assert_eq!(batch.remove(|r| r.partition == 1), 0);
        assert!(
            batch.offer(sized(2, 2_000_000)).is_none(),
            "the removed record's room is free again"
        );
        let offsets: Vec<i64> = batch.into_records().iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [0, 2]);
        let mut emptied = BatchBuilder::new(3);
        assert!(emptied.offer(sized(0, 10)).is_none());
        emptied.remove(|_| true);
        assert!(emptied.is_empty());
    }

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
