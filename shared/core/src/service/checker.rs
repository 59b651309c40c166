use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::issuing::{self, Issue};
use super::{retry_on_conflict, Attempt, CampaignCache, Settings, TemplateCache, Templates};
use crate::campaign::{Campaign, Caps};
use crate::cart::Cart;
use crate::customer::Customer;
use crate::engine::{self, Decision, Input, Progress};
use crate::ids::{CustomerKey, MessageId};
use crate::measure::{Fact, FactKind, Group, MessageOutcome, SegmentLabel};
use crate::message::{Channel, MessageJob, MessageRecord, MessageStatus, Outgoing, Recipient};
use crate::ports::TimelineKind;
use crate::ports::{
    CartRecord, CartStore, Clock, CustomerStore, FactStore, JobQueue, MessageStore, PortError, ReservedSend,
    SaveOutcome, Scheduler, SendLedgerStore, StateStore, Timeline, TimelineEntry, TimerPayload, VoucherStore,
};
use crate::reason::ReasonCode;
use crate::render::{self, Composer, Links, Reader, RenderError, Unsubscribe};
use crate::short_link::ShortLink;
use crate::signing::{restore_token, sign_link, sign_unsubscribe, LinkClaims, UnsubscribeClaims};
use crate::sms::Segments;
use crate::template::{Brand, TemplateSet};
use crate::voucher::{ShownVoucher, Voucher, VoucherOwner, VoucherSettings};
use crate::webhook::{CartReminder, WebhookContact};

/// How long after its dispatch a step whose message record is missing counts
/// as lost and is decided again: a lost job is found by the next timer retry
/// (minutes, or days when an operator redrives the timer dead letters, which
/// SQS keeps 14 days). Older, a missing record has expired.
const LOST_STEP_REPAIR_WINDOW: Duration = Duration::days(14);

// Returned once per timer and matched at once: boxing the decision buys nothing.
#[allow(clippy::large_enum_variant)]
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
    /// The template sets (stored over shipped) and the brand messages are composed with.
    pub templates: Arc<TemplateCache>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
}

