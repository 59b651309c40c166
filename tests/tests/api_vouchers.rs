//! Vouchers at the storefront's checkout and at purchase, over the HTTP
//! application both runtimes serve (SQLite in memory, manual clock):
//! `POST /v1/vouchers/validate` (signed; every answer checked against the
//! served OpenAPI document) and the redemption of a code by the `purchase`
//! event that carries it as its `coupon`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use cartback_core::ids::CustomerKey;
use cartback_core::measure::facts::FactKind;
use cartback_core::ports::{Clock, FactStore, Timeline, VoucherStore};
use cartback_core::signing::{sign_request, Secret, SignedRequest};
use cartback_core::voucher::{
    Discount, IssueOutcome, Refusal, TierName, Voucher, VoucherCode, VoucherOwner, VoucherStatus, VoucherTerms,
};
use cartback_local::testing::ManualClock;
use cartback_local::Database;
use cartback_tests::local_app::local_app_with_db;
use cartback_tests::openapi::{assert_response, served, Observed};
use chrono::{Duration, NaiveDate};
use serde_json::{json, Value};

const SECRET: &[u8] = b"vouchers-secret-0123456789";
const CODE: &str = "CB-7KQ4-M9XD-2PWE";
const VALIDATE: &str = "/v1/vouchers/validate";

async fn call(app: &Router, clock: &ManualClock, path: &str, body: &Value, signed: bool) -> (u16, Value) {
    let body = body.to_string().into_bytes();
    let mut request = Request::builder().method("POST").uri(path);
    if signed {
        let to_sign = SignedRequest { method: "POST", path_and_query: path, body: &body };
        let secret = Secret::new(SECRET.to_vec()).unwrap();
        request = request.header("x-cartback-signature", sign_request(&secret, clock.now().timestamp(), &to_sign));
    }
    let observed = Observed::from_app(app, request.body(Body::from(body)).unwrap()).await;
    assert_response("POST", path, &observed);
    (observed.status, serde_json::from_slice(&observed.body).unwrap_or(Value::Null))
}

/// Ana's 10% voucher (at most 15.00 off, from 20.00) on her cart
/// `cart-ana`, in EUR, issued at the clock's start and expiring 7 days on.
fn anas_voucher(clock: &ManualClock) -> Voucher {
    let issued_at = clock.now();
    Voucher {
        code: VoucherCode::parse(CODE).unwrap(),
        cart_id: "cart-ana".into(),
        owner: VoucherOwner::customer(&"cust-ana".into()),
        customer_key: CustomerKey::Customer("cust-ana".into()),
        campaign_id: "abandoned-cart".into(),
        step: 0,
        variant: None,
        terms: VoucherTerms {
            tier: TierName::Recovery,
            discount: Discount::PercentOff { percent: 10.into(), max_amount: Some("15.00".parse().unwrap()) },
            currency: "EUR".into(),
            min_cart_value: Some("20.00".parse().unwrap()),
        },
        issued_at,
        expires_at: issued_at + Duration::days(7),
        status: VoucherStatus::Issued,
        published_at: None,
    }
}

async fn app_with_anas_voucher() -> (Router, Arc<ManualClock>, Database, Voucher) {
    let (app, clock, db) = local_app_with_db(SECRET);
    let voucher = anas_voucher(&clock);
    assert_eq!(db.issue_voucher(&voucher).await.unwrap(), IssueOutcome::Issued);
    (app, clock, db, voucher)
}

fn checkout(code: &str) -> Value {
    json!({"code": code, "customer_id": "cust-ana", "cart_id": "cart-ana", "subtotal": "68.80", "currency": "EUR"})
}

fn purchase(event_id: &str, order_id: &str, cart_id: &str, coupon: &str) -> Value {
    json!({"event_id": event_id, "type": "purchase", "cart_id": cart_id, "customer_id": "cust-ana",
           "order_id": order_id, "value": "68.80", "currency": "EUR", "coupon": coupon})
}

async fn send_event(app: &Router, clock: &ManualClock, event: Value) -> Value {
    let (status, answer) = call(app, clock, "/v1/events", &event, true).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// GIVEN Ana's voucher WHEN it is validated without a signature THEN 401.
#[tokio::test]
async fn given_an_unsigned_request_when_a_code_is_validated_then_401() {
    let (app, clock, _db, _voucher) = app_with_anas_voucher().await;
    let (status, body) = call(&app, &clock, VALIDATE, &checkout(CODE), false).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
}

/// GIVEN Ana's 10% voucher WHEN she presents it, typed in lower case
/// without dashes, on a 68.80 EUR checkout THEN it is valid, with its
/// terms, the 6.88 it takes off and its expiry.
#[tokio::test]
async fn given_the_owner_within_the_terms_when_the_code_is_validated_then_it_is_valid_with_its_terms() {
    let (app, clock, _db, voucher) = app_with_anas_voucher().await;
    let request = checkout("cb 7kq4m9xd2pwe");
    served().check_request("POST", VALIDATE, &request).unwrap();
    let (status, answer) = call(&app, &clock, VALIDATE, &request, true).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"valid": true, "reason": null, "percent_off": "10", "max_discount": "15.00", "discount_amount": "6.88",
               "min_cart_value": "20.00", "currency": "EUR", "expires_at": voucher.expires_at})
    );
}

