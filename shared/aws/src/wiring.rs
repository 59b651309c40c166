//! Assembling the core services from configuration and SDK clients, once
//! per cold start. The binaries call these; so do the tests.

use std::sync::Arc;

use chrono::Duration;

use cartback_core::api::Api;
use cartback_core::ports::{Clock, Sender};
use cartback_core::service::{
    CampaignCache, Checker, Delivery, Feedback, Ingest, Settings, TemplateCache, VoucherWebhook,
};
use cartback_core::signing::Secret;
use cartback_core::sources::{SourceSecret, SourceSettings};
use cartback_webhook::bigcommerce::BigCommerceSettings;

use crate::clients::Clients;
use crate::config::{
    CheckerConfig, CommonConfig, ConfigError, EmailConfig, IngestConfig, PushConfig, SmsConfig, TimerConfig,
    VoucherWebhookConfig, WebhookConfig, BIGCOMMERCE_API_TOKEN_ARN, INGEST_SECRET_ARN, VOUCHER_WEBHOOK_SECRET_ARN,
    WEB_PUSH_KEY_SECRET_ARN,
};
use crate::dynamo::{DynamoCampaignStore, DynamoStateStore};
use crate::scheduler::EventBridgeScheduler;
use crate::ses::SesSender;
use crate::sns::{SnsPushSender, SnsSmsSender};
use crate::sqs::SqsJobQueue;
use crate::templates::DynamoTemplateStore;

/// How long a function instance trusts its cached campaigns.
pub const CAMPAIGN_CACHE_TTL_SECONDS: i64 = 60;

/// Reads the ingest HMAC key from Secrets Manager (its SecretString).
pub async fn load_secret(clients: &Clients, arn: &str) -> Result<Secret, ConfigError> {
    let value = secret_string(clients, INGEST_SECRET_ARN, arn).await?;
    Secret::new(value.trim().as_bytes().to_vec())
        .map_err(|e| ConfigError::Secret { var: INGEST_SECRET_ARN, reason: e.to_string() })
}

/// A secret's SecretString; errors name `var`, the variable holding its ARN.
async fn secret_string(clients: &Clients, var: &'static str, arn: &str) -> Result<String, ConfigError> {
    let secret_error = |reason: String| ConfigError::Secret { var, reason };
    let out = clients
        .secrets
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| secret_error(aws_smithy_types::error::display::DisplayErrorContext(e).to_string()))?;
    out.secret_string.ok_or_else(|| secret_error("the secret has no SecretString".into()))
}

/// The `voucher.issued` webhook of a sending function, its signing secret
/// read from Secrets Manager once per cold start; `None` when off.
pub async fn voucher_webhook(
    clients: &Clients,
    config: Option<&VoucherWebhookConfig>,
) -> Result<Option<VoucherWebhook>, ConfigError> {
    let Some(config) = config else { return Ok(None) };
    let secret = secret_string(clients, VOUCHER_WEBHOOK_SECRET_ARN, &config.secret_arn).await?;
    let wait = config.wait.to_string();
    let settings = cartback_webhook::WebhookSettings::parse(
        Some(&config.url),
        Some(&secret),
        VOUCHER_WEBHOOK_SECRET_ARN,
        Some(&wait),
    )
    .map_err(|e| ConfigError::Secret { var: VOUCHER_WEBHOOK_SECRET_ARN, reason: e.to_string() })?;
    Ok(settings.as_ref().map(cartback_webhook::WebhookSettings::webhook))
}

pub fn state_store(clients: &Clients, common: &CommonConfig, clock: Arc<dyn Clock>) -> Arc<DynamoStateStore> {
    let store = DynamoStateStore::new(clients.dynamodb.clone(), &common.state_table, common.retention, clock);
    Arc::new(store.with_fact_retention(common.fact_retention))
}

pub fn campaign_cache(clients: &Clients, common: &CommonConfig, clock: Arc<dyn Clock>) -> Arc<CampaignCache> {
    let store = Arc::new(DynamoCampaignStore::new(clients.dynamodb.clone(), &common.config_table));
    Arc::new(CampaignCache::new(store, clock, Duration::seconds(CAMPAIGN_CACHE_TTL_SECONDS)))
}

/// Stored template sets and brand (config table) over the shipped ones,
/// re-read as often as campaigns are.
pub fn template_cache(clients: &Clients, common: &CommonConfig, clock: Arc<dyn Clock>) -> Arc<TemplateCache> {
    let store = Arc::new(DynamoTemplateStore::new(clients.dynamodb.clone(), &common.config_table));
    Arc::new(TemplateCache::new(store, clock, Duration::seconds(CAMPAIGN_CACHE_TTL_SECONDS)))
}

fn settings(config: &TimerConfig, secret: Secret) -> Settings {
    let mut settings = Settings::new(secret, &config.public_base_url, &config.restore_url);
    settings.retention = config.common.retention;
    settings.prices = config.common.prices.clone();
    settings.channels = crate::DELIVERED_CHANNELS.to_vec();
    settings
}

