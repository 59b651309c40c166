//! `cartback report --aws` against the DynamoDB state table on moto: the
//! same facts give the same report as `cartback report --data` over a local
//! folder, byte for byte.
#![cfg(feature = "aws")]

use std::process::{Command, Output};
use std::sync::Arc;

use cartback_aws::dynamo::DynamoStateStore;
use cartback_core::measure::Group;
use cartback_core::ports::{FactStore, SystemClock};
use cartback_tests::moto::{create_table, unique, Moto};
use cartback_tests::report_facts::carts;
use chrono::Duration;

const PERIOD: [&str; 7] = ["report", "--from", "2026-11-15", "--to", "2026-11-22", "--window", "36h"];

fn report(runtime: &[&str], table: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cartback"))
        .args(PERIOD)
        .arg("--json")
        .args(runtime)
        .env("AWS_ENDPOINT_URL", &Moto::global().endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("CARTBACK_CONFIG_TABLE", format!("{table}-config"))
        .env("CARTBACK_STATE_TABLE", table)
        .env("CARTBACK_RETENTION_DAYS", "90")
        .env("RUST_LOG", "warn")
        .output()
        .expect("cartback runs")
}

fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the report as JSON")
}

/// GIVEN the same facts (carts over three days, treated and held out, some
/// bought) in a DynamoDB state table and in a local folder WHEN `cartback
/// report --json` runs with `--aws` and with `--data` THEN both print the
/// same report, and it counts every cart.
#[tokio::test]
async fn given_the_same_facts_in_dynamodb_and_locally_when_reported_then_the_reports_are_identical() {
    let mut facts = Vec::new();
    for (day, bought_treated, bought_held) in [("2026-11-16", 9, 2), ("2026-11-18", 12, 1), ("2026-11-21", 7, 3)] {
        facts.extend(carts(Group::Treated, 30, bought_treated, day));
        facts.extend(carts(Group::HeldOut, 10, bought_held, day));
    }
    let table = unique("report");
    let clients = Moto::global().clients().await;
    create_table(&clients, &table, true).await;
    create_table(&clients, &format!("{table}-config"), false).await;
    let dynamo = DynamoStateStore::new(clients.dynamodb.clone(), &table, Duration::days(90), Arc::new(SystemClock));
    let dir = tempfile::tempdir().unwrap();
    let local = cartback_local::Database::open(dir.path()).unwrap();
    for fact in &facts {
        dynamo.record_fact(fact).await.unwrap();
        local.record_fact(fact).await.unwrap();
    }

    let on_aws = json(&report(&["--aws"], &table));
    let data = dir.path().to_str().unwrap();
    let on_local = json(&report(&["--data", data], &table));

    assert_eq!(on_aws, on_local);
    let campaign = &on_aws["campaigns"][0];
    assert_eq!((campaign["treated"].as_u64(), campaign["held_out"].as_u64()), (Some(90), Some(30)));
    assert_eq!((campaign["recovered_treated"].as_u64(), campaign["recovered_held_out"].as_u64()), (Some(28), Some(6)));
}
