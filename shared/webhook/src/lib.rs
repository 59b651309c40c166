//! Cartback's outgoing webhooks over HTTP(S), shared by both runtimes: the
//! `voucher.issued` publisher (signed as Standard Webhooks, see
//! [`cartback_core::webhook`]) and its settings; and the one outgoing read,
//! BigCommerce's carts ([`bigcommerce`]).
//!
//! The client is `ureq` (blocking, small, rustls): a publish runs on
//! tokio's blocking pool, one short request with a timeout.

pub mod bigcommerce;
pub mod channel;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cartback_core::ports::{PublishError, VoucherPublisher};
use cartback_core::service::VoucherWebhook;
use cartback_core::voucher::Voucher;
use cartback_core::webhook::{sign_request, voucher_issued, SignedWebhook, WebhookSecret, WebhookSecretError};
use chrono::Utc;

/// Where issued vouchers are announced; unset: off (the default).
pub const URL_VAR: &str = "CARTBACK_VOUCHER_WEBHOOK_URL";
/// The `whsec_<base64>` signing secret; required with the URL. On AWS the
/// functions read it from Secrets Manager instead (`..._SECRET_ARN`).
pub const SECRET_VAR: &str = "CARTBACK_VOUCHER_WEBHOOK_SECRET";
/// `true`: a message showing a voucher waits until the webhook is acknowledged.
pub const WAIT_VAR: &str = "CARTBACK_VOUCHER_WEBHOOK_WAIT";

/// How long one attempt may take, connection included: short, because a
/// sender works through a batch of jobs one after another within its
/// Lambda's timeout, and a hanging receiver must not use it up (it is
/// retried later rather than waited for).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("{var} must be an absolute https URL (http only for localhost), without spaces")]
    Url { var: &'static str },
    #[error("{var} is required when {URL_VAR} is set (a whsec_<base64> signing secret)")]
    MissingSecret { var: &'static str },
    #[error("{var} {source}")]
    Secret {
        var: &'static str,
        #[source]
        source: WebhookSecretError,
    },
    #[error("{var} must be true or false")]
    Wait { var: &'static str },
    #[error("{var} is set but {URL_VAR} is not: set the URL to turn the webhook on, or unset {var}")]
    WithoutUrl { var: &'static str },
}

/// Checks the receiver's URL: https, or http to this machine (a storefront
/// in development). A code travels in the body, so never in clear text
/// over a network.
pub fn check_url(var: &'static str, url: &str) -> Result<(), SettingError> {
    let error = || SettingError::Url { var };
    if url.contains(char::is_whitespace) {
        return Err(error());
    }
    let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => return Err(error()),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // User info (`http://localhost@elsewhere/`) would hide the real host.
    if authority.contains('@') {
        return Err(error());
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "::1");
    if host.is_empty() || !(https || loopback) {
        return Err(error());
    }
    Ok(())
}

/// Reads `true`/`false` (unset: false).
pub fn parse_wait(var: &'static str, value: Option<&str>) -> Result<bool, SettingError> {
    match value.map(str::trim) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(SettingError::Wait { var }),
    }
}

/// The webhook's settings, validated: `None` when no URL is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub url: String,
    pub secret: WebhookSecret,
    pub wait: bool,
}

impl WebhookSettings {
    /// From the three values as set (empty counts as unset); `secret_var`
    /// names where the secret came from, for the error.
    pub fn parse(
        url: Option<&str>,
        secret: Option<&str>,
        secret_var: &'static str,
        wait: Option<&str>,
    ) -> Result<Option<WebhookSettings>, SettingError> {
        let wait = parse_wait(WAIT_VAR, wait)?;
        let secret = secret.map(str::trim).filter(|s| !s.is_empty());
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            // A half-made setting is a mistake, not an intent to turn it off.
            return match (secret, wait) {
                (Some(_), _) => Err(SettingError::WithoutUrl { var: secret_var }),
                (None, true) => Err(SettingError::WithoutUrl { var: WAIT_VAR }),
                (None, false) => Ok(None),
            };
        };
        check_url(URL_VAR, url)?;
        let secret = secret.ok_or(SettingError::MissingSecret { var: secret_var })?;
        let secret = WebhookSecret::parse(secret).map_err(|source| SettingError::Secret { var: secret_var, source })?;
        Ok(Some(WebhookSettings { url: url.to_owned(), secret, wait }))
    }

    /// What delivery uses: the HTTP publisher and the wait setting.
    pub fn webhook(&self) -> VoucherWebhook {
        VoucherWebhook {
            publisher: Arc::new(HttpVoucherPublisher::new(&self.url, self.secret.clone())),
            wait: self.wait,
        }
    }
}

/// Publishes `voucher.issued` by POSTing the signed event to one URL.
pub struct HttpVoucherPublisher {
    agent: ureq::Agent,
    url: String,
    secret: WebhookSecret,
}

impl HttpVoucherPublisher {
    pub fn new(url: &str, secret: WebhookSecret) -> HttpVoucherPublisher {
        // A redirect is not an acknowledgement (and would re-send the code
        // elsewhere): answered as a refusal.
        let agent = ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).redirects(0).build();
        HttpVoucherPublisher { agent, url: url.to_owned(), secret }
    }
}

