//! The AWS emulator harness: ONE moto server per test binary, on a free
//! loopback port, stopped when the binary exits; unique resource names per
//! test; a counting, fault-injecting HTTP proxy in front of moto; fixtures
//! that create a Cartback stack (tables, schedule group, queues with
//! dead-letter queues, SES identity, secret); and a settable clock.
//!
//! The moto binary is `$CARTBACK_MOTO_BIN`, or `.venv-moto/bin/moto_server`
//! in the first ancestor of this crate that has one; failing both, it is
//! installed into `<workspace>/.venv-moto` with `python3 -m venv` and
//! `pip install 'moto[server]==5.2.5'`.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use chrono::{DateTime, Utc};

use cartback_aws::clients::Clients;
use cartback_aws::config::{
    self as cfg, CheckerConfig, EmailConfig, IngestConfig, PushConfig, SmsConfig, TimerConfig, WebhookConfig,
};
use cartback_core::ports::Clock;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// A running moto server, reached through a gateway that forwards one
/// request at a time.
///
/// Why the gateway: moto serves requests on parallel threads and does not
/// lock its DynamoDB tables, so two concurrent conditional writes can both
/// pass their condition (seen with 8 concurrent claims: 2 winners). Real
/// DynamoDB evaluates a condition and its write atomically per item. One
/// request at a time restores that guarantee without changing what moto
/// answers; concurrency between *clients* (our tests' racing claimants)
/// stays real.
pub struct Moto {
    /// The gateway: what SDK clients talk to.
    pub endpoint: String,
    /// The gateway's port (per-test proxies forward to it).
    pub port: u16,
    /// moto's own port.
    pub moto_port: u16,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

impl Moto {
    /// The test binary's moto server, started on first use.
    pub fn global() -> &'static Moto {
        MOTO.get_or_init(|| Moto::start().unwrap_or_else(|e| panic!("cannot start moto server: {e}")))
    }

    fn start() -> Result<Moto, String> {
        let bin = moto_bin()?;
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let log = std::env::temp_dir().join(format!("cartback-moto-{}-{port}.log", std::process::id()));
        // A watchdog shell owns moto and kills it as soon as this test
        // process is gone, however it ends (statics are never dropped, and
        // a panic or abort must not leave a server behind).
        let script = r#"python="$1"; launcher="$2"; port="$3"; parent="$4"; log="$5"
"$python" -c "$launcher" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; exit 0' TERM INT
while kill -0 "$parent" 2>/dev/null && kill -0 "$moto" 2>/dev/null; do sleep 0.5; done
kill "$moto" 2>/dev/null; wait "$moto" 2>/dev/null"#;
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("moto-watchdog")
            .arg(moto_python(&bin))
            .arg(MOTO_LAUNCHER)
            .arg(port.to_string())
            .arg(std::process::id().to_string())
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok((200, _)) = http(port, "GET", "/moto-api/data.json", "") {
                let gateway = Proxy::start_with(port, true);
                let gateway_port =
                    gateway.endpoint.rsplit(':').next().and_then(|p| p.parse().ok()).expect("gateway port");
                return Ok(Moto { endpoint: gateway.endpoint, port: gateway_port, moto_port: port });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("moto did not answer on port {port} within 60 s; see {}", log.display()))
    }

    /// A plain HTTP/1.0 request to moto (for `/moto-api/...`).
    pub fn http(&self, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
        http(self.moto_port, method, path, body)
    }

    /// Everything moto recorded (`GET /moto-api/data.json`).
    pub fn data(&self) -> serde_json::Value {
        let (_, body) = self.http("GET", "/moto-api/data.json", "").expect("moto data");
        serde_json::from_str(&body).expect("moto data is JSON")
    }

    /// SDK config pointing at `endpoint` (moto, or a proxy in front of it),
    /// with static test credentials and Cartback's retry policy.
    pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(cartback_aws::clients::https_client())
            .endpoint_url(endpoint)
            .region(Region::new(REGION))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "cartback-tests",
            ))
            .retry_config(cartback_aws::clients::retry_config())
            .timeout_config(cartback_aws::clients::timeout_config())
            .load()
            .await
    }

    pub async fn clients(&self) -> Clients {
        Clients::new(&Self::sdk_config_for(&self.endpoint).await)
    }
}

fn http(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status line")?;
    Ok((status, body.to_owned()))
}

