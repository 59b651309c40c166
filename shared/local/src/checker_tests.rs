//! The checker service on the local adapters, in the situations an unlucky
//! world produces: a queue that fails after the progress was saved (the
//! lost job must be repaired on the timer's retry, under the same rules as a
//! fresh decision), and a backfill of events from long ago (old events
//! update state, but no step goes out later than `max_send_delay`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use cartback_core::campaign::Campaign;
use cartback_core::engine::Decision;
use cartback_core::message::{Channel, MessageJob, QueueName};
use cartback_core::ports::{
    CampaignStore, CartStore, Clock, JobQueue, MessageStore, PortError, StateStore, Timeline, TimerPayload,
};
use cartback_core::reason::ReasonCode;
use cartback_core::service::{CampaignCache, CheckOutcome, Checker, Ingest, Settings};
use cartback_core::signing::Secret;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::testing::ManualClock;
use crate::{Database, SqliteQueue, SqliteScheduler};

/// 10:00 UTC: outside the default quiet hours (21:00-08:00 UTC).
fn t0() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
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

struct World {
    _dir: tempfile::TempDir,
    db: Database,
    clock: Arc<ManualClock>,
    queue: Arc<FlakyQueue>,
    ingest: Ingest,
    checker: Checker,
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
        let checker = Checker { store, scheduler, queue: queue.clone(), campaigns, clock: clock.clone(), settings };
        World { _dir: dir, db, clock, queue, ingest, checker }
    }

    async fn send(&self, event: serde_json::Value) {
        let answer = self.ingest.ingest_body(event.to_string().as_bytes()).await.unwrap();
        assert_eq!(answer.accepted, 1, "{answer:?}");
    }

    async fn armed(&self) -> DateTime<Utc> {
        self.db.get_cart(&"cart-1".into()).await.unwrap().unwrap().timer_armed_for.expect("a timer is armed")
    }

    /// Every job put on any queue so far (received and left hidden).
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

    async fn decision_codes(&self) -> Vec<String> {
        let timeline = self.db.timeline(&"cart-1".into()).await.unwrap();
        timeline.into_iter().filter(|e| e.kind == "decision").map(|e| e.code).collect()
    }

    /// GIVEN-part shared by the lost-job tests: the cart's first step is due
    /// and decided, its progress saved with step 2 armed a day later, and
    /// the queue fails before the job is on it.
    async fn step_one_lost(&self) -> TimerPayload {
        let due = self.armed().await;
        self.clock.set(due);
        let timer = TimerPayload { cart_id: "cart-1".into(), due_at: due };
        self.queue.failing.store(true, Ordering::SeqCst);
        assert!(self.checker.on_timer(&timer).await.is_err(), "the queue outage fails the check");
        self.queue.failing.store(false, Ordering::SeqCst);
        let saved = self.db.get_cart(&"cart-1".into()).await.unwrap().unwrap();
        assert_eq!(saved.progress.steps.len(), 1, "step 1 was recorded as dispatched");
        assert!(self.armed().await >= due + Duration::hours(24), "the pass ended with a 24 h wait");
        assert!(self.db.get_message(&saved.progress.steps[0].message_id).await.unwrap().is_none());
        assert!(self.jobs().await.is_empty());
        timer
    }
}

fn add_to_cart(event_id: &str, occurred_at: DateTime<Utc>, customer: serde_json::Value) -> serde_json::Value {
    json!({
        "event_id": event_id, "type": "add_to_cart", "cart_id": "cart-1", "device": "desktop", "currency": "EUR",
        "occurred_at": occurred_at.to_rfc3339(), "customer": customer,
        "items": [{"item_id": "sku-mug", "price": "14.90", "quantity": 1}]
    })
}

/// Step 1 by email (or SMS), step 2 a day later: the shipped campaign.
fn shipped() -> Campaign {
    Campaign::default_campaign()
}

#[tokio::test]
async fn given_a_lost_step_one_and_a_24h_wait_when_the_timer_retries_then_step_one_goes_now_and_step_two_a_day_after_it(
) {
    let w = World::with(shipped()).await;
    w.send(add_to_cart("e1", t0(), json!({"email": "ana@example.com", "consents": {"email": true}}))).await;
    let timer = w.step_one_lost().await;

    // WHEN the same timer is retried a few minutes later.
    w.clock.advance(Duration::minutes(5));
    let outcome = w.checker.on_timer(&timer).await.unwrap();

    // THEN step 1 is queued now, alone, and step 2 waits a day after it.
    let jobs = w.jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].channel, Channel::Email);
    let record = w.db.get_message(&jobs[0].message_id).await.unwrap().expect("its record is written");
    assert_eq!(record.step, 0);
    match outcome {
        CheckOutcome::Decided { decision: Decision::Wait { until, reason }, sent } => {
            assert_eq!(sent, [jobs[0].message_id.clone()]);
            assert_eq!(reason.code, ReasonCode::WaitingForNextStep);
            assert!(until >= w.clock.now() + Duration::hours(24), "step 2 counts from step 1's real send");
        }
        other => panic!("expected step 1 sent and a wait for step 2, got {other:?}"),
    }
}

