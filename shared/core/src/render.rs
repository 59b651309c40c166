//! Message content: a template set (see [`crate::template`]) rendered with
//! minijinja for one cart and one reader, tracked links, money and dates in
//! the reader's locale, and the RFC 5322 MIME message built from them
//! (lettre).

use std::collections::BTreeMap;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::message::{header, Mailbox, MultiPart};
use minijinja::{context, Environment};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::cart::Cart;
use crate::contact::{Email, Phone};
use crate::locale;
use crate::message::{ListUnsubscribe, Outgoing, MAX_JOB_BYTES};
use crate::template::{Brand, Part, PreviewInput, TemplateSet, PREVIEW_RESTORE_LINK, PREVIEW_UNSUBSCRIBE_LINK};
use crate::voucher::{Discount, ShownVoucher};

/// The shipped sets' names (see [`crate::template::SHIPPED_NAMES`]).
pub const TEMPLATES: [&str; 2] = crate::template::SHIPPED_NAMES;

/// At most this many cart lines are listed in a message (a cart of 20 items
/// is listed whole, within Gmail's 102 KB); the others are one line,
/// "...and 12 more items" (`more_items` in the templates). Fewer
/// are listed when the message would not fit a queue message
/// ([`MAX_JOB_BYTES`]): long names and URLs weigh several kilobytes a line.
pub const MAX_ITEMS_SHOWN: usize = 25;

/// What the rendered content may weigh: the job's bound less room for its
/// ids, channel and recipient (each a few hundred bytes at most).
const MAX_CONTENT_BYTES: usize = MAX_JOB_BYTES - 8 * 1024;

#[derive(Debug, Clone, Serialize)]
struct ItemView {
    name: String,
    /// The chosen option (`Blue / M`), or none.
    variant: Option<String>,
    quantity: u32,
    /// The unit price and the line's total, in the reader's locale.
    price: Option<String>,
    line_total: Option<String>,
    image_url: Option<String>,
    link: String,
}

/// What a message shows of its cart's voucher.
#[derive(Debug, Clone, Serialize)]
struct VoucherView {
    code: String,
    /// `recovery` or `standard`: subject lines (an experiment's variants)
    /// may word the message per audience.
    tier: &'static str,
    /// `percent_off`, `amount_off` or `free_shipping`: for templates that
    /// word the offer themselves from the parts below.
    kind: &'static str,
    /// `10%` (`10 %` in German): percentage vouchers.
    percent: Option<String>,
    /// `€5.00`: amount vouchers.
    amount: Option<String>,
    /// The most a percentage takes off, when capped.
    cap: Option<String>,
    /// The cart value the code needs, when it has a minimum.
    minimum: Option<String>,
    /// `10% off`, `€5.00 off`, `free shipping` (in the template's
    /// language: English, German, French or Spanish).
    discount: String,
    /// The discount with its minimum, as a line starts: `10% off, on orders
    /// of €30.00 or more`, `Free shipping`.
    offer: String,
    /// The same within a sentence: `free shipping, on orders of ...`.
    terms: String,
    /// The expiry in the customer's time zone and language.
    expires: String,
}

/// How a voucher's offer is worded per language; the money and
/// percentages inside follow the reader's locale.
struct OfferWords {
    percent_off: fn(&str) -> String,
    amount_off: fn(&str) -> String,
    free_shipping: &'static str,
    at_most: fn(&str) -> String,
    minimum: fn(&str) -> String,
}

fn offer_words(language: &str) -> OfferWords {
    match language {
        "de" => OfferWords {
            percent_off: |p| format!("{p} Rabatt"),
            amount_off: |a| format!("{a} Rabatt"),
            free_shipping: "kostenloser Versand",
            at_most: |a| format!(" (höchstens {a})"),
            minimum: |a| format!(", ab einem Bestellwert von {a}"),
        },
        "fr" => OfferWords {
            percent_off: |p| format!("{p} de réduction"),
            amount_off: |a| format!("{a} de réduction"),
            free_shipping: "livraison offerte",
            at_most: |a| format!(" ({a} maximum)"),
            minimum: |a| format!(", dès {a} d’achat"),
        },
        "es" => OfferWords {
            percent_off: |p| format!("{p} de descuento"),
            amount_off: |a| format!("{a} de descuento"),
            free_shipping: "envío gratis",
            at_most: |a| format!(" (máximo {a})"),
            minimum: |a| format!(", en pedidos desde {a}"),
        },
        _ => OfferWords {
            percent_off: |p| format!("{p} off"),
            amount_off: |a| format!("{a} off"),
            free_shipping: "free shipping",
            at_most: |a| format!(" (at most {a})"),
            minimum: |a| format!(", on orders of {a} or more"),
        },
    }
}

impl VoucherView {
    /// `language` words the offer (the template's); `locale` writes its
    /// money (the reader's).
    fn of(voucher: &ShownVoucher, language: &str, locale: Option<&str>) -> VoucherView {
        let currency = &voucher.terms.currency;
        let money = |amount: Decimal| locale::money(amount, currency, locale);
        let words = offer_words(language);
        let (kind, percent, amount, cap) = match &voucher.terms.discount {
            Discount::PercentOff { percent, max_amount } => {
                ("percent_off", Some(locale::percent(*percent, locale)), None, max_amount.map(money))
            }
            Discount::AmountOff { amount } => ("amount_off", None, Some(money(*amount)), None),
            Discount::FreeShipping => ("free_shipping", None, None, None),
        };
        let mut discount = match (&percent, &amount) {
            (Some(p), _) => (words.percent_off)(p),
            (None, Some(a)) => (words.amount_off)(a),
            (None, None) => words.free_shipping.to_owned(),
        };
        if let Some(cap) = &cap {
            discount.push_str(&(words.at_most)(cap));
        }
        let minimum = voucher.terms.min_cart_value.map(money);
        let terms = match &minimum {
            Some(min) => format!("{discount}{}", (words.minimum)(min)),
            None => discount.clone(),
        };
        VoucherView {
            code: voucher.code.to_string(),
            tier: voucher.terms.tier.as_str(),
            kind,
            percent,
            amount,
            cap,
            minimum,
            discount,
            offer: capitalised(&terms),
            terms,
            expires: expiry_text(voucher.expires_at, voucher.time_zone, voucher.locale.as_deref()),
        }
    }
}

