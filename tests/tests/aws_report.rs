//! `GET /v1/report` on the AWS runtime (DynamoDB on moto), through the
//! ingest Lambda as API Gateway delivers it: the same facts give the same
//! report, byte for byte, as on the local runtime (SQLite).

use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, Duration, Utc};

use cartback_aws::dynamo::DynamoStateStore;
use cartback_aws::handlers;
use cartback_core::measure::Group;
use cartback_core::ports::FactStore;
use cartback_core::signing::{sign_request, Secret, SignedRequest, SIGNATURE_HEADER};
use cartback_tests::local_app::local_app_with_db;
use cartback_tests::moto::{apigw_event, resign, response_json, Moto, Stack, TestClock};
use cartback_tests::openapi::{assert_response, Observed};
use cartback_tests::report_facts::{carts, vouchers};

const QUERY: &str = "campaign=default&from=2026-11-15&to=2026-11-22&attribution_window_hours=36";

/// GIVEN the same facts in DynamoDB and in SQLite (carts over three days,
/// treated and held out, some bought, some with vouchers redeemed or abused) WHEN the signed report is asked through
/// API Gateway on AWS and through the local router THEN both answer 200 with
/// the same body, which matches the OpenAPI document.
#[tokio::test]
async fn given_the_same_facts_on_both_runtimes_when_the_report_is_asked_then_the_answers_are_identical() {
    let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
    let mut facts = Vec::new();
    for (day, bought_treated, bought_held) in [("2026-11-16", 9, 2), ("2026-11-18", 12, 1), ("2026-11-21", 7, 3)] {
        facts.extend(carts(Group::Treated, 30, bought_treated, day));
        facts.extend(carts(Group::HeldOut, 10, bought_held, day));
        facts.extend(vouchers(20, 5, day));
    }

    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let clock = TestClock::new(now);
    let dynamo =
        DynamoStateStore::new(stack.clients.dynamodb.clone(), &stack.state_table, Duration::days(90), clock.clone());
    for fact in &facts {
        dynamo.record_fact(fact).await.unwrap();
    }
    let app = stack.http_app(clock);
    let mut event = apigw_event("apigw-get-cart.json");
    event.route_key = Some("GET /v1/report".into());
    event.request_context.route_key = Some("GET /v1/report".into());
    event.raw_path = Some("/v1/report".into());
    event.request_context.http.path = Some("/v1/report".into());
    event.raw_query_string = Some(QUERY.into());
    event.query_string_parameters = QUERY
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect::<std::collections::HashMap<_, _>>()
        .into();
    event.path_parameters.clear();
    resign(&mut event, &stack.secret(), now);
    let aws = handlers::ingest(&app, event).await;
    assert_eq!(aws.status_code, 200, "{:?}", aws.body);
    let aws = response_json(&aws);

    let secret = stack.secret.as_bytes();
    let (local_app, _clock, db) = local_app_with_db(secret);
    for fact in &facts {
        db.record_fact(fact).await.unwrap();
    }
    let path = format!("/v1/report?{QUERY}");
    let signed = SignedRequest { method: "GET", path_and_query: &path, body: b"" };
    let header = sign_request(&Secret::new(secret.to_vec()).unwrap(), now.timestamp(), &signed);
    let request = Request::builder().uri(&path).header(SIGNATURE_HEADER, header).body(Body::empty()).unwrap();
    let local = Observed::from_app(&local_app, request).await;
    assert_response("GET", "/v1/report", &local);
    let local: serde_json::Value = serde_json::from_slice(&local.body).unwrap();

    assert_eq!(aws, local);
    let campaign = &aws["campaigns"][0];
    assert_eq!((campaign["treated"].as_u64(), campaign["held_out"].as_u64()), (Some(90), Some(30)));
    assert_eq!((campaign["recovered_treated"].as_u64(), campaign["recovered_held_out"].as_u64()), (Some(28), Some(6)));
    assert_eq!(aws["attribution_window_hours"], 36);
    let vouchers = &campaign["vouchers"];
    assert_eq!((vouchers["issued"].as_u64(), vouchers["redeemed"].as_u64()), (Some(60), Some(15)), "{vouchers}");
    assert_eq!(vouchers["abuse_attempts"], 3);
    assert_eq!(vouchers["discount_cost"]["EUR"], "30.00");
}
