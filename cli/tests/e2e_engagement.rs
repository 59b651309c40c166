//! End to end on `cartback dev`: the seed's "after 1 hour, if the push was
//! not opened" follow-up. A mobile push goes out; the shop's app reports it
//! opened through the signed `POST /v1/engagement`, and the follow-up is not
//! sent, with its reason on the cart's timeline; a push nobody opened gets
//! its follow-up. Every answer is checked against the served OpenAPI
//! document.

#[path = "support/dev.rs"]
mod dev;

use dev::{count, timeline, Dev, Launch};
use serde_json::{json, Value};

/// Step 1: a push 30 minutes after the last cart activity; step 2: an email
/// an hour after the push, only if it was not opened.
const PUSH_THEN_EMAIL: &str = "id = \"push-then-email\"\nname = \"Push, then email\"\nholdout_percent = 0\n\
     [[steps]]\ndelay = \"30m\"\ndelay_from = \"last_activity\"\n\
     [steps.channels]\nmobile = [\"push\"]\ndesktop = [\"push\"]\n\
     [[steps]]\ndelay = \"1h\"\n\
     [steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n";

fn add_to_cart(cart_id: &str, name: &str) -> Value {
    json!({
        "event_id": format!("{cart_id}-add"), "type": "add_to_cart", "cart_id": cart_id, "device": "mobile",
        "currency": "EUR",
        "customer": {"email": format!("{name}@example.com"), "first_name": "Ana",
                     "push_tokens": [{"platform": "fcm", "token": format!("fcm-token-{name}-0123456789")}],
                     "consents": {"email": true, "push": true}},
        "items": [{"item_id": "sku-mug", "item_name": "Stoneware mug", "price": "14.90", "quantity": 2}]
    })
}

/// The outbox's push line for the cart's first message: its message id and deep link.
fn pushed(dev: &Dev, cart: &Value) -> (String, String) {
    let sent = timeline(cart).into_iter().find(|e| e["kind"] == "message" && e["code"] == "sent").expect("a send");
    let id = sent["details"]["message_id"].as_str().expect("message id").to_owned();
    let outbox = std::fs::read_to_string(dev.data.join("outbox").join("push.jsonl")).expect("push outbox");
    let line: Value = outbox
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .find(|l| l["message_id"] == id.as_str())
        .expect("the push's line");
    (id, line["url"].as_str().expect("deep link").to_owned())
}

fn report_engagement(dev: &Dev, body: &Value) -> (u16, Value) {
    dev.call("POST", "/v1/engagement", &serde_json::to_vec(body).unwrap())
}

#[test]
fn given_a_push_opened_in_the_app_when_the_follow_up_is_due_then_it_is_not_sent_and_one_never_opened_gets_it() {
    // GIVEN a push, then an email an hour later, and two mobile shoppers
    let dev = Dev::start(Launch { campaigns: &[PUSH_THEN_EMAIL], rust_log: "warn", ..Launch::default() });
    for (cart, name) in [("cart-opened", "olga"), ("cart-ignored", "ivan")] {
        let (status, answer) = dev.post_events(&add_to_cart(cart, name));
        assert_eq!((status, &answer["accepted"]), (200, &json!(1)), "{answer}");
    }
    let sent = |c: &Value| count(c, "message", "sent");
    let opened_cart = dev.wait_for("cart-opened", "the push", |c| sent(c) >= 1);
    dev.wait_for("cart-ignored", "the push", |c| sent(c) >= 1);
    // The push carries its message id and the restore link for the app.
    let (message_id, url) = pushed(&dev, &opened_cart);
    assert!(url.starts_with(&format!("{}/r/", dev.base)), "the deep link is the tracked restore link: {url}");

    // WHEN the app reports the push opened (twice: a retry) before the follow-up is due
    let (status, answer) = report_engagement(&dev, &json!({"message_id": message_id, "kind": "opened"}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"message_id": message_id, "recorded": true, "label": "open"}));
    let (status, repeat) = report_engagement(&dev, &json!({"message_id": message_id, "kind": "opened"}));
    assert_eq!((status, &repeat["recorded"]), (200, &json!(false)), "a repeat changes nothing: {repeat}");

    // THEN the opened push's follow-up stops with its reason; the other is sent
    let stopped = dev.wait_for("cart-opened", "the stop", |c| {
        timeline(c).iter().any(|e| e["kind"] == "decision" && e["code"] == "engaged")
    });
    let why = timeline(&stopped).into_iter().find(|e| e["code"] == "engaged").unwrap();
    assert!(why["message"].as_str().unwrap().contains("the push was opened"), "{why:#}");
    let opened: Vec<Value> = timeline(&stopped).into_iter().filter(|e| e["kind"] == "engagement").collect();
    assert_eq!(opened.len(), 1, "one line, the repeat only counted: {stopped:#}");
    assert_eq!((&opened[0]["code"], &opened[0]["details"]["reason"]), (&json!("open"), &json!("reported_by_app")));
    let ignored = dev.wait_for("cart-ignored", "the follow-up email", |c| sent(c) == 2);
    assert!(!timeline(&ignored).iter().any(|e| e["code"] == "engaged"), "{ignored:#}");
    assert_eq!(sent(&dev.cart("cart-opened").1), 1, "no follow-up after the open");
    assert_eq!(dev.emails().len(), 1, "only ivan's follow-up email");

    // and the report counts the open on the push channel
    let (status, report) = dev.call("GET", "/v1/report?campaign=push-then-email", b"");
    assert_eq!(status, 200, "{report}");
    let push = &report["campaigns"][0]["by_channel"]["push"];
    assert_eq!((&push["sent"], &push["opened_human"]), (&json!(2), &json!(1)), "{report:#}");
}

#[test]
fn given_bad_or_unknown_engagement_reports_when_posted_then_each_is_refused_naming_the_field() {
    // GIVEN a running server with no messages
    let dev = Dev::start(Launch { rust_log: "warn", ..Launch::default() });
    // WHEN reports name no message, a bad kind, or a bad time
    let (status, unknown) = report_engagement(&dev, &json!({"message_id": "msg-nope", "kind": "clicked"}));
    let (bad_kind, kind) = report_engagement(&dev, &json!({"message_id": "msg-nope", "kind": "seen"}));
    let (bad_at, at) = report_engagement(&dev, &json!({"message_id": "msg-nope", "kind": "opened", "at": "soon"}));
    // THEN 404 names the message, 400 the field
    assert_eq!(status, 404, "{unknown}");
    assert!(unknown["error"]["message"].as_str().unwrap().contains("msg-nope"), "{unknown}");
    assert_eq!(bad_kind, 400, "{kind}");
    assert!(kind["error"]["message"].as_str().unwrap().starts_with("kind: "), "{kind}");
    assert_eq!(bad_at, 400, "{at}");
    assert!(at["error"]["message"].as_str().unwrap().starts_with("at: "), "{at}");
    // and an unsigned report is refused before anything is read
    let unsigned = ureq::post(&format!("{}/v1/engagement", dev.base)).send_string("{}");
    let (status, _) = dev::checked("POST", "/v1/engagement", unsigned);
    assert_eq!(status, 401);
}
