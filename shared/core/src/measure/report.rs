//! The report: per campaign and in total, what the campaign's carts did
//! against its holdout, computed from facts by one pure function
//! (`build_report`, same numbers on both runtimes for the same facts).
//! Field names are the documented JSON contract (README, "Measurement").
//! Every rate comes with its 95% interval; amounts are decimal and kept per
//! currency (a map from ISO 4217 code to amount), never summed across.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::assign::Group;
use super::facts::{Fact, FactKind, MessageOutcome, SegmentLabel};
use super::stats;
use crate::campaign::{Campaign, CampaignMode, DelayFrom};
use crate::consent::AnswerReason;
use crate::ids::{CartId, CustomerId, CustomerKey, MessageId};
use crate::message::Channel;
use crate::voucher::TierName;

/// Amounts per currency: `{"EUR": "12.50", "USD": "3.00"}`.
pub type Money = BTreeMap<String, Decimal>;

/// What to report on.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportQuery {
    /// One campaign, or every campaign with facts in the period.
    pub campaign: Option<String>,
    /// First and last day (UTC, inclusive) of carts entering a campaign.
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// How long after a message an order is attributed to it (default 24h);
    /// with a campaign's reach, how long after entry an order recovers a cart.
    pub attribution_window: Duration,
    /// Per-channel windows that replace `attribution_window` for that channel.
    pub channel_windows: BTreeMap<Channel, Duration>,
}

impl ReportQuery {
    /// The attribution window when none is asked for.
    pub const DEFAULT_WINDOW_HOURS: i64 = 24;

    /// A query over `from..=to` with the default 24-hour window.
    pub fn new(campaign: Option<String>, from: NaiveDate, to: NaiveDate) -> Self {
        ReportQuery {
            campaign,
            from,
            to,
            attribution_window: Duration::hours(Self::DEFAULT_WINDOW_HOURS),
            channel_windows: BTreeMap::new(),
        }
    }

    /// The attribution window of a message on `channel`.
    pub fn window(&self, channel: Channel) -> Duration {
        self.channel_windows.get(&channel).copied().unwrap_or(self.attribution_window)
    }

    /// The longest window any message may be credited over.
    pub fn longest_window(&self) -> Duration {
        self.channel_windows.values().copied().fold(self.attribution_window, Duration::max)
    }
}

/// What one message costs, per channel, in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prices {
    pub currency: String,
    pub per_message: BTreeMap<Channel, Decimal>,
}

impl Default for Prices {
    /// AWS list prices (us-east-1, 2026): SES $0.10 per 1,000 emails; SNS
    /// transactional SMS to the US about $0.00581 per message (it varies by
    /// destination country: set your own); SNS mobile push $0.50 per million;
    /// web push goes straight to the browser's push service, free.
    fn default() -> Self {
        Prices {
            currency: "USD".into(),
            per_message: BTreeMap::from([
                (Channel::Email, Decimal::new(1, 4)),
                (Channel::Sms, Decimal::new(581, 5)),
                (Channel::Push, Decimal::new(5, 7)),
                (Channel::WebPush, Decimal::ZERO),
            ]),
        }
    }
}

/// Why a prices setting was refused: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct PriceError {
    pub key: String,
    pub reason: String,
}

impl std::str::FromStr for Prices {
    type Err = PriceError;

    /// The list prices with a shop's own: comma-separated `key=value` pairs,
    /// keys `email`, `sms`, `push`, `web_push` (a decimal price per message,
    /// at least 0) and `currency` (ISO 4217), e.g. `sms=0.0075,currency=USD`.
    /// Keys left out keep their list price; an empty text is the list prices.
    fn from_str(text: &str) -> Result<Prices, PriceError> {
        let mut prices = Prices::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let refuse = |key: &str, reason: &str| PriceError { key: key.to_owned(), reason: reason.to_owned() };
            let Some((key, value)) = pair.split_once('=') else {
                return Err(refuse(pair, "expected key=value, e.g. sms=0.0075"));
            };
            let (key, value) = (key.trim(), value.trim());
            if key == "currency" {
                if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(refuse(key, "must be an ISO 4217 code of three capital letters, e.g. USD"));
                }
                prices.currency = value.to_owned();
                continue;
            }
            let channel = crate::enum_names::from_name::<Channel>(key)
                .ok_or_else(|| refuse(key, "is not a channel (email, sms, push, web_push) or currency"))?;
            let price = value
                .parse::<Decimal>()
                .ok()
                .filter(|p| !p.is_sign_negative() && *p < Decimal::from(1_000))
                .ok_or_else(|| refuse(key, "must be a decimal price per message from 0 to 1000, e.g. 0.0075"))?;
            prices.per_message.insert(channel, price);
        }
        Ok(prices)
    }
}

/// A 95% interval, serialised as two numbers `[low, high]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval(pub f64, pub f64);

/// Whether the arms hold enough carts for the intervals to mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// Fewer entered carts than the campaign's `min_sample_per_arm` in an
    /// arm: numbers are shown, no verdict is drawn.
    NotEnoughData,
    /// The interval excludes zero: the messages raise recovery.
    Raises,
    /// The interval excludes zero: the messages lower recovery.
    Lowers,
    /// The interval holds zero: no difference shown yet.
    Inconclusive,
    /// A shadow campaign: nothing was sent and nobody was held out, so
    /// there is no lift to measure.
    NoHoldout,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub attribution_window_hours: i64,
    /// How the intervals are computed (named, with its reference, in the README).
    pub interval_method: String,
    pub campaigns: Vec<CampaignReport>,
    /// Every live campaign together.
    pub total: CampaignReport,
}

/// One campaign's results (or all live campaigns' in `Report::total`, where
/// the rates, the lift and their intervals are stratified by campaign, means
/// weighted by treated carts, and each order counts once in revenue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignReport {
    /// `"*"` in the total.
    pub campaign_id: String,
    /// Whether the campaign is a shadow: its treated carts got nothing.
    pub shadow: bool,
    pub entered: u64,
    pub treated: u64,
    pub held_out: u64,
    pub recovered_treated: u64,
    pub recovered_held_out: u64,
    pub recovery_rate_treated: f64,
    pub recovery_rate_treated_ci95: Interval,
    pub recovery_rate_held_out: f64,
    pub recovery_rate_held_out_ci95: Interval,
    /// Treated rate minus held-out rate (absolute, as a fraction).
    pub lift: f64,
    pub lift_ci95: Interval,
    /// `lift / recovery_rate_held_out`; absent while nobody held out recovered.
    pub relative_lift: Option<f64>,
    /// From the two rates' own intervals at 97.5% each: `[low_t / high_h - 1,
    /// high_t / low_h - 1]`; absent while the held-out interval reaches 0.
    pub relative_lift_ci95: Option<Interval>,
    pub evidence: Evidence,
    /// The verdict in plain words, e.g. "Reminders raised recovery by 3.1
    /// points (1.2 to 5.0)".
    pub verdict: String,
    pub incremental_orders: f64,
    pub incremental_orders_ci95: Interval,
    /// Revenue of recovered orders attributed to a message, net of returns.
    pub attributed_revenue: Money,
    /// Revenue per treated cart minus per held-out cart, times treated carts.
    pub incremental_revenue: Money,
    /// Average order value of recovered orders against all orders in the period.
    pub aov_recovered: Money,
    /// The recovered orders `aov_recovered` averages (treated carts', each
    /// once), per currency: amounts in two currencies are never added.
    #[serde(default)]
    pub recovered_orders_by_currency: BTreeMap<String, u64>,
    pub aov_all_orders: Money,
    /// Messages sent times their channel's price, plus the discounts redeemed
    /// with the report's carts' vouchers (`vouchers.discount_cost`), per currency.
    pub cost: Money,
    pub cost_per_incremental_order: Option<Money>,
    /// Recovered revenue (net of returns) of the treated carts that were sent
    /// at least one message, per such cart.
    pub revenue_per_recipient: Money,
    pub messages: MessageCounts,
    pub by_channel: BTreeMap<Channel, MessageCounts>,
    /// Keyed by step number, 1-based.
    pub by_step: BTreeMap<u32, MessageCounts>,
    pub variants: Vec<VariantReport>,
    pub segments: Vec<SliceReport>,
    pub days: Vec<DayReport>,
    /// Customers' answers on the preference page in the period, by reason
    /// (`already_bought`, `not_interested`, `too_many_messages`, `other`; each present, 0 when none).
    #[serde(default)]
    pub answers: BTreeMap<String, u64>,
    /// What the report's carts' vouchers did and cost, beside the seed's targets.
    pub vouchers: VoucherReport,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCounts {
    /// Steps a held-out or shadow cart would have been sent.
    pub would_send: u64,
    pub sent: u64,
    pub delivered: u64,
    pub opened_human: u64,
    pub opened_machine: u64,
    pub clicked: u64,
    pub bounced: u64,
    pub complained: u64,
    pub unsubscribed: u64,
    /// Orders attributed to these messages.
    pub attributed_orders: u64,
}

