//! `cartback queue`: an operator sees dead letters with their error and
//! moves them back onto the queue.

use std::process::Command;

use cartback_core::ids::CustomerKey;
use cartback_core::message::{Channel, MessageJob, MessageRecord, MessageStatus, Outgoing, QueueName};
use cartback_core::ports::{JobQueue, MessageStore};
use cartback_local::{Database, SqliteQueue};

fn cartback(data: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cartback")).args(args).arg("--data").arg(data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn given_a_dead_letter_when_the_operator_lists_and_redrives_it_then_it_is_queued_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let queue = SqliteQueue::new(db.clone());
    let job = MessageJob {
        message_id: "m_dead".into(),
        cart_id: "c1".into(),
        channel: Channel::Email,
        outgoing: Outgoing::Email {
            to: "a@example.com".into(),
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
            unsubscribe: None,
        },
        voucher: None,
    };
    // The record first, as the sender finds it (a job waits for its record).
    let guest = CustomerKey::Guest(job.cart_id.clone());
    let decided = chrono::Utc::now();
    let record = MessageRecord::decided(&job.cart_id, &guest, "c", 0, job.channel, decided, MessageStatus::Queued);
    db.create_message(&MessageRecord { message_id: job.message_id.clone(), ..record }).await.unwrap();
    queue.enqueue(&job).await.unwrap();
    let now = chrono::Utc::now();
    let received = queue.receive(QueueName::Email, now, chrono::Duration::minutes(5)).await.unwrap().unwrap();
    assert!(queue.dead_letter(received.id, now, "provider said no (test)").await.unwrap());

    let listed = cartback(dir.path(), &["queue", "dead-letters", "email"]);
    assert!(listed.contains("m_dead") && listed.contains("provider said no (test)"), "{listed}");
    assert!(cartback(dir.path(), &["queue", "stats"])
        .lines()
        .any(|l| l.starts_with("email") && l.trim_end().ends_with('1')));

    assert!(cartback(dir.path(), &["queue", "redrive", "email"]).starts_with("1 job(s) moved back"));
    assert_eq!(cartback(dir.path(), &["queue", "dead-letters", "email"]).trim(), "no dead letters");
    let back = queue.receive(QueueName::Email, chrono::Utc::now(), chrono::Duration::minutes(5)).await.unwrap();
    assert_eq!(back.map(|j| j.job.message_id).as_deref(), Some("m_dead"));
}
