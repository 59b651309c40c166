//! Specifications of the backtest over small histories written as canonical
//! events (the `--events` path), GIVEN / WHEN / THEN.

use chrono::{DateTime, Duration, Utc};

use crate::engagement::EngagementLabel;
use serde_json::{json, Value};

use super::*;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// One email 30 minutes after the last activity, nobody held out.
fn one_email(id: &str, delay: &str) -> Campaign {
    Campaign::from_toml(&format!(
        "id = \"{id}\"\nname = \"One email\"\nholdout_percent = 0\n[[steps]]\ndelay = \"{delay}\"\n\
         [steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n"
    ))
    .unwrap()
}

fn add_to_cart(event_id: &str, cart_id: &str, customer_id: &str, at: &str) -> Value {
    json!({
        "event_id": event_id, "type": "add_to_cart", "cart_id": cart_id, "customer_id": customer_id,
        "occurred_at": at, "device": "desktop", "currency": "EUR",
        "customer": {"email": "ana@example.com", "consents": {"email": true}},
        "items": [{"item_id": "sku-mug", "item_name": "Mug", "price": "14.90", "quantity": 2}]
    })
}

fn without_consent(mut event: Value) -> Value {
    event["customer"] = json!({"email": "ana@example.com"});
    event
}

fn history(events: &[Value]) -> History {
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    history_from_events(&lines.join("\n"), t("2026-07-01T00:00:00Z")).unwrap()
}

fn options(draft: Campaign, until: &str) -> Options {
    Options {
        draft,
        against: None,
        from: None,
        to: None,
        channels: Channel::ALL.to_vec(),
        prices: Prices::default(),
        until: Some(t(until)),
    }
}

fn backtest(history: &History, options: &Options) -> BacktestReport {
    run(history, &[], options, None, &mut |_| {}).unwrap()
}

fn trace_of(history: &History, draft: &Campaign, cart: &str, until: &str) -> CartTrace {
    trace_with(history, std::slice::from_ref(draft), cart, until)
}

/// The replay of `cart` with `campaigns` (live and shadow) stored.
fn trace_with(history: &History, campaigns: &[Campaign], cart: &str, until: &str) -> CartTrace {
    let setup = Setup { campaigns, channels: &Channel::ALL, until: t(until), from: None };
    let customer = history.customers.iter().find(|c| c.carts.iter().any(|r| r.cart_id.as_str() == cart)).unwrap();
    let index = customer.carts.iter().position(|r| r.cart_id.as_str() == cart).unwrap();
    replay_customer(&setup, customer, &history.messages, &Seeds::default()).swap_remove(index)
}

/// What live traffic would have stored running `live` over `history`: a
/// message record per step sent or held out (as the checker writes them).
fn record_live(history: &mut History, live: &Campaign, until: &str) {
    record_lineup(history, std::slice::from_ref(live), until);
}

/// [`record_live`] with several live campaigns, each cart recorded under the one it entered.
fn record_lineup(history: &mut History, campaigns: &[Campaign], until: &str) {
    let setup = Setup { campaigns, channels: &Channel::ALL, until: t(until), from: None };
    let mut records = Vec::new();
    for customer in &history.customers {
        for trace in replay_customer(&setup, customer, &history.messages, &Seeds::default()) {
            for d in trace.decisions.iter().filter(|d| matches!(d.outcome, Outcome::Sent | Outcome::HeldOut)) {
                let status = match d.outcome {
                    Outcome::HeldOut => MessageStatus::HeldOut { at: d.at },
                    _ => MessageStatus::Queued,
                };
                let channel = d.channel.unwrap();
                let campaign_id = &trace.entered.as_ref().unwrap().0;
                records.push(crate::message::MessageRecord::decided(
                    &trace.cart_id,
                    &customer.key,
                    campaign_id,
                    d.step,
                    channel,
                    d.at,
                    status,
                ));
            }
        }
    }
    for record in records {
        history.messages.insert(record.message_id.clone(), record);
    }
}

/// Two emails: 30 minutes after the last activity, then an hour later.
fn two_emails(id: &str, holdout: u8) -> Campaign {
    Campaign::from_toml(&format!(
        "id = \"{id}\"\nname = \"Two emails\"\nholdout_percent = {holdout}\n\
         [[steps]]\ndelay = \"30m\"\n[steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n\
         [[steps]]\ndelay = \"1h\"\n[steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n"
    ))
    .unwrap()
}

