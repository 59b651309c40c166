//! Facts: the compact, append-only records any report window is computed
//! from. Each fact has an id that makes recording it idempotent (a retried
//! write, a duplicate purchase event, a repeated provider report store it
//! once); the report also counts each order once whatever the store holds.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::assign::Group;
use crate::consent::AnswerReason;
use crate::ids::{CartId, CustomerKey, MessageId};
use crate::message::Channel;
use crate::voucher::{Refusal, TierName};

/// How long facts are kept unless configured otherwise, on both runtimes:
/// over a year, so a report can set a season against the same one last year.
pub const DEFAULT_FACT_RETENTION_DAYS: i64 = 400;

/// One thing that happened that the report counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// Unique per fact; see the constructors for each kind's id.
    pub fact_id: String,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: FactKind,
}

/// Whether the customer returned anything recently: the segment the report
/// breaks results down by ("returners against others").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentLabel {
    Returner,
    Other,
}

/// What became of a message (or of a step a held-out or shadow cart would
/// have been sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageOutcome {
    /// Would have been sent: the cart is held out or the campaign is a shadow.
    WouldSend,
    Sent,
    Delivered,
    /// Opened by a person (as far as Cartback can tell).
    OpenedHuman,
    /// Opened by a machine: a privacy proxy or a scanner.
    OpenedMachine,
    Clicked,
    Bounced,
    Complained,
    Unsubscribed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum FactKind {
    /// A cart entered a campaign: its first step fell due and the engine
    /// decided to send it (or would have, for a held-out or shadow cart).
    Entered {
        campaign_id: String,
        cart_id: CartId,
        customer_key: CustomerKey,
        group: Group,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<String>,
        segment: SegmentLabel,
        /// The cart's subtotal, in `currency`; absent when the cart has no prices.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Decimal>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        currency: Option<String>,
    },
    /// A message's outcome (one fact per outcome per message).
    Message {
        campaign_id: String,
        cart_id: CartId,
        customer_key: CustomerKey,
        message_id: MessageId,
        group: Group,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<String>,
        step: u32,
        channel: Channel,
        outcome: MessageOutcome,
    },
    /// An order, from a purchase event. Its id is the order id, so a
    /// duplicate or late purchase event for the same order is one fact.
    Order {
        order_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cart_id: Option<CartId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer_key: Option<CustomerKey>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Decimal>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        currency: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        coupon: Option<String>,
    },
    /// A return: reduces the revenue of `order_id` by `value`. Its id is
    /// the return event's id (an order may see several returns).
    Return { return_id: String, order_id: String, customer_key: CustomerKey, value: Decimal, currency: String },
    /// A customer's answer on the preference page about the cart a message
    /// was sent for ("already bought", ...): one per message and reason.
    Answer { campaign_id: String, cart_id: CartId, message_id: MessageId, reason: AnswerReason },
    /// A voucher issued for a cart (one per cart) in `tier`.
    VoucherIssued {
        campaign_id: String,
        cart_id: CartId,
        customer_key: CustomerKey,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<String>,
        tier: TierName,
    },
    /// An order that redeemed a cart's voucher; `discount` is what it took
    /// off the order, in `currency` (unknown for free shipping without the
    /// order's shipping amount). Its id is the order id.
    VoucherRedeemed {
        order_id: String,
        campaign_id: String,
        cart_id: CartId,
        customer_key: CustomerKey,
        tier: TierName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        discount: Option<Decimal>,
        currency: String,
    },
    /// An order that used a code refused to it (already redeemed by another
    /// order, revoked): an abuse attempt. Its id is the order id.
    VoucherAbuse { order_id: String, campaign_id: String, cart_id: CartId, refusal: Refusal },
}

impl Fact {
    /// The fact with its id, which makes recording it idempotent.
    pub fn new(at: DateTime<Utc>, kind: FactKind) -> Fact {
        Fact { fact_id: kind.id(), at, kind }
    }

    /// The calendar day (UTC) the fact belongs to: stores partition by it.
    pub fn day(&self) -> NaiveDate {
        self.at.date_naive()
    }
}

impl FactKind {
    /// The id of the order fact of `order_id`.
    pub fn order_fact_id(order_id: &str) -> String {
        format!("order#{order_id}")
    }

    /// Unique per fact: a cart enters a campaign once; a message has each
    /// outcome once (a shadow campaign's would-be messages share ids with
    /// the live ones, so the campaign is part of it); an order is its order
    /// id; a return is its event's id.
    pub fn id(&self) -> String {
        match self {
            FactKind::Entered { campaign_id, cart_id, .. } => format!("entered#{campaign_id}#{cart_id}"),
            FactKind::Message { campaign_id, message_id, outcome, .. } => {
                format!("message#{campaign_id}#{message_id}#{}", crate::enum_names::name_of(outcome))
            }
            FactKind::Order { order_id, .. } => FactKind::order_fact_id(order_id),
            FactKind::Return { return_id, .. } => format!("return#{return_id}"),
            FactKind::Answer { campaign_id, message_id, reason, .. } => {
                format!("answer#{campaign_id}#{message_id}#{}", reason.as_str())
            }
            FactKind::VoucherIssued { cart_id, .. } => format!("voucher_issued#{cart_id}"),
            FactKind::VoucherRedeemed { order_id, .. } => format!("voucher_redeemed#{order_id}"),
            FactKind::VoucherAbuse { order_id, .. } => format!("voucher_abuse#{order_id}"),
        }
    }
}
