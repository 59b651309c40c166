//! `cartback backtest`: what a draft campaign would have done over the
//! stored history (the local folder, `--aws` DynamoDB with a parallel scan,
//! or `--events` a JSON Lines export of canonical events), beside what the
//! live campaign did. A table on stdout; `--json FILE` and `--csv FILE`
//! write the report (`-` for stdout). Counts, reason codes and cart ids
//! only, no personal data. A progress bar shows on a terminal only.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use cartback_core::backtest::{self, BacktestReport, Options, Outcome};
use cartback_core::campaign::Campaign;
use cartback_core::measure::report::{Money, Prices};
use cartback_core::message::Channel;
use cartback_core::ports::{Clock, SystemClock};
use chrono::NaiveDate;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::StoreArgs;

#[derive(Args)]
pub struct BacktestArgs {
    /// The draft campaign file (TOML, as `cartback campaign apply` takes it).
    #[arg(long)]
    pub campaign: PathBuf,
    /// The live campaign to put the draft beside (default: the draft's own id when that campaign is live, else the one live traffic entered most).
    #[arg(long)]
    pub against: Option<String>,
    /// First day (UTC, YYYY-MM-DD) of carts replayed and counted (live traffic to earlier carts counts for caps).
    #[arg(long)]
    pub from: Option<String>,
    /// Last day (UTC, YYYY-MM-DD, inclusive) of carts counted.
    #[arg(long)]
    pub to: Option<String>,
    /// A JSON Lines file of canonical events (the /v1/events format) instead of a store: backtest before
    /// installing Cartback.
    #[arg(long, conflicts_with = "aws")]
    pub events: Option<PathBuf>,
    /// Parallel scan segments of the DynamoDB state table (with --aws).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub segments: u32,
    /// Write the report as JSON to FILE (`-`: stdout, instead of the table).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write one CSV row per step and channel to FILE (`-`: stdout, instead of the table).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Message prices for the cost, as `cartback dev` takes them.
    #[arg(long, env = "CARTBACK_MESSAGE_PRICES", default_value = "")]
    pub message_prices: Prices,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn day(flag: &str, text: &Option<String>) -> Result<Option<NaiveDate>, String> {
    text.as_deref()
        .map(|t| t.parse::<NaiveDate>().map_err(|_| format!("{flag}: {t:?} is not a date (YYYY-MM-DD)")))
        .transpose()
}

pub async fn run(args: BacktestArgs) -> anyhow::Result<ExitCode> {
    let usage = |message: String| {
        eprintln!("error: {message}");
        Ok(ExitCode::from(2))
    };
    let (from, to) = match (day("--from", &args.from), day("--to", &args.to)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => return usage(e),
    };
    let text = std::fs::read_to_string(&args.campaign)
        .with_context(|| format!("cannot read --campaign {}", args.campaign.display()))?;
    let draft = match Campaign::from_toml(&text) {
        Ok(c) => c,
        Err(problems) => {
            for p in problems {
                eprintln!("error: --campaign {}: {}: {}", args.campaign.display(), p.field, p.message);
            }
            return Ok(ExitCode::from(2));
        }
    };
    let progress = Progress::new();
    let now = SystemClock.now();
    // The history, the stored campaigns, the runtime's channels and, from a
    // store, the measured rates of the campaign the draft is put beside.
    let (history, live, channels, stores) = match &args.events {
        Some(path) => {
            let file = std::fs::File::open(path).with_context(|| format!("cannot read --events {}", path.display()))?;
            // Line by line: an export of a year need not fit in memory as text.
            let history = match backtest::history::history_from_reader(std::io::BufReader::new(file), now) {
                Ok(h) => h,
                Err(e) => return usage(format!("--events {}: {e}", path.display())),
            };
            (history, Vec::new(), Channel::ALL.to_vec(), None)
        }
        None => {
            let stores = crate::stores::open_with_segments(&args.store, args.segments).await?;
            progress.loading();
            let history = backtest::load_history(&*stores.history, &mut |n| progress.loaded(n)).await?;
            let live = stores.campaigns.list().await?;
            let channels = stores.channels.clone();
            (history, live, channels, Some(stores))
        }
    };
    let against = match &args.against {
        Some(id) => Some(id.clone()),
        None => history.default_against(&live, &draft.id),
    };
    let measured = match (&stores, &against) {
        (Some(stores), Some(id)) => {
            let today = now.date_naive();
            backtest::measured_rates(&*stores.state, &live, id, &history, (from, to), &args.message_prices, today)
                .await?
        }
        _ => None,
    };
    let options = Options { draft, against, from, to, channels, prices: args.message_prices.clone(), until: None };
    progress.replaying(history.cart_count);
    let report = match backtest::run(&history, &live, &options, measured.as_ref(), &mut |n| progress.replayed(n)) {
        Ok(r) => r,
        Err(e) => {
            progress.finish();
            return usage(e.to_string());
        }
    };
    progress.finish();
    let mut table_to_stdout = true;
    if let Some(path) = &args.json {
        table_to_stdout &= path != Path::new("-");
        write(path, &serde_json::to_string_pretty(&report)?)?;
    }
    if let Some(path) = &args.csv {
        table_to_stdout &= path != Path::new("-");
        write(path, &csv(&report))?;
    }
    if table_to_stdout {
        print!("{}", table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if path == Path::new("-") {
        println!("{text}");
        return Ok(());
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The progress bar, on a terminal only (stderr, so stdout stays the report).
struct Progress(Option<ProgressBar>);

impl Progress {
    fn new() -> Progress {
        Progress(std::io::stderr().is_terminal().then(ProgressBar::hidden))
    }

    fn loading(&self) {
        if let Some(bar) = &self.0 {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} reading history: {pos} carts")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
        }
    }

    fn loaded(&self, carts: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(carts);
        }
    }

    fn replaying(&self, carts: u64) {
        if let Some(bar) = &self.0 {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_length(carts);
            bar.set_position(0);
            let style = ProgressStyle::with_template("replaying {bar:40} {pos}/{len} carts ({per_sec}, {eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
        }
    }

    fn replayed(&self, carts: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(carts);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

fn money(amounts: &Money) -> String {
    if amounts.is_empty() {
        return "-".into();
    }
    amounts.iter().map(|(currency, amount)| format!("{amount} {currency}")).collect::<Vec<_>>().join(" + ")
}

fn count(value: Option<u64>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The final table.
pub fn table(report: &BacktestReport) -> String {
    let mut out = String::new();
    let period = match (report.from, report.to) {
        (None, None) => "all stored carts".to_owned(),
        (from, to) => format!(
            "carts started {} to {}",
            from.map_or("the start".into(), |d| d.to_string()),
            to.map_or("the end".into(), |d| d.to_string())
        ),
    };
    let _ = writeln!(out, "Backtest of draft {:?} over {period}", report.campaign_id);
    if let Some(until) = report.replayed_until {
        let _ = writeln!(out, "  replayed until {} (the newest time in the history)", until.to_rfc3339());
    }
    let _ = writeln!(
        out,
        "  carts {}, entering {} ({} held out), cost {}",
        report.carts,
        report.entering,
        report.held_out,
        money(&report.cost)
    );
    let _ = writeln!(
        out,
        "  vouchers issued {}, face value {}{}",
        report.vouchers.issued,
        money(&report.vouchers.face_value),
        if report.vouchers.free_shipping > 0 {
            format!(" (+{} free shipping)", report.vouchers.free_shipping)
        } else {
            String::new()
        }
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<5} {:<9} {:>8} {:>9} {:>9} {:>10} {:>6}",
        "step", "channel", "sent", "held out", "deferred", "live sent", "diff"
    );
    for row in &report.steps {
        let _ = writeln!(
            out,
            "  {:<5} {:<9} {:>8} {:>9} {:>9} {:>10} {:>6}",
            row.step,
            row.channel.as_str(),
            row.sent,
            row.held_out,
            row.deferred,
            count(row.live_sent),
            row.difference.map_or_else(|| "-".into(), |d| format!("{d:+}"))
        );
    }
    for (title, rows) in [
        ("suppressed (step, reason, carts)", &report.suppressed),
        ("deferred by quiet hours, then stopped (step, reason, carts)", &report.deferred_then_stopped),
    ] {
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "  {title}");
        for s in rows {
            let _ = writeln!(out, "  {:<5} {:<28} {:>8}", s.step, s.code.as_str(), s.carts);
        }
    }
    if let Some(against) = &report.against {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  against live campaign {:?}: it entered {} carts and sent {} messages; {} carts decide differently",
            against.campaign_id, against.live_entering, against.live_sent, against.carts_deciding_differently
        );
        if against.replay_mismatches > 0 {
            let _ = writeln!(
                out,
                "  note: on {} carts, replaying the live campaign does not give what it sent (edited during the \
                 period, or history past retention)",
                against.replay_mismatches
            );
        }
        for cart in &against.differing {
            let first = cart.first_difference.as_ref().map_or_else(String::new, |(draft, live)| {
                let said = |d: &Option<backtest::Traced>| {
                    d.as_ref().map_or_else(
                        || "nothing more".to_owned(),
                        |d| format!("{} at step {}", d.code.as_str(), d.step + 1),
                    )
                };
                format!(": first the draft {} where live {}", said(draft), said(live))
            });
            let list = |sent: &[String]| if sent.is_empty() { "nothing".to_owned() } else { sent.join(" ") };
            let _ = writeln!(
                out,
                "    {} draft sends {}, live sent {}{first}",
                cart.cart_id,
                list(&cart.draft_sent),
                list(&cart.live_sent)
            );
        }
        for trace in &against.sample {
            let _ = writeln!(out);
            let _ = writeln!(out, "  draft timeline of {}", trace.cart_id);
            for d in &trace.decisions {
                let what = match d.outcome {
                    Outcome::Sent | Outcome::HeldOut => {
                        format!("step {} {}", d.step + 1, d.channel.map_or("", Channel::as_str))
                    }
                    _ => format!("step {}", d.step + 1),
                };
                let _ = writeln!(out, "    {}  {:<22} {:<12} {}", d.at.to_rfc3339(), d.code.as_str(), what, d.message);
            }
        }
    }
    let _ = writeln!(out);
    let estimate = &report.estimate;
    let _ = writeln!(out, "  {}", estimate.basis);
    if let (Some(orders), Some(ci)) = (estimate.recovered_orders, estimate.recovered_orders_ci95) {
        let _ = writeln!(out, "  estimated recovered orders {orders:.1} ({:.1} to {:.1})", ci.0, ci.1);
    }
    if estimate.recovered_orders_by_currency.len() > 1 {
        let split: Vec<String> =
            estimate.recovered_orders_by_currency.iter().map(|(currency, n)| format!("{n:.1} in {currency}")).collect();
        let _ = writeln!(out, "  of which {}", split.join(", "));
    }
    if let Some((low, high)) = &estimate.recovered_revenue_ci95 {
        let (revenue, low, high) = (money(&estimate.recovered_revenue), money(low), money(high));
        let _ = writeln!(out, "  estimated recovered revenue {revenue} ({low} to {high})");
    }
    for row in &estimate.rows {
        let figure = match (row.orders, row.orders_ci95) {
            (Some(orders), Some(ci)) => format!("{orders:.1} orders ({:.1} to {:.1}); ", ci.0, ci.1),
            _ => String::new(),
        };
        let _ = writeln!(out, "    step {} {}: {figure}{}", row.step, row.channel.as_str(), row.basis);
    }
    out
}

/// One row per step and channel.
pub fn csv(report: &BacktestReport) -> String {
    let mut out = String::from("campaign_id,step,channel,sent,held_out,deferred,live_sent,difference\n");
    for row in &report.steps {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            report.campaign_id.replace(',', " "),
            row.step,
            row.channel.as_str(),
            row.sent,
            row.held_out,
            row.deferred,
            count(row.live_sent),
            row.difference.map_or_else(|| "-".into(), |d| d.to_string())
        );
    }
    out
}
