//! Consent records and customers' answers on the preference page: where a
//! consent change came from, on what legal basis, and what a customer told
//! us about a cart. Pure data; the customer and cart folds keep them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::enum_names;
use crate::ids::MessageId;
use crate::message::Channel;

/// Where a consent change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    /// A storefront or platform event (`customer.consents`).
    Event,
    /// The one-click unsubscribe link (RFC 8058) or the email's visible link.
    UnsubscribeLink,
    /// A choice on the preference page (`GET /u/{token}`).
    PreferencePage,
    /// A permanent bounce reported by the email provider.
    Bounce,
    /// A spam complaint reported by the email provider.
    Complaint,
    /// An SMS `STOP` reply.
    SmsStop,
    /// The push service answered 404 or 410 for the web push subscription.
    SubscriptionGone,
}

impl ConsentSource {
    pub fn as_str(self) -> &'static str {
        enum_names::name_of(&self)
    }

    /// A withdrawal the customer made (or their mailbox or carrier made for
    /// them): unlike a bounce or a storefront's flag, only the customer's
    /// explicit new opt-in reverses it (see [`grant_stands`]).
    pub fn is_customers_word(self) -> bool {
        matches!(
            self,
            ConsentSource::UnsubscribeLink
                | ConsentSource::PreferencePage
                | ConsentSource::Complaint
                | ConsentSource::SmsStop
        )
    }
}

/// Whether a grant may follow `newest`, the channel's newest change so far.
/// Storefronts resend their stored consent flag with every event, so after
/// the customer withdrew it themselves (unsubscribe link, preference page,
/// spam complaint, SMS STOP) a plain `true` would silently re-subscribe
/// them: only a grant with `basis = consent` (the customer ticked the box
/// again) counts then.
pub fn grant_stands(newest: Option<&ConsentChange>, basis: Option<LegalBasis>) -> bool {
    match newest {
        Some(change) if !change.granted && change.source.is_customers_word() => basis == Some(LegalBasis::Consent),
        _ => true,
    }
}

/// The newest change of `channel` in a history kept in time order.
pub fn newest_change(history: &[ConsentChange], channel: Channel) -> Option<&ConsentChange> {
    history.iter().rev().find(|c| c.channel == channel)
}

/// The legal basis a consent rests on (GDPR art. 6; ePrivacy art. 13(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// The customer explicitly agreed (a ticked box, a double opt-in).
    Consent,
    /// An existing customer's address, used for similar products with an
    /// easy way out in every message.
    SoftOptIn,
}

impl LegalBasis {
    pub fn as_str(self) -> &'static str {
        enum_names::name_of(&self)
    }
}

/// One consent change, as kept in a customer's (or guest cart's) history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentChange {
    pub at: DateTime<Utc>,
    pub channel: Channel,
    pub granted: bool,
    pub source: ConsentSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<LegalBasis>,
}

/// Why a customer says they do not want a cart's reminders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerReason {
    AlreadyBought,
    NotInterested,
    TooManyMessages,
    Other,
}

impl AnswerReason {
    pub const ALL: [AnswerReason; 4] =
        [AnswerReason::AlreadyBought, AnswerReason::NotInterested, AnswerReason::TooManyMessages, AnswerReason::Other];

    pub fn as_str(self) -> &'static str {
        enum_names::name_of(&self)
    }
}

/// A customer's answer about a cart on the preference page, stored in the
/// cart's event log (see `Event::answer`) so the cart fold and the engine see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerAnswer {
    pub reason: AnswerReason,
    /// Free text, bounded by the page's form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The message whose link the customer followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
}
