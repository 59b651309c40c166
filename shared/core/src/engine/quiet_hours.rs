//! Local time for quiet hours: the customer's zone, and the first instant
//! after the quiet hours, across DST gaps and repeated hours.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::campaign::Campaign;
use crate::contact;
use crate::event::CustomerPatch;

/// The customer's zone: the profile's IANA name, else the phone number's
/// region, else the campaign default.
pub fn customer_time_zone(contact: &CustomerPatch, default: &str) -> Tz {
    contact
        .timezone
        .as_deref()
        .and_then(|tz| tz.parse::<Tz>().ok())
        .or_else(|| {
            contact
                .phone
                .as_ref()
                .map(contact::Phone::expose)
                .and_then(contact::phone_region)
                .and_then(|r| contact::region_time_zone(&r))
        })
        .or_else(|| default.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC)
}

/// When `now` falls in the campaign's quiet hours in `tz`, the first instant
/// after them; `None` when sending is allowed now.
pub fn quiet_until(now: DateTime<Utc>, tz: Tz, campaign: &Campaign) -> Option<DateTime<Utc>> {
    let (start, end) = (campaign.quiet_hours.start, campaign.quiet_hours.end);
    if start == end {
        return None;
    }
    let local = now.with_timezone(&tz);
    let t = local.time();
    let quiet = if start > end { t >= start || t < end } else { t >= start && t < end };
    if !quiet {
        return None;
    }
    let today = local.date_naive();
    let day = if t >= end { today.succ_opt()? } else { today };
    Some(first_instant_at(tz, day, end, now))
}

/// The first instant at or after local `day` + `time` that exists in `tz`
/// (a DST gap moves it forward to when the clocks resume). When the time
/// occurs twice (a DST fall-back), the earlier occurrence unless it is not
/// after `after`: in the repeated hour the second occurrence is the next one.
fn first_instant_at(tz: Tz, day: NaiveDate, time: NaiveTime, after: DateTime<Utc>) -> DateTime<Utc> {
    let mut local = day.and_time(time);
    for _ in 0..=180 {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(earliest, latest) => {
                let earliest = earliest.with_timezone(&Utc);
                return if earliest > after { earliest } else { latest.with_timezone(&Utc) };
            }
            LocalResult::None => local += Duration::minutes(1),
        }
    }
    Utc.from_utc_datetime(&day.and_time(time))
}
