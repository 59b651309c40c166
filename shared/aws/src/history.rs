//! The read-only [`HistoryReader`] over the DynamoDB state table, for
//! backtests: a parallel `Scan` (one worker per segment, each reading its
//! segment page by page, strongly consistent) filtered to one item kind.
//! It never writes: the only call it makes is `Scan`. Carts are read with a
//! projection of what the replay needs (their events), which DynamoDB then
//! does not send, and decoded only that far ([`cart_from_item`]).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde_dynamo::aws_sdk_dynamodb_1::from_item;
use tokio::sync::mpsc;

use cartback_core::customer::Customer;
use cartback_core::message::MessageRecord;
use cartback_core::ports::{CartRecord, HistoryReader, PortError, ReplayCart};
use cartback_core::voucher::Voucher;

use crate::dynamo::{corrupt, message_from_item, s, Item, SERVICE};
use crate::error::dynamodb_error;
use crate::vouchers::voucher_from_item;

/// The attributes of a cart item a backtest reads (see [`ReplayCart`]).
pub const CART_PROJECTION: &[&str] = &["cart_id", "events", "created_at", "updated_at"];

/// A state-table cart item (whole, or as projected) as the replay reads it.
pub fn cart_from_item(item: HashMap<String, AttributeValue>) -> Result<CartRecord, PortError> {
    let ReplayCart(cart) = from_item(item).map_err(|e| corrupt("cart", e))?;
    Ok(cart)
}

/// Pages in flight from the workers to the visitor, at most.
const PAGES_BUFFERED: usize = 8;

/// Reads the state table `table` in `segments` parallel scan segments.
#[derive(Clone)]
pub struct DynamoHistoryReader {
    client: Client,
    table: String,
    segments: u32,
}

impl DynamoHistoryReader {
    /// `segments` is clamped to 1..=1,000,000 (DynamoDB's limits).
    pub fn new(client: Client, table: impl Into<String>, segments: u32) -> Self {
        DynamoHistoryReader { client, table: table.into(), segments: segments.clamp(1, 1_000_000) }
    }

    /// Every item whose `pk` starts with `prefix` and whose `sk` is `sk`
    /// (only the attributes in `projection`, when given), handed to `visit`
    /// page by page as the segments' workers read them.
    async fn scan(
        &self,
        prefix: &str,
        sk: &str,
        projection: Option<&'static [&'static str]>,
        visit: &mut (dyn FnMut(Item) -> Result<(), PortError> + Send),
    ) -> Result<u64, PortError> {
        let (pages, mut received) = mpsc::channel::<Result<Vec<Item>, PortError>>(PAGES_BUFFERED);
        let mut workers = Vec::new();
        for segment in 0..self.segments {
            let (client, table, pages) = (self.client.clone(), self.table.clone(), pages.clone());
            let (prefix, sk, total) = (prefix.to_owned(), sk.to_owned(), self.segments);
            workers.push(tokio::spawn(async move {
                let mut start: Option<Item> = None;
                loop {
                    let mut request = client.scan();
                    if let Some(names) = projection {
                        // Through placeholders: an attribute name may be a reserved word.
                        let placeholders: Vec<String> = (0..names.len()).map(|i| format!("#p{i}")).collect();
                        for (placeholder, name) in placeholders.iter().zip(names) {
                            request = request.expression_attribute_names(placeholder, *name);
                        }
                        request = request.projection_expression(placeholders.join(", "));
                    }
                    let answer = request
                        .table_name(&table)
                        .segment(segment as i32)
                        .total_segments(total as i32)
                        .consistent_read(true)
                        .filter_expression("begins_with(pk, :prefix) AND sk = :sk")
                        .expression_attribute_values(":prefix", s(prefix.as_str()))
                        .expression_attribute_values(":sk", s(sk.as_str()))
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(|e| dynamodb_error(SERVICE, e));
                    let out = match answer {
                        Ok(out) => out,
                        Err(error) => {
                            let _ = pages.send(Err(error)).await;
                            return;
                        }
                    };
                    if pages.send(Ok(out.items.unwrap_or_default())).await.is_err() {
                        return; // the visitor gave up
                    }
                    match out.last_evaluated_key {
                        Some(key) if !key.is_empty() => start = Some(key),
                        _ => return,
                    }
                }
            }));
        }
        drop(pages);
        let mut count = 0;
        let mut outcome = Ok(());
        while let Some(page) = received.recv().await {
            let items = match page {
                Ok(items) => items,
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            };
            for item in items {
                if let Err(error) = visit(item) {
                    outcome = Err(error);
                    break;
                }
                count += 1;
            }
            if outcome.is_err() {
                break;
            }
        }
        drop(received);
        for worker in workers {
            worker.await.map_err(|e| PortError::Unavailable(SERVICE, Box::new(e)))?;
        }
        outcome.map(|()| count)
    }
}

#[async_trait]
impl HistoryReader for DynamoHistoryReader {
    async fn scan_carts(&self, visit: &mut (dyn FnMut(CartRecord) + Send)) -> Result<u64, PortError> {
        self.scan("CART#", "STATE", Some(CART_PROJECTION), &mut |item| {
            visit(cart_from_item(item)?);
            Ok(())
        })
        .await
    }

    async fn scan_customers(&self, visit: &mut (dyn FnMut(Customer) + Send)) -> Result<u64, PortError> {
        self.scan("CUST#", "PROFILE", None, &mut |item| {
            visit(from_item(item).map_err(|e| corrupt("customer", e))?);
            Ok(())
        })
        .await
    }

    async fn scan_messages(&self, visit: &mut (dyn FnMut(MessageRecord) + Send)) -> Result<u64, PortError> {
        self.scan("MSG#", "MSG", None, &mut |item| {
            visit(message_from_item(item)?);
            Ok(())
        })
        .await
    }

    async fn scan_vouchers(&self, visit: &mut (dyn FnMut(Voucher) + Send)) -> Result<u64, PortError> {
        self.scan("VOUCHER#", "VOUCHER", None, &mut |item| {
            visit(voucher_from_item(&item)?);
            Ok(())
        })
        .await
    }
}
