//! The console in a real browser: records produced to a real Kafka-protocol broker, carried by the local event
//! source mapping into ingest and a real DynamoDB-compatible server (moto), then looked at through the query
//! API's console by headless Chromium driven by playwright-core (tests/browser/console-check.mjs).
//!
//! `scripts/browser.sh` installs Chromium and playwright-core; `make test` runs it first. Screenshots are kept
//! in target/browser/.

use std::path::PathBuf;
use std::time::Duration;

use integration_tests::kafka::{in_process, mapping_config, raw, send, wait_for_items, Mapping, TestKafka};
use integration_tests::{unique, QueryServer, TestEnv};
use notifications_cli::produce;
use serde_json::{json, Value};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The id of the only notification `list` (a list query) finds.
async fn only_id(server: &QueryServer, list: &str) -> String {
    let body = server.get_ok(&format!("/notifications?{list}")).await;
    let items = body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{list}: {body}");
    items[0]["id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_console_draws_flows_pages_histories_and_shows_every_payload_as_text_in_a_real_browser() {
    let browser_dir = workspace().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir() && std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium or playwright-core is missing: run scripts/browser.sh (make test runs it)"
    );
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let suffix = unique("console");
    let topics: Vec<String> = ["orders", "payments", "inventory", "shipping", "misc"]
        .iter()
        .map(|t| format!("{t}-{suffix}"))
        .collect();
    for topic in &topics {
        kafka.create_topic(topic, 1).await;
    }
    let misc = topics[4].clone();
    let mut messages = produce::generate(8, 31, None);
    for m in &mut messages {
        m.topic = format!("{}-{suffix}", m.topic);
    }
    let json_value = |value: Value| Some(value.to_string().into_bytes());
    let mut odd = vec![
        raw(
            &misc,
            Some(b"k-json"),
            json_value(json!({"eventType": "BigNumbers", "orderId": "ord-json-1"})).as_deref(),
            &[("trace", b"abc")],
        ),
        raw(
            &misc,
            Some(b"t"),
            Some(b"plain text & <b>more</b>"),
            &[("order-id", b"ord-text-1")],
        ),
        raw(
            &misc,
            None,
            Some(&[0xde, 0xad, 0xbe, 0xef, 0xff]),
            &[("order-id", b"ord-bin-1")],
        ),
        raw(&misc, Some(b"tomb-key"), None, &[]),
        raw(
            &misc,
            Some(b"<b>key</b>"),
            json_value(json!({
                "eventType": "<img src=x onerror=window.__pwned=2>",
                "orderId": "ord-markup-1",
                "note": "<script>window.__pwned = 1</script>",
            }))
            .as_deref(),
            &[("x-html", b"<svg onload=window.__pwned=3>")],
        ),
        raw(
            &misc,
            None,
            json_value(json!({"eventType": "SharedThing", "orderId": "shared-1", "customerId": "shared-1"})).as_deref(),
            &[],
        ),
        raw(
            &misc,
            None,
            json_value(json!({"eventType": "Started", "correlationId": "corr-warned-1", "source": "alpha"})).as_deref(),
            &[],
        ),
        raw(
            &misc,
            None,
            json_value(
                json!({"eventType": "Odd", "correlationId": "corr-warned-1", "source": "beta",
                              "occurredAt": "yesterday at noon"}),
            )
            .as_deref(),
            &[],
        ),
    ];
    // A JSON number longer than JavaScript's doubles keep, written by hand so that it stays exact.
    // And one of 500 digits, longer than any fixed look-ahead.
    let huge_number = "9".repeat(500);
    odd[0].value = Some(
        format!(
            r#"{{"eventType":"BigNumbers","orderId":"ord-json-1","amount":123456789012345678901234567890,"huge":{huge_number}}}"#
        )
        .into_bytes(),
    );
    let many = 60;
    for seq in 0..many {
        odd.push(raw(
            &misc,
            None,
            json_value(json!({"eventType": "Ping", "customerId": "cust-many", "seq": seq,
                              "occurredAt": 1_767_225_600_000i64 + seq * 1_000}))
            .as_deref(),
            &[],
        ));
    }

    let group = unique("group");
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let mapping = Mapping::start(
        mapping_config(&kafka, &group, &topic_refs),
        in_process(&env, &env.endpoint, Duration::from_secs(20)),
    );
    send(&kafka, &messages).await;
    send(&kafka, &odd).await;
    wait_for_items(&env, messages.len() + odd.len(), Duration::from_secs(120)).await;
    mapping.stop().await;

    let server = env.query_server().await;
    let order = "ord-31-000001";
    let flow = server.get_ok(&format!("/notifications?order_id={order}")).await;
    let correlation = flow["items"][0]["correlation_id"]
        .as_str()
        .expect("a correlation")
        .to_owned();
    // The tombstone has no ids: the one record of its topic that no index finds.
    let mut tombstone = None;
    for offset in 0..odd.len() {
        let (status, _, body) = server.get(&format!("/notifications/{misc}:0:{offset}")).await;
        if status == 200 && body["payload_format"] == "tombstone" {
            tombstone = Some(body["id"].as_str().unwrap_or_default().to_owned());
        }
    }
    let case = json!({
        "order": order,
        "order_types": ["OrderCreated", "PaymentAuthorized", "InventoryReserved", "OrderShipped"],
        "services": ["order-service", "payment-service", "inventory-service", "shipping-service"],
        "correlation": correlation,
        "warned_correlation": "corr-warned-1",
        "shared": "shared-1",
        "many": "cust-many",
        "many_count": many,
        "json_record": only_id(&server, "order_id=ord-json-1").await,
        "big_number": "123456789012345678901234567890",
        "huge_number": huge_number,
        "text_record": only_id(&server, "order_id=ord-text-1").await,
        "text": "plain text & <b>more</b>",
        "binary_record": only_id(&server, "order_id=ord-bin-1").await,
        "tombstone_record": tombstone.expect("the tombstone was stored"),
        "markup_record": only_id(&server, "order_id=ord-markup-1").await,
        "markup_order": "ord-markup-1",
    });

    let artifacts = workspace().join("target/browser");
    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join("console-check.mjs"))
        .env("CONSOLE_BASE", &server.base)
        .env("CONSOLE_CASE", case.to_string())
        .env("ARTIFACTS", &artifacts)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), output)
        .await
        .expect("the browser checks finish within 5 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "browser checks failed:\n{stdout}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert!(artifacts.join("timeline.png").is_file());
}

