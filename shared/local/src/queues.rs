//! Durable per-channel queues in the database (tables `jobs` and
//! `dead_letters`), with the semantics of the SQS queues the AWS runtime uses:
//!
//! - [`SqliteQueue::receive`] hands out the oldest visible job and hides it
//!   for a visibility timeout; a worker that dies mid-job lets it reappear;
//! - [`SqliteQueue::ack`] deletes a finished job;
//! - [`SqliteQueue::retry`] brings a failed job back after an exponential
//!   backoff with jitter; after `max_attempts` deliveries it moves to the
//!   dead-letter table with its last error instead;
//! - a job received `max_attempts` times and never acked nor retried (it
//!   crashed the worker each time: a poison message) is dead-lettered by the
//!   next `receive`, like SQS's `maxReceiveCount`;
//! - [`SqliteQueue::dead_letters`] lists and [`SqliteQueue::redrive`] moves
//!   dead letters back for another round of attempts.

use std::sync::Arc;

use async_trait::async_trait;
use cartback_core::message::{MessageJob, QueueName};
use cartback_core::ports::{JobQueue, PortError};
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rusqlite::{params, OptionalExtension, Transaction};
use tokio::sync::Notify;

use crate::sqlite::{db, from_json, immediate, parse_ts, to_json, ts, Cached, Database};

/// Retries and backoff for failed jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries before a job is dead-lettered.
    pub max_attempts: u32,
    /// Delay after the first failure; doubled after each further failure.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// "Equal jitter": the delay is drawn from [backoff/2, backoff], so that
    /// jobs failing together do not all come back together.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::seconds(10),
            max_delay: Duration::minutes(15),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The delay after failed delivery number `attempt` (1-based), before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1i64 << attempt.saturating_sub(1).min(32);
        let base = self.base_delay.num_milliseconds().max(0);
        Duration::milliseconds(base.saturating_mul(factor)).min(self.max_delay)
    }

    /// The delay actually applied: the backoff with jitter.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let full = self.backoff(attempt).num_milliseconds().max(0);
        if !self.jitter || full < 2 {
            return Duration::milliseconds(full);
        }
        let half = full / 2;
        Duration::milliseconds(half + rng.gen_range(0..=full - half))
    }
}

/// A job handed out by [`SqliteQueue::receive`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedJob {
    /// Pass to `ack`, `retry` or `dead_letter`.
    pub id: i64,
    pub queue: QueueName,
    pub job: MessageJob,
    /// Which delivery this is: 1 the first time.
    pub attempts: u32,
    /// The error of the previous failed delivery.
    pub last_error: Option<String>,
    pub enqueued_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The job comes back at this time.
    Scheduled { at: DateTime<Utc> },
    /// It used up its attempts and is now a dead letter.
    DeadLettered,
    /// No such job (already acked or dead-lettered).
    NotFound,
}

/// A job that exhausted its attempts, with its last error.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: i64,
    pub queue: QueueName,
    pub message_id: Option<String>,
    /// The job's JSON as queued (kept raw: it may be what made it fail).
    pub body: String,
    pub attempts: u32,
    pub last_error: String,
    pub enqueued_at: DateTime<Utc>,
    pub failed_at: DateTime<Utc>,
}

