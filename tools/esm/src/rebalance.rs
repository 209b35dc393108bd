//! Rebalances, as a poller sees them.
//!
//! librdkafka runs a consumer's rebalance callbacks inside that consumer's own `recv`, and a poller does not call
//! `recv` while a batch is with the function: the group waits for it to poll again, which it does only once the
//! batch is committed. So a partition is never taken away from a batch in delivery. What a rebalance can take
//! away is the batch being built: records already fetched from a revoked partition are dropped from it, because
//! whoever is assigned the partition next (another poller, or this one again) fetches them again from the
//! committed offset. Delivering them as well would deliver them twice, and commit a partition this poller no
//! longer owns, which could move the group's offset back past records another poller has committed.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};

use crate::event::{BatchBuilder, Record};

/// A topic and a partition number.
pub type Partition = (String, i32);

/// The consumer context of one poller.
pub struct PollerContext {
    /// Partitions revoked since the poller last looked.
    revoked: Mutex<BTreeSet<Partition>>,
    /// Assignments received, by every poller of the mapping.
    rebalances: Arc<AtomicU64>,
}

impl PollerContext {
    pub fn new(rebalances: Arc<AtomicU64>) -> Self {
        PollerContext {
            revoked: Mutex::new(BTreeSet::new()),
            rebalances,
        }
    }

    /// Drops from `batch` the records of partitions revoked since the last call; returns how many. Called after
    /// every `recv`, the only place where a rebalance runs, so that only records fetched before the revocation are
    /// dropped.
    pub fn drop_revoked(&self, batch: &mut BatchBuilder) -> usize {
        let revoked = match self.revoked.lock() {
            Ok(mut revoked) if !revoked.is_empty() => std::mem::take(&mut *revoked),
            _ => return 0,
        };
        batch.remove(|record: &Record| revoked.contains(&(record.topic.clone(), record.partition)))
    }
}

fn names(partitions: &TopicPartitionList) -> Vec<String> {
    partitions
        .elements()
        .iter()
        .map(|e| format!("{}-{}", e.topic(), e.partition()))
        .collect()
}

impl ClientContext for PollerContext {}

impl ConsumerContext for PollerContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            if let Ok(mut revoked) = self.revoked.lock() {
                revoked.extend(
                    partitions
                        .elements()
                        .iter()
                        .map(|e| (e.topic().to_owned(), e.partition())),
                );
            }
            tracing::debug!(partitions = ?names(partitions), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                self.rebalances.fetch_add(1, Ordering::Relaxed);
                tracing::info!(partitions = ?names(partitions), "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(err) => tracing::warn!(error = %err, "rebalance failed"),
        }
    }
}
