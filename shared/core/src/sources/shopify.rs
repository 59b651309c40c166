//! Shopify webhooks (JSON, Admin API 2024-10 payloads). The topic is the
//! `X-Shopify-Topic` header; the signature is `X-Shopify-Hmac-Sha256`, the
//! base64 HMAC-SHA256 of the raw body keyed with the app's client secret;
//! `X-Shopify-Webhook-Id` is the same on every retry of one delivery, so
//! it is the idempotency key.
//!
//! | Topic | Canonical event | Notes |
//! |---|---|---|
//! | `checkouts/create`, `checkouts/update` | `begin_checkout` (snapshot) | cart = `token`; completed: nothing |
//! | `orders/create` | `purchase` | cart id = `checkout_token`; value `total_price`; coupon = first discount code |
//! | `orders/updated` | `return` per refund in `refunds` | event id per refund id, so repeats are duplicates |
//! | `refunds/create` | `return` | the same event id per refund; customer and cart from the stored purchase of `order_id` |
//! | `customers/update` | `identify` | email consent from `email_marketing_consent.state` |
//!
//! A refund's value is what its successful `refund` transactions paid back
//! (`transactions[].amount`, in their `currency`); a refund without one
//! counts its lines' `subtotal`s. Its items are the refunded lines at their
//! unit price and refunded quantity. A line that cannot be read (of a
//! checkout or a refund) is left out with a warning naming it.

use rust_decimal::Decimal;
use serde_json::Value;

use super::{
    at, currency, decimal, device_from_user_agent, id_text, money, quantity, text, time, Canonical, Contact, Context,
    Headers, MappedEvent, SourceError,
};
use crate::event::FieldError;

pub const SIGNATURE_HEADER: &str = "X-Shopify-Hmac-Sha256";
pub const TOPIC_HEADER: &str = "X-Shopify-Topic";
pub const WEBHOOK_ID_HEADER: &str = "X-Shopify-Webhook-Id";

pub(crate) fn map(headers: &Headers, body: &Value, context: &Context<'_>) -> Result<Vec<MappedEvent>, SourceError> {
    let topic = headers
        .get(TOPIC_HEADER)
        .ok_or_else(|| SourceError::payload(TOPIC_HEADER, "is required: it names what the webhook is about"))?;
    let delivery = headers.get(WEBHOOK_ID_HEADER).map(str::to_owned).unwrap_or_else(|| context.body_digest.clone());
    let event_id = format!("shopify:{delivery}");
    Ok(match topic {
        "checkouts/create" | "checkouts/update" => {
            if body.get("completed_at").is_some_and(|v| !v.is_null()) {
                return Ok(Vec::new());
            }
            vec![MappedEvent::from_result(&event_id, checkout(&event_id, body, context), context)]
        }
        "orders/create" => vec![MappedEvent::from_result(&event_id, order(&event_id, body, context), context)],
        "orders/updated" => order_refunds(body, context),
        "refunds/create" => {
            // Keyed like the refunds of `orders/updated`: one refund, one return, whichever topic brings it.
            let event_id = id_text(body.get("id")).map_or(event_id, |id| format!("shopify:refund:{id}"));
            let mapped = MappedEvent::from_result(&event_id, refund(&event_id, body, None, "", context), context);
            vec![MappedEvent { owner_from_order: Some("order_id".to_owned()), ..mapped }]
        }
        "customers/update" | "customers/create" => {
            vec![MappedEvent::from_result(&event_id, customer_update(&event_id, body), context)]
        }
        _ => Vec::new(),
    })
}

fn checkout(event_id: &str, body: &Value, context: &Context<'_>) -> Result<Value, FieldError> {
    let cart_id =
        id_text(body.get("token")).ok_or_else(|| FieldError::new("token", "is required: it is the cart's id"))?;
    let mut event = Canonical::new(event_id, "begin_checkout");
    event
        .set("cart_id", Some(cart_id))
        .set("customer_id", id_text(body.pointer("/customer/id")))
        .set("occurred_at", time(body.get("updated_at"), "updated_at")?.or(time(body.get("created_at"), "created_at")?))
        .set("currency", shop_currency(body, context)?)
        .set("items", line_items(body.get("line_items"), "line_items", context))
        .set("device", user_agent_device(body))
        .set("customer", contact(body).into_value());
    Ok(event.into_value())
}

