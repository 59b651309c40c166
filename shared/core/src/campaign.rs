//! Campaigns are data: marketers shape and switch them without a deploy.
//! The file format (TOML) is the serde form of these types.

use std::time::Duration as StdDuration;

use chrono::{Duration, NaiveTime};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::message::Channel;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub entry: EntryFilters,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub caps: Caps,
    #[serde(default)]
    pub quiet_hours: QuietHours,
    /// Whether an open of a step's message stops the follow-ups, like a
    /// click does. Off by default: Apple Mail Privacy Protection and mail
    /// scanners open every message, so an open proves nothing. Opens by a
    /// machine (see `crate::engagement`) never count, even when on.
    #[serde(default)]
    pub opens_count_as_engagement: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryFilters {
    /// Minimum cart subtotal, in the cart's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cart_value: Option<Decimal>,
    /// Minimum distinct items viewed on this cart's session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_items_viewed: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    /// At least one return in the last 90 days.
    ReturnedRecently,
    /// No purchase on record.
    FirstTimeBuyer,
    /// At least one earlier purchase.
    ReturningBuyer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelayFrom {
    LastActivity,
    PreviousStep,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(with = "human_duration")]
    pub delay: Duration,
    #[serde(default = "default_delay_from")]
    pub delay_from: DelayFrom,
    #[serde(default)]
    pub channels: ChannelOrder,
    #[serde(default = "default_template")]
    pub template: String,
}

fn default_delay_from() -> DelayFrom {
    DelayFrom::PreviousStep
}

fn default_template() -> String {
    "reminder".into()
}

/// Channel preference by the device of the last cart update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelOrder {
    pub mobile: Vec<Channel>,
    pub desktop: Vec<Channel>,
}

