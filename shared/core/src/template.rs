//! Message templates as data a marketer owns: a named set (what a campaign
//! step's `template` names) holding, per locale, the parts of every channel
//! (email subject, preheader, HTML and text; SMS; push; web push; in-app),
//! written in minijinja. Sets live in the config store next to campaigns
//! ([`crate::ports::TemplateStore`]); the shipped defaults are the files in
//! `infra/templates/`, compiled in so a store without sets still sends.
//!
//! A set is a folder a marketer edits (see [`TemplateSet::to_files`]):
//!
//! ```text
//! reminder/
//!   set.toml          default_locale = "en"
//!   layout.html       optional: replaces the shipped email layout
//!   en/subject.txt    one file per part: subject.txt, preheader.txt,
//!   en/email.html     email.html, email.txt, sms.txt, push_title.txt,
//!   de/...            push_body.txt, web_push_title.txt, web_push_body.txt,
//!                     in_app_title.txt, in_app_body.txt
//! ```
//!
//! A locale's `email.html` extends the layout and fills in its words
//! (`{% extends "layout.html" %}{% block intro %}...{% endblock %}`), so
//! the 100-line responsive layout is written once, not per set and locale.

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

/// A named template set: its parts per locale tag (`en`, `de`, `fr-CA`),
/// and the files every locale's parts may `{% extends %}` or `{% include %}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSet {
    pub name: TemplateName,
    /// The locale a customer without a closer one reads.
    pub default_locale: String,
    pub locales: BTreeMap<String, TemplateParts>,
    /// Files shared by the locales, by file name (`layout.html`). The
    /// shipped `layout.html` is there for every set that has none of its
    /// own, so a set usually holds only words.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shared: BTreeMap<String, String>,
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

/// One part of a locale's templates: what it is called as a field
/// (`email_html`) and as a file (`email.html`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    EmailSubject,
    EmailPreheader,
    EmailHtml,
    EmailText,
    Sms,
    PushTitle,
    PushBody,
    WebPushTitle,
    WebPushBody,
    InAppTitle,
    InAppBody,
}

impl Part {
    pub const ALL: [Part; 11] = [
        Part::EmailSubject,
        Part::EmailPreheader,
        Part::EmailHtml,
        Part::EmailText,
        Part::Sms,
        Part::PushTitle,
        Part::PushBody,
        Part::WebPushTitle,
        Part::WebPushBody,
        Part::InAppTitle,
        Part::InAppBody,
    ];

    /// The field of [`TemplateParts`]: `email_html`.
    pub fn field(self) -> &'static str {
        match self {
            Part::EmailSubject => "email_subject",
            Part::EmailPreheader => "email_preheader",
            Part::EmailHtml => "email_html",
            Part::EmailText => "email_text",
            Part::Sms => "sms",
            Part::PushTitle => "push_title",
            Part::PushBody => "push_body",
            Part::WebPushTitle => "web_push_title",
            Part::WebPushBody => "web_push_body",
            Part::InAppTitle => "in_app_title",
            Part::InAppBody => "in_app_body",
        }
    }

    /// The file in a locale's folder: `email.html`. Only `.html` files are
    /// HTML-escaped when rendered.
    pub fn file(self) -> &'static str {
        match self {
            Part::EmailSubject => "subject.txt",
            Part::EmailPreheader => "preheader.txt",
            Part::EmailHtml => "email.html",
            Part::EmailText => "email.txt",
            Part::Sms => "sms.txt",
            Part::PushTitle => "push_title.txt",
            Part::PushBody => "push_body.txt",
            Part::WebPushTitle => "web_push_title.txt",
            Part::WebPushBody => "web_push_body.txt",
            Part::InAppTitle => "in_app_title.txt",
            Part::InAppBody => "in_app_body.txt",
        }
    }

    fn from_file(file: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|p| p.file() == file)
    }

    /// Bodies that bring the customer back must carry the restore link.
    pub(crate) fn needs_restore_link(self) -> bool {
        matches!(self, Part::EmailHtml | Part::EmailText | Part::Sms | Part::InAppBody)
    }

    /// An email's bodies must carry the unsubscribe link (CAN-SPAM, RFC 8058).
    pub(crate) fn needs_unsubscribe_link(self) -> bool {
        matches!(self, Part::EmailHtml | Part::EmailText)
    }
}

impl TemplateParts {
    pub fn get(&self, part: Part) -> Option<&str> {
        self.slot(part).as_deref()
    }

    pub fn set(&mut self, part: Part, text: Option<String>) {
        *self.slot_mut(part) = text;
    }

    fn slot(&self, part: Part) -> &Option<String> {
        match part {
            Part::EmailSubject => &self.email_subject,
            Part::EmailPreheader => &self.email_preheader,
            Part::EmailHtml => &self.email_html,
            Part::EmailText => &self.email_text,
            Part::Sms => &self.sms,
            Part::PushTitle => &self.push_title,
            Part::PushBody => &self.push_body,
            Part::WebPushTitle => &self.web_push_title,
            Part::WebPushBody => &self.web_push_body,
            Part::InAppTitle => &self.in_app_title,
            Part::InAppBody => &self.in_app_body,
        }
    }

    fn slot_mut(&mut self, part: Part) -> &mut Option<String> {
        match part {
            Part::EmailSubject => &mut self.email_subject,
            Part::EmailPreheader => &mut self.email_preheader,
            Part::EmailHtml => &mut self.email_html,
            Part::EmailText => &mut self.email_text,
            Part::Sms => &mut self.sms,
            Part::PushTitle => &mut self.push_title,
            Part::PushBody => &mut self.push_body,
            Part::WebPushTitle => &mut self.web_push_title,
            Part::WebPushBody => &mut self.web_push_body,
            Part::InAppTitle => &mut self.in_app_title,
            Part::InAppBody => &mut self.in_app_body,
        }
    }
}

/// The variables a template may use (documented in the README, "Message
/// templates"). Anything else is refused when a set is written.
pub const VARIABLES: [&str; 22] = [
    "first_name",
    "items",
    "item_count",
    "more_items",
    "subtotal",
    "currency",
    "restore_link",
    "unsubscribe_link",
    "postal_address",
    "voucher",
    "step",
    "returner",
    "segment",
    "brand",
    "locale",
    "direction",
    "preheader",
    "subject",
    // minijinja's own globals.
    "range",
    "dict",
    "namespace",
    "loop",
];

/// The set's description file (`default_locale = "en"`).
const SET_FILE: &str = "set.toml";

/// The most a file of a set may weigh: a part is words and markup, not images.
const MAX_FILE_BYTES: usize = 64 * 1024;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SetFile {
    default_locale: String,
}

fn problem(field: impl Into<String>, message: impl Into<String>) -> TemplateProblem {
    TemplateProblem { field: field.into(), message: message.into() }
}

impl TemplateSet {
    /// An empty set whose customers without a closer locale read `default_locale`.
    pub fn new(name: TemplateName, default_locale: &str) -> TemplateSet {
        TemplateSet {
            name,
            default_locale: default_locale.to_owned(),
            locales: BTreeMap::new(),
            shared: BTreeMap::new(),
        }
    }

