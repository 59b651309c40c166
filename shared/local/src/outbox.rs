//! The outbox: where the local runtime "sends" messages instead of calling
//! providers, so a newcomer can read exactly what a customer would receive.
//!
//! - email: `DIR/outbox/email/<message_id>.eml`, the complete RFC 5322 MIME
//!   message (`render::mime`: multipart/alternative text + HTML), written
//!   atomically: a temporary file, fsync, then a hard link to the final name
//!   that fails if the name exists (never a replace), and a directory fsync;
//! - SMS: one JSON line per message appended to `DIR/outbox/sms.jsonl`:
//!   `{"message_id", "to", "body", "segments", "encoding", "at"}` (the
//!   segments a carrier would bill, `gsm7` or `ucs2`: `cartback_core::sms`);
//! - push and web push: one JSON line per message in `DIR/outbox/push.jsonl`
//!   (`{"message_id", "kind": "push" | "web_push", ..., "at"}`). With a web
//!   push sender ([`OutboxSender::with_web_push`], what `cartback dev` does)
//!   a web push is really posted to the subscription's endpoint first, and
//!   its line keeps the request as sent (`request`: url, headers, the
//!   encrypted body in base64) beside the `plaintext` for the developer;
//!   without one, the line only records the message.
//!
//! The provider message id returned is `outbox-<message_id>`.
//!
//! Exactly once: a message whose file (or line) exists is never written
//! again; [`Sender::send`] answers its provider id without writing, and
//! [`Sender::prior_attempt`] tells the delivery service that a message whose
//! sender crashed before recording it did go out, so it is recorded as sent
//! instead of being repeated. [`Outbox::recover`] (run at start) removes the
//! temporary files and the torn last line a crash mid-write can leave.
//!
//! Permanent failures, so the rejection path can be exercised locally: the
//! outbox refuses for good ([`SendError::Permanent`]) an email to a domain
//! under the TLD `invalid` (reserved by RFC 2606 never to exist, e.g.
//! `x@bounce.invalid` or `x@invalid`) or an address that does not parse; an
//! SMS to anything that is not a valid E.164 number; a push without a device
//! token; a web push without a subscription. A failure to write the file
//! (disk full, permissions) is [`SendError::Retryable`].

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use cartback_core::contact::normalise_e164;
use cartback_core::message::{MessageJob, Outgoing};
use cartback_core::ports::{PriorAttempt, SendError, Sender};
use cartback_core::render;
use cartback_core::webhook::CART_ABANDONED_REMINDER;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::clock::sync_dir;
use crate::sqlite::LocalError;

/// The outbox folder inside the data folder.
pub const OUTBOX_DIR: &str = "outbox";

/// The outbox folder and what writes to it.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
    /// Held while a line is appended or a line file is rewritten by
    /// [`Outbox::erase`], so an erasure never drops a line written meanwhile.
    line_files: Arc<Mutex<()>>,
}

impl Outbox {
    /// Uses (creating them) `data_dir/outbox` and `data_dir/outbox/email`.
    pub fn new(data_dir: impl AsRef<Path>) -> Result<Outbox, LocalError> {
        let dir = data_dir.as_ref().join(OUTBOX_DIR);
        let email = dir.join("email");
        fs::create_dir_all(&email).map_err(|source| LocalError::Io { path: email, source })?;
        Ok(Outbox::existing(data_dir))
    }

    /// The outbox of `data_dir` without creating anything (an operator
    /// command that only removes copies, if there are any).
    pub fn existing(data_dir: impl AsRef<Path>) -> Outbox {
        Outbox { dir: data_dir.as_ref().join(OUTBOX_DIR), line_files: Arc::new(Mutex::new(())) }
    }