impl Default for ChannelOrder {
    fn default() -> Self {
        ChannelOrder {
            mobile: vec![Channel::Push, Channel::Email, Channel::Sms],
            desktop: vec![Channel::WebPush, Channel::Email, Channel::Sms],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Caps {
    /// No entry when the customer got an abandoned-cart message this recently.
    #[serde(with = "human_duration")]
    pub entry_cooldown: Duration,
    pub push_max: u32,
    #[serde(with = "human_duration")]
    pub push_window: Duration,
    /// No message this long after any purchase by the customer.
    #[serde(with = "human_duration")]
    pub after_purchase: Duration,
    pub sms_max_per_cart: u32,
    /// No SMS later than this after the cart was abandoned.
    #[serde(with = "human_duration")]
    pub sms_window: Duration,
    /// No step goes out later than this after it fell due: a step found
    /// later (events backfilled from long ago, a runtime that was down) is
    /// skipped with its reason, and the sequence goes on from its due time.
    #[serde(with = "human_duration")]
    pub max_send_delay: Duration,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            entry_cooldown: Duration::days(7),
            push_max: 2,
            push_window: Duration::days(7),
            after_purchase: Duration::hours(24),
            sms_max_per_cart: 1,
            sms_window: Duration::hours(48),
            max_send_delay: Duration::days(2),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuietHours {
    /// Local start of the quiet period, "HH:MM".
    pub start: NaiveTime,
    /// Local end of the quiet period, "HH:MM".
    pub end: NaiveTime,
    pub channels: Vec<Channel>,
    /// Time zone when neither the profile nor the phone number gives one.
    pub default_timezone: String,
}

impl Default for QuietHours {
    fn default() -> Self {
        QuietHours {
            start: NaiveTime::from_hms_opt(21, 0, 0).expect("valid time"),
            end: NaiveTime::from_hms_opt(8, 0, 0).expect("valid time"),
            channels: vec![Channel::Sms, Channel::Push],
            default_timezone: "UTC".into(),
        }
    }
}

impl Campaign {
    /// The campaign that ships with Cartback: the field's numbers.
    pub fn default_campaign() -> Campaign {
        Campaign {
            id: "default".into(),
            name: "Abandoned cart: 30 minutes, then 24 hours".into(),
            enabled: true,
            priority: 0,
            entry: EntryFilters::default(),
            steps: vec![
                Step {
                    delay: Duration::minutes(30),
                    delay_from: DelayFrom::LastActivity,
                    channels: ChannelOrder {
                        mobile: vec![Channel::Email, Channel::Sms],
                        desktop: vec![Channel::Email, Channel::Sms],
                    },
                    template: "reminder".into(),
                },
                Step {
                    delay: Duration::hours(24),
                    delay_from: DelayFrom::PreviousStep,
                    channels: ChannelOrder::default(),
                    template: "last_call".into(),
                },
            ],
            caps: Caps::default(),
            quiet_hours: QuietHours::default(),
            opens_count_as_engagement: false,
        }
    }

    /// Checks what serde cannot: returns every problem with its field path.
    pub fn validate(&self) -> Result<(), Vec<CampaignError>> {
        let mut errors = Vec::new();
        let mut err = |field: String, message: &str| errors.push(CampaignError { field, message: message.into() });
        if self.id.is_empty()
            || self.id.len() > 64
            || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            err("id".into(), "must be 1 to 64 letters, digits, '-' or '_'");
        }
        if self.name.trim().is_empty() {
            err("name".into(), "must not be empty");
        }
        if self.steps.is_empty() {
            err("steps".into(), "needs at least one step");
        }
        if self.steps.len() > 10 {
            err("steps".into(), "allows at most 10 steps");
        }
        let mut last_activity_delay = None;
        for (i, step) in self.steps.iter().enumerate() {
            if step.delay < Duration::minutes(1) || step.delay > Duration::days(30) {
                err(format!("steps[{i}].delay"), "must be between 1m and 30d");
            }
            // The first step always counts from the last activity.
            if i == 0 || step.delay_from == DelayFrom::LastActivity {
                if last_activity_delay.is_some_and(|previous| step.delay <= previous) {
                    err(
                        format!("steps[{i}].delay"),
                        "counts from the last activity, so it must be longer than the earlier steps' delays",
                    );
                }
                last_activity_delay = Some(step.delay);
            }
            if step.channels.mobile.is_empty() || step.channels.desktop.is_empty() {
                err(format!("steps[{i}].channels"), "needs at least one channel for mobile and for desktop");
            }
            if !crate::render::TEMPLATES.contains(&step.template.as_str()) {
                err(format!("steps[{i}].template"), "names no known template (reminder, last_call)");
            }
        }
        if let Some(v) = self.entry.min_cart_value {
            if v.is_sign_negative() {
                err("entry.min_cart_value".into(), "must not be negative");
            }
        }
        if self.quiet_hours.default_timezone.parse::<chrono_tz::Tz>().is_err() {
            err("quiet_hours.default_timezone".into(), "must be an IANA time zone name");
        }
        for (name, d) in [
            ("caps.entry_cooldown", self.caps.entry_cooldown),
            ("caps.push_window", self.caps.push_window),
            ("caps.after_purchase", self.caps.after_purchase),
            ("caps.sms_window", self.caps.sms_window),
        ] {
            if d < Duration::zero() || d > Duration::days(365) {
                err(name.into(), "must be between 0 and 365d");
            }
        }
        // A timer fires a little late and quiet hours defer by up to a night:
        // below a minute almost every step would be skipped.
        if self.caps.max_send_delay < Duration::minutes(1) || self.caps.max_send_delay > Duration::days(365) {
            err("caps.max_send_delay".into(), "must be between 1m and 365d");
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    pub fn from_toml(text: &str) -> Result<Campaign, Vec<CampaignError>> {
        let campaign: Campaign = toml::from_str(text).map_err(|e| {
            vec![CampaignError {
                field: "(file)".into(),
                message: e.message().to_owned()
                    + &e.span().map(|s| format!(" (at byte {})", s.start)).unwrap_or_default(),
            }]
        })?;
        campaign.validate()?;
        Ok(campaign)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("campaigns always serialise")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CampaignError {
    pub field: String,
    pub message: String,
}

/// Durations as human strings: "30m", "24h", "7days".
mod human_duration {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        let std = d.to_std().unwrap_or(StdDuration::ZERO);
        s.serialize_str(&humantime::format_duration(std).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        let std = humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration like 30m, 24h or 7d: {e}")))?;
        Duration::from_std(std).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_the_default_campaign_when_round_tripped_through_toml_then_it_is_unchanged() {
        let c = Campaign::default_campaign();
        assert_eq!(Campaign::from_toml(&c.to_toml()).unwrap(), c);
        assert_eq!(c.steps[0].delay, Duration::minutes(30));
        assert_eq!(c.steps[1].delay, Duration::hours(24));
    }

    #[test]
    fn given_a_minimal_file_when_parsed_then_field_defaults_apply() {
        let c = Campaign::from_toml("id = \"vip\"\nname = \"VIP\"\n[[steps]]\ndelay = \"1h\"\n").unwrap();
        assert!(c.enabled);
        assert!(!c.opens_count_as_engagement, "opens do not end a campaign unless it opts in");
        assert_eq!(c.caps, Caps::default());
        assert_eq!(c.steps[0].channels, ChannelOrder::default());
    }

    #[test]
    fn given_invalid_settings_when_validated_then_every_problem_is_named() {
        let mut c = Campaign::default_campaign();
        c.id = "bad id".into();
        c.steps[1].delay = Duration::seconds(5);
        c.steps[0].template = "nope".into();
        c.quiet_hours.default_timezone = "Mars/Base".into();
        let fields: Vec<String> = c.validate().unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["id", "steps[0].template", "steps[1].delay", "quiet_hours.default_timezone"]);
    }

    #[test]
    fn given_a_later_step_timed_from_the_last_activity_when_it_is_not_later_than_step_one_then_it_is_refused() {
        let mut c = Campaign::default_campaign();
        c.steps[1].delay_from = DelayFrom::LastActivity;
        c.steps[1].delay = Duration::minutes(30);
        let errors = c.validate().unwrap_err();
        assert_eq!(errors[0].field, "steps[1].delay");
        c.steps[1].delay = Duration::hours(2);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn given_a_file_without_max_send_delay_when_parsed_then_it_is_2_days_and_a_set_one_is_kept_and_checked() {
        let c = Campaign::from_toml("id = \"x\"\nname = \"x\"\n[[steps]]\ndelay = \"1h\"\n").unwrap();
        assert_eq!(c.caps.max_send_delay, Duration::days(2));
        let text = "id = \"x\"\nname = \"x\"\n[[steps]]\ndelay = \"1h\"\n[caps]\nmax_send_delay = \"6h\"\n";
        assert_eq!(Campaign::from_toml(text).unwrap().caps.max_send_delay, Duration::hours(6));
        let zero = text.replace("6h", "0s");
        let errors = Campaign::from_toml(&zero).unwrap_err();
        assert_eq!(errors[0].field, "caps.max_send_delay", "{errors:?}");
    }

    #[test]
    fn given_a_campaign_that_opts_in_to_opens_when_parsed_then_the_setting_is_kept() {
        let file = "id = \"o\"\nname = \"O\"\nopens_count_as_engagement = true\n[[steps]]\ndelay = \"1h\"\n";
        let c = Campaign::from_toml(file).unwrap();
        assert!(c.opens_count_as_engagement);
        assert_eq!(Campaign::from_toml(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn given_a_typo_in_a_file_when_parsed_then_the_error_says_so() {
        let err =
            Campaign::from_toml("id = \"x\"\nname = \"x\"\nenabeld = true\n[[steps]]\ndelay = \"1h\"\n").unwrap_err();
        assert!(err[0].message.contains("enabeld"), "{err:?}");
        let err = Campaign::from_toml("id = \"x\"\nname = \"x\"\n[[steps]]\ndelay = \"soon\"\n").unwrap_err();
        assert!(err[0].message.contains("soon"), "{err:?}");
    }
}
