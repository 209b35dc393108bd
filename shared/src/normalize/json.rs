//! A strict RFC 8259 JSON reader built for normalization.
//!
//! Unlike `serde_json::Value` it keeps every number as the exact text it was written with (an order id of 30
//! digits stays those 30 digits), never recurses (a 10,000-deep document cannot overflow the stack) and only
//! builds a tree of objects down to [`MAX_TREE_DEPTH`]: deeper values are validated and then stood in for by
//! [`Json::Deep`], since no id is ever that far down. Arrays are validated and never materialized: no id is
//! looked for inside one, so a 4 MB array of numbers costs no memory beyond its bytes.

use std::borrow::Cow;

/// How many levels of objects and arrays are materialized; anything below is validated but not kept.
pub const MAX_TREE_DEPTH: usize = 16;

/// A parsed JSON value borrowing from its input.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    /// A number exactly as written.
    Number(&'a str),
    String(Cow<'a, str>),
    /// A valid array; its elements are checked, not kept.
    Array,
    /// Members in document order; repeated names are kept.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
    /// A valid object or array nested deeper than [`MAX_TREE_DEPTH`].
    Deep,
}

impl<'a> Json<'a> {
    /// A short name of the value's kind, for warnings.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array => "an array",
            Json::Object(_) | Json::Deep => "an object",
        }
    }

    /// The members of an object, or `None` for any other kind.
    pub fn as_object(&self) -> Option<&[(Cow<'a, str>, Json<'a>)]> {
        match self {
            Json::Object(members) => Some(members),
            _ => None,
        }
    }
}

/// Why a document is not JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {offset}: {reason}")]
pub struct JsonError {
    pub offset: usize,
    pub reason: &'static str,
}

/// Parses a whole document. Leading and trailing white space is allowed, anything else after the value is not.
pub fn parse(input: &str) -> Result<Json<'_>, JsonError> {
    Parser {
        text: input,
        bytes: input.as_bytes(),
        pos: 0,
    }
    .document()
}

/// Whether `input` is one complete, valid JSON document (at any depth).
pub fn is_valid(input: &str) -> bool {
    parse(input).is_ok()
}

