//! Opens the stores the operator commands work on: the local data folder, or
//! with `--aws` the DynamoDB tables named in the environment.

use std::sync::Arc;

use anyhow::Context;
use cartback_core::ports::{CampaignStore, StateStore};

use crate::StoreArgs;

pub struct Stores {
    pub state: Arc<dyn StateStore>,
    pub campaigns: Arc<dyn CampaignStore>,
}

pub async fn open(args: &StoreArgs) -> anyhow::Result<Stores> {
    if args.aws {
        return open_aws().await;
    }
    let db = cartback_local::Database::open(&args.data).with_context(|| format!("cannot open the database in {}", args.data.display()))?;
    Ok(Stores { state: Arc::new(db.clone()), campaigns: Arc::new(db) })
}

#[cfg(feature = "aws")]
async fn open_aws() -> anyhow::Result<Stores> {
    todo_aws()
}

#[cfg(not(feature = "aws"))]
async fn open_aws() -> anyhow::Result<Stores> {
    anyhow::bail!("this cartback was built without AWS support; build it with `cargo install --path cli --features aws`")
}
