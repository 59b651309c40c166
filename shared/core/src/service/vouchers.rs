//! Vouchers at checkout and at purchase: the storefront's validation of a
//! code (`POST /v1/vouchers/validate`) and the redemption of a code by the
//! purchase event that used it (called by ingest).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{json, Value};

use crate::cart::money_text;
use crate::contact::Email;
use crate::event::{check_id, optional_decimal, optional_str, required_str, Event, EventType, FieldError};
use crate::ids::{CartId, CustomerId};
use crate::measure::facts::{Fact, FactKind};
use crate::ports::{FactStore, PortError, Timeline, TimelineEntry, TimelineKind, VoucherStore};
use crate::voucher::{
    Checkout, Discount, Presenter, RedeemOutcome, Redemption, Refusal, Voucher, VoucherCode, VoucherStatus,
};

/// The longest code text the validate route reads (a code is 17 characters
/// with its prefix; customers add spaces).
pub const MAX_CODE_TEXT_CHARS: usize = 64;

/// A validate request, read from its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidateRequest {
    /// As the customer typed it; a text that is not one of our codes is
    /// answered `unknown`, not refused.
    pub code: String,
    pub checkout: Checkout,
}

impl ValidateRequest {
    /// Reads `{code, customer_id | email, cart_id, subtotal, currency}`;
    /// a bad field is named in the error.
    pub fn parse(body: &[u8], at: DateTime<Utc>) -> Result<ValidateRequest, FieldError> {
        let raw: Value = serde_json::from_slice(body).map_err(|_| FieldError::new("body", "must be a JSON object"))?;
        if !raw.is_object() {
            return Err(FieldError::new("body", "must be a JSON object"));
        }
        let field = |name: &str| raw.get(name).unwrap_or(&Value::Null);
        let code = required_str(field("code"), "code")?.trim().to_owned();
        if code.is_empty() {
            return Err(FieldError::new("code", "is required"));
        }
        if code.chars().count() > MAX_CODE_TEXT_CHARS {
            return Err(FieldError::new("code", format!("is longer than {MAX_CODE_TEXT_CHARS} characters")));
        }
        let customer_id = optional_str(field("customer_id"), "customer_id")?;
        let email = optional_str(field("email"), "email")?;
        let presenter = match (customer_id, email) {
            (Some(id), None) => Presenter::Customer(check_id::<CustomerId>("customer_id", id)?),
            (None, Some(email)) => Presenter::Guest(
                Email::parse(email).map_err(|_| FieldError::new("email", "is not a valid email address"))?,
            ),
            (Some(_), Some(_)) => {
                return Err(FieldError::new("customer_id", "give either customer_id or email, not both"))
            }
            (None, None) => return Err(FieldError::new("customer_id", "customer_id or email is required")),
        };
        let cart_id: CartId = check_id("cart_id", required_str(field("cart_id"), "cart_id")?)?;
        let subtotal = optional_decimal(Some(field("subtotal")), "subtotal")?
            .ok_or_else(|| FieldError::new("subtotal", "is required"))?;
        let currency = required_str(field("currency"), "currency")?;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(FieldError::new("currency", "must be an ISO 4217 code of three capital letters, e.g. EUR"));
        }
        let checkout = Checkout { presenter, cart_id, subtotal, currency: currency.to_owned(), at };
        Ok(ValidateRequest { code, checkout })
    }
}

/// The answer to a validate request. The terms are shown to the code's
/// owner only: an unknown code or a stranger's gets the reason alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Validation {
    pub valid: bool,
    pub reason: Option<Refusal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent_off: Option<String>,
    /// The most a percentage takes off, when the tier caps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_discount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_off: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub free_shipping: bool,
    /// What the code takes off this subtotal (none for free shipping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount_amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_cart_value: Option<String>,
    pub currency: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Validation {
    fn refused(reason: Refusal) -> Validation {
        Validation {
            valid: false,
            reason: Some(reason),
            percent_off: None,
            max_discount: None,
            amount_off: None,
            free_shipping: false,
            discount_amount: None,
            min_cart_value: None,
            currency: None,
            expires_at: None,
        }
    }

    fn of(voucher: &Voucher, checkout: &Checkout, outcome: Result<(), Refusal>) -> Validation {
        let terms = &voucher.terms;
        let mut answer = Validation {
            valid: outcome.is_ok(),
            reason: outcome.err(),
            currency: Some(terms.currency.clone()),
            expires_at: Some(voucher.expires_at),
            min_cart_value: terms.min_cart_value.map(money_text),
            ..Validation::refused(Refusal::Unknown)
        };
        match &terms.discount {
            Discount::PercentOff { percent, max_amount } => {
                answer.percent_off = Some(percent.normalize().to_string());
                answer.max_discount = max_amount.map(money_text);
            }
            Discount::AmountOff { amount } => answer.amount_off = Some(money_text(*amount)),
            Discount::FreeShipping => answer.free_shipping = true,
        }
        if answer.valid {
            answer.discount_amount = terms.discount.amount_on(checkout.subtotal).map(money_text);
        }
        answer
    }
}

