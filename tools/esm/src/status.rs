//! The status line: every `--status-interval-seconds`, what the mapping has done and how far behind it is, as a
//! log line and, with `--status-json PATH`, as a JSON file for tools (written to a temporary file and renamed,
//! so a reader never sees half of one). Lag is each partition's high watermark minus the group's committed
//! offset (or its low watermark when nothing is committed yet), read from the broker.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::run::Progress;
use crate::EsmConfig;

/// Reads each partition's lag: one client for the mapping's life, and its topics' names and patterns.
pub struct Lag {
    consumer: BaseConsumer,
    names: Vec<String>,
    patterns: Vec<regex::Regex>,
}

impl Lag {
    pub fn new(config: &EsmConfig) -> anyhow::Result<Lag> {
        Ok(Lag {
            consumer: config.client_config(&[("group.id", &config.group_id)])?.create()?,
            names: config.topics.iter().filter(|t| !t.starts_with('^')).cloned().collect(),
            patterns: config
                .topics
                .iter()
                .filter(|t| t.starts_with('^'))
                .filter_map(|t| regex::Regex::new(t).ok())
                .collect(),
        })
    }

    /// Each partition's lag, by `topic-partition` (blocking: broker calls).
    pub fn read(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        let consumer = &self.consumer;
        let metadata = consumer.fetch_metadata(None, Duration::from_secs(5))?;
        let mut partitions = TopicPartitionList::new();
        for topic in metadata.topics() {
            let name = topic.name();
            if self.names.iter().any(|t| t == name) || self.patterns.iter().any(|p| p.is_match(name)) {
                for partition in topic.partitions() {
                    partitions.add_partition(name, partition.id());
                }
            }
        }
        let committed = consumer.committed_offsets(partitions, Duration::from_secs(5))?;
        let mut lags = BTreeMap::new();
        for element in committed.elements() {
            let (low, high) =
                consumer.fetch_watermarks(element.topic(), element.partition(), Duration::from_secs(5))?;
            let position = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => low,
            };
            lags.insert(
                format!("{}-{}", element.topic(), element.partition()),
                (high - position).max(0),
            );
        }
        Ok(lags)
    }
}

/// One status, as JSON.
pub fn status(progress: &Progress, per_second: f64, lags: &BTreeMap<String, i64>) -> Value {
    json!({
        "records": progress.records,
        "records_per_second": (per_second * 10.0).round() / 10.0,
        "batches": progress.batches,
        "invocations": progress.invocations,
        "failed_invocations": progress.failed_invocations,
        "sent_to_destination": progress.sent_to_destination,
        "discarded": progress.discarded,
        "filtered_out": progress.filtered_out,
        "before_start": progress.before_start,
        "lost_to_retention": progress.lost_to_retention,
        "lost_by_partition": progress.lost_by_partition,
        "batches_by_poller": progress.batches_by_poller,
        "rebalances": progress.rebalances,
        "dropped_at_rebalance": progress.dropped_at_rebalance,
        "lag": lags.values().sum::<i64>(),
        "lag_by_partition": lags,
    })
}

/// The status as one line.
pub fn line(status: &Value) -> String {
    let lags: Vec<String> = status["lag_by_partition"]
        .as_object()
        .map(|m| m.iter().map(|(p, l)| format!("{p}={l}")).collect())
        .unwrap_or_default();
    format!(
        "status: records={} ({}/s) invocations={} failed_invocations={} sent_to_destination={} discarded={} \
         filtered_out={} lost_to_retention={} rebalances={} lag={} [{}]",
        status["records"],
        status["records_per_second"],
        status["invocations"],
        status["failed_invocations"],
        status["sent_to_destination"],
        status["discarded"],
        status["filtered_out"],
        status["lost_to_retention"],
        status["rebalances"],
        status["lag"],
        lags.join(" ")
    )
}

fn write_json(path: &std::path::Path, status: &Value) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, format!("{status:#}\n"))?;
    std::fs::rename(&temporary, path)
}

/// Reports the status every interval until `shutdown`; nothing when the interval is 0.
pub async fn report(config: &EsmConfig, progress: &Mutex<Progress>, mut shutdown: watch::Receiver<bool>) {
    if config.status_interval_seconds == 0 {
        return;
    }
    let interval = Duration::from_secs(config.status_interval_seconds);
    let lag = match Lag::new(config) {
        Ok(lag) => Some(std::sync::Arc::new(lag)),
        Err(error) => {
            tracing::warn!(%error, "status: no client to read the lag with");
            None
        }
    };
    let mut last_records = 0u64;
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let snapshot = progress.lock().map(|p| p.clone()).unwrap_or_default();
        let elapsed = last.elapsed().as_secs_f64().max(0.001);
        let per_second = (snapshot.records - last_records) as f64 / elapsed;
        (last_records, last) = (snapshot.records, tokio::time::Instant::now());
        let lags = match lag.clone() {
            Some(lag) => match tokio::task::spawn_blocking(move || lag.read()).await {
                Ok(Ok(lags)) => lags,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "status: the lag could not be read");
                    BTreeMap::new()
                }
                Err(_) => BTreeMap::new(),
            },
            None => BTreeMap::new(),
        };
        let status = status(&snapshot, per_second, &lags);
        tracing::info!("{}", line(&status));
        if let Some(path) = &config.status_json {
            if let Err(error) = write_json(path, &status) {
                tracing::warn!(%error, path = %path.display(), "status: the JSON file could not be written");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_says_what_was_done_and_the_lag_by_partition() {
        let progress = Progress {
            records: 1200,
            batches: 12,
            invocations: 14,
            failed_invocations: 2,
            sent_to_destination: 1,
            batches_by_poller: vec![7, 5],
            rebalances: 4,
            ..Progress::default()
        };
        let lags = BTreeMap::from([("orders-0".to_owned(), 3), ("orders-1".to_owned(), 0)]);
        let status = status(&progress, 123.456, &lags);
        assert_eq!(status["lag"], 3);
        assert_eq!(status["records_per_second"], 123.5);
        assert_eq!(
            line(&status),
            "status: records=1200 (123.5/s) invocations=14 failed_invocations=2 sent_to_destination=1 discarded=0 \
             filtered_out=0 lost_to_retention=0 rebalances=4 lag=3 [orders-0=3 orders-1=0]"
        );
    }
}
