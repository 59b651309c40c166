//! Channel choice: the first channel of the device's order that can carry
//! the step (delivered by this runtime, reachable, consented and not
//! unsubscribed, explicitly consented for a guest's email where the
//! campaign requires it, within its caps), and the send decision on it.

use std::ops::ControlFlow::Continue;

use super::{stop, Arm, Decision, Input, NextStep, Rule};
use crate::campaign::Campaign;
use crate::consent::{newest_change, ConsentSource, LegalBasis};
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
    why: String,
}

/// Channel choice: the device's channel order, first usable channel wins.
/// When none is usable, the customer's own unsubscribe is named first,
/// then a guest's missing explicit consent (what stands between the cart
/// and a message, more than a channel that was never reachable); else one
/// shared cause is named as such (e.g. every channel lacks consent); a mix
/// is "no reachable channel".
pub(super) fn choose_channel(input: &Input, next: &NextStep) -> Rule<ChannelChoice> {
    let order = match input.cart.device.unwrap_or(Device::Desktop) {
        Device::Mobile | Device::Tablet => &next.step.channels.mobile,
        Device::Desktop => &next.step.channels.desktop,
    };
    let mut skipped = Vec::new();
    for &channel in order {
        match unreachable(input, next.campaign, channel).or_else(|| over_cap(input, next, channel)) {
            Some((code, why)) => skipped.push(Skipped { channel, code, why }),
            // `unreachable` passed the channel, so the contact value (or the
            // step's webhook target) is there.
            None => match recipient(input, next, channel) {
                Some(to) => return Continue(ChannelChoice { channel, to, skipped }),
                None => skipped.push(Skipped {
                    channel,
                    code: ReasonCode::NoReachableChannel,
                    why: "no contact value".into(),
                }),
            },
        }
    }
    let any = |code: ReasonCode| skipped.iter().any(|s| s.code == code);
    let code = match skipped.first() {
        _ if any(ReasonCode::Unsubscribed) => ReasonCode::Unsubscribed,
        _ if any(ReasonCode::ExplicitConsentRequired) => ReasonCode::ExplicitConsentRequired,
        Some(first) if skipped.iter().all(|s| s.code == first.code) => first.code,
        _ => ReasonCode::NoReachableChannel,
    };
    stop(code, format!("No channel can carry step {}: {}.", next.number(), describe(&skipped)))
}

/// The decision to send the step on the chosen channel: sent to a treated
/// cart, withheld (and recorded as such) from a held-out or shadow one.
pub(super) fn send(input: &Input, next: &NextStep, choice: ChannelChoice, arm: &Arm) -> Decision {
    let voucher = super::vouchers::choose(input, next, arm.group);
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
            voucher,
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
            voucher,
        },
    }
}

/// Who the message goes to: the contact value, or for `webhook` the
/// step's target.
fn recipient(input: &Input, next: &NextStep, channel: Channel) -> Option<Recipient> {
    match channel {
        Channel::Webhook => next.step.webhook.clone().map(Recipient::Webhook),
        _ => Recipient::for_channel(input.contact(), channel),
    }
}

fn describe(skipped: &[Skipped]) -> String {
    skipped.iter().map(|s| format!("{}: {}", s.channel.as_str(), s.why)).collect::<Vec<_>>().join("; ")
}

/// Why the customer cannot be reached on `channel` at all: the runtime does
/// not deliver it, the contact lacks the property it needs, consent (none,
/// or withdrawn by the customer: unsubscribed), or a guest's email without
/// the explicit consent the campaign requires.
fn unreachable(input: &Input, campaign: &Campaign, channel: Channel) -> Option<(ReasonCode, String)> {
    if !input.channels.contains(&channel) {
        return Some((ReasonCode::NoReachableChannel, "not delivered by this runtime".into()));
    }
    // The target is the shop's own system (its CRM, its chat bot), not a
    // message to the customer: no channel consent applies, as none applies
    // to the storefront knowing the cart. What the system may then send is
    // its own channel's consent to check; the body carries only the contact
    // fields the target is allowed to see. An unsubscribed customer is still
    // not reminded through it: the customer said no to reminders.
    if channel == Channel::Webhook {
        return unsubscribed_everywhere(input)
            .then(|| (ReasonCode::Unsubscribed, "unsubscribed by the customer from every channel".into()));
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
        Channel::Webhook => return None,
    };
    if !has_property {
        return Some((ReasonCode::NoReachableChannel, missing.into()));
    }
    if consent != Some(true) || withdrawn_on_identified_cart(input, channel) {
        return Some(match unsubscribed_by_customer(input, channel) {
            Some(source) => (ReasonCode::Unsubscribed, format!("unsubscribed by the customer ({})", source.as_str())),
            None => (ReasonCode::NoConsent, "no consent".into()),
        });
    }
    if channel == Channel::Email {
        return explicit_consent_missing(input, campaign);
    }
    None
}

/// Whether the customer withdrew, by their own choice, every channel
/// consent they had given (the unsubscribe link's "stop everything", the
/// preference page): a reminder through the shop's system would ignore it.
fn unsubscribed_everywhere(input: &Input) -> bool {
    let withdrawn: Vec<_> = Channel::PERSONAL.into_iter().filter_map(|c| unsubscribed_by_customer(input, c)).collect();
    let consents = input.contact().consents.unwrap_or_default();
    let granted = [consents.email, consents.sms, consents.push, consents.web_push].contains(&Some(true));
    !withdrawn.is_empty() && !granted
}

