//! The ingest function against a real moto server (DynamoDB and S3 over HTTP).

use std::time::Duration;

use integration_tests::fault_proxy::{self, FaultPlan};
use integration_tests::{event_bytes, kafka_event, own_dynalite, own_moto, unique, EventRecord, TestEnv};
use serde_json::json;
use sha2::Digest;

const BUDGET: Duration = Duration::from_secs(120);

fn order_events(topic: &str, count: i64) -> Vec<EventRecord> {
    (0..count)
        .map(|i| {
            EventRecord::json(
                topic,
                i % 4,
                i,
                json!({"eventType": "OrderCreated", "orderId": format!("o-{}", i % 50), "correlationId": format!("c-{}", i % 7)}),
            )
        })
        .collect()
}

#[tokio::test]
async fn ingest_stores_the_aws_sample_msk_event() {
    let env = TestEnv::new().await;
    let ingest = env.ingest(&[]);
    let sample: serde_json::Value =
        serde_json::from_str(include_str!("../../fixtures/events/msk-sample.json")).unwrap();
    let (response, summary) = ingest.process(event_bytes(&sample), BUDGET).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(summary.stored, 1);
    let item = env
        .dynamodb
        .get_item()
        .table_name(&env.table)
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S("AWSKafkaTopic:0:0".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("stored");
    assert_eq!(item["source_topic"].as_s().unwrap(), "AWSKafkaTopic");
}

#[tokio::test]
async fn redelivering_the_same_event_three_times_leaves_exactly_one_item_per_record() {
    let env = TestEnv::new().await;
    let ingest = env.ingest(&[]);
    let event = kafka_event(&order_events("orders", 120));
    for _ in 0..3 {
        ingest.process(event_bytes(&event), BUDGET).await.unwrap();
    }
    assert_eq!(env.count_items().await, 120);
}

#[tokio::test]
async fn a_full_batch_of_ten_thousand_records_is_stored() {
    let env = TestEnv::new().await;
    let ingest = env.ingest(&[]);
    let event = kafka_event(&order_events("orders.bulk", 10_000));
    let (_, summary) = ingest.process(event_bytes(&event), BUDGET).await.unwrap();
    assert_eq!(summary.records, 10_000);
    assert_eq!(summary.stored, 10_000);
    assert_eq!(summary.failed, 0);
    assert_eq!(env.count_items().await, 10_000);
}

#[tokio::test]
async fn a_one_megabyte_payload_goes_to_s3_and_comes_back_byte_for_byte() {
    let env = TestEnv::new().await;
    let ingest = env.ingest(&[]);
    // Incompressible bytes, so compression cannot bring it under the item limit.
    let payload = shared::fixtures::noise(1_048_576);
    let event = kafka_event(&[EventRecord::bytes("blobs", 0, 7, Some(payload.clone()))]);
    let (_, summary) = ingest.process(event_bytes(&event), BUDGET).await.unwrap();
    assert_eq!(summary.offloaded, 1);
    let item = env
        .dynamodb
        .get_item()
        .table_name(&env.table)
        .key("id", aws_sdk_dynamodb::types::AttributeValue::S("blobs:0:7".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let pointer = item["payload_s3"].as_m().unwrap();
    assert_eq!(pointer["size"].as_n().unwrap(), "1048576");
    assert_eq!(
        pointer["sha256"].as_s().unwrap(),
        &hex::encode(sha2::Sha256::digest(&payload))
    );
    let object = env
        .s3
        .get_object()
        .bucket(&env.bucket)
        .key(pointer["key"].as_s().unwrap())
        .send()
        .await
        .unwrap();
    let stored = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(stored.as_ref(), payload.as_slice());
}

#[tokio::test]
async fn an_order_id_longer_than_the_index_key_limit_is_stored_cut_under_its_digest() {
    let env = TestEnv::new().await;
    let ingest = env.ingest(&[]);
    let long_id = "9".repeat(3000);
    let event = kafka_event(&[EventRecord::json("orders", 0, 1, json!({"orderId": long_id}))]);
    ingest.process(event_bytes(&event), BUDGET).await.unwrap();
    let item = env
        .dynamodb
        .get_item()
        .table_name(&env.table)
        .key("id", aws_sdk_dynamodb::types::AttributeValue::S("orders:0:1".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    // Stored cut, with its length and digest (the index key is the whole id's digest, so it is still found exactly).
    let stored = item["order_id"].as_s().unwrap();
    assert_eq!(stored, &shared::dynamo::table::stored_field(&long_id));
    assert!(
        stored.len() <= shared::model::MAX_FIELD_BYTES && stored.starts_with("999"),
        "{stored}"
    );
    assert!(stored.contains("[3000 bytes, sha256:"), "{stored}");
    assert!(item["order_key"].as_s().unwrap().starts_with("sha256:"));
}

#[tokio::test]
async fn throttling_and_unprocessed_items_from_a_fault_layer_still_leave_every_record_stored() {
    let env = TestEnv::new().await;
    let proxy = fault_proxy::start(
        &env.endpoint,
        FaultPlan {
            throttle: 0.3,
            unprocess: 0.3,
            server_error: 0.05,
            seed: 7,
        },
    )
    .await;
    let ingest = env.ingest_via(&proxy.endpoint, &[]);
    let event = kafka_event(&order_events("orders.faulty", 2_000));
    let (_, summary) = ingest.process(event_bytes(&event), BUDGET).await.unwrap();
    assert_eq!(summary.stored, 2_000);
    assert_eq!(env.count_items().await, 2_000);
    let throttled = proxy.counts.throttled.load(std::sync::atomic::Ordering::Relaxed);
    let unprocessed = proxy
        .counts
        .unprocessed_items
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        throttled > 0 && unprocessed > 0,
        "faults were injected: {throttled} throttled, {unprocessed} unprocessed"
    );
    assert!(summary.retried >= throttled, "{summary:?}");
    // Every request's SigV4 signature, checked as it arrived (an invalid one would have failed its records).
    let calls = proxy.counts.batch_calls.load(std::sync::atomic::Ordering::Relaxed);
    let checked = proxy
        .counts
        .signatures_checked
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(calls > 0 && checked == calls, "{checked} of {calls} signatures checked");
}

#[tokio::test]
async fn when_the_server_is_down_the_invocation_fails_and_nothing_is_claimed_stored() {
    let mut server = own_moto();
    let env = TestEnv::on(&server.endpoint).await;
    let ingest = env.ingest(&[("DEADLINE_MARGIN_MS", "0")]);
    server.stop();
    let event = kafka_event(&order_events("orders", 40));
    let err = ingest
        .process(event_bytes(&event), Duration::from_secs(3))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("40 of 40 records were not stored"), "{message}");
    // Back up (an empty server): redelivery then stores everything.
    server.restart().unwrap();
    let env = TestEnv::on(&server.endpoint).await;
    let ingest = env.ingest(&[]);
    ingest.process(event_bytes(&event), BUDGET).await.unwrap();
    assert_eq!(env.count_items().await, 40);
}

/// DynamoDB keeps every write it acknowledged. dynalite keeps its tables in LevelDB: killed with SIGKILL while
/// invocations write, and started again on the same directory, it still holds every record of the invocations
/// that finished before the kill, with nothing replayed, and the invocations the kill interrupted store the rest.
#[tokio::test]
async fn a_dynamodb_server_killed_with_writes_in_flight_keeps_every_write_it_acknowledged() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let data = std::env::temp_dir().join(unique("ingest-dynalite"));
    let mut dynalite = own_dynalite(Some(&data));
    let moto = own_moto();
    let router = fault_proxy::start_split(&dynalite.endpoint, &moto.endpoint, FaultPlan::NONE).await;
    let env = TestEnv::on(&router.endpoint).await;
    let ingest = Arc::new(env.ingest(&[]));
    let killed = Arc::new(AtomicBool::new(false));
    // 20 invocations of 500 records (20 BatchWriteItem calls each), two at a time.
    let slots = Arc::new(tokio::sync::Semaphore::new(2));
    let mut invocations = tokio::task::JoinSet::new();
    for n in 0..20 {
        let (ingest, killed, slots) = (ingest.clone(), killed.clone(), slots.clone());
        invocations.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("a slot");
            let event = kafka_event(&order_events(&format!("orders.crash{n}"), 500));
            let outcome = ingest.process(event_bytes(&event), BUDGET).await;
            (
                n,
                outcome.map(|(response, _)| response.batch_item_failures.len()),
                killed.load(Ordering::SeqCst),
            )
        });
    }
    while router.counts.operation("BatchWriteItem") < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    dynalite.kill();
    killed.store(true, Ordering::SeqCst);
    let at_kill = router.counts.operation("BatchWriteItem");
    tokio::time::sleep(Duration::from_secs(1)).await;
    dynalite.restart().expect("dynalite starts again on its directory");
    let mut finished_before_kill = Vec::new();
    while let Some(joined) = invocations.join_next().await {
        let (n, outcome, after_kill) = joined.expect("an invocation task");
        assert_eq!(
            outcome.expect("the invocation stores its records once the server is back"),
            0,
            "batch {n}"
        );
        if !after_kill {
            finished_before_kill.push(n);
        }
    }
    assert!(
        !finished_before_kill.is_empty() && finished_before_kill.len() < 20 && at_kill < 400,
        "the kill came with writes in flight, after some invocations had finished: {finished_before_kill:?}, {at_kill} batch writes at the kill"
    );
    let stored: std::collections::HashSet<String> = env.stored_ids().await.into_iter().collect();
    for n in 0..20 {
        let missing = (0..500)
            .filter(|i| !stored.contains(&format!("orders.crash{n}:{}:{i}", i % 4)))
            .count();
        assert_eq!(
            missing,
            0,
            "invocation {n} (finished before the kill: {})",
            finished_before_kill.contains(&n)
        );
    }
    assert_eq!(stored.len(), 10_000);
    drop(dynalite);
    let _ = std::fs::remove_dir_all(&data);
}

