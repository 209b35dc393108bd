//! Writing prepared items: S3 objects first, then items in BatchWriteItem requests of 25, several in flight,
//! UnprocessedItems re-sent and transient errors retried with exponential backoff and full jitter, all within
//! a deadline (the invocation's remaining time). Every record ends either stored or reported failed with why.
//! Items can be built a chunk at a time ([`write_lazily`]), so memory holds only the requests in flight.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use super::codec::PutItem;
use super::placement::PreparedItem;
use super::retry::{no_answer, retry, Backoff};
use super::sdk::{BatchPut, BlobPut, Written};
use crate::ports::{Attempt, Failure, StoreReport, WriteError};

/// DynamoDB's limit of requests in one BatchWriteItem.
pub const MAX_BATCH_ITEMS: usize = 25;

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
            concurrency: 16,
            backoff: Backoff::default(),
        }
    }
}

/// Stores every item, or reports it failed. Items with the same id are written once (the last one wins).
#[cfg(test)]
pub async fn write_all(
    items: Vec<PreparedItem>,
    table: &dyn BatchPut,
    blobs: &dyn BlobPut,
    options: WriteOptions,
    deadline: Instant,
) -> StoreReport {
    let id_of = |item: &PreparedItem| item.id.clone();
    write_lazily(items, id_of, Ok, table, blobs, options, deadline).await
}

