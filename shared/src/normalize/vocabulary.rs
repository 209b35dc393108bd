//! The vocabulary of normalization: the envelopes searched, what each field may be called (in a value and in
//! Kafka headers), name matching by canonical form, and the topic-to-service map.
//!
//! Field names are compared by their *canonical* form: letters and digits only, lower-cased, so
//! `customerId`, `customer_id`, `CustomerID`, `customer-id` and `Customer.Id` are all `customerid`.

use std::collections::BTreeMap;

/// The members of the value that are searched as envelopes, by canonical name.
pub(super) const ENVELOPES: [&str; 9] = [
    "metadata",
    "meta",
    "headers",
    "data",
    "payload",
    "detail",
    "body",
    "event",
    "attributes",
];

/// How deep envelopes are followed (`detail.data.orderId` is two envelopes down).
pub(super) const MAX_ENVELOPE_DEPTH: usize = 2;

/// What a field is called, wherever it is looked for.
pub(super) struct FieldSpec {
    pub(super) label: &'static str,
    /// Canonical member names in the value, in priority order.
    pub(super) names: &'static [&'static str],
    /// A nested object whose `id` is this field (`order: {id}`), by canonical name.
    pub(super) entity: Option<&'static str>,
    /// Canonical Kafka header names, in priority order (CloudEvents binary mode first).
    pub(super) headers: &'static [&'static str],
}

pub(super) const EVENT_TYPE: FieldSpec = FieldSpec {
    label: "event_type",
    // `detail-type` is EventBridge's; `__TypeId__` is the class name Spring Kafka's JsonSerializer sends.
    names: &["eventtype", "type", "eventname", "detailtype", "messagetype", "event"],
    entity: None,
    headers: &[
        "cetype",
        "eventtype",
        "xeventtype",
        "eventname",
        "messagetype",
        "type",
        "typeid",
    ],
};
pub(super) const CORRELATION_ID: FieldSpec = FieldSpec {
    label: "correlation_id",
    names: &["correlationid", "xcorrelationid", "correlation"],
    entity: Some("correlation"),
    headers: &["correlationid", "xcorrelationid", "cecorrelationid", "correlation"],
};
pub(super) const ORDER_ID: FieldSpec = FieldSpec {
    label: "order_id",
    names: &["orderid"],
    entity: Some("order"),
    headers: &["orderid", "xorderid", "ceorderid"],
};
pub(super) const CUSTOMER_ID: FieldSpec = FieldSpec {
    label: "customer_id",
    names: &["customerid"],
    entity: Some("customer"),
    headers: &["customerid", "xcustomerid", "cecustomerid"],
};
pub(super) const SOURCE_SERVICE: FieldSpec = FieldSpec {
    label: "source_service",
    names: &["sourceservice", "source", "service", "servicename", "producer"],
    entity: None,
    headers: &[
        "cesource",
        "sourceservice",
        "xsourceservice",
        "source",
        "service",
        "producer",
    ],
};
pub(super) const EVENT_ID: FieldSpec = FieldSpec {
    label: "event_id",
    names: &["eventid", "messageid", "id"],
    entity: None,
    headers: &["ceid", "eventid", "xeventid", "messageid", "xmessageid", "id"],
};
/// A change event's row is a business object: only names that say so are the event's type, id or service,
/// never the row's own `type`, `id` or `source` columns.
pub(super) const ROW_EVENT_TYPE: FieldSpec = FieldSpec {
    label: "event_type",
    names: &["eventtype", "eventname", "detailtype", "messagetype"],
    entity: None,
    headers: EVENT_TYPE.headers,
};
pub(super) const ROW_EVENT_ID: FieldSpec = FieldSpec {
    label: "event_id",
    names: &["eventid", "messageid"],
    entity: None,
    headers: EVENT_ID.headers,
};
pub(super) const ROW_SOURCE_SERVICE: FieldSpec = FieldSpec {
    label: "source_service",
    names: &["sourceservice", "servicename"],
    entity: None,
    headers: SOURCE_SERVICE.headers,
};
pub(super) const OCCURRED_AT: FieldSpec = FieldSpec {
    label: "occurred_at",
    names: &[
        "occurredat",
        "occurredon",
        "eventtime",
        "eventtimestamp",
        "time",
        "timestamp",
        "ts",
        "createdat",
        "creationdate",
        "emittedat",
        "publishedat",
        "sentat",
    ],
    entity: None,
    headers: &["cetime", "occurredat", "eventtime", "timestamp", "time"],
};

