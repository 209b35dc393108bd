//! What the ingest function tells its operators, against a real moto server: exactly one JSON summary line per
//! invocation (records, bytes, stored, retried, failed, write units, duration), CloudWatch Embedded Metric Format metrics for
//! the same, and no payload in the logs unless `LOG_PAYLOADS=true`. Its own test binary: the metrics recorder is
//! global to the process, so no other test may count into it.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration_tests::{event_bytes, kafka_event, EventRecord, TestEnv};
use serde_json::{json, Value};

const BUDGET: Duration = Duration::from_secs(60);
const SECRET: &str = "card-4111-1111-1111-1111";

/// The log lines written while it lives, as the function writes them (JSON, one per line).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn take(&self) -> Vec<Value> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}")))
            .collect()
    }
}

fn summaries(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|line| line["fields"]["message"] == "invocation summary")
        .collect()
}

#[tokio::test]
async fn one_summary_line_and_emf_metrics_per_invocation_and_no_payload_in_the_logs() {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace("NotificationEventLog")
        .with_dimension("function", "ingest")
        .init()
        .expect("the metrics recorder installs");
    let logs = Captured::default();
    let writer = logs.clone();
    // The function's own log format (functions/ingest/src/main.rs), written to a buffer.
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let env = TestEnv::new().await;
    let records: Vec<EventRecord> = (0..30)
        .map(|i| EventRecord::json("orders", i % 3, i, json!({"orderId": format!("o-{i}"), "card": SECRET})))
        .collect();
    let event = kafka_event(&records);
    let bytes: usize = records.iter().map(|r| r.value.as_ref().map_or(0, Vec::len)).sum();

    let (_, summary) = env.ingest(&[]).process(event_bytes(&event), BUDGET).await.unwrap();
    let lines = logs.take();
    let found = summaries(&lines);
    assert_eq!(found.len(), 1, "one summary line per invocation: {lines:?}");
    let fields = &found[0]["fields"];
    assert_eq!(fields["records"], 30);
    assert_eq!(fields["bytes"], bytes);
    assert_eq!(fields["stored"], 30);
    assert_eq!(fields["failed"], 0);
    assert!(fields["retried"].is_u64() && fields["duration_ms"].is_u64(), "{fields}");
    // What the server said the writes cost (moto: 1 per request; dynalite: by item size).
    assert!(summary.write_units > 0, "{summary:?}");
    assert_eq!(fields["write_units"], summary.write_units);
    assert_eq!(found[0]["level"], "INFO");
    assert_eq!(summary.stored, 30);
    let text = serde_json::to_string(&lines).unwrap();
    assert!(!text.contains(SECRET), "a payload reached the logs by default: {text}");

    // An event that is not a Kafka event: still one summary line, and the error.
    let not_kafka = env
        .ingest(&[])
        .process(event_bytes(&json!({"Records": []})), BUDGET)
        .await;
    assert!(not_kafka.is_err());
    let lines = logs.take();
    assert_eq!(summaries(&lines).len(), 1, "{lines:?}");
    assert!(lines.iter().any(|l| l["level"] == "ERROR"), "{lines:?}");

    // Opted in: the payloads are logged.
    let (_, opted_in) = env
        .ingest(&[("LOG_PAYLOADS", "true")])
        .process(event_bytes(&event), BUDGET)
        .await
        .unwrap();
    let lines = logs.take();
    assert!(serde_json::to_string(&lines).unwrap().contains(SECRET));

    // The metrics of all three invocations, in Embedded Metric Format.
    let mut emf = Vec::new();
    collector.flush(&mut emf).unwrap();
    let documents: Vec<Value> = String::from_utf8(emf)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let metric = |name: &str| -> f64 {
        documents
            .iter()
            .filter(|d| d.get(name).is_some())
            .map(|d| d[name].as_f64().unwrap_or_default())
            .sum()
    };
    let declared: Vec<&str> = documents
        .iter()
        .flat_map(|d| d["_aws"]["CloudWatchMetrics"].as_array().into_iter().flatten())
        .flat_map(|m| m["Metrics"].as_array().into_iter().flatten())
        .filter_map(|m| m["Name"].as_str())
        .collect();
    // Counters that stayed at zero (retries, failures) are not emitted, as in the function.
    for name in [
        "RecordsReceived",
        "BytesReceived",
        "RecordsStored",
        "EventsRejected",
        "WriteUnits",
    ] {
        assert!(declared.contains(&name), "{name} not declared: {documents:?}");
    }
    assert!(documents
        .iter()
        .all(|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "NotificationEventLog"));
    assert_eq!(metric("RecordsReceived"), 60.0);
    assert_eq!(metric("RecordsStored"), 60.0);
    assert_eq!(metric("BytesReceived"), 2.0 * bytes as f64);
    assert_eq!(metric("EventsRejected"), 1.0);
    assert_eq!(
        metric("WriteUnits"),
        (summary.write_units + opted_in.write_units) as f64
    );
}
