//! Normalization (BRIEF §4): one decoded Kafka record in, one [`Notification`] out. Pure: no I/O, no clock
//! (the receive time is an input), no panics on any bytes.
//!
//! Field names are compared by their *canonical* form: letters and digits only, lower-cased, so
//! `customerId`, `customer_id`, `CustomerID`, `customer-id` and `Customer.Id` are all `customerid`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

use crate::json::{self, Json};
use crate::model::{Data, Extracted, Header, KafkaMessage, Notification, PayloadFormat};

/// The members of the value that are searched as envelopes, by canonical name.
const ENVELOPES: [&str; 9] = [
    "metadata",
    "meta",
    "headers",
    "data",
    "payload",
    "detail",
    "body",
    "event",
    "attributes",
];

/// How deep envelopes are followed (`detail.data.orderId` is two envelopes down).
const MAX_ENVELOPE_DEPTH: usize = 2;

/// What a field is called, wherever it is looked for.
struct FieldSpec {
    label: &'static str,
    /// Canonical member names in the value, in priority order.
    names: &'static [&'static str],
    /// A nested object whose `id` is this field (`order: {id}`), by canonical name.
    entity: Option<&'static str>,
    /// Canonical Kafka header names, in priority order (CloudEvents binary mode first).
    headers: &'static [&'static str],
}

const EVENT_TYPE: FieldSpec = FieldSpec {
    label: "event_type",
    // `detail-type` is EventBridge's; `__TypeId__` is the class name Spring Kafka's JsonSerializer sends.
    names: &["eventtype", "type", "eventname", "detailtype", "messagetype", "event"],
    entity: None,
    headers: &[
        "cetype",
        "eventtype",
        "xeventtype",
        "eventname",
        "messagetype",
        "type",
        "typeid",
    ],
};
const CORRELATION_ID: FieldSpec = FieldSpec {
    label: "correlation_id",
    names: &["correlationid", "xcorrelationid", "correlation"],
    entity: Some("correlation"),
    headers: &["correlationid", "xcorrelationid", "cecorrelationid", "correlation"],
};
const ORDER_ID: FieldSpec = FieldSpec {
    label: "order_id",
    names: &["orderid"],
    entity: Some("order"),
    headers: &["orderid", "xorderid", "ceorderid"],
};
const CUSTOMER_ID: FieldSpec = FieldSpec {
    label: "customer_id",
    names: &["customerid"],
    entity: Some("customer"),
    headers: &["customerid", "xcustomerid", "cecustomerid"],
};
const SOURCE_SERVICE: FieldSpec = FieldSpec {
    label: "source_service",
    names: &["sourceservice", "source", "service", "servicename", "producer"],
    entity: None,
    headers: &[
        "cesource",
        "sourceservice",
        "xsourceservice",
        "source",
        "service",
        "producer",
    ],
};
const EVENT_ID: FieldSpec = FieldSpec {
    label: "event_id",
    names: &["eventid", "messageid", "id"],
    entity: None,
    headers: &["ceid", "eventid", "xeventid", "messageid", "xmessageid", "id"],
};
const OCCURRED_AT: FieldSpec = FieldSpec {
    label: "occurred_at",
    names: &[
        "occurredat",
        "occurredon",
        "eventtime",
        "eventtimestamp",
        "time",
        "timestamp",
        "ts",
        "createdat",
        "creationdate",
        "emittedat",
        "publishedat",
        "sentat",
    ],
    entity: None,
    headers: &["cetime", "occurredat", "eventtime", "timestamp", "time"],
};

/// Maps topics to the service that owns them, for records that do not name their source. A name ending in
/// `*` matches every topic that starts with what comes before it; exact names win over patterns, and
/// longer patterns over shorter ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicServiceMap {
    exact: BTreeMap<String, String>,
    prefixes: Vec<(String, String)>,
}

