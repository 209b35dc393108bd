//! Payload framing, pure: whether a value is a tombstone, JSON, text or binary, and Confluent schema-registry
//! framing (magic byte 0 and a 4-byte schema id) around it; and the JSON text to read fields from.

use super::json;
use crate::model::PayloadFormat;

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
