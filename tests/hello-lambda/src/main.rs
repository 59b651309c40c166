//! Hello world on `lambda_runtime`: echoes its event. The floor a Cartback
//! bootstrap's init time is compared with (same profile, same run).

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) },
    ))
    .await
}
