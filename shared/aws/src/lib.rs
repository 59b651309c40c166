//! Cartback's AWS runtime: adapters for the core's ports on DynamoDB,
//! EventBridge Scheduler, SQS, SES v2 and SNS; typed configuration; and the
//! Lambda handlers, as functions the thin `functions/*` binaries wire up.

pub mod clients;
pub mod config;
pub mod dynamo;
mod error;
pub mod feedback;
pub mod handlers;
pub mod history;
pub mod redact;
pub mod scheduler;
pub mod ses;
pub mod sns;
pub mod sqs;
pub mod sqs_batch;
pub mod sweep;
pub mod templates;
mod vouchers;
pub mod webhook_targets;
pub mod wiring;

use cartback_core::message::Channel;

/// Channels the AWS runtime always delivers. Web push needs a VAPID sender,
/// which only the local outbox has so far; the engine routes around it here.
/// `webhook` is added where its queue is configured (`CheckerConfig`).
pub const DELIVERED_CHANNELS: [Channel; 3] = [Channel::Email, Channel::Sms, Channel::Push];

/// JSON logs for CloudWatch, filtered by `RUST_LOG` (default `info`).
/// Nothing Cartback logs carries contact data: addresses, numbers and
/// tokens go through `cartback_core::contact::redact` first.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::util::SubscriberInitExt::try_init(lambda_log_subscriber(std::io::stdout, filter));
}

/// The handlers' log format, writing to `writer`: the tests capture it to
/// prove that what the Lambdas log holds no contact data.
pub fn lambda_log_subscriber<W>(
    writer: W,
    filter: tracing_subscriber::EnvFilter,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .with_target(false)
        .with_writer(writer)
        .finish()
}
