//! The schema sources of the configuration, wired once at start: the directory, the Confluent-compatible
//! registry (its credentials read from Secrets Manager when `SCHEMA_REGISTRY_SECRET_ARN` names them) and Glue.

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use shared::config::SchemaConfig;
use shared::schema::registry::{resolver_for, RegistryAuth, SchemaResolver};

/// The resolver for `config`, with SDK clients from `aws`. A secret that cannot be read or parsed is a start-up
/// error: every Confluent-framed record would otherwise be held back until the function is fixed.
pub async fn resolver(config: &SchemaConfig, aws: &aws_config::SdkConfig) -> anyhow::Result<SchemaResolver> {
    let auth =
        match &config.registry_secret_arn {
            Some(arn) => {
                let client = aws_sdk_secretsmanager::Client::new(aws);
                let secret =
                    client.get_secret_value().secret_id(arn).send().await.map_err(|e| {
                        anyhow::anyhow!("SCHEMA_REGISTRY_SECRET_ARN {arn}: {}", DisplayErrorContext(&e))
                    })?;
                let text = secret
                    .secret_string()
                    .ok_or_else(|| anyhow::anyhow!("SCHEMA_REGISTRY_SECRET_ARN {arn} has no secret string"))?;
                Some(
                    RegistryAuth::from_secret(text)
                        .map_err(|e| anyhow::anyhow!("SCHEMA_REGISTRY_SECRET_ARN {arn}: {e}"))?,
                )
            }
            None => None,
        };
    let glue = config.glue.then(|| aws_sdk_glue::Client::new(aws));
    Ok(resolver_for(config, auth, glue))
}