/// moto's server with two of its costs that grow with the data removed
/// (see the script's notes).
const MOTO_LAUNCHER: &str = include_str!("../moto_server.py");

/// The Python interpreter of moto's environment (the `moto_server` script's
/// sibling in a virtualenv), else the one on `PATH`.
fn moto_python(moto_server: &Path) -> PathBuf {
    // A symlinked script (pipx) has its environment where the link points.
    let resolved = std::fs::canonicalize(moto_server).unwrap_or_else(|_| moto_server.to_path_buf());
    let sibling = resolved.with_file_name("python3");
    if sibling.exists() {
        sibling
    } else {
        PathBuf::from("python3")
    }
}

fn moto_bin() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("CARTBACK_MOTO_BIN").filter(|b| !b.is_empty()) {
        return Ok(PathBuf::from(bin));
    }
    venv_bin(".venv-moto", "moto_server", "moto[server]==5.2.5")
}

/// `bin` of the Python virtual environment `venv` (in the workspace or
/// above it), installing `package` into `<workspace>/<venv>` when missing.
pub fn venv_bin(venv: &str, bin: &str, package: &str) -> Result<PathBuf, String> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for dir in manifest.ancestors() {
        let found = dir.join(venv).join("bin").join(bin);
        if found.exists() {
            return Ok(found);
        }
    }
    // Install next to the workspace's Cargo.lock.
    let root = manifest.ancestors().find(|d| d.join("Cargo.lock").exists()).unwrap_or(&manifest).to_path_buf();
    let venv = root.join(venv);
    let run = |cmd: &mut Command| -> Result<(), String> {
        let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
        status.success().then_some(()).ok_or_else(|| format!("{cmd:?} failed with {status}"))
    };
    eprintln!("installing {package} into {}", venv.display());
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", package]))?;
    Ok(venv.join("bin").join(bin))
}

/// A name no other test in this run (or a concurrent run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{}-{nanos:x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------- clock

/// A clock the test sets and advances.
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    pub fn new(now: DateTime<Utc>) -> Arc<Self> {
        Arc::new(TestClock(Mutex::new(now)))
    }
    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().unwrap() = now;
    }
    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

// ---------------------------------------------------------------- stack

/// One test's Cartback stack on moto, with every name unique.
#[derive(Clone)]
pub struct Stack {
    pub clients: Clients,
    pub env: HashMap<String, String>,
    pub state_table: String,
    pub config_table: String,
    pub schedule_group: String,
    pub queues: HashMap<&'static str, QueuePair>,
    pub sender: String,
    pub secret: String,
    pub apns_arn: String,
    pub fcm_arn: String,
}

#[derive(Debug, Clone)]
pub struct QueuePair {
    pub url: String,
    pub arn: String,
    pub dlq_url: String,
    pub dlq_arn: String,
}

pub const CHECKER_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:cartback-checker";
pub const SCHEDULER_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/cartback-scheduler";
pub const SECRET: &str = "test-secret-0123456789-abcdefghij";
/// A timer dead-letter queue ARN for adapters built without a `Stack`.
pub const TIMER_DLQ_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:cartback-timers-dlq";