impl TopicServiceMap {
    /// Parses `topic=service,orders.*=orders-service`. Empty text is an empty map.
    pub fn parse(text: &str) -> Result<TopicServiceMap, String> {
        let mut map = TopicServiceMap::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (topic, service) = entry
                .split_once('=')
                .map(|(t, s)| (t.trim(), s.trim()))
                .filter(|(t, s)| !t.is_empty() && !s.is_empty())
                .ok_or_else(|| format!("{entry:?} is not TOPIC=SERVICE"))?;
            map.insert(topic, service);
        }
        Ok(map)
    }

    pub fn insert(&mut self, topic: &str, service: &str) {
        match topic.strip_suffix('*') {
            Some(prefix) => {
                self.prefixes.push((prefix.to_owned(), service.to_owned()));
                self.prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
            }
            None => {
                self.exact.insert(topic.to_owned(), service.to_owned());
            }
        }
    }

    pub fn service_for(&self, topic: &str) -> Option<&str> {
        self.exact.get(topic).map(String::as_str).or_else(|| {
            self.prefixes
                .iter()
                .find(|(prefix, _)| topic.starts_with(prefix.as_str()))
                .map(|(_, service)| service.as_str())
        })
    }
}

/// What normalization needs besides the record.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// When ingest received the record; becomes `received_at`.
    pub received_at: DateTime<Utc>,
    pub topic_services: &'a TopicServiceMap,
}

/// The canonical form of a field name: letters and digits only, lower-cased.
pub fn canonical(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `canonical(name) == canon`, without building the canonical form: names are compared many times per
/// record (every member of every scope against every known name), so this is the hot loop of normalization.
pub fn is_canonical(name: &str, canon: &str) -> bool {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .eq(canon.chars())
}

/// Formats a time the way every stored time is written: RFC 3339, UTC, microseconds, fixed width.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Normalizes one record.
pub fn normalize(message: &KafkaMessage, context: &Context<'_>) -> Notification {
    let mut warnings = message.warnings.clone();
    let (payload_format, schema_id, body) = classify(message.value.as_deref());

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
            warnings.push("payload is a JSON object encoded inside a JSON string".into());
            Some(inner)
        }
        None => parsed.as_ref(),
    };
    let scopes = root.map(collect_scopes).unwrap_or_default();
    let header_index = HeaderIndex::new(&message.headers);

    let mut find = |spec: &FieldSpec| find_field(spec, &scopes, &header_index, &mut warnings);
    let mut fields = Extracted {
        event_type: find(&EVENT_TYPE),
        correlation_id: find(&CORRELATION_ID),
        order_id: find(&ORDER_ID),
        customer_id: find(&CUSTOMER_ID),
        source_service: find(&SOURCE_SERVICE),
        event_id: find(&EVENT_ID),
    };
    if fields.source_service.is_none() {
        fields.source_service = context.topic_services.service_for(&message.topic).map(str::to_owned);
    }

    let occurred_at = find_time(&scopes, &header_index, &mut warnings)
        .or_else(|| {
            message
                .timestamp
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
                .filter(in_range)
        })
        .unwrap_or_else(|| {
            warnings.push("no event time and no Kafka timestamp; occurred_at is the receive time".into());
            context.received_at
        });

    Notification {
        id: message.id(),
        source_topic: message.topic.clone(),
        partition: message.partition,
        offset: message.offset,
        kafka_timestamp: message.timestamp,
        timestamp_type: message.timestamp_type.clone(),
        key: message.key.clone().map(Data::from_bytes),
        headers,
        fields,
        occurred_at: format_time(occurred_at),
        received_at: format_time(context.received_at),
        payload: message.value.clone(),
        payload_format,
        schema_id,
        warnings,
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
fn json_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    json::is_valid(text).then_some(text)
}

/// An object searched for fields, with the path it was found at.
struct Scope<'j, 'a> {
    path: String,
    members: &'j [(std::borrow::Cow<'a, str>, Json<'a>)],
    /// Envelope scopes are searched before entity objects (`order`, `customer`).
    is_entity: bool,
}

