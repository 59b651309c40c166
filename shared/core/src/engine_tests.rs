//! Specifications of the decision engine: one rule per test, written as
//! GIVEN / WHEN / THEN. The engine is pure, so every test builds an `Input`
//! by hand and reads the `Decision`.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveTime};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::json;

use super::*;
use crate::campaign::{Campaign, ChannelOrder, DelayFrom, Segment, Step};
use crate::campaign::{CampaignMode, Experiment, Region, StepOverride, Variant};
use crate::cart::{Cart, CartStatus, Purchase};
use crate::consent::{AnswerReason, ConsentChange, ConsentSource, CustomerAnswer, LegalBasis};
use crate::customer::Customer;
use crate::engagement::{Engagement, EngagementLabel};
use crate::event::{ConsentPatch, CustomerPatch, Device, Item, PushPlatform, PushToken};
use crate::ids::CustomerKey;
use crate::measure::{assign_group, assign_variant, Group};
use crate::message::{Channel, MessageRecord, MessageStatus, Recipient};
use crate::reason::ReasonCode;
use crate::voucher::{Discount, Offer, Tier, TierName, VoucherCode, VoucherOwner, VoucherStatus, VoucherTerms};

use Channel::{Email, Push, Sms, WebPush};

// ---------------------------------------------------------------- helpers

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("RFC 3339 instant")
}

/// Noon in Paris, 06:00 in New York: outside every default quiet hour.
fn t0() -> DateTime<Utc> {
    t("2026-06-10T10:00:00Z")
}

fn mins(n: i64) -> Duration {
    Duration::minutes(n)
}

fn hours(n: i64) -> Duration {
    Duration::hours(n)
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).expect("valid time")
}

fn tz(name: &str) -> Tz {
    name.parse().expect("IANA zone")
}

/// Every property and every consent: each channel can carry a message.
fn full_contact() -> CustomerPatch {
    CustomerPatch {
        email: Some("ana@example.com".into()),
        phone: Some("+33612345678".into()),
        first_name: Some("Ana".into()),
        locale: None,
        timezone: Some("Europe/Paris".into()),
        consents: Some(ConsentPatch {
            email: Some(true),
            sms: Some(true),
            push: Some(true),
            web_push: Some(true),
            ..Default::default()
        }),
        push_tokens: Some(vec![PushToken { platform: PushPlatform::Fcm, token: "fcm-token".into() }]),
        web_push_subscription: Some(
            json!({"endpoint": "https://push.example/s/1", "keys": {"p256dh": "k", "auth": "a"}}).into(),
        ),
        snoozed_until: None,
    }
}

fn step(delay: Duration, from: DelayFrom, mobile: &[Channel], desktop: &[Channel]) -> Step {
    Step {
        delay,
        delay_from: from,
        channels: ChannelOrder { mobile: mobile.to_vec(), desktop: desktop.to_vec() },
        template: "reminder".into(),
        subject: None,
        offer: None,
        webhook: None,
    }
}

/// The field's flow: 30 minutes after the last activity, then 24 hours after
/// the first message, each step in the default channel order by device.
fn field_campaign() -> Campaign {
    let mut c = Campaign::default_campaign();
    c.id = "field".into();
    // Every customer treated: the holdout has its own tests.
    c.holdout_percent = 0;
    for s in &mut c.steps {
        s.channels = ChannelOrder::default();
    }
    c
}

/// A one-step campaign that reaches only through `channels` on every device.
fn only(id: &str, channels: &[Channel]) -> Campaign {
    let mut c = field_campaign();
    c.id = id.into();
    c.steps = vec![step(mins(30), DelayFrom::LastActivity, channels, channels)];
    c
}

fn message(cart_id: &str, step: u32, channel: Channel, at: DateTime<Utc>) -> MessageRecord {
    MessageRecord {
        message_id: MessageRecord::id_for(cart_id, step, channel),
        cart_id: cart_id.into(),
        customer_key: CustomerKey::Customer("u1".into()),
        campaign_id: "field".into(),
        step,
        channel,
        decided_at: at,
        status: MessageStatus::Sent { provider_message_id: "provider-1".into(), at },
        engagement: Engagement::default(),
        variant: None,
    }
}

/// One cart of customer `u1` (full contact, French mobile, Paris zone),
/// last touched at `t0()`, and the field campaign.
#[derive(Clone)]
struct Scenario {
    cart: Cart,
    progress: Progress,
    customer: Option<Customer>,
    campaigns: Vec<Campaign>,
    history: Vec<MessageRecord>,
    channels: Vec<Channel>,
    /// The owner's vouchers, as the checker loads them.
    vouchers: Vec<Voucher>,
}

impl Scenario {
    fn on(device: Option<Device>) -> Self {
        let cart = Cart {
            cart_id: "c1".into(),
            customer_id: Some("u1".into()),
            status: CartStatus::Active,
            items: vec![Item {
                item_id: "mug".into(),
                item_name: Some("Mug".into()),
                variant: None,
                price: Some(Decimal::new(1250, 2)),
                quantity: 2,
                image_url: None,
                url: None,
            }],
            currency: Some("EUR".into()),
            device,
            first_activity_at: Some(t0() - mins(5)),
            last_activity_at: Some(t0()),
            items_viewed: 3,
            contact: CustomerPatch::default(),
            purchase: None,
            answers: Vec::new(),
            consent_history: Vec::new(),
        };
        let mut customer = Customer::new("u1");
        customer.profile = full_contact();
        Scenario {
            cart,
            progress: Progress::default(),
            customer: Some(customer),
            campaigns: vec![field_campaign()],
            history: Vec::new(),
            channels: Channel::ALL.to_vec(),
            vouchers: Vec::new(),
        }
    }

    fn mobile() -> Self {
        Self::on(Some(Device::Mobile))
    }

    fn desktop() -> Self {
        Self::on(Some(Device::Desktop))
    }

    /// The moment the first step falls due with the field campaign.
    fn due(&self) -> DateTime<Utc> {
        self.cart.last_activity_at.expect("activity") + mins(30)
    }

    fn active_at(mut self, at: DateTime<Utc>) -> Self {
        self.cart.first_activity_at = Some(at);
        self.cart.last_activity_at = Some(at);
        self
    }

    fn with_campaigns(mut self, campaigns: Vec<Campaign>) -> Self {
        self.campaigns = campaigns;
        self
    }

    fn contact(&mut self) -> &mut CustomerPatch {
        &mut self.customer.as_mut().expect("known customer").profile
    }

    fn consents(&mut self) -> &mut ConsentPatch {
        self.contact().consents.get_or_insert_with(Default::default)
    }

    fn decide_at(&self, now: DateTime<Utc>) -> Decision {
        decide(&Input {
            cart: &self.cart,
            progress: &self.progress,
            customer: self.customer.as_ref(),
            campaigns: &self.campaigns,
            history: &self.history,
            channels: &self.channels,
            vouchers: &self.vouchers,
            now,
        })
    }

    /// What shadow campaign `draft` (in `campaigns`) would decide at `now`.
    fn decide_shadow_at(&self, now: DateTime<Utc>) -> Decision {
        let shadow = self.campaigns.iter().find(|c| c.is_shadow()).expect("a shadow campaign");
        decide_shadow(
            &Input {
                cart: &self.cart,
                progress: &self.progress,
                customer: self.customer.as_ref(),
                campaigns: &self.campaigns,
                history: &self.history,
                channels: &self.channels,
                vouchers: &self.vouchers,
                now,
            },
            shadow,
        )
    }

    /// The cart's customer becomes one that the first campaign, holding out
    /// half its customers, holds out.
    fn held_out(mut self) -> Self {
        self.campaigns[0].holdout_percent = 50;
        let id = customer_in(|key| assign_group(&self.campaigns[0].id, 50, key) == Group::HeldOut);
        self.cart.customer_id = Some(id.as_str().into());
        self
    }

    /// Decides at `now`, expects a held-out step, and records it the way
    /// the checker does (a `held_out` message in history, step in progress).
    #[track_caller]
    fn hold_out_at(&mut self, now: DateTime<Utc>) -> (u32, Channel) {
        match self.decide_at(now) {
            Decision::Withhold { campaign_id, step, channel, group: Group::HeldOut, .. } => {
                let mut m = message(&self.cart.cart_id, step, channel, now);
                m.campaign_id.clone_from(&campaign_id);
                m.status = MessageStatus::HeldOut { at: now };
                self.progress.record(&campaign_id, step, channel, m.message_id.clone(), now);
                self.progress.enter(Group::HeldOut, None);
                self.history.push(m);
                (step, channel)
            }
            other => panic!("expected a held-out step at {now}, got {other:?}"),
        }
    }

    /// Decides at `now`, expects a send, and records it the way the checker
    /// does (message in history, step in progress).
    #[track_caller]
    fn send_at(&mut self, now: DateTime<Utc>) -> (u32, Channel) {
        match self.decide_at(now) {
            Decision::Send { campaign_id, step, channel, .. } => {
                let mut m = message(&self.cart.cart_id, step, channel, now);
                m.campaign_id.clone_from(&campaign_id);
                self.progress.record(&campaign_id, step, channel, m.message_id.clone(), now);
                self.history.push(m);
                (step, channel)
            }
            other => panic!("expected a send at {now}, got {other:?}"),
        }
    }
}

