//! The Kafka side of the end-to-end suite: the embedded mock cluster by default, or the broker named by
//! `KAFKA_BOOTSTRAP_SERVERS` (Tansu, Apache Kafka), with topics created the way each needs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use esm::{EsmConfig, InProcess, Invocation, Invoke, InvokeError};
use notifications_cli::produce::{self, Outgoing};

use crate::TestEnv;
use local_stack::kafka::EmbeddedKafka;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use tokio::sync::watch;

/// The broker a test talks to.
pub struct TestKafka {
    pub bootstrap: String,
    embedded: Option<EmbeddedKafka>,
}

impl TestKafka {
    /// A consumer of its own group, subscribed to `topic` from its first record, committing nothing.
    pub fn reader(&self, topic: &str) -> BaseConsumer {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", crate::unique("reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        consumer
    }

    /// The broker in `KAFKA_BOOTSTRAP_SERVERS`, or a fresh embedded mock cluster.
    pub fn start() -> TestKafka {
        match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
            Ok(bootstrap) if !bootstrap.is_empty() => TestKafka {
                bootstrap,
                embedded: None,
            },
            _ => {
                let embedded = EmbeddedKafka::start(1).expect("mock cluster starts");
                TestKafka {
                    bootstrap: embedded.bootstrap_servers().to_owned(),
                    embedded: Some(embedded),
                }
            }
        }
    }

    /// Which broker this is, for messages.
    pub fn describe(&self) -> String {
        match self.embedded {
            Some(_) => format!("embedded mock cluster at {}", self.bootstrap),
            None => format!("external broker at {}", self.bootstrap),
        }
    }

    /// Stops the broker and starts it again after `down`, through the command in `KAFKA_RESTART_COMMAND` (run
    /// with `sh -c`, given the downtime in seconds as `KAFKA_DOWN_SECONDS`; `scripts/tansu.sh restart` for
    /// Tansu). Returns what was done, or why nothing was. The embedded mock cluster is not restarted: after
    /// `broker_down`/`broker_up` its consumers were seen to stop receiving records for good (a 100,000-record
    /// run stalled at 60,000), which is the mock's behaviour, not a broker's.
    pub async fn restart_broker(&self, down: Duration) -> Result<String, &'static str> {
        if self.embedded.is_some() {
            return Err("skipped (the embedded mock cluster cannot restart its broker; the Tansu tier does)");
        }
        let command = std::env::var("KAFKA_RESTART_COMMAND")
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or("skipped (external broker, no KAFKA_RESTART_COMMAND)")?;
        let seconds = down.as_secs().max(1);
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .env("KAFKA_DOWN_SECONDS", seconds.to_string())
            .status()
            .await
            .expect("run KAFKA_RESTART_COMMAND");
        assert!(status.success(), "{command}: {status}");
        Ok(format!("`{command}` (down for {seconds} s)"))
    }

    /// Creates a topic: through the mock cluster when embedded, through the admin API otherwise.
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        match &self.embedded {
            Some(cluster) => cluster.create_topic(name, partitions).expect("create topic"),
            None => {
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", &self.bootstrap)
                    .create()
                    .expect("admin client");
                let results = admin
                    .create_topics(
                        &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
                        &AdminOptions::new(),
                    )
                    .await
                    .expect("create topics");
                for result in results {
                    if let Err((topic, err)) = result {
                        panic!("create topic {topic}: {err}");
                    }
                }
                // Give the broker a moment to make the partitions available.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    /// The offsets a group has committed for `topic`'s partitions `0..partitions` (missing ones absent).
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .create()
            .expect("consumer");
        let mut list = TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition(topic, partition);
        }
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .expect("committed offsets");
        committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(offset) => Some((e.partition(), offset)),
                _ => None,
            })
            .collect()
    }
}

/// One record an invocation carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub topic: String,
    pub partition: i64,
    pub offset: i64,
}

/// Wraps an invoker and records every event it delivered successfully, in order.
pub struct Recording {
    pub inner: Arc<dyn Invoke>,
    pub batches: Mutex<Vec<Vec<Delivered>>>,
    pub failures: Mutex<u64>,
}

impl Recording {
    pub fn new(inner: Arc<dyn Invoke>) -> Arc<Recording> {
        Arc::new(Recording {
            inner,
            batches: Mutex::new(Vec::new()),
            failures: Mutex::new(0),
        })
    }

    /// Every successfully delivered record, in delivery order.
    pub fn delivered(&self) -> Vec<Delivered> {
        self.batches.lock().map(|b| b.concat()).unwrap_or_default()
    }

    pub fn failed_invocations(&self) -> u64 {
        self.failures.lock().map(|f| *f).unwrap_or_default()
    }
}

