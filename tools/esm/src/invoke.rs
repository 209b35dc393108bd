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

/// Invokes the function with one event.
#[async_trait]
pub trait Invoke: Send + Sync {
    async fn invoke(&self, event: &Value) -> Result<Invocation, String>;
}

/// Reads a function response: success, or the partial batch response of the Kafka trigger.
pub fn read_response(response: &Value) -> Result<Invocation, String> {
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
                _ => Err(format!(
                    "malformed batch item failure {failure}; retrying the whole batch"
                )),
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
    async fn invoke(&self, event: &Value) -> Result<Invocation, String> {
        match self.ingest.process(event, self.timeout).await {
            Ok((response, _)) => read_response(&serde_json::to_value(response).map_err(|e| e.to_string())?),
            Err(err) => Err(err.to_string()),
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
    async fn invoke(&self, event: &Value) -> Result<Invocation, String> {
        let payload = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        let output = self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "Invoke {}: {}",
                    self.function,
                    aws_sdk_lambda::error::DisplayErrorContext(e)
                )
            })?;
        let body = output.payload.map(|p| p.into_inner()).unwrap_or_default();
        if let Some(kind) = output.function_error {
            return Err(format!("{kind} function error: {}", String::from_utf8_lossy(&body)));
        }
        let response: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        read_response(&response)
    }
}
