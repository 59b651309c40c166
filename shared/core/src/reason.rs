//! Machine-readable reasons for every decision, each with a sentence a person
//! can read on the cart's timeline.

use serde::{Deserialize, Serialize};

use crate::enum_names;

/// Why the engine decided what it did. The serde name (snake case) is the
/// code stored on timelines and answered by the API; codes name the rule,
/// never a setting's value, so a changed setting cannot make them lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    WaitingForInactivity,
    WaitingForNextStep,
    QuietHoursDeferred,
    Sent,
    NoConsent,
    NoReachableChannel,
    /// The customer got a message about another cart within the campaign's
    /// `entry_cooldown` (any length). Was `cooldown_7d`, still accepted.
    #[serde(alias = "cooldown_7d")]
    EntryCooldown,
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
    /// A step found more than the campaign's `max_send_delay` after it fell
    /// due (e.g. events backfilled from long ago): skipped, not sent late.
    StepTooLate,
    /// The customer is in the campaign's holdout: the step would have gone
    /// out (every rule passed), and nothing is sent.
    HeldOut,
    /// A shadow campaign would have sent the step; it sends nothing.
    ShadowWouldSend,
    /// The customer unsubscribed from cart reminders (link or preference page).
    Unsubscribed,
    /// The customer snoozed cart reminders on the preference page.
    Snoozed,
    /// The customer told us they already bought what is in this cart.
    AlreadyBought,
    /// A guest who only typed an address at checkout, where the campaign
    /// requires explicit consent for guests.
    ExplicitConsentRequired,
    /// The step's message shows a voucher (issued now, or the cart's own
    /// from an earlier step).
    VoucherOffered,
    /// No voucher: the customer redeemed a promotion within the campaign's
    /// `vouchers.recent_promotion_window`.
    RecentPromotion,
    /// No voucher: the customer got one for another cart within
    /// `vouchers.cap_window`.
    VoucherCap,
    /// No voucher: the cart is below the tier's `min_cart_value`, or the
    /// tier has no amount in the cart's currency.
    VoucherNotApplicable,
    /// The step's template set could not be rendered (or no longer
    /// exists): the message was composed from the shipped default instead.
    TemplateFallback,
    /// The step's SMS, opt-out instruction included, needs more segments
    /// than the campaign's `caps.sms_max_segments`: the step goes by the
    /// next channel of the device's order instead.
    SmsTooLong,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 31] = [
        ReasonCode::WaitingForInactivity,
        ReasonCode::WaitingForNextStep,
        ReasonCode::QuietHoursDeferred,
        ReasonCode::Sent,
        ReasonCode::NoConsent,
        ReasonCode::NoReachableChannel,
        ReasonCode::EntryCooldown,
        ReasonCode::PushCapReached,
        ReasonCode::SmsCapReached,
        ReasonCode::SmsWindowClosed,
        ReasonCode::RecentPurchase,
        ReasonCode::Purchased,
        ReasonCode::CartEmptied,
        ReasonCode::NothingInCart,
        ReasonCode::CampaignDisabled,
        ReasonCode::NoMatchingCampaign,
        ReasonCode::Engaged,
        ReasonCode::SequenceCompleted,
        ReasonCode::StepTooLate,
        ReasonCode::HeldOut,
        ReasonCode::ShadowWouldSend,
        ReasonCode::Unsubscribed,
        ReasonCode::Snoozed,
        ReasonCode::AlreadyBought,
        ReasonCode::ExplicitConsentRequired,
        ReasonCode::VoucherOffered,
        ReasonCode::RecentPromotion,
        ReasonCode::VoucherCap,
        ReasonCode::VoucherNotApplicable,
        ReasonCode::TemplateFallback,
        ReasonCode::SmsTooLong,
    ];

    pub fn as_str(self) -> &'static str {
        enum_names::name_of(&self)
    }

    /// The code for a stored or received string, old names included.
    pub fn parse(text: &str) -> Option<Self> {
        enum_names::from_name(text)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_every_code_when_named_then_the_name_is_its_json_string_and_parses_back() {
        for code in ReasonCode::ALL {
            let json = serde_json::to_value(code).expect("serialisable");
            assert_eq!(json.as_str(), Some(code.as_str()));
            assert_eq!(ReasonCode::parse(code.as_str()), Some(code));
        }
    }

    #[test]
    fn given_the_old_cooldown_7d_string_when_read_then_it_is_the_entry_cooldown_and_is_written_back_as_such() {
        assert_eq!(ReasonCode::parse("cooldown_7d"), Some(ReasonCode::EntryCooldown));
        let old = r#"{"code": "cooldown_7d", "message": "m"}"#;
        let read: Reason = serde_json::from_str(old).expect("old timeline JSON");
        assert_eq!(read.code, ReasonCode::EntryCooldown);
        assert_eq!(serde_json::to_value(read.code).expect("serialisable"), "entry_cooldown");
    }
}
