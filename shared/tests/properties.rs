//! Properties of the pure core that must hold for every input, not only for the fixtures: nothing panics on
//! arbitrary bytes, text or trigger events; no record is dropped; the payload always comes back byte for byte
//! (from the record, from the stored item and from what the API shows); the JSON reader agrees with serde_json
//! on what is JSON; ids, numbers and times are read as the README's "The record" says.

use base64::Engine as _;
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use shared::decode;
use shared::dynamo::codec::{self, StoredPayload};
use shared::dynamo::placement::{self, Layout};
use shared::model::{KafkaMessage, Notification, PayloadFormat, RenderedPayload};
use shared::normalize::json;
use shared::normalize::{self, Context, TopicServiceMap};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn received_at() -> DateTime<Utc> {
    Utc.timestamp_opt(1_900_000_000, 0).unwrap()
}

fn message(value: Option<Vec<u8>>, key: Option<Vec<u8>>, headers: Vec<(String, Vec<u8>)>) -> KafkaMessage {
    KafkaMessage {
        topic: "orders".into(),
        partition: 0,
        offset: Some(1),
        timestamp: Some(1_709_287_200_000),
        timestamp_type: Some("CREATE_TIME".into()),
        key,
        value,
        headers,
        warnings: Vec::new(),
        fingerprint: String::new(),
    }
}

/// The registry schemas every property normalizes with (`shared::schema::sample_schemas`).
fn sample_schemas() -> &'static shared::normalize::Schemas {
    static SCHEMAS: std::sync::OnceLock<shared::normalize::Schemas> = std::sync::OnceLock::new();
    SCHEMAS.get_or_init(shared::schema::sample_schemas)
}

fn normalize_message(message: &KafkaMessage) -> Notification {
    let map = TopicServiceMap::parse("orders=order-service,pay*=payment-service").unwrap();
    normalize::normalize(
        message,
        &Context {
            received_at: received_at(),
            topic_services: &map,
            schemas: sample_schemas(),
        },
    )
}

