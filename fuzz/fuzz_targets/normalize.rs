//! Feeds arbitrary bytes through the pure core: as a whole Lambda trigger event (decode, then every record), and
//! as one record's value, key and headers (normalize, item layout, rendering). Any panic is a bug (
//! nothing may panic, whatever the bytes), and so is a payload that does not come back byte for byte.

#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use shared::decode;
use shared::dynamo::codec::{self, StoredPayload};
use shared::dynamo::placement::{self, Layout};
use shared::model::{render_payload, KafkaMessage};
use shared::normalize::{self, Context, Schemas, TopicServiceMap};
use std::sync::OnceLock;

fn check(message: &KafkaMessage) {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(shared::schema::sample_schemas);
    let topic_services = TopicServiceMap::parse("orders=order-service,pay*=payment-service").unwrap_or_default();
    let received_at = Utc.timestamp_opt(1_900_000_000, 0).single().unwrap_or_default();
    let n = normalize::normalize(
        message,
        &Context {
            received_at,
            topic_services: &topic_services,
            schemas,
        },
    );
    assert_eq!(n.payload, message.value, "the record changed the payload");

    let layout = Layout {
        bucket: Some("payloads".into()),
        ..Layout::default()
    };
    let prepared = placement::prepare(&n, &layout, 1_900_000_000).expect("with a bucket every record can be laid out");
    let stored = codec::record_from_item(&prepared.item).expect("a prepared item reads back");
    let back = match stored.payload {
        StoredPayload::None => None,
        StoredPayload::Inline(bytes) => Some(bytes),
        StoredPayload::Zstd(bytes) => Some(codec::decompress(&bytes, 64 << 20).expect("zstd decompresses")),
        StoredPayload::S3(pointer) => prepared
            .blobs
            .iter()
            .find(|blob| blob.key == pointer.key)
            .map(|blob| blob.bytes.clone()),
    };
    assert_eq!(back, message.value, "the stored item changed the payload");

    let _ = render_payload(n.payload.as_deref(), n.payload_format);
    serde_json::to_vec(&n.view()).expect("a record always serializes");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = decode::decode_event_bytes(data) {
        for message in &event.records {
            check(message);
        }
    }

    // The same bytes as one record: the whole value, and split into a key and header values.
    let (key, rest) = data.split_at(data.len().min(data.first().map_or(0, |b| usize::from(*b % 16))));
    let message = KafkaMessage {
        topic: "orders".into(),
        partition: 0,
        offset: Some(1),
        timestamp: Some(1_709_287_200_000),
        timestamp_type: Some("CREATE_TIME".into()),
        key: Some(key.to_vec()),
        value: Some(data.to_vec()),
        headers: vec![
            ("correlation_id".into(), rest.to_vec()),
            ("ce_time".into(), rest.to_vec()),
            ("ce_id".into(), key.to_vec()),
        ],
        warnings: Vec::new(),
        fingerprint: String::new(),
    };
    check(&message);

    // The same bytes as the body of each registry framing the sample schemas know (Avro, Protobuf, JSON
    // Schema; Glue plain and zlib), as value and as key.
    let mut framed = vec![
        shared::schema::confluent_frame(1, data),
        shared::schema::confluent_frame(2, data),
        shared::schema::confluent_frame(3, data),
        shared::schema::glue_frame([0; 16], data, false),
        shared::schema::glue_frame([1; 16], data, false),
    ];
    if data.len() < 4096 {
        framed.push(shared::schema::glue_frame([0; 16], data, true));
    }
    for value in framed {
        let message = KafkaMessage {
            key: Some(value.clone()),
            value: Some(value),
            ..message.clone()
        };
        check(&message);
    }
});