fn order(event_id: &str, body: &Value, context: &Context<'_>) -> Result<Value, FieldError> {
    let order_id = id_text(body.get("id")).ok_or_else(|| FieldError::new("id", "is required: it is the order's id"))?;
    let cart_id = id_text(body.get("checkout_token")).or_else(|| id_text(body.get("cart_token")));
    let customer_id = id_text(body.pointer("/customer/id"));
    if cart_id.is_none() && customer_id.is_none() {
        return Err(FieldError::new("checkout_token", "is required when the order names no customer"));
    }
    let coupon = body.get("discount_codes").and_then(Value::as_array).and_then(|c| text(c.first()?.get("code")));
    let mut event = Canonical::new(event_id, "purchase");
    event
        .set("order_id", Some(order_id))
        .set("cart_id", cart_id)
        .set("customer_id", customer_id)
        .set(
            "occurred_at",
            time(body.get("processed_at"), "processed_at")?.or(time(body.get("created_at"), "created_at")?),
        )
        .set("currency", shop_currency(body, context)?)
        .set("value", money(body.get("total_price"), "total_price")?)
        .set("coupon", coupon)
        .set("device", user_agent_device(body))
        .set("customer", contact(body).into_value());
    Ok(event.into_value())
}

/// `orders/updated` carries the order's refunds with its customer: one
/// `return` per refund, keyed by the refund's id (the order is updated many
/// times; each refund counts once).
fn order_refunds(body: &Value, context: &Context<'_>) -> Vec<MappedEvent> {
    let Some(refunds) = body.get("refunds").and_then(Value::as_array) else { return Vec::new() };
    refunds
        .iter()
        .enumerate()
        .map(|(i, refund_body)| {
            let path = format!("refunds[{i}]");
            match id_text(refund_body.get("id")) {
                None => MappedEvent::refused(None, FieldError::new(at(&path, "id"), "is required")),
                Some(id) => {
                    let event_id = format!("shopify:refund:{id}");
                    let event = refund(&event_id, refund_body, Some(body), &path, context);
                    MappedEvent::from_result(&event_id, event, context)
                }
            }
        })
        .collect()
}

/// A refund as a `return`: its refunded lines, for the order's customer.
/// A bare `refunds/create` (no `order`) names no customer: the event leaves
/// it out, and ingest takes it from the purchase stored for `order_id`.
fn refund(
    event_id: &str,
    refund: &Value,
    order: Option<&Value>,
    prefix: &str,
    context: &Context<'_>,
) -> Result<Value, FieldError> {
    let order_id = id_text(refund.get("order_id"))
        .or_else(|| order.and_then(|o| id_text(o.get("id"))))
        .ok_or_else(|| FieldError::new(at(prefix, "order_id"), "is required"))?;
    let customer_id = order.and_then(|o| id_text(o.pointer("/customer/id")));
    if order.is_some() && customer_id.is_none() {
        let message = "names an order without a customer (a guest's): a return belongs to a registered customer";
        return Err(FieldError::new(at(prefix, "order_id"), message));
    }
    let lines = refund.get("refund_line_items").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let items = context.lines(lines, &at(prefix, "refund_line_items"), |line, path| {
        let mut item = line_item(line.get("line_item").unwrap_or(&Value::Null), &at(path, "line_item"))?;
        item["quantity"] = Value::from(quantity(line.get("quantity"), &at(path, "quantity"))?);
        Ok(item)
    });
    let (value, paid_in) = match refunded(refund, prefix)? {
        Some((value, currency)) => (Some(value), currency),
        None => (line_subtotals(lines, prefix)?, None),
    };
    let currency = match paid_in {
        Some(code) => Some(code),
        None => shop_currency(order.unwrap_or(refund), context)?,
    };
    let mut event = Canonical::new(event_id, "return");
    event
        .set("order_id", Some(order_id))
        .set("customer_id", customer_id)
        .set("occurred_at", time(refund.get("created_at"), &at(prefix, "created_at"))?)
        .set("currency", currency)
        .set("value", value.map(|v| v.normalize().to_string()))
        .set("items", Some(Value::Array(items)));
    Ok(event.into_value())
}

/// The money a refund paid back: its successful `refund` transactions'
/// amounts, with their currency; `None` when it has no such transaction.
fn refunded(refund: &Value, prefix: &str) -> Result<Option<(Decimal, Option<String>)>, FieldError> {
    let transactions = refund.get("transactions").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let mut paid: Option<(Decimal, Option<String>)> = None;
    for (i, transaction) in transactions.iter().enumerate() {
        let is = |field: &str, expected: &str| transaction.get(field).and_then(Value::as_str) == Some(expected);
        if !is("kind", "refund") || !is("status", "success") {
            continue;
        }
        let path = at(prefix, &format!("transactions[{i}]"));
        let Some(amount) = decimal(transaction.get("amount"), &at(&path, "amount"))? else { continue };
        let code = currency(transaction.get("currency"), &at(&path, "currency"))?;
        let (total, known) = paid.get_or_insert((Decimal::ZERO, None));
        *total += amount;
        if known.is_none() {
            *known = code;
        }
    }
    Ok(paid)
}

