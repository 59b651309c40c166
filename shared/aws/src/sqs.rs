//! `JobQueue` on SQS: one queue (with its dead-letter queue) per channel
//! queue name.

use async_trait::async_trait;
use aws_sdk_sqs::Client;

use cartback_core::message::MessageJob;
use cartback_core::ports::{JobQueue, PortError};

use crate::config::QueueUrls;
use crate::error::{build_error, unavailable};

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
        self.client
            .send_message()
            .queue_url(self.urls.url(queue))
            .message_body(body)
            .send()
            .await
            .map_err(|e| unavailable("sqs", e))?;
        tracing::info!(message_id = %job.message_id, cart_id = %job.cart_id, queue = queue.as_str(), "job enqueued");
        Ok(())
    }
}
