//! The port contract suite: what every runtime's storage and scheduler
//! adapters must do, written once against the port traits and run against
//! each adapter set (SQLite in `tests/contract_local.rs`, DynamoDB and
//! EventBridge Scheduler on the moto emulator in `tests/contract_aws.rs`).
//!
//! Each check is a `pub async fn(&Adapters)` that panics on a broken
//! contract. Checks use fresh, unique ids, so they can share one table (a
//! long-lived emulator) and run concurrently. The [`contract_suite!`] macro
//! turns every check into a `#[tokio::test]` named as a specification, so a
//! new check added here runs against every adapter set at once:
//!
//! ```ignore
//! async fn adapters() -> cartback_tests::contract::Adapters { ... }
//! cartback_tests::contract_suite!(adapters);
//! ```
//!
//! [`contract_suite!`]: crate::contract_suite

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use cartback_core::campaign::{Campaign, Region};
use cartback_core::customer::Customer;
use cartback_core::engagement::{EngagementLabel, Tally};
use cartback_core::engine::{Progress, StepDispatched};
use cartback_core::event::{ConsentPatch, CustomerPatch, Device, Event, EventType, Item, PushPlatform, PushToken};
use cartback_core::ids::{CartId, CustomerId, CustomerKey, MessageId};
use cartback_core::measure::facts::{Fact, FactKind};
use cartback_core::message::{Channel, MessageJob, MessageRecord, MessageStatus};
use cartback_core::ports::TimelineKind;
use cartback_core::ports::{
    CampaignStore, CartRecord, Claim, Clock, CommitOutcome, CreateOutcome, EventCommit, JobQueue, PortError,
    ReservedSend, SaveOutcome, Scheduler, SendLedger, SettleOutcome, StateStore, SystemClock, TemplateStore,
    TimelineEntry, TimerPayload,
};
use cartback_core::service::{CampaignCache, Checker, Ingest, Settings};
use cartback_core::signing::Secret;
use cartback_core::Decimal;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;

pub use crate::customer_contract::{customer_erasure_is_complete_and_idempotent, customer_export_holds_everything};
pub use crate::template_contract::{
    a_large_set_of_four_locales_round_trips, brand_is_absent_then_stored_and_replaced,
    templates_put_list_replace_delete,
};
pub use crate::voucher_contract::{
    a_published_voucher_keeps_its_first_publication_time,
    a_revoked_voucher_is_refused_and_a_redeemed_one_stays_redeemed, a_voucher_is_redeemed_once,
    concurrent_issues_for_one_cart_leave_one_voucher, concurrent_redemptions_let_exactly_one_through,
    owner_vouchers_are_the_owners_within_the_window_newest_first, purchases_redeem_a_voucher_once_and_reuse_is_abuse,
    vouchers_are_listed_newest_first, vouchers_are_one_per_cart_with_unique_codes,
};

/// Reads back the timers a [`Scheduler`] armed (the port itself cannot).
#[async_trait]
pub trait ArmedTimers: Send + Sync {
    /// The timers armed for this cart and not yet fired or deleted, in any order.
    async fn armed_for(&self, cart_id: &str) -> Result<Vec<TimerPayload>, String>;
}

/// One runtime's adapters under test.
pub struct Adapters {
    pub state: Arc<dyn StateStore>,
    pub campaigns: Arc<dyn CampaignStore>,
    pub templates: Arc<dyn TemplateStore>,
    pub scheduler: Arc<dyn Scheduler>,
    pub timers: Arc<dyn ArmedTimers>,
    /// Whatever must live as long as the test (a temporary folder, an
    /// emulator handle).
    pub keep_alive: Option<Box<dyn Any + Send + Sync>>,
}

/// Runs every check of the suite as its own test against the adapters that
/// `$setup` (an `async fn() -> Adapters` in scope) builds.
#[macro_export]
macro_rules! contract_suite {
    ($setup:path) => {
        $crate::contract_suite!(@tests $setup;
            given_a_new_cart_and_customer_when_an_event_is_committed_then_cart_customer_timeline_and_dedupe_are_written => commit_event_applies,
            given_a_committed_event_id_when_it_is_committed_again_then_it_is_a_duplicate_and_nothing_is_written => duplicate_event_writes_nothing,
            given_a_commit_of_only_an_id_when_looked_up_then_it_is_seen_and_a_repeat_is_a_duplicate => event_seen_after_a_bare_commit,
            given_a_stale_cart_version_when_an_event_is_committed_then_it_conflicts_and_nothing_is_written => cart_version_conflict_writes_nothing,
            given_a_stale_customer_version_when_an_event_is_committed_then_it_conflicts_and_not_even_the_cart_is_written => customer_version_conflict_writes_nothing,
            given_a_cart_with_rich_events_and_progress_when_stored_then_it_reads_back_exactly => cart_round_trips_exactly,
            given_a_stored_cart_when_saved_with_a_stale_version_then_the_save_is_refused => save_cart_conflict,
            given_a_customer_when_committed_and_updated_then_it_reads_back_with_its_version => customer_round_trip_and_version,
            given_timeline_entries_in_any_order_when_read_then_they_come_oldest_first => timeline_oldest_first,
            given_a_message_record_when_created_twice_then_the_second_create_changes_nothing => create_message_idempotent,
            given_a_queued_message_when_many_senders_claim_it_at_once_then_exactly_one_wins => concurrent_claims_exactly_one,
            given_a_claimed_message_when_its_lease_ends_then_a_second_sender_can_claim_it => lease_expiry_lets_a_second_claimer_in,
            given_a_claim_ended_before_any_provider_call_when_claimed_again_then_it_is_a_fresh_claim => lease_expiry_before_the_provider_call_starts_afresh,
            given_a_message_handed_back_to_queued_when_claimed_then_it_is_claimed_again => queued_again_is_claimable,
            given_a_claim_holder_when_it_settles_then_the_status_is_written_once => settle_by_the_holder_writes,
            given_a_sender_whose_lease_was_taken_over_when_it_settles_then_the_later_claimants_status_stands => settle_after_takeover_loses,
            given_a_claim_handed_back_and_claimed_again_when_the_first_holder_settles_then_nothing_is_written => settle_after_release_and_reclaim_loses,
            given_a_message_recorded_unknown_when_two_reports_settle_it_then_only_the_first_writes => unknown_is_reconciled_once,
            given_a_settle_made_twice_when_the_second_finds_its_own_write_then_it_is_settled => repeated_settle_finds_its_own_write,
            given_a_sent_message_when_claimed_then_it_is_already_sent => sent_is_already_sent,
            given_a_rejected_or_cancelled_message_when_claimed_then_it_is_closed => rejected_and_cancelled_are_closed,
            given_an_unknown_message_when_claimed_then_it_is_not_found => unknown_message_not_found,
            given_two_engagements_when_recorded_then_the_first_time_is_kept => record_engagement_keeps_first,
            given_one_link_when_clicked_a_thousand_times_then_what_is_stored_stays_bounded
                => link_clicked_a_thousand_times_writes_a_bounded_amount,
            given_messages_to_several_customers_when_listed_for_one_since_a_time_then_only_theirs_from_then_are_returned => customer_messages_filter_by_key_and_since,
            given_a_customer_named_like_a_guest_cart_when_both_get_messages_then_their_histories_stay_apart
                => customer_messages_keep_a_customer_named_like_a_guest_cart_apart,
            given_campaigns_when_put_and_replaced_then_list_returns_each_once_in_its_latest_form => campaigns_put_list_replace,
            given_the_same_cart_and_time_when_armed_twice_then_one_timer_is_armed => scheduler_arm_is_idempotent,
            given_inputs_past_a_storage_bound_when_ingested_then_each_is_refused_naming_the_same_field
                => ingest_refuses_storage_bound_breakers_by_field,
            given_a_cart_filled_to_its_bound_and_a_purchase_when_ingested_then_the_store_takes_every_accepted_write
                => full_cart_fits_the_store,
            given_a_send_ledger_when_saved_then_it_reads_back_and_only_its_current_version_may_replace_it
                => send_ledger_versioned_replace,
            given_many_writers_of_one_new_ledger_at_once_when_they_save_then_exactly_one_wins
                => send_ledger_concurrent_create_exactly_one,
            given_two_checkers_for_two_carts_of_one_customer_with_a_cap_of_one_when_run_together_then_one_message_goes
                => concurrent_checkers_keep_the_customer_cap,
            given_a_fact_recorded_again_or_late_with_other_content_when_recorded_then_the_first_alone_is_kept
                => fact_with_the_same_id_is_recorded_once,
            given_facts_at_the_edges_of_a_window_when_read_then_the_days_from_and_to_are_included_and_no_others
                => facts_are_read_by_inclusive_utc_days,
            given_an_order_fact_recorded_twice_when_read_by_its_id_then_the_first_copy_comes_back_and_an_unknown_id_finds_nothing
                => fact_is_found_by_its_id,
            given_1500_facts_on_one_day_when_read_then_every_one_comes_back_once_across_partitions_and_pages
                => many_facts_on_one_day_come_back_complete,
            given_two_purchase_events_for_one_order_when_ingested_then_one_order_fact_is_stored
                => one_order_reported_by_two_purchase_events_is_one_fact,
            given_a_customers_data_when_exported_then_all_of_it_and_nothing_else_comes_back
                => customer_export_holds_everything,
            given_a_customers_data_when_erased_then_only_anonymous_facts_remain_and_erasing_again_finds_nothing
                => customer_erasure_is_complete_and_idempotent,
            given_a_voucher_when_issued_again_for_its_cart_or_code_then_the_cart_keeps_one_and_the_code_is_taken
                => vouchers_are_one_per_cart_with_unique_codes,
            given_an_owners_vouchers_when_read_since_a_time_then_only_theirs_from_then_come_newest_first
                => owner_vouchers_are_the_owners_within_the_window_newest_first,
            given_a_voucher_when_redeemed_by_one_order_then_the_same_order_is_answered_and_another_refused
                => a_voucher_is_redeemed_once,
            given_a_revoked_voucher_when_redeemed_then_it_is_refused_and_a_redeemed_one_stays_redeemed
                => a_revoked_voucher_is_refused_and_a_redeemed_one_stays_redeemed,
            given_a_voucher_when_marked_published_twice_then_the_first_time_is_kept
                => a_published_voucher_keeps_its_first_publication_time,
            given_vouchers_of_several_days_when_listed_then_they_come_newest_first_up_to_the_limit
                => vouchers_are_listed_newest_first,
            given_one_voucher_when_eight_orders_redeem_it_at_once_then_exactly_one_gets_through
                => concurrent_redemptions_let_exactly_one_through,
            given_one_cart_when_eight_checkers_issue_it_a_voucher_at_once_then_one_voucher_is_stored
                => concurrent_issues_for_one_cart_leave_one_voucher,
            given_a_voucher_when_purchases_using_it_are_ingested_and_replayed_then_one_redeems_and_one_is_abuse
                => purchases_redeem_a_voucher_once_and_reuse_is_abuse,
            given_template_sets_when_put_replaced_and_deleted_then_list_returns_each_stored_one_in_its_latest_form
                => templates_put_list_replace_delete,
            given_a_set_of_four_locales_with_70_kb_of_html_each_when_stored_then_it_reads_back_exactly
                => a_large_set_of_four_locales_round_trips,
            given_a_new_store_when_a_brand_is_put_and_replaced_then_it_reads_back_as_last_put
                => brand_is_absent_then_stored_and_replaced,
            given_an_sms_short_link_when_stored_and_followed_then_it_acts_as_the_signed_link_until_it_expires
                => short_link_follows_like_the_signed_link_until_it_expires,
        );
    };
    (@tests $setup:path; $($name:ident => $check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let adapters = $setup().await;
                $crate::contract::$check(&adapters).await;
            }
        )*
    };
}

