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
use ingest::handler::Ingest;
use serde_json::json;
use shared::config::IngestConfig;
use shared::decode;
use shared::store::{DynamoStore, S3Store};

const USAGE: &str = "\
usage: ingest-file [--create-table] [--check] [--budget-seconds N] [EVENT.json | -]

Runs the ingest handler once on a Kafka trigger event (MSK or self-managed Kafka JSON), read from the
file or, with -, from standard input. Configuration comes from the function's environment variables
(TABLE_NAME is required; PAYLOAD_BUCKET, RETENTION_DAYS, ... as in the README) and the AWS SDK's
(AWS_REGION, AWS_ENDPOINT_URL for a local DynamoDB such as moto, credentials).

  --create-table        create TABLE_NAME from the project's table definition first (if it is missing);
                        with no event, only that
  --check               set up (configuration, SDK clients), print the ready line and exit: checks the
                        environment, and is how `make bench` measures start-up on its own
  --budget-seconds N    the invocation's time budget (default 900, Lambda's longest timeout)

Prints `ready unix_ns=N` on standard error when set up, and the response and invocation summary as JSON
on standard output. Exit status: 0 stored, 1 not all stored, 2 usage or configuration error.";

#[derive(Debug)]
struct Args {
    create_table: bool,
    check: bool,
    budget: Duration,
    event: Option<String>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        create_table: false,
        check: false,
        budget: Duration::from_secs(900),
        event: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--create-table" => parsed.create_table = true,
            "--check" => parsed.check = true,
            "--budget-seconds" => {
                let value = args.next().ok_or("--budget-seconds needs a value")?;
                let seconds: u64 = value
                    .parse()
                    .map_err(|_| format!("--budget-seconds {value:?} is not a whole number"))?;
                parsed.budget = Duration::from_secs(seconds);
            }
            "-h" | "--help" => return Err(String::new()),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ if parsed.event.is_some() => return Err(format!("one event file only, got {arg:?} too")),
            _ => parsed.event = Some(arg),
        }
    }
    if parsed.check && parsed.event.is_some() {
        return Err("--check takes no event file".into());
    }
    if parsed.event.is_none() && !parsed.create_table && !parsed.check {
        return Err("no event file given".into());
    }
    Ok(parsed)
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
    match shared::table::create_table(client, name).send().await {
        Ok(_) => Ok(()),
        Err(err) if err.code() == Some("ResourceInUseException") => Ok(()),
        Err(err) => Err(anyhow::Error::new(err).context(format!("creating table {name}"))),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("ingest-file: {problem}\n");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if problem.is_empty() { 0 } else { 2 });
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_target(false)
        .init();
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
    let aws = aws_config::load_from_env().await;
    // As in the function: retries are the writer's job (within the budget), not the SDK's.
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&aws)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    if args.create_table {
        create_table(&dynamodb, &config.table).await?;
    }
    let table = DynamoStore::new(dynamodb, config.table.clone());
    let blobs = S3Store::new(shared::store::s3_client(&aws));
    let ingest = Ingest::new(Arc::new(table), Arc::new(blobs), config);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    eprintln!("ready unix_ns={}", now.as_nanos());

    let Some(path) = args.event.filter(|_| !args.check) else {
        return Ok(ExitCode::SUCCESS);
    };
    let bytes = read_event(&path)?;
    // Decoded record by record while it is parsed, as the `KafkaTrigger` payload type has the Lambda runtime do
    // (`handler::handle_trigger`); the bytes are freed once decoded.
    let decoded = decode::decode_event_bytes(&bytes);
    drop(bytes);
    let outcome = match decoded {
        Ok(event) => ingest.process_decoded(event, args.budget).await,
        Err(err) => Err(err.into()),
    };
    match outcome {
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

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn an_event_file_and_options_are_read() {
        let args = parse(&["--budget-seconds", "30", "--create-table", "event.json"]).unwrap();
        assert!(args.create_table);
        assert_eq!(args.budget, Duration::from_secs(30));
        assert_eq!(args.event.as_deref(), Some("event.json"));
    }

    #[test]
    fn creating_the_table_alone_needs_no_event() {
        let args = parse(&["--create-table"]).unwrap();
        assert_eq!(args.event, None);
        assert!(parse(&["--check"]).unwrap().check);
    }

    #[test]
    fn bad_command_lines_are_refused_with_the_reason() {
        assert!(parse(&[]).unwrap_err().contains("no event file"));
        assert!(parse(&["a.json", "b.json"]).unwrap_err().contains("one event file"));
        assert!(parse(&["--budget-seconds", "soon", "a.json"])
            .unwrap_err()
            .contains("not a whole number"));
        assert!(parse(&["--frobnicate"]).unwrap_err().contains("unknown option"));
        assert!(parse(&["--check", "a.json"]).unwrap_err().contains("no event file"));
        assert_eq!(parse(&["--help"]).unwrap_err(), "");
    }
}
