//! The poll and commit loop. Batches close at `batch_size` records, `batching_window` after their first record,
//! or before a record would take the event over 6 MB (that record starts the next batch). One batch at a time, so each partition is delivered in order; offsets are committed only after the
//! function succeeded, or its failed records reached the on-failure destination (`deliver.rs`: retries, record
//! age, bisection, partial batch responses).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{Destination, EsmConfig, StartingPosition};
use crate::deliver::{deliver, OnFailure, Policy};
use crate::destination::{AwsDestination, KafkaDestination};
use crate::event::{BatchBuilder, Record};
use crate::failure::Origin;
use crate::filter::Filters;
use crate::invoke::Invoke;
use crate::rebalance::{Partition, PollerContext, Uncommitted};

/// What the mapping has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub batches: u64,
    /// Invocations made (first attempts, retries and bisected halves).
    pub invocations: u64,
    pub records: u64,
    pub failed_invocations: u64,
    /// Records given up on (out of retries or age) and sent to the on-failure destination.
    pub sent_to_destination: u64,
    /// Records given up on with no destination to send them to.
    pub discarded: u64,
    /// Records that matched none of the filter patterns: skipped and committed.
    pub filtered_out: u64,
    /// Batches each poller delivered.
    pub batches_by_poller: Vec<u64>,
    /// AT_TIMESTAMP: records older than the starting time, skipped and committed.
    pub before_start: u64,
    /// Records deleted by retention before they were read, in all and by `topic-partition`.
    pub lost_to_retention: u64,
    pub lost_by_partition: BTreeMap<String, u64>,
    /// Partition assignments the pollers received: one per poller per group rebalance.
    pub rebalances: u64,
    /// Records dropped from a batch being built because a rebalance revoked their partition (fetched again from
    /// the committed offset by the partition's next owner, never lost).
    pub dropped_at_rebalance: u64,
}

