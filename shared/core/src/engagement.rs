//! Opens and clicks, told apart from machines'. Mail is read by more robots
//! than people: Apple Mail Privacy Protection fetches every image of every
//! message (so an open proves nothing), and the link scanners of mail
//! gateways (Microsoft Defender Safe Links, Proofpoint, Mimecast, Barracuda)
//! follow every link within seconds of delivery. Each open and click is
//! recorded with a label and the reason for it; only a human click (and an
//! open, where a campaign opts in) ends a campaign.
//!
//! The rules are deliberately narrow: a click is a scanner's only on
//! evidence (a user agent no browser sends, or a time no reader can make),
//! so a real customer's click is not mistaken for a robot's.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::enum_names;

/// A click or open this soon after the send is a machine's: mail gateways
/// scan a message's links on delivery, seconds after the provider accepted
/// it; no person opens a message and picks a link that fast.
pub const MACHINE_WINDOW: Duration = Duration::seconds(10);

/// User-agent fragments (matched case-insensitively anywhere in the header)
/// that only link scanners, link-preview robots and HTTP libraries send;
/// no browser a customer reads mail with contains any of them. Kept short on
/// purpose: an unknown robot is merely counted as a person, a person taken
/// for a robot would get a reminder after clicking.
pub const SCANNER_USER_AGENTS: &[&str] = &[
    // Mail security gateways and their URL rewriters.
    "bingpreview", // Microsoft Defender for Office 365 Safe Links, Outlook link previews
    "barracuda",
    "proofpoint",
    "mimecast",
    "google-safety",
    "googlebot",
    // Link previews of chat apps (a customer pasting the link).
    "slackbot",
    "facebookexternalhit",
    "whatsapp/",
    "telegrambot",
    "discordbot",
    "skypeuripreview",
    // Headless browsers and HTTP libraries: nobody reads mail with these.
    "headlesschrome",
    "phantomjs",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "java/",
    "libwww-perl",
    "okhttp",
    "axios/",
    "node-fetch",
];

/// Apple Mail Privacy Protection's proxy fetches images with exactly this
/// user agent; every real browser says more.
pub const BARE_MOZILLA: &str = "Mozilla/5.0";

/// What the recipient's side did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Open,
    Click,
}

/// What an open or click is taken for. The serde name is the code of its
/// timeline line and its key in a message's [`Engagement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngagementLabel {
    /// A click that looks like a person's: it ends the campaign.
    #[serde(rename = "click")]
    HumanClick,
    /// A click from a link scanner's user agent, without one, or within
    /// [`MACHINE_WINDOW`] of the send: recorded, never decisive.
    ScannerClick,
    /// An open (the tracking image was fetched): decisive only in a
    /// campaign with `opens_count_as_engagement = true`.
    Open,
    /// An open by a machine (a privacy proxy's prefetch, a scanner): never
    /// decisive.
    MachineOpen,
}

impl EngagementLabel {
    pub const ALL: [EngagementLabel; 4] = [
        EngagementLabel::HumanClick,
        EngagementLabel::ScannerClick,
        EngagementLabel::Open,
        EngagementLabel::MachineOpen,
    ];

    /// `click`, `scanner_click`, `open`, `machine_open`.
    pub fn as_str(self) -> &'static str {
        enum_names::name_of(&self)
    }

    /// How reports name it, in the plural.
    pub fn plural(self) -> &'static str {
        match self {
            EngagementLabel::HumanClick => "human clicks",
            EngagementLabel::ScannerClick => "suspected scanner clicks",
            EngagementLabel::Open => "opens",
            EngagementLabel::MachineOpen => "machine opens",
        }
    }

    /// Whether it ends a campaign: a human click always, an open only where
    /// the campaign counts opens, a machine's never.
    pub fn is_decisive(self, opens_count: bool) -> bool {
        match self {
            EngagementLabel::HumanClick => true,
            EngagementLabel::Open => opens_count,
            EngagementLabel::ScannerClick | EngagementLabel::MachineOpen => false,
        }
    }
}

