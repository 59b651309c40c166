//! Order and cart sources: commerce platforms' own webhooks, verified with
//! each platform's signature scheme and mapped into Cartback's canonical
//! events (the public event format of `POST /v1/events`), which then go
//! through the same validation and ingest as any storefront's events.
//! Nothing downstream knows a platform's name.
//!
//! Each module maps one platform's payload into canonical event JSON. What
//! a platform sends differently from Cartback (prices as strings, unix
//! times, no device but a user agent, no currency but the shop's) is
//! translated here so that good data is not rejected; what cannot be mapped
//! is refused one event at a time, naming the platform's own field.
//! Event ids are derived from the platform's delivery or object ids, so a
//! platform's retry of the same delivery is a duplicate that changes nothing.

pub mod bigcommerce;
#[cfg(test)]
mod fixture_tests;
pub mod segment;
pub mod sfcc;
pub mod shopify;
pub mod woocommerce;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::event::{check_item, FieldError, FieldWarning, MAX_EVENTS_PER_REQUEST, MAX_VARIANT_CHARS};

/// How far a signed timestamp (BigCommerce, Cartback's own signatures from
/// SFCC) may be from real time.
pub const SOURCE_REPLAY_WINDOW_SECONDS: i64 = 300;
/// The shop's currency, for payloads whose prices name none.
pub const SHOP_CURRENCY_ENV: &str = "CARTBACK_SHOP_CURRENCY";
/// The shortest secret a source may be configured with.
pub const MIN_SOURCE_SECRET_BYTES: usize = 16;

/// A platform that posts to `POST /v1/sources/{source}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Shopify,
    BigCommerce,
    WooCommerce,
    Sfcc,
    Segment,
}

impl Source {
    pub const ALL: [Source; 5] =
        [Source::Shopify, Source::BigCommerce, Source::WooCommerce, Source::Sfcc, Source::Segment];

    /// The path segment and the name in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Shopify => "shopify",
            Source::BigCommerce => "bigcommerce",
            Source::WooCommerce => "woocommerce",
            Source::Sfcc => "sfcc",
            Source::Segment => "segment",
        }
    }

    pub fn parse(text: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The environment variable holding this source's secret locally.
    pub fn secret_env(self) -> &'static str {
        match self {
            Source::Shopify => "CARTBACK_SOURCE_SECRET_SHOPIFY",
            Source::BigCommerce => "CARTBACK_SOURCE_SECRET_BIGCOMMERCE",
            Source::WooCommerce => "CARTBACK_SOURCE_SECRET_WOOCOMMERCE",
            Source::Sfcc => "CARTBACK_SOURCE_SECRET_SFCC",
            Source::Segment => "CARTBACK_SOURCE_SECRET_SEGMENT",
        }
    }

    /// The environment variable holding the ARN of this source's secret
    /// (its SecretString) in Secrets Manager, on AWS.
    pub fn secret_arn_env(self) -> &'static str {
        match self {
            Source::Shopify => "CARTBACK_SOURCE_SECRET_ARN_SHOPIFY",
            Source::BigCommerce => "CARTBACK_SOURCE_SECRET_ARN_BIGCOMMERCE",
            Source::WooCommerce => "CARTBACK_SOURCE_SECRET_ARN_WOOCOMMERCE",
            Source::Sfcc => "CARTBACK_SOURCE_SECRET_ARN_SFCC",
            Source::Segment => "CARTBACK_SOURCE_SECRET_ARN_SEGMENT",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A platform's webhook secret (Shopify's app secret, WooCommerce's webhook
/// secret, Segment's shared secret, BigCommerce's client secret). Its
/// `Debug` never shows it.
#[derive(Clone)]
pub struct SourceSecret(Vec<u8>);

impl std::fmt::Debug for SourceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceSecret(***)")
    }
}

