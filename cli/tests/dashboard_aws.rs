//! `cartback dashboard --aws`: the link is signed with the stack's ingest secret, read from Secrets Manager
//! (moto) by CARTBACK_INGEST_SECRET_ARN, the way the ingest function reads it.
#![cfg(feature = "aws")]

use std::process::{Command, Output};

use cartback_core::signing::{verify_dashboard_token, Secret};
use cartback_tests::moto::{unique, Moto};

fn dashboard(secret_arn: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cartback"));
    command
        .args(["dashboard", "--aws", "--url", "https://api.example.com/", "--ttl", "2h"])
        .env("AWS_ENDPOINT_URL", &Moto::global().endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("CARTBACK_INGEST_SECRET")
        .env_remove("CARTBACK_INGEST_SECRET_ARN")
        .env("RUST_LOG", "warn");
    if let Some(arn) = secret_arn {
        command.env("CARTBACK_INGEST_SECRET_ARN", arn);
    }
    command.output().expect("cartback runs")
}

/// GIVEN the stack's ingest secret in Secrets Manager WHEN `cartback dashboard --aws` runs with its ARN
/// THEN it prints a link under the API's URL whose token that secret verifies for two hours.
#[tokio::test]
async fn given_the_stacks_secret_when_a_dashboard_link_is_asked_with_aws_then_that_secret_signs_it() {
    let value = "aws-dashboard-secret-0123456789";
    let clients = Moto::global().clients().await;
    let created =
        clients.secrets.create_secret().name(unique("ingest")).secret_string(value).send().await.expect("secret");
    let before = chrono::Utc::now().timestamp();

    let out = dashboard(created.arn());

    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let link = String::from_utf8(out.stdout).unwrap();
    let token = link.trim().strip_prefix("https://api.example.com/dashboard?token=").expect(&link);
    let secret = Secret::new(value.as_bytes().to_vec()).unwrap();
    let expires = verify_dashboard_token(&secret, token, chrono::Utc::now()).expect("the stack's secret signed it");
    assert!((before + 7200..=chrono::Utc::now().timestamp() + 7200).contains(&expires), "{expires}");
}

#[test]
fn given_no_secret_arn_when_a_dashboard_link_is_asked_with_aws_then_the_error_names_the_variable() {
    let out = dashboard(None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CARTBACK_INGEST_SECRET_ARN"), "{stderr}");
}
