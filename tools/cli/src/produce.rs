//! `notifications produce`: sends generated order-flow events (orders, payments, inventory, shipping, each
//! service in its own naming convention) or the fixture corpus to Kafka, at a chosen rate, with progress.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use tokio::time::Instant;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// The `produce` command's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ProduceArgs {
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092")]
    pub bootstrap_servers: String,
    /// Send generated events; each flow is OrderCreated, PaymentAuthorized, InventoryReserved, OrderShipped.
    #[arg(long, default_value_t = 100, conflicts_with = "fixtures")]
    pub count: usize,
    /// Send every message of the fixture corpus in this folder instead (default folder: fixtures/messages).
    #[arg(long, num_args = 0..=1, default_missing_value = "fixtures/messages")]
    pub fixtures: Option<std::path::PathBuf>,
    /// Send all generated (or fixture) messages to this one topic instead of their own.
    #[arg(long)]
    pub topic: Option<String>,
    /// Messages per second (0: as fast as the broker takes them).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seed of the generator: the same seed sends the same events.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How values are written: plain JSON, or one OrderEvent schema (tools/cli/schemas) in Avro, Protobuf or
    /// JSON Schema, framed for --registry.
    #[arg(long, value_enum, default_value = "json", conflicts_with = "fixtures")]
    pub format: crate::formats::Format,
    /// Where the schema goes: `glue` (AWS Glue Schema Registry at the standard endpoint settings; values get
    /// Glue framing) or `dir:PATH` (a SCHEMA_DIR folder; values get Confluent framing). Needed with --format
    /// avro, protobuf or json-schema.
    #[arg(long)]
    pub registry: Option<crate::formats::Registry>,
    /// With --registry glue: a local Glue endpoint (moto; `make dev` keeps one at http://127.0.0.1:5000), used
    /// with the local stack's dummy credentials and region. Without it, AWS's own settings.
    #[arg(long)]
    pub glue_endpoint: Option<String>,
}

/// Generates `count` events of whole order flows (pure, deterministic for a seed).
pub fn generate(count: usize, seed: u64, topic: Option<&str>) -> Vec<Outgoing> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(count);
    let base_ms: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let mut flow = 0u64;
    while out.len() < count {
        flow += 1;
        let order = format!("ord-{seed}-{flow:06}");
        let customer = format!("cust-{:04}", rng.gen_range(0..500));
        let correlation = format!("{:032x}", rng.gen::<u128>());
        let start = base_ms + (flow as i64) * 1_000;
        let amount = rng.gen_range(500..50_000) as f64 / 100.0;
        let steps = [
            // A Java/Spring service: camelCase, metadata envelope.
            (
                "orders",
                json!({"eventType": "OrderCreated", "eventId": format!("{order}-created"), "occurredAt": start,
                       "metadata": {"correlationId": correlation, "sourceService": "order-service"},
                       "order": {"id": order, "customerId": customer, "total": amount, "currency": "EUR",
                                 "lines": [{"sku": format!("SKU-{}", rng.gen_range(1..300)), "quantity": rng.gen_range(1..4)}]}}),
                vec![],
            ),
            // A Python service: snake_case, data envelope, epoch seconds.
            (
                "payments",
                json!({"event_type": "PaymentAuthorized", "event_id": format!("{order}-pay"),
                       "timestamp": (start + 350) as f64 / 1000.0, "source": "payment-service",
                       "data": {"order_id": order, "customer_id": customer, "amount": amount, "method": "card"}}),
                vec![("correlation_id".to_owned(), correlation.clone().into_bytes())],
            ),
            // A .NET service: PascalCase.
            (
                "inventory",
                json!({"EventType": "InventoryReserved", "EventId": format!("{order}-inv"), "OrderId": order,
                       "CorrelationId": correlation, "Service": "inventory-service",
                       "Timestamp": chrono::DateTime::from_timestamp_millis(start + 900).map(|t| t.to_rfc3339()),
                       "Items": [{"Sku": "SKU-1", "Reserved": 1}]}),
                vec![],
            ),
            // A CloudEvents producer in binary mode: attributes in ce_ headers, plain data as the value.
            (
                "shipping",
                json!({"orderId": order, "carrier": "DHL", "trackingNumber": format!("JD{:018}", rng.gen::<u64>() % 1_000_000_000_000_000_000)}),
                vec![
                    ("ce_specversion".to_owned(), b"1.0".to_vec()),
                    ("ce_type".to_owned(), b"OrderShipped".to_vec()),
                    ("ce_source".to_owned(), b"shipping-service".to_vec()),
                    ("ce_id".to_owned(), format!("{order}-ship").into_bytes()),
                    (
                        "ce_time".to_owned(),
                        chrono::DateTime::from_timestamp_millis(start + 4_000)
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_default()
                            .into_bytes(),
                    ),
                    ("ce_correlationid".to_owned(), correlation.clone().into_bytes()),
                ],
            ),
        ];
        for (default_topic, value, headers) in steps {
            if out.len() == count {
                break;
            }
            out.push(Outgoing {
                topic: topic.unwrap_or(default_topic).to_owned(),
                key: Some(order.clone().into_bytes()),
                value: Some(serde_json::to_vec(&value).unwrap_or_default()),
                headers,
            });
        }
    }
    out
}

