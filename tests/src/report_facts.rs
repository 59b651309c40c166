//! Facts for report tests: carts entering a campaign, their first step, and
//! the orders of some of them, the same for every runtime's store.

use cartback_core::ids::CustomerKey;
use cartback_core::measure::{Fact, FactKind, Group, MessageOutcome, SegmentLabel};
use cartback_core::message::Channel;
use chrono::{DateTime, Duration, Utc};

/// `n` carts of `group` entering the default campaign at 08:00 on `day`,
/// each with a first step by email (sent, or would-send when held out);
/// the first `bought` of them buy an hour later for 20 EUR.
pub fn carts(group: Group, n: usize, bought: usize, day: &str) -> Vec<Fact> {
    let mut facts = Vec::new();
    for i in 0..n {
        let cart = format!("{}-{day}-{i}", group.as_str());
        let customer_key = CustomerKey::Customer(format!("u-{cart}").as_str().into());
        let entered: DateTime<Utc> = format!("{day}T08:00:00Z").parse().unwrap();
        facts.push(Fact::new(
            entered,
            FactKind::Entered {
                campaign_id: "default".into(),
                cart_id: cart.as_str().into(),
                customer_key: customer_key.clone(),
                group,
                variant: None,
                segment: SegmentLabel::Other,
                value: None,
                currency: None,
            },
        ));
        let outcome = if group == Group::Treated { MessageOutcome::Sent } else { MessageOutcome::WouldSend };
        facts.push(Fact::new(
            entered,
            FactKind::Message {
                campaign_id: "default".into(),
                cart_id: cart.as_str().into(),
                customer_key: customer_key.clone(),
                message_id: format!("{cart}#1#email").as_str().into(),
                group,
                variant: None,
                step: 0,
                channel: Channel::Email,
                outcome,
            },
        ));
        if i < bought {
            facts.push(Fact::new(
                entered + Duration::hours(1),
                FactKind::Order {
                    order_id: format!("o-{cart}"),
                    cart_id: Some(cart.as_str().into()),
                    customer_key: Some(customer_key),
                    value: Some("20.00".parse().unwrap()),
                    currency: Some("EUR".into()),
                    coupon: None,
                },
            ));
        }
    }
    facts
}

/// Vouchers for the first `n` treated carts of [`carts`] on `day`: each
/// issued in the standard tier at entry; the first `redeemed` of them
/// redeemed by their cart's order for 2.00 EUR off; and one order that used
/// the first cart's code again (an abuse attempt) a day later.
pub fn vouchers(n: usize, redeemed: usize, day: &str) -> Vec<Fact> {
    use cartback_core::voucher::{Refusal, TierName};
    let entered: DateTime<Utc> = format!("{day}T08:00:00Z").parse().unwrap();
    let mut facts = Vec::new();
    for i in 0..n {
        let cart = format!("{}-{day}-{i}", Group::Treated.as_str());
        let customer_key = CustomerKey::Customer(format!("u-{cart}").as_str().into());
        facts.push(Fact::new(
            entered,
            FactKind::VoucherIssued {
                campaign_id: "default".into(),
                cart_id: cart.as_str().into(),
                customer_key: customer_key.clone(),
                variant: None,
                tier: TierName::Standard,
            },
        ));
        if i < redeemed {
            facts.push(Fact::new(
                entered + Duration::hours(1),
                FactKind::VoucherRedeemed {
                    order_id: format!("o-{cart}"),
                    campaign_id: "default".into(),
                    cart_id: cart.as_str().into(),
                    customer_key,
                    tier: TierName::Standard,
                    discount: Some("2.00".parse().unwrap()),
                    currency: "EUR".into(),
                },
            ));
        }
        if i == 0 {
            facts.push(Fact::new(
                entered + Duration::days(1),
                FactKind::VoucherAbuse {
                    order_id: format!("o-again-{cart}"),
                    campaign_id: "default".into(),
                    cart_id: cart.as_str().into(),
                    refusal: Refusal::AlreadyRedeemed,
                },
            ));
        }
    }
    facts
}