impl DeadLetter {
    /// The job, when its body can be read.
    pub fn job(&self) -> Option<MessageJob> {
        serde_json::from_str(&self.body).ok()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Visible now.
    pub ready: usize,
    /// Being worked on, or waiting for a retry.
    pub delayed: usize,
    pub dead: usize,
}

/// How long a job queued before its message record waits for the record
/// (virtual seconds) before it is shown to the sender anyway.
pub const RECORD_WAIT_SECONDS: i64 = 60;

/// The [`JobQueue`] port and the worker side of the local channel queues.
#[derive(Clone, Debug)]
pub struct SqliteQueue {
    db: Database,
    policy: RetryPolicy,
    signals: Arc<[Arc<Notify>; 4]>,
}

pub(crate) fn index(queue: QueueName) -> usize {
    match queue {
        QueueName::Email => 0,
        QueueName::Sms => 1,
        QueueName::Push => 2,
        QueueName::Webhook => 3,
    }
}

impl SqliteQueue {
    pub fn new(db: Database) -> Self {
        SqliteQueue { policy: RetryPolicy::default(), signals: db.job_signals.clone(), db }
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Notified after each enqueue on `queue`, so an idle worker can wake at once.
    pub fn enqueued_signal(&self, queue: QueueName) -> Arc<Notify> {
        self.signals[index(queue)].clone()
    }

    /// Takes the oldest job visible at `now` and hides it for `visibility`.
    pub async fn receive(
        &self,
        queue: QueueName,
        now: DateTime<Utc>,
        visibility: Duration,
    ) -> Result<Option<ReceivedJob>, PortError> {
        let max_attempts = self.policy.max_attempts;
        let (now_text, hidden_until) = (ts(now), ts(now + visibility));
        self.db
            .call(move |conn| {
                let tx = immediate(conn)?;
                loop {
                    let row: Option<(i64, String, u32, Option<String>, String)> = tx
                        .query_row_cached(
                            "SELECT id, body, attempts, last_error, enqueued_at FROM jobs
                             WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, id LIMIT 1",
                            params![queue.as_str(), now_text],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                        )
                        .optional()
                        .map_err(db)?;
                    let Some((id, body, attempts, last_error, enqueued_at)) = row else {
                        tx.commit().map_err(db)?;
                        return Ok(None);
                    };
                    if attempts >= max_attempts {
                        // Received that often and never acked or retried: the
                        // job keeps killing its worker.
                        let error = format!(
                            "received {attempts} times without being acknowledged (the worker died or timed out); last error: {}",
                            last_error.as_deref().unwrap_or("none")
                        );
                        move_to_dead_letters(&tx, id, &error, &now_text)?;
                        continue;
                    }
                    let job = match from_json::<MessageJob>("job", &body) {
                        Ok(job) => job,
                        Err(e) => {
                            move_to_dead_letters(&tx, id, &e.to_string(), &now_text)?;
                            continue;
                        }
                    };
                    tx.execute_cached("UPDATE jobs SET attempts = attempts + 1, visible_at = ?2 WHERE id = ?1", params![id, hidden_until])
                        .map_err(db)?;
                    tx.commit().map_err(db)?;
                    return Ok(Some(ReceivedJob { id, queue, job, attempts: attempts + 1, last_error, enqueued_at: parse_ts(&enqueued_at)? }));
                }
            })
            .await
    }

    /// The job is done (sent, or settled for good): it is deleted. False when
    /// it was not there any more.
    pub async fn ack(&self, id: i64) -> Result<bool, PortError> {
        self.db
            .call(move |conn| Ok(conn.execute_cached("DELETE FROM jobs WHERE id = ?1", [id]).map_err(db)? == 1))
            .await
    }

    /// The delivery failed with `error`: the job comes back after a backoff,
    /// or becomes a dead letter when it used up its attempts.
    pub async fn retry(&self, id: i64, now: DateTime<Utc>, error: &str) -> Result<RetryOutcome, PortError> {
        self.retry_not_before(id, now, error, None).await
    }

    /// [`SqliteQueue::retry`], and not before `not_before` (a receiver's
    /// `Retry-After`) when that is later than the backoff.
    pub async fn retry_not_before(
        &self,
        id: i64,
        now: DateTime<Utc>,
        error: &str,
        not_before: Option<DateTime<Utc>>,
    ) -> Result<RetryOutcome, PortError> {
        let (policy, error) = (self.policy.clone(), error.to_owned());
        self.db
            .call(move |conn| {
                let tx = immediate(conn)?;
                let attempts: Option<u32> = tx
                    .query_row_cached("SELECT attempts FROM jobs WHERE id = ?1", [id], |r| r.get(0))
                    .optional()
                    .map_err(db)?;
                let Some(attempts) = attempts else {
                    return Ok(RetryOutcome::NotFound);
                };
                tx.execute_cached("UPDATE jobs SET last_error = ?2 WHERE id = ?1", params![id, error]).map_err(db)?;
                let outcome = if attempts >= policy.max_attempts {
                    move_to_dead_letters(&tx, id, &error, &ts(now))?;
                    RetryOutcome::DeadLettered
                } else {
                    let at =
                        (now + policy.delay(attempts.max(1), &mut rand::thread_rng())).max(not_before.unwrap_or(now));
                    tx.execute_cached("UPDATE jobs SET visible_at = ?2 WHERE id = ?1", params![id, ts(at)])
                        .map_err(db)?;
                    RetryOutcome::Scheduled { at }
                };
                tx.commit().map_err(db)?;
                Ok(outcome)
            })
            .await
    }

    /// Hides the job until `at` without spending an attempt: the delivery
    /// did not fail, it could not start (another sender holds the claim).
    pub async fn postpone(&self, id: i64, at: DateTime<Utc>) -> Result<bool, PortError> {
        self.db
            .call(move |conn| {
                let changed = conn
                    .execute_cached(
                        "UPDATE jobs SET visible_at = ?2, attempts = MAX(attempts - 1, 0) WHERE id = ?1",
                        params![id, ts(at)],
                    )
                    .map_err(db)?;
                Ok(changed == 1)
            })
            .await
    }

    /// Moves a job to the dead letters at once (it can never succeed as is).
    pub async fn dead_letter(&self, id: i64, now: DateTime<Utc>, error: &str) -> Result<bool, PortError> {
        let error = error.to_owned();
        self.db
            .call(move |conn| {
                let tx = immediate(conn)?;
                let moved = move_to_dead_letters(&tx, id, &error, &ts(now))?;
                tx.commit().map_err(db)?;
                Ok(moved)
            })
            .await
    }

    /// The queue's dead letters, oldest first.
    pub async fn dead_letters(&self, queue: QueueName) -> Result<Vec<DeadLetter>, PortError> {
        self.db
            .call(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT id, message_id, body, attempts, last_error, enqueued_at, failed_at FROM dead_letters WHERE queue = ?1 ORDER BY id",
                    )
                    .map_err(db)?;
                let rows = stmt
                    .query_map([queue.as_str()], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, String>(5)?, r.get::<_, String>(6)?))
                    })
                    .map_err(db)?;
                rows.map(|row| {
                    let (id, message_id, body, attempts, last_error, enqueued_at, failed_at) = row.map_err(db)?;
                    Ok(DeadLetter {
                        id,
                        queue,
                        message_id,
                        body,
                        attempts,
                        last_error,
                        enqueued_at: parse_ts(&enqueued_at)?,
                        failed_at: parse_ts(&failed_at)?,
                    })
                })
                .collect()
            })
            .await
    }

    /// Moves every dead letter of `queue` back onto it, visible at `now`, with
    /// a fresh set of attempts. Returns how many were moved.
    pub async fn redrive(&self, queue: QueueName, now: DateTime<Utc>) -> Result<usize, PortError> {
        let now = ts(now);
        let moved = self
            .db
            .call(move |conn| {
                let tx = immediate(conn)?;
                let moved = tx
                    .execute_cached(
                        "INSERT INTO jobs (id, queue, message_id, body, attempts, visible_at, last_error, enqueued_at)
                         SELECT id, queue, message_id, body, 0, ?2, last_error, enqueued_at FROM dead_letters WHERE queue = ?1",
                        params![queue.as_str(), now],
                    )
                    .map_err(db)?;
                tx.execute_cached("DELETE FROM dead_letters WHERE queue = ?1", [queue.as_str()]).map_err(db)?;
                tx.commit().map_err(db)?;
                Ok(moved)
            })
            .await?;
        if moved > 0 {
            tracing::info!(queue = queue.as_str(), moved, "dead letters redriven");
            self.signals[index(queue)].notify_one();
        }
        Ok(moved)
    }

    /// When the next job of `queue` becomes visible (`None`: the queue is empty).
    pub async fn next_visible_at(&self, queue: QueueName) -> Result<Option<DateTime<Utc>>, PortError> {
        self.db
            .call(move |conn| {
                let next: Option<String> = conn
                    .query_row_cached("SELECT MIN(visible_at) FROM jobs WHERE queue = ?1", [queue.as_str()], |r| {
                        r.get(0)
                    })
                    .map_err(db)?;
                next.map(|t| parse_ts(&t)).transpose()
            })
            .await
    }

    pub async fn stats(&self, queue: QueueName, now: DateTime<Utc>) -> Result<QueueStats, PortError> {
        let now = ts(now);
        self.db
            .call(move |conn| {
                let count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<usize, PortError> {
                    conn.query_row_cached(sql, p, |r| r.get::<_, i64>(0)).map(|n| n.max(0) as usize).map_err(db)
                };
                Ok(QueueStats {
                    ready: count(
                        "SELECT COUNT(*) FROM jobs WHERE queue = ?1 AND visible_at <= ?2",
                        &[&queue.as_str(), &now],
                    )?,
                    delayed: count(
                        "SELECT COUNT(*) FROM jobs WHERE queue = ?1 AND visible_at > ?2",
                        &[&queue.as_str(), &now],
                    )?,
                    dead: count("SELECT COUNT(*) FROM dead_letters WHERE queue = ?1", &[&queue.as_str()])?,
                })
            })
            .await
    }
}

