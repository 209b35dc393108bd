//! The shared harness of the integration and end-to-end suites.
//!
//! - [`aws_endpoint`]: one moto server per test binary, started from the project's own virtualenv (`.venv`,
//!   made by `make venv`), or the endpoint in `TEST_AWS_ENDPOINT_URL` (LocalStack, a shared moto). With
//!   `TEST_DYNAMODB=dynalite`, DynamoDB requests go to a dynalite server instead (`make dynalite` installs it),
//!   and moto keeps S3 and Secrets Manager, behind one routing endpoint.
//! - [`TestEnv::new`]: a fresh table (from the shared definition) and bucket for every test, random names.
//! - [`fault_proxy`]: a fault layer in front of the server that throttles and leaves items unprocessed.
//! - [`QueryServer`]: the real query router served on a random local port.

pub mod fault_proxy;
pub mod kafka;
pub mod sigv4;

use std::sync::{Arc, OnceLock};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use shared::config::{IngestConfig, QueryConfig};
use shared::dynamo::DynamoStore;

pub use local_stack::server::{free_port, wait_for_port, workspace_root, LocalServer};

/// A random name for test resources.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// Starts a moto server of a test's own (for tests that stop and restart it).
pub fn own_moto() -> LocalServer {
    LocalServer::moto(0).expect("moto server starts")
}

/// Starts a dynalite server of a test's own, keeping its data under `dir` (in memory when `None`).
pub fn own_dynalite(dir: Option<&std::path::Path>) -> LocalServer {
    LocalServer::dynalite(0, dir).expect("dynalite server starts")
}

/// Whether the suites run against dynalite (`TEST_DYNAMODB=dynalite`) rather than moto for DynamoDB.
pub fn on_dynalite() -> bool {
    match std::env::var("TEST_DYNAMODB").as_deref() {
        Ok("dynalite") => true,
        Ok("moto") | Err(_) => false,
        Ok(other) => panic!("TEST_DYNAMODB={other}: expected dynalite or moto"),
    }
}

/// Serves a routing proxy (DynamoDB to `dynamodb`, the rest to `others`) on a thread of its own, for the life
/// of the test process: each test has its own runtime, which ends with the test.
fn route_for_the_process(dynamodb: String, others: String) -> String {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the routing proxy");
        runtime.block_on(async move {
            let proxy = fault_proxy::start_split(&dynamodb, &others, fault_proxy::FaultPlan::NONE).await;
            let _ = sender.send(proxy.endpoint.clone());
            std::future::pending::<()>().await;
        });
    });
    receiver.recv().expect("the routing proxy starts")
}

/// The AWS endpoint (DynamoDB, S3, Secrets Manager) shared by a test binary.
pub fn aws_endpoint() -> String {
    static SHARED: OnceLock<String> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            if let Ok(endpoint) = std::env::var("TEST_AWS_ENDPOINT_URL") {
                return endpoint;
            }
            let moto = own_moto();
            let endpoint = if on_dynalite() {
                let dynalite = own_dynalite(None);
                let endpoint = route_for_the_process(dynalite.endpoint.clone(), moto.endpoint.clone());
                std::mem::forget(dynalite);
                endpoint
            } else {
                moto.endpoint.clone()
            };
            // Kept for the life of the test process; the watchdogs stop them after.
            std::mem::forget(moto);
            endpoint
        })
        .clone()
}

/// SDK configuration for a local endpoint with dummy credentials.
pub fn sdk_config(endpoint: &str) -> SdkConfig {
    local_stack::aws::local_config(endpoint)
}

/// The SDK configuration the ingest function runs with ([`shared::dynamo::ingest_sdk_config`]), for `endpoint`.
pub fn ingest_sdk_config(endpoint: &str) -> SdkConfig {
    shared::dynamo::ingest_sdk_config(sdk_config(endpoint))
}

/// A DynamoDB client without SDK retries (the writer retries) for `endpoint`.
pub fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    local_stack::aws::dynamodb_client(&sdk_config(endpoint))
}

/// An S3 client (path-style) for `endpoint`.
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    shared::dynamo::s3_client(&sdk_config(endpoint))
}

