//! A fault layer in front of a DynamoDB-compatible server: an HTTP proxy that forwards every request, but
//! answers a share of BatchWriteItem calls with a throttling error and, of others, forwards only part of the
//! items and returns the rest as UnprocessedItems, exactly as DynamoDB does under load.
//!
//! Every BatchWriteItem signed with the local test credentials (`test`/`test`, `us-east-1`, as
//! [`crate::sdk_config`] gives them) has its SigV4 signature checked as it arrived ([`crate::sigv4`]), and is
//! answered `InvalidSignatureException` when it is wrong, as DynamoDB would answer it.
//!
//! It can also route: DynamoDB requests (those with a `DynamoDB_20120810.*` target) to one server and every
//! other request (S3, Secrets Manager) to another ([`start_split`]), so that dynalite serves DynamoDB while moto
//! serves the rest behind one endpoint.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// What to inject, as shares of BatchWriteItem calls.
#[derive(Debug, Clone, Copy)]
pub struct FaultPlan {
    /// Share of calls answered `ThrottlingException` (HTTP 400) without reaching the server.
    pub throttle: f64,
    /// Share of calls of which only the first half of the items is forwarded; the rest come back unprocessed.
    pub unprocess: f64,
    /// Share of calls answered HTTP 500.
    pub server_error: f64,
    pub seed: u64,
}

impl FaultPlan {
    /// Nothing injected: the proxy only counts and routes.
    pub const NONE: FaultPlan = FaultPlan {
        throttle: 0.0,
        unprocess: 0.0,
        server_error: 0.0,
        seed: 0,
    };
}

/// What was injected.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub batch_calls: AtomicU64,
    pub throttled: AtomicU64,
    pub unprocessed_items: AtomicU64,
    pub server_errors: AtomicU64,
    /// BatchWriteItem calls whose signature was checked and found right.
    pub signatures_checked: AtomicU64,
    /// Every DynamoDB request that reached the proxy, by operation (the `X-Amz-Target` after its last `.`:
    /// `Query`, `GetItem`, `Scan`...), whether it was forwarded or answered with an injected fault.
    pub operations: Mutex<BTreeMap<String, u64>>,
}

impl FaultCounts {
    /// How many `operation` requests reached the proxy.
    pub fn operation(&self, operation: &str) -> u64 {
        self.operations().get(operation).copied().unwrap_or(0)
    }