    /// The locale a customer with `locale` reads: the exact tag, then its
    /// language, then the set's default.
    pub fn locale_for(&self, locale: Option<&str>) -> &str {
        crate::locale::closest(locale, self.locales.keys().map(String::as_str), &self.default_locale)
    }

    /// A part in `locale`, or the default locale's when that locale leaves it out.
    pub fn part(&self, locale: &str, part: Part) -> Option<&str> {
        let own = self.locales.get(locale).and_then(|p| p.get(part));
        own.or_else(|| self.locales.get(&self.default_locale).and_then(|p| p.get(part)))
    }

    /// Every problem that stops this set from being stored: syntax, unknown
    /// variables, a missing restore link or (email) unsubscribe link, a
    /// default locale without every part, a malformed locale tag. Each
    /// names its field (`locales.de.email_html`) and says why.
    pub fn validate(&self) -> Result<(), Vec<TemplateProblem>> {
        let mut problems = Vec::new();
        if !crate::locale::is_well_formed(&self.default_locale) {
            problems.push(problem(
                "default_locale",
                format!("{:?} is not a locale tag such as en, de or fr-CA", self.default_locale),
            ));
        }
        match self.locales.get(&self.default_locale) {
            None => problems.push(problem(
                "default_locale",
                format!("the set has no locale {:?}: add a folder {0}/ with every part", self.default_locale),
            )),
            Some(parts) => {
                for part in Part::ALL.into_iter().filter(|p| parts.get(*p).is_none()) {
                    problems.push(problem(
                        format!("locales.{}.{}", self.default_locale, part.field()),
                        format!("missing: the default locale must have every part ({})", part.file()),
                    ));
                }
            }
        }
        for tag in self.locales.keys().filter(|t| !crate::locale::is_well_formed(t)) {
            problems.push(problem(
                format!("locales.{tag}"),
                format!("{tag:?} is not a locale tag such as en, de or fr-CA (language lower case, region upper case)"),
            ));
        }
        for (file, text) in &self.shared {
            let field = format!("shared.{file}");
            if !(file.ends_with(".html") || file.ends_with(".txt")) || file.contains('/') || file == SET_FILE {
                problems.push(problem(&field, "a shared file is a .html or .txt file beside set.toml"));
            } else if Part::from_file(file).is_some() {
                problems.push(problem(&field, "this name belongs to a locale's part: put it in a locale folder"));
            }
            problems.extend(check_source(&field, file, text));
        }
        for (tag, parts) in &self.locales {
            for part in Part::ALL {
                if let Some(text) = parts.get(part) {
                    problems.extend(check_source(&format!("locales.{tag}.{}", part.field()), part.file(), text));
                }
            }
        }
        // Rendered only once the sources parse: links are looked for in
        // what a customer would receive, layouts and includes followed.
        if problems.is_empty() {
            problems.extend(self.check_rendered());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Renders every locale for each of [`PreviewInput::samples`] (with
    /// and without a first name, a voucher, a recent return; 1 and 20
    /// items) with links as long as signed ones, and checks what a customer
    /// would receive: every part renders (undefined is strict, so a
    /// misspelt attribute fails), every body shows its links outside HTML
    /// comments ([`crate::render::check_links`], as sends do), and the
    /// 20-item email stays under Gmail's clipping limit. One problem per
    /// field and kind, for the first sample it shows in.
    fn check_rendered(&self) -> Vec<TemplateProblem> {
        let mut found: BTreeMap<(String, &'static str), String> = BTreeMap::new();
        // A full brand and a sparse one (no name, logo, colours or support
        // link), as a shop without `[brand]` settings sends with.
        let brands = [Brand::sample(), Brand::fallback("1 Market Street")];
        let item = |url: &str| format!("{CHECK_ITEM_LINK}{url}");
        for (brand, (tag, parts)) in brands.iter().flat_map(|b| self.locales.iter().map(move |l| (b, l))) {
            let composer = match crate::render::Composer::new(self, brand, Some(tag)) {
                Ok(composer) => composer,
                Err(error) => {
                    found.entry((format!("locales.{tag}"), "compile")).or_insert(format!("does not compile: {error}"));
                    continue;
                }
            };
            let unsubscribe = check_unsubscribe_link();
            for input in PreviewInput::samples(Some(tag)) {
                let links = crate::render::Links {
                    restore: check_restore_link(),
                    item: &item,
                    unsubscribe: Some(crate::render::Unsubscribe {
                        url: unsubscribe.clone(),
                        mailbox: None,
                        postal_address: "",
                    }),
                    voucher: input.voucher.as_ref(),
                };
                let case = input.describe();
                let rendered = composer.render_all(&input, &links);
                for part in Part::ALL.into_iter().filter(|p| parts.get(*p).is_some()) {
                    let field = format!("locales.{tag}.{}", part.field());
                    let text = match rendered.get(&part) {
                        Some(Ok(text)) => text,
                        Some(Err(error)) => {
                            let why = format!("fails to render {case}: {}", composer.explain(error));
                            found.entry((field, "render")).or_insert(why);
                            continue;
                        }
                        None => continue,
                    };
                    match crate::render::check_links(part, text, &links.restore, Some(unsubscribe.as_str())) {
                        Err(crate::render::RenderError::MissingLink { link, .. }) => {
                            found.entry((field, link)).or_insert(format!(
                                "must show the {link} link ({{{{ {link}_link }}}}) outside HTML comments; it is missing {case}"
                            ));
                        }
                        Err(error) => {
                            found.entry((field, "links")).or_insert(error.to_string());
                        }
                        Ok(()) => {}
                    }
                }
                if let (Some(Ok(html)), true) = (rendered.get(&Part::EmailHtml), input.cart.items.len() >= 20) {
                    if html.len() > GMAIL_CLIP_BYTES {
                        found.entry((format!("locales.{tag}.email_html"), "size")).or_insert(format!(
                            "the {tag} email for a cart of {} items weighs {} KB; Gmail clips an email over {} KB",
                            input.cart.items.len(),
                            html.len().div_ceil(1024),
                            GMAIL_CLIP_BYTES / 1024
                        ));
                    }
                }
            }
        }
        found.into_iter().map(|((field, _), message)| problem(field, message)).collect()
    }

    /// The set written as `infra/templates/<name>/` holds it: file paths
    /// relative to that folder, and their text. Each file ends with a
    /// newline, as editors write them ([`TemplateSet::from_files`] drops it).
    pub fn to_files(&self) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        let head = SetFile { default_locale: self.default_locale.clone() };
        files.insert(SET_FILE.to_owned(), toml::to_string(&head).unwrap_or_default());
        for (file, text) in &self.shared {
            files.insert(file.clone(), format!("{text}\n"));
        }
        for (tag, parts) in &self.locales {
            for part in Part::ALL {
                if let Some(text) = parts.get(part) {
                    files.insert(format!("{tag}/{}", part.file()), format!("{text}\n"));
                }
            }
        }
        files
    }

    /// The set a folder holds (see [`TemplateSet::to_files`]). Paths use
    /// `/`; every problem names the file.
    pub fn from_files(name: TemplateName, files: &BTreeMap<String, String>) -> Result<Self, Vec<TemplateProblem>> {
        let mut problems = Vec::new();
        let default_locale = match files.get(SET_FILE).map(|text| toml::from_str::<SetFile>(text)) {
            Some(Ok(head)) => head.default_locale,
            Some(Err(error)) => {
                problems.push(problem(format!("files.{SET_FILE}"), format!("is not valid: {}", error.message())));
                String::new()
            }
            None => {
                problems.push(problem(format!("files.{SET_FILE}"), "missing: it says default_locale = \"en\""));
                String::new()
            }
        };
        let mut set = TemplateSet::new(name, &default_locale);
        for (path, text) in files.iter().filter(|(path, _)| path.as_str() != SET_FILE) {
            let field = format!("files.{path}");
            if text.len() > MAX_FILE_BYTES {
                problems.push(problem(&field, format!("weighs {} bytes; at most {MAX_FILE_BYTES}", text.len())));
                continue;
            }
            // Editors end files with a newline (CRLF on Windows); it is not part of the template.
            let text = text.strip_suffix('\n').map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
            match path.split('/').collect::<Vec<_>>().as_slice() {
                [file] => {
                    set.shared.insert((*file).to_owned(), text.to_owned());
                }
                [tag, file] => match Part::from_file(file) {
                    Some(part) => set.locales.entry((*tag).to_owned()).or_default().set(part, Some(text.to_owned())),
                    None => {
                        let names: Vec<&str> = Part::ALL.iter().map(|p| p.file()).collect();
                        problems
                            .push(problem(&field, format!("not a part; a locale folder holds {}", names.join(", "))))
                    }
                },
                _ => problems.push(problem(&field, "too deep: a set holds set.toml, shared files and locale folders")),
            }
        }
        if problems.is_empty() {
            Ok(set)
        } else {
            Err(problems)
        }
    }
}

/// The attributes of the variables that are objects (see the README's
/// variables table); `item` is checked when rendered (a loop variable).
const ATTRIBUTES: [(&str, &[&str]); 2] = [
    (
        "voucher",
        &["code", "tier", "kind", "percent", "amount", "cap", "minimum", "discount", "offer", "terms", "expires"],
    ),
    ("brand", &["name", "logo_url", "primary_colour", "text_colour", "postal_address", "support_url"]),
];

/// Syntax, variables and attributes of one template source, and no
/// placeholder link typed in.
fn check_source(field: &str, file: &str, text: &str) -> Vec<TemplateProblem> {
    if text.len() > MAX_FILE_BYTES {
        return vec![problem(field, format!("weighs {} bytes; at most {MAX_FILE_BYTES}", text.len()))];
    }
    if text.contains(PREVIEW_HOST) {
        return vec![problem(
            field,
            format!("{PREVIEW_HOST} is the preview's placeholder host: write {{{{ restore_link }}}} or {{{{ unsubscribe_link }}}}"),
        )];
    }
    let env = crate::render::base_environment();
    let template = match env.template_from_named_str(file, text) {
        Ok(template) => template,
        Err(error) => return vec![problem(field, format!("syntax error: {error}"))],
    };
    let mut unknown: Vec<String> =
        template.undeclared_variables(false).into_iter().filter(|v| !VARIABLES.contains(&v.as_str())).collect();
    unknown.sort();
    let mut problems: Vec<TemplateProblem> = unknown
        .into_iter()
        .map(|name| {
            let known = VARIABLES[..18].join(", ");
            problem(field, format!("unknown variable `{name}`; a template knows {known}"))
        })
        .collect();
    let mut paths: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    paths.sort();
    for path in paths {
        let mut names = path.split('.');
        let (Some(object), Some(attribute)) = (names.next(), names.next()) else { continue };
        let Some((_, known)) = ATTRIBUTES.iter().find(|(name, _)| *name == object) else { continue };
        if !known.contains(&attribute) {
            problems.push(problem(
                field,
                format!("unknown variable `{object}.{attribute}`; {object} has {}", known.join(", ")),
            ));
        }
    }
    problems
}

/// Whether `line` is a subject line a campaign step (an experiment's
/// variant) may carry instead of its set's: checked as a set's subject is
/// (syntax, known variables and attributes, no placeholder link) and
/// rendered for every sample cart, undefined strict, so a misspelt name
/// is refused when the campaign is written, not found at send time.
pub fn check_subject_line(line: &str) -> Result<(), String> {
    let problems = check_source("subject", Part::EmailSubject.file(), line);
    if let Some(first) = problems.first() {
        return Err(first.message.clone());
    }
    let set = shipped_set("reminder").ok_or("the shipped reminder set is missing")?;
    let brand = Brand::sample();
    let composer = crate::render::Composer::new(&set, &brand, None).map_err(|e| e.to_string())?;
    for input in PreviewInput::samples(None).iter().filter(|i| i.cart.items.len() == 1) {
        composer.subject_line(line, input).map_err(|e| format!("fails to render {}: {}", input.describe(), e))?;
    }
    Ok(())
}

impl Brand {
    /// Problems with the brand settings (a colour that is not `#rrggbb`, a
    /// URL that is not https).
    pub fn validate(&self) -> Result<(), Vec<TemplateProblem>> {
        let mut problems = Vec::new();
        let name_chars = self.name.chars().count();
        if self.name.trim().is_empty() || name_chars > 100 {
            problems.push(problem("brand.name", "must be 1 to 100 characters: the shop's name as customers know it"));
        }
        for (field, colour) in
            [("brand.primary_colour", &self.primary_colour), ("brand.text_colour", &self.text_colour)]
        {
            let Some(colour) = colour else { continue };
            let ok = colour.len() == 7 && colour.starts_with('#') && colour[1..].chars().all(|c| c.is_ascii_hexdigit());
            if !ok {
                problems.push(problem(field, format!("{colour:?} is not a colour written #rrggbb (e.g. #0a7a55)")));
            }
        }
        for (field, url) in [("brand.logo_url", &self.logo_url), ("brand.support_url", &self.support_url)] {
            let Some(url) = url else { continue };
            let host = url.strip_prefix("https://").and_then(|rest| rest.split('/').next()).unwrap_or_default();
            if host.is_empty() || url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
                problems.push(problem(field, format!("{url:?} is not an https:// URL (at most 2048 characters)")));
            }
        }
        if let Some(address) = &self.postal_address {
            if address.trim().is_empty() || address.chars().count() > 300 {
                problems.push(problem("brand.postal_address", "must be 1 to 300 characters when set"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The brand a shop without `[brand]` settings sends with: no name or
    /// logo, the default colours, and the postal address from the settings.
    pub fn fallback(postal_address: &str) -> Brand {
        Brand { postal_address: Some(postal_address.to_owned()), ..Brand::default() }
    }

    /// A made-up shop, for previews and for checking sets.
    pub fn sample() -> Brand {
        Brand {
            name: "Sample Shop".into(),
            logo_url: Some("https://cdn.example.com/logo.png".into()),
            primary_colour: Some("#0a7a55".into()),
            text_colour: Some("#222222".into()),
            postal_address: Some("Sample Shop Ltd, 1 Market Street, 75002 Paris, France".into()),
            support_url: Some("https://shop.example.com/help".into()),
        }
    }
}

macro_rules! shipped_set {
    ($name:literal, [$($tag:literal),*]) => {{
        let mut files = BTreeMap::new();
        files.insert(
            "set.toml".to_owned(),
            include_str!(concat!("../../../infra/templates/", $name, "/set.toml")).to_owned(),
        );
        $(
            shipped_locale!(files, $name, $tag, [
                "subject.txt", "preheader.txt", "email.html", "email.txt", "sms.txt", "push_title.txt",
                "push_body.txt", "web_push_title.txt", "web_push_body.txt", "in_app_title.txt", "in_app_body.txt"
            ]);
        )*
        (TemplateName(String::from($name)), files)
    }};
}

macro_rules! shipped_locale {
    ($files:ident, $name:literal, $tag:literal, [$($file:literal),*]) => {
        $(
            $files.insert(
                format!("{}/{}", $tag, $file),
                include_str!(concat!("../../../infra/templates/", $name, "/", $tag, "/", $file)).to_owned(),
            );
        )*
    };
}

/// The shipped layout every set's `email.html` may extend (`layout.html`).
pub const SHIPPED_LAYOUT: &str = include_str!("../../../infra/templates/layout.html");

/// The shipped sets' files, as `infra/templates/<name>/` holds them.
pub fn shipped_files() -> Vec<(TemplateName, BTreeMap<String, String>)> {
    vec![shipped_set!("reminder", ["en", "de", "fr", "es"]), shipped_set!("last_call", ["en", "de", "fr", "es"])]
}

/// The names of the shipped sets: what a campaign may name without a
/// stored set.
pub const SHIPPED_NAMES: [&str; 2] = ["reminder", "last_call"];

/// The shipped default sets (`infra/templates/`), compiled in (read from
/// their files once per process).
pub fn shipped() -> Vec<TemplateSet> {
    static SHIPPED: std::sync::OnceLock<Vec<TemplateSet>> = std::sync::OnceLock::new();
    SHIPPED
        .get_or_init(|| {
            shipped_files()
                .into_iter()
                .map(|(name, files)| {
                    TemplateSet::from_files(name, &files).expect("the shipped sets are well formed (tested)")
                })
                .collect()
        })
        .clone()
}

/// The shipped set called `name`, if any.
pub fn shipped_set(name: &str) -> Option<TemplateSet> {
    shipped().into_iter().find(|s| s.name.as_str() == name)
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
    /// A made-up cart of three items with images and prices (EUR), and on
    /// step 2 a 10% voucher on orders of 30 or more, for `--sample`.
    pub fn sample(step: u32, locale: Option<&str>) -> PreviewInput {
        use crate::event::{Event, EventType, Item};
        use rust_decimal::Decimal;
        let at: chrono::DateTime<chrono::Utc> = "2026-11-23T10:00:00Z".parse().unwrap_or_default();
        let item = |id: &str, name: &str, cents: i64, quantity: u32| Item {
            item_id: id.into(),
            item_name: Some(name.into()),
            price: Some(Decimal::new(cents, 2)),
            quantity,
            variant: (id == "mug-blue").then(|| "350 ml".to_owned()),
            image_url: Some(sample_image(id)),
            url: Some(format!("https://shop.example.com/products/{id}")),
        };
        let event = Event {
            event_id: "sample-add".into(),
            kind: EventType::AddToCart,
            occurred_at: at,
            cart_id: Some("sample-cart".into()),
            customer_id: None,
            device: None,
            currency: Some("EUR".into()),
            items: vec![
                item("mug-blue", "Stoneware mug, ocean blue", 1490, 2),
                item("tea-sencha", "Organic sencha tea, 100 g", 890, 1),
                item("pot-cast-iron", "Cast-iron teapot, 0.8 l", 4900, 1),
            ],
            order_id: None,
            value: None,
            coupon: None,
            customer: None,
            answer: None,
        };
        let voucher = (step >= 2).then(|| crate::voucher::ShownVoucher {
            code: crate::voucher::VoucherCode::parse("CB-7KQ4-M9XD-2PWE").expect("a well-formed sample code"),
            terms: crate::voucher::VoucherTerms {
                tier: crate::voucher::TierName::Standard,
                discount: crate::voucher::Discount::PercentOff { percent: Decimal::from(10), max_amount: None },
                currency: "EUR".into(),
                min_cart_value: Some(Decimal::from(30)),
            },
            expires_at: at + chrono::Duration::days(3),
            time_zone: chrono_tz::UTC,
            locale: locale.map(str::to_owned),
        });
        PreviewInput {
            cart: crate::cart::Cart::from_events("sample-cart", &[event]),
            first_name: Some("Alex".into()),
            locale: locale.map(str::to_owned),
            time_zone: chrono_tz::UTC,
            step,
            voucher,
            returner: false,
        }
    }
}

/// The sample items' pictures (`shared/core/src/sample/`, drawn for it), as
/// `data:` URLs: a preview shows them offline and from any origin (the
/// dashboard's email page allows `data:` images), with nothing to host.
fn sample_image(id: &str) -> String {
    use base64::Engine as _;
    let svg = match id {
        "mug-blue" => include_str!("sample/mug-blue.svg"),
        "tea-sencha" => include_str!("sample/tea-sencha.svg"),
        _ => include_str!("sample/pot-cast-iron.svg"),
    };
    format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg))
}

impl PreviewInput {
    /// The reader's locale and time zone, the voucher's expiry written in
    /// them as a send writes it (not in English and UTC).
    pub fn read_by(&mut self, locale: Option<String>, time_zone: chrono_tz::Tz) {
        if let Some(voucher) = &mut self.voucher {
            voucher.locale = locale.clone();
            voucher.time_zone = time_zone;
        }
        self.locale = locale;
        self.time_zone = time_zone;
    }

    /// The carts a set is checked against before it is stored: every mix
    /// of a first name or none, a voucher or none, a returning customer or
    /// not, and a cart of 1 or 20 items (long names, images, variants), so
    /// a link or a name behind an `{% if %}` is seen both ways.
    pub fn samples(locale: Option<&str>) -> Vec<PreviewInput> {
        let mut samples = Vec::new();
        for count in [1, 20] {
            for with_voucher in [false, true] {
                for first_name in [Some("Alexandra"), None] {
                    for returner in [false, true] {
                        let mut input = PreviewInput::sample(if with_voucher { 2 } else { 1 }, locale);
                        input.first_name = first_name.map(str::to_owned);
                        input.returner = returner;
                        input.cart = sample_cart(count);
                        samples.push(input);
                    }
                }
            }
        }
        samples
    }

    /// Which sample this is, as a problem names it: `for a cart of 20
    /// items, a first name, a voucher, a returning customer`.
    pub fn describe(&self) -> String {
        let count = self.cart.items.len();
        format!(
            "for a cart of {count} item{}, {} first name, {} voucher, {} customer",
            if count == 1 { "" } else { "s" },
            if self.first_name.is_some() { "a" } else { "no" },
            if self.voucher.is_some() { "a" } else { "no" },
            if self.returner { "a returning" } else { "a new" },
        )
    }
}

/// A made-up cart of `count` lines (the first the sample's mug), each with
/// a long name, a variant, an image and a product page, in EUR.
fn sample_cart(count: usize) -> crate::cart::Cart {
    let sample = PreviewInput::sample(1, None).cart;
    let first = sample.items[0].clone();
    let items = (0..count)
        .map(|i| match i {
            0 => first.clone(),
            i => crate::event::Item {
                item_id: format!("mug-{i}"),
                item_name: Some(format!("Handmade stoneware mug, glaze no. {i}")),
                variant: Some(format!("Glaze {i} / 350 ml")),
                image_url: Some(format!("https://cdn.shop.example.com/products/images/mug-{i}-600x600.jpg")),
                url: Some(format!("https://shop.example.com/products/handmade-stoneware-mug-{i}")),
                ..first.clone()
            },
        })
        .collect();
    let event = crate::event::Event {
        event_id: "sample-add".into(),
        kind: crate::event::EventType::AddToCart,
        occurred_at: sample.last_activity_at.unwrap_or_default(),
        cart_id: Some("sample-cart".into()),
        customer_id: None,
        device: None,
        currency: Some("EUR".into()),
        items,
        order_id: None,
        value: None,
        coupon: None,
        customer: None,
        answer: None,
    };
    crate::cart::Cart::from_events("sample-cart", &[event])
}

/// The host of every placeholder link (previews, checks): never a real
/// one, and refused in a template's source, so a template cannot pass
/// the link checks by typing a link instead of using the variable.
pub const PREVIEW_HOST: &str = "preview.cartback.invalid";

/// Gmail shows "[Message clipped]" and hides the rest of an HTML body over
/// 102 KB (the footer with the unsubscribe link among it).
pub const GMAIL_CLIP_BYTES: usize = 102 * 1024;

/// Links as long as signed ones (a token of a few hundred characters), for
/// checking sets: the restore link, an item's and the unsubscribe link.
fn check_restore_link() -> String {
    format!("https://{PREVIEW_HOST}/r/{}", "r".repeat(300))
}

const CHECK_ITEM_LINK: &str = concat!(
    "https://preview.cartback.invalid/r/",
    "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii",
    "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii",
    "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii",
);

fn check_unsubscribe_link() -> String {
    format!("https://{PREVIEW_HOST}/u/{}", "u".repeat(200))
}

/// Where a preview's restore link points (a send signs a real one).
pub const PREVIEW_RESTORE_LINK: &str = "https://preview.cartback.invalid/restore";
/// Where a preview's unsubscribe link points.
pub const PREVIEW_UNSUBSCRIBE_LINK: &str = "https://preview.cartback.invalid/unsubscribe";

/// Every channel's rendered text for one cart (links point at the preview's
/// placeholders, not signed tokens).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Preview {
    /// The locale the set rendered in (the customer's closest).
    pub locale: String,
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
    let composer = crate::render::Composer::new(set, brand, input.locale.as_deref())?;
    let mut rendered = composer.render_preview(input);
    let mut take = |part: Part| rendered.remove(&part).unwrap_or_else(|| Ok(String::new()));
    let mut preview = Preview {
        locale: composer.locale().to_owned(),
        email_subject: take(Part::EmailSubject)?,
        email_preheader: take(Part::EmailPreheader)?,
        email_html: take(Part::EmailHtml)?,
        email_text: take(Part::EmailText)?,
        eml: Vec::new(),
        sms: take(Part::Sms)?,
        push_title: take(Part::PushTitle)?,
        push_body: take(Part::PushBody)?,
        web_push_title: take(Part::WebPushTitle)?,
        web_push_body: take(Part::WebPushBody)?,
        in_app_title: take(Part::InAppTitle)?,
        in_app_body: take(Part::InAppBody)?,
    };
    let email = crate::message::Outgoing::Email {
        to: "customer@example.com".into(),
        subject: preview.email_subject.clone(),
        text: preview.email_text.clone(),
        html: preview.email_html.clone(),
        unsubscribe: Some(Box::new(crate::message::ListUnsubscribe {
            url: PREVIEW_UNSUBSCRIBE_LINK.into(),
            mailto: None,
        })),
    };
    // Dated at the cart's last activity: a preview has no clock.
    preview.eml =
        crate::render::mime(&email, "shop@example.com", "preview", input.cart.last_activity_at.unwrap_or_default())?;
    Ok(preview)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{Composer, Links, Reader, Unsubscribe};

    /// The files of `infra/templates/<name>/` as they are on disk.
    fn files_on_disk(name: &str) -> BTreeMap<String, String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/templates").join(name);
        let mut files = BTreeMap::new();
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else {
                    let relative = path.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
                    files.insert(relative, std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        files
    }

    fn set(name: &str) -> TemplateSet {
        shipped_set(name).unwrap()
    }

    /// GIVEN the folders in infra/templates
    /// WHEN read with from_files, and compared with what the binary compiled in
    /// THEN they are the same sets, every one validates, and no file on disk is left out of the binary.
    #[test]
    fn given_infra_templates_when_read_then_they_equal_the_shipped_sets_and_validate() {
        let shipped = shipped();
        let names: Vec<&str> = shipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, SHIPPED_NAMES);
        let mut on_disk: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/templates"))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut expected: Vec<String> = SHIPPED_NAMES.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(on_disk, expected, "every set folder is shipped");
        for set in &shipped {
            let read = TemplateSet::from_files(set.name.clone(), &files_on_disk(set.name.as_str())).unwrap();
            assert_eq!(&read, set, "{}: the binary holds what the folder holds", set.name);
            assert_eq!(set.validate(), Ok(()), "{}", set.name);
            let locales: Vec<&str> = set.locales.keys().map(String::as_str).collect();
            assert_eq!(locales, ["de", "en", "es", "fr"], "{}", set.name);
        }
    }

    /// GIVEN a shipped set WHEN written to files and read back THEN it is the same set, shared files included.
    #[test]
    fn given_a_set_when_written_to_files_and_read_back_then_it_round_trips() {
        let mut original = set("reminder");
        original.shared.insert("footer.html".into(), "<p>{{ brand.name }}</p>".into());
        original.locales.get_mut("fr").unwrap().sms = Some("ends with a newline\n".into());
        let files = original.to_files();
        assert_eq!(files["set.toml"], "default_locale = \"en\"\n");
        assert!(files.contains_key("de/email.html") && files.contains_key("footer.html"), "{:?}", files.keys());
        let read = TemplateSet::from_files(original.name.clone(), &files).unwrap();
        assert_eq!(read, original);
    }

    /// GIVEN folders with a file out of place, a bad set.toml or none
    /// WHEN read THEN each problem names the file.
    #[test]
    fn given_a_malformed_folder_when_read_then_each_problem_names_the_file() {
        let name = TemplateName::parse("promo").unwrap();
        let mut files = set("reminder").to_files();
        files.insert("de/subjet.txt".into(), "typo".into());
        files.insert("de/extra/sms.txt".into(), "deep".into());
        let problems = TemplateSet::from_files(name.clone(), &files).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["files.de/extra/sms.txt", "files.de/subjet.txt"], "{problems:?}");
        assert!(problems[1].message.contains("subject.txt"), "it lists the part files: {problems:?}");
        files.insert("set.toml".into(), "default_locale = 3".into());
        let problems = TemplateSet::from_files(name.clone(), &files).unwrap_err();
        assert_eq!(problems[0].field, "files.set.toml", "{problems:?}");
        files.remove("set.toml");
        let problems = TemplateSet::from_files(name, &files).unwrap_err();
        assert!(problems[0].message.contains("missing"), "{problems:?}");
    }

    fn problems_of(set: &TemplateSet) -> Vec<(String, String)> {
        set.validate().unwrap_err().into_iter().map(|p| (p.field, p.message)).collect()
    }

    /// GIVEN sets with a syntax error, an unknown variable, a body without the restore link, an email without
    /// the unsubscribe link, a default locale missing a part and a malformed locale tag
    /// WHEN validated
    /// THEN each is refused with its field (`locales.<tag>.<part>`) and the reason.
    #[test]
    fn given_broken_sets_when_validated_then_every_problem_names_its_field_and_why() {
        let mut broken = set("reminder");
        broken.locales.get_mut("de").unwrap().email_subject = Some("{% if first_name %}Hallo".into());
        let problems = problems_of(&broken);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "locales.de.email_subject");
        assert!(problems[0].1.starts_with("syntax error"), "{problems:?}");

        let mut broken = set("reminder");
        broken.locales.get_mut("fr").unwrap().push_title = Some("{{ frist_name }}, votre panier".into());
        let problems = problems_of(&broken);
        assert_eq!(problems[0].0, "locales.fr.push_title");
        assert!(problems[0].1.contains("unknown variable `frist_name`"), "{problems:?}");

        let mut broken = set("reminder");
        broken.locales.get_mut("es").unwrap().sms = Some("Tu carrito te espera.".into());
        broken.locales.get_mut("es").unwrap().in_app_body =
            Some("{% if voucher %}{{ restore_link }}{% endif %}".into());
        let problems = problems_of(&broken);
        let fields: Vec<&str> = problems.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(
            fields,
            ["locales.es.in_app_body", "locales.es.sms"],
            "one problem per field and link: {problems:?}"
        );
        assert!(problems[0].1.contains("restore link") && problems[0].1.contains("no voucher"), "{problems:?}");

        let mut broken = set("last_call");
        let en = broken.locales.get_mut("en").unwrap();
        en.email_text = Some("Come back: {{ restore_link }}".into());
        let problems = problems_of(&broken);
        assert!(problems.iter().all(|p| p.0 == "locales.en.email_text"), "{problems:?}");
        assert!(problems[0].1.contains("unsubscribe link"), "{problems:?}");

        let mut broken = set("last_call");
        broken.locales.get_mut("en").unwrap().web_push_body = None;
        broken.locales.insert("pt_BR".into(), TemplateParts::default());
        let problems = problems_of(&broken);
        assert_eq!(problems[0].0, "locales.en.web_push_body", "{problems:?}");
        assert!(problems[0].1.contains("default locale must have every part"), "{problems:?}");
        assert_eq!(problems[1].0, "locales.pt_BR", "{problems:?}");

        let mut broken = set("last_call");
        broken.default_locale = "it".into();
        assert_eq!(problems_of(&broken)[0].0, "default_locale");
    }

    /// GIVEN a set whose German email carries its own layout without an unsubscribe link
    /// WHEN validated THEN the rendered email (layout followed) is refused.
    #[test]
    fn given_a_layout_without_the_unsubscribe_link_when_validated_then_the_email_is_refused() {
        let mut custom = set("reminder");
        custom.shared.insert(
            "layout.html".into(),
            "<html><body>{% block intro %}{% endblock %} <a href=\"{{ restore_link }}\">go</a></body></html>".into(),
        );
        let problems = problems_of(&custom);
        assert!(problems.iter().any(|p| p.0 == "locales.de.email_html" && p.1.contains("unsubscribe")), "{problems:?}");
    }

    /// GIVEN a text part that takes the length of the brand's logo URL, which a shop without a logo has not
    /// WHEN validated
    /// THEN it is refused: sets are rendered with a sparse brand too, not only the full sample.
    #[test]
    fn given_a_part_that_needs_a_logo_when_validated_then_the_sparse_brand_refuses_it() {
        let mut custom = set("reminder");
        custom.locales.get_mut("fr").unwrap().email_text =
            Some("{{ restore_link }} {{ brand.logo_url | length }} {{ unsubscribe_link }}".into());
        let problems = problems_of(&custom);
        assert!(
            problems.iter().any(|p| p.0 == "locales.fr.email_text" && p.1.contains("fails to render")),
            "{problems:?}"
        );
    }

    #[test]
    fn given_brand_settings_when_validated_then_colours_urls_and_name_are_checked() {
        assert_eq!(Brand::sample().validate(), Ok(()));
        let bad = Brand {
            name: " ".into(),
            logo_url: Some("http://cdn.example.com/logo.png".into()),
            primary_colour: Some("green".into()),
            text_colour: Some("#12345g".into()),
            postal_address: None,
            support_url: Some("https://".into()),
        };
        let fields: Vec<String> = bad.validate().unwrap_err().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            ["brand.name", "brand.primary_colour", "brand.text_colour", "brand.logo_url", "brand.support_url"]
        );
    }

    fn cart_of(count: usize) -> crate::cart::Cart {
        let mut input = PreviewInput::sample(1, None);
        let template = input.cart.items[0].clone();
        input.cart.items = (0..count)
            .map(|i| crate::event::Item {
                item_id: format!("sku-{i}"),
                item_name: Some(format!("Handmade stoneware mug, glaze no. {i}")),
                image_url: Some(format!("https://cdn.shop.example.com/products/images/mug-{i}-600x600.jpg")),
                url: Some(format!("https://shop.example.com/products/handmade-stoneware-mug-{i}")),
                ..template.clone()
            })
            .collect();
        input.cart
    }

    fn links() -> Links<'static> {
        Links {
            restore: format!("https://abc123.execute-api.eu-west-1.amazonaws.com/r/{}", "t".repeat(300)),
            item: &|url| format!("https://abc123.execute-api.eu-west-1.amazonaws.com/r/{}{url}", "t".repeat(300)),
            unsubscribe: Some(Unsubscribe {
                url: format!("https://abc123.execute-api.eu-west-1.amazonaws.com/u/{}", "u".repeat(200)),
                mailbox: None,
                postal_address: "Shop Ltd, 1 Market Street, 75002 Paris, France",
            }),
            voucher: None,
        }
    }

