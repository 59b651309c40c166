//! Turning an SQS event into jobs, record by record, so the handler can
//! report partial batch failures.

use aws_lambda_events::sqs::SqsEvent;

use cartback_core::message::MessageJob;

#[derive(Debug)]
pub enum BatchItem {
    Job {
        record_id: String,
        receive_count: u32,
        job: MessageJob,
    },
    /// The body is not a job: it will never succeed.
    Malformed {
        record_id: String,
        error: String,
    },
    /// No SQS message id, so it cannot be named in a batch response.
    Unidentified,
}

pub fn parse_batch(event: SqsEvent) -> Vec<BatchItem> {
    event
        .records
        .into_iter()
        .map(|record| {
            let Some(record_id) = record.message_id.filter(|id| !id.is_empty()) else { return BatchItem::Unidentified };
            let receive_count =
                record.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1);
            match serde_json::from_str::<MessageJob>(record.body.as_deref().unwrap_or_default()) {
                Ok(job) => BatchItem::Job { record_id, receive_count, job },
                // Never serde's text: it quotes values, and job bodies hold contact data.
                Err(e) => BatchItem::Malformed {
                    record_id,
                    error: format!("body is not a message job: {}", crate::redact::json_error_summary(&e)),
                },
            }
        })
        .collect()
}
