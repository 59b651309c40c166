//! Cart state. A cart is the fold of its events in `occurred_at` order, so
//! late and out-of-order delivery gives the same state as in-order delivery,
//! and a purchase is never undone by an older edit.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::consent::{grant_stands, newest_change, ConsentChange, ConsentSource, CustomerAnswer};
use crate::customer::MAX_CONSENT_HISTORY;
use crate::event::{ConsentPatch, CustomerPatch, Device, Event, EventType, Item};
use crate::ids::{CartId, CustomerId};
use crate::message::Channel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CartStatus {
    /// Has items and no purchase.
    Active,
    /// Had items, now has none.
    Emptied,
    /// A purchase was seen for this cart: terminal.
    Converted,
    /// Only views so far.
    Browsing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Purchase {
    pub order_id: String,
    pub value: Option<Decimal>,
    pub currency: Option<String>,
    pub coupon: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub currency: Option<String>,
    pub subtotal: Decimal,
    pub item_count: u32,
}

/// The state of a cart derived from its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    pub cart_id: CartId,
    pub customer_id: Option<CustomerId>,
    pub status: CartStatus,
    pub items: Vec<Item>,
    pub currency: Option<String>,
    pub device: Option<Device>,
    pub first_activity_at: Option<DateTime<Utc>>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub items_viewed: u32,
    /// Contact data typed in on this cart (guest checkout).
    pub contact: CustomerPatch,
    pub purchase: Option<Purchase>,
    /// What the customer told us about this cart (preference page), oldest first.
    pub answers: Vec<CustomerAnswer>,
    /// Every change of the consents typed on this cart (a guest's), oldest
    /// first: what [`Customer::consent_history`](crate::customer::Customer)
    /// keeps for a known customer, so a guest's consent is explainable too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consent_history: Vec<ConsentChange>,
}

impl Cart {
    /// Folds events (in any order) into the cart state.
    pub fn from_events(cart_id: impl Into<CartId>, events: &[Event]) -> Cart {
        let mut ordered: Vec<&Event> = events.iter().collect();
        ordered.sort_by(|a, b| a.occurred_at.cmp(&b.occurred_at).then_with(|| a.event_id.cmp(&b.event_id)));
        let mut cart = Cart {
            cart_id: cart_id.into(),
            customer_id: None,
            status: CartStatus::Browsing,
            items: Vec::new(),
            currency: None,
            device: None,
            first_activity_at: None,
            last_activity_at: None,
            items_viewed: 0,
            contact: CustomerPatch::default(),
            purchase: None,
            answers: Vec::new(),
            consent_history: Vec::new(),
        };
        let mut viewed = BTreeSet::new();
        for event in ordered {
            cart.apply(event, &mut viewed);
        }
        cart.items_viewed = viewed.len() as u32;
        cart
    }

    fn apply(&mut self, event: &Event, viewed: &mut BTreeSet<String>) {
        if let Some(id) = &event.customer_id {
            self.customer_id = Some(id.clone());
        }
        if let Some(patch) = &event.customer {
            let mut patch = patch.clone();
            if let Some(consents) = patch.consents.as_mut() {
                self.drop_grants_that_do_not_stand(consents);
                self.record_consent_changes(consents, event.occurred_at);
            }
            merge_patch(&mut self.contact, &patch);
        }
        if let Some(answer) = &event.answer {
            self.answers.push(answer.clone());
        }
        if self.status == CartStatus::Converted {
            return;
        }
        if let Some(currency) = &event.currency {
            self.currency = Some(currency.clone());
        }
        match event.kind {
            EventType::ViewItem => {
                viewed.extend(event.items.iter().map(|i| i.item_id.clone()));
                return;
            }
            EventType::AddToCart => {
                for item in &event.items {
                    match self.items.iter_mut().find(|i| i.item_id == item.item_id) {
                        Some(existing) => {
                            existing.quantity = existing.quantity.saturating_add(item.quantity);
                            refresh_details(existing, item);
                        }
                        None => self.items.push(item.clone()),
                    }
                }
            }
            EventType::RemoveFromCart => {
                for item in &event.items {
                    if let Some(pos) = self.items.iter().position(|i| i.item_id == item.item_id) {
                        let existing = &mut self.items[pos];
                        existing.quantity = existing.quantity.saturating_sub(item.quantity);
                        if existing.quantity == 0 {
                            self.items.remove(pos);
                        }
                    }
                }
            }
            EventType::CartUpdate => self.items = event.items.clone(),
            EventType::BeginCheckout => {
                if !event.items.is_empty() {
                    self.items = event.items.clone();
                }
            }
            EventType::Purchase => {
                self.status = CartStatus::Converted;
                self.purchase = Some(Purchase {
                    order_id: event.order_id.clone().unwrap_or_default(),
                    value: event.value,
                    currency: event.currency.clone().or_else(|| self.currency.clone()),
                    coupon: event.coupon.clone(),
                    at: event.occurred_at,
                });
                return;
            }
            EventType::Identify | EventType::Return => return,
        }
        if let Some(device) = event.device {
            self.device = Some(device);
        }
        self.first_activity_at.get_or_insert(event.occurred_at);
        self.last_activity_at = Some(event.occurred_at);
        self.status = if self.items.is_empty() { CartStatus::Emptied } else { CartStatus::Active };
    }

