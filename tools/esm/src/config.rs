//! The mapping's settings, as `local-esm` and `notifications esm` take them: topics by list or by pattern (new
//! matching topics are picked up within seconds), starting position `TRIM_HORIZON` (earliest) or `LATEST` for
//! partitions the group has no offset for yet, batch size and window, which trigger is imitated, and AWS's error
//! handling controls for Kafka (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html>):
//! `MaximumRetryAttempts`, `MaximumRecordAgeInSeconds`, `BisectBatchOnFunctionError` and an on-failure destination
//! (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html>), with AWS's names and
//! ranges.

/// The default topic pattern: every topic but Kafka's internal ones (`__consumer_offsets`, `_schemas`, ...).
pub const ALL_TOPICS: &str = "^[^_].*";

/// Where a new consumer group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartingPosition {
    /// The oldest records still in the topic (`auto.offset.reset=earliest`).
    #[value(name = "TRIM_HORIZON")]
    TrimHorizon,
    /// Only records produced from now on.
    #[value(name = "LATEST")]
    Latest,
    /// The first records at or after `--starting-position-timestamp`.
    #[value(name = "AT_TIMESTAMP")]
    AtTimestamp,
}

/// Which trigger is imitated (it sets `eventSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// Amazon MSK: `aws:kafka`, with an `eventSourceArn`.
    Msk,
    /// Self-managed Apache Kafka: `SelfManagedKafka`.
    SelfManaged,
}

/// The mapping's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct EsmConfig {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092")]
    pub bootstrap_servers: String,
    /// Consumer group id.
    #[arg(long, default_value = "notification-event-log")]
    pub group_id: String,
    /// Topics to read, comma-separated; a name starting with `^` is a regular expression.
    #[arg(long, value_delimiter = ',', default_value = ALL_TOPICS)]
    pub topics: Vec<String>,
    /// Where a partition the group has no offset for starts: TRIM_HORIZON (the oldest record), LATEST (new
    /// records only) or AT_TIMESTAMP (the first record at or after --starting-position-timestamp).
    #[arg(long, value_enum, default_value = "TRIM_HORIZON")]
    pub starting_position: StartingPosition,
    /// StartingPositionTimestamp, with AT_TIMESTAMP: Unix time in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub starting_position_timestamp: Option<i64>,
    /// Most records in one invocation (1 to 10,000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// How long to gather records after the first one of a batch, in milliseconds (0 to 300,000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=300_000))]
    pub batching_window_ms: u64,
    #[arg(long, value_enum, default_value = "msk")]
    pub source: SourceKind,
    /// The largest backoff between retries of a failed invocation, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub max_backoff_ms: u64,
    /// How often to look for new topics that match a pattern, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    pub metadata_refresh_ms: u64,
    /// Extra librdkafka settings, NAME=VALUE (repeatable), e.g. security.protocol=SASL_SSL.
    #[arg(long = "kafka-option", value_name = "NAME=VALUE")]
    pub kafka_options: Vec<String>,
    /// MaximumRetryAttempts: retries of a failed batch before its records go to the on-failure destination (or
    /// are discarded): -1 (forever; 10 when there is a destination, as AWS applies) or 0 to 10,000.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_parser = retry_attempts)]
    pub maximum_retry_attempts: i64,
    /// MaximumRecordAgeInSeconds: a record older than this (by its Kafka timestamp) is not sent to the function
    /// but to the on-failure destination (or discarded): -1 (no limit) or 60 to 604,800.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_parser = record_age)]
    pub maximum_record_age_in_seconds: i64,
    /// BisectBatchOnFunctionError: a batch the function fails is split in two and each half retried, until the
    /// failing records are alone.
    #[arg(long)]
    pub bisect_batch_on_function_error: bool,
    /// DestinationConfig.OnFailure.Destination: `kafka://TOPIC` (a topic on the same cluster, not one the
    /// mapping reads: one message per failed record), or the ARN of an S3 bucket, SQS queue or SNS topic (the
    /// invocation record; reached through the AWS SDK's settings, such as AWS_ENDPOINT_URL for moto).
    #[arg(long, value_name = "kafka://TOPIC|ARN")]
    pub on_failure: Option<String>,
    /// FilterCriteria: a filter pattern on the record's `value`, in Lambda's syntax (repeatable, at most 5; a
    /// record that matches none is skipped and committed).
    #[arg(long = "filter-pattern", value_name = "JSON")]
    pub filter_patterns: Vec<String>,
    /// Consumers in the group, each invoking the function with its own partitions' batches concurrently, as
    /// provisioned pollers do (ProvisionedPollerConfig; 1 to 32 here).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub pollers: u32,
    /// Every this many seconds, a status line: records and records per second, lag per partition, invocations,
    /// failed invocations, records given up and skipped (0: none).
    #[arg(long, default_value_t = 10)]
    pub status_interval_seconds: u64,
    /// Also write each status, as JSON, to this file (replaced whole each time), for tools.
    #[arg(long, value_name = "PATH")]
    pub status_json: Option<std::path::PathBuf>,
    /// The AWS settings an S3, SQS or SNS destination is reached with (default: the environment's).
    #[arg(skip)]
    pub destination_aws: Option<aws_config::SdkConfig>,
}

