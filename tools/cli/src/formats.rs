//! `notifications produce --format avro|protobuf|json-schema --registry glue|dir:PATH`: order-flow events
//! encoded with a schema and framed as registry serializers frame them.
//!
//! - `--registry glue`: the schema is registered in AWS Glue Schema Registry (the standard endpoint settings:
//!   `make dev`'s moto at `http://127.0.0.1:5000` through `AWS_ENDPOINT_URL`), and values carry Glue framing
//!   with the version UUID, as AWS's Glue serializers write it.
//! - `--registry dir:PATH`: the schema is written to `PATH/{id}.{avsc,proto,json}` (the layout `SCHEMA_DIR`
//!   reads) under a fixed Confluent id, and values carry Confluent framing.
//!
//! The schemas are `tools/cli/schemas/order-event.*`: one record shape for every step of the flow.

use aws_sdk_glue::error::ProvideErrorMetadata as _;
use aws_sdk_glue::types::{Compatibility, DataFormat, RegistryId, SchemaId};
use serde_json::json;
use shared::schema::{confluent_frame, confluent_message_indexes, glue_frame, RawSchema, Schema, SchemaKind};

use crate::produce::Outgoing;

pub const AVRO_SCHEMA: &str = include_str!("../schemas/order-event.avsc");
pub const PROTOBUF_SCHEMA: &str = include_str!("../schemas/order-event.proto");
pub const JSON_SCHEMA: &str = include_str!("../schemas/order-event.schema.json");

/// How values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Plain JSON, each service in its own naming convention (no registry).
    Json,
    Avro,
    Protobuf,
    JsonSchema,
}

impl Format {
    pub fn kind(self) -> Option<SchemaKind> {
        match self {
            Format::Json => None,
            Format::Avro => Some(SchemaKind::Avro),
            Format::Protobuf => Some(SchemaKind::Protobuf),
            Format::JsonSchema => Some(SchemaKind::Json),
        }
    }

    pub fn schema_text(self) -> &'static str {
        match self {
            Format::Avro => AVRO_SCHEMA,
            Format::Protobuf => PROTOBUF_SCHEMA,
            Format::Json | Format::JsonSchema => JSON_SCHEMA,
        }
    }

    /// The Confluent id a schema directory files this format's schema under.
    pub fn confluent_id(self) -> u32 {
        match self {
            Format::Avro => 1001,
            Format::Protobuf => 1002,
            Format::Json | Format::JsonSchema => 1003,
        }
    }
}

/// Where the schema is registered, and so how values are framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registry {
    Glue,
    Dir(std::path::PathBuf),
}

impl std::str::FromStr for Registry {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "glue" => Ok(Registry::Glue),
            _ => match text.strip_prefix("dir:") {
                Some(path) if !path.is_empty() => Ok(Registry::Dir(path.into())),
                _ => Err(format!("{text:?} is not glue or dir:PATH")),
            },
        }
    }
}

/// The JSON of an event as the Protobuf canonical mapping writes it (`occurredAt` as RFC 3339 text).
fn protobuf_json(event: &serde_json::Value) -> serde_json::Value {
    let mut event = event.clone();
    if let Some(ms) = event.get("occurredAt").and_then(|v| v.as_i64()) {
        event["occurredAt"] = json!(chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default());
    }
    if event.get("amount").is_some_and(|a| a.is_null()) {
        event.as_object_mut().map(|o| o.remove("amount"));
    }
    if event.get("customerId").is_some_and(|a| a.is_null()) {
        event.as_object_mut().map(|o| o.remove("customerId"));
    }
    event
}

/// The events of `count` steps of order flows, in the typed shape (`occurredAt` in epoch milliseconds, as the
/// Avro and JSON Schema forms have it): the same flows as the JSON generator, read through normalization.
pub fn typed_events(count: usize, seed: u64, topic: Option<&str>) -> Vec<(String, String, serde_json::Value)> {
    crate::produce::generate(count, seed, topic)
        .into_iter()
        .map(|message| {
            let value: serde_json::Value =
                serde_json::from_slice(message.value.as_deref().unwrap_or_default()).unwrap_or_default();
            let key = String::from_utf8_lossy(message.key.as_deref().unwrap_or_default()).into_owned();
            let normalized = shared::normalize::normalize(
                &shared::model::KafkaMessage {
                    topic: message.topic.as_str().into(),
                    partition: 0,
                    offset: Some(0),
                    timestamp: Some(0),
                    timestamp_type: None,
                    key: None,
                    value: message.value.clone(),
                    headers: message.headers.clone(),
                    warnings: Vec::new(),
                    fingerprint: String::new(),
                },
                &shared::normalize::Context {
                    received_at: chrono::Utc::now(),
                    topic_services: &Default::default(),
                    schemas: shared::normalize::Schemas::none(),
                },
            );
            let f = normalized.fields;
            let occurred_at = chrono::DateTime::parse_from_rfc3339(&normalized.occurred_at)
                .map(|t| t.timestamp_millis())
                .unwrap_or_default();
            let amount = value
                .pointer("/order/total")
                .or_else(|| value.pointer("/data/amount"))
                .and_then(|a| a.as_f64());
            let event = json!({
                "eventType": f.event_type.unwrap_or_default(),
                "eventId": f.event_id.unwrap_or_default(),
                "orderId": f.order_id.unwrap_or_else(|| key.clone()),
                "customerId": f.customer_id,
                "correlationId": f.correlation_id.unwrap_or_default(),
                "sourceService": f.source_service.unwrap_or_default(),
                "occurredAt": occurred_at,
                "amount": amount,
            });
            (message.topic, key, event)
        })
        .collect()
}

