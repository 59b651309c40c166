//! SDK clients, built once per cold start from one `SdkConfig`.
//!
//! Retries: the SDK's standard mode, 5 attempts in all, exponential backoff
//! with full jitter (delay = random(0, min(initial * 2^n, max))), for
//! throttling errors, 5xx answers and transient I/O errors. The standard
//! mode also has a client-side retry quota, so a provider outage does not
//! turn into a retry storm. Functions' timeouts in `template.yaml` bound the
//! total time these retries may take.
//!
//! `AWS_ENDPOINT_URL` (and per-service `AWS_ENDPOINT_URL_<SERVICE>`) is
//! honoured by `aws_config` itself, which is how tests and local runs point
//! the functions at moto.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Attempts per call, the first included.
pub const MAX_ATTEMPTS: u32 = 5;

/// The retry policy every client uses.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(100))
        .with_max_backoff(Duration::from_secs(5))
}

/// Provider sends (SES `SendEmail`, SNS `Publish`) take no idempotency key:
/// an attempt whose answer was lost (a timeout after the request went out)
/// may have delivered the message, and the SDK's retry would deliver it
/// again. So they run one attempt per call: an error that certainly sent
/// nothing is retried by the job's queue, one that may have sent is recorded
/// `unknown` (`SendError::Unknown`), never repeated.
pub fn provider_send_retry_config() -> RetryConfig {
    RetryConfig::disabled()
}

/// Per-attempt and per-call time limits: a hung connection becomes a
/// retryable timeout instead of eating the function's whole timeout.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(25))
        .build()
}

/// Loads region, credentials and endpoint from the environment (the Lambda
/// execution role in AWS), with Cartback's retry and timeout policy.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await
}

/// Every client a Cartback function may use. Building a client is cheap and
/// shares the config's HTTP connector, so building all of them is fine even
/// for a function that uses two.
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub scheduler: aws_sdk_scheduler::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub ses: aws_sdk_sesv2::Client,
    pub sns: aws_sdk_sns::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl Clients {
    /// Builds the clients, enforcing Cartback's retry policy even when the
    /// given config was built without it.
    pub fn new(sdk: &SdkConfig) -> Self {
        let sdk = sdk.to_builder().retry_config(retry_config()).build();
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            scheduler: aws_sdk_scheduler::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            ses: aws_sdk_sesv2::Client::new(&sdk),
            sns: aws_sdk_sns::Client::new(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
        }
    }
}
