//! `decide` on a typical cart: a known customer with full contact data and
//! consents, a three-item mobile cart folded from its events, the shipped
//! campaign plus a filtered one, and a short message history.
//!
//! Run: `cargo bench -p cartback-core --bench engine -- --quick`

use std::time::Duration as StdDuration;

use cartback_core::campaign::{Campaign, ChannelOrder};
use cartback_core::cart::Cart;
use cartback_core::customer::Customer;
use cartback_core::engine::{decide, Decision, Input, Progress};
use cartback_core::event::{ConsentPatch, CustomerPatch, Device, Event, EventType, Item, PushPlatform, PushToken};
use cartback_core::message::{Channel, MessageRecord, MessageStatus};
use chrono::{DateTime, Duration, Utc};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rust_decimal::Decimal;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("instant")
}

fn add(id: &str, at: &str, sku: &str, cents: i64) -> Event {
    Event {
        event_id: id.into(),
        kind: EventType::AddToCart,
        occurred_at: t(at),
        cart_id: Some("cart-42".into()),
        customer_id: Some("cust-7".into()),
        device: Some(Device::Mobile),
        currency: Some("EUR".into()),
        items: vec![Item {
            item_id: sku.into(),
            item_name: Some(sku.to_uppercase()),
            variant: None,
            price: Some(Decimal::new(cents, 2)),
            quantity: 1,
            image_url: None,
            url: None,
        }],
        order_id: None,
        value: None,
        coupon: None,
        customer: None,
        answer: None,
    }
}

struct Typical {
    cart: Cart,
    progress: Progress,
    customer: Customer,
    campaigns: Vec<Campaign>,
    history: Vec<MessageRecord>,
}

fn typical() -> Typical {
    let cart = Cart::from_events(
        "cart-42",
        &[
            add("e1", "2026-11-23T10:00:00Z", "mug", 1250),
            add("e2", "2026-11-23T10:02:00Z", "teapot", 3900),
            add("e3", "2026-11-23T10:05:00Z", "tea", 890),
        ],
    );
    let mut customer = Customer::new("cust-7");
    customer.profile = CustomerPatch {
        email: Some("ana@example.com".into()),
        phone: Some("+33612345678".into()),
        first_name: Some("Ana".into()),
        locale: Some("fr-FR".into()),
        timezone: Some("Europe/Paris".into()),
        consents: Some(ConsentPatch {
            email: Some(true),
            sms: Some(true),
            push: Some(true),
            web_push: Some(false),
            ..Default::default()
        }),
        push_tokens: Some(vec![PushToken { platform: PushPlatform::Fcm, token: "fcm-token".into() }]),
        web_push_subscription: None,
        snoozed_until: None,
    };
    customer.purchases = vec![t("2026-09-02T18:00:00Z")];
    let mut field = Campaign::default_campaign();
    field.id = "field".into();
    field.steps[0].channels = ChannelOrder::default();
    let mut vip = Campaign::default_campaign();
    vip.id = "vip".into();
    vip.priority = 10;
    vip.entry.min_cart_value = Some(Decimal::new(200, 0));
    let history = (0..3)
        .map(|i| {
            let at = t("2026-10-01T12:00:00Z") + Duration::days(i);
            MessageRecord {
                message_id: MessageRecord::id_for("cart-old", i as u32, Channel::Email),
                cart_id: "cart-old".into(),
                customer_key: cartback_core::ids::CustomerKey::Customer("cust-7".into()),
                campaign_id: "field".into(),
                step: i as u32,
                channel: Channel::Email,
                decided_at: at,
                status: MessageStatus::Sent { provider_message_id: "p".into(), at },
                engagement: Default::default(),
                variant: None,
            }
        })
        .collect();
    Typical { cart, progress: Progress::default(), customer, campaigns: vec![field, vip], history }
}

fn bench(c: &mut Criterion) {
    let w = typical();
    let input = |now: DateTime<Utc>| Input {
        cart: &w.cart,
        progress: &w.progress,
        customer: Some(&w.customer),
        campaigns: &w.campaigns,
        history: &w.history,
        channels: &Channel::ALL,
        vouchers: &[],
        now,
    };

    // The timer fires at the due time: push is chosen (quiet hours checked in Paris).
    let due = input(t("2026-11-23T10:35:00Z"));
    assert!(matches!(decide(&due), Decision::Send { channel: Channel::Push, .. }));
    c.bench_function("decide/typical_cart_send_first_step", |b| b.iter(|| decide(black_box(&due))));

    // A re-armed timer before the due time: the cheapest path.
    let early = input(t("2026-11-23T10:20:00Z"));
    assert!(matches!(decide(&early), Decision::Wait { .. }));
    c.bench_function("decide/typical_cart_wait", |b| b.iter(|| decide(black_box(&early))));

    // Due at 23:35 Paris time: push is deferred to 08:00.
    let night = input(t("2026-11-23T22:35:00Z"));
    assert!(matches!(decide(&night), Decision::Wait { .. }));
    c.bench_function("decide/typical_cart_quiet_hours", |b| b.iter(|| decide(black_box(&night))));
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(StdDuration::from_secs(1)).measurement_time(StdDuration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
