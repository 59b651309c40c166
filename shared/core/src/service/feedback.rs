//! What providers report back about a sent message (delivered, opened,
//! clicked, bounced, complained), provider-neutral: the AWS runtime parses
//! SES event notifications into [`FeedbackEvent`]s, another provider's
//! webhooks could do the same.
//!
//! Opens and clicks are labelled and counted on the message (see
//! [`super::record_engagement`]): a person's click stops the follow-ups, an
//! open only in a campaign that counts opens, a machine's never; the first
//! of each label adds a timeline line. They take no dedupe record (one per
//! click would grow without bound), so a redelivered report counts twice.
//!
//! Other effects, each applied at most once per (provider, kind, provider
//! message id) through the same dedupe record ingest uses for `event_id`s:
//! - delivery, transient bounce: a timeline line;
//! - permanent bounce / complaint: a timeline line and, when the message went
//!   to a known customer (not a guest cart), that customer's email consent is
//!   withdrawn by a synthetic `identify` event. It goes through the customer
//!   fold like any ingested event, so it is idempotent, and a late, older
//!   event cannot give the consent back (older data only fills gaps); a newer
//!   identify with `consents.email = true` (the customer opting in again)
//!   does.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::engagement::{record_engagement, EngagementOutcome, Sighting};
use super::facts::message_fact;
use super::{noted_sent, retry_on_conflict, Attempt};
use crate::consent::ConsentSource;
use crate::customer::Customer;
use crate::engagement::Interaction;
use crate::event::{ConsentPatch, CustomerPatch, Event};
use crate::ids::{CartId, CustomerId, EventId, MessageId};
use crate::measure::facts::MessageOutcome;
use crate::message::{MessageRecord, MessageStatus};
use crate::ports::{
    CartStore, Clock, CommitOutcome, CustomerStore, EventCommit, EventLog, FactStore, MessageStore, PortError,
    StateStore, Timeline, TimelineEntry, TimelineKind,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackKind {
    Delivered,
    Opened,
    Clicked,
    /// `permanent`: the address will never accept mail (hard bounce).
    Bounced {
        permanent: bool,
    },
    /// The recipient marked the message as spam.
    Complained,
}

impl FeedbackKind {
    /// Stable name, used in dedupe ids and timeline codes.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Delivered => "delivery",
            FeedbackKind::Opened => "open",
            FeedbackKind::Clicked => "click",
            FeedbackKind::Bounced { permanent: true } => "bounce-permanent",
            FeedbackKind::Bounced { permanent: false } => "bounce-transient",
            FeedbackKind::Complained => "complaint",
        }
    }

    /// Whether the address must not be mailed again.
    pub fn withdraws_email_consent(self) -> bool {
        matches!(self, FeedbackKind::Bounced { permanent: true } | FeedbackKind::Complained)
    }

    /// The open or click it reports, if it is one.
    pub fn interaction(self) -> Option<Interaction> {
        match self {
            FeedbackKind::Opened => Some(Interaction::Open),
            FeedbackKind::Clicked => Some(Interaction::Click),
            _ => None,
        }
    }
}

/// One provider notification about one of our messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackEvent {
    /// Cartback's message id (`m_...`), carried through the provider (SES: an
    /// email tag).
    pub message_id: MessageId,
    /// Short provider name, e.g. `ses`; prefixes the dedupe id.
    pub provider: String,
    /// The provider's id of the sent message.
    pub provider_message_id: String,
    pub kind: FeedbackKind,
    /// When it happened, per the provider.
    pub at: DateTime<Utc>,
    /// Who opened or clicked, per the provider (SES: `open.userAgent`,
    /// `click.userAgent`); it tells scanners and privacy proxies apart.
    pub user_agent: Option<String>,
}

