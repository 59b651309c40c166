//! The ingest function: the shared HTTP application (`cartback-http`) on
//! API Gateway HTTP API through `lambda_http`. Config, secret and clients
//! are built once per cold start.

use std::sync::Arc;

use cartback_aws::config::{IngestConfig, ProcessEnv};
use cartback_aws::{clients, wiring};
use cartback_core::ports::SystemClock;
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cartback_aws::init_logging();
    let config = IngestConfig::from_env(&ProcessEnv)?;
    let clients = clients::Clients::new(&clients::load_sdk_config().await);
    let secret = wiring::load_secret(&clients, &config.timer.secret_arn).await?;
    let sources = wiring::load_sources(&clients, &config).await?;
    let api = wiring::with_sources(wiring::api(&clients, &config, secret, Arc::new(SystemClock)), sources);
    lambda_http::run(cartback_http::router(Arc::new(api))).await
}