impl SourceSecret {
    /// The secret as the platform shows it (its text's bytes are the HMAC key).
    pub fn new(text: &str) -> Result<SourceSecret, String> {
        let text = text.trim();
        if text.len() < MIN_SOURCE_SECRET_BYTES {
            return Err(format!(
                "must be at least {MIN_SOURCE_SECRET_BYTES} characters (the platform's webhook secret)"
            ));
        }
        Ok(SourceSecret(text.as_bytes().to_vec()))
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A platform API that what a thin delivery names is read from
/// (BigCommerce's Management API, see [`bigcommerce::to_fetch`]): carts,
/// orders and an order's refunds.
#[async_trait]
pub trait CartFetch: Send + Sync {
    /// The cart as the API returns it, with its registered customer; `None`
    /// when the API has no such cart.
    async fn fetch_cart(&self, cart_id: &str) -> Result<Option<FetchedCart>, FetchError>;
    /// The order as the API returns it, with its lines; `None` when the API
    /// has no such order.
    async fn fetch_order(&self, order_id: &str) -> Result<Option<FetchedOrder>, FetchError>;
    /// The order's refunds as the API lists them; `None` when the API has
    /// no such order.
    async fn fetch_refunds(&self, order_id: &str) -> Result<Option<Vec<Value>>, FetchError>;
}

/// A cart read from the platform's API, and the customer it names as that
/// API returns it (`None` for a guest's cart): the customer carries the
/// contact data and consent the cart does not.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedCart {
    pub cart: Value,
    pub customer: Option<Value>,
}

/// An order read from the platform's API, and its lines (BigCommerce lists
/// them apart from the order).
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedOrder {
    pub order: Value,
    pub products: Vec<Value>,
}

/// What a thin delivery names, as the platform's API returned it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    Cart(FetchedCart),
    Order(FetchedOrder),
    /// An order's refunds (the API's list).
    Refunds(Vec<Value>),
    /// The API has no such object (404).
    NotFound,
}

/// Why a cart could not be fetched (a sentence for the log; no contact data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The API refused the credentials (401, 403): no retry succeeds until
    /// the operator fixes the token.
    #[error("{0}")]
    Refused(String),
    /// Anything a later attempt may get past (timeout, 5xx, 429, ...).
    #[error("{0}")]
    Failed(String),
}

/// The configured [`CartFetch`] (its `Debug` shows no token).
#[derive(Clone)]
pub struct CartFetcher(pub Arc<dyn CartFetch>);

impl std::fmt::Debug for CartFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CartFetcher")
    }
}

/// What the source endpoint needs besides the request: each configured
/// source's secret, the shop's currency for payloads that carry prices
/// without one, and where BigCommerce's carts are fetched from.
#[derive(Debug, Clone, Default)]
pub struct SourceSettings {
    secrets: BTreeMap<Source, SourceSecret>,
    /// ISO 4217 code used when a payload's prices name no currency.
    pub shop_currency: Option<String>,
    /// BigCommerce's Management API, when configured: thin cart deliveries
    /// are mapped from the cart fetched there; otherwise acknowledged.
    pub bigcommerce_carts: Option<CartFetcher>,
}

impl SourceSettings {
    pub fn with_secret(mut self, source: Source, secret: SourceSecret) -> Self {
        self.secrets.insert(source, secret);
        self
    }

    pub fn secret(&self, source: Source) -> Option<&SourceSecret> {
        self.secrets.get(&source)
    }

    /// The sources that take requests.
    pub fn configured(&self) -> Vec<Source> {
        self.secrets.keys().copied().collect()
    }

    /// Each source's secret from `CARTBACK_SOURCE_SECRET_<SOURCE>` and the
    /// shop's currency from `CARTBACK_SHOP_CURRENCY`, read through `lookup`
    /// (the environment); an error names the variable at fault.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<SourceSettings, String> {
        let mut settings = SourceSettings::default();
        for source in Source::ALL {
            let var = source.secret_env();
            if let Some(text) = lookup(var).filter(|t| !t.trim().is_empty()) {
                let secret = SourceSecret::new(&text).map_err(|e| format!("{var} {e}"))?;
                settings = settings.with_secret(source, secret);
            }
        }
        if let Some(code) = lookup(SHOP_CURRENCY_ENV).filter(|t| !t.trim().is_empty()) {
            settings.set_shop_currency(&code).map_err(|e| format!("{SHOP_CURRENCY_ENV} {e}"))?;
        }
        Ok(settings)
    }

    /// Checks and sets the shop's currency (three capital letters).
    pub fn set_shop_currency(&mut self, code: &str) -> Result<(), String> {
        let code = code.trim();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err("must be an ISO 4217 code of three capital letters, e.g. EUR".into());
        }
        self.shop_currency = Some(code.to_owned());
        Ok(())
    }
}

