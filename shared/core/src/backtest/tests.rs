//! Specifications of the backtest over small histories written as canonical
//! events (the `--events` path), GIVEN / WHEN / THEN.

use chrono::{DateTime, Duration, Utc};
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
    let campaigns = [draft.clone()];
    let setup = Setup { campaigns: &campaigns, channels: &Channel::ALL, until: t(until) };
    let customer = history.customers.iter().find(|c| c.carts.iter().any(|r| r.cart_id.as_str() == cart)).unwrap();
    let index = customer.carts.iter().position(|r| r.cart_id.as_str() == cart).unwrap();
    replay_customer(&setup, customer, &history.messages).swap_remove(index)
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
        let message = crate::message::MessageRecord {
            message_id: crate::message::MessageRecord::id_for(cart, 0, Channel::Email),
            cart_id: cart.into(),
            customer_key: key,
            campaign_id: "live".into(),
            step: 0,
            channel: Channel::Email,
            decided_at: t("2026-06-10T10:30:00Z"),
            status: MessageStatus::Queued,
            engagement: Default::default(),
            variant: None,
        };
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
    let _ = Duration::zero();
}
