//! Everything DynamoDB and S3, in one place, behind the domain's ports ([`crate::ports`]):
//!
//! - [`table`]: the table definition and every attribute name;
//! - [`codec`]: items to and from records; [`placement`]: where a payload goes (inline, zstd, S3) and the
//!   hashed index keys;
//! - [`writer`]: BatchWriteItem in 25s, several in flight, UnprocessedItems re-sent; [`retry`]: which errors
//!   are worth another try, and the backoff;
//! - [`sdk`]: the SDK calls behind small traits, the seams the unit tests mock; [`wire`]: BatchWriteItem signed
//!   and sent by our own code over the SDK's connector, without the SDK's per-request orchestrator.
//!
//! [`DynamoStore`] is the adapter: it implements [`NotificationSink`], [`NotificationIndex`] and
//! [`NotificationReader`].

pub mod body;
pub mod codec;
#[cfg(test)]
mod mock;
pub mod placement;
pub mod retry;
pub mod sdk;
pub mod table;
pub mod wire;
pub mod writer;

use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

pub use placement::Layout;
pub use sdk::{ingest_sdk_config, s3_client};
pub use wire::BatchWriter;
pub use writer::WriteOptions;

use crate::model::Notification;
use crate::ports::{
    Found, IndexPage, IndexQuery, Indexed, NotificationIndex, NotificationReader, NotificationSink, NotificationSource,
    PayloadLink, ReadError, ReadOptions, StoreReport, WriteError,
};
use codec::{S3Pointer, StoredPayload};
use sdk::{BatchPut, BlobGet, BlobPut, BlobRead, DynamoTable, IndexRead, ItemGet, S3Bucket};

/// The largest payload read back (the trigger delivers at most 6 MB; this leaves room).
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

/// The table's calls.
pub trait Table: BatchPut + ItemGet + IndexRead {}
impl<T: BatchPut + ItemGet + IndexRead> Table for T {}

/// The bucket's calls.
pub trait Bucket: BlobPut + BlobGet {}
impl<T: BlobPut + BlobGet> Bucket for T {}

/// The DynamoDB and S3 adapter of the store's ports.
#[derive(Clone)]
pub struct DynamoStore {
    table: Arc<dyn Table>,
    bucket: Arc<dyn Bucket>,
    layout: Layout,
    write: WriteOptions,
}

impl DynamoStore {
    /// The adapter for the table named `table`, with the default layout and write options: reads through SDK
    /// clients made from `aws`, writes through a [`BatchWriter`] to the same endpoint with the same credentials.
    /// Fails when `aws` names no region or credentials provider.
    pub fn new(aws: &aws_config::SdkConfig, table: impl Into<String>) -> Result<Self, crate::error::StoreError> {
        let writer = Arc::new(BatchWriter::new(aws)?);
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        Ok(Self::from_parts(
            Arc::new(DynamoTable::new(dynamodb, writer, table)),
            Arc::new(S3Bucket::new(s3_client(aws))),
        ))
    }

    /// The adapter the ingest function writes through: `config`'s table, layout and write options, over `aws`
    /// (the function's, from [`ingest_sdk_config`]).
    pub fn for_ingest(
        aws: &aws_config::SdkConfig,
        config: &crate::config::IngestConfig,
    ) -> Result<Self, crate::error::StoreError> {
        Ok(Self::new(aws, config.table.clone())?
            .with_layout(config.layout.clone())
            .with_write_options(config.write))
    }

    /// The adapter over any implementation of the calls (the unit tests' mocks).
    pub fn from_parts(table: Arc<dyn Table>, bucket: Arc<dyn Bucket>) -> Self {
        DynamoStore {
            table,
            bucket,
            layout: Layout::default(),
            write: WriteOptions::default(),
        }
    }

    /// How records are laid out into items (the item limit, compression, the payload bucket, retention).
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// How items are written (requests in flight, backoff).
    pub fn with_write_options(mut self, write: WriteOptions) -> Self {
        self.write = write;
        self
    }

