//! `Sender` for email on SES v2: `SendEmail` with Raw content, the same
//! MIME message the local outbox writes (`render::mime`), through a
//! configuration set so delivery, bounce, complaint, open and click events
//! flow back.

use async_trait::async_trait;
use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, MessageTag, RawMessage};
use aws_sdk_sesv2::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use chrono::{DateTime, Utc};

use cartback_core::message::{MessageJob, Outgoing};
use cartback_core::ports::{SendError, Sender};
use cartback_core::render;

use crate::clients::{provider_send_retry_config, retry_unsent_sends};
use crate::error::may_have_been_accepted;
use crate::redact::redact_text;

/// The tag that carries Cartback's message id into SES event notifications.
pub const MESSAGE_ID_TAG: &str = "cartback_message_id";

pub struct SesSender {
    client: Client,
    from: String,
    configuration_set: String,
}

impl SesSender {
    pub fn new(client: Client, from: impl Into<String>, configuration_set: impl Into<String>) -> Self {
        SesSender { client, from: from.into(), configuration_set: configuration_set.into() }
    }
}

/// SES error codes that will never succeed on a retry of the same message.
/// Account- or configuration-level failures (sending paused, configuration
/// set missing, MAIL FROM not verified) are deliberately retryable: they hit
/// every message, and the dead-letter queue keeps the messages for a redrive
/// once an operator has fixed the setup.
fn is_permanent(code: &str) -> bool {
    matches!(code, "MessageRejected" | "BadRequestException" | "InvalidParameterValue")
}

#[async_trait]
impl Sender for SesSender {
    async fn send(&self, job: &MessageJob, now: DateTime<Utc>) -> Result<String, SendError> {
        let Outgoing::Email { to, .. } = &job.outgoing else {
            return Err(SendError::Permanent(format!("the email sender got a {} job", job.channel.as_str())));
        };
        // An address that cannot be put in a header will never send.
        let raw = render::mime(&job.outgoing, &self.from, &job.message_id, now)
            .map_err(|e| SendError::Permanent(redact_text(&e.to_string())))?;
        let content = EmailContent::builder()
            .raw(RawMessage::builder().data(Blob::new(raw)).build().map_err(|e| SendError::Permanent(e.to_string()))?)
            .build();
        let mut request = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(to.expose()).build())
            .content(content)
            .configuration_set_name(&self.configuration_set);
        // Tag values allow [A-Za-z0-9_-]; Cartback's message ids are `m_<hex>`.
        if job.message_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            if let Ok(tag) = MessageTag::builder().name(MESSAGE_ID_TAG).value(job.message_id.as_str()).build() {
                request = request.email_tags(tag);
            }
        }
        let once = || aws_sdk_sesv2::config::Builder::default().retry_config(provider_send_retry_config());
        match retry_unsent_sends(|| request.clone().customize().config_override(once()).send()).await {
            Ok(out) => Ok(out.message_id.unwrap_or_default()),
            Err(error) => {
                let code = error.as_service_error().and_then(|e| e.code()).map(str::to_owned);
                let text = redact_text(&DisplayErrorContext(&error).to_string());
                tracing::warn!(message_id = %job.message_id, to = %cartback_core::contact::redact(to.expose()), code = code.as_deref().unwrap_or("none"), error = %text, "SES send failed");
                match code {
                    Some(code) if is_permanent(&code) => Err(SendError::Permanent(format!("{code}: {text}"))),
                    _ if may_have_been_accepted(&error) => Err(SendError::Unknown(text)),
                    _ => Err(SendError::Retryable(text)),
                }
            }
        }
    }
}
