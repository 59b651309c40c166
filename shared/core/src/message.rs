//! Messages: channels, the record kept per cart/step/channel (which is also
//! the send claim), and the job a channel queue carries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::contact::{DeviceToken, Email, Phone, WebPushSubscription};
use crate::engagement::Engagement;
use crate::enum_names;
use crate::event::{CustomerPatch, PushPlatform, PushToken};
use crate::ids::{CartId, CustomerKey, MessageId};
use crate::voucher::VoucherCode;
use crate::webhook::{CartReminder, WebhookContact, WebhookTargetName};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Push,
    WebPush,
    /// A signed HTTP POST to a target the shop names (a CRM, a chat bot).
    Webhook,
}

impl Channel {
    pub const ALL: [Channel; 5] = [Channel::Email, Channel::Sms, Channel::Push, Channel::WebPush, Channel::Webhook];

    /// The channels that reach the customer themselves, each with its own
    /// consent (the webhook channel reaches the shop's system).
    pub const PERSONAL: [Channel; 4] = [Channel::Email, Channel::Sms, Channel::Push, Channel::WebPush];

    pub fn as_str(self) -> &'static str {
        enum_names::name_of(&self)
    }

    /// Whether an open of this channel's message is a person's act, decisive
    /// like a click in every campaign: a mobile push is opened only by a tap
    /// (which the shop's app reports), whereas mail is opened by privacy
    /// proxies and scanners by themselves (see `opens_count_as_engagement`).
    pub fn opened_only_by_people(self) -> bool {
        matches!(self, Channel::Push)
    }

    /// The queue (and sender) that carries this channel. Web push shares the
    /// push sender.
    pub fn queue(self) -> QueueName {
        match self {
            Channel::Email => QueueName::Email,
            Channel::Sms => QueueName::Sms,
            Channel::Push | Channel::WebPush => QueueName::Push,
            Channel::Webhook => QueueName::Webhook,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueName {
    Email,
    Sms,
    Push,
    Webhook,
}

impl QueueName {
    pub const ALL: [QueueName; 4] = [QueueName::Email, QueueName::Sms, QueueName::Push, QueueName::Webhook];

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
    Sending {
        lease_until: DateTime<Utc>,
        attempts: u32,
        /// Written just before the provider call: a claim whose holder
        /// stopped with this still false certainly sent nothing, so the next
        /// claim starts afresh instead of recording `unknown`. Records
        /// written before the field existed read as `true` (may have sent).
        #[serde(default = "may_have_called")]
        provider_called: bool,
    },
    Sent {
        provider_message_id: String,
        at: DateTime<Utc>,
    },
    /// The provider refused for good (invalid address, suppressed): never retried.
    Rejected {
        error: String,
        at: DateTime<Utc>,
    },
    /// Not sent because the cart changed after the decision (e.g. a purchase).
    Cancelled {
        reason: String,
        at: DateTime<Utc>,
    },
    /// A sender stopped mid-send and the provider cannot say whether the
    /// message went out: it is not sent again automatically (an operator
    /// reconciles), and it counts as sent for caps.
    Unknown {
        reason: String,
        at: DateTime<Utc>,
    },
    /// Decided like any message and never sent: the customer is in the
    /// campaign's holdout. Counts as sent for caps and cooldowns, so both
    /// groups meet the same rules; never claimed by a sender.
    HeldOut {
        at: DateTime<Utc>,
    },
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
    Unknown,
    HeldOut,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        enum_names::name_of(&self)
    }
}

fn may_have_called() -> bool {
    true
}

impl MessageStatus {
    pub fn state(&self) -> MessageState {
        match self {
            MessageStatus::Queued => MessageState::Queued,
            MessageStatus::Sending { .. } => MessageState::Sending,
            MessageStatus::Sent { .. } => MessageState::Sent,
            MessageStatus::Rejected { .. } => MessageState::Rejected,
            MessageStatus::Cancelled { .. } => MessageState::Cancelled,
            MessageStatus::Unknown { .. } => MessageState::Unknown,
            MessageStatus::HeldOut { .. } => MessageState::HeldOut,
        }
    }

    /// The `state` tag of the serde form, e.g. `"sent"`.
    pub fn name(&self) -> &'static str {
        self.state().as_str()
    }

    /// Counts towards caps: everything that was or may still be sent, and
    /// what a held-out customer would have been sent.
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
    /// Opens and clicks, counted per label (human click, suspected scanner
    /// click, open, machine open). Records written before labels existed
    /// kept one `engaged_at` time; it reads as a human click.
    #[serde(default, alias = "engaged_at", skip_serializing_if = "Engagement::is_empty")]
    pub engagement: Engagement,
    /// The campaign experiment's variant the cart is in, if it runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl MessageRecord {
    /// The record of a step decided at `at` for a cart (sent, held out, or
    /// a shadow's would-send): its id is the cart's, step's and channel's,
    /// it has no engagement yet and no variant (see [`Self::in_variant`]).
    pub fn decided(
        cart_id: &CartId,
        customer_key: &CustomerKey,
        campaign_id: &str,
        step: u32,
        channel: Channel,
        at: DateTime<Utc>,
        status: MessageStatus,
    ) -> Self {
        MessageRecord {
            message_id: Self::id_for(cart_id, step, channel),
            cart_id: cart_id.clone(),
            customer_key: customer_key.clone(),
            campaign_id: campaign_id.to_owned(),
            step,
            channel,
            decided_at: at,
            status,
            engagement: Engagement::default(),
            variant: None,
        }
    }

    /// The record in the campaign experiment's `variant`.
    pub fn in_variant(self, variant: Option<String>) -> Self {
        MessageRecord { variant, ..self }
    }

    /// Deterministic id: the same cart, step and channel always give the
    /// same id, which is what makes the claim exclusive.
    pub fn id_for(cart_id: &str, step: u32, channel: Channel) -> MessageId {
        let digest = Sha256::digest(format!("{cart_id}\u{1f}{step}\u{1f}{}", channel.as_str()));
        MessageId::from(format!("m_{}", &hex::encode(digest)[..24]))
    }

    /// The id of what shadow campaign `campaign_id` would send: apart from
    /// the live campaign's, and never a record's (ids of real messages
    /// start with `m_`).
    pub fn shadow_id_for(campaign_id: &str, cart_id: &str, step: u32, channel: Channel) -> MessageId {
        let live = Self::id_for(&format!("{cart_id}\u{1f}shadow\u{1f}{campaign_id}"), step, channel);
        MessageId::from(format!("s_{}", live.as_str().trim_start_matches("m_")))
    }
}

