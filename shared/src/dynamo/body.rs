//! The BatchWriteItem request body, written straight from the items, pure.
//!
//! The SDK's own serializer walked each item (a `HashMap` with a `String` per name) through its generic JSON
//! writer: with freeing the items, 25,000 instructions per record on `make bench`'s batch (callgrind), more
//! than decoding the record. This writes the same document
//! (DynamoDB's JSON protocol: `{"RequestItems":{table:[{"PutRequest":{"Item":{name:{"S":..}}}}]},..}`) into
//! one buffer sized up front; [`super::sdk::DynamoTable`] hands it to the SDK in place of the SDK's, so signing,
//! sending, errors and the response are still the SDK's. A unit test checks it against the SDK's serializer,
//! value kind by value kind.

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;

use super::codec::PutItem;

/// The BatchWriteItem body that puts `items` into `table`, asking for the consumed capacity (`TOTAL`).
pub fn batch_write_body(table: &str, items: &[PutItem]) -> Vec<u8> {
    let estimate: usize = items.iter().map(item_estimate).sum::<usize>() + table.len() + 80;
    let mut out = Vec::with_capacity(estimate);
    out.extend_from_slice(b"{\"RequestItems\":{");
    string(&mut out, table);
    out.extend_from_slice(b":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"PutRequest\":{\"Item\":");
        map(&mut out, item.iter());
        out.extend_from_slice(b"}}");
    }
    out.extend_from_slice(b"]},\"ReturnConsumedCapacity\":\"TOTAL\"}");
    out
}

/// About how many bytes `item` takes as JSON: enough that the buffer rarely grows.
fn item_estimate(item: &PutItem) -> usize {
    40 + item
        .iter()
        .map(|(name, value)| name.len() + 12 + value_estimate(value))
        .sum::<usize>()
}

fn value_estimate(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len() + text.len() / 16 + 8,
        AttributeValue::N(number) => number.len() + 8,
        AttributeValue::B(blob) => blob.as_ref().len().div_ceil(3) * 4 + 8,
        AttributeValue::L(values) => 8 + values.iter().map(|v| value_estimate(v) + 1).sum::<usize>(),
        AttributeValue::M(entries) => {
            8 + entries
                .iter()
                .map(|(k, v)| k.len() + 4 + value_estimate(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(texts) => 8 + texts.iter().map(|t| t.len() + 3).sum::<usize>(),
        AttributeValue::Ns(numbers) => 8 + numbers.iter().map(|n| n.len() + 3).sum::<usize>(),
        AttributeValue::Bs(blobs) => {
            8 + blobs
                .iter()
                .map(|b| b.as_ref().len().div_ceil(3) * 4 + 3)
                .sum::<usize>()
        }
        _ => 16,
    }
}

fn map<'n, 'v>(out: &mut Vec<u8>, entries: impl Iterator<Item = (&'n str, &'v AttributeValue)>) {
    out.push(b'{');
    for (i, (name, value)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, name);
        out.push(b':');
        attribute(out, value);
    }
    out.push(b'}');
}

/// One attribute value, as DynamoDB's JSON protocol writes it: `{"S":"text"}`, `{"N":"12"}`, `{"B":"base64"}`...
fn attribute(out: &mut Vec<u8>, value: &AttributeValue) {
    match value {
        AttributeValue::S(text) => {
            out.extend_from_slice(b"{\"S\":");
            string(out, text);
        }
        AttributeValue::N(number) => {
            out.extend_from_slice(b"{\"N\":");
            string(out, number);
        }
        AttributeValue::B(blob) => {
            out.extend_from_slice(b"{\"B\":");
            base64(out, blob.as_ref());
        }
        AttributeValue::Bool(flag) => {
            out.extend_from_slice(if *flag { b"{\"BOOL\":true" } else { b"{\"BOOL\":false" });
        }
        AttributeValue::Null(flag) => {
            out.extend_from_slice(if *flag { b"{\"NULL\":true" } else { b"{\"NULL\":false" });
        }
        AttributeValue::L(values) => {
            out.extend_from_slice(b"{\"L\":");
            list(out, values, attribute);
        }
        AttributeValue::M(entries) => {
            out.extend_from_slice(b"{\"M\":");
            map(out, entries.iter().map(|(name, value)| (name.as_str(), value)));
        }
        AttributeValue::Ss(texts) => {
            out.extend_from_slice(b"{\"SS\":");
            list(out, texts, |out, text| string(out, text));
        }
        AttributeValue::Ns(numbers) => {
            out.extend_from_slice(b"{\"NS\":");
            list(out, numbers, |out, number| string(out, number));
        }
        AttributeValue::Bs(blobs) => {
            out.extend_from_slice(b"{\"BS\":");
            list(out, blobs, |out, blob| base64(out, blob.as_ref()));
        }
        // A kind this SDK version does not know cannot come from our own items; it is written as the SDK writes
        // an unset value, an empty object, which DynamoDB refuses (the item then fails, reported, not lost).
        _ => out.push(b'{'),
    }
    out.push(b'}');
}

fn list<T>(out: &mut Vec<u8>, values: &[T], write: impl Fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, value);
    }
    out.push(b']');
}

