//! Campaigns are data: marketers shape and switch them without a deploy.
//! The file format (TOML) is the serde form of these types.

use std::time::Duration as StdDuration;

use chrono::{Duration, NaiveTime};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::message::Channel;
use crate::voucher::{Offer, VoucherSettings};
use crate::webhook::WebhookTargetName;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub priority: i32,
    /// Percent of customers (0 to 50) held out: the engine decides for them
    /// exactly as for the others, and nothing is sent. What the campaign
    /// earns is measured against them.
    #[serde(default = "default_holdout_percent")]
    pub holdout_percent: u8,
    /// `shadow`: the campaign runs beside the live one on the same carts and
    /// only records what it would have sent.
    #[serde(default)]
    pub mode: CampaignMode,
    /// Entered carts an arm (treated, held out, a variant) needs before the
    /// report draws a verdict.
    #[serde(default = "default_min_sample_per_arm")]
    pub min_sample_per_arm: u32,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Experiment>,
    /// Whether a guest (a cart without a customer id) gets email only on
    /// explicit consent (`customer.consents.basis = "consent"`), not on an
    /// address typed at checkout. Unset: on where the law requires it, see
    /// [`Campaign::guest_consent_rule`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_explicit_consent_for_guests: Option<bool>,
    /// Where the shop's customers are, for the rules that depend on the law
    /// (`eu`, `uk`, `us`, `other`). Unset: each guest's time zone decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// How vouchers of the steps' offers are sized, capped and coded.
    #[serde(default)]
    pub vouchers: VoucherSettings,
    /// The opt-out instruction every SMS ends with, per destination country.
    #[serde(default, skip_serializing_if = "crate::sms::OptOutTexts::is_empty")]
    pub sms_opt_out: crate::sms::OptOutTexts,
}

/// Where a shop's customers are, as far as consent law goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Region {
    /// The EU and the EEA: GDPR and the ePrivacy directive.
    Eu,
    /// The UK: UK GDPR and PECR.
    Uk,
    /// The US: CAN-SPAM (opt-out).
    Us,
    Other,
}

impl Region {
    pub const ALL: [Region; 4] = [Region::Eu, Region::Uk, Region::Us, Region::Other];

    pub fn as_str(self) -> &'static str {
        crate::enum_names::name_of(&self)
    }
}

/// Parsing with an error that names the field (serde's own would only list
/// the variants): TOML files and the config table's JSON read it.
impl TryFrom<String> for Region {
    type Error = String;

    fn try_from(text: String) -> Result<Region, String> {
        Region::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| format!("region: {text:?} is not one of eu, uk, us, other"))
    }
}

/// Time zones (chrono-tz names, aliases included) of the EU and EEA
/// member states, their outermost regions, and the UK: where a guest's
/// address typed at checkout is no consent to marketing email (GDPR and
/// the ePrivacy directive's art. 13; UK GDPR and PECR reg. 22). Not in it:
/// countries outside the EU/EEA with their own laws (Switzerland, the
/// Balkans outside the EU, Ukraine, Moldova, Belarus, Russia, Turkey,
/// Andorra, Monaco, San Marino, the Vatican, Gibraltar, the Faroe Islands,
/// the Channel Islands and the Isle of Man); set `region` for a shop whose
/// customers are there.
pub const EXPLICIT_CONSENT_TIME_ZONES: &[&str] = &[
    // EU members.
    "Europe/Vienna",
    "Europe/Brussels",
    "Europe/Sofia",
    "Europe/Zagreb",
    "Asia/Nicosia",
    "Asia/Famagusta",
    "Europe/Nicosia",
    "Europe/Prague",
    "Europe/Copenhagen",
    "Europe/Tallinn",
    "Europe/Helsinki",
    "Europe/Mariehamn",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Busingen",
    "Europe/Athens",
    "Europe/Budapest",
    "Europe/Dublin",
    "Eire",
    "Europe/Rome",
    "Europe/Riga",
    "Europe/Vilnius",
    "Europe/Luxembourg",
    "Europe/Malta",
    "Europe/Amsterdam",
    "Europe/Warsaw",
    "Poland",
    "Europe/Lisbon",
    "Portugal",
    "Atlantic/Madeira",
    "Atlantic/Azores",
    "Europe/Bucharest",
    "Europe/Bratislava",
    "Europe/Ljubljana",
    "Europe/Madrid",
    "Africa/Ceuta",
    "Atlantic/Canary",
    "Europe/Stockholm",
    // The EU's outermost regions (French overseas departments, Saint-Martin).
    "America/Guadeloupe",
    "America/Martinique",
    "America/Cayenne",
    "America/Marigot",
    "Indian/Reunion",
    "Indian/Mayotte",
    // EEA members outside the EU.
    "Atlantic/Reykjavik",
    "Iceland",
    "Europe/Vaduz",
    "Europe/Oslo",
    // The UK.
    "Europe/London",
    "Europe/Belfast",
    "GB",
    "GB-Eire",
];