    /// GIVEN a cart of 20 items with long names, images and signed links, and a voucher
    /// WHEN the shipped reminder's email is rendered in each shipped language
    /// THEN the HTML stays under Gmail's 102 KB clipping limit, and the text part says the same things.
    #[test]
    fn given_a_20_item_cart_when_the_email_is_rendered_then_the_html_is_under_gmails_clipping_limit() {
        let voucher = PreviewInput::sample(2, Some("de")).voucher;
        let links = Links { voucher: voucher.as_ref(), ..links() };
        let (set, brand) = (set("reminder"), Brand::sample());
        for locale in ["en", "de", "fr", "es"] {
            let composer = Composer::new(&set, &brand, Some(locale)).unwrap();
            let reader = Reader { first_name: Some("Alexandra"), locale: Some(locale), step: 2, returner: true };
            let out = composer.email(None, &"a@example.com".into(), &cart_of(20), &reader, &links).unwrap();
            let crate::message::Outgoing::Email { html, text, .. } = out else { panic!() };
            assert!(html.len() < 102 * 1024, "{locale}: {} bytes", html.len());
            for said in ["CB-7KQ4-M9XD-2PWE", "glaze no. 9", "https://abc123", "Shop Ltd, 1 Market Street"] {
                assert!(html.contains(said) && text.contains(said), "{locale}: {said}");
            }
            assert!(html.contains("glaze no. 19") && text.contains("glaze no. 19"), "{locale}: every line listed");
        }
    }

