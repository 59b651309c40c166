//! The timer sweep: the safety net under EventBridge Scheduler and Lambda's
//! asynchronous retries. Every few minutes it reads the carts whose armed
//! timer is overdue by more than a grace period (the sparse `timers` index,
//! never a scan) and arms each one again, a minute from now. A timer whose
//! checker kept failing (a throttled table, a bad deploy) until Lambda gave
//! up on it is then checked again once the cause is gone, even if nobody
//! redrives the dead-letter queue.
//!
//! Thin on purpose: the re-armed timer goes through the same schedule,
//! retries and dead-letter queue as any other, and the checker decides.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use cartback_core::ports::{Clock, PortError, Scheduler, TimerPayload};

use crate::dynamo::DynamoStateStore;

/// How long past its time a timer may still be pending without being lost:
/// the schedule's flexible window (5 min), Lambda's two asynchronous
/// retries (about 3 min) and a slow checker, with room to spare.
pub const GRACE_MINUTES: i64 = 15;
/// A re-armed timer fires this long after the sweep.
pub const REARM_DELAY_SECONDS: i64 = 60;
/// Carts re-armed per run at most; the next run takes the rest.
pub const MAX_PER_RUN: usize = 500;

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
}

impl TimerSweep {
    pub async fn run(&self) -> Result<SweepReport, PortError> {
        let now = self.clock.now();
        let overdue = self.store.overdue_timers(now - Duration::minutes(GRACE_MINUTES), MAX_PER_RUN).await?;
        let mut report = SweepReport { overdue: overdue.len(), ..SweepReport::default() };
        let due_at = rearm_time(now);
        for (cart_id, armed) in overdue {
            // Arm first, then move the cart's armed time: a failure between
            // the two leaves a spare timer (it fires into a check that finds
            // nothing new), never a cart without one.
            self.scheduler.arm(&TimerPayload { cart_id: cart_id.clone(), due_at }).await?;
            if self.store.move_timer(&cart_id, armed, due_at).await? {
                tracing::warn!(%cart_id, %armed, %due_at, "overdue timer re-armed by the sweep");
                report.rearmed += 1;
            } else {
                report.moved_on += 1;
            }
        }
        Ok(report)
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
