//! `template.yaml` against the code: cfn-lint and sam validate check the
//! template's shape, not whether it fits these binaries (cfn-lint accepted
//! an invented runtime name). This test reads the template and checks:
//! - every crate under `functions/` is exactly one `AWS::Serverless::Function`
//!   built by cargo-lambda from that crate's binary, on `provided.al2023`,
//!   and the template has no function without a crate;
//! - every environment variable a function's configuration loader reads is
//!   set on that function (Globals merged with its own), and no CARTBACK_*
//!   variable is set on a function whose loader never reads it;
//! - every SQS-fed function reports partial batch failures, and its queue's
//!   visibility timeout is at least 6x the function's timeout.
//!
//! CloudFormation short tags (`!Ref`, `!Sub`, `!GetAtt`, ...) parse as
//! tagged values: such a value counts as "set", and the loader is given a
//! plausible deployed value for it (an ARN, a URL) so that its format checks
//! pass. A loader error naming a variable means the template lacks it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

use cartback_aws::config::{
    CheckerConfig, CommonConfig, ConfigError, EmailConfig, Env, IngestConfig, PushConfig, SmsConfig, TimerConfig,
    WebhookConfig,
};
use cartback_tests::samples::workspace_root;

fn template() -> Value {
    let path = workspace_root().join("template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn get<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str)
}

/// A crate under `functions/`: its directory, package name and binary name.
struct FunctionCrate {
    dir: String,
    package: String,
    binary: String,
    /// The config type its `main` loads (`TimerConfig`, ...).
    loader: String,
}

fn function_crates() -> Vec<FunctionCrate> {
    let root = workspace_root().join("functions");
    let mut crates = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else { continue };
        let manifest: toml::Value = manifest.parse().unwrap();
        let package = manifest["package"]["name"].as_str().unwrap().to_owned();
        let binary = manifest
            .get("bin")
            .and_then(|b| b.as_array())
            .and_then(|b| b.first())
            .and_then(|b| b["name"].as_str())
            .unwrap_or(&package)
            .to_owned();
        let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
        let call = main
            .find("::from_env(&ProcessEnv)")
            .unwrap_or_else(|| panic!("{}: main loads no config with from_env(&ProcessEnv)", dir.display()));
        let loader = main[..call].rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap().to_owned();
        crates.push(FunctionCrate {
            dir: dir.file_name().unwrap().to_string_lossy().into_owned(),
            package,
            binary,
            loader,
        });
    }
    crates.sort_by(|a, b| a.dir.cmp(&b.dir));
    assert!(!crates.is_empty(), "no function crates under functions/");
    crates
}

/// Runs the loader `main` uses, on `env`.
fn load(loader: &str, env: &dyn Env) -> Result<(), ConfigError> {
    match loader {
        "IngestConfig" => IngestConfig::from_env(env).map(drop),
        "TimerConfig" => TimerConfig::from_env(env).map(drop),
        "CheckerConfig" => CheckerConfig::from_env(env).map(drop),
        "EmailConfig" => EmailConfig::from_env(env).map(drop),
        "SmsConfig" => SmsConfig::from_env(env).map(drop),
        "PushConfig" => PushConfig::from_env(env).map(drop),
        "WebhookConfig" => WebhookConfig::from_env(env).map(drop),
        "CommonConfig" => CommonConfig::from_env(env).map(drop),
        other => panic!("a function's main loads {other}: add it to load() in this test"),
    }
}

