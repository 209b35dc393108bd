//! The on-failure destinations the local mapping writes to, with the records AWS writes (`failure.rs`):
//!
//! - a Kafka topic on the same cluster: one message per failed record, with the record's key (so the same
//!   partitioning as the original), whose value is the failure metadata with that record's own event as
//!   `payload` (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html>);
//! - an S3 bucket: one object per given-up part of a batch, the invocation record with the whole event, under
//!   `aws/lambda/{consumer group}/{topic}-{partition}/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-{request id}`;
//! - an SQS queue or an SNS topic: one message per given-up part of a batch, the invocation record without the
//!   event (<https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure.html>).
//!
//! S3, SQS and SNS are reached through the AWS SDK's usual settings (`AWS_ENDPOINT_URL` points them at moto).

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::deliver::{Failed, OnFailure};
use crate::failure::{batch_record, kafka_record, request_id, Origin};
use crate::{Destination, EsmConfig};

/// A Kafka topic as the on-failure destination.
pub struct KafkaDestination {
    producer: FutureProducer,
    topic: String,
    origin: Origin,
}

impl KafkaDestination {
    /// A producer to `topic` on the mapping's cluster, with its `--kafka-option` settings (security, ...).
    pub fn new(config: &EsmConfig, topic: &str, origin: Origin) -> anyhow::Result<KafkaDestination> {
        let client = config.client_config(&[("message.timeout.ms", "30000"), ("enable.idempotence", "true")])?;
        Ok(KafkaDestination {
            producer: client.create()?,
            topic: topic.to_owned(),
            origin,
        })
    }
}

#[async_trait]
impl OnFailure for KafkaDestination {
    async fn send(&self, failed: &Failed) -> anyhow::Result<()> {
        let now = chrono::Utc::now();
        for record in &failed.records {
            let value = kafka_record(failed, record, &self.origin, now, &request_id()).to_string();
            let mut message: FutureRecord<'_, [u8], str> = FutureRecord::to(&self.topic).payload(&value);
            if let Some(key) = &record.key {
                message = message.key(key);
            }
            self.producer
                .send(message, Duration::from_secs(30))
                .await
                .map_err(|(error, _)| anyhow::anyhow!("producing to {}: {error}", self.topic))?;
        }
        Ok(())
    }

    fn name(&self) -> String {
        format!("kafka://{}", self.topic)
    }
}

/// The AWS service a destination is.
enum Service {
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        group: String,
    },
    Sqs {
        client: aws_sdk_sqs::Client,
        queue_url: String,
    },
    Sns {
        client: aws_sdk_sns::Client,
        arn: String,
    },
}

/// An S3 bucket, SQS queue or SNS topic as the on-failure destination.
pub struct AwsDestination {
    service: Service,
    name: String,
    origin: Origin,
}

impl AwsDestination {
    /// Clients for `destination` from `aws` (the SQS queue's URL is looked up now: a missing queue is a start-up
    /// error, not a failure at the first poison batch).
    pub async fn new(
        destination: &Destination,
        aws: &aws_config::SdkConfig,
        group: &str,
        origin: Origin,
    ) -> anyhow::Result<AwsDestination> {
        let (service, name) = match destination {
            Destination::Kafka(_) => anyhow::bail!("a Kafka destination is not an AWS service"),
            Destination::S3 { bucket } => {
                let client = aws_sdk_s3::Client::from_conf(
                    aws_sdk_s3::config::Builder::from(aws).force_path_style(true).build(),
                );
                let service = Service::S3 {
                    client,
                    bucket: bucket.clone(),
                    group: group.to_owned(),
                };
                (service, format!("arn:aws:s3:::{bucket}"))
            }
            Destination::Sqs { account, name } => {
                let client = aws_sdk_sqs::Client::new(aws);
                let queue_url = client
                    .get_queue_url()
                    .queue_name(name)
                    .queue_owner_aws_account_id(account)
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("SQS queue {name}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?
                    .queue_url
                    .ok_or_else(|| anyhow::anyhow!("SQS queue {name}: no URL"))?;
                (
                    Service::Sqs {
                        client,
                        queue_url: queue_url.clone(),
                    },
                    queue_url,
                )
            }
            Destination::Sns { arn } => (
                Service::Sns {
                    client: aws_sdk_sns::Client::new(aws),
                    arn: arn.clone(),
                },
                arn.clone(),
            ),
        };
        Ok(AwsDestination { service, name, origin })
    }
}

/// Where AWS puts an S3 invocation record, with the consumer group in place of the mapping's UUID.
pub fn s3_key(group: &str, failed: &Failed, now: chrono::DateTime<chrono::Utc>, request_id: &str) -> String {
    let partition = failed
        .records
        .first()
        .map(|r| format!("{}-{}", r.topic, r.partition))
        .unwrap_or_default();
    format!(
        "aws/lambda/{group}/{partition}/{}/{}-{request_id}",
        now.format("%Y/%m/%d"),
        now.format("%Y-%m-%dT%H.%M.%S")
    )
}

#[async_trait]
impl OnFailure for AwsDestination {
    async fn send(&self, failed: &Failed) -> anyhow::Result<()> {
        let now = chrono::Utc::now();
        let id = request_id();
        match &self.service {
            Service::S3 { client, bucket, group } => {
                let body = batch_record(failed, &self.origin, true, now, &id).to_string();
                client
                    .put_object()
                    .bucket(bucket)
                    .key(s3_key(group, failed, now, &id))
                    .content_type("application/json")
                    .body(body.into_bytes().into())
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("S3 {bucket}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))?;
            }
            Service::Sqs { client, queue_url } => {
                let body = batch_record(failed, &self.origin, false, now, &id).to_string();
                client
                    .send_message()
                    .queue_url(queue_url)
                    .message_body(body)
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("SQS {queue_url}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
            }
            Service::Sns { client, arn } => {
                let body = batch_record(failed, &self.origin, false, now, &id).to_string();
                client
                    .publish()
                    .topic_arn(arn)
                    .message(body)
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("SNS {arn}: {}", aws_sdk_sns::error::DisplayErrorContext(&e)))?;
            }
        }
        Ok(())
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::Condition;
    use crate::event::Record;

    #[test]
    fn an_s3_record_is_kept_by_group_partition_and_time() {
        let failed = Failed {
            records: vec![Record {
                topic: "orders".into(),
                partition: 3,
                offset: 9,
                timestamp: None,
                timestamp_type: "CREATE_TIME",
                key: None,
                value: None,
                headers: Vec::new(),
            }],
            condition: Condition::RetryAttemptsExhausted,
            error: None,
            attempts: 1,
        };
        let now = chrono::DateTime::from_timestamp(1_796_040_000, 0).unwrap();
        assert_eq!(
            s3_key("g", &failed, now, "r-1"),
            "aws/lambda/g/orders-3/2026/11/30/2026-11-30T12.00.00-r-1"
        );
    }
}
