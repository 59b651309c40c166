//! HTTP front for `cartback dev`: translates hyper requests into the core's
//! `api::Request`, so the local server and the ingest Lambda share one contract.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use cartback_core::api::{self, Api};
use cartback_core::event::MAX_BODY_BYTES;

pub async fn serve(listener: tokio::net::TcpListener, api: Arc<Api>, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(handle).with_state(api);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

async fn handle(State(api): State<Arc<Api>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // Read one byte past the limit so an oversized body is answered by the
    // core with its JSON 413, like the Lambda.
    let body = match to_bytes(body, MAX_BODY_BYTES + 1).await {
        Ok(bytes) => bytes.to_vec(),
        Err(_) => vec![0; MAX_BODY_BYTES + 1],
    };
    let request = api::Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        headers: parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned())))
            .collect(),
        body,
    };
    let answer = api.handle(&request).await;
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
