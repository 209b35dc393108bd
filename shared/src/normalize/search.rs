//! Where fields are found: the scopes of a JSON value (the top level, envelopes, entity objects), Kafka headers
//! by canonical name, and the rules that make a value an id or a time (with warnings for what is not).

use chrono::{DateTime, Utc};

use super::json::Json;
use super::numbers::decimal_text;
use super::time::{parse_epoch, parse_time_text};
use super::vocabulary::{canonical, is_canonical, FieldSpec, ENVELOPES, MAX_ENVELOPE_DEPTH, OCCURRED_AT};
use crate::model::{cut_name, quoted_name, Warning, WarningCode};

/// An object searched for fields, with the path it was found at.
pub(super) struct Scope<'j, 'a> {
    path: String,
    members: &'j [(std::borrow::Cow<'a, str>, Json<'a>)],
    /// Envelope scopes are searched before entity objects (`order`, `customer`).
    is_entity: bool,
}

pub(super) fn collect_scopes<'j, 'a>(root: &'j Json<'a>) -> Vec<Scope<'j, 'a>> {
    collect_scopes_at(root, "$")
}

/// The scopes of `root`, found at `path` in the value.
pub(super) fn collect_scopes_at<'j, 'a>(root: &'j Json<'a>, path: &str) -> Vec<Scope<'j, 'a>> {
    let mut scopes = Vec::with_capacity(8);
    let Some(members) = root.as_object() else {
        return scopes;
    };
    scopes.push(Scope {
        path: path.into(),
        members,
        is_entity: false,
    });
    let mut frontier = 0;
    for _ in 0..MAX_ENVELOPE_DEPTH {
        let end = scopes.len();
        for index in frontier..end {
            let members = scopes[index].members;
            for (name, value) in members {
                if let Some(inner) = value.as_object() {
                    if ENVELOPES.iter().any(|envelope| is_canonical(name, envelope)) {
                        let path = format!("{}.{}", scopes[index].path, name);
                        scopes.push(Scope {
                            path,
                            members: inner,
                            is_entity: false,
                        });
                    }
                }
            }
        }
        frontier = end;
    }
    // Entity objects inside any envelope scope: `order: {customerId}` tells the customer too.
    let envelope_count = scopes.len();
    for index in 0..envelope_count {
        let members = scopes[index].members;
        for (name, value) in members {
            if let Some(inner) = value.as_object() {
                if ["order", "customer", "payment", "shipment", "correlation"]
                    .iter()
                    .any(|entity| is_canonical(name, entity))
                {
                    let path = format!("{}.{}", scopes[index].path, name);
                    scopes.push(Scope {
                        path,
                        members: inner,
                        is_entity: true,
                    });
                }
            }
        }
    }
    scopes
}

/// Kafka headers by canonical name; only UTF-8 values can carry ids.
pub(super) struct HeaderIndex<'m> {
    headers: Vec<(String, &'m str, &'m [u8])>,
}

impl<'m> HeaderIndex<'m> {
    pub(super) fn new(headers: &'m [(String, Vec<u8>)]) -> Self {
        HeaderIndex {
            headers: headers
                .iter()
                .map(|(name, value)| (canonical(name), name.as_str(), value.as_slice()))
                .collect(),
        }
    }

    fn find(&self, canon: &str, warnings: &mut Vec<Warning>, label: &str) -> Option<String> {
        for (c, name, value) in &self.headers {
            if c != canon {
                continue;
            }
            match std::str::from_utf8(value) {
                Ok(text) if is_present(text) => return Some(text.to_owned()),
                Ok(_) => {}
                Err(_) => warnings.push(Warning::new(
                    WarningCode::HeaderNotUtf8,
                    format!("header {} is not UTF-8, so it is not a {label}", quoted_name(name)),
                )),
            }
        }
        None
    }
}

fn is_present(text: &str) -> bool {
    let trimmed = text.trim();
    !trimmed.is_empty() && trimmed != "null"
}

/// Where a value was found (`$.order.id`): written out only when a warning names it, not for every field read.
struct At<'p>(&'p str, &'p str, Option<&'p str>);