/// What a deployed stack would put in a variable set by a CloudFormation
/// function (`!Ref`, `!GetAtt`, `!Sub`).
fn plausible(var: &str) -> String {
    let queue =
        |name: &str| format!("https://sqs.us-east-1.amazonaws.com/123456789012/cartback-{name}Queue-1A2B3C4D5E6F");
    match var {
        "CARTBACK_STATE_TABLE" => "cartback-StateTable-1A2B3C4D5E6F".into(),
        "CARTBACK_CONFIG_TABLE" => "cartback-ConfigTable-6F5E4D3C2B1A".into(),
        "CARTBACK_RETENTION_DAYS" => "90".into(),
        "CARTBACK_FACT_RETENTION_DAYS" => "400".into(),
        "CARTBACK_MESSAGE_PRICES" => "sms=0.0075,currency=USD".into(),
        "CARTBACK_ACCEPT_V1_SIGNATURES" => "true".into(),
        "CARTBACK_INGEST_SECRET_ARN" => {
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:IngestSecret-AbCdEf".into()
        }
        "CARTBACK_SCHEDULE_GROUP" => "ScheduleGroup-1A2B3C4D5E6F".into(),
        "CARTBACK_SCHEDULER_ROLE_ARN" => "arn:aws:iam::123456789012:role/cartback-SchedulerRole-1A2B3C4D5E6F".into(),
        "CARTBACK_CHECKER_ARN" => "arn:aws:lambda:us-east-1:123456789012:function:cartback-checker".into(),
        "CARTBACK_TIMER_DEAD_LETTER_QUEUE_ARN" => {
            "arn:aws:sqs:us-east-1:123456789012:cartback-TimerDeadLetterQueue-1A2B".into()
        }
        "CARTBACK_PUBLIC_BASE_URL" => "https://abc123.execute-api.us-east-1.amazonaws.com".into(),
        "CARTBACK_RESTORE_URL" => "https://shop.example.com/cart/restore?cart={cart_id}&t={token}".into(),
        "CARTBACK_EMAIL_QUEUE_URL" => queue("Email"),
        "CARTBACK_SMS_QUEUE_URL" => queue("Sms"),
        "CARTBACK_PUSH_QUEUE_URL" => queue("Push"),
        "CARTBACK_WEBHOOK_QUEUE_URL" => queue("Webhook"),
        "CARTBACK_SENDER_EMAIL" => "carts@shop.example.com".into(),
        "CARTBACK_SES_CONFIGURATION_SET" => "SesConfigurationSet-1A2B3C4D5E6F".into(),
        "CARTBACK_SMS_SENDER_ID" => "DemoShop".into(),
        "CARTBACK_APNS_PLATFORM_APPLICATION_ARN" => "arn:aws:sns:us-east-1:123456789012:app/APNS/cartback-ios".into(),
        "CARTBACK_FCM_PLATFORM_APPLICATION_ARN" => "arn:aws:sns:us-east-1:123456789012:app/GCM/cartback-android".into(),
        "CARTBACK_POSTAL_ADDRESS" => "Demo Shop, 1 Test Street, 75001 Paris, France".into(),
        "CARTBACK_UNSUBSCRIBE_MAILTO" => "unsubscribe@shop.example.com".into(),
        "CARTBACK_VOUCHER_WEBHOOK_URL" => "https://shop.example.com/hooks/cartback".into(),
        "CARTBACK_VOUCHER_WEBHOOK_SECRET_ARN" => {
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:VoucherWebhookSecret-AbCdEf".into()
        }
        "CARTBACK_VOUCHER_WEBHOOK_WAIT" => "false".into(),
        "CARTBACK_WEB_PUSH_KEY_SECRET_ARN" => {
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:WebPushKey-AbCdEf".into()
        }
        "CARTBACK_WEB_PUSH_CONTACT" => "mailto:ops@shop.example.com".into(),
        "CARTBACK_WEB_PUSH_PUBLIC_KEY" => cartback_webpush::VapidKey::generate().public_key(),
        source if source.starts_with("CARTBACK_SOURCE_SECRET_ARN_") => {
            format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{}-AbCdEf", &source[27..])
        }
        "CARTBACK_SHOP_CURRENCY" => "USD".into(),
        "CARTBACK_BIGCOMMERCE_STORE_HASH" => "abc123".into(),
        "CARTBACK_BIGCOMMERCE_API_TOKEN_ARN" => {
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:BigCommerceApiToken-AbCdEf".into()
        }
        "RUST_LOG" => "info".into(),
        other => panic!("template sets {other} with an intrinsic function: give it a plausible value in plausible()"),
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A function's environment as deployed: Globals, then its own variables.
fn environment(template: &Value, function: &Value) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for source in [
        get(template, &["Globals", "Function", "Environment", "Variables"]),
        get(function, &["Properties", "Environment", "Variables"]),
    ] {
        let Some(Value::Mapping(map)) = source else { continue };
        for (name, value) in map {
            let name = name.as_str().unwrap().to_owned();
            let value = scalar(value).unwrap_or_else(|| match value {
                Value::Tagged(_) => plausible(&name),
                other => panic!("{name}: unexpected value {other:?}"),
            });
            vars.insert(name, value);
        }
    }
    vars
}

fn functions(template: &Value) -> BTreeMap<String, Value> {
    let Some(Value::Mapping(resources)) = template.get("Resources") else { panic!("no Resources") };
    resources
        .iter()
        .filter(|(_, r)| text(r.get("Type")) == Some("AWS::Serverless::Function"))
        .map(|(name, r)| (name.as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

fn binary_of(function: &Value) -> Option<&str> {
    text(get(function, &["Metadata", "BuildProperties", "Binary"]))
}

#[test]
fn given_the_function_crates_when_the_template_is_read_then_each_is_exactly_one_cargo_lambda_function_on_al2023() {
    let template = template();
    let functions = functions(&template);
    let crates = function_crates();
    for krate in &crates {
        assert_eq!(krate.package, krate.dir, "functions/{}: package name differs from its folder", krate.dir);
        let matching: Vec<&String> = functions
            .iter()
            .filter(|(_, f)| binary_of(f) == Some(krate.binary.as_str()))
            .map(|(name, _)| name)
            .collect();
        assert_eq!(matching.len(), 1, "functions/{} (binary {}): expected one AWS::Serverless::Function with Metadata.BuildProperties.Binary: {}, found {matching:?}", krate.dir, krate.binary, krate.binary);
        let function = &functions[matching[0]];
        assert_eq!(text(get(function, &["Properties", "Runtime"])), Some("provided.al2023"), "{}", matching[0]);
        assert_eq!(text(get(function, &["Metadata", "BuildMethod"])), Some("rust-cargolambda"), "{}", matching[0]);
        assert_eq!(text(get(function, &["Properties", "Handler"])), Some("bootstrap"), "{}", matching[0]);
        assert!(
            get(function, &["Properties", "Architectures"]).is_some(),
            "{}: no Architectures (the Architecture parameter)",
            matching[0]
        );
    }
    let binaries: BTreeSet<&str> = crates.iter().map(|c| c.binary.as_str()).collect();
    for (name, function) in &functions {
        let binary = binary_of(function).unwrap_or_else(|| panic!("{name}: no Metadata.BuildProperties.Binary"));
        assert!(binaries.contains(binary), "{name} builds binary {binary:?}, which no crate under functions/ provides");
    }
}

#[test]
fn given_each_functions_config_loader_when_run_on_its_template_environment_then_every_variable_it_reads_is_set_and_every_cartback_variable_is_read(
) {
    let template = template();
    let functions = functions(&template);
    let mut problems = Vec::new();
    for krate in function_crates() {
        let (name, function) = functions
            .iter()
            .find(|(_, f)| binary_of(f) == Some(krate.binary.as_str()))
            .unwrap_or_else(|| panic!("{} is not in the template", krate.binary));
        let vars = environment(&template, function);
        let read = RefCell::new(BTreeSet::<String>::new());
        let env = |var: &str| -> Option<String> {
            read.borrow_mut().insert(var.to_owned());
            vars.get(var).cloned()
        };
        let loaded = load(&krate.loader, &env);
        let read = read.into_inner();
        let who = format!("{name} ({} via {})", krate.binary, krate.loader);
        let unset: Vec<&String> = read.iter().filter(|v| !vars.contains_key(*v)).collect();
        if !unset.is_empty() {
            problems.push(format!("{who}: reads {unset:?}, which the template does not set"));
        }
        if let Err(error) = loaded {
            problems.push(format!("{who}: the loader refuses the template's environment: {error}"));
        }
        let unused: Vec<&String> = vars.keys().filter(|v| v.starts_with("CARTBACK_") && !read.contains(*v)).collect();
        if !unused.is_empty() {
            problems.push(format!("{who}: sets {unused:?}, which its loader never reads"));
        }
    }
    assert!(problems.is_empty(), "template.yaml and the config loaders disagree:\n{}", problems.join("\n"));
}

#[test]
fn given_the_sqs_fed_functions_when_the_template_is_read_then_they_report_batch_item_failures_and_their_queues_outlast_six_timeouts(
) {
    let template = template();
    let mut seen = 0;
    for (name, function) in functions(&template) {
        let Some(Value::Mapping(events)) = get(&function, &["Properties", "Events"]) else { continue };
        for (_, event) in events.iter().filter(|(_, e)| text(e.get("Type")) == Some("SQS")) {
            seen += 1;
            let responses = get(event, &["Properties", "FunctionResponseTypes"])
                .and_then(Value::as_sequence)
                .cloned()
                .unwrap_or_default();
            assert!(
                responses.iter().any(|r| r.as_str() == Some("ReportBatchItemFailures")),
                "{name}: the sender/feedback handlers answer with batch item failures"
            );
            let Some(Value::Tagged(queue)) = get(event, &["Properties", "Queue"]) else {
                panic!("{name}: Queue is not !GetAtt <Queue>.Arn")
            };
            let queue_name = queue
                .value
                .as_str()
                .and_then(|q| q.strip_suffix(".Arn"))
                .unwrap_or_else(|| panic!("{name}: Queue is not !GetAtt <Queue>.Arn"));
            let visibility = get(&template, &["Resources", queue_name, "Properties", "VisibilityTimeout"])
                .and_then(Value::as_u64)
                .unwrap_or(30);
            let timeout = get(&function, &["Properties", "Timeout"]).and_then(Value::as_u64).unwrap_or(3);
            assert!(
                visibility >= 6 * timeout,
                "{name}: {queue_name} visibility timeout {visibility}s < 6 x {timeout}s"
            );
            assert!(
                get(&template, &["Resources", queue_name, "Properties", "RedrivePolicy"]).is_some(),
                "{queue_name}: no dead-letter queue"
            );
        }
    }
    assert!(seen >= 4, "expected the three senders and feedback to be SQS-fed, saw {seen}");
}

/// GIVEN the HTTP API's routes in the template and the operations of `openapi.json`
/// WHEN compared
/// THEN API Gateway routes every documented method and path to the function (a route missing there answers
/// API Gateway's own 404 on AWS while it works under `cartback dev`).
#[test]
fn given_the_openapi_document_when_the_http_apis_routes_are_read_then_every_operation_is_routed() {
    let template = template();
    let Some(Value::Mapping(resources)) = template.get("Resources") else { panic!("no Resources") };
    let routed: BTreeSet<String> = resources
        .values()
        .filter_map(|resource| get(resource, &["Properties", "DefinitionBody", "paths"]))
        .filter_map(Value::as_mapping)
        .flat_map(|paths| {
            paths.iter().flat_map(|(path, methods)| {
                let path = path.as_str().unwrap_or_default().to_owned();
                methods.as_mapping().into_iter().flat_map(move |m| {
                    let path = path.clone();
                    m.keys().filter_map(move |method| Some(format!("{} {path}", method.as_str()?.to_uppercase())))
                })
            })
        })
        .collect();
    assert!(!routed.is_empty(), "no DefinitionBody paths in the template");
    let document: serde_json::Value = serde_json::from_str(cartback_core::api::OPENAPI_JSON).unwrap();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let operation = format!("{} {path}", method.to_uppercase());
            assert!(routed.contains(&operation), "{operation} is documented but not routed by the HTTP API");
        }
    }
}
