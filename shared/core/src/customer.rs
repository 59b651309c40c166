//! Customer profiles: contact data, consents and the purchase / return
//! history the engine needs. Each field group remembers when it was last set
//! so that a late, older event cannot overwrite newer data.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::cart::merge_patch;
use crate::consent::{grant_stands, newest_change, ConsentChange, ConsentSource};
use crate::event::{ConsentPatch, CustomerPatch, Event, EventType};
use crate::ids::{CustomerId, EventId};
use crate::message::Channel;

/// How long purchase and return history is kept on a profile.
const HISTORY_DAYS: i64 = 400;
/// The most recent purchases, returns and redeemed promotions kept: a
/// customer id shared by many orders (a B2B account, one id for every
/// guest) must not grow past DynamoDB's 400 KB item, which would make every
/// later event of that customer fail in storage. The rules read recent
/// windows only.
const MAX_HISTORY_ENTRIES: usize = 1_000;
/// Consent changes kept per customer: enough for years of real changes,
/// bounded against a storefront that repeats consents on every event.
pub const MAX_CONSENT_HISTORY: usize = 200;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub customer_id: CustomerId,
    #[serde(default)]
    pub profile: CustomerPatch,
    /// `occurred_at` of the newest event that set contact fields.
    #[serde(default)]
    pub profile_as_of: Option<DateTime<Utc>>,
    /// Each consent keeps its own time: a late withdrawal must win over a
    /// newer event that did not mention consent.
    #[serde(default)]
    pub consents_as_of: ConsentTimes,
    #[serde(default)]
    pub purchases: Vec<DateTime<Utc>>,
    #[serde(default)]
    pub returns: Vec<DateTime<Utc>>,
    /// Purchases that used a coupon (promotion redeemed).
    #[serde(default)]
    pub promotions_redeemed: Vec<DateTime<Utc>>,
    #[serde(default)]
    pub applied_event_ids: Vec<EventId>,
    /// Every consent change that took effect, oldest first (the newest
    /// [`MAX_CONSENT_HISTORY`] are kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consent_history: Vec<ConsentChange>,
}

impl Customer {
    pub fn new(customer_id: impl Into<CustomerId>) -> Self {
        Customer { customer_id: customer_id.into(), ..Default::default() }
    }

    /// Applies one event; returns whether anything changed.
    pub fn apply(&mut self, event: &Event) -> bool {
        if self.applied_event_ids.iter().any(|id| id == &event.event_id) {
            return false;
        }
        let mut changed = false;
        if let Some(patch) = &event.customer {
            let mut fields = patch.clone();
            let consents = fields.consents.take();
            if fields != CustomerPatch::default() {
                match self.profile_as_of {
                    Some(as_of) if event.occurred_at < as_of => {
                        // Older data only fills gaps.
                        let mut older = fields;
                        merge_patch(&mut older, &self.profile);
                        self.profile = older;
                    }
                    _ => {
                        merge_patch(&mut self.profile, &fields);
                        self.profile_as_of = Some(event.occurred_at);
                    }
                }
            }
            if let Some(consents) = consents {
                self.apply_consents(consents, event.occurred_at);
            }
            changed = true;
        }
        match event.kind {
            EventType::Purchase => {
                insert_sorted(&mut self.purchases, event.occurred_at);
                if event.coupon.is_some() {
                    insert_sorted(&mut self.promotions_redeemed, event.occurred_at);
                }
                changed = true;
            }
            EventType::Return => {
                insert_sorted(&mut self.returns, event.occurred_at);
                changed = true;
            }
            _ => {}
        }
        if changed {
            self.applied_event_ids.push(event.event_id.clone());
            // Dedupe records cover long-term idempotency; this list only
            // guards replays of recent profile events.
            if self.applied_event_ids.len() > 100 {
                self.applied_event_ids.remove(0);
            }
            let horizon = event.occurred_at - Duration::days(HISTORY_DAYS);
            for list in [&mut self.purchases, &mut self.returns, &mut self.promotions_redeemed] {
                list.retain(|t| *t >= horizon);
                let excess = list.len().saturating_sub(MAX_HISTORY_ENTRIES);
                list.drain(..excess);
            }
        }
        changed
    }

