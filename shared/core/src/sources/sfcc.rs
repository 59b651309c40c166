//! Salesforce Commerce Cloud basket and order documents, as SCAPI returns
//! them (camelCase: `basketId`, `productItems`) or OCAPI (snake_case:
//! `basket_id`, `product_items`). SFCC has no outbound webhooks: a hook
//! script posts the document (see `examples/sfcc/`), signed the way
//! Cartback signs its own API (`X-Cartback-Signature: t=…,v2=…` over
//! time, `POST`, `/v1/sources/sfcc` and the body) with the source's
//! secret, within the 5-minute replay window.
//!
//! | Document | Canonical event | Notes |
//! |---|---|---|
//! | basket (`basketId`) | `cart_update` (full snapshot) | event id = basket id + `lastModified` |
//! | order (`orderNo`) | `purchase` | cart = the order's `basketId` or `c_cartbackBasketId`; value `orderTotal` |
//!
//! Contact from `customerInfo` (`email`, `customerId`), the first name
//! from the billing address, email consent from the custom attribute
//! `customerInfo.c_cartbackEmailConsent` (SFCC has no standard marketing
//! opt-in on a basket; custom `c_` attributes are its extension point). A
//! basket line that cannot be read is left out with a warning naming it.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    at, currency, id_text, money, quantity, text, time, Canonical, Contact, Context, Headers, MappedEvent, SourceError,
    SourceSecret,
};
use crate::event::FieldError;
use crate::signing::{verify_request, Accept, Secret, SignatureError, SignedRequest, SIGNATURE_HEADER};

/// The path the hook script signs.
pub const SIGNED_PATH: &str = "/v1/sources/sfcc";

pub(crate) fn verify(
    secret: &SourceSecret,
    headers: &Headers,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SourceError> {
    const HEADER: &str = "X-Cartback-Signature";
    let key = Secret::new(secret.bytes().to_vec()).map_err(|_| SourceError::BadSignature(HEADER))?;
    let request = SignedRequest { method: "POST", path_and_query: SIGNED_PATH, body };
    verify_request(&key, headers.get(SIGNATURE_HEADER), &request, now, Accept::V2Only).map(|_| ()).map_err(
        |e| match e {
            SignatureError::Missing => SourceError::MissingSignature(HEADER),
            SignatureError::Expired => SourceError::Stale(HEADER),
            _ => SourceError::BadSignature(HEADER),
        },
    )
}

/// A field under its SCAPI (camelCase) or OCAPI (snake_case) name.
fn field<'a>(document: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    document.get(camel).or_else(|| document.get(snake)).filter(|v| !v.is_null())
}

pub(crate) fn map(body: &Value, context: &Context<'_>) -> Result<Vec<MappedEvent>, SourceError> {
    let order_no = id_text(field(body, "orderNo", "order_no"));
    let basket_id = id_text(field(body, "basketId", "basket_id")).or_else(|| id_text(body.get("c_cartbackBasketId")));
    let event = match (&order_no, &basket_id) {
        (Some(order_no), _) => {
            let event_id = format!("sfcc:order:{order_no}");
            MappedEvent::from_result(&event_id, order(&event_id, order_no, basket_id.clone(), body, context), context)
        }
        (None, Some(basket_id)) => {
            let modified =
                text(field(body, "lastModified", "last_modified")).unwrap_or_else(|| context.body_digest.clone());
            let event_id = format!("sfcc:basket:{basket_id}:{modified}");
            MappedEvent::from_result(&event_id, basket(&event_id, basket_id, body, context), context)
        }
        (None, None) => return Err(SourceError::payload("basketId", "is required (or orderNo for an order)")),
    };
    Ok(vec![event])
}