/// Normalizes, lays the record out as an item and reads it back: the payload must survive every step.
fn assert_payload_survives(message: &KafkaMessage) -> Result<Notification, TestCaseError> {
    let n = normalize_message(message);
    prop_assert_eq!(&n.payload, &message.value, "the record changed the payload");
    prop_assert_eq!(n.payload_format == PayloadFormat::Tombstone, message.value.is_none());

    let layout = Layout {
        bucket: Some("payloads".into()),
        ..Layout::default()
    };
    let prepared = placement::prepare(&n, &layout, 1_900_000_000).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let stored = codec::record_from_item(&prepared.item.to_item()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back = match stored.payload {
        StoredPayload::None => None,
        StoredPayload::Inline(bytes) => Some(bytes),
        StoredPayload::Zstd(bytes) => Some(codec::decompress(&bytes, 64 << 20).map_err(TestCaseError::fail)?),
        StoredPayload::S3(pointer) => prepared
            .blobs
            .iter()
            .find(|blob| blob.key == pointer.key)
            .map(|blob| blob.bytes.clone()),
    };
    prop_assert_eq!(&back, &message.value, "the stored item changed the payload");
    prop_assert_eq!(stored.summary, n.summary());

    // What the API shows gives the bytes back (JSON from its document, after framing, BOM and outer space).
    let payload = message.value.as_deref();
    match n.view().payload {
        RenderedPayload::None(()) => prop_assert!(payload.is_none()),
        RenderedPayload::Base64(text) => {
            let decoded = base64::engine::general_purpose::STANDARD.decode(text).ok();
            prop_assert_eq!(decoded.as_deref(), payload);
            // Bytes that are not UTF-8, or a registry's framing (binary, whatever the body).
            let framed = !matches!(
                n.payload_format,
                PayloadFormat::Json | PayloadFormat::Text | PayloadFormat::Binary
            );
            prop_assert!(framed || std::str::from_utf8(payload.unwrap_or_default()).is_err());
        }
        RenderedPayload::Text(text) => prop_assert_eq!(Some(text.as_bytes()), payload),
        RenderedPayload::Json(raw) => {
            prop_assert!(matches!(
                n.payload_format,
                PayloadFormat::Json | PayloadFormat::ConfluentJson
            ));
            let bytes = payload.unwrap_or_default();
            let body = if n.payload_format == PayloadFormat::ConfluentJson {
                bytes.get(5..).unwrap_or_default()
            } else {
                bytes
            };
            let text = std::str::from_utf8(body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(raw.get(), text.trim_start_matches('\u{feff}').trim());
        }
        RenderedPayload::Url(url) => prop_assert!(false, "a payload in hand is never rendered as a URL: {url}"),
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------------------------
// Generators.

/// Names that normalization looks for, in several conventions, and some it does not.
const NAMES: &[&str] = &[
    "orderId",
    "order_id",
    "OrderID",
    "order-id",
    "Order.Id",
    "customerId",
    "customer_id",
    "CustomerID",
    "correlationId",
    "X-Correlation-ID",
    "eventType",
    "type",
    "event",
    "eventId",
    "id",
    "messageId",
    "source",
    "producer",
    "occurredAt",
    "time",
    "timestamp",
    "ts",
    "metadata",
    "meta",
    "headers",
    "data",
    "payload",
    "detail",
    "body",
    "attributes",
    "order",
    "customer",
    "payment",
    "amount",
    "",
    "ü",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(NAMES).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

/// JSON number text: integers of any length, fractions, exponents (also far beyond f64's range).
fn number_text() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,7})?"
}

/// Strings that look like the values ids and times take, and arbitrary ones.
fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z]{3}-[0-9]{1,6}",
        Just(String::new()),
        Just("null".to_owned()),
        Just("  ".to_owned()),
        "20[0-9]{2}-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,9})?(Z|[+-][0-2][0-9]:[0-5][0-9])?",
        "[0-9]{1,20}(\\.[0-9]{1,6})?",
        ".{0,16}",
    ]
}

/// A JSON document as text, built without serde_json so that numbers keep any text.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        number_text(),
        string_value().prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((name(), inner), 0..6).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// Valid JSON, or JSON damaged by one edit: a cut, a deleted character or an inserted one.
fn json_ish_text() -> impl Strategy<Value = String> {
    let edit = prop_oneof![Just(None), (any::<prop::sample::Index>(), 0..3usize).prop_map(Some),];
    (
        json_text(),
        edit,
        proptest::sample::select(
            &[
                "", "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "-", "e", "0", "\u{feff}",
            ][..],
        ),
    )
        .prop_map(|(text, edit, insert)| {
            let Some((at, kind)) = edit else { return text };
            let chars: Vec<char> = text.chars().collect();
            if chars.is_empty() {
                return insert.to_owned();
            }
            let at = at.index(chars.len());
            let mut out: String = chars[..at].iter().collect();
            match kind {
                0 => {}
                1 => out.extend(&chars[at + 1..]),
                _ => {
                    out.push_str(insert);
                    out.extend(&chars[at..]);
                }
            }
            out
        })
}

/// Arbitrary JSON values for the trigger event's fields.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e20f64..1e20).prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A field of a trigger record: usually well formed, sometimes anything.
fn field(good: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        6 => good.prop_map(Some),
        1 => any_value().prop_map(Some),
        1 => Just(None),
    ]
    .boxed()
}

fn header_map() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (name(), prop::collection::vec(-128i64..=127, 0..12))
            .prop_map(|(name, bytes)| Value::Object(Map::from_iter([(name, json!(bytes))]))),
        1 => (name(), prop::collection::vec(-300i64..=300, 0..4))
            .prop_map(|(name, bytes)| Value::Object(Map::from_iter([(name, json!(bytes))]))),
        1 => any_value(),
    ]
}

