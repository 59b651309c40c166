//! What a customer chooses through an email's unsubscribe link: the
//! one-click `POST` (RFC 8058) and the preference page (`GET /u/{token}`).
//!
//! Each choice is a synthetic event, applied the way `feedback.rs` withdraws
//! consent after a complaint: to the known customer through the customer
//! fold, or, for a guest cart, inserted into the cart's event log. So an
//! older storefront event cannot give a consent back, and a newer opt-in
//! does. The answer ("I already bought", ...) always goes on the cart's
//! event log: it is about this cart, also for a known customer.
//!
//! Every choice is committed with its own dedupe event id derived from the
//! message, the choice and the UTC day: a mailbox provider repeating the
//! one-click `POST`, or a person submitting the same form twice, changes
//! nothing the second time and adds no second timeline line. The next day
//! the same choice applies again (after an opt-in in between, it should).
//!
//! Nothing is re-evaluated here: the cart's pending timer fires as planned
//! and the engine reads the new consents, snooze and answers.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::facts::{answer_fact, message_fact};
use super::{retry_on_conflict, Attempt};
use crate::consent::{AnswerReason, ConsentSource, CustomerAnswer};
use crate::customer::Customer;
use crate::event::{ConsentPatch, CustomerPatch, Event};
use crate::ids::{CustomerId, EventId};
use crate::measure::facts::MessageOutcome;
use crate::message::{Channel, MessageRecord};
use crate::ports::{
    CartStore, Clock, CommitOutcome, CustomerStore, EventCommit, EventLog, FactStore, MessageStore, PortError,
    StateStore, Timeline, TimelineEntry, TimelineKind,
};
use crate::signing::UnsubscribeClaims;

/// How long "snooze reminders" pauses them.
pub const SNOOZE_DAYS: i64 = 30;

/// The longest free-text answer kept, in characters (the page's
/// `maxlength`; a longer one is cut, never refused: it is a customer's word).
pub const MAX_ANSWER_TEXT_CHARS: usize = 500;

/// What the customer chose. The one-click `POST` is [`Choices::one_click`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choices {
    /// Channels whose cart reminders stop (consent withdrawn).
    pub stop: BTreeSet<Channel>,
    /// "Stop all marketing": every channel's consent is withdrawn.
    pub stop_all: bool,
    pub snooze: bool,
    pub reason: Option<AnswerReason>,
    /// Free text, cut to [`MAX_ANSWER_TEXT_CHARS`]; kept only with an answer
    /// (alone it counts as [`AnswerReason::Other`]).
    pub text: Option<String>,
}

impl Choices {
    /// RFC 8058's one-click unsubscribe: email consent withdrawn, nothing else.
    pub fn one_click() -> Self {
        Choices { stop: BTreeSet::from([Channel::Email]), ..Default::default() }
    }

    /// The channels withdrawn, whichever way they were chosen.
    pub fn channels(&self) -> BTreeSet<Channel> {
        if self.stop_all {
            Channel::PERSONAL.into_iter().collect()
        } else {
            self.stop.clone()
        }
    }

    /// The answer to store, if the customer gave one.
    pub fn answer(&self) -> Option<(AnswerReason, Option<String>)> {
        let text = self
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| t.chars().take(MAX_ANSWER_TEXT_CHARS).collect::<String>());
        match (self.reason, text) {
            (Some(reason), text) => Some((reason, text)),
            (None, Some(text)) => Some((AnswerReason::Other, Some(text))),
            (None, None) => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.channels().is_empty() && !self.snooze && self.answer().is_none()
    }
}

/// What changed, for the answer page (each part also when it was already
/// so: applying a choice twice is not an error).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreferenceOutcome {
    pub withdrawn: BTreeSet<Channel>,
    pub snoozed_until: Option<DateTime<Utc>>,
    pub answered: Option<AnswerReason>,
    /// The cart is gone (past its retention): a guest's choices had nowhere
    /// to go, and an answer is not stored. A known customer's consents and
    /// snooze still apply.
    pub cart_gone: bool,
}

