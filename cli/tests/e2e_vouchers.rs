//! End to end on `cartback dev` with the shipped `infra/campaigns/vouchers.toml`
//! (the seed's offer: 10% for returners, 5% for others, on both steps): the
//! codes customers see in their emails, the reasons when they see none,
//! one redemption per code, and the `voucher.issued` webhook a storefront
//! receives (signed, before the message) from a real server.
//!
//! The virtual clock runs at 5000x: step 1 (30 minutes) comes after about
//! 0.4 real seconds, step 2 (a day later) after about 17; a code's 7 days
//! last about 2 real minutes.

#[path = "support/dev.rs"]
mod dev;

use std::ops::Deref;
use std::time::{Duration, Instant};

use cartback_core::ids::CustomerKey;
use cartback_core::measure::{assign_group, Group};
use cartback_core::voucher::VoucherCode;
use cartback_core::webhook::WebhookSecret;
use cartback_tests::webhook_endpoint::webhook_endpoint;
use dev::{count, timeline, Launch, DEADLINE};
use serde_json::{json, Value};

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEED: &str = "5000";

/// `cartback dev` with `vouchers.toml` applied (the only campaign); when the
/// test ends, the server's log must name no code shown in an email in full.
struct Dev(dev::Dev);

impl Deref for Dev {
    type Target = dev::Dev;
    fn deref(&self) -> &dev::Dev {
        &self.0
    }
}

impl Dev {
    /// `cartback dev` on a fresh data folder with `vouchers.toml` applied, plus `env`.
    fn start(env: &[(&str, &str)]) -> Dev {
        Dev::start_at(SPEED, env)
    }

    /// As [`Dev::start`], with the virtual clock at `speed`.
    fn start_at(speed: &str, env: &[(&str, &str)]) -> Dev {
        let campaigns = [include_str!("../../infra/campaigns/vouchers.toml")];
        Dev(dev::Dev::start(Launch {
            speed,
            campaigns: &campaigns,
            env,
            rust_log: "info,cartback_core=debug",
            ..Launch::default()
        }))
    }

    fn post(&self, event: &Value) {
        let (status, answer) = self.post_events(event);
        assert_eq!((status, &answer["accepted"]), (200, &json!(1)), "{answer}");
    }

