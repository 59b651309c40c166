//! Issued vouchers on DynamoDB, in the state table.
//!
//! | item          | pk                | sk        | gsi1pk / gsi1sk                                   |
//! |---------------|-------------------|-----------|---------------------------------------------------|
//! | voucher       | `VOUCHER#<code>`  | `VOUCHER` | `VOUCHEROWNER#<owner>` / `<issued_at>#<code>`     |
//! | cart's one    | `VCART#<cart id>` | `VOUCHER` | `VOUCHERMONTH#<YYYY-MM of issued_at>` / `<issued_at>#<code>` |
//!
//! The voucher item holds the voucher as one map attribute `voucher` (its
//! own `expires_at` is the code's expiry, not the table's TTL attribute);
//! the cart's item holds its `code`. Issuing writes both in one
//! `TransactWriteItems`, each conditioned on `attribute_not_exists(pk)`:
//! the cancellation reasons tell a cart that has one (a retry, a racing
//! checker) from a code that exists. Redeeming and revoking are one
//! `UpdateItem` each, conditioned on the status still being `issued`; when
//! the condition fails, the item is read to answer why (this order again,
//! another order, revoked).
//!
//! The engine's owner lookup is one `Query` on `gsi1` (eventually
//! consistent, like every index read). Listing reads the cart items' month
//! partitions of `gsi1` newest first, from the current month back over the
//! retention, then the vouchers themselves (`BatchGetItem`): no scan, and a
//! month's partition takes a shop's issues easily (one per abandoned cart
//! at most, far below a partition's write capacity).
//!
//! Both items expire (TTL `expires_at`) [`VOUCHER_RETENTION_DAYS`] after
//! the code does: long enough for any late purchase to find its code, and
//! a code is never drawn again while stored. After that, a repeat would
//! need two equal draws of 59 random bits: negligible.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, ReturnValue, TransactWriteItem};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde_dynamo::aws_sdk_dynamodb_1::{from_attribute_value, to_attribute_value};

use cartback_core::customer_data::CustomerData;
use cartback_core::ids::CartId;
use cartback_core::ports::{PortError, VoucherStore};
use cartback_core::voucher::{
    IssueOutcome, RedeemOutcome, Redemption, Refusal, Voucher, VoucherCode, VoucherOwner, VoucherStatus,
};

use crate::dynamo::{corrupt, is_condition_failed, key, n, s, sort_time, DynamoStateStore, Item, SERVICE};
use crate::error::{build_error, dynamodb_error, refused_transaction};

/// How long after its expiry a voucher stays stored (and its code taken).
pub const VOUCHER_RETENTION_DAYS: i64 = 400;

/// How often a write racing another transaction on the same item is tried.
const WRITE_ATTEMPTS: u32 = 5;

/// Keys per `BatchGetItem` call (DynamoDB's limit).
const BATCH_GET_KEYS: usize = 100;

pub fn voucher_key(code: &VoucherCode) -> (String, String) {
    (format!("VOUCHER#{code}"), "VOUCHER".into())
}

pub fn cart_voucher_key(cart_id: &str) -> (String, String) {
    (format!("VCART#{cart_id}"), "VOUCHER".into())
}

/// The `gsi1` partition of the vouchers issued in the month of `day`.
pub fn month_partition(day: NaiveDate) -> String {
    format!("VOUCHERMONTH#{}", day.format("%Y-%m"))
}

fn issue_sort_key(voucher: &Voucher) -> String {
    format!("{}#{}", sort_time(voucher.issued_at), voucher.code)
}

pub(crate) fn voucher_from_item(item: &Item) -> Result<Voucher, PortError> {
    let value = item.get("voucher").cloned().ok_or_else(|| corrupt("voucher item", "has no voucher"))?;
    from_attribute_value(value).map_err(|e| corrupt("stored voucher does not decode", e))
}

fn attribute<T: serde::Serialize>(what: &str, value: &T) -> Result<AttributeValue, PortError> {
    to_attribute_value(value).map_err(|e| corrupt(&format!("{what} does not serialise"), e))
}

