//! The default email as a customer's browser lays it out: starts the real `cartback dev`, stores a brand
//! with `cartback template apply`, prints a dashboard link with `cartback dashboard`, and opens the
//! dashboard's email page (`/dashboard/templates/reminder/email`) in headless Chromium (chromedriver, W3C
//! WebDriver) at 375 px (a phone) and 1024 px (a desktop) wide. It saves both screenshots to
//! `target/template-email-375.png` and `target/template-email-1024.png`, and checks the layout: at 375 px
//! nothing reaches past the screen's right edge (no sideways scrolling), at 1024 px the content column is
//! at most 600 px wide and centred.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/browser.sh installs them). Missing, the test is
//! skipped with a message on a developer's machine, and fails under CI (`CI` or `CARTBACK_REQUIRE_BROWSER`).

#[path = "support/browser.rs"]
mod browser;
#[path = "support/dev.rs"]
mod dev;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use browser::Browser;
use dev::{cartback, stderr, Dev, Launch, SECRET};

/// `cartback dev` on a data folder where `cartback template apply` stored a brand first.
fn start_with_brand(data: &Path) -> Dev {
    let folder = data.join("templates");
    std::fs::create_dir_all(&folder).unwrap();
    let brand = "[brand]\nname = \"Harbour Home\"\nprimary_colour = \"#0a5c7a\"\n\
                 postal_address = \"Harbour Home Ltd, 2 Quay Street, Bristol BS1 4DJ\"\n\
                 support_url = \"https://shop.example.com/help\"\n";
    std::fs::write(folder.join("brand.toml"), brand).unwrap();
    let applied = cartback(data, &["template", "apply", &folder.to_string_lossy()]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    Dev::start(Launch { data: Some(data), ..Launch::default() })
}

/// The dashboard link's token, from `cartback dashboard`.
fn token(dev: &Dev) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_cartback"))
        .args(["dashboard", "--url", &dev.base, "--data"])
        .arg(&dev.data)
        .env("CARTBACK_INGEST_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let link = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    link.split_once("token=").expect("a token in the link").1.to_owned()
}

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_owned()
}

/// The browser, or None when the test is skipped (no Chromium outside CI).
fn browser(window: &str) -> Option<Browser> {
    match Browser::start(window) {
        Ok(browser) => Some(browser),
        Err(why) if std::env::var_os("CI").is_none() && std::env::var_os("CARTBACK_REQUIRE_BROWSER").is_none() => {
            eprintln!("SKIPPED: {why}; install Debian's chromium and chromium-driver (scripts/browser.sh does)");
            None
        }
        Err(why) => panic!("{why}: the template browser test must run here (CI); scripts/browser.sh installs them"),
    }
}

/// Makes the page's viewport `width` x `height` CSS pixels, as a phone's or a desktop's (Chromium keeps a
/// window at least 500 px wide, so the width is emulated through the DevTools protocol, as its device
/// toolbar does).
fn viewport(browser: &Browser, width: u64, height: u64) {
    let params = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500});
    let command = json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": params});
    browser.command("POST", "/goog/cdp/execute", command);
}

/// Opens `url` at `width` px and saves a screenshot of the whole email to `file`; answers the layout facts:
/// the viewport width, the document's scroll width, the right-most element edge, and the content column's
/// left and right edges.
fn lay_out(browser: &Browser, url: &str, width: u64, file: &Path) -> Value {
    viewport(browser, width, 900);
    browser.open(url);
    let facts = browser.script(
        concat!(
            "const column = document.querySelector('table[style*=\"max-width:600px\"]').getBoundingClientRect();",
            "let right = 0; for (const e of document.body.querySelectorAll('*')) {",
            "  const r = e.getBoundingClientRect(); if (r.width > 0) right = Math.max(right, r.right); }",
            "return {viewport: window.innerWidth, scroll: document.documentElement.scrollWidth, right: right,",
            "  column_left: column.left, column_right: column.right,",
            "  height: Math.ceil(document.documentElement.scrollHeight), lang: document.documentElement.lang,",
            "  images: document.images.length,",
            "  broken: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)};"
        ),
        json!([]),
    );
    // The screenshot holds the whole email and no more.
    viewport(browser, width, facts["height"].as_u64().unwrap_or(900));
    browser.screenshot(file);
    assert!(std::fs::metadata(file).unwrap().len() > 5_000, "{}", file.display());
    eprintln!("screenshot: {}", file.display());
    facts
}

/// GIVEN `cartback dev` with a stored brand and the shipped `reminder` set
/// WHEN its email for the sample cart is opened in Chromium at 375 px and at 1024 px wide
/// THEN at 375 px nothing reaches past the right edge (no sideways scrolling) and the column fills the
/// screen; at 1024 px the column is at most 600 px wide and centred; both screenshots are saved.
#[test]
fn given_the_default_email_when_laid_out_at_375_and_1024_px_then_it_fits_the_phone_and_centres_on_the_desktop() {
    let dir = tempfile::tempdir().unwrap();
    let dev = start_with_brand(dir.path());
    let url = format!("{}/dashboard/templates/reminder/email?token={}&locale=en", dev.base, token(&dev));

    let Some(browser) = browser("1280,900") else { return };
    let small = lay_out(&browser, &url, 375, &target_dir().join("template-email-375.png"));
    assert_eq!(small["viewport"], json!(375), "the window is a phone's width: {small}");
    assert_eq!(small["lang"], json!("en"));
    // The sample's item pictures load offline (they travel in the page), so the screenshots show them.
    assert_eq!(small["images"], json!(3), "{small}");
    assert_eq!(small["broken"], json!([]), "pictures that did not load: {small}");
    assert!(small["scroll"].as_f64().unwrap() <= 375.0, "the page scrolls sideways: {small}");
    assert!(small["right"].as_f64().unwrap() <= 375.5, "an element reaches past the screen: {small}");
    let column = small["column_right"].as_f64().unwrap() - small["column_left"].as_f64().unwrap();
    assert!(column >= 340.0, "the column uses the phone's width: {small}");

    let wide = lay_out(&browser, &url, 1024, &target_dir().join("template-email-1024.png"));
    assert_eq!(wide["viewport"], json!(1024), "{wide}");
    let (left, right) = (wide["column_left"].as_f64().unwrap(), wide["column_right"].as_f64().unwrap());
    assert!(right - left <= 600.5 && right - left >= 590.0, "the column is 600 px wide: {wide}");
    assert!((left - (1024.0 - right)).abs() <= 1.0, "the column is centred: {wide}");
}
