//! The rules of `decide`, in the order they apply. Each one either decides
//! (`ControlFlow::Break`) or lets the cart through to the next.

use std::ops::ControlFlow::{self, Continue};

use chrono::{DateTime, Duration, Utc};

use super::{human, stop, wait, Decision, Input, NextStep, Rule};
use crate::campaign::{Campaign, DelayFrom, Segment};
use crate::cart::{Cart, CartStatus};
use crate::consent::AnswerReason;
use crate::customer::Customer;
use crate::engagement::EngagementLabel;
use crate::message::Channel;
use crate::reason::{Reason, ReasonCode};

/// Purchase and emptied cart: only an active cart with something added is
/// worth a reminder. Lets through the cart's last activity.
pub(super) fn cart_awaits_recovery(cart: &Cart) -> Rule<DateTime<Utc>> {
    match (cart.status, cart.last_activity_at) {
        (CartStatus::Converted, _) => {
            stop(ReasonCode::Purchased, "The customer bought this cart; nothing more is sent.")
        }
        (CartStatus::Emptied, _) => stop(ReasonCode::CartEmptied, "The cart was emptied; there is nothing to recover."),
        (CartStatus::Browsing, _) | (CartStatus::Active, None) => {
            stop(ReasonCode::NothingInCart, "Nothing was ever added to this cart.")
        }
        (CartStatus::Active, Some(last_activity)) => Continue(last_activity),
    }
}

/// The customer's answers on the preference page end this cart's
/// reminders, whatever the campaign: "I already bought" as
/// `already_bought` (the shop learns a purchase it did not see), any
/// other answer ("not interested", "too many messages", free text) as
/// `unsubscribed` from this cart's reminders. Other carts are not
/// affected: the customer answered about this one.
pub(super) fn customer_answered(cart: &Cart) -> Rule {
    if cart.answers.iter().any(|a| a.reason == AnswerReason::AlreadyBought) {
        return stop(
            ReasonCode::AlreadyBought,
            "The customer told us they already bought this cart (preference page); nothing more is sent.",
        );
    }
    match cart.answers.last() {
        None => Continue(()),
        Some(answer) => stop(
            ReasonCode::Unsubscribed,
            format!(
                "The customer asked for no more reminders about this cart (preference page, answer {:?}).",
                answer.reason.as_str()
            ),
        ),
    }
}

/// When the customer snoozed cart reminders (preference page), until when,
/// if that is still ahead.
fn snoozed_until(input: &Input) -> Option<DateTime<Utc>> {
    // A snooze given on this cart while it was a guest's holds after the
    // cart is identified (the engine then reads the customer's profile).
    input.contact().snoozed_until.max(input.cart.contact.snoozed_until).filter(|until| *until > input.now)
}

/// Snooze: a step that falls due while the customer snoozed reminders
/// waits until the snooze ends; then the rules apply as for any late step
/// (one found more than `max_send_delay` after it fell due is skipped). A
/// step due after the snooze ends waits for its own time.
pub(super) fn wait_while_snoozed(input: &Input, next: &NextStep) -> Rule {
    let Some(until) = snoozed_until(input).filter(|until| *until > next.due) else { return Continue(()) };
    wait(
        until,
        ReasonCode::Snoozed,
        format!(
            "The customer snoozed cart reminders until {} (preference page); step {} of campaign {:?}, due at {}, \
             waits until then.",
            until.to_rfc3339(),
            next.number(),
            next.campaign.id,
            next.due.to_rfc3339()
        ),
    )
}

/// Snooze, asked right before a send: a message decided before the
/// customer snoozed is not sent (nor kept for after the snooze: the
/// sequence resumes from the next step, if still in time).
pub(super) fn not_snoozed(input: &Input) -> Rule {
    let Some(until) = snoozed_until(input) else { return Continue(()) };
    stop(
        ReasonCode::Snoozed,
        format!("The customer snoozed cart reminders until {} (preference page).", until.to_rfc3339()),
    )
}

/// Entry and campaign choice: a cart stays in the campaign it entered while
/// that campaign is enabled; a new cart enters the highest-priority enabled
/// campaign whose entry filters match.
pub(super) fn campaign_for_cart<'a>(input: &Input<'a>) -> Rule<&'a Campaign> {
    let Some(id) = &input.progress.campaign_id else {
        return choose_campaign(input);
    };
    match input.campaigns.iter().find(|c| &c.id == id) {
        Some(c) if c.is_shadow() => stop(
            ReasonCode::CampaignDisabled,
            format!("Campaign {id:?} was switched to shadow mode; its pending steps are not sent."),
        ),
        Some(c) if c.enabled => Continue(c),
        Some(_) => {
            stop(ReasonCode::CampaignDisabled, format!("Campaign {id:?} was disabled; its pending steps are not sent."))
        }
        None => stop(
            ReasonCode::CampaignDisabled,
            format!("Campaign {id:?} no longer exists; its pending steps are not sent."),
        ),
    }
}

