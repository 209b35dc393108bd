//! End to end: messages produced to a real Kafka-protocol broker, carried by the local event source mapping
//! into the ingest handler, stored in a real DynamoDB-compatible server, and found through the HTTP API.
//! The broker is the embedded mock cluster, or the one in `KAFKA_BOOTSTRAP_SERVERS` (Tansu in CI's
//! second tier).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use esm::{EsmConfig, InProcess, Invocation, Invoke, InvokeError, StartingPosition};
use integration_tests::fault_proxy::{self, FaultPlan};
use integration_tests::kafka::{in_process, mapping_config, raw, send, wait_for_items, Mapping, Recording, TestKafka};
use integration_tests::{unique, TestEnv};
use notifications_cli::produce::{self, Outgoing};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use tokio::sync::watch;

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
        let body = server.get_ok(&format!("/notifications?order_id={order}")).await;
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
        let timeline = server.get_ok(&format!("/correlations/{correlation}/timeline")).await;
        assert_eq!(timeline["steps"].as_array().unwrap().len(), 4);
        assert_eq!(timeline["duration_ms"], 4000);
    }
    // The odd ones.
    let binary = server.get_ok("/notifications?order_id=ord-bin-1").await;
    assert_eq!(binary["items"][0]["payload_format"], "binary");
    assert_eq!(binary["items"][0]["event_type"], "BinaryThing");
    let id = binary["items"][0]["id"].as_str().unwrap().to_owned();
    let one = server.get_ok(&format!("/notifications/{id}")).await;
    assert_eq!(
        (one["payload_encoding"].as_str(), one["payload"].as_str()),
        (Some("base64"), Some("3q2+7/8="))
    );
    let text = server.get_ok("/notifications?correlation_id=corr-text-1").await;
    let id = text["items"][0]["id"].as_str().unwrap().to_owned();
    let one = server.get_ok(&format!("/notifications/{id}")).await;
    assert_eq!(one["payload"], "just some text");
    let dups: Vec<&Value> = one["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["name"] == "dup")
        .collect();
    assert_eq!(dups.len(), 2, "repeated headers are kept: {one}");
    let framed = server.get_ok("/notifications?order_id=ord-sr-1").await;
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

/// Sends `messages` (many in flight) and returns the item id of each, `topic:partition:offset`, in order.
async fn send_tracked(kafka: &TestKafka, messages: &[Outgoing]) -> Vec<String> {
    use futures::stream::{self, StreamExt};
    let producer = produce::producer(&kafka.bootstrap).expect("producer");
    let producer = &producer;
    stream::iter(messages)
        .map(|message| async move {
            let (partition, offset) = produce::send(producer, message).await.expect("sent");
            format!("{}:{partition}:{offset}", message.topic)
        })
        .buffered(64)
        .collect()
        .await
}

/// Sends one small JSON record to `partition` of `topic`; returns its item id.
async fn send_to_partition(producer: &FutureProducer, topic: &str, partition: i32, value: &str) -> String {
    let record: FutureRecord<'_, [u8], str> = FutureRecord::to(topic).partition(partition).payload(value);
    let delivery = producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(err, _)| err)
        .expect("sent");
    format!("{topic}:{}:{}", delivery.partition, delivery.offset)
}