fn basket(event_id: &str, basket_id: &str, body: &Value, context: &Context<'_>) -> Result<Value, FieldError> {
    let mut event = Canonical::new(event_id, "cart_update");
    event
        .set("cart_id", Some(basket_id.to_owned()))
        .set(
            "customer_id",
            id_text(body.pointer("/customerInfo/customerId").or(body.pointer("/customer_info/customer_id"))),
        )
        .set("occurred_at", time(field(body, "lastModified", "last_modified"), "lastModified")?)
        .set(
            "currency",
            currency(body.get("currency"), "currency")?.or_else(|| context.shop_currency.map(str::to_owned)),
        )
        .set("items", Some(product_items(body, context)?))
        .set("customer", contact(body).into_value());
    Ok(event.into_value())
}

fn order(
    event_id: &str,
    order_no: &str,
    basket_id: Option<String>,
    body: &Value,
    context: &Context<'_>,
) -> Result<Value, FieldError> {
    let customer_id = id_text(body.pointer("/customerInfo/customerId").or(body.pointer("/customer_info/customer_id")));
    if basket_id.is_none() && customer_id.is_none() {
        return Err(FieldError::new("c_cartbackBasketId", "is required when the order names no customer"));
    }
    let coupon =
        field(body, "couponItems", "coupon_items").and_then(Value::as_array).and_then(|c| text(c.first()?.get("code")));
    let mut event = Canonical::new(event_id, "purchase");
    event
        .set("order_id", Some(order_no.to_owned()))
        .set("cart_id", basket_id)
        .set("customer_id", customer_id)
        .set("occurred_at", time(field(body, "creationDate", "creation_date"), "creationDate")?)
        .set(
            "currency",
            currency(body.get("currency"), "currency")?.or_else(|| context.shop_currency.map(str::to_owned)),
        )
        .set("value", money(field(body, "orderTotal", "order_total"), "orderTotal")?)
        .set("coupon", coupon)
        .set("customer", contact(body).into_value());
    Ok(event.into_value())
}

/// The basket's lines, the whole cart (see `Context::snapshot_lines`).
fn product_items(body: &Value, context: &Context<'_>) -> Result<Value, FieldError> {
    let lines = match field(body, "productItems", "product_items") {
        None => return Ok(Value::Array(Vec::new())),
        Some(Value::Array(lines)) => lines,
        Some(_) => return Err(FieldError::new("productItems", "must be an array")),
    };
    let items = context.snapshot_lines(&[(lines, "productItems")], |line, path| {
        let item_id = id_text(field(line, "productId", "product_id"))
            .ok_or_else(|| FieldError::new(at(path, "productId"), "is required"))?;
        // `price` is the line's total; `basePrice` the unit price.
        let unit = money(field(line, "basePrice", "base_price"), &at(path, "basePrice"))?;
        let mut item = Canonical(serde_json::Map::new());
        item.set("item_id", Some(item_id))
            .set("item_name", text(field(line, "productName", "product_name")))
            .set("variant", super::variant(options(line)))
            .set("price", unit)
            .set("quantity", Some(quantity(line.get("quantity"), &at(path, "quantity"))?));
        Ok(item.into_value())
    })?;
    Ok(Value::Array(items))
}

/// The line's chosen options as the shop words them (`optionItems[].itemText`), if any.
fn options(line: &Value) -> Option<String> {
    let texts: Vec<String> = field(line, "optionItems", "option_items")?
        .as_array()?
        .iter()
        .filter_map(|o| text(field(o, "itemText", "item_text")))
        .collect();
    Some(texts.join(" / ")).filter(|t| !t.is_empty())
}

fn contact(body: &Value) -> Contact {
    let info = field(body, "customerInfo", "customer_info");
    let billing = field(body, "billingAddress", "billing_address");
    Contact {
        email: info.and_then(|i| text(i.get("email"))),
        phone: billing.and_then(|b| text(b.get("phone"))),
        first_name: billing.and_then(|b| text(field(b, "firstName", "first_name"))),
        email_consent: info.and_then(|i| i.get("c_cartbackEmailConsent")).and_then(Value::as_bool),
        ..Contact::default()
    }
}
