//! The evaluation dashboard as a marketer sees it: starts the real `cartback dev` with a fast virtual clock,
//! feeds a shop's carts (some bought after a reminder), prints a link with `cartback dashboard`, opens it in
//! headless Chromium driven by chromedriver over the W3C WebDriver protocol (plain JSON over HTTP), picks
//! the campaign, the period and the attribution window, presses Refresh, and checks that every number the
//! page shows equals `GET /v1/report`'s JSON for the same query. It saves a screenshot to
//! `target/dashboard.png` (the README links the copy in docs/).
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/test.sh installs them). Missing, the browser test
//! is skipped with a message on a developer's machine, and fails under CI (`CI` or
//! `CARTBACK_REQUIRE_BROWSER` set), so a green CI run always ran it.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/dev.rs"]
mod dev;

use std::ops::Deref;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use browser::Browser;
use dev::{Launch, SECRET};

/// The shipped campaign's first step, holding out half the shop and drawing a verdict from 5 carts per arm,
/// so a small scenario shows every part of the page.
const MEASURED_CAMPAIGN: &str = r#"
id = "default"
name = "Abandoned cart, half held out"
holdout_percent = 50
min_sample_per_arm = 5

[[steps]]
delay = "30m"
delay_from = "last_activity"
channels = { mobile = ["email"], desktop = ["email"] }
template = "reminder"
"#;

/// `cartback dev` at 600x (30 virtual minutes pass in 3 real seconds).
struct Dev(dev::Dev);

impl Deref for Dev {
    type Target = dev::Dev;
    fn deref(&self) -> &dev::Dev {
        &self.0
    }
}

impl Dev {
    fn start() -> Dev {
        Dev(dev::Dev::start(Launch::default()))
    }

    /// `cartback dev` over a data directory where `cartback campaign apply` stored `campaign` first.
    fn start_with_campaign(campaign: &str) -> Dev {
        Dev(dev::Dev::start(Launch { campaigns: &[campaign], ..Launch::default() }))
    }

    fn post(&self, events: Value) {
        let (status, answer) = self.post_events(&json!({ "events": events }));
        assert_eq!((status, &answer["rejected"]), (200, &json!(0)), "{answer}");
    }

    fn today(&self) -> chrono::NaiveDate {
        self.now().date_naive()
    }

    /// `cartback dashboard` for this server, with extra arguments.
    fn dashboard_link(&self, extra: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_cartback"))
            .args(["dashboard", "--url", &self.base, "--data"])
            .arg(&self.data)
            .args(extra)
            .env("CARTBACK_INGEST_SECRET", SECRET)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let link = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        assert!(link.starts_with(&format!("{}/dashboard?token=", self.base)), "{link}");
        link
    }
}

fn has_decision(cart: &Value, codes: &[&str]) -> bool {
    cart["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["kind"] == "decision" && codes.iter().any(|code| e["code"] == *code))
}

fn add_to_cart(n: usize) -> Value {
    json!({
        "event_id": format!("add-{n}"), "type": "add_to_cart", "cart_id": format!("cart-{n}"), "device": "desktop",
        "currency": "EUR",
        "customer": {"customer_id": format!("customer-{n}"), "email": format!("shopper{n}@example.com"),
                     "consents": {"email": true}},
        "items": [{"item_id": "sku-mug", "item_name": "Stoneware mug", "price": "14.90", "quantity": 2,
                   "url": "https://shop.example.com/p/mug"}]
    })
}

/// A page answer over plain HTTP: status and body.
fn get_page(url: &str) -> (u16, String) {
    match ureq::get(url).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{url}: {e}"),
    }
}

