//! Registry formats, pure: the wire framing of Confluent's and AWS Glue's schema registries, schemas as their
//! registries hand them out (Avro, Protobuf, JSON Schema), and a framed body decoded with its schema into JSON
//! text that normalization reads like any JSON.
//!
//! - [`unframe`]: which registry framed a value or key, with which schema id, and the body behind the framing
//!   (Glue's zlib bodies inflated, within a bound);
//! - [`RawSchema`] and [`Schema`]: a schema's text and references as a registry answers them, compiled once;
//! - [`Schema::decode`]: a body to JSON text (`avro`: Avro's JSON mapping; `protobuf`: the canonical JSON
//!   mapping).
//!
//! Where schemas come from (a Confluent-compatible registry, AWS Glue, a directory) is [`registry`]'s concern.
//! Nothing here panics on any bytes: the decoders are also run under `catch_unwind`, so that a bug in a
//! dependency costs a record its decoding, never the batch.

mod avro;
mod protobuf;
pub mod registry;

pub use protobuf::{glue_message_index, glue_prefix};

use std::borrow::Cow;
use std::fmt;
use std::io::Read as _;

use serde::{Deserialize, Serialize};

/// The largest body decoded with its schema, and the most a Glue zlib body may inflate to: a decoded value takes
/// many times its bytes in memory, and Kafka records are rarely over 1 MB. Larger bodies are kept undecoded.
pub const MAX_INFLATED_BYTES: usize = 2 * 1024 * 1024;

/// The most JSON text one decoded body may become.
pub const MAX_DECODED_JSON_BYTES: usize = 8 * 1024 * 1024;

/// Which registry, and which schema in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SchemaRef {
    /// A Confluent-compatible registry's global schema id.
    Confluent(u32),
    /// An AWS Glue Schema Registry schema version id (a UUID).
    Glue([u8; 16]),
}

impl SchemaRef {
    /// `confluent` or `glue`.
    pub fn registry(&self) -> &'static str {
        match self {
            SchemaRef::Confluent(_) => "confluent",
            SchemaRef::Glue(_) => "glue",
        }
    }

    /// Reads an id as written in a schema file's name: a decimal Confluent id or a Glue version UUID.
    pub fn parse(text: &str) -> Option<SchemaRef> {
        if let Ok(id) = text.parse::<u32>() {
            return Some(SchemaRef::Confluent(id));
        }
        let hex: String = text.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 || text.len() != 36 {
            return None;
        }
        let bytes = hex::decode(hex).ok()?;
        bytes.try_into().ok().map(SchemaRef::Glue)
    }
}

impl fmt::Display for SchemaRef {
    /// The Confluent id in decimal, or the Glue UUID in its hyphenated lower-case form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaRef::Confluent(id) => write!(f, "{id}"),
            SchemaRef::Glue(uuid) => {
                let h = hex::encode(uuid);
                write!(
                    f,
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                )
            }
        }
    }
}

/// A framed value or key: its schema and the body behind the framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed<'a> {
    pub schema: SchemaRef,
    /// For Confluent Protobuf, the message-index path still leads the body; [`Schema::decode`] reads it.
    pub body: Cow<'a, [u8]>,
}

/// Why framed bytes have no body to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the Glue body is zlib-compressed but does not inflate: {0}")]
    Inflate(String),
    #[error("the Glue body inflates past {MAX_INFLATED_BYTES} bytes")]
    TooLarge,
}

