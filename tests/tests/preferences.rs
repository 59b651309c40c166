//! The unsubscribe link on the HTTP application both runtimes serve, over
//! the local adapters (SQLite, a manual clock): a reminder email is decided
//! and queued, and its `List-Unsubscribe` link is used the way a mailbox
//! provider (one-click `POST`) or a person (the preference page) uses it.
//! Every answer is also checked against `openapi.json`.

use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;

use cartback_core::consent::{AnswerReason, ConsentSource};
use cartback_core::engine::Decision;
use cartback_core::ids::MessageId;
use cartback_core::measure::facts::{FactKind, MessageOutcome};
use cartback_core::message::{Outgoing, QueueName};
use cartback_core::ports::{CartStore, Clock, CustomerStore, FactStore, Timeline, TimelineEntry};
use cartback_core::service::CheckOutcome;
use cartback_core::signing::{sign_unsubscribe, UnsubscribeClaims};
use cartback_tests::openapi::{served, Observed};
use cartback_tests::samples::{sample_secret, LocalStack};

const START: &str = "2026-11-23T10:00:00Z";
const EMAIL: &str = "ana.lopez@example.com";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// A cart abandoned by Ana (a known customer, or a guest giving her address
/// on the cart), its first reminder decided and queued; answers the stack
/// and the email's unsubscribe URL path (`/u/...`).
async fn reminder_queued(known: bool) -> (LocalStack, String) {
    let stack = LocalStack::new(at(START));
    let customer = json!({ "email": EMAIL, "first_name": "Ana", "consents": { "email": true, "sms": true } });
    let events = if known {
        json!([
            { "event_id": "id-ana", "type": "identify", "occurred_at": "2026-11-23T09:59:00Z",
              "customer_id": "cust-ana", "customer": customer },
            { "event_id": "add-1", "type": "add_to_cart", "occurred_at": START, "cart_id": "cart-1",
              "customer_id": "cust-ana", "currency": "EUR",
              "items": [{ "item_id": "sku-mug", "item_name": "Mug", "price": "14.90" }] }
        ])
    } else {
        json!([
            { "event_id": "add-1", "type": "add_to_cart", "occurred_at": START, "cart_id": "cart-1", "currency": "EUR",
              "customer": customer, "items": [{ "item_id": "sku-mug", "item_name": "Mug", "price": "14.90" }] }
        ])
    };
    let answer = stack.api.ingest.ingest_body(json!({ "events": events }).to_string().as_bytes()).await.unwrap();
    assert_eq!(answer.rejected, 0, "{answer:?}");
    let CheckOutcome::Decided { sent, .. } = fire_next_timer(&stack).await else { panic!("not decided") };
    assert_eq!(sent.len(), 1, "the first step sends one email");
    let job = stack.queue.receive(QueueName::Email, now(&stack), Duration::minutes(5)).await.unwrap().expect("a job");
    stack.queue.ack(job.id).await.unwrap();
    let Outgoing::Email { unsubscribe: Some(list), text, .. } = &job.job.outgoing else {
        panic!("an email with List-Unsubscribe: {:?}", job.job)
    };
    assert!(text.contains(&list.url), "the text body shows the link");
    let path = list.url.strip_prefix(cartback_tests::samples::PUBLIC_BASE_URL).expect("on the public base URL");
    (stack, path.to_owned())
}

fn now(stack: &LocalStack) -> DateTime<Utc> {
    stack.clock.now()
}

async fn fire_next_timer(stack: &LocalStack) -> CheckOutcome {
    let timer = stack.timers.next_due(at("2030-01-01T00:00:00Z")).await.unwrap().expect("a timer is armed");
    stack.timers.complete(&timer).await.unwrap();
    stack.clock.set(timer.due_at);
    stack.checker.on_timer(&timer).await.unwrap()
}

/// Fires the cart's timers until one decides more than a wait.
async fn fire_until_decided(stack: &LocalStack) -> (Vec<MessageId>, Decision) {
    loop {
        match fire_next_timer(stack).await {
            CheckOutcome::Decided { decision: Decision::Wait { .. }, .. } => continue,
            CheckOutcome::Decided { sent, decision } => return (sent, decision),
            other => panic!("not decided: {other:?}"),
        }
    }
}

