//! Storefront events: the wire schema (GA4 e-commerce naming) and its
//! parsing. A request's events are read into raw structs ([`RawEvent`]),
//! whose fields keep the JSON as sent, and converted with `TryFrom` into the
//! domain types, so that every rejection names the exact field and why.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::consent::{ConsentSource, CustomerAnswer, LegalBasis};
use crate::contact::{
    DeviceToken, DeviceTokenError, Email, EmailError, Phone, PhoneError, WebPushError, WebPushSubscription,
};
use crate::enum_names;
use crate::ids::{CartId, CustomerId, EventId};

pub const MAX_EVENTS_PER_REQUEST: usize = 500;
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How far ahead of Cartback's clock an `occurred_at` may be (clock skew).
pub const MAX_FUTURE_SKEW_SECONDS: i64 = 300;
const MAX_ID_LEN: usize = 128;
/// The longest `items[].variant` (`Blue / M`) an event may carry, in characters.
pub const MAX_VARIANT_CHARS: usize = 200;
const MAX_ITEMS: usize = 200;
/// Deepest JSON nesting an event may have, the event object being level 1.
/// DynamoDB refuses items nested deeper than 32 levels, and a cart item
/// holds its events two levels down: 10 is far from both.
pub const MAX_EVENT_DEPTH: usize = 10;
/// Largest one event may be once stored (its JSON form). Only `items` can
/// make an event this large; the bound leaves room for a few such events
/// in one cart item (DynamoDB: 400 KB).
pub const MAX_EVENT_BYTES: usize = 96 * 1024;
const MAX_COUPON_CHARS: usize = 100;
const MAX_PUSH_TOKENS: usize = 10;
/// APNs tokens are 64 hex digits today and FCM tokens about 160 characters.
const MAX_PUSH_TOKEN_CHARS: usize = 1024;
const MAX_ENDPOINT_CHARS: usize = 2048;
/// Both keys are well under this in base64url (87 and 22 characters).
const MAX_WEB_PUSH_KEY_CHARS: usize = 128;
/// The whole `PushSubscription` JSON as sent.
const MAX_WEB_PUSH_BYTES: usize = 4096;
/// DynamoDB numbers: 38 significant digits, magnitudes from 1E-130 to below 1E+126.
const DYNAMODB_MAX_DIGITS: usize = 38;
const DYNAMODB_EXPONENTS: std::ops::RangeInclusive<i64> = -130..=125;
/// Largest price or order value accepted: keeps every total far from
/// decimal overflow (200 items x 10,000 units x this still fits).
const MAX_AMOUNT: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    ViewItem,
    AddToCart,
    RemoveFromCart,
    CartUpdate,
    BeginCheckout,
    Purchase,
    Identify,
    Return,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::ViewItem,
        EventType::AddToCart,
        EventType::RemoveFromCart,
        EventType::CartUpdate,
        EventType::BeginCheckout,
        EventType::Purchase,
        EventType::Identify,
        EventType::Return,
    ];

    pub fn as_str(self) -> &'static str {
        enum_names::name_of(&self)
    }

    fn parse(s: &str) -> Option<Self> {
        enum_names::from_name(s)
    }

    /// Events that change what is in the cart and so count as cart activity.
    pub fn is_cart_activity(self) -> bool {
        matches!(
            self,
            EventType::AddToCart | EventType::RemoveFromCart | EventType::CartUpdate | EventType::BeginCheckout
        )
    }

    fn requires_cart(self) -> bool {
        self.is_cart_activity()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    Mobile,
    Desktop,
    Tablet,
}

impl Device {
    fn parse(s: &str) -> Option<Self> {
        enum_names::from_name(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub item_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_name: Option<String>,
    /// The chosen option of the product, as the shop words it (`Blue / M`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    pub quantity: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_push: Option<bool>,
    /// Where the change came from; `None` for a storefront event (the
    /// public event format has no such field: only Cartback's own synthetic
    /// events, e.g. from the unsubscribe link, set it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ConsentSource>,
    /// The legal basis of the consents given in this patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<LegalBasis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushPlatform {
    Apns,
    Fcm,
}

/// A device's push token; its `Debug` shows the platform, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushToken {
    pub platform: PushPlatform,
    pub token: DeviceToken,
}

/// A customer profile fragment carried by an event. Absent fields leave the
/// stored profile as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consents: Option<ConsentPatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_tokens: Option<Vec<PushToken>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_push_subscription: Option<WebPushSubscription>,
    /// No cart reminders until then (the preference page's snooze; internal,
    /// not part of the public event format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snoozed_until: Option<DateTime<Utc>>,
}

/// A validated storefront event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: EventId,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cart_id: Option<CartId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerPatch>,
    /// The customer's answer about this cart on the preference page
    /// (internal, not part of the public event format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<CustomerAnswer>,
}

impl Event {
    /// An `identify` event Cartback makes itself (a consent withdrawal, a
    /// preference-page choice): no cart activity, no items, no order. Set
    /// the fields it carries with struct update syntax.
    pub fn identify(event_id: EventId, occurred_at: DateTime<Utc>) -> Event {
        Event {
            event_id,
            kind: EventType::Identify,
            occurred_at,
            cart_id: None,
            customer_id: None,
            device: None,
            currency: None,
            items: Vec::new(),
            order_id: None,
            value: None,
            coupon: None,
            customer: None,
            answer: None,
        }
    }
}

/// Why one event was rejected: the JSON path of the field and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// A contact value its channel cannot use, or a source's line that cannot be
/// read: left out of what is stored, while the event itself is kept. Same
/// shape as [`FieldError`]; never quotes the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldWarning {
    pub field: String,
    pub message: String,
}

impl FieldWarning {
    pub(crate) fn new(field: impl Into<String>, message: impl ToString) -> Self {
        Self { field: field.into(), message: message.to_string() }
    }
}

/// A value parsed from outside, with what was left out of it and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<T> {
    pub value: T,
    pub warnings: Vec<FieldWarning>,
}