// ---------------------------------------------------------------- fixtures

/// An id no other check or run uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}-{:x}-{:x}-{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A fixed instant with nanoseconds, plus `seconds`: adapters must keep
/// times exact to the nanosecond.
pub fn t(seconds: i64) -> DateTime<Utc> {
    "2026-11-23T10:00:00.123456789Z".parse::<DateTime<Utc>>().expect("valid time") + Duration::seconds(seconds)
}

/// An event using every field an adapter has to keep.
pub fn rich_event(
    event_id: &str,
    kind: EventType,
    cart_id: &str,
    customer_id: Option<&str>,
    at: DateTime<Utc>,
) -> Event {
    Event {
        event_id: event_id.into(),
        kind,
        occurred_at: at,
        cart_id: Some(cart_id.into()),
        customer_id: customer_id.map(Into::into),
        device: Some(Device::Mobile),
        currency: Some("EUR".into()),
        items: vec![
            Item {
                item_id: "sku-1".into(),
                item_name: Some("Blue mug \u{2615} \"large\"".into()),
                // Kept through both stores (a product's option, as the shop words it).
                variant: Some("Ocean blue / 350 ml".into()),
                price: Some(Decimal::new(1250, 2)),
                quantity: 2,
                image_url: Some("https://cdn.example/mug.jpg".into()),
                url: Some("https://shop.example/mug?a=1&b=2".into()),
            },
            Item {
                item_id: "sku-2".into(),
                item_name: None,
                variant: None,
                price: Some(Decimal::new(19999, 3)),
                quantity: 1,
                image_url: None,
                url: None,
            },
        ],
        order_id: None,
        value: None,
        coupon: None,
        customer: Some(CustomerPatch {
            email: Some("ana@example.com".into()),
            phone: Some("+33612345678".into()),
            first_name: Some("Ana".into()),
            locale: Some("fr-FR".into()),
            timezone: Some("Europe/Paris".into()),
            consents: Some(ConsentPatch {
                email: Some(true),
                sms: Some(false),
                push: None,
                web_push: Some(true),
                ..Default::default()
            }),
            push_tokens: Some(vec![PushToken { platform: PushPlatform::Apns, token: "apns-token".into() }]),
            web_push_subscription: Some(
                json!({"endpoint": "https://push.example/sub", "keys": {"p256dh": "k", "auth": "a"}}).into(),
            ),
            snoozed_until: None,
        }),
        answer: None,
    }
}

pub fn cart_with(cart_id: &str, events: Vec<Event>, now: DateTime<Utc>) -> CartRecord {
    let mut record = CartRecord::new(cart_id, now);
    record.events = events;
    record
}

fn timeline_entry(at: DateTime<Utc>, code: &str) -> TimelineEntry {
    TimelineEntry {
        at,
        kind: TimelineKind::Event,
        code: code.into(),
        message: format!("{code} happened"),
        details: json!({ "code": code }),
    }
}

fn commit(
    event_id: &str,
    cart: Option<CartRecord>,
    customer: Option<(Customer, u64)>,
    timeline: Option<TimelineEntry>,
) -> EventCommit {
    EventCommit { event_id: event_id.into(), received_at: t(0), cart, customer, timeline }
}

pub fn message(
    cart_id: &str,
    customer_key: &str,
    step: u32,
    channel: Channel,
    decided_at: DateTime<Utc>,
) -> MessageRecord {
    MessageRecord {
        message_id: unique("m").into(),
        cart_id: cart_id.into(),
        customer_key: CustomerKey::Customer(customer_key.into()),
        campaign_id: "default".into(),
        step,
        channel,
        decided_at,
        status: MessageStatus::Queued,
        engagement: Default::default(),
        variant: None,
    }
}

/// Stores a fresh cart (version 1) with one event and returns it as read back.
async fn stored_cart(a: &Adapters) -> CartRecord {
    let cart_id: CartId = unique("cart").into();
    let event = rich_event(&unique("e"), EventType::AddToCart, &cart_id, None, t(0));
    let outcome = a
        .state
        .commit_event(commit(&unique("e"), Some(cart_with(&cart_id, vec![event], t(0))), None, None))
        .await
        .unwrap();
    assert_eq!(outcome, CommitOutcome::Applied);
    a.state.get_cart(&cart_id).await.unwrap().expect("stored cart")
}

/// The secret the [`link_app`] signs and checks links with.
pub fn link_secret() -> cartback_core::signing::Secret {
    cartback_core::signing::Secret::new(b"contract-suite-link-secret-0123456789".to_vec()).unwrap()
}

/// The HTTP application of both runtimes over these adapters, on `clock`.
pub fn link_app(a: &Adapters, clock: Arc<cartback_local::testing::ManualClock>) -> axum::Router {
    use cartback_core::service::{CampaignCache, Ingest, Settings};
    let campaigns = Arc::new(CampaignCache::new(a.campaigns.clone(), clock.clone(), Duration::seconds(60)));
    let settings = Settings::new(link_secret(), "http://localhost", "https://shop.example.com/{cart_id}?t={token}");
    let api = cartback_core::api::Api {
        ingest: Ingest { store: a.state.clone(), scheduler: a.scheduler.clone(), campaigns, clock: clock.clone() },
        store: a.state.clone(),
        clock: clock.clone(),
        wall_clock: clock,
        settings: Arc::new(settings),
        accept_v1_signatures: false,
        templates: a.templates.clone(),
    };
    cartback_http::router(Arc::new(api))
}

async fn stored_message(a: &Adapters) -> MessageRecord {
    let record = message(&unique("cart"), &unique("cust"), 0, Channel::Email, t(0));
    assert_eq!(a.state.create_message(&record).await.unwrap(), CreateOutcome::Created);
    record
}

// ---------------------------------------------------------------- commit_event

pub async fn commit_event_applies(a: &Adapters) {
    let (cart_id, customer_id, event_id): (CartId, CustomerId, String) =
        (unique("cart").into(), unique("cust").into(), unique("e"));
    let event = rich_event(&event_id, EventType::AddToCart, &cart_id, Some(&customer_id), t(0));
    let mut customer = Customer::new(&customer_id);
    assert!(customer.apply(&event));
    let cart = cart_with(&cart_id, vec![event], t(0));
    let entry = timeline_entry(t(0), "add_to_cart");

    let outcome = a
        .state
        .commit_event(commit(&event_id, Some(cart.clone()), Some((customer.clone(), 0)), Some(entry.clone())))
        .await
        .unwrap();

    assert_eq!(outcome, CommitOutcome::Applied);
    assert_eq!(a.state.get_cart(&cart_id).await.unwrap(), Some(CartRecord { version: 1, ..cart }));
    assert_eq!(a.state.get_customer(&customer_id).await.unwrap(), Some((customer, 1)));
    assert_eq!(a.state.timeline(&cart_id).await.unwrap(), [entry]);
}