    /// Removes the copies of these messages (a customer's erasure): their
    /// `.eml` files, and their lines in `sms.jsonl`, `push.jsonl` and `webhook.jsonl` (each
    /// file rewritten through a temporary file and a rename, so a crash
    /// leaves the old or the new file). Answers how many copies went.
    pub fn erase(&self, message_ids: &HashSet<String>) -> std::io::Result<usize> {
        let mut removed = 0;
        for id in message_ids {
            match fs::remove_file(self.email_path(id)) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let _lines = self.line_files.lock().unwrap_or_else(PoisonError::into_inner);
        for path in [self.sms_path(), self.push_path(), self.webhook_path()] {
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let names_erased = |line: &str| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("message_id").and_then(|id| id.as_str()).map(|id| message_ids.contains(id)))
                    .unwrap_or(false)
            };
            let kept: Vec<&str> = text.lines().filter(|line| !names_erased(line)).collect();
            let gone = text.lines().count() - kept.len();
            if gone == 0 {
                continue;
            }
            let mut new_text = kept.join("\n");
            if !new_text.is_empty() {
                new_text.push('\n');
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("lines");
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = self.dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
            let mut file = File::create(&tmp)?;
            file.write_all(new_text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            sync_dir(&self.dir)?;
            removed += gone;
        }
        Ok(removed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where an email's `.eml` file goes.
    pub fn email_path(&self, message_id: &str) -> PathBuf {
        self.dir.join("email").join(format!("{}.eml", file_stem(message_id)))
    }

    pub fn sms_path(&self) -> PathBuf {
        self.dir.join("sms.jsonl")
    }

    pub fn push_path(&self) -> PathBuf {
        self.dir.join("push.jsonl")
    }

    /// The readable copies of webhook deliveries: the target, the event and
    /// the contact fields the target was allowed to see.
    pub fn webhook_path(&self) -> PathBuf {
        self.dir.join("webhook.jsonl")
    }

    /// A [`Sender`] for every channel (email, SMS, push, web push): the local
    /// runtime gives one to each channel queue's worker.
    pub fn sender(&self, from: &str) -> OutboxSender {
        OutboxSender {
            outbox: self.clone(),
            from: from.to_owned(),
            lines: Arc::new(Mutex::new(LineIndex::default())),
            web_push: None,
        }
    }

    /// Cleans what a crash mid-write leaves: temporary files (never a
    /// message: a message exists once its final name does) and a torn last
    /// line of `sms.jsonl` / `push.jsonl` (an append cut short). Run it at
    /// start, before any sender writes.
    pub fn recover(&self) -> Result<Recovery, LocalError> {
        let io = |path: &Path, source| LocalError::Io { path: path.to_owned(), source };
        let mut recovery = Recovery::default();
        for dir in [self.dir.clone(), self.dir.join("email")] {
            for entry in fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
                let path = entry.map_err(|e| io(&dir, e))?.path();
                if is_temp_file(&path) {
                    fs::remove_file(&path).map_err(|e| io(&path, e))?;
                    recovery.temp_files_removed += 1;
                }
            }
        }
        for path in [self.sms_path(), self.push_path()] {
            recovery.torn_lines_removed += usize::from(cut_torn_tail(&path).map_err(|e| io(&path, e))?);
        }
        if recovery != Recovery::default() {
            tracing::warn!(?recovery, "cleaned the outbox after an interrupted write");
        }
        Ok(recovery)
    }
}

/// What [`Outbox::recover`] cleaned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    pub temp_files_removed: usize,
    pub torn_lines_removed: usize,
}

/// Temporary files are hidden and end in `.tmp`: `.<name>.<pid>.<n>.tmp`.
fn is_temp_file(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"))
}

/// Cuts a last line that has no newline (an append a crash cut short).
/// True when something was cut.
fn cut_torn_tail(path: &Path) -> std::io::Result<bool> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    if bytes.last().is_none_or(|b| *b == b'\n') {
        return Ok(false);
    }
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    file.set_len(keep as u64)?;
    file.seek(SeekFrom::End(0))?;
    file.sync_all()?;
    Ok(true)
}

/// The message ids already in each JSON-lines file, read once on first use.
#[derive(Debug, Default)]
struct LineIndex {
    files: std::collections::HashMap<PathBuf, HashSet<String>>,
}

impl LineIndex {
    /// The ids in `path` (the file is repaired first if its last line is torn).
    fn ids(&mut self, path: &Path) -> std::io::Result<&mut HashSet<String>> {
        if !self.files.contains_key(path) {
            cut_torn_tail(path)?;
            let text = match fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
                Err(e) => return Err(e),
            };
            let ids = text
                .lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .filter_map(|value| value.get("message_id").and_then(|id| id.as_str()).map(str::to_owned))
                .collect();
            self.files.insert(path.to_owned(), ids);
        }
        Ok(self.files.get_mut(path).expect("inserted above"))
    }
}

/// Message ids are `m_<hex>`; anything else is made safe for a file name.
fn file_stem(message_id: &str) -> String {
    let stem: String =
        message_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if stem.is_empty() {
        "_".into()
    } else {
        stem
    }
}

