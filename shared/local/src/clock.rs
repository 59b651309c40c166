//! Clocks for the local runtime.
//!
//! [`VirtualClock`] is what `cartback dev --clock-speed N` runs on: virtual
//! time runs N times faster than real time, so a 30-minute timer fires after
//! 30 real seconds at N=60. Every reader of the time (ingest's `received_at`,
//! timers, caps, quiet hours) shares one instance. The runtime sleeps for
//! [`VirtualClock::real_duration`] of the virtual wait.
//!
//! Business time never goes back, not even across a crash:
//! [`VirtualClock::persistent`] keeps a lease in the data folder (file
//! [`CLOCK_FILE`]): "times up to T may be handed out". Before `now()` hands out
//! a time past T it writes a new T (temporary file, fsync, rename), a little
//! ahead, so a busy clock writes a few times per second, not once per read. A
//! restarted clock resumes at the later of the wall time and the stored T, so
//! nothing it hands out is earlier than anything handed out before the crash;
//! the price is a jump forward of at most one lease (a quarter of a real
//! second's worth of virtual time) per restart. At speed 1 the clock is the
//! wall time, held at T until the wall catches up after a quick restart.
//!
//! [`ManualClock`] is for tests: it stands still until told to move.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration as StdDuration, Instant};

use cartback_core::ports::Clock;
use chrono::{DateTime, Duration, SecondsFormat, Utc};

/// The clock's lease file inside the data folder.
pub const CLOCK_FILE: &str = "clock.json";
/// Where a new lease is written before it replaces the old one.
const CLOCK_TEMP_FILE: &str = ".clock.json.tmp";
/// Real time one lease covers: at most ~4 writes a second while busy, none
/// while idle, and a restart skips at most this much (times the speed).
const LEASE_REAL: StdDuration = StdDuration::from_millis(250);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClockError {
    #[error("clock speed must be a number from 1 to {MAX_SPEED} (got {0})")]
    BadSpeed(f64),
    #[error("cannot use the clock file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error(
        "the clock file {path} is unreadable ({reason}); it guards business time against going back, so it is \
             not replaced silently: restore it, or delete it to restart business time from the wall clock"
    )]
    Unreadable { path: PathBuf, reason: String },
}

/// The persisted upper bound of every time handed out.
#[derive(Debug)]
struct Lease {
    path: PathBuf,
    /// The persisted bound, in nanoseconds since the Unix epoch.
    until: AtomicI64,
    /// Virtual time one extension adds beyond the time being handed out.
    span: Duration,
    /// Serialises extensions (one writer of the file at a time).
    writing: Mutex<()>,
    writes: AtomicU64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LeaseFile {
    handed_out_until: DateTime<Utc>,
}

fn nanos(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 { i64::MIN } else { i64::MAX })
}

impl Lease {
    /// `at` if the lease covers it (extending the lease first when needed);
    /// the lease's end when it cannot be extended (time stands still rather
    /// than risk going back after a crash).
    fn cover(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        if nanos(at) <= self.until.load(Ordering::Acquire) {
            return at;
        }
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let until = self.until.load(Ordering::Acquire);
        if nanos(at) <= until {
            return at;
        }
        let new_until = at.checked_add_signed(self.span).unwrap_or(at);
        match write_lease(&self.path, new_until) {
            Ok(()) => {
                self.writes.fetch_add(1, Ordering::Relaxed);
                self.until.store(nanos(new_until), Ordering::Release);
                at
            }
            Err(error) => {
                let path = self.path.display();
                tracing::warn!(%error, %path, "cannot extend the clock's lease; business time waits");
                DateTime::from_timestamp_nanos(until)
            }
        }
    }
}

/// Replaces the lease file atomically and durably.
fn write_lease(path: &Path, until: DateTime<Utc>) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(CLOCK_TEMP_FILE);
    let text = serde_json::json!({ "handed_out_until": until.to_rfc3339_opts(SecondsFormat::Nanos, true) }).to_string();
    let mut file = File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Makes a rename in `dir` durable (a no-op where directories cannot be opened).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Virtual time running `speed` times faster than real time.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    virtual_start: DateTime<Utc>,
    real_start: Instant,
    speed: f64,
    /// Nothing earlier is ever handed out (the lease of the previous run).
    floor: DateTime<Utc>,
    /// Present for a clock that persists its position.
    lease: Option<Arc<Lease>>,
}

/// The fastest clock `cartback dev` accepts: a year of business time in
/// about five real minutes.
pub const MAX_SPEED: f64 = 100_000.0;

