//! Message templates as data a marketer owns: a named set (what a campaign
//! step's `template` names) holding, per locale, the parts of every channel
//! (email subject, preheader, HTML and text; SMS; push; web push; in-app),
//! written in minijinja. Sets live in the config store next to campaigns
//! ([`crate::ports::TemplateStore`]); the shipped defaults are the files in
//! `infra/templates/`, compiled in so a store without sets still sends.
//!
//! SKELETON (issue 16): the types and signatures below are the shape the
//! store, CLI and dashboard build on; the bodies are being written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A template set's name, as a campaign step names it: `reminder`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TemplateName(String);

impl TemplateName {
    /// 1 to 64 of `a-z`, `0-9`, `_` and `-`, starting with a letter.
    pub fn parse(name: &str) -> Result<Self, String> {
        let ok = name.len() <= 64
            && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if ok {
            Ok(TemplateName(name.to_owned()))
        } else {
            Err(format!("{name:?} is not a template name: 1 to 64 of a-z, 0-9, _ and -, starting with a letter"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TemplateName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        TemplateName::parse(&value)
    }
}

impl From<TemplateName> for String {
    fn from(name: TemplateName) -> String {
        name.0
    }
}

impl std::fmt::Display for TemplateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One locale's parts of a set. A part left out is not sent on that
/// channel in that locale: the set's default locale fills it in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateParts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_preheader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_push_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_push_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_app_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_app_body: Option<String>,
}

/// A named template set: its parts per locale tag (`en`, `de`, `fr-CA`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSet {
    pub name: TemplateName,
    /// The locale a customer without a closer one reads.
    pub default_locale: String,
    pub locales: BTreeMap<String, TemplateParts>,
}

/// The shop's look, shared by every template (`[brand]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Brand {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    /// `#rrggbb` colours: buttons and accents, and the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_colour: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_colour: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_url: Option<String>,
}

/// Why a set (or brand) cannot be stored: the field (`locales.de.email_html`)
/// and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateProblem {
    pub field: String,
    pub message: String,
}

impl TemplateSet {
    /// Every problem that stops this set from being stored: syntax, unknown
    /// variables, a missing restore link or (email) unsubscribe link.
    pub fn validate(&self) -> Result<(), Vec<TemplateProblem>> {
        Ok(())
    }

    /// The set written as `infra/templates/<name>/` holds it: file paths
    /// relative to that folder, and their text.
    pub fn to_files(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// The set a folder holds (see [`TemplateSet::to_files`]).
    pub fn from_files(name: TemplateName, files: &BTreeMap<String, String>) -> Result<Self, Vec<TemplateProblem>> {
        let _ = files;
        Err(vec![TemplateProblem { field: name.to_string(), message: "not written yet".into() }])
    }
}

impl Brand {
    /// Problems with the brand settings (a colour that is not `#rrggbb`, a
    /// URL that is not https).
    pub fn validate(&self) -> Result<(), Vec<TemplateProblem>> {
        Ok(())
    }
}

/// The shipped default sets (`infra/templates/`), compiled in.
pub fn shipped() -> Vec<TemplateSet> {
    Vec::new()
}

/// One cart as a preview shows it: a sample or a real cart, as a customer
/// in `locale` and `time_zone` would read it at step `step`.
#[derive(Debug, Clone)]
pub struct PreviewInput {
    pub cart: crate::cart::Cart,
    pub first_name: Option<String>,
    pub locale: Option<String>,
    pub time_zone: chrono_tz::Tz,
    /// 1-based, as the templates see it.
    pub step: u32,
    pub voucher: Option<crate::voucher::ShownVoucher>,
    /// A customer with a recent return (the `recovery` segment).
    pub returner: bool,
}

impl PreviewInput {
    /// A made-up cart of three items with images, for `--sample`.
    pub fn sample(step: u32, locale: Option<&str>) -> PreviewInput {
        PreviewInput {
            cart: crate::cart::Cart::from_events("sample-cart", &[]),
            first_name: Some("Alex".into()),
            locale: locale.map(str::to_owned),
            time_zone: chrono_tz::UTC,
            step,
            voucher: None,
            returner: false,
        }
    }
}

/// Every channel's rendered text for one cart (links point at the preview's
/// placeholders, not signed tokens).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Preview {
    pub email_subject: String,
    pub email_preheader: String,
    pub email_html: String,
    pub email_text: String,
    /// The whole email as it would be sent (RFC 5322, `.eml`).
    #[serde(skip)]
    pub eml: Vec<u8>,
    pub sms: String,
    pub push_title: String,
    pub push_body: String,
    pub web_push_title: String,
    pub web_push_body: String,
    pub in_app_title: String,
    pub in_app_body: String,
}

/// Renders every part of `set` for `input`, the locale picked as a send
/// would pick it.
pub fn preview(set: &TemplateSet, brand: &Brand, input: &PreviewInput) -> Result<Preview, crate::render::RenderError> {
    let _ = (brand, input);
    Err(crate::render::RenderError::UnknownTemplate(set.name.to_string()))
}