pub async fn duplicate_event_writes_nothing(a: &Adapters) {
    let first = stored_cart(a).await;
    let event_id = unique("e");
    let next = CartRecord { events: vec![], ..first.clone() };
    assert_eq!(a.state.commit_event(commit(&event_id, Some(next), None, None)).await.unwrap(), CommitOutcome::Applied);
    let after_first = a.state.get_cart(&first.cart_id).await.unwrap().unwrap();

    // The same event id again, this time carrying other writes.
    let (other_cart, other_customer): (CartId, CustomerId) = (unique("cart").into(), unique("cust").into());
    let outcome = a
        .state
        .commit_event(commit(
            &event_id,
            Some(cart_with(&other_cart, vec![], t(0))),
            Some((Customer::new(&other_customer), 0)),
            Some(timeline_entry(t(1), "dup")),
        ))
        .await
        .unwrap();

    assert_eq!(outcome, CommitOutcome::Duplicate);
    assert_eq!(a.state.get_cart(&other_cart).await.unwrap(), None);
    assert_eq!(a.state.get_customer(&other_customer).await.unwrap(), None);
    assert!(a.state.timeline(&other_cart).await.unwrap().is_empty());
    assert_eq!(a.state.get_cart(&first.cart_id).await.unwrap(), Some(after_first));
}

/// A source's delivery is recorded as a dedupe record alone (no cart, no
/// customer), and looked up before anything is fetched for a retry of it.
pub async fn event_seen_after_a_bare_commit(a: &Adapters) {
    let delivery = unique("delivery");
    assert!(!a.state.event_seen(&delivery).await.unwrap(), "not seen before its commit");
    assert_eq!(a.state.commit_event(commit(&delivery, None, None, None)).await.unwrap(), CommitOutcome::Applied);
    assert!(a.state.event_seen(&delivery).await.unwrap());
    assert_eq!(a.state.commit_event(commit(&delivery, None, None, None)).await.unwrap(), CommitOutcome::Duplicate);
    assert!(!a.state.event_seen(&unique("delivery")).await.unwrap(), "another id is not seen");
}

pub async fn cart_version_conflict_writes_nothing(a: &Adapters) {
    let stored = stored_cart(a).await;
    assert_eq!(stored.version, 1);
    let event_id = unique("e");
    let customer_id: CustomerId = unique("cust").into();
    let mut changed = stored.clone();
    changed.events.push(rich_event(&event_id, EventType::CartUpdate, &stored.cart_id, None, t(5)));

    for stale in [0, 2, 7] {
        let attempt = CartRecord { version: stale, ..changed.clone() };
        let outcome = a
            .state
            .commit_event(commit(
                &event_id,
                Some(attempt),
                Some((Customer::new(&customer_id), 0)),
                Some(timeline_entry(t(5), "cart_update")),
            ))
            .await
            .unwrap();
        assert_eq!(outcome, CommitOutcome::Conflict, "stored version 1, commit replaces {stale}");
    }

    assert_eq!(a.state.get_cart(&stored.cart_id).await.unwrap(), Some(stored.clone()));
    assert_eq!(a.state.get_customer(&customer_id).await.unwrap(), None);
    assert!(a.state.timeline(&stored.cart_id).await.unwrap().is_empty());
    // The dedupe record was not written either: the same event applies now.
    let outcome = a.state.commit_event(commit(&event_id, Some(changed.clone()), None, None)).await.unwrap();
    assert_eq!(outcome, CommitOutcome::Applied);
    assert_eq!(a.state.get_cart(&stored.cart_id).await.unwrap(), Some(CartRecord { version: 2, ..changed }));
}

pub async fn customer_version_conflict_writes_nothing(a: &Adapters) {
    let customer_id: CustomerId = unique("cust").into();
    let identify =
        Event { cart_id: None, ..rich_event(&unique("e"), EventType::Identify, "unused", Some(&customer_id), t(0)) };
    let mut customer = Customer::new(&customer_id);
    customer.apply(&identify);
    assert_eq!(
        a.state.commit_event(commit(&identify.event_id, None, Some((customer.clone(), 0)), None)).await.unwrap(),
        CommitOutcome::Applied
    );

    let cart_id: CartId = unique("cart").into();
    let event_id = unique("e");
    let new_cart = cart_with(
        &cart_id,
        vec![rich_event(&event_id, EventType::AddToCart, &cart_id, Some(&customer_id), t(1))],
        t(1),
    );
    let mut changed = customer.clone();
    changed.profile.first_name = Some("Changed".into());
    for stale in [0, 2] {
        let outcome = a
            .state
            .commit_event(commit(
                &event_id,
                Some(new_cart.clone()),
                Some((changed.clone(), stale)),
                Some(timeline_entry(t(1), "add_to_cart")),
            ))
            .await
            .unwrap();
        assert_eq!(outcome, CommitOutcome::Conflict, "stored version 1, commit replaces {stale}");
    }

    assert_eq!(a.state.get_customer(&customer_id).await.unwrap(), Some((customer, 1)));
    assert_eq!(a.state.get_cart(&cart_id).await.unwrap(), None, "the cart in the same commit was not written");
    assert!(a.state.timeline(&cart_id).await.unwrap().is_empty());
}

// ---------------------------------------------------------------- carts

pub async fn cart_round_trips_exactly(a: &Adapters) {
    let cart_id: CartId = unique("cart").into();
    let customer_id: CustomerId = unique("cust").into();
    let mut purchase = rich_event(&unique("e"), EventType::Purchase, &cart_id, Some(&customer_id), t(90));
    purchase.order_id = Some("order-1".into());
    purchase.value = Some(Decimal::new(4499, 2));
    purchase.coupon = Some("WELCOME10".into());
    purchase.customer = None;
    purchase.device = Some(Device::Desktop);
    let events = vec![
        rich_event(&unique("e"), EventType::ViewItem, &cart_id, None, t(-30)),
        rich_event(&unique("e"), EventType::AddToCart, &cart_id, Some(&customer_id), t(0) + Duration::nanoseconds(1)),
        purchase,
    ];
    let mut record = cart_with(&cart_id, events, t(-30));
    record.updated_at = t(90);
    record.timer_armed_for = Some(t(1800) + Duration::nanoseconds(7));
    record.progress = Progress {
        campaign_id: Some("default".into()),
        steps: vec![StepDispatched {
            step: 0,
            channel: Channel::Email,
            message_id: MessageRecord::id_for(&cart_id, 0, Channel::Email),
            at: t(1800),
            skipped: false,
        }],
        ..Progress::default()
    };
    record.progress.skip("default", 1, t(1800) + Duration::hours(24));

    assert_eq!(
        a.state.commit_event(commit(&unique("e"), Some(record.clone()), None, None)).await.unwrap(),
        CommitOutcome::Applied
    );

    let read = a.state.get_cart(&cart_id).await.unwrap().expect("stored");
    assert_eq!(read, CartRecord { version: 1, ..record.clone() });
    assert_eq!(read.cart(), record.cart(), "the derived state is the same too");
    assert_eq!(a.state.get_cart(&unique("cart").into()).await.unwrap(), None);
}

pub async fn save_cart_conflict(a: &Adapters) {
    let stored = stored_cart(a).await;
    let mut next = stored.clone();
    next.progress.record("default", 0, Channel::Sms, "m-1".into(), t(60));
    next.timer_armed_for = Some(t(3600));
    next.updated_at = t(60);

    assert_eq!(a.state.save_cart(&next).await.unwrap(), SaveOutcome::Saved);
    let saved = a.state.get_cart(&stored.cart_id).await.unwrap().unwrap();
    assert_eq!(saved, CartRecord { version: 2, ..next.clone() });

    let mut stale = stored.clone();
    stale.timer_armed_for = None;
    assert_eq!(a.state.save_cart(&stale).await.unwrap(), SaveOutcome::Conflict, "version 1 was replaced already");
    assert_eq!(a.state.get_cart(&stored.cart_id).await.unwrap(), Some(saved.clone()));

    assert_eq!(a.state.save_cart(&saved).await.unwrap(), SaveOutcome::Saved);
    assert_eq!(a.state.get_cart(&stored.cart_id).await.unwrap().unwrap().version, 3);
}

// ---------------------------------------------------------------- customers

