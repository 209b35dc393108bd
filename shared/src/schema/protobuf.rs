//! Protobuf bodies to JSON text: descriptors compiled at run time (protox) from the registry's `.proto` text
//! and its references, messages decoded dynamically (prost-reflect) and written in the canonical JSON mapping
//! (field names in lowerCamelCase, enums by name, 64-bit integers as text, well-known types as their JSON forms).
//!
//! Which message a body holds:
//! - Confluent: a message-index path leads the body (zig-zag varints: the path's length, then each index into
//!   the file's messages, then into their nested messages, counting declared messages only as Confluent's
//!   serializers do, not map entry types; the path `[0]` as the single byte 0).
//! - Glue: one unsigned varint leads the body, the index of the message among all the file's messages, nested
//!   ones included, sorted by full name (the order of AWS's `MessageIndexFinder`).

use std::collections::HashMap;

use prost_reflect::{DescriptorPool, DynamicMessage, FileDescriptor, MessageDescriptor};

use super::{DecodedBody, RawSchema, SchemaKind};

/// The name the registry's schema text is compiled under.
const MAIN_FILE: &str = "registry-schema.proto";

pub(super) struct ProtoSchema {
    file: FileDescriptor,
    /// Glue's message order: every message of the file, sorted by full name.
    glue_order: Vec<MessageDescriptor>,
}

impl std::fmt::Debug for ProtoSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtoSchema").field("file", &self.file.name()).finish()
    }
}

/// The registry's files, by import path, for the compiler.
struct Sources(HashMap<String, String>);

impl protox::file::FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match self.0.get(name) {
            Some(source) => protox::file::File::from_source(name, source),
            None => protox::file::GoogleFileResolver::new().open_file(name),
        }
    }
}

impl ProtoSchema {
    pub(super) fn compile(raw: &RawSchema) -> Result<ProtoSchema, String> {
        let mut files = HashMap::new();
        collect(raw, MAIN_FILE, &mut files, 0)?;
        let mut compiler = protox::Compiler::with_file_resolver(Sources(files));
        compiler
            .open_file(MAIN_FILE)
            .map_err(|e| format!("the Protobuf schema does not compile: {e}"))?;
        let pool: DescriptorPool = compiler.descriptor_pool();
        let file = pool
            .get_file_by_name(MAIN_FILE)
            .ok_or_else(|| "the Protobuf schema compiled to no file".to_owned())?;
        let mut glue_order = Vec::new();
        let mut queue: std::collections::VecDeque<MessageDescriptor> = file.messages().collect();
        while let Some(message) = queue.pop_front() {
            queue.extend(message.child_messages());
            glue_order.push(message);
        }
        glue_order.sort_by(|a, b| a.full_name().cmp(b.full_name()));
        Ok(ProtoSchema { file, glue_order })
    }

    pub(super) fn first_message(&self) -> Option<String> {
        self.file.messages().next().map(|m| m.full_name().to_owned())
    }

    /// The message `full_name` (the file's first by default) written from its canonical JSON form.
    pub(super) fn encode(&self, json: &str, full_name: Option<&str>) -> Result<Vec<u8>, String> {
        use prost::Message as _;
        let name = match full_name {
            Some(name) => name.to_owned(),
            None => self
                .first_message()
                .ok_or_else(|| "the Protobuf schema has no message".to_owned())?,
        };
        let message = self
            .file
            .parent_pool()
            .get_message_by_name(&name)
            .ok_or_else(|| format!("the Protobuf schema has no message {name}"))?;
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let dynamic = DynamicMessage::deserialize(message, &mut deserializer).map_err(|e| e.to_string())?;
        Ok(dynamic.encode_to_vec())
    }

    pub(super) fn decode_confluent(&self, body: &[u8]) -> Result<DecodedBody, String> {
        let mut input = body;
        let count = get_zigzag(&mut input)?;
        let path: Vec<i64> = if count == 0 {
            vec![0]
        } else {
            if !(1..=32).contains(&count) {
                return Err(format!("the message-index path's length {count} is out of range"));
            }
            (0..count).map(|_| get_zigzag(&mut input)).collect::<Result<_, _>>()?
        };
        let mut message: Option<MessageDescriptor> = None;
        for index in &path {
            // Confluent's serializers count the messages the schema declares: not the entry types that `map<>`
            // fields generate (which descriptors list among the nested messages).
            let found = usize::try_from(*index).ok().and_then(|i| match &message {
                None => self.file.messages().nth(i),
                Some(parent) => parent.child_messages().filter(|m| !m.is_map_entry()).nth(i),
            });
            message = Some(found.ok_or_else(|| format!("the message-index path {path:?} names no message"))?);
        }
        let message = message.ok_or_else(|| "the message-index path is empty".to_owned())?;
        decode_message(message, input)
    }

