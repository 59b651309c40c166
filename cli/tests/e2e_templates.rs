//! `cartback template` end to end: a folder of sets applied to the local
//! store (all or nothing, each problem named by file and field), exported
//! back in the layout it was read from, previewed to files, and the sets a
//! running `cartback dev` sends with.

#[path = "support/dev.rs"]
mod dev;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use dev::{cartback, Dev, Launch, DEADLINE};

/// Step 1 (30 minutes) comes after about 0.4 real seconds.
const SPEED: &str = "5000";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; answers its stdout.
fn ok(data: &Path, args: &[&str]) -> String {
    let out = cartback(data, args);
    assert!(out.status.success(), "cartback {args:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// Every file under `dir`, by relative path.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let mut files = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let key = path.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/");
                files.insert(key, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    files
}

fn shipped_folder() -> PathBuf {
    PathBuf::from(format!("{}/../infra/templates", env!("CARGO_MANIFEST_DIR")))
}

/// A copy of the shipped `reminder` set in `dir/reminder`.
fn reminder_copy(dir: &Path) -> PathBuf {
    let folder = dir.join("reminder");
    for (path, content) in tree(&shipped_folder().join("reminder")) {
        let target = folder.join(&path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, content).unwrap();
    }
    folder
}

/// GIVEN the shipped sets exported from an empty store WHEN applied to a
/// second store and exported again THEN both exports hold the same files,
/// brand.toml included, and the second store lists both sets as stored.
#[test]
fn given_an_export_when_applied_elsewhere_and_exported_again_then_the_files_are_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let brand = "[brand]\nname = \"Küchenladen\"\nprimary_colour = \"#0a7c4a\"\n\
                 support_url = \"https://shop.example/help\"\n";
    let seed = dir.path().join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::write(seed.join("brand.toml"), brand).unwrap();
    ok(&first, &["template", "apply", seed.to_str().unwrap()]);

    let exported = dir.path().join("exported");
    ok(&first, &["template", "export", exported.to_str().unwrap()]);
    let files = tree(&exported);
    assert!(files.contains_key("reminder/de/subject.txt") && files.contains_key("last_call/set.toml"), "{files:?}");
    assert!(files["brand.toml"].contains("Küchenladen"), "{}", files["brand.toml"]);

    ok(&second, &["template", "apply", exported.to_str().unwrap()]);
    let again = dir.path().join("again");
    ok(&second, &["template", "export", again.to_str().unwrap()]);
    assert_eq!(tree(&again), files);
    let list = ok(&second, &["template", "list"]);
    assert!(list.lines().any(|l| l.starts_with("reminder ") && l.contains("stored")), "{list}");
    assert!(list.contains("brand: Küchenladen"), "{list}");

    let not_empty = cartback(&second, &["template", "export", again.to_str().unwrap()]);
    assert!(!not_empty.status.success(), "an export never writes over a folder");

    let deleted = ok(&second, &["template", "delete", "reminder"]);
    assert!(deleted.contains("the shipped reminder applies again"), "{deleted}");
    let list = ok(&second, &["template", "list"]);
    assert!(list.lines().any(|l| l.starts_with("reminder ") && l.contains("shipped")), "{list}");
    assert!(!cartback(&second, &["template", "delete", "reminder"]).status.success(), "nothing left to delete");
}

/// GIVEN a folder with a good set, a set whose German subject uses an
/// unknown variable and a brand with a bad colour WHEN applied THEN
/// nothing is stored and each problem is printed with its file and field.
#[test]
fn given_a_set_with_an_unknown_variable_when_applied_then_it_is_refused_naming_file_and_variable() {
    let dir = tempfile::tempdir().unwrap();
    let (data, folder) = (dir.path().join("data"), dir.path().join("templates"));
    let reminder = reminder_copy(&folder);
    std::fs::write(reminder.join("de/subject.txt"), "{{ first_nme }}, dein Warenkorb wartet\n").unwrap();
    std::fs::write(folder.join("brand.toml"), "[brand]\nname = \"Shop\"\nprimary_colour = \"green\"\n").unwrap();
    let out = cartback(&data, &["template", "apply", folder.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("nothing applied"), "{err}");
    assert!(err.contains("reminder/de/subject.txt: locales.de.email_subject: unknown variable `first_nme`"), "{err}");
    assert!(err.contains("brand.toml: brand.primary_colour:"), "{err}");

    let list = ok(&data, &["template", "list"]);
    assert!(list.lines().any(|l| l.starts_with("reminder ") && l.contains("shipped")), "nothing stored: {list}");
    assert!(list.contains("brand: (none stored"), "{list}");
}

/// GIVEN the shipped sets WHEN step 1 is previewed in German for the
/// sample cart THEN every file is written, the email is German with its
/// restore link and the `.eml` is a whole message with that subject.
#[test]
fn given_the_shipped_sets_when_previewed_in_german_then_every_channel_file_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("preview"));
    let args = ["template", "preview", "1", "--locale", "de", "--sample", "--out", out.to_str().unwrap()];
    let printed = ok(&data, &args);
    let files = tree(&out);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(names, ["email.eml", "email.html", "email.txt", "in_app.txt", "push.txt", "sms.txt", "web_push.txt"]);
    assert!(printed.contains("set reminder, step 1, locale de"), "{printed}");
    assert!(files["email.html"].contains("lang=\"de\""), "{}", &files["email.html"][..400]);
    assert!(files["sms.txt"].contains("https://preview.cartback.invalid/restore"), "{}", files["sms.txt"]);
    assert!(files["email.eml"].contains("Subject:") && files["email.eml"].contains("MIME-Version"), "a whole message");

    let missing = cartback(&data, &["template", "preview", "no_such_set", "--out", out.to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("no template set \"no_such_set\""), "{}", text(&missing.stderr));
}

