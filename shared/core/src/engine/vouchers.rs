//! Whether the step's message shows a voucher, and why (or why not): the
//! rules run for a step the engine sends or holds out, in this order.
//!
//! 1. The step has no offer (the variant's, in an experiment): none.
//! 2. A held-out customer gets none: the holdout measures the campaign
//!    without one. A shadow campaign decides as if it were live.
//! 3. The cart's own voucher, shown by an earlier step, is shown again
//!    (the same code in every step), unless it was revoked, redeemed or
//!    has expired.
//! 4. None for a customer who redeemed a promotion within
//!    `vouchers.recent_promotion_window`.
//! 5. None when the customer got a voucher for another cart within
//!    `vouchers.cap_window`: re-abandoning does not collect codes.
//! 6. The tier: recovery for a return within `vouchers.returned_window`,
//!    else standard; resolved in the cart's currency, it may not apply
//!    (no prices, no amount in that currency, below the minimum).
//!
//! Sentences name the tier, the discount and the reason, never the code
//! (a credential) nor anything personal.

use super::{human, Input, NextStep};
use crate::cart::money_text;
use crate::measure::Group;
use crate::reason::{Reason, ReasonCode};
use crate::voucher::{Discount, Offer, Tier, TierName, Voucher, VoucherChoice, VoucherStatus, VoucherTerms};

/// The voucher choice for the step `next`, sent (or held out) in `group`.
pub(super) fn choose(input: &Input, next: &NextStep, group: Group) -> VoucherChoice {
    let Some(offer) = &next.step.offer else { return VoucherChoice::NotOffered };
    if group == Group::HeldOut {
        return withheld(ReasonCode::HeldOut, "No voucher: held-out customers are measured without one.".into());
    }
    if let Some(own) = cart_voucher(input) {
        return reuse_or_withhold(input, own);
    }
    if let Some(withheld) = recent_promotion(input, next).or_else(|| cap_reached(input, next)) {
        return withheld;
    }
    issue(input, next, offer)
}

fn withheld(code: ReasonCode, message: String) -> VoucherChoice {
    VoucherChoice::Withheld { reason: Reason::new(code, message) }
}

/// The cart's own voucher (one per cart; the newest should a store ever
/// hold two).
fn cart_voucher<'a>(input: &Input<'a>) -> Option<&'a Voucher> {
    input.vouchers.iter().filter(|v| v.cart_id == input.cart.cart_id).max_by_key(|v| v.issued_at)
}

/// The same code in every step, while it can still be used.
fn reuse_or_withhold(input: &Input, own: &Voucher) -> VoucherChoice {
    let terms = format!("{} tier, {}", own.terms.tier.as_str(), own.terms.describe());
    let gone = match &own.status {
        VoucherStatus::Revoked { at } => Some(format!("was revoked at {}", at.to_rfc3339())),
        VoucherStatus::Redeemed { at, .. } => Some(format!("was redeemed at {}", at.to_rfc3339())),
        VoucherStatus::Issued if own.expires_at <= input.now => {
            Some(format!("expired at {}", own.expires_at.to_rfc3339()))
        }
        VoucherStatus::Issued => None,
    };
    match gone {
        Some(why) => withheld(
            ReasonCode::VoucherNotApplicable,
            format!("No voucher: the cart's voucher ({terms}) {why}; no new one is issued for this cart."),
        ),
        None => VoucherChoice::Reuse {
            code: own.code.clone(),
            reason: Reason::new(
                ReasonCode::VoucherOffered,
                format!(
                    "Shows the cart's voucher again ({terms}), first shown in step {}, expiring at {}.",
                    own.step + 1,
                    own.expires_at.to_rfc3339()
                ),
            ),
        },
    }
}

