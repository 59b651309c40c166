//! The delivery service on the local adapters when a sender dies mid-send:
//! SQLite claims, the outbox, and a clock moved by hand past the claim's
//! lease (what a restart after a kill looks like to the next sender).

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use cartback_core::customer::Customer;
use cartback_core::ids::{CartId, CustomerId, CustomerKey, MessageId};
use cartback_core::measure::facts::Fact;
use cartback_core::message::{Channel, MessageJob, MessageRecord, MessageStatus, Outgoing};
use cartback_core::ports::{
    CartRecord, CartStore, Claim, Clock, CommitOutcome, CreateOutcome, CustomerStore, EventCommit, EventLog, FactStore,
    MessageStore, PortError, SaveOutcome, SendError, Sender, SettleOutcome, StateStore, Timeline, TimelineEntry,
};
use cartback_core::service::{CampaignCache, Delivery, DeliveryOutcome};
use cartback_core::voucher::{IssueOutcome, RedeemOutcome, Redemption, Voucher, VoucherCode, VoucherOwner};
use chrono::{DateTime, Duration, Utc};

use crate::outbox::{Outbox, OutboxSender};
use crate::testing::ManualClock;
use crate::Database;

fn t0() -> DateTime<Utc> {
    "2026-11-23T10:30:00Z".parse().unwrap()
}

fn email_job(id: &str) -> MessageJob {
    MessageJob {
        message_id: id.into(),
        cart_id: "cart-1".into(),
        channel: Channel::Email,
        outgoing: Outgoing::Email {
            to: "ana@example.com".into(),
            subject: "Your cart".into(),
            text: "Hi".into(),
            html: "<p>Hi</p>".into(),
            unsubscribe: None,
        },
        voucher: None,
    }
}

fn sms_job(id: &str) -> MessageJob {
    MessageJob {
        message_id: id.into(),
        cart_id: "cart-1".into(),
        channel: Channel::Sms,
        outgoing: Outgoing::Sms { to: "+33612345678".into(), body: "Your cart is waiting".into() },
        voucher: None,
    }
}

struct World {
    dir: tempfile::TempDir,
    db: Database,
    clock: Arc<ManualClock>,
    outbox: Outbox,
    sender: OutboxSender,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(t0()));
        let db = Database::open(dir.path()).unwrap().with_clock(clock.clone());
        let outbox = Outbox::new(dir.path()).unwrap();
        let sender = outbox.sender("Shop <shop@example.com>");
        World { dir, db, clock, outbox, sender }
    }

    fn delivery(&self, sender: Arc<dyn Sender>) -> Delivery {
        Delivery {
            store: Arc::new(self.db.clone()),
            sender,
            campaigns: self.campaigns(),
            clock: self.clock.clone(),
            webhook: None,
        }
    }

    fn campaigns(&self) -> Arc<CampaignCache> {
        Arc::new(CampaignCache::new(Arc::new(self.db.clone()), self.clock.clone(), Duration::seconds(60)))
    }

    async fn queued(&self, job: &MessageJob) {
        let record = MessageRecord {
            message_id: job.message_id.clone(),
            cart_id: job.cart_id.clone(),
            customer_key: cartback_core::ids::CustomerKey::Guest(job.cart_id.clone()),
            campaign_id: "default".into(),
            step: 0,
            channel: job.channel,
            decided_at: self.clock.now(),
            status: MessageStatus::Queued,
            engagement: Default::default(),
            variant: None,
        };
        assert_eq!(self.db.create_message(&record).await.unwrap(), cartback_core::ports::CreateOutcome::Created);
    }

    /// A first sender claims the message, marks that it is calling the
    /// provider (as a sender does right before the call) and dies there,
    /// leaving it unknown whether the call went out.
    async fn claim_and_die(&self, job: &MessageJob) {
        let held = self.claim_and_die_before_calling(job).await;
        let MessageStatus::Sending { lease_until, attempts, provider_called: false } = held else { panic!("{held:?}") };
        let calling = MessageStatus::Sending { lease_until, attempts, provider_called: true };
        assert_eq!(self.db.settle_message(&job.message_id, &held, &calling).await.unwrap(), SettleOutcome::Settled);
    }

    /// A first sender claims the message and dies before calling the
    /// provider (during its last-moment checks, say). Returns its claim.
    async fn claim_and_die_before_calling(&self, job: &MessageJob) -> MessageStatus {
        let now = self.clock.now();
        match self.db.claim_message(&job.message_id, now, now + Duration::minutes(5)).await.unwrap() {
            Claim::Claimed(record) => record.status,
            other => panic!("{other:?}"),
        }
    }

    /// The restart: the dead sender's lease has ended.
    fn after_the_lease(&self) {
        self.clock.advance(Duration::minutes(6));
    }

    async fn status(&self, id: &str) -> MessageStatus {
        self.db.get_message(&id.into()).await.unwrap().unwrap().status
    }

    async fn timeline_codes(&self) -> Vec<String> {
        self.db
            .timeline(&"cart-1".into())
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "message")
            .map(|e| e.code)
            .collect()
    }

    fn email_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("outbox/email")
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Counts the sends reaching the wrapped sender.
struct Counting<S> {
    inner: S,
    sends: AtomicUsize,
}

