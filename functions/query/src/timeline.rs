//! A correlation's timeline, pure: summaries in event-time order become steps with the time between them and
//! the services involved.

use serde::Serialize;
use shared::model::Summary;

/// One step of a correlation's flow.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Step {
    #[serde(flatten)]
    pub notification: Summary,
    /// Milliseconds since the previous step (`null` for the first).
    pub since_previous_ms: Option<i64>,
    /// Milliseconds since the first step.
    pub since_start_ms: i64,
}

/// The flow of one correlation id across services, in event-time order.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Timeline {
    pub correlation_id: String,
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: i64,
    /// The services involved, in the order they first appear.
    pub services: Vec<String>,
    pub steps: Vec<Step>,
    /// Set when the flow has more steps than one answer holds: pass as `cursor` for the rest.
    pub next_cursor: Option<String>,
}

fn millis_between(a: &str, b: &str) -> Option<i64> {
    let a = chrono::DateTime::parse_from_rfc3339(a).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b).ok()?;
    Some((b - a).num_milliseconds())
}

/// Builds a timeline from summaries in event-time order.
pub fn build_timeline(correlation_id: &str, items: Vec<Summary>, next_cursor: Option<String>) -> Option<Timeline> {
    let first = items.first()?.occurred_at.clone();
    let last = items.last()?.occurred_at.clone();
    let mut services: Vec<String> = Vec::new();
    let mut previous: Option<String> = None;
    let mut steps = Vec::with_capacity(items.len());
    for summary in items {
        if let Some(service) = &summary.fields.source_service {
            if !services.contains(service) {
                services.push(service.clone());
            }
        }
        let since_previous_ms = previous
            .as_deref()
            .and_then(|p| millis_between(p, &summary.occurred_at));
        let since_start_ms = millis_between(&first, &summary.occurred_at).unwrap_or(0);
        previous = Some(summary.occurred_at.clone());
        steps.push(Step {
            notification: summary,
            since_previous_ms,
            since_start_ms,
        });
    }
    Some(Timeline {
        correlation_id: correlation_id.to_owned(),
        duration_ms: millis_between(&first, &last).unwrap_or(0),
        started_at: first,
        ended_at: last,
        services,
        steps,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::model::{Extracted, PayloadFormat};

    fn step(id: &str, at: &str, service: Option<&str>) -> Summary {
        Summary {
            id: id.into(),
            source_topic: "t".into(),
            partition: 0,
            offset: Some(1),
            kafka_timestamp: None,
            timestamp_type: None,
            key: None,
            fields: Extracted {
                source_service: service.map(str::to_owned),
                correlation_id: Some("c-1".into()),
                ..Default::default()
            },
            occurred_at: at.into(),
            received_at: at.into(),
            payload_format: PayloadFormat::Json,
            payload_size: 2,
            schema_id: None,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn steps_carry_the_time_since_the_previous_and_the_first_and_services_in_first_seen_order() {
        let timeline = build_timeline(
            "c-1",
            vec![
                step("a", "2024-01-01T00:00:00.000000Z", Some("orders")),
                step("b", "2024-01-01T00:00:01.500000Z", Some("payments")),
                step("c", "2024-01-01T00:00:01.500000Z", None),
                step("d", "2024-01-01T00:01:00.000000Z", Some("orders")),
            ],
            Some("next".into()),
        )
        .expect("a timeline of four steps");
        assert_eq!(timeline.correlation_id, "c-1");
        assert_eq!(timeline.started_at, "2024-01-01T00:00:00.000000Z");
        assert_eq!(timeline.ended_at, "2024-01-01T00:01:00.000000Z");
        assert_eq!(timeline.duration_ms, 60_000);
        assert_eq!(timeline.services, ["orders", "payments"]);
        let gaps: Vec<(Option<i64>, i64)> = timeline
            .steps
            .iter()
            .map(|s| (s.since_previous_ms, s.since_start_ms))
            .collect();
        assert_eq!(
            gaps,
            [
                (None, 0),
                (Some(1_500), 1_500),
                (Some(0), 1_500),
                (Some(58_500), 60_000)
            ]
        );
        assert_eq!(timeline.next_cursor.as_deref(), Some("next"));
    }

    #[test]
    fn no_steps_is_no_timeline_and_an_unreadable_time_is_no_gap() {
        assert!(build_timeline("c-1", Vec::new(), None).is_none());
        let timeline = build_timeline(
            "c-1",
            vec![step("a", "2024-01-01T00:00:00Z", None), step("b", "not a time", None)],
            None,
        )
        .expect("a timeline");
        assert_eq!(timeline.steps[1].since_previous_ms, None);
        assert_eq!(timeline.steps[1].since_start_ms, 0);
        assert!(timeline.services.is_empty());
    }
}
