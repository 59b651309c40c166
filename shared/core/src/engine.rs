//! The decision engine: `decide(input) -> Decision`, pure. No I/O, no clock,
//! no randomness: the same input always gives the same decision, which is
//! what makes the rules testable by simulation and explainable per cart.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::campaign::{Campaign, DelayFrom, Segment};
use crate::cart::{Cart, CartStatus};
use crate::contact;
use crate::customer::Customer;
use crate::event::{CustomerPatch, Device};
use crate::ids::MessageId;
use crate::message::{Channel, MessageRecord, Recipient};
use crate::reason::{Reason, ReasonCode};

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

pub fn decide(input: &Input) -> Decision {
    let cart = input.cart;
    let now = input.now;
    match cart.status {
        CartStatus::Converted => return stop(ReasonCode::Purchased, "The customer bought this cart; nothing more is sent."),
        CartStatus::Emptied => return stop(ReasonCode::CartEmptied, "The cart was emptied; there is nothing to recover."),
        CartStatus::Browsing => return stop(ReasonCode::NothingInCart, "Nothing was ever added to this cart."),
        CartStatus::Active => {}
    }
    let Some(last_activity) = cart.last_activity_at else {
        return stop(ReasonCode::NothingInCart, "Nothing was ever added to this cart.");
    };

    let campaign = match &input.progress.campaign_id {
        Some(id) => match input.campaigns.iter().find(|c| &c.id == id) {
            Some(c) if c.enabled => c,
            Some(_) => return stop(ReasonCode::CampaignDisabled, format!("Campaign {id:?} was disabled; its pending steps are not sent.")),
            None => return stop(ReasonCode::CampaignDisabled, format!("Campaign {id:?} no longer exists; its pending steps are not sent.")),
        },
        None => match choose_campaign(input) {
            Ok(c) => c,
            Err(reason) => return Decision::Stop { reason },
        },
    };

    let step_index = input.progress.steps.len();
    let Some(step) = campaign.steps.get(step_index) else {
        return stop(ReasonCode::SequenceCompleted, format!("All {} steps of campaign {:?} were sent.", campaign.steps.len(), campaign.id));
    };
    let previous = input.progress.steps.last();
    let due = match (previous, step.delay_from) {
        (None, _) | (Some(_), DelayFrom::LastActivity) => last_activity + step.delay,
        (Some(prev), DelayFrom::PreviousStep) => prev.at + step.delay,
    };
    let due = previous.map_or(due, |p| due.max(p.at));
    if now < due {
        let (code, what) = if step_index == 0 {
            (ReasonCode::WaitingForInactivity, "the cart is abandoned")
        } else {
            (ReasonCode::WaitingForNextStep, "the next step is due")
        };
        return Decision::Wait {
            until: due,
            reason: Reason::new(code, format!("Waiting until {} when {what} (step {} of {:?}).", due.to_rfc3339(), step_index + 1, campaign.id)),
        };
    }

    if let Some(prev) = previous {
        let engaged = input.history.iter().any(|m| m.message_id == prev.message_id && m.engaged_at.is_some());
        if engaged {
            return stop(ReasonCode::Engaged, format!("The customer engaged with step {}'s message; no follow-up.", prev.step + 1));
        }
        if last_activity > prev.at {
            return stop(ReasonCode::Engaged, format!("The customer came back to the cart after step {}'s message.", prev.step + 1));
        }
    }

    // A zero pause is the marketer's explicit opt-out of this rule.
    if let Some(purchased) = input.customer.and_then(Customer::last_purchase_at).filter(|_| campaign.caps.after_purchase > Duration::zero()) {
        if now < purchased + campaign.caps.after_purchase {
            return stop(ReasonCode::RecentPurchase, format!(
                "The customer bought something at {}; no reminder within {} of a purchase.",
                purchased.to_rfc3339(), human(campaign.caps.after_purchase)
            ));
        }
        // Bought after the last cart edit, e.g. on another device or checkout
        // path: this cart is most likely what they bought.
        if purchased >= last_activity {
            return stop(ReasonCode::RecentPurchase, format!(
                "The customer bought something at {}, after the last change to this cart.",
                purchased.to_rfc3339()
            ));
        }
    }

    if step_index == 0 {
        let since = now - campaign.caps.entry_cooldown;
        if let Some(recent) = input.history.iter().find(|m| m.cart_id != cart.cart_id && m.status.counts_as_sent() && m.decided_at > since) {
            return stop(ReasonCode::Cooldown7d, format!(
                "The customer got an abandoned-cart message at {} (cart {}); no new entry within {}.",
                recent.decided_at.to_rfc3339(), recent.cart_id, human(campaign.caps.entry_cooldown)
            ));
        }
    }

    let abandoned_at = last_activity + campaign.steps[0].delay;
    let order = match cart.device.unwrap_or(Device::Desktop) {
        Device::Mobile | Device::Tablet => &step.channels.mobile,
        Device::Desktop => &step.channels.desktop,
    };
    let mut skipped: Vec<(Channel, ReasonCode, &'static str)> = Vec::new();
    let mut chosen = None;
    for &channel in order {
        match channel_block(input, campaign, channel, abandoned_at) {
            Some((code, why)) => skipped.push((channel, code, why)),
            None => {
                chosen = Some(channel);
                break;
            }
        }
    }
    let skipped_text = skipped.iter().map(|(c, _, why)| format!("{}: {why}", c.as_str())).collect::<Vec<_>>().join("; ");
    let Some(channel) = chosen else {
        // One shared cause is named as such; a mix is "no reachable channel".
        let code = match skipped.first() {
            Some(first) if skipped.iter().all(|s| s.1 == first.1) => first.1,
            _ => ReasonCode::NoReachableChannel,
        };
        return stop(code, format!("No channel can carry step {}: {skipped_text}.", step_index + 1));
    };

    if campaign.quiet_hours.channels.contains(&channel) {
        let tz = customer_time_zone(input.contact(), &campaign.quiet_hours.default_timezone);
        if let Some(until) = quiet_until(now, tz, campaign) {
            return Decision::Wait {
                until,
                reason: Reason::new(ReasonCode::QuietHoursDeferred, format!(
                    "{} is in quiet hours ({}-{} {}); deferred to {}.",
                    channel.as_str(), campaign.quiet_hours.start.format("%H:%M"), campaign.quiet_hours.end.format("%H:%M"), tz.name(), until.to_rfc3339()
                )),
            };
        }
    }

    // `channel_block` let the channel through only with a contact value.
    let Some(to) = Recipient::for_channel(input.contact(), channel) else {
        return stop(ReasonCode::NoReachableChannel, format!("No contact value for {}.", channel.as_str()));
    };
    let mut message = format!("Step {} of campaign {:?} by {}.", step_index + 1, campaign.id, channel.as_str());
    if !skipped.is_empty() {
        message.push_str(&format!(" Skipped {skipped_text}."));
    }
    Decision::Send {
        campaign_id: campaign.id.clone(),
        step: step_index as u32,
        channel,
        to,
        template: step.template.clone(),
        reason: Reason::new(ReasonCode::Sent, message),
    }
}

fn stop(code: ReasonCode, message: impl Into<String>) -> Decision {
    Decision::Stop { reason: Reason::new(code, message) }
}

/// The highest-priority enabled campaign whose entry filters match.
fn choose_campaign<'a>(input: &Input<'a>) -> Result<&'a Campaign, Reason> {
    let mut enabled: Vec<&Campaign> = input.campaigns.iter().filter(|c| c.enabled).collect();
    if enabled.is_empty() {
        return Err(Reason::new(ReasonCode::CampaignDisabled, "No campaign is enabled."));
    }
    enabled.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.id.cmp(&b.id)));
    let mut misses = Vec::new();
    for campaign in enabled {
        match entry_miss(input, campaign) {
            None => return Ok(campaign),
            Some(why) => misses.push(format!("{}: {why}", campaign.id)),
        }
    }
    Err(Reason::new(ReasonCode::NoMatchingCampaign, format!("No campaign's entry filters match ({}).", misses.join("; "))))
}

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
            Segment::ReturnedRecently => customer.is_some_and(|c| c.returned_since(input.now - Duration::days(90))),
            Segment::FirstTimeBuyer => customer.is_none_or(|c| c.purchases.is_empty()),
            Segment::ReturningBuyer => customer.is_some_and(|c| !c.purchases.is_empty()),
        };
        if !inside {
            return Some(format!("customer is not in segment {segment:?}"));
        }
    }
    None
}

