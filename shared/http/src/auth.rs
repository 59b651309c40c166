//! The signature check as extractors: a handler that takes [`Signed`] (v2
//! only) or [`SignedOrV1`] runs only for a request signed with the ingest
//! secret, and gets its raw body.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use cartback_core::api::Api;
use cartback_core::event::MAX_BODY_BYTES;
use cartback_core::signing::{verify_request, Accept, SignedRequest, SIGNATURE_HEADER};

use crate::error::ApiError;

/// The raw body of a request whose v2 signature holds.
pub struct Signed(pub Bytes);

/// The raw body of a request signed with v2, or with the legacy v1 while
/// the runtime still accepts it (`POST /v1/events` only).
pub struct SignedOrV1(pub Bytes);

impl FromRequest<Arc<Api>> for Signed {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &Arc<Api>) -> Result<Self, Self::Rejection> {
        verified_body(request, api, Accept::V2Only).await.map(Signed)
    }
}

impl FromRequest<Arc<Api>> for SignedOrV1 {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &Arc<Api>) -> Result<Self, Self::Rejection> {
        let accept = if api.accept_v1_signatures { Accept::V1OrV2 } else { Accept::V2Only };
        verified_body(request, api, accept).await.map(SignedOrV1)
    }
}

/// Reads the body up to the limit (`DefaultBodyLimit`: an oversized body
/// is refused with the JSON 413 before any signature work), then checks
/// the signature over the method, the path and query as sent, and the body,
/// against real time.
async fn verified_body(request: Request, api: &Arc<Api>, accept: Accept) -> Result<Bytes, ApiError> {
    let header = request.headers().get(SIGNATURE_HEADER).map(|v| v.to_str().unwrap_or_default().to_owned());
    let method = request.method().clone();
    let path_and_query = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    let body = Bytes::from_request(request, api).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("request body is larger than the limit of {MAX_BODY_BYTES} bytes"))
        } else {
            ApiError::BadRequest(format!("the request body cannot be read: {}", rejection.body_text()))
        }
    })?;
    let signed = SignedRequest { method: method.as_str(), path_and_query: &path_and_query, body: &body };
    verify_request(&api.settings.secret, header.as_deref(), &signed, api.wall_clock.now(), accept)?;
    Ok(body)
}
