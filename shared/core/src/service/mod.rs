//! The pipeline's services, written once against the ports and used by both
//! runtimes: ingest (events in), checker (timer fired), delivery (queue job
//! out to a provider), feedback (provider reports on sent messages), and the
//! campaign cache they share.

mod campaigns;
pub(crate) mod checker;
mod delivery;
mod engagement;
mod facts;
mod feedback;
pub(crate) mod ingest;
mod issuing;
mod preferences;
mod report;
mod templates;
mod vouchers;

use chrono::Duration;

pub use campaigns::{first_check_delay, CampaignCache};
pub use checker::{decide_now, CheckOutcome, Checker};
pub use delivery::{Delivery, DeliveryError, DeliveryOutcome, VoucherWebhook};
pub use engagement::{
    record_app_report, record_engagement, record_link_click, sent_at, AppReport, EngagementOutcome, Sighting,
};
pub use feedback::{Feedback, FeedbackEvent, FeedbackKind, FeedbackOutcome};
pub use ingest::{ApplyOutcome, EventResult, EventStatus, Ingest, IngestAnswer, IngestError, MAX_EVENTS_PER_CART};
pub use preferences::{reason_sentence, Choices, PreferenceOutcome, Preferences, MAX_ANSWER_TEXT_CHARS, SNOOZE_DAYS};
pub use report::{parse_query, report, ReportError, DEFAULT_REPORT_DAYS, MAX_REPORT_DAYS, WINDOW_HOURS};
pub use templates::{TemplateCache, Templates};
pub use vouchers::{validate_voucher, ValidateRequest, Validation, MAX_CODE_TEXT_CHARS};

use crate::ids::{CartId, MessageId};
use crate::measure::report::Prices;
use crate::message::Channel;
use crate::ports::{PortError, Timeline, TimelineKind};
use crate::signing::Secret;

/// Settings shared by the services, validated by each runtime at start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub secret: Secret,
    /// Where Cartback's own `/r/{token}` redirect is served.
    pub public_base_url: String,
    /// The storefront's restore-cart URL; `{cart_id}` and `{token}` are filled in.
    pub restore_url: String,
    /// How long tracked links and restore links stay valid.
    pub link_ttl: Duration,
    pub restore_ttl: Duration,
    /// How long carts, dedupe and message records are kept.
    pub retention: Duration,
    /// Channels this runtime delivers; the engine never picks another.
    pub channels: Vec<Channel>,
    /// Message prices the report's cost uses (AWS list prices by default).
    pub prices: Prices,
    /// The sender's postal address, printed in every email's footer
    /// (CAN-SPAM requires it). Required on AWS; `cartback dev` fills in
    /// [`PLACEHOLDER_POSTAL_ADDRESS`] and warns.
    pub postal_address: String,
    /// A mailbox that takes unsubscribe requests by mail (the `mailto:` of
    /// `List-Unsubscribe`, RFC 2369), when the shop runs one.
    pub unsubscribe_mailto: Option<String>,
    /// How long an email's unsubscribe link works.
    pub unsubscribe_ttl: Duration,
    /// The order and cart sources that take webhooks (`POST /v1/sources/{source}`): none unless configured.
    pub sources: crate::sources::SourceSettings,
    /// The VAPID public key (base64url, uncompressed P-256) served at
    /// `GET /v1/web-push/public-key` for the storefront's subscribe call.
    pub web_push_public_key: Option<String>,
}

/// The postal address a local run prints when none is configured: visibly
/// not an address, so it is never mistaken for one in a real send.
pub const PLACEHOLDER_POSTAL_ADDRESS: &str = "[postal address not configured: set CARTBACK_POSTAL_ADDRESS]";

impl Settings {
    pub fn new(secret: Secret, public_base_url: &str, restore_url: &str) -> Self {
        Settings {
            secret,
            public_base_url: public_base_url.trim_end_matches('/').to_owned(),
            restore_url: restore_url.to_owned(),
            link_ttl: Duration::days(30),
            restore_ttl: Duration::hours(48),
            retention: Duration::days(90),
            channels: Channel::ALL.to_vec(),
            prices: Prices::default(),
            postal_address: PLACEHOLDER_POSTAL_ADDRESS.to_owned(),
            unsubscribe_mailto: None,
            unsubscribe_ttl: Duration::days(crate::signing::UNSUBSCRIBE_TTL_DAYS),
            sources: crate::sources::SourceSettings::default(),
            web_push_public_key: None,
        }
    }
}

/// Checks the postal address setting: one line, 1 to 300 characters.
pub fn check_postal_address(text: &str) -> Result<(), String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("must not be empty: every email prints the sender's postal address (CAN-SPAM)".into());
    }
    if text.chars().count() > 300 {
        return Err("must be at most 300 characters".into());
    }
    if text.chars().any(char::is_control) {
        return Err("must be one line (separate its parts with commas)".into());
    }
    Ok(())
}

/// Checks the unsubscribe mailbox setting: an address (`unsubscribe@shop.example`)
/// or a `mailto:` URL, plain ASCII without spaces or angle brackets (it goes in a mail header).
pub fn check_unsubscribe_mailbox(text: &str) -> Result<(), String> {
    let address = text.strip_prefix("mailto:").unwrap_or(text);
    let address = address.split('?').next().unwrap_or_default();
    if !text.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>') {
        return Err("must be plain ASCII without spaces or angle brackets".into());
    }
    match address.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => Ok(()),
        _ => Err("must be an email address or a mailto: URL, e.g. unsubscribe@shop.example".into()),
    }
}

/// How often a read-modify-write is tried before giving up.
pub(crate) const MAX_CONFLICT_RETRIES: usize = 8;

/// Whether the cart's timeline already says the message was sent (read only
/// in rare cases: after a takeover, before reconciling an unknown send).
pub(crate) async fn noted_sent<S: Timeline + ?Sized>(
    store: &S,
    cart_id: &CartId,
    message_id: &MessageId,
) -> Result<bool, PortError> {
    let timeline = store.timeline(cart_id).await?;
    Ok(timeline.iter().any(|e| {
        e.kind == TimelineKind::Message
            && e.code == "sent"
            && e.details.get("message_id").and_then(|id| id.as_str()) == Some(message_id.as_str())
    }))
}

/// One try of a read-modify-write.
pub(crate) enum Attempt<T> {
    Done(T),
    /// Another writer got in first: read again and redo.
    Conflict,
}

/// Runs `attempt` until it is done, at most [`MAX_CONFLICT_RETRIES`] times;
/// `contended` names what was fought over for the error.
pub(crate) async fn retry_on_conflict<T, F, Fut>(contended: &'static str, mut attempt: F) -> Result<T, PortError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Attempt<T>, PortError>>,
{
    for _ in 0..MAX_CONFLICT_RETRIES {
        if let Attempt::Done(value) = attempt().await? {
            return Ok(value);
        }
    }
    Err(PortError::Unavailable("state store", format!("too many concurrent writers on one {contended}").into()))
}