/// Whether and why a campaign requires explicit consent for guests' email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestConsentRule {
    /// `require_explicit_consent_for_guests` says so.
    Setting(bool),
    /// Unset, and `region` decides: on in the EU and the UK.
    Region(Region),
    /// Unset without a region: the guest's time zone decides.
    TimeZone(chrono_tz::Tz),
}

impl GuestConsentRule {
    pub fn requires_explicit_consent(self) -> bool {
        match self {
            GuestConsentRule::Setting(on) => on,
            GuestConsentRule::Region(region) => matches!(region, Region::Eu | Region::Uk),
            GuestConsentRule::TimeZone(zone) => EXPLICIT_CONSENT_TIME_ZONES.contains(&zone.name()),
        }
    }

    /// Why the rule applies, for the timeline.
    pub fn describe(self) -> String {
        match self {
            GuestConsentRule::Setting(_) => "require_explicit_consent_for_guests".into(),
            GuestConsentRule::Region(region) => format!("region {}", region.as_str()),
            GuestConsentRule::TimeZone(zone) => format!("time zone {}", zone.name()),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_holdout_percent() -> u8 {
    10
}

fn default_min_sample_per_arm() -> u32 {
    100
}

/// Whether a campaign's decisions are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignMode {
    #[default]
    Live,
    /// Never a cart's live campaign: it decides on every cart beside the live
    /// one and records what it would have sent, so a draft is evaluated on
    /// live traffic before it is switched on.
    Shadow,
}

/// Named variants of a campaign, each customer in one of them (a stable hash
/// of the experiment id and the customer key, by weight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub id: String,
    pub variants: Vec<Variant>,
    /// The variant the others are compared with; the first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
}

impl Experiment {
    /// The control variant's name.
    pub fn control_name(&self) -> Option<&str> {
        self.control.as_deref().or_else(|| self.variants.first().map(|v| v.name.as_str()))
    }