    fn apply_consents(&mut self, patch: ConsentPatch, at: DateTime<Utc>) {
        let stored = self.profile.consents.get_or_insert_with(Default::default);
        let times = &mut self.consents_as_of;
        for (channel, new, current, since) in [
            (Channel::Email, patch.email, &mut stored.email, &mut times.email),
            (Channel::Sms, patch.sms, &mut stored.sms, &mut times.sms),
            (Channel::Push, patch.push, &mut stored.push, &mut times.push),
            (Channel::WebPush, patch.web_push, &mut stored.web_push, &mut times.web_push),
        ] {
            if let Some(value) = new {
                let blocked = value && !grant_stands(newest_change(&self.consent_history, channel), patch.basis);
                if since.is_none_or(|t| at >= t) && !blocked {
                    // A repeated, unchanged consent is not a change.
                    if *current != Some(value) {
                        let source = patch.source.unwrap_or(ConsentSource::Event);
                        let change = ConsentChange { at, channel, granted: value, source, basis: patch.basis };
                        // Kept in time order, whatever order events arrive in.
                        let pos = self.consent_history.partition_point(|c| c.at <= at);
                        self.consent_history.insert(pos, change);
                    }
                    *current = Some(value);
                    *since = Some(at);
                }
            }
        }
        let excess = self.consent_history.len().saturating_sub(MAX_CONSENT_HISTORY);
        self.consent_history.drain(..excess);
    }

    pub fn last_purchase_at(&self) -> Option<DateTime<Utc>> {
        self.purchases.last().copied()
    }

    pub fn returned_since(&self, since: DateTime<Utc>) -> bool {
        self.returns.iter().any(|t| *t >= since)
    }
}

/// When each consent flag was last set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentTimes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_push: Option<DateTime<Utc>>,
}

