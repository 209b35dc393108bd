//! Change events: Debezium's envelope (`before`, `after`, `source`, `op`, `ts_ms`), bare or inside Kafka
//! Connect's JsonConverter wrapper (`{"schema": ..., "payload": ...}`).
//!
//! The row the event is about is `after`, or `before` for a delete; ids are read from it. The row of a table is
//! a business object, so its own `type` or `source` columns are not the event's, and its `id` is the id of the
//! entity the table holds (`orders.id` is an order id). The event type is `{table}.{operation}`
//! (`orders.create`) unless the row carries one of its own; the event time is the database's change time.
//! ([Debezium: change event values](https://debezium.io/documentation/reference/stable/connectors/postgresql.html#postgresql-change-event-values))

use chrono::{DateTime, Utc};

use super::json::Json;
use super::time::parse_epoch;
use super::vocabulary::{canonical, is_canonical};

/// What a change event says, read from its envelope.
pub(super) struct ChangeEvent<'j, 'a> {
    /// Debezium's operation code: `c`, `u`, `d`, `r`, `t` or `m`.
    pub op: &'j str,
    /// The row the event is about (`after`, or `before` for a delete), and where it is.
    pub row: Option<(&'static str, &'j Json<'a>)>,
    /// The table alone (`orders`), for the event type and the entity its rows are.
    pub table_name: Option<&'j str>,
    /// `database.schema.table` with the parts the connector gives.
    pub table: Option<String>,
    pub connector: Option<&'j str>,
    /// When the database made the change (`source.ts_ms`), else when the connector read it (`ts_ms`).
    pub changed_at: Option<DateTime<Utc>>,
}

fn member<'j, 'a>(members: &'j [(std::borrow::Cow<'a, str>, Json<'a>)], name: &str) -> Option<&'j Json<'a>> {
    members.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn text<'j>(value: Option<&'j Json<'_>>) -> Option<&'j str> {
    match value {
        Some(Json::String(text)) if !text.is_empty() => Some(text.as_ref()),
        _ => None,
    }
}

/// Unwraps Kafka Connect's JsonConverter envelope (`schemas.enable=true`): an object of exactly `schema` and
/// `payload` is its `payload`, however many times it is wrapped (at most a few).
pub(super) fn unwrap_connect<'j, 'a>(mut value: &'j Json<'a>) -> &'j Json<'a> {
    for _ in 0..4 {
        let Some(members) = value.as_object() else { break };
        let wrapper = members.len() == 2
            && members
                .iter()
                .any(|(n, v)| n == "schema" && matches!(v, Json::Object(_) | Json::Null))
            && members.iter().any(|(n, _)| n == "payload");
        match member(members, "payload") {
            Some(payload) if wrapper => value = payload,
            _ => break,
        }
    }
    value
}

/// The change event `value` is, if it is one: an object with an operation code `op`, a `source` object, and a
/// `before` or `after`.
pub(super) fn change_event<'j, 'a>(value: &'j Json<'a>) -> Option<ChangeEvent<'j, 'a>> {
    let members = value.as_object()?;
    let op = text(member(members, "op")).filter(|op| ["c", "u", "d", "r", "t", "m"].contains(op))?;
    let source = member(members, "source")?.as_object()?;
    let before = member(members, "before");
    let after = member(members, "after");
    // A row change names its rows (null included), a logical decoding message (`m`) its `message`, a truncate
    // (which has no rows) a source with a connector and a table: an event that has only an `op` and some
    // `source` is some other event.
    let shaped = match op {
        "m" => member(members, "message").is_some_and(|message| message.as_object().is_some()),
        "t" => {
            before.is_some()
                || after.is_some()
                || (text(member(source, "connector")).is_some() && text(member(source, "table")).is_some())
        }
        _ => before.is_some() || after.is_some(),
    };
    if !shaped {
        return None;
    }
    let row = match op {
        "d" => before.map(|row| ("$.before", row)),
        _ => after.map(|row| ("$.after", row)),
    }
    .filter(|(_, row)| !matches!(row, Json::Null));
    let table_name = text(member(source, "table")).or_else(|| text(member(source, "collection")));
    let parts: Vec<&str> = ["db", "schema"]
        .iter()
        .filter_map(|name| text(member(source, name)))
        .chain(table_name)
        .collect();
    // A zero or negative time is no time (Debezium writes 0 where it has none).
    let epoch = |value: Option<&Json<'_>>| match value {
        Some(Json::Number(number)) => parse_epoch(number).filter(|time| time.timestamp_millis() > 0),
        _ => None,
    };
    Some(ChangeEvent {
        op,
        row,
        table_name,
        table: (!parts.is_empty()).then(|| parts.join(".")),
        connector: text(member(source, "connector")),
        changed_at: epoch(member(source, "ts_ms")).or_else(|| epoch(member(members, "ts_ms"))),
    })
}

/// The operation as the event type says it.
pub(super) fn verb(op: &str) -> &'static str {
    match op {
        "c" => "create",
        "u" => "update",
        "d" => "delete",
        "r" => "read",
        "t" => "truncate",
        _ => "message",
    }
}

