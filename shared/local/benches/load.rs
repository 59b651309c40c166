//! Ingest load on a release `cartback dev` over loopback, beside its
//! ceiling: the same SQLite writes done directly with rusqlite, no HTTP,
//! in the same run (absolute figures on a shared machine are noise; the
//! ratio is the measure). Then latency under a fixed arrival rate.
//!
//! The load generator is plain blocking HTTP/1.1 on keep-alive loopback
//! connections with every request (body and v2 signature) built before the
//! clock starts; its own CPU time is printed beside the server's, so a reader
//! can see it is not the bottleneck.
//!
//! Knobs (environment): `CARTBACK_BIN` (default: `cartback` beside this
//! bench's folder, i.e. `target/release/cartback`), `LOAD_EVENTS` (events
//! per throughput scenario, 20000), `LOAD_CONNECTIONS` (8), `LOAD_EDIT_CARTS`
//! (carts the edit scenarios edit round-robin, 1000), `LOAD_RATES`
//! (events/s of the open-loop runs, "500,2000"), `LOAD_LATENCY_SECONDS` (10),
//! `LOAD_OPEN_CONNECTIONS` (64), `LOAD_TIMER_CARTS` (carts of the timer
//! drain, 20000; 0 skips it), `LOAD_JSON` (default `target/bench/load.json`).
//!
//! Run by `scripts/bench.sh`; alone: `cargo build --release -p cartback &&
//! cargo bench -p cartback-local --bench load`.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cartback_core::signing::{sign_request, Secret, SignedRequest};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{json, Value};

const SECRET: &str = "load-bench-secret-0123456789abcdef";
const PATH: &str = "/v1/events";

fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Clock ticks of user plus system CPU of a process (`/proc/PID/stat`).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may contain spaces) start at state.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line; USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// One add-to-cart event: `n` numbers it, `cart` names its cart.
fn event(run: &str, n: usize, cart: usize) -> Value {
    json!({
        "event_id": format!("{run}-e{n}"), "type": "add_to_cart", "cart_id": format!("{run}-c{cart}"),
        "device": "desktop", "currency": "EUR",
        "items": [{"item_id": format!("sku-{}", n % 50), "item_name": "Stoneware mug", "price": "14.90",
                   "quantity": 1 + n % 3, "url": "https://shop.example.com/p/mug"}]
    })
}

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    /// Prefix of its event and cart ids (ids take no spaces).
    id: &'static str,
    per_request: usize,
    /// Carts edited round-robin; 0: every event a new cart.
    edit_carts: usize,
}

impl Scenario {
    fn cart_of(&self, n: usize) -> usize {
        if self.edit_carts == 0 {
            n
        } else {
            n % self.edit_carts
        }
    }

    fn events(&self, run: &str, total: usize) -> Vec<Value> {
        (0..total).map(|n| event(run, n, self.cart_of(n))).collect()
    }
}