/// `free shipping, ...` as a line starts: `Free shipping, ...`.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// When a voucher expires, as the customer reads it: the local date and
/// time in `zone`, written as CLDR writes a long date with hours and
/// minutes in `locale` (ICU4X, any locale; its calendar too), with the
/// zone's abbreviation (`2. Dezember 2026 um 14:30 (CET)`). No locale
/// reads as British English.
pub fn expiry_text(at: DateTime<Utc>, zone: chrono_tz::Tz, locale: Option<&str>) -> String {
    use chrono::{Datelike, Timelike};
    use icu_datetime::input::{Date, DateTime as IcuDateTime, Time};
    let local = at.with_timezone(&zone);
    let abbreviation = local.format("%Z");
    let tag = locale.map(crate::locale::canonical_tag).filter(|t| !t.is_empty()).unwrap_or_else(|| "en-GB".to_owned());
    let icu_locale = icu_locale_core::Locale::try_from_str(&tag).unwrap_or(icu_locale_core::Locale::UNKNOWN);
    let formatter = icu_datetime::DateTimeFormatter::try_new(
        (&icu_locale).into(),
        icu_datetime::fieldsets::YMD::long().with_time_hm(),
    );
    let date = Date::try_new_iso(local.year(), local.month() as u8, local.day() as u8);
    let time = Time::try_new(local.hour() as u8, local.minute() as u8, 0, 0);
    match (formatter, date, time) {
        (Ok(formatter), Ok(date), Ok(time)) => {
            format!("{} ({abbreviation})", formatter.format(&IcuDateTime { date, time }))
        }
        // Compiled data answers every locale (the root at worst).
        _ => format!("{} ({abbreviation})", local.format("%Y-%m-%d %H:%M")),
    }
}

/// A URL as templates print it: the characters that could end an HTML
/// attribute are percent-encoded and whitespace dropped, so it can neither
/// break out of `href="..."` nor needs entity escaping beyond `&` (which
/// the HTML parts escape, and the text parts keep as it is).
fn url_value(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '"' => out.push_str("%22"),
            '\'' => out.push_str("%27"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            c if c.is_whitespace() || c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// `text` escaped for HTML text and attribute values: `&`, `<`, `>`, `"`
/// and `'`; not `/` (minijinja's default writes `&#x2f;`, which makes
/// every link unreadable in the source and unsearchable).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a template needs besides the cart: links already signed.
pub struct Links<'a> {
    pub restore: String,
    /// Tracked link for an item's product page.
    pub item: &'a dyn Fn(&str) -> String,
    /// The unsubscribe link and the sender's address, for an email's footer
    /// and its `List-Unsubscribe` headers (an SMS has its STOP keyword).
    pub unsubscribe: Option<Unsubscribe<'a>>,
    /// The cart's voucher, when the step shows one.
    pub voucher: Option<&'a ShownVoucher>,
}

/// An email's way out: its signed `/u/{token}` link, the shop's unsubscribe
/// mailbox if any, and the sender's postal address.
pub struct Unsubscribe<'a> {
    pub url: String,
    /// A bare address (`unsubscribe@shop.example`) or a `mailto:` URL.
    pub mailbox: Option<&'a str>,
    pub postal_address: &'a str,
}

impl Unsubscribe<'_> {
    /// The `List-Unsubscribe` targets the MIME headers carry.
    fn list(&self) -> ListUnsubscribe {
        let mailto = self.mailbox.map(|mailbox| match mailbox.strip_prefix("mailto:") {
            Some(_) => mailbox.to_owned(),
            None => format!("mailto:{mailbox}?subject=unsubscribe"),
        });
        ListUnsubscribe { url: self.url.clone(), mailto }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {0:?} does not exist")]
    UnknownTemplate(String),
    #[error("template failed: {0}")]
    Template(#[from] minijinja::Error),
    #[error("cannot build the email: {0}")]
    Mime(String),
    #[error("the contact has no {} address any more", .0.as_str())]
    NoRecipient(crate::message::Channel),
    #[error("the template set has no {0} part in its default locale")]
    MissingPart(&'static str),
    #[error("the message weighs {0} bytes even without its item lines; a queue message holds {MAX_JOB_BYTES}")]
    TooLarge(usize),
    #[error("the rendered {part} does not show the {link} link")]
    MissingLink { part: &'static str, link: &'static str },
}

/// Whether a rendered body shows the links it must: the restore link in
/// every body that brings the customer back, and in an email's two parts
/// the unsubscribe link (when the email has one). HTML comments do not
/// count (a client shows nothing of them), and in HTML the link is looked
/// for as the template writes it there (`&` as `&amp;`). Checked on what
/// is sent, not on a template's source: a link behind an `{% if %}` is
/// there only when the condition holds.
pub fn check_links(part: Part, text: &str, restore: &str, unsubscribe: Option<&str>) -> Result<(), RenderError> {
    let html = part == Part::EmailHtml;
    let visible = if html { without_html_comments(text) } else { std::borrow::Cow::Borrowed(text) };
    let shows = |link: &str| {
        let link = url_value(link);
        if html {
            visible.contains(&escape_html(&link))
        } else {
            visible.contains(&link)
        }
    };
    if part.needs_restore_link() && !shows(restore) {
        return Err(RenderError::MissingLink { part: part.field(), link: "restore" });
    }
    if let Some(unsubscribe) = unsubscribe.filter(|_| part.needs_unsubscribe_link()) {
        if !shows(unsubscribe) {
            return Err(RenderError::MissingLink { part: part.field(), link: "unsubscribe" });
        }
    }
    Ok(())
}

/// `html` without its `<!-- ... -->` comments (an unclosed one runs to the end).
fn without_html_comments(html: &str) -> std::borrow::Cow<'_, str> {
    if !html.contains("<!--") {
        return std::borrow::Cow::Borrowed(html);
    }
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        rest = rest[start + 4..].find("-->").map_or("", |end| &rest[start + 4 + end + 3..]);
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// The most work one render may do, in minijinja's fuel (about one unit
/// per instruction). The shipped email for a 20-item cart with a voucher
/// renders on a tenth of it (tested); a template that loops without end
/// runs out instead of holding a checker (and falls back to the shipped
/// default).
pub const FUEL: u64 = 200_000;

/// The environment every template renders in: HTML escaping for `.html`
/// files only; block tags take their line with them (`trim_blocks`,
/// `lstrip_blocks`), so a text template reads as the text it writes.
/// Undefined is strict: a misspelt name or attribute (`voucher.cdoe`) is
/// an error, not an empty string; absent values are `none`, so `{% if
/// voucher %}` works (under `Strict` an `if` on an undefined fails too,
/// which `SemiStrict` would let pass as false).
pub(crate) fn base_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    // None writes nothing: the default formatter would send "Hallo None,"
    // for a customer without a first name.
    env.set_formatter(|out, state, value| match (state.auto_escape(), value.as_str()) {
        _ if value.is_none() => Ok(()),
        (minijinja::AutoEscape::Html, Some(text)) if !value.is_safe() => out
            .write_str(&escape_html(text))
            .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string())),
        _ => minijinja::escape_formatter(out, state, value),
    });
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    // Debug info would copy the render's values (a customer's name) into errors.
    env.set_debug(false);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env
}

/// Who reads a message: what the templates may say of them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reader<'a> {
    pub first_name: Option<&'a str>,
    /// `customer.locale` (`de-AT`): picks the set's translation and writes money.
    pub locale: Option<&'a str>,
    /// 1-based, as the templates see it.
    pub step: u32,
    /// A customer with a recent return (the `recovery` segment).
    pub returner: bool,
}

/// A template set compiled for one locale (the reader's closest), ready to
/// render each part. Cheap enough to build per message: parsing a set's
/// dozen small templates takes well under a millisecond.
pub struct Composer<'a> {
    env: Environment<'a>,
    brand: &'a Brand,
    /// The set's locale the reader gets (`de` for a `de-AT` reader).
    locale: &'a str,
}

