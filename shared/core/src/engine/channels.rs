//! Channel choice: the first channel of the device's order that can carry
//! the step (delivered by this runtime, reachable, consented, within its
//! caps), and the send decision on it.

use std::ops::ControlFlow::Continue;

use super::{stop, Arm, Decision, Input, NextStep, Rule};
use crate::contact;
use crate::event::Device;
use crate::measure::Group;
use crate::message::{Channel, Recipient};
use crate::reason::{Reason, ReasonCode};

/// The channel that carries the step, and the channels skipped before it.
pub(super) struct ChannelChoice {
    pub channel: Channel,
    /// The contact value the channel delivers to.
    to: Recipient,
    skipped: Vec<Skipped>,
}

/// A channel that cannot carry the step, and why.
struct Skipped {
    channel: Channel,
    code: ReasonCode,
    why: &'static str,
}

/// Channel choice: the device's channel order, first usable channel wins.
/// When none is usable, one shared cause is named as such (e.g. every
/// channel lacks consent); a mix is "no reachable channel".
pub(super) fn choose_channel(input: &Input, next: &NextStep) -> Rule<ChannelChoice> {
    let order = match input.cart.device.unwrap_or(Device::Desktop) {
        Device::Mobile | Device::Tablet => &next.step.channels.mobile,
        Device::Desktop => &next.step.channels.desktop,
    };
    let mut skipped = Vec::new();
    for &channel in order {
        match unreachable(input, channel).or_else(|| over_cap(input, next, channel)) {
            Some((code, why)) => skipped.push(Skipped { channel, code, why }),
            // `unreachable` passed the channel, so the contact value is there.
            None => match Recipient::for_channel(input.contact(), channel) {
                Some(to) => return Continue(ChannelChoice { channel, to, skipped }),
                None => {
                    skipped.push(Skipped { channel, code: ReasonCode::NoReachableChannel, why: "no contact value" })
                }
            },
        }
    }
    let code = match skipped.first() {
        Some(first) if skipped.iter().all(|s| s.code == first.code) => first.code,
        _ => ReasonCode::NoReachableChannel,
    };
    stop(code, format!("No channel can carry step {}: {}.", next.number(), describe(&skipped)))
}

/// The decision to send the step on the chosen channel: sent to a treated
/// cart, withheld (and recorded as such) from a held-out or shadow one.
pub(super) fn send(next: &NextStep, choice: ChannelChoice, arm: &Arm) -> Decision {
    let (number, campaign, channel) = (next.number(), &next.campaign.id, choice.channel);
    let in_variant = arm.variant_name().map(|v| format!(" (variant {v:?})")).unwrap_or_default();
    let mut message = match arm.group {
        Group::Treated => format!("Step {number} of campaign {campaign:?}{in_variant} by {}.", channel.as_str()),
        Group::HeldOut => format!(
            "Held out ({}% holdout): step {number} of campaign {campaign:?}{in_variant} would go by {}; nothing is \
             sent.",
            next.campaign.holdout_percent,
            channel.as_str()
        ),
        Group::Shadow => format!(
            "Shadow campaign {campaign:?}{in_variant} would send step {number} by {}; nothing is sent.",
            channel.as_str()
        ),
    };
    if !choice.skipped.is_empty() {
        message.push_str(&format!(" Skipped {}.", describe(&choice.skipped)));
    }
    let (step, variant) = (next.index as u32, arm.variant_name().map(str::to_owned));
    match arm.group {
        Group::Treated => Decision::Send {
            campaign_id: campaign.clone(),
            step,
            channel,
            to: choice.to,
            template: next.step.template.clone(),
            subject: next.step.subject.clone(),
            variant,
            reason: Reason::new(ReasonCode::Sent, message),
        },
        group => Decision::Withhold {
            campaign_id: campaign.clone(),
            step,
            channel,
            group,
            variant,
            reason: Reason::new(
                if group == Group::Shadow { ReasonCode::ShadowWouldSend } else { ReasonCode::HeldOut },
                message,
            ),
        },
    }
}

fn describe(skipped: &[Skipped]) -> String {
    skipped.iter().map(|s| format!("{}: {}", s.channel.as_str(), s.why)).collect::<Vec<_>>().join("; ")
}

/// Why the customer cannot be reached on `channel` at all: the runtime does
/// not deliver it, the contact lacks the property it needs, or consent.
fn unreachable(input: &Input, channel: Channel) -> Option<(ReasonCode, &'static str)> {
    if !input.channels.contains(&channel) {
        return Some((ReasonCode::NoReachableChannel, "not delivered by this runtime"));
    }
    let contact = input.contact();
    let consents = contact.consents.unwrap_or_default();
    let (has_property, consent, missing) = match channel {
        Channel::Email => {
            let valid = contact.email.as_ref().map(contact::Email::expose).and_then(contact::normalise_email).is_some();
            (valid, consents.email, "no valid email address")
        }
        Channel::Sms => {
            let valid = contact.phone.as_ref().map(contact::Phone::expose).and_then(contact::normalise_e164).is_some();
            (valid, consents.sms, "no valid E.164 phone number")
        }
        Channel::Push => (contact.push_tokens.as_ref().is_some_and(|t| !t.is_empty()), consents.push, "no push token"),
        Channel::WebPush => (contact.web_push_subscription.is_some(), consents.web_push, "no web-push subscription"),
    };
    if !has_property {
        return Some((ReasonCode::NoReachableChannel, missing));
    }
    if consent != Some(true) {
        return Some((ReasonCode::NoConsent, "no consent"));
    }
    None
}

/// Caps per channel: pushes per customer and window, SMS per cart, and no
/// SMS long after the cart was abandoned.
fn over_cap(input: &Input, next: &NextStep, channel: Channel) -> Option<(ReasonCode, &'static str)> {
    let caps = &next.campaign.caps;
    let counted = input.history.iter().filter(|m| m.status.counts_as_sent());
    match channel {
        Channel::Push | Channel::WebPush => {
            let since = input.now - caps.push_window;
            let pushes =
                counted.filter(|m| matches!(m.channel, Channel::Push | Channel::WebPush) && m.decided_at > since);
            (pushes.count() >= caps.push_max as usize).then_some((ReasonCode::PushCapReached, "push cap reached"))
        }
        Channel::Sms => {
            let on_this_cart = counted.filter(|m| m.channel == Channel::Sms && m.cart_id == input.cart.cart_id).count();
            if on_this_cart >= caps.sms_max_per_cart as usize {
                return Some((ReasonCode::SmsCapReached, "SMS cap for this cart reached"));
            }
            sms_window_closed(input, next)
        }
        Channel::Email => None,
    }
}

/// No SMS long after the cart was abandoned.
fn sms_window_closed(input: &Input, next: &NextStep) -> Option<(ReasonCode, &'static str)> {
    (input.now > next.abandoned_at() + next.campaign.caps.sms_window)
        .then_some((ReasonCode::SmsWindowClosed, "too long after abandonment for SMS"))
}

/// The channel a message was decided on, asked again before it goes out:
/// still reachable and consented (a withdrawal, or a suppression after a
/// bounce or complaint, withdraws consent), and for SMS still in its window.
pub(super) fn still_open(input: &Input, next: &NextStep, channel: Channel) -> Rule {
    let closed = unreachable(input, channel).or_else(|| match channel {
        Channel::Sms => sms_window_closed(input, next),
        _ => None,
    });
    match closed {
        None => Continue(()),
        Some((code, why)) => {
            stop(code, format!("Step {} can no longer go by {}: {why}.", next.number(), channel.as_str()))
        }
    }
}
