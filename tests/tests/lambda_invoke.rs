//! The local event source mapping invoking the ingest function through the Lambda Invoke API, the way it does with
//! `local-esm --function-name ingest --lambda-endpoint URL`: `cargo lambda watch --only-lambda-apis`
//! (scripts/lambda-watch.sh) serves the Invoke and Runtime APIs, the real `ingest` binary runs under that Runtime API,
//! the function stores into a real moto server, and the mapping reads a real broker (the embedded mock cluster, or
//! `KAFKA_BOOTSTRAP_SERVERS`).
//!
//! cargo-lambda comes from PATH or `.venv-infra/bin` (`make infra-lint` installs it from infra/requirements.txt).
//! Without it, each test says it is skipped, and why. cargo-lambda builds nothing: the function is the workspace's
//! binary, brought up to date first by `cargo build --workspace --bin ingest --test lambda_invoke` (`$CARGO`, once
//! per test process). With this test among its targets that build resolves features as `cargo test --workspace
//! --all-targets` does (dev-dependencies included), so after the workspace's test build it compiles nothing but the
//! `ingest` executable itself, once (`cargo test` links none). `cargo lambda watch` building the function (`cargo run
//! -p ingest`) or `cargo build --workspace --bin ingest` alone (no dev-dependencies: aws-sdk-dynamodb, serde_json
//! and others with fewer features) would rebuild the AWS SDKs and most of the tree beside it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use esm::{EsmConfig, Invocation, Invoke, InvokeError, LambdaInvoke};
use integration_tests::fault_proxy::{self, FaultPlan};
use integration_tests::kafka::{Mapping, Recording, TestKafka};
use integration_tests::{free_port, unique, workspace_root, TestEnv};
use notifications_cli::produce::{self, Outgoing};
use serde_json::Value;

/// The function `cargo lambda watch` serves: the binary's name.
const FUNCTION: &str = "ingest";

/// This test target: built along with the binary, it makes cargo resolve features as for `cargo test`.
const THIS_TEST: &str = "lambda_invoke";

fn script() -> PathBuf {
    workspace_root().join("scripts/lambda-watch.sh")
}

/// The cargo-lambda executable, or why there is none.
fn cargo_lambda() -> Result<String, String> {
    let output = Command::new(script())
        .arg("which")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// The workspace's `ingest` binary, up to date: built once per test process (the tests share it).
fn ingest_binary() -> Result<PathBuf, String> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY.get_or_init(build_ingest).clone()
}

/// `cargo build --workspace --bin ingest --test lambda_invoke` (in the environment of the test build, see
/// [`set_by_cargo_for_the_test`]): says what it compiled, and how long it took.
fn build_ingest() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let args = ["build", "--workspace", "--bin", FUNCTION, "--test", THIS_TEST];
    let command = format!("{} {}", cargo.to_string_lossy(), args.join(" "));
    let mut build = Command::new(&cargo);
    build
        .current_dir(workspace_root())
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_for_the_test) {
            build.env_remove(name);
        }
    }
    let started = Instant::now();
    let output = build.output().map_err(|e| format!("cannot run {command}: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("{command}: {}\n{stderr}", output.status));
    }
    let mut binary = None;
    let mut compiled = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let target = &message["target"];
        let name = target["name"].as_str().unwrap_or_default();
        let kind = target["kind"][0].as_str().unwrap_or_default();
        if message["fresh"] == false {
            compiled.push(format!("{name} ({kind})"));
        }
        if name == FUNCTION && kind == "bin" {
            binary = message["executable"].as_str().map(PathBuf::from);
        }
    }
    eprint!("{stderr}");
    let compiled = if compiled.is_empty() {
        "nothing compiled, everything fresh".to_owned()
    } else {
        format!("compiled {}", compiled.join(", "))
    };
    eprintln!("{command}: {compiled}, in {:.1} s", started.elapsed().as_secs_f64());
    binary.ok_or_else(|| format!("{command} reported no {FUNCTION} executable"))
}