/// Who a message goes to: the contact value of the channel the engine
/// chose. A send decision carries one, so no message is queued without it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    Email(Email),
    Sms(Phone),
    Push(PushToken),
    WebPush(WebPushSubscription),
    /// The shop's own system, by the target name the step gives.
    Webhook(WebhookTargetName),
}

impl Recipient {
    /// The contact value that `channel` delivers to, when the contact has one.
    pub fn for_channel(contact: &CustomerPatch, channel: Channel) -> Option<Recipient> {
        match channel {
            Channel::Email => contact.email.clone().map(Recipient::Email),
            Channel::Sms => contact.phone.clone().map(Recipient::Sms),
            Channel::Push => contact.push_tokens.as_ref().and_then(|t| t.first()).cloned().map(Recipient::Push),
            Channel::WebPush => contact.web_push_subscription.clone().map(Recipient::WebPush),
            // Not a contact value: the step names the target.
            Channel::Webhook => None,
        }
    }

    pub fn channel(&self) -> Channel {
        match self {
            Recipient::Email(_) => Channel::Email,
            Recipient::Sms(_) => Channel::Sms,
            Recipient::Push(_) => Channel::Push,
            Recipient::WebPush(_) => Channel::WebPush,
            Recipient::Webhook(_) => Channel::Webhook,
        }
    }
}

/// A fully rendered message, ready for a provider. Contact values print
/// redacted (see [`crate::contact`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outgoing {
    Email {
        to: Email,
        subject: String,
        text: String,
        html: String,
        /// The `List-Unsubscribe` targets (RFC 2369, RFC 8058); jobs queued
        /// before they existed carry none and are sent without the headers.
        /// Boxed: most of a job's weight is on the heap already, and a
        /// queue batch holds many.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unsubscribe: Option<Box<ListUnsubscribe>>,
    },
    Sms {
        to: Phone,
        body: String,
    },
    Push {
        platform: PushPlatform,
        token: DeviceToken,
        title: String,
        body: String,
        url: String,
    },
    WebPush {
        subscription: WebPushSubscription,
        title: String,
        body: String,
        url: String,
    },
    /// The `cart.abandoned_reminder` event for one target. The contact
    /// values travel beside it; the sender adds only those the target's
    /// allow-list names (see [`crate::webhook::cart_reminder_body`]).
    Webhook {
        target: WebhookTargetName,
        event: Box<CartReminder>,
        #[serde(default, skip_serializing_if = "WebhookContact::is_empty")]
        contact: WebhookContact,
    },
}

/// Where a recipient unsubscribes from an email: the one-click HTTPS link
/// (`POST` withdraws email consent, `GET` opens the preference page) and,
/// when the shop has one, a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListUnsubscribe {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailto: Option<String>,
}

/// The most a serialised [`MessageJob`] may weigh. SQS refuses a message
/// whose body is over 256 KiB (and counts the body, not a compressed form);
/// a job stays a quarter below that, so the queue never refuses a cart's
/// message, whatever its items. The renderer lists fewer items when a
/// message would not fit (see [`crate::render::MAX_ITEMS_SHOWN`]).
pub const MAX_JOB_BYTES: usize = 192 * 1024;