/// Creates a poller's consumer for `config`; `rebalances` counts the assignments it receives, `uncommitted` holds
/// the delivered offsets whose commit failed, for whichever poller gets their partitions next.
fn consumer(
    config: &EsmConfig,
    rebalances: Arc<AtomicU64>,
    uncommitted: Arc<Uncommitted>,
    index: usize,
) -> anyhow::Result<StreamConsumer<PollerContext>> {
    let refresh = config.metadata_refresh_ms.to_string();
    let client = config.client_config(&[
        ("group.id", &config.group_id),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        (
            "auto.offset.reset",
            match config.starting_position {
                // AT_TIMESTAMP reads a new partition from its start and skips what is older (`Shared::skip_before`).
                StartingPosition::TrimHorizon | StartingPosition::AtTimestamp => "earliest",
                StartingPosition::Latest => "latest",
            },
        ),
        ("topic.metadata.refresh.interval.ms", &refresh),
        ("session.timeout.ms", "6000"),
        // Retries of one batch may take long; the group must not evict the consumer meanwhile.
        ("max.poll.interval.ms", "86400000"),
        ("allow.auto.create.topics", "false"),
    ])?;
    let consumer: StreamConsumer<PollerContext> =
        client.create_with_context(PollerContext::new(rebalances, uncommitted, index))?;
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

/// Runs the mapping until `shutdown` turns true, as `config.pollers` consumers of one group (AWS's provisioned
/// pollers), each delivering its own partitions' batches concurrently. A batch being delivered is finished (or,
/// if it keeps failing, left uncommitted for the next run) before it returns. `on_progress` sees the totals of
/// every poller after each batch.
pub async fn run(
    config: &EsmConfig,
    invoker: &dyn Invoke,
    shutdown: watch::Receiver<bool>,
    on_progress: &(dyn Fn(&Progress) + Send + Sync),
) -> anyhow::Result<Progress> {
    let origin = Origin {
        function_arn: function_arn(&invoker.function_name()),
        source: config.source,
        bootstrap_servers: config.bootstrap_servers.clone(),
    };
    let destination: Option<Box<dyn OnFailure>> = match config.destination()? {
        Some(Destination::Kafka(topic)) => Some(Box::new(KafkaDestination::new(config, &topic, origin)?)),
        Some(service) => {
            let aws = match &config.destination_aws {
                Some(aws) => aws.clone(),
                None => aws_config::load_from_env().await,
            };
            Some(Box::new(
                AwsDestination::new(&service, &aws, &config.group_id, origin).await?,
            ))
        }
        None => None,
    };
    let skip_before = match config.start_at()? {
        Some(at) => {
            // Broker calls that block: off the runtime's threads.
            let owned = config.clone();
            // A group coordinator still loading (a broker just started, or busy) fails the lookup for a while:
            // it is tried again before the mapping gives up.
            let mut attempt = 0;
            let starting = loop {
                let lookup = owned.clone();
                match tokio::task::spawn_blocking(move || partitions_without_offsets(&lookup)).await? {
                    Ok(starting) => break starting,
                    Err(err) if attempt < 5 => {
                        attempt += 1;
                        tracing::warn!(error = %err, attempt, "AT_TIMESTAMP: looking up the group's offsets failed; trying again");
                        tokio::time::sleep(Duration::from_secs(attempt)).await;
                    }
                    Err(err) => return Err(err.context("AT_TIMESTAMP: looking up the group's committed offsets")),
                }
            };
            tracing::info!(
                ?starting,
                at,
                "AT_TIMESTAMP: these partitions start at the first record at or after it"
            );
            Some((at, Mutex::new(starting)))
        }
        None => None,
    };
    let shared = Shared {
        config,
        skip_before,
        expected: Mutex::new(BTreeMap::new()),
        invoker,
        policy: Policy::from_config(config),
        filters: config.filters()?,
        destination: destination.as_deref(),
        progress: Mutex::new(Progress {
            batches_by_poller: vec![0; config.pollers.max(1) as usize],
            ..Progress::default()
        }),
        rebalances: Arc::new(AtomicU64::new(0)),
        uncommitted: Arc::new(Uncommitted::new(config.pollers.max(1) as usize)),
        on_progress,
    };
    let pollers = (0..config.pollers.max(1) as usize).map(|index| poll(&shared, index, shutdown.clone()));
    let (results, ()) = futures::future::join(
        futures::future::join_all(pollers),
        crate::status::report(config, &shared.progress, shutdown.clone()),
    )
    .await;
    for result in results {
        result?;
    }
    let mut progress = shared.progress.lock().map(|p| p.clone()).unwrap_or_default();
    progress.rebalances = shared.rebalances.load(Ordering::Relaxed);
    Ok(progress)
}

/// The partitions of `config`'s topics that the group has no committed offset for.
fn partitions_without_offsets(config: &EsmConfig) -> anyhow::Result<BTreeSet<Partition>> {
    use rdkafka::consumer::BaseConsumer;
    let consumer: BaseConsumer = config.client_config(&[("group.id", &config.group_id)])?.create()?;
    let mut partitions = TopicPartitionList::new();
    for topic in &config.topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for found in metadata.topics() {
            for partition in found.partitions() {
                partitions.add_partition(found.name(), partition.id());
            }
        }
    }
    let committed = consumer.committed_offsets(partitions, Duration::from_secs(10))?;
    Ok(committed
        .elements()
        .iter()
        .filter(|e| !matches!(e.offset(), Offset::Offset(_)))
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect())
}

