//! Payload framing, pure: whether a value is a tombstone, JSON, text or binary, or framed by a schema registry
//! (Confluent's or Glue's, decoded with its schema when it is known); and the JSON text to read fields from.

use super::json;
use crate::model::{PayloadFormat, SchemaInfo, Warning, WarningCode};
use crate::schema::registry::{Resolution, Schemas};
use crate::schema::{unframe, SchemaKind, SchemaRef};

/// A registry-framed value or key, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    pub format: PayloadFormat,
    /// The Confluent schema id, for the summary's `schema_id`.
    pub schema_id: Option<u32>,
    pub schema: SchemaInfo,
    /// The JSON text the body decoded to.
    pub decoded: Option<String>,
    /// Why the body was not decoded.
    pub warning: Option<Warning>,
}

/// Reads registry framing (`None`: the bytes are not framed), decoding the body with its schema from
/// `schemas`. `part` (`value` or `key`) names the part in warnings.
pub fn read_framed(bytes: Option<&[u8]>, schemas: &Schemas, part: &str) -> Option<Framing> {
    let framed = unframe(bytes?)?;
    let schema_ref = match &framed {
        Ok(f) => f.schema,
        Err((schema, _)) => *schema,
    };
    let mut framing = Framing {
        format: format_of(schema_ref, None),
        schema_id: match schema_ref {
            SchemaRef::Confluent(id) => Some(id),
            SchemaRef::Glue(_) => None,
        },
        schema: SchemaInfo {
            registry: schema_ref.registry().to_owned(),
            id: schema_ref.to_string(),
            kind: None,
            name: None,
        },
        decoded: None,
        warning: None,
    };
    let framed = match framed {
        Ok(framed) => framed,
        Err((_, error)) => {
            framing.warning = Some(Warning::new(WarningCode::Undecodable, format!("{part}: {error}")));
            return Some(framing);
        }
    };
    match schemas.get(&schema_ref) {
        Some(Resolution::Found(schema)) => {
            framing.schema.kind = Some(schema.kind.as_str().to_owned());
            framing.schema.name = schema.subject.clone();
            match schema.decode(&framed) {
                Ok(decoded) => {
                    framing.format = format_of(schema_ref, Some(schema.kind));
                    framing.schema.name = framing.schema.name.or(decoded.name);
                    framing.decoded = Some(decoded.json);
                }
                Err(why) => {
                    framing.schema.name = framing.schema.name.or_else(|| schema.name());
                    framing.warning = Some(Warning::new(
                        WarningCode::Undecodable,
                        format!(
                            "{part} does not decode with {} schema {schema_ref}: {why}",
                            schema_ref.registry()
                        ),
                    ));
                }
            }
        }
        other => {
            // No schema: a JSON body is still read as JSON, as it always was; anything else stays binary.
            if let Some(text) = json_text(&framed.body) {
                framing.format = format_of(schema_ref, Some(SchemaKind::Json));
                framing.decoded = Some(text.trim().to_owned());
            }
            let why = match other {
                Some(Resolution::Unknown(why)) | Some(Resolution::Unavailable(why)) => why.clone(),
                _ => format!("schema {schema_ref} was not looked up"),
            };
            if framing.decoded.is_none() {
                framing.warning = Some(Warning::new(
                    WarningCode::SchemaUnknown,
                    format!(
                        "{part} is framed with {} schema {schema_ref}, which is unknown: {why}",
                        schema_ref.registry()
                    ),
                ));
            }
        }
    }
    Some(framing)
}

/// The payload format of a framed body: decoded as `kind`, or not decoded (`None`).
fn format_of(schema: SchemaRef, kind: Option<SchemaKind>) -> PayloadFormat {
    match (schema, kind) {
        (SchemaRef::Confluent(_), Some(SchemaKind::Avro)) => PayloadFormat::ConfluentAvro,
        (SchemaRef::Confluent(_), Some(SchemaKind::Protobuf)) => PayloadFormat::ConfluentProtobuf,
        (SchemaRef::Confluent(_), Some(SchemaKind::Json)) => PayloadFormat::ConfluentJson,
        (SchemaRef::Confluent(_), None) => PayloadFormat::ConfluentBinary,
        (SchemaRef::Glue(_), Some(SchemaKind::Avro)) => PayloadFormat::GlueAvro,
        (SchemaRef::Glue(_), Some(SchemaKind::Protobuf)) => PayloadFormat::GlueProtobuf,
        (SchemaRef::Glue(_), Some(SchemaKind::Json)) => PayloadFormat::GlueJson,
        (SchemaRef::Glue(_), None) => PayloadFormat::GlueBinary,
    }
}

/// Decides the payload format and finds the JSON text to read fields from, if any.
pub fn classify(value: Option<&[u8]>) -> (PayloadFormat, Option<u32>, Option<&str>) {
    let Some(bytes) = value else {
        return (PayloadFormat::Tombstone, None, None);
    };
    if let [0, a, b, c, d, body @ ..] = bytes {
        let schema_id = u32::from_be_bytes([*a, *b, *c, *d]);
        return match json_text(body) {
            Some(text) => (PayloadFormat::ConfluentJson, Some(schema_id), Some(text)),
            None => (PayloadFormat::ConfluentBinary, Some(schema_id), None),
        };
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => match json_text(bytes) {
            Some(text) => (PayloadFormat::Json, None, Some(text)),
            None => (PayloadFormat::Text, None, None),
        },
        Err(_) => (PayloadFormat::Binary, None, None),
    }
}

/// The bytes as JSON text (a leading byte-order mark skipped), when they are one valid JSON document.
pub(super) fn json_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    json::is_valid(text).then_some(text)
}