/// What a channel queue carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageJob {
    pub message_id: MessageId,
    pub cart_id: CartId,
    pub channel: Channel,
    pub outgoing: Outgoing,
    /// The voucher the message shows, if any: its `voucher.issued` webhook
    /// goes out before the message (see `Settings::voucher_webhook`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voucher: Option<VoucherCode>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::Customer;
    use crate::event::ConsentPatch;

    const SECRETS: [&str; 4] = ["ana.lopez", "612345678", "fcm-secret-token", "push.example/s/secret"];

    fn patch() -> CustomerPatch {
        CustomerPatch {
            email: Email::parse("ana.lopez@example.com").ok(),
            phone: Phone::parse("+33612345678").ok(),
            first_name: Some("Ana".into()),
            consents: Some(ConsentPatch { email: Some(true), ..Default::default() }),
            push_tokens: Some(vec![PushToken { platform: PushPlatform::Fcm, token: "fcm-secret-token".into() }]),
            web_push_subscription: Some(serde_json::json!({"endpoint": "https://push.example/s/secret"}).into()),
            ..Default::default()
        }
    }

    fn assert_redacted(shown: &str) {
        for secret in SECRETS {
            assert!(!shown.contains(secret), "{secret} leaks in {shown}");
        }
    }

    #[test]
    fn given_a_patch_and_a_customer_with_contact_data_when_debug_printed_then_no_contact_value_shows() {
        let customer = Customer { profile: patch(), ..Customer::new("u1") };
        assert_redacted(&format!("{:?}", patch()));
        assert_redacted(&format!("{customer:?}"));
    }

    #[test]
    fn given_jobs_for_every_channel_when_debug_printed_then_no_recipient_shows() {
        let contact = patch();
        for channel in Channel::ALL {
            let to = match channel {
                Channel::Webhook => Recipient::Webhook(crate::webhook::WebhookTargetName::parse("crm").unwrap()),
                _ => Recipient::for_channel(&contact, channel).expect("the contact reaches every channel"),
            };
            assert_redacted(&format!("{to:?}"));
            let outgoing = match to {
                Recipient::Email(to) => {
                    Outgoing::Email { to, subject: "s".into(), text: "t".into(), html: "h".into(), unsubscribe: None }
                }
                Recipient::Sms(to) => Outgoing::Sms { to, body: "b".into() },
                Recipient::Push(t) => Outgoing::Push {
                    platform: t.platform,
                    token: t.token,
                    title: "t".into(),
                    body: "b".into(),
                    url: "u".into(),
                },
                Recipient::WebPush(subscription) => {
                    Outgoing::WebPush { subscription, title: "t".into(), body: "b".into(), url: "u".into() }
                }
                Recipient::Webhook(target) => Outgoing::Webhook {
                    target,
                    event: Box::new(crate::webhook::tests::reminder()),
                    contact: crate::webhook::WebhookContact {
                        email: contact.email.clone(),
                        phone: contact.phone.clone(),
                        first_name: None,
                    },
                },
            };
            let job = MessageJob { message_id: "m_1".into(), cart_id: "c1".into(), channel, outgoing, voucher: None };
            assert_redacted(&format!("{job:?}"));
        }
    }

    #[test]
    fn given_a_job_when_queued_as_json_then_the_recipient_is_the_plain_value() {
        let job = MessageJob {
            message_id: "m_1".into(),
            cart_id: "c1".into(),
            channel: Channel::Sms,
            outgoing: Outgoing::Sms { to: Phone::parse("+33612345678").unwrap(), body: "b".into() },
            voucher: None,
        };
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["outgoing"], serde_json::json!({"kind": "sms", "to": "+33612345678", "body": "b"}));
        assert_eq!(serde_json::from_value::<MessageJob>(json).unwrap(), job);
    }

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
    fn given_a_record_stored_before_engagement_labels_when_read_then_its_engaged_at_is_one_human_click() {
        let stored = serde_json::json!({
            "message_id": "m_1", "cart_id": "c1", "customer_key": "customer:u1", "campaign_id": "default", "step": 0,
            "channel": "email", "decided_at": "2026-11-23T10:30:00Z", "status": {"state": "queued"},
            "engaged_at": "2026-11-23T11:00:00Z"
        });
        let record: MessageRecord = serde_json::from_value(stored).unwrap();
        let at: DateTime<Utc> = "2026-11-23T11:00:00Z".parse().unwrap();
        let click = record.engagement.tally(crate::engagement::EngagementLabel::HumanClick);
        assert_eq!(click, Some(&crate::engagement::Tally::once(at)));
        let written = serde_json::to_value(&record).unwrap();
        assert_eq!(written["engagement"]["click"]["count"], 1, "written back in the new form: {written}");
        assert!(written.get("engaged_at").is_none());
    }

    #[test]
    fn given_every_message_status_when_named_then_the_name_is_its_serde_state_tag() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let statuses = [
            MessageStatus::Queued,
            MessageStatus::Sending { lease_until: at, attempts: 1, provider_called: false },
            MessageStatus::Sent { provider_message_id: "p".into(), at },
            MessageStatus::Rejected { error: "e".into(), at },
            MessageStatus::Cancelled { reason: "r".into(), at },
            MessageStatus::Unknown { reason: "r".into(), at },
            MessageStatus::HeldOut { at },
        ];
        for status in statuses {
            assert_eq!(json_name(&status)["state"], status.name(), "{status:?}");
        }
        assert_eq!(MessageStatus::Queued.name(), "queued");
    }
}
