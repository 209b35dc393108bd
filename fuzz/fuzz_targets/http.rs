//! Feeds arbitrary bytes to the query API as HTTP requests: the real router (`query::routes::router`) over the
//! in-memory store double holding a few records, on one current-thread runtime. The same contract as
//! `functions/query/tests/http_fuzz.rs`, from bytes instead of proptest strategies: no request may make the
//! router panic or answer 5xx, every error is an `application/problem+json` document whose `status` is the HTTP
//! status, and every 2xx answer is JSON. A page's `next_cursor` is followed (when the input asks for it), and a
//! cursor the API issued must be accepted and must not repeat what the previous page held.
//!
//! # Input format
//!
//! ```text
//! byte 0   method: GET (most values), HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE, CONNECT, `get`, `X-FUZZ`
//! byte 1   bits 0-2: route: 0 /health, 1 /openapi.json, 2 /notifications, 3 /notifications/{id},
//!                           4 /correlations/{id}/timeline, 5-7 a raw request target
//!          bit 3: follow `next_cursor` (up to 4 more pages); bit 4: alter the first followed cursor;
//!          bits 5-7: where to alter it
//! then     lines separated by `\n`:
//!          line 1: the id (routes 3 and 4), a suffix after the path (routes 0-2) or the raw target (5-7)
//!          then query parameters, one `name=value` per line, up to an empty line
//!          then headers, one `name: value` per line, up to an empty line
//!          the rest is the body
//! ```
//!
//! Ids, suffixes and parameters are percent-encoded where a URI needs it; `%` itself is kept, so `%FF` or `%zz`
//! go through as they are. A value `@@N:text` is `text` repeated N times (at most 40,000 bytes), to reach size
//! limits with short inputs. A raw target is used as it is, or with the bytes a URI cannot hold
//! percent-encoded.

#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use shared::memory::{sample_records, InMemoryStore};
use shared::model::KafkaMessage;
use shared::normalize::{normalize, Context, TopicServiceMap};
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// Cursors live longer than any fuzzing campaign, so cursors kept in seeds stay valid.
const CURSOR_TTL_SECONDS: i64 = 100 * 365 * 24 * 3600;
/// The longest value `@@N:` expands to (`http::Uri` takes at most 65,534 bytes).
const MAX_EXPANDED: usize = 40_000;
const PROBLEM_JSON: &str = "application/problem+json";

struct Harness {
    runtime: Runtime,
    app: axum::Router,
}

fn message(topic: &str, offset: i64, value: Option<Vec<u8>>, headers: Vec<(&str, &[u8])>) -> KafkaMessage {
    KafkaMessage {
        topic: topic.into(),
        partition: 0,
        offset: Some(offset),
        timestamp: Some(1_700_000_000_000 + offset * 1000),
        timestamp_type: Some("CREATE_TIME".into()),
        key: Some(format!("key-{offset}").into_bytes()),
        value,
        headers: headers.into_iter().map(|(n, v)| (n.to_owned(), v.to_vec())).collect(),
        warnings: Vec::new(),
        fingerprint: String::new(),
    }
}

