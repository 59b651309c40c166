//! The contract of [`cartback_core::ports::VoucherStore`]: one voucher per
//! cart, unique codes, the owner's window, redemption once, revocation,
//! publication and listing, run against every adapter set through
//! [`crate::contract_suite!`] (the checks are re-exported by
//! [`crate::contract`]). The concurrency checks race real tasks on the
//! adapters: issuing and redeeming are conditional writes, so exactly one
//! of the racers gets through.

use std::sync::Arc;

use cartback_core::ids::{CartId, CustomerKey};
use cartback_core::ports::StateStore;
use cartback_core::voucher::{
    Discount, IssueOutcome, RedeemOutcome, Redemption, Refusal, TierName, Voucher, VoucherCode, VoucherOwner,
    VoucherStatus, VoucherTerms,
};
use cartback_core::Decimal;
use chrono::{DateTime, Duration, Utc};
use rand::SeedableRng;

use crate::contract::{t, unique, Adapters};

/// A fresh code no other check draws.
pub fn fresh_code() -> VoucherCode {
    VoucherCode::generate(Some("CT"), &mut rand::rngs::StdRng::from_entropy())
}

/// A voucher for a new cart of `owner`, issued at `issued_at`, on the
/// terms every field of which an adapter must keep.
pub fn voucher_for(owner: &VoucherOwner, issued_at: DateTime<Utc>) -> Voucher {
    let cart_id: CartId = unique("vcart").into();
    Voucher {
        code: fresh_code(),
        cart_id: cart_id.clone(),
        owner: owner.clone(),
        customer_key: CustomerKey::Guest(cart_id),
        campaign_id: "abandoned-cart".into(),
        step: 1,
        variant: Some("ten-percent".into()),
        terms: VoucherTerms {
            tier: TierName::Recovery,
            discount: Discount::PercentOff { percent: Decimal::TEN, max_amount: Some("15.00".parse().unwrap()) },
            currency: "EUR".into(),
            min_cart_value: Some("20.00".parse().unwrap()),
        },
        issued_at,
        expires_at: issued_at + Duration::days(7),
        status: VoucherStatus::Issued,
        published_at: None,
    }
}

fn new_owner() -> VoucherOwner {
    VoucherOwner::customer(&unique("vowner").into())
}

fn redemption(order_id: &str, at: DateTime<Utc>) -> Redemption {
    Redemption { order_id: order_id.into(), at, discount: Some("8.99".parse().unwrap()) }
}

async fn issued(adapters: &Adapters, voucher: &Voucher) {
    assert_eq!(adapters.state.issue_voucher(voucher).await.unwrap(), IssueOutcome::Issued);
}

/// GIVEN a new voucher WHEN issued THEN it reads back exactly by code and
/// by cart; a second voucher for the cart answers the first; the same
/// voucher again (a retry) answers the stored one; its code on another
/// cart is taken; a code typed differently finds the same voucher.
pub async fn vouchers_are_one_per_cart_with_unique_codes(adapters: &Adapters) {
    let state = &adapters.state;
    let first = voucher_for(&new_owner(), t(0));
    issued(adapters, &first).await;
    assert_eq!(state.voucher(&first.code).await.unwrap().as_ref(), Some(&first));
    assert_eq!(state.cart_voucher(&first.cart_id).await.unwrap().as_ref(), Some(&first));
    let typed = VoucherCode::parse(&first.code.as_str().to_lowercase().replace('-', "")).unwrap();
    assert_eq!(state.voucher(&typed).await.unwrap().as_ref(), Some(&first));

    let second_for_cart = Voucher { code: fresh_code(), issued_at: t(60), ..first.clone() };
    assert_eq!(state.issue_voucher(&second_for_cart).await.unwrap(), IssueOutcome::CartHasOne(first.clone()));
    assert_eq!(state.voucher(&second_for_cart.code).await.unwrap(), None, "the refused code is not stored");
    assert_eq!(state.issue_voucher(&first).await.unwrap(), IssueOutcome::CartHasOne(first.clone()));

    let same_code_elsewhere = Voucher { cart_id: unique("vcart").into(), ..first.clone() };
    assert_eq!(state.issue_voucher(&same_code_elsewhere).await.unwrap(), IssueOutcome::CodeTaken);
    assert_eq!(state.cart_voucher(&same_code_elsewhere.cart_id).await.unwrap(), None);
    assert_eq!(state.voucher(&fresh_code()).await.unwrap(), None);
    assert_eq!(state.cart_voucher(&unique("vcart").into()).await.unwrap(), None);
}

