//! The checker service on the local adapters, in the situations an unlucky
//! world produces: a queue that fails after the progress was saved (the
//! lost job must be repaired on the timer's retry, under the same rules as a
//! fresh decision), and a backfill of events from long ago (old events
//! update state, but no step goes out later than `max_send_delay`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use cartback_core::campaign::Campaign;
use cartback_core::campaign::CampaignMode;
use cartback_core::engine::Decision;
use cartback_core::ids::CustomerKey;
use cartback_core::measure::{assign_group, FactKind, Group, MessageOutcome, SegmentLabel};
use cartback_core::message::{Channel, MessageJob, QueueName};
use cartback_core::message::{MessageRecord, MessageStatus};
use cartback_core::ports::{
    CampaignStore, CartStore, Clock, FactStore, JobQueue, MessageStore, PortError, SendLedgerStore, StateStore,
    Timeline, TimerPayload,
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
        World::with_all(vec![campaign]).await
    }

    async fn with_all(campaigns: Vec<Campaign>) -> World {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(t0()));
        let db = Database::open(dir.path()).unwrap().with_clock(clock.clone());
        for campaign in &campaigns {
            db.put(campaign).await.unwrap();
        }
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
        let templates = Arc::new(cartback_core::service::TemplateCache::shipped_only());
        let checker =
            Checker { store, scheduler, queue: queue.clone(), campaigns, templates, clock: clock.clone(), settings };
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

