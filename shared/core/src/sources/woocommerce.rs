//! WooCommerce webhooks (REST API v3 order payloads). The topic is the
//! `X-WC-Webhook-Topic` header; the signature `X-WC-Webhook-Signature` is
//! the base64 HMAC-SHA256 of the raw body keyed with the webhook's secret.
//! WooCommerce's delivery id changes on a retry, so event ids come from the
//! order: one purchase per order, one checkout per order modification.
//!
//! A WooCommerce checkout creates the order before payment (`pending`): an
//! unpaid order is the abandoned checkout, and its payment the purchase.
//! The cart is the order's `order_key`, the same on every update.
//!
//! Orders are topics `order.created` and `order.updated`, by their status:
//!
//! | Topic / order status | Canonical event | Notes |
//! |---|---|---|
//! | order, `pending`, `failed`, `checkout-draft` (not `on-hold`: placed, awaiting payment) | `begin_checkout` | id per `date_modified_gmt` |
//! | order, `processing`, `completed` | `purchase` | value `total`; coupon: first `coupon_lines` code |
//! | order, `refunded` | `return` | needs a registered customer (`customer_id` not 0) |
//! | `cart.updated` (a cart plugin's CoCart-style cart) | `cart_update` | cart = `cart_key`; id + `modified` |
//! | anything else, the creation ping (`webhook_id=…`) | nothing | acknowledged |
//!
//! Device from `customer_user_agent`; email consent from the order meta
//! `_cartback_email_consent` (`yes`/`no`), which a checkout checkbox sets:
//! WooCommerce core has no marketing opt-in field (shops add checkout
//! fields as order meta). A line that cannot be read is left out with a
//! warning naming it.

use serde_json::Value;

use super::{
    at, currency, device_from_user_agent, id_text, money, quantity, text, time, Canonical, Contact, Context, Headers,
    MappedEvent, SourceError,
};
use crate::event::FieldError;

pub const SIGNATURE_HEADER: &str = "X-WC-Webhook-Signature";
pub const TOPIC_HEADER: &str = "X-WC-Webhook-Topic";
/// The order meta a checkout checkbox writes for email marketing consent.
pub const CONSENT_META_KEY: &str = "_cartback_email_consent";

/// WooCommerce's test delivery when a webhook is saved: the form body
/// `webhook_id=<n>`, sent unsigned (`deliver_ping`), so it is answered before
/// the signature check; it carries nothing to ingest.
pub(crate) fn ping(body: &[u8]) -> bool {
    body.strip_prefix(b"webhook_id=").is_some_and(|id| !id.is_empty() && id.iter().all(u8::is_ascii_digit))
}

pub(crate) fn map(headers: &Headers, body: &Value, context: &Context<'_>) -> Result<Vec<MappedEvent>, SourceError> {
    let topic = headers
        .get(TOPIC_HEADER)
        .ok_or_else(|| SourceError::payload(TOPIC_HEADER, "is required: it names what the webhook is about"))?;
    match topic {
        "order.created" | "order.updated" => Ok(order(body, context).into_iter().collect()),
        "cart.updated" => {
            let event_id = match (id_text(body.get("cart_key")), text(body.get("modified"))) {
                (Some(key), Some(modified)) => format!("woocommerce:cart:{key}:{modified}"),
                _ => format!("woocommerce:{}", context.body_digest),
            };
            Ok(vec![MappedEvent::from_result(&event_id, cart(&event_id, body, context), context)])
        }
        _ => Ok(Vec::new()),
    }
}

