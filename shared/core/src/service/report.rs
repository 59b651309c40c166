//! The report service: turns the report's parameters (as the HTTP route and
//! the CLI take them) into a [`ReportQuery`], reads the facts the query
//! needs, and computes the report with the pure [`build_report`].

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};

use crate::campaign::Campaign;
use crate::measure::report::{build_report, Prices, Report, ReportQuery};
use crate::measure::FactKind;
use crate::message::Channel;
use crate::ports::{FactStore, PortError};

/// The longest period one report covers (a year, leap day included).
pub const MAX_REPORT_DAYS: i64 = 366;
/// The days a report covers when `from` is not given: `to` and the 13 before.
pub const DEFAULT_REPORT_DAYS: i64 = 14;
/// Attribution windows allowed, in hours (up to 30 days).
pub const WINDOW_HOURS: std::ops::RangeInclusive<i64> = 1..=720;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A parameter is missing its form or out of range; names the parameter.
    #[error("{parameter}: {reason}")]
    BadParameter { parameter: String, reason: String },
    #[error("no campaign {0:?}")]
    UnknownCampaign(String),
    #[error(transparent)]
    Storage(#[from] PortError),
}

fn bad(parameter: &str, reason: impl Into<String>) -> ReportError {
    ReportError::BadParameter { parameter: parameter.to_owned(), reason: reason.into() }
}

/// The report's parameters as text, the way a query string or a command
/// line gives them: `campaign`, `from`, `to` (YYYY-MM-DD),
/// `attribution_window_hours` and `window_hours_<channel>` (e.g.
/// `window_hours_sms`). Defaults: `to` today (UTC), `from` 13 days before.
pub fn parse_query(params: &BTreeMap<String, String>, today: NaiveDate) -> Result<ReportQuery, ReportError> {
    let date = |name: &str| {
        params
            .get(name)
            .map(|text| {
                NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| bad(name, "must be a date as YYYY-MM-DD"))
            })
            .transpose()
    };
    let hours = |name: &str, text: &str| {
        let hours: i64 = text.parse().map_err(|_| bad(name, "must be a whole number of hours"))?;
        if !WINDOW_HOURS.contains(&hours) {
            return Err(bad(name, format!("must be {} to {} hours", WINDOW_HOURS.start(), WINDOW_HOURS.end())));
        }
        Ok(Duration::hours(hours))
    };
    let mut channel_windows = BTreeMap::new();
    for (name, value) in params {
        match name.as_str() {
            "campaign" | "from" | "to" | "attribution_window_hours" => {}
            other => {
                let channel = other
                    .strip_prefix("window_hours_")
                    .and_then(|c| Channel::ALL.into_iter().find(|ch| ch.as_str() == c))
                    .ok_or_else(|| bad(other, "unknown parameter"))?;
                channel_windows.insert(channel, hours(other, value)?);
            }
        }
    }
    let to = date("to")?.unwrap_or(today);
    let from = match date("from")? {
        Some(from) => from,
        None => to
            .checked_sub_signed(Duration::days(DEFAULT_REPORT_DAYS - 1))
            .ok_or_else(|| bad("to", "is too early for the default period"))?,
    };
    if from > to {
        return Err(bad("from", format!("{from} is after to ({to})")));
    }
    if (to - from).num_days() + 1 > MAX_REPORT_DAYS {
        return Err(bad("from", format!("the period from {from} to {to} is longer than {MAX_REPORT_DAYS} days")));
    }
    let campaign = match params.get("campaign") {
        Some(id) if id.is_empty() => return Err(bad("campaign", "must not be empty")),
        other => other.cloned(),
    };
    let mut query = ReportQuery::new(campaign, from, to);
    if let Some(text) = params.get("attribution_window_hours") {
        query.attribution_window = hours("attribution_window_hours", text)?;
    }
    query.channel_windows = channel_windows;
    Ok(query)
}