/// An API Gateway stand-in for the signing check: it verifies AWS SigV4 by the published algorithm
/// ([`integration_tests::sigv4`], independent of aws-sigv4), and lets through only calls signed with `SECRET` (or
/// carrying `Bearer good-token`); what it lets through, the real query API answers.
mod gateway {
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::middleware::Next;
    use axum::response::{IntoResponse, Response};
    use integration_tests::sigv4;

    pub use integration_tests::sigv4::encode;

    pub const ACCESS_KEY: &str = "AKIDCONSOLETEST";
    pub const SECRET: &str = "console-test-secret";
    pub const REGION: &str = "eu-west-1";

    /// Why the request is refused, or `None` when its signature (or token) is right.
    pub fn refusal(request: &Request) -> Option<String> {
        let authorization = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if let Some(token) = authorization.strip_prefix("Bearer ") {
            return (token != "good-token").then(|| "a bad bearer token".to_owned());
        }
        let key = sigv4::Key {
            access_key: ACCESS_KEY,
            secret: SECRET,
            region: REGION,
            service: "execute-api",
        };
        // The console forwards GETs, without a body.
        sigv4::refusal(request.method().as_str(), request.uri(), request.headers(), b"", &key)
    }

    pub async fn check(request: Request, next: Next) -> Response {
        match refusal(&request) {
            None => next.run(request).await,
            Some(why) => (
                StatusCode::FORBIDDEN,
                [("content-type", "application/json")],
                serde_json::json!({"message": why}).to_string(),
            )
                .into_response(),
        }
    }
}