fn order(body: &Value, context: &Context<'_>) -> Option<MappedEvent> {
    let Some(order_id) = id_text(body.get("id")) else {
        return Some(MappedEvent::refused(None, FieldError::new("id", "is required: it is the order's id")));
    };
    let status = text(body.get("status")).unwrap_or_default();
    let (kind, event_id) = match status.as_str() {
        // `on-hold` is a placed order awaiting payment (bank transfer,
        // cheque): not an abandoned checkout, so it maps to nothing.
        "pending" | "failed" | "checkout-draft" => {
            let modified = text(body.get("date_modified_gmt")).unwrap_or_else(|| context.body_digest.clone());
            ("begin_checkout", format!("woocommerce:order:{order_id}:checkout:{modified}"))
        }
        "processing" | "completed" => ("purchase", format!("woocommerce:order:{order_id}:purchase")),
        "refunded" => ("return", format!("woocommerce:order:{order_id}:refund")),
        _ => return None,
    };
    Some(MappedEvent::from_result(&event_id, order_event(kind, &event_id, &order_id, body, context), context))
}

fn order_event(
    kind: &str,
    event_id: &str,
    order_id: &str,
    body: &Value,
    context: &Context<'_>,
) -> Result<Value, FieldError> {
    let cart_id = id_text(body.get("order_key"));
    let customer_id = id_text(body.get("customer_id"));
    let mut event = Canonical::new(event_id, kind);
    let occurred = time(body.get("date_modified_gmt"), "date_modified_gmt")?
        .or(time(body.get("date_created_gmt"), "date_created_gmt")?);
    event
        .set("occurred_at", occurred)
        .set("customer_id", customer_id.clone())
        .set(
            "currency",
            currency(body.get("currency"), "currency")?.or_else(|| context.shop_currency.map(str::to_owned)),
        )
        .set("device", text(body.get("customer_user_agent")).map(|ua| device_from_user_agent(&ua)))
        .set("customer", contact(body).into_value());
    // Items are read only where they are used: a paid order with a line
    // whose product was deleted is still a purchase.
    match kind {
        "begin_checkout" => {
            let cart_id = cart_id.ok_or_else(|| FieldError::new("order_key", "is required: it is the cart's id"))?;
            event.set("cart_id", Some(cart_id)).set("items", Some(line_items(body.get("line_items"), context)?));
        }
        "purchase" => {
            if cart_id.is_none() && customer_id.is_none() {
                return Err(FieldError::new("order_key", "is required when the order names no customer"));
            }
            let coupon = body.get("coupon_lines").and_then(Value::as_array).and_then(|c| text(c.first()?.get("code")));
            event
                .set("cart_id", cart_id)
                .set("order_id", Some(order_id.to_owned()))
                .set("value", money(body.get("total"), "total")?)
                .set("coupon", coupon);
        }
        _ => {
            if customer_id.is_none() {
                return Err(FieldError::new(
                    "customer_id",
                    "is 0 (a guest): a return belongs to a registered customer",
                ));
            }
            event
                .set("order_id", Some(order_id.to_owned()))
                .set("items", Some(line_items(body.get("line_items"), context)?));
        }
    }
    Ok(event.into_value())
}

/// The order's lines, each read alone (see `Context::lines`).
fn line_items(value: Option<&Value>, context: &Context<'_>) -> Result<Value, FieldError> {
    let lines = value.and_then(Value::as_array).ok_or_else(|| FieldError::new("line_items", "must be an array"))?;
    Ok(Value::Array(context.lines(lines, "line_items", |line, path| {
        let item_id = id_text(line.get("variation_id"))
            .or_else(|| id_text(line.get("product_id")))
            .ok_or_else(|| FieldError::new(at(path, "product_id"), "is required"))?;
        let mut item = Canonical(serde_json::Map::new());
        item.set("item_id", Some(item_id))
            .set("item_name", text(line.get("name")))
            .set("variant", super::variant(variation(line)))
            .set("price", money(line.get("price"), &at(path, "price"))?)
            .set("quantity", Some(quantity(line.get("quantity"), &at(path, "quantity"))?))
            .set("image_url", text(line.pointer("/image/src")).filter(|u| u.starts_with("https://")));
        Ok(item.into_value())
    })))
}

