//! The rules asked again right before a decided message goes to its
//! provider. Between the decision and the send (a queue retry, a redrive
//! from the dead-letter queue days later) the world moves on: a purchase, a
//! withdrawn consent or an address suppressed after a bounce or complaint,
//! an unsubscribe, a snooze or an answer on the preference page, the SMS
//! window closing, the night falling. These are the same rule
//! functions `decide` runs, on fresh state; only the rules whose answer can
//! change after the decision are asked (caps were settled when the message
//! was counted, and asking them again would count the message against
//! itself).

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};

use super::{channels, rules, Decision, Input, NextStep, Progress, Rule};
use crate::message::MessageRecord;
use crate::reason::Reason;

/// What the last-moment check says about a decided message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// Nothing that happened since the decision stops it.
    Send,
    /// Not now (quiet hours): ask again at `until`.
    Defer { until: DateTime<Utc>, reason: Reason },
    /// Never: a rule now stops it.
    Cancel { reason: Reason },
}

/// Asks the rules again for `message` with fresh `input` (its cart, its
/// customer, the campaigns). `input.progress` is the cart's progress.
pub fn recheck_before_send(input: &Input, message: &MessageRecord) -> Recheck {
    match rules_that_can_change(input, message) {
        ControlFlow::Continue(()) => Recheck::Send,
        ControlFlow::Break(Decision::Wait { until, reason }) => Recheck::Defer { until, reason },
        ControlFlow::Break(
            Decision::Stop { reason }
            | Decision::Send { reason, .. }
            | Decision::Withhold { reason, .. }
            | Decision::Skip { reason, .. },
        ) => Recheck::Cancel { reason },
    }
}

fn rules_that_can_change(input: &Input, message: &MessageRecord) -> Rule {
    // A purchase on this cart, or the cart emptied.
    let last_activity = rules::cart_awaits_recovery(input.cart)?;
    // The customer answered on the preference page about this cart.
    rules::customer_answered(input.cart)?;
    // The campaign the message belongs to, disabled or deleted since.
    let progress = Progress {
        campaign_id: Some(message.campaign_id.clone()),
        steps: input.progress.steps.clone(),
        ..Progress::default()
    };
    let campaign = rules::campaign_for_cart(&Input { progress: &progress, ..*input })?;
    // A campaign edited down to fewer steps: the decided step keeps its content.
    let Some(step) = campaign.steps.get(message.step as usize) else { return ControlFlow::Continue(()) };
    let previous = progress.steps.iter().rev().find(|s| s.step < message.step);
    let next =
        NextStep { campaign, index: message.step as usize, step, previous, last_activity, due: message.decided_at };
    // A purchase by the same customer on any cart.
    rules::pause_after_purchase(input, &next)?;
    // Reminders snoozed on the preference page: cancelled, not deferred
    // (a message kept for after the snooze would greet the customer with
    // old news; the sequence goes on from the next step).
    rules::not_snoozed(input)?;
    // Consent withdrawn (by the customer: unsubscribed; or after a bounce or
    // complaint), a guest's email without the explicit consent the campaign
    // requires, the contact value gone, the SMS window closed.
    channels::still_open(input, &next, message.channel)?;
    // Too late: a job redriven past `max_send_delay` after its decision.
    rules::skip_when_too_late(input, &next)?;
    // Quiet hours: deferred, not dropped.
    rules::defer_in_quiet_hours(input, &next, message.channel)
}