    pub fn weights(&self) -> Vec<u32> {
        self.variants.iter().map(|v| v.weight).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    /// Relative share of customers (weights 1 and 3: a quarter and three quarters).
    pub weight: u32,
    /// Overrides of the campaign's steps, by position: the first entry
    /// changes step 1, and so on (an empty entry changes nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepOverride>,
}

/// What a variant changes in one step; absent fields keep the campaign's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepOverride {
    #[serde(default, skip_serializing_if = "Option::is_none", with = "human_duration_option")]
    pub delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<ChannelOrder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Replaces the step's offer (experiments test offers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<Offer>,
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
    /// At least one return within the campaign's `vouchers.returned_window`
    /// (90 days unless set): the customers an offer's recovery tier is for.
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
    /// An email subject line replacing the template's: a template string
    /// rendered with the same values as the message (`{{ first_name }}`,
    /// `{{ item_count }}`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// A voucher shown in this step's message (see [`crate::voucher`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<Offer>,
    /// The webhook target (`webhook = "crm"`) the step's `webhook` channel
    /// posts to; required when a channel order names `webhook`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTargetName>,
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
    /// An SMS needing more segments than this (1 to 10; see `crate::sms`)
    /// is not sent: the step goes by the device order's next channel.
    pub sms_max_segments: u8,
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
            // A reminder with a short link fits one GSM-7 segment; a voucher
            // line in a language outside GSM-7 (UCS-2, 67 a part) takes three.
            sms_max_segments: 3,
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
            holdout_percent: default_holdout_percent(),
            mode: CampaignMode::Live,
            min_sample_per_arm: default_min_sample_per_arm(),
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
                    subject: None,
                    offer: None,
                    webhook: None,
                },
                Step {
                    delay: Duration::hours(24),
                    delay_from: DelayFrom::PreviousStep,
                    channels: ChannelOrder::default(),
                    template: "last_call".into(),
                    subject: None,
                    offer: None,
                    webhook: None,
                },
            ],
            caps: Caps::default(),
            quiet_hours: QuietHours::default(),
            opens_count_as_engagement: false,
            experiment: None,
            require_explicit_consent_for_guests: None,
            region: None,
            vouchers: VoucherSettings::default(),
            sms_opt_out: crate::sms::OptOutTexts::default(),
        }
    }

    /// The rule for a guest's email: the setting when set, else the
    /// campaign's `region`, else `guest_zone` (the guest's time zone).
    pub fn guest_consent_rule(&self, guest_zone: chrono_tz::Tz) -> GuestConsentRule {
        match (self.require_explicit_consent_for_guests, self.region) {
            (Some(on), _) => GuestConsentRule::Setting(on),
            (None, Some(region)) => GuestConsentRule::Region(region),
            (None, None) => GuestConsentRule::TimeZone(guest_zone),
        }
    }

    pub fn is_shadow(&self) -> bool {
        self.mode == CampaignMode::Shadow
    }

    /// The experiment's variant whose first step comes first (the first in
    /// order among equals), as index and name; `None` without an experiment.
    /// Every variant's carts enter the campaign at that moment.
    pub fn earliest_variant(&self) -> Option<(usize, String)> {
        let experiment = self.experiment.as_ref()?;
        let first_delay = |index: usize| self.with_variant(index).steps.first().map(|step| step.delay);
        let index = (0..experiment.variants.len()).min_by_key(|i| first_delay(*i))?;
        Some((index, experiment.variants.get(index)?.name.clone()))
    }

    /// The campaign as a customer in variant `index` of its experiment
    /// sees it: the variant's step overrides applied. Without an experiment
    /// (or for an index it does not have) the campaign as it is.
    pub fn with_variant(&self, index: usize) -> Campaign {
        let mut campaign = self.clone();
        let Some(variant) = self.experiment.as_ref().and_then(|e| e.variants.get(index)) else {
            return campaign;
        };
        for (step, change) in campaign.steps.iter_mut().zip(&variant.steps) {
            if let Some(delay) = change.delay {
                step.delay = delay;
            }
            if let Some(channels) = &change.channels {
                step.channels = channels.clone();
            }
            if let Some(template) = &change.template {
                step.template = template.clone();
            }
            if let Some(subject) = &change.subject {
                step.subject = Some(subject.clone());
            }
            if let Some(offer) = &change.offer {
                step.offer = Some(offer.clone());
            }
        }
        campaign
    }

    /// The steps (and experiment variants' steps) naming a template set
    /// that is not in `known` (the shipped names and the stored sets'):
    /// what `cartback campaign apply` refuses.
    pub fn unknown_templates(&self, known: &[&str]) -> Vec<CampaignError> {
        let mut errors = Vec::new();
        let variants = self.experiment.as_ref().map_or(0, |e| e.variants.len());
        let views = std::iter::once((String::new(), self.steps.clone()))
            .chain((0..variants).map(|i| (format!("experiment.variants[{i}]."), self.with_variant(i).steps)));
        for (prefix, steps) in views {
            for (i, step) in steps.iter().enumerate() {
                // A variant inheriting the campaign's unknown set: said once, for the campaign.
                let inherited = !prefix.is_empty()
                    && errors.iter().any(|e: &CampaignError| e.field == format!("steps[{i}].template"));
                if !known.contains(&step.template.as_str()) && !inherited {
                    errors.push(CampaignError {
                        field: format!("{prefix}steps[{i}].template"),
                        message: format!("names no template set {:?} (known: {})", step.template, known.join(", ")),
                    });
                }
            }
        }
        errors
    }

    /// The steps naming a webhook target that is not in `known` (the
    /// targets this runtime is configured with): what `cartback campaign
    /// apply` refuses, as it refuses an unknown template set.
    pub fn unknown_webhook_targets(&self, known: &[WebhookTargetName]) -> Vec<CampaignError> {
        let names = || known.iter().map(WebhookTargetName::as_str).collect::<Vec<_>>().join(", ");
        self.steps
            .iter()
            .enumerate()
            .filter_map(|(i, step)| Some((i, step.webhook.as_ref()?)))
            .filter(|(_, target)| !known.contains(target))
            .map(|(i, target)| CampaignError {
                field: format!("steps[{i}].webhook"),
                message: match known.is_empty() {
                    true => format!("names webhook target {:?}, but no target is configured", target.as_str()),
                    false => format!("names no webhook target {:?} (configured: {})", target.as_str(), names()),
                },
            })
            .collect()
    }

    /// Checks what serde cannot: returns every problem with its field path.
    pub fn validate(&self) -> Result<(), Vec<CampaignError>> {
        let mut errors = Vec::new();
        let mut err = |field: String, message: &str| errors.push(CampaignError { field, message: message.into() });
        if !valid_id(&self.id) {
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
        for problem in step_problems(&self.steps) {
            errors.push(problem);
        }
        let mut err = |field: String, message: &str| errors.push(CampaignError { field, message: message.into() });
        if self.holdout_percent > 50 {
            err("holdout_percent".into(), "must be between 0 and 50");
        }
        if self.min_sample_per_arm == 0 {
            err("min_sample_per_arm".into(), "must be at least 1");
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
        if !(1..=10).contains(&self.caps.sms_max_segments) {
            err("caps.sms_max_segments".into(), "must be between 1 and 10");
        }
        errors.extend(self.vouchers.problems());
        errors.extend(self.sms_opt_out.problems());
        if let Some(experiment) = &self.experiment {
            errors.extend(self.experiment_problems(experiment));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// What is wrong with the experiment, with field paths under `experiment`.
    fn experiment_problems(&self, experiment: &Experiment) -> Vec<CampaignError> {
        let mut errors = Vec::new();
        let mut err = |field: String, message: String| errors.push(CampaignError { field, message });
        if !valid_id(&experiment.id) {
            err("experiment.id".into(), "must be 1 to 64 letters, digits, '-' or '_'".into());
        }
        if experiment.variants.len() < 2 {
            err("experiment.variants".into(), "needs at least two variants to compare".into());
        }
        if !experiment.variants.is_empty() && experiment.variants.iter().all(|v| v.weight == 0) {
            err("experiment.variants".into(), "needs a weight above 0 in at least one variant".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, variant) in experiment.variants.iter().enumerate() {
            if !valid_id(&variant.name) {
                err(format!("experiment.variants[{i}].name"), "must be 1 to 64 letters, digits, '-' or '_'".into());
            } else if !names.insert(variant.name.as_str()) {
                err(format!("experiment.variants[{i}].name"), format!("{:?} names two variants", variant.name));
            }
            if variant.steps.len() > self.steps.len() {
                err(
                    format!("experiment.variants[{i}].steps[{}]", self.steps.len()),
                    format!("overrides a step the campaign does not have (it has {})", self.steps.len()),
                );
            }
            // The variant's steps obey the same rules as the campaign's; a
            // problem the campaign's own steps have is reported once, there.
            let own: Vec<String> = step_problems(&self.steps).into_iter().map(|e| e.field).collect();
            for problem in step_problems(&self.with_variant(i).steps) {
                if !own.contains(&problem.field) {
                    err(format!("experiment.variants[{i}].{}", problem.field), problem.message);
                }
            }
        }
        if let Some(control) = &experiment.control {
            if !experiment.variants.iter().any(|v| &v.name == control) {
                err("experiment.control".into(), format!("{control:?} names no variant"));
            }
        }
        errors
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

    /// [`Campaign::from_toml`], also refusing steps that name a template
    /// set not in `known`: every problem at once, as `campaign apply` shows.
    pub fn from_toml_with_templates(text: &str, known: &[&str]) -> Result<Campaign, Vec<CampaignError>> {
        let campaign: Campaign = match Campaign::from_toml(text) {
            Ok(campaign) => campaign,
            Err(errors) if errors.iter().any(|e| e.field == "(file)") => return Err(errors),
            // Invalid but readable: its templates are checked too.
            Err(mut errors) => {
                if let Ok(campaign) = toml::from_str::<Campaign>(text) {
                    errors.extend(campaign.unknown_templates(known));
                }
                return Err(errors);
            }
        };
        let unknown = campaign.unknown_templates(known);
        if unknown.is_empty() {
            Ok(campaign)
        } else {
            Err(unknown)
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("campaigns always serialise")
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What is wrong with a list of steps (a campaign's, or a variant's view of
/// them), with field paths `steps[i].…`.
fn step_problems(steps: &[Step]) -> Vec<CampaignError> {
    let mut errors = Vec::new();
    let mut err = |field: String, message: String| errors.push(CampaignError { field, message });
    let mut offers = Vec::new();
    let mut last_activity_delay = None;
    for (i, step) in steps.iter().enumerate() {
        if step.delay < Duration::minutes(1) || step.delay > Duration::days(30) {
            err(format!("steps[{i}].delay"), "must be between 1m and 30d".into());
        }
        // The first step always counts from the last activity.
        if i == 0 || step.delay_from == DelayFrom::LastActivity {
            if last_activity_delay.is_some_and(|previous| step.delay <= previous) {
                err(
                    format!("steps[{i}].delay"),
                    "counts from the last activity, so it must be longer than the earlier steps' delays".into(),
                );
            }
            last_activity_delay = Some(step.delay);
        }
        if step.channels.mobile.is_empty() || step.channels.desktop.is_empty() {
            err(format!("steps[{i}].channels"), "needs at least one channel for mobile and for desktop".into());
        }
        let names_webhook = step.channels.mobile.iter().chain(&step.channels.desktop).any(|&c| c == Channel::Webhook);
        match (names_webhook, &step.webhook) {
            (true, None) => err(
                format!("steps[{i}].webhook"),
                "is required when the step's channels name webhook (the target, e.g. webhook = \"crm\")".into(),
            ),
            (false, Some(_)) => err(
                format!("steps[{i}].webhook"),
                "names a target, but no channel order of the step names webhook".into(),
            ),
            _ => {}
        }
        // Only the name's form is checked here: a campaign is validated
        // where the stored sets cannot be seen (reading it back, parsing a
        // file). Whether the set exists is `unknown_templates`, asked where a
        // campaign is applied; a step whose set is gone at send time gets the
        // shipped default (recorded as `template_fallback`).
        if let Err(problem) = crate::template::TemplateName::parse(&step.template) {
            err(format!("steps[{i}].template"), problem);
        }
        if let Some(Err(problem)) = step.subject.as_deref().map(crate::render::check_subject) {
            err(format!("steps[{i}].subject"), problem);
        }
        if let Some(offer) = &step.offer {
            offers.extend(offer.problems(&format!("steps[{i}].offer")));
        }
    }
    errors.extend(offers);
    errors
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CampaignError {
    pub field: String,
    pub message: String,
}

/// Durations as human strings: "30m", "24h", "7days".
pub(crate) mod human_duration {
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

/// Optional durations as human strings.
mod human_duration_option {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => human_duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        human_duration::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voucher::Tier;

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
        c.steps[0].template = "No such".into();
        c.quiet_hours.default_timezone = "Mars/Base".into();
        let fields: Vec<String> = c.validate().unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["id", "steps[0].template", "steps[1].delay", "quiet_hours.default_timezone"]);
    }

    /// GIVEN a campaign naming a stored set "summer" and one naming "nope"
    /// WHEN validated alone THEN both names are well formed (the stores are not seen here)
    /// AND WHEN checked against the known sets THEN only the unknown one is named.
    #[test]
    fn given_steps_naming_template_sets_when_checked_against_the_known_sets_then_unknown_ones_are_named() {
        let mut c = Campaign::default_campaign();
        c.steps[0].template = "summer".into();
        c.steps[1].template = "nope".into();
        assert_eq!(c.validate(), Ok(()));
        let problems = c.unknown_templates(&["reminder", "last_call", "summer"]);
        let fields: Vec<&str> = problems.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["steps[1].template"]);
        assert!(problems[0].message.contains("\"nope\""), "{problems:?}");
        assert!(Campaign::default_campaign().unknown_templates(&crate::template::SHIPPED_NAMES).is_empty());
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

    const EXPERIMENT: &str = r#"
id = "x"
name = "x"
holdout_percent = 20
min_sample_per_arm = 250

[[steps]]
delay = "30m"

[[steps]]
delay = "24h"

[experiment]
id = "timing"
control = "now"

[[experiment.variants]]
name = "now"
weight = 1

[[experiment.variants]]
name = "tomorrow"
weight = 3

[[experiment.variants.steps]]
delay = "1day"
template = "last_call"
subject = "{{ first_name }}, your cart"

[experiment.variants.steps.channels]
mobile = ["email"]
desktop = ["email"]
"#;

    #[test]
    fn given_a_file_with_measurement_settings_when_parsed_then_they_are_kept_and_round_trip() {
        let c = Campaign::from_toml(EXPERIMENT).unwrap();
        assert_eq!((c.holdout_percent, c.mode, c.min_sample_per_arm), (20, CampaignMode::Live, 250));
        let experiment = c.experiment.as_ref().unwrap();
        assert_eq!(experiment.weights(), [1, 3]);
        assert_eq!(experiment.control_name(), Some("now"));
        let tomorrow = c.with_variant(1);
        assert_eq!(tomorrow.steps[0].delay, Duration::days(1));
        assert_eq!(tomorrow.steps[0].template, "last_call");
        assert_eq!(tomorrow.steps[0].subject.as_deref(), Some("{{ first_name }}, your cart"));
        assert_eq!(tomorrow.steps[0].channels.mobile, [Channel::Email]);
        assert_eq!(tomorrow.steps[1], c.steps[1], "steps without an override stay as they are");
        assert_eq!(c.with_variant(0).steps, c.steps);
        assert_eq!(Campaign::from_toml(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn given_a_minimal_file_when_parsed_then_the_campaign_is_live_with_a_10_percent_holdout() {
        let file = "id = \"x\"\nname = \"x\"\nmode = \"shadow\"\n[[steps]]\ndelay = \"1h\"\n";
        let c = Campaign::from_toml(file).unwrap();
        assert_eq!((c.holdout_percent, c.min_sample_per_arm, &c.experiment), (10, 100, &None));
        assert!(c.is_shadow());
        assert_eq!(Campaign::default_campaign().mode, CampaignMode::Live);
        assert_eq!(Campaign::default_campaign().holdout_percent, 10);
    }

    #[test]
    fn given_bad_measurement_settings_when_validated_then_every_problem_is_named_with_its_field() {
        let mut c = Campaign::from_toml(EXPERIMENT).unwrap();
        c.holdout_percent = 51;
        c.min_sample_per_arm = 0;
        let experiment = c.experiment.as_mut().unwrap();
        experiment.control = Some("nobody".into());
        experiment.variants[1].name = "now".into();
        experiment.variants[1].steps[0].subject = Some("{% if %}".into());
        experiment.variants[1].steps.push(StepOverride::default());
        experiment.variants[1].steps.push(StepOverride { delay: Some(Duration::hours(1)), ..Default::default() });
        let fields: Vec<String> = c.validate().unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "holdout_percent",
                "min_sample_per_arm",
                "experiment.variants[1].name",
                "experiment.variants[1].steps[2]",
                "experiment.variants[1].steps[0].subject",
                "experiment.control",
            ]
        );
    }

    #[test]
    fn given_a_variant_whose_delay_breaks_the_delay_rules_when_validated_then_it_is_refused() {
        let mut c = Campaign::from_toml(EXPERIMENT).unwrap();
        let experiment = c.experiment.as_mut().unwrap();
        experiment.variants[1].steps[0].delay = Some(Duration::seconds(10));
        let errors = c.validate().unwrap_err();
        assert_eq!(errors[0].field, "experiment.variants[1].steps[0].delay", "{errors:?}");
        // A first step later than the second, which counts from the last activity.
        let mut c = Campaign::from_toml(EXPERIMENT).unwrap();
        c.steps[1].delay_from = DelayFrom::LastActivity;
        c.steps[1].delay = Duration::hours(2);
        assert_eq!(
            c.validate(),
            Err(vec![CampaignError {
                field: "experiment.variants[1].steps[1].delay".into(),
                message: "counts from the last activity, so it must be longer than the earlier steps' delays".into(),
            }])
        );
        let mut c = Campaign::from_toml(EXPERIMENT).unwrap();
        for v in &mut c.experiment.as_mut().unwrap().variants {
            v.weight = 0;
        }
        assert_eq!(c.validate().unwrap_err()[0].field, "experiment.variants");
    }

    #[test]
    fn given_a_typo_in_a_file_when_parsed_then_the_error_says_so() {
        let err =
            Campaign::from_toml("id = \"x\"\nname = \"x\"\nenabeld = true\n[[steps]]\ndelay = \"1h\"\n").unwrap_err();
        assert!(err[0].message.contains("enabeld"), "{err:?}");
        let err = Campaign::from_toml("id = \"x\"\nname = \"x\"\n[[steps]]\ndelay = \"soon\"\n").unwrap_err();
        assert!(err[0].message.contains("soon"), "{err:?}");
    }

    #[test]
    fn given_a_file_with_consent_settings_when_parsed_then_they_are_kept_and_round_trip() {
        let file = "id = \"eu\"\nname = \"EU\"\nregion = \"eu\"\nrequire_explicit_consent_for_guests = false\n\
                    [[steps]]\ndelay = \"1h\"\n";
        let c = Campaign::from_toml(file).unwrap();
        assert_eq!((c.region, c.require_explicit_consent_for_guests), (Some(Region::Eu), Some(false)));
        assert_eq!(Campaign::from_toml(&c.to_toml()).unwrap(), c);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Campaign>(&json).unwrap(), c, "the config table's JSON form");
        let default = Campaign::default_campaign();
        assert_eq!((default.region, default.require_explicit_consent_for_guests), (None, None));
        assert!(!default.to_toml().contains("region"), "unset settings are not written");
    }

    #[test]
    fn given_an_unknown_region_when_parsed_then_the_error_names_the_region_field() {
        let file = "id = \"x\"\nname = \"x\"\nregion = \"mars\"\n[[steps]]\ndelay = \"1h\"\n";
        let errors = Campaign::from_toml(file).unwrap_err();
        assert!(errors[0].message.starts_with("region: \"mars\" is not one of eu, uk, us, other"), "{errors:?}");
        let json = r#"{"id": "x", "name": "x", "region": "EU", "steps": [{"delay": "1h"}]}"#;
        let error = serde_json::from_str::<Campaign>(json).unwrap_err().to_string();
        assert!(error.starts_with("region: \"EU\""), "{error}");
    }

    #[test]
    fn given_the_consent_settings_when_a_guests_rule_is_asked_then_setting_beats_region_beats_time_zone() {
        let zone = |name: &str| name.parse::<chrono_tz::Tz>().unwrap();
        let mut c = Campaign::default_campaign();
        for (name, required) in [
            ("Europe/Paris", true),
            ("Europe/London", true),
            ("Europe/Oslo", true),
            ("Atlantic/Canary", true),
            ("Indian/Reunion", true),
            ("America/New_York", false),
            ("Europe/Zurich", false),
            ("Europe/Moscow", false),
            ("Europe/Istanbul", false),
            ("Europe/Kyiv", false),
            ("Europe/Kiev", false),
            ("Europe/Minsk", false),
            ("UTC", false),
        ] {
            let rule = c.guest_consent_rule(zone(name));
            assert_eq!(rule, GuestConsentRule::TimeZone(zone(name)));
            assert_eq!(rule.requires_explicit_consent(), required, "{name}");
        }
        c.region = Some(Region::Us);
        assert!(!c.guest_consent_rule(zone("Europe/Paris")).requires_explicit_consent());
        c.region = Some(Region::Uk);
        assert!(c.guest_consent_rule(zone("America/New_York")).requires_explicit_consent());
        c.require_explicit_consent_for_guests = Some(false);
        assert_eq!(c.guest_consent_rule(zone("Europe/Paris")), GuestConsentRule::Setting(false));
    }

    #[test]
    fn given_the_explicit_consent_zones_when_parsed_then_each_is_a_known_zone_name() {
        for name in EXPLICIT_CONSENT_TIME_ZONES {
            let zone = name.parse::<chrono_tz::Tz>().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(zone.name(), *name, "the name the engine compares is the one listed");
        }
    }
    /// The shipped voucher campaign, for the tests below.
    fn shipped(name: &str) -> String {
        let path = format!("{}/../../infra/campaigns/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// GIVEN every campaign file shipped in infra/campaigns
    /// WHEN parsed and validated
    /// THEN each is a valid campaign whose id is its file name, and round-trips through TOML.
    #[test]
    fn given_every_shipped_campaign_file_when_parsed_then_it_validates_and_round_trips() {
        let dir = format!("{}/../../infra/campaigns", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".toml"))
            .collect();
        names.sort();
        assert!(names.contains(&"vouchers.toml".to_owned()), "{names:?}");
        for name in &names {
            let c = Campaign::from_toml(&shipped(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(format!("{}.toml", c.id), *name);
            assert_eq!(Campaign::from_toml(&c.to_toml()).unwrap(), c, "{name}");
        }
    }

    /// GIVEN infra/campaigns/vouchers.toml
    /// WHEN parsed
    /// THEN it is the default campaign's two steps, each offering 10% to
    /// returners and 5% to others, with the default voucher settings.
    #[test]
    fn given_the_shipped_voucher_campaign_when_parsed_then_it_is_the_default_steps_with_the_seeds_offer() {
        let c = Campaign::from_toml(&shipped("vouchers.toml")).unwrap();
        let default = Campaign::default_campaign();
        assert_eq!(c.steps.len(), 2);
        for (step, default_step) in c.steps.iter().zip(&default.steps) {
            assert_eq!(step.offer, Some(Offer { recovery: Tier::percent(10), standard: Tier::percent(5) }));
            assert_eq!(Step { offer: None, ..step.clone() }, *default_step);
        }
        assert_eq!(c.vouchers, VoucherSettings::default());
        assert_eq!((&c.caps, &c.quiet_hours, c.holdout_percent), (&default.caps, &default.quiet_hours, 10));
    }

    const OFFER: &str = r#"
id = "x"
name = "x"

[[steps]]
delay = "30m"

[steps.offer.recovery]
percent_off = 10
max_discount = { EUR = "15.00" }

[steps.offer.standard]
amount_off = { EUR = "5.00", USD = "5.50" }
min_cart_value = { EUR = "30" }

[vouchers]
returned_window = "120days"
expires_after = "3days"
recent_promotion_window = "14days"
cap_window = "60days"
code_prefix = "SHOP"
"#;

    #[test]
    fn given_a_file_with_an_offer_and_voucher_settings_when_parsed_then_they_are_kept_and_round_trip() {
        let c = Campaign::from_toml(OFFER).unwrap();
        let offer = c.steps[0].offer.as_ref().unwrap();
        assert_eq!(offer.recovery.percent_off, Some(Decimal::from(10)));
        assert_eq!(offer.recovery.max_discount["EUR"], Decimal::new(1500, 2));
        assert_eq!(offer.standard.amount_off["USD"], Decimal::new(550, 2));
        assert_eq!(offer.standard.min_cart_value["EUR"], Decimal::from(30));
        assert_eq!(c.vouchers.returned_window, Duration::days(120));
        assert_eq!(c.vouchers.code_prefix.as_deref(), Some("SHOP"));
        assert_eq!(Campaign::from_toml(&c.to_toml()).unwrap(), c);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Campaign>(&json).unwrap(), c, "the config table's JSON form");
        let minimal =
            Campaign::from_toml("id = \"x\"\nname = \"x\"\n[[steps]]\ndelay = \"1h\"\n[steps.offer]\n").unwrap();
        assert_eq!(minimal.steps[0].offer, Some(Offer::default()), "an empty offer is the seed's 10% / 5%");
        assert_eq!(minimal.vouchers, VoucherSettings::default());
    }

    /// GIVEN an offer with every kind of mistake, in the campaign's steps and in a variant's
    /// WHEN validated
    /// THEN each bad field is named with its path and why.
    #[test]
    fn given_bad_offers_when_validated_then_every_bad_field_is_named_with_its_path() {
        let d = |text: &str| text.parse::<Decimal>().unwrap();
        let money = |pairs: &[(&str, &str)]| pairs.iter().map(|(c, a)| (c.to_string(), d(a))).collect();
        let mut c = Campaign::from_toml(OFFER).unwrap();
        let offer = c.steps[0].offer.as_mut().unwrap();
        offer.recovery =
            Tier { percent_off: Some(d("120")), max_discount: money(&[("eur", "5"), ("USD", "0")]), ..Tier::default() };
        offer.standard = Tier {
            percent_off: Some(d("5")),
            amount_off: money(&[("EUR", "-5"), ("USD", "4.999")]),
            min_cart_value: money(&[("GBP", "-1")]),
            max_discount: money(&[("EUR", "3")]),
            ..Tier::default()
        };
        let errors = c.validate().unwrap_err();
        let named: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
        assert_eq!(
            named,
            [
                ("steps[0].offer.recovery.percent_off", "must be above 0 and at most 100"),
                ("steps[0].offer.recovery.max_discount.USD", "must be positive"),
                (
                    "steps[0].offer.recovery.max_discount.eur",
                    "is keyed by a currency code of three capital letters (ISO 4217, e.g. EUR)"
                ),
                ("steps[0].offer.standard", "gives one discount, not percent_off and amount_off"),
                ("steps[0].offer.standard.amount_off.EUR", "must be positive"),
                ("steps[0].offer.standard.amount_off.USD", "allows at most 2 decimals"),
                ("steps[0].offer.standard.min_cart_value.GBP", "must not be negative"),
            ]
        );
        // A tier with no discount, and a limit that only percentages take.
        let mut c = Campaign::from_toml(OFFER).unwrap();
        let offer = c.steps[0].offer.as_mut().unwrap();
        offer.recovery = Tier::default();
        offer.standard.max_discount = money(&[("EUR", "3")]);
        let fields: Vec<String> = c.validate().unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["steps[0].offer.recovery", "steps[0].offer.standard.max_discount"]);
        let errors = c.validate().unwrap_err();
        assert_eq!(errors[0].message, "needs one of percent_off, amount_off or free_shipping");
    }

    #[test]
    fn given_a_variant_with_a_bad_offer_when_validated_then_the_variants_path_is_named() {
        let mut c = Campaign::from_toml(EXPERIMENT).unwrap();
        c.steps[0].offer = Some(Offer::default());
        let bad = Offer { standard: Tier { free_shipping: true, ..Tier::percent(0) }, ..Offer::default() };
        c.experiment.as_mut().unwrap().variants[1].steps[0].offer = Some(bad);
        let errors = c.validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "experiment.variants[1].steps[0].offer.standard",
                "experiment.variants[1].steps[0].offer.standard.percent_off"
            ]
        );
    }

    #[test]
    fn given_voucher_settings_out_of_bounds_when_validated_then_each_is_named_with_why() {
        let mut c = Campaign::default_campaign();
        c.vouchers = VoucherSettings {
            returned_window: Duration::days(500),
            expires_after: Duration::minutes(10),
            recent_promotion_window: Duration::days(-1),
            cap_window: Duration::days(400),
            code_prefix: Some("CB-2026".into()),
        };
        let errors = c.validate().unwrap_err();
        let named: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
        assert_eq!(
            named,
            [
                (
                    "vouchers.returned_window",
                    "must be between 1d and 400d (purchase and return history is kept 400 days)"
                ),
                (
                    "vouchers.recent_promotion_window",
                    "must be between 0 (no such rule) and 400d (purchase and return history is kept 400 days)"
                ),
                ("vouchers.cap_window", "must be between 0 (no cap) and 365d"),
                (
                    "vouchers.expires_after",
                    "must be between 1h (time to reach the checkout) and 90d (a code that lives longer ends up on \
                     coupon sites)"
                ),
                ("vouchers.code_prefix", "must be up to 8 letters or digits (\"\" for none)"),
            ]
        );
        c.vouchers = VoucherSettings { code_prefix: Some("CB 1".into()), ..VoucherSettings::default() };
        assert_eq!(c.validate().unwrap_err()[0].field, "vouchers.code_prefix");
        let no_prefix = Some(String::new());
        c.vouchers =
            VoucherSettings { code_prefix: no_prefix, cap_window: Duration::zero(), ..VoucherSettings::default() };
        assert_eq!(c.validate(), Ok(()), "no prefix and no cap are allowed");
    }

    const WEBHOOK_CAMPAIGN: &str = r#"
id = "crm"
name = "Tell the CRM"

[[steps]]
delay = "1h"
webhook = "crm"
[steps.channels]
mobile = ["push", "webhook"]
desktop = ["webhook"]
"#;

    #[test]
    fn given_a_step_by_webhook_with_its_target_when_parsed_then_the_target_is_kept_and_applies_where_configured() {
        // GIVEN a step whose channels name webhook, with `webhook = "crm"`
        let c = Campaign::from_toml(WEBHOOK_CAMPAIGN).unwrap();
        // THEN it parses, round-trips, and only a runtime without `crm` refuses it
        assert_eq!(c.steps[0].webhook.as_ref().map(WebhookTargetName::as_str), Some("crm"));
        assert_eq!(c.steps[0].channels.desktop, [Channel::Webhook]);
        assert_eq!(Campaign::from_toml(&c.to_toml()).unwrap(), c);
        let crm = WebhookTargetName::parse("crm").unwrap();
        assert!(c.unknown_webhook_targets(&[crm]).is_empty());
        let other = WebhookTargetName::parse("chat_bot").unwrap();
        let refused = c.unknown_webhook_targets(&[other]);
        assert_eq!(refused[0].to_string(), "steps[0].webhook: names no webhook target \"crm\" (configured: chat_bot)");
        let none = c.unknown_webhook_targets(&[]);
        assert_eq!(none[0].message, "names webhook target \"crm\", but no target is configured");
    }

    #[test]
    fn given_webhook_steps_missing_or_misnaming_their_target_when_parsed_then_each_is_refused_with_the_field() {
        let without = WEBHOOK_CAMPAIGN.replace("webhook = \"crm\"\n", "");
        let errors = Campaign::from_toml(&without).unwrap_err();
        assert_eq!(errors[0].field, "steps[0].webhook");
        assert!(errors[0].message.starts_with("is required when the step's channels name webhook"), "{errors:?}");
        let unused =
            WEBHOOK_CAMPAIGN.replace("[\"push\", \"webhook\"]", "[\"push\"]").replace("[\"webhook\"]", "[\"email\"]");
        let errors = Campaign::from_toml(&unused).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "steps[0].webhook: names a target, but no channel order of the step names webhook"
        );
        let bad_name = WEBHOOK_CAMPAIGN.replace("webhook = \"crm\"", "webhook = \"My CRM\"");
        let errors = Campaign::from_toml(&bad_name).unwrap_err();
        assert!(errors[0].message.contains("\"My CRM\" is not a webhook target name"), "{errors:?}");
    }
}
