//! Cartback's local runtime adapters: everything `cartback dev` needs to run
//! the whole pipeline in one process on one machine.
//!
//! - [`Database`]: one SQLite file (`DIR/cartback.db`) holding carts,
//!   customers, the timeline, message records and campaigns
//!   ([`StateStore`](cartback_core::ports::StateStore) and
//!   [`CampaignStore`](cartback_core::ports::CampaignStore));
//! - [`SqliteScheduler`] and [`TimerWheel`]: durable per-cart timers in that file;
//! - [`SqliteQueue`]: durable per-channel queues with retries, backoff and a
//!   dead-letter table, in that file;
//! - [`OutboxSender`]: writes messages to `DIR/outbox` instead of providers;
//! - [`VirtualClock`] (`--clock-speed N`), persisted in `DIR/clock.json` so business
//!   time never goes back across restarts, and, for tests, [`testing::ManualClock`].
//!
//! Everything durable lives in the one database file, so a restart loses no
//! cart, pending timer or queued message.

pub mod clock;
mod customer_data;
mod history;
pub mod outbox;
pub mod queues;
pub mod sqlite;
mod templates;
pub mod timers;
mod vouchers;

#[cfg(test)]
mod exactly_once_tests;

#[cfg(test)]
mod checker_tests;

#[cfg(test)]
mod voucher_tests;

pub use clock::{ClockError, VirtualClock, CLOCK_FILE};
pub use outbox::{Outbox, OutboxSender, Recovery};
pub use queues::{DeadLetter, QueueStats, ReceivedJob, RetryOutcome, RetryPolicy, SqliteQueue};
pub use sqlite::{Database, LocalError, PurgeReport, DB_FILE};
pub use timers::{SqliteScheduler, TimerWheel};

/// Helpers for tests of code built on these adapters.
pub mod testing {
    pub use crate::clock::ManualClock;
}
