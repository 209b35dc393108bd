//! The retry policy, on its own: which errors are worth another try ([`classify`]), how long to wait before it
//! ([`Backoff`]: exponential, full jitter), and [`retry`], which tries until success, a permanent error or the
//! deadline.

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use tokio::time::Instant;

use crate::error::{Retry, StoreError};
use crate::ports::{Attempt, WriteError};

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
        SdkError::ServiceError(service) => retry_for(
            service.err().code().unwrap_or_default(),
            service.raw().status().as_u16(),
        ),
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
    StoreError::new(operation, retry, message).with_source(err)
}

/// Whether an error answer with `code` (empty when it has none) and HTTP `status` is worth another try. A 5xx
/// or 429 without a known code (a load balancer's or proxy's 502/503, an HTML error page) is the service being
/// unavailable, not a request it refused.
pub fn retry_for(code: &str, status: u16) -> Retry {
    if TRANSIENT_CODES.contains(&code) || (500..600).contains(&status) || status == 429 {
        Retry::Transient
    } else {
        Retry::Permanent
    }
}

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

/// The error of a request still unanswered at the deadline (transient: a redelivery may well succeed).
pub fn no_answer(operation: &'static str) -> StoreError {
    StoreError::new(
        operation,
        Retry::Transient,
        "no answer before the invocation's deadline",
    )
}

/// Runs `operation` until it succeeds, fails permanently, or the next backoff would pass the deadline.
/// Each attempt is cut off at the deadline; `retries` counts the attempts after the first.
pub async fn retry<T, F, Fut>(
    backoff: Backoff,
    deadline: Instant,
    retries: &mut u64,
    mut operation: F,
) -> Result<T, WriteError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0u32;
    loop {
        let answer = match tokio::time::timeout_at(deadline, operation()).await {
            Ok(answer) => answer,
            Err(_) => Err(no_answer("request")),
        };
        match answer {
            Ok(value) => return Ok(value),
            Err(err) if !err.is_transient() => return Err(WriteError::Rejected(err)),
            Err(err) => {
                let delay = backoff.delay(attempt);
                if Instant::now() + delay >= deadline {
                    return Err(WriteError::OutOfTime {
                        attempts: attempt + 1,
                        last: Attempt::Failed(err),
                    });
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
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

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

    /// The error an SDK call (GetItem) gives for a mocked answer, classified.
    async fn sdk_call_answered(status: u16, body: &'static str) -> StoreError {
        let rule = mock!(aws_sdk_dynamodb::Client::get_item)
            .then_http_response(move || HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body)));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()));
        let err = client
            .get_item()
            .table_name("t")
            .key("id", AttributeValue::S("t:0:1".into()))
            .send()
            .await
            .expect_err("the mocked answer is an error");
        classify("GetItem", err)
    }

    #[tokio::test]
    async fn an_unavailable_endpoint_without_an_error_code_is_transient() {
        for status in [500, 502, 503, 504, 429] {
            let err = sdk_call_answered(status, "<html>Bad Gateway</html>").await;
            assert!(err.is_transient(), "{status}: {err}");
        }
    }

    #[tokio::test]
    async fn throttling_is_transient_and_a_missing_table_is_not() {
        let throttled = sdk_call_answered(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException"}"#,
        )
        .await;
        assert!(throttled.is_transient(), "{throttled}");
        let missing = sdk_call_answered(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"no table"}"#,
        )
        .await;
        assert!(!missing.is_transient(), "{missing}");
        assert!(missing.to_string().contains("ResourceNotFoundException"), "{missing}");
        assert!(
            std::error::Error::source(&missing).is_some(),
            "the SDK error is kept as the cause"
        );
    }
}
