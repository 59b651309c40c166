//! `cartback dev`: the whole pipeline in one process. SQLite holds state,
//! timers and queues (so a restart loses nothing); an outbox folder stands in
//! for the providers; a virtual clock can run time faster for demos.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Context;
use cartback_core::api::Api;
use cartback_core::campaign::Campaign;
use cartback_core::message::{Channel, MessageJob, QueueName};
use cartback_core::ports::{CampaignStore, Clock, PriorAttempt, SendError, Sender, StateStore, SystemClock};
use cartback_core::service::{
    check_postal_address, check_unsubscribe_mailbox, CampaignCache, CheckOutcome, Checker, Delivery, DeliveryError,
    DeliveryOutcome, Ingest, Settings, TemplateCache,
};
use cartback_core::sources::{SourceSecret, SourceSettings};
use cartback_local::{
    Database, Outbox, OutboxSender, RetryOutcome, SqliteQueue, SqliteScheduler, TimerWheel, VirtualClock,
};
use cartback_webhook::bigcommerce::BigCommerceSettings;
use cartback_webhook::channel::{HttpWebhookSender, WebhookTargets};
use cartback_webhook::WebhookSettings;
use chrono::{DateTime, Duration, Utc};
use tokio::sync::Notify;

use crate::secret::{self, Source};
use crate::DevArgs;

/// Longest real-time nap of a worker loop, so a clock-speed change in
/// pending work is noticed quickly.
const MAX_NAP: StdDuration = StdDuration::from_millis(500);
/// How long a queued job stays invisible while a worker holds it.
const JOB_VISIBILITY_MINUTES: i64 = 5;

