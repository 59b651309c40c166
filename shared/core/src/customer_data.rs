//! A customer's data as a whole: what an export returns (GDPR art. 15) and
//! what an erasure removes (GDPR art. 17, CCPA "right to delete").
//!
//! What is the customer's: their profile (with its consent history); every
//! cart whose events name them (guest carts identified later included), with
//! its events and timeline; every message record counted for them or for one
//! of those carts (a guest cart's messages count under `guest:<cart>`); the
//! send ledgers of those keys; and the measurement facts naming any of them.
//!
//! An erasure deletes all of it except the facts, which the report needs:
//! those are rewritten with the identifiers (customer key, cart id, message
//! id, order id, return id) replaced by pseudonyms drawn from a secret
//! random salt made for that erasure and then forgotten. Within one erasure
//! the same id always gets the same pseudonym, so the facts still relate to
//! each other (an order to the cart that entered the campaign, a message to
//! its outcomes): counts and amounts of every report stay as they were,
//! while nothing can link the facts back to the person. A message still
//! waiting for its sender becomes an anonymous cancelled record instead of
//! disappearing, so a job already on a queue finds it closed and is dropped
//! rather than retried into the dead-letter queue with the address in it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::customer::Customer;
use crate::ids::{CartId, CustomerId, CustomerKey, MessageId};
use crate::measure::facts::{Fact, FactKind};
use crate::message::{MessageRecord, MessageStatus};
use crate::ports::{CartRecord, SendLedger, TimelineEntry};
use crate::voucher::{Voucher, VoucherOwner};

/// What an erasure answers about retargeting audiences: none exist yet.
pub const AUDIENCES_NONE: &str = "none configured";

/// The reason written on a message an erasure cancelled.
pub const ERASED_REASON: &str = "customer data erased";

/// One cart of the customer with its timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartData {
    #[serde(flatten)]
    pub cart: CartRecord,
    pub timeline: Vec<TimelineEntry>,
}

/// Everything held about one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerData {
    pub customer_id: CustomerId,
    /// The profile: contact data, consents and their history
    /// (`customer.consent_history`), purchase and return times.
    pub customer: Option<Customer>,
    pub carts: Vec<CartData>,
    pub messages: Vec<MessageRecord>,
    pub send_ledgers: Vec<SendLedger>,
    pub facts: Vec<Fact>,
    /// Vouchers issued to the customer or for one of their carts (an
    /// erasure deletes them: a deleted code is then unknown at checkout).
    #[serde(default)]
    pub vouchers: Vec<Voucher>,
}

impl CustomerData {
    pub fn new(customer_id: CustomerId) -> Self {
        CustomerData {
            customer_id,
            customer: None,
            carts: Vec::new(),
            messages: Vec::new(),
            send_ledgers: Vec::new(),
            facts: Vec::new(),
            vouchers: Vec::new(),
        }
    }

    /// Whether nothing at all is held about the customer.
    pub fn is_empty(&self) -> bool {
        self.customer.is_none()
            && self.carts.is_empty()
            && self.messages.is_empty()
            && self.send_ledgers.is_empty()
            && self.facts.is_empty()
            && self.vouchers.is_empty()
    }

    /// The customer's key and the guest key of each of their carts.
    pub fn keys(&self) -> BTreeSet<CustomerKey> {
        let mut keys = BTreeSet::from([CustomerKey::Customer(self.customer_id.clone())]);
        keys.extend(self.cart_ids().into_iter().map(CustomerKey::Guest));
        keys
    }

    /// The carts found, and the carts of the messages found (a cart may have
    /// expired before its messages).
    pub fn cart_ids(&self) -> BTreeSet<CartId> {
        let mut ids: BTreeSet<CartId> = self.carts.iter().map(|c| c.cart.cart_id.clone()).collect();
        ids.extend(self.messages.iter().map(|m| m.cart_id.clone()));
        ids
    }

    /// The earliest time anything of the customer's may have been recorded
    /// at: where a store starts looking for their facts.
    pub fn earliest(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let carts = self
            .carts
            .iter()
            .flat_map(|c| std::iter::once(c.cart.created_at).chain(c.cart.events.iter().map(|e| e.occurred_at)));
        let messages = self.messages.iter().map(|m| m.decided_at);
        let profile = self.customer.iter().flat_map(|c| c.purchases.iter().chain(&c.returns).copied());
        carts.chain(messages).chain(profile).fold(now, DateTime::min)
    }