/// Why a whole request body was refused before looking at its events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body is {0} bytes; the limit is {MAX_BODY_BYTES} bytes")]
    TooLarge(usize),
    #[error("request holds {0} events; the limit is {MAX_EVENTS_PER_REQUEST} per request")]
    TooManyEvents(usize),
    #[error("request body is not valid JSON: {0}")]
    NotJson(String),
    #[error("request body must be an event object or {{\"events\": [...]}}")]
    WrongShape,
}

/// One element of a request's `events` array, as received: either a valid
/// event or the reason it is not. `event_id` is kept when it was readable so
/// that the answer can name it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub event_id: Option<String>,
    pub result: Result<Event, FieldError>,
    /// Contact values left out of a valid event (empty when it was refused).
    pub warnings: Vec<FieldWarning>,
}

/// Splits a request body into its events without letting one bad event
/// affect the others.
pub fn parse_body(body: &[u8], received_at: DateTime<Utc>) -> Result<Vec<Parsed>, BodyError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge(body.len()));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
    let raw_events = match value {
        Value::Object(mut map) if map.contains_key("events") => match map.remove("events") {
            Some(Value::Array(events)) => events,
            _ => return Err(BodyError::WrongShape),
        },
        object @ Value::Object(_) => vec![object],
        _ => return Err(BodyError::WrongShape),
    };
    if raw_events.len() > MAX_EVENTS_PER_REQUEST {
        return Err(BodyError::TooManyEvents(raw_events.len()));
    }
    Ok(raw_events
        .iter()
        .map(|raw| {
            let event_id = raw.get("event_id").and_then(Value::as_str).map(str::to_owned);
            match parse_event(raw, received_at) {
                Ok(Checked { value, warnings }) => Parsed { event_id, result: Ok(value), warnings },
                Err(error) => Parsed { event_id, result: Err(error), warnings: Vec::new() },
            }
        })
        .collect())
}

/// Parses one raw event. `received_at` is Cartback's clock: the default
/// for `occurred_at` and the reference for the future-skew check.
pub fn parse_event(raw: &Value, received_at: DateTime<Utc>) -> Result<Checked<Event>, FieldError> {
    check_storable(raw)?;
    let raw = RawEvent::from_value(raw)?;
    Checked::<Event>::try_from(Received { raw, at: received_at })
}

/// [`parse_event`] for callers that need only the event (its warnings dropped).
pub fn validate_event(raw: &Value, received_at: DateTime<Utc>) -> Result<Event, FieldError> {
    parse_event(raw, received_at).map(|checked| checked.value)
}

/// Refuses, wherever it sits in the event as sent, what DynamoDB could not
/// store: nesting past [`MAX_EVENT_DEPTH`] and numbers outside its range.
/// Checked on the input, not on what is kept of it, so every runtime
/// refuses the same events whichever fields a later version stores.
fn check_storable(raw: &Value) -> Result<(), FieldError> {
    fn walk(value: &Value, depth: usize, path: &mut String) -> Result<(), FieldError> {
        let too_deep = || {
            let message = format!("nests deeper than {MAX_EVENT_DEPTH} levels of JSON, the most an event may");
            Err(FieldError::new(path.clone(), message))
        };
        match value {
            Value::Object(map) => {
                if depth > MAX_EVENT_DEPTH {
                    return too_deep();
                }
                for (key, member) in map {
                    let len = path.len();
                    if len > 0 {
                        path.push('.');
                    }
                    path.push_str(key);
                    walk(member, depth + 1, path)?;
                    path.truncate(len);
                }
            }
            Value::Array(list) => {
                if depth > MAX_EVENT_DEPTH {
                    return too_deep();
                }
                for (index, member) in list.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{index}]"));
                    walk(member, depth + 1, path)?;
                    path.truncate(len);
                }
            }
            Value::Number(n) if !within_dynamodb_range(&n.to_string()) => {
                let message = "is a number outside what can be stored (38 significant digits, 1E-130 to 9.9E+125)";
                return Err(FieldError::new(path.clone(), message));
            }
            _ => {}
        }
        Ok(())
    }
    walk(raw, 1, &mut String::new())
}

/// Whether a JSON number's text fits DynamoDB's number type.
fn within_dynamodb_range(text: &str) -> bool {
    let unsigned = text.trim_start_matches('-');
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i64>().ok()),
        None => (unsigned, Some(0)),
    };
    let Some(exponent) = exponent else { return false };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    let leading_zeros = digits.len() - significant.len();
    let significant = significant.trim_end_matches('0');
    if significant.is_empty() {
        return true;
    }
    // The power of ten of the first significant digit.
    let magnitude = whole.len() as i64 - 1 - leading_zeros as i64 + exponent;
    significant.len() <= DYNAMODB_MAX_DIGITS && DYNAMODB_EXPONENTS.contains(&magnitude)
}

/// An event as it arrives: every field kept as sent, so that the conversion
/// to [`Event`] can say which field is wrong and why (a derived typed
/// deserialisation would stop at the first mismatch with serde's wording).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawEvent {
    event_id: Value,
    #[serde(rename = "type")]
    kind: Value,
    occurred_at: Value,
    cart_id: Value,
    customer_id: Value,
    device: Value,
    currency: Value,
    items: Value,
    order_id: Value,
    value: Value,
    coupon: Value,
    customer: Value,
}

/// One element of an event's `items`, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawItem {
    item_id: Value,
    item_name: Value,
    variant: Value,
    price: Value,
    quantity: Value,
    image_url: Value,
    url: Value,
}

/// An event's `customer` object, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCustomer {
    email: Value,
    phone: Value,
    first_name: Value,
    locale: Value,
    timezone: Value,
    consents: Value,
    push_tokens: Value,
    web_push_subscription: Value,
}

/// Reads a JSON object into a raw struct. Only objects: serde would also
/// read a struct from an array, which no sender means.
fn raw_object<T: serde::de::DeserializeOwned>(raw: &Value, field: &str, message: &str) -> Result<T, FieldError> {
    if !raw.is_object() {
        return Err(FieldError::new(field, message));
    }
    serde_json::from_value(raw.clone()).map_err(|_| FieldError::new(field, message))
}

