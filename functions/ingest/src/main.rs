//! The ingest function: API Gateway HTTP API (payload v2) -> the shared HTTP
//! contract. Config, secret and clients are built once per cold start.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use cartback_aws::config::{ProcessEnv, TimerConfig};
use cartback_aws::{clients, handlers, wiring};
use cartback_core::ports::SystemClock;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cartback_aws::init_logging();
    let config = TimerConfig::from_env(&ProcessEnv)?;
    let clients = clients::Clients::new(&clients::load_sdk_config().await);
    let secret = wiring::load_secret(&clients, &config.secret_arn).await?;
    let api = Arc::new(wiring::api(&clients, &config, secret, Arc::new(SystemClock)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayV2httpRequest>| {
        let api = api.clone();
        async move { Ok::<_, Error>(handlers::ingest(&api, event.payload).await) }
    }))
    .await
}
