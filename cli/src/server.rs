//! HTTP front for `cartback dev`: hyper serves the shared router
//! (`cartback-http`), the same application the ingest Lambda runs.

use std::net::SocketAddr;
use std::sync::Arc;

use cartback_core::api::Api;

/// Serves the API and, with the local history, the backtest page.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<Api>,
    history: Arc<dyn cartback_core::ports::HistoryReader>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = cartback_http::router(api.clone()).merge(cartback_http::backtest_router(api, history));
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
