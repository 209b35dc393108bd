//! The mapping run on its own (`local-esm`, `notifications esm`): what to invoke, the Lambda client of
//! `--function-name`, and the run until a signal.

use std::sync::Arc;
use std::time::Duration;

use crate::{EsmConfig, InProcess, Invoke, LambdaInvoke};

/// Options of the stand-alone mapping: what to invoke.
#[derive(Debug, Clone, clap::Args)]
pub struct InvokeArgs {
    /// Invoke this function through the Lambda Invoke API (cargo lambda watch, LocalStack, AWS) instead of
    /// running the ingest handler in-process (which reads TABLE_NAME etc. from the environment).
    #[arg(long)]
    pub function_name: Option<String>,
    /// The Lambda API endpoint (cargo lambda watch: http://127.0.0.1:9000); default: AWS's.
    #[arg(long)]
    pub lambda_endpoint: Option<String>,
    /// The in-process handler's time budget per invocation, in seconds (a Lambda timeout).
    #[arg(long, default_value_t = 60)]
    pub timeout_seconds: u64,
}

/// The Lambda client of `--function-name`: the environment's region and credentials, and `endpoint` if given.
/// A local Invoke API (`cargo lambda watch`, LocalStack) checks no signature, but the SDK signs every request and
/// cannot without a region and credentials: with an endpoint, missing ones are replaced by a dummy region and
/// dummy credentials (as `notifications dev` uses), instead of every invocation failing to sign.
pub async fn lambda_client(aws: &aws_config::SdkConfig, endpoint: Option<&str>) -> aws_sdk_lambda::Client {
    use aws_sdk_lambda::config::{Credentials, ProvideCredentials, Region};
    // Retries are the mapping's job, with its backoff; an SDK retry of a failed invocation would invoke again.
    let mut lambda =
        aws_sdk_lambda::config::Builder::from(aws).retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(url) = endpoint {
        lambda = lambda.endpoint_url(url);
        if aws.region().is_none() {
            lambda = lambda.region(Region::new("us-east-1"));
        }
        let credentials = match aws.credentials_provider() {
            Some(provider) => provider.provide_credentials().await.map_err(|e| e.to_string()),
            None => Err("no credentials provider".to_owned()),
        };
        if let Err(why) = credentials {
            tracing::info!(%why, "no AWS credentials; signing the Invoke requests to {url} with dummy ones");
            lambda = lambda.credentials_provider(Credentials::new("test", "test", None, None, "local"));
        }
    }
    aws_sdk_lambda::Client::from_conf(lambda.build())
}

/// The stand-alone mapping's command line: what to read, and what to invoke (`local-esm` and `notifications esm`).
#[derive(Debug, Clone, clap::Args)]
pub struct StandaloneArgs {
    #[command(flatten)]
    pub config: EsmConfig,
    #[command(flatten)]
    pub invoke: InvokeArgs,
}

impl StandaloneArgs {
    /// Runs the mapping until Ctrl-C or SIGTERM.
    pub async fn run(self) -> anyhow::Result<()> {
        run_mapping(self.config, self.invoke).await
    }
}

/// Runs the local event source mapping on its own until Ctrl-C or SIGTERM.
pub async fn run_mapping(config: EsmConfig, invoke: InvokeArgs) -> anyhow::Result<()> {
    let aws = aws_config::load_from_env().await;
    let invoker: Arc<dyn Invoke> = match &invoke.function_name {
        Some(function) => Arc::new(LambdaInvoke {
            client: lambda_client(&aws, invoke.lambda_endpoint.as_deref()).await,
            function: function.clone(),
        }),
        None => {
            let ingest_config = shared::config::IngestConfig::from_env()?;
            let schema_config = ingest_config.schemas.clone();
            let store = shared::dynamo::DynamoStore::for_ingest(
                &shared::dynamo::ingest_sdk_config(aws.clone()),
                &ingest_config,
            )?;
            Arc::new(InProcess {
                ingest: Arc::new(
                    ingest::handler::Ingest::new(Arc::new(store), ingest_config)
                        .with_schemas(Arc::new(ingest::schemas::resolver(&schema_config, &aws).await?)),
                ),
                timeout: Duration::from_secs(invoke.timeout_seconds),
            })
        }
    };
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        local_stack::shutdown_signal().await;
        let _ = stop.send(true);
    });
    // A bad destination or filter is a start-up error, said before anything is read.
    config.destination()?;
    config.filters()?;
    config.start_at()?;
    eprintln!(
        "mapping group {} on {} (topics {}) -> {}; retries {}, record age {}, bisect {}, on failure {}",
        config.group_id,
        config.bootstrap_servers,
        config.topics.join(","),
        invoke.function_name.as_deref().unwrap_or("ingest handler in-process"),
        config.retries().map_or("endless".to_owned(), |n| n.to_string()),
        config
            .maximum_record_age()
            .map_or("unlimited".to_owned(), |a| format!("{} s", a.as_secs())),
        config.bisect_batch_on_function_error,
        config.on_failure.as_deref().unwrap_or("discard")
    );
    let progress = crate::run(&config, invoker.as_ref(), stopping, &|p| {
        tracing::debug!(batches = p.batches, records = p.records, "progress");
    })
    .await?;
    eprintln!(
        "stopped after {} records in {} batches: {} failed invocations, {} records sent to the on-failure \
         destination, {} discarded, {} filtered out, {} before the starting time, {} lost to retention before they were read, {} partition assignments",
        progress.records,
        progress.batches,
        progress.failed_invocations,
        progress.sent_to_destination,
        progress.discarded,
        progress.filtered_out,
        progress.before_start,
        progress.lost_to_retention,
        progress.rebalances
    );
    Ok(())
}
