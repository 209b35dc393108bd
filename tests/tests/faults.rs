//! The fault suite (the failure rules under stress): records pushed through the local stack by two pollers of
//! one consumer group (two mapping instances), each killed and restarted once mid-batch (while the function is
//! handling one of its batches), which forces four rebalances; a few poison records that the function always
//! rejects, which bisection isolates and MaximumRetryAttempts (20) sends to a Kafka dead-letter topic; the
//! DynamoDB endpoint refuses connections for a while, the DynamoDB server (dynalite, on LevelDB) is killed with
//! SIGKILL while writes are in flight and started again on the same directory, with nothing replayed: what it
//! acknowledged must still be there (moto keeps S3), the Kafka broker is stopped and started again, and a fault layer throttles 30% of writes and leaves items unprocessed. At the
//! end it counts what was stored and prints `records=N stored=N lost=0 duplicated=0 pollers=2 rebalances=4
//! assignments=A poison=P dead_lettered=P` (A: the partition assignments the pollers running at the end received). The broker restart needs
//! a real broker process (`KAFKA_RESTART_COMMAND`); against the embedded mock cluster it is skipped, and says so.
//!
//! `make test` runs it with 4,000 records; `make faults` with 100,000 (`FAULT_RECORDS`). The Tansu tier runs
//! it against Tansu, restarted by `scripts/tansu.sh restart` (`KAFKA_RESTART_COMMAND`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use esm::{EsmConfig, InProcess, Invocation, Invoke, InvokeError};
use integration_tests::fault_proxy::{self, FaultPlan};
use integration_tests::kafka::{Recording, RejectsPoison, TestKafka, POISON};
use integration_tests::{own_dynalite, own_moto, unique, TestEnv};
use notifications_cli::produce;
use tokio::sync::watch;
use tokio::time::Instant;

type MappingTask = tokio::task::JoinHandle<anyhow::Result<esm::Progress>>;

fn start_mapping(config: &EsmConfig, invoker: Arc<dyn Invoke>) -> (watch::Sender<bool>, MappingTask) {
    let (stop, stopping) = watch::channel(false);
    let config = config.clone();
    let task = tokio::spawn(async move { esm::run(&config, invoker.as_ref(), stopping, &|_| {}).await });
    (stop, task)
}

/// Counts the invocations in progress, so that the mapping can be killed while one is: mid-batch.
struct InFlight {
    inner: Arc<dyn Invoke>,
    now: Arc<AtomicUsize>,
}

/// Ends an invocation's count even when its task is aborted mid-way.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Invoke for InFlight {
    async fn invoke(&self, event: &Value) -> Result<Invocation, InvokeError> {
        self.now.fetch_add(1, Ordering::SeqCst);
        let _counted = Counted(self.now.clone());
        self.inner.invoke(event).await
    }
}

/// The source offsets of the records in the dead-letter topic (each once, however often it was written).
fn dead_lettered(kafka: &TestKafka, topic: &str, at_least: usize) -> HashSet<(i64, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .set("group.id", unique("dlt-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("a consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut found = HashSet::new();
    let until = std::time::Instant::now() + Duration::from_secs(30);
    let mut quiet = 0;
    while std::time::Instant::now() < until && (found.len() < at_least || quiet < 5) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                quiet = 0;
                let value: Value = message
                    .payload()
                    .and_then(|v| serde_json::from_slice(v).ok())
                    .unwrap_or_default();
                for records in value["payload"]["records"]
                    .as_object()
                    .into_iter()
                    .flat_map(|g| g.values())
                {
                    for record in records.as_array().into_iter().flatten() {
                        found.insert((
                            record["partition"].as_i64().unwrap_or(-1),
                            record["offset"].as_i64().unwrap_or(-1),
                        ));
                    }
                }
            }
            _ => quiet += 1,
        }
    }
    found
}

/// Kills the mapping while the function is handling one of its batches (nothing of that batch committed).
async fn kill_mid_batch(mapping: MappingTask, in_flight: &AtomicUsize, deadline: Instant) -> usize {
    while in_flight.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no invocation to interrupt");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let interrupted = in_flight.load(Ordering::SeqCst);
    mapping.abort();
    let _ = mapping.await;
    interrupted
}

