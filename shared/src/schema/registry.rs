//! Where schemas come from, and the per-instance cache in front of them.
//!
//! - [`SchemaDir`]: a directory of `{id}.avsc`, `{id}.proto` or `{id}.json` files (`SCHEMA_DIR`), `{id}` being a
//!   Confluent id in decimal or a Glue version UUID; a `.proto` file's imports are read from the same directory.
//! - [`ConfluentRegistry`]: a Confluent-compatible registry (`GET /schemas/ids/{id}`, references through
//!   `GET /subjects/{subject}/versions/{version}`), with basic or bearer auth: Confluent Platform and Cloud,
//!   Redpanda, Karapace, Apicurio's compatibility API.
//! - [`GlueRegistry`]: AWS Glue Schema Registry, `GetSchemaVersion` by version id.
//! - [`SchemaResolver`]: asks the sources in order, retries what is not content within a deadline, compiles
//!   each schema once, and keeps it for the instance's life (bounded), fetching each id once even when many
//!   invocations ask at the same time.
//!
//! Failure semantics (README, "When a registry is down"): an id no source knows (a 404, no file) is content,
//! [`Resolution::Unknown`], and its records are stored undecoded with a warning. A registry that times out,
//! answers 5xx, throttles or refuses the credentials is not: [`Resolution::Unavailable`] holds the records
//! back so the trigger delivers them again.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::{RawSchema, Schema, SchemaKind, SchemaRef};

/// Why a source has no schema for an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The source does not know the id (a 404, no such file): content, not an outage.
    #[error("{0}")]
    Unknown(String),
    /// The source could not answer (timeout, 5xx, throttling, refused credentials): try again.
    #[error("{0}")]
    Unavailable(String),
}

/// A place schemas come from.
#[async_trait]
pub trait SchemaSource: Send + Sync {
    /// Whether this source holds schemas of this kind of id at all.
    fn serves(&self, schema: &SchemaRef) -> bool;
    /// A short name for messages: `SCHEMA_DIR`, `the Confluent registry`, `Glue`.
    fn name(&self) -> &'static str;
    async fn fetch(&self, schema: &SchemaRef, timeout: Duration) -> Result<RawSchema, FetchError>;
}

/// What became of one schema id.
#[derive(Debug, Clone)]
pub enum Resolution {
    Found(Arc<Schema>),
    /// Content: no source knows the id, or its schema does not compile. Records are stored undecoded.
    Unknown(String),
    /// Not content: the registry could not be asked. Records are held back.
    Unavailable(String),
}

/// The schemas of one batch, resolved before its records are normalized.
#[derive(Debug, Default, Clone)]
pub struct Schemas(HashMap<SchemaRef, Resolution>);

impl Schemas {
    /// No schemas: every framed record reads as if its schema were unknown.
    pub fn none() -> &'static Schemas {
        static NONE: std::sync::LazyLock<Schemas> = std::sync::LazyLock::new(Schemas::default);
        &NONE
    }

    pub fn get(&self, schema: &SchemaRef) -> Option<&Resolution> {
        self.0.get(schema)
    }

    pub fn insert(&mut self, schema: SchemaRef, resolution: Resolution) {
        self.0.insert(schema, resolution);
    }

    /// The ids that could not be resolved because a registry was down, with why.
    pub fn unavailable(&self) -> impl Iterator<Item = (&SchemaRef, &str)> {
        self.0.iter().filter_map(|(id, r)| match r {
            Resolution::Unavailable(why) => Some((id, why.as_str())),
            _ => None,
        })
    }
}

/// How long to wait between tries of a registry that did not answer.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The longest one request to a registry may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Schemas by id, from the sources in order, compiled once and kept for the instance's life.
pub struct SchemaResolver {
    sources: Vec<Arc<dyn SchemaSource>>,
    cache: Mutex<Cache>,
    fetches: std::sync::atomic::AtomicU64,
}

/// A compiled schema, or why there is none (no source knows the id, or its text did not compile) and when that
/// was found; filled once per id.
type Slot = Arc<OnceCell<Result<Arc<Schema>, (String, Instant)>>>;

