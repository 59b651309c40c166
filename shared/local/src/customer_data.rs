//! Export and erasure of one customer's data on SQLite (see
//! [`cartback_core::customer_data`] for what belongs to a customer).
//!
//! A customer's carts are found through `cart_customers` (migration 4: one
//! row per customer id a cart's events name, written with the cart), their
//! messages and ledgers through the indexed `customer_key` column (also in
//! the forms written before keys were tagged), and their facts by reading
//! every retained fact (facts outlive the carts and messages that would
//! date them): the one read that grows with the shop, bounded by the facts'
//! retention, and made once per request.
//!
//! An erasure is one transaction over the tables (profile, carts with their
//! links, timeline lines and pending timers, messages, queued and
//! dead-lettered jobs, ledgers, facts, vouchers). The outbox copies of the messages it
//! found go before it commits: copies are found only through the database's
//! message ids, so a failure in between leaves data an erasure finds again.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use cartback_core::customer::Customer;
use cartback_core::customer_data::{anonymize, facts_of, CartData, CustomerData, Erasure, Pseudonyms};
use cartback_core::ids::{CustomerId, CustomerKey};
use cartback_core::message::MessageRecord;
use cartback_core::ports::{CustomerDataStore, PortError, SendLedger};
use cartback_core::voucher::Voucher;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::sqlite::{day_text, db, from_json, immediate, read_cart, to_json, ts, Database};

/// The stored forms a key may have: the tagged one, and the one written
/// before keys were tagged (a bare customer id, `cart:<id>` for a guest).
fn stored_forms(key: &CustomerKey) -> [String; 2] {
    match key {
        CustomerKey::Customer(id) => [key.to_string(), id.to_string()],
        CustomerKey::Guest(cart) => [key.to_string(), format!("cart:{cart}")],
    }
}

fn messages_of(conn: &Connection, key: &CustomerKey) -> Result<Vec<MessageRecord>, PortError> {
    let mut stmt = conn
        .prepare_cached("SELECT record FROM messages WHERE customer_key IN (?1, ?2) ORDER BY decided_at, message_id")
        .map_err(db)?;
    let [tagged, legacy] = stored_forms(key);
    let rows = stmt.query_map(params![tagged, legacy], |r| r.get::<_, String>(0)).map_err(db)?;
    rows.map(|row| from_json("message", &row.map_err(db)?)).collect()
}

