//! The Lambda handlers, as plain async functions over the assembled core
//! services, so tests call them in-process exactly as the binaries do.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use axum::Router;
use lambda_http::request::LambdaRequest;
use lambda_http::tower::Service;
use lambda_http::{Adapter, Context, LambdaEvent};
use serde_json::{json, Value};

use cartback_core::engine::Decision;
use cartback_core::ports::{PortError, TimerPayload};
use cartback_core::service::{CheckOutcome, Checker, Delivery, DeliveryError, DeliveryOutcome};

use crate::sqs::Postponer;
use crate::sqs_batch::{parse_batch, BatchItem};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Storage, scheduler or queue unreachable after the SDK's retries: the
    /// invocation fails so its source (EventBridge Scheduler) retries it.
    #[error(transparent)]
    Port(#[from] PortError),
    /// The timer sweep found overdue carts and re-armed none of them.
    #[error("the timer sweep re-armed none of {0} overdue carts")]
    SweepFailed(usize),
}

/// The ingest function on one API Gateway HTTP API (payload v2) event,
/// exactly as `lambda_http::run(app)` in the binary handles it: lambda_http
/// turns the event into an `http::Request`, the shared router answers, and
/// lambda_http turns the answer into the JSON the runtime posts back to
/// Lambda, read here as API Gateway's response. Tests call this.
pub async fn ingest(app: &Router, event: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
    let event = LambdaEvent::new(LambdaRequest::ApiGatewayV2(event), Context::default());
    let Ok(answer) = Adapter::from(app.clone()).call(event).await;
    serde_json::to_value(answer)
        .and_then(serde_json::from_value)
        .expect("lambda_http answers an API Gateway v2 event with an API Gateway v2 response")
}

/// The checker function: the target of each cart's schedule. A payload that
/// is not a `TimerPayload` can never succeed, so it is logged and answered
/// (no retry); a storage outage fails the invocation so the scheduler's
/// retry policy tries again.
pub async fn checker(checker: &Checker, payload: Value) -> Result<Value, HandlerError> {
    let timer: TimerPayload = match serde_json::from_value(payload) {
        Ok(t) => t,
        Err(error) => {
            let error = crate::redact::json_error_summary(&error);
            tracing::error!(%error, "checker input is not a timer payload; ignored");
            return Ok(json!({ "outcome": "malformed", "error": error }));
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
                Decision::Withhold { .. } => "withhold",
                Decision::Skip { .. } => "skip",
                Decision::Stop { .. } => "stop",
            };
            json!({ "outcome": "decided", "decision": kind, "reason": decision.reason().code.as_str(), "sent": sent })
        }
    };
    tracing::info!(cart_id = %timer.cart_id, due_at = %timer.due_at, outcome = %summary, "timer checked");
    Ok(summary)
}

/// What the checker function is invoked with.
#[derive(Debug)]
pub enum CheckerInput {
    /// A cart's schedule fired: a `TimerPayload` (see [`checker`]).
    Timer(Value),
    /// `{"sweep": {}}`, from the every-few-minutes sweep schedule.
    Sweep,
    /// A batch from the timer queue: timers moved there from the timer
    /// dead-letter queue by `infra/redrive-dlq.sh timers`.
    Redriven(SqsEvent),
}

impl CheckerInput {
    pub fn from_payload(payload: Value) -> Self {
        if payload.get("sweep").is_some() {
            return CheckerInput::Sweep;
        }
        if payload.get("Records").is_some() {
            if let Ok(event) = serde_json::from_value::<SqsEvent>(payload.clone()) {
                return CheckerInput::Redriven(event);
            }
        }
        CheckerInput::Timer(payload)
    }
}

/// The checker function's entry point: a fired timer, a sweep, or a batch
/// of redriven timers. Each answer is JSON for the invocation's result (for
/// a batch: the partial batch failures SQS reads).
pub async fn checker_function(
    checker: &Checker,
    sweep: &crate::sweep::TimerSweep,
    payload: Value,
) -> Result<Value, HandlerError> {
    match CheckerInput::from_payload(payload) {
        CheckerInput::Timer(payload) => self::checker(checker, payload).await,
        CheckerInput::Sweep => {
            let report = sweep.run().await?;
            tracing::info!(
                overdue = report.overdue,
                rearmed = report.rearmed,
                moved_on = report.moved_on,
                given_up = report.given_up,
                failed = report.failed,
                "timer sweep"
            );
            // A run where every cart failed is a failed run (alarms watch
            // the function's errors); the next run tries them again.
            if report.failed > 0 && report.failed == report.overdue {
                return Err(HandlerError::SweepFailed(report.failed));
            }
            Ok(json!(report))
        }
        CheckerInput::Redriven(event) => {
            let response = redriven_timers(checker, event).await;
            Ok(serde_json::to_value(response).unwrap_or_else(|_| json!({ "batchItemFailures": [] })))
        }
    }
}