/// What a redemption finds on a voucher that is no longer issued.
fn settled_outcome(voucher: Voucher, order_id: &str) -> Option<RedeemOutcome> {
    match &voucher.status {
        VoucherStatus::Redeemed { order_id: by, .. } if by == order_id => {
            Some(RedeemOutcome::AlreadyThisOrder(voucher))
        }
        VoucherStatus::Redeemed { .. } => Some(RedeemOutcome::Refused(voucher, Refusal::AlreadyRedeemed)),
        VoucherStatus::Revoked { .. } => Some(RedeemOutcome::Refused(voucher, Refusal::Revoked)),
        VoucherStatus::Issued => None,
    }
}

/// The keys of the two items a voucher is stored as.
pub fn voucher_item_keys(voucher: &Voucher) -> [(String, String); 2] {
    [voucher_key(&voucher.code), cart_voucher_key(voucher.cart_id.as_str())]
}

/// How one issuing transaction ended.
enum Issue {
    Issued,
    CodeTaken,
    CartTaken,
    Raced,
}

impl DynamoStateStore {
    /// Both items expire this long after the code does (see the module notes).
    fn voucher_ttl(voucher: &Voucher) -> AttributeValue {
        n((voucher.expires_at + Duration::days(VOUCHER_RETENTION_DAYS)).timestamp())
    }

    fn voucher_put(&self, voucher: &Voucher) -> Result<Put, PortError> {
        let mut item = key(voucher_key(&voucher.code));
        item.insert("voucher".into(), attribute("voucher", voucher)?);
        item.insert("gsi1pk".into(), s(format!("VOUCHEROWNER#{}", voucher.owner.as_str())));
        item.insert("gsi1sk".into(), s(issue_sort_key(voucher)));
        item.insert("expires_at".into(), Self::voucher_ttl(voucher));
        self.put_if_absent(item)
    }

    fn cart_pointer_put(&self, voucher: &Voucher) -> Result<Put, PortError> {
        let mut item = key(cart_voucher_key(voucher.cart_id.as_str()));
        item.insert("code".into(), s(voucher.code.as_str()));
        item.insert("gsi1pk".into(), s(month_partition(voucher.issued_at.date_naive())));
        item.insert("gsi1sk".into(), s(issue_sort_key(voucher)));
        item.insert("expires_at".into(), Self::voucher_ttl(voucher));
        self.put_if_absent(item)
    }