#[async_trait]
impl VoucherPublisher for HttpVoucherPublisher {
    async fn publish(&self, voucher: &Voucher) -> Result<(), PublishError> {
        let (id, body) = voucher_issued(voucher);
        // Receivers check `webhook-timestamp` against their own clock (the
        // specification's tolerance is minutes): signed with the wall
        // clock, never the runtime's, which `cartback dev` runs fast.
        let signed = sign_request(&self.secret, &id, body, Utc::now());
        let (agent, url) = (self.agent.clone(), self.url.clone());
        tokio::task::spawn_blocking(move || post(&agent, &url, &signed))
            .await
            .map_err(|e| PublishError::Retryable(format!("the request did not complete: {e}")))?
    }
}

/// One attempt. Errors name the status or the kind of transport failure,
/// never the URL (it may carry a token) nor the body (it carries the code).
fn post(agent: &ureq::Agent, url: &str, signed: &SignedWebhook) -> Result<(), PublishError> {
    let mut request = agent.post(url);
    for (name, value) in &signed.headers {
        request = request.set(name, value);
    }
    match request.send_bytes(&signed.body) {
        Ok(response) => match response.status() {
            200..=299 => Ok(()),
            status => Err(PublishError::Refused(format!("HTTP {status} (redirects are not followed)"))),
        },
        Err(ureq::Error::Status(status, _)) => Err(classify(status)),
        Err(ureq::Error::Transport(transport)) => Err(PublishError::Retryable(transport.kind().to_string())),
    }
}

/// 408, 429 and 5xx are worth another try; any other answer is a refusal.
fn classify(status: u16) -> PublishError {
    let text = format!("HTTP {status}");
    match status {
        408 | 429 | 500..=599 => PublishError::Retryable(text),
        _ => PublishError::Refused(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn given_no_url_when_parsed_then_the_webhook_is_off_unless_another_setting_says_otherwise() {
        assert_eq!(WebhookSettings::parse(None, None, SECRET_VAR, None), Ok(None));
        assert_eq!(WebhookSettings::parse(Some(" "), Some(""), SECRET_VAR, Some("false")), Ok(None));
        let secret_alone = WebhookSettings::parse(Some(" "), Some(SECRET), SECRET_VAR, None);
        assert_eq!(secret_alone, Err(SettingError::WithoutUrl { var: SECRET_VAR }));
        let wait_alone = WebhookSettings::parse(None, None, SECRET_VAR, Some("true"));
        assert_eq!(wait_alone, Err(SettingError::WithoutUrl { var: WAIT_VAR }));
    }

    #[test]
    fn given_a_url_and_a_secret_when_parsed_then_wait_defaults_to_false() {
        let settings = WebhookSettings::parse(Some("https://shop.example/hooks"), Some(SECRET), SECRET_VAR, None)
            .unwrap()
            .unwrap();
        assert_eq!(settings.url, "https://shop.example/hooks");
        assert!(!settings.wait);
        let waiting = WebhookSettings::parse(Some("https://shop.example/h"), Some(SECRET), SECRET_VAR, Some("true"));
        assert!(waiting.unwrap().unwrap().wait);
    }

    #[test]
    fn given_bad_settings_when_parsed_then_the_error_names_the_variable() {
        let url = Some("https://shop.example/hooks");
        let missing = WebhookSettings::parse(url, None, SECRET_VAR, None).unwrap_err();
        assert_eq!(missing, SettingError::MissingSecret { var: SECRET_VAR });
        let bad =
            WebhookSettings::parse(url, Some("hunter2"), "CARTBACK_VOUCHER_WEBHOOK_SECRET_ARN", None).unwrap_err();
        assert!(bad.to_string().starts_with("CARTBACK_VOUCHER_WEBHOOK_SECRET_ARN must start with `whsec_`"), "{bad}");
        assert!(!bad.to_string().contains("hunter2"), "the value is never echoed");
        let wait = WebhookSettings::parse(url, Some(SECRET), SECRET_VAR, Some("yes")).unwrap_err();
        assert_eq!(wait.to_string(), "CARTBACK_VOUCHER_WEBHOOK_WAIT must be true or false");
    }

    #[test]
    fn given_urls_when_checked_then_https_anywhere_and_http_only_to_this_machine() {
        for ok in ["https://shop.example/h", "http://localhost:8081/h", "http://127.0.0.1/h", "http://[::1]:9/h"] {
            assert_eq!(check_url(URL_VAR, ok), Ok(()), "{ok}");
        }
        let bad_urls = [
            "http://shop.example/h",
            "ftp://shop.example",
            "shop.example",
            "https://",
            "https://a b",
            "http://localhost@evil.example/h",
        ];
        for bad in bad_urls {
            assert!(check_url(URL_VAR, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn given_receiver_answers_when_classified_then_throttling_and_server_errors_are_retryable() {
        for status in [408, 429, 500, 503] {
            assert!(matches!(classify(status), PublishError::Retryable(_)), "{status}");
        }
        for status in [400, 401, 404, 410] {
            assert!(matches!(classify(status), PublishError::Refused(_)), "{status}");
        }
    }
}