impl Stack {
    /// Creates the stack's resources through `clients` (point them at moto
    /// directly, or through a proxy). `max_receive_count` is the queues'
    /// redrive setting; their visibility timeout is 0 so a failed message
    /// comes back at once.
    pub async fn create(clients: Clients, max_receive_count: u32) -> Stack {
        let state_table = unique("state");
        let config_table = unique("config");
        create_table(&clients, &state_table, true).await;
        create_table(&clients, &config_table, false).await;
        let schedule_group = unique("timers");
        clients.scheduler.create_schedule_group().name(&schedule_group).send().await.expect("schedule group");
        let mut queues = HashMap::new();
        // The channel queues, and "timers": the checker's redrive queue, whose
        // dead-letter queue is also the schedules' and the checker's
        // asynchronous-failure destination (see template.yaml).
        for name in ["email", "sms", "push", "webhook", "timers"] {
            queues.insert(name, create_queue_pair(&clients, &unique(name), max_receive_count).await);
        }
        let sender = format!("{}@shop.example", unique("shop"));
        clients.ses.create_email_identity().email_identity(&sender).send().await.expect("email identity");
        let secret_arn = clients
            .secrets
            .create_secret()
            .name(unique("ingest"))
            .secret_string(SECRET)
            .send()
            .await
            .expect("secret")
            .arn
            .unwrap();
        let app = |platform: &'static str| {
            let clients = clients.clone();
            async move {
                clients
                    .sns
                    .create_platform_application()
                    .name(unique("app"))
                    .platform(platform)
                    .attributes("PlatformCredential", "test")
                    .send()
                    .await
                    .expect("platform application")
                    .platform_application_arn
                    .unwrap()
            }
        };
        let apns_arn = app("APNS").await;
        let fcm_arn = app("GCM").await;
        let env: HashMap<String, String> = [
            (cfg::STATE_TABLE, state_table.clone()),
            (cfg::CONFIG_TABLE, config_table.clone()),
            (cfg::RETENTION_DAYS, "90".into()),
            (cfg::INGEST_SECRET_ARN, secret_arn),
            (cfg::SCHEDULE_GROUP, schedule_group.clone()),
            (cfg::SCHEDULER_ROLE_ARN, SCHEDULER_ROLE_ARN.into()),
            (cfg::CHECKER_ARN, CHECKER_ARN.into()),
            (cfg::TIMER_DEAD_LETTER_QUEUE_ARN, queues["timers"].dlq_arn.clone()),
            (cfg::PUBLIC_BASE_URL, "https://cb.example".into()),
            (cfg::RESTORE_URL, "https://shop.example/cart/{cart_id}?t={token}".into()),
            (cfg::EMAIL_QUEUE_URL, queues["email"].url.clone()),
            (cfg::SMS_QUEUE_URL, queues["sms"].url.clone()),
            (cfg::PUSH_QUEUE_URL, queues["push"].url.clone()),
            (cfg::WEBHOOK_QUEUE_URL, queues["webhook"].url.clone()),
            (cfg::SENDER_EMAIL, format!("Shop <{sender}>")),
            (cfg::SES_CONFIGURATION_SET, "cartback".into()),
            (cfg::POSTAL_ADDRESS, "Demo Shop, 1 Test Street, 75001 Paris, France".into()),
            (cfg::UNSUBSCRIBE_MAILTO, "unsubscribe@shop.example".into()),
            (cfg::SMS_SENDER_ID, "".into()),
            (cfg::APNS_PLATFORM_APPLICATION_ARN, apns_arn.clone()),
            (cfg::FCM_PLATFORM_APPLICATION_ARN, fcm_arn.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Stack {
            clients,
            env,
            state_table,
            config_table,
            schedule_group,
            queues,
            sender,
            secret: SECRET.into(),
            apns_arn,
            fcm_arn,
        }
    }

    /// Stores the built-in campaign with no holdout in the stack's config
    /// table, for tests that expect every customer to get their messages
    /// (with the table empty, the default holds out 10% of customers).
    pub async fn treat_everyone(&self) {
        use cartback_core::ports::CampaignStore;
        let store = cartback_aws::dynamo::DynamoCampaignStore::new(self.clients.dynamodb.clone(), &self.config_table);
        let campaign = cartback_core::campaign::Campaign {
            holdout_percent: 0,
            ..cartback_core::campaign::Campaign::default_campaign()
        };
        store.put(&campaign).await.expect("campaign stored");
    }

    /// The same stack, reached through other clients (e.g. a proxy).
    pub fn with_clients(&self, clients: Clients) -> Stack {
        Stack { clients, ..self.clone() }
    }

    fn env_fn(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |k: &str| self.env.get(k).cloned()
    }
    pub fn timer_config(&self) -> TimerConfig {
        TimerConfig::from_env(&self.env_fn()).expect("timer config")
    }
    pub fn ingest_config(&self) -> IngestConfig {
        IngestConfig::from_env(&self.env_fn()).expect("ingest config")
    }
    pub fn checker_config(&self) -> CheckerConfig {
        CheckerConfig::from_env(&self.env_fn()).expect("checker config")
    }
    pub fn email_config(&self) -> EmailConfig {
        EmailConfig::from_env(&self.env_fn()).expect("email config")
    }
    pub fn sms_config(&self) -> SmsConfig {
        SmsConfig::from_env(&self.env_fn()).expect("sms config")
    }
    pub fn push_config(&self) -> PushConfig {
        PushConfig::from_env(&self.env_fn()).expect("push config")
    }
    pub fn webhook_config(&self) -> WebhookConfig {
        WebhookConfig::from_env(&self.env_fn()).expect("webhook config")
    }
    pub fn secret(&self) -> cartback_core::signing::Secret {
        cartback_core::signing::Secret::new(self.secret.as_bytes().to_vec()).unwrap()
    }

    /// The HTTP application the ingest function serves, on this stack's
    /// clients, ingest config and secret.
    pub fn http_app(&self, clock: Arc<dyn Clock>) -> axum::Router {
        let api = cartback_aws::wiring::api(&self.clients, &self.ingest_config(), self.secret(), clock);
        cartback_http::router(Arc::new(api))
    }

    /// Emulates the Lambda SQS event source mapping once: receives up to 10
    /// messages as an `SqsEvent` (empty when the queue is empty).
    pub async fn receive(&self, queue: &str) -> SqsEvent {
        let pair = &self.queues[queue];
        receive_event(&self.clients, &pair.url, &pair.arn).await
    }

    /// ... and, given the handler's answer, deletes what succeeded (what the
    /// event source mapping does with a partial batch response).
    pub async fn settle(&self, queue: &str, event: &SqsEvent, response: &SqsBatchResponse) {
        let url = &self.queues[queue].url;
        settle_event(&self.clients, url, event, response).await
    }

    /// The timers armed in the stack's schedule group (moto keeps a one-time
    /// schedule after its time and never fires it), latest first, each with
    /// its target's dead-letter queue.
    pub async fn schedules(&self) -> Vec<(cartback_core::ports::TimerPayload, Option<String>)> {
        let listed = self.clients.scheduler.list_schedules().group_name(&self.schedule_group).send().await.unwrap();
        let mut timers = Vec::new();
        for summary in listed.schedules {
            let name = summary.name.unwrap();
            let got = self
                .clients
                .scheduler
                .get_schedule()
                .name(&name)
                .group_name(&self.schedule_group)
                .send()
                .await
                .unwrap();
            let target = got.target.unwrap();
            assert_eq!(target.arn, CHECKER_ARN);
            let timer: cartback_core::ports::TimerPayload =
                serde_json::from_str(target.input.as_deref().unwrap()).unwrap();
            timers.push((timer, target.dead_letter_config.and_then(|d| d.arn)));
        }
        timers.sort_by_key(|(t, _)| std::cmp::Reverse(t.due_at));
        timers
    }

    /// The emails SES took from this stack's sender, as moto records them
    /// (`raw_data`, `id`, `source`), oldest first.
    pub fn sent_emails(&self) -> Vec<serde_json::Value> {
        let sent = Moto::global().data()["ses"]["RawMessage"].as_array().cloned().unwrap_or_default();
        sent.into_iter().filter(|m| m["source"].as_str().unwrap_or_default().contains(&self.sender)).collect()
    }

    /// The raw MIME text of each email SES took from this stack's sender.
    pub fn sent_raw_emails(&self) -> Vec<String> {
        self.sent_emails().iter().map(|m| m["raw_data"].as_str().unwrap_or_default().to_owned()).collect()
    }

    pub async fn queue_depth(&self, url: &str) -> usize {
        let out = self
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        out.attributes().map(|a| a.values().filter_map(|v| v.parse::<usize>().ok()).sum()).unwrap_or(0)
    }
}

// The event types are `#[non_exhaustive]`: no struct literal outside their crate.
pub async fn receive_event(clients: &Clients, url: &str, arn: &str) -> SqsEvent {
    receive_event_hidden(clients, url, arn, None).await
}

/// As `receive_event`, hiding the received messages for `visibility_seconds`
/// (as the event source mapping does for the queue's visibility timeout),
/// so parallel receivers do not take the same messages.
#[allow(clippy::field_reassign_with_default)]
pub async fn receive_event_hidden(
    clients: &Clients,
    url: &str,
    arn: &str,
    visibility_seconds: Option<i32>,
) -> SqsEvent {
    let out = clients
        .sqs
        .receive_message()
        .queue_url(url)
        .set_visibility_timeout(visibility_seconds)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive");
    let records = out
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id;
            record.receipt_handle = m.receipt_handle;
            record.body = m.body;
            record.md5_of_body = m.md5_of_body;
            record.attributes =
                m.attributes.unwrap_or_default().into_iter().map(|(k, v)| (k.as_str().to_owned(), v)).collect();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(arn.to_owned());
            record.aws_region = Some(REGION.into());
            record
        })
        .collect();
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

