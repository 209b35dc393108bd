//! The query API over HTTP against a real moto server, with data written through the ingest code path.
//! Every answer is also checked against the API's own OpenAPI document.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use integration_tests::fault_proxy::{self, FaultPlan};
use integration_tests::{dynamo_store, dynamodb_client, event_bytes, kafka_event, EventRecord, QueryServer, TestEnv};
use query::cursor::{query_digest, CursorSigner, Position};
use query::params::MAX_ID_BYTES;
use serde_json::{json, Value};
use shared::config::QueryConfig;

/// The cursor secret `TestEnv::query_server` configures (tests/src/lib.rs).
const CURSOR_SECRET: &str = "integration-test-cursor-secret-0123456789";

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
        let contract = Contract { document };
        contract.check("/openapi.json", status, &content_type, &contract.document);
        contract
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

    /// Checks an answer no operation of the document can describe (an unknown path, a method the API does not
    /// have): it must still be a problem document as the document's `Problem` schema defines it.
    fn check_problem(&self, what: &str, status: u16, content_type: &str, body: &Value) {
        assert_eq!(content_type, "application/problem+json", "{what}: {body}");
        let root = json!({"$ref": "#/components/schemas/Problem", "components": self.document["components"]});
        let validator = jsonschema::validator_for(&root).expect("the Problem schema compiles");
        if let Err(error) = validator.validate(body) {
            panic!("{what}: the answer is not a Problem of the document: {error}\nbody: {body}");
        }
        assert_eq!(body["status"], status, "{what}: {body}");
        assert!(
            !body["detail"].as_str().unwrap_or_default().is_empty(),
            "{what}: {body}"
        );
    }

    /// GETs and checks the answer against the document; returns the status and the body as sent.
    async fn get_text(&self, server: &QueryServer, template: &str, path: &str) -> (u16, String) {
        let (status, content_type, text) = server.get_text(path).await;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        self.check(template, status, &content_type, &body);
        if status >= 400 {
            assert_eq!(content_type, "application/problem+json", "{path}");
            assert_eq!(body["status"], status, "{body}");
            assert!(!body["detail"].as_str().unwrap_or_default().is_empty(), "{body}");
        }
        (status, text)
    }

    /// GETs and checks the answer against the document.
    async fn get(&self, server: &QueryServer, template: &str, path: &str) -> (u16, Value) {
        let (status, text) = self.get_text(server, template, path).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
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
            .process(event_bytes(&kafka_event(chunk)), Duration::from_secs(120))
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
    let random = shared::fixtures::noise(1_048_576);
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
    let (status, raw) = f.contract.get_text(&f.server, path, "/notifications/raw:0:1").await;
    assert_eq!(status, 200);
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
    assert_eq!(items[0]["event_type"], "Long");
    // Stored cut to the field limit, with its full length and SHA-256.
    let stored = shared::dynamo::table::stored_field(&long_id);
    assert_eq!(items[0]["order_id"].as_str().unwrap(), stored);
    assert!(stored.contains("[3000 bytes, sha256:"), "{stored}");
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
        ("/search", "/search".into(), 400, "q is missing"),
        ("/search", "/search?q=o-1&limit=51".into(), 400, "from 1 to 50"),
        ("/search", format!("/search?q={too_long}"), 400, "at most 8192"),
    ];
    for (template, path, status, detail) in cases {
        let (got, body) = f.contract.get(&f.server, template, &path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["detail"].as_str().unwrap().contains(detail), "{path}: {body}");
    }
    // An id that is not UTF-8 once percent-decoded: refused by the path extractor, as the document says.
    let (status, body) = f
        .contract
        .get(&f.server, "/notifications/{id}", "/notifications/%FF%FE")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("path is not valid"), "{body}");
    // No operation of the document can describe a path it does not have, nor a method the API does not answer
    // (declaring a POST operation only to document its 405 would announce an endpoint that does not exist), so
    // these answers are checked against the document's Problem schema.
    let (status, content_type, body) = f.server.get("/no/such/endpoint").await;
    assert_eq!(status, 404, "{body}");
    f.contract
        .check_problem("GET /no/such/endpoint", status, &content_type, &body);
    let response = f
        .server
        .client
        .post(format!("{}/notifications", f.server.base))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    assert_eq!(status, 405, "{body}");
    f.contract
        .check_problem("POST /notifications", status, &content_type, &body);
}