/// Whether the customer's own choice withdrew the consent for `channel`
/// (the unsubscribe link or the preference page), as opposed to a consent
/// never given, or withdrawn by the shop, a bounce, a complaint or an SMS
/// STOP: the source of the newest change of that channel in the consent
/// history (the customer's, or the guest cart's). Per channel, because one
/// patch-wide source would blame a later storefront change of another
/// channel on the link. Without a change on record (contact data set by
/// hand), the consents' own newest source.
fn unsubscribed_by_customer(input: &Input, channel: Channel) -> Option<ConsentSource> {
    let newest = match newest_change(&input.cart.consent_history, channel) {
        Some(on_cart) if withdrawn_on_identified_cart(input, channel) => Some(on_cart),
        _ => newest_change(input.consent_history(), channel),
    };
    let source = match newest {
        Some(change) if change.granted => return None,
        Some(change) => change.source,
        None => input.contact().consents?.source?,
    };
    matches!(source, ConsentSource::UnsubscribeLink | ConsentSource::PreferencePage).then_some(source)
}

/// A withdrawal the customer made on this cart while it was a guest's
/// (unsubscribe link, preference page, complaint, SMS STOP), newer than
/// anything the profile of the customer it was identified as since says
/// about the channel: it stands, although the engine reads that profile.
fn withdrawn_on_identified_cart(input: &Input, channel: Channel) -> bool {
    let Some(customer) = input.customer else { return false };
    let Some(on_cart) = newest_change(&input.cart.consent_history, channel) else { return false };
    let on_profile = newest_change(&customer.consent_history, channel);
    !on_cart.granted && on_cart.source.is_customers_word() && on_profile.is_none_or(|p| p.at < on_cart.at)
}

/// Explicit consent for guests: where the campaign requires it (see
/// [`Campaign::guest_consent_rule`]), a cart without a customer id gets
/// email only when its consent's basis is `consent`; an address typed at
/// checkout is no consent to marketing there. Known customers are not
/// affected: the soft opt-in covers an existing customer's similar
/// products (ePrivacy art. 13(2), PECR reg. 22(3)).
fn explicit_consent_missing(input: &Input, campaign: &Campaign) -> Option<(ReasonCode, String)> {
    if input.cart.customer_id.is_some() {
        return None;
    }
    let zone = super::customer_time_zone(input.contact(), &campaign.quiet_hours.default_timezone);
    let rule = campaign.guest_consent_rule(zone);
    // The basis of the newest email grant: a patch-wide basis would let a
    // later SMS opt-in with `basis = consent` vouch for the email.
    let basis = match newest_change(&input.cart.consent_history, Channel::Email) {
        Some(change) => change.basis.filter(|_| change.granted),
        None => input.contact().consents.and_then(|c| c.basis),
    };
    if !rule.requires_explicit_consent() || basis == Some(LegalBasis::Consent) {
        return None;
    }
    let why = format!("a guest without explicit consent (basis consent), required by {}", rule.describe());
    Some((ReasonCode::ExplicitConsentRequired, why))
}

/// Caps per channel: pushes per customer and window, SMS per cart, and no
/// SMS long after the cart was abandoned.
fn over_cap(input: &Input, next: &NextStep, channel: Channel) -> Option<(ReasonCode, String)> {
    let caps = &next.campaign.caps;
    let counted = input.history.iter().filter(|m| m.status.counts_as_sent());
    match channel {
        Channel::Push | Channel::WebPush => {
            let since = input.now - caps.push_window;
            let pushes =
                counted.filter(|m| matches!(m.channel, Channel::Push | Channel::WebPush) && m.decided_at > since);
            (pushes.count() >= caps.push_max as usize).then(|| (ReasonCode::PushCapReached, "push cap reached".into()))
        }
        Channel::Sms => {
            let on_this_cart = counted.filter(|m| m.channel == Channel::Sms && m.cart_id == input.cart.cart_id).count();
            if on_this_cart >= caps.sms_max_per_cart as usize {
                return Some((ReasonCode::SmsCapReached, "SMS cap for this cart reached".into()));
            }
            sms_window_closed(input, next)
        }
        Channel::Email | Channel::Webhook => None,
    }
}

/// No SMS long after the cart was abandoned.
fn sms_window_closed(input: &Input, next: &NextStep) -> Option<(ReasonCode, String)> {
    (input.now > next.abandoned_at() + next.campaign.caps.sms_window)
        .then(|| (ReasonCode::SmsWindowClosed, "too long after abandonment for SMS".into()))
}

/// The channel a message was decided on, asked again before it goes out:
/// still reachable and consented (a withdrawal, an unsubscribe, or a
/// suppression after a bounce or complaint, withdraws consent), and for SMS
/// still in its window.
pub(super) fn still_open(input: &Input, next: &NextStep, channel: Channel) -> Rule {
    let closed = unreachable(input, next.campaign, channel).or_else(|| match channel {
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
