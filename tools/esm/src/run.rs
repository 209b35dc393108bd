//! The poll and commit loop. Batches close at `batch_size` records, `batching_window` after their first record,
//! or before a record would take the event over 6 MB (that record starts the next batch). One batch at a time, so each partition is delivered in order; offsets are committed only after the
//! function succeeded. A failed invocation is retried with exponential backoff; a partial batch response
//! (`batchItemFailures`) retries each listed partition from the listed offset.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use shared::dynamo::retry::Backoff;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{EsmConfig, StartingPosition};
use crate::event::{build_event, retain_failed, BatchBuilder, Record};
use crate::invoke::{Invocation, Invoke};

/// What the mapping has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub batches: u64,
    pub records: u64,
    pub failed_invocations: u64,
}

/// Creates the consumer for `config`.
pub fn consumer(config: &EsmConfig) -> anyhow::Result<StreamConsumer> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match config.starting_position {
                StartingPosition::TrimHorizon => "earliest",
                StartingPosition::Latest => "latest",
            },
        )
        .set(
            "topic.metadata.refresh.interval.ms",
            config.metadata_refresh_ms.to_string(),
        )
        .set("session.timeout.ms", "6000")
        // Retries of one batch may take long; the group must not evict the consumer meanwhile.
        .set("max.poll.interval.ms", "86400000")
        .set("allow.auto.create.topics", "false");
    for option in &config.kafka_options {
        let (name, value) = option
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--kafka-option {option:?} is not NAME=VALUE"))?;
        client.set(name, value);
    }
    let consumer: StreamConsumer = client.create()?;
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

/// Runs the mapping until `shutdown` turns true. A batch being delivered is finished (or, if it keeps
/// failing, left uncommitted for the next run) before it returns.
pub async fn run(
    config: &EsmConfig,
    invoker: &dyn Invoke,
    mut shutdown: watch::Receiver<bool>,
    on_progress: &(dyn Fn(&Progress) + Send + Sync),
) -> anyhow::Result<Progress> {
    let consumer = Arc::new(consumer(config)?);
    let mut progress = Progress::default();
    let window = Duration::from_millis(config.batching_window_ms);
    let backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_millis(config.max_backoff_ms.max(100)),
    };
    // A record that did not fit the last batch: it starts the next one.
    let mut carried: Option<Record> = None;
    loop {
        // Wait for the first record of a batch, or shutdown.
        let first = match carried.take() {
            Some(record) => Ok(record),
            None => tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                message = consumer.recv() => message.map(|message| Record::from_message(&message.detach())),
            },
        };
        let first = match first {
            Ok(record) => record,
            Err(err) => {
                if err.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition) {
                    // A pattern that matches no topic yet: new topics are picked up at the next refresh.
                    tracing::debug!(error = %err, "no matching topic yet");
                } else {
                    tracing::warn!(error = %err, "kafka consumer error");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut builder = BatchBuilder::new(config.batch_size as usize);
        builder.offer(first);
        let closes = Instant::now() + window;
        while !builder.is_full() {
            let next = tokio::select! {
                _ = tokio::time::sleep_until(closes) => break,
                message = consumer.recv() => message,
            };
            match next {
                Ok(message) => {
                    if let Some(record) = builder.offer(Record::from_message(&message.detach())) {
                        carried = Some(record);
                        break;
                    }
                }
                Err(err) => tracing::warn!(error = %err, "kafka consumer error"),
            }
        }
        let batch = builder.into_records();
        // Where each partition stands once this batch is done.
        let mut next_offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for record in &batch {
            let entry = next_offsets
                .entry((record.topic.clone(), record.partition))
                .or_insert(0);
            *entry = (*entry).max(record.offset + 1);
        }
        let count = batch.len();
        let mut pending = batch;
        let mut attempt = 0u32;
        let delivered = loop {
            let event = build_event(&pending, config.source, &config.bootstrap_servers);
            let started = Instant::now();
            match invoker.invoke(&event).await {
                Ok(Invocation::Success) => {
                    tracing::info!(
                        records = pending.len(),
                        duration_ms = started.elapsed().as_millis() as u64,
                        "invoked"
                    );
                    break true;
                }
                Ok(Invocation::Partial(failures)) => {
                    tracing::warn!(?failures, "partial batch failure; delivering those partitions again");
                    pending = retain_failed(pending, &failures);
                    if pending.is_empty() {
                        break true;
                    }
                }
                Err(error) => {
                    progress.failed_invocations += 1;
                    tracing::warn!(%error, attempt, records = pending.len(), "invocation failed; offsets not committed, retrying");
                }
            }
            let delay = backoff.ceiling(attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break false,
                _ = tokio::time::sleep(delay) => {}
            }
        };
        if !delivered {
            tracing::info!("stopping with a batch undelivered; it is delivered again on the next start");
            break;
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in &next_offsets {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        // A synchronous commit blocks until the broker answers (for as long as it is down): off the runtime's
        // threads, so that everything else on them (other tasks, the timers of a test) goes on meanwhile.
        let committing = consumer.clone();
        match tokio::task::spawn_blocking(move || committing.commit(&offsets, CommitMode::Sync)).await {
            Ok(Ok(())) => {}
            // Not fatal: the records are stored, and redelivery of stored records is idempotent.
            Ok(Err(err)) => tracing::warn!(error = %err, "offset commit failed; the batch may be delivered again"),
            Err(err) => tracing::warn!(error = %err, "offset commit did not finish; the batch may be delivered again"),
        }
        progress.batches += 1;
        progress.records += count as u64;
        on_progress(&progress);
    }
    consumer.unsubscribe();
    Ok(progress)
}