/// Requests ready to write on a socket: head and body, signed.
fn requests(events: &[Value], per_request: usize) -> Vec<Vec<u8>> {
    let secret = Secret::new(SECRET.as_bytes().to_vec()).unwrap();
    let now = chrono::Utc::now().timestamp();
    events
        .chunks(per_request)
        .map(|chunk| {
            let body = if per_request == 1 { serde_json::to_vec(&chunk[0]) } else { serde_json::to_vec(&json!({ "events": chunk })) }
                .unwrap();
            let signature = sign_request(&secret, now, &SignedRequest { method: "POST", path_and_query: PATH, body: &body });
            let mut request = format!(
                "POST {PATH} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\nx-cartback-signature: {signature}\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(&body);
            request
        })
        .collect()
}

struct Server {
    child: Child,
    addr: String,
    _dir: Arc<tempfile::TempDir>,
    data: PathBuf,
}

impl Server {
    /// At real time: no timer fires during an ingest run (the first is 30 minutes out).
    fn start(bin: &Path) -> Server {
        Server::start_in(bin, Arc::new(tempfile::tempdir().unwrap()), "1")
    }

    fn start_in(bin: &Path, dir: Arc<tempfile::TempDir>, speed: &str) -> Server {
        let data = dir.path().to_owned();
        let mut child = Command::new(bin)
            .args(["dev", "--listen", "127.0.0.1:0", "--clock-speed", speed, "--data"])
            .arg(&data)
            .env("CARTBACK_INGEST_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {}: {e} (build it: cargo build --release -p cartback)", bin.display())
            });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        out.read_line(&mut banner).unwrap();
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let addr = banner.trim().rsplit(' ').next().unwrap().trim_start_matches("http://").to_owned();
        Server { child, addr, _dir: dir, data }
    }

    fn db(&self) -> Connection {
        Connection::open(self.data.join(cartback_local::DB_FILE)).unwrap()
    }

    /// Peak resident memory, MB (`VmHWM`).
    fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
        kb.unwrap_or(0.0) / 1024.0
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Average bytes of a stored cart row.
    fn cart_bytes(&self) -> f64 {
        cart_bytes(&self.db())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cart_bytes(conn: &Connection) -> f64 {
    conn.query_row("SELECT COALESCE(AVG(LENGTH(record)), 0) FROM carts", [], |r| r.get(0)).unwrap()
}

/// One keep-alive connection.
struct Client {
    reader: BufReader<TcpStream>,
    line: String,
    body: Vec<u8>,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { reader: BufReader::new(stream), line: String::new(), body: Vec::new() }
    }

    /// Sends one request; the number of events the answer says were accepted.
    fn send(&mut self, request: &[u8]) -> usize {
        self.reader.get_mut().write_all(request).unwrap();
        self.line.clear();
        self.reader.read_line(&mut self.line).unwrap();
        let status = self.line.split(' ').nth(1).unwrap_or("").to_owned();
        let mut length = 0;
        loop {
            self.line.clear();
            self.reader.read_line(&mut self.line).unwrap();
            if self.line == "\r\n" || self.line.is_empty() {
                break;
            }
            if let Some((name, value)) = self.line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        self.body.resize(length, 0);
        self.reader.read_exact(&mut self.body).unwrap();
        let answer: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        assert_eq!(status, "200", "the server answered {status}: {answer}");
        answer["accepted"].as_u64().unwrap_or(0) as usize
    }
}

struct Throughput {
    events_per_s: f64,
    server_cpu: f64,
    loadgen_cpu: f64,
    cart_bytes: f64,
}

/// Closed loop: `connections` clients send the requests as fast as answered.
fn through_server(bin: &Path, scenario: Scenario, total: usize, connections: usize) -> Throughput {
    let server = Server::start(bin);
    let events = scenario.events(scenario.id, total);
    let requests = Arc::new(requests(&events, scenario.per_request));
    drop(events);
    // Requests are taken in order: one cart's edits are `edit_carts`
    // events apart, more than the requests in flight, so they never race.
    let next = Arc::new(AtomicUsize::new(0));
    let (server_cpu0, own_cpu0) = (cpu_seconds(&server.pid()), cpu_seconds("self"));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (requests, next, addr) = (requests.clone(), next.clone(), server.addr.clone());
            std::thread::spawn(move || {
                let mut client = Client::connect(&addr);
                let mut accepted = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(i) else { break accepted };
                    accepted += client.send(request);
                }
            })
        })
        .collect();
    let accepted: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(accepted, total, "{}: every event accepted", scenario.name);
    Throughput {
        events_per_s: total as f64 / elapsed,
        server_cpu: cpu_seconds(&server.pid()) - server_cpu0,
        loadgen_cpu: cpu_seconds("self") - own_cpu0,
        cart_bytes: server.cart_bytes(),
    }
}