    /// Appends the changes `patch` makes to the consents known so far, the
    /// way a customer's profile records them: a repeated, unchanged consent
    /// is no change; the source is `event` unless the patch names one; the
    /// patch's basis is kept. Events are folded in time order, so the
    /// newest change is the last. Bounded like a customer's history.
    /// A plain grant after the customer's own withdrawal is ignored (see
    /// [`grant_stands`]), as on a customer's profile.
    fn drop_grants_that_do_not_stand(&self, patch: &mut ConsentPatch) {
        let basis = patch.basis;
        for (channel, slot) in [
            (Channel::Email, &mut patch.email),
            (Channel::Sms, &mut patch.sms),
            (Channel::Push, &mut patch.push),
            (Channel::WebPush, &mut patch.web_push),
        ] {
            if *slot == Some(true) && !grant_stands(newest_change(&self.consent_history, channel), basis) {
                *slot = None;
            }
        }
    }

    fn record_consent_changes(&mut self, patch: &ConsentPatch, at: DateTime<Utc>) {
        let known = self.contact.consents.unwrap_or_default();
        for (channel, new, current) in [
            (Channel::Email, patch.email, known.email),
            (Channel::Sms, patch.sms, known.sms),
            (Channel::Push, patch.push, known.push),
            (Channel::WebPush, patch.web_push, known.web_push),
        ] {
            if let Some(granted) = new.filter(|value| current != Some(*value)) {
                let source = patch.source.unwrap_or(ConsentSource::Event);
                self.consent_history.push(ConsentChange { at, channel, granted, source, basis: patch.basis });
            }
        }
        let excess = self.consent_history.len().saturating_sub(MAX_CONSENT_HISTORY);
        self.consent_history.drain(..excess);
    }

    pub fn totals(&self) -> Totals {
        Totals {
            currency: self.currency.clone(),
            // Amounts are bounded at ingest; saturating keeps a stored outlier
            // from ever panicking a checker.
            subtotal: self.items.iter().fold(Decimal::ZERO, |sum, i| {
                sum.saturating_add(i.price.unwrap_or_default().saturating_mul(Decimal::from(i.quantity)))
            }),
            item_count: self.items.iter().map(|i| i.quantity).sum(),
        }
    }
}

/// An amount as shown to people and in JSON answers: two decimals at least.
pub fn money_text(amount: Decimal) -> String {
    let mut shown = amount.round_dp(4).normalize();
    if shown.scale() < 2 {
        shown.rescale(2);
    }
    shown.to_string()
}

fn refresh_details(existing: &mut Item, newer: &Item) {
    if newer.item_name.is_some() {
        existing.item_name.clone_from(&newer.item_name);
    }
    if newer.price.is_some() {
        existing.price = newer.price;
    }
    if newer.image_url.is_some() {
        existing.image_url.clone_from(&newer.image_url);
    }
    if newer.url.is_some() {
        existing.url.clone_from(&newer.url);
    }
}

