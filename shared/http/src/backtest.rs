//! `/dashboard/backtest`: paste or upload a draft campaign (TOML) and see
//! what it would have done over the stored history, beside the live
//! campaign (the report `cartback backtest` prints). Served where a
//! [`HistoryReader`] is at hand (`cartback dev`); on AWS a full history does
//! not fit in one API Gateway request, so the CLI's `--aws` is the way there.
//!
//! GET shows the form; POST (`multipart/form-data`, no script needed) runs
//! the backtest. Both need the dashboard link's token, checked against real
//! time as on `/dashboard`. The report holds counts, reason codes and cart
//! ids only; every text shown is escaped.
//!
//! A backtest is seconds to minutes of CPU: it runs on a blocking thread
//! (the server keeps answering), one at a time; a second request meanwhile
//! is answered 503 with `Retry-After` (a queue would only hold connections
//! open past any proxy's timeout).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use cartback_core::api::Api;
use cartback_core::backtest::{self, BacktestReport, Options, Outcome};
use cartback_core::campaign::Campaign;
use cartback_core::ports::HistoryReader;
use cartback_core::signing::{verify_dashboard_token, LinkError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::dashboard::{escape, refusal_page};

/// The largest form taken: a campaign file is a few kilobytes.
pub const MAX_FORM_BYTES: usize = 256 * 1024;

/// Seconds a client is told to wait while another backtest runs.
pub const RETRY_AFTER_SECONDS: u64 = 30;

#[derive(Clone)]
struct Backtests {
    api: Arc<Api>,
    history: Arc<dyn HistoryReader>,
    /// One permit: the backtest running now.
    running: Arc<Semaphore>,
}

/// The backtest page's routes, to merge into [`crate::router`]'s.
pub fn backtest_router(api: Arc<Api>, history: Arc<dyn HistoryReader>) -> Router {
    Router::new()
        .route("/dashboard/backtest", get(form_page).post(run_page))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(Backtests { api, history, running: Arc::new(Semaphore::new(1)) })
}

/// The form's fields, as posted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BacktestForm {
    pub token: String,
    pub toml: String,
    pub against: String,
    pub from: String,
    pub to: String,
}

fn refused(api: &Api, token: &str) -> Option<Response> {
    let sentence = if token.is_empty() {
        "This page needs a dashboard link."
    } else {
        match verify_dashboard_token(&api.settings.secret, token, api.wall_clock.now()) {
            Ok(_) => return None,
            Err(LinkError::Expired) => "This dashboard link has expired.",
            Err(_) => "This dashboard link is not valid.",
        }
    };
    Some(crate::html_response(StatusCode::UNAUTHORIZED, refusal_page(sentence)))
}

async fn form_page(
    State(state): State<Backtests>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let token = query.get("token").cloned().unwrap_or_default();
    if let Some(refusal) = refused(&state.api, &token) {
        return refusal;
    }
    let form = BacktestForm { token, ..Default::default() };
    crate::html_response(StatusCode::OK, page(&form, None))
}

