//! The contract of [`cartback_core::ports::CustomerDataStore`]: export and
//! erasure of one customer's data, run against every adapter set through
//! [`crate::contract_suite!`] (the checks are re-exported by
//! [`crate::contract`]). [`seed_customer`] also serves the suites that list
//! what a runtime's storage holds after an erasure.

use std::collections::BTreeSet;

use cartback_core::customer::Customer;
use cartback_core::customer_data::{Erasure, ERASED_REASON};
use cartback_core::event::{CustomerPatch, Event, EventType, PushPlatform, PushToken};
use cartback_core::ids::{CartId, CustomerId, CustomerKey, MessageId};
use cartback_core::measure::assign::Group;
use cartback_core::measure::facts::{Fact, FactKind, MessageOutcome, SegmentLabel};
use cartback_core::message::{Channel, MessageRecord, MessageStatus};
use cartback_core::ports::{
    CartRecord, Claim, CommitOutcome, CreateOutcome, EventCommit, ReservedSend, SaveOutcome, SendLedger, TimelineEntry,
    TimelineKind,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;

use crate::contract::{rich_event, t, unique, Adapters};
use crate::voucher_contract::voucher_for;
use cartback_core::voucher::{IssueOutcome, Voucher, VoucherCode, VoucherOwner};

/// What [`seed_customer`] stored: one customer's data, and another
/// customer's that an erasure must leave alone.
pub struct Seeded {
    pub customer_id: CustomerId,
    /// A cart of the known customer.
    pub known_cart: CartId,
    /// A guest cart with a message, identified as the customer later.
    pub guest_cart: CartId,
    /// Sent messages (deleted by an erasure).
    pub sent: Vec<MessageId>,
    /// A message still queued (cancelled by an erasure).
    pub queued: MessageId,
    pub order_id: String,
    /// The customer's email address, phone, push token and web push endpoint.
    pub contacts: Vec<String>,
    pub other_customer: CustomerId,
    pub other_cart: CartId,
    pub other_message: MessageId,
    /// The customer's voucher (known cart) and the guest cart's (bound to
    /// the guest's address).
    pub vouchers: Vec<VoucherCode>,
    /// The other customer's voucher.
    pub other_voucher: VoucherCode,
}

impl Seeded {
    /// Every identifier of the customer nothing may hold after an erasure.
    pub fn identifiers(&self) -> Vec<String> {
        let mut ids = self.contacts.clone();
        ids.extend([
            self.customer_id.to_string(),
            self.known_cart.to_string(),
            self.guest_cart.to_string(),
            self.order_id.clone(),
        ]);
        ids
    }
}

fn contact_patch(email: &str, phone: &str, token: &str, endpoint: &str) -> CustomerPatch {
    CustomerPatch {
        email: Some(email.into()),
        phone: Some(phone.into()),
        first_name: Some("Ana".into()),
        push_tokens: Some(vec![PushToken { platform: PushPlatform::Fcm, token: token.into() }]),
        web_push_subscription: Some(json!({"endpoint": endpoint, "keys": {"p256dh": "k", "auth": "a"}}).into()),
        ..Default::default()
    }
}

fn event(cart: &CartId, customer: Option<&CustomerId>, at: DateTime<Utc>, patch: CustomerPatch) -> Event {
    let mut event = rich_event(&unique("e"), EventType::AddToCart, cart, customer.map(|c| c.as_str()), at);
    event.customer = Some(patch);
    event
}

fn line(at: DateTime<Utc>, code: &str) -> TimelineEntry {
    TimelineEntry { at, kind: TimelineKind::Event, code: code.into(), message: code.into(), details: json!(null) }
}

fn sent(cart: &CartId, key: CustomerKey, step: u32, at: DateTime<Utc>) -> MessageRecord {
    MessageRecord {
        message_id: unique("m").into(),
        cart_id: cart.clone(),
        customer_key: key,
        campaign_id: "default".into(),
        step,
        channel: Channel::Email,
        decided_at: at,
        status: MessageStatus::Sent { provider_message_id: unique("provider"), at },
        engagement: Default::default(),
        variant: None,
    }
}

async fn commit(a: &Adapters, cart: CartRecord, customer: Option<(Customer, u64)>, entry: TimelineEntry) {
    let commit = EventCommit {
        event_id: unique("e").into(),
        received_at: entry.at,
        cart: Some(cart),
        customer,
        timeline: Some(entry),
    };
    assert_eq!(a.state.commit_event(commit).await.unwrap(), CommitOutcome::Applied);
}

async fn create(a: &Adapters, message: &MessageRecord) {
    assert_eq!(a.state.create_message(message).await.unwrap(), CreateOutcome::Created);
}

async fn reserve(a: &Adapters, key: CustomerKey, message: &MessageRecord) {
    let mut ledger = SendLedger::new(key);
    ledger.reserve(ReservedSend {
        message_id: message.message_id.clone(),
        cart_id: message.cart_id.clone(),
        campaign_id: message.campaign_id.clone(),
        step: message.step,
        channel: message.channel,
        at: message.decided_at,
    });
    assert_eq!(a.state.save_send_ledger(&ledger).await.unwrap(), SaveOutcome::Saved);
}

async fn record(a: &Adapters, at: DateTime<Utc>, kind: FactKind) {
    assert_eq!(a.state.record_fact(&Fact::new(at, kind)).await.unwrap(), CreateOutcome::Created);
}

fn entered(cart: &CartId, key: CustomerKey) -> FactKind {
    FactKind::Entered {
        campaign_id: "default".into(),
        cart_id: cart.clone(),
        customer_key: key,
        group: Group::Treated,
        variant: None,
        segment: SegmentLabel::Other,
        value: Some("30.00".parse().unwrap()),
        currency: Some("EUR".into()),
    }
}

/// Stores a customer with a profile, a cart, a guest cart identified later
/// (with a message sent while it was a guest), two sent messages and one
/// queued, send ledgers, facts (entered, also of a cart long gone, order, a
/// return, a message outcome, a preference-page answer); and another
/// customer's cart, message and fact.
pub async fn seed_customer(a: &Adapters) -> Seeded {
    let customer_id: CustomerId = unique("cust").into();
    let tag = unique("x");
    let digits: String = tag.bytes().rev().filter(u8::is_ascii_digit).take(8).map(char::from).collect();
    let contacts = vec![
        format!("ana.{tag}@example.com"),
        format!("+3361{digits:0>8}"),
        format!("fcm-{tag}"),
        format!("https://push.example/sub/{tag}"),
    ];
    let patch = contact_patch(&contacts[0], &contacts[1], &contacts[2], &contacts[3]);

    let known_cart: CartId = unique("cart").into();
    let first = event(&known_cart, Some(&customer_id), t(0), patch.clone());
    let mut customer = Customer::new(&customer_id);
    assert!(customer.apply(&first));
    let mut cart = CartRecord::new(known_cart.clone(), t(0));
    cart.insert_event(first);
    commit(a, cart, Some((customer, 0)), line(t(0), "add_to_cart")).await;

    let guest_cart: CartId = unique("cart").into();
    let mut guest = CartRecord::new(guest_cart.clone(), t(10));
    guest.insert_event(event(&guest_cart, None, t(10), patch.clone()));
    commit(a, guest, None, line(t(10), "add_to_cart")).await;
    let guest_message = sent(&guest_cart, CustomerKey::Guest(guest_cart.clone()), 0, t(15));
    create(a, &guest_message).await;
    reserve(a, CustomerKey::Guest(guest_cart.clone()), &guest_message).await;
    let mut identified = a.state.get_cart(&guest_cart).await.unwrap().expect("the guest cart");
    identified.insert_event(event(&guest_cart, Some(&customer_id), t(20), CustomerPatch::default()));
    commit(a, identified, None, line(t(20), "identify")).await;

    let key = CustomerKey::Customer(customer_id.clone());
    let known_message = sent(&known_cart, key.clone(), 0, t(25));
    create(a, &known_message).await;
    reserve(a, key.clone(), &known_message).await;
    let queued = MessageRecord {
        message_id: unique("m").into(),
        step: 1,
        status: MessageStatus::Queued,
        ..sent(&known_cart, key.clone(), 1, t(26))
    };
    create(a, &queued).await;

    let order_id = unique("order");
    record(a, t(30), entered(&known_cart, key.clone())).await;
    // Facts outlive carts: one of a cart long gone names the customer too.
    let expired_cart: CartId = unique("cart").into();
    record(a, t(0) - Duration::days(OLD_FACT_DAYS), entered(&expired_cart, key.clone())).await;
    let order = FactKind::Order {
        order_id: order_id.clone(),
        cart_id: Some(known_cart.clone()),
        customer_key: Some(key.clone()),
        value: Some("30.00".parse().unwrap()),
        currency: Some("EUR".into()),
        coupon: None,
    };
    record(a, t(31), order).await;
    let refund = FactKind::Return {
        return_id: unique("e"),
        order_id: order_id.clone(),
        customer_key: key.clone(),
        value: "10.00".parse().unwrap(),
        currency: "EUR".into(),
    };
    record(a, t(32), refund).await;
    let outcome = FactKind::Message {
        campaign_id: "default".into(),
        cart_id: guest_cart.clone(),
        customer_key: CustomerKey::Guest(guest_cart.clone()),
        message_id: guest_message.message_id.clone(),
        group: Group::Treated,
        variant: None,
        step: 0,
        channel: Channel::Email,
        outcome: MessageOutcome::Sent,
    };
    record(a, t(33), outcome).await;
    let answer = FactKind::Answer {
        campaign_id: "default".into(),
        cart_id: guest_cart.clone(),
        message_id: guest_message.message_id.clone(),
        reason: cartback_core::consent::AnswerReason::AlreadyBought,
    };
    record(a, t(34), answer).await;

    let other_customer: CustomerId = unique("cust").into();
    let other_cart: CartId = unique("cart").into();
    let other_patch = contact_patch("bo@example.org", "+33700000000", "fcm-bo", "https://push.example/bo");
    let other_event = event(&other_cart, Some(&other_customer), t(0), other_patch);
    let mut other = Customer::new(&other_customer);
    assert!(other.apply(&other_event));
    let mut cart = CartRecord::new(other_cart.clone(), t(0));
    cart.insert_event(other_event);
    commit(a, cart, Some((other, 0)), line(t(0), "add_to_cart")).await;
    let other_key = CustomerKey::Customer(other_customer.clone());
    let other_message = sent(&other_cart, other_key.clone(), 0, t(25));
    create(a, &other_message).await;
    record(a, t(30), entered(&other_cart, other_key)).await;

    let guest_email = cartback_core::contact::Email::parse(&contacts[0]).unwrap();
    let mut vouchers = Vec::new();
    for (cart, owner) in [
        (&known_cart, VoucherOwner::customer(&customer_id)),
        (&guest_cart, VoucherOwner::guest_email(&guest_email)),
        (&other_cart, VoucherOwner::customer(&other_customer)),
    ] {
        let voucher = Voucher { cart_id: cart.clone(), ..voucher_for(&owner, t(40)) };
        assert_eq!(a.state.issue_voucher(&voucher).await.unwrap(), IssueOutcome::Issued);
        vouchers.push(voucher.code);
    }
    let other_voucher = vouchers.pop().unwrap();

    Seeded {
        customer_id,
        known_cart,
        guest_cart,
        sent: vec![guest_message.message_id, known_message.message_id],
        queued: queued.message_id,
        order_id,
        contacts,
        other_customer,
        other_cart,
        other_message: other_message.message_id,
        vouchers,
        other_voucher,
    }
}

/// How old the oldest seeded fact is: older than any cart is kept.
const OLD_FACT_DAYS: i64 = 200;

/// The seeded days but the oldest fact's (whose erasure the table scan
/// checks): reading 200 days of fact partitions costs minutes on moto.
fn days() -> (NaiveDate, NaiveDate) {
    (t(0).date_naive() - Duration::days(1), Utc::now().date_naive())
}

/// The order value minus returns, and the number of facts, over the facts
/// of the seeded days: what a report sums.
async fn fact_totals(a: &Adapters) -> (usize, cartback_core::Decimal) {
    let (from, to) = days();
    let facts = a.state.facts(from, to).await.unwrap();
    let net = facts.iter().fold(cartback_core::Decimal::ZERO, |sum, fact| match &fact.kind {
        FactKind::Order { value, .. } => sum + value.unwrap_or_default(),
        FactKind::Return { value, .. } => sum - *value,
        _ => sum,
    });
    (facts.len(), net)
}

/// GIVEN a customer with a profile, a cart, a guest cart identified later,
/// messages, ledgers and facts, and another customer WHEN exported THEN the
/// export holds all of the customer's data and none of the other's.
pub async fn customer_export_holds_everything(a: &Adapters) {
    let seeded = seed_customer(a).await;
    let data = a.state.customer_data(&seeded.customer_id).await.unwrap();

    let profile = data.customer.as_ref().expect("the profile");
    assert_eq!(profile.profile.email.as_ref().map(|e| e.expose()), Some(seeded.contacts[0].as_str()));
    let carts: BTreeSet<&CartId> = data.carts.iter().map(|c| &c.cart.cart_id).collect();
    assert_eq!(carts, BTreeSet::from([&seeded.known_cart, &seeded.guest_cart]));
    for cart in &data.carts {
        assert!(!cart.timeline.is_empty(), "cart {} comes with its timeline", cart.cart.cart_id);
        assert!(!cart.cart.events.is_empty(), "cart {} comes with its events", cart.cart.cart_id);
    }
    let messages: BTreeSet<&MessageId> = data.messages.iter().map(|m| &m.message_id).collect();
    let expected: BTreeSet<&MessageId> = seeded.sent.iter().chain([&seeded.queued]).collect();
    assert_eq!(messages, expected, "messages of the customer and of the guest cart");
    assert_eq!(data.send_ledgers.len(), 2, "the customer's ledger and the guest cart's");
    assert_eq!(
        data.facts.len(),
        6,
        "entered (now and long ago), order, return, message outcome, answer: {:?}",
        data.facts
    );
    let vouchers: BTreeSet<&VoucherCode> = data.vouchers.iter().map(|v| &v.code).collect();
    assert_eq!(vouchers, seeded.vouchers.iter().collect(), "the customer's voucher and the guest cart's");
    let text = serde_json::to_string(&data).unwrap();
    for other in [seeded.other_customer.as_str(), seeded.other_cart.as_str(), seeded.other_message.as_str()] {
        assert!(!text.contains(other), "the other customer's {other} is not exported");
    }
    assert!(a.state.customer_data(&unique("nobody").into()).await.unwrap().is_empty());
}

/// GIVEN a seeded customer WHEN erased THEN every item type is counted,
/// nothing of theirs can be read back, the queued message is closed to
/// senders, the facts keep their count and amounts without identifiers,
/// the other customer is untouched; and erasing again answers zeros.
pub async fn customer_erasure_is_complete_and_idempotent(a: &Adapters) {
    let seeded = seed_customer(a).await;
    let before = fact_totals(a).await;
    let now = t(3600);

    let erasure = a.state.erase_customer(&seeded.customer_id, now).await.unwrap();

    let expected = Erasure {
        profiles: 1,
        carts: 2,
        timeline_entries: 3,
        messages: 2,
        messages_cancelled: 1,
        send_ledgers: 2,
        facts_anonymized: 6,
        vouchers: 2,
        ..Erasure::default()
    };
    assert_eq!(erasure, expected);
    for code in &seeded.vouchers {
        assert_eq!(a.state.voucher(code).await.unwrap(), None, "voucher {code:?}");
    }
    for cart in [&seeded.known_cart, &seeded.guest_cart] {
        assert_eq!(a.state.cart_voucher(cart).await.unwrap(), None, "the voucher of {cart}");
    }
    assert!(a.state.voucher(&seeded.other_voucher).await.unwrap().is_some(), "the other customer's voucher stays");
    assert_eq!(a.state.get_customer(&seeded.customer_id).await.unwrap(), None);
    for cart in [&seeded.known_cart, &seeded.guest_cart] {
        assert_eq!(a.state.get_cart(cart).await.unwrap(), None, "cart {cart}");
        assert_eq!(a.state.timeline(cart).await.unwrap(), [], "timeline of {cart}");
    }
    for message in &seeded.sent {
        assert_eq!(a.state.get_message(message).await.unwrap(), None, "message {message}");
    }
    let cancelled = a.state.get_message(&seeded.queued).await.unwrap().expect("the cancelled message");
    assert!(matches!(&cancelled.status, MessageStatus::Cancelled { reason, .. } if reason == ERASED_REASON));
    assert_ne!(cancelled.customer_key, CustomerKey::Customer(seeded.customer_id.clone()));
    assert_ne!(cancelled.cart_id, seeded.known_cart);
    assert_eq!(a.state.claim_message(&seeded.queued, now, now + Duration::minutes(5)).await.unwrap(), Claim::Closed);
    let key = CustomerKey::Customer(seeded.customer_id.clone());
    assert_eq!(a.state.send_ledger(&key).await.unwrap(), SendLedger::new(key.clone()));
    assert_eq!(a.state.customer_messages(&key, t(-3600)).await.unwrap(), []);

    assert_eq!(fact_totals(a).await, before, "the report's facts keep their number and amounts");
    let (from, to) = days();
    let facts = serde_json::to_string(&a.state.facts(from, to).await.unwrap()).unwrap();
    for identifier in seeded.identifiers() {
        assert!(!facts.contains(&identifier), "{identifier} survived in the facts");
    }
    assert!(facts.contains(seeded.other_cart.as_str()), "the other customer's facts are untouched");

    assert!(a.state.get_customer(&seeded.other_customer).await.unwrap().is_some());
    assert!(a.state.get_cart(&seeded.other_cart).await.unwrap().is_some());
    assert!(a.state.get_message(&seeded.other_message).await.unwrap().is_some());

    assert_eq!(a.state.erase_customer(&seeded.customer_id, now).await.unwrap(), Erasure::default());
    assert!(a.state.customer_data(&seeded.customer_id).await.unwrap().is_empty());
}
