//! Normalization: one decoded Kafka record in, one [`Notification`] out. Pure: no I/O, no clock
//! (the receive time is an input), no panics on any bytes.
//!
//! - [`vocabulary`]: what fields are called, and name matching by canonical form;
//! - [`framing`]: the payload's format and the JSON text behind any framing;
//! - [`json`]: the JSON reader (bounded depth, borrowed text);
//! - `change`: change events (Debezium's envelope, Kafka Connect's JsonConverter wrapper);
//! - `search`: where fields are found (scopes, headers) and what makes a value an id;
//! - [`time`] and [`numbers`]: times and numbers as the record stores them.

mod change;
pub mod framing;
pub mod json;
pub mod numbers;
mod search;
pub mod time;
pub mod vocabulary;

use chrono::{DateTime, TimeZone, Utc};

pub use crate::schema::registry::Schemas;

pub use framing::classify;
pub use numbers::decimal_text;
pub use time::{format_time, parse_epoch, parse_time_text};
pub use vocabulary::{canonical, is_canonical, TopicServiceMap};

use crate::model::{
    Change, Data, Decoded, Extracted, Header, KafkaMessage, Notification, Warning, WarningCode, MAX_FIELD_BYTES,
    MAX_WARNINGS,
};
use json::Json;
use search::{collect_scopes, collect_scopes_at, find_field, find_time, own_id, HeaderIndex, Scope};
use time::in_range;
use vocabulary::{
    FieldSpec, CORRELATION_ID, CUSTOMER_ID, EVENT_ID, EVENT_TYPE, ORDER_ID, ROW_EVENT_ID, ROW_EVENT_TYPE,
    ROW_SOURCE_SERVICE, SOURCE_SERVICE,
};

/// What normalization needs besides the record.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// When ingest received the record; becomes `received_at`.
    pub received_at: DateTime<Utc>,
    pub topic_services: &'a TopicServiceMap,
    /// The schemas of the batch's registry-framed records, resolved beforehand
    /// ([`crate::schema::registry::SchemaResolver`]); [`Schemas::none`] when there are none.
    pub schemas: &'a Schemas,
}

