//! The timer sweep: the safety net under EventBridge Scheduler and Lambda's
//! asynchronous retries. Every few minutes it reads the carts whose armed
//! timer is overdue by more than a grace period (the sparse `timers` index,
//! never a scan) and arms each one again, a minute from now. A timer whose
//! checker kept failing (a throttled table, a bad deploy) until Lambda gave
//! up on it is then checked again once the cause is gone, even if nobody
//! redrives the dead-letter queue.
//!
//! Thin on purpose: the re-armed timer goes through the same schedule,
//! retries and dead-letter queue as any other, and the checker decides. It
//! is bounded: one cart's failure does not end the run, and a cart re-armed
//! [`MAX_REARMS`] times without a check ever completing is given up (a line
//! on its timeline; its failures are in the dead-letter queue).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use cartback_core::ids::CartId;
use cartback_core::ports::{Clock, PortError, Scheduler, Timeline, TimelineEntry, TimelineKind, TimerPayload};

use crate::dynamo::{DynamoStateStore, TimerMove};

/// How long past its time a timer may still be pending without being lost:
/// the schedule's flexible window (5 min), Lambda's two asynchronous
/// retries (about 3 min) and a slow checker, with room to spare.
pub const GRACE_MINUTES: i64 = 15;
/// A re-armed timer fires this long after the sweep.
pub const REARM_DELAY_SECONDS: i64 = 60;
/// Carts re-armed per run at most; the next run takes the rest.
pub const MAX_PER_RUN: usize = 500;
/// Re-arms of one cart without a checker ever handling it before the sweep
/// gives up on it (a cart its checker fails on for good would otherwise be
/// re-armed every run forever). With the grace period that is over three
/// hours; an outage longer than that leaves the dead-letter queue to redrive.
pub const MAX_REARMS: u32 = 12;

pub struct TimerSweep {
    pub store: Arc<DynamoStateStore>,
    pub scheduler: Arc<dyn Scheduler>,
    pub clock: Arc<dyn Clock>,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Carts found overdue.
    pub overdue: usize,
    /// Of those, re-armed.
    pub rearmed: usize,
    /// Of those, handled meanwhile by a checker (nothing to do).
    pub moved_on: usize,
    /// Of those, re-armed [`MAX_REARMS`] times already: left to an operator.
    pub given_up: usize,
    /// Of those, not re-armed this run (the scheduler failed); the next run
    /// tries again.
    pub failed: usize,
}

impl TimerSweep {
    pub async fn run(&self) -> Result<SweepReport, PortError> {
        let now = self.clock.now();
        let overdue = self.store.overdue_timers(now - Duration::minutes(GRACE_MINUTES), MAX_PER_RUN).await?;
        let mut report = SweepReport { overdue: overdue.len(), ..SweepReport::default() };
        let due_at = rearm_time(now);
        for (cart_id, armed) in overdue {
            // One cart's failure is not the others': counted, retried next run.
            match self.rearm(&cart_id, armed, due_at).await {
                Ok(TimerMove::Moved) => report.rearmed += 1,
                Ok(TimerMove::MovedOn) => report.moved_on += 1,
                Ok(TimerMove::GaveUp) => report.given_up += 1,
                Err(error) => {
                    tracing::error!(%cart_id, %error, "overdue timer not re-armed; the next sweep tries again");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Arms the timer, then moves the cart's armed time (counting the move):
    /// a failed arm counts nothing, and a failure between the two leaves a
    /// spare timer that fires into a check finding nothing new.
    async fn rearm(
        &self,
        cart_id: &CartId,
        armed: DateTime<Utc>,
        due_at: DateTime<Utc>,
    ) -> Result<TimerMove, PortError> {
        self.scheduler.arm(&TimerPayload { cart_id: cart_id.clone(), due_at }).await?;
        let moved = self.store.move_timer(cart_id, armed, due_at, MAX_REARMS).await?;
        match moved {
            TimerMove::Moved => tracing::warn!(%cart_id, %armed, %due_at, "overdue timer re-armed by the sweep"),
            TimerMove::GaveUp => {
                tracing::error!(%cart_id, %armed, "the sweep gives up on a timer its checker never handled");
                let entry = TimelineEntry {
                    at: self.clock.now(),
                    kind: TimelineKind::Decision,
                    code: "timer_given_up".into(),
                    message: format!(
                        "The cart's check was re-armed {MAX_REARMS} times and never ran to the end; the sweep stops \
                         re-arming it (the timers dead-letter queue holds the checker's failures). Its next event \
                         arms a new timer."
                    ),
                    details: serde_json::json!({ "armed_for": armed }),
                };
                // Explanatory: the cart is out of the index already.
                if let Err(error) = self.store.append_timeline(cart_id, &entry).await {
                    tracing::warn!(%cart_id, %error, "timer_given_up line not written");
                }
            }
            TimerMove::MovedOn => {}
        }
        Ok(moved)
    }
}

/// A minute from now, on a whole second (a schedule's precision).
pub fn rearm_time(now: DateTime<Utc>) -> DateTime<Utc> {
    crate::scheduler::fire_time(now + Duration::seconds(REARM_DELAY_SECONDS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_sweep_time_when_rearming_then_the_timer_fires_a_minute_later_on_a_whole_second() {
        let now: DateTime<Utc> = "2026-11-23T10:00:00.4Z".parse().unwrap();
        assert_eq!(rearm_time(now), "2026-11-23T10:01:01Z".parse::<DateTime<Utc>>().unwrap());
    }
}
