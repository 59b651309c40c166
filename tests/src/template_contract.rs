//! The template store's contract (`TemplateStore`): sets are kept by name,
//! replaced whole, deleted, and read back exactly; the brand is one record.
//! Run against both runtimes through [`crate::contract_suite!`].

use std::collections::BTreeMap;

use cartback_core::template::{Brand, TemplateName, TemplateParts, TemplateSet};

use crate::contract::{unique, Adapters};

/// A set with every part in `locales`, texts carrying characters a store
/// must not mangle (quotes, braces, accents, right-to-left script).
pub fn full_set(name: &TemplateName, locales: &[&str]) -> TemplateSet {
    let parts = |locale: &str| TemplateParts {
        email_subject: Some(format!("{locale}: {{{{ first_name }}}}, your cart \"waits\" \u{2014} é")),
        email_preheader: Some(format!("{locale} preheader")),
        email_html: Some(format!(
            "<p dir=\"auto\">{locale} \u{0645}\u{0631}\u{062d}\u{0628}\u{0627} {{{{ first_name }}}}</p>\
             <a href=\"{{{{ restore_link }}}}\">Restore</a> <a href=\"{{{{ unsubscribe_link }}}}\">Unsubscribe</a>"
        )),
        email_text: Some(format!("{locale}\n{{{{ restore_link }}}}\n{{{{ unsubscribe_link }}}}\n")),
        sms: Some(format!("{locale} {{{{ restore_link }}}}")),
        push_title: Some(format!("{locale} push")),
        push_body: Some("{% if voucher %}{{ voucher.code }}{% endif %}".into()),
        web_push_title: Some(format!("{locale} web push")),
        web_push_body: None,
        in_app_title: Some(format!("{locale} in app")),
        in_app_body: Some(format!("{locale} in-app body")),
    };
    let mut set = TemplateSet::new(name.clone(), locales.first().copied().unwrap_or("en"));
    set.locales = locales.iter().map(|locale| ((*locale).to_owned(), parts(locale))).collect();
    set.shared.insert("footer.html".into(), "<p>{{ postal_address }}</p>".into());
    set
}

fn fresh_name() -> TemplateName {
    TemplateName::parse(&unique("tmpl")).unwrap()
}

pub async fn templates_put_list_replace_delete(a: &Adapters) {
    let (first, second) = (fresh_name(), fresh_name());
    a.templates.put_template(&full_set(&first, &["en", "de"])).await.unwrap();
    a.templates.put_template(&full_set(&second, &["fr-CA"])).await.unwrap();

    let mut replaced = full_set(&first, &["de", "en", "es"]);
    replaced.locales.entry("de".into()).or_default().email_subject = Some("Dein Warenkorb".into());
    replaced.locales.entry("en".into()).or_default().sms = None;
    a.templates.put_template(&replaced).await.unwrap();

    let ours = |sets: Vec<TemplateSet>| -> BTreeMap<TemplateName, TemplateSet> {
        sets.into_iter().filter(|s| s.name == first || s.name == second).map(|s| (s.name.clone(), s)).collect()
    };
    let listed = ours(a.templates.list_templates().await.unwrap());
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed.get(&first), Some(&replaced), "the replacement is stored whole, the old locales gone");
    assert_eq!(listed.get(&second), Some(&full_set(&second, &["fr-CA"])));

    assert!(a.templates.delete_template(&first).await.unwrap(), "a stored set is deleted");
    assert!(!a.templates.delete_template(&first).await.unwrap(), "a second delete finds nothing");
    let listed = ours(a.templates.list_templates().await.unwrap());
    assert_eq!(listed.keys().collect::<Vec<_>>(), [&second]);
}

/// Four locales of about 70 KB of HTML each (a long, fully styled email):
/// the whole set is kept and read back byte for byte.
pub async fn a_large_set_of_four_locales_round_trips(a: &Adapters) {
    let name = fresh_name();
    let mut set = full_set(&name, &["en", "de", "fr", "es"]);
    for (locale, parts) in set.locales.iter_mut() {
        let row = format!("<tr><td style=\"padding:8px;color:#222\">{locale} \u{00e9}\u{00df} item</td></tr>\n");
        let html = parts.email_html.get_or_insert_with(String::new);
        while html.len() < 70 * 1024 {
            html.push_str(&row);
        }
    }
    a.templates.put_template(&set).await.unwrap();
    let stored = a.templates.list_templates().await.unwrap().into_iter().find(|s| s.name == name);
    assert_eq!(stored.as_ref(), Some(&set));
}

pub async fn brand_is_absent_then_stored_and_replaced(a: &Adapters) {
    assert_eq!(a.templates.brand().await.unwrap(), None, "a new store has no brand");
    let brand = Brand {
        name: "Müller & Söhne \"Küchen\"".into(),
        logo_url: Some("https://cdn.example/logo.png".into()),
        primary_colour: Some("#0a7c4a".into()),
        text_colour: Some("#222222".into()),
        postal_address: Some("Hauptstraße 1\n10115 Berlin".into()),
        support_url: Some("https://shop.example/help".into()),
    };
    a.templates.put_brand(&brand).await.unwrap();
    assert_eq!(a.templates.brand().await.unwrap().as_ref(), Some(&brand));

    let plain = Brand { name: "Plain".into(), ..Brand::default() };
    a.templates.put_brand(&plain).await.unwrap();
    assert_eq!(a.templates.brand().await.unwrap(), Some(plain), "the brand is replaced whole");
}
