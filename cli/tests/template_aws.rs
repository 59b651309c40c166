//! `cartback template ... --aws` against the DynamoDB config table, on the moto emulator: a marketer's
//! templates and brand go to the table the functions read, and come back out the same.
#![cfg(feature = "aws")]

use std::path::Path;
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

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// GIVEN the config table on moto WHEN a folder with the shipped `reminder` (its German subject changed)
/// and a brand is applied with `--aws` THEN the set is listed as stored with the brand, an export
/// holds the changed subject, and once deleted the shipped set applies again.
#[tokio::test]
async fn given_the_dynamodb_config_table_when_templates_are_applied_exported_and_deleted_then_the_table_follows() {
    let table = unique("tpl");
    create_table(&Moto::global().clients().await, &table, false).await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("templates");
    let shipped = format!("{}/../infra/templates/reminder", env!("CARGO_MANIFEST_DIR"));
    copy_tree(Path::new(&shipped), &folder.join("reminder"));
    std::fs::write(folder.join("reminder/de/subject.txt"), "{{ first_name }}, dein Korb auf AWS\n").unwrap();
    std::fs::write(folder.join("brand.toml"), "[brand]\nname = \"Harbour Home\"\n").unwrap();

    let applied = stdout(&cartback(&table, &["template", "apply", folder.to_str().unwrap()]));
    assert!(applied.contains("applied template set reminder") && applied.contains("applied brand"), "{applied}");
    let list = stdout(&cartback(&table, &["template", "list"]));
    assert!(list.lines().any(|l| l.starts_with("reminder ") && l.contains("stored")), "{list}");
    assert!(list.contains("brand: Harbour Home"), "{list}");

    let exported = dir.path().join("exported");
    stdout(&cartback(&table, &["template", "export", exported.to_str().unwrap()]));
    let subject = std::fs::read_to_string(exported.join("reminder/de/subject.txt")).unwrap();
    assert_eq!(subject, "{{ first_name }}, dein Korb auf AWS\n");

    stdout(&cartback(&table, &["template", "delete", "reminder"]));
    let list = stdout(&cartback(&table, &["template", "list"]));
    assert!(list.lines().any(|l| l.starts_with("reminder ") && l.contains("shipped")), "{list}");
}

/// GIVEN a folder holding a set that fits (`aaa`, read first) and one over the 350 KB a DynamoDB item may
/// take as stored (`zzz`: long template comments in every locale's push texts)
/// WHEN applied with `--aws`
/// THEN it fails naming the large set and its size, and nothing is stored: not even the set that fits.
#[tokio::test]
async fn given_one_set_too_large_for_dynamodb_when_applied_then_nothing_is_stored() {
    let table = unique("tpl");
    create_table(&Moto::global().clients().await, &table, false).await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("templates");
    let shipped = format!("{}/../infra/templates/reminder", env!("CARGO_MANIFEST_DIR"));
    copy_tree(Path::new(&shipped), &folder.join("aaa"));
    copy_tree(Path::new(&shipped), &folder.join("zzz"));
    let padding = format!("{{# {} #}}", "x".repeat(60 * 1024));
    for locale in ["en", "de", "fr", "es"] {
        for part in ["push_title.txt", "push_body.txt"] {
            let path = folder.join("zzz").join(locale).join(part);
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, format!("{padding}{text}")).unwrap();
        }
    }

    let applied = cartback(&table, &["template", "apply", folder.to_str().unwrap()]);

    assert!(!applied.status.success());
    let stderr = String::from_utf8_lossy(&applied.stderr);
    assert!(stderr.contains("nothing applied") && stderr.contains("template set zzz takes"), "{stderr}");
    assert!(stderr.contains("350 KB"), "{stderr}");
    let list = stdout(&cartback(&table, &["template", "list"]));
    assert!(!list.contains("aaa") && !list.contains("zzz"), "nothing stored: {list}");
}