/// One experiment variant's treated carts against the control variant's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantReport {
    pub variant: String,
    pub control: bool,
    pub entered: u64,
    pub recovered: u64,
    pub recovery_rate: f64,
    pub recovery_rate_ci95: Interval,
    /// This variant's rate minus the control variant's (0 for the control).
    pub difference: f64,
    pub difference_ci95: Interval,
    /// Posterior probability that this variant's rate beats the control's.
    pub probability_beats_control: f64,
    pub evidence: Evidence,
    pub attributed_revenue: Money,
    pub messages: MessageCounts,
    /// This variant's vouchers; each tier's rate is compared with the control
    /// variant's same tier (`difference_from_control`), so offers read off side by side.
    pub vouchers: VoucherReport,
}

/// What the vouchers of a set of carts (a campaign's, a variant's, every
/// live campaign's) did: issued, redeemed, abused, what the discounts cost,
/// what recovered orders with and without one were worth, and the seed's
/// targets beside the measured figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoucherReport {
    /// Vouchers issued to these carts (one per cart at most), all tiers.
    pub issued: u64,
    /// Of those, redeemed by an order.
    pub redeemed: u64,
    /// Redemptions whose discount is not known (free shipping without the
    /// order's shipping amount): counted in `redeemed`, not in `discount_cost`.
    pub redeemed_without_amount: u64,
    /// Orders that used one of these carts' codes and were refused it
    /// (already redeemed by another order, revoked, ...).
    pub abuse_attempts: u64,
    /// The discounts the redemptions took off their orders, per currency.
    pub discount_cost: Money,
    /// `discount_cost` per recovered order of the treated carts, in each
    /// currency over that currency's recovered orders.
    pub discount_cost_per_recovered_order: Money,
    /// Recovered orders of the treated carts that redeemed a Cartback voucher.
    pub recovered_orders_with_voucher: u64,
    pub recovered_orders_without_voucher: u64,
    /// Average net value of those recovered orders, per currency.
    pub aov_with_voucher: Money,
    pub aov_without_voucher: Money,
    /// `aov_with_voucher` minus `aov_without_voucher`, in the currencies both have.
    pub aov_impact: Money,
    /// Per tier (`recovery`, `standard`; both always present).
    pub by_tier: BTreeMap<TierName, TierReport>,
    pub targets: VoucherTargets,
}

/// The carts given a voucher of one tier, and what became of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierReport {
    /// Carts given a voucher of this tier.
    pub issued: u64,
    /// Of those, redeemed by an order.
    pub redeemed: u64,
    /// Of those carts, recovered (as the report defines it).
    pub recovered: u64,
    /// `recovered / issued`, with its interval.
    pub recovery_rate: f64,
    pub recovery_rate_ci95: Interval,
    pub discount_cost: Money,
    /// In an experiment's variant other than the control: this tier's rate
    /// minus the control variant's same tier's, with its interval; else null.
    pub difference_from_control: Option<f64>,
    pub difference_from_control_ci95: Option<Interval>,
}

/// The seed's targets, each beside its measured figure; shown, never asserted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoucherTargets {
    /// Recovery rate of the treated returners (the `returner` segment).
    pub recovery_rate_returners: RateTarget,
    /// `aov_with_voucher - aov_without_voucher`.
    pub aov_impact: MoneyTarget,
    /// Discount cost per acquisition: `discount_cost_per_recovered_order`.
    pub discount_cost_per_acquisition: MoneyTarget,
}

/// A rate target beside the measured rate, its interval and the carts it is of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateTarget {
    pub target: f64,
    pub measured: f64,
    pub measured_ci95: Interval,
    pub carts: u64,
}

/// An amount target (in the seed's currency) beside the measured amounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoneyTarget {
    pub target: Money,
    pub measured: Money,
}

/// The seed's voucher targets: returners recover at 12%; a voucher raises
/// the recovered order's value by $4.50; a recovered order costs $8.20 of discount.
pub const TARGET_RECOVERY_RATE_RETURNERS: f64 = 0.12;
/// See [`TARGET_RECOVERY_RATE_RETURNERS`]: (currency, amount in cents).
pub const TARGET_AOV_IMPACT: (&str, i64) = ("USD", 450);
/// See [`TARGET_RECOVERY_RATE_RETURNERS`]: (currency, amount in cents).
pub const TARGET_DISCOUNT_COST_PER_ACQUISITION: (&str, i64) = ("USD", 820);

/// The treated and held-out comparison within one slice (a segment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceReport {
    pub name: String,
    pub treated: u64,
    pub held_out: u64,
    pub recovered_treated: u64,
    pub recovered_held_out: u64,
    pub recovery_rate_treated: f64,
    pub recovery_rate_treated_ci95: Interval,
    pub recovery_rate_held_out: f64,
    pub recovery_rate_held_out_ci95: Interval,
    pub lift: f64,
    pub lift_ci95: Interval,
    pub evidence: Evidence,
}

/// One day of carts entering (UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayReport {
    pub day: NaiveDate,
    pub entered_treated: u64,
    pub entered_held_out: u64,
    pub recovered_treated: u64,
    pub recovered_held_out: u64,
    /// Recovered revenue (net of returns) of that day's carts, per group.
    pub revenue_treated: Money,
    pub revenue_held_out: Money,
    pub sent: u64,
}

/// How long after a cart enters its campaign the campaign can still reach
/// it: the latest step's offset over the campaign and all its variants
/// (a step's offset is its delay when it counts from the last activity, else
/// the previous step's offset plus its delay) minus the earliest first step
/// among them (entry is recorded at that earliest first step, a moment every
/// variant shares). Late sends (`max_send_delay`, quiet hours) are not
/// counted: the horizon is a fixed definition, the same for every cart.
pub fn reach(campaign: &Campaign) -> Duration {
    let variants = campaign.experiment.as_ref().map_or(0, |e| e.variants.len());
    let arms: Vec<Campaign> =
        std::iter::once(campaign.clone()).chain((0..variants).map(|i| campaign.with_variant(i))).collect();
    let latest = arms
        .iter()
        .flat_map(|arm| {
            arm.steps.iter().scan(Duration::zero(), |offset, step| {
                *offset = match step.delay_from {
                    DelayFrom::LastActivity => step.delay,
                    DelayFrom::PreviousStep => *offset + step.delay,
                };
                Some(*offset)
            })
        })
        .max()
        .unwrap_or_default();
    let earliest_first = arms.iter().filter_map(|arm| arm.steps.first().map(|s| s.delay)).min().unwrap_or_default();
    (latest - earliest_first).max(Duration::zero())
}

