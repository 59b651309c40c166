use super::*;
use crate::measure::seeded::SplitMix;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn key(customer: Option<&str>, cart: &str) -> CustomerKey {
    match customer {
        Some(id) => CustomerKey::Customer(id.into()),
        None => CustomerKey::Guest(cart.into()),
    }
}

fn entered(cart: &str, customer: Option<&str>, group: Group, when: &str) -> Fact {
    entered_in("default", cart, customer, group, None, when)
}

fn entered_in(
    campaign: &str,
    cart: &str,
    customer: Option<&str>,
    group: Group,
    variant: Option<&str>,
    when: &str,
) -> Fact {
    Fact::new(
        at(when),
        FactKind::Entered {
            campaign_id: campaign.into(),
            cart_id: cart.into(),
            customer_key: key(customer, cart),
            group,
            variant: variant.map(str::to_owned),
            segment: SegmentLabel::Other,
            value: None,
            currency: None,
        },
    )
}

fn message(
    cart: &str,
    customer: Option<&str>,
    step: u32,
    channel: Channel,
    outcome: MessageOutcome,
    when: &str,
) -> Fact {
    message_in("default", cart, customer, step, channel, outcome, when)
}

/// `step` is the step's number (1 for the first); facts hold its index.
fn message_in(
    campaign: &str,
    cart: &str,
    customer: Option<&str>,
    step: u32,
    channel: Channel,
    outcome: MessageOutcome,
    when: &str,
) -> Fact {
    let group = match outcome {
        MessageOutcome::WouldSend if campaign.starts_with("shadow") => Group::Shadow,
        MessageOutcome::WouldSend => Group::HeldOut,
        _ => Group::Treated,
    };
    Fact::new(
        at(when),
        FactKind::Message {
            campaign_id: campaign.into(),
            cart_id: cart.into(),
            customer_key: key(customer, cart),
            message_id: format!("{cart}#{step}#{}", channel.as_str()).as_str().into(),
            group,
            variant: None,
            step: step - 1,
            channel,
            outcome,
        },
    )
}

fn order(id: &str, cart: Option<&str>, customer: Option<&str>, value: &str, currency: &str, when: &str) -> Fact {
    Fact::new(
        at(when),
        FactKind::Order {
            order_id: id.into(),
            cart_id: cart.map(CartId::from),
            customer_key: customer.map(|c| CustomerKey::Customer(c.into())),
            value: Some(value.parse().unwrap()),
            currency: Some(currency.into()),
            coupon: None,
        },
    )
}

fn returned(id: &str, order_id: &str, customer: &str, value: &str, currency: &str, when: &str) -> Fact {
    Fact::new(
        at(when),
        FactKind::Return {
            return_id: id.into(),
            order_id: order_id.into(),
            customer_key: CustomerKey::Customer(customer.into()),
            value: value.parse().unwrap(),
            currency: currency.into(),
        },
    )
}

fn query() -> ReportQuery {
    ReportQuery::new(None, day("2026-11-01"), day("2026-11-14"))
}

fn report(facts: &[Fact]) -> Report {
    build_report(facts, &[], &query(), &Prices::default())
}

fn campaign(report: &Report, id: &str) -> CampaignReport {
    report.campaigns.iter().find(|c| c.campaign_id == id).cloned().unwrap()
}

fn money(pairs: &[(&str, &str)]) -> Money {
    pairs.iter().map(|(c, v)| ((*c).to_owned(), v.parse().unwrap())).collect()
}

use Channel::{Email, Push, Sms};
use MessageOutcome::{Sent, WouldSend};

/// A treated cart that got an email at 10:00 on 2 November.
fn emailed(cart: &str, customer: Option<&str>) -> Vec<Fact> {
    vec![
        entered(cart, customer, Group::Treated, "2026-11-02T10:00:00Z"),
        message(cart, customer, 1, Email, Sent, "2026-11-02T10:00:00Z"),
    ]
}

#[test]
fn given_purchases_one_second_inside_and_outside_the_window_when_reported_then_only_the_inside_one_recovers() {
    let mut facts = emailed("inside", Some("u1"));
    facts.extend(emailed("outside", Some("u2")));
    facts.push(order("o-in", Some("inside"), Some("u1"), "50.00", "EUR", "2026-11-03T09:59:59Z"));
    facts.push(order("o-out", Some("outside"), Some("u2"), "70.00", "EUR", "2026-11-03T10:00:01Z"));

    let r = campaign(&report(&facts), "default");

    assert_eq!((r.treated, r.recovered_treated), (2, 1));
    assert_eq!(r.attributed_revenue, money(&[("EUR", "50.00")]));
    assert_eq!(r.by_channel[&Email].attributed_orders, 1);
    // The order outside still counts among all the period's orders.
    assert_eq!(r.aov_all_orders, money(&[("EUR", "60.00")]));
    assert_eq!(r.aov_recovered, money(&[("EUR", "50.00")]));
}

#[test]
fn given_a_channel_window_shorter_than_the_recovery_window_when_reported_then_recovery_holds_but_attribution_lapses() {
    let mut facts = emailed("c1", Some("u1"));
    facts.push(order("o1", Some("c1"), Some("u1"), "40.00", "EUR", "2026-11-02T20:00:00Z"));
    let mut q = query();
    q.channel_windows.insert(Email, Duration::hours(6));

    let r = campaign(&build_report(&facts, &[], &q, &Prices::default()), "default");

    assert_eq!(r.recovered_treated, 1);
    assert!(r.attributed_revenue.is_empty(), "{:?}", r.attributed_revenue);
}

#[test]
fn given_a_purchase_by_the_same_customer_on_another_cart_when_reported_then_the_abandoned_cart_is_recovered() {
    let mut facts = emailed("abandoned", Some("u1"));
    facts.extend(emailed("guest-cart", None));
    // u1 buys on a fresh cart; a different guest buys on a fresh cart too.
    facts.push(order("o1", Some("fresh"), Some("u1"), "30.00", "EUR", "2026-11-02T12:00:00Z"));
    facts.push(order("o2", Some("other-fresh"), None, "30.00", "EUR", "2026-11-02T12:00:00Z"));

    let r = campaign(&report(&facts), "default");

    assert_eq!((r.treated, r.recovered_treated), (2, 1), "only the known customer's purchase counts");
    assert_eq!(r.attributed_revenue, money(&[("EUR", "30.00")]));
}