/// A variation's attributes (`Black / M`): the line's `meta_data` entries
/// that are product attributes (`pa_*` global ones, `attribute_*`), as the
/// shop shows them (`display_value`, not the slug). Other meta is left out:
/// a custom attribute's key cannot be told from a plugin's (a gift
/// message). Values the name already shows are left out too (WooCommerce
/// names a variation `Shirt - Color: Black, Size: M`). None for a simple
/// product.
fn variation(line: &Value) -> Option<String> {
    if id_text(line.get("variation_id")).is_none_or(|id| id == "0") {
        return None;
    }
    let name = text(line.get("name")).unwrap_or_default().to_lowercase();
    let values: Vec<String> = line
        .get("meta_data")?
        .as_array()?
        .iter()
        .filter(|m| {
            m.get("key").and_then(Value::as_str).is_some_and(|k| k.starts_with("pa_") || k.starts_with("attribute_"))
        })
        .filter_map(|m| text(m.get("display_value")).or_else(|| text(m.get("value"))))
        .filter(|v| !name.contains(&format!(": {}", v.to_lowercase())))
        .collect();
    Some(values.join(" / ")).filter(|v| !v.is_empty())
}

fn contact(body: &Value) -> Contact {
    let consent = body.get("meta_data").and_then(Value::as_array).and_then(|meta| {
        let entry = meta.iter().find(|m| m.get("key").and_then(Value::as_str) == Some(CONSENT_META_KEY))?;
        match entry.get("value")? {
            Value::Bool(b) => Some(*b),
            Value::String(s) if matches!(s.as_str(), "yes" | "1" | "true") => Some(true),
            Value::String(s) if matches!(s.as_str(), "no" | "0" | "false") => Some(false),
            _ => None,
        }
    });
    Contact {
        email: text(body.pointer("/billing/email")),
        phone: text(body.pointer("/billing/phone")),
        first_name: text(body.pointer("/billing/first_name")),
        locale: None,
        timezone: None,
        email_consent: consent,
    }
}

/// A cart plugin's whole cart (CoCart's shape): `cart_key`, `items` with
/// `id`, `name`, `price` and `quantity` (a number or `{"value": n}`),
/// `currency.currency_code`, and the customer's `billing_address`.
fn cart(event_id: &str, body: &Value, context: &Context<'_>) -> Result<Value, FieldError> {
    let cart_id = id_text(body.get("cart_key")).ok_or_else(|| FieldError::new("cart_key", "is required"))?;
    let lines =
        body.get("items").and_then(Value::as_array).ok_or_else(|| FieldError::new("items", "must be an array"))?;
    let items = context.snapshot_lines(&[(lines, "items")], |line, path| {
        let item_id = id_text(line.get("id")).ok_or_else(|| FieldError::new(at(path, "id"), "is required"))?;
        let count = line.get("quantity").map(|q| q.get("value").unwrap_or(q));
        let mut item = Canonical(serde_json::Map::new());
        item.set("item_id", Some(item_id))
            .set("item_name", text(line.get("name")))
            .set("price", money(line.get("price"), &at(path, "price"))?)
            .set("quantity", Some(quantity(count, &at(path, "quantity"))?));
        Ok(item.into_value())
    })?;
    let currency = currency(body.pointer("/currency/currency_code"), "currency.currency_code")?;
    let contact = Contact {
        email: text(body.pointer("/customer/billing_address/billing_email")),
        first_name: text(body.pointer("/customer/billing_address/billing_first_name")),
        phone: text(body.pointer("/customer/billing_address/billing_phone")),
        ..Contact::default()
    };
    let mut event = Canonical::new(event_id, "cart_update");
    event
        .set("cart_id", Some(cart_id))
        .set("customer_id", id_text(body.get("customer_id")))
        .set("occurred_at", time(body.get("modified"), "modified")?)
        .set("currency", currency.or_else(|| context.shop_currency.map(str::to_owned)))
        .set("items", Some(Value::Array(items)))
        .set("customer", contact.into_value());
    Ok(event.into_value())
}