impl RawEvent {
    pub fn from_value(raw: &Value) -> Result<RawEvent, FieldError> {
        raw_object(raw, "", "each event must be a JSON object")
    }
}

/// A raw event with the time Cartback received it.
pub struct Received<T> {
    pub raw: T,
    pub at: DateTime<Utc>,
}

impl TryFrom<Received<RawEvent>> for Checked<Event> {
    type Error = FieldError;

    fn try_from(Received { raw, at: received_at }: Received<RawEvent>) -> Result<Checked<Event>, FieldError> {
        let event_id: EventId = required_id(&raw.event_id, "event_id")?;
        let kind_text = required_str(&raw.kind, "type")?;
        let kind = EventType::parse(kind_text).ok_or_else(|| {
            FieldError::new(
                "type",
                format!(
                    "unknown event type {kind_text:?}; expected one of {}",
                    EventType::ALL.map(EventType::as_str).join(", ")
                ),
            )
        })?;
        let occurred_at = optional_time(&raw.occurred_at, "occurred_at", received_at)?;
        let cart_id: Option<CartId> = optional_id(&raw.cart_id, "cart_id")?;
        let customer_id: Option<CustomerId> = optional_id(&raw.customer_id, "customer_id")?;
        if kind.requires_cart() && cart_id.is_none() {
            return Err(FieldError::new("cart_id", format!("is required for {} events", kind.as_str())));
        }
        if matches!(kind, EventType::Identify | EventType::Return) && customer_id.is_none() {
            return Err(FieldError::new("customer_id", format!("is required for {} events", kind.as_str())));
        }
        if kind == EventType::Purchase && cart_id.is_none() && customer_id.is_none() {
            return Err(FieldError::new("cart_id", "a purchase needs a cart_id or a customer_id"));
        }
        let device = match optional_str(&raw.device, "device")? {
            None => None,
            Some(s) => Some(
                Device::parse(s).ok_or_else(|| FieldError::new("device", "must be one of mobile, desktop, tablet"))?,
            ),
        };
        let currency = match optional_str(&raw.currency, "currency")? {
            None => None,
            Some(s) if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) => Some(s.to_owned()),
            Some(_) => {
                return Err(FieldError::new("currency", "must be an ISO 4217 code of three capital letters, e.g. EUR"))
            }
        };
        let items = match &raw.items {
            Value::Null => Vec::new(),
            Value::Array(list) => {
                if list.len() > MAX_ITEMS {
                    let message = format!("holds {} items; the limit is {MAX_ITEMS}", list.len());
                    return Err(FieldError::new("items", message));
                }
                list.iter().enumerate().map(|(i, v)| item(v, i)).collect::<Result<Vec<_>, _>>()?
            }
            _ => return Err(FieldError::new("items", "must be an array")),
        };
        if matches!(kind, EventType::AddToCart | EventType::RemoveFromCart | EventType::ViewItem) && items.is_empty() {
            return Err(FieldError::new("items", format!("{} events need at least one item", kind.as_str())));
        }
        let order_id: Option<String> = optional_id(&raw.order_id, "order_id")?;
        if kind == EventType::Purchase && order_id.is_none() {
            return Err(FieldError::new("order_id", "is required for purchase events"));
        }
        let value = optional_decimal(Some(&raw.value), "value")?;
        if value.is_some() && currency.is_none() {
            return Err(FieldError::new("currency", "is required when value is given"));
        }
        // An amount-only refund (shipping, goodwill) lists no product: its
        // value is what the return fact needs.
        if kind == EventType::Return && items.is_empty() && value.is_none() {
            return Err(FieldError::new("items", "return events need at least one item, or a value and currency"));
        }
        if items.iter().any(|i| i.price.is_some()) && currency.is_none() {
            return Err(FieldError::new("currency", "is required when items carry prices"));
        }
        let coupon = optional_str(&raw.coupon, "coupon")?.map(str::to_owned);
        if coupon.as_ref().is_some_and(|c| c.chars().count() > MAX_COUPON_CHARS) {
            return Err(FieldError::new("coupon", format!("is longer than {MAX_COUPON_CHARS} characters")));
        }
        let (customer, warnings) = match &raw.customer {
            Value::Null => (None, Vec::new()),
            v => {
                let raw = raw_object::<RawCustomer>(v, "customer", "must be an object")?;
                let Checked { value, warnings } = Checked::<CustomerPatch>::try_from(raw)?;
                (Some(value), warnings)
            }
        };
        let event = Event {
            event_id,
            kind,
            occurred_at,
            cart_id,
            customer_id,
            device,
            currency,
            items,
            order_id,
            value,
            coupon,
            customer,
            answer: None,
        };
        let stored = serde_json::to_vec(&event).map_or(usize::MAX, |json| json.len());
        if stored > MAX_EVENT_BYTES {
            // Every other field is bounded far below this: the items make it.
            let message = format!(
                "make the event {} KB once stored; one event may be at most {} KB: send fewer items or shorter URLs",
                stored / 1024,
                MAX_EVENT_BYTES / 1024
            );
            return Err(FieldError::new("items", message));
        }
        Ok(Checked { value: event, warnings })
    }
}

/// Whether one item, alone, passes the rules of an event's `items` (a
/// source maps lines one by one); the error names the item's own field.
pub(crate) fn check_item(raw: &Value) -> Result<(), FieldError> {
    item(raw, 0).map(|_| ()).map_err(|e| FieldError::new(e.field.trim_start_matches("items[0].").to_owned(), e.message))
}

fn item(raw: &Value, index: usize) -> Result<Item, FieldError> {
    let raw: RawItem = raw_object(raw, &format!("items[{index}]"), "must be an object")?;
    Item::try_from((raw, index))
}

impl TryFrom<(RawItem, usize)> for Item {
    type Error = FieldError;

