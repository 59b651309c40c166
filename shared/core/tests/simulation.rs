//! Simulation of the runtime loop around the pure decision engine, in memory
//! and on a virtual clock, over generated carts.
//!
//! Each generated "world" is one customer (or guest) with one to three carts,
//! a few campaigns and a stream of storefront events delivered late, out of
//! order and twice. The loop models what ingest and the checker do:
//!
//! - an event is deduplicated by `event_id`, folded into the cart (or applied
//!   to the customer), and arms the cart's single timer when none is pending
//!   early enough (`last activity + first step delay`);
//! - a timer fire loads the customer's history (same customer key, last 30
//!   days) and calls `decide` until a Wait (re-arm at `until`) or a Stop;
//!   every Send is recorded in the history (status Sent) and in the progress;
//! - engagement (open / click) and campaign switches arrive as world events.
//!
//! Every decision is checked against the rules, computed independently from
//! the world's ground truth. Set `CARTBACK_SIM_SEED` / `CARTBACK_SIM_CARTS`
//! to replay or scale a run.

use std::collections::BTreeMap;
use std::time::{Duration as StdDuration, Instant};

use cartback_core::campaign::{Campaign, ChannelOrder, DelayFrom, QuietHours, Segment, Step};
use cartback_core::cart::{Cart, CartStatus};
use cartback_core::contact;
use cartback_core::customer::Customer;
use cartback_core::engine::{decide, Decision, Input, Progress};
use cartback_core::event::{ConsentPatch, CustomerPatch, Device, Event, EventType, Item, PushPlatform, PushToken};
use cartback_core::ids::CustomerKey;
use cartback_core::message::{Channel, MessageRecord, MessageStatus};
use cartback_core::reason::ReasonCode;
use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

const DEFAULT_SEED: u64 = 0x00C4_27BA_CC00_2026;
const DEFAULT_CARTS: usize = 100_000;
/// What the checker loads: the customer's messages of the last 30 days.
const HISTORY_DAYS: i64 = 30;

// ---------------------------------------------------------------- PRNG

/// SplitMix64: tiny, fast, and good enough to shuffle a shop.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }

    fn secs(&mut self, lo: i64, hi: i64) -> Duration {
        Duration::seconds(lo + self.below((hi - lo).max(1) as u64) as i64)
    }

    fn mins(&mut self, lo: i64, hi: i64) -> Duration {
        self.secs(lo * 60, hi * 60)
    }
}

// ---------------------------------------------------------------- generation

const ZONES: &[&str] = &[
    "America/New_York", "Europe/Paris", "Europe/London", "Australia/Sydney", "Australia/Lord_Howe",
    "America/Los_Angeles", "Asia/Kolkata", "Pacific/Auckland", "America/Santiago", "UTC",
];
/// Valid numbers of several regions (the region decides the fallback zone),
/// and invalid ones. Phone parsing dominates the engine's cost in a debug
/// build (about 0.5 to 3 ms a number), so only a few customers have one.
const PHONES: &[&str] = &["+33612345678", "+33612345678", "+33612345678", "+33612345678", "+442079460958", "+12015550123"];
const BAD_PHONES: &[&str] = &["0612345678", "+1 555", "+999123456789"];
/// DST changes of 2026 (UTC instant, zone, a local time inside the skipped
/// or repeated hour). Worlds near an edge live in its zone and often have
/// quiet hours that end inside the odd hour.
const DST_EDGES: &[(&str, &str, (u32, u32))] = &[
    ("2026-03-08T07:00:00Z", "America/New_York", (2, 30)),
    ("2026-11-01T06:00:00Z", "America/New_York", (1, 30)),
    ("2026-03-08T10:00:00Z", "America/Los_Angeles", (2, 30)),
    ("2026-11-01T09:00:00Z", "America/Los_Angeles", (1, 30)),
    ("2026-03-29T01:00:00Z", "Europe/Paris", (2, 30)),
    ("2026-10-25T01:00:00Z", "Europe/Paris", (2, 30)),
    ("2026-03-29T01:00:00Z", "Europe/London", (1, 30)),
    ("2026-10-25T01:00:00Z", "Europe/London", (1, 30)),
    ("2026-04-04T16:00:00Z", "Australia/Sydney", (2, 30)),
    ("2026-10-03T16:00:00Z", "Australia/Sydney", (2, 30)),
    ("2026-04-04T15:00:00Z", "Australia/Lord_Howe", (1, 45)),
    ("2026-10-03T15:30:00Z", "Australia/Lord_Howe", (2, 15)),
    ("2026-04-04T14:00:00Z", "Pacific/Auckland", (2, 30)),
    ("2026-09-26T14:00:00Z", "Pacific/Auckland", (2, 30)),
    ("2026-04-05T03:00:00Z", "America/Santiago", (23, 30)),
    ("2026-09-06T04:00:00Z", "America/Santiago", (0, 30)),
];
const CATALOGUE: &[(&str, i64)] = &[("sku-1", 1250), ("sku-2", 4000), ("sku-3", 500), ("sku-4", 9990)];

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).expect("valid time")
}