async fn send(stack: &LocalStack, method: &str, path: &str, form: Option<&str>) -> Observed {
    let mut request = Request::builder().method(method).uri(path);
    let body = match form {
        Some(form) => {
            request = request.header("content-type", "application/x-www-form-urlencoded");
            Body::from(form.to_owned())
        }
        None => Body::empty(),
    };
    let observed = Observed::from_app(&stack.app, request.body(body).unwrap()).await;
    served().check_response(method, path, &observed).unwrap_or_else(|v| panic!("{method} {path}: {v}"));
    observed
}

fn body(observed: &Observed) -> String {
    String::from_utf8(observed.body.clone()).unwrap()
}

async fn lines(stack: &LocalStack, code: &str) -> Vec<TimelineEntry> {
    stack.db.timeline(&"cart-1".into()).await.unwrap().into_iter().filter(|e| e.code == code).collect()
}

async fn facts(stack: &LocalStack) -> Vec<FactKind> {
    let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let mut facts = stack.db.facts(day, day + Duration::days(60)).await.unwrap();
    facts.sort_by(|a, b| a.fact_id.cmp(&b.fact_id));
    facts.into_iter().map(|f| f.kind).collect()
}

/// GIVEN a known customer's queued reminder
/// WHEN its link is posted `List-Unsubscribe=One-Click` twice
/// THEN both answer 200, email consent is withdrawn with the unsubscribe link as its source, the timeline has one
/// `unsubscribed` line, the message has an `unsubscribed` fact, and the next step sends no email.
#[tokio::test]
async fn given_a_reminder_when_its_link_is_posted_one_click_then_email_consent_is_withdrawn_once() {
    let (stack, path) = reminder_queued(true).await;
    for _ in 0..2 {
        let answer = send(&stack, "POST", &path, Some("List-Unsubscribe=One-Click")).await;
        assert_eq!(answer.status, 200);
        assert!(body(&answer).contains("You are unsubscribed"));
    }
    let (customer, _) = stack.db.get_customer(&"cust-ana".into()).await.unwrap().unwrap();
    assert_eq!(customer.profile.consents.as_ref().and_then(|c| c.email), Some(false));
    assert_eq!(customer.profile.consents.as_ref().and_then(|c| c.sms), Some(true), "only email is withdrawn");
    let last = customer.consent_history.last().expect("a consent change");
    assert_eq!((last.granted, last.source), (false, ConsentSource::UnsubscribeLink));
    let unsubscribed = lines(&stack, "unsubscribed").await;
    assert_eq!(unsubscribed.len(), 1, "a repeated POST adds nothing: {unsubscribed:?}");
    assert!(!unsubscribed[0].message.contains(EMAIL) && !unsubscribed[0].details.to_string().contains(EMAIL));
    let outcomes: Vec<MessageOutcome> = facts(&stack)
        .await
        .into_iter()
        .filter_map(|f| match f {
            FactKind::Message { outcome, .. } => Some(outcome),
            _ => None,
        })
        .collect();
    assert!(outcomes.contains(&MessageOutcome::Unsubscribed), "{outcomes:?}");
    let CheckOutcome::Decided { sent, decision } = fire_next_timer(&stack).await else { panic!("not decided") };
    assert!(sent.is_empty(), "sent after unsubscribing: {sent:?} ({decision:?})");
    assert!(!matches!(decision, Decision::Send { .. }), "{decision:?}");
    assert_eq!(decision.reason().code.as_str(), "unsubscribed", "the engine names why: {decision:?}");
}

/// GIVEN a guest's queued reminder WHEN its link is posted one-click THEN the consent on the guest cart is withdrawn.
#[tokio::test]
async fn given_a_guest_reminder_when_posted_one_click_then_the_carts_email_consent_is_withdrawn() {
    let (stack, path) = reminder_queued(false).await;
    assert_eq!(send(&stack, "POST", &path, Some("List-Unsubscribe=One-Click")).await.status, 200);
    let cart = stack.db.get_cart(&"cart-1".into()).await.unwrap().unwrap().cart();
    assert_eq!(cart.contact.consents.as_ref().and_then(|c| c.email), Some(false));
    assert_eq!(lines(&stack, "unsubscribed").await.len(), 1);
}