/// GIVEN Ana's voucher WHEN presented in each refused situation THEN each
/// answer is invalid with its reason: a text that is not a code and a code
/// never issued are `unknown`, Bob is `not_yours` (and learns no terms),
/// USD is `wrong_currency`, 19.99 is `below_minimum`, a week later it is
/// `expired`, and once revoked it is `revoked`.
#[tokio::test]
async fn given_refused_checkouts_when_the_code_is_validated_then_each_answers_its_reason() {
    let (app, clock, db, voucher) = app_with_anas_voucher().await;
    let reason = |answer: &Value| (answer["valid"].as_bool(), answer["reason"].as_str().map(str::to_owned));
    let refused = |why: &str| (Some(false), Some(why.to_owned()));
    let cases = [
        (checkout("SAVE10"), "unknown"),
        (checkout("CB-2222-3333-4444"), "unknown"),
        (
            json!({"code": CODE, "customer_id": "cust-bob", "cart_id": "cart-bob", "subtotal": 80, "currency": "EUR"}),
            "not_yours",
        ),
        (
            json!({"code": CODE, "email": "ana@example.com", "cart_id": "cart-ana", "subtotal": 80, "currency": "EUR"}),
            "not_yours",
        ),
        (
            json!({"code": CODE, "customer_id": "cust-ana", "cart_id": "cart-ana", "subtotal": 80, "currency": "USD"}),
            "wrong_currency",
        ),
        (
            json!({"code": CODE, "customer_id": "cust-ana", "cart_id": "cart-ana", "subtotal": "19.99",
                "currency": "EUR"}),
            "below_minimum",
        ),
    ];
    for (request, why) in cases {
        let (status, answer) = call(&app, &clock, VALIDATE, &request, true).await;
        assert_eq!((status, reason(&answer)), (200, refused(why)), "{request}");
        if matches!(why, "unknown" | "not_yours") {
            assert_eq!((&answer["currency"], &answer["expires_at"]), (&Value::Null, &Value::Null), "no terms shown");
            assert!(answer.get("percent_off").is_none());
        }
    }

    clock.set(voucher.expires_at);
    let (_, answer) = call(&app, &clock, VALIDATE, &checkout(CODE), true).await;
    assert_eq!(reason(&answer), refused("expired"));
    assert_eq!(answer["percent_off"], "10", "the owner still sees the terms");

    clock.set(voucher.expires_at - Duration::days(1));
    db.revoke_voucher(&voucher.code, clock.now()).await.unwrap();
    let (_, answer) = call(&app, &clock, VALIDATE, &checkout(CODE), true).await;
    assert_eq!(reason(&answer), refused("revoked"));
}