    pub(super) fn decode_glue(&self, body: &[u8]) -> Result<DecodedBody, String> {
        let mut input = body;
        let index = get_varint(&mut input)?;
        let message = usize::try_from(index)
            .ok()
            .and_then(|i| self.glue_order.get(i))
            .ok_or_else(|| format!("the Glue message index {index} names no message"))?;
        decode_message(message.clone(), input)
    }
}

fn decode_message(message: MessageDescriptor, bytes: &[u8]) -> Result<DecodedBody, String> {
    let name = message.full_name().to_owned();
    let decoded =
        DynamicMessage::decode(message, bytes).map_err(|e| format!("the body does not decode as {name}: {e}"))?;
    let json = serde_json::to_string(&decoded).map_err(|e| format!("{name} has no JSON form: {e}"))?;
    Ok(DecodedBody { json, name: Some(name) })
}

/// Every file of a schema and its references, by import path.
fn collect(raw: &RawSchema, name: &str, files: &mut HashMap<String, String>, depth: usize) -> Result<(), String> {
    if depth > 16 {
        return Err("the Protobuf schema's references nest deeper than 16 levels".into());
    }
    if raw.kind != SchemaKind::Protobuf {
        return Err(format!("the Protobuf schema's reference {name} is not Protobuf"));
    }
    files.insert(name.to_owned(), raw.text.clone());
    for (import, reference) in &raw.references {
        collect(reference, import, files, depth + 1)?;
    }
    Ok(())
}

fn get_varint(input: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input
            .split_first()
            .ok_or_else(|| "the body ends inside its message index".to_owned())?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("the message index is not a varint".into())
}