#[test]
fn given_consent_withdrawn_between_two_carts_when_replayed_then_the_first_is_reminded_and_the_second_is_not() {
    // GIVEN a customer who consented on cart A at 10:00, withdrew at 13:00
    // (their profile now says no), and filled cart B 8 days later (past the cooldown)
    let history = history(&[
        add_to_cart("a1", "cart-a", "ana", "2026-06-10T10:00:00Z"),
        json!({"event_id": "w1", "type": "identify", "customer_id": "ana", "occurred_at": "2026-06-10T13:00:00Z",
               "customer": {"consents": {"email": false}}}),
        without_consent(add_to_cart("b1", "cart-b", "ana", "2026-06-18T14:00:00Z")),
    ]);
    assert_eq!(history.customers[0].customer.as_ref().unwrap().profile.consents.unwrap().email, Some(false));
    let draft = one_email("draft", "30m");

    // WHEN the draft is replayed
    let a = trace_of(&history, &draft, "cart-a", "2026-06-20T00:00:00Z");
    let b = trace_of(&history, &draft, "cart-b", "2026-06-20T00:00:00Z");

    // THEN cart A got its reminder at 10:30 (consent stood then), cart B none
    assert_eq!(a.sends().collect::<Vec<_>>(), [(0, Channel::Email)]);
    let sent = a.decisions.iter().find(|d| d.outcome == Outcome::Sent).unwrap();
    assert_eq!(sent.at, t("2026-06-10T10:30:00Z"));
    assert_eq!(b.sends().count(), 0, "{b:#?}");
    let stop = b.decisions.last().unwrap();
    assert_eq!(stop.outcome, Outcome::Stopped);
    assert_eq!(stop.code, ReasonCode::NoConsent, "{stop:?}");
}

#[test]
fn given_consent_given_only_after_a_cart_when_replayed_then_that_cart_is_not_reminded() {
    // GIVEN a cart at 10:00 without consent and the consent given at 18:00
    let history = history(&[
        without_consent(add_to_cart("a1", "cart-a", "ben", "2026-06-10T10:00:00Z")),
        json!({"event_id": "g1", "type": "identify", "customer_id": "ben", "occurred_at": "2026-06-10T18:00:00Z",
               "customer": {"consents": {"email": true}}}),
    ]);

    // WHEN replayed THEN the 10:30 check saw no consent (as it was then, not now)
    let a = trace_of(&history, &one_email("draft", "30m"), "cart-a", "2026-06-12T00:00:00Z");
    assert_eq!(a.sends().count(), 0, "{a:#?}");
}

#[test]
fn given_two_carts_of_one_customer_when_replayed_then_the_entry_cooldown_counts_across_carts() {
    // GIVEN one customer's two carts two hours apart
    let history = history(&[
        add_to_cart("a1", "cart-a", "cleo", "2026-06-10T10:00:00Z"),
        add_to_cart("b1", "cart-b", "cleo", "2026-06-10T12:00:00Z"),
    ]);

    // WHEN the draft is backtested
    let report = backtest(&history, &options(one_email("draft", "30m"), "2026-06-12T00:00:00Z"));

    // THEN one email went out and the second cart met the entry cooldown
    assert_eq!((report.carts, report.entering), (2, 1));
    assert_eq!(report.steps.len(), 1);
    assert_eq!((report.steps[0].step, report.steps[0].channel, report.steps[0].sent), (1, Channel::Email, 1));
    assert_eq!(report.suppressed, [Suppressed { step: 1, code: ReasonCode::EntryCooldown, carts: 1 }]);
    assert_eq!(report.cost, Money::from([("USD".to_owned(), Decimal::new(1, 4))]));
}

#[test]
fn given_a_cart_edited_before_its_timer_when_replayed_then_the_reminder_counts_from_the_last_edit() {
    // GIVEN a cart touched at 10:00 and again at 10:20
    let mut edit = add_to_cart("a2", "cart-a", "dan", "2026-06-10T10:20:00Z");
    edit["type"] = json!("cart_update");
    let history = history(&[add_to_cart("a1", "cart-a", "dan", "2026-06-10T10:00:00Z"), edit]);

    // WHEN replayed THEN the first timer (10:30) re-arms and the email goes at 10:50
    let a = trace_of(&history, &one_email("draft", "30m"), "cart-a", "2026-06-12T00:00:00Z");
    let sent: Vec<DateTime<Utc>> = a.decisions.iter().filter(|d| d.outcome == Outcome::Sent).map(|d| d.at).collect();
    assert_eq!(sent, [t("2026-06-10T10:50:00Z")], "{a:#?}");
}

#[test]
fn given_a_timer_beyond_the_history_when_replayed_then_it_is_not_run() {
    let history = history(&[add_to_cart("a1", "cart-a", "eve", "2026-06-10T10:00:00Z")]);
    // The history ends at its last event: the 10:30 reminder had not fallen due.
    let report =
        backtest(&history, &Options { until: None, ..options(one_email("draft", "30m"), "2026-06-12T00:00:00Z") });
    assert_eq!((report.carts, report.entering), (1, 0));
    assert!(report.steps.is_empty());
}

