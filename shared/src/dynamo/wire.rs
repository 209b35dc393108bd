//! BatchWriteItem sent by our own code: the body from [`super::body`], signed with SigV4 by the SDK's signer
//! (`aws-sigv4`) and sent over the SDK's own HTTPS connector, without the SDK's orchestrator.
//!
//! Ingest sends one request per 25 records, and the orchestrator's per-request work (its config bag, runtime
//! plugins, interceptors, endpoint resolution, serializing an input we replaced anyway, parsing the whole output
//! into SDK types) cost about a quarter of ingest's CPU. What the orchestrator gave is here, or is the writer's:
//!
//! - the endpoint is resolved once, by the SDK's own DynamoDB resolver, from the same settings the SDK reads
//!   (region, FIPS, dual-stack, `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL` / `endpoint_url`);
//! - credentials come from the configuration's provider, kept until shortly before they expire (five minutes,
//!   or half their lifetime when that is shorter), asked for again after `ExpiredTokenException`;
//! - the connector is the one the SDK's default client builds (rustls, connection pool, connect and read
//!   timeouts from the configuration, a proxy from `HTTPS_PROXY` and `NO_PROXY`);
//! - retries, backoff and the deadline are the writer's ([`super::writer`]), as they were with the SDK's retries
//!   off; errors are classified by the same rules as SDK errors ([`super::retry::retry_for`]).
//!
//! Not carried over: the SDK's clock-skew correction (Lambda's clock is kept by AWS), its operation timeouts
//! (the writer's deadline bounds every request), and account-ID-based endpoints (the regional endpoint
//! serves every account).
//!
//! The pure parts, [`signed_request`] and [`answer`], are tested here; the whole path runs in every integration
//! suite against moto and dynalite.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{error::CredentialsError, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use bytes::Bytes;
use serde::Deserialize;

use super::codec::PutItem;
use super::retry::retry_for;
use super::sdk::Written;
use super::table;
use crate::error::{Retry, StoreError};
use crate::sigv4::{sigv4_headers, SigV4};

const OPERATION: &str = "BatchWriteItem";
const TARGET: &str = "DynamoDB_20120810.BatchWriteItem";
const USER_AGENT: &str = concat!("notification-event-log/", env!("CARGO_PKG_VERSION"));
/// Credentials are renewed this long before they expire (at most; see [`Held::fresh`]).
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(300);
/// Error codes that mean the credentials signed with are no longer good (rotated or expired early).
const CREDENTIALS_REFUSED: [&str; 2] = ["ExpiredTokenException", "UnrecognizedClientException"];
/// How long the credentials provider may take (the SDK's identity cache allows 5 s too).
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends BatchWriteItem requests to one DynamoDB endpoint.
#[derive(Debug)]
pub struct BatchWriter {
    connector: SharedHttpConnector,
    endpoint: String,
    region: String,
    credentials: CredentialCache,
}

impl BatchWriter {
    /// A writer for the endpoint, region and credentials `aws` gives, over the SDK's default HTTPS connector.
    pub fn new(aws: &aws_types::SdkConfig) -> Result<Self, StoreError> {
        let region = aws
            .region()
            .ok_or_else(|| config_error("no AWS region is configured (AWS_REGION)"))?
            .to_string();
        let provider = aws
            .credentials_provider()
            .ok_or_else(|| config_error("no AWS credentials provider is configured"))?;
        let mut settings = HttpConnectorSettings::builder();
        if let Some(timeouts) = aws.timeout_config() {
            settings.set_connect_timeout(timeouts.connect_timeout());
            settings.set_read_timeout(timeouts.read_timeout());
        }
        let connector = connector(settings.build(), aws.sleep_impl());
        let endpoint = resolve_endpoint(aws, &region)?;
        Ok(Self::with_connector(connector, endpoint, region, provider))
    }

    /// A writer over `connector` to `endpoint` (the unit tests' canned answers).
    pub fn with_connector(
        connector: SharedHttpConnector,
        endpoint: String,
        region: String,
        credentials: SharedCredentialsProvider,
    ) -> Self {
        BatchWriter {
            connector,
            endpoint,
            region,
            credentials: CredentialCache {
                provider: credentials,
                current: tokio::sync::Mutex::new(None),
            },
        }
    }