/// The refunded lines' `subtotal`s (after discounts, before tax), when any line has one.
fn line_subtotals(lines: &[Value], prefix: &str) -> Result<Option<Decimal>, FieldError> {
    let mut total: Option<Decimal> = None;
    for (i, line) in lines.iter().enumerate() {
        let path = at(prefix, &format!("refund_line_items[{i}].subtotal"));
        if let Some(subtotal) = decimal(line.get("subtotal"), &path)? {
            *total.get_or_insert(Decimal::ZERO) += subtotal;
        }
    }
    Ok(total)
}

fn customer_update(event_id: &str, body: &Value) -> Result<Value, FieldError> {
    let customer_id = id_text(body.get("id")).ok_or_else(|| FieldError::new("id", "is required"))?;
    let mut contact = Contact {
        email: text(body.get("email")),
        phone: text(body.get("phone")),
        first_name: text(body.get("first_name")),
        locale: text(body.get("locale")),
        ..Contact::default()
    };
    contact.email_consent = marketing_state(body.get("email_marketing_consent"));
    let mut event = Canonical::new(event_id, "identify");
    event
        .set("customer_id", Some(customer_id))
        .set("occurred_at", time(body.get("updated_at"), "updated_at")?)
        .set("customer", contact.into_value());
    Ok(event.into_value())
}

/// `subscribed` grants, `unsubscribed` withdraws; `not_subscribed` and
/// `pending` (double opt-in not confirmed) say nothing new.
fn marketing_state(consent: Option<&Value>) -> Option<bool> {
    match consent?.get("state")?.as_str()? {
        "subscribed" => Some(true),
        "unsubscribed" => Some(false),
        _ => None,
    }
}

/// The buyer's contact data on a checkout or an order.
fn contact(body: &Value) -> Contact {
    let customer = body.get("customer");
    let first_name = [
        body.pointer("/customer/first_name"),
        body.pointer("/billing_address/first_name"),
        body.pointer("/shipping_address/first_name"),
    ]
    .into_iter()
    .find_map(text);
    // The customer's recorded consent is the truth; the checkout box only
    // adds a grant (an unticked box withdraws nothing given elsewhere), and
    // only where no state is recorded or it is `not_subscribed`: a `pending`
    // double opt-in the shopper has not confirmed is no grant.
    let recorded = customer.and_then(|c| c.get("email_marketing_consent"));
    let box_may_grant = recorded.and_then(|c| c.get("state")?.as_str()).is_none_or(|state| state == "not_subscribed");
    let email_consent = marketing_state(recorded).or_else(|| {
        body.get("buyer_accepts_marketing").and_then(Value::as_bool).filter(|ticked| *ticked && box_may_grant)
    });
    Contact {
        email: text(body.get("email")).or_else(|| text(body.pointer("/customer/email"))),
        phone: text(body.get("phone")).or_else(|| text(body.pointer("/customer/phone"))),
        first_name,
        locale: text(body.get("customer_locale")),
        timezone: None,
        email_consent,
    }
}

/// The presentment currency (what the buyer saw), else the shop's.
fn shop_currency(body: &Value, context: &Context<'_>) -> Result<Option<String>, FieldError> {
    Ok(currency(body.get("presentment_currency"), "presentment_currency")?
        .or(currency(body.get("currency"), "currency")?)
        .or_else(|| context.shop_currency.map(str::to_owned)))
}

fn user_agent_device(body: &Value) -> Option<&'static str> {
    text(body.pointer("/client_details/user_agent")).map(|ua| device_from_user_agent(&ua))
}

/// The checkout's lines, each read alone; none when `line_items` is not a
/// list (the checkout then keeps the cart's items).
fn line_items(value: Option<&Value>, path: &str, context: &Context<'_>) -> Option<Value> {
    let lines = value.and_then(Value::as_array)?;
    Some(Value::Array(context.lines(lines, path, line_item)))
}

/// A line item: the variant is what was bought (a product has several).
fn line_item(line: &Value, path: &str) -> Result<Value, FieldError> {
    let item_id = id_text(line.get("variant_id"))
        .or_else(|| id_text(line.get("product_id")))
        .or_else(|| id_text(line.get("sku")))
        .ok_or_else(|| FieldError::new(at(path, "variant_id"), "is required (or product_id, or sku)"))?;
    let mut item = Canonical(serde_json::Map::new());
    item.set("item_id", Some(item_id))
        .set("item_name", text(line.get("title")))
        .set("variant", super::variant(text(line.get("variant_title"))))
        .set("price", money(line.get("price"), &at(path, "price"))?)
        .set("quantity", Some(quantity(line.get("quantity"), &at(path, "quantity"))?))
        .set("image_url", text(line.pointer("/image/src")).filter(|u| u.starts_with("https://")));
    Ok(item.into_value())
}