impl<'a> Composer<'a> {
    /// The set's parts in the locale closest to `locale` (the default
    /// locale's where that one leaves a part out), with its shared files and
    /// the shipped layout unless the set has its own.
    pub fn new(set: &'a TemplateSet, brand: &'a Brand, locale: Option<&str>) -> Result<Self, RenderError> {
        let chosen = set.locale_for(locale);
        let mut env = base_environment();
        if !set.shared.contains_key("layout.html") {
            env.add_template("layout.html", crate::template::SHIPPED_LAYOUT)?;
        }
        for (file, text) in &set.shared {
            env.add_template(file.as_str(), text.as_str())?;
        }
        for part in Part::ALL {
            if let Some(text) = set.part(chosen, part) {
                env.add_template(part.file(), text)?;
            }
        }
        Ok(Composer { env, brand, locale: chosen })
    }

    /// The same composer with another fuel bound (tests measure headroom).
    #[cfg(test)]
    pub(crate) fn with_fuel(mut self, fuel: u64) -> Self {
        self.env.set_fuel(Some(fuel));
        self
    }

    /// The set's locale this composer renders.
    pub fn locale(&self) -> &str {
        self.locale
    }

    fn has(&self, part: Part) -> bool {
        self.env.get_template(part.file()).is_ok()
    }

    fn render(&self, part: Part, ctx: &minijinja::Value) -> Result<String, RenderError> {
        let template = self.env.get_template(part.file()).map_err(|_| RenderError::MissingPart(part.field()))?;
        let text = template.render(ctx)?;
        // Subjects, SMS and push are one line: stray newlines from template tags go.
        Ok(match part {
            Part::EmailHtml | Part::EmailText => text,
            _ => text.trim().to_owned(),
        })
    }

    /// The template context for a cart, listing its first `shown` lines.
    fn context(&self, cart: &Cart, reader: &Reader, links: &Links, shown: usize) -> minijinja::Value {
        let money_locale = reader.locale.or(Some(self.locale));
        let totals = cart.totals();
        let currency = totals.currency.clone().unwrap_or_default();
        let money = |amount: Decimal| locale::money(amount, &currency, money_locale);
        let items: Vec<ItemView> = cart
            .items
            .iter()
            .take(shown)
            .map(|i| ItemView {
                name: i.item_name.clone().unwrap_or_else(|| i.item_id.clone()),
                variant: i.variant.clone(),
                quantity: i.quantity,
                price: i.price.map(money),
                line_total: i.price.map(|p| money(p.saturating_mul(Decimal::from(i.quantity)))),
                image_url: i.image_url.as_deref().map(url_value),
                link: url_value(&match &i.url {
                    Some(url) => (links.item)(url),
                    None => links.restore.clone(),
                }),
            })
            .collect();
        let postal_address = self
            .brand
            .postal_address
            .as_deref()
            .or(links.unsubscribe.as_ref().map(|u| u.postal_address))
            .unwrap_or_default();
        let brand = context! {
            name => self.brand.name,
            logo_url => self.brand.logo_url.as_deref().map(url_value),
            primary_colour => self.brand.primary_colour,
            text_colour => self.brand.text_colour,
            postal_address => postal_address,
            support_url => self.brand.support_url.as_deref().map(url_value),
        };
        let language = locale::language_of(self.locale);
        context! {
            first_name => reader.first_name,
            more_items => cart.items.len() - items.len(),
            items => items,
            item_count => totals.item_count,
            subtotal => money(totals.subtotal),
            currency => currency,
            restore_link => url_value(&links.restore),
            unsubscribe_link => links.unsubscribe.as_ref().map(|u| url_value(&u.url)),
            postal_address => postal_address,
            voucher => links.voucher.map(|v| VoucherView::of(v, &language, money_locale)),
            step => reader.step,
            returner => reader.returner,
            segment => if reader.returner { "returner" } else { "other" },
            brand => brand,
            locale => self.locale,
            direction => locale::direction(self.locale),
            // Set by the email before its bodies render; none elsewhere.
            subject => (),
            preheader => (),
        }
    }

    /// The email for this cart, its subject line rendered from `subject` (a
    /// template string with the same values as the body) instead of the
    /// set's own when one is given (an experiment's variant). Lists at most
    /// [`MAX_ITEMS_SHOWN`] lines, fewer when the job would not fit a queue
    /// message.
    pub fn email(
        &self,
        subject: Option<&str>,
        to: &Email,
        cart: &Cart,
        reader: &Reader,
        links: &Links,
    ) -> Result<Outgoing, RenderError> {
        let mut shown = cart.items.len().min(MAX_ITEMS_SHOWN);
        loop {
            let ctx = self.context(cart, reader, links, shown);
            let subject = match subject {
                Some(line) => self.env.render_str(line, &ctx)?.trim().to_owned(),
                None => self.render(Part::EmailSubject, &ctx)?,
            };
            let ctx = context! { subject => subject.clone(), ..ctx };
            let preheader =
                if self.has(Part::EmailPreheader) { self.render(Part::EmailPreheader, &ctx)? } else { String::new() };
            let ctx = context! { preheader => preheader, ..ctx };
            let outgoing = Outgoing::Email {
                to: to.clone(),
                subject,
                text: self.render(Part::EmailText, &ctx)?,
                html: self.render(Part::EmailHtml, &ctx)?,
                unsubscribe: links.unsubscribe.as_ref().map(|u| Box::new(u.list())),
            };
            // Measured as the queue will carry it: JSON, escapes included.
            let bytes = serde_json::to_vec(&outgoing).map_or(usize::MAX, |json| json.len());
            if bytes <= MAX_CONTENT_BYTES {
                if let Outgoing::Email { text, html, .. } = &outgoing {
                    let unsubscribe = links.unsubscribe.as_ref().map(|u| u.url.as_str());
                    check_links(Part::EmailText, text, &links.restore, unsubscribe)?;
                    check_links(Part::EmailHtml, html, &links.restore, unsubscribe)?;
                }
                return Ok(outgoing);
            }
            if shown == 0 {
                return Err(RenderError::TooLarge(bytes));
            }
            shown /= 2;
        }
    }

    pub fn sms(&self, to: &Phone, cart: &Cart, reader: &Reader, links: &Links) -> Result<Outgoing, RenderError> {
        let ctx = self.context(cart, reader, links, 1);
        let body = self.render(Part::Sms, &ctx)?;
        check_links(Part::Sms, &body, &links.restore, None)?;
        Ok(Outgoing::Sms { to: to.clone(), body })
    }

    /// Title and body of a mobile push (`web` false) or a web push.
    pub fn push(
        &self,
        web: bool,
        cart: &Cart,
        reader: &Reader,
        links: &Links,
    ) -> Result<(String, String), RenderError> {
        let ctx = self.context(cart, reader, links, 1);
        let (title, body) =
            if web { (Part::WebPushTitle, Part::WebPushBody) } else { (Part::PushTitle, Part::PushBody) };
        Ok((self.render(title, &ctx)?, self.render(body, &ctx)?))
    }