    /// Puts `items` into `table` in one request: what DynamoDB left unprocessed, and what it cost.
    pub async fn put(&self, table: &str, items: Vec<PutItem>) -> Result<Written, StoreError> {
        let body = Bytes::from(super::body::batch_write_body(table, &items));
        drop(items);
        let credentials = self.credentials.get().await?;
        let request = signed_request(&self.endpoint, &self.region, &credentials, SystemTime::now(), body)?;
        // Transient whatever the cause, as the SDK's dispatch failures were: a reset, a refused or timed-out
        // connection, a connection the pool dropped.
        let response = self.connector.call(request).await.map_err(|e| {
            StoreError::new(
                OPERATION,
                Retry::Transient,
                format!("the request was not answered: {e}"),
            )
            .with_source(e)
        })?;
        let status = response.status().as_u16();
        let error_type = response.headers().get("x-amzn-errortype").map(str::to_owned);
        let request_id = response.headers().get("x-amzn-requestid").map(str::to_owned);
        let bytes = ByteStream::new(response.into_body())
            .collect()
            .await
            .map_err(|e| {
                StoreError::new(OPERATION, Retry::Transient, format!("the answer was cut off: {e}")).with_source(e)
            })?
            .into_bytes();
        let mut answer = answer(table, status, error_type.as_deref(), &bytes);
        if let Err(err) = &mut answer {
            if CREDENTIALS_REFUSED.iter().any(|code| err.message.starts_with(code)) {
                // Credentials the service no longer takes: the next try asks the provider for new ones.
                self.credentials.forget().await;
                err.retry = Retry::Transient;
            }
            if let Some(id) = request_id {
                err.message.push_str(&format!(" (request id {id})"));
            }
        }
        answer
    }
}

/// The HTTPS connector the SDK's default client builds: rustls with aws-lc, the given timeouts, and a proxy
/// from `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY` (as the SDK does from behavior version 2025-08-07).
fn connector(
    settings: HttpConnectorSettings,
    sleep: Option<aws_types::sdk_config::SharedAsyncSleep>,
) -> SharedHttpConnector {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    use aws_smithy_http_client::{proxy::ProxyConfig, Connector};
    let mut builder = Connector::builder().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
    builder.set_connector_settings(Some(settings));
    builder.set_sleep_impl(sleep);
    builder.set_proxy_config(Some(ProxyConfig::from_env()));
    SharedHttpConnector::new(builder.build())
}

/// The BatchWriteItem request carrying `body`, signed with SigV4 for `dynamodb` in `region` at time `at`.
pub fn signed_request(
    endpoint: &str,
    region: &str,
    credentials: &Credentials,
    at: SystemTime,
    body: Bytes,
) -> Result<HttpRequest, StoreError> {
    let length = body.len().to_string();
    let headers = [
        ("content-type", "application/x-amz-json-1.0"),
        ("x-amz-target", TARGET),
        ("content-length", length.as_str()),
    ];
    let uri = format!("{}/", endpoint.trim_end_matches('/'));
    let signed = sigv4_headers(
        &SigV4 {
            credentials,
            region,
            service: "dynamodb",
            at,
        },
        "POST",
        &uri,
        &headers,
        &body,
    )
    .map_err(signing_error)?;

    let mut request = HttpRequest::new(SdkBody::from(body));
    request.set_method("POST").map_err(|e| signing_error(e.to_string()))?;
    request
        .set_uri(uri.as_str())
        .map_err(|e| config_error(&format!("the endpoint {endpoint} is not a URL: {e}")))?;
    let out = request.headers_mut();
    for (name, value) in headers {
        out.insert(name, value.to_owned());
    }
    for (name, value) in signed {
        out.insert(name, value);
    }
    // Unsigned (SigV4 leaves it out), so that proxies may rewrite it.
    out.insert("user-agent", USER_AGENT);
    Ok(request)
}

/// What DynamoDB's answer says: the items left unprocessed and the capacity consumed, or the error, classified.
pub fn answer(table: &str, status: u16, error_type: Option<&str>, body: &[u8]) -> Result<Written, StoreError> {
    if status != 200 {
        return Err(service_error(status, error_type, body));
    }
    let output: Output = serde_json::from_slice(body).map_err(|e| {
        StoreError::new(
            OPERATION,
            Retry::Transient,
            format!("the answer is not a BatchWriteItem output: {e}"),
        )
    })?;
    let write_units = output.consumed.iter().filter_map(|c| c.units).sum();
    let mut unprocessed = Vec::new();
    for (name, requests) in output.unprocessed {
        for request in requests {
            match request.put.and_then(|put| put.item.id).and_then(|id| id.s) {
                Some(id) if name == table => unprocessed.push(id),
                // Not one of the puts sent: nothing can say which item it stands for, so the whole request is
                // taken as failed and sent again (puts are idempotent), never counted as stored.
                _ => {
                    return Err(StoreError::new(
                        OPERATION,
                        Retry::Transient,
                        "UnprocessedItems holds an entry that is not a put of this table's items",
                    ))
                }
            }
        }
    }
    Ok(Written {
        unprocessed,
        write_units,
    })
}