/// GIVEN a running `cartback dev` WHEN the dashboard is opened without a link, with a forged one, with an
/// expired one, and with a good one THEN the first three answer 401 with a sentence saying how to get a link
/// (the expired one says it expired), and the good one opens the page, which loads nothing from elsewhere.
#[test]
fn given_no_forged_or_expired_links_when_the_dashboard_is_opened_then_401_says_how_to_get_one() {
    let dev = Dev::start();
    let (status, page) = get_page(&format!("{}/dashboard", dev.base));
    assert_eq!(status, 401);
    assert!(page.contains("needs a dashboard link") && page.contains("cartback dashboard"), "{page}");

    let link = dev.dashboard_link(&[]);
    let forged = format!("{}0", link);
    let (status, page) = get_page(&forged);
    assert_eq!(status, 401);
    assert!(page.contains("not valid"), "{page}");

    let short = dev.dashboard_link(&["--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    let (status, page) = get_page(&short);
    assert_eq!(status, 401);
    assert!(page.contains("has expired") && page.contains("cartback dashboard"), "{page}");

    let response = ureq::get(&link).call().unwrap();
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert!(response.header("content-security-policy").unwrap().contains("default-src 'none'"));
    let page = response.into_string().unwrap();
    assert!(page.contains(r#"id="refresh""#), "{page}");
    assert!(!page.contains("<script") && !page.contains("src=\"http"), "the page works offline: {page}");
    let (status, page) = get_page(&format!("{link}&attribution_window_hours=0"));
    assert_eq!(status, 400);
    assert!(page.contains("attribution_window_hours: must be 1 to 720 hours"), "{page}");
}

/// Where cargo puts this build's artefacts: the test binary sits in `<target>/debug/deps/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_owned()
}

/// The numbers shown in `text` (a minus sign or a plus sign kept).
fn numbers_in(text: &str) -> Vec<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .filter_map(|t| t.trim_start_matches('+').parse().ok())
        .collect()
}

/// Checks that a shown text reads `value` in `unit` (the page's `data-unit`), to its display precision.
fn assert_reads(field: &str, unit: &str, value: &Value, text: &str) {
    let scalars: Vec<&Value> = match value {
        Value::Array(ends) => ends.iter().collect(),
        v => vec![v],
    };
    if scalars.iter().any(|v| v.is_null()) {
        assert_eq!(text, "n/a", "{field}");
        return;
    }
    match unit {
        "count" => assert_eq!(text, value.to_string(), "{field}"),
        "money" => assert_eq!(text, value.as_str().unwrap(), "{field}"),
        "text" => assert_eq!(text, value.as_str().unwrap(), "{field}"),
        "label" => assert_eq!(text, value.as_str().unwrap().replace('_', " "), "{field}"),
        "percent" | "points" | "number" => {
            let scale = if unit == "number" { 1.0 } else { 100.0 };
            let shown = numbers_in(text);
            assert_eq!(shown.len(), scalars.len(), "{field}: {text:?} against {value}");
            for (shown, value) in shown.iter().zip(&scalars) {
                let expected = value.as_f64().unwrap() * scale;
                assert!((shown - expected).abs() <= 0.05 + 1e-9, "{field}: shown {text:?}, the API says {value}");
            }
        }
        other => panic!("{field}: unknown unit {other}"),
    }
}

/// Equal JSON, numbers to 12 significant digits (the page writes the shortest round-trip form).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// The value at a dotted path (`by_channel.email.sent`, `variants.0.lift`).
fn at<'a>(root: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .try_fold(root, |v, key| match v {
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => v.get(key),
        })
        .unwrap_or(&Value::Null)
}

