//! The store ports (one narrow trait per capability) and their DynamoDB and S3 adapters.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::item::Item;
use crate::table::{self, Lookup};

/// Whether an operation may succeed if tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Throttling, a 5xx, a timeout or a connection failure: try again after a backoff.
    Transient,
    /// The request itself is wrong (validation, access denied, missing table): trying again cannot help.
    Permanent,
}

/// An error from DynamoDB or S3, classified for the retry policy.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct StoreError {
    pub operation: &'static str,
    pub retry: Retry,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    pub fn new(operation: &'static str, retry: Retry, message: impl Into<String>) -> Self {
        StoreError {
            operation,
            retry,
            message: message.into(),
            source: None,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.retry == Retry::Transient
    }
}

/// Error codes that mean "slow down or try again".
const TRANSIENT_CODES: [&str; 10] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "TransactionInProgressException",
];

/// Classifies an SDK error: the retry policy's one decision (`is_retriable`).
pub fn classify<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retry = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => Retry::Transient,
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            // A 5xx or 429 without a known code (a load balancer's or proxy's 502/503, an HTML error page) is
            // the service being unavailable, not a request it refused.
            let status = service.raw().status();
            if TRANSIENT_CODES.contains(&code) || status.is_server_error() || status.as_u16() == 429 {
                Retry::Transient
            } else {
                Retry::Permanent
            }
        }
        _ => Retry::Permanent,
    };
    let message = match &err {
        SdkError::ServiceError(service) => format!(
            "{}: {}",
            service.err().code().unwrap_or("service error"),
            service.err().message().unwrap_or_default()
        ),
        other => format!("{}", aws_smithy_types::error::display::DisplayErrorContext(other)),
    };
    StoreError {
        operation,
        retry,
        message,
        source: Some(Box::new(err)),
    }
}

/// Writes up to 25 items in one request.
#[async_trait]
pub trait BatchPut: Send + Sync {
    /// Puts the items; returns those DynamoDB left unprocessed.
    async fn batch_put(&self, items: Vec<Item>) -> Result<Vec<Item>, StoreError>;
}

/// Puts objects in S3.
#[async_trait]
pub trait BlobPut: Send + Sync {
    async fn put_blob(&self, bucket: &str, key: &str, bytes: Vec<u8>, sha256_hex: &str) -> Result<(), StoreError>;
}

/// Reads objects from S3.
#[async_trait]
pub trait BlobGet: Send + Sync {
    async fn get_blob(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError>;
}

/// Reads one item by id.
#[async_trait]
pub trait ItemGet: Send + Sync {
    async fn get_item(&self, id: &str) -> Result<Option<Item>, StoreError>;
}

/// One page of an index query.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexQuery {
    pub lookup: Lookup,
    /// The full id looked up (the index key is derived from it).
    pub value: String,
    /// Inclusive bounds on `event_sk`.
    pub from: Option<String>,
    pub to: Option<String>,
    pub event_type: Option<String>,
    pub ascending: bool,
    /// How many items DynamoDB may evaluate for this page.
    pub limit: i32,
    pub start: Option<Item>,
}

/// A page of projected items and where to go on from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndexPage {
    pub items: Vec<Item>,
    pub last_key: Option<Item>,
}

/// Queries an index.
#[async_trait]
pub trait IndexRead: Send + Sync {
    async fn query_index(&self, query: &IndexQuery) -> Result<IndexPage, StoreError>;
}

/// The DynamoDB adapter.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

#[async_trait]
impl BatchPut for DynamoStore {
    async fn batch_put(&self, items: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let requests: Vec<WriteRequest> = items
            .into_iter()
            .map(|item| {
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build().expect("item is set"))
                    .build()
            })
            .collect();
        let output = self
            .client
            .batch_write_item()
            .request_items(&self.table, requests)
            .send()
            .await
            .map_err(|e| classify("BatchWriteItem", e))?;
        Ok(output
            .unprocessed_items
            .unwrap_or_default()
            .remove(&self.table)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|request| request.put_request.map(|put| put.item))
            .collect())
    }
}