/// Shadow campaigns are never a cart's live campaign: they run beside it
/// (see [`shadow_applies`]).
fn choose_campaign<'a>(input: &Input<'a>) -> Rule<&'a Campaign> {
    let mut enabled: Vec<&Campaign> = input.campaigns.iter().filter(|c| c.enabled && !c.is_shadow()).collect();
    if enabled.is_empty() {
        return stop(ReasonCode::CampaignDisabled, "No live campaign is enabled.");
    }
    enabled.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.id.cmp(&b.id)));
    let mut misses = Vec::new();
    for campaign in enabled {
        match entry_miss(input, campaign) {
            None => return Continue(campaign),
            Some(why) => misses.push(format!("{}: {why}", campaign.id)),
        }
    }
    stop(ReasonCode::NoMatchingCampaign, format!("No campaign's entry filters match ({}).", misses.join("; ")))
}

/// A shadow campaign decides on a cart while it is enabled and, until the
/// cart entered it, while its entry filters match, like a live one would.
pub(super) fn shadow_applies(input: &Input, shadow: &Campaign) -> Rule {
    if !shadow.enabled || !shadow.is_shadow() {
        return stop(ReasonCode::CampaignDisabled, format!("Shadow campaign {:?} is not running.", shadow.id));
    }
    if input.progress.campaign_id.is_none() {
        if let Some(why) = entry_miss(input, shadow) {
            return stop(ReasonCode::NoMatchingCampaign, format!("{}: {why}", shadow.id));
        }
    }
    Continue(())
}

/// Why the cart does not pass `campaign`'s entry filters, or `None`.
fn entry_miss(input: &Input, campaign: &Campaign) -> Option<String> {
    let filters = &campaign.entry;
    if let Some(min) = filters.min_cart_value {
        let subtotal = input.cart.totals().subtotal;
        if subtotal < min {
            return Some(format!("cart value {subtotal} is below {min}"));
        }
    }
    if let Some(min) = filters.min_items_viewed {
        if input.cart.items_viewed < min {
            return Some(format!("{} items viewed, {min} needed", input.cart.items_viewed));
        }
    }
    if let Some(segment) = filters.segment {
        let customer = input.customer;
        let inside = match segment {
            Segment::ReturnedRecently => {
                customer.is_some_and(|c| c.returned_since(input.now - campaign.vouchers.returned_window))
            }
            Segment::FirstTimeBuyer => customer.is_none_or(|c| c.purchases.is_empty()),
            Segment::ReturningBuyer => customer.is_some_and(|c| !c.purchases.is_empty()),
        };
        if !inside {
            return Some(format!("customer is not in segment {segment:?}"));
        }
    }
    None
}

/// The first step not yet dispatched, and when it is due: its delay after
/// the last activity or after the previous step, never before the previous
/// step went out.
pub(super) fn next_step<'a>(
    input: &Input<'a>,
    campaign: &'a Campaign,
    last_activity: DateTime<Utc>,
) -> Rule<NextStep<'a>> {
    let index = input.progress.steps.len();
    let Some(step) = campaign.steps.get(index) else {
        let count = campaign.steps.len();
        return stop(
            ReasonCode::SequenceCompleted,
            format!("All {count} steps of campaign {:?} were sent.", campaign.id),
        );
    };
    // A skipped step counts for timing (from when it was due), not as a message.
    let before = input.progress.steps.last();
    let due = match (before, step.delay_from) {
        (None, _) | (Some(_), DelayFrom::LastActivity) => last_activity + step.delay,
        (Some(prev), DelayFrom::PreviousStep) => prev.at + step.delay,
    };
    let due = before.map_or(due, |p| due.max(p.at));
    let previous = input.progress.dispatched().last();
    Continue(NextStep { campaign, index, step, previous, last_activity, due })
}

/// Due time: nothing goes out before the step is due.
pub(super) fn wait_until_due(input: &Input, next: &NextStep) -> Rule {
    if input.now >= next.due {
        return Continue(());
    }
    let (code, what) = if next.index == 0 {
        (ReasonCode::WaitingForInactivity, "the cart is abandoned")
    } else {
        (ReasonCode::WaitingForNextStep, "the next step is due")
    };
    let (due, number, campaign) = (next.due.to_rfc3339(), next.number(), &next.campaign.id);
    wait(next.due, code, format!("Waiting until {due} when {what} (step {number} of {campaign:?})."))
}

