//! Turning an SQS event into jobs, record by record, so the handler can
//! report partial batch failures.

use aws_lambda_events::sqs::SqsEvent;

use cartback_core::message::MessageJob;

// One per SQS record, matched at once by the handler: boxing the job buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum BatchItem {
    Job {
        record_id: String,
        receive_count: u32,
        job: MessageJob,
        /// Where the record came from, to hide it for a while (a deferral).
        receipt: Option<Receipt>,
    },
    /// The body is not a job: it will never succeed.
    Malformed { record_id: String, error: String },
    /// No SQS message id, so it cannot be named in a batch response.
    Unidentified,
}

/// A received record's handle and queue: what `ChangeMessageVisibility` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub receipt_handle: String,
    pub queue_arn: String,
}

pub fn parse_batch(event: SqsEvent) -> Vec<BatchItem> {
    event
        .records
        .into_iter()
        .map(|record| {
            let Some(record_id) = record.message_id.filter(|id| !id.is_empty()) else { return BatchItem::Unidentified };
            let receive_count =
                record.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1);
            let receipt = match (record.receipt_handle, record.event_source_arn) {
                (Some(receipt_handle), Some(queue_arn)) => Some(Receipt { receipt_handle, queue_arn }),
                _ => None,
            };
            match serde_json::from_str::<MessageJob>(record.body.as_deref().unwrap_or_default()) {
                Ok(job) => BatchItem::Job { record_id, receive_count, job, receipt },
                // Never serde's text: it quotes values, and job bodies hold contact data.
                Err(e) => BatchItem::Malformed {
                    record_id,
                    error: format!("body is not a message job: {}", crate::redact::json_error_summary(&e)),
                },
            }
        })
        .collect()
}