fn random_order(rng: &mut Rng) -> Vec<Channel> {
    let mut all = Channel::ALL.to_vec();
    for i in (1..all.len()).rev() {
        all.swap(i, rng.below(i as u64 + 1) as usize);
    }
    all.truncate(1 + rng.below(4) as usize);
    all
}

fn gen_campaign(rng: &mut Rng, id: &str, odd_end: Option<NaiveTime>) -> Campaign {
    let mut c = Campaign::default_campaign();
    c.id = id.into();
    c.priority = rng.below(4) as i32;
    c.enabled = !rng.chance(5);
    if rng.chance(30) && odd_end.is_none() {
        return c;
    }
    let steps = 1 + rng.below(3);
    c.steps = (0..steps)
        .map(|i| Step {
            delay: Duration::minutes(*rng.pick(&[1, 20, 30, 30, 60, 240, 1440, 1440, 4320])),
            delay_from: if i == 0 || rng.chance(30) { DelayFrom::LastActivity } else { DelayFrom::PreviousStep },
            channels: if rng.chance(50) { ChannelOrder::default() } else { ChannelOrder { mobile: random_order(rng), desktop: random_order(rng) } },
            template: (*rng.pick(&["reminder", "last_call"])).into(),
        })
        .collect();
    if rng.chance(50) {
        c.caps.entry_cooldown = Duration::days(*rng.pick(&[0, 1, 7, 7]));
        c.caps.push_max = *rng.pick(&[0, 1, 2, 2, 3]);
        c.caps.push_window = Duration::days(*rng.pick(&[1, 7, 14]));
        c.caps.after_purchase = Duration::hours(*rng.pick(&[0, 24, 24]));
        c.caps.sms_max_per_cart = *rng.pick(&[0, 1, 1, 2]);
        c.caps.sms_window = Duration::hours(*rng.pick(&[1, 48, 48]));
    }
    if rng.chance(40) {
        let (start, end) = *rng.pick(&[
            (hm(22, 0), hm(8, 0)),
            (hm(21, 0), hm(1, 30)),
            (hm(20, 0), hm(2, 30)),
            (hm(0, 0), hm(2, 15)),
            (hm(1, 30), hm(8, 0)),
            (hm(9, 0), hm(9, 0)),
            (hm(8, 0), hm(22, 0)),
        ]);
        c.quiet_hours.start = start;
        c.quiet_hours.end = end;
    }
    if let Some(end) = odd_end.filter(|_| rng.chance(60)) {
        c.quiet_hours.start = *rng.pick(&[hm(21, 0), hm(20, 0), hm(0, 0)]);
        c.quiet_hours.end = end;
    }
    c.quiet_hours.channels = match rng.below(20) {
        0 => vec![],
        1 | 2 => vec![Channel::Sms],
        3..=5 => Channel::ALL.to_vec(),
        _ => vec![Channel::Sms, Channel::Push],
    };
    c.quiet_hours.default_timezone = (*rng.pick(ZONES)).into();
    if rng.chance(15) {
        c.entry.min_cart_value = Some(Decimal::new(*rng.pick(&[1000, 3000, 10000]), 2));
    }
    if rng.chance(15) {
        c.entry.min_items_viewed = Some(1 + rng.below(3) as u32);
    }
    if rng.chance(10) {
        c.entry.segment = Some(*rng.pick(&[Segment::ReturnedRecently, Segment::FirstTimeBuyer, Segment::ReturningBuyer]));
    }
    c
}

fn consent(rng: &mut Rng) -> Option<bool> {
    *rng.pick(&[Some(true), Some(true), Some(true), Some(false), None])
}