/// GIVEN malformed checkouts WHEN validated THEN 400 naming the field:
/// missing code, neither or both of customer_id and email, a bad email, a
/// subtotal that is not a decimal, a currency not in capitals, a body that
/// is not an object.
#[tokio::test]
async fn given_malformed_checkouts_when_validated_then_400_names_the_field() {
    let (app, clock, _db, _voucher) = app_with_anas_voucher().await;
    let with = |field: &str, value: Value| {
        let mut request = checkout(CODE);
        request[field] = value;
        request
    };
    let without = |field: &str| {
        let mut request = checkout(CODE);
        request.as_object_mut().unwrap().remove(field);
        request
    };
    let cases = [
        (without("code"), "code"),
        (with("code", json!("  ")), "code"),
        (with("code", json!(42)), "code"),
        (without("customer_id"), "customer_id"),
        (with("email", json!("ana@example.com")), "customer_id"),
        (json!({"code": CODE, "email": "not-an-address", "cart_id": "c", "subtotal": "1", "currency": "EUR"}), "email"),
        (without("cart_id"), "cart_id"),
        (with("subtotal", json!("twelve")), "subtotal"),
        (with("subtotal", json!(-5)), "subtotal"),
        (without("subtotal"), "subtotal"),
        (with("currency", json!("eur")), "currency"),
        (with("currency", json!("EURO")), "currency"),
        (json!(["not", "an", "object"]), "body"),
    ];
    for (request, field) in cases {
        let (status, answer) = call(&app, &clock, VALIDATE, &request, true).await;
        let message = answer["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert_eq!(status, 400, "{request}: {answer}");
        assert!(message.starts_with(&format!("{field}: ")), "{request}: {message}");
    }
}

/// GIVEN Ana's voucher WHEN her purchase carries its code as the coupon,
/// the same purchase event is sent again, and a second order uses the code
/// THEN the first order redeems it once (its discount recorded), the replay
/// changes nothing, the second order is an abuse attempt (a fact and a
/// timeline line saying why), the validate route then answers
/// `already_redeemed`, and no timeline line shows the full code.
#[tokio::test]
async fn given_a_purchase_with_our_code_when_ingested_twice_and_reused_then_it_is_redeemed_once_and_reuse_is_abuse() {
    let (app, clock, db, voucher) = app_with_anas_voucher().await;
    let first = purchase("buy-1", "order-1", "cart-ana", "cb-7kq4-m9xd-2pwe");
    assert_eq!(send_event(&app, &clock, first.clone()).await["accepted"], 1);
    let stored = db.voucher(&voucher.code).await.unwrap().unwrap();
    let redeemed_at = clock.now();
    let expected = VoucherStatus::Redeemed {
        order_id: "order-1".into(),
        at: redeemed_at,
        discount: Some("6.88".parse().unwrap()),
    };
    assert_eq!(stored.status, expected);

    clock.advance(Duration::minutes(5));
    assert_eq!(send_event(&app, &clock, first).await["duplicates"], 1);
    let second = purchase("buy-2", "order-2", "cart-other", CODE);
    assert_eq!(send_event(&app, &clock, second).await["accepted"], 1, "the order itself is taken");
    assert_eq!(db.voucher(&voucher.code).await.unwrap().unwrap().status, expected, "still the first order's");

    let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    let facts = db.facts(day, day).await.unwrap();
    let voucher_facts: Vec<&FactKind> = facts
        .iter()
        .map(|f| &f.kind)
        .filter(|k| matches!(k, FactKind::VoucherRedeemed { .. } | FactKind::VoucherAbuse { .. }))
        .collect();
    assert_eq!(
        voucher_facts,
        [
            &FactKind::VoucherRedeemed {
                order_id: "order-1".into(),
                campaign_id: "abandoned-cart".into(),
                cart_id: "cart-ana".into(),
                customer_key: CustomerKey::Customer("cust-ana".into()),
                tier: TierName::Recovery,
                discount: Some("6.88".parse().unwrap()),
                currency: "EUR".into(),
            },
            &FactKind::VoucherAbuse {
                order_id: "order-2".into(),
                campaign_id: "abandoned-cart".into(),
                cart_id: "cart-ana".into(),
                refusal: Refusal::AlreadyRedeemed,
            },
        ]
    );

    let timeline = db.timeline(&"cart-ana".into()).await.unwrap();
    let lines: Vec<(&str, &str)> = timeline
        .iter()
        .filter(|e| e.code.starts_with("voucher_"))
        .map(|e| (e.code.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            ("voucher_redeemed", "voucher …2PWE redeemed by order order-1, 6.88 EUR off"),
            (
                "voucher_abuse",
                "abuse attempt: order order-2 used voucher …2PWE and was refused, it was redeemed by order order-1"
            ),
        ]
    );
    assert!(timeline.iter().all(|e| !e.message.contains("7KQ4") && !e.details.to_string().contains("7KQ4")));

    let (_, answer) = call(&app, &clock, VALIDATE, &checkout(CODE), true).await;
    assert_eq!(answer["reason"], "already_redeemed");
}

/// GIVEN a revoked voucher WHEN a purchase uses it THEN the order is taken,
/// and the use is an abuse attempt refused as revoked.
#[tokio::test]
async fn given_a_revoked_code_when_a_purchase_uses_it_then_it_is_recorded_as_abuse() {
    let (app, clock, db, voucher) = app_with_anas_voucher().await;
    db.revoke_voucher(&voucher.code, clock.now()).await.unwrap();
    assert_eq!(send_event(&app, &clock, purchase("buy-1", "order-1", "cart-ana", CODE)).await["accepted"], 1);
    let day = clock.now().date_naive();
    let abuse: Vec<FactKind> = db
        .facts(day, day)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.kind)
        .filter(|k| matches!(k, FactKind::VoucherAbuse { .. }))
        .collect();
    assert!(matches!(abuse.as_slice(), [FactKind::VoucherAbuse { refusal: Refusal::Revoked, .. }]), "{abuse:?}");
    let line = db.timeline(&"cart-ana".into()).await.unwrap().into_iter().find(|e| e.code == "voucher_abuse");
    assert!(line.unwrap().message.ends_with("it was revoked"));
}

/// GIVEN a purchase whose coupon is the shop's own promotion WHEN ingested
/// THEN it is an ordinary order with its coupon, and no voucher fact.
#[tokio::test]
async fn given_a_coupon_that_is_not_ours_when_a_purchase_uses_it_then_it_is_an_ordinary_promotion() {
    let (app, clock, db, voucher) = app_with_anas_voucher().await;
    assert_eq!(send_event(&app, &clock, purchase("buy-1", "order-1", "cart-ana", "SAVE10")).await["accepted"], 1);
    let day = clock.now().date_naive();
    let kinds: Vec<FactKind> = db.facts(day, day).await.unwrap().into_iter().map(|f| f.kind).collect();
    assert!(matches!(kinds.as_slice(), [FactKind::Order { coupon: Some(c), .. }] if c == "SAVE10"), "{kinds:?}");
    assert_eq!(db.voucher(&voucher.code).await.unwrap().unwrap().status, VoucherStatus::Issued);
}
