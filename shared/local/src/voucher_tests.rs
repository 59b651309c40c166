//! Vouchers through the checker and delivery services on the local
//! adapters: a step with an offer issues one code per cart (the same in
//! every step and on a retry), bound and expiring; the engine's reasons for
//! no voucher reach the timeline; delivery publishes the `voucher.issued`
//! webhook before the message, waiting for it or not.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cartback_core::campaign::Campaign;
use cartback_core::contact::Email;
use cartback_core::measure::{FactKind, SegmentLabel};
use cartback_core::message::{MessageJob, MessageStatus, QueueName};
use cartback_core::ports::{
    CampaignStore, CartStore, Claim, Clock, FactStore, JobQueue, MessageStore, PortError, PublishError, Sender,
    StateStore, Timeline, TimelineEntry, TimerPayload, VoucherPublisher, VoucherStore,
};
use cartback_core::service::{
    CampaignCache, Checker, Delivery, DeliveryError, DeliveryOutcome, Ingest, Settings, VoucherWebhook,
};
use cartback_core::signing::Secret;
use cartback_core::voucher::{Discount, Offer, TierName, Voucher, VoucherOwner};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::outbox::Outbox;
use crate::testing::ManualClock;
use crate::{Database, SqliteQueue, SqliteScheduler};

/// 10:00 UTC: outside the default quiet hours.
fn t0() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

/// The shipped campaign with the seed's offer on both steps (10% for
/// returners, 5% for others), holding out no one.
fn with_offers() -> Campaign {
    let mut campaign = Campaign { holdout_percent: 0, ..Campaign::default_campaign() };
    for step in &mut campaign.steps {
        step.offer = Some(Offer::default());
    }
    campaign
}

/// A queue that fails (like an outage) while `failing` is set.
struct FlakyQueue {
    inner: SqliteQueue,
    failing: AtomicBool,
}

#[async_trait]
impl JobQueue for FlakyQueue {
    async fn enqueue(&self, job: &MessageJob) -> Result<(), PortError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(PortError::Unavailable("queue", "outage".into()));
        }
        self.inner.enqueue(job).await
    }
}

/// A storefront's webhook endpoint that answers from a script (then acknowledges).
#[derive(Default)]
struct ScriptedPublisher {
    answers: Mutex<VecDeque<Result<(), PublishError>>>,
    published: Mutex<Vec<Voucher>>,
}

impl ScriptedPublisher {
    fn answering(answers: impl IntoIterator<Item = Result<(), PublishError>>) -> Arc<ScriptedPublisher> {
        Arc::new(ScriptedPublisher { answers: Mutex::new(answers.into_iter().collect()), ..Default::default() })
    }

    fn attempts(&self) -> usize {
        self.published.lock().unwrap().len()
    }
}

#[async_trait]
impl VoucherPublisher for ScriptedPublisher {
    async fn publish(&self, voucher: &Voucher) -> Result<(), PublishError> {
        self.published.lock().unwrap().push(voucher.clone());
        self.answers.lock().unwrap().pop_front().unwrap_or(Ok(()))
    }
}

struct World {
    dir: tempfile::TempDir,
    db: Database,
    clock: Arc<ManualClock>,
    queue: Arc<FlakyQueue>,
    ingest: Ingest,
    checker: Checker,
    campaigns: Arc<CampaignCache>,
}

