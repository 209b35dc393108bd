//! The query API over HTTP against a real moto server, with data written through the ingest code path.
//! Every answer is also checked against the API's own OpenAPI document.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use integration_tests::{kafka_event, EventRecord, QueryServer, TestEnv};
use serde_json::{json, Value};

/// Checks answers against the OpenAPI document the server publishes.
struct Contract {
    document: Value,
}

impl Contract {
    async fn fetch(server: &QueryServer) -> Contract {
        let (status, content_type, document) = server.get("/openapi.json").await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("application/json"));
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
        Contract { document }
    }

    fn check(&self, template: &str, status: u16, content_type: &str, body: &Value) {
        let responses = &self.document["paths"][template]["get"]["responses"];
        let response = &responses[status.to_string()];
        assert!(
            !response.is_null(),
            "{template} documents no {status} answer; body {body}"
        );
        let media = content_type.split(';').next().unwrap_or_default().trim();
        let schema = &response["content"][media]["schema"];
        assert!(!schema.is_null(), "{template} {status} documents no {media} body");
        let mut root = schema.clone();
        root["components"] = self.document["components"].clone();
        let validator = jsonschema::validator_for(&root).expect("the document's schemas compile");
        if let Err(error) = validator.validate(body) {
            panic!("{template} {status} answer does not match the document: {error}\nbody: {body}");
        }
    }

    /// GETs and checks the answer against the document.
    async fn get(&self, server: &QueryServer, template: &str, path: &str) -> (u16, Value) {
        let (status, content_type, body) = server.get(path).await;
        self.check(template, status, &content_type, &body);
        if status >= 400 {
            assert_eq!(content_type, "application/problem+json", "{path}");
            assert_eq!(body["status"], status, "{body}");
            assert!(!body["detail"].as_str().unwrap_or_default().is_empty(), "{body}");
        }
        (status, body)
    }
}

fn at(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(1_714_000_000 + seconds, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

struct Fixture {
    env: TestEnv,
    server: QueryServer,
    contract: Contract,
}

async fn fixture(records: Vec<EventRecord>) -> Fixture {
    let env = TestEnv::new().await;
    let ingest = env.ingest(&[("TOPIC_SERVICE_MAP", "shipping=shipping-service")]);
    for chunk in records.chunks(2_000) {
        ingest
            .process(&kafka_event(chunk), Duration::from_secs(120))
            .await
            .expect("ingest");
    }
    let server = env.query_server().await;
    let contract = Contract::fetch(&server).await;
    Fixture { env, server, contract }
}

/// One order's flow: created, paid, shipped, with a second order and customer mixed in.
fn order_flow() -> Vec<EventRecord> {
    vec![
        EventRecord::json(
            "orders",
            0,
            1,
            json!({"eventType": "OrderCreated", "orderId": "o-1", "customerId": "c-1", "correlationId": "flow-1", "source": "order-service", "occurredAt": at(0)}),
        ),
        EventRecord::json(
            "payments",
            0,
            1,
            json!({"type": "PaymentCaptured", "data": {"order": {"id": "o-1"}, "customer_id": "c-1"}, "metadata": {"correlation-id": "flow-1", "service": "payment-service", "timestamp": at(2)}}),
        ),
        EventRecord::json(
            "shipping",
            1,
            5,
            json!({"EventName": "OrderShipped", "OrderID": "o-1", "CorrelationID": "flow-1", "time": at(7)}),
        ),
        EventRecord::json(
            "orders",
            1,
            9,
            json!({"eventType": "OrderCreated", "orderId": "o-2", "customerId": "c-1", "correlationId": "flow-2", "occurredAt": at(1)}),
        ),
    ]
}

#[tokio::test]
async fn notifications_of_an_order_are_listed_in_event_time_order() {
    let f = fixture(order_flow()).await;
    let (status, body) = f
        .contract
        .get(&f.server, "/notifications", "/notifications?order_id=o-1")
        .await;
    assert_eq!(status, 200);
    let types: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["OrderCreated", "PaymentCaptured", "OrderShipped"]);
    assert_eq!(body["next_cursor"], Value::Null);
    let first = &body["items"][0];
    assert_eq!(first["id"], "orders:0:1");
    assert_eq!(first["customer_id"], "c-1");
    assert_eq!(first["source_service"], "order-service");
    assert!(first.get("payload").is_none(), "list answers are summaries");
    assert_eq!(
        body["items"][2]["source_service"], "shipping-service",
        "from the topic map"
    );

    let (_, desc) = f
        .contract
        .get(&f.server, "/notifications", "/notifications?order_id=o-1&order=desc")
        .await;
    assert_eq!(desc["items"][0]["event_type"], "OrderShipped");
}

#[tokio::test]
async fn customers_and_correlations_are_looked_up_and_filtered() {
    let f = fixture(order_flow()).await;
    let (_, body) = f
        .contract
        .get(&f.server, "/notifications", "/notifications?customer_id=c-1")
        .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 3);
    let (_, body) = f
        .contract
        .get(
            &f.server,
            "/notifications",
            "/notifications?customer_id=c-1&event_type=OrderCreated",
        )
        .await;
    let orders: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(orders, ["o-1", "o-2"]);
    let (_, body) = f
        .contract
        .get(&f.server, "/notifications", "/notifications?correlation_id=flow-1")
        .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 3);
    let window = format!("/notifications?correlation_id=flow-1&since={}&until={}", at(1), at(2)).replace('+', "%2B");
    let (_, body) = f.contract.get(&f.server, "/notifications", &window).await;
    let types: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["PaymentCaptured"]);
}

