//! Storefront events: the wire schema (GA4 e-commerce naming) and its
//! parsing. A request's events are read into raw structs ([`RawEvent`]),
//! whose fields keep the JSON as sent, and converted with `TryFrom` into the
//! domain types, so that every rejection names the exact field and why.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contact::{DeviceToken, Email, Phone, WebPushSubscription};
use crate::enum_names;
use crate::ids::{CartId, CustomerId, EventId};

pub const MAX_EVENTS_PER_REQUEST: usize = 500;
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How far ahead of Cartback's clock an `occurred_at` may be (clock skew).
pub const MAX_FUTURE_SKEW_SECONDS: i64 = 300;
const MAX_ID_LEN: usize = 128;
const MAX_ITEMS: usize = 200;
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
        .map(|raw| Parsed {
            event_id: raw.get("event_id").and_then(Value::as_str).map(str::to_owned),
            result: validate_event(raw, received_at),
        })
        .collect())
}

/// Validates one raw event. `received_at` is Cartback's clock: the default
/// for `occurred_at` and the reference for the future-skew check.
pub fn validate_event(raw: &Value, received_at: DateTime<Utc>) -> Result<Event, FieldError> {
    let raw = RawEvent::from_value(raw)?;
    Event::try_from(Received { raw, at: received_at })
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

impl TryFrom<Received<RawEvent>> for Event {
    type Error = FieldError;

    fn try_from(Received { raw, at: received_at }: Received<RawEvent>) -> Result<Event, FieldError> {
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
        let occurred_at = match &raw.occurred_at {
            Value::Null => received_at,
            Value::String(s) => {
                let t = DateTime::parse_from_rfc3339(s)
                    .map_err(|_| {
                        FieldError::new("occurred_at", "must be an RFC 3339 timestamp, e.g. 2026-11-23T10:00:00Z")
                    })?
                    .with_timezone(&Utc);
                if t > received_at + Duration::seconds(MAX_FUTURE_SKEW_SECONDS) {
                    return Err(FieldError::new("occurred_at", "is more than 5 minutes ahead of Cartback's clock"));
                }
                t
            }
            _ => return Err(FieldError::new("occurred_at", "must be a string (RFC 3339)")),
        };
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
        if matches!(kind, EventType::AddToCart | EventType::RemoveFromCart | EventType::ViewItem | EventType::Return)
            && items.is_empty()
        {
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
        if items.iter().any(|i| i.price.is_some()) && currency.is_none() {
            return Err(FieldError::new("currency", "is required when items carry prices"));
        }
        let coupon = optional_str(&raw.coupon, "coupon")?.map(str::to_owned);
        let customer = match &raw.customer {
            Value::Null => None,
            v => Some(CustomerPatch::try_from(raw_object::<RawCustomer>(v, "customer", "must be an object")?)?),
        };
        Ok(Event {
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
        })
    }
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
        Ok(Item { item_id, item_name, price, quantity, image_url, url })
    }
}

impl TryFrom<RawCustomer> for CustomerPatch {
    type Error = FieldError;

    fn try_from(raw: RawCustomer) -> Result<CustomerPatch, FieldError> {
        let email = match text_field(&raw.email, "customer.email", 254)? {
            None => None,
            Some(e) => Some(
                Email::parse(&e).ok_or_else(|| FieldError::new("customer.email", "is not a valid email address"))?,
            ),
        };
        let phone = match text_field(&raw.phone, "customer.phone", 32)? {
            None => None,
            Some(p) => Some(Phone::parse(&p).ok_or_else(|| {
                FieldError::new("customer.phone", "must be a valid phone number in E.164 form, e.g. +14155550123")
            })?),
        };
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
                Some(ConsentPatch {
                    email: flag("email")?,
                    sms: flag("sms")?,
                    push: flag("push")?,
                    web_push: flag("web_push")?,
                })
            }
            _ => return Err(FieldError::new("customer.consents", "must be an object")),
        };
        let push_tokens = match &raw.push_tokens {
            Value::Null => None,
            Value::Array(list) => Some(list.iter().enumerate().map(push_token).collect::<Result<Vec<_>, _>>()?),
            _ => return Err(FieldError::new("customer.push_tokens", "must be an array")),
        };
        let web_push_subscription = match &raw.web_push_subscription {
            Value::Null => None,
            sub => {
                let endpoint = sub.get("endpoint").and_then(Value::as_str).unwrap_or_default();
                if !endpoint.starts_with("https://") {
                    return Err(FieldError::new(
                        "customer.web_push_subscription.endpoint",
                        "must be the browser's https push endpoint",
                    ));
                }
                for key in ["p256dh", "auth"] {
                    if sub.pointer(&format!("/keys/{key}")).and_then(Value::as_str).is_none() {
                        return Err(FieldError::new(
                            format!("customer.web_push_subscription.keys.{key}"),
                            "is required (the browser's PushSubscription JSON)",
                        ));
                    }
                }
                Some(WebPushSubscription::from(sub.clone()))
            }
        };
        Ok(CustomerPatch { email, phone, first_name, locale, timezone, consents, push_tokens, web_push_subscription })
    }
}

fn push_token((i, raw): (usize, &Value)) -> Result<PushToken, FieldError> {
    let field = |f: &str| format!("customer.push_tokens[{i}].{f}");
    let platform = match raw.get("platform").and_then(Value::as_str) {
        Some("apns") => PushPlatform::Apns,
        Some("fcm") => PushPlatform::Fcm,
        _ => return Err(FieldError::new(field("platform"), "must be apns or fcm")),
    };
    match raw.get("token").and_then(Value::as_str) {
        Some(token) if !token.trim().is_empty() && token.len() <= 4096 => {
            Ok(PushToken { platform, token: token.into() })
        }
        _ => Err(FieldError::new(field("token"), "must be a non-empty string")),
    }
}

fn required_str<'a>(raw: &'a Value, field: &str) -> Result<&'a str, FieldError> {
    match raw {
        Value::String(s) => Ok(s),
        Value::Null => Err(FieldError::new(field, "is required")),
        _ => Err(FieldError::new(field, "must be a string")),
    }
}

fn optional_str<'a>(raw: &'a Value, field: &str) -> Result<Option<&'a str>, FieldError> {
    match raw {
        Value::String(s) => Ok(Some(s)),
        Value::Null => Ok(None),
        _ => Err(FieldError::new(field, "must be a string")),
    }
}

fn check_id<T: From<String>>(field: &str, s: &str) -> Result<T, FieldError> {
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

fn optional_decimal(raw: Option<&Value>, path: &str) -> Result<Option<Decimal>, FieldError> {
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

    #[test]
    fn given_a_customer_with_bad_contact_data_when_validated_then_the_nested_field_is_named() {
        let mut raw = add_to_cart();
        raw["customer"] = json!({"email": "not-an-address"});
        assert_eq!(validate_event(&raw, now()).unwrap_err().field, "customer.email");
        raw["customer"] = json!({"phone": "+1 555"});
        assert_eq!(validate_event(&raw, now()).unwrap_err().field, "customer.phone");
        raw["customer"] = json!({"timezone": "Mars/Olympus"});
        assert_eq!(validate_event(&raw, now()).unwrap_err().field, "customer.timezone");
        raw["customer"] = json!({"consents": {"sms": "yes"}});
        assert_eq!(validate_event(&raw, now()).unwrap_err().field, "customer.consents.sms");
        raw["customer"] = json!({"push_tokens": [{"platform": "fcm", "token": ""}]});
        assert_eq!(validate_event(&raw, now()).unwrap_err().field, "customer.push_tokens[0].token");
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