/// Later patches win field by field; absent fields keep what was known.
pub fn merge_patch(into: &mut CustomerPatch, patch: &CustomerPatch) {
    macro_rules! take {
        ($($f:ident),*) => { $( if patch.$f.is_some() { into.$f.clone_from(&patch.$f); } )* };
    }
    take!(email, phone, first_name, locale, timezone, push_tokens, web_push_subscription, snoozed_until);
    if let Some(c) = patch.consents {
        let into_c = into.consents.get_or_insert_with(Default::default);
        into_c.email = c.email.or(into_c.email);
        into_c.sms = c.sms.or(into_c.sms);
        into_c.push = c.push.or(into_c.push);
        into_c.web_push = c.web_push.or(into_c.web_push);
        into_c.source = c.source.or(into_c.source);
        into_c.basis = c.basis.or(into_c.basis);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::LegalBasis;
    use chrono::Duration;

    fn t(min: i64) -> DateTime<Utc> {
        "2026-11-23T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(min)
    }

    fn item(id: &str, qty: u32, price: i64) -> Item {
        Item {
            item_id: id.into(),
            item_name: Some(id.to_uppercase()),
            variant: None,
            price: Some(Decimal::new(price, 2)),
            quantity: qty,
            image_url: None,
            url: None,
        }
    }

    fn event(id: &str, kind: EventType, at: i64, items: Vec<Item>) -> Event {
        Event {
            event_id: id.into(),
            kind,
            occurred_at: t(at),
            cart_id: Some("c".into()),
            customer_id: None,
            device: Some(Device::Desktop),
            currency: Some("EUR".into()),
            items,
            order_id: None,
            value: None,
            coupon: None,
            customer: None,
            answer: None,
        }
    }

    #[test]
    fn given_adds_and_removes_when_folded_then_quantities_and_totals_follow() {
        let cart = Cart::from_events(
            "c",
            &[
                event("1", EventType::AddToCart, 0, vec![item("a", 2, 1000)]),
                event("2", EventType::AddToCart, 1, vec![item("b", 1, 550), item("a", 1, 1000)]),
                event("3", EventType::RemoveFromCart, 2, vec![item("b", 1, 550)]),
            ],
        );
        assert_eq!(cart.status, CartStatus::Active);
        assert_eq!(cart.items.len(), 1);
        assert_eq!(cart.totals().subtotal, Decimal::new(3000, 2));
        assert_eq!(cart.totals().item_count, 3);
        assert_eq!(cart.last_activity_at, Some(t(2)));
    }

    #[test]
    fn given_events_out_of_order_when_folded_then_state_equals_in_order_delivery() {
        let events = vec![
            event("1", EventType::AddToCart, 0, vec![item("a", 1, 100)]),
            event("2", EventType::CartUpdate, 5, vec![item("b", 2, 200)]),
            event("3", EventType::RemoveFromCart, 7, vec![item("b", 1, 200)]),
        ];
        let mut shuffled = events.clone();
        shuffled.reverse();
        assert_eq!(Cart::from_events("c", &events), Cart::from_events("c", &shuffled));
    }

    #[test]
    fn given_a_purchase_when_an_older_edit_arrives_late_then_the_cart_stays_converted() {
        let mut purchase = event("p", EventType::Purchase, 10, vec![]);
        purchase.order_id = Some("o1".into());
        let cart = Cart::from_events(
            "c",
            &[
                event("1", EventType::AddToCart, 0, vec![item("a", 1, 100)]),
                purchase,
                event("late", EventType::AddToCart, 5, vec![item("b", 1, 100)]),
            ],
        );
        assert_eq!(cart.status, CartStatus::Converted);
        assert_eq!(cart.purchase.unwrap().order_id, "o1");
    }

    #[test]
    fn given_every_item_removed_when_folded_then_the_cart_is_emptied() {
        let cart = Cart::from_events(
            "c",
            &[
                event("1", EventType::AddToCart, 0, vec![item("a", 1, 100)]),
                event("2", EventType::CartUpdate, 1, vec![]),
            ],
        );
        assert_eq!(cart.status, CartStatus::Emptied);
    }

    #[test]
    fn given_views_when_folded_then_distinct_items_are_counted_and_activity_is_unchanged() {
        let cart = Cart::from_events(
            "c",
            &[
                event("1", EventType::ViewItem, 0, vec![item("a", 1, 100)]),
                event("2", EventType::ViewItem, 1, vec![item("a", 1, 100)]),
                event("3", EventType::ViewItem, 2, vec![item("b", 1, 100)]),
            ],
        );
        assert_eq!(cart.items_viewed, 2);
        assert_eq!(cart.status, CartStatus::Browsing);
        assert_eq!(cart.last_activity_at, None);
    }

    fn consents(id: &str, at: i64, email: Option<bool>, sms: Option<bool>) -> Event {
        let mut e = event(id, EventType::Identify, at, vec![]);
        let consents = ConsentPatch { email, sms, basis: Some(LegalBasis::Consent), ..Default::default() };
        e.customer = Some(CustomerPatch { consents: Some(consents), ..Default::default() });
        e
    }

    #[test]
    fn given_a_guests_consent_events_when_folded_then_the_cart_keeps_each_change_once_with_source_and_basis() {
        let mut unsubscribe = consents("3", 20, Some(false), None);
        let patch = unsubscribe.customer.as_mut().unwrap().consents.as_mut().unwrap();
        (patch.source, patch.basis) = (Some(ConsentSource::UnsubscribeLink), None);
        let events = vec![
            event("0", EventType::AddToCart, 0, vec![item("a", 1, 100)]),
            consents("1", 5, Some(true), Some(true)),
            consents("2", 10, Some(true), None),
            unsubscribe,
        ];
        let cart = Cart::from_events("c", &events);
        let seen: Vec<_> =
            cart.consent_history.iter().map(|c| (c.at, c.channel, c.granted, c.source, c.basis)).collect();
        let consent = Some(LegalBasis::Consent);
        assert_eq!(
            seen,
            [
                (t(5), Channel::Email, true, ConsentSource::Event, consent),
                (t(5), Channel::Sms, true, ConsentSource::Event, consent),
                (t(20), Channel::Email, false, ConsentSource::UnsubscribeLink, None),
            ],
            "the repeated email consent at minute 10 is no change"
        );
        let mut shuffled = events.clone();
        shuffled.reverse();
        assert_eq!(Cart::from_events("c", &shuffled).consent_history, cart.consent_history);
    }

    /// GIVEN a guest who unsubscribed through the link
    /// WHEN the storefront's next event resends `consents.email = true` (no basis)
    /// THEN the cart's email consent stays withdrawn; a later grant with
    /// `basis = consent` re-subscribes.
    #[test]
    fn given_a_guests_own_withdrawal_when_the_storefront_resends_its_flag_then_the_withdrawal_stands() {
        let mut unsubscribe = consents("2", 20, Some(false), None);
        let patch = unsubscribe.customer.as_mut().unwrap().consents.as_mut().unwrap();
        (patch.source, patch.basis) = (Some(ConsentSource::UnsubscribeLink), None);
        let mut resent = consents("3", 25, Some(true), None);
        resent.customer.as_mut().unwrap().consents.as_mut().unwrap().basis = None;
        let mut events = vec![consents("1", 5, Some(true), None), unsubscribe, resent];
        let cart = Cart::from_events("c", &events);
        assert_eq!(cart.contact.consents.and_then(|c| c.email), Some(false));
        assert_eq!(cart.consent_history.len(), 2, "{:?}", cart.consent_history);
        events.push(consents("4", 30, Some(true), None));
        assert_eq!(Cart::from_events("c", &events).contact.consents.and_then(|c| c.email), Some(true));
    }

    #[test]
    fn given_consents_flipping_on_every_event_when_folded_then_the_history_is_bounded_to_the_newest() {
        let flip = |i: i64| consents(&format!("{i:04}"), i, Some(i % 2 == 0), None);
        let events: Vec<Event> = (0..(MAX_CONSENT_HISTORY as i64 + 50)).map(flip).collect();
        let cart = Cart::from_events("c", &events);
        assert_eq!(cart.consent_history.len(), MAX_CONSENT_HISTORY);
        assert_eq!(cart.consent_history.last().map(|c| c.at), Some(t(MAX_CONSENT_HISTORY as i64 + 49)));
    }
}
