//! Opens and clicks on sent messages, from either source: a provider's
//! report (SES open and click events, through [`super::Feedback`]) or a
//! click on Cartback's own tracked link (`GET /r/{token}`).
//!
//! Each one is labelled (see [`crate::engagement`]) and counted on its
//! message record: a counter and the first and last time per label, so
//! what a thousand clicks on one link write stays as small as what one
//! writes. Only the first of each label on a message adds a timeline line.
//! Counts are at least once: a redelivered provider report counts again
//! (the label and the first time are what decisions read).
//!
//! The first open, machine open and click of a message is also a fact
//! (`opened_human`, `opened_machine`, `clicked`) for the report. It is
//! written before the count, while the message as read has no tally of the
//! label yet: should the fact write fail, nothing is counted and the retry
//! (a redelivered report, the next click) writes it; once the label is
//! counted no further fact write is made, so a flood of clicks costs no
//! more writes than before. Racing first clicks write the same fact (its id
//! is the message's and the outcome's): stored once.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::facts::{engagement_outcome, message_fact};
use crate::engagement::{classify, Classified, EngagementLabel, EngagementReason, Interaction, MACHINE_WINDOW};
use crate::ids::{CartId, MessageId};
use crate::message::{MessageRecord, MessageStatus};
use crate::ports::{FactStore, MessageStore, PortError, Timeline, TimelineEntry, TimelineKind};

/// What recording one open or click did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngagementOutcome {
    /// The first of its label on this message: counted and on the timeline.
    First(Classified),
    /// Counted; its label was on the timeline already.
    Repeat { classified: Classified, count: u64 },
    /// No such message (expired with its retention, or never ours).
    UnknownMessage,
}

/// One open or click as it was seen.
#[derive(Debug, Clone, Copy)]
pub struct Sighting<'a> {
    pub interaction: Interaction,
    pub at: DateTime<Utc>,
    /// The `User-Agent` of whoever opened or clicked, when known.
    pub user_agent: Option<&'a str>,
}

/// When the message left, for the "too soon after the send" rule: the time
/// its send was recorded; before that (a click racing the sender's own
/// write) the decision time, which is earlier, so the rule errs towards a
/// person.
pub fn sent_at(message: &MessageRecord) -> DateTime<Utc> {
    match &message.status {
        MessageStatus::Sent { at, .. } | MessageStatus::Unknown { at, .. } => *at,
        _ => message.decided_at,
    }
}

/// Labels, counts and (the first time per label) explains one open or click
/// on `message`. `details` add the source's own facts to the timeline line
/// (a provider's name and message id). Only a storage outage is an error.
pub async fn record_engagement<S: MessageStore + Timeline + FactStore + ?Sized>(
    store: &S,
    message: &MessageRecord,
    sighting: Sighting<'_>,
    details: Map<String, Value>,
) -> Result<EngagementOutcome, PortError> {
    let classified = classify(sighting.interaction, sighting.user_agent, sighting.at, sent_at(message));
    if message.engagement.tally(classified.label).is_none() {
        if let Some(outcome) = engagement_outcome(classified.label) {
            store.record_fact(&message_fact(message, outcome, sighting.at)).await?;
        }
    }
    let Some(tally) = store.record_engagement(&message.message_id, classified.label, sighting.at).await? else {
        return Ok(EngagementOutcome::UnknownMessage);
    };
    if tally.count > 1 {
        return Ok(EngagementOutcome::Repeat { classified, count: tally.count });
    }
    // Explanatory: the count above is what decisions read, so a failure
    // here is logged, not retried (a retry would count the click twice).
    let entry = timeline_entry(message, &classified, sighting.at, details);
    if let Err(error) = store.append_timeline(&message.cart_id, &entry).await {
        let (message_id, label) = (&message.message_id, classified.label.as_str());
        tracing::warn!(%error, %message_id, label, "engagement not added to the timeline");
    }
    Ok(EngagementOutcome::First(classified))
}

/// A click on a tracked link (`GET /r/{token}`) of `message_id`, seen now.
pub async fn record_link_click<S: MessageStore + Timeline + FactStore + ?Sized>(
    store: &S,
    message_id: &MessageId,
    cart_id: &CartId,
    user_agent: Option<&str>,
    now: DateTime<Utc>,
) -> Result<EngagementOutcome, PortError> {
    let Some(message) = store.get_message(message_id).await?.filter(|m| &m.cart_id == cart_id) else {
        return Ok(EngagementOutcome::UnknownMessage);
    };
    let sighting = Sighting { interaction: Interaction::Click, at: now, user_agent };
    let mut details = Map::new();
    details.insert("source".into(), json!("link"));
    record_engagement(store, &message, sighting, details).await
}

fn timeline_entry(
    message: &MessageRecord,
    classified: &Classified,
    at: DateTime<Utc>,
    extra: Map<String, Value>,
) -> TimelineEntry {
    let step = message.step + 1;
    let why = match (classified.reason, classified.matched) {
        (EngagementReason::ScannerUserAgent, Some(token)) => format!("its user agent names {token:?}"),
        (EngagementReason::ScannerUserAgent, None) => "its user agent is a scanner's".to_owned(),
        (EngagementReason::NoUserAgent, _) => "it sent no user agent, which every browser does".to_owned(),
        (EngagementReason::PrivacyProxy, _) => "its user agent is Apple Mail Privacy Protection's proxy".to_owned(),
        (EngagementReason::TooSoonAfterSend, _) => {
            format!("it came within {} s of the send", MACHINE_WINDOW.num_seconds())
        }
        (EngagementReason::NoMachineSign, _) => String::new(),
    };
    let text = match classified.label {
        EngagementLabel::HumanClick => format!("The customer clicked a link in step {step}'s message."),
        EngagementLabel::ScannerClick => format!(
            "A link in step {step}'s message was followed by a machine (a mail gateway's link scanner or a \
             preview robot: {why}); it does not stop the follow-ups."
        ),
        EngagementLabel::Open => format!(
            "Step {step}'s message was opened. Opens stop the follow-ups only in a campaign with \
             opens_count_as_engagement = true: mail apps and privacy proxies open messages by themselves."
        ),
        EngagementLabel::MachineOpen => {
            format!("Step {step}'s message was opened by a machine ({why}); it never counts as engagement.")
        }
    };
    let text = format!("{text} Later ones of this kind are counted on the message, not added here.");
    let mut details = Map::new();
    details.insert("message_id".into(), json!(message.message_id));
    details.insert("channel".into(), json!(message.channel));
    details.insert("label".into(), json!(classified.label));
    details.insert("reason".into(), json!(classified.reason.as_str()));
    if let Some(token) = classified.matched {
        details.insert("user_agent_matched".into(), json!(token));
    }
    details.extend(extra);
    TimelineEntry {
        at,
        kind: TimelineKind::Engagement,
        code: classified.label.as_str().into(),
        message: text,
        details: Value::Object(details),
    }
}