#[tokio::test]
async fn the_console_command_serves_the_pages_and_forwards_api_calls_signed_so_that_sigv4_verifies() {
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_credential_types::Credentials;
    use integration_tests::{event_bytes, kafka_event, EventRecord};
    use notifications_cli::console_cmd::{self, Forwarder};
    use std::sync::Arc;

    let env = TestEnv::new().await;
    let records = vec![
        EventRecord::json(
            "orders",
            0,
            1,
            json!({"eventType": "OrderCreated", "orderId": "o 1/é", "customerId": "c-1"}),
        ),
        EventRecord::json(
            "orders",
            0,
            2,
            json!({"eventType": "OrderPaid", "orderId": "o 1/é", "customerId": "c-1"}),
        ),
    ];
    env.ingest(&[])
        .process(event_bytes(&kafka_event(&records)), Duration::from_secs(60))
        .await
        .expect("ingest");
    // The deployed API's stand-in: the real query API behind a SigV4 check.
    let config = shared::config::QueryConfig::from_lookup(&|name| match name {
        "TABLE_NAME" => Some(env.table.clone()),
        "CURSOR_SECRET" => Some("console-test-cursor-secret-0123456789".into()),
        _ => None,
    })
    .expect("a query config");
    let cursors = query::cursor_signer(&config, &integration_tests::sdk_config(&env.endpoint))
        .await
        .expect("a cursor signer");
    let api = query::app(
        cursors,
        Arc::new(integration_tests::dynamo_store(&env.endpoint, &env.table)),
    )
    .layer(axum::middleware::from_fn(gateway::check));
    let gateway = QueryServer::serve(api).await;

    let proxy = |secret: Option<&str>| {
        let credentials = secret.map(|secret| {
            SharedCredentialsProvider::new(Credentials::new(gateway::ACCESS_KEY, secret, None, None, "test"))
        });
        Arc::new(Forwarder::new(&gateway.base, gateway::REGION.into(), credentials).expect("a forwarder"))
    };
    let signed = QueryServer::serve(console_cmd::app(proxy(Some(gateway::SECRET)))).await;

    // The pages come from the binary, not the API.
    let (status, content_type, shell) = signed.get_text("/console/orders/o%201").await;
    assert_eq!((status, content_type.as_str()), (200, "text/html; charset=utf-8"));
    assert_eq!(shell, query::console::SHELL);
    // Every API call is signed, whatever its path and query hold.
    for path in [
        "/search?q=o%201%2F%C3%A9",
        "/notifications?order_id=o+1%2F%C3%A9&order=desc&limit=1",
        "/notifications/orders%3A0%3A1",
        "/correlations/none/timeline",
        "/correlations/a%20b%2F%C3%A9/timeline",
        "/notifications/a%20b%2F%C3%A9%3A0%3A1",
        "/openapi.json",
    ] {
        let (status, _, body) = signed.get_text(path).await;
        assert!(status == 200 || status == 404, "{path}: {status} {body}");
    }
    let (_, _, answer) = signed.get("/search?q=o%201%2F%C3%A9").await;
    assert_eq!(answer["matched"], json!(["order"]), "{answer}");
    assert_eq!(answer["order"]["items"].as_array().map(Vec::len), Some(2));
    // A load-more cursor round-trips through the proxy.
    let (_, _, page) = signed.get("/notifications?order_id=o+1%2F%C3%A9&limit=1").await;
    let cursor = page["next_cursor"].as_str().expect("a cursor").to_owned();
    let next = gateway::encode(cursor.as_bytes());
    let (status, _, page) = signed
        .get(&format!("/notifications?order_id=o+1%2F%C3%A9&limit=1&cursor={next}"))
        .await;
    assert_eq!(
        (status, page["items"][0]["event_type"].as_str()),
        (200, Some("OrderPaid")),
        "{page}"
    );

    // A page of another site, re-pointed at 127.0.0.1 (DNS rebinding), or marked cross-site, gets nothing signed.
    for (name, value) in [("host", "evil.example:8080"), ("sec-fetch-site", "cross-site")] {
        let response = signed
            .client
            .get(format!("{}/search?q=c-1", signed.base))
            .header(name, value)
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), 403, "{name}: {value}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
    let (status, _, _) = signed.get_text("/search?q=c-1").await;
    assert_eq!(status, 200, "its own tab still works");

    // A wrong secret is refused by the verifier: the check is not a formality.
    let wrong = QueryServer::serve(console_cmd::app(proxy(Some("not-the-secret")))).await;
    let (status, _, body) = wrong.get("/search?q=c-1").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("signature mismatch"),
        "{body}"
    );

    // With --auth bearer, the page's token is passed on as it is.
    let bearer = QueryServer::serve(console_cmd::app(proxy(None))).await;
    let with = |token: &str| {
        bearer
            .client
            .get(format!("{}/search?q=c-1", bearer.base))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    assert_eq!(with("good-token").await.expect("an answer").status(), 200);
    assert_eq!(with("bad-token").await.expect("an answer").status(), 403);

    // Only GET is forwarded; an API that cannot be reached is a 502 that says so.
    let post = signed
        .client
        .post(format!("{}/search?q=c-1", signed.base))
        .send()
        .await
        .expect("an answer");
    assert_eq!(post.status(), 405);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let dead = format!("http://{}", closed.local_addr().expect("an address"));
    drop(closed);
    let unreachable = QueryServer::serve(console_cmd::app(Arc::new(
        Forwarder::new(&dead, gateway::REGION.into(), None).expect("a forwarder"),
    )))
    .await;
    let (status, content_type, body) = unreachable.get("/search?q=c-1").await;
    assert_eq!((status, content_type.as_str()), (502, "application/problem+json"));
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("could not be reached"),
        "{body}"
    );
}
