//! `GET /v1/report` over the HTTP application both runtimes serve (SQLite
//! in memory, manual clock at 2026-11-23T10:00Z): signed like every `/v1`
//! route, parameters checked with errors that name them, and answers that
//! match the served OpenAPI document.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use cartback_core::measure::Group;
use cartback_core::ports::{Clock, FactStore};
use cartback_core::signing::{sign_request, Secret, SignedRequest};
use cartback_local::testing::ManualClock;
use cartback_tests::local_app::local_app_with_db;
use cartback_tests::openapi::{assert_response, Observed};
use cartback_tests::report_facts::{carts, vouchers};
use serde_json::Value;

const SECRET: &[u8] = b"report-secret-0123456789";

async fn get(app: &Router, clock: &Arc<ManualClock>, path_and_query: &str, signed: bool) -> (u16, Value) {
    let mut request = Request::builder().method("GET").uri(path_and_query);
    if signed {
        let secret = Secret::new(SECRET.to_vec()).unwrap();
        let to_sign = SignedRequest { method: "GET", path_and_query, body: b"" };
        request = request.header("x-cartback-signature", sign_request(&secret, clock.now().timestamp(), &to_sign));
    }
    let observed = Observed::from_app(app, request.body(Body::empty()).unwrap()).await;
    assert_response("GET", path_and_query.split('?').next().unwrap(), &observed);
    (observed.status, serde_json::from_slice(&observed.body).unwrap_or(Value::Null))
}

/// GIVEN 10 treated carts (4 bought) and 5 held out (1 bought) on 20 November
/// WHEN the signed report is asked with the defaults THEN it covers the 14 days
/// to today, counts both arms, gives the lift with its two-number interval,
/// says there is not enough data yet, and matches the OpenAPI document.
#[tokio::test]
async fn given_facts_when_the_signed_report_is_asked_then_it_counts_both_arms_with_intervals() {
    let (app, clock, db) = local_app_with_db(SECRET);
    let mut facts = carts(Group::Treated, 10, 4, "2026-11-20");
    facts.extend(carts(Group::HeldOut, 5, 1, "2026-11-20"));
    for fact in &facts {
        db.record_fact(fact).await.unwrap();
    }

    let (status, body) = get(&app, &clock, "/v1/report", true).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!((body["from"].as_str(), body["to"].as_str()), (Some("2026-11-10"), Some("2026-11-23")));
    assert_eq!(body["attribution_window_hours"], 24);
    let campaign = &body["campaigns"][0];
    assert_eq!(campaign["campaign_id"], "default");
    for (field, value) in
        [("entered", 15), ("treated", 10), ("held_out", 5), ("recovered_treated", 4), ("recovered_held_out", 1)]
    {
        assert_eq!(campaign[field], value, "{field}");
    }
    assert_eq!(campaign["recovery_rate_treated"], 0.4);
    assert_eq!(campaign["recovery_rate_held_out"], 0.2);
    let lift = campaign["lift"].as_f64().unwrap();
    assert!((lift - 0.2).abs() < 1e-12);
    let ci = campaign["lift_ci95"].as_array().unwrap();
    assert!(ci.len() == 2 && ci[0].as_f64().unwrap() < lift && lift < ci[1].as_f64().unwrap(), "{ci:?}");
    assert_eq!(campaign["evidence"], "not_enough_data");
    assert_eq!(campaign["attributed_revenue"]["EUR"], "80.00");
    assert_eq!(campaign["incremental_revenue"]["EUR"], "40.00", "(8.00 - 4.00) x 10 treated");
    assert_eq!(campaign["cost"]["USD"], "0.0010", "10 emails at $0.0001");
    assert_eq!(body["total"]["entered"], 15);
    assert_eq!(body["campaigns"][0]["days"].as_array().unwrap().len(), 14);

    // Another window and channel window are taken; a narrow period leaves the carts out.
    let (status, body) =
        get(&app, &clock, "/v1/report?campaign=default&attribution_window_hours=48&window_hours_sms=12", true).await;
    assert_eq!((status, body["attribution_window_hours"].as_i64()), (200, Some(48)));
    let (_, body) = get(&app, &clock, "/v1/report?campaign=default&from=2026-11-21&to=2026-11-22", true).await;
    assert_eq!(body["campaigns"][0]["entered"], 0);
}