/// One choice as its synthetic event and timeline line.
struct Step {
    event: Event,
    /// Applied to the known customer (consents, snooze); otherwise inserted
    /// into the cart's log (a guest's, and every answer).
    to_customer: bool,
    /// `None` when the cart is gone: a timeline belongs to a stored cart.
    line: Option<TimelineEntry>,
}

/// The unsubscribe link's service: needs carts, customers, the event commit
/// (dedupe), messages (for the facts), the timeline and the facts.
pub struct Preferences<S: ?Sized = dyn StateStore> {
    pub store: Arc<S>,
    pub clock: Arc<dyn Clock>,
}

impl<S: CartStore + CustomerStore + EventLog + MessageStore + Timeline + FactStore + ?Sized> Preferences<S> {
    /// Applies `choices` for the message and cart of a verified token.
    /// Only a storage outage is an error (the caller answers 503; a retry is
    /// harmless, every step is idempotent).
    pub async fn apply(
        &self,
        claims: &UnsubscribeClaims,
        choices: &Choices,
        source: ConsentSource,
    ) -> Result<PreferenceOutcome, PortError> {
        let now = self.clock.now();
        let cart = self.store.get_cart(&claims.cart_id).await?;
        // A guest cart may have been identified since the email went out:
        // the customer it belongs to now is the one who asked.
        let customer_id = claims.customer_id.clone().or_else(|| cart.as_ref().and_then(|c| c.cart().customer_id));
        let mut outcome = PreferenceOutcome { cart_gone: cart.is_none(), ..Default::default() };
        let channels = choices.channels();
        let message = self.store.get_message(&claims.message_id).await?;
        let day = now.date_naive().to_string();
        let key = |choice: &str| dedupe_id(claims, choice, &day);
        let on_cart = |line: TimelineEntry| cart.is_some().then_some(line);

        // Idempotent by state: channels already withdrawn are not withdrawn
        // again (a repeated one-click adds nothing), and the dedupe id names
        // the newest consent change, so a withdrawal after the customer
        // opted in again is a new one (and two racing posts are one).
        let (withdrawn, newest_change) = match &customer_id {
            Some(id) => match self.store.get_customer(id).await? {
                Some((customer, _)) => (customer.profile.consents, customer.consent_history.last().map(|c| c.at)),
                None => (None, None),
            },
            None => match &cart {
                Some(record) => {
                    let cart = record.cart();
                    (cart.contact.consents, cart.consent_history.last().map(|c| c.at))
                }
                None => (None, None),
            },
        };
        let already = |channel: &Channel| withdrawn.is_some_and(|c| consent_of(&c, *channel) == Some(false));
        outcome.withdrawn.clone_from(&channels);
        let channels: BTreeSet<Channel> = channels.into_iter().filter(|c| !already(c)).collect();
        let as_of = newest_change.map_or_else(String::new, |at| at.to_rfc3339());
        if !channels.is_empty() {
            // Before the commit, as feedback does: a retry rewrites the same
            // fact. A reply to an SMS is not an answer to this message, and a
            // message's unsubscribe is its own channel's: only the link and
            // the page, withdrawing the message's channel, count for it.
            let from_message = matches!(source, ConsentSource::UnsubscribeLink | ConsentSource::PreferencePage);
            let message_channel = |m: &&MessageRecord| channels.contains(&m.channel);
            if let Some(message) = message.as_ref().filter(message_channel).filter(|_| from_message) {
                self.store.record_fact(&message_fact(message, MessageOutcome::Unsubscribed, now)).await?;
            }
            let names: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
            let mut consents = ConsentPatch { source: Some(source), ..Default::default() };
            for channel in &channels {
                let slot = match channel {
                    Channel::Email => &mut consents.email,
                    Channel::Sms => &mut consents.sms,
                    Channel::Push => &mut consents.push,
                    Channel::WebPush => &mut consents.web_push,
                    // No consent of its own (see the engine's channel rules).
                    Channel::Webhook => continue,
                };
                *slot = Some(false);
            }
            let patch = CustomerPatch { consents: Some(consents), ..Default::default() };
            let text = if choices.stop_all {
                "The customer stopped all marketing on every channel (email, SMS, push, web push).".to_owned()
            } else {
                format!("The customer stopped cart reminders by {}.", names.join(", "))
            };
            let how = match source {
                ConsentSource::UnsubscribeLink => "one-click unsubscribe link",
                ConsentSource::SmsStop => "a STOP reply to the shop's SMS number (the carrier's opt-out list)",
                ConsentSource::SubscriptionGone => "push service (the web push subscription is gone: 404 or 410)",
                _ => "preference page",
            };
            let line = line(
                now,
                "unsubscribed",
                format!("{text} Consent withdrawn through the {how}."),
                json!({ "message_id": claims.message_id, "channels": names, "source": source }),
            );
            let event = synthetic(key(&format!("stop:{}:{as_of}", names.join(","))), claims, patch, None, now);
            let step = Step { event, to_customer: customer_id.is_some(), line: on_cart(line) };
            self.commit(step, customer_id.as_ref()).await?;
        }
        if choices.snooze {
            let until = now + Duration::days(SNOOZE_DAYS);
            let patch = CustomerPatch { snoozed_until: Some(until), ..Default::default() };
            let line = line(
                now,
                "snoozed",
                format!("The customer snoozed cart reminders for {SNOOZE_DAYS} days, until {}.", until.date_naive()),
                json!({ "message_id": claims.message_id, "until": until }),
            );
            let event = synthetic(key("snooze"), claims, patch, None, now);
            let step = Step { event, to_customer: customer_id.is_some(), line: on_cart(line) };
            self.commit(step, customer_id.as_ref()).await?;
            outcome.snoozed_until = Some(until);
        }
        if let Some((reason, text)) = choices.answer() {
            if cart.is_some() {
                if let Some(message) = &message {
                    self.store.record_fact(&answer_fact(message, reason, now)).await?;
                }
                // The free text stays in the cart's log, never on the timeline
                // (a customer may type anything, an address included).
                let with_text = if text.is_some() { " (with a comment)" } else { "" };
                let line = line(
                    now,
                    "answered",
                    format!("The customer answered: {}{with_text}.", reason_sentence(reason)),
                    json!({ "message_id": claims.message_id, "reason": reason, "comment": text.is_some() }),
                );
                let content = hex::encode(Sha256::digest(text.as_deref().unwrap_or_default().as_bytes()));
                let answer = CustomerAnswer { reason, text, message_id: Some(claims.message_id.clone()) };
                let event = synthetic(
                    key(&format!("answer:{}:{content}", reason.as_str())),
                    claims,
                    CustomerPatch::default(),
                    Some(answer),
                    now,
                );
                self.commit(Step { event, to_customer: false, line: Some(line) }, None).await?;
                outcome.answered = Some(reason);
            }
        }
        Ok(outcome)
    }

