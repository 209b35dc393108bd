//! Writing prepared items: S3 objects first, then items in BatchWriteItem requests of 25, several in flight,
//! UnprocessedItems re-sent and transient errors retried with exponential backoff and full jitter, all within
//! a deadline (the invocation's remaining time). Every record ends either stored or reported failed with why.

use std::collections::HashMap;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::item::{Item, PreparedItem};
use crate::store::{BatchPut, BlobPut, StoreError};
use crate::table;

/// DynamoDB's limit of requests in one BatchWriteItem.
pub const MAX_BATCH_ITEMS: usize = 25;

/// Exponential backoff with full jitter: attempt `n` sleeps a random time in `[0, min(cap, base * 2^n)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(25),
            cap: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// The ceiling of the sleep before retry `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A jittered sleep before retry `attempt`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_micros() as u64;
        Duration::from_micros(rand::random::<u64>() % ceiling.max(1))
    }
}

/// How writing behaves.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// BatchWriteItem requests (and S3 puts) in flight at once.
    pub concurrency: usize,
    pub backoff: Backoff,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            concurrency: 8,
            backoff: Backoff::default(),
        }
    }
}

/// A record that could not be stored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub id: String,
    pub reason: String,
}

/// What happened to a set of items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub stored: usize,
    /// Requests sent again (after a transient error or for UnprocessedItems).
    pub retries: u64,
    /// Objects written to S3.
    pub blobs: usize,
    pub failed: Vec<Failure>,
}

/// Stores every item, or reports it failed. Items with the same id are written once (the last one wins).
pub async fn write_all(
    items: Vec<PreparedItem>,
    table: &dyn BatchPut,
    blobs: &dyn BlobPut,
    bucket: Option<&str>,
    options: WriteOptions,
    deadline: Instant,
) -> WriteOutcome {
    let mut outcome = WriteOutcome::default();
    // BatchWriteItem rejects two requests for one key; redelivered duplicates collapse here.
    let mut by_id: HashMap<String, PreparedItem> = HashMap::new();
    for item in items {
        by_id.insert(item.id.clone(), item);
    }
    let mut order: Vec<String> = by_id.keys().cloned().collect();
    order.sort();

    // S3 objects first, so that no item ever points at an object that is not there.
    let with_blobs: Vec<&PreparedItem> = order
        .iter()
        .filter_map(|id| by_id.get(id))
        .filter(|i| !i.blobs.is_empty())
        .collect();
    let uploads: Vec<_> = with_blobs
        .into_iter()
        .map(|item| upload_blobs(item, blobs, bucket, options.backoff, deadline))
        .collect();
    let blob_results = run_bounded(uploads, options.concurrency).await;
    for (id, result) in blob_results {
        match result {
            Ok(retries) => {
                outcome.retries += retries;
                outcome.blobs += by_id.get(&id).map_or(0, |i| i.blobs.len());
            }
            Err(reason) => {
                by_id.remove(&id);
                outcome.failed.push(Failure { id, reason });
            }
        }
    }

    let ready: Vec<Item> = order.iter().filter_map(|id| by_id.remove(id)).map(|i| i.item).collect();
    let chunks: Vec<Vec<Item>> = ready.chunks(MAX_BATCH_ITEMS).map(<[Item]>::to_vec).collect();
    let writes: Vec<_> = chunks
        .into_iter()
        .map(|chunk| write_chunk(chunk, table, options.backoff, deadline))
        .collect();
    let results = run_bounded(writes, options.concurrency).await;
    for result in results {
        outcome.stored += result.stored;
        outcome.retries += result.retries;
        outcome.failed.extend(result.failed);
    }
    outcome.failed.sort_by(|a, b| a.id.cmp(&b.id));
    outcome
}

/// Runs `futures` with at most `limit` in flight; returns their outputs in completion order.
async fn run_bounded<F: std::future::Future>(futures: Vec<F>, limit: usize) -> Vec<F::Output> {
    let mut waiting = futures.into_iter();
    let mut running = FuturesUnordered::new();
    let mut outputs = Vec::new();
    loop {
        while running.len() < limit.max(1) {
            match waiting.next() {
                Some(future) => running.push(future),
                None => break,
            }
        }
        match running.next().await {
            Some(output) => outputs.push(output),
            None => return outputs,
        }
    }
}

