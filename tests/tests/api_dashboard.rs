//! `GET /dashboard` over the HTTP application both runtimes serve: on SQLite in memory (in process) and on
//! DynamoDB on moto through the ingest Lambda's API Gateway translation. With facts in place, the page's
//! numbers are the report API's for the same query; without a valid link the answer is 401.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::Value;

use cartback_aws::handlers;
use cartback_core::measure::{Fact, Group};
use cartback_core::ports::{Clock, FactStore};
use cartback_core::signing::{dashboard_token, sign_request, Secret, SignedRequest};
use cartback_tests::local_app::local_app_with_db;
use cartback_tests::moto::{apigw_event, Moto, Stack, TestClock};
use cartback_tests::openapi::Observed;
use cartback_tests::report_facts::carts;

const SECRET: &[u8] = b"dashboard-secret-0123456789";

fn facts() -> Vec<Fact> {
    let mut facts = carts(Group::Treated, 10, 4, "2026-11-20");
    facts.extend(carts(Group::HeldOut, 5, 1, "2026-11-20"));
    facts
}

async fn get(app: &Router, path_and_query: &str, signature: Option<String>) -> Observed {
    let mut request = Request::builder().method("GET").uri(path_and_query);
    if let Some(signature) = signature {
        request = request.header("x-cartback-signature", signature);
    }
    Observed::from_app(app, request.body(Body::empty()).unwrap()).await
}

/// Every `data-field` of the page with its `data-value`, as JSON.
fn shown(html: &str) -> BTreeMap<String, Value> {
    let unescape = |t: &str| t.replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&");
    html.split("data-field=\"")
        .skip(1)
        .map(|rest| {
            let field = unescape(&rest[..rest.find('"').unwrap()]);
            let start = rest.find("data-value=\"").unwrap() + "data-value=\"".len();
            let value = unescape(&rest[start..start + rest[start..].find('"').unwrap()]);
            (field, serde_json::from_str(&value).unwrap())
        })
        .collect()
}

fn at<'a>(root: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .try_fold(root, |v, key| match v {
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => v.get(key),
        })
        .unwrap_or(&Value::Null)
}

fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-12,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| close(x, y)),
        _ => a == b,
    }
}

/// GIVEN 10 treated carts (4 bought) and 5 held out (1 bought) in SQLite
/// WHEN the dashboard is opened with a link for the default campaign and a 48-hour window
/// THEN it answers 200 HTML whose every number equals the signed report API's for the same query, and
/// without a link, with a forged or an expired one it answers 401 in HTML.
#[tokio::test]
async fn given_facts_when_the_dashboard_is_opened_with_a_link_then_its_numbers_are_the_report_apis() {
    let (app, clock, db) = local_app_with_db(SECRET);
    for fact in facts() {
        db.record_fact(&fact).await.unwrap();
    }
    let secret = Secret::new(SECRET.to_vec()).unwrap();
    let token = dashboard_token(&secret, clock.now().timestamp() + 3600);
    let query = "campaign=default&from=2026-11-19&to=2026-11-21&attribution_window_hours=48";

    let page = get(&app, &format!("/dashboard?token={token}&{query}"), None).await;

    assert_eq!(page.status, 200);
    let html = String::from_utf8(page.body).unwrap();
    let path = format!("/v1/report?{query}");
    let signature = sign_request(
        &secret,
        clock.now().timestamp(),
        &SignedRequest { method: "GET", path_and_query: &path, body: b"" },
    );
    let report: Value = serde_json::from_slice(&get(&app, &path, Some(signature)).await.body).unwrap();
    let entry = &report["campaigns"][0];
    let fields = shown(&html);
    assert!(fields.len() >= 30, "{} numbers shown", fields.len());
    for (field, value) in &fields {
        assert!(close(at(entry, field), value), "{field}: page {value}, API {}", at(entry, field));
    }
    assert_eq!(fields["entered"], 15);
    assert_eq!(fields["recovered_treated"], 4);
    assert_eq!(fields["attributed_revenue.EUR"], "80.00");
    assert!(html.contains(r#"data-window="48""#));

    for (link, sentence) in [
        ("/dashboard".to_owned(), "needs a dashboard link"),
        (format!("/dashboard?token={token}0"), "is not valid"),
        (format!("/dashboard?token={}", dashboard_token(&secret, clock.now().timestamp() - 1)), "has expired"),
    ] {
        let refused = get(&app, &link, None).await;
        let body = String::from_utf8(refused.body).unwrap();
        assert_eq!(refused.status, 401, "{link}");
        assert!(body.contains(sentence) && body.contains("cartback dashboard"), "{link}: {body}");
    }
    let unknown = get(&app, &format!("/dashboard?token={token}&campaign=nope"), None).await;
    assert_eq!(unknown.status, 404);
    assert!(String::from_utf8(unknown.body).unwrap().contains("campaign: no campaign &quot;nope&quot;"));
}

/// GIVEN the same facts in DynamoDB (moto) WHEN the dashboard is asked through the ingest Lambda as API
/// Gateway delivers `GET /dashboard?token=...` THEN the page shows the campaign's numbers; without the
/// token it is 401.
#[tokio::test]
async fn given_facts_on_aws_when_the_dashboard_is_asked_through_the_lambda_then_it_shows_them() {
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
    let clock = TestClock::new(now);
    let store = cartback_aws::dynamo::DynamoStateStore::new(
        stack.clients.dynamodb.clone(),
        &stack.state_table,
        chrono::Duration::days(90),
        clock.clone(),
    );
    for fact in facts() {
        store.record_fact(&fact).await.unwrap();
    }
    let app = stack.http_app(clock.clone());
    let token = dashboard_token(&stack.secret(), now.timestamp() + 3600);
    let ask = |query: String| {
        let mut event = apigw_event("apigw-get-cart.json");
        event.raw_path = Some("/dashboard".to_owned());
        event.request_context.http.path = Some("/dashboard".to_owned());
        event.raw_query_string = Some(query);
        event
    };

    let answer =
        handlers::ingest(&app, ask(format!("token={token}&campaign=default&from=2026-11-20&to=2026-11-20"))).await;

    assert_eq!(answer.status_code, 200, "{:?}", answer.body);
    let html = match answer.body {
        Some(aws_lambda_events::encodings::Body::Text(text)) => text,
        other => panic!("not a text body: {other:?}"),
    };
    let fields = shown(&html);
    assert_eq!((&fields["entered"], &fields["treated"], &fields["held_out"]), (&15.into(), &10.into(), &5.into()));
    assert_eq!(fields["attributed_revenue.EUR"], "80.00");
    let refused = handlers::ingest(&app, ask("campaign=default".into())).await;
    assert_eq!(refused.status_code, 401);
}
