//! Segment's webhook destination (and Segment-compatible tools such as
//! RudderStack): `track` calls of the V2 e-commerce spec and `identify`
//! calls, one per request or a `{"batch": [...]}`. Signed with
//! `X-Signature`, the hex HMAC-SHA1 of the raw body keyed with the
//! destination's shared secret. Each call's `messageId` is its event id.
//!
//! | Call | Canonical event | Notes |
//! |---|---|---|
//! | track `Product Added` | `add_to_cart` | the product in `properties` |
//! | track `Product Removed` | `remove_from_cart` | |
//! | track `Cart Viewed` | `cart_update` | `properties.products` is the cart; without it, nothing |
//! | track `Checkout Started` | `begin_checkout` | `properties.products` |
//! | track `Order Completed` | `purchase` | `order_id`; value `revenue`, else `total` |
//! | track `Order Refunded` | `return` | needs `userId`, and `products` or `total` |
//! | `identify` | `identify` | `traits`: email, phone, first name, `email_consent` (boolean) |
//!
//! Locale and time zone come from `context.locale` and `context.timezone`.
//! The cart is `properties.cart_id`, else the caller's `anonymousId` (one
//! browser, one cart); the customer is `userId`. Device: `context.device.type`,
//! else the user agent. Other calls and events map to nothing.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;

use super::{
    at, currency, device_from_user_agent, id_text, money, quantity, text, time, Canonical, Contact, Context, Headers,
    MappedEvent, SourceError, SourceSecret,
};
use crate::event::FieldError;

pub const SIGNATURE_HEADER: &str = "X-Signature";

pub(crate) fn verify(secret: &SourceSecret, headers: &Headers, body: &[u8]) -> Result<(), SourceError> {
    let given = headers.get(SIGNATURE_HEADER).ok_or(SourceError::MissingSignature(SIGNATURE_HEADER))?;
    let tag = hex::decode(given).map_err(|_| SourceError::BadSignature(SIGNATURE_HEADER))?;
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.bytes()).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&tag).map_err(|_| SourceError::BadSignature(SIGNATURE_HEADER))
}

/// The hex HMAC-SHA1 of `body`, as Segment sends it (for tests and examples).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) fn map(body: &Value, context: &Context<'_>) -> Result<Vec<MappedEvent>, SourceError> {
    match body.get("batch") {
        Some(Value::Array(calls)) => Ok(calls
            .iter()
            .enumerate()
            .filter_map(|(i, call)| map_call(call, &format!("batch[{i}]"), context))
            .collect()),
        Some(_) => Err(SourceError::payload("batch", "must be an array of calls")),
        None => Ok(map_call(body, "", context).into_iter().collect()),
    }
}

/// One call, or `None` for a call Cartback has no use for.
fn map_call(call: &Value, path: &str, context: &Context<'_>) -> Option<MappedEvent> {
    let kind = match (call.get("type").and_then(Value::as_str), call.get("event").and_then(Value::as_str)) {
        (Some("identify"), _) => "identify",
        (Some("track"), Some("Product Added")) => "add_to_cart",
        (Some("track"), Some("Product Removed")) => "remove_from_cart",
        // Without `products` the call says nothing of the cart's contents:
        // mapped, it would empty the cart.
        (Some("track"), Some("Cart Viewed")) if call.pointer("/properties/products").is_none_or(Value::is_null) => {
            return None
        }
        (Some("track"), Some("Cart Viewed")) => "cart_update",
        (Some("track"), Some("Checkout Started")) => "begin_checkout",
        (Some("track"), Some("Order Completed")) => "purchase",
        (Some("track"), Some("Order Refunded")) => "return",
        _ => return None,
    };
    let Some(message_id) = id_text(call.get("messageId")) else {
        return Some(MappedEvent::refused(None, FieldError::new(at(path, "messageId"), "is required")));
    };
    let event_id = format!("segment:{message_id}");
    Some(MappedEvent::from_result(&event_id, map_known(call, kind, &event_id, path, context), context))
}