fn base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    match base64::engine::general_purpose::STANDARD.encode_slice(bytes, &mut out[start..]) {
        Ok(written) => out.truncate(start + written),
        // Not reachable (the room is what base64 needs); written the slow way rather than left empty.
        Err(_) => {
            out.truncate(start);
            out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(bytes).as_bytes());
        }
    }
    out.push(b'"');
}

/// `text` as a JSON string. Most text needs no escaping and is copied whole.
fn string(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    escape_json(text, |piece| out.extend_from_slice(piece.as_bytes()));
    out.push(b'"');
}

/// `text` escaped as a JSON string's contents, given to `emit` piece by piece: runs that need no escaping
/// (found eight bytes at a time, and given whole) and the escapes of `"`, `\\` and control characters, written
/// as serde_json and the SDK write them (`\n`, `\u001f`). The Avro decoder writes its strings with it too.
pub(crate) fn escape_json(text: &str, mut emit: impl FnMut(&str)) {
    const CONTROL: [&str; 32] = [
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007", "\\u0008", "\\u0009",
        "\\u000a", "\\u000b", "\\u000c", "\\u000d", "\\u000e", "\\u000f", "\\u0010", "\\u0011", "\\u0012", "\\u0013",
        "\\u0014", "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d",
        "\\u001e", "\\u001f",
    ];
    let bytes = text.as_bytes();
    let mut plain = 0;
    while let Some(at) = next_escape(bytes, plain) {
        // `at` is an ASCII byte, so both slices end on character boundaries.
        emit(&text[plain..at]);
        emit(match bytes[at] {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            control => CONTROL[usize::from(control & 0x1f)],
        });
        plain = at + 1;
    }
    emit(&text[plain..]);
}

