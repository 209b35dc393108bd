//! The SDK calls, behind small traits of DynamoDB's and S3's own shapes (items, keys, objects): the seams the
//! adapter's unit tests replace with mocks. Every SDK error is classified here ([`classify`]); BatchWriteItem
//! goes through [`BatchWriter`], outside the SDK's orchestrator.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::codec::{Item, PutItem};
use super::retry::classify;
use super::table::{self, attr};
use super::wire::BatchWriter;
use crate::error::{Retry, StoreError};
use crate::ports::IndexQuery;

/// What one BatchWriteItem did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Written {
    /// The ids of the items DynamoDB left unprocessed, to send again.
    pub unprocessed: Vec<String>,
    /// The write capacity units DynamoDB says the request consumed, table and indexes (0 where the endpoint does
    /// not say).
    pub write_units: f64,
}

impl Written {
    /// All items written, at no reported cost.
    pub fn all() -> Self {
        Written::default()
    }
}

/// Writes up to 25 items in one request.
#[async_trait]
pub trait BatchPut: Send + Sync {
    /// Puts the items; returns the ids of those DynamoDB left unprocessed, and what the request cost.
    async fn batch_put(&self, items: Vec<PutItem>) -> Result<Written, StoreError>;
}

/// Reads one item by id.
#[async_trait]
pub trait ItemGet: Send + Sync {
    async fn get_item(&self, id: &str) -> Result<Option<Item>, StoreError>;
}

/// One page of an index: its items (projections) and DynamoDB's LastEvaluatedKey.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawPage {
    pub items: Vec<Item>,
    pub last_key: Option<Item>,
}

/// Queries an index.
#[async_trait]
pub trait IndexRead: Send + Sync {
    async fn query_index(&self, query: &IndexQuery) -> Result<RawPage, StoreError>;
}

/// Puts objects in S3.
#[async_trait]
pub trait BlobPut: Send + Sync {
    async fn put_blob(&self, bucket: &str, key: &str, bytes: Vec<u8>, sha256_hex: &str) -> Result<(), StoreError>;
}

/// What reading an object gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobRead {
    Bytes(Vec<u8>),
    /// No such object.
    Missing,
    /// The object is larger than asked for: its body was not read.
    TooLarge {
        length: u64,
    },
}

/// Reads objects from S3, refusing one larger than `max_bytes` before reading its body, and makes short-lived
/// URLs that read them.
#[async_trait]
pub trait BlobGet: Send + Sync {
    async fn get_blob(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<BlobRead, StoreError>;
    async fn presign_get(&self, bucket: &str, key: &str, ttl: std::time::Duration) -> Result<String, StoreError>;
}

/// The table: writes through [`BatchWriter`], reads through the DynamoDB client.
#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: aws_sdk_dynamodb::Client,
    writer: Arc<BatchWriter>,
    table: String,
}

impl DynamoTable {
    pub fn new(client: aws_sdk_dynamodb::Client, writer: Arc<BatchWriter>, table: impl Into<String>) -> Self {
        DynamoTable {
            client,
            writer,
            table: table.into(),
        }
    }
}

#[async_trait]
impl BatchPut for DynamoTable {
    async fn batch_put(&self, items: Vec<PutItem>) -> Result<Written, StoreError> {
        self.writer.put(&self.table, items).await
    }
}

#[async_trait]
impl ItemGet for DynamoTable {
    async fn get_item(&self, id: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::ID, AttributeValue::S(id.to_owned()))
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        Ok(output.item)
    }
}