impl std::fmt::Display for EngagementLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an open or click got its label: the reason code on its timeline line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngagementReason {
    /// Nothing marks it as a machine's.
    NoMachineSign,
    /// The user agent names a scanner, a preview robot or an HTTP library.
    ScannerUserAgent,
    /// No user agent at all: every browser sends one.
    NoUserAgent,
    /// Exactly `Mozilla/5.0`: Apple Mail Privacy Protection's proxy.
    PrivacyProxy,
    /// Within [`MACHINE_WINDOW`] of the send.
    TooSoonAfterSend,
    /// Reported by the shop's app or SDK through the signed
    /// `POST /v1/engagement`: the shop vouches for it, so no machine rule
    /// applies (an app's HTTP client is no scanner, and a tap on a push can
    /// come within seconds of it).
    ReportedByApp,
}

impl EngagementReason {
    pub fn as_str(self) -> &'static str {
        enum_names::name_of(&self)
    }
}

/// A label and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    pub label: EngagementLabel,
    pub reason: EngagementReason,
    /// The [`SCANNER_USER_AGENTS`] entry that matched, if one did (what the
    /// timeline shows instead of the raw header).
    pub matched: Option<&'static str>,
}

/// A signed report of the shop's app: an open is an open, a click a
/// person's click (see [`EngagementReason::ReportedByApp`]).
pub fn reported_by_app(interaction: Interaction) -> Classified {
    let label = match interaction {
        Interaction::Open => EngagementLabel::Open,
        Interaction::Click => EngagementLabel::HumanClick,
    };
    Classified { label, reason: EngagementReason::ReportedByApp, matched: None }
}

/// Labels one open or click. `sent_at` is when the message left (the
/// provider accepted it); `at` when the open or click happened.
pub fn classify(
    interaction: Interaction,
    user_agent: Option<&str>,
    at: DateTime<Utc>,
    sent_at: DateTime<Utc>,
) -> Classified {
    let (human, machine) = match interaction {
        Interaction::Click => (EngagementLabel::HumanClick, EngagementLabel::ScannerClick),
        Interaction::Open => (EngagementLabel::Open, EngagementLabel::MachineOpen),
    };
    let user_agent = user_agent.map(str::trim).filter(|ua| !ua.is_empty());
    let machine_because = |reason, matched| Classified { label: machine, reason, matched };
    let Some(user_agent) = user_agent else {
        return machine_because(EngagementReason::NoUserAgent, None);
    };
    let lower = user_agent.to_ascii_lowercase();
    if let Some(token) = SCANNER_USER_AGENTS.iter().find(|token| lower.contains(*token)) {
        return machine_because(EngagementReason::ScannerUserAgent, Some(token));
    }
    if user_agent == BARE_MOZILLA {
        return machine_because(EngagementReason::PrivacyProxy, None);
    }
    if at - sent_at < MACHINE_WINDOW {
        return machine_because(EngagementReason::TooSoonAfterSend, None);
    }
    Classified { label: human, reason: EngagementReason::NoMachineSign, matched: None }
}

/// How often one label was seen on a message, and when first and last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub count: u64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

impl Tally {
    pub fn once(at: DateTime<Utc>) -> Tally {
        Tally { count: 1, first_at: at, last_at: at }
    }

    /// One more, at `at`: the count grows, the first and last times widen.
    pub fn add(&mut self, at: DateTime<Utc>) {
        self.count = self.count.saturating_add(1);
        self.first_at = self.first_at.min(at);
        self.last_at = self.last_at.max(at);
    }
}

/// A message's opens and clicks, one [`Tally`] per label: what repeated
/// clicks write stays bounded (a counter and two times per label).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Engagement(BTreeMap<EngagementLabel, Tally>);

impl Engagement {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn tally(&self, label: EngagementLabel) -> Option<&Tally> {
        self.0.get(&label)
    }

    /// Counts one more `label` at `at` and returns its tally.
    pub fn add(&mut self, label: EngagementLabel, at: DateTime<Utc>) -> Tally {
        *self.0.entry(label).and_modify(|t| t.add(at)).or_insert_with(|| Tally::once(at))
    }

    /// Sets a label's tally as stored (adapters reading their own form).
    pub fn set(&mut self, label: EngagementLabel, tally: Tally) {
        self.0.insert(label, tally);
    }