/// What a timer dead-letter message holds.
#[derive(Debug, PartialEq)]
pub enum DeadTimer {
    Timer(TimerPayload),
    /// A failed sweep run: the next scheduled run replaces it.
    Sweep,
}

/// Reads a message of the timer dead-letter queue. Two writers put
/// messages there: EventBridge Scheduler, when it could not invoke the
/// checker (the body is the schedule's input, the `TimerPayload`), and
/// Lambda's `OnFailure` destination, when the checker failed all its
/// asynchronous attempts (the body is an invocation record whose
/// `requestPayload` is the input). The error never quotes the body.
pub fn dead_timer(body: &str) -> Result<DeadTimer, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON: {}", crate::redact::json_error_summary(&e)))?;
    let input = match value.get("requestPayload") {
        Some(inner) => inner.clone(),
        None => value,
    };
    if input.get("sweep").is_some() {
        return Ok(DeadTimer::Sweep);
    }
    serde_json::from_value(input)
        .map(DeadTimer::Timer)
        .map_err(|e| format!("not a timer: {}", crate::redact::json_error_summary(&e)))
}

/// Redriven timers, each checked on its own (partial batch failure): a
/// check that fails again is retried by SQS and, after the queue's
/// `maxReceiveCount`, lands back in the timer dead-letter queue.
pub async fn redriven_timers(checker: &Checker, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for record in event.records {
        let Some(record_id) = record.message_id.clone() else {
            tracing::error!("SQS record without a message id; cannot be reported");
            continue;
        };
        match dead_timer(record.body.as_deref().unwrap_or_default()) {
            Ok(DeadTimer::Sweep) => tracing::info!(sqs_message_id = %record_id, "redriven sweep request dropped"),
            Ok(DeadTimer::Timer(timer)) => match checker.on_timer(&timer).await {
                Ok(outcome) => {
                    tracing::info!(cart_id = %timer.cart_id, due_at = %timer.due_at, outcome = ?outcome_code(&outcome), "redriven timer checked")
                }
                Err(error) => {
                    tracing::warn!(cart_id = %timer.cart_id, sqs_message_id = %record_id, %error, "redriven timer failed; SQS will retry");
                    failures.push(record_id);
                }
            },
            Err(error) => {
                tracing::error!(sqs_message_id = %record_id, %error, "malformed timer; left for the dead-letter queue");
                failures.push(record_id);
            }
        }
    }
    SqsBatchResponse {
        batch_item_failures: failures.into_iter().map(|item_identifier| BatchItemFailure { item_identifier }).collect(),
    }
}

fn outcome_code(outcome: &CheckOutcome) -> &'static str {
    match outcome {
        CheckOutcome::NoSuchCart => "no_such_cart",
        CheckOutcome::Superseded => "superseded",
        CheckOutcome::Decided { .. } => "decided",
    }
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
    deliver_batch(delivery, None, event).await
}

/// [`sender`], and a job that must wait (quiet hours at send time, a claim
/// another sender holds) is hidden until it may go rather than failing back
/// every visibility timeout. What the sender functions run.
pub async fn sender_postponing(delivery: &Delivery, postponer: &Postponer, event: SqsEvent) -> SqsBatchResponse {
    deliver_batch(delivery, Some(postponer), event).await
}