/// A search finds each kind a value is, over the real store, and its answers are what the document says.
#[tokio::test]
async fn a_search_answers_every_kind_a_value_is_with_a_first_page_that_goes_on() {
    let mut records = order_flow();
    // A value that is an order id and a customer id at once.
    records.push(EventRecord::json(
        "orders",
        2,
        1,
        json!({"eventType": "Odd", "orderId": "both-1", "customerId": "both-1", "occurredAt": at(30)}),
    ));
    let f = fixture(records).await;
    let search = |q: &str| format!("/search?q={q}&limit=1");
    let (status, body) = f.contract.get(&f.server, "/search", &search("both-1")).await;
    assert_eq!(
        (status, body["matched"].clone()),
        (200, json!(["order", "customer"])),
        "{body}"
    );
    let (_, body) = f.contract.get(&f.server, "/search", &search("c-1")).await;
    assert_eq!(body["matched"], json!(["customer"]), "{body}");
    assert_eq!(body["customer"]["items"].as_array().map(Vec::len), Some(1));
    // The first page goes on through the list endpoint with its cursor.
    let cursor = body["customer"]["next_cursor"].as_str().expect("a cursor");
    let (status, page) = f
        .contract
        .get(
            &f.server,
            "/notifications",
            &format!("/notifications?customer_id=c-1&cursor={cursor}"),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(!page["items"].as_array().unwrap().is_empty());
    let (_, body) = f.contract.get(&f.server, "/search", &search("flow-1")).await;
    assert_eq!(body["matched"], json!(["correlation"]), "{body}");
    let (_, body) = f.contract.get(&f.server, "/search", &search("orders%3A0%3A1")).await;
    assert_eq!(body["matched"], json!(["record"]), "{body}");
    assert_eq!(body["record"]["order_id"], "o-1");
    let (_, body) = f.contract.get(&f.server, "/search", &search("nothing-at-all")).await;
    assert_eq!(body["matched"], json!([]), "{body}");
}

/// A request line longer than the server reads is a 414 problem document, not hyper's bare 414. (No HTTP
/// client library sends such a line: the request is written by hand.)
#[tokio::test]
async fn a_query_string_of_100000_bytes_is_a_414_problem_document() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = fixture(Vec::new()).await;
    let address = f.server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let request = format!(
        "GET /notifications?order_id={} HTTP/1.1\r\nhost: {address}\r\n\r\n",
        "x".repeat(100_000)
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("an answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default();
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    assert_eq!(status, 414, "{head}");
    f.contract
        .check_problem("a 100,000-byte query string", status, content_type, &body);
    assert!(
        body["detail"].as_str().unwrap_or_default().contains("65534 bytes"),
        "{body}"
    );
    // The server goes on answering.
    let (status, _) = f.contract.get(&f.server, "/health", "/health").await;
    assert_eq!(status, 200);
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
        "/search",
    ] {
        assert!(
            paths.iter().any(|p| p.as_str() == expected),
            "{expected} missing from {paths:?}"
        );
    }
    drop(f.env);
}

/// The body of a cursor (signed, not encrypted): the query digest and position it carries.
fn cursor_claims(cursor: &str) -> Value {
    let (body, _signature) = cursor.split_once('.').expect("a cursor is body.signature");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).expect("base64url")).expect("JSON claims")
}

