//! `cartback customer erase|export ID`: a customer's data (GDPR articles 15
//! and 17, CCPA) from the local data folder or, with --aws, the DynamoDB
//! state table: the same store calls as `DELETE /v1/customers/{id}` and
//! `GET /v1/customers/{id}/export`, and the same JSON answers. The CLI has
//! no request timeout, so it also suits a customer with a long history.

use std::process::ExitCode;

use anyhow::Context;
use cartback_core::customer_data::{erasure_json, export_json};
use cartback_core::ids::{parse_id, CustomerId};
use cartback_core::ports::{Clock, SystemClock};
use clap::Subcommand;

use crate::CustomerArgs;

#[derive(Subcommand)]
pub enum Action {
    /// Erase everything held about the customer; prints what was erased per
    /// item type (erasing again prints zeros).
    Erase { customer_id: String },
    /// Print everything held about the customer as JSON.
    Export { customer_id: String },
}

pub async fn run(args: CustomerArgs) -> anyhow::Result<ExitCode> {
    let (Action::Erase { customer_id } | Action::Export { customer_id }) = &args.action;
    let customer_id: CustomerId =
        parse_id(customer_id).with_context(|| format!("customer id {customer_id:?} is not an acceptable id"))?;
    let stores = crate::stores::open(&args.store).await?;
    match args.action {
        Action::Erase { .. } => {
            let erasure = stores.state.erase_customer(&customer_id, SystemClock.now()).await?;
            println!("{}", serde_json::to_string_pretty(&erasure_json(&customer_id, &erasure))?);
        }
        Action::Export { .. } => {
            let data = stores.state.customer_data(&customer_id).await?;
            if data.is_empty() {
                eprintln!("nothing is held about customer {:?}", customer_id.as_str());
                return Ok(ExitCode::FAILURE);
            }
            println!("{}", serde_json::to_string_pretty(&export_json(&data))?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