/// GIVEN a customer (known, then a guest) who unsubscribed through the link
/// WHEN the storefront's next cart event resends its stored customer block
/// (`consents.email = true`, as most storefronts do on every event)
/// THEN the withdrawal stands: the next step is not sent, and says why.
#[tokio::test]
async fn given_an_unsubscribe_when_the_storefront_resends_its_consent_flag_then_no_reminder_follows() {
    for known in [true, false] {
        let (stack, path) = reminder_queued(known).await;
        assert_eq!(send(&stack, "POST", &path, Some("List-Unsubscribe=One-Click")).await.status, 200);
        let mut again = json!({ "event_id": "add-2", "type": "add_to_cart", "occurred_at": now(&stack),
            "cart_id": "cart-1", "currency": "EUR",
            "customer": { "email": EMAIL, "consents": { "email": true } },
            "items": [{ "item_id": "sku-cup", "item_name": "Cup", "price": "4.90" }] });
        if known {
            again["customer_id"] = json!("cust-ana");
        }
        let answer = stack.api.ingest.ingest_body(json!({ "events": [again] }).to_string().as_bytes()).await.unwrap();
        assert_eq!(answer.rejected, 0, "{answer:?}");
        // The new activity moves the next step: fire until it is decided.
        let (sent, decision) = fire_until_decided(&stack).await;
        assert!(sent.is_empty(), "known {known}: re-subscribed by a resent flag: {sent:?} ({decision:?})");
        assert_eq!(decision.reason().code.as_str(), "unsubscribed", "known {known}: {decision:?}");
    }
}

/// GIVEN a guest who unsubscribed through the link and snoozed on the page
/// WHEN they log in: the cart gets their customer id, whose profile (consent
/// given at sign-up, before) is what the engine reads from then on
/// THEN the withdrawal made on the cart still stands: no reminder follows.
#[tokio::test]
async fn given_a_guests_unsubscribe_when_the_cart_is_identified_then_the_withdrawal_still_stands() {
    let (stack, path) = reminder_queued(false).await;
    assert_eq!(send(&stack, "POST", &path, Some("List-Unsubscribe=One-Click")).await.status, 200);
    let login = json!([
        { "event_id": "id-late", "type": "identify", "occurred_at": "2026-11-01T09:00:00Z",
          "customer_id": "cust-late", "customer": { "email": EMAIL, "consents": { "email": true, "basis": "consent" } } },
        { "event_id": "add-2", "type": "add_to_cart", "occurred_at": now(&stack), "cart_id": "cart-1",
          "customer_id": "cust-late", "currency": "EUR",
          "items": [{ "item_id": "sku-cup", "item_name": "Cup", "price": "4.90" }] }
    ]);
    let answer = stack.api.ingest.ingest_body(json!({ "events": login }).to_string().as_bytes()).await.unwrap();
    assert_eq!(answer.rejected, 0, "{answer:?}");
    let (sent, decision) = fire_until_decided(&stack).await;
    assert!(sent.is_empty(), "emailed after unsubscribing as a guest: {sent:?} ({decision:?})");
    assert_eq!(decision.reason().code.as_str(), "unsubscribed", "{decision:?}");
}