async fn run_page(State(state): State<Backtests>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let form = match parse_form(content_type, &body) {
        Ok(form) => form,
        Err(error) => return crate::html_response(StatusCode::BAD_REQUEST, refusal_page(&error)),
    };
    if let Some(refusal) = refused(&state.api, &form.token) {
        return refusal;
    }
    let bad = |field: &str, message: String| {
        let error = format!("{field}: {message}");
        crate::html_response(StatusCode::BAD_REQUEST, page(&form, Some(Err(&error))))
    };
    let draft = match Campaign::from_toml(&form.toml) {
        Ok(draft) => draft,
        Err(problems) => {
            let text = problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; ");
            return bad("campaign", text);
        }
    };
    let day = |field: &str, text: &str| {
        let text = text.trim();
        (!text.is_empty())
            .then(|| {
                text.parse::<chrono::NaiveDate>().map_err(|_| format!("{field}: {text:?} is not a date (YYYY-MM-DD)"))
            })
            .transpose()
    };
    let (from, to) = match (day("from", &form.from), day("to", &form.to)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => {
            return crate::html_response(StatusCode::BAD_REQUEST, page(&form, Some(Err(&e))));
        }
    };
    let Ok(running) = state.running.clone().try_acquire_owned() else {
        let sentence = format!(
            "Another backtest is running; they run one at a time. Please try again in {RETRY_AFTER_SECONDS} seconds."
        );
        let mut busy = crate::html_response(StatusCode::SERVICE_UNAVAILABLE, refusal_page(&sentence));
        busy.headers_mut().insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        return busy;
    };
    match run(&state, draft, &form, (from, to), running).await {
        Ok(Ok(report)) => crate::html_response(StatusCode::OK, page(&form, Some(Ok(&report)))),
        Ok(Err(error)) => crate::html_response(StatusCode::BAD_REQUEST, page(&form, Some(Err(&error)))),
        Err(error) => {
            tracing::error!(%error, "the backtest could not read the history");
            let sentence = "The history could not be read just now. Please try again in a minute.";
            crate::html_response(StatusCode::SERVICE_UNAVAILABLE, refusal_page(sentence))
        }
    }
}

/// Reads the history and runs the backtest, holding `running` until the
/// replay is over (even when the client has gone): the report, or a
/// sentence naming the field to fix; `Err` only when storage failed.
async fn run(
    state: &Backtests,
    draft: Campaign,
    form: &BacktestForm,
    period: (Option<chrono::NaiveDate>, Option<chrono::NaiveDate>),
    running: OwnedSemaphorePermit,
) -> Result<Result<BacktestReport, String>, cartback_core::ports::PortError> {
    let api = &state.api;
    let history = backtest::load_history(&*state.history, &mut |_| {}).await?;
    let live = api.ingest.campaigns.get().await?;
    let against = match form.against.trim() {
        "" => history.default_against(&live, &draft.id),
        id => Some(id.to_owned()),
    };
    let today = api.clock.now().date_naive();
    let prices = &api.settings.prices;
    let measured = match &against {
        Some(id) => backtest::measured_rates(&*api.store, &live, id, &history, period, prices, today).await?,
        None => None,
    };
    let options = Options {
        draft,
        against,
        from: period.0,
        to: period.1,
        channels: api.settings.channels.clone(),
        prices: prices.clone(),
        until: None,
    };
    // Off the async runtime: the replay is CPU-bound and the server keeps answering.
    let replay = tokio::task::spawn_blocking(move || {
        let report = backtest::run(&history, &live, &options, measured.as_ref(), &mut |_| {});
        // The next backtest may start once this one's history is freed.
        drop(history);
        drop(running);
        report
    });
    let report = replay.await.map_err(|e| cartback_core::ports::PortError::Unavailable("backtest", Box::new(e)))?;
    Ok(report.map_err(|e| {
        // The CLI's flag names read as the form's fields here.
        e.to_string().replace("--against", "against").replace("--from", "from").replace("--to", "to")
    }))
}

/// The fields of a `multipart/form-data` body (a `toml_file` upload,
/// when not empty, wins over the pasted `toml`) or of an
/// `application/x-www-form-urlencoded` one.
pub fn parse_form(content_type: &str, body: &[u8]) -> Result<BacktestForm, String> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        fields.extend(form_urlencoded::parse(body).into_owned());
    } else if content_type.starts_with("multipart/form-data") {
        let boundary = content_type
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("boundary="))
            .next()
            .map(|b| b.trim_matches('"'))
            .filter(|b| !b.is_empty())
            .ok_or("the form's content type names no boundary")?;
        let text = std::str::from_utf8(body).map_err(|_| "the form is not UTF-8 text")?;
        let delimiter = format!("--{boundary}");
        for part in text.split(delimiter.as_str()).skip(1) {
            if part.starts_with("--") {
                break;
            }
            let part = part.strip_prefix("\r\n").unwrap_or(part);
            let Some((head, value)) = part.split_once("\r\n\r\n") else { continue };
            let name = head
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("name="))
                .next()
                .map(|n| n.trim_matches('"').to_owned());
            if let Some(name) = name {
                fields.insert(name, value.strip_suffix("\r\n").unwrap_or(value).to_owned());
            }
        }
    } else {
        return Err("the form must be posted as multipart/form-data or application/x-www-form-urlencoded".into());
    }
    let mut take = |name: &str| fields.remove(name).unwrap_or_default();
    let (uploaded, pasted) = (take("toml_file"), take("toml"));
    Ok(BacktestForm {
        token: take("token"),
        toml: if uploaded.trim().is_empty() { pasted } else { uploaded },
        against: take("against"),
        from: take("from"),
        to: take("to"),
    })
}