    /// GIVEN the shipped reminder and customers with de-AT, fr-CA, es, ja and no locale
    /// WHEN their emails are rendered
    /// THEN each reads its language (Japanese and none fall back to English) with money in their own locale.
    #[test]
    fn given_customers_locales_when_rendered_then_the_closest_translation_and_their_money_are_used() {
        let (set, brand) = (set("reminder"), Brand::sample());
        let input = PreviewInput::sample(1, None);
        for (locale, chosen, words, money) in [
            (Some("de-AT"), "de", "Warenkorb wiederherstellen", "€\u{a0}29,80"),
            (Some("fr-CA"), "fr", "Retrouver mon panier", "29,80\u{a0}€"),
            (Some("es"), "es", "Recuperar mi carrito", "29,80\u{a0}€"),
            (Some("ja-JP"), "en", "Restore my cart", "€29.80"),
            (None, "en", "Restore my cart", "€29.80"),
        ] {
            let composer = Composer::new(&set, &brand, locale).unwrap();
            assert_eq!(composer.locale(), chosen);
            let reader = Reader { first_name: Some("Alex"), locale, step: 1, returner: false };
            let out = composer.email(None, &"a@example.com".into(), &input.cart, &reader, &links()).unwrap();
            let crate::message::Outgoing::Email { html, text, .. } = out else { panic!() };
            assert!(html.contains(words), "{locale:?}: {html}");
            assert!(html.contains(&format!("lang=\"{chosen}\" dir=\"ltr\"")), "{locale:?}");
            assert!(text.contains(money) && html.contains(money), "{locale:?} line total {money}: {text}");
        }
    }