/// GIVEN an owner's vouchers issued at three times beside another owner's
/// WHEN read since the middle time THEN the two at or after it come back,
/// newest first, and none of the other owner's.
pub async fn owner_vouchers_are_the_owners_within_the_window_newest_first(adapters: &Adapters) {
    let (owner, other) = (new_owner(), new_owner());
    let vouchers: Vec<Voucher> = [0, 3600, 7200].into_iter().map(|s| voucher_for(&owner, t(s))).collect();
    for voucher in &vouchers {
        issued(adapters, voucher).await;
    }
    issued(adapters, &voucher_for(&other, t(7200))).await;

    let window = adapters.state.owner_vouchers(&owner, t(3600)).await.unwrap();
    assert_eq!(window, [vouchers[2].clone(), vouchers[1].clone()]);
    assert_eq!(adapters.state.owner_vouchers(&owner, t(0)).await.unwrap().len(), 3);
    assert!(adapters.state.owner_vouchers(&owner, t(7201)).await.unwrap().is_empty());
    assert!(adapters.state.owner_vouchers(&new_owner(), t(0)).await.unwrap().is_empty());
}

/// GIVEN an issued voucher WHEN an order redeems it, the same order again,
/// then another order THEN it is redeemed once (with the order, time and
/// discount), the replay is answered as that order's, and the other order
/// is refused as already redeemed; an unknown code is unknown.
pub async fn a_voucher_is_redeemed_once(adapters: &Adapters) {
    let state = &adapters.state;
    let voucher = voucher_for(&new_owner(), t(0));
    issued(adapters, &voucher).await;
    let first = redemption("order-1", t(600));

    let RedeemOutcome::Redeemed(redeemed) = state.redeem_voucher(&voucher.code, &first).await.unwrap() else {
        panic!("the first order redeems it");
    };
    let expected_status = VoucherStatus::Redeemed { order_id: "order-1".into(), at: t(600), discount: first.discount };
    assert_eq!(redeemed, Voucher { status: expected_status.clone(), ..voucher.clone() });
    assert_eq!(state.voucher(&voucher.code).await.unwrap(), Some(redeemed.clone()));

    let replay = redemption("order-1", t(700));
    let again = state.redeem_voucher(&voucher.code, &replay).await.unwrap();
    assert_eq!(again, RedeemOutcome::AlreadyThisOrder(redeemed.clone()));
    let other = redemption("order-2", t(800));
    assert_eq!(
        state.redeem_voucher(&voucher.code, &other).await.unwrap(),
        RedeemOutcome::Refused(redeemed.clone(), Refusal::AlreadyRedeemed)
    );
    assert_eq!(state.voucher(&voucher.code).await.unwrap().map(|v| v.status), Some(expected_status));
    assert_eq!(state.redeem_voucher(&fresh_code(), &first).await.unwrap(), RedeemOutcome::Unknown);
}

