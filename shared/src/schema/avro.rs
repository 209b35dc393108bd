//! Avro bodies to JSON text, walking the value with its schema (the schema says a decimal's scale).
//!
//! The mapping is Avro's JSON mapping made readable, as Kafka Connect and Powertools show records: a union's
//! value is written as itself (not wrapped in `{"type": value}`), so `orderId` is found as in any JSON; enums
//! as their symbol; bytes and fixed as base64; decimals as exact decimal text; `uuid` as text; `date` as
//! `YYYY-MM-DD`; `time-*` as `HH:MM:SS.fff`; `timestamp-*` as RFC 3339 in UTC; `local-timestamp-*` without a
//! zone; `duration` as its months, days and milliseconds; NaN and the infinities as text.

use std::collections::HashMap;
use std::fmt::Write as _;

use apache_avro::schema::{ResolvedSchema, Schema as Avro};
use apache_avro::types::Value;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveTime};

use super::{DecodedBody, RawSchema, SchemaKind};

/// The most bytes a decimal may have to be written out as decimal text (38 digits need 16).
const MAX_DECIMAL_BYTES: usize = 128;

/// The largest decimal scale written out (a registry's schema could ask for any).
const MAX_DECIMAL_SCALE: usize = 1_000;

/// Deeper values than this are not written out (a recursive schema can nest without end).
const MAX_DEPTH: usize = 128;

/// The most entries (repeated keys included) a map may have: each is held until the map is put in key order.
/// apache-avro's reader refused a block of about 200,000 (its allocation limit over the size of an entry).
const MAX_MAP_ENTRIES: usize = 1 << 18;

/// The largest single allocation the Avro decoder may make: no string or array in a Kafka record is larger.
const MAX_ALLOCATION_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug)]
pub(super) struct AvroSchema {
    schema: Avro,
    /// Referenced schemas (Confluent references), which the main schema names.
    references: Vec<Avro>,
    /// Every named type by its full name, to follow references while writing.
    names: HashMap<String, Avro>,
}

impl AvroSchema {
    pub(super) fn compile(raw: &RawSchema) -> Result<AvroSchema, String> {
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
        let mut texts = Vec::new();
        collect_references(raw, &mut texts, 0)?;
        let (schema, references) = if texts.is_empty() {
            (
                Avro::parse_str(&raw.text).map_err(|e| format!("the Avro schema does not parse: {e}"))?,
                Vec::new(),
            )
        } else {
            Avro::parse_str_with_list(&raw.text, &texts)
                .map_err(|e| format!("the Avro schema does not parse with its references: {e}"))?
        };
        let names: HashMap<String, Avro> = {
            let all: Vec<&Avro> = references.iter().chain(std::iter::once(&schema)).collect();
            let resolved =
                ResolvedSchema::new_with_schemata(all).map_err(|e| format!("the Avro schema does not resolve: {e}"))?;
            resolved
                .get_names()
                .iter()
                .map(|(name, schema)| (name.fullname(None), (*schema).clone()))
                .collect()
        };
        Ok(AvroSchema {
            schema,
            references,
            names,
        })
    }

    /// The full name of the schema's record, enum or fixed type.
    pub(super) fn name(&self) -> Option<String> {
        match &self.schema {
            Avro::Record(r) => Some(r.name.fullname(None)),
            Avro::Enum(e) => Some(e.name.fullname(None)),
            Avro::Fixed(f) => Some(f.name.fullname(None)),
            _ => None,
        }
    }

    /// The body as JSON, written straight from its bytes as the schema walks them: no `apache_avro::Value`
    /// tree (a `String` per field name and per text) is built and freed for every record.
    pub(super) fn decode(&self, body: &[u8]) -> Result<DecodedBody, String> {
        let mut input = body;
        let mut json = String::with_capacity(body.len() * 2);
        self.write_datum(&mut json, &mut input, &self.schema, 0)
            .map_err(|e| format!("the body does not decode with its Avro schema: {e}"))?;
        if !input.is_empty() {
            return Err(format!(
                "the body does not decode with its Avro schema: {} bytes are left over",
                input.len()
            ));
        }
        // The limit is checked before each value is written; the last one (a long string that escapes to six
        // times its length) can still take the text over it.
        if json.len() > super::MAX_DECODED_JSON_BYTES {
            return Err(format!(
                "the body does not decode with its Avro schema: {}",
                json_too_large()
            ));
        }
        Ok(DecodedBody {
            json,
            name: self.name(),
        })
    }

    /// A JSON document resolved against the schema and written as Avro (for producers and tests).
    pub(super) fn encode(&self, json: &str) -> Result<Vec<u8>, String> {
        let json: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
        use apache_avro::writer::datum::GenericDatumWriter;
        let value = Value::try_from(json)
            .and_then(|value| value.resolve_schemata(&self.schema, self.all()))
            .map_err(|e| format!("the JSON does not fit the Avro schema: {e}"))?;
        let writer = if self.references.is_empty() {
            GenericDatumWriter::builder(&self.schema).build()
        } else {
            GenericDatumWriter::builder(&self.schema)
                .schemata(self.all())
                .and_then(|builder| builder.build())
        }
        .map_err(|e| format!("the Avro schema does not resolve: {e}"))?;
        writer
            .write_value_to_vec(value)
            .map_err(|e| format!("the JSON does not fit the Avro schema: {e}"))
    }

    /// The schema and its references, for resolving names across them.
    fn all(&self) -> Vec<&Avro> {
        self.references.iter().chain(std::iter::once(&self.schema)).collect()
    }

