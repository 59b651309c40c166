//! The decision engine: `decide(input) -> Decision`, pure. No I/O, no clock,
//! no randomness: the same input always gives the same decision, which is
//! what makes the rules testable by simulation and explainable per cart.
//!
//! `decide` is the list of rules in the order they apply; the first rule that
//! decides (stop, wait) ends it, and a cart that passes them all gets its
//! step sent. The rules live beside this file: `rules.rs` (cart, the
//! customer's answers and snooze, campaign, timing, engagement, caps, quiet
//! hours), `channels.rs` (which channel carries the step: reachability,
//! consent, unsubscribes, explicit consent for guests, caps),
//! `vouchers.rs` (whether the message shows a voucher, and why),
//! `quiet_hours.rs` (local time arithmetic) and
//! `recheck.rs` (the rules asked again right before a send).

mod channels;
mod quiet_hours;
mod recheck;
mod rules;
mod vouchers;

use std::borrow::Cow;
use std::ops::ControlFlow;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::campaign::{Campaign, Step};
use crate::cart::Cart;
use crate::consent::ConsentChange;
use crate::customer::Customer;
use crate::event::CustomerPatch;
use crate::ids::{CustomerKey, MessageId};
use crate::measure::{assign_group, assign_variant, Group};
use crate::message::{Channel, MessageRecord, Recipient};
use crate::reason::{Reason, ReasonCode};
use crate::voucher::{Voucher, VoucherChoice};

pub use quiet_hours::{customer_time_zone, quiet_until};
pub use recheck::{recheck_before_send, Recheck};

/// What a cart has been through in its campaign, stored on the cart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    #[serde(default)]
    pub steps: Vec<StepDispatched>,
    /// The measurement group the cart entered the campaign in, kept so a
    /// changed `holdout_percent` never moves a cart halfway through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
    /// The experiment variant the cart entered the campaign in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDispatched {
    pub step: u32,
    pub channel: Channel,
    pub message_id: MessageId,
    /// When it was sent; for a skipped step, when it was due.
    pub at: DateTime<Utc>,
    /// Skipped as too late (`max_send_delay`): no message exists for it, and
    /// `channel` and `message_id` name none (see [`Progress::skip`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

impl Progress {
    /// Notes that the cart entered `campaign_id` in `group` and `variant`
    /// (see [`entry`]): the cart stays in that campaign and arm.
    pub fn begin(&mut self, campaign_id: &str, group: Group, variant: Option<&str>) {
        self.campaign_id.get_or_insert_with(|| campaign_id.to_owned());
        self.enter(group, variant);
    }

    /// Notes the group and variant the cart entered its campaign in (the
    /// first dispatch; later calls keep the first).
    pub fn enter(&mut self, group: Group, variant: Option<&str>) {
        if self.group.is_none() {
            self.group = Some(group);
            self.variant = variant.map(str::to_owned);
        }
    }

    pub fn record(&mut self, campaign_id: &str, step: u32, channel: Channel, message_id: MessageId, at: DateTime<Utc>) {
        self.campaign_id = Some(campaign_id.to_owned());
        if !self.steps.iter().any(|s| s.step == step) {
            self.steps.push(StepDispatched { step, channel, message_id, at, skipped: false });
        }
    }

    /// Records a step skipped as too late, at the time it was due (the next
    /// step counts from there). Its message id is a placeholder no message
    /// record ever has (ids of real messages start with `m_`).
    pub fn skip(&mut self, campaign_id: &str, step: u32, due: DateTime<Utc>) {
        self.campaign_id = Some(campaign_id.to_owned());
        if !self.steps.iter().any(|s| s.step == step) {
            let message_id = MessageId::from(format!("skipped_{step}"));
            self.steps.push(StepDispatched { step, channel: Channel::Email, message_id, at: due, skipped: true });
        }
    }