#[test]
fn given_a_late_purchase_event_when_reported_then_it_counts_at_its_own_time_and_credits_the_message_before_it() {
    // The purchase at 11:00 arrived (was recorded) after step 2 went out at
    // 10:00 the next day: its fact sits last and is older than step 2's.
    let facts = vec![
        entered("c1", Some("u1"), Group::Treated, "2026-11-02T09:30:00Z"),
        message("c1", Some("u1"), 1, Email, Sent, "2026-11-02T10:00:00Z"),
        message("c1", Some("u1"), 2, Push, Sent, "2026-11-03T10:00:00Z"),
        order("o1", Some("c1"), Some("u1"), "80.00", "EUR", "2026-11-02T11:00:00Z"),
    ];

    let r = campaign(&report(&facts), "default");

    assert_eq!(r.recovered_treated, 1);
    assert_eq!(r.by_step[&1].attributed_orders, 1);
    assert_eq!(r.by_step[&2].attributed_orders, 0);
    assert_eq!(r.by_channel[&Push].attributed_orders, 0);
}

#[test]
fn given_a_duplicate_purchase_when_reported_then_the_order_counts_once() {
    let mut facts = emailed("c1", Some("u1"));
    let purchase = order("o1", Some("c1"), Some("u1"), "25.00", "EUR", "2026-11-02T11:00:00Z");
    // The same fact twice, and the same order id under another fact id
    // (e.g. a second purchase event recorded later).
    let mut again = order("o1", Some("c1"), Some("u1"), "25.00", "EUR", "2026-11-02T11:05:00Z");
    again.fact_id = "order#o1#resent".into();
    facts.extend([purchase.clone(), purchase, again]);

    let r = campaign(&report(&facts), "default");

    assert_eq!(r.recovered_treated, 1);
    assert_eq!(r.attributed_revenue, money(&[("EUR", "25.00")]));
    assert_eq!(r.messages.attributed_orders, 1);
    assert_eq!(r.aov_all_orders, money(&[("EUR", "25.00")]));
}

#[test]
fn given_returns_when_reported_then_revenue_is_net_and_never_below_zero() {
    let mut facts = emailed("c1", Some("u1"));
    facts.extend(emailed("c2", Some("u2")));
    facts.push(order("o1", Some("c1"), Some("u1"), "100.00", "EUR", "2026-11-02T11:00:00Z"));
    facts.push(returned("r1", "o1", "u1", "30.00", "EUR", "2026-11-05T08:00:00Z"));
    facts.push(order("o2", Some("c2"), Some("u2"), "20.00", "EUR", "2026-11-02T11:00:00Z"));
    facts.push(returned("r2", "o2", "u2", "15.00", "EUR", "2026-11-05T08:00:00Z"));
    facts.push(returned("r3", "o2", "u2", "15.00", "EUR", "2026-11-06T08:00:00Z"));

    let r = campaign(&report(&facts), "default");

    assert_eq!(r.recovered_treated, 2, "a returned order was still recovered");
    assert_eq!(r.attributed_revenue, money(&[("EUR", "70.00")]));
}

#[test]
fn given_a_customer_who_switches_devices_when_reported_then_one_order_recovers_only_their_latest_cart() {
    // The phone cart entered at 10:00; the customer signs in on the laptop,
    // whose cart entered at 12:00; they buy from a third (checkout) cart.
    let facts = vec![
        entered("phone", Some("u1"), Group::Treated, "2026-11-02T10:00:00Z"),
        message("phone", Some("u1"), 1, Push, Sent, "2026-11-02T10:30:00Z"),
        entered("laptop", Some("u1"), Group::Treated, "2026-11-02T12:00:00Z"),
        message("laptop", Some("u1"), 1, Email, Sent, "2026-11-02T12:30:00Z"),
        order("o1", Some("checkout"), Some("u1"), "60.00", "EUR", "2026-11-02T13:00:00Z"),
    ];

    let r = campaign(&report(&facts), "default");

    assert_eq!((r.treated, r.recovered_treated), (2, 1));
    // Credited to the last message sent to the customer, on either device.
    assert_eq!(r.by_channel[&Email].attributed_orders, 1);
    assert_eq!(r.by_channel[&Push].attributed_orders, 0);
    assert_eq!(r.attributed_revenue, money(&[("EUR", "60.00")]));
}

#[test]
fn given_orders_in_two_currencies_when_reported_then_amounts_are_never_mixed() {
    let mut facts = emailed("c1", Some("u1"));
    facts.extend(emailed("c2", Some("u2")));
    facts.push(order("o1", Some("c1"), Some("u1"), "10.00", "EUR", "2026-11-02T11:00:00Z"));
    facts.push(order("o2", Some("c2"), Some("u2"), "1500", "JPY", "2026-11-02T11:00:00Z"));
    // A return in another currency than its order's changes nothing.
    facts.push(returned("r1", "o1", "u1", "5", "JPY", "2026-11-03T11:00:00Z"));

    let report = report(&facts);
    let r = campaign(&report, "default");

    assert_eq!(r.attributed_revenue, money(&[("EUR", "10.00"), ("JPY", "1500")]));
    assert_eq!(report.total.attributed_revenue, money(&[("EUR", "10.00"), ("JPY", "1500")]));
    assert_eq!(r.revenue_per_recipient, money(&[("EUR", "5.00"), ("JPY", "750.00")]));
    assert_eq!(r.cost, money(&[("USD", "0.0002")]));
}

/// `treated` and `held_out` carts entered on 3 November, of which the first
/// `recovered_treated` / `recovered_held_out` bought within the window.
fn arms(treated: usize, recovered_treated: usize, held_out: usize, recovered_held_out: usize) -> Vec<Fact> {
    let mut facts = Vec::new();
    for (group, n, recovered, outcome) in
        [(Group::Treated, treated, recovered_treated, Sent), (Group::HeldOut, held_out, recovered_held_out, WouldSend)]
    {
        for i in 0..n {
            let cart = format!("{}-{i}", group.as_str());
            let customer = format!("u-{cart}");
            facts.push(entered(&cart, Some(&customer), group, "2026-11-03T08:00:00Z"));
            facts.push(message(&cart, Some(&customer), 1, Email, outcome, "2026-11-03T09:00:00Z"));
            if i < recovered {
                facts.push(order(
                    &format!("o-{cart}"),
                    Some(&cart),
                    Some(&customer),
                    "10",
                    "EUR",
                    "2026-11-03T12:00:00Z",
                ));
            }
        }
    }
    facts
}

#[test]
fn given_fewer_carts_than_the_minimum_per_arm_when_reported_then_the_evidence_is_not_enough_data() {
    let r = campaign(&report(&arms(400, 200, 99, 10)), "default");

    assert_eq!(r.evidence, Evidence::NotEnoughData);
    assert!(r.lift_ci95.0 > 0.0, "the interval is shown all the same: {:?}", r.lift_ci95);
    assert_eq!(
        r.verdict,
        "Not enough data yet: 400 treated and 99 held-out carts; at least 100 in each are needed before a verdict."
    );
}

