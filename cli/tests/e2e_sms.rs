//! End to end on `cartback dev`: SMS that fits. The outbox line is what a
//! carrier would get; its short link is followed over real HTTP like a
//! phone would, and a message over the campaign's segment cap goes by the
//! next channel.

#[path = "support/dev.rs"]
mod dev;

use dev::{count, timeline, Launch};
use serde_json::{json, Value};

fn campaign(cap: u8) -> String {
    format!(
        r#"
id = "sms-first"
name = "SMS first"
holdout_percent = 0

[[steps]]
delay = "30m"
[steps.channels]
mobile = ["sms", "email"]
desktop = ["sms", "email"]

[caps]
sms_max_segments = {cap}
"#
    )
}

fn abandon(dev: &dev::Dev, cart_id: &str, first_name: &str) {
    let event = json!({
        "event_id": format!("atc-{cart_id}"), "type": "add_to_cart", "cart_id": cart_id, "device": "mobile",
        "currency": "EUR",
        "customer": {"email": "ana@example.com", "phone": "+33612345678", "first_name": first_name, "locale": "fr",
                     "consents": {"email": true, "sms": true, "basis": "consent"}},
        "items": [{"item_id": "sku-mug", "item_name": "Stoneware mug", "price": "30.00", "quantity": 2}]
    });
    let (status, answer) = dev.post_events(&event);
    assert_eq!((status, &answer["accepted"]), (200, &json!(1)), "{answer}");
}

fn sms_lines(dev: &dev::Dev) -> Vec<Value> {
    let text = std::fs::read_to_string(dev.data.join("outbox/sms.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// GIVEN a French customer on mobile with SMS consent and a campaign sending SMS first
/// WHEN the step goes out and the SMS's link is followed
/// THEN the SMS is one GSM-7 segment with a short `/r/` link and France's opt-out instruction,
///      and the link restores the cart (the signed restore URL) and records the click.
#[test]
fn given_a_reminder_by_sms_when_its_short_link_is_followed_then_it_fit_one_segment_and_restores_the_cart() {
    let campaign = campaign(2);
    let dev = dev::Dev::start(Launch { speed: "2000", campaigns: &[&campaign], ..Launch::default() });
    abandon(&dev, "cart-sms", "Ana");

    dev.wait_for("cart-sms", "a sent SMS", |c| count(c, "message", "sent") == 1);

    let lines = sms_lines(&dev);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let body = lines[0]["body"].as_str().unwrap();
    assert_eq!((&lines[0]["segments"], &lines[0]["encoding"]), (&json!(1), &json!("gsm7")), "{body}");
    assert!(body.ends_with("STOP pour vous désabonner"), "France's instruction ends it: {body}");
    let prefix = format!("{}/r/", dev.base);
    let start = body.find(&prefix).expect("a link to Cartback's redirect") + prefix.len();
    let token: String = body[start..].chars().take_while(char::is_ascii_alphanumeric).collect();
    assert_eq!(token.len(), 10, "a short token: {body}");
    assert!(body.chars().count() <= 160, "{body}");

    // WHEN the customer taps the link (the redirect is not followed: its target is the storefront)
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let response = agent
        .get(&format!("{prefix}{token}"))
        .set("user-agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148")
        .call()
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = response.header("location").unwrap();
    assert!(location.contains("cart-sms") && location.contains("token="), "the signed restore URL: {location}");

    let cart = dev.wait_for("cart-sms", "a recorded click", |c| {
        timeline(c).iter().any(|e| e["kind"] == "engagement" && e["code"] == "click")
    });
    assert_eq!(count(&cart, "message", "sent"), 1);
    // A token never issued gets the expired link's answer.
    let unknown = agent.get(&format!("{prefix}zzzzzzzzz0")).call();
    assert!(matches!(unknown, Err(ureq::Error::Status(410, _))), "{unknown:?}");
}

/// GIVEN a campaign capping SMS at one segment and a first name outside GSM-7 (UCS-2: 70 characters a segment)
/// WHEN the step goes out
/// THEN no SMS is written, the email is, and the timeline says why with `sms_too_long`.
#[test]
fn given_an_sms_over_the_segment_cap_when_the_step_goes_out_then_it_goes_by_email_and_the_timeline_says_why() {
    let campaign = campaign(1);
    let dev = dev::Dev::start(Launch { speed: "2000", campaigns: &[&campaign], ..Launch::default() });
    abandon(&dev, "cart-long", "Łucja");

    let cart = dev.wait_for("cart-long", "a sent email", |c| count(c, "message", "sent") == 1);

    assert!(sms_lines(&dev).is_empty(), "no SMS");
    assert_eq!(dev.emails().len(), 1);
    let line = timeline(&cart).into_iter().find(|e| e["code"] == "sms_too_long").expect("the reason");
    let message = line["message"].as_str().unwrap();
    assert!(message.contains("2 UCS-2 segments") && message.contains("cap of 1"), "{message}");
    assert_eq!(line["details"]["cap"], 1);
}
