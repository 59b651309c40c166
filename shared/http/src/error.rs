//! Every refusal the API answers, as one enum mapped to a status and the
//! JSON error body `{"error": {"code", "message"}}` at the edge.

use axum::http::header::RETRY_AFTER;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use cartback_core::ports::PortError;
use cartback_core::signing::SignatureError;

/// What `Retry-After` says when storage is out of reach.
pub(crate) const RETRY_AFTER_SECONDS: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(#[from] SignatureError),
    /// A source request whose platform signature is missing, wrong or stale.
    #[error("{0}")]
    SourceUnauthorized(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The message an engagement report names never went out.
    #[error("{0}")]
    NotSent(String),
    #[error("This link has expired.")]
    LinkExpired,
    /// A service Cartback depends on (a platform's API) failed: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Storage or scheduler failed: the cause is logged, the client only
    /// learns whether a retry can help (an outage) or not (a refused or
    /// unreadable record).
    #[error("{}", if .0.is_transient() {
        "Cartback cannot reach its storage right now; retry with backoff."
    } else {
        "Cartback's storage refused this request and would refuse it again; the cause is logged for an operator."
    })]
    Storage(#[from] PortError),
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) | ApiError::SourceUnauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::NotSent(_) => (StatusCode::CONFLICT, "not_sent"),
            ApiError::LinkExpired => (StatusCode::GONE, "link_expired"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Storage(error) if error.is_transient() => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Storage(error) = &self {
            tracing::error!(%error, "storage or scheduler failed");
        }
        let (status, code) = self.status_and_code();
        let body = json!({ "error": { "code": code, "message": self.to_string() } });
        let mut response = crate::json_response(status, &body);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(RETRY_AFTER, axum::http::HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}
