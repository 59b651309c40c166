//! Machine-readable reasons for every decision, each with a sentence a person
//! can read on the cart's timeline.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    WaitingForInactivity,
    WaitingForNextStep,
    QuietHoursDeferred,
    Sent,
    NoConsent,
    NoReachableChannel,
    Cooldown7d,
    PushCapReached,
    SmsCapReached,
    SmsWindowClosed,
    RecentPurchase,
    Purchased,
    CartEmptied,
    NothingInCart,
    CampaignDisabled,
    NoMatchingCampaign,
    Engaged,
    SequenceCompleted,
}

impl ReasonCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::WaitingForInactivity => "waiting_for_inactivity",
            ReasonCode::WaitingForNextStep => "waiting_for_next_step",
            ReasonCode::QuietHoursDeferred => "quiet_hours_deferred",
            ReasonCode::Sent => "sent",
            ReasonCode::NoConsent => "no_consent",
            ReasonCode::NoReachableChannel => "no_reachable_channel",
            ReasonCode::Cooldown7d => "cooldown_7d",
            ReasonCode::PushCapReached => "push_cap_reached",
            ReasonCode::SmsCapReached => "sms_cap_reached",
            ReasonCode::SmsWindowClosed => "sms_window_closed",
            ReasonCode::RecentPurchase => "recent_purchase",
            ReasonCode::Purchased => "purchased",
            ReasonCode::CartEmptied => "cart_emptied",
            ReasonCode::NothingInCart => "nothing_in_cart",
            ReasonCode::CampaignDisabled => "campaign_disabled",
            ReasonCode::NoMatchingCampaign => "no_matching_campaign",
            ReasonCode::Engaged => "engaged",
            ReasonCode::SequenceCompleted => "sequence_completed",
        }
    }
}

/// A reason code and the sentence that explains it for this cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
}

impl Reason {
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        Reason { code, message: message.into() }
    }
}
