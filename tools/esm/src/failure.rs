//! The invocation records AWS writes to an on-failure destination for a Kafka event source, pure.
//!
//! - SNS and SQS get the metadata of the given-up part of a batch; S3 gets the same with the whole event as
//!   `payload`, an escaped JSON string (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure.html>):
//!   `requestContext`, `responseContext`, `version`, `timestamp`, and `KafkaBatchInfo` with `recordsInfo` by
//!   `topic-partition` (first and last offsets as strings, their timestamps).
//! - A Kafka topic gets one message per failed record, keyed by the record's key, whose value is the metadata
//!   with `batchSize` 1, the record's `recordInfo`, and as `payload` the event holding that record alone
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html>).
//!
//! `condition` is `RetryAttemptsExhausted` (the name AWS's invocation records use; the Kafka destination page's
//! example writes `RetriesExhausted`) or, for records past `MaximumRecordAgeInSeconds`, `RecordAgeExceeded`
//! (AWS documents no Kafka example for it). `responseContext` is `null` when the records never reached the
//! function.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::deliver::Failed;
use crate::event::{build_event, Record};
use crate::SourceKind;

/// What the records say about where they came from and which function failed them.
#[derive(Debug, Clone)]
pub struct Origin {
    pub function_arn: String,
    pub source: SourceKind,
    pub bootstrap_servers: String,
}

