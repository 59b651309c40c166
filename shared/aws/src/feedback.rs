//! SES event notifications, as they reach the feedback queue: SES event
//! publishing (configuration set) -> SNS topic -> SQS queue, raw message
//! delivery off. So each SQS record's body is an SNS notification envelope
//! whose `Message` is the SES event JSON:
//!
//! ```text
//! body    = {"Type": "Notification", "MessageId": ..., "TopicArn": ..., "Message": "<SES event>", "Timestamp": ...}
//! Message = {"eventType": "Bounce", "mail": {"messageId": ..., "timestamp": ..., "tags": {"cartback_message_id": ["m_..."]}}, "bounce": {...}}
//! ```
//!
//! The SES `mail.messageId` is not ours (SES replaces the Message-ID
//! header), so the link back to Cartback's message record is the
//! `cartback_message_id` email tag the sender puts on every `SendEmail`
//! (`ses::MESSAGE_ID_TAG`).

use aws_lambda_events::sqs::SqsEvent;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use cartback_core::service::{FeedbackEvent, FeedbackKind};

use crate::ses::MESSAGE_ID_TAG;

/// Provider name in dedupe ids (`ses-<kind>-<SES message id>`).
pub const PROVIDER: &str = "ses";

#[derive(Debug)]
pub enum FeedbackItem {
    Event {
        record_id: String,
        event: FeedbackEvent,
    },
    /// Well formed but nothing for Cartback to do (an event type it does not
    /// track, a message without our tag): acknowledged.
    Ignored {
        record_id: String,
        reason: String,
    },
    /// Not an SNS-wrapped SES event: it will never succeed.
    Malformed {
        record_id: String,
        error: String,
    },
    /// No SQS message id, so it cannot be named in a batch response.
    Unidentified,
}

#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "Timestamp")]
    timestamp: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct SesEvent {
    /// Configuration-set event publishing says `eventType`; identity
    /// notifications say `notificationType`.
    #[serde(rename = "eventType", alias = "notificationType")]
    event_type: String,
    mail: SesMail,
    #[serde(default)]
    bounce: Option<SesBounce>,
}