    async fn commit(&self, step: Step, customer_id: Option<&CustomerId>) -> Result<(), PortError> {
        retry_on_conflict("cart", || self.try_commit(&step, customer_id)).await
    }

    async fn try_commit(&self, step: &Step, customer_id: Option<&CustomerId>) -> Result<Attempt<()>, PortError> {
        let now = self.clock.now();
        let event_id = &step.event.event_id;
        let cart_id = step.event.cart_id.clone().unwrap_or_default();
        let customer = match (step.to_customer, customer_id) {
            (true, Some(id)) => {
                let (mut customer, version) =
                    self.store.get_customer(id).await?.unwrap_or_else(|| (Customer::new(id), 0));
                customer.apply(&Event { customer_id: Some(id.clone()), cart_id: None, ..step.event.clone() });
                Some((customer, version))
            }
            _ => None,
        };
        let cart = match customer {
            Some(_) => None,
            None => match self.store.get_cart(&cart_id).await? {
                Some(mut record) if !record.has_event(event_id) => {
                    record.insert_event(step.event.clone());
                    record.updated_at = now;
                    Some(record)
                }
                // Gone, or already holds it: only the dedupe record is written.
                _ => None,
            },
        };
        let commit = EventCommit { event_id: event_id.clone(), received_at: now, cart, customer, timeline: None };
        match self.store.commit_event(commit).await? {
            CommitOutcome::Conflict => Ok(Attempt::Conflict),
            CommitOutcome::Duplicate => Ok(Attempt::Done(())),
            CommitOutcome::Applied => {
                // After the commit, so a repeat never adds a second line; the
                // line explains, the state change above is what counts.
                if let Some(line) = &step.line {
                    if let Err(error) = self.store.append_timeline(&cart_id, line).await {
                        tracing::warn!(%error, code = %line.code, "preference not added to the timeline");
                    }
                }
                Ok(Attempt::Done(()))
            }
        }
    }
}