    /// GIVEN a set with an Arabic translation WHEN an Arabic customer's email is rendered THEN it is right-to-left.
    #[test]
    fn given_a_right_to_left_locale_when_rendered_then_the_email_says_so() {
        let mut set = set("reminder");
        let arabic =
            TemplateParts { email_subject: Some("سلتك بانتظارك".into()), ..TemplateParts::default() };
        set.locales.insert("ar".into(), arabic);
        assert_eq!(set.validate(), Ok(()));
        let input = PreviewInput::sample(1, Some("ar-EG"));
        let preview = preview(&set, &Brand::sample(), &input).unwrap();
        assert_eq!(preview.locale, "ar");
        assert_eq!(preview.email_subject, "سلتك بانتظارك");
        assert!(preview.email_html.contains("<html lang=\"ar\" dir=\"rtl\">"), "{}", preview.email_html);
        assert!(preview.email_html.contains("text-align:right"), "the start side is the right");
    }

    /// GIVEN the sample cart on step 2 in German
    /// WHEN previewed
    /// THEN every part is rendered with the brand, the voucher and German money, and the .eml is a whole email.
    #[test]
    fn given_the_sample_when_previewed_then_every_part_is_rendered() {
        let input = PreviewInput::sample(2, Some("de"));
        assert_eq!(input.cart.items.len(), 3);
        assert!(input.cart.items.iter().all(|i| i.image_url.is_some() && i.price.is_some()));
        let preview = preview(&set("reminder"), &Brand::sample(), &input).unwrap();
        assert_eq!(preview.email_subject, "Alex, dein Warenkorb wartet: 4 Artikel für dich gespeichert");
        assert!(preview.email_preheader.contains("87,70\u{a0}€"), "{}", preview.email_preheader);
        let html = &preview.email_html;
        assert!(html.contains(&preview.email_preheader), "the hidden preheader");
        assert!(html.contains("alt=\"Sample Shop\"") && html.contains("alt=\"Cast-iron teapot, 0.8 l\""));
        assert!(html.contains("10\u{a0}% Rabatt, ab einem Bestellwert von 30,00\u{a0}€"), "{html}");
        assert!(html.contains("Gültig bis 26. November 2026 um 10:00 (UTC)"), "{html}");
        assert!(html.contains("background:#0a7a55"), "the brand colour");
        assert!(html.contains("https://shop.example.com/help"), "the support link");
        assert!(preview.email_text.contains("- Stoneware mug, ocean blue (350 ml) x2  14,90\u{a0}€  (29,80\u{a0}€)"));
        assert!(html.contains("<span style=\"color:#555555;font-size:13px\">350 ml</span>"), "the variant: {html}");
        assert!(preview.sms.contains(PREVIEW_RESTORE_LINK) && preview.sms.contains("CB-7KQ4-M9XD-2PWE"));
        assert_eq!(preview.push_title, "Alex, dein Warenkorb wartet");
        assert!(preview.push_body.starts_with("Stoneware mug, ocean blue und 3 weitere(r) Artikel sind"));
        assert_eq!(preview.web_push_title, preview.push_title);
        assert_eq!(preview.in_app_title, "Dein Warenkorb wartet");
        assert!(preview.in_app_body.contains(PREVIEW_RESTORE_LINK));
        let eml = String::from_utf8(preview.eml).unwrap();
        assert!(eml.contains("multipart/alternative") && eml.contains("List-Unsubscribe"), "{eml}");
    }