/// GIVEN an issued voucher WHEN revoked twice, then redeemed THEN the first
/// revocation's time stays, and the order is refused as revoked; a
/// redeemed voucher stays redeemed when revoked; an unknown code answers
/// nothing.
pub async fn a_revoked_voucher_is_refused_and_a_redeemed_one_stays_redeemed(adapters: &Adapters) {
    let state = &adapters.state;
    let voucher = voucher_for(&new_owner(), t(0));
    issued(adapters, &voucher).await;
    let revoked = Voucher { status: VoucherStatus::Revoked { at: t(100) }, ..voucher.clone() };
    assert_eq!(state.revoke_voucher(&voucher.code, t(100)).await.unwrap(), Some(revoked.clone()));
    assert_eq!(state.revoke_voucher(&voucher.code, t(200)).await.unwrap(), Some(revoked.clone()));
    assert_eq!(state.voucher(&voucher.code).await.unwrap(), Some(revoked.clone()));
    assert_eq!(
        state.redeem_voucher(&voucher.code, &redemption("order-1", t(300))).await.unwrap(),
        RedeemOutcome::Refused(revoked, Refusal::Revoked)
    );

    let used = voucher_for(&new_owner(), t(0));
    issued(adapters, &used).await;
    let RedeemOutcome::Redeemed(redeemed) =
        state.redeem_voucher(&used.code, &redemption("order-9", t(50))).await.unwrap()
    else {
        panic!("redeemed");
    };
    assert_eq!(state.revoke_voucher(&used.code, t(100)).await.unwrap(), Some(redeemed.clone()));
    assert_eq!(state.voucher(&used.code).await.unwrap(), Some(redeemed));
    assert_eq!(state.revoke_voucher(&fresh_code(), t(100)).await.unwrap(), None);
}

/// GIVEN an issued voucher WHEN marked published twice THEN the first
/// acknowledgement's time is kept and nothing else changes.
pub async fn a_published_voucher_keeps_its_first_publication_time(adapters: &Adapters) {
    let state = &adapters.state;
    let voucher = voucher_for(&new_owner(), t(0));
    issued(adapters, &voucher).await;
    state.mark_voucher_published(&voucher.code, t(30)).await.unwrap();
    state.mark_voucher_published(&voucher.code, t(90)).await.unwrap();
    let published = Voucher { published_at: Some(t(30)), ..voucher.clone() };
    assert_eq!(state.voucher(&voucher.code).await.unwrap(), Some(published.clone()));
    assert_eq!(state.cart_voucher(&voucher.cart_id).await.unwrap(), Some(published));
}

/// GIVEN vouchers issued over the last days (this check's store holds no
/// others) WHEN listed THEN they come newest first, at most the limit.
pub async fn vouchers_are_listed_newest_first(adapters: &Adapters) {
    let now = Utc::now();
    let issued_ago = [Duration::days(40), Duration::hours(1), Duration::days(3), Duration::minutes(5)];
    let owner = new_owner();
    let vouchers: Vec<Voucher> = issued_ago.iter().map(|ago| voucher_for(&owner, now - *ago)).collect();
    for voucher in &vouchers {
        issued(adapters, voucher).await;
    }
    let codes = |list: Vec<Voucher>| list.into_iter().map(|v| v.code).collect::<Vec<_>>();
    let newest_first = [&vouchers[3], &vouchers[1], &vouchers[2], &vouchers[0]].map(|v| v.code.clone());
    assert_eq!(codes(adapters.state.list_vouchers(10).await.unwrap()), newest_first);
    assert_eq!(codes(adapters.state.list_vouchers(2).await.unwrap()), newest_first[..2]);
}

