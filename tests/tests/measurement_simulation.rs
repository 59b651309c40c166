//! A shop whose truth is known, over a virtual fortnight: the report must
//! find the lift the simulation built in.
//!
//! 20,000 customers (`CARTBACK_MEASURE_CARTS` overrides) each leave one cart
//! at a random time in the first 13 days. The real ingest, checker and
//! delivery services run over the local runtime's SQLite state on a manual
//! clock; an in-process scheduler, queue and sender play EventBridge, SQS and
//! SES. The campaign holds out 10% and runs an experiment with four
//! variants: three subject lines and a next-day first step.
//!
//! The customers' behaviour is the ground truth, written here and nowhere
//! else: each customer has an intent time (2 to 20 hours after leaving) and a
//! uniform draw `u`; at the intent time they buy when `u` is below their
//! purchase probability: the base rate for everyone, plus the uplift of the
//! first reminder they actually received, which they recognise by its
//! subject line. One variant's subject *lowers* purchases; another sends the
//! control's email a day later, after most customers have made up their
//! minds (entering at the same moment as the others, its carts bought in
//! between count for it: its true difference is minus the control's
//! uplift). The true lift of
//! the campaign is the mean uplift over the customers the system treated,
//! and each variant's true difference to control is the difference of the
//! uplifts; the report must hold both inside its 95% intervals and flag the
//! harmful variant.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cartback_core::campaign::Campaign;
use cartback_core::measure::report::{build_report, Evidence, Prices, ReportQuery};
use cartback_core::measure::FactKind;
use cartback_core::message::{MessageJob, Outgoing};
use cartback_core::ports::TimerPayload;
use cartback_core::ports::{
    CampaignStore, Clock, FactStore, JobQueue, PortError, Scheduler, SendError, Sender, StateStore,
};
use cartback_core::service::{CampaignCache, Checker, Delivery, Ingest, Settings};
use cartback_core::signing::Secret;
use cartback_local::testing::ManualClock;
use cartback_local::Database;
use chrono::{DateTime, Duration, Utc};

const SEED: u64 = 0x005E_ED0F_2026_1124;
const DEFAULT_CUSTOMERS: usize = 20_000;
const BASE_RATE: f64 = 0.10;
const CONTROL_SUBJECT: &str = "You left something in your cart";
/// Subject line of each variant and the uplift the simulated customers give
/// it (next-day sends the control's subject, a day late).
const VARIANTS: [(&str, &str, f64); 3] = [
    ("control", CONTROL_SUBJECT, 0.04),
    ("friendly", "Still thinking it over?", 0.08),
    ("pushy", "LAST CHANCE: your cart expires NOW", -0.03),
];

const CAMPAIGN: &str = r#"
id = "recovery"
name = "Recovery, with a subject-line experiment"
holdout_percent = 10
min_sample_per_arm = 100

[[steps]]
delay = "30m"
delay_from = "last_activity"
channels = { mobile = ["email"], desktop = ["email"] }
template = "reminder"
subject = "You left something in your cart"

[[steps]]
delay = "24h"
channels = { mobile = ["email"], desktop = ["email"] }
template = "last_call"

[experiment]
id = "subject-lines"
control = "control"

[[experiment.variants]]
name = "control"
weight = 1

[[experiment.variants]]
name = "friendly"
weight = 1
steps = [{ subject = "Still thinking it over?" }]

[[experiment.variants]]
name = "pushy"
weight = 1
steps = [{ subject = "LAST CHANCE: your cart expires NOW" }]

[[experiment.variants]]
name = "next-day"
weight = 1
steps = [{ delay = "24h" }]
"#;

/// SplitMix64: seeded, so every run simulates the same shop.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn seconds_below(&mut self, limit: i64) -> Duration {
        Duration::seconds((self.next_u64() % limit as u64) as i64)
    }
}

#[derive(Default)]
struct RecordingScheduler(Mutex<Vec<TimerPayload>>);

