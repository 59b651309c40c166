//! `cartback report`: the measurement report (the same as `GET /v1/report`)
//! from the local folder or, with `--aws`, the DynamoDB tables; a readable
//! table by default, `--json` for the report itself, `--csv` one row per
//! campaign. It shows counts, rates and amounts only, no personal data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use cartback_core::campaign::Campaign;
use cartback_core::measure::report::{CampaignReport, Interval, Money, Report, VoucherReport};
use cartback_core::ports::{Clock, SystemClock};
use cartback_core::service::{parse_query, report, ReportError};

use crate::ReportArgs;

pub async fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let params = match params(&args) {
        Ok(p) => p,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    let today = SystemClock.now().date_naive();
    let query = match parse_query(&params, today) {
        Ok(q) => q,
        Err(error) => {
            eprintln!("error: {}", flag_error(&error));
            return Ok(ExitCode::from(2));
        }
    };
    let stores = crate::stores::open(&args.store).await?;
    let mut campaigns = stores.campaigns.list().await?;
    if campaigns.is_empty() {
        campaigns.push(Campaign::default_campaign());
    }
    let answer = match report(&*stores.state, &campaigns, &query, &args.message_prices, today).await {
        Ok(r) => r,
        Err(ReportError::UnknownCampaign(id)) => {
            eprintln!("error: --campaign: no campaign {id:?} (see `cartback campaign list`)");
            return Ok(ExitCode::FAILURE);
        }
        Err(error) => return Err(error.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else if args.csv {
        print!("{}", csv(&answer));
    } else {
        print!("{}", table(&answer));
    }
    Ok(ExitCode::SUCCESS)
}

/// The command line as the report's parameters (the route's names).
fn params(args: &ReportArgs) -> Result<BTreeMap<String, String>, String> {
    let mut params = BTreeMap::new();
    let mut put = |name: &str, value: &Option<String>| {
        if let Some(value) = value {
            params.insert(name.to_owned(), value.clone());
        }
    };
    put("campaign", &args.campaign);
    put("from", &args.from);
    put("to", &args.to);
    if let Some(window) = &args.window {
        params.insert("attribution_window_hours".into(), hours(window).map_err(|e| format!("--window: {e}"))?);
    }
    for pair in &args.channel_window {
        let (channel, window) = pair
            .split_once('=')
            .ok_or_else(|| format!("--channel-window: {pair:?} is not CHANNEL=WINDOW (sms=12h)"))?;
        let hours = hours(window).map_err(|e| format!("--channel-window {channel}: {e}"))?;
        params.insert(format!("window_hours_{channel}"), hours);
    }
    Ok(params)
}

/// "24h", "2d" or "36" (hours) as whole hours; the range is checked with
/// the route's rule.
fn hours(text: &str) -> Result<String, String> {
    let text = text.trim();
    let (number, per_unit) = match text.strip_suffix('d') {
        Some(days) => (days, 24),
        None => (text.strip_suffix('h').unwrap_or(text), 1),
    };
    let n: i64 = number.parse().map_err(|_| format!("{text:?} is not a whole number of hours (24h) or days (2d)"))?;
    Ok(n.saturating_mul(per_unit).to_string())
}

/// The service's error with the command's flag names.
fn flag_error(error: &ReportError) -> String {
    match error {
        ReportError::BadParameter { parameter, reason } => {
            let flag = match parameter.as_str() {
                "attribution_window_hours" => "--window".to_owned(),
                other => match other.strip_prefix("window_hours_") {
                    Some(channel) => format!("--channel-window {channel}"),
                    None => format!("--{other}"),
                },
            };
            format!("{flag}: {reason}")
        }
        other => other.to_string(),
    }
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

fn interval_points(Interval(low, high): Interval) -> String {
    format!("{:.1} to {:.1}", low * 100.0, high * 100.0)
}

fn money(amounts: &Money) -> String {
    if amounts.is_empty() {
        return "-".into();
    }
    amounts.iter().map(|(currency, amount)| format!("{amount} {currency}")).collect::<Vec<_>>().join(" + ")
}

fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Report {} to {} (carts entering), attribution window {}h; intervals: always-valid 95%",
        report.from, report.to, report.attribution_window_hours
    );
    for campaign in report.campaigns.iter().chain(std::iter::once(&report.total)) {
        let _ = writeln!(out);
        write_campaign(&mut out, campaign);
    }
    out
}

fn write_campaign(out: &mut String, c: &CampaignReport) {
    let title =
        if c.campaign_id == "*" { "all live campaigns".to_owned() } else { format!("campaign {}", c.campaign_id) };
    let shadow = if c.shadow { " (shadow)" } else { "" };
    let _ = writeln!(out, "{title}{shadow}: {}", c.verdict);
    let rows = [
        ("entered", c.entered.to_string()),
        ("treated / held out", format!("{} / {}", c.treated, c.held_out)),
        (
            "recovered, treated",
            format!(
                "{} ({}, {})",
                c.recovered_treated,
                percent(c.recovery_rate_treated),
                interval_points(c.recovery_rate_treated_ci95)
            ),
        ),
        (
            "recovered, held out",
            format!(
                "{} ({}, {})",
                c.recovered_held_out,
                percent(c.recovery_rate_held_out),
                interval_points(c.recovery_rate_held_out_ci95)
            ),
        ),
        ("lift (points)", format!("{:.1} ({})", c.lift * 100.0, interval_points(c.lift_ci95))),
        ("incremental orders", format!("{:.1}", c.incremental_orders)),
        ("attributed revenue", money(&c.attributed_revenue)),
        ("incremental revenue", money(&c.incremental_revenue)),
        ("AOV recovered / all", format!("{} / {}", money(&c.aov_recovered), money(&c.aov_all_orders))),
        ("cost", money(&c.cost)),
        ("cost per incr. order", c.cost_per_incremental_order.as_ref().map(money).unwrap_or_else(|| "-".into())),
        (
            "messages",
            format!(
                "{} sent, {} would send, {} delivered, {} opened ({} by machines), {} clicked, {} bounced",
                c.messages.sent,
                c.messages.would_send,
                c.messages.delivered,
                c.messages.opened_human,
                c.messages.opened_machine,
                c.messages.clicked,
                c.messages.bounced
            ),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "  {name:<22} {value}");
    }
    write_vouchers(out, "  ", &c.vouchers);
    for v in &c.variants {
        let _ = writeln!(
            out,
            "  variant {:<14} {} of {} ({}){}",
            v.variant,
            v.recovered,
            v.entered,
            percent(v.recovery_rate),
            if v.control {
                ", control".to_owned()
            } else {
                format!(
                    ", {:+.1} points ({}), {:.0}% likely to beat control",
                    v.difference * 100.0,
                    interval_points(v.difference_ci95),
                    v.probability_beats_control * 100.0
                )
            }
        );
        if v.vouchers.issued > 0 || v.vouchers.abuse_attempts > 0 {
            write_vouchers(out, "    ", &v.vouchers);
        }
    }
}

/// The voucher rows: counts, cost, AOV, recovery by tier (against the
/// control in a variant), and each seed target beside its measured figure.
fn write_vouchers(out: &mut String, indent: &str, v: &VoucherReport) {
    let tiers: Vec<String> = v
        .by_tier
        .iter()
        .map(|(tier, t)| {
            let against = match (t.difference_from_control, t.difference_from_control_ci95) {
                (Some(d), Some(ci)) => format!(", {:+.1} points against control ({})", d * 100.0, interval_points(ci)),
                _ => String::new(),
            };
            format!(
                "{} {} of {} ({}, {}){against}",
                tier.as_str(),
                t.recovered,
                t.issued,
                percent(t.recovery_rate),
                interval_points(t.recovery_rate_ci95)
            )
        })
        .collect();
    let redeemed: Vec<String> = v.by_tier.iter().map(|(tier, t)| format!("{} {}", tier.as_str(), t.redeemed)).collect();
    let returners = &v.targets.recovery_rate_returners;
    let rows = [
        (
            "vouchers",
            format!(
                "{} issued, {} redeemed ({}), {} abuse attempts",
                v.issued,
                v.redeemed,
                redeemed.join(", "),
                v.abuse_attempts
            ),
        ),
        ("recovered by tier", tiers.join("; ")),
        (
            "discount cost",
            format!(
                "{}, per recovered order {}{}",
                money(&v.discount_cost),
                money(&v.discount_cost_per_recovered_order),
                if v.redeemed_without_amount > 0 {
                    format!(" ({} free-shipping redemptions not costed)", v.redeemed_without_amount)
                } else {
                    String::new()
                }
            ),
        ),
        (
            "AOV voucher / none",
            format!(
                "{} / {} (impact {})",
                money(&v.aov_with_voucher),
                money(&v.aov_without_voucher),
                money(&v.aov_impact)
            ),
        ),
        (
            "target: returners",
            format!(
                "recovery {} ({}, {} carts), target {}",
                percent(returners.measured),
                interval_points(returners.measured_ci95),
                returners.carts,
                percent(returners.target)
            ),
        ),
        (
            "target: AOV impact",
            format!("{}, target {}", money(&v.targets.aov_impact.measured), money(&v.targets.aov_impact.target)),
        ),
        (
            "target: discount/acq.",
            format!(
                "{}, target {}",
                money(&v.targets.discount_cost_per_acquisition.measured),
                money(&v.targets.discount_cost_per_acquisition.target)
            ),
        ),
    ];
    let width = 24 - indent.len();
    for (name, value) in rows {
        let _ = writeln!(out, "{indent}{name:<width$} {value}");
    }
}

/// The columns of `--csv`: the top-level fields of each campaign's entry.
const CSV_HEADER: &str = "campaign_id,shadow,entered,treated,held_out,recovered_treated,recovered_held_out,\
recovery_rate_treated,recovery_rate_treated_low,recovery_rate_treated_high,recovery_rate_held_out,\
recovery_rate_held_out_low,recovery_rate_held_out_high,lift,lift_ci95_low,lift_ci95_high,relative_lift,evidence,\
incremental_orders,attributed_revenue,incremental_revenue,aov_recovered,aov_all_orders,cost,\
cost_per_incremental_order,revenue_per_recipient,sent,would_send,vouchers_issued,vouchers_redeemed,\
voucher_abuse_attempts,discount_cost,discount_cost_per_recovered_order,aov_with_voucher,aov_without_voucher,\
aov_impact,recovery_rate_returners,verdict";

fn csv(report: &Report) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for c in report.campaigns.iter().chain(std::iter::once(&report.total)) {
        let evidence = serde_json::to_value(c.evidence).ok().and_then(|v| v.as_str().map(str::to_owned));
        let fields = [
            c.campaign_id.clone(),
            c.shadow.to_string(),
            c.entered.to_string(),
            c.treated.to_string(),
            c.held_out.to_string(),
            c.recovered_treated.to_string(),
            c.recovered_held_out.to_string(),
            c.recovery_rate_treated.to_string(),
            c.recovery_rate_treated_ci95.0.to_string(),
            c.recovery_rate_treated_ci95.1.to_string(),
            c.recovery_rate_held_out.to_string(),
            c.recovery_rate_held_out_ci95.0.to_string(),
            c.recovery_rate_held_out_ci95.1.to_string(),
            c.lift.to_string(),
            c.lift_ci95.0.to_string(),
            c.lift_ci95.1.to_string(),
            c.relative_lift.map(|r| r.to_string()).unwrap_or_default(),
            evidence.unwrap_or_default(),
            c.incremental_orders.to_string(),
            csv_money(&c.attributed_revenue),
            csv_money(&c.incremental_revenue),
            csv_money(&c.aov_recovered),
            csv_money(&c.aov_all_orders),
            csv_money(&c.cost),
            c.cost_per_incremental_order.as_ref().map(csv_money).unwrap_or_default(),
            csv_money(&c.revenue_per_recipient),
            c.messages.sent.to_string(),
            c.messages.would_send.to_string(),
            c.vouchers.issued.to_string(),
            c.vouchers.redeemed.to_string(),
            c.vouchers.abuse_attempts.to_string(),
            csv_money(&c.vouchers.discount_cost),
            csv_money(&c.vouchers.discount_cost_per_recovered_order),
            csv_money(&c.vouchers.aov_with_voucher),
            csv_money(&c.vouchers.aov_without_voucher),
            csv_money(&c.vouchers.aov_impact),
            c.vouchers.targets.recovery_rate_returners.measured.to_string(),
            c.verdict.clone(),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// Amounts as `EUR 12.50;USD 3.00` (one cell, currencies never summed).
fn csv_money(amounts: &Money) -> String {
    amounts.iter().map(|(currency, amount)| format!("{currency} {amount}")).collect::<Vec<_>>().join(";")
}

/// A field quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_windows_in_hours_or_days_when_parsed_then_whole_hours() {
        assert_eq!(hours("24h").unwrap(), "24");
        assert_eq!(hours("2d").unwrap(), "48");
        assert_eq!(hours("36").unwrap(), "36");
        assert!(hours("1.5h").unwrap_err().contains("not a whole number"));
    }

    #[test]
    fn given_fields_with_commas_and_quotes_when_written_as_csv_then_they_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    /// A returner's treated cart that got a recovery-tier voucher and bought
    /// for 90.00 USD with it (9.00 off), and another cart bought without one for 60.00 USD.
    fn voucher_report() -> Report {
        use cartback_core::ids::CustomerKey;
        use cartback_core::measure::report::{build_report, Prices, ReportQuery};
        use cartback_core::measure::{Fact, FactKind, Group, SegmentLabel};
        use cartback_core::voucher::TierName;
        let at = |text: &str| text.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let mut facts = Vec::new();
        for (cart, segment) in [("ret", SegmentLabel::Returner), ("plain", SegmentLabel::Other)] {
            let kind = FactKind::Entered {
                campaign_id: "default".into(),
                cart_id: cart.into(),
                customer_key: CustomerKey::Guest(cart.into()),
                group: Group::Treated,
                variant: None,
                segment,
                value: None,
                currency: None,
            };
            facts.push(Fact::new(at("2026-11-02T10:00:00Z"), kind));
            let value = if cart == "ret" { "90.00" } else { "60.00" };
            let order = FactKind::Order {
                order_id: format!("o-{cart}"),
                cart_id: Some(cart.into()),
                customer_key: None,
                value: Some(value.parse().unwrap()),
                currency: Some("USD".into()),
                coupon: None,
            };
            facts.push(Fact::new(at("2026-11-02T12:00:00Z"), order));
        }
        let issued = FactKind::VoucherIssued {
            campaign_id: "default".into(),
            cart_id: "ret".into(),
            customer_key: CustomerKey::Guest("ret".into()),
            variant: None,
            tier: TierName::Recovery,
        };
        facts.push(Fact::new(at("2026-11-02T10:00:00Z"), issued));
        let redeemed = FactKind::VoucherRedeemed {
            order_id: "o-ret".into(),
            campaign_id: "default".into(),
            cart_id: "ret".into(),
            customer_key: CustomerKey::Guest("ret".into()),
            tier: TierName::Recovery,
            discount: Some("9.00".parse().unwrap()),
            currency: "USD".into(),
        };
        facts.push(Fact::new(at("2026-11-02T12:00:00Z"), redeemed));
        let query = ReportQuery::new(None, "2026-11-01".parse().unwrap(), "2026-11-07".parse().unwrap());
        build_report(&facts, &[], &query, &Prices::default())
    }

    /// GIVEN a report with a redeemed voucher WHEN shown as a table THEN the voucher rows give the counts,
    /// the discount cost, the AOV with and without a voucher, the recovery by tier and each seed target
    /// beside its measured figure; and the CSV has a value for every column.
    #[test]
    fn given_vouchers_when_the_report_is_shown_then_their_figures_stand_beside_the_targets() {
        let report = voucher_report();

        let table = table(&report);

        for line in [
            "  vouchers               1 issued, 1 redeemed (recovery 1, standard 0), 0 abuse attempts",
            "  recovered by tier      recovery 1 of 1 (100.0%, ",
            "  discount cost          9.00 USD, per recovered order 4.50 USD",
            "  AOV voucher / none     90.00 USD / 60.00 USD (impact 30.00 USD)",
            "  target: returners      recovery 100.0% (",
            "  target: AOV impact     30.00 USD, target 4.50 USD",
            "  target: discount/acq.  4.50 USD, target 8.20 USD",
        ] {
            assert!(table.contains(line), "{line:?} in\n{table}");
        }
        let csv = csv(&report);
        let lines: Vec<&str> = csv.lines().collect();
        let columns = CSV_HEADER.split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == columns), "{csv}");
        let header: Vec<&str> = lines[0].split(',').collect();
        let row: Vec<&str> = lines[1].split(',').collect();
        let cell = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        let cells = (cell("vouchers_issued"), cell("discount_cost"), cell("aov_impact"));
        assert_eq!(cells, ("1", "USD 9.00", "USD 30.00"));
    }

    #[test]
    fn given_a_service_error_when_shown_then_it_names_the_flag() {
        let error = |parameter: &str| ReportError::BadParameter { parameter: parameter.into(), reason: "bad".into() };
        assert_eq!(flag_error(&error("attribution_window_hours")), "--window: bad");
        assert_eq!(flag_error(&error("window_hours_sms")), "--channel-window sms: bad");
        assert_eq!(flag_error(&error("from")), "--from: bad");
    }
}
