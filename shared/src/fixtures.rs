//! The fixture corpus format (`fixtures/messages/*.json`): one Kafka message per file, with the record it must
//! become. Used by the table-driven normalization tests and by `notifications produce --fixtures`.
//!
//! Bytes are written as BYTES: a string (its UTF-8), `{"json": ...}` (the JSON text exactly as written),
//! `{"text": ...}`, `{"hex": "00 0a ..."}`, `{"base64": ...}`, `{"concat": [BYTES, ...]}`,
//! `{"repeat": BYTES, "times": N}` or `{"noise": N}` (N bytes that do not compress); `null` is no bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::value::RawValue;

/// The bytes a BYTES spec stands for; `None` for `null`.
pub fn bytes_of(raw: &RawValue) -> Result<Option<Vec<u8>>, String> {
    let text = raw.get().trim();
    if text == "null" {
        return Ok(None);
    }
    if text.starts_with('"') {
        let s: String = serde_json::from_str(text).map_err(|e| e.to_string())?;
        return Ok(Some(s.into_bytes()));
    }
    let members: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(text).map_err(|e| format!("a BYTES spec is a string or an object: {e}"))?;
    let member = |name: &str| members.get(name).ok_or_else(|| format!("missing {name:?}"));
    let string = |name: &str| -> Result<String, String> {
        serde_json::from_str(member(name)?.get()).map_err(|e| format!("{name}: {e}"))
    };
    let kinds: Vec<&str> = members.keys().map(String::as_str).collect();
    let bytes = match kinds.as_slice() {
        ["json"] => member("json")?.get().as_bytes().to_vec(),
        ["text"] => string("text")?.into_bytes(),
        ["hex"] => {
            let digits: String = string("hex")?.split_whitespace().collect();
            hex::decode(digits).map_err(|e| format!("hex: {e}"))?
        }
        ["base64"] => base64::engine::general_purpose::STANDARD
            .decode(string("base64")?)
            .map_err(|e| format!("base64: {e}"))?,
        ["concat"] => {
            let parts: Vec<Box<RawValue>> =
                serde_json::from_str(member("concat")?.get()).map_err(|e| format!("concat: {e}"))?;
            let mut all = Vec::new();
            for part in &parts {
                all.extend(bytes_of(part)?.ok_or("a concat part is null")?);
            }
            all
        }
        ["noise"] => {
            let len: usize = serde_json::from_str(member("noise")?.get()).map_err(|e| format!("noise: {e}"))?;
            noise(len)
        }
        ["repeat", "times"] => {
            let times: usize = serde_json::from_str(member("times")?.get()).map_err(|e| format!("times: {e}"))?;
            bytes_of(member("repeat")?)?
                .ok_or("a repeated part is null")?
                .repeat(times)
        }
        other => return Err(format!("unknown BYTES spec {other:?}")),
    };
    Ok(Some(bytes))
}

/// Bytes that do not compress (xorshift64*), the same on every run.
pub fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// The message of one fixture file, as a producer would send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureMessage {
    pub path: PathBuf,
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

#[derive(serde::Deserialize)]
struct MessageFields {
    topic: String,
    #[serde(default)]
    key: Option<Box<RawValue>>,
    value: Box<RawValue>,
    #[serde(default)]
    headers: Vec<HeaderFields>,
}

#[derive(serde::Deserialize)]
struct HeaderFields {
    name: String,
    value: Box<RawValue>,
}

/// Reads the messages of every `*.json` fixture in `dir`, in file name order.
pub fn load_messages(dir: &Path) -> Result<Vec<FixtureMessage>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let fields: MessageFields = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let at = |e: String| format!("{}: {e}", path.display());
            let key = match &fields.key {
                Some(raw) => bytes_of(raw).map_err(at)?,
                None => None,
            };
            let value = bytes_of(&fields.value).map_err(at)?;
            let headers = fields
                .headers
                .iter()
                .map(|h| Ok((h.name.clone(), bytes_of(&h.value).map_err(at)?.unwrap_or_default())))
                .collect::<Result<Vec<_>, String>>()?;
            Ok(FixtureMessage {
                path,
                topic: fields.topic,
                key,
                value,
                headers,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn every_bytes_form_is_read() {
        assert_eq!(bytes_of(&raw("null")).unwrap(), None);
        assert_eq!(bytes_of(&raw(r#""hé""#)).unwrap(), Some("hé".as_bytes().to_vec()));
        assert_eq!(
            bytes_of(&raw(r#"{"json": {"a": 1.50}}"#)).unwrap(),
            Some(br#"{"a": 1.50}"#.to_vec())
        );
        assert_eq!(bytes_of(&raw(r#"{"hex": "00 ff"}"#)).unwrap(), Some(vec![0, 255]));
        assert_eq!(bytes_of(&raw(r#"{"base64": "AP8="}"#)).unwrap(), Some(vec![0, 255]));
        assert_eq!(
            bytes_of(&raw(r#"{"concat": ["a", {"hex": "62"}]}"#)).unwrap(),
            Some(b"ab".to_vec())
        );
        assert_eq!(
            bytes_of(&raw(r#"{"repeat": "ab", "times": 3}"#)).unwrap(),
            Some(b"ababab".to_vec())
        );
        assert_eq!(bytes_of(&raw(r#"{"noise": 10}"#)).unwrap().map(|b| b.len()), Some(10));
        for bad in [r#"{"hex": "zz"}"#, r#"{"what": 1}"#, "5", r#"{"repeat": "a"}"#] {
            assert!(bytes_of(&raw(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_corpus_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/messages");
        let messages = load_messages(&dir).unwrap();
        assert!(messages.len() >= 40, "{} fixtures", messages.len());
        assert!(
            messages.iter().any(|m| m.value.is_none()),
            "a tombstone is in the corpus"
        );
    }
}