    /// The storefront's checkout asking about `code` for `customer_id`.
    fn validate(&self, code: &VoucherCode, customer_id: &str, cart_id: &str) -> Value {
        let body = serde_json::to_vec(&json!({"code": code.as_str(), "customer_id": customer_id, "cart_id": cart_id,
            "subtotal": "60.00", "currency": "USD"}))
        .unwrap();
        let (status, answer) = self.call("POST", "/v1/vouchers/validate", &body);
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// The emails sent to `to`, oldest step first.
    fn emails_to(&self, to: &str) -> Vec<String> {
        let mut mails: Vec<(std::time::SystemTime, String)> = self
            .emails()
            .into_iter()
            .filter(|(_, mail)| mail.contains(&format!("To: {to}")))
            .filter_map(|(path, mail)| Some((path.metadata().ok()?.modified().ok()?, mail)))
            .collect();
        mails.sort();
        mails.into_iter().map(|(_, m)| m).collect()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.0.stop();
        if std::thread::panicking() {
            return;
        }
        // Codes are credentials: the log (debug level for the core) names them by their last group only.
        let log = self.log_text();
        let shown: Vec<VoucherCode> = self.emails_to("").iter().flat_map(|m| codes_in(m)).collect();
        for code in shown {
            assert!(!log.contains(code.as_str()), "the server's log shows a full voucher code");
        }
    }
}

/// The voucher codes an email shows (`CB-XXXX-XXXX-XXXX`), each once.
fn codes_in(email: &str) -> Vec<VoucherCode> {
    let mut codes: Vec<VoucherCode> = email
        .match_indices("CB-")
        .filter_map(|(at, _)| email.get(at..at + 17))
        .filter_map(|text| VoucherCode::parse(text).ok())
        .collect();
    codes.sort();
    codes.dedup();
    codes
}

/// A customer id the vouchers campaign treats (it holds 10% out).
fn treated(prefix: &str) -> String {
    (0..)
        .map(|n| format!("{prefix}-{n}"))
        .find(|id| assign_group("vouchers", 10, &CustomerKey::Customer(id.as_str().into())) == Group::Treated)
        .unwrap()
}

fn add_to_cart(cart_id: &str, customer_id: &str, email: &str) -> Value {
    json!({
        "event_id": format!("atc-{cart_id}"), "type": "add_to_cart", "cart_id": cart_id, "customer_id": customer_id,
        "device": "desktop", "currency": "USD",
        "customer": {"email": email, "first_name": "Ana", "consents": {"email": true}},
        "items": [{"item_id": "sku-mug", "item_name": "Stoneware mug", "price": "30.00", "quantity": 2}]
    })
}

fn voucher_lines(cart: &Value) -> Vec<Value> {
    timeline(cart).into_iter().filter(|e| e["details"]["voucher"].is_string()).collect()
}

/// GIVEN a customer with a return 20 days ago and a storefront taking the voucher.issued webhook
/// WHEN they abandon a cart and both steps go out
/// THEN both emails show the same 10% code, and the storefront received it, signed, before the first email.
#[test]
fn given_a_returner_when_both_steps_go_out_then_both_emails_show_the_same_10_percent_code() {
    let (url, received) = webhook_endpoint(0);
    let webhook = [("CARTBACK_VOUCHER_WEBHOOK_URL", url.as_str()), ("CARTBACK_VOUCHER_WEBHOOK_SECRET", WEBHOOK_SECRET)];
    let dev = Dev::start(&webhook);
    let customer = treated("returner");
    let returned_at = dev.now() - chrono::Duration::days(20);
    dev.post(&json!({
        "event_id": "ret-1", "type": "return", "cart_id": "old-cart", "customer_id": customer,
        "occurred_at": returned_at.to_rfc3339(), "items": [{"item_id": "sku-bowl"}]
    }));
    dev.post(&add_to_cart("cart-ret", &customer, "rita@example.com"));

    let cart = dev.wait_for("cart-ret", "two sent emails", |c| count(c, "message", "sent") == 2);

    let emails = dev.emails_to("rita@example.com");
    assert_eq!(emails.len(), 2);
    let (first, second) = (codes_in(&emails[0]), codes_in(&emails[1]));
    assert_eq!(first.len(), 1, "step 1 shows one code");
    assert_eq!(first, second, "step 2 shows the same code");
    for email in &emails {
        assert!(email.contains("10%"), "the recovery tier's 10%: {email}");
    }
    let lines = voucher_lines(&cart);
    let outcomes: Vec<&str> = lines.iter().map(|e| e["details"]["voucher"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["issue", "reuse"], "{lines:#?}");
    assert_eq!(lines[0]["details"]["tier"], "recovery");
    assert!(!cart.to_string().contains(first[0].as_str()), "the cart's timeline never shows the full code");
    // The storefront learned the code, signed as Standard Webhooks, before the first email.
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "one webhook per voucher");
    let (headers, body) = &received[0];
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let secret = WebhookSecret::parse(WEBHOOK_SECRET).unwrap();
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap();
    // As a receiver checks it: within five minutes of its own (real) clock,
    // however fast the server's virtual clock runs.
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() <= 300, "webhook-timestamp {timestamp} is not now");
    assert!(secret.verify(&header("webhook-id"), timestamp, body, &header("webhook-signature")));
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["type"], "voucher.issued");
    assert_eq!(event["data"]["code"], first[0].as_str());
    assert_eq!(event["data"]["customer_id"], customer.as_str());
    let lines = timeline(&cart);
    let codes: Vec<&str> = lines.iter().filter(|e| e["kind"] == "message").filter_map(|e| e["code"].as_str()).collect();
    assert_eq!(&codes[..2], ["voucher_published", "sent"], "published before the first send: {codes:?}");
}

