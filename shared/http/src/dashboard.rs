//! The evaluation dashboard: one server-rendered HTML page (inline SVG charts, inline CSS, no script) drawn
//! from a [`Report`]. Everything it needs is in the binary, so it works offline and on both runtimes.
//!
//! Every number shown is an element with `data-field` (its path in the report's JSON entry for the shown
//! campaign, e.g. `lift_ci95` or `by_channel.email.sent`), `data-unit` (how it is shown) and `data-value`
//! (the JSON value itself), so a test can compare what a person sees with `GET /v1/report`. A Report holds
//! no personal data; campaign ids are user data and are escaped like every other text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value;

use cartback_core::measure::report::{CampaignReport, Report, ReportQuery};
use cartback_core::service::{parse_query, ReportError, WINDOW_HOURS};

use crate::svg::{self, Bar, Pair};

/// What the dashboard's form asks for: the report's own query (parsed by the same rules as
/// `GET /v1/report`), and the values the form shows again.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardForm {
    /// `None`: every campaign together (the report's total).
    pub campaign: Option<String>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub attribution_window_hours: i64,
    pub query: ReportQuery,
}

/// A form field that cannot be used, named as the form names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl DashboardForm {
    /// Reads the query string's fields (the names `GET /v1/report` takes, which parses them); a field left
    /// empty (the "All campaigns" choice, a cleared date) takes its default: every campaign, the fortnight
    /// ending `today`, a 24-hour window.
    pub fn parse(query: &BTreeMap<String, String>, today: NaiveDate) -> Result<DashboardForm, FieldError> {
        let params: BTreeMap<String, String> = query
            .iter()
            .filter(|(name, value)| name.as_str() != "token" && !value.trim().is_empty())
            .map(|(name, value)| (name.clone(), value.trim().to_owned()))
            .collect();
        let query = parse_query(&params, today).map_err(|error| match error {
            ReportError::BadParameter { parameter, reason } => FieldError { field: parameter, reason },
            other => FieldError { field: "query".into(), reason: other.to_string() },
        })?;
        Ok(DashboardForm {
            campaign: query.campaign.clone(),
            from: query.from,
            to: query.to,
            attribution_window_hours: query.attribution_window.num_hours(),
            query,
        })
    }
}

/// Text made safe for HTML element content and quoted attribute values.
pub use cartback_core::render::escape_html as escape;

/// How a number is shown; `data-unit` carries it so a reader (or a test) knows how text and value relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// A whole number, as is.
    Count,
    /// A fraction shown as a percentage with one decimal ("12.3%").
    Percent,
    /// A difference of fractions shown in percentage points with one decimal and a sign ("+3.1 pts").
    Points,
    /// A number with one decimal.
    Number,
    /// A decimal amount, as the report writes it.
    Money,
    /// A sentence, as is.
    Text,
    /// A snake_case word shown as words ("not_enough_data" reads "not enough data").
    Label,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Count => "count",
            Unit::Percent => "percent",
            Unit::Points => "points",
            Unit::Number => "number",
            Unit::Money => "money",
            Unit::Text => "text",
            Unit::Label => "label",
        }
    }

    /// How one JSON value reads in this unit; an interval `[low, high]` reads "low to high".
    fn show(self, value: &Value) -> String {
        match value {
            Value::Array(ends) if ends.len() == 2 => format!("{} to {}", self.show(&ends[0]), self.show(&ends[1])),
            Value::Null => "n/a".into(),
            Value::String(text) if self == Unit::Label => text.replace('_', " "),
            Value::String(text) => text.clone(),
            Value::Number(n) => {
                let v = n.as_f64().unwrap_or(f64::NAN);
                // What rounds to zero reads as zero, never "-0.0".
                let tenths = |x: f64| if (x * 10.0).round() == 0.0 { 0.0 } else { x };
                match self {
                    Unit::Count => n.to_string(),
                    Unit::Percent => format!("{:.1}%", tenths(v * 100.0)),
                    Unit::Points => format!("{:+.1} pts", tenths(v * 100.0)),
                    Unit::Number | Unit::Money | Unit::Text | Unit::Label => format!("{:.1}", tenths(v)),
                }
            }
            other => other.to_string(),
        }
    }
}

/// Looks up a dotted path (`by_channel.email.sent`, `variants.0.lift`) in a JSON value.
fn at<'a>(root: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .try_fold(root, |v, key| match v {
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => v.get(key),
        })
        .unwrap_or(&Value::Null)
}

/// One shown number: its text and the attributes that tie it to the report's JSON.
fn field(entry: &Value, path: &str, unit: Unit) -> String {
    let value = at(entry, path);
    format!(
        r#"<span class="v" data-field="{}" data-unit="{}" data-value="{}">{}</span>"#,
        escape(path),
        unit.name(),
        escape(&value.to_string()),
        escape(&unit.show(value)),
    )
}

/// Amounts per currency: "EUR 12.50 · USD 3.00", each its own field; "none" when the map is empty.
fn money(entry: &Value, path: &str) -> String {
    if at(entry, path).is_null() {
        return field(entry, path, Unit::Money);
    }
    let amounts = at(entry, path).as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    if amounts.is_empty() {
        return format!(
            r#"<span class="none" data-field="{}" data-unit="money" data-value="{{}}">none</span>"#,
            escape(path)
        );
    }
    amounts
        .iter()
        .map(|currency| format!("{} {}", escape(currency), field(entry, &format!("{path}.{currency}"), Unit::Money)))
        .collect::<Vec<_>>()
        .join(" · ")
}

