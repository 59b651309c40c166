//! Messages: channels, the record kept per cart/step/channel (which is also
//! the send claim), and the job a channel queue carries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::enum_names;

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
        enum_names::name_of(&self)
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
        enum_names::name_of(&self)
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

/// The state of a [`MessageStatus`] without its data; its serde name is the
/// status's `state` tag (a test keeps the two derives in step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    Queued,
    Sending,
    Sent,
    Rejected,
    Cancelled,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        enum_names::name_of(&self)
    }
}

impl MessageStatus {
    pub fn state(&self) -> MessageState {
        match self {
            MessageStatus::Queued => MessageState::Queued,
            MessageStatus::Sending { .. } => MessageState::Sending,
            MessageStatus::Sent { .. } => MessageState::Sent,
            MessageStatus::Rejected { .. } => MessageState::Rejected,
            MessageStatus::Cancelled { .. } => MessageState::Cancelled,
        }
    }

    /// The `state` tag of the serde form, e.g. `"sent"`.
    pub fn name(&self) -> &'static str {
        self.state().as_str()
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
    pub message_id: String,
    pub cart_id: String,
    /// Customer id, or `cart:<cart_id>` for a guest.
    pub customer_key: String,
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
    pub fn id_for(cart_id: &str, step: u32, channel: Channel) -> String {
        let digest = Sha256::digest(format!("{cart_id}\u{1f}{step}\u{1f}{}", channel.as_str()));
        format!("m_{}", &hex::encode(digest)[..24])
    }
}

pub fn customer_key(customer_id: Option<&str>, cart_id: &str) -> String {
    match customer_id {
        Some(id) => id.to_owned(),
        None => format!("cart:{cart_id}"),
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
    pub message_id: String,
    pub cart_id: String,
    pub channel: Channel,
    pub outgoing: Outgoing,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_name<T: Serialize>(value: &T) -> serde_json::Value {
        serde_json::to_value(value).expect("serialisable")
    }

    #[test]
    fn given_every_channel_and_queue_when_named_then_the_name_is_the_json_string() {
        for channel in Channel::ALL {
            assert_eq!(json_name(&channel), channel.as_str());
        }
        for queue in QueueName::ALL {
            assert_eq!(json_name(&queue), queue.as_str());
        }
        assert_eq!(Channel::WebPush.as_str(), "web_push");
    }

    #[test]
    fn given_every_message_status_when_named_then_the_name_is_its_serde_state_tag() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let statuses = [
            MessageStatus::Queued,
            MessageStatus::Sending { lease_until: at, attempts: 1 },
            MessageStatus::Sent { provider_message_id: "p".into(), at },
            MessageStatus::Rejected { error: "e".into(), at },
            MessageStatus::Cancelled { reason: "r".into(), at },
        ];
        for status in statuses {
            assert_eq!(json_name(&status)["state"], status.name(), "{status:?}");
        }
        assert_eq!(MessageStatus::Queued.name(), "queued");
    }
}