/// The framing of a value or key, if it has one.
///
/// - Confluent: magic byte 0, then the schema id (4 bytes, big-endian), then the body.
/// - AWS Glue: header version byte 3, a compression byte (0 none, 5 zlib), the schema version UUID (16 bytes),
///   then the body. A byte 3 followed by any other compression byte is not Glue framing.
pub fn unframe(bytes: &[u8]) -> Option<Result<Framed<'_>, (SchemaRef, FrameError)>> {
    match bytes {
        [0, a, b, c, d, body @ ..] => Some(Ok(Framed {
            schema: SchemaRef::Confluent(u32::from_be_bytes([*a, *b, *c, *d])),
            body: Cow::Borrowed(body),
        })),
        [3, compression @ (0 | 5), rest @ ..] if rest.len() >= 16 => {
            let (uuid, body) = rest.split_at(16);
            let schema = SchemaRef::Glue(uuid.try_into().expect("16 bytes"));
            if *compression == 0 {
                return Some(Ok(Framed {
                    schema,
                    body: Cow::Borrowed(body),
                }));
            }
            Some(
                inflate(body)
                    .map(|body| Framed {
                        schema,
                        body: Cow::Owned(body),
                    })
                    .map_err(|e| (schema, e)),
            )
        }
        _ => None,
    }
}

/// The schema a value or key is framed with, read from the header only (a Glue body is not inflated).
pub fn schema_ref(bytes: &[u8]) -> Option<SchemaRef> {
    match bytes {
        [0, a, b, c, d, ..] => Some(SchemaRef::Confluent(u32::from_be_bytes([*a, *b, *c, *d]))),
        [3, 0 | 5, rest @ ..] if rest.len() >= 16 => Some(SchemaRef::Glue(rest[..16].try_into().ok()?)),
        _ => None,
    }
}

fn inflate(body: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::ZlibDecoder::new(body).take(MAX_INFLATED_BYTES as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| FrameError::Inflate(e.to_string()))?;
    if out.len() > MAX_INFLATED_BYTES {
        return Err(FrameError::TooLarge);
    }
    Ok(out)
}

/// Glue framing around a body (uncompressed, or zlib when `compress`): what AWS's Glue serializers write.
pub fn glue_frame(version: [u8; 16], body: &[u8], compress: bool) -> Vec<u8> {
    let mut out = vec![3, if compress { 5 } else { 0 }];
    out.extend_from_slice(&version);
    if compress {
        use std::io::Write as _;
        let mut encoder = flate2::write::ZlibEncoder::new(out, flate2::Compression::default());
        encoder.write_all(body).expect("writing to a Vec");
        return encoder.finish().expect("writing to a Vec");
    }
    out.extend_from_slice(body);
    out
}

/// Confluent framing around a body: magic byte 0 and the schema id. (Protobuf bodies start with their
/// message-index path: see [`confluent_message_indexes`].)
pub fn confluent_frame(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A Confluent Protobuf message-index path as it leads the body: `[0]` as the single byte 0, any other path as
/// its length and its indexes, each a zig-zag varint.
pub fn confluent_message_indexes(path: &[i32]) -> Vec<u8> {
    if path == [0] {
        return vec![0];
    }
    let mut out = Vec::new();
    protobuf::put_zigzag(&mut out, path.len() as i64);
    for index in path {
        protobuf::put_zigzag(&mut out, i64::from(*index));
    }
    out
}

/// What kind of schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchemaKind {
    Avro,
    Protobuf,
    Json,
}

impl SchemaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaKind::Avro => "avro",
            SchemaKind::Protobuf => "protobuf",
            SchemaKind::Json => "json",
        }
    }

    /// From a Confluent `schemaType` (absent means Avro) or a Glue `DataFormat`.
    pub fn from_registry(name: Option<&str>) -> Option<SchemaKind> {
        match name.map(str::to_ascii_uppercase).as_deref() {
            None | Some("AVRO") => Some(SchemaKind::Avro),
            Some("PROTOBUF") => Some(SchemaKind::Protobuf),
            Some("JSON") => Some(SchemaKind::Json),
            Some(_) => None,
        }
    }

    /// From a schema file's extension: `avsc`, `proto` or `json`.
    pub fn from_extension(extension: &str) -> Option<SchemaKind> {
        match extension {
            "avsc" => Some(SchemaKind::Avro),
            "proto" => Some(SchemaKind::Protobuf),
            "json" => Some(SchemaKind::Json),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            SchemaKind::Avro => "avsc",
            SchemaKind::Protobuf => "proto",
            SchemaKind::Json => "json",
        }
    }
}

