//! `Sender`s on SNS: SMS (`Publish` to a phone number, transactional) and
//! mobile push (a platform endpoint per device token, then `Publish`).

use async_trait::async_trait;
use aws_sdk_sns::error::ProvideErrorMetadata;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use chrono::{DateTime, Utc};
use serde_json::json;

use cartback_core::contact::redact;
use cartback_core::event::PushPlatform;
use cartback_core::ids::MessageId;
use cartback_core::message::{MessageJob, Outgoing};
use cartback_core::ports::{SendError, Sender};

use crate::clients::{provider_send_retry_config, retry_unsent_sends};
use crate::error::may_have_been_accepted;
use crate::redact::redact_text;

/// SNS error codes that no retry of the same message can fix: a malformed
/// number, a token the platform disabled.
fn is_permanent(code: &str) -> bool {
    matches!(code, "InvalidParameter" | "InvalidParameterValue" | "EndpointDisabled")
}

fn send_error<E>(what: &str, error: SdkError<E, HttpResponse>) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = error.as_service_error().and_then(|e| e.code()).map(str::to_owned);
    let text = redact_text(&DisplayErrorContext(&error).to_string());
    tracing::warn!(code = code.as_deref().unwrap_or("none"), error = %text, "{what} failed");
    match code {
        Some(code) if is_permanent(&code) => SendError::Permanent(format!("{what}: {code}: {text}")),
        _ if may_have_been_accepted(&error) => SendError::Unknown(format!("{what}: {text}")),
        _ => SendError::Retryable(format!("{what}: {text}")),
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, SendError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| SendError::Permanent(e.to_string()))
}

pub struct SnsSmsSender {
    client: Client,
    sender_id: Option<String>,
}

impl SnsSmsSender {
    pub fn new(client: Client, sender_id: Option<String>) -> Self {
        SnsSmsSender { client, sender_id }
    }
}

/// One SDK attempt per publish; [`retry_unsent_sends`] decides retries.
fn send_once() -> aws_sdk_sns::config::Builder {
    aws_sdk_sns::config::Builder::default().retry_config(provider_send_retry_config())
}

#[async_trait]
impl Sender for SnsSmsSender {
    async fn send(&self, job: &MessageJob, _now: DateTime<Utc>) -> Result<String, SendError> {
        let Outgoing::Sms { to, body } = &job.outgoing else {
            return Err(SendError::Permanent(format!("the SMS sender got a {} job", job.channel.as_str())));
        };
        if cartback_core::contact::normalise_e164(to.expose()).is_none() {
            return Err(SendError::Permanent(format!("{} is not an international phone number", redact(to.expose()))));
        }
        // SNS takes a STOP reply itself (the number joins the account's
        // opt-out list) and then drops what is published to it without an
        // error: asking first is the only way to learn it before a send
        // that would silently go nowhere.
        let opted_out = self
            .client
            .check_if_phone_number_is_opted_out()
            .phone_number(to.expose())
            .send()
            .await
            .map_err(|e| SendError::Retryable(format!("SNS opt-out check: {}", DisplayErrorContext(&e))))?;
        if opted_out.is_opted_out() {
            tracing::info!(message_id = %job.message_id, to = %redact(to.expose()), "SMS number opted out (STOP)");
            return Err(SendError::OptedOut("the number replied STOP (on the SNS opt-out list)".into()));
        }
        let mut request = self
            .client
            .publish()
            .phone_number(to.expose())
            .message(body)
            .message_attributes("AWS.SNS.SMS.SMSType", attribute("Transactional")?);
        if let Some(id) = &self.sender_id {
            request = request.message_attributes("AWS.SNS.SMS.SenderID", attribute(id)?);
        }
        let out = retry_unsent_sends(|| request.clone().customize().config_override(send_once()).send())
            .await
            .map_err(|e| send_error("SNS SMS publish", e))?;
        let counted = cartback_core::sms::segments(body);
        tracing::info!(
            message_id = %job.message_id,
            to = %redact(to.expose()),
            segments = counted.segments,
            encoding = counted.encoding.as_str(),
            "SMS published"
        );
        Ok(out.message_id.unwrap_or_default())
    }
}

pub struct SnsPushSender {
    client: Client,
    apns_application_arn: Option<String>,
    fcm_application_arn: Option<String>,
    /// Web push goes to the subscription's push service, not through SNS.
    web_push: Option<cartback_webpush::WebPushSender>,
}

impl SnsPushSender {
    pub fn new(client: Client, apns_application_arn: Option<String>, fcm_application_arn: Option<String>) -> Self {
        SnsPushSender { client, apns_application_arn, fcm_application_arn, web_push: None }
    }

    /// Web push jobs are sent by `web_push` (VAPID, RFC 8291).
    pub fn with_web_push(mut self, web_push: cartback_webpush::WebPushSender) -> Self {
        self.web_push = Some(web_push);
        self
    }

