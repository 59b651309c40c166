//! The replay: one customer's carts through the engine on a virtual clock,
//! as live traffic went. Events are applied at their `occurred_at`; each edit
//! arms the cart's timer exactly as ingest does ([`timer_to_arm`]); a timer
//! fires at its due time, is dropped when a later one superseded it
//! ([`timer_superseded`]), and otherwise runs the checker's pass: entry, then
//! the engine until it waits or stops, each send, hold-out and skip moving
//! the cart's progress on and joining the customer's message history, which
//! the next decision (on any of their carts) counts for caps and cooldowns.
//! Shadow campaigns run beside it as in the checker ([`shadow_pass`]): their
//! waits re-arm the cart's timer as they did live. Each check sees what the
//! checker would load: the messages of the cart's customer key (and its
//! guest key), the vouchers of its owner, and live traffic's opens and
//! clicks as they stood then. Nothing is rendered, queued or stored.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rust_decimal::Decimal;
use serde::Serialize;

use super::history::CustomerCarts;
use crate::campaign::Campaign;
use crate::cart::Cart;
use crate::engine::{self, Decision, Input, Progress};
use crate::ids::{CartId, CustomerKey, MessageId};
use crate::measure::Group;
use crate::message::{Channel, MessageRecord, MessageStatus};
use crate::reason::ReasonCode;
use crate::service::checker::{advance, shadow_pass, timer_superseded, ShadowCheck};
use crate::service::first_check_delay;
use crate::service::ingest::timer_to_arm;
use crate::voucher::{Voucher, VoucherChoice, VoucherCode, VoucherOwner, VoucherStatus, VoucherTerms};

/// What runs in a replay.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The stored campaigns, with the one under test in place (a draft, or
    /// the live campaign itself); shadow ones run as shadows.
    pub campaigns: &'a [Campaign],
    /// Channels the runtime delivers.
    pub channels: &'a [Channel],
    /// Timers due after this are not replayed: live traffic had not got there.
    pub until: DateTime<Utc>,
    /// Carts whose first event is earlier are not replayed: what live
    /// traffic sent them (and the vouchers it issued) is seeded instead, for
    /// the caps and cooldowns it sets off.
    pub from: Option<DateTime<Utc>>,
}

impl Setup<'_> {
    /// Whether `record` is replayed (else it is live history).
    pub fn replays(&self, record: &crate::ports::CartRecord) -> bool {
        let first = record.events.first().map(|e| e.occurred_at);
        self.from.is_none_or(|from| first.is_some_and(|first| first >= from))
    }
}

/// What live traffic did before the replay starts that a customer's checks
/// must see: messages and vouchers of carts not replayed (older than
/// `--from`, or gone from the store).
#[derive(Debug, Clone, Default)]
pub struct Seeds {
    pub messages: Vec<MessageRecord>,
    pub vouchers: Vec<Voucher>,
}

/// What one decision did, as the backtest counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Sent,
    HeldOut,
    /// Waiting for quiet hours to end.
    Deferred,
    Waited,
    /// Too late to send (`max_send_delay`).
    Skipped,
    Stopped,
}

/// A voucher the replay issued.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayedVoucher {
    pub terms: VoucherTerms,
    /// What it takes off the cart as it stood (none for free shipping).
    pub face_value: Option<Decimal>,
}

/// One decision of the replay, with its reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Traced {
    pub at: DateTime<Utc>,
    pub outcome: Outcome,
    /// 0-based: the step sent, held out or skipped; for a wait or a stop,
    /// the step the cart was at.
    pub step: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    pub code: ReasonCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voucher: Option<ReplayedVoucher>,
}

/// Everything the replay decided for one cart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CartTrace {
    pub cart_id: CartId,
    /// The campaign the cart entered, and in which group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entered: Option<(String, Group)>,
    pub decisions: Vec<Traced>,
}

impl CartTrace {
    /// The steps and channels sent (held-out carts get none), in order.
    pub fn sends(&self) -> impl Iterator<Item = (u32, Channel)> + '_ {
        self.decisions.iter().filter(|d| d.outcome == Outcome::Sent).filter_map(|d| Some((d.step, d.channel?)))
    }

    /// Whether the cart entered `campaign_id`.
    pub fn entered(&self, campaign_id: &str) -> bool {
        self.entered.as_ref().is_some_and(|(id, _)| id == campaign_id)
    }
}

