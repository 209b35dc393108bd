//! Local AWS-compatible servers as child processes: moto (DynamoDB, S3, Secrets Manager, SQS, SNS from the
//! project's virtualenv) and dynalite (DynamoDB on LevelDB, from `localstack/dynalite`), each on 127.0.0.1.
//! A watchdog shell stops the server when the process that started it ends, however that process ends.

use std::path::{Path, PathBuf};
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

/// dynalite's command line script: `DYNALITE_CLI` if set, else `localstack/dynalite/node_modules` (installed
/// by `make dynalite`, which `make test` runs).
pub fn dynalite_cli() -> PathBuf {
    std::env::var_os("DYNALITE_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("localstack/dynalite/node_modules/dynalite/cli.js"))
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

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A running server; stopped on drop.
pub struct LocalServer {
    pub endpoint: String,
    pub port: u16,
    name: &'static str,
    /// The server's command line, without its port: `restart` runs it again.
    command: String,
    child: Option<Child>,
}

impl LocalServer {
    /// Starts moto on `port` (0 for a free one) and waits until it answers. Its data lives in memory only.
    pub fn moto(port: u16) -> anyhow::Result<LocalServer> {
        let moto = moto_executable();
        anyhow::ensure!(
            moto.exists(),
            "{} is missing: run `make venv` (make dev and make test do it for you)",
            moto.display()
        );
        let command = format!("{} -H 127.0.0.1 -p", shell_quote(&moto.to_string_lossy()));
        Self::start("moto_server", command, port)
    }

    /// Starts dynalite on `port` (0 for a free one), keeping its tables in LevelDB under `dir` (in memory when
    /// `None`), and waits until it answers. Tables are ACTIVE as soon as they are created, as a test wants.
    pub fn dynalite(port: u16, dir: Option<&Path>) -> anyhow::Result<LocalServer> {
        let cli = dynalite_cli();
        anyhow::ensure!(
            cli.exists(),
            "{} is missing: run `make dynalite` (make test does it for you)",
            cli.display()
        );
        let mut command = format!(
            "node {} --host 127.0.0.1 --createTableMs 0 --deleteTableMs 0 --updateTableMs 0",
            shell_quote(&cli.to_string_lossy())
        );
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)?;
            command.push_str(&format!(" --path {}", shell_quote(&dir.to_string_lossy())));
        }
        command.push_str(" --port");
        Self::start("dynalite", command, port)
    }

    fn start(name: &'static str, command: String, port: u16) -> anyhow::Result<LocalServer> {
        // A free port can be taken before the server binds it (an outgoing connection's ephemeral port, under
        // load): with no port asked for, another one is tried.
        let attempts = if port == 0 { 5 } else { 1 };
        let mut last_error = None;
        for _ in 0..attempts {
            let port = if port == 0 { free_port()? } else { port };
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                last_error = Some(anyhow::anyhow!(
                    "port {port} is taken: stop what uses it, or choose another port"
                ));
                continue;
            }
            let script = format!(
                "{command} {port} >/dev/null 2>&1 & m=$!; trap 'kill $m 2>/dev/null' EXIT TERM INT; \
                 while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done",
                parent = std::process::id()
            );
            let child = Command::new("bash")
                .arg("-c")
                .arg(script)
                .stdin(Stdio::null())
                .spawn()?;
            let mut server = LocalServer {
                endpoint: format!("http://127.0.0.1:{port}"),
                port,
                name,
                command: command.clone(),
                child: Some(child),
            };
            let until = Instant::now() + Duration::from_secs(60);
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(server);
                }
                // The wrapper ends when the server does: it could not listen (the port was taken meanwhile).
                let exited = server
                    .child
                    .as_mut()
                    .is_none_or(|child| child.try_wait().ok().flatten().is_some());
                if exited || Instant::now() > until {
                    server.stop();
                    last_error = Some(anyhow::anyhow!("{name} did not start on port {port}"));
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("{name} did not start")))
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s) and waits until its port is closed.
    pub fn stop(&mut self) {
        self.end("-TERM");
    }

    /// Kills the server at once (SIGKILL), as a crash would, and waits until its port is closed: whatever it
    /// had acknowledged is only what it had already handed to the operating system.
    pub fn kill(&mut self) {
        self.end("-KILL");
    }

    fn end(&mut self, signal: &str) {
        // Ended already: the port may be another server's by now (`restart` drops the old value after the new
        // server is listening there).
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The wrapper's children: the server process itself, which must be gone when this returns.
        let servers: Vec<String> = Command::new("pgrep")
            .args(["-P", &child.id().to_string()])
            .output()
            .map(|output| {
                String::from_utf8_lossy(&output.stdout)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let _ = Command::new("pkill")
            .args([signal, "-P", &child.id().to_string()])
            .status();
        let _ = child.kill();
        let _ = child.wait();
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
        // A server still busy after 10 s of SIGTERM (seen once with moto under a 100,000-record run) is killed
        // outright: its wrapper is gone, and nothing else would ever stop it.
        for pid in servers.iter().filter(|pid| running(pid)) {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }

    /// Stops the server and starts it again on the same port with the same command line: moto comes back
    /// empty, dynalite with a directory comes back with everything it had written there.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        *self = Self::start(self.name, self.command.clone(), self.port)?;
        Ok(())
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
    }
}