/// The page: the form, then the report (or what to fix).
pub fn page(form: &BacktestForm, outcome: Option<Result<&BacktestReport, &String>>) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        concat!(
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8">"#,
            r#"<meta name="referrer" content="no-referrer">"#,
            r#"<meta name="viewport" content="width=device-width,initial-scale=1">"#,
            r#"<title>Cartback backtest</title><style>{}</style></head><body><header>"#,
            r#"<h1>Cartback: backtest a draft campaign</h1></header><main>"#,
            r#"<form method="post" action="" enctype="multipart/form-data" id="backtest">"#,
            r#"<input type="hidden" name="token" value="{}">"#,
            r#"<label>Draft campaign (TOML)<textarea name="toml" rows="14" cols="70">{}</textarea></label>"#,
            r#"<label>or upload a file<input type="file" name="toml_file" accept=".toml,text/plain"></label>"#,
            r#"<label>Against live campaign<input name="against" value="{}" placeholder="the busiest"></label>"#,
            r#"<label>From<input type="date" name="from" value="{}"></label>"#,
            r#"<label>To<input type="date" name="to" value="{}"></label>"#,
            r#"<button type="submit">Backtest</button></form>"#,
        ),
        crate::dashboard::STYLE,
        escape(&form.token),
        escape(&form.toml),
        escape(&form.against),
        escape(&form.from),
        escape(&form.to),
    );
    match outcome {
        Some(Ok(report)) => html.push_str(&report_html(report)),
        Some(Err(error)) => {
            let _ = write!(html, r#"<section><p class="error" id="form-error">{}</p></section>"#, escape(error));
        }
        None => {}
    }
    html.push_str("</main></body></html>");
    html
}

fn money(amounts: &cartback_core::measure::report::Money) -> String {
    if amounts.is_empty() {
        return "-".into();
    }
    let parts: Vec<String> = amounts.iter().map(|(c, a)| format!("{a} {}", escape(c))).collect();
    parts.join(" + ")
}