pub async fn customer_round_trip_and_version(a: &Adapters) {
    let customer_id: CustomerId = unique("cust").into();
    let cart_id: CartId = unique("cart").into();
    let mut customer = Customer::new(&customer_id);
    let first = rich_event(&unique("e"), EventType::AddToCart, &cart_id, Some(&customer_id), t(0));
    customer.apply(&first);
    assert_eq!(
        a.state.commit_event(commit(&first.event_id, None, Some((customer.clone(), 0)), None)).await.unwrap(),
        CommitOutcome::Applied
    );
    assert_eq!(a.state.get_customer(&customer_id).await.unwrap(), Some((customer.clone(), 1)));

    let mut purchase = rich_event(&unique("e"), EventType::Purchase, &cart_id, Some(&customer_id), t(60));
    purchase.order_id = Some("o-1".into());
    purchase.coupon = Some("C".into());
    let mut next = customer.clone();
    next.apply(&purchase);
    assert_eq!(
        a.state.commit_event(commit(&purchase.event_id, None, Some((next.clone(), 1)), None)).await.unwrap(),
        CommitOutcome::Applied
    );
    let (read, version) = a.state.get_customer(&customer_id).await.unwrap().unwrap();
    assert_eq!((version, &read), (2, &next));
    assert_eq!(read.purchases, [t(60)]);
    assert_eq!(read.promotions_redeemed, [t(60)]);

    let outcome = a.state.commit_event(commit(&unique("e"), None, Some((customer, 1)), None)).await.unwrap();
    assert_eq!(outcome, CommitOutcome::Conflict);
    assert_eq!(a.state.get_customer(&customer_id).await.unwrap(), Some((next, 2)));
    assert_eq!(a.state.get_customer(&unique("cust").into()).await.unwrap(), None);
}

// ---------------------------------------------------------------- timeline

pub async fn timeline_oldest_first(a: &Adapters) {
    let cart_id: CartId = unique("cart").into();
    let event = rich_event(&unique("e"), EventType::AddToCart, &cart_id, None, t(5));
    let committed = timeline_entry(t(5), "add_to_cart");
    a.state
        .commit_event(commit(
            &event.event_id,
            Some(cart_with(&cart_id, vec![event.clone()], t(5))),
            None,
            Some(committed.clone()),
        ))
        .await
        .unwrap();

    let late = timeline_entry(t(10), "decision-a");
    let same_time = TimelineEntry {
        kind: TimelineKind::Decision,
        details: serde_json::Value::Null,
        ..timeline_entry(t(10), "decision-b")
    };
    let early = timeline_entry(t(1), "late-arriving-event");
    for entry in [&late, &same_time, &early] {
        a.state.append_timeline(&cart_id, entry).await.unwrap();
    }

    assert_eq!(
        a.state.timeline(&cart_id).await.unwrap(),
        [early, committed, late, same_time],
        "by time; equal times in the order written"
    );
    assert!(a.state.timeline(&unique("cart").into()).await.unwrap().is_empty());
}

// ---------------------------------------------------------------- messages

pub async fn create_message_idempotent(a: &Adapters) {
    let record = message(&unique("cart"), &unique("cust"), 1, Channel::Sms, t(0));
    assert_eq!(a.state.create_message(&record).await.unwrap(), CreateOutcome::Created);

    let mut again = record.clone();
    again.decided_at = t(60);
    again.status = MessageStatus::Sent { provider_message_id: "p".into(), at: t(60) };
    assert_eq!(a.state.create_message(&again).await.unwrap(), CreateOutcome::AlreadyExists);

    assert_eq!(a.state.get_message(&record.message_id).await.unwrap(), Some(record));
}

pub async fn concurrent_claims_exactly_one(a: &Adapters) {
    let record = stored_message(a).await;
    let claims = (0..8).map(|_| {
        let (state, id) = (a.state.clone(), record.message_id.clone());
        tokio::spawn(async move { state.claim_message(&id, t(0), t(300)).await })
    });
    let mut outcomes = Vec::new();
    for claim in claims.collect::<Vec<_>>() {
        outcomes.push(claim.await.expect("claim task").expect("claim"));
    }

    let winners: Vec<&Claim> = outcomes.iter().filter(|c| matches!(c, Claim::Claimed(_))).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|c| **c == Claim::InFlight).count(), 7, "{outcomes:?}");
    let Claim::Claimed(claimed) = winners[0] else { unreachable!() };
    assert_eq!(claimed.status, MessageStatus::Sending { lease_until: t(300), attempts: 1, provider_called: false });
    assert_eq!(a.state.get_message(&record.message_id).await.unwrap().unwrap().status, claimed.status);
}

pub async fn lease_expiry_lets_a_second_claimer_in(a: &Adapters) {
    let record = stored_message(a).await;
    let id = &record.message_id;
    let first = held(a.state.claim_message(id, t(0), t(300)).await.unwrap());
    assert_eq!(a.state.claim_message(id, t(299), t(599)).await.unwrap(), Claim::InFlight, "lease still running");
    let calling = MessageStatus::Sending { lease_until: t(300), attempts: 1, provider_called: true };
    assert_eq!(a.state.settle_message(id, &first, &calling).await.unwrap(), SettleOutcome::Settled);

    // The first sender may have reached the provider: the claim says so.
    let Claim::TakenOver(second) = a.state.claim_message(id, t(301), t(601)).await.unwrap() else {
        panic!("lease ended: claimable")
    };
    assert_eq!(second.status, MessageStatus::Sending { lease_until: t(601), attempts: 2, provider_called: true });
    assert_eq!(a.state.claim_message(id, t(302), t(602)).await.unwrap(), Claim::InFlight, "the new lease holds");

    // The second sender dies too, before settling what the first did: the
    // third must still ask the provider, not start afresh.
    let Claim::TakenOver(third) = a.state.claim_message(id, t(602), t(902)).await.unwrap() else {
        panic!("the first attempt is still unsettled")
    };
    assert_eq!(third.status, MessageStatus::Sending { lease_until: t(902), attempts: 3, provider_called: true });
}

pub async fn lease_expiry_before_the_provider_call_starts_afresh(a: &Adapters) {
    let record = stored_message(a).await;
    let id = &record.message_id;
    held(a.state.claim_message(id, t(0), t(300)).await.unwrap());

    // The first sender never marked a provider call: nothing can have gone out.
    let Claim::Claimed(second) = a.state.claim_message(id, t(301), t(601)).await.unwrap() else {
        panic!("lease ended: a fresh claim")
    };
    assert_eq!(second.status, MessageStatus::Sending { lease_until: t(601), attempts: 2, provider_called: false });
}

pub async fn queued_again_is_claimable(a: &Adapters) {
    let record = stored_message(a).await;
    let id = &record.message_id;
    assert!(matches!(a.state.claim_message(id, t(0), t(300)).await.unwrap(), Claim::Claimed(_)));
    // What delivery does after a retryable provider failure.
    a.state.set_message_status(id, &MessageStatus::Queued).await.unwrap();
    assert!(matches!(a.state.claim_message(id, t(1), t(301)).await.unwrap(), Claim::Claimed(_)));
}

fn held(claim: Claim) -> MessageStatus {
    match claim {
        Claim::Claimed(record) | Claim::TakenOver(record) => record.status,
        other => panic!("expected a claim, got {other:?}"),
    }
}

pub async fn settle_by_the_holder_writes(a: &Adapters) {
    let record = stored_message(a).await;
    let id = &record.message_id;
    let mine = held(a.state.claim_message(id, t(0), t(300)).await.unwrap());
    let sent = MessageStatus::Sent { provider_message_id: "p-1".into(), at: t(5) };
    assert_eq!(a.state.settle_message(id, &mine, &sent).await.unwrap(), SettleOutcome::Settled);
    assert_eq!(a.state.get_message(id).await.unwrap().unwrap().status, sent);
    // The claim ended with that write: a second settle on it writes nothing.
    assert_eq!(a.state.settle_message(id, &mine, &MessageStatus::Queued).await.unwrap(), SettleOutcome::ClaimLost);
    assert_eq!(a.state.get_message(id).await.unwrap().unwrap().status, sent);
}

/// The race of issue 9 item 6: A's lease runs out mid-send, B takes over
/// and records `sent`; A's late "hand back to queued" must not undo it.
pub async fn settle_after_takeover_loses(a: &Adapters) {
    let record = stored_message(a).await;
    let id = &record.message_id;
    let first = held(a.state.claim_message(id, t(0), t(300)).await.unwrap());
    let second = held(a.state.claim_message(id, t(301), t(601)).await.unwrap());
    // While B holds the claim, A can write nothing.
    let late_sent = MessageStatus::Sent { provider_message_id: "p-a".into(), at: t(302) };
    assert_eq!(a.state.settle_message(id, &first, &late_sent).await.unwrap(), SettleOutcome::ClaimLost);
    assert_eq!(a.state.get_message(id).await.unwrap().unwrap().status, second);
    let sent = MessageStatus::Sent { provider_message_id: "p-b".into(), at: t(303) };
    assert_eq!(a.state.settle_message(id, &second, &sent).await.unwrap(), SettleOutcome::Settled);
    assert_eq!(a.state.settle_message(id, &first, &MessageStatus::Queued).await.unwrap(), SettleOutcome::ClaimLost);
    assert_eq!(a.state.get_message(id).await.unwrap().unwrap().status, sent);
    assert_eq!(a.state.claim_message(id, t(400), t(700)).await.unwrap(), Claim::AlreadySent);
}

