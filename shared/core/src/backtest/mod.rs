//! Backtest a draft campaign over real history before it touches a
//! customer: every stored cart replayed through the engine on a virtual
//! clock ([`replay`]), with the customers' consents as they were at each
//! point ([`history::customer_as_of`]), the same caps, cooldowns, quiet hours
//! and message history rules as live; then counted ([`run`]): carts
//! entering, per step and channel what would be sent, deferred and
//! suppressed, vouchers and their face value, the sending cost, the draft
//! beside what the live campaign actually did, and an estimate of recovered
//! orders and revenue from the measured rates of comparable steps and
//! channels (or, per row, a sentence saying there are none).

pub mod history;
pub mod replay;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::campaign::{Campaign, CampaignMode};
use crate::ids::CartId;
use crate::measure::report::{CampaignReport, Interval, Money, Prices};
use crate::message::{Channel, MessageStatus};
use crate::reason::ReasonCode;

pub use history::{history_from_events, load_history, CustomerCarts, History, HistoryBuilder};
pub use replay::{replay_customer, CartTrace, Outcome, Seeds, Setup, Traced};

/// Carts deciding differently listed in the report, at most.
pub const MAX_DIFFERING_LISTED: usize = 100;
/// Carts whose draft timeline the report shows.
pub const SAMPLE_TIMELINES: usize = 5;

/// What to backtest.
#[derive(Debug, Clone)]
pub struct Options {
    /// The draft, validated. Replayed as a live, enabled campaign.
    pub draft: Campaign,
    /// The live campaign to put the draft beside, and whose place it takes.
    pub against: Option<String>,
    /// Carts whose first event falls on these days (UTC, inclusive) are counted;
    /// earlier carts are not replayed: what live traffic sent them (and the
    /// vouchers it issued) counts for the caps and cooldowns of later ones.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub channels: Vec<Channel>,
    pub prices: Prices,
    /// Timers due after this are not replayed; default: the newest time in the history.
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BacktestError {
    #[error("--against: no live campaign {0:?} (see `cartback campaign list`)")]
    UnknownAgainst(String),
    #[error("--from {from} is after --to {to}")]
    EmptyPeriod { from: NaiveDate, to: NaiveDate },
}

/// One step and channel: what the draft would do, beside what the live campaign did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepChannel {
    /// 1-based, as people count steps.
    pub step: u32,
    pub channel: Channel,
    pub sent: u64,
    pub held_out: u64,
    /// Deferred at least once by quiet hours before it went out.
    pub deferred: u64,
    /// Sent by the live campaign (its message records), with `--against`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_sent: Option<u64>,
    /// `sent - live_sent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub difference: Option<i64>,
}

impl StepChannel {
    fn new(step: u32, channel: Channel) -> Self {
        StepChannel { step: step + 1, channel, sent: 0, held_out: 0, deferred: 0, live_sent: None, difference: None }
    }
}

/// Steps that did not go out, by the engine's reason (per step and reason, each cart once).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppressed {
    pub step: u32,
    pub code: ReasonCode,
    pub carts: u64,
}

impl Suppressed {
    /// Counts keyed by 0-based step and reason, as rows.
    fn rows(counts: &BTreeMap<(u32, ReasonCode), u64>) -> Vec<Suppressed> {
        counts.iter().map(|((step, code), carts)| Suppressed { step: step + 1, code: *code, carts: *carts }).collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VoucherSummary {
    pub issued: u64,
    /// What they take off the carts as they stood, per currency.
    pub face_value: Money,
    /// Free-shipping vouchers have no face value of their own.
    pub free_shipping: u64,
}

/// A cart the draft and the live campaign decide differently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DifferingCart {
    pub cart_id: CartId,
    /// Steps and channels, e.g. `1:email`.
    pub draft_sent: Vec<String>,
    pub live_sent: Vec<String>,
    /// The first decision of the replays that differs: the draft's and the live campaign's.
    pub first_difference: Option<(Option<Traced>, Option<Traced>)>,
}

/// The draft beside the live campaign on the same carts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub campaign_id: String,
    /// Carts the live campaign's message records say it entered (sent or held out).
    pub live_entering: u64,
    pub live_sent: u64,
    /// Carts where replaying the live campaign does not give its message
    /// records (0 is replay fidelity; more points at data the replay cannot
    /// see, e.g. a campaign edited during the period).
    pub replay_mismatches: u64,
    pub carts_deciding_differently: u64,
    pub differing: Vec<DifferingCart>,
    /// The draft's timelines of a few differing carts (`cartback explain` style).
    pub sample: Vec<CartTrace>,
}