/// Step 1 by email (or SMS), step 2 a day later: the shipped campaign,
/// holding out no one (the holdout has its own tests below).
fn shipped() -> Campaign {
    Campaign { holdout_percent: 0, ..Campaign::default_campaign() }
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

// ------------------------------------------------------- holdout and shadow campaigns

/// The first customer id `u0`, `u1`, ... that `campaign` holds out.
fn held_out_customer(campaign: &Campaign) -> String {
    (0..10_000)
        .map(|i| format!("u{i}"))
        .find(|id| {
            let key = CustomerKey::Customer(id.as_str().into());
            assign_group(&campaign.id, campaign.holdout_percent, &key) == Group::HeldOut
        })
        .expect("some customer is held out")
}

async fn fire(w: &World) -> CheckOutcome {
    let due = w.armed().await;
    w.clock.set(due);
    w.checker.on_timer(&TimerPayload { cart_id: "cart-1".into(), due_at: due }).await.unwrap()
}

#[tokio::test]
async fn given_a_held_out_customer_when_each_step_falls_due_then_it_is_recorded_as_held_out_and_nothing_is_queued() {
    // GIVEN a campaign holding out half its customers, and a customer it holds out.
    let campaign = Campaign { holdout_percent: 50, ..Campaign::default_campaign() };
    let customer = held_out_customer(&campaign);
    let w = World::with(campaign).await;
    let mut event = add_to_cart("e1", t0(), json!({"email": "ana@example.com", "consents": {"email": true}}));
    event["customer_id"] = json!(customer);
    w.send(event).await;

    // WHEN step 1 falls due.
    let outcome = fire(&w).await;

    // THEN nothing is queued; the step is recorded like a sent one, with its reason on the timeline.
    assert!(w.jobs().await.is_empty(), "a held-out customer gets nothing");
    let CheckOutcome::Decided { decision: Decision::Wait { until, .. }, sent } = outcome else {
        panic!("expected a wait for step 2, got {outcome:?}")
    };
    assert!(sent.is_empty());
    assert_eq!(until, t0() + Duration::minutes(30) + Duration::hours(24), "step 2 counts from the held-out step");
    let cart = w.db.get_cart(&"cart-1".into()).await.unwrap().unwrap();
    assert_eq!(cart.progress.group, Some(Group::HeldOut));
    let step_one = cart.progress.steps[0].message_id.clone();
    let record = w.db.get_message(&step_one).await.unwrap().expect("a record of the held-out step");
    assert_eq!(record.status, MessageStatus::HeldOut { at: t0() + Duration::minutes(30) });
    let key = CustomerKey::Customer(customer.as_str().into());
    let ledger = w.db.send_ledger(&key).await.unwrap();
    assert_eq!(ledger.sends.len(), 1, "caps count it: {ledger:?}");
    let timeline = w.db.timeline(&"cart-1".into()).await.unwrap();
    let line = timeline.iter().find(|e| e.code == "held_out").expect("a held_out line");
    assert_eq!((line.details["step"].clone(), line.details["channel"].clone()), (json!(0), json!("email")));
    assert!(line.message.contains("step 1 of campaign \"default\" would go by email"), "{}", line.message);

    // AND the facts say the cart entered held out, with what it would have been sent.
    let day = t0().date_naive();
    let facts = w.db.facts(day, day).await.unwrap();
    let entered = facts.iter().find_map(|f| match &f.kind {
        FactKind::Entered { group, segment, value, currency, .. } => Some((*group, *segment, *value, currency.clone())),
        _ => None,
    });
    let price = Some("14.90".parse().unwrap());
    assert_eq!(entered, Some((Group::HeldOut, SegmentLabel::Other, price, Some("EUR".into()))), "{facts:?}");
    let would: Vec<_> = facts
        .iter()
        .filter(|f| {
            matches!(f.kind, FactKind::Message { outcome: MessageOutcome::WouldSend, group: Group::HeldOut, .. })
        })
        .collect();
    assert_eq!(would.len(), 1, "{facts:?}");

    // WHEN step 2 falls due, THEN it is held out too.
    fire(&w).await;
    assert!(w.jobs().await.is_empty());
    assert_eq!(w.db.timeline(&"cart-1".into()).await.unwrap().iter().filter(|e| e.code == "held_out").count(), 2);
}

#[tokio::test]
async fn given_a_held_out_step_on_one_cart_when_another_cart_of_the_customer_is_abandoned_then_the_cooldown_applies() {
    let campaign = Campaign { holdout_percent: 50, ..Campaign::default_campaign() };
    let customer = held_out_customer(&campaign);
    let w = World::with(campaign).await;
    let contact = json!({"email": "ana@example.com", "consents": {"email": true}});
    let mut event = add_to_cart("e1", t0(), contact.clone());
    event["customer_id"] = json!(customer);
    w.send(event).await;
    fire(&w).await;
    // GIVEN a second cart of the same customer, abandoned an hour later.
    let mut other = add_to_cart("e2", t0() + Duration::hours(1), contact);
    other["customer_id"] = json!(customer);
    other["cart_id"] = json!("cart-2");
    w.clock.set(t0() + Duration::hours(1));
    w.send(other).await;
    // WHEN its timer fires.
    let due = t0() + Duration::hours(1) + Duration::minutes(30);
    w.clock.set(due);
    let outcome = w.checker.on_timer(&TimerPayload { cart_id: "cart-2".into(), due_at: due }).await.unwrap();
    // THEN the held-out step counts like a sent one: no entry within the cooldown.
    let CheckOutcome::Decided { decision, .. } = outcome else { panic!("expected a decision, got {outcome:?}") };
    assert_eq!(decision.reason().code, ReasonCode::EntryCooldown, "{decision:?}");
}

/// A draft run in shadow mode beside the shipped campaign: email after 10 minutes, one step.
fn draft() -> Campaign {
    let mut c = shipped();
    c.id = "draft".into();
    c.mode = CampaignMode::Shadow;
    c.steps.truncate(1);
    c.steps[0].delay = Duration::minutes(10);
    c
}

#[tokio::test]
async fn given_a_shadow_campaign_beside_the_live_one_when_the_cart_is_abandoned_then_only_the_live_one_sends() {
    // GIVEN the shipped campaign and a shadow draft that would email after 10 minutes.
    let w = World::with_all(vec![shipped(), draft()]).await;
    w.send(add_to_cart("e1", t0(), json!({"email": "ana@example.com", "consents": {"email": true}}))).await;
    // THEN the cart's one timer is armed at the earliest wait: the shadow's.
    assert_eq!(w.armed().await, t0() + Duration::minutes(10));

    // WHEN it fires, THEN the shadow records its would-send and nothing is queued.
    let outcome = fire(&w).await;
    assert!(w.jobs().await.is_empty(), "a shadow campaign never sends");
    let CheckOutcome::Decided { decision: Decision::Wait { until, .. }, .. } = outcome else {
        panic!("expected the live campaign's wait, got {outcome:?}")
    };
    assert_eq!(until, t0() + Duration::minutes(30));
    assert_eq!(w.armed().await, t0() + Duration::minutes(30), "re-armed for the live step");
    let cart = w.db.get_cart(&"cart-1".into()).await.unwrap().unwrap();
    let shadow = &cart.shadow["draft"];
    assert_eq!((shadow.steps.len(), shadow.group), (1, Some(Group::Shadow)));
    assert!(cart.progress.steps.is_empty(), "the live campaign has not sent yet");
    let timeline = w.db.timeline(&"cart-1".into()).await.unwrap();
    let line = timeline.iter().find(|e| e.code == "shadow_would_send").expect("a shadow line");
    assert_eq!(line.details["campaign_id"], "draft");
    assert!(line.message.contains("Shadow campaign \"draft\" would send step 1 by email"), "{}", line.message);
    assert!(w.db.get_message(&shadow.steps[0].message_id).await.unwrap().is_none(), "no message record");

    // WHEN the live step falls due, THEN the live campaign sends and the shadow adds nothing.
    let outcome = fire(&w).await;
    let jobs = w.jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let CheckOutcome::Decided { decision: Decision::Wait { until, .. }, .. } = outcome else {
        panic!("expected a wait for step 2, got {outcome:?}")
    };
    assert_eq!(until, t0() + Duration::minutes(30) + Duration::hours(24));
    let timeline = w.db.timeline(&"cart-1".into()).await.unwrap();
    assert_eq!(timeline.iter().filter(|e| e.code == "shadow_would_send").count(), 1);
    let record: MessageRecord = w.db.get_message(&jobs[0].message_id).await.unwrap().unwrap();
    assert_eq!(record.campaign_id, "default");

    // AND the facts hold the shadow's entry and would-send, and the live entry.
    let day = t0().date_naive();
    let mut entered: Vec<(String, Group)> =
        w.db.facts(day, day)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|f| match f.kind {
                FactKind::Entered { campaign_id, group, .. } => Some((campaign_id, group)),
                _ => None,
            })
            .collect();
    entered.sort();
    assert_eq!(entered, [("default".to_owned(), Group::Treated), ("draft".to_owned(), Group::Shadow)]);
}

