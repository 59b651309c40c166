//! The read-only [`HistoryReader`] over the local database, for backtests:
//! each table read in pages by key (so `cartback dev` keeps writing between
//! pages and memory holds one page at a time), never written. Records are
//! decoded straight from SQLite's row buffer, and carts only as far as the
//! replay reads them ([`ReplayCart`]).

use async_trait::async_trait;
use cartback_core::customer::Customer;
use cartback_core::message::MessageRecord;
use cartback_core::ports::{CartRecord, HistoryReader, PortError, ReplayCart};
use cartback_core::voucher::Voucher;
use serde::de::DeserializeOwned;

use crate::sqlite::{db, from_json, Database};

/// Rows read per page: large enough that the hop to SQLite's thread is
/// noise, small enough that a page of carts is a few megabytes.
const PAGE: i64 = 2000;

impl Database {
    /// One page of rows of `table` after `after`, by key: the last key and
    /// the decoded records.
    async fn page<T: DeserializeOwned + Send + 'static>(
        &self,
        sql: &'static str,
        what: &'static str,
        after: String,
    ) -> Result<(Option<String>, Vec<T>), PortError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(sql).map_err(db)?;
            let mut rows = stmt.query(rusqlite::params![after, PAGE]).map_err(db)?;
            let (mut last, mut records) = (None, Vec::new());
            while let Some(row) = rows.next().map_err(db)? {
                let text = row.get_ref(1).map_err(db)?.as_str();
                let json = text.map_err(|e| PortError::Corrupt(format!("stored {what} is not text: {e}")))?;
                records.push(from_json(what, json)?);
                last = Some(row.get(0).map_err(db)?);
            }
            Ok((last, records))
        })
        .await
    }

    /// Hands every row of the query's table to `visit`, page by page.
    async fn scan<T: DeserializeOwned + Send + 'static>(
        &self,
        sql: &'static str,
        what: &'static str,
        visit: &mut (dyn FnMut(T) + Send),
    ) -> Result<u64, PortError> {
        let mut after = String::new();
        let mut count = 0;
        loop {
            let (last, records) = self.page(sql, what, after).await?;
            let Some(last) = last else { return Ok(count) };
            after = last;
            count += records.len() as u64;
            records.into_iter().for_each(&mut *visit);
        }
    }
}

#[async_trait]
impl HistoryReader for Database {
    async fn scan_carts(&self, visit: &mut (dyn FnMut(CartRecord) + Send)) -> Result<u64, PortError> {
        let sql = "SELECT cart_id, record FROM carts WHERE cart_id > ?1 ORDER BY cart_id LIMIT ?2";
        self.scan(sql, "cart", &mut |ReplayCart(cart)| visit(cart)).await
    }

    async fn scan_customers(&self, visit: &mut (dyn FnMut(Customer) + Send)) -> Result<u64, PortError> {
        let sql = "SELECT customer_id, record FROM customers WHERE customer_id > ?1 ORDER BY customer_id LIMIT ?2";
        self.scan(sql, "customer", visit).await
    }

    async fn scan_messages(&self, visit: &mut (dyn FnMut(MessageRecord) + Send)) -> Result<u64, PortError> {
        let sql = "SELECT message_id, record FROM messages WHERE message_id > ?1 ORDER BY message_id LIMIT ?2";
        self.scan(sql, "message", visit).await
    }

    async fn scan_vouchers(&self, visit: &mut (dyn FnMut(Voucher) + Send)) -> Result<u64, PortError> {
        let sql = "SELECT code, record FROM vouchers WHERE code > ?1 ORDER BY code LIMIT ?2";
        self.scan(sql, "voucher", visit).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cartback_core::event::validate_event;
    use cartback_core::ports::{CartStore, EventCommit, EventLog};
    use chrono::{DateTime, Utc};
    use serde_json::json;

    use super::*;
    use crate::testing::ManualClock;

    #[tokio::test]
    async fn given_more_carts_than_a_page_when_scanned_then_each_is_visited_once_and_nothing_is_written() {
        // GIVEN 1,203 carts (three pages), one customer
        let now: DateTime<Utc> = "2026-06-10T10:00:00Z".parse().unwrap();
        let db = Database::open_in_memory().unwrap().with_clock(Arc::new(ManualClock::new(now)));
        for n in 0..1203 {
            let event = validate_event(
                &json!({"event_id": format!("e{n}"), "type": "add_to_cart", "cart_id": format!("cart-{n:05}"),
                        "customer_id": "ana", "customer": {"email": "ana@example.com"},
                        "items": [{"item_id": "sku", "quantity": 1}]}),
                now,
            )
            .unwrap();
            let mut cart = CartRecord::new(format!("cart-{n:05}"), now);
            cart.insert_event(event.clone());
            let customer = (n == 0).then(|| {
                let mut c = Customer::new("ana");
                c.apply(&event);
                (c, 0)
            });
            let commit =
                EventCommit { event_id: event.event_id, received_at: now, cart: Some(cart), customer, timeline: None };
            db.commit_event(commit).await.unwrap();
        }
        let before = db.get_cart(&"cart-00007".into()).await.unwrap();

        // WHEN scanned
        let mut ids = Vec::new();
        let carts = db.scan_carts(&mut |c| ids.push(c.cart_id)).await.unwrap();
        let mut customers = Vec::new();
        let counted = db.scan_customers(&mut |c| customers.push(c.customer_id)).await.unwrap();
        let messages = db.scan_messages(&mut |_| {}).await.unwrap();

        // THEN every cart once, in key order, the customer, no messages; nothing changed
        assert_eq!(carts, 1203);
        assert_eq!(ids.len(), 1203);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "each once, in order");
        assert_eq!((counted, customers), (1, vec!["ana".into()]));
        assert_eq!(messages, 0);
        assert_eq!(db.get_cart(&"cart-00007".into()).await.unwrap(), before);
    }
}