fn check_speed(speed: f64) -> Result<(), ClockError> {
    // Slower than real time has no use here and would stretch leases and
    // retries past what anyone would wait for.
    // Faster than MAX_SPEED would run out of representable time (year
    // 262143) within hours and persist that as the floor of every later run.
    if !speed.is_finite() || !(1.0..=MAX_SPEED).contains(&speed) {
        return Err(ClockError::BadSpeed(speed));
    }
    Ok(())
}

impl VirtualClock {
    /// Starts at the current real time, without persisting. `speed` 1 is real time.
    pub fn new(speed: f64) -> Result<VirtualClock, ClockError> {
        Self::starting_at(Utc::now(), speed)
    }

    /// Starts at a given virtual time (e.g. to resume a demo where it stopped).
    pub fn starting_at(virtual_start: DateTime<Utc>, speed: f64) -> Result<VirtualClock, ClockError> {
        check_speed(speed)?;
        let floor = DateTime::<Utc>::MIN_UTC;
        Ok(VirtualClock { virtual_start, real_start: Instant::now(), speed, floor, lease: None })
    }

    /// The clock of `cartback dev`: resumes from, and keeps, its lease in
    /// `data_dir/clock.json` (see the module notes). A temporary file left
    /// by a crash mid-write is removed.
    pub fn persistent(data_dir: impl AsRef<Path>, speed: f64) -> Result<VirtualClock, ClockError> {
        check_speed(speed)?;
        let dir = data_dir.as_ref();
        let path = dir.join(CLOCK_FILE);
        let file_error =
            |path: &Path, e: std::io::Error| ClockError::File { path: path.to_owned(), reason: e.to_string() };
        fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
        let tmp = dir.join(CLOCK_TEMP_FILE);
        match fs::remove_file(&tmp) {
            Ok(()) => tracing::info!(path = %tmp.display(), "removed a clock file left half-written by a crash"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_error(&tmp, e)),
        }
        let mark = match fs::read_to_string(&path) {
            Ok(text) => {
                let stored: LeaseFile = serde_json::from_str(&text)
                    .map_err(|e| ClockError::Unreadable { path: path.clone(), reason: e.to_string() })?;
                Some(stored.handed_out_until)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(file_error(&path, e)),
        };
        let wall = Utc::now();
        let floor = mark.unwrap_or(DateTime::<Utc>::MIN_UTC);
        // At speed 1 the clock is the wall time (held at the floor until the
        // wall passes it); faster, it carries on from where it stopped.
        let virtual_start = if speed == 1.0 { wall } else { wall.max(floor) };
        let probe = VirtualClock::starting_at(wall, speed)?;
        let lease = Lease {
            path,
            until: AtomicI64::new(nanos(floor)),
            span: probe.virtual_duration(LEASE_REAL),
            writing: Mutex::new(()),
            writes: AtomicU64::new(0),
        };
        Ok(VirtualClock { virtual_start, real_start: Instant::now(), speed, floor, lease: Some(Arc::new(lease)) })
    }

    /// The real-time clock (speed 1).
    pub fn real_time() -> VirtualClock {
        VirtualClock {
            virtual_start: Utc::now(),
            real_start: Instant::now(),
            speed: 1.0,
            floor: DateTime::<Utc>::MIN_UTC,
            lease: None,
        }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The end of the persisted lease: no time after it has been handed out.
    pub fn persisted_until(&self) -> Option<DateTime<Utc>> {
        self.lease.as_ref().map(|l| DateTime::from_timestamp_nanos(l.until.load(Ordering::Acquire)))
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
    /// system clock is adjusted while running, and never below the lease of
    /// the previous run.
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.virtual_duration(self.real_start.elapsed());
        let at = self.virtual_start.checked_add_signed(elapsed).unwrap_or(DateTime::<Utc>::MAX_UTC).max(self.floor);
        match &self.lease {
            Some(lease) => lease.cover(at),
            None => at,
        }
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
        assert!(
            virtual_elapsed <= Duration::from_std(real_elapsed * 1000).unwrap() + Duration::seconds(1),
            "{virtual_elapsed}"
        );
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

    fn stored_mark(dir: &Path) -> DateTime<Utc> {
        let text = fs::read_to_string(dir.join(CLOCK_FILE)).unwrap();
        serde_json::from_str::<LeaseFile>(&text).unwrap().handed_out_until
    }

    #[test]
    fn given_a_persistent_clock_when_read_many_times_then_the_file_bounds_every_time_and_is_written_rarely() {
        let dir = tempfile::tempdir().unwrap();
        let clock = VirtualClock::persistent(dir.path(), 600.0).unwrap();
        let mut last = clock.now();
        let started = Instant::now();
        let mut reads = 0u64;
        while started.elapsed() < StdDuration::from_millis(600) {
            let now = clock.now();
            assert!(now >= last);
            assert!(now <= stored_mark(dir.path()), "handed out {now} beyond the persisted lease");
            last = now;
            reads += 1;
        }
        let writes = clock.lease.as_ref().unwrap().writes.load(Ordering::Relaxed);
        // 600 ms of reads at one lease per 250 ms: a handful of writes, not one per read.
        assert!((1..=5).contains(&writes), "{writes} writes for {reads} reads");
        assert_eq!(clock.persisted_until(), Some(stored_mark(dir.path())));
    }

    #[test]
    fn given_a_fast_clock_that_crashes_when_restarted_on_the_same_folder_then_time_resumes_not_earlier() {
        let dir = tempfile::tempdir().unwrap();
        let mut last_handed_out = DateTime::<Utc>::MIN_UTC;
        for _run in 0..3 {
            let clock = VirtualClock::persistent(dir.path(), 3600.0).unwrap();
            let first = clock.now();
            assert!(first >= last_handed_out, "went back from {last_handed_out} to {first}");
            std::thread::sleep(StdDuration::from_millis(30));
            last_handed_out = clock.now();
            // An hour of virtual time per real second: 30 ms is 108 virtual seconds.
            assert!(last_handed_out - first >= Duration::seconds(100));
            drop(clock); // a kill: nothing is flushed on the way out
        }
        assert!(last_handed_out > Utc::now() + Duration::minutes(4), "runs accumulate ahead of the wall clock");
    }

    #[test]
    fn given_speed_1_and_a_lease_ahead_of_the_wall_when_restarted_then_time_holds_at_the_lease_then_follows_the_wall() {
        let dir = tempfile::tempdir().unwrap();
        let ahead = Utc::now() + Duration::seconds(2);
        write_lease(&dir.path().join(CLOCK_FILE), ahead).unwrap();
        let clock = VirtualClock::persistent(dir.path(), 1.0).unwrap();
        if Utc::now() < ahead {
            assert_eq!(clock.now(), ahead, "never below what the previous run may have handed out");
        }
        while Utc::now() < ahead + Duration::milliseconds(100) {
            std::thread::sleep(StdDuration::from_millis(50));
        }
        let (before, now, after) = (Utc::now(), clock.now(), Utc::now());
        let slack = Duration::milliseconds(20);
        assert!(now > ahead && before - slack <= now && now <= after + slack, "{now} vs wall {before}..{after}");
    }

    #[test]
    fn given_speed_1_and_an_old_lease_when_started_then_it_is_the_wall_time() {
        let dir = tempfile::tempdir().unwrap();
        write_lease(&dir.path().join(CLOCK_FILE), Utc::now() - Duration::days(3)).unwrap();
        let clock = VirtualClock::persistent(dir.path(), 1.0).unwrap();
        let (before, now, after) = (Utc::now(), clock.now(), Utc::now());
        let slack = Duration::milliseconds(20);
        assert!(now >= before - slack && now <= after + slack, "{now} vs wall {before}..{after}");
        let fast = VirtualClock::persistent(dir.path(), 60.0).unwrap();
        assert!(fast.now() >= clock.now() - Duration::milliseconds(50), "a fast clock never starts behind the wall");
    }

    #[test]
    fn given_a_temp_file_left_by_a_crash_mid_write_when_started_then_it_is_removed_and_the_lease_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mark = Utc::now() + Duration::hours(5);
        write_lease(&dir.path().join(CLOCK_FILE), mark).unwrap();
        fs::write(dir.path().join(CLOCK_TEMP_FILE), "{\"handed_out_un").unwrap();
        let clock = VirtualClock::persistent(dir.path(), 100.0).unwrap();
        assert!(!dir.path().join(CLOCK_TEMP_FILE).exists());
        assert!(clock.now() >= mark);
    }

    #[test]
    fn given_an_unreadable_clock_file_when_started_then_a_clear_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CLOCK_FILE), "garbage").unwrap();
        let err = VirtualClock::persistent(dir.path(), 10.0).unwrap_err();
        assert!(matches!(&err, ClockError::Unreadable { path, .. } if path.ends_with(CLOCK_FILE)), "{err}");
        assert!(err.to_string().contains("clock.json"), "{err}");
        assert!(matches!(VirtualClock::persistent(dir.path(), 0.5), Err(ClockError::BadSpeed(_))));
        assert!(matches!(VirtualClock::persistent(dir.path(), 1e9), Err(ClockError::BadSpeed(_))), "past MAX_SPEED");
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
