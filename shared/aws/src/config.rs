//! Typed configuration from the environment, validated once at cold start.
//! Every error names the variable at fault, so a bad deploy fails on its
//! first invocation with a sentence an operator can act on.
//!
//! The SAM template sets exactly these variables; see `template.yaml`.

use chrono::Duration;

use cartback_core::measure::report::{PriceError, Prices};
use cartback_core::message::QueueName;
use cartback_core::sources::{Source, SourceSettings, SHOP_CURRENCY_ENV};

pub const STATE_TABLE: &str = "CARTBACK_STATE_TABLE";
pub const CONFIG_TABLE: &str = "CARTBACK_CONFIG_TABLE";
pub const RETENTION_DAYS: &str = "CARTBACK_RETENTION_DAYS";
/// Optional: how long measurement facts are kept (default 400 days).
pub const FACT_RETENTION_DAYS: &str = "CARTBACK_FACT_RETENTION_DAYS";
/// Optional: the shop's message prices for the report's cost (see `Prices`).
pub const MESSAGE_PRICES: &str = "CARTBACK_MESSAGE_PRICES";
pub const INGEST_SECRET_ARN: &str = "CARTBACK_INGEST_SECRET_ARN";
pub const SCHEDULE_GROUP: &str = "CARTBACK_SCHEDULE_GROUP";
pub const SCHEDULER_ROLE_ARN: &str = "CARTBACK_SCHEDULER_ROLE_ARN";
pub const CHECKER_ARN: &str = "CARTBACK_CHECKER_ARN";
pub const TIMER_DEAD_LETTER_QUEUE_ARN: &str = "CARTBACK_TIMER_DEAD_LETTER_QUEUE_ARN";
pub const PUBLIC_BASE_URL: &str = "CARTBACK_PUBLIC_BASE_URL";
pub const RESTORE_URL: &str = "CARTBACK_RESTORE_URL";
pub const EMAIL_QUEUE_URL: &str = "CARTBACK_EMAIL_QUEUE_URL";
pub const SMS_QUEUE_URL: &str = "CARTBACK_SMS_QUEUE_URL";
pub const PUSH_QUEUE_URL: &str = "CARTBACK_PUSH_QUEUE_URL";
/// The webhook channel's queue; unset: the checker does not decide `webhook`.
pub const WEBHOOK_QUEUE_URL: &str = "CARTBACK_WEBHOOK_QUEUE_URL";
pub const SENDER_EMAIL: &str = "CARTBACK_SENDER_EMAIL";
pub const SES_CONFIGURATION_SET: &str = "CARTBACK_SES_CONFIGURATION_SET";
pub const SMS_SENDER_ID: &str = "CARTBACK_SMS_SENDER_ID";
pub const APNS_PLATFORM_APPLICATION_ARN: &str = "CARTBACK_APNS_PLATFORM_APPLICATION_ARN";
pub const FCM_PLATFORM_APPLICATION_ARN: &str = "CARTBACK_FCM_PLATFORM_APPLICATION_ARN";
pub const ACCEPT_V1_SIGNATURES: &str = "CARTBACK_ACCEPT_V1_SIGNATURES";
/// Required by the checker (it renders emails): the sender's postal address every email prints.
pub const POSTAL_ADDRESS: &str = "CARTBACK_POSTAL_ADDRESS";
/// Optional: a mailbox for unsubscribe requests by mail (`List-Unsubscribe`'s `mailto:`).
pub const UNSUBSCRIBE_MAILTO: &str = "CARTBACK_UNSUBSCRIBE_MAILTO";
/// Optional, on the functions that deliver messages: where issued vouchers
/// are announced (`voucher.issued`); empty: off.
pub const VOUCHER_WEBHOOK_URL: &str = cartback_webhook::URL_VAR;
/// The Secrets Manager secret whose SecretString is the webhook's
/// `whsec_<base64>` signing secret (never the secret itself in the
/// environment); required with the URL.
pub const VOUCHER_WEBHOOK_SECRET_ARN: &str = "CARTBACK_VOUCHER_WEBHOOK_SECRET_ARN";
/// The Secrets Manager secret holding the VAPID private key (base64url, 32
/// bytes) of web push; unset: web push is not sent (rejected for good).
pub const WEB_PUSH_KEY_SECRET_ARN: &str = "CARTBACK_WEB_PUSH_KEY_SECRET_ARN";
/// The VAPID public key (served by ingest at `GET /v1/web-push/public-key`).
pub const WEB_PUSH_PUBLIC_KEY: &str = cartback_webpush::PUBLIC_KEY_VAR;
/// The VAPID `sub` claim (`mailto:` or `https:`).
pub const WEB_PUSH_CONTACT: &str = cartback_webpush::CONTACT_VAR;
/// The Secrets Manager secret holding BigCommerce's API token (see
/// `cartback_webhook::bigcommerce`); with `CARTBACK_BIGCOMMERCE_STORE_HASH`.
pub const BIGCOMMERCE_API_TOKEN_ARN: &str = "CARTBACK_BIGCOMMERCE_API_TOKEN_ARN";
/// `true`: a message showing a voucher waits for the webhook's acknowledgement.
pub const VOUCHER_WEBHOOK_WAIT: &str = cartback_webhook::WAIT_VAR;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set (or is empty)")]
    Missing(&'static str),
    #[error("environment variable {var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("the secret named by {var} could not be loaded: {reason}")]
    Secret { var: &'static str, reason: String },
    #[error("webhook target {name} in the config table: {reason}")]
    WebhookTarget { name: String, reason: String },
}

/// Where variables come from: the process environment in a Lambda, a map in
/// tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

fn required(env: &dyn Env, var: &'static str) -> Result<String, ConfigError> {
    match env.var(var).map(|v| v.trim().to_owned()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(var)),
    }
}