    /// The endpoint for a token: `CreatePlatformEndpoint` is idempotent per
    /// token (it returns the existing endpoint); a disabled endpoint (the
    /// platform once refused the token) is re-enabled because the storefront
    /// just reported this token as current.
    async fn endpoint(&self, application_arn: &str, token: &str) -> Result<String, SendError> {
        let created =
            self.client.create_platform_endpoint().platform_application_arn(application_arn).token(token).send().await;
        let arn = match created {
            Ok(out) => out.endpoint_arn.ok_or_else(|| SendError::Retryable("SNS returned no endpoint ARN".into()))?,
            // The token has an endpoint whose attributes differ (typically
            // disabled): SNS names it in the error; refresh it below.
            Err(e) => match e.as_service_error().and_then(|s| s.message()).and_then(existing_endpoint_arn) {
                Some(arn) => arn,
                None => return Err(send_error("SNS CreatePlatformEndpoint", e)),
            },
        };
        let attributes = self
            .client
            .get_endpoint_attributes()
            .endpoint_arn(&arn)
            .send()
            .await
            .map_err(|e| send_error("SNS GetEndpointAttributes", e))?
            .attributes
            .unwrap_or_default();
        let enabled = attributes.get("Enabled").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let same_token = !matches!(attributes.get("Token"), Some(t) if t != token);
        if !enabled || !same_token {
            self.client
                .set_endpoint_attributes()
                .endpoint_arn(&arn)
                .attributes("Enabled", "true")
                .attributes("Token", token)
                .send()
                .await
                .map_err(|e| send_error("SNS SetEndpointAttributes", e))?;
        }
        Ok(arn)
    }
}

/// The ARN in "Invalid parameter: Token Reason: Endpoint arn:aws:sns:...
/// already exists with the same Token, but different attributes."
pub fn existing_endpoint_arn(message: &str) -> Option<String> {
    if !message.contains("already exists") {
        return None;
    }
    message
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| matches!(c, '(' | ')' | ',' | '.' | '"')))
        .find(|w| w.starts_with("arn:") && w.contains(":endpoint/"))
        .map(str::to_owned)
}

/// The `MessageStructure=json` payload: one body per platform. Beside the
/// alert, each carries the deep link (`url`, the tracked restore link) and
/// the `message_id` the app reports back to `POST /v1/engagement` when the
/// customer opens it: APNs as custom keys beside `aps`, FCM in `data`.
pub fn push_payload(message_id: &MessageId, title: &str, body: &str, url: &str) -> String {
    let apns = json!({
        "aps": { "alert": { "title": title, "body": body }, "sound": "default" },
        "url": url,
        "message_id": message_id,
    })
    .to_string();
    let gcm = json!({
        "notification": { "title": title, "body": body },
        "data": { "url": url, "message_id": message_id },
    })
    .to_string();
    json!({ "default": body, "APNS": apns, "APNS_SANDBOX": apns, "GCM": gcm }).to_string()
}

#[async_trait]
impl Sender for SnsPushSender {
    async fn send(&self, job: &MessageJob, now: DateTime<Utc>) -> Result<String, SendError> {
        let (platform, token, title, body, url) = match &job.outgoing {
            Outgoing::Push { platform, token, title, body, url } => (platform, token, title, body, url),
            Outgoing::WebPush { .. } => {
                return match &self.web_push {
                    Some(web_push) => web_push.send(job, now).await,
                    None => Err(SendError::Permanent(
                        "web push is not configured (set the stack's WebPushKeySecretArn)".into(),
                    )),
                }
            }
            _ => return Err(SendError::Permanent(format!("the push sender got a {} job", job.channel.as_str()))),
        };
        if token.expose().trim().is_empty() {
            return Err(SendError::Permanent("the customer has no push token".into()));
        }
        let (name, application) = match platform {
            PushPlatform::Apns => ("APNS", &self.apns_application_arn),
            PushPlatform::Fcm => ("FCM", &self.fcm_application_arn),
        };
        let Some(application) = application else {
            return Err(SendError::Permanent(format!("no {name} platform application is configured")));
        };
        // Endpoint calls change nothing a customer sees: whatever their
        // answer, sending has not started, so a retry is safe.
        let endpoint = self.endpoint(application, token.expose()).await.map_err(|e| match e {
            SendError::Unknown(text) => SendError::Retryable(text),
            other => other,
        })?;
        let request = self.client.publish().target_arn(&endpoint).message_structure("json").message(push_payload(
            &job.message_id,
            title,
            body,
            url,
        ));
        let out = retry_unsent_sends(|| request.clone().customize().config_override(send_once()).send())
            .await
            .map_err(|e| send_error("SNS push publish", e))?;
        tracing::info!(message_id = %job.message_id, token = %redact(token.expose()), platform = name, "push published");
        Ok(out.message_id.unwrap_or_default())
    }
}