/// How a body is framed.
pub type Framer = Box<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// Confluent framing under schema id `id`, with the message-index path `[0]` before a Protobuf body.
pub fn confluent_framer(format: Format, id: u32) -> Framer {
    match format {
        Format::Protobuf => {
            Box::new(move |body| confluent_frame(id, &[confluent_message_indexes(&[0]), body.to_vec()].concat()))
        }
        _ => Box::new(move |body| confluent_frame(id, body)),
    }
}

/// Glue framing with schema version `version` (zlib-compressed when `compress`), with the message index 0
/// before a Protobuf body, as AWS's Glue Protobuf serializer writes it.
pub fn glue_framer(format: Format, version: [u8; 16], compress: bool) -> Framer {
    match format {
        Format::Protobuf => Box::new(move |body| {
            glue_frame(
                version,
                &[shared::schema::glue_prefix(0), body.to_vec()].concat(),
                compress,
            )
        }),
        _ => Box::new(move |body| glue_frame(version, body, compress)),
    }
}

/// The messages of `count` flow steps, encoded in `format` and framed by `frame`.
pub fn encode_flow(
    count: usize,
    seed: u64,
    topic: Option<&str>,
    format: Format,
    frame: &Framer,
) -> anyhow::Result<Vec<Outgoing>> {
    let kind = format
        .kind()
        .ok_or_else(|| anyhow::anyhow!("--format json needs no registry"))?;
    let schema = Schema::compile(&RawSchema::new(kind, format.schema_text()))
        .map_err(|e| anyhow::anyhow!("the {format:?} schema: {e}"))?;
    typed_events(count, seed, topic)
        .into_iter()
        .map(|(topic, key, event)| {
            let json = match format {
                Format::Protobuf => protobuf_json(&event),
                _ => event,
            };
            let body = schema
                .encode(&json.to_string(), None)
                .map_err(|e| anyhow::anyhow!("encoding {json}: {e}"))?;
            Ok(Outgoing {
                topic,
                key: Some(key.into_bytes()),
                value: Some(frame(&body)),
                headers: Vec::new(),
            })
        })
        .collect()
}

/// The messages of `count` flow steps, encoded in `format` and framed for `registry` (where the schema is
/// registered first).
pub async fn encode_events(
    count: usize,
    seed: u64,
    topic: Option<&str>,
    format: Format,
    registry: &Registry,
    glue_endpoint: Option<&str>,
) -> anyhow::Result<Vec<Outgoing>> {
    let kind = format
        .kind()
        .ok_or_else(|| anyhow::anyhow!("--format json needs no registry"))?;
    let frame = match registry {
        Registry::Dir(path) => {
            std::fs::create_dir_all(path)?;
            let file = path.join(format!("{}.{}", format.confluent_id(), kind.extension()));
            std::fs::write(&file, format.schema_text())?;
            eprintln!("schema {} written to {}", format.confluent_id(), file.display());
            confluent_framer(format, format.confluent_id())
        }
        Registry::Glue => {
            // A local endpoint (moto) with the local stack's dummy credentials and region, or AWS's settings.
            let aws = match glue_endpoint {
                Some(url) => local_stack::aws::local_config(url),
                None => aws_config::load_from_env().await,
            };
            let version = register_in_glue(&aws_sdk_glue::Client::new(&aws), format).await?;
            eprintln!("schema registered in Glue registry {GLUE_REGISTRY}: version {version}");
            glue_framer(format, glue_uuid(&version)?, false)
        }
    };
    encode_flow(count, seed, topic, format, &frame)
}

/// A Glue schema version id as its 16 bytes.
pub fn glue_uuid(version: &str) -> anyhow::Result<[u8; 16]> {
    match shared::schema::SchemaRef::parse(version) {
        Some(shared::schema::SchemaRef::Glue(uuid)) => Ok(uuid),
        _ => anyhow::bail!("Glue answered schema version id {version:?}, not a UUID"),
    }
}