#[test]
fn given_a_clear_lift_when_reported_then_the_verdict_says_how_much_with_its_interval() {
    let r = campaign(&report(&arms(400, 200, 100, 10)), "default");

    assert_eq!(r.evidence, Evidence::Raises);
    assert!((r.lift - 0.4).abs() < 1e-12);
    let Interval(low, high) = r.lift_ci95;
    assert_eq!(
        r.verdict,
        format!("Reminders raised recovery by 40.0 points ({:.1} to {:.1}).", low * 100.0, high * 100.0)
    );
    assert!((r.incremental_orders - 160.0).abs() < 1e-9);
    assert_eq!(r.relative_lift, Some(4.0));
    // Revenue per treated cart 2000 / 400 = 5.00, per held-out 100 / 100 = 1.00: (5 - 1) x 400.
    assert_eq!(r.incremental_revenue, money(&[("EUR", "1600.00")]));
    // 400 emails at $0.0001 = $0.04, over 160 incremental orders.
    assert_eq!(r.cost, money(&[("USD", "0.04")]));
    assert_eq!(r.cost_per_incremental_order, Some(money(&[("USD", "0.0002")])));
    assert_eq!(r.messages.sent, 400);
    assert_eq!(r.messages.would_send, 100);
    let day3 = r.days.iter().find(|d| d.day == day("2026-11-03")).unwrap();
    assert_eq!((day3.entered_treated, day3.recovered_treated, day3.entered_held_out), (400, 200, 100));
    assert_eq!(r.days.len(), 14);
}

#[test]
fn given_a_shadow_campaign_when_reported_then_it_shows_would_sends_and_recovery_but_no_lift() {
    let mut facts = Vec::new();
    for i in 0..4 {
        let cart = format!("c{i}");
        facts.push(entered_in("shadow-draft", &cart, Some(&cart), Group::Shadow, None, "2026-11-02T10:00:00Z"));
        facts.push(message_in("shadow-draft", &cart, Some(&cart), 1, Sms, WouldSend, "2026-11-02T10:30:00Z"));
    }
    facts.push(order("o1", Some("c0"), Some("c0"), "10", "EUR", "2026-11-02T11:00:00Z"));

    let report = report(&facts);
    let r = campaign(&report, "shadow-draft");

    assert!(r.shadow);
    assert_eq!((r.entered, r.messages.would_send, r.messages.sent, r.recovered_treated), (4, 4, 0, 1));
    assert_eq!(r.recovery_rate_treated, 0.25);
    assert_eq!(r.evidence, Evidence::NoHoldout);
    assert!(r.verdict.contains("no lift"), "{}", r.verdict);
    assert_eq!(r.cost, money(&[("USD", "0")]));
    assert_eq!(report.total.entered, 0, "the total is live campaigns only");
}

#[test]
fn given_an_experiment_when_reported_then_each_variant_is_compared_with_control() {
    let mut facts = Vec::new();
    for (variant, n, recovered) in [("control", 200, 20), ("late", 200, 60)] {
        for i in 0..n {
            let cart = format!("{variant}-{i}");
            facts.push(entered_in(
                "default",
                &cart,
                Some(&cart),
                Group::Treated,
                Some(variant),
                "2026-11-04T08:00:00Z",
            ));
            if i < recovered {
                facts.push(order(&format!("o-{cart}"), Some(&cart), Some(&cart), "10", "EUR", "2026-11-04T09:00:00Z"));
            }
        }
    }

    let r = campaign(&report(&facts), "default");

    let [control, late] = &r.variants[..] else { panic!("{:?}", r.variants) };
    assert!(control.control && !late.control);
    assert_eq!((late.entered, late.recovered), (200, 60));
    assert!((late.difference - 0.2).abs() < 1e-12);
    assert_eq!(late.evidence, Evidence::Raises);
    assert!(late.difference_ci95.0 > 0.0);
    assert!(late.probability_beats_control > 0.999, "{}", late.probability_beats_control);
    assert_eq!(control.probability_beats_control, 0.5);
}

#[test]
fn given_the_same_facts_in_another_order_when_reported_then_the_bytes_are_the_same() {
    let mut facts = arms(120, 30, 110, 10);
    facts.extend(emailed("c1", Some("u1")));
    facts.push(order("o1", Some("c1"), Some("u1"), "12.34", "EUR", "2026-11-02T11:00:00Z"));
    let first = serde_json::to_vec(&report(&facts)).unwrap();
    facts.reverse();
    facts.rotate_left(17);
    assert_eq!(serde_json::to_vec(&report(&facts)).unwrap(), first);
}

#[test]
fn given_carts_outside_the_period_or_another_campaign_when_reported_then_they_are_left_out() {
    let mut facts = emailed("in", Some("u1"));
    facts.push(entered("before", Some("u2"), Group::Treated, "2026-10-31T23:59:59Z"));
    facts.push(entered_in("other", "elsewhere", Some("u3"), Group::Treated, None, "2026-11-02T10:00:00Z"));
    let mut q = query();
    q.campaign = Some("default".into());

    let report = build_report(&facts, &[], &q, &Prices::default());

    assert_eq!(report.campaigns.len(), 1);
    assert_eq!(report.campaigns[0].entered, 1);
    assert_eq!(report.total.entered, 1);
}

fn campaign_with(id: &str, change: impl FnOnce(&mut Campaign)) -> Campaign {
    let mut campaign = Campaign::default_campaign();
    campaign.id = id.into();
    change(&mut campaign);
    campaign
}

fn experiment(control: Option<&str>, names: &[&str]) -> crate::campaign::Experiment {
    crate::campaign::Experiment {
        id: "exp".into(),
        variants: names
            .iter()
            .map(|n| crate::campaign::Variant { name: (*n).into(), weight: 1, steps: Vec::new() })
            .collect(),
        control: control.map(str::to_owned),
    }
}

