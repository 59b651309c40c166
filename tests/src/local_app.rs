//! The HTTP application both runtimes serve, over SQLite in memory on a
//! manual clock: the fixture of the in-process API tests.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use cartback_core::api::Api;
use cartback_core::ports::{PortError, Scheduler, TimerPayload};
use cartback_core::service::{CampaignCache, Ingest, Settings};
use cartback_core::signing::Secret;
use cartback_local::testing::ManualClock;
use cartback_local::{Database, SqliteScheduler};

/// The router signed with `secret`, and the clock that is both its business
/// and its wall clock (so tests can move the replay window).
pub fn local_app(secret: &[u8], accept_v1_signatures: bool) -> (Router, Arc<ManualClock>) {
    local_app_with_failing_timers(secret, accept_v1_signatures, &[])
}

/// A scheduler whose `arm` fails for chosen carts, as a throttled
/// EventBridge Scheduler would (`failing_carts`) or as one refusing the
/// request for good would (`refusing_carts`), and otherwise is the SQLite one.
pub struct FailingTimers {
    pub inner: SqliteScheduler,
    pub failing_carts: Vec<String>,
    pub refusing_carts: Vec<String>,
}

#[async_trait]
impl Scheduler for FailingTimers {
    async fn arm(&self, timer: &TimerPayload) -> Result<(), PortError> {
        let listed = |carts: &[String]| carts.iter().any(|c| c.as_str() == timer.cart_id.as_str());
        if listed(&self.failing_carts) {
            return Err(PortError::Unavailable("test scheduler", "throttled".into()));
        }
        if listed(&self.refusing_carts) {
            return Err(PortError::Refused("test scheduler", "ValidationException".into()));
        }
        self.inner.arm(timer).await
    }
}

/// [`local_app`] whose timers cannot be armed for `failing_carts`.
pub fn local_app_with_failing_timers(
    secret: &[u8],
    accept_v1_signatures: bool,
    failing_carts: &[&str],
) -> (Router, Arc<ManualClock>) {
    local_app_with_timer_faults(secret, accept_v1_signatures, failing_carts, &[])
}

/// [`local_app`] whose timers fail for `failing_carts` (an outage) and are
/// refused for `refusing_carts` (for good).
pub fn local_app_with_timer_faults(
    secret: &[u8],
    accept_v1_signatures: bool,
    failing_carts: &[&str],
    refusing_carts: &[&str],
) -> (Router, Arc<ManualClock>) {
    let (app, clock, _) = app_over(secret, accept_v1_signatures, failing_carts, refusing_carts);
    (app, clock)
}

/// [`local_app`] and its database, for tests that put records (facts) in
/// place before they call the API.
pub fn local_app_with_db(secret: &[u8]) -> (Router, Arc<ManualClock>, Database) {
    app_over(secret, false, &[], &[])
}

/// [`local_app_with_db`] with the backtest page (`/dashboard/backtest`) over the same database, as
/// `cartback dev` serves it.
pub fn local_app_with_backtest(secret: &[u8]) -> (Router, Arc<ManualClock>, Database) {
    local_app_with_backtest_reader(secret, |db| Arc::new(db))
}

/// [`local_app_with_backtest`] whose backtest page reads the history
/// through `reader` (made from the app's database), e.g. one that holds a
/// backtest in progress.
pub fn local_app_with_backtest_reader(
    secret: &[u8],
    reader: impl FnOnce(Database) -> Arc<dyn cartback_core::ports::HistoryReader>,
) -> (Router, Arc<ManualClock>, Database) {
    let (api, clock, db) = api_over(secret, false, &[], &[]);
    let api = Arc::new(api);
    let app = cartback_http::router(api.clone()).merge(cartback_http::backtest_router(api, reader(db.clone())));
    (app, clock, db)
}

/// [`local_app`] serving `public_key` as the VAPID key (as `cartback dev` does).
pub fn local_app_with_web_push_key(secret: &[u8], public_key: &str) -> Router {
    let (mut api, _, _) = api_over(secret, false, &[], &[]);
    let mut settings = (*api.settings).clone();
    settings.web_push_public_key = Some(public_key.to_owned());
    api.settings = Arc::new(settings);
    cartback_http::router(Arc::new(api))
}

fn app_over(
    secret: &[u8],
    accept_v1_signatures: bool,
    failing_carts: &[&str],
    refusing_carts: &[&str],
) -> (Router, Arc<ManualClock>, Database) {
    let (api, clock, db) = api_over(secret, accept_v1_signatures, failing_carts, refusing_carts);
    (cartback_http::router(Arc::new(api)), clock, db)
}

fn api_over(
    secret: &[u8],
    accept_v1_signatures: bool,
    failing_carts: &[&str],
    refusing_carts: &[&str],
) -> (Api, Arc<ManualClock>, Database) {
    let owned = |carts: &[&str]| carts.iter().map(|c| (*c).to_owned()).collect();
    let clock = Arc::new(ManualClock::new("2026-11-23T10:00:00Z".parse().unwrap()));
    let db = Database::open_in_memory().unwrap().with_clock(clock.clone());
    let campaigns = Arc::new(CampaignCache::new(Arc::new(db.clone()), clock.clone(), chrono::Duration::seconds(60)));
    let settings = Arc::new(Settings::new(
        Secret::new(secret.to_vec()).unwrap(),
        "http://localhost",
        "http://shop/{cart_id}?t={token}",
    ));
    let api = Api {
        ingest: Ingest {
            store: Arc::new(db.clone()),
            scheduler: Arc::new(FailingTimers {
                inner: SqliteScheduler::new(db.clone()),
                failing_carts: owned(failing_carts),
                refusing_carts: owned(refusing_carts),
            }),
            campaigns,
            clock: clock.clone(),
        },
        store: Arc::new(db.clone()),
        clock: clock.clone(),
        wall_clock: clock.clone(),
        settings,
        accept_v1_signatures,
        templates: Arc::new(db.clone()),
    };
    (api, clock, db)
}
