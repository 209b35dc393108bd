//! `FilterCriteria`, pure: which records the mapping sends to the function. Kafka mappings filter on the record's
//! `value` only (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-filtering.html>), with Lambda's filter
//! pattern syntax (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html>):
//!
//! - a pattern is a JSON object whose keys are the event's field names; nested objects follow nested fields, and
//!   every key must match (AND);
//! - a key's array lists matchers, any of which may match (OR): a string, number, `true`, `false` or `null` to
//!   equal, `{"prefix": "..."}`, `{"suffix": "..."}`, `{"equals-ignore-case": "..."}`,
//!   `{"anything-but": value | [values] | {"prefix"|"suffix"|"equals-ignore-case": "..."}}`,
//!   `{"numeric": [">", 0, "<=", 5]}` and `{"exists": true | false}`; `{"$or": [pattern, ...]}` joins patterns;
//! - an array in the event matches when any of its elements does;
//! - a value that is valid JSON is matched as its document; any other UTF-8 value as one string (so
//!   `{"value": [{"prefix": "ERROR"}]}` works on plain text); a value that is neither matches only
//!   `"exists": false`.
//!
//! A record passes when it matches any of the filters (at most 5, as AWS allows by default). A record that matches
//! none is not sent to the function, and its offset is committed with its batch, as AWS does.

use serde_json::{Map, Number, Value};

/// The most filters one mapping takes (AWS's default quota).
pub const MAX_FILTERS: usize = 5;

/// Checked filter patterns.
#[derive(Debug, Clone, Default)]
pub struct Filters(Vec<Map<String, Value>>);