/// Request headers by lower-case name (HTTP header names are case-insensitive).
#[derive(Debug, Clone, Default)]
pub struct Headers(BTreeMap<String, String>);

impl Headers {
    pub fn insert(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_ascii_lowercase(), value.to_owned());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str).map(str::trim).filter(|v| !v.is_empty())
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut headers = Headers::default();
        for (k, v) in iter {
            headers.insert(k.as_ref(), v.as_ref());
        }
        headers
    }
}

/// Why a source request is refused as a whole. Each maps to one status at
/// the HTTP edge: unknown and unconfigured 404, signatures 401, payload 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("no source {0:?}; the sources are shopify, bigcommerce, woocommerce, sfcc and segment")]
    Unknown(String),
    #[error("the {0} source is not configured on this Cartback (it has no secret)")]
    NotConfigured(Source),
    #[error("missing {0} header")]
    MissingSignature(&'static str),
    #[error("the {0} header does not match the request body")]
    BadSignature(&'static str),
    #[error("the {0} timestamp is outside the 5-minute replay window")]
    Stale(&'static str),
    /// The payload as a whole cannot be read (not JSON, no topic).
    #[error("{}: {}", .0.field, .0.message)]
    Payload(FieldError),
}

impl SourceError {
    fn payload(field: impl Into<String>, message: impl Into<String>) -> SourceError {
        SourceError::Payload(FieldError::new(field, message))
    }
}

/// One canonical event mapped from a platform's payload, or why the part
/// of the payload it stands for could not be mapped (naming the
/// platform's field). `event_id` is known whenever the id could be derived.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedEvent {
    pub event_id: Option<String>,
    pub result: Result<Value, FieldError>,
    /// What the mapping left out of a mapped event (a line it could not
    /// read), naming the platform's field.
    pub warnings: Vec<FieldWarning>,
    /// Set on a `return` that names its order but not its customer: ingest
    /// takes the customer and cart from the purchase Cartback stored for
    /// that order. The value is the platform's field naming the order.
    pub owner_from_order: Option<String>,
    /// Set on a refusal that may not hold for long (what it names is not at
    /// the platform's API yet): ingest answers `retry` instead while the
    /// delivery is fresh (see [`crate::service::ingest::ORDER_WAIT_MINUTES`]).
    pub not_yet: Option<NotYet>,
}

/// When a refused part occurred and why sending it again may succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotYet {
    pub occurred_at: DateTime<Utc>,
    pub reason: String,
}

impl MappedEvent {
    fn ok(event: Value) -> MappedEvent {
        let event_id = event.get("event_id").and_then(Value::as_str).map(str::to_owned);
        MappedEvent { event_id, result: Ok(event), warnings: Vec::new(), owner_from_order: None, not_yet: None }
    }

    fn refused(event_id: Option<String>, error: FieldError) -> MappedEvent {
        MappedEvent { event_id, result: Err(error), warnings: Vec::new(), owner_from_order: None, not_yet: None }
    }

    /// The event and the warnings its mapping left in `context` (taken
    /// here, so each event carries only its own).
    fn from_result(event_id: &str, result: Result<Value, FieldError>, context: &Context<'_>) -> MappedEvent {
        let warnings = context.warnings.take();
        match result {
            Ok(event) => MappedEvent { warnings, ..MappedEvent::ok(event) },
            Err(error) => MappedEvent::refused(Some(event_id.to_owned()), error),
        }
    }
}