#[tokio::test]
async fn an_expired_cursor_is_refused_with_a_problem_that_says_it_expired() {
    let records: Vec<EventRecord> = (0..5)
        .map(|i| EventRecord::json("orders", 0, i, json!({"orderId": "o-stale"})))
        .collect();
    let f = fixture(records).await;
    let query = "order_id=o-stale&limit=2";
    let (status, body) = f
        .contract
        .get(&f.server, "/notifications", &format!("/notifications?{query}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let issued = body["next_cursor"].as_str().unwrap().to_owned();
    let (status, second_page) = f
        .contract
        .get(
            &f.server,
            "/notifications",
            &format!("/notifications?{query}&cursor={issued}"),
        )
        .await;
    assert_eq!(status, 200, "{second_page}");

    // The same query digest the API computes, and the position of the cursor the server issued.
    let identity = query::params::list(Some(query)).unwrap().identity();
    let digest = query_digest(&identity.iter().map(String::as_str).collect::<Vec<_>>());
    let claims = cursor_claims(&issued);
    assert_eq!(
        claims["q"],
        digest.as_str(),
        "the digest is computed as the API computes it"
    );
    let position: Position = serde_json::from_value(claims["p"].clone()).unwrap();
    let now = chrono::Utc::now().timestamp();

    // Control: signed with the server's secret for this query and still valid, it is taken and continues the list,
    // so that the refusal below is for the expiry alone.
    let fresh = CursorSigner::new(CURSOR_SECRET.into(), 3600).issue(&digest, position.clone(), now);
    let (status, body) = f
        .contract
        .get(
            &f.server,
            "/notifications",
            &format!("/notifications?{query}&cursor={fresh}"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"], second_page["items"]);

    // Expired an hour ago (a margin no clock step between here and the server can close).
    let stale = CursorSigner::new(CURSOR_SECRET.into(), -3600).issue(&digest, position, now);
    assert_eq!(cursor_claims(&stale)["e"], now - 3600);
    let (status, body) = f
        .contract
        .get(
            &f.server,
            "/notifications",
            &format!("/notifications?{query}&cursor={stale}"),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("expired"), "{body}");
    assert!(detail.contains("start again without a cursor"), "{body}");
}

#[tokio::test]
async fn every_id_parameter_refuses_an_id_longer_than_the_api_accepts() {
    let f = fixture(order_flow()).await;
    let over = "x".repeat(MAX_ID_BYTES + 1);
    let at_max = "x".repeat(MAX_ID_BYTES);
    // 4097 characters, 8194 bytes: the limit is in bytes.
    let wide = "%C3%A9".repeat(MAX_ID_BYTES / 2 + 1);
    let list = "/notifications";
    let timeline = "/correlations/{correlation_id}/timeline";
    for name in ["order_id", "customer_id", "correlation_id"] {
        for (id, bytes) in [(&over, MAX_ID_BYTES + 1), (&wide, MAX_ID_BYTES + 2)] {
            let (status, body) = f
                .contract
                .get(&f.server, list, &format!("/notifications?{name}={id}"))
                .await;
            assert_eq!(status, 400, "{name}: {body}");
            let expected = format!("{name} is {bytes} bytes long; at most {MAX_ID_BYTES} are accepted");
            assert!(body["detail"].as_str().unwrap().contains(&expected), "{name}: {body}");
        }
        let (status, body) = f
            .contract
            .get(&f.server, list, &format!("/notifications?{name}={at_max}"))
            .await;
        assert_eq!(status, 200, "{name} of {MAX_ID_BYTES} bytes: {body}");
        assert_eq!(body["items"], json!([]), "{name}");
    }
    for (id, bytes) in [(&over, MAX_ID_BYTES + 1), (&wide, MAX_ID_BYTES + 2)] {
        let (status, body) = f
            .contract
            .get(&f.server, timeline, &format!("/correlations/{id}/timeline"))
            .await;
        assert_eq!(status, 400, "{body}");
        let expected = format!("correlation_id is {bytes} bytes long; at most {MAX_ID_BYTES} are accepted");
        assert!(body["detail"].as_str().unwrap().contains(&expected), "{body}");
    }
    let (status, body) = f
        .contract
        .get(&f.server, timeline, &format!("/correlations/{at_max}/timeline"))
        .await;
    assert_eq!(status, 404, "{body}");
    let one = "/notifications/{id}";
    let (status, body) = f
        .contract
        .get(&f.server, one, &format!("/notifications/{}", "x".repeat(1025)))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("1 to 1024 bytes, not 1025"),
        "{body}"
    );
    let (status, body) = f
        .contract
        .get(&f.server, one, &format!("/notifications/{}", "x".repeat(1024)))
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn a_correlation_id_longer_than_dynamodbs_index_key_limit_is_found_by_list_and_timeline() {
    let long_id = format!("flow-{}", "c".repeat(2995));
    assert_eq!(long_id.len(), 3000);
    // The index holds the digest of an id this long; an id that is literally that digest shares its partition.
    let digest_key = shared::dynamo::table::index_key(&long_id);
    assert!(digest_key.starts_with("sha256:"), "{digest_key}");
    let f = fixture(vec![
        EventRecord::json(
            "orders",
            0,
            1,
            json!({"eventType": "OrderCreated", "correlationId": long_id.clone(), "source": "order-service", "occurredAt": at(0)}),
        ),
        EventRecord::json(
            "payments",
            0,
            1,
            json!({"eventType": "PaymentCaptured", "correlationId": long_id.clone(), "source": "payment-service", "occurredAt": at(3)}),
        ),
        EventRecord::json(
            "orders",
            0,
            2,
            json!({"eventType": "Other", "correlationId": format!("{long_id}d"), "occurredAt": at(1)}),
        ),
        EventRecord::json(
            "orders",
            0,
            3,
            json!({"eventType": "Impostor", "correlationId": digest_key.clone(), "occurredAt": at(2)}),
        ),
    ])
    .await;
    let (status, body) = f
        .contract
        .get(
            &f.server,
            "/notifications",
            &format!("/notifications?correlation_id={long_id}"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["orders:0:1", "payments:0:1"]);
    let stored = shared::dynamo::table::stored_field(&long_id);
    assert!(items.iter().all(|i| i["correlation_id"] == stored.as_ref()));

    let (status, body) = f
        .contract
        .get(
            &f.server,
            "/correlations/{correlation_id}/timeline",
            &format!("/correlations/{long_id}/timeline"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["correlation_id"], long_id.as_str());
    assert_eq!(body["services"], json!(["order-service", "payment-service"]));
    assert_eq!(body["duration_ms"], 3000);
    let steps: Vec<&str> = body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["OrderCreated", "PaymentCaptured"]);

    // The id that is literally the digest is found by itself, and only it.
    let (status, body) = f
        .contract
        .get(
            &f.server,
            "/notifications",
            &format!("/notifications?correlation_id={digest_key}"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let types: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Impostor"]);
}

/// Requests per DynamoDB operation between two snapshots of the proxy's counts.
fn operations_between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(operation, n)| (operation.clone(), n - before.get(operation).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test]
async fn no_endpoint_scans_the_table() {
    let env = TestEnv::new().await;
    let mut records = order_flow();
    records.extend((0..12).map(|i| {
        EventRecord::json(
            "pages",
            0,
            i,
            json!({"orderId": "o-page", "customerId": "c-page", "correlationId": "flow-page", "source": "page-service",
                   "eventType": if i % 2 == 0 { "Special" } else { "Plain" }, "occurredAt": at(100 + i)}),
        )
    }));
    // Written straight to the server: the proxy sees only what the query API asks.
    env.ingest(&[])
        .process(event_bytes(&kafka_event(&records)), Duration::from_secs(120))
        .await
        .expect("ingest");
    let proxy = fault_proxy::start(&env.endpoint, FaultPlan::NONE).await;
    let config = QueryConfig::from_lookup(&|name| match name {
        "TABLE_NAME" => Some(env.table.clone()),
        "CURSOR_SECRET" => Some(CURSOR_SECRET.into()),
        _ => None,
    })
    .expect("valid query config");
    let cursors = query::cursor_signer(&config, &integration_tests::sdk_config(&proxy.endpoint))
        .await
        .expect("a cursor signer");
    let app = query::app(cursors, std::sync::Arc::new(dynamo_store(&proxy.endpoint, &env.table)));
    let server = QueryServer::serve(app).await;
    let contract = Contract::fetch(&server).await;
    assert_eq!(
        proxy.counts.operations(),
        BTreeMap::new(),
        "the document reads no table"
    );

    // One request: its status, body and the DynamoDB operations it made.
    let call = |template: &'static str, path: String| {
        let (proxy, contract, server) = (&proxy, &contract, &server);
        async move {
            let before = proxy.counts.operations();
            let (status, body) = contract.get(server, template, &path).await;
            let made = operations_between(&before, &proxy.counts.operations());
            (status, body, made)
        }
    };
    let only = |operation: &str, made: &BTreeMap<String, u64>, what: &str| {
        assert!(
            made.get(operation).copied().unwrap_or(0) >= 1 && made.keys().all(|o| o == operation),
            "{what} should make {operation} requests only, made {made:?}"
        );
    };

    for path in ["/health", "/openapi.json"] {
        let (status, _, made) = call(path, path.to_owned()).await;
        assert_eq!(status, 200);
        assert_eq!(made, BTreeMap::new(), "{path} reads no table");
    }

    // Lists of every kind, plain and filtered, page after page.
    let window = format!("&since={}&until={}", at(102), at(109)).replace('+', "%2B");
    for lookup in ["order_id=o-page", "customer_id=c-page", "correlation_id=flow-page"] {
        for (filter, expected) in [
            (String::new(), 12),
            (format!("&event_type=Special&order=desc{window}"), 4),
        ] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            for page in 0.. {
                assert!(page < 20, "pagination does not end");
                let mut path = format!("/notifications?{lookup}&limit=5{filter}");
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let (status, body, made) = call("/notifications", path.clone()).await;
                assert_eq!(status, 200, "{path}: {body}");
                only("Query", &made, &path);
                seen.extend(body["items"].as_array().unwrap().iter().map(|i| i["id"].clone()));
                match body["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            assert_eq!(seen.len(), expected, "{lookup}{filter}: {seen:?}");
        }
    }

    // One notification, found and not found.
    for (id, expected) in [("orders:0:1", 200), ("pages:0:3", 200), ("no:such:record", 404)] {
        let (status, body, made) = call("/notifications/{id}", format!("/notifications/{id}")).await;
        assert_eq!(status, expected, "{id}: {body}");
        assert_eq!(made, BTreeMap::from([("GetItem".to_owned(), 1)]), "{id}");
    }

    // Timelines, whole, in parts and of nobody.
    let timeline = "/correlations/{correlation_id}/timeline";
    let (status, body, made) = call(timeline, "/correlations/flow-1/timeline".into()).await;
    assert_eq!(
        (status, body["steps"].as_array().map(Vec::len)),
        (200, Some(3)),
        "{body}"
    );
    only("Query", &made, "a timeline");
    let mut steps = 0;
    let mut cursor: Option<String> = None;
    for part in 0.. {
        assert!(part < 20, "the timeline does not end");
        let mut path = "/correlations/flow-page/timeline?limit=5".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body, made) = call(timeline, path.clone()).await;
        if status == 404 && cursor.is_some() {
            // The part after an exactly full one may be empty.
            only("Query", &made, &path);
            break;
        }
        assert_eq!(status, 200, "{path}: {body}");
        only("Query", &made, &path);
        steps += body["steps"].as_array().unwrap().len();
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(steps, 12);
    let (status, _, made) = call(timeline, "/correlations/nobody/timeline".into()).await;
    assert_eq!(status, 404);
    only("Query", &made, "the timeline of nobody");

    // A search is index queries (three in parallel), and a GetItem only for a value shaped like a record id.
    let (status, body, made) = call("/search", "/search?q=o-page".into()).await;
    assert_eq!((status, body["matched"].clone()), (200, json!(["order"])), "{body}");
    only("Query", &made, "a search for an order id");
    let (status, body, made) = call("/search", "/search?q=pages%3A0%3A3".into()).await;
    assert_eq!((status, body["matched"].clone()), (200, json!(["record"])), "{body}");
    assert_eq!(made.get("GetItem"), Some(&1), "{made:?}");
    assert!(made.keys().all(|o| o == "Query" || o == "GetItem"), "{made:?}");
    // The console's pages are the binary's own.
    for path in ["/console/", "/console/orders/o-page", "/console/assets/console.js"] {
        let before = proxy.counts.operations();
        let (status, _, _) = server.get_text(path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            operations_between(&before, &proxy.counts.operations()),
            BTreeMap::new(),
            "{path}"
        );
    }

    let operations = proxy.counts.operations();
    assert_eq!(proxy.counts.operation("Scan"), 0, "{operations:?}");
    assert!(proxy.counts.operation("Query") > 0, "{operations:?}");
    assert!(proxy.counts.operation("GetItem") > 0, "{operations:?}");
    assert!(
        operations.keys().all(|o| o == "Query" || o == "GetItem"),
        "{operations:?}"
    );

    // Control: a scan through the same proxy is seen, so the zero above means none was made.
    let _ = dynamodb_client(&proxy.endpoint)
        .scan()
        .table_name(&env.table)
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await;
    assert_eq!(proxy.counts.operation("Scan"), 1);
}

#[tokio::test]
async fn payloads_too_large_for_an_answer_are_linked_with_their_size_and_digest() {
    // 3.5 MB of noise goes to S3 and is linked there; 1.5 MB of control characters compresses into its item,
    // but written as JSON (six bytes a character) it outgrows any answer, so it is served on its own.
    let noise = shared::fixtures::noise(3_500_000);
    let controls = vec![0x01u8; 1_500_000];
    let f = fixture(vec![
        EventRecord::bytes("raw", 0, 1, Some(noise.clone())),
        EventRecord::bytes("raw", 0, 2, Some(controls.clone())),
    ])
    .await;
    let path = "/notifications/{id}";
    let download = |url: String| async move {
        let response = reqwest::get(&url).await.expect("the link answers");
        assert_eq!(response.status(), 200, "{url}");
        response.bytes().await.expect("bytes").to_vec()
    };

    let (status, body) = f.contract.get(&f.server, path, "/notifications/raw:0:1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payload_encoding"], "url");
    assert_eq!(body["payload_size"], 3_500_000);
    assert_eq!(body["payload_sha256"], shared::model::sha256_hex(&noise));
    let url = body["payload"].as_str().unwrap().to_owned();
    assert!(
        url.contains("X-Amz-Signature=") && url.contains(&f.env.bucket),
        "a presigned S3 URL: {url}"
    );
    assert!(download(url).await == noise, "the link serves the exact bytes");
    let (status, _, _) = f.server.get_text("/notifications/raw:0:1/payload").await;
    assert_eq!(status, 307, "the payload route redirects to the same kind of link");

    let (status, text) = f.contract.get_text(&f.server, path, "/notifications/raw:0:2").await;
    assert_eq!(status, 200);
    assert!(
        text.len() < 10_000,
        "the answer leaves the payload out: {} bytes",
        text.len()
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (body["payload_encoding"].as_str(), body["payload"].as_str()),
        (Some("url"), Some("/notifications/raw:0:2/payload"))
    );
    let response = f
        .server
        .client
        .get(format!("{}/notifications/raw:0:2/payload", f.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/octet-stream");
    assert!(response.headers().contains_key("repr-digest"));
    assert!(response.bytes().await.unwrap().to_vec() == controls);
}

#[tokio::test]
async fn a_record_past_its_retention_is_gone_and_a_deleted_payload_object_is_a_410() {
    let env = TestEnv::new().await;
    let ingest = env.ingest(&[("RETENTION_DAYS", "1")]);
    let records = vec![
        EventRecord::json("orders", 0, 1, json!({"orderId": "o-exp", "occurredAt": at(0)})),
        EventRecord::json("orders", 0, 2, json!({"orderId": "o-exp", "occurredAt": at(1)})),
        EventRecord::bytes("raw", 0, 3, Some(shared::fixtures::noise(1_000_000))),
    ];
    ingest
        .process(event_bytes(&kafka_event(&records)), Duration::from_secs(60))
        .await
        .expect("ingest");
    // Retention ran out for the first record: DynamoDB's TTL has not deleted it yet.
    env.dynamodb
        .update_item()
        .table_name(&env.table)
        .key("id", aws_sdk_dynamodb::types::AttributeValue::S("orders:0:1".into()))
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(
            ":past",
            aws_sdk_dynamodb::types::AttributeValue::N((chrono::Utc::now().timestamp() - 10).to_string()),
        )
        .send()
        .await
        .expect("expire one item");
    // And the payload bucket's lifecycle (or someone) deleted the third one's object.
    let objects = env.s3.list_objects_v2().bucket(&env.bucket).send().await.unwrap();
    for object in objects.contents() {
        env.s3
            .delete_object()
            .bucket(&env.bucket)
            .key(object.key().unwrap())
            .send()
            .await
            .unwrap();
    }
    let server = env.query_server().await;
    let contract = Contract::fetch(&server).await;

    let (status, _) = contract
        .get(&server, "/notifications/{id}", "/notifications/orders:0:1")
        .await;
    assert_eq!(status, 404, "an expired record is gone");
    let (status, body) = contract
        .get(&server, "/notifications", "/notifications?order_id=o-exp")
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["orders:0:2"], "lists leave it out");
    let (status, body) = contract
        .get(&server, "/notifications/{id}", "/notifications/raw:0:3")
        .await;
    assert_eq!(status, 410, "a missing object is a problem, never a 500: {body}");
}

#[tokio::test]
async fn the_cursor_key_is_read_from_secrets_manager_and_a_rotation_needs_no_redeploy() {
    let f = fixture(order_flow()).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&integration_tests::sdk_config(&f.env.endpoint));
    let secret = secrets
        .create_secret()
        .name(integration_tests::unique("cursor"))
        .secret_string("first-version-of-the-cursor-key-0123456789")
        .send()
        .await
        .expect("create the secret");
    let arn = secret.arn().unwrap().to_owned();
    let config = |arn: &str| {
        let (table, arn) = (f.env.table.clone(), arn.to_owned());
        QueryConfig::from_lookup(&move |name| match name {
            "TABLE_NAME" => Some(table.clone()),
            "CURSOR_SECRET_ARN" => Some(arn.clone()),
            "AWS_LAMBDA_FUNCTION_NAME" => Some("query".into()),
            _ => None,
        })
        .expect("valid query config")
    };
    let aws = integration_tests::sdk_config(&f.env.endpoint);
    let serve = |cursors| {
        QueryServer::serve(query::app(
            cursors,
            std::sync::Arc::new(dynamo_store(&f.env.endpoint, &f.env.table)),
        ))
    };
    let old = serve(query::cursor_signer(&config(&arn), &aws).await.expect("read at start")).await;
    let first_page = "/notifications?order_id=o-1&limit=1";
    let (_, _, body) = old.get(first_page).await;
    let before = body["next_cursor"].as_str().expect("a cursor").to_owned();

    secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("second-version-of-the-cursor-key-0123456789")
        .send()
        .await
        .expect("rotate");
    let new = serve(query::cursor_signer(&config(&arn), &aws).await.expect("read at start")).await;
    let (status, _, body) = new.get(&format!("{first_page}&cursor={before}")).await;
    assert_eq!(status, 200, "a cursor signed before the rotation still works: {body}");
    let (_, _, body) = new.get(first_page).await;
    let after = body["next_cursor"].as_str().expect("a cursor").to_owned();
    let (status, _, body) = old.get(&format!("{first_page}&cursor={after}")).await;
    assert_eq!(
        status, 200,
        "an instance started before the rotation learns the new key: {body}"
    );

    let missing = arn.replace("cursor", "no-such-secret");
    let err = query::cursor_signer(&config(&missing), &aws).await.unwrap_err();
    assert!(
        err.starts_with("CURSOR_SECRET_ARN"),
        "a secret that cannot be read stops the start: {err}"
    );
}
