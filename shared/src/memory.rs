//! `InMemoryStore`: the in-memory double of the store's ports, for unit and handler tests only (feature
//! `test-support`): an ordered map of notifications by id. Indexes are the map filtered by a lookup's field,
//! in event-time order, paged the way DynamoDB pages them (the limit counts records before the event-type
//! filter). Faults are injected per call.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::error::{Retry, StoreError};
use crate::model::Notification;
use crate::ports::{
    Attempt, Failure, Found, IndexPage, IndexQuery, Indexed, NotificationIndex, NotificationReader, NotificationSink,
    NotificationSource, Position, ReadError, ReadOptions, StoreReport, WriteError,
};

/// Faults to inject.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Every call fails with a transient error, as if the store were down.
    pub down: bool,
    /// Records with a payload larger than this are not stored (a transient error, as if the object store were
    /// failing).
    pub fail_payloads_over: Option<usize>,
}

#[derive(Default)]
struct State {
    notifications: BTreeMap<String, Notification>,
    faults: Faults,
    store_calls: usize,
}

/// The in-memory double.
#[derive(Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
}

impl InMemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Stores `notification` as it is (seeding a test).
    pub fn insert(&self, notification: Notification) {
        self.lock().notifications.insert(notification.id.clone(), notification);
    }

    pub fn len(&self) -> usize {
        self.lock().notifications.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many times a batch was handed to the sink.
    pub fn store_calls(&self) -> usize {
        self.lock().store_calls
    }
}

fn down() -> StoreError {
    StoreError::new("InMemoryStore", Retry::Transient, "connection refused (injected)")
}

/// The sort key of a notification in an index: event time, then id.
fn sort_key(notification: &Notification) -> String {
    format!("{}#{}", notification.occurred_at, notification.id)
}

#[async_trait]
impl NotificationSink for InMemoryStore {
    async fn store(&self, records: &dyn NotificationSource, _deadline: Instant) -> StoreReport {
        // Redelivered duplicates collapse, the last one winning, as DynamoDB's writer does.
        let mut by_id = BTreeMap::new();
        for index in 0..records.len() {
            by_id.insert(records.id(index), index);
        }
        let mut state = self.lock();
        state.store_calls += 1;
        let mut report = StoreReport::default();
        for (id, index) in by_id {
            let notification = records.build(index);
            let fault = if state.faults.down {
                Some(down())
            } else if state
                .faults
                .fail_payloads_over
                .is_some_and(|limit| notification.payload_size() > limit)
            {
                Some(StoreError::new("PutObject", Retry::Transient, "SlowDown (injected)"))
            } else {
                None
            };
            match fault {
                Some(error) => report.failed.push(Failure {
                    id,
                    error: std::sync::Arc::new(WriteError::OutOfTime {
                        attempts: 1,
                        last: Attempt::Failed(error),
                    }),
                }),
                None => {
                    state.notifications.insert(id, notification);
                    report.stored += 1;
                }
            }
        }
        report
    }
}

#[async_trait]
impl NotificationIndex for InMemoryStore {
    async fn page(&self, query: &IndexQuery) -> Result<IndexPage, ReadError> {
        let state = self.lock();
        if state.faults.down {
            return Err(down().into());
        }
        let until = query.until.as_ref().map(|u| format!("{u}#~"));
        let mut matching: Vec<(String, &Notification)> = state
            .notifications
            .values()
            .filter(|n| query.lookup.field(&n.fields) == Some(query.value.as_str()))
            .map(|n| (sort_key(n), n))
            .filter(|(sk, _)| query.since.as_ref().is_none_or(|since| sk >= since))
            .filter(|(sk, _)| until.as_ref().is_none_or(|until| sk <= until))
            .collect();
        matching.sort_by(|a, b| a.0.cmp(&b.0));
        if !query.ascending {
            matching.reverse();
        }
        if let Some(after) = &query.after {
            matching.retain(|(sk, _)| {
                if query.ascending {
                    *sk > after.sort_key
                } else {
                    *sk < after.sort_key
                }
            });
        }
        let limit = query.limit.max(1);
        let more = matching.len() > limit;
        matching.truncate(limit);
        let position = |sk: &str, n: &Notification| Position {
            id: n.id.clone(),
            index_key: query.value.clone(),
            sort_key: sk.to_owned(),
        };
        let last = if more {
            matching.last().map(|(sk, n)| position(sk, n))
        } else {
            None
        };
        let items = matching
            .iter()
            .filter(|(_, n)| query.event_type.is_none() || n.fields.event_type == query.event_type)
            .map(|(sk, n)| Indexed {
                summary: n.summary(),
                position: position(sk, n),
            })
            .collect();
        Ok(IndexPage { items, last })
    }
}

#[async_trait]
impl NotificationReader for InMemoryStore {
    /// Payloads are always in hand: the double has nowhere to link to.
    async fn read(&self, id: &str, _options: ReadOptions) -> Result<Option<Found>, ReadError> {
        let state = self.lock();
        if state.faults.down {
            return Err(down().into());
        }
        Ok(state.notifications.get(id).cloned().map(|notification| Found {
            notification,
            link: None,
        }))
    }
}

/// Thirty records of three event types over four orders, one customer and two correlations (`o-0`..`o-3`,
/// `c-1`, `k-0`/`k-1`), one second apart: the store the HTTP fuzzers run the router over.
pub fn sample_records() -> Vec<Notification> {
    let services = crate::normalize::TopicServiceMap::default();
    let context = crate::normalize::Context {
        received_at: chrono::Utc::now(),
        topic_services: &services,
        schemas: crate::normalize::Schemas::none(),
    };
    (0..30i64)
        .map(|offset| {
            let value = format!(
                r#"{{"eventType":"E{}","orderId":"o-{}","customerId":"c-1","correlationId":"k-{}","time":{}}}"#,
                offset % 3,
                offset % 4,
                offset % 2,
                1_700_000_000 + offset
            );
            let message = crate::model::KafkaMessage {
                topic: "t".into(),
                partition: 0,
                offset: Some(offset),
                timestamp: Some(1_700_000_000_000),
                timestamp_type: Some("CREATE_TIME".into()),
                key: None,
                value: Some(value.into_bytes()),
                headers: Vec::new(),
                warnings: Vec::new(),
                fingerprint: String::new(),
            };
            crate::normalize::normalize(&message, &context)
        })
        .collect()
}
