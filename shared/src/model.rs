//! The domain model: one Kafka record as it arrives ([`KafkaMessage`]) and as it is stored ([`Notification`]).

use std::borrow::Cow;

use base64::Engine as _;
use serde::{Deserialize, Serialize, Serializer};

/// Bytes that are shown as text when they are valid UTF-8 and as base64 otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Data {
    Text(String),
    Bytes { base64: String },
}

impl Data {
    /// Text when the bytes are valid UTF-8, bytes otherwise.
    pub fn from_bytes(bytes: Vec<u8>) -> Data {
        match String::from_utf8(bytes) {
            Ok(text) => Data::Text(text),
            Err(err) => Data::Bytes {
                base64: base64::engine::general_purpose::STANDARD.encode(err.as_bytes()),
            },
        }
    }

    /// The raw bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Data::Text(text) => text.as_bytes().to_vec(),
            Data::Bytes { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .unwrap_or_default(),
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Data::Text(text) => Some(text),
            Data::Bytes { .. } => None,
        }
    }
}

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Data::Text(text) => serializer.serialize_str(text),
            Data::Bytes { base64 } => {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("base64", base64)?;
                map.end()
            }
        }
    }
}

/// One Kafka header. Names are text (the trigger delivers them as JSON object keys); values are kept
/// as text where valid UTF-8 and as bytes otherwise. Repeated names are separate headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Header {
    pub name: String,
    pub value: Data,
}

/// The longest extracted field (an id, an event type, a source) stored whole, in bytes. A longer one is stored as
/// its first bytes, its full length and its SHA-256 (DynamoDB allows 2,048 bytes in an index key and 400 KB in an
/// item), and normalization warns about it.
pub const MAX_FIELD_BYTES: usize = 1024;
/// The most warnings kept for one record; the last one kept says how many more there were.
pub const MAX_WARNINGS: usize = 32;
/// The longest name (of a header or a JSON member) a warning repeats, in bytes; longer names are cut.
pub const MAX_NAME_IN_WARNING: usize = 64;

/// A name (a JSON path) as a warning shows it: cut to [`MAX_NAME_IN_WARNING`] bytes at a character boundary,
/// with its length when cut.
pub fn cut_name(name: &str) -> String {
    if name.len() <= MAX_NAME_IN_WARNING {
        return name.to_owned();
    }
    let mut end = MAX_NAME_IN_WARNING;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &name[..end], name.len())
}

/// A name (a header's) as a warning shows it: quoted, and cut as [`cut_name`] cuts it.
pub fn quoted_name(name: &str) -> String {
    if name.len() <= MAX_NAME_IN_WARNING {
        return format!("{name:?}");
    }
    let mut end = MAX_NAME_IN_WARNING;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &name[..end], name.len())
}

/// What decoding or normalization noticed about a record: a stable code for programs and alerts, and a message
/// for people (stored with the record as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub code: WarningCode,
    pub message: String,
}

