//! The send-push function: fed by its SQS queue, delivers each job through
//! SNS mobile push (web push: VAPID to the subscription's push service)
//! and reports partial batch failures.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use cartback_aws::config::{ProcessEnv, PushConfig};
use cartback_aws::sqs::Postponer;
use cartback_aws::{clients, handlers, wiring};
use cartback_core::ports::SystemClock;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cartback_aws::init_logging();
    let config = PushConfig::from_env(&ProcessEnv)?;
    let clients = clients::Clients::new(&clients::load_sdk_config().await);
    let web_push = wiring::web_push_sender(&clients, &config).await?;
    let mut delivery = wiring::push_delivery_with_web_push(&clients, &config, web_push, Arc::new(SystemClock));
    delivery.webhook = wiring::voucher_webhook(&clients, config.voucher_webhook.as_ref()).await?;
    let delivery = Arc::new(delivery);
    let postponer = Arc::new(Postponer::new(clients.sqs.clone()));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (delivery, postponer) = (delivery.clone(), postponer.clone());
        async move { Ok::<_, Error>(handlers::sender_postponing(&delivery, &postponer, event.payload).await) }
    }))
    .await
}