    /// The item at `index` of its event's `items`, which names its fields.
    fn try_from((raw, index): (RawItem, usize)) -> Result<Item, FieldError> {
        let path = |f: &str| format!("items[{index}].{f}");
        let item_id = match &raw.item_id {
            Value::String(s) if !s.trim().is_empty() && s.len() <= MAX_ID_LEN => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::String(_) => return Err(FieldError::new(path("item_id"), "must be 1 to 128 characters")),
            Value::Null => return Err(FieldError::new(path("item_id"), "is required")),
            _ => return Err(FieldError::new(path("item_id"), "must be a string")),
        };
        let item_name = text_field(&raw.item_name, &path("item_name"), 500)?;
        let variant = text_field(&raw.variant, &path("variant"), MAX_VARIANT_CHARS)?;
        let price = optional_decimal(Some(&raw.price), &path("price"))?;
        let quantity = match &raw.quantity {
            Value::Null => 1,
            // A whole number written as `2.0` or `1e2` is an integer to JSON Schema (and the API document) too.
            Value::Number(n) => match n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && (1.0..=10_000.0).contains(f)).map(|f| f as u64))
            {
                Some(q) if (1..=10_000).contains(&q) => q as u32,
                _ => return Err(FieldError::new(path("quantity"), "must be a whole number from 1 to 10000")),
            },
            _ => return Err(FieldError::new(path("quantity"), "must be a whole number from 1 to 10000")),
        };
        let image_url = url_field(&raw.image_url, &path("image_url"))?;
        let url = url_field(&raw.url, &path("url"))?;
        Ok(Item { item_id, item_name, variant, price, quantity, image_url, url })
    }
}

impl TryFrom<RawCustomer> for Checked<CustomerPatch> {
    type Error = FieldError;

    /// Bounds (lengths, counts, sizes) and wrong types refuse the event, as
    /// a sender's bug does. A contact value of the right type that its
    /// channel cannot use (a mistyped phone number, a stale token) is left
    /// out with a warning: that channel is unreachable, the cart is kept.
    fn try_from(raw: RawCustomer) -> Result<Checked<CustomerPatch>, FieldError> {
        let mut warnings = Vec::new();
        let email = text_field(&raw.email, "customer.email", 254)?
            .and_then(|e| usable(Email::parse(&e), "customer.email", &mut warnings));
        let phone = text_field(&raw.phone, "customer.phone", 32)?
            .and_then(|p| usable(Phone::parse(&p), "customer.phone", &mut warnings));
        let first_name = text_field(&raw.first_name, "customer.first_name", 100)?;
        let locale = text_field(&raw.locale, "customer.locale", 35)?;
        let timezone = match text_field(&raw.timezone, "customer.timezone", 64)? {
            None => None,
            Some(tz) => {
                if tz.parse::<chrono_tz::Tz>().is_err() {
                    let message = "must be an IANA time zone name, e.g. Europe/Paris";
                    return Err(FieldError::new("customer.timezone", message));
                }
                Some(tz)
            }
        };
        let consents = match &raw.consents {
            Value::Null => None,
            Value::Object(c) => {
                let flag = |name: &str| -> Result<Option<bool>, FieldError> {
                    match c.get(name) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::Bool(b)) => Ok(Some(*b)),
                        Some(_) => Err(FieldError::new(format!("customer.consents.{name}"), "must be true or false")),
                    }
                };
                let basis = match c.get("basis") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(text)) => Some(enum_names::from_name::<LegalBasis>(text).ok_or_else(|| {
                        FieldError::new("customer.consents.basis", "must be \"consent\" or \"soft_opt_in\"")
                    })?),
                    Some(_) => {
                        return Err(FieldError::new(
                            "customer.consents.basis",
                            "must be \"consent\" or \"soft_opt_in\"",
                        ))
                    }
                };
                Some(ConsentPatch {
                    email: flag("email")?,
                    sms: flag("sms")?,
                    push: flag("push")?,
                    web_push: flag("web_push")?,
                    source: None,
                    basis,
                })
            }
            _ => return Err(FieldError::new("customer.consents", "must be an object")),
        };
        let push_tokens = match &raw.push_tokens {
            Value::Null => None,
            Value::Array(list) if list.len() > MAX_PUSH_TOKENS => {
                let message = format!("holds {} tokens; the limit is {MAX_PUSH_TOKENS}", list.len());
                return Err(FieldError::new("customer.push_tokens", message));
            }
            Value::Array(list) => {
                let mut tokens = Vec::with_capacity(list.len());
                for (index, raw) in list.iter().enumerate() {
                    tokens.extend(push_token(index, raw, &mut warnings)?);
                }
                // Only unusable tokens: as if none were sent (an empty list clears them).
                (list.is_empty() || !tokens.is_empty()).then_some(tokens)
            }
            _ => return Err(FieldError::new("customer.push_tokens", "must be an array")),
        };
        let web_push_subscription = match &raw.web_push_subscription {
            Value::Null => None,
            sub => {
                check_web_push_bounds(sub)?;
                usable(WebPushSubscription::parse(sub), "customer.web_push_subscription", &mut warnings)
            }
        };
        let value = CustomerPatch {
            email,
            phone,
            first_name,
            locale,
            timezone,
            consents,
            push_tokens,
            web_push_subscription,
            snoozed_until: None,
        };
        Ok(Checked { value, warnings })
    }
}

/// A contact value its channel can use, or `None` and a warning naming
/// `field` (and the part of it at fault, for a web push subscription).
fn usable<T, E: ContactFault>(parsed: Result<T, E>, field: &str, warnings: &mut Vec<FieldWarning>) -> Option<T> {
    parsed
        .map_err(|error| {
            let part = error.part();
            let field = if part.is_empty() { field.to_owned() } else { format!("{field}.{part}") };
            warnings.push(FieldWarning::new(field, error));
        })
        .ok()
}

/// A contact parse error, and the part of its value it names.
trait ContactFault: std::fmt::Display {
    fn part(&self) -> &'static str {
        ""
    }
}

impl ContactFault for EmailError {}
impl ContactFault for PhoneError {}
impl ContactFault for DeviceTokenError {}
impl ContactFault for WebPushError {
    fn part(&self) -> &'static str {
        WebPushError::part(*self)
    }
}

