//! The checker function: the target of every cart's EventBridge Scheduler
//! schedule (input: the `TimerPayload` JSON), of the sweep schedule
//! (`{"sweep": {}}`) and of the timer queue (redriven dead-letter timers).

use std::sync::Arc;

use cartback_aws::config::{CheckerConfig, ProcessEnv};
use cartback_aws::{clients, handlers, wiring};
use cartback_core::ports::SystemClock;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cartback_aws::init_logging();
    let config = CheckerConfig::from_env(&ProcessEnv)?;
    let clients = clients::Clients::new(&clients::load_sdk_config().await);
    let secret = wiring::load_secret(&clients, &config.timer.secret_arn).await?;
    let checker = Arc::new(wiring::checker(&clients, &config, secret, Arc::new(SystemClock)));
    let sweep = Arc::new(wiring::timer_sweep(&clients, &config, Arc::new(SystemClock)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (checker, sweep) = (checker.clone(), sweep.clone());
        async move { handlers::checker_function(&checker, &sweep, event.payload).await.map_err(Error::from) }
    }))
    .await
}
