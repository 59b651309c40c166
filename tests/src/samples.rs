//! The `events/` samples and an in-process stack to run them through.
//!
//! [`LocalStack`] assembles the AWS handlers' services (`Api`, `Checker`,
//! `Delivery`, `Feedback`) on the local runtime's adapters (SQLite state,
//! timers and queues, the outbox sender) and a manual clock. Tests pass the
//! sample Lambda events to `cartback_aws::handlers::*`, which is exactly
//! what the function binaries do: only the adapters differ, and those are
//! held to the same contract suite. Nothing here mocks an AWS API.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use async_trait::async_trait;
use cartback_core::api::Api;
use cartback_core::campaign::Campaign;
use cartback_core::ports::{CampaignStore, Clock, PortError, StateStore};
use cartback_core::service::{CampaignCache, Checker, Delivery, Feedback, Ingest, Settings};
use cartback_core::signing::Secret;
use cartback_local::testing::ManualClock;
use cartback_local::{Database, Outbox, SqliteQueue, SqliteScheduler, TimerWheel};

/// The documented test secret every signed sample is signed with.
pub const SAMPLE_SECRET: &str = "cartback-sample-secret-0123456789";
/// The HTTP API the samples pretend to come through.
pub const PUBLIC_BASE_URL: &str = "https://abc123.execute-api.us-east-1.amazonaws.com";
pub const RESTORE_URL: &str = "https://shop.example.com/cart/restore?cart={cart_id}&t={token}";
pub const SENDER: &str = "Demo Shop <shop@example.com>";

pub fn sample_secret() -> Secret {
    Secret::new(SAMPLE_SECRET.as_bytes().to_vec()).expect("the sample secret is long enough")
}

/// The stack's campaigns: the database's, and while it holds none the
/// built-in default with no holdout, so the samples' customers all get
/// their messages (a test of the holdout stores its own campaign).
pub struct EveryoneTreated(pub Database);

#[async_trait]
impl CampaignStore for EveryoneTreated {
    async fn list(&self) -> Result<Vec<Campaign>, PortError> {
        let mut stored = self.0.list().await?;
        if stored.is_empty() {
            stored.push(Campaign { holdout_percent: 0, ..Campaign::default_campaign() });
        }
        Ok(stored)
    }

    async fn put(&self, campaign: &Campaign) -> Result<(), PortError> {
        self.0.put(campaign).await
    }
}

/// The workspace root (where `events/` lives).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().find(|d| d.join("Cargo.lock").exists()).unwrap_or(&manifest).to_path_buf()
}

pub fn events_dir() -> PathBuf {
    workspace_root().join("events")
}

/// A sample file (path relative to `events/`) as JSON.
pub fn sample(relative: &str) -> Value {
    let path = events_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A sample file deserialised as a Lambda event type.
pub fn sample_as<T: serde::de::DeserializeOwned>(relative: &str) -> T {
    serde_json::from_value(sample(relative)).unwrap_or_else(|e| panic!("events/{relative}: {e}"))
}

/// Every `.json` file under `dir`, relative to it, with `/` separators, sorted.
pub fn json_files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The AWS handlers' services on local adapters, in a temporary folder.
pub struct LocalStack {
    pub dir: tempfile::TempDir,
    pub db: Database,
    pub clock: Arc<ManualClock>,
    pub queue: SqliteQueue,
    pub timers: TimerWheel,
    pub outbox: Outbox,
    pub api: Arc<Api>,
    /// The ingest function's HTTP application over `api`.
    pub app: axum::Router,
    pub checker: Checker,
    pub delivery: Delivery,
    pub feedback: Feedback,
}

impl LocalStack {
    pub fn new(now: DateTime<Utc>) -> LocalStack {
        let dir = tempfile::tempdir().expect("temporary folder");
        let clock = Arc::new(ManualClock::new(now));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let db = Database::open(dir.path()).expect("database").with_clock(dyn_clock.clone());
        let store: Arc<dyn StateStore> = Arc::new(db.clone());
        let scheduler = Arc::new(SqliteScheduler::new(db.clone()));
        let queue = SqliteQueue::new(db.clone());
        let campaign_store = Arc::new(EveryoneTreated(db.clone()));
        let campaigns = Arc::new(CampaignCache::new(campaign_store, dyn_clock.clone(), Duration::seconds(60)));
        let settings = Arc::new(Settings::new(sample_secret(), PUBLIC_BASE_URL, RESTORE_URL));
        let outbox = Outbox::new(dir.path()).expect("outbox");
        let ingest = Ingest {
            store: store.clone(),
            scheduler: scheduler.clone(),
            campaigns: campaigns.clone(),
            clock: dyn_clock.clone(),
        };
        let api = Arc::new(Api {
            ingest,
            store: store.clone(),
            clock: dyn_clock.clone(),
            // The samples are replayed at their own time: the manual clock is their real time too.
            wall_clock: dyn_clock.clone(),
            settings: settings.clone(),
            accept_v1_signatures: true,
            templates: Arc::new(db.clone()),
        });
        let app = cartback_http::router(api.clone());
        let checker = Checker {
            store: store.clone(),
            scheduler,
            queue: Arc::new(queue.clone()),
            campaigns: campaigns.clone(),
            templates: std::sync::Arc::new(cartback_core::service::TemplateCache::shipped_only()),
            clock: dyn_clock.clone(),
            settings,
        };
        let delivery = Delivery {
            store: store.clone(),
            sender: Arc::new(outbox.sender(SENDER)),
            campaigns,
            clock: dyn_clock.clone(),
            webhook: None,
        };
        let feedback = Feedback { store, clock: dyn_clock };
        LocalStack {
            timers: TimerWheel::new(db.clone()),
            dir,
            db,
            clock,
            queue,
            outbox,
            api,
            app,
            checker,
            delivery,
            feedback,
        }
    }
}

/// When an API Gateway sample was sent: its signature's `t=`, else the
/// request context's `timeEpoch`.
pub fn request_time(event: &Value) -> DateTime<Utc> {
    let signed = event["headers"]["x-cartback-signature"]
        .as_str()
        .and_then(|h| h.split(',').find_map(|p| p.trim().strip_prefix("t=")))
        .and_then(|t| t.parse::<i64>().ok());
    let epoch_ms = event["requestContext"]["timeEpoch"].as_i64();
    match (signed, epoch_ms) {
        (Some(t), _) => DateTime::from_timestamp(t, 0).expect("valid time"),
        (None, Some(ms)) => DateTime::from_timestamp_millis(ms).expect("valid time"),
        (None, None) => panic!("request without a signature time or requestContext.timeEpoch"),
    }
}

/// MD5 (RFC 1321), for the `md5OfBody` of generated SQS records. Not for
/// security: SQS uses it as a checksum.
pub fn md5_hex(data: &[u8]) -> String {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14,
        20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6,
        10, 15, 21,
    ];
    let k: Vec<u32> = (0..64).map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32).collect();
    let (mut a0, mut b0, mut c0, mut d0) = (0x67452301u32, 0xefcdab89u32, 0x98badcfeu32, 0x10325476u32);
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk.chunks(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    [a0, b0, c0, d0].iter().flat_map(|w| w.to_le_bytes()).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn given_rfc_1321_test_vectors_when_hashed_then_md5_matches() {
        assert_eq!(super::md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(super::md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            super::md5_hex(b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }
}
