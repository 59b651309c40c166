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
    PortError::Unavailable(service, DisplayErrorContext(error).to_string())
}

pub(crate) fn build_error(service: &'static str, error: impl std::fmt::Display) -> PortError {
    PortError::Unavailable(service, format!("request could not be built: {error}"))
}
