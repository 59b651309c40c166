//! The read-only [`HistoryReader`] over the DynamoDB state table, for
//! backtests: a parallel `Scan` (one worker per segment, each reading its
//! segment page by page, strongly consistent) filtered to one item kind.
//! It never writes: the only call it makes is `Scan`.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use serde_dynamo::aws_sdk_dynamodb_1::from_item;
use tokio::sync::mpsc;

use cartback_core::customer::Customer;
use cartback_core::message::MessageRecord;
use cartback_core::ports::{CartRecord, HistoryReader, PortError};

use crate::dynamo::{corrupt, message_from_item, s, Item, SERVICE};
use crate::error::dynamodb_error;

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

    /// Every item whose `pk` starts with `prefix` and whose `sk` is `sk`,
    /// handed to `visit` page by page as the segments' workers read them.
    async fn scan(
        &self,
        prefix: &str,
        sk: &str,
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
                    let answer = client
                        .scan()
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
        self.scan("CART#", "STATE", &mut |item| {
            visit(from_item(item).map_err(|e| corrupt("cart", e))?);
            Ok(())
        })
        .await
    }

    async fn scan_customers(&self, visit: &mut (dyn FnMut(Customer) + Send)) -> Result<u64, PortError> {
        self.scan("CUST#", "PROFILE", &mut |item| {
            visit(from_item(item).map_err(|e| corrupt("customer", e))?);
            Ok(())
        })
        .await
    }

    async fn scan_messages(&self, visit: &mut (dyn FnMut(MessageRecord) + Send)) -> Result<u64, PortError> {
        self.scan("MSG#", "MSG", &mut |item| {
            visit(message_from_item(item)?);
            Ok(())
        })
        .await
    }
}
