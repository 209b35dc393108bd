//! Configuration, read once at start from environment variables. Parsing is pure (it takes a lookup
//! function), so every rule has a test; each invalid value gets an error naming the variable and what it takes.

use std::str::FromStr;
use std::time::Duration;

use crate::dynamo::retry::Backoff;
use crate::dynamo::{Layout, WriteOptions};
use crate::normalize::TopicServiceMap;

/// A configuration variable with a bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

fn required(get: &dyn Fn(&str) -> Option<String>, variable: &'static str) -> Result<String, ConfigError> {
    match get(variable).map(|v| v.trim().to_owned()) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(ConfigError {
            variable,
            problem: "is required and not set".into(),
        }),
    }
}

fn optional(get: &dyn Fn(&str) -> Option<String>, variable: &str) -> Option<String> {
    get(variable).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn number<T: FromStr + PartialOrd + std::fmt::Display + Copy>(
    get: &dyn Fn(&str) -> Option<String>,
    variable: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let Some(text) = optional(get, variable) else {
        return Ok(default);
    };
    match text.parse::<T>() {
        Ok(value) if value >= min && value <= max => Ok(value),
        _ => Err(ConfigError {
            variable,
            problem: format!("{text:?} is not a whole number from {min} to {max}"),
        }),
    }
}

/// What to do when records cannot be stored in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Fail the invocation: the trigger redelivers the whole batch (the default, works everywhere).
    FailInvocation,
    /// Return `batchItemFailures` naming, per topic-partition, the first offset not stored; needs
    /// `FunctionResponseTypes: [ReportBatchItemFailures]` on the event source mapping.
    ReportBatchItemFailures,
}

/// The ingest function's configuration.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub table: String,
    pub layout: Layout,
    pub topic_services: TopicServiceMap,
    pub write: WriteOptions,
    pub failure_mode: FailureMode,
    /// Time kept in hand before the invocation's deadline, to answer before Lambda cuts the function off.
    pub deadline_margin: Duration,
    /// Log record payloads (off by default: they carry customer data).
    pub log_payloads: bool,
    /// Where the schemas of registry-framed records come from.
    pub schemas: SchemaConfig,
}

/// Where schemas come from (README, "Formats"): a directory, a Confluent-compatible registry, AWS Glue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaConfig {
    /// `SCHEMA_DIR`: `{id}.avsc`, `{id}.proto` and `{id}.json` files, asked first.
    pub dir: Option<std::path::PathBuf>,
    /// `SCHEMA_REGISTRY_URL`: a Confluent-compatible registry.
    pub registry_url: Option<String>,
    /// `SCHEMA_REGISTRY_BASIC_AUTH` (`key:secret`) or `SCHEMA_REGISTRY_BEARER_TOKEN`.
    pub registry_auth: Option<crate::schema::registry::RegistryAuth>,
    /// `SCHEMA_REGISTRY_SECRET_ARN`: a Secrets Manager secret with the credentials, read at cold start.
    pub registry_secret_arn: Option<String>,
    /// `GLUE_SCHEMA_REGISTRY` (`true` by default): ask AWS Glue for Glue-framed records' schemas.
    pub glue: bool,
    /// `SCHEMA_CACHE_SIZE`: how many schemas an instance keeps (1,000 by default).
    pub cache_size: usize,
}

impl SchemaConfig {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        use crate::schema::registry::RegistryAuth;
        let registry_url = optional(get, "SCHEMA_REGISTRY_URL");
        if let Some(url) = &registry_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError {
                    variable: "SCHEMA_REGISTRY_URL",
                    problem: format!("{url:?} is not an http:// or https:// URL"),
                });
            }
        }
        let registry_auth = match (
            optional(get, "SCHEMA_REGISTRY_BASIC_AUTH"),
            optional(get, "SCHEMA_REGISTRY_BEARER_TOKEN"),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError {
                    variable: "SCHEMA_REGISTRY_BASIC_AUTH",
                    problem: "set it or SCHEMA_REGISTRY_BEARER_TOKEN, not both".into(),
                })
            }
            (Some(info), None) => Some(RegistryAuth::basic(&info).ok_or_else(|| ConfigError {
                variable: "SCHEMA_REGISTRY_BASIC_AUTH",
                problem: "expected key:secret".into(),
            })?),
            (None, Some(token)) => Some(RegistryAuth::Bearer(token)),
            (None, None) => None,
        };
        let glue = match optional(get, "GLUE_SCHEMA_REGISTRY").as_deref() {
            None | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(other) => {
                return Err(ConfigError {
                    variable: "GLUE_SCHEMA_REGISTRY",
                    problem: format!("{other:?} is not true or false"),
                })
            }
        };
        Ok(SchemaConfig {
            dir: optional(get, "SCHEMA_DIR").map(Into::into),
            registry_url,
            registry_auth,
            registry_secret_arn: optional(get, "SCHEMA_REGISTRY_SECRET_ARN"),
            glue,
            cache_size: number(get, "SCHEMA_CACHE_SIZE", 1_000, 1, 100_000)?,
        })
    }
}