/// A producer that waits for every message to be acknowledged.
pub fn producer(bootstrap_servers: &str) -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .set("message.timeout.ms", "30000")
        // Room for the trigger's largest records (the fixture corpus has 1 MB values).
        .set("message.max.bytes", "8388608")
        .set("acks", "all")
        // Keeps each partition in send order even when sends are retried.
        .set("enable.idempotence", "true")
        .create()?)
}

/// Sends one message; returns (partition, offset).
pub async fn send(producer: &FutureProducer, message: &Outgoing) -> anyhow::Result<(i32, i64)> {
    let mut headers = OwnedHeaders::new();
    for (name, value) in &message.headers {
        headers = headers.insert(Header {
            key: name,
            value: Some(value),
        });
    }
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&message.topic).headers(headers);
    if let Some(key) = &message.key {
        record = record.key(key);
    }
    if let Some(value) = &message.value {
        record = record.payload(value);
    }
    let delivery = producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(err, _)| anyhow::anyhow!("send to {}: {err}", message.topic))?;
    Ok((delivery.partition, delivery.offset))
}

/// Sends `messages` at `rate` per second (0 = as fast as the broker takes them), many in flight, printing a
/// progress line each second and a summary at the end.
pub async fn send_all(producer: &FutureProducer, messages: &[Outgoing], rate: f64) -> anyhow::Result<()> {
    use futures::stream::{FuturesOrdered, StreamExt};
    const IN_FLIGHT: usize = 256;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut pending = FuturesOrdered::new();
    for (index, message) in messages.iter().enumerate() {
        if rate > 0.0 {
            let due = started + Duration::from_secs_f64(index as f64 / rate);
            // A send does nothing until it is polled: the sends in flight are driven while waiting, or a
            // rate-limited run would hand its messages to the broker in bursts of IN_FLIGHT.
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => break,
                    Some(result) = pending.next(), if !pending.is_empty() => {
                        result?;
                    }
                }
            }
        }
        pending.push_back(send(producer, message));
        if pending.len() >= IN_FLIGHT {
            if let Some(result) = pending.next().await {
                result?;
            }
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            let sent = index + 1;
            eprintln!(
                "produced {sent}/{} ({:.0}/s)",
                messages.len(),
                sent as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    while let Some(result) = pending.next().await {
        result?;
    }
    eprintln!(
        "produced {} messages in {:.1}s",
        messages.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs the command.
pub async fn run(args: &ProduceArgs) -> anyhow::Result<()> {
    let mut messages = match &args.fixtures {
        Some(folder) => shared::fixtures::load_messages(folder)
            .map_err(|e| anyhow::anyhow!("fixtures: {e}"))?
            .into_iter()
            .map(|m| Outgoing {
                topic: m.topic,
                key: m.key,
                value: m.value,
                headers: m.headers,
            })
            .collect(),
        None => match (args.format.kind(), &args.registry) {
            (None, None) => generate(args.count, args.seed, None),
            (None, Some(_)) => anyhow::bail!("--registry needs --format avro, protobuf or json-schema"),
            (Some(_), None) => anyhow::bail!("--format {:?} needs --registry glue or dir:PATH", args.format),
            (Some(_), Some(registry)) => {
                crate::formats::encode_events(
                    args.count,
                    args.seed,
                    None,
                    args.format,
                    registry,
                    args.glue_endpoint.as_deref(),
                )
                .await?
            }
        },
    };
    if let Some(topic) = &args.topic {
        for message in &mut messages {
            message.topic = topic.clone();
        }
    }
    let producer = producer(&args.bootstrap_servers)?;
    eprintln!("sending {} messages to {}", messages.len(), args.bootstrap_servers);
    send_all(&producer, &messages, args.rate).await
}