    /// The voucher owner the customer is (their guest carts' vouchers are
    /// found by cart).
    pub fn voucher_owner(&self) -> VoucherOwner {
        VoucherOwner::customer(&self.customer_id)
    }

    /// Whether the message is still waiting for or held by a sender: an
    /// erasure cancels it instead of deleting it (see the module notes).
    pub fn is_live(message: &MessageRecord) -> bool {
        matches!(message.status, MessageStatus::Queued | MessageStatus::Sending { .. })
    }
}

/// What an erasure removed, per item type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    /// Customer profiles deleted (0 or 1).
    pub profiles: u64,
    /// Carts deleted, with their events.
    pub carts: u64,
    pub timeline_entries: u64,
    /// Message records deleted.
    pub messages: u64,
    /// Messages still queued, cancelled and made anonymous.
    pub messages_cancelled: u64,
    pub send_ledgers: u64,
    /// Facts rewritten without identifiers (kept for the report).
    pub facts_anonymized: u64,
    /// Pending timers of the carts removed (local runtime; an EventBridge
    /// schedule carries only the cart id and fires into "no cart").
    pub timers: u64,
    /// Queued or dead-lettered jobs removed (local runtime).
    pub queued_jobs: u64,
    /// Copies of sent messages removed from the outbox (local runtime).
    pub outbox_copies: u64,
    /// Vouchers deleted (issued to the customer or for their carts).
    #[serde(default)]
    pub vouchers: u64,
}

impl Erasure {
    pub fn total(&self) -> u64 {
        let Erasure {
            profiles,
            carts,
            timeline_entries,
            messages,
            messages_cancelled,
            send_ledgers,
            facts_anonymized,
            timers,
            queued_jobs,
            outbox_copies,
            vouchers,
        } = *self;
        profiles
            + carts
            + timeline_entries
            + messages
            + messages_cancelled
            + send_ledgers
            + facts_anonymized
            + timers
            + queued_jobs
            + outbox_copies
            + vouchers
    }
}

/// Identifiers replaced by pseudonyms: stable within one erasure, unlinkable
/// after it (the salt is random and never stored).
pub struct Pseudonyms {
    salt: [u8; 32],
}

impl Pseudonyms {
    /// Pseudonyms from a fresh random salt.
    pub fn random() -> Self {
        Pseudonyms::with_salt(random_salt())
    }

    /// Pseudonyms from a given salt (tests).
    pub fn with_salt(salt: [u8; 32]) -> Self {
        Pseudonyms { salt }
    }

    fn of(&self, kind: &str, id: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(self.salt);
        hash.update(kind.as_bytes());
        hash.update([0x1f]);
        hash.update(id.as_bytes());
        format!("erased-{}", &hex::encode(hash.finalize())[..24])
    }

    pub fn cart(&self, id: &CartId) -> CartId {
        CartId::from(self.of("cart", id))
    }

    pub fn key(&self, key: &CustomerKey) -> CustomerKey {
        match key {
            CustomerKey::Customer(id) => CustomerKey::Customer(self.of("customer", id).into()),
            CustomerKey::Guest(cart) => CustomerKey::Guest(self.cart(cart)),
        }
    }

    pub fn message(&self, id: &MessageId) -> MessageId {
        MessageId::from(self.of("message", id))
    }

    fn order(&self, id: &str) -> String {
        self.of("order", id)
    }

    /// The anonymous copy of a message an erasure cancels: no customer, no
    /// cart, no engagement; its id stays (a queued job claims by it).
    pub fn cancelled_message(&self, message: &MessageRecord, now: DateTime<Utc>) -> MessageRecord {
        MessageRecord {
            cart_id: self.cart(&message.cart_id),
            customer_key: self.key(&message.customer_key),
            status: MessageStatus::Cancelled { reason: ERASED_REASON.into(), at: now },
            engagement: Default::default(),
            ..message.clone()
        }
    }
}

/// 32 bytes from the standard library's randomly keyed hasher (seeded from
/// the operating system per process and thread) and the time: unpredictable
/// enough for a salt that is used once and dropped, without a new dependency.
fn random_salt() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    let mut hash = Sha256::new();
    for _ in 0..4 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
        );
        hash.update(hasher.finish().to_le_bytes());
    }
    hash.finalize().into()
}

