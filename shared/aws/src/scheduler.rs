//! `Scheduler` on EventBridge Scheduler: one one-time `at()` schedule per
//! cart timer, in Cartback's schedule group, deleted by the service after it
//! fires.

use async_trait::async_trait;
use aws_sdk_scheduler::error::ProvideErrorMetadata;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, Target,
};
use aws_sdk_scheduler::Client;
use chrono::{DateTime, Duration, DurationRound, Utc};
use sha2::{Digest, Sha256};

use cartback_core::ports::{PortError, Scheduler, TimerPayload};

use crate::config::SchedulerConfig;
use crate::error::{build_error, unavailable};

const SERVICE: &str = "scheduler";

/// The flexible window: EventBridge Scheduler may fire a timer up to this
/// many minutes after its time. Why FLEXIBLE and not OFF: carts are abandoned
/// in waves (a sale ends, a newsletter lands), and a window spreads those
/// waves of checker runs and sends over a few minutes instead of one second,
/// which keeps SES/SNS under their send rates and the checker's concurrency
/// low. A reminder planned for "30 minutes after" that lands after 30 to 35
/// minutes is just as good; the window never fires *early*, so the decision
/// engine never sees a timer before its time (it re-checks `now` anyway).
pub const FLEXIBLE_WINDOW_MINUTES: i32 = 5;

/// How long EventBridge Scheduler keeps retrying a failed checker invoke;
/// then the timer goes to the timer dead-letter queue, from which
/// `infra/redrive-dlq.sh timers` moves it to the checker's timer queue.
/// (The checker is invoked asynchronously: these retries cover Lambda
/// refusing the invoke; the checker's own failures are retried by Lambda and
/// then sent to the same dead-letter queue by its `OnFailure` destination.)
const MAX_EVENT_AGE_SECONDS: i32 = 6 * 3600;
const MAX_RETRY_ATTEMPTS: i32 = 20;

pub struct EventBridgeScheduler {
    client: Client,
    config: SchedulerConfig,
}

impl EventBridgeScheduler {
    pub fn new(client: Client, config: SchedulerConfig) -> Self {
        EventBridgeScheduler { client, config }
    }
}

/// The time the schedule fires: `due` rounded *up* to the whole second,
/// since `at()` has second precision and a timer must never fire before its
/// due time.
pub fn fire_time(due: DateTime<Utc>) -> DateTime<Utc> {
    let floor = due.duration_trunc(Duration::seconds(1)).unwrap_or(due);
    if floor < due {
        floor + Duration::seconds(1)
    } else {
        floor
    }
}

/// `cb-<24 hex of sha256(cart_id)>-<due epoch seconds>`: at most
/// 3 + 24 + 1 + 11 = 39 characters of `[0-9a-z-]`, whatever the cart id holds; the
/// same cart and time always give the same name, which makes arming
/// idempotent (a second create answers ConflictException).
pub fn schedule_name(timer: &TimerPayload) -> String {
    let digest = hex::encode(Sha256::digest(timer.cart_id.as_bytes()));
    format!("cb-{}-{}", &digest[..24], fire_time(timer.due_at).timestamp())
}

/// `at(yyyy-mm-ddThh:mm:ss)`, in UTC (the schedule's time zone is set to UTC).
pub fn at_expression(due: DateTime<Utc>) -> String {
    format!("at({})", fire_time(due).format("%Y-%m-%dT%H:%M:%S"))
}

#[async_trait]
impl Scheduler for EventBridgeScheduler {
    async fn arm(&self, timer: &TimerPayload) -> Result<(), PortError> {
        let input = serde_json::to_string(timer).map_err(|e| build_error(SERVICE, e))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Flexible)
            .maximum_window_in_minutes(FLEXIBLE_WINDOW_MINUTES)
            .build()
            .map_err(|e| build_error(SERVICE, e))?;
        let target = Target::builder()
            .arn(&self.config.checker_arn)
            .role_arn(&self.config.role_arn)
            .input(input)
            .dead_letter_config(DeadLetterConfig::builder().arn(&self.config.dead_letter_arn).build())
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_event_age_in_seconds(MAX_EVENT_AGE_SECONDS)
                    .maximum_retry_attempts(MAX_RETRY_ATTEMPTS)
                    .build(),
            )
            .build()
            .map_err(|e| build_error(SERVICE, e))?;
        let name = schedule_name(timer);
        let result = self
            .client
            .create_schedule()
            .name(&name)
            .group_name(&self.config.group)
            .schedule_expression(at_expression(timer.due_at))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .target(target)
            .action_after_completion(ActionAfterCompletion::Delete)
            .description(format!("Cartback timer for cart hash {}", &name[3..27]))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Same name = same cart and time: already armed.
            Err(e) if e.as_service_error().and_then(|e| e.code()) == Some("ConflictException") => Ok(()),
            Err(e) => Err(unavailable(SERVICE, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_any_cart_id_when_named_then_the_schedule_name_is_short_and_safe() {
        for id in ["c1", "a cart/with:odd#chars", &"x".repeat(500), "ünïcødé"] {
            let name =
                schedule_name(&TimerPayload { cart_id: id.into(), due_at: "2026-11-23T10:30:00.25Z".parse().unwrap() });
            assert!(name.len() <= 64, "{name}");
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)), "{name}");
        }
    }

    #[test]
    fn given_a_due_time_with_fractions_when_scheduled_then_it_fires_at_or_after_it() {
        let due: DateTime<Utc> = "2026-11-23T10:30:00.25Z".parse().unwrap();
        assert_eq!(at_expression(due), "at(2026-11-23T10:30:01)");
        assert_eq!(at_expression("2026-11-23T10:30:00Z".parse().unwrap()), "at(2026-11-23T10:30:00)");
    }
}