    /// Reads one datum of `schema` from `input` and writes it to `out` as JSON (the module's mapping), refusing
    /// to nest deeper than [`MAX_DEPTH`] or to write more than [`super::MAX_DECODED_JSON_BYTES`]. It reads as
    /// apache-avro's reader does (the reference `write` below, in the tests, checks it value for value), but
    /// a body that ends early is an error wherever it ends.
    fn write_datum(&self, out: &mut String, input: &mut &[u8], schema: &Avro, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("the value nests deeper than {MAX_DEPTH} levels"));
        }
        if out.len() > super::MAX_DECODED_JSON_BYTES {
            return Err(json_too_large());
        }
        match self.resolve(schema) {
            Avro::Null => out.push_str("null"),
            Avro::Boolean => match take(input, 1)? {
                [0] => out.push_str("false"),
                [1] => out.push_str("true"),
                other => return Err(format!("a boolean of {:#04x}", other[0])),
            },
            Avro::Int => crate::model::push_decimal(out, i64::from(read_int(input)?)),
            Avro::Long => crate::model::push_decimal(out, read_long(input)?),
            Avro::Float => write_f32(out, f32::from_le_bytes(take_array(input)?)),
            Avro::Double => write_float(out, f64::from_le_bytes(take_array(input)?)),
            Avro::Bytes => write_base64(out, sized(input)?),
            Avro::String => write_str(out, utf8(sized(input)?)?),
            Avro::Fixed(f) => write_base64(out, take(input, f.size)?),
            Avro::Enum(e) => {
                let index = read_int(input)?;
                let symbol = usize::try_from(index)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| format!("enum index {index} of {} symbols", e.symbols.len()))?;
                write_str(out, symbol);
            }
            Avro::Union(union) => {
                let index = read_long(input)?;
                let variant = usize::try_from(index)
                    .ok()
                    .and_then(|i| union.variants().get(i))
                    .ok_or_else(|| format!("union index {index} of {} variants", union.variants().len()))?;
                self.write_datum(out, input, variant, depth + 1)?;
            }
            Avro::Record(record) => {
                out.push('{');
                for (i, field) in record.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(out, &field.name);
                    out.push(':');
                    self.write_datum(out, input, &field.schema, depth + 1)?;
                }
                out.push('}');
            }
            Avro::Array(array) => {
                out.push('[');
                let mut first = true;
                while let Some(count) = block_count(input)? {
                    for _ in 0..count {
                        if !std::mem::take(&mut first) {
                            out.push(',');
                        }
                        self.write_datum(out, input, &array.items, depth + 1)?;
                    }
                }
                out.push(']');
            }
            Avro::Map(map) => {
                // In key order, each key once (the last value, as apache-avro's map keeps it): the same value
                // always reads the same. The values are written where they fall, in `out`, so the size limit
                // counts them with everything written before (a map nested in a map holds no text of its own),
                // then put in order.
                let start = out.len();
                let mut entries: Vec<(&str, std::ops::Range<usize>)> = Vec::new();
                while let Some(count) = block_count(input)? {
                    for _ in 0..count {
                        if entries.len() >= MAX_MAP_ENTRIES {
                            return Err(format!("a map of more than {MAX_MAP_ENTRIES} entries"));
                        }
                        let key = utf8(sized(input)?)?;
                        let from = out.len();
                        self.write_datum(out, input, &map.types, depth + 1)?;
                        entries.push((key, from - start..out.len() - start));
                    }
                }
                let values = out.split_off(start);
                entries.reverse();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                entries.dedup_by(|later, earlier| later.0 == earlier.0);
                out.push('{');
                for (i, (key, value)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(out, key);
                    out.push(':');
                    out.push_str(&values[value]);
                }
                out.push('}');
            }
            Avro::Date => write_date(out, read_int(input)?),
            Avro::TimeMillis => write_time(out, i64::from(read_int(input)?) * 1_000_000, 3),
            Avro::TimeMicros => write_time(out, read_long(input)?.saturating_mul(1_000), 6),
            Avro::TimestampMillis => write_timestamp(out, read_long(input)?, 1_000, 3, true),
            Avro::TimestampMicros => write_timestamp(out, read_long(input)?, 1_000_000, 6, true),
            Avro::TimestampNanos => write_timestamp(out, read_long(input)?, 1_000_000_000, 9, true),
            Avro::LocalTimestampMillis => write_timestamp(out, read_long(input)?, 1_000, 3, false),
            Avro::LocalTimestampMicros => write_timestamp(out, read_long(input)?, 1_000_000, 6, false),
            Avro::LocalTimestampNanos => write_timestamp(out, read_long(input)?, 1_000_000_000, 9, false),
            Avro::Duration(f) => {
                if f.size != 12 {
                    return Err(format!("a duration of {} bytes, not 12", f.size));
                }
                let bytes: [u8; 12] = take_array(input)?;
                let part = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
                write_duration(out, part(0), part(4), part(8));
            }
            Avro::Decimal(d) => {
                let bytes = match &d.inner {
                    apache_avro::schema::InnerDecimalSchema::Fixed(f) => take(input, f.size)?,
                    apache_avro::schema::InnerDecimalSchema::Bytes => sized(input)?,
                };
                if bytes.is_empty() {
                    return Err("a decimal of no bytes".into());
                }
                write_str(out, &decimal_text(bytes, d.scale)?);
            }
            Avro::BigDecimal => {
                // Rare: read by apache-avro from the datum's own bytes (its length and the bytes).
                let start = *input;
                sized(input)?;
                let mut datum = &start[..start.len() - input.len()];
                let reader = apache_avro::reader::datum::GenericDatumReader::builder(&Avro::BigDecimal)
                    .build()
                    .map_err(|e| e.to_string())?;
                match reader.read_value(&mut datum) {
                    Ok(Value::BigDecimal(decimal)) => write_str(out, &decimal.to_string()),
                    Ok(_) => return Err("a big-decimal that is not one".into()),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Avro::Uuid(kind) => {
                let uuid = match kind {
                    apache_avro::schema::UuidSchema::String => apache_avro::Uuid::parse_str(utf8(sized(input)?)?),
                    apache_avro::schema::UuidSchema::Bytes => apache_avro::Uuid::from_slice(sized(input)?),
                    apache_avro::schema::UuidSchema::Fixed(f) => {
                        if f.size != 16 {
                            return Err(format!("a uuid of {} bytes, not 16", f.size));
                        }
                        apache_avro::Uuid::from_slice(take(input, 16)?)
                    }
                }
                .map_err(|e| format!("a uuid: {e}"))?;
                write_str(out, &uuid.to_string());
            }
            Avro::Ref { name } => return Err(format!("the type {} is not defined", name.fullname(None))),
        }
        Ok(())
    }

    fn resolve<'s>(&'s self, schema: &'s Avro) -> &'s Avro {
        match schema {
            Avro::Ref { name } => self.names.get(&name.fullname(None)).unwrap_or(schema),
            _ => schema,
        }
    }

    /// The reference the direct writer is checked against: an `apache_avro::Value`, read by apache-avro's own
    /// reader, written with its schema.
    #[cfg(test)]
    fn write(&self, out: &mut String, value: &Value, schema: &Avro, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("the Avro value nests deeper than {MAX_DEPTH} levels"));
        }
        if out.len() > super::MAX_DECODED_JSON_BYTES {
            return Err(format!(
                "the Avro value's JSON is over {} bytes",
                super::MAX_DECODED_JSON_BYTES
            ));
        }
        let schema = self.resolve(schema);
        match value {
            Value::Null => out.push_str("null"),
            Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => write_display(out, i),
            Value::Long(i) => write_display(out, i),
            Value::Float(f) => write_f32(out, *f),
            Value::Double(f) => write_float(out, *f),
            Value::Bytes(bytes) | Value::Fixed(_, bytes) => write_base64(out, bytes),
            Value::String(text) => write_str(out, text),
            Value::Enum(_, symbol) => write_str(out, symbol),
            Value::Union(index, inner) => {
                let variant = match schema {
                    Avro::Union(union) => union.variants().get(*index as usize).unwrap_or(schema),
                    other => other,
                };
                self.write(out, inner, variant, depth + 1)?;
            }
            Value::Array(items) => {
                let item_schema = match schema {
                    Avro::Array(array) => &*array.items,
                    other => other,
                };
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write(out, item, item_schema, depth + 1)?;
                }
                out.push(']');
            }
            Value::Map(entries) => {
                let value_schema = match schema {
                    Avro::Map(map) => &*map.types,
                    other => other,
                };
                // In key order: the same value always reads the same.
                let mut keys: Vec<&String> = entries.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(out, key);
                    out.push(':');
                    self.write(out, &entries[key], value_schema, depth + 1)?;
                }
                out.push('}');
            }
            Value::Record(fields) => {
                let field_schemas = match schema {
                    Avro::Record(record) => Some(&record.fields),
                    _ => None,
                };
                out.push('{');
                for (i, (name, field)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(out, name);
                    out.push(':');
                    let field_schema = field_schemas
                        .and_then(|fields| fields.iter().find(|f| &f.name == name))
                        .map_or(&Avro::Null, |f| &f.schema);
                    self.write(out, field, field_schema, depth + 1)?;
                }
                out.push('}');
            }
            Value::Date(days) => write_date(out, *days),
            Value::Decimal(decimal) => {
                let scale = match schema {
                    Avro::Decimal(d) => d.scale,
                    _ => 0,
                };
                let bytes: Vec<u8> = decimal.try_into().map_err(|e| format!("an Avro decimal: {e}"))?;
                write_str(out, &decimal_text(&bytes, scale)?);
            }
            Value::BigDecimal(decimal) => write_str(out, &decimal.to_string()),
            Value::TimeMillis(ms) => write_time(out, i64::from(*ms) * 1_000_000, 3),
            Value::TimeMicros(us) => write_time(out, us.saturating_mul(1_000), 6),
            Value::TimestampMillis(ms) => write_timestamp(out, *ms, 1_000, 3, true),
            Value::TimestampMicros(us) => write_timestamp(out, *us, 1_000_000, 6, true),
            Value::TimestampNanos(ns) => write_timestamp(out, *ns, 1_000_000_000, 9, true),
            Value::LocalTimestampMillis(ms) => write_timestamp(out, *ms, 1_000, 3, false),
            Value::LocalTimestampMicros(us) => write_timestamp(out, *us, 1_000_000, 6, false),
            Value::LocalTimestampNanos(ns) => write_timestamp(out, *ns, 1_000_000_000, 9, false),
            Value::Duration(d) => {
                write_duration(out, u32::from(d.months()), u32::from(d.days()), u32::from(d.millis()))
            }
            Value::Uuid(uuid) => write_str(out, &uuid.to_string()),
        }
        Ok(())
    }
}