fn collect_scopes<'j, 'a>(root: &'j Json<'a>) -> Vec<Scope<'j, 'a>> {
    let mut scopes = Vec::new();
    let Some(members) = root.as_object() else {
        return scopes;
    };
    scopes.push(Scope {
        path: "$".into(),
        members,
        is_entity: false,
    });
    let mut frontier = 0;
    for _ in 0..MAX_ENVELOPE_DEPTH {
        let end = scopes.len();
        for index in frontier..end {
            let mut found = Vec::new();
            for (name, value) in scopes[index].members {
                if let Some(inner) = value.as_object() {
                    if ENVELOPES.iter().any(|envelope| is_canonical(name, envelope)) {
                        found.push(Scope {
                            path: format!("{}.{}", scopes[index].path, name),
                            members: inner,
                            is_entity: false,
                        });
                    }
                }
            }
            scopes.extend(found);
        }
        frontier = end;
    }
    // Entity objects inside any envelope scope: `order: {customerId}` tells the customer too.
    let envelope_count = scopes.len();
    for index in 0..envelope_count {
        let mut found = Vec::new();
        for (name, value) in scopes[index].members {
            if let Some(inner) = value.as_object() {
                if ["order", "customer", "payment", "shipment", "correlation"]
                    .iter()
                    .any(|entity| is_canonical(name, entity))
                {
                    found.push(Scope {
                        path: format!("{}.{}", scopes[index].path, name),
                        members: inner,
                        is_entity: true,
                    });
                }
            }
        }
        scopes.extend(found);
    }
    scopes
}

/// Kafka headers by canonical name; only UTF-8 values can carry ids.
struct HeaderIndex<'m> {
    headers: Vec<(String, &'m str, &'m [u8])>,
}

impl<'m> HeaderIndex<'m> {
    fn new(headers: &'m [(String, Vec<u8>)]) -> Self {
        HeaderIndex {
            headers: headers
                .iter()
                .map(|(name, value)| (canonical(name), name.as_str(), value.as_slice()))
                .collect(),
        }
    }

    fn find(&self, canon: &str, warnings: &mut Vec<String>, label: &str) -> Option<String> {
        for (c, name, value) in &self.headers {
            if c != canon {
                continue;
            }
            match std::str::from_utf8(value) {
                Ok(text) if is_present(text) => return Some(text.to_owned()),
                Ok(_) => {}
                Err(_) => warnings.push(format!("header {name:?} is not UTF-8, so it is not a {label}")),
            }
        }
        None
    }
}

fn is_present(text: &str) -> bool {
    let trimmed = text.trim();
    !trimmed.is_empty() && trimmed != "null"
}

/// An id-like value as text: strings exactly, numbers as their decimal text. Anything else is not an id.
fn id_text(value: &Json<'_>, label: &str, path: &str, warnings: &mut Vec<String>) -> Option<String> {
    match value {
        Json::String(text) if is_present(text) => Some(text.to_string()),
        Json::String(_) | Json::Null => None,
        Json::Number(text) => match decimal_text(text) {
            Some(decimal) => Some(decimal),
            None => {
                warnings.push(format!(
                    "{label} at {path} is the number {text}, too large to write out; kept as written"
                ));
                Some((*text).to_owned())
            }
        },
        other => {
            warnings.push(format!(
                "{label} at {path} is {}, not a string or number; ignored",
                other.kind()
            ));
            None
        }
    }
}

/// The decimal text of a JSON number: integers exactly as written, exponents expanded (`1.5e3` is `1500`).
/// `None` when the exponent would write out more than 400 digits, and for text that is not a JSON number.
pub fn decimal_text(number: &str) -> Option<String> {
    if !matches!(json::parse(number), Ok(Json::Number(whole)) if whole.len() == number.len()) {
        return None;
    }
    let (negative, unsigned) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    if !unsigned.contains(['.', 'e', 'E']) {
        return Some(number.to_owned());
    }
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{int_part}{frac_part}");
    // The decimal point sits after `point` digits.
    let point = int_part.len() as i64 + exponent;
    if !(-400..=400).contains(&point) || digits.len() > 400 {
        return None;
    }
    let (mut int_digits, frac_digits) = if point <= 0 {
        ("0".to_owned(), format!("{}{}", "0".repeat((-point) as usize), digits))
    } else if point as usize >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        (digits[..point as usize].to_owned(), digits[point as usize..].to_owned())
    };
    let trimmed_int = int_digits.trim_start_matches('0');
    int_digits = if trimmed_int.is_empty() {
        "0".into()
    } else {
        trimmed_int.to_owned()
    };
    let frac_digits = frac_digits.trim_end_matches('0');
    let sign = if negative { "-" } else { "" };
    Some(if frac_digits.is_empty() {
        format!("{sign}{int_digits}")
    } else {
        format!("{sign}{int_digits}.{frac_digits}")
    })
}

