//! End to end: starts the real `cartback dev` binary with a fast virtual
//! clock and drives it over HTTP, reading results from the outbox folder and
//! the cart read API. Waits poll for an outcome with a generous deadline; no
//! test asserts how fast anything happens. Every answer is checked against
//! the served OpenAPI document (`cartback_tests::openapi`).

#[path = "support/dev.rs"]
mod dev;

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cartback_core::signing::{sign_request, sign_request_v1, Secret, SignedRequest};
use cartback_tests::pii::Contacts;
use dev::{checked, Launch, DEADLINE, SECRET};
use serde_json::{json, Value};

/// `cartback dev` at 600x (30 virtual minutes pass in 3 real seconds),
/// logging every level down to `trace` for Cartback's crates; when the
/// test ends the log is scanned for every contact value the test sent.
struct Dev {
    server: dev::Dev,
    contacts: RefCell<Contacts>,
}

impl Deref for Dev {
    type Target = dev::Dev;
    fn deref(&self) -> &dev::Dev {
        &self.server
    }
}

impl DerefMut for Dev {
    fn deref_mut(&mut self) -> &mut dev::Dev {
        &mut self.server
    }
}

impl Dev {
    fn start() -> Dev {
        Dev::launch(None)
    }

    fn start_in(data: &Path) -> Dev {
        Dev::launch(Some(data))
    }

    fn launch(data: Option<&Path>) -> Dev {
        let rust_log = "info,cartback=trace,cartback_core=trace,cartback_local=trace,cartback_http=trace";
        // Web push goes to a push service on this machine in these tests.
        let env = &[("CARTBACK_WEB_PUSH_ALLOW_HTTP_LOOPBACK", "true")];
        let server = dev::Dev::start(Launch { speed: "600", data, rust_log, env, ..Launch::default() });
        Dev { server, contacts: RefCell::default() }
    }

    fn server_now(&self) -> i64 {
        self.now().timestamp()
    }

    /// POST raw bytes with an optional signature header; returns status and JSON.
    fn post_raw(&self, body: &[u8], signature: Option<String>) -> (u16, Value) {
        if let Ok(json) = serde_json::from_slice::<Value>(body) {
            self.contacts.borrow_mut().collect(&json);
        }
        let mut request = ureq::post(&format!("{}/v1/events", self.base)).set("content-type", "application/json");
        if let Some(sig) = signature {
            request = request.set("x-cartback-signature", &sig);
        }
        checked("POST", "/v1/events", request.send_bytes(body))
    }

    fn post(&self, body: &Value) -> Value {
        let bytes = serde_json::to_vec(body).unwrap();
        let (status, json) = self.post_raw(&bytes, Some(self.signature("POST", "/v1/events", &bytes)));
        assert_eq!(status, 200, "{json}");
        json
    }

    /// The outbox's emails, readable, sorted.
    fn emails(&self) -> Vec<String> {
        let mut mails: Vec<String> = self.server.emails().into_iter().map(|(_, mail)| mail).collect();
        mails.sort();
        mails
    }

    /// Polls the cart until its timeline has a decision with `code`.
    fn wait_for_decision(&self, cart_id: &str, code: &str) -> Value {
        self.wait_for(cart_id, code, |cart| decisions(cart).iter().any(|d| d == code))
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.server.stop();
        if !std::thread::panicking() {
            self.contacts.borrow().assert_absent_from("cartback dev", &self.log_text());
        }
    }
}

fn sent_messages(cart: &Value) -> usize {
    cart["timeline"].as_array().into_iter().flatten().filter(|e| e["kind"] == "message" && e["code"] == "sent").count()
}

