//! End to end on `cartback dev`: the webhook channel. A campaign step by
//! `webhook` to target `crm`, configured by environment variables; a real
//! HTTP receiver on loopback; every request it gets is checked with the
//! Standard Webhooks specification's own Python library (`standardwebhooks`
//! from PyPI), not with Cartback's code.

#[path = "support/dev.rs"]
mod dev;

use cartback_tests::webhook_endpoint::{
    header, scripted_endpoint, verified_attempts, verify_with_standardwebhooks, CRM_CAMPAIGN, TARGET_SECRET as SECRET,
};
use dev::{count, timeline, Launch};
use serde_json::{json, Value};

fn start(url: &str, fields: &str) -> dev::Dev {
    let env = [
        ("CARTBACK_WEBHOOK_TARGET_CRM_URL", url),
        ("CARTBACK_WEBHOOK_TARGET_CRM_SECRET", SECRET),
        ("CARTBACK_WEBHOOK_TARGET_CRM_FIELDS", fields),
    ];
    dev::Dev::start(Launch { speed: "2000", campaigns: &[CRM_CAMPAIGN], env: &env, ..Launch::default() })
}

fn abandon(dev: &dev::Dev, cart_id: &str) {
    let event = json!({
        "event_id": format!("atc-{cart_id}"), "type": "add_to_cart", "cart_id": cart_id, "customer_id": "cus-7",
        "device": "desktop", "currency": "EUR",
        "customer": {"email": "ana@example.com", "phone": "+33612345678", "first_name": "Ana", "consents": {"email": false}},
        "items": [{"item_id": "sku-mug", "item_name": "Stoneware mug", "price": "30.00", "quantity": 2}]
    });
    let (status, answer) = dev.post_events(&event);
    assert_eq!((status, &answer["accepted"]), (200, &json!(1)), "{answer}");
}

/// GIVEN target `crm` allowed the email, whose receiver first answers 429 with `Retry-After: 1`
/// WHEN a customer who gave no email consent abandons a cart on desktop
/// THEN the receiver gets the reminder again with the same webhook id, `standardwebhooks` verifies both,
///      the payload carries the cart and only the email, and the outbox keeps the copy.
#[test]
fn given_a_throttling_crm_when_a_cart_is_abandoned_then_the_signed_reminder_arrives_after_its_retry() {
    let (url, received) = scripted_endpoint(vec!["429 Too Many Requests\r\nRetry-After: 1"]);
    let dev = start(&url, "email");
    abandon(&dev, "cart-wh");

    let cart = dev.wait_for("cart-wh", "a sent webhook", |c| count(c, "message", "sent") == 1);

    let requests = received.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "the 429 and the retry");
    let payload = verified_attempts(SECRET, &requests);
    assert_eq!(payload["type"], "cart.abandoned_reminder");
    let data = &payload["data"];
    assert_eq!(data["message_id"], header(&requests[1], "webhook-id").as_str());
    assert_eq!((&data["cart_id"], &data["customer_id"]), (&json!("cart-wh"), &json!("cus-7")));
    assert_eq!((&data["campaign_id"], &data["step"]), (&json!("crm"), &json!(1)));
    assert_eq!(data["items"][0]["item_name"], "Stoneware mug");
    assert_eq!(
        (&data["subtotal"], &data["currency"], &data["item_count"]),
        (&json!("60.00"), &json!("EUR"), &json!(2))
    );
    assert!(data["restore_url"].as_str().unwrap().starts_with(&format!("{}/r/", dev.base)), "{data}");
    assert_eq!(data["contact"], json!({"email": "ana@example.com"}), "only the allowed field");
    // The timeline explains the retry, then the send.
    let codes: Vec<Value> =
        timeline(&cart).into_iter().filter(|e| e["kind"] == "message").map(|e| e["code"].clone()).collect();
    assert_eq!(codes, [json!("retrying"), json!("sent")], "{cart:#}");
    let retry = timeline(&cart).into_iter().find(|e| e["code"] == "retrying").unwrap();
    assert!(retry["message"].as_str().unwrap().contains("HTTP 429"), "{retry}");
    // The outbox's readable copy is what the target saw.
    let copy = std::fs::read_to_string(dev.data.join("outbox/webhook.jsonl")).unwrap();
    let line: Value = serde_json::from_str(copy.lines().next().unwrap()).unwrap();
    assert_eq!((&line["target"], &line["data"]["cart_id"]), (&json!("crm"), &json!("cart-wh")));
    assert_eq!(line["contact"], json!({"email": "ana@example.com"}));
    assert!(!dev.log_text().contains("ana@example.com"), "no address in the log");
}

/// GIVEN a receiver that refuses the request (HTTP 400) and a target allowed no contact field
/// WHEN the step goes out
/// THEN the message is rejected for good after one attempt, with the status on the cart's timeline.
#[test]
fn given_a_crm_refusing_with_400_when_the_step_goes_out_then_it_is_rejected_for_good_and_the_timeline_says_why() {
    let (url, received) = scripted_endpoint(vec!["400 Bad Request"]);
    let dev = start(&url, "");
    abandon(&dev, "cart-400");

    let cart = dev.wait_for("cart-400", "a rejected webhook", |c| count(c, "message", "rejected") == 1);

    let requests = received.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "never retried");
    let payload = verify_with_standardwebhooks(SECRET, &requests[0]).expect("verified");
    assert_eq!(payload["data"]["contact"], json!({}), "no contact field by default");
    let rejected = timeline(&cart).into_iter().find(|e| e["code"] == "rejected").unwrap();
    assert!(rejected["message"].as_str().unwrap().contains("HTTP 400"), "{rejected}");
}