/// Waits until every id in `ids` is stored, or fails after `timeout`; returns how long it took.
async fn wait_for_ids(env: &TestEnv, ids: &[String], timeout: Duration) -> Duration {
    let started = tokio::time::Instant::now();
    loop {
        let stored: HashSet<String> = env.stored_ids().await.into_iter().collect();
        let missing: Vec<&String> = ids.iter().filter(|id| !stored.contains(*id)).collect();
        if missing.is_empty() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "{} of {} records not stored after {timeout:?}, e.g. {:?}",
            missing.len(),
            ids.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

/// One invocation as the function saw it: `(topic-partition, offset)` of each record, and what it answered.
#[derive(Debug, Clone)]
struct Call {
    records: Vec<(String, i64)>,
    outcome: Result<Invocation, InvokeError>,
}

/// Wraps an invoker and keeps every invocation, failed and partial ones included, in order.
struct Observed {
    inner: Arc<dyn Invoke>,
    calls: Mutex<Vec<Call>>,
}

impl Observed {
    fn new(inner: Arc<dyn Invoke>) -> Arc<Observed> {
        Arc::new(Observed {
            inner,
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Invoke for Observed {
    async fn invoke(&self, event: &Value) -> Result<Invocation, InvokeError> {
        let outcome = self.inner.invoke(event).await;
        let mut records = Vec::new();
        for (group, list) in event["records"].as_object().into_iter().flatten() {
            for record in list.as_array().into_iter().flatten() {
                records.push((group.clone(), record["offset"].as_i64().unwrap_or(-1)));
            }
        }
        records.sort();
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(Call {
                records,
                outcome: outcome.clone(),
            });
        }
        outcome
    }
}

#[tokio::test]
async fn a_pattern_subscription_captures_matching_topics_created_after_it_started_and_nothing_else() {
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let tag = unique("pat");
    let pattern = format!("^{tag}.*");
    let config = mapping_config(&kafka, &unique("group"), &[&pattern]);
    assert_eq!(config.metadata_refresh_ms, 1_000);
    // No topic matches yet: the mapping waits for one.
    let mapping = Mapping::start(config, in_process(&env, &env.endpoint, Duration::from_secs(20)));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let first = format!("{tag}-first");
    let unmatched = format!("not-{tag}");
    let created = tokio::time::Instant::now();
    kafka.create_topic(&first, 2).await;
    kafka.create_topic(&unmatched, 2).await;
    let first_ids = send_tracked(&kafka, &produce::generate(150, 51, Some(&first))).await;
    let unmatched_ids = send_tracked(&kafka, &produce::generate(50, 52, Some(&unmatched))).await;
    wait_for_ids(&env, &first_ids, Duration::from_secs(60)).await;
    eprintln!(
        "pattern {pattern}: a new matching topic captured {:?} after it was created ({})",
        created.elapsed(),
        kafka.describe()
    );

    // A second matching topic while the mapping already reads the first.
    let second = format!("{tag}-second");
    let created = tokio::time::Instant::now();
    kafka.create_topic(&second, 1).await;
    let second_ids = send_tracked(&kafka, &produce::generate(100, 53, Some(&second))).await;
    wait_for_ids(&env, &second_ids, Duration::from_secs(60)).await;
    eprintln!("and a second one {:?} after it was created", created.elapsed());
    // The unmatched topic has existed as long as the first: a few more refreshes for it to show up if it would.
    tokio::time::sleep(Duration::from_secs(3)).await;
    mapping.stop().await;

    let stored: HashSet<String> = env.stored_ids().await.into_iter().collect();
    assert!(
        unmatched_ids.iter().all(|id| !stored.contains(id)),
        "records of {unmatched}, which does not match {pattern}, were captured"
    );
    let expected: HashSet<String> = first_ids.iter().chain(&second_ids).cloned().collect();
    assert_eq!(expected.len(), 250);
    assert_eq!(
        stored, expected,
        "exactly the records of the matching topics are stored"
    );
}

#[tokio::test]
async fn by_default_every_topic_but_internal_ones_is_captured_and_a_new_topic_within_seconds() {
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    // The product's defaults: every topic but Kafka's internal ones, from the oldest record, the default
    // metadata refresh.
    let mut config = EsmConfig::new(&kafka.bootstrap);
    config.group_id = unique("group");
    assert_eq!(config.topics, [esm::ALL_TOPICS]);
    assert_eq!(config.starting_position, StartingPosition::TrimHorizon);
    let mapping = Mapping::start(config, in_process(&env, &env.endpoint, Duration::from_secs(20)));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let visible = unique("visible");
    let internal = unique("_internal");
    let created = tokio::time::Instant::now();
    kafka.create_topic(&visible, 2).await;
    kafka.create_topic(&internal, 2).await;
    let internal_ids = send_tracked(&kafka, &produce::generate(60, 61, Some(&internal))).await;
    let visible_ids = send_tracked(&kafka, &produce::generate(120, 62, Some(&visible))).await;
    // An external broker also holds the other tests' topics, which this mapping reads as well: more time.
    wait_for_ids(&env, &visible_ids, Duration::from_secs(90)).await;
    eprintln!(
        "default subscription: a new topic captured {:?} after it was created ({})",
        created.elapsed(),
        kafka.describe()
    );
    // A few more metadata refreshes (2 s by default) for the internal-looking topic to show up if it would.
    tokio::time::sleep(Duration::from_secs(5)).await;
    mapping.stop().await;

    let stored: HashSet<String> = env.stored_ids().await.into_iter().collect();
    assert!(
        internal_ids.iter().all(|id| !stored.contains(id)),
        "records of the internal-looking topic {internal} were captured"
    );
    let underscored: Vec<&String> = stored.iter().filter(|id| id.starts_with('_')).collect();
    assert!(
        underscored.is_empty(),
        "topics starting with _ were captured: {underscored:?}"
    );
    if kafka.describe().starts_with("embedded") {
        // The cluster is this test's own: nothing else is there to capture.
        let expected: HashSet<String> = visible_ids.iter().cloned().collect();
        assert_eq!(stored, expected);
    }
}

#[tokio::test]
async fn starting_at_latest_skips_what_was_produced_before_the_group_started() {
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let topic = unique("latest");
    let partitions = 2;
    kafka.create_topic(&topic, partitions).await;
    let before = send_tracked(&kafka, &produce::generate(60, 71, Some(&topic))).await;

    let mut config = mapping_config(&kafka, &unique("group"), &[&topic]);
    config.starting_position = StartingPosition::Latest;
    let mapping = Mapping::start(config, in_process(&env, &env.endpoint, Duration::from_secs(20)));
    // Records produced before the group has its partitions and their latest offsets are skipped too: probe
    // each partition until one of its probes is stored, then the group reads from there on.
    let producer = produce::producer(&kafka.bootstrap).expect("producer");
    let mut probes: Vec<String> = Vec::new();
    let mut ready: HashSet<i32> = HashSet::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while ready.len() < partitions as usize {
        assert!(
            tokio::time::Instant::now() < until,
            "the group never started reading {topic}"
        );
        for partition in 0..partitions {
            if !ready.contains(&partition) {
                let probe = json!({"eventType": "Probe", "partition": partition}).to_string();
                probes.push(send_to_partition(&producer, &topic, partition, &probe).await);
            }
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        let stored: HashSet<String> = env.stored_ids().await.into_iter().collect();
        for partition in 0..partitions {
            let prefix = format!("{topic}:{partition}:");
            if probes.iter().any(|p| p.starts_with(&prefix) && stored.contains(p)) {
                ready.insert(partition);
            }
        }
    }
    let after = send_tracked(&kafka, &produce::generate(100, 72, Some(&topic))).await;
    wait_for_ids(&env, &after, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    mapping.stop().await;

    let stored: HashSet<String> = env.stored_ids().await.into_iter().collect();
    let early: Vec<&String> = before.iter().filter(|id| stored.contains(*id)).collect();
    assert!(
        early.is_empty(),
        "{} records produced before the group started were delivered, e.g. {:?}",
        early.len(),
        &early[..early.len().min(5)]
    );
    let known: HashSet<&String> = after.iter().chain(&probes).collect();
    let strays: Vec<&String> = stored.iter().filter(|id| !known.contains(id)).collect();
    assert!(strays.is_empty(), "unexpected items: {strays:?}");
    assert!(after.iter().all(|id| stored.contains(id)));
}

#[tokio::test]
async fn no_invocation_carries_more_records_than_the_batch_size() {
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let topic = unique("batch");
    kafka.create_topic(&topic, 3).await;
    // A backlog, so that batches fill up, then more while the mapping reads.
    let mut ids = send_tracked(&kafka, &produce::generate(250, 81, Some(&topic))).await;
    let observed = Observed::new(in_process(&env, &env.endpoint, Duration::from_secs(20)));
    let mut config = mapping_config(&kafka, &unique("group"), &[&topic]);
    config.batch_size = 7;
    let mapping = Mapping::start(config, observed.clone());
    ids.extend(send_tracked(&kafka, &produce::generate(100, 82, Some(&topic))).await);
    wait_for_ids(&env, &ids, Duration::from_secs(90)).await;
    mapping.stop().await;

    let calls = observed.calls();
    let largest = calls.iter().map(|c| c.records.len()).max().unwrap_or(0);
    let oversized: Vec<usize> = calls.iter().map(|c| c.records.len()).filter(|n| *n > 7).collect();
    assert!(
        oversized.is_empty(),
        "invocations over the batch size of 7: {oversized:?}"
    );
    assert_eq!(largest, 7, "the backlog filled batches up to the batch size");
    let delivered: HashSet<(String, i64)> = calls.iter().flat_map(|c| c.records.clone()).collect();
    assert_eq!(delivered.len(), ids.len(), "every record was delivered");
    assert_eq!(env.count_items().await, ids.len());
    eprintln!("{} records in {} invocations of at most 7", ids.len(), calls.len());
}

#[tokio::test]
async fn partial_batch_responses_end_with_every_record_stored_once_and_committed() {
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let proxy = fault_proxy::start(
        &env.endpoint,
        FaultPlan {
            throttle: 0.6,
            unprocess: 0.3,
            server_error: 0.05,
            seed: 9,
        },
    )
    .await;
    let topic = unique("partial");
    let partitions = 3;
    kafka.create_topic(&topic, partitions).await;
    let ids = send_tracked(&kafka, &produce::generate(300, 91, Some(&topic))).await;

    // Little time per invocation: under the faults, many end with records unstored and say which.
    let ingest = env.ingest_via(
        &proxy.endpoint,
        &[
            ("FAILURE_MODE", "report-batch-item-failures"),
            ("DEADLINE_MARGIN_MS", "100"),
        ],
    );
    let observed = Observed::new(Arc::new(InProcess {
        ingest: Arc::new(ingest),
        timeout: Duration::from_millis(500),
    }));
    let group = unique("group");
    let mut config = mapping_config(&kafka, &group, &[&topic]);
    config.batch_size = 25;
    let (stop, stopping) = watch::channel(false);
    let progress = Arc::new(AtomicU64::new(0));
    let task = {
        let (progress, observed) = (progress.clone(), observed.clone());
        tokio::spawn(async move {
            let report = move |p: &esm::Progress| progress.store(p.records, Ordering::SeqCst);
            esm::run(&config, observed.as_ref(), stopping, &report).await
        })
    };
    let took = wait_for_ids(&env, &ids, Duration::from_secs(120)).await;
    eprintln!("all {} records stored after {took:?}", ids.len());
    // Every batch finished (and committed) before stopping: a retry may still run after the last record stored.
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::SeqCst) < ids.len() as u64 {
        assert!(
            tokio::time::Instant::now() < until,
            "the mapping never finished its batches"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop.send(true);
    task.await.expect("mapping task").expect("mapping ran");

    let calls = observed.calls();
    let partial = calls
        .iter()
        .filter(|c| matches!(c.outcome, Ok(Invocation::Partial(_))))
        .count();
    eprintln!(
        "{} invocations, {partial} partial; {} throttled and {} unprocessed items injected",
        calls.len(),
        proxy.counts.throttled.load(Ordering::Relaxed),
        proxy.counts.unprocessed_items.load(Ordering::Relaxed)
    );
    assert!(partial > 0, "no invocation answered a partial batch response");
    // After a partial response exactly the listed partitions come again, from the listed offset on.
    for pair in calls.windows(2) {
        if let Ok(Invocation::Partial(failures)) = &pair[0].outcome {
            let again: Vec<(String, i64)> = pair[0]
                .records
                .iter()
                .filter(|(group, offset)| failures.iter().any(|(g, from)| g == group && offset >= from))
                .cloned()
                .collect();
            assert_eq!(pair[1].records, again, "the retry after {failures:?}");
        }
    }
    let stored = env.stored_ids().await;
    let distinct: HashSet<&String> = stored.iter().collect();
    assert_eq!(distinct.len(), stored.len(), "an id stored twice");
    let expected: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct, expected, "every record stored, nothing else");
    assert_eq!(env.count_items().await, ids.len());
    let committed = kafka.committed(&group, &topic, partitions);
    assert_eq!(committed.values().sum::<i64>(), ids.len() as i64, "{committed:?}");

    // A new member of the group resumes at the committed offsets: only what is produced now comes.
    let again = Observed::new(in_process(&env, &env.endpoint, Duration::from_secs(20)));
    let mapping = Mapping::start(mapping_config(&kafka, &group, &[&topic]), again.clone());
    let producer = produce::producer(&kafka.bootstrap).expect("producer");
    let mut fresh = Vec::new();
    for partition in 0..partitions {
        let value = json!({"eventType": "AfterRestart", "partition": partition}).to_string();
        fresh.push(send_to_partition(&producer, &topic, partition, &value).await);
    }
    let took = wait_for_ids(&env, &fresh, Duration::from_secs(60)).await;
    eprintln!("the new member delivered the new records after {took:?}");
    mapping.stop().await;
    let redelivered: Vec<(String, i64)> = again.calls().into_iter().flat_map(|c| c.records).collect();
    let fresh_records: HashSet<(String, i64)> = fresh
        .iter()
        .map(|id| {
            let (rest, offset) = id.rsplit_once(':').unwrap();
            let (topic, partition) = rest.rsplit_once(':').unwrap();
            (format!("{topic}-{partition}"), offset.parse().unwrap())
        })
        .collect();
    assert!(
        redelivered.iter().all(|r| fresh_records.contains(r)),
        "the new member got records already committed: {redelivered:?}"
    );
}

#[tokio::test]
async fn records_with_a_huge_id_or_a_huge_unreadable_time_are_stored_and_their_partition_moves_on() {
    // Tried as a new user: before fields and warnings were bounded, the first two never reached the table (their
    // items went over DynamoDB's 400 KB, a ValidationException) and the partition was stuck on them.
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let topic = unique("huge");
    kafka.create_topic(&topic, 1).await;
    let group = unique("group");
    let mapping = Mapping::start(
        mapping_config(&kafka, &group, &[&topic]),
        in_process(&env, &env.endpoint, Duration::from_secs(20)),
    );
    let huge_id = "o".repeat(420_000);
    let not_a_time = "t".repeat(410_000);
    let huge = json!({"eventType": "HugeId", "orderId": huge_id}).to_string();
    let late = json!({"eventType": "HugeTime", "orderId": "o-late", "occurredAt": not_a_time}).to_string();
    send(
        &kafka,
        &[
            raw(&topic, None, Some(huge.as_bytes()), &[]),
            raw(&topic, None, Some(late.as_bytes()), &[]),
            raw(&topic, None, Some(br#"{"eventType":"Plain","orderId":"o-plain"}"#), &[]),
        ],
    )
    .await;
    wait_for_items(&env, 3, Duration::from_secs(60)).await;
    let progress = mapping.stop().await;
    assert_eq!(progress.failed_invocations, 0, "no batch failed: {progress:?}");
    assert_eq!(
        kafka.committed(&group, &topic, 1).get(&0),
        Some(&3),
        "the partition moved on"
    );

    let server = env.query_server().await;
    let body = server.get_ok(&format!("/notifications/{topic}:0:0")).await;
    assert_eq!(
        body["payload"]["orderId"].as_str().map(str::len),
        Some(420_000),
        "the payload is whole"
    );
    let stored = body["order_id"].as_str().unwrap_or_default();
    assert!(stored.len() <= shared::model::MAX_FIELD_BYTES, "{} bytes", stored.len());
    assert!(stored.contains("[420000 bytes, sha256:"), "{stored}");
    let body = server.get_ok(&format!("/notifications/{topic}:0:1")).await;
    let warnings = body["warnings"].to_string();
    assert!(
        warnings.contains("text of 410000 bytes that is not a time"),
        "{warnings}"
    );
    assert!(
        warnings.len() < 1_000,
        "warnings describe values, never quote them: {} bytes",
        warnings.len()
    );
    let body = server.get_ok("/notifications?order_id=o-plain").await;
    assert_eq!(body["items"][0]["event_type"], "Plain");
}

/// Measures the event of every invocation as the mapping hands it over.
struct EventSizes {
    inner: Arc<dyn Invoke>,
    sizes: Mutex<Vec<(usize, usize)>>,
}

#[async_trait::async_trait]
impl Invoke for EventSizes {
    async fn invoke(&self, event: &Value) -> Result<Invocation, InvokeError> {
        let records = event["records"].as_object().map_or(0, |groups| {
            groups.values().filter_map(Value::as_array).map(Vec::len).sum()
        });
        let bytes = serde_json::to_vec(event).map_or(0, |json| json.len());
        self.sizes.lock().unwrap().push((records, bytes));
        self.inner.invoke(event).await
    }
}

#[tokio::test]
async fn no_batch_outgrows_lambdas_6_mb_event_the_record_that_would_starts_the_next() {
    // Six records of 900 KB: 1.2 MB each once base64-encoded in the event, so five fit in 6 MB and the sixth
    // does not. Before, the size was checked after a record was added, so the sixth joined the batch. Two
    // partitions, three records each: the embedded mock cluster keeps at most 5 MB per partition.
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let topic = unique("large");
    kafka.create_topic(&topic, 2).await;
    let group = unique("group");
    let sizes = Arc::new(EventSizes {
        inner: in_process(&env, &env.endpoint, Duration::from_secs(30)),
        sizes: Mutex::new(Vec::new()),
    });
    let producer = produce::producer(&kafka.bootstrap).expect("producer");
    for i in 0..6u8 {
        let mut value = shared::fixtures::noise(900_000);
        value[0] = i;
        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(&topic).partition(i32::from(i % 2)).payload(&value);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }
    let mut config = mapping_config(&kafka, &group, &[&topic]);
    config.batching_window_ms = 3_000;
    let mapping = Mapping::start(config, sizes.clone());
    wait_for_items(&env, 6, Duration::from_secs(90)).await;
    let progress = mapping.stop().await;
    assert_eq!(progress.failed_invocations, 0, "{progress:?}");
    let sizes = sizes.sizes.lock().unwrap().clone();
    assert!(
        sizes.iter().all(|(_, bytes)| *bytes <= esm::MAX_EVENT_BYTES),
        "every event within 6 MB: {sizes:?}"
    );
    assert_eq!(
        sizes.iter().map(|(records, _)| records).sum::<usize>(),
        6,
        "each record delivered once: {sizes:?}"
    );
    assert_eq!(sizes[0].0, 5, "the first batch is filled up to the limit: {sizes:?}");
    let committed = kafka.committed(&group, &topic, 2);
    assert_eq!((committed.get(&0), committed.get(&1)), (Some(&3), Some(&3)));
}

/// `notifications produce --rate` hands each message to the broker when it is due, not in bursts: its sends are
/// futures, and while it waited for the next message's time nothing polled them, so a rate-limited run reached
/// the broker 256 messages at a time (found when a mapping test's trickle came in bursts of 64 per partition).
#[tokio::test]
async fn a_rate_limited_produce_hands_each_message_to_the_broker_when_it_is_due() {
    use rdkafka::Message;
    let kafka = TestKafka::start();
    let topic = unique("rate");
    kafka.create_topic(&topic, 1).await;
    let messages = produce::generate(40, 5, Some(&topic));
    let producer = produce::producer(&kafka.bootstrap).expect("producer");
    produce::send_all(&producer, &messages, 20.0).await.expect("produced");
    let consumer = kafka.reader(&topic);
    let mut times = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while times.len() < 40 && std::time::Instant::now() < until {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            times.push(message.timestamp().to_millis().expect("a create time"));
        }
    }
    assert_eq!(times.len(), 40);
    let spread = times[39] - times[0];
    let largest_gap = times.windows(2).map(|pair| pair[1] - pair[0]).max().unwrap_or(0);
    // 40 messages at 20 per second: about 1.95 s from the first to the last, 50 ms apart.
    assert!(
        spread >= 1_500 && largest_gap < 1_000,
        "handed over {spread} ms apart in all, at most {largest_gap} ms between two: {times:?}"
    );
}

/// A Debezium change stream (PostgreSQL's `orders`, MySQL's `order_items` through Kafka Connect's JsonConverter
/// with schemas) produced to Kafka, then followed by order id through the API: the row's id is the order id in
/// `orders`, the `order_id` column in `order_items`; each change reads `table.operation`, at the database's
/// change time, with its operation, table and connector on the record.
#[tokio::test]
async fn a_debezium_change_stream_is_followed_by_order_id_through_the_api() {
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let orders = unique("shop.public.orders");
    let items = unique("shop.shop.order_items");
    for topic in [&orders, &items] {
        kafka.create_topic(topic, 1).await;
    }
    let order = rand::random::<u32>() as u64 + 1;
    let source = |connector: &str, table: &str, minute: i64| {
        json!({"connector": connector, "name": "shop", "db": "shop", "schema": "public", "table": table,
               "ts_ms": 1_709_287_200_000_i64 + minute * 60_000})
    };
    let row = json!({"id": order, "customer_id": 42, "status": "NEW", "type": "express"});
    let changes = [
        (
            &orders,
            json!({"before": null, "after": row, "source": source("postgresql", "orders", 0), "op": "c", "ts_ms": 1}),
        ),
        (
            &items,
            json!({"schema": {"type": "struct", "optional": false},
                        "payload": {"before": null, "after": {"id": 7, "order_id": order, "sku": "SKU-1"},
                                    "source": source("mysql", "order_items", 1), "op": "c", "ts_ms": 1}}),
        ),
        (
            &orders,
            json!({"before": row, "after": {"id": order, "customer_id": 42, "status": "PAID"},
                         "source": source("postgresql", "orders", 2), "op": "u", "ts_ms": 1}),
        ),
        (
            &orders,
            json!({"before": {"id": order, "customer_id": 42}, "after": null,
                         "source": source("postgresql", "orders", 3), "op": "d", "ts_ms": 1}),
        ),
    ];
    let messages: Vec<Outgoing> = changes
        .iter()
        .map(|(topic, value)| {
            raw(
                topic,
                Some(format!("{{\"id\":{order}}}").as_bytes()),
                Some(value.to_string().as_bytes()),
                &[],
            )
        })
        .collect();
    let mapping = Mapping::start(
        mapping_config(&kafka, &unique("group"), &[&orders, &items]),
        in_process(&env, &env.endpoint, Duration::from_secs(20)),
    );
    let ids = send_tracked(&kafka, &messages).await;
    wait_for_ids(&env, &ids, Duration::from_secs(60)).await;
    mapping.stop().await;

    let server = env.query_server().await;
    let page = server.get_ok(&format!("/notifications?order_id={order}")).await;
    let steps: Vec<(&str, &str)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["event_type"].as_str().unwrap(),
                item["occurred_at"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("orders.create", "2024-03-01T10:00:00.000000Z"),
            ("order_items.create", "2024-03-01T10:01:00.000000Z"),
            ("orders.update", "2024-03-01T10:02:00.000000Z"),
            ("orders.delete", "2024-03-01T10:03:00.000000Z"),
        ],
        "{page}"
    );
    let customer = server.get_ok("/notifications?customer_id=42&limit=500").await;
    let found: Vec<&str> = customer["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    for id in [&ids[0], &ids[2], &ids[3]] {
        assert!(found.contains(&id.as_str()), "{id} by customer 42: {customer}");
    }
    let created = server.get_ok(&format!("/notifications/{}", ids[1])).await;
    assert_eq!(
        created["change"],
        json!({"op": "c", "table": "shop.public.order_items", "changed_at": "2024-03-01T10:01:00.000000Z", "connector": "mysql"})
    );
    assert_eq!(created["warnings"], json!([]));
    assert_eq!(
        created["payload"]["schema"]["type"], "struct",
        "the payload is kept as it came"
    );
    let deleted = server.get_ok(&format!("/notifications/{}", ids[3])).await;
    assert_eq!(deleted["change"]["op"], "d");
    assert_eq!(deleted["order_id"], order.to_string());
}

/// Registry formats end to end: Avro in Confluent framing with its schema in a `SCHEMA_DIR`, Protobuf and
/// JSON in Glue framing with schemas registered in moto's Glue Schema Registry (as AWS's serializers would),
/// produced to Kafka by `notifications produce`'s encoders, then found by order id through the API with their
/// decoded values beside their exact bytes.
#[tokio::test]
async fn avro_protobuf_and_glue_json_are_found_by_order_id_with_their_decoded_values() {
    use notifications_cli::formats::{
        encode_events, encode_flow, glue_framer, glue_uuid, register_in_glue, Format, Registry,
    };
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let topic = unique("orders.typed");
    kafka.create_topic(&topic, 2).await;
    let dir = std::env::temp_dir().join(unique("schema-dir"));
    let seed = rand::random::<u32>() as u64;
    let mut messages = encode_events(4, seed, Some(&topic), Format::Avro, &Registry::Dir(dir.clone()), None)
        .await
        .unwrap();
    let glue = aws_sdk_glue::Client::new(&integration_tests::sdk_config(&env.endpoint));
    for (format, compress) in [(Format::Protobuf, true), (Format::JsonSchema, false)] {
        let version = register_in_glue(&glue, format).await.unwrap();
        let framer = glue_framer(format, glue_uuid(&version).unwrap(), compress);
        messages.extend(encode_flow(4, seed, Some(&topic), format, &framer).unwrap());
    }
    let ingest = env.ingest_via(
        &env.endpoint,
        &[("DEADLINE_MARGIN_MS", "200"), ("SCHEMA_DIR", dir.to_str().unwrap())],
    );
    let mapping = Mapping::start(
        mapping_config(&kafka, &unique("group"), &[&topic]),
        Arc::new(InProcess {
            ingest: Arc::new(ingest),
            timeout: Duration::from_secs(20),
        }),
    );
    let ids = send_tracked(&kafka, &messages).await;
    wait_for_ids(&env, &ids, Duration::from_secs(60)).await;
    mapping.stop().await;

    let server = env.query_server().await;
    let order = format!("ord-{seed}-000001");
    let page = server.get_ok(&format!("/notifications?order_id={order}")).await;
    let mut formats: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["payload_format"].as_str().unwrap())
        .collect();
    formats.sort();
    assert_eq!(
        formats,
        [
            "confluent-avro",
            "confluent-avro",
            "confluent-avro",
            "confluent-avro",
            "glue-json",
            "glue-json",
            "glue-json",
            "glue-json",
            "glue-protobuf",
            "glue-protobuf",
            "glue-protobuf",
            "glue-protobuf"
        ],
        "{page}"
    );
    for item in page["items"].as_array().unwrap() {
        assert_eq!(item["warnings"], json!([]), "{item}");
        let record = server
            .get_ok(&format!("/notifications/{}", item["id"].as_str().unwrap()))
            .await;
        assert_eq!(record["decoded"]["orderId"], order.as_str(), "{record}");
        assert_eq!(record["payload_encoding"], "base64");
        assert_eq!(record["occurred_at"], item["occurred_at"]);
        assert!(record["schema"]["kind"].is_string(), "{record}");
    }
    let created = &page["items"][0];
    assert_eq!(created["event_type"], "OrderCreated", "{page}");
    assert_eq!(created["occurred_at"], "2026-01-01T00:00:01.000000Z");
    std::fs::remove_dir_all(&dir).unwrap();
}
