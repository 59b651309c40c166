//! Template sets and the brand on DynamoDB, in the config table next to the
//! campaigns:
//!
//! | item         | pk          | sk                 | attribute                 |
//! |--------------|-------------|--------------------|---------------------------|
//! | template set | `TEMPLATES` | `TEMPLATE#<name>`  | `template`: the set JSON  |
//! | brand        | `TEMPLATES` | `BRAND`            | `brand`: the brand JSON   |
//!
//! One partition, like the campaigns: `list_templates` is a single `Query`
//! (all the functions' IAM policies allow on the config table), and a shop's
//! handful of sets fits it easily.
//!
//! Size: an item may hold 400 KB. A set is refused above [`MAX_SET_BYTES`]
//! (measured as stored: attribute names and values), with a sentence naming
//! the set and its size, before DynamoDB is asked: the margin keeps room
//! for the key and the time, and a refusal reads better than DynamoDB's
//! `ValidationException`. The shipped sets, four locales with responsive
//! HTML each, take a small part of it.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::Utc;

use cartback_core::ports::{PortError, TemplateStore};
use cartback_core::template::{Brand, TemplateName, TemplateSet};

use crate::dynamo::{corrupt, key, query_config_items, s, sort_time, text_attribute, Item, SERVICE};
use crate::error::dynamodb_error;

pub const TEMPLATES_PK: &str = "TEMPLATES";
const TEMPLATE_PREFIX: &str = "TEMPLATE#";
const BRAND_SK: &str = "BRAND";

/// The largest set, in bytes as stored, that [`DynamoTemplateStore`] keeps.
pub const MAX_SET_BYTES: usize = 350 * 1024;

/// Template sets and the brand in the config table.
pub struct DynamoTemplateStore {
    client: Client,
    table: String,
}

impl DynamoTemplateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoTemplateStore { client, table: table.into() }
    }
}

pub fn template_key(name: &TemplateName) -> (String, String) {
    (TEMPLATES_PK.into(), format!("{TEMPLATE_PREFIX}{name}"))
}

/// An item's size as DynamoDB counts it: the UTF-8 length of every
/// attribute name plus its value (strings only here).
fn item_bytes(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(text) | AttributeValue::N(text) => text.len(),
                    _ => 0,
                }
        })
        .sum()
}

/// Refuses a set too large for one item, naming it and its size.
fn check_size(name: &TemplateName, item: &Item) -> Result<(), PortError> {
    let bytes = item_bytes(item);
    if bytes > MAX_SET_BYTES {
        let message = format!(
            "template set {name} takes {} KB as stored, more than the {} KB a set may take; \
             shorten its HTML or move locales into a second set",
            bytes.div_ceil(1024),
            MAX_SET_BYTES / 1024
        );
        return Err(PortError::Refused(SERVICE, message.into()));
    }
    Ok(())
}

/// The item a set is stored as, refused when too large.
fn template_item(set: &TemplateSet) -> Result<Item, PortError> {
    let json = serde_json::to_string(set).map_err(|e| corrupt("template set does not serialise", e))?;
    let mut item = key(template_key(&set.name));
    item.insert("template_name".into(), s(set.name.as_str()));
    item.insert("template".into(), s(json));
    item.insert("updated_at".into(), s(sort_time(Utc::now())));
    check_size(&set.name, &item)?;
    Ok(item)
}

#[async_trait]
impl TemplateStore for DynamoTemplateStore {
    async fn list_templates(&self) -> Result<Vec<TemplateSet>, PortError> {
        let mut sets = Vec::new();
        for item in query_config_items(&self.client, &self.table, TEMPLATES_PK, TEMPLATE_PREFIX).await? {
            let sk = text_attribute(&item, "sk", "?")?;
            let json = text_attribute(&item, "template", sk)?;
            let set: TemplateSet = serde_json::from_str(json).map_err(|e| corrupt(&format!("template set {sk}"), e))?;
            sets.push(set);
        }
        sets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(sets)
    }

    async fn check_fits(&self, set: &TemplateSet) -> Result<(), PortError> {
        template_item(set).map(|_| ())
    }

    async fn put_template(&self, set: &TemplateSet) -> Result<(), PortError> {
        let item = template_item(set)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| dynamodb_error(SERVICE, e))?;
        Ok(())
    }

    async fn delete_template(&self, name: &TemplateName) -> Result<bool, PortError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(template_key(name))))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| dynamodb_error(SERVICE, e))?;
        Ok(out.attributes.is_some_and(|old| !old.is_empty()))
    }

    async fn brand(&self) -> Result<Option<Brand>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key((TEMPLATES_PK.into(), BRAND_SK.into()))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamodb_error(SERVICE, e))?;
        let Some(item) = out.item else { return Ok(None) };
        let json = text_attribute(&item, "brand", BRAND_SK)?;
        serde_json::from_str(json).map(Some).map_err(|e| corrupt("brand", e))
    }

    async fn put_brand(&self, brand: &Brand) -> Result<(), PortError> {
        let json = serde_json::to_string(brand).map_err(|e| corrupt("brand does not serialise", e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(TEMPLATES_PK))
            .item("sk", s(BRAND_SK))
            .item("brand", s(json))
            .item("updated_at", s(sort_time(Utc::now())))
            .send()
            .await
            .map_err(|e| dynamodb_error(SERVICE, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> TemplateName {
        TemplateName::parse(text).unwrap()
    }

    #[test]
    fn given_an_item_when_measured_then_names_and_values_count_in_utf8_bytes() {
        let mut item = key(template_key(&name("reminder")));
        item.insert("template".into(), s("é".repeat(10)));
        // pk + TEMPLATES, sk + TEMPLATE#reminder, template + 20 bytes of "é".
        assert_eq!(item_bytes(&item), 2 + 9 + 2 + 17 + 8 + 20);
    }

    #[test]
    fn given_a_set_over_350_kb_when_checked_then_it_is_refused_naming_the_set_and_its_size() {
        let mut item = key(template_key(&name("big")));
        item.insert("template".into(), s("x".repeat(MAX_SET_BYTES)));
        let err = check_size(&name("big"), &item).unwrap_err();
        assert!(matches!(err, PortError::Refused(..)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("template set big takes 351 KB"), "{text}");
        assert!(text.contains("350 KB"), "{text}");

        let mut small = key(template_key(&name("small")));
        small.insert("template".into(), s("x".repeat(MAX_SET_BYTES - 100)));
        assert!(check_size(&name("small"), &small).is_ok());
    }
}