/// GIVEN a customer who unsubscribed, then opted in again at the storefront
/// (ticking the box: `basis = consent`)
/// WHEN they unsubscribe through the same link again, the same day
/// THEN the second withdrawal takes effect (it is a new change, not a repeat).
#[tokio::test]
async fn given_an_opt_in_after_an_unsubscribe_when_unsubscribing_again_the_same_day_then_it_takes_effect() {
    let (stack, path) = reminder_queued(true).await;
    let email = |stack: &LocalStack| {
        let db = stack.db.clone();
        async move {
            let (customer, _) = db.get_customer(&"cust-ana".into()).await.unwrap().unwrap();
            customer.profile.consents.and_then(|c| c.email)
        }
    };
    assert_eq!(send(&stack, "POST", &path, Some("List-Unsubscribe=One-Click")).await.status, 200);
    assert_eq!(email(&stack).await, Some(false));
    stack.clock.set(now(&stack) + Duration::minutes(5));
    let opt_in = json!([{ "event_id": "opt-in", "type": "identify", "occurred_at": now(&stack),
        "customer_id": "cust-ana", "customer": { "consents": { "email": true, "basis": "consent" } } }]);
    stack.api.ingest.ingest_body(json!({ "events": opt_in }).to_string().as_bytes()).await.unwrap();
    assert_eq!(email(&stack).await, Some(true), "the explicit opt-in re-subscribes");
    stack.clock.set(now(&stack) + Duration::minutes(5));
    assert_eq!(send(&stack, "POST", &path, Some("List-Unsubscribe=One-Click")).await.status, 200);
    assert_eq!(email(&stack).await, Some(false), "the second unsubscribe is not taken for a repeat");
    assert_eq!(lines(&stack, "unsubscribed").await.len(), 2);
}

