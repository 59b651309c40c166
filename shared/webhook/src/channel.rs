//! The webhook channel's sender: a step's `cart.abandoned_reminder`
//! POSTed to the named target, signed as Standard Webhooks.
//!
//! Targets come from the environment, one set of variables per name:
//! `CARTBACK_WEBHOOK_TARGET_<NAME>_URL`, `..._SECRET` (`whsec_<base64>`)
//! and `..._FIELDS` (the contact fields it may see, comma-separated:
//! `email`, `phone`, `first_name`; unset: none). `<NAME>` is the target's
//! name upper-cased (`crm` -> `CARTBACK_WEBHOOK_TARGET_CRM_URL`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use cartback_core::message::{MessageJob, Outgoing};
use cartback_core::ports::{PriorAttempt, SendError, Sender};
use cartback_core::webhook::{
    cart_reminder_body, sign_request, ContactField, SignedWebhook, WebhookSecret, WebhookTargetName,
};
use chrono::{DateTime, Utc};

use crate::{check_url, REQUEST_TIMEOUT};

pub const TARGET_PREFIX: &str = "CARTBACK_WEBHOOK_TARGET_";

/// The longest `Retry-After` honoured: 12 hours, the longest an SQS
/// message can be hidden (the AWS sender's postponement); a receiver asking
/// for more is retried then.
pub const MAX_RETRY_AFTER_SECONDS: i64 = 12 * 3600;

/// One target: where, with which secret, and what it may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: WebhookSecret,
    pub fields: Vec<ContactField>,
}

impl WebhookTarget {
    /// One target from its parts as stored (`fields` comma-separated);
    /// errors name `what` (the target) and the part, never the secret.
    pub fn parse(what: &str, url: &str, secret: &str, fields: &str) -> Result<WebhookTarget, TargetError> {
        let url = url.trim();
        check_url("", url).map_err(|_| TargetError::Url { var: format!("{what} url") })?;
        let secret = WebhookSecret::parse(secret)
            .map_err(|source| TargetError::Secret { var: format!("{what} secret"), source })?;
        let fields = parse_fields(&format!("{what} fields"), fields)?;
        Ok(WebhookTarget { url: url.to_owned(), secret, fields })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{var}: {reason}")]
    Name { var: String, reason: String },
    #[error("{var} must be an absolute https URL (http only for localhost), without spaces")]
    Url { var: String },
    #[error("{var} is required with {url_var} (a whsec_<base64> signing secret)")]
    MissingSecret { var: String, url_var: String },
    #[error("{var} {source}")]
    Secret {
        var: String,
        #[source]
        source: cartback_core::webhook::WebhookSecretError,
    },
    #[error("{var} is set but {url_var} is not")]
    WithoutUrl { var: String, url_var: String },
    #[error("{var}: {field:?} is not a contact field (email, phone, first_name)")]
    Field { var: String, field: String },
}

/// The configured targets by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookTargets(BTreeMap<WebhookTargetName, WebhookTarget>);

impl WebhookTargets {
    /// From environment variables (name, value); others are ignored.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<WebhookTargets, TargetError> {
        let mut parts: BTreeMap<String, [Option<String>; 3]> = BTreeMap::new();
        for (var, value) in vars {
            let Some(rest) = var.strip_prefix(TARGET_PREFIX) else { continue };
            let value = value.trim().to_owned();
            if value.is_empty() {
                continue;
            }
            let (name, slot) =
                match (rest.strip_suffix("_URL"), rest.strip_suffix("_SECRET"), rest.strip_suffix("_FIELDS")) {
                    (Some(name), _, _) => (name, 0),
                    (_, Some(name), _) => (name, 1),
                    (_, _, Some(name)) => (name, 2),
                    _ => continue,
                };
            parts.entry(name.to_owned()).or_default()[slot] = Some(value);
        }
        let mut targets = BTreeMap::new();
        for (upper, [url, secret, fields]) in parts {
            let var = |suffix: &str| format!("{TARGET_PREFIX}{upper}_{suffix}");
            let name = WebhookTargetName::parse(&upper.to_ascii_lowercase())
                .map_err(|reason| TargetError::Name { var: var("URL"), reason })?;
            let Some(url) = url else {
                let set = if secret.is_some() { "SECRET" } else { "FIELDS" };
                return Err(TargetError::WithoutUrl { var: var(set), url_var: var("URL") });
            };
            check_url("", &url).map_err(|_| TargetError::Url { var: var("URL") })?;
            let secret =
                secret.ok_or_else(|| TargetError::MissingSecret { var: var("SECRET"), url_var: var("URL") })?;
            let secret =
                WebhookSecret::parse(&secret).map_err(|source| TargetError::Secret { var: var("SECRET"), source })?;
            let fields = parse_fields(&var("FIELDS"), fields.as_deref().unwrap_or_default())?;
            targets.insert(name, WebhookTarget { url, secret, fields });
        }
        Ok(WebhookTargets(targets))
    }