impl At<'_> {
    /// The path, cut to the length a warning names.
    fn cut(&self) -> String {
        let path = match self.2 {
            Some(inner) => format!("{}.{}.{inner}", self.0, self.1),
            None => format!("{}.{}", self.0, self.1),
        };
        cut_name(&path)
    }
}

/// An id-like value as text: strings exactly, numbers as their decimal text. Anything else is not an id.
fn id_text(value: &Json<'_>, label: &str, path: At<'_>, warnings: &mut Vec<Warning>) -> Option<String> {
    match value {
        Json::String(text) if is_present(text) => Some(text.to_string()),
        Json::String(_) | Json::Null => None,
        Json::Number(text) => match decimal_text(text) {
            Some(decimal) => Some(decimal),
            None => {
                warnings.push(Warning::new(
                    WarningCode::IdTooLarge,
                    format!(
                        "{label} at {} is a number of {} characters, too large to write out; kept as written",
                        path.cut(),
                        text.len()
                    ),
                ));
                Some((*text).to_owned())
            }
        },
        other => {
            warnings.push(Warning::new(
                WarningCode::IdNotScalar,
                format!(
                    "{label} at {} is {}, not a string or number; ignored",
                    path.cut(),
                    other.kind()
                ),
            ));
            None
        }
    }
}

pub(super) fn find_field(
    spec: &FieldSpec,
    scopes: &[Scope<'_, '_>],
    headers: &HeaderIndex<'_>,
    warnings: &mut Vec<Warning>,
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
                    let path = At(&scope.path, member, None);
                    // An envelope name that holds an object is an envelope, not this field.
                    if matches!(value, Json::Object(_)) && (ENVELOPES.contains(name) || spec.entity == Some(name)) {
                        continue;
                    }
                    if let Some(found) = id_text(value, spec.label, path, warnings) {
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
                            let path = At(&scope.path, member, Some(inner_name));
                            if let Some(found) = id_text(inner_value, spec.label, path, warnings) {
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

/// The `id` of the first scope (a change event's row), as the id of the entity its table holds.
pub(super) fn own_id(scopes: &[Scope<'_, '_>], label: &str, warnings: &mut Vec<Warning>) -> Option<String> {
    let scope = scopes.first()?;
    scope
        .members
        .iter()
        .filter(|(member, _)| is_canonical(member, "id"))
        .find_map(|(member, value)| id_text(value, label, At(&scope.path, member, None), warnings))
}

pub(super) fn find_time(
    scopes: &[Scope<'_, '_>],
    headers: &HeaderIndex<'_>,
    warnings: &mut Vec<Warning>,
) -> Option<DateTime<Utc>> {
    for scope in scopes.iter().filter(|s| !s.is_entity) {
        for name in OCCURRED_AT.names {
            for (member, value) in scope.members {
                if !is_canonical(member, name) {
                    continue;
                }
                let path = At(&scope.path, member, None);
                match value {
                    Json::String(text) if is_present(text) => match parse_time_text(text) {
                        Some(time) => return Some(time),
                        None => warnings.push(Warning::new(
                            WarningCode::UnreadableTime,
                            format!(
                                "{} is text of {} bytes that is not a time this service reads (RFC 3339 or epoch seconds/milliseconds)",
                                path.cut(),
                                text.len()
                            ),
                        )),
                    },
                    Json::Number(text) => match parse_epoch(text) {
                        Some(time) => return Some(time),
                        None => warnings.push(Warning::new(
                            WarningCode::UnreadableTime,
                            format!("{} is a number that is not a plausible epoch time", path.cut()),
                        )),
                    },
                    Json::String(_) | Json::Null => {}
                    other => warnings.push(Warning::new(
                        WarningCode::UnreadableTime,
                        format!("{} is {}, not a time", path.cut(), other.kind()),
                    )),
                }
            }
        }
    }
    for name in OCCURRED_AT.headers {
        if let Some(text) = headers.find(name, warnings, "time") {
            match parse_time_text(&text) {
                Some(time) => return Some(time),
                None => warnings.push(Warning::new(
                    WarningCode::UnreadableTime,
                    format!(
                        "header {name} is text of {} bytes that is not a time this service reads",
                        text.len()
                    ),
                )),
            }
        }
    }
    None
}
