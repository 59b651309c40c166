//! The marketer's commands against the local store, and their effect on a
//! running `cartback dev`.

#[path = "support/dev.rs"]
mod dev;

use dev::{cartback, stdout};

fn repo_file(path: &str) -> String {
    format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn given_an_empty_store_when_campaigns_are_listed_then_the_built_in_default_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let out = cartback(dir.path(), &["campaign", "list"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("built-in default"));
    assert!(stdout(&out).contains("30m -> 1d"), "{}", stdout(&out));
}

#[test]
fn given_the_shipped_campaign_files_when_applied_then_they_are_listed_and_export_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["infra/campaigns/default.toml", "infra/campaigns/returners.toml", "infra/campaigns/vouchers.toml"] {
        let out = cartback(dir.path(), &["campaign", "apply", &repo_file(file)]);
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let list = stdout(&cartback(dir.path(), &["campaign", "list"]));
    assert!(list.contains("returners") && list.contains("default"), "{list}");

    let exported = stdout(&cartback(dir.path(), &["campaign", "export", "returners"]));
    let reparsed = cartback_core::campaign::Campaign::from_toml(&exported).expect("export is a valid campaign file");
    assert_eq!(reparsed.entry.segment, Some(cartback_core::campaign::Segment::ReturnedRecently));
    assert_eq!(reparsed.priority, 10);
}

#[test]
fn given_the_shipped_default_file_when_parsed_then_it_equals_the_built_in_default() {
    let text = std::fs::read_to_string(repo_file("infra/campaigns/default.toml")).unwrap();
    assert_eq!(
        cartback_core::campaign::Campaign::from_toml(&text).unwrap(),
        cartback_core::campaign::Campaign::default_campaign()
    );
}

#[test]
fn given_a_campaign_file_with_consent_settings_when_applied_then_they_are_kept_and_a_bad_region_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("eu.toml");
    let text = "id = \"eu\"\nname = \"EU\"\nregion = \"eu\"\nrequire_explicit_consent_for_guests = true\n\
                [[steps]]\ndelay = \"1h\"\n";
    std::fs::write(&file, text).unwrap();
    let out = cartback(dir.path(), &["campaign", "apply", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported = stdout(&cartback(dir.path(), &["campaign", "export", "eu"]));
    let reparsed = cartback_core::campaign::Campaign::from_toml(&exported).expect("export is a valid campaign file");
    assert_eq!(reparsed.region, Some(cartback_core::campaign::Region::Eu));
    assert_eq!(reparsed.require_explicit_consent_for_guests, Some(true));

    std::fs::write(&file, text.replace("\"eu\"\nrequire", "\"europe\"\nrequire")).unwrap();
    let out = cartback(dir.path(), &["campaign", "apply", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("region: \"europe\" is not one of eu, uk, us, other"), "{err}");
}

#[test]
fn given_an_invalid_campaign_file_when_applied_then_each_bad_field_is_named_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "id = \"bad id\"\nname = \"x\"\n[[steps]]\ndelay = \"5s\"\ntemplate = \"nope\"\n").unwrap();
    let out = cartback(dir.path(), &["campaign", "apply", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for field in ["id:", "steps[0].delay:", "steps[0].template:"] {
        assert!(err.contains(field), "{field} missing in {err}");
    }
    assert!(stdout(&cartback(dir.path(), &["campaign", "list"])).contains("built-in default"));
}

#[test]
fn given_a_campaign_when_disabled_and_enabled_then_show_reflects_it() {
    let dir = tempfile::tempdir().unwrap();
    cartback(dir.path(), &["campaign", "apply", &repo_file("infra/campaigns/returners.toml")]);
    assert!(cartback(dir.path(), &["campaign", "disable", "returners"]).status.success());
    assert!(stdout(&cartback(dir.path(), &["campaign", "show", "returners"])).contains("enabled = false"));
    assert!(cartback(dir.path(), &["campaign", "enable", "returners"]).status.success());
    assert!(stdout(&cartback(dir.path(), &["campaign", "show", "returners"])).contains("enabled = true"));
    let missing = cartback(dir.path(), &["campaign", "disable", "nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no campaign \"nope\""));
}