/// The customer's facts among `facts`: those naming one of `keys` or
/// `carts`, and the returns of their orders.
pub fn facts_of<'a>(
    facts: impl IntoIterator<Item = &'a Fact>,
    keys: &BTreeSet<CustomerKey>,
    carts: &BTreeSet<CartId>,
) -> Vec<Fact> {
    let facts: Vec<&Fact> = facts.into_iter().collect();
    let names = |key: Option<&CustomerKey>, cart: Option<&CartId>| {
        key.is_some_and(|k| keys.contains(k)) || cart.is_some_and(|c| carts.contains(c))
    };
    let mine = |fact: &Fact| match &fact.kind {
        FactKind::Entered { cart_id, customer_key, .. } | FactKind::Message { cart_id, customer_key, .. } => {
            names(Some(customer_key), Some(cart_id))
        }
        FactKind::Order { cart_id, customer_key, .. } => names(customer_key.as_ref(), cart_id.as_ref()),
        FactKind::Return { customer_key, .. } => names(Some(customer_key), None),
        FactKind::Answer { cart_id, .. } | FactKind::VoucherAbuse { cart_id, .. } => names(None, Some(cart_id)),
        FactKind::VoucherIssued { cart_id, customer_key, .. }
        | FactKind::VoucherRedeemed { cart_id, customer_key, .. } => names(Some(customer_key), Some(cart_id)),
    };
    let orders: BTreeSet<&str> = facts
        .iter()
        .filter(|f| mine(f))
        .filter_map(|f| match &f.kind {
            FactKind::Order { order_id, .. } => Some(order_id.as_str()),
            _ => None,
        })
        .collect();
    facts
        .into_iter()
        .filter(|f| {
            mine(f) || matches!(&f.kind, FactKind::Return { order_id, .. } if orders.contains(order_id.as_str()))
        })
        .cloned()
        .collect()
}

/// The fact with every identifier replaced by its pseudonym, and its id
/// made anew from them. Times, amounts, campaigns, steps, channels and
/// outcomes stay.
pub fn anonymize(fact: &Fact, pseudonyms: &Pseudonyms) -> Fact {
    let kind = match fact.kind.clone() {
        FactKind::Entered { campaign_id, cart_id, customer_key, group, variant, segment, value, currency } => {
            FactKind::Entered {
                campaign_id,
                cart_id: pseudonyms.cart(&cart_id),
                customer_key: pseudonyms.key(&customer_key),
                group,
                variant,
                segment,
                value,
                currency,
            }
        }
        FactKind::Message {
            campaign_id,
            cart_id,
            customer_key,
            message_id,
            group,
            variant,
            step,
            channel,
            outcome,
        } => FactKind::Message {
            campaign_id,
            cart_id: pseudonyms.cart(&cart_id),
            customer_key: pseudonyms.key(&customer_key),
            message_id: pseudonyms.message(&message_id),
            group,
            variant,
            step,
            channel,
            outcome,
        },
        FactKind::Order { order_id, cart_id, customer_key, value, currency, coupon } => FactKind::Order {
            order_id: pseudonyms.order(&order_id),
            cart_id: cart_id.map(|c| pseudonyms.cart(&c)),
            customer_key: customer_key.map(|k| pseudonyms.key(&k)),
            value,
            currency,
            coupon,
        },
        FactKind::Return { return_id, order_id, customer_key, value, currency } => FactKind::Return {
            return_id: pseudonyms.of("return", &return_id),
            order_id: pseudonyms.order(&order_id),
            customer_key: pseudonyms.key(&customer_key),
            value,
            currency,
        },
        FactKind::Answer { campaign_id, cart_id, message_id, reason } => FactKind::Answer {
            campaign_id,
            cart_id: pseudonyms.cart(&cart_id),
            message_id: pseudonyms.message(&message_id),
            reason,
        },
        FactKind::VoucherIssued { campaign_id, cart_id, customer_key, variant, tier } => FactKind::VoucherIssued {
            campaign_id,
            cart_id: pseudonyms.cart(&cart_id),
            customer_key: pseudonyms.key(&customer_key),
            variant,
            tier,
        },
        FactKind::VoucherRedeemed { order_id, campaign_id, cart_id, customer_key, tier, discount, currency } => {
            FactKind::VoucherRedeemed {
                order_id: pseudonyms.order(&order_id),
                campaign_id,
                cart_id: pseudonyms.cart(&cart_id),
                customer_key: pseudonyms.key(&customer_key),
                tier,
                discount,
                currency,
            }
        }
        FactKind::VoucherAbuse { order_id, campaign_id, cart_id, refusal } => FactKind::VoucherAbuse {
            order_id: pseudonyms.order(&order_id),
            campaign_id,
            cart_id: pseudonyms.cart(&cart_id),
            refusal,
        },
    };
    Fact::new(fact.at, kind)
}