enum Frame<'a> {
    /// An object whose members so far are `members[start..]` of the parse, and the name of the member being read.
    Object(usize, Option<Cow<'a, str>>),
    /// An array, or a container below the tree depth or inside an array: only its nesting is tracked.
    Skipped { is_object: bool },
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, reason: &'static str) -> JsonError {
        JsonError {
            offset: self.pos,
            reason,
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn document(mut self) -> Result<Json<'a>, JsonError> {
        let value = self.value()?;
        self.skip_ws();
        if self.pos != self.bytes.len() {
            return Err(self.err("unexpected data after the value"));
        }
        Ok(value)
    }

    /// Reads one value without recursion, keeping an explicit stack of open containers. The members of open
    /// objects wait on one shared list, and each object takes its own, sized exactly, when it closes: one
    /// allocation per object instead of a vector grown member by member.
    fn value(&mut self) -> Result<Json<'a>, JsonError> {
        let mut stack: Vec<Frame<'a>> = Vec::new();
        let mut members: Vec<(Cow<'a, str>, Json<'a>)> = Vec::with_capacity(32);
        // Depth of open containers below the tree depth, which are only counted.
        let mut skipped_depth: usize = 0;
        loop {
            // Expect a value (possibly the start of a container).
            self.skip_ws();
            let tree_depth = stack.len();
            let mut done: Option<Json<'a>> = match self.peek() {
                None => return Err(self.err("unexpected end of input")),
                Some(b'{') | Some(b'[') => {
                    let is_object = self.peek() == Some(b'{');
                    self.pos += 1;
                    self.skip_ws();
                    let close = if is_object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        Some(if !is_object {
                            Json::Array
                        } else if skipped_depth > 0 || tree_depth >= MAX_TREE_DEPTH {
                            Json::Deep
                        } else {
                            Json::Object(Vec::new())
                        })
                    } else {
                        if skipped_depth > 0 || tree_depth >= MAX_TREE_DEPTH || !is_object {
                            skipped_depth += 1;
                            stack.push(Frame::Skipped { is_object });
                        } else {
                            stack.push(Frame::Object(members.len(), None));
                        }
                        if is_object {
                            let key = self.key()?;
                            if let Some(Frame::Object(_, pending)) = stack.last_mut() {
                                *pending = Some(key);
                            }
                        }
                        None
                    }
                }
                Some(_) => Some(self.scalar()?),
            };
            // Attach completed values to their parents, closing containers as they end.
            while let Some(value) = done.take() {
                let Some(frame) = stack.last_mut() else {
                    return Ok(value);
                };
                if let Frame::Object(_, pending) = frame {
                    let key = pending.take().unwrap_or(Cow::Borrowed(""));
                    members.push((key, value));
                }
                self.skip_ws();
                let is_object = matches!(frame, Frame::Object(..) | Frame::Skipped { is_object: true });
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if is_object {
                            let key = self.key()?;
                            if let Some(Frame::Object(_, pending)) = stack.last_mut() {
                                *pending = Some(key);
                            }
                        }
                    }
                    Some(b']') if !is_object => {
                        self.pos += 1;
                        done = Some(Self::close(&mut stack, &mut members, &mut skipped_depth));
                    }
                    Some(b'}') if is_object => {
                        self.pos += 1;
                        done = Some(Self::close(&mut stack, &mut members, &mut skipped_depth));
                    }
                    None => return Err(self.err("unexpected end of input")),
                    Some(_) => return Err(self.err("expected ',' or the end of the container")),
                }
            }
        }
    }

    fn close(
        stack: &mut Vec<Frame<'a>>,
        members: &mut Vec<(Cow<'a, str>, Json<'a>)>,
        skipped_depth: &mut usize,
    ) -> Json<'a> {
        match stack.pop() {
            Some(Frame::Object(start, _)) => Json::Object(members.drain(start..).collect()),
            Some(Frame::Skipped { is_object }) => {
                *skipped_depth = skipped_depth.saturating_sub(1);
                if is_object {
                    Json::Deep
                } else {
                    Json::Array
                }
            }
            None => Json::Deep,
        }
    }

    /// Reads `"name" :` inside an object.
    fn key(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a member name"));
        }
        let key = self.string()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(self.err("expected ':' after a member name"));
        }
        self.pos += 1;
        Ok(key)
    }

    fn scalar(&mut self) -> Result<Json<'a>, JsonError> {
        match self.peek() {
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err("expected a value")),
        }
    }

    fn literal(&mut self, word: &'static str, value: Json<'a>) -> Result<Json<'a>, JsonError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Json<'a>, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("expected a digit after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("expected a digit in the exponent"));
            }
        }
        Ok(Json::Number(&self.text[start..self.pos]))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let chunk = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err("truncated \\u escape"))?;
        let mut code = 0u32;
        for &b in chunk {
            let digit = (b as char).to_digit(16).ok_or_else(|| self.err("invalid \\u escape"))?;
            code = code * 16 + digit;
        }
        self.pos += 4;
        Ok(code)
    }

    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.pos += 1; // opening quote
        let start = self.pos;
        // Fast path: no escapes.
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    let s = &self.text[start..self.pos];
                    self.pos += 1;
                    return Ok(Cow::Borrowed(s));
                }
                Some(b'\\') => break,
                Some(0x00..=0x1f) => return Err(self.err("control character in a string")),
                Some(_) => self.pos += 1,
            }
        }
        let mut out = String::from(&self.text[start..self.pos]);
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(0x00..=0x1f) => return Err(self.err("control character in a string")),
                Some(b'\\') => {
                    self.pos += 1;
                    let escaped = self.peek().ok_or_else(|| self.err("unterminated string"))?;
                    self.pos += 1;
                    match escaped {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&first) {
                                if !self.bytes[self.pos..].starts_with(b"\\u") {
                                    return Err(self.err("lone surrogate in \\u escape"));
                                }
                                self.pos += 2;
                                let second = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&second) {
                                    return Err(self.err("lone surrogate in \\u escape"));
                                }
                                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&first) {
                                return Err(self.err("lone surrogate in \\u escape"));
                            } else {
                                first
                            };
                            out.push(char::from_u32(code).ok_or_else(|| self.err("invalid \\u escape"))?);
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                Some(_) => {
                    // Copy one UTF-8 character; the input is a &str, so boundaries are valid.
                    let rest = &self.text[self.pos..];
                    let ch = rest.chars().next().ok_or_else(|| self.err("unterminated string"))?;
                    out.push(ch);
                    self.pos += ch.len_utf8();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_exact_text() {
        let v = parse(r#"{"a": 123456789012345678901234567890, "b": -0.5e+10}"#).unwrap();
        let members = v.as_object().unwrap();
        assert_eq!(members[0].1, Json::Number("123456789012345678901234567890"));
        assert_eq!(members[1].1, Json::Number("-0.5e+10"));
    }

    #[test]
    fn escapes_and_surrogate_pairs_are_decoded() {
        let v = parse(r#""a\"b\\c\u00e9\ud83d\ude00\n""#).unwrap();
        assert_eq!(v, Json::String(Cow::Owned("a\"b\\cé😀\n".into())));
    }

    #[test]
    fn invalid_documents_are_rejected() {
        for bad in [
            "",
            " ",
            "{",
            "[1,]",
            "{\"a\"}",
            "{\"a\":}",
            "01",
            "1.",
            "-",
            "1e",
            "tru",
            "nul",
            "\"abc",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00x\"",
            "[1 2]",
            "{\"a\":1,}",
            "1 2",
            "\"\u{1}\"",
            "{'a':1}",
            "NaN",
            "+1",
            "[",
            "]",
            "{\"a\":1]",
            "[1}",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn valid_documents_are_accepted() {
        for good in [
            "0",
            "-0",
            "1.5",
            "1e5",
            "1E-5",
            "true",
            "false",
            "null",
            "\"\"",
            "[]",
            "{}",
            " [1, [2, [3]], {\"a\": {}}] ",
            "{\"a\":1,\"a\":2}",
        ] {
            assert!(parse(good).is_ok(), "rejected {good:?}");
        }
    }

    #[test]
    fn repeated_member_names_are_kept() {
        let v = parse(r#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 2);
    }

    #[test]
    fn ten_thousand_levels_of_nesting_do_not_overflow_the_stack() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(&deep).is_ok());
        let deep_objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        assert!(parse(&deep_objects).is_ok());
        let unbalanced = format!("{}{}", "[".repeat(10_000), "]".repeat(9_999));
        assert!(parse(&unbalanced).is_err());
    }

    #[test]
    fn values_below_the_tree_depth_are_stood_in_for() {
        let levels = MAX_TREE_DEPTH + 3;
        let doc = format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels));
        let mut v = parse(&doc).unwrap();
        let mut depth = 0;
        while let Json::Object(mut members) = v {
            depth += 1;
            v = members.pop().unwrap().1;
        }
        assert_eq!(v, Json::Deep);
        assert_eq!(depth, MAX_TREE_DEPTH);
    }

    #[test]
    fn arrays_are_checked_and_never_kept() {
        assert_eq!(parse("[]").unwrap(), Json::Array);
        let v = parse(r#"{"ids":[1,{"orderId":"o-1"},[2]],"n":1}"#).unwrap();
        let members = v.as_object().unwrap();
        assert_eq!(members[0], (Cow::Borrowed("ids"), Json::Array));
        assert_eq!(members[1], (Cow::Borrowed("n"), Json::Number("1")));
        // Still validated inside: a bad element makes the whole document invalid.
        assert!(parse(r#"{"ids":[1,{"orderId":}]}"#).is_err());
        assert!(parse(&format!("[{}1]", "1,".repeat(100_000))).is_ok());
    }

    #[test]
    fn agrees_with_serde_json_on_what_is_valid() {
        for doc in ["[1,2]", "{\"a\":[true,null]}", "\"\\u0000\"", "[1,]", "{\"a\" 1}"] {
            assert_eq!(
                is_valid(doc),
                serde_json::from_str::<serde::de::IgnoredAny>(doc).is_ok(),
                "{doc}"
            );
        }
    }
}
