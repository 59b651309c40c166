//! Issued vouchers on SQLite (table `vouchers`, migration 5): one row per
//! code, the cart unique, the owner indexed with the issue time for the
//! engine's cap window, the voucher itself as JSON beside those columns.
//!
//! Issuing and redeeming each run in one `BEGIN IMMEDIATE` transaction: the
//! read that decides and the write that follows hold the write lock
//! together, so two checkers issuing for one cart, or two orders redeeming
//! one code, are serialised and exactly one gets through.

use async_trait::async_trait;
use cartback_core::ids::CartId;
use cartback_core::ports::{PortError, VoucherStore};
use cartback_core::voucher::{
    IssueOutcome, RedeemOutcome, Redemption, Refusal, Voucher, VoucherCode, VoucherOwner, VoucherStatus,
};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::sqlite::{db, from_json, immediate, to_json, ts, Database};

fn read_one(conn: &Connection, sql: &str, key: &str) -> Result<Option<Voucher>, PortError> {
    let json: Option<String> = conn.query_row(sql, [key], |r| r.get(0)).optional().map_err(db)?;
    json.map(|json| from_json("voucher", &json)).transpose()
}

fn by_code(conn: &Connection, code: &str) -> Result<Option<Voucher>, PortError> {
    read_one(conn, "SELECT record FROM vouchers WHERE code = ?1", code)
}

fn by_cart(conn: &Connection, cart_id: &str) -> Result<Option<Voucher>, PortError> {
    read_one(conn, "SELECT record FROM vouchers WHERE cart_id = ?1", cart_id)
}

fn read_many(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Voucher>, PortError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db)?;
    let rows = stmt.query_map(params, |r| r.get::<_, String>(0)).map_err(db)?;
    rows.map(|row| from_json("voucher", &row.map_err(db)?)).collect()
}

/// Rewrites the stored voucher (its status or publication changed).
fn update(conn: &Connection, voucher: &Voucher) -> Result<(), PortError> {
    conn.execute(
        "UPDATE vouchers SET record = ?2 WHERE code = ?1",
        params![voucher.code.as_str(), to_json("voucher", voucher)?],
    )
    .map_err(db)?;
    Ok(())
}

/// What a redemption finds on a voucher that is no longer issued.
fn settled_outcome(voucher: Voucher, order_id: &str) -> RedeemOutcome {
    match &voucher.status {
        VoucherStatus::Redeemed { order_id: by, .. } if by == order_id => RedeemOutcome::AlreadyThisOrder(voucher),
        VoucherStatus::Redeemed { .. } => RedeemOutcome::Refused(voucher, Refusal::AlreadyRedeemed),
        VoucherStatus::Revoked { .. } => RedeemOutcome::Refused(voucher, Refusal::Revoked),
        VoucherStatus::Issued => RedeemOutcome::Redeemed(voucher),
    }
}

