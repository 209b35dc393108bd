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

/// Offsets of delivered batches whose commit failed, shared by the pollers of one mapping: the next offset of
/// each partition, and which pollers have since been assigned partitions without it.
#[derive(Debug)]
pub struct Uncommitted {
    pending: Mutex<BTreeMap<Partition, Pending>>,
    pollers: usize,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    offset: i64,
    /// Bit i: poller i has been given an assignment without this partition since it was remembered.
    passed_over: u64,
}

impl Uncommitted {
    pub fn new(pollers: usize) -> Self {
        Uncommitted {
            pending: Mutex::new(BTreeMap::new()),
            pollers: pollers.clamp(1, 64),
        }
    }

    /// Remembers `offsets` (partition, next offset) as delivered but not committed.
    pub fn remember(&self, offsets: &BTreeMap<Partition, i64>) {
        if let Ok(mut pending) = self.pending.lock() {
            for (partition, offset) in offsets {
                let entry = pending.entry(partition.clone()).or_insert(Pending {
                    offset: *offset,
                    passed_over: 0,
                });
                entry.offset = entry.offset.max(*offset);
                entry.passed_over = 0;
            }
        }
    }

    /// Forgets what `offsets`, now committed, cover.
    pub fn forget(&self, offsets: &BTreeMap<Partition, i64>) {
        if let Ok(mut pending) = self.pending.lock() {
            for (partition, offset) in offsets {
                if pending.get(partition).is_some_and(|pending| pending.offset <= *offset) {
                    pending.remove(partition);
                }
            }
        }
    }

    /// The pending offsets among `assigned`, given to poller `poller`. A partition that every poller of the
    /// mapping has since been assigned without went to a consumer of another process, which fetches it from the
    /// committed offset and may commit further: it is forgotten, so that it never moves that offset back.
    fn assigned(&self, poller: usize, assigned: &TopicPartitionList) -> BTreeMap<Partition, i64> {
        let Ok(mut pending) = self.pending.lock() else {
            return BTreeMap::new();
        };
        let mine: BTreeSet<Partition> = assigned
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let everyone = if self.pollers >= 64 {
            u64::MAX
        } else {
            (1u64 << self.pollers) - 1
        };
        let mut found = BTreeMap::new();
        pending.retain(|partition, entry| {
            if mine.contains(partition) {
                found.insert(partition.clone(), entry.offset);
                entry.passed_over = 0;
                return true;
            }
            entry.passed_over |= 1 << poller.min(63);
            entry.passed_over & everyone != everyone
        });
        found
    }
}

fn offsets_of(list: &TopicPartitionList) -> BTreeMap<Partition, i64> {
    list.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some(((e.topic().to_owned(), e.partition()), offset)),
            _ => None,
        })
        .collect()
}

/// The consumer context of one poller.
pub struct PollerContext {
    /// Partitions revoked since the poller last looked.
    revoked: Mutex<BTreeSet<Partition>>,
    /// Assignments received, by every poller of the mapping.
    rebalances: Arc<AtomicU64>,
    /// Delivered but uncommitted offsets, shared by every poller of the mapping.
    uncommitted: Arc<Uncommitted>,
    /// This poller's number in the mapping.
    index: usize,
}

impl PollerContext {
    pub fn new(rebalances: Arc<AtomicU64>, uncommitted: Arc<Uncommitted>, index: usize) -> Self {
        PollerContext {
            revoked: Mutex::new(BTreeSet::new()),
            rebalances,
            uncommitted,
            index,
        }
    }

    /// An assignment that includes partitions with delivered, uncommitted records starts them after those
    /// records, and commits that (asynchronously: this runs inside the poller's `recv`, on the runtime's thread,
    /// where a blocking broker call would stall every task). The offsets are forgotten only once a commit covering
    /// them succeeds (`commit_callback`, or a later batch's commit), so a refused commit here leaves them for the
    /// partition's next owner in the mapping.
    fn resume_after_delivered(&self, consumer: &BaseConsumer<Self>, assigned: &mut TopicPartitionList) {
        let pending = self.uncommitted.assigned(self.index, assigned);
        if pending.is_empty() {
            return;
        }
        let mut resume = TopicPartitionList::new();
        for (key, offset) in pending {
            let set: KafkaResult<()> = assigned.set_partition_offset(&key.0, key.1, Offset::Offset(offset));
            if set.is_ok() {
                let _ = resume.add_partition_offset(&key.0, key.1, Offset::Offset(offset));
            }
        }
        tracing::info!(
            partitions = ?names(&resume),
            "resuming after batches that were delivered but not committed (the commit failed in a rebalance)"
        );
        if let Err(err) = consumer.commit(&resume, CommitMode::Async) {
            tracing::warn!(error = %err, "the delayed commit failed too; the next batch's commit covers it");
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
    /// A commit that went through covers the delivered offsets kept for it.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if result.is_ok() {
            self.uncommitted.forget(&offsets_of(offsets));
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn list(partitions: &[(&str, i32)]) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for (topic, partition) in partitions {
            list.add_partition(topic, *partition);
        }
        list
    }

    fn offsets(entries: &[(&str, i32, i64)]) -> BTreeMap<Partition, i64> {
        entries
            .iter()
            .map(|(topic, partition, offset)| ((topic.to_string(), *partition), *offset))
            .collect()
    }

    #[test]
    fn delivered_offsets_go_to_the_partitions_next_owner_in_the_mapping_until_a_commit_covers_them() {
        let kept = Uncommitted::new(2);
        kept.remember(&offsets(&[("t", 0, 150), ("t", 1, 80)]));
        assert_eq!(kept.assigned(1, &list(&[("t", 1)])), offsets(&[("t", 1, 80)]));
        assert_eq!(kept.assigned(0, &list(&[("t", 0)])), offsets(&[("t", 0, 150)]));
        // The resumed commit may be refused too: kept until a commit covers it.
        assert_eq!(kept.assigned(0, &list(&[("t", 0)])), offsets(&[("t", 0, 150)]));
        kept.forget(&offsets(&[("t", 0, 149)]));
        assert_eq!(
            kept.assigned(0, &list(&[("t", 0)])).len(),
            1,
            "a lower commit does not cover it"
        );
        kept.forget(&offsets(&[("t", 0, 150), ("t", 1, 90)]));
        assert!(kept.assigned(0, &list(&[("t", 0), ("t", 1)])).is_empty());
        // A later refused commit of the same partition keeps the furthest offset.
        kept.remember(&offsets(&[("t", 0, 150)]));
        kept.remember(&offsets(&[("t", 0, 120)]));
        assert_eq!(kept.assigned(1, &list(&[("t", 0)])), offsets(&[("t", 0, 150)]));
    }

    #[test]
    fn a_partition_every_poller_was_assigned_without_is_forgotten_and_never_moves_another_consumer_back() {
        let kept = Uncommitted::new(2);
        kept.remember(&offsets(&[("t", 0, 150)]));
        assert!(kept.assigned(0, &list(&[("t", 1)])).is_empty());
        assert_eq!(
            kept.assigned(0, &list(&[("t", 0)])).len(),
            1,
            "one poller passing it over is not enough"
        );
        assert!(kept.assigned(0, &list(&[("t", 1)])).is_empty());
        assert!(kept.assigned(1, &list(&[("t", 2)])).is_empty());
        assert!(
            kept.assigned(0, &list(&[("t", 0)])).is_empty(),
            "both pollers were assigned without it: a consumer of another process had it"
        );
    }
}