/// The report for `query`. Reads facts from a look-back before `from` (the
/// longest campaign's reach plus the longest window, and a day: carts that
/// entered then may still claim an order in the period, so they are matched,
/// though not reported) to as far past `to` as a cart entering on `to` can
/// still be messaged and then buy (the longest campaign's later steps, each
/// possibly sent late, plus the longest window and a day), but never past
/// `today`; then the returns recorded after that up to `today`, which still
/// reduce their orders' revenue, and the voucher redemptions and abuse
/// attempts, which still count on their carts (a code lives longer than the
/// recovery horizon).
pub async fn report<S: FactStore + ?Sized>(
    store: &S,
    campaigns: &[Campaign],
    query: &ReportQuery,
    prices: &Prices,
    today: NaiveDate,
) -> Result<Report, ReportError> {
    if let Some(id) = &query.campaign {
        if !campaigns.iter().any(|c| &c.id == id) {
            return Err(ReportError::UnknownCampaign(id.clone()));
        }
    }
    let steps = campaigns.iter().map(step_span).max().unwrap_or_default();
    let reach = steps + query.longest_window() + Duration::days(1);
    let last_day = query.to.checked_add_signed(Duration::days(reach.num_days() + 1)).unwrap_or(query.to);
    let last_day = last_day.min(today).max(query.to);
    let look_back =
        campaigns.iter().map(crate::measure::report::reach).max().unwrap_or_default() + query.longest_window();
    let first_day = query.from.checked_sub_signed(Duration::days(look_back.num_days() + 1)).unwrap_or(query.from);
    let mut facts = store.facts(first_day, last_day).await?;
    if let Some(next_day) = last_day.succ_opt().filter(|day| *day <= today) {
        let later = store.facts(next_day, today).await?;
        facts.extend(later.into_iter().filter(|f| {
            matches!(f.kind, FactKind::Return { .. } | FactKind::VoucherRedeemed { .. } | FactKind::VoucherAbuse { .. })
        }));
    }
    Ok(build_report(&facts, campaigns, query, prices))
}