/// The records: the 30 of http_fuzz.rs (`shared::memory::sample_records`: `t:0:0` to `t:0:29`, order ids `o-0`
/// to `o-3`, correlation ids `k-0` and `k-1`, customer `c-1`), and a few in topic `orders` of every kind of
/// payload: `orders:0:0` large, `orders:0:1` large and incompressible, `orders:0:2` not UTF-8, `orders:0:3` a
/// tombstone, `orders:0:4` ids with spaces, slashes and `%`, `orders:0:5` a large header.
fn seed(store: &InMemoryStore) {
    let services = TopicServiceMap::parse("t=order-service,orders=payment-service").unwrap_or_default();
    let context = Context {
        received_at: chrono::DateTime::from_timestamp(1_700_000_100, 0).unwrap_or_default(),
        topic_services: &services,
    };
    for record in sample_records() {
        store.insert(record);
    }
    let mut messages: Vec<KafkaMessage> = Vec::new();
    let big = format!(
        r#"{{"eventType":"Big","orderId":"o-big","correlationId":"k-1","filler":"{}"}}"#,
        "x".repeat(5000)
    );
    // Letters from a linear congruential generator: they compress too little to fit an item.
    let mut state = 1u32;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                b'a' + (state >> 16) as u8 % 26
            })
            .collect()
    };
    let huge = format!(
        r#"{{"eventType":"Huge","orderId":"o-big","correlationId":"k-1","noise":"{}"}}"#,
        String::from_utf8_lossy(&noise(6000))
    );
    let big_header = noise(6000);
    messages.extend([
        message("orders", 0, Some(big.into_bytes()), vec![("correlation_id", b"k-1")]),
        message("orders", 1, Some(huge.into_bytes()), vec![("ce_type", b"Huge")]),
        message("orders", 2, Some(vec![0xff, 0x00, 0xfe, b'{']), vec![("correlation_id", b"k-bin")]),
        message("orders", 3, None, vec![("correlation_id", b"k-bin"), ("x", &[0xc3, 0x28])]),
        message(
            "orders",
            4,
            Some(br#"{"eventType":"OrderCreated","orderId":"o 1/%","customerId":"c-\u00e9","correlationId":"k/\u00e9 1"}"#.to_vec()),
            Vec::new(),
        ),
        message("orders", 5, Some(b"{}".to_vec()), vec![("correlation_id", b"k-bin"), ("trace", &big_header)]),
    ]);
    for m in &messages {
        store.insert(normalize(m, &context));
    }
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = Arc::new(InMemoryStore::new());
        seed(&store);
        let cursors = query::cursor::CursorSigner::new(vec![7; 32], CURSOR_TTL_SECONDS);
        let app = query::routes::router(query::read::ReadService::new(store.clone(), store, cursors));
        Harness { runtime, app }
    })
}

const METHODS: [&str; 16] = [
    "GET", "GET", "GET", "GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
    "get", "X-FUZZ",
];

/// `text` with what a URI cannot hold (and what would end the component) percent-encoded; `%` is kept.
fn encode(text: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text {
        let keep =
            b.is_ascii_alphanumeric() || b"-._~%:@!$'()*,;+".contains(&b) || (keep_slash && matches!(b, b'/' | b'?'));
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Expands `@@N:text` into `text` repeated N times (capped), anything else as it is.
fn expand(value: &[u8]) -> Vec<u8> {
    let Some(rest) = value.strip_prefix(b"@@") else {
        return value.to_vec();
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (count, rest) = rest.split_at(digits);
    let (Some(b':'), Ok(count)) = (
        rest.first(),
        std::str::from_utf8(count).unwrap_or_default().parse::<usize>(),
    ) else {
        return value.to_vec();
    };
    let unit = &rest[1..];
    if unit.is_empty() {
        return Vec::new();
    }
    let count = count.min(MAX_EXPANDED / unit.len());
    unit.repeat(count)
}

/// A parameter line as `name=value`, both encoded.
fn parameter(line: &[u8]) -> String {
    match line.iter().position(|&b| b == b'=') {
        Some(at) => format!(
            "{}={}",
            encode(&line[..at], false),
            encode(&expand(&line[at + 1..]), false)
        ),
        None => encode(line, false),
    }
}

/// A raw request target, as it is or with the bytes a URI cannot hold percent-encoded.
fn raw_target(bytes: &[u8]) -> Option<Uri> {
    if let Ok(uri) = Uri::try_from(bytes) {
        return Some(uri);
    }
    let mut fixed = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && !matches!(b, b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}') {
            fixed.push(char::from(b));
        } else {
            fixed.push_str(&format!("%{b:02X}"));
        }
    }
    Uri::try_from(fixed).ok()
}

struct Input<'a> {
    method: Method,
    route: u8,
    follow: bool,
    alter: Option<u8>,
    first: &'a [u8],
    parameters: Vec<&'a [u8]>,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: &'a [u8],
}

