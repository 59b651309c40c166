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
//!   [`to_fetch`]) and maps the response's `data` as the snapshot. A
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
//! | `store/cart/converted` | `purchase` | cart = `data.id`, order = `data.orderId`; with the fetch, the order's purchase (as `store/order/created`, whatever its status) |
//! | `store/cart/deleted` | `cart_update` with no items | the cart emptied |
//! | `store/order/created`, `…/updated`, `…/statusUpdated` (fetch) | `purchase` of the order's `cart_id` | only a placed order ([`PLACED_STATUS_IDS`]); one purchase per order |
//! | `store/order/refund/created` (fetch) | `return` per refund | value: its payments not declined; customer and cart from the order's purchase |
//! | thin deliveries without the fetch, other `store/order/*` | nothing | the order arrives as `store/cart/converted` |
//!
//! With the fetch configured, an order scope reads `GET /v2/orders/{id}`
//! and `GET /v2/orders/{id}/products` (lines), a refund
//! `GET /v3/orders/{id}/payment_actions/refunds`. An order BigCommerce's
//! API does not have (404) is refused naming its id. Errors and warnings
//! about fetched data name where it came from and the field in the API's
//! answer: `fetched cart: line_items.physical_items[0].sale_price`,
//! `fetched order: total_inc_tax`, `fetched order products: [0].quantity`.
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
    at, currency, decimal, fresh, id_text, money, quantity, text, time, Canonical, CartFetch, Contact, Context,
    FetchError, Fetched, FetchedOrder, Headers, MappedEvent, NotYet, SourceError, SourceSecret,
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

/// Scopes whose thin delivery names an order that may have been placed.
fn names_order(scope: &str) -> bool {
    matches!(scope, "store/order/created" | "store/order/updated" | "store/order/statusUpdated")
}

const REFUND_SCOPE: &str = "store/order/refund/created";
const CONVERTED_SCOPE: &str = "store/cart/converted";

/// The order statuses (`status_id`) of an order the shopper placed, so its
/// cart is bought: BigCommerce's paid statuses (2 Shipped, 3 Partially
/// Shipped, 8 Awaiting Pickup, 9 Awaiting Shipment, 10 Completed, 11
/// Awaiting Fulfillment, 13 Disputed, 14 Partially Refunded) and those of a
/// completed checkout whose payment is not yet captured (7 Awaiting
/// Payment, 12 Manual Verification Required): a reminder would be wrong
/// for either. Not placed: 0 Incomplete, 1 Pending (checkout not
/// completed), 5 Cancelled, 6 Declined; 4 Refunded is neither.
pub const PLACED_STATUS_IDS: [u64; 10] = [2, 3, 7, 8, 9, 10, 11, 12, 13, 14];

/// Where fetched data came from, as warnings and errors name its fields.
pub const FETCHED_CART: &str = "fetched cart: ";
pub const FETCHED_ORDER: &str = "fetched order: ";
pub const FETCHED_ORDER_PRODUCTS: &str = "fetched order products: ";
pub const FETCHED_REFUNDS: &str = "fetched refunds: ";

/// What a thin delivery names that must be read from the Management API to
/// map it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToFetch {
    /// `GET /v3/carts/{id}` (and its registered customer).
    Cart(String),
    /// `GET /v2/orders/{id}` and `GET /v2/orders/{id}/products`.
    Order(String),
    /// `GET /v3/orders/{id}/payment_actions/refunds`.
    Refunds(String),
}

/// What a thin delivery names, when it must be fetched to map it: the cart
/// of a cart scope (`data.cartId` for line items, else `data.id`) unless the
/// delivery carries it, the order of an order scope (`data.id`) or of
/// `store/cart/converted` (`data.orderId`), the order
/// of a refund (`data.order_id`, else `data.id`). `None` for a delivery that
/// carries its snapshot, or needs none.
pub fn to_fetch(body: &[u8]) -> Option<ToFetch> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let scope = text(body.get("scope"))?;
    let data = body.get("data")?;
    if names_order(&scope) {
        return id_text(data.get("id")).map(ToFetch::Order);
    }
    // The order, so the purchase has its value and is the one
    // `store/order/*` makes (`bigcommerce:order:{id}`), whichever arrives first.
    if scope == CONVERTED_SCOPE {
        return id_text(data.get("orderId")).map(ToFetch::Order);
    }
    if scope == REFUND_SCOPE {
        return id_text(data.get("order_id")).or_else(|| id_text(data.get("id"))).map(ToFetch::Refunds);
    }
    if !names_cart_contents(&scope) || data.get("cart").is_some_and(Value::is_object) {
        return None;
    }
    id_text(data.get("cartId")).or_else(|| id_text(data.get("id"))).map(ToFetch::Cart)
}