/// A schema as a registry hands it out: its kind, its text, and the schemas it references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSchema {
    pub kind: SchemaKind,
    pub text: String,
    /// Referenced schemas, each under the name the text uses for it (an Avro type name, a `.proto` import path).
    pub references: Vec<(String, RawSchema)>,
    /// The registry's name for it, when it gives one (a Glue schema name).
    pub subject: Option<String>,
}

impl RawSchema {
    pub fn new(kind: SchemaKind, text: impl Into<String>) -> Self {
        RawSchema {
            kind,
            text: text.into(),
            references: Vec::new(),
            subject: None,
        }
    }
}

/// A schema compiled for decoding.
#[derive(Debug)]
pub struct Schema {
    pub kind: SchemaKind,
    /// The registry's name for the schema, when it gave one.
    pub subject: Option<String>,
    compiled: Compiled,
}

#[derive(Debug)]
enum Compiled {
    Avro(avro::AvroSchema),
    Protobuf(protobuf::ProtoSchema),
    Json { title: Option<String> },
}

/// A body decoded with its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBody {
    /// The JSON text.
    pub json: String,
    /// The full name of what was decoded (an Avro record's or a Protobuf message's), or the JSON Schema's title.
    pub name: Option<String>,
}

impl Schema {
    /// Compiles a schema. An error is content (the registry's schema does not parse): records framed with it are
    /// stored undecoded, with the error as a warning.
    pub fn compile(raw: &RawSchema) -> Result<Schema, String> {
        let compiled = guard(|| match raw.kind {
            SchemaKind::Avro => avro::AvroSchema::compile(raw).map(Compiled::Avro),
            SchemaKind::Protobuf => protobuf::ProtoSchema::compile(raw).map(Compiled::Protobuf),
            SchemaKind::Json => Ok(Compiled::Json {
                title: serde_json::from_str::<serde_json::Value>(&raw.text)
                    .ok()
                    .and_then(|v| v.get("title").and_then(|t| t.as_str()).map(str::to_owned)),
            }),
        })?;
        Ok(Schema {
            kind: raw.kind,
            subject: raw.subject.clone(),
            compiled,
        })
    }

    /// The name a record shows for this schema before any body is decoded: the registry's name or the schema's
    /// own (an Avro record's full name, a JSON Schema's title).
    pub fn name(&self) -> Option<String> {
        self.subject.clone().or_else(|| match &self.compiled {
            Compiled::Avro(schema) => schema.name(),
            Compiled::Protobuf(_) => None,
            Compiled::Json { title } => title.clone(),
        })
    }

    /// Decodes a framed body (as [`unframe`] left it) into JSON text.
    pub fn decode(&self, framed: &Framed<'_>) -> Result<DecodedBody, String> {
        let body = &framed.body[..];
        if body.len() > MAX_INFLATED_BYTES {
            return Err(format!(
                "the body is over {MAX_INFLATED_BYTES} bytes, too large to decode"
            ));
        }
        guard(|| match &self.compiled {
            Compiled::Avro(schema) => schema.decode(body),
            Compiled::Protobuf(schema) => match framed.schema {
                SchemaRef::Confluent(_) => schema.decode_confluent(body),
                SchemaRef::Glue(_) => schema.decode_glue(body),
            },
            Compiled::Json { title } => {
                let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8 JSON".to_owned())?;
                let text = text.strip_prefix('\u{feff}').unwrap_or(text);
                if !crate::normalize::json::is_valid(text) {
                    return Err("the body is not a JSON document".into());
                }
                Ok(DecodedBody {
                    json: text.trim().to_owned(),
                    name: title.clone(),
                })
            }
        })
    }
}