    /// Every part for a preview's cart, each rendered on its own (one
    /// failing part does not hide the others); the links are placeholders.
    pub fn render_preview(&self, input: &PreviewInput) -> BTreeMap<Part, Result<String, RenderError>> {
        let item = |url: &str| url.to_owned();
        let unsubscribe = Unsubscribe { url: PREVIEW_UNSUBSCRIBE_LINK.into(), mailbox: None, postal_address: "" };
        let links = Links {
            restore: PREVIEW_RESTORE_LINK.into(),
            item: &item,
            unsubscribe: Some(unsubscribe),
            voucher: input.voucher.as_ref(),
        };
        self.render_all(input, &links)
    }

    /// Every part for `input`'s cart with `links`, each on its own.
    pub(crate) fn render_all(
        &self,
        input: &PreviewInput,
        links: &Links,
    ) -> BTreeMap<Part, Result<String, RenderError>> {
        let reader = Reader {
            first_name: input.first_name.as_deref(),
            locale: input.locale.as_deref(),
            step: input.step,
            returner: input.returner,
        };
        let ctx = self.context(&input.cart, &reader, links, input.cart.items.len().min(MAX_ITEMS_SHOWN));
        let mut out = BTreeMap::new();
        let subject = self.render(Part::EmailSubject, &ctx);
        let ctx = context! { subject => subject.as_ref().ok(), ..ctx };
        let preheader = self.render(Part::EmailPreheader, &ctx);
        let ctx = context! { preheader => preheader.as_ref().ok(), ..ctx };
        out.insert(Part::EmailSubject, subject);
        out.insert(Part::EmailPreheader, preheader);
        for part in Part::ALL.into_iter().skip(2) {
            out.insert(part, self.render(part, &ctx));
        }
        out
    }

    /// A subject line (an experiment variant's) rendered for `input`, as
    /// [`Composer::email`] renders it.
    pub(crate) fn subject_line(&self, line: &str, input: &PreviewInput) -> Result<String, String> {
        let item = |url: &str| url.to_owned();
        let links = Links {
            restore: PREVIEW_RESTORE_LINK.into(),
            item: &item,
            unsubscribe: None,
            voucher: input.voucher.as_ref(),
        };
        let reader = Reader {
            first_name: input.first_name.as_deref(),
            locale: input.locale.as_deref(),
            step: input.step,
            returner: input.returner,
        };
        let ctx = self.context(&input.cart, &reader, &links, 1);
        let env = base_environment();
        env.template_from_named_str(Part::EmailSubject.file(), line)
            .and_then(|t| t.render(&ctx))
            .map(|s| s.trim().to_owned())
            .map_err(|error| {
                let expression = error.range().and_then(|r| line.get(r)).map(str::trim);
                match (error.kind(), expression) {
                    (minijinja::ErrorKind::UndefinedError, Some(e)) => format!("`{e}` is not defined"),
                    _ => error.to_string(),
                }
            })
    }

    /// A render error as whoever edits the set needs it: for a name or
    /// attribute that does not exist, the expression and where it is
    /// (`` `item.colour` is not defined (layout.html, line 40) ``).
    pub(crate) fn explain(&self, error: &RenderError) -> String {
        let RenderError::Template(error) = error else { return error.to_string() };
        let expression = error.name().zip(error.range()).and_then(|(name, range)| {
            let source = self.env.get_template(name).ok()?.source().get(range)?.trim().to_owned();
            Some((name.to_owned(), source))
        });
        match (error.kind(), expression) {
            (minijinja::ErrorKind::UndefinedError, Some((name, source))) => format!(
                "`{source}` is not defined ({name}, line {}): a misspelt variable or attribute?",
                error.line().unwrap_or_default()
            ),
            (minijinja::ErrorKind::OutOfFuel, _) => {
                format!("{error}: the template does too much work (a loop without end?)")
            }
            _ => error.to_string(),
        }
    }
}

/// The shipped set `template`, for callers without a template store.
fn shipped(template: &str) -> Result<TemplateSet, RenderError> {
    crate::template::shipped_set(template).ok_or_else(|| RenderError::UnknownTemplate(template.into()))
}

/// The email of shipped set `template` in English, with a brand of no name
/// (see [`Composer::email`]).
pub fn email(
    template: &str,
    to: &Email,
    cart: &Cart,
    first_name: Option<&str>,
    links: &Links,
) -> Result<Outgoing, RenderError> {
    email_with_subject(template, None, to, cart, first_name, links)
}

/// Whether `subject` is a subject line template that renders: checked when
/// a campaign is written, so a broken one never reaches a checker.
pub fn check_subject(subject: &str) -> Result<(), String> {
    if subject.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if subject.len() > 500 {
        return Err("must be at most 500 characters".into());
    }
    crate::template::check_subject_line(subject)
}

/// The email of shipped set `template` in English, its subject line from
/// `subject` when given (see [`Composer::email`]).
pub fn email_with_subject(
    template: &str,
    subject: Option<&str>,
    to: &Email,
    cart: &Cart,
    first_name: Option<&str>,
    links: &Links,
) -> Result<Outgoing, RenderError> {
    let set = shipped(template)?;
    let brand = Brand::default();
    let reader = Reader { first_name, step: 1, ..Reader::default() };
    Composer::new(&set, &brand, None)?.email(subject, to, cart, &reader, links)
}

/// The shipped reminder's SMS in English.
pub fn sms(to: &Phone, cart: &Cart, first_name: Option<&str>, links: &Links) -> Result<Outgoing, RenderError> {
    let set = shipped("reminder")?;
    let brand = Brand::default();
    let reader = Reader { first_name, step: 1, ..Reader::default() };
    Composer::new(&set, &brand, None)?.sms(to, cart, &reader, links)
}

/// Title and body for a push notification (the shipped reminder, English).
pub fn push_text(cart: &Cart, first_name: Option<&str>) -> (String, String) {
    push_text_with_voucher(cart, first_name, None)
}

/// Title and body for a push notification, the body ending with the
/// cart's voucher code and discount when the step shows one (the shipped
/// reminder, English).
pub fn push_text_with_voucher(
    cart: &Cart,
    first_name: Option<&str>,
    voucher: Option<&ShownVoucher>,
) -> (String, String) {
    let item = |url: &str| url.to_owned();
    let links = Links { restore: String::new(), item: &item, unsubscribe: None, voucher };
    let reader = Reader { first_name, step: 1, ..Reader::default() };
    let brand = Brand::default();
    let rendered =
        shipped("reminder").and_then(|set| Composer::new(&set, &brand, None)?.push(false, cart, &reader, &links));
    // The shipped templates render for every cart (tested); should one
    // not, the customer still gets a plain line, never an error.
    rendered.unwrap_or_else(|_| ("Your cart is waiting".to_owned(), "Your cart is saved for you.".to_owned()))
}

