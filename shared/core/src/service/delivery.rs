use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Duration;

use super::facts::message_fact;
use super::preferences::{Choices, Preferences};
use super::CampaignCache;
use crate::consent::ConsentSource;
use crate::engine::{self, Input, Recheck};
use crate::ids::{CartId, MessageId};
use crate::measure::facts::MessageOutcome;
use crate::message::{MessageJob, MessageRecord, MessageStatus};
use crate::ports::TimelineKind;
use crate::ports::{
    CartStore, Claim, Clock, CustomerStore, EventLog, FactStore, MessageStore, PortError, PriorAttempt, PublishError,
    SendError, Sender, SettleOutcome, StateStore, Timeline, TimelineEntry, VoucherPublisher, VoucherStore,
};
use crate::reason::Reason;
use crate::signing::UnsubscribeClaims;
use crate::voucher::VoucherStatus;

/// How long a sender holds a claim before another may take over.
const CLAIM_LEASE_SECONDS: i64 = 300;

/// Why a sender whose lease ran out stops: a later claimant owns the record.
const CLAIM_LOST: &str = "claim lost to a later sender";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Sent {
        provider_message_id: String,
    },
    /// Already sent, closed, unknown, or cancelled by a rule asked again
    /// right before the send (a purchase, a withdrawn consent, ...).
    Skipped(String),
    /// The provider refused for good; recorded, not retried.
    Rejected(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The job should come back later (queue retry with backoff).
    #[error("retry later: {0}")]
    Retry(String),
    /// Like `Retry` (a failed attempt, counted towards the dead-letter
    /// queue), and not before `at`: the receiver asked for the pause.
    #[error("retry at {at}: {error}")]
    RetryAfter { error: String, at: chrono::DateTime<chrono::Utc> },
    /// Another sender holds the claim; its lease ends by `retry_at` at the
    /// latest. Not a failed attempt: a queue should hide the job until then
    /// without spending one of its retries (or a job whose sender died would
    /// dead-letter while the dead sender's lease still runs).
    #[error("another sender holds the claim; retry at {retry_at}")]
    Busy { retry_at: chrono::DateTime<chrono::Utc> },
    /// Not now: a rule asked right before the send (quiet hours) allows it
    /// from `until`. Like `Busy`, not a failed attempt: the queue hides the
    /// job until then (the claim is handed back), and the rules are asked
    /// again when it comes back.
    #[error("deferred until {until}: {}", reason.code.as_str())]
    Deferred { until: chrono::DateTime<chrono::Utc>, reason: Reason },
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Takes one job off a channel queue: claim, last-moment checks, publish
/// its voucher, send, record. Needs messages, carts and customers (the rules
/// are asked again on fresh state), the campaigns, the timeline, the facts
/// (a send) and the vouchers (published or not).
pub struct Delivery<S: ?Sized = dyn StateStore> {
    pub store: Arc<S>,
    pub sender: Arc<dyn Sender>,
    pub campaigns: Arc<CampaignCache>,
    pub clock: Arc<dyn Clock>,
    /// Where issued vouchers are announced (`voucher.issued`); `None`: off.
    pub webhook: Option<VoucherWebhook>,
}

/// The `voucher.issued` webhook as delivery uses it.
#[derive(Clone)]
pub struct VoucherWebhook {
    pub publisher: Arc<dyn VoucherPublisher>,
    /// Whether a message showing a voucher waits until the storefront
    /// acknowledged it (the platform applies discounts itself and must know
    /// the code first). Otherwise the message goes out and the webhook is
    /// retried on its own.
    pub wait: bool,
}

/// What publishing a job's voucher came to.
enum Publishing {
    /// Nothing to publish: no webhook, no voucher, or acknowledged before.
    NotNeeded,
    Acknowledged,
    Failed(PublishError),
}

impl<S> Delivery<S>
where
    S: CartStore + CustomerStore + EventLog + MessageStore + Timeline + FactStore + VoucherStore + ?Sized,
{
    pub async fn deliver(&self, job: &MessageJob) -> Result<DeliveryOutcome, DeliveryError> {
        let now = self.clock.now();
        let lease_until = now + Duration::seconds(CLAIM_LEASE_SECONDS);
        let (record, taken_over) = match self.store.claim_message(&job.message_id, now, lease_until).await? {
            Claim::Claimed(record) => (record, false),
            Claim::TakenOver(record) => (record, true),
            // Sent while its voucher's webhook failed: the job came back to
            // publish it (until acknowledged).
            Claim::AlreadySent => {
                if let Publishing::Failed(error) = self.publish_voucher(job).await? {
                    return Err(DeliveryError::Retry(error.to_string()));
                }
                return Ok(DeliveryOutcome::Skipped("already sent".into()));
            }
            Claim::Closed => return Ok(DeliveryOutcome::Skipped("closed for good".into())),
            // The checker queues the job just before writing its record.
            Claim::NotFound => return Err(DeliveryError::Retry("message record not written yet".into())),
            Claim::InFlight => return Err(DeliveryError::Busy { retry_at: lease_until }),
        };
        // Every status written from here on is conditional on still holding
        // this claim: `held` is what the claim wrote.
        let mut held = record.status.clone();
        // The previous sender stopped between claiming and recording: what it
        // did decides, before anything else (even a purchase since then).
        if taken_over {
            if let Some(outcome) = self.after_takeover(job, &record, &held, now).await? {
                // Found sent: its voucher is announced all the same (the
                // previous sender may have stopped before it could).
                if matches!(outcome, DeliveryOutcome::Sent { .. }) {
                    if let Publishing::Failed(error) = self.publish_voucher(job).await? {
                        return Err(DeliveryError::Retry(format!("sent; {error}")));
                    }
                }
                return Ok(outcome);
            }
        }
        // Everything that can change after the decision is asked again on
        // fresh state. Nothing was sent if this fails: the claim is handed
        // back, so the retry is not mistaken for an interrupted send once
        // the lease ends.
        let recheck = match self.recheck(&record).await {
            Ok(recheck) => recheck,
            Err(error) => {
                self.release(&record.message_id, &held).await;
                return Err(error.into());
            }
        };
        match recheck {
            Recheck::Send => {}
            Recheck::Cancel { reason } => {
                let status = MessageStatus::Cancelled { reason: reason.code.as_str().into(), at: now };
                if self.settle(&record, &held, &status).await? == SettleOutcome::ClaimLost {
                    return Ok(DeliveryOutcome::Skipped(CLAIM_LOST.into()));
                }
                let text = format!("Step {} not sent: {}", record.step + 1, reason.message);
                self.note(&record.cart_id, reason.code.as_str(), &text, &record.message_id, job).await?;
                return Ok(DeliveryOutcome::Skipped(reason.code.as_str().into()));
            }
            Recheck::Defer { until, reason } => {
                if self.settle(&record, &held, &MessageStatus::Queued).await? == SettleOutcome::Settled {
                    let text = format!("Step {} held back at send time: {}", record.step + 1, reason.message);
                    self.note(&record.cart_id, reason.code.as_str(), &text, &record.message_id, job).await?;
                }
                return Err(DeliveryError::Deferred { until, reason });
            }
        }
        // The storefront learns the code before the message shows it.
        let unpublished = match self.publish_voucher(job).await {
            Ok(Publishing::Failed(error)) if self.webhook.as_ref().is_some_and(|w| w.wait) => {
                self.release(&record.message_id, &held).await;
                return Err(DeliveryError::Retry(error.to_string()));
            }
            Ok(Publishing::Failed(error)) => Some(error),
            Ok(Publishing::NotNeeded | Publishing::Acknowledged) => None,
            Err(error) => {
                self.release(&record.message_id, &held).await;
                return Err(error.into());
            }
        };
        // The mark that the provider may now be reached: a sender that stops
        // before it leaves nothing to reconcile (the next claim starts afresh).
        let MessageStatus::Sending { lease_until, attempts, .. } = held else {
            return Err(
                PortError::Corrupt(format!("message {}: a claim wrote {}", record.message_id, held.name())).into()
            );
        };
        let calling = MessageStatus::Sending { lease_until, attempts, provider_called: true };
        if self.settle(&record, &held, &calling).await? == SettleOutcome::ClaimLost {
            return Ok(DeliveryOutcome::Skipped(CLAIM_LOST.into()));
        }
        held = calling;
        match self.sender.send(job, now).await {
            Ok(provider_message_id) => {
                // The note goes first: a crash between the two leaves the
                // claim to a taker-over, which finds the note and the message
                // and only records the status (one "sent" line either way).
                let text = format!("Step {} sent by {}.", record.step + 1, record.channel.as_str());
                self.note(&record.cart_id, "sent", &text, &record.message_id, job).await?;
                let sent_at = self.clock.now();
                self.record_sent(&record, sent_at).await?;
                let status = MessageStatus::Sent { provider_message_id: provider_message_id.clone(), at: sent_at };
                self.settle(&record, &held, &status).await?;
                if let Some(error) = unpublished {
                    // Sent; the job comes back (the claim now says so) to
                    // publish the voucher until the storefront acknowledges it.
                    return Err(DeliveryError::Retry(format!("sent; {error}")));
                }
                Ok(DeliveryOutcome::Sent { provider_message_id })
            }
            Err(SendError::Permanent(error)) => {
                let status = MessageStatus::Rejected { error: error.clone(), at: now };
                self.settle(&record, &held, &status).await?;
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
            Err(failure @ (SendError::OptedOut(_) | SendError::Gone(_))) => {
                let (step, channel) = (record.step + 1, record.channel.as_str());
                let (source, code, text, error) = match failure {
                    SendError::Gone(error) => {
                        let text = format!(
                            "Step {step} not sent by {channel}: the subscription is gone ({error}); \
                             no more {channel} until the storefront reports a new one."
                        );
                        (ConsentSource::SubscriptionGone, "subscription_gone", text, error)
                    }
                    SendError::OptedOut(error) => {
                        let text = format!(
                            "Step {step} not sent by {channel}: the recipient opted out at the provider ({error})."
                        );
                        (ConsentSource::SmsStop, "opted_out", text, error)
                    }
                    _ => unreachable!("matched above"),
                };
                // The withdrawal first: if it fails, the claim is handed back
                // and the retry asks the provider (and withdraws) again; a
                // settled message would never be looked at again.
                if let Err(failure) = self.withdraw(&record, source).await {
                    self.release(&record.message_id, &held).await;
                    return Err(failure.into());
                }
                let status = MessageStatus::Rejected { error: error.clone(), at: now };
                self.settle(&record, &held, &status).await?;
                self.note(&record.cart_id, code, &text, &record.message_id, job).await?;
                Ok(DeliveryOutcome::Rejected(error))
            }
            Err(SendError::Unknown(error)) => {
                // It may have gone out: never sent again blindly.
                let status = MessageStatus::Unknown { reason: error.clone(), at: now };
                self.settle(&record, &held, &status).await?;
                let text = format!(
                    "Step {} may or may not have gone out (the provider's answer was lost: {error}); not sent again.",
                    record.step + 1
                );
                self.note(&record.cart_id, "unknown", &text, &record.message_id, job).await?;
                Ok(DeliveryOutcome::Skipped("outcome unknown".into()))
            }
            Err(failure @ (SendError::Retryable(_) | SendError::RetryAfter { .. })) => {
                let (error, at) = match failure {
                    SendError::RetryAfter { error, after } => (error, Some(now + after)),
                    SendError::Retryable(error)
                    | SendError::Permanent(error)
                    | SendError::Unknown(error)
                    | SendError::OptedOut(error)
                    | SendError::Gone(error) => (error, None),
                };
                // The provider certainly did not take it (throttled, refused
                // to connect): hand the claim back so the queue's retry can
                // take it at once, and leave the cause where an operator
                // looks first.
                if self.settle(&record, &held, &MessageStatus::Queued).await? == SettleOutcome::Settled {
                    self.note(
                        &record.cart_id,
                        "retrying",
                        &format!("Sending step {} failed and will be retried: {error}", record.step + 1),
                        &record.message_id,
                        job,
                    )
                    .await?;
                }
                Err(match at {
                    Some(at) => DeliveryError::RetryAfter { error, at },
                    None => DeliveryError::Retry(error),
                })
            }
        }
    }

    /// The claim was taken over from a sender that stopped between claiming
    /// and recording: ask the provider (and the timeline) whether it sent.
    /// `None`: it certainly did not, and this claim goes on like a fresh one.
    async fn after_takeover(
        &self,
        job: &MessageJob,
        record: &MessageRecord,
        held: &MessageStatus,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<DeliveryOutcome>, DeliveryError> {
        let prior = match self.sender.prior_attempt(job).await {
            // The claim stays held; once its lease ends the next try asks again.
            Err(
                SendError::Retryable(error)
                | SendError::RetryAfter { error, .. }
                | SendError::Permanent(error)
                | SendError::Unknown(error)
                | SendError::OptedOut(error)
                | SendError::Gone(error),
            ) => {
                let error = format!("cannot tell whether an interrupted attempt went out: {error}");
                return Err(DeliveryError::Retry(error));
            }
            Ok(prior) => prior,
        };
        let noted = match prior {
            PriorAttempt::NotDelivered => None,
            // The previous sender wrote its "sent" line right after the
            // provider took the message, so the line settles a provider
            // that cannot be asked.
            PriorAttempt::Delivered { .. } | PriorAttempt::Unknown => {
                Some(super::noted_sent(&*self.store, &record.cart_id, &record.message_id).await?)
            }
        };
        match (prior, noted) {
            (PriorAttempt::NotDelivered, _) => Ok(None),
            (PriorAttempt::Delivered { provider_message_id }, noted) => {
                if noted != Some(true) {
                    let text = format!(
                        "Step {} sent by {} (found delivered after an interrupted attempt; not sent again).",
                        record.step + 1,
                        record.channel.as_str()
                    );
                    self.note(&record.cart_id, "sent", &text, &record.message_id, job).await?;
                }
                self.record_sent(record, now).await?;
                let status = MessageStatus::Sent { provider_message_id: provider_message_id.clone(), at: now };
                self.settle(record, held, &status).await?;
                Ok(Some(DeliveryOutcome::Sent { provider_message_id }))
            }
            (PriorAttempt::Unknown, Some(true)) => {
                self.record_sent(record, now).await?;
                let status = MessageStatus::Sent { provider_message_id: String::new(), at: now };
                self.settle(record, held, &status).await?;
                Ok(Some(DeliveryOutcome::Skipped("already sent".into())))
            }
            (PriorAttempt::Unknown, _) => {
                let reason = "a sender stopped mid-send and the provider cannot say whether it went out".to_owned();
                let status = MessageStatus::Unknown { reason: reason.clone(), at: now };
                self.settle(record, held, &status).await?;
                let step = record.step + 1;
                let text = format!("Step {step} may or may not have gone out ({reason}); not sent again.");
                self.note(&record.cart_id, "unknown", &text, &record.message_id, job).await?;
                Ok(Some(DeliveryOutcome::Skipped("outcome unknown".into())))
            }
        }
    }

    /// The engine's rules that can change after the decision, asked again
    /// on the cart, the customer and the campaigns as they are now. A cart
    /// gone with its retention leaves nothing to ask.
    async fn recheck(&self, record: &MessageRecord) -> Result<Recheck, PortError> {
        let Some(cart_record) = self.store.get_cart(&record.cart_id).await? else { return Ok(Recheck::Send) };
        let cart = cart_record.cart();
        let customer = match &cart.customer_id {
            Some(id) => self.store.get_customer(id).await?.map(|(c, _)| c),
            None => None,
        };
        let campaigns = self.campaigns.get().await?;
        let input = Input {
            cart: &cart,
            progress: &cart_record.progress,
            customer: customer.as_ref(),
            campaigns: &campaigns,
            history: &[],
            channels: std::slice::from_ref(&record.channel),
            vouchers: &[],
            now: self.clock.now(),
        };
        Ok(engine::recheck_before_send(&input, record))
    }

    /// Publishes the job's voucher unless the webhook is off or the
    /// storefront acknowledged it before; notes the outcome on the timeline.
    async fn publish_voucher(&self, job: &MessageJob) -> Result<Publishing, PortError> {
        let (Some(webhook), Some(code)) = (&self.webhook, &job.voucher) else { return Ok(Publishing::NotNeeded) };
        let Some(voucher) = self.store.voucher(code).await? else {
            tracing::warn!(message_id = %job.message_id, ?code, "the job's voucher is not stored; not published");
            return Ok(Publishing::NotNeeded);
        };
        // Announced before, or no longer usable (redeemed, revoked): nothing to tell.
        if voucher.published_at.is_some() || voucher.status != VoucherStatus::Issued {
            return Ok(Publishing::NotNeeded);
        }
        let shown = super::issuing::code_tail(code);
        let now = self.clock.now();
        match webhook.publisher.publish(&voucher).await {
            Ok(()) => {
                self.store.mark_voucher_published(code, now).await?;
                let text = format!("The storefront acknowledged voucher {shown} (voucher.issued webhook).");
                self.note(&job.cart_id, "voucher_published", &text, &job.message_id, job).await?;
                Ok(Publishing::Acknowledged)
            }
            Err(error) => {
                let (code_name, cause) = match &error {
                    PublishError::Retryable(cause) => ("voucher_webhook_failed", cause),
                    PublishError::Refused(cause) => ("voucher_webhook_refused", cause),
                };
                if matches!(error, PublishError::Refused(_)) {
                    tracing::error!(message_id = %job.message_id, %error, "the storefront refused a voucher webhook");
                } else {
                    tracing::warn!(message_id = %job.message_id, %error, "voucher webhook not delivered");
                }
                let then = if webhook.wait {
                    "the message waits for it and is retried"
                } else {
                    "it is retried (the message does not wait)"
                };
                let text =
                    format!("The voucher.issued webhook for voucher {shown} was not acknowledged ({cause}); {then}.");
                self.note(&job.cart_id, code_name, &text, &job.message_id, job).await?;
                Ok(Publishing::Failed(error))
            }
        }
    }

    /// Writes a status while this sender still holds the claim. A lost
    /// claim writes nothing: a later claimant owns the record now.
    async fn settle(
        &self,
        record: &MessageRecord,
        held: &MessageStatus,
        status: &MessageStatus,
    ) -> Result<SettleOutcome, PortError> {
        let outcome = self.store.settle_message(&record.message_id, held, status).await?;
        if outcome == SettleOutcome::ClaimLost {
            tracing::warn!(
                message_id = %record.message_id,
                status = status.name(),
                "claim lost to a later sender (this lease ran out); status left to it"
            );
        }
        Ok(outcome)
    }

    /// The `sent` fact, written before the status that closes the claim:
    /// should this write fail (or the sender stop right after it), the claim
    /// is taken over, the taker-over learns the message went out and writes
    /// the same fact again.
    async fn record_sent(&self, record: &MessageRecord, at: chrono::DateTime<chrono::Utc>) -> Result<(), PortError> {
        self.store.record_fact(&message_fact(record, MessageOutcome::Sent, at)).await?;
        Ok(())
    }

    /// Hands an unused claim back (`Queued`). Best effort: if this write
    /// fails too, the lease runs out and the next sender asks the provider.
    async fn release(&self, message_id: &MessageId, held: &MessageStatus) {
        if let Err(error) = self.store.settle_message(message_id, held, &MessageStatus::Queued).await {
            tracing::warn!(%message_id, %error, "claim not handed back; it expires with its lease");
        }
    }

    /// An opt-out at the provider is the customer's word: the channel's
    /// consent is withdrawn (source `sms_stop`) the way the preference page
    /// withdraws it, so later steps and carts skip the channel.
    async fn withdraw(&self, record: &MessageRecord, source: ConsentSource) -> Result<(), PortError> {
        let claims = UnsubscribeClaims {
            message_id: record.message_id.clone(),
            cart_id: record.cart_id.clone(),
            customer_id: record.customer_key.customer().cloned(),
            expires: i64::MAX,
        };
        let choices = Choices { stop: BTreeSet::from([record.channel]), ..Default::default() };
        let preferences = Preferences { store: self.store.clone(), clock: self.clock.clone() };
        preferences.apply(&claims, &choices, source).await.map(|_| ())
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
