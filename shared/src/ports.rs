//! The store's ports, in the domain's terms: one narrow trait per capability, as the functions use them.
//!
//! - [`NotificationSink`]: the ingest function stores notifications and learns, record by record, which were
//!   stored.
//! - [`NotificationIndex`]: the query function pages summaries for a lookup (an order, correlation or customer
//!   id), with filters and a position to go on from.
//! - [`NotificationReader`]: the query function reads one stored notification, with its payload.
//!
//! The DynamoDB and S3 adapters live in [`crate::dynamo`]; an in-memory double (feature `test-support`) in
//! `crate::memory`. Nothing here names a table, an attribute or an SDK type.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::StoreError;
use crate::model::{Extracted, Notification, Summary};

/// The three ways to list notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup {
    Order,
    Correlation,
    Customer,
}

impl Lookup {
    /// The extracted field this lookup matches.
    pub fn field(self, fields: &Extracted) -> Option<&str> {
        match self {
            Lookup::Order => fields.order_id.as_deref(),
            Lookup::Correlation => fields.correlation_id.as_deref(),
            Lookup::Customer => fields.customer_id.as_deref(),
        }
    }
}

/// Where a page stopped, to go on from: the last record's id and its place in the index. Opaque to the read
/// side, which signs it into a cursor.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub id: String,
    pub index_key: String,
    pub sort_key: String,
}

/// One page of an index, asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexQuery {
    pub lookup: Lookup,
    /// The full id looked up.
    pub value: String,
    /// Only events at or after this time (RFC 3339 UTC, as stored).
    pub since: Option<String>,
    /// Only events at or before this time.
    pub until: Option<String>,
    pub event_type: Option<String>,
    pub ascending: bool,
    /// How many records the store may look at for this page, before filters.
    pub limit: usize,
    /// Go on after this position.
    pub after: Option<Position>,
}

/// A summary and its position in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed {
    pub summary: Summary,
    pub position: Position,
}

/// A page of summaries, in index order, and where the store stopped looking (`None`: nothing more).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexPage {
    pub items: Vec<Indexed>,
    pub last: Option<Position>,
}

/// Pages summaries for a lookup.
#[async_trait]
pub trait NotificationIndex: Send + Sync {
    async fn page(&self, query: &IndexQuery) -> Result<IndexPage, ReadError>;
}

/// The largest payload a reader hands back in the answer: larger ones are handed back as a link (for S3, a
/// presigned URL). Sized so that any payload up to it, base64-encoded (4/3), fits a Lambda response (6 MB) with
/// room to spare. Ingest keeps larger payloads where a link can be made (the payload bucket), compressible or
/// not.
pub const INLINE_PAYLOAD_MAX: u64 = 3 * 1024 * 1024;

/// How to read one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Payloads larger than this, where the store can link to them, come back as a [`PayloadLink`].
    pub inline_max: u64,
    /// How long a link stays valid.
    pub link_ttl: std::time::Duration,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            inline_max: INLINE_PAYLOAD_MAX,
            link_ttl: std::time::Duration::from_secs(300),
        }
    }
}

/// Where to fetch a payload too large to carry: a short-lived URL that answers its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadLink {
    pub url: String,
    pub size: u64,
    pub sha256: String,
}

/// A notification as read: its payload is in `notification.payload`, or, when `link` is set, behind the link.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub notification: Notification,
    pub link: Option<PayloadLink>,
}

/// Reads one stored notification, its payload, key and headers resolved wherever they were placed. A record
/// past its retention (`expires_at`) is gone, even before DynamoDB's TTL deletes it.
#[async_trait]
pub trait NotificationReader: Send + Sync {
    async fn read(&self, id: &str, options: ReadOptions) -> Result<Option<Found>, ReadError>;

