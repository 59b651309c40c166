//! The backtest's replay over N synthetic carts (the history already in
//! memory, as `load_history` leaves it): a third guests, the rest customers
//! with one to three carts, one cart in four bought, a two-step campaign.
//! What it measures is the engine and the replay's bookkeeping per cart;
//! reading the history (a store scan and JSON decoding) comes on top.
//!
//! Run: `cargo bench -p cartback-core --bench backtest -- --quick`; one
//! timed run over a million carts: `BACKTEST_CARTS=1000000 cargo bench -p
//! cartback-core --bench backtest` (see scripts/bench.sh).

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::time::{Duration as StdDuration, Instant};

use cartback_core::backtest::{self, History, HistoryBuilder, Options};
use cartback_core::campaign::Campaign;
use cartback_core::customer::Customer;
use cartback_core::event::{ConsentPatch, CustomerPatch, Device, Event, EventType, Item};
use cartback_core::measure::report::Prices;
use cartback_core::message::Channel;
use cartback_core::ports::CartRecord;
use chrono::{DateTime, Duration, Utc};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rust_decimal::Decimal;

fn event(id: String, kind: EventType, cart: &str, customer: Option<&str>, at: DateTime<Utc>) -> Event {
    let patch = CustomerPatch {
        email: Some("shopper@example.com".into()),
        consents: Some(ConsentPatch { email: Some(true), ..Default::default() }),
        ..Default::default()
    };
    Event {
        event_id: id.into(),
        kind,
        occurred_at: at,
        cart_id: Some(cart.into()),
        customer_id: customer.map(Into::into),
        device: Some(Device::Desktop),
        currency: Some("EUR".into()),
        items: match kind {
            EventType::Purchase => Vec::new(),
            _ => vec![Item {
                item_id: "sku-1".into(),
                item_name: Some("Mug".into()),
                variant: None,
                price: Some(Decimal::new(1490, 2)),
                quantity: 1,
                image_url: None,
                url: None,
            }],
        },
        order_id: (kind == EventType::Purchase).then(|| format!("o-{cart}")),
        value: None,
        coupon: None,
        customer: (kind != EventType::Purchase).then_some(patch),
        answer: None,
    }
}

/// `carts` carts over 30 days, deterministic.
fn synthetic(carts: usize) -> History {
    let start: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
    let mut builder = HistoryBuilder::default();
    let mut customers: std::collections::HashMap<String, Customer> = std::collections::HashMap::new();
    for n in 0..carts {
        let cart_id = format!("cart-{n}");
        let customer = (n % 3 != 0).then(|| format!("cust-{}", n / 2));
        let at = start + Duration::minutes((n as i64 * 2_591) % (30 * 24 * 60));
        let mut record = CartRecord::new(cart_id.as_str(), at);
        let mut events = vec![
            event(format!("e{n}a"), EventType::AddToCart, &cart_id, customer.as_deref(), at),
            event(format!("e{n}b"), EventType::AddToCart, &cart_id, customer.as_deref(), at + Duration::minutes(4)),
        ];
        if n % 4 == 0 {
            events.push(event(
                format!("e{n}p"),
                EventType::Purchase,
                &cart_id,
                customer.as_deref(),
                at + Duration::hours(3),
            ));
        }
        for e in events {
            if let Some(id) = &customer {
                customers.entry(id.clone()).or_insert_with(|| Customer::new(id.as_str())).apply(&e);
            }
            record.insert_event(e);
        }
        builder.add_cart(record);
    }
    customers.into_values().for_each(|c| builder.add_customer(c));
    builder.build()
}

fn options() -> Options {
    Options {
        draft: Campaign::default_campaign(),
        against: None,
        from: None,
        to: None,
        channels: Channel::ALL.to_vec(),
        prices: Prices::default(),
        until: None,
    }
}

fn bench(c: &mut Criterion) {
    if let Some(carts) = std::env::var("BACKTEST_CARTS").ok().and_then(|n| n.parse::<usize>().ok()) {
        let built = Instant::now();
        let history = synthetic(carts);
        let built = built.elapsed();
        let replayed = Instant::now();
        let report = backtest::run(&history, &[], &options(), None, &mut |_| {}).unwrap();
        let replayed = replayed.elapsed();
        eprintln!(
            "backtest of {carts} carts on one core: replay {:.1} s ({:.2} us per cart), synthetic history built in \
             {:.1} s; {} entering, {} steps sent",
            replayed.as_secs_f64(),
            replayed.as_secs_f64() * 1e6 / carts as f64,
            built.as_secs_f64(),
            report.entering,
            report.steps.iter().map(|s| s.sent).sum::<u64>()
        );
        return;
    }
    let history = synthetic(10_000);
    let options = options();
    c.bench_function("backtest 10,000 carts", |b| {
        b.iter(|| backtest::run(black_box(&history), &[], &options, None, &mut |_| {}).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(StdDuration::from_secs(10));
    targets = bench
}
criterion_main!(benches);
