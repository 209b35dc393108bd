//! Parsing and validating query strings, pure. Every rule answers a bad request with what is wrong.

use shared::normalize::{format_time, parse_time_text};
use shared::ports::Lookup;

/// The longest id the API takes, in bytes. Longer than DynamoDB's index key limits (those are found through
/// their digest), and as long as API Gateway lets through in a request line.
pub const MAX_ID_BYTES: usize = 8192;
/// The default and largest page sizes.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

/// The sort order of answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// A validated list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    pub lookup: Lookup,
    pub value: String,
    pub event_type: Option<String>,
    /// Normalized (fixed-width UTC) bounds.
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: usize,
    pub order: Order,
    pub cursor: Option<String>,
}

impl ListParams {
    /// The parts that identify the query, for binding cursors to it.
    pub fn identity(&self) -> Vec<String> {
        vec![
            format!("{:?}", self.lookup),
            self.value.clone(),
            self.event_type.clone().unwrap_or_default(),
            self.since.clone().unwrap_or_default(),
            self.until.clone().unwrap_or_default(),
            self.order.as_str().to_owned(),
        ]
    }
}

/// Splits a raw query string into pairs, refusing repeated and unknown names.
pub fn pairs(raw: Option<&str>, allowed: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if name.is_empty() && value.is_empty() {
            continue;
        }
        if !allowed.contains(&name.as_ref()) {
            return Err(if allowed.is_empty() {
                format!("unknown query parameter {name:?}; this endpoint takes no query parameters")
            } else {
                format!(
                    "unknown query parameter {name:?}; this endpoint takes {}",
                    allowed.join(", ")
                )
            });
        }
        if seen.iter().any(|(n, _)| n == name.as_ref()) {
            return Err(format!("query parameter {name:?} is given more than once"));
        }
        seen.push((name.into_owned(), value.into_owned()));
    }
    Ok(seen)
}

fn get<'p>(pairs: &'p [(String, String)], name: &str) -> Option<&'p str> {
    pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Checks an id from a query string or path.
pub fn check_id(name: &str, value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err(format!("{name} is empty"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(format!(
            "{name} is {} bytes long; at most {MAX_ID_BYTES} are accepted",
            value.len()
        ));
    }
    Ok(value.to_owned())
}

fn time(name: &str, value: Option<&str>) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(text) => match chrono::DateTime::parse_from_rfc3339(text.trim()) {
            Ok(_) => Ok(parse_time_text(text).map(format_time)),
            Err(_) => Err(format!(
                "{name} {text:?} is not an RFC 3339 time such as 2024-05-01T12:00:00Z"
            )),
        }
        .and_then(|t| t.ok_or_else(|| format!("{name} {text:?} is out of range")).map(Some)),
    }
}

/// Parses a page size.
pub fn limit(value: Option<&str>, default: usize, max: usize) -> Result<usize, String> {
    match value {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!("limit {text:?} is not a whole number from 1 to {max}")),
        },
    }
}

/// Parses `order`.
pub fn order(value: Option<&str>) -> Result<Order, String> {
    match value {
        None | Some("asc") => Ok(Order::Asc),
        Some("desc") => Ok(Order::Desc),
        Some(other) => Err(format!("order {other:?} is not asc or desc")),
    }
}

/// The parameters `GET /notifications` takes.
pub const LIST_PARAMETERS: [&str; 9] = [
    "order_id",
    "correlation_id",
    "customer_id",
    "event_type",
    "since",
    "until",
    "limit",
    "order",
    "cursor",
];