/// The ingest function's HTTP API. On Lambda `clock` is the real clock, so
/// it also bounds the signature replay window.
pub fn api(clients: &Clients, config: &IngestConfig, secret: Secret, clock: Arc<dyn Clock>) -> Api {
    let timer = &config.timer;
    let store = state_store(clients, &timer.common, clock.clone());
    let scheduler = Arc::new(EventBridgeScheduler::new(clients.scheduler.clone(), timer.scheduler.clone()));
    let campaigns = campaign_cache(clients, &timer.common, clock.clone());
    let ingest: Ingest = Ingest { store: store.clone(), scheduler, campaigns, clock: clock.clone() };
    Api {
        ingest,
        store,
        wall_clock: clock.clone(),
        clock,
        settings: Arc::new(Settings {
            web_push_public_key: config.web_push_public_key.clone(),
            ..settings(timer, secret)
        }),
        accept_v1_signatures: config.accept_v1_signatures,
        templates: Arc::new(DynamoTemplateStore::new(clients.dynamodb.clone(), &timer.common.config_table)),
    }
}

/// The order and cart sources the ingest function takes: each configured
/// source's secret, and BigCommerce's API token when its cart fetch is
/// configured, read from Secrets Manager once, at cold start.
pub async fn load_sources(clients: &Clients, config: &IngestConfig) -> Result<SourceSettings, ConfigError> {
    let mut sources = SourceSettings::default();
    for (source, arn) in &config.source_secret_arns {
        let var = source.secret_arn_env();
        let text = secret_string(clients, var, arn).await?;
        let secret = SourceSecret::new(&text).map_err(|reason| ConfigError::Secret { var, reason })?;
        sources = sources.with_secret(*source, secret);
    }
    sources.shop_currency = config.shop_currency.clone();
    if let Some(bigcommerce) = &config.bigcommerce {
        let token = secret_string(clients, BIGCOMMERCE_API_TOKEN_ARN, &bigcommerce.token_arn).await?;
        // The store was checked with the configuration; only the token is new here.
        let settings = BigCommerceSettings::with_token(bigcommerce.store.clone(), &token, BIGCOMMERCE_API_TOKEN_ARN)
            .map_err(|e| ConfigError::Secret { var: BIGCOMMERCE_API_TOKEN_ARN, reason: e.to_string() })?;
        sources.bigcommerce_carts = Some(settings.fetcher());
    }
    Ok(sources)
}

/// `api` taking the sources [`load_sources`] read.
pub fn with_sources(mut api: Api, sources: SourceSettings) -> Api {
    Arc::make_mut(&mut api.settings).sources = sources;
    api
}

pub fn checker(clients: &Clients, config: &CheckerConfig, secret: Secret, clock: Arc<dyn Clock>) -> Checker {
    let timer = &config.timer;
    Checker {
        store: state_store(clients, &timer.common, clock.clone()),
        scheduler: Arc::new(EventBridgeScheduler::new(clients.scheduler.clone(), timer.scheduler.clone())),
        queue: Arc::new(SqsJobQueue::new(clients.sqs.clone(), config.queues.clone())),
        campaigns: campaign_cache(clients, &timer.common, clock.clone()),
        templates: template_cache(clients, &timer.common, clock.clone()),
        clock,
        settings: Arc::new(Settings {
            postal_address: config.postal_address.clone(),
            unsubscribe_mailto: config.unsubscribe_mailto.clone(),
            channels: checker_channels(&config.queues),
            ..settings(timer, secret)
        }),
    }
}

/// The channels the checker decides: `webhook` only with its queue.
fn checker_channels(queues: &crate::config::QueueUrls) -> Vec<cartback_core::message::Channel> {
    let mut channels = crate::DELIVERED_CHANNELS.to_vec();
    if queues.webhook.is_some() {
        channels.push(cartback_core::message::Channel::Webhook);
    }
    channels
}

/// The timer sweep the checker function runs on its sweep schedule.
pub fn timer_sweep(clients: &Clients, config: &CheckerConfig, clock: Arc<dyn Clock>) -> crate::sweep::TimerSweep {
    let timer = &config.timer;
    crate::sweep::TimerSweep {
        store: state_store(clients, &timer.common, clock.clone()),
        scheduler: Arc::new(EventBridgeScheduler::new(clients.scheduler.clone(), timer.scheduler.clone())),
        clock,
    }
}

pub fn delivery(clients: &Clients, common: &CommonConfig, sender: Arc<dyn Sender>, clock: Arc<dyn Clock>) -> Delivery {
    Delivery {
        store: state_store(clients, common, clock.clone()),
        sender,
        campaigns: campaign_cache(clients, common, clock.clone()),
        clock,
        // Set by the function once its secret is read (`voucher_webhook`).
        webhook: None,
    }
}

pub fn email_delivery(clients: &Clients, config: &EmailConfig, clock: Arc<dyn Clock>) -> Delivery {
    let sender = Arc::new(SesSender::new(clients.ses.clone(), &config.sender, &config.configuration_set));
    delivery(clients, &config.common, sender, clock)
}

