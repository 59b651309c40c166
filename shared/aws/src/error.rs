//! Mapping SDK errors onto the core's port errors.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;

use cartback_core::ports::PortError;

/// Any SDK failure, after the SDK's own retries, as a retryable port error.
/// The message carries the error chain (service code, request id), never
/// item contents.
pub(crate) fn unavailable<E, R>(service: &'static str, error: SdkError<E, R>) -> PortError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    // The chain's text is kept in the message too: the SDK's Display of the
    // outer error alone says only "service error".
    let text = DisplayErrorContext(&error).to_string();
    PortError::Unavailable(service, Box::new(SdkFailure { text, source: Box::new(error) }))
}

pub(crate) fn build_error(service: &'static str, error: impl std::fmt::Display) -> PortError {
    PortError::Unavailable(service, format!("request could not be built: {error}").into())
}

/// An SDK failure: the whole chain as text, and the SDK error as the source.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
struct SdkFailure {
    text: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}