async fn deliver_batch(delivery: &Delivery, postponer: Option<&Postponer>, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for item in parse_batch(event) {
        match item {
            BatchItem::Unidentified => tracing::error!("SQS record without a message id; cannot be reported"),
            BatchItem::Malformed { record_id, error } => {
                tracing::error!(sqs_message_id = %record_id, %error, "malformed job; left for the dead-letter queue");
                failures.push(record_id);
            }
            BatchItem::Job { record_id, receive_count, job, receipt } => match delivery.deliver(&job).await {
                Ok(DeliveryOutcome::Sent { provider_message_id }) => {
                    tracing::info!(message_id = %job.message_id, cart_id = %job.cart_id, %provider_message_id, "sent");
                }
                Ok(DeliveryOutcome::Skipped(why)) => {
                    tracing::info!(message_id = %job.message_id, reason = %why, "skipped")
                }
                Ok(DeliveryOutcome::Rejected(error)) => {
                    tracing::warn!(message_id = %job.message_id, error = %crate::redact::redact_text(&error), "rejected by the provider; not retried")
                }
                // A receiver's `Retry-After` hides the job the same way (the
                // receive still counts towards the dead-letter queue).
                Err(
                    DeliveryError::Busy { retry_at: until }
                    | DeliveryError::Deferred { until, .. }
                    | DeliveryError::RetryAfter { at: until, .. },
                ) => {
                    // Reported as a failure so SQS keeps it; hidden until it may go.
                    let seconds = (until - delivery.clock.now()).num_seconds();
                    if let (Some(postponer), Some(receipt)) = (postponer, &receipt) {
                        if let Err(error) = postponer.hide(receipt, seconds).await {
                            tracing::warn!(message_id = %job.message_id, %error, "job not postponed; it comes back after its visibility timeout");
                        }
                    }
                    tracing::info!(message_id = %job.message_id, sqs_message_id = %record_id, receive_count, %until, "delivery postponed");
                    failures.push(record_id);
                }
                Err(error @ (DeliveryError::Retry(_) | DeliveryError::Port(_))) => {
                    tracing::warn!(message_id = %job.message_id, sqs_message_id = %record_id, receive_count, error = %crate::redact::redact_text(&error.to_string()), "delivery failed; SQS will retry");
                    failures.push(record_id);
                }
            },
        }
    }
    SqsBatchResponse {
        batch_item_failures: failures.into_iter().map(|item_identifier| BatchItemFailure { item_identifier }).collect(),
    }
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
            FeedbackItem::Ignored { record_id, reason } => {
                tracing::info!(sqs_message_id = %record_id, %reason, "feedback ignored")
            }
            FeedbackItem::Malformed { record_id, error } => {
                tracing::error!(sqs_message_id = %record_id, %error, "malformed feedback; left for the dead-letter queue");
                failures.push(record_id);
            }
            FeedbackItem::Event { record_id, event } => match feedback.record(&event).await {
                Ok(outcome) => {
                    tracing::info!(message_id = %event.message_id, kind = event.kind.as_str(), outcome = ?outcome, "feedback recorded")
                }
                Err(error) => {
                    tracing::warn!(message_id = %event.message_id, sqs_message_id = %record_id, %error, "feedback not recorded; SQS will retry");
                    failures.push(record_id);
                }
            },
        }
    }
    SqsBatchResponse {
        batch_item_failures: failures.into_iter().map(|item_identifier| BatchItemFailure { item_identifier }).collect(),
    }
}

/// A send-* function's loop: each batch from its queue through `delivery`
/// (its voucher webhook set from `voucher_webhook`), postponed jobs hidden,
/// partial batch failures reported. Every sender's `main` ends here.
pub async fn run_sender(
    clients: &crate::clients::Clients,
    mut delivery: Delivery,
    voucher_webhook: Option<&crate::config::VoucherWebhookConfig>,
) -> Result<(), lambda_runtime::Error> {
    delivery.webhook = crate::wiring::voucher_webhook(clients, voucher_webhook).await?;
    let delivery = std::sync::Arc::new(delivery);
    let postponer = std::sync::Arc::new(Postponer::new(clients.sqs.clone()));
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
        let (delivery, postponer) = (delivery.clone(), postponer.clone());
        async move { Ok::<_, lambda_runtime::Error>(sender_postponing(&delivery, &postponer, event.payload).await) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_both_dead_letter_shapes_when_read_then_each_yields_the_timer_and_a_bad_body_is_an_error_without_its_text()
    {
        let timer = TimerPayload { cart_id: "c-1".into(), due_at: "2026-11-23T10:31:00Z".parse().unwrap() };
        let scheduler_body = serde_json::to_string(&timer).unwrap();
        assert_eq!(dead_timer(&scheduler_body), Ok(DeadTimer::Timer(timer.clone())));
        let lambda_record = json!({ "version": "1.0", "requestContext": { "condition": "RetriesExhausted" },
                                    "requestPayload": timer, "responsePayload": { "errorMessage": "boom" } });
        assert_eq!(dead_timer(&lambda_record.to_string()), Ok(DeadTimer::Timer(timer)));
        assert_eq!(dead_timer(r#"{"requestPayload":{"sweep":{}}}"#), Ok(DeadTimer::Sweep));
        let error = dead_timer(r#"{"cart_id":"ana@example.com"}"#).unwrap_err();
        assert!(error.starts_with("not a timer") && !error.contains("ana@"), "{error}");
        assert!(dead_timer("ana@example.com").unwrap_err().starts_with("not JSON"));
    }

    #[test]
    fn given_each_invocation_shape_when_classified_then_sweeps_batches_and_timers_are_told_apart() {
        assert!(matches!(CheckerInput::from_payload(json!({ "sweep": {} })), CheckerInput::Sweep));
        assert!(matches!(CheckerInput::from_payload(json!({ "Records": [] })), CheckerInput::Redriven(_)));
        let timer = json!({ "cart_id": "c", "due_at": "2026-11-23T10:31:00Z" });
        assert!(matches!(CheckerInput::from_payload(timer), CheckerInput::Timer(_)));
    }
}