pub async fn settle_after_release_and_reclaim_loses(a: &Adapters) {
    let record = stored_message(a).await;
    let id = &record.message_id;
    let first = held(a.state.claim_message(id, t(0), t(300)).await.unwrap());
    let second = held(a.state.claim_message(id, t(301), t(601)).await.unwrap());
    assert_eq!(a.state.settle_message(id, &second, &MessageStatus::Queued).await.unwrap(), SettleOutcome::Settled);
    let third = held(a.state.claim_message(id, t(302), t(602)).await.unwrap());
    let cancelled = MessageStatus::Cancelled { reason: "purchased".into(), at: t(303) };
    assert_eq!(a.state.settle_message(id, &first, &cancelled).await.unwrap(), SettleOutcome::ClaimLost);
    assert_eq!(a.state.settle_message(id, &second, &cancelled).await.unwrap(), SettleOutcome::ClaimLost);
    assert_eq!(a.state.get_message(id).await.unwrap().unwrap().status, third);
}

pub async fn unknown_is_reconciled_once(a: &Adapters) {
    let record = stored_message(a).await;
    let id = &record.message_id;
    let claim = held(a.state.claim_message(id, t(0), t(300)).await.unwrap());
    let unknown = MessageStatus::Unknown { reason: "answer lost".into(), at: t(1) };
    assert_eq!(a.state.settle_message(id, &claim, &unknown).await.unwrap(), SettleOutcome::Settled);

    let first = MessageStatus::Sent { provider_message_id: "p-1".into(), at: t(60) };
    let second = MessageStatus::Sent { provider_message_id: "p-1".into(), at: t(90) };
    assert_eq!(a.state.settle_message(id, &unknown, &first).await.unwrap(), SettleOutcome::Settled);
    assert_eq!(a.state.settle_message(id, &unknown, &second).await.unwrap(), SettleOutcome::ClaimLost);
    assert_eq!(a.state.get_message(id).await.unwrap().unwrap().status, first);
}

pub async fn repeated_settle_finds_its_own_write(a: &Adapters) {
    let record = stored_message(a).await;
    let id = &record.message_id;
    let mine = held(a.state.claim_message(id, t(0), t(300)).await.unwrap());
    let sent = MessageStatus::Sent { provider_message_id: "p-1".into(), at: t(5) };
    assert_eq!(a.state.settle_message(id, &mine, &sent).await.unwrap(), SettleOutcome::Settled);
    // What a retried request whose first attempt landed sees.
    assert_eq!(a.state.settle_message(id, &mine, &sent).await.unwrap(), SettleOutcome::Settled);
    let other = MessageStatus::Sent { provider_message_id: "p-2".into(), at: t(6) };
    assert_eq!(a.state.settle_message(id, &mine, &other).await.unwrap(), SettleOutcome::ClaimLost);
    assert_eq!(a.state.get_message(id).await.unwrap().unwrap().status, sent);
}

pub async fn sent_is_already_sent(a: &Adapters) {
    let record = stored_message(a).await;
    let id = &record.message_id;
    assert!(matches!(a.state.claim_message(id, t(0), t(300)).await.unwrap(), Claim::Claimed(_)));
    let sent = MessageStatus::Sent { provider_message_id: "provider-123".into(), at: t(2) };
    a.state.set_message_status(id, &sent).await.unwrap();

    assert_eq!(a.state.claim_message(id, t(3), t(303)).await.unwrap(), Claim::AlreadySent);
    assert_eq!(a.state.claim_message(id, t(10_000), t(10_300)).await.unwrap(), Claim::AlreadySent, "whatever the time");
    assert_eq!(a.state.get_message(id).await.unwrap(), Some(MessageRecord { status: sent, ..record }));
}

pub async fn rejected_and_cancelled_are_closed(a: &Adapters) {
    for status in [
        MessageStatus::Rejected { error: "address does not exist".into(), at: t(1) },
        MessageStatus::Cancelled { reason: "purchased".into(), at: t(1) },
        MessageStatus::Unknown { reason: "sender stopped mid-send".into(), at: t(1) },
    ] {
        let record = stored_message(a).await;
        a.state.set_message_status(&record.message_id, &status).await.unwrap();
        assert_eq!(a.state.claim_message(&record.message_id, t(2), t(302)).await.unwrap(), Claim::Closed, "{status:?}");
        assert_eq!(a.state.get_message(&record.message_id).await.unwrap().unwrap().status, status);
    }
}

pub async fn unknown_message_not_found(a: &Adapters) {
    let id: MessageId = unique("m").into();
    assert_eq!(a.state.claim_message(&id, t(0), t(300)).await.unwrap(), Claim::NotFound);
    assert_eq!(a.state.get_message(&id).await.unwrap(), None);
}

pub async fn record_engagement_keeps_first(a: &Adapters) {
    let record = stored_message(a).await;
    let click = |at| a.state.record_engagement(&record.message_id, EngagementLabel::HumanClick, at);
    assert_eq!(click(t(100)).await.unwrap(), Some(Tally::once(t(100))), "the first of its label");
    assert_eq!(click(t(200)).await.unwrap(), Some(Tally { count: 2, first_at: t(100), last_at: t(200) }));
    let open = a.state.record_engagement(&record.message_id, EngagementLabel::MachineOpen, t(150)).await.unwrap();
    assert_eq!(open, Some(Tally::once(t(150))), "each label is counted on its own");
    let read = a.state.get_message(&record.message_id).await.unwrap().unwrap();
    let clicks = read.engagement.tally(EngagementLabel::HumanClick);
    assert_eq!(clicks, Some(&Tally { count: 2, first_at: t(100), last_at: t(200) }));
    assert_eq!(read.engagement.tally(EngagementLabel::MachineOpen), Some(&Tally::once(t(150))));
    assert_eq!(read.engagement.tally(EngagementLabel::ScannerClick), None);
    assert_eq!(read.status, record.status, "engagement leaves the status alone");
    let listed = a.state.customer_messages(&record.customer_key, t(-1)).await.unwrap();
    assert_eq!(listed, [read], "the history the engine reads carries the same tallies");
    let unknown = a.state.record_engagement(&unique("m").into(), EngagementLabel::HumanClick, t(1)).await.unwrap();
    assert_eq!(unknown, None, "an expired or unknown message: nothing written");
}

/// GIVEN a sent message WHEN one of its links is followed 1,000 times
/// through `GET /r/{token}` (a bot, a reload loop, an attacker with one
/// email) THEN every click is answered, and the cart's timeline holds at
/// most one line per engagement label, however many clicks came.
pub async fn link_clicked_a_thousand_times_writes_a_bounded_amount(a: &Adapters) {
    use tower::ServiceExt;
    let mut record = stored_message(a).await;
    record.status = MessageStatus::Sent { provider_message_id: "p-1".into(), at: t(0) };
    a.state.set_message_status(&record.message_id, &record.status).await.unwrap();
    let clock = Arc::new(cartback_local::testing::ManualClock::new(t(3600)));
    let app = link_app(a, clock.clone());
    let claims = cartback_core::signing::LinkClaims {
        message_id: record.message_id.clone(),
        cart_id: record.cart_id.clone(),
        target: "https://shop.example.com/cart/restore".into(),
        expires: t(86_400).timestamp(),
    };
    let token = cartback_core::signing::sign_link(&link_secret(), &claims);
    for i in 0..1_000 {
        clock.set(t(3600 + i));
        let request = axum::http::Request::get(format!("/r/{token}"))
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), 302, "click {i}");
    }
    let timeline = a.state.timeline(&record.cart_id).await.unwrap();
    assert_eq!(
        timeline.len(),
        1,
        "one line for the first human click, none for the 999 after: {:?}",
        &timeline[..3.min(timeline.len())]
    );
    assert_eq!((timeline[0].code.as_str(), timeline[0].at), ("click", t(3600)));
    // The clicks are counted on the one message record, the first time kept.
    let read = a.state.get_message(&record.message_id).await.unwrap().unwrap();
    let tallies: Vec<_> = read.engagement.iter().map(|(label, tally)| (label, *tally)).collect();
    assert_eq!(tallies, [(EngagementLabel::HumanClick, Tally { count: 1_000, first_at: t(3600), last_at: t(4599) })]);
    assert_eq!(a.state.customer_messages(&record.customer_key, t(-1)).await.unwrap().len(), 1, "no new records");
    // A scanner on the same link adds its own single line, then only counts.
    for _ in 0..3 {
        let request = axum::http::Request::get(format!("/r/{token}"))
            .header("user-agent", "curl/8.5.0")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(app.clone().oneshot(request).await.unwrap().status().as_u16(), 302);
    }
    let codes: Vec<String> = a.state.timeline(&record.cart_id).await.unwrap().into_iter().map(|e| e.code).collect();
    assert_eq!(codes, ["click", "scanner_click"]);
    let read = a.state.get_message(&record.message_id).await.unwrap().unwrap();
    assert_eq!(read.engagement.tally(EngagementLabel::ScannerClick).map(|t| t.count), Some(3));
}