impl Warning {
    pub fn new(code: WarningCode, message: impl Into<String>) -> Self {
        Warning {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The kinds of warning, each with a stable code (see [`WarningCode::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WarningCode {
    /// A key, value or header was not valid base64; kept as the text that came.
    InvalidBase64,
    /// A record's key or value was JSON of another kind than base64 text; kept as its JSON.
    NotBase64Text,
    /// A record's partition, offset or timestamp was not an integer.
    NotAnInteger,
    /// A record had no partition, offset, timestamp or topic.
    MissingField,
    /// A trigger record was not a JSON object; kept as its JSON.
    RecordNotAnObject,
    /// A record's partition differs from the one of its topic-partition group.
    PartitionMismatch,
    /// A header value was not an array of bytes, a header entry not an object, or the headers not an array.
    MalformedHeader,
    /// A header that would name a field was not UTF-8.
    HeaderNotUtf8,
    /// The value was a JSON object encoded inside a JSON string, and was read through.
    DoubleEncodedJson,
    /// An id was a number too large to write out; kept as written.
    IdTooLarge,
    /// An id was an object, array or boolean; ignored.
    IdNotScalar,
    /// A time was text this service does not read, an implausible epoch, or not a time at all.
    UnreadableTime,
    /// No event time and no Kafka timestamp: `occurred_at` is the receive time.
    NoEventTime,
    /// An extracted field was longer than [`MAX_FIELD_BYTES`]; it is stored cut, with its length and SHA-256.
    FieldTooLong,
    /// More warnings than [`MAX_WARNINGS`]; the rest are counted, not kept.
    MoreWarnings,
    /// A framed value or key whose schema no source knows, or does not compile; stored undecoded.
    SchemaUnknown,
    /// A framed value or key that does not decode with its schema; stored undecoded.
    Undecodable,
    /// Read back from the store, which keeps the message only.
    Stored,
}

impl WarningCode {
    /// The stable code, for logs, metrics and programs.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningCode::InvalidBase64 => "invalid-base64",
            WarningCode::NotBase64Text => "not-base64-text",
            WarningCode::NotAnInteger => "not-an-integer",
            WarningCode::MissingField => "missing-field",
            WarningCode::RecordNotAnObject => "record-not-an-object",
            WarningCode::PartitionMismatch => "partition-mismatch",
            WarningCode::MalformedHeader => "malformed-header",
            WarningCode::HeaderNotUtf8 => "header-not-utf8",
            WarningCode::DoubleEncodedJson => "double-encoded-json",
            WarningCode::IdTooLarge => "id-too-large",
            WarningCode::IdNotScalar => "id-not-scalar",
            WarningCode::UnreadableTime => "unreadable-time",
            WarningCode::NoEventTime => "no-event-time",
            WarningCode::FieldTooLong => "field-too-long",
            WarningCode::MoreWarnings => "more-warnings",
            WarningCode::SchemaUnknown => "schema-unknown",
            WarningCode::Undecodable => "undecodable",
            WarningCode::Stored => "stored",
        }
    }
}

/// A record's timestamp type as held: Kafka's two names are not copied for every record of a batch.
pub fn timestamp_type(text: &str) -> Cow<'static, str> {
    match text {
        "CREATE_TIME" => Cow::Borrowed("CREATE_TIME"),
        "LOG_APPEND_TIME" => Cow::Borrowed("LOG_APPEND_TIME"),
        other => Cow::Owned(other.to_owned()),
    }
}

/// One Kafka record as delivered by the trigger, decoded from its JSON and base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaMessage {
    pub topic: std::sync::Arc<str>,
    pub partition: i64,
    /// `None` when the trigger sent no usable offset; the record is still kept (see [`KafkaMessage::id`]).
    pub offset: Option<i64>,
    /// Milliseconds since the epoch, as delivered.
    pub timestamp: Option<i64>,
    /// `CREATE_TIME` or `LOG_APPEND_TIME` (not a copy per record: see [`timestamp_type`]), or what was sent.
    pub timestamp_type: Option<Cow<'static, str>>,
    pub key: Option<Vec<u8>>,
    /// `None` is a tombstone (null value).
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// What decoding noticed (invalid base64, a header that was not a byte array, ...).
    pub warnings: Vec<Warning>,
    /// A digest of the record as delivered, used for identity when the offset is unusable.
    pub fingerprint: String,
}

impl KafkaMessage {
    /// The stable identity of the record: `{topic}:{partition}:{offset}`. When the trigger sent no usable
    /// offset, a digest of the delivered record stands in for it, so redelivery still maps to one item.
    pub fn id(&self) -> String {
        // Written piece by piece: made for every record, more than once, and `format!` costs several times this.
        let mut id = String::with_capacity(self.topic.len() + 42 + self.fingerprint.len());
        id.push_str(&self.topic);
        id.push(':');
        push_decimal(&mut id, self.partition);
        id.push(':');
        match self.offset {
            Some(offset) => push_decimal(&mut id, offset),
            None => {
                id.push('x');
                id.push_str(&self.fingerprint);
            }
        }
        id
    }
}

/// Appends `n` in decimal, as `Display` writes it.
pub fn push_decimal(out: &mut String, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push('-');
    }
    for &digit in &digits[at..] {
        out.push(char::from(digit));
    }
}

/// How the record value was framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PayloadFormat {
    /// A JSON document.
    Json,
    /// Valid UTF-8 that is not JSON.
    Text,
    /// Anything else (Avro, Protobuf, compressed data, ...).
    Binary,
    /// A null value.
    Tombstone,
    /// Confluent schema-registry framing around a JSON document.
    ConfluentJson,
    /// Confluent schema-registry framing around a body that could not be decoded (with a warning saying why).
    ConfluentBinary,
    /// Confluent framing around Avro, decoded with its schema.
    ConfluentAvro,
    /// Confluent framing around Protobuf, decoded with its schema.
    ConfluentProtobuf,
    /// AWS Glue Schema Registry framing around Avro, decoded with its schema.
    GlueAvro,
    /// AWS Glue Schema Registry framing around Protobuf, decoded with its schema.
    GlueProtobuf,
    /// AWS Glue Schema Registry framing around a JSON document.
    GlueJson,
    /// AWS Glue Schema Registry framing around a body that could not be decoded (with a warning saying why).
    GlueBinary,
}

impl PayloadFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::Json => "json",
            PayloadFormat::Text => "text",
            PayloadFormat::Binary => "binary",
            PayloadFormat::Tombstone => "tombstone",
            PayloadFormat::ConfluentJson => "confluent-json",
            PayloadFormat::ConfluentBinary => "confluent-binary",
            PayloadFormat::ConfluentAvro => "confluent-avro",
            PayloadFormat::ConfluentProtobuf => "confluent-protobuf",
            PayloadFormat::GlueAvro => "glue-avro",
            PayloadFormat::GlueProtobuf => "glue-protobuf",
            PayloadFormat::GlueJson => "glue-json",
            PayloadFormat::GlueBinary => "glue-binary",
        }
    }

    pub fn parse(text: &str) -> Option<PayloadFormat> {
        [
            PayloadFormat::Json,
            PayloadFormat::Text,
            PayloadFormat::Binary,
            PayloadFormat::Tombstone,
            PayloadFormat::ConfluentJson,
            PayloadFormat::ConfluentBinary,
            PayloadFormat::ConfluentAvro,
            PayloadFormat::ConfluentProtobuf,
            PayloadFormat::GlueAvro,
            PayloadFormat::GlueProtobuf,
            PayloadFormat::GlueJson,
            PayloadFormat::GlueBinary,
        ]
        .into_iter()
        .find(|format| format.as_str() == text)
    }
}

/// The fields extracted from a message by normalization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Extracted {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

impl Extracted {
    /// Each field with its name, in the record's order.
    pub fn named(&self) -> [(&'static str, Option<&str>); 6] {
        [
            ("event_type", self.event_type.as_deref()),
            ("correlation_id", self.correlation_id.as_deref()),
            ("order_id", self.order_id.as_deref()),
            ("customer_id", self.customer_id.as_deref()),
            ("source_service", self.source_service.as_deref()),
            ("event_id", self.event_id.as_deref()),
        ]
    }
}

/// The stored record: one per Kafka record (README, "The record").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub source_topic: String,
    pub partition: i64,
    pub offset: Option<i64>,
    pub kafka_timestamp: Option<i64>,
    pub timestamp_type: Option<String>,
    pub key: Option<Data>,
    pub headers: Vec<Header>,
    pub fields: Extracted,
    /// RFC 3339, UTC, microseconds: fixed width, so it sorts as text.
    pub occurred_at: String,
    pub received_at: String,
    /// The record value, byte for byte; `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
    pub payload_format: PayloadFormat,
    /// The schema-registry id, when the value carried Confluent framing.
    pub schema_id: Option<u32>,
    /// What a change event (Debezium) says about the change, when the value is one.
    pub change: Option<Change>,
    /// A registry-framed value or key: its schema, and what it decoded to.
    pub decoded: Option<Decoded>,
    pub warnings: Vec<Warning>,
}

/// Which schema framed a value or key (item only, not in the indexes' summaries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchemaInfo {
    /// `confluent` or `glue`.
    pub registry: String,
    /// The Confluent schema id in decimal, or the Glue schema version UUID.
    pub id: String,
    /// `avro`, `protobuf` or `json`, when the schema was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The Glue schema name, or the decoded record's or message's full name, or the JSON Schema's title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A registry-framed value or key decoded with its schema: the JSON text of each part that decoded, and the
/// schema of each part that was framed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decoded {
    pub value: Option<String>,
    pub value_schema: Option<SchemaInfo>,
    pub key: Option<String>,
    pub key_schema: Option<SchemaInfo>,
}

/// The stored form of [`Decoded`], read back ([`StoredDecodedRef`] writes it).
#[derive(Deserialize)]
struct StoredDecoded {
    #[serde(default)]
    value: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    value_schema: Option<SchemaInfo>,
    #[serde(default)]
    key: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    key_schema: Option<SchemaInfo>,
}

/// [`StoredDecoded`] as written, borrowing the record's text.
#[derive(Serialize)]
struct StoredDecodedRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a serde_json::value::RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_schema: Option<&'a SchemaInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a serde_json::value::RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_schema: Option<&'a SchemaInfo>,
}

impl Decoded {
    /// As one JSON document, the way the store keeps it.
    pub fn to_json(&self) -> String {
        // Borrowed, not copied: the text is checked to be JSON where it lies, and written as it is.
        fn raw(text: &Option<String>) -> Option<&serde_json::value::RawValue> {
            text.as_deref().and_then(|t| serde_json::from_str(t).ok())
        }
        let stored = StoredDecodedRef {
            value: raw(&self.value),
            value_schema: self.value_schema.as_ref(),
            key: raw(&self.key),
            key_schema: self.key_schema.as_ref(),
        };
        serde_json::to_string(&stored).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Read back from [`Decoded::to_json`].
    pub fn from_json(text: &str) -> Result<Decoded, String> {
        let stored: StoredDecoded = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(Decoded {
            value: stored.value.map(|v| v.get().to_owned()),
            value_schema: stored.value_schema,
            key: stored.key.map(|v| v.get().to_owned()),
            key_schema: stored.key_schema,
        })
    }
}

/// What a change-data-capture event (Debezium's envelope) says about the change, beside the row it carries.
/// Kept on the record itself, not in the indexes' summaries: list answers show it through `event_type`
/// (`orders.create`), `GET /notifications/{id}` in full.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// Debezium's operation: `c` create, `u` update, `d` delete, `r` read (a snapshot), `t` truncate, `m` message.
    pub op: String,
    /// The source table as the connector names it: `database.schema.table`, with the parts it gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// When the database made the change (`source.ts_ms`), RFC 3339 in UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<String>,
    /// The connector: `postgresql`, `mysql`, `mongodb`...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
}

impl Notification {
    /// The payload size in bytes (0 for a tombstone).
    pub fn payload_size(&self) -> usize {
        self.payload.as_ref().map_or(0, Vec::len)
    }

    /// The record as people see it: the stored fields, with the payload rendered by [`render_payload`].
    pub fn view(&self) -> NotificationView {
        NotificationView {
            summary: self.summary(),
            headers: self.headers.clone(),
            payload: render_payload(self.payload.as_deref(), self.payload_format),
            payload_sha256: self.payload.as_deref().map(sha256_hex),
            change: self.change.clone(),
            decoded: DecodedView::of(self.decoded.clone(), self.payload.as_deref(), self.payload_format),
        }
    }

    /// Like [`Notification::view`], moving the payload instead of copying it.
    pub fn into_view(self) -> NotificationView {
        let summary = self.summary();
        NotificationView {
            payload: render_payload(self.payload.as_deref(), self.payload_format),
            payload_sha256: self.payload.as_deref().map(sha256_hex),
            summary,
            headers: self.headers,
            decoded: DecodedView::of(self.decoded, self.payload.as_deref(), self.payload_format),
            change: self.change,
        }
    }

    /// The summary: every field but the payload and headers (what the indexes project).
    pub fn summary(&self) -> Summary {
        Summary {
            id: self.id.clone(),
            source_topic: self.source_topic.clone(),
            partition: self.partition,
            offset: self.offset,
            kafka_timestamp: self.kafka_timestamp,
            timestamp_type: self.timestamp_type.clone(),
            key: self.key.clone(),
            fields: self.fields.clone(),
            occurred_at: self.occurred_at.clone(),
            received_at: self.received_at.clone(),
            payload_format: self.payload_format,
            payload_size: self.payload_size() as u64,
            schema_id: self.schema_id,
            warnings: self.warnings.iter().map(|w| w.message.clone()).collect(),
        }
    }
}

/// A record without its payload and headers: what list answers carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    pub id: String,
    pub source_topic: String,
    pub partition: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Data>,
    #[serde(flatten)]
    pub fields: Extracted,
    pub occurred_at: String,
    pub received_at: String,
    pub payload_format: PayloadFormat,
    pub payload_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_id: Option<u32>,
    pub warnings: Vec<String>,
}

impl Summary {
    /// The whole record, from its summary and what only the item holds (as a store reads it back).
    pub fn into_notification(
        self,
        headers: Vec<Header>,
        payload: Option<Vec<u8>>,
        change: Option<Change>,
        decoded: Option<Decoded>,
    ) -> Notification {
        Notification {
            id: self.id,
            source_topic: self.source_topic,
            partition: self.partition,
            offset: self.offset,
            kafka_timestamp: self.kafka_timestamp,
            timestamp_type: self.timestamp_type,
            key: self.key,
            headers,
            fields: self.fields,
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            payload,
            payload_format: self.payload_format,
            schema_id: self.schema_id,
            change,
            decoded,
            warnings: self
                .warnings
                .into_iter()
                .map(|message| Warning::new(WarningCode::Stored, message))
                .collect(),
        }
    }
}

/// The SHA-256 of some bytes, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A whole record for display: summary fields, headers and the rendered payload.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationView {
    #[serde(flatten)]
    pub summary: Summary,
    pub headers: Vec<Header>,
    #[serde(flatten)]
    pub payload: RenderedPayload,
    /// The SHA-256 of the payload's exact bytes (hex); absent for a tombstone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_sha256: Option<String>,
    /// What a change event says about the change (Debezium), when the value is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    #[serde(flatten)]
    pub decoded: DecodedView,
}

