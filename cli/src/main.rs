//! `cartback`: the local runtime and the operator's tool.

// Printing is this binary's interface (tables, JSON, the dev banner); the
// libraries log through `tracing` instead.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod backtest;
mod campaign;
mod customer;
mod dashboard;
mod dev;
mod explain;
mod queue;
mod report;
mod secret;
mod send;
mod server;
mod stores;
mod template;
mod voucher;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use cartback_core::measure::report::Prices;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cartback", version, about = "Event-driven abandoned-cart recovery")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline in one process: HTTP API, SQLite state, durable
    /// timers and queues, and an outbox folder instead of email/SMS/push providers.
    Dev(DevArgs),
    /// Sign event files and post them to a running Cartback.
    Send(SendArgs),
    /// List, show, enable, disable, apply and export campaigns.
    Campaign(CampaignArgs),
    /// A customer's data: erase it (GDPR art. 17, CCPA) or export it as JSON (GDPR art. 15).
    Customer(CustomerArgs),
    /// Explain a cart: every event, decision (with its reason) and message.
    Explain(ExplainArgs),
    /// Local channel queues: stats, dead letters, redrive.
    Queue(queue::QueueArgs),
    /// What recovery really earns: treated carts against the holdout, with
    /// always-valid 95% intervals (the same report as GET /v1/report).
    Report(ReportArgs),
    /// Print a signed, expiring link to the evaluation dashboard (GET /dashboard).
    Dashboard(DashboardArgs),
    /// Issued vouchers: list them, show one, revoke one.
    Voucher(VoucherArgs),
    /// Message templates and the brand: list, show, apply a folder, export one, preview a rendering.
    Template(TemplateArgs),
    /// What a draft campaign would have done over the stored history (or an events export), beside the
    /// live campaign: sends, deferrals, suppressions, vouchers, cost and an estimate from measured rates.
    Backtest(backtest::BacktestArgs),
}

#[derive(Args)]
pub struct DevArgs {
    /// Address the HTTP API listens on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "CARTBACK_LISTEN")]
    pub listen: SocketAddr,
    /// Folder for the SQLite database, the outbox and the generated secret.
    #[arg(long, default_value = ".cartback", env = "CARTBACK_DATA")]
    pub data: PathBuf,
    /// Virtual time runs this many times faster than real time (60: a
    /// 30-minute timer fires after 30 seconds).
    #[arg(long, default_value_t = 1.0, env = "CARTBACK_CLOCK_SPEED")]
    pub clock_speed: f64,
    /// Base URL of this server as customers reach it (tracked links).
    #[arg(long, env = "CARTBACK_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
    /// The storefront's restore-cart URL; `{cart_id}` and `{token}` are filled in.
    #[arg(
        long,
        env = "CARTBACK_RESTORE_URL",
        default_value = "http://localhost:3000/cart/restore?cart={cart_id}&token={token}"
    )]
    pub restore_url: String,
    /// The From address of emails.
    #[arg(long, env = "CARTBACK_SENDER_EMAIL", default_value = "Cartback Demo Shop <shop@example.com>")]
    pub sender_email: String,
    /// Days carts, messages and timelines are kept.
    #[arg(long, env = "CARTBACK_RETENTION_DAYS", default_value_t = 90)]
    pub retention_days: u32,
    /// The sender's postal address, printed in every email's footer (CAN-SPAM); a placeholder (with a
    /// warning) when unset, for local runs only: the AWS stack requires it.
    #[arg(long, env = "CARTBACK_POSTAL_ADDRESS")]
    pub postal_address: Option<String>,
    /// A mailbox taking unsubscribe requests by mail, added to the List-Unsubscribe header as a mailto: link
    /// (e.g. unsubscribe@shop.example).
    #[arg(long, env = "CARTBACK_UNSUBSCRIBE_MAILTO")]
    pub unsubscribe_mailto: Option<String>,
    /// The shop's message prices for the report's cost, e.g. "sms=0.0075,currency=USD" (keys email, sms, push,
    /// web_push, currency); channels left out keep the AWS list prices.
    #[arg(long, env = "CARTBACK_MESSAGE_PRICES", default_value = "")]
    pub message_prices: Prices,
    /// Whether POST /v1/events still takes legacy v1 signatures (over the
    /// body only); `false` refuses them. Every other route needs v2.
    #[arg(long, env = "CARTBACK_ACCEPT_V1_SIGNATURES", default_value_t = true, action = clap::ArgAction::Set)]
    pub accept_v1_signatures: bool,
    /// The VAPID `sub` claim of web push (how a push service reaches the shop), e.g. mailto:ops@shop.example.
    #[arg(long, env = "CARTBACK_WEB_PUSH_CONTACT")]
    pub web_push_contact: Option<String>,
    /// Post web push to plain-http endpoints on this machine (a local push service in tests); browsers'
    /// endpoints are always https.
    #[arg(long, env = "CARTBACK_WEB_PUSH_ALLOW_HTTP_LOOPBACK", default_value_t = false, action = clap::ArgAction::Set)]
    pub web_push_allow_http_loopback: bool,
    /// Where each issued voucher is announced, before a message shows it, as a signed `voucher.issued`
    /// webhook (Standard Webhooks; https, or http to this machine). Off when unset.
    #[arg(long, env = "CARTBACK_VOUCHER_WEBHOOK_URL")]
    pub voucher_webhook_url: Option<String>,
    /// The webhook's signing secret, `whsec_<base64>`; required with the URL.
    #[arg(long, env = "CARTBACK_VOUCHER_WEBHOOK_SECRET", hide_env_values = true)]
    pub voucher_webhook_secret: Option<String>,
    /// Whether a message showing a voucher waits until the storefront acknowledged its webhook (otherwise it
    /// goes out and the webhook is retried on its own).
    #[arg(long, env = "CARTBACK_VOUCHER_WEBHOOK_WAIT", default_value_t = false, action = clap::ArgAction::Set)]
    pub voucher_webhook_wait: bool,
    /// An order or cart source's webhook secret as `<source>=<secret>` (shopify, bigcommerce, woocommerce,
    /// sfcc, segment); repeat for several. Overrides CARTBACK_SOURCE_SECRET_<SOURCE>. A source without a
    /// secret answers 404 at POST /v1/sources/{source}.
    #[arg(long = "source-secret", value_name = "SOURCE=SECRET")]
    pub source_secrets: Vec<String>,
    /// BigCommerce's store hash: with an API token, a thin store/cart/* webhook is mapped from the cart fetched
    /// from BigCommerce's Management API (a failed fetch answers 503, so BigCommerce retries). Unset: only
    /// full snapshots (data.cart) are mapped and thin cart webhooks are acknowledged.
    #[arg(long, env = "CARTBACK_BIGCOMMERCE_STORE_HASH")]
    pub bigcommerce_store_hash: Option<String>,
    /// The BigCommerce API account's access token (Carts, read-only); required with the store hash.
    #[arg(long, env = "CARTBACK_BIGCOMMERCE_API_TOKEN", hide_env_values = true)]
    pub bigcommerce_api_token: Option<String>,
    /// Where BigCommerce's API is (https, or http to this machine); default https://api.bigcommerce.com.
    #[arg(long, env = "CARTBACK_BIGCOMMERCE_API_URL")]
    pub bigcommerce_api_url: Option<String>,
}