/// GIVEN a German subject applied to the `reminder` set WHEN a customer
/// with locale de and one with locale en abandon carts on `cartback dev`
/// THEN the German customer's email has the applied subject and the
/// English one's the shipped English subject.
#[test]
fn given_a_changed_german_subject_when_a_german_customer_abandons_a_cart_then_their_email_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, folder) = (dir.path().join("data"), dir.path().join("templates"));
    std::fs::create_dir_all(&data).unwrap();
    let reminder = reminder_copy(&folder);
    std::fs::write(reminder.join("de/subject.txt"), "{{ first_name }}, TSTORE-DE-42 wartet auf dich\n").unwrap();
    ok(&data, &["template", "apply", folder.to_str().unwrap()]);

    let dev = Dev::start(Launch { speed: SPEED, data: Some(&data), ..Launch::default() });
    let event = |id: &str, cart: &str, email: &str, locale: &str| {
        json!({
            "event_id": id, "type": "add_to_cart", "cart_id": cart, "device": "desktop", "currency": "EUR",
            "customer": {"email": email, "first_name": "Ana", "locale": locale, "consents": {"email": true}},
            "items": [{"item_id": "sku-mug", "item_name": "Mug", "price": "14.90", "quantity": 2,
                       "image_url": "https://cdn.example.com/mug.jpg", "url": "https://shop.example.com/p/mug"}]
        })
    };
    let body = json!({"events": [event("de1", "cart-de", "ana@example.de", "de-DE"),
                                 event("en1", "cart-en", "bob@example.com", "en-GB")]});
    let (status, answer) = dev.post_events(&body);
    assert_eq!((status, &answer["accepted"]), (200, &json!(2)), "{answer}");

    let start = Instant::now();
    let mails: Vec<String> = loop {
        let mails = dev.emails();
        if mails.len() >= 2 || start.elapsed() > DEADLINE {
            break mails.into_iter().map(|(_, mail)| mail).collect();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(mails.len(), 2, "two reminders are sent");
    let german = mails.iter().find(|m| m.contains("ana@example.de")).expect("the German customer's email");
    let english = mails.iter().find(|m| m.contains("bob@example.com")).expect("the English customer's email");
    assert!(german.contains("TSTORE-DE-42 wartet auf dich"), "{german}");
    assert!(!english.contains("TSTORE-DE-42"), "the English customer reads the English subject: {english}");
}

/// GIVEN a campaign whose step names a set `winter` WHEN applied before the set is stored THEN it is
/// refused naming the step; once `cartback template apply` stored `winter`, the same file is applied and
/// `template list` shows the step using it.
#[test]
fn given_a_campaign_naming_a_set_when_applied_then_it_needs_the_set_stored_first() {
    let dir = tempfile::tempdir().unwrap();
    let (data, folder) = (dir.path().join("data"), dir.path().join("templates"));
    let campaign = dir.path().join("winter.toml");
    std::fs::write(&campaign, "id = \"winter\"\nname = \"Winter\"\n[[steps]]\ndelay = \"1h\"\ntemplate = \"winter\"\n")
        .unwrap();
    let refused = cartback(&data, &["campaign", "apply", campaign.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("steps[0].template"), "{}", text(&refused.stderr));

    let reminder = reminder_copy(&folder);
    std::fs::rename(reminder, folder.join("winter")).unwrap();
    ok(&data, &["template", "apply", folder.to_str().unwrap()]);
    ok(&data, &["campaign", "apply", campaign.to_str().unwrap()]);
    let list = ok(&data, &["template", "list"]);
    assert!(list.lines().any(|l| l.starts_with("winter ") && l.ends_with("winter step 1")), "{list}");
}

/// GIVEN an events file of a French customer's cart WHEN `last_call` is previewed from it THEN the
/// texts are French, name the customer and show the cart's total; an event missing its type is refused
/// naming the file and the field.
#[test]
fn given_a_real_cart_file_when_previewed_then_its_customer_locale_and_total_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out, file) = (dir.path().join("data"), dir.path().join("preview"), dir.path().join("cart.json"));
    let events = json!({"events": [{
        "event_id": "p1", "type": "add_to_cart", "cart_id": "cart-fr", "currency": "EUR",
        "customer": {"email": "zoe@example.fr", "first_name": "Zoë", "locale": "fr-FR", "timezone": "Europe/Paris"},
        "items": [{"item_id": "sku-1", "item_name": "Théière", "price": "49.00", "quantity": 2}]
    }]});
    std::fs::write(&file, serde_json::to_vec(&events).unwrap()).unwrap();
    let printed = ok(
        &data,
        &["template", "preview", "last_call", "--cart", file.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    assert!(printed.contains("locale fr-FR"), "{printed}");
    let sms = std::fs::read_to_string(out.join("sms.txt")).unwrap();
    assert!(sms.contains("Zoë") && sms.contains("98,00\u{a0}€"), "{sms}");

    std::fs::write(&file, r#"{"events": [{"event_id": "p2", "cart_id": "c"}]}"#).unwrap();
    let refused = cartback(
        &data,
        &["template", "preview", "1", "--cart", file.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    assert!(!refused.status.success());
    let err = text(&refused.stderr);
    assert!(err.contains("cart.json: events[0].type"), "{err}");
}