#[test]
fn given_campaign_settings_when_reported_then_its_minimum_per_arm_control_variant_and_mode_are_used() {
    // 60 carts per arm clear a minimum of 50 but not the default of 100.
    let facts = arms(60, 30, 60, 3);
    let strict = [campaign_with("default", |_| {})];
    let lenient = [campaign_with("default", |c| c.min_sample_per_arm = 50)];
    let run =
        |campaigns: &[Campaign]| campaign(&build_report(&facts, campaigns, &query(), &Prices::default()), "default");
    assert_eq!(run(&strict).evidence, Evidence::NotEnoughData);
    assert_eq!(run(&lenient).evidence, Evidence::Raises);

    // The configured control is "b", though "a" sorts first.
    let mut facts = Vec::new();
    for (variant, n) in [("a", 3), ("b", 2)] {
        for i in 0..n {
            let cart = format!("{variant}{i}");
            facts.push(entered_in("default", &cart, None, Group::Treated, Some(variant), "2026-11-04T08:00:00Z"));
        }
    }
    let campaigns = [campaign_with("default", |c| c.experiment = Some(experiment(Some("b"), &["a", "b"])))];
    let r = campaign(&build_report(&facts, &campaigns, &query(), &Prices::default()), "default");
    let control: Vec<(&str, bool)> = r.variants.iter().map(|v| (v.variant.as_str(), v.control)).collect();
    assert_eq!(control, [("a", false), ("b", true)]);

    // A campaign set to shadow mode reports no lift even before its facts say so.
    let campaigns = [campaign_with("draft", |c| c.mode = CampaignMode::Shadow)];
    let facts = vec![entered_in("draft", "c1", None, Group::Treated, None, "2026-11-04T08:00:00Z")];
    let r = campaign(&build_report(&facts, &campaigns, &query(), &Prices::default()), "draft");
    assert!(r.shadow);
    assert_eq!(r.evidence, Evidence::NoHoldout);
}

/// GIVEN a fortnight of 20,000 carts whose purchase probabilities are known
/// (held out 10%; treated with variant "control" 14%; with variant "early",
/// reminders that put customers off, 7%; half the treated in each) WHEN
/// reported THEN the 95% interval of the lift holds the true lift (0.5
/// points), the harmful variant is flagged as lowering recovery against
/// control with an interval that holds its true difference (-7 points).
/// Measured: lift 1.5 points (-0.6 to 3.7); "early" -6.3 points (-7.7 to
/// -4.8) against control, probability of beating it 0.0. (The services-level
/// twin of this test is `tests/tests/measurement_simulation.rs`.)
#[test]
fn given_a_shop_whose_truth_is_known_when_reported_then_the_intervals_hold_the_true_lift_and_flag_the_harm() {
    let mut rng = SplitMix(10);
    let mut facts = Vec::new();
    for i in 0..20_000u32 {
        let cart = format!("cart-{i}");
        let customer = format!("customer-{i}");
        let key = CustomerKey::Customer(customer.as_str().into());
        let group = if crate::measure::assign_group("default", 10, &key) == Group::HeldOut {
            Group::HeldOut
        } else {
            Group::Treated
        };
        let variant = match crate::measure::assign_variant("exp", &[1, 1], &key) {
            Some(0) => "control",
            _ => "early",
        };
        let p = match (group, variant) {
            (Group::HeldOut, _) => 0.10,
            (_, "control") => 0.14,
            _ => 0.07,
        };
        let entered_at = at("2026-11-01T00:00:00Z") + Duration::minutes(i64::from(i) * 14 * 24 * 60 / 20_000);
        let variant = (group == Group::Treated).then_some(variant);
        let mut entry = entered_in("default", &cart, Some(&customer), group, variant, "2026-11-01T00:00:00Z");
        entry.at = entered_at;
        facts.push(entry);
        let outcome = if group == Group::Treated { Sent } else { WouldSend };
        let mut touch = message(&cart, Some(&customer), 1, Email, outcome, "2026-11-01T00:00:00Z");
        touch.at = entered_at;
        facts.push(touch);
        if rng.uniform() < p {
            let mut bought =
                order(&format!("o-{i}"), Some(&cart), Some(&customer), "30", "EUR", "2026-11-01T00:00:00Z");
            bought.at = entered_at + Duration::hours(3);
            facts.push(bought);
        }
    }
    let campaigns =
        [campaign_with("default", |c| c.experiment = Some(experiment(Some("control"), &["control", "early"])))];

    let r = campaign(&build_report(&facts, &campaigns, &query(), &Prices::default()), "default");
    eprintln!("lift {:.4} {:?}; {:?}", r.lift, r.lift_ci95, r.variants);
    assert_eq!(r.entered, 20_000);
    let true_lift = (0.14 + 0.07) / 2.0 - 0.10;
    let Interval(low, high) = r.lift_ci95;
    assert!(low <= true_lift && true_lift <= high, "lift {} in [{low}, {high}]", r.lift);
    let early = r.variants.iter().find(|v| v.variant == "early").unwrap();
    assert_eq!(early.evidence, Evidence::Lowers, "{early:?}");
    assert!(early.difference_ci95.0 <= -0.07 && -0.07 <= early.difference_ci95.1, "{early:?}");
    assert!(early.probability_beats_control < 0.001, "{}", early.probability_beats_control);
}

#[test]
fn given_a_shops_own_prices_when_parsed_then_they_replace_the_list_prices_and_a_bad_one_is_named() {
    let prices: Prices = "sms=0.0075, currency=EUR".parse().unwrap();
    assert_eq!(prices.per_message[&Channel::Sms], "0.0075".parse().unwrap());
    assert_eq!(prices.per_message[&Channel::Email], Prices::default().per_message[&Channel::Email]);
    assert_eq!(prices.currency, "EUR");
    assert_eq!("".parse::<Prices>().unwrap(), Prices::default());
    for (text, key) in [("sms=-1", "sms"), ("fax=0.1", "fax"), ("email", "email"), ("currency=euro", "currency")] {
        assert_eq!(text.parse::<Prices>().unwrap_err().key, key, "{text}");
    }
}

