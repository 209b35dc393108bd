//! What an answer may weigh. Lambda refuses a response over 6 MB (6,291,456 bytes) and API Gateway then answers
//! a bare 502, so every answer is sized before it is sent. The size that counts is the body *inside*
//! lambda_http's envelope: a JSON body travels as a JSON string, where every `"` and `\` takes two bytes and a
//! control character (already `\u001f` in the body) one more; a binary body travels as base64 (4/3).

/// Lambda's limit on a synchronous invocation's response.
pub const LAMBDA_RESPONSE_LIMIT: usize = 6 * 1024 * 1024;

/// What a body may take inside the envelope: the rest of the limit is left to the status, the headers and the
/// envelope's own fields.
pub const BODY_BUDGET: usize = 5 * 1024 * 1024;

/// The bytes a JSON body takes once written as a JSON string in the envelope.
pub fn escaped_len(body: &[u8]) -> usize {
    body.iter()
        .map(|byte| match byte {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

/// The bytes a binary body takes in the envelope (base64).
pub fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// The escaped size a summary takes in a JSON answer: as a list item, or as a timeline step, which adds its
/// timings, the separator and, the first time a service appears, its name in `services`.
pub fn summary_len(summary: &shared::model::Summary) -> usize {
    const STEP_FIELDS: usize = 96;
    let service = summary
        .fields
        .source_service
        .as_deref()
        .map_or(0, |s| escaped_len(s.as_bytes()) + 3);
    serde_json::to_vec(summary).map_or(usize::MAX / 2, |json| escaped_len(&json)) + service + STEP_FIELDS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_is_counted_as_serde_json_writes_it() {
        for body in [
            &b"plain"[..],
            b"{\"a\":\"b\\\\c\"}",
            b"\x01\x1f\n\t\r\x08\x0c",
            "é😀".as_bytes(),
        ] {
            let text = String::from_utf8(body.to_vec()).unwrap();
            let written = serde_json::to_string(&text).unwrap();
            assert_eq!(escaped_len(body), written.len() - 2, "{text:?}");
        }
    }

    #[test]
    fn base64_rounds_up_to_whole_groups() {
        assert_eq!(base64_len(0), 0);
        assert_eq!(base64_len(1), 4);
        assert_eq!(base64_len(3), 4);
        assert_eq!(base64_len(4), 8);
    }
}
