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
import shutil
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
DYNALITE_CLI = ROOT / "localstack/dynalite/node_modules/dynalite/cli.js"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_environment() -> None:
    """Creates the virtualenvs (once) and re-runs this script inside the bench one, where boto3 is."""
    if os.path.realpath(sys.prefix) == os.path.realpath(BENCH_VENV):
        return
    for venv, requirements in ((MOTO_VENV, "localstack/requirements.txt"), (BENCH_VENV, "bench/requirements.txt")):
        subprocess.run([str(ROOT / "scripts/venv.sh"), str(venv), requirements], cwd=ROOT, check=True)
    subprocess.run([str(ROOT / "scripts/dynalite.sh")], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
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


def side_commands(rust_bin: Path) -> dict:
    """How each side is run: ours, and the peer in its virtualenv."""
    return {"rust": [str(rust_bin)], "python": [str(BENCH_VENV / "bin/python"), str(ROOT / "bench/peer.py")]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A local DynamoDB endpoint on a free port, stopped on exit: `moto` (moto_server from .venv: a Python server
    that closes every connection, so each request pays a new TCP connection) or `dynalite` (Node, on LevelDB
    in memory: keeps connections alive, as DynamoDB does). Only moto serves S3."""

    VERSIONS = {"moto": "moto 5.2.5", "dynalite": "dynalite 4.0.0"}

    def __init__(self, kind: str = "moto") -> None:
        self.kind = kind
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        if kind == "moto":
            command = [str(MOTO_VENV / "bin/moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        else:
            command = ["node", str(DYNALITE_CLI), "--host", "127.0.0.1", "--port", str(self.port),
                       "--createTableMs", "0", "--deleteTableMs", "0"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"{kind} did not start on port {self.port}")

    def describe(self) -> str:
        return f"{self.VERSIONS[self.kind]} on 127.0.0.1"

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
    return same, differing, got


# Prices, US East (N. Virginia), as published by AWS on its pricing pages (read 2026-12-01):
# Lambda arm64 duration and requests; DynamoDB on-demand write request units (after the 2024-11-01 cut) and
# Standard table-class storage; S3 Standard storage and PUT requests; MSK Connect capacity units (1 vCPU, 4 GiB).
PRICES = {
    "lambda_arm64_gb_second": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "dynamodb_write_unit": 0.625 / 1e6,
    "dynamodb_gb_month": 0.25,
    "s3_gb_month": 0.023,
    "s3_put": 0.005 / 1000,
    "msk_connect_mcu_hour": 0.11,
}
# Below 1,769 MB a function gets that share of one vCPU: CPU-bound work bills about CPU seconds x 1.769 GB.
GB_PER_VCPU = 1.769


def attribute_size(value: dict) -> int:
    """DynamoDB's size of an attribute value in the low-level API's form, by its documented rules."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = v.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + attribute_size(item) for item in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_size(item) for k, item in v.items())
    if kind == "SS":
        return sum(len(x.encode()) for x in v)
    if kind == "BS":
        return sum(len(x) for x in v)
    if kind == "NS":
        return sum(attribute_size({"N": x}) for x in v)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def index_projections(client, table: str) -> list[tuple[list[str], set[str]]]:
    """Each index of the table as created: its key attributes, and what it holds of an item (keys, table key,
    projected attributes)."""
    description = client.describe_table(TableName=table)["Table"]
    table_keys = [k["AttributeName"] for k in description["KeySchema"]]
    indexes = []
    for index in description.get("GlobalSecondaryIndexes", []):
        keys = [k["AttributeName"] for k in index["KeySchema"]]
        projected = set(index["Projection"].get("NonKeyAttributes", [])) | set(keys) | set(table_keys)
        indexes.append((keys, projected))
    return indexes


def storage_per_record(items: list[dict], indexes) -> dict:
    """Mean write units and stored bytes per record over sampled items: the item and each index entry it has,
    each a write unit per started KB, each stored with DynamoDB's 100 bytes of overhead."""
    if not items:
        return {"write_units": 0.0, "stored_bytes": 0.0, "s3_objects": 0.0, "s3_bytes": 0.0}
    units = stored = s3_objects = s3_bytes = 0
    for item in items:
        size = item_size(item)
        units += max(1, -(-size // 1024))
        stored += size + 100
        for keys, projected in indexes:
            if all(k in item for k in keys):
                entry = item_size({k: v for k, v in item.items() if k in projected})
                units += max(1, -(-entry // 1024))
                stored += entry + 100
        if "payload_s3" in item:
            s3_objects += 1
            s3_bytes += int(item.get("payload_size", {}).get("N", "0"))
    n = len(items)
    return {"write_units": units / n, "stored_bytes": stored / n, "s3_objects": s3_objects / n, "s3_bytes": s3_bytes / n}


def print_costs(priced: tuple, sides: dict, connect_rate: float) -> None:
    """The price of a million records for each side and for a Kafka Connect sink, from the measured figures."""
    p = PRICES
    rows = {}
    for side, m in sides.items():
        lambda_compute = m["cpu_per_record_s"] * GB_PER_VCPU * p["lambda_arm64_gb_second"] * 1e6
        lambda_requests = p["lambda_request"] * 1e6 / m["records_per_invocation"]
        rows[side] = {
            "compute": lambda_compute + lambda_requests,
            "writes": m["write_units"] * p["dynamodb_write_unit"] * 1e6,
            "storage": m["stored_bytes"] * 1e6 / 1e9 * p["dynamodb_gb_month"],
            "s3": m["s3_objects"] * 1e6 * p["s3_put"] + m["s3_bytes"] * 1e6 / 1e9 * p["s3_gb_month"],
            "write_units": m["write_units"],
            "stored_bytes": m["stored_bytes"],
        }
    # A Kafka Connect DynamoDB sink on the smallest MSK Connect capacity (one worker of 1 MCU) runs all month
    # whatever the traffic; its items are taken to be ours (one per record, the same attributes and indexes).
    connect_hourly = p["msk_connect_mcu_hour"] * 1
    rows["connect"] = dict(rows["rust"], compute=connect_hourly / (connect_rate * 3600) * 1e6)
    labels = {"rust": "ours (Rust ingest Lambda)", "python": "peer (Python ingest Lambda)",
              "connect": f"Kafka Connect sink, 1 MCU, at {connect_rate:g} records/s"}
    case, kind = priced
    print()
    print(f"price of a million records (US East, arm64 Lambda; figures from the {case} batch on {kind}; "
          "storage for one month):")
    print()
    print("| | compute | DynamoDB writes | write units per record | DynamoDB storage | bytes stored per record | S3 | total |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for side, r in rows.items():
        total = r["compute"] + r["writes"] + r["storage"] + r["s3"]
        r["total"] = total
        print(f"| {labels[side]} | ${r['compute']:.4f} | ${r['writes']:.4f} | {r['write_units']:.2f} | "
              f"${r['storage']:.4f} | {r['stored_bytes']:,.0f} | ${r['s3']:.4f} | ${total:.4f} |")
    print(f"cost_per_million_records rust = {rows['rust']['total']:.4f}")
    print(f"cost_per_million_records python = {rows['python']['total']:.4f}")
    print(f"cost_per_million_records connect = {rows['connect']['total']:.4f}")


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
    parser.add_argument("--endpoint", choices=("both", "moto", "dynalite"), default="both",
                        help="the DynamoDB endpoint(s) to run against (default both)")
    parser.add_argument("--latency-ms", type=float, default=10.0,
                        help="the DynamoDB latency the throughput case runs at (default 10)")
    parser.add_argument("--connect-records-per-second", type=float, default=100.0,
                        help="the steady rate the Kafka Connect sink's price is worked out at (default 100)")
    parser.add_argument("--instruction-records", type=int, default=1_000,
                        help="records in the batch both sides run under callgrind (default 1000)")
    parser.add_argument("--only", choices=("scaling",), help="run only this part")
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
    if args.only == "scaling":
        return scaling_case(rust_bin, workdir, events, boto3, args)
    failed = 0
    kinds = ("moto", "dynalite") if args.endpoint == "both" else (args.endpoint,)
    costs = {}
    for case in ("json", "avro") if args.case == "all" else (args.case,):
        for kind in kinds:
            failed |= compare_case(case, kind, rust_bin, workdir, events, boto3, args, costs)
    # The price from the JSON batch against the endpoint that keeps connections alive, as DynamoDB does.
    priced = next((key for key in (("json", "dynalite"), ("json", "moto")) if key in costs), None) or next(iter(costs), None)
    if priced:
        print_costs(priced, costs[priced], args.connect_records_per_second)
    failed |= throughput_case(rust_bin, workdir, events, boto3, args)
    failed |= scaling_case(rust_bin, workdir, events, boto3, args)
    failed |= instructions_case(rust_bin, workdir, events, args.instruction_records)
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


def compare_case(case: str, kind: str, rust_bin: Path, workdir: Path, events, boto3, args, costs: dict) -> int:
    """Both sides on one event file against one kind of endpoint, `args.runs` times each; prints the table and the
    ratio lines."""
    event_path, size, extra_env = write_case_event(case, workdir, events, args.records)
    log(f"{case} event: {event_path} ({args.records} records, {size} bytes)")
    event = json.loads(event_path.read_bytes())
    all_ids = [f"{r['topic']}:{r['partition']}:{r['offset']}" for group in event["records"].values() for r in group]
    del event

    commands = side_commands(rust_bin)
    server = Server(kind)
    launcher = Launcher()
    try:
        client = boto3.client("dynamodb", endpoint_url=server.endpoint, region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
        suffix = f"{random.getrandbits(32):08x}"
        results = {side: {"full": [], "check": [], "stored": []} for side in commands}
        for side, command in commands.items():
            for i in range(3):
                env = child_env(server.endpoint, f"bench-check-{suffix}") | extra_env
                results[side]["check"].append(
                    launcher.run(command + ["--check"], env, workdir, f"{case}-{kind}-{side}-check-{i}"))
        sample = random.Random(1).sample(all_ids, min(200, len(all_ids)))
        agreement = None
        for run in range(args.runs):
            order = list(commands) if run % 2 == 0 else list(reversed(commands))
            tables = {}
            for side in order:
                table = f"bench-{case}-{kind}-{side}-{run}-{suffix}"
                env = child_env(server.endpoint, table) | extra_env
                subprocess.run([str(rust_bin), "--create-table", "--check"], env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                log(f"{case} on {kind}, run {run + 1}/{args.runs}: {side} ...")
                result = launcher.run(commands[side] + [str(event_path)], env, workdir, f"{case}-{kind}-{side}-{run}")
                results[side]["full"].append(result)
                results[side]["stored"].append(count_items(client, table))
                log(f"  {side}: CPU {result['cpu']:.2f} s, wall {result['wall']:.2f} s, peak RSS {result['rss_mb']:.1f} MB, "
                    f"ready after {result['ready'] * 1e3:.0f} ms, {results[side]['stored'][-1]} items stored")
                tables[side] = table
            if agreement is None:
                agreement = compare_sides(client, tables, sample)
                indexes = index_projections(client, tables["rust"])
            for table in tables.values():
                client.delete_table(TableName=table)
    finally:
        launcher.close()
        server.stop()

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
    print(f"make bench, {case} on {kind}: {args.records} records of {described[case]}, {size} bytes of event JSON, "
          f"{args.runs} runs per side, DynamoDB = {server.describe()}")
    print()
    print("| side | CPU per record | process CPU | start-up CPU | wall | peak RSS | start to ready | items stored |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for side, f in figures.items():
        print(f"| {labels[side]} | {f['cpu_per_record_us']:.1f} µs | {f['cpu_s']:.2f} s | {f['init_cpu_ms']:.0f} ms | "
              f"{f['wall_s']:.2f} s | {f['peak_rss_mb']:.1f} MB | {f['ready_ms']:.0f} ms | "
              f"{f['stored']}/{args.records} |")
    print()
    same, differing, sampled = agreement
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
    # The JSON batch against moto keeps the plain names; the others say what they ran.
    name = "".join(f"_{part}" for part in (case, kind) if part not in ("json", "moto"))
    print(f"ratio wall{name} python/rust = {python['wall_s'] / rust['wall_s']:.1f}")
    print(f"ratio peak_rss{name} python/rust = {rss_ratio:.1f}")
    print(f"ratio start_to_ready{name} python/rust = {python['ready_ms'] / rust['ready_ms']:.1f}")
    print(f"ratio cpu_per_record{name} python/rust = {cpu_ratio:.1f}")
    costs[(case, kind)] = {
        side: {"cpu_per_record_s": f["cpu_per_record_us"] / 1e6, "records_per_invocation": args.records,
               **storage_per_record(list(sampled[side].values()), indexes)}
        for side, f in figures.items()
    }
    return 0


class LatencyProxy:
    """bench/latency_proxy.py in front of `upstream`: every answer held back `latency_ms`, connections kept; with
    `answer_writes`, BatchWriteItem answered by the proxy itself (ids counted, `written`)."""

    def __init__(self, upstream: str, latency_ms: float, answer_writes: bool) -> None:
        host_port = upstream.removeprefix("http://")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench/latency_proxy.py"), "--upstream", host_port,
             "--latency-ms", str(latency_ms), *(["--answer-writes"] if answer_writes else [])],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
        )
        line = self.process.stdout.readline().strip()
        if not line.startswith("listening "):
            self.stop()
            raise SystemExit(f"the latency proxy did not start: {line!r}")
        self.endpoint = "http://" + line.split(" ", 1)[1]

    def written(self, table: str) -> int:
        import urllib.request  # noqa: PLC0415

        with urllib.request.urlopen(f"{self.endpoint}/__written?table={table}", timeout=10) as answer:
            return int(answer.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def throughput_case(rust_bin: Path, workdir: Path, events, boto3, args) -> int:
    """One invocation's records per second at a realistic DynamoDB latency: every request answered after
    `args.latency_ms` over kept-alive connections. Each side as deployed by default: ours with its
    WRITE_CONCURRENCY (8 requests in flight), the peer with boto3's batch_writer (one request at a time).

    Two endpoints: dynalite behind the latency proxy (every item stored and counted in the table; dynalite
    writes one request at a time, a few milliseconds each, which bounds the faster side), and the proxy
    answering BatchWriteItem itself after the latency (every id it received counted): the latency alone."""
    event_path = workdir / "event-json.json"
    if not event_path.exists():
        events.write_event(str(event_path), args.records)
    commands = side_commands(rust_bin)
    medians, failed = {}, 0
    for mode, answer_writes in (("dynalite", False), ("latency only", True)):
        server = Server("dynalite")
        proxy = LatencyProxy(server.endpoint, args.latency_ms, answer_writes)
        launcher = Launcher()
        rates = {side: [] for side in commands}
        stored = {side: [] for side in commands}
        try:
            client = boto3.client("dynamodb", endpoint_url=server.endpoint, region_name="us-east-1",
                                  aws_access_key_id="bench", aws_secret_access_key="bench")
            suffix = f"{random.getrandbits(32):08x}"
            for run in range(args.runs):
                for side in commands if run % 2 == 0 else reversed(list(commands)):
                    table = f"bench-latency-{side}-{run}-{suffix}"
                    env = child_env(proxy.endpoint, table)
                    subprocess.run([str(rust_bin), "--create-table", "--check"], env=env, check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    log(f"at {args.latency_ms:g} ms ({mode}), run {run + 1}/{args.runs}: {side} ...")
                    result = launcher.run(commands[side] + [str(event_path)], env, workdir,
                                          f"latency-{side}-{run}")
                    # From ready to done: the invocation, not the process's start.
                    rates[side].append(args.records / max(result["wall"] - result["ready"], 1e-9))
                    stored[side].append(proxy.written(table) if answer_writes else count_items(client, table))
                    client.delete_table(TableName=table)
        finally:
            launcher.close()
            proxy.stop()
            server.stop()
        medians[mode] = {side: statistics.median(r) for side, r in rates.items()}
        if any(min(counts) != args.records for counts in stored.values()):
            print(f"FAILED ({mode}): not every record was written", stored)
            failed = 1
    print()
    print(f"throughput at {args.latency_ms:g} ms per DynamoDB request ({args.records} JSON records, one invocation, "
          f"every answer held back {args.latency_ms:g} ms on kept-alive connections; median of {args.runs}):")
    print()
    print("| side | records/s, dynalite behind | records/s, latency only |")
    print("| --- | ---: | ---: |")
    for side in commands:
        print(f"| {side} | {medians['dynalite'][side]:,.0f} | {medians['latency only'][side]:,.0f} |")
    bound = medians["dynalite"]["rust"] / medians["dynalite"]["python"]
    ratio = medians["latency only"]["rust"] / medians["latency only"]["python"]
    print(f"ratio records_per_second_at_{args.latency_ms:g}ms_dynalite rust/python = {bound:.1f}")
    print(f"target records per second at {args.latency_ms:g} ms >= 20x: {'met' if ratio >= 20 else 'MISSED'} "
          f"({ratio:.1f}x)")
    print(f"ratio records_per_second_at_{args.latency_ms:g}ms rust/python = {ratio:.1f}")
    return failed


# How cost grows with the work: payload sizes (records per batch chosen to stay under the 6 MB invocation limit)
# and batch sizes (the make bench mix).
PAYLOAD_POINTS = ((100, 10_000), (1_024, 4_000), (10_240, 500), (102_400, 50), (1_048_576, 4))
BATCH_POINTS = (1, 100, 10_000)


def scaling_case(rust_bin: Path, workdir: Path, events, boto3, args) -> int:
    """CPU per record and peak RSS across payload sizes and batch sizes, both sides, against dynalite (moto for
    S3: 1 MB payloads go to the bucket). The peer has no S3 offload, so it cannot store a record over DynamoDB's
    400 KB item limit: its 1 MB point is left out. Prints the table and draws docs/bench-scaling.png."""
    commands = side_commands(rust_bin)
    dynalite, moto = Server("dynalite"), Server("moto")
    launcher = Launcher()
    rows = []
    try:
        client = boto3.client("dynamodb", endpoint_url=dynalite.endpoint, region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
        bucket = f"bench-scaling-{random.getrandbits(32):08x}"
        boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1", aws_access_key_id="bench",
                     aws_secret_access_key="bench").create_bucket(Bucket=bucket)
        extra = {"AWS_ENDPOINT_URL_S3": moto.endpoint, "PAYLOAD_BUCKET": bucket}
        suffix = f"{random.getrandbits(32):08x}"
        points = [("payload", size, records) for size, records in PAYLOAD_POINTS]
        points += [("batch", 600, records) for records in BATCH_POINTS]
        for axis, size, records in points:
            event_path = workdir / f"scaling-{axis}-{size}-{records}.json"
            if axis == "payload":
                events.write_sized_event(str(event_path), records, size)
            else:
                events.write_event(str(event_path), records)
            for side, command in commands.items():
                if side == "python" and size > 400_000:
                    rows.append((axis, size, records, side, None, None))
                    continue
                cpu, rss = [], []
                for run in range(args.runs):
                    table = f"bench-scaling-{axis}-{size}-{records}-{side}-{run}-{suffix}"
                    env = child_env(dynalite.endpoint, table) | extra
                    subprocess.run([str(rust_bin), "--create-table", "--check"], env=env, check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    log(f"scaling: {axis} {size} B x {records}, run {run + 1}/{args.runs}: {side} ...")
                    # Each run paired with a start-up run just before it: the peer's start-up CPU varies by
                    # tens of milliseconds, as much as a small batch's whole work.
                    start_up = launcher.run(command + ["--check"], env, workdir, f"scaling-{side}-check")["cpu"]
                    result = launcher.run(command + [str(event_path)], env, workdir, f"scaling-{side}-{run}")
                    stored = count_items(client, table)
                    client.delete_table(TableName=table)
                    if stored != records:
                        print(f"FAILED: {side} stored {stored} of {records} ({axis} {size} B)")
                        return 1
                    cpu.append(max(result["cpu"] - start_up, 0) / records)
                    rss.append(result["rss_mb"])
                rows.append((axis, size, records, side, statistics.median(cpu), max(rss)))
    finally:
        launcher.close()
        dynalite.stop()
        moto.stop()
    print()
    print(f"how cost grows with the work (JSON values; {dynalite.describe()}, S3 on moto; median of {args.runs}):")
    print()
    print("| payload | records per batch | ours: CPU per record | peer: CPU per record | CPU ratio | ours: peak RSS | peer: peak RSS |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    by_point = {}
    for axis, size, records, side, cpu, rss in rows:
        by_point.setdefault((axis, size, records), {})[side] = (cpu, rss)
    for (axis, size, records), sides in by_point.items():
        (rc, rr), (pc, pr) = sides["rust"], sides["python"]
        label = f"{size:,} B" if axis == "payload" else "mix, ~600 B"
        print(f"| {label} | {records:,} | {rc * 1e6:,.1f} µs | "
              + ("cannot store it | | " if pc is None
                 else "below its start-up's noise | | " if pc == 0
                 else f"{pc * 1e6:,.1f} µs | {pc / max(rc, 1e-9):.1f}× | ")
              + f"{rr:.1f} MB | " + (f"{pr:.1f} MB |" if pr is not None else "|"))
    plot_scaling(by_point)
    return 0


def plot_scaling(by_point: dict) -> None:
    """docs/bench-scaling.png: CPU per record and peak RSS against payload size and batch size, both sides."""
    import matplotlib  # noqa: PLC0415 (inside the bench virtualenv)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    styles = {"rust": ("ours (Rust)", "tab:orange", "o"), "python": ("peer (Python)", "tab:blue", "s")}
    for side, (label, color, marker) in styles.items():
        payload = [(size, v[side]) for (axis, size, _), v in by_point.items() if axis == "payload" and v[side][0]]
        batch = [(records, v[side]) for (axis, _, records), v in by_point.items() if axis == "batch" and v[side][0]]
        axes[0].plot([s for s, _ in payload], [c * 1e6 for _, (c, _) in payload], marker=marker, color=color,
                     label=label)
        axes[1].plot([s for s, _ in payload], [r for _, (_, r) in payload], marker=marker, color=color, label=label)
        axes[2].plot([n for n, _ in batch], [c * 1e6 for _, (c, _) in batch], marker=marker, color=color,
                     label=label)
    titles = ("CPU per record by payload size", "peak RSS by payload size", "CPU per record by batch size")
    labels = (("payload (bytes)", "µs per record"), ("payload (bytes)", "MB"), ("records per invocation",
                                                                               "µs per record"))
    for axis, title, (x, y) in zip(axes, titles, labels):
        axis.set_xscale("log")
        if y != "MB":
            axis.set_yscale("log")
        axis.set_title(title)
        axis.set_xlabel(x)
        axis.set_ylabel(y)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.suptitle("make bench: how cost grows with the work (dynalite; S3 on moto)")
    figure.tight_layout()
    out = ROOT / "docs/bench-scaling.png"
    figure.savefig(out, dpi=90)
    print(f"plot: {out.relative_to(ROOT)}")


def instructions_case(rust_bin: Path, workdir: Path, events, records: int) -> int:
    """Instructions per record for both sides, counted by callgrind: the figure that does not move with the
    machine's load. Each side runs the same `records`-record JSON batch and a `--check` run under valgrind; the
    difference over the records is its instructions per record (user space only: the kernel's share of
    connections and I/O is not in it). Fewer records than the full batch: under valgrind the peer runs about
    50 times slower. Against dynalite, which keeps connections alive as DynamoDB does.

    valgrind does not emulate the SHA extensions, so under it both sides hash in software (the Rust side's
    request signing and payload digests; the peer's OpenSSL alike): SHA-256 weighs more here than on the
    machine itself, for both."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("\ninstructions per record: skipped (valgrind is not installed: apt-get install valgrind)")
        return 0
    event_path = workdir / f"event-json-{records}.json"
    events.write_event(str(event_path), records)
    commands = side_commands(rust_bin)
    server = Server("dynalite")
    launcher = Launcher()
    counted = {}
    try:
        suffix = f"{random.getrandbits(32):08x}"
        for side, command in commands.items():
            counts = {}
            for run, argv in (("check", ["--check"]), ("full", [str(event_path)])):
                env = child_env(server.endpoint, f"bench-instr-{side}-{suffix}")
                subprocess.run([str(rust_bin), "--create-table", "--check"], env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                name = f"instructions-{side}-{run}"
                log(f"instructions: {side} {run} under callgrind ...")
                launcher.run([valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *command, *argv],
                             env, workdir, name)
                collected = [line for line in (workdir / f"{name}.err").read_text().splitlines()
                             if "Collected :" in line]
                if not collected:
                    raise SystemExit(f"callgrind printed no count for {name}")
                counts[run] = int(collected[-1].rsplit(":", 1)[1])
            counted[side] = {"per_record": (counts["full"] - counts["check"]) / records, "start": counts["check"]}
    finally:
        launcher.close()
        server.stop()
    print()
    print(f"instructions (callgrind, user space), {records} JSON records, DynamoDB = {server.describe()}:")
    print()
    print("| side | instructions per record | instructions to ready |")
    print("| --- | ---: | ---: |")
    for side, c in counted.items():
        print(f"| {side} | {c['per_record']:,.0f} | {c['start']:,} |")
    ratio = counted["python"]["per_record"] / counted["rust"]["per_record"]
    print(f"target instructions per record >= 20x fewer: {'met' if ratio >= 20 else 'MISSED'} ({ratio:.1f}x)")
    print(f"ratio instructions_per_record python/rust = {ratio:.1f}")
    return 0


# The template's smallest IngestMemorySize (MinValue), which the number-array case must fit.
SMALLEST_INGEST_MEMORY_MB = 128


def number_array_case(rust_bin: Path, workdir: Path, events, boto3) -> int:
    """Ours on one record whose value holds a 4 MB array of numbers: its peak RSS must fit the smallest memory
    the template allows. (The peer is not run: without an S3 offload it cannot store a 4 MB record.)"""
    event_path = workdir / "number-array.json"
    value_size = events.write_number_array_event(str(event_path))
    moto = Server()
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