fn bytes_field() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => json_ish_text().prop_map(|t| json!(b64(t.as_bytes()))),
        2 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| json!(b64(&b))),
        1 => ".{0,12}".prop_map(Value::String),
        1 => Just(Value::Null),
    ]
}

fn record() -> impl Strategy<Value = Value> {
    let fields = (
        field(".{0,10}".prop_map(Value::String)),
        field((-2i64..64).prop_map(|p| json!(p))),
        field(any::<i64>().prop_map(|o| json!(o))),
        field(prop_oneof![
            (0i64..4_102_444_800_000).prop_map(|t| json!(t)),
            Just(json!(-1)),
            (0f64..4e12).prop_map(|t| json!(t)),
            "[0-9]{1,14}(\\.[0-9])?".prop_map(Value::String),
        ]),
        field(
            proptest::sample::select(&["CREATE_TIME", "LOG_APPEND_TIME", "NO_TIMESTAMP_TYPE"][..])
                .prop_map(|t| json!(t)),
        ),
        field(bytes_field()),
        field(bytes_field()),
        field(prop::collection::vec(header_map(), 0..5).prop_map(Value::Array)),
    );
    fields.prop_map(
        |(topic, partition, offset, timestamp, timestamp_type, key, value, headers)| {
            let mut record = Map::new();
            for (name, field) in [
                ("topic", topic),
                ("partition", partition),
                ("offset", offset),
                ("timestamp", timestamp),
                ("timestampType", timestamp_type),
                ("key", key),
                ("value", value),
                ("headers", headers),
            ] {
                if let Some(value) = field {
                    record.insert(name.to_owned(), value);
                }
            }
            Value::Object(record)
        },
    )
}

/// A Kafka trigger event: groups of records, and now and then a group or record that is not what AWS sends.
fn event() -> impl Strategy<Value = (Value, usize)> {
    let group = prop_oneof![
        6 => prop::collection::vec(prop_oneof![8 => record(), 1 => any_value()], 0..4).prop_map(Value::Array),
        1 => any_value(),
    ];
    (
        proptest::sample::select(&["aws:kafka", "SelfManagedKafka"][..]),
        prop::collection::btree_map("[a-z.]{0,6}(-[0-9]{1,2})?", group, 0..4),
    )
        .prop_map(|(source, groups)| {
            let count = groups
                .values()
                .map(|g| match g {
                    Value::Array(items) => items.len(),
                    _ => 1,
                })
                .sum();
            let records: Map<String, Value> = groups.into_iter().collect();
            (json!({"eventSource": source, "records": records}), count)
        })
}