/// Recovered orders and revenue the draft may bring, from the measured
/// rates of the live campaign's comparable steps and channels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// What the numbers are, or why there are none.
    pub basis: String,
    /// Summed over the rows with a measured rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_orders: Option<f64>,
    /// The rows' intervals summed: at least 95% coverage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_orders_ci95: Option<Interval>,
    /// `recovered_orders` split as the measured recovered orders are
    /// between currencies (a shop selling in EUR and USD gets two rows).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub recovered_orders_by_currency: BTreeMap<String, f64>,
    /// Each currency's recovered orders times its measured recovered order
    /// value: currencies are never added together.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub recovered_revenue: Money,
    /// The revenue at the ends of the orders' interval, per currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_revenue_ci95: Option<(Money, Money)>,
    pub rows: Vec<EstimateRow>,
}

/// One step and channel of the draft at the live campaign's measured rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EstimateRow {
    /// 1-based.
    pub step: u32,
    pub channel: Channel,
    /// The draft's sends.
    pub sent: u64,
    /// Where the rate comes from, or why this row has none.
    pub basis: String,
    /// Measured orders attributed per message sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders_per_message: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders_per_message_ci95: Option<Interval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders_ci95: Option<Interval>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestReport {
    pub campaign_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed_until: Option<DateTime<Utc>>,
    /// Carts in the period.
    pub carts: u64,
    /// Carts entering the draft (treated and held out).
    pub entering: u64,
    pub held_out: u64,
    pub steps: Vec<StepChannel>,
    pub suppressed: Vec<Suppressed>,
    /// Steps quiet hours deferred that then never went out, by what stopped
    /// them (mostly `purchased`: bought in the night, before the deferral ended).
    pub deferred_then_stopped: Vec<Suppressed>,
    pub vouchers: VoucherSummary,
    /// Sent messages times their channel's price.
    pub cost: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<Comparison>,
    pub estimate: Estimate,
}

/// The campaigns a replay runs: the stored ones (shadows too: their waits
/// time the checks), with `subject` in the place of `replaces` (or beside
/// them), enabled and live. In the place of a live campaign it runs under
/// that campaign's id, so the same customers are held out as live (the
/// holdout is a hash of the campaign id and the customer) and the two
/// replays differ only by what the draft changes.
fn lineup(live: &[Campaign], subject: &Campaign, replaces: Option<&str>) -> Vec<Campaign> {
    let mut subject = subject.clone();
    subject.enabled = true;
    subject.mode = CampaignMode::Live;
    let mut campaigns: Vec<Campaign> =
        live.iter().filter(|c| c.enabled && c.id != subject.id && Some(c.id.as_str()) != replaces).cloned().collect();
    if let Some(id) = replaces {
        subject.id = id.to_owned();
    }
    campaigns.push(subject);
    campaigns
}

/// A trace of the draft replayed under `replaced`'s id, told in the draft's name.
fn renamed(mut trace: CartTrace, replaced: &str, draft: &str) -> CartTrace {
    if replaced == draft {
        return trace;
    }
    if let Some((id, _)) = trace.entered.as_mut().filter(|(id, _)| id == replaced) {
        *id = draft.to_owned();
    }
    let (from, to) = (format!("{replaced:?}"), format!("{draft:?}"));
    for decision in &mut trace.decisions {
        decision.message = decision.message.replace(&from, &to);
    }
    trace
}

fn label((step, channel): (u32, Channel)) -> String {
    format!("{}:{}", step + 1, channel.as_str())
}

/// The measurement report's row of `campaign` over the period counted (the
/// history's days when `from`/`to` are not given): the rates an estimate
/// applies. `None` when the campaign is not stored or the history is empty.
pub async fn measured_rates<S: crate::ports::FactStore + ?Sized>(
    facts: &S,
    live: &[Campaign],
    campaign: &str,
    history: &History,
    period: (Option<NaiveDate>, Option<NaiveDate>),
    prices: &Prices,
    today: NaiveDate,
) -> Result<Option<CampaignReport>, crate::ports::PortError> {
    if !live.iter().any(|c| c.id == campaign) {
        return Ok(None);
    }
    let Some((first, last)) = history.days() else { return Ok(None) };
    let (from, to) = (period.0.unwrap_or(first), period.1.unwrap_or(last));
    let query = crate::measure::report::ReportQuery::new(Some(campaign.to_owned()), from, to);
    let report = match crate::service::report(facts, live, &query, prices, today.max(last)).await {
        Ok(report) => report,
        Err(crate::service::ReportError::Storage(error)) => return Err(error),
        // The campaign is known and the query built here: nothing else can be refused.
        Err(_) => return Ok(None),
    };
    Ok(report.campaigns.into_iter().find(|c| c.campaign_id == campaign))
}