/// A registry-framed record's decoding as answers show it: `decoded` (the value's JSON) and `schema`, and for a
/// framed key `decoded_key` and `key_schema`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DecodedView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded: Option<Box<serde_json::value::RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded_key: Option<Box<serde_json::value::RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_schema: Option<SchemaInfo>,
}

impl DecodedView {
    /// The view of a record's decoding; a JSON body (which the store keeps once, as the payload) is read back
    /// from behind the payload's framing.
    fn of(decoded: Option<Decoded>, payload: Option<&[u8]>, format: PayloadFormat) -> DecodedView {
        let Some(mut decoded) = decoded else {
            return DecodedView::default();
        };
        if decoded.value.is_none() && matches!(format, PayloadFormat::ConfluentJson | PayloadFormat::GlueJson) {
            decoded.value = payload
                .and_then(crate::schema::unframe)
                .and_then(Result::ok)
                .and_then(|framed| {
                    let text = std::str::from_utf8(&framed.body).ok()?;
                    Some(text.trim_start_matches('\u{feff}').trim().to_owned())
                });
        }
        let raw = |text: Option<String>| text.and_then(|t| serde_json::value::RawValue::from_string(t).ok());
        DecodedView {
            decoded: raw(decoded.value),
            schema: decoded.value_schema,
            decoded_key: raw(decoded.key),
            key_schema: decoded.key_schema,
        }
    }
}