/// Retention loss is never silent: when a partition goes on past a gap that starts below its low watermark, the
/// records in between were deleted by retention before they were read (librdkafka then starts again at the
/// oldest record it has). Says which partition and how many, and counts them. Gaps the partition still holds
/// the start of (compaction, transaction markers) are not losses.
async fn lost_to_retention(shared: &Shared<'_>, consumer: &Arc<StreamConsumer<PollerContext>>, batch: &[Record]) {
    for record in batch {
        let key: Partition = (record.topic.clone(), record.partition);
        let known = shared.expected.lock().ok().and_then(|e| e.get(&key).copied());
        let expected = match known {
            Some(expected) => Some(expected),
            None => {
                // First seen: where the group left it, if anywhere.
                let (owned, lookup) = (key.clone(), consumer.clone());
                tokio::task::spawn_blocking(move || {
                    let mut list = TopicPartitionList::new();
                    list.add_partition(&owned.0, owned.1);
                    let committed = lookup.committed_offsets(list, Duration::from_secs(10)).ok()?;
                    let element = committed.elements().into_iter().next()?;
                    match element.offset() {
                        Offset::Offset(offset) => Some(offset),
                        _ => None,
                    }
                })
                .await
                .ok()
                .flatten()
            }
        };
        if let Some(expected) = expected.filter(|expected| record.offset > *expected) {
            let (owned, lookup) = (key.clone(), consumer.clone());
            let low = tokio::task::spawn_blocking(move || {
                lookup
                    .fetch_watermarks(&owned.0, owned.1, Duration::from_secs(10))
                    .ok()
                    .map(|(low, _)| low)
            })
            .await
            .ok()
            .flatten();
            if let Some(low) = low.filter(|low| *low > expected) {
                let lost = low.min(record.offset) - expected;
                tracing::warn!(
                    partition = format!("{}-{}", record.topic, record.partition),
                    lost,
                    from = expected,
                    to = low.min(record.offset) - 1,
                    "records were deleted by retention before they were read: they never reached the function"
                );
                if let Ok(mut progress) = shared.progress.lock() {
                    progress.lost_to_retention += lost as u64;
                    *progress
                        .lost_by_partition
                        .entry(format!("{}-{}", record.topic, record.partition))
                        .or_default() += lost as u64;
                }
            }
        }
        if let Ok(mut expected) = shared.expected.lock() {
            expected.insert(key, record.offset + 1);
        }
    }
}

/// The function's ARN as invocation records name it: a name becomes an ARN in the configured region, with the
/// account id local emulators use.
pub fn function_arn(function: &str) -> String {
    if function.starts_with("arn:") {
        return function.to_owned();
    }
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| "us-east-1".into());
    format!("arn:aws:lambda:{region}:000000000000:function:{function}")
}

/// What the pollers of one mapping share.
struct Shared<'a> {
    config: &'a EsmConfig,
    /// AT_TIMESTAMP: the time in epoch milliseconds, and the partitions that had no committed offset when the
    /// mapping started and have not reached a record at or after it yet. Their older records are skipped (and
    /// committed): the partition starts at its first record at or after the time, as AWS's does. (The records
    /// are read to find it because librdkafka's mock cluster, the embedded broker, cannot look offsets up by
    /// time.)
    skip_before: Option<(i64, Mutex<BTreeSet<Partition>>)>,
    /// The offset each partition should go on from: the group's committed offset when first seen, then the one
    /// after the last record read.
    expected: Mutex<BTreeMap<Partition, i64>>,
    invoker: &'a dyn Invoke,
    policy: Policy,
    filters: Filters,
    destination: Option<&'a dyn OnFailure>,
    progress: Mutex<Progress>,
    /// Partition assignments every poller received.
    rebalances: Arc<AtomicU64>,
    /// Delivered offsets whose commit failed.
    uncommitted: Arc<Uncommitted>,
    on_progress: &'a (dyn Fn(&Progress) + Send + Sync),
}

