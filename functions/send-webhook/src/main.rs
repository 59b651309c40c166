//! The send-webhook function: fed by its SQS queue, POSTs each job to its
//! target (config table; secret in Secrets Manager), signed as Standard
//! Webhooks, and reports partial batch failures.

use std::sync::Arc;

use cartback_aws::config::{ProcessEnv, WebhookConfig};
use cartback_aws::{clients, handlers, wiring};
use cartback_core::ports::SystemClock;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cartback_aws::init_logging();
    let config = WebhookConfig::from_env(&ProcessEnv)?;
    let clients = clients::Clients::new(&clients::load_sdk_config().await);
    let targets = wiring::webhook_targets(&clients, &config.common).await?;
    let delivery = wiring::webhook_delivery(&clients, &config, targets, Arc::new(SystemClock));
    handlers::run_sender(&clients, delivery, config.voucher_webhook.as_ref()).await
}