    /// From definitions read elsewhere (the AWS config table).
    pub fn from_targets(targets: impl IntoIterator<Item = (WebhookTargetName, WebhookTarget)>) -> WebhookTargets {
        WebhookTargets(targets.into_iter().collect())
    }

    /// From this process's environment.
    pub fn from_env() -> Result<WebhookTargets, TargetError> {
        WebhookTargets::from_vars(std::env::vars())
    }

    pub fn names(&self) -> Vec<WebhookTargetName> {
        self.0.keys().cloned().collect()
    }

    pub fn get(&self, name: &WebhookTargetName) -> Option<&WebhookTarget> {
        self.0.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_fields(var: &str, text: &str) -> Result<Vec<ContactField>, TargetError> {
    let mut fields = Vec::new();
    for field in text.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let parsed = ContactField::parse(field)
            .ok_or_else(|| TargetError::Field { var: var.to_owned(), field: field.into() })?;
        if !fields.contains(&parsed) {
            fields.push(parsed);
        }
    }
    Ok(fields)
}

/// What one delivery sent: the job as the target saw it (contact fields
/// outside its allow-list removed), for the outbox's readable copy.
pub struct Delivered {
    pub webhook_id: String,
    pub seen: MessageJob,
}

/// POSTs webhook jobs to their targets.
pub struct HttpWebhookSender {
    agent: ureq::Agent,
    targets: WebhookTargets,
}

impl HttpWebhookSender {
    pub fn new(targets: WebhookTargets) -> HttpWebhookSender {
        // A redirect is not an acknowledgement (and would carry the cart elsewhere).
        let agent = ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).redirects(0).build();
        HttpWebhookSender { agent, targets }
    }

    /// Signs and posts one job. A webhook job only; any other is refused.
    pub async fn deliver(&self, job: &MessageJob) -> Result<Delivered, SendError> {
        let Outgoing::Webhook { target, event, contact } = &job.outgoing else {
            return Err(SendError::Permanent(format!("the webhook sender got a {} job", job.channel.as_str())));
        };
        let Some(config) = self.targets.get(target) else {
            return Err(SendError::Permanent(format!("no webhook target {target:?} is configured")));
        };
        let (id, body) = cart_reminder_body(event, contact, &config.fields);
        // Receivers check the timestamp against their own clock: the wall
        // clock, never the runtime's (which `cartback dev` may run fast).
        let signed = sign_request(&config.secret, &id, body, Utc::now());
        let (agent, url) = (self.agent.clone(), config.url.clone());
        tokio::task::spawn_blocking(move || post(&agent, &url, &signed))
            .await
            .map_err(|e| SendError::Retryable(format!("the request did not complete: {e}")))??;
        let seen =
            Outgoing::Webhook { target: target.clone(), event: event.clone(), contact: contact.only(&config.fields) };
        Ok(Delivered { webhook_id: id, seen: MessageJob { outgoing: seen, ..job.clone() } })
    }
}

#[async_trait]
impl Sender for HttpWebhookSender {
    async fn send(&self, job: &MessageJob, _now: DateTime<Utc>) -> Result<String, SendError> {
        Ok(self.deliver(job).await?.webhook_id)
    }