/// Why `channel` cannot carry this step, or `None` when it can.
fn channel_block(input: &Input, campaign: &Campaign, channel: Channel, abandoned_at: DateTime<Utc>) -> Option<(ReasonCode, &'static str)> {
    if !input.channels.contains(&channel) {
        return Some((ReasonCode::NoReachableChannel, "not delivered by this runtime"));
    }
    let contact = input.contact();
    let consents = contact.consents.unwrap_or_default();
    let (has_property, consent, missing) = match channel {
        Channel::Email => (contact.email.as_ref().map(contact::Email::expose).and_then(contact::normalise_email).is_some(), consents.email, "no valid email address"),
        Channel::Sms => (contact.phone.as_ref().map(contact::Phone::expose).and_then(contact::normalise_e164).is_some(), consents.sms, "no valid E.164 phone number"),
        Channel::Push => (contact.push_tokens.as_ref().is_some_and(|t| !t.is_empty()), consents.push, "no push token"),
        Channel::WebPush => (contact.web_push_subscription.is_some(), consents.web_push, "no web-push subscription"),
    };
    if !has_property {
        return Some((ReasonCode::NoReachableChannel, missing));
    }
    if consent != Some(true) {
        return Some((ReasonCode::NoConsent, "no consent"));
    }
    let now = input.now;
    match channel {
        Channel::Push | Channel::WebPush => {
            let since = now - campaign.caps.push_window;
            let pushes = input
                .history
                .iter()
                .filter(|m| matches!(m.channel, Channel::Push | Channel::WebPush) && m.status.counts_as_sent() && m.decided_at > since)
                .count();
            if pushes >= campaign.caps.push_max as usize {
                return Some((ReasonCode::PushCapReached, "push cap reached"));
            }
        }
        Channel::Sms => {
            let on_this_cart = input
                .history
                .iter()
                .filter(|m| m.channel == Channel::Sms && m.cart_id == input.cart.cart_id && m.status.counts_as_sent())
                .count();
            if on_this_cart >= campaign.caps.sms_max_per_cart as usize {
                return Some((ReasonCode::SmsCapReached, "SMS cap for this cart reached"));
            }
            if now > abandoned_at + campaign.caps.sms_window {
                return Some((ReasonCode::SmsWindowClosed, "too long after abandonment for SMS"));
            }
        }
        Channel::Email => {}
    }
    None
}