// ---------------------------------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::decode_event_bytes(&bytes);
    }

    #[test]
    fn decoding_json_ish_text_as_an_event_never_panics(text in json_ish_text()) {
        let _ = decode::decode_event_bytes(text.as_bytes());
    }

    #[test]
    fn arbitrary_trigger_events_keep_every_record_and_never_panic((event, count) in event()) {
        let bytes = serde_json::to_vec(&event).unwrap();
        let decoded = decode::decode_event_bytes(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded.records.len(), count, "a record was dropped");
        let mut ids = std::collections::HashSet::new();
        for message in &decoded.records {
            let n = assert_payload_survives(message)?;
            prop_assert_eq!(&n.id, &message.id());
            ids.insert(n.id);
        }
        // Decoding is deterministic: the same event gives the same records, so redelivery gives the same ids.
        let again = decode::decode_event_bytes(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&again, &decoded);
        // The runtime's payload type (`KafkaTrigger`) is the same decoder: the same records.
        let trigger: decode::KafkaTrigger = serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(trigger.0.map_err(|e| TestCaseError::fail(e.to_string()))?, decoded);
    }

    #[test]
    fn a_record_read_from_its_text_is_the_record_read_from_its_value(
        record in prop_oneof![8 => record(), 1 => any_value()],
        group in "[a-z.]{0,6}(-[0-9]{1,2})?",
        escape_slashes in any::<bool>(),
    ) {
        let mut text = serde_json::to_string(&record).unwrap();
        if escape_slashes {
            // The same document with `/` written as `\/` (valid JSON, seen from some producers): text that cannot
            // be borrowed, which takes the other way.
            text = text.replace('/', "\\/");
        }
        prop_assert_eq!(decode::decode_record_text(&group, &text), decode::decode_record(&group, &record));
    }

    #[test]
    fn arbitrary_values_keys_and_headers_never_panic_and_the_payload_survives(
        value in prop::option::of(prop::collection::vec(any::<u8>(), 0..2048)),
        key in prop::option::of(prop::collection::vec(any::<u8>(), 0..32)),
        headers in prop::collection::vec((name(), prop::collection::vec(any::<u8>(), 0..16)), 0..6),
    ) {
        assert_payload_survives(&message(value, key, headers))?;
    }

    #[test]
    fn json_ish_values_never_panic_and_the_payload_survives(
        text in json_ish_text(),
        framing in prop_oneof![
            4 => Just(Vec::new()),
            1 => Just(vec![0xef, 0xbb, 0xbf]),
            1 => any::<u32>().prop_map(|id| [&[0u8][..], &id.to_be_bytes()].concat()),
        ],
        headers in prop::collection::vec((name(), string_value()), 0..4),
    ) {
        let value = [framing, text.into_bytes()].concat();
        let headers = headers.into_iter().map(|(n, v)| (n, v.into_bytes())).collect();
        assert_payload_survives(&message(Some(value), None, headers))?;
    }

    #[test]
    fn registry_framed_values_and_keys_never_panic_and_the_payload_survives(
        body in prop::collection::vec(any::<u8>(), 0..512),
        framing in 0..6usize,
        as_key in any::<bool>(),
    ) {
        use shared::schema::{confluent_frame, glue_frame};
        let framed = match framing {
            0 => confluent_frame(1, &body),
            1 => confluent_frame(2, &body),
            2 => confluent_frame(3, &body),
            3 => glue_frame([0; 16], &body, false),
            4 => glue_frame([0; 16], &body, true),
            _ => glue_frame([1; 16], &body, false),
        };
        let key = as_key.then(|| framed.clone());
        let n = assert_payload_survives(&message(Some(framed), key, Vec::new()))?;
        // Decoded or not, a framed value says which registry framed it; undecoded, a warning says why.
        let format = n.payload_format.as_str();
        prop_assert!(format.starts_with("confluent-") || format.starts_with("glue-"), "{}", format);
        if format.ends_with("-binary") {
            prop_assert!(!n.warnings.is_empty());
        }
        let view = serde_json::to_value(n.view()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(view["schema"]["id"].is_string(), "{}", view);
    }

    #[test]
    fn avro_records_in_either_framing_are_found_by_their_ids_and_times(
        order_id in "[A-Za-z0-9-]{1,40}",
        customer in prop::option::of("[a-z0-9]{1,12}"),
        ms in 946_684_800_000_i64..4_102_444_800_000,
        glue in any::<bool>(),
        compress in any::<bool>(),
    ) {
        use shared::schema::registry::Resolution;
        use shared::schema::{confluent_frame, glue_frame, SchemaRef};
        let id = if glue { SchemaRef::Glue([0; 16]) } else { SchemaRef::Confluent(1) };
        let frame = |b: &[u8]| if glue { glue_frame([0; 16], b, compress) } else { confluent_frame(1, b) };
        let Some(Resolution::Found(schema)) = sample_schemas().get(&id) else { panic!("sample schema") };
        let event = json!({"orderId": order_id, "customerId": customer, "occurredAt": ms,
                           "amount": null, "tags": {"k": "v"}, "lines": [1, 2]});
        let body = schema.encode(&event.to_string(), None).map_err(TestCaseError::fail)?;
        let n = assert_payload_survives(&message(Some(frame(&body)), None, Vec::new()))?;
        prop_assert_eq!(n.payload_format.as_str(), if glue { "glue-avro" } else { "confluent-avro" });
        prop_assert_eq!(n.fields.order_id.as_deref(), Some(order_id.as_str()));
        prop_assert_eq!(n.fields.customer_id.as_deref(), customer.as_deref());
        let expected = Utc.timestamp_millis_opt(ms).unwrap().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        prop_assert_eq!(&n.occurred_at, &expected);
        prop_assert!(n.warnings.is_empty(), "{:?}", n.warnings);
        let decoded: Value = serde_json::from_str(n.decoded.as_ref().and_then(|d| d.value.as_deref()).unwrap_or("null"))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&decoded["lines"], &json!([1, 2]));
    }

    #[test]
    fn json_values_are_shown_as_json(text in json_text()) {
        let n = normalize_message(&message(Some(text.clone().into_bytes()), None, Vec::new()));
        prop_assert_eq!(n.payload_format, PayloadFormat::Json);
        match n.view().payload {
            RenderedPayload::Json(raw) => prop_assert_eq!(raw.get(), text.as_str()),
            other => prop_assert!(false, "shown as {:?}", other),
        }
    }

    #[test]
    fn a_top_level_string_order_id_is_kept_exactly(id in string_value(), rest in json_text()) {
        let value = format!("{{\"orderId\":{},\"rest\":{rest}}}", serde_json::to_string(&id).unwrap());
        let n = normalize_message(&message(Some(value.into_bytes()), None, Vec::new()));
        let present = !id.trim().is_empty() && id.trim() != "null";
        if present {
            prop_assert_eq!(n.fields.order_id.as_deref(), Some(id.as_str()));
        } else {
            prop_assert_eq!(n.fields.order_id, None, "a blank or \"null\" id is absent");
        }
    }

    #[test]
    fn an_id_in_any_naming_convention_and_envelope_is_found(
        word in prop_oneof![Just("order"), Just("ORDER"), Just("Order"), Just("oRdEr")],
        suffix in prop_oneof![Just("id"), Just("Id"), Just("ID"), Just("iD")],
        separator in prop_oneof![Just(""), Just("_"), Just("-"), Just("."), Just(" "), Just("__")],
        envelopes in prop::collection::vec(
            proptest::sample::select(&["metadata", "meta", "headers", "data", "payload", "detail", "body", "event", "attributes", "Data", "META"][..]),
            0..=2,
        ),
        id in "[A-Za-z0-9-]{1,20}",
    ) {
        let name = format!("{word}{separator}{suffix}");
        let mut value = Value::Object(Map::from_iter([(name, json!(id))]));
        for envelope in envelopes.iter().rev() {
            value = Value::Object(Map::from_iter([(envelope.to_string(), value)]));
        }
        let text = serde_json::to_string(&value).unwrap();
        let n = normalize_message(&message(Some(text.into_bytes()), None, Vec::new()));
        prop_assert_eq!(n.fields.order_id.as_deref(), Some(id.as_str()));
    }

    #[test]
    fn json_parse_agrees_with_serde_json_on_validity(text in prop_oneof![
        4 => json_ish_text(),
        1 => ".{0,24}",
        1 => (0usize..200, 0usize..200).prop_map(|(open, close)| format!("{}{}", "[".repeat(open), "]".repeat(close))),
    ]) {
        let ours = json::parse(&text);
        match serde_json::from_str::<Value>(&text) {
            Ok(_) => prop_assert!(ours.is_ok(), "rejected what serde_json accepts: {:?}", ours),
            Err(e) => {
                // By design: every number is kept as text (serde_json gives up beyond f64), and any depth is read
                // (serde_json stops at 128 levels).
                let reason = e.to_string();
                let by_design = reason.starts_with("number out of range") || reason.starts_with("recursion limit exceeded");
                if !by_design {
                    prop_assert!(ours.is_err(), "accepted what serde_json rejects ({})", reason);
                }
            }
        }
    }

    #[test]
    fn a_numeric_id_becomes_decimal_text_of_the_same_number(text in number_text()) {
        let value: f64 = text.parse().unwrap();
        match normalize::decimal_text(&text) {
            Some(decimal) => {
                prop_assert!(!decimal.contains(['e', 'E']), "{}", decimal);
                // Plain decimal text: no leading zeros, no trailing zeros after a point.
                let unsigned = decimal.trim_start_matches('-');
                let int_part = unsigned.split('.').next().unwrap_or_default();
                prop_assert!(int_part == "0" || !int_part.starts_with('0'), "{}", decimal);
                prop_assert!(!unsigned.contains('.') || !unsigned.ends_with(['0', '.']), "{}", decimal);
                // The same exact decimal number parses to the same f64.
                let back: f64 = decimal.parse().unwrap();
                prop_assert_eq!(back.to_bits(), value.to_bits(), "{} -> {}", text, decimal);
                if !text.contains(['.', 'e', 'E']) {
                    prop_assert_eq!(&decimal, &text, "integers are kept exactly as written");
                }
            }
            None => prop_assert!(text.contains(['e', 'E']), "only an exponent can make {} too long", text),
        }
    }

    #[test]
    fn decimal_text_never_panics_on_any_text(text in ".{0,16}") {
        let _ = normalize::decimal_text(&text);
        let _ = normalize::parse_time_text(&text);
        let _ = normalize::parse_epoch(&text);
    }

    #[test]
    fn rfc3339_times_with_any_offset_become_the_same_instant_in_utc(
        micros in 0i64..253_402_300_799_999_999,
        offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59),
    ) {
        let instant = Utc.timestamp_micros(micros).unwrap();
        let offset = FixedOffset::east_opt(offset_minutes * 60).unwrap();
        let local = instant.with_timezone(&offset);
        // Skip the few instants whose local time falls outside years 0001-9999.
        prop_assume!(local.format("%Y").to_string().len() == 4);
        let text = local.to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        let parsed = normalize::parse_time_text(&text);
        prop_assert_eq!(parsed, Some(instant), "{}", text);
        prop_assert_eq!(normalize::format_time(instant), instant.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
    }

    #[test]
    fn epoch_seconds_and_milliseconds_as_numbers_or_strings_are_the_same_instant(
        seconds in 0i64..99_999_999_999,
        millis in 0i64..1000,
    ) {
        let from_seconds = Utc.timestamp_opt(seconds, 0).unwrap();
        prop_assert_eq!(normalize::parse_epoch(&seconds.to_string()), Some(from_seconds));
        prop_assert_eq!(normalize::parse_time_text(&seconds.to_string()), Some(from_seconds));
        // Milliseconds are read as such from 1973-03-03 on (below that the number reads as seconds).
        let ms = seconds * 1000 + millis;
        prop_assume!(ms >= 100_000_000_000);
        let from_millis = Utc.timestamp_millis_opt(ms).unwrap();
        prop_assert_eq!(normalize::parse_epoch(&ms.to_string()), Some(from_millis));
        prop_assert_eq!(normalize::parse_time_text(&ms.to_string()), Some(from_millis));
        let value = format!("{{\"orderId\":\"o\",\"occurredAt\":{ms}}}");
        let n = normalize_message(&message(Some(value.into_bytes()), None, Vec::new()));
        prop_assert_eq!(n.occurred_at, normalize::format_time(from_millis));
    }

    #[test]
    fn canonical_names_ignore_case_and_separators(
        words in prop::collection::vec("[a-zA-Z0-9]{1,6}", 1..4),
        separators in prop::collection::vec(prop_oneof![Just(""), Just("_"), Just("-"), Just("."), Just(" "), Just("$")], 3),
    ) {
        let joined: String = words
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{}{w}", if i == 0 { "" } else { separators[i % separators.len()] }))
            .collect();
        prop_assert_eq!(normalize::canonical(&joined), words.concat().to_lowercase());
    }

    #[test]
    fn matching_a_canonical_name_agrees_with_building_it(name in "\\PC{0,12}", canon in "[a-z0-9\u{130}\u{307}]{0,8}") {
        let built = normalize::canonical(&name);
        prop_assert!(normalize::is_canonical(&name, &built));
        prop_assert_eq!(normalize::is_canonical(&name, &canon), built == canon);
    }
}

