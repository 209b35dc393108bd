//! `InMemoryStore`: an in-memory test double of the table and the bucket, for unit and handler tests only
//! (feature `test-support`). It follows DynamoDB's rules where tests depend on them (25 items per batch,
//! sparse indexes in sort-key order, Limit counted before the filter) and can inject faults.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::item::Item;
use crate::store::{BatchPut, BlobGet, BlobPut, IndexPage, IndexQuery, IndexRead, ItemGet, Retry, StoreError};
use crate::table;

/// Faults to inject into the next calls.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Fail this many BatchWriteItem calls with a throttling error.
    pub throttle_batches: usize,
    /// Leave the last `n` items of this many BatchWriteItem calls unprocessed.
    pub unprocess_batches: usize,
    pub unprocess_items: usize,
    /// Every call fails with a transient error, as if the server were down.
    pub down: bool,
    /// Fail this many S3 puts with a transient error.
    pub fail_blob_puts: usize,
}

#[derive(Default)]
struct State {
    items: BTreeMap<String, Item>,
    blobs: HashMap<(String, String), Vec<u8>>,
    faults: Faults,
    batch_calls: usize,
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

    pub fn items(&self) -> Vec<Item> {
        self.lock().items.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn blob_count(&self) -> usize {
        self.lock().blobs.len()
    }

    pub fn batch_calls(&self) -> usize {
        self.lock().batch_calls
    }
}

fn s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => Some(text.clone()),
        _ => None,
    }
}

fn down() -> StoreError {
    StoreError::new("InMemoryStore", Retry::Transient, "connection refused (injected)")
}

#[async_trait]
impl BatchPut for InMemoryStore {
    async fn batch_put(&self, mut items: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut state = self.lock();
        state.batch_calls += 1;
        if state.faults.down {
            return Err(down());
        }
        if items.len() > 25 {
            return Err(StoreError::new(
                "BatchWriteItem",
                Retry::Permanent,
                "ValidationException: too many items",
            ));
        }
        if state.faults.throttle_batches > 0 {
            state.faults.throttle_batches -= 1;
            return Err(StoreError::new(
                "BatchWriteItem",
                Retry::Transient,
                "ThrottlingException (injected)",
            ));
        }
        let mut unprocessed = Vec::new();
        if state.faults.unprocess_batches > 0 && state.faults.unprocess_items > 0 {
            state.faults.unprocess_batches -= 1;
            let keep = items.len().saturating_sub(state.faults.unprocess_items);
            unprocessed = items.split_off(keep);
        }
        for item in items {
            let id = s(&item, table::PARTITION_KEY).unwrap_or_default();
            state.items.insert(id, item);
        }
        Ok(unprocessed)
    }
}

#[async_trait]
impl BlobPut for InMemoryStore {
    async fn put_blob(&self, bucket: &str, key: &str, bytes: Vec<u8>, _sha256: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.faults.down {
            return Err(down());
        }
        if state.faults.fail_blob_puts > 0 {
            state.faults.fail_blob_puts -= 1;
            return Err(StoreError::new("PutObject", Retry::Transient, "SlowDown (injected)"));
        }
        state.blobs.insert((bucket.to_owned(), key.to_owned()), bytes);
        Ok(())
    }
}

#[async_trait]
impl BlobGet for InMemoryStore {
    async fn get_blob(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        let state = self.lock();
        state
            .blobs
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
            .ok_or_else(|| StoreError::new("GetObject", Retry::Permanent, "NoSuchKey"))
    }
}

#[async_trait]
impl ItemGet for InMemoryStore {
    async fn get_item(&self, id: &str) -> Result<Option<Item>, StoreError> {
        let state = self.lock();
        if state.faults.down {
            return Err(down());
        }
        Ok(state.items.get(id).cloned())
    }
}

#[async_trait]
impl IndexRead for InMemoryStore {
    async fn query_index(&self, query: &IndexQuery) -> Result<IndexPage, StoreError> {
        let state = self.lock();
        if state.faults.down {
            return Err(down());
        }
        let index = query.lookup.index();
        let key = table::index_key(&query.value);
        let mut matching: Vec<(String, &Item)> = state
            .items
            .values()
            .filter(|item| s(item, index.partition_key).as_deref() == Some(key.as_str()))
            .filter_map(|item| Some((s(item, table::EVENT_SORT_KEY)?, item)))
            .filter(|(sk, _)| query.from.as_ref().is_none_or(|from| sk >= from))
            .filter(|(sk, _)| query.to.as_ref().is_none_or(|to| sk <= to))
            .collect();
        matching.sort_by(|a, b| a.0.cmp(&b.0));
        if !query.ascending {
            matching.reverse();
        }
        if let Some(start) = &query.start {
            let start_sk = s(start, table::EVENT_SORT_KEY).unwrap_or_default();
            matching.retain(|(sk, _)| {
                if query.ascending {
                    *sk > start_sk
                } else {
                    *sk < start_sk
                }
            });
        }
        let limit = query.limit.max(1) as usize;
        let more = matching.len() > limit;
        matching.truncate(limit);
        let last_key = if more {
            matching.last().map(|(_, item)| {
                let mut key = Item::new();
                for name in [table::PARTITION_KEY, index.partition_key, table::EVENT_SORT_KEY] {
                    if let Some(v) = item.get(name) {
                        key.insert(name.to_owned(), v.clone());
                    }
                }
                key
            })
        } else {
            None
        };
        let items = matching
            .into_iter()
            .map(|(_, item)| item)
            .filter(|item| s(item, index.field).as_deref() == Some(query.value.as_str()))
            .filter(|item| query.event_type.is_none() || s(item, "event_type") == query.event_type)
            .map(|item| {
                let mut projected = Item::new();
                for name in table::SUMMARY_ATTRIBUTES.iter().chain(&[
                    table::PARTITION_KEY,
                    index.partition_key,
                    table::EVENT_SORT_KEY,
                ]) {
                    if let Some(v) = item.get(*name) {
                        projected.insert((*name).to_owned(), v.clone());
                    }
                }
                projected
            })
            .collect();
        Ok(IndexPage { items, last_key })
    }
}

/// Incompressible bytes, for payloads that compression cannot shrink (the fixture format's generator).
pub use crate::fixtures::noise;