/// GIVEN a customer without returns WHEN step 1 goes out THEN the email shows a 5% code.
#[test]
fn given_a_customer_without_returns_when_step_one_goes_out_then_the_email_shows_a_5_percent_code() {
    let dev = Dev::start(&[]);
    let customer = treated("newcomer");
    dev.post(&add_to_cart("cart-new", &customer, "nina@example.com"));

    let cart = dev.wait_for("cart-new", "a sent email", |c| count(c, "message", "sent") >= 1);

    let emails = dev.emails_to("nina@example.com");
    assert_eq!(codes_in(&emails[0]).len(), 1, "{}", emails[0]);
    assert!(emails[0].contains("5%"), "{}", emails[0]);
    assert_eq!(voucher_lines(&cart)[0]["details"]["tier"], "standard");
}

/// GIVEN a customer who redeemed a promotion (a purchase with a coupon) 10 days ago
/// WHEN they abandon a cart THEN the email goes out without a code and the timeline says why.
#[test]
fn given_a_promotion_redeemed_10_days_ago_when_step_one_goes_out_then_no_code_and_the_timeline_says_why() {
    let dev = Dev::start(&[]);
    let customer = treated("bargain");
    let bought_at = dev.now() - chrono::Duration::days(10);
    dev.post(&json!({
        "event_id": "buy-old", "type": "purchase", "cart_id": "old-cart", "customer_id": customer,
        "order_id": "o-old", "value": "40.00", "currency": "USD", "coupon": "SUMMER20",
        "occurred_at": bought_at.to_rfc3339()
    }));
    dev.post(&add_to_cart("cart-promo", &customer, "paul@example.com"));

    let cart = dev.wait_for("cart-promo", "a sent email", |c| count(c, "message", "sent") >= 1);

    let emails = dev.emails_to("paul@example.com");
    assert!(codes_in(&emails[0]).is_empty(), "no code: {}", emails[0]);
    let lines = voucher_lines(&cart);
    assert_eq!(lines[0]["code"], "recent_promotion", "{lines:#?}");
    assert_eq!(lines[0]["details"]["voucher"], "withheld");
    let sentence = lines[0]["message"].as_str().unwrap();
    assert!(sentence.contains("promotion"), "{sentence}");
}

/// GIVEN an email showing a code WHEN an order uses it THEN it is redeemed once; a second order with the same
/// code is recorded as an abuse attempt.
#[test]
fn given_a_shown_code_when_two_orders_use_it_then_the_first_redeems_it_and_the_second_is_an_abuse_attempt() {
    let dev = Dev::start(&[]);
    let customer = treated("buyer");
    dev.post(&add_to_cart("cart-buy", &customer, "bea@example.com"));
    dev.wait_for("cart-buy", "a sent email", |c| count(c, "message", "sent") >= 1);
    let code = codes_in(&dev.emails_to("bea@example.com")[0]).remove(0);
    let purchase = |event_id: &str, cart_id: &str, order_id: &str| {
        json!({
            "event_id": event_id, "type": "purchase", "cart_id": cart_id, "customer_id": customer,
            "order_id": order_id, "value": "54.00", "currency": "USD", "coupon": code.as_str().to_lowercase(),
            "items": [{"item_id": "sku-mug", "price": "30.00", "quantity": 2}]
        })
    };

    dev.post(&purchase("buy-1", "cart-buy", "o-1"));
    dev.post(&purchase("buy-1-again", "cart-buy", "o-1"));
    dev.post(&purchase("buy-2", "cart-other", "o-2"));

    let cart = dev.wait_for("cart-buy", "a redemption and an abuse attempt", |c| {
        count(c, "event", "voucher_redeemed") >= 1 && count(c, "event", "voucher_abuse") >= 1
    });
    assert_eq!(count(&cart, "event", "voucher_redeemed"), 1, "redeemed once, the replayed order included");
    assert_eq!(count(&cart, "event", "voucher_abuse"), 1, "the second order");
    assert_eq!(cart["status"], "converted");
}

