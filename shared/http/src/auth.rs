//! The signature check as an extractor: a handler that takes [`Signed`]
//! runs only for a request signed with the ingest secret, and gets its body.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use cartback_core::api::Api;
use cartback_core::event::MAX_BODY_BYTES;
use cartback_core::signing::{verify_request, SIGNATURE_HEADER};

use crate::error::ApiError;

/// The raw body of a request whose signature holds. Reading stops at the
/// body limit (`DefaultBodyLimit`), so an oversized body is refused with
/// the JSON 413 before any signature work.
pub struct Signed(pub Bytes);

impl FromRequest<Arc<Api>> for Signed {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &Arc<Api>) -> Result<Self, Self::Rejection> {
        let header = request.headers().get(SIGNATURE_HEADER).map(|v| v.to_str().unwrap_or_default().to_owned());
        let body = Bytes::from_request(request, api).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!("request body is larger than the limit of {MAX_BODY_BYTES} bytes"))
            } else {
                ApiError::BadRequest(format!("the request body cannot be read: {}", rejection.body_text()))
            }
        })?;
        verify_request(&api.settings.secret, header.as_deref(), &body, api.clock.now())?;
        Ok(Signed(body))
    }
}