fn get_zigzag(input: &mut &[u8]) -> Result<i64, String> {
    let value = get_varint(input)?;
    Ok((value >> 1) as i64 ^ -((value & 1) as i64))
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(super) fn put_zigzag(out: &mut Vec<u8>, value: i64) {
    put_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// The Glue message index of a message, by full name (for producers and tests).
pub fn glue_message_index(schema: &super::Schema, full_name: &str) -> Option<u32> {
    match &schema.compiled {
        super::Compiled::Protobuf(p) => p
            .glue_order
            .iter()
            .position(|m| m.full_name() == full_name)
            .map(|i| i as u32),
        _ => None,
    }
}

/// The Glue varint prefix of a message index.
pub fn glue_prefix(index: u32) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, u64::from(index));
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::schema::{confluent_frame, confluent_message_indexes, glue_frame, unframe, Schema};

    pub const ORDERS_PROTO: &str = r#"
syntax = "proto3";
package shop.orders;
import "google/protobuf/timestamp.proto";
import "common/money.proto";

message OrderPlaced {
  string order_id = 1;
  string customer_id = 2;
  Status status = 3;
  repeated Line lines = 4;
  map<string, int32> tags = 5;
  oneof payment {
    string card_token = 6;
    string voucher_code = 7;
  }
  google.protobuf.Timestamp occurred_at = 8;
  common.Money total = 9;
  int64 sequence = 10;
  bytes raw = 11;
  message Line {
    string sku = 1;
    int32 qty = 2;
  }
  enum Status {
    STATUS_UNSPECIFIED = 0;
    NEW = 1;
    PAID = 2;
  }
}

message OrderShipped {
  string order_id = 1;
}
"#;

    pub const MONEY_PROTO: &str = r#"
syntax = "proto3";
package common;
message Money { string currency = 1; int64 units = 2; }
"#;

    pub fn orders_schema() -> Schema {
        let mut raw = RawSchema::new(SchemaKind::Protobuf, ORDERS_PROTO);
        raw.references.push((
            "common/money.proto".into(),
            RawSchema::new(SchemaKind::Protobuf, MONEY_PROTO),
        ));
        Schema::compile(&raw).unwrap()
    }

    pub const ORDER_JSON: &str = r#"{"orderId": "o-1", "customerId": "c-9", "status": "PAID",
        "lines": [{"sku": "sku-1", "qty": 2}], "tags": {"vip": 1}, "cardToken": "tok-1",
        "occurredAt": "2024-03-01T10:00:00.250Z", "total": {"currency": "EUR", "units": "12"},
        "sequence": "9007199254740993", "raw": "/wA="}"#;

    #[test]
    fn confluent_protobuf_with_nested_messages_oneof_enums_maps_and_well_known_types() {
        let schema = orders_schema();
        let message = schema.encode(ORDER_JSON, Some("shop.orders.OrderPlaced")).unwrap();
        let framed = confluent_frame(3, &[confluent_message_indexes(&[0]), message].concat());
        let Some(Ok(f)) = unframe(&framed) else { panic!() };
        let decoded = schema.decode(&f).unwrap();
        assert_eq!(decoded.name.as_deref(), Some("shop.orders.OrderPlaced"));
        let json: serde_json::Value = serde_json::from_str(&decoded.json).unwrap();
        let expected: serde_json::Value = serde_json::from_str(ORDER_JSON).unwrap();
        assert_eq!(json, expected);
    }

    #[test]
    fn message_index_paths_pick_nested_and_later_messages() {
        let schema = orders_schema();
        let line = schema
            .encode(r#"{"sku": "s", "qty": 3}"#, Some("shop.orders.OrderPlaced.Line"))
            .unwrap();
        // Declared messages only, as Confluent's serializers count them: Line is [0, 0], though the descriptor
        // lists the map field's generated entry type before it.
        let framed = confluent_frame(3, &[confluent_message_indexes(&[0, 0]), line].concat());
        let Some(Ok(f)) = unframe(&framed) else { panic!() };
        let decoded = schema.decode(&f).unwrap();
        assert_eq!(decoded.name.as_deref(), Some("shop.orders.OrderPlaced.Line"));
        assert_eq!(decoded.json, r#"{"sku":"s","qty":3}"#);

        let shipped = schema
            .encode(r#"{"orderId": "o-2"}"#, Some("shop.orders.OrderShipped"))
            .unwrap();
        let framed = confluent_frame(3, &[confluent_message_indexes(&[1]), shipped.clone()].concat());
        let Some(Ok(f)) = unframe(&framed) else { panic!() };
        assert_eq!(schema.decode(&f).unwrap().json, r#"{"orderId":"o-2"}"#);
        // A path that names nothing, and a body cut inside its path.
        for path in [vec![2], vec![0, 1], vec![0, 5], vec![-1], vec![1, 0]] {
            let framed = confluent_frame(3, &[confluent_message_indexes(&path), shipped.clone()].concat());
            let Some(Ok(f)) = unframe(&framed) else { panic!() };
            assert!(schema.decode(&f).unwrap_err().contains("names no message"), "{path:?}");
        }
        let framed = confluent_frame(3, &[0x80]);
        let Some(Ok(f)) = unframe(&framed) else { panic!() };
        assert!(schema.decode(&f).is_err());
    }

    #[test]
    fn glue_protobuf_indexes_every_message_by_full_name() {
        let schema = orders_schema();
        // OrderPlaced, OrderPlaced.Line, OrderPlaced.TagsEntry, OrderShipped
        assert_eq!(glue_message_index(&schema, "shop.orders.OrderPlaced"), Some(0));
        assert_eq!(glue_message_index(&schema, "shop.orders.OrderPlaced.Line"), Some(1));
        assert_eq!(glue_message_index(&schema, "shop.orders.OrderShipped"), Some(3));
        let shipped = schema
            .encode(r#"{"orderId": "o-2"}"#, Some("shop.orders.OrderShipped"))
            .unwrap();
        for compress in [false, true] {
            let framed = glue_frame([7; 16], &[glue_prefix(3), shipped.clone()].concat(), compress);
            let Some(Ok(f)) = unframe(&framed) else { panic!() };
            let decoded = schema.decode(&f).unwrap();
            assert_eq!(decoded.name.as_deref(), Some("shop.orders.OrderShipped"));
            assert_eq!(decoded.json, r#"{"orderId":"o-2"}"#);
        }
        let framed = glue_frame([7; 16], &[glue_prefix(4), shipped].concat(), false);
        let Some(Ok(f)) = unframe(&framed) else { panic!() };
        assert!(schema.decode(&f).unwrap_err().contains("names no message"));
    }

    #[test]
    fn corrupt_bodies_and_schemas_are_errors_not_panics() {
        let schema = orders_schema();
        for body in [vec![0, 0xff, 0xff, 0xff], vec![0, 0x0a, 0x10, b'x'], vec![0; 3]] {
            let framed = confluent_frame(3, &body);
            let Some(Ok(f)) = unframe(&framed) else { panic!() };
            // [0, 0, 0] is an empty OrderPlaced after the index byte and two zero bytes: field 0 is invalid.
            assert!(schema.decode(&f).is_err(), "{body:?}");
        }
        for text in [
            "syntax = \"proto3\"; message {",
            "import \"missing.proto\"; message A { Missing m = 1; }",
        ] {
            assert!(
                Schema::compile(&RawSchema::new(SchemaKind::Protobuf, text)).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn zigzag_varints_round_trip() {
        for value in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
        ] {
            let mut out = Vec::new();
            put_zigzag(&mut out, value);
            let mut input = &out[..];
            assert_eq!(get_zigzag(&mut input).unwrap(), value);
            assert!(input.is_empty());
        }
        let mut endless: &[u8] = &[0xff; 11];
        assert!(get_varint(&mut endless).is_err());
    }
}
