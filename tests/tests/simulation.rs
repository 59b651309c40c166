//! The many-carts simulation, driving the code that ships: the real ingest,
//! checker, delivery and feedback services (`cartback_core::service`) over
//! the local runtime's SQLite state and campaign store (in memory), with an
//! in-process scheduler, queue and sender that record what they are asked,
//! on a manual clock.
//!
//! Each generated "world" is one customer (or guest) with one to three carts,
//! a few campaigns and a stream of storefront events, sent as JSON bodies to
//! `Ingest::ingest_body`, late, out of order and twice. The simulation plays
//! the runtime around the services, the way EventBridge and SQS behave:
//!
//! - a timer armed through the scheduler port fires at its time into
//!   `Checker::on_timer` (now and then late, or twice);
//! - a job put on a queue reaches `Delivery::deliver` a little later (now and
//!   then twice); the sender fails some sends, retryably or for good, and a
//!   retryable failure comes back after a backoff;
//! - clicks on sent messages arrive through `Feedback::record`, and marketers
//!   switch campaigns off and on in the campaign store.
//!
//! Every send is checked against the rules, computed independently from the
//! world's ground truth: the events ingest accepted (folded), the campaigns
//! as switched, and every message decided so far. Every provider call is
//! checked against the purchases received. At the end every cart must have
//! stopped with a reason, and the stored cart must equal the fold of the
//! accepted events. Set `CARTBACK_SIM_SEED` / `CARTBACK_SIM_CARTS` to replay
//! or scale a run.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use cartback_core::campaign::{Campaign, ChannelOrder, DelayFrom, QuietHours, Region, Segment, Step};
use cartback_core::cart::{Cart, CartStatus};
use cartback_core::consent::LegalBasis;
use cartback_core::contact;
use cartback_core::customer::Customer;
use cartback_core::engine::Decision;
use cartback_core::event::{ConsentPatch, CustomerPatch, Device, Event, EventType, Item, PushPlatform, PushToken};
use cartback_core::ids::CustomerKey;
use cartback_core::message::{Channel, MessageJob, MessageRecord, Outgoing};
use cartback_core::ports::{
    CampaignStore, CartStore, JobQueue, MessageStore, PortError, Scheduler, SendError, Sender, StateStore, Timeline,
    TimerPayload,
};
use cartback_core::reason::ReasonCode;
use cartback_core::service::{
    CampaignCache, CheckOutcome, Checker, Delivery, DeliveryError, DeliveryOutcome, EventStatus, Feedback,
    FeedbackEvent, FeedbackKind, FeedbackOutcome, Ingest, Settings,
};
use cartback_core::signing::Secret;
use cartback_core::Decimal;
use cartback_local::testing::ManualClock;
use cartback_local::Database;
use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;

const DEFAULT_SEED: u64 = 0x00C4_27BA_CC00_2026;
/// Keeps the suite near half a minute in a debug build on the 2-core CI
/// machine; set `CARTBACK_SIM_CARTS=100000` for a long run (README, Tests).
const DEFAULT_CARTS: usize = 5_000;

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
    "America/New_York",
    "Europe/Paris",
    "Europe/London",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Pacific/Auckland",
    "America/Santiago",
    "UTC",
];
/// The zones the generator produces (`ZONES`, the phones' regions) where
/// the law asks a guest's explicit consent to email (EU/EEA, UK).
const GENERATED_EXPLICIT_CONSENT_ZONES: &[&str] = &["Europe/Paris", "Europe/London"];
/// Valid numbers of several regions (the region decides the fallback zone),
/// and invalid ones. Phone parsing dominates the engine's cost in a debug
/// build (about 0.5 to 3 ms a number), so only a few customers have one.
const PHONES: &[&str] =
    &["+33612345678", "+33612345678", "+33612345678", "+33612345678", "+442079460958", "+12015550123"];
const BAD_PHONES: &[&str] = &["0612345678", "+1 555", "+999123456789"];
/// A real browser subscription's keys (65-byte P-256 point, 16-byte secret).
const P256DH: &str = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
const AUTH: &str = "tBHItJI5svbpez7KI4CCXg";
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
    let mut all = Channel::PERSONAL.to_vec();
    for i in (1..all.len()).rev() {
        all.swap(i, rng.below(i as u64 + 1) as usize);
    }
    all.truncate(1 + rng.below(4) as usize);
    all
}

fn gen_campaign(rng: &mut Rng, id: &str, odd_end: Option<NaiveTime>) -> Campaign {
    let mut c = Campaign::default_campaign();
    c.id = id.into();
    // Every customer treated: the simulation checks what is sent.
    c.holdout_percent = 0;
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
            channels: if rng.chance(50) {
                ChannelOrder::default()
            } else {
                ChannelOrder { mobile: random_order(rng), desktop: random_order(rng) }
            },
            template: (*rng.pick(&["reminder", "last_call"])).into(),
            subject: None,
            offer: None,
            webhook: None,
        })
        .collect();
    if rng.chance(50) {
        c.caps.entry_cooldown = Duration::days(*rng.pick(&[0, 1, 7, 7]));
        c.caps.push_max = *rng.pick(&[0, 1, 2, 2, 3]);
        c.caps.push_window = Duration::days(*rng.pick(&[1, 7, 14]));
        c.caps.after_purchase = Duration::hours(*rng.pick(&[0, 24, 24]));
        c.caps.sms_max_per_cart = *rng.pick(&[0, 1, 1, 2]);
        c.caps.sms_window = Duration::hours(*rng.pick(&[1, 48, 48]));
        c.caps.max_send_delay = Duration::hours(*rng.pick(&[6, 48, 48, 24 * 30]));
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
    if rng.chance(20) {
        c.region = Some(*rng.pick(&Region::ALL));
    }
    if rng.chance(10) {
        c.require_explicit_consent_for_guests = Some(rng.chance(50));
    }
    if rng.chance(15) {
        c.entry.min_cart_value = Some(Decimal::new(*rng.pick(&[1000, 3000, 10000]), 2));
    }
    if rng.chance(15) {
        c.entry.min_items_viewed = Some(1 + rng.below(3) as u32);
    }
    if rng.chance(10) {
        c.entry.segment =
            Some(*rng.pick(&[Segment::ReturnedRecently, Segment::FirstTimeBuyer, Segment::ReturningBuyer]));
    }
    c
}