/// Replays `history` with the draft (and the live campaign it is put
/// beside) and counts the outcome. `live` are the stored campaigns;
/// `measured` the measurement report's row of the live campaign for the
/// period, when there is one. `progress` is told how many carts are done.
pub fn run(
    history: &History,
    live: &[Campaign],
    options: &Options,
    measured: Option<&CampaignReport>,
    progress: &mut dyn FnMut(u64),
) -> Result<BacktestReport, BacktestError> {
    if let (Some(from), Some(to)) = (options.from, options.to) {
        if from > to {
            return Err(BacktestError::EmptyPeriod { from, to });
        }
    }
    let against = match &options.against {
        Some(id) => Some(
            live.iter()
                .find(|c| &c.id == id && !c.is_shadow())
                .ok_or_else(|| BacktestError::UnknownAgainst(id.clone()))?,
        ),
        None => None,
    };
    let draft_id = options.draft.id.as_str();
    // The id the draft runs under in the replay.
    let replay_id = against.map_or(draft_id, |c| c.id.as_str());
    let draft_lineup = lineup(live, &options.draft, against.map(|c| c.id.as_str()));
    let live_lineup = against.map(|c| lineup(live, c, None));
    let until = options.until.or(history.latest).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let from = options.from.and_then(|day| day.and_hms_opt(0, 0, 0)).map(|t| t.and_utc());
    let draft_setup = Setup { campaigns: &draft_lineup, channels: &options.channels, until, from };
    let live_setup = live_lineup.as_ref().map(|c| Setup { campaigns: c, channels: &options.channels, until, from });
    let seed_index = history.seed_index();
    // What the live campaign's message records say it did, by cart.
    let mut live_did: HashMap<&CartId, LiveDid> = HashMap::new();
    if let Some(campaign) = against {
        for m in history.messages.values().filter(|m| m.campaign_id == campaign.id) {
            let entry = live_did.entry(&m.cart_id).or_default();
            entry.1 = true;
            if !matches!(m.status, MessageStatus::HeldOut { .. }) {
                entry.0.insert((m.step, m.channel));
            }
        }
    }
    let in_period = |record: &crate::ports::CartRecord| {
        let Some(first) = record.events.first().map(|e| e.occurred_at.date_naive()) else { return false };
        options.from.is_none_or(|from| first >= from) && options.to.is_none_or(|to| first <= to)
    };

    let mut tally = Tally::default();
    let mut comparison = against.map(|c| Comparison {
        campaign_id: c.id.clone(),
        live_entering: 0,
        live_sent: 0,
        replay_mismatches: 0,
        carts_deciding_differently: 0,
        differing: Vec::new(),
        sample: Vec::new(),
    });
    let mut done = 0u64;
    for customer in &history.customers {
        let seeds = seed_index.seeds(customer, |record| draft_setup.replays(record));
        let drafted = replay_customer(&draft_setup, customer, &history.messages, &seeds);
        let drafted: Vec<CartTrace> = drafted.into_iter().map(|t| renamed(t, replay_id, draft_id)).collect();
        let lived = live_setup.as_ref().map(|setup| replay_customer(setup, customer, &history.messages, &seeds));
        for (index, record) in customer.carts.iter().enumerate() {
            done += 1;
            if !in_period(record) {
                continue;
            }
            let draft = &drafted[index];
            tally.add(draft, draft_id);
            let (Some(comparison), Some(lived)) = (comparison.as_mut(), lived.as_ref()) else { continue };
            let replayed_live = &lived[index];
            let (did, entered) = live_did.get(&record.cart_id).cloned().unwrap_or_default();
            comparison.live_entering += u64::from(entered);
            comparison.live_sent += did.len() as u64;
            for (step, channel) in &did {
                *tally.live_sent.entry((*step, *channel)).or_default() += 1;
            }
            // A cart another live campaign took sends nothing for --against, as live recorded.
            let replayed: BTreeSet<(u32, Channel)> = if replayed_live.entered(&comparison.campaign_id) {
                replayed_live.sends().collect()
            } else {
                BTreeSet::new()
            };
            if replayed != did {
                comparison.replay_mismatches += 1;
            }
            let draft_sent: BTreeSet<(u32, Channel)> =
                if draft.entered(draft_id) { draft.sends().collect() } else { BTreeSet::new() };
            if draft_sent != did {
                comparison.carts_deciding_differently += 1;
                if comparison.differing.len() < MAX_DIFFERING_LISTED {
                    comparison.differing.push(DifferingCart {
                        cart_id: record.cart_id.clone(),
                        draft_sent: draft_sent.iter().copied().map(label).collect(),
                        live_sent: did.iter().copied().map(label).collect(),
                        first_difference: first_difference(draft, replayed_live),
                    });
                }
                if comparison.sample.len() < SAMPLE_TIMELINES {
                    comparison.sample.push(draft.clone());
                }
            }
        }
        progress(done);
    }
    let live_sent = against.is_some().then(|| std::mem::take(&mut tally.live_sent));
    let estimate = estimate(measured, against, &tally.rows);
    Ok(BacktestReport {
        campaign_id: draft_id.to_owned(),
        from: options.from,
        to: options.to,
        replayed_until: history.latest.map(|_| until),
        carts: tally.carts,
        entering: tally.entering,
        held_out: tally.held_out,
        steps: tally.rows(live_sent.as_ref()),
        suppressed: Suppressed::rows(&tally.suppressed),
        deferred_then_stopped: Suppressed::rows(&tally.deferred_then_stopped),
        cost: tally.cost(&options.prices),
        vouchers: tally.vouchers,
        against: comparison,
        estimate,
    })
}

