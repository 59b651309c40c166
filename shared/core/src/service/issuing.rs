//! The checker's side of vouchers: what the engine is shown (the cart's own
//! voucher and its owner's recent ones), and what a send's
//! [`VoucherChoice`] becomes (a newly issued code, or the cart's earlier one)
//! with its timeline line.

use chrono::{DateTime, Duration, Utc};

use crate::campaign::Campaign;
use crate::cart::Cart;
use crate::event::CustomerPatch;
use crate::ids::CustomerKey;
use crate::measure::{Fact, FactKind};
use crate::ports::{PortError, TimelineEntry, TimelineKind, VoucherStore};
use crate::voucher::{IssueOutcome, ShownVoucher, Voucher, VoucherChoice, VoucherCode, VoucherOwner, VoucherStatus};

/// How many codes are drawn before issuing gives up: with 59 bits per code
/// a second draw is already a curiosity; the bound only keeps a broken
/// store from looping.
const MAX_CODE_DRAWS: usize = 5;

/// Whether any enabled campaign offers a voucher in a step (or a variant's
/// step). Only then does a check read vouchers: shops without offers pay
/// no extra reads.
pub(crate) fn offers_vouchers(campaigns: &[Campaign]) -> bool {
    campaigns.iter().filter(|c| c.enabled).any(|c| {
        c.steps.iter().any(|s| s.offer.is_some())
            || c.experiment.iter().flat_map(|e| &e.variants).flat_map(|v| &v.steps).any(|s| s.offer.is_some())
    })
}

/// The longest voucher cap window of the campaigns: how far back the
/// owner's vouchers count.
fn cap_window(campaigns: &[Campaign]) -> Duration {
    campaigns.iter().map(|c| c.vouchers.cap_window).max().unwrap_or_else(|| Duration::days(30))
}

/// Whom this cart's voucher is bound to.
pub(crate) fn owner_of(cart: &Cart, key: &CustomerKey, contact: &CustomerPatch) -> VoucherOwner {
    VoucherOwner::for_cart(key, contact.email.as_ref(), &cart.cart_id)
}

/// The vouchers the engine sees: the cart's own (whenever issued) and the
/// owner's within the longest cap window, each once.
pub(crate) async fn load_vouchers<S: VoucherStore + ?Sized>(
    store: &S,
    campaigns: &[Campaign],
    cart: &Cart,
    owner: &VoucherOwner,
    now: DateTime<Utc>,
) -> Result<Vec<Voucher>, PortError> {
    if !offers_vouchers(campaigns) {
        return Ok(Vec::new());
    }
    let mut vouchers = store.owner_vouchers(owner, now - cap_window(campaigns)).await?;
    if let Some(own) = store.cart_voucher(&cart.cart_id).await? {
        if !vouchers.iter().any(|v| v.code == own.code) {
            vouchers.push(own);
        }
    }
    Ok(vouchers)
}

/// What one send asks of the voucher store.
pub(crate) struct Issue<'a> {
    pub campaign: Option<&'a Campaign>,
    pub campaign_id: &'a str,
    pub step: u32,
    pub variant: Option<&'a str>,
    pub cart: &'a Cart,
    pub key: &'a CustomerKey,
    pub owner: &'a VoucherOwner,
    pub now: DateTime<Utc>,
}

