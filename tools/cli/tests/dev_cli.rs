//! `notifications dev`, run as users run it: the built binary on free ports (embedded Kafka, the project's moto,
//! the mapping with the in-process ingest handler, the query API), events sent with `notifications produce`,
//! read back through the HTTP API, a topic created after start captured too, and Ctrl-C (SIGINT) stopping
//! everything it started.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Generous: CI is a loaded 2-core machine, and moto takes seconds to start there.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(90);
/// New topics are picked up within seconds (the mapping refreshes its pattern every 2 s); room for CI.
const NEW_TOPIC_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const MOTO_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings from the environment that would change what `dev` or `produce` do (an existing broker or endpoint
/// instead of the embedded ones, other ingest or query settings, other log levels).
const ENV_REMOVED: &[&str] = &[
    "KAFKA_BOOTSTRAP_SERVERS",
    "AWS_ENDPOINT_URL",
    "TOPIC_SERVICE_MAP",
    "FAILURE_MODE",
    "LOG_PAYLOADS",
    "PAYLOAD_PREFIX",
    "RETENTION_DAYS",
    "CURSOR_SECRET",
    "CURSOR_TTL_HOURS",
    "RUST_LOG",
];

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_notifications"));
    command.args(args);
    for name in ENV_REMOVED {
        command.env_remove(name);
    }
    command
}

/// Three distinct free local ports (all bound at once, then released for the command to bind).
fn free_ports() -> [u16; 3] {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
    [ports[0], ports[1], ports[2]]
}

fn accepts(port: u16) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
}

/// The running `notifications dev`: its output as it comes, and killed (with everything it started, through
/// moto's watchdog) if the test ends before it stopped.
struct Dev {
    child: Child,
    stdout: Receiver<String>,
    /// Everything printed so far, stdout and stderr, shown when the test fails.
    transcript: Arc<Mutex<Vec<String>>>,
}

impl Dev {
    fn start(kafka: &str, api: &str, moto_port: u16) -> Dev {
        let mut child = command(&[
            "dev",
            "--kafka-listen",
            kafka,
            "--api-listen",
            api,
            "--moto-port",
            &moto_port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the notifications binary runs");
        let transcript = Arc::new(Mutex::new(Vec::new()));
        let (lines, stdout) = mpsc::channel();
        let out: ChildStdout = child.stdout.take().expect("stdout is piped");
        let seen = transcript.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                seen.lock().unwrap().push(line.clone());
                let _ = lines.send(line);
            }
        });
        let err = child.stderr.take().expect("stderr is piped");
        let seen = transcript.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                seen.lock().unwrap().push(format!("[stderr] {line}"));
            }
        });
        Dev {
            child,
            stdout,
            transcript,
        }
    }

    /// The stdout lines up to and including the first that starts with `prefix`.
    fn lines_until(&self, prefix: &str, timeout: Duration) -> Vec<String> {
        let until = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with(prefix);
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no {prefix:?} line within {timeout:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("the command ended before a {prefix:?} line"),
            }
        }
    }

    /// The rest of stdout, until it closes (or `timeout`: a process it started that kept stdout open).
    fn remaining_lines(&self, timeout: Duration) -> Vec<String> {
        let until = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            match self
                .stdout
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => return lines,
                Err(RecvTimeoutError::Timeout) => panic!("stdout still open {timeout:?} after the command exited"),
            }
        }
    }

    fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -INT failed: {status}");
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let until = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                return status;
            }
            assert!(Instant::now() < until, "the command did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            if let Ok(transcript) = self.transcript.lock() {
                eprintln!("--- notifications dev printed:\n{}\n---", transcript.join("\n"));
            }
        }
    }
}

/// One `component` line (`{component:<8} text`) among `lines`, which may hold log lines too.
fn component_line<'a>(lines: &'a [String], component: &str) -> &'a str {
    let matching: Vec<&String> = lines
        .iter()
        .filter(|line| {
            line.split_whitespace().next() == Some(component) && line.starts_with(&format!("{component:<8} "))
        })
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "exactly one {component:?} line expected in:\n{}",
        lines.join("\n")
    );
    matching[0]
}

/// A GET over plain HTTP/1.1: (status, body).
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {text:?}"));
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no status"))?;
    let chunked = head
        .lines()
        .any(|h| h.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    if !chunked {
        return Ok((status, body.to_owned()));
    }
    let mut decoded = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or_else(|| invalid("bad chunk"))?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            return Ok((status, decoded));
        }
        decoded.push_str(after.get(..size).ok_or_else(|| invalid("short chunk"))?);
        rest = after.get(size + 2..).ok_or_else(|| invalid("short chunk"))?;
    }
}

