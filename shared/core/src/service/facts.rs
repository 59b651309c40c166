//! The measurement facts the services record as things happen (see
//! [`crate::measure::facts`]): orders and returns from ingest, a message's
//! outcomes from delivery, feedback and engagement. The checker records the
//! `entered` and `would send` facts itself.
//!
//! Every fact is written before the write that makes its cause final (the
//! event commit, the message's settle, the engagement count), and recording
//! it is idempotent: a retry after a failure in between rewrites the same
//! fact, a repeated cause finds it there, and a failed fact write fails the
//! whole step, which its caller retries. So a fact is never lost and never
//! counted twice.

use chrono::{DateTime, Utc};

use crate::cart::Cart;
use crate::consent::AnswerReason;
use crate::engagement::EngagementLabel;
use crate::event::{Event, EventType};
use crate::ids::CustomerKey;
use crate::measure::assign::Group;
use crate::measure::facts::{Fact, FactKind, MessageOutcome};
use crate::message::MessageRecord;
use crate::Decimal;

/// What an ingested event means for the facts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EventFact {
    /// Not an order or a return.
    Nothing,
    Record(Fact),
    /// A return that cannot be counted against an order; the sentence says
    /// why (it goes on the cart's timeline, or in the log without a cart).
    NotCounted(&'static str),
}

/// The order or return fact of `event`; `cart` is the cart's state with the
/// event in it, when the event names a cart.
pub(crate) fn event_fact(event: &Event, cart: Option<&Cart>) -> EventFact {
    match event.kind {
        EventType::Purchase => match &event.order_id {
            Some(order_id) => EventFact::Record(Fact::new(
                event.occurred_at,
                FactKind::Order {
                    order_id: order_id.clone(),
                    cart_id: event.cart_id.clone(),
                    customer_key: customer_key(event, cart),
                    value: amount(event),
                    currency: event.currency.clone().or_else(|| cart.and_then(|c| c.currency.clone())),
                    coupon: event.coupon.clone(),
                },
            )),
            // Validation requires it; an event applied without parsing may lack it.
            None => EventFact::NotCounted("this purchase names no order_id, so it is not counted as an order"),
        },
        EventType::Return => {
            let Some(order_id) = &event.order_id else {
                return EventFact::NotCounted(
                    "this return names no order_id, so it cannot reduce any order's revenue in the report",
                );
            };
            let (Some(value), Some(currency), Some(customer_key)) =
                (amount(event), event.currency.clone(), customer_key(event, cart))
            else {
                return EventFact::NotCounted(
                    "this return carries no amount (no value and no item prices), so the report cannot \
                     reduce its order's revenue",
                );
            };
            EventFact::Record(Fact::new(
                event.occurred_at,
                FactKind::Return {
                    return_id: event.event_id.to_string(),
                    order_id: order_id.clone(),
                    customer_key,
                    value,
                    currency,
                },
            ))
        }
        _ => EventFact::Nothing,
    }
}

/// Whose order or return it is, keyed as the checker keys the cart's
/// messages and `entered` facts: by the cart's customer (known from any of
/// its events, not only this one), else as the cart's guest; an event
/// without a cart by its customer id.
fn customer_key(event: &Event, cart: Option<&Cart>) -> Option<CustomerKey> {
    match cart {
        Some(cart) => Some(CustomerKey::for_cart(cart.customer_id.as_ref(), &cart.cart_id)),
        None => event.customer_id.clone().map(CustomerKey::Customer),
    }
}

/// The event's `value`, else the sum of its items' price x quantity (items
/// without a price add nothing); none when it has neither.
fn amount(event: &Event) -> Option<Decimal> {
    event.value.or_else(|| {
        let priced: Vec<Decimal> =
            event.items.iter().filter_map(|i| i.price.map(|p| p * Decimal::from(i.quantity))).collect();
        (!priced.is_empty()).then(|| priced.into_iter().sum())
    })
}

/// A message's outcome. Only treated messages are ever sent, so the group
/// is `Treated`; the variant is the one the message record carries.
pub(crate) fn message_fact(message: &MessageRecord, outcome: MessageOutcome, at: DateTime<Utc>) -> Fact {
    Fact::new(
        at,
        FactKind::Message {
            campaign_id: message.campaign_id.clone(),
            cart_id: message.cart_id.clone(),
            customer_key: message.customer_key.clone(),
            message_id: message.message_id.clone(),
            group: Group::Treated,
            variant: message.variant.clone(),
            step: message.step,
            channel: message.channel,
            outcome,
        },
    )
}

/// A customer's answer about the cart `message` was sent for.
pub(crate) fn answer_fact(message: &MessageRecord, reason: AnswerReason, at: DateTime<Utc>) -> Fact {
    Fact::new(
        at,
        FactKind::Answer {
            campaign_id: message.campaign_id.clone(),
            cart_id: message.cart_id.clone(),
            message_id: message.message_id.clone(),
            reason,
        },
    )
}

