//! `notifications dev`: the whole pipeline on one machine, no Docker. Kafka (embedded mock cluster, or an
//! existing broker), a moto server (or an existing DynamoDB/S3 endpoint), the table from the shared
//! definition, the local event source mapping driving the ingest handler, and the query API. Runs until
//! Ctrl-C, then stops everything it started.

use std::sync::Arc;
use std::time::Duration;

use shared::config::{IngestConfig, QueryConfig};
use shared::dynamo::DynamoStore;
use tokio::sync::watch;

use esm::{EsmConfig, InProcess, Invoke, LambdaInvoke};
use local_stack::kafka::{self, EmbeddedKafka};
use local_stack::server::LocalServer;

/// The `dev` command's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Use this Kafka instead of the embedded one.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub kafka: Option<String>,
    /// Where the embedded Kafka takes bootstrap connections.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub kafka_listen: String,
    /// Use this DynamoDB/S3 endpoint instead of starting moto (LocalStack: http://127.0.0.1:4566).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint: Option<String>,
    /// The port of the moto server started otherwise.
    #[arg(long, default_value_t = 5000)]
    pub moto_port: u16,
    /// Where the query API listens.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub api_listen: String,
    #[arg(long, default_value = "notifications")]
    pub table: String,
    #[arg(long, default_value = "notification-payloads")]
    pub bucket: String,
    /// Invoke this function through the Lambda Invoke API instead of the handler in-process.
    #[arg(long)]
    pub function_name: Option<String>,
    /// The Lambda API endpoint for --function-name (cargo lambda watch: http://127.0.0.1:9000).
    #[arg(long)]
    pub lambda_endpoint: Option<String>,
    #[command(flatten)]
    pub mapping: MappingArgs,
}

/// The mapping settings `dev` exposes (the bootstrap address is decided by `dev`).
#[derive(Debug, Clone, clap::Args)]
pub struct MappingArgs {
    #[arg(long, default_value = "notification-event-log")]
    pub group_id: String,
    /// Topics to capture, comma-separated; `^` starts a pattern. Default: every topic but internal ones.
    #[arg(long, value_delimiter = ',', default_value = esm::ALL_TOPICS)]
    pub topics: Vec<String>,
    #[arg(long, value_enum, default_value = "TRIM_HORIZON")]
    pub starting_position: esm::StartingPosition,
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    #[arg(long, default_value_t = 500)]
    pub batching_window_ms: u64,
}

fn line(component: &str, text: impl std::fmt::Display) {
    println!("{component:<8} {text}");
}