fn gen_contact(rng: &mut Rng, w: usize) -> CustomerPatch {
    CustomerPatch {
        email: match rng.below(20) {
            0 => Some("shopper@".into()),
            1..=15 => Some(format!("shopper{w}@example.com").into()),
            _ => None,
        },
        phone: match rng.below(100) {
            0..=1 => Some((*rng.pick(BAD_PHONES)).into()),
            2..=9 => Some((*rng.pick(PHONES)).into()),
            _ => None,
        },
        first_name: Some("Ana".into()),
        locale: None,
        timezone: match rng.below(30) {
            0 => Some("Mars/Olympus".into()),
            1..=15 => Some((*rng.pick(ZONES)).into()),
            _ => None,
        },
        consents: (!rng.chance(10)).then(|| ConsentPatch { email: consent(rng), sms: consent(rng), push: consent(rng), web_push: consent(rng) }),
        push_tokens: match rng.below(20) {
            0 => Some(vec![]),
            1..=9 => Some(vec![PushToken { platform: PushPlatform::Fcm, token: format!("tok-{w}").into() }]),
            _ => None,
        },
        web_push_subscription: rng
            .chance(35)
            .then(|| serde_json::json!({"endpoint": format!("https://push.example/{w}"), "keys": {"p256dh": "k", "auth": "a"}}).into()),
    }
}

fn event(id: String, kind: EventType, at: DateTime<Utc>, cart_id: Option<&str>, customer_id: Option<&str>) -> Event {
    Event {
        event_id: id.into(),
        kind,
        occurred_at: at,
        cart_id: cart_id.map(Into::into),
        customer_id: customer_id.map(Into::into),
        device: None,
        currency: Some("EUR".into()),
        items: Vec::new(),
        order_id: None,
        value: None,
        coupon: None,
        customer: None,
    }
}

fn items(rng: &mut Rng) -> Vec<Item> {
    (0..1 + rng.below(2))
        .map(|_| {
            let (id, cents) = *rng.pick(CATALOGUE);
            Item { item_id: id.into(), item_name: None, price: Some(Decimal::new(cents, 2)), quantity: 1 + rng.below(3) as u32, image_url: None, url: None }
        })
        .collect()
}

fn gap(rng: &mut Rng) -> Duration {
    match rng.below(20) {
        0..=9 => rng.secs(0, 300),
        10..=14 => rng.mins(5, 40),
        15..=17 => rng.mins(40, 360),
        _ => rng.mins(360, 4 * 1440),
    }
}

/// The events of one cart, in occurrence order.
fn gen_cart_events(rng: &mut Rng, cart_id: &str, customer_id: Option<&str>, contact: &CustomerPatch, start: DateTime<Utc>) -> Vec<Event> {
    let n = 1 + rng.below(8) as usize;
    let identified_from = if rng.chance(70) { 0 } else { rng.below(n as u64 + 1) as usize };
    let mut device = *rng.pick(&[Device::Mobile, Device::Desktop, Device::Tablet]);
    let mut at = start;
    let mut out = Vec::with_capacity(n + 1);
    for i in 0..n {
        if i > 0 {
            at += gap(rng);
        }
        let kind = if i == 0 {
            if rng.chance(80) { EventType::AddToCart } else { EventType::ViewItem }
        } else {
            *rng.pick(&[
                EventType::ViewItem, EventType::ViewItem, EventType::AddToCart, EventType::AddToCart, EventType::AddToCart,
                EventType::RemoveFromCart, EventType::RemoveFromCart, EventType::CartUpdate, EventType::CartUpdate, EventType::BeginCheckout,
            ])
        };
        let who = if i >= identified_from { customer_id } else { None };
        let mut e = event(format!("{cart_id}-e{i}"), kind, at, Some(cart_id), who);
        e.items = if kind == EventType::CartUpdate && rng.chance(25) { Vec::new() } else { items(rng) };
        if rng.chance(10) {
            device = *rng.pick(&[Device::Mobile, Device::Desktop, Device::Tablet]);
        }
        e.device = (!rng.chance(5)).then_some(device);
        if (i == identified_from || (customer_id.is_none() && i == 0)) && rng.chance(80) {
            e.customer = Some(contact.clone());
        }
        out.push(e);
    }
    if rng.chance(25) {
        let later = match rng.below(10) {
            0..=3 => rng.mins(0, 30),
            4..=6 => rng.mins(30, 2 * 1440),
            _ => rng.mins(2 * 1440, 6 * 1440),
        };
        let mut p = event(format!("{cart_id}-purchase"), EventType::Purchase, at + later, Some(cart_id), customer_id);
        p.order_id = Some(format!("o-{cart_id}"));
        p.value = Some(Decimal::new(4200, 2));
        out.push(p);
    }
    out
}

// ---------------------------------------------------------------- the world

enum Arrival {
    Event(Box<Event>),
    Engage(String),
    Campaign { index: usize, enabled: bool },
}

struct Pending {
    at: DateTime<Utc>,
    seq: u64,
    what: Arrival,
}

struct SimCart {
    id: String,
    /// Delivered events, deduplicated, in occurrence order (as stored).
    events: Vec<Event>,
    cart: Cart,
    progress: Progress,
    timer: Option<DateTime<Utc>>,
    last: Option<Decision>,
}

