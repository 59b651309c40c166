//! `GET /dashboard/templates`: the template sets as customers get them, on
//! both runtimes, behind the dashboard link (`?token=`).
//!
//! - `/dashboard/templates`: every set (stored, or shipped when none is
//!   stored under its name) with its locales;
//! - `/dashboard/templates/{name}?locale=de&step=1`: one set in one locale
//!   rendered for the sample cart: subject, preheader, the email framed at
//!   phone and desktop widths, the plain-text part, SMS, push, web push and
//!   in-app texts;
//! - `/dashboard/templates/{name}/email?locale=de&step=1`: the email's HTML
//!   alone, as a mail client gets it (what the frames show, and what the
//!   browser test screenshots).
//!
//! Links are relative, so the pages work under any path prefix (an API
//! Gateway stage). The email page may be framed by this origin only and
//! runs no script; its images load from https.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use cartback_core::api::Api;
use cartback_core::template::{self, Brand, PreviewInput, TemplateName, TemplateSet};

use crate::dashboard::escape;
use crate::{dashboard_access, dashboard_failure, html_response, html_response_with, ApiError};

/// The set page frames the email page of the same origin.
const FRAMING_POLICY: &str = concat!(
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-src 'self'; ",
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
);

/// The email page: its own inline styles and https images, framed by this
/// origin only, no script.
const EMAIL_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'self'; base-uri 'none'";