/// The texts of every schema `raw` references, each once, dependencies first.
fn collect_references(raw: &RawSchema, texts: &mut Vec<String>, depth: usize) -> Result<(), String> {
    if depth > 16 {
        return Err("the Avro schema's references nest deeper than 16 levels".into());
    }
    for (_, reference) in &raw.references {
        if reference.kind != SchemaKind::Avro {
            return Err("an Avro schema references a schema that is not Avro".into());
        }
        collect_references(reference, texts, depth + 1)?;
        if !texts.contains(&reference.text) {
            texts.push(reference.text.clone());
        }
    }
    Ok(())
}

/// An Avro `long`: a zig-zag varint of at most 10 bytes.
fn read_long(input: &mut &[u8]) -> Result<i64, String> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or("the body ends early")?;
        *input = rest;
        value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
        if byte & 0x80 == 0 {
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    Err("a long of more than 10 bytes".into())
}

/// An Avro `int`: a `long` within `i32`'s range.
fn read_int(input: &mut &[u8]) -> Result<i32, String> {
    let value = read_long(input)?;
    i32::try_from(value).map_err(|_| format!("an int of {value}"))
}

/// A length (of bytes, a string or a map key).
fn length(input: &mut &[u8]) -> Result<usize, String> {
    let value = read_long(input)?;
    usize::try_from(value).map_err(|_| format!("a length of {value}"))
}

/// A length, then that many bytes (bytes, a string, a map key).
fn sized<'i>(input: &mut &'i [u8]) -> Result<&'i [u8], String> {
    let n = length(input)?;
    take(input, n)
}

/// The next `n` bytes.
fn take<'i>(input: &mut &'i [u8], n: usize) -> Result<&'i [u8], String> {
    if input.len() < n {
        return Err("the body ends early".into());
    }
    let (taken, rest) = input.split_at(n);
    *input = rest;
    Ok(taken)
}