#[async_trait]
impl VoucherStore for Database {
    async fn issue_voucher(&self, voucher: &Voucher) -> Result<IssueOutcome, PortError> {
        let json = to_json("voucher", voucher)?;
        let voucher = voucher.clone();
        self.call(move |conn| {
            let tx = immediate(conn)?;
            // The cart first: a retry of the same issue (same cart, same
            // code) is the cart's voucher, not a taken code.
            if let Some(existing) = by_cart(&tx, voucher.cart_id.as_str())? {
                return Ok(IssueOutcome::CartHasOne(existing));
            }
            if by_code(&tx, voucher.code.as_str())?.is_some() {
                return Ok(IssueOutcome::CodeTaken);
            }
            tx.execute(
                "INSERT INTO vouchers (code, cart_id, owner, issued_at, expires_at, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    voucher.code.as_str(),
                    voucher.cart_id.as_str(),
                    voucher.owner.as_str(),
                    ts(voucher.issued_at),
                    ts(voucher.expires_at),
                    json
                ],
            )
            .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(IssueOutcome::Issued)
        })
        .await
    }

    async fn voucher(&self, code: &VoucherCode) -> Result<Option<Voucher>, PortError> {
        let code = code.to_string();
        self.call(move |conn| by_code(conn, &code)).await
    }

    async fn cart_voucher(&self, cart_id: &CartId) -> Result<Option<Voucher>, PortError> {
        let cart_id = cart_id.to_string();
        self.call(move |conn| by_cart(conn, &cart_id)).await
    }

    async fn owner_vouchers(&self, owner: &VoucherOwner, since: DateTime<Utc>) -> Result<Vec<Voucher>, PortError> {
        let owner = owner.as_str().to_owned();
        self.call(move |conn| {
            read_many(
                conn,
                "SELECT record FROM vouchers WHERE owner = ?1 AND issued_at >= ?2 ORDER BY issued_at DESC, code",
                params![owner, ts(since)],
            )
        })
        .await
    }

    async fn redeem_voucher(&self, code: &VoucherCode, redemption: &Redemption) -> Result<RedeemOutcome, PortError> {
        let (code, redemption) = (code.to_string(), redemption.clone());
        self.call(move |conn| {
            let tx = immediate(conn)?;
            let Some(mut voucher) = by_code(&tx, &code)? else { return Ok(RedeemOutcome::Unknown) };
            if voucher.status != VoucherStatus::Issued {
                return Ok(settled_outcome(voucher, &redemption.order_id));
            }
            voucher.status = VoucherStatus::Redeemed {
                order_id: redemption.order_id,
                at: redemption.at,
                discount: redemption.discount,
            };
            update(&tx, &voucher)?;
            tx.commit().map_err(db)?;
            Ok(RedeemOutcome::Redeemed(voucher))
        })
        .await
    }

    async fn revoke_voucher(&self, code: &VoucherCode, at: DateTime<Utc>) -> Result<Option<Voucher>, PortError> {
        let code = code.to_string();
        self.call(move |conn| {
            let tx = immediate(conn)?;
            let Some(mut voucher) = by_code(&tx, &code)? else { return Ok(None) };
            // A redeemed voucher stays redeemed (its order happened); a
            // revoked one keeps its first revocation time.
            if voucher.status == VoucherStatus::Issued {
                voucher.status = VoucherStatus::Revoked { at };
                update(&tx, &voucher)?;
                tx.commit().map_err(db)?;
            }
            Ok(Some(voucher))
        })
        .await
    }

    async fn mark_voucher_published(&self, code: &VoucherCode, at: DateTime<Utc>) -> Result<(), PortError> {
        let code = code.to_string();
        self.call(move |conn| {
            let tx = immediate(conn)?;
            let Some(mut voucher) = by_code(&tx, &code)? else {
                return Err(PortError::Corrupt(format!("voucher …{} does not exist", tail(&code))));
            };
            if voucher.published_at.is_none() {
                voucher.published_at = Some(at);
                update(&tx, &voucher)?;
                tx.commit().map_err(db)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_vouchers(&self, limit: usize) -> Result<Vec<Voucher>, PortError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |conn| {
            read_many(conn, "SELECT record FROM vouchers ORDER BY issued_at DESC, code LIMIT ?1", params![limit])
        })
        .await
    }
}

/// The last group of a code: what errors and logs may show.
fn tail(code: &str) -> &str {
    code.rsplit('-').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use cartback_core::ids::CustomerKey;
    use cartback_core::voucher::{Discount, TierName, VoucherTerms};
    use chrono::Duration;

    use super::*;

    fn voucher(code: &str, cart: &str, expires_at: DateTime<Utc>) -> Voucher {
        Voucher {
            code: VoucherCode::parse(code).unwrap(),
            cart_id: cart.into(),
            owner: VoucherOwner::guest_cart(&cart.into()),
            customer_key: CustomerKey::Guest(cart.into()),
            campaign_id: "default".into(),
            step: 0,
            variant: None,
            terms: VoucherTerms {
                tier: TierName::Standard,
                discount: Discount::FreeShipping,
                currency: "EUR".into(),
                min_cart_value: None,
            },
            issued_at: expires_at - Duration::days(7),
            expires_at,
            status: VoucherStatus::Issued,
            published_at: None,
        }
    }

    /// GIVEN two issued vouchers WHEN a backtest reads the history THEN it
    /// visits both, as stored, and writes nothing.
    #[tokio::test]
    async fn given_issued_vouchers_when_a_backtest_scans_them_then_each_is_visited_as_stored() {
        use cartback_core::ports::HistoryReader;
        let db = Database::open_in_memory().unwrap();
        let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
        let a = voucher("CB-2222-2222-2222", "c-a", now);
        let b = voucher("CB-3333-3333-3333", "c-b", now + Duration::days(1));
        for v in [&a, &b] {
            assert_eq!(db.issue_voucher(v).await.unwrap(), IssueOutcome::Issued);
        }

        let mut seen = Vec::new();
        let count = db.scan_vouchers(&mut |v| seen.push(v)).await.unwrap();

        assert_eq!((count, seen), (2, vec![a.clone(), b]));
        assert_eq!(db.voucher(&a.code).await.unwrap(), Some(a));
    }

    /// GIVEN vouchers that expired 401 and 399 days ago WHEN expired records
    /// are purged with the default 400-day fact retention THEN only the
    /// first goes: a code stays taken as long as its facts are kept.
    #[tokio::test]
    async fn given_vouchers_expired_long_ago_when_purged_then_only_those_past_the_fact_retention_go() {
        let db = Database::open_in_memory().unwrap();
        let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
        let old = voucher("CB-2222-2222-2222", "c-old", now - Duration::days(401));
        let kept = voucher("CB-3333-3333-3333", "c-kept", now - Duration::days(399));
        for v in [&old, &kept] {
            assert_eq!(db.issue_voucher(v).await.unwrap(), IssueOutcome::Issued);
        }
        let report = db.purge_expired(now, Duration::days(90)).await.unwrap();
        assert_eq!(report.vouchers, 1);
        assert_eq!(db.voucher(&old.code).await.unwrap(), None);
        assert_eq!(db.voucher(&kept.code).await.unwrap(), Some(kept));
    }
}