/// GIVEN the webhook set to wait and a storefront that answers 503 twice
/// WHEN step 1 is due THEN the email waits: it goes out once, right after the storefront acknowledged the code.
#[test]
fn given_wait_and_a_storefront_down_at_first_when_step_one_is_due_then_the_email_goes_after_the_acknowledgement() {
    let (url, received) = webhook_endpoint(2);
    let dev = Dev::start(&[
        ("CARTBACK_VOUCHER_WEBHOOK_URL", url.as_str()),
        ("CARTBACK_VOUCHER_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("CARTBACK_VOUCHER_WEBHOOK_WAIT", "true"),
    ]);
    let customer = treated("patient");
    dev.post(&add_to_cart("cart-wait", &customer, "walt@example.com"));

    let cart = dev.wait_for("cart-wait", "a sent email", |c| count(c, "message", "sent") >= 1);

    let lines = timeline(&cart);
    let codes: Vec<&str> = lines.iter().filter(|e| e["kind"] == "message").filter_map(|e| e["code"].as_str()).collect();
    assert_eq!(
        &codes[..4],
        ["voucher_webhook_failed", "voucher_webhook_failed", "voucher_published", "sent"],
        "{codes:?}"
    );
    assert!(lines.iter().any(|e| e["message"].as_str().unwrap_or_default().contains("HTTP 503")));
    assert_eq!(received.lock().unwrap().len(), 3, "two refusals, then the acknowledgement");
    assert_eq!(dev.emails_to("walt@example.com").len(), 1, "one email, after the acknowledgement");
}

/// GIVEN codes shown to two customers (the virtual clock at 50000x: a
/// code's 7 days last about 12 real seconds)
/// WHEN the storefront's checkout validates the first for someone else, for
/// its owner, and again after the owner's order used it; and the second
/// once its 7 days are over
/// THEN the answers are `not_yours`, valid with the 5% terms and the expiry,
/// `already_redeemed`, and `expired`.
#[test]
fn given_shown_codes_when_the_checkout_validates_them_then_foreign_used_and_expired_codes_are_refused_with_why() {
    let dev = Dev::start_at("50000", &[]);
    let (owner, late) = (treated("checkout"), treated("late"));
    dev.post(&add_to_cart("cart-own", &owner, "own@example.com"));
    dev.post(&add_to_cart("cart-late", &late, "late@example.com"));
    dev.wait_for("cart-own", "a sent email", |c| count(c, "message", "sent") >= 1);
    dev.wait_for("cart-late", "a sent email", |c| count(c, "message", "sent") >= 1);
    let code = codes_in(&dev.emails_to("own@example.com")[0]).remove(0);
    let late_code = codes_in(&dev.emails_to("late@example.com")[0]).remove(0);

    let foreign = dev.validate(&code, "someone-else", "cart-x");
    assert_eq!(
        (&foreign["valid"], &foreign["reason"], &foreign["percent_off"]),
        (&json!(false), &json!("not_yours"), &Value::Null)
    );
    let valid = dev.validate(&code, &owner, "cart-own");
    let terms = (&valid["valid"], &valid["percent_off"], &valid["discount_amount"]);
    assert_eq!(terms, (&json!(true), &json!("5"), &json!("3.00")), "{valid}");
    let expires_at: chrono::DateTime<chrono::Utc> = valid["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires_at > dev.now(), "{valid}");

    dev.post(&json!({"event_id": "buy-own", "type": "purchase", "cart_id": "cart-own", "customer_id": owner,
        "order_id": "o-own", "value": "57.00", "currency": "USD", "coupon": code.as_str()}));
    dev.wait_for("cart-own", "the redemption", |c| count(c, "event", "voucher_redeemed") >= 1);
    assert_eq!(dev.validate(&code, &owner, "cart-own")["reason"], "already_redeemed");

    let start = Instant::now();
    loop {
        let answer = dev.validate(&late_code, &late, "cart-late");
        if answer["reason"] == "expired" {
            assert_eq!(answer["valid"], false);
            break;
        }
        assert_eq!(answer["valid"], true, "{answer}");
        assert!(start.elapsed() < DEADLINE, "the code never expired: {answer}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
