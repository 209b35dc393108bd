//! Property-based fuzzing of the HTTP surface: arbitrary paths, query strings and methods through the real
//! router over the in-memory double (`InMemoryStore`, a test double) holding a few records. Every answer must be
//! below 500; the API's errors are problem documents and its 200s JSON; the console's answers are HTML under its
//! Content-Security-Policy, and a redirect names where to.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request, Uri};
use http_body_util::BodyExt;
use proptest::prelude::*;
use shared::memory::{sample_records, InMemoryStore};
use tower::ServiceExt;

fn app() -> axum::Router {
    static APP: OnceLock<axum::Router> = OnceLock::new();
    APP.get_or_init(|| {
        let store = Arc::new(InMemoryStore::new());
        for record in sample_records() {
            store.insert(record);
        }
        let cursors = query::cursor::CursorSigner::new(vec![7; 32], 3600);
        query::routes::router(query::read::ReadService::new(store.clone(), store, cursors))
    })
    .clone()
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("notifications".to_owned()),
        Just("correlations".to_owned()),
        Just("timeline".to_owned()),
        Just("health".to_owned()),
        Just("openapi.json".to_owned()),
        Just("search".to_owned()),
        Just("console".to_owned()),
        Just("orders".to_owned()),
        Just("records".to_owned()),
        Just("assets".to_owned()),
        Just("console.js".to_owned()),
        Just("t:0:3".to_owned()),
        Just("k-1".to_owned()),
        "[a-zA-Z0-9:._~-]{0,12}",
        "(%[0-9A-F]{2}){1,6}",
        "\\PC{0,8}".prop_map(|s| s.bytes().map(|b| format!("%{b:02X}")).collect()),
    ]
}

fn parameter() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("order_id"),
        Just("correlation_id"),
        Just("customer_id"),
        Just("event_type"),
        Just("since"),
        Just("until"),
        Just("limit"),
        Just("order"),
        Just("cursor"),
        Just("q"),
        Just("x"),
    ];
    let value = prop_oneof![
        Just("o-1".to_owned()),
        Just("k-0".to_owned()),
        Just("2023-11-14T22:13:25Z".to_owned()),
        Just("desc".to_owned()),
        "-?[0-9]{1,4}",
        "[A-Za-z0-9._~-]{0,20}",
        "(%[0-9A-F]{2}){0,8}",
        "[A-Za-z0-9_-]{10,60}\\.[A-Za-z0-9_-]{10,50}",
    ];
    (name, value).prop_map(|(n, v)| format!("{n}={v}"))
}

fn request() -> impl Strategy<Value = (u8, String)> {
    let path = prop::collection::vec(segment(), 0..4).prop_map(|segments| format!("/{}", segments.join("/")));
    let query = prop::collection::vec(parameter(), 0..5);
    (any::<u8>(), path, query).prop_map(|(method, path, query)| {
        let uri = if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        };
        (method, uri)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, ..ProptestConfig::default() })]

    #[test]
    fn no_request_gets_a_server_error_and_every_error_is_a_problem((method, uri) in request()) {
        let uri: Uri = uri.parse().expect("generated URIs are valid");
        let method = match method % 5 { 0 => Method::POST, 1 => Method::DELETE, _ => Method::GET };
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let response = runtime
            .block_on(app().oneshot(Request::builder().method(method).uri(uri.clone()).body(Body::empty()).expect("request")))
            .expect("infallible");
        let status = response.status();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let content_type = header("content-type").unwrap_or_default();
        let (csp, location) = (header("content-security-policy"), header("location"));
        let body = runtime.block_on(response.into_body().collect()).expect("body").to_bytes();
        prop_assert!(status.as_u16() < 500, "{status} for {uri}");
        if status.is_redirection() {
            prop_assert!(location.is_some(), "{uri}: a redirect names no Location");
            return Ok(());
        }
        if content_type.starts_with("text/") || content_type.starts_with("image/") {
            // The console's pages and files, and its pages that say what is wrong.
            let path = uri.path();
            prop_assert!(path == "/console" || path.starts_with("/console/"), "{uri}: {content_type} outside the console");
            prop_assert_eq!(csp.as_deref(), Some(query::console::CONTENT_SECURITY_POLICY));
            return Ok(());
        }
        let json: Result<serde_json::Value, _> = serde_json::from_slice(&body);
        prop_assert!(json.is_ok(), "{uri}: answer is not JSON");
        if status.is_client_error() {
            prop_assert_eq!(content_type, "application/problem+json");
            let problem = json.expect("checked");
            prop_assert_eq!(problem["status"].as_u64(), Some(u64::from(status.as_u16())));
            prop_assert!(!problem["detail"].as_str().unwrap_or_default().is_empty());
        }
    }
}