#[tokio::test]
async fn pages_follow_each_other_without_gaps_or_repeats() {
    let records: Vec<EventRecord> = (0..137)
        .map(|i| {
            EventRecord::json(
                "orders",
                i % 3,
                i,
                json!({"orderId": "o-many", "eventType": if i % 4 == 0 { "Special" } else { "Plain" }, "occurredAt": at(i * 10)}),
            )
        })
        .collect();
    let f = fixture(records).await;
    for (order, filter, expected) in [("asc", "", 137), ("desc", "", 137), ("asc", "&event_type=Special", 35)] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut path = format!("/notifications?order_id=o-many&limit=10&order={order}{filter}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = f.contract.get(&f.server, "/notifications", &path).await;
            assert_eq!(status, 200, "{body}");
            pages += 1;
            for item in body["items"].as_array().unwrap() {
                seen.push(item["occurred_at"].as_str().unwrap().to_owned());
            }
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
            assert!(pages < 100, "pagination does not end");
        }
        assert_eq!(seen.len(), expected, "{order}{filter}");
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), expected, "no repeats");
        let mut sorted = seen.clone();
        sorted.sort();
        if order == "desc" {
            sorted.reverse();
        }
        assert_eq!(seen, sorted, "event-time order across pages");
    }
}

#[tokio::test]
async fn a_cursor_that_was_tampered_with_or_belongs_to_another_query_is_refused() {
    let records: Vec<EventRecord> = (0..5)
        .map(|i| EventRecord::json("orders", 0, i, json!({"orderId": "o-c", "customerId": "c-c"})))
        .collect();
    let f = fixture(records).await;
    let (_, body) = f
        .contract
        .get(&f.server, "/notifications", "/notifications?order_id=o-c&limit=2")
        .await;
    let cursor = body["next_cursor"].as_str().unwrap().to_owned();
    let (status, body) = f
        .contract
        .get(
            &f.server,
            "/notifications",
            &format!("/notifications?customer_id=c-c&limit=2&cursor={cursor}"),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("different query"), "{body}");
    let mut forged = cursor.clone().into_bytes();
    forged[3] = if forged[3] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let (status, _) = f
        .contract
        .get(
            &f.server,
            "/notifications",
            &format!("/notifications?order_id=o-c&limit=2&cursor={forged}"),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn one_notification_is_served_with_its_payload_in_the_right_form() {
    let big_json = json!({"orderId": "o-big", "lines": vec![json!({"sku": "ABC-123", "qty": 1}); 30_000]});
    let random = shared::memory::noise(1_048_576);
    let mut records = vec![
        EventRecord::bytes(
            "raw",
            0,
            1,
            Some(br#"{"orderId": 123456789012345678901234567890, "amount": 10.50}"#.to_vec()),
        ),
        EventRecord::bytes("raw", 0, 2, Some(b"hello, world".to_vec())),
        EventRecord::bytes("raw", 0, 3, Some(vec![0xff, 0x00, 0x80])),
        EventRecord::bytes("raw", 0, 4, None),
        EventRecord::bytes("raw", 0, 5, Some(serde_json::to_vec(&big_json).unwrap())),
        EventRecord::bytes("raw", 0, 6, Some(random.clone())),
    ];
    records[0].headers = vec![("trace".into(), b"t-1".to_vec()), ("bin".into(), vec![0xc3, 0x28])];
    records[0].key = Some(b"o-key".to_vec());
    let f = fixture(records).await;
    let path = "/notifications/{id}";

    let (status, body) = f.contract.get(&f.server, path, "/notifications/raw:0:1").await;
    assert_eq!(status, 200);
    assert_eq!(body["payload_encoding"], "json");
    assert_eq!(body["order_id"], "123456789012345678901234567890");
    assert_eq!(body["key"], "o-key");
    assert_eq!(body["headers"][0], json!({"name": "trace", "value": "t-1"}));
    assert_eq!(body["headers"][1]["value"], json!({"base64": "wyg="}));
    // The payload keeps its exact bytes: the 30-digit number is not rounded.
    let raw = f
        .server
        .client
        .get(format!("{}/notifications/raw:0:1", f.server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.contains(r#""payload":{"orderId": 123456789012345678901234567890, "amount": 10.50}"#),
        "{raw}"
    );

    let (_, body) = f.contract.get(&f.server, path, "/notifications/raw:0:2").await;
    assert_eq!(
        (body["payload_encoding"].as_str(), body["payload"].as_str()),
        (Some("text"), Some("hello, world"))
    );
    let (_, body) = f.contract.get(&f.server, path, "/notifications/raw:0:3").await;
    assert_eq!(
        (body["payload_encoding"].as_str(), body["payload"].as_str()),
        (Some("base64"), Some("/wCA"))
    );
    let (_, body) = f.contract.get(&f.server, path, "/notifications/raw:0:4").await;
    assert_eq!(
        (body["payload_encoding"].as_str(), &body["payload"]),
        (Some("none"), &Value::Null)
    );
    assert_eq!(body["payload_format"], "tombstone");
    let (_, body) = f.contract.get(&f.server, path, "/notifications/raw:0:5").await;
    assert_eq!(
        body["payload"], big_json,
        "a compressed payload is served transparently"
    );
    let (_, body) = f.contract.get(&f.server, path, "/notifications/raw:0:6").await;
    let served = base64::engine::general_purpose::STANDARD
        .decode(body["payload"].as_str().unwrap())
        .unwrap();
    assert!(served == random, "an S3-stored payload is served byte for byte");
}

#[tokio::test]
async fn the_timeline_shows_the_flow_across_services_with_the_time_between_steps() {
    let f = fixture(order_flow()).await;
    let (status, body) = f
        .contract
        .get(
            &f.server,
            "/correlations/{correlation_id}/timeline",
            "/correlations/flow-1/timeline",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["services"],
        json!(["order-service", "payment-service", "shipping-service"])
    );
    assert_eq!(body["duration_ms"], 7000);
    let steps = body["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0]["since_previous_ms"], Value::Null);
    assert_eq!(steps[1]["since_previous_ms"], 2000);
    assert_eq!(steps[2]["since_previous_ms"], 5000);
    assert_eq!(steps[2]["since_start_ms"], 7000);
    let (status, _) = f
        .contract
        .get(
            &f.server,
            "/correlations/{correlation_id}/timeline",
            "/correlations/nobody/timeline",
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_order_id_longer_than_dynamodbs_index_key_limit_is_found() {
    let long_id = "7".repeat(3000);
    let f = fixture(vec![
        EventRecord::json("orders", 0, 1, json!({"orderId": long_id.clone(), "eventType": "Long"})),
        EventRecord::json(
            "orders",
            0,
            2,
            json!({"orderId": format!("{long_id}8"), "eventType": "Other"}),
        ),
    ])
    .await;
    let (status, body) = f
        .contract
        .get(
            &f.server,
            "/notifications",
            &format!("/notifications?order_id={long_id}"),
        )
        .await;
    assert_eq!(status, 200);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["order_id"].as_str().unwrap(), long_id);
}

#[tokio::test]
async fn every_bad_request_gets_a_problem_answer_that_says_what_is_wrong() {
    let f = fixture(order_flow()).await;
    let too_long = "x".repeat(9000);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "/notifications",
            "/notifications?order_id=o-1&colour=red".into(),
            400,
            "unknown query parameter",
        ),
        (
            "/notifications",
            "/notifications?order_id=o-1&customer_id=c-1".into(),
            400,
            "exactly one",
        ),
        ("/notifications", "/notifications".into(), 400, "exactly one"),
        (
            "/notifications",
            "/notifications?order_id=o-1&since=last-tuesday".into(),
            400,
            "RFC 3339",
        ),
        (
            "/notifications",
            "/notifications?order_id=o-1&limit=501".into(),
            400,
            "from 1 to 500",
        ),
        (
            "/notifications",
            "/notifications?order_id=o-1&limit=-1".into(),
            400,
            "from 1 to 500",
        ),
        (
            "/notifications",
            "/notifications?order_id=o-1&order=sideways".into(),
            400,
            "asc or desc",
        ),
        (
            "/notifications",
            format!("/notifications?order_id={too_long}"),
            400,
            "at most 8192",
        ),
        (
            "/notifications",
            "/notifications?order_id=o-1&cursor=not-a-cursor".into(),
            400,
            "cursor",
        ),
        (
            "/notifications/{id}",
            "/notifications/no:such:record".into(),
            404,
            "no notification",
        ),
        (
            "/notifications/{id}",
            format!("/notifications/{}", "x".repeat(1100)),
            400,
            "1 to 1024 bytes",
        ),
        (
            "/notifications/{id}",
            "/notifications/raw:0:1?extra=1".into(),
            400,
            "unknown query parameter",
        ),
        (
            "/correlations/{correlation_id}/timeline",
            "/correlations/flow-1/timeline?limit=0".into(),
            400,
            "from 1 to 1000",
        ),
    ];
    for (template, path, status, detail) in cases {
        let (got, body) = f.contract.get(&f.server, template, &path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["detail"].as_str().unwrap().contains(detail), "{path}: {body}");
    }
    let (status, content_type, body) = f.server.get("/no/such/endpoint").await;
    assert_eq!(
        (status, content_type.as_str()),
        (404, "application/problem+json"),
        "{body}"
    );
    let response = f
        .server
        .client
        .post(format!("{}/notifications", f.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let (status, _, body) = f.server.get("/notifications/%FF%FE").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn health_answers_and_the_document_lists_every_endpoint() {
    let f = fixture(Vec::new()).await;
    let (status, body) = f.contract.get(&f.server, "/health", "/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let paths: Vec<&String> = f.contract.document["paths"].as_object().unwrap().keys().collect();
    for expected in [
        "/health",
        "/openapi.json",
        "/notifications",
        "/notifications/{id}",
        "/correlations/{correlation_id}/timeline",
    ] {
        assert!(
            paths.iter().any(|p| p.as_str() == expected),
            "{expected} missing from {paths:?}"
        );
    }
    drop(f.env);
}