#[test]
fn given_a_longer_first_delay_against_the_live_campaign_when_compared_then_carts_bought_in_between_differ() {
    // GIVEN two carts: one bought 2 hours after it was left, one never bought;
    // live traffic sent both a reminder at 30 minutes
    let mut history = history(&[
        add_to_cart("a1", "cart-a", "fay", "2026-06-10T10:00:00Z"),
        json!({"event_id": "a2", "type": "purchase", "cart_id": "cart-a", "customer_id": "fay",
               "occurred_at": "2026-06-10T12:00:00Z", "order_id": "o-1", "value": "29.80", "currency": "EUR"}),
        add_to_cart("b1", "cart-b", "gus", "2026-06-10T10:00:00Z"),
    ]);
    for cart in ["cart-a", "cart-b"] {
        let key = crate::ids::CustomerKey::Customer(if cart == "cart-a" { "fay" } else { "gus" }.into());
        let at = t("2026-06-10T10:30:00Z");
        let message = crate::message::MessageRecord::decided(
            &cart.into(),
            &key,
            "live",
            0,
            Channel::Email,
            at,
            MessageStatus::Queued,
        );
        history.messages.insert(message.message_id.clone(), message);
    }
    let live = one_email("live", "30m");

    // WHEN a draft waiting 4 hours is put beside it
    let mut opts = options(one_email("draft", "4h"), "2026-06-12T00:00:00Z");
    opts.against = Some("live".into());
    let report = run(&history, &[live], &opts, None, &mut |_| {}).unwrap();

    // THEN the live replay matches its records, and only the bought cart differs:
    // the draft's first decision there stops on the purchase
    let against = report.against.unwrap();
    assert_eq!(against.replay_mismatches, 0);
    assert_eq!((against.live_sent, against.carts_deciding_differently), (2, 1));
    let differing = &against.differing[0];
    assert_eq!(differing.cart_id.as_str(), "cart-a");
    assert_eq!((differing.draft_sent.len(), differing.live_sent.as_slice()), (0, ["1:email".to_owned()].as_slice()));
    let (draft, live) = differing.first_difference.clone().unwrap();
    assert_eq!(draft.unwrap().code, ReasonCode::Purchased);
    assert_eq!(live.unwrap().outcome, Outcome::Sent);
    assert_eq!(report.steps[0].difference, Some(-1));
    assert_eq!(against.sample.len(), 1);
    assert!(report.estimate.basis.starts_with("No estimate"), "{}", report.estimate.basis);
}

#[test]
fn given_two_live_campaigns_when_compared_against_one_then_carts_the_other_took_are_not_mismatches() {
    // GIVEN a small cart and a large one; live, "big" (higher priority, carts
    // from 50) took the large cart and "live" the small one, as recorded
    let mut large = add_to_cart("b1", "cart-b", "hal", "2026-06-10T10:00:00Z");
    large["items"][0]["price"] = json!("40.00");
    let mut history = history(&[add_to_cart("a1", "cart-a", "ivy", "2026-06-10T10:00:00Z"), large]);
    let live = one_email("live", "30m");
    let mut big = one_email("big", "30m");
    big.priority = 10;
    big.entry.min_cart_value = Some(Decimal::new(50, 0));
    record_lineup(&mut history, &[live.clone(), big.clone()], "2026-06-12T00:00:00Z");

    // WHEN a draft is compared against "live" with both stored
    let mut opts = options(one_email("draft", "30m"), "2026-06-12T00:00:00Z");
    opts.against = Some("live".into());
    let report = run(&history, &[live, big], &opts, None, &mut |_| {}).unwrap();

    // THEN the live replay matches: the large cart sent nothing for "live",
    // in the records and in the replay
    let against = report.against.unwrap();
    assert_eq!((against.live_entering, against.live_sent), (1, 1));
    assert_eq!(against.replay_mismatches, 0);
    assert_eq!(against.carts_deciding_differently, 0);
}

#[test]
fn given_a_draft_of_a_live_campaign_that_is_not_the_busiest_when_no_against_is_named_then_it_is_put_beside_itself() {
    // GIVEN live "quiet" (one cart) and "busy" (two carts), as recorded
    let mut large = add_to_cart("c1", "cart-c", "kim", "2026-06-10T10:00:00Z");
    large["items"][0]["price"] = json!("40.00");
    let mut history = history(&[
        add_to_cart("a1", "cart-a", "ivy", "2026-06-10T10:00:00Z"),
        add_to_cart("b1", "cart-b", "jon", "2026-06-10T10:00:00Z"),
        large,
    ]);
    let busy = one_email("busy", "30m");
    let mut quiet = one_email("quiet", "30m");
    quiet.priority = 10;
    quiet.entry.min_cart_value = Some(Decimal::new(50, 0));
    let live = [busy, quiet];
    record_lineup(&mut history, &live, "2026-06-12T00:00:00Z");

    // WHEN a draft with the id "quiet" (or another id) is backtested without --against
    // THEN it is put beside "quiet"; another draft beside the busiest
    assert_eq!(history.default_against(&live, "quiet").as_deref(), Some("quiet"));
    assert_eq!(history.default_against(&live, "new-one").as_deref(), Some("busy"));
}