struct World {
    seed: u64,
    rng: Rng,
    campaigns: Vec<Campaign>,
    customer: Option<Customer>,
    carts: Vec<SimCart>,
    /// Every message ever decided, all carts and customer keys.
    history: Vec<MessageRecord>,
    queue: Vec<Pending>,
    seq: u64,
    now: DateTime<Utc>,
    engage_percent: u64,
}

#[derive(Default)]
struct Stats {
    worlds: u64,
    carts: u64,
    decisions: u64,
    sends: u64,
    deliveries: u64,
    duplicates: u64,
    decide_time: StdDuration,
    codes: BTreeMap<ReasonCode, u64>,
    final_stops: BTreeMap<ReasonCode, u64>,
    channels: BTreeMap<Channel, u64>,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.worlds += o.worlds;
        self.carts += o.carts;
        self.decisions += o.decisions;
        self.sends += o.sends;
        self.deliveries += o.deliveries;
        self.duplicates += o.duplicates;
        self.decide_time += o.decide_time;
        for (k, v) in o.codes {
            *self.codes.entry(k).or_default() += v;
        }
        for (k, v) in o.final_stops {
            *self.final_stops.entry(k).or_default() += v;
        }
        for (k, v) in o.channels {
            *self.channels.entry(k).or_default() += v;
        }
    }
}

