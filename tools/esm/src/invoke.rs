//! Invoking the function with one event and reading its answer: in this process, or through the Lambda Invoke
//! API. A partial batch response (`batchItemFailures`) names the partitions to deliver again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

/// What an invocation answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Every record was processed.
    Success,
    /// `batchItemFailures`: resume each `topic-partition` at the offset.
    Partial(Vec<(String, i64)>),
}

/// Why an invocation failed: the mapping then delivers the same records again after a backoff.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The in-process handler failed (records not stored, or not a Kafka event).
    #[error(transparent)]
    Handler(Arc<ingest::handler::IngestError>),
    /// The Lambda Invoke API call itself failed (no such function, throttled, unreachable).
    #[error("Invoke {function}: {message}")]
    Api {
        function: String,
        message: String,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The function ran and failed (`X-Amz-Function-Error`), with its error document.
    #[error("{kind} function error: {body}")]
    Function { kind: String, body: String },
    /// The response named a batch item failure that cannot be read; AWS then retries the whole batch.
    #[error("malformed batch item failure {0}; retrying the whole batch")]
    MalformedResponse(String),
    /// The event or the response could not be (de)serialized.
    #[error("the event or response is not serializable JSON: {0}")]
    Json(Arc<serde_json::Error>),
}

/// Invokes the function with one event.
#[async_trait]
pub trait Invoke: Send + Sync {
    async fn invoke(&self, event: &Value) -> Result<Invocation, InvokeError>;

    /// The function's name (or ARN), as on-failure records name it.
    fn function_name(&self) -> String {
        "ingest".into()
    }
}

/// Reads a function response: success, or the partial batch response of the Kafka trigger.
pub fn read_response(response: &Value) -> Result<Invocation, InvokeError> {
    let Some(failures) = response.get("batchItemFailures").and_then(Value::as_array) else {
        return Ok(Invocation::Success);
    };
    if failures.is_empty() {
        return Ok(Invocation::Success);
    }
    failures
        .iter()
        .map(|failure| {
            let id = &failure["itemIdentifier"];
            match (id["partition"].as_str(), id["offset"].as_i64()) {
                (Some(partition), Some(offset)) => Ok((partition.to_owned(), offset)),
                // AWS treats a malformed identifier as the whole batch failing.
                _ => Err(InvokeError::MalformedResponse(failure.to_string())),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Invocation::Partial)
}

/// Invokes the ingest handler in this process.
pub struct InProcess {
    pub ingest: Arc<ingest::handler::Ingest>,
    /// The time the handler gets, as a Lambda timeout would give it.
    pub timeout: Duration,
}

#[async_trait]
impl Invoke for InProcess {
    async fn invoke(&self, event: &Value) -> Result<Invocation, InvokeError> {
        // The bytes Lambda would receive, through the decoder the deployed function runs.
        let bytes = serde_json::to_vec(event).map_err(|e| InvokeError::Json(Arc::new(e)))?;
        match self.ingest.process(bytes, self.timeout).await {
            Ok((response, _)) => {
                read_response(&serde_json::to_value(response).map_err(|e| InvokeError::Json(Arc::new(e)))?)
            }
            Err(err) => Err(InvokeError::Handler(Arc::new(err))),
        }
    }
}

/// Invokes a function through the Lambda Invoke API: `cargo lambda watch`, LocalStack or AWS itself.
pub struct LambdaInvoke {
    pub client: aws_sdk_lambda::Client,
    pub function: String,
}

#[async_trait]
impl Invoke for LambdaInvoke {
    async fn invoke(&self, event: &Value) -> Result<Invocation, InvokeError> {
        let payload = serde_json::to_vec(event).map_err(|e| InvokeError::Json(Arc::new(e)))?;
        let output = self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(|e| InvokeError::Api {
                function: self.function.clone(),
                message: aws_sdk_lambda::error::DisplayErrorContext(&e).to_string(),
                source: Arc::new(e),
            })?;
        let body = output.payload.map(|p| p.into_inner()).unwrap_or_default();
        if let Some(kind) = output.function_error {
            return Err(InvokeError::Function {
                kind,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        let response: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        read_response(&response)
    }

    fn function_name(&self) -> String {
        self.function.clone()
    }
}