#[async_trait]
impl Invoke for Recording {
    async fn invoke(&self, event: &Value) -> Result<Invocation, InvokeError> {
        let result = self.inner.invoke(event).await;
        match &result {
            Ok(Invocation::Success) => {
                let mut batch = Vec::new();
                if let Some(groups) = event["records"].as_object() {
                    for records in groups.values() {
                        for record in records.as_array().into_iter().flatten() {
                            batch.push(Delivered {
                                topic: record["topic"].as_str().unwrap_or_default().to_owned(),
                                partition: record["partition"].as_i64().unwrap_or(-1),
                                offset: record["offset"].as_i64().unwrap_or(-1),
                            });
                        }
                    }
                }
                if let Ok(mut batches) = self.batches.lock() {
                    batches.push(batch);
                }
            }
            _ => {
                if let Ok(mut failures) = self.failures.lock() {
                    *failures += 1;
                }
            }
        }
        result
    }
}

/// A running local event source mapping of a test, stopped gracefully by [`Mapping::stop`].
pub struct Mapping {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<esm::Progress>>,
}

impl Mapping {
    pub fn start(config: EsmConfig, invoker: Arc<dyn Invoke>) -> Mapping {
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(async move { esm::run(&config, invoker.as_ref(), stopping, &|_| {}).await });
        Mapping { stop, task }
    }

    /// Asks it to stop (it finishes or abandons the batch in hand) and returns what it did.
    pub async fn stop(self) -> esm::Progress {
        let _ = self.stop.send(true);
        self.task.await.expect("mapping task").expect("mapping ran")
    }
}

/// A mapping over `topics` with short waits, for tests.
pub fn mapping_config(kafka: &TestKafka, group: &str, topics: &[&str]) -> EsmConfig {
    let mut config = EsmConfig::new(&kafka.bootstrap);
    config.group_id = group.to_owned();
    config.topics = topics.iter().map(|t| t.to_string()).collect();
    config.batching_window_ms = 200;
    config.max_backoff_ms = 1_000;
    config.metadata_refresh_ms = 1_000;
    config
}

/// The ingest handler in-process, with a Lambda-like timeout per invocation.
pub fn in_process(env: &TestEnv, endpoint: &str, timeout: Duration) -> Arc<dyn Invoke> {
    Arc::new(InProcess {
        ingest: Arc::new(env.ingest_via(endpoint, &[("DEADLINE_MARGIN_MS", "200")])),
        timeout,
    })
}

/// Waits until the table holds `count` items, or fails after `timeout`.
pub async fn wait_for_items(env: &TestEnv, count: usize, timeout: Duration) {
    let until = tokio::time::Instant::now() + timeout;
    loop {
        let stored = env.count_items().await;
        if stored == count {
            return;
        }
        assert!(stored < count, "{stored} items stored, more than the {count} produced");
        assert!(
            tokio::time::Instant::now() < until,
            "only {stored} of {count} items stored after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Produces `messages` to the broker.
pub async fn send(kafka: &TestKafka, messages: &[Outgoing]) {
    let producer = produce::producer(&kafka.bootstrap).expect("producer");
    produce::send_all(&producer, messages, 0.0).await.expect("produce");
}

/// A message with these exact key, value and headers.
pub fn raw(topic: &str, key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&str, &[u8])]) -> Outgoing {
    Outgoing {
        topic: topic.to_owned(),
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
    }
}

/// The value of a poison record, and as the trigger's event carries it (base64).
pub const POISON: &[u8] = b"poison";
pub const POISON_BASE64: &str = "cG9pc29u";

/// The function under the mapping: `inner`, except that it fails any invocation carrying a record whose value
/// is [`POISON`], however often it is retried, as a function with a bug would.
pub struct RejectsPoison {
    pub inner: Arc<dyn Invoke>,
}

#[async_trait]
impl Invoke for RejectsPoison {
    async fn invoke(&self, event: &Value) -> Result<Invocation, InvokeError> {
        let poisoned = event["records"]
            .as_object()
            .into_iter()
            .flat_map(|groups| groups.values())
            .flat_map(|records| records.as_array().into_iter().flatten())
            .any(|record| record["value"] == POISON_BASE64);
        if poisoned {
            return Err(InvokeError::Function {
                kind: "Unhandled".into(),
                body: r#"{"errorMessage":"cannot handle poison"}"#.into(),
            });
        }
        self.inner.invoke(event).await
    }
}

impl TestKafka {
    /// Waits until the offsets `group` committed for `topic`'s partitions `0..partitions` satisfy `done`, or
    /// fails after `timeout` saying `what` and where they stand.
    pub async fn wait_committed(
        &self,
        group: &str,
        topic: &str,
        partitions: i32,
        timeout: Duration,
        what: &str,
        done: impl Fn(&BTreeMap<i32, i64>) -> bool,
    ) {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let committed = self.committed(group, topic, partitions);
            if done(&committed) {
                return;
            }
            assert!(tokio::time::Instant::now() < until, "{what}: committed {committed:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