/// One poller: its own consumer in the group, one batch at a time.
async fn poll(shared: &Shared<'_>, index: usize, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let Shared {
        config,
        invoker,
        policy,
        filters,
        destination,
        ..
    } = shared;
    let consumer = Arc::new(consumer(
        config,
        shared.rebalances.clone(),
        shared.uncommitted.clone(),
        index,
    )?);
    let window = Duration::from_millis(config.batching_window_ms);
    // A record that did not fit the last batch: it starts the next one.
    let mut carried: Option<Record> = None;
    // Records dropped from batches being built because a rebalance revoked their partition.
    let mut dropped = 0;
    loop {
        // Wait for the first record of a batch, or shutdown.
        let first = match carried.take() {
            Some(record) => Ok(record),
            None => tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                message = consumer.recv() => message.map(|message| Record::from_message(&message.detach())),
            },
        };
        // A revocation while waiting had no batch to take records from; the record just received (or carried
        // over from the last batch, received after that batch's revocations) is the new assignment's.
        let mut builder = BatchBuilder::new(config.batch_size as usize);
        consumer.context().drop_revoked(&mut builder);
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
        builder.offer(first);
        let closes = Instant::now() + window;
        while !builder.is_full() {
            let next = tokio::select! {
                _ = tokio::time::sleep_until(closes) => break,
                message = consumer.recv() => message,
            };
            // A rebalance runs inside `recv`: what it revoked leaves the batch before the record it returned
            // (fetched after the rebalance) joins it.
            dropped += consumer.context().drop_revoked(&mut builder);
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
        // A `recv` cut short by the window may have run a rebalance too.
        dropped += consumer.context().drop_revoked(&mut builder);
        if builder.is_empty() {
            continue;
        }
        let batch = builder.into_records();
        lost_to_retention(shared, &consumer, &batch).await;
        // Where each partition stands once this batch is done.
        let mut next_offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for record in &batch {
            let entry = next_offsets
                .entry((record.topic.clone(), record.partition))
                .or_insert(0);
            *entry = (*entry).max(record.offset + 1);
        }
        let count = batch.len();
        // AT_TIMESTAMP: a partition without a committed offset starts at its first record at or after the time.
        let (batch, early): (Vec<Record>, Vec<Record>) = match &shared.skip_before {
            None => (batch, Vec::new()),
            Some((at, starting)) => {
                let mut starting = starting.lock().map_err(|_| anyhow::anyhow!("a poller panicked"))?;
                batch.into_iter().partition(|record| {
                    let key = (record.topic.clone(), record.partition);
                    if !starting.contains(&key) {
                        return true;
                    }
                    if record.timestamp.is_some_and(|ts| ts < *at) {
                        return false;
                    }
                    starting.remove(&key);
                    true
                })
            }
        };
        // FilterCriteria: records that match no pattern never reach the function, and are committed.
        let (batch, skipped): (Vec<Record>, Vec<Record>) = batch
            .into_iter()
            .partition(|record| filters.pass(record.value.as_deref()));
        let Some(delivered) = deliver(batch, *invoker, policy, *destination, &mut shutdown).await else {
            tracing::info!(
                poller = index,
                "stopping with a batch undelivered; it is delivered again on the next start"
            );
            break;
        };
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in &next_offsets {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        // A synchronous commit blocks until the broker answers (for as long as it is down): off the runtime's
        // threads, so that everything else on them (other tasks, the timers of a test) goes on meanwhile.
        let committing = consumer.clone();
        match tokio::task::spawn_blocking(move || committing.commit(&offsets, CommitMode::Sync)).await {
            Ok(Ok(())) => shared.uncommitted.forget(&next_offsets),
            // Not fatal: the next owner of these partitions in this mapping starts after the delivered records
            // and commits them; another process's consumer would deliver them again (stored idempotently).
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "offset commit failed; kept to commit at the next assignment");
                shared.uncommitted.remember(&next_offsets);
            }
            Err(err) => {
                tracing::warn!(error = %err, "offset commit did not finish; kept to commit at the next assignment");
                shared.uncommitted.remember(&next_offsets);
            }
        }
        let given_up = delivered.failed_records() as u64;
        if let Ok(mut progress) = shared.progress.lock() {
            progress.batches += 1;
            progress.batches_by_poller[index] += 1;
            progress.records += count as u64;
            progress.filtered_out += skipped.len() as u64;
            progress.before_start += early.len() as u64;
            progress.failed_invocations += delivered.failed_invocations;
            progress.invocations += delivered.invocations;
            progress.dropped_at_rebalance += std::mem::take(&mut dropped) as u64;
            progress.rebalances = shared.rebalances.load(Ordering::Relaxed);
            if destination.is_some() {
                progress.sent_to_destination += given_up;
            } else {
                progress.discarded += given_up;
            }
            (shared.on_progress)(&progress);
        }
    }
    consumer.unsubscribe();
    Ok(())
}
