//! The decision engine: `decide(input) -> Decision`, pure. No I/O, no clock,
//! no randomness: the same input always gives the same decision, which is
//! what makes the rules testable by simulation and explainable per cart.
//!
//! `decide` is the list of rules in the order they apply; the first rule that
//! decides (stop, wait) ends it, and a cart that passes them all gets its
//! step sent. The rules live beside this file: `rules.rs` (cart, campaign,
//! timing, engagement, caps, quiet hours), `channels.rs` (which channel
//! carries the step), `quiet_hours.rs` (local time arithmetic) and
//! `recheck.rs` (the rules asked again right before a send).

mod channels;
mod quiet_hours;
mod recheck;
mod rules;

use std::ops::ControlFlow;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::campaign::{Campaign, Step};
use crate::cart::Cart;
use crate::customer::Customer;
use crate::event::CustomerPatch;
use crate::ids::MessageId;
use crate::message::{Channel, MessageRecord, Recipient};
use crate::reason::{Reason, ReasonCode};

pub use quiet_hours::{customer_time_zone, quiet_until};
pub use recheck::{recheck_before_send, Recheck};

/// What a cart has been through in its campaign, stored on the cart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    #[serde(default)]
    pub steps: Vec<StepDispatched>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDispatched {
    pub step: u32,
    pub channel: Channel,
    pub message_id: MessageId,
    pub at: DateTime<Utc>,
}

impl Progress {
    pub fn record(&mut self, campaign_id: &str, step: u32, channel: Channel, message_id: MessageId, at: DateTime<Utc>) {
        self.campaign_id = Some(campaign_id.to_owned());
        if !self.steps.iter().any(|s| s.step == step) {
            self.steps.push(StepDispatched { step, channel, message_id, at });
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Wait { until: DateTime<Utc>, reason: Reason },
    Send { campaign_id: String, step: u32, channel: Channel, to: Recipient, template: String, reason: Reason },
    Stop { reason: Reason },
}

impl Decision {
    pub fn reason(&self) -> &Reason {
        match self {
            Decision::Wait { reason, .. } | Decision::Send { reason, .. } | Decision::Stop { reason } => reason,
        }
    }
}

/// Everything the engine may look at. The caller loads it; the engine only reads.
pub struct Input<'a> {
    pub cart: &'a Cart,
    pub progress: &'a Progress,
    /// The customer's stored profile and history, when the cart has a customer id.
    pub customer: Option<&'a Customer>,
    /// Every campaign, enabled or not.
    pub campaigns: &'a [Campaign],
    /// Messages to this customer (all carts) within the longest cap window.
    pub history: &'a [MessageRecord],
    /// Channels the runtime can deliver; others are skipped like unreachable ones.
    pub channels: &'a [Channel],
    pub now: DateTime<Utc>,
}

impl Input<'_> {
    /// Contact data: the profile when the customer is known (newest consent
    /// wins there), otherwise what the guest typed on this cart.
    pub fn contact(&self) -> &CustomerPatch {
        match self.customer {
            Some(c) => &c.profile,
            None => &self.cart.contact,
        }
    }
}

/// What the engine decides for this cart now. Reads as the rules, in the
/// order they apply: the first rule that decides ends the evaluation.
pub fn decide(input: &Input) -> Decision {
    match send_unless_a_rule_decides(input) {
        ControlFlow::Break(decision) | ControlFlow::Continue(decision) => decision,
    }
}

fn send_unless_a_rule_decides(input: &Input) -> Rule<Decision> {
    let last_activity = rules::cart_awaits_recovery(input.cart)?;
    let campaign = rules::campaign_for_cart(input)?;
    let next = rules::next_step(input, campaign, last_activity)?;
    rules::wait_until_due(input, &next)?;
    rules::stop_after_engagement(input, &next)?;
    rules::pause_after_purchase(input, &next)?;
    rules::entry_cooldown(input, &next)?;
    let choice = channels::choose_channel(input, &next)?;
    rules::defer_in_quiet_hours(input, &next, choice.channel)?;
    ControlFlow::Continue(channels::send(&next, choice))
}

/// What a rule returns: `Break` with its decision when it decides, else
/// `Continue` with what the rules after it need.
type Rule<T = ()> = ControlFlow<Decision, T>;

/// The step a cart is at, and when it is due: what the rules after the
/// campaign choice look at.
struct NextStep<'a> {
    campaign: &'a Campaign,
    /// Zero-based position of `step` in the campaign.
    index: usize,
    step: &'a Step,
    /// The last step dispatched for this cart, if any.
    previous: Option<&'a StepDispatched>,
    last_activity: DateTime<Utc>,
    due: DateTime<Utc>,
}

impl NextStep<'_> {
    /// When the cart counts as abandoned: the first step's delay after the
    /// last activity. The SMS window runs from here.
    fn abandoned_at(&self) -> DateTime<Utc> {
        self.last_activity + self.campaign.steps[0].delay
    }

    /// The step's number as people count (1-based).
    fn number(&self) -> usize {
        self.index + 1
    }
}

fn stop<T>(code: ReasonCode, message: impl Into<String>) -> Rule<T> {
    ControlFlow::Break(Decision::Stop { reason: Reason::new(code, message) })
}

fn wait<T>(until: DateTime<Utc>, code: ReasonCode, message: impl Into<String>) -> Rule<T> {
    ControlFlow::Break(Decision::Wait { until, reason: Reason::new(code, message) })
}

fn human(d: Duration) -> String {
    let (n, unit) = if d.num_minutes() % (60 * 24) == 0 {
        (d.num_days(), "day")
    } else if d.num_minutes() % 60 == 0 {
        (d.num_hours(), "hour")
    } else {
        (d.num_minutes(), "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