fn take_array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], String> {
    let mut array = [0u8; N];
    array.copy_from_slice(take(input, N)?);
    Ok(array)
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("a string that is not UTF-8: {e}"))
}

/// The item count of an array's or a map's next block, `None` after the last; a block given with its size in
/// bytes (a negative count) has the size read past.
fn block_count(input: &mut &[u8]) -> Result<Option<u64>, String> {
    let count = read_long(input)?;
    if count == 0 {
        return Ok(None);
    }
    if count < 0 {
        read_long(input)?;
    }
    Ok(Some(count.unsigned_abs()))
}

fn write_display(out: &mut String, value: impl std::fmt::Display) {
    let _ = write!(out, "{value}");
}

fn json_too_large() -> String {
    format!("its JSON is over {} bytes", super::MAX_DECODED_JSON_BYTES)
}

fn write_f32(out: &mut String, value: f32) {
    if value.is_finite() {
        write_display(out, value);
    } else {
        write_str(out, &value.to_string());
    }
}

/// Days since the epoch as `YYYY-MM-DD`, or the number where no date is that far.
fn write_date(out: &mut String, days: i32) {
    match NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(i64::from(days))))
    {
        Some(date) => write_str(out, &date.format("%Y-%m-%d").to_string()),
        None => write_display(out, days),
    }
}

fn write_duration(out: &mut String, months: u32, days: u32, millis: u32) {
    let _ = write!(out, "{{\"months\":{months},\"days\":{days},\"millis\":{millis}}}");
}

fn write_float(out: &mut String, value: f64) {
    match serde_json::Number::from_f64(value) {
        Some(number) => write_display(out, number),
        None => write_str(out, &value.to_string()),
    }
}

/// `text` as a JSON string, escaped as serde_json escapes it (the one escaping the body writer uses too).
fn write_str(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    crate::dynamo::body::escape_json(text, |piece| out.push_str(piece));
    out.push('"');
}

fn write_base64(out: &mut String, bytes: &[u8]) {
    out.push('"');
    base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
    out.push('"');
}

fn write_time(out: &mut String, nanos_of_day: i64, digits: usize) {
    let secs = nanos_of_day.div_euclid(1_000_000_000);
    let nanos = nanos_of_day.rem_euclid(1_000_000_000);
    let time = u32::try_from(secs)
        .ok()
        .filter(|secs| *secs < 86_400)
        .and_then(|secs| NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos as u32));
    match time {
        Some(time) => {
            let text = time.format("%H:%M:%S%.9f").to_string();
            write_str(out, &text[..9 + digits]);
        }
        None => write_display(out, nanos_of_day),
    }
}

/// `value` units (`per_second` to a second) since the epoch, with `digits` fractional digits.
fn write_timestamp(out: &mut String, value: i64, per_second: i64, digits: usize, utc: bool) {
    let nanos = value.rem_euclid(per_second) * (1_000_000_000 / per_second);
    match DateTime::from_timestamp(value.div_euclid(per_second), nanos as u32) {
        Some(time) => {
            out.push('"');
            crate::normalize::time::push_time(out, &time.naive_utc(), digits, utc);
            out.push('"');
        }
        None => write_display(out, value),
    }
}

