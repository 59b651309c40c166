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
    assert!(report["estimate"]["basis"].as_str().unwrap().starts_with("No estimate"), "{report:#}");
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
