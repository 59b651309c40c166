//! Proof of the backtest's replay fidelity: live traffic of a scenario is
//! recorded through the real `cartback dev` (fast virtual clock), then
//! `cartback backtest` replays the stored history. Backtesting the live
//! campaign against itself must predict exactly the messages sent (same
//! carts, steps and channels); a draft with a longer first delay must show
//! the differences the README documents.

#[path = "support/dev.rs"]
mod dev;

use std::path::Path;
use std::time::{Duration, Instant};

use dev::{cartback, count, stderr, stdout, Dev, Launch, DEADLINE};
use serde_json::{json, Value};

/// Two emails: 30 minutes after the last activity, then an hour later.
const LIVE: &str = "id = \"live\"\nname = \"Live\"\nholdout_percent = 0\n\
    [[steps]]\ndelay = \"30m\"\ndelay_from = \"last_activity\"\n\
    [steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n\
    [[steps]]\ndelay = \"1h\"\n\
    [steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n";

fn post(dev: &Dev, event: Value) {
    let (status, answer) = dev.post_events(&event);
    assert_eq!((status, &answer["accepted"]), (200, &json!(1)), "{answer}");
}

fn wait_for_sent(dev: &Dev, cart_id: &str, sent: usize) {
    dev.wait_for(cart_id, &format!("{sent} sent messages"), |cart| count(cart, "message", "sent") >= sent);
}

fn add_to_cart(event_id: &str, cart_id: &str, customer_id: Option<&str>, email: &str, consent: bool) -> Value {
    let mut event = json!({
        "event_id": event_id, "type": "add_to_cart", "cart_id": cart_id, "device": "desktop", "currency": "EUR",
        "customer": {"email": email, "first_name": "Ana"},
        "items": [{"item_id": "sku-mug", "item_name": "Stoneware mug", "price": "14.90", "quantity": 2}]
    });
    if consent {
        event["customer"]["consents"] = json!({"email": true});
    }
    if let Some(id) = customer_id {
        event["customer_id"] = json!(id);
    }
    event
}

/// Records the scenario's live traffic in `data` and returns how many
/// emails went out: ana's cart A gets both steps, her cart C meets the
/// entry cooldown, bob's cart B is bought after its first email, a guest's
/// cart D never consented; the history ends 2.5 hours after cart A started.
fn record_scenario(data: &Path) -> usize {
    let mut dev = Dev::start(Launch { data: Some(data), campaigns: &[LIVE], rust_log: "warn", ..Launch::default() });
    let started = dev.now();
    post(&dev, add_to_cart("a1", "cart-a", Some("ana"), "ana@example.com", true));
    post(&dev, add_to_cart("b1", "cart-b", Some("bob"), "bob@example.com", true));
    post(&dev, add_to_cart("d1", "cart-d", None, "dee@example.com", false));
    wait_for_sent(&dev, "cart-a", 1);
    // After ana's first email, so live traffic has no race between her carts.
    post(&dev, add_to_cart("c1", "cart-c", Some("ana"), "ana@example.com", true));
    wait_for_sent(&dev, "cart-b", 1);
    post(
        &dev,
        json!({"event_id": "b2", "type": "purchase", "cart_id": "cart-b", "customer_id": "bob",
               "order_id": "o-1", "currency": "EUR", "value": "29.80"}),
    );
    wait_for_sent(&dev, "cart-a", 2);
    let start = Instant::now();
    while dev.now() < started + chrono::Duration::minutes(150) {
        assert!(start.elapsed() < DEADLINE, "the virtual clock stalled");
        std::thread::sleep(Duration::from_millis(300));
    }
    // An event at the end: the history (and so the replay) reaches this far.
    post(
        &dev,
        json!({"event_id": "z1", "type": "identify", "customer_id": "zoe",
                      "customer": {"email": "zoe@example.com"}}),
    );
    let emails = dev.emails().len();
    dev.stop();
    emails
}

