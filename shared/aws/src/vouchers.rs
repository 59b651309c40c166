//! Issued vouchers. PLACEHOLDER on main while the vouchers-store branch
//! builds the real adapter: every call fails as unavailable.

use async_trait::async_trait;
use cartback_core::ids::CartId;
use cartback_core::ports::{PortError, VoucherStore};
use cartback_core::voucher::{IssueOutcome, RedeemOutcome, Redemption, Voucher, VoucherCode, VoucherOwner};
use chrono::{DateTime, Utc};

use crate::dynamo::DynamoStateStore;

fn not_built() -> PortError {
    PortError::Unavailable("vouchers", "not built yet".into())
}

#[async_trait]
impl VoucherStore for DynamoStateStore {
    async fn issue_voucher(&self, _voucher: &Voucher) -> Result<IssueOutcome, PortError> {
        Err(not_built())
    }
    async fn voucher(&self, _code: &VoucherCode) -> Result<Option<Voucher>, PortError> {
        Err(not_built())
    }
    async fn cart_voucher(&self, _cart_id: &CartId) -> Result<Option<Voucher>, PortError> {
        Err(not_built())
    }
    async fn owner_vouchers(&self, _owner: &VoucherOwner, _since: DateTime<Utc>) -> Result<Vec<Voucher>, PortError> {
        Err(not_built())
    }
    async fn redeem_voucher(&self, _code: &VoucherCode, _redemption: &Redemption) -> Result<RedeemOutcome, PortError> {
        Err(not_built())
    }
    async fn revoke_voucher(&self, _code: &VoucherCode, _at: DateTime<Utc>) -> Result<Option<Voucher>, PortError> {
        Err(not_built())
    }
    async fn mark_voucher_published(&self, _code: &VoucherCode, _at: DateTime<Utc>) -> Result<(), PortError> {
        Err(not_built())
    }
    async fn list_vouchers(&self, _limit: usize) -> Result<Vec<Voucher>, PortError> {
        Err(not_built())
    }
}