impl World {
    fn generate(seed: u64, w: usize) -> World {
        let mut rng = Rng(seed);
        let (base, edge_zone, odd_end) = if rng.chance(40) {
            let (instant, zone, (h, m)) = *rng.pick(DST_EDGES);
            let edge: DateTime<Utc> = instant.parse().expect("instant");
            let base = if rng.chance(50) { edge - rng.mins(0, 5 * 60) } else { edge - Duration::hours(36) + rng.mins(0, 72 * 60) };
            (base, Some(zone), Some(hm(h, m)))
        } else {
            ("2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().expect("instant") + rng.secs(0, 360 * 86_400), None, None)
        };
        let campaigns: Vec<Campaign> = (0..1 + rng.below(3)).map(|i| gen_campaign(&mut rng, &format!("camp{i}"), odd_end)).collect();
        let known = rng.chance(75);
        let customer_id = known.then(|| format!("u{w}"));
        let mut contact = gen_contact(&mut rng, w);
        if let Some(zone) = edge_zone.filter(|_| rng.chance(70)) {
            contact.timezone = Some(zone.into());
        }
        let mut events = Vec::new();
        let cid = customer_id.as_deref();
        if known {
            if rng.chance(50) {
                let mut e = event(format!("w{w}-identify"), EventType::Identify, base - Duration::days(1), None, cid);
                e.customer = Some(contact.clone());
                events.push(e);
            }
            if rng.chance(15) {
                let mut e = event(format!("w{w}-consent"), EventType::Identify, base + rng.mins(0, 5 * 1440), None, cid);
                e.customer = Some(CustomerPatch { consents: Some(ConsentPatch { email: consent(&mut rng), sms: consent(&mut rng), push: consent(&mut rng), web_push: consent(&mut rng) }), ..Default::default() });
                events.push(e);
            }
            if rng.chance(20) {
                let mut e = event(format!("w{w}-return"), EventType::Return, base - rng.mins(1440, 120 * 1440), None, cid);
                e.items = items(&mut rng);
                events.push(e);
            }
            if rng.chance(10) {
                let mut e = event(format!("w{w}-other-purchase"), EventType::Purchase, base + rng.mins(0, 5 * 1440), None, cid);
                e.order_id = Some(format!("o-w{w}"));
                events.push(e);
            }
        }
        let cart_count = match rng.below(10) {
            0..=4 => 1,
            5..=7 => 2,
            _ => 3,
        };
        let mut carts = Vec::new();
        for c in 0..cart_count {
            let id = format!("w{w}c{c}");
            let start = if c == 0 { base } else { base + rng.mins(0, 10 * 1440) };
            events.extend(gen_cart_events(&mut rng, &id, cid, &contact, start));
            carts.push(SimCart { cart: Cart::from_events(&id, &[]), id, events: Vec::new(), progress: Progress::default(), timer: None, last: None });
        }
        let mut world = World {
            seed,
            rng,
            campaigns,
            customer: None,
            carts,
            history: Vec::new(),
            queue: Vec::new(),
            seq: 0,
            now: base - Duration::days(200),
            engage_percent: 0,
        };
        world.engage_percent = *world.rng.pick(&[0, 10, 30]);
        // Delivery: mostly at once, some late (so out of order), some twice.
        for e in events {
            let delay = match world.rng.below(50) {
                0..=34 => world.rng.secs(0, 10),
                35..=45 => world.rng.secs(10, 7200),
                _ => world.rng.secs(7200, 2 * 86_400),
            };
            let at = e.occurred_at + delay;
            if world.rng.chance(8) {
                let again = at + world.rng.secs(0, 86_400);
                world.push(again, Arrival::Event(Box::new(e.clone())));
            }
            world.push(at, Arrival::Event(Box::new(e)));
        }
        if world.rng.chance(6) {
            let index = world.rng.below(world.campaigns.len() as u64) as usize;
            let off = base + world.rng.mins(0, 3 * 1440);
            world.push(off, Arrival::Campaign { index, enabled: false });
            if world.rng.chance(50) {
                let on = off + world.rng.mins(0, 2 * 1440);
                world.push(on, Arrival::Campaign { index, enabled: true });
            }
        }
        world
    }

    fn push(&mut self, at: DateTime<Utc>, what: Arrival) {
        self.seq += 1;
        self.queue.push(Pending { at, seq: self.seq, what });
    }

    #[track_caller]
    fn fail(&self, i: usize, now: DateTime<Utc>, what: &str, decision: &Decision) -> ! {
        let c = &self.carts[i];
        panic!(
            "invariant broken: {what}\n  world seed {:#x}, cart {}, now {now}\n  decision {decision:?}\n  cart {:?}\n  progress {:?}\n  customer {:?}\n  campaigns {:#?}\n  history {:#?}",
            self.seed, c.id, c.cart, c.progress, self.customer, self.campaigns, self.history
        );
    }

    fn first_check_delay(&self) -> Duration {
        self.campaigns.iter().filter(|c| c.enabled).filter_map(|c| c.steps.first().map(|s| s.delay)).min().unwrap_or_else(|| Duration::minutes(30))
    }

    fn run(mut self, stats: &mut Stats) {
        stats.worlds += 1;
        stats.carts += self.carts.len() as u64;
        let mut guard = 0;
        loop {
            guard += 1;
            assert!(guard < 10_000, "world {:#x} does not settle", self.seed);
            let next_arrival = self.queue.iter().enumerate().min_by_key(|(_, p)| (p.at, p.seq)).map(|(i, p)| (p.at, i));
            let next_timer = self.carts.iter().enumerate().filter_map(|(i, c)| c.timer.map(|t| (t, i))).min();
            match (next_arrival, next_timer) {
                (None, None) => break,
                (Some((at, q)), timer) if timer.is_none_or(|(t, _)| at <= t) => {
                    let pending = self.queue.swap_remove(q);
                    self.now = self.now.max(at);
                    self.arrive(pending.what, stats);
                }
                (_, Some((at, i))) => {
                    self.now = self.now.max(at);
                    self.carts[i].timer = None;
                    self.check(i, stats);
                }
                (Some(_), None) => unreachable!("handled by the guard above"),
            }
        }
        // Carts that never had a timer (never active) are decided once the
        // stream is over; every cart must end in a Stop.
        for i in 0..self.carts.len() {
            let mut rounds = 0;
            while !matches!(self.carts[i].last, Some(Decision::Stop { .. })) {
                rounds += 1;
                assert!(rounds < 50, "cart {} of world {:#x} never stops", self.carts[i].id, self.seed);
                if let Some(t) = self.carts[i].timer.take() {
                    self.now = self.now.max(t);
                }
                self.check(i, stats);
            }
            let Some(Decision::Stop { reason }) = &self.carts[i].last else { unreachable!() };
            assert!(!reason.message.is_empty());
            *stats.final_stops.entry(reason.code).or_default() += 1;
        }
    }

    fn arrive(&mut self, what: Arrival, stats: &mut Stats) {
        match what {
            Arrival::Engage(message_id) => {
                if let Some(m) = self.history.iter_mut().find(|m| m.message_id == message_id) {
                    m.engaged_at.get_or_insert(self.now);
                }
            }
            Arrival::Campaign { index, enabled } => self.campaigns[index].enabled = enabled,
            Arrival::Event(e) => {
                stats.deliveries += 1;
                let cart = e.cart_id.as_ref().map(|id| self.carts.iter().position(|c| &c.id == id).expect("generated cart"));
                if let Some(i) = cart {
                    if self.carts[i].events.iter().any(|x| x.event_id == e.event_id) {
                        stats.duplicates += 1;
                        return;
                    }
                }
                if let Some(id) = &e.customer_id {
                    let existed = self.customer.is_some();
                    let customer = self.customer.get_or_insert_with(|| Customer::new(id));
                    if !customer.apply(&e) && !existed {
                        self.customer = None;
                    }
                }
                if let Some(i) = cart {
                    let now = self.now;
                    let delay = self.first_check_delay();
                    let c = &mut self.carts[i];
                    let pos = c.events.partition_point(|x| (x.occurred_at, &x.event_id) <= (e.occurred_at, &e.event_id));
                    c.events.insert(pos, *e);
                    c.cart = Cart::from_events(&c.id, &c.events);
                    if let (CartStatus::Active, Some(last)) = (c.cart.status, c.cart.last_activity_at) {
                        let due = (last + delay).max(now);
                        if c.timer.is_none_or(|armed| armed > due) {
                            c.timer = Some(due);
                        }
                    }
                }
            }
        }
    }

    /// The checker: decide until a Wait or a Stop, recording every Send.
    fn check(&mut self, i: usize, stats: &mut Stats) {
        let now = self.now;
        let cart_id = self.carts[i].id.clone();
        let customer_id = self.carts[i].cart.customer_id.clone();
        let key = CustomerKey::for_cart(customer_id.as_ref(), &cart_id.as_str().into());
        let since = now - Duration::days(HISTORY_DAYS);
        let mut history: Vec<MessageRecord> = self.history.iter().filter(|m| m.customer_key == key && m.decided_at >= since).cloned().collect();
        for _ in 0..16 {
            let c = &self.carts[i];
            let customer = if customer_id.is_some() { self.customer.as_ref() } else { None };
            let input = Input { cart: &c.cart, progress: &c.progress, customer, campaigns: &self.campaigns, history: &history, channels: &Channel::ALL, now };
            let started = Instant::now();
            let decision = decide(&input);
            stats.decide_time += started.elapsed();
            stats.decisions += 1;
            *stats.codes.entry(decision.reason().code).or_default() += 1;
            self.verify(i, now, customer, &history, &decision);
            match decision {
                Decision::Send { ref campaign_id, step, channel, .. } => {
                    let message = MessageRecord {
                        message_id: MessageRecord::id_for(&cart_id, step, channel),
                        cart_id: cart_id.clone().into(),
                        customer_key: key.clone(),
                        campaign_id: campaign_id.clone(),
                        step,
                        channel,
                        decided_at: now,
                        status: MessageStatus::Sent { provider_message_id: format!("p-{cart_id}-{step}"), at: now },
                        engaged_at: None,
                    };
                    self.carts[i].progress.record(campaign_id, step, channel, message.message_id.clone(), now);
                    if self.rng.chance(self.engage_percent) {
                        let at = now + self.rng.mins(1, 48 * 60);
                        self.push(at, Arrival::Engage(message.message_id.to_string()));
                    }
                    history.push(message.clone());
                    self.history.push(message);
                    stats.sends += 1;
                    *stats.channels.entry(channel).or_default() += 1;
                    self.carts[i].last = Some(decision);
                }
                Decision::Wait { until, .. } => {
                    self.carts[i].timer = Some(until);
                    self.carts[i].last = Some(decision);
                    return;
                }
                Decision::Stop { .. } => {
                    self.carts[i].timer = None;
                    self.carts[i].last = Some(decision);
                    return;
                }
            }
        }
        panic!("world {:#x}: cart {cart_id} took 16 decisions at {now} without a wait or a stop", self.seed);
    }

    /// The rules, checked against the world's ground truth.
    fn verify(&self, i: usize, now: DateTime<Utc>, customer: Option<&Customer>, history: &[MessageRecord], d: &Decision) {
        let c = &self.carts[i];
        if d.reason().message.is_empty() {
            self.fail(i, now, "a decision without an explanation", d);
        }
        match d {
            Decision::Wait { until, reason } => {
                if *until <= now {
                    self.fail(i, now, "a wait that does not lie ahead (the timer would spin)", d);
                }
                if reason.code == ReasonCode::QuietHoursDeferred {
                    // The deciding campaign: the entered one, else one of the enabled ones.
                    let contact = contact_of(c, customer);
                    let allowed = |k: &Campaign| !is_quiet(*until, zone_of(contact, &k.quiet_hours.default_timezone), &k.quiet_hours);
                    let ok = match &c.progress.campaign_id {
                        Some(id) => self.campaigns.iter().filter(|k| &k.id == id).any(allowed),
                        None => self.campaigns.iter().filter(|k| k.enabled).any(allowed),
                    };
                    if !ok {
                        self.fail(i, now, "deferred to a time still inside quiet hours", d);
                    }
                }
            }
            Decision::Stop { reason } => {
                if reason.code == ReasonCode::Purchased && c.cart.status != CartStatus::Converted {
                    self.fail(i, now, "stopped as purchased without a purchase", d);
                }
            }
            Decision::Send { campaign_id, step, channel, .. } => {
                let channel = *channel;
                // Never after a purchase the engine has seen.
                if c.cart.status == CartStatus::Converted || c.events.iter().any(|e| e.kind == EventType::Purchase) {
                    self.fail(i, now, "a message after the purchase was delivered", d);
                }
                if c.cart.status != CartStatus::Active {
                    self.fail(i, now, "a message for a cart that is not active", d);
                }
                // One message per cart and step, steps in order.
                if self.history.iter().any(|m| m.cart_id == c.id && m.step == *step) {
                    self.fail(i, now, "a second message for the same cart and step", d);
                }
                if *step as usize != c.progress.steps.len() {
                    self.fail(i, now, "a step out of order", d);
                }
                let Some(campaign) = self.campaigns.iter().find(|k| &k.id == campaign_id) else { self.fail(i, now, "a message for an unknown campaign", d) };
                if !campaign.enabled {
                    self.fail(i, now, "a message from a disabled campaign", d);
                }
                if c.progress.campaign_id.as_ref().is_some_and(|id| id != campaign_id) {
                    self.fail(i, now, "a cart switched campaign mid-sequence", d);
                }
                if c.progress.campaign_id.is_none()
                    && self.campaigns.iter().any(|k| k.enabled && k.priority > campaign.priority && k.entry == Default::default())
                {
                    self.fail(i, now, "a lower-priority campaign won over an enabled, unfiltered one", d);
                }
                // Timing: abandoned, and follow-ups only without engagement.
                let last = c.cart.last_activity_at.unwrap_or_else(|| self.fail(i, now, "a message for a cart without activity", d));
                let abandoned_at = last + campaign.steps[0].delay;
                match c.progress.steps.last() {
                    None => {
                        if now < abandoned_at {
                            self.fail(i, now, "a first message before the cart was abandoned", d);
                        }
                    }
                    Some(prev) => {
                        if now < prev.at {
                            self.fail(i, now, "a follow-up before the previous message", d);
                        }
                        if last > prev.at {
                            self.fail(i, now, "a follow-up although the customer came back to the cart", d);
                        }
                        if self.history.iter().any(|m| m.message_id == prev.message_id && m.engaged_at.is_some()) {
                            self.fail(i, now, "a follow-up although the previous message was engaged with", d);
                        }
                    }
                }
                // Consent and the property the channel needs.
                let contact = contact_of(c, customer);
                let consents = contact.consents.unwrap_or_default();
                let (consented, reachable) = match channel {
                    Channel::Email => (consents.email, contact.email.as_ref().map(|e| e.expose()).and_then(contact::normalise_email).is_some()),
                    Channel::Sms => (consents.sms, contact.phone.as_ref().map(|p| p.expose()).is_some_and(|p| phone_facts(p).0)),
                    Channel::Push => (consents.push, contact.push_tokens.as_ref().is_some_and(|t| !t.is_empty())),
                    Channel::WebPush => (consents.web_push, contact.web_push_subscription.is_some()),
                };
                if consented != Some(true) {
                    self.fail(i, now, "a message on a channel without consent", d);
                }
                if !reachable {
                    self.fail(i, now, "a message on a channel without its contact property", d);
                }
                // Caps.
                let caps = &campaign.caps;
                if matches!(channel, Channel::Push | Channel::WebPush) {
                    let since = now - caps.push_window;
                    let pushes = history.iter().filter(|m| matches!(m.channel, Channel::Push | Channel::WebPush) && m.decided_at > since).count();
                    if pushes >= caps.push_max as usize {
                        self.fail(i, now, "the push cap broken", d);
                    }
                }
                if channel == Channel::Sms {
                    let on_cart = self.history.iter().filter(|m| m.cart_id == c.id && m.channel == Channel::Sms).count();
                    if on_cart >= caps.sms_max_per_cart as usize {
                        self.fail(i, now, "the SMS-per-cart cap broken", d);
                    }
                    if now > abandoned_at + caps.sms_window {
                        self.fail(i, now, "an SMS after the SMS window closed", d);
                    }
                }
                if *step == 0 {
                    let since = now - caps.entry_cooldown;
                    if history.iter().any(|m| m.cart_id != c.id && m.decided_at > since) {
                        self.fail(i, now, "an entry inside the cooldown after another cart's message", d);
                    }
                }
                if let Some(customer) = customer {
                    if customer.purchases.iter().any(|p| *p <= now && now < *p + caps.after_purchase) {
                        self.fail(i, now, "a message within the pause after a purchase", d);
                    }
                }
                // Quiet hours in the customer's zone.
                if campaign.quiet_hours.channels.contains(&channel) {
                    let zone = zone_of(contact, &campaign.quiet_hours.default_timezone);
                    if is_quiet(now, zone, &campaign.quiet_hours) {
                        self.fail(i, now, "an SMS or push inside quiet hours", d);
                    }
                }
            }
        }
    }
}

/// The contact the checker hands the engine: the profile of a known
/// customer, else what was typed on the cart.
fn contact_of<'a>(c: &'a SimCart, customer: Option<&'a Customer>) -> &'a CustomerPatch {
    customer.map_or(&c.cart.contact, |k| &k.profile)
}

/// What a phone number gives: whether it is valid E.164, and its region's
/// zone. Memoised, since the numbers come from a short list and parsing is
/// slow in a debug build.
fn phone_facts(phone: &str) -> (bool, Option<Tz>) {
    thread_local! {
        static FACTS: std::cell::RefCell<BTreeMap<String, (bool, Option<Tz>)>> = const { std::cell::RefCell::new(BTreeMap::new()) };
    }
    FACTS.with(|f| {
        *f.borrow_mut().entry(phone.to_owned()).or_insert_with(|| {
            (contact::normalise_e164(phone).is_some(), contact::phone_region(phone).and_then(|r| contact::region_time_zone(&r)))
        })
    })
}

/// The customer's zone, by the rule: profile, else phone region, else the
/// campaign default.
fn zone_of(contact: &CustomerPatch, default: &str) -> Tz {
    contact
        .timezone
        .as_deref()
        .and_then(|z| z.parse::<Tz>().ok())
        .or_else(|| contact.phone.as_ref().map(|p| p.expose()).and_then(|p| phone_facts(p).1))
        .unwrap_or_else(|| default.parse().unwrap_or(Tz::UTC))
}

fn is_quiet(at: DateTime<Utc>, zone: Tz, q: &QuietHours) -> bool {
    let t = at.with_timezone(&zone).time();
    match q.start.cmp(&q.end) {
        std::cmp::Ordering::Equal => false,
        std::cmp::Ordering::Greater => t >= q.start || t < q.end,
        std::cmp::Ordering::Less => t >= q.start && t < q.end,
    }
}

#[test]
fn simulated_carts_never_break_a_rule() {
    let seed = std::env::var("CARTBACK_SIM_SEED").ok().and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()).unwrap_or(DEFAULT_SEED);
    let target: u64 = std::env::var("CARTBACK_SIM_CARTS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_CARTS as u64);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4) as u64;
    let started = Instant::now();
    let per_thread = target.div_ceil(threads);
    let mut stats = Stats::default();
    let results: Vec<Stats> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut stats = Stats::default();
                    let mut w = t as usize;
                    while stats.carts < per_thread {
                        let world_seed = seed ^ (w as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                        World::generate(world_seed, w).run(&mut stats);
                        w += threads as usize;
                    }
                    stats
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("simulation thread")).collect()
    });
    for r in results {
        stats.merge(r);
    }
    let elapsed = started.elapsed();
    eprintln!(
        "simulation: seed {seed:#x}, {} carts in {} worlds, {} deliveries ({} duplicates), {} decisions, {} sends in {:.2?} on {threads} thread(s)",
        stats.carts, stats.worlds, stats.deliveries, stats.duplicates, stats.decisions, stats.sends, elapsed
    );
    eprintln!(
        "simulation: {:.0} decisions/s overall (whole loop), {:.0} decisions/s inside decide (per thread)",
        stats.decisions as f64 / elapsed.as_secs_f64(),
        stats.decisions as f64 / stats.decide_time.as_secs_f64()
    );
    eprintln!("simulation: decisions by reason {:?}", stats.codes);
    eprintln!("simulation: final stops by reason {:?}", stats.final_stops);
    eprintln!("simulation: sends by channel {:?}", stats.channels);
    assert!(stats.carts >= target, "only {} carts simulated", stats.carts);
    // The generator must actually exercise the rules it claims to test.
    for code in [
        ReasonCode::Sent, ReasonCode::WaitingForInactivity, ReasonCode::WaitingForNextStep, ReasonCode::QuietHoursDeferred,
        ReasonCode::Purchased, ReasonCode::CartEmptied, ReasonCode::NothingInCart, ReasonCode::NoConsent, ReasonCode::NoReachableChannel,
        ReasonCode::Cooldown7d, ReasonCode::RecentPurchase, ReasonCode::Engaged, ReasonCode::SequenceCompleted, ReasonCode::CampaignDisabled,
        ReasonCode::NoMatchingCampaign,
    ] {
        assert!(stats.codes.get(&code).is_some_and(|n| *n > 0), "the simulation never produced {code:?}");
    }
    for channel in Channel::ALL {
        assert!(stats.channels.get(&channel).is_some_and(|n| *n > 0), "the simulation never sent by {channel:?}");
    }
}