/// The size bounds of a web push subscription as sent; its shape is the
/// channel's business ([`WebPushSubscription::parse`]).
fn check_web_push_bounds(sub: &Value) -> Result<(), FieldError> {
    let field = "customer.web_push_subscription";
    let too_long = |part: &str, max: usize| {
        let text = sub.pointer(part).and_then(Value::as_str);
        text.is_some_and(|t| t.chars().count() > max).then(|| {
            let path = format!("{field}{}", part.replace('/', "."));
            FieldError::new(path, format!("is longer than {max} characters"))
        })
    };
    if let Some(error) = too_long("/endpoint", MAX_ENDPOINT_CHARS)
        .or_else(|| too_long("/keys/p256dh", MAX_WEB_PUSH_KEY_CHARS))
        .or_else(|| too_long("/keys/auth", MAX_WEB_PUSH_KEY_CHARS))
    {
        return Err(error);
    }
    let bytes = serde_json::to_vec(sub).map_or(usize::MAX, |json| json.len());
    if bytes > MAX_WEB_PUSH_BYTES {
        let message = format!("is {bytes} bytes of JSON; a PushSubscription is at most {MAX_WEB_PUSH_BYTES}");
        return Err(FieldError::new(field, message));
    }
    Ok(())
}

/// The token at `index` of `customer.push_tokens`: `None` (and a warning)
/// when its platform or form is unusable; an error when it is too long.
fn push_token(index: usize, raw: &Value, warnings: &mut Vec<FieldWarning>) -> Result<Option<PushToken>, FieldError> {
    let field = |f: &str| format!("customer.push_tokens[{index}].{f}");
    let token = raw.get("token").and_then(Value::as_str);
    if token.is_some_and(|t| t.chars().count() > MAX_PUSH_TOKEN_CHARS) {
        return Err(FieldError::new(field("token"), format!("is longer than {MAX_PUSH_TOKEN_CHARS} characters")));
    }
    let platform = match raw.get("platform").and_then(Value::as_str) {
        Some("apns") => PushPlatform::Apns,
        Some("fcm") => PushPlatform::Fcm,
        _ => {
            warnings.push(FieldWarning::new(field("platform"), "must be apns or fcm"));
            return Ok(None);
        }
    };
    let parsed = DeviceToken::parse(platform, token.unwrap_or_default());
    Ok(usable(parsed, &field("token"), warnings).map(|token| PushToken { platform, token }))
}

/// An optional RFC 3339 time, `received_at` when absent; at most
/// [`MAX_FUTURE_SKEW_SECONDS`] ahead of it.
pub(crate) fn optional_time(raw: &Value, field: &str, received_at: DateTime<Utc>) -> Result<DateTime<Utc>, FieldError> {
    match raw {
        Value::Null => Ok(received_at),
        Value::String(s) => {
            let t = DateTime::parse_from_rfc3339(s)
                .map_err(|_| FieldError::new(field, "must be an RFC 3339 timestamp, e.g. 2026-11-23T10:00:00Z"))?
                .with_timezone(&Utc);
            if t > received_at + Duration::seconds(MAX_FUTURE_SKEW_SECONDS) {
                return Err(FieldError::new(field, "is more than 5 minutes ahead of Cartback's clock"));
            }
            Ok(t)
        }
        _ => Err(FieldError::new(field, "must be a string (RFC 3339)")),
    }
}

pub(crate) fn required_str<'a>(raw: &'a Value, field: &str) -> Result<&'a str, FieldError> {
    match raw {
        Value::String(s) => Ok(s),
        Value::Null => Err(FieldError::new(field, "is required")),
        _ => Err(FieldError::new(field, "must be a string")),
    }
}

pub(crate) fn optional_str<'a>(raw: &'a Value, field: &str) -> Result<Option<&'a str>, FieldError> {
    match raw {
        Value::String(s) => Ok(Some(s)),
        Value::Null => Ok(None),
        _ => Err(FieldError::new(field, "must be a string")),
    }
}

pub(crate) fn check_id<T: From<String>>(field: &str, s: &str) -> Result<T, FieldError> {
    crate::ids::parse_id(s).map_err(|e| FieldError::new(field, e.to_string()))
}

fn required_id<T: From<String>>(raw: &Value, field: &str) -> Result<T, FieldError> {
    check_id(field, required_str(raw, field)?)
}

fn optional_id<T: From<String>>(raw: &Value, field: &str) -> Result<Option<T>, FieldError> {
    optional_str(raw, field)?.map(|s| check_id(field, s)).transpose()
}

fn text_field(raw: &Value, path: &str, max: usize) -> Result<Option<String>, FieldError> {
    match raw {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() <= max => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
        Value::String(_) => Err(FieldError::new(path, format!("is longer than {max} characters"))),
        _ => Err(FieldError::new(path, "must be a string")),
    }
}

fn url_field(raw: &Value, path: &str) -> Result<Option<String>, FieldError> {
    let url = text_field(raw, path, 2048)?;
    match url {
        Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) || u.contains(char::is_whitespace) => {
            Err(FieldError::new(path, "must be an absolute http(s) URL"))
        }
        other => Ok(other),
    }
}

