//! The Lambda handlers, as plain async functions over the assembled core
//! services, so tests call them in-process exactly as the binaries do.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderName, HeaderValue};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use cartback_core::api::{self, Api};
use cartback_core::engine::Decision;
use cartback_core::ports::{PortError, TimerPayload};
use cartback_core::service::{CheckOutcome, Checker, Delivery, DeliveryError, DeliveryOutcome};

use crate::sqs_batch::{parse_batch, BatchItem};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Storage, scheduler or queue unreachable after the SDK's retries: the
    /// invocation fails so its source (EventBridge Scheduler) retries it.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// API Gateway HTTP API (payload v2) request to the runtime-neutral request.
pub fn to_api_request(event: &ApiGatewayV2httpRequest) -> Result<api::Request, &'static str> {
    let body = match (&event.body, event.is_base64_encoded) {
        (None, _) => Vec::new(),
        (Some(b), false) => b.as_bytes().to_vec(),
        (Some(b), true) => STANDARD.decode(b.as_bytes()).map_err(|_| "the request body is not valid base64")?,
    };
    let mut path = event.raw_path.clone().or_else(|| event.request_context.http.path.clone()).unwrap_or_else(|| "/".into());
    if let Some(q) = event.raw_query_string.as_deref().filter(|q| !q.is_empty()) {
        path = format!("{path}?{q}");
    }
    let headers = event
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    Ok(api::Request { method: event.request_context.http.method.as_str().to_owned(), path, headers, body })
}

/// The runtime-neutral response to API Gateway's: same status, headers and
/// body bytes.
pub fn from_api_response(response: api::Response) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    for (k, v) in &response.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            headers.append(name, value);
        }
    }
    let (body, is_base64_encoded) = if response.body.is_empty() {
        (None, false)
    } else {
        match String::from_utf8(response.body) {
            Ok(text) => (Some(Body::Text(text)), false),
            Err(e) => (Some(Body::Binary(e.into_bytes())), true),
        }
    };
    ApiGatewayV2httpResponse { status_code: i64::from(response.status), headers, multi_value_headers: HeaderMap::new(), body, is_base64_encoded, cookies: Vec::new() }
}

/// The ingest function: `POST /v1/events`, `GET /v1/carts/{id}`, `/r/{token}`.
pub async fn ingest(api: &Api, event: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
    match to_api_request(&event) {
        Ok(request) => from_api_response(api.handle(&request).await),
        Err(reason) => from_api_response(api::Response {
            status: 400,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(&json!({ "error": { "code": "bad_request", "message": reason } })).unwrap_or_default(),
        }),
    }
}

/// The checker function: the target of each cart's schedule. A payload that
/// is not a `TimerPayload` can never succeed, so it is logged and answered
/// (no retry); a storage outage fails the invocation so the scheduler's
/// retry policy tries again.
pub async fn checker(checker: &Checker, payload: Value) -> Result<Value, HandlerError> {
    let timer: TimerPayload = match serde_json::from_value(payload) {
        Ok(t) => t,
        Err(error) => {
            tracing::error!(%error, "checker input is not a timer payload; ignored");
            return Ok(json!({ "outcome": "malformed", "error": error.to_string() }));
        }
    };
    let outcome = checker.on_timer(&timer).await?;
    let summary = match &outcome {
        CheckOutcome::NoSuchCart => json!({ "outcome": "no_such_cart" }),
        CheckOutcome::Superseded => json!({ "outcome": "superseded" }),
        CheckOutcome::Decided { decision, sent } => {
            let kind = match decision {
                Decision::Wait { .. } => "wait",
                Decision::Send { .. } => "send",
                Decision::Stop { .. } => "stop",
            };
            json!({ "outcome": "decided", "decision": kind, "reason": decision.reason().code.as_str(), "sent": sent })
        }
    };
    tracing::info!(cart_id = %timer.cart_id, due_at = %timer.due_at, outcome = %summary, "timer checked");
    Ok(summary)
}

