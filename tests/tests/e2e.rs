//! End to end: messages produced to a real Kafka-protocol broker, carried by the local event source mapping
//! into the ingest handler, stored in a real DynamoDB-compatible server, and found through the HTTP API.
//! The broker is the embedded mock cluster, or the one in `KAFKA_BOOTSTRAP_SERVERS` (Tansu in CI's
//! second tier).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::fault_proxy::{self, FaultPlan};
use integration_tests::kafka::{Recording, TestKafka};
use integration_tests::{unique, QueryServer, TestEnv};
use serde_json::{json, Value};
use tokio::sync::watch;
use tools::esm::{self, EsmConfig, InProcess, Invoke};
use tools::produce::{self, Outgoing};

/// A running mapping of a test.
struct Mapping {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<esm::Progress>>,
}

impl Mapping {
    fn start(config: EsmConfig, invoker: Arc<dyn Invoke>) -> Mapping {
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(async move { esm::run(&config, invoker.as_ref(), stopping, &|_| {}).await });
        Mapping { stop, task }
    }

    async fn stop(self) -> esm::Progress {
        let _ = self.stop.send(true);
        self.task.await.expect("mapping task").expect("mapping ran")
    }
}

fn mapping_config(kafka: &TestKafka, group: &str, topics: &[&str]) -> EsmConfig {
    let mut config = EsmConfig::new(&kafka.bootstrap);
    config.group_id = group.to_owned();
    config.topics = topics.iter().map(|t| t.to_string()).collect();
    config.batching_window_ms = 200;
    config.max_backoff_ms = 1_000;
    config.metadata_refresh_ms = 1_000;
    config
}

/// The ingest handler in-process, with a Lambda-like timeout per invocation.
fn in_process(env: &TestEnv, endpoint: &str, timeout: Duration) -> Arc<dyn Invoke> {
    Arc::new(InProcess {
        ingest: Arc::new(env.ingest_via(endpoint, &[("DEADLINE_MARGIN_MS", "200")])),
        timeout,
    })
}

/// Waits until the table holds `count` items, or fails after `timeout`.
async fn wait_for_items(env: &TestEnv, count: usize, timeout: Duration) {
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

async fn send(kafka: &TestKafka, messages: &[Outgoing]) {
    let producer = produce::producer(&kafka.bootstrap).expect("producer");
    produce::send_all(&producer, messages, 0.0).await.expect("produce");
}

fn raw(topic: &str, key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&str, &[u8])]) -> Outgoing {
    Outgoing {
        topic: topic.to_owned(),
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
    }
}