fn consent_of(consents: &ConsentPatch, channel: Channel) -> Option<bool> {
    match channel {
        Channel::Email => consents.email,
        Channel::Sms => consents.sms,
        Channel::Push => consents.push,
        Channel::WebPush => consents.web_push,
        Channel::Webhook => None,
    }
}

/// The dedupe id of one choice: a digest of the message, the cart, the
/// choice and the day, so it names no one and repeats within the day.
fn dedupe_id(claims: &UnsubscribeClaims, choice: &str, day: &str) -> EventId {
    let mut digest = Sha256::new();
    for part in [claims.message_id.as_str(), claims.cart_id.as_str(), choice, day] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    EventId::from(format!("pref-{}", &hex::encode(digest.finalize())[..32]))
}

/// A synthetic identify event for the cart (the fold gives it no activity).
fn synthetic(
    event_id: EventId,
    claims: &UnsubscribeClaims,
    patch: CustomerPatch,
    answer: Option<CustomerAnswer>,
    now: DateTime<Utc>,
) -> Event {
    Event {
        cart_id: Some(claims.cart_id.clone()),
        customer: (patch != CustomerPatch::default()).then_some(patch),
        answer,
        ..Event::identify(event_id, now)
    }
}

fn line(at: DateTime<Utc>, code: &str, message: String, details: serde_json::Value) -> TimelineEntry {
    TimelineEntry { at, kind: TimelineKind::Event, code: code.into(), message, details }
}

/// How a reason reads in a sentence.
pub fn reason_sentence(reason: AnswerReason) -> &'static str {
    match reason {
        AnswerReason::AlreadyBought => "I already bought",
        AnswerReason::NotInterested => "not interested in these items",
        AnswerReason::TooManyMessages => "too many messages",
        AnswerReason::Other => "another reason",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> UnsubscribeClaims {
        UnsubscribeClaims { message_id: "m_1".into(), cart_id: "cart-1".into(), customer_id: None, expires: 0 }
    }

    #[test]
    fn given_stop_all_when_the_channels_are_read_then_every_channel_is_withdrawn() {
        let choices = Choices { stop_all: true, ..Default::default() };
        assert_eq!(choices.channels(), Channel::PERSONAL.into_iter().collect());
        assert_eq!(Choices::one_click().channels(), BTreeSet::from([Channel::Email]));
    }

    /// GIVEN free text alone, blank text, or text longer than the bound WHEN read as an answer
    /// THEN text alone is "other", blank is nothing, and long text is cut to the bound.
    #[test]
    fn given_free_text_when_read_as_an_answer_then_it_is_bounded_and_defaults_to_other() {
        let text = |t: &str| Choices { text: Some(t.into()), ..Default::default() };
        assert_eq!(text("meh").answer(), Some((AnswerReason::Other, Some("meh".into()))));
        assert_eq!(text("   ").answer(), None);
        assert!(text("  ").is_empty());
        let (_, long) = text(&"é".repeat(2000)).answer().unwrap();
        assert_eq!(long.unwrap().chars().count(), MAX_ANSWER_TEXT_CHARS);
    }

    /// GIVEN one choice WHEN its dedupe id is derived twice the same day, another day, or for another choice
    /// THEN only the same choice on the same day repeats, and the id names neither cart nor message.
    #[test]
    fn given_a_choice_when_its_dedupe_id_is_derived_then_it_repeats_only_within_the_day() {
        let a = dedupe_id(&claims(), "stop:email", "2026-11-23");
        assert_eq!(a, dedupe_id(&claims(), "stop:email", "2026-11-23"));
        assert_ne!(a, dedupe_id(&claims(), "stop:email", "2026-11-24"));
        assert_ne!(a, dedupe_id(&claims(), "snooze", "2026-11-23"));
        assert!(!a.as_str().contains("cart-1") && !a.as_str().contains("m_1"), "{a}");
    }
}