fn move_to_dead_letters(tx: &Transaction, id: i64, error: &str, now: &str) -> Result<bool, PortError> {
    let moved = tx
        .execute_cached(
            "INSERT INTO dead_letters (id, queue, message_id, body, attempts, last_error, enqueued_at, failed_at)
             SELECT id, queue, message_id, body, attempts, ?2, enqueued_at, ?3 FROM jobs WHERE id = ?1",
            params![id, error, now],
        )
        .map_err(db)?;
    tx.execute_cached("DELETE FROM jobs WHERE id = ?1", [id]).map_err(db)?;
    if moved == 1 {
        // The error text may quote a recipient: it stays in the table, not the log.
        tracing::warn!(job_id = id, "job moved to the dead letters");
    }
    Ok(moved == 1)
}

#[async_trait]
impl JobQueue for SqliteQueue {
    /// Queues the job: visible at once when its message record exists, else
    /// when the record is written (`create_message` shows it and wakes the
    /// worker), so a sender never finds a job without its record and waits
    /// for a retry (issue 17: 2.6% of deliveries did). A checker that died
    /// between the two writes leaves the job visible after
    /// [`RECORD_WAIT_SECONDS`]; the sender then retries it as before. A job
    /// for a message that is already waiting on the queue is not added twice
    /// (a checker retrying after a write conflict re-enqueues); the message
    /// claim makes repeats harmless anyway.
    async fn enqueue(&self, job: &MessageJob) -> Result<(), PortError> {
        let queue = job.channel.queue();
        let body = to_json("job", job)?;
        let now = self.db.clock().now();
        let (message_id, now, later) =
            (job.message_id.to_string(), ts(now), ts(now + Duration::seconds(RECORD_WAIT_SECONDS)));
        let visible = self
            .db
            .call(move |conn| {
                let recorded: bool = conn
                    .query_row_cached("SELECT EXISTS (SELECT 1 FROM messages WHERE message_id = ?1)", [&message_id], |r| r.get(0))
                    .map_err(db)?;
                conn.execute_cached(
                    "INSERT INTO jobs (queue, message_id, body, attempts, visible_at, enqueued_at)
                     SELECT ?1, ?2, ?3, 0, ?4, ?5 WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE message_id = ?2 AND queue = ?1)",
                    params![queue.as_str(), message_id, body, if recorded { &now } else { &later }, now],
                )
                .map_err(db)?;
                Ok(recorded)
            })
            .await?;
        if visible {
            self.signals[index(queue)].notify_one();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ManualClock;
    use cartback_core::ids::CustomerKey;
    use cartback_core::message::{Channel, MessageRecord, MessageStatus, Outgoing};
    use cartback_core::ports::MessageStore;
    use rand::SeedableRng;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const T0: &str = "2026-11-23T10:00:00Z";

    fn job(id: &str, channel: Channel) -> MessageJob {
        let outgoing = match channel {
            Channel::Sms => Outgoing::Sms { to: "+33612345678".into(), body: "hi".into() },
            _ => Outgoing::Email {
                to: "ana@example.com".into(),
                subject: "s".into(),
                text: "t".into(),
                html: "<p>h</p>".into(),
                unsubscribe: None,
            },
        };
        MessageJob { message_id: id.into(), cart_id: "c1".into(), channel, outgoing, voucher: None }
    }

    /// Queues `job` after its message record, the way the sender finds it.
    async fn recorded(q: &SqliteQueue, job: &MessageJob) {
        let guest = CustomerKey::Guest(job.cart_id.clone());
        let record = MessageRecord::decided(&job.cart_id, &guest, "c", 0, job.channel, at(T0), MessageStatus::Queued);
        q.db.create_message(&MessageRecord { message_id: job.message_id.clone(), ..record }).await.unwrap();
        q.enqueue(job).await.unwrap();
    }

    /// GIVEN a job queued before its message record (the checker queues
    /// first) WHEN received THEN the sender is not given it; WHEN the record
    /// is written THEN its worker is woken and the job is served.
    #[tokio::test]
    async fn given_a_job_queued_before_its_record_when_the_record_is_written_then_the_job_is_served_and_its_worker_woken(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let q = open_at(dir.path(), no_jitter());
        let signal = q.enqueued_signal(QueueName::Email);
        let job = job("m1", Channel::Email);
        q.enqueue(&job).await.unwrap();
        assert_eq!(q.receive(QueueName::Email, at(T0), Duration::seconds(60)).await.unwrap(), None);

        let guest = CustomerKey::Guest(job.cart_id.clone());
        let record = MessageRecord::decided(&job.cart_id, &guest, "c", 0, job.channel, at(T0), MessageStatus::Queued);
        q.db.create_message(&MessageRecord { message_id: job.message_id.clone(), ..record }).await.unwrap();

        tokio::time::timeout(std::time::Duration::from_secs(10), signal.notified()).await.expect("the worker is woken");
        let got = q.receive(QueueName::Email, at(T0), Duration::seconds(60)).await.unwrap().expect("served");
        assert_eq!((got.job.message_id.as_str(), got.attempts), ("m1", 1));
    }

    /// GIVEN a job whose checker died before writing its record WHEN the
    /// record wait passes THEN the job is served (the sender retries it).
    #[tokio::test]
    async fn given_a_job_whose_record_never_comes_when_the_record_wait_passes_then_the_job_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let q = open_at(dir.path(), no_jitter());
        q.enqueue(&job("m1", Channel::Email)).await.unwrap();
        let wait = Duration::seconds(RECORD_WAIT_SECONDS);
        let early = at(T0) + wait - Duration::seconds(1);
        assert_eq!(q.receive(QueueName::Email, early, Duration::seconds(60)).await.unwrap(), None);
        assert_eq!(q.next_visible_at(QueueName::Email).await.unwrap(), Some(at(T0) + wait));
        assert!(q.receive(QueueName::Email, at(T0) + wait, Duration::seconds(60)).await.unwrap().is_some());
    }

