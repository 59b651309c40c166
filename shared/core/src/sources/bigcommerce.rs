//! BigCommerce webhooks (`store/cart/*`, `store/order/*`). BigCommerce
//! signs deliveries the Standard Webhooks way, keyed with the app's client
//! secret: `webhook-id`, `webhook-timestamp` (unix seconds) and
//! `webhook-signature` (`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`,
//! several separated by spaces during a secret rotation). The timestamp
//! must be within 5 minutes of real time; the payload's `hash` is the same
//! on every retry of one event, so it is the idempotency key, except for a
//! fetched cart (see [`fetched_event_id`]): the hash of a thin delivery
//! covers only the cart's id, the same for every update.
//!
//! BigCommerce payloads are thin: `data` names the cart or order by id.
//! Cartback reads a cart's contents in one of two ways:
//!
//! - **Configured fetch** (`CARTBACK_BIGCOMMERCE_STORE_HASH` and an API
//!   token): for a thin cart delivery the source route fetches the cart
//!   from the Management API (`GET /stores/{hash}/v3/carts/{id}`, see
//!   [`cart_to_fetch`]) and maps the response's `data` as the snapshot. A
//!   failed fetch answers 503, so BigCommerce retries the delivery; a cart
//!   the API no longer has (404) is acknowledged and changes nothing.
//! - **Next full snapshot**, without that configuration: a delivery whose
//!   `data.cart` carries the cart as that API returns it (posted by a relay
//!   or the storefront, signed the same way) maps to a `cart_update`; a
//!   thin cart delivery is acknowledged and changes nothing.
//!
//! | Scope | Canonical event | Notes |
//! |---|---|---|
//! | `store/cart/created`, `…/updated`, `…/lineItem/*` with a snapshot | `cart_update` | the cart: `data.id`, for line items `data.cartId` |
//! | `store/cart/abandoned` with a snapshot | `begin_checkout` | |
//! | `store/cart/converted` | `purchase` | cart = `data.id`, order = `data.orderId` |
//! | `store/cart/deleted` | `cart_update` with no items | the cart emptied |
//! | thin cart deliveries without the fetch, `store/order/*` | nothing | the order arrives as `store/cart/converted` |
//!
//! A snapshot's items are `line_items.physical_items` and `digital_items`
//! (price: `sale_price`, else `list_price`); a line that cannot be read is
//! left out with a warning. Email and customer id come from the cart
//! (`email`, `customer_id`; 0 is a guest); more contact data and email
//! consent (`accepts_product_review_abandoned_cart_emails`) from the
//! customer as the Customers API returns it: `data.customer` when a relay
//! adds it, else the one the configured fetch reads for a registered
//! customer's cart (`GET /stores/{hash}/v3/customers?id:in={customer_id}`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{
    at, currency, fresh, id_text, money, quantity, text, time, Canonical, Contact, Context, Headers, MappedEvent,
    SourceError, SourceSecret,
};
use crate::event::FieldError;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