/// Normalizes one record.
pub fn normalize(message: &KafkaMessage, context: &Context<'_>) -> Notification {
    let mut warnings = message.warnings.clone();
    let mut value_framing = framing::read_framed(message.value.as_deref(), context.schemas, "value");
    // A key is read as framed only when its schema is found: keys are often short binary values (Kafka's
    // LongSerializer writes 8 big-endian bytes, most starting with 0) that merely look framed.
    let mut key_framing =
        framing::read_framed(message.key.as_deref(), context.schemas, "key").filter(|f| f.schema.kind.is_some());
    let (payload_format, schema_id, body) = match &value_framing {
        Some(f) => (f.format, f.schema_id, f.decoded.as_deref()),
        None => classify(message.value.as_deref()),
    };
    warnings.extend(
        value_framing
            .iter()
            .chain(&key_framing)
            .filter_map(|f| f.warning.clone()),
    );

    let headers: Vec<Header> = message
        .headers
        .iter()
        .map(|(name, value)| Header {
            name: name.clone(),
            value: Data::from_bytes(value.clone()),
        })
        .collect();

    let parsed = body.and_then(|text| json::parse(text).ok());
    // A JSON string holding a JSON object (double-encoded JSON) is read through.
    let double_encoded: Option<String> = match &parsed {
        Some(Json::String(text)) if matches!(json::parse(text), Ok(Json::Object(_))) => Some(text.to_string()),
        _ => None,
    };
    let inner = double_encoded.as_deref().and_then(|text| json::parse(text).ok());
    let root = match &inner {
        Some(inner) => {
            warnings.push(Warning::new(
                WarningCode::DoubleEncodedJson,
                "payload is a JSON object encoded inside a JSON string",
            ));
            Some(inner)
        }
        None => parsed.as_ref(),
    };
    // Kafka Connect's JsonConverter wrapper is unwrapped; a Debezium change event is read through its row.
    let root = root.map(change::unwrap_connect);
    let change_event = root.and_then(change::change_event);
    // A row written as JSON text (MongoDB's connector writes `after` so) is read through too.
    let row_text = match change_event.as_ref().and_then(|event| event.row) {
        Some((_, Json::String(text))) => json::parse(text).ok().filter(|row| row.as_object().is_some()),
        _ => None,
    };
    let row = match (&change_event, &row_text) {
        (Some(event), Some(parsed)) => event.row.map(|(path, _)| (path, parsed)),
        (Some(event), None) => event.row,
        (None, _) => None,
    };
    let scopes = match (&change_event, row) {
        (Some(_), Some((path, row))) => collect_scopes_at(row, path),
        (Some(_), None) => Vec::new(),
        (None, _) => root.map(collect_scopes).unwrap_or_default(),
    };
    let header_index = HeaderIndex::new(&message.headers);

    let mut fields = match &change_event {
        None => {
            let mut find = |spec: &FieldSpec| find_field(spec, &scopes, &header_index, &mut warnings);
            Extracted {
                event_type: find(&EVENT_TYPE),
                correlation_id: find(&CORRELATION_ID),
                order_id: find(&ORDER_ID),
                customer_id: find(&CUSTOMER_ID),
                source_service: find(&SOURCE_SERVICE),
                event_id: find(&EVENT_ID),
            }
        }
        Some(event) => {
            let entity = event.table_name.and_then(change::entity_of);
            let mut link = |spec: &FieldSpec| in_row(spec, entity, &scopes, &header_index, &mut warnings);
            let (correlation_id, order_id, customer_id) = (link(&CORRELATION_ID), link(&ORDER_ID), link(&CUSTOMER_ID));
            let mut find = |spec: &FieldSpec| find_field(spec, &scopes, &header_index, &mut warnings);
            let table = event
                .table_name
                .unwrap_or_else(|| message.topic.rsplit('.').next().unwrap_or_default());
            Extracted {
                event_type: find(&ROW_EVENT_TYPE).or_else(|| Some(format!("{table}.{}", change::verb(event.op)))),
                correlation_id,
                order_id,
                customer_id,
                source_service: find(&ROW_SOURCE_SERVICE),
                event_id: find(&ROW_EVENT_ID),
            }
        }
    };
    if fields.source_service.is_none() {
        fields.source_service = context.topic_services.service_for(&message.topic).map(str::to_owned);
    }

    for (label, value) in fields.named() {
        if let Some(value) = value.filter(|v| v.len() > MAX_FIELD_BYTES) {
            warnings.push(Warning::new(
                WarningCode::FieldTooLong,
                format!(
                    "{label} is {} bytes; stored as its first bytes, its length and its SHA-256",
                    value.len()
                ),
            ));
        }
    }

    // A change event happened when the database made the change; its row's own times are the row's.
    let change = change_event.as_ref().map(|event| Change {
        op: event.op.to_owned(),
        table: event.table.clone(),
        changed_at: event.changed_at.filter(in_range).map(format_time),
        connector: event.connector.map(str::to_owned),
    });
    let found_time = match &change_event {
        Some(event) => event.changed_at.filter(in_range),
        None => find_time(&scopes, &header_index, &mut warnings),
    };
    let occurred_at = found_time
        .or_else(|| {
            message
                .timestamp
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
                .filter(in_range)
        })
        .unwrap_or_else(|| {
            warnings.push(Warning::new(
                WarningCode::NoEventTime,
                "no event time and no Kafka timestamp; occurred_at is the receive time",
            ));
            context.received_at
        });

    // Last, once nothing reads the decoded text any more: it is moved into the record, not copied.
    let decoded = (value_framing.is_some() || key_framing.is_some()).then(|| Decoded {
        value: value_framing.as_mut().and_then(|f| f.decoded.take()),
        value_schema: value_framing.map(|f| f.schema),
        key: key_framing.as_mut().and_then(|f| f.decoded.take()),
        key_schema: key_framing.map(|f| f.schema),
    });
    cap_warnings(&mut warnings);
    Notification {
        id: message.id(),
        source_topic: message.topic.to_string(),
        partition: message.partition,
        offset: message.offset,
        kafka_timestamp: message.timestamp,
        timestamp_type: message.timestamp_type.as_deref().map(str::to_owned),
        key: message.key.clone().map(Data::from_bytes),
        headers,
        fields,
        occurred_at: format_time(occurred_at),
        received_at: format_time(context.received_at),
        payload: message.value.clone(),
        payload_format,
        schema_id,
        change,
        decoded,
        warnings,
    }
}

/// A linking id in a change event's row: named as such, or the row's own `id` when its table holds that entity
/// (`orders.id` is the order id).
fn in_row(
    spec: &FieldSpec,
    entity: Option<&str>,
    scopes: &[Scope<'_, '_>],
    headers: &HeaderIndex<'_>,
    warnings: &mut Vec<Warning>,
) -> Option<String> {
    // The row first (named, then its own id), then the message's headers.
    let no_headers = HeaderIndex::new(&[]);
    find_field(spec, scopes, &no_headers, warnings)
        .or_else(|| match entity {
            Some(entity) if spec.entity == Some(entity) => own_id(scopes, spec.label, warnings),
            _ => None,
        })
        .or_else(|| find_field(spec, &[], headers, warnings))
}