impl World {
    async fn with(campaign: Campaign) -> World {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(t0()));
        let db = Database::open(dir.path()).unwrap().with_clock(clock.clone());
        db.put(&campaign).await.unwrap();
        let campaigns = Arc::new(CampaignCache::new(Arc::new(db.clone()), clock.clone(), Duration::zero()));
        let scheduler = Arc::new(SqliteScheduler::new(db.clone()));
        let store: Arc<dyn StateStore> = Arc::new(db.clone());
        let ingest = Ingest {
            store: store.clone(),
            scheduler: scheduler.clone(),
            campaigns: campaigns.clone(),
            clock: clock.clone(),
        };
        let queue = Arc::new(FlakyQueue { inner: SqliteQueue::new(db.clone()), failing: AtomicBool::new(false) });
        let settings = Arc::new(Settings::new(
            Secret::new(b"0123456789abcdef0123".to_vec()).unwrap(),
            "http://localhost:8080",
            "http://shop/{cart_id}?t={token}",
        ));
        let checker = Checker {
            store,
            scheduler,
            queue: queue.clone(),
            campaigns: campaigns.clone(),
            templates: std::sync::Arc::new(cartback_core::service::TemplateCache::shipped_only()),
            clock: clock.clone(),
            settings,
        };
        World { dir, db, clock, queue, ingest, checker, campaigns }
    }

    async fn send(&self, event: serde_json::Value) {
        let answer = self.ingest.ingest_body(event.to_string().as_bytes()).await.unwrap();
        assert_eq!(answer.accepted, 1, "{answer:?}");
    }

    /// Fires `cart_id`'s timer at its due time (moving the clock there).
    async fn fire(&self, cart_id: &str) {
        let due = self.db.get_cart(&cart_id.into()).await.unwrap().unwrap().timer_armed_for.expect("a timer");
        self.clock.set(due.max(self.clock.now()));
        self.checker.on_timer(&TimerPayload { cart_id: cart_id.into(), due_at: due }).await.unwrap();
    }

    /// Every job queued so far (received and left hidden).
    async fn jobs(&self) -> Vec<MessageJob> {
        let mut jobs = Vec::new();
        for queue in QueueName::ALL {
            while let Some(job) = self
                .queue
                .inner
                .receive(queue, self.clock.now() + Duration::days(365), Duration::days(1))
                .await
                .unwrap()
            {
                jobs.push(job.job);
            }
        }
        jobs
    }

    async fn timeline(&self, cart_id: &str) -> Vec<TimelineEntry> {
        self.db.timeline(&cart_id.into()).await.unwrap()
    }

    fn delivery(&self, webhook: Option<VoucherWebhook>) -> Delivery {
        let outbox = Outbox::new(self.dir.path()).unwrap();
        Delivery {
            store: Arc::new(self.db.clone()),
            sender: Arc::new(outbox.sender("Shop <shop@example.com>")),
            campaigns: self.campaigns.clone(),
            clock: self.clock.clone(),
            webhook,
        }
    }
}

fn add_to_cart(cart_id: &str, at: DateTime<Utc>, customer_id: Option<&str>) -> serde_json::Value {
    json!({
        "event_id": format!("atc-{cart_id}"), "type": "add_to_cart", "cart_id": cart_id, "customer_id": customer_id,
        "device": "desktop", "currency": "USD", "occurred_at": at.to_rfc3339(),
        "customer": {"email": "ana@example.com", "consents": {"email": true}},
        "items": [{"item_id": "sku-mug", "price": "40.00", "quantity": 1}]
    })
}

fn voucher_lines(timeline: &[TimelineEntry]) -> Vec<&TimelineEntry> {
    timeline.iter().filter(|e| e.details.get("voucher").is_some()).collect()
}