pub async fn settle_event(clients: &Clients, url: &str, event: &SqsEvent, response: &SqsBatchResponse) {
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    for record in &event.records {
        if !failed.contains(&record.message_id.as_deref().unwrap_or_default()) {
            clients
                .sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(record.receipt_handle.clone().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
}

/// Creates a Cartback state table (`state`: with gsi1 and TTL) or config table.
pub async fn create_table(clients: &Clients, name: &str, state: bool) {
    let attr = |n: &str| {
        AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build().unwrap()
    };
    let key = |n: &str, t: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(t).build().unwrap();
    let mut create = clients
        .dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range));
    if state {
        create = create
            .attribute_definitions(attr("gsi1pk"))
            .attribute_definitions(attr("gsi1sk"))
            .attribute_definitions(attr(cartback_aws::dynamo::TIMER_SHARD))
            .attribute_definitions(attr(cartback_aws::dynamo::TIMER_DUE))
            .attribute_definitions(attr(cartback_aws::dynamo::CUSTOMER_CART))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(cartback_aws::dynamo::CUSTOMER_INDEX)
                    .key_schema(key(cartback_aws::dynamo::CUSTOMER_CART, KeyType::Hash))
                    .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                    .build()
                    .unwrap(),
            )
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(cartback_aws::dynamo::TIMER_INDEX)
                    .key_schema(key(cartback_aws::dynamo::TIMER_SHARD, KeyType::Hash))
                    .key_schema(key(cartback_aws::dynamo::TIMER_DUE, KeyType::Range))
                    .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                    .build()
                    .unwrap(),
            )
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("gsi1")
                    .key_schema(key("gsi1pk", KeyType::Hash))
                    .key_schema(key("gsi1sk", KeyType::Range))
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .unwrap(),
            );
    }
    create.send().await.expect("create table");
    if state {
        clients
            .dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder().attribute_name("expires_at").enabled(true).build().unwrap(),
            )
            .send()
            .await
            .expect("ttl");
    }
}

