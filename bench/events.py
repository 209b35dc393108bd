"""A full Kafka trigger batch for `make bench`: 10,000 realistic order, payment, shipping and inventory
events in the exact shape an MSK event source mapping sends to Lambda (base64 keys and values, headers as
byte arrays, records grouped by `topic-partition`), close to Lambda's 6 MB invocation payload limit.

Deterministic: the same seed gives the same bytes. Four producer conventions are mixed, as in a real
order-processing system: camelCase with top-level ids, snake_case under a metadata/data envelope,
CloudEvents structured mode with an `order: {id}` entity, and PascalCase with the correlation id only in a
Kafka header.

    python bench/events.py OUT.json [--records 10000] [--seed 7]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import uuid
from datetime import datetime, timedelta, timezone

TOPICS = {"orders": 3, "payments": 3, "shipping": 2, "inventory": 2}
START = datetime(2026, 11, 27, 9, 0, 0, tzinfo=timezone.utc)
CITIES = ["Berlin", "Lyon", "Porto", "Gdansk"]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _order(rng: random.Random, n: int, t: datetime, corr: str) -> tuple[dict, list]:
    items = [
        {"sku": f"SKU-{rng.randrange(10000, 99999)}", "quantity": rng.randint(1, 4), "unitPrice": rng.randint(199, 9999) / 100}
        for _ in range(1)
    ]
    city = rng.choice(CITIES)
    value = {
        "eventType": rng.choice(["OrderCreated", "OrderConfirmed", "OrderCancelled"]),
        "eventId": _uuid(rng),
        "orderId": f"ord-{n:08d}",
        "customerId": f"cus-{rng.randrange(1, 5000):06d}",
        "correlationId": corr,
        "occurredAt": _iso(t),
        "source": "order-service",
        "totalAmount": round(sum(i["quantity"] * i["unitPrice"] for i in items), 2),
        "items": items,
        "shipTo": city,
    }
    return value, []


def _payment(rng: random.Random, n: int, t: datetime, corr: str) -> tuple[dict, list]:
    value = {
        "metadata": {
            "event_type": rng.choice(["PaymentAuthorized", "PaymentCaptured", "PaymentFailed"]),
            "event_id": _uuid(rng),
            "correlation_id": corr,
            "timestamp": int(t.timestamp() * 1000),
            "producer": "payment-service",
        },
        "data": {
            "payment_id": f"pay-{rng.getrandbits(40):010x}",
            "order_id": f"ord-{n:08d}",
            "customer_id": f"cus-{rng.randrange(1, 5000):06d}",
            "amount": rng.randint(500, 50000) / 100,
            "method": rng.choice(["card", "sepa", "paypal"]),
        },
    }
    return value, []


def _shipping(rng: random.Random, n: int, t: datetime, corr: str) -> tuple[dict, list]:
    value = {
        "specversion": "1.0",
        "type": rng.choice(["com.shop.shipment.created", "com.shop.shipment.dispatched", "com.shop.shipment.delivered"]),
        "source": "shipping-service",
        "id": _uuid(rng),
        "time": _iso(t),
        "data": {
            "shipmentId": f"shp-{rng.getrandbits(32):08x}",
            "order": {"id": f"ord-{n:08d}", "customerId": f"cus-{rng.randrange(1, 5000):06d}"},
            "carrier": rng.choice(["DHL", "UPS", "DPD"]),
            "correlationId": corr,
        },
    }
    return value, []


def _inventory(rng: random.Random, n: int, t: datetime, corr: str) -> tuple[dict, list]:
    value = {
        "EventName": rng.choice(["StockReserved", "StockReleased", "StockAdjusted"]),
        "MessageId": _uuid(rng),
        "OrderID": f"ord-{n:08d}",
        "Sku": f"SKU-{rng.randrange(10000, 99999)}",
        "Warehouse": f"WH-{rng.randint(1, 9)}",
        "Quantity": rng.randint(1, 5),
        "Timestamp": _iso(t),
        "Service": "inventory-service",
    }
    return value, [{"correlation-id": corr}]


MAKERS = {"orders": _order, "payments": _payment, "shipping": _shipping, "inventory": _inventory}


def build_event(records: int = 10_000, seed: int = 7) -> dict:
    """The trigger event, as a JSON-ready dict."""
    rng = random.Random(seed)
    groups: dict[str, list] = {f"{topic}-{p}": [] for topic, parts in TOPICS.items() for p in range(parts)}
    offsets = {group: rng.randrange(1_000, 900_000) for group in groups}
    topics = list(TOPICS)
    for i in range(records):
        topic = topics[i % len(topics)]
        n = 100_000 + i // len(topics)  # every order appears on every topic: a flow
        corr = str(uuid.UUID(int=(seed << 64) ^ n, version=4))
        t = START + timedelta(milliseconds=37 * i + rng.randrange(0, 30))
        value, headers = MAKERS[topic](rng, n, t, corr)
        partition = n % TOPICS[topic]
        group = f"{topic}-{partition}"
        offsets[group] += 1
        groups[group].append(
            {
                "topic": topic,
                "partition": partition,
                "offset": offsets[group],
                "timestamp": int(t.timestamp() * 1000) + rng.randrange(1, 40),
                "timestampType": "CREATE_TIME",
                "key": base64.b64encode(f"ord-{n:08d}".encode()).decode(),
                "value": base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode(),
                "headers": [{name: list(text.encode())} for header in headers for name, text in header.items()],
            }
        )
    return {
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:eu-west-1:123456789012:cluster/shop/11111111-2222-3333-4444-555555555555-1",
        "bootstrapServers": "b-1.shop.kafka.eu-west-1.amazonaws.com:9098,b-2.shop.kafka.eu-west-1.amazonaws.com:9098",
        "records": {group: entries for group, entries in groups.items() if entries},
    }


def write_event(path: str, records: int = 10_000, seed: int = 7) -> int:
    """Writes the event as compact JSON (as Lambda delivers it); returns its size in bytes."""
    data = json.dumps(build_event(records, seed), separators=(",", ":")).encode()
    with open(path, "wb") as out:
        out.write(data)
    return len(data)


# The Avro batch: order events under one registered schema, as a Confluent serializer writes them (byte 0, the
# 4-byte schema id, the Avro body). Enum, union, array of records and timestamp-millis: the usual shape.
AVRO_SCHEMA_ID = 1
AVRO_SCHEMA = {
    "type": "record",
    "name": "OrderEvent",
    "namespace": "com.shop.orders",
    "fields": [
        {"name": "eventType", "type": {"type": "enum", "name": "OrderEventType",
                                        "symbols": ["OrderCreated", "OrderConfirmed", "OrderCancelled"]}},
        {"name": "eventId", "type": "string"},
        {"name": "orderId", "type": "string"},
        {"name": "customerId", "type": "string"},
        {"name": "correlationId", "type": ["null", "string"], "default": None},
        {"name": "occurredAt", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "source", "type": "string"},
        {"name": "totalAmount", "type": "double"},
        {"name": "items", "type": {"type": "array", "items": {
            "type": "record", "name": "LineItem",
            "fields": [{"name": "sku", "type": "string"}, {"name": "quantity", "type": "int"},
                       {"name": "unitPrice", "type": "double"}]}}},
        {"name": "shipTo", "type": ["null", "string"], "default": None},
    ],
}
AVRO_PARTITIONS = 10


def write_avro_event(path: str, records: int = 10_000, seed: int = 7) -> int:
    """Writes a trigger batch of Confluent-framed Avro order events (topic `orders-avro`); returns its size."""
    import io  # noqa: PLC0415
    import struct  # noqa: PLC0415

    from avro.io import BinaryEncoder, DatumWriter  # noqa: PLC0415 (inside the bench virtualenv)
    from avro.schema import parse  # noqa: PLC0415

    writer = DatumWriter(parse(json.dumps(AVRO_SCHEMA)))
    rng = random.Random(seed)
    groups: dict[str, list] = {f"orders-avro-{p}": [] for p in range(AVRO_PARTITIONS)}
    offsets = {group: rng.randrange(1_000, 900_000) for group in groups}
    for i in range(records):
        n = 100_000 + i
        corr = str(uuid.UUID(int=(seed << 64) ^ n, version=4))
        t = START + timedelta(milliseconds=37 * i + rng.randrange(0, 30))
        value, _ = _order(rng, n, t, corr)
        value["occurredAt"] = t
        buffer = io.BytesIO()
        buffer.write(b"\0" + struct.pack(">I", AVRO_SCHEMA_ID))
        writer.write(value, BinaryEncoder(buffer))
        partition = n % AVRO_PARTITIONS
        group = f"orders-avro-{partition}"
        offsets[group] += 1
        groups[group].append(
            {
                "topic": "orders-avro",
                "partition": partition,
                "offset": offsets[group],
                "timestamp": int(t.timestamp() * 1000) + rng.randrange(1, 40),
                "timestampType": "CREATE_TIME",
                "key": base64.b64encode(f"ord-{n:08d}".encode()).decode(),
                "value": base64.b64encode(buffer.getvalue()).decode(),
                "headers": [],
            }
        )
    event = {
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:eu-west-1:123456789012:cluster/shop/11111111-2222-3333-4444-555555555555-1",
        "bootstrapServers": "b-1.shop.kafka.eu-west-1.amazonaws.com:9098",
        "records": groups,
    }
    data = json.dumps(event, separators=(",", ":")).encode()
    with open(path, "wb") as out:
        out.write(data)
    return len(data)


def write_sized_event(path: str, records: int, value_bytes: int, seed: int = 7) -> int:
    """Writes a batch of order events whose values are each about `value_bytes` long (the rest of the value a
    `notes` text of random letters, which compression does not shrink much); returns the event's size."""
    rng = random.Random(seed)
    groups: dict[str, list] = {f"orders-sized-{p}": [] for p in range(4)}
    offsets = {group: rng.randrange(1_000, 900_000) for group in groups}
    for i in range(records):
        n = 100_000 + i
        t = START + timedelta(milliseconds=37 * i)
        value, _ = _order(rng, n, t, str(uuid.UUID(int=(seed << 64) ^ n, version=4)))
        if value_bytes < 300:  # the smallest events: type, order and time only
            value = {key: value[key] for key in ("eventType", "orderId", "occurredAt")}
        bare = len(json.dumps(value, separators=(",", ":"))) + len(',"notes":""')
        value["notes"] = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(max(0, value_bytes - bare)))
        encoded = json.dumps(value, separators=(",", ":")).encode()
        group = f"orders-sized-{n % 4}"
        offsets[group] += 1
        groups[group].append({
            "topic": "orders-sized", "partition": n % 4, "offset": offsets[group],
            "timestamp": int(t.timestamp() * 1000), "timestampType": "CREATE_TIME",
            "key": base64.b64encode(f"ord-{n:08d}".encode()).decode(),
            "value": base64.b64encode(encoded).decode(), "headers": [],
        })
    event = {"eventSource": "aws:kafka", "eventSourceArn": "arn:aws:kafka:eu-west-1:123456789012:cluster/shop/x",
             "bootstrapServers": "b-1.shop.kafka.eu-west-1.amazonaws.com:9098", "records": groups}
    data = json.dumps(event, separators=(",", ":")).encode()
    with open(path, "wb") as out:
        out.write(data)
    return len(data)


def write_number_array_event(path: str, value_bytes: int = 4 * 1024 * 1024) -> int:
    """Writes an event of one record whose value is a JSON object holding an array of numbers of about
    `value_bytes` (the shape that once cost a tree node per number); returns the value's size in bytes."""
    numbers = ",".join(str(100_000 + i % 900_000) for i in range(value_bytes // 7))
    value = ('{"eventType":"SensorReadings","orderId":"o-array","readings":[' + numbers + "]}").encode()
    record = {
        "topic": "readings", "partition": 0, "offset": 1, "timestamp": 1_764_460_800_000,
        "timestampType": "CREATE_TIME", "key": None, "value": base64.b64encode(value).decode(), "headers": [],
    }
    event = {"eventSource": "aws:kafka", "eventSourceArn": "arn:aws:kafka:eu-west-1:123456789012:cluster/shop/x",
             "bootstrapServers": "b-1.shop.kafka.eu-west-1.amazonaws.com:9098", "records": {"readings-0": [record]}}
    with open(path, "w") as out:
        json.dump(event, out, separators=(",", ":"))
    return len(value)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    size = write_event(args.out, args.records, args.seed)
    print(f"{args.out}: {args.records} records, {size} bytes")