/// The variables cargo sets for the test it runs (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, `OUT_DIR`...), not passed
/// on to the build: build scripts declare `rerun-if-env-changed` on some of them (ring on `CARGO_MANIFEST_DIR` and
/// `CARGO_PKG_*`), so a cargo that sees them set, where the test build saw them unset, runs those scripts again and
/// rebuilds ring and everything above it (rustls, the AWS SDK: minutes), and the next build outside a test does it
/// again the other way.
fn set_by_cargo_for_the_test(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_EXE_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

/// `cargo lambda watch --only-lambda-apis` on a local port and the `ingest` binary under its Runtime API; both
/// stopped on drop.
struct LambdaWatch {
    emulator: String,
    function: String,
    url: String,
    log: PathBuf,
}

impl LambdaWatch {
    /// Starts it with the function storing into `env`'s table and bucket through `aws_endpoint`, and waits until
    /// the function answers an invocation.
    async fn start(env: &TestEnv, aws_endpoint: &str, extra_env: &[&str]) -> LambdaWatch {
        let binary = tokio::task::spawn_blocking(ingest_binary)
            .await
            .expect("build task")
            .unwrap_or_else(|e| panic!("the ingest binary: {e}"));
        let port = free_port().expect("a free port");
        let mut command = Command::new(script());
        command.args(["start", "--port", &port.to_string(), "--endpoint", aws_endpoint]);
        command.args(["--table", &env.table, "--bucket", &env.bucket]);
        command.arg("--binary").arg(&binary);
        command.args(["--parent", &std::process::id().to_string()]);
        for variable in extra_env {
            command.args(["--env", variable]);
        }
        let started = Instant::now();
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("start task")
            .expect("run scripts/lambda-watch.sh start");
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        assert!(
            output.status.success(),
            "scripts/lambda-watch.sh start: {}",
            output.status
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let pids: Vec<&str> = stdout.split_whitespace().collect();
        let [emulator, function] = pids[..] else {
            panic!("scripts/lambda-watch.sh start printed {stdout:?}, not two pids");
        };
        let watch = LambdaWatch {
            emulator: emulator.to_owned(),
            function: function.to_owned(),
            url: format!("http://127.0.0.1:{port}"),
            log: workspace_root().join(format!("target/lambda-watch/{port}.log")),
        };
        watch.wait_until_ready(Duration::from_secs(60)).await;
        eprintln!(
            "cargo lambda watch --only-lambda-apis (pid {}) serves {FUNCTION} ({}, pid {}) at {} after {:.1} s",
            watch.emulator,
            binary.display(),
            watch.function,
            watch.url,
            started.elapsed().as_secs_f64()
        );
        watch
    }

    /// Invokes the function with an empty batch (plain HTTP, no SDK): the emulator queues the invocation until the
    /// function asks its Runtime API for the next one, so once it answers 200 the function is ready.
    async fn wait_until_ready(&self, timeout: Duration) {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("http client");
        let response = client
            .post(format!("{}/2015-03-31/functions/{FUNCTION}/invocations", self.url))
            .body(r#"{"eventSource":"aws:kafka","records":{}}"#)
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => {}
            other => panic!(
                "the function never answered through cargo lambda watch: {other:?}\n{}",
                self.log_tail()
            ),
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "last lines of {}:\n{}",
            self.log.display(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }

    /// The mapping's invoker for this function: `esm::lambda_client` as `local-esm --lambda-endpoint` builds it,
    /// from an SDK configuration without region or credentials (as in an environment without any).
    async fn invoker(&self) -> Arc<dyn Invoke> {
        let bare = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        Arc::new(LambdaInvoke {
            client: esm::lambda_client(&bare, Some(&self.url)).await,
            function: FUNCTION.to_owned(),
        })
    }
}

impl Drop for LambdaWatch {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", &self.function, &self.emulator])
            .status();
    }
}

/// Wraps an invoker and keeps the error of every failed invocation, as the mapping got it.
struct Errors {
    inner: Arc<dyn Invoke>,
    seen: Mutex<Vec<String>>,
}

impl Errors {
    fn new(inner: Arc<dyn Invoke>) -> Arc<Errors> {
        Arc::new(Errors {
            inner,
            seen: Mutex::new(Vec::new()),
        })
    }

    fn all(&self) -> Vec<String> {
        self.seen.lock().map(|seen| seen.clone()).unwrap_or_default()
    }

    fn last(&self) -> String {
        let Some(error) = self.all().pop() else {
            return "none".into();
        };
        if error.contains("out of time after 1 attempts") {
            // What the function does when it takes cargo lambda watch's deadline header for an epoch time.
            return format!(
                "{error}\n(the function ran out of time at once: cargo lambda watch sends Lambda-Runtime-Deadline-Ms \
                 600000, which is not an epoch time; ingest's budget_from must not read it as a deadline in 1970)"
            );
        }
        error
    }
}

#[async_trait]
impl Invoke for Errors {
    async fn invoke(&self, event: &Value) -> Result<Invocation, InvokeError> {
        let result = self.inner.invoke(event).await;
        if let Err(error) = &result {
            if let Ok(mut seen) = self.seen.lock() {
                seen.push(error.to_string());
            }
        }
        result
    }
}

fn mapping_config(kafka: &TestKafka, group: &str, topics: &[String]) -> EsmConfig {
    let mut config = EsmConfig::new(&kafka.bootstrap);
    config.group_id = group.to_owned();
    config.topics = topics.to_vec();
    config.batching_window_ms = 200;
    config.max_backoff_ms = 1_000;
    config.metadata_refresh_ms = 1_000;
    config
}

/// Sends `messages` one by one; returns their ids (`topic:partition:offset`).
async fn send(kafka: &TestKafka, messages: &[Outgoing]) -> Vec<String> {
    let producer = produce::producer(&kafka.bootstrap).expect("producer");
    let mut ids = Vec::with_capacity(messages.len());
    for message in messages {
        let (partition, offset) = produce::send(&producer, message).await.expect("sent");
        ids.push(format!("{}:{partition}:{offset}", message.topic));
    }
    ids
}

/// Waits until the table holds `count` items, or fails after `timeout`, or as soon as more than `failures_allowed`
/// invocations failed.
async fn wait_for_items(
    env: &TestEnv,
    count: usize,
    timeout: Duration,
    watch: &LambdaWatch,
    errors: &Errors,
    failures_allowed: usize,
) {
    let until = tokio::time::Instant::now() + timeout;
    loop {
        let stored = env.count_items().await;
        if stored == count {
            return;
        }
        assert!(
            errors.all().len() <= failures_allowed,
            "{stored} of {count} items stored; an invocation failed: {}\n{}",
            errors.last(),
            watch.log_tail()
        );
        assert!(stored < count, "{stored} items stored, more than the {count} produced");
        assert!(
            tokio::time::Instant::now() < until,
            "only {stored} of {count} items stored after {timeout:?}; last failed invocation: {}\n{}",
            errors.last(),
            watch.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The offsets committed for `topics`, summed.
fn committed_total(kafka: &TestKafka, group: &str, topics: &BTreeMap<String, i32>) -> i64 {
    topics
        .iter()
        .map(|(topic, partitions)| kafka.committed(group, topic, *partitions).values().sum::<i64>())
        .sum()
}

fn skip_without_cargo_lambda(test: &str) -> bool {
    match cargo_lambda() {
        Ok(path) => {
            eprintln!("{test}: cargo lambda watch from {path}");
            false
        }
        Err(why) => {
            eprintln!("lambda invoke tier: {test} skipped ({why})");
            true
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_goes_through_the_invoke_api_of_cargo_lambda_watch_and_is_stored_exactly_once() {
    if skip_without_cargo_lambda("invoke API happy path") {
        return;
    }
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    let lambda = LambdaWatch::start(&env, &env.endpoint, &[]).await;

    let suffix = unique("invoke");
    let dir = workspace_root().join("fixtures/messages");
    let fixtures = shared::fixtures::load_messages(&dir).expect("the corpus loads");
    let mut messages: Vec<Outgoing> = fixtures
        .iter()
        .map(|fixture| Outgoing {
            topic: format!("{}-{suffix}", fixture.topic),
            key: fixture.key.clone(),
            value: fixture.value.clone(),
            headers: fixture.headers.clone(),
        })
        .collect();
    let generated_topic = format!("orders-{suffix}");
    messages.extend(produce::generate(400, 51, Some(&generated_topic)));
    let mut topics: BTreeMap<String, i32> = BTreeMap::new();
    for message in &messages {
        topics
            .entry(message.topic.clone())
            .or_insert(if message.topic == generated_topic { 3 } else { 1 });
    }
    for (topic, partitions) in &topics {
        kafka.create_topic(topic, *partitions).await;
    }

    let group = unique("group");
    let errors = Errors::new(lambda.invoker().await);
    let recording = Recording::new(errors.clone());
    let topic_names: Vec<String> = topics.keys().cloned().collect();
    let mut config = mapping_config(&kafka, &group, &topic_names);
    config.batch_size = 100;
    let started = Instant::now();
    let mapping = Mapping::start(config, recording.clone());
    let sent = send(&kafka, &messages).await;
    wait_for_items(&env, sent.len(), Duration::from_secs(180), &lambda, &errors, 0).await;
    let progress = mapping.stop().await;
    eprintln!(
        "{} records ({} fixtures) in {} invocations through the Invoke API in {:.1} s via {}",
        sent.len(),
        fixtures.len(),
        progress.batches,
        started.elapsed().as_secs_f64(),
        kafka.describe()
    );

    assert_eq!(errors.all(), Vec::<String>::new(), "no invocation failed");
    let delivered: Vec<String> = recording
        .delivered()
        .iter()
        .map(|d| format!("{}:{}:{}", d.topic, d.partition, d.offset))
        .collect();
    let unique_delivered: HashSet<&String> = delivered.iter().collect();
    assert_eq!(unique_delivered.len(), delivered.len(), "no record was delivered twice");
    let expected: BTreeSet<String> = sent.iter().cloned().collect();
    assert_eq!(expected.len(), sent.len());
    assert_eq!(
        delivered.iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "every record was delivered"
    );
    let stored = env.stored_ids().await;
    assert_eq!(stored.len(), sent.len(), "exactly one item per record");
    assert_eq!(
        stored.into_iter().collect::<BTreeSet<_>>(),
        expected,
        "the items are the records"
    );
    assert_eq!(
        committed_total(&kafka, &group, &topics),
        sent.len() as i64,
        "every offset is committed"
    );

    // The function's answer came through the Invoke API: one whole flow, found by order id in the table.
    let flow = env
        .scan(|scan| {
            scan.filter_expression("order_id = :o")
                .expression_attribute_values(":o", aws_sdk_dynamodb::types::AttributeValue::S("ord-51-000001".into()))
        })
        .await;
    let events: usize = flow.iter().map(|page| page.items().len()).sum();
    assert_eq!(events, 4, "the four events of order ord-51-000001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_functions_dynamodb_is_down_invocations_fail_offsets_stay_and_everything_is_stored_after() {
    if skip_without_cargo_lambda("invoke API outage") {
        return;
    }
    let kafka = TestKafka::start();
    let env = TestEnv::new().await;
    // The function reaches DynamoDB and S3 through the proxy: stopping it is the outage.
    let mut proxy = fault_proxy::start(&env.endpoint, FaultPlan::NONE).await;
    // cargo lambda watch gives the function no usable deadline (`Lambda-Runtime-Deadline-Ms: 600000`), so it has its
    // default budget (60 s): keeping 57 s in hand leaves it 3 s, as a short Lambda timeout would, so that an
    // invocation fails soon in the outage.
    let lambda = LambdaWatch::start(&env, &proxy.endpoint, &["DEADLINE_MARGIN_MS=57000"]).await;

    let topic = unique("invoke-outage");
    kafka.create_topic(&topic, 2).await;
    let topics = BTreeMap::from([(topic.clone(), 2)]);
    let group = unique("group");
    let errors = Errors::new(lambda.invoker().await);
    let recording = Recording::new(errors.clone());
    let mapping = Mapping::start(
        mapping_config(&kafka, &group, std::slice::from_ref(&topic)),
        recording.clone(),
    );

    let before = send(&kafka, &produce::generate(40, 61, Some(&topic))).await;
    wait_for_items(&env, before.len(), Duration::from_secs(90), &lambda, &errors, 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(committed_total(&kafka, &group, &topics), before.len() as i64);
    assert_eq!(errors.all(), Vec::<String>::new());

    proxy.stop();
    let during = send(&kafka, &produce::generate(60, 62, Some(&topic))).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(120);
    while recording.failed_invocations() < 2 {
        assert!(
            tokio::time::Instant::now() < until,
            "no invocation failed during the outage\n{}",
            lambda.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        committed_total(&kafka, &group, &topics),
        before.len() as i64,
        "nothing is committed while the function fails"
    );
    assert_eq!(env.count_items().await, before.len());
    // What failed is the function, and the mapping got its error through the Invoke API.
    let error = errors.last();
    assert!(
        error.contains(&format!("Invoke {FUNCTION}")) && error.contains("RecordsNotStored"),
        "the function's error: {error}"
    );
    eprintln!("during the outage the mapping got: {error}");

    proxy.resume().await;
    let failed = errors.all().len();
    // The invocation in flight when the proxy came back may still fail.
    wait_for_items(
        &env,
        before.len() + during.len(),
        Duration::from_secs(120),
        &lambda,
        &errors,
        failed + 3,
    )
    .await;
    mapping.stop().await;
    let failed = recording.failed_invocations();
    let expected: BTreeSet<String> = before.iter().chain(&during).cloned().collect();
    let stored = env.stored_ids().await;
    assert_eq!(stored.len(), expected.len(), "exactly one item per record");
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(committed_total(&kafka, &group, &topics), expected.len() as i64);
    eprintln!(
        "outage: {failed} failed invocations, then all {} records stored",
        expected.len()
    );
}