/// GIVEN a queued reminder WHEN the preference page is opened
/// THEN it is a form with the choices, without the token, the address or the name, and opening it changes nothing.
#[tokio::test]
async fn given_a_reminder_when_the_preference_page_is_opened_then_it_shows_no_contact_data_and_changes_nothing() {
    let (stack, path) = reminder_queued(true).await;
    let page = send(&stack, "GET", &path, None).await;
    assert_eq!(page.status, 200);
    let html = body(&page);
    let stops = ["stop-email", "stop-sms", "stop-push", "stop-web_push", "stop-all"];
    for choice in stops.into_iter().chain(["snooze", "reason-already_bought"]) {
        assert!(html.contains(&format!(r#"id="{choice}""#)), "{choice} in {html}");
    }
    let token = path.trim_start_matches("/u/");
    for secret in [EMAIL, "Ana", token] {
        assert!(!html.contains(secret), "{secret} shown on the page");
    }
    assert!(lines(&stack, "unsubscribed").await.is_empty());
}

/// GIVEN a known customer's queued reminder
/// WHEN the form is posted with SMS stopped, a snooze, "already bought" and a comment, twice
/// THEN SMS consent is withdrawn (source: preference page), the customer is snoozed 30 days, the cart holds the
/// answer with its comment, the timeline has one line of each (without the comment), and the answer is a fact.
#[tokio::test]
async fn given_the_preference_form_when_posted_then_each_choice_is_applied_once() {
    let (stack, path) = reminder_queued(true).await;
    let form = concat!(
        "form=preferences&stop=sms&snooze=on&reason=already_bought",
        "&text=Bought+it+in+the+shop+ana.lopez%40example.com"
    );
    for _ in 0..2 {
        let answer = send(&stack, "POST", &path, Some(form)).await;
        assert_eq!(answer.status, 200);
        let html = body(&answer);
        assert!(html.contains("Cart reminders stopped by: Text messages (SMS)."), "{html}");
        let until = (now(&stack) + Duration::days(30)).date_naive();
        assert!(html.contains(&format!("Cart reminders paused until {until}.")), "{html}");
        assert!(html.contains("I already bought") && !html.contains(EMAIL), "{html}");
    }
    let (customer, _) = stack.db.get_customer(&"cust-ana".into()).await.unwrap().unwrap();
    let consents = customer.profile.consents.unwrap();
    assert_eq!((consents.email, consents.sms), (Some(true), Some(false)));
    assert_eq!(customer.consent_history.last().map(|c| c.source), Some(ConsentSource::PreferencePage));
    let snoozed = customer.profile.snoozed_until.expect("snoozed");
    assert_eq!(snoozed - now(&stack), Duration::days(30));
    let cart = stack.db.get_cart(&"cart-1".into()).await.unwrap().unwrap().cart();
    assert_eq!(cart.answers.len(), 1, "{:?}", cart.answers);
    assert_eq!(cart.answers[0].reason, AnswerReason::AlreadyBought);
    assert_eq!(cart.answers[0].text.as_deref(), Some("Bought it in the shop ana.lopez@example.com"));
    for code in ["unsubscribed", "snoozed", "answered"] {
        let found = lines(&stack, code).await;
        assert_eq!(found.len(), 1, "{code}: {found:?}");
        let line = format!("{} {}", found[0].message, found[0].details);
        assert!(!line.contains(EMAIL) && !line.contains("Bought it"), "{code}: {line}");
    }
    let answers: Vec<AnswerReason> = facts(&stack)
        .await
        .into_iter()
        .filter_map(|f| match f {
            FactKind::Answer { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(answers, vec![AnswerReason::AlreadyBought]);
}

/// GIVEN a form naming a channel the page does not offer WHEN posted THEN 400 names the field and nothing changes.
#[tokio::test]
async fn given_a_form_with_an_unknown_channel_when_posted_then_it_is_refused_naming_the_field() {
    let (stack, path) = reminder_queued(true).await;
    let answer = send(&stack, "POST", &path, Some("form=preferences&stop=fax")).await;
    assert_eq!(answer.status, 400);
    assert!(body(&answer).contains("stop: must be one of"), "{}", body(&answer));
    assert!(lines(&stack, "unsubscribed").await.is_empty());
}

/// GIVEN a forged, a cut and an expired token WHEN the page is opened or posted
/// THEN 400 (forged, cut) and 410 (expired) HTML pages answer, none repeating the token, and nothing changes.
#[tokio::test]
async fn given_a_bad_or_expired_token_when_used_then_an_html_400_or_410_answers_without_the_token() {
    let (stack, path) = reminder_queued(true).await;
    let token = path.trim_start_matches("/u/").to_owned();
    let forged = format!("/u/{}A", token);
    let cut = format!("/u/{}", &token[..token.len() / 2]);
    let expired = sign_unsubscribe(
        &sample_secret(),
        &UnsubscribeClaims {
            message_id: "m_x".into(),
            cart_id: "cart-1".into(),
            customer_id: Some("cust-ana".into()),
            expires: now(&stack).timestamp() - 1,
        },
    );
    let expired = format!("/u/{expired}");
    for (path, status) in [(&forged, 400), (&cut, 400), (&expired, 410), (&"/u/%FF".to_owned(), 400)] {
        for method in ["GET", "POST"] {
            let form = (method == "POST").then_some("List-Unsubscribe=One-Click");
            let answer = send(&stack, method, path, form).await;
            assert_eq!(answer.status, status, "{method} {path}");
            let html = body(&answer);
            assert!(html.contains(r#"id="error""#), "{html}");
            assert!(!html.contains(path.trim_start_matches("/u/")), "the token is not repeated");
        }
    }
    // Nor by the error of a method the link does not take.
    let request = Request::builder().method("DELETE").uri(&path).body(Body::empty()).unwrap();
    let answer = Observed::from_app(&stack.app, request).await;
    assert_eq!(answer.status, 405);
    assert!(!body(&answer).contains(&token), "{}", body(&answer));
    assert!(lines(&stack, "unsubscribed").await.is_empty());
}

/// GIVEN a known customer's link whose cart is gone (past its retention)
/// WHEN it is posted one-click
/// THEN 200, the customer's email consent is still withdrawn, and no timeline is written for the missing cart.
#[tokio::test]
async fn given_a_link_whose_cart_is_gone_when_posted_one_click_then_the_customer_is_still_unsubscribed() {
    let (stack, _) = reminder_queued(true).await;
    let claims = UnsubscribeClaims {
        message_id: "m_old".into(),
        cart_id: "cart-expired".into(),
        customer_id: Some("cust-ana".into()),
        expires: now(&stack).timestamp() + 3600,
    };
    let path = format!("/u/{}", sign_unsubscribe(&sample_secret(), &claims));
    assert_eq!(send(&stack, "POST", &path, Some("List-Unsubscribe=One-Click")).await.status, 200);
    let (customer, _) = stack.db.get_customer(&"cust-ana".into()).await.unwrap().unwrap();
    assert_eq!(customer.profile.consents.and_then(|c| c.email), Some(false));
    assert!(stack.db.timeline(&"cart-expired".into()).await.unwrap().is_empty());
}