impl Schema {
    /// Encodes a JSON document with this schema, as a producer would (for `notifications produce` and tests).
    /// Avro: the JSON resolved against the schema; Protobuf: the canonical JSON of the message `message` (the
    /// file's first by default); JSON: the text itself.
    pub fn encode(&self, json: &str, message: Option<&str>) -> Result<Vec<u8>, String> {
        match &self.compiled {
            Compiled::Avro(schema) => schema.encode(json),
            Compiled::Protobuf(schema) => schema.encode(json, message),
            Compiled::Json { .. } => Ok(json.as_bytes().to_vec()),
        }
    }

    /// The full name of the file's first Protobuf message, the one a single-message schema holds.
    pub fn first_message(&self) -> Option<String> {
        match &self.compiled {
            Compiled::Protobuf(schema) => schema.first_message(),
            _ => None,
        }
    }
}

/// Schemas for property tests and fuzzing: Confluent ids 1 (Avro), 2 (Protobuf) and 3 (JSON Schema); Glue
/// versions `[0; 16]` (Avro) and `[1; 16]` (Protobuf).
pub fn sample_schemas() -> registry::Schemas {
    use registry::Resolution;
    const AVRO: &str = r#"{"type": "record", "name": "OrderEvent", "namespace": "shop", "fields": [
        {"name": "orderId", "type": "string"},
        {"name": "customerId", "type": ["null", "string"], "default": null},
        {"name": "occurredAt", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "amount", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}], "default": null},
        {"name": "tags", "type": {"type": "map", "values": "string"}},
        {"name": "lines", "type": {"type": "array", "items": "long"}}]}"#;
    const PROTO: &str = r#"syntax = "proto3"; package shop;
        import "google/protobuf/timestamp.proto";
        message OrderEvent { string order_id = 1; google.protobuf.Timestamp occurred_at = 2;
          map<string, int64> tags = 3; repeated Line lines = 4; oneof pay { string card = 5; int32 points = 6; }
          message Line { string sku = 1; uint32 qty = 2; } }"#;
    let compile = |kind, text| {
        Resolution::Found(std::sync::Arc::new(
            Schema::compile(&RawSchema::new(kind, text)).expect("sample schema"),
        ))
    };
    let mut schemas = registry::Schemas::default();
    schemas.insert(SchemaRef::Confluent(1), compile(SchemaKind::Avro, AVRO));
    schemas.insert(SchemaRef::Confluent(2), compile(SchemaKind::Protobuf, PROTO));
    schemas.insert(
        SchemaRef::Confluent(3),
        compile(SchemaKind::Json, r#"{"title": "OrderEvent"}"#),
    );
    schemas.insert(SchemaRef::Glue([0; 16]), compile(SchemaKind::Avro, AVRO));
    schemas.insert(SchemaRef::Glue([1; 16]), compile(SchemaKind::Protobuf, PROTO));
    schemas
}

