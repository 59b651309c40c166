//! kill -9: the local runtime loses nothing and sends nothing twice.
//!
//! GIVEN `cartback dev` at a fast clock with 2,000+ carts of mixed traffic
//! (adds, updates, removals, purchases, carts emptied, consent on and off,
//! several events per request) over 4 connections,
//! WHEN it is killed with SIGKILL at least 12 times (seeded random moments,
//! and right when the outbox folder changes: a message being written) and
//! restarted on the same data folder each time,
//! THEN every accepted event is on its cart, in the order sent, and the cart
//! holds what those events say; no message is written twice (by file events
//! seen by a polling observer, by content, and by the server's send log); no
//! message goes after a purchase or after the cart was emptied, or without
//! consent; every abandoned cart with consent is messaged; no temporary file
//! is left behind. The counts are printed (`cargo test --test crash_kill9 --
//! --nocapture`).
//!
//! Deterministic enough for a loaded CI machine: the traffic and the kill
//! moments come from a seed (printed; set CARTBACK_CRASH_SEED to replay),
//! every wait polls with a generous deadline, and nothing asserts how fast
//! anything happens.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use cartback_core::message::{Channel, MessageRecord};
use cartback_core::signing::{sign_request, Secret, SignedRequest};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const SECRET: &str = "crash-test-secret-0123456789abcdef";
/// 30 virtual minutes (the first step's delay) pass in 3 real seconds.
const SPEED: f64 = 600.0;
const CARTS: usize = 2_000;
const CONNECTIONS: usize = 4;
/// Carts a connection drives at once: their events interleave in requests.
const WAVE: usize = 6;
const MIN_KILLS: usize = 12;
/// Kills that must land right as the outbox changes.
const MIN_OUTBOX_KILLS: usize = 4;
const DEADLINE: Duration = Duration::from_secs(240);
/// How long the abandoned carts get to be messaged once the traffic is over
/// (30 virtual minutes are 3 real seconds).
const SETTLE: Duration = Duration::from_secs(120);
/// Slack when comparing a message's time with a purchase's answer time:
/// the test's estimate of the server's clock may lag by a request's latency.
const CLOCK_SLACK_SECONDS: i64 = 120;

// ---- the server under test ----

#[derive(Clone)]
struct Endpoint {
    base: String,
    /// The server's virtual time at `seen`, to sign with its clock.
    virtual_at: DateTime<Utc>,
    seen: Instant,
}

impl Endpoint {
    fn virtual_now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.seen.elapsed().mul_f64(SPEED)).unwrap();
        self.virtual_at + elapsed
    }
}

