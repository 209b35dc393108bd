//! `notifications normalize`: shows the record one message becomes, for users tuning their producers.

use std::io::Read;

use chrono::Utc;
use shared::model::KafkaMessage;
use shared::normalize::{self, Context, Schemas, TopicServiceMap};

/// The schemas of a framed value or key, from the sources the arguments name.
fn resolve(args: &NormalizeArgs, parts: [Option<&[u8]>; 2]) -> anyhow::Result<Schemas> {
    let ids: Vec<_> = parts
        .into_iter()
        .flatten()
        .filter_map(shared::schema::schema_ref)
        .collect();
    if ids.is_empty() {
        return Ok(Schemas::default());
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut config = shared::config::SchemaConfig::from_lookup(&|name| std::env::var(name).ok())?;
        config.dir = args.schema_dir.clone();
        config.registry_url = args.schema_registry_url.clone();
        let glue = if args.glue {
            Some(aws_sdk_glue::Client::new(&aws_config::load_from_env().await))
        } else {
            None
        };
        let resolver = shared::schema::registry::resolver_for(&config, None, glue);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        Ok(resolver.resolve(ids, deadline).await)
    })
}

/// The message to normalize, as given on the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct NormalizeArgs {
    /// The topic the message was published to.
    #[arg(long)]
    pub topic: String,
    /// The record key (absent when not given).
    #[arg(long)]
    pub key: Option<String>,
    /// A header, NAME=VALUE; repeat for more (repeated names are kept).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub partition: i64,
    #[arg(long, default_value_t = 0)]
    pub offset: i64,
    /// The Kafka timestamp in epoch milliseconds (default: now).
    #[arg(long)]
    pub timestamp: Option<i64>,
    /// Treat the message as a tombstone (null value) and read nothing from standard input.
    #[arg(long)]
    pub tombstone: bool,
    /// Topic-to-service map, as TOPIC_SERVICE_MAP takes it (`orders=order-service,pay.*=payments`).
    #[arg(long, env = "TOPIC_SERVICE_MAP", default_value = "")]
    pub service_map: String,
    /// A directory of schema files (`{id}.avsc`, `{id}.proto`, `{id}.json`) for registry-framed values.
    #[arg(long, env = "SCHEMA_DIR")]
    pub schema_dir: Option<std::path::PathBuf>,
    /// A Confluent-compatible schema registry (`SCHEMA_REGISTRY_BASIC_AUTH` or `..._BEARER_TOKEN` for auth).
    #[arg(long, env = "SCHEMA_REGISTRY_URL")]
    pub schema_registry_url: Option<String>,
    /// Ask AWS Glue Schema Registry for Glue-framed values' schemas, through the standard endpoint settings
    /// (`AWS_ENDPOINT_URL` for moto: `make dev` keeps one at http://127.0.0.1:5000).
    #[arg(long)]
    pub glue: bool,
}

/// Builds the record for `args` and the value bytes, as JSON text.
pub fn normalize_to_json(args: &NormalizeArgs, value: Option<Vec<u8>>, schemas: &Schemas) -> anyhow::Result<String> {
    let mut headers = Vec::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--header {header:?} is not NAME=VALUE"))?;
        headers.push((name.to_owned(), value.as_bytes().to_vec()));
    }
    let topic_services =
        TopicServiceMap::parse(&args.service_map).map_err(|e| anyhow::anyhow!("--service-map: {e}"))?;
    let now = Utc::now();
    let message = KafkaMessage {
        topic: args.topic.as_str().into(),
        partition: args.partition,
        offset: Some(args.offset),
        timestamp: Some(args.timestamp.unwrap_or_else(|| now.timestamp_millis())),
        timestamp_type: Some("CREATE_TIME".into()),
        key: args.key.as_ref().map(|k| k.as_bytes().to_vec()),
        value,
        headers,
        warnings: Vec::new(),
        fingerprint: String::new(),
    };
    let notification = normalize::normalize(
        &message,
        &Context {
            received_at: now,
            topic_services: &topic_services,
            schemas,
        },
    );
    Ok(serde_json::to_string_pretty(&notification.view())?)
}

/// Runs the command: reads the value from standard input and prints the record.
pub fn run(args: &NormalizeArgs) -> anyhow::Result<()> {
    let value = if args.tombstone {
        None
    } else {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes)?;
        Some(bytes)
    };
    let schemas = resolve(args, [value.as_deref(), args.key.as_deref().map(str::as_bytes)])?;
    println!("{}", normalize_to_json(args, value, &schemas)?);
    Ok(())
}
