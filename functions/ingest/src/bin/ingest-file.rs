//! `ingest-file`: invokes the ingest handler locally, once, on a Kafka trigger event read from a file.
//!
//! It is wired exactly like the Lambda function (configuration from the same environment variables, SDK
//! clients from the standard AWS variables, `AWS_ENDPOINT_URL` for a local DynamoDB/S3), so it is the way to
//! replay a captured event, load a table by hand, or measure the function (`make bench`).
//!
//! Standard error gets `ready unix_ns=N` once configuration and clients are set up (before the event is
//! read), then the handler's logs; standard output gets `{"response": ..., "summary": ...}`. The exit status
//! is 1 when the invocation failed (records not stored) and 2 on a usage or configuration error.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use clap::Parser;
use ingest::handler::Ingest;
use serde_json::json;
use shared::config::IngestConfig;
use shared::dynamo::DynamoStore;

/// Runs the ingest handler once on a Kafka trigger event (MSK or self-managed Kafka JSON), read from the file
/// or, with -, from standard input. Configuration comes from the function's environment variables (TABLE_NAME
/// is required; PAYLOAD_BUCKET, RETENTION_DAYS, ... as in the README) and the AWS SDK's (AWS_REGION,
/// AWS_ENDPOINT_URL for a local DynamoDB such as moto, credentials).
///
/// Prints `ready unix_ns=N` on standard error when set up, and the response and invocation summary as JSON on
/// standard output. Exit status: 0 stored, 1 not all stored, 2 usage or configuration error.
#[derive(Debug, Parser)]
#[command(name = "ingest-file", version)]
struct Args {
    /// Create TABLE_NAME from the project's table definition first (if it is missing); with no event, only that.
    #[arg(long)]
    create_table: bool,
    /// Set up (configuration, SDK clients), print the ready line and exit: checks the environment, and is how
    /// `make bench` measures start-up on its own.
    #[arg(long, conflicts_with = "event")]
    check: bool,
    /// The invocation's time budget in seconds (default: Lambda's longest timeout).
    #[arg(long = "budget-seconds", value_name = "N", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    budget_seconds: u64,
    /// The event file, or - for standard input.
    #[arg(value_name = "EVENT.json", required_unless_present_any = ["create_table", "check"])]
    event: Option<String>,
}

impl Args {
    fn budget(&self) -> Duration {
        Duration::from_secs(self.budget_seconds)
    }
}

fn read_event(path: &str) -> anyhow::Result<Vec<u8>> {
    if path == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
        Ok(bytes)
    } else {
        std::fs::read(path).with_context(|| format!("reading {path}"))
    }
}

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    match shared::dynamo::table::create_table(client, name).send().await {
        Ok(_) => Ok(()),
        Err(err) if err.code() == Some("ResourceInUseException") => Ok(()),
        Err(err) => Err(anyhow::Error::new(err).context(format!("creating table {name}"))),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    shared::logging::command_line("warn");
    match run(args).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ingest-file: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = IngestConfig::from_env()?;
    // The function's SDK set-up, so that what `make bench` measures is what runs in Lambda.
    let aws = shared::dynamo::ingest_sdk_config(aws_config::load_from_env().await);
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    if args.create_table {
        create_table(&dynamodb, &config.table).await?;
    }
    let store = DynamoStore::for_ingest(&aws, &config)?;
    let schemas = ingest::schemas::resolver(&config.schemas, &aws).await?;
    let ingest = Ingest::new(Arc::new(store), config).with_schemas(Arc::new(schemas));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    eprintln!("ready unix_ns={}", now.as_nanos());

    let budget = args.budget();
    let Some(path) = args.event.filter(|_| !args.check) else {
        return Ok(ExitCode::SUCCESS);
    };
    let bytes = read_event(&path)?;
    // Decoded by the runtime's decoder; the bytes are freed once decoded.
    match ingest.process(bytes, budget).await {
        Ok((response, summary)) => {
            println!("{}", json!({"response": response, "summary": summary}));
            Ok(if summary.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Err(err) => {
            eprintln!("ingest-file: {err}");
            Ok(ExitCode::from(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("ingest-file").chain(args.iter().copied()))
    }

    #[test]
    fn an_event_file_and_options_are_read() {
        let args = parse(&["--budget-seconds", "30", "--create-table", "event.json"]).unwrap();
        assert!(args.create_table);
        assert_eq!(args.budget(), Duration::from_secs(30));
        assert_eq!(args.event.as_deref(), Some("event.json"));
        assert_eq!(parse(&["-"]).unwrap().budget(), Duration::from_secs(900));
    }

    #[test]
    fn creating_the_table_alone_needs_no_event() {
        let args = parse(&["--create-table"]).unwrap();
        assert_eq!(args.event, None);
        assert!(parse(&["--check"]).unwrap().check);
    }

    #[test]
    fn bad_command_lines_are_refused_with_the_reason() {
        let kind = |args: &[&str]| parse(args).map(|_| ()).map_err(|e| e.kind());
        assert_eq!(kind(&[]), Err(ErrorKind::MissingRequiredArgument));
        assert_eq!(kind(&["a.json", "b.json"]), Err(ErrorKind::UnknownArgument));
        assert_eq!(
            kind(&["--budget-seconds", "soon", "a.json"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["--budget-seconds", "0", "a.json"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(kind(&["--frobnicate"]), Err(ErrorKind::UnknownArgument));
        assert_eq!(kind(&["--check", "a.json"]), Err(ErrorKind::ArgumentConflict));
        assert_eq!(kind(&["--help"]), Err(ErrorKind::DisplayHelp));
        let message = parse(&["--budget-seconds", "soon", "a.json"]).unwrap_err().to_string();
        assert!(message.contains("--budget-seconds"), "{message}");
    }
}
