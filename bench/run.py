#!/usr/bin/env python3
"""`make bench`: the ingest function against its Python peer, side by side, on one full trigger batch.

Steps: set up the virtualenvs (`.venv` with moto, `.venv-bench` with Powertools and boto3, both through
scripts/venv.sh), build `ingest-file` in release mode, start moto on a free local port, write the event
(bench/events.py: 10,000 records, just under 6 MB), then for each side and run: a fresh table (created from
the project's table definition by `ingest-file --create-table`), the side run as a child process on the
event file, and its resource use read from wait4(2):

- CPU per record: user + system CPU of the run, less that of a run that stops when ready (`--check`: imports,
  configuration, SDK clients), over the records. Start-up is reported on its own line.
- wall: from spawn to exit (DynamoDB here is moto, a Python server on the same 2 cores: both sides wait on it).
- peak RSS: ru_maxrss of the child.
- start to ready: from spawn to the child's `ready unix_ns=N` line.

Every table must then hold all 10,000 items, and a sample of records must agree field by field between the
two sides. Prints the table, the targets, then one ratio line per figure, the last being
`ratio cpu_per_record python/rust = N`.

The same again on a batch of Confluent-framed Avro values (`--case avro`; bench/events.py `write_avro_event`):
ours finds the schema by the id in each value's framing, in SCHEMA_DIR; the peer is given the same schema
(Powertools' `SchemaConfig(value_schema_type="AVRO", value_schema_wire_format="CONFLUENT")`). Its ratio lines
end in `_avro`: `ratio cpu_per_record_avro python/rust = N`.

    python3 bench/run.py [--runs 3] [--records 10000] [--case all|json|avro]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".venv-bench"
MOTO_VENV = ROOT / ".venv"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_environment() -> None:
    """Creates the virtualenvs (once) and re-runs this script inside the bench one, where boto3 is."""
    if os.path.realpath(sys.prefix) == os.path.realpath(BENCH_VENV):
        return
    for venv, requirements in ((MOTO_VENV, "localstack/requirements.txt"), (BENCH_VENV, "bench/requirements.txt")):
        subprocess.run([str(ROOT / "scripts/venv.sh"), str(venv), requirements], cwd=ROOT, check=True)
    python = BENCH_VENV / "bin/python"
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def build_rust() -> Path:
    log("building ingest-file (release) ...")
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "ingest", "--bin", "ingest-file"], cwd=ROOT, check=True)
    metadata = json.loads(
        subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT, check=True,
                       capture_output=True).stdout
    )
    return Path(metadata["target_directory"]) / "release" / "ingest-file"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """moto_server from .venv on a free local port, stopped on exit."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(MOTO_VENV / "bin/moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"moto_server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def child_env(endpoint: str, table: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUST_LOG"))}
    env.update(
        TABLE_NAME=table,
        AWS_ENDPOINT_URL=endpoint,
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


# Children are started by this small launcher, not by the driver: Linux carries the RSS high-water mark of the
# process that forks a child into the child's ru_maxrss, and the driver (boto3, the parsed event) is larger than
# the Rust side's whole peak. The launcher imports nothing but what it needs (about 10 MB).
LAUNCHER = r"""
import json, os, sys, time
for line in sys.stdin:
    job = json.loads(line)
    os.chdir(job["cwd"])
    write = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, job["stdout"], write, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, job["stderr"], write, 0o644),
    ]
    spawned_ns = time.time_ns()
    started = time.monotonic()
    pid = os.posix_spawnp(job["argv"][0], job["argv"], job["env"], file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - started
    print(json.dumps({"spawned_ns": spawned_ns, "wall": wall, "status": os.waitstatus_to_exitcode(status),
                      "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss}), flush=True)
"""


class Launcher:
    """Runs children and measures them through wait4(2), from a process of its own (see LAUNCHER)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-S", "-E", "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def run(self, command: list[str], env: dict, workdir: Path, name: str) -> dict:
        out_path, err_path = workdir / f"{name}.out", workdir / f"{name}.err"
        job = {"argv": command, "env": env, "cwd": str(ROOT), "stdout": str(out_path), "stderr": str(err_path)}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        measured = json.loads(self.process.stdout.readline())
        stderr = err_path.read_text(errors="replace")
        ready = next((line for line in stderr.splitlines() if line.startswith("ready unix_ns=")), None)
        if measured["status"] != 0 or ready is None:
            raise SystemExit(f"{name} failed (exit {measured['status']}):\n{stderr[-4000:]}")
        return {
            "cpu": measured["cpu"],
            "wall": measured["wall"],
            "rss_mb": measured["maxrss_kb"] / 1024,
            "ready": (int(ready.split("=", 1)[1]) - measured["spawned_ns"]) / 1e9,
            "stdout": out_path.read_text(),
        }

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def count_items(client, table: str) -> int:
    count, start = 0, None
    while True:
        page = client.scan(TableName=table, Select="COUNT", **({"ExclusiveStartKey": start} if start else {}))
        count += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return count


COMPARED = ("event_type", "correlation_id", "order_id", "customer_id", "source_service", "event_id", "occurred_at",
            "partition", "offset", "kafka_timestamp", "key", "payload", "payload_sha256", "order_key",
            "correlation_key", "customer_key", "event_sk")


def compare_sides(client, tables: dict, ids: list[str]) -> tuple[int, dict]:
    """How many sampled records the two sides stored alike, and which fields differed how often."""
    got = {}
    for side, table in tables.items():
        items = {}
        for i in range(0, len(ids), 100):
            keys = [{"id": {"S": record_id}} for record_id in ids[i : i + 100]]
            response = client.batch_get_item(RequestItems={table: {"Keys": keys}})
            for item in response["Responses"][table]:
                items[item["id"]["S"]] = item
        got[side] = items
    same, differing = 0, {}
    for record_id in ids:
        a, b = got["rust"].get(record_id, {}), got["python"].get(record_id, {})
        fields = [f for f in COMPARED if a.get(f) != b.get(f)]
        for f in fields:
            differing[f] = differing.get(f, 0) + 1
        same += not fields and bool(a)
    return same, differing


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="full runs per side (default 3)")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--case", choices=("all", "json", "avro"), default="all",
                        help="the JSON batch, the Avro batch, or both (default)")
    parser.add_argument("--only-array", action="store_true",
                        help="run only the 4 MB number-array case (ours), not the comparison with the peer")
    args = parser.parse_args()
    ensure_environment()

    import boto3  # noqa: PLC0415 (only inside the bench virtualenv)

    sys.dont_write_bytecode = True
    sys.path.insert(0, str(ROOT / "bench"))
    import events  # noqa: PLC0415

    rust_bin = build_rust()
    workdir = Path(tempfile.mkdtemp(prefix="notifications-bench-"))
    if args.only_array:
        return number_array_case(rust_bin, workdir, events, boto3)
    print(f"machine: {machine()}")
    failed = 0
    for case in ("json", "avro") if args.case == "all" else (args.case,):
        failed |= compare_case(case, rust_bin, workdir, events, boto3, args)
    return failed | number_array_case(rust_bin, workdir, events, boto3)


def write_case_event(case: str, workdir: Path, events, records: int) -> tuple[Path, int, dict]:
    """The case's event file, its size, and the extra environment both sides need to read it."""
    event_path = workdir / f"event-{case}.json"
    if case == "json":
        return event_path, events.write_event(str(event_path), records), {}
    schemas = workdir / "schemas"
    schemas.mkdir(exist_ok=True)
    schema_file = schemas / f"{events.AVRO_SCHEMA_ID}.avsc"
    schema_file.write_text(json.dumps(events.AVRO_SCHEMA))
    size = events.write_avro_event(str(event_path), records)
    # Ours reads the schema from SCHEMA_DIR by the id in each value's framing; the peer is given the schema.
    return event_path, size, {"SCHEMA_DIR": str(schemas), "PEER_AVRO_SCHEMA": str(schema_file)}


def compare_case(case: str, rust_bin: Path, workdir: Path, events, boto3, args) -> int:
    """Both sides on one event file, `args.runs` times each; prints the table and the ratio lines."""
    event_path, size, extra_env = write_case_event(case, workdir, events, args.records)
    log(f"{case} event: {event_path} ({args.records} records, {size} bytes)")
    event = json.loads(event_path.read_bytes())
    all_ids = [f"{r['topic']}:{r['partition']}:{r['offset']}" for group in event["records"].values() for r in group]
    del event

    commands = {
        "rust": [str(rust_bin)],
        "python": [str(BENCH_VENV / "bin/python"), str(ROOT / "bench/peer.py")],
    }
    moto = Moto()
    launcher = Launcher()
    try:
        client = boto3.client("dynamodb", endpoint_url=moto.endpoint, region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
        suffix = f"{random.getrandbits(32):08x}"
        results = {side: {"full": [], "check": [], "stored": []} for side in commands}
        for side, command in commands.items():
            for i in range(3):
                env = child_env(moto.endpoint, f"bench-check-{suffix}") | extra_env
                results[side]["check"].append(
                    launcher.run(command + ["--check"], env, workdir, f"{case}-{side}-check-{i}"))
        sample = random.Random(1).sample(all_ids, min(200, len(all_ids)))
        agreement = None
        for run in range(args.runs):
            order = list(commands) if run % 2 == 0 else list(reversed(commands))
            tables = {}
            for side in order:
                table = f"bench-{case}-{side}-{run}-{suffix}"
                env = child_env(moto.endpoint, table) | extra_env
                subprocess.run([str(rust_bin), "--create-table", "--check"], env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                log(f"{case} run {run + 1}/{args.runs}: {side} ...")
                result = launcher.run(commands[side] + [str(event_path)], env, workdir, f"{case}-{side}-{run}")
                results[side]["full"].append(result)
                results[side]["stored"].append(count_items(client, table))
                log(f"  {side}: CPU {result['cpu']:.2f} s, wall {result['wall']:.2f} s, peak RSS {result['rss_mb']:.1f} MB, "
                    f"ready after {result['ready'] * 1e3:.0f} ms, {results[side]['stored'][-1]} items stored")
                tables[side] = table
            if agreement is None:
                agreement = compare_sides(client, tables, sample)
            for table in tables.values():
                client.delete_table(TableName=table)
    finally:
        launcher.close()
        moto.stop()

    figures = {}
    for side, r in results.items():
        cpu_full = statistics.median(x["cpu"] for x in r["full"])
        cpu_init = statistics.median(x["cpu"] for x in r["check"])
        figures[side] = {
            "cpu_per_record_us": max(cpu_full - cpu_init, 0) / args.records * 1e6,
            "cpu_s": cpu_full,
            "init_cpu_ms": cpu_init * 1e3,
            "wall_s": statistics.median(x["wall"] for x in r["full"]),
            "peak_rss_mb": max(x["rss_mb"] for x in r["full"]),
            "ready_ms": statistics.median(x["ready"] for x in r["full"]) * 1e3,
            "stored": min(r["stored"]),
        }
    labels = {"rust": "rust: ingest-file (release)", "python": "python: Powertools Kafka consumer + boto3"}
    described = {"json": "JSON values", "avro": "Confluent-framed Avro values (one schema; ours reads it from "
                                                "SCHEMA_DIR, the peer is given it: Powertools' AVRO SchemaConfig)"}
    print()
    print(f"make bench, {case}: {args.records} records of {described[case]}, {size} bytes of event JSON, "
          f"{args.runs} runs per side, DynamoDB = moto 5.2.5 on 127.0.0.1")
    print()
    print("| side | CPU per record | process CPU | start-up CPU | wall | peak RSS | start to ready | items stored |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for side, f in figures.items():
        print(f"| {labels[side]} | {f['cpu_per_record_us']:.1f} µs | {f['cpu_s']:.2f} s | {f['init_cpu_ms']:.0f} ms | "
              f"{f['wall_s']:.2f} s | {f['peak_rss_mb']:.1f} MB | {f['ready_ms']:.0f} ms | "
              f"{f['stored']}/{args.records} |")
    print()
    same, differing = agreement
    print(f"same fields on both sides: {same}/{len(sample)} sampled records"
          + (f" (differing: {differing})" if differing else ""))
    rust, python = figures["rust"], figures["python"]
    ok = all(f["stored"] == args.records for f in figures.values()) and same == len(sample)
    cpu_ratio = python["cpu_per_record_us"] / max(rust["cpu_per_record_us"], 1e-9)
    rss_ratio = python["peak_rss_mb"] / rust["peak_rss_mb"]
    print(f"target CPU per record >= 20x lower: {'met' if cpu_ratio >= 20 else 'MISSED'} ({cpu_ratio:.1f}x)")
    print(f"target peak memory <= 1/3 of the peer's: {'met' if rss_ratio >= 3 else 'MISSED'} ({rss_ratio:.1f}x)")
    print(f"target {size / 1e6:.1f} MB batch under 64 MB RSS: {'met' if rust['peak_rss_mb'] < 64 else 'MISSED'} "
          f"({rust['peak_rss_mb']:.1f} MB)")
    if not ok:
        print("FAILED: not every record was stored alike", {s: f["stored"] for s, f in figures.items()})
        return 1
    name = "" if case == "json" else f"_{case}"
    print(f"ratio wall{name} python/rust = {python['wall_s'] / rust['wall_s']:.1f}")
    print(f"ratio peak_rss{name} python/rust = {rss_ratio:.1f}")
    print(f"ratio start_to_ready{name} python/rust = {python['ready_ms'] / rust['ready_ms']:.1f}")
    print(f"ratio cpu_per_record{name} python/rust = {cpu_ratio:.1f}")
    return 0


# The template's smallest IngestMemorySize (MinValue), which the number-array case must fit.
SMALLEST_INGEST_MEMORY_MB = 128


def number_array_case(rust_bin: Path, workdir: Path, events, boto3) -> int:
    """Ours on one record whose value holds a 4 MB array of numbers: its peak RSS must fit the smallest memory
    the template allows. (The peer is not run: without an S3 offload it cannot store a 4 MB record.)"""
    event_path = workdir / "number-array.json"
    value_size = events.write_number_array_event(str(event_path))
    moto = Moto()
    launcher = Launcher()
    try:
        credentials = dict(endpoint_url=moto.endpoint, region_name="us-east-1",
                           aws_access_key_id="bench", aws_secret_access_key="bench")
        bucket = f"bench-payloads-{random.getrandbits(32):08x}"
        boto3.client("s3", **credentials).create_bucket(Bucket=bucket)
        table = f"bench-array-{random.getrandbits(32):08x}"
        env = child_env(moto.endpoint, table) | {"PAYLOAD_BUCKET": bucket}
        subprocess.run([str(rust_bin), "--create-table", "--check"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = launcher.run([str(rust_bin), str(event_path)], env, workdir, "rust-number-array")
        stored = count_items(boto3.client("dynamodb", **credentials), table)
    finally:
        launcher.close()
        moto.stop()
    fits = result["rss_mb"] < SMALLEST_INGEST_MEMORY_MB and stored == 1
    print()
    print(f"4 MB number array: one record, a {value_size:,}-byte value of {value_size // 7:,} numbers: "
          f"peak RSS {result['rss_mb']:.1f} MB, CPU {result['cpu'] * 1e3:.0f} ms, {stored}/1 stored")
    print(f"target 4 MB number array within the smallest IngestMemorySize ({SMALLEST_INGEST_MEMORY_MB} MB): "
          f"{'met' if fits else 'MISSED'} ({result['rss_mb']:.1f} MB)")
    return 0 if stored == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
