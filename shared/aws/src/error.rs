//! Mapping SDK errors onto the core's port errors.

use aws_smithy_runtime_api::client::dns::ResolveDnsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use cartback_core::ports::PortError;

/// DynamoDB error codes for a request the table will refuse however often
/// it is sent (malformed, or an item beyond the table's limits). Missing
/// tables and denied access are not here: a deploy or an IAM fix heals them.
/// Only the state store uses this: other services answer
/// `ValidationException` for causes a deploy fixes (EventBridge Scheduler
/// does, for an execution role it may not assume).
const DYNAMODB_REFUSED_CODES: [&str; 3] =
    ["ValidationException", "SerializationException", "ItemCollectionSizeLimitExceededException"];

/// Any SDK failure, after the SDK's own retries, as a retryable port error.
/// The message carries the error chain (service code, request id), never
/// item contents.
pub(crate) fn unavailable<E, R>(service: &'static str, error: SdkError<E, R>) -> PortError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    PortError::Unavailable(service, sdk_failure(error))
}

/// A DynamoDB failure as a port error: refused for good when the table named
/// the request itself as the problem, retryable otherwise.
pub(crate) fn dynamodb_error<E, R>(service: &'static str, error: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = error.as_service_error().and_then(|e| e.code());
    if code.is_some_and(|code| DYNAMODB_REFUSED_CODES.contains(&code)) {
        PortError::Refused(service, sdk_failure(error))
    } else {
        PortError::Unavailable(service, sdk_failure(error))
    }
}

/// A transaction DynamoDB cancelled because one of its items is invalid
/// (too large, malformed): the cancellation reason says `ValidationError`.
pub(crate) fn refused_transaction<E, R>(service: &'static str, error: SdkError<E, R>) -> PortError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    PortError::Refused(service, sdk_failure(error))
}

fn sdk_failure<E, R>(error: SdkError<E, R>) -> Box<SdkFailure>
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    // The chain's text is kept in the message too: the SDK's Display of the
    // outer error alone says only "service error".
    let text = DisplayErrorContext(&error).to_string();
    Box::new(SdkFailure { text, source: Box::new(error) })
}

pub(crate) fn build_error(service: &'static str, error: impl std::fmt::Display) -> PortError {
    // The same input fails to build every time: no retry helps.
    PortError::Refused(service, format!("request could not be built: {error}").into())
}

/// An SDK failure: the whole chain as text, and the SDK error as the source.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
struct SdkFailure {
    text: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// Whether a failed provider call may have been accepted anyway, so that a
/// second call could deliver the message twice. SES `SendEmail` and SNS
/// `Publish` (SMS, mobile push) take no idempotency key, so the answer
/// decides between "retry" and "record `unknown`, never resend".
///
/// Certainly not accepted: the request was never built, the connection was
/// never made (DNS failure, connection refused), or the service answered
/// with a client error (4xx: throttling, validation) or 503 (the front end
/// refused it). Everything else may have reached the service: a timeout
/// after the request went out, a connection closed before the answer, an
/// answer that could not be read, a 500/502/504.
pub(crate) fn may_have_been_accepted<E>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::ConstructionFailure(_) => false,
        SdkError::DispatchFailure(failure) => {
            if failure.is_user() {
                return false;
            }
            let never_connected = failure.as_connector_error().is_some_and(|e| {
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
                while let Some(current) = source {
                    if current.downcast_ref::<ResolveDnsError>().is_some() {
                        return true;
                    }
                    if let Some(io) = current.downcast_ref::<std::io::Error>() {
                        use std::io::ErrorKind::{AddrNotAvailable, ConnectionRefused};
                        if matches!(io.kind(), ConnectionRefused | AddrNotAvailable) {
                            return true;
                        }
                    }
                    source = current.source();
                }
                false
            });
            !never_connected
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status();
            status.is_server_error() && status.as_u16() != 503
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    type Error = SdkError<std::io::Error, HttpResponse>;

    fn answered(status: u16) -> Error {
        let response = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(std::io::Error::other("service error"), response)
    }

    fn io(kind: std::io::ErrorKind) -> Error {
        SdkError::dispatch_failure(ConnectorError::io(Box::new(std::io::Error::from(kind))))
    }

    /// GIVEN provider call failures that say the request never got in
    /// WHEN classified
    /// THEN the message may be sent again (a retry cannot deliver it twice).
    #[test]
    fn given_failures_before_the_provider_took_the_request_when_classified_then_a_retry_is_safe() {
        let never_sent: [Error; 6] = [
            SdkError::construction_failure(std::io::Error::other("bad input")),
            io(std::io::ErrorKind::ConnectionRefused),
            SdkError::dispatch_failure(ConnectorError::io(Box::new(ResolveDnsError::new(std::io::Error::other(
                "no such host",
            ))))),
            answered(400),
            answered(429),
            answered(503),
        ];
        for error in never_sent {
            assert!(!may_have_been_accepted(&error), "{error:?}");
        }
    }

    /// GIVEN provider call failures after the request may have gone out
    /// WHEN classified
    /// THEN they may have been accepted: recorded `unknown`, never resent.
    #[test]
    fn given_failures_after_the_request_may_have_gone_out_when_classified_then_the_outcome_is_unknown() {
        let maybe_sent: [Error; 6] = [
            SdkError::timeout_error(std::io::Error::other("operation timed out")),
            SdkError::dispatch_failure(ConnectorError::timeout(Box::new(std::io::Error::other("read timed out")))),
            io(std::io::ErrorKind::ConnectionReset),
            answered(500),
            answered(502),
            answered(504),
        ];
        for error in maybe_sent {
            assert!(may_have_been_accepted(&error), "{error:?}");
        }
    }

    fn refusal(status: u16, code: &str) -> SdkError<aws_smithy_types::error::ErrorMetadata, HttpResponse> {
        let response = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(aws_smithy_types::error::ErrorMetadata::builder().code(code).build(), response)
    }

    /// GIVEN a DynamoDB answer that names the request itself as the problem
    /// (an item over 400 KB is a ValidationException), and one that is an
    /// outage
    /// WHEN mapped to a port error
    /// THEN the first is refused for good, the second is worth a retry.
    #[test]
    fn given_a_validation_error_and_a_throttle_when_mapped_then_only_the_throttle_is_transient() {
        let refused = dynamodb_error("dynamodb", refusal(400, "ValidationException"));
        assert!(matches!(refused, PortError::Refused("dynamodb", _)), "{refused}");
        assert!(!refused.is_transient());
        for (status, code) in
            [(400, "ThrottlingException"), (500, "InternalServerError"), (400, "AccessDeniedException")]
        {
            let outage = dynamodb_error("dynamodb", refusal(status, code));
            assert!(outage.is_transient(), "{code}: {outage}");
        }
    }
}