fn consent(rng: &mut Rng) -> Option<bool> {
    *rng.pick(&[Some(true), Some(true), Some(true), Some(false), None])
}

fn random_consents(rng: &mut Rng) -> ConsentPatch {
    ConsentPatch {
        email: consent(rng),
        sms: consent(rng),
        push: consent(rng),
        web_push: consent(rng),
        basis: *rng.pick(&[None, None, Some(LegalBasis::Consent), Some(LegalBasis::SoftOptIn)]),
        ..Default::default()
    }
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
        consents: (!rng.chance(10)).then(|| random_consents(rng)),
        push_tokens: match rng.below(20) {
            0 => Some(vec![]),
            1..=9 => Some(vec![PushToken { platform: PushPlatform::Fcm, token: format!("tok-{w}").into() }]),
            _ => None,
        },
        web_push_subscription: rng.chance(35).then(|| {
            let endpoint = format!("https://push.example/{w}");
            serde_json::json!({"endpoint": endpoint, "keys": {"p256dh": P256DH, "auth": AUTH}}).into()
        }),
        snoozed_until: None,
    }
}

/// The event as Cartback stores it: contact values their channels cannot use
/// left out (the model's own check, not the parser's), and the fields left out.
fn as_kept(mut e: Event) -> (Event, Vec<&'static str>) {
    let mut left_out = Vec::new();
    if let Some(customer) = e.customer.as_mut() {
        if customer.email.as_ref().is_some_and(|m| contact::normalise_email(m.expose()).is_none()) {
            customer.email = None;
            left_out.push("customer.email");
        }
        if customer.phone.as_ref().is_some_and(|p| contact::normalise_e164(p.expose()).is_none()) {
            customer.phone = None;
            left_out.push("customer.phone");
        }
    }
    (e, left_out)
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
        answer: None,
    }
}

