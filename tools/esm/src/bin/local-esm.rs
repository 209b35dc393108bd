//! `local-esm`: the local event source mapping on its own. Wiring only.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "local-esm",
    version,
    about = "Reads Kafka and invokes the ingest function as AWS's MSK trigger does"
)]
struct Args {
    #[command(flatten)]
    mapping: esm::StandaloneArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    local_stack::init_logging();
    args.mapping.run().await
}