/// How long an id no source knows stays unknown before it is asked for again (a schema registered late).
const UNKNOWN_TTL: Duration = Duration::from_secs(300);

/// The most schema ids looked up for one batch, and how many at once: a batch of binary values that merely
/// look framed must not flood a registry. Real batches carry a handful of ids.
pub const MAX_IDS_PER_BATCH: usize = 100;
const CONCURRENT_FETCHES: usize = 8;

struct Cache {
    capacity: usize,
    entries: HashMap<SchemaRef, Slot>,
    order: VecDeque<SchemaRef>,
}

/// How many schemas an instance keeps by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 1_000;

impl SchemaResolver {
    pub fn new(sources: Vec<Arc<dyn SchemaSource>>, capacity: usize) -> Self {
        SchemaResolver {
            sources,
            cache: Mutex::new(Cache {
                capacity: capacity.max(1),
                entries: HashMap::new(),
                order: VecDeque::new(),
            }),
            fetches: Default::default(),
        }
    }

    /// A resolver with no source: every framed record is stored undecoded, with a warning.
    pub fn none() -> Self {
        SchemaResolver::new(Vec::new(), 1)
    }

    /// How many fetches the sources were asked for (each id once while it is cached).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Resolves every id, concurrently, giving up on registries that do not answer at `deadline`.
    pub async fn resolve(&self, ids: impl IntoIterator<Item = SchemaRef>, deadline: Instant) -> Schemas {
        use futures::StreamExt as _;
        let mut unique: Vec<SchemaRef> = ids.into_iter().collect();
        unique.sort();
        unique.dedup();
        let skipped = unique.split_off(unique.len().min(MAX_IDS_PER_BATCH));
        let mut schemas: HashMap<SchemaRef, Resolution> = futures::stream::iter(unique)
            .map(|id| async move { (id, self.resolve_one(id, deadline).await) })
            .buffer_unordered(CONCURRENT_FETCHES)
            .collect()
            .await;
        for id in skipped {
            let why = format!("more than {MAX_IDS_PER_BATCH} schema ids in one batch; {id} was not looked up");
            schemas.insert(id, Resolution::Unknown(why));
        }
        Schemas(schemas)
    }

    async fn resolve_one(&self, id: SchemaRef, deadline: Instant) -> Resolution {
        for _ in 0..2 {
            let cell = {
                let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                cache.entry(id)
            };
            let outcome = cell
                .get_or_try_init(|| async {
                    match self.fetch(&id, deadline).await {
                        Ok(raw) => Ok(Schema::compile(&raw)
                            .map(Arc::new)
                            .map_err(|e| (format!("schema {} ({}): {e}", id, raw.kind.as_str()), Instant::now()))),
                        // Content: kept, so that junk which looks framed is not asked for again and again.
                        Err(FetchError::Unknown(why)) => Ok(Err((why, Instant::now()))),
                        Err(error) => Err(error),
                    }
                })
                .await;
            return match outcome {
                Ok(Ok(schema)) => Resolution::Found(schema.clone()),
                Ok(Err((why, at))) if at.elapsed() < UNKNOWN_TTL => Resolution::Unknown(why.clone()),
                Ok(Err(_)) => {
                    // Unknown long enough ago: forget it, and ask once more.
                    let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                    cache.forget(&id);
                    continue;
                }
                Err(FetchError::Unknown(why)) => Resolution::Unknown(why),
                Err(FetchError::Unavailable(why)) => Resolution::Unavailable(why),
            };
        }
        Resolution::Unknown(format!("schema {id} is unknown"))
    }