/// Answers whether the code may be used at this checkout.
pub async fn validate_voucher<S: VoucherStore + ?Sized>(
    store: &S,
    request: &ValidateRequest,
) -> Result<Validation, PortError> {
    let Ok(code) = VoucherCode::parse(&request.code) else { return Ok(Validation::refused(Refusal::Unknown)) };
    let Some(voucher) = store.voucher(&code).await? else { return Ok(Validation::refused(Refusal::Unknown)) };
    Ok(match voucher.check(&request.checkout) {
        Err(Refusal::NotYours) => Validation::refused(Refusal::NotYours),
        outcome => Validation::of(&voucher, &request.checkout, outcome),
    })
}

/// The order a purchase event reports, as a redemption needs it.
pub(crate) struct Order<'a> {
    pub event: &'a Event,
    /// The order's value (the event's, else its items'), if known.
    pub value: Option<Decimal>,
    pub currency: Option<&'a str>,
}

/// Redeems the purchase's coupon when it is one of our codes: once, by the
/// first order that uses it; a second order, or a revoked code, is an
/// abuse attempt. Each outcome is a fact and a line on the voucher's cart.
/// A coupon that is not one of ours is an ordinary promotion: nothing here.
/// Idempotent: a replayed purchase finds its own redemption, its fact is
/// recorded once, and its line is not written twice.
pub(crate) async fn redeem_purchase_coupon<S>(store: &S, order: Order<'_>) -> Result<(), PortError>
where
    S: VoucherStore + FactStore + Timeline + ?Sized,
{
    let event = order.event;
    if event.kind != EventType::Purchase {
        return Ok(());
    }
    let Some(code) = event.coupon.as_deref().and_then(|c| VoucherCode::parse(c).ok()) else { return Ok(()) };
    let order_id = event.order_id.clone().unwrap_or_else(|| event.event_id.to_string());
    let Some(voucher) = store.voucher(&code).await? else { return Ok(()) };
    // The discount is known in the voucher's currency only.
    let same_currency = order.currency.is_none_or(|c| c == voucher.terms.currency);
    let discount = order.value.filter(|_| same_currency).and_then(|value| voucher.terms.discount.amount_on(value));
    let redemption = Redemption { order_id: order_id.clone(), at: event.occurred_at, discount };
    let (fact, line) = match store.redeem_voucher(&code, &redemption).await? {
        RedeemOutcome::Unknown => return Ok(()),
        RedeemOutcome::Redeemed(voucher) | RedeemOutcome::AlreadyThisOrder(voucher) => {
            redeemed(&voucher, &order_id, event.occurred_at)
        }
        RedeemOutcome::Refused(voucher, refusal) => abuse(&voucher, &order_id, refusal, event.occurred_at),
    };
    store.record_fact(&fact).await?;
    let cart_id = match &fact.kind {
        FactKind::VoucherRedeemed { cart_id, .. } | FactKind::VoucherAbuse { cart_id, .. } => cart_id.clone(),
        _ => return Ok(()),
    };
    let written = store.timeline(&cart_id).await?.iter().any(|entry| {
        entry.code == line.code && entry.details.get("order_id").and_then(Value::as_str) == Some(order_id.as_str())
    });
    if !written {
        store.append_timeline(&cart_id, &line).await?;
    }
    Ok(())
}

fn redeemed(voucher: &Voucher, order_id: &str, at: DateTime<Utc>) -> (Fact, TimelineEntry) {
    let (discount, when) = match &voucher.status {
        VoucherStatus::Redeemed { discount, at, .. } => (*discount, *at),
        _ => (None, at),
    };
    let fact = Fact::new(
        when,
        FactKind::VoucherRedeemed {
            order_id: order_id.to_owned(),
            campaign_id: voucher.campaign_id.clone(),
            cart_id: voucher.cart_id.clone(),
            customer_key: voucher.customer_key.clone(),
            tier: voucher.terms.tier,
            discount,
            currency: voucher.terms.currency.clone(),
        },
    );
    let off = match discount {
        Some(amount) => format!(", {} {} off", money_text(amount), voucher.terms.currency),
        None => String::new(),
    };
    let message = format!("voucher {} redeemed by order {order_id}{off}", shown(&voucher.code));
    let details = json!({ "order_id": order_id, "tier": voucher.terms.tier, "discount": discount.map(money_text) });
    (fact, TimelineEntry { at: when, kind: TimelineKind::Event, code: "voucher_redeemed".into(), message, details })
}

fn abuse(voucher: &Voucher, order_id: &str, refusal: Refusal, at: DateTime<Utc>) -> (Fact, TimelineEntry) {
    let fact = Fact::new(
        at,
        FactKind::VoucherAbuse {
            order_id: order_id.to_owned(),
            campaign_id: voucher.campaign_id.clone(),
            cart_id: voucher.cart_id.clone(),
            refusal,
        },
    );
    let why = match &voucher.status {
        VoucherStatus::Redeemed { order_id: first, .. } => format!("it was redeemed by order {first}"),
        VoucherStatus::Revoked { .. } => "it was revoked".to_owned(),
        VoucherStatus::Issued => refusal.as_str().replace('_', " "),
    };
    let message =
        format!("abuse attempt: order {order_id} used voucher {} and was refused, {why}", shown(&voucher.code));
    let details = json!({ "order_id": order_id, "refusal": refusal });
    (fact, TimelineEntry { at, kind: TimelineKind::Event, code: "voucher_abuse".into(), message, details })
}

/// A code as a timeline may show it: its last group only (the full code is
/// a credential, and timelines are read by support staff and exports).
fn shown(code: &VoucherCode) -> String {
    format!("…{}", code.as_str().rsplit('-').next().unwrap_or_default())
}