/// The store adapter over the table `table` at `endpoint` (which may be a fault proxy), with default layout.
pub fn dynamo_store(endpoint: &str, table: &str) -> DynamoStore {
    DynamoStore::new(&sdk_config(endpoint), table).expect("a store for a local endpoint")
}

/// A test event's bytes, as the Lambda runtime receives them.
pub fn event_bytes(event: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(event).expect("a JSON value serializes")
}

/// A table and a bucket of one test's own.
pub struct TestEnv {
    pub endpoint: String,
    pub table: String,
    pub bucket: String,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
}

impl TestEnv {
    /// Creates a fresh table and bucket on the shared server.
    pub async fn new() -> TestEnv {
        Self::on(&aws_endpoint()).await
    }

    /// Creates a fresh table and bucket on `endpoint`.
    pub async fn on(endpoint: &str) -> TestEnv {
        let table = unique("notifications");
        let bucket = unique("payloads");
        let dynamodb = dynamodb_client(endpoint);
        let s3 = s3_client(endpoint);
        shared::dynamo::table::create_table(&dynamodb, &table)
            .send()
            .await
            .expect("create table");
        s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
        TestEnv {
            endpoint: endpoint.to_owned(),
            table,
            bucket,
            dynamodb,
            s3,
        }
    }

    /// The ingest configuration for this table and bucket, plus `extra` variables. `SCHEMA_DIR` is the fixture
    /// corpus's schemas (`fixtures/schemas`), as a deployment knows its topics' schemas.
    pub fn ingest_config(&self, extra: &[(&str, &str)]) -> IngestConfig {
        let mut pairs: Vec<(String, String)> = vec![
            ("TABLE_NAME".into(), self.table.clone()),
            ("PAYLOAD_BUCKET".into(), self.bucket.clone()),
            (
                "SCHEMA_DIR".into(),
                workspace_root().join("fixtures/schemas").to_string_lossy().into_owned(),
            ),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        IngestConfig::from_lookup(&move |name| pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .expect("valid ingest config")
    }

    /// The real ingest handler over this environment (through `endpoint`, which may be a fault proxy).
    pub fn ingest_via(&self, endpoint: &str, extra: &[(&str, &str)]) -> ingest::handler::Ingest {
        let config = self.ingest_config(extra);
        let store = DynamoStore::for_ingest(&ingest_sdk_config(endpoint), &config).expect("a store");
        // Glue-framed records' schemas from the same endpoint's Glue Schema Registry (moto), as `make dev` does.
        let schemas = shared::schema::registry::resolver_for(
            &config.schemas,
            None,
            Some(aws_sdk_glue::Client::new(&sdk_config(endpoint))),
        );
        ingest::handler::Ingest::new(Arc::new(store), config).with_schemas(Arc::new(schemas))
    }

    pub fn ingest(&self, extra: &[(&str, &str)]) -> ingest::handler::Ingest {
        self.ingest_via(&self.endpoint.clone(), extra)
    }

    /// Every page of a scan of this table (tests only), shaped by `shape` (a projection, `Select::Count`).
    /// moto answers a scan 500 now and then while other requests write to the table: a page is retried.
    pub async fn scan(
        &self,
        shape: impl Fn(ScanFluentBuilder) -> ScanFluentBuilder,
    ) -> Vec<aws_sdk_dynamodb::operation::scan::ScanOutput> {
        let mut pages = Vec::new();
        let mut start = None;
        loop {
            let mut attempt = 0;
            let page = loop {
                let request = self.dynamodb.scan().table_name(&self.table);
                match shape(request).set_exclusive_start_key(start.clone()).send().await {
                    Ok(page) => break page,
                    Err(err) if attempt < 10 => {
                        attempt += 1;
                        eprintln!("scan failed (attempt {attempt}), retrying: {err}");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                    Err(err) => panic!("scan: {err:?}"),
                }
            };
            start = page.last_evaluated_key.clone().filter(|key| !key.is_empty());
            pages.push(page);
            if start.is_none() {
                return pages;
            }
        }
    }

    /// Every id in the table, repeats included (a scan: tests only).
    pub async fn stored_ids(&self) -> Vec<String> {
        let pages = self.scan(|s| s.projection_expression("id")).await;
        pages
            .iter()
            .flat_map(|page| page.items())
            .filter_map(|item| item.get("id").and_then(|v| v.as_s().ok()).cloned())
            .collect()
    }

    /// How many items the table holds (a scan: tests only).
    pub async fn count_items(&self) -> usize {
        let pages = self.scan(|s| s.select(aws_sdk_dynamodb::types::Select::Count)).await;
        pages.iter().map(|page| page.count as usize).sum()
    }

    /// Serves the real query API over this environment on a random local port.
    pub async fn query_server(&self) -> QueryServer {
        let config = QueryConfig::from_lookup(&|name| match name {
            "TABLE_NAME" => Some(self.table.clone()),
            "CURSOR_SECRET" => Some("integration-test-cursor-secret-0123456789".into()),
            _ => None,
        })
        .expect("valid query config");
        let cursors = query::cursor_signer(&config, &sdk_config(&self.endpoint))
            .await
            .expect("a cursor signer");
        let app = query::app(cursors, Arc::new(dynamo_store(&self.endpoint, &self.table)));
        QueryServer::serve(app).await
    }
}

/// The query router on a local port.
pub struct QueryServer {
    pub base: String,
    pub client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl QueryServer {
    pub async fn serve(app: axum::Router) -> QueryServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let _ = query::serve::serve(listener, app).await;
        });
        QueryServer {
            base: format!("http://{address}"),
            // Redirects are answers to check (a presigned payload URL), not to follow.
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            task,
        }
    }

    /// GETs `path_and_query`; returns status, content type and the body as sent.
    pub async fn get_text(&self, path_and_query: &str) -> (u16, String, String) {
        let response = self
            .client
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, content_type, response.text().await.expect("body"))
    }

