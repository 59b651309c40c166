//! Vouchers through the ingest Lambda's HTTP application on DynamoDB
//! (moto), as API Gateway delivers requests: the storefront validates a
//! code, a purchase redeems it, and validating again is refused.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use cartback_aws::dynamo::DynamoStateStore;
use cartback_aws::handlers;
use cartback_core::ports::VoucherStore;
use cartback_core::voucher::{IssueOutcome, Voucher, VoucherOwner, VoucherStatus};
use cartback_tests::moto::{apigw_event, post_events, resign, response_json, Moto, Stack, TestClock};
use cartback_tests::voucher_contract::voucher_for;

/// GIVEN Ana's 10% voucher in the state table WHEN the storefront validates
/// it through API Gateway, a purchase carrying it is posted, and it is
/// validated again THEN it is valid with its terms first, the purchase
/// redeems it with its discount, and the second validation answers
/// `already_redeemed`.
#[tokio::test]
async fn given_a_voucher_on_dynamodb_when_validated_bought_and_validated_again_then_it_is_redeemed_once() {
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let now: DateTime<Utc> = "2026-11-23T10:03:00Z".parse().unwrap();
    let clock = TestClock::new(now);
    let secret = stack.secret();
    let app = stack.http_app(clock.clone());
    let store = DynamoStateStore::new(stack.clients.dynamodb.clone(), &stack.state_table, Duration::days(90), clock);
    let owner = VoucherOwner::customer(&"cust-ana".into());
    let voucher = Voucher { cart_id: "cart-ana".into(), ..voucher_for(&owner, now - Duration::hours(1)) };
    assert_eq!(store.issue_voucher(&voucher).await.unwrap(), IssueOutcome::Issued);

    let validate = || {
        let mut event = apigw_event("apigw-post-events.json");
        event.raw_path = Some("/v1/vouchers/validate".to_owned());
        event.request_context.http.path = Some("/v1/vouchers/validate".to_owned());
        let body = json!({"code": voucher.code.as_str(), "customer_id": "cust-ana", "cart_id": "cart-ana",
            "subtotal": "50.00", "currency": "EUR"});
        event.body = Some(body.to_string());
        resign(&mut event, &secret, now);
        event
    };
    let answer = handlers::ingest(&app, validate()).await;
    assert_eq!(answer.status_code, 200, "{:?}", answer.body);
    let answer = response_json(&answer);
    assert_eq!((answer["valid"].as_bool(), answer["percent_off"].as_str()), (Some(true), Some("10")), "{answer}");
    assert_eq!(answer["discount_amount"], "5.00");

    let purchase = json!({"events": [{"event_id": "aws-buy-1", "type": "purchase", "cart_id": "cart-ana",
        "customer_id": "cust-ana", "order_id": "order-1", "value": "50.00", "currency": "EUR",
        "coupon": voucher.code.as_str()}]});
    assert_eq!(response_json(&handlers::ingest(&app, post_events(&purchase, &secret, now)).await)["accepted"], 1);
    let stored = store.voucher(&voucher.code).await.unwrap().unwrap();
    assert!(
        matches!(&stored.status, VoucherStatus::Redeemed { order_id, discount: Some(d), .. }
            if order_id == "order-1" && *d == "5.00".parse::<cartback_core::Decimal>().unwrap()),
        "{:?}",
        stored.status
    );

    let again = response_json(&handlers::ingest(&app, validate()).await);
    assert_eq!((again["valid"].as_bool(), again["reason"].as_str()), (Some(false), Some("already_redeemed")));
}
