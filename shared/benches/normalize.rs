//! The ingest path without I/O: trigger event bytes -> decode -> normalize -> DynamoDB item -> BatchWriteItem body, per core.
//!
//! Inputs are generated here, deterministically: a mixed batch of order, payment, shipping and inventory
//! events in four producer conventions (the mix `make bench` sends, about 600 bytes of event JSON per
//! record), batches of 1 KB and of 10 KB events (10 KB values are zstd-compressed into the item), and, when
//! present, the messages of `fixtures/messages/` (one record per file). Each benchmark reports records
//! per second (Throughput::Elements) and event JSON bytes per second (Throughput::Bytes).
//!
//! `cargo bench -p notifications-shared --bench normalize`; `-- --quick` for a short run.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use shared::decode;
use shared::dynamo::body;
use shared::dynamo::codec::b64;
use shared::dynamo::placement::{self, Layout};
use shared::normalize::{self, Context, TopicServiceMap};

/// A small deterministic generator (xorshift64*), so every run benchmarks the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Kafka headers: name, text.
type Headers = Vec<(String, String)>;

const START_MS: i64 = 1_795_770_000_000;

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// One event of the mix: (topic, value, headers).
fn mixed_event(rng: &mut Rng, i: u64) -> (&'static str, Value, Headers) {
    let n = 100_000 + i / 4;
    let order = format!("ord-{n:08}");
    let customer = format!("cus-{:06}", rng.below(5_000));
    let correlation = rng.uuid();
    let ms = START_MS + 37 * i as i64;
    match i % 4 {
        0 => (
            "orders",
            json!({
                "eventType": rng.pick(&["OrderCreated", "OrderConfirmed", "OrderCancelled"]),
                "eventId": rng.uuid(), "orderId": order, "customerId": customer, "correlationId": correlation,
                "occurredAt": iso(ms), "source": "order-service", "totalAmount": 42.5,
                "items": [{"sku": format!("SKU-{}", 10_000 + rng.below(89_999)), "quantity": 2, "unitPrice": 21.25}],
                "shipTo": rng.pick(&["Berlin", "Lyon", "Porto", "Gdansk"]),
            }),
            Vec::new(),
        ),
        1 => (
            "payments",
            json!({
                "metadata": {"event_type": rng.pick(&["PaymentAuthorized", "PaymentCaptured"]), "event_id": rng.uuid(),
                             "correlation_id": correlation, "timestamp": ms, "producer": "payment-service"},
                "data": {"payment_id": format!("pay-{:010x}", rng.below(1 << 40)), "order_id": order,
                         "customer_id": customer, "amount": 115.13, "method": rng.pick(&["card", "sepa", "paypal"])},
            }),
            Vec::new(),
        ),
        2 => (
            "shipping",
            json!({
                "specversion": "1.0", "type": "com.shop.shipment.dispatched", "source": "shipping-service",
                "id": rng.uuid(), "time": iso(ms),
                "data": {"shipmentId": format!("shp-{:08x}", rng.below(1 << 32)),
                         "order": {"id": order, "customerId": customer},
                         "carrier": rng.pick(&["DHL", "UPS", "DPD"]), "correlationId": correlation},
            }),
            Vec::new(),
        ),
        _ => (
            "inventory",
            json!({
                "EventName": rng.pick(&["StockReserved", "StockReleased"]), "MessageId": rng.uuid(), "OrderID": order,
                "Sku": format!("SKU-{}", 10_000 + rng.below(89_999)), "Warehouse": "WH-3", "Quantity": 2,
                "Timestamp": iso(ms), "Service": "inventory-service",
            }),
            vec![("correlation-id".into(), correlation)],
        ),
    }
}

/// An order event padded with line items to about `size` bytes of JSON.
fn sized_event(rng: &mut Rng, i: u64, size: usize) -> (&'static str, Value, Headers) {
    let mut value = json!({
        "eventType": "OrderCreated", "eventId": rng.uuid(), "orderId": format!("ord-{:08}", 100_000 + i),
        "customerId": format!("cus-{:06}", rng.below(5_000)), "correlationId": rng.uuid(),
        "occurredAt": iso(START_MS + i as i64), "source": "order-service", "items": [],
    });
    while serde_json::to_vec(&value).map_or(0, |v| v.len()) < size {
        if let Some(items) = value["items"].as_array_mut() {
            items.push(json!({
                "sku": format!("SKU-{}", 10_000 + rng.below(89_999)), "name": "Stainless steel water bottle, 750 ml",
                "quantity": 1 + rng.below(4), "unitPrice": 19.99, "warehouse": format!("WH-{}", rng.below(9)),
            }));
        }
    }
    (
        "orders",
        value,
        vec![("content-type".into(), "application/json".into())],
    )
}

