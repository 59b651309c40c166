//! The feedback function: fed by the feedback queue (SES event notifications
//! through SNS), records deliveries, opens, clicks, bounces and complaints
//! against Cartback's messages and reports partial batch failures.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use cartback_aws::config::{CommonConfig, ProcessEnv};
use cartback_aws::{clients, handlers, wiring};
use cartback_core::ports::SystemClock;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cartback_aws::init_logging();
    let config = CommonConfig::from_env(&ProcessEnv)?;
    let clients = clients::Clients::new(&clients::load_sdk_config().await);
    let feedback = Arc::new(wiring::feedback(&clients, &config, Arc::new(SystemClock)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let feedback = feedback.clone();
        async move { Ok::<_, Error>(handlers::feedback(&feedback, event.payload).await) }
    }))
    .await
}