/// GIVEN one issued voucher WHEN eight orders redeem it at once THEN
/// exactly one redeems it and the seven others are refused as already
/// redeemed, naming the winner's order.
pub async fn concurrent_redemptions_let_exactly_one_through(adapters: &Adapters) {
    let voucher = voucher_for(&new_owner(), t(0));
    issued(adapters, &voucher).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (state, code): (Arc<dyn StateStore>, _) = (adapters.state.clone(), voucher.code.clone());
            tokio::spawn(async move { state.redeem_voucher(&code, &redemption(&format!("order-{i}"), t(i))).await })
        })
        .collect();
    let mut winners = Vec::new();
    let mut refused = Vec::new();
    for task in tasks {
        match task.await.unwrap().unwrap() {
            RedeemOutcome::Redeemed(v) => winners.push(v),
            RedeemOutcome::Refused(v, Refusal::AlreadyRedeemed) => refused.push(v),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(refused.len(), 7);
    assert!(refused.iter().all(|v| v.status == winners[0].status));
    assert_eq!(adapters.state.voucher(&voucher.code).await.unwrap().map(|v| v.status), Some(winners[0].status.clone()));
}

/// GIVEN one cart WHEN eight checkers issue it a voucher at once, each with
/// its own code THEN one voucher is stored, and every checker is answered
/// with it (issued, or the cart's one).
pub async fn concurrent_issues_for_one_cart_leave_one_voucher(adapters: &Adapters) {
    let template = voucher_for(&new_owner(), t(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let state = adapters.state.clone();
            let voucher = Voucher { code: fresh_code(), ..template.clone() };
            tokio::spawn(async move { (state.issue_voucher(&voucher).await, voucher) })
        })
        .collect();
    let (mut issued, mut answered, mut losing_codes) = (Vec::new(), Vec::new(), Vec::new());
    for task in tasks {
        let (outcome, voucher) = task.await.unwrap();
        match outcome.unwrap() {
            IssueOutcome::Issued => issued.push(voucher),
            IssueOutcome::CartHasOne(stored) => {
                answered.push(stored);
                losing_codes.push(voucher.code);
            }
            IssueOutcome::CodeTaken => panic!("fresh codes are not taken"),
        }
    }
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert!(answered.iter().all(|v| *v == issued[0]), "{answered:?}");
    assert_eq!(adapters.state.cart_voucher(&template.cart_id).await.unwrap(), Some(issued[0].clone()));
    for code in losing_codes {
        assert_eq!(adapters.state.voucher(&code).await.unwrap(), None, "a losing code is not stored");
    }
}

/// GIVEN a voucher for a cart WHEN a purchase of that cart using its code
/// (typed in lower case) is ingested, then another order's purchase using
/// it, then both events again THEN the first order redeems it with its
/// discount (10% of the subtotal before it: 50.00 paid is 5.56 off), the
/// second is an abuse attempt, the replays are duplicates,
/// and the voucher's cart has one line of each and the store one fact of
/// each, through the ingest service on this runtime's adapters.
pub async fn purchases_redeem_a_voucher_once_and_reuse_is_abuse(adapters: &Adapters) {
    use cartback_core::measure::facts::FactKind;
    let ingest = crate::contract::ingest(adapters);
    let voucher = voucher_for(&new_owner(), t(0));
    issued(adapters, &voucher).await;
    let (first_order, second_order) = (unique("order"), unique("order"));
    let purchase = |order: &str, cart: &str, at: i64| {
        serde_json::json!({"event_id": unique("buy"), "type": "purchase", "cart_id": cart, "order_id": order,
            "occurred_at": t(at), "value": "50.00", "currency": "EUR", "coupon": voucher.code.as_str().to_lowercase()})
    };
    let first = purchase(&first_order, voucher.cart_id.as_str(), 60);
    let second = purchase(&second_order, &unique("vcart"), 120);
    let accepted = [("accepted".to_owned(), None), ("accepted".to_owned(), None)];
    assert_eq!(crate::contract::ingest_batch(&ingest, vec![first.clone(), second.clone()]).await, accepted);
    let duplicates = [("duplicate".to_owned(), None), ("duplicate".to_owned(), None)];
    assert_eq!(crate::contract::ingest_batch(&ingest, vec![first, second]).await, duplicates);

    let stored = adapters.state.voucher(&voucher.code).await.unwrap().unwrap();
    let redeemed =
        VoucherStatus::Redeemed { order_id: first_order.clone(), at: t(60), discount: Some("5.56".parse().unwrap()) };
    assert_eq!(stored.status, redeemed);
    let facts = adapters.state.facts(t(0).date_naive(), t(0).date_naive()).await.unwrap();
    let mut ours: Vec<&FactKind> = facts
        .iter()
        .map(|f| &f.kind)
        .filter(|k| match k {
            FactKind::VoucherRedeemed { cart_id, .. } | FactKind::VoucherAbuse { cart_id, .. } => {
                *cart_id == voucher.cart_id
            }
            _ => false,
        })
        .collect();
    // The store answers facts in no particular order (a DynamoDB query's is
    // its keys'): the redemption is listed first here.
    ours.sort_by_key(|k| !matches!(k, FactKind::VoucherRedeemed { .. }));
    assert!(
        matches!(ours.as_slice(), [
            FactKind::VoucherRedeemed { order_id: a, discount: Some(_), .. },
            FactKind::VoucherAbuse { order_id: b, refusal: Refusal::AlreadyRedeemed, .. },
        ] if *a == first_order && *b == second_order),
        "{ours:?}"
    );
    let timeline = adapters.state.timeline(&voucher.cart_id).await.unwrap();
    let codes: Vec<&str> = timeline.iter().map(|e| e.code.as_str()).filter(|c| c.starts_with("voucher_")).collect();
    assert_eq!(codes, ["voucher_redeemed", "voucher_abuse"], "{timeline:#?}");
}

/// Implements [`cartback_core::ports::VoucherStore`] for a test wrapper by
/// handing every call to its `$field` (a store that has the port): the
/// wrappers that fail other ports on demand keep vouchers working.
#[macro_export]
macro_rules! delegate_voucher_store {
    ($wrapper:ty, $field:ident) => {
        #[async_trait::async_trait]
        impl cartback_core::ports::VoucherStore for $wrapper {
            async fn issue_voucher(
                &self,
                voucher: &cartback_core::voucher::Voucher,
            ) -> Result<cartback_core::voucher::IssueOutcome, cartback_core::ports::PortError> {
                cartback_core::ports::VoucherStore::issue_voucher(&self.$field, voucher).await
            }
            async fn voucher(
                &self,
                code: &cartback_core::voucher::VoucherCode,
            ) -> Result<Option<cartback_core::voucher::Voucher>, cartback_core::ports::PortError> {
                cartback_core::ports::VoucherStore::voucher(&self.$field, code).await
            }
            async fn cart_voucher(
                &self,
                cart_id: &cartback_core::ids::CartId,
            ) -> Result<Option<cartback_core::voucher::Voucher>, cartback_core::ports::PortError> {
                cartback_core::ports::VoucherStore::cart_voucher(&self.$field, cart_id).await
            }
            async fn owner_vouchers(
                &self,
                owner: &cartback_core::voucher::VoucherOwner,
                since: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<cartback_core::voucher::Voucher>, cartback_core::ports::PortError> {
                cartback_core::ports::VoucherStore::owner_vouchers(&self.$field, owner, since).await
            }
            async fn redeem_voucher(
                &self,
                code: &cartback_core::voucher::VoucherCode,
                redemption: &cartback_core::voucher::Redemption,
            ) -> Result<cartback_core::voucher::RedeemOutcome, cartback_core::ports::PortError> {
                cartback_core::ports::VoucherStore::redeem_voucher(&self.$field, code, redemption).await
            }
            async fn revoke_voucher(
                &self,
                code: &cartback_core::voucher::VoucherCode,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<cartback_core::voucher::Voucher>, cartback_core::ports::PortError> {
                cartback_core::ports::VoucherStore::revoke_voucher(&self.$field, code, at).await
            }
            async fn mark_voucher_published(
                &self,
                code: &cartback_core::voucher::VoucherCode,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), cartback_core::ports::PortError> {
                cartback_core::ports::VoucherStore::mark_voucher_published(&self.$field, code, at).await
            }
            async fn list_vouchers(
                &self,
                limit: usize,
            ) -> Result<Vec<cartback_core::voucher::Voucher>, cartback_core::ports::PortError> {
                cartback_core::ports::VoucherStore::list_vouchers(&self.$field, limit).await
            }
        }
    };
}