/// The name of the Glue registry `produce` registers its schemas in.
pub const GLUE_REGISTRY: &str = "notifications-dev";

/// Registers the format's schema in Glue (the registry and schema made when missing); answers the version id.
pub async fn register_in_glue(client: &aws_sdk_glue::Client, format: Format) -> anyhow::Result<String> {
    let data_format = match format {
        Format::Avro => DataFormat::Avro,
        Format::Protobuf => DataFormat::Protobuf,
        Format::Json | Format::JsonSchema => DataFormat::Json,
    };
    let schema_name = format!("order-event-{}", format.kind().map(|k| k.as_str()).unwrap_or("json"));
    match client.create_registry().registry_name(GLUE_REGISTRY).send().await {
        Ok(_) => {}
        Err(e) if e.code() == Some("AlreadyExistsException") => {}
        Err(e) => anyhow::bail!(
            "CreateRegistry {GLUE_REGISTRY}: {}",
            aws_sdk_glue::error::DisplayErrorContext(&e)
        ),
    }
    let created = client
        .create_schema()
        .registry_id(RegistryId::builder().registry_name(GLUE_REGISTRY).build())
        .schema_name(&schema_name)
        .data_format(data_format)
        .compatibility(Compatibility::None)
        .schema_definition(format.schema_text())
        .send()
        .await;
    let version = match created {
        Ok(output) => output.schema_version_id().map(str::to_owned),
        Err(e) if e.code() == Some("AlreadyExistsException") => client
            .register_schema_version()
            .schema_id(
                SchemaId::builder()
                    .registry_name(GLUE_REGISTRY)
                    .schema_name(&schema_name)
                    .build(),
            )
            .schema_definition(format.schema_text())
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "RegisterSchemaVersion {schema_name}: {}",
                    aws_sdk_glue::error::DisplayErrorContext(&e)
                )
            })?
            .schema_version_id()
            .map(str::to_owned),
        Err(e) => anyhow::bail!(
            "CreateSchema {schema_name}: {}",
            aws_sdk_glue::error::DisplayErrorContext(&e)
        ),
    };
    version.ok_or_else(|| anyhow::anyhow!("Glue answered no schema version id for {schema_name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::normalize::Schemas;
    use shared::schema::registry::Resolution;
    use std::sync::Arc;

    #[test]
    fn registries_parse_from_the_command_line() {
        assert_eq!("glue".parse::<Registry>(), Ok(Registry::Glue));
        assert_eq!("dir:/tmp/s".parse::<Registry>(), Ok(Registry::Dir("/tmp/s".into())));
        for bad in ["dir:", "confluent", ""] {
            assert!(bad.parse::<Registry>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn every_format_decodes_back_to_the_flow_with_its_ids() {
        let dir = std::env::temp_dir().join(format!("produce-formats-{}", std::process::id()));
        for format in [Format::Avro, Format::Protobuf, Format::JsonSchema] {
            let messages = encode_events(8, 3, None, format, &Registry::Dir(dir.clone()), None)
                .await
                .unwrap();
            let kind = format.kind().unwrap();
            let raw = shared::schema::registry::SchemaDir::new(&dir)
                .read(&shared::schema::SchemaRef::Confluent(format.confluent_id()))
                .unwrap();
            assert_eq!(raw.kind, kind);
            let mut schemas = Schemas::default();
            schemas.insert(
                shared::schema::SchemaRef::Confluent(format.confluent_id()),
                Resolution::Found(Arc::new(Schema::compile(&raw).unwrap())),
            );
            let map = Default::default();
            for (message, (_, key, _)) in messages.iter().zip(typed_events(8, 3, None)) {
                let n = shared::normalize::normalize(
                    &shared::model::KafkaMessage {
                        topic: message.topic.as_str().into(),
                        partition: 0,
                        offset: Some(1),
                        timestamp: Some(1),
                        timestamp_type: None,
                        key: message.key.clone(),
                        value: message.value.clone(),
                        headers: Vec::new(),
                        warnings: Vec::new(),
                        fingerprint: String::new(),
                    },
                    &shared::normalize::Context {
                        received_at: chrono::Utc::now(),
                        topic_services: &map,
                        schemas: &schemas,
                    },
                );
                assert!(n.warnings.is_empty(), "{format:?}: {:?}", n.warnings);
                assert_eq!(n.fields.order_id.as_deref(), Some(key.as_str()), "{format:?}");
                assert!(n.fields.event_type.is_some() && n.fields.correlation_id.is_some());
                assert!(
                    n.occurred_at.starts_with("2026-01-01T"),
                    "{format:?}: {}",
                    n.occurred_at
                );
                assert_eq!(
                    n.payload_format.as_str(),
                    match format {
                        Format::Avro => "confluent-avro",
                        Format::Protobuf => "confluent-protobuf",
                        _ => "confluent-json",
                    }
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