/// An error answer: its code from `x-amzn-ErrorType` or the body's `__type` or `code`, each of which may be
/// `namespace#Code:detail` (only `Code` names it), and its message (`message` or `Message`).
fn service_error(status: u16, error_type: Option<&str>, body: &[u8]) -> StoreError {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |name: &str| parsed.get(name).and_then(serde_json::Value::as_str);
    let code = error_type
        .or_else(|| field("__type"))
        .or_else(|| field("code"))
        .map(error_code)
        .unwrap_or_default();
    let retry = retry_for(code, status);
    let message = field("message").or_else(|| field("Message")).unwrap_or_default();
    let code = if code.is_empty() {
        format!("HTTP {status}")
    } else {
        code.to_owned()
    };
    StoreError::new(OPERATION, retry, format!("{code}: {message}"))
}

/// `Code` from `namespace#Code:detail`, `namespace#Code`, `Code:detail` or `Code`.
fn error_code(raw: &str) -> &str {
    let code = raw.split(':').next().unwrap_or(raw);
    code.rsplit('#').next().unwrap_or(code).trim()
}

#[derive(Deserialize)]
struct Output {
    #[serde(rename = "UnprocessedItems", default)]
    unprocessed: HashMap<String, Vec<Request>>,
    #[serde(rename = "ConsumedCapacity", default)]
    consumed: Vec<Consumed>,
}

#[derive(Deserialize)]
struct Request {
    #[serde(rename = "PutRequest")]
    put: Option<Put>,
}

#[derive(Deserialize)]
struct Put {
    #[serde(rename = "Item")]
    item: KeyOf,
}

/// The partition key of an item ([`table::PARTITION_KEY`]); the rest of it is skipped unread.
#[derive(Deserialize)]
struct KeyOf {
    id: Option<StringValue>,
}

#[derive(Deserialize)]
struct StringValue {
    #[serde(rename = "S")]
    s: Option<String>,
}

#[derive(Deserialize)]
struct Consumed {
    #[serde(rename = "CapacityUnits")]
    units: Option<f64>,
}

const _: () = assert!(matches!(table::PARTITION_KEY.as_bytes(), b"id"));

/// DynamoDB's endpoint for `aws`, as the SDK's DynamoDB client resolves it: a configured endpoint URL (the
/// service's own first), else the region's, with FIPS and dual-stack as configured.
fn resolve_endpoint(aws: &aws_types::SdkConfig, region: &str) -> Result<String, StoreError> {
    use aws_sdk_dynamodb::config::endpoint::{DefaultResolver, Params, ResolveEndpoint as _};
    use aws_types::service_config::ServiceConfigKey;
    use futures::FutureExt as _;

    let configured = if aws.get_origin("endpoint_url").is_client_config() {
        aws.endpoint_url().map(str::to_owned)
    } else {
        let key = ServiceConfigKey::builder()
            .service_id("DynamoDB")
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .map_err(|e| config_error(&e.to_string()))?;
        aws.service_config()
            .and_then(|conf| conf.load_config(key))
            .or_else(|| aws.endpoint_url().map(str::to_owned))
    };
    let mut params = Params::builder()
        .region(region)
        .use_fips(aws.use_fips().unwrap_or(false))
        .use_dual_stack(aws.use_dual_stack().unwrap_or(false))
        .account_id_endpoint_mode("disabled");
    if let Some(url) = configured {
        params = params.endpoint(url);
    }
    let params = params.build().map_err(|e| config_error(&e.to_string()))?;
    let endpoint = DefaultResolver::new()
        .resolve_endpoint(&params)
        .now_or_never()
        .ok_or_else(|| config_error("the endpoint resolver did not answer at once"))?
        .map_err(|e| config_error(&format!("no DynamoDB endpoint for region {region}: {e}")))?;
    Ok(endpoint.url().to_owned())
}

/// Credentials from the provider, kept until shortly before they expire; concurrent requests wait for one
/// renewal rather than each asking the provider.
#[derive(Debug)]
struct CredentialCache {
    provider: SharedCredentialsProvider,
    current: tokio::sync::Mutex<Option<Held>>,
}