/// The ceiling: what ingest writes for these events, straight into a
/// database with Cartback's schema, one transaction per request.
fn ceiling(scenario: Scenario, total: usize) -> Throughput {
    let dir = tempfile::tempdir().unwrap();
    drop(cartback_local::Database::open(dir.path()).unwrap());
    let mut conn = Connection::open(dir.path().join(cartback_local::DB_FILE)).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    let events = scenario.events(&format!("ceiling-{}", scenario.id), total);
    let bodies: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    let own_cpu0 = cpu_seconds("self");
    let started = Instant::now();
    for (chunk, bodies) in events.chunks(scenario.per_request).zip(bodies.chunks(scenario.per_request)) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
        for (event, body) in chunk.iter().zip(bodies) {
            let (event_id, cart_id) = (event["event_id"].as_str().unwrap(), event["cart_id"].as_str().unwrap());
            let seen: Option<i64> = tx
                .prepare_cached("SELECT 1 FROM dedupe WHERE event_id = ?1")
                .unwrap()
                .query_row([event_id], |r| r.get(0))
                .optional()
                .unwrap();
            assert!(seen.is_none());
            let stored: Option<(i64, String)> = tx
                .prepare_cached("SELECT version, record FROM carts WHERE cart_id = ?1")
                .unwrap()
                .query_row([cart_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .unwrap();
            let now = "2026-11-25T15:00:00.000000000Z";
            // The record as the server keeps it: the cart with its event log.
            match stored {
                None => {
                    let record = format!(r#"{{"cart_id":"{cart_id}","events":[{body}]}}"#);
                    tx.prepare_cached(
                        "INSERT INTO carts (cart_id, version, record, updated_at) VALUES (?1, 1, ?2, ?3)",
                    )
                    .unwrap()
                    .execute(params![cart_id, record, now])
                    .unwrap();
                    tx.prepare_cached(
                        "INSERT INTO timers (cart_id, due_at, payload, ready_at) VALUES (?1, ?2, ?3, ?2)",
                    )
                    .unwrap()
                    .execute(params![cart_id, now, cart_id])
                    .unwrap();
                }
                Some((version, record)) => {
                    let record = format!("{}{body}]}}", &record[..record.len() - 2]);
                    tx.prepare_cached("UPDATE carts SET version = ?2, record = ?3, updated_at = ?4 WHERE cart_id = ?1")
                        .unwrap()
                        .execute(params![cart_id, version + 1, record, now])
                        .unwrap();
                }
            }
            tx.prepare_cached("INSERT INTO timeline (cart_id, at, entry) VALUES (?1, ?2, ?3)")
                .unwrap()
                .execute(params![cart_id, now, r#"{"kind":"event","code":"add_to_cart","message":"Added 1 item"}"#])
                .unwrap();
            tx.prepare_cached("INSERT INTO dedupe (event_id, received_at) VALUES (?1, ?2)")
                .unwrap()
                .execute(params![event_id, now])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    Throughput {
        events_per_s: total as f64 / elapsed,
        server_cpu: 0.0,
        loadgen_cpu: cpu_seconds("self") - own_cpu0,
        cart_bytes: cart_bytes(&conn),
    }
}

struct Latency {
    rate: f64,
    achieved: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

/// Open loop: request `i` is due at `start + i / rate`; its latency runs
/// from that intended time, so a stalled server is charged for every
/// request it delayed (no coordinated omission), as long as a connection
/// is free (`connections` of them).
fn latency(bin: &Path, rate: f64, seconds: f64, connections: usize) -> Latency {
    let server = Server::start(bin);
    let total = (rate * seconds) as usize;
    let run = format!("open{}", rate as u64);
    let requests = Arc::new(requests(
        &Scenario { name: "open", id: "open", per_request: 1, edit_carts: 0 }.events(&run, total),
        1,
    ));
    let next = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let start = Instant::now() + Duration::from_millis(100);
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (requests, next, samples, addr) =
                (requests.clone(), next.clone(), samples.clone(), server.addr.clone());
            std::thread::spawn(move || {
                let mut client = Client::connect(&addr);
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(i) else { break };
                    let intended = start + Duration::from_secs_f64(i as f64 / rate);
                    if let Some(wait) = intended.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    client.send(request);
                    mine.push(intended.elapsed().as_secs_f64() * 1000.0);
                }
                samples.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut samples = Arc::try_unwrap(samples).unwrap().into_inner().unwrap();
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Latency {
        rate,
        achieved: total as f64 / elapsed,
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: *samples.last().unwrap(),
    }
}

struct Drain {
    carts: usize,
    seconds: f64,
    carts_per_s: f64,
    late_p50: f64,
    late_p99: f64,
    rss_mb: f64,
    disk_per_cart: f64,
}

/// Timers at scale: `carts` abandoned carts (email consent) ingested at
/// real time, then the server restarted at clock speed 600 on the same
/// data: their first checks (30 virtual minutes after each cart) all come
/// due within seconds. Measured: from the first due time until every cart
/// has its message record (sent, or held out) and no job is left queued;
/// and each check's lateness (decision time minus due time, real seconds).
fn timers(bin: &Path, carts: usize, connections: usize) -> Drain {
    const SPEED: f64 = 600.0;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let ingest = Server::start_in(bin, dir.clone(), "1");
    let events: Vec<Value> = (0..carts)
        .map(|n| {
            let mut e = event("t", n, n);
            e["customer"] = json!({ "email": format!("shopper{n}@example.com"), "consents": { "email": true } });
            e
        })
        .collect();
    let requests = Arc::new(requests(&events, 100));
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (requests, next, addr) = (requests.clone(), next.clone(), ingest.addr.clone());
            std::thread::spawn(move || {
                let mut client = Client::connect(&addr);
                while let Some(request) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                    client.send(request);
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
    drop(ingest);
    let first_due: String = Connection::open(dir.path().join(cartback_local::DB_FILE))
        .unwrap()
        .query_row("SELECT MIN(due_at) FROM timers", [], |r| r.get(0))
        .unwrap();
    let first_due = chrono::DateTime::parse_from_rfc3339(&first_due).unwrap().with_timezone(&chrono::Utc);
    let server = Server::start_in(bin, dir.clone(), "600");
    let conn = server.db();
    let virtual_now = || -> chrono::DateTime<chrono::Utc> {
        let answer: Value = serde_json::from_str(&ureq_get(&server.addr, "/healthz")).unwrap();
        answer["now"].as_str().unwrap().parse().unwrap()
    };
    // Real time until the first timer is due.
    let lead = (first_due - virtual_now()).num_milliseconds().max(0) as f64 / 1000.0 / SPEED;
    let started = Instant::now() + Duration::from_secs_f64(lead);
    // Until every cart is decided with its jobs gone, or nothing moved for
    // 30 s (a cart the engine stopped without a message: counted as not drained).
    let (mut decided, mut moved) = (0, Instant::now());
    let mut finished = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now: usize = conn.query_row("SELECT COUNT(DISTINCT cart_id) FROM messages", [], |r| r.get(0)).unwrap();
        let queued: usize = conn.query_row("SELECT COUNT(*) FROM jobs", [], |r| r.get(0)).unwrap();
        if now != decided || queued > 0 {
            finished = Instant::now();
        }
        if now != decided {
            (decided, moved) = (now, Instant::now());
        }
        if (decided >= carts && queued == 0) || moved.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    let seconds = finished.duration_since(started).as_secs_f64();
    let carts = decided;
    // Lateness: the decision against the cart's due time (its event's receipt plus 30 minutes).
    let mut late: Vec<f64> = conn
        .prepare(
            "SELECT (julianday(MIN(m.decided_at)) - julianday(d.received_at)) * 86400.0 - 1800.0
             FROM messages m JOIN dedupe d ON d.event_id = REPLACE(m.cart_id, '-c', '-e') GROUP BY m.cart_id",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, f64>(0))
        .unwrap()
        .map(|l| l.unwrap() / SPEED)
        .collect();
    late.sort_by(f64::total_cmp);
    let at =
        |q: f64| late.get(((late.len() as f64 * q) as usize).min(late.len().saturating_sub(1))).copied().unwrap_or(0.0);
    let disk: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    Drain {
        carts,
        seconds,
        carts_per_s: carts as f64 / seconds,
        late_p50: at(0.50),
        late_p99: at(0.99),
        rss_mb: server.peak_rss_mb(),
        disk_per_cart: disk as f64 / carts as f64,
    }
}

/// A plain GET's body.
fn ureq_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

fn main() {
    let exe = std::env::current_exe().unwrap();
    // target/release/deps/load-HASH: the binary is target/release/cartback.
    let release = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let bin = std::env::var_os("CARTBACK_BIN").map_or_else(|| release.join("cartback"), PathBuf::from);
    let json_path = std::env::var_os("LOAD_JSON")
        .map_or_else(|| release.parent().unwrap().join("bench").join("load.json"), PathBuf::from);
    let total: usize = knob("LOAD_EVENTS", 20_000);
    let connections: usize = knob("LOAD_CONNECTIONS", 8);
    let edit_carts: usize = knob("LOAD_EDIT_CARTS", 1000);
    let seconds: f64 = knob("LOAD_LATENCY_SECONDS", 10.0);
    let open_connections: usize = knob("LOAD_OPEN_CONNECTIONS", 64);
    let rates: Vec<f64> = std::env::var("LOAD_RATES")
        .unwrap_or_else(|_| "500,2000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let scenarios = [
        Scenario { name: "1/request, new carts", id: "new1", per_request: 1, edit_carts: 0 },
        Scenario { name: "100/request, new carts", id: "new100", per_request: 100, edit_carts: 0 },
        Scenario { name: "1/request, edits", id: "edit1", per_request: 1, edit_carts },
        Scenario { name: "100/request, edits", id: "edit100", per_request: 100, edit_carts },
    ];

    println!(
        "ingest: {total} events per scenario, {connections} connections, edits over {edit_carts} carts ({} events each)",
        total / edit_carts.max(1)
    );
    println!(
        "| scenario | cartback dev events/s | ceiling events/s | ratio | server CPU s | load generator CPU s | bytes per cart (dev / ceiling) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut rows = Vec::new();
    for scenario in scenarios {
        let dev = through_server(&bin, scenario, total, connections);
        let top = ceiling(scenario, total);
        let ratio = dev.events_per_s / top.events_per_s;
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} | {:.0} / {:.0} |",
            scenario.name,
            dev.events_per_s,
            top.events_per_s,
            ratio,
            dev.server_cpu,
            dev.loadgen_cpu,
            dev.cart_bytes,
            top.cart_bytes
        );
        rows.push(json!({
            "scenario": scenario.name, "events": total, "connections": connections,
            "events_per_s": dev.events_per_s, "ceiling_events_per_s": top.events_per_s, "ratio": ratio,
            "server_cpu_s": dev.server_cpu, "loadgen_cpu_s": dev.loadgen_cpu,
            "cart_bytes": dev.cart_bytes, "ceiling_cart_bytes": top.cart_bytes,
        }));
    }
    println!();
    println!("open-loop latency, one event per request, {seconds} s per rate, {open_connections} connections");
    println!("| events/s offered | achieved | p50 ms | p99 ms | p99.9 ms | max ms |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut open = Vec::new();
    for rate in rates {
        let l = latency(&bin, rate, seconds, open_connections);
        println!("| {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |", l.rate, l.achieved, l.p50, l.p99, l.p999, l.max);
        open.push(json!({
            "rate": l.rate, "achieved": l.achieved, "seconds": seconds,
            "p50_ms": l.p50, "p99_ms": l.p99, "p999_ms": l.p999, "max_ms": l.max,
        }));
    }
    let timer_carts: usize = knob("LOAD_TIMER_CARTS", 20_000);
    let mut drain = Value::Null;
    if timer_carts > 0 {
        let d = timers(&bin, timer_carts, connections);
        println!();
        println!("timers: {} carts due within seconds (restart at clock speed 600), outbox as the sender", d.carts);
        println!("| carts | drained in s | carts/s end to end | lateness p50 s | lateness p99 s | peak RSS MB | disk bytes per cart |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        println!(
            "| {} | {:.1} | {:.0} | {:.1} | {:.1} | {:.0} | {:.0} |",
            d.carts, d.seconds, d.carts_per_s, d.late_p50, d.late_p99, d.rss_mb, d.disk_per_cart
        );
        drain = json!({
            "carts": d.carts, "seconds": d.seconds, "carts_per_s": d.carts_per_s,
            "lateness_p50_s": d.late_p50, "lateness_p99_s": d.late_p99, "peak_rss_mb": d.rss_mb, "disk_bytes_per_cart": d.disk_per_cart,
        });
    }
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let report = json!({
        "bench": "load", "at": chrono::Utc::now().to_rfc3339(), "cores": cores,
        "ingest": rows, "latency": open, "timers": drain,
    });
    std::fs::create_dir_all(json_path.parent().unwrap()).unwrap();
    std::fs::write(&json_path, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    println!("\nwritten {}", json_path.display());
}