/// Runs a decoder, turning a panic in it into an error.
fn guard<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err("the decoder failed on these bytes".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: [u8; 16] = [
        0x3e, 0x1c, 0x4b, 0x8a, 0x5d, 0x21, 0x4f, 0x0e, 0x9a, 0x77, 0x10, 0x22, 0x33, 0x44, 0x55, 0x66,
    ];

    #[test]
    fn schema_refs_print_and_parse_as_file_names_write_them() {
        let glue = SchemaRef::Glue(UUID);
        assert_eq!(glue.to_string(), "3e1c4b8a-5d21-4f0e-9a77-102233445566");
        assert_eq!(SchemaRef::parse(&glue.to_string()), Some(glue));
        assert_eq!(SchemaRef::parse("3E1C4B8A-5D21-4F0E-9A77-102233445566"), Some(glue));
        assert_eq!(SchemaRef::parse("42"), Some(SchemaRef::Confluent(42)));
        for bad in [
            "",
            "-1",
            "4294967296",
            "3e1c4b8a5d214f0e9a77102233445566",
            "zz1c4b8a-5d21-4f0e-9a77-102233445566",
        ] {
            assert_eq!(SchemaRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn confluent_and_glue_framing_are_told_apart_and_unframed() {
        let framed = confluent_frame(7, b"body");
        let Some(Ok(f)) = unframe(&framed) else { panic!() };
        assert_eq!(f.schema, SchemaRef::Confluent(7));
        assert_eq!(&f.body[..], b"body");

        for compress in [false, true] {
            let framed = glue_frame(UUID, b"{\"orderId\": \"o-1\"}", compress);
            assert_eq!(framed[1], if compress { 5 } else { 0 });
            let Some(Ok(f)) = unframe(&framed) else { panic!() };
            assert_eq!(f.schema, SchemaRef::Glue(UUID));
            assert_eq!(&f.body[..], b"{\"orderId\": \"o-1\"}");
        }
        // Too short, another compression byte, plain JSON and text: not framed.
        for plain in [
            &b"\x00\x01\x02"[..],
            &[3, 1, 0, 0],
            &[3, 7][..],
            b"{\"a\":1}",
            b"hello",
            b"",
        ] {
            assert!(unframe(plain).is_none(), "{plain:?}");
        }
        let mut short_glue = vec![3, 0];
        short_glue.extend_from_slice(&[0; 15]);
        assert!(unframe(&short_glue).is_none());
    }

    #[test]
    fn a_glue_body_that_does_not_inflate_is_an_error_naming_its_schema() {
        let mut framed = vec![3, 5];
        framed.extend_from_slice(&UUID);
        framed.extend_from_slice(b"not zlib at all");
        let Some(Err((schema, FrameError::Inflate(_)))) = unframe(&framed) else {
            panic!()
        };
        assert_eq!(schema, SchemaRef::Glue(UUID));
        // A zlib bomb stops at the bound.
        let bomb = glue_frame(UUID, &vec![0u8; MAX_INFLATED_BYTES + 10], true);
        assert!(bomb.len() < 100_000);
        assert!(matches!(unframe(&bomb), Some(Err((_, FrameError::TooLarge)))));
    }

    #[test]
    fn kinds_come_from_registries_and_file_names() {
        assert_eq!(SchemaKind::from_registry(None), Some(SchemaKind::Avro));
        assert_eq!(SchemaKind::from_registry(Some("PROTOBUF")), Some(SchemaKind::Protobuf));
        assert_eq!(SchemaKind::from_registry(Some("json")), Some(SchemaKind::Json));
        assert_eq!(SchemaKind::from_registry(Some("XML")), None);
        for kind in [SchemaKind::Avro, SchemaKind::Protobuf, SchemaKind::Json] {
            assert_eq!(SchemaKind::from_extension(kind.extension()), Some(kind));
        }
    }

    #[test]
    fn json_schema_bodies_are_checked_and_named_by_title() {
        let schema = Schema::compile(&RawSchema::new(
            SchemaKind::Json,
            r#"{"title": "OrderPlaced", "type": "object"}"#,
        ))
        .unwrap();
        assert_eq!(schema.name().as_deref(), Some("OrderPlaced"));
        let framed = confluent_frame(1, b"\xef\xbb\xbf{\"orderId\": \"o-1\"} ");
        let Some(Ok(f)) = unframe(&framed) else { panic!() };
        let decoded = schema.decode(&f).unwrap();
        assert_eq!(decoded.json, r#"{"orderId": "o-1"}"#);
        for bad in [&b"{\"orderId\": "[..], b"\xff\xfe", b""] {
            let framed = confluent_frame(1, bad);
            let Some(Ok(f)) = unframe(&framed) else { panic!() };
            assert!(schema.decode(&f).is_err(), "{bad:?}");
        }
    }
}