pub(crate) fn verify(
    secret: &SourceSecret,
    headers: &Headers,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SourceError> {
    let signatures = headers.get(SIGNATURE_HEADER).ok_or(SourceError::MissingSignature(SIGNATURE_HEADER))?;
    let id = headers.get(ID_HEADER).ok_or(SourceError::MissingSignature(ID_HEADER))?;
    let timestamp = headers.get(TIMESTAMP_HEADER).ok_or(SourceError::MissingSignature(TIMESTAMP_HEADER))?;
    if !fresh(timestamp, now) {
        return Err(SourceError::Stale(TIMESTAMP_HEADER));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&signing_key(secret.bytes())).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    // Every candidate is compared in full, in constant time.
    let matched = signatures
        .split_whitespace()
        .filter_map(|candidate| candidate.strip_prefix("v1,"))
        .filter_map(|tag| STANDARD.decode(tag).ok())
        .fold(false, |found, tag| found | constant_time_eq(&tag, &expected));
    if matched {
        Ok(())
    } else {
        Err(SourceError::BadSignature(SIGNATURE_HEADER))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `webhook-signature` value BigCommerce sends (for tests and examples).
pub fn signature(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&signing_key(secret)).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The HMAC key of a Standard Webhooks secret: the base64 after `whsec_`
/// (as the specification and its libraries decode it), else the secret's
/// bytes as configured.
fn signing_key(secret: &[u8]) -> Vec<u8> {
    secret.strip_prefix(b"whsec_").and_then(|key| STANDARD.decode(key).ok()).unwrap_or_else(|| secret.to_vec())
}

/// Scopes whose thin delivery names a cart whose contents Cartback needs.
fn names_cart_contents(scope: &str) -> bool {
    matches!(scope, "store/cart/created" | "store/cart/updated" | "store/cart/abandoned")
        || scope.starts_with("store/cart/lineItem/")
}

/// The id of the cart a thin cart delivery names, when its contents must
/// be fetched to map it: `data.cartId` for line item scopes, else `data.id`.
/// `None` for a delivery that carries its snapshot, or needs none.
pub fn cart_to_fetch(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let scope = text(body.get("scope"))?;
    let data = body.get("data")?;
    if !names_cart_contents(&scope) || data.get("cart").is_some_and(Value::is_object) {
        return None;
    }
    id_text(data.get("cartId")).or_else(|| id_text(data.get("id")))
}

/// `bigcommerce:{cart|checkout}:{cart id}:{updated_time}` of a fetched
/// cart: the same version of the cart, fetched again for a retry or another
/// thin delivery, is one event; a changed cart is a new one. A cart without
/// those fields is named by the digest of its contents.
fn fetched_event_id(scope: &str, cart: &Value) -> String {
    let kind = if scope == "store/cart/abandoned" { "checkout" } else { "cart" };
    match (id_text(cart.get("id")), text(cart.get("updated_time"))) {
        (Some(id), Some(updated)) => format!("bigcommerce:{kind}:{id}:{updated}"),
        _ => format!("bigcommerce:{kind}:{}", super::body_digest(cart.to_string().as_bytes())),
    }
}

pub(crate) fn map(body: &Value, context: &Context<'_>) -> Result<Vec<MappedEvent>, SourceError> {
    let scope = text(body.get("scope")).ok_or_else(|| SourceError::payload("scope", "is required"))?;
    let data = body.get("data").unwrap_or(&Value::Null);
    let carried = data.get("cart").filter(|c| c.is_object());
    let fetched = context.fetched_cart.map(|f| &f.cart);
    let snapshot = carried.or(fetched);
    let event_id = match (carried, fetched) {
        // A thin delivery's `hash` covers only `{type, id}`: every update of
        // one cart has the same. The fetched cart's version names the event.
        (None, Some(cart)) if names_cart_contents(&scope) => fetched_event_id(&scope, cart),
        _ => format!("bigcommerce:{}", text(body.get("hash")).unwrap_or_else(|| context.body_digest.clone())),
    };
    let kind = match (scope.as_str(), snapshot) {
        ("store/cart/converted", _) => "purchase",
        ("store/cart/deleted", _) => "deleted",
        ("store/cart/abandoned", Some(_)) => "begin_checkout",
        (s, Some(_)) if names_cart_contents(s) => "cart_update",
        _ => return Ok(Vec::new()),
    };
    Ok(vec![MappedEvent::from_result(&event_id, event(kind, &event_id, body, data, snapshot, context), context)])
}

fn event(
    kind: &str,
    event_id: &str,
    body: &Value,
    data: &Value,
    snapshot: Option<&Value>,
    context: &Context<'_>,
) -> Result<Value, FieldError> {
    let occurred = time(body.get("created_at"), "created_at")?;
    match (kind, snapshot) {
        ("purchase", _) => {
            let cart_id = id_text(data.get("id")).ok_or_else(|| FieldError::new("data.id", "is required"))?;
            let order_id =
                id_text(data.get("orderId")).ok_or_else(|| FieldError::new("data.orderId", "is required"))?;
            let mut event = Canonical::new(event_id, "purchase");
            event.set("cart_id", Some(cart_id)).set("order_id", Some(order_id)).set("occurred_at", occurred);
            Ok(event.into_value())
        }
        ("deleted", _) => {
            let cart_id = id_text(data.get("id")).ok_or_else(|| FieldError::new("data.id", "is required"))?;
            let mut event = Canonical::new(event_id, "cart_update");
            event
                .set("cart_id", Some(cart_id))
                .set("occurred_at", occurred)
                .set("items", Some(Value::Array(Vec::new())));
            Ok(event.into_value())
        }
        (kind, Some(cart)) => {
            let fetched = context.fetched_cart.and_then(|f| f.customer.as_ref());
            let customer = data.get("customer").filter(|c| c.is_object()).or(fetched);
            cart_snapshot(kind, event_id, cart, customer, occurred, context)
        }
        _ => Err(FieldError::new("data.cart", "is required")),
    }
}

/// One line of a cart as the Management API returns it.
fn line_item(line: &Value, path: &str) -> Result<Value, FieldError> {
    let item_id = id_text(line.get("variant_id"))
        .or_else(|| id_text(line.get("product_id")))
        .ok_or_else(|| FieldError::new(at(path, "variant_id"), "is required (or product_id)"))?;
    let price = match money(line.get("sale_price"), &at(path, "sale_price"))? {
        Some(price) => Some(price),
        None => money(line.get("list_price"), &at(path, "list_price"))?,
    };
    let mut item = Canonical(serde_json::Map::new());
    item.set("item_id", Some(item_id))
        .set("item_name", text(line.get("name")))
        .set("price", price)
        .set("quantity", Some(quantity(line.get("quantity"), &at(path, "quantity"))?))
        .set("url", text(line.get("url")))
        .set("image_url", text(line.get("image_url")).filter(|u| u.starts_with("https://")));
    Ok(item.into_value())
}

/// A cart as the Management API returns it.
fn cart_snapshot(
    kind: &str,
    event_id: &str,
    cart: &Value,
    customer: Option<&Value>,
    occurred: Option<String>,
    context: &Context<'_>,
) -> Result<Value, FieldError> {
    let cart_id = id_text(cart.get("id")).ok_or_else(|| FieldError::new("data.cart.id", "is required"))?;
    let mut groups: Vec<(&[Value], String)> = Vec::new();
    for group in ["physical_items", "digital_items"] {
        let path = format!("data.cart.line_items.{group}");
        match cart.pointer(&format!("/line_items/{group}")) {
            None | Some(Value::Null) => {}
            Some(Value::Array(lines)) => groups.push((lines, path)),
            Some(_) => return Err(FieldError::new(path, "must be an array")),
        }
    }
    let groups: Vec<(&[Value], &str)> = groups.iter().map(|(lines, path)| (*lines, path.as_str())).collect();
    let items = match kind {
        "cart_update" => context.snapshot_lines(&groups, line_item)?,
        _ => groups.iter().flat_map(|(lines, path)| context.lines(lines, path, line_item)).collect(),
    };
    let currency = currency(cart.pointer("/currency/code"), "data.cart.currency.code")?;
    // The customer as the Customers API returns it, when the relay adds it:
    // BigCommerce's own abandoned-cart email opt-in is the consent.
    let field = |name: &str| customer.and_then(|c| text(c.get(name)));
    let contact = Contact {
        email: text(cart.get("email")).or_else(|| field("email")),
        phone: field("phone"),
        first_name: field("first_name"),
        email_consent: customer
            .and_then(|c| c.get("accepts_product_review_abandoned_cart_emails"))
            .and_then(Value::as_bool),
        ..Contact::default()
    };
    let mut event = Canonical::new(event_id, kind);
    event
        .set("cart_id", Some(cart_id))
        .set("customer_id", id_text(cart.get("customer_id")))
        .set("occurred_at", time(cart.get("updated_time"), "data.cart.updated_time")?.or(occurred))
        .set("currency", currency.or_else(|| context.shop_currency.map(str::to_owned)))
        .set("items", Some(Value::Array(items)))
        .set("customer", contact.into_value());
    Ok(event.into_value())
}