#[tokio::test]
async fn given_a_non_returner_when_both_steps_go_out_then_one_5_percent_code_is_issued_and_shown_in_both() {
    let w = World::with(with_offers()).await;
    w.send(add_to_cart("cart-1", t0(), Some("u1"))).await;

    // WHEN step 1 and, a day later, step 2 fall due.
    w.fire("cart-1").await;
    let first_sent_at = w.clock.now();
    w.fire("cart-1").await;

    // THEN both messages carry the same code, the cart's only voucher.
    let jobs = w.jobs().await;
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let code = jobs[0].voucher.clone().expect("step 1 shows a voucher");
    assert_eq!(jobs[1].voucher.as_ref(), Some(&code), "step 2 shows the same code");
    assert!(code.as_str().starts_with("CB-"), "the campaign's prefix");
    let voucher = w.db.cart_voucher(&"cart-1".into()).await.unwrap().expect("issued");
    assert_eq!(voucher.code, code);
    assert_eq!(voucher.terms.tier, TierName::Standard);
    assert_eq!(voucher.terms.discount, Discount::PercentOff { percent: 5.into(), max_amount: None });
    assert_eq!(voucher.terms.currency, "USD");
    assert_eq!(voucher.owner, VoucherOwner::customer(&"u1".into()), "bound to the customer");
    assert_eq!((voucher.step, voucher.issued_at), (0, first_sent_at));
    assert_eq!(voucher.expires_at, first_sent_at + Duration::days(7), "7 days after the first message");
    // One issue, one fact; the timeline says so per step without the code.
    let facts = w.db.facts(t0().date_naive(), (t0() + Duration::days(3)).date_naive()).await.unwrap();
    let issued: Vec<_> = facts.iter().filter(|f| matches!(f.kind, FactKind::VoucherIssued { .. })).collect();
    assert_eq!(issued.len(), 1, "{issued:?}");
    let timeline = w.timeline("cart-1").await;
    let lines = voucher_lines(&timeline);
    let outcomes: Vec<&str> = lines.iter().map(|e| e.details["voucher"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["issue", "reuse"]);
    assert!(lines.iter().all(|e| e.code == "voucher_offered"));
    let tail = code.as_str().rsplit('-').next().unwrap();
    assert_eq!(lines[0].details["code"], format!("…{tail}"));
    let text = serde_json::to_string(&timeline).unwrap();
    assert!(!text.contains(code.as_str()), "the full code is never on the timeline");
}

#[tokio::test]
async fn given_a_returner_when_step_one_goes_out_then_the_code_is_the_10_percent_recovery_tier() {
    let w = World::with(with_offers()).await;
    w.send(json!({
        "event_id": "ret-1", "type": "return", "occurred_at": (t0() - Duration::days(20)).to_rfc3339(),
        "cart_id": "old-cart", "customer_id": "u1", "items": [{"item_id": "sku-mug"}]
    }))
    .await;
    w.send(add_to_cart("cart-1", t0(), Some("u1"))).await;

    w.fire("cart-1").await;

    let voucher = w.db.cart_voucher(&"cart-1".into()).await.unwrap().expect("issued");
    assert_eq!(voucher.terms.tier, TierName::Recovery);
    assert_eq!(voucher.terms.discount, Discount::PercentOff { percent: 10.into(), max_amount: None });
}

#[tokio::test]
async fn given_step_one_whose_job_was_lost_after_issuing_when_the_timer_retries_then_the_same_code_is_shown() {
    let w = World::with(with_offers()).await;
    w.send(add_to_cart("cart-1", t0(), None)).await;
    // GIVEN the first pass issues the voucher and then fails to queue the job.
    w.queue.failing.store(true, Ordering::SeqCst);
    let due = w.db.get_cart(&"cart-1".into()).await.unwrap().unwrap().timer_armed_for.unwrap();
    w.clock.set(due);
    let timer = TimerPayload { cart_id: "cart-1".into(), due_at: due };
    assert!(w.checker.on_timer(&timer).await.is_err());
    w.queue.failing.store(false, Ordering::SeqCst);
    let issued = w.db.cart_voucher(&"cart-1".into()).await.unwrap().expect("issued before the outage");

    // WHEN the timer is retried.
    w.clock.advance(Duration::minutes(5));
    w.checker.on_timer(&timer).await.unwrap();

    // THEN the repaired step shows the code issued the first time.
    let jobs = w.jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].voucher.as_ref(), Some(&issued.code));
    assert_eq!(w.db.list_vouchers(10).await.unwrap().len(), 1, "no second voucher");
    assert_eq!(issued.owner, VoucherOwner::guest_email(&Email::parse("ana@example.com").unwrap()), "a guest's address");
}