pub async fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    // Business time resumes where the last run left it, never earlier.
    let clock = Arc::new(VirtualClock::persistent(&args.data, args.clock_speed).context("cannot start the clock")?);
    let db = Database::open(&args.data)
        .with_context(|| format!("cannot open the database in {}", args.data.display()))?
        .with_clock(clock.clone());
    let (secret, secret_text, source) = secret::load_or_generate(&args.data)?;
    if db.list().await?.is_empty() {
        db.put(&Campaign::default_campaign()).await?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let public_base_url = args.public_base_url.clone().unwrap_or_else(|| format!("http://{address}"));
    let mut settings = Settings::new(secret, &public_base_url, &args.restore_url);
    settings.retention = Duration::days(i64::from(args.retention_days.max(1)));
    settings.prices = args.message_prices.clone();
    match args.postal_address.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        Some(address) => {
            check_postal_address(address)
                .map_err(|e| anyhow::anyhow!("--postal-address (CARTBACK_POSTAL_ADDRESS) {e}"))?;
            settings.postal_address = address.to_owned();
        }
        None => tracing::warn!(
            "no postal address configured: emails print a placeholder; set CARTBACK_POSTAL_ADDRESS before real sends"
        ),
    }
    if let Some(mailbox) = args.unsubscribe_mailto.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        check_unsubscribe_mailbox(mailbox)
            .map_err(|e| anyhow::anyhow!("--unsubscribe-mailto (CARTBACK_UNSUBSCRIBE_MAILTO) {e}"))?;
        settings.unsubscribe_mailto = Some(mailbox.to_owned());
    }
    settings.sources = source_settings(&args.source_secrets)?;
    let bigcommerce = BigCommerceSettings::parse(
        args.bigcommerce_store_hash.as_deref(),
        args.bigcommerce_api_token.as_deref(),
        cartback_webhook::bigcommerce::TOKEN_VAR,
        args.bigcommerce_api_url.as_deref(),
    )?;
    settings.sources.bigcommerce_carts = bigcommerce.as_ref().map(BigCommerceSettings::fetcher);
    // Made once into the data folder and reused: browsers' subscriptions are bound to its public key.
    let vapid = cartback_webpush::VapidKey::load_or_create(&args.data)?;
    let web_push_line = format!(
        "web push: VAPID public key {} (GET /v1/web-push/public-key; private key in {})",
        vapid.public_key(),
        args.data.join(cartback_webpush::KEY_FILE).display()
    );
    let web_push = cartback_webpush::WebPushSender::new(
        vapid,
        args.web_push_contact.as_deref(),
        args.web_push_allow_http_loopback,
    );
    settings.web_push_public_key = Some(web_push.public_key());
    let settings = Arc::new(settings);
    let wait = args.voucher_webhook_wait.to_string();
    let webhook = WebhookSettings::parse(
        args.voucher_webhook_url.as_deref(),
        args.voucher_webhook_secret.as_deref(),
        cartback_webhook::SECRET_VAR,
        Some(&wait),
    )?;

    let targets = WebhookTargets::from_env()?;
    let outbox = Outbox::new(&args.data)?;
    // Before any sender runs: what a crash mid-write left is not a message.
    outbox.recover()?;
    // The store knows the outbox: erasing a customer removes their copies.
    let db = db.with_outbox(outbox.clone());
    let store: Arc<dyn StateStore> = Arc::new(db.clone());
    let scheduler = Arc::new(SqliteScheduler::new(db.clone()));
    let queue = Arc::new(SqliteQueue::new(db.clone()));
    let campaigns = Arc::new(CampaignCache::new(Arc::new(db.clone()), clock.clone(), Duration::seconds(60)));
    let api = Arc::new(Api {
        ingest: Ingest {
            store: store.clone(),
            scheduler: scheduler.clone(),
            campaigns: campaigns.clone(),
            clock: clock.clone(),
        },
        store: store.clone(),
        clock: clock.clone(),
        // The replay window follows real time even when business time runs faster.
        wall_clock: Arc::new(SystemClock),
        settings: settings.clone(),
        accept_v1_signatures: args.accept_v1_signatures,
        templates: Arc::new(db.clone()),
    });
    let checker = Arc::new(Checker {
        store: store.clone(),
        scheduler: scheduler.clone(),
        queue: queue.clone(),
        campaigns: campaigns.clone(),
        // Stored sets and brand (`cartback template apply`) over the shipped ones, re-read within a minute.
        templates: Arc::new(TemplateCache::new(Arc::new(db.clone()), clock.clone(), Duration::seconds(60))),
        clock: clock.clone(),
        settings: settings.clone(),
    });
    let delivery = Arc::new(Delivery {
        store: store.clone(),
        sender: Arc::new(LocalSender {
            outbox: outbox.sender(&args.sender_email).with_web_push(web_push),
            webhook: HttpWebhookSender::new(targets.clone()),
        }),
        campaigns,
        clock: clock.clone(),
        webhook: webhook.as_ref().map(WebhookSettings::webhook),
    });

    let secret_line = match source {
        Source::Generated => {
            format!("ingest secret (generated, saved in {}): {secret_text}", args.data.join("ingest-secret").display())
        }
        Source::Existing => format!("ingest secret: read from {}", args.data.join("ingest-secret").display()),
        Source::Environment => format!("ingest secret: from {}", secret::ENV),
    };
    let webhook_line = match &webhook {
        None => "voucher.issued webhook: off".to_owned(),
        Some(w) if w.wait => "voucher.issued webhook: on (messages wait for its acknowledgement)".to_owned(),
        Some(_) => "voucher.issued webhook: on (retried until acknowledged; messages do not wait)".to_owned(),
    };
    let webhook_line = match targets.names() {
        names if names.is_empty() => format!(
            "{webhook_line}\n  webhook channel targets: none (set CARTBACK_WEBHOOK_TARGET_<NAME>_URL and _SECRET)"
        ),
        names => {
            let names: Vec<String> = names.into_iter().map(String::from).collect();
            format!("{webhook_line}\n  webhook channel targets: {}", names.join(", "))
        }
    };
    let configured: Vec<&str> = settings.sources.configured().into_iter().map(|s| s.as_str()).collect();
    let sources_line = match configured.is_empty() {
        true => "order and cart sources: none (set CARTBACK_SOURCE_SECRET_<SOURCE> or --source-secret)".to_owned(),
        false => format!("order and cart sources: {} at /v1/sources/{{source}}", configured.join(", ")),
    };
    let sources_line = match &bigcommerce {
        Some(b) => format!(
            "{sources_line}
  BigCommerce carts: fetched from {} (store {})",
            b.api_url, b.store_hash
        ),
        None => sources_line,
    };
    say(&format!(
        "Cartback is listening on http://{address}\n  data folder: {}  (outbox: {})\n  clock speed: {}x\n  \
         {secret_line}\n  {webhook_line}\n  {web_push_line}\n  {sources_line}",
        args.data.display(),
        outbox.dir().display(),
        clock.speed()
    ));

    let timers =
        tokio::spawn(timer_loop(TimerWheel::new(db.clone()), scheduler.armed_signal(), checker, clock.clone()));
    let workers: Vec<_> = QueueName::ALL
        .into_iter()
        .map(|name| tokio::spawn(queue_worker(name, queue.clone(), delivery.clone(), clock.clone())))
        .collect();
    let purge = tokio::spawn(purge_loop(db.clone(), clock.clone(), settings.retention));

    crate::server::serve(listener, api, Arc::new(db.clone()), shutdown_signal()).await?;
    timers.abort();
    purge.abort();
    for w in workers {
        w.abort();
    }
    say(&format!("Cartback stopped; pending timers and queued messages are kept in {}", db.path().display()));
    Ok(ExitCode::SUCCESS)
}

