//! Rebalances, as a poller sees them.
//!
//! librdkafka runs a consumer's rebalance callbacks inside that consumer's own `recv`, and a poller does not call
//! `recv` while a batch is with the function: the group waits for it to poll again, which it does only once the
//! batch is committed. So a partition is never taken away from a batch in delivery. What a rebalance can take
//! away is the batch being built: records already fetched from a revoked partition are dropped from it, because
//! whoever is assigned the partition next (another poller, or this one again) fetches them again from the
//! committed offset. Delivering them as well would deliver them twice, and commit a partition this poller no
//! longer owns, which could move the group's offset back past records another poller has committed.
//!
//! A commit can also fail because the group is rebalancing (librdkafka's mock cluster refuses commits while
//! members rejoin). The batch was delivered, so its offsets are kept as [`Uncommitted`], shared by the pollers of
//! the mapping: whichever of them is assigned the partition next starts it after the delivered records, and
//! commits them, instead of fetching them again from the stale committed offset.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::event::{BatchBuilder, Record};

/// A topic and a partition number.
pub type Partition = (String, i32);

/// Offsets of delivered batches whose commit failed: the next offset of each partition.
#[derive(Debug, Default)]
pub struct Uncommitted(Mutex<BTreeMap<Partition, i64>>);

impl Uncommitted {
    /// Remembers `offsets` (partition, next offset) as delivered but not committed.
    pub fn remember(&self, offsets: &BTreeMap<Partition, i64>) {
        if let Ok(mut pending) = self.0.lock() {
            for (partition, offset) in offsets {
                let entry = pending.entry(partition.clone()).or_insert(*offset);
                *entry = (*entry).max(*offset);
            }
        }
    }

    /// Forgets what `offsets`, now committed, cover.
    pub fn forget(&self, offsets: &BTreeMap<Partition, i64>) {
        if let Ok(mut pending) = self.0.lock() {
            for (partition, offset) in offsets {
                if pending.get(partition).is_some_and(|pending| pending <= offset) {
                    pending.remove(partition);
                }
            }
        }
    }

    fn among(&self, partitions: &TopicPartitionList) -> BTreeMap<Partition, i64> {
        let Ok(pending) = self.0.lock() else {
            return BTreeMap::new();
        };
        partitions
            .elements()
            .iter()
            .filter_map(|e| {
                let key = (e.topic().to_owned(), e.partition());
                pending.get(&key).map(|offset| (key, *offset))
            })
            .collect()
    }
}

/// The consumer context of one poller.
pub struct PollerContext {
    /// Partitions revoked since the poller last looked.
    revoked: Mutex<BTreeSet<Partition>>,
    /// Assignments received, by every poller of the mapping.
    rebalances: Arc<AtomicU64>,
    /// Delivered but uncommitted offsets, shared by every poller of the mapping.
    uncommitted: Arc<Uncommitted>,
}

impl PollerContext {
    pub fn new(rebalances: Arc<AtomicU64>, uncommitted: Arc<Uncommitted>) -> Self {
        PollerContext {
            revoked: Mutex::new(BTreeSet::new()),
            rebalances,
            uncommitted,
        }
    }

    /// An assignment that includes partitions with delivered, uncommitted records starts them after those
    /// records, and commits that (asynchronously: this runs inside the poller's `recv`, on the runtime's thread,
    /// where a blocking broker call would stall every task). The group's committed offset is not looked up: a
    /// consumer of another process that committed further meanwhile would see those records once more, never
    /// fewer.
    fn resume_after_delivered(&self, consumer: &BaseConsumer<Self>, assigned: &mut TopicPartitionList) {
        let pending = self.uncommitted.among(assigned);
        if pending.is_empty() {
            return;
        }
        let mut resume = TopicPartitionList::new();
        let mut resumed = BTreeMap::new();
        for (key, offset) in pending {
            let set: KafkaResult<()> = assigned.set_partition_offset(&key.0, key.1, Offset::Offset(offset));
            if set.is_ok()
                && resume
                    .add_partition_offset(&key.0, key.1, Offset::Offset(offset))
                    .is_ok()
            {
                resumed.insert(key, offset);
            }
        }
        tracing::info!(
            partitions = ?names(&resume),
            "resuming after batches that were delivered but not committed (the commit failed in a rebalance)"
        );
        if let Err(err) = consumer.commit(&resume, CommitMode::Async) {
            tracing::warn!(error = %err, "the delayed commit failed too; the next batch's commit covers it");
        }
        self.uncommitted.forget(&resumed);
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
    /// The default strategy (pre-rebalance, assign or unassign, post-rebalance), with an assignment first
    /// started after any delivered records whose commit failed.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, partitions: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.resume_after_delivered(consumer, partitions);
                self.pre_rebalance(consumer, &Rebalance::Assign(partitions));
                let assigned = if cooperative {
                    consumer.incremental_assign(partitions)
                } else {
                    consumer.assign(partitions)
                };
                if let Err(err) = assigned {
                    tracing::warn!(error = %err, "could not take the assigned partitions");
                }
                self.post_rebalance(consumer, &Rebalance::Assign(partitions));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Revoke(partitions));
                let released = if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                };
                if let Err(err) = released {
                    tracing::warn!(error = %err, "could not give up the revoked partitions");
                }
                self.post_rebalance(consumer, &Rebalance::Revoke(partitions));
            }
            other => tracing::warn!(error = ?other, "rebalance failed"),
        }
    }

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
            Rebalance::Revoke(_) | Rebalance::Error(_) => {}
        }
    }
}