/// GIVEN a sent SMS's short link stored (then stored again under the same
/// token with another target, as a retried write would) WHEN read back and
/// followed through `GET /r/{token}` THEN the first link is kept, the
/// redirect and the click recorded are the signed link's, and once past
/// its expiry, or for a token never stored, the answer is the expired
/// signed link's.
pub async fn short_link_follows_like_the_signed_link_until_it_expires(a: &Adapters) {
    use cartback_core::short_link::{ShortLink, ShortToken};
    use tower::ServiceExt;
    // GIVEN
    let mut record = stored_message(a).await;
    record.status = MessageStatus::Sent { provider_message_id: "p-1".into(), at: t(0) };
    a.state.set_message_status(&record.message_id, &record.status).await.unwrap();
    let claims = cartback_core::signing::LinkClaims {
        message_id: record.message_id.clone(),
        cart_id: record.cart_id.clone(),
        target: "https://shop.example.com/cart/restore?t=abc".into(),
        expires: t(86_400).timestamp(),
    };
    let link = ShortLink::new(claims.clone());
    a.state.save_short_link(&link).await.unwrap();
    let mut other = link.clone();
    other.claims.target = "https://elsewhere.example/".into();
    a.state.save_short_link(&other).await.unwrap();
    // WHEN read back THEN the first write stands; a token never stored finds nothing
    assert_eq!(a.state.short_link(&link.token).await.unwrap(), Some(link.clone()));
    let never = ShortToken::parse("zzzzzzzzz0").unwrap();
    assert_eq!(a.state.short_link(&never).await.unwrap(), None);
    // WHEN followed, and the signed link of the same claims too
    let clock = Arc::new(cartback_local::testing::ManualClock::new(t(3600)));
    let app = link_app(a, clock.clone());
    let signed = cartback_core::signing::sign_link(&link_secret(), &claims);
    let follow = |token: String| {
        let app = app.clone();
        async move {
            let request = axum::http::Request::get(format!("/r/{token}"))
                .header("user-agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148")
                .body(axum::body::Body::empty())
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let location = response.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
            (status, location, body)
        }
    };
    let short = follow(link.token.to_string()).await;
    let long = follow(signed.clone()).await;
    // THEN the same redirect, and the click is recorded on the message and the timeline
    assert_eq!((short.0, short.1.as_deref()), (302, Some("https://shop.example.com/cart/restore?t=abc")));
    assert_eq!((short.0, &short.1), (long.0, &long.1));
    let read = a.state.get_message(&record.message_id).await.unwrap().unwrap();
    assert_eq!(read.engagement.tally(EngagementLabel::HumanClick).map(|t| (t.count, t.first_at)), Some((2, t(3600))));
    let codes: Vec<String> = a.state.timeline(&record.cart_id).await.unwrap().into_iter().map(|e| e.code).collect();
    assert_eq!(codes, ["click"]);
    // WHEN past the expiry THEN both links answer alike: expired; so does an unknown token
    clock.set(t(86_401));
    let (short, long, unknown) =
        (follow(link.token.to_string()).await, follow(signed).await, follow(never.to_string()).await);
    assert_eq!(long.0, 410, "the signed link has expired");
    assert_eq!(short, long);
    assert_eq!(unknown, long);
}

pub async fn customer_messages_filter_by_key_and_since(a: &Adapters) {
    let (ana, bob) = (unique("cust"), unique("cust"));
    let cart = unique("cart");
    let before = message(&cart, &ana, 0, Channel::Email, t(0));
    let at_since = message(&cart, &ana, 1, Channel::Sms, t(60));
    let after = message(&unique("cart"), &ana, 0, Channel::Push, t(120));
    let other = message(&unique("cart"), &bob, 0, Channel::Email, t(90));
    for m in [&before, &at_since, &after, &other] {
        assert_eq!(a.state.create_message(m).await.unwrap(), CreateOutcome::Created);
    }

    let (ana, bob) = (CustomerKey::Customer(ana.into()), CustomerKey::Customer(bob.into()));
    let mut got = a.state.customer_messages(&ana, t(60)).await.unwrap();
    got.sort_by_key(|m| m.decided_at);
    assert_eq!(got, [at_since, after], "since is inclusive; other customers excluded");
    assert_eq!(a.state.customer_messages(&bob, t(0)).await.unwrap(), [other]);
    assert!(a.state.customer_messages(&CustomerKey::Customer(unique("cust").into()), t(0)).await.unwrap().is_empty());
}

/// GIVEN a known customer whose id reads like the old guest key (`cart:<id>`)
/// and a guest cart with that id, WHEN both get a message, THEN each one's
/// history holds only its own message.
pub async fn customer_messages_keep_a_customer_named_like_a_guest_cart_apart(a: &Adapters) {
    let guest_cart = unique("cart");
    let lookalike = CustomerKey::Customer(format!("cart:{guest_cart}").into());
    let guest = CustomerKey::Guest(guest_cart.as_str().into());
    let mut to_customer = message(&unique("cart"), "unused", 0, Channel::Email, t(0));
    to_customer.customer_key = lookalike.clone();
    let mut to_guest = message(&guest_cart, "unused", 0, Channel::Email, t(0));
    to_guest.customer_key = guest.clone();
    for m in [&to_customer, &to_guest] {
        assert_eq!(a.state.create_message(m).await.unwrap(), CreateOutcome::Created);
    }
    assert_eq!(a.state.customer_messages(&lookalike, t(0)).await.unwrap(), [to_customer]);
    assert_eq!(a.state.customer_messages(&guest, t(0)).await.unwrap(), [to_guest]);
}

// ---------------------------------------------------------------- campaigns

pub async fn campaigns_put_list_replace(a: &Adapters) {
    let mut first = Campaign::default_campaign();
    first.id = unique("camp");
    first.name = "First".into();
    let mut second = Campaign::default_campaign();
    second.id = unique("camp");
    second.name = "Second".into();
    second.priority = 3;
    second.steps.truncate(1);
    a.campaigns.put(&first).await.unwrap();
    a.campaigns.put(&second).await.unwrap();

    let mut replaced = first.clone();
    replaced.enabled = false;
    // The consent settings survive the store (JSON in the DynamoDB config table).
    replaced.region = Some(Region::Uk);
    replaced.require_explicit_consent_for_guests = Some(false);
    replaced.name = "First, edited".into();
    replaced.steps[0].delay = Duration::minutes(45);
    a.campaigns.put(&replaced).await.unwrap();

    let ours: Vec<Campaign> =
        a.campaigns.list().await.unwrap().into_iter().filter(|c| c.id == first.id || c.id == second.id).collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert_eq!(ours.iter().find(|c| c.id == first.id), Some(&replaced));
    assert_eq!(ours.iter().find(|c| c.id == second.id), Some(&second));
}

// ---------------------------------------------------------------- scheduler

pub async fn scheduler_arm_is_idempotent(a: &Adapters) {
    let cart_id: CartId = unique("cart").into();
    let due = TimerPayload { cart_id: cart_id.clone(), due_at: t(1800) };
    let later = TimerPayload { cart_id: cart_id.clone(), due_at: t(3600) };
    a.scheduler.arm(&due).await.unwrap();
    a.scheduler.arm(&due).await.unwrap();
    a.scheduler.arm(&later).await.unwrap();

    let mut armed = a.timers.armed_for(&cart_id).await.unwrap();
    armed.sort_by_key(|t| t.due_at);
    assert_eq!(armed, [due, later]);
    assert!(a.timers.armed_for(&unique("cart")).await.unwrap().is_empty());
}

// ------------------------------------------------------ ingest over the store

/// The ingest service over the adapters, on the real clock.
pub(crate) fn ingest(a: &Adapters) -> Ingest {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Ingest {
        store: a.state.clone(),
        scheduler: a.scheduler.clone(),
        campaigns: Arc::new(CampaignCache::new(a.campaigns.clone(), clock.clone(), Duration::seconds(60))),
        clock,
    }
}

/// A batch through the ingest service: each event's (status, error field).
pub(crate) async fn ingest_batch(ingest: &Ingest, events: Vec<serde_json::Value>) -> Vec<(String, Option<String>)> {
    let body = json!({ "events": events }).to_string();
    let answer = serde_json::to_value(ingest.ingest_body(body.as_bytes()).await.expect("body is a batch")).unwrap();
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_str().unwrap().to_owned(), r["error"]["field"].as_str().map(str::to_owned)))
        .collect()
}

/// A real browser subscription's keys (65-byte P-256 point, 16-byte secret).
const P256DH: &str = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
const AUTH: &str = "tBHItJI5svbpez7KI4CCXg";

/// An add_to_cart with `extra` members merged in.
fn edit_with(cart_id: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut event = json!({"event_id": unique("e"), "type": "add_to_cart", "cart_id": cart_id,
                           "items": [{"item_id": "sku-1"}]});
    event.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    event
}

/// An add_to_cart of 150 items whose URLs make it about 90 KB once stored.
fn large_edit(cart_id: &str) -> serde_json::Value {
    let url = format!("https://shop.example/p/{}", "u".repeat(250));
    let items: Vec<_> =
        (0..150).map(|i| json!({"item_id": format!("sku-{i}"), "url": url, "image_url": url})).collect();
    json!({"event_id": unique("big"), "type": "add_to_cart", "cart_id": cart_id, "items": items})
}