/// A cart's steps and channels the live campaign sent, and whether it entered.
type LiveDid = (BTreeSet<(u32, Channel)>, bool);

/// The first decision where the two replays of a cart part ways (same
/// outcome, step, channel and reason count as the same decision): the
/// draft's and the live campaign's, `None` where one had stopped deciding
/// (or the history ended first).
fn first_difference(draft: &CartTrace, live: &CartTrace) -> Option<(Option<Traced>, Option<Traced>)> {
    let key = |d: &Traced| (d.outcome, d.step, d.channel, d.code);
    let length = draft.decisions.len().max(live.decisions.len());
    (0..length).find_map(|index| {
        let (ours, theirs) = (draft.decisions.get(index), live.decisions.get(index));
        (ours.map(key) != theirs.map(key)).then(|| (ours.cloned(), theirs.cloned()))
    })
}

/// Counts of the draft's replay over the carts of the period.
#[derive(Default)]
struct Tally {
    carts: u64,
    entering: u64,
    held_out: u64,
    rows: BTreeMap<(u32, Channel), StepChannel>,
    live_sent: BTreeMap<(u32, Channel), u64>,
    /// Keyed by 0-based step and reason.
    suppressed: BTreeMap<(u32, ReasonCode), u64>,
    /// Keyed by 0-based step and the reason that stopped it after quiet hours deferred it.
    deferred_then_stopped: BTreeMap<(u32, ReasonCode), u64>,
    vouchers: VoucherSummary,
}