/// Parses the query string of `GET /notifications`.
pub fn list(raw: Option<&str>) -> Result<ListParams, String> {
    let pairs = pairs(raw, &LIST_PARAMETERS)?;
    let lookups: Vec<(Lookup, &str, &str)> = [
        (Lookup::Order, "order_id"),
        (Lookup::Correlation, "correlation_id"),
        (Lookup::Customer, "customer_id"),
    ]
    .into_iter()
    .filter_map(|(lookup, name)| get(&pairs, name).map(|v| (lookup, name, v)))
    .collect();
    let (lookup, name, value) = match lookups.as_slice() {
        [one] => *one,
        [] => return Err("give exactly one of order_id, correlation_id or customer_id".into()),
        many => {
            let names: Vec<&str> = many.iter().map(|(_, n, _)| *n).collect();
            return Err(format!(
                "give exactly one of order_id, correlation_id or customer_id, not {}",
                names.join(" and ")
            ));
        }
    };
    let value = check_id(name, value)?;
    let event_type = match get(&pairs, "event_type") {
        Some(t) if t.trim().is_empty() => return Err("event_type is empty".into()),
        Some(t) if t.len() > 1024 => return Err("event_type is longer than 1024 bytes".into()),
        other => other.map(str::to_owned),
    };
    let since = time("since", get(&pairs, "since"))?;
    let until = time("until", get(&pairs, "until"))?;
    if let (Some(s), Some(u)) = (&since, &until) {
        if s > u {
            return Err(format!("since ({s}) is after until ({u})"));
        }
    }
    let cursor = match get(&pairs, "cursor") {
        Some("") => return Err("cursor is empty".into()),
        other => other.map(str::to_owned),
    };
    Ok(ListParams {
        lookup,
        value,
        event_type,
        since,
        until,
        limit: limit(get(&pairs, "limit"), DEFAULT_LIMIT, MAX_LIMIT)?,
        order: order(get(&pairs, "order"))?,
        cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_lookup_takes_the_defaults() {
        let p = list(Some("order_id=o-1")).unwrap();
        assert_eq!(p.lookup, Lookup::Order);
        assert_eq!(p.value, "o-1");
        assert_eq!(p.limit, DEFAULT_LIMIT);
        assert_eq!(p.order, Order::Asc);
        assert_eq!(p.since, None);
    }

    #[test]
    fn every_parameter_is_read() {
        let p = list(Some("customer_id=c%201&event_type=OrderCreated&since=2024-01-01T01:00:00%2B01:00&until=2024-01-02T00:00:00Z&limit=500&order=desc&cursor=abc")).unwrap();
        assert_eq!(p.lookup, Lookup::Customer);
        assert_eq!(p.value, "c 1");
        assert_eq!(p.event_type.as_deref(), Some("OrderCreated"));
        assert_eq!(p.since.as_deref(), Some("2024-01-01T00:00:00.000000Z"));
        assert_eq!(p.until.as_deref(), Some("2024-01-02T00:00:00.000000Z"));
        assert_eq!(p.limit, 500);
        assert_eq!(p.order, Order::Desc);
        assert_eq!(p.cursor.as_deref(), Some("abc"));
    }

    #[test]
    fn an_endpoint_without_parameters_says_so() {
        let err = pairs(Some("x=1"), &[]).unwrap_err();
        assert_eq!(
            err,
            "unknown query parameter \"x\"; this endpoint takes no query parameters"
        );
        assert_eq!(pairs(Some(""), &[]).unwrap(), Vec::new());
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let long = format!("order_id={}", "x".repeat(MAX_ID_BYTES + 1));
        for (query, expected) in [
            ("", "exactly one of"),
            ("order_id=1&customer_id=2", "not order_id and customer_id"),
            ("order_id=1&order_id=2", "more than once"),
            ("order_id=1&colour=red", "unknown query parameter \"colour\""),
            ("order_id=", "order_id is empty"),
            (long.as_str(), "at most 8192"),
            (
                "order_id=1&since=yesterday",
                "since \"yesterday\" is not an RFC 3339 time",
            ),
            ("order_id=1&until=2024-13-01T00:00:00Z", "until"),
            (
                "order_id=1&since=2024-02-01T00:00:00Z&until=2024-01-01T00:00:00Z",
                "is after until",
            ),
            ("order_id=1&limit=0", "from 1 to 500"),
            ("order_id=1&limit=501", "from 1 to 500"),
            ("order_id=1&limit=ten", "from 1 to 500"),
            ("order_id=1&order=up", "not asc or desc"),
            ("order_id=1&cursor=", "cursor is empty"),
            ("order_id=1&event_type=", "event_type is empty"),
        ] {
            let err = list(Some(query)).unwrap_err();
            assert!(err.contains(expected), "{query}: {err}");
        }
    }

    #[test]
    fn an_id_of_several_kilobytes_is_accepted() {
        let p = list(Some(&format!("order_id={}", "9".repeat(5000)))).unwrap();
        assert_eq!(p.value.len(), 5000);
    }
}