/// How long after entering a cart of `campaign` an order still recovers it:
/// the campaign's [`reach`] plus the report's attribution window (the
/// window alone for a campaign no longer configured).
fn recovery_horizon(campaign: Option<&Campaign>, query: &ReportQuery) -> Duration {
    campaign.map(reach).unwrap_or_default() + query.attribution_window
}

/// The fewest entered carts per arm before a comparison draws a verdict:
/// the campaign's setting, or its default (100) for the total.
fn min_sample_per_arm(campaign: Option<&Campaign>) -> u64 {
    campaign.map_or(DEFAULT_MIN_SAMPLE_PER_ARM, |c| u64::from(c.min_sample_per_arm))
}

/// The minimum per arm where no campaign sets one (the total).
const DEFAULT_MIN_SAMPLE_PER_ARM: u64 = 100;

/// The experiment's control variant: the campaign's (its `control`, else
/// its first variant) even when none of its carts entered yet, else the
/// first seen by name (a campaign since deleted or changed).
fn control_variant<'a>(campaign: Option<&'a Campaign>, seen: &BTreeSet<&'a str>) -> Option<&'a str> {
    let configured = campaign.and_then(|c| c.experiment.as_ref()).and_then(|e| e.control_name());
    configured.or_else(|| seen.first().copied())
}

/// A cart's entry into one campaign.
struct Entry<'a> {
    campaign_id: &'a str,
    cart_id: &'a CartId,
    customer: &'a CustomerKey,
    group: Group,
    variant: Option<&'a str>,
    segment: SegmentLabel,
    at: DateTime<Utc>,
}

struct MessageFact<'a> {
    campaign_id: &'a str,
    cart_id: &'a CartId,
    customer: &'a CustomerKey,
    message_id: &'a MessageId,
    step: u32,
    channel: Channel,
    outcome: MessageOutcome,
    at: DateTime<Utc>,
}

/// An order once, with its value net of returns.
struct Order<'a> {
    order_id: &'a str,
    at: DateTime<Utc>,
    cart_id: Option<&'a CartId>,
    customer: Option<&'a CustomerId>,
    currency: Option<&'a str>,
    net_value: Decimal,
}

/// The message an order is attributed to.
#[derive(Clone, Copy)]
struct Credit<'a> {
    campaign_id: &'a str,
    message_id: &'a MessageId,
}

/// One entry with everything the report counts about it.
struct Unit<'a> {
    entry: &'a Entry<'a>,
    recovered_by: Vec<&'a Order<'a>>,
    /// Of `recovered_by`, the orders whose revenue this cart carries in the
    /// total, where an order that recovered carts in two campaigns counts once.
    owned: Vec<&'a Order<'a>>,
    /// Of `recovered_by`, the orders attributed to a message of this campaign.
    attributed: Vec<&'a Order<'a>>,
    messages: MessageCounts,
    by_channel: BTreeMap<Channel, MessageCounts>,
    by_step: BTreeMap<u32, MessageCounts>,
    /// The tier of the voucher issued for this cart in this campaign, if any.
    voucher: Option<TierName>,
    /// Orders that redeemed this cart's voucher (one, unless facts disagree).
    redemptions: Vec<&'a Redeemed<'a>>,
    /// Orders refused this cart's code.
    abuse_attempts: u64,
}

/// A redemption of a cart's voucher, from its fact.
struct Redeemed<'a> {
    tier: TierName,
    discount: Option<Decimal>,
    currency: &'a str,
}

impl Unit<'_> {
    fn recovered(&self) -> bool {
        !self.recovered_by.is_empty()
    }

    fn treated(&self) -> bool {
        matches!(self.entry.group, Group::Treated | Group::Shadow)
    }

    /// Recovered revenue, net of returns; `once`: only the orders this cart
    /// carries in the total.
    fn revenue(&self, once: bool) -> Money {
        let mut money = Money::new();
        for order in if once { &self.owned } else { &self.recovered_by } {
            add_money(&mut money, order.currency, order.net_value);
        }
        money
    }
}

/// Rounded to cents and shown with two decimals, so amounts read alike
/// ("29.80", not "29.8" beside "516.21").
fn cents(amount: Decimal) -> Decimal {
    at_least_cents(amount.round_dp(2))
}

/// Two decimals at least: sums of these keep them.
fn at_least_cents(mut amount: Decimal) -> Decimal {
    if amount.scale() < 2 {
        amount.rescale(2);
    }
    amount
}

fn add_money(money: &mut Money, currency: Option<&str>, amount: Decimal) {
    if let Some(currency) = currency {
        *money.entry(currency.to_owned()).or_default() += amount;
    }
}

fn add_all(total: &mut Money, more: &Money) {
    for (currency, amount) in more {
        *total.entry(currency.clone()).or_default() += *amount;
    }
}

/// Each amount divided by `count`, to the cent; empty when `count` is 0.
fn per(money: &Money, count: u64) -> Money {
    if count == 0 {
        return Money::new();
    }
    money.iter().map(|(c, amount)| (c.clone(), cents(*amount / Decimal::from(count)))).collect()
}

impl MessageCounts {
    fn count(&mut self, outcome: MessageOutcome) {
        let counter = match outcome {
            MessageOutcome::WouldSend => &mut self.would_send,
            MessageOutcome::Sent => &mut self.sent,
            MessageOutcome::Delivered => &mut self.delivered,
            MessageOutcome::OpenedHuman => &mut self.opened_human,
            MessageOutcome::OpenedMachine => &mut self.opened_machine,
            MessageOutcome::Clicked => &mut self.clicked,
            MessageOutcome::Bounced => &mut self.bounced,
            MessageOutcome::Complained => &mut self.complained,
            MessageOutcome::Unsubscribed => &mut self.unsubscribed,
        };
        *counter += 1;
    }

    fn add(&mut self, other: &MessageCounts) {
        self.would_send += other.would_send;
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.opened_human += other.opened_human;
        self.opened_machine += other.opened_machine;
        self.clicked += other.clicked;
        self.bounced += other.bounced;
        self.complained += other.complained;
        self.unsubscribed += other.unsubscribed;
        self.attributed_orders += other.attributed_orders;
    }
}