#[track_caller]
fn assert_send(d: &Decision, step: u32, channel: Channel) -> String {
    match d {
        Decision::Send { step: s, channel: c, reason, .. } if *s == step && *c == channel => {
            assert_eq!(reason.code, ReasonCode::Sent);
            reason.message.clone()
        }
        other => panic!("expected step {step} by {channel:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_wait(d: &Decision, until: DateTime<Utc>, code: ReasonCode) -> String {
    match d {
        Decision::Wait { until: u, reason } if *u == until && reason.code == code => reason.message.clone(),
        other => panic!("expected a wait until {until} ({code:?}), got {other:?}"),
    }
}

#[track_caller]
fn assert_stop(d: &Decision, code: ReasonCode) -> String {
    match d {
        Decision::Stop { reason } if reason.code == code => {
            assert!(!reason.message.is_empty(), "a stop explains itself");
            reason.message.clone()
        }
        other => panic!("expected a stop with {code:?}, got {other:?}"),
    }
}

// ------------------------------------------------------- waiting for inactivity

#[test]
fn given_a_cart_just_added_to_when_decided_then_it_waits_30_minutes_of_inactivity() {
    let s = Scenario::desktop();
    for now in [t0(), t0() + mins(1), t0() + mins(29) + Duration::seconds(59)] {
        let why = assert_wait(&s.decide_at(now), t0() + mins(30), ReasonCode::WaitingForInactivity);
        assert!(why.contains("abandoned"), "{why}");
    }
}

#[test]
fn given_30_minutes_without_activity_when_decided_then_the_first_step_is_sent() {
    let s = Scenario::desktop();
    assert_send(&s.decide_at(t0() + mins(30)), 0, WebPush);
}

#[test]
fn given_a_runtime_that_does_not_deliver_web_push_when_a_desktop_cart_is_abandoned_then_email_carries_the_step() {
    let mut s = Scenario::desktop();
    s.channels = vec![Email, Sms, Push];
    match s.decide_at(t0() + mins(30)) {
        Decision::Send { channel, reason, .. } => {
            assert_eq!(channel, Email);
            assert!(reason.message.contains("web_push: not delivered by this runtime"), "{}", reason.message);
        }
        other => panic!("expected a send, got {other:?}"),
    }
}

#[test]
fn given_new_activity_during_the_wait_when_the_old_timer_fires_then_the_wait_restarts_from_the_latest_activity() {
    let s = Scenario::desktop().active_at(t0() + mins(20));
    assert_wait(&s.decide_at(t0() + mins(30)), t0() + mins(50), ReasonCode::WaitingForInactivity);
    assert_send(&s.decide_at(t0() + mins(50)), 0, WebPush);
}

#[test]
fn given_a_campaign_with_a_longer_first_delay_when_decided_then_it_waits_that_long() {
    let mut c = field_campaign();
    c.steps[0].delay = hours(1);
    let s = Scenario::desktop().with_campaigns(vec![c]);
    assert_wait(&s.decide_at(t0() + mins(30)), t0() + hours(1), ReasonCode::WaitingForInactivity);
}

// ------------------------------------------------------- cart status

#[test]
fn given_a_purchased_cart_when_a_step_is_due_then_it_stops_with_purchased() {
    let mut s = Scenario::desktop();
    s.cart.status = CartStatus::Converted;
    s.cart.purchase =
        Some(Purchase { order_id: "o1".into(), value: None, currency: None, coupon: None, at: t0() + mins(10) });
    assert_stop(&s.decide_at(t0() + mins(30)), ReasonCode::Purchased);
    // Even before anything is due, and even mid-sequence.
    assert_stop(&s.decide_at(t0() + mins(11)), ReasonCode::Purchased);
    s.progress.record("field", 0, WebPush, "m".into(), t0() + mins(30));
    assert_stop(&s.decide_at(t0() + days(1)), ReasonCode::Purchased);
}

#[test]
fn given_an_emptied_cart_when_a_step_is_due_then_it_stops_with_cart_emptied() {
    let mut s = Scenario::desktop();
    s.cart.status = CartStatus::Emptied;
    s.cart.items.clear();
    assert_stop(&s.decide_at(t0() + mins(30)), ReasonCode::CartEmptied);
}

#[test]
fn given_a_cart_with_only_views_when_decided_then_it_stops_with_nothing_in_cart() {
    let mut s = Scenario::desktop();
    s.cart.status = CartStatus::Browsing;
    s.cart.items.clear();
    s.cart.last_activity_at = None;
    assert_stop(&s.decide_at(t0() + mins(30)), ReasonCode::NothingInCart);
    // An active cart without an activity time cannot be timed either.
    s.cart.status = CartStatus::Active;
    assert_stop(&s.decide_at(t0() + mins(30)), ReasonCode::NothingInCart);
}

// ------------------------------------------------------- channel order by device

#[test]
fn given_a_mobile_cart_with_a_push_token_when_abandoned_then_push_is_chosen_first() {
    let s = Scenario::mobile();
    assert_send(&s.decide_at(s.due()), 0, Push);
}

#[test]
fn given_a_tablet_cart_when_abandoned_then_the_mobile_order_applies() {
    let s = Scenario::on(Some(Device::Tablet));
    assert_send(&s.decide_at(s.due()), 0, Push);
}

#[test]
fn given_a_desktop_cart_with_a_web_push_subscription_when_abandoned_then_web_push_is_chosen_first() {
    let s = Scenario::desktop();
    assert_send(&s.decide_at(s.due()), 0, WebPush);
}

#[test]
fn given_a_cart_of_unknown_device_when_abandoned_then_the_desktop_order_applies() {
    let s = Scenario::on(None);
    assert_send(&s.decide_at(s.due()), 0, WebPush);
}

#[test]
fn given_a_mobile_cart_without_a_push_token_when_abandoned_then_email_is_chosen_and_the_push_skip_is_explained() {
    let mut s = Scenario::mobile();
    s.contact().push_tokens = None;
    let why = assert_send(&s.decide_at(s.due()), 0, Email);
    assert!(why.contains("Skipped push: no push token"), "{why}");
}

#[test]
fn given_a_mobile_cart_reachable_only_by_sms_when_abandoned_then_sms_is_chosen_and_both_skips_are_explained() {
    let mut s = Scenario::mobile();
    s.contact().push_tokens = None;
    s.contact().email = None;
    let why = assert_send(&s.decide_at(s.due()), 0, Sms);
    assert!(why.contains("push: no push token; email: no valid email address"), "{why}");
}

#[test]
fn given_a_desktop_cart_without_web_push_when_abandoned_then_email_comes_before_sms() {
    let mut s = Scenario::desktop();
    s.contact().web_push_subscription = None;
    let why = assert_send(&s.decide_at(s.due()), 0, Email);
    assert!(why.contains("web_push: no web-push subscription"), "{why}");
}

#[test]
fn given_a_campaign_with_its_own_order_per_step_when_each_step_falls_due_then_that_steps_order_is_followed() {
    let mut c = field_campaign();
    c.steps[0].channels = ChannelOrder { mobile: vec![Sms, Email], desktop: vec![Email, Sms] };
    c.steps[1].channels = ChannelOrder { mobile: vec![Email], desktop: vec![Sms, WebPush] };
    let mut m = Scenario::mobile().with_campaigns(vec![c.clone()]);
    assert_eq!(m.send_at(m.due()), (0, Sms));
    assert_eq!(m.send_at(m.due() + hours(24)), (1, Email));
    let mut d = Scenario::desktop().with_campaigns(vec![c]);
    assert_eq!(d.send_at(d.due()), (0, Email));
    assert_eq!(d.send_at(d.due() + hours(24)), (1, Sms));
}

#[test]
fn given_the_shipped_default_campaign_when_a_desktop_cart_is_abandoned_then_email_comes_first_and_web_push_follows_a_day_later(
) {
    let mut s = Scenario::desktop().with_campaigns(vec![Campaign::default_campaign()]);
    assert_eq!(s.send_at(s.due()), (0, Email));
    assert_eq!(s.send_at(s.due() + hours(24)), (1, WebPush));
}

// ------------------------------------------------------- consent and properties

#[test]
fn given_every_property_but_no_consent_when_abandoned_then_it_stops_with_no_consent() {
    let mut s = Scenario::mobile();
    s.contact().consents = None;
    let why = assert_stop(&s.decide_at(s.due()), ReasonCode::NoConsent);
    assert!(why.contains("push: no consent; email: no consent; sms: no consent"), "{why}");
    // Withdrawn consent is no better than unknown consent.
    *s.consents() = ConsentPatch {
        email: Some(false),
        sms: Some(false),
        push: Some(false),
        web_push: Some(false),
        ..Default::default()
    };
    assert_stop(&s.decide_at(s.due()), ReasonCode::NoConsent);
}

#[test]
fn given_consents_but_no_contact_data_when_abandoned_then_it_stops_with_no_reachable_channel() {
    let mut s = Scenario::mobile();
    *s.contact() = CustomerPatch { consents: full_contact().consents, ..Default::default() };
    let why = assert_stop(&s.decide_at(s.due()), ReasonCode::NoReachableChannel);
    assert!(
        why.contains("push: no push token; email: no valid email address; sms: no valid E.164 phone number"),
        "{why}"
    );
}

#[test]
fn given_missing_consent_on_one_channel_and_missing_data_on_the_others_when_abandoned_then_no_reachable_channel_names_each_cause(
) {
    let mut s = Scenario::mobile();
    s.contact().push_tokens = None;
    s.consents().email = Some(false);
    s.contact().phone = None;
    let why = assert_stop(&s.decide_at(s.due()), ReasonCode::NoReachableChannel);
    assert!(why.contains("push: no push token; email: no consent; sms: no valid E.164 phone number"), "{why}");
}

#[test]
fn given_consent_withdrawn_for_the_first_channel_when_abandoned_then_the_next_channel_is_used() {
    let mut s = Scenario::mobile();
    s.consents().push = Some(false);
    let why = assert_send(&s.decide_at(s.due()), 0, Email);
    assert!(why.contains("push: no consent"), "{why}");
}

#[test]
fn given_an_invalid_email_address_when_email_is_next_then_it_is_skipped() {
    let mut s = Scenario::mobile();
    s.contact().push_tokens = None;
    s.contact().email = Some("ana@".into());
    let why = assert_send(&s.decide_at(s.due()), 0, Sms);
    assert!(why.contains("email: no valid email address"), "{why}");
}

#[test]
fn given_a_phone_without_country_code_when_sms_is_the_only_channel_then_it_is_unreachable() {
    let mut s = Scenario::mobile().with_campaigns(vec![only("sms", &[Sms])]);
    s.contact().phone = Some("06 12 34 56 78".into());
    let why = assert_stop(&s.decide_at(s.due()), ReasonCode::NoReachableChannel);
    assert!(why.contains("no valid E.164 phone number"), "{why}");
    s.contact().phone = Some("+33 6 12 34 56 78".into());
    assert_send(&s.decide_at(s.due()), 0, Sms);
}

#[test]
fn given_an_empty_push_token_list_when_push_is_first_then_push_is_skipped() {
    let mut s = Scenario::mobile();
    s.contact().push_tokens = Some(Vec::new());
    assert_send(&s.decide_at(s.due()), 0, Email);
}

#[test]
fn given_a_guest_cart_when_abandoned_then_the_contact_typed_on_the_cart_is_used() {
    let mut s = Scenario::desktop();
    s.customer = None;
    s.cart.customer_id = None;
    assert_stop(&s.decide_at(s.due()), ReasonCode::NoReachableChannel);
    s.cart.contact = full_contact();
    s.cart.contact.web_push_subscription = None;
    // A guest in Paris: email needs explicit consent (see "customers in control").
    s.cart.contact.consents.as_mut().unwrap().basis = Some(LegalBasis::Consent);
    assert_send(&s.decide_at(s.due()), 0, Email);
}

#[test]
fn given_a_known_customer_when_the_cart_holds_other_contact_data_then_the_profile_decides() {
    let mut s = Scenario::desktop().with_campaigns(vec![only("email", &[Email])]);
    s.cart.contact = full_contact();
    s.consents().email = Some(false);
    assert_stop(&s.decide_at(s.due()), ReasonCode::NoConsent);
}

// ------------------------------------------------------- 7-day entry cooldown

#[test]
fn given_a_message_on_another_cart_six_days_ago_when_a_new_cart_is_abandoned_then_it_stops_in_the_entry_cooldown() {
    let mut s = Scenario::desktop();
    s.history.push(message("c0", 0, Email, s.due() - days(6)));
    let why = assert_stop(&s.decide_at(s.due()), ReasonCode::EntryCooldown);
    assert!(why.contains("cart c0") && why.contains("7 days"), "{why}");
}

#[test]
fn given_a_message_on_another_cart_eight_days_ago_when_a_new_cart_is_abandoned_then_it_is_sent() {
    let mut s = Scenario::desktop();
    s.history.push(message("c0", 0, Email, s.due() - days(8)));
    assert_send(&s.decide_at(s.due()), 0, WebPush);
}

#[test]
fn given_a_cancelled_or_rejected_message_on_another_cart_when_a_new_cart_is_abandoned_then_the_cooldown_does_not_apply()
{
    let mut s = Scenario::desktop();
    let mut cancelled = message("c0", 0, Email, s.due() - days(1));
    cancelled.status = MessageStatus::Cancelled { reason: "purchased".into(), at: s.due() - days(1) };
    let mut rejected = message("c9", 0, Email, s.due() - days(1));
    rejected.status = MessageStatus::Rejected { error: "bounce".into(), at: s.due() - days(1) };
    s.history.extend([cancelled, rejected]);
    assert_send(&s.decide_at(s.due()), 0, WebPush);
}

#[test]
fn given_a_cart_already_in_the_flow_when_another_cart_got_a_message_then_the_follow_up_is_not_blocked_by_the_cooldown()
{
    let mut s = Scenario::desktop();
    s.send_at(s.due());
    s.history.push(message("c0", 0, Email, s.due() + hours(1)));
    assert_send(&s.decide_at(s.due() + hours(24)), 1, WebPush);
}

#[test]
fn given_a_one_day_cooldown_setting_when_the_last_message_was_two_days_ago_then_the_cart_enters() {
    let mut c = field_campaign();
    c.caps.entry_cooldown = days(1);
    let mut s = Scenario::desktop().with_campaigns(vec![c]);
    s.history.push(message("c0", 0, Email, s.due() - days(2)));
    assert_send(&s.decide_at(s.due()), 0, WebPush);
}

// ------------------------------------------------------- push cap

/// Pushes ten days ago, with a 30-day push window: outside the entry
/// cooldown, inside the push window.
fn with_two_old_pushes(mut s: Scenario) -> Scenario {
    for c in &mut s.campaigns {
        c.caps.push_window = days(30);
    }
    s.history.push(message("c0", 0, Push, s.due() - days(10)));
    s.history.push(message("c0", 1, WebPush, s.due() - days(10) + hours(24)));
    s
}

#[test]
fn given_two_pushes_in_the_window_when_push_comes_first_then_push_is_skipped_for_push_cap_and_email_is_used() {
    let s = with_two_old_pushes(Scenario::mobile());
    let why = assert_send(&s.decide_at(s.due()), 0, Email);
    assert!(why.contains("push: push cap reached"), "{why}");
    // Web push shares the cap.
    let s = with_two_old_pushes(Scenario::desktop());
    assert_send(&s.decide_at(s.due()), 0, Email);
}

#[test]
fn given_one_push_in_the_window_when_push_comes_first_then_the_second_push_is_allowed() {
    let mut s = with_two_old_pushes(Scenario::mobile());
    s.history.pop();
    assert_send(&s.decide_at(s.due()), 0, Push);
}

#[test]
fn given_two_pushes_before_the_window_when_push_comes_first_then_push_is_sent() {
    let mut s = with_two_old_pushes(Scenario::mobile());
    s.campaigns[0].caps.push_window = days(7);
    assert_send(&s.decide_at(s.due()), 0, Push);
}

#[test]
fn given_push_as_the_only_channel_and_the_cap_reached_when_abandoned_then_it_stops_with_push_cap_reached() {
    let s = with_two_old_pushes(Scenario::mobile().with_campaigns(vec![only("push", &[Push])]));
    assert_stop(&s.decide_at(s.due()), ReasonCode::PushCapReached);
}

// ------------------------------------------------------- recent purchase

#[test]
fn given_a_purchase_23_hours_ago_when_a_step_is_due_then_it_stops_with_recent_purchase() {
    let mut s = Scenario::desktop();
    let due = s.due();
    s.customer.as_mut().unwrap().purchases = vec![due - hours(23)];
    let why = assert_stop(&s.decide_at(due), ReasonCode::RecentPurchase);
    assert!(why.contains("no reminder within 1 day of a purchase"), "{why}");
}

#[test]
fn given_a_purchase_25_hours_ago_when_a_step_is_due_then_it_is_sent() {
    let mut s = Scenario::desktop();
    let due = s.due();
    s.customer.as_mut().unwrap().purchases = vec![due - days(40), due - hours(25)];
    assert_send(&s.decide_at(due), 0, WebPush);
}

#[test]
fn given_a_purchase_on_another_path_after_step_one_when_step_two_is_due_days_later_then_nothing_more_is_sent() {
    let mut c = field_campaign();
    c.steps[1].delay = hours(48);
    let mut s = Scenario::desktop();
    s.campaigns = vec![c];
    s.send_at(t0() + mins(30));
    s.customer.as_mut().unwrap().purchases.push(t0() + hours(1));
    match s.decide_at(t0() + mins(30) + hours(48)) {
        Decision::Stop { reason } => assert_eq!(reason.code, ReasonCode::RecentPurchase, "{}", reason.message),
        other => panic!("expected a stop, got {other:?}"),
    }
}

#[test]
fn given_no_after_purchase_pause_configured_when_a_purchase_was_just_made_then_the_step_is_sent() {
    let mut c = field_campaign();
    c.caps.after_purchase = Duration::zero();
    let mut s = Scenario::desktop().with_campaigns(vec![c]);
    let due = s.due();
    s.customer.as_mut().unwrap().purchases = vec![due - mins(1)];
    assert_send(&s.decide_at(due), 0, WebPush);
}

// ------------------------------------------------------- SMS: one per cart, within 48 hours

fn sms_follow_up(second_delay: Duration, second: &[Channel]) -> Campaign {
    let mut c = field_campaign();
    c.id = "sms".into();
    c.steps = vec![
        step(mins(30), DelayFrom::LastActivity, &[Sms], &[Sms]),
        step(second_delay, DelayFrom::PreviousStep, second, second),
    ];
    c
}

#[test]
fn given_an_sms_already_sent_on_this_cart_when_the_next_step_prefers_sms_then_sms_is_skipped_for_the_cap() {
    let mut s = Scenario::mobile().with_campaigns(vec![sms_follow_up(hours(24), &[Sms, Email])]);
    assert_eq!(s.send_at(s.due()), (0, Sms));
    let why = assert_send(&s.decide_at(s.due() + hours(24)), 1, Email);
    assert!(why.contains("sms: SMS cap for this cart reached"), "{why}");
}

#[test]
fn given_an_sms_already_sent_and_sms_as_the_only_channel_when_the_next_step_is_due_then_it_stops_with_sms_cap_reached()
{
    let mut s = Scenario::mobile().with_campaigns(vec![sms_follow_up(hours(24), &[Sms])]);
    s.send_at(s.due());
    assert_stop(&s.decide_at(s.due() + hours(24)), ReasonCode::SmsCapReached);
}

#[test]
fn given_an_sms_on_another_cart_when_this_cart_prefers_sms_then_the_per_cart_cap_does_not_apply() {
    let mut s = Scenario::mobile().with_campaigns(vec![only("sms", &[Sms])]);
    s.history.push(message("c0", 0, Sms, s.due() - days(8)));
    assert_send(&s.decide_at(s.due()), 0, Sms);
}

#[test]
fn given_47_hours_since_abandonment_when_sms_is_next_then_sms_is_sent() {
    let mut s = Scenario::mobile().with_campaigns(vec![sms_follow_up(hours(47), &[Sms, Email])]);
    s.campaigns[0].steps[0].channels = ChannelOrder { mobile: vec![Email], desktop: vec![Email] };
    assert_eq!(s.send_at(s.due()), (0, Email));
    assert_send(&s.decide_at(s.due() + hours(47)), 1, Sms);
}

#[test]
fn given_more_than_48_hours_since_abandonment_when_sms_is_next_then_sms_is_skipped_for_the_window() {
    let mut s = Scenario::mobile().with_campaigns(vec![sms_follow_up(hours(49), &[Sms, Email])]);
    s.campaigns[0].steps[0].channels = ChannelOrder { mobile: vec![Email], desktop: vec![Email] };
    assert_eq!(s.send_at(s.due()), (0, Email));
    let why = assert_send(&s.decide_at(s.due() + hours(49)), 1, Email);
    assert!(why.contains("sms: too long after abandonment for SMS"), "{why}");
}

#[test]
fn given_sms_as_the_only_channel_more_than_48_hours_after_abandonment_then_it_stops_with_sms_window_closed() {
    let mut s = Scenario::mobile().with_campaigns(vec![sms_follow_up(hours(49), &[Sms])]);
    s.campaigns[0].steps[0].channels = ChannelOrder { mobile: vec![Email], desktop: vec![Email] };
    s.send_at(s.due());
    assert_stop(&s.decide_at(s.due() + hours(49)), ReasonCode::SmsWindowClosed);
}

// ------------------------------------------------------- quiet hours

/// A cart reachable by SMS only, in Paris (UTC+2 in June), last touched so
/// that its first step falls due at `due`.
fn sms_due_at(due: DateTime<Utc>) -> Scenario {
    Scenario::mobile().with_campaigns(vec![only("sms", &[Sms])]).active_at(due - mins(30))
}

#[test]
fn given_an_sms_due_at_22_00_local_when_decided_then_it_is_deferred_to_08_00_local_the_next_morning() {
    let s = sms_due_at(t("2026-06-10T20:00:00Z"));
    let why = assert_wait(&s.decide_at(s.due()), t("2026-06-11T06:00:00Z"), ReasonCode::QuietHoursDeferred);
    assert!(why.contains("sms is in quiet hours (21:00-08:00 Europe/Paris)"), "{why}");
    assert_send(&s.decide_at(t("2026-06-11T06:00:00Z")), 0, Sms);
}

#[test]
fn given_an_sms_due_at_03_00_local_when_decided_then_it_is_deferred_to_08_00_the_same_morning() {
    let s = sms_due_at(t("2026-06-11T01:00:00Z"));
    assert_wait(&s.decide_at(s.due()), t("2026-06-11T06:00:00Z"), ReasonCode::QuietHoursDeferred);
}

#[test]
fn given_the_edges_of_quiet_hours_when_decided_then_21_00_is_quiet_and_08_00_is_not() {
    let s = sms_due_at(t("2026-06-10T18:00:00Z"));
    assert_send(&s.decide_at(t("2026-06-10T18:59:00Z")), 0, Sms); // 20:59 Paris
    assert_wait(&s.decide_at(t("2026-06-10T19:00:00Z")), t("2026-06-11T06:00:00Z"), ReasonCode::QuietHoursDeferred);
    assert_wait(&s.decide_at(t("2026-06-11T05:59:00Z")), t("2026-06-11T06:00:00Z"), ReasonCode::QuietHoursDeferred);
    assert_send(&s.decide_at(t("2026-06-11T06:00:00Z")), 0, Sms); // 08:00 Paris
}

#[test]
fn given_a_mobile_push_due_in_quiet_hours_when_decided_then_it_is_deferred_too() {
    let s = Scenario::mobile().active_at(t("2026-06-10T19:30:00Z"));
    let why = assert_wait(&s.decide_at(s.due()), t("2026-06-11T06:00:00Z"), ReasonCode::QuietHoursDeferred);
    assert!(why.starts_with("push is in quiet hours"), "{why}");
}

#[test]
fn given_email_or_web_push_due_in_quiet_hours_when_decided_then_they_are_sent_at_once() {
    let mut s = Scenario::mobile().active_at(t("2026-06-10T19:30:00Z"));
    s.contact().push_tokens = None;
    assert_send(&s.decide_at(s.due()), 0, Email);
    let s = Scenario::desktop().active_at(t("2026-06-10T19:30:00Z"));
    assert_send(&s.decide_at(s.due()), 0, WebPush);
}

#[test]
fn given_quiet_hours_that_cover_no_channel_when_an_sms_is_due_at_night_then_it_is_sent() {
    let mut s = sms_due_at(t("2026-06-10T20:00:00Z"));
    s.campaigns[0].quiet_hours.channels.clear();
    assert_send(&s.decide_at(s.due()), 0, Sms);
}

#[test]
fn given_quiet_hours_with_equal_start_and_end_when_checked_then_no_time_is_quiet() {
    let mut c = field_campaign();
    c.quiet_hours.start = hm(9, 0);
    c.quiet_hours.end = hm(9, 0);
    for h in 0..24 {
        assert_eq!(quiet_until(t("2026-06-10T00:00:00Z") + hours(h), Tz::UTC, &c), None);
    }
}

#[test]
fn given_daytime_quiet_hours_when_checked_then_the_window_does_not_wrap_midnight() {
    let mut c = field_campaign();
    c.quiet_hours.start = hm(12, 0);
    c.quiet_hours.end = hm(14, 0);
    assert_eq!(quiet_until(t("2026-06-10T11:59:00Z"), Tz::UTC, &c), None);
    assert_eq!(quiet_until(t("2026-06-10T12:00:00Z"), Tz::UTC, &c), Some(t("2026-06-10T14:00:00Z")));
    assert_eq!(quiet_until(t("2026-06-10T14:00:00Z"), Tz::UTC, &c), None);
    assert_eq!(quiet_until(t("2026-06-10T23:00:00Z"), Tz::UTC, &c), None);
}

#[test]
fn given_no_zone_on_the_profile_when_the_phone_is_french_then_paris_time_applies() {
    let mut s = sms_due_at(t("2026-06-10T19:30:00Z")); // 21:30 Paris, 19:30 UTC
    s.contact().timezone = None;
    let why = assert_wait(&s.decide_at(s.due()), t("2026-06-11T06:00:00Z"), ReasonCode::QuietHoursDeferred);
    assert!(why.contains("Europe/Paris"), "{why}");
}

#[test]
fn given_no_zone_and_no_phone_when_push_is_due_then_the_campaign_default_zone_applies() {
    // 07:30 UTC is quiet in UTC but 08:30 in London.
    let mut s = Scenario::mobile().with_campaigns(vec![only("push", &[Push])]).active_at(t("2026-06-10T07:00:00Z"));
    s.contact().timezone = None;
    s.contact().phone = None;
    assert_wait(&s.decide_at(s.due()), t("2026-06-10T08:00:00Z"), ReasonCode::QuietHoursDeferred);
    s.campaigns[0].quiet_hours.default_timezone = "Europe/London".into();
    assert_send(&s.decide_at(s.due()), 0, Push);
    // A British phone number beats the campaign default.
    s.campaigns[0].quiet_hours.default_timezone = "UTC".into();
    s.contact().phone = Some("+442079460958".into());
    assert_send(&s.decide_at(s.due()), 0, Push);
}

#[test]
fn given_contact_data_when_the_zone_is_resolved_then_profile_beats_phone_beats_default_beats_utc() {
    let mut c =
        CustomerPatch { timezone: Some("Asia/Tokyo".into()), phone: Some("+33612345678".into()), ..Default::default() };
    assert_eq!(customer_time_zone(&c, "America/New_York"), tz("Asia/Tokyo"));
    c.timezone = Some("Mars/Olympus".into());
    assert_eq!(customer_time_zone(&c, "America/New_York"), tz("Europe/Paris"));
    c.phone = Some("+999123456789".into());
    assert_eq!(customer_time_zone(&c, "America/New_York"), tz("America/New_York"));
    assert_eq!(customer_time_zone(&c, "Nowhere/Special"), Tz::UTC);
}

// Daylight-saving nights: America/New_York springs forward on 2026-03-08
// (02:00 EST -> 03:00 EDT, at 07:00Z) and falls back on 2026-11-01 (02:00 EDT
// -> 01:00 EST, at 06:00Z); Europe/Paris on 2026-03-29 (02:00 CET -> 03:00
// CEST, at 01:00Z) and 2026-10-25 (03:00 CEST -> 02:00 CET, at 01:00Z).

fn sms_in(zone: &str, due: DateTime<Utc>) -> Scenario {
    let mut s = sms_due_at(due);
    s.contact().timezone = Some(zone.into());
    s
}

#[test]
fn given_new_york_spring_forward_night_when_an_sms_is_due_then_it_waits_for_08_00_daylight_time() {
    for due in [
        t("2026-03-08T02:30:00Z"), /* 21:30 EST */
        t("2026-03-08T06:30:00Z"), /* 01:30 EST */
        t("2026-03-08T07:30:00Z"), /* 03:30 EDT */
    ] {
        let s = sms_in("America/New_York", due);
        assert_wait(&s.decide_at(due), t("2026-03-08T12:00:00Z"), ReasonCode::QuietHoursDeferred);
    }
    // That evening quiet hours start at 21:00 EDT = 01:00Z.
    let s = sms_in("America/New_York", t("2026-03-09T00:59:00Z"));
    assert_send(&s.decide_at(s.due()), 0, Sms);
    let s = sms_in("America/New_York", t("2026-03-09T01:00:00Z"));
    assert_wait(&s.decide_at(s.due()), t("2026-03-09T12:00:00Z"), ReasonCode::QuietHoursDeferred);
}

#[test]
fn given_new_york_fall_back_night_when_an_sms_is_due_then_it_waits_for_08_00_standard_time() {
    for due in [
        t("2026-11-01T01:30:00Z"), /* 21:30 EDT */
        t("2026-11-01T05:30:00Z"), /* 01:30 EDT */
        t("2026-11-01T06:30:00Z"), /* 01:30 EST */
    ] {
        let s = sms_in("America/New_York", due);
        assert_wait(&s.decide_at(due), t("2026-11-01T13:00:00Z"), ReasonCode::QuietHoursDeferred);
    }
    let s = sms_in("America/New_York", t("2026-11-01T13:00:00Z"));
    assert_send(&s.decide_at(s.due()), 0, Sms);
}

#[test]
fn given_paris_spring_forward_night_when_an_sms_is_due_then_it_waits_for_08_00_summer_time() {
    for due in [
        t("2026-03-28T20:30:00Z"), /* 21:30 CET */
        t("2026-03-29T00:30:00Z"), /* 01:30 CET */
        t("2026-03-29T01:30:00Z"), /* 03:30 CEST */
    ] {
        let s = sms_in("Europe/Paris", due);
        assert_wait(&s.decide_at(due), t("2026-03-29T06:00:00Z"), ReasonCode::QuietHoursDeferred);
    }
    let s = sms_in("Europe/Paris", t("2026-03-29T06:00:00Z"));
    assert_send(&s.decide_at(s.due()), 0, Sms);
}

#[test]
fn given_paris_fall_back_night_when_an_sms_is_due_then_it_waits_for_08_00_winter_time() {
    for due in [
        t("2026-10-24T19:30:00Z"), /* 21:30 CEST */
        t("2026-10-25T00:30:00Z"), /* 02:30 CEST */
        t("2026-10-25T01:30:00Z"), /* 02:30 CET */
    ] {
        let s = sms_in("Europe/Paris", due);
        assert_wait(&s.decide_at(due), t("2026-10-25T07:00:00Z"), ReasonCode::QuietHoursDeferred);
    }
    let s = sms_in("Europe/Paris", t("2026-10-25T06:59:00Z"));
    assert_wait(&s.decide_at(s.due()), t("2026-10-25T07:00:00Z"), ReasonCode::QuietHoursDeferred);
}

#[test]
fn given_quiet_hours_ending_inside_the_spring_forward_gap_when_deferred_then_the_send_moves_to_when_the_clocks_resume()
{
    let mut c = field_campaign();
    c.quiet_hours.end = hm(2, 30); // 02:30 does not exist in New York on 2026-03-08
    let until = quiet_until(t("2026-03-08T06:30:00Z"), tz("America/New_York"), &c);
    assert_eq!(until, Some(t("2026-03-08T07:00:00Z")), "03:00 EDT");
}

#[test]
fn given_quiet_hours_ending_inside_the_repeated_fall_back_hour_when_checked_in_either_pass_then_the_deferral_lies_ahead(
) {
    let mut c = field_campaign();
    c.quiet_hours.end = hm(1, 30); // 01:30 happens twice in New York on 2026-11-01
    let ny = tz("America/New_York");
    assert_eq!(
        quiet_until(t("2026-11-01T05:10:00Z"), ny, &c),
        Some(t("2026-11-01T05:30:00Z")),
        "01:10 EDT -> 01:30 EDT"
    );
    assert_eq!(quiet_until(t("2026-11-01T05:45:00Z"), ny, &c), None, "01:45 EDT is after the end");
    assert_eq!(
        quiet_until(t("2026-11-01T06:10:00Z"), ny, &c),
        Some(t("2026-11-01T06:30:00Z")),
        "01:10 EST -> 01:30 EST, not back in time"
    );
}

/// Over every DST night of several zones (including Lord Howe's 30-minute
/// shift) and several quiet windows, a deferral always lies ahead, lands on
/// an allowed minute, and the minute before it is still quiet.
#[test]
fn given_any_instant_around_dst_changes_when_deferred_then_the_wait_ends_at_the_first_allowed_minute() {
    let zones = [
        "America/New_York",
        "Europe/Paris",
        "Australia/Sydney",
        "Australia/Lord_Howe",
        "America/Santiago",
        "Asia/Kolkata",
        "UTC",
    ];
    let windows = [
        (hm(21, 0), hm(8, 0)),
        (hm(21, 0), hm(1, 30)),
        (hm(21, 0), hm(2, 30)),
        (hm(0, 0), hm(2, 15)),
        (hm(1, 30), hm(8, 0)),
        (hm(8, 0), hm(22, 0)),
    ];
    let nights = [
        "2026-03-08T00:00:00Z",
        "2026-11-01T00:00:00Z",
        "2026-03-29T00:00:00Z",
        "2026-10-25T00:00:00Z",
        "2026-04-04T00:00:00Z",
        "2026-10-03T00:00:00Z",
        "2026-04-05T00:00:00Z",
        "2026-09-06T00:00:00Z",
    ];
    let mut c = field_campaign();
    let mut deferrals = 0;
    for zone in zones.map(tz) {
        for (start, end) in windows {
            c.quiet_hours.start = start;
            c.quiet_hours.end = end;
            for night in nights {
                let from = t(night) - hours(12);
                for step in 0..(48 * 6) {
                    let now = from + mins(10 * step);
                    let Some(until) = quiet_until(now, zone, &c) else { continue };
                    deferrals += 1;
                    assert!(until > now, "{zone} {start}-{end}: deferral from {now} to {until} lies in the past");
                    assert!(
                        until - now <= hours(25),
                        "{zone} {start}-{end}: deferral from {now} to {until} is too long"
                    );
                    assert_eq!(quiet_until(until, zone, &c), None, "{zone} {start}-{end}: {until} is still quiet");
                    assert!(
                        quiet_until(until - mins(1), zone, &c).is_some(),
                        "{zone} {start}-{end}: {until} is not the first allowed minute"
                    );
                }
            }
        }
    }
    assert!(deferrals > 10_000, "the sweep exercised {deferrals} deferrals");
}

// ------------------------------------------------------- follow-up steps

#[test]
fn given_the_first_step_sent_when_decided_again_then_it_waits_for_the_next_step_and_never_repeats_the_first() {
    let mut s = Scenario::mobile();
    assert_eq!(s.send_at(s.due()), (0, Push));
    let why = assert_wait(&s.decide_at(s.due()), s.due() + hours(24), ReasonCode::WaitingForNextStep);
    assert!(why.contains("step 2"), "{why}");
    assert_wait(&s.decide_at(s.due() + hours(23)), s.due() + hours(24), ReasonCode::WaitingForNextStep);
}

#[test]
fn given_the_first_message_not_engaged_when_24_hours_passed_then_the_follow_up_is_sent() {
    let mut s = Scenario::mobile();
    s.send_at(s.due());
    assert_send(&s.decide_at(s.due() + hours(24)), 1, Push);
}

#[test]
fn given_the_first_message_clicked_when_the_follow_up_is_due_then_it_stops_with_engaged() {
    let mut s = Scenario::mobile();
    s.send_at(s.due());
    let clicked = s.due() + hours(1);
    s.history.last_mut().unwrap().engagement.add(EngagementLabel::HumanClick, clicked);
    let why = assert_stop(&s.decide_at(s.due() + hours(24)), ReasonCode::Engaged);
    assert!(why.contains("engaged with step 1") && why.contains("a click"), "{why}");
}

#[test]
fn given_the_first_email_only_opened_or_machine_clicked_when_the_follow_up_is_due_then_it_is_still_sent() {
    let mut s = Scenario::mobile();
    s.send_at(s.due());
    let seen = s.due() + hours(1);
    let first = s.history.last_mut().unwrap();
    first.channel = Email;
    for label in [EngagementLabel::Open, EngagementLabel::MachineOpen, EngagementLabel::ScannerClick] {
        first.engagement.add(label, seen);
    }
    assert_send(&s.decide_at(s.due() + hours(24)), 1, Push);
}

#[test]
fn given_the_first_push_opened_when_the_follow_up_is_due_then_it_stops_even_where_email_opens_do_not_count() {
    // GIVEN a campaign that does not count (email) opens, and a push sent
    let mut s = Scenario::mobile();
    assert!(!s.campaigns[0].opens_count_as_engagement);
    assert_eq!(s.send_at(s.due()), (0, Push));
    let due = s.due();
    // WHEN the app reports the push opened an hour later
    s.history.last_mut().unwrap().engagement.add(EngagementLabel::Open, due + hours(1));
    // THEN the follow-up is not sent, and the reason says the push was opened
    let why = assert_stop(&s.decide_at(due + hours(24)), ReasonCode::Engaged);
    assert!(why.contains("engaged with step 1") && why.contains("the push was opened"), "{why}");
}

#[test]
fn given_the_first_push_only_opened_by_a_machine_when_the_follow_up_is_due_then_it_is_still_sent() {
    let mut s = Scenario::mobile();
    s.send_at(s.due());
    let seen = s.due() + hours(1);
    s.history.last_mut().unwrap().engagement.add(EngagementLabel::MachineOpen, seen);
    assert_send(&s.decide_at(s.due() + hours(24)), 1, Push);
}

#[test]
fn given_a_campaign_that_counts_opens_when_the_first_message_was_opened_then_it_stops_but_not_for_a_machine_open() {
    let mut s = Scenario::mobile();
    s.campaigns[0].opens_count_as_engagement = true;
    s.send_at(s.due());
    let due = s.due();
    s.history.last_mut().unwrap().channel = Email;
    s.history.last_mut().unwrap().engagement.add(EngagementLabel::MachineOpen, due + hours(1));
    assert_send(&s.decide_at(due + hours(24)), 1, Push);
    s.history.last_mut().unwrap().engagement.add(EngagementLabel::Open, due + hours(2));
    let why = assert_stop(&s.decide_at(s.due() + hours(24)), ReasonCode::Engaged);
    assert!(why.contains("an open"), "{why}");
}

#[test]
fn given_cart_activity_after_the_first_message_when_the_follow_up_is_due_then_it_stops_with_engaged() {
    let mut s = Scenario::mobile();
    let due = s.due();
    s.send_at(due);
    s.cart.last_activity_at = Some(due + hours(2));
    let why = assert_stop(&s.decide_at(due + hours(24)), ReasonCode::Engaged);
    assert!(why.contains("came back to the cart"), "{why}");
}

#[test]
fn given_an_engaged_message_of_another_cart_when_the_follow_up_is_due_then_it_is_still_sent() {
    let mut s = Scenario::mobile();
    s.send_at(s.due());
    let mut other = message("c0", 0, Email, s.due() - days(9));
    other.engagement.add(EngagementLabel::HumanClick, s.due() - days(9) + hours(1));
    s.history.push(other);
    assert_send(&s.decide_at(s.due() + hours(24)), 1, Push);
}

#[test]
fn given_a_follow_up_timed_from_the_last_activity_when_decided_then_it_falls_due_relative_to_the_activity() {
    let mut c = field_campaign();
    c.steps[1].delay = hours(24);
    c.steps[1].delay_from = DelayFrom::LastActivity;
    let mut s = Scenario::mobile().with_campaigns(vec![c]);
    s.send_at(s.due());
    assert_wait(&s.decide_at(s.due()), t0() + hours(24), ReasonCode::WaitingForNextStep);
    assert_send(&s.decide_at(t0() + hours(24)), 1, Push);
}

#[test]
fn given_every_step_sent_when_decided_then_it_stops_with_sequence_completed() {
    let mut s = Scenario::mobile();
    s.send_at(s.due());
    s.send_at(s.due() + hours(24));
    let why = assert_stop(&s.decide_at(s.due() + days(30)), ReasonCode::SequenceCompleted);
    assert!(why.contains("All 2 steps"), "{why}");
}

#[test]
fn given_a_step_recorded_twice_when_progress_is_read_then_it_holds_the_step_once() {
    let mut p = Progress::default();
    p.record("field", 0, Push, "m1".into(), t0());
    p.record("field", 0, Email, "m2".into(), t0() + mins(1));
    assert_eq!(p.steps.len(), 1);
    assert_eq!(p.steps[0].message_id, "m1");
    assert_eq!(p.campaign_id.as_deref(), Some("field"));
}

// ------------------------------------------------------- late steps (max_send_delay)

#[track_caller]
fn assert_skip(d: &Decision, step: u32, due: DateTime<Utc>) -> String {
    match d {
        Decision::Skip { step: s, due: u, reason, .. } if *s == step && *u == due => {
            assert_eq!(reason.code, ReasonCode::StepTooLate);
            reason.message.clone()
        }
        other => panic!("expected step {step} (due {due}) skipped, got {other:?}"),
    }
}

impl Scenario {
    /// Decides at `now`, expects a skip, and records it the way the checker does.
    #[track_caller]
    fn skip_at(&mut self, now: DateTime<Utc>) -> u32 {
        match self.decide_at(now) {
            Decision::Skip { campaign_id, step, due, .. } => {
                self.progress.skip(&campaign_id, step, due);
                step
            }
            other => panic!("expected a skip at {now}, got {other:?}"),
        }
    }
}

#[test]
fn given_a_step_due_less_than_max_send_delay_ago_when_decided_then_it_is_still_sent() {
    let s = Scenario::mobile();
    assert_eq!(s.campaigns[0].caps.max_send_delay, days(2), "the default");
    assert_send(&s.decide_at(s.due() + days(2)), 0, Push);
}

#[test]
fn given_a_step_due_more_than_max_send_delay_ago_when_decided_then_it_is_skipped_with_its_reason() {
    let s = Scenario::mobile();
    let why = assert_skip(&s.decide_at(s.due() + days(2) + Duration::seconds(1)), 0, s.due());
    assert!(why.contains("Step 1") && why.contains("2 days"), "{why}");
}

#[test]
fn given_a_cart_last_touched_30_days_ago_when_decided_then_every_step_is_skipped_and_the_sequence_ends() {
    let mut s = Scenario::mobile().active_at(t0() - days(30));
    let now = t0();
    assert_eq!(s.skip_at(now), 0);
    assert_eq!(s.progress.steps[0].at, t0() - days(30) + mins(30), "a skipped step counts from when it was due");
    assert!(s.progress.steps[0].skipped);
    // Step 2 falls due 24 hours after step 1 was due: 29 days ago, so too late as well.
    assert_eq!(s.skip_at(now), 1);
    assert_stop(&s.decide_at(now), ReasonCode::SequenceCompleted);
}

#[test]
fn given_a_late_first_step_and_a_follow_up_still_within_its_window_when_decided_then_only_the_late_one_is_skipped() {
    let mut c = field_campaign();
    c.steps[1].delay = days(3);
    let mut s = Scenario::mobile().with_campaigns(vec![c]);
    let now = s.due() + days(2) + hours(1);
    assert_eq!(s.skip_at(now), 0);
    // Step 2 is due 3 days after step 1 was due: in 23 hours, on time.
    assert_wait(&s.decide_at(now), s.due() + days(3), ReasonCode::WaitingForNextStep);
    assert_send(&s.decide_at(s.due() + days(3)), 1, Push);
}

#[test]
fn given_a_skipped_first_step_when_the_follow_up_is_due_then_the_skip_is_neither_engagement_nor_a_cap() {
    let mut c = field_campaign();
    c.steps[1].delay = days(3);
    c.caps.max_send_delay = hours(1);
    let mut s = Scenario::mobile().with_campaigns(vec![c]);
    s.skip_at(s.due() + hours(2));
    assert_send(&s.decide_at(s.due() + days(3)), 1, Push);
}

#[test]
fn given_skipped_steps_when_the_customer_comes_back_to_the_cart_then_the_skips_are_forgotten_and_step_one_is_due() {
    let mut s = Scenario::mobile().active_at(t0() - days(30));
    s.skip_at(t0());
    s.skip_at(t0());
    // The customer adds to the cart again today.
    s.cart.last_activity_at = Some(t0() + hours(1));
    s.progress.forget_skips_before(s.cart.last_activity_at);
    assert!(s.progress.steps.is_empty());
    assert_send(&s.decide_at(t0() + hours(1) + mins(30)), 0, Push);
    // Skips the customer was not active after stay.
    let mut s = Scenario::mobile().active_at(t0() - days(30));
    s.skip_at(t0());
    s.progress.forget_skips_before(s.cart.last_activity_at);
    assert_eq!(s.progress.steps.len(), 1);
}

#[test]
fn given_a_purchased_cart_with_a_late_step_when_decided_then_the_purchase_is_the_reason() {
    let mut s = Scenario::mobile();
    s.cart.status = CartStatus::Converted;
    assert_stop(&s.decide_at(s.due() + days(10)), ReasonCode::Purchased);
}

// ------------------------------------------------------- campaigns

#[test]
fn given_the_campaign_disabled_after_entry_when_the_next_step_is_due_then_it_stops_with_campaign_disabled() {
    let mut s = Scenario::mobile();
    s.send_at(s.due());
    s.campaigns[0].enabled = false;
    let why = assert_stop(&s.decide_at(s.due() + hours(24)), ReasonCode::CampaignDisabled);
    assert!(why.contains("\"field\" was disabled"), "{why}");
}

#[test]
fn given_the_campaign_deleted_after_entry_when_the_next_step_is_due_then_it_stops_with_campaign_disabled() {
    let mut s = Scenario::mobile();
    s.send_at(s.due());
    s.campaigns = vec![only("other", &[Email])];
    let why = assert_stop(&s.decide_at(s.due() + hours(24)), ReasonCode::CampaignDisabled);
    assert!(why.contains("no longer exists"), "{why}");
}

#[test]
fn given_no_enabled_campaign_when_a_cart_is_abandoned_then_it_stops_with_campaign_disabled() {
    let mut s = Scenario::mobile();
    s.campaigns[0].enabled = false;
    assert_stop(&s.decide_at(s.due()), ReasonCode::CampaignDisabled);
    s.campaigns.clear();
    assert_stop(&s.decide_at(s.due()), ReasonCode::CampaignDisabled);
}

fn prioritised(id: &str, priority: i32, channel: Channel) -> Campaign {
    let mut c = only(id, &[channel]);
    c.priority = priority;
    c
}

#[test]
fn given_two_matching_campaigns_when_a_cart_is_abandoned_then_the_highest_priority_is_chosen() {
    let s = Scenario::mobile().with_campaigns(vec![
        prioritised("low", 1, Email),
        prioritised("high", 5, Sms),
        prioritised("lowest", -3, Push),
    ]);
    match s.decide_at(s.due()) {
        Decision::Send { campaign_id, channel, .. } => assert_eq!((campaign_id.as_str(), channel), ("high", Sms)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn given_two_campaigns_of_equal_priority_when_a_cart_is_abandoned_then_the_choice_is_stable_by_id() {
    let s = Scenario::mobile().with_campaigns(vec![prioritised("b", 1, Email), prioritised("a", 1, Sms)]);
    assert_send(&s.decide_at(s.due()), 0, Sms);
}

#[test]
fn given_the_highest_priority_campaign_disabled_or_not_matching_when_abandoned_then_the_next_matching_one_is_chosen() {
    let mut high = prioritised("high", 5, Sms);
    high.entry.min_items_viewed = Some(10);
    let mut disabled = prioritised("disabled", 9, Push);
    disabled.enabled = false;
    let s = Scenario::mobile().with_campaigns(vec![disabled, high, prioritised("low", 1, Email)]);
    assert_send(&s.decide_at(s.due()), 0, Email);
}

#[test]
fn given_a_cart_already_in_a_campaign_when_a_higher_priority_campaign_appears_then_the_entered_campaign_continues() {
    let mut s = Scenario::mobile();
    s.send_at(s.due());
    s.campaigns.push(prioritised("vip", 100, Sms));
    match s.decide_at(s.due() + hours(24)) {
        Decision::Send { campaign_id, step, .. } => assert_eq!((campaign_id.as_str(), step), ("field", 1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn given_a_minimum_cart_value_when_the_cart_is_below_or_at_it_then_the_filter_decides_entry() {
    // The cart holds 2 x 12.50 = 25.00.
    let mut c = field_campaign();
    c.entry.min_cart_value = Some(Decimal::new(3000, 2));
    let mut s = Scenario::mobile().with_campaigns(vec![c]);
    let why = assert_stop(&s.decide_at(s.due()), ReasonCode::NoMatchingCampaign);
    assert!(why.contains("cart value 25.00 is below 30.00"), "{why}");
    s.campaigns[0].entry.min_cart_value = Some(Decimal::new(25, 0));
    assert_send(&s.decide_at(s.due()), 0, Push);
}

#[test]
fn given_a_minimum_of_items_viewed_when_the_session_viewed_fewer_then_no_campaign_matches() {
    let mut c = field_campaign();
    c.entry.min_items_viewed = Some(3);
    let mut s = Scenario::mobile().with_campaigns(vec![c]);
    assert_send(&s.decide_at(s.due()), 0, Push);
    s.cart.items_viewed = 2;
    let why = assert_stop(&s.decide_at(s.due()), ReasonCode::NoMatchingCampaign);
    assert!(why.contains("2 items viewed, 3 needed"), "{why}");
}

#[test]
fn given_the_returned_recently_segment_when_the_customer_returned_within_90_days_then_the_campaign_matches() {
    let mut c = field_campaign();
    c.entry.segment = Some(Segment::ReturnedRecently);
    let mut s = Scenario::mobile().with_campaigns(vec![c]);
    let due = s.due();
    s.customer.as_mut().unwrap().returns = vec![due - days(30)];
    assert_send(&s.decide_at(due), 0, Push);
    s.customer.as_mut().unwrap().returns = vec![due - days(100)];
    assert_stop(&s.decide_at(due), ReasonCode::NoMatchingCampaign);
    s.customer = None;
    s.cart.customer_id = None;
    s.cart.contact = full_contact();
    let why = assert_stop(&s.decide_at(due), ReasonCode::NoMatchingCampaign);
    assert!(why.contains("ReturnedRecently"), "{why}");
}

#[test]
fn given_buyer_segments_when_the_customer_has_or_has_no_purchases_then_the_matching_campaign_is_chosen() {
    let mut first = prioritised("first", 2, Sms);
    first.entry.segment = Some(Segment::FirstTimeBuyer);
    let mut returning = prioritised("returning", 1, Email);
    returning.entry.segment = Some(Segment::ReturningBuyer);
    let mut s = Scenario::mobile().with_campaigns(vec![first, returning]);
    let due = s.due();
    assert_send(&s.decide_at(due), 0, Sms);
    s.customer.as_mut().unwrap().purchases = vec![due - days(60)];
    assert_send(&s.decide_at(due), 0, Email);
}

#[test]
fn given_a_recovery_campaign_for_returners_when_a_returner_abandons_then_it_beats_the_general_campaign() {
    let mut recovery = prioritised("recovery", 10, Sms);
    recovery.entry.segment = Some(Segment::ReturnedRecently);
    recovery.entry.min_items_viewed = Some(3);
    let mut s = Scenario::mobile().with_campaigns(vec![field_campaign(), recovery]);
    let due = s.due();
    assert_send(&s.decide_at(due), 0, Push);
    s.customer.as_mut().unwrap().returns = vec![due - days(10)];
    assert_send(&s.decide_at(due), 0, Sms);
}

// ------------------------------------------------------- holdout, experiments, shadow campaigns

/// The first customer id `u0`, `u1`, ... whose key satisfies `wanted`.
fn customer_in(wanted: impl Fn(&CustomerKey) -> bool) -> String {
    (0..10_000)
        .map(|i| format!("u{i}"))
        .find(|id| wanted(&CustomerKey::Customer(id.as_str().into())))
        .expect("some customer lands there")
}

#[track_caller]
fn assert_held_out(d: &Decision, step: u32, channel: Channel) -> String {
    match d {
        Decision::Withhold { step: s, channel: c, group: Group::HeldOut, reason, .. }
            if *s == step && *c == channel =>
        {
            assert_eq!(reason.code, ReasonCode::HeldOut);
            reason.message.clone()
        }
        other => panic!("expected step {step} held out on {channel:?}, got {other:?}"),
    }
}

#[test]
fn given_a_held_out_customer_when_the_step_falls_due_then_the_engine_holds_it_out_naming_step_and_channel() {
    let s = Scenario::mobile().held_out();
    assert_wait(&s.decide_at(t0()), s.due(), ReasonCode::WaitingForInactivity);
    let why = assert_held_out(&s.decide_at(s.due()), 0, Push);
    assert!(why.contains("Held out (50% holdout): step 1 of campaign \"field\" would go by push"), "{why}");
}

#[test]
fn given_a_held_out_customer_when_a_rule_stops_or_defers_a_treated_cart_then_it_does_the_same() {
    // No consent: stopped, not held out.
    let mut s = Scenario::mobile().held_out();
    s.contact().consents = None;
    assert_stop(&s.decide_at(s.due()), ReasonCode::NoConsent);
    // Quiet hours: deferred to the same morning as a treated SMS.
    let mut s = sms_due_at(t("2026-06-10T20:00:00Z")).held_out();
    s.campaigns[0].holdout_percent = 50;
    assert_wait(&s.decide_at(s.due()), t("2026-06-11T06:00:00Z"), ReasonCode::QuietHoursDeferred);
    assert_held_out(&s.decide_at(t("2026-06-11T06:00:00Z")), 0, Sms);
    // A held-out step is dispatched like a sent one: the next waits 24 hours after it.
    let mut s = Scenario::mobile().held_out();
    s.hold_out_at(s.due());
    assert_wait(&s.decide_at(s.due() + hours(1)), s.due() + hours(24), ReasonCode::WaitingForNextStep);
    assert_held_out(&s.decide_at(s.due() + hours(24)), 1, Push);
    // Coming back to the cart after a held-out step ends it, as after a sent one.
    let mut s = Scenario::mobile().held_out();
    s.hold_out_at(s.due());
    s.cart.last_activity_at = Some(s.due() + hours(2));
    assert_stop(&s.decide_at(s.due() + hours(30)), ReasonCode::Engaged);
}

#[test]
fn given_held_out_messages_in_the_history_when_caps_apply_then_they_count_like_sent_ones() {
    // Two would-be pushes held out on another cart fill the push cap.
    let mut s = with_two_old_pushes(Scenario::mobile()).held_out();
    for m in &mut s.history {
        m.status = MessageStatus::HeldOut { at: m.decided_at };
    }
    let why = assert_held_out(&s.decide_at(s.due()), 0, Email);
    assert!(why.contains("push: push cap reached"), "{why}");
    // A held-out step on another cart a day ago keeps this cart out (entry cooldown).
    let mut s = Scenario::mobile().held_out();
    let mut earlier = message("c0", 0, Email, s.due() - days(1));
    earlier.status = MessageStatus::HeldOut { at: s.due() - days(1) };
    s.history.push(earlier);
    assert_stop(&s.decide_at(s.due()), ReasonCode::EntryCooldown);
    // The SMS cap per cart counts a held-out SMS.
    let mut s = Scenario::mobile().with_campaigns(vec![sms_follow_up(hours(24), &[Sms, Email])]).held_out();
    assert_eq!(s.hold_out_at(s.due()), (0, Sms));
    let why = assert_held_out(&s.decide_at(s.due() + hours(24)), 1, Email);
    assert!(why.contains("sms: SMS cap for this cart reached"), "{why}");
}

#[test]
fn given_one_customer_with_two_carts_when_each_is_decided_then_both_are_in_the_same_group() {
    let mut groups = BTreeSet::new();
    for i in 0..200 {
        let mut decided = Vec::new();
        for cart in ["c1", "c2"] {
            let mut s = Scenario::mobile();
            s.campaigns[0].holdout_percent = 30;
            s.cart.cart_id = cart.into();
            s.cart.customer_id = Some(format!("u{i}").as_str().into());
            decided.push(match s.decide_at(s.due()) {
                Decision::Send { .. } => Group::Treated,
                Decision::Withhold { group, .. } => group,
                other => panic!("expected a send or a hold-out, got {other:?}"),
            });
        }
        assert_eq!(decided[0], decided[1], "customer u{i}");
        groups.insert(decided[0]);
    }
    assert_eq!(groups, BTreeSet::from([Group::Treated, Group::HeldOut]), "both groups occur");
}

#[test]
fn given_a_cart_that_entered_treated_when_the_holdout_grows_then_it_stays_treated() {
    let mut s = Scenario::mobile();
    let id = customer_in(|key| assign_group("field", 50, key) == Group::HeldOut);
    s.cart.customer_id = Some(id.as_str().into());
    s.send_at(s.due());
    s.progress.enter(Group::Treated, None);
    s.campaigns[0].holdout_percent = 50;
    assert_send(&s.decide_at(s.due() + hours(24)), 1, Push);
}

/// The field campaign with an experiment: `now` (control, the campaign as
/// it is) against `later` (first step after 2 hours by email, with the
/// last-call template and its own subject line).
fn experiment_campaign() -> Campaign {
    let mut c = field_campaign();
    c.experiment = Some(Experiment {
        id: "timing".into(),
        variants: vec![
            Variant { name: "now".into(), weight: 1, steps: vec![] },
            Variant {
                name: "later".into(),
                weight: 1,
                steps: vec![StepOverride {
                    delay: Some(hours(2)),
                    channels: Some(ChannelOrder { mobile: vec![Email], desktop: vec![Email] }),
                    template: Some("last_call".into()),
                    subject: Some("{{ first_name }}, still thinking?".into()),
                    offer: None,
                }],
            },
        ],
        control: None,
    });
    c
}

#[test]
fn given_an_experiment_when_a_customer_is_in_a_variant_then_its_delay_channels_template_and_subject_apply() {
    assert_eq!(experiment_campaign().validate(), Ok(()));
    let variant_of = |name: usize| customer_in(|key| assign_variant("timing", &[1, 1], key) == Some(name));
    let mut s = Scenario::mobile().with_campaigns(vec![experiment_campaign()]);
    s.cart.customer_id = Some(variant_of(1).as_str().into());
    assert_wait(&s.decide_at(s.due()), t0() + hours(2), ReasonCode::WaitingForInactivity);
    match s.decide_at(t0() + hours(2)) {
        Decision::Send { step: 0, channel: Email, template, subject, variant, reason, .. } => {
            assert_eq!(template, "last_call");
            assert_eq!(subject.as_deref(), Some("{{ first_name }}, still thinking?"));
            assert_eq!(variant.as_deref(), Some("later"));
            assert!(reason.message.contains("(variant \"later\")"), "{}", reason.message);
        }
        other => panic!("expected the later variant's email, got {other:?}"),
    }
    // The control variant gets the campaign as it is.
    s.cart.customer_id = Some(variant_of(0).as_str().into());
    match s.decide_at(s.due()) {
        Decision::Send { step: 0, channel: Push, template, subject: None, variant, .. } => {
            assert_eq!(template, "reminder");
            assert_eq!(variant.as_deref(), Some("now"));
        }
        other => panic!("expected the control's push, got {other:?}"),
    }
}

#[test]
fn given_a_cart_that_entered_a_variant_when_decided_again_then_the_recorded_variant_applies() {
    let mut s = Scenario::mobile().with_campaigns(vec![experiment_campaign()]);
    s.cart.customer_id = Some(customer_in(|key| assign_variant("timing", &[1, 1], key) == Some(0)).as_str().into());
    s.progress.enter(Group::Treated, Some("later"));
    assert_wait(&s.decide_at(s.due()), t0() + hours(2), ReasonCode::WaitingForInactivity);
}

/// GIVEN an experiment whose "later" variant sends its first step 2 hours
/// after the cart's last activity and whose control sends after 30 minutes
/// WHEN a cart in the later variant is checked at 30 minutes
/// THEN it enters the campaign then, in its own variant, while its message
/// waits for its own time: every variant's carts enter at the same moment,
/// so the carts bought in between count in the later variant too.
#[test]
fn given_an_experiment_with_a_later_first_step_when_the_earliest_variant_is_due_then_every_variant_enters_then() {
    let mut s = Scenario::mobile().with_campaigns(vec![experiment_campaign()]);
    s.cart.customer_id = Some(customer_in(|key| assign_variant("timing", &[1, 1], key) == Some(1)).as_str().into());
    let entry_at = |s: &Scenario, now: DateTime<Utc>| {
        crate::engine::entry(&Input {
            cart: &s.cart,
            progress: &s.progress,
            customer: s.customer.as_ref(),
            campaigns: &s.campaigns,
            history: &s.history,
            channels: &s.channels,
            vouchers: &s.vouchers,
            now,
        })
    };
    assert_eq!(entry_at(&s, s.due() - mins(1)), None, "not before the earliest first step");
    let (campaign, arm) = entry_at(&s, s.due()).expect("enters at the earliest first step");
    assert_eq!((campaign.as_str(), arm.variant_name()), ("field", Some("later")));
    assert_wait(&s.decide_at(s.due()), t0() + hours(2), ReasonCode::WaitingForInactivity);
    // A cart the rules stop (no consent on any channel) enters in no variant.
    s.customer = None;
    s.cart.contact = Default::default();
    assert_eq!(entry_at(&s, s.due()), None);
}

/// A draft campaign run in shadow mode: email only, after 10 minutes.
fn shadow_draft() -> Campaign {
    let mut c = only("draft", &[Email]);
    c.mode = CampaignMode::Shadow;
    c.priority = 100;
    c.steps[0].delay = mins(10);
    c
}

#[test]
fn given_a_shadow_campaign_beside_the_live_one_when_decided_then_the_live_one_sends_and_the_shadow_only_would() {
    let s = Scenario::mobile().with_campaigns(vec![field_campaign(), shadow_draft()]);
    // The shadow has the higher priority and is still never the live campaign.
    assert_send(&s.decide_at(s.due()), 0, Push);
    assert_wait(&s.decide_shadow_at(t0()), t0() + mins(10), ReasonCode::WaitingForInactivity);
    match s.decide_shadow_at(t0() + mins(10)) {
        Decision::Withhold { campaign_id, step: 0, channel: Email, group: Group::Shadow, reason, .. } => {
            assert_eq!(campaign_id, "draft");
            assert_eq!(reason.code, ReasonCode::ShadowWouldSend);
            let why = &reason.message;
            assert!(why.contains("Shadow campaign \"draft\" would send step 1 by email"), "{why}");
        }
        other => panic!("expected the shadow's would-send, got {other:?}"),
    }
    // Only shadows: no live campaign for the cart.
    let s = Scenario::mobile().with_campaigns(vec![shadow_draft()]);
    assert_stop(&s.decide_at(s.due()), ReasonCode::CampaignDisabled);
    // A cart in a campaign since switched to shadow mode gets no more live steps.
    let mut s = Scenario::mobile();
    s.send_at(s.due());
    s.campaigns[0].mode = CampaignMode::Shadow;
    let why = assert_stop(&s.decide_at(s.due() + hours(24)), ReasonCode::CampaignDisabled);
    assert!(why.contains("shadow mode"), "{why}");
}

#[test]
fn given_a_shadow_whose_entry_filters_miss_when_decided_then_it_stops_and_a_purchase_stops_it_too() {
    let mut draft = shadow_draft();
    draft.entry.min_cart_value = Some(Decimal::new(100, 0));
    let s = Scenario::mobile().with_campaigns(vec![field_campaign(), draft]);
    assert_stop(&s.decide_shadow_at(t0() + mins(10)), ReasonCode::NoMatchingCampaign);
    let mut s = Scenario::mobile().with_campaigns(vec![field_campaign(), shadow_draft()]);
    s.cart.status = CartStatus::Converted;
    assert_stop(&s.decide_shadow_at(t0() + mins(10)), ReasonCode::Purchased);
}

// ------------------------------------------------------- customers in control

/// A consent change on record (a customer's or a guest cart's history).
fn change(channel: Channel, granted: bool, source: ConsentSource, at: DateTime<Utc>) -> ConsentChange {
    ConsentChange { at, channel, granted, source, basis: None }
}

fn answer(reason: AnswerReason) -> CustomerAnswer {
    CustomerAnswer { reason, text: None, message_id: None }
}

impl Scenario {
    /// The cart of a guest (no customer id, no profile) who typed `contact`.
    fn guest(mut self, contact: CustomerPatch) -> Self {
        self.customer = None;
        self.cart.customer_id = None;
        self.cart.contact = contact;
        self
    }

    /// The known customer withdrew email consent through `source` an hour
    /// before the cart was touched.
    fn email_withdrawn_by(mut self, source: ConsentSource) -> Self {
        self.consents().email = Some(false);
        let history = &mut self.customer.as_mut().expect("known customer").consent_history;
        history.push(change(Email, true, ConsentSource::Event, t0() - days(30)));
        history.push(change(Email, false, source, t0() - hours(1)));
        self
    }

    fn input_at(&self, now: DateTime<Utc>) -> Input<'_> {
        Input {
            cart: &self.cart,
            progress: &self.progress,
            customer: self.customer.as_ref(),
            campaigns: &self.campaigns,
            history: &self.history,
            channels: &self.channels,
            vouchers: &self.vouchers,
            now,
        }
    }

    /// What the last-moment check says at `now` about the last message sent.
    fn recheck_at(&self, now: DateTime<Utc>) -> Recheck {
        let message = self.history.last().expect("a decided message");
        recheck_before_send(&self.input_at(now), message)
    }
}

#[track_caller]
fn assert_cancel(r: &Recheck, code: ReasonCode) -> String {
    match r {
        Recheck::Cancel { reason } if reason.code == code => reason.message.clone(),
        other => panic!("expected the send cancelled with {code:?}, got {other:?}"),
    }
}

/// A guest in Paris (full contact) with email consent on `basis`, on a
/// desktop cart whose campaign reaches by email only.
fn paris_guest(basis: Option<LegalBasis>) -> Scenario {
    let mut contact = full_contact();
    contact.consents.as_mut().expect("consents").basis = basis;
    Scenario::desktop().with_campaigns(vec![only("email", &[Email])]).guest(contact)
}

#[test]
fn given_the_customer_said_they_already_bought_when_a_step_is_due_then_it_stops_with_already_bought() {
    let mut s = Scenario::mobile();
    s.cart.answers.push(answer(AnswerReason::TooManyMessages));
    s.cart.answers.push(answer(AnswerReason::AlreadyBought));
    let why = assert_stop(&s.decide_at(s.due()), ReasonCode::AlreadyBought);
    assert!(why.contains("already bought"), "{why}");
    assert_eq!(entry(&s.input_at(s.due())), None, "the cart does not enter a campaign");
}

#[test]
fn given_any_other_answer_when_a_step_is_due_then_it_stops_as_unsubscribed_naming_the_answer() {
    for reason in [AnswerReason::NotInterested, AnswerReason::TooManyMessages, AnswerReason::Other] {
        let mut s = Scenario::mobile();
        s.cart.answers.push(answer(reason));
        let why = assert_stop(&s.decide_at(s.due()), ReasonCode::Unsubscribed);
        assert!(why.contains(reason.as_str()), "{why}");
        let shadow = Scenario { cart: s.cart.clone(), ..Scenario::mobile().with_campaigns(vec![shadow_draft()]) };
        assert_stop(&shadow.decide_shadow_at(s.due()), ReasonCode::Unsubscribed);
    }
}

#[test]
fn given_an_answer_on_another_cart_of_the_customer_when_this_cart_is_due_then_it_is_sent() {
    // Answers live on the cart they were given about; this cart has none.
    let s = Scenario::mobile();
    assert!(s.cart.answers.is_empty());
    assert_send(&s.decide_at(s.due()), 0, Push);
}

#[test]
fn given_an_answer_and_a_purchase_when_decided_then_the_purchase_is_the_reason() {
    let mut s = Scenario::mobile();
    s.cart.answers.push(answer(AnswerReason::AlreadyBought));
    s.cart.status = CartStatus::Converted;
    assert_stop(&s.decide_at(s.due()), ReasonCode::Purchased);
}

#[test]
fn given_a_snooze_over_the_due_time_when_the_step_falls_due_then_it_waits_until_the_snooze_ends() {
    let mut s = Scenario::mobile();
    let until = s.due() + days(1);
    s.contact().snoozed_until = Some(until);
    let why = assert_wait(&s.decide_at(s.due()), until, ReasonCode::Snoozed);
    assert!(why.contains("snoozed") && why.contains("step 1"), "{why}");
    // Decided right away, the cart is told about the snooze, not the inactivity wait.
    assert_wait(&s.decide_at(t0()), until, ReasonCode::Snoozed);
    // Once it ends, the step is still within max_send_delay: it goes.
    assert_send(&s.decide_at(until), 0, Push);
}

#[test]
fn given_a_snooze_longer_than_max_send_delay_when_it_ends_then_the_step_is_skipped_as_too_late() {
    let mut s = Scenario::mobile();
    let until = s.due() + days(30);
    s.contact().snoozed_until = Some(until);
    assert_wait(&s.decide_at(s.due()), until, ReasonCode::Snoozed);
    assert_skip(&s.decide_at(until), 0, s.due());
}

#[test]
fn given_a_snooze_ending_before_the_step_is_due_when_decided_then_the_step_waits_for_its_own_time() {
    let mut s = Scenario::mobile();
    s.contact().snoozed_until = Some(s.due() - mins(10));
    assert_wait(&s.decide_at(t0()), s.due(), ReasonCode::WaitingForInactivity);
    s.contact().snoozed_until = Some(t0() - days(1));
    assert_send(&s.decide_at(s.due()), 0, Push);
}

#[test]
fn given_a_guest_who_snoozed_on_the_cart_when_the_step_is_due_then_it_waits_too() {
    let mut s = Scenario::mobile().guest(full_contact());
    s.cart.contact.consents.as_mut().unwrap().basis = Some(LegalBasis::Consent);
    let until = s.due() + hours(5);
    s.cart.contact.snoozed_until = Some(until);
    assert_wait(&s.decide_at(s.due()), until, ReasonCode::Snoozed);
}

#[test]
fn given_email_unsubscribed_by_link_when_email_is_the_only_channel_then_it_stops_as_unsubscribed() {
    for source in [ConsentSource::UnsubscribeLink, ConsentSource::PreferencePage] {
        let s = Scenario::desktop().with_campaigns(vec![only("email", &[Email])]).email_withdrawn_by(source);
        let why = assert_stop(&s.decide_at(s.due()), ReasonCode::Unsubscribed);
        assert!(why.contains(&format!("email: unsubscribed by the customer ({})", source.as_str())), "{why}");
    }
}

#[test]
fn given_email_withdrawn_by_the_shop_a_bounce_or_a_complaint_when_email_is_the_only_channel_then_it_is_no_consent() {
    for source in [ConsentSource::Event, ConsentSource::Bounce, ConsentSource::Complaint] {
        let s = Scenario::desktop().with_campaigns(vec![only("email", &[Email])]).email_withdrawn_by(source);
        let why = assert_stop(&s.decide_at(s.due()), ReasonCode::NoConsent);
        assert!(why.contains("email: no consent"), "{why}");
    }
}

#[test]
fn given_email_unsubscribed_and_other_channels_open_when_abandoned_then_the_next_channel_carries_the_step() {
    let mut s = Scenario::desktop().email_withdrawn_by(ConsentSource::UnsubscribeLink);
    s.contact().web_push_subscription = None;
    let why = assert_send(&s.decide_at(s.due()), 0, Sms);
    assert!(why.contains("email: unsubscribed by the customer (unsubscribe_link)"), "{why}");
}

#[test]
fn given_an_unsubscribe_among_other_causes_when_no_channel_is_left_then_the_code_is_unsubscribed() {
    let mut s = Scenario::mobile().email_withdrawn_by(ConsentSource::PreferencePage);
    s.contact().push_tokens = None;
    s.consents().sms = None;
    let why = assert_stop(&s.decide_at(s.due()), ReasonCode::Unsubscribed);
    assert!(
        why.contains("push: no push token; email: unsubscribed by the customer (preference_page); sms: no consent"),
        "{why}"
    );
}

#[test]
fn given_consent_given_again_after_an_unsubscribe_when_abandoned_then_email_is_sent() {
    let mut s = Scenario::desktop().with_campaigns(vec![only("email", &[Email])]);
    s = s.email_withdrawn_by(ConsentSource::UnsubscribeLink);
    s.consents().email = Some(true);
    let history = &mut s.customer.as_mut().unwrap().consent_history;
    history.push(change(Email, true, ConsentSource::Event, t0()));
    assert_send(&s.decide_at(s.due()), 0, Email);
}

#[test]
fn given_a_guest_who_unsubscribed_by_link_when_the_step_is_due_then_the_carts_history_names_it() {
    let mut contact = full_contact();
    contact.consents.as_mut().unwrap().basis = Some(LegalBasis::Consent);
    let mut s = Scenario::desktop().with_campaigns(vec![only("email", &[Email])]).guest(contact);
    s.cart.contact.consents.as_mut().unwrap().email = Some(false);
    s.cart.consent_history.push(change(Email, false, ConsentSource::UnsubscribeLink, t0()));
    assert_stop(&s.decide_at(s.due()), ReasonCode::Unsubscribed);
    // A later change of another channel does not move the blame.
    s.cart.consent_history.push(change(Sms, false, ConsentSource::Event, t0() + mins(1)));
    assert_stop(&s.decide_at(s.due()), ReasonCode::Unsubscribed);
    // Without a change on record, the consents' own source tells.
    s.cart.consent_history.clear();
    s.cart.contact.consents.as_mut().unwrap().source = Some(ConsentSource::PreferencePage);
    assert_stop(&s.decide_at(s.due()), ReasonCode::Unsubscribed);
    s.cart.contact.consents.as_mut().unwrap().source = None;
    assert_stop(&s.decide_at(s.due()), ReasonCode::NoConsent);
}

#[test]
fn given_a_guest_in_an_eu_time_zone_without_explicit_consent_when_email_is_due_then_it_is_skipped() {
    for basis in [None, Some(LegalBasis::SoftOptIn)] {
        let s = paris_guest(basis);
        let why = assert_stop(&s.decide_at(s.due()), ReasonCode::ExplicitConsentRequired);
        assert!(why.contains("email: a guest without explicit consent") && why.contains("Europe/Paris"), "{why}");
    }
    let s = paris_guest(Some(LegalBasis::Consent));
    assert_send(&s.decide_at(s.due()), 0, Email);
}

/// GIVEN an EU guest whose email grant had no basis, and a later SMS grant
/// with `basis = consent`
/// WHEN email is due THEN the SMS grant's basis does not vouch for the email.
#[test]
fn given_a_guests_explicit_sms_consent_after_a_plain_email_grant_when_email_is_due_then_email_still_needs_its_own() {
    let mut s = paris_guest(Some(LegalBasis::Consent));
    let mut email = change(Email, true, ConsentSource::Event, t0() - mins(10));
    email.basis = None;
    let mut sms = change(Sms, true, ConsentSource::Event, t0() - mins(5));
    sms.basis = Some(LegalBasis::Consent);
    s.cart.consent_history = vec![email, sms];
    assert_stop(&s.decide_at(s.due()), ReasonCode::ExplicitConsentRequired);
    s.cart.consent_history[0].basis = Some(LegalBasis::Consent);
    assert_send(&s.decide_at(s.due()), 0, Email);
}

#[test]
fn given_a_guest_without_explicit_consent_when_sms_follows_email_then_sms_carries_the_step() {
    let mut s = paris_guest(None);
    s.campaigns = vec![only("email-sms", &[Email, Sms])];
    let why = assert_send(&s.decide_at(s.due()), 0, Sms);
    assert!(why.contains("email: a guest without explicit consent"), "{why}");
}

#[test]
fn given_a_guest_without_explicit_consent_and_no_other_way_in_when_decided_then_the_code_is_explicit_consent_required()
{
    let mut s = paris_guest(None);
    s.campaigns = vec![only("all", &[WebPush, Email, Sms])];
    s.cart.contact.web_push_subscription = None;
    s.cart.contact.consents.as_mut().unwrap().sms = None;
    let why = assert_stop(&s.decide_at(s.due()), ReasonCode::ExplicitConsentRequired);
    assert!(why.contains("web_push: no web-push subscription") && why.contains("sms: no consent"), "{why}");
}

#[test]
fn given_a_known_customer_in_an_eu_time_zone_without_explicit_consent_when_email_is_due_then_it_is_sent() {
    // Soft opt-in: an existing customer's address may get similar offers.
    let s = Scenario::desktop().with_campaigns(vec![only("email", &[Email])]);
    assert_eq!(s.customer.as_ref().unwrap().profile.consents.unwrap().basis, None);
    assert_send(&s.decide_at(s.due()), 0, Email);
}

#[test]
fn given_the_campaigns_region_or_setting_when_a_guest_without_explicit_consent_is_due_then_they_decide() {
    let new_york = |region: Option<Region>, setting: Option<bool>| {
        let mut s = paris_guest(None);
        s.cart.contact.timezone = Some("America/New_York".into());
        s.cart.contact.phone = Some("+12125550123".into());
        s.campaigns[0].region = region;
        s.campaigns[0].require_explicit_consent_for_guests = setting;
        s.decide_at(s.due())
    };
    assert_send(&new_york(None, None), 0, Email);
    assert_send(&new_york(Some(Region::Us), None), 0, Email);
    assert_send(&new_york(Some(Region::Other), None), 0, Email);
    let why = assert_stop(&new_york(Some(Region::Eu), None), ReasonCode::ExplicitConsentRequired);
    assert!(why.contains("region eu"), "{why}");
    assert_stop(&new_york(Some(Region::Uk), None), ReasonCode::ExplicitConsentRequired);
    let why = assert_stop(&new_york(Some(Region::Us), Some(true)), ReasonCode::ExplicitConsentRequired);
    assert!(why.contains("require_explicit_consent_for_guests"), "{why}");
    let mut s = paris_guest(None);
    s.campaigns[0].require_explicit_consent_for_guests = Some(false);
    assert_send(&s.decide_at(s.due()), 0, Email);
    s.campaigns[0].require_explicit_consent_for_guests = None;
    s.campaigns[0].region = Some(Region::Us);
    assert_send(&s.decide_at(s.due()), 0, Email);
}

#[test]
fn given_a_guest_without_zone_or_phone_when_the_campaigns_default_zone_is_in_the_eu_then_explicit_consent_is_required()
{
    let mut s = paris_guest(None);
    s.cart.contact.timezone = None;
    s.cart.contact.phone = None;
    assert_send(&s.decide_at(s.due()), 0, Email);
    s.campaigns[0].quiet_hours.default_timezone = "Europe/Berlin".into();
    assert_stop(&s.decide_at(s.due()), ReasonCode::ExplicitConsentRequired);
}

#[test]
fn given_a_queued_message_when_the_customer_unsubscribes_snoozes_or_answers_meanwhile_then_the_send_is_cancelled() {
    let mut s = Scenario::desktop().with_campaigns(vec![only("email", &[Email])]);
    s.send_at(s.due());
    let now = s.due() + mins(5);
    assert_eq!(s.recheck_at(now), Recheck::Send);

    let unsubscribed = s.clone().email_withdrawn_by(ConsentSource::UnsubscribeLink);
    assert_cancel(&unsubscribed.recheck_at(now), ReasonCode::Unsubscribed);

    let mut snoozed = s.clone();
    snoozed.contact().snoozed_until = Some(now + days(30));
    let why = assert_cancel(&snoozed.recheck_at(now), ReasonCode::Snoozed);
    assert!(why.contains("snoozed"), "{why}");

    for (reason, code) in
        [(AnswerReason::AlreadyBought, ReasonCode::AlreadyBought), (AnswerReason::Other, ReasonCode::Unsubscribed)]
    {
        let mut answered = s.clone();
        answered.cart.answers.push(answer(reason));
        assert_cancel(&answered.recheck_at(now), code);
    }
}

#[test]
fn given_a_queued_email_to_a_guest_when_the_campaign_starts_requiring_explicit_consent_then_the_send_is_cancelled() {
    let mut s = paris_guest(None);
    s.campaigns[0].require_explicit_consent_for_guests = Some(false);
    s.send_at(s.due());
    let now = s.due() + mins(5);
    assert_eq!(s.recheck_at(now), Recheck::Send);
    s.campaigns[0].require_explicit_consent_for_guests = None;
    assert_cancel(&s.recheck_at(now), ReasonCode::ExplicitConsentRequired);
}

// ------------------------------------------------------- purity and coverage

#[test]
fn given_the_same_input_when_decided_twice_then_the_decisions_are_identical() {
    let mut s = Scenario::mobile();
    s.history.push(message("c0", 0, Email, s.due() - days(9)));
    for now in [t0(), s.due(), s.due() + hours(3), t("2026-06-10T22:00:00Z")] {
        assert_eq!(s.decide_at(now), s.decide_at(now));
    }
}

// ------------------------------------------------------- vouchers

fn percent(text: &str) -> Decimal {
    text.parse().expect("a decimal")
}

/// A voucher of customer `u1` for `cart_id`, issued at `issued_at` (5% off,
/// standard tier, EUR), expiring a week later.
fn issued_voucher(cart_id: &str, code: &str, issued_at: DateTime<Utc>, status: VoucherStatus) -> Voucher {
    Voucher {
        code: VoucherCode::parse(code).expect("a code"),
        cart_id: cart_id.into(),
        owner: VoucherOwner::customer(&"u1".into()),
        customer_key: CustomerKey::Customer("u1".into()),
        campaign_id: "field".into(),
        step: 0,
        variant: None,
        terms: VoucherTerms {
            tier: TierName::Standard,
            discount: Discount::PercentOff { percent: percent("5"), max_amount: None },
            currency: "EUR".into(),
            min_cart_value: None,
        },
        issued_at,
        expires_at: issued_at + days(7),
        status,
        published_at: None,
    }
}

impl Scenario {
    /// Every step of the first campaign offers the seed's offer (10% for
    /// returners, 5% for others).
    fn offering(mut self) -> Self {
        for step in &mut self.campaigns[0].steps {
            step.offer = Some(Offer::default());
        }
        self
    }

    /// Every step of the first campaign offers `tier` to returners and others alike.
    fn offering_tier(mut self, tier: Tier) -> Self {
        for step in &mut self.campaigns[0].steps {
            step.offer = Some(Offer { recovery: tier.clone(), standard: tier.clone() });
        }
        self
    }

    fn returned_at(mut self, at: DateTime<Utc>) -> Self {
        self.customer.as_mut().expect("known customer").returns.push(at);
        self
    }
}

/// The voucher choice of a decision that sends the step (the message goes
/// out with or without a voucher).
#[track_caller]
fn sent_voucher(d: &Decision) -> &VoucherChoice {
    match d {
        Decision::Send { voucher, reason, .. } => {
            assert_eq!(reason.code, ReasonCode::Sent, "the message goes out in every voucher case");
            voucher
        }
        other => panic!("expected a send, got {other:?}"),
    }
}

/// The terms and reason of a voucher to issue.
#[track_caller]
fn assert_issue(choice: &VoucherChoice) -> (&VoucherTerms, String) {
    match choice {
        VoucherChoice::Issue { terms, expires_after_seconds, reason } => {
            assert_eq!(reason.code, ReasonCode::VoucherOffered);
            assert_eq!(*expires_after_seconds, days(7).num_seconds(), "expires_after defaults to 7 days");
            (terms, reason.message.clone())
        }
        other => panic!("expected a voucher issued, got {other:?}"),
    }
}

#[track_caller]
fn assert_withheld(choice: &VoucherChoice, code: ReasonCode) -> String {
    match choice {
        VoucherChoice::Withheld { reason } if reason.code == code => reason.message.clone(),
        other => panic!("expected no voucher with {code:?}, got {other:?}"),
    }
}

/// GIVEN the shipped default campaign (no offer in its steps)
/// WHEN a step is sent
/// THEN the decision carries no voucher and serialises without one.
#[test]
fn given_a_step_without_an_offer_when_sent_then_no_voucher_is_offered() {
    let s = Scenario::mobile();
    let d = s.decide_at(s.due());
    assert_eq!(sent_voucher(&d), &VoucherChoice::NotOffered);
    assert_eq!(d.voucher(), None);
    assert!(serde_json::to_value(&d).unwrap().get("voucher").is_none());
}

/// GIVEN a step offering 10% to returners and 5% to others
/// WHEN a customer without a return abandons a 25.00 EUR cart
/// THEN the message offers the standard tier's 5% in EUR, expiring 7 days after it.
#[test]
fn given_an_offer_and_a_customer_without_returns_when_the_step_is_sent_then_the_standard_tier_is_issued() {
    let s = Scenario::mobile().offering();
    let d = s.decide_at(s.due());
    let (terms, why) = assert_issue(sent_voucher(&d));
    assert_eq!(
        terms,
        &VoucherTerms {
            tier: TierName::Standard,
            discount: Discount::PercentOff { percent: percent("5"), max_amount: None },
            currency: "EUR".into(),
            min_cart_value: None,
        }
    );
    assert!(why.contains("5% off (standard tier: no return within 90 days), expiring 7 days after"), "{why}");
    assert_eq!(d.voucher().and_then(VoucherChoice::reason).map(|r| r.code), Some(ReasonCode::VoucherOffered));
}

/// GIVEN a guest (no profile: no returns, no promotions on record)
/// WHEN the step with the seed's offer is sent
/// THEN the guest gets the standard tier.
#[test]
fn given_a_guest_when_the_step_with_an_offer_is_sent_then_the_standard_tier_is_issued() {
    let s = Scenario::mobile().offering().guest(full_contact());
    let d = s.decide_at(s.due());
    assert_eq!(assert_issue(sent_voucher(&d)).0.tier, TierName::Standard);
}

/// GIVEN a campaign whose first step offers a voucher and whose second does not
/// WHEN the second step is sent
/// THEN it shows none: the step's offer decides, not the cart's earlier voucher.
#[test]
fn given_a_step_without_an_offer_after_one_with_when_sent_then_it_shows_no_voucher() {
    let mut s = Scenario::mobile().offering();
    s.campaigns[0].steps[1].offer = None;
    let due = s.due();
    s.send_at(due);
    s.vouchers.push(issued_voucher("c1", "CB-7KQ4-M9XD-2PWE", due, VoucherStatus::Issued));
    assert_eq!(sent_voucher(&s.decide_at(due + hours(24))), &VoucherChoice::NotOffered);
}

/// GIVEN a customer with a return 30 days ago (and one with a return 100 days ago)
/// WHEN the step with the seed's offer is sent
/// THEN the first gets the recovery tier's 10%, the second the standard 5%;
/// with `vouchers.returned_window = 120d` the second is a returner too.
#[test]
fn given_a_return_within_the_returned_window_when_the_step_is_sent_then_the_recovery_tier_is_issued() {
    let s = Scenario::mobile().offering().returned_at(t0() - days(30));
    let d = s.decide_at(s.due());
    let (terms, why) = assert_issue(sent_voucher(&d));
    assert_eq!(terms.tier, TierName::Recovery);
    assert_eq!(terms.discount, Discount::PercentOff { percent: percent("10"), max_amount: None });
    assert!(why.contains("10% off (recovery tier: a return within 90 days)"), "{why}");

    let mut s = Scenario::mobile().offering().returned_at(t0() - days(100));
    assert_eq!(assert_issue(sent_voucher(&s.decide_at(s.due()))).0.tier, TierName::Standard);
    s.campaigns[0].vouchers.returned_window = days(120);
    assert_eq!(assert_issue(sent_voucher(&s.decide_at(s.due()))).0.tier, TierName::Recovery);
}

/// GIVEN a campaign for the `returned_recently` segment with `vouchers.returned_window = 120d`
/// WHEN a customer who returned something 100 days ago abandons a cart
/// THEN the campaign matches: the window is the campaign's setting, not a constant.
#[test]
fn given_a_longer_returned_window_when_the_segment_filter_applies_then_it_uses_the_setting() {
    let mut c = field_campaign();
    c.entry.segment = Some(Segment::ReturnedRecently);
    let mut s = Scenario::mobile().with_campaigns(vec![c]).returned_at(t0() - days(100));
    assert_stop(&s.decide_at(s.due()), ReasonCode::NoMatchingCampaign);
    s.campaigns[0].vouchers.returned_window = days(120);
    assert_send(&s.decide_at(s.due()), 0, Push);
}

/// GIVEN a held-out customer and a step with an offer
/// WHEN the step falls due
/// THEN it is held out with no voucher and the reason held_out.
#[test]
fn given_a_held_out_customer_when_a_step_with_an_offer_falls_due_then_no_voucher_is_recorded_with_held_out() {
    let s = Scenario::mobile().held_out().offering();
    let d = s.decide_at(s.due());
    assert_held_out(&d, 0, Push);
    let why = assert_withheld(d.voucher().expect("a voucher choice"), ReasonCode::HeldOut);
    assert_eq!(why, "No voucher: held-out customers are measured without one.");
}

/// GIVEN a shadow campaign whose step offers a voucher
/// WHEN it decides on a cart
/// THEN it records the voucher it would issue, as if it were live.
#[test]
fn given_a_shadow_campaign_with_an_offer_when_it_would_send_then_it_records_the_voucher_it_would_issue() {
    let mut draft = shadow_draft();
    draft.steps[0].offer = Some(Offer::default());
    let s = Scenario::mobile().with_campaigns(vec![field_campaign(), draft]);
    match s.decide_shadow_at(t0() + mins(10)) {
        Decision::Withhold { group: Group::Shadow, voucher, .. } => {
            assert_eq!(assert_issue(&voucher).0.tier, TierName::Standard);
        }
        other => panic!("expected the shadow's would-send, got {other:?}"),
    }
}

/// GIVEN a cart whose first step showed its voucher
/// WHEN the second step is sent
/// THEN it shows the same code again, and the sentence does not print it.
#[test]
fn given_the_carts_own_voucher_when_the_next_step_is_sent_then_the_same_code_is_shown_again() {
    let mut s = Scenario::mobile().offering();
    let due = s.due();
    assert_issue(sent_voucher(&s.decide_at(due)));
    s.send_at(due);
    s.vouchers.push(issued_voucher("c1", "CB-7KQ4-M9XD-2PWE", due, VoucherStatus::Issued));
    let d = s.decide_at(due + hours(24));
    match sent_voucher(&d) {
        VoucherChoice::Reuse { code, reason } => {
            assert_eq!(code.as_str(), "CB-7KQ4-M9XD-2PWE");
            assert_eq!(reason.code, ReasonCode::VoucherOffered);
            assert!(reason.message.contains("(standard tier, 5% off), first shown in step 1"), "{}", reason.message);
            assert!(!reason.message.contains("2PWE"), "the code is a credential: {}", reason.message);
        }
        other => panic!("expected the cart's voucher again, got {other:?}"),
    }
}

/// GIVEN the cart's voucher revoked, redeemed, or expired
/// WHEN the next step is sent
/// THEN it goes out without a voucher (voucher_not_applicable, saying which), and no new one is issued.
#[test]
fn given_the_carts_voucher_revoked_redeemed_or_expired_when_the_next_step_is_sent_then_none_is_shown() {
    let mut s = Scenario::mobile().offering();
    let due = s.due();
    s.send_at(due);
    let next = due + hours(24);
    for (status, issued_at, said) in [
        (VoucherStatus::Revoked { at: due + hours(1) }, due, "was revoked at"),
        (VoucherStatus::Redeemed { order_id: "o1".into(), at: due + hours(2), discount: None }, due, "was redeemed"),
        (VoucherStatus::Issued, next - days(7), "expired at"),
    ] {
        s.vouchers = vec![issued_voucher("c1", "CB-7KQ4-M9XD-2PWE", issued_at, status)];
        let why = assert_withheld(sent_voucher(&s.decide_at(next)), ReasonCode::VoucherNotApplicable);
        assert!(why.contains(said) && why.contains("no new one is issued"), "{why}");
        assert!(!why.contains("2PWE"), "{why}");
    }
}

/// GIVEN a customer who redeemed a promotion 10 days ago (and one 31 days ago)
/// WHEN the step with an offer is sent
/// THEN the first message goes out without a voucher (recent_promotion); the second offers one.
#[test]
fn given_a_promotion_redeemed_within_30_days_when_the_step_is_sent_then_no_voucher_with_recent_promotion() {
    let mut s = Scenario::mobile().offering();
    let due = s.due();
    s.customer.as_mut().unwrap().promotions_redeemed = vec![due - days(10)];
    let why = assert_withheld(sent_voucher(&s.decide_at(due)), ReasonCode::RecentPromotion);
    assert!(why.contains("redeemed a promotion at") && why.contains("within 30 days"), "{why}");
    s.customer.as_mut().unwrap().promotions_redeemed = vec![due - days(31)];
    assert_issue(sent_voucher(&s.decide_at(due)));
    s.campaigns[0].vouchers.recent_promotion_window = days(45);
    assert_withheld(sent_voucher(&s.decide_at(due)), ReasonCode::RecentPromotion);
}

/// GIVEN a voucher issued to the customer for another cart 10 days ago
/// WHEN this cart's step with an offer is sent
/// THEN it goes out without a voucher (voucher_cap); a voucher 31 days old
/// or a revoked one does not count.
#[test]
fn given_a_voucher_for_another_cart_within_the_cap_window_when_the_step_is_sent_then_no_voucher_with_voucher_cap() {
    let mut s = Scenario::mobile().offering();
    let due = s.due();
    s.vouchers = vec![issued_voucher("c0", "CB-2222-3333-4444", due - days(10), VoucherStatus::Issued)];
    let why = assert_withheld(sent_voucher(&s.decide_at(due)), ReasonCode::VoucherCap);
    assert!(why.contains("for another cart at") && why.contains("within 30 days"), "{why}");
    s.vouchers[0].issued_at = due - days(31);
    assert_issue(sent_voucher(&s.decide_at(due)));
    s.vouchers[0].issued_at = due - days(10);
    s.vouchers[0].status = VoucherStatus::Revoked { at: due - days(9) };
    assert_issue(sent_voucher(&s.decide_at(due)));
}

/// GIVEN tiers of each kind, with limits per currency
/// WHEN a 25.00 EUR cart's step is sent
/// THEN the terms are resolved in EUR: an amount, free shipping, a capped
/// percentage, and a minimum the cart meets.
#[test]
fn given_tiers_of_each_kind_when_resolved_in_the_carts_currency_then_the_terms_are_the_currencys() {
    let eur = |amount: &str| std::collections::BTreeMap::from([("EUR".to_owned(), percent(amount))]);
    let amount = Tier { amount_off: eur("5.00"), min_cart_value: eur("20"), ..Tier::default() };
    let s = Scenario::mobile().offering_tier(amount);
    let d = s.decide_at(s.due());
    let (terms, why) = assert_issue(sent_voucher(&d));
    assert_eq!(terms.discount, Discount::AmountOff { amount: percent("5.00") });
    assert_eq!(terms.min_cart_value, Some(percent("20")));
    assert!(why.contains("5.00 EUR off, on orders of 20.00 EUR or more"), "{why}");

    let free = Tier { free_shipping: true, ..Tier::default() };
    let s = Scenario::mobile().offering_tier(free);
    assert_eq!(assert_issue(sent_voucher(&s.decide_at(s.due()))).0.discount, Discount::FreeShipping);

    let capped = Tier { max_discount: eur("2.00"), ..Tier::percent(15) };
    let s = Scenario::mobile().offering_tier(capped);
    let d = s.decide_at(s.due());
    let (terms, why) = assert_issue(sent_voucher(&d));
    assert_eq!(terms.discount, Discount::PercentOff { percent: percent("15"), max_amount: Some(percent("2.00")) });
    assert!(why.contains("15% off (at most 2.00 EUR)"), "{why}");
}

/// GIVEN a cart without prices, a tier with an amount in USD only, and a
/// tier whose minimum is above the cart's 25.00 EUR
/// WHEN the step is sent
/// THEN it goes out without a voucher (voucher_not_applicable), saying which.
#[test]
fn given_a_tier_that_does_not_apply_to_the_cart_when_the_step_is_sent_then_no_voucher_says_why() {
    let money =
        |currency: &str, amount: &str| std::collections::BTreeMap::from([(currency.to_owned(), percent(amount))]);
    let mut s = Scenario::mobile().offering();
    s.cart.items[0].price = None;
    let why = assert_withheld(sent_voucher(&s.decide_at(s.due())), ReasonCode::VoucherNotApplicable);
    assert!(why.contains("the cart's items have no prices"), "{why}");

    let s = Scenario::mobile().offering_tier(Tier { amount_off: money("USD", "5"), ..Tier::default() });
    let why = assert_withheld(sent_voucher(&s.decide_at(s.due())), ReasonCode::VoucherNotApplicable);
    assert_eq!(why, "No voucher: the standard tier has no amount_off in EUR.");

    let s = Scenario::mobile().offering_tier(Tier { min_cart_value: money("EUR", "30"), ..Tier::percent(10) });
    let why = assert_withheld(sent_voucher(&s.decide_at(s.due())), ReasonCode::VoucherNotApplicable);
    assert_eq!(why, "No voucher: the cart's subtotal 25.00 EUR is below the standard tier's minimum 30.00 EUR.");
    let s = Scenario::mobile().offering_tier(Tier { min_cart_value: money("USD", "30"), ..Tier::percent(10) });
    assert_eq!(assert_issue(sent_voucher(&s.decide_at(s.due()))).0.min_cart_value, None, "no minimum in EUR");
}

/// GIVEN an experiment whose variant "rich" offers 15% to returners on step 1
/// WHEN a returner in each variant abandons a cart
/// THEN the control gets the campaign's 10% and the variant its own 15%.
#[test]
fn given_an_experiment_that_overrides_the_offer_when_each_variant_is_sent_then_its_own_offer_applies() {
    let mut c = field_campaign();
    c.steps[0].offer = Some(Offer::default());
    let rich = Offer { recovery: Tier::percent(15), ..Offer::default() };
    c.experiment = Some(Experiment {
        id: "offers".into(),
        variants: vec![
            Variant { name: "seed".into(), weight: 1, steps: vec![] },
            Variant {
                name: "rich".into(),
                weight: 1,
                steps: vec![StepOverride { offer: Some(rich), ..StepOverride::default() }],
            },
        ],
        control: None,
    });
    assert_eq!(c.validate(), Ok(()));
    let mut s = Scenario::mobile().with_campaigns(vec![c]).returned_at(t0() - days(5));
    for (variant, off) in [(0, "10"), (1, "15")] {
        let id = customer_in(|key| assign_variant("offers", &[1, 1], key) == Some(variant));
        s.cart.customer_id = Some(id.as_str().into());
        let d = s.decide_at(s.due());
        let (terms, _) = assert_issue(sent_voucher(&d));
        assert_eq!(terms.discount, Discount::PercentOff { percent: percent(off), max_amount: None }, "{variant}");
    }
}

/// Every reason code in `reason.rs`, kept exhaustive by the match below: a
/// new code fails to compile here until a scenario produces it.
fn all_codes() -> BTreeSet<ReasonCode> {
    use ReasonCode::*;
    let guard = |c: ReasonCode| match c {
        WaitingForInactivity
        | WaitingForNextStep
        | QuietHoursDeferred
        | Sent
        | NoConsent
        | NoReachableChannel
        | EntryCooldown
        | PushCapReached
        | SmsCapReached
        | SmsWindowClosed
        | RecentPurchase
        | Purchased
        | CartEmptied
        | NothingInCart
        | CampaignDisabled
        | NoMatchingCampaign
        | Engaged
        | SequenceCompleted
        | StepTooLate
        | HeldOut
        | ShadowWouldSend
        | Unsubscribed
        | Snoozed
        | AlreadyBought
        | ExplicitConsentRequired
        | VoucherOffered
        | RecentPromotion
        | VoucherCap
        | VoucherNotApplicable => c,
        // The checker's, not the engine's: a message composed from the
        // shipped default (tests/tests/checker_render.rs), an SMS over its
        // segment cap (the checker's unit tests); not listed below.
        TemplateFallback | SmsTooLong => c,
    };
    [
        WaitingForInactivity,
        WaitingForNextStep,
        QuietHoursDeferred,
        Sent,
        NoConsent,
        NoReachableChannel,
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
        StepTooLate,
        HeldOut,
        ShadowWouldSend,
        Unsubscribed,
        Snoozed,
        AlreadyBought,
        ExplicitConsentRequired,
        VoucherOffered,
        RecentPromotion,
        VoucherCap,
        VoucherNotApplicable,
    ]
    .into_iter()
    .map(guard)
    .collect()
}

#[test]
fn given_one_scenario_per_rule_when_decided_then_every_reason_code_is_produced() {
    let mut seen = BTreeSet::new();
    // A decision's own reason, and its voucher choice's.
    let mut note = |d: Decision| {
        seen.insert(d.reason().code);
        seen.extend(d.voucher().and_then(VoucherChoice::reason).map(|r| r.code));
    };
    let s = Scenario::mobile();
    note(s.decide_at(t0()));
    note(s.decide_at(s.due()));
    note(sms_due_at(t("2026-06-10T20:00:00Z")).decide_at(t("2026-06-10T20:00:00Z")));
    let mut s = Scenario::mobile();
    s.send_at(s.due());
    note(s.decide_at(s.due()));
    let due = s.due();
    s.history.last_mut().unwrap().engagement.add(EngagementLabel::HumanClick, due);
    note(s.decide_at(s.due() + days(1)));
    s.history.last_mut().unwrap().engagement = Engagement::default();
    s.send_at(s.due() + days(1));
    note(s.decide_at(s.due() + days(2)));
    s.campaigns[0].enabled = false;
    note(s.decide_at(s.due() + days(2)));
    let mut s = Scenario::mobile();
    s.contact().consents = None;
    note(s.decide_at(s.due()));
    s.contact().push_tokens = None;
    s.contact().email = None;
    s.contact().phone = None;
    note(s.decide_at(s.due()));
    let mut s = Scenario::mobile();
    s.history.push(message("c0", 0, Email, s.due() - days(1)));
    note(s.decide_at(s.due()));
    note(
        with_two_old_pushes(Scenario::mobile().with_campaigns(vec![only("push", &[Push])])).decide_at(t0() + mins(30)),
    );
    let mut s = Scenario::mobile().with_campaigns(vec![sms_follow_up(hours(24), &[Sms])]);
    s.send_at(s.due());
    note(s.decide_at(s.due() + hours(24)));
    let mut s = Scenario::mobile().with_campaigns(vec![sms_follow_up(hours(49), &[Sms])]);
    s.campaigns[0].steps[0].channels = ChannelOrder { mobile: vec![Email], desktop: vec![Email] };
    s.send_at(s.due());
    note(s.decide_at(s.due() + hours(49)));
    let mut s = Scenario::mobile();
    s.customer.as_mut().unwrap().purchases = vec![t0()];
    note(s.decide_at(s.due()));
    for status in [CartStatus::Converted, CartStatus::Emptied, CartStatus::Browsing] {
        let mut s = Scenario::mobile();
        s.cart.status = status;
        note(s.decide_at(s.due()));
    }
    let mut s = Scenario::mobile();
    s.cart.items_viewed = 0;
    s.campaigns[0].entry.min_items_viewed = Some(1);
    note(s.decide_at(s.due()));
    let s = Scenario::mobile();
    note(s.decide_at(s.due() + days(3)));
    let s = Scenario::mobile().held_out();
    note(s.decide_at(s.due()));
    let s = Scenario::mobile().with_campaigns(vec![field_campaign(), shadow_draft()]);
    note(s.decide_shadow_at(s.due()));
    let mut s = Scenario::mobile();
    s.cart.answers.push(answer(AnswerReason::AlreadyBought));
    note(s.decide_at(s.due()));
    let mut s = Scenario::mobile();
    s.contact().snoozed_until = Some(s.due() + days(1));
    note(s.decide_at(s.due()));
    let email_only = Scenario::desktop().with_campaigns(vec![only("email", &[Email])]);
    let s = email_only.email_withdrawn_by(ConsentSource::UnsubscribeLink);
    note(s.decide_at(s.due()));
    let s = paris_guest(None);
    note(s.decide_at(s.due()));
    // Vouchers: offered, withheld after a promotion, capped, not applicable.
    let mut s = Scenario::mobile().offering();
    note(s.decide_at(s.due()));
    s.customer.as_mut().unwrap().promotions_redeemed = vec![s.due() - days(1)];
    note(s.decide_at(s.due()));
    let mut s = Scenario::mobile().offering();
    s.vouchers = vec![issued_voucher("c0", "CB-2222-3333-4444", s.due() - days(1), VoucherStatus::Issued)];
    note(s.decide_at(s.due()));
    let mut s = Scenario::mobile().offering();
    s.cart.items[0].price = None;
    note(s.decide_at(s.due()));
    assert_eq!(seen, all_codes(), "missing: {:?}", all_codes().difference(&seen).collect::<Vec<_>>());
}

// ------------------------------------------------------------ webhook channel

/// A one-step campaign posting to target `crm` after `before` fails.
fn to_crm(before: &[Channel]) -> Campaign {
    let mut order = before.to_vec();
    order.push(Channel::Webhook);
    let mut c = only("crm", &order);
    c.steps[0].webhook = Some(crate::webhook::WebhookTargetName::parse("crm").unwrap());
    c
}

#[test]
fn given_a_step_naming_the_webhook_when_the_customer_gave_no_consent_then_it_posts_to_the_steps_target() {
    // GIVEN a customer with no channel consent at all, and a step by webhook to `crm`
    let mut s = Scenario::desktop().with_campaigns(vec![to_crm(&[])]);
    *s.consents() = ConsentPatch::default();
    // WHEN the step is due
    let decision = s.decide_at(s.due());
    // THEN it goes by webhook to `crm`: the shop's own system needs no channel consent
    let why = assert_send(&decision, 0, Channel::Webhook);
    assert!(why.contains("by webhook"), "{why}");
    let Decision::Send { to, .. } = decision else { unreachable!() };
    assert_eq!(to, Recipient::Webhook(crate::webhook::WebhookTargetName::parse("crm").unwrap()));
}

#[test]
fn given_email_unsubscribed_and_the_webhook_next_when_the_step_is_due_then_the_webhook_carries_it() {
    // GIVEN email withdrawn by the link, other channels still consented, then the webhook
    let s =
        Scenario::desktop().with_campaigns(vec![to_crm(&[Email])]).email_withdrawn_by(ConsentSource::UnsubscribeLink);
    // WHEN due THEN the webhook carries the step and the timeline names the skipped email
    let why = assert_send(&s.decide_at(s.due()), 0, Channel::Webhook);
    assert!(why.contains("email: unsubscribed by the customer (unsubscribe_link)"), "{why}");
}

#[test]
fn given_a_customer_who_unsubscribed_from_everything_when_the_step_names_the_webhook_then_it_stops_as_unsubscribed() {
    // GIVEN a customer who stopped every channel on the preference page
    let mut s = Scenario::desktop().with_campaigns(vec![to_crm(&[])]);
    for channel in Channel::PERSONAL {
        s.customer.as_mut().unwrap().consent_history.push(change(channel, false, ConsentSource::PreferencePage, t0()));
    }
    *s.consents() = ConsentPatch {
        email: Some(false),
        sms: Some(false),
        push: Some(false),
        web_push: Some(false),
        source: Some(ConsentSource::PreferencePage),
        ..Default::default()
    };
    // WHEN due THEN no reminder goes through the shop's system either
    let why = assert_stop(&s.decide_at(s.due()), ReasonCode::Unsubscribed);
    assert!(why.contains("webhook: unsubscribed by the customer from every channel"), "{why}");
}

#[test]
fn given_a_runtime_without_the_webhook_channel_when_the_step_names_it_then_it_is_skipped_as_not_delivered() {
    let mut s = Scenario::desktop().with_campaigns(vec![to_crm(&[])]);
    s.channels = Channel::PERSONAL.to_vec();
    let why = assert_stop(&s.decide_at(s.due()), ReasonCode::NoReachableChannel);
    assert!(why.contains("webhook: not delivered by this runtime"), "{why}");
}