    pub fn iter(&self) -> impl Iterator<Item = (EngagementLabel, &Tally)> {
        self.0.iter().map(|(label, tally)| (*label, tally))
    }

    /// The engagement as it stood at `at`: labels first seen later left
    /// out, the others' last times capped at `at`. The counts stay as
    /// stored (the times between first and last are not kept), so they are
    /// at most what `at` saw; what decides, the first time, is exact.
    pub fn as_of(&self, at: DateTime<Utc>) -> Engagement {
        let seen = self.iter().filter(|(_, t)| t.first_at <= at);
        Engagement(seen.map(|(label, t)| (label, Tally { last_at: t.last_at.min(at), ..*t })).collect())
    }

    /// Whether anything in it happened after `at`.
    pub fn changed_after(&self, at: DateTime<Utc>) -> bool {
        self.iter().any(|(_, t)| t.last_at > at)
    }

    /// The earliest engagement that ends a campaign, given whether it counts
    /// opens.
    pub fn decisive(&self, opens_count: bool) -> Option<(EngagementLabel, DateTime<Utc>)> {
        self.iter()
            .filter(|(label, _)| label.is_decisive(opens_count))
            .map(|(l, t)| (l, t.first_at))
            .min_by_key(|(_, at)| *at)
    }

    /// One line per label, e.g. `2 human clicks (first 2026-11-23T10:40:00Z)`.
    pub fn summary(&self) -> Vec<String> {
        self.iter()
            .map(|(label, t)| {
                format!(
                    "{} {} (first {}, last {})",
                    t.count,
                    label.plural(),
                    t.first_at.to_rfc3339(),
                    t.last_at.to_rfc3339()
                )
            })
            .collect()
    }
}