#[test]
fn given_a_click_on_step_one_after_step_two_went_out_when_replayed_then_step_two_still_goes_out() {
    // GIVEN live traffic that sent cart A both steps (10:30 and 11:30) and
    // a click on step 1's message at 12:00, after step 2 had gone out
    let live = two_emails("live", 0);
    let mut history = history(&[add_to_cart("a1", "cart-a", "ann", "2026-06-10T10:00:00Z")]);
    record_live(&mut history, &live, "2026-06-12T00:00:00Z");
    let step_one = crate::message::MessageRecord::id_for("cart-a", 0, Channel::Email);
    history.messages.get_mut(&step_one).unwrap().engagement.add(EngagementLabel::HumanClick, t("2026-06-10T12:00:00Z"));

    // WHEN the live campaign is replayed over it
    let a = trace_of(&history, &live, "cart-a", "2026-06-12T00:00:00Z");

    // THEN at 11:30 the click had not happened: step 2 goes out as it did live
    assert_eq!(a.sends().collect::<Vec<_>>(), [(0, Channel::Email), (1, Channel::Email)], "{a:#?}");
}

#[test]
fn given_a_click_on_step_one_before_step_two_when_replayed_then_step_two_stops_as_engaged() {
    // GIVEN the same history with the click at 11:00, before step 2 was due
    let live = two_emails("live", 0);
    let mut history = history(&[add_to_cart("a1", "cart-a", "ann", "2026-06-10T10:00:00Z")]);
    record_live(&mut history, &live, "2026-06-12T00:00:00Z");
    let step_one = crate::message::MessageRecord::id_for("cart-a", 0, Channel::Email);
    history.messages.get_mut(&step_one).unwrap().engagement.add(EngagementLabel::HumanClick, t("2026-06-10T11:00:00Z"));

    // WHEN replayed THEN step 2 stops on the click
    let a = trace_of(&history, &live, "cart-a", "2026-06-12T00:00:00Z");
    assert_eq!(a.sends().collect::<Vec<_>>(), [(0, Channel::Email)]);
    assert_eq!(a.decisions.last().unwrap().code, ReasonCode::Engaged);
}

#[test]
fn given_a_cart_stopped_again_after_each_edit_when_counted_then_it_is_one_suppressed_cart() {
    // GIVEN a cart without consent, edited twice after its check stopped it
    let mut events = Vec::new();
    for (id, at) in [("a1", "2026-06-10T10:00:00Z"), ("a2", "2026-06-10T11:00:00Z"), ("a3", "2026-06-10T12:00:00Z")] {
        events.push(without_consent(add_to_cart(id, "cart-a", "hal", at)));
    }
    let history = history(&events);
    let draft = one_email("draft", "30m");
    let stops = trace_of(&history, &draft, "cart-a", "2026-06-12T00:00:00Z");
    assert_eq!(stops.decisions.iter().filter(|d| d.code == ReasonCode::NoConsent).count(), 3, "{stops:#?}");

    // WHEN backtested
    let report = backtest(&history, &options(draft, "2026-06-12T00:00:00Z"));

    // THEN the three stops are one cart suppressed for want of consent
    assert_eq!(report.suppressed, [Suppressed { step: 1, code: ReasonCode::NoConsent, carts: 1 }]);
}

/// One email 30 minutes after the last activity offering 10% off; guests
/// get it on the address they typed.
fn one_voucher_email(id: &str) -> Campaign {
    Campaign::from_toml(&format!(
        "id = \"{id}\"\nname = \"Voucher\"\nholdout_percent = 0\nrequire_explicit_consent_for_guests = false\n\
         [[steps]]\ndelay = \"30m\"\n[steps.channels]\nmobile = [\"email\"]\ndesktop = [\"email\"]\n\
         [steps.offer.standard]\npercent_off = \"10\"\n[steps.offer.recovery]\npercent_off = \"10\"\n"
    ))
    .unwrap()
}

fn guest_cart(event_id: &str, cart_id: &str, email: &str, at: &str) -> Value {
    let mut event = add_to_cart(event_id, cart_id, "nobody", at);
    event.as_object_mut().unwrap().remove("customer_id");
    event["customer"] = json!({"email": email, "consents": {"email": true}});
    event
}