/// The outcome an open or click label is counted as. A link scanner's click
/// is none: no one clicked, and counting it would inflate the click rate.
pub(crate) fn engagement_outcome(label: EngagementLabel) -> Option<MessageOutcome> {
    match label {
        EngagementLabel::HumanClick => Some(MessageOutcome::Clicked),
        EngagementLabel::ScannerClick => None,
        EngagementLabel::Open => Some(MessageOutcome::OpenedHuman),
        EngagementLabel::MachineOpen => Some(MessageOutcome::OpenedMachine),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Item;

    fn event(kind: EventType, value: Option<&str>, prices: &[(Option<&str>, u32)]) -> Event {
        Event {
            event_id: "ev-1".into(),
            kind,
            occurred_at: "2026-11-23T10:00:00Z".parse().unwrap(),
            cart_id: Some("cart-1".into()),
            customer_id: Some("cust-1".into()),
            device: None,
            currency: Some("EUR".into()),
            items: prices
                .iter()
                .enumerate()
                .map(|(i, (price, quantity))| Item {
                    item_id: format!("sku-{i}"),
                    item_name: None,
                    variant: None,
                    price: price.map(|p| p.parse().unwrap()),
                    quantity: *quantity,
                    image_url: None,
                    url: None,
                })
                .collect(),
            order_id: Some("o-1".into()),
            value: value.map(|v| v.parse().unwrap()),
            coupon: None,
            customer: None,
            answer: None,
        }
    }

    fn order_value(fact: EventFact) -> Option<Decimal> {
        match fact {
            EventFact::Record(Fact { kind: FactKind::Order { value, .. }, .. }) => value,
            other => panic!("not an order: {other:?}"),
        }
    }

    #[test]
    fn given_a_purchase_when_valued_then_its_value_wins_else_its_priced_items_sum_else_it_has_none() {
        let items = [(Some("2.50"), 3), (None, 1), (Some("0.99"), 1)];
        let with_value = event(EventType::Purchase, Some("9.00"), &items);
        assert_eq!(order_value(event_fact(&with_value, None)), Some("9.00".parse().unwrap()));
        let priced = event(EventType::Purchase, None, &items);
        assert_eq!(order_value(event_fact(&priced, None)), Some("8.49".parse().unwrap()));
        let unpriced = event(EventType::Purchase, None, &[(None, 2)]);
        assert_eq!(order_value(event_fact(&unpriced, None)), None);
    }

    #[test]
    fn given_an_order_when_keyed_then_its_carts_customer_decides_and_without_a_cart_the_events_customer() {
        let purchase = event(EventType::Purchase, Some("1"), &[]);
        let guest_cart = Cart::from_events("cart-1", &[]);
        let EventFact::Record(fact) = event_fact(&purchase, Some(&guest_cart)) else { panic!("an order") };
        let FactKind::Order { customer_key, .. } = fact.kind else { panic!("an order") };
        assert_eq!(customer_key, Some(CustomerKey::Guest("cart-1".into())));
        let EventFact::Record(fact) = event_fact(&purchase, None) else { panic!("an order") };
        let FactKind::Order { customer_key, .. } = fact.kind else { panic!("an order") };
        assert_eq!(customer_key, Some(CustomerKey::Customer("cust-1".into())));
    }

    #[test]
    fn given_a_return_without_an_order_or_an_amount_when_seen_then_it_is_no_fact_and_says_why() {
        let mut no_order = event(EventType::Return, Some("5"), &[]);
        no_order.order_id = None;
        assert!(matches!(event_fact(&no_order, None), EventFact::NotCounted(why) if why.contains("order_id")));
        let no_amount = event(EventType::Return, None, &[(None, 1)]);
        assert!(matches!(event_fact(&no_amount, None), EventFact::NotCounted(why) if why.contains("no amount")));
        let edit = event(EventType::AddToCart, None, &[(None, 1)]);
        assert_eq!(event_fact(&edit, None), EventFact::Nothing);
    }

    use crate::message::{Channel, MessageStatus};

    #[test]
    fn given_a_message_of_an_experiment_variant_when_its_outcome_is_recorded_then_the_fact_names_the_variant() {
        let at: DateTime<Utc> = "2026-11-23T10:30:00Z".parse().unwrap();
        let message = MessageRecord {
            message_id: MessageRecord::id_for("c1", 0, Channel::Email),
            cart_id: "c1".into(),
            customer_key: CustomerKey::Customer("u1".into()),
            campaign_id: "default".into(),
            step: 0,
            channel: Channel::Email,
            decided_at: at,
            status: MessageStatus::Sent { provider_message_id: "p".into(), at },
            engagement: Default::default(),
            variant: Some("next-day".into()),
        };
        let fact = message_fact(&message, MessageOutcome::Sent, at);
        let FactKind::Message { group, variant, .. } = fact.kind else { panic!("a message fact: {fact:?}") };
        assert_eq!((group, variant.as_deref()), (Group::Treated, Some("next-day")));
    }
}