    /// The notification with its payload in hand, however large.
    async fn get(&self, id: &str) -> Result<Option<Notification>, ReadError> {
        let options = ReadOptions {
            inline_max: u64::MAX,
            ..ReadOptions::default()
        };
        Ok(self.read(id, options).await?.map(|found| found.notification))
    }
}

/// Why a read failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// The store did not answer as asked (down, throttled, refused).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What is stored cannot be read back: a malformed item, an object that fails its size or digest.
    #[error("stored record {id:?} is corrupt: {reason}")]
    Corrupt { id: String, reason: String },
    /// Part of the record is no longer stored (its S3 object was deleted, by retention or by hand).
    #[error("part of stored record {id:?} is gone: {reason}")]
    Gone { id: String, reason: String },
}

impl ReadError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ReadError::Store(err) if err.is_transient())
    }
}

/// The records of one batch, built into notifications only when the sink is ready to write them: a batch of
/// thousands of records then holds no more notifications in memory than there are writes in flight.
/// `build` must give the same notification for the same index, and may be called more than once for it.
pub trait NotificationSource: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The id of record `index` (cheap: no normalization).
    fn id(&self, index: usize) -> String;
    /// The notification of record `index`.
    fn build(&self, index: usize) -> Notification;
}

impl NotificationSource for Vec<Notification> {
    fn len(&self) -> usize {
        <[Notification]>::len(self)
    }

    fn id(&self, index: usize) -> String {
        self.get(index).map(|n| n.id.clone()).unwrap_or_default()
    }

    fn build(&self, index: usize) -> Notification {
        self[index].clone()
    }
}

/// Stores notifications. Records with the same id are stored once (the last one wins).
#[async_trait]
pub trait NotificationSink: Send + Sync {
    /// Stores every record of `records` before `deadline`, or reports it failed with why.
    async fn store(&self, records: &dyn NotificationSource, deadline: Instant) -> StoreReport;
}

/// What a sink did with a batch, record by record.
#[derive(Debug, Clone, Default)]
pub struct StoreReport {
    pub stored: usize,
    /// Requests sent again (after a transient error, or for items the store left unprocessed).
    pub retries: u64,
    /// Records whose payload (or key and headers) went to the object store.
    pub offloaded: usize,
    /// What the writes cost, in the store's write units as it reports them (DynamoDB: consumed write capacity,
    /// table and indexes; 0 where the store does not say).
    pub write_units: f64,
    /// The records not stored, in id order.
    pub failed: Vec<Failure>,
}

/// A record that was not stored, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    pub id: String,
    pub error: Arc<WriteError>,
}

/// Why a record was not stored.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The record cannot be laid out for the store (too large, and nowhere to put what does not fit).
    #[error(transparent)]
    Layout(#[from] crate::dynamo::placement::LayoutError),
    /// The store refused the write; trying again cannot help.
    #[error(transparent)]
    Rejected(StoreError),
    /// The deadline came before the write succeeded.
    #[error("out of time after {attempts} attempts; last: {last}")]
    OutOfTime { attempts: u32, last: Attempt },
    /// A write that failed took its item with it, and the item could not be built again.
    #[error("its item could not be built again for a retry")]
    NotRebuilt,
    /// The record is framed with a schema its registry could not be asked for (timeout, 5xx, throttling,
    /// refused credentials): it is held back, not stored undecoded, so the trigger delivers it again.
    #[error("its schema registry is unavailable: {0}")]
    SchemaUnavailable(String),
}

impl WriteError {
    /// A stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            WriteError::Layout(_) => "layout",
            WriteError::Rejected(_) => "rejected",
            WriteError::OutOfTime { .. } => "out_of_time",
            WriteError::NotRebuilt => "not_rebuilt",
            WriteError::SchemaUnavailable(_) => "schema_unavailable",
        }
    }
}

/// What the last try of a write that ran out of time ran into.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Attempt {
    #[error(transparent)]
    Failed(StoreError),
    #[error("{0} items left unprocessed by DynamoDB")]
    Unprocessed(usize),
}