fn insert_sorted(list: &mut Vec<DateTime<Utc>>, at: DateTime<Utc>) {
    let pos = list.partition_point(|t| *t <= at);
    list.insert(pos, at);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::LegalBasis;
    use crate::event::ConsentPatch;

    fn identify(id: &str, at: &str, email: &str, sms: Option<bool>) -> Event {
        Event {
            event_id: id.into(),
            kind: EventType::Identify,
            occurred_at: at.parse().unwrap(),
            cart_id: None,
            customer_id: Some("u1".into()),
            device: None,
            currency: None,
            items: vec![],
            order_id: None,
            value: None,
            coupon: None,
            customer: Some(CustomerPatch {
                email: Some(email.into()),
                consents: Some(ConsentPatch { sms, ..Default::default() }),
                ..Default::default()
            }),
            answer: None,
        }
    }

    #[test]
    fn given_a_newer_profile_when_an_older_identify_arrives_late_then_newer_fields_win() {
        let mut c = Customer::new("u1");
        c.apply(&identify("2", "2026-11-23T11:00:00Z", "new@example.com", Some(false)));
        c.apply(&identify("1", "2026-11-23T10:00:00Z", "old@example.com", Some(true)));
        assert_eq!(c.profile.email.as_ref().map(crate::contact::Email::expose), Some("new@example.com"));
        assert_eq!(c.profile.consents.unwrap().sms, Some(false), "a withdrawn consent is not revived by older data");
    }

    #[test]
    fn given_a_newer_event_without_consents_when_a_late_withdrawal_arrives_then_the_withdrawal_wins() {
        let mut c = Customer::new("u1");
        c.apply(&identify("1", "2026-11-23T09:00:00Z", "a@example.com", Some(true)));
        let mut name_only = identify("2", "2026-11-23T11:00:00Z", "a@example.com", None);
        name_only.customer.as_mut().unwrap().consents = None;
        c.apply(&name_only);
        c.apply(&identify("3", "2026-11-23T10:45:00Z", "a@example.com", Some(false)));
        assert_eq!(c.profile.consents.unwrap().sms, Some(false));
    }

    #[test]
    fn given_consent_events_when_applied_then_each_change_is_recorded_once_with_its_source_and_basis() {
        let mut c = Customer::new("u1");
        let mut granted = identify("1", "2026-11-23T09:00:00Z", "a@example.com", Some(true));
        granted.customer.as_mut().unwrap().consents.as_mut().unwrap().basis = Some(LegalBasis::Consent);
        c.apply(&granted);
        c.apply(&identify("2", "2026-11-23T10:00:00Z", "a@example.com", Some(true)));
        let mut stop = identify("3", "2026-11-23T11:00:00Z", "a@example.com", Some(false));
        stop.customer.as_mut().unwrap().consents.as_mut().unwrap().source = Some(ConsentSource::SmsStop);
        c.apply(&stop);
        let seen: Vec<_> = c.consent_history.iter().map(|h| (h.channel, h.granted, h.source, h.basis)).collect();
        assert_eq!(
            seen,
            [
                (Channel::Sms, true, ConsentSource::Event, Some(LegalBasis::Consent)),
                (Channel::Sms, false, ConsentSource::SmsStop, None),
            ],
            "the repeated grant is not a change"
        );
    }

    /// GIVEN a customer who unsubscribed through the link
    /// WHEN the storefront's next events resend its stored `consents.sms = true`
    /// THEN the withdrawal stands; only a grant with `basis = consent` (the
    /// customer ticked the box again) re-subscribes them.
    #[test]
    fn given_the_customers_own_withdrawal_when_a_plain_grant_follows_then_only_an_explicit_opt_in_reverses_it() {
        let mut c = Customer::new("u1");
        c.apply(&identify("1", "2026-11-23T09:00:00Z", "a@example.com", Some(true)));
        let mut stop = identify("2", "2026-11-23T10:00:00Z", "a@example.com", Some(false));
        stop.customer.as_mut().unwrap().consents.as_mut().unwrap().source = Some(ConsentSource::UnsubscribeLink);
        c.apply(&stop);
        c.apply(&identify("3", "2026-11-23T10:05:00Z", "a@example.com", Some(true)));
        assert_eq!(c.profile.consents.unwrap().sms, Some(false), "a resent flag does not re-subscribe");
        let mut soft = identify("4", "2026-11-23T10:06:00Z", "a@example.com", Some(true));
        soft.customer.as_mut().unwrap().consents.as_mut().unwrap().basis = Some(LegalBasis::SoftOptIn);
        c.apply(&soft);
        assert_eq!(c.profile.consents.unwrap().sms, Some(false), "soft opt-in is not a new opt-in");
        let mut ticked = identify("5", "2026-11-23T11:00:00Z", "a@example.com", Some(true));
        ticked.customer.as_mut().unwrap().consents.as_mut().unwrap().basis = Some(LegalBasis::Consent);
        c.apply(&ticked);
        assert_eq!(c.profile.consents.unwrap().sms, Some(true));
        assert_eq!(c.consent_history.len(), 3, "granted, withdrawn, granted again: {:?}", c.consent_history);
    }

    #[test]
    fn given_a_bounce_withdrawal_when_a_plain_grant_follows_then_it_re_subscribes_as_before() {
        let mut c = Customer::new("u1");
        let mut bounce = identify("1", "2026-11-23T10:00:00Z", "a@example.com", Some(false));
        bounce.customer.as_mut().unwrap().consents.as_mut().unwrap().source = Some(ConsentSource::Bounce);
        c.apply(&bounce);
        c.apply(&identify("2", "2026-11-23T10:05:00Z", "b@example.com", Some(true)));
        assert_eq!(c.profile.consents.unwrap().sms, Some(true));
    }

    #[test]
    fn given_a_storefront_repeating_flipped_consents_when_applied_then_only_the_newest_changes_are_kept() {
        let mut c = Customer::new("u1");
        let start: DateTime<Utc> = "2026-11-23T09:00:00Z".parse().unwrap();
        for i in 0..(MAX_CONSENT_HISTORY + 50) {
            let at = (start + Duration::minutes(i as i64)).to_rfc3339();
            c.apply(&identify(&format!("e{i}"), &at, "a@example.com", Some(i % 2 == 0)));
        }
        assert_eq!(c.consent_history.len(), MAX_CONSENT_HISTORY);
        assert_eq!(c.consent_history.last().map(|h| h.at), Some(start + Duration::minutes(249)));
    }

    #[test]
    fn given_the_same_event_twice_when_applied_then_the_second_changes_nothing() {
        let mut c = Customer::new("u1");
        let mut ret = identify("r", "2026-11-23T10:00:00Z", "a@example.com", None);
        ret.kind = EventType::Return;
        assert!(c.apply(&ret));
        assert!(!c.apply(&ret));
        assert_eq!(c.returns.len(), 1);
    }

    #[test]
    fn given_a_customer_id_shared_by_thousands_of_orders_when_they_arrive_then_only_the_latest_are_kept() {
        let mut c = Customer::new("u1");
        let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        for i in 0..(MAX_HISTORY_ENTRIES as i64 + 500) {
            let mut purchase = identify(&format!("p{i}"), "2026-01-01T00:00:00Z", "a@example.com", None);
            purchase.kind = EventType::Purchase;
            purchase.occurred_at = start + Duration::minutes(i);
            c.apply(&purchase);
        }
        assert_eq!(c.purchases.len(), MAX_HISTORY_ENTRIES);
        assert_eq!(c.purchases.last(), Some(&(start + Duration::minutes(MAX_HISTORY_ENTRIES as i64 + 499))));
    }
}
