//! The cursor key from AWS Secrets Manager: the secret's current version signs, its previous version (kept by
//! Secrets Manager through one rotation) still verifies.

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};

use crate::cursor::KeySource;

/// One secret, read by ARN.
#[derive(Debug, Clone)]
pub struct SecretsManagerKeys {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
}

impl SecretsManagerKeys {
    pub fn new(client: aws_sdk_secretsmanager::Client, arn: impl Into<String>) -> Self {
        SecretsManagerKeys {
            client,
            arn: arn.into(),
        }
    }

    /// The secret's text at `stage`; `None` when the secret has no version at that stage.
    async fn version(&self, stage: &str) -> Result<Option<Vec<u8>>, String> {
        let output = match self
            .client
            .get_secret_value()
            .secret_id(&self.arn)
            .version_stage(stage)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if stage != "AWSCURRENT" && e.code() == Some("ResourceNotFoundException") => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "GetSecretValue {} ({stage}): {}",
                    self.arn,
                    DisplayErrorContext(&e)
                ))
            }
        };
        let text = output.secret_string.unwrap_or_default();
        if text.len() < shared::config::QueryConfig::MIN_SECRET_BYTES {
            return Err(format!(
                "secret {} ({stage}) is shorter than {} characters",
                self.arn,
                shared::config::QueryConfig::MIN_SECRET_BYTES
            ));
        }
        Ok(Some(text.into_bytes()))
    }
}

#[async_trait]
impl KeySource for SecretsManagerKeys {
    async fn keys(&self) -> Result<Vec<Vec<u8>>, String> {
        let current = self
            .version("AWSCURRENT")
            .await?
            .ok_or("the secret has no current version")?;
        let previous = self.version("AWSPREVIOUS").await.unwrap_or_else(|error| {
            tracing::warn!(%error, "the previous version of the cursor secret cannot be read; cursors signed with it fail");
            None
        });
        Ok(std::iter::once(current).chain(previous).collect())
    }
}