/// A Debezium-shaped value: any operation code (or none), a `source` of arbitrary members, arbitrary `before`
/// and `after` (objects, JSON text, anything), sometimes inside Kafka Connect's JsonConverter wrapper.
fn change_event() -> impl Strategy<Value = Value> {
    let op = prop_oneof![
        Just(json!("c")),
        Just(json!("u")),
        Just(json!("d")),
        Just(json!("r")),
        Just(json!("t")),
        Just(json!("m")),
        any_value()
    ];
    let source = (
        field(any_value()),
        field(any_value()),
        field(any_value()),
        field(any_value()),
    )
        .prop_map(|(table, db, connector, ts_ms)| {
            let mut source = Map::new();
            for (name, value) in [("table", table), ("db", db), ("connector", connector), ("ts_ms", ts_ms)] {
                if let Some(value) = value {
                    source.insert(name.into(), value);
                }
            }
            Value::Object(source)
        });
    let row = || prop_oneof![any_value(), any_value().prop_map(|v| Value::String(v.to_string()))];
    (op, source, field(row()), field(row()), any::<bool>()).prop_map(|(op, source, before, after, wrapped)| {
        let mut event = Map::new();
        event.insert("op".into(), op);
        event.insert("source".into(), source);
        if let Some(before) = before {
            event.insert("before".into(), before);
        }
        if let Some(after) = after {
            event.insert("after".into(), after);
        }
        let event = Value::Object(event);
        if wrapped {
            json!({"schema": {"type": "struct"}, "payload": event})
        } else {
            event
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn change_events_never_panic_keep_their_payload_and_store_their_change(value in change_event()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let n = assert_payload_survives(&message(Some(bytes), None, Vec::new()))?;
        let layout = Layout { bucket: Some("payloads".into()), ..Layout::default() };
        let prepared = placement::prepare(&n, &layout, 1_900_000_000).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let stored = codec::record_from_item(&prepared.item.to_item()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(stored.change.map(|c| c.op), n.change.as_ref().map(|c| c.op.clone()));
        if let Some(change) = &n.change {
            prop_assert!(["c", "u", "d", "r", "t", "m"].contains(&change.op.as_str()));
            prop_assert!(n.fields.event_type.is_some(), "a change event always has an event type");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The byte-wise comparison of ASCII names agrees with building the canonical form, for any name and any
    /// canonical name: ASCII, non-ASCII, separators, digits and case mixed.
    #[test]
    fn is_canonical_agrees_with_the_canonical_form(
        name in "[a-zA-Z0-9_ .-]{0,12}|[a-zA-Z_İéÉß0-9-]{0,8}",
        other in "[a-z0-9]{0,12}|[a-zéß]{0,6}",
    ) {
        use shared::normalize::vocabulary::{canonical, is_canonical};
        let canon = canonical(&name);
        prop_assert!(is_canonical(&name, &canon), "{name:?} vs its own form {canon:?}");
        prop_assert_eq!(is_canonical(&name, &other), canon == other, "{:?} vs {:?}", name, other);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Times written digit by digit are what chrono's pattern writes, from year 0 to 9999, to the microsecond;
    /// leap seconds and years beyond take chrono's way.
    #[test]
    fn stored_times_are_written_as_chrono_writes_them(
        seconds in -62_167_219_200i64..=253_402_300_799,
        nanos in prop_oneof![0u32..1_000_000_000, 1_000_000_000u32..2_000_000_000],
    ) {
        let Some(time) = DateTime::<Utc>::from_timestamp(seconds, nanos) else {
            return Ok(());
        };
        prop_assert_eq!(
            shared::normalize::time::format_time(time),
            time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
        );
    }
}
