//! The send-push function: fed by its SQS queue, delivers each job through
//! SNS mobile push (web push: VAPID to the subscription's push service)
//! and reports partial batch failures.

use std::sync::Arc;

use cartback_aws::config::{ProcessEnv, PushConfig};
use cartback_aws::{clients, handlers, wiring};
use cartback_core::ports::SystemClock;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cartback_aws::init_logging();
    let config = PushConfig::from_env(&ProcessEnv)?;
    let clients = clients::Clients::new(&clients::load_sdk_config().await);
    let web_push = wiring::web_push_sender(&clients, &config).await?;
    let delivery = wiring::push_delivery_with_web_push(&clients, &config, web_push, Arc::new(SystemClock));
    handlers::run_sender(&clients, delivery, config.voucher_webhook.as_ref()).await
}
