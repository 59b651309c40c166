//! The HTTP application both runtimes serve, over SQLite in memory on a
//! manual clock: the fixture of the in-process API tests.

use std::sync::Arc;

use axum::Router;
use cartback_core::api::Api;
use cartback_core::service::{CampaignCache, Ingest, Settings};
use cartback_core::signing::Secret;
use cartback_local::testing::ManualClock;
use cartback_local::{Database, SqliteScheduler};

/// The router signed with `secret`, and the clock that is both its business
/// and its wall clock (so tests can move the replay window).
pub fn local_app(secret: &[u8], accept_v1_signatures: bool) -> (Router, Arc<ManualClock>) {
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
            scheduler: Arc::new(SqliteScheduler::new(db.clone())),
            campaigns,
            clock: clock.clone(),
        },
        store: Arc::new(db),
        clock: clock.clone(),
        wall_clock: clock.clone(),
        settings,
        accept_v1_signatures,
    };
    (cartback_http::router(Arc::new(api)), clock)
}