    /// A target cannot be asked whether an interrupted attempt arrived;
    /// posting again is safe: the same `webhook-id`, which a receiver drops
    /// as a repeat (the specification asks it to).
    async fn prior_attempt(&self, _job: &MessageJob) -> Result<PriorAttempt, SendError> {
        Ok(PriorAttempt::NotDelivered)
    }
}

/// One attempt. A lost answer is retried like a refused connection: the
/// `webhook-id` is the same on every attempt, so a receiver that took the
/// first drops the repeat (the specification asks receivers to). Errors
/// name the status or the transport failure, never the URL or the body.
fn post(agent: &ureq::Agent, url: &str, signed: &SignedWebhook) -> Result<(), SendError> {
    let mut request = agent.post(url);
    for (name, value) in &signed.headers {
        request = request.set(name, value);
    }
    match request.send_bytes(&signed.body) {
        Ok(response) if (200..300).contains(&response.status()) => Ok(()),
        Ok(response) => Err(SendError::Permanent(format!("HTTP {} (redirects are not followed)", response.status()))),
        Err(ureq::Error::Status(status, response)) => Err(classify(status, response.header("retry-after"), Utc::now())),
        Err(ureq::Error::Transport(transport)) => Err(SendError::Retryable(transport.kind().to_string())),
    }
}

/// 429 and 5xx (and 408) are retried, after `Retry-After` when the receiver
/// gives one; any other answer is a refusal for good.
fn classify(status: u16, retry_after: Option<&str>, now: DateTime<Utc>) -> SendError {
    let error = format!("HTTP {status}");
    match status {
        408 | 429 | 500..=599 => match retry_after.and_then(|v| parse_retry_after(v, now)) {
            Some(after) => SendError::RetryAfter { error, after },
            None => SendError::Retryable(error),
        },
        _ => SendError::Permanent(error),
    }
}

