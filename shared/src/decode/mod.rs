//! Decoding of the event an MSK or self-managed Kafka trigger sends to Lambda.
//!
//! The envelope must be a Kafka event (a clear [`EventError`] otherwise). Inside it, every record is kept: each
//! one is read field by field, and whatever cannot be read becomes a warning on the record instead of an error.
//!
//! Records are not read through `aws_lambda_events`' `KafkaRecord`: its millisecond timestamp goes through an
//! `f64` (so half of all timestamps come back one millisecond early) and it panics on a fractional timestamp.

mod envelope;
mod record;

use serde::{Deserialize, Deserializer};

pub use record::{decode_record, decode_record_text};

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

/// Decodes raw event bytes, record by record as they are parsed: the JSON of the whole event is never built as
/// a tree (several times the size of the text), only that of one record at a time. This is the one decoder:
/// the Lambda runtime runs it (through [`KafkaTrigger`]), and so do the tests, the local event source mapping
/// and `ingest-file`.
pub fn decode_event_bytes(bytes: &[u8]) -> Result<DecodedEvent, EventError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let trigger = KafkaTrigger::deserialize(&mut deserializer).map_err(|e| EventError::NotJson(e.to_string()))?;
    deserializer.end().map_err(|e| EventError::NotJson(e.to_string()))?;
    trigger.0
}

/// A trigger event decoded while it is deserialized (see [`decode_event_bytes`]): the payload type for a Lambda
/// handler that should never hold the event as a JSON tree. Any JSON deserializes; what is not a Kafka event
/// holds its [`EventError`].
#[derive(Debug, PartialEq, Eq)]
pub struct KafkaTrigger(pub Result<DecodedEvent, EventError>);

impl<'de> Deserialize<'de> for KafkaTrigger {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(envelope::EnvelopeVisitor)
            .map(KafkaTrigger)
    }
}

#[cfg(test)]
mod tests {
    use super::record::split_group;
    use super::*;
    use serde_json::json;
    use serde_json::Value;

    /// Decodes a JSON event through its bytes, as the runtime delivers it.
    fn decode_event(event: &Value) -> Result<DecodedEvent, EventError> {
        decode_event_bytes(&serde_json::to_vec(event).unwrap())
    }

    fn sample() -> Value {
        serde_json::from_str(include_str!("../../../fixtures/events/msk-sample.json")).unwrap()
    }