/// The local senders: webhook jobs are really POSTed to their target (the
/// outbox keeps a copy of what the target saw), every other channel goes
/// to the outbox.
struct LocalSender {
    outbox: OutboxSender,
    webhook: HttpWebhookSender,
}

#[async_trait::async_trait]
impl Sender for LocalSender {
    async fn send(&self, job: &MessageJob, now: DateTime<Utc>) -> Result<String, SendError> {
        if job.channel != Channel::Webhook {
            return self.outbox.send(job, now).await;
        }
        let delivered = self.webhook.deliver(job).await?;
        // Should the copy fail, the retry posts again with the same
        // `webhook-id`, which the receiver drops as a repeat.
        self.outbox.send(&delivered.seen, now).await?;
        Ok(delivered.webhook_id)
    }

    async fn prior_attempt(&self, job: &MessageJob) -> Result<PriorAttempt, SendError> {
        // The outbox's copy says it went. Without one a webhook is posted
        // (again): a receiver drops a repeated `webhook-id`.
        self.outbox.prior_attempt(job).await
    }
}

/// Prints a line for the operator. A closed stdout (a supervisor that went
/// away) must not bring the pipeline down, so write errors are ignored.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}

/// Sleeps until `at` (virtual time), a wake-up signal, or `MAX_NAP`.
async fn nap(clock: &VirtualClock, at: Option<DateTime<Utc>>, signal: &Notify) {
    let real = at.map_or(MAX_NAP, |t| clock.real_duration_until(t).min(MAX_NAP));
    tokio::select! {
        _ = tokio::time::sleep(real) => {}
        _ = signal.notified() => {}
    }
}

async fn timer_loop(wheel: TimerWheel, armed: Arc<Notify>, checker: Arc<Checker>, clock: Arc<VirtualClock>) {
    loop {
        match wheel.next_due(clock.now()).await {
            Ok(Some(timer)) => match checker.on_timer(&timer).await {
                Ok(outcome) => {
                    match &outcome {
                        CheckOutcome::Decided { decision, sent } => tracing::info!(
                            cart_id = %timer.cart_id, reason = decision.reason().code.as_str(), queued = sent.len(), "cart checked"
                        ),
                        other => tracing::debug!(cart_id = %timer.cart_id, ?other, "timer had nothing to do"),
                    }
                    if let Err(error) = wheel.complete(&timer).await {
                        tracing::warn!(%error, "timer not cleared; it will fire again into a no-op");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, cart_id = %timer.cart_id, "check failed; retrying in a minute");
                    if let Err(error) = wheel.retry_at(&timer, clock.now() + Duration::minutes(1)).await {
                        tracing::warn!(%error, "timer retry not recorded; its lease will bring it back");
                    }
                }
            },
            Ok(None) => {
                let next = wheel.earliest_due().await.unwrap_or(None);
                nap(&clock, next, &armed).await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read timers");
                tokio::time::sleep(MAX_NAP).await;
            }
        }
    }
}