fn optional(env: &dyn Env, var: &'static str) -> Option<String> {
    env.var(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { var, reason: reason.into() }
}

fn arn(env: &dyn Env, var: &'static str, service: &str) -> Result<String, ConfigError> {
    let value = required(env, var)?;
    check_arn(var, &value, service)?;
    Ok(value)
}

fn check_arn(var: &'static str, value: &str, service: &str) -> Result<(), ConfigError> {
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != service || parts[5].is_empty() {
        return Err(invalid(
            var,
            format!("expected an ARN of the form arn:<partition>:{service}:<region>:<account>:<resource>"),
        ));
    }
    Ok(())
}

fn http_url(env: &dyn Env, var: &'static str) -> Result<String, ConfigError> {
    let value = required(env, var)?;
    let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') && !value.contains(char::is_whitespace) => Ok(value),
        _ => Err(invalid(var, "expected an absolute http(s) URL")),
    }
}

fn table_name(env: &dyn Env, var: &'static str) -> Result<String, ConfigError> {
    let value = required(env, var)?;
    let ok = (3..=255).contains(&value.len())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(invalid(var, "a DynamoDB table name is 3 to 255 letters, digits, '_', '-' or '.'"));
    }
    Ok(value)
}

/// What every function needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonConfig {
    pub state_table: String,
    pub config_table: String,
    /// How long records live after their last write (DynamoDB TTL).
    pub retention: Duration,
    /// How long measurement facts live after they are recorded: longer
    /// than carts, so a report can compare a season with last year's.
    pub fact_retention: Duration,
    /// What a message costs per channel, for the report's cost.
    pub prices: Prices,
}