#[async_trait]
impl<S: Sender> Sender for Counting<S> {
    async fn send(&self, job: &MessageJob, now: DateTime<Utc>) -> Result<String, SendError> {
        self.sends.fetch_add(1, Ordering::SeqCst);
        self.inner.send(job, now).await
    }

    async fn prior_attempt(&self, job: &MessageJob) -> Result<cartback_core::ports::PriorAttempt, SendError> {
        self.inner.prior_attempt(job).await
    }
}

/// A provider with no way to look a message up (the port's default answer).
struct Blind {
    sends: AtomicUsize,
}

#[async_trait]
impl Sender for Blind {
    async fn send(&self, job: &MessageJob, _now: DateTime<Utc>) -> Result<String, SendError> {
        self.sends.fetch_add(1, Ordering::SeqCst);
        Ok(format!("blind-{}", job.message_id))
    }
}

#[tokio::test]
async fn given_an_email_written_before_a_crash_that_left_it_unrecorded_when_retaken_then_it_is_recorded_sent_and_never_rewritten(
) {
    let w = World::new();
    let job = email_job("m_written");
    w.queued(&job).await;
    // GIVEN the first sender claimed, wrote the file, and was killed before recording "sent".
    w.claim_and_die(&job).await;
    w.sender.send(&job, w.clock.now()).await.unwrap();
    let path = w.outbox.email_path("m_written");
    let (before, meta_before) = (fs::read(&path).unwrap(), fs::metadata(&path).unwrap());
    w.after_the_lease();

    // WHEN the queue's redelivery reaches a new sender.
    let counting = Arc::new(Counting { inner: w.sender.clone(), sends: AtomicUsize::new(0) });
    let outcome = w.delivery(counting.clone()).deliver(&job).await.unwrap();

    // THEN it is recorded as sent without a second write or send.
    assert_eq!(outcome, DeliveryOutcome::Sent { provider_message_id: "outbox-m_written".into() });
    assert_eq!(counting.sends.load(Ordering::SeqCst), 0, "the provider is not called again");
    assert!(matches!(w.status("m_written").await, MessageStatus::Sent { .. }));
    assert_eq!(w.timeline_codes().await, ["sent"]);
    assert_eq!(fs::read(&path).unwrap(), before);
    let meta_after = fs::metadata(&path).unwrap();
    assert_eq!(meta_after.modified().unwrap(), meta_before.modified().unwrap(), "the file was not replaced");
    #[cfg(unix)]
    assert_eq!(std::os::unix::fs::MetadataExt::ino(&meta_after), std::os::unix::fs::MetadataExt::ino(&meta_before));
    assert_eq!(names(&w.email_dir()), ["m_written.eml"]);
    // And a later redelivery is a no-op.
    assert_eq!(
        w.delivery(counting.clone()).deliver(&job).await.unwrap(),
        DeliveryOutcome::Skipped("already sent".into())
    );
}

#[tokio::test]
async fn given_a_crash_after_the_claim_but_before_any_write_when_retaken_then_the_message_is_written_once() {
    let w = World::new();
    let job = email_job("m_unwritten");
    w.queued(&job).await;
    w.claim_and_die(&job).await;
    w.after_the_lease();

    let counting = Arc::new(Counting { inner: w.sender.clone(), sends: AtomicUsize::new(0) });
    let outcome = w.delivery(counting.clone()).deliver(&job).await.unwrap();

    assert_eq!(outcome, DeliveryOutcome::Sent { provider_message_id: "outbox-m_unwritten".into() });
    assert_eq!(counting.sends.load(Ordering::SeqCst), 1);
    assert_eq!(names(&w.email_dir()), ["m_unwritten.eml"]);
}