pub fn sms_delivery(clients: &Clients, config: &SmsConfig, clock: Arc<dyn Clock>) -> Delivery {
    let sender = Arc::new(SnsSmsSender::new(clients.sns.clone(), config.sender_id.clone()));
    delivery(clients, &config.common, sender, clock)
}

pub fn push_delivery(clients: &Clients, config: &PushConfig, clock: Arc<dyn Clock>) -> Delivery {
    push_delivery_with_web_push(clients, config, None, clock)
}

/// [`push_delivery`] whose web push jobs go through `web_push` (see [`web_push_sender`]).
pub fn push_delivery_with_web_push(
    clients: &Clients,
    config: &PushConfig,
    web_push: Option<cartback_webpush::WebPushSender>,
    clock: Arc<dyn Clock>,
) -> Delivery {
    let sender = SnsPushSender::new(
        clients.sns.clone(),
        config.apns_application_arn.clone(),
        config.fcm_application_arn.clone(),
    );
    let sender = Arc::new(match web_push {
        Some(web_push) => sender.with_web_push(web_push),
        None => sender,
    });
    delivery(clients, &config.common, sender, clock)
}

/// The web push sender, its VAPID key read from Secrets Manager once per
/// cold start; `None` when no key is configured.
pub async fn web_push_sender(
    clients: &Clients,
    config: &PushConfig,
) -> Result<Option<cartback_webpush::WebPushSender>, ConfigError> {
    let Some(arn) = &config.web_push_key_arn else { return Ok(None) };
    let text = secret_string(clients, WEB_PUSH_KEY_SECRET_ARN, arn).await?;
    let secret_error =
        |e: cartback_webpush::KeyError| ConfigError::Secret { var: WEB_PUSH_KEY_SECRET_ARN, reason: e.to_string() };
    let key = cartback_webpush::VapidKey::parse(&text).map_err(secret_error)?;
    // Browsers subscribed with the published key: a key that does not match
    // it would be refused (403) by every push service.
    if config.web_push_public_key.as_ref().is_some_and(|published| *published != key.public_key()) {
        return Err(secret_error(cartback_webpush::KeyError::Mismatch));
    }
    // Push services are reached over https only on AWS.
    Ok(Some(cartback_webpush::WebPushSender::new(key, config.web_push_contact.as_deref(), false)))
}

/// The webhook channel's targets from the config table, each secret read
/// from Secrets Manager: once per cold start (a changed target is picked up
/// by the next instance).
pub async fn webhook_targets(
    clients: &Clients,
    common: &CommonConfig,
) -> Result<cartback_webhook::channel::WebhookTargets, ConfigError> {
    let stored = crate::webhook_targets::list_targets(&clients.dynamodb, &common.config_table)
        .await
        .map_err(|e| ConfigError::WebhookTarget { name: "(all)".into(), reason: e.to_string() })?;
    let mut targets = Vec::new();
    for target in stored {
        let error = |reason: String| ConfigError::WebhookTarget { name: target.name.to_string(), reason };
        let secret =
            secret_string(clients, "secret_arn", &target.secret_arn).await.map_err(|e| error(e.to_string()))?;
        let parsed = cartback_webhook::channel::WebhookTarget::parse("", &target.url, &secret, &target.fields)
            .map_err(|e| error(e.to_string().trim_start().to_owned()))?;
        targets.push((target.name.clone(), parsed));
    }
    Ok(cartback_webhook::channel::WebhookTargets::from_targets(targets))
}

/// The send-webhook function's delivery: jobs POSTed to their target.
pub fn webhook_delivery(
    clients: &Clients,
    config: &WebhookConfig,
    targets: cartback_webhook::channel::WebhookTargets,
    clock: Arc<dyn Clock>,
) -> Delivery {
    let sender = Arc::new(cartback_webhook::channel::HttpWebhookSender::new(targets));
    delivery(clients, &config.common, sender, clock)
}

/// The feedback function's service: SES notifications onto the state table.
pub fn feedback(clients: &Clients, common: &CommonConfig, clock: Arc<dyn Clock>) -> Feedback {
    Feedback { store: state_store(clients, common, clock.clone()), clock }
}

#[cfg(test)]
mod tests {
    use cartback_core::message::{Channel, QueueName};

    use super::*;
    use crate::config::QueueUrls;

    #[test]
    fn given_a_webhook_queue_or_none_when_the_checkers_channels_are_set_then_webhook_is_decided_only_with_it() {
        // GIVEN the channel queues without the webhook's (a stack deployed before it)
        let url = |name: &str| format!("https://sqs.us-east-1.amazonaws.com/123456789012/{name}");
        let mut queues = QueueUrls { email: url("e"), sms: url("s"), push: url("p"), webhook: None };
        // THEN the checker routes around webhook steps, as before
        assert!(!checker_channels(&queues).contains(&Channel::Webhook));
        assert_eq!(queues.url(QueueName::Webhook), None);
        // GIVEN its queue WHEN set THEN webhook is decided and enqueued there
        queues.webhook = Some(url("w"));
        assert!(checker_channels(&queues).contains(&Channel::Webhook));
        assert_eq!(queues.url(QueueName::Webhook), Some(url("w").as_str()));
    }
}