/// GIVEN the default campaign (step 1 30 min after the last activity, step 2
/// a day later: reach 24 h) and a 24 h window, a treated cart whose step 2
/// was stopped by a click after step 1 and a held-out cart that would have
/// had both steps, each bought 40 h after entry, and two treated carts that
/// got both steps, bought exactly 48 h and 48 h + 1 s after entry WHEN
/// reported THEN every cart is judged on the same horizon, entry + reach +
/// window = 48 h: the first three are recovered, the last is not.
#[test]
fn given_carts_treated_differently_when_reported_then_each_is_recovered_within_the_same_horizon_from_entry() {
    let entry = "2026-11-02T10:00:00Z";
    let mut facts = vec![
        entered("clicked", Some("u1"), Group::Treated, entry),
        message("clicked", Some("u1"), 1, Email, Sent, "2026-11-02T10:00:00Z"),
        message("clicked", Some("u1"), 1, Email, MessageOutcome::Clicked, "2026-11-02T10:20:00Z"),
        order("o1", Some("clicked"), Some("u1"), "10", "EUR", "2026-11-04T02:00:00Z"),
        entered("held", Some("u2"), Group::HeldOut, entry),
        message("held", Some("u2"), 1, Email, WouldSend, "2026-11-02T10:00:00Z"),
        message("held", Some("u2"), 2, Email, WouldSend, "2026-11-03T10:00:00Z"),
        order("o2", Some("held"), Some("u2"), "10", "EUR", "2026-11-04T02:00:00Z"),
    ];
    for (cart, customer, bought) in [("edge", "u3", "2026-11-04T10:00:00Z"), ("past", "u4", "2026-11-04T10:00:01Z")] {
        facts.push(entered(cart, Some(customer), Group::Treated, entry));
        facts.push(message(cart, Some(customer), 1, Email, Sent, "2026-11-02T10:00:00Z"));
        // Step 2 delivered late in the day: the horizon does not move with it.
        facts.push(message(cart, Some(customer), 2, Email, Sent, "2026-11-03T20:00:00Z"));
        facts.push(order(&format!("o-{cart}"), Some(cart), Some(customer), "10", "EUR", bought));
    }
    let campaigns = [Campaign::default_campaign()];

    let r = campaign(&build_report(&facts, &campaigns, &query(), &Prices::default()), "default");

    assert_eq!((r.treated, r.recovered_treated), (3, 2));
    assert_eq!((r.held_out, r.recovered_held_out), (1, 1));
    // Attribution keeps the last message sent before the order, within its window.
    assert_eq!(r.by_step[&2].attributed_orders, 1, "the edge order, 14 h after its step 2");
    assert_eq!(r.by_step[&1].attributed_orders, 0, "o1 came 40 h after its only message");
}

/// GIVEN the default campaign and an experiment whose second variant sends
/// step 1 a day after the last activity WHEN its reach is computed THEN it
/// runs from the earliest first step (30 min) to the latest step over all
/// variants (24 h + 24 h): 47 h 30 min; without the experiment, 24 h.
#[test]
fn given_variants_with_different_delays_when_the_reach_is_computed_then_it_spans_every_variant() {
    assert_eq!(reach(&Campaign::default_campaign()), Duration::hours(24));
    let campaign = campaign_with("default", |c| {
        let mut exp = experiment(None, &["control", "late"]);
        exp.variants[1]
            .steps
            .push(crate::campaign::StepOverride { delay: Some(Duration::hours(24)), ..Default::default() });
        c.experiment = Some(exp);
    });
    assert_eq!(reach(&campaign), Duration::minutes(47 * 60 + 30));
}

/// `treated` and `held_out` carts of `campaign` entered on 3 November, the
/// first `recovered_*` of them bought within the window.
fn arms_in(
    campaign: &str,
    treated: usize,
    recovered_treated: usize,
    held_out: usize,
    recovered_held_out: usize,
) -> Vec<Fact> {
    let mut facts = Vec::new();
    for (group, n, recovered, outcome) in
        [(Group::Treated, treated, recovered_treated, Sent), (Group::HeldOut, held_out, recovered_held_out, WouldSend)]
    {
        for i in 0..n {
            let cart = format!("{campaign}-{}-{i}", group.as_str());
            let customer = format!("u-{cart}");
            facts.push(entered_in(campaign, &cart, Some(&customer), group, None, "2026-11-03T08:00:00Z"));
            facts.push(message_in(campaign, &cart, Some(&customer), 1, Email, outcome, "2026-11-03T09:00:00Z"));
            if i < recovered {
                let id = format!("o-{cart}");
                facts.push(order(&id, Some(&cart), Some(&customer), "10", "EUR", "2026-11-03T12:00:00Z"));
            }
        }
    }
    facts
}

/// GIVEN two campaigns that each raise recovery by 10 points, one holding
/// out half its carts (60 of 100 treated against 50 of 100 held out) and one
/// a tenth (180 of 900 against 10 of 100), so that pooling their carts
/// shows a fall (24% against 30%) WHEN reported THEN the total's lift is the
/// treated-weighted mean of theirs (+10 points), its held-out rate is
/// weighted the same way (14%), and its interval has the variance
/// sum(w_i^2 v_i).
#[test]
fn given_campaigns_with_different_holdout_shares_when_totalled_then_the_lift_is_stratified_by_campaign() {
    let mut facts = arms_in("half", 100, 60, 100, 50);
    facts.extend(arms_in("tenth", 900, 180, 100, 10));

    let total = report(&facts).total;

    assert_eq!(
        (total.treated, total.held_out, total.recovered_treated, total.recovered_held_out),
        (1000, 200, 240, 60)
    );
    assert!((total.lift - 0.10).abs() < 1e-12, "{}", total.lift);
    assert!((total.recovery_rate_treated - 0.24).abs() < 1e-12);
    assert!((total.recovery_rate_held_out - 0.14).abs() < 1e-12);
    let variance = |x: u64, n: u64| stats::smoothed_variance(x, n).unwrap();
    let v = 0.1f64.powi(2) * (variance(60, 100) + variance(50, 100))
        + 0.9f64.powi(2) * (variance(180, 900) + variance(10, 100));
    let half = stats::always_valid_half_width(v);
    assert!((total.lift_ci95.0 - (0.10 - half)).abs() < 1e-12 && (total.lift_ci95.1 - (0.10 + half)).abs() < 1e-12);
    assert_eq!(total.evidence, Evidence::Raises);
    assert!((total.incremental_orders - 100.0).abs() < 1e-9);
    // Incremental revenue adds the campaigns': (6.00 - 5.00) x 100 + (2.00 - 1.00) x 900.
    assert_eq!(total.incremental_revenue, money(&[("EUR", "1000.00")]));
}

/// GIVEN one customer's cart that entered two live campaigns and was bought
/// once (50 EUR) WHEN reported THEN each campaign counts the order, and the
/// total counts it once in its revenue.
#[test]
fn given_an_order_that_recovered_carts_in_two_campaigns_when_totalled_then_its_revenue_counts_once() {
    let mut facts = Vec::new();
    for campaign in ["first", "second"] {
        facts.push(entered_in(campaign, "c1", Some("u1"), Group::Treated, None, "2026-11-02T10:00:00Z"));
        facts.push(message_in(campaign, "c1", Some("u1"), 1, Email, Sent, "2026-11-02T10:30:00Z"));
    }
    facts.push(order("o1", Some("c1"), Some("u1"), "50.00", "EUR", "2026-11-02T12:00:00Z"));

    let report = report(&facts);

    for id in ["first", "second"] {
        let r = campaign(&report, id);
        assert_eq!(r.recovered_treated, 1, "{id}");
        assert_eq!(r.days[1].revenue_treated, money(&[("EUR", "50.00")]), "{id}");
    }
    let total = &report.total;
    assert_eq!(total.attributed_revenue, money(&[("EUR", "50.00")]));
    assert_eq!(total.days[1].revenue_treated, money(&[("EUR", "50.00")]));
    assert_eq!(total.revenue_per_recipient, money(&[("EUR", "25.00")]), "50.00 over the two recipient carts");
}