    /// Reads an S3 object and checks it against its pointer. A missing object is gone (retention deleted it,
    /// or someone did), not a failure of the store.
    async fn fetch(&self, id: &str, pointer: &S3Pointer) -> Result<Vec<u8>, ReadError> {
        let bytes = match self
            .bucket
            .get_blob(&pointer.bucket, &pointer.key, pointer.size)
            .await?
        {
            BlobRead::Bytes(bytes) => bytes,
            BlobRead::Missing => {
                return Err(ReadError::Gone {
                    id: id.to_owned(),
                    reason: format!("object s3://{}/{} no longer exists", pointer.bucket, pointer.key),
                })
            }
            // Refused on its length, before its body is read: a swapped object cannot exhaust the function.
            BlobRead::TooLarge { length } => {
                return Err(corrupt(
                    id,
                    format!(
                        "object s3://{}/{} is {length} bytes, more than the {} its record says",
                        pointer.bucket, pointer.key, pointer.size
                    ),
                ))
            }
        };
        let digest = hex::encode(Sha256::digest(&bytes));
        if bytes.len() as u64 != pointer.size || digest != pointer.sha256 {
            return Err(ReadError::Corrupt {
                id: id.to_owned(),
                reason: format!(
                    "object s3://{}/{} does not match its record (size {} vs {}, sha256 {digest} vs {})",
                    pointer.bucket,
                    pointer.key,
                    bytes.len(),
                    pointer.size,
                    pointer.sha256
                ),
            });
        }
        Ok(bytes)
    }
}

fn corrupt(id: &str, reason: impl ToString) -> ReadError {
    ReadError::Corrupt {
        id: id.to_owned(),
        reason: reason.to_string(),
    }
}

/// Whether an item (or an index projection of it) is past its retention: DynamoDB's TTL deletes such items
/// within days, and the payload bucket's lifecycle may already have deleted their objects.
fn expired(item: &codec::Item, now: i64) -> bool {
    codec::get_n::<i64>(item, table::attr::EXPIRES_AT).is_some_and(|expires_at| expires_at <= now)
}

/// The epoch second a record was received at (the start of its TTL), now when it cannot be read.
fn received_epoch(notification: &Notification) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&notification.received_at)
        .map(|t| t.timestamp())
        .unwrap_or_else(|_| chrono::Utc::now().timestamp())
}

#[async_trait]
impl NotificationSink for DynamoStore {
    async fn store(&self, records: &dyn NotificationSource, deadline: Instant) -> StoreReport {
        let layout = &self.layout;
        let build = |index: usize| {
            let notification = records.build(index);
            let now = received_epoch(&notification);
            placement::prepare_owned(notification, layout, now).map_err(WriteError::Layout)
        };
        writer::write_lazily(
            0..records.len(),
            |index: &usize| records.id(*index),
            build,
            self.table.as_ref(),
            self.bucket.as_ref(),
            self.write,
            deadline,
        )
        .await
    }
}

#[async_trait]
impl NotificationIndex for DynamoStore {
    async fn page(&self, query: &IndexQuery) -> Result<IndexPage, ReadError> {
        let raw = self.table.query_index(query).await?;
        let now = chrono::Utc::now().timestamp();
        let mut items = Vec::with_capacity(raw.items.len());
        for item in raw.items.iter().filter(|item| !expired(item, now)) {
            let summary = codec::summary_from_item(item).map_err(|e| corrupt(&e.id, &e.reason))?;
            let position = table::position_of(item, query.lookup)
                .ok_or_else(|| corrupt(&summary.id, "the index item has no key"))?;
            items.push(Indexed { summary, position });
        }
        Ok(IndexPage {
            items,
            last: raw
                .last_key
                .as_ref()
                .and_then(|key| table::position_of(key, query.lookup)),
        })
    }
}