const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#1d2433;background:#f5f6f8}\
header{background:#1d2433;color:#fff;padding:12px 24px}header h1{margin:0;font-size:20px}\
header a{color:#fff}main{padding:16px 24px;max-width:1500px}section{background:#fff;margin-top:16px;\
padding:12px 16px;border-radius:6px}h2{font-size:16px;margin:0 0 8px}table{border-collapse:collapse}\
th,td{text-align:left;vertical-align:top;padding:4px 8px;border-bottom:1px solid #e3e6eb}\
.frames{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}iframe{border:1px solid #c9ced8;\
background:#fff;height:900px}pre{white-space:pre-wrap;background:#f5f6f8;padding:8px}\
.error{color:#a3120b;font-weight:600}.note{font-size:12px;color:#5b6475}a.on{font-weight:700}";

/// What the pages read from the query: the link's token, and the locale and
/// step to render.
struct Shown {
    token: String,
    locale: Option<String>,
    step: u32,
}

impl Shown {
    /// `token=...&locale=...&step=...`, percent-encoded, for links.
    fn query(&self, locale: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("token", &self.token);
        if let Some(locale) = locale.or(self.locale.as_deref()) {
            query.append_pair("locale", locale);
        }
        query.append_pair("step", &self.step.to_string());
        query.finish()
    }
}

/// The token checked, then the locale and step read (`step` is 1 to 20).
fn shown(api: &Api, query: Result<Query<BTreeMap<String, String>>, QueryRejection>) -> Result<Shown, Box<Response>> {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let token = dashboard_access(api, &query)?.to_owned();
    let step = match query.get("step").map(|s| s.parse::<u32>()) {
        None => 1,
        Some(Ok(step @ 1..=20)) => step,
        Some(_) => {
            return Err(Box::new(page_error(StatusCode::BAD_REQUEST, "step: a whole number from 1 to 20")));
        }
    };
    let locale = query.get("locale").filter(|l| !l.is_empty()).cloned();
    Ok(Shown { token, locale, step })
}

fn storage_failure(error: cartback_core::ports::PortError) -> Box<Response> {
    Box::new(dashboard_failure(ApiError::Storage(error)))
}

fn page_error(status: StatusCode, sentence: &str) -> Response {
    html_response(status, crate::dashboard::refusal_page(sentence))
}

/// The stored sets, and the shipped ones for names not stored, by name,
/// each with where it comes from.
async fn effective_sets(api: &Api) -> Result<BTreeMap<TemplateName, (TemplateSet, &'static str)>, Box<Response>> {
    let stored = api.templates.list_templates().await.map_err(storage_failure)?;
    let mut sets: BTreeMap<_, _> =
        template::shipped().into_iter().map(|set| (set.name.clone(), (set, "shipped"))).collect();
    sets.extend(stored.into_iter().map(|set| (set.name.clone(), (set, "stored"))));
    Ok(sets)
}

/// The set a path names, the brand, and the preview input for the query.
async fn rendered(
    api: &Api,
    name: Result<Path<String>, PathRejection>,
    shown: &Shown,
) -> Result<(TemplateSet, Result<template::Preview, String>), Box<Response>> {
    let not_found = || Box::new(page_error(StatusCode::NOT_FOUND, "There is no such template set."));
    let Some(name) = name.ok().and_then(|Path(name)| TemplateName::parse(&name).ok()) else {
        return Err(not_found());
    };
    let mut sets = effective_sets(api).await?;
    let (set, _) = sets.remove(&name).ok_or_else(not_found)?;
    let brand = api.templates.brand().await.map_err(storage_failure)?;
    let input = PreviewInput::sample(shown.step, Some(shown.locale.as_deref().unwrap_or(&set.default_locale)));
    // No brand stored: what a send uses then (no name or logo, the settings' postal address).
    let brand = brand.unwrap_or_else(|| Brand::fallback(&api.settings.postal_address));
    let preview = template::preview(&set, &brand, &input).map_err(|e| e.to_string());
    Ok((set, preview))
}

fn head(title: &str) -> String {
    format!(
        concat!(
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8">"#,
            r#"<meta name="referrer" content="no-referrer">"#,
            r#"<meta name="viewport" content="width=device-width,initial-scale=1">"#,
            r#"<title>{}</title><style>{}</style></head><body>"#,
        ),
        escape(title),
        STYLE
    )
}

/// `GET /dashboard/templates`.
pub(crate) async fn list_page(
    State(api): State<Arc<Api>>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Response {
    let shown = match shown(&api, query) {
        Ok(shown) => shown,
        Err(refusal) => return *refusal,
    };
    let sets = match effective_sets(&api).await {
        Ok(sets) => sets,
        Err(failure) => return *failure,
    };
    let back = form_urlencoded::Serializer::new(String::new()).append_pair("token", &shown.token).finish();
    let mut html = head("Cartback templates");
    let _ = write!(
        html,
        concat!(
            r#"<header><h1>Cartback: message templates</h1><a href="../dashboard?{}">Back to the evaluation</a>"#,
            r#"</header><main><section><h2>Template sets</h2><table id="sets">"#,
            "<tr><th>Set</th><th>Source</th><th>Default locale</th><th>Locales</th></tr>"
        ),
        escape(&back)
    );
    for (name, (set, source)) in &sets {
        let locales = set
            .locales
            .keys()
            .map(|locale| {
                let href = format!("templates/{name}?{}", shown.query(Some(locale)));
                format!(r#"<a href="{}">{}</a>"#, escape(&href), escape(locale))
            })
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            html,
            concat!(
                r#"<tr data-set="{name}"><td><a href="{}">{name}</a></td><td>{source}</td><td>{}</td>"#,
                "<td>{locales}</td></tr>"
            ),
            escape(&format!("templates/{name}?{}", shown.query(None))),
            escape(&set.default_locale),
            name = name,
            source = source,
            locales = locales,
        );
    }
    html.push_str("</table>");
    if sets.is_empty() {
        html.push_str(r#"<p class="note">No template set is stored or shipped.</p>"#);
    }
    html.push_str(concat!(
        r#"<p class="note">Change them with <code>cartback template export DIR</code>, "#,
        r#"<code>cartback template apply DIR</code>.</p></section></main></body></html>"#
    ));
    html_response(StatusCode::OK, html)
}

/// `GET /dashboard/templates/{name}`.
pub(crate) async fn set_page(
    State(api): State<Arc<Api>>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Response {
    let shown = match shown(&api, query) {
        Ok(shown) => shown,
        Err(refusal) => return *refusal,
    };
    let (set, preview) = match rendered(&api, name, &shown).await {
        Ok(rendered) => rendered,
        Err(refusal) => return *refusal,
    };
    let name = set.name.as_str();
    let mut html = head(&format!("Template {name}"));
    let list = form_urlencoded::Serializer::new(String::new()).append_pair("token", &shown.token).finish();
    let _ = write!(
        html,
        r#"<header><h1>Template set {name}</h1><a href="../templates?{}">All template sets</a></header><main>"#,
        escape(&list)
    );
    let current = shown.locale.clone().unwrap_or_else(|| set.default_locale.clone());
    html.push_str(r#"<section><h2>Locale</h2><p id="locales">"#);
    for locale in set.locales.keys() {
        let class = if *locale == current { r#" class="on""# } else { "" };
        let href = format!("{name}?{}", shown.query(Some(locale)));
        let _ = write!(html, r#"<a{class} href="{}">{}</a> "#, escape(&href), escape(locale));
    }
    let _ = write!(
        html,
        r#"</p><p class="note">Step {} for a sample cart, as a customer with locale {} reads it.</p></section>"#,
        shown.step,
        escape(&current)
    );
    match preview {
        Err(error) => {
            let _ = write!(html, r#"<section><p class="error" id="render-error">{}</p></section>"#, escape(&error));
        }
        Ok(preview) => {
            let email = escape(&format!("{name}/email?{}", shown.query(Some(&current))));
            let _ = write!(
                html,
                concat!(
                    r#"<section><h2>Email</h2><table><tr><th>Subject</th><td id="email-subject">{}</td></tr>"#,
                    r#"<tr><th>Preheader</th><td id="email-preheader">{}</td></tr></table>"#,
                    r#"<div class="frames"><iframe sandbox title="the email at 375 px" width="375" src="{email}">"#,
                    r#"</iframe><iframe sandbox title="the email at 1024 px" width="1024" src="{email}"></iframe>"#,
                    r#"</div><h2>Plain-text part</h2><pre id="email-text">{}</pre></section>"#,
                    r#"<section><h2>SMS, push, web push, in-app</h2><table>"#,
                    r#"<tr><th>SMS</th><td id="sms">{}</td></tr>"#,
                    r#"<tr><th>Push</th><td id="push"><b>{}</b><br>{}</td></tr>"#,
                    r#"<tr><th>Web push</th><td id="web-push"><b>{}</b><br>{}</td></tr>"#,
                    r#"<tr><th>In-app</th><td id="in-app"><b>{}</b><br>{}</td></tr></table></section>"#,
                ),
                escape(&preview.email_subject),
                escape(&preview.email_preheader),
                escape(&preview.email_text),
                escape(&preview.sms),
                escape(&preview.push_title),
                escape(&preview.push_body),
                escape(&preview.web_push_title),
                escape(&preview.web_push_body),
                escape(&preview.in_app_title),
                escape(&preview.in_app_body),
                email = email,
            );
        }
    }
    html.push_str("</main></body></html>");
    html_response_with(StatusCode::OK, html, FRAMING_POLICY)
}

/// `GET /dashboard/templates/{name}/email`: the email's HTML as sent.
pub(crate) async fn email_page(
    State(api): State<Arc<Api>>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Response {
    let shown = match shown(&api, query) {
        Ok(shown) => shown,
        Err(refusal) => return *refusal,
    };
    match rendered(&api, name, &shown).await {
        Ok((_, Ok(preview))) => html_response_with(StatusCode::OK, preview.email_html, EMAIL_POLICY),
        Ok((set, Err(error))) => {
            let sentence = format!("Template set {} does not render: {error}", set.name);
            page_error(StatusCode::INTERNAL_SERVER_ERROR, &sentence)
        }
        Err(refusal) => *refusal,
    }
}