fn map_known(call: &Value, kind: &str, event_id: &str, path: &str, context: &Context<'_>) -> Result<Value, FieldError> {
    let empty = Value::Null;
    let properties = call.get("properties").unwrap_or(&empty);
    let props = at(path, "properties");
    let user_id = id_text(call.get("userId"));
    let cart_id = id_text(properties.get("cart_id")).or_else(|| id_text(call.get("anonymousId")));
    let mut event = Canonical::new(event_id, kind);
    event
        .set("occurred_at", time(call.get("timestamp"), &at(path, "timestamp"))?)
        .set("customer_id", user_id.clone())
        .set("device", device(call));
    match kind {
        "identify" => {
            if user_id.is_none() {
                return Err(FieldError::new(at(path, "userId"), "is required for identify calls"));
            }
            event.set("customer", contact(call).into_value());
        }
        "return" => {
            if user_id.is_none() {
                return Err(FieldError::new(at(path, "userId"), "is required: a return belongs to a known customer"));
            }
            let items = products(properties.get("products"), &at(&props, "products"), kind, context)?;
            let value = money(properties.get("total"), &at(&props, "total"))?;
            // An amount-only refund lists no product; its total is the return.
            if items.is_empty() && value.is_none() {
                let message = "must list the products returned (or properties.total give the amount refunded)";
                return Err(FieldError::new(at(&props, "products"), message));
            }
            event
                .set("order_id", id_text(properties.get("order_id")))
                .set("value", value)
                .set("items", Some(Value::Array(items)));
        }
        "purchase" => {
            let order_id = id_text(properties.get("order_id"))
                .ok_or_else(|| FieldError::new(at(&props, "order_id"), "is required for Order Completed"))?;
            let value = match money(properties.get("revenue"), &at(&props, "revenue"))? {
                Some(value) => Some(value),
                None => money(properties.get("total"), &at(&props, "total"))?,
            };
            event
                .set("order_id", Some(order_id))
                .set("cart_id", cart_id)
                .set("value", value)
                .set("coupon", text(properties.get("coupon")))
                .set("customer", contact(call).into_value());
        }
        "add_to_cart" | "remove_from_cart" => {
            let cart_id =
                cart_id.ok_or_else(|| FieldError::new(at(&props, "cart_id"), "is required (or anonymousId)"))?;
            event.set("cart_id", Some(cart_id)).set("items", Some(Value::Array(vec![product(properties, &props)?])));
            event.set("customer", contact(call).into_value());
        }
        _ => {
            let cart_id =
                cart_id.ok_or_else(|| FieldError::new(at(&props, "cart_id"), "is required (or anonymousId)"))?;
            let items = products(properties.get("products"), &at(&props, "products"), kind, context)?;
            event.set("cart_id", Some(cart_id)).set("items", Some(Value::Array(items)));
            event.set("customer", contact(call).into_value());
        }
    }
    let currency = currency(properties.get("currency"), &at(&props, "currency"))?;
    event.set("currency", currency.or_else(|| context.shop_currency.map(str::to_owned)));
    Ok(event.into_value())
}

/// A call's `products`, each read alone (see `Context::lines`); for
/// `Cart Viewed`, the whole cart (`Context::snapshot_lines`).
fn products(value: Option<&Value>, path: &str, kind: &str, context: &Context<'_>) -> Result<Vec<Value>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) if kind == "cart_update" => context.snapshot_lines(&[(list, path)], product),
        Some(Value::Array(list)) => Ok(context.lines(list, path, product)),
        Some(_) => Err(FieldError::new(path, "must be an array of products")),
    }
}

/// A product of the e-commerce spec: `product_id`, else `sku`.
fn product(product: &Value, path: &str) -> Result<Value, FieldError> {
    let item_id = id_text(product.get("product_id"))
        .or_else(|| id_text(product.get("sku")))
        .ok_or_else(|| FieldError::new(at(path, "product_id"), "is required (or sku)"))?;
    let mut item = Canonical(serde_json::Map::new());
    item.set("item_id", Some(item_id))
        .set("item_name", text(product.get("name")))
        .set("variant", super::variant(text(product.get("variant"))))
        .set("price", money(product.get("price"), &at(path, "price"))?)
        .set("quantity", Some(quantity(product.get("quantity"), &at(path, "quantity"))?))
        .set("url", text(product.get("url")))
        .set("image_url", text(product.get("image_url")));
    Ok(item.into_value())
}

/// Contact data from `traits` (identify) or `context.traits` (track).
fn contact(call: &Value) -> Contact {
    let traits = call.get("traits").or_else(|| call.pointer("/context/traits"));
    let get = |name: &str| traits.and_then(|t| text(t.get(name)));
    let first_name = get("firstName")
        .or_else(|| get("first_name"))
        .or_else(|| get("name").and_then(|n| n.split_whitespace().next().map(str::to_owned)));
    Contact {
        email: get("email"),
        phone: get("phone"),
        first_name,
        locale: text(call.pointer("/context/locale")),
        timezone: text(call.pointer("/context/timezone")),
        // The spec reserves no consent trait, and Segment's consent object
        // (`context.consent`) is for data-collection categories: Segment
        // recommends custom traits for communication opt-ins, so Cartback
        // reads a boolean `email_consent`.
        email_consent: traits.and_then(|t| t.get("email_consent")).and_then(Value::as_bool),
    }
}

/// `context.device.type` as Segment's mobile libraries set it, else the browser's user agent.
fn device(call: &Value) -> Option<&'static str> {
    match text(call.pointer("/context/device/type")).as_deref() {
        Some("ios" | "android" | "mobile") => Some("mobile"),
        Some("tablet") => Some("tablet"),
        _ => text(call.pointer("/context/userAgent")).map(|ua| device_from_user_agent(&ua)),
    }
}