    /// A customer who comes back to the cart after a skipped step fell due
    /// makes it a live abandoned cart again: the skipped steps after the last
    /// real message are forgotten, so the sequence resumes as for a fresh
    /// cart (a backfilled cart touched again today gets its reminder).
    pub fn forget_skips_before(&mut self, last_activity: Option<DateTime<Utc>>) {
        let Some(last_activity) = last_activity else { return };
        let trailing = self.steps.iter().rev().take_while(|s| s.skipped).count();
        let first = self.steps.len() - trailing;
        if self.steps.get(first).is_some_and(|s| s.at < last_activity) {
            self.steps.truncate(first);
        }
    }

    /// The steps whose message was (or should have been) sent.
    pub fn dispatched(&self) -> impl Iterator<Item = &StepDispatched> {
        self.steps.iter().filter(|s| !s.skipped)
    }
}

/// What the engine decided. `Skip`: the step is too late to send
/// (`max_send_delay`); the caller records it as skipped ([`Progress::skip`])
/// and decides again for the next step.
///
/// `Withhold`: every rule let the step through and the engine would send it
/// on `channel`, but the cart is in the holdout (`group` `held_out`) or the
/// campaign is a shadow (`group` `shadow`): the caller records it as
/// dispatched (so caps and the next step count it) and sends nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Wait {
        until: DateTime<Utc>,
        reason: Reason,
    },
    Send {
        campaign_id: String,
        step: u32,
        channel: Channel,
        to: Recipient,
        template: String,
        /// A subject line template replacing the template's (experiments).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<String>,
        reason: Reason,
        /// Whether the message shows a voucher, and why (or why not).
        #[serde(default, skip_serializing_if = "VoucherChoice::is_not_offered")]
        voucher: VoucherChoice,
    },
    Withhold {
        campaign_id: String,
        step: u32,
        channel: Channel,
        group: Group,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<String>,
        reason: Reason,
        /// A held-out customer gets no voucher (measured without one).
        #[serde(default, skip_serializing_if = "VoucherChoice::is_not_offered")]
        voucher: VoucherChoice,
    },
    Skip {
        campaign_id: String,
        step: u32,
        due: DateTime<Utc>,
        reason: Reason,
    },
    Stop {
        reason: Reason,
    },
}

impl Decision {
    /// The voucher choice of a step sent or held out; `None` for the others
    /// and for a step without an offer.
    pub fn voucher(&self) -> Option<&VoucherChoice> {
        match self {
            Decision::Send { voucher, .. } | Decision::Withhold { voucher, .. } if !voucher.is_not_offered() => {
                Some(voucher)
            }
            _ => None,
        }
    }