/// A decimal's unscaled big-endian two's-complement bytes, written with `scale` digits after the point.
fn decimal_text(bytes: &[u8], scale: usize) -> Result<String, String> {
    if scale > MAX_DECIMAL_SCALE {
        return Err(format!("an Avro decimal's scale {scale} is over {MAX_DECIMAL_SCALE}"));
    }
    if bytes.len() > MAX_DECIMAL_BYTES {
        return Err(format!(
            "an Avro decimal of {} bytes is longer than {MAX_DECIMAL_BYTES}",
            bytes.len()
        ));
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude: Vec<u8> = bytes.to_vec();
    if negative {
        // Two's complement: invert and add one.
        for b in magnitude.iter_mut() {
            *b = !*b;
        }
        for b in magnitude.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
    }
    // Base 256 to base 10 by repeated division.
    let mut digits = Vec::new();
    while magnitude.iter().any(|b| *b != 0) {
        let mut remainder = 0u32;
        for b in magnitude.iter_mut() {
            let current = (remainder << 8) | u32::from(*b);
            *b = (current / 10) as u8;
            remainder = current % 10;
        }
        digits.push(b'0' + remainder as u8);
    }
    while digits.len() <= scale {
        digits.push(b'0');
    }
    digits.reverse();
    let (int, frac) = digits.split_at(digits.len() - scale);
    let mut text = String::new();
    if negative {
        text.push('-');
    }
    text.push_str(std::str::from_utf8(int).unwrap_or("0"));
    if scale > 0 {
        text.push('.');
        text.push_str(std::str::from_utf8(frac).unwrap_or_default());
    }
    Ok(text)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::schema::{confluent_frame, unframe, Schema};
    use apache_avro::types::Record;

    /// A record schema with every type the issue names: unions, enums, fixed, maps, arrays, a nested record,
    /// and each logical type.
    pub const ORDER_SCHEMA: &str = r#"{
      "type": "record", "name": "OrderPlaced", "namespace": "com.shop.orders",
      "fields": [
        {"name": "orderId", "type": "string"},
        {"name": "customerId", "type": ["null", "string"], "default": null},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "occurredAt", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "eventId", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "micros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "checksum", "type": {"type": "fixed", "name": "Md5", "size": 4}},
        {"name": "tags", "type": {"type": "map", "values": "int"}},
        {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line",
          "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"},
                     {"name": "note", "type": ["null", "string", "Line"], "default": null}]}}},
        {"name": "ratio", "type": "double"},
        {"name": "raw", "type": "bytes"},
        {"name": "flag", "type": "boolean"}
      ]}"#;

    /// An OrderPlaced body, encoded by apache-avro's writer.
    pub fn order_body(order_id: &str) -> Vec<u8> {
        let schema = Avro::parse_str(ORDER_SCHEMA).unwrap();
        let Avro::Record(record_schema) = &schema else { panic!() };
        let line_schema = match &record_schema.fields[11].schema {
            Avro::Array(a) => (*a.items).clone(),
            _ => panic!(),
        };
        let mut record = Record::new(&schema).unwrap();
        record.put("orderId", order_id);
        record.put("customerId", Value::Union(1, Box::new(Value::String("c-9".into()))));
        record.put("status", Value::Enum(1, "PAID".into()));
        record.put("amount", Value::Decimal(apache_avro::Decimal::from(vec![0xfb, 0x2e]))); // -1234 -> -12.34
        record.put("occurredAt", Value::TimestampMillis(1_700_000_000_123));
        record.put(
            "eventId",
            Value::Uuid(apache_avro::Uuid::parse_str("6f1c2b1e-0000-4000-8000-000000000001").unwrap()),
        );
        record.put("day", Value::Date(19_700));
        record.put("at", Value::TimeMillis(45_296_789));
        record.put("micros", Value::TimestampMicros(1_700_000_000_123_456));
        record.put("checksum", Value::Fixed(4, vec![1, 2, 3, 4]));
        record.put(
            "tags",
            Value::Map([("b".to_owned(), Value::Int(2)), ("a".to_owned(), Value::Int(1))].into()),
        );
        let mut line = Record::new(&line_schema).unwrap();
        line.put("sku", "sku-1");
        line.put("qty", 2);
        line.put("note", Value::Union(0, Box::new(Value::Null)));
        record.put("lines", Value::Array(vec![line.into()]));
        record.put("ratio", Value::Double(f64::NAN));
        record.put("raw", Value::Bytes(vec![0xff, 0x00]));
        record.put("flag", true);
        apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(record)
            .unwrap()
    }

    pub fn order_schema() -> Schema {
        Schema::compile(&RawSchema::new(SchemaKind::Avro, ORDER_SCHEMA)).unwrap()
    }

    /// What apache-avro's own reader gives, written by the reference `write`: the direct writer's yardstick.
    fn reference_json(schema: &AvroSchema, body: &[u8]) -> Result<String, String> {
        use apache_avro::reader::datum::GenericDatumReader;
        let reader = GenericDatumReader::builder(&schema.schema)
            .writer_schemata(schema.all())
            .and_then(|builder| builder.build())
            .map_err(|e| e.to_string())?;
        let mut input = body;
        let value = reader.read_value(&mut input).map_err(|e| e.to_string())?;
        if !input.is_empty() {
            return Err("left over".into());
        }
        let mut json = String::new();
        schema.write(&mut json, &value, &schema.schema, 0)?;
        Ok(json)
    }

    /// The types ORDER_SCHEMA leaves out.
    const OTHER_SCHEMA: &str = r#"{
      "type": "record", "name": "Other", "fields": [
        {"name": "f", "type": "float"},
        {"name": "l", "type": "long"},
        {"name": "i", "type": "int"},
        {"name": "ltm", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "ltu", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {"name": "ltn", "type": {"type": "long", "logicalType": "local-timestamp-nanos"}},
        {"name": "tn", "type": {"type": "long", "logicalType": "timestamp-nanos"}},
        {"name": "tu", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "d", "type": {"type": "fixed", "name": "D", "size": 12, "logicalType": "duration"}},
        {"name": "u", "type": {"type": "fixed", "name": "U", "size": 16, "logicalType": "uuid"}},
        {"name": "dec", "type": {"type": "fixed", "name": "Dec", "size": 6, "logicalType": "decimal", "precision": 12, "scale": 3}},
        {"name": "m", "type": {"type": "map", "values": ["null", "double", "string"]}}
      ]}"#;

    /// A small deterministic generator (xorshift), so a failure names its seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn long(&mut self) -> i64 {
            match self.below(4) {
                0 => self.below(2_000) as i64 - 1_000,
                1 => self.next() as i64,
                2 => self.below(4_000_000_000_000) as i64 - 1_000_000_000_000,
                _ => 1_700_000_000_000 + self.below(1_000_000) as i64,
            }
        }
        fn text(&mut self) -> String {
            const PIECES: [&str; 12] = [
                "a", "Z", "0", " ", "\"", "\\", "\n", "\u{1}", "\u{1f}", "é", "🚀", "\u{7f}",
            ];
            (0..self.below(24)).map(|_| PIECES[self.below(12) as usize]).collect()
        }
        fn bytes(&mut self, max: u64) -> Vec<u8> {
            (0..self.below(max)).map(|_| self.next() as u8).collect()
        }
        fn double(&mut self) -> f64 {
            match self.below(6) {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => -0.0,
                3 => f64::from_bits(self.next()),
                _ => (self.long() as f64) / 1_000.0,
            }
        }
    }

    fn order_value(rng: &mut Rng, schema: &Avro) -> Value {
        let Avro::Record(record_schema) = schema else { panic!() };
        let line_schema = match &record_schema.fields[11].schema {
            Avro::Array(a) => (*a.items).clone(),
            _ => panic!(),
        };
        let line = |rng: &mut Rng, nested: Option<Value>| {
            let mut line = Record::new(&line_schema).unwrap();
            line.put("sku", rng.text());
            line.put("qty", rng.long() as i32);
            line.put(
                "note",
                match (nested, rng.below(2)) {
                    (Some(inner), _) => Value::Union(2, Box::new(inner)),
                    (None, 0) => Value::Union(0, Box::new(Value::Null)),
                    (None, _) => Value::Union(1, Box::new(Value::String(rng.text()))),
                },
            );
            Value::from(line)
        };
        let mut record = Record::new(schema).unwrap();
        record.put("orderId", rng.text());
        record.put(
            "customerId",
            if rng.below(2) == 0 {
                Value::Union(0, Box::new(Value::Null))
            } else {
                Value::Union(1, Box::new(Value::String(rng.text())))
            },
        );
        let status = rng.below(2) as u32;
        record.put("status", Value::Enum(status, ["NEW", "PAID"][status as usize].into()));
        let mut amount = rng.bytes(12);
        amount.push(rng.next() as u8);
        record.put("amount", Value::Decimal(apache_avro::Decimal::from(amount)));
        record.put("occurredAt", Value::TimestampMillis(rng.long()));
        record.put(
            "eventId",
            Value::Uuid(apache_avro::Uuid::from_u128(
                u128::from(rng.next()) << 64 | u128::from(rng.next()),
            )),
        );
        record.put("day", Value::Date(rng.long() as i32));
        record.put("at", Value::TimeMillis(rng.below(86_400_000) as i32));
        record.put("micros", Value::TimestampMicros(rng.long()));
        record.put("checksum", Value::Fixed(4, (0..4).map(|_| rng.next() as u8).collect()));
        let tags = (0..rng.below(5))
            .map(|_| (rng.text(), Value::Int(rng.long() as i32)))
            .collect();
        record.put("tags", Value::Map(tags));
        let lines = (0..rng.below(4))
            .map(|_| {
                let nested = (rng.below(3) == 0).then(|| line(rng, None));
                line(rng, nested)
            })
            .collect();
        record.put("lines", Value::Array(lines));
        record.put("ratio", Value::Double(rng.double()));
        record.put("raw", Value::Bytes(rng.bytes(20)));
        record.put("flag", rng.below(2) == 0);
        record.into()
    }

    fn other_value(rng: &mut Rng, schema: &Avro) -> Value {
        let mut record = Record::new(schema).unwrap();
        record.put("f", Value::Float(f32::from_bits(rng.next() as u32)));
        record.put("l", Value::Long(rng.long()));
        record.put("i", Value::Int(rng.long() as i32));
        record.put("ltm", Value::LocalTimestampMillis(rng.long()));
        record.put("ltu", Value::LocalTimestampMicros(rng.long()));
        record.put("ltn", Value::LocalTimestampNanos(rng.long()));
        record.put("tn", Value::TimestampNanos(rng.long()));
        record.put("tu", Value::TimeMicros(rng.below(86_400_000_000) as i64));
        let mut duration = [0u8; 12];
        duration.iter_mut().for_each(|b| *b = rng.next() as u8);
        record.put("d", Value::Duration(apache_avro::Duration::from(duration)));
        record.put("u", Value::Uuid(apache_avro::Uuid::from_u128(u128::from(rng.next()))));
        record.put(
            "dec",
            Value::Decimal(apache_avro::Decimal::from(
                (0..6).map(|_| rng.next() as u8).collect::<Vec<u8>>(),
            )),
        );
        let entries = (0..rng.below(5))
            .map(|_| {
                let value = match rng.below(3) {
                    0 => Value::Union(0, Box::new(Value::Null)),
                    1 => Value::Union(1, Box::new(Value::Double(rng.double()))),
                    _ => Value::Union(2, Box::new(Value::String(rng.text()))),
                };
                (rng.text(), value)
            })
            .collect();
        record.put("m", Value::Map(entries));
        record.into()
    }

    #[test]
    fn the_direct_writer_reads_every_body_as_apache_avro_reads_it() {
        for (text, make) in [
            (ORDER_SCHEMA, order_value as fn(&mut Rng, &Avro) -> Value),
            (OTHER_SCHEMA, other_value),
        ] {
            let schema = AvroSchema::compile(&RawSchema::new(SchemaKind::Avro, text)).unwrap();
            let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema.schema)
                .build()
                .unwrap();
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let (mut compared, mut mutated_both_ok) = (0, 0);
            for seed in 0..1_500 {
                let value = make(&mut rng, &schema.schema);
                let body = writer.write_value_to_vec(value).unwrap();
                let expected = reference_json(&schema, &body).unwrap();
                let got = schema.decode(&body).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                assert_eq!(got.json, expected, "seed {seed}");
                compared += 1;
                // Bad bytes: whatever the direct writer accepts, apache-avro reads the same way.
                let mut bad = body.clone();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(bad.len() as u64) as usize;
                    bad[at] = rng.next() as u8;
                }
                bad.truncate(bad.len() - rng.below(2) as usize);
                if let Ok(direct) = schema.decode(&bad) {
                    let reference = reference_json(&schema, &bad)
                        .unwrap_or_else(|e| panic!("seed {seed}: ours read {bad:?}, apache-avro did not: {e}"));
                    assert_eq!(direct.json, reference, "seed {seed}: {bad:?}");
                    mutated_both_ok += 1;
                }
            }
            assert_eq!(compared, 1_500);
            assert!(
                mutated_both_ok > 0,
                "no mutated body decoded: the bad-bytes half checked nothing"
            );
        }
    }

    #[test]
    fn big_decimals_and_uuids_in_bytes_read_as_apache_avro_reads_them() {
        for (text, value) in [
            (
                r#"{"type": "bytes", "logicalType": "big-decimal"}"#,
                Value::BigDecimal("-12345678901234567890.0042".parse().unwrap()),
            ),
            (
                r#"{"type": "string", "logicalType": "uuid"}"#,
                Value::Uuid(apache_avro::Uuid::from_u128(0x6F1C_2B1E_0000_4000_8000_0000_0000_0001)),
            ),
        ] {
            let schema = AvroSchema::compile(&RawSchema::new(SchemaKind::Avro, text)).unwrap();
            let body = apache_avro::writer::datum::GenericDatumWriter::builder(&schema.schema)
                .build()
                .unwrap()
                .write_value_to_vec(value)
                .unwrap();
            let json = schema.decode(&body).unwrap().json;
            assert_eq!(json, reference_json(&schema, &body).unwrap());
            assert!(
                json.contains("12345678901234567890.0042") || json.contains("6f1c2b1e"),
                "{json}"
            );
            assert!(schema.decode(&body[..body.len() - 1]).is_err());
        }
        // A uuid's text is read as apache-avro reads it: any case in, lower case out; not a uuid, an error.
        let schema = AvroSchema::compile(&RawSchema::new(
            SchemaKind::Avro,
            r#"{"type": "string", "logicalType": "uuid"}"#,
        ))
        .unwrap();
        let upper = [&[72u8][..], b"6F1C2B1E-0000-4000-8000-000000000001"].concat();
        assert_eq!(
            schema.decode(&upper).unwrap().json,
            r#""6f1c2b1e-0000-4000-8000-000000000001""#
        );
        assert!(schema.decode(&[&[6u8][..], b"xyz"].concat()).is_err());
    }

    /// Avro's zig-zag varint of `n`.
    fn zigzag(n: i64) -> Vec<u8> {
        let mut z = ((n << 1) ^ (n >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let byte = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    #[test]
    fn the_json_size_limit_counts_every_level_and_every_map_entry() {
        // Nested maps: each level an array of 1.5 million nulls (7.5 MB of text from a few bytes, in a block
        // with a negative count and a byte size), then a map of one entry holding the next level, 70 levels
        // (past the depth limit). Each level is under the size limit alone; the first two together are over
        // it, and that is where it stops. Before, each map value had a limit of its own: 64 levels held 480 MB
        // until the depth limit ended it.
        let schema = AvroSchema::compile(&RawSchema::new(
            SchemaKind::Avro,
            r#"{"type": "record", "name": "R", "fields": [
                {"name": "a", "type": {"type": "array", "items": "null"}},
                {"name": "m", "type": {"type": "map", "values": "R"}}]}"#,
        ))
        .unwrap();
        let levels = 70;
        let mut body = Vec::new();
        for level in 0..=levels {
            body.extend(zigzag(-1_500_000));
            body.extend(zigzag(0)); // the block's byte size
            body.push(0); // end of the array
            body.extend(if level < levels { vec![2, 0] } else { vec![0] }); // one entry, key ""
        }
        body.extend(std::iter::repeat_n(0, levels)); // the end of each map
        let error = schema.decode(&body).unwrap_err();
        assert!(error.contains("over 8388608 bytes"), "{error}");
        // One level alone is read.
        let one = [zigzag(-1_500_000), zigzag(0), vec![0, 0]].concat();
        assert_eq!(schema.decode(&one).unwrap().json.len(), 7_500_014);

        // A map of more entries than it may hold is refused before they pile up, repeated keys too.
        let map =
            AvroSchema::compile(&RawSchema::new(SchemaKind::Avro, r#"{"type": "map", "values": "int"}"#)).unwrap();
        let entries = |n: usize| [zigzag(n as i64), [0u8, 0].repeat(n), vec![0]].concat();
        let error = map.decode(&entries(MAX_MAP_ENTRIES + 1)).unwrap_err();
        assert!(error.contains("entries"), "{error}");
        assert_eq!(map.decode(&entries(MAX_MAP_ENTRIES)).unwrap().json, r#"{"":0}"#);

        // A string that escapes to more than the limit: the limit holds for the text as written.
        let string = AvroSchema::compile(&RawSchema::new(SchemaKind::Avro, r#""string""#)).unwrap();
        let controls = [zigzag(1_500_000), vec![1u8; 1_500_000]].concat();
        let error = string.decode(&controls).unwrap_err();
        assert!(error.contains("over"), "{error}");
    }

    #[test]
    fn a_body_cut_short_is_an_error_where_apache_avro_read_null() {
        let schema = AvroSchema::compile(&RawSchema::new(
            SchemaKind::Avro,
            r#"{"type": "record", "name": "R", "fields": [{"name": "id", "type": "string"},
                {"name": "note", "type": ["null", "string"]}, {"name": "ok", "type": "boolean"}]}"#,
        ))
        .unwrap();
        let whole = [&[6u8][..], b"o-1", &[2, 2], b"x", &[1]].concat();
        assert_eq!(
            schema.decode(&whole).unwrap().json,
            r#"{"id":"o-1","note":"x","ok":true}"#
        );
        // Cut before the boolean: apache-avro reads it as null; ours says the body ends early.
        let cut = &whole[..whole.len() - 1];
        assert_eq!(
            reference_json(&schema, cut).unwrap(),
            r#"{"id":"o-1","note":"x","ok":null}"#
        );
        let error = schema.decode(cut).unwrap_err();
        assert!(error.contains("ends early"), "{error}");
    }

    #[test]
    fn a_time_of_day_outside_the_day_is_written_as_its_number() {
        let schema = AvroSchema::compile(&RawSchema::new(
            SchemaKind::Avro,
            r#"{"type": "long", "logicalType": "time-micros"}"#,
        ))
        .unwrap();
        for micros in [-1i64, 86_400_000_000, (-(1i64 << 32) + 100) * 1_000_000] {
            let json = schema.decode(&zigzag(micros)).unwrap().json;
            assert_eq!(json, (micros * 1_000).to_string(), "{micros}");
        }
        assert_eq!(
            schema.decode(&zigzag(100_000_000)).unwrap().json,
            r#""00:01:40.000000""#
        );
    }

    #[test]
    fn map_blocks_with_sizes_and_repeated_keys_read_as_apache_avro_reads_them() {
        let schema =
            AvroSchema::compile(&RawSchema::new(SchemaKind::Avro, r#"{"type": "map", "values": "int"}"#)).unwrap();
        // A block of -2 entries with its byte size, then a block of 1: "b" 1, "a" 2, then "b" again, 3.
        let body = [&[3u8, 10, 2][..], b"b", &[2, 2], b"a", &[4, 2, 2], b"b", &[6, 0]].concat();
        assert_eq!(schema.decode(&body).unwrap().json, r#"{"a":2,"b":3}"#);
        assert_eq!(reference_json(&schema, &body).unwrap(), r#"{"a":2,"b":3}"#);
        let array = AvroSchema::compile(&RawSchema::new(
            SchemaKind::Avro,
            r#"{"type": "array", "items": "null"}"#,
        ))
        .unwrap();
        // A block that claims 2^62 null items, which take no bytes: refused at the JSON size limit, not looped over.
        let huge = [0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0];
        let error = array.decode(&huge).unwrap_err();
        assert!(error.contains("over"), "{error}");
    }

    #[test]
    fn every_avro_type_becomes_readable_json() {
        let schema = order_schema();
        assert_eq!(schema.name().as_deref(), Some("com.shop.orders.OrderPlaced"));
        let framed = confluent_frame(1, &order_body("o-1"));
        let Some(Ok(f)) = unframe(&framed) else { panic!() };
        let decoded = schema.decode(&f).unwrap();
        assert_eq!(decoded.name.as_deref(), Some("com.shop.orders.OrderPlaced"));
        let json: serde_json::Value = serde_json::from_str(&decoded.json).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "orderId": "o-1", "customerId": "c-9", "status": "PAID", "amount": "-12.34",
                "occurredAt": "2023-11-14T22:13:20.123Z", "eventId": "6f1c2b1e-0000-4000-8000-000000000001",
                "day": "2023-12-09", "at": "12:34:56.789", "micros": "2023-11-14T22:13:20.123456Z",
                "checksum": "AQIDBA==", "tags": {"a": 1, "b": 2},
                "lines": [{"sku": "sku-1", "qty": 2, "note": null}],
                "ratio": "NaN", "raw": "/wA=", "flag": true
            })
        );
        // Fields keep the schema's order.
        assert!(
            decoded.json.starts_with(r#"{"orderId":"o-1","customerId":"c-9""#),
            "{}",
            decoded.json
        );
    }

    #[test]
    fn corrupt_truncated_and_foreign_bodies_are_errors_not_panics() {
        let schema = order_schema();
        let body = order_body("o-1");
        for bad in [
            body[..body.len() / 2].to_vec(),
            vec![0xff; 64],
            [&body[..], b"extra"].concat(),
            b"{\"orderId\": \"o-1\"}".to_vec(),
            Vec::new(),
            // A string whose length claims far more bytes than the body has.
            vec![0xfe, 0xff, 0xff, 0xff, 0x0f],
        ] {
            let framed = confluent_frame(1, &bad);
            let Some(Ok(f)) = unframe(&framed) else { panic!() };
            let error = schema.decode(&f).unwrap_err();
            assert!(error.contains("Avro"), "{error}");
        }
    }

    #[test]
    fn a_schema_that_does_not_parse_is_an_error() {
        for text in ["{", r#"{"type": "record"}"#, r#""NoSuchType""#] {
            assert!(
                Schema::compile(&RawSchema::new(SchemaKind::Avro, text)).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn references_resolve_named_types_from_other_schemas() {
        let address = RawSchema::new(
            SchemaKind::Avro,
            r#"{"type": "record", "name": "Address", "namespace": "com.shop", "fields": [{"name": "city", "type": "string"}]}"#,
        );
        let mut customer = RawSchema::new(
            SchemaKind::Avro,
            r#"{"type": "record", "name": "Customer", "namespace": "com.shop", "fields": [{"name": "customerId", "type": "string"}, {"name": "home", "type": "com.shop.Address"}]}"#,
        );
        customer.references.push(("com.shop.Address".into(), address));
        let schema = Schema::compile(&customer).unwrap();
        // customerId "c-1", home.city "Oslo"
        let body = [&[6u8][..], b"c-1", &[8], b"Oslo"].concat();
        let framed = confluent_frame(2, &body);
        let Some(Ok(f)) = unframe(&framed) else { panic!() };
        assert_eq!(
            schema.decode(&f).unwrap().json,
            r#"{"customerId":"c-1","home":{"city":"Oslo"}}"#
        );
    }

    #[test]
    fn a_recursive_schema_with_a_body_nested_past_the_limit_is_an_error_not_a_stack_overflow() {
        let schema = order_schema();
        // One order whose line's note is a Line whose note is a Line... 100,000 levels deep (~300 KB).
        let mut body = Vec::new();
        body.extend_from_slice(&[2, b'o']); // orderId
        body.push(0); // customerId: null
        body.push(0); // status: NEW
        body.extend_from_slice(&[2, 0]); // amount: one byte, 0
        body.push(0); // occurredAt: 0
        body.extend_from_slice(&[72]);
        body.extend_from_slice(b"6f1c2b1e-0000-4000-8000-000000000001");
        body.extend_from_slice(&[0, 0, 0]); // day, at, micros
        body.extend_from_slice(&[1, 2, 3, 4]); // checksum
        body.push(0); // tags: empty map
        body.push(2); // lines: one block of one line
        for _ in 0..100_000 {
            body.extend_from_slice(&[0, 0, 4]); // sku "", qty 0, note: union branch 2 (Line)
        }
        let framed = confluent_frame(1, &body);
        let Some(Ok(f)) = unframe(&framed) else { panic!() };
        let error = schema.decode(&f).unwrap_err();
        assert!(error.contains("deeper than"), "{error}");
    }

    #[test]
    fn far_timestamps_and_floats_are_written_exactly() {
        let mut out = String::new();
        write_timestamp(&mut out, 253_402_300_799_999, 1_000, 3, true);
        assert_eq!(out, "\"9999-12-31T23:59:59.999Z\"");
        out.clear();
        write_timestamp(&mut out, -1, 1_000_000, 6, false);
        assert_eq!(out, "\"1969-12-31T23:59:59.999999\"");
        let schema = Schema::compile(&RawSchema::new(SchemaKind::Avro, r#""float""#)).unwrap();
        let framed = confluent_frame(1, &0.1f32.to_le_bytes());
        let Some(Ok(f)) = unframe(&framed) else { panic!() };
        assert_eq!(schema.decode(&f).unwrap().json, "0.1");
        assert!(decimal_text(&[1], 5_000).is_err());
    }

    #[test]
    fn decimals_are_written_exactly_at_their_scale() {
        assert_eq!(decimal_text(&[0x04, 0xd2], 2).unwrap(), "12.34");
        assert_eq!(decimal_text(&[0xfb, 0x2e], 2).unwrap(), "-12.34");
        assert_eq!(decimal_text(&[0x05], 3).unwrap(), "0.005");
        assert_eq!(decimal_text(&[], 0).unwrap(), "0");
        assert_eq!(decimal_text(&[0x80], 0).unwrap(), "-128");
        assert_eq!(decimal_text(&[0xff; 16], 0).unwrap(), "-1");
        assert_eq!(
            decimal_text(
                &[0x4b, 0x3b, 0x4c, 0xa8, 0x5a, 0x86, 0xc4, 0x7a, 0x09, 0x8a, 0x22, 0x3f, 0xff, 0xff, 0xff, 0xff],
                0
            )
            .unwrap(),
            "99999999999999999999999999999999999999"
        );
        assert!(decimal_text(&[1; 200], 0).is_err());
    }
}