/// Checks a request's signature with the platform's own scheme, in
/// constant time. `now` is real time (for schemes with a timestamp).
pub fn verify(
    source: Source,
    secret: &SourceSecret,
    headers: &Headers,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SourceError> {
    match source {
        Source::Shopify => verify_base64_hmac_sha256(secret, headers, shopify::SIGNATURE_HEADER, body),
        // The creation ping comes unsigned and maps to nothing: let it through.
        Source::WooCommerce if woocommerce::ping(body) => Ok(()),
        Source::WooCommerce => verify_base64_hmac_sha256(secret, headers, woocommerce::SIGNATURE_HEADER, body),
        Source::Segment => segment::verify(secret, headers, body),
        Source::BigCommerce => bigcommerce::verify(secret, headers, body, now),
        Source::Sfcc => sfcc::verify(secret, headers, body, now),
    }
}

/// Maps a verified request into canonical events. `Ok` with no events is a
/// delivery Cartback has no use for (another topic, a ping): acknowledged.
pub fn map(
    source: Source,
    headers: &Headers,
    body: &[u8],
    shop_currency: Option<&str>,
) -> Result<Vec<MappedEvent>, SourceError> {
    map_with_cart(source, headers, body, shop_currency, None)
}

/// [`map`] with the cart a thin delivery names, as the platform's API
/// returned it (see [`bigcommerce::to_fetch`]).
pub fn map_with_cart(
    source: Source,
    headers: &Headers,
    body: &[u8],
    shop_currency: Option<&str>,
    fetched_cart: Option<&FetchedCart>,
) -> Result<Vec<MappedEvent>, SourceError> {
    map_fetched(source, headers, body, shop_currency, fetched_cart.cloned().map(Fetched::Cart).as_ref())
}

/// [`map`] with what a thin delivery names, as the platform's API returned
/// it (see [`bigcommerce::to_fetch`]).
pub fn map_fetched(
    source: Source,
    headers: &Headers,
    body: &[u8],
    shop_currency: Option<&str>,
    fetched: Option<&Fetched>,
) -> Result<Vec<MappedEvent>, SourceError> {
    let context = Context { shop_currency, body_digest: body_digest(body), warnings: RefCell::default(), fetched };
    let events = match source {
        Source::Shopify => shopify::map(headers, &json_body(body)?, &context)?,
        Source::WooCommerce => match woocommerce::ping(body) {
            true => Vec::new(),
            false => woocommerce::map(headers, &json_body(body)?, &context)?,
        },
        Source::Segment => segment::map(&json_body(body)?, &context)?,
        Source::BigCommerce => bigcommerce::map(&json_body(body)?, &context)?,
        Source::Sfcc => sfcc::map(&json_body(body)?, &context)?,
    };
    if events.len() > MAX_EVENTS_PER_REQUEST {
        let message = format!("maps to {} events; the limit is {MAX_EVENTS_PER_REQUEST} per request", events.len());
        return Err(SourceError::payload("body", message));
    }
    Ok(events)
}

/// What every mapping may use besides the payload.
pub(crate) struct Context<'a> {
    shop_currency: Option<&'a str>,
    /// Hex SHA-256 of the raw body: the idempotency key of last resort,
    /// when a platform names its delivery nowhere (a retry repeats the body).
    body_digest: String,
    /// What the event being mapped left out (see [`MappedEvent::from_result`]).
    warnings: RefCell<Vec<FieldWarning>>,
    /// What a thin delivery names, fetched from the platform.
    fetched: Option<&'a Fetched>,
}

impl Context<'_> {
    fn fetched_cart(&self) -> Option<&FetchedCart> {
        match self.fetched {
            Some(Fetched::Cart(cart)) => Some(cart),
            _ => None,
        }
    }

    /// Maps a platform's lines one by one. A line that cannot be read, or
    /// that Cartback's own item rules refuse, is left out with a warning
    /// naming the platform's field: one bad line never costs the cart, its
    /// contact and its consent.
    fn lines(
        &self,
        lines: &[Value],
        path: &str,
        map_line: impl Fn(&Value, &str) -> Result<Value, FieldError>,
    ) -> Vec<Value> {
        let (items, errors) = read_lines(lines, path, map_line);
        self.left_out(errors);
        items
    }

    fn left_out(&self, errors: Vec<FieldError>) {
        let mut warnings = self.warnings.borrow_mut();
        for error in errors {
            let message = format!("{}; the line is left out, the rest is kept", error.message);
            warnings.push(FieldWarning::new(error.field, message));
        }
    }

    /// [`Context::lines`] for a full snapshot (`cart_update`), whose lines
    /// may come in several lists (`groups`: the lines and their path). No
    /// items means an emptied cart: when lines were sent and none can be
    /// read, the snapshot is refused naming the first, rather than emptying
    /// the cart.
    fn snapshot_lines(
        &self,
        groups: &[(&[Value], &str)],
        map_line: impl Fn(&Value, &str) -> Result<Value, FieldError>,
    ) -> Result<Vec<Value>, FieldError> {
        let (mut items, mut errors) = (Vec::new(), Vec::new());
        for (lines, path) in groups {
            let (read, failed) = read_lines(lines, path, &map_line);
            items.extend(read);
            errors.extend(failed);
        }
        if items.is_empty() && !errors.is_empty() {
            let first = errors.swap_remove(0);
            let message = format!("{}; no line of the cart can be read, so it is left as it was", first.message);
            return Err(FieldError::new(first.field, message));
        }
        self.left_out(errors);
        Ok(items)
    }
}