    fn put_if_absent(&self, item: Item) -> Result<Put, PortError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| build_error(SERVICE, e))
    }

    async fn try_issue(&self, voucher: &Voucher) -> Result<Issue, PortError> {
        let items = [self.voucher_put(voucher)?, self.cart_pointer_put(voucher)?]
            .into_iter()
            .map(|put| TransactWriteItem::builder().put(put).build())
            .collect();
        let error = match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => return Ok(Issue::Issued),
            Err(error) => error,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error() else {
            return Err(dynamodb_error(SERVICE, error));
        };
        let codes: Vec<&str> = cancelled.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
        let failed = |index: usize| codes.get(index) == Some(&"ConditionalCheckFailed");
        // The cart first: a retry of the same issue fails both conditions,
        // and its answer is the cart's voucher, not a taken code.
        if failed(1) {
            Ok(Issue::CartTaken)
        } else if failed(0) {
            Ok(Issue::CodeTaken)
        } else if codes.contains(&"TransactionConflict") {
            Ok(Issue::Raced)
        } else if codes.contains(&"ValidationError") {
            Err(refused_transaction(SERVICE, error))
        } else {
            Err(dynamodb_error(SERVICE, error))
        }
    }

    /// Sets the voucher's status to `status` if it is still issued; the
    /// voucher as it now stands (`Ok(None)`: no such code), and whether this
    /// call changed it.
    async fn settle_status(
        &self,
        code: &VoucherCode,
        status: &VoucherStatus,
    ) -> Result<Option<(Voucher, bool)>, PortError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(voucher_key(code))))
            .update_expression("SET voucher.#status = :status")
            .condition_expression("attribute_exists(pk) AND voucher.#status.#state = :issued")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":status", attribute("voucher status", status)?)
            .expression_attribute_values(":issued", s("issued"))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out.attributes.ok_or_else(|| corrupt("voucher update", "returned no item"))?;
                Ok(Some((voucher_from_item(&item)?, true)))
            }
            Err(e) if is_condition_failed(&e) => Ok(self.voucher(code).await?.map(|v| (v, false))),
            Err(e) => Err(dynamodb_error(SERVICE, e)),
        }
    }

    async fn voucher_items(&self, codes: &[String]) -> Result<HashMap<String, Voucher>, PortError> {
        let mut found = HashMap::new();
        for chunk in codes.chunks(BATCH_GET_KEYS) {
            let keys: Vec<Item> = chunk.iter().map(|code| key((format!("VOUCHER#{code}"), "VOUCHER".into()))).collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| build_error(SERVICE, e))?,
            );
            while let Some(keys) = request.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| dynamodb_error(SERVICE, e))?;
                for item in out.responses.unwrap_or_default().remove(&self.table).unwrap_or_default() {
                    let voucher = voucher_from_item(&item)?;
                    found.insert(voucher.code.to_string(), voucher);
                }
                request = out.unprocessed_keys.unwrap_or_default().remove(&self.table).filter(|k| !k.keys.is_empty());
            }
        }
        Ok(found)
    }

    /// The vouchers an export holds and an erasure deletes: issued to the
    /// customer (their owner partition, however old), or for one of their
    /// carts (a guest's).
    pub(crate) async fn customer_vouchers(&self, data: &CustomerData) -> Result<Vec<Voucher>, PortError> {
        let mut found = std::collections::BTreeMap::new();
        for voucher in self.owner_vouchers(&data.voucher_owner(), DateTime::<Utc>::MIN_UTC).await? {
            found.insert(voucher.code.clone(), voucher);
        }
        for cart_id in data.cart_ids() {
            if let Some(voucher) = self.cart_voucher(&cart_id).await? {
                found.insert(voucher.code.clone(), voucher);
            }
        }
        Ok(found.into_values().collect())
    }

    /// The codes of one month's partition, newest first, at most `limit`.
    async fn month_codes(&self, month: NaiveDate, limit: usize) -> Result<Vec<String>, PortError> {
        let mut codes = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page_limit = i32::try_from(limit - codes.len()).unwrap_or(i32::MAX);
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :pk")
                .expression_attribute_values(":pk", s(month_partition(month)))
                .scan_index_forward(false)
                .limit(page_limit)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| dynamodb_error(SERVICE, e))?;
            for item in out.items.unwrap_or_default() {
                let code = item.get("code").and_then(|v| v.as_s().ok()).cloned();
                codes.push(code.ok_or_else(|| corrupt("cart voucher item", "has no code"))?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && codes.len() < limit => start = Some(k),
                _ => return Ok(codes),
            }
        }
    }
}

/// The first day of the month before `month`'s.
fn previous_month(month: NaiveDate) -> Option<NaiveDate> {
    let (year, number) = if month.month() == 1 { (month.year() - 1, 12) } else { (month.year(), month.month() - 1) };
    NaiveDate::from_ymd_opt(year, number, 1)
}