#[tokio::test]
async fn given_a_crash_mid_write_that_left_a_temp_file_and_a_torn_line_when_restarted_then_both_are_cleaned_and_the_message_goes_once(
) {
    let w = World::new();
    let (email, sms) = (email_job("m_torn"), sms_job("m_sms_torn"));
    for job in [&email, &sms] {
        w.queued(job).await;
        w.claim_and_die(job).await;
    }
    // GIVEN half an email in a temporary file, and an SMS line cut short
    // after a complete earlier line.
    fs::write(w.email_dir().join(".m_torn.eml.4242.0.tmp"), b"From: Shop <shop@exa").unwrap();
    let earlier =
        "{\"message_id\":\"m_earlier\",\"to\":\"+33600000000\",\"body\":\"b\",\"at\":\"2026-11-23T10:00:00.000Z\"}\n";
    fs::write(w.outbox.sms_path(), format!("{earlier}{{\"message_id\":\"m_sms_torn\",\"to\":\"+3361")).unwrap();

    // WHEN the process starts again.
    let recovery = w.outbox.recover().unwrap();
    assert_eq!((recovery.temp_files_removed, recovery.torn_lines_removed), (1, 1));
    assert_eq!(fs::read_to_string(w.outbox.sms_path()).unwrap(), earlier, "the torn line is cut, the whole one kept");
    assert!(names(&w.email_dir()).is_empty(), "no temporary file left");
    w.after_the_lease();
    let delivery = w.delivery(Arc::new(w.outbox.sender("Shop <shop@example.com>")));

    // THEN neither counts as delivered: each goes out once, whole.
    for job in [&email, &sms] {
        assert!(matches!(delivery.deliver(job).await.unwrap(), DeliveryOutcome::Sent { .. }), "{}", job.message_id);
    }
    assert_eq!(names(&w.email_dir()), ["m_torn.eml"]);
    assert!(fs::read_to_string(w.outbox.email_path("m_torn")).unwrap().contains("Subject: Your cart"));
    let lines: Vec<String> = fs::read_to_string(w.outbox.sms_path()).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[1].contains("\"m_sms_torn\"") && lines[1].ends_with('}'), "{lines:?}");
}

#[tokio::test]
async fn given_an_sms_line_appended_before_a_crash_when_retaken_then_it_is_recorded_sent_and_not_appended_again() {
    let w = World::new();
    let job = sms_job("m_sms");
    w.queued(&job).await;
    w.claim_and_die(&job).await;
    w.sender.send(&job, w.clock.now()).await.unwrap();
    w.after_the_lease();

    // A fresh sender, as after a restart: it reads the file, not memory.
    let restarted = w.outbox.sender("Shop <shop@example.com>");
    let outcome = w.delivery(Arc::new(restarted)).deliver(&job).await.unwrap();

    assert_eq!(outcome, DeliveryOutcome::Sent { provider_message_id: "outbox-m_sms".into() });
    assert_eq!(fs::read_to_string(w.outbox.sms_path()).unwrap().lines().count(), 1);
    assert!(matches!(w.status("m_sms").await, MessageStatus::Sent { .. }));
}

#[tokio::test]
async fn given_a_provider_that_cannot_tell_when_a_dead_senders_claim_is_retaken_then_the_message_is_unknown_not_sent_again(
) {
    let w = World::new();
    let job = email_job("m_blind");
    w.queued(&job).await;
    w.claim_and_die(&job).await;
    w.after_the_lease();

    let blind = Arc::new(Blind { sends: AtomicUsize::new(0) });
    let outcome = w.delivery(blind.clone()).deliver(&job).await.unwrap();

    assert_eq!(outcome, DeliveryOutcome::Skipped("outcome unknown".into()));
    assert_eq!(blind.sends.load(Ordering::SeqCst), 0, "never sent again blindly");
    assert!(matches!(w.status("m_blind").await, MessageStatus::Unknown { .. }));
    assert_eq!(w.timeline_codes().await, ["unknown"]);
    w.after_the_lease();
    assert_eq!(
        w.delivery(blind.clone()).deliver(&job).await.unwrap(),
        DeliveryOutcome::Skipped("closed for good".into())
    );
    assert_eq!(blind.sends.load(Ordering::SeqCst), 0);
}