/// The WriteUnits metric is what DynamoDB reports it charged, and the item-size rules the price table uses
/// (`table::write_units`) give the same figure. dynalite reports the table's units by DynamoDB's documented size
/// rules (not the indexes'), so the table part is checked here; moto answers a constant 1 per request and cannot
/// check it. Records span the 1 KB steps, from a tiny JSON event to a 20 KB one that is no longer compressible.
#[tokio::test]
async fn the_write_units_reported_are_what_the_item_size_rules_give() {
    use shared::dynamo::table;
    let dynalite = own_dynalite(None);
    let router =
        fault_proxy::start_split(&dynalite.endpoint, &integration_tests::aws_endpoint(), FaultPlan::NONE).await;
    let env = TestEnv::on(&router.endpoint).await;
    let ingest = env.ingest(&[]);
    // Deterministic text that zstd cannot shrink much: a linear congruential sequence of letters.
    let mut state = 7u64;
    let mut text = |len: usize| -> String {
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (b'a' + (state >> 59) as u8 % 26) as char
            })
            .collect()
    };
    let sizes = [10, 300, 700, 900, 1_000, 1_100, 2_000, 3_000, 5_000, 9_000, 20_000];
    let records: Vec<EventRecord> = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| {
            EventRecord::json(
                "orders.units",
                0,
                i as i64,
                json!({"eventType": "OrderCreated", "orderId": format!("o-{i}"), "customerId": "c-1", "note": text(*size)}),
            )
        })
        .collect();
    let (response, summary) = ingest
        .process(event_bytes(&kafka_event(&records)), BUDGET)
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(summary.stored, sizes.len());
    let items: Vec<_> = env
        .scan(|scan| scan)
        .await
        .into_iter()
        .flat_map(|page| page.items.unwrap_or_default())
        .collect();
    assert_eq!(items.len(), sizes.len());
    let computed: Vec<table::WriteUnits> = items.iter().map(table::write_units).collect();
    let table_units: u64 = computed.iter().map(|units| units.table).sum();
    assert_eq!(
        summary.write_units, table_units,
        "reported by dynalite vs computed: {computed:?}"
    );
    // The records span several steps of 1 KB, and each is in the by_order and by_customer indexes.
    assert!(table_units >= 20, "{computed:?}");
    assert!(computed.iter().all(|units| units.indexes == 2), "{computed:?}");
    drop(dynalite);
}