/// No voucher for a customer who just used a promotion: they would wait
/// for the next one.
fn recent_promotion(input: &Input, next: &NextStep) -> Option<VoucherChoice> {
    let window = next.campaign.vouchers.recent_promotion_window;
    let since = input.now - window;
    let redeemed = input.customer?.promotions_redeemed.iter().rev().find(|at| **at > since && **at <= input.now)?;
    Some(withheld(
        ReasonCode::RecentPromotion,
        format!(
            "No voucher: the customer redeemed a promotion at {}, within {} (vouchers.recent_promotion_window).",
            redeemed.to_rfc3339(),
            human(window)
        ),
    ))
}

/// At most one voucher per customer per `cap_window`, across carts. A
/// revoked voucher does not count (the shop took it back).
fn cap_reached(input: &Input, next: &NextStep) -> Option<VoucherChoice> {
    let window = next.campaign.vouchers.cap_window;
    let since = input.now - window;
    let other = input
        .vouchers
        .iter()
        .filter(|v| v.cart_id != input.cart.cart_id && v.issued_at > since)
        .filter(|v| !matches!(v.status, VoucherStatus::Revoked { .. }))
        .max_by_key(|v| v.issued_at)?;
    Some(withheld(
        ReasonCode::VoucherCap,
        format!(
            "No voucher: the customer got one for another cart at {}, within {} (vouchers.cap_window).",
            other.issued_at.to_rfc3339(),
            human(window)
        ),
    ))
}

/// The tier for this customer, resolved in the cart's currency: a new
/// voucher on those terms, or why the tier does not apply to this cart.
fn issue(input: &Input, next: &NextStep, offer: &Offer) -> VoucherChoice {
    let settings = &next.campaign.vouchers;
    let returned = input.customer.is_some_and(|c| c.returned_since(input.now - settings.returned_window));
    let (name, tier, why_tier) = if returned {
        (TierName::Recovery, &offer.recovery, format!("a return within {}", human(settings.returned_window)))
    } else {
        (TierName::Standard, &offer.standard, format!("no return within {}", human(settings.returned_window)))
    };
    match resolve(input, name, tier) {
        Err(why) => withheld(ReasonCode::VoucherNotApplicable, format!("No voucher: {why}.")),
        Ok(terms) => VoucherChoice::Issue {
            reason: Reason::new(
                ReasonCode::VoucherOffered,
                format!(
                    "Offers a voucher: {} ({} tier: {why_tier}), expiring {} after this message.",
                    terms.describe(),
                    name.as_str(),
                    human(settings.expires_after)
                ),
            ),
            terms,
            expires_after_seconds: settings.expires_after.num_seconds(),
        },
    }
}

/// The tier's terms in the cart's currency (the one its prices are in).
fn resolve(input: &Input, name: TierName, tier: &Tier) -> Result<VoucherTerms, String> {
    let tier_name = name.as_str();
    let priced = input.cart.items.iter().any(|i| i.price.is_some());
    let (Some(currency), true) = (input.cart.currency.as_deref(), priced) else {
        return Err("the cart's items have no prices, so no currency or minimum can apply".into());
    };
    let discount = if let Some(percent) = tier.percent_off {
        Discount::PercentOff { percent, max_amount: tier.max_discount.get(currency).copied() }
    } else if tier.free_shipping {
        Discount::FreeShipping
    } else {
        let amount = tier.amount_off.get(currency).copied();
        Discount::AmountOff {
            amount: amount.ok_or_else(|| format!("the {tier_name} tier has no amount_off in {currency}"))?,
        }
    };
    let min_cart_value = tier.min_cart_value.get(currency).copied();
    let subtotal = input.cart.totals().subtotal;
    if let Some(min) = min_cart_value.filter(|min| subtotal < *min) {
        return Err(format!(
            "the cart's subtotal {} {currency} is below the {tier_name} tier's minimum {} {currency}",
            money_text(subtotal),
            money_text(min)
        ));
    }
    Ok(VoucherTerms { tier: name, discount, currency: currency.to_owned(), min_cart_value })
}
