//! The unsubscribe link on the AWS runtime, on moto: the checker renders the
//! email with the AWS settings (postal address, unsubscribe mailbox), SES v2
//! sends it raw with both headers, and the one-click `POST` reaches the
//! ingest function through its API Gateway translation and withdraws consent
//! in DynamoDB, with its timeline line.

use base64::Engine;
use chrono::{DateTime, Utc};

use cartback_aws::{handlers, wiring};
use cartback_core::consent::ConsentSource;
use cartback_core::ports::{CustomerStore, Timeline};
use cartback_tests::moto::{apigw_event, resign, Moto, Stack, TestClock};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The message's headers, unfolded.
fn headers(raw: &str) -> String {
    let raw = raw.replace("\r\n", "\n");
    raw.split_once("\n\n").map(|(h, _)| h).unwrap_or_default().replace("\n ", " ").replace("\n\t", " ")
}

/// GIVEN Ana's abandoned cart on the AWS stack and its first email sent through SES
/// WHEN the email's List-Unsubscribe link is posted `List-Unsubscribe=One-Click` through API Gateway, twice
/// THEN each answers 200 HTML, Ana's email consent is withdrawn in DynamoDB (source: unsubscribe link), and the
/// cart's timeline has one `unsubscribed` line.
#[tokio::test]
async fn given_an_email_sent_on_aws_when_its_link_is_posted_one_click_then_consent_is_withdrawn_in_dynamodb() {
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let clock = TestClock::new(at("2026-11-23T10:03:00Z"));
    let config = stack.ingest_config();
    let secret = wiring::load_secret(&stack.clients, &config.timer.secret_arn).await.unwrap();
    let app =
        cartback_http::router(std::sync::Arc::new(wiring::api(&stack.clients, &config, secret.clone(), clock.clone())));
    let mut event = apigw_event("apigw-post-events.json");
    resign(&mut event, &secret, at("2026-11-23T10:03:00Z"));
    assert_eq!(handlers::ingest(&app, event).await.status_code, 200);

    // The timer fires after the last edit: one email job, sent through SES.
    let checker = wiring::checker(&stack.clients, &stack.checker_config(), secret.clone(), clock.clone());
    clock.set(at("2026-11-23T10:33:10Z"));
    let timer = cartback_core::ports::TimerPayload { cart_id: "cart-aws-1".into(), due_at: at("2026-11-23T10:32:00Z") };
    let outcome = handlers::checker(&checker, serde_json::to_value(&timer).unwrap()).await.unwrap();
    assert_eq!(outcome["sent"].as_array().map(Vec::len), Some(1), "{outcome}");
    let delivery = wiring::email_delivery(&stack.clients, &stack.email_config(), clock.clone());
    let batch = stack.receive("email").await;
    let result = handlers::sender(&delivery, batch.clone()).await;
    assert!(result.batch_item_failures.is_empty());
    stack.settle("email", &batch, &result).await;
    let emails = stack.sent_raw_emails();
    assert_eq!(emails.len(), 1);
    let headers = headers(&emails[0]);
    let header = headers.lines().find_map(|l| l.strip_prefix("List-Unsubscribe: ")).expect("List-Unsubscribe");
    assert!(header.ends_with(", <mailto:unsubscribe@shop.example?subject=unsubscribe>"), "{header}");
    assert!(headers.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"), "{headers}");
    let link = header.trim_start_matches('<').split('>').next().unwrap();
    let path = link.strip_prefix("https://cb.example").expect("on the public base URL");
    assert!(path.starts_with("/u/"), "{link}");
    let decoded = emails[0].replace("=\r\n", "").replace("=\n", "");
    let body_has_address = decoded.contains("Demo Shop, 1 Test Street, 75001 Paris, France")
        || decoded.split("\r\n\r\n").any(|part| {
            let compact: String = part.lines().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact.trim())
                .is_ok_and(|b| String::from_utf8_lossy(&b).contains("Demo Shop, 1 Test Street"))
        });
    assert!(body_has_address, "the postal address is in the email");

    // A mailbox provider's one-click POST, as API Gateway hands it to the ingest function.
    for _ in 0..2 {
        let mut post = apigw_event("apigw-post-events.json");
        post.raw_path = Some(path.to_owned());
        post.route_key = Some("POST /u/{token}".into());
        post.request_context.http.path = Some(path.to_owned());
        post.request_context.http.method = axum::http::Method::POST;
        post.headers.remove("x-cartback-signature");
        post.headers.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
        post.body = Some("List-Unsubscribe=One-Click".into());
        post.is_base64_encoded = false;
        let response = handlers::ingest(&app, post).await;
        assert_eq!(response.status_code, 200, "{:?}", response.body);
        assert!(response.headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/html"));
    }

    let store = wiring::state_store(&stack.clients, &stack.timer_config().common, clock.clone());
    let (customer, _) = store.get_customer(&"cust-ana".into()).await.unwrap().expect("Ana");
    assert_eq!(customer.profile.consents.as_ref().and_then(|c| c.email), Some(false));
    let last = customer.consent_history.last().expect("a consent change");
    assert_eq!((last.granted, last.source), (false, ConsentSource::UnsubscribeLink));
    let timeline = store.timeline(&"cart-aws-1".into()).await.unwrap();
    let lines: Vec<_> = timeline.iter().filter(|e| e.code == "unsubscribed").collect();
    assert_eq!(lines.len(), 1, "{timeline:?}");
    assert!(!lines[0].message.contains("ana@example.com"));
}