fn items(rng: &mut Rng) -> Vec<Item> {
    (0..1 + rng.below(2))
        .map(|_| {
            let (id, cents) = *rng.pick(CATALOGUE);
            Item {
                item_id: id.into(),
                item_name: None,
                variant: None,
                price: Some(Decimal::new(cents, 2)),
                quantity: 1 + rng.below(3) as u32,
                image_url: None,
                url: None,
            }
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
fn gen_cart_events(
    rng: &mut Rng,
    cart_id: &str,
    customer_id: Option<&str>,
    contact: &CustomerPatch,
    start: DateTime<Utc>,
) -> Vec<Event> {
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
            if rng.chance(80) {
                EventType::AddToCart
            } else {
                EventType::ViewItem
            }
        } else {
            *rng.pick(&[
                EventType::ViewItem,
                EventType::ViewItem,
                EventType::AddToCart,
                EventType::AddToCart,
                EventType::AddToCart,
                EventType::RemoveFromCart,
                EventType::RemoveFromCart,
                EventType::CartUpdate,
                EventType::CartUpdate,
                EventType::BeginCheckout,
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

// ---------------------------------------------------------------- the in-process ports

/// Records every timer armed; the world fires them.
#[derive(Default)]
struct RecordingScheduler {
    armed: Mutex<Vec<TimerPayload>>,
}

#[async_trait]
impl Scheduler for RecordingScheduler {
    async fn arm(&self, timer: &TimerPayload) -> Result<(), PortError> {
        self.armed.lock().expect("scheduler lock").push(timer.clone());
        Ok(())
    }
}

/// Records every job queued; the world delivers them.
#[derive(Default)]
struct RecordingQueue {
    jobs: Mutex<Vec<MessageJob>>,
}

#[async_trait]
impl JobQueue for RecordingQueue {
    async fn enqueue(&self, job: &MessageJob) -> Result<(), PortError> {
        self.jobs.lock().expect("queue lock").push(job.clone());
        Ok(())
    }
}

/// Answers what the world scripted for the next send, and records every call
/// (the provider got the message whatever it answered).
#[derive(Default)]
struct RecordingSender {
    next_failure: Mutex<Option<SendError>>,
    calls: Mutex<Vec<(MessageJob, DateTime<Utc>)>>,
}

#[async_trait]
impl Sender for RecordingSender {
    async fn send(&self, job: &MessageJob, now: DateTime<Utc>) -> Result<String, SendError> {
        self.calls.lock().expect("sender lock").push((job.clone(), now));
        match self.next_failure.lock().expect("sender lock").take() {
            Some(failure) => Err(failure),
            None => Ok(format!("p-{}", job.message_id)),
        }
    }
}

/// The services of one world, wired as `cartback dev` wires them, over an
/// in-memory database.
struct Runtime {
    clock: Arc<ManualClock>,
    db: Database,
    scheduler: Arc<RecordingScheduler>,
    queue: Arc<RecordingQueue>,
    sender: Arc<RecordingSender>,
    ingest: Ingest,
    checker: Checker,
    delivery: Delivery,
    feedback: Feedback,
}

impl Runtime {
    fn new(start: DateTime<Utc>) -> Runtime {
        let clock = Arc::new(ManualClock::new(start));
        let db = Database::open_in_memory().expect("in-memory database").with_clock(clock.clone());
        let state: Arc<dyn StateStore> = Arc::new(db.clone());
        // No cache lifetime: a marketer's switch is in force at once, so the
        // rules can be checked against the campaigns as switched.
        let campaigns = Arc::new(CampaignCache::new(Arc::new(db.clone()), clock.clone(), Duration::zero()));
        let scheduler = Arc::new(RecordingScheduler::default());
        let queue = Arc::new(RecordingQueue::default());
        let sender = Arc::new(RecordingSender::default());
        let secret = Secret::new(b"simulation-secret-0123456789".to_vec()).expect("strong secret");
        let settings = Arc::new(Settings::new(
            secret,
            "https://cartback.example",
            "https://shop.example/cart/{cart_id}?t={token}",
        ));
        Runtime {
            ingest: Ingest {
                store: state.clone(),
                scheduler: scheduler.clone(),
                campaigns: campaigns.clone(),
                clock: clock.clone(),
            },
            checker: Checker {
                store: state.clone(),
                scheduler: scheduler.clone(),
                queue: queue.clone(),
                campaigns: campaigns.clone(),
                templates: std::sync::Arc::new(cartback_core::service::TemplateCache::shipped_only()),
                clock: clock.clone(),
                settings,
            },
            delivery: Delivery {
                store: state.clone(),
                sender: sender.clone(),
                campaigns,
                clock: clock.clone(),
                webhook: None,
            },
            feedback: Feedback { store: state, clock: clock.clone() },
            clock,
            db,
            scheduler,
            queue,
            sender,
        }
    }
}

// ---------------------------------------------------------------- the world

enum Happening {
    /// A storefront event reaches ingest.
    Event(Box<Event>),
    /// The customer clicks a sent message.
    Click(String),
    Campaign {
        index: usize,
        enabled: bool,
    },
    Timer(TimerPayload),
    Job {
        job: Box<MessageJob>,
        attempt: u32,
    },
}

struct Pending {
    at: DateTime<Utc>,
    seq: u64,
    what: Happening,
}

/// One cart as the world knows it: the events ingest accepted, folded.
struct SimCart {
    id: String,
    events: Vec<Event>,
    cart: Cart,
    /// What the checker last decided for it.
    last: Option<Decision>,
}

/// A message the checker decided, and what became of it.
struct Decided {
    record: MessageRecord,
    /// Rejected by the provider or cancelled: no longer counts towards caps.
    closed: bool,
    clicked: bool,
    /// The provider accepted it.
    delivered: bool,
}

struct World {
    seed: u64,
    rng: Rng,
    campaigns: Vec<Campaign>,
    customer: Option<Customer>,
    carts: Vec<SimCart>,
    accepted: HashSet<String>,
    decided: Vec<Decided>,
    agenda: Vec<Pending>,
    /// Timers armed and not yet fired, by cart and due time.
    armed: HashSet<(String, DateTime<Utc>)>,
    seq: u64,
    engage_percent: u64,
    rt: Runtime,
}

#[derive(Default)]
struct Stats {
    worlds: u64,
    carts: u64,
    deliveries: u64,
    duplicates: u64,
    rejected_events: u64,
    decisions: u64,
    timer_fires: u64,
    scheduler_arms: u64,
    provider_calls: u64,
    sends: u64,
    retries: u64,
    cancelled: u64,
    clicks: u64,
    codes: BTreeMap<ReasonCode, u64>,
    final_stops: BTreeMap<ReasonCode, u64>,
    channels: BTreeMap<Channel, u64>,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        for (mine, theirs) in [
            (&mut self.worlds, o.worlds),
            (&mut self.carts, o.carts),
            (&mut self.deliveries, o.deliveries),
            (&mut self.duplicates, o.duplicates),
            (&mut self.rejected_events, o.rejected_events),
            (&mut self.decisions, o.decisions),
            (&mut self.timer_fires, o.timer_fires),
            (&mut self.scheduler_arms, o.scheduler_arms),
            (&mut self.provider_calls, o.provider_calls),
            (&mut self.sends, o.sends),
            (&mut self.retries, o.retries),
            (&mut self.cancelled, o.cancelled),
            (&mut self.clicks, o.clicks),
        ] {
            *mine += theirs;
        }
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
            let base = if rng.chance(50) {
                edge - rng.mins(0, 5 * 60)
            } else {
                edge - Duration::hours(36) + rng.mins(0, 72 * 60)
            };
            (base, Some(zone), Some(hm(h, m)))
        } else {
            ("2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().expect("instant") + rng.secs(0, 360 * 86_400), None, None)
        };
        let campaigns: Vec<Campaign> =
            (0..1 + rng.below(3)).map(|i| gen_campaign(&mut rng, &format!("camp{i}"), odd_end)).collect();
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
                let at = base + rng.mins(0, 5 * 1440);
                let mut e = event(format!("w{w}-consent"), EventType::Identify, at, None, cid);
                e.customer = Some(CustomerPatch { consents: Some(random_consents(&mut rng)), ..Default::default() });
                events.push(e);
            }
            if rng.chance(20) {
                let mut e =
                    event(format!("w{w}-return"), EventType::Return, base - rng.mins(1440, 120 * 1440), None, cid);
                e.items = items(&mut rng);
                events.push(e);
            }
            if rng.chance(10) {
                let at = base + rng.mins(0, 5 * 1440);
                let mut e = event(format!("w{w}-other-purchase"), EventType::Purchase, at, None, cid);
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
            carts.push(SimCart { cart: Cart::from_events(&id, &[]), id, events: Vec::new(), last: None });
        }
        let mut world = World {
            seed,
            rng,
            campaigns,
            customer: None,
            carts,
            accepted: HashSet::new(),
            decided: Vec::new(),
            agenda: Vec::new(),
            armed: HashSet::new(),
            seq: 0,
            engage_percent: 0,
            rt: Runtime::new(base - Duration::days(200)),
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
                world.push(again, Happening::Event(Box::new(e.clone())));
            }
            world.push(at, Happening::Event(Box::new(e)));
        }
        if world.rng.chance(6) {
            let index = world.rng.below(world.campaigns.len() as u64) as usize;
            let off = base + world.rng.mins(0, 3 * 1440);
            world.push(off, Happening::Campaign { index, enabled: false });
            if world.rng.chance(50) {
                let on = off + world.rng.mins(0, 2 * 1440);
                world.push(on, Happening::Campaign { index, enabled: true });
            }
        }
        world
    }

    fn push(&mut self, at: DateTime<Utc>, what: Happening) {
        self.seq += 1;
        self.agenda.push(Pending { at, seq: self.seq, what });
    }

    fn now(&self) -> DateTime<Utc> {
        cartback_core::ports::Clock::now(self.rt.clock.as_ref())
    }

    fn cart_index(&self, cart_id: &str) -> usize {
        self.carts
            .iter()
            .position(|c| c.id == cart_id)
            .unwrap_or_else(|| panic!("world {:#x}: unknown cart {cart_id}", self.seed))
    }

    #[track_caller]
    fn fail(&self, cart_id: &str, what: &str, detail: &dyn std::fmt::Debug) -> ! {
        let cart = self.carts.iter().find(|c| c.id == cart_id);
        let decided: Vec<_> = self.decided.iter().map(|d| (&d.record, d.closed, d.clicked, d.delivered)).collect();
        panic!(
            "invariant broken: {what}\n  world seed {:#x}, cart {cart_id}, now {}\n  detail {detail:?}\n  cart {:?}\n  \
             customer {:?}\n  campaigns {:#?}\n  decided {decided:#?}",
            self.seed,
            self.now(),
            cart.map(|c| &c.cart),
            self.customer,
            self.campaigns,
        );
    }

    async fn run(mut self, stats: &mut Stats) {
        stats.worlds += 1;
        stats.carts += self.carts.len() as u64;
        for campaign in &self.campaigns {
            self.rt.db.put(campaign).await.expect("campaign stored");
        }
        self.play(stats).await;
        // Carts that never got a timer (never active) are checked once the
        // stream is over, as `cartback explain` would: every cart must end
        // in a stop with a reason.
        for _ in 0..50 {
            let now = self.now();
            let open: Vec<String> = self
                .carts
                .iter()
                .filter(|c| !c.events.is_empty() && !matches!(c.last, Some(Decision::Stop { .. })))
                .map(|c| c.id.clone())
                .collect();
            if open.is_empty() {
                break;
            }
            for cart_id in open {
                self.push(now, Happening::Timer(TimerPayload { cart_id: cart_id.into(), due_at: now }));
            }
            self.play(stats).await;
        }
        self.settle(stats).await;
    }

    /// Plays the agenda until nothing is left to happen.
    async fn play(&mut self, stats: &mut Stats) {
        let mut guard = 0;
        while let Some(q) = self.agenda.iter().enumerate().min_by_key(|(_, p)| (p.at, p.seq)).map(|(i, _)| i) {
            guard += 1;
            assert!(guard < 20_000, "world {:#x} does not settle", self.seed);
            let pending = self.agenda.swap_remove(q);
            let now = self.now().max(pending.at);
            self.rt.clock.set(now);
            match pending.what {
                Happening::Event(e) => self.ingest(*e, stats).await,
                Happening::Click(message_id) => self.click(&message_id, stats).await,
                Happening::Campaign { index, enabled } => {
                    self.campaigns[index].enabled = enabled;
                    self.rt.db.put(&self.campaigns[index]).await.expect("campaign stored");
                }
                Happening::Timer(timer) => self.fire(timer, stats).await,
                Happening::Job { job, attempt } => self.deliver(*job, attempt, stats).await,
            }
            self.collect(stats);
        }
    }

    /// Turns what the services asked of the scheduler and the queue into
    /// happenings: EventBridge fires at the time (now and then late or
    /// twice), SQS delivers within a minute (now and then hours late, or twice).
    fn collect(&mut self, stats: &mut Stats) {
        let now = self.now();
        let armed = std::mem::take(&mut *self.rt.scheduler.armed.lock().expect("scheduler lock"));
        for timer in armed {
            stats.scheduler_arms += 1;
            if !self.armed.insert((timer.cart_id.to_string(), timer.due_at)) {
                continue;
            }
            let late = if self.rng.chance(10) { self.rng.secs(1, 120) } else { Duration::zero() };
            let at = timer.due_at.max(now) + late;
            if self.rng.chance(3) {
                let again = at + self.rng.secs(0, 600);
                self.push(again, Happening::Timer(timer.clone()));
            }
            self.push(at, Happening::Timer(timer));
        }
        let jobs = std::mem::take(&mut *self.rt.queue.jobs.lock().expect("queue lock"));
        for job in jobs {
            // Now and then the queue backs up (a consumer outage): the
            // purchase may then land before the job is taken.
            let at = if self.rng.chance(10) { now + self.rng.mins(5, 240) } else { now + self.rng.secs(0, 60) };
            // Now and then the customer buys while the reminder waits in
            // the queue: delivery must cancel it.
            if self.rng.chance(5) {
                let bought = now + Duration::seconds(self.rng.below((at - now).num_seconds().max(1) as u64) as i64);
                let customer_id = self.carts[self.cart_index(&job.cart_id)].cart.customer_id.clone();
                let mut purchase = event(
                    format!("{}-bought-{}", job.message_id, self.seq),
                    EventType::Purchase,
                    bought,
                    Some(&job.cart_id),
                    customer_id.as_deref(),
                );
                purchase.order_id = Some(format!("o-{}", job.message_id));
                self.push(bought, Happening::Event(Box::new(purchase)));
            }
            if self.rng.chance(3) {
                let again = at + self.rng.secs(0, 3600);
                self.push(again, Happening::Job { job: Box::new(job.clone()), attempt: 1 });
            }
            self.push(at, Happening::Job { job: Box::new(job), attempt: 1 });
        }
    }

    async fn ingest(&mut self, e: Event, stats: &mut Stats) {
        stats.deliveries += 1;
        let body = serde_json::to_vec(&serde_json::json!({ "events": [&e] })).expect("event JSON");
        let answer = self.rt.ingest.ingest_body(&body).await.expect("a well-formed body and a working store");
        let result = &answer.results[0];
        let cart_id = e.cart_id.clone().unwrap_or_default();
        match result.status {
            EventStatus::Duplicate => {
                stats.duplicates += 1;
                if !self.accepted.contains(e.event_id.as_str()) {
                    self.fail(&cart_id, "a new event answered as a duplicate", result);
                }
            }
            EventStatus::Retry => self.fail(&cart_id, "an event answered retry by a working store", result),
            EventStatus::Rejected => {
                stats.rejected_events += 1;
                // Only contact data is generated invalid; of it only a bad
                // time zone refuses the event (issue 9 item 12).
                let on_contact = result.error.as_ref().is_some_and(|err| err.field.starts_with("customer."));
                if !on_contact || e.customer.is_none() || self.accepted.contains(e.event_id.as_str()) {
                    self.fail(&cart_id, "an event rejected for something else than its bad contact data", result);
                }
            }
            EventStatus::Accepted => {
                // What Cartback keeps: a bad email or phone is left out with a warning naming it.
                let (e, left_out) = as_kept(e);
                let warned: Vec<&str> = result.warnings.iter().map(|w| w.field.as_str()).collect();
                if warned != left_out {
                    self.fail(&cart_id, "warnings that do not name what was left out", result);
                }
                if !self.accepted.insert(e.event_id.to_string()) {
                    self.fail(&cart_id, "a repeated event accepted twice", result);
                }
                if let Some(id) = &e.customer_id {
                    let existed = self.customer.is_some();
                    let customer = self.customer.get_or_insert_with(|| Customer::new(id));
                    if !customer.apply(&e) && !existed {
                        self.customer = None;
                    }
                }
                if e.cart_id.is_some() {
                    let i = self.cart_index(&cart_id);
                    let c = &mut self.carts[i];
                    let pos =
                        c.events.partition_point(|x| (x.occurred_at, &x.event_id) <= (e.occurred_at, &e.event_id));
                    c.events.insert(pos, e);
                    c.cart = Cart::from_events(&c.id, &c.events);
                }
            }
        }
    }

    async fn click(&mut self, message_id: &str, stats: &mut Stats) {
        let event = FeedbackEvent {
            message_id: message_id.into(),
            provider: "sim".into(),
            provider_message_id: format!("p-{message_id}"),
            kind: FeedbackKind::Clicked,
            at: self.now(),
            // A person's browser (clicks come a minute or more after the send).
            user_agent: Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Safari/605.1".into()),
        };
        match self.rt.feedback.record(&event).await.expect("state store") {
            FeedbackOutcome::Recorded { .. } | FeedbackOutcome::Duplicate => {
                stats.clicks += 1;
                if let Some(d) = self.decided.iter_mut().find(|d| d.record.message_id == message_id) {
                    d.clicked = true;
                }
            }
            FeedbackOutcome::UnknownMessage => self.fail("", "a click on a sent message answered as unknown", &event),
        }
    }

    async fn fire(&mut self, timer: TimerPayload, stats: &mut Stats) {
        stats.timer_fires += 1;
        self.armed.remove(&(timer.cart_id.to_string(), timer.due_at));
        let i = self.cart_index(&timer.cart_id);
        match self.rt.checker.on_timer(&timer).await.expect("state store") {
            CheckOutcome::NoSuchCart => {
                if !self.carts[i].events.is_empty() {
                    self.fail(&timer.cart_id, "a cart with accepted events is missing", &timer);
                }
            }
            CheckOutcome::Superseded => {}
            CheckOutcome::Decided { decision, sent } => {
                for message_id in sent {
                    let record = self.rt.db.get_message(&message_id.as_str().into()).await.expect("state store");
                    let Some(record) = record else {
                        self.fail(&timer.cart_id, "a send without its message record", &message_id)
                    };
                    self.verify_send(i, &record);
                    self.decided.push(Decided { record, closed: false, clicked: false, delivered: false });
                }
                self.verify_outcome(i, &decision);
                self.carts[i].last = Some(decision);
            }
        }
    }

    async fn deliver(&mut self, job: MessageJob, attempt: u32, stats: &mut Stats) {
        let failure = match self.rng.below(100) {
            0..=3 => Some(SendError::Retryable("provider throttled".into())),
            4 => Some(SendError::Permanent("mailbox does not exist".into())),
            _ => None,
        };
        *self.rt.sender.next_failure.lock().expect("sender lock") = failure;
        let outcome = self.rt.delivery.deliver(&job).await;
        let calls = std::mem::take(&mut *self.rt.sender.calls.lock().expect("sender lock"));
        for (sent, _) in &calls {
            stats.provider_calls += 1;
            self.verify_provider_call(sent);
        }
        let status = self.rt.db.get_message(&job.message_id).await.expect("state store").map(|m| m.status);
        let Some(d) = self.decided.iter_mut().find(|d| d.record.message_id == job.message_id) else {
            self.fail(&job.cart_id, "a job for a message never decided", &job);
        };
        d.closed = status.as_ref().is_some_and(|s| !s.counts_as_sent());
        match outcome {
            Ok(DeliveryOutcome::Sent { .. }) => {
                d.delivered = true;
                stats.sends += 1;
                *stats.channels.entry(job.channel).or_default() += 1;
                if self.rng.chance(self.engage_percent) {
                    let at = self.now() + self.rng.mins(1, 48 * 60);
                    self.push(at, Happening::Click(job.message_id.to_string()));
                }
            }
            Ok(DeliveryOutcome::Skipped(why)) => {
                if why == "purchased" {
                    stats.cancelled += 1;
                }
            }
            Ok(DeliveryOutcome::Rejected(_)) => {}
            // Held back at send time (quiet hours): comes back when allowed, not a failed attempt.
            Err(DeliveryError::Deferred { until, .. }) => {
                self.push(until, Happening::Job { job: Box::new(job), attempt });
            }
            Err(DeliveryError::Retry(_) | DeliveryError::Busy { .. }) if attempt < 8 => {
                stats.retries += 1;
                let at = self.now() + self.rng.mins(1, 10);
                self.push(at, Happening::Job { job: Box::new(job), attempt: attempt + 1 });
            }
            Err(error) => self.fail(&job.cart_id, "a job that cannot be delivered", &error),
        }
    }

    /// Reads the stored carts back at the end: the store holds the fold of
    /// the accepted events, and every decision is on the timeline with its
    /// reason, the last one a stop.
    async fn settle(&mut self, stats: &mut Stats) {
        for c in &self.carts {
            if c.events.is_empty() {
                continue;
            }
            let stored = self.rt.db.get_cart(&c.id.as_str().into()).await.expect("state store");
            let stored = stored.map(|r| r.cart());
            if stored.as_ref() != Some(&c.cart) {
                self.fail(&c.id, "the stored cart differs from the fold of the accepted events", &(stored, &c.events));
            }
            let timeline = self.rt.db.timeline(&c.id.as_str().into()).await.expect("state store");
            let mut last = None;
            for entry in timeline.iter().filter(|e| e.kind == "decision") {
                let Some(code) = ReasonCode::parse(&entry.code) else {
                    self.fail(&c.id, "an unknown reason code", entry)
                };
                if entry.message.is_empty() {
                    self.fail(&c.id, "a decision without an explanation", entry);
                }
                stats.decisions += 1;
                *stats.codes.entry(code).or_default() += 1;
                last = Some(code);
            }
            match (&c.last, last) {
                (Some(Decision::Stop { reason }), Some(code)) if reason.code == code && !reason.message.is_empty() => {
                    *stats.final_stops.entry(code).or_default() += 1;
                }
                _ => self.fail(&c.id, "a cart that does not end in a stop with a reason", &c.last),
            }
        }
    }
}

// ---------------------------------------------------------------- the rules, from ground truth

impl World {
    /// The contact the engine must use: the profile of a known customer,
    /// else what was typed on the cart.
    fn contact_of(&self, i: usize) -> &CustomerPatch {
        match (&self.carts[i].cart.customer_id, &self.customer) {
            (Some(_), Some(customer)) => &customer.profile,
            _ => &self.carts[i].cart.contact,
        }
    }

    fn customer_of(&self, i: usize) -> Option<&Customer> {
        self.carts[i].cart.customer_id.as_ref().and(self.customer.as_ref())
    }

    /// The messages that count for this cart's customer: sent or still
    /// pending, under the customer's key or the cart's guest key.
    fn counted_history(&self, i: usize) -> impl Iterator<Item = &MessageRecord> {
        let c = &self.carts[i];
        let key = CustomerKey::for_cart(c.cart.customer_id.as_ref(), &c.id.as_str().into());
        let guest = CustomerKey::Guest(c.id.as_str().into());
        self.decided
            .iter()
            .filter(move |d| !d.closed && (d.record.customer_key == key || d.record.customer_key == guest))
            .map(|d| &d.record)
    }

    /// The steps already decided for this cart, in order.
    fn progress(&self, cart_id: &str) -> Vec<&Decided> {
        let mut steps: Vec<&Decided> = self.decided.iter().filter(|d| d.record.cart_id == cart_id).collect();
        steps.sort_by_key(|d| d.record.step);
        steps
    }

    fn verify_send(&self, i: usize, m: &MessageRecord) {
        let c = &self.carts[i];
        let now = self.now();
        let fail = |what: &str| self.fail(&c.id, what, m);
        // Never after a purchase ingest has accepted.
        if c.cart.status == CartStatus::Converted || c.events.iter().any(|e| e.kind == EventType::Purchase) {
            fail("a message decided after the purchase was received");
        }
        if c.cart.status != CartStatus::Active {
            fail("a message for a cart that is not active");
        }
        if m.decided_at != now
            || m.customer_key != CustomerKey::for_cart(c.cart.customer_id.as_ref(), &c.id.as_str().into())
        {
            fail("a message record that does not say when and for whom it was decided");
        }
        // One message per cart and step, steps in order, one campaign.
        let progress = self.progress(&c.id);
        if progress.iter().any(|d| d.record.step == m.step) {
            fail("a second message for the same cart and step");
        }
        // Steps between the last message and this one can only have been skipped (checked below).
        let next_unsent = progress.last().map_or(0, |d| d.record.step as usize + 1);
        if (m.step as usize) < next_unsent {
            fail("a step out of order");
        }
        let Some(campaign) = self.campaigns.iter().find(|k| k.id == m.campaign_id) else { fail("an unknown campaign") };
        // Lateness: the steps between the last message and this one were
        // skipped, each found more than max_send_delay after it fell due;
        // this one goes no later than that.
        let Some(last) = c.cart.last_activity_at else { fail("a message for a cart without activity") };
        let max_delay = campaign.caps.max_send_delay;
        let mut before = progress.last().map(|d| d.record.decided_at);
        for k in next_unsent..=m.step as usize {
            let Some(step) = campaign.steps.get(k) else { fail("a step the campaign does not have") };
            let due = match (before, step.delay_from) {
                (None, _) | (Some(_), DelayFrom::LastActivity) => last + step.delay,
                (Some(at), DelayFrom::PreviousStep) => at + step.delay,
            };
            let due = before.map_or(due, |at| due.max(at));
            if k < m.step as usize && now <= due + max_delay {
                fail("a step skipped (or out of order) although it was not too late");
            }
            if k == m.step as usize && now > due + max_delay {
                fail("a step sent later than max_send_delay after it fell due");
            }
            before = Some(due);
        }
        if !campaign.enabled {
            fail("a message from a disabled campaign");
        }
        if progress.iter().any(|d| d.record.campaign_id != m.campaign_id) {
            fail("a cart switched campaign mid-sequence");
        }
        let unfiltered_higher =
            |k: &Campaign| k.enabled && k.priority > campaign.priority && k.entry == Default::default();
        if progress.is_empty() && self.campaigns.iter().any(unfiltered_higher) {
            fail("a lower-priority campaign won over an enabled, unfiltered one");
        }
        // Timing: abandoned, and follow-ups only without engagement.
        let abandoned_at = last + campaign.steps[0].delay;
        match progress.last() {
            None if now < abandoned_at => fail("a first message before the cart was abandoned"),
            None => {}
            Some(prev) => {
                if now < prev.record.decided_at {
                    fail("a follow-up before the previous message");
                }
                if last > prev.record.decided_at {
                    fail("a follow-up although the customer came back to the cart");
                }
                if prev.clicked {
                    fail("a follow-up although the previous message was clicked");
                }
            }
        }
        // Consent and the property the channel needs.
        let contact = self.contact_of(i);
        let consents = contact.consents.unwrap_or_default();
        let (consented, reachable) = match m.channel {
            Channel::Email => (
                consents.email,
                contact.email.as_ref().map(|e| e.expose()).and_then(contact::normalise_email).is_some(),
            ),
            Channel::Sms => {
                (consents.sms, contact.phone.as_ref().map(|p| p.expose()).is_some_and(|p| phone_facts(p).0))
            }
            Channel::Push => (consents.push, contact.push_tokens.as_ref().is_some_and(|t| !t.is_empty())),
            Channel::WebPush => (consents.web_push, contact.web_push_subscription.is_some()),
            // Not a channel of the simulated campaigns (no target to name).
            Channel::Webhook => (None, false),
        };
        if consented != Some(true) {
            fail("a message on a channel without consent");
        }
        // A guest's email only on explicit consent where the campaign requires it.
        if m.channel == Channel::Email && c.cart.customer_id.is_none() && consents.basis != Some(LegalBasis::Consent) {
            let required = match (campaign.require_explicit_consent_for_guests, campaign.region) {
                (Some(on), _) => on,
                (None, Some(region)) => matches!(region, Region::Eu | Region::Uk),
                (None, None) => {
                    let zone = zone_of(contact, &campaign.quiet_hours.default_timezone);
                    GENERATED_EXPLICIT_CONSENT_ZONES.contains(&zone.name())
                }
            };
            if required {
                fail("an email to a guest without the explicit consent the campaign requires");
            }
        }
        if !reachable {
            fail("a message on a channel without its contact property");
        }
        // Caps, over every message decided for this customer so far.
        let caps = &campaign.caps;
        if matches!(m.channel, Channel::Push | Channel::WebPush) {
            let since = now - caps.push_window;
            let is_push = |h: &&MessageRecord| matches!(h.channel, Channel::Push | Channel::WebPush);
            let pushes = self.counted_history(i).filter(is_push).filter(|h| h.decided_at > since).count();
            if pushes >= caps.push_max as usize {
                fail("the push cap broken");
            }
        }
        if m.channel == Channel::Sms {
            let on_cart = self.counted_history(i).filter(|h| h.cart_id == c.id && h.channel == Channel::Sms).count();
            if on_cart >= caps.sms_max_per_cart as usize {
                fail("the SMS-per-cart cap broken");
            }
            if now > abandoned_at + caps.sms_window {
                fail("an SMS after the SMS window closed");
            }
        }
        if m.step == 0 {
            let since = now - caps.entry_cooldown;
            if self.counted_history(i).any(|h| h.cart_id != c.id && h.decided_at > since) {
                fail("an entry inside the cooldown after another cart's message");
            }
        }
        if let Some(customer) = self.customer_of(i) {
            if customer.purchases.iter().any(|p| *p <= now && now < *p + caps.after_purchase) {
                fail("a message within the pause after a purchase");
            }
        }
        // Quiet hours in the customer's zone.
        if campaign.quiet_hours.channels.contains(&m.channel) {
            let zone = zone_of(contact, &campaign.quiet_hours.default_timezone);
            if is_quiet(now, zone, &campaign.quiet_hours) {
                fail("an SMS or push inside quiet hours");
            }
        }
    }

    /// The decision a check ended on: a wait that lies ahead (outside quiet
    /// hours when it defers for them), or a stop with a true reason.
    fn verify_outcome(&self, i: usize, d: &Decision) {
        let c = &self.carts[i];
        let now = self.now();
        if d.reason().message.is_empty() {
            self.fail(&c.id, "a decision without an explanation", d);
        }
        match d {
            Decision::Send { .. } => self.fail(&c.id, "a check that ended on a send", d),
            Decision::Withhold { .. } => self.fail(&c.id, "a check that ended on a held-out step", d),
            Decision::Skip { .. } => self.fail(&c.id, "a check that ended on a skip", d),
            Decision::Wait { until, reason } => {
                if *until <= now {
                    self.fail(&c.id, "a wait that does not lie ahead (the timer would spin)", d);
                }
                if reason.code == ReasonCode::QuietHoursDeferred {
                    // The deciding campaign: the entered one, else one of the enabled ones.
                    let contact = self.contact_of(i);
                    let allowed = |k: &&Campaign| {
                        !is_quiet(*until, zone_of(contact, &k.quiet_hours.default_timezone), &k.quiet_hours)
                    };
                    let entered = self.progress(&c.id).first().map(|p| p.record.campaign_id.clone());
                    let ok = match entered {
                        Some(id) => self.campaigns.iter().filter(|k| k.id == id).any(|k| allowed(&k)),
                        None => self.campaigns.iter().filter(|k| k.enabled).any(|k| allowed(&k)),
                    };
                    if !ok {
                        self.fail(&c.id, "deferred to a time still inside quiet hours", d);
                    }
                }
            }
            Decision::Stop { reason } => {
                if reason.code == ReasonCode::Purchased && c.cart.status != CartStatus::Converted {
                    self.fail(&c.id, "stopped as purchased without a purchase", d);
                }
            }
        }
    }

    /// What reached the provider: never after the purchase was received,
    /// never twice for one cart and step, never without a recipient.
    fn verify_provider_call(&self, job: &MessageJob) {
        let c = &self.carts[self.cart_index(&job.cart_id)];
        if c.cart.status == CartStatus::Converted || c.events.iter().any(|e| e.kind == EventType::Purchase) {
            self.fail(&c.id, "a message reached the provider after the purchase was received", job);
        }
        let Some(this) = self.decided.iter().find(|d| d.record.message_id == job.message_id) else {
            self.fail(&c.id, "a message reached the provider without a decision", job);
        };
        let twice =
            self.decided.iter().any(|d| d.delivered && d.record.cart_id == c.id && d.record.step == this.record.step);
        if twice {
            self.fail(&c.id, "two messages for one cart and step reached the provider", job);
        }
        let has_recipient = match &job.outgoing {
            Outgoing::Email { to, .. } => !to.expose().is_empty(),
            Outgoing::Sms { to, .. } => !to.expose().is_empty(),
            Outgoing::Push { token, .. } => !token.expose().is_empty(),
            Outgoing::WebPush { subscription, .. } => subscription.expose().get("endpoint").is_some(),
            Outgoing::Webhook { target, .. } => !target.as_str().is_empty(),
        };
        if !has_recipient {
            self.fail(&c.id, "a message sent without a recipient", job);
        }
    }
}

/// What a phone number gives: whether it is valid E.164, and its region's
/// zone. Memoised, since the numbers come from a short list and parsing is
/// slow in a debug build.
fn phone_facts(phone: &str) -> (bool, Option<Tz>) {
    thread_local! {
        static FACTS: std::cell::RefCell<BTreeMap<String, (bool, Option<Tz>)>> =
            const { std::cell::RefCell::new(BTreeMap::new()) };
    }
    FACTS.with(|f| {
        *f.borrow_mut().entry(phone.to_owned()).or_insert_with(|| {
            let zone = contact::phone_region(phone).and_then(|r| contact::region_time_zone(&r));
            (contact::normalise_e164(phone).is_some(), zone)
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
fn given_many_generated_carts_when_the_real_services_run_them_then_no_rule_is_ever_broken() {
    let seed = std::env::var("CARTBACK_SIM_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(DEFAULT_SEED);
    let target: u64 =
        std::env::var("CARTBACK_SIM_CARTS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_CARTS as u64);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4) as u64;
    let started = Instant::now();
    let per_thread = target.div_ceil(threads);
    let results: Vec<Stats> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let runtime =
                        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
                    let mut stats = Stats::default();
                    let mut w = t as usize;
                    while stats.carts < per_thread {
                        let world_seed = seed ^ (w as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                        runtime.block_on(World::generate(world_seed, w).run(&mut stats));
                        w += threads as usize;
                    }
                    stats
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("simulation thread")).collect()
    });
    let mut stats = Stats::default();
    for r in results {
        stats.merge(r);
    }
    let elapsed = started.elapsed();
    eprintln!(
        "simulation: seed {seed:#x}, {} carts in {} worlds, {} event deliveries ({} duplicates, {} rejected), \
         {} decisions in {} timer fires ({} arms), {} provider calls, {} sent, {} retried, {} cancelled by a purchase, \
         {} clicks, in {:.2?} on {threads} thread(s)",
        stats.carts,
        stats.worlds,
        stats.deliveries,
        stats.duplicates,
        stats.rejected_events,
        stats.decisions,
        stats.timer_fires,
        stats.scheduler_arms,
        stats.provider_calls,
        stats.sends,
        stats.retries,
        stats.cancelled,
        stats.clicks,
        elapsed
    );
    eprintln!("simulation: decisions by reason {:?}", stats.codes);
    eprintln!("simulation: final stops by reason {:?}", stats.final_stops);
    eprintln!("simulation: sends by channel {:?}", stats.channels);
    assert!(stats.carts >= target, "only {} carts simulated", stats.carts);
    // The generator must actually exercise the rules it claims to test.
    for code in [
        ReasonCode::Sent,
        ReasonCode::WaitingForInactivity,
        ReasonCode::WaitingForNextStep,
        ReasonCode::QuietHoursDeferred,
        ReasonCode::Purchased,
        ReasonCode::CartEmptied,
        ReasonCode::NothingInCart,
        ReasonCode::NoConsent,
        ReasonCode::NoReachableChannel,
        ReasonCode::EntryCooldown,
        ReasonCode::RecentPurchase,
        ReasonCode::Engaged,
        ReasonCode::SequenceCompleted,
        ReasonCode::CampaignDisabled,
        ReasonCode::NoMatchingCampaign,
    ] {
        assert!(stats.codes.get(&code).is_some_and(|n| *n > 0), "the simulation never produced {code:?}");
    }
    // The generated campaigns name no webhook target (its rules are the engine's and e2e_webhook's tests).
    for channel in Channel::PERSONAL {
        assert!(stats.channels.get(&channel).is_some_and(|n| *n > 0), "the simulation never sent by {channel:?}");
    }
    for (what, n) in
        [("retry", stats.retries), ("cancellation by a purchase", stats.cancelled), ("click", stats.clicks)]
    {
        assert!(n > 0, "the simulation never exercised a {what}");
    }
}