/// Runs the stack until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    // Kafka.
    let mut _embedded = None;
    let mut _forwarder = None;
    let bootstrap = match &args.kafka {
        Some(bootstrap) => {
            line("kafka", format!("existing broker at {bootstrap}"));
            bootstrap.clone()
        }
        None => {
            let cluster = EmbeddedKafka::start(1)?;
            let forwarder = kafka::forward(&args.kafka_listen, cluster.bootstrap_servers().to_owned()).await?;
            line(
                "kafka",
                format!("embedded mock cluster, bootstrap {}", args.kafka_listen),
            );
            _forwarder = Some(forwarder);
            _embedded = Some(cluster);
            args.kafka_listen.clone()
        }
    };

    // DynamoDB and S3.
    let mut _moto = None;
    let endpoint = match &args.endpoint {
        Some(endpoint) => {
            line("dynamodb", format!("existing endpoint {endpoint}"));
            endpoint.clone()
        }
        None => {
            let server = tokio::task::spawn_blocking({
                let port = args.moto_port;
                move || LocalServer::moto(port)
            })
            .await??;
            line(
                "dynamodb",
                format!("moto server at {} (DynamoDB and S3)", server.endpoint),
            );
            let endpoint = server.endpoint.clone();
            _moto = Some(server);
            endpoint
        }
    };
    let aws = local_stack::aws::local_config(&endpoint);
    local_stack::aws::ensure_table_and_bucket(&aws, &args.table, &args.bucket).await?;
    line(
        "table",
        format!(
            "{} with indexes by_order, by_correlation, by_customer; bucket {}",
            args.table, args.bucket
        ),
    );

    // The mapping and the function it invokes.
    let mut config = EsmConfig::new(&bootstrap);
    config.group_id = args.mapping.group_id.clone();
    config.topics = args.mapping.topics.clone();
    config.starting_position = args.mapping.starting_position;
    config.batch_size = args.mapping.batch_size;
    config.batching_window_ms = args.mapping.batching_window_ms;
    let invoker: Arc<dyn Invoke> = match &args.function_name {
        Some(function) => {
            let mut lambda = aws_sdk_lambda::config::Builder::from(&aws);
            if let Some(url) = &args.lambda_endpoint {
                lambda = lambda.endpoint_url(url);
            }
            line("ingest", format!("function {function} through the Lambda Invoke API"));
            Arc::new(LambdaInvoke {
                client: aws_sdk_lambda::Client::from_conf(lambda.build()),
                function: function.clone(),
            })
        }
        None => {
            let ingest_config = IngestConfig::from_lookup(&|name| match name {
                "TABLE_NAME" => Some(args.table.clone()),
                "PAYLOAD_BUCKET" => Some(args.bucket.clone()),
                other => std::env::var(other).ok(),
            })?;
            let store = DynamoStore::for_ingest(&shared::dynamo::ingest_sdk_config(aws.clone()), &ingest_config)?;
            line("ingest", "handler in-process");
            let schema_config = ingest_config.schemas.clone();
            Arc::new(InProcess {
                ingest: Arc::new(
                    ingest::handler::Ingest::new(Arc::new(store), ingest_config)
                        .with_schemas(Arc::new(ingest::schemas::resolver(&schema_config, &aws).await?)),
                ),
                timeout: Duration::from_secs(60),
            })
        }
    };
    let (stop, stopping) = watch::channel(false);
    let mapping = {
        let config = config.clone();
        let invoker = invoker.clone();
        tokio::spawn(async move {
            let report = |p: &esm::Progress| {
                tracing::debug!(batches = p.batches, records = p.records, "mapping progress");
            };
            esm::run(&config, invoker.as_ref(), stopping, &report).await
        })
    };
    line(
        "mapping",
        format!(
            "group {}, topics {}, {} records / {} ms per batch, from {}",
            config.group_id,
            config.topics.join(","),
            config.batch_size,
            config.batching_window_ms,
            clap::ValueEnum::to_possible_value(&config.starting_position)
                .map(|value| value.get_name().to_owned())
                .unwrap_or_default()
        ),
    );

    // The query API.
    let query_config = QueryConfig::from_lookup(&|name| match name {
        "TABLE_NAME" => Some(args.table.clone()),
        other => std::env::var(other).ok(),
    })?;
    let store = DynamoStore::new(&aws, args.table.clone())?;
    let cursors = query::cursor_signer(&query_config, &aws)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let app = query::app(cursors, Arc::new(store));
    let listener = tokio::net::TcpListener::bind(&args.api_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.api_listen))?;
    let mut api_stop = stop.subscribe();
    let api = tokio::spawn(async move {
        query::serve::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = api_stop.wait_for(|stop| *stop).await;
            })
            .await
    });
    line(
        "api",
        format!(
            "http://{}  (GET /health, /search?q=..., /notifications?order_id=..., /openapi.json)",
            args.api_listen
        ),
    );
    println!(
        "ready: send events with `cargo run -q --bin notifications -- produce --count 100 --bootstrap-servers {bootstrap}`, \
         then curl 'http://{0}/notifications?order_id=ord-1-000001' or open the console at http://{0}/console/",
        args.api_listen
    );

    local_stack::shutdown_signal().await;
    println!("stopping ...");
    let _ = stop.send(true);
    match mapping.await {
        Ok(Ok(progress)) => line(
            "mapping",
            format!(
                "stopped after {} records in {} batches",
                progress.records, progress.batches
            ),
        ),
        Ok(Err(err)) => line("mapping", format!("stopped with an error: {err:#}")),
        Err(err) => line("mapping", format!("stopped: {err}")),
    }
    let _ = api.await;
    if let Some(forwarder) = _forwarder {
        forwarder.abort();
    }
    drop(_embedded);
    drop(_moto);
    println!("stopped");
    Ok(())
}
