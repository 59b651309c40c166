//! Vouchers on the AWS runtime, on moto: the checker issues the cart's code
//! in DynamoDB; the email sender, configured from its environment (the
//! webhook's URL and the Secrets Manager ARN of its signing secret), reads
//! the secret, announces the voucher to a real HTTP endpoint, records the
//! acknowledgement on the voucher and sends the email showing the code.

use chrono::{DateTime, Utc};

use cartback_aws::config::{EmailConfig, VOUCHER_WEBHOOK_SECRET_ARN, VOUCHER_WEBHOOK_URL};
use cartback_aws::dynamo::DynamoCampaignStore;
use cartback_aws::{handlers, wiring};
use cartback_core::campaign::Campaign;
use cartback_core::ports::{CampaignStore, CartStore, Timeline, TimerPayload, VoucherStore};
use cartback_core::voucher::{Offer, VoucherStatus};
use cartback_core::webhook::WebhookSecret;
use cartback_tests::moto::{Moto, Stack, TestClock};
use cartback_tests::webhook_endpoint::webhook_endpoint;
use serde_json::json;

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// GIVEN the AWS stack with a campaign offering vouchers and the email sender's webhook configured
/// WHEN a cart's first step is decided and its email job delivered
/// THEN the voucher is issued in DynamoDB, announced signed to the endpoint, marked published, and the email
/// (sent through SES) shows its code.
#[tokio::test]
async fn given_a_webhook_on_aws_when_an_email_with_a_voucher_is_delivered_then_the_storefront_learns_the_code_first() {
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let mut campaign = Campaign { holdout_percent: 0, ..Campaign::default_campaign() };
    for step in &mut campaign.steps {
        step.offer = Some(Offer::default());
    }
    DynamoCampaignStore::new(stack.clients.dynamodb.clone(), &stack.config_table).put(&campaign).await.unwrap();
    let secret_arn = stack
        .clients
        .secrets
        .create_secret()
        .name(format!("voucher-webhook-{}", std::process::id()))
        .secret_string(WEBHOOK_SECRET)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let (url, received) = webhook_endpoint(0);
    let mut env = stack.env.clone();
    env.insert(VOUCHER_WEBHOOK_URL.into(), url);
    env.insert(VOUCHER_WEBHOOK_SECRET_ARN.into(), secret_arn);
    let email_config = EmailConfig::from_env(&|k: &str| env.get(k).cloned()).unwrap();

    // The cart: a known customer with email consent, priced in USD.
    let clock = TestClock::new(at("2026-11-23T10:00:00Z"));
    let api = wiring::api(&stack.clients, &stack.ingest_config(), stack.secret(), clock.clone());
    let event = json!({
        "event_id": "e1", "type": "add_to_cart", "cart_id": "cart-v1", "customer_id": "cus-v1",
        "device": "desktop", "currency": "USD", "occurred_at": "2026-11-23T10:00:00Z",
        "customer": {"email": "vera@example.com", "consents": {"email": true}},
        "items": [{"item_id": "sku-mug", "price": "30.00", "quantity": 1}]
    });
    let answer = api.ingest.ingest_body(event.to_string().as_bytes()).await.unwrap();
    assert_eq!(answer.accepted, 1, "{answer:?}");
    let store = wiring::state_store(&stack.clients, &stack.timer_config().common, clock.clone());
    let due = store.get_cart(&"cart-v1".into()).await.unwrap().unwrap().timer_armed_for.unwrap();
    clock.set(due);
    let checker = wiring::checker(&stack.clients, &stack.checker_config(), stack.secret(), clock.clone());
    let timer = TimerPayload { cart_id: "cart-v1".into(), due_at: due };
    handlers::checker(&checker, serde_json::to_value(&timer).unwrap()).await.unwrap();
    let issued = store.cart_voucher(&"cart-v1".into()).await.unwrap().expect("issued in DynamoDB");
    assert_eq!(issued.published_at, None);

    let mut delivery = wiring::email_delivery(&stack.clients, &email_config, clock.clone());
    delivery.webhook = wiring::voucher_webhook(&stack.clients, email_config.voucher_webhook.as_ref()).await.unwrap();
    let batch = stack.receive("email").await;
    let result = handlers::sender(&delivery, batch.clone()).await;
    assert!(result.batch_item_failures.is_empty());
    stack.settle("email", &batch, &result).await;

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (headers, body) = &received[0];
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap();
    let secret = WebhookSecret::parse(WEBHOOK_SECRET).unwrap();
    assert!(secret.verify(&header("webhook-id"), timestamp, body, &header("webhook-signature")));
    let event: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["data"]["code"], issued.code.as_str());
    let published = store.cart_voucher(&"cart-v1".into()).await.unwrap().unwrap();
    assert_eq!((published.published_at, published.status), (Some(due), VoucherStatus::Issued));
    let codes: Vec<String> = store
        .timeline(&"cart-v1".into())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "message")
        .map(|e| e.code)
        .collect();
    assert_eq!(codes, ["voucher_published", "sent"]);
    let emails: Vec<String> =
        stack.sent_raw_emails().iter().map(|raw| raw.replace("=\r\n", "").replace("=\n", "")).collect();
    assert_eq!(emails.len(), 1);
    assert!(emails[0].contains(issued.code.as_str()), "the email shows the code");
}