/// The report over `facts` (any order, duplicates allowed): pure, and the
/// same facts give the same bytes. Definitions are in the README
/// ("Measurement") and on each field.
pub fn build_report(facts: &[Fact], campaigns: &[Campaign], query: &ReportQuery, prices: &Prices) -> Report {
    // A fact counts once whatever the store holds; the earliest copy wins.
    let mut sorted: Vec<&Fact> = facts.iter().collect();
    sorted.sort_by(|a, b| (&a.fact_id, a.at).cmp(&(&b.fact_id, b.at)));
    sorted.dedup_by(|later, first| later.fact_id == first.fact_id);

    let mut entries: BTreeMap<(&str, &CartId), Entry<'_>> = BTreeMap::new();
    let mut messages: Vec<MessageFact<'_>> = Vec::new();
    let mut raw_orders: BTreeMap<&str, &Fact> = BTreeMap::new();
    let mut returns: BTreeMap<&str, Vec<(&str, Decimal)>> = BTreeMap::new();
    let mut vouchers_issued: BTreeMap<(&str, &CartId), TierName> = BTreeMap::new();
    let mut redemptions: BTreeMap<(&str, &CartId), Vec<Redeemed<'_>>> = BTreeMap::new();
    let mut voucher_orders: BTreeSet<&str> = BTreeSet::new();
    let mut abuse: BTreeMap<(&str, &CartId), u64> = BTreeMap::new();
    for fact in &sorted {
        match &fact.kind {
            FactKind::Entered { campaign_id, cart_id, customer_key, group, variant, segment, .. } => {
                let entry = Entry {
                    campaign_id,
                    cart_id,
                    customer: customer_key,
                    group: *group,
                    variant: variant.as_deref(),
                    segment: *segment,
                    at: fact.at,
                };
                let slot = entries.entry((campaign_id.as_str(), cart_id)).or_insert(entry);
                if fact.at < slot.at {
                    slot.at = fact.at;
                }
            }
            FactKind::Message { campaign_id, cart_id, customer_key, message_id, step, channel, outcome, .. } => {
                messages.push(MessageFact {
                    campaign_id,
                    cart_id,
                    customer: customer_key,
                    message_id,
                    step: *step,
                    channel: *channel,
                    outcome: *outcome,
                    at: fact.at,
                });
            }
            FactKind::Order { order_id, .. } => {
                // One order, whatever the facts: the earliest report of it.
                let slot = raw_orders.entry(order_id.as_str()).or_insert(fact);
                if fact.at < slot.at {
                    *slot = fact;
                }
            }
            FactKind::Return { order_id, value, currency, .. } => {
                returns.entry(order_id.as_str()).or_default().push((currency.as_str(), *value));
            }
            FactKind::VoucherIssued { campaign_id, cart_id, tier, .. } => {
                vouchers_issued.insert((campaign_id.as_str(), cart_id), *tier);
            }
            FactKind::VoucherRedeemed { order_id, campaign_id, cart_id, tier, discount, currency, .. } => {
                voucher_orders.insert(order_id.as_str());
                let redeemed = Redeemed { tier: *tier, discount: *discount, currency };
                redemptions.entry((campaign_id.as_str(), cart_id)).or_default().push(redeemed);
            }
            FactKind::VoucherAbuse { campaign_id, cart_id, .. } => {
                *abuse.entry((campaign_id.as_str(), cart_id)).or_default() += 1;
            }
            // Counted by `count_answers`, by the answer's own day.
            FactKind::Answer { .. } => {}
        }
    }
    let orders: Vec<Order<'_>> = raw_orders
        .values()
        .filter_map(|fact| match &fact.kind {
            FactKind::Order { order_id, cart_id, customer_key, value, currency, .. } => {
                let currency = currency.as_deref();
                let returned: Decimal = returns
                    .get(order_id.as_str())
                    .map(|r| r.iter().filter(|(c, _)| Some(*c) == currency).map(|(_, v)| *v).sum())
                    .unwrap_or_default();
                Some(Order {
                    order_id,
                    at: fact.at,
                    cart_id: cart_id.as_ref(),
                    customer: customer_key.as_ref().and_then(CustomerKey::customer),
                    currency,
                    net_value: at_least_cents((value.unwrap_or_default() - returned).max(Decimal::ZERO)),
                })
            }
            _ => None,
        })
        .collect();

    // Recovery: per order and campaign, its own cart if eligible, else the
    // latest-entered eligible cart of the same known customer. Eligible: the
    // order came after entry and within the campaign's horizon from entry,
    // the same for every cart whatever was (or would have been) sent.
    let horizons: BTreeMap<&str, Duration> =
        campaigns.iter().map(|c| (c.id.as_str(), recovery_horizon(Some(c), query))).collect();
    let unknown_horizon = recovery_horizon(None, query);
    let eligible = |entry: &Entry<'_>, order: &Order<'_>| {
        let horizon = horizons.get(entry.campaign_id).copied().unwrap_or(unknown_horizon);
        entry.at < order.at && order.at <= entry.at + horizon
    };
    let mut by_cart: BTreeMap<&CartId, Vec<&Entry<'_>>> = BTreeMap::new();
    let mut by_customer: BTreeMap<&CustomerId, Vec<&Entry<'_>>> = BTreeMap::new();
    for entry in entries.values() {
        by_cart.entry(entry.cart_id).or_default().push(entry);
        if let Some(customer) = entry.customer.customer() {
            by_customer.entry(customer).or_default().push(entry);
        }
    }
    let mut recovered_by: BTreeMap<(&str, &CartId), Vec<&Order<'_>>> = BTreeMap::new();
    for order in &orders {
        let own = order.cart_id.and_then(|c| by_cart.get(c)).into_iter().flatten();
        let theirs = order.customer.and_then(|c| by_customer.get(c)).into_iter().flatten();
        let mut best: BTreeMap<&str, &Entry<'_>> = BTreeMap::new();
        for entry in own.chain(theirs).copied().filter(|e| eligible(e, order)) {
            let rank = |e: &Entry<'_>| (order.cart_id == Some(e.cart_id), e.at, e.cart_id.clone());
            let slot = best.entry(entry.campaign_id).or_insert(entry);
            if rank(entry) > rank(slot) {
                *slot = entry;
            }
        }
        for entry in best.values() {
            recovered_by.entry((entry.campaign_id, entry.cart_id)).or_default().push(order);
        }
    }
    let recovered_orders: BTreeSet<&str> = recovered_by.values().flatten().map(|o| o.order_id).collect();

    // Attribution: the last message sent to the buyer before the purchase,
    // within that message's channel window.
    let mut sent_by_cart: BTreeMap<&CartId, Vec<&MessageFact<'_>>> = BTreeMap::new();
    let mut sent_by_customer: BTreeMap<&CustomerId, Vec<&MessageFact<'_>>> = BTreeMap::new();
    for m in messages.iter().filter(|m| m.outcome == MessageOutcome::Sent) {
        sent_by_cart.entry(m.cart_id).or_default().push(m);
        if let Some(customer) = m.customer.customer() {
            sent_by_customer.entry(customer).or_default().push(m);
        }
    }
    let mut credits: BTreeMap<&str, Credit<'_>> = BTreeMap::new();
    for order in orders.iter().filter(|o| recovered_orders.contains(o.order_id)) {
        let own = order.cart_id.and_then(|c| sent_by_cart.get(c)).into_iter().flatten();
        let theirs = order.customer.and_then(|c| sent_by_customer.get(c)).into_iter().flatten();
        let last = own
            .chain(theirs)
            .filter(|m| m.at <= order.at && order.at <= m.at + query.window(m.channel))
            .max_by_key(|m| (m.at, m.message_id));
        if let Some(m) = last {
            credits.insert(order.order_id, Credit { campaign_id: m.campaign_id, message_id: m.message_id });
        }
    }
    let mut credited_messages: BTreeMap<(&str, &MessageId), u64> = BTreeMap::new();

    let in_period = |e: &Entry<'_>| {
        (query.from..=query.to).contains(&e.at.date_naive())
            && query.campaign.as_deref().is_none_or(|c| c == e.campaign_id)
    };
    let mut units: Vec<Unit<'_>> = Vec::new();
    for entry in entries.values().filter(|e| in_period(e)) {
        let key = (entry.campaign_id, entry.cart_id);
        let recovered_by = recovered_by.get(&key).cloned().unwrap_or_default();
        let attributed: Vec<&Order<'_>> = recovered_by
            .iter()
            .copied()
            .filter(|o| credits.get(o.order_id).is_some_and(|c| c.campaign_id == entry.campaign_id))
            .collect();
        for order in &attributed {
            if let Some(credit) = credits.get(order.order_id) {
                *credited_messages.entry((credit.campaign_id, credit.message_id)).or_default() += 1;
            }
        }
        units.push(Unit {
            entry,
            recovered_by,
            owned: Vec::new(),
            attributed,
            messages: MessageCounts::default(),
            by_channel: BTreeMap::new(),
            by_step: BTreeMap::new(),
            voucher: vouchers_issued.get(&key).copied(),
            redemptions: redemptions.get(&key).map(|r| r.iter().collect()).unwrap_or_default(),
            abuse_attempts: abuse.get(&key).copied().unwrap_or(0),
        });
    }
    // Each order once in the total: carried by the live cart of the campaign
    // it is attributed to, else by the first live cart (by campaign id) it recovered.
    let mut owner: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, unit) in units.iter().enumerate().filter(|(_, u)| u.entry.group != Group::Shadow) {
        for order in &unit.recovered_by {
            let credited = credits.get(order.order_id).is_some_and(|c| c.campaign_id == unit.entry.campaign_id);
            if credited || !owner.contains_key(order.order_id) {
                owner.insert(order.order_id, i);
            }
        }
    }
    for (order_id, i) in &owner {
        let unit = &mut units[*i];
        if let Some(order) = unit.recovered_by.iter().find(|o| o.order_id == *order_id).copied() {
            unit.owned.push(order);
        }
    }
    let unit_of: BTreeMap<(&str, &CartId), usize> =
        units.iter().enumerate().map(|(i, u)| ((u.entry.campaign_id, u.entry.cart_id), i)).collect();
    // Outcomes once per message (the fact ids already make them unique);
    // orders are credited on the message's `sent` line.
    for m in &messages {
        if let Some(unit) = unit_of.get(&(m.campaign_id, m.cart_id)).map(|i| &mut units[*i]) {
            let mut counts = MessageCounts::default();
            counts.count(m.outcome);
            if m.outcome == MessageOutcome::Sent {
                counts.attributed_orders = credited_messages.get(&(m.campaign_id, m.message_id)).copied().unwrap_or(0);
            }
            unit.messages.add(&counts);
            unit.by_channel.entry(m.channel).or_default().add(&counts);
            // Facts number steps from 0 (the campaign's index); the report from 1.
            unit.by_step.entry(m.step + 1).or_default().add(&counts);
        }
    }

    // AOV of all orders placed in the period, net of returns.
    let period_orders: Vec<&Order<'_>> =
        orders.iter().filter(|o| (query.from..=query.to).contains(&o.at.date_naive())).collect();
    let context = Context { query, prices, aov_all_orders: aov(&period_orders), voucher_orders };

    let mut reported: BTreeSet<&str> = units.iter().map(|u| u.entry.campaign_id).collect();
    if let Some(asked) = query.campaign.as_deref() {
        reported.insert(asked);
    }
    let reports: Vec<CampaignReport> = reported
        .iter()
        .map(|id| {
            let campaign = campaigns.iter().find(|c| c.id == *id);
            let mine: Vec<&Unit<'_>> = units.iter().filter(|u| u.entry.campaign_id == *id).collect();
            let shadow = campaign.is_some_and(|c| c.mode == CampaignMode::Shadow)
                || mine.iter().any(|u| u.entry.group == Group::Shadow);
            summarize(id, campaign, shadow, &mine, &context, false)
        })
        .collect();
    let live: Vec<&Unit<'_>> = units.iter().filter(|u| u.entry.group != Group::Shadow).collect();
    let mut total = summarize("*", None, false, &live, &context, true);
    let mut reports = reports;
    count_answers(&sorted, query, &mut reports, &mut total);
    Report {
        from: query.from,
        to: query.to,
        attribution_window_hours: query.attribution_window.num_hours(),
        interval_method: stats::METHOD.to_owned(),
        campaigns: reports,
        total,
    }
}