/// The voucher a send shows, if any: `Issue` issues one with a new random
/// code (or, when the cart has one already — a retry after a conflict, a
/// racing checker — takes that one, so every attempt shows the same code);
/// `Reuse` reads the cart's voucher. A voucher issued now is added to
/// `known` (the engine sees it on the next decision of this pass) and its
/// fact to `facts`.
pub(crate) async fn voucher_to_show<S: VoucherStore + ?Sized>(
    store: &S,
    choice: &VoucherChoice,
    issue: &Issue<'_>,
    known: &mut Vec<Voucher>,
    facts: &mut Vec<Fact>,
) -> Result<Option<Voucher>, PortError> {
    match choice {
        VoucherChoice::NotOffered | VoucherChoice::Withheld { .. } => Ok(None),
        VoucherChoice::Reuse { code, .. } => {
            if let Some(voucher) = known.iter().find(|v| v.code == *code) {
                return Ok(Some(voucher.clone()));
            }
            let found = store.voucher(code).await?;
            if found.is_none() {
                // Its record is gone (retention): the message goes out without it.
                tracing::warn!(cart_id = %issue.cart.cart_id, ?code, "the cart's voucher to show again was not found");
            }
            Ok(found)
        }
        VoucherChoice::Issue { terms, expires_after_seconds, .. } => {
            let prefix = issue.campaign.and_then(|c| c.vouchers.code_prefix.as_deref());
            for _ in 0..MAX_CODE_DRAWS {
                let voucher = Voucher {
                    code: VoucherCode::generate(prefix, &mut rand::rngs::OsRng),
                    cart_id: issue.cart.cart_id.clone(),
                    owner: issue.owner.clone(),
                    customer_key: issue.key.clone(),
                    campaign_id: issue.campaign_id.to_owned(),
                    step: issue.step,
                    variant: issue.variant.map(str::to_owned),
                    terms: terms.clone(),
                    issued_at: issue.now,
                    expires_at: issue.now + Duration::seconds(*expires_after_seconds),
                    status: VoucherStatus::Issued,
                    published_at: None,
                };
                let voucher = match store.issue_voucher(&voucher).await? {
                    IssueOutcome::Issued => voucher,
                    IssueOutcome::CartHasOne(existing) => existing,
                    IssueOutcome::CodeTaken => continue,
                };
                // Keyed by the cart and timed by the voucher: a retry writes the same fact.
                facts.push(issued_fact(&voucher));
                if !known.iter().any(|v| v.code == voucher.code) {
                    known.push(voucher.clone());
                }
                return Ok(Some(voucher));
            }
            Err(PortError::Unavailable("vouchers", format!("no unused code in {MAX_CODE_DRAWS} draws").into()))
        }
    }
}

fn issued_fact(voucher: &Voucher) -> Fact {
    Fact::new(
        voucher.issued_at,
        FactKind::VoucherIssued {
            campaign_id: voucher.campaign_id.clone(),
            cart_id: voucher.cart_id.clone(),
            customer_key: voucher.customer_key.clone(),
            variant: voucher.variant.clone(),
            tier: voucher.terms.tier,
        },
    )
}

/// What the message shows of `voucher`: its expiry in the customer's time
/// zone (as quiet hours find it) and locale.
pub(crate) fn shown(voucher: &Voucher, contact: &CustomerPatch, campaign: Option<&Campaign>) -> ShownVoucher {
    let default_zone = campaign.map_or("UTC", |c| c.quiet_hours.default_timezone.as_str());
    ShownVoucher {
        code: voucher.code.clone(),
        terms: voucher.terms.clone(),
        expires_at: voucher.expires_at,
        time_zone: crate::engine::customer_time_zone(contact, default_zone),
        locale: contact.locale.clone(),
    }
}

/// A code as the timeline and logs show it: its last group only (a
/// timeline is read by operators; the code is a credential).
pub(crate) fn code_tail(code: &VoucherCode) -> String {
    format!("…{}", code.as_str().rsplit('-').next().unwrap_or_default())
}

