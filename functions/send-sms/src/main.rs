//! The send-sms function: fed by its SQS queue, delivers each job through
//! SNS SMS and reports partial batch failures.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use cartback_aws::config::{ProcessEnv, SmsConfig};
use cartback_aws::{clients, handlers, wiring};
use cartback_core::ports::SystemClock;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cartback_aws::init_logging();
    let config = SmsConfig::from_env(&ProcessEnv)?;
    let clients = clients::Clients::new(&clients::load_sdk_config().await);
    let delivery = Arc::new(wiring::sms_delivery(&clients, &config, Arc::new(SystemClock)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let delivery = delivery.clone();
        async move { Ok::<_, Error>(handlers::sender(&delivery, event.payload).await) }
    }))
    .await
}