/// Reads what `what` names from the API.
pub async fn fetch(api: &dyn CartFetch, what: &ToFetch) -> Result<Fetched, FetchError> {
    let found = match what {
        ToFetch::Cart(id) => api.fetch_cart(id).await?.map(Fetched::Cart),
        ToFetch::Order(id) => api.fetch_order(id).await?.map(Fetched::Order),
        ToFetch::Refunds(id) => api.fetch_refunds(id).await?.map(Fetched::Refunds),
    };
    Ok(found.unwrap_or(Fetched::NotFound))
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
    // A converted cart's order, when the fetch read it.
    let converted_order = scope == CONVERTED_SCOPE && matches!(context.fetched, Some(Fetched::Order(_)));
    if names_order(&scope) || scope == REFUND_SCOPE || converted_order {
        return Ok(order_scope(&scope, body, data, context));
    }
    let carried = data.get("cart").filter(|c| c.is_object());
    let fetched = context.fetched_cart().map(|f| &f.cart);
    let snapshot = match (carried, fetched) {
        (Some(cart), _) => Some((cart, "data.cart")),
        (None, Some(cart)) => Some((cart, FETCHED_CART)),
        (None, None) => None,
    };
    let event_id = match (carried, fetched) {
        // A thin delivery's `hash` covers only `{type, id}`: every update of
        // one cart has the same. The fetched cart's version names the event.
        (None, Some(cart)) if names_cart_contents(&scope) => fetched_event_id(&scope, cart),
        // The API lacks the order (404): still the one purchase of the order.
        _ if scope == CONVERTED_SCOPE && context.fetched.is_some() && id_text(data.get("orderId")).is_some() => {
            format!("bigcommerce:order:{}", id_text(data.get("orderId")).unwrap_or_default())
        }
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

/// `store/order/*`, and `store/cart/converted` with its order fetched: a
/// placed order is a `purchase` of its cart, keyed by the order
/// (`bigcommerce:order:{id}`: created, updated, status and converted
/// deliveries of one order are one purchase); a refund a `return` keyed by
/// the refund. Without the configured fetch order scopes map to nothing
/// (the order arrives as `store/cart/converted`); an order the API does not
/// have is refused naming it.
fn order_scope(scope: &str, body: &Value, data: &Value, context: &Context<'_>) -> Vec<MappedEvent> {
    let refund = scope == REFUND_SCOPE;
    let converted = scope == CONVERTED_SCOPE;
    let field = match scope {
        CONVERTED_SCOPE => "data.orderId",
        REFUND_SCOPE if id_text(data.get("order_id")).is_some() => "data.order_id",
        _ => "data.id",
    };
    let Some(order_id) = id_text(data.get(&field["data.".len()..])) else {
        return vec![MappedEvent::refused(None, FieldError::new(field, "is required: it names the order"))];
    };
    match context.fetched {
        Some(Fetched::Order(fetched)) if !refund => {
            let event_id = format!("bigcommerce:order:{order_id}");
            // A converted cart is BigCommerce's word that the checkout completed.
            let cart = converted.then(|| id_text(data.get("id"))).flatten();
            match order(&event_id, &order_id, body, fetched, cart, context) {
                Ok(None) => Vec::new(),
                result => vec![MappedEvent::from_result(&event_id, result.map(Option::unwrap_or_default), context)],
            }
        }
        Some(Fetched::Refunds(refunds)) if refund => order_refunds(&order_id, field, body, data, refunds, context),
        Some(Fetched::NotFound) => {
            let (kind, event_id) = match refund {
                true => ("refunds", None),
                false => ("order", Some(format!("bigcommerce:order:{order_id}"))),
            };
            let message = format!(
                "names order {order_id}, which BigCommerce's API does not have (HTTP 404 for its {kind}): \
                 nothing is recorded"
            );
            vec![MappedEvent::refused(event_id, FieldError::new(field, message))]
        }
        _ => Vec::new(),
    }
}

/// A placed order as a `purchase`; `None` for an order not placed (see
/// [`PLACED_STATUS_IDS`]). `converted_cart`: the cart a
/// `store/cart/converted` names, whose order is a purchase whatever its
/// status (as without the fetch).
fn order(
    event_id: &str,
    order_id: &str,
    body: &Value,
    fetched: &FetchedOrder,
    converted_cart: Option<String>,
    context: &Context<'_>,
) -> Result<Option<Value>, FieldError> {
    let order = &fetched.order;
    if converted_cart.is_none() {
        let status = order.get("status_id").and_then(Value::as_u64);
        let Some(status) = status else {
            return Err(FieldError::new(at(FETCHED_ORDER, "status_id"), "is required: it says whether it was placed"));
        };
        if !PLACED_STATUS_IDS.contains(&status) {
            return Ok(None);
        }
    }
    let cart_id = id_text(order.get("cart_id")).or(converted_cart);
    let customer_id = id_text(order.get("customer_id"));
    if cart_id.is_none() && customer_id.is_none() {
        return Err(FieldError::new(at(FETCHED_ORDER, "cart_id"), "is required when the order names no customer"));
    }
    let items = context.lines(&fetched.products, FETCHED_ORDER_PRODUCTS, order_line);
    let occurred = match time(order.get("date_created"), &at(FETCHED_ORDER, "date_created"))? {
        Some(t) => Some(t),
        None => time(body.get("created_at"), "created_at")?,
    };
    let contact = Contact {
        email: text(order.pointer("/billing_address/email")),
        phone: text(order.pointer("/billing_address/phone")),
        first_name: text(order.pointer("/billing_address/first_name")),
        ..Contact::default()
    };
    let mut event = Canonical::new(event_id, "purchase");
    event
        .set("order_id", Some(order_id.to_owned()))
        .set("cart_id", cart_id)
        .set("customer_id", customer_id)
        .set("occurred_at", occurred)
        .set(
            "currency",
            currency(order.get("currency_code"), &at(FETCHED_ORDER, "currency_code"))?
                .or_else(|| context.shop_currency.map(str::to_owned)),
        )
        .set("value", money(order.get("total_inc_tax"), &at(FETCHED_ORDER, "total_inc_tax"))?)
        .set("items", (!items.is_empty()).then_some(Value::Array(items)))
        .set("customer", contact.into_value());
    Ok(Some(event.into_value()))
}

/// One line of an order as `GET /v2/orders/{id}/products` lists it.
fn order_line(line: &Value, path: &str) -> Result<Value, FieldError> {
    let item_id = id_text(line.get("variant_id"))
        .or_else(|| id_text(line.get("product_id")))
        .ok_or_else(|| FieldError::new(at(path, "variant_id"), "is required (or product_id)"))?;
    let price = match money(line.get("price_inc_tax"), &at(path, "price_inc_tax"))? {
        Some(price) => Some(price),
        None => money(line.get("base_price"), &at(path, "base_price"))?,
    };
    let mut item = Canonical(serde_json::Map::new());
    item.set("item_id", Some(item_id))
        .set("item_name", text(line.get("name")))
        .set("price", price)
        .set("quantity", Some(quantity(line.get("quantity"), &at(path, "quantity"))?));
    Ok(item.into_value())
}

/// The refund a `store/order/refund/created` names (`data.refund.refund_id`;
/// every refund of the order when it names none) as a `return` keyed by the
/// refund (`bigcommerce:refund:{id}`), worth what its payments that were not
/// declined paid back (`total_amount` when it lists none). Its customer,
/// cart and currency come from the order's stored purchase (the refund
/// names none); `field` names the order in the delivery. A named refund the
/// list lacks yet is answered `retry` while the delivery is fresh.
fn order_refunds(
    order_id: &str,
    field: &str,
    body: &Value,
    data: &Value,
    refunds: &[Value],
    context: &Context<'_>,
) -> Vec<MappedEvent> {
    let named = id_text(data.pointer("/refund/refund_id"));
    let chosen: Vec<(usize, &Value)> =
        refunds.iter().enumerate().filter(|(_, r)| named.is_none() || id_text(r.get("id")) == named).collect();
    if let (Some(id), true) = (&named, chosen.is_empty()) {
        let message = format!("names refund {id}, which is not among order {order_id}'s refunds at BigCommerce");
        let event_id = Some(format!("bigcommerce:refund:{id}"));
        let refused = MappedEvent::refused(event_id, FieldError::new("data.refund.refund_id", message));
        let occurred_at = time(body.get("created_at"), "created_at").ok().flatten().and_then(|t| t.parse().ok());
        let not_yet = occurred_at.map(|occurred_at| NotYet {
            occurred_at,
            reason: format!(
                "names refund {id}, which BigCommerce's API does not list for order {order_id} yet; send it again \
                 (a repeat is harmless)"
            ),
        });
        return vec![MappedEvent { not_yet, ..refused }];
    }
    chosen
        .into_iter()
        .filter_map(|(i, refund)| {
            let path = format!("{FETCHED_REFUNDS}[{i}]");
            let Some(id) = id_text(refund.get("id")) else {
                return Some(MappedEvent::refused(None, FieldError::new(at(&path, "id"), "is required")));
            };
            let event_id = format!("bigcommerce:refund:{id}");
            match refund_return(&event_id, order_id, refund, &path) {
                Ok(None) => None,
                result => {
                    let mapped = MappedEvent::from_result(&event_id, result.map(Option::unwrap_or_default), context);
                    Some(MappedEvent { owner_from_order: Some(field.to_owned()), ..mapped })
                }
            }
        })
        .collect()
}

/// One refund as a `return`; `None` when every payment of it was declined
/// (nothing was paid back).
fn refund_return(event_id: &str, order_id: &str, refund: &Value, path: &str) -> Result<Option<Value>, FieldError> {
    let payments = refund.get("payments").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let value = if payments.is_empty() {
        decimal(refund.get("total_amount"), &at(path, "total_amount"))?
    } else {
        let mut paid = None;
        for (i, payment) in payments.iter().enumerate() {
            if payment.get("is_declined").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let amount = decimal(payment.get("amount"), &at(path, &format!("payments[{i}].amount")))?;
            paid = Some(paid.unwrap_or_default() + amount.unwrap_or_default());
        }
        match paid {
            None => return Ok(None),
            some => some,
        }
    };
    let mut event = Canonical::new(event_id, "return");
    event
        .set("order_id", Some(order_id.to_owned()))
        .set("occurred_at", time(refund.get("created"), &at(path, "created"))?)
        .set("value", value.map(|v| v.normalize().to_string()));
    Ok(Some(event.into_value()))
}

fn event(
    kind: &str,
    event_id: &str,
    body: &Value,
    data: &Value,
    snapshot: Option<(&Value, &str)>,
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
        (kind, Some((cart, prefix))) => {
            let fetched = context.fetched_cart().and_then(|f| f.customer.as_ref());
            let customer = data.get("customer").filter(|c| c.is_object()).or(fetched);
            cart_snapshot(kind, event_id, (cart, prefix), customer, occurred, context)
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

/// A cart as the Management API returns it; `prefix` names where it came
/// from in errors and warnings (`data.cart`, or [`FETCHED_CART`]).
fn cart_snapshot(
    kind: &str,
    event_id: &str,
    (cart, prefix): (&Value, &str),
    customer: Option<&Value>,
    occurred: Option<String>,
    context: &Context<'_>,
) -> Result<Value, FieldError> {
    let cart_id = id_text(cart.get("id")).ok_or_else(|| FieldError::new(at(prefix, "id"), "is required"))?;
    let mut groups: Vec<(&[Value], String)> = Vec::new();
    for group in ["physical_items", "digital_items"] {
        let path = at(prefix, &format!("line_items.{group}"));
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
    let currency = currency(cart.pointer("/currency/code"), &at(prefix, "currency.code"))?;
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
        .set("occurred_at", time(cart.get("updated_time"), &at(prefix, "updated_time"))?.or(occurred))
        .set("currency", currency.or_else(|| context.shop_currency.map(str::to_owned)))
        .set("items", Some(Value::Array(items)))
        .set("customer", contact.into_value());
    Ok(event.into_value())
}
