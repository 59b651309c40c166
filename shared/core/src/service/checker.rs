use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::{retry_on_conflict, Attempt, CampaignCache, Settings};
use crate::campaign::Campaign;
use crate::cart::Cart;
use crate::customer::Customer;
use crate::engagement::Engagement;
use crate::engine::{self, Decision, Input};
use crate::ids::{CustomerKey, MessageId};
use crate::message::{Channel, MessageJob, MessageRecord, MessageStatus, Outgoing, Recipient};
use crate::ports::TimelineKind;
use crate::ports::{
    CartRecord, CartStore, Clock, CustomerStore, JobQueue, MessageStore, PortError, ReservedSend, SaveOutcome,
    Scheduler, SendLedgerStore, StateStore, Timeline, TimelineEntry, TimerPayload,
};
use crate::render::{self, Links, RenderError};
use crate::signing::{restore_token, sign_link, LinkClaims};

/// How long after its dispatch a step whose message record is missing counts
/// as lost and is decided again: a lost job is found by the next timer retry
/// (minutes, or days when an operator redrives the timer dead letters, which
/// SQS keeps 14 days). Older, a missing record has expired.
const LOST_STEP_REPAIR_WINDOW: Duration = Duration::days(14);

#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    NoSuchCart,
    /// Another, later timer is pending for this cart: this one is stale.
    Superseded,
    /// The last decision taken, after any sends it led to.
    Decided {
        decision: Decision,
        sent: Vec<MessageId>,
    },
}

/// Runs when a cart's timer fires: re-reads the cart, asks the engine,
/// queues messages, and re-arms or stops. Needs carts, customers, messages
/// and the timeline.
pub struct Checker<S: ?Sized = dyn StateStore> {
    pub store: Arc<S>,
    pub scheduler: Arc<dyn Scheduler>,
    pub queue: Arc<dyn JobQueue>,
    pub campaigns: Arc<CampaignCache>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
}

impl<S: CartStore + CustomerStore + MessageStore + Timeline + SendLedgerStore + ?Sized> Checker<S> {
    pub async fn on_timer(&self, timer: &TimerPayload) -> Result<CheckOutcome, PortError> {
        retry_on_conflict("cart", || self.try_check(timer)).await
    }