#[test]
fn given_a_guest_with_three_carts_when_backtested_then_the_voucher_cap_gives_one_voucher_as_live_does() {
    // GIVEN one guest address on three carts a day apart, and another guest
    let history = history(&[
        guest_cart("g1", "cart-g1", "gia@example.com", "2026-06-10T10:00:00Z"),
        guest_cart("g2", "cart-g2", "gia@example.com", "2026-06-11T10:00:00Z"),
        guest_cart("g3", "cart-g3", "GIA@example.com", "2026-06-12T10:00:00Z"),
        guest_cart("h1", "cart-h1", "hugo@example.com", "2026-06-12T10:00:00Z"),
    ]);
    assert_eq!(history.customers.len(), 2, "grouped by the voucher owner: {:#?}", history.customers);

    // WHEN a draft offering a voucher is backtested
    let report = backtest(&history, &options(one_voucher_email("draft"), "2026-06-20T00:00:00Z"));

    // THEN every cart gets its email (guests' caps are per cart), but gia's
    // address gets one voucher within the cap window, hugo his own
    assert_eq!((report.carts, report.entering), (4, 4));
    assert_eq!(report.steps[0].sent, 4);
    assert_eq!(report.vouchers.issued, 2, "{report:#?}");
    // 10% of 29.80 twice
    assert_eq!(report.vouchers.face_value, Money::from([("EUR".to_owned(), Decimal::new(596, 2))]));
}

#[test]
fn given_live_messages_and_vouchers_before_the_period_when_backtested_from_it_then_caps_and_cooldowns_see_them() {
    // GIVEN ana's cart A on 9 June, emailed with a voucher by live traffic,
    // and her cart B on 12 June (within the 7-day entry cooldown)
    let live = one_voucher_email("live");
    let mut history = history(&[
        add_to_cart("a1", "cart-a", "ana", "2026-06-09T10:00:00Z"),
        add_to_cart("b1", "cart-b", "ana", "2026-06-12T10:00:00Z"),
    ]);
    let mut builder = HistoryBuilder::default();
    builder.add_voucher(crate::voucher::Voucher {
        code: crate::voucher::VoucherCode::generate(
            Some("LV"),
            &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7),
        ),
        cart_id: "cart-a".into(),
        owner: crate::voucher::VoucherOwner::customer(&"ana".into()),
        customer_key: crate::ids::CustomerKey::Customer("ana".into()),
        campaign_id: "live".into(),
        step: 0,
        variant: None,
        terms: crate::voucher::VoucherTerms {
            tier: crate::voucher::TierName::Standard,
            discount: crate::voucher::Discount::PercentOff { percent: Decimal::from(10), max_amount: None },
            currency: "EUR".into(),
            min_cart_value: None,
        },
        issued_at: t("2026-06-09T10:30:00Z"),
        expires_at: t("2026-06-16T10:30:00Z"),
        status: crate::voucher::VoucherStatus::Issued,
        published_at: None,
    });
    history.vouchers = builder.build().vouchers;
    let only_a = History { customers: history.customers.clone(), ..History::default() };
    let mut only_a = only_a;
    only_a.customers[0].carts.retain(|c| c.cart_id.as_str() == "cart-a");
    record_live(&mut only_a, &live, "2026-06-20T00:00:00Z");
    history.messages = only_a.messages;
    let mut draft = one_voucher_email("draft");
    draft.caps.entry_cooldown = Duration::hours(1);

    // WHEN a draft with a one-hour cooldown is backtested from 11 June
    let mut opts = options(draft.clone(), "2026-06-20T00:00:00Z");
    opts.from = Some("2026-06-11".parse().unwrap());
    let report = backtest(&history, &opts);

    // THEN only cart B counts, gets its email, but no voucher: live's voucher
    // for cart A is within the cap window
    assert_eq!((report.carts, report.entering, report.vouchers.issued), (1, 1, 0), "{report:#?}");

    // AND with the live 7-day cooldown, live's email to cart A keeps cart B out
    let mut opts = options(one_voucher_email("draft"), "2026-06-20T00:00:00Z");
    opts.from = Some("2026-06-11".parse().unwrap());
    let report = backtest(&history, &opts);
    assert_eq!((report.carts, report.entering), (1, 0));
    assert_eq!(report.suppressed, [Suppressed { step: 1, code: ReasonCode::EntryCooldown, carts: 1 }]);
}