/// Issue 9 item 3: inputs the local store took and DynamoDB refused (which
/// then blocked ingest) are refused at parse time, by field, on every runtime.
pub async fn ingest_refuses_storage_bound_breakers_by_field(a: &Adapters) {
    let ingest = ingest(a);
    let cart = unique("cart");
    let token = |t: String| json!({"platform": "fcm", "token": t});
    let long = format!("https://shop.example/{}", "l".repeat(1500));
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!({ "p": deep });
    }
    let cases = [
        ("coupon", json!({"coupon": "C".repeat(5000)})),
        ("customer.push_tokens", json!({"customer": {"push_tokens": vec![token("t".repeat(40)); 500]}})),
        ("customer.push_tokens[0].token", json!({"customer": {"push_tokens": [token("t".repeat(100_000))]}})),
        (
            "customer.web_push_subscription",
            json!({"customer": {"web_push_subscription":
                {"endpoint": "https://push.example/s", "keys": {"p256dh": P256DH, "auth": AUTH},
                 "x": "x".repeat(300_000)}}}),
        ),
        ("items[0].properties.p.p.p.p.p.p.p", json!({"items": [{"item_id": "sku-1", "properties": deep}]})),
        (
            "customer.web_push_subscription.expirationTime",
            json!({"customer": {"web_push_subscription": {"endpoint": "https://push.example/s",
                "keys": {"p256dh": P256DH, "auth": AUTH}, "expirationTime": 1e200}}}),
        ),
        (
            "items",
            json!({"items": (0..200)
            .map(|i| json!({"item_id": format!("sku-{i}"), "url": long, "image_url": long}))
            .collect::<Vec<_>>()}),
        ),
    ];
    for (field, extra) in cases {
        let results = ingest_batch(&ingest, vec![edit_with(&cart, extra), edit_with(&cart, json!({}))]).await;
        assert!(
            results[0].0 == "rejected" && results[0].1.as_deref().is_some_and(|f| f.starts_with(field)),
            "{field}: {results:?}"
        );
        assert_eq!(results[1], ("accepted".to_owned(), None), "the event after {field} still lands");
    }
}

/// Issue 9 item 3: the cart's size bound holds for the cart as it will be
/// written, so every write the service makes fits one store item (DynamoDB:
/// 400 KB), and a purchase always lands.
pub async fn full_cart_fits_the_store(a: &Adapters) {
    let ingest = ingest(a);
    let cart = unique("cart");
    let mut edits = Vec::new();
    for _ in 0..6 {
        edits.push(large_edit(&cart));
    }
    let mut results = Vec::new();
    for edit in edits {
        results.extend(ingest_batch(&ingest, vec![edit]).await);
    }
    let accepted = results.iter().take_while(|(status, _)| status == "accepted").count();
    assert!(accepted >= 2, "{results:?}");
    assert!(
        results[accepted..].iter().all(|r| r == &("rejected".to_owned(), Some("cart_id".to_owned()))),
        "after the cart is full every edit is refused by cart_id, none fails in the store: {results:?}"
    );
    let mut purchase = large_edit(&cart);
    purchase["type"] = json!("purchase");
    purchase["order_id"] = json!("o-1");
    assert_eq!(ingest_batch(&ingest, vec![purchase]).await, [("accepted".to_owned(), None)]);
    let record = a.state.get_cart(&cart.clone().into()).await.unwrap().unwrap();
    assert_eq!(record.events.len(), accepted + 1);
    assert_eq!(record.cart().status, cartback_core::cart::CartStatus::Converted);
}

// ---------------------------------------------------------------- send ledgers

fn reserved(cart_id: &str, step: u32, channel: Channel, at: DateTime<Utc>) -> ReservedSend {
    ReservedSend {
        message_id: MessageRecord::id_for(cart_id, step, channel),
        cart_id: cart_id.into(),
        campaign_id: "default".into(),
        step,
        channel,
        at,
    }
}

pub async fn send_ledger_versioned_replace(a: &Adapters) {
    let key = CustomerKey::Customer(unique("cust").into());
    let empty = a.state.send_ledger(&key).await.unwrap();
    assert_eq!(empty, SendLedger::new(key.clone()), "no ledger yet: version 0, no sends");

    let mut first = empty.clone();
    first.reserve(reserved(&unique("cart"), 0, Channel::Push, t(0) + Duration::nanoseconds(3)));
    assert_eq!(a.state.save_send_ledger(&first).await.unwrap(), SaveOutcome::Saved);
    assert_eq!(a.state.save_send_ledger(&first).await.unwrap(), SaveOutcome::Conflict, "version 0 must not exist");
    let read = a.state.send_ledger(&key).await.unwrap();
    assert_eq!(read, SendLedger { version: 1, ..first.clone() });

    let mut second = read.clone();
    second.reserve(reserved(&unique("cart"), 0, Channel::Email, t(60)));
    assert_eq!(a.state.save_send_ledger(&second).await.unwrap(), SaveOutcome::Saved);
    assert_eq!(a.state.save_send_ledger(&read).await.unwrap(), SaveOutcome::Conflict, "version 1 was replaced");
    let read = a.state.send_ledger(&key).await.unwrap();
    assert_eq!(read.version, 2);
    assert_eq!(read.sends, second.sends);
    let other = CustomerKey::Guest(unique("cart").into());
    assert_eq!(a.state.send_ledger(&other).await.unwrap(), SendLedger::new(other), "ledgers are per customer");
}

pub async fn send_ledger_concurrent_create_exactly_one(a: &Adapters) {
    let key = CustomerKey::Customer(unique("cust").into());
    let writers = (0..8).map(|i| {
        let state = a.state.clone();
        let mut ledger = SendLedger::new(key.clone());
        ledger.reserve(reserved(&format!("cart-{i}"), 0, Channel::Push, t(i)));
        tokio::spawn(async move { state.save_send_ledger(&ledger).await.unwrap() })
    });
    let mut saved = 0;
    for writer in writers.collect::<Vec<_>>() {
        if writer.await.unwrap() == SaveOutcome::Saved {
            saved += 1;
        }
    }
    assert_eq!(saved, 1, "one writer wins the new ledger");
    assert_eq!(a.state.send_ledger(&key).await.unwrap().sends.len(), 1);
}

// ---------------------------------------------------------------- per-customer caps across checkers

/// A queue that only counts what it is given.
#[derive(Default)]
struct CountingQueue(std::sync::Mutex<Vec<MessageJob>>);

#[async_trait]
impl JobQueue for CountingQueue {
    async fn enqueue(&self, job: &MessageJob) -> Result<(), PortError> {
        self.0.lock().expect("queue lock").push(job.clone());
        Ok(())
    }
}

/// A clock stopped at one instant.
struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// GIVEN a campaign that allows one push per customer and week (and no
/// entry cooldown, so the push cap alone decides), and several customers
/// each with two abandoned carts whose timers are due at the same moment;
/// WHEN two checkers, one per cart, run at once;
/// THEN each customer gets exactly one message: the per-customer cap holds
/// although the history read may be stale and records are written after
/// the enqueue.
pub async fn concurrent_checkers_keep_the_customer_cap(a: &Adapters) {
    let mut campaign = Campaign::default_campaign();
    campaign.id = unique("one-push");
    // Every customer treated: the cap is what is measured here.
    campaign.holdout_percent = 0;
    campaign.steps.truncate(1);
    campaign.steps[0].channels.mobile = vec![Channel::Push];
    campaign.steps[0].channels.desktop = vec![Channel::Push];
    campaign.caps.push_max = 1;
    campaign.caps.entry_cooldown = Duration::zero();
    campaign.quiet_hours.channels.clear();
    a.campaigns.put(&campaign).await.unwrap();
    // Activity a minute into the test's day; the step falls due 30 minutes later.
    let activity = Utc::now().date_naive().and_hms_opt(10, 0, 0).expect("valid time").and_utc();
    let due = activity + Duration::minutes(30);
    let clock: Arc<dyn Clock> = Arc::new(FixedClock(due));
    let queue = Arc::new(CountingQueue::default());
    let checker = |store: Arc<dyn StateStore>| Checker {
        store,
        scheduler: a.scheduler.clone(),
        queue: queue.clone(),
        campaigns: Arc::new(CampaignCache::new(a.campaigns.clone(), clock.clone(), Duration::zero())),
        templates: std::sync::Arc::new(cartback_core::service::TemplateCache::shipped_only()),
        clock: clock.clone(),
        settings: Arc::new(Settings::new(
            Secret::new(b"0123456789abcdef0123".to_vec()).expect("secret"),
            "http://localhost:8080",
            "http://shop/{cart_id}?t={token}",
        )),
    };
    let (first, second) = (checker(a.state.clone()), checker(a.state.clone()));
    let customers: Vec<String> = (0..4).map(|_| unique("cust")).collect();
    let mut carts = Vec::new();
    for customer_id in &customers {
        let mut customer = Customer::new(customer_id.as_str());
        customer.profile = CustomerPatch {
            push_tokens: Some(vec![PushToken { platform: PushPlatform::Fcm, token: unique("fcm").into() }]),
            consents: Some(ConsentPatch { push: Some(true), ..Default::default() }),
            ..Default::default()
        };
        for version in 0..2 {
            let cart_id = unique("cart");
            let mut event = rich_event(&unique("e"), EventType::AddToCart, &cart_id, Some(customer_id), activity);
            event.customer = None;
            let mut record = cart_with(&cart_id, vec![event], activity);
            record.timer_armed_for = Some(due);
            let outcome = a
                .state
                .commit_event(commit(&unique("e"), Some(record), Some((customer.clone(), version)), None))
                .await
                .unwrap();
            assert_eq!(outcome, CommitOutcome::Applied);
            carts.push((customer_id.clone(), cart_id));
        }
    }

    for pair in carts.chunks(2) {
        let timer = |i: usize| TimerPayload { cart_id: pair[i].1.as_str().into(), due_at: due };
        let (timer_one, timer_two) = (timer(0), timer(1));
        let (one, two) = tokio::join!(first.on_timer(&timer_one), second.on_timer(&timer_two));
        one.expect("first checker");
        two.expect("second checker");
    }

    let jobs = queue.0.lock().expect("queue lock").clone();
    for customer_id in &customers {
        let theirs: Vec<&str> = carts.iter().filter(|(c, _)| c == customer_id).map(|(_, cart)| cart.as_str()).collect();
        let queued = jobs.iter().filter(|j| theirs.contains(&j.cart_id.as_str())).count();
        assert_eq!(queued, 1, "customer {customer_id}: one push with a cap of one, got {queued}");
        let key = CustomerKey::Customer(customer_id.as_str().into());
        let recorded = a.state.customer_messages(&key, activity).await.unwrap();
        assert_eq!(recorded.len(), 1, "customer {customer_id}: {recorded:?}");
    }
}