    async fn try_check(&self, timer: &TimerPayload) -> Result<Attempt<CheckOutcome>, PortError> {
        let now = self.clock.now();
        let Some(mut record) = self.store.get_cart(&timer.cart_id).await? else {
            return Ok(Attempt::Done(CheckOutcome::NoSuchCart));
        };
        let superseded = record.timer_armed_for.is_some_and(|armed| armed != timer.due_at && armed > now);
        if superseded && self.first_lost_step(&record, &[]).await?.is_none() {
            return Ok(Attempt::Done(CheckOutcome::Superseded));
        }
        let Context { cart, customer, key, mut history, campaigns } =
            load_context(self.store.as_ref(), &self.campaigns, &record, now).await?;
        // The pass that dispatched a step may have died (a crash, a queue
        // outage) between saving its progress and queueing the job, and
        // armed the next step a day later: this timer's retry repairs it now.
        // The lost steps go back to the engine, so the repair obeys consent,
        // caps, quiet hours and lateness exactly like a fresh decision.
        if let Some(first) = self.first_lost_step(&record, &history).await? {
            let lost = record.progress.steps.len() - first;
            record.progress.steps.truncate(first);
            tracing::warn!(cart_id = %record.cart_id, lost, "steps whose job was lost are decided again");
        }
        // Sends other checkers reserved for this customer count now, even
        // before their message records exist (or show in the history).
        let mut ledger = self.store.send_ledger(&key).await?;
        let pending: Vec<MessageRecord> = ledger.pending_elsewhere(&cart.cart_id, &history, now).collect();
        history.extend(pending);
        record.progress.forget_skips_before(cart.last_activity_at);
        let contact = match &customer {
            Some(c) => c.profile.clone(),
            None => cart.contact.clone(),
        };
        let mut jobs = Vec::new();
        // Messages that could not be composed: recorded, never queued.
        let mut unsent = Vec::new();
        let mut timeline = Vec::new();
        // Each send or skip moves progress on; the loop ends at a wait or a stop.
        let decision = loop {
            let input = Input {
                cart: &cart,
                progress: &record.progress,
                customer: customer.as_ref(),
                campaigns: &campaigns,
                history: &history,
                channels: &self.settings.channels,
                now,
            };
            let decision = engine::decide(&input);
            timeline.push(decision_entry(&decision, now));
            if let Decision::Skip { campaign_id, step, due, .. } = &decision {
                record.progress.skip(campaign_id, *step, *due);
                continue;
            }
            let Decision::Send { campaign_id, step, channel, to, template, .. } = &decision else { break decision };
            let message = MessageRecord {
                message_id: MessageRecord::id_for(&cart.cart_id, *step, *channel),
                cart_id: cart.cart_id.clone(),
                customer_key: key.clone(),
                campaign_id: campaign_id.clone(),
                step: *step,
                channel: *channel,
                decided_at: now,
                status: MessageStatus::Queued,
                engagement: Engagement::default(),
            };
            record.progress.record(campaign_id, *step, *channel, message.message_id.clone(), now);
            match self.render(template, to, &cart, contact.first_name.as_deref(), &message.message_id, now) {
                Ok(outgoing) => {
                    ledger.reserve(ReservedSend {
                        message_id: message.message_id.clone(),
                        cart_id: cart.cart_id.clone(),
                        campaign_id: campaign_id.clone(),
                        step: *step,
                        channel: *channel,
                        at: now,
                    });
                    let job = MessageJob {
                        message_id: message.message_id.clone(),
                        cart_id: cart.cart_id.clone(),
                        channel: *channel,
                        outgoing,
                    };
                    jobs.push((message.clone(), job));
                    history.push(message);
                }
                Err(error) => {
                    let failed = not_rendered(message, template, &error, now);
                    timeline.push(not_rendered_entry(&failed, now));
                    history.push(failed.clone());
                    unsent.push(failed);
                }
            }
        };
        // The reservation is the per-customer cap's atomic step: written
        // under the ledger's version before anything is queued, so a checker
        // that raced this one for another cart of the customer conflicts,
        // re-reads and decides again with these sends counted.
        if !jobs.is_empty() {
            ledger.forget_before(now - history_window(&campaigns));
            if self.store.save_send_ledger(&ledger).await? == SaveOutcome::Conflict {
                return Ok(Attempt::Conflict);
            }
        }
        record.timer_armed_for = match &decision {
            Decision::Wait { until, .. } => {
                self.scheduler.arm(&TimerPayload { cart_id: record.cart_id.clone(), due_at: *until }).await?;
                Some(*until)
            }
            _ => None,
        };
        record.updated_at = now;
        if self.store.save_cart(&record).await? == SaveOutcome::Conflict {
            return Ok(Attempt::Conflict);
        }
        // Queued only once the progress is saved: a writer that won the
        // race above cannot leave behind a job for a step the retry
        // decides differently. Both calls are idempotent per message id.
        // The job goes first: a record without a job would look sent and
        // never be repaired; a job without a record waits (the sender
        // retries) until the timer's retry decides the step again and
        // writes the record (or, deciding otherwise, leaves it to the
        // dead-letter queue).
        for (message, job) in &jobs {
            self.queue.enqueue(job).await?;
            self.store.create_message(message).await?;
        }
        for failed in &unsent {
            self.store.create_message(failed).await?;
        }
        let sent = jobs.into_iter().map(|(m, _)| m.message_id).collect();
        for entry in &timeline {
            self.store.append_timeline(&record.cart_id, entry).await?;
        }
        Ok(Attempt::Done(CheckOutcome::Decided { decision, sent }))
    }