async fn create_queue_pair(clients: &Clients, name: &str, max_receive_count: u32) -> QueuePair {
    let arn_of = |url: String| {
        let clients = clients.clone();
        async move {
            let out = clients
                .sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .expect("queue arn");
            out.attributes().and_then(|a| a.get(&QueueAttributeName::QueueArn)).cloned().expect("arn")
        }
    };
    let dlq_url =
        clients.sqs.create_queue().queue_name(format!("{name}-dlq")).send().await.expect("dlq").queue_url.unwrap();
    let dlq_arn = arn_of(dlq_url.clone()).await;
    let redrive =
        serde_json::json!({ "deadLetterTargetArn": &dlq_arn, "maxReceiveCount": max_receive_count.to_string() })
            .to_string();
    let url = clients
        .sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::VisibilityTimeout, "0")
        .send()
        .await
        .expect("queue")
        .queue_url
        .unwrap();
    let arn = arn_of(url.clone()).await;
    QueuePair { url, arn, dlq_url, dlq_arn }
}

// ---------------------------------------------------------------- proxy

/// What a proxy answers instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503 Service Unavailable.
    Unavailable,
    /// The protocol's throttling error (ThrottlingException / Throttling /
    /// TooManyRequestsException).
    Throttle,
}

/// One request that reached the proxy.
#[derive(Debug, Clone)]
pub struct Seen {
    pub service: String,
    pub operation: String,
    /// The SDK's `amz-sdk-request` header: `attempt=N; max=M`.
    pub sdk_request: String,
    pub faulted: bool,
}

#[derive(Default)]
struct ProxyState {
    seen: Vec<Seen>,
    faults: Vec<(String, String, Fault, u32)>,
}

/// An HTTP proxy in front of moto that records every request reaching the
/// emulator (service from the SigV4 scope, operation from the protocol) and
/// can answer a given operation with a fault N times before forwarding.
/// Counting here, on the wire, is the honest measure: SDK retries and
/// pagination show up as the requests they are.
#[derive(Clone)]
pub struct Proxy {
    pub endpoint: String,
    state: Arc<Mutex<ProxyState>>,
}