/// Writes every channel's messages into the outbox.
#[derive(Debug, Clone)]
pub struct OutboxSender {
    outbox: Outbox,
    /// The `From:` of emails, e.g. `Shop <shop@example.com>`.
    from: String,
    /// Serialises appends (JSON lines never interleave) and remembers which
    /// messages each file already holds.
    lines: Arc<Mutex<LineIndex>>,
    /// Posts web push to the subscription's push service before the line
    /// is written; `None`: web push is only written down.
    web_push: Option<cartback_webpush::WebPushSender>,
}

/// True for an email domain under the reserved TLD `invalid` (RFC 2606).
fn reserved_invalid(email: &str) -> bool {
    let domain = email.rsplit_once('@').map_or("", |(_, d)| d).trim_end_matches('>').trim().to_ascii_lowercase();
    domain == "invalid" || domain.ends_with(".invalid")
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whether a write put the message in the outbox or found it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    New,
    AlreadyThere,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Publishes `bytes` at `path` unless a file is there: temporary file, fsync,
/// hard link to the final name (which fails rather than replace), directory
/// fsync. A reader, or a crash, sees the whole message or none of it.
fn write_once(path: &Path, bytes: &[u8]) -> std::io::Result<Written> {
    if path.exists() {
        return Ok(Written::AlreadyThere);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("message");
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        let written = match fs::hard_link(&tmp, path) {
            Ok(()) => Written::New,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Written::AlreadyThere,
            Err(e) => return Err(e),
        };
        fs::remove_file(&tmp)?;
        sync_dir(dir)?;
        Ok(written)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Appends the line unless the file already holds a line for `message_id`.
fn append_once(
    index: &Mutex<LineIndex>,
    path: &Path,
    message_id: &str,
    line: &serde_json::Value,
) -> std::io::Result<Written> {
    let mut text = line.to_string();
    text.push('\n');
    let mut index = index.lock().unwrap_or_else(PoisonError::into_inner);
    let ids = index.ids(path)?;
    if ids.contains(message_id) {
        return Ok(Written::AlreadyThere);
    }
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let before = file.metadata()?.len();
    // One write call: a crash leaves the line whole or torn, and a torn last
    // line is cut at the next start (it was never delivered). A write that
    // fails without a crash is cut back here, so the retry appends whole.
    if let Err(error) = file.write_all(text.as_bytes()) {
        file.set_len(before)?;
        return Err(error);
    }
    // Written: a failed sync below must not make a retry append it again.
    ids.insert(message_id.to_owned());
    file.sync_data()?;
    Ok(Written::New)
}

impl OutboxSender {
    /// Web push jobs are really sent by `web_push`, then written down.
    pub fn with_web_push(mut self, web_push: cartback_webpush::WebPushSender) -> OutboxSender {
        self.web_push = Some(web_push);
        self
    }

    /// Posts a web push job and appends its line: the request as sent and
    /// the plaintext. A failed post writes nothing (its error decides).
    async fn post_web_push(
        &self,
        web_push: &cartback_webpush::WebPushSender,
        job: &MessageJob,
        now: DateTime<Utc>,
    ) -> Result<Written, SendError> {
        if self.holds_line(&self.outbox.push_path(), &job.message_id).unwrap_or(false) {
            return Ok(Written::AlreadyThere);
        }
        let sent = web_push.deliver(job).await?;
        let line = json!({ "message_id": job.message_id, "kind": "web_push", "request": sent.request.to_json(),
                           "plaintext": cartback_webpush::payload(job), "location": sent.location, "at": rfc3339(now) });
        let (sender, id) = (self.clone(), job.message_id.to_string());
        tokio::task::spawn_blocking(move || {
            let _lines = sender.outbox.line_files.lock().unwrap_or_else(PoisonError::into_inner);
            append_once(&sender.lines, &sender.outbox.push_path(), &id, &line)
        })
        .await
        .map_err(|e| SendError::Retryable(format!("outbox task failed: {e}")))?
        // Posted: a retry would push it twice, so the line's fate is not the message's.
        .or_else(|e| {
            tracing::warn!(message_id = %job.message_id, error = %e, "web push sent but not written to the outbox");
            Ok(Written::New)
        })
    }

    /// Validates and writes synchronously (run on the blocking pool by `send`).
    fn write(&self, job: &MessageJob, now: DateTime<Utc>) -> Result<Written, SendError> {
        let retryable =
            |what: &str, e: std::io::Error| SendError::Retryable(format!("cannot write the {what} outbox: {e}"));
        let id = &job.message_id;
        match &job.outgoing {
            Outgoing::Email { to, .. } => {
                if reserved_invalid(to.expose()) {
                    return Err(SendError::Permanent(
                        "recipient domain does not exist (reserved .invalid TLD, RFC 2606)".into(),
                    ));
                }
                let bytes = render::mime(&job.outgoing, &self.from, id, now)
                    .map_err(|e| SendError::Permanent(e.to_string()))?;
                write_once(&self.outbox.email_path(id), &bytes).map_err(|e| retryable("email", e))
            }
            Outgoing::Sms { to, body } => {
                if normalise_e164(to.expose()).is_none() {
                    return Err(SendError::Permanent("not a valid E.164 phone number".into()));
                }
                let counted = cartback_core::sms::segments(body);
                let line = json!({ "message_id": id, "to": to, "body": body, "segments": counted.segments, "encoding": counted.encoding, "at": rfc3339(now) });
                let _lines = self.outbox.line_files.lock().unwrap_or_else(PoisonError::into_inner);
                append_once(&self.lines, &self.outbox.sms_path(), id, &line).map_err(|e| retryable("SMS", e))
            }
            Outgoing::Push { platform, token, title, body, url } => {
                if token.expose().trim().is_empty() {
                    return Err(SendError::Permanent("no device token".into()));
                }
                let line = json!({ "message_id": id, "kind": "push", "platform": platform, "token": token, "title": title, "body": body, "url": url, "at": rfc3339(now) });
                let _lines = self.outbox.line_files.lock().unwrap_or_else(PoisonError::into_inner);
                append_once(&self.lines, &self.outbox.push_path(), id, &line).map_err(|e| retryable("push", e))
            }
            Outgoing::WebPush { subscription, title, body, url } => {
                let endpoint = subscription.expose().get("endpoint").and_then(|e| e.as_str()).unwrap_or_default();
                if endpoint.trim().is_empty() {
                    return Err(SendError::Permanent("no web push subscription endpoint".into()));
                }
                let line = json!({ "message_id": id, "kind": "web_push", "subscription": subscription, "title": title, "body": body, "url": url, "at": rfc3339(now) });
                let _lines = self.outbox.line_files.lock().unwrap_or_else(PoisonError::into_inner);
                append_once(&self.lines, &self.outbox.push_path(), id, &line).map_err(|e| retryable("push", e))
            }
            // The copy of a delivery the webhook sender made (it passes the
            // job on with only the contact fields the target saw).
            Outgoing::Webhook { target, event, contact } => {
                let line = json!({ "message_id": id, "kind": "webhook", "target": target, "type": CART_ABANDONED_REMINDER, "data": event, "contact": contact, "at": rfc3339(now) });
                let _lines = self.outbox.line_files.lock().unwrap_or_else(PoisonError::into_inner);
                append_once(&self.lines, &self.outbox.webhook_path(), id, &line).map_err(|e| retryable("webhook", e))
            }
        }
    }
}

impl OutboxSender {
    /// Whether the outbox already holds the message (synchronous).
    fn holds(&self, job: &MessageJob) -> std::io::Result<bool> {
        match &job.outgoing {
            Outgoing::Email { .. } => Ok(self.outbox.email_path(&job.message_id).exists()),
            Outgoing::Sms { .. } => self.holds_line(&self.outbox.sms_path(), &job.message_id),
            Outgoing::Push { .. } | Outgoing::WebPush { .. } => {
                self.holds_line(&self.outbox.push_path(), &job.message_id)
            }
            Outgoing::Webhook { .. } => self.holds_line(&self.outbox.webhook_path(), &job.message_id),
        }
    }

    fn holds_line(&self, path: &Path, message_id: &str) -> std::io::Result<bool> {
        let mut index = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(index.ids(path)?.contains(message_id))
    }
}

fn provider_id(job: &MessageJob) -> String {
    format!("outbox-{}", job.message_id)
}

#[async_trait]
impl Sender for OutboxSender {
    async fn send(&self, job: &MessageJob, now: DateTime<Utc>) -> Result<String, SendError> {
        let written = match (&job.outgoing, &self.web_push) {
            (Outgoing::WebPush { .. }, Some(web_push)) => self.post_web_push(web_push, job, now).await?,
            _ => {
                let (sender, owned) = (self.clone(), job.clone());
                tokio::task::spawn_blocking(move || sender.write(&owned, now))
                    .await
                    .map_err(|e| SendError::Retryable(format!("outbox task failed: {e}")))??
            }
        };
        let (message_id, channel) = (&job.message_id, job.channel.as_str());
        match written {
            Written::New => tracing::debug!(%message_id, channel, "written to the outbox"),
            Written::AlreadyThere => tracing::info!(%message_id, channel, "already in the outbox: not written again"),
        }
        Ok(provider_id(job))
    }

    /// The outbox is its own record of delivery: the message is there or not.
    async fn prior_attempt(&self, job: &MessageJob) -> Result<PriorAttempt, SendError> {
        let (sender, owned) = (self.clone(), job.clone());
        let holds = tokio::task::spawn_blocking(move || sender.holds(&owned))
            .await
            .map_err(|e| SendError::Retryable(format!("outbox task failed: {e}")))?
            .map_err(|e| SendError::Retryable(format!("cannot read the outbox: {e}")))?;
        if holds {
            Ok(PriorAttempt::Delivered { provider_message_id: provider_id(job) })
        } else {
            Ok(PriorAttempt::NotDelivered)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartback_core::event::PushPlatform;
    use cartback_core::message::Channel;

    fn now() -> DateTime<Utc> {
        "2026-11-23T10:30:00Z".parse().unwrap()
    }

    fn email(to: &str) -> MessageJob {
        MessageJob {
            message_id: "m_abc123".into(),
            cart_id: "c1".into(),
            channel: Channel::Email,
            outgoing: Outgoing::Email {
                to: to.into(),
                subject: "You left 2 items in your cart".into(),
                text: "Hi,\n\nBlue Mug x2  12.50 EUR\nhttps://shop.example/mug\n".into(),
                html: "<p>Hi,</p><a href=\"https://shop.example/mug\"><img src=\"https://cdn.example/mug.jpg\"></a>"
                    .into(),
                unsubscribe: None,
            },
            voucher: None,
        }
    }

    fn sender() -> (tempfile::TempDir, OutboxSender) {
        let dir = tempfile::tempdir().unwrap();
        let sender = Outbox::new(dir.path()).unwrap().sender("Shop <shop@example.com>");
        (dir, sender)
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// GIVEN an email and SMS lines of two customers in the outbox WHEN the
    /// first customer's messages are erased THEN their file and their lines
    /// go, the other customer's line stays whole, and erasing again removes
    /// nothing.
    #[tokio::test]
    async fn given_copies_of_two_customers_when_one_is_erased_then_only_their_file_and_lines_go() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path()).unwrap();
        let sender = outbox.sender("Shop <shop@example.com>");
        sender.send(&email("ana@example.com"), now()).await.unwrap();
        for (id, to) in [("m_ana_sms", "+33612345678"), ("m_bo_sms", "+33698765432")] {
            let job = MessageJob {
                message_id: id.into(),
                cart_id: "c1".into(),
                channel: Channel::Sms,
                outgoing: Outgoing::Sms { to: to.into(), body: "Your cart is waiting".into() },
                voucher: None,
            };
            sender.send(&job, now()).await.unwrap();
        }
        let erased: HashSet<String> = ["m_abc123", "m_ana_sms"].map(String::from).into();

        assert_eq!(outbox.erase(&erased).unwrap(), 2);

        assert!(!outbox.email_path("m_abc123").exists());
        let left = lines(&outbox.sms_path());
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["message_id"], "m_bo_sms");
        assert!(!fs::read_to_string(outbox.sms_path()).unwrap().contains("+33612345678"));
        assert_eq!(outbox.erase(&erased).unwrap(), 0);
    }

    #[tokio::test]
    async fn given_an_email_when_sent_then_a_complete_multipart_mime_file_lands_in_the_outbox() {
        let (dir, sender) = sender();
        let id = sender.send(&email("ana@example.com"), now()).await.unwrap();
        assert_eq!(id, "outbox-m_abc123");
        let path = dir.path().join("outbox/email/m_abc123.eml");
        let raw = fs::read_to_string(&path).unwrap();
        for needle in [
            "From: Shop <shop@example.com>",
            "To: ana@example.com",
            "Subject: You left 2 items in your cart",
            "Message-ID: <m_abc123@cartback>",
            "MIME-Version: 1.0",
            "Date: Mon, 23 Nov 2026 10:30:00",
            "Content-Type: multipart/alternative",
            "Content-Type: text/plain",
            "Content-Type: text/html",
            "https://shop.example/mug",
        ] {
            assert!(raw.contains(needle), "{needle:?} missing from:\n{raw}");
        }
        assert!(raw.contains("\r\n\r\n"), "headers end with a blank CRLF line");
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind: {leftovers:?}");
    }

    #[tokio::test]
    async fn given_an_email_sent_twice_when_the_outbox_is_read_then_it_holds_one_file() {
        let (dir, sender) = sender();
        sender.send(&email("ana@example.com"), now()).await.unwrap();
        sender.send(&email("ana@example.com"), now()).await.unwrap();
        assert_eq!(fs::read_dir(dir.path().join("outbox/email")).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn given_a_recipient_under_the_invalid_tld_when_sent_then_it_is_a_permanent_rejection_and_nothing_is_written()
    {
        let (dir, sender) = sender();
        for to in ["x@bounce.invalid", "x@INVALID", "not an address"] {
            let err = sender.send(&email(to), now()).await.unwrap_err();
            assert!(matches!(err, SendError::Permanent(_)), "{to}: {err:?}");
        }
        assert_eq!(fs::read_dir(dir.path().join("outbox/email")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn given_sms_when_sent_then_each_is_one_json_line_with_id_recipient_body_and_time() {
        let (dir, sender) = sender();
        for (i, to) in ["+33612345678", "+33698765432"].iter().enumerate() {
            let job = MessageJob {
                message_id: format!("m_{i}").into(),
                cart_id: "c1".into(),
                channel: Channel::Sms,
                outgoing: Outgoing::Sms { to: (*to).into(), body: "Your cart is waiting".into() },
                voucher: None,
            };
            assert_eq!(sender.send(&job, now()).await.unwrap(), format!("outbox-m_{i}"));
        }
        let lines = lines(&dir.path().join("outbox/sms.jsonl"));
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            json!({"message_id": "m_0", "to": "+33612345678", "body": "Your cart is waiting", "segments": 1, "encoding": "gsm7", "at": "2026-11-23T10:30:00.000Z"})
        );
        let bad = MessageJob {
            message_id: "m_x".into(),
            cart_id: "c1".into(),
            channel: Channel::Sms,
            outgoing: Outgoing::Sms { to: "12".into(), body: "b".into() },
            voucher: None,
        };
        assert!(matches!(sender.send(&bad, now()).await, Err(SendError::Permanent(_))));
    }

    #[tokio::test]
    async fn given_push_and_web_push_when_sent_then_both_are_json_lines_in_push_jsonl() {
        let (dir, sender) = sender();
        let push = MessageJob {
            message_id: "m_p".into(),
            cart_id: "c1".into(),
            channel: Channel::Push,
            outgoing: Outgoing::Push {
                platform: PushPlatform::Fcm,
                token: "tok".into(),
                title: "T".into(),
                body: "B".into(),
                url: "https://x/r".into(),
            },
            voucher: None,
        };
        let web = MessageJob {
            message_id: "m_w".into(),
            cart_id: "c1".into(),
            channel: Channel::WebPush,
            outgoing: Outgoing::WebPush {
                subscription: json!({"endpoint": "https://push.example/abc", "keys": {}}).into(),
                title: "T".into(),
                body: "B".into(),
                url: "https://x/r".into(),
            },
            voucher: None,
        };
        sender.send(&push, now()).await.unwrap();
        sender.send(&web, now()).await.unwrap();
        let lines = lines(&dir.path().join("outbox/push.jsonl"));
        assert_eq!(
            (lines[0]["kind"].as_str(), lines[0]["platform"].as_str(), lines[0]["token"].as_str()),
            (Some("push"), Some("fcm"), Some("tok"))
        );
        assert_eq!(
            (lines[1]["kind"].as_str(), lines[1]["subscription"]["endpoint"].as_str()),
            (Some("web_push"), Some("https://push.example/abc"))
        );
        let no_token = MessageJob {
            outgoing: Outgoing::Push {
                platform: PushPlatform::Apns,
                token: "".into(),
                title: "T".into(),
                body: "B".into(),
                url: "u".into(),
            },
            ..push
        };
        assert!(matches!(sender.send(&no_token, now()).await, Err(SendError::Permanent(_))));
    }
}
