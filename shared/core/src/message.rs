//! Messages: channels, the record kept per cart/step/channel (which is also
//! the send claim), and the job a channel queue carries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{CartId, CustomerKey, MessageId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Push,
    WebPush,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Email, Channel::Sms, Channel::Push, Channel::WebPush];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::WebPush => "web_push",
        }
    }

    /// The queue (and sender) that carries this channel. Web push shares the
    /// push sender.
    pub fn queue(self) -> QueueName {
        match self {
            Channel::Email => QueueName::Email,
            Channel::Sms => QueueName::Sms,
            Channel::Push | Channel::WebPush => QueueName::Push,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueName {
    Email,
    Sms,
    Push,
}

impl QueueName {
    pub const ALL: [QueueName; 3] = [QueueName::Email, QueueName::Sms, QueueName::Push];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Email => "email",
            QueueName::Sms => "sms",
            QueueName::Push => "push",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MessageStatus {
    /// Decided and queued; nobody is sending it yet.
    Queued,
    /// A sender holds the claim until `lease_until`.
    Sending { lease_until: DateTime<Utc>, attempts: u32 },
    Sent { provider_message_id: String, at: DateTime<Utc> },
    /// The provider refused for good (invalid address, suppressed): never retried.
    Rejected { error: String, at: DateTime<Utc> },
    /// Not sent because the cart changed after the decision (e.g. a purchase).
    Cancelled { reason: String, at: DateTime<Utc> },
}

impl MessageStatus {
    pub fn name(&self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sending { .. } => "sending",
            MessageStatus::Sent { .. } => "sent",
            MessageStatus::Rejected { .. } => "rejected",
            MessageStatus::Cancelled { .. } => "cancelled",
        }
    }

    /// Counts towards caps: everything that was or may still be sent.
    pub fn counts_as_sent(&self) -> bool {
        !matches!(self, MessageStatus::Rejected { .. } | MessageStatus::Cancelled { .. })
    }
}

/// One message per cart, step and channel. Created by the checker with a
/// conditional write, claimed by the sender before it calls the provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub message_id: MessageId,
    pub cart_id: CartId,
    /// The customer, or the cart for a guest: whose caps it counts in.
    pub customer_key: CustomerKey,
    pub campaign_id: String,
    pub step: u32,
    pub channel: Channel,
    pub decided_at: DateTime<Utc>,
    pub status: MessageStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engaged_at: Option<DateTime<Utc>>,
}

impl MessageRecord {
    /// Deterministic id: the same cart, step and channel always give the
    /// same id, which is what makes the claim exclusive.
    pub fn id_for(cart_id: &str, step: u32, channel: Channel) -> MessageId {
        let digest = Sha256::digest(format!("{cart_id}\u{1f}{step}\u{1f}{}", channel.as_str()));
        MessageId::from(format!("m_{}", &hex::encode(digest)[..24]))
    }
}

/// A fully rendered message, ready for a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outgoing {
    Email { to: String, subject: String, text: String, html: String },
    Sms { to: String, body: String },
    Push { platform: crate::event::PushPlatform, token: String, title: String, body: String, url: String },
    WebPush { subscription: serde_json::Value, title: String, body: String, url: String },
}

/// What a channel queue carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageJob {
    pub message_id: MessageId,
    pub cart_id: CartId,
    pub channel: Channel,
    pub outgoing: Outgoing,
}