/// GIVEN a shop holding out half its customers, whose 60 carts were abandoned, two in three reminded shoppers
/// and one in four held-out shoppers buying after the reminder fell due
/// WHEN a marketer opens the printed link in Chromium, picks the default campaign, a three-day period and a
/// 48-hour attribution window, and presses Refresh
/// THEN every number the page shows equals `GET /v1/report`'s JSON for the same query (value and shown text),
/// carts of both groups entered the campaign, and the screenshot is saved.
#[test]
fn given_a_shop_with_recovered_carts_when_the_dashboard_is_refreshed_in_chromium_then_it_shows_the_report_api_numbers()
{
    let browser = match Browser::start("1280,800") {
        Ok(browser) => browser,
        Err(why) if std::env::var_os("CI").is_none() && std::env::var_os("CARTBACK_REQUIRE_BROWSER").is_none() => {
            eprintln!("SKIPPED: {why}; install Debian's chromium and chromium-driver (scripts/test.sh does)");
            return;
        }
        Err(why) => panic!("{why}: the dashboard's browser test must run here (CI); scripts/test.sh installs them"),
    };
    let dev = Dev::start_with_campaign(MEASURED_CAMPAIGN);
    let carts = 60;
    dev.post((0..carts).map(add_to_cart).collect());
    // Every cart's first step falls due: sent to the treated, recorded as would-have-sent for the held out.
    let mut held_out = Vec::new();
    for n in 0..carts {
        let cart = dev.wait_for(&format!("cart-{n}"), "its first step", |c| has_decision(c, &["sent", "held_out"]));
        held_out.push(has_decision(&cart, &["held_out"]));
    }
    // Two in three reminded shoppers buy, one in four of the others: a shop where reminders pay.
    let buys = |n: usize| if held_out[n] { n.is_multiple_of(4) } else { !n.is_multiple_of(3) };
    let buyers: Vec<usize> = (0..carts).filter(|n| buys(*n)).collect();
    let purchases: Vec<Value> = buyers
        .iter()
        .map(|n| {
            json!({"event_id": format!("buy-{n}"), "type": "purchase", "cart_id": format!("cart-{n}"),
                   "order_id": format!("order-{n}"), "currency": "EUR", "value": "29.80"})
        })
        .collect();
    dev.post(Value::Array(purchases));
    for n in &buyers {
        dev.wait_for(&format!("cart-{n}"), "converted", |cart| cart["status"] == "converted");
    }

    let today = dev.today();
    let (from, to) = (today - chrono::Duration::days(1), today + chrono::Duration::days(1));
    browser.open(&dev.dashboard_link(&[]));
    browser.click(r#"#campaign option[value="default"]"#);
    // Date inputs take keys in the browser's locale; setting the value is what a picker does.
    browser.script(
        "document.getElementById('from').value = arguments[0]; document.getElementById('to').value = arguments[1];",
        json!([from.to_string(), to.to_string()]),
    );
    browser.type_into("#attribution_window_hours", "48");
    browser.click("#refresh");
    let start = Instant::now();
    while browser.script("return document.location.search.includes('campaign=default')", json!([])) != json!(true) {
        assert!(start.elapsed() < Duration::from_secs(30), "Refresh never loaded the chosen query");
        std::thread::sleep(Duration::from_millis(100));
    }

    let query = format!("/v1/report?campaign=default&from={from}&to={to}&attribution_window_hours=48");
    let (status, report) = dev.call("GET", &query, b"");
    assert_eq!(status, 200, "{report}");
    let entry = report["campaigns"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["campaign_id"] == "default"))
        .unwrap_or_else(|| panic!("the report has no entry for the default campaign: {report:#}"));

    let shown = browser.script(
        "return Array.from(document.querySelectorAll('[data-field]')).map(e => \
         [e.dataset.field, e.dataset.unit, e.dataset.value, e.innerText.trim()]);",
        json!([]),
    );
    let shown = shown.as_array().unwrap();
    assert!(shown.len() >= 30, "the page shows {} numbers", shown.len());
    for item in shown {
        let (field, unit, value, text) = (
            item[0].as_str().unwrap(),
            item[1].as_str().unwrap(),
            item[2].as_str().unwrap(),
            item[3].as_str().unwrap(),
        );
        let api = at(entry, field);
        let value: Value = serde_json::from_str(value).unwrap();
        assert!(same(api, &value), "{field}: the page says {value}, the API {api}");
        if !matches!(api, Value::Object(_)) {
            assert_reads(field, unit, api, text);
        }
    }
    let fields: Vec<&str> = shown.iter().filter_map(|item| item[0].as_str()).collect();
    for headline in ["entered", "treated", "held_out", "lift", "lift_ci95", "recovery_rate_treated", "verdict"] {
        assert!(fields.contains(&headline), "{headline} is not shown");
    }
    let header = browser.script("return document.getElementById('report').dataset.window", json!([]));
    assert_eq!(header, json!("48"), "the page shows the chosen window");

    // The screenshot holds the whole page and no more.
    let height = browser.script("return Math.ceil(document.body.scrollHeight)", json!([])).as_u64().unwrap();
    browser.command("POST", "/window/rect", json!({"width": 1280, "height": height + 200}));
    let screenshot = target_dir().join("dashboard.png");
    browser.screenshot(&screenshot);
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000, "{}", screenshot.display());
    eprintln!("screenshot: {}", screenshot.display());

    // Until the engine records entered facts (branch i10-engine) the report counts nothing; the comparison
    // above holds either way, and this is what makes the scenario meaningful.
    assert!(entry["entered"].as_u64().unwrap() > 0, "no cart entered the campaign: {entry:#}");
    assert!(entry["held_out"].as_u64().unwrap() > 0, "nobody was held out: {entry:#}");
}