#[async_trait]
impl Scheduler for RecordingScheduler {
    async fn arm(&self, timer: &TimerPayload) -> Result<(), PortError> {
        self.0.lock().unwrap().push(timer.clone());
        Ok(())
    }
}

#[derive(Default)]
struct RecordingQueue(Mutex<Vec<MessageJob>>);

#[async_trait]
impl JobQueue for RecordingQueue {
    async fn enqueue(&self, job: &MessageJob) -> Result<(), PortError> {
        self.0.lock().unwrap().push(job.clone());
        Ok(())
    }
}

/// The customers' inbox: the first subject line each cart's customer read, and when.
#[derive(Default)]
struct Inbox(Mutex<HashMap<String, (String, DateTime<Utc>)>>);

#[async_trait]
impl Sender for Inbox {
    async fn send(&self, job: &MessageJob, now: DateTime<Utc>) -> Result<String, SendError> {
        let Outgoing::Email { subject, .. } = &job.outgoing else {
            return Err(SendError::Permanent("the campaign only sends email".into()));
        };
        self.0.lock().unwrap().entry(job.cart_id.to_string()).or_insert_with(|| (subject.clone(), now));
        Ok(format!("ses-{}", job.message_id))
    }
}

enum Happening {
    LeaveCart(usize),
    Timer(TimerPayload),
    Deliver(Box<MessageJob>),
    Intent(usize),
}

struct Customer {
    left_at: DateTime<Utc>,
    intent_at: DateTime<Utc>,
    draw: f64,
}

fn uplift_for(subject: &str) -> f64 {
    VARIANTS.iter().find(|(_, s, _)| *s == subject).map(|(_, _, u)| *u).expect("a subject the campaign defines")
}

fn cart_event(i: usize, at: DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({
        "event_id": format!("add-{i}"),
        "type": "add_to_cart",
        "occurred_at": at.to_rfc3339(),
        "cart_id": format!("cart-{i}"),
        "customer_id": format!("customer-{i}"),
        "device": "desktop",
        "currency": "EUR",
        "items": [{ "item_id": "sku-1", "item_name": "Wool scarf", "price": "40.00", "quantity": 1 }],
        "customer": { "email": format!("customer-{i}@example.com"), "consents": { "email": true } },
    })
}

fn purchase_event(i: usize, at: DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({
        "event_id": format!("buy-{i}"),
        "type": "purchase",
        "occurred_at": at.to_rfc3339(),
        "cart_id": format!("cart-{i}"),
        "customer_id": format!("customer-{i}"),
        "order_id": format!("order-{i}"),
        "currency": "EUR",
        "value": "40.00",
    })
}

