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
use cartback_core::ports::{Clock, FactStore, TemplateStore};
use cartback_core::signing::{dashboard_token, sign_request, Secret, SignedRequest};
use cartback_core::template::{shipped_set, Brand};
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

/// The shipped `reminder` with a German subject of the shop's own, and a brand.
fn stored_reminder() -> (cartback_core::template::TemplateSet, Brand) {
    let mut set = shipped_set("reminder").unwrap();
    set.locales.get_mut("de").unwrap().email_subject = Some("{{ first_name }}, Küchenladen-Warenkorb wartet".into());
    set.validate().unwrap();
    let name = "Küchenladen <Berlin>".into();
    let brand = Brand { name, primary_colour: Some("#0a7c4a".into()), ..Brand::default() };
    (set, brand)
}

fn text(observed: Observed) -> (u16, String, String) {
    let policy = observed.headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("content-security-policy"));
    let policy = policy.map(|(_, value)| value.clone()).unwrap_or_default();
    (observed.status, String::from_utf8(observed.body).unwrap(), policy)
}

/// A page's link `href` resolved against the page's path, as a browser does.
fn resolve(page: &str, href: &str) -> String {
    let href = href.replace("&amp;", "&");
    let base = &page[..page.rfind('/').unwrap() + 1];
    let mut parts: Vec<&str> = base.trim_end_matches('/').split('/').collect();
    let mut rest = href.as_str();
    while let Some(up) = rest.strip_prefix("../") {
        parts.pop();
        rest = up;
    }
    format!("{}/{rest}", parts.join("/"))
}

/// The `href` (or `src`) after `marker` in `html`.
fn link_after(html: &str, marker: &str, attribute: &str) -> String {
    let from = html.find(marker).unwrap_or_else(|| panic!("{marker} not in {html}"));
    let start = from + html[from..].find(&format!("{attribute}=\"")).unwrap() + attribute.len() + 2;
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// GIVEN a stored `reminder` with its own German subject and a brand, beside the shipped `last_call`
/// WHEN the dashboard's template pages are followed from `/dashboard` with a link
/// THEN the list shows both sets (stored and shipped) with their locales, the German page renders the
/// stored subject, SMS and push for the sample cart and frames the email page, which is the email
/// with the brand; without a link every page is 401, an unknown set 404.
#[tokio::test]
async fn given_stored_and_shipped_sets_when_the_template_pages_are_followed_then_each_renders_its_locale() {
    let (app, clock, db) = local_app_with_db(SECRET);
    let (set, brand) = stored_reminder();
    db.put_template(&set).await.unwrap();
    db.put_brand(&brand).await.unwrap();
    let secret = Secret::new(SECRET.to_vec()).unwrap();
    let token = dashboard_token(&secret, clock.now().timestamp() + 3600);

    let (status, dashboard, _) = text(get(&app, &format!("/dashboard?token={token}"), None).await);
    assert_eq!(status, 200);
    let list_path = resolve("/dashboard", &link_after(&dashboard, "id=\"templates-link\"", "href"));
    assert_eq!(list_path, format!("/dashboard/templates?token={token}"));

    let (status, list, _) = text(get(&app, &list_path, None).await);
    assert_eq!(status, 200, "{list}");
    assert!(list.contains(r#"<tr data-set="reminder"><td>"#) && list.contains("<td>stored</td>"), "{list}");
    assert!(list.contains(r#"<tr data-set="last_call">"#) && list.contains("<td>shipped</td>"), "{list}");
    let german = resolve(&list_path, &link_after(&list, r#"data-set="reminder""#, "href").replace("&amp;", "&"));
    assert!(german.starts_with("/dashboard/templates/reminder?token="), "{german}");

    let (status, page, policy) = text(get(&app, &format!("{german}&locale=de"), None).await);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"<td id="email-subject">Alex, Küchenladen-Warenkorb wartet</td>"#), "{page}");
    assert!(page.contains(r#"id="sms">"#) && page.contains("https://preview.cartback.invalid/restore"), "{page}");
    assert!(policy.contains("frame-src 'self'"), "{policy}");
    let email_path = resolve(&german, &link_after(&page, "<iframe", "src"));
    assert!(email_path.starts_with("/dashboard/templates/reminder/email?token="), "{email_path}");

    let (status, email, policy) = text(get(&app, &email_path, None).await);
    assert_eq!(status, 200);
    assert!(email.contains("lang=\"de\"") && email.contains("Küchenladen &lt;Berlin&gt;"), "{email}");
    assert!(policy.contains("frame-ancestors 'self'") && !policy.contains("script-src"), "{policy}");

    for path in ["/dashboard/templates", "/dashboard/templates/reminder", "/dashboard/templates/reminder/email"] {
        let (status, body, _) = text(get(&app, path, None).await);
        assert_eq!(status, 401, "{path}");
        assert!(body.contains("needs a dashboard link"), "{path}: {body}");
    }
    let (status, _, _) = text(get(&app, &format!("/dashboard/templates/nope?token={token}"), None).await);
    assert_eq!(status, 404);
    let zero = format!("/dashboard/templates/reminder?token={token}&step=0");
    let (status, body, _) = text(get(&app, &zero, None).await);
    assert_eq!((status, body.contains("step: a whole number")), (400, true));
}

/// GIVEN the same stored set in the DynamoDB config table (moto) WHEN its German page is asked through
/// the ingest Lambda THEN it renders the stored subject.
#[tokio::test]
async fn given_a_stored_set_on_aws_when_its_page_is_asked_through_the_lambda_then_it_renders_the_stored_subject() {
    let stack = Stack::create(Moto::global().clients().await, 3).await;
    let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
    let (set, brand) = stored_reminder();
    let templates =
        cartback_aws::templates::DynamoTemplateStore::new(stack.clients.dynamodb.clone(), &stack.config_table);
    templates.put_template(&set).await.unwrap();
    templates.put_brand(&brand).await.unwrap();
    let app = stack.http_app(TestClock::new(now));
    let token = dashboard_token(&stack.secret(), now.timestamp() + 3600);
    let mut event = apigw_event("apigw-get-cart.json");
    event.raw_path = Some("/dashboard/templates/reminder".to_owned());
    event.request_context.http.path = Some("/dashboard/templates/reminder".to_owned());
    event.raw_query_string = Some(format!("token={token}&locale=de"));

    let answer = handlers::ingest(&app, event).await;

    assert_eq!(answer.status_code, 200, "{:?}", answer.body);
    let html = match answer.body {
        Some(aws_lambda_events::encodings::Body::Text(text)) => text,
        other => panic!("not a text body: {other:?}"),
    };
    assert!(html.contains(r#"<td id="email-subject">Alex, Küchenladen-Warenkorb wartet</td>"#), "{html}");
}