/// Each line mapped and checked against Cartback's item rules: the items,
/// and the errors of the lines that failed.
fn read_lines(
    lines: &[Value],
    path: &str,
    map_line: impl Fn(&Value, &str) -> Result<Value, FieldError>,
) -> (Vec<Value>, Vec<FieldError>) {
    let (mut items, mut errors) = (Vec::with_capacity(lines.len()), Vec::new());
    for (i, line) in lines.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let checked = map_line(line, &path).and_then(|item| match check_item(&item) {
            Ok(()) => Ok(item),
            Err(e) => Err(FieldError::new(&path, format!("maps to an item whose {} {}", e.field, e.message))),
        });
        match checked {
            Ok(item) => items.push(item),
            Err(error) => errors.push(error),
        }
    }
    (items, errors)
}

fn json_body(body: &[u8]) -> Result<Value, SourceError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| SourceError::payload("body", format!("is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(SourceError::payload("body", "must be a JSON object"));
    }
    Ok(value)
}

fn body_digest(body: &[u8]) -> String {
    hex::encode(&Sha256::digest(body)[..16])
}

/// Shopify and WooCommerce: the header is the base64 HMAC-SHA256 of the raw body.
fn verify_base64_hmac_sha256(
    secret: &SourceSecret,
    headers: &Headers,
    header: &'static str,
    body: &[u8],
) -> Result<(), SourceError> {
    let given = headers.get(header).ok_or(SourceError::MissingSignature(header))?;
    let tag = STANDARD.decode(given).map_err(|_| SourceError::BadSignature(header))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.bytes()).expect("HMAC takes any key length");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&tag).map_err(|_| SourceError::BadSignature(header))
}

/// The base64 HMAC-SHA256 of `body`: what Shopify and WooCommerce send (for tests and examples).
pub fn base64_hmac_sha256(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether a signed unix timestamp is within the replay window of `now`.
fn fresh(timestamp: &str, now: DateTime<Utc>) -> bool {
    timestamp.parse::<i64>().is_ok_and(|t| now.timestamp().abs_diff(t) <= SOURCE_REPLAY_WINDOW_SECONDS.unsigned_abs())
}

// ---- Reading platform payloads tolerantly -------------------------------

/// A JSON path inside a platform payload, as error messages name it. A
/// prefix ending in a space names where the data came from rather than a
/// field of the payload (`fetched cart: ` + `line_items…`).
fn at(prefix: &str, field: &str) -> String {
    if prefix.is_empty() || prefix.ends_with(' ') {
        format!("{prefix}{field}")
    } else {
        format!("{prefix}.{field}")
    }
}

/// An id as text: platforms send ids as strings or as numbers. Empty, zero
/// (WooCommerce's guest `customer_id`) and non-scalars are no id.
fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) if n.as_u64() != Some(0) => Some(n.to_string()),
        _ => None,
    }
}

/// A non-empty string field.
fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A line's chosen options as an event carries them: shops allow longer
/// titles than [`MAX_VARIANT_CHARS`], and a long variant must not cost the
/// whole order, so it is cut on a character with an ellipsis.
fn variant(text: Option<String>) -> Option<String> {
    let text = text?;
    if text.chars().count() <= MAX_VARIANT_CHARS {
        return Some(text);
    }
    let cut: String = text.chars().take(MAX_VARIANT_CHARS - 1).collect();
    Some(format!("{}…", cut.trim_end()))
}

/// A money amount written as a JSON number or a string (`"29.00"`), as
/// Cartback's decimal text. Absent, null and empty are no amount.
fn money(value: Option<&Value>, path: &str) -> Result<Option<String>, FieldError> {
    Ok(decimal(value, path)?.map(|amount| amount.normalize().to_string()))
}