async fn get(server: &QueryServer, path: &str) -> Value {
    let (status, _, body) = server.get(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test]
async fn every_kind_of_message_is_captured_and_found_through_the_api_even_those_sent_before_the_group_started() {
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let suffix = unique("e2e");
    let topics: Vec<String> = ["orders", "payments", "inventory", "shipping", "misc"]
        .iter()
        .map(|t| format!("{t}-{suffix}"))
        .collect();
    for topic in &topics {
        kafka.create_topic(topic, 3).await;
    }
    let retarget = |mut messages: Vec<Outgoing>| {
        for m in &mut messages {
            m.topic = format!("{}-{suffix}", m.topic);
        }
        messages
    };
    // Before the consumer group exists: it must start from the oldest records.
    let early = retarget(produce::generate(40, 11, None));
    send(&kafka, &early).await;

    let group = unique("group");
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let mapping = Mapping::start(
        mapping_config(&kafka, &group, &topic_refs),
        in_process(&env, &env.endpoint, Duration::from_secs(20)),
    );

    let late = retarget(produce::generate(40, 12, None));
    send(&kafka, &late).await;
    let misc = &topics[4];
    let odd = vec![
        raw(misc, Some(b"tomb-key"), None, &[]),
        raw(
            misc,
            None,
            Some(&[0xde, 0xad, 0xbe, 0xef, 0xff]),
            &[("ce_type", b"BinaryThing"), ("order-id", b"ord-bin-1")],
        ),
        raw(
            misc,
            Some(b"t"),
            Some(b"just some text"),
            &[("X-Correlation-ID", b"corr-text-1"), ("dup", b"1"), ("dup", b"2")],
        ),
        raw(
            misc,
            None,
            Some(b"\x00\x00\x00\x00\x07{\"eventType\":\"SchemaFramed\",\"orderId\":\"ord-sr-1\"}"),
            &[],
        ),
    ];
    send(&kafka, &odd).await;

    wait_for_items(&env, early.len() + late.len() + odd.len(), Duration::from_secs(90)).await;
    mapping.stop().await;

    let server = env.query_server().await;
    // A whole flow from before the group started, and one from after: four services each.
    for order in ["ord-11-000001", "ord-12-000010"] {
        let body = get(&server, &format!("/notifications?order_id={order}")).await;
        let items = body["items"].as_array().unwrap();
        let types: Vec<&str> = items.iter().map(|i| i["event_type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            ["OrderCreated", "PaymentAuthorized", "InventoryReserved", "OrderShipped"],
            "{order} via {}",
            kafka.describe()
        );
        let services: Vec<&str> = items.iter().map(|i| i["source_service"].as_str().unwrap()).collect();
        assert_eq!(
            services,
            [
                "order-service",
                "payment-service",
                "inventory-service",
                "shipping-service"
            ]
        );
        let correlations: HashSet<&str> = items.iter().map(|i| i["correlation_id"].as_str().unwrap()).collect();
        assert_eq!(correlations.len(), 1, "one correlation id across the flow");
        let correlation = correlations.into_iter().next().unwrap();
        let timeline = get(&server, &format!("/correlations/{correlation}/timeline")).await;
        assert_eq!(timeline["steps"].as_array().unwrap().len(), 4);
        assert_eq!(timeline["duration_ms"], 4000);
    }
    // The odd ones.
    let binary = get(&server, "/notifications?order_id=ord-bin-1").await;
    assert_eq!(binary["items"][0]["payload_format"], "binary");
    assert_eq!(binary["items"][0]["event_type"], "BinaryThing");
    let id = binary["items"][0]["id"].as_str().unwrap().to_owned();
    let one = get(&server, &format!("/notifications/{id}")).await;
    assert_eq!(
        (one["payload_encoding"].as_str(), one["payload"].as_str()),
        (Some("base64"), Some("3q2+7/8="))
    );
    let text = get(&server, "/notifications?correlation_id=corr-text-1").await;
    let id = text["items"][0]["id"].as_str().unwrap().to_owned();
    let one = get(&server, &format!("/notifications/{id}")).await;
    assert_eq!(one["payload"], "just some text");
    let dups: Vec<&Value> = one["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["name"] == "dup")
        .collect();
    assert_eq!(dups.len(), 2, "repeated headers are kept: {one}");
    let framed = get(&server, "/notifications?order_id=ord-sr-1").await;
    assert_eq!(framed["items"][0]["payload_format"], "confluent-json");
    assert_eq!(framed["items"][0]["schema_id"], 7);
    // The tombstone: found by scanning its partition's ids through GET (its key tells nothing to the indexes).
    let mut tombstones = 0;
    for partition in 0..3 {
        for offset in 0..4 {
            let (status, _, body) = server.get(&format!("/notifications/{misc}:{partition}:{offset}")).await;
            if status == 200 && body["payload_format"] == "tombstone" {
                assert_eq!(body["payload"], Value::Null);
                assert_eq!(body["key"], "tomb-key");
                tombstones += 1;
            }
        }
    }
    assert_eq!(tombstones, 1, "the tombstone made it through {}", kafka.describe());
}

#[tokio::test]
async fn restarting_the_mapping_mid_stream_loses_nothing_and_duplicates_nothing() {
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let topic = unique("restart");
    kafka.create_topic(&topic, 3).await;
    let group = unique("group");
    let messages = produce::generate(1_500, 21, Some(&topic));
    let producer_kafka = kafka.bootstrap.clone();
    let to_send = messages.clone();
    let producing = tokio::spawn(async move {
        let producer = produce::producer(&producer_kafka).expect("producer");
        produce::send_all(&producer, &to_send, 1_000.0).await
    });
    let recording = Recording::new(in_process(&env, &env.endpoint, Duration::from_secs(20)));
    let mut config = mapping_config(&kafka, &group, &[&topic]);
    config.batch_size = 50;
    let first = Mapping::start(config.clone(), recording.clone());
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while recording.delivered().len() < 300 {
        assert!(tokio::time::Instant::now() < until, "the first run never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let progress = first.stop().await;
    assert!(
        progress.records < messages.len() as u64,
        "stopped mid-stream, after {} records",
        progress.records
    );
    let second = Mapping::start(config, recording.clone());
    producing.await.expect("producer task").expect("produced");
    wait_for_items(&env, messages.len(), Duration::from_secs(90)).await;
    second.stop().await;
    let delivered: HashSet<(i64, i64)> = recording.delivered().iter().map(|d| (d.partition, d.offset)).collect();
    assert_eq!(delivered.len(), messages.len(), "every record was delivered");
    assert_eq!(env.count_items().await, messages.len(), "exactly one item per record");
}

#[tokio::test]
async fn while_dynamodb_is_down_offsets_stay_uncommitted_and_everything_is_stored_once_it_is_back() {
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let mut proxy = fault_proxy::start(
        &env.endpoint,
        FaultPlan {
            throttle: 0.0,
            unprocess: 0.0,
            server_error: 0.0,
            seed: 1,
        },
    )
    .await;
    let topic = unique("outage");
    kafka.create_topic(&topic, 2).await;
    let group = unique("group");
    let recording = Recording::new(in_process(&env, &proxy.endpoint, Duration::from_secs(3)));
    let mapping = Mapping::start(mapping_config(&kafka, &group, &[&topic]), recording.clone());

    let before = produce::generate(20, 31, Some(&topic));
    send(&kafka, &before).await;
    wait_for_items(&env, before.len(), Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let committed_before = kafka.committed(&group, &topic, 2);
    assert_eq!(
        committed_before.values().sum::<i64>(),
        before.len() as i64,
        "{committed_before:?}"
    );

    proxy.stop();
    let during = produce::generate(30, 32, Some(&topic));
    send(&kafka, &during).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while recording.failed_invocations() < 2 {
        assert!(
            tokio::time::Instant::now() < until,
            "the mapping never tried to deliver during the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        kafka.committed(&group, &topic, 2),
        committed_before,
        "nothing is committed while ingest fails"
    );
    assert_eq!(env.count_items().await, before.len());

    proxy.resume().await;
    wait_for_items(&env, before.len() + during.len(), Duration::from_secs(60)).await;
    mapping.stop().await;
    let committed_after = kafka.committed(&group, &topic, 2);
    assert_eq!(
        committed_after.values().sum::<i64>(),
        (before.len() + during.len()) as i64,
        "{committed_after:?}"
    );
}

#[tokio::test]
async fn each_partition_is_delivered_in_order() {
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let topic = unique("order");
    kafka.create_topic(&topic, 3).await;
    let proxy = fault_proxy::start(
        &env.endpoint,
        FaultPlan {
            throttle: 0.2,
            unprocess: 0.2,
            server_error: 0.1,
            seed: 3,
        },
    )
    .await;
    let recording = Recording::new(in_process(&env, &proxy.endpoint, Duration::from_secs(3)));
    let mut config = mapping_config(&kafka, &unique("group"), &[&topic]);
    config.batch_size = 40;
    let mapping = Mapping::start(config, recording.clone());
    let messages: Vec<Outgoing> = (0..600)
        .map(|i| Outgoing {
            topic: topic.clone(),
            key: Some(format!("key-{}", i % 17).into_bytes()),
            value: Some(
                json!({"orderId": format!("o-{}", i % 17), "sequence": i})
                    .to_string()
                    .into_bytes(),
            ),
            headers: Vec::new(),
        })
        .collect();
    send(&kafka, &messages).await;
    wait_for_items(&env, messages.len(), Duration::from_secs(90)).await;
    mapping.stop().await;
    let mut next: BTreeMap<i64, i64> = BTreeMap::new();
    for delivered in recording.delivered() {
        let expected = next.entry(delivered.partition).or_insert(0);
        assert_eq!(
            delivered.offset, *expected,
            "partition {} out of order",
            delivered.partition
        );
        *expected += 1;
    }
    assert_eq!(next.values().sum::<i64>(), messages.len() as i64);
}

#[tokio::test]
async fn the_whole_fixture_corpus_goes_through_kafka_and_is_found_with_the_right_fields() {
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let suffix = unique("corpus");
    let dir = integration_tests::workspace_root().join("fixtures/messages");
    let fixtures = shared::fixtures::load_messages(&dir).expect("the corpus loads");
    let mut topics: Vec<String> = fixtures.iter().map(|f| format!("{}-{suffix}", f.topic)).collect();
    topics.sort();
    topics.dedup();
    for topic in &topics {
        kafka.create_topic(topic, 1).await;
    }
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let mapping = Mapping::start(
        mapping_config(&kafka, &unique("group"), &topic_refs),
        in_process(&env, &env.endpoint, Duration::from_secs(20)),
    );
    let producer = produce::producer(&kafka.bootstrap).expect("producer");
    let mut sent = Vec::new();
    for fixture in &fixtures {
        let message = Outgoing {
            topic: format!("{}-{suffix}", fixture.topic),
            key: fixture.key.clone(),
            value: fixture.value.clone(),
            headers: fixture.headers.clone(),
        };
        let (partition, offset) = produce::send(&producer, &message).await.expect("sent");
        sent.push((fixture, format!("{}:{partition}:{offset}", message.topic)));
    }
    wait_for_items(&env, fixtures.len(), Duration::from_secs(120)).await;
    mapping.stop().await;

    let server = env.query_server().await;
    for (fixture, id) in sent {
        let document: Value = serde_json::from_str(&std::fs::read_to_string(&fixture.path).unwrap()).unwrap();
        let name = fixture.path.file_name().unwrap().to_string_lossy().to_string();

        // The summary fields come before `headers` and the payload, which may be nested deeper than a JSON
        // client parses (the 10,000-deep fixture): read only that part.
        let response = server
            .client
            .get(format!("{}/notifications/{id}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{name}: {id}");
        let text = response.text().await.unwrap();
        let cut = text
            .find(",\"headers\":")
            .unwrap_or_else(|| panic!("{name}: no headers in {text}"));
        let record: Value = serde_json::from_str(&format!("{}}}", &text[..cut])).unwrap();
        // Overrides change the trigger's record itself, which a producer cannot do: only the capture is checked.
        if document.get("record_overrides").is_some() {
            continue;
        }
        let expect = &document["expect"];
        let mut fields = vec![
            "event_type",
            "correlation_id",
            "order_id",
            "customer_id",
            "event_id",
            "payload_format",
            "schema_id",
        ];
        if document.get("topic_services").is_none() {
            fields.push("source_service");
        }
        for field in fields {
            assert_eq!(
                record.get(field).unwrap_or(&Value::Null),
                &expect[field],
                "{name}: {field} of {id}"
            );
        }
        assert_eq!(
            record["payload_size"].as_u64().unwrap_or(0) as usize,
            fixture.value.as_ref().map_or(0, Vec::len),
            "{name}"
        );
    }
}
