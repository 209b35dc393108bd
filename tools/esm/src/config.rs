//! The mapping's settings, as `local-esm` and `notifications esm` take them: topics by list or by pattern (new
//! matching topics are picked up within seconds), starting position `TRIM_HORIZON` (earliest) or `LATEST` for
//! partitions the group has no offset for yet, batch size and window, and which trigger is imitated.

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
    #[arg(long, value_enum, default_value = "TRIM_HORIZON")]
    pub starting_position: StartingPosition,
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
}

impl EsmConfig {
    /// The settings with their defaults and `bootstrap_servers`.
    pub fn new(bootstrap_servers: &str) -> EsmConfig {
        EsmConfig {
            bootstrap_servers: bootstrap_servers.to_owned(),
            group_id: "notification-event-log".into(),
            topics: vec![ALL_TOPICS.into()],
            starting_position: StartingPosition::TrimHorizon,
            batch_size: 100,
            batching_window_ms: 500,
            source: SourceKind::Msk,
            max_backoff_ms: 10_000,
            metadata_refresh_ms: 2_000,
            kafka_options: Vec::new(),
        }
    }
}