/// The complete MIME message for an email: multipart/alternative text and
/// HTML, with a deterministic Message-ID so a resend is recognisable.
pub fn mime(outgoing: &Outgoing, from: &str, message_id: &str, date: DateTime<Utc>) -> Result<Vec<u8>, RenderError> {
    let Outgoing::Email { to, subject, text, html, unsubscribe } = outgoing else {
        return Err(RenderError::Mime("not an email".into()));
    };
    let from: Mailbox = from.parse().map_err(|e| RenderError::Mime(format!("sender address: {e}")))?;
    let to: Mailbox = to.expose().parse().map_err(|e| RenderError::Mime(format!("recipient address: {e}")))?;
    let mut builder = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .date(SystemTime::from(date))
        .message_id(Some(format!("<{message_id}@cartback>")))
        .header(header::MIME_VERSION_1_0);
    if let Some(list) = unsubscribe {
        builder = builder.header(ListUnsubscribeHeader::new(list)?).header(ListUnsubscribePost);
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(text.clone(), html.clone()))
        .map_err(|e| RenderError::Mime(e.to_string()))?;
    Ok(message.formatted())
}

type HeaderParseError = Box<dyn std::error::Error + Send + Sync>;

/// `List-Unsubscribe: <https://...>, <mailto:...>` (RFC 2369). The targets
/// are checked to be printable ASCII without spaces or angle brackets, so
/// the header can be neither folded apart nor injected into.
#[derive(Debug, Clone)]
struct ListUnsubscribeHeader(String);

impl ListUnsubscribeHeader {
    fn new(list: &ListUnsubscribe) -> Result<Self, RenderError> {
        let targets: Vec<&str> = std::iter::once(list.url.as_str()).chain(list.mailto.as_deref()).collect();
        for target in &targets {
            if !target.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>') {
                return Err(RenderError::Mime("List-Unsubscribe: a target is not a plain ASCII URL".into()));
            }
        }
        Ok(ListUnsubscribeHeader(targets.iter().map(|t| format!("<{t}>")).collect::<Vec<_>>().join(", ")))
    }
}

impl header::Header for ListUnsubscribeHeader {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, HeaderParseError> {
        Ok(ListUnsubscribeHeader(s.to_owned()))
    }

    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058): the
