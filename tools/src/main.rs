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
    Normalize(tools::normalize_cmd::NormalizeArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Normalize(args) => tools::normalize_cmd::run(&args),
    }
}
