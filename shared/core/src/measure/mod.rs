//! Measurement: what recovery really earns. Assignment to the holdout and
//! to experiment variants is a stable hash of ids ([`assign`]), so the
//! engine stays a pure function; the services record compact [`facts`]
//! (a cart entered a campaign, a message's outcome, an order, a return),
//! which both runtimes store behind [`crate::ports::FactStore`]; the
//! [`report`] is computed from those facts by one pure function.

pub mod assign;
pub mod facts;
pub mod report;
#[cfg(test)]
pub(crate) mod seeded;
pub mod stats;

pub use assign::{assign_group, assign_variant, Group};
pub use facts::{Fact, FactKind, MessageOutcome, SegmentLabel};