/// Stores items built only when their BatchWriteItem is next: `build` turns a source (a
/// decoded record) into its item a chunk at a time, so that a batch of thousands of records holds no more
/// items in memory than there are requests in flight. Sources with the same id are written once (the last
/// one wins); a source that `build` refuses is reported failed with its error.
///
/// Items go to the table without a copy kept back: when a request fails and must be sent again, its items are
/// built again from their sources. So `build` must give the same item for the same source, and may be called
/// more than once for it.
#[allow(clippy::too_many_arguments)]
pub async fn write_lazily<S, I, B>(
    sources: impl IntoIterator<Item = S>,
    id_of: I,
    build: B,
    table: &dyn BatchPut,
    blobs: &dyn BlobPut,
    options: WriteOptions,
    deadline: Instant,
) -> StoreReport
where
    S: Clone + Send + Sync,
    I: Fn(&S) -> String,
    B: Fn(S) -> Result<PreparedItem, WriteError> + Sync,
{
    // BatchWriteItem rejects two requests for one key; redelivered duplicates collapse here. In id order.
    let mut by_id: BTreeMap<String, S> = BTreeMap::new();
    for source in sources {
        by_id.insert(id_of(&source), source);
    }
    let mut chunks: Vec<Vec<(String, S)>> = Vec::with_capacity(by_id.len().div_ceil(MAX_BATCH_ITEMS));
    for entry in by_id {
        match chunks.last_mut() {
            Some(chunk) if chunk.len() < MAX_BATCH_ITEMS => chunk.push(entry),
            _ => {
                let mut chunk = Vec::with_capacity(MAX_BATCH_ITEMS);
                chunk.push(entry);
                chunks.push(chunk);
            }
        }
    }
    let build = &build;
    let results: Vec<StoreReport> = stream::iter(chunks)
        .map(|chunk| async move {
            let mut outcome = StoreReport::default();
            let mut prepared = Vec::with_capacity(chunk.len());
            let mut sources = Vec::with_capacity(chunk.len());
            for (id, source) in chunk {
                match build(source.clone()) {
                    Ok(item) => {
                        prepared.push(item);
                        sources.push((id, source));
                    }
                    Err(error) => outcome.failed.push(Failure {
                        id,
                        error: Arc::new(error),
                    }),
                }
            }
            let ready = put_blobs(prepared, blobs, options.backoff, deadline, &mut outcome).await;
            if !ready.is_empty() {
                let rebuild = |ids: &[String]| -> Vec<PutItem> {
                    sources
                        .iter()
                        .filter(|(id, _)| ids.contains(id))
                        .filter_map(|(_, source)| build(source.clone()).ok())
                        .map(|prepared| prepared.item)
                        .collect()
                };
                let result = write_chunk(ready, &rebuild, table, options.backoff, deadline).await;
                outcome.stored += result.stored;
                outcome.retries += result.retries;
                outcome.write_units += result.write_units;
                outcome.failed.extend(result.failed);
            }
            outcome
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    let mut outcome = StoreReport::default();
    for result in results {
        outcome.stored += result.stored;
        outcome.retries += result.retries;
        outcome.offloaded += result.offloaded;
        outcome.write_units += result.write_units;
        outcome.failed.extend(result.failed);
    }
    outcome.failed.sort_by(|a, b| a.id.cmp(&b.id));
    outcome
}

/// Puts the S3 objects of `items` first, so that no item ever points at an object that is not there;
/// returns the items that are ready to write, and reports the others failed.
async fn put_blobs(
    items: Vec<PreparedItem>,
    blobs: &dyn BlobPut,
    backoff: Backoff,
    deadline: Instant,
    outcome: &mut StoreReport,
) -> Vec<PutItem> {
    let mut ready = Vec::with_capacity(items.len());
    'items: for item in items {
        for blob in &item.blobs {
            let result = retry(backoff, deadline, &mut outcome.retries, || {
                blobs.put_blob(&blob.bucket, &blob.key, blob.bytes.clone(), &blob.sha256)
            })
            .await;
            if let Err(error) = result {
                outcome.failed.push(Failure {
                    id: item.id,
                    error: Arc::new(error),
                });
                continue 'items;
            }
        }
        if !item.blobs.is_empty() {
            outcome.offloaded += 1;
        }
        ready.push(item.item);
    }
    ready
}

struct ChunkResult {
    stored: usize,
    retries: u64,
    write_units: f64,
    failed: Vec<Failure>,
}

fn item_id(item: &PutItem) -> String {
    item.id().unwrap_or_default().to_owned()
}

fn failures(ids: &[String], error: WriteError) -> Vec<Failure> {
    let error = Arc::new(error);
    ids.iter()
        .map(|id| Failure {
            id: id.clone(),
            error: error.clone(),
        })
        .collect()
}

/// Writes one BatchWriteItem's worth of items until all are stored, failed permanently, or out of time.
/// The items are handed to the table, not copied; `rebuild` makes the items of the given ids again when a
/// request failed and took its items with it.
async fn write_chunk(
    items: Vec<PutItem>,
    rebuild: &(dyn Fn(&[String]) -> Vec<PutItem> + Sync),
    table: &dyn BatchPut,
    backoff: Backoff,
    deadline: Instant,
) -> ChunkResult {
    let total = items.len();
    // The ids not stored yet and, when at hand, their items.
    let mut ids: Vec<String> = items.iter().map(item_id).collect();
    let mut pending = Some(items);
    let mut result = ChunkResult {
        stored: 0,
        retries: 0,
        write_units: 0.0,
        failed: Vec::new(),
    };
    let mut attempt = 0u32;
    loop {
        let sending = match pending.take() {
            Some(items) => items,
            None => {
                let items = rebuild(&ids);
                if items.len() < ids.len() {
                    let rebuilt: Vec<String> = items.iter().map(item_id).collect();
                    let (kept, lost): (Vec<String>, Vec<String>) = ids.into_iter().partition(|id| rebuilt.contains(id));
                    result.failed.extend(failures(&lost, WriteError::NotRebuilt));
                    ids = kept;
                }
                items
            }
        };
        if sending.is_empty() {
            result.stored = total.saturating_sub(result.failed.len());
            return result;
        }
        // A request that hangs must not outlive the invocation: its items are then reported not stored (they
        // may have been written; a redelivery overwrites them) while there is still time to say so.
        let answer = match tokio::time::timeout_at(deadline, table.batch_put(sending)).await {
            Ok(answer) => answer,
            Err(_) => Err(no_answer("BatchWriteItem")),
        };
        if let Ok(written) = &answer {
            result.write_units += written.write_units;
        }
        let last = match answer.map(|written: Written| written.unprocessed) {
            Ok(unprocessed) if unprocessed.is_empty() => {
                result.stored = total.saturating_sub(result.failed.len());
                return result;
            }
            Ok(unprocessed) => {
                // Sent again as built again from their sources, like the items of a failed request. Only ids
                // of this request count, each once: an answer cannot make the counts go wrong.
                let mut left: Vec<String> = Vec::with_capacity(unprocessed.len());
                for id in unprocessed {
                    if ids.contains(&id) && !left.contains(&id) {
                        left.push(id);
                    }
                }
                if left.is_empty() {
                    result.stored = total.saturating_sub(result.failed.len());
                    return result;
                }
                ids = left;
                Attempt::Unprocessed(ids.len())
            }
            Err(err) if err.is_transient() => Attempt::Failed(err),
            Err(err) if ids.len() > 1 => {
                // A permanent error on a batch: write the items one by one so only the culprit fails.
                tracing::warn!(error = %err, "batch rejected; writing its items one by one");
                result.stored = total.saturating_sub(result.failed.len() + ids.len());
                for id in ids {
                    let one = std::slice::from_ref(&id);
                    let items = rebuild(one);
                    if items.is_empty() {
                        result.failed.extend(failures(one, WriteError::NotRebuilt));
                        continue;
                    }
                    let single = Box::pin(write_chunk(items, rebuild, table, backoff, deadline)).await;
                    result.stored += single.stored;
                    result.retries += single.retries;
                    result.write_units += single.write_units;
                    result.failed.extend(single.failed);
                }
                return result;
            }
            Err(err) => {
                result.failed.extend(failures(&ids, WriteError::Rejected(err)));
                result.stored = total.saturating_sub(result.failed.len());
                return result;
            }
        };
        let delay = backoff.delay(attempt);
        if Instant::now() + delay >= deadline {
            let error = WriteError::OutOfTime {
                attempts: attempt + 1,
                last,
            };
            result.failed.extend(failures(&ids, error));
            result.stored = total.saturating_sub(result.failed.len());
            return result;
        }
        tracing::debug!(attempt, pending = ids.len(), last = %last, "retrying batch write");
        tokio::time::sleep(delay).await;
        attempt += 1;
        result.retries += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::super::table::attr;
    use super::*;
    use crate::error::StoreError;
    use aws_sdk_dynamodb::types::AttributeValue;
    use std::time::Duration;

    /// A table that notes, at every request, how many items had been built by then.
    struct Probe {
        built: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        seen: std::sync::Mutex<Vec<(usize, usize)>>,
    }

    #[async_trait::async_trait]
    impl BatchPut for Probe {
        async fn batch_put(&self, items: Vec<PutItem>) -> Result<Written, StoreError> {
            let built = self.built.load(std::sync::atomic::Ordering::SeqCst);
            if let Ok(mut seen) = self.seen.lock() {
                seen.push((built, items.len()));
            }
            tokio::task::yield_now().await;
            Ok(Written::all())
        }
    }

    #[tokio::test]
    async fn lazily_built_items_are_built_a_few_chunks_at_a_time_deduplicated_and_all_written() {
        use std::sync::atomic::Ordering;
        let built = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let probe = Probe {
            built: built.clone(),
            seen: std::sync::Mutex::new(Vec::new()),
        };
        let blobs = super::super::mock::MockTable::new();
        let options = WriteOptions {
            concurrency: 2,
            ..WriteOptions::default()
        };
        // 1,000 records, the first 10 delivered twice.
        let sources: Vec<u32> = (0..1_000).chain(0..10).collect();
        let outcome = write_lazily(
            sources,
            |n| format!("t:0:{n:04}"),
            |n| {
                built.fetch_add(1, Ordering::SeqCst);
                let id = format!("t:0:{n:04}");
                let item = id_item(&id);
                if n == 500 {
                    return Err(WriteError::NotRebuilt);
                }
                Ok(PreparedItem {
                    id,
                    item,
                    blobs: Vec::new(),
                })
            },
            &probe,
            &blobs,
            options,
            Instant::now() + Duration::from_secs(30),
        )
        .await;
        assert_eq!(outcome.stored, 999);
        assert_eq!(outcome.failed.len(), 1);
        assert_eq!(built.load(Ordering::SeqCst), 1_000, "duplicates are built once");
        let seen = probe.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let (built_at_first_request, _) = seen[0];
        assert!(
            built_at_first_request <= 2 * MAX_BATCH_ITEMS,
            "{built_at_first_request} items built before the first request"
        );
        assert!(seen.iter().all(|(_, len)| *len <= MAX_BATCH_ITEMS));
    }

    fn id_item(id: &str) -> PutItem {
        let mut item = PutItem::default();
        item.insert(attr::ID, AttributeValue::S(id.to_owned()));
        item
    }

    fn prepared(n: usize) -> Vec<PreparedItem> {
        (0..n)
            .map(|i| {
                let id = format!("t:0:{i}");
                PreparedItem {
                    item: id_item(&id),
                    id,
                    blobs: Vec::new(),
                }
            })
            .collect()
    }

    /// A table whose first answer leaves one of its items unprocessed, naming it twice, beside an id it was never
    /// sent; it notes the ids of every request.
    #[derive(Default)]
    struct Confused {
        requests: std::sync::Mutex<Vec<Vec<String>>>,
    }

    #[async_trait::async_trait]
    impl BatchPut for Confused {
        async fn batch_put(&self, items: Vec<PutItem>) -> Result<Written, StoreError> {
            let ids: Vec<String> = items.iter().map(item_id).collect();
            let mut requests = self.requests.lock().expect("lock");
            requests.push(ids.clone());
            let unprocessed = if requests.len() == 1 {
                vec![ids[1].clone(), "elsewhere:0:1".to_owned(), ids[1].clone()]
            } else {
                Vec::new()
            };
            Ok(Written {
                unprocessed,
                write_units: 0.0,
            })
        }
    }

    #[tokio::test]
    async fn unprocessed_ids_count_once_and_only_for_items_of_the_request() {
        let table = Confused::default();
        let blobs = super::super::mock::MockTable::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let outcome = write_all(prepared(3), &table, &blobs, WriteOptions::default(), deadline).await;
        assert_eq!(outcome.stored, 3);
        assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
        assert_eq!(outcome.retries, 1);
        let requests = table.requests.lock().expect("lock").clone();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            requests[1],
            vec![requests[0][1].clone()],
            "the one unprocessed item, sent again once"
        );
    }

    /// A table whose requests never get an answer (a hung connection, a black-holed endpoint).
    struct Silent;

    #[async_trait::async_trait]
    impl BatchPut for Silent {
        async fn batch_put(&self, _items: Vec<PutItem>) -> Result<Written, StoreError> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_request_that_never_answers_fails_its_records_at_the_deadline_with_why() {
        let blobs = super::super::mock::MockTable::new();
        let deadline = Instant::now() + Duration::from_millis(300);
        // Without the cut-off this never returns; the outer limit only turns that hang into a failure.
        let outcome = tokio::time::timeout(
            Duration::from_secs(60),
            write_all(prepared(60), &Silent, &blobs, WriteOptions::default(), deadline),
        )
        .await
        .expect("write_all returns at the deadline");
        assert_eq!(outcome.stored, 0);
        assert_eq!(outcome.failed.len(), 60);
        for failure in &outcome.failed {
            assert!(
                failure
                    .error
                    .to_string()
                    .contains("no answer before the invocation's deadline"),
                "{}",
                failure.error
            );
        }
    }

    /// A table that counts its requests in flight, and the most there ever were.
    #[derive(Default)]
    struct InFlight {
        now: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl BatchPut for InFlight {
        async fn batch_put(&self, _items: Vec<PutItem>) -> Result<Written, StoreError> {
            use std::sync::atomic::Ordering;
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(Written::all())
        }
    }

    #[tokio::test]
    async fn requests_run_concurrently_up_to_the_configured_bound() {
        for concurrency in [1, 3, 8] {
            let table = InFlight::default();
            let blobs = super::super::mock::MockTable::new();
            let options = WriteOptions {
                concurrency,
                ..WriteOptions::default()
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            let outcome = write_all(prepared(25 * 20), &table, &blobs, options, deadline).await;
            assert_eq!(outcome.stored, 500);
            assert_eq!(table.most.load(std::sync::atomic::Ordering::SeqCst), concurrency);
        }
    }
}