/// GIVEN 10 treated carts (4 bought) of which 6 got a standard-tier voucher, 3 redeemed (2.00 EUR off
/// each) and the first code tried again by another order, and 5 held-out carts
/// WHEN the signed report is asked THEN its voucher figures count them, the discounts are in the cost,
/// and the answer matches the OpenAPI document's voucher section.
#[tokio::test]
async fn given_vouchers_when_the_signed_report_is_asked_then_their_figures_and_cost_are_in_it() {
    let (app, clock, db) = local_app_with_db(SECRET);
    let mut facts = carts(Group::Treated, 10, 4, "2026-11-20");
    facts.extend(carts(Group::HeldOut, 5, 1, "2026-11-20"));
    facts.extend(vouchers(6, 3, "2026-11-20"));
    for fact in &facts {
        db.record_fact(fact).await.unwrap();
    }

    let (status, body) = get(&app, &clock, "/v1/report?campaign=default", true).await;

    assert_eq!(status, 200, "{body}");
    let vouchers = &body["campaigns"][0]["vouchers"];
    assert_eq!((vouchers["issued"].as_u64(), vouchers["redeemed"].as_u64()), (Some(6), Some(3)), "{vouchers}");
    assert_eq!(vouchers["abuse_attempts"], 1);
    assert_eq!(vouchers["discount_cost"]["EUR"], "6.00");
    assert_eq!(vouchers["discount_cost_per_recovered_order"]["EUR"], "1.50", "6.00 over 4 recovered orders");
    assert_eq!(vouchers["by_tier"]["standard"]["recovered"], 4);
    assert_eq!(vouchers["by_tier"]["standard"]["recovery_rate"], 4.0 / 6.0);
    assert_eq!(vouchers["by_tier"]["recovery"]["issued"], 0);
    assert_eq!(vouchers["targets"]["recovery_rate_returners"]["target"], 0.12);
    assert_eq!(vouchers["targets"]["aov_impact"]["target"]["USD"], "4.50");
    assert_eq!(vouchers["targets"]["discount_cost_per_acquisition"]["target"]["USD"], "8.20");
    assert_eq!(body["campaigns"][0]["cost"]["EUR"], "6.00");
    assert_eq!(body["campaigns"][0]["cost"]["USD"], "0.0010");
    assert_eq!(body["total"]["vouchers"]["issued"], 6);
}

/// GIVEN bad parameters WHEN asked THEN 400 naming the parameter and why; an unknown
/// campaign is 404; and without a signature nothing is checked but the signature (401).
#[tokio::test]
async fn given_bad_parameters_or_no_signature_when_the_report_is_asked_then_clear_refusals() {
    let (app, clock, _db) = local_app_with_db(SECRET);
    let refusals = [
        ("/v1/report?from=2026-11-10&to=2026-11-09", 400, "from: 2026-11-10 is after to (2026-11-09)"),
        (
            "/v1/report?from=2025-01-01&to=2026-01-02",
            400,
            "from: the period from 2025-01-01 to 2026-01-02 is longer than 366 days",
        ),
        ("/v1/report?attribution_window_hours=0", 400, "attribution_window_hours: must be 1 to 720 hours"),
        ("/v1/report?attribution_window_hours=721", 400, "attribution_window_hours: must be 1 to 720 hours"),
        ("/v1/report?window_hours_sms=abc", 400, "window_hours_sms: must be a whole number of hours"),
        ("/v1/report?to=yesterday", 400, "to: must be a date as YYYY-MM-DD"),
        ("/v1/report?colour=blue", 400, "colour: unknown parameter"),
        ("/v1/report?campaign=nope", 404, "no campaign \"nope\""),
    ];
    for (path, status, message) in refusals {
        let (got, body) = get(&app, &clock, path, true).await;
        assert_eq!((got, body["error"]["message"].as_str()), (status, Some(message)), "{path}");
    }
    let (status, body) = get(&app, &clock, "/v1/report?from=2026-11-10&to=2026-11-09", false).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
}