pub(crate) fn optional_decimal(raw: Option<&Value>, path: &str) -> Result<Option<Decimal>, FieldError> {
    let text = match raw {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(FieldError::new(path, "must be a decimal number, as a string or a number")),
    };
    let value = Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| FieldError::new(path, format!("{text:?} is not a decimal number")))?;
    if value.is_sign_negative() {
        return Err(FieldError::new(path, "must not be negative"));
    }
    if value.scale() > 4 {
        return Err(FieldError::new(path, "has more than 4 decimal places"));
    }
    if value > Decimal::from(MAX_AMOUNT) {
        return Err(FieldError::new(path, format!("is larger than {MAX_AMOUNT}")));
    }
    Ok(Some(value.normalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-23T12:00:00Z".parse().unwrap()
    }

    /// A real browser subscription's keys (65-byte P-256 point, 16-byte secret).
    const P256DH: &str = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
    const AUTH: &str = "tBHItJI5svbpez7KI4CCXg";

    fn add_to_cart() -> Value {
        json!({
            "event_id": "e1", "type": "add_to_cart", "cart_id": "c1", "currency": "EUR", "device": "mobile",
            "occurred_at": "2026-11-23T11:59:00Z",
            "items": [{"item_id": "sku-1", "item_name": "Mug", "price": "12.50", "quantity": 2, "image_url": "https://cdn.example/mug.jpg"}]
        })
    }

    #[test]
    fn given_a_complete_add_to_cart_when_validated_then_every_field_is_kept() {
        let e = validate_event(&add_to_cart(), now()).unwrap();
        assert_eq!(e.kind, EventType::AddToCart);
        assert_eq!(e.items[0].price, Some(Decimal::new(125, 1)));
        assert_eq!(e.items[0].quantity, 2);
        assert_eq!(e.occurred_at, "2026-11-23T11:59:00Z".parse::<DateTime<Utc>>().unwrap());
    }

    /// GIVEN an item with a variant ("Blue / M"), one with a variant of 201 characters, one of a number
    /// WHEN validated, and the cart it builds stored as JSON (SQLite and DynamoDB keep carts so) and read back
    /// THEN the variant is kept through the round trip; the bad ones are refused naming `items[0].variant`.
    #[test]
    fn given_an_item_with_a_variant_when_validated_and_stored_then_it_is_kept_and_bad_ones_named() {
        let mut raw = add_to_cart();
        raw["items"][0]["variant"] = json!(" Blue / M ");
        let e = validate_event(&raw, now()).unwrap();
        assert_eq!(e.items[0].variant.as_deref(), Some("Blue / M"));
        let cart = crate::cart::Cart::from_events("c1", std::slice::from_ref(&e));
        let stored = serde_json::to_string(&cart).unwrap();
        let read: crate::cart::Cart = serde_json::from_str(&stored).unwrap();
        assert_eq!(read.items[0].variant.as_deref(), Some("Blue / M"), "{stored}");
        for bad in [json!("x".repeat(201)), json!(3)] {
            raw["items"][0]["variant"] = bad;
            let error = validate_event(&raw, now()).unwrap_err();
            assert_eq!(error.field, "items[0].variant", "{error:?}");
        }
    }

    #[test]
    fn given_no_occurred_at_when_validated_then_it_defaults_to_the_receipt_time() {
        let mut raw = add_to_cart();
        raw.as_object_mut().unwrap().remove("occurred_at");
        assert_eq!(validate_event(&raw, now()).unwrap().occurred_at, now());
    }

    #[test]
    fn given_a_price_as_a_json_number_when_validated_then_it_is_an_exact_decimal() {
        let mut raw = add_to_cart();
        raw["items"][0]["price"] = json!(19.99);
        assert_eq!(validate_event(&raw, now()).unwrap().items[0].price, Some(Decimal::new(1999, 2)));
    }

    /// Found by schemathesis: the document's `"type": "integer"` admits `2.0` and `1e2`.
    #[test]
    fn given_a_whole_quantity_written_with_a_fraction_or_exponent_when_validated_then_it_is_accepted() {
        for (written, quantity) in [(json!(2.0), 2), (serde_json::from_str::<Value>("1e2").unwrap(), 100)] {
            let mut raw = add_to_cart();
            raw["items"][0]["quantity"] = written.clone();
            assert_eq!(validate_event(&raw, now()).map(|e| e.items[0].quantity), Ok(quantity), "{written}");
        }
        let mut raw = add_to_cart();
        raw["items"][0]["quantity"] = json!(2.5);
        assert_eq!(validate_event(&raw, now()).unwrap_err().field, "items[0].quantity");
    }

    #[test]
    fn given_bad_fields_when_validated_then_the_error_names_the_field() {
        let cases = [
            ("/items/0/price", json!("abc"), "items[0].price"),
            ("/items/0/price", json!("-1"), "items[0].price"),
            ("/items/0/quantity", json!(0), "items[0].quantity"),
            ("/currency", json!("eur"), "currency"),
            ("/type", json!("teleport"), "type"),
            ("/occurred_at", json!("yesterday"), "occurred_at"),
            ("/occurred_at", json!("2026-11-23T12:06:00Z"), "occurred_at"),
            ("/device", json!("fridge"), "device"),
            ("/event_id", json!(""), "event_id"),
            ("/items/0/image_url", json!("javascript:alert(1)"), "items[0].image_url"),
        ];
        for (pointer, bad, field) in cases {
            let mut raw = add_to_cart();
            *raw.pointer_mut(pointer).unwrap() = bad.clone();
            let err = validate_event(&raw, now()).unwrap_err();
            assert_eq!(err.field, field, "for {pointer} = {bad}");
            assert!(!err.message.is_empty());
        }
    }

    /// Issue 9 item 12: a contact value its channel cannot use is left out
    /// (that channel is unreachable) and the event still counts.
    #[test]
    fn given_contact_values_their_channels_cannot_use_when_validated_then_the_event_is_kept_without_them() {
        let cases = [
            json!({"email": "not-an-address", "first_name": "Ana"}),
            json!({"phone": "+1 555", "first_name": "Ana"}),
            json!({"push_tokens": [{"platform": "fcm", "token": ""}], "first_name": "Ana"}),
            json!({"push_tokens": [{"platform": "pager", "token": "abc"}], "first_name": "Ana"}),
            json!({"web_push_subscription": {"endpoint": "http://push.example/s"}, "first_name": "Ana"}),
            json!({"web_push_subscription": "yes", "first_name": "Ana"}),
        ];
        for customer in cases {
            let mut raw = add_to_cart();
            raw["customer"] = customer.clone();
            let kept = validate_event(&raw, now()).unwrap_or_else(|e| panic!("{customer} refused: {e:?}"));
            let patch = kept.customer.unwrap();
            assert_eq!(patch.first_name.as_deref(), Some("Ana"), "{customer}");
            assert!(
                patch.email.is_none()
                    && patch.phone.is_none()
                    && patch.push_tokens.is_none()
                    && patch.web_push_subscription.is_none(),
                "{customer}: {patch:?}"
            );
        }
    }

    #[test]
    fn given_unusable_contact_values_when_parsed_then_each_warning_names_its_field_without_quoting_it() {
        let mut raw = add_to_cart();
        raw["customer"] = json!({
            "email": "ana@", "phone": "+1 999",
            "push_tokens": [{"platform": "fcm", "token": "good-token_1:x"}, {"platform": "apns", "token": "zz"}],
            "web_push_subscription": {"endpoint": "https://push.example/s", "keys": {"p256dh": "AAAA", "auth": AUTH}}
        });
        let Checked { value, warnings } = parse_event(&raw, now()).unwrap();
        let fields: Vec<&str> = warnings.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "customer.email",
                "customer.phone",
                "customer.push_tokens[1].token",
                "customer.web_push_subscription.keys.p256dh"
            ]
        );
        for warning in &warnings {
            let quoted = warning.message.contains("ana@") || warning.message.contains("999");
            assert!(!warning.message.is_empty() && !quoted, "{warning:?}");
        }
        let tokens = value.customer.unwrap().push_tokens.unwrap();
        assert_eq!(tokens.iter().map(|t| t.token.expose()).collect::<Vec<_>>(), ["good-token_1:x"]);
    }

    #[test]
    fn given_a_batch_when_parsed_then_warnings_belong_to_their_event_and_a_refused_event_has_none() {
        let mut warned = add_to_cart();
        warned["customer"] = json!({"phone": "+1 555"});
        let mut refused = warned.clone();
        refused["currency"] = json!("eur");
        let body = json!({"events": [warned, refused, add_to_cart()]}).to_string();
        let parsed = parse_body(body.as_bytes(), now()).unwrap();
        assert_eq!(parsed[0].warnings.len(), 1);
        assert!(parsed[1].result.is_err() && parsed[1].warnings.is_empty());
        assert!(parsed[2].result.is_ok() && parsed[2].warnings.is_empty());
    }

    #[test]
    fn given_number_texts_when_checked_against_dynamodb_then_only_its_range_passes() {
        for fits in ["0", "-0.0", "1e-130", "9.9999999999999999999999999999999999999e125", "0.001", "123", "-5e-7"] {
            assert!(within_dynamodb_range(fits), "{fits}");
        }
        for past in ["1e126", "1e-131", "0.00000000000000000000000000000000000000000000000000000001e-100", "1e999"] {
            assert!(!within_dynamodb_range(past), "{past}");
        }
        assert!(!within_dynamodb_range("1234567890123456789012345678901234567891"), "39 significant digits");
        let trailing_zeros = "12345678901234567890123456789012345678000000";
        assert!(within_dynamodb_range(trailing_zeros), "trailing zeros are not significant");
    }

    #[test]
    fn given_structural_customer_errors_when_validated_then_the_event_is_still_refused_naming_the_field() {
        let mut raw = add_to_cart();
        raw["customer"] = json!({"timezone": "Mars/Olympus"});
        assert_eq!(validate_event(&raw, now()).unwrap_err().field, "customer.timezone");
        raw["customer"] = json!({"consents": {"sms": "yes"}});
        assert_eq!(validate_event(&raw, now()).unwrap_err().field, "customer.consents.sms");
        raw["customer"] = json!({"push_tokens": "tok"});
        assert_eq!(validate_event(&raw, now()).unwrap_err().field, "customer.push_tokens");
        raw["customer"] = json!({"email": 42});
        assert_eq!(validate_event(&raw, now()).unwrap_err().field, "customer.email");
    }

    #[test]
    fn given_a_consent_basis_when_validated_then_it_is_kept_and_an_unknown_one_is_refused_naming_the_field() {
        let mut raw = add_to_cart();
        raw["customer"] = json!({"consents": {"email": true, "basis": "soft_opt_in"}});
        let consents = validate_event(&raw, now()).unwrap().customer.unwrap().consents.unwrap();
        assert_eq!((consents.email, consents.basis, consents.source), (Some(true), Some(LegalBasis::SoftOptIn), None));
        raw["customer"] = json!({"consents": {"email": true, "basis": "implied"}});
        let error = validate_event(&raw, now()).unwrap_err();
        assert_eq!(error.field, "customer.consents.basis");
        assert!(error.message.contains("soft_opt_in"), "{}", error.message);
    }

    /// Issue 9 item 3: what DynamoDB would refuse is refused here, by field.
    #[test]
    fn given_values_past_the_storage_bounds_when_validated_then_the_event_is_refused_naming_the_field() {
        let token = |t: String| json!({"platform": "fcm", "token": t});
        let keys = json!({"p256dh": P256DH, "auth": AUTH});
        let cases = [
            ("coupon", json!({"coupon": "X".repeat(101)})),
            ("customer.push_tokens", json!({"customer": {"push_tokens": vec![token("t".repeat(40)); 11]}})),
            ("customer.push_tokens[0].token", json!({"customer": {"push_tokens": [token("t".repeat(1025))]}})),
            (
                "customer.web_push_subscription.endpoint",
                json!({"customer": {"web_push_subscription":
                    {"endpoint": format!("https://push.example/{}", "s".repeat(2048)), "keys": keys}}}),
            ),
            (
                "customer.web_push_subscription",
                json!({"customer": {"web_push_subscription":
                    {"endpoint": "https://push.example/s", "keys": keys, "junk": "j".repeat(5000)}}}),
            ),
        ];
        for (field, extra) in cases {
            let mut raw = add_to_cart();
            raw.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            assert_eq!(validate_event(&raw, now()).map_err(|e| e.field), Err(field.to_owned()), "{field}");
        }
    }

    #[test]
    fn given_json_nested_deeper_than_the_documented_limit_when_validated_then_the_deep_field_is_named() {
        let mut deep = json!("leaf");
        for _ in 0..MAX_EVENT_DEPTH {
            deep = json!({ "a": deep });
        }
        let mut raw = add_to_cart();
        raw["items"][0]["extra"] = deep;
        let err = validate_event(&raw, now()).unwrap_err();
        assert!(err.field.starts_with("items[0].extra.a.a"), "{err:?}");
        let mut shallow = add_to_cart();
        shallow["items"][0]["extra"] = json!({"a": {"b": 1}});
        assert!(validate_event(&shallow, now()).is_ok());
    }

    #[test]
    fn given_numbers_outside_dynamodbs_range_anywhere_when_validated_then_the_event_is_refused_naming_them() {
        let huge: Value = serde_json::from_str("1e200").unwrap();
        let tiny: Value = serde_json::from_str("1e-140").unwrap();
        let mut raw = add_to_cart();
        raw["customer"] = json!({"web_push_subscription":
            {"endpoint": "https://push.example/s", "keys": {"p256dh": P256DH, "auth": AUTH}, "expirationTime": huge}});
        let err = validate_event(&raw, now()).unwrap_err();
        assert_eq!(err.field, "customer.web_push_subscription.expirationTime");
        let mut raw = add_to_cart();
        raw["items"][0]["weight"] = tiny;
        assert_eq!(validate_event(&raw, now()).unwrap_err().field, "items[0].weight");
        let mut raw = add_to_cart();
        raw["items"][0]["weight"] = json!(1.5e125);
        assert!(validate_event(&raw, now()).is_ok(), "within range is fine");
    }

    #[test]
    fn given_an_event_larger_than_one_event_may_be_stored_when_validated_then_items_is_named() {
        let mut raw = add_to_cart();
        let long_url = format!("https://shop.example/{}", "p".repeat(1000));
        raw["items"] = json!((0..200)
            .map(|i| json!({"item_id": format!("sku-{i}"), "url": long_url, "image_url": long_url}))
            .collect::<Vec<_>>());
        assert_eq!(validate_event(&raw, now()).unwrap_err().field, "items");
    }

    #[test]
    fn given_a_subscription_with_extra_members_when_validated_then_only_endpoint_and_keys_are_kept() {
        let mut raw = add_to_cart();
        raw["customer"] = json!({"web_push_subscription": {"endpoint": "https://push.example/s",
            "expirationTime": null, "keys": {"p256dh": P256DH, "auth": AUTH, "extra": {"x": [1, 2]}}}});
        let sub = validate_event(&raw, now()).unwrap().customer.unwrap().web_push_subscription.unwrap();
        let kept = json!({"endpoint": "https://push.example/s", "keys": {"p256dh": P256DH, "auth": AUTH}});
        assert_eq!(sub.expose(), &kept);
    }

    #[test]
    fn given_a_phone_in_national_spacing_when_validated_then_it_is_stored_in_e164() {
        let mut raw = add_to_cart();
        raw["customer"] = json!({"phone": "+44 20 7946 0958", "email": "Ana@Example.COM"});
        let c = validate_event(&raw, now()).unwrap().customer.unwrap();
        assert_eq!(c.phone.as_ref().map(Phone::expose), Some("+442079460958"));
        assert_eq!(c.email.as_ref().map(Email::expose), Some("Ana@example.com"));
    }

    #[test]
    fn given_arrays_where_objects_belong_when_validated_then_the_field_is_named_not_read_positionally() {
        let mut raw = add_to_cart();
        raw["items"] = json!([["sku-1", null, "1.00", 1]]);
        let err = validate_event(&raw, now()).unwrap_err();
        assert_eq!((err.field.as_str(), err.message.as_str()), ("items[0]", "must be an object"));
        let mut raw = add_to_cart();
        raw["customer"] = json!(["ana@example.com"]);
        assert_eq!(validate_event(&raw, now()).unwrap_err().field, "customer");
        assert_eq!(
            validate_event(&json!(["e1", "add_to_cart"]), now()).unwrap_err().message,
            "each event must be a JSON object"
        );
    }

    /// GIVEN a return that lists no product (Shopify's shipping or amount-only refund)
    /// WHEN validated with a value and currency, and again without a value
    /// THEN the first is kept with its value; the second is refused naming `items`.
    #[test]
    fn given_a_return_without_items_when_validated_then_its_value_suffices() {
        let raw = json!({"event_id": "r1", "type": "return", "customer_id": "u1", "order_id": "o1",
                         "value": "4.95", "currency": "EUR", "items": []});
        let e = validate_event(&raw, now()).unwrap();
        assert_eq!((e.value, e.items.len()), (Some(Decimal::new(495, 2)), 0));
        let mut no_value = raw.clone();
        no_value.as_object_mut().unwrap().remove("value");
        assert_eq!(validate_event(&no_value, now()).unwrap_err().field, "items");
    }

    #[test]
    fn given_a_purchase_without_order_id_when_validated_then_order_id_is_named() {
        let raw = json!({"event_id": "p", "type": "purchase", "cart_id": "c1"});
        assert_eq!(validate_event(&raw, now()).unwrap_err().field, "order_id");
    }

    #[test]
    fn given_a_batch_with_good_and_bad_events_when_parsed_then_each_is_judged_alone() {
        let body = json!({"events": [add_to_cart(), {"event_id": "bad", "type": "add_to_cart"}, 42]});
        let parsed = parse_body(body.to_string().as_bytes(), now()).unwrap();
        assert!(parsed[0].result.is_ok());
        assert_eq!(parsed[1].event_id.as_deref(), Some("bad"));
        assert_eq!(parsed[1].result.as_ref().unwrap_err().field, "cart_id");
        assert!(parsed[2].result.is_err());
    }

    #[test]
    fn given_a_single_event_object_when_parsed_then_it_is_a_batch_of_one() {
        let parsed = parse_body(add_to_cart().to_string().as_bytes(), now()).unwrap();
        assert_eq!(parsed.len(), 1);
    }

    #[test]
    fn given_bodies_that_are_not_batches_when_parsed_then_the_body_error_says_why() {
        assert!(matches!(parse_body(b"{not json", now()), Err(BodyError::NotJson(_))));
        assert_eq!(parse_body(b"[1,2]", now()), Err(BodyError::WrongShape));
        assert_eq!(parse_body(b"{\"events\": 3}", now()), Err(BodyError::WrongShape));
        let many = json!({"events": vec![add_to_cart(); 501]}).to_string();
        assert_eq!(parse_body(many.as_bytes(), now()), Err(BodyError::TooManyEvents(501)));
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(parse_body(&huge, now()), Err(BodyError::TooLarge(MAX_BODY_BYTES + 1)));
    }
}