#[derive(Deserialize)]
struct SesMail {
    #[serde(rename = "messageId")]
    message_id: String,
    timestamp: DateTime<Utc>,
    #[serde(default)]
    tags: std::collections::HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct SesBounce {
    #[serde(rename = "bounceType")]
    bounce_type: String,
}

pub fn parse_batch(event: SqsEvent) -> Vec<FeedbackItem> {
    event
        .records
        .into_iter()
        .map(|record| {
            let Some(record_id) = record.message_id.filter(|id| !id.is_empty()) else {
                return FeedbackItem::Unidentified;
            };
            match parse_body(record.body.as_deref().unwrap_or_default()) {
                Ok(Some(event)) => FeedbackItem::Event { record_id, event },
                Ok(None) => FeedbackItem::Ignored { record_id, reason: "not a notification Cartback tracks".into() },
                Err(Skip::Ignored(reason)) => FeedbackItem::Ignored { record_id, reason },
                Err(Skip::Malformed(error)) => FeedbackItem::Malformed { record_id, error },
            }
        })
        .collect()
}

enum Skip {
    Ignored(String),
    Malformed(String),
}

/// One SQS body to a feedback event. Errors never quote the body: it holds
/// recipients' addresses.
fn parse_body(body: &str) -> Result<Option<FeedbackEvent>, Skip> {
    let envelope: SnsEnvelope = serde_json::from_str(body).map_err(|e| {
        Skip::Malformed(format!("body is not an SNS notification: {}", crate::redact::json_error_summary(&e)))
    })?;
    if envelope.kind != "Notification" {
        // SubscriptionConfirmation / UnsubscribeConfirmation: CloudFormation
        // confirms the queue's subscription itself.
        return Err(Skip::Ignored(format!("SNS message of type {:?}", envelope.kind)));
    }
    let raw: Value = serde_json::from_str(&envelope.message)
        .map_err(|e| Skip::Malformed(format!("SNS Message is not JSON: {}", crate::redact::json_error_summary(&e))))?;
    let ses: SesEvent = serde_json::from_value(raw.clone()).map_err(|e| {
        Skip::Malformed(format!("SNS Message is not an SES event: {}", crate::redact::json_error_summary(&e)))
    })?;
    let kind = match ses.event_type.as_str() {
        "Delivery" => FeedbackKind::Delivered,
        "Open" => FeedbackKind::Opened,
        "Click" => FeedbackKind::Clicked,
        "Complaint" => FeedbackKind::Complained,
        "Bounce" => {
            let bounce =
                ses.bounce.as_ref().ok_or_else(|| Skip::Malformed("Bounce event without a bounce object".into()))?;
            // "Undetermined" is not proof the address is dead: keep consent.
            FeedbackKind::Bounced { permanent: bounce.bounce_type == "Permanent" }
        }
        // Send, Reject, DeliveryDelay, RenderingFailure, Subscription, ...
        other => return Err(Skip::Ignored(format!("SES event type {other:?} is not tracked"))),
    };
    let Some(message_id) = ses.mail.tags.get(MESSAGE_ID_TAG).and_then(|v| v.first()).filter(|v| !v.is_empty()) else {
        return Err(Skip::Ignored(format!("SES event without a {MESSAGE_ID_TAG} tag: not sent by Cartback")));
    };
    // The time of the event itself (delivery.timestamp, open.timestamp, ...),
    // else the notification's, else the send's.
    let section = ses.event_type.to_ascii_lowercase();
    // Who opened or clicked (`open.userAgent`, `click.userAgent`): what tells
    // a person from a privacy proxy or a link scanner.
    let user_agent = kind.interaction().and_then(|_| raw.get(&section)?.get("userAgent")?.as_str()).map(str::to_owned);
    let at = raw
        .get(&section)
        .and_then(|s| s.get("timestamp"))
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .or(envelope.timestamp)
        .unwrap_or(ses.mail.timestamp);
    Ok(Some(FeedbackEvent {
        message_id: message_id.into(),
        provider: PROVIDER.into(),
        provider_message_id: ses.mail.message_id,
        kind,
        at,
        user_agent,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::sqs::SqsMessage;

    fn record(id: &str, body: &str) -> SqsMessage {
        SqsMessage { message_id: Some(id.into()), body: Some(body.into()), ..Default::default() }
    }

    fn sns(message: &Value) -> String {
        serde_json::json!({ "Type": "Notification", "MessageId": "sns-1", "Message": message.to_string(), "Timestamp": "2026-11-23T11:00:05.000Z" }).to_string()
    }

    fn ses(event_type: &str, extra: (&str, Value)) -> Value {
        let mut v = serde_json::json!({
            "eventType": event_type,
            "mail": { "messageId": "0100019a-ses", "timestamp": "2026-11-23T10:33:00.000Z", "tags": { "cartback_message_id": ["m_abc"] } }
        });
        v[extra.0] = extra.1;
        v
    }

    #[test]
    fn given_each_tracked_ses_event_when_parsed_then_it_maps_to_its_kind_and_time() {
        let cases = [
            (
                "Delivery",
                ("delivery", serde_json::json!({ "timestamp": "2026-11-23T10:33:02.000Z" })),
                FeedbackKind::Delivered,
            ),
            (
                "Open",
                ("open", serde_json::json!({ "timestamp": "2026-11-23T10:40:00.000Z", "userAgent": "Mozilla/5.0" })),
                FeedbackKind::Opened,
            ),
            (
                "Click",
                ("click", serde_json::json!({ "timestamp": "2026-11-23T10:41:00.000Z", "userAgent": "curl/8.5.0" })),
                FeedbackKind::Clicked,
            ),
            (
                "Bounce",
                ("bounce", serde_json::json!({ "bounceType": "Permanent", "timestamp": "2026-11-23T10:33:03.000Z" })),
                FeedbackKind::Bounced { permanent: true },
            ),
            (
                "Bounce",
                (
                    "bounce",
                    serde_json::json!({ "bounceType": "Undetermined", "timestamp": "2026-11-23T10:33:03.000Z" }),
                ),
                FeedbackKind::Bounced { permanent: false },
            ),
            (
                "Complaint",
                ("complaint", serde_json::json!({ "timestamp": "2026-11-23T12:00:00.000Z" })),
                FeedbackKind::Complained,
            ),
        ];
        for (event_type, extra, kind) in cases {
            let expected_at: DateTime<Utc> = extra.1["timestamp"].as_str().unwrap().parse().unwrap();
            let user_agent = extra.1.get("userAgent").and_then(Value::as_str).map(str::to_owned);
            let items = parse_batch(SqsEvent { records: vec![record("r1", &sns(&ses(event_type, extra)))] });
            match &items[..] {
                [FeedbackItem::Event { record_id, event }] => {
                    assert_eq!(record_id, "r1");
                    assert_eq!((event.kind, event.at, event.message_id.as_str()), (kind, expected_at, "m_abc"));
                    assert_eq!(event.dedupe_id(), format!("ses-{}-0100019a-ses", kind.as_str()));
                    assert_eq!(event.user_agent.as_deref(), user_agent.as_deref(), "{event_type}");
                }
                other => panic!("{event_type}: {other:?}"),
            }
        }
    }

    #[test]
    fn given_untracked_untagged_and_broken_records_when_parsed_then_only_the_broken_are_malformed() {
        let mut untagged = ses("Delivery", ("delivery", serde_json::json!({})));
        untagged["mail"]["tags"] = serde_json::json!({ "ses:configuration-set": ["cs"] });
        let items = parse_batch(SqsEvent {
            records: vec![
                record("send", &sns(&ses("Send", ("send", serde_json::json!({}))))),
                record("untagged", &sns(&untagged)),
                record("not-sns", "{\"hello\":1}"),
                record("not-ses", &sns(&serde_json::json!({ "eventType": "Open" }))),
                record("bounce-without-bounce", &sns(&ses("Bounce", ("other", Value::Null)))),
                SqsMessage { message_id: None, body: Some("{}".into()), ..Default::default() },
            ],
        });
        let shape: Vec<(&str, &str)> = items
            .iter()
            .map(|i| match i {
                FeedbackItem::Event { record_id, .. } => ("event", record_id.as_str()),
                FeedbackItem::Ignored { record_id, .. } => ("ignored", record_id.as_str()),
                FeedbackItem::Malformed { record_id, .. } => ("malformed", record_id.as_str()),
                FeedbackItem::Unidentified => ("unidentified", ""),
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("ignored", "send"),
                ("ignored", "untagged"),
                ("malformed", "not-sns"),
                ("malformed", "not-ses"),
                ("malformed", "bounce-without-bounce"),
                ("unidentified", "")
            ]
        );
    }
}