/// GIVEN 300 of 1000 treated carts and 200 of 1000 held-out carts recovered
/// WHEN reported THEN the relative lift's interval comes from each rate's own
/// always-valid interval at alpha / 2 = 2.5%: treated [0.252472, 0.347528],
/// held out [0.158348, 0.241652] (hand arithmetic as in `stats`), so
/// [0.252472 / 0.241652 - 1, 0.347528 / 0.158348 - 1] = [0.044772, 1.194718];
/// AND GIVEN a held-out rate whose interval reaches 0 THEN no interval.
#[test]
fn given_both_rates_uncertain_when_the_relative_lift_is_reported_then_its_interval_takes_both_into_account() {
    let r = campaign(&report(&arms(1000, 300, 1000, 200)), "default");

    assert_eq!(r.relative_lift.map(|x| (x * 1e9).round() / 1e9), Some(0.5));
    let Interval(low, high) = r.relative_lift_ci95.unwrap();
    assert!((low - 0.044_772).abs() < 1e-5, "{low}");
    assert!((high - 1.194_718).abs() < 1e-5, "{high}");

    let small = campaign(&report(&arms(400, 200, 100, 10)), "default");
    assert_eq!(small.relative_lift, Some(4.0));
    assert_eq!(small.relative_lift_ci95, None, "10 of 100 held out: its interval starts at 0");
}

/// GIVEN an experiment whose configured control ("b") has no carts yet and
/// a variant "a" with 3 WHEN reported THEN "b" stays the control as an arm of
/// 0 carts with not enough data, and "a" is compared with it (not labelled
/// control itself).
#[test]
fn given_a_configured_control_without_carts_when_reported_then_it_stays_the_control_with_an_empty_arm() {
    let facts: Vec<Fact> = (0..3)
        .map(|i| entered_in("default", &format!("a{i}"), None, Group::Treated, Some("a"), "2026-11-04T08:00:00Z"))
        .collect();
    let campaigns = [campaign_with("default", |c| c.experiment = Some(experiment(Some("b"), &["a", "b"])))];

    let r = campaign(&build_report(&facts, &campaigns, &query(), &Prices::default()), "default");

    let rows: Vec<(&str, bool, u64, Evidence)> =
        r.variants.iter().map(|v| (v.variant.as_str(), v.control, v.entered, v.evidence)).collect();
    assert_eq!(rows, [("a", false, 3, Evidence::NotEnoughData), ("b", true, 0, Evidence::NotEnoughData)]);
    assert_eq!(r.variants[0].difference_ci95, Interval(-1.0, 1.0));
}

/// GIVEN two treated carts, one emailed and bought for 30 EUR, one bought
/// for 50 EUR before any message went out WHEN reported THEN revenue per
/// recipient is the emailed cart's revenue over the one emailed cart: 30.
#[test]
fn given_a_treated_cart_bought_before_any_message_when_reported_then_revenue_per_recipient_leaves_it_out() {
    let mut facts = emailed("c1", Some("u1"));
    facts.push(order("o1", Some("c1"), Some("u1"), "30.00", "EUR", "2026-11-02T11:00:00Z"));
    facts.push(entered("c2", Some("u2"), Group::Treated, "2026-11-02T10:00:00Z"));
    facts.push(order("o2", Some("c2"), Some("u2"), "50.00", "EUR", "2026-11-02T10:05:00Z"));

    let r = campaign(&report(&facts), "default");

    assert_eq!(r.recovered_treated, 2);
    assert_eq!(r.revenue_per_recipient, money(&[("EUR", "30.00")]));
}

/// GIVEN 400 treated carts (200 recovered) and 100 held out (10) WHEN
/// reported THEN each segment shows each group's rate with its interval.
#[test]
fn given_segments_when_reported_then_each_groups_rate_has_its_interval() {
    let r = campaign(&report(&arms(400, 200, 100, 10)), "default");

    let other = r.segments.iter().find(|s| s.name == "other").unwrap();
    assert_eq!(other.recovery_rate_treated_ci95, stats::rate_interval(200, 400));
    assert_eq!(other.recovery_rate_held_out_ci95, stats::rate_interval(10, 100));
    let returner = r.segments.iter().find(|s| s.name == "returner").unwrap();
    assert_eq!(returner.recovery_rate_treated_ci95, Interval(0.0, 1.0), "no carts: everything is possible");
}

fn answer(campaign: &str, message_id: &str, reason: crate::consent::AnswerReason, when: &str) -> Fact {
    Fact::new(
        at(when),
        FactKind::Answer { campaign_id: campaign.into(), cart_id: "c1".into(), message_id: message_id.into(), reason },
    )
}

/// GIVEN answers on two campaigns' messages (one repeated, one after the period)
/// WHEN the report is built
/// THEN each campaign counts its answers in the period by reason (every reason present, 0 when none), the total
/// counts them all, and a repeated answer fact counts once.
#[test]
fn given_answers_on_messages_when_reported_then_each_campaign_counts_them_by_reason() {
    use crate::consent::AnswerReason::{AlreadyBought, TooManyMessages};
    let mut facts = emailed("c1", Some("u1"));
    facts.push(entered_in("winback", "c2", Some("u2"), Group::Treated, None, "2026-11-02T09:30:00Z"));
    facts.extend([
        answer("default", "m1", AlreadyBought, "2026-11-02T12:00:00Z"),
        answer("default", "m1", AlreadyBought, "2026-11-02T12:05:00Z"),
        answer("default", "m2", AlreadyBought, "2026-11-03T12:00:00Z"),
        answer("winback", "m3", TooManyMessages, "2026-11-04T12:00:00Z"),
        answer("default", "m4", TooManyMessages, "2026-11-20T12:00:00Z"),
    ]);
    let report = report(&facts);
    let count = |r: &CampaignReport, reason: &str| r.answers.get(reason).copied();
    let default = campaign(&report, "default");
    assert_eq!(count(&default, "already_bought"), Some(2));
    assert_eq!(count(&default, "too_many_messages"), Some(0), "the answer after the period is not counted");
    assert_eq!((count(&default, "not_interested"), count(&default, "other")), (Some(0), Some(0)));
    assert_eq!(count(&campaign(&report, "winback"), "too_many_messages"), Some(1));
    assert_eq!((count(&report.total, "already_bought"), count(&report.total, "too_many_messages")), (Some(2), Some(1)));
}