    #[test]
    fn given_template_names_when_parsed_then_only_slugs_are_names() {
        assert!(TemplateName::parse("summer-sale_2").is_ok());
        for bad in ["", "Summer", "2nd", "a b", &"a".repeat(65)] {
            assert!(TemplateName::parse(bad).is_err(), "{bad}");
        }
    }

    /// GIVEN sets whose restore link is there only for customers with a first name, only inside an HTML
    /// comment, or typed as the preview's placeholder link
    /// WHEN validated
    /// THEN each is refused: the first naming the sample it is missing for, the second as missing outside
    /// comments, the third naming the placeholder host.
    #[test]
    fn given_restore_links_that_a_customer_would_not_get_when_validated_then_the_set_is_refused() {
        let mut hidden = set("reminder");
        hidden.locales.get_mut("de").unwrap().sms = Some("{% if first_name %}{{ restore_link }}{% endif %}".into());
        let problems = problems_of(&hidden);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "locales.de.sms");
        assert!(problems[0].1.contains("restore link") && problems[0].1.contains("no first name"), "{problems:?}");

        let mut commented = set("reminder");
        commented.shared.insert(
            "layout.html".into(),
            "<p>{% block intro %}{% endblock %}</p><!-- <a href=\"{{ restore_link }}\">go</a> -->\n\
             <a href=\"{{ unsubscribe_link }}\">stop</a>"
                .into(),
        );
        let problems = problems_of(&commented);
        assert!(
            problems.iter().any(|p| p.0 == "locales.en.email_html"
                && p.1.contains("restore link")
                && p.1.contains("outside HTML comments")),
            "{problems:?}"
        );