/// Puts a record's S3 objects, retried; returns the record id and the retries, or why it failed.
async fn upload_blobs(
    item: &PreparedItem,
    blobs: &dyn BlobPut,
    bucket: Option<&str>,
    backoff: Backoff,
    deadline: Instant,
) -> (String, Result<u64, String>) {
    let mut retries = 0;
    let Some(bucket) = bucket else {
        return (item.id.clone(), Err("no payload bucket configured".to_owned()));
    };
    for blob in &item.blobs {
        let result = retry(backoff, deadline, &mut retries, || {
            blobs.put_blob(bucket, &blob.key, blob.bytes.clone(), &blob.sha256)
        })
        .await;
        if let Err(err) = result {
            return (item.id.clone(), Err(err));
        }
    }
    (item.id.clone(), Ok(retries))
}

struct ChunkResult {
    stored: usize,
    retries: u64,
    failed: Vec<Failure>,
}

fn item_id(item: &Item) -> String {
    match item.get(table::PARTITION_KEY) {
        Some(aws_sdk_dynamodb::types::AttributeValue::S(id)) => id.clone(),
        _ => String::new(),
    }
}

async fn write_chunk(chunk: Vec<Item>, table: &dyn BatchPut, backoff: Backoff, deadline: Instant) -> ChunkResult {
    let total = chunk.len();
    let mut pending = chunk;
    let mut retries = 0u64;
    let mut attempt = 0u32;
    loop {
        let reason = match table.batch_put(pending.clone()).await {
            Ok(unprocessed) if unprocessed.is_empty() => {
                return ChunkResult {
                    stored: total,
                    retries,
                    failed: Vec::new(),
                };
            }
            Ok(unprocessed) => {
                pending = unprocessed;
                format!("{} items left unprocessed by DynamoDB", pending.len())
            }
            Err(err) if err.is_transient() => err.to_string(),
            Err(err) if pending.len() > 1 => {
                // A permanent error on a batch: write the items one by one so only the culprit fails.
                let mut result = ChunkResult {
                    stored: 0,
                    retries,
                    failed: Vec::new(),
                };
                for item in pending.clone() {
                    let single = Box::pin(write_chunk(vec![item], table, backoff, deadline)).await;
                    result.stored += single.stored;
                    result.retries += single.retries;
                    result.failed.extend(single.failed);
                }
                result.stored += total - pending.len();
                tracing::warn!(error = %err, "batch rejected; wrote its items one by one");
                return result;
            }
            Err(err) => {
                return ChunkResult {
                    stored: total - pending.len(),
                    retries,
                    failed: pending
                        .iter()
                        .map(|i| Failure {
                            id: item_id(i),
                            reason: err.to_string(),
                        })
                        .collect(),
                };
            }
        };
        let delay = backoff.delay(attempt);
        if Instant::now() + delay >= deadline {
            let reason = format!("out of time after {} attempts; last: {reason}", attempt + 1);
            return ChunkResult {
                stored: total - pending.len(),
                retries,
                failed: pending
                    .iter()
                    .map(|i| Failure {
                        id: item_id(i),
                        reason: reason.clone(),
                    })
                    .collect(),
            };
        }
        tracing::debug!(attempt, pending = pending.len(), %reason, "retrying batch write");
        tokio::time::sleep(delay).await;
        attempt += 1;
        retries += 1;
    }
}

/// Runs `operation` until it succeeds, fails permanently, or the next backoff would pass the deadline.
pub async fn retry<T, F, Fut>(
    backoff: Backoff,
    deadline: Instant,
    retries: &mut u64,
    mut operation: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0u32;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(err) if !err.is_transient() => return Err(err.to_string()),
            Err(err) => {
                let delay = backoff.delay(attempt);
                if Instant::now() + delay >= deadline {
                    return Err(format!("out of time after {} attempts; last: {err}", attempt + 1));
                }
                tokio::time::sleep(delay).await;
                attempt += 1;
                *retries += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(500),
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(10));
        assert_eq!(b.ceiling(3), Duration::from_millis(80));
        assert_eq!(b.ceiling(10), Duration::from_millis(500));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_millis(500));
        for attempt in 0..40 {
            assert!(b.delay(attempt) <= b.ceiling(attempt));
        }
    }
}