/// Stored records read either form: the tallies, or the single
/// `engaged_at` time records written before labels existed. That time
/// stopped the campaign then (any open or click did), so it is read as a
/// human click: an in-flight campaign keeps the decision it had.
impl<'de> Deserialize<'de> for Engagement {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Tallies(BTreeMap<EngagementLabel, Tally>),
            EngagedAt(DateTime<Utc>),
            Nothing(()),
        }
        Ok(match Stored::deserialize(deserializer)? {
            Stored::Tallies(tallies) => Engagement(tallies),
            Stored::EngagedAt(at) => Engagement(BTreeMap::from([(EngagementLabel::HumanClick, Tally::once(at))])),
            Stored::Nothing(()) => Engagement::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
                          (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000) + Duration::seconds(seconds)
    }

    fn label(interaction: Interaction, user_agent: Option<&str>, after_send: i64) -> (&'static str, &'static str) {
        let c = classify(interaction, user_agent, at(after_send), at(0));
        (c.label.as_str(), c.reason.as_str())
    }

    #[test]
    fn given_browser_clicks_and_opens_a_minute_after_the_send_when_classified_then_they_are_a_persons() {
        assert_eq!(label(Interaction::Click, Some(SAFARI), 60), ("click", "no_machine_sign"));
        assert_eq!(label(Interaction::Open, Some(SAFARI), 60), ("open", "no_machine_sign"));
        // Exactly at the window's end counts as a person.
        assert_eq!(label(Interaction::Click, Some(SAFARI), 10), ("click", "no_machine_sign"));
    }

    #[test]
    fn given_a_browser_click_within_ten_seconds_of_the_send_when_classified_then_it_is_a_scanners() {
        assert_eq!(label(Interaction::Click, Some(SAFARI), 9), ("scanner_click", "too_soon_after_send"));
        assert_eq!(label(Interaction::Open, Some(SAFARI), 0), ("machine_open", "too_soon_after_send"));
        // A click stamped before the send (clock skew between services) too.
        assert_eq!(label(Interaction::Click, Some(SAFARI), -3), ("scanner_click", "too_soon_after_send"));
    }

    #[test]
    fn given_scanner_user_agents_when_classified_then_they_are_scanners_whatever_the_time() {
        for ua in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) BingPreview/1.0b",
            "Barracuda Sentinel (EE)",
            "curl/8.5.0",
            "python-requests/2.32.3",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36",
        ] {
            let c = classify(Interaction::Click, Some(ua), at(3600), at(0));
            assert_eq!(
                (c.label, c.reason),
                (EngagementLabel::ScannerClick, EngagementReason::ScannerUserAgent),
                "{ua}"
            );
            assert!(c.matched.is_some_and(|m| ua.to_ascii_lowercase().contains(m)), "{ua}");
        }
    }

    #[test]
    fn given_no_user_agent_or_apples_privacy_proxy_when_classified_then_they_are_machines() {
        assert_eq!(label(Interaction::Click, None, 3600), ("scanner_click", "no_user_agent"));
        assert_eq!(label(Interaction::Click, Some("  "), 3600), ("scanner_click", "no_user_agent"));
        assert_eq!(label(Interaction::Open, Some("Mozilla/5.0"), 3600), ("machine_open", "privacy_proxy"));
    }

    #[test]
    fn given_every_label_when_asked_if_decisive_then_only_human_clicks_and_opted_in_opens_are() {
        let decisive = |opens| {
            EngagementLabel::ALL
                .into_iter()
                .filter(|l| l.is_decisive(opens))
                .map(EngagementLabel::as_str)
                .collect::<Vec<_>>()
        };
        assert_eq!(decisive(false), ["click"]);
        assert_eq!(decisive(true), ["click", "open"]);
    }

    #[test]
    fn given_many_clicks_out_of_order_when_tallied_then_the_count_grows_and_first_and_last_widen() {
        let mut e = Engagement::default();
        assert_eq!(e.add(EngagementLabel::HumanClick, at(50)), Tally::once(at(50)));
        e.add(EngagementLabel::HumanClick, at(20));
        let t = e.add(EngagementLabel::HumanClick, at(90));
        assert_eq!(t, Tally { count: 3, first_at: at(20), last_at: at(90) });
        e.add(EngagementLabel::MachineOpen, at(1));
        assert_eq!(e.decisive(true), Some((EngagementLabel::HumanClick, at(20))));
        e.add(EngagementLabel::Open, at(5));
        assert_eq!(e.decisive(false), Some((EngagementLabel::HumanClick, at(20))));
        assert_eq!(e.decisive(true), Some((EngagementLabel::Open, at(5))));
    }

    #[test]
    fn given_a_click_after_a_moment_when_read_as_of_that_moment_then_only_what_had_happened_counts() {
        // GIVEN an open at 5, clicks at 20 and 90
        let mut e = Engagement::default();
        e.add(EngagementLabel::Open, at(5));
        e.add(EngagementLabel::HumanClick, at(20));
        e.add(EngagementLabel::HumanClick, at(90));

        // WHEN read as of 10, 20 and 100
        // THEN at 10 only the open had happened: no click decides
        let early = e.as_of(at(10));
        assert_eq!(early.decisive(false), None);
        assert_eq!(early.tally(EngagementLabel::Open), Some(&Tally::once(at(5))));
        assert!(!early.changed_after(at(10)));
        // at 20 the first click decides, its last time capped there
        let mid = e.as_of(at(20));
        assert_eq!(mid.decisive(false), Some((EngagementLabel::HumanClick, at(20))));
        assert_eq!(mid.tally(EngagementLabel::HumanClick).map(|t| t.last_at), Some(at(20)));
        assert!(e.changed_after(at(20)));
        // and after the last click it is the whole record
        assert_eq!(e.as_of(at(100)), e);
    }

    #[test]
    fn given_the_stored_forms_when_read_then_tallies_round_trip_and_a_former_engaged_at_is_a_human_click() {
        let mut e = Engagement::default();
        e.add(EngagementLabel::ScannerClick, at(3));
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["scanner_click"]["count"], 1);
        assert_eq!(serde_json::from_value::<Engagement>(json).unwrap(), e);
        let legacy: Engagement = serde_json::from_value(serde_json::json!(at(7))).unwrap();
        assert_eq!(legacy.tally(EngagementLabel::HumanClick), Some(&Tally::once(at(7))));
        assert_eq!(serde_json::from_value::<Engagement>(serde_json::Value::Null).unwrap(), Engagement::default());
    }
}