async fn queue_worker(name: QueueName, queue: Arc<SqliteQueue>, delivery: Arc<Delivery>, clock: Arc<VirtualClock>) {
    let signal = queue.enqueued_signal(name);
    loop {
        let received = queue.receive(name, clock.now(), Duration::minutes(JOB_VISIBILITY_MINUTES)).await;
        match received {
            Ok(Some(job)) => {
                let result = delivery.deliver(&job.job).await;
                let failure = match result {
                    Ok(outcome) => {
                        match &outcome {
                            DeliveryOutcome::Sent { .. } => {
                                tracing::info!(queue = name.as_str(), message_id = %job.job.message_id, "message sent to the outbox")
                            }
                            DeliveryOutcome::Rejected(error) => {
                                tracing::warn!(queue = name.as_str(), message_id = %job.job.message_id, %error, "message rejected for good")
                            }
                            DeliveryOutcome::Skipped(why) => {
                                tracing::info!(queue = name.as_str(), message_id = %job.job.message_id, why = %why, "message skipped")
                            }
                        }
                        None
                    }
                    Err(DeliveryError::Busy { retry_at } | DeliveryError::Deferred { until: retry_at, .. }) => {
                        if let Err(error) = queue.postpone(job.id, retry_at).await {
                            tracing::warn!(%error, "queue bookkeeping failed; the job reappears after its visibility timeout");
                        }
                        continue;
                    }
                    Err(DeliveryError::Retry(e)) => Some((e, None)),
                    Err(DeliveryError::RetryAfter { error, at }) => Some((error, Some(at))),
                    Err(DeliveryError::Port(e)) => Some((e.to_string(), None)),
                };
                let settled = match failure {
                    None => queue.ack(job.id).await.map(|_| ()),
                    Some((error, not_before)) => queue.retry_not_before(job.id, clock.now(), &error, not_before).await.map(|outcome| {
                        if outcome == RetryOutcome::DeadLettered {
                            tracing::error!(queue = name.as_str(), message_id = %job.job.message_id, %error, "message moved to the dead-letter table");
                        } else {
                            tracing::warn!(queue = name.as_str(), message_id = %job.job.message_id, %error, "delivery failed; will retry");
                        }
                    }),
                };
                if let Err(error) = settled {
                    tracing::warn!(%error, "queue bookkeeping failed; the job reappears after its visibility timeout");
                }
            }
            Ok(None) => {
                let next = queue.next_visible_at(name).await.unwrap_or(None);
                nap(&clock, next, &signal).await;
            }
            Err(error) => {
                tracing::warn!(%error, queue = name.as_str(), "cannot read the queue");
                tokio::time::sleep(MAX_NAP).await;
            }
        }
    }
}

async fn purge_loop(db: Database, clock: Arc<VirtualClock>, retention: Duration) {
    loop {
        match db.purge_expired(clock.now(), retention).await {
            Ok(report) => tracing::debug!(?report, "expired records purged"),
            Err(error) => tracing::warn!(%error, "purge failed"),
        }
        tokio::time::sleep(clock.real_duration(Duration::hours(1)).max(StdDuration::from_secs(1))).await;
    }
}

/// The sources from the environment (`CARTBACK_SOURCE_SECRET_<SOURCE>`,
/// `CARTBACK_SHOP_CURRENCY`), then `--source-secret <source>=<secret>` flags.
fn source_settings(flags: &[String]) -> anyhow::Result<SourceSettings> {
    let mut settings = SourceSettings::from_lookup(|name| std::env::var(name).ok()).map_err(anyhow::Error::msg)?;
    for flag in flags {
        let (name, text) = flag
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--source-secret takes <source>=<secret>, e.g. shopify=<app secret>"))?;
        let source = cartback_core::sources::Source::parse(name.trim()).ok_or_else(|| {
            let sources = "shopify, bigcommerce, woocommerce, sfcc, segment";
            anyhow::anyhow!("--source-secret: no source {name:?}; the sources are {sources}")
        })?;
        let secret = SourceSecret::new(text).map_err(|e| anyhow::anyhow!("--source-secret {source}: {e}"))?;
        settings = settings.with_secret(source, secret);
    }
    Ok(settings)
}