impl CommonConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let retention_raw = required(env, RETENTION_DAYS)?;
        let days: i64 =
            retention_raw.parse().map_err(|_| invalid(RETENTION_DAYS, "expected a whole number of days"))?;
        if !(1..=3650).contains(&days) {
            return Err(invalid(RETENTION_DAYS, "must be between 1 and 3650 days"));
        }
        let fact_days = match optional(env, FACT_RETENTION_DAYS) {
            None => crate::dynamo::DEFAULT_FACT_RETENTION_DAYS,
            Some(raw) => raw.parse().map_err(|_| invalid(FACT_RETENTION_DAYS, "expected a whole number of days"))?,
        };
        if !(1..=3650).contains(&fact_days) {
            return Err(invalid(FACT_RETENTION_DAYS, "must be between 1 and 3650 days"));
        }
        Ok(CommonConfig {
            state_table: table_name(env, STATE_TABLE)?,
            config_table: table_name(env, CONFIG_TABLE)?,
            retention: Duration::days(days),
            fact_retention: Duration::days(fact_days),
            prices: match optional(env, MESSAGE_PRICES) {
                None => Prices::default(),
                Some(text) => text.parse().map_err(|e: PriceError| invalid(MESSAGE_PRICES, e.to_string()))?,
            },
        })
    }
}

/// Where timers go: EventBridge Scheduler's group, the role it assumes, the
/// checker it invokes and the SQS queue a timer lands in when the scheduler
/// cannot invoke the checker after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub group: String,
    pub role_arn: String,
    pub checker_arn: String,
    pub dead_letter_arn: String,
}

impl SchedulerConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let group = required(env, SCHEDULE_GROUP)?;
        if group.len() > 64 || !group.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return Err(invalid(SCHEDULE_GROUP, "a schedule group name is 1 to 64 letters, digits, '_', '-' or '.'"));
        }
        Ok(SchedulerConfig {
            group,
            role_arn: arn(env, SCHEDULER_ROLE_ARN, "iam")?,
            checker_arn: arn(env, CHECKER_ARN, "lambda")?,
            dead_letter_arn: arn(env, TIMER_DEAD_LETTER_QUEUE_ARN, "sqs")?,
        })
    }
}

/// The ingest and checker functions: they sign links, arm timers and need
/// the ingest secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerConfig {
    pub common: CommonConfig,
    pub secret_arn: String,
    pub scheduler: SchedulerConfig,
    pub public_base_url: String,
    pub restore_url: String,
}

impl TimerConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let restore_url = http_url(env, RESTORE_URL)?;
        if !restore_url.contains("{cart_id}") && !restore_url.contains("{token}") {
            return Err(invalid(RESTORE_URL, "must contain {cart_id} and/or {token} placeholders"));
        }
        Ok(TimerConfig {
            common: CommonConfig::from_env(env)?,
            secret_arn: arn(env, INGEST_SECRET_ARN, "secretsmanager")?,
            scheduler: SchedulerConfig::from_env(env)?,
            public_base_url: http_url(env, PUBLIC_BASE_URL)?,
            restore_url,
        })
    }
}

/// The ingest function: timers, plus whether `POST /v1/events` still takes
/// legacy v1 signatures (`true` unless set to `false`; every other route
/// needs v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    pub timer: TimerConfig,
    pub accept_v1_signatures: bool,
    /// Where each configured order or cart source's secret is kept
    /// (`CARTBACK_SOURCE_SECRET_ARN_<SOURCE>`): a source without one
    /// answers 404.
    pub source_secret_arns: Vec<(Source, String)>,
    /// The shop's currency for source payloads whose prices name none.
    pub shop_currency: Option<String>,
    /// Where BigCommerce's carts are fetched from, when configured.
    pub bigcommerce: Option<BigCommerceConfig>,
    /// The VAPID public key served to storefronts; `None`: web push off.
    pub web_push_public_key: Option<String>,
}

/// The VAPID public key setting, checked; `None` when unset.
fn web_push_public_key(env: &dyn Env) -> Result<Option<String>, ConfigError> {
    optional(env, WEB_PUSH_PUBLIC_KEY)
        .map(|text| {
            cartback_webpush::VapidKey::parse_public(&text).map_err(|e| invalid(WEB_PUSH_PUBLIC_KEY, e.to_string()))
        })
        .transpose()
}