fn decode(data: &[u8]) -> Option<Input<'_>> {
    let (&method, rest) = data.split_first()?;
    let (&flags, rest) = rest.split_first()?;
    let method = Method::from_bytes(METHODS[usize::from(method) % METHODS.len()].as_bytes()).ok()?;
    let mut lines = rest.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let mut consumed = first.len() + 1;
    let mut parameters = Vec::new();
    for line in lines.by_ref() {
        consumed += line.len() + 1;
        if line.is_empty() {
            break;
        }
        parameters.push(line);
    }
    let mut headers = Vec::new();
    for line in lines {
        consumed += line.len() + 1;
        if line.is_empty() {
            break;
        }
        let at = line.iter().position(|&b| b == b':').unwrap_or(line.len());
        let value = line.get(at + 1..).unwrap_or_default();
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(&line[..at]), HeaderValue::from_bytes(value)) {
            headers.push((name, value));
        }
    }
    Some(Input {
        method,
        route: flags & 7,
        follow: flags & 8 != 0,
        alter: (flags & 16 != 0).then_some(flags >> 5),
        first,
        parameters,
        headers,
        body: rest.get(consumed.min(rest.len())..).unwrap_or_default(),
    })
}

/// The path and query of a built request, or a raw target.
fn target(input: &Input<'_>, parameters: &[String]) -> Option<Uri> {
    let path = match input.route {
        0 => format!("/health{}", encode(input.first, true)),
        1 => format!("/openapi.json{}", encode(input.first, true)),
        2 => format!("/notifications{}", encode(input.first, true)),
        3 => format!("/notifications/{}", encode(&expand(input.first), true)),
        4 => format!("/correlations/{}/timeline", encode(&expand(input.first), true)),
        _ => {
            let raw = raw_target(input.first)?;
            if parameters.is_empty() {
                return Some(raw);
            }
            let joiner = if raw.query().is_some() { '&' } else { '?' };
            return Uri::try_from(format!("{raw}{joiner}{}", parameters.join("&"))).ok();
        }
    };
    let uri = if parameters.is_empty() {
        path
    } else {
        format!("{path}?{}", parameters.join("&"))
    };
    Uri::try_from(uri).ok()
}

/// Whether to print every request and answer (`HTTP_FUZZ_TRACE=1`, to see what a seed or a crash does).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("HTTP_FUZZ_TRACE").is_some())
}

/// Sends one request and checks the contract; returns the JSON of a 2xx answer.
fn send(input: &Input<'_>, uri: Uri) -> (u16, Option<serde_json::Value>) {
    let harness = harness();
    let mut request = Request::builder().method(input.method.clone()).uri(uri.clone());
    for (name, value) in &input.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Body::from(input.body.to_vec()))
        .expect("a request from valid parts");
    let (status, content_type, csp, body) = harness.runtime.block_on(async {
        let response = harness
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &axum::http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let content_type = header(CONTENT_TYPE);
        let csp = header(axum::http::header::CONTENT_SECURITY_POLICY);
        let body = response.into_body().collect().await.expect("a body").to_bytes();
        (status, content_type, csp, body)
    });
    if trace() {
        eprintln!(
            "{} {uri} -> {status} {content_type:?} {}",
            input.method,
            String::from_utf8_lossy(&body)
        );
    }
    let head = input.method == Method::HEAD;
    let what = format!("{} {uri}", input.method);
    assert!(
        !status.is_server_error(),
        "{status} for {what}: {}",
        String::from_utf8_lossy(&body)
    );
    if status.is_redirection() {
        // `/console` to `/console/`, and a payload to its presigned URL.
        return (status.as_u16(), None);
    }
    if (uri.path() == "/console" || uri.path().starts_with("/console/")) && content_type.as_deref().is_some_and(|t| !t.starts_with("application/")) {
        // The console's pages, files and error pages: HTML (or its script, style and icon), under its policy.
        assert_eq!(
            csp.as_deref(),
            Some(query::console::CONTENT_SECURITY_POLICY),
            "{status} for {what} has no Content-Security-Policy"
        );
        return (status.as_u16(), None);
    }
    if status.is_success() && uri.path().ends_with("/payload") {
        assert_eq!(content_type.as_deref(), Some("application/octet-stream"), "{status} for {what}");
        return (status.as_u16(), None);
    }
    if status.is_success() {
        assert!(
            content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("application/json")),
            "{status} for {what} has content type {content_type:?}"
        );
        if head {
            return (status.as_u16(), None);
        }
        let json: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{status} for {what}: the answer is not JSON ({e})"));
        return (status.as_u16(), Some(json));
    }
    assert_eq!(
        content_type.as_deref(),
        Some(PROBLEM_JSON),
        "{status} for {what} is not a problem document"
    );
    if head {
        return (status.as_u16(), None);
    }
    let problem: serde_json::Value =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{status} for {what}: the problem is not JSON ({e})"));
    assert_eq!(
        problem["status"].as_u64(),
        Some(u64::from(status.as_u16())),
        "{status} for {what}: the problem says {problem}"
    );
    assert!(
        !problem["detail"].as_str().unwrap_or_default().is_empty(),
        "{status} for {what}: the problem has no detail: {problem}"
    );
    (status.as_u16(), None)
}