#[tokio::test]
async fn records_that_are_not_json_are_stored_as_they_came() {
    let env = TestEnv::new().await;
    let ingest = env.ingest(&[]);
    let event = kafka_event(&[
        EventRecord::bytes("misc", 0, 1, Some(vec![0xff, 0xfe, 0x00, 0x01])),
        EventRecord::bytes("misc", 0, 2, None),
        EventRecord::bytes("misc", 0, 3, Some(b"plain text".to_vec())),
    ]);
    let (_, summary) = ingest.process(event_bytes(&event), BUDGET).await.unwrap();
    assert_eq!(summary.stored, 3);
    let item = env
        .dynamodb
        .get_item()
        .table_name(&env.table)
        .key("id", aws_sdk_dynamodb::types::AttributeValue::S("misc:0:1".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["payload"].as_b().unwrap().as_ref(), &[0xff, 0xfe, 0x00, 0x01]);
    assert_eq!(item["payload_format"].as_s().unwrap(), "binary");
}

/// The whole fixture corpus, as a trigger delivers it, through the handler into moto: every record is stored
/// with the fields its file expects (the pure core's table-driven test checks the same corpus without I/O).
#[tokio::test]
async fn every_fixture_message_is_stored_through_the_handler_with_the_fields_it_expects() {
    use std::collections::BTreeMap;

    use aws_sdk_dynamodb::types::AttributeValue;
    use base64::Engine as _;
    use serde_json::{Map, Value};

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/messages");
    let messages = shared::fixtures::load_messages(&dir).expect("the corpus loads");
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    // One invocation per topic-to-service map the fixtures ask for; each record as the trigger sends it.
    let mut events: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut expectations = Vec::new();
    for message in &messages {
        let file: Value = serde_json::from_str(&std::fs::read_to_string(&message.path).unwrap()).unwrap();
        let partition = file["partition"].as_i64().unwrap();
        let mut record = json!({
            "topic": message.topic,
            "partition": partition,
            "offset": file["offset"],
            "timestamp": file["timestamp"],
            "timestampType": file.get("timestamp_type").cloned().unwrap_or(json!("CREATE_TIME")),
            "key": message.key.as_deref().map(b64),
            "value": message.value.as_deref().map(b64),
            "headers": message.headers.iter().map(|(name, bytes)| {
                json!({ name.clone(): bytes.iter().map(|b| *b as i8).collect::<Vec<_>>() })
            }).collect::<Vec<_>>(),
        });
        for (name, value) in file["record_overrides"].as_object().into_iter().flatten() {
            record[name] = value.clone();
        }
        let services = file["topic_services"].as_str().unwrap_or_default().to_owned();
        let group = format!("{}-{partition}", message.topic);
        let groups = events.entry(services).or_default();
        groups
            .entry(group)
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .unwrap()
            .push(record);
        let id = format!("{}:{partition}:{}", message.topic, file["offset"]);
        expectations.push((message.path.clone(), id, file["expect"].clone()));
    }

    let env = TestEnv::new().await;
    for (services, groups) in events {
        let ingest = match services.as_str() {
            "" => env.ingest(&[]),
            map => env.ingest(&[("TOPIC_SERVICE_MAP", map)]),
        };
        let event = json!({"eventSource": "aws:kafka", "eventSourceArn": "arn:aws:kafka:x", "records": groups});
        let (response, summary) = ingest.process(event_bytes(&event), BUDGET).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(summary.stored, summary.records, "{summary:?}");
    }
    assert_eq!(env.count_items().await, messages.len());

    let mut problems = Vec::new();
    for (path, id, expect) in &expectations {
        let name = path.file_name().unwrap().to_string_lossy();
        let item = env
            .dynamodb
            .get_item()
            .table_name(&env.table)
            .key("id", AttributeValue::S(id.clone()))
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_default();
        if item.is_empty() {
            problems.push(format!("{name}: {id} not stored"));
            continue;
        }
        let text = |field: &str| item.get(field).and_then(|v| v.as_s().ok()).cloned();
        for field in [
            "event_type",
            "correlation_id",
            "order_id",
            "customer_id",
            "source_service",
            "event_id",
            "payload_format",
        ] {
            let expected = expect[field].as_str().map(str::to_owned);
            if text(field) != expected {
                problems.push(format!("{name}: {field} is {:?}, expected {expected:?}", text(field)));
            }
        }
        // A record without a Kafka timestamp takes the time it was stored, which this run cannot know.
        let occurred_at = expect["occurred_at"].as_str().unwrap_or_default();
        if !occurred_at.starts_with("2030-01-01") && text("occurred_at").as_deref() != Some(occurred_at) {
            problems.push(format!(
                "{name}: occurred_at is {:?}, expected {occurred_at}",
                text("occurred_at")
            ));
        }
        let schema_id = item.get("schema_id").and_then(|v| v.as_n().ok()).cloned();
        if schema_id != expect["schema_id"].as_i64().map(|n| n.to_string()) {
            problems.push(format!(
                "{name}: schema_id is {schema_id:?}, expected {}",
                expect["schema_id"]
            ));
        }
        let warnings: Vec<String> = match item.get("warnings") {
            Some(AttributeValue::L(list)) => list.iter().filter_map(|v| v.as_s().ok().cloned()).collect(),
            Some(AttributeValue::Ss(list)) => list.clone(),
            _ => Vec::new(),
        };
        let expected_warnings: Vec<&str> = expect["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if warnings.len() != expected_warnings.len()
            || !expected_warnings
                .iter()
                .all(|part| warnings.iter().any(|w| w.contains(part)))
        {
            problems.push(format!("{name}: warnings {warnings:?}, expected {expected_warnings:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