fn decisions(cart: &Value) -> Vec<String> {
    cart["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "decision")
        .map(|e| e["code"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn add_to_cart(event_id: &str, cart_id: &str, email: &str) -> Value {
    json!({
        "event_id": event_id, "type": "add_to_cart", "cart_id": cart_id, "device": "desktop", "currency": "EUR",
        "customer": {"email": email, "first_name": "Ana", "consents": {"email": true}},
        "items": [{"item_id": "sku-mug", "item_name": "Stoneware mug", "price": "14.90", "quantity": 2,
                   "image_url": "https://cdn.example.com/mug.jpg", "url": "https://shop.example.com/p/mug"}]
    })
}

#[test]
fn given_an_abandoned_cart_when_the_timer_fires_then_exactly_one_email_lands_in_the_outbox() {
    let dev = Dev::start();
    let answer = dev.post(&add_to_cart("a1", "cart-a", "ana@example.com"));
    assert_eq!(answer["accepted"], 1);

    let cart = dev.wait_for("cart-a", "a sent message", |cart| {
        sent_messages(cart) == 1 && decisions(cart).iter().any(|d| d == "waiting_for_next_step")
    });
    let emails = dev.emails();
    assert_eq!(emails.len(), 1, "one email for step 1");
    let email = &emails[0];
    assert!(email.contains("To: ana@example.com"));
    assert!(email.contains("Stoneware mug"));
    assert!(email.contains("multipart/alternative"));
    assert!(email.contains("https://cdn.example.com/mug.jpg"), "the item's image is in the HTML part");
    assert!(email.contains("/r/"), "links go through the tracked redirect");
    assert_eq!(decisions(&cart).iter().filter(|d| *d == "sent").count(), 1);
    assert_eq!(sent_messages(&cart), 1, "the timeline records the message: {cart:#}");
}

#[test]
fn given_a_purchase_before_the_timer_when_the_timer_fires_then_nothing_is_sent() {
    let dev = Dev::start();
    dev.post(&add_to_cart("p1", "cart-p", "ben@example.com"));
    dev.post(&json!({"event_id": "p2", "type": "purchase", "cart_id": "cart-p", "order_id": "o-1", "currency": "EUR", "value": "29.80"}));

    let cart = dev.wait_for_decision("cart-p", "purchased");
    assert_eq!(cart["status"], "converted");
    assert!(dev.emails().is_empty());
}

#[test]
fn given_cart_activity_when_it_continues_then_the_abandonment_timer_restarts_from_the_last_activity() {
    let dev = Dev::start();
    dev.post(&add_to_cart("r1", "cart-r", "cleo@example.com"));
    // 1.5 real seconds = 15 virtual minutes later, the shopper is still active.
    std::thread::sleep(Duration::from_millis(1500));
    let mut second = add_to_cart("r2", "cart-r", "cleo@example.com");
    second["items"][0]["item_id"] = json!("sku-bowl");
    dev.post(&second);

    let cart = dev.wait_for("cart-r", "a sent message", |cart| sent_messages(cart) == 1);
    let timeline = cart["timeline"].as_array().unwrap();
    let at = |pred: &dyn Fn(&Value) -> bool| -> chrono::DateTime<chrono::Utc> {
        timeline.iter().find(|e| pred(e)).unwrap()["at"].as_str().unwrap().parse().unwrap()
    };
    let last_activity = at(&|e| e["details"]["event_id"] == "r2");
    let sent_at = at(&|e| e["kind"] == "decision" && e["code"] == "sent");
    assert!(
        sent_at >= last_activity + chrono::Duration::minutes(30),
        "sent at {sent_at}, last activity {last_activity}"
    );
    assert_eq!(dev.emails().len(), 1);
}

#[test]
fn given_the_same_event_twice_when_posted_then_the_repeat_is_a_duplicate_that_changes_nothing() {
    let dev = Dev::start();
    let event = add_to_cart("d1", "cart-d", "dan@example.com");
    assert_eq!(dev.post(&event)["results"][0]["status"], "accepted");
    let repeat = dev.post(&event);
    assert_eq!(repeat["results"][0]["status"], "duplicate");
    assert_eq!(repeat["duplicates"], 1);
    let (_, cart) = dev.cart("cart-d");
    assert_eq!(cart["items"][0]["quantity"], 2, "quantity not doubled");
}

#[test]
fn given_a_batch_with_good_and_bad_events_when_posted_then_the_good_are_stored_and_the_bad_named() {
    let dev = Dev::start();
    let mut bad = add_to_cart("m2", "cart-m", "eve@example.com");
    bad["items"][0]["price"] = json!("twelve");
    let answer =
        dev.post(&json!({"events": [add_to_cart("m1", "cart-m", "eve@example.com"), bad, {"type": "add_to_cart"}]}));
    assert_eq!((answer["accepted"].as_u64(), answer["rejected"].as_u64()), (Some(1), Some(2)));
    assert_eq!(answer["results"][1]["error"]["field"], "items[0].price");
    assert_eq!(answer["results"][2]["error"]["field"], "event_id");
    let (status, cart) = dev.cart("cart-m");
    assert_eq!(status, 200);
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
}

#[test]
fn given_a_missing_or_wrong_signature_when_posting_then_401_with_a_json_error() {
    let dev = Dev::start();
    let body = serde_json::to_vec(&add_to_cart("s1", "cart-s", "sam@example.com")).unwrap();
    let (status, json) = dev.post_raw(&body, None);
    assert_eq!(status, 401);
    assert!(json["error"]["message"].as_str().unwrap().contains("missing"));
    let now = chrono::Utc::now().timestamp();
    let wrong = sign("not-the-right-secret!", now, "POST", "/v1/events", &body);
    assert_eq!(dev.post_raw(&body, Some(wrong)).0, 401);
    let stale = sign(SECRET, now - 3600, "POST", "/v1/events", &body);
    assert_eq!(dev.post_raw(&body, Some(stale)).0, 401);
    assert_eq!(dev.cart("cart-s").0, 404, "nothing was stored");
}

fn sign(secret: &str, timestamp: i64, method: &str, path_and_query: &str, body: &[u8]) -> String {
    let request = SignedRequest { method, path_and_query, body };
    sign_request(&Secret::new(secret.as_bytes().to_vec()).unwrap(), timestamp, &request)
}

/// GIVEN `cartback dev` at 600x, its virtual clock minutes ahead of real time
/// WHEN a storefront signs with its own (real) clock
/// THEN the event is accepted: the replay window is checked against real time; a signature stamped with
/// the virtual time is outside it.
#[test]
fn given_a_fast_virtual_clock_when_a_storefront_signs_with_real_time_then_the_replay_window_holds() {
    let dev = Dev::start();
    std::thread::sleep(Duration::from_secs(2));
    let ahead = dev.server_now() - chrono::Utc::now().timestamp();
    assert!(ahead > 600, "the virtual clock is {ahead} s ahead");
    let body = serde_json::to_vec(&add_to_cart("rt1", "cart-rt", "rita@example.com")).unwrap();
    let virtual_stamp = sign(SECRET, dev.server_now(), "POST", "/v1/events", &body);
    assert_eq!(dev.post_raw(&body, Some(virtual_stamp)).0, 401);
    let (status, json) = dev.post_raw(&body, Some(dev.signature("POST", "/v1/events", &body)));
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["accepted"], 1, "{json}");
}

/// GIVEN two carts and a captured signature of `GET /v1/carts/cart-a`
/// WHEN it is replayed on `/v1/carts/cart-b`, or a v1 signature is used on a GET
/// THEN both are refused with 401; v1 still passes on POST /v1/events (the compatibility default).
#[test]
fn given_a_captured_cart_read_signature_when_replayed_on_another_cart_then_it_is_refused() {
    let dev = Dev::start();
    dev.post(&add_to_cart("ga1", "cart-a", "ann@example.com"));
    let v1_body = serde_json::to_vec(&add_to_cart("gb1", "cart-b", "bob@example.com")).unwrap();
    let v1 =
        sign_request_v1(&Secret::new(SECRET.as_bytes().to_vec()).unwrap(), chrono::Utc::now().timestamp(), &v1_body);
    assert_eq!(dev.post_raw(&v1_body, Some(v1)).0, 200, "v1 on POST /v1/events");
    let captured = dev.signature("GET", "/v1/carts/cart-a", b"");
    let get = |path: &str, signature: &str| {
        checked("GET", path, ureq::get(&format!("{}{path}", dev.base)).set("x-cartback-signature", signature).call()).0
    };
    assert_eq!(get("/v1/carts/cart-a", &captured), 200);
    assert_eq!(get("/v1/carts/cart-b", &captured), 401);
    let v1_get =
        sign_request_v1(&Secret::new(SECRET.as_bytes().to_vec()).unwrap(), chrono::Utc::now().timestamp(), b"");
    assert_eq!(get("/v1/carts/cart-b", &v1_get), 401);
}

#[test]
fn given_garbage_bodies_when_posted_then_clear_4xx_answers_and_the_server_stays_up() {
    let dev = Dev::start();
    let bodies: Vec<(Vec<u8>, u16)> = vec![
        (b"{not json".to_vec(), 400),
        (b"".to_vec(), 400),
        (b"[1,2,3]".to_vec(), 400),
        (b"\"text\"".to_vec(), 400),
        (vec![0xff, 0xfe, 0x00, 0x01], 400),
        (br#"{"events": "nope"}"#.to_vec(), 400),
        (vec![b' '; 1024 * 1024 + 10], 413),
        (serde_json::to_vec(&json!({"events": vec![json!({}); 501]})).unwrap(), 413),
    ];
    for (body, expected) in bodies {
        let (status, json) = dev.post_raw(&body, Some(dev.signature("POST", "/v1/events", &body)));
        assert_eq!(status, expected, "for a {}-byte body: {json}", body.len());
        assert!(json["error"]["message"].is_string());
    }
    let answer = dev.post(&json!({"events": [42, null, "x", {"event_id": 7}]}));
    assert_eq!(answer["rejected"], 4);
    assert_eq!(dev.cart("unknown-cart").0, 404);
    assert_eq!(checked("GET", "/healthz", ureq::get(&format!("{}/healthz", dev.base)).call()).0, 200);
}

#[test]
fn given_a_sent_email_when_its_link_is_clicked_then_cartback_records_the_click_and_redirects() {
    let dev = Dev::start();
    dev.post(&add_to_cart("k1", "cart-k", "kim@example.com"));
    dev.wait_for("cart-k", "a sent message", |cart| sent_messages(cart) == 1);
    let plain = dev.emails().remove(0);
    let start = plain.find(&format!("{}/r/", dev.base)).expect("a tracked link");
    let link: String = plain[start..].chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let response = agent.get(&link).call().expect("redirect answer");
    assert_eq!(response.status(), 302);
    assert!(response.header("location").unwrap().starts_with("https://shop.example.com/p/mug"));
    let path = &link[dev.base.len()..];
    checked("GET", path, Ok(response));
    let (_, cart) = dev.cart("cart-k");
    assert!(cart["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "engagement"), "{cart:#}");
    assert_eq!(checked("GET", "/r/forged.token", agent.get(&format!("{}/r/forged.token", dev.base)).call()).0, 404);
}

#[test]
fn given_a_pending_timer_when_the_process_restarts_then_the_email_still_goes_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Dev::start_in(dir.path());
    first.post(&add_to_cart("t1", "cart-t", "tom@example.com"));
    first.stop();
    assert!(first.emails().is_empty(), "stopped before the timer fired");

    let second = Dev::start_in(dir.path());
    second.wait_for_decision("cart-t", "sent");
    let start = Instant::now();
    while second.emails().is_empty() && start.elapsed() < DEADLINE {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(second.emails().len(), 1);
}

#[test]
fn given_a_running_campaign_when_the_marketer_disables_it_then_its_pending_step_is_not_sent_and_the_timeline_says_why()
{
    let dir = tempfile::tempdir().unwrap();
    let campaign = dir.path().join("fast.toml");
    std::fs::write(&campaign, "id = \"fast\"\nname = \"Fast\"\nholdout_percent = 0\n[[steps]]\ndelay = \"30m\"\ndelay_from = \"last_activity\"\n[steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n[[steps]]\ndelay = \"2h\"\n[steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n").unwrap();
    let cli = |args: &[&str]| dev::cartback(dir.path(), args);
    assert!(cli(&["campaign", "apply", campaign.to_str().unwrap()]).status.success());

    let dev = Dev::start_in(dir.path());
    dev.post(&add_to_cart("x1", "cart-x", "xia@example.com"));
    dev.wait_for("cart-x", "a sent message", |cart| sent_messages(cart) == 1);
    assert!(cli(&["campaign", "disable", "fast"]).status.success());

    let cart = dev.wait_for_decision("cart-x", "campaign_disabled");
    assert_eq!(decisions(&cart).iter().filter(|d| *d == "sent").count(), 1, "only step 1 went out");
    assert_eq!(dev.emails().len(), 1);

    let explain = cli(&["explain", "cart-x"]);
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(text.contains("campaign_disabled") && text.contains("Step 1 of campaign \"fast\" by email"), "{text}");
}

/// `cartback explain CART_ID` on the dev server's data folder.
fn explain(dev: &Dev, cart_id: &str) -> String {
    let out = dev::cartback(&dev.data, &["explain", cart_id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    dev.contacts.borrow().assert_absent_from("cartback explain", &text);
    text
}

/// The line of `text` that holds every one of `parts`, and where it is.
#[track_caller]
fn line_with(text: &str, parts: &[&str]) -> usize {
    text.lines().position(|line| parts.iter().all(|p| line.contains(p))).unwrap_or_else(|| panic!("{parts:?}: {text}"))
}

#[test]
fn given_consent_given_with_a_basis_then_withdrawn_when_a_cart_is_explained_then_both_changes_show_in_order() {
    let dev = Dev::start();
    // A known customer: the history is the customer's.
    let mut given = add_to_cart("h1", "cart-h", "hana@example.com");
    given["customer_id"] = json!("cust-h");
    given["customer"]["consents"] = json!({"email": true, "basis": "consent"});
    dev.post(&given);
    dev.post(&json!({"event_id": "h2", "type": "identify", "customer_id": "cust-h",
                     "customer": {"consents": {"email": false}}}));
    let text = explain(&dev, "cart-h");
    assert!(text.contains("consent history of customer cust-h:"), "{text}");
    let granted = line_with(&text, &["email", "granted", "source event", "basis consent"]);
    let withdrawn = line_with(&text, &["email", "withdrawn", "source event", "basis -"]);
    assert!(granted < withdrawn, "oldest first: {text}");

    // A guest: the history is the cart's own.
    let mut guest = add_to_cart("g1", "cart-g", "gina@example.com");
    guest["customer"]["consents"] = json!({"email": true, "sms": true, "basis": "consent"});
    dev.post(&guest);
    dev.post(&json!({"event_id": "g2", "type": "begin_checkout", "cart_id": "cart-g",
                     "customer": {"consents": {"email": false}}}));
    let text = explain(&dev, "cart-g");
    assert!(text.contains("consent history of this cart (guest):"), "{text}");
    let granted = line_with(&text, &["email", "granted", "source event", "basis consent"]);
    line_with(&text, &["sms", "granted", "source event", "basis consent"]);
    let withdrawn = line_with(&text, &["email", "withdrawn", "source event"]);
    assert!(granted < withdrawn, "oldest first: {text}");
}

#[test]
fn given_the_readme_python_example_when_run_against_cartback_then_its_signed_event_is_accepted() {
    // Real time: the example signs with its own clock.
    let server = dev::Dev::start(Launch { speed: "1", ..Launch::default() });
    let out = Command::new("python3")
        .arg(format!("{}/../examples/sign_and_send.py", env!("CARGO_MANIFEST_DIR")))
        .env("CARTBACK_URL", &server.base)
        .env("CARTBACK_INGEST_SECRET", SECRET)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0 accepted");
}

#[test]
fn given_customers_reachable_by_sms_push_and_web_push_when_every_channel_sends_then_the_server_log_holds_no_contact_data(
) {
    // GIVEN a campaign whose steps use SMS, then push (mobile) or web push
    // (desktop), and customers with a phone number, push tokens and a web
    // push subscription; the server logs at `trace` for Cartback's crates.
    let dir = tempfile::tempdir().unwrap();
    let campaign = dir.path().join("every-channel.toml");
    std::fs::write(
        &campaign,
        "id = \"every-channel\"\nname = \"Every channel\"\nholdout_percent = 0\n\
         [[steps]]\ndelay = \"30m\"\ndelay_from = \"last_activity\"\n\
         [steps.channels]\nmobile = [\"sms\"]\ndesktop = [\"sms\"]\n\
         [[steps]]\ndelay = \"30m\"\n\
         [steps.channels]\nmobile = [\"push\"]\ndesktop = [\"web_push\"]\n",
    )
    .unwrap();
    let applied = Command::new(env!("CARGO_BIN_EXE_cartback"))
        .args(["campaign", "apply", campaign.to_str().unwrap(), "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let dev = Dev::start_in(dir.path());
    // A push service on this machine that accepts the desktop customer's web push.
    let push_service = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let push_port = push_service.local_addr().unwrap().port();
    let accepted = std::thread::spawn(move || {
        use std::io::{BufRead, Read, Write};
        let (mut stream, _) = push_service.accept().unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let (mut head, mut length) = (String::new(), 0usize);
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line);
        }
        reader.read_exact(&mut vec![0; length]).unwrap();
        write!(stream, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        head
    });
    // A browser's subscription keys (a P-256 public key, made afresh, and a
    // 16-byte secret in base64url whose middle carries the customer's token).
    let browser_keys = |token: &str| {
        let p256dh = cartback_webpush::VapidKey::generate().public_key();
        json!({"p256dh": p256dh, "auth": format!("tBHI{token}svbpez7KI4CCXg")})
    };
    let customer = |phone: &str, token: &str| {
        json!({"email": format!("{token}@example.com"), "phone": phone, "first_name": "Ana",
               "push_tokens": [{"platform": "fcm", "token": format!("fcm-token-{token}-0123456789")}],
               "web_push_subscription": {"endpoint": format!("http://127.0.0.1:{push_port}/send/{token}-abcdef"),
                                         "keys": browser_keys(token)},
               "consents": {"email": true, "sms": true, "push": true, "web_push": true}})
    };
    for (cart, device, phone, token) in
        [("cart-mobile", "mobile", "+33612345678", "mona"), ("cart-desktop", "desktop", "+4915112345678", "dirk")]
    {
        let mut event = add_to_cart(&format!("{cart}-add"), cart, "unused@example.com");
        event["device"] = json!(device);
        event["customer"] = customer(phone, token);
        let answer = dev.post(&event);
        assert_eq!(answer["accepted"], 1, "{answer}");
    }

    // WHEN both steps go out on both carts
    for cart in ["cart-mobile", "cart-desktop"] {
        dev.wait_for(cart, "two sent messages", |c| sent_messages(c) == 2);
    }
    let outbox = |name: &str| std::fs::read_to_string(dev.data.join("outbox").join(name)).unwrap_or_default();
    assert_eq!(outbox("sms.jsonl").lines().count(), 2);
    assert_eq!(outbox("push.jsonl").lines().count(), 2);
    let posted = accepted.join().unwrap();
    assert!(posted.starts_with("POST /send/dirk-abcdef "), "the web push was really posted: {posted}");

    // The log saw the sends (a `debug` line per written message), so the
    // scan below reads the sending path's output.
    let log = std::fs::read_to_string(&dev.log).unwrap();
    assert_eq!(log.matches("written to the outbox").count(), 4, "{log}");
    // THEN (when `dev` drops) its log holds none of the phone numbers,
    // addresses, tokens or subscriptions: the scan covers all of them.
    assert_eq!(dev.contacts.borrow().len(), 2 * 7, "address, number (with and without +), token, endpoint, 2 keys");
}

/// Runs `cartback ARGS --data DIR` against the folder `cartback dev` uses.
fn cli(data: &Path, args: &[&str]) -> (bool, Value, String) {
    let out = dev::cartback(data, args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The last day a report of this run covers: `cartback dev` runs a fast
/// virtual clock, so its facts may fall on a later day than the command's
/// real today (a run started shortly before midnight UTC).
fn report_to() -> String {
    (chrono::Utc::now() + chrono::Duration::days(2)).date_naive().to_string()
}

#[test]
fn given_a_customer_with_two_carts_and_a_sent_reminder_when_exported_and_erased_then_nothing_of_theirs_is_left_or_sent()
{
    // GIVEN a campaign of two emails (30 minutes after the last activity,
    // then 3 hours later) and a customer with two carts, the first reminder sent
    let dir = tempfile::tempdir().unwrap();
    let campaign = dir.path().join("two-emails.toml");
    std::fs::write(
        &campaign,
        "id = \"two-emails\"\nname = \"Two emails\"\nholdout_percent = 0\n\
         [[steps]]\ndelay = \"30m\"\ndelay_from = \"last_activity\"\n\
         [steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n\
         [[steps]]\ndelay = \"3h\"\n\
         [steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n",
    )
    .unwrap();
    let (applied, _, stderr) = cli(dir.path(), &["campaign", "apply", campaign.to_str().unwrap()]);
    assert!(applied, "{stderr}");
    let dev = Dev::start_in(dir.path());
    let email = "erin.erase@example.com";
    for (event_id, cart) in [("erase-a", "cart-erase-a"), ("erase-b", "cart-erase-b")] {
        let mut event = add_to_cart(event_id, cart, email);
        event["customer_id"] = json!("cust-erase");
        assert_eq!(dev.post(&event)["accepted"], 1);
    }
    let cart = dev.wait_for("cart-erase-a", "a sent reminder", |c| sent_messages(c) == 1);
    let sent_at: chrono::DateTime<chrono::Utc> = cart["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "message" && e["code"] == "sent")
        .and_then(|e| e["at"].as_str()?.parse().ok())
        .unwrap();
    dev.wait_for("cart-erase-b", "a decision", |c| !decisions(c).is_empty());
    assert!(dev.emails().iter().any(|m| m.contains(&format!("To: {email}"))), "the reminder is in the outbox");
    let (reported, before, stderr) = cli(dir.path(), &["report", "--json", "--to", &report_to()]);
    assert!(reported, "{stderr}");
    assert!(before["total"]["entered"].as_u64().unwrap() >= 1, "{before}");

    // WHEN exported (CLI), then erased (HTTP)
    let (exported, export, stderr) = cli(dir.path(), &["customer", "export", "cust-erase"]);
    assert!(exported, "{stderr}");
    let carts: Vec<&str> = export["carts"].as_array().unwrap().iter().map(|c| c["cart_id"].as_str().unwrap()).collect();
    assert_eq!(carts, ["cart-erase-a", "cart-erase-b"]);
    assert_eq!(export["customer"]["profile"]["email"], email);
    let messages = export["messages"].as_array().unwrap();
    assert!(messages.iter().any(|m| m["cart_id"] == "cart-erase-a" && m["status"]["state"] == "sent"), "{export:#}");

    let path = "/v1/customers/cust-erase";
    let signature = dev.signature("DELETE", path, b"");
    let request = ureq::delete(&format!("{}{path}", dev.base)).set("x-cartback-signature", &signature);
    let (status, erased) = checked("DELETE", "/v1/customers/{customer_id}", request.call());

    // THEN the outbox copy and both carts are gone, the report is unchanged,
    // a second erasure (CLI) finds nothing, and once the second step's time
    // has passed nothing more was sent
    assert_eq!(status, 200, "{erased}");
    assert_eq!((erased["erased"]["profiles"].as_u64(), erased["erased"]["carts"].as_u64()), (Some(1), Some(2)));
    assert!(erased["erased"]["outbox_copies"].as_u64().unwrap() >= 1, "{erased}");
    assert!(!dev.emails().iter().any(|m| m.contains(email)), "no copy of the customer's email is left");
    for cart in ["cart-erase-a", "cart-erase-b"] {
        assert_eq!(dev.cart(cart).0, 404, "{cart} is erased");
    }
    let (_, after, _) = cli(dir.path(), &["report", "--json", "--to", &report_to()]);
    assert_eq!(after["total"], before["total"], "the report's totals stay");
    let (erased_again, again, stderr) = cli(dir.path(), &["customer", "erase", "cust-erase"]);
    assert!(erased_again, "{stderr}");
    assert!(again["erased"].as_object().unwrap().values().all(|n| n == 0), "{again}");
    let emails_after_erasure = dev.emails().len();
    let start = Instant::now();
    while dev.server_now() < (sent_at + chrono::Duration::hours(4)).timestamp() {
        assert!(start.elapsed() < DEADLINE, "the virtual clock stalled");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(dev.emails().len(), emails_after_erasure, "no step went out after the erasure");
    assert_eq!(dev.cart("cart-erase-a").0, 404, "no later event recreated the cart");
}

/// The timers `cartback dev` has armed, read from its database (a second
/// connection: the database is in WAL mode), as JSON.
fn armed_timers(data: &Path) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let db = cartback_local::Database::open(data).unwrap();
        serde_json::to_string(&cartback_local::TimerWheel::new(db).pending().await.unwrap()).unwrap()
    })
}

#[test]
fn given_customers_on_email_and_sms_when_reminded_then_timers_dashboard_report_queues_and_logs_hold_no_contact_or_token(
) {
    // GIVEN a campaign sending email to desktop carts and SMS to mobile ones,
    // and two customers with every kind of contact data
    let dir = tempfile::tempdir().unwrap();
    let campaign = dir.path().join("email-or-sms.toml");
    std::fs::write(
        &campaign,
        "id = \"email-or-sms\"\nname = \"Email or SMS\"\nholdout_percent = 0\n\
         [[steps]]\ndelay = \"30m\"\ndelay_from = \"last_activity\"\n\
         [steps.channels]\nmobile = [\"sms\"]\ndesktop = [\"email\"]\n",
    )
    .unwrap();
    let (applied, _, stderr) = cli(dir.path(), &["campaign", "apply", campaign.to_str().unwrap()]);
    assert!(applied, "{stderr}");
    let dev = Dev::start_in(dir.path());
    for (cart, device, phone, name) in
        [("cart-pii-d", "desktop", "+33698765432", "paula"), ("cart-pii-m", "mobile", "+4917698765432", "marek")]
    {
        let mut event = add_to_cart(&format!("{cart}-add"), cart, &format!("{name}.pii@example.com"));
        event["device"] = json!(device);
        event["customer_id"] = json!(format!("cust-{name}"));
        event["customer"]["phone"] = json!(phone);
        event["customer"]["consents"] = json!({"email": true, "sms": true});
        event["customer"]["push_tokens"] = json!([{"platform": "fcm", "token": format!("fcm-pii-{name}-0123456789")}]);
        assert_eq!(dev.post(&event)["accepted"], 1);
    }
    // The timers as armed, before they fire.
    let timers = armed_timers(dir.path());
    assert!(timers.contains("cart-pii-d"), "the timers are read: {timers}");

    // WHEN the reminders go out and a customer follows the email's link
    for cart in ["cart-pii-d", "cart-pii-m"] {
        dev.wait_for(cart, "a sent message", |c| sent_messages(c) == 1);
    }
    let email = dev.emails().into_iter().find(|m| m.contains("paula.pii@example.com")).expect("the email");
    let sms = std::fs::read_to_string(dev.data.join("outbox/sms.jsonl")).unwrap();
    let mut tokens = cartback_tests::pii::Contacts::link_tokens(&email);
    tokens.extend(cartback_tests::pii::Contacts::link_tokens(&sms));
    assert!(tokens.len() >= 3, "restore and item links of the email and the SMS: {tokens:?}");
    for token in &tokens {
        dev.contacts.borrow_mut().add(token);
    }
    let start = email.find(&format!("{}/r/", dev.base)).expect("a tracked link");
    let link: String = email[start..].chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    assert_eq!(agent.get(&link).call().expect("redirect answer").status(), 302);

    // THEN none of the contact values or tokens is in the timers' payloads,
    // the dashboard, the report, the queues' operator output, or (when
    // `dev` drops) the server's log
    let contacts = dev.contacts.borrow().clone();
    contacts.assert_not_in("the armed timers", &timers);
    for cart in ["cart-pii-d", "cart-pii-m"] {
        let (_, view) = dev.cart(cart);
        contacts.assert_not_in(&format!("the timeline of {cart}"), &view["timeline"].to_string());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_cartback"))
        .args(["dashboard", "--url", &dev.base, "--data"])
        .arg(dir.path())
        .env("CARTBACK_INGEST_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "the dashboard link: {}", String::from_utf8_lossy(&out.stderr));
    let link_out = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let page = ureq::get(&link_out).call().expect("the dashboard").into_string().unwrap();
    assert!(page.contains("email-or-sms"), "the dashboard shows the campaign");
    contacts.assert_not_in("the dashboard", &page);
    let (reported, report, stderr) = cli(dir.path(), &["report", "--json", "--to", &report_to()]);
    assert!(reported, "{stderr}");
    assert!(report["total"]["entered"].as_u64() >= Some(1), "{report}");
    contacts.assert_not_in("the report", &report.to_string());
    for args in [&["queue", "stats"][..], &["queue", "dead-letters", "email"], &["queue", "dead-letters", "sms"]] {
        let out =
            Command::new(env!("CARGO_BIN_EXE_cartback")).args(args).arg("--data").arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        contacts.assert_not_in(&format!("cartback {}", args.join(" ")), &text);
    }
}