    pub fn reason(&self) -> &Reason {
        match self {
            Decision::Wait { reason, .. }
            | Decision::Send { reason, .. }
            | Decision::Withhold { reason, .. }
            | Decision::Skip { reason, .. }
            | Decision::Stop { reason } => reason,
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
    /// The vouchers of the cart's owner issued within the longest voucher
    /// cap window, and the cart's own voucher if it has one.
    pub vouchers: &'a [Voucher],
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

    /// The consent changes behind [`Input::contact`]'s consents, oldest
    /// first: the customer's, or those of the guest's cart.
    pub fn consent_history(&self) -> &[ConsentChange] {
        match self.customer {
            Some(c) => &c.consent_history,
            None => &self.cart.consent_history,
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
    rules::customer_answered(input.cart)?;
    let campaign = rules::campaign_for_cart(input)?;
    let arm = Arm::of(input, campaign);
    follow_steps(input, campaign, &arm, last_activity)
}

/// What a shadow campaign would decide for this cart now: the same rules
/// as [`decide`], with `input.progress` and `input.history` the shadow's
/// own; where it would send, a [`Decision::Withhold`] in group `shadow`.
pub fn decide_shadow(input: &Input, shadow: &Campaign) -> Decision {
    let decided = (|| {
        let last_activity = rules::cart_awaits_recovery(input.cart)?;
        rules::customer_answered(input.cart)?;
        rules::shadow_applies(input, shadow)?;
        let arm = Arm::of(input, shadow);
        follow_steps(input, shadow, &arm, last_activity)
    })();
    match decided {
        ControlFlow::Break(decision) | ControlFlow::Continue(decision) => decision,
    }
}

/// Whether the cart enters its campaign now, and in which arm: the campaign
/// and the arm when it would first message the cart (or hold it out) now.
/// In a campaign running an experiment, that moment is the earliest first
/// step among the variants, whatever the cart's own variant, so every
/// variant's carts enter at the same moment under the same rules: a variant
/// whose first message comes a day later still counts, as its own, the carts
/// bought in between (a later entry would leave out those easy buyers and
/// make the earlier variant look better). `None` while the cart waits, or
/// when a rule stops it.
pub fn entry(input: &Input) -> Option<(String, Arm)> {
    let last_activity = rules::cart_awaits_recovery(input.cart).continue_value()?;
    rules::customer_answered(input.cart).continue_value()?;
    let campaign = rules::campaign_for_cart(input).continue_value()?;
    let arm = Arm::of(input, campaign);
    let earliest = Arm { group: arm.group, variant: campaign.earliest_variant().or(arm.variant.clone()) };
    match follow_steps(input, campaign, &earliest, last_activity) {
        ControlFlow::Continue(Decision::Send { .. } | Decision::Withhold { .. }) => Some((campaign.id.clone(), arm)),
        _ => None,
    }
}

/// Where a cart stands in a campaign's measurement: its group and, when the
/// campaign runs an experiment, its variant (index and name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arm {
    pub group: Group,
    pub variant: Option<(usize, String)>,
}

impl Arm {
    /// The arm the cart entered in (kept on its progress), or for a cart
    /// not yet entered the stable hash of the campaign's (or experiment's)
    /// id and the customer key: no randomness, the same customer lands in
    /// the same arm on every cart.
    pub fn of(input: &Input, campaign: &Campaign) -> Arm {
        let key = CustomerKey::for_cart(input.cart.customer_id.as_ref(), &input.cart.cart_id);
        let group = match (input.progress.group, campaign.is_shadow()) {
            (Some(group), _) => group,
            (None, true) => Group::Shadow,
            (None, false) => assign_group(&campaign.id, campaign.holdout_percent, &key),
        };
        let variant = campaign.experiment.as_ref().and_then(|experiment| {
            let entered =
                input.progress.variant.as_ref().and_then(|name| {
                    experiment.variants.iter().position(|v| &v.name == name).map(|i| (i, name.clone()))
                });
            entered.or_else(|| {
                let index = assign_variant(&experiment.id, &experiment.weights(), &key)?;
                Some((index, experiment.variants.get(index)?.name.clone()))
            })
        });
        Arm { group, variant }
    }

    pub fn variant_name(&self) -> Option<&str> {
        self.variant.as_ref().map(|(_, name)| name.as_str())
    }
}

/// The rules from the step on, for the campaign as the cart's variant sees it.
fn follow_steps(input: &Input, campaign: &Campaign, arm: &Arm, last_activity: DateTime<Utc>) -> Rule<Decision> {
    let campaign = match &arm.variant {
        Some((index, _)) => Cow::Owned(campaign.with_variant(*index)),
        None => Cow::Borrowed(campaign),
    };
    let next = rules::next_step(input, &campaign, last_activity)?;
    rules::wait_while_snoozed(input, &next)?;
    rules::wait_until_due(input, &next)?;
    rules::stop_after_engagement(input, &next)?;
    rules::pause_after_purchase(input, &next)?;
    rules::skip_when_too_late(input, &next)?;
    rules::entry_cooldown(input, &next)?;
    let choice = channels::choose_channel(input, &next)?;
    rules::defer_in_quiet_hours(input, &next, choice.channel)?;
    ControlFlow::Continue(channels::send(input, &next, choice, arm))
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
    /// The last step whose message was dispatched for this cart (skipped
    /// steps sent nothing), if any.
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