#[tokio::test]
async fn given_a_lost_step_one_and_consent_withdrawn_since_when_the_timer_retries_then_nothing_is_queued() {
    let w = World::with(shipped()).await;
    let mut event = add_to_cart("e1", t0(), json!({"email": "ana@example.com", "consents": {"email": true}}));
    event["customer_id"] = json!("u1");
    w.send(event).await;
    let timer = w.step_one_lost().await;
    // GIVEN the customer withdrew email consent after the lost decision.
    w.clock.advance(Duration::minutes(2));
    w.send(json!({
        "event_id": "e2", "type": "identify", "customer_id": "u1",
        "customer": {"consents": {"email": false}}
    }))
    .await;

    // WHEN the timer is retried.
    w.clock.advance(Duration::minutes(3));
    w.checker.on_timer(&timer).await.unwrap();

    // THEN the repaired step obeys consent like a fresh one: nothing goes out.
    assert!(w.jobs().await.is_empty(), "a repaired job must not bypass consent");
    let timeline = w.db.timeline(&"cart-1".into()).await.unwrap();
    let last = timeline.iter().rev().find(|e| e.kind == "decision").expect("a decision");
    assert!(last.message.contains("email: no consent"), "{}", last.message);
}

#[tokio::test]
async fn given_a_lost_sms_step_when_the_timer_retries_inside_quiet_hours_then_it_is_deferred_to_their_end() {
    let mut campaign = shipped();
    let channels = &mut campaign.steps[0].channels;
    channels.mobile = vec![Channel::Sms];
    channels.desktop = vec![Channel::Sms];
    let w = World::with(campaign).await;
    // Step 1 falls due at 20:55 UTC, five minutes before the quiet hours.
    let activity = t0() + Duration::hours(10) + Duration::minutes(25);
    w.clock.set(activity);
    w.send(add_to_cart("e1", activity, json!({"phone": "+33612345678", "timezone": "UTC", "consents": {"sms": true}})))
        .await;
    let due = w.armed().await;
    assert_eq!(due, activity + Duration::minutes(30));
    let timer = w.step_one_lost().await;

    // WHEN the timer is retried at 21:01 UTC, inside the quiet hours.
    w.clock.set(due + Duration::minutes(6));
    w.checker.on_timer(&timer).await.unwrap();

    // THEN nothing is queued now; the cart waits for 08:00 and then sends.
    assert!(w.jobs().await.is_empty(), "a repaired SMS must not bypass quiet hours");
    assert_eq!(w.decision_codes().await.last().map(String::as_str), Some(ReasonCode::QuietHoursDeferred.as_str()));
    let morning: DateTime<Utc> = "2026-11-24T08:00:00Z".parse().unwrap();
    assert_eq!(w.armed().await, morning);
    w.clock.set(morning);
    w.checker.on_timer(&TimerPayload { cart_id: "cart-1".into(), due_at: morning }).await.unwrap();
    let jobs = w.jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].channel, Channel::Sms);
}

#[tokio::test]
async fn given_a_30_day_old_add_to_cart_backfilled_when_its_timer_fires_then_nothing_is_sent_and_the_skips_are_explained(
) {
    let w = World::with(shipped()).await;
    // GIVEN an add_to_cart that happened 30 days ago, received now.
    w.send(add_to_cart(
        "e1",
        t0() - Duration::days(30),
        json!({"email": "ana@example.com", "consents": {"email": true}}),
    ))
    .await;
    let cart = w.db.get_cart(&"cart-1".into()).await.unwrap().unwrap();
    assert_eq!(cart.cart().items.len(), 1, "the old event updates the cart");

    // WHEN its timer fires (at once: the first step is long overdue).
    let due = w.armed().await;
    w.clock.set(due.max(t0()));
    let outcome = w.checker.on_timer(&TimerPayload { cart_id: "cart-1".into(), due_at: due }).await.unwrap();

    // THEN no step is sent; both are skipped with their reason, and the sequence ends.
    assert!(w.jobs().await.is_empty(), "a 30-day-old cart must not be messaged now");
    let CheckOutcome::Decided { decision, sent } = outcome else { panic!("expected a decision, got {outcome:?}") };
    assert!(sent.is_empty());
    assert_eq!(decision.reason().code, ReasonCode::SequenceCompleted, "{decision:?}");
    let timeline = w.db.timeline(&"cart-1".into()).await.unwrap();
    let skips: Vec<_> = timeline.iter().filter(|e| e.code == "step_too_late").collect();
    assert_eq!(skips.len(), 2, "{timeline:?}");
    assert!(skips[0].message.contains("Step 1") && skips[0].message.contains("2 days"), "{}", skips[0].message);
}

#[tokio::test]
async fn given_a_step_dispatched_months_ago_whose_record_is_gone_when_the_customer_comes_back_then_it_is_not_sent_again(
) {
    // GIVEN step 1 dispatched and its message record missing (as when it has
    // expired: retention runs from a record's last write, a cart's from its
    // last edit), and the customer back at the same cart 100 days later.
    let w = World::with(shipped()).await;
    w.send(add_to_cart("e1", t0(), json!({"email": "ana@example.com", "consents": {"email": true}}))).await;
    w.step_one_lost().await;
    let step_one = w.db.get_cart(&"cart-1".into()).await.unwrap().unwrap().progress.steps[0].message_id.clone();
    w.clock.advance(Duration::days(100));
    w.send(add_to_cart("e2", w.clock.now(), json!({"email": "ana@example.com", "consents": {"email": true}}))).await;

    // WHEN the cart's timer fires
    let due = w.armed().await;
    w.clock.set(due.max(w.clock.now()));
    w.checker.on_timer(&TimerPayload { cart_id: "cart-1".into(), due_at: due }).await.unwrap();

    // THEN step 1 is history, not a lost job: it is not decided again.
    let jobs = w.jobs().await;
    assert!(jobs.iter().all(|j| j.message_id != step_one), "step 1 sent again: {jobs:?}");
    assert!(w.db.get_message(&step_one).await.unwrap().is_none());
}