impl Proxy {
    /// Starts on its own threads, forwarding to `upstream_port` (give it
    /// `Moto::port`, the serialising gateway).
    pub fn start(upstream_port: u16) -> Proxy {
        Proxy::start_with(upstream_port, false)
    }

    fn start_with(upstream_port: u16, serialise: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream_port, st, serialise);
                });
            }
        });
        Proxy { endpoint, state }
    }

    pub async fn clients(&self) -> Clients {
        Clients::new(&Moto::sdk_config_for(&self.endpoint).await)
    }

    /// Answers the next `times` requests of `service`/`operation` with `fault`.
    pub fn inject(&self, service: &str, operation: &str, fault: Fault, times: u32) {
        self.state.lock().unwrap().faults.push((service.into(), operation.into(), fault, times));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn reset(&self) {
        self.state.lock().unwrap().seen.clear();
    }

    /// Requests per `service:Operation`.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for s in self.seen() {
            *counts.entry(format!("{}:{}", s.service, s.operation)).or_insert(0) += 1;
        }
        counts
    }

    pub fn count_service(&self, service: &str) -> usize {
        self.seen().iter().filter(|s| s.service == service).count()
    }

    pub fn count(&self, service: &str, operation: &str) -> usize {
        self.seen().iter().filter(|s| s.service == service && s.operation == operation).count()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serve(
    mut conn: TcpStream,
    upstream_port: u16,
    state: Arc<Mutex<ProxyState>>,
    serialise: bool,
) -> std::io::Result<()> {
    // Read one request: head, then a Content-Length body.
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 8192];
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let length: usize = header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = vec![0u8; 65536];
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..].to_vec();

    let service = header("authorization")
        .and_then(|a| a.split("Credential=").nth(1).map(|c| c.split('/').nth(3).unwrap_or_default().to_owned()))
        .unwrap_or_else(|| "unknown".into());
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default().to_owned(), parts.next().unwrap_or_default().to_owned());
    let target = header("x-amz-target");
    let operation = if let Some(t) = &target {
        t.rsplit('.').next().unwrap_or_default().to_owned()
    } else if let Some(action) =
        String::from_utf8_lossy(&body).split('&').find_map(|p| p.strip_prefix("Action=").map(str::to_owned))
    {
        action
    } else {
        rest_operation(&method, &path)
    };
    let fault = {
        let mut st = state.lock().unwrap();
        let fault = st.faults.iter_mut().find(|(s, o, _, n)| *s == service && *o == operation && *n > 0).map(|f| {
            f.3 -= 1;
            f.2
        });
        if !serialise {
            st.seen.push(Seen {
                service: service.clone(),
                operation: operation.clone(),
                sdk_request: header("amz-sdk-request").unwrap_or_default(),
                faulted: fault.is_some(),
            });
        }
        fault
    };
    let response = match fault {
        Some(fault) => fault_response(
            fault,
            target.is_some(),
            header("content-type").unwrap_or_default().contains("x-www-form-urlencoded"),
        ),
        None => {
            let _turn = serialise.then(|| ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()));
            let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
            let mut out = Vec::new();
            out.extend_from_slice(request_line.as_bytes());
            out.extend_from_slice(b"\r\n");
            for (k, v) in headers.iter().filter(|(k, _)| k != "connection") {
                out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
            out.extend_from_slice(b"connection: close\r\n\r\n");
            out.extend_from_slice(&body);
            upstream.write_all(&out)?;
            let mut answer = Vec::new();
            upstream.read_to_end(&mut answer)?;
            // Tell the client not to reuse this connection.
            match find(&answer, b"\r\n\r\n") {
                Some(i) => {
                    let head = String::from_utf8_lossy(&answer[..i]).into_owned();
                    let mut rewritten: Vec<String> = head
                        .split("\r\n")
                        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                        .map(str::to_owned)
                        .collect();
                    rewritten.push("connection: close".into());
                    let mut r = rewritten.join("\r\n").into_bytes();
                    r.extend_from_slice(&answer[i..]);
                    r
                }
                None => answer,
            }
        }
    };
    conn.write_all(&response)?;
    conn.shutdown(std::net::Shutdown::Both)
}