// ---------------------------------------------------------------- vouchers

use crate::voucher::{Refusal, TierName};

/// A treated cart of `segment` that entered `campaign` (in `variant`) and got an email.
fn emailed_as(campaign: &str, cart: &str, customer: &str, segment: SegmentLabel, variant: Option<&str>) -> Vec<Fact> {
    let mut entry = entered_in(campaign, cart, Some(customer), Group::Treated, variant, "2026-11-02T10:00:00Z");
    if let FactKind::Entered { segment: slot, .. } = &mut entry.kind {
        *slot = segment;
    }
    vec![entry, message_in(campaign, cart, Some(customer), 1, Email, Sent, "2026-11-02T10:00:00Z")]
}

fn issued(campaign: &str, cart: &str, customer: &str, tier: TierName, variant: Option<&str>) -> Fact {
    Fact::new(
        at("2026-11-02T10:00:00Z"),
        FactKind::VoucherIssued {
            campaign_id: campaign.into(),
            cart_id: cart.into(),
            customer_key: key(Some(customer), cart),
            variant: variant.map(str::to_owned),
            tier,
        },
    )
}

/// Order `order_id` on `cart` (at noon on 2 November) that redeemed the cart's voucher for `discount`.
fn redeemed(
    campaign: &str,
    order_id: &str,
    cart: &str,
    customer: &str,
    tier: TierName,
    discount: Option<&str>,
) -> Fact {
    Fact::new(
        at("2026-11-02T12:00:00Z"),
        FactKind::VoucherRedeemed {
            order_id: order_id.into(),
            campaign_id: campaign.into(),
            cart_id: cart.into(),
            customer_key: key(Some(customer), cart),
            tier,
            discount: discount.map(|d| d.parse().unwrap()),
            currency: "USD".into(),
        },
    )
}

fn abused(order_id: &str, cart: &str, when: &str) -> Fact {
    Fact::new(
        at(when),
        FactKind::VoucherAbuse {
            order_id: order_id.into(),
            campaign_id: "default".into(),
            cart_id: cart.into(),
            refusal: Refusal::AlreadyRedeemed,
        },
    )
}

/// Four treated carts of the default campaign, emailed on 2 November:
/// - `ret` (a returner) got a recovery-tier voucher and bought for $90.00 with it ($10.00 off);
/// - `std` got a standard-tier voucher and bought for $70.00 with it ($3.50 off);
/// - `plain` got no voucher and bought for $60.00;
/// - `idle` got a standard-tier voucher and did not buy.
///
/// And four held-out carts, none bought.
fn voucher_shop() -> Vec<Fact> {
    use SegmentLabel::{Other, Returner};
    use TierName::{Recovery, Standard};
    let mut facts = Vec::new();
    for (cart, customer, segment) in [("ret", "u1", Returner), ("std", "u2", Other), ("plain", "u3", Other)] {
        facts.extend(emailed_as("default", cart, customer, segment, None));
    }
    facts.extend(emailed_as("default", "idle", "u4", Other, None));
    facts.push(issued("default", "ret", "u1", Recovery, None));
    facts.push(issued("default", "std", "u2", Standard, None));
    facts.push(issued("default", "idle", "u4", Standard, None));
    facts.push(order("o-ret", Some("ret"), Some("u1"), "90.00", "USD", "2026-11-02T12:00:00Z"));
    facts.push(redeemed("default", "o-ret", "ret", "u1", Recovery, Some("10.00")));
    facts.push(order("o-std", Some("std"), Some("u2"), "70.00", "USD", "2026-11-02T12:00:00Z"));
    facts.push(redeemed("default", "o-std", "std", "u2", Standard, Some("3.50")));
    facts.push(order("o-plain", Some("plain"), Some("u3"), "60.00", "USD", "2026-11-02T12:00:00Z"));
    for i in 0..4 {
        facts.push(entered(&format!("held-{i}"), Some(&format!("h{i}")), Group::HeldOut, "2026-11-02T10:00:00Z"));
    }
    facts
}

/// GIVEN recovered orders of $90 and $70 that redeemed a voucher and one of $60 that did not
/// WHEN reported THEN the AOV with a voucher is $80.00, without $60.00, and the impact $20.00 beside the
/// seed's target of +$4.50.
#[test]
fn given_recovered_orders_with_and_without_a_voucher_when_reported_then_their_aovs_differ_beside_the_target() {
    let v = campaign(&report(&voucher_shop()), "default").vouchers;

    assert_eq!((v.recovered_orders_with_voucher, v.recovered_orders_without_voucher), (2, 1));
    assert_eq!(v.aov_with_voucher, money(&[("USD", "80.00")]));
    assert_eq!(v.aov_without_voucher, money(&[("USD", "60.00")]));
    assert_eq!(v.aov_impact, money(&[("USD", "20.00")]));
    assert_eq!(v.targets.aov_impact.measured, v.aov_impact);
    assert_eq!(v.targets.aov_impact.target, money(&[("USD", "4.50")]));
}

/// GIVEN $10.00 and $3.50 of redeemed discounts and three recovered orders
/// WHEN reported THEN the discount cost is $13.50, $4.50 per recovered order (the measured discount cost
/// per acquisition, beside the $8.20 target), and the campaign's cost is the emails plus the discounts,
/// also per incremental order.
#[test]
fn given_redeemed_discounts_when_reported_then_their_cost_per_recovered_order_and_in_the_campaigns_cost() {
    let r = campaign(&report(&voucher_shop()), "default");
    let v = &r.vouchers;

    assert_eq!((v.issued, v.redeemed, v.redeemed_without_amount), (3, 2, 0));
    assert_eq!(v.discount_cost, money(&[("USD", "13.50")]));
    assert_eq!(v.discount_cost.get("USD").map(ToString::to_string).as_deref(), Some("13.50"));
    assert_eq!(v.discount_cost_per_recovered_order, money(&[("USD", "4.50")]));
    assert_eq!(v.targets.discount_cost_per_acquisition.measured, money(&[("USD", "4.50")]));
    assert_eq!(v.targets.discount_cost_per_acquisition.target, money(&[("USD", "8.20")]));
    // Four emails at $0.0001 and $13.50 of discounts; 3 of 4 treated recovered against 0 of 4 held out:
    // 3 incremental orders.
    assert_eq!(r.cost, money(&[("USD", "13.5004")]));
    assert!((r.incremental_orders - 3.0).abs() < 1e-9);
    assert_eq!(r.cost_per_incremental_order, Some(money(&[("USD", "4.5001")])));
    // The total (every live campaign) counts the same discounts once.
    let total = report(&voucher_shop()).total;
    assert_eq!(total.vouchers.discount_cost, money(&[("USD", "13.50")]));
    assert_eq!(total.cost, r.cost);
}

