//! Registry formats against a real AWS Glue Schema Registry API (moto) and a real DynamoDB-compatible server:
//! schemas registered through the Glue API, records framed as AWS's Glue serializers frame them, decoded at
//! ingest; a registry outage holds the framed records back, and they are stored once it is over.

use std::sync::Arc;
use std::time::Duration;

use integration_tests::fault_proxy::{self, FaultPlan};
use integration_tests::{event_bytes, kafka_event, sdk_config, EventRecord, TestEnv};
use notifications_cli::formats::{encode_flow, glue_framer, glue_uuid, register_in_glue, Format};
use shared::dynamo::DynamoStore;
use shared::schema::registry::resolver_for;

const BUDGET: Duration = Duration::from_secs(120);

/// The flow's events in `format`, registered in moto's Glue registry, as event records from `first_offset`.
async fn glue_records(
    env: &TestEnv,
    format: Format,
    compress: bool,
    topic: &str,
    first_offset: i64,
) -> Vec<EventRecord> {
    let glue = aws_sdk_glue::Client::new(&sdk_config(&env.endpoint));
    let version = register_in_glue(&glue, format)
        .await
        .expect("schema registered in moto");
    let framer = glue_framer(format, glue_uuid(&version).unwrap(), compress);
    encode_flow(8, 11, Some(topic), format, &framer)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, message)| EventRecord {
            key: message.key,
            ..EventRecord::bytes(topic, 0, first_offset + i as i64, message.value)
        })
        .collect()
}

#[tokio::test]
async fn glue_framed_avro_protobuf_and_json_are_decoded_with_schemas_registered_through_the_glue_api() {
    let env = TestEnv::new().await;
    let topic = integration_tests::unique("glue-formats");
    let mut records = glue_records(&env, Format::Avro, true, &topic, 0).await;
    records.extend(glue_records(&env, Format::Protobuf, false, &topic, 100).await);
    records.extend(glue_records(&env, Format::JsonSchema, false, &topic, 200).await);
    // A version no registry knows: content, stored undecoded with a warning.
    let unknown = shared::schema::glue_frame([0x42; 16], b"\x02\x04ab", false);
    records.push(EventRecord::bytes(&topic, 0, 300, Some(unknown)));

    let ingest = env.ingest(&[]);
    let (response, summary) = ingest
        .process(event_bytes(&kafka_event(&records)), BUDGET)
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(summary.stored, 25);
    assert_eq!(summary.held_for_schema, 0);

    let query = env.query_server().await;
    for (offset, format) in [(0, "glue-avro"), (100, "glue-protobuf"), (200, "glue-json")] {
        let record = query.get_ok(&format!("/notifications/{topic}:0:{offset}")).await;
        assert_eq!(record["payload_format"], format, "{record}");
        assert_eq!(record["payload_encoding"], "base64");
        assert!(record["warnings"].as_array().unwrap().is_empty(), "{record}");
        let order = record["order_id"].as_str().expect("an order id from the decoded value");
        assert_eq!(record["decoded"]["orderId"], order, "{record}");
        assert_eq!(record["decoded"]["eventType"], "OrderCreated");
        assert_eq!(record["schema"]["registry"], "glue");
        assert!(
            record["schema"]["name"].as_str().unwrap().starts_with("order-event-"),
            "{record}"
        );
        assert_eq!(
            record["occurred_at"], "2026-01-01T00:00:01.000000Z",
            "the event's own time: {record}"
        );
        // Found by its order id, like any JSON record.
        let page = query.get_ok(&format!("/notifications?order_id={order}")).await;
        assert!(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["payload_format"] == format),
            "{page}"
        );
    }
    let unknown = query.get_ok(&format!("/notifications/{topic}:0:300")).await;
    assert_eq!(unknown["payload_format"], "glue-binary");
    assert!(
        unknown["warnings"][0].as_str().unwrap().contains("unknown"),
        "{unknown}"
    );
    assert_eq!(unknown["schema"]["id"], "42424242-4242-4242-4242-424242424242");
}

#[tokio::test]
async fn a_registry_outage_acknowledges_nothing_framed_and_everything_is_stored_once_it_is_back() {
    let env = TestEnv::new().await;
    let topic = integration_tests::unique("glue-outage");
    let mut records = glue_records(&env, Format::Avro, false, &topic, 0).await;
    records.push(EventRecord::json(
        &topic,
        0,
        50,
        serde_json::json!({"orderId": "plain-1"}),
    ));
    let event = kafka_event(&records);

    // Glue behind a proxy that is down; DynamoDB reachable.
    let mut glue = fault_proxy::start(&env.endpoint, FaultPlan::NONE).await;
    let config = env.ingest_config(&[("FAILURE_MODE", "report-batch-item-failures")]);
    let store =
        DynamoStore::for_ingest(&integration_tests::ingest_sdk_config(&env.endpoint), &config).expect("a store");
    let resolver = Arc::new(resolver_for(
        &config.schemas,
        None,
        Some(aws_sdk_glue::Client::new(&sdk_config(&glue.endpoint))),
    ));
    let ingest = ingest::handler::Ingest::new(Arc::new(store), config).with_schemas(resolver.clone());
    glue.stop();

    let (response, summary) = ingest
        .process(event_bytes(&event), Duration::from_secs(6))
        .await
        .unwrap();
    assert_eq!(summary.held_for_schema, 8, "{summary:?}");
    assert_eq!(summary.stored, 1, "the plain record does not wait: {summary:?}");
    let failed: Vec<i64> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.offset)
        .collect();
    assert_eq!(failed, (0..8).collect::<Vec<_>>());
    assert!(
        resolver.fetches() >= 2,
        "the registry was tried again within the budget"
    );
    assert_eq!(env.count_items().await, 1, "nothing framed was stored undecoded");

    // The trigger delivers the batch again once the registry is back: every record is stored, decoded.
    glue.resume().await;
    let (response, summary) = ingest.process(event_bytes(&event), BUDGET).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(summary.stored, 9);
    assert_eq!(env.count_items().await, 9);
    let query = env.query_server().await;
    let record = query.get_ok(&format!("/notifications/{topic}:0:3")).await;
    assert_eq!(record["payload_format"], "glue-avro");
    assert!(record["order_id"].is_string(), "{record}");
}