/// mailbox provider may unsubscribe with one `POST`, no page in between.
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl header::Header for ListUnsubscribePost {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, HeaderParseError> {
        Ok(ListUnsubscribePost)
    }

    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventType, Item};
    use rust_decimal::Decimal;

    fn cart() -> Cart {
        let e = Event {
            items: vec![Item {
                item_id: "sku".into(),
                item_name: Some("Blue <Mug>".into()),
                variant: None,
                price: Some(Decimal::new(1250, 2)),
                quantity: 2,
                image_url: Some("https://cdn.example/mug.jpg".into()),
                url: Some("https://shop.example/mug".into()),
            }],
            ..cart_event()
        };
        Cart::from_events("c1", &[e])
    }

    fn links() -> Links<'static> {
        Links {
            restore: "https://cb.example/r/RESTORE".into(),
            item: &|url| format!("https://cb.example/r/item?{url}"),
            unsubscribe: None,
            voucher: None,
        }
    }

    #[test]
    fn given_a_cart_when_an_email_is_rendered_then_items_images_prices_and_links_are_in_it() {
        let Outgoing::Email { subject, text, html, .. } =
            email("reminder", &"ana@example.com".into(), &cart(), Some("Ana"), &links()).unwrap()
        else {
            panic!()
        };
        assert_eq!(subject, "Ana, you left 2 items in your cart");
        assert!(text.contains("Blue <Mug> x2  €12.50  (€25.00)"), "money in the reader's locale: {text}");
        assert!(html.contains("Blue &lt;Mug&gt;"), "HTML is escaped: {html}");
        assert!(html.contains("https://cdn.example/mug.jpg"));
        assert!(html.contains("https://cb.example/r/item?https://shop.example/mug"));
        assert!(html.contains("https://cb.example/r/RESTORE"));
        assert!(text.contains("Total: €25.00"), "{text}");
    }

    /// GIVEN a customer without a first name, an unpriced line, a brand without a logo, and an SMS that
    /// prints `{{ subject }}` (none outside an email)
    /// WHEN the email and the SMS are rendered
    /// THEN absent values write nothing: no "None" reaches the customer.
    #[test]
    fn given_absent_values_when_rendered_then_they_write_nothing_not_none() {
        let mut set = crate::template::shipped_set("reminder").unwrap();
        let en = set.locales.get_mut("en").unwrap();
        en.email_text = Some(
            "Hallo {{ first_name }},\n{% for item in items %}[{{ item.price }}]{% endfor %}\n\
             <{{ brand.logo_url }}>\n{{ restore_link }}\n{{ unsubscribe_link }}"
                .into(),
        );
        en.sms = Some("{{ subject }}|{{ restore_link }}".into());
        let brand = Brand::fallback("1 Market Street");
        let composer = Composer::new(&set, &brand, Some("en")).unwrap();
        let mut unpriced = cart();
        unpriced.items[0].price = None;
        let unsubscribe = Unsubscribe { url: "https://cb.example/u/U".into(), mailbox: None, postal_address: "" };
        let links = Links { unsubscribe: Some(unsubscribe), ..links() };
        let reader = Reader { step: 1, ..Reader::default() };

        let Outgoing::Email { text, html, .. } =
            composer.email(None, &"ana@example.com".into(), &unpriced, &reader, &links).unwrap()
        else {
            panic!()
        };
        let Outgoing::Sms { body, .. } =
            composer.sms(&Phone::parse("+4915112345678").unwrap(), &unpriced, &reader, &links).unwrap()
        else {
            panic!()
        };

        assert!(text.starts_with("Hallo ,\n[]<>\n"), "{text}");
        assert_eq!(body, "|https://cb.example/r/RESTORE");
        assert!(!html.contains("None"), "{html}");
    }

    #[test]
    fn given_a_subject_line_template_when_an_email_is_rendered_then_it_replaces_the_templates_subject() {
        let line = "{{ first_name }}: {{ item_count }} items, {{ subtotal }} {{ currency }}";
        assert_eq!(check_subject(line), Ok(()));
        let Outgoing::Email { subject, html, .. } =
            email_with_subject("reminder", Some(line), &"ana@example.com".into(), &cart(), Some("Ana"), &links())
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(subject, "Ana: 2 items, €25.00 EUR", "the subtotal is written with its currency now");
        assert!(html.contains("<title>Ana: 2 items, €25.00 EUR</title>"), "{html}");
        assert!(check_subject("{% if %}").unwrap_err().contains("syntax error"));
        assert_eq!(check_subject("  "), Err("must not be empty".into()));
    }

    /// GIVEN variant subject lines with an unknown variable, a misspelt voucher attribute, a voucher
    /// attribute printed without `{% if voucher %}`, and the placeholder host typed in
    /// WHEN checked as a campaign is written
    /// THEN each is refused naming the variable (strict, as a set's subject); guarded, the line passes.
    #[test]
    fn given_variant_subject_lines_when_checked_then_they_are_validated_like_a_sets_subject() {
        assert!(check_subject("{{ frist_name }}, come back").unwrap_err().contains("unknown variable `frist_name`"));
        assert!(check_subject("{{ voucher.cdoe }} inside").unwrap_err().contains("unknown variable `voucher.cdoe`"));
        let unguarded = check_subject("{{ voucher.discount }} on your cart").unwrap_err();
        assert!(
            unguarded.contains("`voucher.discount` is not defined") && unguarded.contains("no voucher"),
            "{unguarded}"
        );
        assert!(check_subject("Go: https://preview.cartback.invalid/restore").unwrap_err().contains("placeholder"));
        assert_eq!(check_subject("{% if voucher %}{{ voucher.discount }} on {% endif %}your cart"), Ok(()));
    }

    #[test]
    fn given_an_email_when_built_as_mime_then_it_is_multipart_alternative_with_headers() {
        let out = email("reminder", &"ana@example.com".into(), &cart(), None, &links()).unwrap();
        let raw = String::from_utf8(
            mime(&out, "Shop <shop@example.com>", "m_1", "2026-11-23T10:30:00Z".parse().unwrap()).unwrap(),
        )
        .unwrap();
        for needle in [
            "From: Shop <shop@example.com>",
            "To: ana@example.com",
            "Subject: You left 2 items in your cart",
            "Message-ID: <m_1@cartback>",
            "MIME-Version: 1.0",
            "multipart/alternative",
            "text/plain",
            "text/html",
            "Date: Mon, 23 Nov 2026 10:30:00",
        ] {
            assert!(raw.contains(needle), "missing {needle} in\n{raw}");
        }
    }

    /// GIVEN an email rendered with an unsubscribe link, a mailbox and a postal address
    /// WHEN built as MIME
    /// THEN it has both RFC 2369 / RFC 8058 headers, and both bodies show the link and the address.
    #[test]
    fn given_an_unsubscribe_link_when_the_email_is_built_then_headers_link_and_address_are_in_it() {
        let links = Links {
            unsubscribe: Some(Unsubscribe {
                url: "https://cb.example/u/TOKEN.TAG".into(),
                mailbox: Some("unsubscribe@shop.example"),
                postal_address: "Shop & Co, 1 Rue de la Paix, 75002 Paris",
            }),
            ..links()
        };
        let out = email("reminder", &"ana@example.com".into(), &cart(), None, &links).unwrap();
        let Outgoing::Email { text, html, unsubscribe, .. } = &out else { panic!() };
        assert!(text.contains("Unsubscribe or choose what you receive: https://cb.example/u/TOKEN.TAG"), "{text}");
        assert!(text.contains("Shop & Co, 1 Rue de la Paix, 75002 Paris"), "{text}");
        assert!(
            html.contains(r#"<a href="https://cb.example/u/TOKEN.TAG" style="color:#555555">Unsubscribe"#),
            "{html}"
        );
        assert!(html.contains("Shop &amp; Co, 1 Rue de la Paix"), "escaped in HTML: {html}");
        assert_eq!(
            unsubscribe.as_ref().and_then(|u| u.mailto.as_deref()),
            Some("mailto:unsubscribe@shop.example?subject=unsubscribe")
        );
        let date = "2026-11-23T10:30:00Z".parse().unwrap();
        let raw = String::from_utf8(mime(&out, "shop@example.com", "m_1", date).unwrap()).unwrap();
        let unfolded = raw.replace("\r\n ", " ");
        let header = concat!(
            "List-Unsubscribe: <https://cb.example/u/TOKEN.TAG>, ",
            "<mailto:unsubscribe@shop.example?subject=unsubscribe>"
        );
        assert!(unfolded.contains(header), "{raw}");
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"), "{raw}");
    }

    /// GIVEN an email job queued before unsubscribe links existed WHEN read and built THEN it is sent as before,
    /// without the headers.
    #[test]
    fn given_an_old_queued_email_job_when_read_then_it_has_no_unsubscribe_and_builds() {
        let old = r#"{"kind":"email","to":"ana@example.com","subject":"s","text":"t","html":"h"}"#;
        let out: Outgoing = serde_json::from_str(old).unwrap();
        let date = "2026-11-23T10:30:00Z".parse().unwrap();
        let raw = String::from_utf8(mime(&out, "shop@example.com", "m_1", date).unwrap()).unwrap();
        assert!(!raw.contains("List-Unsubscribe"), "{raw}");
    }

    /// GIVEN an unsubscribe target with a space or an angle bracket WHEN built as MIME THEN it is refused.
    #[test]
    fn given_an_unsafe_unsubscribe_target_when_built_then_it_is_refused() {
        for url in ["https://cb.example/u/a b", "https://cb.example/u/a>, <https://evil"] {
            let out = Outgoing::Email {
                to: "ana@example.com".into(),
                subject: "s".into(),
                text: "t".into(),
                html: "h".into(),
                unsubscribe: Some(Box::new(ListUnsubscribe { url: url.into(), mailto: None })),
            };
            assert!(mime(&out, "shop@example.com", "m_1", Utc::now()).is_err(), "{url}");
        }
    }

    /// A cart with `count` lines, each as long as ingest lets it be.
    fn pathological_cart(count: usize, unit: &str) -> Cart {
        let long = |prefix: &str, chars: usize| {
            let mut text = prefix.to_owned();
            while text.chars().count() < chars {
                text.push_str(unit);
            }
            text.chars().take(chars).collect::<String>()
        };
        let items = (0..count)
            .map(|i| Item {
                item_id: format!("{i:0>128}"),
                item_name: Some(long("", 500)),
                variant: None,
                price: Some(Decimal::new(999_999, 2)),
                quantity: 10_000,
                image_url: Some(long("https://cdn.example/", 2048)),
                url: Some(long("https://shop.example/", 2048)),
            })
            .collect();
        let e = Event { items, ..cart_event() };
        Cart::from_events("c".repeat(128), &[e])
    }

    fn cart_event() -> Event {
        Event {
            event_id: "e".into(),
            kind: EventType::AddToCart,
            occurred_at: "2026-11-23T10:00:00Z".parse().unwrap(),
            cart_id: Some("c1".into()),
            customer_id: None,
            device: None,
            currency: Some("EUR".into()),
            items: vec![],
            order_id: None,
            value: None,
            coupon: None,
            customer: None,
            answer: None,
        }
    }

    /// Item links signed as the checker signs them: the whole target URL
    /// rides in the token, so a long URL makes a longer link.
    fn signed_item_link(url: &str) -> String {
        let secret = crate::signing::Secret::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        let claims = crate::signing::LinkClaims {
            message_id: "m_0123456789abcdef01234567".into(),
            cart_id: "c".repeat(128).into(),
            target: url.to_owned(),
            expires: 1_900_000_000,
        };
        format!("https://abc123.execute-api.us-east-1.amazonaws.com/r/{}", crate::signing::sign_link(&secret, &claims))
    }

    /// GIVEN carts with 300 lines, each with a 500-character name and
    /// 2,048-character image and product URLs (ASCII, characters HTML and
    /// JSON escape, 4-byte characters)
    /// WHEN the email job is rendered and serialised as the queue carries it
    /// THEN it stays under MAX_JOB_BYTES (192 KiB, below SQS's 256 KiB) and
    /// says how many lines it leaves out (a voucher shown in it too).
    #[test]
    fn given_a_pathological_cart_when_its_email_job_is_serialised_then_it_fits_a_queue_message() {
        let voucher = shown(ten_percent(), "Europe/Paris", Some("fr-FR"));
        let links = Links {
            restore: signed_item_link("https://shop.example/restore"),
            item: &signed_item_link,
            unsubscribe: Some(Unsubscribe {
                url: format!("https://abc123.execute-api.us-east-1.amazonaws.com/u/{}", "t".repeat(200)),
                mailbox: Some("unsubscribe@shop.example"),
                postal_address: "Shop Ltd, 1 Long Street, 75001 Paris, France",
            }),
            voucher: Some(&voucher),
        };
        for unit in ["a", "<\"&'", "\u{1F6D2}"] {
            let cart = pathological_cart(300, unit);
            let outgoing = email("reminder", &"ana@example.com".into(), &cart, Some(&"N".repeat(100)), &links).unwrap();
            let job = crate::message::MessageJob {
                message_id: "m_0123456789abcdef01234567".into(),
                cart_id: cart.cart_id.clone(),
                channel: crate::message::Channel::Email,
                outgoing,
                voucher: Some(voucher.code.clone()),
            };
            let bytes = serde_json::to_vec(&job).unwrap().len();
            assert!(bytes <= MAX_JOB_BYTES, "{unit:?}: {bytes} bytes");
            let Outgoing::Email { text, html, .. } = &job.outgoing else { panic!() };
            assert!(text.contains("more items in your cart"), "{unit:?}");
            assert!(html.contains("more items in your cart"), "{unit:?}");
        }
    }

    /// GIVEN a cart with 27 ordinary lines
    /// WHEN its email is rendered
    /// THEN the first 25 are listed and one line says "...and 2 more items".
    #[test]
    fn given_more_lines_than_a_message_lists_when_rendered_then_the_rest_is_one_and_more_line() {
        let items = (0..27)
            .map(|i| Item {
                item_id: format!("sku-{i}"),
                item_name: Some(format!("Mug {i}")),
                variant: None,
                price: Some(Decimal::new(1000, 2)),
                quantity: 1,
                image_url: None,
                url: Some(format!("https://shop.example/mug-{i}")),
            })
            .collect();
        let cart = Cart::from_events("c1", &[Event { items, ..cart_event() }]);
        let Outgoing::Email { text, html, .. } =
            email("reminder", &"ana@example.com".into(), &cart, None, &links()).unwrap()
        else {
            panic!()
        };
        assert!(text.contains("Mug 24 x1") && !text.contains("Mug 25 x1"), "{text}");
        assert!(text.contains("...and 2 more items in your cart"), "{text}");
        assert!(html.contains("...and 2 more items in your cart"), "{html}");
        assert!(text.contains("Total: €270.00"), "the total counts every line: {text}");
    }

    #[test]
    fn given_a_cart_when_an_sms_is_rendered_then_it_is_short_and_carries_the_restore_link() {
        let Outgoing::Sms { body, .. } = sms(&"+33612345678".into(), &cart(), Some("Ana"), &links()).unwrap() else {
            panic!()
        };
        assert!(body.contains("https://cb.example/r/RESTORE"));
        assert!(body.chars().count() < 200, "{body}");
    }
    fn shown(discount: crate::voucher::Discount, zone: &str, locale: Option<&str>) -> ShownVoucher {
        ShownVoucher {
            code: crate::voucher::VoucherCode::parse("CB-7KQ4-M9XD-2PWE").unwrap(),
            terms: crate::voucher::VoucherTerms {
                tier: crate::voucher::TierName::Recovery,
                discount,
                currency: "EUR".into(),
                min_cart_value: None,
            },
            expires_at: "2026-12-02T13:30:00Z".parse().unwrap(),
            time_zone: zone.parse().unwrap(),
            locale: locale.map(str::to_owned),
        }
    }

    fn ten_percent() -> crate::voucher::Discount {
        crate::voucher::Discount::PercentOff { percent: Decimal::from(10), max_amount: None }
    }

    fn email_parts(voucher: &ShownVoucher) -> (String, String) {
        let links = Links { voucher: Some(voucher), ..links() };
        let Outgoing::Email { text, html, .. } =
            email("reminder", &"ana@example.com".into(), &cart(), Some("Ana"), &links).unwrap()
        else {
            panic!()
        };
        (text, html)
    }

    /// GIVEN a step showing a 10% voucher with a 30.00 EUR minimum, for a customer in Paris without a locale
    /// WHEN the email is rendered
    /// THEN text and HTML show the code, the discount with its minimum and the expiry in Paris time, in English.
    #[test]
    fn given_a_voucher_when_an_email_is_rendered_then_code_discount_minimum_and_expiry_are_shown() {
        let mut voucher = shown(ten_percent(), "Europe/Paris", None);
        voucher.terms.min_cart_value = Some(Decimal::from(30));
        let (text, html) = email_parts(&voucher);
        assert!(text.contains("\nYour code: CB-7KQ4-M9XD-2PWE\n"), "{text}");
        let line = "10% off, on orders of €30.00 or more. Valid until 2 December 2026 at 14:30 (CET).";
        assert!(text.contains(line), "{text}");
        assert!(text.find("Your code").unwrap() < text.find("Blue <Mug>").unwrap(), "before the items: {text}");
        assert!(html.contains("font-family:monospace\">CB-7KQ4-M9XD-2PWE</p>"), "{html}");
        assert!(
            html.contains("<p style=\"margin:8px 0 0;font-size:15px\">10% off, on orders of €30.00 or more</p>"),
            "{html}"
        );
        assert!(html.contains("Valid until 2 December 2026 at 14:30 (CET)"), "{html}");
    }

    #[test]
    fn given_no_voucher_when_an_email_is_rendered_then_nothing_of_one_is_shown() {
        let Outgoing::Email { text, html, .. } =
            email("reminder", &"ana@example.com".into(), &cart(), Some("Ana"), &links()).unwrap()
        else {
            panic!()
        };
        assert!(!text.contains("code") && !html.contains("Your code"), "{text}");
        assert!(text.contains("They're saved for you:\n\n- Blue <Mug>"), "unchanged layout: {text}");
    }

    /// GIVEN each kind of discount WHEN shown THEN "10% off", "5.00 EUR off", "free shipping", and a capped percentage.
    #[test]
    fn given_each_discount_kind_when_shown_then_it_reads_as_the_customer_expects() {
        use crate::voucher::Discount;
        for (discount, said) in [
            (ten_percent(), "10% off."),
            (Discount::AmountOff { amount: Decimal::from(5) }, "€5.00 off."),
            (Discount::FreeShipping, "Free shipping."),
            (
                Discount::PercentOff { percent: Decimal::new(125, 1), max_amount: Some(Decimal::from(20)) },
                "12.5% off (at most €20.00).",
            ),
        ] {
            let (text, html) = email_parts(&shown(discount, "UTC", None));
            assert!(text.contains(&format!("\n{said} Valid until")), "{said}: {text}");
            assert!(html.contains(said.trim_end_matches('.')), "{said}: {html}");
        }
    }

    /// GIVEN an expiry of 2026-12-02 13:30 UTC
    /// WHEN written for German, French, American, Spanish, Japanese, Turkish, Polish, Thai and an unknown locale
    /// THEN each reads as CLDR writes a long date and time in that locale (Thai in its Buddhist calendar), in the
    /// customer's zone; no locale reads British English, an unknown one CLDR's root.
    #[test]
    fn given_locales_when_an_expiry_is_written_then_it_is_in_the_customers_language_and_zone() {
        let at = "2026-12-02T13:30:00Z".parse().unwrap();
        let zone = |name: &str| name.parse::<chrono_tz::Tz>().unwrap();
        let written: Vec<String> = [
            (at, "Europe/Berlin", Some("de-DE")),
            (at, "Europe/Paris", Some("fr")),
            (at, "America/New_York", Some("en-US")),
            (at, "Europe/Madrid", Some("es_ES")),
            (at, "America/New_York", Some("en_US.UTF-8")),
            (at, "Asia/Tokyo", Some("ja-JP")),
            (at, "Europe/Istanbul", Some("tr")),
            (at, "Europe/Warsaw", Some("pl")),
            (at, "Asia/Bangkok", Some("th")),
            (at, "Europe/London", Some("xx-YY")),
            (at, "Europe/London", None),
            ("2026-03-01T09:00:00Z".parse().unwrap(), "Europe/Paris", Some("fr-FR")),
        ]
        .into_iter()
        .map(|(at, name, locale)| expiry_text(at, zone(name), locale))
        .collect();
        assert_eq!(
            written,
            [
                "2. Dezember 2026 um 14:30 (CET)",
                "2 décembre 2026 à 14:30 (CET)",
                "December 2, 2026 at 8:30\u{202f}AM (EST)",
                "2 de diciembre de 2026 a las 14:30 (CET)",
                "December 2, 2026 at 8:30\u{202f}AM (EST)",
                "2026年12月2日 22:30 (JST)",
                "2 Aralık 2026 16:30 (+03)",
                "2 grudnia 2026 14:30 (CET)",
                "2 ธันวาคม 2569 เวลา 20:30 (+07)",
                // An unknown language reads CLDR's root patterns.
                "2026 M12 2 13:30 (GMT)",
                "2 December 2026 at 13:30 (GMT)",
                "1 mars 2026 à 10:00 (CET)",
            ]
        );
    }

    /// GIVEN an expiry late in the UTC evening (and one early in the UTC morning)
    /// WHEN written for a customer in Paris (and one in Los Angeles)
    /// THEN the local date is the next day (the previous day).
    #[test]
    fn given_a_time_zone_across_midnight_when_an_expiry_is_written_then_the_local_date_is_shown() {
        let paris = "Europe/Paris".parse().unwrap();
        assert_eq!(
            expiry_text("2026-12-02T23:30:00Z".parse().unwrap(), paris, Some("de")),
            "3. Dezember 2026 um 00:30 (CET)"
        );
        let los_angeles = "America/Los_Angeles".parse().unwrap();
        assert_eq!(
            expiry_text("2026-12-03T03:00:00Z".parse().unwrap(), los_angeles, Some("en-US")),
            "December 2, 2026 at 7:00\u{202f}PM (PST)"
        );
        let mut voucher = shown(ten_percent(), "Europe/Paris", Some("fr"));
        voucher.expires_at = "2026-12-02T23:30:00Z".parse().unwrap();
        let (text, _) = email_parts(&voucher);
        assert!(text.contains("Valid until 3 décembre 2026 à 00:30 (CET)."), "{text}");
    }

    /// GIVEN a voucher whose terms carry characters HTML must escape (a cart's currency is only checked at ingest)
    /// WHEN the email is rendered
    /// THEN the HTML part escapes them and the text part shows them as they are.
    #[test]
    fn given_voucher_terms_with_markup_when_the_html_is_rendered_then_they_are_escaped() {
        let mut voucher = shown(crate::voucher::Discount::AmountOff { amount: Decimal::from(5) }, "UTC", None);
        voucher.terms.currency = "<b>".into();
        let (text, html) = email_parts(&voucher);
        assert!(html.contains("&lt;b&gt;\u{a0}5.00 off") && !html.contains("<b>"), "{html}");
        assert!(text.contains("<b>\u{a0}5.00 off"), "{text}");
    }

    /// GIVEN a voucher WHEN the SMS and the push are written THEN each carries the code, the discount (with its
    /// minimum) and the expiry in a short line.
    #[test]
    fn given_a_voucher_when_the_sms_and_push_are_written_then_they_carry_code_and_discount() {
        let voucher = shown(ten_percent(), "Europe/Paris", Some("de-DE"));
        let links = Links { voucher: Some(&voucher), ..links() };
        let Outgoing::Sms { body, .. } = sms(&"+33612345678".into(), &cart(), Some("Ana"), &links).unwrap() else {
            panic!()
        };
        let line = format!(
            "Code CB-7KQ4-M9XD-2PWE: {} until {}.",
            voucher.terms.describe(),
            expiry_text(voucher.expires_at, voucher.time_zone, Some("de-DE"))
        );
        assert!(line.contains("Dezember") || line.contains("Januar") || line.contains("Uhr"), "{line}");
        // The opt-out instruction is the checker's to add, per destination country.
        assert!(body.ends_with(&format!("https://cb.example/r/RESTORE {line}")), "{body}");
        assert!(body.chars().count() < 260, "{body}");
        let (_, push) = push_text_with_voucher(&cart(), Some("Ana"), Some(&voucher));
        assert_eq!(push, format!("Blue <Mug> and 1 more item(s) are saved for you. {line}"));
        assert_eq!(push_text(&cart(), None).1, "Blue <Mug> and 1 more item(s) are saved for you.");
    }

    /// GIVEN a variant's subject line worded per audience (returners get "welcome back")
    /// WHEN the email is rendered with a recovery-tier voucher, then a standard one
    /// THEN each subject reads its audience's words and the discount.
    #[test]
    fn given_a_subject_line_worded_per_tier_when_rendered_then_each_audience_reads_its_own() {
        let line =
            "{% if voucher %}{% if voucher.tier == 'recovery' %}Welcome back: {% endif %}{{ voucher.discount }} \
                    {% endif %}on your cart";
        assert_eq!(check_subject(line), Ok(()));
        let mut voucher = shown(ten_percent(), "UTC", None);
        for (tier, subject) in [
            (crate::voucher::TierName::Recovery, "Welcome back: 10% off on your cart"),
            (crate::voucher::TierName::Standard, "10% off on your cart"),
        ] {
            voucher.terms.tier = tier;
            let links = Links { voucher: Some(&voucher), ..links() };
            let out = email_with_subject("reminder", Some(line), &"ana@example.com".into(), &cart(), None, &links);
            let Outgoing::Email { subject: rendered, .. } = out.unwrap() else { panic!() };
            assert_eq!(rendered, subject);
        }
        let out = email_with_subject("reminder", Some(line), &"ana@example.com".into(), &cart(), None, &links());
        let Outgoing::Email { subject: rendered, .. } = out.unwrap() else { panic!() };
        assert_eq!(rendered, "on your cart", "without a voucher the line still renders (trimmed)");
    }
}