    fn open_at(dir: &std::path::Path, policy: RetryPolicy) -> SqliteQueue {
        let db = Database::open(dir).unwrap().with_clock(Arc::new(ManualClock::new(at(T0))));
        SqliteQueue::new(db).with_policy(policy)
    }

    fn no_jitter() -> RetryPolicy {
        RetryPolicy { jitter: false, ..RetryPolicy::default() }
    }

    #[test]
    fn given_the_default_policy_when_failures_repeat_then_the_backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let secs: Vec<i64> = (1..=9).map(|n| p.backoff(n).num_seconds()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 320, 640, 900, 900]);
        assert_eq!(p.backoff(u32::MAX), p.max_delay, "no overflow");
    }

    #[test]
    fn given_jitter_when_delays_are_drawn_then_they_stay_within_half_to_full_backoff_and_vary() {
        let p = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let draws: Vec<Duration> = (0..200).map(|_| p.delay(3, &mut rng)).collect();
        assert!(draws.iter().all(|d| *d >= Duration::seconds(20) && *d <= Duration::seconds(40)), "{draws:?}");
        assert!(draws.iter().any(|d| *d != draws[0]), "jitter varies the delay");
    }

    #[tokio::test]
    async fn given_a_queued_job_when_received_then_it_is_hidden_for_the_visibility_timeout_then_reappears() {
        let dir = tempfile::tempdir().unwrap();
        let q = open_at(dir.path(), no_jitter());
        recorded(&q, &job("m1", Channel::Email)).await;
        let now = at(T0);
        let got = q.receive(QueueName::Email, now, Duration::seconds(60)).await.unwrap().unwrap();
        assert_eq!((got.job.message_id.as_str(), got.attempts, got.queue), ("m1", 1, QueueName::Email));
        assert_eq!(
            q.receive(QueueName::Email, now + Duration::seconds(59), Duration::seconds(60)).await.unwrap(),
            None
        );
        assert_eq!(
            q.receive(QueueName::Sms, now + Duration::seconds(61), Duration::seconds(60)).await.unwrap(),
            None,
            "queues are separate"
        );
        let again =
            q.receive(QueueName::Email, now + Duration::seconds(60), Duration::seconds(60)).await.unwrap().unwrap();
        assert_eq!((again.id, again.attempts), (got.id, 2));
        assert!(q.ack(again.id).await.unwrap());
        assert_eq!(q.next_visible_at(QueueName::Email).await.unwrap(), None);
    }

    #[tokio::test]
    async fn given_the_same_message_enqueued_twice_when_received_then_one_job_is_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let q = open_at(dir.path(), no_jitter());
        recorded(&q, &job("m1", Channel::Email)).await;
        recorded(&q, &job("m1", Channel::Email)).await;
        assert_eq!(q.stats(QueueName::Email, at(T0)).await.unwrap(), QueueStats { ready: 1, delayed: 0, dead: 0 });
    }

    #[tokio::test]
    async fn given_a_job_whose_message_another_sender_holds_when_postponed_then_it_hides_until_then_and_keeps_its_attempts(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let q = open_at(dir.path(), RetryPolicy { max_attempts: 3, ..no_jitter() });
        let now = at(T0);
        recorded(&q, &job("m1", Channel::Email)).await;
        for _ in 0..10 {
            let got = q.receive(QueueName::Email, now, Duration::seconds(30)).await.unwrap().expect("visible");
            assert_eq!(got.attempts, 1, "a postponed delivery is not an attempt");
            assert!(q.postpone(got.id, now).await.unwrap());
        }
        let got = q.receive(QueueName::Email, now, Duration::seconds(30)).await.unwrap().expect("visible");
        assert!(q.postpone(got.id, now + Duration::minutes(5)).await.unwrap());
        assert!(q
            .receive(QueueName::Email, now + Duration::minutes(4), Duration::seconds(30))
            .await
            .unwrap()
            .is_none());
        assert!(q
            .receive(QueueName::Email, now + Duration::minutes(5), Duration::seconds(30))
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn given_a_failing_job_when_retried_then_it_backs_off_exponentially_and_dead_letters_after_max_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let q = open_at(dir.path(), RetryPolicy { max_attempts: 3, ..no_jitter() });
        recorded(&q, &job("m1", Channel::Sms)).await;
        let mut now = at(T0);
        let mut waits = Vec::new();
        loop {
            let got = q.receive(QueueName::Sms, now, Duration::seconds(30)).await.unwrap().expect("job visible");
            match q.retry(got.id, now, &format!("provider down #{}", got.attempts)).await.unwrap() {
                RetryOutcome::Scheduled { at } => {
                    waits.push((at - now).num_seconds());
                    assert_eq!(
                        q.receive(QueueName::Sms, at - Duration::milliseconds(1), Duration::seconds(30)).await.unwrap(),
                        None
                    );
                    now = at;
                }
                RetryOutcome::DeadLettered => break,
                RetryOutcome::NotFound => panic!("job vanished"),
            }
        }
        assert_eq!(waits, [10, 20]);
        let dead = q.dead_letters(QueueName::Sms).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].attempts, dead[0].last_error.as_str()), (3, "provider down #3"));
        assert_eq!(dead[0].job().unwrap(), job("m1", Channel::Sms));
        assert_eq!(q.receive(QueueName::Sms, now + Duration::days(1), Duration::seconds(30)).await.unwrap(), None);
        assert_eq!(q.stats(QueueName::Sms, now).await.unwrap(), QueueStats { ready: 0, delayed: 0, dead: 1 });
    }

    #[tokio::test]
    async fn given_dead_letters_when_redriven_then_they_are_delivered_again_with_fresh_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let q = open_at(dir.path(), RetryPolicy { max_attempts: 1, ..no_jitter() });
        recorded(&q, &job("m1", Channel::Email)).await;
        let now = at(T0);
        let got = q.receive(QueueName::Email, now, Duration::seconds(30)).await.unwrap().unwrap();
        assert_eq!(q.retry(got.id, now, "boom").await.unwrap(), RetryOutcome::DeadLettered);
        assert_eq!(q.redrive(QueueName::Sms, now).await.unwrap(), 0, "only the named queue");
        assert_eq!(q.redrive(QueueName::Email, now).await.unwrap(), 1);
        assert!(q.dead_letters(QueueName::Email).await.unwrap().is_empty());
        let again = q.receive(QueueName::Email, now, Duration::seconds(30)).await.unwrap().unwrap();
        assert_eq!((again.id, again.attempts, again.last_error.as_deref()), (got.id, 1, Some("boom")));
        assert_eq!(again.job, job("m1", Channel::Email));
    }

    #[tokio::test]
    async fn given_a_job_that_kills_its_worker_every_time_when_received_past_max_attempts_then_it_is_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        let q = open_at(dir.path(), RetryPolicy { max_attempts: 2, ..no_jitter() });
        recorded(&q, &job("m1", Channel::Email)).await;
        let mut now = at(T0);
        for _ in 0..2 {
            assert!(q.receive(QueueName::Email, now, Duration::seconds(30)).await.unwrap().is_some());
            now += Duration::seconds(31); // the worker died: never acked
        }
        assert_eq!(q.receive(QueueName::Email, now, Duration::seconds(30)).await.unwrap(), None);
        let dead = q.dead_letters(QueueName::Email).await.unwrap();
        assert!(dead[0].last_error.contains("without being acknowledged"), "{}", dead[0].last_error);
    }

    #[tokio::test]
    async fn given_an_unreadable_job_when_received_then_it_is_dead_lettered_and_the_next_job_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let q = open_at(dir.path(), no_jitter());
        q.db.call(|c| {
            c.execute("INSERT INTO jobs (queue, body, visible_at, enqueued_at) VALUES ('email', '{broken', '2000-01-01T00:00:00.000000000Z', '2000-01-01T00:00:00.000000000Z')", [])
                .map_err(db)
        })
        .await
        .unwrap();
        recorded(&q, &job("m2", Channel::Email)).await;
        let got = q.receive(QueueName::Email, at(T0), Duration::seconds(30)).await.unwrap().unwrap();
        assert_eq!(got.job.message_id, "m2");
        assert_eq!(q.dead_letters(QueueName::Email).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn given_queued_retrying_and_dead_jobs_when_the_process_restarts_then_none_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let now = at(T0);
        {
            let q = open_at(dir.path(), RetryPolicy { max_attempts: 1, ..no_jitter() });
            recorded(&q, &job("dead", Channel::Email)).await;
            let got = q.receive(QueueName::Email, now, Duration::seconds(30)).await.unwrap().unwrap();
            q.retry(got.id, now, "boom").await.unwrap();
            recorded(&q, &job("inflight", Channel::Email)).await;
            q.receive(QueueName::Email, now, Duration::seconds(30)).await.unwrap().unwrap();
            recorded(&q, &job("queued", Channel::Sms)).await;
        }
        let q = open_at(dir.path(), no_jitter());
        assert_eq!(q.dead_letters(QueueName::Email).await.unwrap()[0].message_id.as_deref(), Some("dead"));
        assert_eq!(
            q.receive(QueueName::Sms, now, Duration::seconds(30)).await.unwrap().unwrap().job.message_id,
            "queued"
        );
        let later = now + Duration::seconds(30);
        assert_eq!(
            q.receive(QueueName::Email, later, Duration::seconds(30)).await.unwrap().unwrap().job.message_id,
            "inflight"
        );
    }
}
