//! Clocks for the local runtime.
//!
//! [`VirtualClock`] is what `cartback dev --clock-speed N` runs on: virtual
//! time starts at the real time when the clock is made and then runs N times
//! faster, so a 30-minute timer fires after 30 real seconds at N=60. Every
//! reader of the time (ingest's `received_at`, timers, caps, quiet hours)
//! shares one instance. The runtime sleeps for
//! [`VirtualClock::real_duration`] of the virtual wait.
//!
//! [`ManualClock`] is for tests: it stands still until told to move.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration as StdDuration, Instant};

use cartback_core::ports::Clock;
use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClockError {
    #[error("clock speed must be a finite number of at least 1 (got {0})")]
    BadSpeed(f64),
}

/// Virtual time running `speed` times faster than real time.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    virtual_start: DateTime<Utc>,
    real_start: Instant,
    speed: f64,
}

impl VirtualClock {
    /// Starts at the current real time. `speed` 1 is real time.
    pub fn new(speed: f64) -> Result<VirtualClock, ClockError> {
        Self::starting_at(Utc::now(), speed)
    }

    /// Starts at a given virtual time (e.g. to resume a demo where it stopped).
    pub fn starting_at(virtual_start: DateTime<Utc>, speed: f64) -> Result<VirtualClock, ClockError> {
        // Slower than real time has no use here and would stretch leases and
        // retries past what anyone would wait for.
        if !speed.is_finite() || speed < 1.0 {
            return Err(ClockError::BadSpeed(speed));
        }
        Ok(VirtualClock { virtual_start, real_start: Instant::now(), speed })
    }

    /// The real-time clock (speed 1).
    pub fn real_time() -> VirtualClock {
        VirtualClock { virtual_start: Utc::now(), real_start: Instant::now(), speed: 1.0 }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The real time to sleep for a virtual wait (zero for a negative one).
    pub fn real_duration(&self, virtual_wait: Duration) -> StdDuration {
        let Ok(wait) = virtual_wait.to_std() else { return StdDuration::ZERO };
        StdDuration::try_from_secs_f64(wait.as_secs_f64() / self.speed).unwrap_or(StdDuration::MAX)
    }

    /// The real time to sleep until the virtual instant `at`.
    pub fn real_duration_until(&self, at: DateTime<Utc>) -> StdDuration {
        self.real_duration(at - self.now())
    }

    /// The virtual time that passes during a real duration.
    pub fn virtual_duration(&self, real: StdDuration) -> Duration {
        let nanos = real.as_secs_f64() * self.speed * 1e9;
        if nanos >= i64::MAX as f64 {
            return Duration::MAX;
        }
        Duration::nanoseconds(nanos as i64)
    }
}

impl Clock for VirtualClock {
    /// Monotonic: derived from `Instant`, so it never goes back even if the
    /// system clock is adjusted while running.
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.virtual_duration(self.real_start.elapsed());
        self.virtual_start.checked_add_signed(elapsed).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(now: DateTime<Utc>) -> ManualClock {
        ManualClock { now: Mutex::new(now) }
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Moves the clock forward (or back, for a negative duration) and returns the new time.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
        *now
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_speed_60_when_a_30_minute_wait_is_converted_then_it_sleeps_30_real_seconds() {
        let clock = VirtualClock::new(60.0).unwrap();
        assert_eq!(clock.real_duration(Duration::minutes(30)), StdDuration::from_secs(30));
        assert_eq!(clock.real_duration(Duration::seconds(-5)), StdDuration::ZERO);
        assert_eq!(clock.virtual_duration(StdDuration::from_secs(30)), Duration::minutes(30));
    }

    #[test]
    fn given_speed_1_when_converted_then_virtual_and_real_waits_are_equal() {
        let clock = VirtualClock::real_time();
        assert_eq!(clock.speed(), 1.0);
        assert_eq!(clock.real_duration(Duration::milliseconds(1500)), StdDuration::from_millis(1500));
    }

    #[test]
    fn given_a_fast_clock_when_real_time_passes_then_virtual_time_passes_speed_times_faster() {
        let start: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let clock = VirtualClock::starting_at(start, 1000.0).unwrap();
        let real_before = Instant::now();
        std::thread::sleep(StdDuration::from_millis(50));
        let virtual_elapsed = clock.now() - start;
        let real_elapsed = real_before.elapsed();
        // At least 50 ms real -> at least 50 s virtual; at most what really passed.
        assert!(virtual_elapsed >= Duration::seconds(50), "{virtual_elapsed}");
        assert!(virtual_elapsed <= Duration::from_std(real_elapsed * 1000).unwrap() + Duration::seconds(1), "{virtual_elapsed}");
    }

    #[test]
    fn given_a_clock_when_read_repeatedly_then_it_never_goes_back() {
        let clock = VirtualClock::new(3600.0).unwrap();
        let mut last = clock.now();
        for _ in 0..1000 {
            let now = clock.now();
            assert!(now >= last);
            last = now;
        }
    }

    #[test]
    fn given_a_nonsense_speed_when_the_clock_is_made_then_it_is_refused() {
        for bad in [0.0, 0.5, -3.0, f64::NAN, f64::INFINITY] {
            assert!(VirtualClock::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn given_a_manual_clock_when_set_or_advanced_then_now_follows_and_nothing_else_moves_it() {
        let t0: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let clock = ManualClock::new(t0);
        std::thread::sleep(StdDuration::from_millis(5));
        assert_eq!(clock.now(), t0);
        assert_eq!(clock.advance(Duration::minutes(30)), t0 + Duration::minutes(30));
        clock.set(t0);
        assert_eq!(clock.now(), t0);
    }
}