fn retry_attempts(text: &str) -> Result<i64, String> {
    match text.parse::<i64>() {
        Ok(n) if n == -1 || (0..=10_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not -1 or a whole number from 0 to 10000 (MaximumRetryAttempts)"
        )),
    }
}

fn record_age(text: &str) -> Result<i64, String> {
    match text.parse::<i64>() {
        Ok(n) if n == -1 || (60..=604_800).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not -1 or a number of seconds from 60 to 604800 (MaximumRecordAgeInSeconds)"
        )),
    }
}

/// Where failed records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A Kafka topic on the same cluster: one message per failed record.
    Kafka(String),
    /// An S3 bucket (`arn:aws:s3:::BUCKET`): the invocation record with the whole event.
    S3 { bucket: String },
    /// An SQS queue (`arn:aws:sqs:REGION:ACCOUNT:NAME`): the invocation record's metadata.
    Sqs { account: String, name: String },
    /// An SNS topic (`arn:aws:sns:REGION:ACCOUNT:NAME`): the invocation record's metadata.
    Sns { arn: String },
}

impl Destination {
    /// Reads an S3, SQS or SNS ARN.
    pub fn from_arn(arn: &str) -> anyhow::Result<Destination> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let bad = || {
            anyhow::anyhow!(
                "--on-failure {arn:?}: give kafka://TOPIC, or the ARN of an S3 bucket (arn:aws:s3:::BUCKET), an SQS \
                 queue or an SNS topic (arn:aws:sqs|sns:REGION:ACCOUNT:NAME)"
            )
        };
        let [scheme, partition, service, region, account, resource] = parts.as_slice() else {
            return Err(bad());
        };
        if *scheme != "arn" || !partition.starts_with("aws") || resource.is_empty() {
            return Err(bad());
        }
        match *service {
            "s3" if region.is_empty() && account.is_empty() && !resource.contains('/') => Ok(Destination::S3 {
                bucket: (*resource).to_owned(),
            }),
            "sqs" if !region.is_empty() && !account.is_empty() => Ok(Destination::Sqs {
                account: (*account).to_owned(),
                name: (*resource).to_owned(),
            }),
            "sns" if !region.is_empty() && !account.is_empty() => Ok(Destination::Sns { arn: arn.to_owned() }),
            _ => Err(bad()),
        }
    }
}

impl EsmConfig {
    /// The settings with their defaults and `bootstrap_servers`.
    pub fn new(bootstrap_servers: &str) -> EsmConfig {
        EsmConfig {
            bootstrap_servers: bootstrap_servers.to_owned(),
            group_id: "notification-event-log".into(),
            topics: vec![ALL_TOPICS.into()],
            starting_position: StartingPosition::TrimHorizon,
            starting_position_timestamp: None,
            batch_size: 100,
            batching_window_ms: 500,
            source: SourceKind::Msk,
            max_backoff_ms: 10_000,
            metadata_refresh_ms: 2_000,
            kafka_options: Vec::new(),
            maximum_retry_attempts: -1,
            maximum_record_age_in_seconds: -1,
            bisect_batch_on_function_error: false,
            on_failure: None,
            filter_patterns: Vec::new(),
            pollers: 1,
            status_interval_seconds: 0,
            status_json: None,
            destination_aws: None,
        }
    }

    /// A librdkafka client configuration for the cluster: the bootstrap servers, then `settings`, then the
    /// `--kafka-option`s (security and the like), which win.
    pub fn client_config(&self, settings: &[(&str, &str)]) -> anyhow::Result<rdkafka::ClientConfig> {
        let mut client = rdkafka::ClientConfig::new();
        client.set("bootstrap.servers", &self.bootstrap_servers);
        for (name, value) in settings {
            client.set(*name, *value);
        }
        for option in &self.kafka_options {
            let (name, value) = option
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--kafka-option {option:?} is not NAME=VALUE"))?;
            client.set(name, value);
        }
        Ok(client)
    }