/// The running server; dropping it (a failed assertion too) kills it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(data: &Path) -> (Server, Endpoint) {
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_cartback"))
            .args(["dev", "--listen", "127.0.0.1:0", "--clock-speed", &SPEED.to_string(), "--data"])
            .arg(data)
            .env("CARTBACK_INGEST_SECRET", SECRET)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cartback dev starts"),
    );
    let mut reader = BufReader::new(server.0.stdout.take().expect("stdout"));
    let mut banner = String::new();
    reader.read_line(&mut banner).expect("banner");
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let base = banner.trim().rsplit(' ').next().expect("address in banner").to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "unexpected banner {banner:?}");
    let started = Instant::now();
    loop {
        if let Ok(response) = ureq::get(&format!("{base}/healthz")).timeout(Duration::from_secs(5)).call() {
            let body: Value = response.into_json().expect("healthz JSON");
            let virtual_at = body["now"].as_str().expect("now").parse().expect("RFC 3339");
            return (server, Endpoint { base, virtual_at, seen: Instant::now() });
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the restarted server never answered /healthz");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A v2 signature of the request, stamped with real time: the replay window
/// follows the wall clock whatever the server's clock speed.
fn signature(method: &str, path_and_query: &str, body: &[u8]) -> String {
    let request = SignedRequest { method, path_and_query, body };
    sign_request(&Secret::new(SECRET.as_bytes().to_vec()).unwrap(), Utc::now().timestamp(), &request)
}

/// The current endpoint, waiting while the server is down.
fn endpoint(shared: &Mutex<Option<Endpoint>>) -> Endpoint {
    let started = Instant::now();
    loop {
        if let Some(endpoint) = shared.lock().unwrap().clone() {
            return endpoint;
        }
        assert!(started.elapsed() < DEADLINE, "the server stayed down");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// POSTs until the server answers 200 (a kill, a 401 from a request that
/// waited past the replay window, a 5xx: sign again and repeat; the events
/// are idempotent by `event_id`). Returns the answer and the server's
/// virtual time, as estimated, when it arrived.
fn post_until_answered(
    shared: &Mutex<Option<Endpoint>>,
    body: &Value,
    retries: &AtomicUsize,
) -> (Value, DateTime<Utc>) {
    let bytes = serde_json::to_vec(body).unwrap();
    let started = Instant::now();
    loop {
        let endpoint = endpoint(shared);
        let result = ureq::post(&format!("{}/v1/events", endpoint.base))
            .timeout(Duration::from_secs(20))
            .set("content-type", "application/json")
            .set("x-cartback-signature", &signature("POST", "/v1/events", &bytes))
            .send_bytes(&bytes);
        match result {
            Ok(response) if response.status() == 200 => {
                let answered_at = endpoint.virtual_now();
                return (response.into_json().expect("answer JSON"), answered_at);
            }
            Ok(_) | Err(_) => {
                retries.fetch_add(1, Ordering::Relaxed);
                assert!(started.elapsed() < DEADLINE, "a request was never answered: {body}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn get_cart(endpoint: &Endpoint, cart_id: &str) -> Value {
    let started = Instant::now();
    let path = format!("/v1/carts/{cart_id}");
    loop {
        let result = ureq::get(&format!("{}{path}", endpoint.base))
            .timeout(Duration::from_secs(20))
            .set("x-cartback-signature", &signature("GET", &path, b""))
            .call();
        match result {
            Ok(response) => return response.into_json().expect("cart JSON"),
            Err(ureq::Error::Status(404, _)) => return Value::Null,
            Err(e) => {
                assert!(started.elapsed() < DEADLINE, "cart {cart_id} unreadable: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

// ---- traffic: a seeded plan per cart, and the state it must produce ----

#[derive(Clone, Debug)]
enum Op {
    Add(&'static str, u32),
    Remove(&'static str, u32),
    Update(Vec<(&'static str, u32)>),
    Purchase,
}

const SKUS: [&str; 5] = ["sku-mug", "sku-bowl", "sku-plate", "sku-cup", "sku-jug"];

struct Plan {
    cart_id: String,
    email: String,
    consent: bool,
    ops: Vec<Op>,
}

/// What the fold of the ops gives: items in order, and the status.
fn expected(ops: &[Op]) -> (Vec<(String, u32)>, &'static str) {
    let mut items: Vec<(String, u32)> = Vec::new();
    let mut status = "browsing";
    for op in ops {
        match op {
            Op::Add(sku, n) => match items.iter_mut().find(|(id, _)| id == sku) {
                Some((_, q)) => *q += n,
                None => items.push(((*sku).to_owned(), *n)),
            },
            Op::Remove(sku, n) => {
                if let Some(pos) = items.iter().position(|(id, _)| id == sku) {
                    items[pos].1 = items[pos].1.saturating_sub(*n);
                    if items[pos].1 == 0 {
                        items.remove(pos);
                    }
                }
            }
            Op::Update(list) => items = list.iter().map(|(id, q)| ((*id).to_owned(), *q)).collect(),
            Op::Purchase => return (items, "converted"),
        }
        status = if items.is_empty() { "emptied" } else { "active" };
    }
    (items, status)
}

fn plan(index: usize, rng: &mut StdRng) -> Plan {
    let consent = rng.gen_bool(0.7);
    let mut ops = vec![Op::Add(SKUS[rng.gen_range(0..SKUS.len())], rng.gen_range(1..4))];
    for _ in 0..rng.gen_range(0..5) {
        let (current, _) = expected(&ops);
        let op = match rng.gen_range(0..10) {
            0..=3 => Op::Add(SKUS[rng.gen_range(0..SKUS.len())], rng.gen_range(1..3)),
            4..=6 if !current.is_empty() => {
                let (sku, quantity) = &current[rng.gen_range(0..current.len())];
                let all = rng.gen_bool(0.5);
                let sku = SKUS.iter().find(|s| *s == sku).unwrap();
                Op::Remove(sku, if all { *quantity } else { rng.gen_range(1..=*quantity) })
            }
            _ => {
                let mut list: Vec<(&'static str, u32)> = Vec::new();
                for _ in 0..rng.gen_range(0..3) {
                    let sku = SKUS[rng.gen_range(0..SKUS.len())];
                    if !list.iter().any(|(s, _)| *s == sku) {
                        list.push((sku, rng.gen_range(1..3)));
                    }
                }
                Op::Update(list)
            }
        };
        ops.push(op);
    }
    match rng.gen_range(0..100) {
        0..=19 => ops.push(Op::Purchase),
        20..=29 => ops.push(Op::Update(Vec::new())), // the shopper empties the cart
        _ => {}
    }
    Plan { cart_id: format!("crash-{index:05}"), email: format!("shopper-{index:05}@example.com"), consent, ops }
}

fn event(plan: &Plan, seq: usize) -> Value {
    let event_id = format!("{}-e{seq:02}", plan.cart_id);
    let item = |(sku, quantity): &(&str, u32)| json!({"item_id": sku, "item_name": sku, "price": "9.90", "quantity": quantity});
    let mut event = match &plan.ops[seq] {
        Op::Add(sku, n) => json!({"type": "add_to_cart", "items": [item(&(*sku, *n))]}),
        Op::Remove(sku, n) => json!({"type": "remove_from_cart", "items": [{"item_id": sku, "quantity": n}]}),
        Op::Update(list) => json!({"type": "cart_update", "items": list.iter().map(item).collect::<Vec<_>>()}),
        Op::Purchase => json!({"type": "purchase", "order_id": format!("o-{}", plan.cart_id), "value": "9.90"}),
    };
    event["event_id"] = json!(event_id);
    event["cart_id"] = json!(plan.cart_id);
    event["currency"] = json!("EUR");
    event["device"] = json!("desktop");
    if seq == 0 {
        event["customer"] = json!({"email": plan.email, "first_name": "Sam", "consents": {"email": plan.consent}});
    }
    event
}

/// What the traffic learned: when each cart's purchase or emptying was
/// answered (server virtual time, estimated), and counts.
#[derive(Default)]
struct Acks {
    settled_at: HashMap<String, DateTime<Utc>>,
    accepted: usize,
    duplicates: usize,
    requests: usize,
}

/// One connection: its carts in waves of `WAVE`; each request carries the
/// next events of several carts (sometimes two of one cart), and a cart's
/// next event leaves only once its previous one is answered.
fn drive(plans: &[Plan], seed: u64, shared: &Mutex<Option<Endpoint>>, acks: &Mutex<Acks>, retries: &AtomicUsize) {
    let mut rng = StdRng::seed_from_u64(seed);
    for wave in plans.chunks(WAVE) {
        let mut next = vec![0usize; wave.len()];
        while next.iter().zip(wave).any(|(n, p)| *n < p.ops.len()) {
            let mut events = Vec::new();
            let mut taken = Vec::new();
            for (i, plan) in wave.iter().enumerate() {
                let left = plan.ops.len() - next[i];
                if left == 0 || rng.gen_bool(0.2) {
                    continue;
                }
                let count = if left >= 2 && rng.gen_bool(0.3) { 2 } else { 1 };
                for k in 0..count {
                    events.push(event(plan, next[i] + k));
                }
                taken.push((i, count));
            }
            if events.is_empty() {
                continue;
            }
            let (answer, answered_at) = post_until_answered(shared, &json!({ "events": events }), retries);
            let mut acks = acks.lock().unwrap();
            acks.requests += 1;
            for result in answer["results"].as_array().expect("results") {
                match result["status"].as_str() {
                    Some("accepted") => acks.accepted += 1,
                    // Stored by a request whose answer a kill cut off.
                    Some("duplicate") => acks.duplicates += 1,
                    _ => panic!("event refused: {result}"),
                }
            }
            for (i, count) in taken {
                next[i] += count;
                let plan = &wave[i];
                if next[i] == plan.ops.len() && expected(&plan.ops).1 != "active" {
                    acks.settled_at.insert(plan.cart_id.clone(), answered_at);
                }
            }
        }
    }
}

// ---- the outbox, watched by polling (no inotify) ----

/// What the observer saw of each email file: created once, never changed.
#[derive(Default)]
struct FileEvents {
    /// name -> (inode, size, modified) when first seen.
    seen: HashMap<String, (u64, u64, SystemTime)>,
    created: usize,
    rewritten: usize,
    temp_files_seen: usize,
}

fn observe(dir: &Path, events: &Mutex<FileEvents>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut events = events.lock().unwrap();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else { continue }; // a temp file gone meanwhile
        if name.starts_with('.') {
            events.temp_files_seen += 1;
            continue;
        }
        let identity = (std::os::unix::fs::MetadataExt::ino(&meta), meta.len(), meta.modified().unwrap());
        match events.seen.get(&name) {
            None => {
                events.seen.insert(name, identity);
                events.created += 1;
            }
            Some(first) if *first != identity => {
                events.rewritten += 1;
                events.seen.insert(name, identity);
            }
            Some(_) => {}
        }
    }
}

/// Blocks until the folder's modification time changes (an entry created,
/// linked or removed: a message being written), or `limit` passes.
fn wait_for_outbox_change(dir: &Path, limit: Duration) -> bool {
    let modified = |dir: &Path| std::fs::metadata(dir).and_then(|m| m.modified()).ok();
    let before = modified(dir);
    let started = Instant::now();
    while started.elapsed() < limit {
        if modified(dir) != before {
            return true;
        }
        std::thread::sleep(Duration::from_micros(300));
    }
    false
}

struct Email {
    to: String,
    subject: String,
    message_id: String,
    date: DateTime<Utc>,
}

fn read_emails(dir: &Path) -> Vec<Email> {
    let mut emails = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let header = |key: &str| -> String {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{name}: no {key}"))
                .trim()
                .to_owned()
        };
        let message_id = header("Message-ID:").trim_matches(['<', '>']).trim_end_matches("@cartback").to_owned();
        assert_eq!(format!("{message_id}.eml"), name, "file name and Message-ID agree");
        let date = DateTime::parse_from_rfc2822(&header("Date:")).expect("RFC 2822 date").with_timezone(&Utc);
        emails.push(Email { to: header("To:"), subject: header("Subject:"), message_id, date });
    }
    emails
}

fn temp_files(data: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![data.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".tmp")) {
                found.push(path);
            }
        }
    }
    found
}

fn stop_gracefully(Server(child): &mut Server) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let started = Instant::now();
    while child.try_wait().ok().flatten().is_none() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn given_mixed_traffic_when_cartback_dev_is_killed_9_repeatedly_then_nothing_is_lost_and_no_message_goes_twice() {
    let began = Instant::now();
    let seed =
        std::env::var("CARTBACK_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
    println!("crash test seed: {seed} (replay with CARTBACK_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let plans: Vec<Plan> = (0..CARTS).map(|i| plan(i, &mut rng)).collect();
    let total_events: usize = plans.iter().map(|p| p.ops.len()).sum();

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let email_dir = data.join("outbox/email");
    // The built-in campaign with no holdout: every abandoned cart is messaged.
    let campaign = cartback_core::campaign::Campaign {
        holdout_percent: 0,
        ..cartback_core::campaign::Campaign::default_campaign()
    };
    let campaign_file = data.join("treated.toml");
    std::fs::write(&campaign_file, campaign.to_toml()).unwrap();
    let applied = Command::new(env!("CARGO_BIN_EXE_cartback"))
        .args(["campaign", "apply", campaign_file.to_str().unwrap(), "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let (mut server, first) = start(&data);
    let shared = Arc::new(Mutex::new(Some(first)));
    let acks = Arc::new(Mutex::new(Acks::default()));
    let retries = Arc::new(AtomicUsize::new(0));
    let file_events = Arc::new(Mutex::new(FileEvents::default()));
    let stop_observing = Arc::new(AtomicBool::new(false));

    let observer = {
        let (dir, events, stop) = (email_dir.clone(), file_events.clone(), stop_observing.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                observe(&dir, &events);
                std::thread::sleep(Duration::from_millis(5));
            }
            observe(&dir, &events);
        })
    };
    let plans = Arc::new(plans);
    let per_connection = CARTS.div_ceil(CONNECTIONS);
    let connections: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (plans, shared, acks, retries) = (plans.clone(), shared.clone(), acks.clone(), retries.clone());
            let connection_seed = seed.wrapping_add(c as u64 + 1);
            std::thread::spawn(move || {
                let mine = &plans[(c * per_connection).min(CARTS)..((c + 1) * per_connection).min(CARTS)];
                drive(mine, connection_seed, &shared, &acks, &retries);
            })
        })
        .collect();

    // The killer: random moments, and right as the outbox changes.
    let (mut kills, mut outbox_kills) = (0usize, 0usize);
    let traffic_done = || connections.iter().all(|c| c.is_finished());
    while kills < MIN_KILLS || outbox_kills < MIN_OUTBOX_KILLS {
        assert!(began.elapsed() < DEADLINE, "kills did not complete: {kills} kills, {outbox_kills} at an outbox write");
        let at_outbox = kills >= 4 && (outbox_kills < MIN_OUTBOX_KILLS && (rng.gen_bool(0.5) || traffic_done()));
        if at_outbox {
            if !wait_for_outbox_change(&email_dir, Duration::from_secs(20)) {
                continue;
            }
            outbox_kills += 1;
        } else {
            std::thread::sleep(Duration::from_millis(rng.gen_range(300..2_000)));
        }
        server.0.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
        *shared.lock().unwrap() = None;
        server.0.wait().unwrap();
        kills += 1;
        // Sometimes straight back, sometimes after a pause.
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..300)));
        let (restarted, endpoint) = start(&data);
        server = restarted;
        *shared.lock().unwrap() = Some(endpoint);
    }
    for connection in connections {
        connection.join().expect("traffic thread");
    }
    let traffic_secs = began.elapsed().as_secs_f64();

    // Every abandoned cart with consent must get its first email; the
    // checks below report the ones that did not in time.
    let must_message: HashSet<&str> =
        plans.iter().filter(|p| p.consent && expected(&p.ops).1 == "active").map(|p| p.email.as_str()).collect();
    let started = Instant::now();
    while started.elapsed() < SETTLE {
        let messaged: HashSet<String> = read_emails(&email_dir).into_iter().map(|e| e.to).collect();
        if must_message.iter().all(|m| messaged.contains(*m)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // Read every cart back, then stop cleanly.
    let endpoint = endpoint(&shared);
    let mut carts: HashMap<String, Value> =
        plans.iter().map(|p| (p.cart_id.clone(), get_cart(&endpoint, &p.cart_id))).collect();
    // A message written just before the read may not be on its timeline yet:
    // read those carts again until it is (or the deadline, and the checks say).
    let cart_of: HashMap<&str, &str> = plans.iter().map(|p| (p.email.as_str(), p.cart_id.as_str())).collect();
    let logged = |cart: &Value, message_id: &str| {
        cart["timeline"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["kind"] == "message" && e["code"] == "sent" && e["details"]["message_id"] == message_id)
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let unlogged: HashSet<&str> = read_emails(&email_dir)
            .iter()
            .filter_map(|e| cart_of.get(e.to.as_str()).map(|cart| (*cart, e.message_id.clone())))
            .filter(|(cart, id)| !logged(&carts[*cart], id))
            .map(|(cart, _)| cart)
            .collect();
        if unlogged.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        for cart in unlogged {
            carts.insert(cart.to_owned(), get_cart(&endpoint, cart));
        }
    }
    stop_gracefully(&mut server);
    stop_observing.store(true, Ordering::Relaxed);
    observer.join().unwrap();

    // ---- checks ----
    let acks = acks.lock().unwrap();
    let file_events = file_events.lock().unwrap();
    let emails = read_emails(&email_dir);
    let by_plan: HashMap<&str, &Plan> = plans.iter().map(|p| (p.email.as_str(), p)).collect();

    let (mut events_on_carts, mut events_missing, mut out_of_order, mut wrong_contents) = (0, 0, 0, 0);
    let mut sent_log: BTreeMap<String, usize> = BTreeMap::new();
    let (mut found_delivered, mut unknown) = (0, 0);
    for plan in plans.iter() {
        let cart = &carts[&plan.cart_id];
        let timeline = cart["timeline"].as_array().cloned().unwrap_or_default();
        let stored: Vec<&str> = timeline
            .iter()
            .filter(|e| e["kind"] == "event")
            .filter_map(|e| e["details"]["event_id"].as_str())
            .collect();
        let sent: Vec<String> = (0..plan.ops.len()).map(|i| format!("{}-e{i:02}", plan.cart_id)).collect();
        events_on_carts += sent.iter().filter(|id| stored.contains(&id.as_str())).count();
        events_missing += sent.iter().filter(|id| !stored.contains(&id.as_str())).count();
        if stored != sent.iter().map(String::as_str).collect::<Vec<_>>() {
            out_of_order += 1;
            eprintln!("cart {}: events {stored:?}, sent {sent:?}", plan.cart_id);
        }
        let (items, status) = expected(&plan.ops);
        let got: Vec<(String, u32)> = cart["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| (i["item_id"].as_str().unwrap_or_default().to_owned(), i["quantity"].as_u64().unwrap_or(0) as u32))
            .collect();
        if got != items || cart["status"] != status {
            wrong_contents += 1;
            eprintln!("cart {}: holds {got:?} ({}), events say {items:?} ({status})", plan.cart_id, cart["status"]);
        }
        for entry in timeline.iter().filter(|e| e["kind"] == "message") {
            let message_id = entry["details"]["message_id"].as_str().unwrap_or_default().to_owned();
            match entry["code"].as_str() {
                Some("sent") => {
                    *sent_log.entry(message_id).or_default() += 1;
                    found_delivered +=
                        usize::from(entry["message"].as_str().unwrap_or_default().contains("found delivered"));
                }
                Some("unknown") => unknown += 1,
                _ => {}
            }
        }
    }

    let mut by_content: HashMap<(&str, &str), usize> = HashMap::new();
    let (mut after_settled, mut without_consent, mut stray_recipient, mut not_in_send_log) = (0, 0, 0, 0);
    for email in &emails {
        *by_content.entry((email.to.as_str(), email.subject.as_str())).or_default() += 1;
        let Some(plan) = by_plan.get(email.to.as_str()) else {
            stray_recipient += 1;
            continue;
        };
        let step = (0..2).find(|s| MessageRecord::id_for(&plan.cart_id, *s, Channel::Email) == email.message_id);
        if step.is_none() {
            stray_recipient += 1;
        }
        if !plan.consent {
            without_consent += 1;
        }
        if let Some(settled) = acks.settled_at.get(&plan.cart_id) {
            if email.date > *settled + chrono::Duration::seconds(CLOCK_SLACK_SECONDS) {
                after_settled += 1;
                eprintln!(
                    "cart {}: message {} at {} after the purchase/emptying answered at {settled}",
                    plan.cart_id, email.message_id, email.date
                );
            }
        }
        if sent_log.get(&email.message_id) != Some(&1) {
            not_in_send_log += 1;
        }
    }
    let duplicate_content = by_content.values().filter(|n| **n > 1).count();
    let logged_twice = sent_log.values().filter(|n| **n > 1).count();
    let sent_without_file = sent_log.keys().filter(|id| !emails.iter().any(|e| &e.message_id == *id)).count();
    let messaged: HashSet<&str> = emails.iter().map(|e| e.to.as_str()).collect();
    let abandoned_messaged = must_message.iter().filter(|m| messaged.contains(**m)).count();
    let purchased = plans.iter().filter(|p| expected(&p.ops).1 == "converted").count();
    let emptied = plans.iter().filter(|p| expected(&p.ops).1 == "emptied").count();
    let strays = temp_files(&data);

    println!(
        "crash test (seed {seed}): {} carts, {total_events} events in {} requests over {CONNECTIONS} connections",
        CARTS, acks.requests
    );
    println!(
        "  kills: {kills} SIGKILLs, {outbox_kills} of them right as the outbox changed; {} requests retried",
        retries.load(Ordering::Relaxed)
    );
    println!("  events: {} accepted + {} acknowledged as duplicates on a retry; {events_on_carts} of {total_events} on their carts, {events_missing} missing", acks.accepted, acks.duplicates);
    println!("  carts: {out_of_order} with events out of the order sent, {wrong_contents} whose contents differ from the events ({purchased} purchased, {emptied} emptied)");
    println!(
        "  emails: {} files; file events: {} created, {} rewritten (temporary files seen in flight: {})",
        emails.len(),
        file_events.created,
        file_events.rewritten,
        file_events.temp_files_seen
    );
    println!("  duplicates: {duplicate_content} by content (recipient + subject), {logged_twice} sent twice in the send log, {not_in_send_log} files not logged exactly once, {sent_without_file} logged without a file");
    println!("  after a kill between write and record: {found_delivered} found delivered and recorded (not resent); {unknown} unknown");
    println!("  {after_settled} messages after a purchase or emptying, {without_consent} without consent, {stray_recipient} to no planned cart/step");
    println!("  abandoned carts with consent messaged: {abandoned_messaged} of {}", must_message.len());
    println!("  stray temporary files: {}", strays.len());
    println!("  runtime: {:.1} s (traffic and kills {traffic_secs:.1} s)", began.elapsed().as_secs_f64());

    assert!(kills >= MIN_KILLS && outbox_kills >= MIN_OUTBOX_KILLS);
    assert_eq!(abandoned_messaged, must_message.len(), "every abandoned cart with consent is messaged");
    assert_eq!(acks.accepted + acks.duplicates, total_events, "every event answered once it was sent");
    assert_eq!((events_on_carts, events_missing), (total_events, 0), "every accepted event is on its cart");
    assert_eq!(out_of_order, 0, "events folded in the order sent");
    assert_eq!(wrong_contents, 0, "cart contents equal the events sent");
    assert_eq!(file_events.rewritten, 0, "no outbox file written twice");
    assert_eq!(file_events.created, emails.len(), "one creation per file");
    assert_eq!(
        (duplicate_content, logged_twice, not_in_send_log, sent_without_file),
        (0, 0, 0, 0),
        "each message once"
    );
    assert_eq!(unknown, 0, "the outbox always knows whether it holds a message");
    assert_eq!((after_settled, without_consent, stray_recipient), (0, 0, 0));
    assert!(strays.is_empty(), "stray temporary files: {strays:?}");
}