fn find_field(
    spec: &FieldSpec,
    scopes: &[Scope<'_, '_>],
    headers: &HeaderIndex<'_>,
    warnings: &mut Vec<String>,
) -> Option<String> {
    // Entity objects (`order`, `payment`, ...) describe a business object, not the event: their `id`, `type` or
    // `source` are the object's own. Only the ids that link records (order, customer, correlation) are read there.
    let passes: &[bool] = if spec.entity.is_some() {
        &[false, true]
    } else {
        &[false]
    };
    for &pass_entities in passes {
        for scope in scopes.iter().filter(|s| s.is_entity == pass_entities) {
            for name in spec.names {
                for (member, value) in scope.members {
                    if !is_canonical(member, name) {
                        continue;
                    }
                    let path = format!("{}.{}", scope.path, member);
                    // An envelope name that holds an object is an envelope, not this field.
                    if matches!(value, Json::Object(_)) && (ENVELOPES.contains(name) || spec.entity == Some(name)) {
                        continue;
                    }
                    if let Some(found) = id_text(value, spec.label, &path, warnings) {
                        return Some(found);
                    }
                }
            }
            if let Some(entity) = spec.entity {
                for (member, value) in scope.members {
                    if !is_canonical(member, entity) {
                        continue;
                    }
                    let Some(inner) = value.as_object() else { continue };
                    for (inner_name, inner_value) in inner {
                        let canon = canonical(inner_name);
                        if canon == "id" || spec.names.contains(&canon.as_str()) {
                            let path = format!("{}.{}.{}", scope.path, member, inner_name);
                            if let Some(found) = id_text(inner_value, spec.label, &path, warnings) {
                                return Some(found);
                            }
                        }
                    }
                }
            }
        }
    }
    spec.headers
        .iter()
        .find_map(|name| headers.find(name, warnings, spec.label))
}

fn find_time(scopes: &[Scope<'_, '_>], headers: &HeaderIndex<'_>, warnings: &mut Vec<String>) -> Option<DateTime<Utc>> {
    for scope in scopes.iter().filter(|s| !s.is_entity) {
        for name in OCCURRED_AT.names {
            for (member, value) in scope.members {
                if !is_canonical(member, name) {
                    continue;
                }
                let path = format!("{}.{}", scope.path, member);
                match value {
                    Json::String(text) if is_present(text) => match parse_time_text(text) {
                        Some(time) => return Some(time),
                        None => warnings.push(format!(
                            "{path} {text:?} is not a time this service reads (RFC 3339 or epoch seconds/milliseconds)"
                        )),
                    },
                    Json::Number(text) => match parse_epoch(text) {
                        Some(time) => return Some(time),
                        None => warnings.push(format!("{path} {text} is not a plausible epoch time")),
                    },
                    Json::String(_) | Json::Null => {}
                    other => warnings.push(format!("{path} is {}, not a time", other.kind())),
                }
            }
        }
    }
    for name in OCCURRED_AT.headers {
        if let Some(text) = headers.find(name, warnings, "time") {
            match parse_time_text(&text) {
                Some(time) => return Some(time),
                None => warnings.push(format!("header {name} {text:?} is not a time this service reads")),
            }
        }
    }
    None
}

fn in_range(time: &DateTime<Utc>) -> bool {
    use chrono::Datelike;
    (1..=9999).contains(&time.year())
}

/// Parses RFC 3339 (also with a space for `T`, or without an offset, taken as UTC) or epoch digits.
pub fn parse_time_text(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc)).filter(in_range);
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc()).filter(in_range);
        }
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') {
        return parse_epoch(text);
    }
    None
}