/// [`money`] as a number, for sums.
fn decimal(value: Option<&Value>, path: &str) -> Result<Option<Decimal>, FieldError> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(FieldError::new(path, "must be an amount, as a number or a string such as \"19.99\"")),
    };
    let amount = Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| FieldError::new(path, "is not an amount (expected e.g. 19.99)"))?;
    if amount.is_sign_negative() {
        return Err(FieldError::new(path, "must not be negative"));
    }
    Ok(Some(amount))
}

/// A quantity written as a number or a numeric string; absent is 1.
fn quantity(value: Option<&Value>, path: &str) -> Result<u64, FieldError> {
    let parsed = match value {
        None | Some(Value::Null) => return Ok(1),
        Some(Value::Number(n)) => {
            n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64))
        }
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match parsed {
        Some(q) if (1..=10_000).contains(&q) => Ok(q),
        _ => Err(FieldError::new(path, "must be a whole number from 1 to 10000")),
    }
}

/// A time as platforms write it: RFC 3339 (any offset), a zone-less ISO
/// time in UTC (WooCommerce's `*_gmt`), RFC 2822 or unix seconds (BigCommerce).
fn time(value: Option<&Value>, path: &str) -> Result<Option<String>, FieldError> {
    let parsed = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok().map(|t| t.and_utc()))
                .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok().map(|t| t.and_utc()))
                // BigCommerce's v2 API (`Tue, 20 Nov 2012 00:00:00 +0000`).
                .or_else(|| DateTime::parse_from_rfc2822(s).ok().map(|t| t.with_timezone(&Utc)))
        }
        Some(Value::Number(n)) => n.as_i64().and_then(|t| Utc.timestamp_opt(t, 0).single()),
        Some(_) => None,
    };
    parsed
        .map(|t| Some(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .ok_or_else(|| FieldError::new(path, "is not a time (expected RFC 3339, e.g. 2026-11-23T10:00:00Z)"))
}

/// A currency code in any case (`usd`); Cartback stores it in capitals.
fn currency(value: Option<&Value>, path: &str) -> Result<Option<String>, FieldError> {
    match text(value) {
        None => Ok(None),
        Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(Some(code.to_ascii_uppercase()))
        }
        Some(_) => Err(FieldError::new(path, "must be an ISO 4217 code, e.g. EUR")),
    }
}

/// The device class a browser's user agent names (platforms that send no
/// device send the user agent). Tablets first: an iPad or an Android
/// tablet's agent has no "Mobile".
pub fn device_from_user_agent(user_agent: &str) -> &'static str {
    let ua = user_agent.to_ascii_lowercase();
    if ua.contains("ipad") || ua.contains("tablet") || (ua.contains("android") && !ua.contains("mobile")) {
        "tablet"
    } else if ua.contains("mobi") || ua.contains("iphone") || ua.contains("ipod") || ua.contains("android") {
        "mobile"
    } else {
        "desktop"
    }
}

/// A canonical event under construction: fields are set only when known.
struct Canonical(Map<String, Value>);

impl Canonical {
    fn new(event_id: &str, kind: &str) -> Canonical {
        let mut map = Map::new();
        map.insert("event_id".into(), Value::String(event_id.to_owned()));
        map.insert("type".into(), Value::String(kind.to_owned()));
        Canonical(map)
    }

    fn set(&mut self, field: &str, value: Option<impl Into<Value>>) -> &mut Self {
        if let Some(value) = value {
            self.0.insert(field.to_owned(), value.into());
        }
        self
    }

    fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// A customer fragment: only known fields, and nothing when none is.
#[derive(Default)]
struct Contact {
    email: Option<String>,
    phone: Option<String>,
    first_name: Option<String>,
    locale: Option<String>,
    timezone: Option<String>,
    email_consent: Option<bool>,
}

impl Contact {
    fn into_value(self) -> Option<Value> {
        let mut map = Map::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                map.insert(k.to_owned(), Value::String(v));
            }
        };
        put("email", self.email);
        put("phone", self.phone);
        put("first_name", self.first_name);
        put("locale", self.locale);
        put("timezone", self.timezone);
        if let Some(consent) = self.email_consent {
            map.insert("consents".into(), serde_json::json!({ "email": consent }));
        }
        (!map.is_empty()).then_some(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn given_each_source_name_when_parsed_then_it_round_trips_and_names_its_secret_variable() {
        for source in Source::ALL {
            assert_eq!(Source::parse(source.as_str()), Some(source));
        }
        assert_eq!(Source::Shopify.secret_env(), "CARTBACK_SOURCE_SECRET_SHOPIFY");
        assert_eq!(Source::parse("magento"), None);
    }

    #[test]
    fn given_amounts_as_platforms_write_them_when_read_then_they_are_exact_decimals_or_the_field_is_named() {
        assert_eq!(money(Some(&json!("29.00")), "p"), Ok(Some("29".into())));
        assert_eq!(money(Some(&json!(19.99)), "p"), Ok(Some("19.99".into())));
        assert_eq!(money(Some(&json!("")), "p"), Ok(None));
        assert_eq!(money(Some(&json!("abc")), "line_items[0].price").unwrap_err().field, "line_items[0].price");
        assert_eq!(money(Some(&json!("-1")), "p").unwrap_err().field, "p");
    }

    #[test]
    fn given_times_in_each_platform_style_when_read_then_they_are_utc_rfc3339() {
        let utc = Some("2026-11-23T15:00:00Z".to_owned());
        assert_eq!(time(Some(&json!("2026-11-23T10:00:00-05:00")), "t"), Ok(utc.clone()));
        assert_eq!(time(Some(&json!("2026-11-23T15:00:00")), "t"), Ok(utc.clone()));
        assert_eq!(time(Some(&json!(1_795_446_000)), "t"), Ok(utc.clone()));
        assert_eq!(time(Some(&json!("Mon, 23 Nov 2026 15:00:00 +0000")), "t"), Ok(utc));
        assert_eq!(time(Some(&json!("yesterday")), "created_at").unwrap_err().field, "created_at");
    }

    #[test]
    fn given_user_agents_when_classified_then_phones_tablets_and_desktops_are_told_apart() {
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148";
        let ipad = "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15";
        let android_phone = "Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/120.0 Mobile Safari/537.36";
        let android_tablet = "Mozilla/5.0 (Linux; Android 14; SM-X710) Chrome/120.0 Safari/537.36";
        let mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15";
        assert_eq!(device_from_user_agent(iphone), "mobile");
        assert_eq!(device_from_user_agent(ipad), "tablet");
        assert_eq!(device_from_user_agent(android_phone), "mobile");
        assert_eq!(device_from_user_agent(android_tablet), "tablet");
        assert_eq!(device_from_user_agent(mac), "desktop");
    }

    #[test]
    fn given_source_variables_when_read_then_each_configured_source_has_its_secret_and_errors_name_the_variable() {
        let env = |name: &str| match name {
            "CARTBACK_SOURCE_SECRET_SHOPIFY" => Some("shpss_0123456789abcdef".to_owned()),
            "CARTBACK_SHOP_CURRENCY" => Some("EUR".to_owned()),
            _ => None,
        };
        let settings = SourceSettings::from_lookup(env).unwrap();
        assert_eq!(settings.configured(), [Source::Shopify]);
        assert_eq!(settings.shop_currency.as_deref(), Some("EUR"));
        let weak = |name: &str| (name == "CARTBACK_SOURCE_SECRET_SEGMENT").then(|| "short".to_owned());
        assert!(SourceSettings::from_lookup(weak).unwrap_err().starts_with("CARTBACK_SOURCE_SECRET_SEGMENT"));
        let euro = |name: &str| (name == "CARTBACK_SHOP_CURRENCY").then(|| "euro".to_owned());
        assert!(SourceSettings::from_lookup(euro).unwrap_err().starts_with("CARTBACK_SHOP_CURRENCY"));
    }

    #[test]
    fn given_a_short_secret_when_configured_then_it_is_refused() {
        assert!(SourceSecret::new("short").is_err());
        assert!(SourceSecret::new("a-long-enough-webhook-secret").is_ok());
        assert_eq!(format!("{:?}", SourceSecret::new("a-long-enough-webhook-secret").unwrap()), "SourceSecret(***)");
    }

    #[test]
    fn given_headers_in_any_case_when_read_then_names_are_case_insensitive() {
        let headers: Headers = [("X-Shopify-Topic", "orders/create")].into_iter().collect();
        assert_eq!(headers.get("x-shopify-topic"), Some("orders/create"));
    }
}