/// Everything held about the customer, read on one connection (inside the
/// erasure's transaction when it erases).
fn gather(conn: &Connection, customer_id: &CustomerId) -> Result<CustomerData, PortError> {
    let mut data = CustomerData::new(customer_id.clone());
    let profile: Option<String> = conn
        .query_row("SELECT record FROM customers WHERE customer_id = ?1", [customer_id.as_str()], |r| r.get(0))
        .optional()
        .map_err(db)?;
    data.customer = profile.map(|json| from_json::<Customer>("customer", &json)).transpose()?;

    let cart_ids: Vec<String> = {
        let mut stmt = conn
            .prepare_cached("SELECT cart_id FROM cart_customers WHERE customer_id = ?1 ORDER BY cart_id")
            .map_err(db)?;
        let rows = stmt.query_map([customer_id.as_str()], |r| r.get::<_, String>(0)).map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)?
    };
    for cart_id in cart_ids {
        let Some(cart) = read_cart(conn, &cart_id)? else { continue };
        let mut stmt =
            conn.prepare_cached("SELECT entry FROM timeline WHERE cart_id = ?1 ORDER BY at, seq").map_err(db)?;
        let rows = stmt.query_map([&cart_id], |r| r.get::<_, String>(0)).map_err(db)?;
        let timeline = rows.map(|row| from_json("timeline entry", &row.map_err(db)?)).collect::<Result<_, _>>()?;
        data.carts.push(CartData { cart, timeline });
    }

    let mut messages = BTreeMap::new();
    let own_key = CustomerKey::Customer(customer_id.clone());
    let guest_keys = data.carts.iter().map(|c| CustomerKey::Guest(c.cart.cart_id.clone()));
    for key in std::iter::once(own_key).chain(guest_keys) {
        for message in messages_of(conn, &key)? {
            messages.insert(message.message_id.clone(), message);
        }
    }
    data.messages = messages.into_values().collect();

    for key in data.keys() {
        let row: Option<(i64, String)> = conn
            .query_row("SELECT version, record FROM send_ledgers WHERE customer_key = ?1", [key.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(db)?;
        if let Some((version, json)) = row {
            let mut ledger: SendLedger = from_json("send ledger", &json)?;
            ledger.version = u64::try_from(version).unwrap_or_default();
            data.send_ledgers.push(ledger);
        }
    }

    // Every retained fact: facts outlive carts and messages (400 days
    // against 90 by default), so the customer's oldest stored record is no
    // lower bound; the table holds only the retention's days anyway.
    let mut stmt = conn.prepare_cached("SELECT fact FROM facts ORDER BY at, fact_id").map_err(db)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(db)?;
    let facts: Vec<_> = rows.map(|row| from_json("fact", &row.map_err(db)?)).collect::<Result<_, _>>()?;
    data.facts = facts_of(&facts, &data.keys(), &data.cart_ids());

    // Issued to the customer, or for one of their carts (a guest's).
    let mut vouchers = BTreeMap::new();
    let mut by_owner = conn.prepare_cached("SELECT record FROM vouchers WHERE owner = ?1").map_err(db)?;
    let mut by_cart = conn.prepare_cached("SELECT record FROM vouchers WHERE cart_id = ?1").map_err(db)?;
    let mut rows: Vec<String> = by_owner
        .query_map([data.voucher_owner().as_str()], |r| r.get(0))
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    for cart_id in data.cart_ids() {
        let cart_rows = by_cart.query_map([cart_id.as_str()], |r| r.get::<_, String>(0)).map_err(db)?;
        rows.extend(cart_rows.collect::<Result<Vec<_>, _>>().map_err(db)?);
    }
    for json in rows {
        let voucher: Voucher = from_json("voucher", &json)?;
        vouchers.insert(voucher.code.clone(), voucher);
    }
    data.vouchers = vouchers.into_values().collect();
    Ok(data)
}

/// Deletes and rewrites what `data` holds, in the caller's transaction.
fn erase(conn: &Connection, data: &CustomerData, now: DateTime<Utc>) -> Result<Erasure, PortError> {
    let count = |n: usize| n as u64;
    let profiles =
        conn.execute("DELETE FROM customers WHERE customer_id = ?1", [data.customer_id.as_str()]).map_err(db)?;
    let mut erasure = Erasure { profiles: count(profiles), ..Erasure::default() };
    for cart in &data.carts {
        let id = cart.cart.cart_id.as_str();
        erasure.carts += count(conn.execute("DELETE FROM carts WHERE cart_id = ?1", [id]).map_err(db)?);
        erasure.timeline_entries += count(conn.execute("DELETE FROM timeline WHERE cart_id = ?1", [id]).map_err(db)?);
        erasure.timers += count(conn.execute("DELETE FROM timers WHERE cart_id = ?1", [id]).map_err(db)?);
        conn.execute("DELETE FROM cart_customers WHERE cart_id = ?1", [id]).map_err(db)?;
    }
    // Nothing may stay linked to the customer, even a link to an expired cart.
    conn.execute("DELETE FROM cart_customers WHERE customer_id = ?1", [data.customer_id.as_str()]).map_err(db)?;

    let pseudonyms = Pseudonyms::random();
    for message in &data.messages {
        let id = message.message_id.as_str();
        for table in ["jobs", "dead_letters"] {
            let sql = format!("DELETE FROM {table} WHERE message_id = ?1");
            erasure.queued_jobs += count(conn.execute(&sql, [id]).map_err(db)?);
        }
        if CustomerData::is_live(message) {
            let cancelled = pseudonyms.cancelled_message(message, now);
            conn.execute(
                "UPDATE messages SET cart_id = ?2, customer_key = ?3, record = ?4 WHERE message_id = ?1",
                params![
                    id,
                    cancelled.cart_id.as_str(),
                    cancelled.customer_key.to_string(),
                    to_json("message", &cancelled)?
                ],
            )
            .map_err(db)?;
            erasure.messages_cancelled += 1;
        } else {
            erasure.messages += count(conn.execute("DELETE FROM messages WHERE message_id = ?1", [id]).map_err(db)?);
        }
    }
    for ledger in &data.send_ledgers {
        let key = ledger.customer_key.to_string();
        erasure.send_ledgers +=
            count(conn.execute("DELETE FROM send_ledgers WHERE customer_key = ?1", [key]).map_err(db)?);
    }
    for fact in &data.facts {
        let anonymous = anonymize(fact, &pseudonyms);
        conn.execute("DELETE FROM facts WHERE fact_id = ?1", [fact.fact_id.as_str()]).map_err(db)?;
        conn.execute(
            "INSERT INTO facts (fact_id, day, at, fact) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (fact_id) DO NOTHING",
            params![anonymous.fact_id, day_text(anonymous.day()), ts(anonymous.at), to_json("fact", &anonymous)?],
        )
        .map_err(db)?;
        erasure.facts_anonymized += 1;
    }
    for voucher in &data.vouchers {
        erasure.vouchers +=
            count(conn.execute("DELETE FROM vouchers WHERE code = ?1", [voucher.code.as_str()]).map_err(db)?);
    }
    Ok(erasure)
}

#[async_trait]
impl CustomerDataStore for Database {
    async fn customer_data(&self, customer_id: &CustomerId) -> Result<CustomerData, PortError> {
        let customer_id = customer_id.clone();
        self.call(move |conn| gather(conn, &customer_id)).await
    }

    async fn erase_customer(&self, customer_id: &CustomerId, now: DateTime<Utc>) -> Result<Erasure, PortError> {
        let (customer_id, outbox) = (customer_id.clone(), self.outbox.clone());
        self.call(move |conn| {
            let tx = immediate(conn)?;
            let data = gather(&tx, &customer_id)?;
            // Copies first: should the commit fail, the data is still there
            // to find, and erasing again completes the erasure.
            let outbox_copies = match outbox {
                Some(outbox) => {
                    let ids: HashSet<String> = data.messages.iter().map(|m| m.message_id.to_string()).collect();
                    outbox.erase(&ids).map_err(|e| PortError::Unavailable("outbox", Box::new(e)))?
                }
                None => 0,
            };
            let erasure = Erasure { outbox_copies: outbox_copies as u64, ..erase(&tx, &data, now)? };
            tx.commit().map_err(db)?;
            Ok(erasure)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use cartback_core::ports::{CartRecord, CartStore, CustomerDataStore};
    use rusqlite::Connection;

    use crate::sqlite::{Database, DB_FILE};

    /// GIVEN carts stored before the `cart_customers` links existed WHEN the
    /// database is opened by this version THEN the links are filled from the
    /// carts' events, and the customer's carts are found.
    #[tokio::test]
    async fn given_carts_stored_before_the_links_when_migrated_then_a_customers_carts_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let at = "2026-11-23T10:00:00Z".parse().unwrap();
        for (cart, customer) in [("c1", Some("u1")), ("c2", None), ("c3", Some("u2"))] {
            let mut record = CartRecord::new(cart, at);
            let event = serde_json::json!({
                "event_id": format!("e-{cart}"), "type": "add_to_cart", "occurred_at": "2026-11-23T10:00:00Z",
                "cart_id": cart, "customer_id": customer,
            });
            record.insert_event(serde_json::from_value(event).unwrap());
            db.save_cart(&record).await.unwrap();
        }
        drop(db);
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute_batch(
            "DROP TABLE cart_customers; DROP TABLE vouchers; DROP TABLE template_sets; DROP TABLE brand; \
             DROP TABLE short_links; \
             PRAGMA user_version = 3;",
        )
        .unwrap();
        drop(conn);

        let db = Database::open(dir.path()).unwrap();
        let carts: Vec<String> = db
            .customer_data(&"u1".into())
            .await
            .unwrap()
            .carts
            .into_iter()
            .map(|c| c.cart.cart_id.to_string())
            .collect();
        assert_eq!(carts, ["c1"]);
    }
}