/// GIVEN 20,000 customers with a 10% base purchase rate, reminders that add
/// 4 points (control subject), 8 points (friendly) or take 3 points away
/// (pushy), a variant whose reminder comes after the customers decided
/// (next-day), and a campaign holding out 10% of customers
/// WHEN the real services run the fortnight and the report is computed
/// THEN the true lift lies inside the report's 95% interval, each variant's
/// true difference to control lies inside its interval, and the pushy and
/// next-day variants are flagged as lowering recovery.
#[tokio::test(flavor = "current_thread")]
async fn given_a_shop_with_a_known_uplift_when_a_fortnight_is_reported_then_the_true_lift_is_inside_the_interval() {
    let customers_n: usize =
        std::env::var("CARTBACK_MEASURE_CARTS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CUSTOMERS);
    let start: DateTime<Utc> = "2026-11-02T00:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let db = Database::open_in_memory().unwrap().with_clock(clock.clone());
    let state: Arc<dyn StateStore> = Arc::new(db.clone());
    let campaign = Campaign::from_toml(CAMPAIGN).unwrap_or_else(|e| panic!("campaign: {e:?}"));
    db.put(&campaign).await.unwrap();
    // The campaign never changes during the run: read it once an hour.
    let campaigns = Arc::new(CampaignCache::new(Arc::new(db.clone()), clock.clone(), Duration::hours(1)));
    let scheduler = Arc::new(RecordingScheduler::default());
    let queue = Arc::new(RecordingQueue::default());
    let inbox = Arc::new(Inbox::default());
    let secret = Secret::new(b"measurement-simulation-secret-0123".to_vec()).unwrap();
    let settings = Arc::new(Settings::new(secret, "https://cartback.example", "https://shop.example/c/{cart_id}"));
    let ingest = Ingest {
        store: state.clone(),
        scheduler: scheduler.clone(),
        campaigns: campaigns.clone(),
        clock: clock.clone(),
    };
    let checker = Checker {
        store: state.clone(),
        scheduler: scheduler.clone(),
        queue: queue.clone(),
        campaigns: campaigns.clone(),
        templates: std::sync::Arc::new(cartback_core::service::TemplateCache::shipped_only()),
        clock: clock.clone(),
        settings,
    };
    let delivery =
        Delivery { store: state.clone(), sender: inbox.clone(), campaigns, clock: clock.clone(), webhook: None };

    let mut rng = Rng(SEED);
    let customers: Vec<Customer> = (0..customers_n)
        .map(|_| {
            let left_at = start + rng.seconds_below(13 * 86_400);
            let intent_at = left_at + Duration::hours(2) + rng.seconds_below(18 * 3_600);
            Customer { left_at, intent_at, draw: rng.unit() }
        })
        .collect();
    let mut agenda = Agenda::default();
    for (i, c) in customers.iter().enumerate() {
        agenda.plan(c.left_at, Happening::LeaveCart(i));
        agenda.plan(c.intent_at, Happening::Intent(i));
    }
    // The truth, summed over the customers the system treated (reached by
    // a reminder before their intent, or held out), and per variant.
    let mut bought = 0usize;
    while let Some((at, what)) = agenda.next() {
        clock.set(at);
        match what {
            Happening::LeaveCart(i) => ingest_one(&ingest, cart_event(i, at)).await,
            Happening::Intent(i) => {
                let c = &customers[i];
                let first_read = inbox.0.lock().unwrap().get(&format!("cart-{i}")).cloned();
                let uplift = first_read.filter(|(_, read_at)| *read_at <= at).map_or(0.0, |(s, _)| uplift_for(&s));
                if c.draw < BASE_RATE + uplift {
                    bought += 1;
                    ingest_one(&ingest, purchase_event(i, at)).await;
                }
            }
            Happening::Timer(timer) => {
                checker.on_timer(&timer).await.unwrap_or_else(|e| panic!("checker: {e}"));
            }
            Happening::Deliver(job) => {
                delivery.deliver(&job).await.unwrap_or_else(|e| panic!("delivery: {e}"));
            }
        }
        // What the services asked of the runtime happens in its turn: a
        // timer at its time, a queued job a minute later.
        for timer in scheduler.0.lock().unwrap().drain(..) {
            agenda.plan(timer.due_at.max(at), Happening::Timer(timer));
        }
        for job in queue.0.lock().unwrap().drain(..) {
            agenda.plan(at + Duration::minutes(1), Happening::Deliver(Box::new(job)));
        }
    }

    // The truth per customer, from what each actually received.
    let facts = db.facts(start.date_naive(), clock.now().date_naive()).await.unwrap();
    let groups: HashMap<String, (String, Option<String>)> = facts
        .iter()
        .filter_map(|f| match &f.kind {
            FactKind::Entered { cart_id, group, variant, .. } => {
                Some((cart_id.to_string(), (group.as_str().to_owned(), variant.clone())))
            }
            _ => None,
        })
        .collect();
    let read = inbox.0.lock().unwrap().clone();
    let mut treated_uplift = Vec::new();
    let mut by_variant: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (cart, (group, variant)) in &groups {
        let customer = &customers[cart.trim_start_matches("cart-").parse::<usize>().unwrap()];
        // A reminder read after the intent changes nothing: the uplift it
        // would have given does not count in the truth either.
        let uplift = read
            .get(cart)
            .filter(|(_, read_at)| *read_at <= customer.intent_at)
            .map_or(0.0, |(subject, _)| uplift_for(subject));
        if group == "treated" {
            treated_uplift.push(uplift);
            by_variant.entry(variant.clone().expect("every treated cart has a variant")).or_default().push(uplift);
        } else {
            assert_eq!(uplift, 0.0, "{cart} is held out and was sent a reminder");
        }
    }
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let true_lift = mean(&treated_uplift);

    let query = ReportQuery {
        campaign: Some("recovery".into()),
        from: start.date_naive(),
        to: (start + Duration::days(13)).date_naive(),
        attribution_window: Duration::hours(24),
        channel_windows: BTreeMap::new(),
    };
    let report = build_report(&facts, &[campaign], &query, &Prices::default());
    let entry = report.campaigns.iter().find(|c| c.campaign_id == "recovery").expect("the campaign is reported");
    println!(
        "{customers_n} customers, {bought} bought; entered {} (treated {}, held out {}); recovered {} / {}; \
         true lift {:.4}, reported {:.4} {:?}",
        entry.entered,
        entry.treated,
        entry.held_out,
        entry.recovered_treated,
        entry.recovered_held_out,
        true_lift,
        entry.lift,
        entry.lift_ci95
    );
    assert_eq!(entry.entered as usize, groups.len(), "every entered cart is in the report");
    assert!(entry.held_out as f64 > 0.08 * entry.entered as f64, "about 10% held out: {}", entry.held_out);
    assert!(
        entry.lift_ci95.0 <= true_lift && true_lift <= entry.lift_ci95.1,
        "true lift {true_lift:.4} outside the reported interval {:?}",
        entry.lift_ci95
    );
    let control_uplift = mean(&by_variant["control"]);
    for variant in &entry.variants {
        let truth = mean(&by_variant[&variant.variant]) - control_uplift;
        println!(
            "variant {}: {} entered, rate {:.4}, difference {:.4} {:?} (truth {truth:.4}), P(beats control) {:.3}, {:?}",
            variant.variant,
            variant.entered,
            variant.recovery_rate,
            variant.difference,
            variant.difference_ci95,
            variant.probability_beats_control,
            variant.evidence
        );
        if !variant.control {
            assert!(
                variant.difference_ci95.0 <= truth && truth <= variant.difference_ci95.1,
                "{}: true difference {truth:.4} outside {:?}",
                variant.variant,
                variant.difference_ci95
            );
        }
    }
    let verdict = |name: &str| entry.variants.iter().find(|v| v.variant == name).expect("variant reported").evidence;
    assert_eq!(verdict("pushy"), Evidence::Lowers, "the harmful variant is flagged");
    assert_eq!(verdict("next-day"), Evidence::Lowers, "a reminder after the decision loses the control's uplift");
    assert_eq!(verdict("friendly"), Evidence::Raises);
    assert_eq!(entry.evidence, Evidence::Raises, "{}", entry.verdict);
}

async fn ingest_one(ingest: &Ingest, event: serde_json::Value) {
    let body = serde_json::to_vec(&serde_json::json!({ "events": [event] })).unwrap();
    let answer = ingest.ingest_body(&body).await.unwrap_or_else(|e| panic!("ingest: {e}"));
    assert_eq!(answer.accepted, 1, "{:?}", answer.results);
}

/// Happenings in time order; ties keep the order they were planned in.
#[derive(Default)]
struct Agenda {
    heap: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
    slots: Vec<Option<Happening>>,
}

impl Agenda {
    fn plan(&mut self, at: DateTime<Utc>, what: Happening) {
        self.slots.push(Some(what));
        self.heap.push(Reverse((at, self.slots.len() - 1)));
    }

    fn next(&mut self) -> Option<(DateTime<Utc>, Happening)> {
        let Reverse((at, slot)) = self.heap.pop()?;
        Some((at, self.slots[slot].take().expect("each happening happens once")))
    }
}