    /// A snapshot of the requests per DynamoDB operation so far.
    pub fn operations(&self) -> BTreeMap<String, u64> {
        self.operations.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

struct ProxyState {
    /// Where DynamoDB requests go.
    dynamodb: String,
    /// Where other requests go (`dynamodb` when `None`).
    others: Option<String>,
    plan: FaultPlan,
    rng: Mutex<StdRng>,
    counts: Arc<FaultCounts>,
    client: reqwest::Client,
}

/// A running proxy.
pub struct FaultProxy {
    pub endpoint: String,
    pub counts: Arc<FaultCounts>,
    port: u16,
    state: Arc<ProxyState>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

impl FaultProxy {
    /// Stops listening: connections are refused, as when the server is down.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&mut self) {
        self.stop();
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        };
        self.task = Some(serve(listener, self.state.clone()));
    }
}

fn serve(listener: tokio::net::TcpListener, state: Arc<ProxyState>) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new().fallback(forward).with_state(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// Starts a proxy to `upstream` on a random local port.
pub async fn start(upstream: &str, plan: FaultPlan) -> FaultProxy {
    start_routed(upstream, None, plan).await
}

/// Starts a proxy on a random local port that sends DynamoDB requests to `dynamodb` and the others to `others`.
pub async fn start_split(dynamodb: &str, others: &str, plan: FaultPlan) -> FaultProxy {
    start_routed(dynamodb, Some(others), plan).await
}

async fn start_routed(dynamodb: &str, others: Option<&str>, plan: FaultPlan) -> FaultProxy {
    let counts = Arc::new(FaultCounts::default());
    let state = Arc::new(ProxyState {
        dynamodb: dynamodb.trim_end_matches('/').to_owned(),
        others: others.map(|o| o.trim_end_matches('/').to_owned()),
        plan,
        rng: Mutex::new(StdRng::seed_from_u64(plan.seed)),
        counts: counts.clone(),
        client: reqwest::Client::new(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let task = serve(listener, state.clone());
    FaultProxy {
        endpoint: format!("http://{address}"),
        counts,
        port: address.port(),
        state,
        task: Some(task),
    }
}

/// Marks a request a proxy forwarded, whose signature the next proxy leaves alone.
const CHECKED: &str = "x-fault-proxy-forwarded";

/// The local test credentials ([`crate::sdk_config`]), whose signatures the proxy can check.
const LOCAL_KEY: crate::sigv4::Key<'static> = crate::sigv4::Key {
    access_key: "test",
    secret: "test",
    region: "us-east-1",
    service: "dynamodb",
};

fn dynamodb_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": message});
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/x-amz-json-1.0"));
    response
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut body = to_bytes(body, usize::MAX).await.unwrap_or_default().to_vec();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Some((_, operation)) = target.rsplit_once('.') {
        if let Ok(mut operations) = state.counts.operations.lock() {
            *operations.entry(operation.to_owned()).or_default() += 1;
        }
    }
    let mut held_back: Option<(String, Vec<Value>)> = None;
    if target.ends_with(".BatchWriteItem") {
        state.counts.batch_calls.fetch_add(1, Ordering::Relaxed);
        // Checked at the first proxy only: one behind another (a fault proxy in front of the dynalite tier's
        // router) sees a Host and, after held-back items, a body the signature no longer covers.
        let first_hop = !parts.headers.contains_key(CHECKED);
        if first_hop && crate::sigv4::access_key(&parts.headers).as_deref() == Some(LOCAL_KEY.access_key) {
            if let Some(why) =
                crate::sigv4::refusal(parts.method.as_str(), &parts.uri, &parts.headers, &body, &LOCAL_KEY)
            {
                return dynamodb_error(StatusCode::BAD_REQUEST, "InvalidSignatureException", &why);
            }
            state.counts.signatures_checked.fetch_add(1, Ordering::Relaxed);
        }
        let roll: f64 = state.rng.lock().map(|mut r| r.gen()).unwrap_or(1.0);
        let plan = state.plan;
        if roll < plan.throttle {
            state.counts.throttled.fetch_add(1, Ordering::Relaxed);
            return dynamodb_error(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate of requests exceeds the allowed throughput (injected)",
            );
        }
        if roll < plan.throttle + plan.server_error {
            state.counts.server_errors.fetch_add(1, Ordering::Relaxed);
            return dynamodb_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "Internal server error (injected)",
            );
        }
        if roll < plan.throttle + plan.server_error + plan.unprocess {
            if let Ok(mut request_json) = serde_json::from_slice::<Value>(&body) {
                if let Some(tables) = request_json.get_mut("RequestItems").and_then(Value::as_object_mut) {
                    if let Some((table, writes)) = tables.iter_mut().next() {
                        if let Some(list) = writes.as_array_mut() {
                            if list.len() > 1 {
                                let rest = list.split_off(list.len() / 2);
                                state
                                    .counts
                                    .unprocessed_items
                                    .fetch_add(rest.len() as u64, Ordering::Relaxed);
                                held_back = Some((table.clone(), rest));
                            }
                        }
                    }
                }
                body = serde_json::to_vec(&request_json).unwrap_or(body);
            }
        }
    }
    let upstream = match &state.others {
        Some(others) if !target.starts_with("DynamoDB_") => others,
        _ => &state.dynamodb,
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let url = format!("{upstream}{path_and_query}");
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            headers.insert(name.clone(), value.clone());
        }
    }
    headers.insert(CHECKED, HeaderValue::from_static("1"));
    let upstream = match state
        .client
        .request(parts.method.clone(), url)
        .headers(headers)
        .body(body)
        .send()
        .await
    {
        Ok(response) => response,
        Err(err) => {
            let mut response = Response::new(Body::from(format!("upstream unreachable: {err}")));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            return response;
        }
    };
    let status = upstream.status();
    let upstream_headers = upstream.headers().clone();
    let Ok(bytes) = upstream.bytes().await else {
        let mut response = Response::new(Body::from("upstream answer cut off"));
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        return response;
    };
    let mut bytes = bytes.to_vec();
    if let (Some((table, rest)), true) = (held_back, status.is_success()) {
        if let Ok(mut answer) = serde_json::from_slice::<Value>(&bytes) {
            answer["UnprocessedItems"] = serde_json::json!({ table: rest });
            bytes = serde_json::to_vec(&answer).unwrap_or(bytes);
        }
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &upstream_headers {
        if name != "content-length" && name != "transfer-encoding" && !name.as_str().starts_with("x-amz-crc32") {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response
}