/// GIVEN a sender that died after claiming, before it called the provider
/// WHEN its lease ends and the job comes back, for a provider that cannot
/// say what it received
/// THEN the message is sent (nothing went out before), not recorded unknown.
#[tokio::test]
async fn given_a_sender_that_died_before_calling_the_provider_when_retaken_then_the_message_is_sent_not_unknown() {
    let w = World::new();
    let job = email_job("m_unstarted");
    w.queued(&job).await;
    w.claim_and_die_before_calling(&job).await;
    w.after_the_lease();

    let blind = Arc::new(Blind { sends: AtomicUsize::new(0) });
    let outcome = w.delivery(blind.clone()).deliver(&job).await.unwrap();

    assert_eq!(outcome, DeliveryOutcome::Sent { provider_message_id: "blind-m_unstarted".into() });
    assert_eq!(blind.sends.load(Ordering::SeqCst), 1);
    assert_eq!(w.timeline_codes().await, ["sent"]);
    let status = w.status("m_unstarted").await;
    assert!(matches!(status, MessageStatus::Sent { .. }), "{status:?}");
}

#[tokio::test]
async fn given_a_first_claim_when_delivered_to_a_provider_that_cannot_tell_then_it_is_sent_normally() {
    let w = World::new();
    let job = email_job("m_first");
    w.queued(&job).await;
    let blind = Arc::new(Blind { sends: AtomicUsize::new(0) });
    let outcome = w.delivery(blind.clone()).deliver(&job).await.unwrap();
    assert_eq!(outcome, DeliveryOutcome::Sent { provider_message_id: "blind-m_first".into() });
    assert_eq!(blind.sends.load(Ordering::SeqCst), 1);
}

mod lost_step {
    use super::*;
    use cartback_core::campaign::Campaign;
    use cartback_core::message::QueueName;
    use cartback_core::ports::{CampaignStore, JobQueue, PortError, TimerPayload};
    use cartback_core::service::{CampaignCache, CheckOutcome, Checker, Ingest, Settings};
    use cartback_core::signing::Secret;
    use std::sync::atomic::AtomicBool;

    use crate::{SqliteQueue, SqliteScheduler};

    /// A queue that dies (like the process) on the first enqueue after `armed`.
    struct DyingQueue {
        inner: SqliteQueue,
        die: AtomicBool,
    }

    #[async_trait]
    impl JobQueue for DyingQueue {
        async fn enqueue(&self, job: &MessageJob) -> Result<(), PortError> {
            if self.die.swap(false, Ordering::SeqCst) {
                return Err(PortError::Unavailable("queue", "killed".into()));
            }
            self.inner.enqueue(job).await
        }
    }

