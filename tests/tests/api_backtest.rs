//! `/dashboard/backtest` over the HTTP application `cartback dev` serves (SQLite in memory): with a
//! dashboard link, a pasted or uploaded draft campaign is backtested over the stored history and the
//! report shown; without a link the answer is 401, a bad draft is named.

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::json;

use cartback_core::campaign::Campaign;
use cartback_core::customer::Customer;
use cartback_core::event::validate_event;
use cartback_core::ids::CustomerKey;
use cartback_core::message::{Channel, MessageRecord, MessageStatus};
use cartback_core::ports::{
    CampaignStore, CartRecord, Clock, EventCommit, EventLog, HistoryReader, MessageStore, PortError,
};
use cartback_core::signing::{dashboard_token, Secret};
use cartback_core::voucher::Voucher;
use cartback_tests::local_app::{local_app_with_backtest, local_app_with_backtest_reader};
use cartback_tests::openapi::Observed;

const SECRET: &[u8] = b"backtest-secret-0123456789";

const LIVE: &str = "id = \"live\"\nname = \"Live\"\nholdout_percent = 0\n[[steps]]\ndelay = \"30m\"\n\
                    [steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Cart A (bought at 11:00) and cart B, both reminded by the live campaign at 10:30; a browsing cart C at 13:00.
async fn history(db: &cartback_local::Database) {
    db.put(&Campaign::from_toml(LIVE).unwrap()).await.unwrap();
    let event = |id: &str, kind: &str, cart: &str, customer: &str, time: &str| {
        let mut raw = json!({"event_id": id, "type": kind, "cart_id": cart, "customer_id": customer,
                             "occurred_at": time, "device": "desktop", "currency": "EUR",
                             "customer": {"email": format!("{customer}@example.com"), "consents": {"email": true}},
                             "items": [{"item_id": "sku", "price": "20.00", "quantity": 1}]});
        if kind == "purchase" {
            raw = json!({"event_id": id, "type": kind, "cart_id": cart, "customer_id": customer,
                         "occurred_at": time, "order_id": "o-1", "value": "20.00", "currency": "EUR"});
        }
        validate_event(&raw, at("2026-11-23T10:00:00Z")).unwrap()
    };
    let carts = [
        (
            "cart-a",
            "ana",
            vec![
                event("a1", "add_to_cart", "cart-a", "ana", "2026-11-22T10:00:00Z"),
                event("a2", "purchase", "cart-a", "ana", "2026-11-22T11:00:00Z"),
            ],
        ),
        ("cart-b", "ben", vec![event("b1", "add_to_cart", "cart-b", "ben", "2026-11-22T10:00:00Z")]),
        ("cart-c", "cem", vec![event("c1", "view_item", "cart-c", "cem", "2026-11-22T13:00:00Z")]),
    ];
    for (cart_id, customer_id, events) in carts {
        let mut record = CartRecord::new(cart_id, at("2026-11-22T10:00:00Z"));
        let mut customer = Customer::new(customer_id);
        for e in &events {
            record.insert_event(e.clone());
            customer.apply(e);
        }
        let commit = EventCommit {
            event_id: events[0].event_id.clone(),
            received_at: at("2026-11-22T10:00:00Z"),
            cart: Some(record),
            customer: Some((customer, 0)),
            timeline: None,
        };
        db.commit_event(commit).await.unwrap();
        if cart_id != "cart-c" {
            let message = MessageRecord {
                message_id: MessageRecord::id_for(cart_id, 0, Channel::Email),
                cart_id: cart_id.into(),
                customer_key: CustomerKey::Customer(customer_id.into()),
                campaign_id: "live".into(),
                step: 0,
                channel: Channel::Email,
                decided_at: at("2026-11-22T10:30:00Z"),
                status: MessageStatus::Queued,
                engagement: Default::default(),
                variant: None,
            };
            db.create_message(&message).await.unwrap();
        }
    }
}