pub use cartback_webhook::bigcommerce::BigCommerceStore;

/// BigCommerce's Management API for thin webhooks: the store and where its
/// API is (checked here, once), and where its API token is kept (read at
/// cold start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigCommerceConfig {
    pub store: BigCommerceStore,
    pub token_arn: String,
}

impl BigCommerceConfig {
    /// `None` when no store hash is set; the token's ARN is then refused
    /// (a half-made setting is a mistake).
    pub fn from_env(env: &dyn Env) -> Result<Option<Self>, ConfigError> {
        use cartback_webhook::bigcommerce::{API_URL_VAR, STORE_HASH_VAR};
        let store_hash = optional(env, STORE_HASH_VAR);
        let token_arn = optional(env, BIGCOMMERCE_API_TOKEN_ARN);
        let api_url = optional(env, API_URL_VAR);
        let Some(store_hash) = store_hash else {
            return match (token_arn, api_url) {
                (None, None) => Ok(None),
                (Some(_), _) => Err(invalid(BIGCOMMERCE_API_TOKEN_ARN, format!("is set but {STORE_HASH_VAR} is not"))),
                (None, Some(_)) => Err(invalid(API_URL_VAR, format!("is set but {STORE_HASH_VAR} is not"))),
            };
        };
        let token_arn = token_arn.ok_or(ConfigError::Missing(BIGCOMMERCE_API_TOKEN_ARN))?;
        check_arn(BIGCOMMERCE_API_TOKEN_ARN, &token_arn, "secretsmanager")?;
        let store = BigCommerceStore::parse(&store_hash, api_url.as_deref()).map_err(|e| match e {
            cartback_webhook::bigcommerce::BigCommerceSettingError::StoreHash => invalid(STORE_HASH_VAR, e.to_string()),
            e => invalid(API_URL_VAR, e.to_string()),
        })?;
        Ok(Some(BigCommerceConfig { store, token_arn }))
    }
}

impl IngestConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let accept_v1_signatures = match optional(env, ACCEPT_V1_SIGNATURES).as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(_) => return Err(invalid(ACCEPT_V1_SIGNATURES, "expected true or false")),
        };
        let mut source_secret_arns = Vec::new();
        for source in Source::ALL {
            if let Some(arn) = optional(env, source.secret_arn_env()) {
                check_arn(source.secret_arn_env(), &arn, "secretsmanager")?;
                source_secret_arns.push((source, arn));
            }
        }
        let shop_currency = optional(env, SHOP_CURRENCY_ENV);
        if let Some(code) = &shop_currency {
            SourceSettings::default().set_shop_currency(code).map_err(|e| invalid(SHOP_CURRENCY_ENV, e))?;
        }
        Ok(IngestConfig {
            timer: TimerConfig::from_env(env)?,
            accept_v1_signatures,
            source_secret_arns,
            shop_currency,
            bigcommerce: BigCommerceConfig::from_env(env)?,
            web_push_public_key: web_push_public_key(env)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    pub email: String,
    pub sms: String,
    pub push: String,
    pub webhook: Option<String>,
}

impl QueueUrls {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(QueueUrls {
            email: http_url(env, EMAIL_QUEUE_URL)?,
            sms: http_url(env, SMS_QUEUE_URL)?,
            push: http_url(env, PUSH_QUEUE_URL)?,
            webhook: match optional(env, WEBHOOK_QUEUE_URL) {
                None => None,
                Some(_) => Some(http_url(env, WEBHOOK_QUEUE_URL)?),
            },
        })
    }

    /// `None`: this stack has no such queue (the webhook channel's is optional).
    pub fn url(&self, queue: QueueName) -> Option<&str> {
        match queue {
            QueueName::Email => Some(&self.email),
            QueueName::Sms => Some(&self.sms),
            QueueName::Push => Some(&self.push),
            QueueName::Webhook => self.webhook.as_deref(),
        }
    }
}