pub(crate) const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#1d2433;background:#f5f6f8}\
header{background:#1d2433;color:#fff;padding:12px 24px}header h1{margin:0;font-size:20px}header a{color:#fff}\
main{padding:16px 24px;max-width:1100px}form{display:flex;gap:12px;flex-wrap:wrap;align-items:end;\
background:#fff;padding:12px;border-radius:6px}label{display:flex;flex-direction:column;font-size:13px}\
input,select,button{font:inherit;padding:4px 6px}button{background:#2457c5;color:#fff;border:0;\
border-radius:4px;padding:6px 16px;cursor:pointer}section{background:#fff;margin-top:16px;padding:12px 16px;\
border-radius:6px}h2{font-size:16px;margin:0 0 8px}.verdict{font-size:18px;font-weight:600}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:10px}\
.tile{border:1px solid #e3e6eb;border-radius:6px;padding:8px}.tile .k{font-size:12px;color:#5b6475}\
.tile .big{font-size:20px}.ci{font-size:12px;color:#5b6475}table{border-collapse:collapse;width:100%}\
th,td{text-align:right;padding:4px 8px;border-bottom:1px solid #e3e6eb}th:first-child,td:first-child\
{text-align:left}.error{color:#a3120b;font-weight:600}.note{font-size:12px;color:#5b6475}\
svg text{font-size:12px;fill:#1d2433}svg .bar{fill:#2457c5}svg .first{fill:#2457c5}\
svg .second{fill:#e39b2d}svg .axis,svg .zero{stroke:#9aa3b2;stroke-dasharray:3 3}\
svg line.ci{stroke:#1d2433;stroke-width:2}svg .estimate{fill:#2457c5}";

/// The whole page: the form, then (with a report) every section, or (with an error) what to fix.
pub fn page(form: &DashboardForm, token: &str, campaigns: &[String], body: Result<&Report, &FieldError>) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        concat!(
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8">"#,
            r#"<meta name="referrer" content="no-referrer">"#,
            r#"<meta name="viewport" content="width=device-width,initial-scale=1">"#,
            r#"<title>Cartback evaluation</title><style>{STYLE}</style></head><body><header>"#,
            r#"<h1>Cartback: what recovery really earns</h1>"#,
            r#"<a id="templates-link" href="dashboard/templates?{TEMPLATES}">Message templates</a></header><main>"#,
        ),
        STYLE = STYLE,
        TEMPLATES = escape(&form_urlencoded::Serializer::new(String::new()).append_pair("token", token).finish()),
    );
    html.push_str(&form_html(form, token, campaigns));
    match body {
        Ok(report) => html.push_str(&report_html(form, report)),
        Err(error) => {
            let _ = write!(
                html,
                r#"<section><p class="error" id="form-error">{}</p></section>"#,
                escape(&error.to_string())
            );
        }
    }
    html.push_str("</main></body></html>");
    html
}

/// A refusal (no link, a bad one, an expired one) as a short page that says how to get a link.
pub fn refusal_page(sentence: &str) -> String {
    format!(
        concat!(
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Cartback evaluation</title>"#,
            r#"<style>{STYLE}</style></head><body><header><h1>Cartback: what recovery really earns</h1></header>"#,
            r#"<main><section><p class="error" id="refusal">{}</p>"#,
            r#"<p>Run <code>cartback dashboard</code> (add <code>--aws</code> for the AWS stack, <code>--url</code> "#,
            r#"for its address) and open the link it prints.</p>"#,
            r#"</section></main></body></html>"#,
        ),
        escape(sentence),
        STYLE = STYLE,
    )
}

fn form_html(form: &DashboardForm, token: &str, campaigns: &[String]) -> String {
    let mut html = String::from(r#"<form method="get" action="" id="query">"#);
    let _ = write!(html, r#"<input type="hidden" name="token" value="{}">"#, escape(token));
    html.push_str(r#"<label>Campaign<select name="campaign" id="campaign"><option value="">All campaigns</option>"#);
    let mut ids: BTreeSet<&str> = campaigns.iter().map(String::as_str).collect();
    if let Some(chosen) = &form.campaign {
        ids.insert(chosen);
    }
    for id in ids {
        let selected = if form.campaign.as_deref() == Some(id) { " selected" } else { "" };
        let _ = write!(html, r#"<option value="{0}"{selected}>{0}</option>"#, escape(id));
    }
    let _ = write!(
        html,
        concat!(
            r#"</select></label><label>From<input type="date" name="from" id="from" value="{}"></label>"#,
            r#"<label>To<input type="date" name="to" id="to" value="{}"></label>"#,
            r#"<label>Attribution window (hours)<input type="number" name="attribution_window_hours" "#,
            r#"id="attribution_window_hours" min="{}" max="{}" value="{}">"#,
            r#"</label>"#,
        ),
        form.from,
        form.to,
        WINDOW_HOURS.start(),
        WINDOW_HOURS.end(),
        form.attribution_window_hours
    );
    // Per-channel windows have no input of their own; a link that set them keeps them across Refresh.
    for (channel, window) in &form.query.channel_windows {
        let _ = write!(
            html,
            r#"<input type="hidden" name="window_hours_{}" value="{}">"#,
            channel.as_str(),
            window.num_hours()
        );
    }
    html.push_str(r#"<button type="submit" id="refresh">Refresh</button></form>"#);
    html
}

/// The shown entry: the chosen campaign's, or the total for every campaign.
fn shown<'a>(form: &DashboardForm, report: &'a Report) -> Option<&'a CampaignReport> {
    match &form.campaign {
        None => Some(&report.total),
        Some(id) => report.campaigns.iter().find(|c| &c.campaign_id == id),
    }
}

fn report_html(form: &DashboardForm, report: &Report) -> String {
    let Some(campaign) = shown(form, report) else {
        let id = form.campaign.as_deref().unwrap_or_default();
        return format!(
            r#"<section><p id="no-data">No cart entered campaign {} from {} to {}.</p></section>"#,
            escape(id),
            report.from,
            report.to
        );
    };
    let entry = serde_json::to_value(campaign).unwrap_or_default();
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<section id="report" data-campaign="{}" data-from="{}" data-to="{}" data-window="{}">"#,
        escape(&campaign.campaign_id),
        report.from,
        report.to,
        report.attribution_window_hours
    );
    let title = if campaign.campaign_id == "*" { "All campaigns".to_owned() } else { campaign.campaign_id.clone() };
    let shadow = if campaign.shadow { " (shadow: its treated carts got nothing)" } else { "" };
    let _ = write!(
        html,
        concat!(
            r#"<h2>{}{shadow}, {} to {}, {} h attribution window</h2><p class="verdict" id="verdict">{}</p>"#,
            r#"<p>Evidence: {}</p>"#,
        ),
        escape(&title),
        report.from,
        report.to,
        report.attribution_window_hours,
        field(&entry, "verdict", Unit::Text),
        field(&entry, "evidence", Unit::Label),
        shadow = shadow,
    );
    html.push_str(&headline_html(&entry, campaign));
    let _ = write!(
        html,
        r#"<p class="note">Intervals: {}; they stay valid however often the page is refreshed.</p></section>"#,
        escape(&report.interval_method)
    );
    html.push_str(&daily_html(campaign));
    html.push_str(&funnel_html(&entry, campaign));
    html.push_str(&channels_html(&entry, campaign));
    html.push_str(&variants_html(&entry, campaign));
    html.push_str(&segments_html(&entry, campaign));
    html.push_str(&vouchers_html(&entry, campaign));
    html
}

fn tile(title: &str, main: String, interval: Option<String>) -> String {
    let interval = interval.map(|ci| format!(r#"<div class="ci">95%: {ci}</div>"#)).unwrap_or_default();
    format!(r#"<div class="tile"><div class="k">{}</div><div class="big">{main}</div>{interval}</div>"#, escape(title))
}

fn headline_html(entry: &Value, campaign: &CampaignReport) -> String {
    let domain = svg::domain_with_zero([campaign.lift, campaign.lift_ci95.0, campaign.lift_ci95.1]);
    let lift_bar = svg::interval_bar(
        "Lift with its 95% interval; the dashed line is no effect",
        campaign.lift,
        (campaign.lift_ci95.0, campaign.lift_ci95.1),
        domain,
        220.0,
    );
    let tiles = [
        tile("Carts entered", field(entry, "entered", Unit::Count), None),
        tile("Treated", field(entry, "treated", Unit::Count), None),
        tile("Held out", field(entry, "held_out", Unit::Count), None),
        tile(
            "Recovered (treated / held out)",
            format!(
                "{} / {}",
                field(entry, "recovered_treated", Unit::Count),
                field(entry, "recovered_held_out", Unit::Count)
            ),
            None,
        ),
        tile(
            "Recovery rate, treated",
            field(entry, "recovery_rate_treated", Unit::Percent),
            Some(field(entry, "recovery_rate_treated_ci95", Unit::Percent)),
        ),
        tile(
            "Recovery rate, held out",
            field(entry, "recovery_rate_held_out", Unit::Percent),
            Some(field(entry, "recovery_rate_held_out_ci95", Unit::Percent)),
        ),
        tile(
            "Lift",
            format!("{}{lift_bar}", field(entry, "lift", Unit::Points)),
            Some(field(entry, "lift_ci95", Unit::Points)),
        ),
        tile(
            "Relative lift",
            field(entry, "relative_lift", Unit::Percent),
            Some(field(entry, "relative_lift_ci95", Unit::Percent)),
        ),
        tile(
            "Incremental orders",
            field(entry, "incremental_orders", Unit::Number),
            Some(field(entry, "incremental_orders_ci95", Unit::Number)),
        ),
        tile("Attributed revenue", money(entry, "attributed_revenue"), None),
        tile("Incremental revenue", money(entry, "incremental_revenue"), None),
        tile("Cost of messages", money(entry, "cost"), None),
        tile("Cost per incremental order", money(entry, "cost_per_incremental_order"), None),
        tile("Revenue per recipient", money(entry, "revenue_per_recipient"), None),
        tile(
            "Average order value: recovered / all orders",
            format!("{} / {}", money(entry, "aov_recovered"), money(entry, "aov_all_orders")),
            None,
        ),
    ];
    format!(r#"<div class="grid" id="headline">{}</div>"#, tiles.concat())
}

/// Recovered revenue per cart entered that day, treated against held out, one chart per currency: the
/// groups differ in size (a 10% holdout), so raw sums would hide the comparison that matters.
fn daily_html(campaign: &CampaignReport) -> String {
    let mut html =
        String::from(r#"<section id="daily"><h2>Daily recovered revenue per cart, treated against held out</h2>"#);
    let currencies: BTreeSet<&String> =
        campaign.days.iter().flat_map(|d| d.revenue_treated.keys().chain(d.revenue_held_out.keys())).collect();
    if currencies.is_empty() {
        html.push_str(r#"<p class="note">No recovered revenue in this period yet.</p></section>"#);
        return html;
    }
    let per_cart = |revenue: Option<&Decimal>, carts: u64| -> f64 {
        let revenue = revenue.copied().unwrap_or_default();
        if carts == 0 {
            0.0
        } else {
            (revenue / Decimal::from(carts)).to_f64().unwrap_or(0.0)
        }
    };
    for currency in currencies {
        let pairs: Vec<Pair> = campaign
            .days
            .iter()
            .map(|day| {
                let treated = day.revenue_treated.get(currency);
                let held_out = day.revenue_held_out.get(currency);
                let tip = |group: &str, revenue: Option<&Decimal>, carts: u64| {
                    format!(
                        "{} {group}: {currency} {} from {carts} carts",
                        day.day,
                        revenue.copied().unwrap_or_default()
                    )
                };
                Pair {
                    label: day.day.format("%m-%d").to_string(),
                    first: per_cart(treated, day.entered_treated),
                    second: per_cart(held_out, day.entered_held_out),
                    first_title: tip("treated", treated, day.entered_treated),
                    second_title: tip("held out", held_out, day.entered_held_out),
                }
            })
            .collect();
        let title = format!("Recovered revenue per entered cart in {currency}, per day");
        let _ = write!(html, "<h3>{}</h3>", escape(currency));
        html.push_str(&svg::paired_columns(&title, ("treated", "held out"), &pairs, 1000.0));
        let tallest = pairs.iter().flat_map(|p| [p.first, p.second]).fold(0.0_f64, f64::max);
        let _ = write!(
            html,
            r#"<p class="note">The tallest column is {} {tallest:.2} per entered cart; each column's tooltip gives
            its day's revenue and carts.</p>"#,
            escape(currency)
        );
    }
    html.push_str("</section>");
    html
}

fn funnel_html(entry: &Value, campaign: &CampaignReport) -> String {
    let steps = [
        ("Carts entered", "entered", campaign.entered),
        ("Treated", "treated", campaign.treated),
        ("Messages sent", "messages.sent", campaign.messages.sent),
        ("Opened by a person", "messages.opened_human", campaign.messages.opened_human),
        ("Clicked", "messages.clicked", campaign.messages.clicked),
        ("Recovered (treated)", "recovered_treated", campaign.recovered_treated),
    ];
    let bars: Vec<Bar> = steps
        .iter()
        .map(|(label, _, value)| Bar { label: (*label).into(), value: *value as f64, text: value.to_string() })
        .collect();
    let mut html = String::from(r#"<section id="funnel"><h2>Funnel</h2>"#);
    html.push_str(&svg::horizontal_bars("Funnel from carts entered to recovered", &bars, 640.0));
    html.push_str("<p>");
    let figures: Vec<String> = steps
        .iter()
        .map(|(label, path, _)| format!("{}: {}", escape(label), field(entry, path, Unit::Count)))
        .collect();
    html.push_str(&figures.join(" · "));
    let _ = write!(
        html,
        concat!(
            r#"</p>"#,
            r#"<p class="note">Machine opens (privacy proxies, scanners), not counted above: {}. Bounced {}, "#,
            r#"complained {}, unsubscribed {}.</p>"#,
            r#"<p class="note">Customers' answers on the preference page: already bought {}, "#,
            r#"not interested {}, too many messages {}, other {}.</p>"#,
            r#"</section>"#,
        ),
        field(entry, "messages.opened_machine", Unit::Count),
        field(entry, "messages.bounced", Unit::Count),
        field(entry, "messages.complained", Unit::Count),
        field(entry, "messages.unsubscribed", Unit::Count),
        field(entry, "answers.already_bought", Unit::Count),
        field(entry, "answers.not_interested", Unit::Count),
        field(entry, "answers.too_many_messages", Unit::Count),
        field(entry, "answers.other", Unit::Count),
    );
    html
}

fn channels_html(entry: &Value, campaign: &CampaignReport) -> String {
    let mut html = String::from(r#"<section id="channels"><h2>Channel mix</h2>"#);
    if campaign.by_channel.is_empty() {
        html.push_str(r#"<p class="note">No message in this period.</p></section>"#);
        return html;
    }
    let bars: Vec<Bar> = campaign
        .by_channel
        .iter()
        .map(|(channel, counts)| Bar {
            label: channel.as_str().replace('_', " "),
            value: counts.sent as f64,
            text: format!("{} sent", counts.sent),
        })
        .collect();
    html.push_str(&svg::horizontal_bars("Messages sent per channel", &bars, 640.0));
    html.push_str(
        "<table><tr><th>Channel</th><th>Sent</th><th>Delivered</th><th>Opened (person)</th><th>Clicked</th>\
         <th>Bounced</th><th>Attributed orders</th></tr>",
    );
    for channel in campaign.by_channel.keys() {
        let path = |name: &str| format!("by_channel.{}.{name}", channel.as_str());
        let _ = write!(html, "<tr><td>{}</td>", escape(channel.as_str()));
        for name in ["sent", "delivered", "opened_human", "clicked", "bounced", "attributed_orders"] {
            let _ = write!(html, "<td>{}</td>", field(entry, &path(name), Unit::Count));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></section>");
    html
}

fn variants_html(entry: &Value, campaign: &CampaignReport) -> String {
    let mut html = String::from(r#"<section id="variants"><h2>Variants</h2>"#);
    if campaign.variants.is_empty() {
        html.push_str(r#"<p class="note">This campaign runs no experiment.</p></section>"#);
        return html;
    }
    let domain = svg::domain_with_zero(
        campaign.variants.iter().flat_map(|v| [v.difference, v.difference_ci95.0, v.difference_ci95.1]),
    );
    html.push_str(
        "<table><tr><th>Variant</th><th>Entered</th><th>Recovered</th><th>Recovery rate (95%)</th>\
         <th>Against control (95%)</th><th></th><th>Chance it beats control</th><th>Evidence</th></tr>",
    );
    for (i, variant) in campaign.variants.iter().enumerate() {
        let path = |name: &str| format!("variants.{i}.{name}");
        let name = if variant.control { format!("{} (control)", variant.variant) } else { variant.variant.clone() };
        let bar = svg::interval_bar(
            &format!("{name}: difference against control with its 95% interval"),
            variant.difference,
            (variant.difference_ci95.0, variant.difference_ci95.1),
            domain,
            200.0,
        );
        let _ = write!(
            html,
            concat!(
                r#"<tr data-variant="{}"><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{} ({})</td>"#,
                r#"<td>{bar}</td><td>{}</td><td>{}</td></tr>"#,
            ),
            escape(&variant.variant),
            escape(&name),
            field(entry, &path("entered"), Unit::Count),
            field(entry, &path("recovered"), Unit::Count),
            field(entry, &path("recovery_rate"), Unit::Percent),
            field(entry, &path("recovery_rate_ci95"), Unit::Percent),
            field(entry, &path("difference"), Unit::Points),
            field(entry, &path("difference_ci95"), Unit::Points),
            field(entry, &path("probability_beats_control"), Unit::Percent),
            field(entry, &path("evidence"), Unit::Label),
            bar = bar,
        );
    }
    html.push_str("</table></section>");
    html
}

/// Returners against other customers: the same treated-against-held-out comparison within each segment.
fn segments_html(entry: &Value, campaign: &CampaignReport) -> String {
    let mut html = String::from(r#"<section id="segments"><h2>Segments</h2>"#);
    if campaign.segments.is_empty() {
        html.push_str(r#"<p class="note">No segment in this period.</p></section>"#);
        return html;
    }
    let domain = svg::domain_with_zero(campaign.segments.iter().flat_map(|s| [s.lift, s.lift_ci95.0, s.lift_ci95.1]));
    html.push_str(
        "<table><tr><th>Segment</th><th>Treated</th><th>Held out</th><th>Recovered (treated / held out)</th>\
         <th>Rate treated (95%)</th><th>Rate held out (95%)</th><th>Lift (95%)</th><th></th><th>Evidence</th></tr>",
    );
    for (i, segment) in campaign.segments.iter().enumerate() {
        let path = |name: &str| format!("segments.{i}.{name}");
        let bar = svg::interval_bar(
            &format!("{}: lift with its 95% interval", segment.name),
            segment.lift,
            (segment.lift_ci95.0, segment.lift_ci95.1),
            domain,
            200.0,
        );
        let _ = write!(
            html,
            concat!(
                r#"<tr data-segment="{}"><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{} ({})</td><td>{} ({})</td>"#,
                r#"<td>{} ({})</td><td>{bar}</td><td>{}</td></tr>"#,
            ),
            escape(&segment.name),
            escape(&segment.name.replace('_', " ")),
            field(entry, &path("treated"), Unit::Count),
            field(entry, &path("held_out"), Unit::Count),
            field(entry, &path("recovered_treated"), Unit::Count),
            field(entry, &path("recovered_held_out"), Unit::Count),
            field(entry, &path("recovery_rate_treated"), Unit::Percent),
            field(entry, &path("recovery_rate_treated_ci95"), Unit::Percent),
            field(entry, &path("recovery_rate_held_out"), Unit::Percent),
            field(entry, &path("recovery_rate_held_out_ci95"), Unit::Percent),
            field(entry, &path("lift"), Unit::Points),
            field(entry, &path("lift_ci95"), Unit::Points),
            field(entry, &path("evidence"), Unit::Label),
            bar = bar,
        );
    }
    html.push_str("</table></section>");
    html
}

/// What the vouchers did and cost: counts, the seed's targets beside the measured figures, recovery by tier,
/// and per experiment variant each tier against the control's (an offer test reads off this table).
fn vouchers_html(entry: &Value, campaign: &CampaignReport) -> String {
    let mut html = String::from(r#"<section id="vouchers"><h2>Vouchers</h2>"#);
    let _ = write!(
        html,
        concat!(
            r#"<p>Issued {}, redeemed {} ({} free-shipping redemptions without a known amount), "#,
            r#"abuse attempts {}. Discount cost {} ({} per recovered order; part of the cost above).</p>"#,
            r#"<p>Recovered orders with a voucher {} (average {}), without {} (average {}).</p>"#,
        ),
        field(entry, "vouchers.issued", Unit::Count),
        field(entry, "vouchers.redeemed", Unit::Count),
        field(entry, "vouchers.redeemed_without_amount", Unit::Count),
        field(entry, "vouchers.abuse_attempts", Unit::Count),
        money(entry, "vouchers.discount_cost"),
        money(entry, "vouchers.discount_cost_per_recovered_order"),
        field(entry, "vouchers.recovered_orders_with_voucher", Unit::Count),
        money(entry, "vouchers.aov_with_voucher"),
        field(entry, "vouchers.recovered_orders_without_voucher", Unit::Count),
        money(entry, "vouchers.aov_without_voucher"),
    );
    let targets = "vouchers.targets";
    let _ = write!(
        html,
        concat!(
            r#"<table id="voucher-targets"><tr><th>Against the seed's targets</th><th>Measured</th>"#,
            r#"<th>Target</th></tr>"#,
            r#"<tr><td>Recovery rate of returners (treated)</td><td>{} ({}, {} carts)</td><td>{}</td></tr>"#,
            r#"<tr><td>AOV impact (with a voucher minus without)</td><td>{}</td><td>{}</td></tr>"#,
            r#"<tr><td>Discount cost per acquisition (recovered order)</td><td>{}</td><td>{}</td></tr></table>"#,
        ),
        field(entry, &format!("{targets}.recovery_rate_returners.measured"), Unit::Percent),
        field(entry, &format!("{targets}.recovery_rate_returners.measured_ci95"), Unit::Percent),
        field(entry, &format!("{targets}.recovery_rate_returners.carts"), Unit::Count),
        field(entry, &format!("{targets}.recovery_rate_returners.target"), Unit::Percent),
        money(entry, &format!("{targets}.aov_impact.measured")),
        money(entry, &format!("{targets}.aov_impact.target")),
        money(entry, &format!("{targets}.discount_cost_per_acquisition.measured")),
        money(entry, &format!("{targets}.discount_cost_per_acquisition.target")),
    );
    html.push_str(
        "<table id=\"voucher-tiers\"><tr><th>Tier</th><th>Carts with a voucher</th><th>Redeemed</th>\
         <th>Recovered</th><th>Recovery rate (95%)</th><th>Discount cost</th></tr>",
    );
    for tier in campaign.vouchers.by_tier.keys() {
        let path = |name: &str| format!("vouchers.by_tier.{}.{name}", tier.as_str());
        let _ = write!(
            html,
            concat!(
                r#"<tr data-tier="{0}"><td>{0}</td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4} ({5})</td>"#,
                r#"<td>{6}</td></tr>"#,
            ),
            tier.as_str(),
            field(entry, &path("issued"), Unit::Count),
            field(entry, &path("redeemed"), Unit::Count),
            field(entry, &path("recovered"), Unit::Count),
            field(entry, &path("recovery_rate"), Unit::Percent),
            field(entry, &path("recovery_rate_ci95"), Unit::Percent),
            money(entry, &path("discount_cost")),
        );
    }
    html.push_str("</table>");
    if !campaign.variants.is_empty() {
        html.push_str(
            "<table id=\"voucher-variants\"><tr><th>Variant</th><th>Tier</th><th>Carts with a voucher</th>\
             <th>Recovery rate (95%)</th><th>Against control's tier (95%)</th><th>Discount cost per recovered \
             order</th></tr>",
        );
        for (i, variant) in campaign.variants.iter().enumerate() {
            let name = if variant.control { format!("{} (control)", variant.variant) } else { variant.variant.clone() };
            for tier in variant.vouchers.by_tier.keys() {
                let path = |name: &str| format!("variants.{i}.vouchers.by_tier.{}.{name}", tier.as_str());
                let _ = write!(
                    html,
                    concat!(
                        r#"<tr data-variant="{}"><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{} ({})</td>"#,
                        r#"<td>{}</td></tr>"#,
                    ),
                    escape(&variant.variant),
                    escape(&name),
                    tier.as_str(),
                    field(entry, &path("issued"), Unit::Count),
                    field(entry, &path("recovery_rate"), Unit::Percent),
                    field(entry, &path("recovery_rate_ci95"), Unit::Percent),
                    field(entry, &path("difference_from_control"), Unit::Points),
                    field(entry, &path("difference_from_control_ci95"), Unit::Points),
                    money(entry, &format!("variants.{i}.vouchers.discount_cost_per_recovered_order")),
                );
            }
        }
        html.push_str("</table>");
    }
    html.push_str(
        r#"<p class="note">Targets are the seed's, in its dollars; shown beside the figures, not enforced.</p>"#,
    );
    html.push_str("</section>");
    html
}

#[cfg(test)]
mod tests {
    use cartback_core::measure::report::{
        DayReport, Evidence, Interval, MessageCounts, SliceReport, VariantReport, VoucherReport,
    };
    use cartback_core::message::Channel;
    use cartback_core::voucher::TierName;

    use super::*;

    fn day(d: &str) -> NaiveDate {
        d.parse().unwrap()
    }

    fn eur(amount: &str) -> BTreeMap<String, Decimal> {
        BTreeMap::from([("EUR".to_owned(), amount.parse().unwrap())])
    }

    fn campaign(id: &str) -> CampaignReport {
        let counts = MessageCounts {
            would_send: 12,
            sent: 140,
            delivered: 138,
            opened_human: 61,
            opened_machine: 30,
            clicked: 22,
            bounced: 2,
            complained: 1,
            unsubscribed: 3,
            attributed_orders: 9,
        };
        let variant = |name: &str, control: bool, rate: f64, difference: f64| VariantReport {
            variant: name.into(),
            control,
            entered: 90,
            recovered: 11,
            recovery_rate: rate,
            recovery_rate_ci95: Interval(rate - 0.05, rate + 0.06),
            difference,
            difference_ci95: Interval(difference - 0.08, difference + 0.07),
            probability_beats_control: if control { 0.5 } else { 0.71 },
            evidence: Evidence::NotEnoughData,
            attributed_revenue: eur("310.00"),
            messages: counts.clone(),
            vouchers: vouchers(if control { None } else { Some(0.25) }),
        };
        CampaignReport {
            campaign_id: id.into(),
            shadow: false,
            entered: 200,
            treated: 180,
            held_out: 20,
            recovered_treated: 27,
            recovered_held_out: 2,
            recovery_rate_treated: 0.15,
            recovery_rate_treated_ci95: Interval(0.09, 0.23),
            recovery_rate_held_out: 0.1,
            recovery_rate_held_out_ci95: Interval(0.01, 0.4),
            lift: 0.05,
            lift_ci95: Interval(-0.21, 0.16),
            relative_lift: Some(0.5),
            relative_lift_ci95: Some(Interval(-0.6, 3.1)),
            evidence: Evidence::Inconclusive,
            verdict: "No difference shown yet: reminders changed recovery by 5.0 points (-21.0 to 16.0)".into(),
            incremental_orders: 9.0,
            incremental_orders_ci95: Interval(-37.8, 28.8),
            attributed_revenue: eur("812.40"),
            incremental_revenue: BTreeMap::from([
                ("EUR".into(), "270.80".parse().unwrap()),
                ("USD".into(), Decimal::ONE),
            ]),
            aov_recovered: eur("54.16"),
            recovered_orders_by_currency: BTreeMap::new(),
            aov_all_orders: eur("49.99"),
            cost: eur("0.014"),
            cost_per_incremental_order: None,
            revenue_per_recipient: eur("5.80"),
            messages: counts.clone(),
            by_channel: BTreeMap::from([
                (Channel::Email, counts.clone()),
                (Channel::WebPush, MessageCounts::default()),
            ]),
            by_step: BTreeMap::from([(1, counts.clone())]),
            variants: vec![variant("control", true, 0.12, 0.0), variant("next-day", false, 0.15, 0.03)],
            answers: BTreeMap::from([
                ("already_bought".into(), 4),
                ("not_interested".into(), 1),
                ("too_many_messages".into(), 0),
                ("other".into(), 2),
            ]),
            segments: vec![SliceReport {
                name: "returner".into(),
                treated: 40,
                held_out: 5,
                recovered_treated: 8,
                recovered_held_out: 1,
                recovery_rate_treated: 0.2,
                recovery_rate_treated_ci95: Interval(0.05, 0.4),
                recovery_rate_held_out: 0.2,
                recovery_rate_held_out_ci95: Interval(0.0, 0.7),
                lift: 0.0,
                lift_ci95: Interval(-0.3, 0.3),
                evidence: Evidence::NotEnoughData,
            }],
            days: vec![
                DayReport {
                    day: day("2026-11-20"),
                    entered_treated: 90,
                    entered_held_out: 10,
                    recovered_treated: 14,
                    recovered_held_out: 1,
                    revenue_treated: eur("450.00"),
                    revenue_held_out: eur("30.00"),
                    sent: 70,
                },
                DayReport {
                    day: day("2026-11-21"),
                    entered_treated: 90,
                    entered_held_out: 10,
                    recovered_treated: 13,
                    recovered_held_out: 1,
                    revenue_treated: eur("362.40"),
                    revenue_held_out: BTreeMap::new(),
                    sent: 70,
                },
            ],
            vouchers: vouchers(None),
        }
    }

    /// 12 recovery-tier vouchers (6 recovered, 5 redeemed), one abuse attempt, 42.50 EUR of discounts.
    fn vouchers(difference_from_control: Option<f64>) -> VoucherReport {
        let mut v = VoucherReport { issued: 12, redeemed: 5, abuse_attempts: 1, ..VoucherReport::default() };
        v.discount_cost = eur("42.50");
        v.discount_cost_per_recovered_order = eur("1.57");
        v.aov_with_voucher = eur("61.00");
        v.aov_without_voucher = eur("52.25");
        v.aov_impact = eur("8.75");
        v.recovered_orders_with_voucher = 5;
        v.recovered_orders_without_voucher = 22;
        let tier = v.by_tier.get_mut(&TierName::Recovery).unwrap();
        (tier.issued, tier.redeemed, tier.recovered, tier.recovery_rate) = (12, 5, 6, 0.5);
        tier.recovery_rate_ci95 = Interval(0.2, 0.8);
        tier.discount_cost = eur("42.50");
        tier.difference_from_control = difference_from_control;
        tier.difference_from_control_ci95 = difference_from_control.map(|d| Interval(d - 0.3, d + 0.3));
        v.targets.recovery_rate_returners.measured = 0.2;
        v.targets.recovery_rate_returners.measured_ci95 = Interval(0.05, 0.4);
        v.targets.recovery_rate_returners.carts = 40;
        v.targets.aov_impact.measured = v.aov_impact.clone();
        v.targets.discount_cost_per_acquisition.measured = v.discount_cost_per_recovered_order.clone();
        v
    }

    fn report() -> Report {
        let mut total = campaign("*");
        total.entered = 400;
        Report {
            from: day("2026-11-20"),
            to: day("2026-11-21"),
            attribution_window_hours: 24,
            interval_method: "mSPRT confidence sequence".into(),
            campaigns: vec![campaign("default"), campaign("<img src=x onerror=alert(1)>")],
            total,
        }
    }

    fn form(campaign: Option<&str>) -> DashboardForm {
        let mut query = BTreeMap::from([("from".to_owned(), "2026-11-20".to_owned())]);
        query.insert("to".into(), "2026-11-21".into());
        if let Some(id) = campaign {
            query.insert("campaign".into(), id.into());
        }
        DashboardForm::parse(&query, day("2026-11-24")).unwrap()
    }

    /// Equal JSON, numbers to 12 significant digits (serde_json's default parser may miss the last bit).
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0)
            }
            (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    /// Every `data-field` element of the page: (field, unit, value as JSON, shown text).
    fn shown_fields(html: &str) -> Vec<(String, String, Value, String)> {
        let unescape = |t: &str| {
            t.replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#39;", "'")
                .replace("&amp;", "&")
        };
        html.split("data-field=\"")
            .skip(1)
            .map(|rest| {
                let attr = |name: &str| {
                    let start = rest.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                    unescape(&rest[start..start + rest[start..].find('"').unwrap()])
                };
                let field = unescape(&rest[..rest.find('"').unwrap()]);
                let text_start = rest.find('>').unwrap() + 1;
                let text = unescape(&rest[text_start..text_start + rest[text_start..].find('<').unwrap()]);
                (field, attr("data-unit"), serde_json::from_str(&attr("data-value")).unwrap(), text)
            })
            .collect()
    }

    /// GIVEN a report with two campaigns WHEN the page shows one THEN every number on it carries that
    /// campaign's JSON value at the field it names, the issue's headline fields are all there, and each
    /// number's text is its value in its unit.
    #[test]
    fn given_a_report_when_a_campaign_is_shown_then_every_number_is_its_json_value_at_the_named_field() {
        let report = report();
        let html = page(&form(Some("default")), "tok", &[], Ok(&report));
        let entry = serde_json::to_value(&report.campaigns[0]).unwrap();
        let fields = shown_fields(&html);
        for (field, _, value, _) in &fields {
            assert!(same(at(&entry, field), value), "{field}: {} shown as {value}", at(&entry, field));
        }
        let names: BTreeSet<&str> = fields.iter().map(|(f, ..)| f.as_str()).collect();
        for required in [
            "entered",
            "treated",
            "held_out",
            "recovered_treated",
            "recovered_held_out",
            "recovery_rate_treated",
            "recovery_rate_treated_ci95",
            "recovery_rate_held_out",
            "recovery_rate_held_out_ci95",
            "lift",
            "lift_ci95",
            "attributed_revenue.EUR",
            "incremental_revenue.EUR",
            "incremental_revenue.USD",
            "cost_per_incremental_order",
            "verdict",
            "messages.sent",
            "messages.opened_human",
            "messages.clicked",
            "by_channel.email.sent",
            "by_channel.web_push.sent",
            "variants.1.difference_ci95",
            "variants.1.probability_beats_control",
            "segments.0.lift_ci95",
            "segments.0.recovered_treated",
        ] {
            assert!(names.contains(required), "{required} is not shown");
        }
        let text = |name: &str| fields.iter().find(|(f, ..)| f == name).map(|(.., t)| t.as_str()).unwrap();
        assert_eq!(text("entered"), "200");
        assert_eq!(text("recovery_rate_treated"), "15.0%");
        assert_eq!(text("recovery_rate_treated_ci95"), "9.0% to 23.0%");
        assert_eq!(text("lift"), "+5.0 pts");
        assert_eq!(text("lift_ci95"), "-21.0 pts to +16.0 pts");
        assert_eq!(text("attributed_revenue.EUR"), "812.40");
        assert_eq!(text("cost_per_incremental_order"), "n/a");
        assert_eq!(Unit::Number.show(&serde_json::json!([-0.04, -0.0])), "0.0 to 0.0", "no negative zero");
        assert_eq!(text("evidence"), "inconclusive");
        assert_eq!(text("variants.0.evidence"), "not enough data");
        assert_eq!(text("verdict"), report.campaigns[0].verdict);
    }

    /// GIVEN a campaign whose vouchers were issued, redeemed and abused, in an experiment WHEN shown THEN the
    /// voucher section gives the counts, the discount cost, each target beside its measured figure, each
    /// tier's recovery rate, and per variant each tier against the control's; every figure is the JSON's.
    #[test]
    fn given_vouchers_when_a_campaign_is_shown_then_their_figures_stand_beside_the_targets_per_tier_and_variant() {
        let report = report();
        let html = page(&form(Some("default")), "tok", &[], Ok(&report));
        let entry = serde_json::to_value(&report.campaigns[0]).unwrap();
        let fields = shown_fields(&html);
        let text = |name: &str| {
            assert!(same(at(&entry, name), &fields.iter().find(|(f, ..)| f == name).unwrap().2), "{name}");
            fields.iter().find(|(f, ..)| f == name).map(|(.., t)| t.clone()).unwrap()
        };

        assert!(html.contains(r#"<section id="vouchers">"#), "{html}");
        assert_eq!(text("vouchers.issued"), "12");
        assert_eq!(text("vouchers.abuse_attempts"), "1");
        assert_eq!(text("vouchers.discount_cost.EUR"), "42.50");
        assert_eq!(text("vouchers.targets.recovery_rate_returners.measured"), "20.0%");
        assert_eq!(text("vouchers.targets.recovery_rate_returners.target"), "12.0%");
        assert_eq!(text("vouchers.targets.aov_impact.measured.EUR"), "8.75");
        assert_eq!(text("vouchers.targets.aov_impact.target.USD"), "4.50");
        assert_eq!(text("vouchers.targets.discount_cost_per_acquisition.target.USD"), "8.20");
        assert_eq!(text("vouchers.by_tier.recovery.recovery_rate_ci95"), "20.0% to 80.0%");
        assert_eq!(text("vouchers.by_tier.standard.issued"), "0");
        assert_eq!(text("variants.0.vouchers.by_tier.recovery.difference_from_control"), "n/a");
        assert_eq!(text("variants.1.vouchers.by_tier.recovery.difference_from_control"), "+25.0 pts");
        assert_eq!(text("variants.1.vouchers.by_tier.recovery.difference_from_control_ci95"), "-5.0 pts to +55.0 pts");
        let section = &html[html.find(r#"<section id="vouchers">"#).unwrap()..];
        assert!(!section.contains("<script") && !section.contains("style="), "no script, no inline style");
    }

    #[test]
    fn given_no_campaign_chosen_when_shown_then_the_total_is_shown() {
        let html = page(&form(None), "tok", &["default".into()], Ok(&report()));
        assert!(html.contains(r#"data-campaign="*""#));
        let entered = shown_fields(&html).into_iter().find(|(f, ..)| f == "entered").unwrap();
        assert_eq!(entered.2, Value::from(400));
        assert!(html.contains(r#"<option value="" "#) || html.contains(r#"<option value="">All campaigns"#));
    }

    /// GIVEN campaign ids and a token holding markup WHEN the page is drawn THEN none of it is markup, and the
    /// page holds no script and loads nothing from elsewhere.
    #[test]
    fn given_markup_in_campaign_ids_and_the_token_when_drawn_then_it_is_escaped_and_the_page_has_no_script() {
        let evil = "<img src=x onerror=alert(1)>";
        let html = page(&form(Some(evil)), "\"><script>x</script>", &[evil.into()], Ok(&report()));
        assert!(!html.contains("<img") && !html.contains("<script"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("@import"));
        let refusal = refusal_page("<b>no</b>");
        assert!(!refusal.contains("<b>") && refusal.contains("&lt;b&gt;"));
    }

    #[test]
    fn given_a_chosen_campaign_without_data_when_shown_then_the_page_says_so() {
        let html = page(&form(Some("summer")), "tok", &[], Ok(&report()));
        assert!(html.contains(r#"id="no-data""#) && html.contains("No cart entered campaign summer"), "{html}");
        assert!(html.contains(r#"<option value="summer" selected>summer</option>"#), "the choice stays selectable");
    }

    #[test]
    fn given_the_form_when_drawn_then_it_carries_the_token_the_choices_and_a_refresh_button() {
        let html = page(&form(Some("default")), "123.abc", &["default".into(), "winback".into()], Ok(&report()));
        assert!(html.contains(r#"<input type="hidden" name="token" value="123.abc">"#));
        assert!(html.contains(r#"<option value="default" selected>default</option>"#));
        assert!(html.contains(r#"<option value="winback">winback</option>"#));
        assert!(html.contains(r#"name="from" id="from" value="2026-11-20""#));
        assert!(html.contains(r#"name="attribution_window_hours" id="attribution_window_hours" min="1""#));
        assert!(html.contains(r#"<button type="submit" id="refresh">Refresh</button>"#));
    }

    /// GIVEN days whose held-out group is a ninth of the treated WHEN the daily chart is drawn THEN it compares
    /// revenue per entered cart (450/90 = 5 against 30/10 = 3), and its tooltips give the sums and cart counts.
    #[test]
    fn given_daily_revenue_when_charted_then_the_groups_are_compared_per_entered_cart() {
        let html = daily_html(&report().campaigns[0]);
        assert!(html.contains("<title>2026-11-20 treated: EUR 450.00 from 90 carts</title>"), "{html}");
        assert!(html.contains("<title>2026-11-21 held out: EUR 0 from 10 carts</title>"), "{html}");
        // 5.0 per cart is the tallest column (152 px); 3.0 per cart is 3/5 of it.
        assert!(html.contains(r#"height="152.0""#) && html.contains(r#"height="91.2""#), "{html}");
        assert!(html.contains("The tallest column is EUR 5.00 per entered cart"), "{html}");
    }

    #[test]
    fn given_an_empty_query_when_parsed_then_the_last_fortnight_every_campaign_and_24_hours_apply() {
        let form = DashboardForm::parse(&BTreeMap::new(), day("2026-11-24")).unwrap();
        let shown = (form.campaign.clone(), form.from, form.to, form.attribution_window_hours);
        assert_eq!(shown, (None, day("2026-11-11"), day("2026-11-24"), 24));
        let query = &form.query;
        let asked = (query.campaign.clone(), query.from, query.to, query.attribution_window);
        assert_eq!(asked, (None, form.from, form.to, chrono::Duration::hours(24)));
    }

    #[test]
    fn given_bad_fields_when_parsed_then_each_error_names_its_field() {
        let parse = |pairs: &[(&str, &str)]| {
            let query = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            DashboardForm::parse(&query, day("2026-11-24"))
        };
        let field = |pairs: &[(&str, &str)]| parse(pairs).unwrap_err().field;
        assert_eq!(field(&[("from", "24/11/2026")]), "from");
        assert_eq!(field(&[("to", "2026-13-01")]), "to");
        assert_eq!(field(&[("from", "2026-11-25"), ("to", "2026-11-24")]), "from");
        assert_eq!(field(&[("from", "2024-01-01"), ("to", "2026-11-24")]), "from");
        assert_eq!(field(&[("window_hours_fax", "3")]), "window_hours_fax");
        for hours in ["0", "-3", "721", "24h", "1e3"] {
            assert_eq!(field(&[("attribution_window_hours", hours)]), "attribution_window_hours", "{hours}");
        }
        let form =
            parse(&[("campaign", " winback "), ("attribution_window_hours", "72"), ("from", ""), ("token", "t")]);
        let form = form.unwrap();
        assert_eq!((form.campaign.as_deref(), form.attribution_window_hours), (Some("winback"), 72));
        let form = parse(&[("campaign", ""), ("window_hours_sms", "2")]).unwrap();
        assert_eq!(form.campaign, None, "an empty choice is every campaign");
        let html = page(&form, "t", &[], Ok(&report()));
        assert!(html.contains(r#"<input type="hidden" name="window_hours_sms" value="2">"#), "kept across Refresh");
    }
}