/// A sender function: every record of the SQS batch is delivered on its
/// own; the response lists only the records to retry (partial batch
/// failure), so one bad record never fails or re-sends the others.
///
/// A record whose body is not a `MessageJob` can never succeed. It is logged
/// (id only, never the body, which holds contact data) and **reported as a
/// failure**, not acknowledged: SQS then redelivers it until
/// `maxReceiveCount` and its redrive policy moves it to the channel's
/// dead-letter queue, where an operator can see it. Acknowledging it would
/// delete the evidence.
pub async fn sender(delivery: &Delivery, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for item in parse_batch(event) {
        match item {
            BatchItem::Unidentified => tracing::error!("SQS record without a message id; cannot be reported"),
            BatchItem::Malformed { record_id, error } => {
                tracing::error!(sqs_message_id = %record_id, %error, "malformed job; left for the dead-letter queue");
                failures.push(record_id);
            }
            BatchItem::Job { record_id, receive_count, job } => match delivery.deliver(&job).await {
                Ok(DeliveryOutcome::Sent { provider_message_id }) => {
                    tracing::info!(message_id = %job.message_id, cart_id = %job.cart_id, %provider_message_id, "sent");
                }
                Ok(DeliveryOutcome::Skipped(why)) => tracing::info!(message_id = %job.message_id, reason = %why, "skipped"),
                Ok(DeliveryOutcome::Rejected(error)) => {
                    tracing::warn!(message_id = %job.message_id, error = %crate::redact::redact_text(&error), "rejected by the provider; not retried")
                }
                Err(error @ (DeliveryError::Retry(_) | DeliveryError::Port(_))) => {
                    tracing::warn!(message_id = %job.message_id, sqs_message_id = %record_id, receive_count, error = %crate::redact::redact_text(&error.to_string()), "delivery failed; SQS will retry");
                    failures.push(record_id);
                }
            },
        }
    }
    SqsBatchResponse { batch_item_failures: failures.into_iter().map(|item_identifier| BatchItemFailure { item_identifier }).collect() }
}

/// The feedback function: SES event notifications (SNS envelopes) from the
/// feedback queue. Each record is applied on its own (partial batch
/// failure). Event types Cartback does not track, and messages without
/// Cartback's tag, are acknowledged and ignored; a record that is not an
/// SNS-wrapped SES event is reported as a failure so that it ends in the
/// feedback dead-letter queue (as with a sender's malformed job); a storage
/// outage retries the record. Replays are harmless: every effect is deduped.
pub async fn feedback(feedback: &cartback_core::service::Feedback, event: SqsEvent) -> SqsBatchResponse {
    use crate::feedback::{parse_batch, FeedbackItem};
    let mut failures = Vec::new();
    for item in parse_batch(event) {
        match item {
            FeedbackItem::Unidentified => tracing::error!("SQS record without a message id; cannot be reported"),
            FeedbackItem::Ignored { record_id, reason } => tracing::info!(sqs_message_id = %record_id, %reason, "feedback ignored"),
            FeedbackItem::Malformed { record_id, error } => {
                tracing::error!(sqs_message_id = %record_id, %error, "malformed feedback; left for the dead-letter queue");
                failures.push(record_id);
            }
            FeedbackItem::Event { record_id, event } => match feedback.record(&event).await {
                Ok(outcome) => tracing::info!(message_id = %event.message_id, kind = event.kind.as_str(), outcome = ?outcome, "feedback recorded"),
                Err(error) => {
                    tracing::warn!(message_id = %event.message_id, sqs_message_id = %record_id, %error, "feedback not recorded; SQS will retry");
                    failures.push(record_id);
                }
            },
        }
    }
    SqsBatchResponse { batch_item_failures: failures.into_iter().map(|item_identifier| BatchItemFailure { item_identifier }).collect() }
}
