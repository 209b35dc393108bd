//! The envelope of a trigger event, read as it streams by: `eventSource` and `eventSourceArn` kept as values,
//! `records` decoded one topic-partition group and one record at a time, so the event is never a JSON tree.

use std::borrow::Cow;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::record::{decode_record, decode_record_text_after};
use super::{DecodedEvent, EventError, EVENT_SOURCES};
use crate::model::KafkaMessage;

/// Reads the envelope: `eventSource` and `eventSourceArn` kept as values, `records` decoded as they stream by.
pub(super) struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Result<DecodedEvent, EventError>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Kafka trigger event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut source = None;
        let mut arn = None;
        let mut records = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "eventSource" => source = Some(map.next_value::<Value>()?),
                "eventSourceArn" => arn = Some(map.next_value::<Value>()?),
                "records" => records = Some(map.next_value_seed(RecordsSeed)?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let source = match source {
            Some(Value::String(source)) => source,
            Some(other) => return Ok(Err(EventError::WrongEventSource(other.to_string()))),
            None => return Ok(Err(EventError::MissingEventSource)),
        };
        if !EVENT_SOURCES.contains(&source.as_str()) {
            return Ok(Err(EventError::WrongEventSource(source)));
        }
        let records = match records {
            Some(Ok(records)) => records,
            Some(Err(found)) => return Ok(Err(EventError::BadRecords(found))),
            None => Vec::new(),
        };
        Ok(Ok(DecodedEvent {
            event_source: source,
            event_source_arn: arn.as_ref().and_then(Value::as_str).map(str::to_owned),
            records,
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(EventError::NotAnObject("an array")))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(EventError::NotAnObject("a string")))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(EventError::NotAnObject("a boolean")))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(EventError::NotAnObject("a number")))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(EventError::NotAnObject("a number")))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(EventError::NotAnObject("a number")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err(EventError::NotAnObject("null")))
    }
}

/// Reads `records`: an object of topic-partition groups (decoded), null (no records), or what it wrongly is.
struct RecordsSeed;

impl<'de> DeserializeSeed<'de> for RecordsSeed {
    type Value = Result<Vec<KafkaMessage>, &'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed {
    type Value = Result<Vec<KafkaMessage>, &'static str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object of topic-partition arrays")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut records = Vec::new();
        while let Some(group) = map.next_key::<Cow<'de, str>>()? {
            map.next_value_seed(GroupSeed {
                group: &group,
                records: &mut records,
            })?;
        }
        Ok(Ok(records))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(Vec::new()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err("an array"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err("a string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err("a number"))
    }
}

/// Reads one topic-partition group, decoding each record from its own small JSON value as it comes.
struct GroupSeed<'g> {
    group: &'g str,
    records: &'g mut Vec<KafkaMessage>,
}

impl<'de> DeserializeSeed<'de> for GroupSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let GroupSeed { group, records } = self;
        // Anything but an array is kept as one record standing for the unreadable group, so nothing vanishes.
        if let Some(other) = deserializer.deserialize_any(GroupVisitor(group, &mut *records))? {
            records.push(decode_record(group, &other));
        }
        Ok(())
    }
}

struct GroupVisitor<'g>(&'g str, &'g mut Vec<KafkaMessage>);

impl<'de> Visitor<'de> for GroupVisitor<'_> {
    /// The group's value when it is not an array.
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of Kafka records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Each record's text, then the record: most are read straight from it (`decode_record_text`).
        while let Some(entry) = seq.next_element::<Box<serde_json::value::RawValue>>()? {
            let record = decode_record_text_after(self.0, entry.get(), self.1.last());
            self.1.push(record);
        }
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Some(Value::from(text)))
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Self::Value, E> {
        Ok(Some(Value::from(flag)))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
        Ok(Some(Value::from(number)))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Self::Value, E> {
        Ok(Some(Value::from(number)))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Self::Value, E> {
        Ok(Some(Value::from(number)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some(Value::Null))
    }
}