/// The export's JSON: everything held, as stored, under stable names.
pub fn export_json(data: &CustomerData) -> serde_json::Value {
    serde_json::to_value(data).unwrap_or_default()
}

/// The erasure's JSON answer.
pub fn erasure_json(customer_id: &CustomerId, erasure: &Erasure) -> serde_json::Value {
    serde_json::json!({
        "customer_id": customer_id,
        "erased": erasure,
        "audiences": AUDIENCES_NONE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::assign::Group;
    use crate::measure::facts::SegmentLabel;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn entered(cart: &str, key: CustomerKey) -> Fact {
        Fact::new(
            at("2026-11-20T10:00:00Z"),
            FactKind::Entered {
                campaign_id: "default".into(),
                cart_id: cart.into(),
                customer_key: key,
                group: Group::Treated,
                variant: None,
                segment: SegmentLabel::Other,
                value: Some("49.90".parse().unwrap()),
                currency: Some("EUR".into()),
            },
        )
    }

    fn order(id: &str, cart: &str, key: CustomerKey) -> Fact {
        Fact::new(
            at("2026-11-21T10:00:00Z"),
            FactKind::Order {
                order_id: id.into(),
                cart_id: Some(cart.into()),
                customer_key: Some(key),
                value: Some("49.90".parse().unwrap()),
                currency: Some("EUR".into()),
                coupon: None,
            },
        )
    }

    fn ret(id: &str, order: &str, key: CustomerKey) -> Fact {
        Fact::new(
            at("2026-11-22T10:00:00Z"),
            FactKind::Return {
                return_id: id.into(),
                order_id: order.into(),
                customer_key: key,
                value: "10".parse().unwrap(),
                currency: "EUR".into(),
            },
        )
    }

    /// GIVEN facts of a customer, of their guest cart and of someone else
    /// WHEN the customer's are picked and anonymized THEN the others stay out,
    /// no identifier survives, and the facts still relate to each other.
    #[test]
    fn given_a_customers_facts_when_anonymized_then_no_identifier_survives_and_the_links_stay() {
        let me = CustomerKey::Customer("u1".into());
        let facts = vec![
            entered("c1", me.clone()),
            entered("g1", CustomerKey::Guest("g1".into())),
            order("o1", "c1", me.clone()),
            // A return keyed differently still follows its order.
            ret("r1", "o1", CustomerKey::Customer("other-account".into())),
            entered("c9", CustomerKey::Customer("u9".into())),
        ];
        let keys = BTreeSet::from([me.clone(), CustomerKey::Guest("g1".into())]);
        let carts = BTreeSet::from([CartId::from("c1"), CartId::from("g1")]);
        let mine = facts_of(&facts, &keys, &carts);
        assert_eq!(mine.len(), 4, "{mine:?}");

        let pseudonyms = Pseudonyms::with_salt([7; 32]);
        let anonymous: Vec<Fact> = mine.iter().map(|f| anonymize(f, &pseudonyms)).collect();
        let text = serde_json::to_string(&anonymous).unwrap();
        for identifier in ["u1", "c1", "g1", "o1", "r1", "other-account"] {
            assert!(!text.contains(&format!("\"{identifier}\"")), "{identifier} survived: {text}");
            assert!(!text.contains(&format!("#{identifier}")), "{identifier} survived in an id: {text}");
        }
        let (FactKind::Entered { cart_id: entered_cart, .. }, FactKind::Order { cart_id: order_cart, order_id, .. }) =
            (&anonymous[0].kind, &anonymous[2].kind)
        else {
            panic!("kinds changed: {anonymous:?}");
        };
        assert_eq!(Some(entered_cart), order_cart.as_ref(), "the order still belongs to the cart that entered");
        assert!(matches!(&anonymous[3].kind, FactKind::Return { order_id: r, .. } if r == order_id));
        assert_eq!(facts_of(&anonymous, &keys, &carts), Vec::<Fact>::new(), "a second erasure finds nothing");
    }

    #[test]
    fn given_two_erasures_when_the_same_id_is_pseudonymized_then_the_pseudonyms_differ() {
        let (a, b) = (Pseudonyms::random(), Pseudonyms::random());
        assert_ne!(a.cart(&"c1".into()), b.cart(&"c1".into()));
        assert_eq!(a.cart(&"c1".into()), a.cart(&"c1".into()));
    }
}