#[async_trait]
impl ItemGet for DynamoStore {
    async fn get_item(&self, id: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(table::PARTITION_KEY, AttributeValue::S(id.to_owned()))
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        Ok(output.item)
    }
}

#[async_trait]
impl IndexRead for DynamoStore {
    async fn query_index(&self, query: &IndexQuery) -> Result<IndexPage, StoreError> {
        let index = query.lookup.index();
        let mut names = HashMap::from([
            ("#pk".to_owned(), index.partition_key.to_owned()),
            ("#field".to_owned(), index.field.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":pk".to_owned(), AttributeValue::S(table::index_key(&query.value))),
            (":value".to_owned(), AttributeValue::S(query.value.clone())),
        ]);
        let mut key_condition = "#pk = :pk".to_owned();
        if query.from.is_some() || query.to.is_some() {
            names.insert("#sk".into(), table::EVENT_SORT_KEY.into());
            match (&query.from, &query.to) {
                (Some(from), Some(to)) => {
                    key_condition.push_str(" AND #sk BETWEEN :from AND :to");
                    values.insert(":from".into(), AttributeValue::S(from.clone()));
                    values.insert(":to".into(), AttributeValue::S(to.clone()));
                }
                (Some(from), None) => {
                    key_condition.push_str(" AND #sk >= :from");
                    values.insert(":from".into(), AttributeValue::S(from.clone()));
                }
                (None, Some(to)) => {
                    key_condition.push_str(" AND #sk <= :to");
                    values.insert(":to".into(), AttributeValue::S(to.clone()));
                }
                (None, None) => {}
            }
        }
        // The full id is compared too: over-long ids share their index key form with nothing else this way.
        let mut filter = "#field = :value".to_owned();
        if let Some(event_type) = &query.event_type {
            names.insert("#et".into(), "event_type".into());
            values.insert(":et".into(), AttributeValue::S(event_type.clone()));
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
            .limit(query.limit)
            .set_exclusive_start_key(query.start.clone())
            .send()
            .await
            .map_err(|e| classify("Query", e))?;
        Ok(IndexPage {
            items: output.items.unwrap_or_default(),
            last_key: output.last_evaluated_key,
        })
    }
}

/// The S3 adapter.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Store { client }
    }
}

#[async_trait]
impl BlobPut for S3Store {
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
impl BlobGet for S3Store {
    async fn get_blob(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        let output = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("GetObject", e))?;
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| StoreError::new("GetObject", Retry::Transient, e.to_string()))?;
        Ok(bytes.into_bytes().to_vec())
    }
}

/// An S3 client for `config`: path-style addressing when an endpoint override is set (local emulators
/// serve buckets under the path, not as host names).
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn item() -> Item {
        Item::from([("id".to_owned(), AttributeValue::S("t:0:1".into()))])
    }

    async fn batch_put_answered(status: u16, body: &'static str) -> StoreError {
        let rule = mock!(aws_sdk_dynamodb::Client::batch_write_item)
            .then_http_response(move || HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body)));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()));
        DynamoStore::new(client, "t")
            .batch_put(vec![item()])
            .await
            .expect_err("the mocked answer is an error")
    }

    #[tokio::test]
    async fn an_unavailable_endpoint_without_an_error_code_is_transient() {
        for status in [500, 502, 503, 504, 429] {
            let err = batch_put_answered(status, "<html>Bad Gateway</html>").await;
            assert!(err.is_transient(), "{status}: {err}");
        }
    }

    #[tokio::test]
    async fn throttling_is_transient_and_a_missing_table_is_not() {
        let throttled = batch_put_answered(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException"}"#,
        )
        .await;
        assert!(throttled.is_transient(), "{throttled}");
        let missing = batch_put_answered(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"no table"}"#,
        )
        .await;
        assert!(!missing.is_transient(), "{missing}");
        assert!(missing.to_string().contains("ResourceNotFoundException"), "{missing}");
    }
}