    /// Asks the sources in order: the first that has the schema gives it; an outage of one, when none has it,
    /// makes the id unavailable (it is tried again until `deadline`).
    async fn fetch(&self, id: &SchemaRef, deadline: Instant) -> Result<RawSchema, FetchError> {
        let sources: Vec<&Arc<dyn SchemaSource>> = self.sources.iter().filter(|s| s.serves(id)).collect();
        if sources.is_empty() {
            return Err(FetchError::Unknown(match id {
                SchemaRef::Confluent(_) => {
                    format!("no schema source for Confluent schema id {id} (set SCHEMA_REGISTRY_URL or SCHEMA_DIR)")
                }
                SchemaRef::Glue(_) => format!("no schema source for Glue schema version {id}"),
            }));
        }
        let mut backoff = FIRST_BACKOFF;
        loop {
            let mut unknown = Vec::new();
            let mut unavailable = None;
            for source in &sources {
                let left = deadline.saturating_duration_since(Instant::now());
                self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match source.fetch(id, left.min(REQUEST_TIMEOUT)).await {
                    Ok(raw) => return Ok(raw),
                    Err(FetchError::Unknown(why)) => unknown.push(why),
                    Err(FetchError::Unavailable(why)) => unavailable = Some(format!("{}: {why}", source.name())),
                }
            }
            let Some(why) = unavailable else {
                return Err(FetchError::Unknown(unknown.join("; ")));
            };
            tracing::warn!(schema = %id, error = %why, "schema registry unavailable; trying again");
            let jitter = Duration::from_millis(rand::random::<u64>() % 50);
            if Instant::now() + backoff + jitter >= deadline {
                return Err(FetchError::Unavailable(why));
            }
            tokio::time::sleep(backoff + jitter).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

impl Cache {
    fn forget(&mut self, id: &SchemaRef) {
        self.entries.remove(id);
        self.order.retain(|o| o != id);
    }

    fn entry(&mut self, id: SchemaRef) -> Slot {
        if let Some(cell) = self.entries.get(&id) {
            return cell.clone();
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        let cell = Arc::new(OnceCell::new());
        self.entries.insert(id, cell.clone());
        self.order.push_back(id);
        cell
    }
}

/// The sources a configuration names, in the order they are asked: the directory, the Confluent registry
/// (with `auth`, read from its secret by the caller when it is one), Glue (when `glue` is given).
pub fn resolver_for(
    config: &crate::config::SchemaConfig,
    auth: Option<RegistryAuth>,
    glue: Option<aws_sdk_glue::Client>,
) -> SchemaResolver {
    let mut sources: Vec<Arc<dyn SchemaSource>> = Vec::new();
    if let Some(dir) = &config.dir {
        sources.push(Arc::new(SchemaDir::new(dir)));
    }
    if let Some(url) = &config.registry_url {
        sources.push(Arc::new(ConfluentRegistry::new(
            url,
            auth.or_else(|| config.registry_auth.clone()),
        )));
    }
    if let (true, Some(client)) = (config.glue, glue) {
        sources.push(Arc::new(GlueRegistry::new(client)));
    }
    SchemaResolver::new(sources, config.cache_size)
}

/// A directory of schema files: `{id}.avsc`, `{id}.proto`, `{id}.json`.
#[derive(Debug, Clone)]
pub struct SchemaDir {
    path: PathBuf,
}

impl SchemaDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SchemaDir { path: path.into() }
    }

    /// Reads the schema file of an id (sync: a local directory).
    pub fn read(&self, id: &SchemaRef) -> Result<RawSchema, FetchError> {
        let stem = id.to_string();
        for kind in [SchemaKind::Avro, SchemaKind::Protobuf, SchemaKind::Json] {
            for stem in [stem.clone(), stem.to_ascii_uppercase()] {
                let file = self.path.join(format!("{stem}.{}", kind.extension()));
                match std::fs::read_to_string(&file) {
                    Ok(text) => {
                        let mut raw = RawSchema::new(kind, text);
                        if kind == SchemaKind::Protobuf {
                            raw.references = self.imports(&raw.text, 0)?;
                        }
                        return Ok(raw);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(FetchError::Unavailable(format!("cannot read {}: {e}", file.display())));
                    }
                }
            }
        }
        Err(FetchError::Unknown(format!(
            "no {stem}.avsc, {stem}.proto or {stem}.json in SCHEMA_DIR {}",
            self.path.display()
        )))
    }

    /// The `.proto` files a file imports that are in the directory (the well-known ones come with the compiler).
    fn imports(&self, text: &str, depth: usize) -> Result<Vec<(String, RawSchema)>, FetchError> {
        if depth > 16 {
            return Err(FetchError::Unknown("imports nest deeper than 16 levels".into()));
        }
        let mut out = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix("import") else {
                continue;
            };
            let rest = rest
                .trim()
                .trim_start_matches("public")
                .trim_start_matches("weak")
                .trim();
            let Some(path) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) else {
                continue;
            };
            if path.contains("..") {
                continue;
            }
            if let Ok(source) = std::fs::read_to_string(self.path.join(path)) {
                let mut raw = RawSchema::new(SchemaKind::Protobuf, source);
                raw.references = self.imports(&raw.text, depth + 1)?;
                out.push((path.to_owned(), raw));
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl SchemaSource for SchemaDir {
    fn serves(&self, _: &SchemaRef) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "SCHEMA_DIR"
    }

    async fn fetch(&self, id: &SchemaRef, _: Duration) -> Result<RawSchema, FetchError> {
        self.read(id)
    }
}

/// How to authenticate to a Confluent-compatible registry.
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    /// HTTP basic auth: an API key and secret (Confluent Cloud), or a user and password.
    Basic {
        user: String,
        password: String,
    },
    Bearer(String),
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryAuth::Basic { user, .. } => write!(f, "Basic({user}:***)"),
            RegistryAuth::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

impl RegistryAuth {
    /// `user:password`, as Confluent clients' `basic.auth.user.info` has it.
    pub fn basic(user_info: &str) -> Option<RegistryAuth> {
        let (user, password) = user_info.split_once(':')?;
        Some(RegistryAuth::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// A Secrets Manager secret's text: `user:password`, `{"username": .., "password": ..}` (or `key` and
    /// `secret`), or `{"token": ..}`.
    pub fn from_secret(text: &str) -> Result<RegistryAuth, String> {
        let text = text.trim();
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
            let get = |names: &[&str]| {
                names
                    .iter()
                    .find_map(|n| map.get(*n).and_then(|v| v.as_str()).map(str::to_owned))
            };
            if let Some(token) = get(&["token", "bearer"]) {
                return Ok(RegistryAuth::Bearer(token));
            }
            return match (get(&["username", "user", "key"]), get(&["password", "secret"])) {
                (Some(user), Some(password)) => Ok(RegistryAuth::Basic { user, password }),
                _ => Err("the registry secret is JSON without token, or username and password".into()),
            };
        }
        RegistryAuth::basic(text).ok_or_else(|| "the registry secret is neither user:password nor JSON".into())
    }
}

/// A Confluent-compatible schema registry.
#[derive(Debug, Clone)]
pub struct ConfluentRegistry {
    base: String,
    auth: Option<RegistryAuth>,
    client: reqwest::Client,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfluentSchema {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<ConfluentReference>,
    #[serde(default)]
    subject: Option<String>,
}

#[derive(serde::Deserialize)]
struct ConfluentReference {
    name: String,
    subject: String,
    version: i64,
}

impl ConfluentRegistry {
    pub fn new(base: &str, auth: Option<RegistryAuth>) -> Self {
        ConfluentRegistry {
            base: base.trim_end_matches('/').to_owned(),
            auth,
            client: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str, timeout: Duration) -> Result<ConfluentSchema, FetchError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .client
            .get(&url)
            .header("accept", "application/vnd.schemaregistry.v1+json, application/json")
            .timeout(timeout.max(Duration::from_millis(100)));
        request = match &self.auth {
            Some(RegistryAuth::Basic { user, password }) => request.basic_auth(user, Some(password)),
            Some(RegistryAuth::Bearer(token)) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| FetchError::Unavailable(format!("GET {path}: {}", error_chain(&e))))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(FetchError::Unknown(format!(
                "the Confluent registry does not know {path} (404)"
            )));
        }
        if !status.is_success() {
            // 401/403 (refused credentials), 429, 5xx, and anything else: not the record's fault.
            return Err(FetchError::Unavailable(format!("GET {path} answered {status}")));
        }
        response
            .json::<ConfluentSchema>()
            .await
            .map_err(|e| FetchError::Unavailable(format!("GET {path} answered a body that is not a schema: {e}")))
    }

    /// A schema and, depth first, the schemas it references.
    async fn with_references(
        &self,
        found: ConfluentSchema,
        timeout: Duration,
        depth: usize,
    ) -> Result<RawSchema, FetchError> {
        let kind = SchemaKind::from_registry(found.schema_type.as_deref()).ok_or_else(|| {
            FetchError::Unknown(format!(
                "unknown schemaType {:?}",
                found.schema_type.as_deref().unwrap_or_default()
            ))
        })?;
        let mut raw = RawSchema::new(kind, found.schema);
        raw.subject = found.subject;
        if depth > 16 {
            return Err(FetchError::Unknown("references nest deeper than 16 levels".into()));
        }
        for reference in found.references {
            let path = format!(
                "/subjects/{}/versions/{}",
                encode_path(&reference.subject),
                reference.version
            );
            let child = self.get(&path, timeout).await?;
            let child = Box::pin(self.with_references(child, timeout, depth + 1)).await?;
            raw.references.push((reference.name, child));
        }
        Ok(raw)
    }
}

#[async_trait]
impl SchemaSource for ConfluentRegistry {
    fn serves(&self, id: &SchemaRef) -> bool {
        matches!(id, SchemaRef::Confluent(_))
    }

    fn name(&self) -> &'static str {
        "the Confluent registry"
    }

    async fn fetch(&self, id: &SchemaRef, timeout: Duration) -> Result<RawSchema, FetchError> {
        let found = self.get(&format!("/schemas/ids/{id}"), timeout).await?;
        self.with_references(found, timeout, 0).await
    }
}

fn encode_path(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// AWS Glue Schema Registry: `GetSchemaVersion` by schema version id.
#[derive(Debug, Clone)]
pub struct GlueRegistry {
    client: aws_sdk_glue::Client,
}

impl GlueRegistry {
    pub fn new(client: aws_sdk_glue::Client) -> Self {
        GlueRegistry { client }
    }
}

#[async_trait]
impl SchemaSource for GlueRegistry {
    fn serves(&self, id: &SchemaRef) -> bool {
        matches!(id, SchemaRef::Glue(_))
    }

    fn name(&self) -> &'static str {
        "Glue"
    }

    async fn fetch(&self, id: &SchemaRef, timeout: Duration) -> Result<RawSchema, FetchError> {
        use aws_sdk_glue::error::ProvideErrorMetadata as _;
        let request = self
            .client
            .get_schema_version()
            .schema_version_id(id.to_string())
            .send();
        let answer = match tokio::time::timeout(timeout.max(Duration::from_millis(100)), request).await {
            Err(_) => return Err(FetchError::Unavailable(format!("GetSchemaVersion {id} timed out"))),
            Ok(answer) => answer,
        };
        let output = answer.map_err(|e| {
            let code = e.code().unwrap_or_default().to_owned();
            let message = aws_sdk_glue::error::DisplayErrorContext(&e).to_string();
            if matches!(code.as_str(), "EntityNotFoundException" | "InvalidInputException") {
                FetchError::Unknown(format!("Glue does not know schema version {id} ({code})"))
            } else {
                FetchError::Unavailable(format!("GetSchemaVersion {id}: {message}"))
            }
        })?;
        let kind = output
            .data_format()
            .and_then(|f| SchemaKind::from_registry(Some(f.as_str())))
            .ok_or_else(|| FetchError::Unknown(format!("schema version {id} has an unknown data format")))?;
        let text = output
            .schema_definition()
            .ok_or_else(|| FetchError::Unknown(format!("schema version {id} has no definition")))?;
        let mut raw = RawSchema::new(kind, text);
        raw.subject = output
            .schema_arn()
            .and_then(|arn| arn.rsplit('/').next())
            .map(str::to_owned);
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An in-memory schema source double: answers from a map, or fails the first `outages` fetches.
    struct MockSource {
        schemas: HashMap<SchemaRef, RawSchema>,
        outages: AtomicUsize,
        calls: AtomicUsize,
        delay: Duration,
    }

    #[async_trait]
    impl SchemaSource for MockSource {
        fn serves(&self, _: &SchemaRef) -> bool {
            true
        }
        fn name(&self) -> &'static str {
            "mock"
        }
        async fn fetch(&self, id: &SchemaRef, _: Duration) -> Result<RawSchema, FetchError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            if self
                .outages
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(FetchError::Unavailable("503".into()));
            }
            self.schemas
                .get(id)
                .cloned()
                .ok_or_else(|| FetchError::Unknown("404".into()))
        }
    }

    impl MockSource {
        fn new(schemas: impl IntoIterator<Item = (u32, RawSchema)>, outages: usize, delay: Duration) -> Arc<Self> {
            Arc::new(MockSource {
                schemas: schemas
                    .into_iter()
                    .map(|(id, raw)| (SchemaRef::Confluent(id), raw))
                    .collect(),
                outages: AtomicUsize::new(outages),
                calls: AtomicUsize::new(0),
                delay,
            })
        }
    }

    /// Schema 1 (JSON), answered after 20 ms, the first `outages` fetches failing.
    fn mock(outages: usize) -> Arc<MockSource> {
        MockSource::new(
            [(1, RawSchema::new(SchemaKind::Json, "{}"))],
            outages,
            Duration::from_millis(20),
        )
    }

    #[tokio::test]
    async fn each_id_is_fetched_once_even_when_asked_concurrently() {
        let source = mock(0);
        let resolver = Arc::new(SchemaResolver::new(vec![source.clone()], 10));
        let deadline = Instant::now() + Duration::from_secs(5);
        let asks = (0..20).map(|_| {
            let resolver = resolver.clone();
            async move {
                resolver
                    .resolve([SchemaRef::Confluent(1), SchemaRef::Confluent(1)], deadline)
                    .await
            }
        });
        for schemas in futures::future::join_all(asks).await {
            assert!(matches!(
                schemas.get(&SchemaRef::Confluent(1)),
                Some(Resolution::Found(_))
            ));
        }
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_outage_is_retried_within_the_deadline_then_reported_unavailable() {
        let source = mock(3);
        let resolver = SchemaResolver::new(vec![source.clone()], 10);
        let schemas = resolver
            .resolve([SchemaRef::Confluent(1)], Instant::now() + Duration::from_secs(5))
            .await;
        assert!(matches!(
            schemas.get(&SchemaRef::Confluent(1)),
            Some(Resolution::Found(_))
        ));
        assert_eq!(source.calls.load(Ordering::SeqCst), 4);

        let down = mock(usize::MAX);
        let resolver = SchemaResolver::new(vec![down.clone()], 10);
        let started = Instant::now();
        let schemas = resolver
            .resolve([SchemaRef::Confluent(1)], started + Duration::from_millis(400))
            .await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(schemas.unavailable().count(), 1);
        assert!(down.calls.load(Ordering::SeqCst) >= 2);
        // Nothing is cached from an outage: the next invocation asks again.
        down.outages.store(0, Ordering::SeqCst);
        let schemas = resolver
            .resolve([SchemaRef::Confluent(1)], Instant::now() + Duration::from_secs(5))
            .await;
        assert!(matches!(
            schemas.get(&SchemaRef::Confluent(1)),
            Some(Resolution::Found(_))
        ));
    }

    #[tokio::test]
    async fn unknown_ids_and_schemas_that_do_not_compile_are_content() {
        let source = MockSource::new([(2, RawSchema::new(SchemaKind::Avro, "{"))], 0, Duration::ZERO);
        let resolver = SchemaResolver::new(vec![source], 10);
        let schemas = resolver
            .resolve(
                [SchemaRef::Confluent(2), SchemaRef::Confluent(3)],
                Instant::now() + Duration::from_secs(5),
            )
            .await;
        let Some(Resolution::Unknown(why)) = schemas.get(&SchemaRef::Confluent(2)) else {
            panic!()
        };
        assert!(why.contains("does not parse"), "{why}");
        assert!(matches!(
            schemas.get(&SchemaRef::Confluent(3)),
            Some(Resolution::Unknown(_))
        ));
        // Content is kept: asked again, no source is asked again.
        let calls = resolver.fetches();
        let again = resolver
            .resolve(
                [SchemaRef::Confluent(2), SchemaRef::Confluent(3)],
                Instant::now() + Duration::from_secs(5),
            )
            .await;
        assert!(matches!(
            again.get(&SchemaRef::Confluent(3)),
            Some(Resolution::Unknown(_))
        ));
        assert_eq!(resolver.fetches(), calls);
        let none = SchemaResolver::none()
            .resolve([SchemaRef::Confluent(4)], Instant::now() + Duration::from_secs(1))
            .await;
        let Some(Resolution::Unknown(why)) = none.get(&SchemaRef::Confluent(4)) else {
            panic!()
        };
        assert!(why.contains("SCHEMA_REGISTRY_URL"), "{why}");
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let source = MockSource::new(
            (0..5).map(|i| (i, RawSchema::new(SchemaKind::Json, "{}"))),
            0,
            Duration::ZERO,
        );
        let resolver = SchemaResolver::new(vec![source.clone()], 2);
        let deadline = Instant::now() + Duration::from_secs(5);
        for i in 0..5 {
            resolver.resolve([SchemaRef::Confluent(i)], deadline).await;
        }
        assert_eq!(resolver.cache.lock().unwrap().entries.len(), 2);
        resolver.resolve([SchemaRef::Confluent(4)], deadline).await;
        assert_eq!(source.calls.load(Ordering::SeqCst), 5, "the newest is still cached");
        resolver.resolve([SchemaRef::Confluent(0)], deadline).await;
        assert_eq!(source.calls.load(Ordering::SeqCst), 6, "the oldest was evicted");
    }

    #[tokio::test]
    async fn a_batch_of_junk_that_looks_framed_asks_for_a_bounded_number_of_ids() {
        let source = mock(0);
        let resolver = SchemaResolver::new(vec![source.clone()], 1_000);
        let ids = (0..500).map(SchemaRef::Confluent);
        let schemas = resolver.resolve(ids, Instant::now() + Duration::from_secs(30)).await;
        assert_eq!(source.calls.load(Ordering::SeqCst), MAX_IDS_PER_BATCH);
        let Some(Resolution::Unknown(why)) = schemas.get(&SchemaRef::Confluent(499)) else {
            panic!()
        };
        assert!(why.contains("not looked up"), "{why}");
        assert!(matches!(
            schemas.get(&SchemaRef::Confluent(1)),
            Some(Resolution::Found(_))
        ));
    }

    #[test]
    fn schema_dirs_read_files_by_id_with_their_imports() {
        let dir = std::env::temp_dir().join(format!("schema-dir-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("common")).unwrap();
        std::fs::write(dir.join("7.avsc"), r#""string""#).unwrap();
        std::fs::write(
            dir.join("common/money.proto"),
            "syntax = \"proto3\"; package common; message Money {}",
        )
        .unwrap();
        std::fs::write(
            dir.join("3e1c4b8a-5d21-4f0e-9a77-102233445566.proto"),
            "syntax = \"proto3\";\nimport \"common/money.proto\";\nimport \"google/protobuf/timestamp.proto\";\nmessage A { common.Money m = 1; }",
        )
        .unwrap();
        let source = SchemaDir::new(&dir);
        assert_eq!(source.read(&SchemaRef::Confluent(7)).unwrap().kind, SchemaKind::Avro);
        let proto = source
            .read(&SchemaRef::parse("3e1c4b8a-5d21-4f0e-9a77-102233445566").unwrap())
            .unwrap();
        assert_eq!(proto.references.len(), 1);
        assert_eq!(proto.references[0].0, "common/money.proto");
        assert!(Schema::compile(&proto).is_ok());
        let Err(FetchError::Unknown(why)) = source.read(&SchemaRef::Confluent(8)) else {
            panic!()
        };
        assert!(why.contains("8.avsc"), "{why}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An HTTP test double of a Confluent-compatible registry (no such registry installs here): answers each
    /// request with the next canned `(status, body)` and records the request line and headers.
    async fn confluent_double(answers: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            for (status, body) in answers {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut request = vec![0u8; 8192];
                let n = socket.read(&mut request).await.unwrap_or(0);
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&request[..n]).into_owned());
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn the_confluent_client_reads_schemas_with_references_and_auth_from_an_http_test_double() {
        let (url, seen) = confluent_double(vec![
            (
                200,
                r#"{"schemaType": "PROTOBUF", "schema": "syntax = \"proto3\"; import \"money.proto\"; message Order { string order_id = 1; Money total = 2; }", "references": [{"name": "money.proto", "subject": "money value", "version": 3}]}"#,
            ),
            (200, r#"{"subject": "money value", "version": 3, "id": 9, "schemaType": "PROTOBUF", "schema": "syntax = \"proto3\"; message Money { int64 units = 1; }"}"#),
        ])
        .await;
        let registry = ConfluentRegistry::new(&format!("{url}/"), RegistryAuth::basic("key:secret"));
        let raw = registry
            .fetch(&SchemaRef::Confluent(12), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(raw.kind, SchemaKind::Protobuf);
        assert_eq!(raw.references[0].0, "money.proto");
        assert!(Schema::compile(&raw).is_ok());
        let seen = seen.lock().unwrap().clone();
        assert!(seen[0].starts_with("GET /schemas/ids/12 "), "{}", seen[0]);
        assert!(
            seen[1].starts_with("GET /subjects/money%20value/versions/3 "),
            "{}",
            seen[1]
        );
        // key:secret in base64.
        assert!(seen[0].contains("authorization: Basic a2V5OnNlY3JldA=="), "{}", seen[0]);
    }

    #[tokio::test]
    async fn the_confluent_client_tells_unknown_ids_from_outages() {
        let (url, seen) = confluent_double(vec![
            (404, r#"{"error_code": 40403, "message": "Schema not found"}"#),
            (401, r#"{"error_code": 401, "message": "Unauthorized"}"#),
            (503, "{}"),
            (429, "{}"),
            (200, "<html>a proxy's login page</html>"),
            (200, r#"{"schema": "{}", "schemaType": "XML"}"#),
        ])
        .await;
        let registry = ConfluentRegistry::new(&url, Some(RegistryAuth::Bearer("t-1".into())));
        let fetch = || registry.fetch(&SchemaRef::Confluent(5), Duration::from_secs(5));
        assert!(matches!(fetch().await, Err(FetchError::Unknown(_))), "404 is content");
        for what in [
            "refused credentials",
            "5xx",
            "throttling",
            "a body that is not a schema",
        ] {
            assert!(
                matches!(fetch().await, Err(FetchError::Unavailable(_))),
                "{what} is an outage"
            );
        }
        assert!(
            matches!(fetch().await, Err(FetchError::Unknown(_))),
            "an unknown schemaType is content"
        );
        assert!(seen.lock().unwrap()[0]
            .to_lowercase()
            .contains("authorization: bearer t-1"));
        // Nothing listening: an outage.
        let closed = ConfluentRegistry::new("http://127.0.0.1:9", None);
        assert!(matches!(
            closed.fetch(&SchemaRef::Confluent(5), Duration::from_secs(2)).await,
            Err(FetchError::Unavailable(_))
        ));
        assert!(!ConfluentRegistry::new(&url, None).serves(&SchemaRef::Glue([0; 16])));
    }

    #[test]
    fn registry_secrets_read_in_every_documented_shape() {
        let basic = RegistryAuth::Basic {
            user: "key".into(),
            password: "se:cret".into(),
        };
        assert_eq!(RegistryAuth::from_secret("key:se:cret").unwrap(), basic);
        assert_eq!(
            RegistryAuth::from_secret(r#"{"username": "key", "password": "se:cret"}"#).unwrap(),
            basic
        );
        assert_eq!(
            RegistryAuth::from_secret(r#"{"key": "key", "secret": "se:cret"}"#).unwrap(),
            basic
        );
        assert_eq!(
            RegistryAuth::from_secret(r#"{"token": "t-1"}"#).unwrap(),
            RegistryAuth::Bearer("t-1".into())
        );
        for bad in ["no-colon", r#"{"username": "only"}"#, ""] {
            assert!(RegistryAuth::from_secret(bad).is_err(), "{bad}");
        }
        assert!(!format!("{basic:?}").contains("se:cret"));
        assert_eq!(encode_path("orders-value"), "orders-value");
        assert_eq!(encode_path("a/b c"), "a%2Fb%20c");
    }
}