    #[tokio::test]
    async fn given_a_check_killed_after_saving_progress_but_before_queueing_when_its_timer_fires_again_then_the_step_goes_now(
    ) {
        let w = World::new();
        let store: Arc<dyn StateStore> = Arc::new(w.db.clone());
        w.db.put(&Campaign::default_campaign()).await.unwrap();
        let campaigns = Arc::new(CampaignCache::new(Arc::new(w.db.clone()), w.clock.clone(), Duration::zero()));
        let scheduler = Arc::new(SqliteScheduler::new(w.db.clone()));
        let ingest = Ingest {
            store: store.clone(),
            scheduler: scheduler.clone(),
            campaigns: campaigns.clone(),
            clock: w.clock.clone(),
        };
        let body = serde_json::json!({
            "event_id": "e1", "type": "add_to_cart", "cart_id": "cart-1", "device": "desktop", "currency": "EUR",
            "customer": {"email": "ana@example.com", "consents": {"email": true}},
            "items": [{"item_id": "sku-mug", "price": "14.90", "quantity": 1}]
        });
        let answer = ingest.ingest_body(body.to_string().as_bytes()).await.unwrap();
        assert_eq!(answer.accepted, 1);
        let queue = SqliteQueue::new(w.db.clone());
        let dying = Arc::new(DyingQueue { inner: queue.clone(), die: AtomicBool::new(true) });
        let settings = Arc::new(Settings::new(
            Secret::new(b"0123456789abcdef0123".to_vec()).unwrap(),
            "http://localhost:8080",
            "http://shop/{cart_id}?t={token}",
        ));
        let templates = Arc::new(cartback_core::service::TemplateCache::shipped_only());
        let checker = Checker {
            store: store.clone(),
            scheduler,
            queue: dying,
            campaigns,
            templates,
            clock: w.clock.clone(),
            settings,
        };
        let due = w.db.get_cart(&"cart-1".into()).await.unwrap().unwrap().timer_armed_for.unwrap();
        w.clock.set(due);
        let timer = TimerPayload { cart_id: "cart-1".into(), due_at: due };

        // GIVEN the check saved its progress (step 1 sent, step 2 armed) and died before queueing.
        assert!(checker.on_timer(&timer).await.is_err());
        let saved = w.db.get_cart(&"cart-1".into()).await.unwrap().unwrap();
        let lost = saved.progress.steps.last().unwrap().message_id.clone();
        assert!(saved.timer_armed_for.unwrap() > due + Duration::hours(23), "step 2 is armed a day later");
        assert!(w.db.get_message(&lost).await.unwrap().is_none());

        // WHEN the same timer fires again after its lease.
        w.clock.advance(Duration::minutes(6));
        let outcome = checker.on_timer(&timer).await.unwrap();

        // THEN step 1 is decided again (under every rule), queued and recorded now.
        let decided_again = matches!(&outcome, CheckOutcome::Decided { sent, .. } if sent.as_slice() == [lost.clone()]);
        assert!(decided_again, "{outcome:?}");
        assert_eq!(w.db.get_message(&lost).await.unwrap().unwrap().status, MessageStatus::Queued);
        let job = queue.receive(QueueName::Email, w.clock.now(), Duration::minutes(5)).await.unwrap().unwrap();
        assert_eq!(job.job.message_id, lost);
        let delivery = w.delivery(Arc::new(w.sender.clone()));
        assert!(matches!(delivery.deliver(&job.job).await.unwrap(), DeliveryOutcome::Sent { .. }));
        assert_eq!(names(&w.email_dir()).len(), 1);
    }
}

#[tokio::test]
async fn given_a_claim_held_by_a_live_sender_when_another_delivery_tries_then_it_is_told_to_come_back_when_the_lease_ends(
) {
    let w = World::new();
    let job = email_job("m_busy");
    w.queued(&job).await;
    w.claim_and_die(&job).await;

    let counting = Arc::new(Counting { inner: w.sender.clone(), sends: AtomicUsize::new(0) });
    let error = w.delivery(counting.clone()).deliver(&job).await.expect_err("the claim is held");

    match error {
        cartback_core::service::DeliveryError::Busy { retry_at } => assert_eq!(retry_at, t0() + Duration::minutes(5)),
        other => panic!("expected Busy, got {other}"),
    }
    assert_eq!(counting.sends.load(Ordering::SeqCst), 0);
}

/// Messages and timeline from the real database; every cart read fails.
struct CartReadsFail(Database);

#[async_trait]
impl CartStore for CartReadsFail {
    async fn get_cart(&self, _: &CartId) -> Result<Option<CartRecord>, PortError> {
        Err(PortError::Unavailable("carts", "throttled".into()))
    }
    async fn save_cart(&self, cart: &CartRecord) -> Result<SaveOutcome, PortError> {
        self.0.save_cart(cart).await
    }
}

#[async_trait]
impl CustomerStore for CartReadsFail {
    async fn get_customer(&self, id: &CustomerId) -> Result<Option<(Customer, u64)>, PortError> {
        self.0.get_customer(id).await
    }
}

#[async_trait]
impl EventLog for CartReadsFail {
    async fn commit_event(&self, commit: EventCommit) -> Result<CommitOutcome, PortError> {
        self.0.commit_event(commit).await
    }

    async fn event_seen(&self, event_id: &str) -> Result<bool, PortError> {
        self.0.event_seen(event_id).await
    }
}

#[async_trait]
impl Timeline for CartReadsFail {
    async fn append_timeline(&self, cart_id: &CartId, entry: &TimelineEntry) -> Result<(), PortError> {
        self.0.append_timeline(cart_id, entry).await
    }
    async fn timeline(&self, cart_id: &CartId) -> Result<Vec<TimelineEntry>, PortError> {
        self.0.timeline(cart_id).await
    }
}