#[derive(Args)]
pub struct SendArgs {
    /// JSON files, each an event or {"events": [...]}.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Where Cartback listens.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "CARTBACK_URL")]
    pub url: String,
    /// Data folder of `cartback dev`, to read its generated secret when
    /// CARTBACK_INGEST_SECRET is not set.
    #[arg(long, default_value = ".cartback", env = "CARTBACK_DATA")]
    pub data: PathBuf,
}

#[derive(Args)]
pub struct StoreArgs {
    /// The local data folder (the one `cartback dev` uses).
    #[arg(long, default_value = ".cartback", env = "CARTBACK_DATA", global = true)]
    pub data: PathBuf,
    /// Use the DynamoDB tables (CARTBACK_CONFIG_TABLE / CARTBACK_STATE_TABLE)
    /// with the standard AWS credential chain instead of the local folder.
    #[arg(long, global = true)]
    pub aws: bool,
}

#[derive(Args)]
pub struct CampaignArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub action: campaign::Action,
}

#[derive(Args)]
pub struct CustomerArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub action: customer::Action,
}

#[derive(Args)]
pub struct VoucherArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub action: voucher::Action,
}

#[derive(Args)]
pub struct TemplateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub action: template::Action,
}

#[derive(Args)]
pub struct DashboardArgs {
    /// Where the secret comes from: the local data folder (or CARTBACK_INGEST_SECRET), or with `--aws` the
    /// stack's secret (CARTBACK_INGEST_SECRET_ARN).
    #[command(flatten)]
    pub store: StoreArgs,
    /// Base URL of the Cartback API the link points at (the stack's ApiUrl output on AWS).
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "CARTBACK_URL")]
    pub url: String,
    /// How long the link opens the dashboard, e.g. 12h, 30m, 7d (31 days at most).
    #[arg(long, default_value = "12h", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
}

#[derive(Args)]
pub struct ExplainArgs {
    pub cart_id: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the timeline as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ReportArgs {
    /// One campaign; without it, every campaign with carts entering in the period.
    #[arg(long)]
    pub campaign: Option<String>,
    /// First day (UTC, YYYY-MM-DD) of carts entering; default 13 days before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// Last day (UTC, YYYY-MM-DD, inclusive); default today.
    #[arg(long)]
    pub to: Option<String>,
    /// Attribution window: whole hours or days, e.g. 24h (default), 48h, 2d; 1h to 720h.
    #[arg(long)]
    pub window: Option<String>,
    /// A channel's own window, e.g. --channel-window sms=12h (repeatable).
    #[arg(long = "channel-window", value_name = "CHANNEL=WINDOW")]
    pub channel_window: Vec<String>,
    /// Print the report as JSON (the GET /v1/report body).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print one CSV row per campaign (and the total) with the top-level fields.
    #[arg(long)]
    pub csv: bool,
    /// Message prices for the cost, as `cartback dev` takes them.
    #[arg(long, env = "CARTBACK_MESSAGE_PRICES", default_value = "")]
    pub message_prices: Prices,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Dev(args) => dev::run(args).await,
            Command::Send(args) => send::run(args).await,
            Command::Campaign(args) => campaign::run(args).await,
            Command::Customer(args) => customer::run(args).await,
            Command::Explain(args) => explain::run(args).await,
            Command::Queue(args) => queue::run(args).await,
            Command::Report(args) => report::run(args).await,
            Command::Dashboard(args) => dashboard::run(args).await,
            Command::Voucher(args) => voucher::run(args).await,
            Command::Template(args) => template::run(args).await,
            Command::Backtest(args) => backtest::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