/// GIVEN one recovery-tier voucher whose cart was recovered and two standard-tier ones of which one
/// was WHEN reported THEN each tier's recovery rate is its recovered carts over its carts with a voucher,
/// with the report's interval, and the returners' rate stands beside the 12% target.
#[test]
fn given_vouchers_of_both_tiers_when_reported_then_each_tier_has_its_recovery_rate_with_its_interval() {
    let v = campaign(&report(&voucher_shop()), "default").vouchers;

    let recovery = &v.by_tier[&TierName::Recovery];
    assert_eq!((recovery.issued, recovery.recovered, recovery.redeemed), (1, 1, 1));
    assert_eq!(recovery.recovery_rate, 1.0);
    assert_eq!(recovery.recovery_rate_ci95, stats::rate_interval(1, 1));
    assert_eq!(recovery.discount_cost, money(&[("USD", "10.00")]));
    let standard = &v.by_tier[&TierName::Standard];
    assert_eq!((standard.issued, standard.recovered, standard.redeemed), (2, 1, 1));
    assert_eq!(standard.recovery_rate, 0.5);
    assert_eq!(standard.recovery_rate_ci95, stats::rate_interval(1, 2));
    assert_eq!(standard.discount_cost, money(&[("USD", "3.50")]));
    assert_eq!((standard.difference_from_control, standard.difference_from_control_ci95), (None, None));
    let returners = &v.targets.recovery_rate_returners;
    assert_eq!((returners.target, returners.measured, returners.carts), (0.12, 1.0, 1));
    assert_eq!(returners.measured_ci95, stats::rate_interval(1, 1));
}

/// GIVEN a second order that used the returner's already redeemed code, a week after the period
/// WHEN reported THEN the campaign and the total count one abuse attempt, and the order recovers nothing.
#[test]
fn given_a_second_order_with_a_redeemed_code_when_reported_then_one_abuse_attempt_is_counted() {
    let mut facts = voucher_shop();
    facts.push(order("o-again", Some("elsewhere"), None, "90.00", "USD", "2026-11-21T12:00:00Z"));
    facts.push(abused("o-again", "ret", "2026-11-21T12:00:00Z"));

    let r = report(&facts);

    assert_eq!(campaign(&r, "default").vouchers.abuse_attempts, 1);
    assert_eq!(r.total.vouchers.abuse_attempts, 1);
    assert_eq!(campaign(&r, "default").recovered_treated, 3);
}

/// GIVEN a free-shipping voucher redeemed without a known discount
/// WHEN reported THEN it counts as redeemed, apart as without an amount, and adds nothing to the cost.
#[test]
fn given_a_redemption_without_an_amount_when_reported_then_it_is_counted_but_costs_nothing_known() {
    let mut facts = emailed_as("default", "ship", "u1", SegmentLabel::Other, None);
    facts.push(issued("default", "ship", "u1", TierName::Standard, None));
    facts.push(order("o-ship", Some("ship"), Some("u1"), "40.00", "USD", "2026-11-02T12:00:00Z"));
    facts.push(redeemed("default", "o-ship", "ship", "u1", TierName::Standard, None));

    let r = campaign(&report(&facts), "default");

    assert_eq!((r.vouchers.redeemed, r.vouchers.redeemed_without_amount), (1, 1));
    assert!(r.vouchers.discount_cost.is_empty(), "{:?}", r.vouchers.discount_cost);
    assert_eq!(r.vouchers.aov_with_voucher, money(&[("USD", "40.00")]));
    assert_eq!(r.cost, money(&[("USD", "0.0001")]));
}

/// GIVEN an experiment offering returners 10% (control "ten") or 15% ("fifteen"): four returners each,
/// one recovered with "ten" ($5.00 off) and three with "fifteen" ($7.50 off each)
/// WHEN reported THEN each variant shows its own vouchers, and "fifteen"'s recovery tier is 50 points
/// above the control's with the interval the report uses for differences.
#[test]
fn given_an_experiment_of_offers_when_reported_then_the_voucher_figures_split_by_variant_against_control() {
    let mut facts = Vec::new();
    for (variant, recovered, discount) in [("ten", 1, "5.00"), ("fifteen", 3, "7.50")] {
        for i in 0..4 {
            let (cart, customer) = (format!("{variant}-{i}"), format!("{variant}-u{i}"));
            facts.extend(emailed_as("default", &cart, &customer, SegmentLabel::Returner, Some(variant)));
            facts.push(issued("default", &cart, &customer, TierName::Recovery, Some(variant)));
            if i < recovered {
                let order_id = format!("o-{cart}");
                facts.push(order(&order_id, Some(&cart), Some(&customer), "50.00", "USD", "2026-11-02T12:00:00Z"));
                facts.push(redeemed("default", &order_id, &cart, &customer, TierName::Recovery, Some(discount)));
            }
        }
    }
    let campaigns = [campaign_with("default", |c| c.experiment = Some(experiment(Some("ten"), &["ten", "fifteen"])))];

    let r = campaign(&build_report(&facts, &campaigns, &query(), &Prices::default()), "default");

    let variant = |name: &str| r.variants.iter().find(|v| v.variant == name).unwrap().vouchers.clone();
    let (ten, fifteen) = (variant("ten"), variant("fifteen"));
    let (ten_tier, fifteen_tier) = (&ten.by_tier[&TierName::Recovery], &fifteen.by_tier[&TierName::Recovery]);
    assert_eq!((ten_tier.issued, ten_tier.recovered), (4, 1));
    assert_eq!((fifteen_tier.issued, fifteen_tier.recovered), (4, 3));
    assert_eq!(ten_tier.difference_from_control, None, "the control is not compared with itself");
    let (difference, interval) = stats::difference((3, 4), (1, 4));
    assert_eq!(fifteen_tier.difference_from_control, Some(difference));
    assert!((difference - 0.5).abs() < 1e-12);
    assert_eq!(fifteen_tier.difference_from_control_ci95, Some(interval));
    assert_eq!(ten.discount_cost, money(&[("USD", "5.00")]));
    assert_eq!(fifteen.discount_cost, money(&[("USD", "22.50")]));
    assert_eq!(fifteen.discount_cost_per_recovered_order, money(&[("USD", "7.50")]));
    assert_eq!(fifteen.targets.recovery_rate_returners.measured, 0.75);
    // The campaign's own figures hold both variants.
    assert_eq!((r.vouchers.issued, r.vouchers.redeemed), (8, 4));
    assert_eq!(r.vouchers.discount_cost, money(&[("USD", "27.50")]));
}