#[async_trait]
impl NotificationReader for DynamoStore {
    async fn read(&self, id: &str, options: ReadOptions) -> Result<Option<Found>, ReadError> {
        let Some(item) = self
            .table
            .get_item(id)
            .await?
            .filter(|item| !expired(item, chrono::Utc::now().timestamp()))
        else {
            return Ok(None);
        };
        let record = codec::record_from_item(&item).map_err(|e| corrupt(id, &e.reason))?;
        let mut summary = record.summary;
        let mut headers = record.headers;
        if let Some(pointer) = &record.extras {
            let bytes = self.fetch(id, pointer).await?;
            let (key, extra_headers) = codec::parse_extras(&bytes).map_err(|e| corrupt(id, e))?;
            summary.key = key;
            headers = extra_headers;
        }
        let mut link = None;
        let payload = match record.payload {
            StoredPayload::None => None,
            StoredPayload::Inline(bytes) => Some(bytes),
            StoredPayload::Zstd(compressed) => Some(
                codec::decompress(&compressed, (summary.payload_size as usize).clamp(1, MAX_PAYLOAD_BYTES))
                    .map_err(|e| corrupt(id, e))?,
            ),
            StoredPayload::S3(pointer) if pointer.size > options.inline_max => {
                let url = self
                    .bucket
                    .presign_get(&pointer.bucket, &pointer.key, options.link_ttl)
                    .await?;
                link = Some(PayloadLink {
                    url,
                    size: pointer.size,
                    sha256: pointer.sha256,
                });
                None
            }
            StoredPayload::S3(pointer) => Some(self.fetch(id, &pointer).await?),
        };
        Ok(Some(Found {
            notification: summary.into_notification(headers, payload, record.change, record.decoded),
            link,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::mock::{Faults, MockTable};
    use super::*;
    use crate::model::{Data, Extracted, Header, PayloadFormat};
    use std::time::Duration;

    fn notification(offset: i64, payload: Option<Vec<u8>>) -> Notification {
        Notification {
            id: format!("t:0:{offset}"),
            source_topic: "t".into(),
            partition: 0,
            offset: Some(offset),
            kafka_timestamp: Some(1_700_000_000_000),
            timestamp_type: Some("CREATE_TIME".into()),
            key: Some(Data::Text("k".into())),
            headers: vec![Header {
                name: "h".into(),
                value: Data::from_bytes(vec![0xff, 1]),
            }],
            fields: Extracted {
                order_id: Some("o-1".into()),
                ..Default::default()
            },
            occurred_at: "2023-11-14T22:13:20.000000Z".into(),
            received_at: "2023-11-14T22:13:21.000000Z".into(),
            payload_format: if payload.is_some() {
                PayloadFormat::Binary
            } else {
                PayloadFormat::Tombstone
            },
            payload,
            schema_id: None,
            change: None,
            decoded: None,
            warnings: Vec::new(),
        }
    }

    fn store_over(mock: &Arc<MockTable>, bucket: Option<&str>) -> DynamoStore {
        DynamoStore::from_parts(mock.clone(), mock.clone()).with_layout(Layout {
            bucket: bucket.map(str::to_owned),
            ..Layout::default()
        })
    }

    /// The first page of order `o-1`'s index, `limit` at a time, oldest first.
    fn order_o1(limit: usize) -> IndexQuery {
        IndexQuery {
            lookup: crate::ports::Lookup::Order,
            value: "o-1".into(),
            since: None,
            until: None,
            event_type: None,
            ascending: true,
            limit,
            after: None,
        }
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn throttling_and_unprocessed_items_are_retried_until_everything_is_stored() {
        let mock = Arc::new(MockTable::new());
        mock.set_faults(Faults {
            throttle_batches: 3,
            unprocess_batches: 4,
            unprocess_items: 10,
            ..Faults::default()
        });
        let records: Vec<Notification> = (0..100).map(|i| notification(i, Some(b"x".to_vec()))).collect();
        let report = store_over(&mock, None).store(&records, deadline()).await;
        assert_eq!(mock.len(), 100);
        assert_eq!(report.stored, 100);
        assert!(report.failed.is_empty());
        assert!(report.retries >= 7, "{report:?}");
        // The units the table reported, summed over every request: each item charged once, when it was
        // processed (the mock charges a small item 1 unit, and 1 for its by_order entry), not when it was left
        // unprocessed or throttled.
        assert_eq!(report.write_units, 200.0, "{report:?}");
    }

    #[tokio::test]
    async fn a_payload_too_large_for_an_item_goes_to_the_bucket_and_reads_back() {
        let mock = Arc::new(MockTable::new());
        let big = crate::fixtures::noise(1_000_000);
        let records = vec![notification(1, Some(big.clone()))];
        let store = store_over(&mock, Some("payloads"));
        let report = store.store(&records, deadline()).await;
        assert_eq!((report.stored, report.offloaded), (1, 1), "{report:?}");
        assert_eq!(mock.blob_count(), 1);
        let back = store.get("t:0:1").await.unwrap().expect("stored");
        assert_eq!(back, records[0]);
    }

    #[tokio::test]
    async fn without_a_bucket_an_oversized_payload_fails_its_record_with_why_and_the_others_are_stored() {
        let mock = Arc::new(MockTable::new());
        let big = crate::fixtures::noise(1_000_000);
        let records = vec![notification(1, Some(big)), notification(2, Some(b"ok".to_vec()))];
        let report = store_over(&mock, None).store(&records, deadline()).await;
        assert_eq!(report.stored, 1);
        let [failure] = report.failed.as_slice() else {
            panic!("{report:?}")
        };
        assert_eq!(failure.id, "t:0:1");
        assert_eq!(failure.error.kind(), "layout");
        assert!(
            failure.error.to_string().contains("PAYLOAD_BUCKET"),
            "{}",
            failure.error
        );
        assert_eq!(mock.len(), 1);
    }

    #[tokio::test]
    async fn a_failing_bucket_fails_only_the_records_that_need_it() {
        let mock = Arc::new(MockTable::new());
        mock.set_faults(Faults {
            fail_blob_puts: usize::MAX,
            ..Faults::default()
        });
        let big = crate::fixtures::noise(600_000);
        let records = vec![
            notification(8, Some(big.clone())),
            notification(9, Some(b"{}".to_vec())),
        ];
        let store = store_over(&mock, Some("payloads")).with_write_options(WriteOptions::default());
        let report = store.store(&records, Instant::now() + Duration::from_millis(300)).await;
        assert_eq!(report.stored, 1);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].id, "t:0:8");
        assert_eq!(report.failed[0].error.kind(), "out_of_time");
        assert!(
            report.failed[0].error.to_string().contains("SlowDown"),
            "{}",
            report.failed[0].error
        );
    }

    #[tokio::test]
    async fn every_placement_reads_back_as_the_record_stored() {
        let mock = Arc::new(MockTable::new());
        let compressible = format!("[{}]", vec!["{\"a\":1}"; 20_000].join(",")).into_bytes();
        let records = vec![
            notification(1, None),
            notification(2, Some(b"small".to_vec())),
            notification(3, Some(compressible)),
            notification(4, Some(crate::fixtures::noise(500_000))),
        ];
        let store = store_over(&mock, Some("payloads"));
        let report = store.store(&records, deadline()).await;
        assert_eq!(report.stored, 4, "{report:?}");
        for record in &records {
            assert_eq!(store.get(&record.id).await.unwrap().as_ref(), Some(record));
        }
        assert_eq!(store.get("t:0:99").await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_object_that_does_not_match_its_record_is_corrupt_not_served() {
        let mock = Arc::new(MockTable::new());
        let records = vec![notification(4, Some(crate::fixtures::noise(500_000)))];
        let store = store_over(&mock, Some("payloads"));
        store.store(&records, deadline()).await;
        mock.overwrite_blobs(b"something else".to_vec());
        let err = store.get("t:0:4").await.unwrap_err();
        assert!(matches!(err, ReadError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("does not match its record"), "{err}");
        // A larger object is refused on its length alone, before its body is read.
        mock.overwrite_blobs(vec![0; 600_000]);
        let err = store.get("t:0:4").await.unwrap_err();
        assert!(matches!(err, ReadError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("600000 bytes, more than the 500000"), "{err}");
    }

    #[tokio::test]
    async fn index_pages_carry_positions_that_go_on_where_they_stopped() {
        let mock = Arc::new(MockTable::new());
        let records: Vec<Notification> = (0..5).map(|i| notification(i, Some(b"x".to_vec()))).collect();
        let store = store_over(&mock, None);
        store.store(&records, deadline()).await;
        let mut query = order_o1(2);
        let mut seen = Vec::new();
        loop {
            let page = store.page(&query).await.unwrap();
            seen.extend(page.items.iter().map(|i| i.summary.id.clone()));
            match page.last {
                Some(last) => query.after = Some(last),
                None => break,
            }
        }
        assert_eq!(seen, ["t:0:0", "t:0:1", "t:0:2", "t:0:3", "t:0:4"]);
    }

    #[tokio::test]
    async fn a_payload_over_the_inline_limit_comes_back_as_a_link_with_its_size_and_digest() {
        let mock = Arc::new(MockTable::new());
        let big = crate::fixtures::noise(600_000);
        let records = vec![notification(5, Some(big.clone()))];
        let store = store_over(&mock, Some("payloads"));
        store.store(&records, deadline()).await;
        let options = ReadOptions {
            inline_max: 100_000,
            link_ttl: Duration::from_secs(60),
        };
        let found = store.read("t:0:5", options).await.unwrap().expect("stored");
        let link = found.link.expect("a link");
        assert!(link.url.starts_with("mock://payloads/"), "{}", link.url);
        assert!(link.url.ends_with("expires=60"), "{}", link.url);
        assert_eq!(link.size, 600_000);
        assert_eq!(link.sha256, hex::encode(Sha256::digest(&big)));
        assert_eq!(found.notification.payload, None);
        // Within the limit, the bytes come back themselves.
        let found = store.read("t:0:5", ReadOptions::default()).await.unwrap().unwrap();
        assert_eq!((found.link, found.notification.payload), (None, Some(big)));
    }

    #[tokio::test]
    async fn a_missing_object_is_gone_not_a_store_failure() {
        let mock = Arc::new(MockTable::new());
        let records = vec![notification(6, Some(crate::fixtures::noise(500_000)))];
        let store = store_over(&mock, Some("payloads"));
        store.store(&records, deadline()).await;
        mock.delete_blobs();
        let err = store.get("t:0:6").await.unwrap_err();
        assert!(matches!(err, ReadError::Gone { .. }), "{err}");
        assert!(!err.is_transient());
    }

    #[tokio::test]
    async fn a_record_past_its_retention_is_gone_from_reads_and_pages() {
        let mock = Arc::new(MockTable::new());
        let mut old = notification(7, Some(b"old".to_vec()));
        old.received_at = "2001-01-01T00:00:00.000000Z".into();
        let mut fresh = notification(8, Some(b"fresh".to_vec()));
        fresh.received_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let store = store_over(&mock, None).with_layout(Layout {
            retention_seconds: Some(86_400),
            ..Layout::default()
        });
        let report = store.store(&vec![old, fresh], deadline()).await;
        assert_eq!(report.stored, 2, "{report:?}");
        assert_eq!(mock.len(), 2, "still in the table until DynamoDB's TTL deletes it");
        assert_eq!(store.get("t:0:7").await.unwrap(), None);
        assert!(store.get("t:0:8").await.unwrap().is_some());
        let page = store.page(&order_o1(10)).await.unwrap();
        let ids: Vec<&str> = page.items.iter().map(|i| i.summary.id.as_str()).collect();
        assert_eq!(ids, ["t:0:8"]);
    }
}