/// The checker: timers plus the channel queues, and what every email it
/// renders must carry (the postal address, the unsubscribe mailbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckerConfig {
    pub timer: TimerConfig,
    pub queues: QueueUrls,
    pub postal_address: String,
    pub unsubscribe_mailto: Option<String>,
}

impl CheckerConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let postal_address = required(env, POSTAL_ADDRESS)?;
        cartback_core::service::check_postal_address(&postal_address).map_err(|e| invalid(POSTAL_ADDRESS, e))?;
        let unsubscribe_mailto = optional(env, UNSUBSCRIBE_MAILTO);
        if let Some(mailbox) = &unsubscribe_mailto {
            cartback_core::service::check_unsubscribe_mailbox(mailbox).map_err(|e| invalid(UNSUBSCRIBE_MAILTO, e))?;
        }
        Ok(CheckerConfig {
            timer: TimerConfig::from_env(env)?,
            queues: QueueUrls::from_env(env)?,
            postal_address,
            unsubscribe_mailto,
        })
    }
}

/// The `voucher.issued` webhook of the functions that deliver messages:
/// its URL, where its secret is kept and whether messages wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherWebhookConfig {
    pub url: String,
    pub secret_arn: String,
    pub wait: bool,
}

impl VoucherWebhookConfig {
    /// `None` when no URL is set (the default). All three variables are
    /// read either way, so a template that sets one without the URL is seen.
    pub fn from_env(env: &dyn Env) -> Result<Option<Self>, ConfigError> {
        let url = optional(env, VOUCHER_WEBHOOK_URL);
        let secret_arn = optional(env, VOUCHER_WEBHOOK_SECRET_ARN);
        let wait = cartback_webhook::parse_wait(VOUCHER_WEBHOOK_WAIT, optional(env, VOUCHER_WEBHOOK_WAIT).as_deref())
            .map_err(|e| invalid(VOUCHER_WEBHOOK_WAIT, without_var(VOUCHER_WEBHOOK_WAIT, &e)))?;
        let Some(url) = url else { return Ok(None) };
        cartback_webhook::check_url(VOUCHER_WEBHOOK_URL, &url)
            .map_err(|e| invalid(VOUCHER_WEBHOOK_URL, without_var(VOUCHER_WEBHOOK_URL, &e)))?;
        let secret_arn = secret_arn.ok_or(ConfigError::Missing(VOUCHER_WEBHOOK_SECRET_ARN))?;
        check_arn(VOUCHER_WEBHOOK_SECRET_ARN, &secret_arn, "secretsmanager")?;
        Ok(Some(VoucherWebhookConfig { url, secret_arn, wait }))
    }
}

/// A setting error's sentence without its leading variable name (the
/// config error names it).
fn without_var(var: &str, error: &cartback_webhook::SettingError) -> String {
    let text = error.to_string();
    text.strip_prefix(var).map_or(text.clone(), |rest| rest.trim_start().to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    pub common: CommonConfig,
    pub sender: String,
    pub configuration_set: String,
    pub voucher_webhook: Option<VoucherWebhookConfig>,
}

impl EmailConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let sender = required(env, SENDER_EMAIL)?;
        // "Shop <shop@example.com>" or "shop@example.com".
        let address = sender.rsplit_once('<').map(|(_, a)| a.trim_end_matches('>')).unwrap_or(&sender);
        if cartback_core::contact::normalise_email(address).is_none() {
            return Err(invalid(SENDER_EMAIL, "expected an email address, optionally as \"Name <address>\""));
        }
        Ok(EmailConfig {
            common: CommonConfig::from_env(env)?,
            sender,
            configuration_set: required(env, SES_CONFIGURATION_SET)?,
            voucher_webhook: VoucherWebhookConfig::from_env(env)?,
        })
    }
}

/// The send-webhook function: its targets are read from the config table
/// (see [`crate::webhook_targets`]), their secrets from Secrets Manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub common: CommonConfig,
    pub voucher_webhook: Option<VoucherWebhookConfig>,
}