impl Filters {
    /// Parses and checks each pattern's JSON text; says which one is wrong and why.
    pub fn parse(patterns: &[String]) -> Result<Filters, String> {
        if patterns.len() > MAX_FILTERS {
            return Err(format!(
                "{} filter patterns; a mapping takes at most {MAX_FILTERS}",
                patterns.len()
            ));
        }
        let mut parsed = Vec::with_capacity(patterns.len());
        for (i, text) in patterns.iter().enumerate() {
            let value: Value =
                serde_json::from_str(text).map_err(|e| format!("filter pattern {}: not JSON: {e}", i + 1))?;
            let Value::Object(pattern) = value else {
                return Err(format!("filter pattern {}: not a JSON object", i + 1));
            };
            for key in pattern.keys() {
                if key != "value" && key != "$or" {
                    return Err(format!(
                        "filter pattern {}: Kafka mappings filter on \"value\" only, not {key:?}",
                        i + 1
                    ));
                }
            }
            check_pattern(&pattern).map_err(|e| format!("filter pattern {}: {e}", i + 1))?;
            parsed.push(pattern);
        }
        Ok(Filters(parsed))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a record with this value goes to the function.
    pub fn pass(&self, value: Option<&[u8]>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let value = value.map(|bytes| match serde_json::from_slice::<Value>(bytes) {
            Ok(document) => Some(document),
            Err(_) => std::str::from_utf8(bytes)
                .ok()
                .map(|text| Value::String(text.to_owned())),
        });
        let mut event = Map::new();
        if let Some(Some(value)) = value {
            event.insert("value".into(), value);
        }
        self.0.iter().any(|pattern| object_matches(pattern, &event))
    }
}

fn check_pattern(pattern: &Map<String, Value>) -> Result<(), String> {
    for (key, rule) in pattern {
        match (key.as_str(), rule) {
            ("$or", Value::Array(alternatives)) if alternatives.len() >= 2 => {
                for alternative in alternatives {
                    match alternative {
                        Value::Object(p) => check_pattern(p)?,
                        _ => return Err("each \"$or\" alternative must be an object".into()),
                    }
                }
            }
            ("$or", _) => return Err("\"$or\" takes an array of at least two patterns".into()),
            (_, Value::Object(nested)) => check_pattern(nested)?,
            (_, Value::Array(matchers)) if !matchers.is_empty() => {
                for matcher in matchers {
                    check_matcher(key, matcher)?;
                }
            }
            _ => return Err(format!("{key:?} must be an object or a non-empty array of matchers")),
        }
    }
    Ok(())
}

fn check_matcher(key: &str, matcher: &Value) -> Result<(), String> {
    let Value::Object(operator) = matcher else {
        return Ok(()); // a literal to equal
    };
    let bad = |why: &str| Err(format!("{key:?}: {why}: {matcher}"));
    let Some((name, argument)) = operator.iter().next().filter(|_| operator.len() == 1) else {
        return bad("a matcher object has exactly one operator");
    };
    match (name.as_str(), argument) {
        ("prefix" | "suffix" | "equals-ignore-case", Value::String(_)) => Ok(()),
        ("exists", Value::Bool(_)) => Ok(()),
        ("anything-but", Value::Array(values)) if values.iter().all(|v| v.is_string() || v.is_number()) => Ok(()),
        ("anything-but", Value::String(_) | Value::Number(_)) => Ok(()),
        ("anything-but", Value::Object(inner))
            if inner.len() == 1
                && inner.iter().all(|(n, v)| {
                    matches!(n.as_str(), "prefix" | "suffix" | "equals-ignore-case") && v.is_string()
                }) =>
        {
            Ok(())
        }
        ("numeric", Value::Array(terms)) => check_numeric(terms).or_else(|why| bad(&why)),
        ("prefix" | "suffix" | "equals-ignore-case" | "exists" | "anything-but" | "numeric", _) => {
            bad("the operator's argument has the wrong type")
        }
        ("cidr" | "wildcard", _) => bad("this operator is not supported by the local mapping"),
        _ => bad("unknown operator"),
    }
}

fn check_numeric(terms: &[Value]) -> Result<(), String> {
    if terms.len() != 2 && terms.len() != 4 {
        return Err("numeric takes one or two comparisons: [op, number] or [op, number, op, number]".into());
    }
    for pair in terms.chunks(2) {
        match (&pair[0], &pair[1]) {
            (Value::String(op), Value::Number(_)) if matches!(op.as_str(), "=" | "<" | "<=" | ">" | ">=") => {}
            _ => return Err("each comparison is an operator (=, <, <=, >, >=) and a number".into()),
        }
    }
    Ok(())
}

/// Whether the event object matches the pattern object: every key (AND), `$or` any alternative.
fn object_matches(pattern: &Map<String, Value>, event: &Map<String, Value>) -> bool {
    pattern.iter().all(|(key, rule)| {
        if key == "$or" {
            return rule.as_array().is_some_and(|alternatives| {
                alternatives
                    .iter()
                    .any(|a| a.as_object().is_some_and(|p| object_matches(p, event)))
            });
        }
        let field = event.get(key);
        match rule {
            Value::Object(nested) => match field {
                Some(Value::Object(inner)) => object_matches(nested, inner),
                // An array of objects matches when any of its objects does.
                Some(Value::Array(items)) if items.iter().any(Value::is_object) => items
                    .iter()
                    .any(|item| item.as_object().is_some_and(|inner| object_matches(nested, inner))),
                // A nested pattern on a missing field can still be satisfied by "exists": false alone.
                _ => object_matches(nested, &Map::new()),
            },
            Value::Array(matchers) => field_matches(matchers, field),
            _ => false,
        }
    })
}

/// Whether a field (absent, a value, or an array whose elements are tried each) matches any matcher.
/// Matchers apply to leaves ("the Exists operator only works on leaf nodes"): a field that is absent, an
/// object, or an empty array holds no leaf, and only `"exists": false` matches it.
fn field_matches(matchers: &[Value], field: Option<&Value>) -> bool {
    let no_leaf = || matchers.iter().any(|m| m.get("exists") == Some(&Value::Bool(false)));
    match field {
        None | Some(Value::Object(_)) => no_leaf(),
        Some(Value::Array(items)) if items.is_empty() => no_leaf(),
        Some(Value::Array(items)) => items.iter().any(|item| matchers.iter().any(|m| matches(m, item))),
        Some(value) => matchers.iter().any(|m| matches(m, value)),
    }
}

/// Lambda compares numbers in equality matching by their string representation: 300, 300.0 and 3.0e2 are not
/// equal. (A number is compared as serde_json writes it back; `numeric` ranges compare values.)
fn number_eq(a: &Number, b: &Number) -> bool {
    a.to_string() == b.to_string()
}

fn equal(literal: &Value, value: &Value) -> bool {
    match (literal, value) {
        (Value::Number(a), Value::Number(b)) => number_eq(a, b),
        (a, b) => a == b,
    }
}

fn matches(matcher: &Value, value: &Value) -> bool {
    let Value::Object(operator) = matcher else {
        return equal(matcher, value);
    };
    let Some((name, argument)) = operator.iter().next() else {
        return false;
    };
    let text = value.as_str();
    match name.as_str() {
        // A leaf is present (null included): "exists": true holds, "exists": false does not.
        "exists" => argument == &Value::Bool(true),
        "prefix" => text.zip(argument.as_str()).is_some_and(|(t, p)| t.starts_with(p)),
        "suffix" => text.zip(argument.as_str()).is_some_and(|(t, s)| t.ends_with(s)),
        "equals-ignore-case" => text
            .zip(argument.as_str())
            .is_some_and(|(t, e)| t.to_lowercase() == e.to_lowercase()),
        "anything-but" => match argument {
            Value::Array(excluded) => !excluded.iter().any(|e| equal(e, value)),
            Value::Object(inner) => {
                text.is_some()
                    && !inner
                        .iter()
                        .any(|(n, a)| matches(&Value::Object(Map::from_iter([(n.clone(), a.clone())])), value))
            }
            single => !equal(single, value),
        },
        "numeric" => {
            let (Some(number), Some(terms)) = (value.as_f64(), argument.as_array()) else {
                return false;
            };
            terms.chunks(2).all(|pair| {
                let bound = pair[1].as_f64().unwrap_or(f64::NAN);
                match pair[0].as_str() {
                    Some("=") => number == bound,
                    Some("<") => number < bound,
                    Some("<=") => number <= bound,
                    Some(">") => number > bound,
                    Some(">=") => number >= bound,
                    _ => false,
                }
            })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(patterns: &[&str]) -> Filters {
        Filters::parse(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>()).expect("valid patterns")
    }

    fn pass(patterns: &[&str], value: &str) -> bool {
        filters(patterns).pass(Some(value.as_bytes()))
    }

    #[test]
    fn awss_own_example_matches_a_prefix_inside_the_value() {
        let pattern = r#"{ "value" : { "device_ID" : [ { "prefix": "AB" } ] } }"#;
        assert!(pass(
            &[pattern],
            r#"{"device_ID": "AB1234", "session": {"duration": 162}}"#
        ));
        assert!(!pass(&[pattern], r#"{"device_ID": "CD1234"}"#));
        assert!(!pass(&[pattern], r#"{"other": "AB"}"#));
    }

    #[test]
    fn every_operator_matches_as_lambdas_syntax_says() {
        let cases: &[(&str, &str, bool)] = &[
            (
                r#"{"value": {"t": ["OrderCreated"]}}"#,
                r#"{"t": "OrderCreated"}"#,
                true,
            ),
            (
                r#"{"value": {"t": ["OrderCreated", "OrderPaid"]}}"#,
                r#"{"t": "OrderPaid"}"#,
                true,
            ),
            (
                r#"{"value": {"t": ["OrderCreated"]}}"#,
                r#"{"t": "ordercreated"}"#,
                false,
            ),
            (
                r#"{"value": {"t": [{"equals-ignore-case": "ORDERCREATED"}]}}"#,
                r#"{"t": "orderCreated"}"#,
                true,
            ),
            (
                r#"{"value": {"t": [{"suffix": ".created"}]}}"#,
                r#"{"t": "orders.created"}"#,
                true,
            ),
            (
                r#"{"value": {"t": [{"anything-but": ["Heartbeat", "Ping"]}]}}"#,
                r#"{"t": "Ping"}"#,
                false,
            ),
            (
                r#"{"value": {"t": [{"anything-but": ["Heartbeat", "Ping"]}]}}"#,
                r#"{"t": "Order"}"#,
                true,
            ),
            (
                r#"{"value": {"t": [{"anything-but": {"prefix": "test-"}}]}}"#,
                r#"{"t": "test-1"}"#,
                false,
            ),
            (
                r#"{"value": {"t": [{"anything-but": {"prefix": "test-"}}]}}"#,
                r#"{"t": "prod-1"}"#,
                true,
            ),
            (
                r#"{"value": {"n": [{"numeric": [">", 0, "<=", 5]}]}}"#,
                r#"{"n": 5}"#,
                true,
            ),
            (
                r#"{"value": {"n": [{"numeric": [">", 0, "<=", 5]}]}}"#,
                r#"{"n": 5.5}"#,
                false,
            ),
            (r#"{"value": {"n": [{"numeric": ["=", 100]}]}}"#, r#"{"n": 1e2}"#, true),
            (r#"{"value": {"n": [{"numeric": [">", 0]}]}}"#, r#"{"n": "7"}"#, false),
            (r#"{"value": {"n": [7]}}"#, r#"{"n": 7}"#, true),
            (r#"{"value": {"n": [7]}}"#, r#"{"n": 7.0}"#, false),
            (r#"{"value": {"n": [{"anything-but": [7]}]}}"#, r#"{"n": 8}"#, true),
            (r#"{"value": {"c": [{"exists": true}]}}"#, r#"{"c": null}"#, true),
            (r#"{"value": {"c": [{"exists": true}]}}"#, r#"{"c": {"d": 1}}"#, false),
            (r#"{"value": {"c": [{"exists": false}]}}"#, r#"{"c": {"d": 1}}"#, true),
            (r#"{"value": {"c": [{"exists": false}]}}"#, r#"{"c": []}"#, true),
            (
                r#"{"value": {"lines": {"sku": [{"prefix": "SKU-9"}]}}}"#,
                r#"{"lines": [{"sku": "SKU-1"}, {"sku": "SKU-9x"}]}"#,
                true,
            ),
            (
                r#"{"value": {"lines": {"sku": ["SKU-2"]}}}"#,
                r#"{"lines": [{"sku": "SKU-1"}]}"#,
                false,
            ),
            (r#"{"value": {"c": [{"exists": true}]}}"#, r#"{"c": "x"}"#, true),
            (r#"{"value": {"c": [{"exists": true}]}}"#, r#"{"d": "x"}"#, false),
            (r#"{"value": {"c": [{"exists": false}]}}"#, r#"{"d": "x"}"#, true),
            (r#"{"value": {"c": [{"exists": false}]}}"#, r#"{"c": "x"}"#, false),
            (r#"{"value": {"c": [null]}}"#, r#"{"c": null}"#, true),
            (r#"{"value": {"ok": [true]}}"#, r#"{"ok": true}"#, true),
            (r#"{"value": {"tags": ["vip"]}}"#, r#"{"tags": ["new", "vip"]}"#, true),
            (
                r#"{"value": {"a": {"b": [{"prefix": "x"}]}}}"#,
                r#"{"a": {"b": "xy"}}"#,
                true,
            ),
            (r#"{"value": {"t": ["A"], "n": [1]}}"#, r#"{"t": "A", "n": 2}"#, false),
            (
                r#"{"$or": [{"value": {"t": ["A"]}}, {"value": {"n": [1]}}]}"#,
                r#"{"t": "B", "n": 1}"#,
                true,
            ),
            (r#"{"value": [{"prefix": "ERROR"}]}"#, "ERROR disk full", true),
            (r#"{"value": [{"prefix": "ERROR"}]}"#, "INFO fine", false),
            (r#"{"value": ["plain"]}"#, "plain", true),
        ];
        for (pattern, value, expected) in cases {
            assert_eq!(pass(&[pattern], value), *expected, "{pattern} on {value}");
        }
    }

    #[test]
    fn a_record_passes_when_any_filter_matches_and_without_filters_every_record_does() {
        let both = [r#"{"value": {"t": ["A"]}}"#, r#"{"value": {"t": ["B"]}}"#];
        assert!(pass(&both, r#"{"t": "B"}"#));
        assert!(!pass(&both, r#"{"t": "C"}"#));
        assert!(Filters::default().pass(Some(b"anything")));
        assert!(Filters::default().pass(None));
    }

    #[test]
    fn a_tombstone_or_a_binary_value_matches_only_exists_false() {
        let absent = filters(&[r#"{"value": [{"exists": false}]}"#]);
        assert!(absent.pass(None));
        assert!(absent.pass(Some(&[0xff, 0xfe])));
        assert!(!absent.pass(Some(b"plain text")), "a text value is a leaf: it exists");
        assert!(!absent.pass(Some(b"42")));
        // A JSON object is not a leaf: "exists" matches leaves only, so "exists": false holds for it.
        assert!(absent.pass(Some(b"{}")));
        let present = filters(&[r#"{"value": {"t": [{"exists": true}]}}"#]);
        assert!(!present.pass(None));
        assert!(!present.pass(Some(&[0xff, 0xfe])));
    }

    #[test]
    fn bad_patterns_are_refused_with_what_is_wrong() {
        for (pattern, says) in [
            ("not json", "not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"key": ["k"]}"#, "\"value\" only"),
            (r#"{"value": {"t": []}}"#, "non-empty array"),
            (r#"{"value": {"t": "A"}}"#, "object or a non-empty array"),
            (r#"{"value": {"t": [{"prefix": 1}]}}"#, "wrong type"),
            (r#"{"value": {"t": [{"numeric": [">"]}]}}"#, "comparisons"),
            (r#"{"value": {"t": [{"numeric": ["~", 1]}]}}"#, "operator"),
            (r#"{"value": {"t": [{"wildcard": "a*"}]}}"#, "not supported"),
            (r#"{"value": {"t": [{"nope": 1}]}}"#, "unknown operator"),
            (
                r#"{"value": {"t": [{"prefix": "a", "suffix": "b"}]}}"#,
                "exactly one operator",
            ),
            (r#"{"$or": [{"value": {"t": ["A"]}}]}"#, "at least two"),
        ] {
            let err = Filters::parse(&[pattern.to_string()]).expect_err(pattern);
            assert!(err.contains(says), "{pattern}: {err}");
        }
        let six: Vec<String> = (0..6).map(|_| r#"{"value": ["x"]}"#.to_string()).collect();
        assert!(Filters::parse(&six).unwrap_err().contains("at most 5"));
    }
}