impl<S> Checker<S>
where
    S: CartStore + CustomerStore + MessageStore + Timeline + SendLedgerStore + FactStore + VoucherStore + ?Sized,
{
    pub async fn on_timer(&self, timer: &TimerPayload) -> Result<CheckOutcome, PortError> {
        retry_on_conflict("cart", || self.try_check(timer)).await
    }

    async fn try_check(&self, timer: &TimerPayload) -> Result<Attempt<CheckOutcome>, PortError> {
        let now = self.clock.now();
        let Some(mut record) = self.store.get_cart(&timer.cart_id).await? else {
            return Ok(Attempt::Done(CheckOutcome::NoSuchCart));
        };
        if timer_superseded(record.timer_armed_for, timer.due_at, now)
            && self.first_lost_step(&record, &[]).await?.is_none()
        {
            return Ok(Attempt::Done(CheckOutcome::Superseded));
        }
        let Context { cart, customer, key, mut history, campaigns, owner, mut vouchers } =
            load_context(self.store.as_ref(), &self.campaigns, &record, now).await?;
        // An unreachable template store does not stop sends: the shipped
        // sets compose them, each with the cause on its timeline.
        let (templates, store_error) = match self.templates.get().await {
            Ok(templates) => (templates, None),
            Err(error) => {
                tracing::error!(%error, "template store not read; messages are composed from the shipped sets");
                (self.templates.shipped(), Some(format!("the template store could not be read: {error}")))
            }
        };
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
        // Messages that could not be composed, and steps held out: recorded, never queued.
        let mut unsent = Vec::new();
        let mut timeline = Vec::new();
        // Measurement facts, written before the cart (idempotent: a retry rewrites the same).
        let mut facts = Vec::new();
        let mut reserved = false;
        let measured = Measured { cart: &cart, key: &key, customer: customer.as_ref(), campaigns: &campaigns, now };
        // The cart enters its campaign when the earliest arm would first
        // message it, whatever its own arm (see `engine::entry`).
        if record.progress.group.is_none() {
            let input = Input {
                cart: &cart,
                progress: &record.progress,
                customer: customer.as_ref(),
                campaigns: &campaigns,
                history: &history,
                channels: &self.settings.channels,
                vouchers: &vouchers,
                now,
            };
            if let Some((campaign_id, arm)) = engine::entry(&input) {
                facts.push(measured.entered(&campaign_id, arm.group, arm.variant_name()));
                record.progress.begin(&campaign_id, arm.group, arm.variant_name());
            }
        }
        // The channels this pass may use: an SMS over its campaign's segment
        // cap takes SMS out, and the step is decided again on the rest.
        let mut channels = self.settings.channels.clone();
        // SMS short links, stored before their jobs are queued.
        let mut short_links = Vec::new();
        // Each send, hold-out or skip moves progress on; the loop ends at a wait or a stop.
        let decision = loop {
            let input = Input {
                cart: &cart,
                progress: &record.progress,
                customer: customer.as_ref(),
                campaigns: &campaigns,
                history: &history,
                channels: &channels,
                vouchers: &vouchers,
                now,
            };
            let decision = engine::decide(&input);
            timeline.push(decision_entry(&decision, now));
            // A held-out cart's voucher choice is only told (it gets none).
            if let Decision::Withhold { campaign_id, step, voucher, .. } = &decision {
                timeline.extend(issuing::voucher_entry(voucher, campaign_id, *step, None, now));
            }
            // Entered above, unless only this arm's rules let it in now.
            let entering = record.progress.group.is_none();
            match &decision {
                Decision::Skip { .. } => {
                    advance(&mut record.progress, &decision, &cart.cart_id, now);
                }
                Decision::Withhold { campaign_id, step, channel, group, variant, .. } => {
                    let status = MessageStatus::HeldOut { at: now };
                    let message = measured.message(campaign_id, *step, *channel, variant, status);
                    advance(&mut record.progress, &decision, &cart.cart_id, now);
                    // Counted like a send: the holdout meets the same caps.
                    ledger.reserve(reserved_send(&message));
                    reserved = true;
                    if entering {
                        facts.push(measured.entered(campaign_id, *group, variant.as_deref()));
                    }
                    facts.push(measured.would_send(&message, *group));
                    history.push(message.clone());
                    unsent.push(message);
                }
                Decision::Send { campaign_id, step, channel, to, template, subject, variant, voucher, .. } => {
                    let campaign = campaigns.iter().find(|c| c.id == *campaign_id);
                    // Issued before the message is composed, and kept should
                    // this pass be retried: the retry shows the same code.
                    let issue = Issue {
                        campaign,
                        campaign_id,
                        step: *step,
                        variant: variant.as_deref(),
                        cart: &cart,
                        key: &key,
                        owner: &owner,
                        now,
                    };
                    let store = self.store.as_ref();
                    let shown = issuing::voucher_to_show(store, voucher, &issue, &mut vouchers, &mut facts).await?;
                    timeline.extend(issuing::voucher_entry(voucher, campaign_id, *step, shown.as_ref(), now));
                    let shown_voucher = shown.as_ref().map(|v| issuing::shown(v, &contact, campaign));
                    let message = measured.message(campaign_id, *step, *channel, variant, MessageStatus::Queued);
                    // The same window that picks a voucher's tier makes a returner.
                    let returned_window = campaign
                        .map_or_else(|| VoucherSettings::default().returned_window, |c| c.vouchers.returned_window);
                    let reader = Reader {
                        first_name: contact.first_name.as_deref(),
                        locale: contact.locale.as_deref(),
                        step: step + 1,
                        returner: customer.as_ref().is_some_and(|c| c.returned_since(now - returned_window)),
                    };
                    let content = Content {
                        template,
                        subject: subject.as_deref(),
                        to,
                        voucher: shown_voucher.as_ref(),
                        campaign_id,
                        contact: &contact,
                    };
                    let rendered = self.render(&templates, &content, &cart, &reader, &message.message_id, now);
                    let rendered = rendered
                        .map(|(outgoing, fallback, short_link)| (finish_sms(outgoing, campaign), fallback, short_link));
                    if let Ok((Outgoing::Sms { body, .. }, _, _)) = &rendered {
                        let cap =
                            campaign.map_or_else(|| Caps::default().sms_max_segments, |c| c.caps.sms_max_segments);
                        let counted = crate::sms::segments(body);
                        if counted.segments > usize::from(cap) {
                            timeline.push(sms_too_long_entry(&message, counted, cap, now));
                            channels.retain(|c| *c != Channel::Sms);
                            continue;
                        }
                    }
                    advance(&mut record.progress, &decision, &cart.cart_id, now);
                    if entering {
                        facts.push(measured.entered(campaign_id, Group::Treated, variant.as_deref()));
                    }
                    match rendered {
                        Ok((outgoing, fallback, short_link)) => {
                            short_links.extend(short_link);
                            let fallback = store_error.clone().or(fallback);
                            if let Some(why) = fallback {
                                timeline.push(fallback_entry(&message, template, &why, now));
                            }
                            ledger.reserve(reserved_send(&message));
                            reserved = true;
                            let job = MessageJob {
                                message_id: message.message_id.clone(),
                                cart_id: cart.cart_id.clone(),
                                channel: *channel,
                                outgoing,
                                voucher: shown.map(|v| v.code),
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
                }
                Decision::Wait { .. } | Decision::Stop { .. } => break decision,
            }
        };
        // Shadow campaigns decide beside the live one, each on its own
        // progress and would-send history; nothing they decide is sent.
        let mut wake_at: Vec<DateTime<Utc>> = match &decision {
            Decision::Wait { until, .. } => vec![*until],
            _ => Vec::new(),
        };
        for shadow in campaigns.iter().filter(|c| c.is_shadow() && c.enabled) {
            let mut progress = record.shadow.remove(&shadow.id).unwrap_or_default();
            let outcome = self.run_shadow(shadow, &mut progress, &measured, &vouchers, &mut timeline, &mut facts);
            wake_at.extend(outcome);
            if progress != Progress::default() {
                record.shadow.insert(shadow.id.clone(), progress);
            }
        }
        // The reservation is the per-customer cap's atomic step: written
        // under the ledger's version before anything is queued, so a checker
        // that raced this one for another cart of the customer conflicts,
        // re-reads and decides again with these sends counted.
        if reserved {
            ledger.forget_before(now - history_window(&campaigns));
            if self.store.save_send_ledger(&ledger).await? == SaveOutcome::Conflict {
                return Ok(Attempt::Conflict);
            }
        }
        for fact in &facts {
            self.store.record_fact(fact).await?;
        }
        // One timer per cart, at the earliest wait of the live and shadow campaigns.
        record.timer_armed_for = match wake_at.into_iter().min() {
            Some(until) => {
                self.scheduler.arm(&TimerPayload { cart_id: record.cart_id.clone(), due_at: until }).await?;
                Some(until)
            }
            None => None,
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
        // A short link is stored before its SMS can be sent (and follows).
        for link in &short_links {
            self.store.save_short_link(link).await?;
        }
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

    /// Runs shadow campaign `shadow` on the cart until it waits or stops:
    /// each step it would send is recorded on its `progress`, on the
    /// timeline (`shadow_would_send`) and as a fact. Returns its wait, if any.
    fn run_shadow(
        &self,
        shadow: &Campaign,
        progress: &mut Progress,
        measured: &Measured,
        vouchers: &[Voucher],
        timeline: &mut Vec<TimelineEntry>,
        facts: &mut Vec<Fact>,
    ) -> Option<DateTime<Utc>> {
        let check = ShadowCheck {
            cart: measured.cart,
            key: measured.key,
            customer: measured.customer,
            vouchers,
            channels: &self.settings.channels,
            now: measured.now,
        };
        shadow_pass(&check, shadow, progress, &mut |decision, record, entering| {
            if entering {
                facts.push(measured.entered(&shadow.id, Group::Shadow, record.variant.as_deref()));
            }
            facts.push(measured.would_send(record, Group::Shadow));
            timeline.push(shadow_entry(decision, &shadow.id, measured.now));
        })
    }

    /// The message for `content.to`, composed from the step's template set
    /// in the reader's closest locale. When that set is missing or fails to
    /// render, the shipped default of the same name (else `reminder`) is
    /// used and the reason is returned for the timeline; the customer never
    /// sees an error. An email the shipped default cannot compose either is
    /// an error (recorded, not sent); an SMS then gets a plain line.
    fn render(
        &self,
        templates: &Templates,
        content: &Content,
        cart: &Cart,
        reader: &Reader,
        message_id: &MessageId,
        now: DateTime<Utc>,
    ) -> Result<(Outgoing, Option<String>, Option<ShortLink>), RenderError> {
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
        // An SMS carries a short link (stored by the caller); the rest a signed one.
        let short_link = matches!(content.to, Recipient::Sms(_)).then(|| {
            ShortLink::new(LinkClaims {
                message_id: message_id.clone(),
                cart_id: cart.cart_id.clone(),
                target: restore_target.clone(),
                expires: restore_expires,
            })
        });
        let restore = match &short_link {
            Some(short) => format!("{}/r/{}", settings.public_base_url, short.token),
            None => link(&restore_target, settings.restore_ttl),
        };
        // A webhook carries the cart as data; the receiving system words it.
        if let Recipient::Webhook(target) = content.to {
            let event = CartReminder {
                message_id: message_id.clone(),
                cart_id: cart.cart_id.clone(),
                customer_id: cart.customer_id.clone(),
                campaign_id: content.campaign_id.to_owned(),
                step: reader.step,
                items: cart.items.clone(),
                item_count: cart.totals().item_count,
                subtotal: crate::cart::money_text(cart.totals().subtotal),
                currency: cart.currency.clone(),
                restore_url: restore,
                restore_expires_at: now + settings.restore_ttl,
                decided_at: now,
            };
            let contact = WebhookContact {
                email: content.contact.email.clone(),
                phone: content.contact.phone.clone(),
                first_name: content.contact.first_name.clone(),
            };
            return Ok((Outgoing::Webhook { target: target.clone(), event: Box::new(event), contact }, None, None));
        }
        let item_link = |url: &str| link(url, settings.link_ttl);
        let unsubscribe_claims = UnsubscribeClaims {
            message_id: message_id.clone(),
            cart_id: cart.cart_id.clone(),
            customer_id: cart.customer_id.clone(),
            expires: (now + settings.unsubscribe_ttl).timestamp(),
        };
        let unsubscribe = Unsubscribe {
            url: format!("{}/u/{}", settings.public_base_url, sign_unsubscribe(&settings.secret, &unsubscribe_claims)),
            mailbox: settings.unsubscribe_mailto.as_deref(),
            postal_address: &settings.postal_address,
        };
        let links = Links {
            restore: restore.clone(),
            item: &item_link,
            unsubscribe: Some(unsubscribe),
            voucher: content.voucher,
        };
        let brand = templates.brand.clone().unwrap_or_else(|| Brand::fallback(&settings.postal_address));
        let compose = |set: &TemplateSet, subject: Option<&str>| -> Result<Outgoing, RenderError> {
            let composer = Composer::new(set, &brand, reader.locale)?;
            Ok(match content.to {
                Recipient::Email(to) => composer.email(subject, to, cart, reader, &links)?,
                Recipient::Sms(to) => composer.sms(to, cart, reader, &links)?,
                Recipient::Push(token) => {
                    let (title, body) = composer.push(false, cart, reader, &links)?;
                    Outgoing::Push {
                        platform: token.platform,
                        token: token.token.clone(),
                        title,
                        body,
                        url: restore.clone(),
                    }
                }
                Recipient::WebPush(subscription) => {
                    let (title, body) = composer.push(true, cart, reader, &links)?;
                    Outgoing::WebPush { subscription: subscription.clone(), title, body, url: restore.clone() }
                }
                // Returned above, before any template is read.
                Recipient::Webhook(_) => return Err(RenderError::UnknownTemplate(content.template.to_owned())),
            })
        };
        let why = match templates.set(content.template) {
            Some(set) => match compose(set, content.subject) {
                Ok(outgoing) => return Ok((outgoing, None, short_link)),
                Err(error) => format!("the {:?} template could not be rendered: {error}", content.template),
            },
            None => format!("there is no template set {:?}", content.template),
        };
        // The shipped default, without the variant's subject line: the
        // failure may be that line.
        let shipped = crate::template::shipped_set(content.template)
            .or_else(|| crate::template::shipped_set("reminder"))
            .ok_or_else(|| RenderError::UnknownTemplate(content.template.to_owned()))?;
        match (compose(&shipped, None), content.to) {
            (Ok(outgoing), _) => Ok((outgoing, Some(why), short_link)),
            (Err(_), Recipient::Sms(to)) => {
                // The plain line still shows the cart's code, if any.
                let code = content
                    .voucher
                    .map(|v| {
                        let expires = render::expiry_text(v.expires_at, v.time_zone, v.locale.as_deref());
                        format!(" Code {}: {} until {expires}.", v.code, v.terms.describe())
                    })
                    .unwrap_or_default();
                let body = format!("Your cart is waiting: {restore}{code}");
                Ok((Outgoing::Sms { to: to.clone(), body }, Some(why), short_link))
            }
            (Err(error), _) => Err(error),
        }
    }
}

/// Moves a cart's progress on for one decision of a live campaign, as the
/// checker and the backtest's replay both do: a skip is recorded as skipped
/// at its due time; a send or a hold-out as dispatched now (its message id
/// is the cart's, step's and channel's), the cart entering its group (a
/// send's: treated) and variant with the first.
pub(crate) fn advance(progress: &mut Progress, decision: &Decision, cart_id: &str, now: DateTime<Utc>) {
    let (campaign_id, step, channel, group, variant) = match decision {
        Decision::Skip { campaign_id, step, due, .. } => return progress.skip(campaign_id, *step, *due),
        Decision::Withhold { campaign_id, step, channel, group, variant, .. } => {
            (campaign_id, *step, *channel, *group, variant)
        }
        Decision::Send { campaign_id, step, channel, variant, .. } => {
            (campaign_id, *step, *channel, Group::Treated, variant)
        }
        Decision::Wait { .. } | Decision::Stop { .. } => return,
    };
    progress.record(campaign_id, step, channel, MessageRecord::id_for(cart_id, step, channel), now);
    progress.enter(group, variant.as_deref());
}

/// Whether a timer due at `due_at` firing at `now` is stale: another, later
/// timer is pending for the cart (the backtest replays timers through this too).
pub(crate) fn timer_superseded(armed: Option<DateTime<Utc>>, due_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    armed.is_some_and(|armed| armed != due_at && armed > now)
}

/// What a send decision asks to compose.
struct Content<'a> {
    template: &'a str,
    subject: Option<&'a str>,
    to: &'a Recipient,
    /// The cart's voucher, when the step shows one.
    voucher: Option<&'a ShownVoucher>,
    campaign_id: &'a str,
    /// Whose contact values a webhook target may be allowed to see.
    contact: &'a crate::event::CustomerPatch,
}

fn reserved_send(message: &MessageRecord) -> ReservedSend {
    ReservedSend {
        message_id: message.message_id.clone(),
        cart_id: message.cart_id.clone(),
        campaign_id: message.campaign_id.clone(),
        step: message.step,
        channel: message.channel,
        at: message.decided_at,
    }
}

/// The cart being checked, as the measurement facts describe it.
struct Measured<'a> {
    cart: &'a Cart,
    key: &'a CustomerKey,
    customer: Option<&'a Customer>,
    campaigns: &'a [Campaign],
    now: DateTime<Utc>,
}

impl Measured<'_> {
    /// The record of a step decided now for this cart (sent, held out or a
    /// shadow's would-send).
    fn message(
        &self,
        campaign_id: &str,
        step: u32,
        channel: Channel,
        variant: &Option<String>,
        status: MessageStatus,
    ) -> MessageRecord {
        MessageRecord::decided(&self.cart.cart_id, self.key, campaign_id, step, channel, self.now, status)
            .in_variant(variant.clone())
    }

    /// The cart entered `campaign_id`: its first step was sent, held out or
    /// (for a shadow campaign) would have been sent.
    fn entered(&self, campaign_id: &str, group: Group, variant: Option<&str>) -> Fact {
        // The same window that picks a voucher's tier labels the segment.
        let returned_window = self
            .campaigns
            .iter()
            .find(|c| c.id == campaign_id)
            .map_or_else(|| VoucherSettings::default().returned_window, |c| c.vouchers.returned_window);
        let returner = self.customer.is_some_and(|c| c.returned_since(self.now - returned_window));
        let priced = self.cart.items.iter().any(|i| i.price.is_some());
        let totals = self.cart.totals();
        Fact::new(
            self.now,
            FactKind::Entered {
                campaign_id: campaign_id.to_owned(),
                cart_id: self.cart.cart_id.clone(),
                customer_key: self.key.clone(),
                group,
                variant: variant.map(str::to_owned),
                segment: if returner { SegmentLabel::Returner } else { SegmentLabel::Other },
                value: priced.then_some(totals.subtotal),
                currency: totals.currency.filter(|_| priced),
            },
        )
    }

    /// A step a held-out cart or a shadow campaign would have sent.
    fn would_send(&self, message: &MessageRecord, group: Group) -> Fact {
        Fact::new(
            self.now,
            FactKind::Message {
                campaign_id: message.campaign_id.clone(),
                cart_id: message.cart_id.clone(),
                customer_key: self.key.clone(),
                message_id: message.message_id.clone(),
                group,
                variant: message.variant.clone(),
                step: message.step,
                channel: message.channel,
                outcome: MessageOutcome::WouldSend,
            },
        )
    }
}

/// What a shadow campaign's pass reads of the check it runs in.
pub(crate) struct ShadowCheck<'a> {
    pub cart: &'a Cart,
    pub key: &'a CustomerKey,
    pub customer: Option<&'a Customer>,
    pub vouchers: &'a [Voucher],
    pub channels: &'a [Channel],
    pub now: DateTime<Utc>,
}

/// Runs shadow campaign `shadow` on the cart until it waits or stops, each
/// step it would send recorded on its `progress` and told to
/// `would_send` (the decision, the would-send record, whether it is the
/// cart's entry). Returns its wait, if any: the cart's timer fires at the
/// earliest wait of the live and shadow campaigns. The checker and the
/// backtest's replay both run it, so a replay re-arms as live did.
pub(crate) fn shadow_pass(
    check: &ShadowCheck,
    shadow: &Campaign,
    progress: &mut Progress,
    would_send: &mut dyn FnMut(&Decision, &MessageRecord, bool),
) -> Option<DateTime<Utc>> {
    let cart = check.cart;
    progress.forget_skips_before(cart.last_activity_at);
    // Its own would-sends are its history: the live campaign's messages
    // are not its doing, and its own were never sent.
    let record = |step, channel, at, progress: &Progress| {
        let status = MessageStatus::HeldOut { at };
        MessageRecord {
            message_id: MessageRecord::shadow_id_for(&shadow.id, &cart.cart_id, step, channel),
            ..MessageRecord::decided(&cart.cart_id, check.key, &shadow.id, step, channel, at, status)
        }
        .in_variant(progress.variant.clone())
    };
    let mut history: Vec<MessageRecord> =
        progress.dispatched().map(|s| record(s.step, s.channel, s.at, progress)).collect();
    loop {
        let input = Input {
            cart,
            progress,
            customer: check.customer,
            campaigns: std::slice::from_ref(shadow),
            history: &history,
            channels: check.channels,
            vouchers: check.vouchers,
            now: check.now,
        };
        let decision = engine::decide_shadow(&input, shadow);
        match &decision {
            Decision::Skip { step, due, .. } => progress.skip(&shadow.id, *step, *due),
            Decision::Withhold { step, channel, variant, .. } | Decision::Send { step, channel, variant, .. } => {
                let entering = progress.dispatched().next().is_none();
                let id = MessageRecord::shadow_id_for(&shadow.id, &cart.cart_id, *step, *channel);
                progress.record(&shadow.id, *step, *channel, id, check.now);
                progress.enter(Group::Shadow, variant.as_deref());
                let message = record(*step, *channel, check.now, progress);
                would_send(&decision, &message, entering);
                history.push(message);
            }
            Decision::Wait { until, .. } => return Some(*until),
            Decision::Stop { .. } => return None,
        }
    }
}

/// The timeline line of a shadow campaign's would-send.
fn shadow_entry(decision: &Decision, campaign_id: &str, now: DateTime<Utc>) -> TimelineEntry {
    let (step, channel, variant) = match decision {
        Decision::Withhold { step, channel, variant, .. } | Decision::Send { step, channel, variant, .. } => {
            (Some(*step), Some(*channel), variant.clone())
        }
        _ => (None, None, None),
    };
    TimelineEntry {
        at: now,
        kind: TimelineKind::Decision,
        code: crate::reason::ReasonCode::ShadowWouldSend.as_str().into(),
        message: decision.reason().message.clone(),
        details: serde_json::json!({
            "decision": "shadow",
            "campaign_id": campaign_id,
            "step": step,
            "channel": channel,
            "variant": variant,
        }),
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

/// The timeline line of a message composed from the shipped default: the
/// sentence says which set was wanted and which was used; the cause (a
/// template error, for whoever edits the set) is in the details.
/// An SMS ends with the opt-out instruction its destination country
/// expects (the campaign's `sms_opt_out`), in GSM-7 wherever typography
/// allows (see `crate::sms::plain_typography`); other messages pass unchanged.
fn finish_sms(outgoing: Outgoing, campaign: Option<&Campaign>) -> Outgoing {
    match outgoing {
        Outgoing::Sms { to, body } => {
            let texts = campaign.map(|c| &c.sms_opt_out).cloned().unwrap_or_default();
            let body = crate::sms::plain_typography(&crate::sms::with_opt_out(&body, texts.for_number(to.expose())));
            Outgoing::Sms { to, body }
        }
        other => other,
    }
}

fn sms_too_long_entry(message: &MessageRecord, counted: Segments, cap: u8, now: DateTime<Utc>) -> TimelineEntry {
    TimelineEntry {
        at: now,
        kind: TimelineKind::Message,
        code: ReasonCode::SmsTooLong.as_str().into(),
        message: format!(
            "Step {}'s SMS needs {} {} segments ({} units), over the campaign's cap of {cap}: the step goes by the \
             next channel instead.",
            message.step + 1,
            counted.segments,
            counted.encoding.as_str(),
            counted.units
        ),
        details: serde_json::json!({
            "message_id": message.message_id,
            "segments": counted.segments,
            "encoding": counted.encoding,
            "units": counted.units,
            "cap": cap,
        }),
    }
}

fn fallback_entry(message: &MessageRecord, template: &str, why: &str, now: DateTime<Utc>) -> TimelineEntry {
    let shipped = if crate::template::SHIPPED_NAMES.contains(&template) { template } else { "reminder" };
    tracing::warn!(message_id = %message.message_id, template, shipped, error = why, "template fell back to the shipped default");
    TimelineEntry {
        at: now,
        kind: TimelineKind::Message,
        code: ReasonCode::TemplateFallback.as_str().into(),
        message: format!(
            "Step {}'s {} was composed from the shipped {shipped:?} template: the {template:?} template could not be used.",
            message.step + 1,
            message.channel.as_str()
        ),
        details: serde_json::json!({
            "message_id": message.message_id,
            "channel": message.channel,
            "template": template,
            "fallback": shipped,
            "error": why,
        }),
    }
}

/// What the engine needs besides the cart record, loaded once per check.
struct Context {
    cart: Cart,
    customer: Option<Customer>,
    key: CustomerKey,
    history: Vec<MessageRecord>,
    campaigns: Arc<Vec<Campaign>>,
    /// Whom the cart's voucher is bound to.
    owner: VoucherOwner,
    /// The cart's voucher and its owner's recent ones (empty when no
    /// campaign offers vouchers).
    vouchers: Vec<Voucher>,
}

async fn load_context<S: CustomerStore + MessageStore + VoucherStore + ?Sized>(
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
    let contact = customer.as_ref().map_or(&cart.contact, |c| &c.profile);
    let owner = issuing::owner_of(&cart, &key, contact);
    let vouchers = issuing::load_vouchers(store, &campaigns, &cart, &owner, now).await?;
    Ok(Context { cart, customer, key, history, campaigns, owner, vouchers })
}

/// What the engine would decide for this cart at `now`, without acting:
/// the "next" line of `cartback explain`.
pub async fn decide_now<S: CustomerStore + MessageStore + VoucherStore + ?Sized>(
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
        vouchers: &ctx.vouchers,
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
        Decision::Send { campaign_id, step, channel, variant, .. } => serde_json::json!({
            "decision": "send", "campaign_id": campaign_id, "step": step, "channel": channel, "variant": variant,
        }),
        Decision::Withhold { campaign_id, step, channel, group, variant, .. } => serde_json::json!({
            "decision": "withhold", "campaign_id": campaign_id, "step": step, "channel": channel,
            "group": group, "variant": variant,
        }),
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
