//! A Shopify `checkouts/create` webhook through what `POST /v1/sources/shopify`
//! does after routing: verify the signature, map the payload, ingest the
//! event on SQLite (one transaction, and a timer armed: each delivery is a
//! new cart). Measured in webhooks per second on one core (a current-thread
//! runtime; SQLite on a file, as `cartback dev` runs it). The AWS bounds
//! (API Gateway throttling, Lambda concurrency) are settings, in the README.
//!
//! Run: `cargo bench -p cartback-local --bench sources -- --quick`

use std::sync::Arc;

use cartback_core::ports::Clock;
use cartback_core::service::{CampaignCache, Ingest};
use cartback_core::sources::{base64_hmac_sha256, map, shopify, verify, Headers, Source, SourceSecret};
use cartback_local::testing::ManualClock;
use cartback_local::{Database, SqliteScheduler};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};

const SECRET: &str = "shpss_bench_app_secret_000000001";

/// Shopify's checkout sample as cart `n`, signed as Shopify signs it.
fn delivery(sample: &Value, n: u64) -> (Headers, Vec<u8>) {
    let mut body = sample.clone();
    body["token"] = json!(format!("bench-cart-{n}"));
    body["updated_at"] = json!("2026-11-23T10:00:00Z");
    let body = body.to_string().into_bytes();
    let headers: Headers = [
        (shopify::TOPIC_HEADER, "checkouts/create".to_owned()),
        (shopify::WEBHOOK_ID_HEADER, format!("bench-delivery-{n}")),
        (shopify::SIGNATURE_HEADER, base64_hmac_sha256(SECRET.as_bytes(), &body)),
    ]
    .into_iter()
    .collect();
    (headers, body)
}

fn shopify_checkout(c: &mut Criterion) {
    let path = format!("{}/../../events/sources/shopify/checkouts-create.json", env!("CARGO_MANIFEST_DIR"));
    let sample: Value = serde_json::from_slice(&std::fs::read(path).expect("the Shopify sample")).expect("JSON");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let clock = Arc::new(ManualClock::new("2026-11-23T10:00:30Z".parse().expect("a time")));
    let db = Database::open(dir.path()).expect("the database").with_clock(clock.clone());
    let ingest = Ingest {
        store: Arc::new(db.clone()),
        scheduler: Arc::new(SqliteScheduler::new(db.clone())),
        campaigns: Arc::new(CampaignCache::new(Arc::new(db.clone()), clock.clone(), chrono::Duration::seconds(60))),
        clock: clock.clone(),
    };
    let secret = SourceSecret::new(SECRET).expect("a secret");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let mut n = 0;

    let mut group = c.benchmark_group("sources");
    group.throughput(Throughput::Elements(1));
    group.bench_function("shopify_checkout_verify_map_ingest_sqlite", |b| {
        b.iter_batched(
            || {
                n += 1;
                delivery(&sample, n)
            },
            |(headers, body)| {
                verify(Source::Shopify, &secret, &headers, &body, clock.now()).expect("signed");
                let mapped = map(Source::Shopify, &headers, &body, None).expect("mapped");
                let answer = runtime.block_on(ingest.ingest_mapped(mapped));
                assert_eq!(answer.accepted, 1, "{answer:?}");
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, shopify_checkout);
criterion_main!(benches);
