//! The send-email function: fed by its SQS queue, delivers each job through
//! SES v2 and reports partial batch failures.

use std::sync::Arc;

use cartback_aws::config::{EmailConfig, ProcessEnv};
use cartback_aws::{clients, handlers, wiring};
use cartback_core::ports::SystemClock;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cartback_aws::init_logging();
    let config = EmailConfig::from_env(&ProcessEnv)?;
    let clients = clients::Clients::new(&clients::load_sdk_config().await);
    let delivery = wiring::email_delivery(&clients, &config, Arc::new(SystemClock));
    handlers::run_sender(&clients, delivery, config.voucher_webhook.as_ref()).await
}
