//! A moto server process (the local DynamoDB- and S3-compatible server), from the project's virtualenv.
//! A watchdog shell stops it when the process that started it ends, however that process ends.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root (where `.venv` is made by `make venv`); this crate is `tools/local`.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `moto_server` executable: `MOTO_SERVER` if set, else the project's `.venv`.
pub fn moto_executable() -> PathBuf {
    std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/moto_server"))
}

/// A free local port (bound and released; the caller binds it next).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A running moto server; stopped on drop.
pub struct MotoServer {
    pub endpoint: String,
    pub port: u16,
    child: Option<Child>,
}

impl MotoServer {
    /// Starts moto on `port` (0 for a free one) and waits until it answers.
    pub fn start(port: u16) -> anyhow::Result<MotoServer> {
        let moto = moto_executable();
        anyhow::ensure!(
            moto.exists(),
            "{} is missing: run `make venv` (make dev and make test do it for you)",
            moto.display()
        );
        let port = if port == 0 { free_port()? } else { port };
        anyhow::ensure!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is taken: stop what uses it, or choose another port"
        );
        let script = format!(
            "'{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; trap 'kill $m 2>/dev/null' EXIT TERM INT; \
             while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done",
            moto.display(),
            parent = std::process::id()
        );
        let child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .spawn()?;
        let mut server = MotoServer {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            child: Some(child),
        };
        if !wait_for_port(port, Duration::from_secs(60)) {
            server.stop();
            anyhow::bail!("moto_server did not start on port {port}");
        }
        Ok(server)
    }

    /// Stops the server and waits until its port is closed.
    pub fn stop(&mut self) {
        let mut servers = Vec::new();
        if let Some(mut child) = self.child.take() {
            // The wrapper's children: the moto process itself, which must be gone when this returns.
            if let Ok(output) = Command::new("pgrep").args(["-P", &child.id().to_string()]).output() {
                servers = String::from_utf8_lossy(&output.stdout)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
            }
            let _ = Command::new("pkill")
                .args(["-TERM", "-P", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        let until = Instant::now() + Duration::from_secs(10);
        // Running: not yet exited (a zombie waiting for its new parent to reap it has exited).
        let running = |pid: &String| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
        };
        while Instant::now() < until
            && (std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() || servers.iter().any(running))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        // A server still busy after 10 s of SIGTERM (seen once under a 100,000-record run) is killed outright:
        // its wrapper is gone, and nothing else would ever stop it.
        for pid in servers.iter().filter(|pid| running(pid)) {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }

    /// Starts a fresh (empty) server on the same port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        *self = MotoServer::start(self.port)?;
        Ok(())
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}