#[tokio::test]
async fn given_a_customer_who_redeemed_a_promotion_10_days_ago_when_step_one_goes_out_then_no_code_and_the_reason() {
    let w = World::with(with_offers()).await;
    w.send(json!({
        "event_id": "buy-0", "type": "purchase", "occurred_at": (t0() - Duration::days(10)).to_rfc3339(),
        "cart_id": "old-cart", "customer_id": "u1", "order_id": "o-0", "value": "30", "currency": "USD",
        "coupon": "SUMMER20"
    }))
    .await;
    w.send(add_to_cart("cart-1", t0(), Some("u1"))).await;

    w.fire("cart-1").await;

    let jobs = w.jobs().await;
    assert_eq!(jobs.len(), 1, "the message still goes out");
    assert_eq!(jobs[0].voucher, None);
    assert_eq!(w.db.cart_voucher(&"cart-1".into()).await.unwrap(), None);
    let timeline = w.timeline("cart-1").await;
    let lines = voucher_lines(&timeline);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].code, "recent_promotion");
    assert_eq!(lines[0].details["voucher"], "withheld");
}

#[tokio::test]
async fn given_a_voucher_for_another_cart_this_month_when_a_second_cart_is_abandoned_then_it_gets_none() {
    let w = World::with(with_offers()).await;
    w.send(add_to_cart("cart-a", t0(), Some("u1"))).await;
    w.fire("cart-a").await;
    assert!(w.db.cart_voucher(&"cart-a".into()).await.unwrap().is_some());

    // WHEN the customer abandons another cart ten days later (after the
    // campaign's 7-day entry cooldown, within the 30-day voucher cap).
    w.clock.advance(Duration::days(10));
    w.send(add_to_cart("cart-b", w.clock.now(), Some("u1"))).await;
    w.fire("cart-b").await;

    // THEN its message goes out without a voucher, with the cap as reason.
    assert!(w.jobs().await.iter().any(|j| j.cart_id.as_str() == "cart-b" && j.voucher.is_none()));
    assert_eq!(w.db.cart_voucher(&"cart-b".into()).await.unwrap(), None);
    let timeline = w.timeline("cart-b").await;
    let lines = voucher_lines(&timeline);
    assert_eq!(lines.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(), ["voucher_cap"]);
}

// ---------------------------------------------------------------- delivery and the webhook

/// GIVEN-part of the delivery tests: step 1 decided with a new voucher; its job.
async fn step_one_with_a_voucher(w: &World) -> MessageJob {
    w.send(add_to_cart("cart-1", t0(), Some("u1"))).await;
    w.fire("cart-1").await;
    let mut jobs = w.jobs().await;
    assert_eq!(jobs.len(), 1);
    let job = jobs.remove(0);
    assert!(job.voucher.is_some());
    job
}

async fn published_at(w: &World) -> Option<DateTime<Utc>> {
    w.db.cart_voucher(&"cart-1".into()).await.unwrap().unwrap().published_at
}

fn message_codes(timeline: &[TimelineEntry]) -> Vec<&str> {
    timeline.iter().filter(|e| e.kind == "message").map(|e| e.code.as_str()).collect()
}

#[tokio::test]
async fn given_an_acknowledging_storefront_when_the_job_is_delivered_then_the_voucher_is_published_before_the_send() {
    let w = World::with(with_offers()).await;
    let job = step_one_with_a_voucher(&w).await;
    let publisher = ScriptedPublisher::answering([Ok(())]);
    let delivery = w.delivery(Some(VoucherWebhook { publisher: publisher.clone(), wait: true }));

    let outcome = delivery.deliver(&job).await.unwrap();

    assert!(matches!(outcome, DeliveryOutcome::Sent { .. }), "{outcome:?}");
    assert_eq!(publisher.attempts(), 1);
    assert_eq!(publisher.published.lock().unwrap()[0].code, *job.voucher.as_ref().unwrap());
    assert_eq!(published_at(&w).await, Some(w.clock.now()));
    assert_eq!(message_codes(&w.timeline("cart-1").await), ["voucher_published", "sent"]);
    // A later step showing the same code does not publish it again.
    assert!(delivery.deliver(&job).await.is_ok());
    assert_eq!(publisher.attempts(), 1);
}

