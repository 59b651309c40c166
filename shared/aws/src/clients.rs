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
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::may_have_been_accepted;

/// Attempts per call, the first included.
pub const MAX_ATTEMPTS: u32 = 5;

const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The retry policy every client uses.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

/// Provider sends (SES `SendEmail`, SNS `Publish`) take no idempotency key:
/// an attempt whose answer was lost (a timeout after the request went out)
/// may have delivered the message, and the SDK's retry would deliver it
/// again. So the SDK makes one attempt per call, and
/// [`retry_unsent_sends`] retries only the failures that certainly sent
/// nothing; one that may have sent is recorded `unknown`
/// (`SendError::Unknown`), never repeated.
pub fn provider_send_retry_config() -> RetryConfig {
    RetryConfig::disabled()
}

/// Error codes providers use to say "slow down"; nothing was accepted.
const THROTTLING_CODES: [&str; 6] = [
    "Throttling",
    "ThrottlingException",
    "Throttled",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestThrottled",
];

/// Whether a provider send failure is worth another attempt now: it certainly
/// sent nothing, and it is transient (throttling, a 503, a refused
/// connection) rather than a refusal of the message itself.
fn is_unsent_and_transient<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    if may_have_been_accepted(error) {
        return false;
    }
    match error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status == 503 || status == 429 || service.err().code().is_some_and(|code| THROTTLING_CODES.contains(&code))
        }
        SdkError::DispatchFailure(failure) => !failure.is_user(),
        _ => false,
    }
}

/// Runs a provider send with the same attempt count and backoff shape as
/// every other call ([`MAX_ATTEMPTS`], exponential with full jitter; not
/// the SDK's client-side retry quota), retrying only failures that
/// certainly sent nothing (see [`is_unsent_and_transient`]).
pub(crate) async fn retry_unsent_sends<T, E, F, Fut>(mut send: F) -> Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
{
    let mut ceiling = INITIAL_BACKOFF;
    let mut attempt = 1;
    loop {
        match send().await {
            Err(error) if attempt < MAX_ATTEMPTS && is_unsent_and_transient(&error) => {
                tokio::time::sleep(ceiling.mul_f64(fastrand::f64())).await;
                ceiling = (ceiling * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
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

/// The HTTPS client every SDK config uses: hyper 1 on rustls with ring, the
/// TLS stack the rest of a Lambda already links (see the workspace
/// `Cargo.toml`), so each bootstrap carries one.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// Loads region, credentials and endpoint from the environment (the Lambda
/// execution role in AWS), with Cartback's HTTPS client, retry and timeout
/// policy.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    /// A provider's scripted answer: accepted, or an error status and code.
    type Answer = Option<(u16, &'static str)>;

    /// Runs `retry_unsent_sends` over scripted answers (the last one
    /// repeats); returns whether it succeeded and how many attempts it made.
    async fn run(answers: &[Answer]) -> (bool, usize) {
        let calls = Cell::new(0);
        let outcome = retry_unsent_sends(|| {
            let answer = answers[calls.get().min(answers.len() - 1)];
            calls.set(calls.get() + 1);
            async move {
                match answer {
                    None => Ok("m-1"),
                    Some((status, code)) => {
                        let response = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
                        Err(SdkError::service_error(ErrorMetadata::builder().code(code).build(), response))
                    }
                }
            }
        })
        .await;
        (outcome.is_ok(), calls.get())
    }

    /// GIVEN a provider that throttles twice then accepts
    /// WHEN a message is sent
    /// THEN the third attempt delivers it.
    #[tokio::test]
    async fn given_throttling_then_acceptance_when_sent_then_the_send_is_retried_until_it_succeeds() {
        let answers = [Some((400, "Throttling")), Some((429, "TooManyRequestsException")), None];
        assert_eq!(run(&answers).await, (true, 3));
    }

    /// GIVEN a provider that answers 503 on every attempt
    /// WHEN a message is sent
    /// THEN it stops after the shared attempt budget.
    #[tokio::test]
    async fn given_an_outage_when_sent_then_it_stops_after_max_attempts() {
        assert_eq!(run(&[Some((503, "ServiceUnavailable"))]).await, (false, MAX_ATTEMPTS as usize));
    }

    /// GIVEN answers that may mean the message went out (a 500) or that no
    /// retry can fix (a rejection)
    /// WHEN a message is sent
    /// THEN exactly one attempt is made.
    #[tokio::test]
    async fn given_a_failure_that_may_have_sent_or_cannot_heal_when_sent_then_it_is_not_repeated() {
        for first in [(500, "InternalFailure"), (400, "MessageRejected")] {
            assert_eq!(run(&[Some(first), None]).await, (false, 1), "{first:?}");
        }
    }
}