impl CredentialCache {
    async fn get(&self) -> Result<Credentials, StoreError> {
        let mut current = self.current.lock().await;
        if let Some(held) = current.as_ref().filter(|held| held.fresh(SystemTime::now())) {
            return Ok(held.credentials.clone());
        }
        let asked = tokio::time::timeout(CREDENTIALS_TIMEOUT, self.provider.provide_credentials()).await;
        let credentials = match asked {
            Ok(Ok(credentials)) => credentials,
            Ok(Err(e)) => {
                let retry = match e {
                    CredentialsError::CredentialsNotLoaded(_) | CredentialsError::InvalidConfiguration(_) => {
                        Retry::Permanent
                    }
                    _ => Retry::Transient,
                };
                return Err(
                    StoreError::new(OPERATION, retry, format!("no credentials to sign with: {e}")).with_source(e),
                );
            }
            Err(_) => {
                return Err(StoreError::new(
                    OPERATION,
                    Retry::Transient,
                    format!("the credentials provider did not answer within {CREDENTIALS_TIMEOUT:?}"),
                ))
            }
        };
        *current = Some(Held {
            credentials: credentials.clone(),
            at: SystemTime::now(),
        });
        Ok(credentials)
    }

    /// Drops the credentials held, so that the next request asks the provider.
    async fn forget(&self) {
        *self.current.lock().await = None;
    }
}

/// Credentials and when they were obtained.
#[derive(Debug)]
struct Held {
    credentials: Credentials,
    at: SystemTime,
}

impl Held {
    /// Whether the credentials can still sign at `now`: no expiry, or more left than the smaller of five minutes
    /// and half the time they were obtained for (credentials issued for a few minutes are not asked for again
    /// on every request).
    fn fresh(&self, now: SystemTime) -> bool {
        let Some(expiry) = self.credentials.expiry() else {
            return true;
        };
        let lifetime = expiry.duration_since(self.at).unwrap_or_default();
        expiry > now + RENEW_BEFORE_EXPIRY.min(lifetime / 2)
    }
}

fn config_error(message: &str) -> StoreError {
    StoreError::new(OPERATION, Retry::Permanent, message.to_owned())
}