/// The timeline line of a decision's voucher choice (none when the step
/// offers no voucher). `voucher` is the one the message shows.
pub(crate) fn voucher_entry(
    choice: &VoucherChoice,
    campaign_id: &str,
    step: u32,
    voucher: Option<&Voucher>,
    now: DateTime<Utc>,
) -> Option<TimelineEntry> {
    let reason = choice.reason()?;
    let outcome = match choice {
        VoucherChoice::Issue { .. } => "issue",
        VoucherChoice::Reuse { .. } => "reuse",
        VoucherChoice::Withheld { .. } | VoucherChoice::NotOffered => "withheld",
    };
    let mut details = serde_json::json!({
        "voucher": outcome,
        "campaign_id": campaign_id,
        "step": step,
    });
    if let Some(voucher) = voucher {
        details["code"] = code_tail(&voucher.code).into();
        details["tier"] = voucher.terms.tier.as_str().into();
        details["expires_at"] = serde_json::json!(voucher.expires_at);
    }
    Some(TimelineEntry {
        at: now,
        kind: TimelineKind::Decision,
        code: reason.code.as_str().into(),
        message: reason.message.clone(),
        details,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::reason::{Reason, ReasonCode};
    use crate::voucher::{Discount, RedeemOutcome, Redemption, TierName, VoucherTerms};

    /// A store that answers `issue_voucher` from a script and keeps what it was asked to issue.
    struct Scripted {
        answers: Mutex<Vec<IssueOutcome>>,
        asked: Mutex<Vec<Voucher>>,
    }

    #[async_trait]
    impl VoucherStore for Scripted {
        async fn issue_voucher(&self, voucher: &Voucher) -> Result<IssueOutcome, PortError> {
            self.asked.lock().unwrap().push(voucher.clone());
            Ok(self.answers.lock().unwrap().remove(0))
        }
        async fn voucher(&self, _: &VoucherCode) -> Result<Option<Voucher>, PortError> {
            Ok(None)
        }
        async fn cart_voucher(&self, _: &crate::ids::CartId) -> Result<Option<Voucher>, PortError> {
            Ok(None)
        }
        async fn owner_vouchers(&self, _: &VoucherOwner, _: DateTime<Utc>) -> Result<Vec<Voucher>, PortError> {
            Ok(Vec::new())
        }
        async fn redeem_voucher(&self, _: &VoucherCode, _: &Redemption) -> Result<RedeemOutcome, PortError> {
            Ok(RedeemOutcome::Unknown)
        }
        async fn revoke_voucher(&self, _: &VoucherCode, _: DateTime<Utc>) -> Result<Option<Voucher>, PortError> {
            Ok(None)
        }
        async fn mark_voucher_published(&self, _: &VoucherCode, _: DateTime<Utc>) -> Result<(), PortError> {
            Ok(())
        }
        async fn list_vouchers(&self, _: usize) -> Result<Vec<Voucher>, PortError> {
            Ok(Vec::new())
        }
    }

    fn issue_choice() -> VoucherChoice {
        let terms = VoucherTerms {
            tier: TierName::Standard,
            discount: Discount::PercentOff { percent: 5.into(), max_amount: None },
            currency: "USD".into(),
            min_cart_value: None,
        };
        let reason = Reason::new(ReasonCode::VoucherOffered, "Offers a voucher.");
        VoucherChoice::Issue { terms, expires_after_seconds: 7 * 86_400, reason }
    }

    /// Runs `voucher_to_show` for an `Issue` choice on a store answering `answers`.
    async fn issue_with(answers: Vec<IssueOutcome>) -> (Result<Option<Voucher>, PortError>, Vec<Voucher>, Vec<Fact>) {
        let store = Scripted { answers: Mutex::new(answers), asked: Mutex::new(Vec::new()) };
        let cart = Cart::from_events("cart-1", &[]);
        let key = CustomerKey::Guest("cart-1".into());
        let owner = VoucherOwner::guest_cart(&"cart-1".into());
        let now: DateTime<Utc> = "2026-11-23T10:30:00Z".parse().unwrap();
        let issue = Issue {
            campaign: None,
            campaign_id: "default",
            step: 0,
            variant: None,
            cart: &cart,
            key: &key,
            owner: &owner,
            now,
        };
        let (mut known, mut facts) = (Vec::new(), Vec::new());
        let shown = voucher_to_show(&store, &issue_choice(), &issue, &mut known, &mut facts).await;
        let asked = store.asked.into_inner().unwrap();
        (shown, asked, facts)
    }

    #[tokio::test]
    async fn given_a_code_that_exists_when_issuing_then_another_is_drawn_and_issued_once() {
        let (shown, asked, facts) = issue_with(vec![IssueOutcome::CodeTaken, IssueOutcome::Issued]).await;
        let shown = shown.unwrap().expect("a voucher");
        assert_eq!(asked.len(), 2);
        assert_ne!(asked[0].code, asked[1].code, "a new draw");
        assert_eq!(shown.code, asked[1].code);
        assert_eq!(shown.expires_at - shown.issued_at, Duration::days(7));
        assert_eq!(facts.len(), 1);
    }

    #[tokio::test]
    async fn given_a_cart_that_has_a_voucher_when_issuing_then_that_one_is_shown() {
        let (_, asked, _) = issue_with(vec![IssueOutcome::Issued]).await;
        let existing = Voucher { issued_at: asked[0].issued_at - Duration::minutes(3), ..asked[0].clone() };
        let (shown, _, facts) = issue_with(vec![IssueOutcome::CartHasOne(existing.clone())]).await;
        assert_eq!(shown.unwrap(), Some(existing.clone()), "a retry shows the code issued the first time");
        assert_eq!(facts[0].at, existing.issued_at, "the same fact as the first time");
    }

    #[tokio::test]
    async fn given_a_store_that_finds_every_code_taken_when_issuing_then_it_gives_up_after_a_few_draws() {
        let (shown, asked, facts) = issue_with(vec![IssueOutcome::CodeTaken; MAX_CODE_DRAWS]).await;
        assert!(matches!(shown, Err(PortError::Unavailable("vouchers", _))), "{shown:?}");
        assert_eq!(asked.len(), MAX_CODE_DRAWS);
        assert!(facts.is_empty());
    }

    #[test]
    fn given_a_withheld_voucher_when_its_line_is_written_then_it_carries_the_reason_and_no_code() {
        let reason = Reason::new(ReasonCode::RecentPromotion, "No voucher: a promotion was redeemed 10 days ago.");
        let choice = VoucherChoice::Withheld { reason };
        let entry = voucher_entry(&choice, "default", 0, None, Utc::now()).unwrap();
        assert_eq!(entry.code, "recent_promotion");
        assert_eq!(entry.details["voucher"], "withheld");
        assert!(entry.details.get("code").is_none());
        assert!(voucher_entry(&VoucherChoice::NotOffered, "default", 0, None, Utc::now()).is_none());
    }

    #[test]
    fn given_an_issued_voucher_when_its_line_is_written_then_only_the_codes_last_group_shows() {
        let code = VoucherCode::parse("CB-7KQ4-M9XD-2PWE").unwrap();
        let terms = VoucherTerms {
            tier: TierName::Standard,
            discount: Discount::PercentOff { percent: 5.into(), max_amount: None },
            currency: "USD".into(),
            min_cart_value: None,
        };
        let now = Utc::now();
        let voucher = Voucher {
            code: code.clone(),
            cart_id: "cart-1".into(),
            owner: VoucherOwner::guest_cart(&"cart-1".into()),
            customer_key: CustomerKey::Guest("cart-1".into()),
            campaign_id: "default".into(),
            step: 0,
            variant: None,
            terms: terms.clone(),
            issued_at: now,
            expires_at: now + Duration::days(7),
            status: VoucherStatus::Issued,
            published_at: None,
        };
        let reason = Reason::new(ReasonCode::VoucherOffered, "Voucher offered: standard tier, 5% off.");
        let choice = VoucherChoice::Issue { terms, expires_after_seconds: 7 * 86_400, reason };
        let entry = voucher_entry(&choice, "default", 0, Some(&voucher), now).unwrap();
        let text = serde_json::to_string(&entry).unwrap();
        assert!(!text.contains("7KQ4") && !text.contains("M9XD"), "{text}");
        assert_eq!(entry.details["code"], "…2PWE");
        assert_eq!(entry.details["tier"], "standard");
    }
}