#[async_trait]
impl VoucherStore for DynamoStateStore {
    async fn issue_voucher(&self, voucher: &Voucher) -> Result<IssueOutcome, PortError> {
        for attempt in 1..=WRITE_ATTEMPTS {
            match self.try_issue(voucher).await? {
                Issue::Issued => return Ok(IssueOutcome::Issued),
                Issue::CodeTaken => return Ok(IssueOutcome::CodeTaken),
                Issue::CartTaken => {
                    // The pointer is written with its voucher, in one
                    // transaction: a pointer without one is corrupt.
                    let existing = self.cart_voucher(&voucher.cart_id).await?;
                    let existing = existing.ok_or_else(|| corrupt("cart voucher", "points to no voucher"))?;
                    return Ok(IssueOutcome::CartHasOne(existing));
                }
                Issue::Raced => {
                    tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt))).await;
                }
            }
        }
        Err(PortError::Unavailable(SERVICE, "issuing a voucher kept racing other writers".into()))
    }

    async fn voucher(&self, code: &VoucherCode) -> Result<Option<Voucher>, PortError> {
        self.get(voucher_key(code)).await?.map(|item| voucher_from_item(&item)).transpose()
    }

    async fn cart_voucher(&self, cart_id: &CartId) -> Result<Option<Voucher>, PortError> {
        let Some(pointer) = self.get(cart_voucher_key(cart_id.as_str())).await? else { return Ok(None) };
        let code = pointer.get("code").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let code = VoucherCode::parse(&code).map_err(|e| corrupt("cart voucher code", e))?;
        self.voucher(&code).await
    }

    async fn owner_vouchers(&self, owner: &VoucherOwner, since: DateTime<Utc>) -> Result<Vec<Voucher>, PortError> {
        let mut vouchers = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :pk AND gsi1sk >= :since")
                .expression_attribute_values(":pk", s(format!("VOUCHEROWNER#{}", owner.as_str())))
                .expression_attribute_values(":since", s(sort_time(since)))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| dynamodb_error(SERVICE, e))?;
            for item in out.items.unwrap_or_default() {
                vouchers.push(voucher_from_item(&item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(vouchers),
            }
        }
    }

    async fn redeem_voucher(&self, code: &VoucherCode, redemption: &Redemption) -> Result<RedeemOutcome, PortError> {
        let status = VoucherStatus::Redeemed {
            order_id: redemption.order_id.clone(),
            at: redemption.at,
            discount: redemption.discount,
        };
        for _ in 0..WRITE_ATTEMPTS {
            match self.settle_status(code, &status).await? {
                None => return Ok(RedeemOutcome::Unknown),
                Some((voucher, true)) => return Ok(RedeemOutcome::Redeemed(voucher)),
                Some((voucher, false)) => {
                    if let Some(outcome) = settled_outcome(voucher, &redemption.order_id) {
                        return Ok(outcome);
                    }
                    // Issued after all: the condition failed on an item
                    // written in between (issued just now). Try again.
                }
            }
        }
        Err(PortError::Unavailable(SERVICE, "redeeming a voucher kept racing its issue".into()))
    }

    async fn revoke_voucher(&self, code: &VoucherCode, at: DateTime<Utc>) -> Result<Option<Voucher>, PortError> {
        // A redeemed voucher stays redeemed (its order happened); a revoked
        // one keeps its first revocation time.
        Ok(self.settle_status(code, &VoucherStatus::Revoked { at }).await?.map(|(voucher, _)| voucher))
    }

    async fn mark_voucher_published(&self, code: &VoucherCode, at: DateTime<Utc>) -> Result<(), PortError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(voucher_key(code))))
            .update_expression("SET voucher.published_at = if_not_exists(voucher.published_at, :at)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", attribute("time", &at)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Err(PortError::Corrupt(format!("voucher {code:?} does not exist"))),
            Err(e) => Err(dynamodb_error(SERVICE, e)),
        }
    }

    async fn list_vouchers(&self, limit: usize) -> Result<Vec<Voucher>, PortError> {
        let now = self.clock.now();
        // From the month of tomorrow (a writer's clock may run ahead) back
        // to the oldest month a stored voucher can have been issued in.
        let oldest = (now - Duration::days(VOUCHER_RETENTION_DAYS + 366)).date_naive();
        let mut month = (now + Duration::days(1)).date_naive().with_day(1);
        let mut codes = Vec::new();
        while let Some(current) = month.filter(|m| *m >= oldest.with_day(1).unwrap_or(oldest)) {
            if codes.len() >= limit {
                break;
            }
            codes.extend(self.month_codes(current, limit - codes.len()).await?);
            month = previous_month(current);
        }
        let mut found = self.voucher_items(&codes).await?;
        Ok(codes.iter().filter_map(|code| found.remove(code)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_the_first_month_of_a_year_when_stepped_back_then_it_is_the_last_month_of_the_year_before() {
        let day = |y, m| NaiveDate::from_ymd_opt(y, m, 1).unwrap();
        assert_eq!(previous_month(day(2026, 1)), Some(day(2025, 12)));
        assert_eq!(previous_month(day(2026, 11)), Some(day(2026, 10)));
        assert_eq!(month_partition(day(2026, 3)), "VOUCHERMONTH#2026-03");
    }
}