/// A trigger event holding `values` as records, grouped by topic-partition as MSK sends them.
fn trigger_event(values: Vec<(&str, Vec<u8>, Headers)>) -> Vec<u8> {
    let mut groups = serde_json::Map::new();
    for (i, (topic, value, headers)) in values.into_iter().enumerate() {
        let partition = i % 3;
        let headers: Vec<Value> = headers
            .iter()
            .map(|(name, text)| Value::Object([(name.clone(), json!(text.as_bytes()))].into_iter().collect()))
            .collect();
        let record = json!({
            "topic": topic, "partition": partition, "offset": 1_000 + i, "timestamp": START_MS + i as i64,
            "timestampType": "CREATE_TIME", "key": b64(format!("key-{i}").as_bytes()),
            "value": b64(&value), "headers": headers,
        });
        if let Value::Array(group) = groups
            .entry(format!("{topic}-{partition}"))
            .or_insert_with(|| json!([]))
        {
            group.push(record);
        }
    }
    serde_json::to_vec(&json!({
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:eu-west-1:123456789012:cluster/shop/1",
        "records": groups,
    }))
    .unwrap_or_default()
}

fn generated(records: u64, make: impl Fn(&mut Rng, u64) -> (&'static str, Value, Headers)) -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    trigger_event(
        (0..records)
            .map(|i| {
                let (topic, value, headers) = make(&mut rng, i);
                (topic, serde_json::to_vec(&value).unwrap_or_default(), headers)
            })
            .collect(),
    )
}