impl IngestConfig {
    /// The variables this reads, for documentation and error messages.
    pub const VARIABLES: [&'static str; 18] = [
        "TABLE_NAME",
        "PAYLOAD_BUCKET",
        "PAYLOAD_PREFIX",
        "RETENTION_DAYS",
        "TOPIC_SERVICE_MAP",
        "WRITE_CONCURRENCY",
        "COMPRESS_MIN_BYTES",
        "MAX_ITEM_BYTES",
        "FAILURE_MODE",
        "DEADLINE_MARGIN_MS",
        "LOG_PAYLOADS",
        "SCHEMA_DIR",
        "SCHEMA_REGISTRY_URL",
        "SCHEMA_REGISTRY_BASIC_AUTH",
        "SCHEMA_REGISTRY_BEARER_TOKEN",
        "SCHEMA_REGISTRY_SECRET_ARN",
        "GLUE_SCHEMA_REGISTRY",
        "SCHEMA_CACHE_SIZE",
    ];

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table = required(get, "TABLE_NAME")?;
        let retention_days: u64 = number(get, "RETENTION_DAYS", 0, 0, 36_500)?;
        let topic_services =
            TopicServiceMap::parse(&optional(get, "TOPIC_SERVICE_MAP").unwrap_or_default()).map_err(|problem| {
                ConfigError {
                    variable: "TOPIC_SERVICE_MAP",
                    problem: format!("{problem}; expected topic=service,prefix.*=service"),
                }
            })?;
        let failure_mode = match optional(get, "FAILURE_MODE").as_deref() {
            None | Some("fail-invocation") => FailureMode::FailInvocation,
            Some("report-batch-item-failures") => FailureMode::ReportBatchItemFailures,
            Some(other) => {
                return Err(ConfigError {
                    variable: "FAILURE_MODE",
                    problem: format!("{other:?} is not fail-invocation or report-batch-item-failures"),
                })
            }
        };
        let log_payloads = match optional(get, "LOG_PAYLOADS").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(ConfigError {
                    variable: "LOG_PAYLOADS",
                    problem: format!("{other:?} is not true or false"),
                })
            }
        };
        let mut prefix = optional(get, "PAYLOAD_PREFIX").unwrap_or_else(|| "payloads/".into());
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(IngestConfig {
            table,
            layout: Layout {
                compress_min_bytes: number(get, "COMPRESS_MIN_BYTES", 8 * 1024, 0, 10 * 1024 * 1024)?,
                max_item_bytes: number(get, "MAX_ITEM_BYTES", 350_000, 4_096, 400_000)?,
                bucket: optional(get, "PAYLOAD_BUCKET"),
                prefix,
                retention_seconds: (retention_days > 0).then_some(retention_days * 86_400),
            },
            topic_services,
            write: WriteOptions {
                concurrency: number(get, "WRITE_CONCURRENCY", 16, 1, 64)?,
                backoff: Backoff::default(),
            },
            failure_mode,
            deadline_margin: Duration::from_millis(number(get, "DEADLINE_MARGIN_MS", 1_500, 0, 60_000)?),
            log_payloads,
            schemas: SchemaConfig::from_lookup(get)?,
        })
    }
}

/// Where the key that signs pagination cursors comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorKey {
    /// `CURSOR_SECRET`: the key itself (local runs, tests).
    Given(Vec<u8>),
    /// `CURSOR_SECRET_ARN`: a Secrets Manager secret, read at cold start (its current and previous versions) and
    /// read again when a cursor signed with a newer version arrives, so a rotation needs no redeploy.
    SecretArn(String),
    /// Neither, outside Lambda: a random key for this process. Cursors then fail on any other instance, so in
    /// Lambda this is a start-up error instead.
    Generated(Vec<u8>),
}