impl WebhookConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(WebhookConfig {
            common: CommonConfig::from_env(env)?,
            voucher_webhook: VoucherWebhookConfig::from_env(env)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsConfig {
    pub common: CommonConfig,
    /// Alphanumeric sender id; not supported in every country, so optional.
    pub sender_id: Option<String>,
    pub voucher_webhook: Option<VoucherWebhookConfig>,
}

impl SmsConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let sender_id = optional(env, SMS_SENDER_ID);
        if let Some(id) = &sender_id {
            let ok = (1..=11).contains(&id.len())
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && id.chars().any(|c| c.is_ascii_alphabetic());
            if !ok {
                return Err(invalid(
                    SMS_SENDER_ID,
                    "a sender id is 1 to 11 letters, digits or '-', with at least one letter",
                ));
            }
        }
        Ok(SmsConfig {
            common: CommonConfig::from_env(env)?,
            sender_id,
            voucher_webhook: VoucherWebhookConfig::from_env(env)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushConfig {
    pub common: CommonConfig,
    pub apns_application_arn: Option<String>,
    pub fcm_application_arn: Option<String>,
    pub voucher_webhook: Option<VoucherWebhookConfig>,
    /// Web push: the VAPID key's secret and the contact; `None`: off.
    pub web_push_key_arn: Option<String>,
    pub web_push_contact: Option<String>,
    /// The published public key the secret must match (checked at cold start).
    pub web_push_public_key: Option<String>,
}

impl PushConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let apns = optional(env, APNS_PLATFORM_APPLICATION_ARN);
        let fcm = optional(env, FCM_PLATFORM_APPLICATION_ARN);
        for (var, value) in [(APNS_PLATFORM_APPLICATION_ARN, &apns), (FCM_PLATFORM_APPLICATION_ARN, &fcm)] {
            if let Some(v) = value {
                check_arn(var, v, "sns")?;
            }
        }
        Ok(PushConfig {
            common: CommonConfig::from_env(env)?,
            apns_application_arn: apns,
            fcm_application_arn: fcm,
            voucher_webhook: VoucherWebhookConfig::from_env(env)?,
            web_push_key_arn: match optional(env, WEB_PUSH_KEY_SECRET_ARN) {
                Some(arn) => Some(check_arn(WEB_PUSH_KEY_SECRET_ARN, &arn, "secretsmanager").map(|()| arn)?),
                None => None,
            },
            web_push_contact: optional(env, WEB_PUSH_CONTACT),
            web_push_public_key: web_push_public_key(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 3] =
        [(STATE_TABLE, "cartback-state"), (CONFIG_TABLE, "cartback-config"), (RETENTION_DAYS, "90")];

    #[test]
    fn given_all_common_variables_when_loaded_then_retention_is_typed() {
        let c = CommonConfig::from_env(&env(&BASE)).unwrap();
        assert_eq!(c.retention, Duration::days(90));
        assert_eq!(c.state_table, "cartback-state");
        assert_eq!(c.fact_retention, Duration::days(400), "facts outlive carts by default");
    }

    #[test]
    fn given_message_prices_when_loaded_then_they_are_used_and_a_bad_one_is_named() {
        let mut vars = BASE.to_vec();
        assert_eq!(CommonConfig::from_env(&env(&vars)).unwrap().prices, Prices::default());
        vars.push((MESSAGE_PRICES, "sms=0.0075"));
        let prices = CommonConfig::from_env(&env(&vars)).unwrap().prices;
        assert_eq!(prices.per_message[&cartback_core::message::Channel::Sms], "0.0075".parse().unwrap());
        vars.pop();
        vars.push((MESSAGE_PRICES, "sms=free"));
        let error = CommonConfig::from_env(&env(&vars)).unwrap_err();
        assert!(matches!(&error, ConfigError::Invalid { var: MESSAGE_PRICES, reason } if reason.starts_with("sms:")));
    }

    #[test]
    fn given_a_fact_retention_when_loaded_then_it_is_used_and_a_bad_one_is_named() {
        let mut vars = BASE.to_vec();
        vars.push((FACT_RETENTION_DAYS, "730"));
        assert_eq!(CommonConfig::from_env(&env(&vars)).unwrap().fact_retention, Duration::days(730));
        for bad in ["two years", "0", "5000"] {
            vars.pop();
            vars.push((FACT_RETENTION_DAYS, bad));
            let error = CommonConfig::from_env(&env(&vars)).unwrap_err();
            assert!(matches!(error, ConfigError::Invalid { var: FACT_RETENTION_DAYS, .. }), "{bad}: {error}");
        }
    }

    #[test]
    fn given_a_missing_or_malformed_variable_when_loaded_then_the_error_names_it() {
        let e = CommonConfig::from_env(&env(&BASE[..2])).unwrap_err();
        assert_eq!(e, ConfigError::Missing(RETENTION_DAYS));
        assert!(e.to_string().contains("CARTBACK_RETENTION_DAYS"));
        let mut bad = BASE.to_vec();
        bad[2] = (RETENTION_DAYS, "ninety");
        assert!(matches!(CommonConfig::from_env(&env(&bad)), Err(ConfigError::Invalid { var: RETENTION_DAYS, .. })));
        let mut vars = BASE.to_vec();
        vars.extend([
            (SCHEDULE_GROUP, "g"),
            (SCHEDULER_ROLE_ARN, "not-an-arn"),
            (CHECKER_ARN, "arn:aws:lambda:us-east-1:123456789012:function:c"),
        ]);
        let e = SchedulerConfig::from_env(&env(&vars)).unwrap_err();
        assert!(e.to_string().contains(SCHEDULER_ROLE_ARN), "{e}");
    }

    /// GIVEN the push sender's web push variables, well-formed or not
    /// WHEN loaded THEN a bad ARN or public key is refused, naming the variable.
    #[test]
    fn given_web_push_settings_when_the_push_sender_loads_then_bad_ones_name_their_variable() {
        let public = cartback_webpush::VapidKey::generate().public_key();
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:WebPushKey-AbCdEf";
        let mut vars = BASE.to_vec();
        vars.extend([(WEB_PUSH_KEY_SECRET_ARN, arn), (WEB_PUSH_PUBLIC_KEY, public.as_str())]);
        let push = PushConfig::from_env(&env(&vars)).unwrap();
        assert_eq!((push.web_push_key_arn.as_deref(), push.web_push_public_key), (Some(arn), Some(public.clone())));
        for (var, bad) in [(WEB_PUSH_KEY_SECRET_ARN, "arn:aws:sns:us-east-1:1:x"), (WEB_PUSH_PUBLIC_KEY, "BAAA")] {
            let mut vars = BASE.to_vec();
            vars.push((var, bad));
            let error = PushConfig::from_env(&env(&vars)).unwrap_err();
            assert!(error.to_string().contains(var), "{error}");
        }
    }

    /// GIVEN a checker environment without a postal address, or with a malformed unsubscribe mailbox
    /// WHEN loaded THEN the error names the variable (the checker renders every email).
    #[test]
    fn given_no_postal_address_or_a_bad_mailbox_when_the_checker_loads_then_the_error_names_the_variable() {
        let error = CheckerConfig::from_env(&env(&BASE)).unwrap_err();
        assert_eq!(error, ConfigError::Missing(POSTAL_ADDRESS));
        assert!(error.to_string().contains("CARTBACK_POSTAL_ADDRESS"), "{error}");
        let mut vars = BASE.to_vec();
        vars.extend([(POSTAL_ADDRESS, "Shop, 1 Main St, Springfield"), (UNSUBSCRIBE_MAILTO, "not a mailbox")]);
        let error = CheckerConfig::from_env(&env(&vars)).unwrap_err();
        assert!(matches!(error, ConfigError::Invalid { var: UNSUBSCRIBE_MAILTO, .. }), "{error}");
        vars.pop();
        vars.push((POSTAL_ADDRESS, "line one\nline two"));
        let error = CheckerConfig::from_env(&env(&vars[..3].iter().chain(&vars[4..]).copied().collect::<Vec<_>>()));
        assert!(matches!(error, Err(ConfigError::Invalid { var: POSTAL_ADDRESS, .. })), "{error:?}");
    }

    #[test]
    fn given_empty_optional_push_and_sms_settings_when_loaded_then_they_are_none() {
        let mut vars = BASE.to_vec();
        vars.extend([(SMS_SENDER_ID, ""), (APNS_PLATFORM_APPLICATION_ARN, ""), (FCM_PLATFORM_APPLICATION_ARN, " ")]);
        assert_eq!(SmsConfig::from_env(&env(&vars)).unwrap().sender_id, None);
        let p = PushConfig::from_env(&env(&vars)).unwrap();
        assert_eq!((p.apns_application_arn, p.fcm_application_arn), (None, None));
    }

    #[test]
    fn given_no_voucher_webhook_url_when_a_sender_loads_then_the_webhook_is_off() {
        let mut vars = BASE.to_vec();
        vars.extend([(VOUCHER_WEBHOOK_URL, ""), (VOUCHER_WEBHOOK_SECRET_ARN, ""), (VOUCHER_WEBHOOK_WAIT, "false")]);
        assert_eq!(SmsConfig::from_env(&env(&vars)).unwrap().voucher_webhook, None);
        assert_eq!(VoucherWebhookConfig::from_env(&env(&BASE)).unwrap(), None, "unset is off too");
    }

    #[test]
    fn given_a_voucher_webhook_when_a_sender_loads_then_it_is_typed_and_bad_values_are_named() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:VoucherWebhookSecret-AbCdEf";
        let mut vars = BASE.to_vec();
        vars.extend([(VOUCHER_WEBHOOK_URL, "https://shop.example/hooks"), (VOUCHER_WEBHOOK_WAIT, "true")]);
        assert_eq!(PushConfig::from_env(&env(&vars)).unwrap_err(), ConfigError::Missing(VOUCHER_WEBHOOK_SECRET_ARN));
        vars.push((VOUCHER_WEBHOOK_SECRET_ARN, arn));
        let webhook = PushConfig::from_env(&env(&vars)).unwrap().voucher_webhook.unwrap();
        let url = "https://shop.example/hooks".to_owned();
        let expected = VoucherWebhookConfig { url, secret_arn: arn.into(), wait: true };
        assert_eq!(webhook, expected);
        for (var, bad) in [
            (VOUCHER_WEBHOOK_URL, "http://shop.example/hooks"),
            (VOUCHER_WEBHOOK_WAIT, "yes"),
            (VOUCHER_WEBHOOK_SECRET_ARN, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ] {
            let mut bad_vars: Vec<(&str, &str)> = vars.iter().copied().filter(|(k, _)| *k != var).collect();
            bad_vars.push((var, bad));
            let error = VoucherWebhookConfig::from_env(&env(&bad_vars)).unwrap_err();
            assert!(matches!(&error, ConfigError::Invalid { var: v, .. } if *v == var), "{var}: {error}");
            assert!(!error.to_string().contains("whsec_"), "a misplaced secret is not echoed: {error}");
        }
    }

    #[test]
    fn given_a_sender_with_a_display_name_when_loaded_then_it_is_accepted() {
        let mut vars = BASE.to_vec();
        vars.extend([(SENDER_EMAIL, "Shop <shop@example.com>"), (SES_CONFIGURATION_SET, "cs")]);
        assert_eq!(EmailConfig::from_env(&env(&vars)).unwrap().sender, "Shop <shop@example.com>");
        vars[3] = (SENDER_EMAIL, "nobody");
        assert!(EmailConfig::from_env(&env(&vars)).unwrap_err().to_string().contains(SENDER_EMAIL));
    }
}