/// Keeps at most [`MAX_WARNINGS`] warnings, the last of them counting those left out.
fn cap_warnings(warnings: &mut Vec<Warning>) {
    if warnings.len() > MAX_WARNINGS {
        let more = warnings.len() - (MAX_WARNINGS - 1);
        warnings.truncate(MAX_WARNINGS - 1);
        warnings.push(Warning::new(
            WarningCode::MoreWarnings,
            format!("{more} more warnings, not kept"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalize_value(value: &str, headers: &[(&str, &str)]) -> Notification {
        let message = KafkaMessage {
            topic: "orders".into(),
            partition: 0,
            offset: Some(7),
            timestamp: Some(1_700_000_000_000),
            timestamp_type: Some("CREATE_TIME".into()),
            key: None,
            value: Some(value.as_bytes().to_vec()),
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
                .collect(),
            warnings: Vec::new(),
            fingerprint: String::new(),
        };
        let map = TopicServiceMap::default();
        normalize(
            &message,
            &Context {
                received_at: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
                topic_services: &map,
                schemas: Schemas::none(),
            },
        )
    }

    #[test]
    fn an_entity_objects_own_id_type_and_source_are_not_the_events() {
        let n = normalize_value(
            r#"{"order": {"id": "o-1", "type": "express", "source": "web"}, "payment": {"id": "p-1", "customerId": "c-1"}}"#,
            &[("message-id", "m-1")],
        );
        assert_eq!(n.fields.order_id.as_deref(), Some("o-1"));
        assert_eq!(n.fields.customer_id.as_deref(), Some("c-1"));
        assert_eq!(
            n.fields.event_id.as_deref(),
            Some("m-1"),
            "the order's id is not the event's"
        );
        assert_eq!(n.fields.event_type, None, "the order's type is not the event's");
        assert_eq!(n.fields.source_service, None, "the order's source is not the service");
        assert!(n.warnings.is_empty(), "{:?}", n.warnings);
    }

    #[test]
    fn eventbridge_detail_type_is_the_event_type() {
        let n = normalize_value(
            r#"{"version": "0", "id": "e-1", "detail-type": "OrderPlaced", "source": "com.shop.orders", "detail": {"orderId": "o-1"}}"#,
            &[],
        );
        assert_eq!(n.fields.event_type.as_deref(), Some("OrderPlaced"));
        assert_eq!(n.fields.source_service.as_deref(), Some("com.shop.orders"));
    }

    #[test]
    fn the_spring_type_id_header_is_the_event_type_only_when_nothing_else_names_it() {
        let typed = "com.shop.orders.OrderCreated";
        let n = normalize_value(r#"{"orderId": "o-1"}"#, &[("__TypeId__", typed)]);
        assert_eq!(n.fields.event_type.as_deref(), Some(typed));
        let n = normalize_value(
            r#"{"orderId": "o-1"}"#,
            &[("__TypeId__", typed), ("eventType", "OrderCreated")],
        );
        assert_eq!(n.fields.event_type.as_deref(), Some("OrderCreated"));
    }

    #[test]
    fn occurred_on_and_creation_date_are_event_times() {
        for name in ["OccurredOn", "CreationDate"] {
            let n = normalize_value(&format!(r#"{{"{name}": "2024-03-01T10:00:00.1234567+01:00"}}"#), &[]);
            assert_eq!(n.occurred_at, "2024-03-01T09:00:00.123456Z", "{name}");
        }
    }

    #[test]
    fn warnings_describe_values_without_quoting_them_and_are_capped() {
        let huge_time = "t".repeat(410_000);
        let n = normalize_value(
            &format!(r#"{{"occurredAt":"{huge_time}","orderId":"{}"}}"#, "o".repeat(5_000)),
            &[],
        );
        let messages: Vec<&str> = n.warnings.iter().map(|w| w.message.as_str()).collect();
        assert!(
            messages.iter().all(|m| m.len() < 200 && !m.contains("ttt")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("text of 410000 bytes")),
            "{messages:?}"
        );
        let codes: Vec<WarningCode> = n.warnings.iter().map(|w| w.code).collect();
        assert!(codes.contains(&WarningCode::FieldTooLong), "{codes:?}");
        assert!(codes.contains(&WarningCode::UnreadableTime), "{codes:?}");

        // A header name that is not UTF-8 is named, cut; a hundred of them are counted, not all kept.
        let mut message = KafkaMessage {
            topic: "orders".into(),
            partition: 0,
            offset: Some(7),
            timestamp: Some(1_700_000_000_000),
            timestamp_type: None,
            key: None,
            value: None,
            headers: vec![("order-id".to_owned(), vec![0xff]); 100],
            warnings: Vec::new(),
            fingerprint: String::new(),
        };
        message.headers.push(("x".repeat(100_000), vec![0xff]));
        let map = TopicServiceMap::default();
        let context = Context {
            received_at: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
            topic_services: &map,
            schemas: Schemas::none(),
        };
        let n = normalize(&message, &context);
        assert_eq!(n.warnings.len(), MAX_WARNINGS);
        let last = n.warnings.last().unwrap();
        assert_eq!(last.code, WarningCode::MoreWarnings);
        assert_eq!(last.message, "69 more warnings, not kept");
    }
}
