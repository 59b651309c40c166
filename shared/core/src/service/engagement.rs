//! Opens and clicks on sent messages, from any source: a provider's
//! report (SES open and click events, through [`super::Feedback`]), a
//! click on Cartback's own tracked link (`GET /r/{token}`), or the shop's
//! app reporting a push opened or clicked (`POST /v1/engagement`).
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
use crate::engagement::{
    classify, reported_by_app, Classified, EngagementLabel, EngagementReason, Interaction, MACHINE_WINDOW,
};
use crate::event::{check_id, optional_time, required_str, FieldError};
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
    /// The message never went out (held out, cancelled, refused, still
    /// queued): nobody can have opened it. Only app reports answer this.
    NotSent,
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
    record_classified(store, message, classified, sighting.at, details).await
}

/// Counts (and the first time per label, explains) an open or click
/// already labelled.
async fn record_classified<S: MessageStore + Timeline + FactStore + ?Sized>(
    store: &S,
    message: &MessageRecord,
    classified: Classified,
    at: DateTime<Utc>,
    details: Map<String, Value>,
) -> Result<EngagementOutcome, PortError> {
    if message.engagement.tally(classified.label).is_none() {
        if let Some(outcome) = engagement_outcome(classified.label) {
            store.record_fact(&message_fact(message, outcome, at)).await?;
        }
    }
    let Some(tally) = store.record_engagement(&message.message_id, classified.label, at).await? else {
        return Ok(EngagementOutcome::UnknownMessage);
    };
    if tally.count > 1 {
        return Ok(EngagementOutcome::Repeat { classified, count: tally.count });
    }
    // Explanatory: the count above is what decisions read, so a failure
    // here is logged, not retried (a retry would count the click twice).
    let entry = timeline_entry(message, &classified, at, details);
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

/// A report of the shop's app or SDK (`POST /v1/engagement`): a push
/// opened or clicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppReport {
    pub message_id: MessageId,
    pub interaction: Interaction,
    /// When it happened: the report's `at`, or when it was received.
    pub at: DateTime<Utc>,
}

impl AppReport {
    /// Reads `{message_id, kind: "opened" | "clicked", at?}`; a bad field
    /// is named in the error.
    pub fn parse(body: &[u8], received_at: DateTime<Utc>) -> Result<AppReport, FieldError> {
        let raw: Value = serde_json::from_slice(body).map_err(|_| FieldError::new("body", "must be a JSON object"))?;
        if !raw.is_object() {
            return Err(FieldError::new("body", "must be a JSON object"));
        }
        let field = |name: &str| raw.get(name).unwrap_or(&Value::Null);
        let message_id = check_id("message_id", required_str(field("message_id"), "message_id")?)?;
        let interaction = match required_str(field("kind"), "kind")? {
            "opened" => Interaction::Open,
            "clicked" => Interaction::Click,
            other => return Err(FieldError::new("kind", format!("{other:?} is not one of opened, clicked"))),
        };
        let at = optional_time(field("at"), "at", received_at)?;
        Ok(AppReport { message_id, interaction, at })
    }
}

/// Records an app's report on its message, as a person's open or click
/// (the shop signed it: see [`reported_by_app`]). Idempotent: a report of
/// a kind the message already has changes nothing (a retried request is
/// not told apart from a second tap, and only the first decides).
pub async fn record_app_report<S: MessageStore + Timeline + FactStore + ?Sized>(
    store: &S,
    report: &AppReport,
) -> Result<EngagementOutcome, PortError> {
    let Some(message) = store.get_message(&report.message_id).await? else {
        return Ok(EngagementOutcome::UnknownMessage);
    };
    // `Sending`: the push can reach the phone before the sender records it sent.
    if !matches!(
        message.status,
        MessageStatus::Sent { .. } | MessageStatus::Sending { .. } | MessageStatus::Unknown { .. }
    ) {
        return Ok(EngagementOutcome::NotSent);
    }
    let classified = reported_by_app(report.interaction);
    if let Some(tally) = message.engagement.tally(classified.label) {
        return Ok(EngagementOutcome::Repeat { classified, count: tally.count });
    }
    // A phone's clock behind ours must not put the open before the send.
    let at = report.at.max(sent_at(&message));
    let mut details = Map::new();
    details.insert("source".into(), json!("app"));
    record_classified(store, &message, classified, at, details).await
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
        (EngagementReason::NoMachineSign | EngagementReason::ReportedByApp, _) => String::new(),
    };
    let text = match classified.label {
        EngagementLabel::HumanClick => format!("The customer clicked a link in step {step}'s message."),
        EngagementLabel::ScannerClick => format!(
            "A link in step {step}'s message was followed by a machine (a mail gateway's link scanner or a \
             preview robot: {why}); it does not stop the follow-ups."
        ),
        EngagementLabel::Open if message.channel.opened_only_by_people() => format!(
            "The customer opened step {step}'s {} (reported by the shop's app); it stops the follow-ups.",
            message.channel.as_str()
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

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn received() -> DateTime<Utc> {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    fn parse(body: &str) -> Result<AppReport, String> {
        AppReport::parse(body.as_bytes(), received()).map_err(|e| format!("{}: {}", e.field, e.message))
    }

    #[test]
    fn given_an_opened_and_a_clicked_report_when_parsed_then_kind_and_time_are_read() {
        // GIVEN an open with a time, and a click without one
        // WHEN parsed
        let opened = parse(r#"{"message_id": "m-1", "kind": "opened", "at": "2026-11-23T09:30:00+01:00"}"#).unwrap();
        let clicked = parse(r#"{"message_id": "m-1", "kind": "clicked"}"#).unwrap();
        // THEN the open is at its own time (in UTC), the click when received
        assert_eq!(opened.interaction, Interaction::Open);
        assert_eq!(opened.at, received() - Duration::minutes(90));
        assert_eq!(opened.message_id.as_str(), "m-1");
        assert_eq!((clicked.interaction, clicked.at), (Interaction::Click, received()));
    }

    #[test]
    fn given_bad_reports_when_parsed_then_the_error_names_the_field_and_why() {
        for (body, expected) in [
            ("[]", "body: must be a JSON object"),
            ("not json", "body: must be a JSON object"),
            (r#"{"kind": "opened"}"#, "message_id: "),
            (r#"{"message_id": "has space", "kind": "opened"}"#, "message_id: "),
            (r#"{"message_id": 7, "kind": "opened"}"#, "message_id: "),
            (r#"{"message_id": "m-1"}"#, "kind: "),
            (r#"{"message_id": "m-1", "kind": "read"}"#, "kind: \"read\" is not one of opened, clicked"),
            (r#"{"message_id": "m-1", "kind": "opened", "at": "yesterday"}"#, "at: must be an RFC 3339"),
            (r#"{"message_id": "m-1", "kind": "opened", "at": 5}"#, "at: must be a string"),
            (r#"{"message_id": "m-1", "kind": "opened", "at": "2026-11-23T10:06:00Z"}"#, "at: is more than 5 minutes"),
        ] {
            let error = parse(body).unwrap_err();
            assert!(error.starts_with(expected), "{body}: {error}");
        }
    }

    #[test]
    fn given_an_app_report_when_classified_then_it_is_a_persons_whatever_its_client_or_timing() {
        let open = reported_by_app(Interaction::Open);
        let click = reported_by_app(Interaction::Click);
        assert_eq!((open.label, open.reason), (EngagementLabel::Open, EngagementReason::ReportedByApp));
        assert_eq!((click.label, click.reason.as_str()), (EngagementLabel::HumanClick, "reported_by_app"));
    }
}