fn rest_operation(method: &str, path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["schedules", _]) => "CreateSchedule".into(),
        ("GET", ["schedules", _]) => "GetSchedule".into(),
        ("PUT", ["schedules", _]) => "UpdateSchedule".into(),
        ("DELETE", ["schedules", _]) => "DeleteSchedule".into(),
        ("GET", ["schedules"]) => "ListSchedules".into(),
        ("POST", ["schedule-groups", _]) => "CreateScheduleGroup".into(),
        ("POST", ["v2", "email", "outbound-emails"]) => "SendEmail".into(),
        ("POST", ["v2", "email", "identities"]) => "CreateEmailIdentity".into(),
        _ => format!("{method} /{}", segments.iter().take(2).copied().collect::<Vec<_>>().join("/")),
    }
}

fn fault_response(fault: Fault, json_rpc: bool, query: bool) -> Vec<u8> {
    let (status, reason, headers, body) = match (fault, json_rpc, query) {
        (Fault::Unavailable, ..) => (503, "Service Unavailable", String::new(), "Service Unavailable".to_owned()),
        (Fault::Throttle, true, _) => (
            400,
            "Bad Request",
            "content-type: application/x-amz-json-1.0\r\nx-amzn-errortype: ThrottlingException\r\n".into(),
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}"#.to_owned(),
        ),
        (Fault::Throttle, false, true) => (
            400,
            "Bad Request",
            "content-type: text/xml\r\n".into(),
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>proxy</RequestId></ErrorResponse>".to_owned(),
        ),
        (Fault::Throttle, false, false) => (
            429,
            "Too Many Requests",
            "content-type: application/json\r\nx-amzn-errortype: TooManyRequestsException\r\n".into(),
            r#"{"message":"Maximum sending rate exceeded."}"#.to_owned(),
        ),
    };
    format!("HTTP/1.1 {status} {reason}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
        .into_bytes()
}

// ---------------------------------------------------------------- events

/// The workspace root (where `events/` lives).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().find(|d| d.join("Cargo.lock").exists()).unwrap_or(&manifest).to_path_buf()
}

/// An API Gateway HTTP API (payload v2) event from `events/aws/<name>`.
pub fn apigw_event(name: &str) -> aws_lambda_events::apigw::ApiGatewayV2httpRequest {
    let path = workspace_root().join("events/aws").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The v2 signature of an API Gateway request: over its method, raw path
/// and query as sent, and body.
pub fn sign_apigw(
    event: &aws_lambda_events::apigw::ApiGatewayV2httpRequest,
    secret: &cartback_core::signing::Secret,
    now: DateTime<Utc>,
) -> String {
    let body = event.body.clone().unwrap_or_default();
    let mut path_and_query = event.raw_path.clone().unwrap_or_default();
    if let Some(query) = event.raw_query_string.as_deref().filter(|q| !q.is_empty()) {
        path_and_query = format!("{path_and_query}?{query}");
    }
    let request = cartback_core::signing::SignedRequest {
        method: event.request_context.http.method.as_str(),
        path_and_query: &path_and_query,
        body: body.as_bytes(),
    };
    cartback_core::signing::sign_request(secret, now.timestamp(), &request)
}

/// Replaces the event's signature with a fresh one over its request, signed
/// with `secret` at `now` (the files cannot carry a valid one: the test
/// secret and clock decide it).
pub fn resign(
    event: &mut aws_lambda_events::apigw::ApiGatewayV2httpRequest,
    secret: &cartback_core::signing::Secret,
    now: DateTime<Utc>,
) {
    use aws_lambda_events::http::{HeaderName, HeaderValue};
    let signature = sign_apigw(event, secret, now);
    event.headers.insert(
        HeaderName::from_static(cartback_core::signing::SIGNATURE_HEADER),
        HeaderValue::from_str(&signature).unwrap(),
    );
}

/// A signed `POST /v1/events` event carrying `body`.
pub fn post_events(
    body: &serde_json::Value,
    secret: &cartback_core::signing::Secret,
    now: DateTime<Utc>,
) -> aws_lambda_events::apigw::ApiGatewayV2httpRequest {
    let mut event = apigw_event("apigw-post-events.json");
    event.body = Some(body.to_string());
    resign(&mut event, secret, now);
    event
}

/// The body of an API Gateway response as JSON.
pub fn response_json(response: &aws_lambda_events::apigw::ApiGatewayV2httpResponse) -> serde_json::Value {
    match &response.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => serde_json::from_str(t).expect("JSON body"),
        other => panic!("unexpected body {other:?}"),
    }
}