impl Tally {
    fn add(&mut self, trace: &CartTrace, campaign_id: &str) {
        self.carts += 1;
        // A cart another live campaign took is not the draft's to count; one
        // no campaign took still shows why the draft left it alone.
        match &trace.entered {
            Some((id, _)) if id != campaign_id => return,
            Some(_) => self.entering += 1,
            None => {}
        }
        if trace.entered.as_ref().is_some_and(|(_, group)| *group == crate::measure::Group::HeldOut) {
            self.held_out += 1;
        }
        let mut deferred: BTreeSet<u32> = BTreeSet::new();
        // Steps sent or held out: a deferral of theirs ended in a decision.
        let mut decided: BTreeSet<u32> = BTreeSet::new();
        // A cart stopped again after each later edit is one cart suppressed.
        let mut suppressed: BTreeSet<(u32, ReasonCode)> = BTreeSet::new();
        let mut deferred_then_stopped: Option<(u32, ReasonCode)> = None;
        for traced in &trace.decisions {
            if matches!(traced.outcome, Outcome::Sent | Outcome::HeldOut) {
                decided.insert(traced.step);
            }
            // The first stop of a deferred step is what ended the deferral.
            if matches!(traced.outcome, Outcome::Skipped | Outcome::Stopped) && deferred.contains(&traced.step) {
                deferred_then_stopped.get_or_insert((traced.step, traced.code));
            }
            match (traced.outcome, traced.channel) {
                (Outcome::Sent, Some(channel)) => {
                    let row = self.row(traced.step, channel);
                    row.sent += 1;
                    row.deferred += u64::from(deferred.contains(&traced.step));
                    if let Some(voucher) = &traced.voucher {
                        self.vouchers.issued += 1;
                        match voucher.face_value {
                            Some(value) => {
                                *self.vouchers.face_value.entry(voucher.terms.currency.clone()).or_default() += value;
                            }
                            None => self.vouchers.free_shipping += 1,
                        }
                    }
                }
                (Outcome::HeldOut, Some(channel)) => self.row(traced.step, channel).held_out += 1,
                (Outcome::Deferred, _) => {
                    deferred.insert(traced.step);
                }
                (Outcome::Skipped | Outcome::Stopped, _)
                    if counts_as_suppressed(traced.code) && suppressed.insert((traced.step, traced.code)) =>
                {
                    *self.suppressed.entry((traced.step, traced.code)).or_default() += 1;
                }
                _ => {}
            }
        }
        // Unless a later edit brought the step back and it went out.
        if let Some(key) = deferred_then_stopped.filter(|(step, _)| !decided.contains(step)) {
            *self.deferred_then_stopped.entry(key).or_default() += 1;
        }
    }

    /// The row of a 0-based step and channel.
    fn row(&mut self, step: u32, channel: Channel) -> &mut StepChannel {
        self.rows.entry((step, channel)).or_insert_with(|| StepChannel::new(step, channel))
    }

    fn rows(&mut self, live_sent: Option<&BTreeMap<(u32, Channel), u64>>) -> Vec<StepChannel> {
        if let Some(live) = live_sent {
            for &(step, channel) in live.keys() {
                self.row(step, channel);
            }
            for (key, row) in self.rows.iter_mut() {
                let sent = live.get(key).copied().unwrap_or(0);
                row.live_sent = Some(sent);
                row.difference = Some(row.sent as i64 - sent as i64);
            }
        }
        self.rows.values().cloned().collect()
    }

    fn cost(&self, prices: &Prices) -> Money {
        let total: Decimal = self
            .rows
            .values()
            .map(|row| prices.per_message.get(&row.channel).copied().unwrap_or_default() * Decimal::from(row.sent))
            .sum();
        Money::from([(prices.currency.clone(), total)])
    }
}

/// A stop that kept a step from going out, as opposed to the end of a
/// sequence or a cart that needs no reminder.
fn counts_as_suppressed(code: ReasonCode) -> bool {
    !matches!(
        code,
        ReasonCode::SequenceCompleted
            | ReasonCode::Purchased
            | ReasonCode::CartEmptied
            | ReasonCode::NothingInCart
            | ReasonCode::WaitingForInactivity
            | ReasonCode::WaitingForNextStep
    )
}

