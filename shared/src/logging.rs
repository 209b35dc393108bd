//! Logging set-up, once for every binary: JSON lines for the Lambda functions (CloudWatch reads them, the
//! runtime stamps the time), compact human lines on standard error for the command-line tools. `RUST_LOG`
//! changes the level in both.

use tracing_subscriber::EnvFilter;

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into())
}

/// JSON lines on standard output, at INFO unless `RUST_LOG` says otherwise: what the Lambda functions log.
pub fn lambda() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter("info"))
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Compact lines on standard error (so that standard output carries only what a command prints for its user),
/// at `default` unless `RUST_LOG` says otherwise; colours only on a terminal.
pub fn command_line(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(default))
        .with_target(false)
        .compact()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
