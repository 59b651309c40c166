//! `cartback report` over a local data folder holding facts: the JSON is the
//! report, the CSV one row per campaign, the table readable and free of
//! personal data, and bad flags are named.

#[path = "support/dev.rs"]
mod dev;

use std::path::Path;
use std::process::Output;

use cartback_core::ids::CustomerKey;
use cartback_core::measure::{Fact, FactKind, Group, MessageOutcome, SegmentLabel};
use cartback_core::message::Channel;
use cartback_core::ports::FactStore;
use chrono::{DateTime, Duration, Utc};
use dev::{cartback, stderr, stdout};

/// `cartback report ARGS --data DATA`.
fn report(data: &Path, args: &[&str]) -> Output {
    cartback(data, &[&["report"], args].concat())
}

/// 120 treated carts of which 48 bought, and 110 held out of which 11 did,
/// all entering on 2 November; customers are named by email address so a
/// leak would show.
async fn store_facts(data: &Path) {
    let db = cartback_local::Database::open(data).unwrap();
    let day: DateTime<Utc> = "2026-11-02T08:00:00Z".parse().unwrap();
    for (group, n, bought) in [(Group::Treated, 120, 48), (Group::HeldOut, 110, 11)] {
        for i in 0..n {
            let cart = format!("{}-{i}", group.as_str());
            let customer = CustomerKey::Customer(format!("shopper{i}@example.com").as_str().into());
            let customer = if group == Group::Treated { customer } else { CustomerKey::Guest(cart.as_str().into()) };
            let outcome = if group == Group::Treated { MessageOutcome::Sent } else { MessageOutcome::WouldSend };
            let facts = [
                Fact::new(
                    day,
                    FactKind::Entered {
                        campaign_id: "default".into(),
                        cart_id: cart.as_str().into(),
                        customer_key: customer.clone(),
                        group,
                        variant: None,
                        segment: SegmentLabel::Other,
                        value: None,
                        currency: None,
                    },
                ),
                Fact::new(
                    day + Duration::minutes(30),
                    FactKind::Message {
                        campaign_id: "default".into(),
                        cart_id: cart.as_str().into(),
                        customer_key: customer.clone(),
                        message_id: format!("{cart}#1#email").as_str().into(),
                        group,
                        variant: None,
                        step: 0,
                        channel: Channel::Email,
                        outcome,
                    },
                ),
            ];
            for fact in &facts {
                db.record_fact(fact).await.unwrap();
            }
            if i < bought {
                let order = Fact::new(
                    day + Duration::hours(3),
                    FactKind::Order {
                        order_id: format!("o-{cart}"),
                        cart_id: Some(cart.as_str().into()),
                        customer_key: Some(customer),
                        value: Some("50.00".parse().unwrap()),
                        currency: Some("EUR".into()),
                        coupon: None,
                    },
                );
                db.record_fact(&order).await.unwrap();
            }
        }
    }
}

/// GIVEN facts of 230 carts in the local folder WHEN `cartback report` runs
/// as JSON, CSV and a table THEN the three agree on the numbers: 40% against
/// 10% recovered, a lift of 30 points whose interval excludes zero.
#[tokio::test]
async fn given_facts_in_the_local_folder_when_reported_then_json_csv_and_table_agree() {
    let dir = tempfile::tempdir().unwrap();
    store_facts(dir.path()).await;
    let period = ["--from", "2026-11-01", "--to", "2026-11-14"];

    let out = report(dir.path(), &[&period[..], &["--json", "--window", "2d"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["attribution_window_hours"], 48);
    let c = &json["campaigns"][0];
    assert_eq!((c["treated"].as_u64(), c["held_out"].as_u64()), (Some(120), Some(110)));
    assert_eq!((c["recovered_treated"].as_u64(), c["recovered_held_out"].as_u64()), (Some(48), Some(11)));
    assert_eq!(c["evidence"], "raises");
    assert!(c["lift_ci95"][0].as_f64().unwrap() > 0.0);
    assert_eq!(c["attributed_revenue"]["EUR"], "2400.00");

    let out = report(dir.path(), &[&period[..], &["--csv"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = stdout(&out);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "header, default, total: {csv}");
    assert!(lines[0].starts_with("campaign_id,shadow,entered,treated,held_out,recovered_treated,recovered_held_out,"));
    assert!(lines[1].starts_with("default,false,230,120,110,48,11,0.4,"), "{}", lines[1]);
    assert!(lines[2].starts_with("*,false,230,120,110,48,11,"), "{}", lines[2]);

    let out = report(dir.path(), &period);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.contains("campaign default: Reminders raised recovery by 30.0 points ("), "{table}");
    assert!(table.contains("recovered, treated     48 (40.0%,"), "{table}");
    assert!(table.contains("2400.00 EUR"), "{table}");
    for output in [&table, &csv] {
        assert!(!output.contains('@') && !output.contains("shopper"), "no personal data: {output}");
    }
}

/// GIVEN bad flags WHEN `cartback report` runs THEN it fails naming the flag.
#[test]
fn given_bad_flags_when_reported_then_the_flag_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--from", "2026-11-10", "--to", "2026-11-01"], "--from: 2026-11-10 is after to (2026-11-01)"),
        (&["--window", "0h"], "--window: must be 1 to 720 hours"),
        (&["--channel-window", "sms=1.5h"], "--channel-window sms: \"1.5h\" is not a whole number"),
        (&["--campaign", "nope"], "--campaign: no campaign \"nope\""),
    ];
    for (args, message) in cases {
        let out = report(dir.path(), args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}