#[test]
fn given_a_shadow_campaign_waiting_when_the_live_one_stopped_then_its_timer_gives_the_live_one_another_check() {
    // GIVEN a cart without consent at 10:00 and consent given at 11:00; a
    // shadow campaign whose first step is due at 12:00
    let history = history(&[
        without_consent(add_to_cart("a1", "cart-a", "ivy", "2026-06-10T10:00:00Z")),
        json!({"event_id": "c1", "type": "identify", "customer_id": "ivy", "occurred_at": "2026-06-10T11:00:00Z",
               "customer": {"consents": {"email": true}}}),
    ]);
    let live = one_email("live", "30m");
    let mut shadow = one_email("shadow", "2h");
    shadow.mode = crate::campaign::CampaignMode::Shadow;

    // WHEN replayed with both stored
    let a = trace_with(&history, &[live.clone(), shadow], "cart-a", "2026-06-12T00:00:00Z");

    // THEN as in the checker: stopped at 10:30 (no consent), woken at 12:00
    // by the shadow's timer, and then the live campaign sends
    let sent: Vec<DateTime<Utc>> = a.decisions.iter().filter(|d| d.outcome == Outcome::Sent).map(|d| d.at).collect();
    assert_eq!(sent, [t("2026-06-10T12:00:00Z")], "{a:#?}");
    assert_eq!(a.decisions[0].code, ReasonCode::NoConsent);
    // without the shadow there is no second check
    assert_eq!(trace_of(&history, &live, "cart-a", "2026-06-12T00:00:00Z").sends().count(), 0);
}

#[test]
fn given_a_draft_with_the_live_holdout_when_put_beside_it_then_the_same_customers_are_held_out() {
    // GIVEN 40 customers' carts, live traffic of a campaign holding out 50 %
    let events: Vec<Value> = (0..40)
        .map(|i| add_to_cart(&format!("e{i}"), &format!("cart-{i}"), &format!("c{i}"), "2026-06-10T10:00:00Z"))
        .collect();
    let mut history = history(&events);
    let live = two_emails("live", 50);
    record_live(&mut history, &live, "2026-06-12T00:00:00Z");
    let held_live = history.messages.values().filter(|m| matches!(m.status, MessageStatus::HeldOut { .. })).count();
    assert!(held_live > 0 && held_live < 80, "{held_live}");

    // WHEN the same steps under another id are put beside it
    let mut opts = options(two_emails("draft", 50), "2026-06-12T00:00:00Z");
    opts.against = Some("live".into());
    let report = run(&history, &[live], &opts, None, &mut |_| {}).unwrap();

    // THEN the draft holds out whom live held out: nothing differs
    let against = report.against.unwrap();
    assert_eq!(against.replay_mismatches, 0);
    assert_eq!(against.carts_deciding_differently, 0, "{:#?}", against.differing);
    assert_eq!(report.held_out as usize * 2, held_live);
    assert!(report.steps.iter().all(|r| r.difference == Some(0)), "{:#?}", report.steps);
}

/// The measurement report's row of `live` over facts of live traffic: 200
/// carts emailed at step 1 (10 orders attributed), 100 of them emailed at
/// step 2 (2 orders), orders of 40 EUR.
fn measured(live: &Campaign) -> CampaignReport {
    measured_priced(live, |_| ("EUR", 40))
}