    /// The on-failure destination, checked: `kafka://TOPIC`, with a valid topic name that no topic or pattern
    /// read matches (AWS refuses a destination that would feed the mapping its own failures).
    pub fn destination(&self) -> anyhow::Result<Option<Destination>> {
        let Some(text) = &self.on_failure else {
            return Ok(None);
        };
        let Some(topic) = text.strip_prefix("kafka://") else {
            return Destination::from_arn(text).map(Some);
        };
        // AWS's pattern: kafka://([^.]([a-zA-Z0-9\-_.]{0,248})).
        let valid = !topic.is_empty()
            && !topic.starts_with('.')
            && topic.len() <= 249
            && topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            anyhow::bail!("--on-failure {text:?}: {topic:?} is not a Kafka topic name");
        }
        for read in &self.topics {
            let matches = match read.strip_prefix('^') {
                Some(_) => regex::Regex::new(read)
                    .map_err(|e| anyhow::anyhow!("--topics {read:?} is not a regular expression: {e}"))?
                    .is_match(topic),
                None => read == topic,
            };
            if matches {
                anyhow::bail!(
                    "--on-failure {text:?}: the mapping reads {topic:?} itself (through --topics {read:?}), so its \
                     failures would come back to it; read other topics or choose another destination"
                );
            }
        }
        Ok(Some(Destination::Kafka(topic.to_owned())))
    }

    /// With AT_TIMESTAMP, the time to start at in epoch milliseconds; checked against the other settings.
    pub fn start_at(&self) -> anyhow::Result<Option<i64>> {
        match (self.starting_position, self.starting_position_timestamp) {
            (StartingPosition::AtTimestamp, Some(seconds)) if seconds >= 0 => {
                if let Some(pattern) = self.topics.iter().find(|t| t.starts_with('^')) {
                    anyhow::bail!(
                        "AT_TIMESTAMP needs the topics by name, not the pattern {pattern:?}: which partitions start at \
                         the timestamp is decided when the mapping starts"
                    );
                }
                Ok(Some(seconds.saturating_mul(1000)))
            }
            (StartingPosition::AtTimestamp, Some(seconds)) => {
                anyhow::bail!("--starting-position-timestamp {seconds} is before 1970")
            }
            (StartingPosition::AtTimestamp, None) => {
                anyhow::bail!("AT_TIMESTAMP needs --starting-position-timestamp (Unix time in seconds)")
            }
            (_, Some(_)) => anyhow::bail!("--starting-position-timestamp is only for --starting-position AT_TIMESTAMP"),
            (_, None) => Ok(None),
        }
    }

    /// The filter patterns, checked.
    pub fn filters(&self) -> anyhow::Result<crate::filter::Filters> {
        crate::filter::Filters::parse(&self.filter_patterns).map_err(|e| anyhow::anyhow!("--filter-pattern: {e}"))
    }

    /// How often a failed batch is retried: `None` for ever. With a destination, AWS applies at most 10.
    pub fn retries(&self) -> Option<u32> {
        match (self.maximum_retry_attempts, &self.on_failure) {
            (-1, None) => None,
            (-1, Some(_)) => Some(10),
            (n, _) => Some(n.clamp(0, 10_000) as u32),
        }
    }

    /// The oldest a record may be when it is sent to the function, if there is a limit.
    pub fn maximum_record_age(&self) -> Option<std::time::Duration> {
        (self.maximum_record_age_in_seconds > 0)
            .then(|| std::time::Duration::from_secs(self.maximum_record_age_in_seconds as u64))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        config: EsmConfig,
    }

    fn parse(args: &[&str]) -> Result<EsmConfig, String> {
        let mut all = vec!["local-esm"];
        all.extend_from_slice(args);
        Args::try_parse_from(all).map(|a| a.config).map_err(|e| e.to_string())
    }

    #[test]
    fn the_error_handling_controls_take_awss_ranges() {
        for (args, ok) in [
            (vec!["--maximum-retry-attempts", "-1"], true),
            (vec!["--maximum-retry-attempts", "0"], true),
            (vec!["--maximum-retry-attempts", "10000"], true),
            (vec!["--maximum-retry-attempts", "10001"], false),
            (vec!["--maximum-retry-attempts", "-2"], false),
            (vec!["--maximum-record-age-in-seconds", "-1"], true),
            (vec!["--maximum-record-age-in-seconds", "60"], true),
            (vec!["--maximum-record-age-in-seconds", "604800"], true),
            (vec!["--maximum-record-age-in-seconds", "59"], false),
            (vec!["--maximum-record-age-in-seconds", "604801"], false),
        ] {
            let parsed = parse(&args);
            assert_eq!(parsed.is_ok(), ok, "{args:?}: {parsed:?}");
            if let Err(message) = parsed {
                assert!(message.contains("Maximum"), "{message}");
            }
        }
    }

    #[test]
    fn at_timestamp_takes_a_timestamp_and_topics_by_name() {
        let mut config = EsmConfig::new("b:9092");
        config.topics = vec!["orders".into()];
        assert_eq!(config.start_at().unwrap(), None);
        config.starting_position = StartingPosition::AtTimestamp;
        assert!(config
            .start_at()
            .unwrap_err()
            .to_string()
            .contains("needs --starting-position-timestamp"));
        config.starting_position_timestamp = Some(1_796_000_000);
        assert_eq!(config.start_at().unwrap(), Some(1_796_000_000_000));
        config.topics = vec![ALL_TOPICS.into()];
        assert!(config.start_at().unwrap_err().to_string().contains("by name"));
        config.topics = vec!["orders".into()];
        config.starting_position = StartingPosition::Latest;
        assert!(config.start_at().unwrap_err().to_string().contains("only for"));
        assert!(parse(&[
            "--starting-position",
            "AT_TIMESTAMP",
            "--starting-position-timestamp",
            "1796000000"
        ])
        .is_ok());
    }

    #[test]
    fn retries_are_endless_by_default_and_ten_with_a_destination() {
        let mut config = EsmConfig::new("b:9092");
        assert_eq!(config.retries(), None);
        config.on_failure = Some("kafka://dlt".into());
        config.topics = vec!["orders".into()];
        assert_eq!(config.retries(), Some(10));
        config.maximum_retry_attempts = 2;
        assert_eq!(config.retries(), Some(2));
        assert_eq!(config.maximum_record_age(), None);
        config.maximum_record_age_in_seconds = 60;
        assert_eq!(config.maximum_record_age(), Some(std::time::Duration::from_secs(60)));
    }

    #[test]
    fn a_destination_is_a_kafka_topic_the_mapping_does_not_read() {
        let mut config = EsmConfig::new("b:9092");
        config.topics = vec!["orders".into(), "payments".into()];
        config.on_failure = Some("kafka://orders-dlt".into());
        assert_eq!(
            config.destination().unwrap(),
            Some(Destination::Kafka("orders-dlt".into()))
        );
        for (arn, destination) in [
            (
                "arn:aws:s3:::failed-batches",
                Destination::S3 {
                    bucket: "failed-batches".into(),
                },
            ),
            (
                "arn:aws:sqs:eu-west-1:123456789012:failures",
                Destination::Sqs {
                    account: "123456789012".into(),
                    name: "failures".into(),
                },
            ),
            (
                "arn:aws:sns:eu-west-1:123456789012:alerts",
                Destination::Sns {
                    arn: "arn:aws:sns:eu-west-1:123456789012:alerts".into(),
                },
            ),
        ] {
            config.on_failure = Some(arn.into());
            assert_eq!(config.destination().unwrap(), Some(destination), "{arn}");
        }
        for (topics, destination, says) in [
            (vec!["orders"], "kafka://orders", "reads \"orders\" itself"),
            (vec![ALL_TOPICS], "kafka://dlt", "reads \"dlt\" itself"),
            (vec!["^ord.*"], "kafka://orders-dlt", "itself"),
            (
                vec!["orders"],
                "arn:aws:dynamodb:eu-west-1:123456789012:table/t",
                "the ARN of an S3 bucket",
            ),
            (vec!["orders"], "arn:aws:s3:::bucket/prefix", "the ARN of an S3 bucket"),
            (vec!["orders"], "s3://bucket", "the ARN of an S3 bucket"),
            (vec!["orders"], "kafka://", "not a Kafka topic name"),
            (vec!["orders"], "kafka://bad topic", "not a Kafka topic name"),
            (vec!["orders"], "kafka://.hidden", "not a Kafka topic name"),
        ] {
            config.topics = topics.iter().map(|t| t.to_string()).collect();
            config.on_failure = Some(destination.into());
            let err = config.destination().expect_err(destination).to_string();
            assert!(err.contains(says), "{destination}: {err}");
        }
    }
}
