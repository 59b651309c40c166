//! The report: per campaign and in total, what the campaign's carts did
//! against its holdout, computed from facts by one pure function
//! (`build_report`, same numbers on both runtimes for the same facts).
//! Field names are the documented JSON contract (README, "Measurement").
//! Every rate comes with its 95% interval; amounts are decimal and kept per
//! currency (a map from ISO 4217 code to amount), never summed across.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::message::Channel;

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
    /// How long after a message an order is attributed to it (default 24h).
    pub attribution_window: Duration,
    /// Per-channel windows that replace `attribution_window` for that channel.
    pub channel_windows: BTreeMap<Channel, Duration>,
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

/// One campaign's results (or all campaigns' in `Report::total`).
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
    pub aov_all_orders: Money,
    /// Messages sent times their channel's price (plus discounts, once vouchers exist).
    pub cost: Money,
    pub cost_per_incremental_order: Option<Money>,
    /// Recovered revenue (net of returns) per treated cart that got a message.
    pub revenue_per_recipient: Money,
    pub messages: MessageCounts,
    pub by_channel: BTreeMap<Channel, MessageCounts>,
    /// Keyed by step number, 1-based.
    pub by_step: BTreeMap<u32, MessageCounts>,
    pub variants: Vec<VariantReport>,
    pub segments: Vec<SliceReport>,
    pub days: Vec<DayReport>,
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
}

/// The treated and held-out comparison within one slice (a segment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceReport {
    pub name: String,
    pub treated: u64,
    pub held_out: u64,
    pub recovered_treated: u64,
    pub recovered_held_out: u64,
    pub recovery_rate_treated: f64,
    pub recovery_rate_held_out: f64,
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