/// The customer's zone: the profile's IANA name, else the phone number's
/// region, else the campaign default.
pub fn customer_time_zone(contact: &CustomerPatch, default: &str) -> Tz {
    contact
        .timezone
        .as_deref()
        .and_then(|tz| tz.parse::<Tz>().ok())
        .or_else(|| contact.phone.as_ref().map(contact::Phone::expose).and_then(contact::phone_region).and_then(|r| contact::region_time_zone(&r)))
        .or_else(|| default.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC)
}

/// When `now` falls in the campaign's quiet hours in `tz`, the first instant
/// after them; `None` when sending is allowed now.
pub fn quiet_until(now: DateTime<Utc>, tz: Tz, campaign: &Campaign) -> Option<DateTime<Utc>> {
    let (start, end) = (campaign.quiet_hours.start, campaign.quiet_hours.end);
    if start == end {
        return None;
    }
    let local = now.with_timezone(&tz);
    let t = local.time();
    let quiet = if start > end { t >= start || t < end } else { t >= start && t < end };
    if !quiet {
        return None;
    }
    let today = local.date_naive();
    let day = if t >= end { today.succ_opt()? } else { today };
    Some(first_instant_at(tz, day, end, now))
}

/// The first instant at or after local `day` + `time` that exists in `tz`
/// (a DST gap moves it forward to when the clocks resume). When the time
/// occurs twice (a DST fall-back), the earlier occurrence unless it is not
/// after `after`: in the repeated hour the second occurrence is the next one.
fn first_instant_at(tz: Tz, day: NaiveDate, time: chrono::NaiveTime, after: DateTime<Utc>) -> DateTime<Utc> {
    let mut local = day.and_time(time);
    for _ in 0..=180 {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(earliest, latest) => {
                let earliest = earliest.with_timezone(&Utc);
                return if earliest > after { earliest } else { latest.with_timezone(&Utc) };
            }
            LocalResult::None => local += Duration::minutes(1),
        }
    }
    Utc.from_utc_datetime(&day.and_time(time))
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
