use std::sync::Arc;

use chrono::Duration;

use crate::cart::CartStatus;
use crate::ids::{CartId, MessageId};
use crate::message::{MessageJob, MessageStatus};
use crate::ports::TimelineKind;
use crate::ports::{
    CartStore, Claim, Clock, MessageStore, PortError, PriorAttempt, SendError, Sender, StateStore, Timeline,
    TimelineEntry,
};

/// How long a sender holds a claim before another may take over.
const CLAIM_LEASE_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Sent {
        provider_message_id: String,
    },
    /// Already sent, closed, unknown, or cancelled by a later purchase.
    Skipped(String),
    /// The provider refused for good; recorded, not retried.
    Rejected(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The job should come back later (queue retry with backoff).
    #[error("retry later: {0}")]
    Retry(String),
    /// Another sender holds the claim; its lease ends by `retry_at` at the
    /// latest. Not a failed attempt: a queue should hide the job until then
    /// without spending one of its retries (or a job whose sender died would
    /// dead-letter while the dead sender's lease still runs).
    #[error("another sender holds the claim; retry at {retry_at}")]
    Busy { retry_at: chrono::DateTime<chrono::Utc> },
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Takes one job off a channel queue: claim, last-moment checks, send,
/// record. Needs messages, carts (a late purchase cancels) and the timeline.
pub struct Delivery<S: ?Sized = dyn StateStore> {
    pub store: Arc<S>,
    pub sender: Arc<dyn Sender>,
    pub clock: Arc<dyn Clock>,
}

impl<S: CartStore + MessageStore + Timeline + ?Sized> Delivery<S> {
    pub async fn deliver(&self, job: &MessageJob) -> Result<DeliveryOutcome, DeliveryError> {
        let now = self.clock.now();
        let lease_until = now + Duration::seconds(CLAIM_LEASE_SECONDS);
        let (record, taken_over) = match self.store.claim_message(&job.message_id, now, lease_until).await? {
            Claim::Claimed(record) => (record, false),
            Claim::TakenOver(record) => (record, true),
            Claim::AlreadySent => return Ok(DeliveryOutcome::Skipped("already sent".into())),
            Claim::Closed => return Ok(DeliveryOutcome::Skipped("closed for good".into())),
            // The checker queues the job just before writing its record.
            Claim::NotFound => return Err(DeliveryError::Retry("message record not written yet".into())),
            Claim::InFlight => return Err(DeliveryError::Busy { retry_at: lease_until }),
        };
        // The previous sender stopped between claiming and recording: what it
        // did decides, before anything else (even a purchase since then).
        if taken_over {
            match self.sender.prior_attempt(job).await {
                Ok(PriorAttempt::NotDelivered) => {}
                Ok(PriorAttempt::Delivered { provider_message_id }) => {
                    if !self.noted_sent(&record.cart_id, &record.message_id).await? {
                        let text = format!(
                            "Step {} sent by {} (found delivered after an interrupted attempt; not sent again).",
                            record.step + 1,
                            record.channel.as_str()
                        );
                        self.note(&record.cart_id, "sent", &text, &record.message_id, job).await?;
                    }
                    let status = MessageStatus::Sent { provider_message_id: provider_message_id.clone(), at: now };
                    self.store.set_message_status(&record.message_id, &status).await?;
                    return Ok(DeliveryOutcome::Sent { provider_message_id });
                }
                Ok(PriorAttempt::Unknown) => {
                    let reason = "a sender stopped mid-send and the provider cannot say whether it went out".to_owned();
                    let status = MessageStatus::Unknown { reason: reason.clone(), at: now };
                    self.store.set_message_status(&record.message_id, &status).await?;
                    let step = record.step + 1;
                    let text = format!("Step {step} may or may not have gone out ({reason}); not sent again.");
                    self.note(&record.cart_id, "unknown", &text, &record.message_id, job).await?;
                    return Ok(DeliveryOutcome::Skipped("outcome unknown".into()));
                }
                // The claim stays held; once its lease ends the next try asks again.
                Err(SendError::Retryable(error) | SendError::Permanent(error)) => {
                    let error = format!("cannot tell whether an interrupted attempt went out: {error}");
                    return Err(DeliveryError::Retry(error));
                }
            }
        }
        // A purchase may have landed between the decision and now. Nothing
        // was sent if this read fails: the claim is handed back, so the
        // retry is not mistaken for an interrupted send once the lease ends.
        let cart = match self.store.get_cart(&record.cart_id).await {
            Ok(cart) => cart,
            Err(error) => {
                self.release(&record.message_id).await;
                return Err(error.into());
            }
        };
        if let Some(cart) = cart {
            if cart.cart().status == CartStatus::Converted {
                let status = MessageStatus::Cancelled { reason: "purchased".into(), at: now };
                self.store.set_message_status(&record.message_id, &status).await?;
                self.note(
                    &record.cart_id,
                    "cancelled",
                    "Not sent: the customer bought before it went out.",
                    &record.message_id,
                    job,
                )
                .await?;
                return Ok(DeliveryOutcome::Skipped("purchased".into()));
            }
        }
        match self.sender.send(job, now).await {
            Ok(provider_message_id) => {
                // The note goes first: a crash between the two leaves the
                // claim to a taker-over, which finds the note and the message
                // and only records the status (one "sent" line either way).
                let text = format!("Step {} sent by {}.", record.step + 1, record.channel.as_str());
                self.note(&record.cart_id, "sent", &text, &record.message_id, job).await?;
                let status =
                    MessageStatus::Sent { provider_message_id: provider_message_id.clone(), at: self.clock.now() };
                self.store.set_message_status(&record.message_id, &status).await?;
                Ok(DeliveryOutcome::Sent { provider_message_id })
            }
            Err(SendError::Permanent(error)) => {
                let status = MessageStatus::Rejected { error: error.clone(), at: now };
                self.store.set_message_status(&record.message_id, &status).await?;
                self.note(
                    &record.cart_id,
                    "rejected",
                    &format!("The provider refused step {}: {error}", record.step + 1),
                    &record.message_id,
                    job,
                )
                .await?;
                Ok(DeliveryOutcome::Rejected(error))
            }
            Err(SendError::Retryable(error)) => {
                // Hand the claim back so the queue's retry can take it at once,
                // and leave the cause where an operator looks first.
                self.store.set_message_status(&record.message_id, &MessageStatus::Queued).await?;
                self.note(
                    &record.cart_id,
                    "retrying",
                    &format!("Sending step {} failed and will be retried: {error}", record.step + 1),
                    &record.message_id,
                    job,
                )
                .await?;
                Err(DeliveryError::Retry(error))
            }
        }
    }

    /// Hands an unused claim back (`Queued`). Best effort: if this write
    /// fails too, the lease runs out and the next sender asks the provider.
    async fn release(&self, message_id: &MessageId) {
        if let Err(error) = self.store.set_message_status(message_id, &MessageStatus::Queued).await {
            tracing::warn!(%message_id, %error, "claim not handed back; it expires with its lease");
        }
    }

    /// Whether the cart's timeline already says the message was sent (read
    /// only after a takeover, which is rare).
    async fn noted_sent(&self, cart_id: &CartId, message_id: &MessageId) -> Result<bool, PortError> {
        let timeline = self.store.timeline(cart_id).await?;
        Ok(timeline.iter().any(|e| {
            e.kind == TimelineKind::Message
                && e.code == "sent"
                && e.details.get("message_id").and_then(|id| id.as_str()) == Some(message_id.as_str())
        }))
    }

    async fn note(
        &self,
        cart_id: &CartId,
        code: &str,
        message: &str,
        message_id: &MessageId,
        job: &MessageJob,
    ) -> Result<(), PortError> {
        let entry = TimelineEntry {
            at: self.clock.now(),
            kind: TimelineKind::Message,
            code: code.into(),
            message: message.into(),
            details: serde_json::json!({ "message_id": message_id, "channel": job.channel }),
        };
        self.store.append_timeline(cart_id, &entry).await
    }
}