/// The message of a `fixtures/messages/` file: its `value` (`{"json": ..}`, `{"text": ..}`, `{"hex": ..}` or
/// `{"base64": ..}`) and `headers` (`[{"name", "value"}]`) where the file describes them so, else the file's
/// bytes as the value: the benchmark does not depend on the fixtures' format.
fn fixture_message(bytes: Vec<u8>) -> (Vec<u8>, Headers) {
    use base64::Engine as _;
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&bytes) else {
        return (bytes, Vec::new());
    };
    let value = match doc.get("value") {
        Some(Value::Object(v)) => match (v.get("json"), v.get("text"), v.get("hex"), v.get("base64")) {
            (Some(json), _, _, _) => serde_json::to_vec(json).ok(),
            (_, Some(Value::String(text)), _, _) => Some(text.clone().into_bytes()),
            (_, _, Some(Value::String(hex)), _) => hex::decode(hex.replace(' ', "")).ok(),
            (_, _, _, Some(Value::String(b64))) => base64::engine::general_purpose::STANDARD.decode(b64).ok(),
            _ => None,
        },
        _ => None,
    };
    let headers = doc
        .get("headers")
        .and_then(Value::as_array)
        .map(|headers| {
            headers
                .iter()
                .filter_map(|h| {
                    Some((
                        h.get("name")?.as_str()?.to_owned(),
                        h.get("value")?.as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    match value {
        Some(value) => (value, headers),
        None => (bytes, Vec::new()),
    }
}

/// Every file under `fixtures/messages/`, as one record each, when that folder exists.
fn fixture_values() -> Vec<(Vec<u8>, Headers)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/messages");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| std::fs::read(path).ok())
        .map(fixture_message)
        .collect()
}

/// `records` registry-framed order events in `kind` (Confluent id 1: Avro, 2: Protobuf; the sample schemas of
/// `shared::schema::sample_schemas`), about 100 bytes each.
fn framed_events(records: u64, confluent_id: u32) -> Vec<u8> {
    use shared::schema::registry::Resolution;
    use shared::schema::{confluent_frame, confluent_message_indexes, SchemaRef};
    let schemas = shared::schema::sample_schemas();
    let Some(Resolution::Found(schema)) = schemas.get(&SchemaRef::Confluent(confluent_id)) else {
        panic!("sample schema {confluent_id}")
    };
    let mut rng = Rng(7);
    let values = (0..records)
        .map(|i| {
            let order = format!("ord-{:08}", 100_000 + i / 4);
            let customer = format!("cus-{:06}", rng.below(5_000));
            let ms = START_MS + 37 * i as i64;
            let (json, prefix) = if confluent_id == 1 {
                (
                    json!({"orderId": order, "customerId": customer, "occurredAt": ms, "amount": null,
                           "tags": {"channel": "web"}, "lines": [1, 2, 3]}),
                    Vec::new(),
                )
            } else {
                (
                    json!({"orderId": order, "occurredAt": iso(ms), "tags": {"channel": 1},
                           "lines": [{"sku": "SKU-1", "qty": 2}], "card": "tok"}),
                    confluent_message_indexes(&[0]),
                )
            };
            let body = schema.encode(&json.to_string(), None).expect("encodes");
            (
                "orders",
                confluent_frame(confluent_id, &[prefix, body].concat()),
                Vec::new(),
            )
        })
        .collect();
    trigger_event(values)
}

/// What the ingest handler does before the SDK's part: decode, normalize, lay out, and write the BatchWriteItem
/// bodies, 25 items each. Returns the record count.
fn pipeline(event: &[u8], context: &Context<'_>, layout: &Layout) -> usize {
    let Ok(decoded) = decode::decode_event_bytes(event) else {
        return 0;
    };
    let now = context.received_at.timestamp();
    let mut count = 0;
    for chunk in decoded.records.chunks(25) {
        let items: Vec<_> = chunk
            .iter()
            .filter_map(|message| placement::prepare_owned(normalize::normalize(message, context), layout, now).ok())
            .map(|prepared| prepared.item)
            .collect();
        count += chunk.len();
        black_box(body::batch_write_body("notifications", &items));
    }
    count
}

fn bench_pipeline(c: &mut Criterion) {
    let services = TopicServiceMap::default();
    let context = Context {
        received_at: Utc::now(),
        topic_services: &services,
        schemas: &shared::schema::sample_schemas(),
    };
    let layout = Layout::default();
    let mut inputs: Vec<(String, u64, Vec<u8>)> = vec![
        ("mixed_600B".into(), 1_000, generated(1_000, mixed_event)),
        ("order_1KB".into(), 500, generated(500, |r, i| sized_event(r, i, 1_024))),
        ("confluent_avro".into(), 1_000, framed_events(1_000, 1)),
        ("confluent_protobuf".into(), 1_000, framed_events(1_000, 2)),
        (
            "order_10KB".into(),
            100,
            generated(100, |r, i| sized_event(r, i, 10 * 1_024)),
        ),
    ];
    let fixtures = fixture_values();
    if !fixtures.is_empty() {
        let count = fixtures.len() as u64;
        let values = fixtures
            .into_iter()
            .map(|(value, headers)| ("fixtures", value, headers))
            .collect();
        inputs.push(("fixture_mix".into(), count, trigger_event(values)));
    }

    // The framed inputs decode with their schemas: the benchmark measures decoding, not the fallback.
    for (name, format) in [
        ("confluent_avro", "confluent-avro"),
        ("confluent_protobuf", "confluent-protobuf"),
    ] {
        let (_, _, event) = inputs.iter().find(|(n, _, _)| n == name).expect("framed input");
        let first = &decode::decode_event_bytes(event).expect("event").records[0];
        let n = normalize::normalize(first, &context);
        assert_eq!(n.payload_format.as_str(), format, "{name}: {:?}", n.warnings);
        assert!(
            n.fields.order_id.is_some() && n.warnings.is_empty(),
            "{name}: {:?}",
            n.warnings
        );
    }

    let mut group = c.benchmark_group("decode_normalize_prepare");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, records, event) in &inputs {
        assert_eq!(pipeline(event, &context, &layout), *records as usize, "{name}");
        group.throughput(Throughput::Elements(*records));
        group.bench_with_input(BenchmarkId::new("records", name), event, |b, event| {
            b.iter(|| pipeline(black_box(event), &context, &layout))
        });
        group.throughput(Throughput::Bytes(event.len() as u64));
        group.bench_with_input(BenchmarkId::new("bytes", name), event, |b, event| {
            b.iter(|| pipeline(black_box(event), &context, &layout))
        });
    }
    group.finish();

    // The stages one by one, on the mix: where the time goes.
    let (_, records, event) = &inputs[0];
    let decoded = decode::decode_event_bytes(event).map(|d| d.records).unwrap_or_default();
    let notifications: Vec<_> = decoded.iter().map(|m| normalize::normalize(m, &context)).collect();
    let mut stages = c.benchmark_group("stages_mixed_600B");
    stages
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(*records));
    stages.bench_function("decode", |b| b.iter(|| decode::decode_event_bytes(black_box(event))));
    stages.bench_function("normalize", |b| {
        b.iter(|| {
            decoded
                .iter()
                .map(|m| normalize::normalize(black_box(m), &context).warnings.len())
                .sum::<usize>()
        })
    });
    stages.bench_function("prepare", |b| {
        b.iter(|| {
            notifications.iter().fold(0, |count, n| {
                let _ = black_box(placement::prepare(black_box(n), &layout, 0));
                count + 1
            })
        })
    });
    let items: Vec<_> = notifications
        .iter()
        .filter_map(|n| placement::prepare(n, &layout, 0).ok())
        .map(|prepared| prepared.item)
        .collect();
    stages.bench_function("body", |b| {
        b.iter(|| {
            items
                .chunks(25)
                .map(|chunk| body::batch_write_body("notifications", black_box(chunk)).len())
                .sum::<usize>()
        })
    });
    stages.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
