//! `MockTable`: a mock of DynamoDB's and S3's calls (items, keys, objects) for this module's unit tests only.
//! It follows DynamoDB's rules where the adapter depends on them (25 items per batch, sparse indexes in
//! sort-key order, Limit counted before the filter) and injects faults.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::codec::{Item, PutItem};
use super::sdk::{BatchPut, BlobGet, BlobPut, BlobRead, IndexRead, ItemGet, RawPage, Written};
use super::table;
use crate::error::{Retry, StoreError};
use crate::ports::IndexQuery;

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

/// The mock.
#[derive(Default)]
pub struct MockTable {
    state: Mutex<State>,
}

impl MockTable {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn blob_count(&self) -> usize {
        self.lock().blobs.len()
    }
}

fn s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => Some(text.clone()),
        _ => None,
    }
}

fn down() -> StoreError {
    StoreError::new("MockTable", Retry::Transient, "connection refused (injected)")
}

#[async_trait]
impl BatchPut for MockTable {
    async fn batch_put(&self, mut items: Vec<PutItem>) -> Result<Written, StoreError> {
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
            unprocessed = items
                .split_off(keep)
                .iter()
                .map(|item| item.id().unwrap_or_default().to_owned())
                .collect();
        }
        // Charged as DynamoDB charges a put of a new item, table and indexes.
        let mut write_units = 0.0;
        for item in items {
            let item = item.to_item();
            write_units += table::write_units(&item).total() as f64;
            let id = s(&item, table::PARTITION_KEY).unwrap_or_default();
            state.items.insert(id, item);
        }
        Ok(Written {
            unprocessed,
            write_units,
        })
    }
}

#[async_trait]
impl BlobPut for MockTable {
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
impl BlobGet for MockTable {
    async fn get_blob(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<BlobRead, StoreError> {
        let state = self.lock();
        Ok(match state.blobs.get(&(bucket.to_owned(), key.to_owned())) {
            None => BlobRead::Missing,
            Some(bytes) if bytes.len() as u64 > max_bytes => BlobRead::TooLarge {
                length: bytes.len() as u64,
            },
            Some(bytes) => BlobRead::Bytes(bytes.clone()),
        })
    }

    async fn presign_get(&self, bucket: &str, key: &str, ttl: std::time::Duration) -> Result<String, StoreError> {
        Ok(format!("mock://{bucket}/{key}?expires={}", ttl.as_secs()))
    }
}

#[async_trait]
impl ItemGet for MockTable {
    async fn get_item(&self, id: &str) -> Result<Option<Item>, StoreError> {
        let state = self.lock();
        if state.faults.down {
            return Err(down());
        }
        Ok(state.items.get(id).cloned())
    }
}

#[async_trait]
impl IndexRead for MockTable {
    async fn query_index(&self, query: &IndexQuery) -> Result<RawPage, StoreError> {
        let state = self.lock();
        if state.faults.down {
            return Err(down());
        }
        let index = table::index_of(query.lookup);
        let (from, to) = table::sort_key_bounds(query.since.as_deref(), query.until.as_deref());
        let key = table::index_key(&query.value);
        let mut matching: Vec<(String, &Item)> = state
            .items
            .values()
            .filter(|item| s(item, index.partition_key).as_deref() == Some(key.as_str()))
            .filter_map(|item| Some((s(item, table::EVENT_SORT_KEY)?, item)))
            .filter(|(sk, _)| from.as_ref().is_none_or(|from| sk >= from))
            .filter(|(sk, _)| to.as_ref().is_none_or(|to| sk <= to))
            .collect();
        matching.sort_by(|a, b| a.0.cmp(&b.0));
        if !query.ascending {
            matching.reverse();
        }
        if let Some(start) = &query.after {
            let start_sk = start.sort_key.clone();
            matching.retain(|(sk, _)| {
                if query.ascending {
                    *sk > start_sk
                } else {
                    *sk < start_sk
                }
            });
        }
        let limit = query.limit.max(1);
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
            .filter(|item| s(item, index.field).as_deref() == Some(table::stored_field(&query.value).as_ref()))
            .filter(|item| {
                query.event_type.as_deref().is_none_or(|et| {
                    s(item, table::attr::EVENT_TYPE).as_deref() == Some(table::stored_field(et).as_ref())
                })
            })
            .map(|item| table::projection(item, index))
            .collect();
        Ok(RawPage { items, last_key })
    }
}

impl MockTable {
    /// Replaces the content of every stored object (a corrupted bucket).
    pub fn delete_blobs(&self) {
        self.lock().blobs.clear();
    }

    pub fn overwrite_blobs(&self, bytes: Vec<u8>) {
        for content in self.lock().blobs.values_mut() {
            *content = bytes.clone();
        }
    }
}