/// Polls `/notifications?order_id=ORDER` until it lists `count` items; returns them.
fn wait_for_order(api_port: u16, order: &str, count: usize, timeout: Duration) -> Vec<Value> {
    let until = Instant::now() + timeout;
    let path = format!("/notifications?order_id={order}");
    loop {
        let last = match get(api_port, &path) {
            Ok((200, body)) => {
                let page: Value = serde_json::from_str(&body).expect("the page is JSON");
                let items = page["items"].as_array().expect("the page has items").clone();
                if items.len() >= count {
                    return items;
                }
                format!("200 with {} items: {body}", items.len())
            }
            Ok((status, body)) => format!("{status}: {body}"),
            Err(err) => format!("error: {err}"),
        };
        assert!(
            Instant::now() < until,
            "{count} items of order {order} not listed within {timeout:?}; last answer: {last}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn produce(kafka: &str, args: &[&str]) {
    let mut all = vec!["produce", "--bootstrap-servers", kafka];
    all.extend_from_slice(args);
    let output = command(&all).stdin(Stdio::null()).output().expect("produce runs");
    assert!(
        output.status.success(),
        "produce {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn strings(items: &[Value], field: &str) -> BTreeSet<String> {
    items
        .iter()
        .map(|item| item[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The processes whose command line mentions a moto server on `port` (the server or its watchdog shell).
fn moto_processes(port: u16) -> Vec<String> {
    let needle = format!("-p {port}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains("moto_server") && cmdline.contains(&needle) {
            found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn dev_runs_the_pipeline_on_chosen_ports_until_ctrl_c() {
    let moto = local_stack::server::moto_executable();
    assert!(
        moto.exists(),
        "{} is missing: run `make venv` (make test does it before the suites)",
        moto.display()
    );
    let [kafka_port, api_port, moto_port] = free_ports();
    let kafka = format!("127.0.0.1:{kafka_port}");
    let api = format!("127.0.0.1:{api_port}");
    let started = Instant::now();
    let mut dev = Dev::start(&kafka, &api, moto_port);

    // One line per component, then the ready line.
    let lines = dev.lines_until("ready:", READY_TIMEOUT);
    eprintln!("ready after {:.1}s", started.elapsed().as_secs_f64());
    assert!(component_line(&lines, "kafka").contains(&format!("bootstrap {kafka}")));
    assert!(component_line(&lines, "dynamodb").contains(&format!("moto server at http://127.0.0.1:{moto_port}")));
    assert!(component_line(&lines, "table").contains("notifications with indexes"));
    assert!(component_line(&lines, "ingest").contains("handler in-process"));
    assert!(component_line(&lines, "mapping").contains("group notification-event-log"));
    assert!(component_line(&lines, "api").contains(&format!("http://{api}")));
    assert!(lines.last().unwrap().contains(&format!("http://{api}/notifications")));
    assert!(accepts(moto_port), "moto answers on its port");
    let (status, body) = get(api_port, "/health").expect("the API answers");
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["status"], "ok");

    // Two whole order flows, each across the four services' topics, listed by order id.
    produce(&kafka, &["--count", "8"]);
    let produced = Instant::now();
    for order in ["ord-1-000001", "ord-1-000002"] {
        let items = wait_for_order(api_port, order, 4, CAPTURE_TIMEOUT);
        assert_eq!(items.len(), 4, "{items:?}");
        assert_eq!(
            strings(&items, "source_topic"),
            ["inventory", "orders", "payments", "shipping"].map(String::from).into()
        );
        assert_eq!(
            strings(&items, "event_type"),
            ["InventoryReserved", "OrderCreated", "OrderShipped", "PaymentAuthorized"]
                .map(String::from)
                .into()
        );
        assert_eq!(strings(&items, "order_id"), [order.to_owned()].into());
    }
    eprintln!("8 events listed {:.1}s after produce", produced.elapsed().as_secs_f64());

    // A topic created after start (by its first message) is captured too, within seconds.
    produce(&kafka, &["--count", "1", "--seed", "42", "--topic", "late.arrivals"]);
    let produced = Instant::now();
    let items = wait_for_order(api_port, "ord-42-000001", 1, NEW_TOPIC_TIMEOUT);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["source_topic"], "late.arrivals");
    assert_eq!(items[0]["event_type"], "OrderCreated");
    eprintln!(
        "the new topic's event listed {:.1}s after produce",
        produced.elapsed().as_secs_f64()
    );

    // Ctrl-C: a clean stop with a summary, and nothing left listening or running.
    dev.interrupt();
    let stopping = Instant::now();
    let status = dev.wait(STOP_TIMEOUT);
    eprintln!("stopped {:.1}s after SIGINT", stopping.elapsed().as_secs_f64());
    assert!(status.success(), "exit status {status}");
    let lines = dev.remaining_lines(Duration::from_secs(10));
    assert!(lines.iter().any(|l| l == "stopping ..."), "{lines:?}");
    let summary = component_line(&lines, "mapping");
    let records: u64 = summary
        .strip_prefix("mapping  stopped after ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a summary: {summary:?}"));
    assert!(records >= 9, "all 9 records delivered: {summary:?}");
    assert!(summary.ends_with(" batches"), "{summary:?}");
    assert_eq!(lines.last().map(String::as_str), Some("stopped"), "{lines:?}");
    for (what, port) in [("the API", api_port), ("Kafka", kafka_port), ("moto", moto_port)] {
        assert!(!accepts(port), "{what} still accepts connections on {port}");
    }
    // `dev` waits for moto's port to close, not for its process to end: allow it a moment to finish exiting.
    let exiting = Instant::now();
    loop {
        let left = moto_processes(moto_port);
        if left.is_empty() {
            break;
        }
        assert!(
            exiting.elapsed() < MOTO_EXIT_TIMEOUT,
            "moto processes left running {MOTO_EXIT_TIMEOUT:?} after the command exited: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "moto's processes gone {:.1}s after the command exited",
        exiting.elapsed().as_secs_f64()
    );
}