/// How long after entering a cart can still get a message: its campaign's
/// step delays after the first (the longest variant's), each step up to
/// `max_send_delay` late.
fn step_span(campaign: &Campaign) -> Duration {
    let delays = |overrides: &[crate::campaign::StepOverride]| {
        campaign
            .steps
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, step)| {
                overrides.get(i).and_then(|o| o.delay).unwrap_or(step.delay) + campaign.caps.max_send_delay
            })
            .sum::<Duration>()
    };
    let variants = campaign.experiment.iter().flat_map(|e| e.variants.iter()).map(|v| delays(&v.steps));
    variants.fold(delays(&[]), Duration::max)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::measure::{Fact, FactKind, Group, SegmentLabel};
    use crate::ports::CreateOutcome;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn today() -> NaiveDate {
        "2026-11-24".parse().unwrap()
    }

    fn refusal(pairs: &[(&str, &str)]) -> String {
        parse_query(&params(pairs), today()).unwrap_err().to_string()
    }

    #[test]
    fn given_no_parameters_when_parsed_then_the_last_14_days_to_today_with_a_24_hour_window() {
        let query = parse_query(&params(&[]), today()).unwrap();
        assert_eq!((query.from.to_string(), query.to.to_string()), ("2026-11-11".into(), "2026-11-24".into()));
        assert_eq!(query.attribution_window, Duration::hours(24));
        assert_eq!(query.campaign, None);
    }

    #[test]
    fn given_every_parameter_when_parsed_then_each_is_taken() {
        let query = parse_query(
            &params(&[
                ("campaign", "default"),
                ("from", "2026-11-01"),
                ("to", "2026-11-07"),
                ("attribution_window_hours", "48"),
                ("window_hours_sms", "12"),
            ]),
            today(),
        )
        .unwrap();
        assert_eq!(query.campaign.as_deref(), Some("default"));
        assert_eq!(query.attribution_window, Duration::hours(48));
        assert_eq!(query.window(Channel::Sms), Duration::hours(12));
        assert_eq!(query.window(Channel::Email), Duration::hours(48));
    }

    #[test]
    fn given_bad_parameters_when_parsed_then_the_error_names_the_parameter_and_why() {
        assert_eq!(
            refusal(&[("from", "2026-11-10"), ("to", "2026-11-09")]),
            "from: 2026-11-10 is after to (2026-11-09)"
        );
        assert_eq!(
            refusal(&[("from", "2025-01-01"), ("to", "2026-01-02")]),
            "from: the period from 2025-01-01 to 2026-01-02 is longer than 366 days"
        );
        assert_eq!(refusal(&[("to", "24/11/2026")]), "to: must be a date as YYYY-MM-DD");
        assert_eq!(refusal(&[("attribution_window_hours", "0")]), "attribution_window_hours: must be 1 to 720 hours");
        assert_eq!(refusal(&[("attribution_window_hours", "721")]), "attribution_window_hours: must be 1 to 720 hours");
        assert_eq!(refusal(&[("window_hours_sms", "1.5")]), "window_hours_sms: must be a whole number of hours");
        assert_eq!(refusal(&[("window_hours_fax", "3")]), "window_hours_fax: unknown parameter");
        assert_eq!(refusal(&[("campaign", "")]), "campaign: must not be empty");
        // Dates at chrono's ends are refused or taken, never a panic.
        assert_eq!(refusal(&[("to", "-262143-01-01")]), "to: is too early for the default period");
        assert!(parse_query(&params(&[("from", "+262142-12-31"), ("to", "+262142-12-31")]), today()).is_ok());
        // A whole year of 366 days is allowed.
        assert!(parse_query(&params(&[("from", "2024-01-01"), ("to", "2024-12-31")]), today()).is_ok());
    }

    /// Remembers the days it was asked for.
    #[derive(Default)]
    struct Recorded {
        facts: Vec<Fact>,
        asked: Mutex<Vec<(NaiveDate, NaiveDate)>>,
    }

    #[async_trait]
    impl FactStore for Recorded {
        async fn record_fact(&self, _fact: &Fact) -> Result<CreateOutcome, PortError> {
            unreachable!("the report only reads")
        }

        async fn facts(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Fact>, PortError> {
            self.asked.lock().unwrap().push((from, to));
            Ok(self.facts.iter().filter(|f| (from..=to).contains(&f.day())).cloned().collect())
        }

        async fn fact(&self, _fact_id: &str) -> Result<Option<Fact>, PortError> {
            unreachable!("the report reads facts by day")
        }
    }

    #[tokio::test]
    async fn given_a_period_when_reported_then_facts_are_read_from_a_look_back_past_its_end_and_returns_to_today() {
        let entered = Fact::new(
            "2026-11-02T10:00:00Z".parse().unwrap(),
            FactKind::Entered {
                campaign_id: "default".into(),
                cart_id: "c1".into(),
                customer_key: crate::ids::CustomerKey::Guest("c1".into()),
                group: Group::Treated,
                variant: None,
                segment: SegmentLabel::Other,
                value: None,
                currency: None,
            },
        );
        let store = Recorded { facts: vec![entered], ..Recorded::default() };
        let campaigns = [Campaign::default_campaign()];
        let mut query = ReportQuery::new(Some("default".into()), "2026-11-01".parse().unwrap(), today());

        let answer = report(&store, &campaigns, &query, &Prices::default(), today()).await.unwrap();
        assert_eq!(answer.campaigns[0].entered, 1);

        query.to = "2026-11-10".parse().unwrap();
        report(&store, &campaigns, &query, &Prices::default(), today()).await.unwrap();
        // The default campaign's second step comes 24 h after the first, up to 2 days late;
        // the window is 24 h; a day of slack: 5 days, and the last day whole. The look-back:
        // its reach (24 h) and the window (24 h), and a day: 3 days before `from`.
        let asked = store.asked.lock().unwrap().clone();
        let look_back_start: NaiveDate = "2026-10-29".parse().unwrap();
        assert_eq!(asked[0], (look_back_start, today()));
        assert_eq!(asked[1], (look_back_start, "2026-11-16".parse().unwrap()));
        assert_eq!(asked[2], ("2026-11-17".parse().unwrap(), today()), "then the later days, for returns");
        assert_eq!(asked.len(), 3);

        query.campaign = Some("nope".into());
        let unknown = report(&store, &campaigns, &query, &Prices::default(), today()).await.unwrap_err();
        assert_eq!(unknown.to_string(), "no campaign \"nope\"");
    }

    fn fact(at: &str, kind: FactKind) -> Fact {
        Fact::new(at.parse().unwrap(), kind)
    }

    fn entered(cart: &str, customer: &str, at: &str) -> Fact {
        fact(
            at,
            FactKind::Entered {
                campaign_id: "default".into(),
                cart_id: cart.into(),
                customer_key: crate::ids::CustomerKey::Customer(customer.into()),
                group: Group::Treated,
                variant: None,
                segment: SegmentLabel::Other,
                value: None,
                currency: None,
            },
        )
    }

    fn order(id: &str, cart: &str, customer: &str, value: &str, at: &str) -> Fact {
        fact(
            at,
            FactKind::Order {
                order_id: id.into(),
                cart_id: Some(cart.into()),
                customer_key: Some(crate::ids::CustomerKey::Customer(customer.into())),
                value: Some(value.parse().unwrap()),
                currency: Some("EUR".into()),
                coupon: None,
            },
        )
    }

    /// GIVEN a cart that entered the evening before `from` and was bought on
    /// the first morning of the period, a later cart of the same customer in
    /// the period, and an order in the period returned weeks after it
    /// WHEN reported THEN the earlier cart claims its own order (the later
    /// cart is not recovered by it, and the earlier one is not reported), and
    /// the late return reduces the revenue.
    #[tokio::test]
    async fn given_a_cart_entered_before_the_period_and_a_late_return_when_reported_then_both_are_taken_into_account() {
        let facts = vec![
            entered("evening", "u1", "2026-10-31T22:00:00Z"),
            entered("morning", "u1", "2026-11-01T08:00:00Z"),
            order("o-evening", "evening", "u1", "40.00", "2026-11-01T09:00:00Z"),
            entered("c2", "u2", "2026-11-02T08:00:00Z"),
            order("o2", "c2", "u2", "100.00", "2026-11-02T09:00:00Z"),
            fact(
                "2026-11-20T10:00:00Z",
                FactKind::Return {
                    return_id: "r2".into(),
                    order_id: "o2".into(),
                    customer_key: crate::ids::CustomerKey::Customer("u2".into()),
                    value: "25.00".parse().unwrap(),
                    currency: "EUR".into(),
                },
            ),
        ];
        let store = Recorded { facts, ..Recorded::default() };
        let campaigns = [Campaign::default_campaign()];
        let query = ReportQuery::new(None, "2026-11-01".parse().unwrap(), "2026-11-03".parse().unwrap());

        let answer = report(&store, &campaigns, &query, &Prices::default(), today()).await.unwrap();

        let r = &answer.campaigns[0];
        assert_eq!((r.entered, r.recovered_treated), (2, 1), "only c2 is recovered among the period's carts");
        let recovered: Vec<u64> = r.days.iter().map(|d| d.recovered_treated).collect();
        assert_eq!(recovered, [0, 1, 0]);
        let revenue_day2 = &r.days[1].revenue_treated;
        assert_eq!(revenue_day2.get("EUR").map(ToString::to_string).as_deref(), Some("75.00"));
    }

    /// GIVEN a cart of the period whose voucher was redeemed and then tried
    /// again by another order, both after the days a recovery can still
    /// happen (a code lives 7 days) WHEN reported THEN the redemption's
    /// discount and the abuse attempt still count on the cart's campaign.
    #[tokio::test]
    async fn given_a_voucher_used_after_the_recovery_days_when_reported_then_its_cost_and_abuse_still_count() {
        use crate::voucher::{Refusal, TierName};
        let customer = crate::ids::CustomerKey::Customer("u1".into());
        let facts = vec![
            entered("c1", "u1", "2026-11-02T08:00:00Z"),
            fact(
                "2026-11-02T08:00:00Z",
                FactKind::VoucherIssued {
                    campaign_id: "default".into(),
                    cart_id: "c1".into(),
                    customer_key: customer.clone(),
                    variant: None,
                    tier: TierName::Standard,
                },
            ),
            order("o1", "c1", "u1", "100.00", "2026-11-09T07:00:00Z"),
            fact(
                "2026-11-09T07:00:00Z",
                FactKind::VoucherRedeemed {
                    order_id: "o1".into(),
                    campaign_id: "default".into(),
                    cart_id: "c1".into(),
                    customer_key: customer,
                    tier: TierName::Standard,
                    discount: Some("5.00".parse().unwrap()),
                    currency: "EUR".into(),
                },
            ),
            fact(
                "2026-11-10T09:00:00Z",
                FactKind::VoucherAbuse {
                    order_id: "o2".into(),
                    campaign_id: "default".into(),
                    cart_id: "c1".into(),
                    refusal: Refusal::AlreadyRedeemed,
                },
            ),
        ];
        let store = Recorded { facts, ..Recorded::default() };
        let campaigns = [Campaign::default_campaign()];
        let query = ReportQuery::new(None, "2026-11-01".parse().unwrap(), "2026-11-02".parse().unwrap());

        let answer = report(&store, &campaigns, &query, &Prices::default(), today()).await.unwrap();

        let asked = store.asked.lock().unwrap().clone();
        assert!(asked[0].1 < "2026-11-09".parse().unwrap(), "the redemption is after the first read: {asked:?}");
        let vouchers = &answer.campaigns[0].vouchers;
        assert_eq!(answer.campaigns[0].recovered_treated, 0, "bought after the recovery horizon");
        assert_eq!((vouchers.issued, vouchers.redeemed, vouchers.abuse_attempts), (1, 1, 1));
        assert_eq!(vouchers.discount_cost.get("EUR").map(ToString::to_string).as_deref(), Some("5.00"));
    }
}