struct Context<'a> {
    query: &'a ReportQuery,
    prices: &'a Prices,
    aov_all_orders: Money,
    /// Orders that redeemed a Cartback voucher.
    voucher_orders: BTreeSet<&'a str>,
}

/// Average net order value per currency.
fn aov(orders: &[&Order<'_>]) -> Money {
    let mut sums = Money::new();
    for order in orders {
        add_money(&mut sums, order.currency, order.net_value);
    }
    let counts = per_currency(orders);
    sums.into_iter()
        .map(|(currency, sum)| {
            let n = counts.get(&currency).copied().unwrap_or(1).max(1);
            (currency, cents(sum / Decimal::from(n)))
        })
        .collect()
}

/// How many of `orders` are in each currency (those without one are not counted).
fn per_currency(orders: &[&Order<'_>]) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for currency in orders.iter().filter_map(|o| o.currency) {
        *counts.entry(currency.to_owned()).or_default() += 1;
    }
    counts
}

/// Whether the comparison is strong enough to speak, and which way.
fn evidence(first: u64, second: u64, min_sample: u64, interval: Interval) -> Evidence {
    if first < min_sample || second < min_sample {
        Evidence::NotEnoughData
    } else if interval.0 > 0.0 {
        Evidence::Raises
    } else if interval.1 < 0.0 {
        Evidence::Lowers
    } else {
        Evidence::Inconclusive
    }
}

fn points(rate: f64) -> String {
    format!("{:.1}", rate * 100.0)
}

fn verdict(r: &CampaignReport, min_sample: u64) -> String {
    let Interval(low, high) = r.lift_ci95;
    match r.evidence {
        Evidence::NoHoldout => format!(
            "Shadow campaign: nothing was sent and no lift can be measured; {} carts entered, {} messages would \
             have gone out, and {}% of these carts were recovered.",
            r.entered,
            r.messages.would_send,
            points(r.recovery_rate_treated)
        ),
        Evidence::NotEnoughData => format!(
            "Not enough data yet: {} treated and {} held-out carts; at least {min_sample} in each are needed \
             before a verdict.",
            r.treated, r.held_out
        ),
        Evidence::Raises => {
            format!("Reminders raised recovery by {} points ({} to {}).", points(r.lift), points(low), points(high))
        }
        Evidence::Lowers => {
            format!("Reminders lowered recovery by {} points ({} to {}).", points(-r.lift), points(-high), points(-low))
        }
        Evidence::Inconclusive => format!(
            "No difference shown yet: recovery moved by {} points ({} to {}), an interval that holds zero.",
            points(r.lift),
            points(low),
            points(high)
        ),
    }
}

/// The comparison of treated and held-out carts within `units`.
fn slice(name: &str, units: &[&Unit<'_>], min_sample: u64) -> SliceReport {
    let (treated, held_out) = arms(units);
    let (lift, lift_ci95) = stats::difference(treated, held_out);
    SliceReport {
        name: name.to_owned(),
        treated: treated.1,
        held_out: held_out.1,
        recovered_treated: treated.0,
        recovered_held_out: held_out.0,
        recovery_rate_treated: stats::rate(treated.0, treated.1),
        recovery_rate_treated_ci95: stats::rate_interval(treated.0, treated.1),
        recovery_rate_held_out: stats::rate(held_out.0, held_out.1),
        recovery_rate_held_out_ci95: stats::rate_interval(held_out.0, held_out.1),
        lift,
        lift_ci95,
        evidence: evidence(treated.1, held_out.1, min_sample, lift_ci95),
    }
}

/// (recovered, entered) of the treated arm and of the held-out arm.
fn arms(units: &[&Unit<'_>]) -> ((u64, u64), (u64, u64)) {
    let (mut treated, mut held_out) = ((0, 0), (0, 0));
    for unit in units {
        let arm = if unit.treated() { &mut treated } else { &mut held_out };
        arm.1 += 1;
        arm.0 += u64::from(unit.recovered());
    }
    (treated, held_out)
}

/// Each answer fact of the period counted by reason on its campaign's report
/// and on the total (answers come from sent messages, so only live campaigns have any).
fn count_answers(facts: &[&Fact], query: &ReportQuery, reports: &mut [CampaignReport], total: &mut CampaignReport) {
    for fact in facts {
        let FactKind::Answer { campaign_id, reason, .. } = &fact.kind else { continue };
        if !(query.from..=query.to).contains(&fact.at.date_naive())
            || query.campaign.as_deref().is_some_and(|c| c != campaign_id)
        {
            continue;
        }
        let name = reason.as_str().to_owned();
        if let Some(report) = reports.iter_mut().find(|r| &r.campaign_id == campaign_id) {
            *report.answers.entry(name.clone()).or_default() += 1;
        }
        *total.answers.entry(name).or_default() += 1;
    }
}

/// One campaign's carts, or (`total`) every live campaign's: then the lift
/// is stratified by campaign and each order counts once in revenue.
fn summarize(
    id: &str,
    campaign: Option<&Campaign>,
    shadow: bool,
    units: &[&Unit<'_>],
    context: &Context<'_>,
    total: bool,
) -> CampaignReport {
    let min_sample = min_sample_per_arm(campaign);
    let ((recovered_treated, treated), (recovered_held_out, held_out)) = arms(units);
    let comparison = if total {
        stratified(units)
    } else {
        Comparison::of((recovered_treated, treated), (recovered_held_out, held_out))
    };
    let (lift, lift_ci95, evidence_now) = if shadow {
        (0.0, Interval(0.0, 0.0), Evidence::NoHoldout)
    } else {
        (comparison.lift, comparison.lift_ci95, evidence(treated, held_out, min_sample, comparison.lift_ci95))
    };
    let (relative_lift, relative_lift_ci95) = if !shadow && comparison.rate_held_out > 0.0 {
        (Some(lift / comparison.rate_held_out), comparison.relative_ci95)
    } else {
        (None, None)
    };
    let incremental_orders = lift * comparison.weight as f64;

    let mut messages = MessageCounts::default();
    let mut by_channel: BTreeMap<Channel, MessageCounts> = BTreeMap::new();
    let mut by_step: BTreeMap<u32, MessageCounts> = BTreeMap::new();
    let (mut recipient_revenue, mut attributed_revenue) = (Money::new(), Money::new());
    let mut recovered_treated_orders: Vec<&Order<'_>> = Vec::new();
    let mut recipients = 0u64;
    for unit in units {
        messages.add(&unit.messages);
        for (channel, counts) in &unit.by_channel {
            by_channel.entry(*channel).or_default().add(counts);
        }
        for (step, counts) in &unit.by_step {
            by_step.entry(*step).or_default().add(counts);
        }
        for order in &unit.attributed {
            add_money(&mut attributed_revenue, order.currency, order.net_value);
        }
        if unit.treated() {
            recovered_treated_orders.extend(unit.recovered_by.iter().copied());
            if unit.messages.sent > 0 {
                recipients += 1;
                add_all(&mut recipient_revenue, &unit.revenue(total));
            }
        }
    }
    // An order that recovered carts in two live campaigns counts once in the AOV.
    recovered_treated_orders.sort_by_key(|o| o.order_id);
    recovered_treated_orders.dedup_by_key(|o| o.order_id);

    let incremental_revenue = if shadow {
        Money::new()
    } else if total {
        let mut sum = Money::new();
        for stratum in by_campaign(units).values() {
            add_all(&mut sum, &incremental_revenue_of(stratum, true));
        }
        sum.into_iter().map(|(currency, amount)| (currency, cents(amount))).collect()
    } else {
        incremental_revenue_of(units, false).into_iter().map(|(currency, amount)| (currency, cents(amount))).collect()
    };
    let message_cost: Decimal = by_channel
        .iter()
        .map(|(channel, counts)| {
            context.prices.per_message.get(channel).copied().unwrap_or_default() * Decimal::from(counts.sent)
        })
        .sum();
    let vouchers = voucher_report(units, context);
    let mut cost = Money::from([(context.prices.currency.clone(), message_cost)]);
    add_all(&mut cost, &vouchers.discount_cost);
    let cost_per_incremental_order = match Decimal::try_from(incremental_orders) {
        Ok(orders) if !shadow && incremental_orders >= 0.5 => {
            Some(cost.iter().map(|(currency, amount)| (currency.clone(), (amount / orders).round_dp(4))).collect())
        }
        _ => None,
    };
    let cost = cost.into_iter().map(|(currency, amount)| (currency, amount.round_dp(6))).collect();

    let mut report = CampaignReport {
        campaign_id: id.to_owned(),
        shadow,
        entered: units.len() as u64,
        treated,
        held_out,
        recovered_treated,
        recovered_held_out,
        recovery_rate_treated: comparison.rate_treated,
        recovery_rate_treated_ci95: comparison.rate_treated_ci95,
        recovery_rate_held_out: comparison.rate_held_out,
        recovery_rate_held_out_ci95: comparison.rate_held_out_ci95,
        lift,
        lift_ci95,
        relative_lift,
        relative_lift_ci95,
        evidence: evidence_now,
        verdict: String::new(),
        incremental_orders,
        incremental_orders_ci95: stats::scale(lift_ci95, comparison.weight as f64),
        attributed_revenue,
        incremental_revenue,
        aov_recovered: aov(&recovered_treated_orders),
        recovered_orders_by_currency: per_currency(&recovered_treated_orders),
        aov_all_orders: context.aov_all_orders.clone(),
        cost,
        cost_per_incremental_order,
        revenue_per_recipient: per(&recipient_revenue, recipients),
        messages,
        by_channel,
        by_step,
        variants: if total { Vec::new() } else { variants(campaign, units, min_sample, context) },
        segments: [(SegmentLabel::Returner, "returner"), (SegmentLabel::Other, "other")]
            .iter()
            .map(|(label, name)| {
                let mine: Vec<&Unit<'_>> = units.iter().copied().filter(|u| u.entry.segment == *label).collect();
                slice(name, &mine, min_sample)
            })
            .collect(),
        days: days(units, context.query, total),
        answers: AnswerReason::ALL.iter().map(|r| (r.as_str().to_owned(), 0)).collect(),
        vouchers,
    };
    if shadow {
        report.segments.iter_mut().for_each(|s| s.evidence = Evidence::NoHoldout);
    }
    report.verdict = verdict(&report, min_sample);
    report
}

/// Treated against held-out recovery: the rates, the lift and their intervals.
struct Comparison {
    rate_treated: f64,
    rate_treated_ci95: Interval,
    rate_held_out: f64,
    rate_held_out_ci95: Interval,
    lift: f64,
    lift_ci95: Interval,
    relative_ci95: Option<Interval>,
    /// The treated carts the lift applies to (incremental orders = lift x weight).
    weight: u64,
}

impl Comparison {
    /// One campaign's arms `(recovered, carts)`.
    fn of(treated: (u64, u64), held_out: (u64, u64)) -> Comparison {
        let (lift, lift_ci95) = stats::difference(treated, held_out);
        Comparison {
            rate_treated: stats::rate(treated.0, treated.1),
            rate_treated_ci95: stats::rate_interval(treated.0, treated.1),
            rate_held_out: stats::rate(held_out.0, held_out.1),
            rate_held_out_ci95: stats::rate_interval(held_out.0, held_out.1),
            lift,
            lift_ci95,
            relative_ci95: stats::relative_interval_of(treated, held_out),
            weight: treated.1,
        }
    }
}

/// The units of each campaign, by campaign id.
fn by_campaign<'u, 'a>(units: &[&'u Unit<'a>]) -> BTreeMap<&'a str, Vec<&'u Unit<'a>>> {
    let mut strata: BTreeMap<&str, Vec<&Unit<'_>>> = BTreeMap::new();
    for unit in units {
        strata.entry(unit.entry.campaign_id).or_default().push(unit);
    }
    strata
}

/// The total's comparison, stratified by campaign (campaigns hold out
/// different shares, so pooling their carts would mix the campaigns'
/// effects with their holdout shares: Simpson's paradox). Over the campaigns
/// with both treated and held-out carts, each rate and the lift are the
/// means of the campaigns' own, weighted by treated carts `w_i`; the
/// variance of each is `sum(w_i^2 v_i) / (sum w_i)^2`, with the same
/// always-valid half-width. Without such a campaign, the pooled arms.
fn stratified(units: &[&Unit<'_>]) -> Comparison {
    let strata: Vec<((u64, u64), (u64, u64))> =
        by_campaign(units).values().map(|u| arms(u)).filter(|(t, h)| t.1 > 0 && h.1 > 0).collect();
    if strata.is_empty() {
        let (treated, held_out) = arms(units);
        return Comparison::of(treated, held_out);
    }
    let weight: u64 = strata.iter().map(|(t, _)| t.1).sum();
    let share = |n: u64| n as f64 / weight as f64;
    let (mut rate_t, mut rate_h, mut var_t, mut var_h) = (0.0, 0.0, 0.0, 0.0);
    for (t, h) in &strata {
        let w = share(t.1);
        rate_t += w * stats::rate(t.0, t.1);
        rate_h += w * stats::rate(h.0, h.1);
        var_t += w * w * stats::smoothed_variance(t.0, t.1).unwrap_or_default();
        var_h += w * w * stats::smoothed_variance(h.0, h.1).unwrap_or_default();
    }
    let lift = rate_t - rate_h;
    Comparison {
        rate_treated: rate_t,
        rate_treated_ci95: stats::estimate_interval_at(rate_t, var_t, stats::ALPHA, (0.0, 1.0)),
        rate_held_out: rate_h,
        rate_held_out_ci95: stats::estimate_interval_at(rate_h, var_h, stats::ALPHA, (0.0, 1.0)),
        lift,
        lift_ci95: stats::estimate_interval_at(lift, var_t + var_h, stats::ALPHA, (-1.0, 1.0)),
        relative_ci95: stats::relative_interval((rate_t, Some(var_t)), (rate_h, Some(var_h))),
        weight,
    }
}

/// Revenue per treated cart minus per held-out cart, times treated carts,
/// unrounded; empty without both arms. `once`: each order counted once (the total).
fn incremental_revenue_of(units: &[&Unit<'_>], once: bool) -> Money {
    let (mut revenue_treated, mut revenue_held_out) = (Money::new(), Money::new());
    let (mut treated, mut held_out) = (0u64, 0u64);
    for unit in units {
        if unit.treated() {
            treated += 1;
            add_all(&mut revenue_treated, &unit.revenue(once));
        } else {
            held_out += 1;
            add_all(&mut revenue_held_out, &unit.revenue(once));
        }
    }
    if held_out == 0 || treated == 0 {
        return Money::new();
    }
    let currencies: BTreeSet<&String> = revenue_treated.keys().chain(revenue_held_out.keys()).collect();
    currencies
        .into_iter()
        .map(|currency| {
            let per_treated = revenue_treated.get(currency).copied().unwrap_or_default() / Decimal::from(treated);
            let per_held = revenue_held_out.get(currency).copied().unwrap_or_default() / Decimal::from(held_out);
            (currency.clone(), (per_treated - per_held) * Decimal::from(treated))
        })
        .collect()
}

/// Each variant's treated carts against the control variant's.
fn variants<'a>(
    campaign: Option<&'a Campaign>,
    units: &[&Unit<'a>],
    min_sample: u64,
    context: &Context<'_>,
) -> Vec<VariantReport> {
    let mut by_variant: BTreeMap<&str, Vec<&Unit<'_>>> = BTreeMap::new();
    for unit in units.iter().filter(|u| u.treated()) {
        if let Some(variant) = unit.entry.variant {
            by_variant.entry(variant).or_default().push(unit);
        }
    }
    let names: BTreeSet<&str> = by_variant.keys().copied().collect();
    if names.is_empty() {
        return Vec::new();
    }
    let Some(control) = control_variant(campaign, &names) else {
        return Vec::new();
    };
    // A configured control none of whose carts entered stays the control,
    // as an arm of 0 carts (not enough data), rather than another variant.
    by_variant.entry(control).or_default();
    let tally = |units: &[&Unit<'_>]| (units.iter().filter(|u| u.recovered()).count() as u64, units.len() as u64);
    let control_arm = by_variant.get(control).map(|u| tally(u)).unwrap_or((0, 0));
    let control_vouchers = voucher_report(by_variant.get(control).map(Vec::as_slice).unwrap_or_default(), context);
    by_variant
        .iter()
        .map(|(name, mine)| {
            let arm = tally(mine);
            let is_control = *name == control;
            let (difference, difference_ci95) =
                if is_control { (0.0, Interval(0.0, 0.0)) } else { stats::difference(arm, control_arm) };
            let mut messages = MessageCounts::default();
            let mut attributed_revenue = Money::new();
            for unit in mine {
                messages.add(&unit.messages);
                for order in &unit.attributed {
                    add_money(&mut attributed_revenue, order.currency, order.net_value);
                }
            }
            let evidence = if is_control {
                if arm.1 < min_sample {
                    Evidence::NotEnoughData
                } else {
                    Evidence::Inconclusive
                }
            } else {
                evidence(arm.1, control_arm.1, min_sample, difference_ci95)
            };
            let mut vouchers = voucher_report(mine, context);
            if !is_control {
                compare_tiers(&mut vouchers, &control_vouchers);
            }
            VariantReport {
                variant: (*name).to_owned(),
                control: is_control,
                entered: arm.1,
                recovered: arm.0,
                recovery_rate: stats::rate(arm.0, arm.1),
                recovery_rate_ci95: stats::rate_interval(arm.0, arm.1),
                difference,
                difference_ci95,
                probability_beats_control: if is_control { 0.5 } else { stats::probability_beats(arm, control_arm) },
                evidence,
                attributed_revenue,
                messages,
                vouchers,
            }
        })
        .collect()
}

/// The vouchers of `units`: see [`VoucherReport`]. Recovered orders are
/// the treated carts', each once (as in `aov_recovered`).
fn voucher_report(units: &[&Unit<'_>], context: &Context<'_>) -> VoucherReport {
    let mut report = VoucherReport::default();
    let mut tier_arms: BTreeMap<TierName, (u64, u64)> = BTreeMap::new();
    let (mut redeemed, mut redeemed_without_amount, mut abuse_attempts) = (0u64, 0u64, 0u64);
    let mut discount_cost = Money::new();
    let mut recovered_orders: Vec<&Order<'_>> = Vec::new();
    let mut returners = (0u64, 0u64);
    for unit in units {
        abuse_attempts += unit.abuse_attempts;
        if unit.treated() {
            recovered_orders.extend(unit.recovered_by.iter().copied());
            if unit.entry.segment == SegmentLabel::Returner {
                returners.0 += u64::from(unit.recovered());
                returners.1 += 1;
            }
        }
        if let Some(tier) = unit.voucher {
            let arm = tier_arms.entry(tier).or_default();
            arm.0 += u64::from(unit.recovered());
            arm.1 += 1;
        }
        // By the redemption's own tier: counted even if its issue fact is missing.
        for redemption in &unit.redemptions {
            let tier_report = report.by_tier.entry(redemption.tier).or_default();
            redeemed += 1;
            tier_report.redeemed += 1;
            match redemption.discount {
                Some(discount) => {
                    add_money(&mut tier_report.discount_cost, Some(redemption.currency), discount);
                    add_money(&mut discount_cost, Some(redemption.currency), discount);
                }
                None => redeemed_without_amount += 1,
            }
        }
    }
    for (tier, tier_report) in &mut report.by_tier {
        let (recovered, issued) = tier_arms.get(tier).copied().unwrap_or_default();
        tier_report.issued = issued;
        tier_report.recovered = recovered;
        tier_report.recovery_rate = stats::rate(recovered, issued);
        tier_report.recovery_rate_ci95 = stats::rate_interval(recovered, issued);
        tier_report.discount_cost = to_cents(&tier_report.discount_cost);
    }
    // An order that recovered carts in two campaigns counts once.
    recovered_orders.sort_by_key(|o| o.order_id);
    recovered_orders.dedup_by_key(|o| o.order_id);
    let (with, without): (Vec<&Order<'_>>, Vec<&Order<'_>>) =
        recovered_orders.iter().partition(|o| context.voucher_orders.contains(o.order_id));
    let (aov_with_voucher, aov_without_voucher) = (aov(&with), aov(&without));
    let aov_impact: Money = aov_with_voucher
        .iter()
        .filter_map(|(currency, with)| Some((currency.clone(), cents(with - aov_without_voucher.get(currency)?))))
        .collect();
    let mut orders_per_currency: BTreeMap<&str, u64> = BTreeMap::new();
    for order in &recovered_orders {
        if let Some(currency) = order.currency {
            *orders_per_currency.entry(currency).or_default() += 1;
        }
    }
    let discount_cost_per_recovered_order: Money = discount_cost
        .iter()
        .filter_map(|(currency, cost)| {
            let orders = orders_per_currency.get(currency.as_str()).copied()?;
            Some((currency.clone(), cents(cost / Decimal::from(orders))))
        })
        .collect();
    report.issued = tier_arms.values().map(|arm| arm.1).sum();
    report.redeemed = redeemed;
    report.redeemed_without_amount = redeemed_without_amount;
    report.abuse_attempts = abuse_attempts;
    report.discount_cost = to_cents(&discount_cost);
    report.recovered_orders_with_voucher = with.len() as u64;
    report.recovered_orders_without_voucher = without.len() as u64;
    let targets = &mut report.targets;
    targets.recovery_rate_returners.measured = stats::rate(returners.0, returners.1);
    targets.recovery_rate_returners.measured_ci95 = stats::rate_interval(returners.0, returners.1);
    targets.recovery_rate_returners.carts = returners.1;
    targets.aov_impact.measured = aov_impact.clone();
    targets.discount_cost_per_acquisition.measured = discount_cost_per_recovered_order.clone();
    report.discount_cost_per_recovered_order = discount_cost_per_recovered_order;
    report.aov_with_voucher = aov_with_voucher;
    report.aov_without_voucher = aov_without_voucher;
    report.aov_impact = aov_impact;
    report
}

/// Each tier of a variant against the control variant's same tier.
fn compare_tiers(variant: &mut VoucherReport, control: &VoucherReport) {
    for (tier, report) in &mut variant.by_tier {
        let control_arm = control.by_tier.get(tier).map_or((0, 0), |c| (c.recovered, c.issued));
        let (difference, interval) = stats::difference((report.recovered, report.issued), control_arm);
        report.difference_from_control = Some(difference);
        report.difference_from_control_ci95 = Some(interval);
    }
}

impl Default for VoucherReport {
    /// No voucher: zero counts, both tiers empty, the seed's targets beside
    /// measured figures of nothing.
    fn default() -> Self {
        let target =
            |(currency, amount_cents): (&str, i64)| Money::from([(currency.to_owned(), Decimal::new(amount_cents, 2))]);
        VoucherReport {
            issued: 0,
            redeemed: 0,
            redeemed_without_amount: 0,
            abuse_attempts: 0,
            discount_cost: Money::new(),
            discount_cost_per_recovered_order: Money::new(),
            recovered_orders_with_voucher: 0,
            recovered_orders_without_voucher: 0,
            aov_with_voucher: Money::new(),
            aov_without_voucher: Money::new(),
            aov_impact: Money::new(),
            by_tier: TierName::ALL.iter().map(|tier| (*tier, TierReport::default())).collect(),
            targets: VoucherTargets {
                recovery_rate_returners: RateTarget {
                    target: TARGET_RECOVERY_RATE_RETURNERS,
                    measured: 0.0,
                    measured_ci95: stats::rate_interval(0, 0),
                    carts: 0,
                },
                aov_impact: MoneyTarget { target: target(TARGET_AOV_IMPACT), measured: Money::new() },
                discount_cost_per_acquisition: MoneyTarget {
                    target: target(TARGET_DISCOUNT_COST_PER_ACQUISITION),
                    measured: Money::new(),
                },
            },
        }
    }
}

impl Default for TierReport {
    /// No voucher of the tier.
    fn default() -> Self {
        TierReport {
            issued: 0,
            redeemed: 0,
            recovered: 0,
            recovery_rate: 0.0,
            recovery_rate_ci95: stats::rate_interval(0, 0),
            discount_cost: Money::new(),
            difference_from_control: None,
            difference_from_control_ci95: None,
        }
    }
}

/// Every amount to the cent, with two decimals.
fn to_cents(money: &Money) -> Money {
    money.iter().map(|(currency, amount)| (currency.clone(), cents(*amount))).collect()
}

/// Every day of the period, by the day carts entered; `once`: each order
/// counted once (the total).
fn days(units: &[&Unit<'_>], query: &ReportQuery, once: bool) -> Vec<DayReport> {
    query
        .from
        .iter_days()
        .take_while(|day| *day <= query.to)
        .map(|day| {
            let mut report = DayReport {
                day,
                entered_treated: 0,
                entered_held_out: 0,
                recovered_treated: 0,
                recovered_held_out: 0,
                revenue_treated: Money::new(),
                revenue_held_out: Money::new(),
                sent: 0,
            };
            for unit in units.iter().filter(|u| u.entry.at.date_naive() == day) {
                report.sent += unit.messages.sent;
                let recovered = u64::from(unit.recovered());
                if unit.treated() {
                    report.entered_treated += 1;
                    report.recovered_treated += recovered;
                    add_all(&mut report.revenue_treated, &unit.revenue(once));
                } else {
                    report.entered_held_out += 1;
                    report.recovered_held_out += recovered;
                    add_all(&mut report.revenue_held_out, &unit.revenue(once));
                }
            }
            report
        })
        .collect()
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
