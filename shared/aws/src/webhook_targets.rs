//! The webhook channel's targets on AWS, in the config table beside the
//! campaigns; the signing secret stays in Secrets Manager, the item names it:
//!
//! | item   | pk                | sk              | attributes                                  |
//! |--------|-------------------|-----------------|---------------------------------------------|
//! | target | `WEBHOOK_TARGETS` | `TARGET#<name>` | `url`, `secret_arn`, `fields` (`email,phone`) |
//!
//! The same three parts as `cartback dev`'s `CARTBACK_WEBHOOK_TARGET_<NAME>_*`
//! variables, the secret's value (`whsec_<base64>`) being the secret's
//! SecretString.

use aws_sdk_dynamodb::Client;
use cartback_core::ports::PortError;
use cartback_core::webhook::WebhookTargetName;

use crate::dynamo::{key, query_config_items, s, text_attribute, SERVICE};
use crate::error::dynamodb_error;

pub const WEBHOOK_TARGETS_PK: &str = "WEBHOOK_TARGETS";
const TARGET_PREFIX: &str = "TARGET#";

/// One target as stored: its secret by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTarget {
    pub name: WebhookTargetName,
    pub url: String,
    /// The ARN (or name) of the Secrets Manager secret holding `whsec_<base64>`.
    pub secret_arn: String,
    /// Comma-separated contact fields the target may see; empty: none.
    pub fields: String,
}

/// Every stored target, by name.
pub async fn list_targets(client: &Client, table: &str) -> Result<Vec<StoredTarget>, PortError> {
    let mut targets = Vec::new();
    for item in query_config_items(client, table, WEBHOOK_TARGETS_PK, TARGET_PREFIX).await? {
        let sk = text_attribute(&item, "sk", "?")?;
        let name = WebhookTargetName::parse(sk.trim_start_matches(TARGET_PREFIX))
            .map_err(|reason| PortError::Corrupt(format!("config item {sk}: {reason}")))?;
        targets.push(StoredTarget {
            name,
            url: text_attribute(&item, "url", sk)?.to_owned(),
            secret_arn: text_attribute(&item, "secret_arn", sk)?.to_owned(),
            fields: text_attribute(&item, "fields", sk).unwrap_or_default().to_owned(),
        });
    }
    Ok(targets)
}

/// Stores (or replaces) one target.
pub async fn put_target(client: &Client, table: &str, target: &StoredTarget) -> Result<(), PortError> {
    let mut item = key((WEBHOOK_TARGETS_PK.into(), format!("{TARGET_PREFIX}{}", target.name)));
    item.insert("url".into(), s(&target.url));
    item.insert("secret_arn".into(), s(&target.secret_arn));
    item.insert("fields".into(), s(&target.fields));
    client.put_item().table_name(table).set_item(Some(item)).send().await.map_err(|e| dynamodb_error(SERVICE, e))?;
    Ok(())
}