// ---------------------------------------------------------------- facts

fn day(text: &str) -> NaiveDate {
    text.parse().expect("a valid day")
}

fn time(text: &str) -> DateTime<Utc> {
    text.parse().expect("a valid time")
}

/// An order fact for `order_id` (its id is `order#<order_id>`).
pub fn order_fact(order_id: &str, at: DateTime<Utc>, value: &str, coupon: Option<&str>) -> Fact {
    Fact::new(
        at,
        FactKind::Order {
            order_id: order_id.into(),
            cart_id: Some(unique("cart").into()),
            customer_key: Some(CustomerKey::Customer(unique("cust").into())),
            value: Some(value.parse().expect("a decimal")),
            currency: Some("EUR".into()),
            coupon: coupon.map(Into::into),
        },
    )
}

/// The facts from `from` to `to` whose id contains `tag`, by id: checks
/// share nothing with facts other checks or services wrote on those days.
async fn facts_tagged(a: &Adapters, from: NaiveDate, to: NaiveDate, tag: &str) -> Vec<Fact> {
    let mut facts: Vec<Fact> =
        a.state.facts(from, to).await.unwrap().into_iter().filter(|f| f.fact_id.contains(tag)).collect();
    facts.sort_by(|x, y| x.fact_id.cmp(&y.fact_id));
    facts
}

/// GIVEN a recorded fact WHEN a fact with the same id is recorded again,
/// once as it was and once with other content at another time (a late
/// repeat) THEN both answer AlreadyExists and only the first is stored, as
/// it was written.
pub async fn fact_with_the_same_id_is_recorded_once(a: &Adapters) {
    let order = unique("o");
    let first = order_fact(&order, time("2026-11-20T12:00:00.123456789Z"), "10.50", None);
    assert_eq!(a.state.record_fact(&first).await.unwrap(), CreateOutcome::Created);
    assert_eq!(a.state.record_fact(&first).await.unwrap(), CreateOutcome::AlreadyExists);
    let late = order_fact(&order, time("2026-11-21T08:00:00Z"), "99.00", Some("LATE"));
    assert_eq!(late.fact_id, first.fact_id);
    assert_eq!(a.state.record_fact(&late).await.unwrap(), CreateOutcome::AlreadyExists);
    assert_eq!(facts_tagged(a, day("2026-11-19"), day("2026-11-22"), &order).await, vec![first]);
}

/// GIVEN an order fact, and a late copy of it with other content WHEN read
/// by its id (how a source's refund finds its order's purchase) THEN the
/// first copy comes back as written; an id never recorded finds nothing.
pub async fn fact_is_found_by_its_id(a: &Adapters) {
    let order = unique("lookup");
    let first = order_fact(&order, time("2026-11-20T12:00:00.5Z"), "42.00", Some("WELCOME"));
    let late = order_fact(&order, time("2026-11-22T08:00:00Z"), "1.00", None);
    a.state.record_fact(&first).await.unwrap();
    a.state.record_fact(&late).await.unwrap();
    assert_eq!(a.state.fact(&first.fact_id).await.unwrap(), Some(first));
    assert_eq!(a.state.fact(&format!("order#{order}-never")).await.unwrap(), None);
}

/// GIVEN facts at the edges of a window (the first and last instant of
/// its days, and the instants just outside) WHEN the window is read THEN
/// exactly the facts on its days come back, `to` included; a one-day
/// window and a window ending before it starts behave alike.
pub async fn facts_are_read_by_inclusive_utc_days(a: &Adapters) {
    let tag = unique("edge");
    let at = |text: &str, name: &str| order_fact(&format!("{tag}-{name}"), time(text), "1.00", None);
    let before = at("2026-11-09T23:59:59.999999999Z", "before");
    let first = at("2026-11-10T00:00:00Z", "first");
    let last = at("2026-11-12T23:59:59Z", "last");
    let after = at("2026-11-13T00:00:00Z", "after");
    for fact in [&before, &first, &last, &after] {
        assert_eq!(a.state.record_fact(fact).await.unwrap(), CreateOutcome::Created);
    }
    let read = facts_tagged(a, day("2026-11-10"), day("2026-11-12"), &tag).await;
    assert_eq!(read, vec![first.clone(), last.clone()]);
    assert_eq!(facts_tagged(a, day("2026-11-12"), day("2026-11-12"), &tag).await, vec![last]);
    assert_eq!(facts_tagged(a, day("2026-11-13"), day("2026-11-13"), &tag).await, vec![after]);
    assert_eq!(facts_tagged(a, day("2026-11-10"), day("2026-11-09"), &tag).await, vec![]);
}

/// GIVEN 1,500 facts on one day, recorded concurrently (they spread over
/// every partition of the day, each one several pages on DynamoDB) WHEN the
/// day is read THEN every fact comes back once, exactly as written.
pub async fn many_facts_on_one_day_come_back_complete(a: &Adapters) {
    const FACTS: usize = 1_500;
    const WRITERS: usize = 16;
    let tag = unique("busy");
    let start = time("2026-11-27T00:00:00Z");
    let facts: Arc<Vec<Fact>> = Arc::new(
        (0..FACTS)
            .map(|i| {
                let at = start + Duration::seconds(i as i64 * 57) + Duration::nanoseconds(i as i64);
                order_fact(&format!("{tag}-{i:05}"), at, &format!("{i}.99"), (i % 3 == 0).then_some("BLACKFRIDAY"))
            })
            .collect(),
    );
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let (state, facts) = (a.state.clone(), facts.clone());
        writers.spawn(async move {
            for fact in facts.iter().skip(writer).step_by(WRITERS) {
                assert_eq!(state.record_fact(fact).await.unwrap(), CreateOutcome::Created, "{}", fact.fact_id);
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer");
    }
    let read = facts_tagged(a, day("2026-11-27"), day("2026-11-27"), &tag).await;
    assert_eq!(read.len(), FACTS);
    assert_eq!(read, *facts, "every fact once, as written (both sorted by id)");
}

/// GIVEN a cart of a known customer WHEN two purchase events (different
/// event ids, the second a late repeat with another value) report the same
/// order THEN one order fact is stored: the first event's, keyed by the
/// cart's customer, and both events are accepted.
pub async fn one_order_reported_by_two_purchase_events_is_one_fact(a: &Adapters) {
    let ingest = ingest(a);
    let (cart, customer, order) = (unique("cart"), unique("cust"), unique("order"));
    let at = Utc::now() - Duration::hours(2);
    let purchase = |event_id: String, at: DateTime<Utc>, value: &str| {
        json!({"event_id": event_id, "type": "purchase", "occurred_at": at.to_rfc3339(), "cart_id": cart,
               "customer_id": customer, "order_id": order, "value": value, "currency": "EUR", "coupon": "WELCOME"})
    };
    let first = purchase(unique("e"), at, "42.10");
    let late = purchase(unique("e"), at + Duration::minutes(90), "1.00");
    let accepted = ("accepted".to_owned(), None);
    assert_eq!(ingest_batch(&ingest, vec![first]).await, std::slice::from_ref(&accepted));
    assert_eq!(ingest_batch(&ingest, vec![late]).await, [accepted]);

    let days = (at.date_naive() - Duration::days(1), at.date_naive() + Duration::days(1));
    let facts = facts_tagged(a, days.0, days.1, &order).await;
    let expected = Fact::new(
        at,
        FactKind::Order {
            order_id: order.clone(),
            cart_id: Some(cart.clone().into()),
            customer_key: Some(CustomerKey::Customer(customer.clone().into())),
            value: Some("42.10".parse().expect("decimal")),
            currency: Some("EUR".into()),
            coupon: Some("WELCOME".into()),
        },
    );
    assert_eq!(facts, vec![expected]);
}
