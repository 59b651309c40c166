//! Backtest a draft campaign over real history before it touches a
//! customer: every stored cart replayed through the engine on a virtual
//! clock ([`replay`]), with the customers' consents as they were at each
//! point ([`history::customer_as_of`]), the same caps, cooldowns, quiet hours
//! and message history rules as live; then counted ([`run`]): carts
//! entering, per step and channel what would be sent, deferred and
//! suppressed, vouchers and their face value, the sending cost, the draft
//! beside what the live campaign actually did, and an estimate of recovered
//! orders from measured rates (or a sentence saying there are none).

pub mod history;
pub mod replay;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::campaign::{Campaign, CampaignMode};
use crate::ids::CartId;
use crate::measure::report::{CampaignReport, Evidence, Interval, Money, Prices};
use crate::message::{Channel, MessageStatus};
use crate::reason::ReasonCode;

pub use history::{history_from_events, load_history, CustomerCarts, History, HistoryBuilder};
pub use replay::{replay_customer, CartTrace, Outcome, Setup, Traced};

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
    /// earlier carts are still replayed, for the caps they set off.
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

/// Steps that did not go out, by the engine's reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppressed {
    pub step: u32,
    pub code: ReasonCode,
    pub carts: u64,
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

/// Recovered orders the draft may bring, from measured rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// What the numbers are, or why there are none.
    pub basis: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_orders: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_orders_ci95: Option<Interval>,
    /// Orders the messages add over no messages (the measured lift).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental_orders: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental_orders_ci95: Option<Interval>,
    /// Recovered orders times the measured recovered order value, per currency.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub recovered_revenue: Money,
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
    pub vouchers: VoucherSummary,
    /// Sent messages times their channel's price.
    pub cost: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<Comparison>,
    pub estimate: Estimate,
}

/// The campaigns a replay runs: the live ones, with `subject` in the place
/// of `replaces` (or beside them), enabled and live.
fn lineup(live: &[Campaign], subject: &Campaign, replaces: Option<&str>) -> Vec<Campaign> {
    let mut subject = subject.clone();
    subject.enabled = true;
    subject.mode = CampaignMode::Live;
    let mut campaigns: Vec<Campaign> = live
        .iter()
        .filter(|c| c.enabled && !c.is_shadow() && c.id != subject.id && Some(c.id.as_str()) != replaces)
        .cloned()
        .collect();
    campaigns.push(subject);
    campaigns
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
    let draft_lineup = lineup(live, &options.draft, against.map(|c| c.id.as_str()));
    let live_lineup = against.map(|c| lineup(live, c, None));
    let until = options.until.or(history.latest).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let draft_setup = Setup { campaigns: &draft_lineup, channels: &options.channels, until };
    let live_setup = live_lineup.as_ref().map(|c| Setup { campaigns: c, channels: &options.channels, until });
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
        let drafted = replay_customer(&draft_setup, customer, &history.messages);
        let lived = live_setup.as_ref().map(|setup| replay_customer(setup, customer, &history.messages));
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
            let replayed: BTreeSet<(u32, Channel)> = replayed_live.sends().collect();
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
    let estimate = estimate(measured, against.map(|c| c.id.as_str()), tally.entering - tally.held_out);
    Ok(BacktestReport {
        campaign_id: draft_id.to_owned(),
        from: options.from,
        to: options.to,
        replayed_until: history.latest.map(|_| until),
        carts: tally.carts,
        entering: tally.entering,
        held_out: tally.held_out,
        steps: tally.rows(live_sent.as_ref()),
        suppressed: tally
            .suppressed
            .iter()
            .map(|((step, code), carts)| Suppressed { step: step + 1, code: *code, carts: *carts })
            .collect(),
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
        for traced in &trace.decisions {
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
                (Outcome::Skipped | Outcome::Stopped, _) if counts_as_suppressed(traced.code) => {
                    *self.suppressed.entry((traced.step, traced.code)).or_default() += 1;
                }
                _ => {}
            }
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

/// Recovered orders for `treated` carts of the draft at the live campaign's
/// measured rates, when the report has them with enough carts in each arm.
fn estimate(measured: Option<&CampaignReport>, against: Option<&str>, treated: u64) -> Estimate {
    let none = |basis: String| Estimate {
        basis,
        recovered_orders: None,
        recovered_orders_ci95: None,
        incremental_orders: None,
        incremental_orders_ci95: None,
        recovered_revenue: Money::new(),
    };
    let Some(against) = against else {
        return none("No estimate: name a live campaign with --against to use its measured recovery rates.".into());
    };
    let Some(report) = measured.filter(|r| r.treated > 0) else {
        return none(format!(
            "No estimate: the measurement report has no carts of campaign {against:?} in this period, \
             so there is no measured recovery rate to apply."
        ));
    };
    if report.evidence == Evidence::NotEnoughData || report.held_out == 0 {
        return none(format!(
            "No estimate: campaign {against:?} has {} treated and {} held-out carts in this period, too few \
             for a measured recovery rate with a meaningful interval.",
            report.treated, report.held_out
        ));
    }
    let n = treated as f64;
    let scale = |Interval(low, high): Interval| Interval(low * n, high * n);
    let recovered = report.recovery_rate_treated * n;
    let recovered_revenue = if report.recovered_treated > 0 {
        report
            .aov_recovered
            .iter()
            .filter_map(|(currency, aov)| {
                let value = aov.to_f64()? * recovered;
                Some((currency.clone(), Decimal::from_f64_retain(value)?.round_dp(2)))
            })
            .collect()
    } else {
        Money::new()
    };
    Estimate {
        basis: format!(
            "Estimate from measured rates: campaign {against:?} recovered {:.1}% of treated carts (95% interval \
             {:.1} to {:.1}) with a lift of {:.1} points over the holdout; applied to the draft's {treated} treated \
             carts. Not a measurement of the draft.",
            report.recovery_rate_treated * 100.0,
            report.recovery_rate_treated_ci95.0 * 100.0,
            report.recovery_rate_treated_ci95.1 * 100.0,
            report.lift * 100.0
        ),
        recovered_orders: Some(recovered),
        recovered_orders_ci95: Some(scale(report.recovery_rate_treated_ci95)),
        incremental_orders: Some(report.lift * n),
        incremental_orders_ci95: Some(scale(report.lift_ci95)),
        recovered_revenue,
    }
}

#[cfg(test)]
mod tests;