    /// GETs `path_and_query`, which must answer 200; returns the JSON body.
    pub async fn get_ok(&self, path_and_query: &str) -> serde_json::Value {
        let (status, _, body) = self.get(path_and_query).await;
        assert_eq!(status, 200, "{path_and_query}: {body}");
        body
    }

    /// GETs `path_and_query`; returns status, content type and JSON body.
    pub async fn get(&self, path_and_query: &str) -> (u16, String, serde_json::Value) {
        let (status, content_type, text) = self.get_text(path_and_query).await;
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        (status, content_type, body)
    }
}

impl Drop for QueryServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Kafka trigger event (the MSK shape) for records `(topic, partition, offset, key, value, headers)`.
pub fn kafka_event(records: &[EventRecord]) -> serde_json::Value {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut groups = serde_json::Map::new();
    for r in records {
        let group = groups
            .entry(format!("{}-{}", r.topic, r.partition))
            .or_insert_with(|| serde_json::json!([]));
        let headers: Vec<serde_json::Value> = r
            .headers
            .iter()
            .map(|(name, value)| serde_json::json!({ name.clone(): value.iter().map(|b| *b as i8).collect::<Vec<i8>>() }))
            .collect();
        if let Some(list) = group.as_array_mut() {
            list.push(serde_json::json!({
                "topic": r.topic, "partition": r.partition, "offset": r.offset,
                "timestamp": r.timestamp, "timestampType": "CREATE_TIME",
                "key": r.key.as_deref().map(b64), "value": r.value.as_deref().map(b64), "headers": headers,
            }));
        }
    }
    serde_json::json!({
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/local/00000000-0000-0000-0000-000000000000-1",
        "bootstrapServers": "127.0.0.1:9092",
        "records": groups,
    })
}

/// One record of a test event.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub topic: String,
    pub partition: i64,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl EventRecord {
    pub fn json(topic: &str, partition: i64, offset: i64, value: serde_json::Value) -> EventRecord {
        EventRecord {
            topic: topic.into(),
            partition,
            offset,
            timestamp: 1_700_000_000_000 + offset,
            key: None,
            value: Some(serde_json::to_vec(&value).expect("json")),
            headers: Vec::new(),
        }
    }

    pub fn bytes(topic: &str, partition: i64, offset: i64, value: Option<Vec<u8>>) -> EventRecord {
        EventRecord {
            topic: topic.into(),
            partition,
            offset,
            timestamp: 1_700_000_000_000 + offset,
            key: None,
            value,
            headers: Vec::new(),
        }
    }
}
