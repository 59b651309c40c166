//! `JobQueue` on SQS: one queue (with its dead-letter queue) per channel
//! queue name.

use async_trait::async_trait;
use aws_sdk_sqs::Client;

use cartback_core::message::MessageJob;
use cartback_core::ports::{JobQueue, PortError};

use crate::config::QueueUrls;
use crate::error::{build_error, unavailable};
use crate::sqs_batch::Receipt;

pub struct SqsJobQueue {
    client: Client,
    urls: QueueUrls,
}

impl SqsJobQueue {
    pub fn new(client: Client, urls: QueueUrls) -> Self {
        SqsJobQueue { client, urls }
    }
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn enqueue(&self, job: &MessageJob) -> Result<(), PortError> {
        let body = serde_json::to_string(job).map_err(|e| build_error("sqs", e))?;
        let queue = job.channel.queue();
        let Some(url) = self.urls.url(queue) else {
            return Err(PortError::Refused("sqs", format!("no {} queue is configured", queue.as_str()).into()));
        };
        self.client.send_message().queue_url(url).message_body(body).send().await.map_err(|e| unavailable("sqs", e))?;
        tracing::info!(message_id = %job.message_id, cart_id = %job.cart_id, queue = queue.as_str(), "job enqueued");
        Ok(())
    }
}

/// SQS keeps a received message hidden for at most 12 hours from its
/// receipt; a little less leaves room for the time already spent.
const MAX_HIDE_SECONDS: i64 = 12 * 3600 - 300;

/// Hides a received job until it may go (the end of quiet hours, the end of
/// another sender's lease) instead of letting it come back after the
/// queue's visibility timeout: a deferral is not a failure, and coming back
/// every few minutes would spend the message's receives and dead-letter it.
/// Each deferral still counts one receive (SQS counts receives, not
/// failures); a night's deferral is one, well within `maxReceiveCount`.
pub struct Postponer {
    client: Client,
}

impl Postponer {
    pub fn new(client: Client) -> Self {
        Postponer { client }
    }

    /// Hides the record for `seconds` (clamped to what SQS allows).
    pub async fn hide(&self, receipt: &Receipt, seconds: i64) -> Result<(), PortError> {
        let url = self.queue_url(&receipt.queue_arn).await?;
        let seconds = i32::try_from(seconds.clamp(0, MAX_HIDE_SECONDS)).unwrap_or(0);
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(&receipt.receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| unavailable("sqs", e))?;
        Ok(())
    }

    /// `arn:aws:sqs:<region>:<account>:<name>` to the queue's URL.
    async fn queue_url(&self, arn: &str) -> Result<String, PortError> {
        let parts: Vec<&str> = arn.split(':').collect();
        let [_, _, "sqs", _, account, name] = parts.as_slice() else {
            return Err(build_error("sqs", format!("{arn} is not an SQS queue ARN")));
        };
        let out = self
            .client
            .get_queue_url()
            .queue_name(*name)
            .queue_owner_aws_account_id(*account)
            .send()
            .await
            .map_err(|e| unavailable("sqs", e))?;
        out.queue_url.ok_or_else(|| build_error("sqs", "GetQueueUrl answered no URL"))
    }
}