#[tokio::test]
async fn given_an_experiment_when_the_customers_variant_sends_then_its_overrides_apply_and_the_variant_is_recorded() {
    use cartback_core::campaign::{Experiment, StepOverride, Variant};
    use cartback_core::message::Outgoing;
    // GIVEN an experiment whose only weighted variant mails step 1 with the
    // last-call template and its own subject line.
    let subject = StepOverride {
        template: Some("last_call".into()),
        subject: Some("{{ first_name }}, {{ item_count }} item waiting".into()),
        ..Default::default()
    };
    let experiment = Experiment {
        id: "subject-line".into(),
        variants: vec![
            Variant { name: "control".into(), weight: 0, steps: vec![] },
            Variant { name: "personal".into(), weight: 1, steps: vec![subject] },
        ],
        control: None,
    };
    let w = World::with(Campaign { experiment: Some(experiment), ..shipped() }).await;
    let contact = json!({"email": "ana@example.com", "first_name": "Ana", "consents": {"email": true}});
    w.send(add_to_cart("e1", t0(), contact)).await;

    // WHEN step 1 falls due.
    fire(&w).await;

    // THEN the email has the variant's subject, and the variant is on the message, the cart and the facts.
    let jobs = w.jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let Outgoing::Email { subject, text, .. } = &jobs[0].outgoing else { panic!("an email: {:?}", jobs[0]) };
    assert_eq!(subject, "Ana, 1 item waiting");
    assert!(text.contains("can't hold it forever"), "the last-call template: {text}");
    let record = w.db.get_message(&jobs[0].message_id).await.unwrap().unwrap();
    assert_eq!(record.variant.as_deref(), Some("personal"));
    let cart = w.db.get_cart(&"cart-1".into()).await.unwrap().unwrap();
    assert_eq!((cart.progress.group, cart.progress.variant.as_deref()), (Some(Group::Treated), Some("personal")));
    let day = t0().date_naive();
    let facts = w.db.facts(day, day).await.unwrap();
    assert!(
        facts.iter().any(|f| matches!(&f.kind, FactKind::Entered { variant: Some(v), .. } if v == "personal")),
        "{facts:?}"
    );
}

#[tokio::test]
async fn given_an_experiment_whose_variant_waits_a_day_when_the_earliest_first_step_falls_due_then_the_cart_enters_then(
) {
    use cartback_core::campaign::{Experiment, StepOverride, Variant};
    // GIVEN an experiment whose only weighted variant sends step 1 a day
    // after the last activity (the control would send after 30 minutes).
    let next_day = StepOverride { delay: Some(Duration::hours(24)), ..Default::default() };
    let experiment = Experiment {
        id: "timing".into(),
        variants: vec![
            Variant { name: "control".into(), weight: 0, steps: vec![] },
            Variant { name: "next-day".into(), weight: 1, steps: vec![next_day] },
        ],
        control: None,
    };
    let w = World::with(Campaign { experiment: Some(experiment), ..shipped() }).await;
    w.send(add_to_cart("e1", t0(), json!({"email": "ana@example.com", "consents": {"email": true}}))).await;

    // WHEN the timer fires at the earliest variant's first step (30 minutes).
    let outcome = fire(&w).await;

    // THEN the cart waits for its own first step and sends nothing yet...
    let CheckOutcome::Decided { decision: Decision::Wait { until, .. }, sent } = outcome else {
        panic!("expected a wait for the variant's first step, got {outcome:?}")
    };
    assert!(sent.is_empty() && w.jobs().await.is_empty());
    assert_eq!(until, t0() + Duration::hours(24));
    // ...and has entered the campaign now, in its own variant, like a cart
    // of the control would have: a purchase before its first message counts.
    let cart = w.db.get_cart(&"cart-1".into()).await.unwrap().unwrap();
    assert_eq!((cart.progress.group, cart.progress.variant.as_deref()), (Some(Group::Treated), Some("next-day")));
    assert_eq!(cart.progress.campaign_id.as_deref(), Some("default"));
    let day = t0().date_naive();
    let entered: Vec<_> =
        w.db.facts(day, day)
            .await
            .unwrap()
            .into_iter()
            .filter(|f| matches!(&f.kind, FactKind::Entered { variant: Some(v), .. } if v == "next-day"))
            .map(|f| f.at)
            .collect();
    assert_eq!(entered, [t0() + Duration::minutes(30)]);

    // WHEN its own first step falls due, THEN it is sent, and it enters no second time.
    fire(&w).await;
    assert_eq!(w.jobs().await.len(), 1);
    let facts = w.db.facts(day, day + Duration::days(1)).await.unwrap();
    assert_eq!(facts.iter().filter(|f| matches!(f.kind, FactKind::Entered { .. })).count(), 1, "{facts:?}");
}