/// The query function's configuration.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    pub table: String,
    /// The key that signs pagination cursors (at least 32 bytes), or where to read it.
    pub cursor_key: CursorKey,
    /// How long a cursor stays valid.
    pub cursor_ttl: Duration,
}

impl QueryConfig {
    /// The variables this reads, for documentation and the template's check. `AWS_LAMBDA_FUNCTION_NAME` is set
    /// by Lambda: it says the function runs there.
    pub const VARIABLES: [&'static str; 5] = [
        "TABLE_NAME",
        "CURSOR_SECRET",
        "CURSOR_SECRET_ARN",
        "CURSOR_TTL_HOURS",
        "AWS_LAMBDA_FUNCTION_NAME",
    ];

    /// The shortest key that signs cursors.
    pub const MIN_SECRET_BYTES: usize = 32;

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table = required(get, "TABLE_NAME")?;
        let in_lambda = optional(get, "AWS_LAMBDA_FUNCTION_NAME").is_some();
        let cursor_key = match (optional(get, "CURSOR_SECRET"), optional(get, "CURSOR_SECRET_ARN")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError {
                    variable: "CURSOR_SECRET_ARN",
                    problem: "set either CURSOR_SECRET or CURSOR_SECRET_ARN, not both".into(),
                })
            }
            (Some(secret), None) if secret.len() >= Self::MIN_SECRET_BYTES => CursorKey::Given(secret.into_bytes()),
            (Some(_), None) => {
                return Err(ConfigError {
                    variable: "CURSOR_SECRET",
                    problem: format!("must be at least {} characters", Self::MIN_SECRET_BYTES),
                })
            }
            (None, Some(arn)) if arn.starts_with("arn:") && arn.contains(":secretsmanager:") => {
                CursorKey::SecretArn(arn)
            }
            (None, Some(arn)) => {
                return Err(ConfigError {
                    variable: "CURSOR_SECRET_ARN",
                    problem: format!("{arn:?} is not the ARN of a Secrets Manager secret"),
                })
            }
            (None, None) if in_lambda => {
                return Err(ConfigError {
                    variable: "CURSOR_SECRET_ARN",
                    problem: "is required in Lambda (or CURSOR_SECRET): a per-instance key would make every \
                              cursor fail on the other warm instances"
                        .into(),
                })
            }
            (None, None) => CursorKey::Generated((0..32).map(|_| rand::random::<u8>()).collect()),
        };
        let ttl_hours: u64 = number(get, "CURSOR_TTL_HOURS", 24, 1, 24 * 30)?;
        Ok(QueryConfig {
            table,
            cursor_key,
            cursor_ttl: Duration::from_secs(ttl_hours * 3600),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    /// The names a configuration asks its lookup for.
    fn asked(read: impl Fn(&dyn Fn(&str) -> Option<String>)) -> Vec<String> {
        let names = std::sync::Mutex::new(Vec::new());
        read(&|name| {
            names.lock().unwrap().push(name.to_owned());
            (name == "TABLE_NAME").then(|| "t".to_owned())
        });
        let mut names = names.into_inner().unwrap();
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn the_documented_variables_are_exactly_those_read() {
        let sorted = |names: &[&str]| {
            let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            names.sort();
            names
        };
        let ingest = asked(|get| {
            let _ = IngestConfig::from_lookup(get);
        });
        assert_eq!(ingest, sorted(&IngestConfig::VARIABLES));
        let query = asked(|get| {
            let _ = QueryConfig::from_lookup(get);
        });
        assert_eq!(query, sorted(&QueryConfig::VARIABLES));
    }

    #[test]
    fn ingest_defaults_need_only_a_table() {
        let config = IngestConfig::from_lookup(&lookup(&[("TABLE_NAME", "t")])).unwrap();
        assert_eq!(config.table, "t");
        assert_eq!(config.layout.bucket, None);
        assert_eq!(config.layout.retention_seconds, None);
        assert_eq!(config.write.concurrency, 16);
        assert_eq!(config.failure_mode, FailureMode::FailInvocation);
        assert!(!config.log_payloads);
    }

    #[test]
    fn ingest_reads_every_setting() {
        let config = IngestConfig::from_lookup(&lookup(&[
            ("TABLE_NAME", "t"),
            ("PAYLOAD_BUCKET", "b"),
            ("PAYLOAD_PREFIX", "p"),
            ("RETENTION_DAYS", "30"),
            ("TOPIC_SERVICE_MAP", "orders=order-service"),
            ("WRITE_CONCURRENCY", "4"),
            ("FAILURE_MODE", "report-batch-item-failures"),
            ("LOG_PAYLOADS", "true"),
        ]))
        .unwrap();
        assert_eq!(config.layout.bucket.as_deref(), Some("b"));
        assert_eq!(config.layout.prefix, "p/");
        assert_eq!(config.layout.retention_seconds, Some(30 * 86_400));
        assert_eq!(config.topic_services.service_for("orders"), Some("order-service"));
        assert_eq!(config.write.concurrency, 4);
        assert_eq!(config.failure_mode, FailureMode::ReportBatchItemFailures);
        assert!(config.log_payloads);
    }

    #[test]
    fn ingest_names_the_variable_that_is_wrong() {
        for (pairs, variable) in [
            (vec![], "TABLE_NAME"),
            (
                vec![("TABLE_NAME", "t"), ("WRITE_CONCURRENCY", "0")],
                "WRITE_CONCURRENCY",
            ),
            (
                vec![("TABLE_NAME", "t"), ("WRITE_CONCURRENCY", "many")],
                "WRITE_CONCURRENCY",
            ),
            (vec![("TABLE_NAME", "t"), ("RETENTION_DAYS", "-1")], "RETENTION_DAYS"),
            (
                vec![("TABLE_NAME", "t"), ("TOPIC_SERVICE_MAP", "orders")],
                "TOPIC_SERVICE_MAP",
            ),
            (vec![("TABLE_NAME", "t"), ("FAILURE_MODE", "retry")], "FAILURE_MODE"),
            (
                vec![("TABLE_NAME", "t"), ("MAX_ITEM_BYTES", "500000")],
                "MAX_ITEM_BYTES",
            ),
            (vec![("TABLE_NAME", "t"), ("LOG_PAYLOADS", "yes")], "LOG_PAYLOADS"),
        ] {
            let err = IngestConfig::from_lookup(&lookup(&pairs)).unwrap_err();
            assert_eq!(err.variable, variable, "{err}");
        }
    }

    #[test]
    fn query_takes_a_long_enough_cursor_secret_or_generates_one() {
        let config = QueryConfig::from_lookup(&lookup(&[("TABLE_NAME", "t")])).unwrap();
        assert!(matches!(&config.cursor_key, CursorKey::Generated(key) if key.len() == 32));
        let secret = "s".repeat(40);
        let config = QueryConfig::from_lookup(&lookup(&[("TABLE_NAME", "t"), ("CURSOR_SECRET", &secret)])).unwrap();
        assert_eq!(config.cursor_key, CursorKey::Given(secret.into_bytes()));
        let err = QueryConfig::from_lookup(&lookup(&[("TABLE_NAME", "t"), ("CURSOR_SECRET", "short")])).unwrap_err();
        assert_eq!(err.variable, "CURSOR_SECRET");
    }

    #[test]
    fn in_lambda_the_cursor_key_comes_from_secrets_manager_and_cannot_be_left_out() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cursor-AbCdEf";
        let config = QueryConfig::from_lookup(&lookup(&[
            ("TABLE_NAME", "t"),
            ("CURSOR_SECRET_ARN", arn),
            ("AWS_LAMBDA_FUNCTION_NAME", "query"),
        ]))
        .unwrap();
        assert_eq!(config.cursor_key, CursorKey::SecretArn(arn.into()));
        let err = QueryConfig::from_lookup(&lookup(&[("TABLE_NAME", "t"), ("AWS_LAMBDA_FUNCTION_NAME", "query")]))
            .unwrap_err();
        assert_eq!(err.variable, "CURSOR_SECRET_ARN");
        assert!(err.problem.contains("required in Lambda"), "{err}");
        for bad in [
            vec![("TABLE_NAME", "t"), ("CURSOR_SECRET_ARN", "cursor-secret")],
            vec![
                ("TABLE_NAME", "t"),
                ("CURSOR_SECRET_ARN", arn),
                ("CURSOR_SECRET", "0123456789abcdef0123456789abcdef"),
            ],
        ] {
            let err = QueryConfig::from_lookup(&lookup(&bad)).unwrap_err();
            assert_eq!(err.variable, "CURSOR_SECRET_ARN", "{err}");
        }
    }
}