/// Engagement: a person's click on the previous message (or its open, in a
/// campaign that counts opens), or coming back to the cart after it, ends
/// the sequence. Machines' opens and clicks (privacy proxies, link
/// scanners) are on the message but never decide.
pub(super) fn stop_after_engagement(input: &Input, next: &NextStep) -> Rule {
    let Some(prev) = next.previous else { return Continue(()) };
    let opens_count = next.campaign.opens_count_as_engagement;
    let engaged = input
        .history
        .iter()
        .filter(|m| m.message_id == prev.message_id)
        .find_map(|m| Some((m.channel, m.engagement.decisive(opens_count || m.channel.opened_only_by_people())?)));
    if let Some((channel, (label, at))) = engaged {
        let what = match label {
            EngagementLabel::Open if channel == Channel::Push => "the push was opened",
            EngagementLabel::Open => "an open",
            _ => "a click",
        };
        return stop(
            ReasonCode::Engaged,
            format!(
                "The customer engaged with step {}'s message ({what} at {}); no follow-up.",
                prev.step + 1,
                at.to_rfc3339()
            ),
        );
    }
    if next.last_activity > prev.at {
        return stop(
            ReasonCode::Engaged,
            format!("The customer came back to the cart after step {}'s message.", prev.step + 1),
        );
    }
    Continue(())
}

/// Cap after a purchase: no reminder within `after_purchase` of any purchase
/// by the customer, nor for a cart last touched before a purchase. A zero
/// pause is the marketer's explicit opt-out of this rule.
pub(super) fn pause_after_purchase(input: &Input, next: &NextStep) -> Rule {
    let pause = next.campaign.caps.after_purchase;
    let purchased = input.customer.and_then(Customer::last_purchase_at).filter(|_| pause > Duration::zero());
    let Some(purchased) = purchased else { return Continue(()) };
    if input.now < purchased + pause {
        return stop(
            ReasonCode::RecentPurchase,
            format!(
                "The customer bought something at {}; no reminder within {} of a purchase.",
                purchased.to_rfc3339(),
                human(pause)
            ),
        );
    }
    // Bought after the last cart edit, e.g. on another device or checkout
    // path: this cart is most likely what they bought.
    if purchased >= next.last_activity {
        return stop(
            ReasonCode::RecentPurchase,
            format!("The customer bought something at {}, after the last change to this cart.", purchased.to_rfc3339()),
        );
    }
    Continue(())
}

/// Lateness: a step found more than `max_send_delay` after it fell due is
/// skipped, never sent late (a backfill of month-old events must not email
/// now). Purchase and engagement stops come first: they end the sequence.
pub(super) fn skip_when_too_late(input: &Input, next: &NextStep) -> Rule {
    let max = next.campaign.caps.max_send_delay;
    if input.now <= next.due + max {
        return Continue(());
    }
    let (number, campaign, due) = (next.number(), &next.campaign.id, next.due);
    let message = format!(
        "Step {number} of campaign {campaign:?} fell due at {}, more than {} ago (max_send_delay); skipped, not sent \
         late.",
        due.to_rfc3339(),
        human(max)
    );
    ControlFlow::Break(Decision::Skip {
        campaign_id: campaign.clone(),
        step: next.index as u32,
        due,
        reason: Reason::new(ReasonCode::StepTooLate, message),
    })
}

/// Entry cooldown: a cart does not enter a campaign when the customer got an
/// abandoned-cart message about another cart within `entry_cooldown`.
pub(super) fn entry_cooldown(input: &Input, next: &NextStep) -> Rule {
    if next.index != 0 {
        return Continue(());
    }
    let cooldown = next.campaign.caps.entry_cooldown;
    let since = input.now - cooldown;
    let recent = input
        .history
        .iter()
        .find(|m| m.cart_id != input.cart.cart_id && m.status.counts_as_sent() && m.decided_at > since);
    match recent {
        None => Continue(()),
        Some(recent) => stop(
            ReasonCode::EntryCooldown,
            format!(
                "The customer got an abandoned-cart message at {} (cart {}); no new entry within {}.",
                recent.decided_at.to_rfc3339(),
                recent.cart_id,
                human(cooldown)
            ),
        ),
    }
}

/// Quiet hours: a channel the campaign keeps quiet at night waits for the
/// end of the quiet hours in the customer's time zone.
pub(super) fn defer_in_quiet_hours(input: &Input, next: &NextStep, channel: Channel) -> Rule {
    let quiet = &next.campaign.quiet_hours;
    if !quiet.channels.contains(&channel) {
        return Continue(());
    }
    let tz = super::customer_time_zone(input.contact(), &quiet.default_timezone);
    let Some(until) = super::quiet_until(input.now, tz, next.campaign) else { return Continue(()) };
    let (start, end) = (quiet.start.format("%H:%M"), quiet.end.format("%H:%M"));
    wait(
        until,
        ReasonCode::QuietHoursDeferred,
        format!(
            "{} is in quiet hours ({start}-{end} {}); deferred to {}.",
            channel.as_str(),
            tz.name(),
            until.to_rfc3339()
        ),
    )
}