/// Recovered orders and revenue for the draft's sends, row by row, at the
/// live campaign's measured orders per message of the same step on the
/// same channel. A row is comparable only where the measurement report's
/// step row measures that one channel (the live step sends on it alone, or
/// the campaign sent on no other channel); elsewhere the row says so and
/// adds nothing.
fn estimate(
    measured: Option<&CampaignReport>,
    against: Option<&Campaign>,
    rows: &BTreeMap<(u32, Channel), StepChannel>,
) -> Estimate {
    let none = |basis: String, rows: Vec<EstimateRow>| Estimate {
        basis,
        recovered_orders: None,
        recovered_orders_ci95: None,
        recovered_orders_by_currency: BTreeMap::new(),
        recovered_revenue: Money::new(),
        recovered_revenue_ci95: None,
        rows,
    };
    let Some(against) = against else {
        return none("No estimate: name a live campaign with --against to use its measured rates.".into(), Vec::new());
    };
    let id = &against.id;
    let Some(report) = measured.filter(|r| r.messages.sent > 0) else {
        return none(
            format!(
                "No estimate: the measurement report has no messages of campaign {id:?} in this period, so there \
                 is no measured rate to apply."
            ),
            Vec::new(),
        );
    };
    let channels_sent: Vec<Channel> =
        report.by_channel.iter().filter(|(_, counts)| counts.sent > 0).map(|(channel, _)| *channel).collect();
    let estimated: Vec<EstimateRow> = rows
        .values()
        .filter(|row| row.sent > 0)
        .map(|row| {
            let (step, channel) = (row.step, row.channel);
            let row = EstimateRow {
                step,
                channel,
                sent: row.sent,
                basis: String::new(),
                orders_per_message: None,
                orders_per_message_ci95: None,
                orders: None,
                orders_ci95: None,
            };
            let measured_step = report.by_step.get(&step).filter(|counts| counts.sent > 0);
            let live_channels = against.steps.get(step as usize - 1).map(|s| {
                let mut all: BTreeSet<Channel> = s.channels.mobile.iter().chain(&s.channels.desktop).copied().collect();
                all.retain(|c| channels_sent.contains(c));
                all
            });
            let one_channel =
                live_channels.is_some_and(|all| all.len() == 1 && all.contains(&channel)) || channels_sent == [channel];
            let Some(counts) = measured_step.filter(|_| one_channel) else {
                let basis = format!(
                    "No comparable measured rate: campaign {id:?} has no messages measured for step {step} on {} \
                     alone in this period.",
                    channel.as_str()
                );
                return EstimateRow { basis, ..row };
            };
            let rate = crate::measure::stats::rate(counts.attributed_orders, counts.sent);
            let ci = crate::measure::stats::rate_interval(counts.attributed_orders, counts.sent);
            let n = row.sent as f64;
            EstimateRow {
                basis: format!(
                    "Campaign {id:?}'s step {step} on {}: {} messages sent, {} orders attributed to them.",
                    channel.as_str(),
                    counts.sent,
                    counts.attributed_orders
                ),
                orders_per_message: Some(rate),
                orders_per_message_ci95: Some(ci),
                orders: Some(rate * n),
                orders_ci95: Some(crate::measure::stats::scale(ci, n)),
                ..row
            }
        })
        .collect();
    let with_rates: Vec<&EstimateRow> = estimated.iter().filter(|r| r.orders.is_some()).collect();
    if with_rates.is_empty() {
        return none(
            format!("No estimate: no step and channel of the draft has a comparable measured rate in campaign {id:?}."),
            estimated,
        );
    }
    let orders: f64 = with_rates.iter().filter_map(|r| r.orders).sum();
    let ci = with_rates
        .iter()
        .filter_map(|r| r.orders_ci95)
        .fold(Interval(0.0, 0.0), |sum, i| Interval(sum.0 + i.0, sum.1 + i.1));
    // Orders split between currencies as the measured recovered orders are,
    // each currency's at the average of its own recovered orders.
    let measured_orders: u64 = report.recovered_orders_by_currency.values().sum();
    let by_currency = |orders: f64| -> BTreeMap<String, f64> {
        report
            .recovered_orders_by_currency
            .iter()
            .filter(|(currency, _)| report.aov_recovered.contains_key(*currency))
            .map(|(currency, n)| (currency.clone(), orders * *n as f64 / measured_orders as f64))
            .collect()
    };
    let revenue_at = |orders: f64| -> Money {
        by_currency(orders)
            .into_iter()
            .filter_map(|(currency, orders)| {
                let value = Decimal::from_f64_retain(orders)? * *report.aov_recovered.get(&currency)?;
                Some((currency, value.round_dp(2)))
            })
            .collect()
    };
    let (orders_by_currency, revenue, revenue_ci) = if measured_orders > 0 && !report.aov_recovered.is_empty() {
        (by_currency(orders), revenue_at(orders), Some((revenue_at(ci.0), revenue_at(ci.1))))
    } else {
        (BTreeMap::new(), Money::new(), None)
    };
    let missing = estimated.len() - with_rates.len();
    let value = if revenue_ci.is_some() {
        "split between currencies as its recovered orders are, each at the average value of its recovered \
         orders in that currency"
    } else {
        "with no recovered order of measured value, so no revenue"
    };
    Estimate {
        basis: format!(
            "Estimate from measured rates, not a measurement of the draft: each step and channel of the draft at \
             campaign {id:?}'s orders attributed per message of the same step and channel in this period \
             (intervals summed), {value}.{}",
            if missing > 0 {
                format!(
                    " {missing} of the draft's steps and channels have no comparable measured rate and are left out."
                )
            } else {
                String::new()
            }
        ),
        recovered_orders: Some(orders),
        recovered_orders_ci95: Some(ci),
        recovered_orders_by_currency: orders_by_currency,
        recovered_revenue: revenue,
        recovered_revenue_ci95: revenue_ci,
        rows: estimated,
    }
}

#[cfg(test)]
mod tests;
