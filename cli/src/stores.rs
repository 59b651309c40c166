//! Opens the stores the operator commands work on: the local data folder, or
//! with `--aws` the DynamoDB tables named in the environment.

use std::sync::Arc;

use anyhow::Context;
use cartback_core::message::Channel;
use cartback_core::ports::{CampaignStore, HistoryReader, StateStore, TemplateStore};
use cartback_core::webhook::WebhookTargetName;

use crate::StoreArgs;

pub struct Stores {
    pub state: Arc<dyn StateStore>,
    pub campaigns: Arc<dyn CampaignStore>,
    pub templates: Arc<dyn TemplateStore>,
    /// The read-only pass over everything stored (backtests).
    pub history: Arc<dyn HistoryReader>,
    /// Channels the runtime behind these stores delivers.
    pub channels: Vec<Channel>,
    /// The webhook targets a campaign step may name: locally those the
    /// environment configures, on AWS those in the config table. Kept as
    /// read: only `campaign apply` needs them, and fails when they are bad.
    pub webhook_targets: anyhow::Result<Vec<WebhookTargetName>>,
}

pub async fn open(args: &StoreArgs) -> anyhow::Result<Stores> {
    open_with_segments(args, 1).await
}

/// [`open`], with DynamoDB's history read in `segments` parallel scan segments.
pub async fn open_with_segments(args: &StoreArgs, segments: u32) -> anyhow::Result<Stores> {
    if args.aws {
        return open_aws(segments).await;
    }
    // The outbox too: an erasure removes the customer's copies from it.
    let db = cartback_local::Database::open(&args.data)
        .with_context(|| format!("cannot open the database in {}", args.data.display()))?
        .with_outbox(cartback_local::Outbox::existing(&args.data));
    Ok(Stores {
        state: Arc::new(db.clone()),
        campaigns: Arc::new(db.clone()),
        templates: Arc::new(db.clone()),
        history: Arc::new(db),
        channels: Channel::ALL.to_vec(),
        webhook_targets: cartback_webhook::channel::WebhookTargets::from_env()
            .map(|targets| targets.names())
            .map_err(anyhow::Error::from),
    })
}

/// The tables named by CARTBACK_STATE_TABLE and CARTBACK_CONFIG_TABLE, with
/// the standard AWS credential chain (and AWS_ENDPOINT_URL when set).
#[cfg(feature = "aws")]
async fn open_aws(segments: u32) -> anyhow::Result<Stores> {
    use cartback_aws::config::{CommonConfig, RETENTION_DAYS};
    use cartback_aws::dynamo::{DynamoCampaignStore, DynamoStateStore};
    // The operator names the tables; retention only matters to the writes a
    // command makes, so the deployment's default applies when it is unset.
    let env = |name: &str| std::env::var(name).ok().or_else(|| (name == RETENTION_DAYS).then(|| "90".to_owned()));
    let config = CommonConfig::from_env(&env)?;
    let clients = cartback_aws::clients::Clients::new(&cartback_aws::clients::load_sdk_config().await);
    let clock = Arc::new(cartback_core::ports::SystemClock);
    Ok(Stores {
        state: Arc::new(DynamoStateStore::new(clients.dynamodb.clone(), &config.state_table, config.retention, clock)),
        campaigns: Arc::new(DynamoCampaignStore::new(clients.dynamodb.clone(), &config.config_table)),
        templates: Arc::new(cartback_aws::templates::DynamoTemplateStore::new(
            clients.dynamodb.clone(),
            &config.config_table,
        )),
        history: Arc::new(cartback_aws::history::DynamoHistoryReader::new(
            clients.dynamodb.clone(),
            &config.state_table,
            segments,
        )),
        // The template always deploys the webhook channel's queue.
        channels: [cartback_aws::DELIVERED_CHANNELS.as_slice(), &[Channel::Webhook]].concat(),
        webhook_targets: cartback_aws::webhook_targets::list_targets(&clients.dynamodb, &config.config_table)
            .await
            .map(|targets| targets.into_iter().map(|target| target.name).collect())
            .map_err(anyhow::Error::from),
    })
}

#[cfg(not(feature = "aws"))]
async fn open_aws(_segments: u32) -> anyhow::Result<Stores> {
    anyhow::bail!(
        "this cartback was built without AWS support; build it with `cargo install --path cli --features aws`"
    )
}