fn signing_error(message: String) -> StoreError {
    StoreError::new(
        OPERATION,
        Retry::Permanent,
        format!("the request could not be signed: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "t";

    fn ok(body: &str) -> Result<Written, StoreError> {
        answer(TABLE, 200, None, body.as_bytes())
    }

    #[test]
    fn unprocessed_items_come_back_as_their_ids_with_the_capacity_consumed() {
        let written = ok(r#"{"UnprocessedItems":{"t":[
                {"PutRequest":{"Item":{"id":{"S":"t:0:2"},"payload":{"B":"AQI="}}}},
                {"PutRequest":{"Item":{"payload":{"B":"AQI="},"id":{"S":"t:0:3"}}}}]},
              "ConsumedCapacity":[{"TableName":"t","CapacityUnits":4.0,"Table":{"CapacityUnits":2.0}},
                                  {"TableName":"t","CapacityUnits":1.5}]}"#)
        .expect("an answer");
        assert_eq!(written.unprocessed, vec!["t:0:2".to_owned(), "t:0:3".to_owned()]);
        assert_eq!(written.write_units, 5.5);
    }

    #[test]
    fn an_answer_without_unprocessed_items_or_capacity_is_all_written_at_no_reported_cost() {
        for body in [
            "{}",
            r#"{"UnprocessedItems":{}}"#,
            r#"{"UnprocessedItems":{},"ConsumedCapacity":[]}"#,
        ] {
            assert_eq!(ok(body).expect(body), Written::all(), "{body}");
        }
    }

    #[test]
    fn an_unprocessed_entry_that_is_not_one_of_the_puts_fails_the_request_instead_of_vanishing() {
        for body in [
            r#"{"UnprocessedItems":{"t":[{"PutRequest":{"Item":{"payload":{"B":"AQ=="}}}}]}}"#,
            r#"{"UnprocessedItems":{"t":[{"DeleteRequest":{"Key":{"id":{"S":"t:0:1"}}}}]}}"#,
            r#"{"UnprocessedItems":{"t":[{"PutRequest":{"Item":{"id":{"N":"1"}}}}]}}"#,
            r#"{"UnprocessedItems":{"other":[{"PutRequest":{"Item":{"id":{"S":"t:0:1"}}}}]}}"#,
        ] {
            let err = ok(body).expect_err(body);
            assert!(err.is_transient(), "{body}: {err}");
        }
    }

    #[test]
    fn an_answer_that_is_not_an_output_is_transient_never_taken_as_written() {
        for body in [
            "",
            "not json",
            "[1,2]",
            r#"{"UnprocessedItems":[]}"#,
            "{\"Unprocessed",
            "\u{0}\u{ff}",
        ] {
            let err = ok(body).expect_err(body);
            assert!(err.is_transient(), "{body:?}: {err}");
        }
        let err = answer(TABLE, 200, None, &[0xff, 0xfe, b'{']).expect_err("bad bytes");
        assert!(err.is_transient(), "{err}");
    }

    #[test]
    fn an_unavailable_endpoint_without_an_error_code_is_transient() {
        for status in [500, 502, 503, 504, 429] {
            let err = answer(TABLE, status, None, b"<html>Bad Gateway</html>").expect_err("an error");
            assert!(err.is_transient(), "{status}: {err}");
            assert!(err.to_string().contains(&format!("HTTP {status}")), "{err}");
        }
    }

    #[test]
    fn throttling_is_transient_and_a_missing_table_is_not() {
        let throttled = answer(
            TABLE,
            400,
            None,
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException"}"#,
        )
        .expect_err("an error");
        assert!(throttled.is_transient(), "{throttled}");
        let over = answer(
            TABLE,
            400,
            None,
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow"}"#,
        )
        .expect_err("an error");
        assert!(over.is_transient(), "{over}");
        let missing = answer(
            TABLE,
            400,
            None,
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"no table"}"#,
        )
        .expect_err("an error");
        assert!(!missing.is_transient(), "{missing}");
        assert_eq!(
            missing.to_string(),
            "BatchWriteItem failed: ResourceNotFoundException: no table"
        );
    }

    #[test]
    fn the_error_type_header_names_the_error_when_the_body_does_not() {
        let err = answer(
            TABLE,
            400,
            Some("ValidationException:http://internal.amazon.com/coral/com.amazon.coral.validate/"),
            br#"{"Message":"Item size has exceeded the maximum allowed size"}"#,
        )
        .expect_err("an error");
        assert!(!err.is_transient(), "{err}");
        assert_eq!(
            err.to_string(),
            "BatchWriteItem failed: ValidationException: Item size has exceeded the maximum allowed size"
        );
        let throttled = answer(TABLE, 400, Some("ThrottlingException"), b"").expect_err("an error");
        assert!(throttled.is_transient(), "{throttled}");
    }

    #[test]
    fn a_code_is_read_whatever_namespace_or_detail_comes_with_it() {
        for raw in [
            "ThrottlingException",
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/",
            "com.amazonaws.dynamodb.v20120810#ThrottlingException",
            "com.amazonaws.dynamodb.v20120810#ThrottlingException:http://internal.amazon.com/",
            " ThrottlingException ",
        ] {
            assert_eq!(error_code(raw), "ThrottlingException", "{raw}");
            let from_header = answer(TABLE, 400, Some(raw), b"").expect_err("an error");
            assert!(from_header.is_transient(), "{raw}: {from_header}");
            let body = serde_json::json!({ "__type": raw }).to_string();
            let from_body = answer(TABLE, 400, None, body.as_bytes()).expect_err("an error");
            assert!(from_body.is_transient(), "{raw}: {from_body}");
        }
        let from_code = answer(TABLE, 400, None, br#"{"code":"ResourceNotFoundException"}"#).expect_err("an error");
        assert!(
            from_code.to_string().contains("ResourceNotFoundException"),
            "{from_code}"
        );
    }

    #[test]
    fn a_body_with_both_message_spellings_keeps_its_code() {
        let err = answer(
            TABLE,
            400,
            None,
            br#"{"__type":"x#ProvisionedThroughputExceededException","message":"slow down","Message":"Slow"}"#,
        )
        .expect_err("an error");
        assert!(err.is_transient(), "{err}");
        assert_eq!(
            err.to_string(),
            "BatchWriteItem failed: ProvisionedThroughputExceededException: slow down"
        );
    }

    #[test]
    fn a_client_error_without_a_code_is_permanent() {
        let err = answer(TABLE, 400, None, b"\xff\x00 not json").expect_err("an error");
        assert!(!err.is_transient(), "{err}");
    }

    fn credentials(expiry: Option<SystemTime>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            expiry,
            "test",
        )
    }

    #[test]
    fn the_request_is_a_signed_post_of_the_body_to_the_endpoint() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        let body = Bytes::from_static(br#"{"RequestItems":{"t":[]},"ReturnConsumedCapacity":"TOTAL"}"#);
        let request = signed_request(
            "http://127.0.0.1:8000",
            "us-east-1",
            &credentials(None),
            at,
            body.clone(),
        )
        .expect("signed");
        assert_eq!(request.method(), "POST");
        assert_eq!(request.uri(), "http://127.0.0.1:8000/");
        assert_eq!(request.body().bytes(), Some(&body[..]));
        let header = |name: &str| request.headers().get(name).unwrap_or_default();
        assert_eq!(header("x-amz-target"), "DynamoDB_20120810.BatchWriteItem");
        assert_eq!(header("content-type"), "application/x-amz-json-1.0");
        assert_eq!(header("content-length"), body.len().to_string());
        assert_eq!(header("x-amz-date"), "20150830T123600Z");
        assert!(header("user-agent").starts_with("notification-event-log/"));
        // The signature, computed here by AWS's documented SigV4 steps, independently of the signer.
        let canonical = format!(
            "POST\n/\n\ncontent-length:{}\ncontent-type:application/x-amz-json-1.0\nhost:127.0.0.1:8000\n\
             x-amz-date:20150830T123600Z\nx-amz-target:DynamoDB_20120810.BatchWriteItem\n\n\
             content-length;content-type;host;x-amz-date;x-amz-target\n{}",
            body.len(),
            hex::encode(sha256(&body))
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/dynamodb/aws4_request\n{}",
            hex::encode(sha256(canonical.as_bytes()))
        );
        let key = [&b"20150830"[..], b"us-east-1", b"dynamodb", b"aws4_request"]
            .iter()
            .fold(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_vec(), |key, part| {
                hmac(&key, part).to_vec()
            });
        let expected = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-target, Signature={}",
            hex::encode(hmac(&key, to_sign.as_bytes()))
        );
        assert_eq!(header("authorization"), expected);
        // Another body or time signs differently.
        let signature = |body: Bytes, at: SystemTime| {
            signed_request("http://127.0.0.1:8000", "us-east-1", &credentials(None), at, body)
                .expect("signed")
                .headers()
                .get("authorization")
                .map(str::to_owned)
        };
        assert_eq!(signature(body.clone(), at), Some(expected.clone()));
        assert_ne!(signature(Bytes::from_static(b"{}"), at), Some(expected.clone()));
        assert_ne!(signature(body, at + Duration::from_secs(1)), Some(expected));
    }

    fn sha256(bytes: &[u8]) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(bytes).into()
    }

    /// HMAC-SHA256 (RFC 2104), for the independent signature above.
    fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
        use sha2::Digest as _;
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&sha256(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut inner = sha2::Sha256::new();
        inner.update(block.map(|b| b ^ 0x36));
        inner.update(data);
        let mut outer = sha2::Sha256::new();
        outer.update(block.map(|b| b ^ 0x5c));
        outer.update(inner.finalize());
        outer.finalize().into()
    }

    #[test]
    fn a_session_token_is_sent_and_signed() {
        let with_token = Credentials::new("AKID", "secret", Some("token-1".into()), None, "test");
        let request = signed_request(
            "https://dynamodb.eu-west-1.amazonaws.com",
            "eu-west-1",
            &with_token,
            SystemTime::now(),
            Bytes::from_static(b"{}"),
        )
        .expect("signed");
        assert_eq!(request.headers().get("x-amz-security-token"), Some("token-1"));
        assert_eq!(request.uri(), "https://dynamodb.eu-west-1.amazonaws.com/");
        let authorization = request.headers().get("authorization").unwrap_or_default();
        assert!(
            authorization.contains("/eu-west-1/dynamodb/aws4_request"),
            "{authorization}"
        );
        assert!(authorization.contains("x-amz-security-token"), "{authorization}");
    }

    #[test]
    fn an_endpoint_that_is_not_a_url_is_a_permanent_error() {
        let err = signed_request(
            "not a url",
            "us-east-1",
            &credentials(None),
            SystemTime::now(),
            Bytes::new(),
        )
        .expect_err("no URL");
        assert!(!err.is_transient(), "{err}");
    }

    fn held(lifetime: Duration, at: SystemTime) -> Held {
        Held {
            credentials: credentials(Some(at + lifetime)),
            at,
        }
    }

    #[test]
    fn credentials_are_renewed_five_minutes_before_they_expire_or_halfway_through_a_short_life() {
        let now = SystemTime::now();
        let forever = Held {
            credentials: credentials(None),
            at: now,
        };
        assert!(forever.fresh(now + Duration::from_secs(86_400)));
        let hour = held(Duration::from_secs(3600), now);
        assert!(hour.fresh(now + Duration::from_secs(3600 - 301)));
        assert!(!hour.fresh(now + Duration::from_secs(3600 - 299)));
        assert!(!hour.fresh(now + Duration::from_secs(3601)));
        // Issued for four minutes: kept for the first two, not asked for again on every request.
        let short = held(Duration::from_secs(240), now);
        assert!(short.fresh(now));
        assert!(short.fresh(now + Duration::from_secs(119)));
        assert!(!short.fresh(now + Duration::from_secs(121)));
    }

    /// A credentials provider mock (unit tests only) that counts the calls and gives credentials expiring
    /// `lifetime` from now, or an error.
    #[derive(Debug, Clone)]
    struct CountingProvider {
        calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        lifetime: Option<Duration>,
        fail: Option<fn() -> CredentialsError>,
    }

    impl ProvideCredentials for CountingProvider {
        fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let answer = match self.fail {
                Some(error) => Err(error()),
                None => Ok(credentials(self.lifetime.map(|l| SystemTime::now() + l))),
            };
            aws_credential_types::provider::future::ProvideCredentials::ready(answer)
        }
    }

    fn counting(
        lifetime: Option<Duration>,
        fail: Option<fn() -> CredentialsError>,
    ) -> (CredentialCache, CountingProvider) {
        let provider = CountingProvider {
            calls: Default::default(),
            lifetime,
            fail,
        };
        let cache = CredentialCache {
            provider: SharedCredentialsProvider::new(provider.clone()),
            current: tokio::sync::Mutex::new(None),
        };
        (cache, provider)
    }

    fn calls(provider: &CountingProvider) -> usize {
        provider.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn credentials_are_asked_for_once_while_fresh_and_again_when_not_or_when_forgotten() {
        let (cache, provider) = counting(Some(Duration::from_secs(3600)), None);
        for _ in 0..5 {
            cache.get().await.expect("credentials");
        }
        assert_eq!(calls(&provider), 1);
        cache.forget().await;
        cache.get().await.expect("credentials");
        assert_eq!(calls(&provider), 2);
        // Already expired when given: asked for on every request (nothing better to do), each one still signs.
        let (cache, provider) = counting(Some(Duration::ZERO), None);
        cache.get().await.expect("credentials");
        cache.get().await.expect("credentials");
        assert_eq!(calls(&provider), 2);
    }

    #[tokio::test]
    async fn a_provider_that_fails_fails_the_request_transient_unless_nothing_is_configured() {
        let (cache, _) = counting(None, Some(|| CredentialsError::provider_error("IMDS unreachable")));
        let err = cache.get().await.expect_err("no credentials");
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("no credentials to sign with"), "{err}");
        let (cache, _) = counting(None, Some(|| CredentialsError::not_loaded("no provider found")));
        assert!(!cache.get().await.expect_err("no credentials").is_transient());
        let (cache, _) = counting(None, Some(|| CredentialsError::unhandled("odd")));
        assert!(cache.get().await.expect_err("no credentials").is_transient());
    }

    fn sdk_config(endpoint: Option<&str>, region: &str, fips: bool) -> aws_types::SdkConfig {
        let mut config = aws_types::SdkConfig::builder()
            .region(aws_types::region::Region::new(region.to_owned()))
            .use_fips(fips)
            .credentials_provider(SharedCredentialsProvider::new(credentials(None)));
        if let Some(url) = endpoint {
            config = config.endpoint_url(url);
        }
        config.build()
    }

    #[test]
    fn the_endpoint_is_the_configured_url_or_the_regions_own() {
        assert_eq!(
            resolve_endpoint(
                &sdk_config(Some("http://127.0.0.1:4566"), "us-east-1", false),
                "us-east-1"
            )
            .expect("resolved"),
            "http://127.0.0.1:4566"
        );
        assert_eq!(
            resolve_endpoint(&sdk_config(None, "eu-central-1", false), "eu-central-1").expect("resolved"),
            "https://dynamodb.eu-central-1.amazonaws.com"
        );
        assert_eq!(
            resolve_endpoint(&sdk_config(None, "us-east-1", true), "us-east-1").expect("resolved"),
            "https://dynamodb-fips.us-east-1.amazonaws.com"
        );
        assert_eq!(
            resolve_endpoint(&sdk_config(None, "cn-north-1", false), "cn-north-1").expect("resolved"),
            "https://dynamodb.cn-north-1.amazonaws.com.cn"
        );
    }

    /// A connector mock (unit tests only): answers every request with `status`, `headers` and `body`, and keeps
    /// the requests.
    #[derive(Debug, Clone)]
    struct CannedConnector {
        status: u16,
        headers: &'static [(&'static str, &'static str)],
        body: &'static str,
        sent: std::sync::Arc<std::sync::Mutex<Vec<HttpRequest>>>,
    }

    impl HttpConnector for CannedConnector {
        fn call(&self, request: HttpRequest) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
            use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
            self.sent.lock().expect("lock").push(request);
            let status = self.status.try_into().expect("a status");
            let mut response = HttpResponse::new(status, SdkBody::from(self.body));
            for (name, value) in self.headers {
                response.headers_mut().insert(*name, *value);
            }
            aws_smithy_runtime_api::client::http::HttpConnectorFuture::ready(Ok(response))
        }
    }

    /// A writer whose requests `connector` answers, signing with credentials from `provider`.
    fn canned_with(
        connector: CannedConnector,
        provider: impl ProvideCredentials + 'static,
    ) -> (BatchWriter, CannedConnector) {
        let writer = BatchWriter::with_connector(
            SharedHttpConnector::new(connector.clone()),
            "http://127.0.0.1:8000".into(),
            "us-east-1".into(),
            SharedCredentialsProvider::new(provider),
        );
        (writer, connector)
    }

    fn canned(
        status: u16,
        headers: &'static [(&'static str, &'static str)],
        body: &'static str,
    ) -> (BatchWriter, CannedConnector) {
        let connector = CannedConnector {
            status,
            headers,
            body,
            sent: Default::default(),
        };
        canned_with(connector, credentials(None))
    }

    fn put_item(id: &str) -> PutItem {
        let mut item = PutItem::default();
        item.insert(
            table::attr::ID,
            aws_sdk_dynamodb::types::AttributeValue::S(id.to_owned()),
        );
        item
    }

    #[tokio::test]
    async fn a_put_sends_the_items_signed_and_reads_the_answer() {
        let (writer, connector) = canned(
            200,
            &[],
            r#"{"UnprocessedItems":{"t":[{"PutRequest":{"Item":{"id":{"S":"t:0:2"}}}}]},
                "ConsumedCapacity":[{"TableName":"t","CapacityUnits":2.0}]}"#,
        );
        let written = writer
            .put("t", vec![put_item("t:0:1"), put_item("t:0:2")])
            .await
            .expect("answered");
        assert_eq!(written.unprocessed, vec!["t:0:2".to_owned()]);
        assert_eq!(written.write_units, 2.0);
        let sent = connector.sent.lock().expect("lock");
        assert_eq!(sent.len(), 1);
        let body = sent[0].body().bytes().expect("an in-memory body");
        assert_eq!(
            body,
            super::super::body::batch_write_body("t", &[put_item("t:0:1"), put_item("t:0:2")])
        );
        assert!(sent[0].headers().get("authorization").is_some());
    }

    #[tokio::test]
    async fn a_put_answered_with_an_error_gives_the_classified_error() {
        let (writer, _) = canned(
            400,
            &[("x-amzn-errortype", "ProvisionedThroughputExceededException:")],
            "{}",
        );
        let err = writer.put("t", vec![put_item("t:0:1")]).await.expect_err("an error");
        assert!(err.is_transient(), "{err}");
        let (writer, _) = canned(413, &[], "");
        let err = writer.put("t", vec![put_item("t:0:1")]).await.expect_err("an error");
        assert!(!err.is_transient(), "{err}");
    }

    #[tokio::test]
    async fn credentials_the_service_refuses_are_asked_for_again_and_the_request_is_tried_again() {
        let provider = CountingProvider {
            calls: Default::default(),
            lifetime: None,
            fail: None,
        };
        let connector = CannedConnector {
            status: 400,
            headers: &[],
            body: r#"{"__type":"com.amazon.coral.service#ExpiredTokenException","message":"The security token included in the request is expired"}"#,
            sent: Default::default(),
        };
        let (writer, _) = canned_with(connector, provider.clone());
        let err = writer.put("t", vec![put_item("t:0:1")]).await.expect_err("refused");
        assert!(err.is_transient(), "{err}");
        writer.put("t", vec![put_item("t:0:1")]).await.expect_err("refused");
        assert_eq!(calls(&provider), 2, "asked again after the refusal");
    }

    #[tokio::test]
    async fn an_error_names_the_request_id_the_service_gave() {
        let (writer, _) = canned(500, &[("x-amzn-RequestId", "ABC123")], "{}");
        let err = writer.put("t", vec![put_item("t:0:1")]).await.expect_err("an error");
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().ends_with("(request id ABC123)"), "{err}");
    }

    #[test]
    fn the_services_own_endpoint_url_comes_before_the_global_one() {
        #[derive(Debug)]
        struct ServiceEndpoint;
        impl aws_types::service_config::LoadServiceConfig for ServiceEndpoint {
            fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
                (key.service_id() == "DynamoDB" && key.env() == "AWS_ENDPOINT_URL")
                    .then(|| "http://127.0.0.1:7001".to_owned())
            }
        }
        let config = aws_types::SdkConfig::builder()
            .region(aws_types::region::Region::new("us-east-1"))
            .service_config(ServiceEndpoint)
            .build();
        assert_eq!(
            resolve_endpoint(&config, "us-east-1").expect("resolved"),
            "http://127.0.0.1:7001"
        );
    }

    #[test]
    fn a_configuration_without_a_region_is_refused_at_start() {
        let config = aws_types::SdkConfig::builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials(None)))
            .build();
        let err = BatchWriter::new(&config).expect_err("no region");
        assert!(err.to_string().contains("region"), "{err}");
    }
}
