"""The peer of `make bench`: the ingest function written the way AWS documents it for Python.

Powertools for AWS Lambda's Kafka consumer (`@kafka_consumer` with a JSON `SchemaConfig`, or with an Avro one
when `PEER_AVRO_SCHEMA` names a schema file: Confluent-framed values, the schema given offline) decodes the
trigger event; each record becomes the same kind of item the Rust function writes (id
`{topic}:{partition}:{offset}`, Kafka metadata, key, headers, the ids found by canonical field name at the
top level, in the usual envelopes and in `order: {id}`-style entities, the event time in RFC 3339 UTC, the
index keys, the payload byte for byte with its SHA-256); boto3's `Table.batch_writer` writes them (25 per
BatchWriteItem, unprocessed items re-sent, duplicate ids in a batch collapsed).

Run as a script, it does what the Lambda runtime would: set up at import (boto3 resource), print
`ready unix_ns=N` on standard error, read the event file, call the handler once and print the result
and a summary as JSON on standard output. `--check` stops after the ready line.

    TABLE_NAME=t AWS_ENDPOINT_URL=http://127.0.0.1:5000 python bench/peer.py EVENT.json
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import time
from datetime import datetime, timezone
from functools import lru_cache

import boto3
from aws_lambda_powertools.utilities.kafka import ConsumerRecords, SchemaConfig, kafka_consumer
from aws_lambda_powertools.utilities.kafka.exceptions import KafkaConsumerDeserializationError

TABLE = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
# The Avro batch: the schema given offline, the values framed by a Confluent serializer (Powertools' documented
# set-up when the trigger itself does not resolve the registry).
AVRO_SCHEMA_FILE = os.environ.get("PEER_AVRO_SCHEMA")
if AVRO_SCHEMA_FILE:
    with open(AVRO_SCHEMA_FILE) as f:
        SCHEMA = SchemaConfig(value_schema_type="AVRO", value_schema=f.read(), value_schema_wire_format="CONFLUENT")
    VALUE_FORMAT = "avro"
else:
    SCHEMA = SchemaConfig(value_schema_type="JSON")
    VALUE_FORMAT = "json"

ENVELOPES = ("metadata", "meta", "headers", "data", "payload", "detail", "body", "event", "attributes")
ENTITIES = ("order", "customer", "payment", "shipment", "correlation")
FIELDS = {
    "event_type": (("eventtype", "type", "eventname", "detailtype", "messagetype", "event"), None,
                   ("cetype", "eventtype", "xeventtype", "eventname", "messagetype", "type", "typeid")),
    "correlation_id": (("correlationid", "xcorrelationid", "correlation"), "correlation",
                       ("correlationid", "xcorrelationid", "cecorrelationid", "correlation")),
    "order_id": (("orderid",), "order", ("orderid", "xorderid", "ceorderid")),
    "customer_id": (("customerid",), "customer", ("customerid", "xcustomerid", "cecustomerid")),
    "source_service": (("sourceservice", "source", "service", "servicename", "producer"), None,
                       ("cesource", "sourceservice", "xsourceservice", "source", "service", "producer")),
    "event_id": (("eventid", "messageid", "id"), None, ("ceid", "eventid", "xeventid", "messageid", "xmessageid", "id")),
}
TIME_NAMES = ("occurredat", "occurredon", "eventtime", "eventtimestamp", "time", "timestamp", "ts", "createdat",
              "creationdate", "emittedat", "publishedat", "sentat")
TIME_HEADERS = ("cetime", "occurredat", "eventtime", "timestamp", "time")


@lru_cache(maxsize=4096)
def canonical(name: str) -> str:
    """`customerId`, `customer_id`, `CustomerID`, `Customer.Id` are all `customerid`."""
    return "".join(c for c in name.lower() if c.isalnum())


def scopes(doc) -> tuple[list[dict], list[dict]]:
    """The objects searched for fields: the document and its envelopes (two deep), then entity objects."""
    if not isinstance(doc, dict):
        return [], []
    envelopes, frontier = [doc], [doc]
    for _ in range(2):
        frontier = [v for s in frontier for k, v in s.items() if isinstance(v, dict) and canonical(k) in ENVELOPES]
        envelopes += frontier
    entities = [v for s in envelopes for k, v in s.items() if isinstance(v, dict) and canonical(k) in ENTITIES]
    return envelopes, entities


def id_text(value) -> str | None:
    if isinstance(value, str):
        return value if value.strip() and value.strip() != "null" else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def find(names, entity, header_names, envelopes, entities, headers) -> str | None:
    # Entity objects (`order: {...}`) are searched only for the ids that link records, not for event fields.
    for group in (envelopes, entities) if entity else (envelopes,):
        for scope in group:
            by_name = {canonical(k): v for k, v in scope.items()}
            for name in names:
                value = by_name.get(name)
                if value is not None and not isinstance(value, dict) and (found := id_text(value)):
                    return found
            if entity and isinstance(by_name.get(entity), dict):
                for k, v in by_name[entity].items():
                    if (canonical(k) == "id" or canonical(k) in names) and (found := id_text(v)):
                        return found
    for name in header_names:
        value = headers.get(name)
        if value is not None:
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if text.strip():
                return text
    return None


def rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value) -> datetime | None:
    if isinstance(value, datetime):  # Avro's timestamp-millis
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        if isinstance(value, str):
            if value.strip().replace(".", "", 1).isdigit():
                value = float(value)
            else:
                t = datetime.fromisoformat(value.strip())
                return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = value / 1e3 if value >= 1e11 else value
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def occurred_at(envelopes, headers, kafka_ms) -> str:
    for scope in envelopes:
        by_name = {canonical(k): v for k, v in scope.items()}
        for name in TIME_NAMES:
            if name in by_name and (t := parse_time(by_name[name])):
                return rfc3339(t)
    for name in TIME_HEADERS:
        if name in headers and (t := parse_time(headers[name].decode("utf-8", "replace"))):
            return rfc3339(t)
    return rfc3339(datetime.fromtimestamp(kafka_ms / 1e3, tz=timezone.utc))


def to_item(record, received_at: str) -> dict:
    record_id = f"{record.topic}:{record.partition}:{record.offset}"
    payload = base64.b64decode(record.original_value) if record.original_value is not None else None
    try:
        doc = record.value if payload is not None else None
        payload_format = VALUE_FORMAT if payload is not None else "tombstone"
    except KafkaConsumerDeserializationError:
        doc, payload_format = None, "binary"
    headers = {canonical(name): value for name, value in record.headers.items()}
    envelopes, entities = scopes(doc)
    item = {
        "id": record_id,
        "v": 1,
        "source_topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "kafka_timestamp": record.timestamp,
        "timestamp_type": record.timestamp_type,
        "received_at": received_at,
        "payload_format": payload_format,
        "payload_size": len(payload or b""),
    }
    for field, (names, entity, header_names) in FIELDS.items():
        if value := find(names, entity, header_names, envelopes, entities, headers):
            item[field] = value
    for field, key in (("order_id", "order_key"), ("correlation_id", "correlation_key"), ("customer_id", "customer_key")):
        if field in item:
            item[key] = item[field]
    item["occurred_at"] = occurred_at(envelopes, headers, record.timestamp)
    item["event_sk"] = f"{item['occurred_at']}#{record_id}"
    if record.key is not None:
        item["key"] = record.key
    if record.headers:
        item["headers"] = [{"name": k, "value": v.decode("utf-8", "replace")} for k, v in record.headers.items()]
    if payload is not None:
        item["payload_sha256"] = hashlib.sha256(payload).hexdigest()
        item["payload"] = payload
    return item


@kafka_consumer(schema_config=SCHEMA)
def lambda_handler(event: ConsumerRecords, context):
    received_at = rfc3339(datetime.now(timezone.utc))
    stored = 0
    with TABLE.batch_writer(overwrite_by_pkeys=["id"]) as batch:
        for record in event.records:
            batch.put_item(Item=to_item(record, received_at))
            stored += 1
    return {"batchItemFailures": [], "stored": stored}


class _Context:
    """The bits of the Lambda context a handler may read."""

    function_name = "notifications-ingest-peer"
    memory_limit_in_mb = 128
    aws_request_id = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000


if __name__ == "__main__":
    print(f"ready unix_ns={time.time_ns()}", file=sys.stderr, flush=True)
    if sys.argv[1:] == ["--check"]:
        sys.exit(0)
    if len(sys.argv) != 2:
        sys.exit("usage: peer.py EVENT.json | --check")
    started = time.monotonic()
    with open(sys.argv[1], "rb") as f:
        event = json.load(f)
    result = lambda_handler(event, _Context())
    records = sum(len(group) for group in event["records"].values())
    summary = {"records": records, "stored": result.pop("stored"), "duration_ms": int((time.monotonic() - started) * 1000)}
    print(json.dumps({"response": result, "summary": summary}))
