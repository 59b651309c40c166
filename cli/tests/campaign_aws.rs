//! `cartback campaign ... --aws` against the DynamoDB config table, on the
//! moto emulator: the marketer's control works the same on AWS.
#![cfg(feature = "aws")]

use std::process::{Command, Output};

use cartback_tests::moto::{create_table, unique, Moto};

fn cartback(table: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cartback"))
        .args(args)
        .arg("--aws")
        .env("AWS_ENDPOINT_URL", &Moto::global().endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("CARTBACK_CONFIG_TABLE", table)
        .env("CARTBACK_STATE_TABLE", format!("{table}-state"))
        .env("CARTBACK_RETENTION_DAYS", "90")
        .env("RUST_LOG", "warn")
        .output()
        .expect("cartback runs")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn given_the_dynamodb_config_table_when_a_marketer_applies_disables_and_lists_then_the_table_follows() {
    let table = unique("cfg");
    create_table(&Moto::global().clients().await, &table, false).await;
    let file = format!("{}/../infra/campaigns/returners.toml", env!("CARGO_MANIFEST_DIR"));

    assert!(stdout(&cartback(&table, &["campaign", "list"])).contains("built-in default"));
    assert!(stdout(&cartback(&table, &["campaign", "apply", &file])).contains("applied campaign \"returners\""));
    assert!(stdout(&cartback(&table, &["campaign", "disable", "returners"])).contains("disabled"));
    let list = stdout(&cartback(&table, &["campaign", "list"]));
    let line = list.lines().find(|l| l.starts_with("returners")).expect("listed");
    assert!(line.contains(" no "), "{line}");
    assert!(stdout(&cartback(&table, &["campaign", "show", "returners"])).contains("enabled = false"));
}

#[test]
fn given_no_table_variables_when_a_command_uses_aws_then_the_error_names_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_cartback"))
        .args(["campaign", "list", "--aws"])
        .env_remove("CARTBACK_STATE_TABLE")
        .env_remove("CARTBACK_CONFIG_TABLE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CARTBACK_STATE_TABLE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// GIVEN a campaign file whose step goes to webhook target `crm`
/// WHEN applied with --aws before and after the target is stored in the config table
/// THEN it is refused naming the target, then applied (the variables of `cartback dev` play no part).
#[tokio::test]
async fn given_a_webhook_step_when_applied_on_aws_then_its_target_must_be_in_the_config_table() {
    use cartback_aws::webhook_targets::{put_target, StoredTarget};
    let clients = Moto::global().clients().await;
    let table = unique("cfg");
    create_table(&clients, &table, false).await;
    let file = std::env::temp_dir().join(format!("{}.toml", unique("crm")));
    std::fs::write(&file, cartback_tests::webhook_endpoint::CRM_CAMPAIGN).unwrap();
    let file = file.to_str().unwrap();

    let refused = cartback(&table, &["campaign", "apply", file]);
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("webhook target \"crm\", but no target is configured"), "{error}");

    let target = StoredTarget {
        name: cartback_core::webhook::WebhookTargetName::parse("crm").unwrap(),
        url: "https://crm.example/hooks".into(),
        secret_arn: "cartback/webhook/crm".into(),
        fields: String::new(),
    };
    put_target(&clients.dynamodb, &table, &target).await.unwrap();
    assert!(stdout(&cartback(&table, &["campaign", "apply", file])).contains("applied campaign \"crm\""));
}