fn multipart(fields: &[(&str, &str)]) -> (String, String) {
    let boundary = "XbacktestX";
    let mut body = String::new();
    for (name, value) in fields {
        let filename = if *name == "toml_file" { "; filename=\"draft.toml\"" } else { "" };
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post(app: &Router, fields: &[(&str, &str)]) -> (u16, String) {
    let (content_type, body) = multipart(fields);
    let request = Request::builder()
        .method("POST")
        .uri("/dashboard/backtest")
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let answer = Observed::from_app(app, request).await;
    (answer.status, String::from_utf8(answer.body).unwrap())
}

/// The number shown in the element with `data-field="name"`.
fn shown(html: &str, name: &str) -> u64 {
    let start = html.find(&format!("data-field=\"{name}\">")).unwrap_or_else(|| panic!("{name} in {html}"));
    let rest = &html[start..];
    let value = &rest[rest.find('>').unwrap() + 1..rest.find('<').unwrap()];
    value.parse().unwrap_or_else(|_| panic!("{name}: {value:?}"))
}

/// GIVEN two carts the live campaign reminded after 30 minutes, one bought after an hour
/// WHEN a draft waiting 2 hours is pasted (then uploaded) on the backtest page with a dashboard link
/// THEN the report shows 3 carts, 1 entering, 1 email against live's 2, and the bought cart deciding differently
#[tokio::test]
async fn given_stored_history_when_a_draft_is_pasted_or_uploaded_then_the_backtest_report_is_shown() {
    let (app, clock, db) = local_app_with_backtest(SECRET);
    history(&db).await;
    let token = dashboard_token(&Secret::new(SECRET.to_vec()).unwrap(), clock.now().timestamp() + 3600);
    let draft = LIVE.replace("\"live\"", "\"patient\"").replace("\"30m\"", "\"2h\"");

    let form = Observed::from_app(
        &app,
        Request::builder().uri(format!("/dashboard/backtest?token={token}")).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(form.status, 200);
    assert!(String::from_utf8(form.body).unwrap().contains("enctype=\"multipart/form-data\""));

    for field in ["toml", "toml_file"] {
        let (status, html) = post(&app, &[("token", &token), (field, &draft), ("against", "live")]).await;
        assert_eq!(status, 200, "{html}");
        assert_eq!((shown(&html, "carts"), shown(&html, "entering")), (3, 1), "{field}");
        assert_eq!((shown(&html, "steps.0.sent"), shown(&html, "steps.0.live_sent")), (1, 2));
        assert_eq!(shown(&html, "against.carts_deciding_differently"), 1);
        assert!(html.contains("<td>cart-a</td>") && html.contains("draft purchased"), "{html}");
        assert!(html.contains("No estimate"), "{html}");
    }
}

#[tokio::test]
async fn given_no_link_or_a_bad_draft_when_posted_then_401_or_the_field_is_named() {
    let (app, clock, db) = local_app_with_backtest(SECRET);
    history(&db).await;
    let (status, _) = post(&app, &[("toml", LIVE)]).await;
    assert_eq!(status, 401);
    let forged =
        dashboard_token(&Secret::new(b"another-secret-0123456789".to_vec()).unwrap(), clock.now().timestamp() + 60);
    assert_eq!(post(&app, &[("token", &forged), ("toml", LIVE)]).await.0, 401);

    let token = dashboard_token(&Secret::new(SECRET.to_vec()).unwrap(), clock.now().timestamp() + 3600);
    let (status, html) = post(&app, &[("token", &token), ("toml", "id = \"x\"\n[[steps]]\ndelay = \"soon\"\n")]).await;
    assert_eq!(status, 400);
    assert!(html.contains("id=\"form-error\">campaign: "), "{html}");
    let (status, html) = post(&app, &[("token", &token), ("toml", LIVE), ("against", "nope")]).await;
    assert_eq!(status, 400);
    assert!(html.contains("against: no live campaign"), "{html}");
    let (status, html) = post(&app, &[("token", &token), ("toml", LIVE), ("from", "yesterday")]).await;
    assert_eq!(status, 400);
    assert!(html.contains("from: &quot;yesterday&quot; is not a date"), "{html}");
}

/// Holds every history read until released, and says when one started.
struct Gated {
    db: cartback_local::Database,
    started: std::sync::Arc<tokio::sync::Notify>,
    open: std::sync::Arc<tokio::sync::Semaphore>,
}

#[async_trait::async_trait]
impl HistoryReader for Gated {
    async fn scan_carts(&self, visit: &mut (dyn FnMut(CartRecord) + Send)) -> Result<u64, PortError> {
        self.started.notify_one();
        let _open = self.open.acquire().await.unwrap();
        self.db.scan_carts(visit).await
    }
    async fn scan_customers(&self, visit: &mut (dyn FnMut(Customer) + Send)) -> Result<u64, PortError> {
        self.db.scan_customers(visit).await
    }
    async fn scan_messages(&self, visit: &mut (dyn FnMut(MessageRecord) + Send)) -> Result<u64, PortError> {
        self.db.scan_messages(visit).await
    }
    async fn scan_vouchers(&self, visit: &mut (dyn FnMut(Voucher) + Send)) -> Result<u64, PortError> {
        self.db.scan_vouchers(visit).await
    }
}

/// GIVEN a backtest in progress on the dashboard (its history read held open)
/// WHEN a second draft is posted
/// THEN it is answered 503 with Retry-After and a sentence saying one runs at a time, while the first
///      completes with its report; once it is over the next backtest runs
#[tokio::test]
async fn given_a_backtest_running_when_another_is_posted_then_503_with_retry_after_and_the_first_completes() {
    let started = std::sync::Arc::new(tokio::sync::Notify::new());
    let open = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let (gate_started, gate_open) = (started.clone(), open.clone());
    let (app, clock, db) = local_app_with_backtest_reader(SECRET, move |db| {
        std::sync::Arc::new(Gated { db, started: gate_started, open: gate_open })
    });
    history(&db).await;
    let token = dashboard_token(&Secret::new(SECRET.to_vec()).unwrap(), clock.now().timestamp() + 3600);
    let request = |token: &str| {
        let (content_type, body) = multipart(&[("token", token), ("toml", LIVE), ("against", "live")]);
        Request::builder()
            .method("POST")
            .uri("/dashboard/backtest")
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let first = tokio::spawn({
        let (app, request) = (app.clone(), request(&token));
        async move { Observed::from_app(&app, request).await }
    });
    started.notified().await;

    // WHEN a second backtest is posted meanwhile
    // (bounded: without the limit it would wait behind the first for ever)
    let waited = tokio::time::timeout(std::time::Duration::from_secs(10), Observed::from_app(&app, request(&token)));
    let second = waited.await.expect("the second backtest is answered at once, not queued");

    // THEN it is turned away, told when to come back
    assert_eq!(second.status, 503);
    let retry = second.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("retry-after")).map(|(_, v)| v.as_str());
    assert_eq!(retry, Some("30"));
    assert!(String::from_utf8(second.body).unwrap().contains("they run one at a time"));
    // and the first completes
    open.add_permits(2);
    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));
    assert_eq!(shown(&String::from_utf8(first.body).unwrap(), "carts"), 3);
    let third = Observed::from_app(&app, request(&token)).await;
    assert_eq!(third.status, 200);
}
