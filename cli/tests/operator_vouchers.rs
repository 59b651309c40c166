//! `cartback voucher list | show | revoke` on a local data folder.

use std::process::{Command, Output};

use cartback_core::ports::VoucherStore;
use cartback_core::voucher::{IssueOutcome, RedeemOutcome, Redemption, VoucherOwner, VoucherStatus};
use cartback_local::Database;
use cartback_tests::voucher_contract::voucher_for;
use chrono::{Duration, Utc};

fn cartback(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cartback")).args(args).arg("--data").arg(data).output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// GIVEN three vouchers issued an hour apart, one redeemed, in a data
/// folder WHEN the operator lists, shows and revokes them THEN the list is
/// newest first with each one's state, `show` prints the voucher (a code
/// typed in lower case finds it), `revoke` revokes the issued one and
/// refuses to touch the redeemed one, and an unknown or malformed code
/// fails with a clear message.
#[tokio::test]
async fn given_vouchers_in_a_data_folder_when_the_operator_lists_shows_and_revokes_then_each_answers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let owner = VoucherOwner::customer(&"cust-ana".into());
    let now = Utc::now();
    let vouchers: Vec<_> = [3, 2, 1].into_iter().map(|h| voucher_for(&owner, now - Duration::hours(h))).collect();
    for voucher in &vouchers {
        assert_eq!(db.issue_voucher(voucher).await.unwrap(), IssueOutcome::Issued);
    }
    let redemption = Redemption { order_id: "order-7".into(), at: now, discount: None };
    let outcome = db.redeem_voucher(&vouchers[0].code, &redemption).await.unwrap();
    assert!(matches!(outcome, RedeemOutcome::Redeemed(_)));
    drop(db);

    let listed = stdout(&cartback(dir.path(), &["voucher", "list"]));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 4, "{listed}");
    assert!(lines[0].starts_with("CODE"));
    for (line, voucher) in lines[1..].iter().zip(vouchers.iter().rev()) {
        assert!(line.starts_with(voucher.code.as_str()), "{listed}");
        assert!(line.contains("recovery 10% (max 15.00 EUR)"), "{line}");
    }
    assert!(lines[3].contains("redeemed (order-7)") && lines[1].contains("issued"), "{listed}");
    let limited: serde_json::Value =
        serde_json::from_str(&stdout(&cartback(dir.path(), &["voucher", "list", "--limit", "1", "--json"]))).unwrap();
    assert_eq!(limited[0]["code"], vouchers[2].code.as_str());
    assert_eq!(limited.as_array().unwrap().len(), 1);

    let typed = vouchers[1].code.as_str().to_lowercase();
    let shown: serde_json::Value =
        serde_json::from_str(&stdout(&cartback(dir.path(), &["voucher", "show", &typed]))).unwrap();
    assert_eq!(shown["cart_id"], vouchers[1].cart_id.as_str());
    assert_eq!(shown["status"]["state"], "issued");

    let revoked = stdout(&cartback(dir.path(), &["voucher", "revoke", vouchers[1].code.as_str()]));
    assert!(revoked.starts_with(&format!("{} revoked", vouchers[1].code)), "{revoked}");
    let db = Database::open(dir.path()).unwrap();
    let status = db.voucher(&vouchers[1].code).await.unwrap().unwrap().status;
    assert!(matches!(status, VoucherStatus::Revoked { .. }), "{status:?}");

    let refused = cartback(dir.path(), &["voucher", "revoke", vouchers[0].code.as_str()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("redeemed by order order-7"));
    let status = db.voucher(&vouchers[0].code).await.unwrap().unwrap().status;
    assert!(matches!(status, VoucherStatus::Redeemed { .. }), "{status:?}");

    let unknown = cartback(dir.path(), &["voucher", "show", "CB-2222-3333-4444"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no voucher CB-2222-3333-4444"));
    let malformed = cartback(dir.path(), &["voucher", "revoke", "SAVE10"]);
    assert!(!malformed.status.success());
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("\"SAVE10\" is not a voucher code"));
}