/// [`measured`] with cart `i`'s order in `price(i)` (currency, amount).
fn measured_priced(live: &Campaign, price: impl Fn(u32) -> (&'static str, i64)) -> CampaignReport {
    use crate::measure::{Fact, FactKind, MessageOutcome, SegmentLabel};
    let day = |d: u32| t(&format!("2026-06-{:02}T10:00:00Z", 1 + d % 20));
    let mut facts = Vec::new();
    for i in 0..200u32 {
        let (cart, key) = (format!("cart-{i}"), crate::ids::CustomerKey::Customer(format!("c{i}").as_str().into()));
        facts.push(Fact::new(
            day(i),
            FactKind::Entered {
                campaign_id: live.id.clone(),
                cart_id: cart.as_str().into(),
                customer_key: key.clone(),
                group: crate::measure::Group::Treated,
                variant: None,
                segment: SegmentLabel::Other,
                value: None,
                currency: None,
            },
        ));
        let steps = if i < 100 { 2 } else { 1 };
        for step in 0..steps {
            facts.push(Fact::new(
                day(i) + Duration::hours(i64::from(step)),
                FactKind::Message {
                    campaign_id: live.id.clone(),
                    cart_id: cart.as_str().into(),
                    customer_key: key.clone(),
                    message_id: crate::message::MessageRecord::id_for(&cart, step, Channel::Email),
                    group: crate::measure::Group::Treated,
                    variant: None,
                    step,
                    channel: Channel::Email,
                    outcome: MessageOutcome::Sent,
                },
            ));
        }
        // Carts 0-1 buy after step 2; 100-109 after step 1.
        if i < 2 || (100..110).contains(&i) {
            facts.push(Fact::new(
                day(i) + Duration::hours(3),
                FactKind::Order {
                    order_id: format!("o-{i}"),
                    cart_id: Some(cart.as_str().into()),
                    customer_key: Some(key),
                    value: Some(Decimal::from(price(i).1)),
                    currency: Some(price(i).0.into()),
                    coupon: None,
                },
            ));
        }
    }
    let query = crate::measure::report::ReportQuery::new(
        Some(live.id.clone()),
        "2026-06-01".parse().unwrap(),
        "2026-06-30".parse().unwrap(),
    );
    let report = crate::measure::report::build_report(&facts, std::slice::from_ref(live), &query, &Prices::default());
    report.campaigns.into_iter().find(|c| c.campaign_id == live.id).unwrap()
}

#[test]
fn given_measured_rates_per_step_when_estimated_then_each_row_applies_its_own_rate_with_an_interval() {
    // GIVEN the live campaign's measured report, and history where the
    // draft sends steps 1 and 2 to 4 carts each (nothing stops them)
    let live = two_emails("live", 0);
    let report = measured(&live);
    let step = |n: u32| report.by_step[&n].clone();
    assert_eq!((step(1).sent, step(2).sent), (200, 100));
    let (orders_1, orders_2) = (step(1).attributed_orders, step(2).attributed_orders);
    // (the 10 orders after step 1 and the 2 after step 2, each on its own step)
    assert_eq!((orders_1, orders_2), (10, 2), "{:#?}", report.by_step);
    let events: Vec<Value> = (0..4)
        .map(|i| add_to_cart(&format!("e{i}"), &format!("cart-{i}"), &format!("c{i}"), "2026-06-10T10:00:00Z"))
        .collect();
    let mut history = history(&events);
    record_live(&mut history, &live, "2026-06-12T00:00:00Z");
    let mut draft = two_emails("draft", 0);
    // A third step, which the live campaign does not have.
    draft.steps.push(draft.steps[1].clone());

    // WHEN the draft is backtested against it with that report
    let mut opts = options(draft, "2026-06-12T00:00:00Z");
    opts.against = Some("live".into());
    let out = run(&history, &[live], &opts, Some(&report), &mut |_| {}).unwrap();

    // THEN each row's figure is its sends times its step's measured orders per message
    let estimate = &out.estimate;
    assert!(estimate.basis.starts_with("Estimate from measured rates"), "{}", estimate.basis);
    let rows: Vec<(u32, Channel, u64)> = estimate.rows.iter().map(|r| (r.step, r.channel, r.sent)).collect();
    assert_eq!(rows[..2], [(1, Channel::Email, 4), (2, Channel::Email, 4)]);
    let expected_1 = 4.0 * orders_1 as f64 / 200.0;
    let expected_2 = 4.0 * orders_2 as f64 / 100.0;
    assert!((estimate.rows[0].orders.unwrap() - expected_1).abs() < 1e-9);
    assert!((estimate.rows[1].orders.unwrap() - expected_2).abs() < 1e-9);
    let total = estimate.recovered_orders.unwrap();
    assert!((total - (expected_1 + expected_2)).abs() < 1e-9, "{total}");
    let Interval(low, high) = estimate.recovered_orders_ci95.unwrap();
    assert!(low <= total && total <= high && low >= 0.0, "{low} {total} {high}");
    // revenue is orders times the measured 40 EUR order, with its interval
    let revenue = estimate.recovered_revenue["EUR"];
    assert_eq!(revenue, (Decimal::from_f64_retain(total).unwrap() * Decimal::from(40)).round_dp(2));
    let (low_revenue, high_revenue) = estimate.recovered_revenue_ci95.clone().unwrap();
    assert!(low_revenue["EUR"] <= revenue && revenue <= high_revenue["EUR"]);
    // and the third step has no comparable rate: it says so and adds nothing
    let third = &estimate.rows[2];
    assert_eq!((third.step, third.channel, third.sent), (3, Channel::Email, 4));
    assert!(third.orders.is_none() && third.basis.starts_with("No comparable measured rate"), "{}", third.basis);
    assert!(estimate.basis.contains("1 of the draft's steps and channels have no comparable"), "{}", estimate.basis);
}

#[test]
fn given_recovered_orders_in_eur_and_usd_when_estimated_then_orders_and_revenue_are_split_per_currency() {
    // GIVEN the live campaign's 12 recovered orders: 6 of 40 EUR and 6 of 60 USD
    let live = two_emails("live", 0);
    let report = measured_priced(&live, |i| if i % 2 == 0 { ("EUR", 40) } else { ("USD", 60) });
    let counts: Vec<(&str, u64)> = report.recovered_orders_by_currency.iter().map(|(c, n)| (c.as_str(), *n)).collect();
    assert_eq!(counts, [("EUR", 6), ("USD", 6)]);
    let events: Vec<Value> = (0..4)
        .map(|i| add_to_cart(&format!("e{i}"), &format!("cart-{i}"), &format!("c{i}"), "2026-06-10T10:00:00Z"))
        .collect();
    let mut history = history(&events);
    record_live(&mut history, &live, "2026-06-12T00:00:00Z");

    // WHEN the same campaign is backtested against it with that report
    let mut opts = options(two_emails("live", 0), "2026-06-12T00:00:00Z");
    opts.against = Some("live".into());
    let out = run(&history, &[live], &opts, Some(&report), &mut |_| {}).unwrap();

    // THEN half the estimated orders are in each currency, each at its own
    // currency's order value: never every order in EUR and again in USD
    let estimate = &out.estimate;
    let total = estimate.recovered_orders.unwrap();
    assert!(total > 0.0);
    let split = &estimate.recovered_orders_by_currency;
    assert_eq!(split.keys().collect::<Vec<_>>(), ["EUR", "USD"]);
    assert!((split["EUR"] - total / 2.0).abs() < 1e-9 && (split["USD"] - total / 2.0).abs() < 1e-9, "{split:?}");
    let revenue =
        |orders: f64, value: i64| (Decimal::from_f64_retain(orders).unwrap() * Decimal::from(value)).round_dp(2);
    assert_eq!(estimate.recovered_revenue["EUR"], revenue(split["EUR"], 40));
    assert_eq!(estimate.recovered_revenue["USD"], revenue(split["USD"], 60));
    let (low, high) = estimate.recovered_revenue_ci95.clone().unwrap();
    for currency in ["EUR", "USD"] {
        assert!(low[currency] <= estimate.recovered_revenue[currency]);
        assert!(estimate.recovered_revenue[currency] <= high[currency]);
    }
}

/// One email 30 minutes after the last activity, with email in quiet hours (21:00-08:00 UTC).
fn one_quiet_email(id: &str) -> Campaign {
    let mut campaign = one_email(id, "30m");
    campaign.quiet_hours.channels = vec![Channel::Email];
    campaign
}

#[test]
fn given_a_reminder_deferred_to_the_morning_and_a_purchase_in_the_night_when_counted_then_it_is_deferred_then_stopped()
{
    // GIVEN three carts at 20:45 UTC (due 21:15, in quiet hours until 08:00):
    // "night" is bought at 23:00, "morning" is not, "day" was filled at noon
    let history = history(&[
        add_to_cart("n1", "night", "nia", "2026-06-10T20:45:00Z"),
        json!({"event_id": "n2", "type": "purchase", "cart_id": "night", "customer_id": "nia",
               "occurred_at": "2026-06-10T23:00:00Z", "order_id": "o-1", "value": "29.80", "currency": "EUR"}),
        add_to_cart("m1", "morning", "mo", "2026-06-10T20:45:00Z"),
        add_to_cart("d1", "day", "dee", "2026-06-10T12:00:00Z"),
    ]);

    // WHEN the draft is backtested
    let report = backtest(&history, &options(one_quiet_email("draft"), "2026-06-12T00:00:00Z"));

    // THEN the morning cart is sent and counted deferred, the day cart sent
    // at once, and the night cart deferred then stopped by its purchase
    assert_eq!(report.steps.len(), 1);
    assert_eq!((report.steps[0].sent, report.steps[0].deferred), (2, 1));
    let stopped: Vec<(u32, ReasonCode, u64)> =
        report.deferred_then_stopped.iter().map(|s| (s.step, s.code, s.carts)).collect();
    assert_eq!(stopped, [(1, ReasonCode::Purchased, 1)]);
    // (a purchase is not a suppression: the cart needed no reminder)
    assert!(report.suppressed.is_empty(), "{:?}", report.suppressed);
}

#[test]
fn given_a_deferred_cart_edited_and_then_reminded_when_counted_then_it_is_not_deferred_then_stopped() {
    // GIVEN a cart deferred at 21:15 whose customer empties it at 22:00 and fills it again at 09:00
    let mut emptied = add_to_cart("e2", "cart", "eve", "2026-06-10T22:00:00Z");
    emptied["type"] = json!("cart_update");
    emptied["items"] = json!([]);
    let history = history(&[
        add_to_cart("e1", "cart", "eve", "2026-06-10T20:45:00Z"),
        emptied,
        add_to_cart("e3", "cart", "eve", "2026-06-11T09:00:00Z"),
    ]);

    // WHEN the draft is backtested
    let report = backtest(&history, &options(one_quiet_email("draft"), "2026-06-12T00:00:00Z"));

    // THEN the step went out in the end: nothing is deferred then stopped
    assert_eq!(report.steps.iter().map(|r| r.sent).sum::<u64>(), 1);
    assert!(report.deferred_then_stopped.is_empty(), "{:?}", report.deferred_then_stopped);
}