/// The report as tables; every count carries `data-field` (its path in the report's JSON).
pub fn report_html(report: &BacktestReport) -> String {
    let mut html = String::from(r#"<section id="report">"#);
    let _ = write!(
        html,
        concat!(
            r#"<h2>Draft {}</h2><p>Carts <b data-field="carts">{}</b>, entering <b data-field="entering">{}</b> "#,
            r#"(<span data-field="held_out">{}</span> held out), vouchers <b data-field="vouchers.issued">{}</b> "#,
            r#"worth {}, sending cost {}.</p>"#,
        ),
        escape(&report.campaign_id),
        report.carts,
        report.entering,
        report.held_out,
        report.vouchers.issued,
        money(&report.vouchers.face_value),
        money(&report.cost),
    );
    html.push_str(
        "<table id=\"steps\"><tr><th>Step</th><th>Channel</th><th>Sent</th><th>Held out</th><th>Deferred</th>\
         <th>Live sent</th><th>Difference</th></tr>",
    );
    for (i, row) in report.steps.iter().enumerate() {
        let optional = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let _ = write!(
            html,
            concat!(
                r#"<tr><td>{}</td><td>{}</td><td data-field="steps.{i}.sent">{}</td><td>{}</td><td>{}</td>"#,
                r#"<td data-field="steps.{i}.live_sent">{}</td><td>{}</td></tr>"#,
            ),
            row.step,
            row.channel.as_str(),
            row.sent,
            row.held_out,
            row.deferred,
            optional(row.live_sent.map(|v| v.to_string())),
            optional(row.difference.map(|d| format!("{d:+}"))),
            i = i,
        );
    }
    html.push_str("</table>");
    for (title, id, rows) in [
        ("Suppressed", "suppressed", &report.suppressed),
        ("Deferred by quiet hours, then stopped", "deferred_then_stopped", &report.deferred_then_stopped),
    ] {
        if rows.is_empty() {
            continue;
        }
        let _ = write!(html, "<h2>{title}</h2><table id=\"{id}\"><tr><th>Step</th><th>Reason</th><th>Carts</th></tr>");
        for (i, s) in rows.iter().enumerate() {
            let _ = write!(
                html,
                r#"<tr><td>{}</td><td>{}</td><td data-field="{id}.{i}.carts">{}</td></tr>"#,
                s.step,
                s.code.as_str(),
                s.carts
            );
        }
        html.push_str("</table>");
    }
    if let Some(against) = &report.against {
        let _ = write!(
            html,
            concat!(
                r#"<h2>Against live campaign {}</h2><p>It entered {} carts and sent {} messages; "#,
                r#"<b data-field="against.carts_deciding_differently">{}</b> carts decide differently.</p>"#,
            ),
            escape(&against.campaign_id),
            against.live_entering,
            against.live_sent,
            against.carts_deciding_differently,
        );
        if against.replay_mismatches > 0 {
            let _ = write!(
                html,
                r#"<p class="note">On {} carts, replaying the live campaign does not give what it sent.</p>"#,
                against.replay_mismatches
            );
        }
        html.push_str(concat!(
            r#"<table id="differing"><tr><th>Cart</th><th>Draft sends</th><th>Live sent</th>"#,
            "<th>First difference</th></tr>"
        ));
        for cart in &against.differing {
            let said = |d: &Option<backtest::Traced>| {
                d.as_ref()
                    .map_or_else(|| "nothing more".into(), |d| format!("{} (step {})", d.code.as_str(), d.step + 1))
            };
            let first = cart
                .first_difference
                .as_ref()
                .map_or_else(String::new, |(draft, live)| format!("draft {}, live {}", said(draft), said(live)));
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(cart.cart_id.as_str()),
                escape(&cart.draft_sent.join(" ")),
                escape(&cart.live_sent.join(" ")),
                escape(&first)
            );
        }
        html.push_str("</table>");
        for trace in &against.sample {
            let _ =
                write!(html, "<h2>Draft timeline of {}</h2><table class=\"timeline\">", escape(trace.cart_id.as_str()));
            for d in &trace.decisions {
                let channel = match d.outcome {
                    Outcome::Sent | Outcome::HeldOut => d.channel.map_or("", |c| c.as_str()),
                    _ => "",
                };
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>step {} {}</td><td>{}</td></tr>",
                    d.at.to_rfc3339(),
                    d.code.as_str(),
                    d.step + 1,
                    channel,
                    escape(&d.message)
                );
            }
            html.push_str("</table>");
        }
    }
    let estimate = &report.estimate;
    let _ = write!(html, r#"<h2>Estimated outcome</h2><p id="estimate">{}</p>"#, escape(&estimate.basis));
    if let (Some(orders), Some(ci)) = (estimate.recovered_orders, estimate.recovered_orders_ci95) {
        let _ = write!(
            html,
            "<p>Recovered orders {orders:.1} ({:.1} to {:.1}){}, revenue {}</p>",
            ci.0,
            ci.1,
            if estimate.recovered_orders_by_currency.len() > 1 {
                let split =
                    estimate.recovered_orders_by_currency.iter().map(|(c, n)| format!("{n:.1} in {}", escape(c)));
                format!(" (of which {})", split.collect::<Vec<_>>().join(", "))
            } else {
                String::new()
            },
            money(&estimate.recovered_revenue)
        );
    }
    html.push_str("</section>");
    html
}