#[tokio::test]
async fn given_wait_and_a_failing_storefront_when_the_job_is_delivered_then_the_message_waits_until_it_acknowledges() {
    let w = World::with(with_offers()).await;
    let job = step_one_with_a_voucher(&w).await;
    let publisher = ScriptedPublisher::answering([Err(PublishError::Retryable("HTTP 503".into()))]);
    let delivery = w.delivery(Some(VoucherWebhook { publisher: publisher.clone(), wait: true }));

    // WHEN the first attempt meets a 503.
    let error = delivery.deliver(&job).await.expect_err("the message waits");

    // THEN nothing is sent, the claim is handed back and the job retried.
    assert!(matches!(error, DeliveryError::Retry(_)), "{error}");
    let record = w.db.get_message(&job.message_id).await.unwrap().unwrap();
    assert_eq!(record.status, cartback_core::message::MessageStatus::Queued);
    assert_eq!(published_at(&w).await, None);
    // AND the retry publishes, then sends.
    w.clock.advance(Duration::minutes(1));
    assert!(matches!(delivery.deliver(&job).await.unwrap(), DeliveryOutcome::Sent { .. }));
    assert_eq!(publisher.attempts(), 2);
    assert!(published_at(&w).await.is_some());
    let timeline = w.timeline("cart-1").await;
    assert_eq!(message_codes(&timeline), ["voucher_webhook_failed", "voucher_published", "sent"]);
    assert!(timeline[timeline.len() - 3].message.contains("waits"), "{}", timeline[timeline.len() - 3].message);
}

#[tokio::test]
async fn given_no_wait_and_a_failing_storefront_when_delivered_then_the_message_goes_and_the_webhook_is_retried() {
    let w = World::with(with_offers()).await;
    let job = step_one_with_a_voucher(&w).await;
    let publisher = ScriptedPublisher::answering([
        Err(PublishError::Retryable("connection refused".into())),
        Err(PublishError::Retryable("HTTP 502".into())),
    ]);
    let delivery = w.delivery(Some(VoucherWebhook { publisher: publisher.clone(), wait: false }));

    // WHEN the first attempt cannot reach the storefront.
    let error = delivery.deliver(&job).await.expect_err("the job comes back for the webhook");

    // THEN the message went out, and the job is retried for the webhook only.
    assert!(matches!(error, DeliveryError::Retry(_)), "{error}");
    let record = w.db.get_message(&job.message_id).await.unwrap().unwrap();
    assert!(matches!(record.status, cartback_core::message::MessageStatus::Sent { .. }), "{:?}", record.status);
    // A redelivery that fails again comes back again; one that is acknowledged ends it.
    assert!(matches!(delivery.deliver(&job).await, Err(DeliveryError::Retry(_))));
    assert_eq!(published_at(&w).await, None);
    assert_eq!(delivery.deliver(&job).await.unwrap(), DeliveryOutcome::Skipped("already sent".into()));
    assert_eq!(publisher.attempts(), 3);
    assert!(published_at(&w).await.is_some());
    let codes = message_codes(&w.timeline("cart-1").await).join(",");
    assert_eq!(codes, "voucher_webhook_failed,sent,voucher_webhook_failed,voucher_published", "one send only");
}

#[tokio::test]
async fn given_a_storefront_that_refuses_the_webhook_when_delivered_then_the_refusal_is_noted_and_retried() {
    let w = World::with(with_offers()).await;
    let job = step_one_with_a_voucher(&w).await;
    let publisher = ScriptedPublisher::answering([Err(PublishError::Refused("HTTP 401".into()))]);
    let delivery = w.delivery(Some(VoucherWebhook { publisher: publisher.clone(), wait: true }));

    assert!(matches!(delivery.deliver(&job).await, Err(DeliveryError::Retry(_))));

    let timeline = w.timeline("cart-1").await;
    let refused = timeline.iter().find(|e| e.code == "voucher_webhook_refused").expect("the refusal is noted");
    assert!(refused.message.contains("HTTP 401"), "{}", refused.message);
    assert!(!refused.message.contains(job.voucher.as_ref().unwrap().as_str()), "never the full code");
    assert_eq!(published_at(&w).await, None);
}