/// `Retry-After` (RFC 9110 section 10.2.3): seconds, or an HTTP date;
/// capped at [`MAX_RETRY_AFTER_SECONDS`].
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<chrono::Duration> {
    let value = value.trim();
    let seconds = match value.parse::<i64>() {
        Ok(seconds) => seconds,
        Err(_) => (DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc) - now).num_seconds(),
    };
    Some(chrono::Duration::seconds(seconds.clamp(0, MAX_RETRY_AFTER_SECONDS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn given_target_variables_when_parsed_then_each_name_has_its_url_secret_and_allowed_fields() {
        // GIVEN two targets, one allowed the email and first name
        let targets = WebhookTargets::from_vars(vars(&[
            ("CARTBACK_WEBHOOK_TARGET_CRM_URL", "https://crm.example/hooks"),
            ("CARTBACK_WEBHOOK_TARGET_CRM_SECRET", SECRET),
            ("CARTBACK_WEBHOOK_TARGET_CRM_FIELDS", "email, first_name"),
            ("CARTBACK_WEBHOOK_TARGET_CHAT_BOT_URL", "http://localhost:9000/in"),
            ("CARTBACK_WEBHOOK_TARGET_CHAT_BOT_SECRET", SECRET),
            ("PATH", "/usr/bin"),
        ]))
        .unwrap();
        // THEN both are known by their lower-case names, the second sees no contact field
        let names: Vec<String> = targets.names().into_iter().map(String::from).collect();
        assert_eq!(names, ["chat_bot", "crm"]);
        let crm = targets.get(&WebhookTargetName::parse("crm").unwrap()).unwrap();
        assert_eq!(crm.fields, [ContactField::Email, ContactField::FirstName]);
        assert!(targets.get(&WebhookTargetName::parse("chat_bot").unwrap()).unwrap().fields.is_empty());
    }

    #[test]
    fn given_bad_target_variables_when_parsed_then_the_error_names_the_variable_and_never_the_secret() {
        let url = ("CARTBACK_WEBHOOK_TARGET_CRM_URL", "https://crm.example/hooks");
        let missing = WebhookTargets::from_vars(vars(&[url])).unwrap_err();
        assert_eq!(missing.to_string(), "CARTBACK_WEBHOOK_TARGET_CRM_SECRET is required with CARTBACK_WEBHOOK_TARGET_CRM_URL (a whsec_<base64> signing secret)");
        let bad =
            WebhookTargets::from_vars(vars(&[url, ("CARTBACK_WEBHOOK_TARGET_CRM_SECRET", "hunter2")])).unwrap_err();
        assert!(bad.to_string().starts_with("CARTBACK_WEBHOOK_TARGET_CRM_SECRET must start with"), "{bad}");
        assert!(!bad.to_string().contains("hunter2"));
        let plain_http = WebhookTargets::from_vars(vars(&[
            ("CARTBACK_WEBHOOK_TARGET_CRM_URL", "http://crm.example/hooks"),
            ("CARTBACK_WEBHOOK_TARGET_CRM_SECRET", SECRET),
        ]));
        assert!(matches!(plain_http, Err(TargetError::Url { .. })));
        let field = WebhookTargets::from_vars(vars(&[
            url,
            ("CARTBACK_WEBHOOK_TARGET_CRM_SECRET", SECRET),
            ("CARTBACK_WEBHOOK_TARGET_CRM_FIELDS", "email,address"),
        ]))
        .unwrap_err();
        assert_eq!(
            field.to_string(),
            "CARTBACK_WEBHOOK_TARGET_CRM_FIELDS: \"address\" is not a contact field (email, phone, first_name)"
        );
        let alone = WebhookTargets::from_vars(vars(&[("CARTBACK_WEBHOOK_TARGET_CRM_SECRET", SECRET)])).unwrap_err();
        assert!(matches!(alone, TargetError::WithoutUrl { .. }), "{alone}");
    }

    #[test]
    fn given_stored_target_parts_when_parsed_then_a_target_or_an_error_naming_the_part_and_never_the_secret() {
        // GIVEN a target's parts as the AWS config table and Secrets Manager hold them
        let target = WebhookTarget::parse("crm", " https://crm.example/hooks ", SECRET, "email, phone").unwrap();
        // THEN it is the target the environment variables would give
        assert_eq!(target.url, "https://crm.example/hooks");
        assert_eq!(target.fields, [ContactField::Email, ContactField::Phone]);
        assert!(WebhookTarget::parse("crm", "https://crm.example/hooks", SECRET, "").unwrap().fields.is_empty());
        // AND bad parts are named
        let url = WebhookTarget::parse("crm", "http://crm.example/hooks", SECRET, "").unwrap_err();
        assert_eq!(url.to_string(), "crm url must be an absolute https URL (http only for localhost), without spaces");
        let secret = WebhookTarget::parse("crm", "https://crm.example/hooks", "hunter2", "").unwrap_err();
        assert!(secret.to_string().starts_with("crm secret must start with"), "{secret}");
        assert!(!secret.to_string().contains("hunter2"));
        let field = WebhookTarget::parse("crm", "https://crm.example/hooks", SECRET, "address").unwrap_err();
        assert!(matches!(field, TargetError::Field { .. }), "{field}");
    }

    #[test]
    fn given_receiver_answers_when_classified_then_throttling_and_server_errors_retry_and_other_4xx_fail_for_good() {
        let now: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        for status in [408, 429, 500, 502, 503] {
            assert!(matches!(classify(status, None, now), SendError::Retryable(_)), "{status}");
        }
        for status in [400, 401, 403, 404, 410, 422] {
            assert_eq!(classify(status, Some("30"), now), SendError::Permanent(format!("HTTP {status}")));
        }
        // Retry-After in seconds, as an HTTP date, capped at 12 hours; garbage is ignored
        let after = |v: &str| match classify(429, Some(v), now) {
            SendError::RetryAfter { after, .. } => Some(after.num_seconds()),
            _ => None,
        };
        assert_eq!(after("120"), Some(120));
        assert_eq!(after("Wed, 25 Nov 2026 10:05:00 GMT"), Some(300));
        assert_eq!(after("86400"), Some(12 * 3600));
        assert_eq!(after("soon"), None);
    }
}