/// A cart during the replay.
struct Replayed<'a> {
    events: &'a [crate::event::Event],
    /// How many of `events` have happened.
    seen: usize,
    armed: Option<DateTime<Utc>>,
    progress: Progress,
    /// Each shadow campaign's progress on the cart.
    shadows: HashMap<String, Progress>,
    trace: CartTrace,
}

/// Replays one customer's carts (a guest's: those of one voucher owner);
/// the traces are in the order of `carts` (empty for carts not replayed).
/// Where live traffic holds a message for the same cart, step and channel,
/// the replayed one carries its opens and clicks (a customer who clicked
/// the live reminder is taken to click the same step's reminder in the
/// replay), each check seeing those that had happened by then, so the
/// engine's engagement stop sees what it saw live.
pub fn replay_customer(
    setup: &Setup,
    customer: &CustomerCarts,
    live: &HashMap<MessageId, MessageRecord>,
    seeds: &Seeds,
) -> Vec<CartTrace> {
    let first_delay = first_check_delay(setup.campaigns);
    let mut carts: Vec<Replayed> = customer
        .carts
        .iter()
        .map(|record| Replayed {
            events: if setup.replays(record) { &record.events } else { &[] },
            seen: 0,
            armed: None,
            progress: Progress::default(),
            shadows: HashMap::new(),
            trace: CartTrace { cart_id: record.cart_id.clone(), entered: None, decisions: Vec::new() },
        })
        .collect();
    // Every event of every cart, in time order (ties: cart order, then the log's).
    let mut events: Vec<(DateTime<Utc>, usize)> = carts
        .iter()
        .enumerate()
        .flat_map(|(index, cart)| cart.events.iter().map(move |e| (e.occurred_at, index)))
        .collect();
    events.sort_by_key(|(at, index)| (*at, *index));
    let mut timers = Timers::default();
    let mut history: HashMap<CustomerKey, Vec<MessageRecord>> = HashMap::new();
    for message in &seeds.messages {
        history.entry(message.customer_key.clone()).or_default().push(message.clone());
    }
    let mut pass = Pass { setup, customer, live, history, vouchers: seeds.vouchers.clone() };
    let mut next_event = 0;
    loop {
        let event_at = events.get(next_event).map(|(at, _)| *at);
        let timer_at = timers.peek().map(|Reverse((at, _))| *at);
        match (event_at, timer_at) {
            // An event happens before a timer due at the same moment fires.
            (Some(at), timer) if timer.is_none_or(|t| at <= t) => {
                let index = events[next_event].1;
                next_event += 1;
                let cart = &mut carts[index];
                cart.seen += 1;
                let folded = Cart::from_events(&cart.trace.cart_id, &cart.events[..cart.seen]);
                if let Some(due) = timer_to_arm(&folded, cart.armed, first_delay, at) {
                    cart.armed = Some(due);
                    timers.arm(due, index);
                }
            }
            (_, Some(at)) if at <= setup.until => {
                let Some(Reverse((due, index))) = timers.pop() else { break };
                let cart = &mut carts[index];
                if timer_superseded(cart.armed, due, due) {
                    continue;
                }
                cart.armed = pass.check(cart, due);
                if let Some(until) = cart.armed {
                    timers.arm(until, index);
                }
            }
            _ => break,
        }
    }
    carts.into_iter().map(|c| c.trace).collect()
}

/// Pending timers, earliest first; arming the same cart and time twice is
/// one timer, as with the runtimes' schedulers.
#[derive(Default)]
struct Timers {
    due: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
    pending: HashSet<(DateTime<Utc>, usize)>,
}

impl Timers {
    fn arm(&mut self, at: DateTime<Utc>, cart: usize) {
        if self.pending.insert((at, cart)) {
            self.due.push(Reverse((at, cart)));
        }
    }

    fn peek(&self) -> Option<&Reverse<(DateTime<Utc>, usize)>> {
        self.due.peek()
    }

    fn pop(&mut self) -> Option<Reverse<(DateTime<Utc>, usize)>> {
        let popped = self.due.pop()?;
        self.pending.remove(&popped.0);
        Some(popped)
    }
}

