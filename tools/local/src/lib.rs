//! The local infrastructure that `notifications dev`, the local mapping and the integration tests share: a moto
//! server, the embedded Kafka, SDK configuration for local endpoints, and what every command line tool sets up
//! the same way (logging, shutdown on a signal).

pub mod aws;
pub mod kafka;
pub mod moto;

/// Logging for the command line tools: human-readable, `RUST_LOG` to change the level.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aws_config=warn,aws_smithy_runtime=warn".into()),
        )
        .with_target(false)
        .compact()
        // Logs go to stderr, so that stdout carries only what a command prints for its user (dev's component
        // lines, normalize's record); colours only on a terminal.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