fn iso(ms: Option<i64>) -> Value {
    ms.and_then(DateTime::from_timestamp_millis)
        .map(|t| json!(t.to_rfc3339_opts(SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

fn contexts(failed: &Failed, origin: &Origin, request_id: &str) -> (Value, Value) {
    let request = json!({
        "requestId": request_id,
        "functionArn": origin.function_arn,
        "condition": failed.condition.as_str(),
        "approximateInvokeCount": failed.attempts,
    });
    let response = match &failed.error {
        _ if failed.attempts == 0 => Value::Null,
        Some(error) if !error.starts_with("partial batch response") => {
            json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"})
        }
        _ => json!({"statusCode": 200, "executedVersion": "$LATEST"}),
    };
    (request, response)
}

fn event_source_arn(event: &Value) -> Option<&str> {
    event.get("eventSourceArn").and_then(Value::as_str)
}

/// The record for SNS and SQS (`with_payload` false) or S3 (true): one for the given-up part of a batch.
pub fn batch_record(
    failed: &Failed,
    origin: &Origin,
    with_payload: bool,
    now: DateTime<Utc>,
    request_id: &str,
) -> Value {
    let event = build_event(&failed.records, origin.source, &origin.bootstrap_servers);
    let event_text = event.to_string();
    let mut partitions: BTreeMap<String, (&Record, &Record)> = BTreeMap::new();
    for record in &failed.records {
        let entry = partitions
            .entry(format!("{}-{}", record.topic, record.partition))
            .or_insert((record, record));
        if record.offset < entry.0.offset {
            entry.0 = record;
        }
        if record.offset > entry.1.offset {
            entry.1 = record;
        }
    }
    let records_info: serde_json::Map<String, Value> = partitions
        .into_iter()
        .map(|(name, (first, last))| {
            (
                name,
                json!({
                    "firstRecordOffset": first.offset.to_string(),
                    "lastRecordOffset": last.offset.to_string(),
                    "firstRecordTimestamp": iso(first.timestamp),
                    "lastRecordTimestamp": iso(last.timestamp),
                }),
            )
        })
        .collect();
    let (request, response) = contexts(failed, origin, request_id);
    let mut batch_info = json!({
        "batchSize": failed.records.len(),
        "bootstrapServers": origin.bootstrap_servers,
        "payloadSize": event_text.len(),
        "recordsInfo": records_info,
    });
    if let Some(arn) = event_source_arn(&event) {
        batch_info["eventSourceArn"] = json!(arn);
    }
    let mut record = json!({
        "requestContext": request,
        "responseContext": response,
        "version": "1.0",
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "KafkaBatchInfo": batch_info,
    });
    if with_payload {
        record["payload"] = json!(event_text);
    }
    record
}

/// The value of the message a Kafka destination gets for one failed record.
pub fn kafka_record(failed: &Failed, record: &Record, origin: &Origin, now: DateTime<Utc>, request_id: &str) -> Value {
    let event = build_event(std::slice::from_ref(record), origin.source, &origin.bootstrap_servers);
    let (request, response) = contexts(failed, origin, request_id);
    let mut batch_info = json!({
        "batchSize": 1,
        "bootstrapServers": origin.bootstrap_servers,
        "payloadSize": event.to_string().len(),
        "recordInfo": {
            "offset": record.offset.to_string(),
            "timestamp": iso(record.timestamp),
        },
    });
    if let Some(arn) = event_source_arn(&event) {
        batch_info["eventSourceArn"] = json!(arn);
    }
    json!({
        "requestContext": request,
        "responseContext": response,
        "version": "1.0",
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "KafkaBatchInfo": batch_info,
        "payload": event,
    })
}

/// A random request id in the UUID form AWS uses.
pub fn request_id() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::thread_rng().gen();
    let hex = hex_string(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::Condition;

    fn record(partition: i32, offset: i64) -> Record {
        Record {
            topic: "orders".into(),
            partition,
            offset,
            timestamp: Some(1_573_691_884_835 + offset),
            timestamp_type: "CREATE_TIME",
            key: Some(b"test-key".to_vec()),
            value: Some(b"test-value".to_vec()),
            headers: Vec::new(),
        }
    }

    fn origin() -> Origin {
        Origin {
            function_arn: "arn:aws:lambda:us-east-1:000000000000:function:ingest".into(),
            source: SourceKind::Msk,
            bootstrap_servers: "b-1:9092".into(),
        }
    }

    fn failed(condition: Condition, attempts: u32) -> Failed {
        Failed {
            records: vec![record(0, 7), record(0, 5), record(1, 2)],
            condition,
            error: (attempts > 0).then(|| "Unhandled function error: boom".to_owned()),
            attempts,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_573_692_006_021).unwrap()
    }

    #[test]
    fn the_sqs_and_sns_record_has_awss_fields_and_no_payload() {
        let record = batch_record(
            &failed(Condition::RetryAttemptsExhausted, 3),
            &origin(),
            false,
            now(),
            "r-1",
        );
        assert_eq!(record["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(record["requestContext"]["requestId"], "r-1");
        assert_eq!(record["responseContext"]["functionError"], "Unhandled");
        assert_eq!(record["version"], "1.0");
        assert_eq!(record["timestamp"], "2019-11-14T00:40:06.021Z");
        let info = &record["KafkaBatchInfo"];
        assert_eq!(info["batchSize"], 3);
        assert_eq!(info["bootstrapServers"], "b-1:9092");
        assert!(info["eventSourceArn"].as_str().unwrap().starts_with("arn:aws:kafka:"));
        assert!(info["payloadSize"].as_u64().unwrap() > 100);
        assert_eq!(
            info["recordsInfo"]["orders-0"],
            json!({"firstRecordOffset": "5", "lastRecordOffset": "7",
                   "firstRecordTimestamp": "2019-11-14T00:38:04.840Z", "lastRecordTimestamp": "2019-11-14T00:38:04.842Z"})
        );
        assert_eq!(info["recordsInfo"]["orders-1"]["firstRecordOffset"], "2");
        assert!(record.get("payload").is_none());
    }

    #[test]
    fn the_s3_record_carries_the_whole_event_as_an_escaped_string() {
        let record = batch_record(
            &failed(Condition::RetryAttemptsExhausted, 1),
            &origin(),
            true,
            now(),
            "r-1",
        );
        let payload: Value = serde_json::from_str(record["payload"].as_str().expect("a string")).unwrap();
        assert_eq!(payload["eventSource"], "aws:kafka");
        assert_eq!(payload["records"]["orders-0"].as_array().unwrap().len(), 2);
        assert_eq!(
            record["KafkaBatchInfo"]["payloadSize"].as_u64(),
            Some(record["payload"].as_str().unwrap().len() as u64)
        );
    }

    #[test]
    fn records_that_never_reached_the_function_have_no_response_context() {
        let record = batch_record(&failed(Condition::RecordAgeExceeded, 0), &origin(), false, now(), "r-1");
        assert_eq!(record["requestContext"]["condition"], "RecordAgeExceeded");
        assert_eq!(record["responseContext"], Value::Null);
    }

    #[test]
    fn a_kafka_destination_message_holds_one_record_and_its_own_event() {
        let failed = failed(Condition::RetryAttemptsExhausted, 3);
        let message = kafka_record(&failed, &failed.records[1], &origin(), now(), "r-1");
        let info = &message["KafkaBatchInfo"];
        assert_eq!(info["batchSize"], 1);
        assert_eq!(
            info["recordInfo"],
            json!({"offset": "5", "timestamp": "2019-11-14T00:38:04.840Z"})
        );
        let records = &message["payload"]["records"]["orders-0"];
        assert_eq!(records.as_array().unwrap().len(), 1);
        assert_eq!(records[0]["offset"], 5);
        assert_eq!(records[0]["key"], "dGVzdC1rZXk=", "AWS's own example key");
        assert_eq!(records[0]["value"], "dGVzdC12YWx1ZQ==");
        assert_eq!(
            info["payloadSize"].as_u64(),
            Some(message["payload"].to_string().len() as u64)
        );
    }

    #[test]
    fn request_ids_look_like_uuids_and_differ() {
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