fn backtest(data: &Path, draft: &str) -> Value {
    std::fs::write(data.join("draft.toml"), draft).unwrap();
    let draft = data.join("draft.toml");
    let out = cartback(data, &["backtest", "--campaign", draft.to_str().unwrap(), "--against", "live", "--json", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// (step, channel, sent, live_sent) of each row.
fn rows(report: &Value) -> Vec<(u64, String, u64, u64)> {
    let rows = report["steps"].as_array().unwrap();
    rows.iter()
        .map(|r| {
            let channel = r["channel"].as_str().unwrap().to_owned();
            (r["step"].as_u64().unwrap(), channel, r["sent"].as_u64().unwrap(), r["live_sent"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn given_recorded_live_traffic_when_the_live_campaign_is_backtested_against_itself_then_it_predicts_exactly_what_was_sent(
) {
    // GIVEN the scenario's live traffic through `cartback dev`
    let dir = tempfile::tempdir().unwrap();
    let emails = record_scenario(dir.path());
    assert_eq!(emails, 3, "live sent A's two steps and B's first");

    // WHEN the live campaign's own file is backtested against it
    let report = backtest(dir.path(), LIVE);

    // THEN every cart decides as live did: same carts, steps and channels
    let against = &report["against"];
    assert_eq!(against["replay_mismatches"], 0, "{report:#}");
    assert_eq!(against["carts_deciding_differently"], 0, "{report:#}");
    assert_eq!(against["live_sent"], 3);
    assert_eq!(rows(&report), [(1, "email".into(), 2, 2), (2, "email".into(), 1, 1)]);
    assert_eq!((report["carts"].as_u64(), report["entering"].as_u64()), (Some(4), Some(2)));
    // Cart C met the cooldown, the guest's cart D had no consent.
    let suppressed: Vec<(u64, &str, u64)> = report["suppressed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_u64().unwrap(), s["code"].as_str().unwrap(), s["carts"].as_u64().unwrap()))
        .collect();
    assert!(suppressed.contains(&(1, "entry_cooldown", 1)), "{suppressed:?}");
    assert_eq!(suppressed.iter().map(|s| s.2).sum::<u64>(), 2, "{suppressed:?}");
}

#[test]
fn given_recorded_live_traffic_when_a_draft_waits_longer_before_its_first_email_then_the_documented_differences_show() {
    // GIVEN the same scenario
    let dir = tempfile::tempdir().unwrap();
    record_scenario(dir.path());

    // WHEN a draft sending its first email 2 hours (not 30 minutes) after the last activity is put beside it
    let report = backtest(dir.path(), &LIVE.replace("id = \"live\"", "id = \"patient\"").replace("\"30m\"", "\"2h\""));

    // THEN bob's cart, bought between 30 minutes and 2 hours, gets nothing
    // (the draft's first differing decision is the purchase stop), and
    // ana's second step falls after the end of the history
    let against = &report["against"];
    assert_eq!(against["replay_mismatches"], 0, "{report:#}");
    assert_eq!(against["carts_deciding_differently"], 2, "{report:#}");
    let differing = against["differing"].as_array().unwrap();
    let cart = |id: &str| differing.iter().find(|c| c["cart_id"] == id).unwrap_or_else(|| panic!("{id}: {report:#}"));
    assert_eq!(cart("cart-b")["draft_sent"], json!([]));
    assert_eq!(cart("cart-b")["live_sent"], json!(["1:email"]));
    assert_eq!(cart("cart-b")["first_difference"][0]["code"], "purchased", "{report:#}");
    assert_eq!(cart("cart-a")["draft_sent"], json!(["1:email"]));
    assert_eq!(cart("cart-a")["live_sent"], json!(["1:email", "2:email"]));
    assert_eq!(rows(&report), [(1, "email".into(), 1, 2), (2, "email".into(), 0, 1)]);
    assert_eq!(report["steps"][0]["difference"], -1);
    // The draft's timelines of the differing carts, explain-style.
    assert_eq!(against["sample"].as_array().unwrap().len(), 2);
    // The estimate applies live's measured step 1 email rate (bob's order
    // after his email: 1 order on 2 messages) to the draft's one step 1
    // email, at the recovered order's value (29.80 EUR)
    let estimate = &report["estimate"];
    assert!(estimate["basis"].as_str().unwrap().starts_with("Estimate from measured rates"), "{report:#}");
    assert_eq!(estimate["rows"][0]["orders_per_message"], 0.5, "{report:#}");
    assert_eq!((estimate["rows"][0]["sent"].as_u64(), estimate["recovered_orders"].as_f64()), (Some(1), Some(0.5)));
    assert_eq!(estimate["recovered_revenue"]["EUR"], "14.90", "{report:#}");
}

#[test]
fn given_an_events_export_when_backtested_then_the_table_and_csv_count_the_sends_and_a_bad_line_is_named() {
    // GIVEN a JSON Lines export: two customers' carts, the history running an hour past them
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = [("a1", "cart-a", "ana"), ("b1", "cart-b", "bob")]
        .iter()
        .map(|(id, cart, customer)| {
            let mut event = add_to_cart(id, cart, Some(customer), &format!("{customer}@example.com"), true);
            event["occurred_at"] = json!("2026-06-10T10:00:00Z");
            event.to_string()
        })
        .collect();
    lines.push(
        json!({"event_id": "z1", "type": "identify", "customer_id": "zoe",
                      "occurred_at": "2026-06-10T11:00:00Z"})
        .to_string(),
    );
    let events = dir.path().join("export.jsonl");
    std::fs::write(&events, lines.join("\n")).unwrap();
    std::fs::write(dir.path().join("draft.toml"), LIVE).unwrap();
    let draft = dir.path().join("draft.toml");
    let args = ["backtest", "--campaign", draft.to_str().unwrap(), "--events", events.to_str().unwrap()];

    // WHEN backtested with a table, then as CSV
    let table = cartback(dir.path(), &args);
    let csv_file = dir.path().join("out.csv");
    let csv = cartback(dir.path(), &[&args[..], &["--csv", csv_file.to_str().unwrap()]].concat());

    // THEN both carts get step 1 by email (step 2 falls after the history's end)
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.contains("carts 2, entering 2 (0 held out)"), "{text}");
    assert!(text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "email", "2", "0", "0", "-", "-"]));
    assert!(text.contains("No estimate"), "{text}");
    assert!(csv.status.success());
    let rows = std::fs::read_to_string(&csv_file).unwrap();
    assert_eq!(rows, "campaign_id,step,channel,sent,held_out,deferred,live_sent,difference\nlive,1,email,2,0,0,-,-\n");

    // AND a line without its event_id is refused by number and field, exit 2
    lines.insert(1, json!({"type": "add_to_cart", "cart_id": "cart-x"}).to_string());
    std::fs::write(&events, lines.join("\n")).unwrap();
    let refused = cartback(dir.path(), &args);
    assert_eq!(refused.status.code(), Some(2));
    let error = stderr(&refused);
    assert!(error.contains("line 2: event_id"), "{error}");
}

#[test]
fn given_a_reminder_deferred_by_quiet_hours_and_a_purchase_in_the_night_when_backtested_then_the_table_shows_it_apart()
{
    // GIVEN an export: ana fills her cart at 20:45 UTC and buys at 23:00; the
    // draft's email, due at 21:15, falls in its quiet hours (21:00-08:00)
    let dir = tempfile::tempdir().unwrap();
    let mut cart = add_to_cart("a1", "cart-a", Some("ana"), "ana@example.com", true);
    cart["occurred_at"] = json!("2026-06-10T20:45:00Z");
    let bought = json!({"event_id": "a2", "type": "purchase", "cart_id": "cart-a", "customer_id": "ana",
                        "occurred_at": "2026-06-10T23:00:00Z", "order_id": "o-1", "value": "29.80", "currency": "EUR"});
    let late =
        json!({"event_id": "z1", "type": "identify", "customer_id": "zoe", "occurred_at": "2026-06-11T12:00:00Z"});
    let events = dir.path().join("export.jsonl");
    std::fs::write(&events, [cart, bought, late].map(|e| e.to_string()).join("\n")).unwrap();
    let draft = dir.path().join("draft.toml");
    std::fs::write(&draft, format!("{LIVE}[quiet_hours]\nchannels = [\"email\"]\n")).unwrap();

    // WHEN backtested
    let out = cartback(
        dir.path(),
        &["backtest", "--campaign", draft.to_str().unwrap(), "--events", events.to_str().unwrap()],
    );

    // THEN nothing is sent, and the table lists step 1 deferred then stopped by the purchase
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let section = text.split("deferred by quiet hours, then stopped (step, reason, carts)").nth(1);
    let first = section.and_then(|s| s.lines().nth(1)).map(|l| l.split_whitespace().collect::<Vec<_>>());
    assert_eq!(first, Some(vec!["1", "purchased", "1"]), "{text}");
}

/// Step 1 by email with 10 % off, step 2 by SMS an hour later; 10 % held
/// out; guests reminded on the address they typed; a one-minute entry
/// cooldown, so a second cart is decided by consent, not the cooldown.
const RICH: &str = "id = \"live\"\nname = \"Live\"\nholdout_percent = 10\n\
    require_explicit_consent_for_guests = false\n\
    [caps]\nentry_cooldown = \"1m\"\n\
    [[steps]]\ndelay = \"30m\"\ndelay_from = \"last_activity\"\n\
    [steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n\
    [steps.offer.standard]\npercent_off = \"10\"\n[steps.offer.recovery]\npercent_off = \"10\"\n\
    [[steps]]\ndelay = \"1h\"\n\
    [steps.channels]\nmobile = [\"sms\"]\ndesktop = [\"sms\"]\n";

/// The first id `prefix0`, `prefix1`, ... that the live campaign's 10 %
/// holdout puts in `group` (the hash is stable, so the scenario is too).
fn customer_in(prefix: &str, group: cartback_core::measure::Group) -> String {
    use cartback_core::ids::CustomerKey;
    (0..1000)
        .map(|i| format!("{prefix}{i}"))
        .find(|id| {
            cartback_core::measure::assign::assign_group("live", 10, &CustomerKey::Customer(id.as_str().into()))
                == group
        })
        .expect("a customer in the group")
}

/// A fixed-offset zone (`Etc/GMT...`) where `at` is between `hour`:00 and
/// `hour`:59 local time.
fn zone_at_hour(at: chrono::DateTime<chrono::Utc>, hour: i64) -> String {
    use chrono::Timelike;
    let mut offset = (hour - i64::from(at.hour())).rem_euclid(24);
    if offset > 14 {
        offset -= 24;
    }
    // The Etc zones name the offset with the opposite sign.
    match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// The outbox email to `to`.
fn email_to(dev: &Dev, to: &str) -> String {
    let mails = dev.emails();
    let found = mails.into_iter().find(|(_, text)| text.contains(&format!("To: {to}")));
    found.unwrap_or_else(|| panic!("no email to {to}")).1
}

/// Follows the email's first tracked link as a browser would.
fn click(dev: &Dev, email: &str) {
    let start = email.find(&format!("{}/r/", dev.base)).expect("a tracked link");
    let link: String = email[start..].chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
    let agent =
        ureq::AgentBuilder::new().redirects(0).user_agent("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0").build();
    let response = agent.get(&link).call().expect("the redirect");
    assert_eq!(response.status(), 302);
}

fn decided(cart: &Value, code: &str) -> bool {
    timeline_codes(cart).iter().any(|c| c == code)
}

fn timeline_codes(cart: &Value) -> Vec<String> {
    dev::timeline(cart).iter().filter_map(|e| e["code"].as_str().map(str::to_owned)).collect()
}

#[test]
fn given_live_traffic_with_clicks_quiet_hours_a_holdout_vouchers_a_withdrawal_and_a_guest_when_backtested_then_it_predicts_every_message(
) {
    use cartback_core::measure::Group;
    // GIVEN live traffic through `cartback dev` of: ana, who clicks step 1's
    // link (step 2 stops); bob, whose SMS step falls at 06:xx his time
    // (deferred by quiet hours until 08:00); cy, held out; dee, who
    // withdraws consent after her first cart and then fills a second; and
    // a guest with two carts (one voucher between them)
    let dir = tempfile::tempdir().unwrap();
    let (ana, bob, cy, dee) = (
        customer_in("ana", Group::Treated),
        customer_in("bob", Group::Treated),
        customer_in("cy", Group::HeldOut),
        customer_in("dee", Group::Treated),
    );
    // A slower clock than the others': the click must land before step 2 is due (12 s later) on a busy machine.
    let launch =
        Launch { speed: "300", data: Some(dir.path()), campaigns: &[RICH], rust_log: "warn", ..Launch::default() };
    let mut dev = Dev::start(launch);
    let started = dev.now();
    let mut a = add_to_cart("a1", "cart-a", Some(&ana), "ana@example.com", true);
    a["customer"]["phone"] = json!("+14155550101");
    a["customer"]["consents"]["sms"] = json!(true);
    a["customer"]["timezone"] = json!(zone_at_hour(started + chrono::Duration::minutes(90), 12));
    let mut b = add_to_cart("b1", "cart-b", Some(&bob), "bob@example.com", true);
    b["customer"]["phone"] = json!("+14155550102");
    b["customer"]["consents"]["sms"] = json!(true);
    b["customer"]["timezone"] = json!(zone_at_hour(started + chrono::Duration::minutes(90), 6));
    let guest_cart = |event_id: &str, cart_id: &str| add_to_cart(event_id, cart_id, None, "gil@example.com", true);
    for event in [
        a,
        b,
        add_to_cart("c1", "cart-c", Some(&cy), "cy@example.com", true),
        add_to_cart("d1", "cart-d", Some(&dee), "dee@example.com", true),
        guest_cart("g1", "cart-g1"),
    ] {
        post(&dev, event);
    }
    wait_for_sent(&dev, "cart-a", 1);
    // Later than a link scanner (10 virtual seconds after the send): a person's click.
    std::thread::sleep(Duration::from_millis(500));
    click(&dev, &email_to(&dev, "ana@example.com"));
    let clicked = dev.wait_for("cart-a", "a person's click", |cart| {
        dev::timeline(cart).iter().any(|e| e["kind"] == "engagement" && e["code"] == "click")
    });
    assert_eq!(count(&clicked, "message", "sent"), 1, "the click came after step 2 was due: {clicked:#}");
    wait_for_sent(&dev, "cart-d", 1);
    post(
        &dev,
        json!({"event_id": "d2", "type": "identify", "customer_id": dee,
               "customer": {"consents": {"email": false, "sms": false}}}),
    );
    post(&dev, add_to_cart("e1", "cart-e", Some(&dee), "dee@example.com", false));
    wait_for_sent(&dev, "cart-g1", 1);
    post(&dev, guest_cart("g2", "cart-g2"));
    wait_for_sent(&dev, "cart-g2", 1);
    dev.wait_for("cart-e", "no consent", |cart| decided(cart, "no_consent"));
    dev.wait_for("cart-a", "the click's stop", |cart| decided(cart, "engaged"));
    let bob_cart = dev.wait_for("cart-b", "the SMS", |cart| count(cart, "message", "sent") >= 2);
    assert!(decided(&bob_cart, "quiet_hours_deferred"), "{bob_cart:#}");
    // An event at the end: the history (and so the replay) reaches this far.
    post(
        &dev,
        json!({"event_id": "z1", "type": "identify", "customer_id": "zoe", "customer": {"email": "zoe@example.com"}}),
    );
    let sms = std::fs::read_to_string(dir.path().join("outbox").join("sms.jsonl")).unwrap_or_default();
    let emails = dev.emails().len();
    dev.stop();
    assert_eq!((emails, sms.lines().count()), (5, 1), "a, b, d, g1, g2 by email; bob by SMS");

    // WHEN the live campaign's own file is backtested against it
    let report = backtest(dir.path(), RICH);

    // THEN it predicts exactly the messages sent: same carts, steps and channels
    let against = &report["against"];
    assert_eq!(against["replay_mismatches"], 0, "{report:#}");
    assert_eq!(against["carts_deciding_differently"], 0, "{report:#}");
    assert_eq!(against["live_sent"], 6, "{report:#}");
    assert_eq!(rows(&report), [(1, "email".into(), 5, 5), (2, "sms".into(), 1, 1)], "{report:#}");
    // bob's SMS deferred, cy held out, one voucher per owner
    assert_eq!(report["steps"][1]["deferred"], 1, "{report:#}");
    assert_eq!((report["entering"].as_u64(), report["held_out"].as_u64()), (Some(6), Some(1)), "{report:#}");
    assert_eq!(report["vouchers"]["issued"], 4, "ana, bob, dee and the guest once: {report:#}");
    let suppressed = report["suppressed"].as_array().unwrap();
    let carts_for =
        |code: &str| suppressed.iter().filter(|s| s["code"] == code).map(|s| s["carts"].as_u64().unwrap()).sum::<u64>();
    assert_eq!(carts_for("no_consent"), 1, "dee's second cart: {report:#}");
    assert_eq!(carts_for("engaged"), 1, "ana's step 2: {report:#}");
}