/// The ids on a list page or timeline, and its next cursor.
fn page(json: &serde_json::Value, route: u8) -> (Vec<String>, Option<String>) {
    let (list, most) = if route == 2 { ("items", 500) } else { ("steps", 1000) };
    let items = json[list]
        .as_array()
        .unwrap_or_else(|| panic!("a 2xx page without {list}: {json}"));
    assert!(items.len() <= most, "{} {list} on one page", items.len());
    if route == 4 {
        assert!(!items.is_empty(), "a timeline without steps: {json}");
    }
    let ids = items
        .iter()
        .map(|item| {
            item["id"]
                .as_str()
                .unwrap_or_else(|| panic!("an item without an id: {item}"))
                .to_owned()
        })
        .collect();
    let cursor = match &json["next_cursor"] {
        serde_json::Value::Null => None,
        serde_json::Value::String(cursor) => Some(cursor.clone()),
        other => panic!("next_cursor is {other}"),
    };
    (ids, cursor)
}

/// Whether a parameter line names `cursor` (the name as the API decodes it: `%XX` and `+`).
fn is_cursor(line: &[u8]) -> bool {
    let name = &line[..line.iter().position(|&b| b == b'=').unwrap_or(line.len())];
    let mut decoded = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        let hex = name.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (name[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (b'+', _) => {
                decoded.push(b' ');
                i += 1;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    decoded == b"cursor"
}

fn run(data: &[u8]) {
    let Some(input) = decode(data) else {
        return;
    };
    let parameters: Vec<String> = input.parameters.iter().map(|line| parameter(line)).collect();
    let Some(uri) = target(&input, &parameters) else {
        return;
    };
    let (_, json) = send(&input, uri);
    // Follow next_cursor on GET /notifications and timelines built by route (not raw ones).
    let (Some(json), true, 2 | 4) = (json, input.follow, input.route) else {
        return;
    };
    let (mut seen, mut cursor) = page(&json, input.route);
    // The same parameters without any cursor; the issued cursor goes last.
    if input.parameters.iter().any(|line| is_cursor(line)) {
        return;
    }
    let kept = parameters;
    for step in 0..4 {
        let Some(mut next) = cursor.take() else {
            return;
        };
        let altered = step == 0 && input.alter.is_some();
        if let Some(at) = input.alter.filter(|_| altered) {
            let at = usize::from(at) * 13 % next.len().max(1);
            let replacement = if next.as_bytes().get(at) == Some(&b'A') {
                "B"
            } else {
                "A"
            };
            if next.is_char_boundary(at) && next.is_char_boundary(at + 1) && at < next.len() {
                next.replace_range(at..at + 1, replacement);
            }
        }
        let mut query = kept.clone();
        query.push(format!("cursor={}", encode(next.as_bytes(), false)));
        let Some(uri) = target(&input, &query) else {
            return;
        };
        let (status, json) = send(&input, uri.clone());
        if altered {
            return;
        }
        // A cursor the API just issued, with the query it was issued for, is accepted. A timeline may end
        // exactly at a page boundary and then have no more steps: 404.
        let Some(json) = json else {
            assert!(
                input.route == 4 && status == 404,
                "{status} for the cursor the API issued: {uri}"
            );
            return;
        };
        let (ids, next_cursor) = page(&json, input.route);
        for id in &ids {
            assert!(!seen.contains(id), "{id} is on two pages; the second was {uri}");
        }
        seen.extend(ids);
        cursor = next_cursor;
    }
}

fuzz_target!(|data: &[u8]| run(data));