async fn wait_until_delivered(recording: &Recording, count: usize, deadline: Instant) {
    while recording.delivered().len() < count {
        assert!(
            Instant::now() < deadline,
            "stuck at {} delivered records",
            recording.delivered().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many distinct records the function has acknowledged (redeliveries counted once).
fn distinct_delivered(recording: &Recording) -> usize {
    let delivered = recording.delivered();
    delivered
        .iter()
        .map(|d| (d.partition, d.offset))
        .collect::<HashSet<_>>()
        .len()
}

#[tokio::test]
async fn nothing_is_lost_or_duplicated_while_everything_fails_around_the_pipeline() {
    let records: usize = std::env::var("FAULT_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000);
    let kafka = TestKafka::start();
    // A DynamoDB server of this test's own, on a directory, behind the fault layer: the test kills it and starts
    // it again. moto serves S3 (payloads over the item limit) behind the same endpoint.
    let data = std::env::temp_dir().join(unique("faults-dynalite"));
    let mut dynalite = own_dynalite(Some(&data));
    let moto = own_moto();
    let mut proxy = fault_proxy::start_split(
        &dynalite.endpoint,
        &moto.endpoint,
        FaultPlan {
            throttle: 0.3,
            unprocess: 0.3,
            server_error: 0.02,
            seed: 42,
        },
    )
    .await;
    let env = TestEnv::on(&proxy.endpoint).await;
    let topic = unique("faults");
    // Enough partitions that no partition holds more than ~4,000 records (~2.5 MB): the embedded mock cluster
    // keeps at most 5 MB per partition and deletes the oldest records beyond that, as retention would, so at
    // 100,000 records on 4 partitions the broker itself dropped records before the mapping could read them.
    let partitions = (records / 4_000).max(4) as i32;
    kafka.create_topic(&topic, partitions).await;
    let dead_letters = unique("faults-dlt");
    kafka.create_topic(&dead_letters, 1).await;
    let mut messages = produce::generate(records, 77, Some(&topic));
    // A few poison records among them, spread over the run.
    let poison = 5;
    for i in 0..poison {
        let at = (i * 2 + 1) * messages.len() / (poison * 2 + 1);
        messages.insert(
            at,
            produce::Outgoing {
                topic: topic.clone(),
                key: Some(format!("poison-{i}").into_bytes()),
                value: Some(POISON.to_vec()),
                headers: Vec::new(),
            },
        );
    }
    // The last tenth is held back until the second poller is to be killed. All at once, the backlog of that
    // poller's partitions could run out before the kill (the restarted first poller lagging behind on its own),
    // and there was no invocation left to interrupt: the test failed in CI that way.
    let held_back = messages.split_off(messages.len() - messages.len() / 10);
    let producer = produce::producer(&kafka.bootstrap).expect("producer");
    produce::send_all(&producer, &messages, 0.0)
        .await
        .expect("the first nine tenths produced");

    let ingest = Arc::new(env.ingest(&[("DEADLINE_MARGIN_MS", "200")]));
    let recording = Recording::new(Arc::new(InProcess {
        ingest,
        timeout: Duration::from_secs(5),
    }));
    // Two pollers: two instances of the mapping in one group, each with its own count of invocations in flight.
    let in_flight = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let invokers: Vec<Arc<dyn Invoke>> = in_flight
        .iter()
        .map(|now| {
            Arc::new(InFlight {
                // The function rejects the poison records, however often they are retried.
                inner: Arc::new(RejectsPoison {
                    inner: recording.clone(),
                }),
                now: now.clone(),
            }) as Arc<dyn Invoke>
        })
        .collect();
    let mut config = EsmConfig::new(&kafka.bootstrap);
    config.group_id = unique("group");
    config.topics = vec![topic.clone()];
    config.batch_size = 500;
    config.batching_window_ms = 100;
    config.max_backoff_ms = 1_000;
    // Enough retries to ride out the DynamoDB outages below (each retry waits up to max_backoff_ms, and a failing
    // invocation takes up to its 5 s timeout), so that only the poison records run out of them. With 2, a record
    // bisected down to itself during the server restart ran out too, and went to the dead-letter topic instead
    // of the table: AWS's semantics, and the reason MaximumRetryAttempts must cover the outages one expects.
    config.maximum_retry_attempts = 20;
    config.bisect_batch_on_function_error = true;
    config.on_failure = Some(format!("kafka://{dead_letters}"));
    // A guard against a hang, not a claim about speed: at 4,000 records a run takes 110 s on a quiet machine and
    // 175 s in a fresh clone's `make test` on 2 cores.
    let deadline = Instant::now() + Duration::from_secs(200 + records as u64 / 40);
    let step = |n: usize| records * n / 10;

    // The first poller is killed mid-stream (no graceful stop, nothing committed for the batch in hand), then
    // started again: the group rebalances when it goes and when it comes back.
    let mut rebalances = 0;
    let (_stop_a, first) = start_mapping(&config, invokers[0].clone());
    let (_stop_b, second) = start_mapping(&config, invokers[1].clone());
    wait_until_delivered(&recording, step(2), deadline).await;
    let interrupted = kill_mid_batch(first, &in_flight[0], deadline).await;
    eprintln!(
        "faults: poller 1 of 2 killed with {interrupted} invocation in flight at {} delivered records, restarted",
        recording.delivered().len()
    );
    let (stop_a, first) = start_mapping(&config, invokers[0].clone());
    rebalances += 2;

    // The DynamoDB endpoint refuses connections for a while, then comes back.
    wait_until_delivered(&recording, step(4), deadline).await;
    proxy.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.resume().await;
    eprintln!("faults: DynamoDB endpoint refused connections for 3 s");

    // The DynamoDB server is killed with writes in flight, and started again on its directory: no replay.
    wait_until_delivered(&recording, step(5), deadline).await;
    let before = proxy.counts.operation("BatchWriteItem");
    dynalite.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    dynalite.restart().expect("dynalite starts again on its directory");
    eprintln!("faults: DynamoDB server killed (SIGKILL) after {before} batch writes, started again on its directory");

    // The Kafka broker stops and starts again.
    wait_until_delivered(&recording, step(6), deadline).await;
    let broker = match kafka.restart_broker(Duration::from_secs(3)).await {
        Ok(done) => done,
        Err(skipped) => skipped.to_owned(),
    };
    eprintln!("faults: broker restart: {broker}");

    // The other poller is killed mid-batch, and started again.
    wait_until_delivered(&recording, step(8), deadline).await;
    produce::send_all(&producer, &held_back, 0.0)
        .await
        .expect("the last tenth produced");
    let interrupted = kill_mid_batch(second, &in_flight[1], deadline).await;
    eprintln!(
        "faults: poller 2 of 2 killed with {interrupted} invocation in flight at {} delivered records, restarted",
        recording.delivered().len()
    );
    let (stop_b, second) = start_mapping(&config, invokers[1].clone());
    rebalances += 2;

    // Wait until the function has acknowledged every record (in memory: cheap), then read the table once.
    // Scanning a growing table of 100,000 items every few seconds made moto the bottleneck of the whole run.
    let mut last_progress = Instant::now();
    loop {
        let acknowledged = distinct_delivered(&recording);
        if acknowledged >= records || Instant::now() > deadline {
            break;
        }
        if last_progress.elapsed() > Duration::from_secs(10) {
            eprintln!("faults: {acknowledged} of {records} records acknowledged by the function");
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = stop_a.send(true);
    let _ = stop_b.send(true);
    // Assignments the two pollers running at the end received: a rebalance the test forced is one each poller
    // in the group at the time took part in.
    let mut assignments = 0;
    for mapping in [first, second] {
        assignments += mapping.await.expect("mapping task").expect("mapping ran").rebalances;
    }

    let ids = env.stored_ids().await;
    let stored = ids.len();
    let unique_ids: HashSet<&String> = ids.iter().collect();
    let expected: HashSet<String> = recording
        .delivered()
        .iter()
        .map(|d| format!("{}:{}:{}", d.topic, d.partition, d.offset))
        .collect();
    let lost = records.saturating_sub(unique_ids.len());
    let in_destination = dead_lettered(&kafka, &dead_letters, poison);
    let duplicated =
        ids.len() - unique_ids.len() + unique_ids.iter().filter(|id| !expected.contains(id.as_str())).count();
    let throttled = proxy.counts.throttled.load(std::sync::atomic::Ordering::Relaxed);
    let unprocessed = proxy
        .counts
        .unprocessed_items
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "faults on {}: 2 pollers, each killed once mid-batch, 1 endpoint outage, 1 DynamoDB server killed and restarted, \
         broker restart: {broker}, {throttled} throttled and {unprocessed} unprocessed writes, {} failed invocations",
        kafka.describe(),
        recording.failed_invocations()
    );
    if lost > 0 {
        let mut delivered_not_stored: Vec<&String> = expected.iter().filter(|id| !unique_ids.contains(id)).collect();
        delivered_not_stored.sort();
        eprintln!(
            "faults: {} of the lost records were delivered to the function (never delivered: {}); first: {:?}",
            delivered_not_stored.len(),
            lost.saturating_sub(delivered_not_stored.len()),
            &delivered_not_stored[..delivered_not_stored.len().min(10)]
        );
    }
    println!(
        "records={records} stored={stored} lost={lost} duplicated={duplicated} pollers=2 rebalances={rebalances} \
         assignments={assignments} poison={poison} dead_lettered={}",
        in_destination.len()
    );
    drop(dynalite);
    let _ = std::fs::remove_dir_all(&data);
    // The surviving pollers saw the rebalances the test forced: A's return, B's departure and return (one
    // rebalance or two: at 100,000 records the broker folded them into one), and B's own return.
    assert!(
        assignments >= rebalances - 1,
        "{assignments} assignments seen for {rebalances} rebalances forced"
    );
    assert_eq!((lost, duplicated), (0, 0));
    assert_eq!(stored, records);
    assert_eq!(
        in_destination.len(),
        poison,
        "every poison record, and only those, in the dead-letter topic"
    );
}