impl FeedbackEvent {
    /// The dedupe id: one effect per provider, kind and provider message
    /// (opens and clicks take none: they are counted, see the module).
    pub fn dedupe_id(&self) -> EventId {
        EventId::from(format!("{}-{}-{}", self.provider, self.kind.as_str(), self.provider_message_id))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedbackOutcome {
    Recorded {
        /// The customer whose email consent was withdrawn, if any.
        consent_withdrawn_for: Option<CustomerId>,
    },
    /// Seen before: a redelivered notification, or an open or click whose
    /// label the message already had (counted, no new timeline line).
    Duplicate,
    /// No such message: not ours, or expired with its retention.
    UnknownMessage,
}

/// Provider reports in: needs messages, customers, carts, the event commit
/// (for dedupe), the timeline and the facts.
pub struct Feedback<S: ?Sized = dyn StateStore> {
    pub store: Arc<S>,
    pub clock: Arc<dyn Clock>,
}

impl<S: CartStore + CustomerStore + EventLog + MessageStore + Timeline + FactStore + ?Sized> Feedback<S> {
    /// Applies one notification. Only a storage outage is an error (the
    /// caller retries the notification; every effect is idempotent).
    pub async fn record(&self, event: &FeedbackEvent) -> Result<FeedbackOutcome, PortError> {
        let Some(message) = self.store.get_message(&event.message_id).await? else {
            return Ok(FeedbackOutcome::UnknownMessage);
        };
        self.reconcile(event, &message).await?;
        if let Some(interaction) = event.kind.interaction() {
            let sighting = Sighting { interaction, at: event.at, user_agent: event.user_agent.as_deref() };
            let details = serde_json::Map::from_iter([
                ("source".to_owned(), json!(event.provider)),
                ("provider_message_id".to_owned(), json!(event.provider_message_id)),
                ("feedback".to_owned(), json!(event.kind.as_str())),
            ]);
            return Ok(match record_engagement(&*self.store, &message, sighting, details).await? {
                EngagementOutcome::First(_) => FeedbackOutcome::Recorded { consent_withdrawn_for: None },
                EngagementOutcome::Repeat { .. } => FeedbackOutcome::Duplicate,
                // Only app reports answer `NotSent`.
                EngagementOutcome::UnknownMessage | EngagementOutcome::NotSent => FeedbackOutcome::UnknownMessage,
            });
        }
        // Before the dedupe commit: a report redelivered after a failure in
        // between writes the same fact again, never none.
        if let Some(outcome) = report_outcome(event.kind) {
            self.store.record_fact(&message_fact(&message, outcome, event.at)).await?;
        }
        let withdraws = event.kind.withdraws_email_consent();
        let customer_id = known_customer(&message).filter(|_| withdraws);
        retry_on_conflict("customer", || self.try_record(event, &message, withdraws, customer_id)).await
    }

    /// Any report on a message (delivered, bounced, opened, ...) proves the
    /// provider took it: a send still recorded `unknown` (its answer was lost) is
    /// settled `sent`, with a line saying how it was learnt. The send time
    /// stays the attempt's (the "too soon after the send" click rule reads
    /// it); only the provider's id comes from the report.
    async fn reconcile(&self, event: &FeedbackEvent, message: &MessageRecord) -> Result<(), PortError> {
        let MessageStatus::Unknown { at: attempted_at, .. } = message.status else { return Ok(()) };
        // The line first, as a sender writes its own: a failure between the
        // two leaves the report to be redelivered, which finds the line and
        // only settles.
        if !noted_sent(&*self.store, &message.cart_id, &message.message_id).await? {
            self.store.append_timeline(&message.cart_id, &reconciled_line(event, message, self.clock.now())).await?;
        }
        // The send's fact, as a sender writes it before its settle.
        self.store.record_fact(&message_fact(message, MessageOutcome::Sent, attempted_at)).await?;
        let sent = MessageStatus::Sent { provider_message_id: event.provider_message_id.clone(), at: attempted_at };
        // ClaimLost: another report settled it first.
        self.store.settle_message(&message.message_id, &message.status, &sent).await?;
        Ok(())
    }

    async fn try_record(
        &self,
        event: &FeedbackEvent,
        message: &MessageRecord,
        withdraws: bool,
        customer_id: Option<&CustomerId>,
    ) -> Result<Attempt<FeedbackOutcome>, PortError> {
        let customer = match customer_id {
            Some(id) => {
                let (mut customer, version) =
                    self.store.get_customer(id).await?.unwrap_or_else(|| (Customer::new(id), 0));
                customer.apply(&withdrawal(event, Some(id), None));
                Some((customer, version))
            }
            None => None,
        };
        // A guest's contact lives on the cart: the withdrawal is folded
        // into the cart in time order, like any event carrying `customer`.
        let cart = match (withdraws, customer_id) {
            (true, None) => match self.store.get_cart(&message.cart_id).await? {
                Some(mut record) if !record.has_event(&event.dedupe_id()) => {
                    let withdrawal = withdrawal(event, None, Some(&message.cart_id));
                    record.insert_event(withdrawal);
                    record.updated_at = self.clock.now();
                    Some(record)
                }
                _ => None,
            },
            _ => None,
        };
        let commit =
            EventCommit { event_id: event.dedupe_id(), received_at: self.clock.now(), cart, customer, timeline: None };
        match self.store.commit_event(commit).await? {
            CommitOutcome::Duplicate => Ok(Attempt::Done(FeedbackOutcome::Duplicate)),
            CommitOutcome::Conflict => Ok(Attempt::Conflict),
            CommitOutcome::Applied => {
                // After the commit, so a redelivery never adds a second
                // line. The line is explanatory, the state change above is
                // what counts: a failure here is logged, not retried
                // (a retry would only meet the dedupe record).
                let entry = timeline_entry(event, message, customer_id.is_some());
                if let Err(error) = self.store.append_timeline(&message.cart_id, &entry).await {
                    tracing::warn!(%error, message_id = %message.message_id, kind = event.kind.as_str(), "feedback not added to the timeline");
                }
                Ok(Attempt::Done(FeedbackOutcome::Recorded { consent_withdrawn_for: customer_id.cloned() }))
            }
        }
    }
}

/// The message outcome a delivery, bounce or complaint report is counted
/// as (opens and clicks are counted by `record_engagement`). A temporary
/// bounce counts too: the report's bounce count is of messages that
/// bounced at all; the timeline tells the two apart.
fn report_outcome(kind: FeedbackKind) -> Option<MessageOutcome> {
    match kind {
        FeedbackKind::Delivered => Some(MessageOutcome::Delivered),
        FeedbackKind::Bounced { .. } => Some(MessageOutcome::Bounced),
        FeedbackKind::Complained => Some(MessageOutcome::Complained),
        FeedbackKind::Opened | FeedbackKind::Clicked => None,
    }
}

/// The customer a message went to, unless it was a guest cart's, which has
/// no profile to update. The provider's own suppression list still protects
/// a guest's address.
fn known_customer(message: &MessageRecord) -> Option<&CustomerId> {
    message.customer_key.customer()
}

/// The synthetic identify event that withdraws email consent, as the
/// storefront would send it: same fold, same out-of-order rules.
fn withdrawal(event: &FeedbackEvent, customer_id: Option<&CustomerId>, cart_id: Option<&CartId>) -> Event {
    Event {
        cart_id: cart_id.cloned(),
        customer_id: customer_id.cloned(),
        customer: Some(CustomerPatch {
            consents: Some(ConsentPatch {
                email: Some(false),
                source: Some(match event.kind {
                    FeedbackKind::Complained => ConsentSource::Complaint,
                    _ => ConsentSource::Bounce,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Event::identify(event.dedupe_id(), event.at)
    }
}

/// The "sent" line of a send settled by the provider's report.
fn reconciled_line(event: &FeedbackEvent, message: &MessageRecord, now: DateTime<Utc>) -> TimelineEntry {
    TimelineEntry {
        at: now,
        kind: TimelineKind::Message,
        code: "sent".into(),
        message: format!(
            "Step {} sent by {}: its outcome was unknown (the provider's answer was lost), and the provider's {} \
             report shows it went out.",
            message.step + 1,
            message.channel.as_str(),
            event.kind.as_str()
        ),
        details: json!({ "message_id": message.message_id, "channel": message.channel, "reconciled_from": "unknown" }),
    }
}

fn timeline_entry(event: &FeedbackEvent, message: &MessageRecord, withdrew: bool) -> TimelineEntry {
    let step = message.step + 1;
    let (kind, code, text) = match event.kind {
        FeedbackKind::Delivered => {
            (TimelineKind::Message, "delivered", format!("Step {step}'s email reached the recipient's mail server."))
        }
        // Recorded by `record_engagement`, never through here.
        FeedbackKind::Opened | FeedbackKind::Clicked => {
            (TimelineKind::Engagement, event.kind.as_str(), format!("Step {step}'s message: {}.", event.kind.as_str()))
        }
        FeedbackKind::Bounced { permanent: false } => (
            TimelineKind::Message,
            "bounced",
            format!("Step {step}'s email bounced temporarily (mailbox full or server busy)."),
        ),
        FeedbackKind::Bounced { permanent: true } => (
            TimelineKind::Message,
            "bounced",
            format!("Step {step}'s email bounced permanently: the address does not accept mail."),
        ),
        FeedbackKind::Complained => {
            (TimelineKind::Message, "complaint", format!("The recipient reported step {step}'s email as spam."))
        }
    };
    let text = match (event.kind.withdraws_email_consent(), withdrew) {
        (true, true) => format!("{text} Email consent withdrawn; no more email to this customer."),
        (true, false) => format!("{text} Email consent withdrawn on this guest cart."),
        _ => text,
    };
    TimelineEntry {
        at: event.at,
        kind,
        code: code.into(),
        message: text,
        details: json!({
            "message_id": message.message_id,
            "channel": message.channel,
            "provider": event.provider,
            "provider_message_id": event.provider_message_id,
            "feedback": event.kind.as_str(),
        }),
    }
}