        let mut typed = set("reminder");
        typed.locales.get_mut("fr").unwrap().sms = Some(format!("Votre panier : {PREVIEW_RESTORE_LINK}"));
        let problems = problems_of(&typed);
        assert_eq!(problems[0].0, "locales.fr.sms", "{problems:?}");
        assert!(problems[0].1.contains(PREVIEW_HOST), "{problems:?}");
    }

    /// GIVEN sets with a misspelt voucher attribute, a misspelt item attribute (a loop variable, seen only
    /// when rendered) and a subject that loops without end
    /// WHEN validated
    /// THEN each is refused naming the variable (and for the item, the file and line), the loop as out of fuel.
    #[test]
    fn given_misspelt_attributes_and_a_loop_without_end_when_validated_then_each_is_refused() {
        let mut typo = set("reminder");
        typo.locales.get_mut("de").unwrap().email_text =
            Some("{{ restore_link }} {{ unsubscribe_link }}{% if voucher %}{{ voucher.cdoe }}{% endif %}".into());
        let problems = problems_of(&typo);
        assert_eq!(problems[0].0, "locales.de.email_text", "{problems:?}");
        assert!(problems[0].1.contains("unknown variable `voucher.cdoe`"), "{problems:?}");

        let mut item_typo = set("reminder");
        item_typo.locales.get_mut("es").unwrap().email_text = Some(
            "{{ restore_link }}\n{% for item in items %}\n{{ item.colour }}\n{% endfor %}\n{{ unsubscribe_link }}"
                .into(),
        );
        let problems = problems_of(&item_typo);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "locales.es.email_text");
        assert!(problems[0].1.contains("`item.colour` is not defined (email.txt, line 3)"), "{problems:?}");

        let mut looping = set("reminder");
        looping.locales.get_mut("en").unwrap().push_title =
            Some("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}Hi".into());
        let problems = problems_of(&looping);
        assert_eq!(problems[0].0, "locales.en.push_title", "{problems:?}");
        assert!(problems[0].1.contains("fuel"), "{problems:?}");
    }

    /// GIVEN the shipped sets, whose layout asks `{% if voucher %}` and `{% if item.variant %}` of values that
    /// may be absent
    /// WHEN rendered for every sample (strict undefined)
    /// THEN they validate: absent values are none, not undefined, and the heaviest renders on a tenth of the fuel.
    #[test]
    fn given_the_shipped_sets_when_rendered_strictly_for_every_sample_then_they_pass_within_the_fuel_bound() {
        for name in SHIPPED_NAMES {
            assert_eq!(set(name).validate(), Ok(()), "{name}");
        }
        let brand = Brand::sample();
        let reminder = set("reminder");
        let composer =
            crate::render::Composer::new(&reminder, &brand, Some("de")).unwrap().with_fuel(crate::render::FUEL / 10);
        let input = PreviewInput::samples(Some("de")).pop().unwrap();
        assert_eq!((input.cart.items.len(), input.voucher.is_some()), (20, true), "the heaviest sample");
        let rendered = composer.render_preview(&input);
        assert!(rendered.values().all(Result::is_ok), "{rendered:?}");
    }

    /// GIVEN a brand whose support URL has a query (`?a=1&b=2`) and an item named `Tea & cups`
    /// WHEN previewed
    /// THEN the text part shows `&` as it is and the HTML part escapes it once.
    #[test]
    fn given_ampersands_when_rendered_then_text_parts_keep_them_and_html_escapes_them_once() {
        let brand = Brand { support_url: Some("https://shop.example.com/help?a=1&b=2".into()), ..Brand::sample() };
        let mut input = PreviewInput::sample(1, Some("en"));
        input.cart.items[0].item_name = Some("Tea & cups".into());
        let preview = preview(&set("reminder"), &brand, &input).unwrap();
        assert!(preview.email_text.contains("https://shop.example.com/help?a=1&b=2\n"), "{}", preview.email_text);
        assert!(preview.email_text.contains("- Tea & cups"), "{}", preview.email_text);
        assert!(!preview.email_text.contains("&amp;") && !preview.email_text.contains("&#"), "{}", preview.email_text);
        assert!(preview.email_html.contains("href=\"https://shop.example.com/help?a=1&amp;b=2\""));
        assert!(preview.email_html.contains("Tea &amp; cups") && !preview.email_html.contains("&amp;amp;"));
        assert!(preview.push_body.starts_with("Tea & cups"), "{}", preview.push_body);
    }

    /// GIVEN a set whose layout writes 6 KB of words for every listed item
    /// WHEN validated
    /// THEN the 20-item email is refused as over Gmail's 102 KB clipping limit, naming the locale and its size.
    #[test]
    fn given_an_email_over_gmails_clipping_limit_for_20_items_when_validated_then_it_is_refused() {
        let mut heavy = set("reminder");
        let words = "Handmade in our workshop from local clay. ".repeat(150);
        heavy.shared.insert(
            "layout.html".into(),
            format!(
                "{{{{ restore_link }}}} {{{{ unsubscribe_link }}}}{{% block intro %}}{{% endblock %}}\n\
                 {{% for item in items %}}<p>{{{{ item.name }}}}: {words}</p>{{% endfor %}}"
            ),
        );
        let problems = problems_of(&heavy);
        let found: Vec<&(String, String)> = problems.iter().filter(|p| p.1.contains("Gmail clips")).collect();
        assert_eq!(found.len(), 4, "every locale: {problems:?}");
        assert_eq!(found[0].0, "locales.de.email_html");
        assert!(found[0].1.starts_with("the de email for a cart of 20 items weighs 12"), "{found:?}");
    }

    /// GIVEN the shipped reminder WHEN its email is rendered THEN the footer reads "...in your cart. Unsubscribe".
    #[test]
    fn given_the_shipped_footer_when_rendered_then_a_space_separates_the_reason_and_the_unsubscribe_link() {
        let preview = preview(&set("reminder"), &Brand::sample(), &PreviewInput::sample(1, Some("en"))).unwrap();
        let footer =
            format!("You get this email because you left items in your cart. <a href=\"{PREVIEW_UNSUBSCRIBE_LINK}\"");
        assert!(preview.email_html.contains(&footer), "{}", preview.email_html);
    }
}
