//! `notifications`: the project's command line. Wiring only; each subcommand lives in the library.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "notifications", version, about = "The notification event log's command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the record one message becomes: reads the value from standard input, prints JSON.
    Normalize(notifications_cli::normalize_cmd::NormalizeArgs),
    /// Send generated order-flow events, or the fixture corpus, to Kafka.
    Produce(notifications_cli::produce::ProduceArgs),
    /// Run the whole pipeline locally (Kafka, moto, mapping, ingest, query API) until Ctrl-C.
    Dev(notifications_cli::dev::DevArgs),
    /// Serve the console of a deployed stack on this machine, signing its API calls with your AWS credentials.
    Console(notifications_cli::console_cmd::ConsoleArgs),
    /// Run the local event source mapping alone (also available as the `local-esm` binary).
    Esm(Box<esm::StandaloneArgs>),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    local_stack::init_logging();
    match cli.command {
        Command::Normalize(args) => notifications_cli::normalize_cmd::run(&args),
        Command::Produce(args) => notifications_cli::produce::run(&args).await,
        Command::Dev(args) => notifications_cli::dev::run(args).await,
        Command::Console(args) => notifications_cli::console_cmd::run(args).await,
        Command::Esm(mapping) => mapping.run().await,
    }
}