/// The index of the first byte at or after `from` that is `"`, `\\` or below 0x20. Eight bytes at a time, by
/// the "has less" and "has zero byte" tests of Bit Twiddling Hacks: they can flag a byte above a true one (a
/// borrow carries upward), never below, so the lowest flagged byte of a word is exact.
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    // High bit set in some byte if a byte of `word` is below `n` (n <= 0x80); `below(x, 1)` finds a zero byte.
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word;
    let flagged = |word: u64| {
        let quote = below(word ^ (ONES * u64::from(b'"')), 1);
        let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
        (below(word, 0x20) | quote | backslash) & HIGHS
    };
    let rest = bytes.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut at = from;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        let hits = flagged(word);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = chunks.remainder();
    tail.iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;
    use std::collections::HashMap;

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_owned())
    }

    fn put_item<const N: usize>(attributes: [(&'static str, AttributeValue); N]) -> PutItem {
        let mut item = PutItem::default();
        for (name, value) in attributes {
            item.insert(name, value);
        }
        item
    }

    /// Every kind of value, and text that needs escaping.
    fn items() -> Vec<PutItem> {
        let every_byte: String = (0u8..=0x7f).map(char::from).collect();
        vec![
            put_item([
                ("id", s("orders:0:42")),
                ("text", s(&every_byte)),
                ("unicode", s("é ü 漢字 🚀 \u{2028}\u{7f}")),
                ("quotes", s("a \"quoted\" \\back\\slash\\")),
                ("empty", s("")),
                ("n", AttributeValue::N("-12.5e3".to_owned())),
                ("b", AttributeValue::B(Blob::new((0u8..=255).collect::<Vec<u8>>()))),
                ("b1", AttributeValue::B(Blob::new(vec![0xff]))),
                ("b2", AttributeValue::B(Blob::new(vec![0xff, 0x00]))),
                ("yes", AttributeValue::Bool(true)),
                ("no", AttributeValue::Bool(false)),
                ("null", AttributeValue::Null(true)),
                ("not_null", AttributeValue::Null(false)),
                (
                    "list",
                    AttributeValue::L(vec![
                        s("x"),
                        AttributeValue::M(HashMap::from([
                            ("name".to_owned(), s("h\"1")),
                            ("v".to_owned(), AttributeValue::B(Blob::new(b"\x00\x01".to_vec()))),
                        ])),
                        AttributeValue::L(vec![]),
                    ]),
                ),
                ("map", AttributeValue::M(HashMap::new())),
                ("ss", AttributeValue::Ss(vec!["a".into(), "b\n".into()])),
                ("ns", AttributeValue::Ns(vec!["1".into(), "2.5".into()])),
                (
                    "bs",
                    AttributeValue::Bs(vec![Blob::new(b"ab".to_vec()), Blob::new(vec![])]),
                ),
                ("quo\"ted name\u{1}", s("v")),
            ]),
            put_item([("id", s("orders:0:43"))]),
        ]
    }

    /// The body the SDK's own serializer writes for the same request, caught before it is sent.
    fn sdk_body(table: &str, items: Vec<PutItem>) -> Vec<u8> {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        use aws_sdk_dynamodb::types::{PutRequest, ReturnConsumedCapacity, WriteRequest};
        use aws_smithy_runtime_api::box_error::BoxError;
        use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
        use aws_smithy_runtime_api::client::interceptors::Intercept;
        use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
        use aws_smithy_types::config_bag::ConfigBag;
        use std::sync::{Arc, Mutex};

        #[derive(Debug, Default, Clone)]
        struct Catch(Arc<Mutex<Option<Vec<u8>>>>);
        impl Intercept for Catch {
            fn name(&self) -> &'static str {
                "Catch"
            }
            fn read_before_transmit(
                &self,
                context: &BeforeTransmitInterceptorContextRef<'_>,
                _: &RuntimeComponents,
                _: &mut ConfigBag,
            ) -> Result<(), BoxError> {
                let body = context.request().body().bytes().map(<[u8]>::to_vec);
                *self.0.lock().expect("lock") = body;
                Err("caught".into())
            }
        }
        let catch = Catch::default();
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url("http://127.0.0.1:9")
            .interceptor(catch.clone())
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let requests = items
            .into_iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item.to_item()))
                    .build()
                    .expect("put");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let sent = runtime.block_on(
            client
                .batch_write_item()
                .request_items(table, requests)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send(),
        );
        assert!(sent.is_err(), "the request was caught before it was sent");
        let body = catch.0.lock().expect("lock").take();
        body.expect("the SDK wrote a body")
    }

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
    }

    #[test]
    fn the_body_is_the_document_the_sdk_writes_for_every_kind_of_value() {
        let ours = batch_write_body("notifications", &items());
        assert_eq!(json(&ours), json(&sdk_body("notifications", items())));
    }

    #[test]
    fn a_table_name_and_no_items_are_written_as_the_sdk_writes_them() {
        assert_eq!(
            json(&batch_write_body("my.table-1_x", &[])),
            json(&sdk_body("my.table-1_x", vec![]))
        );
    }

    #[test]
    fn escaped_strings_read_back_as_the_same_text() {
        let texts = [
            "",
            "plain",
            "\"",
            "\\",
            "\u{0}\u{1f}\u{7f}",
            "tab\there\r\n",
            "ünï©ødé 🚀",
            "a\"b\\c\u{8}\u{c}",
        ];
        for text in texts {
            let mut out = Vec::new();
            string(&mut out, text);
            assert_eq!(
                serde_json::from_slice::<String>(&out).expect("a JSON string"),
                text,
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_byte_that_needs_escaping_is_found_at_every_position_and_no_other_is() {
        for len in 0..20usize {
            assert_eq!(next_escape(&vec![b'a'; len], 0), None);
            assert_eq!(next_escape(&"é!#~\u{7f}".repeat(len).into_bytes(), 0), None);
            for at in 0..len {
                for bad in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    let mut bytes = vec![b'z'; len];
                    bytes[at] = bad;
                    assert_eq!(next_escape(&bytes, 0), Some(at), "{bad:#x} at {at} of {len}");
                    // From any start at or before it; none after it.
                    for from in 0..=at {
                        assert_eq!(next_escape(&bytes, from), Some(at), "{bad:#x} at {at} from {from}");
                    }
                    assert_eq!(next_escape(&bytes, at + 1), None);
                    // With a second one after it (whose borrow must not hide or move the first).
                    for later in at + 1..len {
                        let mut two = bytes.clone();
                        two[later] = b'"';
                        assert_eq!(next_escape(&two, 0), Some(at), "{bad:#x} at {at}, \" at {later}");
                        assert_eq!(next_escape(&two, at + 1), Some(later));
                    }
                }
                for good in [b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff, 0x21, 0x5d] {
                    let mut bytes = vec![b'z'; len];
                    bytes[at] = good;
                    assert_eq!(next_escape(&bytes, 0), None, "{good:#x} at {at} of {len}");
                }
            }
        }
        assert_eq!(next_escape(b"abc", 4), None);
    }

    #[test]
    fn every_character_is_escaped_as_serde_json_escapes_it() {
        for code in (0u32..0x80).chain([0xe9, 0x2028, 0x1f680]) {
            let c = char::from_u32(code).unwrap();
            for text in [c.to_string(), format!("abcdefgh{c}ijk{c}"), format!("{c}{c}\"x")] {
                let mut out = Vec::new();
                string(&mut out, &text);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    serde_json::to_string(&text).unwrap(),
                    "{code:#x}"
                );
            }
        }
    }

    #[test]
    fn base64_is_standard_with_padding_for_every_length() {
        for len in 0..8usize {
            let bytes: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(97)).collect();
            let mut out = Vec::new();
            base64(&mut out, &bytes);
            let expected = format!("\"{}\"", base64::engine::general_purpose::STANDARD.encode(&bytes));
            assert_eq!(String::from_utf8(out).expect("utf-8"), expected);
        }
    }

    #[test]
    fn the_size_estimate_holds_a_typical_item_without_growing() {
        let item = put_item([
            ("id", s("orders:3:1234567")),
            ("event_type", s("OrderPlaced")),
            ("occurred_at", s("2026-12-01T10:00:00.000Z")),
            ("partition", AttributeValue::N("3".to_owned())),
            (
                "payload",
                AttributeValue::B(Blob::new(br#"{"orderId":"o-1","total":12.5}"#.repeat(20))),
            ),
            (
                "headers",
                AttributeValue::L(vec![AttributeValue::M(HashMap::from([
                    ("name".to_owned(), s("traceparent")),
                    ("value".to_owned(), s("00-abc-def-01")),
                ]))]),
            ),
        ]);
        let body = batch_write_body("t", std::slice::from_ref(&item));
        assert!(
            body.len() <= item_estimate(&item) + 80,
            "{} > {}",
            body.len(),
            item_estimate(&item) + 80
        );
    }
}