    /// The first dispatched step whose message record was never written
    /// (its job may never have been queued), if any. `history` saves the
    /// point reads for messages already known.
    async fn first_lost_step(
        &self,
        record: &CartRecord,
        history: &[MessageRecord],
    ) -> Result<Option<usize>, PortError> {
        // A message record may also be missing because it expired (retention
        // runs from its last write, a cart's from its last edit): a step
        // dispatched long ago is history, not a lost job, and must not be
        // sent again when the customer comes back months later.
        let repairable_since = self.clock.now() - LOST_STEP_REPAIR_WINDOW;
        for (i, dispatched) in record.progress.steps.iter().enumerate() {
            if dispatched.skipped
                || dispatched.at < repairable_since
                || history.iter().any(|m| m.message_id == dispatched.message_id)
            {
                continue;
            }
            if self.store.get_message(&dispatched.message_id).await?.is_none() {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// The message for `to`. An email whose template fails is an error (it is
    /// recorded, not sent); an SMS falls back to a plain line with the link.
    fn render(
        &self,
        template: &str,
        to: &Recipient,
        cart: &Cart,
        first_name: Option<&str>,
        message_id: &MessageId,
        now: DateTime<Utc>,
    ) -> Result<Outgoing, RenderError> {
        let settings = &self.settings;
        let link = |target: &str, ttl: Duration| {
            let claims = LinkClaims {
                message_id: message_id.clone(),
                cart_id: cart.cart_id.clone(),
                target: target.to_owned(),
                expires: (now + ttl).timestamp(),
            };
            format!("{}/r/{}", settings.public_base_url, sign_link(&settings.secret, &claims))
        };
        let restore_expires = (now + settings.restore_ttl).timestamp();
        let restore_target = settings
            .restore_url
            .replace("{cart_id}", &crate::signing::encode_url_component(&cart.cart_id))
            .replace("{token}", &restore_token(&settings.secret, &cart.cart_id, restore_expires));
        let restore = link(&restore_target, settings.restore_ttl);
        let item_link = |url: &str| link(url, settings.link_ttl);
        let links = Links { restore: restore.clone(), item: &item_link };
        Ok(match to {
            Recipient::Email(to) => render::email(template, to, cart, first_name, &links)?,
            Recipient::Sms(to) => render::sms(to, cart, first_name, &links)
                .unwrap_or_else(|_| Outgoing::Sms { to: to.clone(), body: format!("Your cart is waiting: {restore}") }),
            Recipient::Push(token) => {
                let (title, body) = render::push_text(cart, first_name);
                Outgoing::Push { platform: token.platform, token: token.token.clone(), title, body, url: restore }
            }
            Recipient::WebPush(subscription) => {
                let (title, body) = render::push_text(cart, first_name);
                Outgoing::WebPush { subscription: subscription.clone(), title, body, url: restore }
            }
        })
    }
}

/// The record of a step that could not be composed: closed for good (it
/// does not count towards caps), with the cause for the operator.
fn not_rendered(message: MessageRecord, template: &str, error: &RenderError, now: DateTime<Utc>) -> MessageRecord {
    tracing::error!(message_id = %message.message_id, template, %error, "message not composed; not sent");
    let error = format!("not sent: {error}");
    MessageRecord { status: MessageStatus::Rejected { error, at: now }, ..message }
}

fn not_rendered_entry(message: &MessageRecord, now: DateTime<Utc>) -> TimelineEntry {
    TimelineEntry {
        at: now,
        kind: TimelineKind::Message,
        code: "not_rendered".into(),
        message: format!(
            "Step {} was not sent: its {} message could not be composed.",
            message.step + 1,
            message.channel.as_str()
        ),
        details: serde_json::json!({ "message_id": message.message_id, "channel": message.channel }),
    }
}

/// What the engine needs besides the cart record, loaded once per check.
struct Context {
    cart: Cart,
    customer: Option<Customer>,
    key: CustomerKey,
    history: Vec<MessageRecord>,
    campaigns: Arc<Vec<Campaign>>,
}

async fn load_context<S: CustomerStore + MessageStore + ?Sized>(
    store: &S,
    campaigns: &CampaignCache,
    record: &CartRecord,
    now: DateTime<Utc>,
) -> Result<Context, PortError> {
    let cart = record.cart();
    let customer = match &cart.customer_id {
        Some(id) => store.get_customer(id).await?.map(|(c, _)| c),
        None => None,
    };
    let key = CustomerKey::for_cart(cart.customer_id.as_ref(), &cart.cart_id);
    let campaigns = campaigns.get().await?;
    let since = now - history_window(&campaigns);
    let mut history = store.customer_messages(&key, since).await?;
    // A cart that was a guest's when a message went out keeps that message
    // under the guest key: its caps still count once the customer is known.
    let guest_key = CustomerKey::Guest(cart.cart_id.clone());
    if guest_key != key {
        history.extend(store.customer_messages(&guest_key, since).await?);
    }
    Ok(Context { cart, customer, key, history, campaigns })
}

/// What the engine would decide for this cart at `now`, without acting:
/// the "next" line of `cartback explain`.
pub async fn decide_now<S: CustomerStore + MessageStore + ?Sized>(
    store: &S,
    campaigns: &CampaignCache,
    record: &CartRecord,
    channels: &[Channel],
    now: DateTime<Utc>,
) -> Result<Decision, PortError> {
    let ctx = load_context(store, campaigns, record, now).await?;
    let mut progress = record.progress.clone();
    progress.forget_skips_before(ctx.cart.last_activity_at);
    Ok(engine::decide(&Input {
        cart: &ctx.cart,
        progress: &progress,
        customer: ctx.customer.as_ref(),
        campaigns: &ctx.campaigns,
        history: &ctx.history,
        channels,
        now,
    }))
}

/// How far back the engine must see a customer's messages: the longest cap
/// window of any campaign, and at least the life of a step sequence.
fn history_window(campaigns: &[Campaign]) -> Duration {
    campaigns
        .iter()
        .flat_map(|c| {
            [
                c.caps.entry_cooldown,
                c.caps.push_window,
                c.caps.sms_window + c.steps.iter().map(|s| s.delay).sum::<Duration>(),
            ]
        })
        .max()
        .unwrap_or_else(|| Duration::days(30))
        .max(Duration::days(30))
}

fn decision_entry(decision: &Decision, now: DateTime<Utc>) -> TimelineEntry {
    let reason = decision.reason();
    let details = match decision {
        Decision::Wait { until, .. } => serde_json::json!({ "decision": "wait", "until": until }),
        Decision::Send { campaign_id, step, channel, .. } => {
            serde_json::json!({ "decision": "send", "campaign_id": campaign_id, "step": step, "channel": channel })
        }
        Decision::Skip { campaign_id, step, due, .. } => {
            serde_json::json!({ "decision": "skip", "campaign_id": campaign_id, "step": step, "due": due })
        }
        Decision::Stop { .. } => serde_json::json!({ "decision": "stop" }),
    };
    TimelineEntry {
        at: now,
        kind: TimelineKind::Decision,
        code: reason.code.as_str().into(),
        message: reason.message.clone(),
        details,
    }
}
