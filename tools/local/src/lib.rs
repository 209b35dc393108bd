//! The local infrastructure that `notifications dev`, the local mapping and the integration tests share: a moto
//! server, the embedded Kafka, SDK configuration for local endpoints, and what every command line tool sets up
//! the same way (logging, shutdown on a signal).

pub mod aws;
pub mod kafka;
pub mod server;

/// Logging for the command line tools: human-readable lines on standard error, `RUST_LOG` to change the level.
pub fn init_logging() {
    shared::logging::command_line("info,aws_config=warn,aws_smithy_runtime=warn");
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