#[async_trait]
impl MessageStore for CartReadsFail {
    async fn create_message(&self, record: &MessageRecord) -> Result<CreateOutcome, PortError> {
        self.0.create_message(record).await
    }
    async fn get_message(&self, id: &MessageId) -> Result<Option<MessageRecord>, PortError> {
        self.0.get_message(id).await
    }
    async fn claim_message(
        &self,
        id: &MessageId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Claim, PortError> {
        self.0.claim_message(id, now, until).await
    }
    async fn set_message_status(&self, id: &MessageId, status: &MessageStatus) -> Result<(), PortError> {
        self.0.set_message_status(id, status).await
    }
    async fn settle_message(
        &self,
        id: &MessageId,
        held: &MessageStatus,
        status: &MessageStatus,
    ) -> Result<SettleOutcome, PortError> {
        self.0.settle_message(id, held, status).await
    }
    async fn record_engagement(
        &self,
        id: &MessageId,
        label: cartback_core::engagement::EngagementLabel,
        at: DateTime<Utc>,
    ) -> Result<Option<cartback_core::engagement::Tally>, PortError> {
        self.0.record_engagement(id, label, at).await
    }
    async fn customer_messages(
        &self,
        key: &CustomerKey,
        since: DateTime<Utc>,
    ) -> Result<Vec<MessageRecord>, PortError> {
        self.0.customer_messages(key, since).await
    }
    async fn save_short_link(&self, link: &cartback_core::short_link::ShortLink) -> Result<(), PortError> {
        self.0.save_short_link(link).await
    }
    async fn short_link(
        &self,
        token: &cartback_core::short_link::ShortToken,
    ) -> Result<Option<cartback_core::short_link::ShortLink>, PortError> {
        self.0.short_link(token).await
    }
}

#[async_trait]
impl cartback_core::ports::VoucherStore for CartReadsFail {
    async fn issue_voucher(&self, voucher: &Voucher) -> Result<IssueOutcome, PortError> {
        self.0.issue_voucher(voucher).await
    }
    async fn voucher(&self, code: &VoucherCode) -> Result<Option<Voucher>, PortError> {
        self.0.voucher(code).await
    }
    async fn cart_voucher(&self, cart_id: &CartId) -> Result<Option<Voucher>, PortError> {
        self.0.cart_voucher(cart_id).await
    }
    async fn owner_vouchers(&self, owner: &VoucherOwner, since: DateTime<Utc>) -> Result<Vec<Voucher>, PortError> {
        self.0.owner_vouchers(owner, since).await
    }
    async fn redeem_voucher(&self, code: &VoucherCode, redemption: &Redemption) -> Result<RedeemOutcome, PortError> {
        self.0.redeem_voucher(code, redemption).await
    }
    async fn revoke_voucher(&self, code: &VoucherCode, at: DateTime<Utc>) -> Result<Option<Voucher>, PortError> {
        self.0.revoke_voucher(code, at).await
    }
    async fn mark_voucher_published(&self, code: &VoucherCode, at: DateTime<Utc>) -> Result<(), PortError> {
        self.0.mark_voucher_published(code, at).await
    }
    async fn list_vouchers(&self, limit: usize) -> Result<Vec<Voucher>, PortError> {
        self.0.list_vouchers(limit).await
    }
}

#[async_trait]
impl FactStore for CartReadsFail {
    async fn record_fact(&self, fact: &Fact) -> Result<CreateOutcome, PortError> {
        self.0.record_fact(fact).await
    }
    async fn facts(&self, from: chrono::NaiveDate, to: chrono::NaiveDate) -> Result<Vec<Fact>, PortError> {
        self.0.facts(from, to).await
    }
    async fn fact(&self, fact_id: &str) -> Result<Option<Fact>, PortError> {
        self.0.fact(fact_id).await
    }
}

#[tokio::test]
async fn given_a_cart_read_that_fails_after_the_claim_when_delivering_then_the_claim_is_handed_back_and_the_retry_sends(
) {
    let w = World::new();
    let job = email_job("m_throttled");
    w.queued(&job).await;
    let counting = Arc::new(Counting { inner: w.sender.clone(), sends: AtomicUsize::new(0) });
    let failing: Delivery<CartReadsFail> = Delivery {
        store: Arc::new(CartReadsFail(w.db.clone())),
        sender: counting.clone(),
        campaigns: w.campaigns(),
        clock: w.clock.clone(),
        webhook: None,
    };

    let error = failing.deliver(&job).await.expect_err("the cart read fails");

    assert!(matches!(error, cartback_core::service::DeliveryError::Port(_)), "{error}");
    assert_eq!(w.status("m_throttled").await, MessageStatus::Queued, "claim handed back, not left to expire");
    // The retry, at once and before the old lease would have ended, sends.
    let outcome = w.delivery(counting.clone()).deliver(&job).await.unwrap();
    assert!(matches!(outcome, DeliveryOutcome::Sent { .. }), "{outcome:?}");
    assert_eq!(counting.sends.load(Ordering::SeqCst), 1);
}

/// A provider so slow that the sender's lease runs out during the call:
/// meanwhile another sender takes the claim over and delivers; then the
/// slow call comes back with `answer`.
struct SlowProvider {
    clock: Arc<ManualClock>,
    other_sender: Delivery,
    answer: SendError,
    sends: AtomicUsize,
}

#[async_trait]
impl Sender for SlowProvider {
    async fn send(&self, job: &MessageJob, _now: DateTime<Utc>) -> Result<String, SendError> {
        self.sends.fetch_add(1, Ordering::SeqCst);
        self.clock.advance(Duration::minutes(6));
        let taken_over = self.other_sender.deliver(job).await.expect("the second sender delivers");
        assert!(matches!(taken_over, DeliveryOutcome::Sent { .. }), "{taken_over:?}");
        Err(self.answer.clone())
    }
}

/// GIVEN a sender whose lease ran out during a slow provider call, and a
/// second sender that took the claim over, sent and recorded `sent`
/// WHEN the slow call finally fails with a retryable error
/// THEN the first sender writes nothing over the second one's `sent` (its
/// write is conditional on still holding the claim), and a later delivery
/// of the same job sends nothing more.
#[tokio::test]
async fn given_a_sender_whose_lease_expired_mid_call_when_its_call_fails_late_then_the_later_sent_status_stands() {
    let w = World::new();
    let job = email_job("m_race");
    w.queued(&job).await;
    let counting = Arc::new(Counting { inner: w.sender.clone(), sends: AtomicUsize::new(0) });
    let slow = Arc::new(SlowProvider {
        clock: w.clock.clone(),
        other_sender: w.delivery(counting.clone()),
        answer: SendError::Retryable("connection reset".into()),
        sends: AtomicUsize::new(0),
    });

    let first = w.delivery(slow.clone()).deliver(&job).await;

    assert!(first.is_err(), "the slow sender reports its failure: {first:?}");
    assert!(matches!(w.status("m_race").await, MessageStatus::Sent { .. }), "{:?}", w.status("m_race").await);
    assert!(!w.timeline_codes().await.contains(&"retrying".to_owned()), "{:?}", w.timeline_codes().await);
    let again = w.delivery(counting.clone()).deliver(&job).await.unwrap();
    assert_eq!(again, DeliveryOutcome::Skipped("already sent".into()));
    assert_eq!(counting.sends.load(Ordering::SeqCst), 1, "one message reached the outbox");
    assert_eq!(names(&w.email_dir()), vec!["m_race.eml".to_owned()]);
}

/// GIVEN a provider call that fails in a way that says the provider may
/// have accepted the message (a timeout after the request went out)
/// WHEN the job is delivered, and the queue redelivers it
/// THEN the message is recorded `unknown` with a timeline line, and the
/// redelivery does not send it again.
#[tokio::test]
async fn given_a_send_whose_outcome_is_unknown_when_redelivered_then_it_is_not_sent_again() {
    let w = World::new();
    let job = email_job("m_unknown");
    w.queued(&job).await;
    struct TimesOut(AtomicUsize);
    #[async_trait]
    impl Sender for TimesOut {
        async fn send(&self, _: &MessageJob, _: DateTime<Utc>) -> Result<String, SendError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(SendError::Unknown("timed out after the request was sent".into()))
        }
    }
    let provider = Arc::new(TimesOut(AtomicUsize::new(0)));

    let first = w.delivery(provider.clone()).deliver(&job).await.unwrap();
    let again = w.delivery(provider.clone()).deliver(&job).await.unwrap();

    assert_eq!(first, DeliveryOutcome::Skipped("outcome unknown".into()));
    assert!(matches!(w.status("m_unknown").await, MessageStatus::Unknown { .. }));
    assert_eq!(w.timeline_codes().await, vec!["unknown".to_owned()]);
    assert_eq!(again, DeliveryOutcome::Skipped("closed for good".into()));
    assert_eq!(provider.0.load(Ordering::SeqCst), 1, "never resent blindly");
}