/// A payload as shown in JSON answers, with `payload_encoding` saying how to read `payload`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "payload_encoding", content = "payload", rename_all = "lowercase")]
pub enum RenderedPayload {
    /// The JSON document itself, byte for byte (numbers keep their exact text).
    Json(Box<serde_json::value::RawValue>),
    /// Text that is not JSON.
    Text(String),
    /// Bytes that are not UTF-8.
    Base64(String),
    /// A tombstone: there is no payload.
    None(()),
    /// Too large to carry in the answer: a URL that answers the exact bytes (a short-lived presigned S3 URL,
    /// or the API's own `/notifications/{id}/payload`).
    Url(String),
}

/// Renders a payload for people: JSON payloads (also behind Confluent framing) as JSON, other UTF-8 as text,
/// registry-framed bodies and anything else as base64. JSON is shown exactly as written, at any depth: serde_json checks a raw value
/// without recursing and without a depth limit, and writes it out verbatim.
pub fn render_payload(payload: Option<&[u8]>, format: PayloadFormat) -> RenderedPayload {
    let Some(bytes) = payload else {
        return RenderedPayload::None(());
    };
    if matches!(format, PayloadFormat::Json | PayloadFormat::ConfluentJson) {
        let body = match format {
            PayloadFormat::ConfluentJson => bytes.get(5..).unwrap_or_default(),
            _ => bytes,
        };
        if let Ok(text) = std::str::from_utf8(body) {
            let text = text.trim_start_matches('\u{feff}').trim();
            if let Ok(raw) = serde_json::value::RawValue::from_string(text.to_owned()) {
                return RenderedPayload::Json(raw);
            }
        }
    }
    // Registry framing is binary, whatever its body: shown as base64 (the decoded JSON is beside it).
    let framed = !matches!(
        format,
        PayloadFormat::Json | PayloadFormat::Text | PayloadFormat::Binary | PayloadFormat::Tombstone
    );
    match std::str::from_utf8(bytes) {
        Ok(text) if !framed => RenderedPayload::Text(text.to_owned()),
        _ => RenderedPayload::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_parts_are_stored_as_one_document_and_read_back() {
        let schema = |id: &str| SchemaInfo {
            registry: "confluent".into(),
            id: id.into(),
            kind: Some("avro".into()),
            name: Some("com.shop.Order \"v2\"".into()),
        };
        let decoded = Decoded {
            value: Some(r#"{"orderId":"o-1","n":[1,2.5,null]}"#.into()),
            value_schema: Some(schema("7")),
            key: Some(r#""k-1""#.into()),
            key_schema: Some(schema("8")),
        };
        let text = decoded.to_json();
        assert_eq!(
            text,
            concat!(
                r#"{"value":{"orderId":"o-1","n":[1,2.5,null]},"#,
                r#""value_schema":{"registry":"confluent","id":"7","kind":"avro","name":"com.shop.Order \"v2\""},"#,
                r#""key":"k-1","#,
                r#""key_schema":{"registry":"confluent","id":"8","kind":"avro","name":"com.shop.Order \"v2\""}}"#
            )
        );
        assert_eq!(Decoded::from_json(&text).unwrap(), decoded);
        // A part that is not JSON is left out rather than corrupting the document; nothing at all is `{}`.
        let broken = Decoded {
            value: Some("{not json".into()),
            ..Decoded::default()
        };
        assert_eq!(broken.to_json(), "{}");
        assert_eq!(Decoded::from_json("{}").unwrap(), Decoded::default());
        assert!(Decoded::from_json("{\"value\": ").is_err());
    }

    #[test]
    fn decimals_are_written_as_display_writes_them() {
        let mut edges = vec![0, 1, -1, 9, 10, -10, 99, 100, i64::MAX, i64::MIN, i64::MIN + 1];
        edges.extend((0..63).map(|bit| 1i64 << bit));
        edges.extend((0..63).map(|bit| -(1i64 << bit) - 1));
        for n in edges {
            let mut out = String::from("x");
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
    }

    #[test]
    fn a_record_id_is_topic_partition_and_offset_or_the_fingerprint() {
        let mut message = KafkaMessage {
            topic: "orders.v1".into(),
            partition: 12,
            offset: Some(9_007_199_254_740_993),
            timestamp: None,
            timestamp_type: None,
            key: None,
            value: None,
            headers: Vec::new(),
            warnings: Vec::new(),
            fingerprint: "abc123".into(),
        };
        assert_eq!(message.id(), "orders.v1:12:9007199254740993");
        message.offset = None;
        message.partition = -1;
        assert_eq!(message.id(), "orders.v1:-1:xabc123");
    }

    #[test]
    fn json_ten_thousand_levels_deep_is_shown_as_json_byte_for_byte() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        let RenderedPayload::Json(raw) = render_payload(Some(deep.as_bytes()), PayloadFormat::Json) else {
            panic!("deep JSON is not shown as JSON")
        };
        assert_eq!(raw.get(), deep);
        let shown = serde_json::to_string(&RenderedPayload::Json(raw)).unwrap();
        assert!(shown.contains(&deep));
    }

    #[test]
    fn confluent_json_is_shown_without_its_framing_and_binary_as_base64() {
        let framed = [&[0, 0, 0, 0, 7][..], b"{\"n\": 1e400}"].concat();
        let RenderedPayload::Json(raw) = render_payload(Some(&framed), PayloadFormat::ConfluentJson) else {
            panic!("framed JSON is not shown as JSON")
        };
        assert_eq!(raw.get(), "{\"n\": 1e400}");
        let RenderedPayload::Base64(text) = render_payload(Some(&[0xff, 0x00]), PayloadFormat::Binary) else {
            panic!("bytes are not shown as base64")
        };
        assert_eq!(text, "/wA=");
    }
}