/// The entity a table's rows are (`orders` and `order` hold orders), among those whose ids link records.
pub(super) fn entity_of(table: &str) -> Option<&'static str> {
    let canon = canonical(table);
    ["order", "customer", "correlation"]
        .into_iter()
        .find(|entity| is_canonical(&canon, entity) || canon.strip_suffix('s').is_some_and(|one| one == *entity))
}

#[cfg(test)]
mod tests {
    use super::super::json::parse;
    use super::*;

    #[test]
    fn a_debezium_envelope_names_its_row_table_and_time() {
        let value = parse(
            r#"{"before": null, "after": {"id": 42}, "source": {"connector": "postgresql", "db": "shop",
                "schema": "public", "table": "orders", "ts_ms": 1709287200000}, "op": "c", "ts_ms": 1709287201000}"#,
        )
        .unwrap();
        let change = change_event(&value).unwrap();
        assert_eq!(change.op, "c");
        assert_eq!(change.row.map(|(path, _)| path), Some("$.after"));
        assert_eq!(change.table.as_deref(), Some("shop.public.orders"));
        assert_eq!(change.table_name, Some("orders"));
        assert_eq!(change.connector, Some("postgresql"));
        assert_eq!(change.changed_at.unwrap().to_rfc3339(), "2024-03-01T10:00:00+00:00");
    }

    #[test]
    fn a_delete_is_about_the_row_before_it() {
        let value = parse(r#"{"before": {"id": 1}, "after": null, "source": {"table": "t"}, "op": "d"}"#).unwrap();
        let change = change_event(&value).unwrap();
        assert_eq!(change.row.map(|(path, _)| path), Some("$.before"));
        assert!(change.changed_at.is_none());
        let truncate =
            parse(r#"{"before": null, "after": null, "source": {"table": "t", "ts_ms": 0}, "op": "t", "ts_ms": 1709287200000}"#)
                .unwrap();
        let change = change_event(&truncate).unwrap();
        assert!(change.row.is_none());
        assert_eq!(
            change.changed_at.unwrap().to_rfc3339(),
            "2024-03-01T10:00:00+00:00",
            "the connector's time when the source's is zero"
        );
        let truncate = parse(r#"{"source": {"connector": "postgresql", "table": "t"}, "op": "t"}"#).unwrap();
        assert_eq!(
            change_event(&truncate).map(|c| c.op),
            Some("t"),
            "a truncate has no rows"
        );
    }

    #[test]
    fn what_only_looks_like_one_is_not_a_change_event() {
        for text in [
            r#"{"op": "c", "after": {"id": 1}}"#,
            r#"{"op": "create", "source": {}, "after": {"id": 1}}"#,
            r#"{"op": "c", "source": "web", "after": {"id": 1}}"#,
            r#"{"op": 1, "source": {}, "after": {"id": 1}}"#,
            r#"{"op": "c", "source": {}}"#,
            r#"{"op": "m", "source": {"app": "web"}, "orderId": "o-1"}"#,
            r#"{"op": "t", "source": {"app": "web"}, "orderId": "o-1"}"#,
            r#"["op", "c"]"#,
        ] {
            assert!(change_event(&parse(text).unwrap()).is_none(), "{text}");
        }
    }

    #[test]
    fn the_json_converter_wrapper_is_unwrapped_and_nothing_else_is() {
        let wrapped =
            parse(r#"{"schema": {"type": "struct"}, "payload": {"schema": null, "payload": {"a": 1}}}"#).unwrap();
        assert_eq!(unwrap_connect(&wrapped).as_object().unwrap()[0].0, "a");
        for text in [
            r#"{"schema": {"type": "struct"}, "payload": {"a": 1}, "more": 1}"#,
            r#"{"schema": "v1", "payload": {"a": 1}}"#,
            r#"{"payload": {"a": 1}}"#,
        ] {
            let value = parse(text).unwrap();
            assert!(std::ptr::eq(unwrap_connect(&value), &value), "{text}");
        }
    }

    #[test]
    fn a_tables_rows_are_the_entity_it_is_named_for() {
        assert_eq!(entity_of("orders"), Some("order"));
        assert_eq!(entity_of("Order"), Some("order"));
        assert_eq!(entity_of("customers"), Some("customer"));
        assert_eq!(entity_of("order_items"), None);
        assert_eq!(entity_of("payments"), None);
        assert_eq!(entity_of(""), None);
        assert_eq!(verb("c"), "create");
        assert_eq!(verb("r"), "read");
    }
}