/// Maps topics to the service that owns them, for records that do not name their source. A name ending in
/// `*` matches every topic that starts with what comes before it; exact names win over patterns, and
/// longer patterns over shorter ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicServiceMap {
    exact: BTreeMap<String, String>,
    prefixes: Vec<(String, String)>,
}

impl TopicServiceMap {
    /// Parses `topic=service,orders.*=orders-service`. Empty text is an empty map.
    pub fn parse(text: &str) -> Result<TopicServiceMap, String> {
        let mut map = TopicServiceMap::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (topic, service) = entry
                .split_once('=')
                .map(|(t, s)| (t.trim(), s.trim()))
                .filter(|(t, s)| !t.is_empty() && !s.is_empty())
                .ok_or_else(|| format!("{entry:?} is not TOPIC=SERVICE"))?;
            map.insert(topic, service);
        }
        Ok(map)
    }

    pub fn insert(&mut self, topic: &str, service: &str) {
        match topic.strip_suffix('*') {
            Some(prefix) => {
                self.prefixes.push((prefix.to_owned(), service.to_owned()));
                self.prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
            }
            None => {
                self.exact.insert(topic.to_owned(), service.to_owned());
            }
        }
    }

    pub fn service_for(&self, topic: &str) -> Option<&str> {
        self.exact.get(topic).map(String::as_str).or_else(|| {
            self.prefixes
                .iter()
                .find(|(prefix, _)| topic.starts_with(prefix.as_str()))
                .map(|(_, service)| service.as_str())
        })
    }
}

/// The canonical form of a field name: letters and digits only, lower-cased.
pub fn canonical(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `canonical(name) == canon`, without building the canonical form: names are compared many times per
/// record (every member of every scope against every known name), so this is the hot loop of normalization.
pub fn is_canonical(name: &str, canon: &str) -> bool {
    // Field names are ASCII almost always: compared byte by byte, without Unicode tables. ASCII letters lower-case
    // to one ASCII letter, so the canonical form of an ASCII name is never longer than the name.
    if name.is_ascii() {
        if canon.len() > name.len() {
            return false;
        }
        let mut expected = canon.bytes();
        for byte in name.bytes().filter(u8::is_ascii_alphanumeric) {
            if expected.next() != Some(byte.to_ascii_lowercase()) {
                return false;
            }
        }
        return expected.next().is_none();
    }
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .eq(canon.chars())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_ignore_case_and_separators() {
        for name in [
            "customerId",
            "customer_id",
            "CustomerID",
            "customer-id",
            "Customer.Id",
            "CUSTOMER ID",
        ] {
            assert_eq!(canonical(name), "customerid", "{name}");
            assert!(is_canonical(name, "customerid"), "{name}");
        }
        for (name, canon) in [
            ("customer", "customerid"),
            ("customerIdx", "customerid"),
            ("", ""),
            ("__", ""),
            ("İd", "i\u{307}d"),
            ("ID", "Id"),
            ("Id", "idx"),
            ("order_ID_", "orderid"),
            ("orderIdé", "orderidé"),
            ("ÉventType", "éventtype"),
            ("x-1", "x1"),
            ("x-1", "x"),
        ] {
            assert_eq!(is_canonical(name, canon), canonical(name) == canon, "{name} {canon}");
        }
    }

    #[test]
    fn topic_service_map_prefers_exact_names_then_longest_patterns() {
        let map = TopicServiceMap::parse("orders=order-svc, orders.*=orders-any, orders.v2.*=orders-v2,pay*=payments")
            .unwrap();
        assert_eq!(map.service_for("orders"), Some("order-svc"));
        assert_eq!(map.service_for("orders.created"), Some("orders-any"));
        assert_eq!(map.service_for("orders.v2.created"), Some("orders-v2"));
        assert_eq!(map.service_for("payments"), Some("payments"));
        assert_eq!(map.service_for("shipping"), None);
        assert!(TopicServiceMap::parse("orders").is_err());
        assert!(TopicServiceMap::parse("=x").is_err());
        assert_eq!(TopicServiceMap::parse("").unwrap(), TopicServiceMap::default());
    }
}