/// What one customer's checks share: their message history and vouchers
/// (each check sees its own key's and owner's, as the checker loads them).
struct Pass<'a> {
    setup: &'a Setup<'a>,
    customer: &'a CustomerCarts,
    live: &'a HashMap<MessageId, MessageRecord>,
    /// By customer key: a guest's carts share their owner's vouchers, not their message caps.
    history: HashMap<CustomerKey, Vec<MessageRecord>>,
    vouchers: Vec<Voucher>,
}

impl Pass<'_> {
    /// The checker's pass over one cart at `now` (see `service::checker`):
    /// returns when the cart's timer is due next, if it waits.
    fn check(&mut self, replayed: &mut Replayed, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cart = Cart::from_events(&replayed.trace.cart_id, &replayed.events[..replayed.seen]);
        let customer = self.customer.customer_at(now).filter(|_| cart.customer_id.is_some());
        let key = CustomerKey::for_cart(cart.customer_id.as_ref(), &cart.cart_id);
        let contact = customer.as_ref().map_or(&cart.contact, |c| &c.profile);
        let owner = VoucherOwner::for_cart(&key, contact.email.as_ref(), &cart.cart_id);
        let progress = &mut replayed.progress;
        let trace = &mut replayed.trace;
        progress.forget_skips_before(cart.last_activity_at);
        let campaigns = self.setup.campaigns;
        let channels = self.setup.channels;
        if progress.group.is_none() {
            let entry = engine::entry(&Input {
                cart: &cart,
                progress,
                customer: customer.as_ref(),
                campaigns,
                history: &self.history_for(&cart, &key, now),
                channels,
                vouchers: &self.vouchers_for(&cart, &owner, now),
                now,
            });
            if let Some((campaign_id, arm)) = entry {
                progress.begin(&campaign_id, arm.group, arm.variant_name());
                trace.entered = Some((campaign_id, arm.group));
            }
        }
        let wait = loop {
            let decision = engine::decide(&Input {
                cart: &cart,
                progress,
                customer: customer.as_ref(),
                campaigns,
                history: &self.history_for(&cart, &key, now),
                channels,
                vouchers: &self.vouchers_for(&cart, &owner, now),
                now,
            });
            let at_step = progress.steps.len() as u32;
            let reason = decision.reason();
            let mut traced = Traced {
                at: now,
                outcome: Outcome::Stopped,
                step: at_step,
                channel: None,
                code: reason.code,
                message: reason.message.clone(),
                voucher: None,
            };
            match &decision {
                Decision::Skip { step, .. } => {
                    advance(progress, &decision, &cart.cart_id, now);
                    traced = Traced { outcome: Outcome::Skipped, step: *step, ..traced };
                }
                Decision::Withhold { campaign_id, step, channel, group, variant, .. } => {
                    let status = MessageStatus::HeldOut { at: now };
                    let message = self.message(&cart, &key, campaign_id, *step, *channel, variant, status, now);
                    advance(progress, &decision, &cart.cart_id, now);
                    trace.entered.get_or_insert_with(|| (campaign_id.clone(), *group));
                    self.history.entry(key.clone()).or_default().push(message);
                    traced = Traced { outcome: Outcome::HeldOut, step: *step, channel: Some(*channel), ..traced };
                }
                Decision::Send { campaign_id, step, channel, variant, voucher, .. } => {
                    let message =
                        self.message(&cart, &key, campaign_id, *step, *channel, variant, MessageStatus::Queued, now);
                    advance(progress, &decision, &cart.cart_id, now);
                    trace.entered.get_or_insert_with(|| (campaign_id.clone(), Group::Treated));
                    let issued = self.voucher(voucher, &cart, &key, &owner, campaign_id, *step, variant, now);
                    self.history.entry(key.clone()).or_default().push(message);
                    traced = Traced {
                        outcome: Outcome::Sent,
                        step: *step,
                        channel: Some(*channel),
                        voucher: issued,
                        ..traced
                    };
                }
                Decision::Wait { until, reason } => {
                    let outcome = match reason.code {
                        ReasonCode::QuietHoursDeferred => Outcome::Deferred,
                        _ => Outcome::Waited,
                    };
                    trace.decisions.push(Traced { outcome, ..traced });
                    break Some(*until);
                }
                Decision::Stop { .. } => {
                    trace.decisions.push(traced);
                    break None;
                }
            }
            trace.decisions.push(traced);
        };
        // Shadow campaigns decide beside it on their own progress; the
        // earliest wait of all arms the cart's one timer, as in the checker.
        if !campaigns.iter().any(|c| c.is_shadow() && c.enabled) {
            return wait;
        }
        let vouchers = self.vouchers_for(&cart, &owner, now);
        let check =
            ShadowCheck { cart: &cart, key: &key, customer: customer.as_ref(), vouchers: &vouchers, channels, now };
        let shadow_waits = campaigns.iter().filter(|c| c.is_shadow() && c.enabled).filter_map(|shadow| {
            let progress = replayed.shadows.entry(shadow.id.clone()).or_default();
            shadow_pass(&check, shadow, progress, &mut |_, _, _| {})
        });
        wait.into_iter().chain(shadow_waits.collect::<Vec<_>>()).min()
    }

    /// The messages the checker loads for `cart` at `now`: its customer
    /// key's and its guest key's, decided by then, each with the opens and
    /// clicks that had happened by then (borrowed when nothing needs hiding).
    fn history_for(&self, cart: &Cart, key: &CustomerKey, now: DateTime<Utc>) -> Cow<'_, [MessageRecord]> {
        let guest = CustomerKey::Guest(cart.cart_id.clone());
        let of = |key: &CustomerKey| self.history.get(key).map_or(&[][..], Vec::as_slice);
        let (own, as_guest) = (of(key), if guest == *key { &[][..] } else { of(&guest) });
        if as_guest.is_empty() && own.iter().all(|m| m.decided_at <= now && !m.engagement.changed_after(now)) {
            return Cow::Borrowed(own);
        }
        let view = own.iter().chain(as_guest).filter(|m| m.decided_at <= now);
        Cow::Owned(view.map(|m| MessageRecord { engagement: m.engagement.as_of(now), ..m.clone() }).collect())
    }

    /// The vouchers the checker loads for `cart`: its own and its owner's,
    /// issued by `now`.
    fn vouchers_for(&self, cart: &Cart, owner: &VoucherOwner, now: DateTime<Utc>) -> Cow<'_, [Voucher]> {
        let seen = |v: &Voucher| (v.owner == *owner || v.cart_id == cart.cart_id) && v.issued_at <= now;
        if self.vouchers.iter().all(seen) {
            return Cow::Borrowed(&self.vouchers);
        }
        Cow::Owned(self.vouchers.iter().filter(|v| seen(v)).cloned().collect())
    }

    /// The record of a step decided now, carrying the engagement of live
    /// traffic's message for the same cart, step and channel, if any.
    #[allow(clippy::too_many_arguments)]
    fn message(
        &self,
        cart: &Cart,
        key: &CustomerKey,
        campaign_id: &str,
        step: u32,
        channel: Channel,
        variant: &Option<String>,
        status: MessageStatus,
        now: DateTime<Utc>,
    ) -> MessageRecord {
        let record = MessageRecord::decided(&cart.cart_id, key, campaign_id, step, channel, now, status)
            .in_variant(variant.clone());
        let engagement = self.live.get(&record.message_id).map(|m| m.engagement.clone()).unwrap_or_default();
        MessageRecord { engagement, ..record }
    }

    /// The voucher a send shows: issued with a stable made-up code (the
    /// engine sees it on later decisions, for its caps), or the cart's own.
    #[allow(clippy::too_many_arguments)]
    fn voucher(
        &mut self,
        choice: &VoucherChoice,
        cart: &Cart,
        key: &CustomerKey,
        owner: &VoucherOwner,
        campaign_id: &str,
        step: u32,
        variant: &Option<String>,
        now: DateTime<Utc>,
    ) -> Option<ReplayedVoucher> {
        let VoucherChoice::Issue { terms, expires_after_seconds, .. } = choice else { return None };
        let face_value = terms.discount.amount_on(cart.totals().subtotal);
        let seed = cart
            .cart_id
            .as_str()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        let code = VoucherCode::generate(Some("BT"), &mut rand::rngs::StdRng::seed_from_u64(seed ^ u64::from(step)));
        self.vouchers.push(Voucher {
            code,
            cart_id: cart.cart_id.clone(),
            owner: owner.clone(),
            customer_key: key.clone(),
            campaign_id: campaign_id.to_owned(),
            step,
            variant: variant.clone(),
            terms: terms.clone(),
            issued_at: now,
            expires_at: now + chrono::Duration::seconds(*expires_after_seconds),
            status: VoucherStatus::Issued,
            published_at: None,
        });
        Some(ReplayedVoucher { terms: terms.clone(), face_value })
    }
}