#[tokio::test]
async fn given_the_webhook_off_when_a_job_with_a_voucher_is_delivered_then_it_is_sent_and_nothing_published() {
    let w = World::with(with_offers()).await;
    let job = step_one_with_a_voucher(&w).await;

    assert!(matches!(w.delivery(None).deliver(&job).await.unwrap(), DeliveryOutcome::Sent { .. }));
    assert_eq!(published_at(&w).await, None);
}

#[tokio::test]
async fn given_a_voucher_revoked_before_the_send_when_delivered_then_it_is_not_announced() {
    let w = World::with(with_offers()).await;
    let job = step_one_with_a_voucher(&w).await;
    w.db.revoke_voucher(job.voucher.as_ref().unwrap(), w.clock.now()).await.unwrap().expect("revoked");
    let publisher = ScriptedPublisher::answering([]);
    let delivery = w.delivery(Some(VoucherWebhook { publisher: publisher.clone(), wait: true }));

    assert!(matches!(delivery.deliver(&job).await.unwrap(), DeliveryOutcome::Sent { .. }));
    assert_eq!(publisher.attempts(), 0, "a revoked code is not announced to the storefront");
}

#[tokio::test]
async fn given_a_shorter_returned_window_when_a_customer_returned_before_it_then_the_segment_and_tier_are_not_returner()
{
    let mut campaign = with_offers();
    campaign.vouchers.returned_window = Duration::days(10);
    let w = World::with(campaign).await;
    w.send(json!({
        "event_id": "ret-1", "type": "return", "occurred_at": (t0() - Duration::days(20)).to_rfc3339(),
        "cart_id": "old-cart", "customer_id": "u1", "items": [{"item_id": "sku-mug"}]
    }))
    .await;
    w.send(add_to_cart("cart-1", t0(), Some("u1"))).await;

    w.fire("cart-1").await;

    // The report's segment follows the campaign's window, as the tier does.
    let facts = w.db.facts(t0().date_naive(), (t0() + Duration::days(1)).date_naive()).await.unwrap();
    let segments: Vec<SegmentLabel> = facts
        .iter()
        .filter_map(|f| match &f.kind {
            FactKind::Entered { segment, .. } => Some(*segment),
            _ => None,
        })
        .collect();
    assert_eq!(segments, [SegmentLabel::Other]);
    let voucher = w.db.cart_voucher(&"cart-1".into()).await.unwrap().expect("issued");
    assert_eq!(voucher.terms.tier, TierName::Standard);
}

#[tokio::test]
async fn given_a_sender_that_died_right_after_sending_when_its_claim_is_taken_over_then_the_voucher_is_announced() {
    let w = World::with(with_offers()).await;
    let job = step_one_with_a_voucher(&w).await;
    // GIVEN a first sender (webhook off) claimed the message, sent it and died before recording.
    let now = w.clock.now();
    let held = match w.db.claim_message(&job.message_id, now, now + Duration::minutes(5)).await.unwrap() {
        Claim::Claimed(record) => record.status,
        other => panic!("{other:?}"),
    };
    let MessageStatus::Sending { lease_until, attempts, .. } = held else { panic!("{held:?}") };
    let calling = MessageStatus::Sending { lease_until, attempts, provider_called: true };
    w.db.settle_message(&job.message_id, &held, &calling).await.unwrap();
    Outbox::new(w.dir.path()).unwrap().sender("Shop <shop@example.com>").send(&job, now).await.unwrap();
    w.clock.advance(Duration::minutes(6));

    // WHEN the next sender, with the webhook on, takes the claim over.
    let publisher = ScriptedPublisher::answering([Ok(())]);
    let delivery = w.delivery(Some(VoucherWebhook { publisher: publisher.clone(), wait: false }));
    let outcome = delivery.deliver(&job).await.unwrap();

    // THEN it finds the message sent, sends nothing again, and announces the voucher.
    assert!(matches!(outcome, DeliveryOutcome::Sent { .. }), "{outcome:?}");
    assert_eq!(publisher.attempts(), 1);
    assert!(published_at(&w).await.is_some());
}