    #[test]
    fn decodes_aws_sample_msk_event() {
        let event = decode_event(&sample()).unwrap();
        assert_eq!(event.event_source, "aws:kafka");
        assert_eq!(event.records.len(), 1);
        let r = &event.records[0];
        assert_eq!(&*r.topic, "AWSKafkaTopic");
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
        assert!(
            r.warnings[0].message.contains("value is not valid base64"),
            "{:?}",
            r.warnings
        );
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
        assert_eq!(&*r.topic, "orders");
        assert_eq!(r.partition, 3);
        assert_eq!(r.offset, Some(12));
        assert_eq!(r.timestamp, None);
        assert_eq!(r.value.as_deref(), Some(&b"7"[..]));
        assert_eq!(r.headers.len(), 3, "the junk entry is kept as header #1");
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

    /// Why records are not read through `aws_lambda_events`: on AWS's sample event it reads the same records, but
    /// its timestamps lose a millisecond for about half of all values. When a release reads them exactly, this test
    /// says so, and decoding can move to its types.
    #[test]
    fn aws_lambda_events_reads_the_same_records_but_not_the_same_timestamps() {
        use aws_lambda_events::event::kafka::KafkaEvent;
        use base64::Engine as _;
        let b64 = |text: &Option<String>| {
            text.as_deref()
                .map(|t| base64::engine::general_purpose::STANDARD.decode(t).unwrap())
        };
        let event = sample();
        let theirs: KafkaEvent = serde_json::from_value(event.clone()).unwrap();
        let ours = decode_event(&event).unwrap();
        let mut compared = 0;
        for record in theirs.records.values().flatten() {
            let mine = ours
                .records
                .iter()
                .find(|m| m.partition == record.partition && m.offset == Some(record.offset))
                .expect("the same record");
            assert_eq!(Some(&*mine.topic), record.topic.as_deref());
            assert_eq!(mine.key, b64(&record.key));
            assert_eq!(mine.value, b64(&record.value));
            let headers: Vec<(String, Vec<u8>)> = record
                .headers
                .iter()
                .flat_map(|h| h.iter().map(|(k, v)| (k.clone(), v.iter().map(|b| *b as u8).collect())))
                .collect();
            assert_eq!(mine.headers, headers);
            assert_eq!(mine.timestamp, Some(record.timestamp.0.timestamp_millis()));
            compared += 1;
        }
        assert_eq!(compared, ours.records.len());

        let mut early = 0;
        for ms in 1_595_035_749_000_i64..1_595_035_750_000 {
            let event = json!({"eventSource": "aws:kafka", "records": {"t-0": [
                {"topic": "t", "partition": 0, "offset": 1, "timestamp": ms, "timestampType": "CREATE_TIME",
                 "value": "e30=", "headers": []}]}});
            let theirs: KafkaEvent = serde_json::from_value(event.clone()).unwrap();
            let their_ms = theirs.records["t-0"][0].timestamp.0.timestamp_millis();
            assert_eq!(decode_event(&event).unwrap().records[0].timestamp, Some(ms));
            if their_ms != ms {
                assert_eq!(their_ms, ms - 1);
                early += 1;
            }
        }
        assert!(
            early > 0,
            "aws_lambda_events now reads timestamps exactly: decoding could use its types"
        );
    }

    #[test]
    fn kafka_timestamps_come_back_to_the_millisecond() {
        // Read through an f64 (as aws_lambda_events' MillisecondTimestamp does), 496 of these 1,000 came back
        // one millisecond early.
        for ms in 1_595_035_749_000_i64..1_595_035_750_000 {
            let event = json!({"eventSource": "aws:kafka", "records": {"t-0": [
                {"topic": "t", "partition": 0, "offset": 1, "timestamp": ms, "timestampType": "CREATE_TIME",
                 "value": "e30=", "headers": []}]}});
            assert_eq!(decode_event(&event).unwrap().records[0].timestamp, Some(ms));
        }
    }

    #[test]
    fn a_fractional_timestamp_is_a_warning_not_a_panic() {
        for timestamp in [json!(1_595_035_749_700.5), json!("1595035749700.5")] {
            let event = json!({"eventSource": "aws:kafka", "records": {"t-0": [
                {"topic": "t", "partition": 0, "offset": 1, "timestamp": timestamp, "timestampType": "CREATE_TIME",
                 "value": "e30=", "headers": []}]}});
            let r = &decode_event(&event).unwrap().records[0];
            assert_eq!(r.timestamp, None);
            assert_eq!(r.offset, Some(1));
            assert!(
                r.warnings.iter().any(|w| w.message.contains("is not an integer")),
                "{:?}",
                r.warnings
            );
        }
    }

    #[test]
    fn a_record_whose_partition_differs_from_its_group_keeps_its_own_with_a_warning() {
        let event = json!({"eventSource": "aws:kafka", "records": {"t-0": [
            {"topic": "t", "partition": 2, "offset": 1, "timestamp": 1, "value": "e30=", "headers": []}]}});
        let r = &decode_event(&event).unwrap().records[0];
        assert_eq!(r.partition, 2);
        assert!(
            r.warnings[0].message.contains("differs from its group"),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn every_shape_of_event_decodes_to_its_records_or_its_error() {
        let records = |event: Value| decode_event(&event).map(|d| d.records.len());
        assert_eq!(records(sample()), Ok(1));
        // Unreadable records and groups are each kept as a record: two entries of orders-3, four odd groups.
        assert_eq!(
            records(json!({"eventSource": "aws:kafka", "records": {"orders-3": [
                {"partition": "x", "offset": "12", "timestamp": "soon", "value": 7,
                 "headers": [{"h": [1, 2, 999]}, "junk", {"ok": [65]}]},
                "not even an object"], "b-1": {"topic": "b"}, "c-0": 5, "d-0": null, "e-0": "text"}})),
            Ok(6)
        );
        assert_eq!(
            records(json!({"eventSource": "SelfManagedKafka", "records": null, "extra": [1, {"a": 2}]})),
            Ok(0)
        );
        // Found by the property test: a float that serde_json parsed 1 ulp off without `float_roundtrip`.
        assert_eq!(
            records(json!({"eventSource": "aws:kafka", "records": {"t-0": [
                {"topic": "t", "partition": 0, "offset": 0, "timestamp": 0, "key": [-9.909518572853799e19]}]}})),
            Ok(1)
        );
        assert_eq!(records(json!({"eventSource": "aws:kafka"})), Ok(0));
        for (event, error) in [
            (
                json!({"eventSource": "aws:kafka", "records": [1]}),
                EventError::BadRecords("an array"),
            ),
            (
                json!({"eventSource": "aws:kafka", "records": "x"}),
                EventError::BadRecords("a string"),
            ),
            (
                json!({"eventSource": 5, "records": {}}),
                EventError::WrongEventSource("5".into()),
            ),
            (
                json!({"eventSource": "aws:sqs", "records": {}}),
                EventError::WrongEventSource("aws:sqs".into()),
            ),
            (json!({"Records": []}), EventError::MissingEventSource),
            (json!([1, 2]), EventError::NotAnObject("an array")),
            (json!("text"), EventError::NotAnObject("a string")),
            (json!(null), EventError::NotAnObject("null")),
            (json!(1.5), EventError::NotAnObject("a number")),
        ] {
            assert_eq!(decode_event(&event), Err(error), "{event}");
        }
        assert!(matches!(decode_event_bytes(b"{} {}"), Err(EventError::NotJson(_))));
        assert!(matches!(
            decode_event_bytes(b"{\"records\": {"),
            Err(EventError::NotJson(_))
        ));
    }

    #[test]
    fn a_lambda_payload_of_any_json_deserializes_to_a_trigger_or_its_error() {
        let trigger: KafkaTrigger = serde_json::from_value(sample()).unwrap();
        assert_eq!(trigger.0.unwrap().records.len(), 1);
        let other: KafkaTrigger = serde_json::from_str(r#"{"Records": [{"eventSource": "aws:sqs"}]}"#).unwrap();
        assert_eq!(other.0, Err(EventError::MissingEventSource));
    }

    #[test]
    fn the_records_of_a_group_share_their_topic_name_and_the_usual_timestamp_types_are_not_copied() {
        let record = |topic: &str, offset: u32, kind: &str| {
            json!({"topic": topic, "partition": 0, "offset": offset, "timestamp": 5, "timestampType": kind,
                   "key": null, "value": "e30=", "headers": []})
        };
        let event = json!({"eventSource": "aws:kafka", "records": {
            "orders-0": [record("orders", 1, "CREATE_TIME"), record("orders", 2, "LOG_APPEND_TIME"),
                         record("other", 3, "CREATE_TIME"), record("other", 4, "SOMETHING_NEW")],
            "more-0": [record("orders", 5, "CREATE_TIME")]}});
        let records = decode_event(&event).unwrap().records;
        let by_offset = |offset: i64| records.iter().find(|r| r.offset == Some(offset)).unwrap();
        assert!(std::sync::Arc::ptr_eq(&by_offset(1).topic, &by_offset(2).topic));
        assert!(std::sync::Arc::ptr_eq(&by_offset(3).topic, &by_offset(4).topic));
        assert_eq!(&*by_offset(3).topic, "other");
        assert_eq!(&*by_offset(5).topic, "orders");
        for offset in 1..=3 {
            assert!(matches!(
                by_offset(offset).timestamp_type,
                Some(std::borrow::Cow::Borrowed(_))
            ));
        }
        assert_eq!(by_offset(2).timestamp_type.as_deref(), Some("LOG_APPEND_TIME"));
        assert_eq!(by_offset(4).timestamp_type.as_deref(), Some("SOMETHING_NEW"));
        // The same records as each read on its own.
        for r in &records {
            let group = if r.offset == Some(5) { "more-0" } else { "orders-0" };
            let kind = r.timestamp_type.as_deref().unwrap();
            let alone = decode_record(group, &record(&r.topic, r.offset.unwrap() as u32, kind));
            assert_eq!(*r, alone);
        }
    }

    #[test]
    fn a_header_object_of_several_members_is_read_as_a_json_object_reads_it() {
        // MSK sends one member per header object; several, in an order that is not sorted, must come out as the
        // `Value` way gives them, whether or not this build's JSON objects keep their order.
        let text = r#"{"topic":"t","partition":0,"offset":1,"timestamp":5,"timestampType":"CREATE_TIME",
            "key":null,"value":"e30=","headers":[{"zeta":[1],"alpha":[2]},{"mid":[3]}]}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        let read = decode_record_text("t-0", text);
        assert_eq!(read, decode_record("t-0", &value));
        assert_eq!(read.headers.len(), 3);
        assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    }

    #[test]
    fn every_way_the_trigger_can_be_deserialized_reads_the_same_records() {
        let bytes = serde_json::to_vec(&sample()).unwrap();
        let expected = decode_event_bytes(&bytes).unwrap();
        // The Lambda runtime's way: serde_path_to_error around a slice deserializer.
        let runtime: KafkaTrigger =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes)).unwrap();
        assert_eq!(runtime.0.unwrap(), expected);
        // A reader, which cannot lend text, and a JSON tree.
        let reader: KafkaTrigger = serde_json::from_reader(&bytes[..]).unwrap();
        assert_eq!(reader.0.unwrap(), expected);
        let tree: KafkaTrigger = serde_json::from_value(sample()).unwrap();
        assert_eq!(tree.0.unwrap(), expected);
    }

    #[test]
    fn malformed_header_entries_are_kept_and_not_quoted_in_warnings() {
        let event = json!({"eventSource": "aws:kafka", "records": {"t-0": [
            {"topic": "t", "partition": 0, "offset": 1, "timestamp": 1,
             "headers": ["secret-a", {"ok": [65]}, 7]},
            {"topic": "t", "partition": 0, "offset": 2, "timestamp": 1, "headers": {"x": "secret-b"}}]}});
        let records = decode_event(&event).unwrap().records;
        assert_eq!(
            records[0].headers,
            vec![
                ("#0".to_owned(), b"\"secret-a\"".to_vec()),
                ("ok".to_owned(), b"A".to_vec()),
                ("#2".to_owned(), b"7".to_vec())
            ]
        );
        assert_eq!(
            records[1].headers,
            vec![("#headers".to_owned(), br#"{"x":"secret-b"}"#.to_vec())]
        );
        for record in &records {
            assert!(!record.warnings.is_empty());
            for warning in &record.warnings {
                assert!(!warning.message.contains("secret"), "{warning}");
            }
        }
    }

    #[test]
    fn group_keys_split_at_the_last_dash() {
        assert_eq!(split_group("my-topic-12"), (Some("my-topic"), Some(12)));
        assert_eq!(split_group("topic"), (Some("topic"), None));
        assert_eq!(split_group(""), (None, None));
    }
}