#[async_trait]
impl IndexRead for DynamoTable {
    async fn query_index(&self, query: &IndexQuery) -> Result<RawPage, StoreError> {
        let index = table::index_of(query.lookup);
        let mut names = HashMap::from([
            ("#pk".to_owned(), index.partition_key.to_owned()),
            ("#field".to_owned(), index.field.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":pk".to_owned(), AttributeValue::S(table::index_key(&query.value))),
            (
                ":value".to_owned(),
                AttributeValue::S(table::stored_field(&query.value).into_owned()),
            ),
        ]);
        let mut key_condition = "#pk = :pk".to_owned();
        let (from, to) = table::sort_key_bounds(query.since.as_deref(), query.until.as_deref());
        if from.is_some() || to.is_some() {
            names.insert("#sk".into(), attr::EVENT_SORT_KEY.into());
        }
        match (from, to) {
            (Some(from), Some(to)) => {
                key_condition.push_str(" AND #sk BETWEEN :from AND :to");
                values.insert(":from".into(), AttributeValue::S(from));
                values.insert(":to".into(), AttributeValue::S(to));
            }
            (Some(from), None) => {
                key_condition.push_str(" AND #sk >= :from");
                values.insert(":from".into(), AttributeValue::S(from));
            }
            (None, Some(to)) => {
                key_condition.push_str(" AND #sk <= :to");
                values.insert(":to".into(), AttributeValue::S(to));
            }
            (None, None) => {}
        }
        // The full id is compared too: over-long ids share their index key form with nothing else this way.
        let mut filter = "#field = :value".to_owned();
        if let Some(event_type) = &query.event_type {
            names.insert("#et".into(), attr::EVENT_TYPE.into());
            values.insert(
                ":et".into(),
                AttributeValue::S(table::stored_field(event_type).into_owned()),
            );
            filter.push_str(" AND #et = :et");
        }
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index.name)
            .key_condition_expression(key_condition)
            .filter_expression(filter)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(query.ascending)
            .limit(i32::try_from(query.limit).unwrap_or(i32::MAX).max(1))
            .set_exclusive_start_key(query.after.as_ref().map(|p| table::start_key(p, query.lookup)))
            .send()
            .await
            .map_err(|e| classify("Query", e))?;
        Ok(RawPage {
            items: output.items.unwrap_or_default(),
            last_key: output.last_evaluated_key,
        })
    }
}

/// The payload bucket(s), through the S3 client.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    client: aws_sdk_s3::Client,
}

impl S3Bucket {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Bucket { client }
    }
}

#[async_trait]
impl BlobPut for S3Bucket {
    async fn put_blob(&self, bucket: &str, key: &str, bytes: Vec<u8>, sha256_hex: &str) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .metadata("sha256", sha256_hex)
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| classify("PutObject", e))?;
        Ok(())
    }
}

#[async_trait]
impl BlobGet for S3Bucket {
    async fn get_blob(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<BlobRead, StoreError> {
        let output = match self.client.get_object().bucket(bucket).key(key).send().await {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(BlobRead::Missing),
            Err(e) => return Err(classify("GetObject", e)),
        };
        if let Some(length) = output.content_length.filter(|l| *l as u64 > max_bytes) {
            return Ok(BlobRead::TooLarge { length: length as u64 });
        }
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| StoreError::new("GetObject", Retry::Transient, e.to_string()).with_source(e))?;
        Ok(BlobRead::Bytes(bytes.into_bytes().to_vec()))
    }

    async fn presign_get(&self, bucket: &str, key: &str, ttl: std::time::Duration) -> Result<String, StoreError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(ttl)
            .map_err(|e| StoreError::new("PresignGetObject", Retry::Permanent, e.to_string()))?;
        let request = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| classify("PresignGetObject", e))?;
        Ok(request.uri().to_owned())
    }
}

/// The SDK configuration ingest writes with, in the function and in `ingest-file` (which `make bench` measures):
/// - no SDK retries: retrying is the writer's job, within the invocation's deadline, each request cut off there;
/// - no stalled-stream protection: the writer's deadline already ends a request that stops answering, and the
///   protection wraps every request and response body in a throughput monitor with timers of its own.
pub fn ingest_sdk_config(config: aws_config::SdkConfig) -> aws_config::SdkConfig {
    use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
    config
        .into_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build()
}

/// An S3 client for `config`: path-style addressing when an endpoint override is set (local emulators
/// serve buckets under the path, not as host names).
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}