/// Reads an epoch number as seconds, milliseconds, microseconds or nanoseconds by its magnitude.
pub fn parse_epoch(text: &str) -> Option<DateTime<Utc>> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let micros = if value < 1e11 {
        value * 1e6
    } else if value < 1e14 {
        value * 1e3
    } else if value < 1e17 {
        value
    } else {
        value / 1e3
    };
    if micros > 253_402_300_799_999_999.0 {
        return None;
    }
    // Integers of up to 17 digits are exact in f64's 53-bit mantissa after scaling only when small; use
    // integer arithmetic where the text is an integer.
    let micros = match text.parse::<i64>() {
        Ok(int) if value < 1e11 => int.checked_mul(1_000_000)?,
        Ok(int) if value < 1e14 => int.checked_mul(1_000)?,
        Ok(int) if value < 1e17 => int,
        Ok(int) => int / 1_000,
        Err(_) => micros.round() as i64,
    };
    Utc.timestamp_micros(micros).single().filter(in_range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_ignore_case_and_separators() {
        for name in [
            "customerId",
            "customer_id",
            "CustomerID",
            "customer-id",
            "Customer.Id",
            "CUSTOMER ID",
        ] {
            assert_eq!(canonical(name), "customerid", "{name}");
            assert!(is_canonical(name, "customerid"), "{name}");
        }
        for (name, canon) in [
            ("customer", "customerid"),
            ("customerIdx", "customerid"),
            ("", ""),
            ("__", ""),
            ("İd", "i\u{307}d"),
            ("ID", "Id"),
        ] {
            assert_eq!(is_canonical(name, canon), canonical(name) == canon, "{name} {canon}");
        }
    }

    #[test]
    fn decimal_text_expands_exponents_and_keeps_integers_exactly() {
        assert_eq!(
            decimal_text("123456789012345678901234567890").unwrap(),
            "123456789012345678901234567890"
        );
        assert_eq!(decimal_text("-42").unwrap(), "-42");
        assert_eq!(decimal_text("1.5e3").unwrap(), "1500");
        assert_eq!(decimal_text("1E-2").unwrap(), "0.01");
        assert_eq!(decimal_text("12.50").unwrap(), "12.5");
        assert_eq!(decimal_text("0.0").unwrap(), "0");
        assert_eq!(decimal_text("-1.25e1").unwrap(), "-12.5");
        assert_eq!(decimal_text("1e999999"), None);
        assert_eq!(decimal_text("1e99999999999999999999"), None);
    }

    #[test]
    fn a_zero_exponent_is_still_written_out_as_decimal_text() {
        assert_eq!(decimal_text("42E0").unwrap(), "42");
        assert_eq!(decimal_text("-7e+0").unwrap(), "-7");
        assert_eq!(decimal_text("120e-0").unwrap(), "120");
    }

    #[test]
    fn epoch_times_are_read_by_magnitude() {
        let expected = "2023-11-14T22:13:20.000000Z";
        for text in [
            "1700000000",
            "1700000000000",
            "1700000000000000",
            "1700000000000000000",
            "1700000000.0",
        ] {
            assert_eq!(format_time(parse_epoch(text).unwrap()), expected, "{text}");
        }
        assert_eq!(
            format_time(parse_epoch("1700000000.5").unwrap()),
            "2023-11-14T22:13:20.500000Z"
        );
        assert!(parse_epoch("-5").is_none());
        assert!(parse_epoch("1e400").is_none());
        assert!(parse_epoch("99999999999999999999999").is_none());
    }

    #[test]
    fn rfc3339_times_are_normalized_to_utc() {
        let t = parse_time_text("2024-03-01T10:00:00.123+02:00").unwrap();
        assert_eq!(format_time(t), "2024-03-01T08:00:00.123000Z");
        assert_eq!(
            format_time(parse_time_text("2024-03-01 10:00:00").unwrap()),
            "2024-03-01T10:00:00.000000Z"
        );
        assert!(parse_time_text("yesterday").is_none());
        assert!(parse_time_text("2024-13-01T00:00:00Z").is_none());
    }

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
    fn decimal_text_of_text_that_is_not_a_json_number_is_none_without_panicking() {
        for text in [
            "é.5e1", "1.é5e1", "1.2.3", " 1", "1 ", "", "e5", "1e", "+1", "0x10", "--1", "1e+",
        ] {
            assert_eq!(decimal_text(text), None, "{text:?}");
        }
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
    fn topic_service_map_prefers_exact_names_then_longest_patterns() {
        let map = TopicServiceMap::parse("orders=order-svc, orders.*=orders-any, orders.v2.*=orders-v2,pay*=payments")
            .unwrap();
        assert_eq!(map.service_for("orders"), Some("order-svc"));
        assert_eq!(map.service_for("orders.created"), Some("orders-any"));
        assert_eq!(map.service_for("orders.v2.created"), Some("orders-v2"));
        assert_eq!(map.service_for("payments"), Some("payments"));
        assert_eq!(map.service_for("shipping"), None);
        assert!(TopicServiceMap::parse("orders").is_err());
        assert!(TopicServiceMap::parse("=x").is_err());
        assert_eq!(TopicServiceMap::parse("").unwrap(), TopicServiceMap::default());
    }
}
