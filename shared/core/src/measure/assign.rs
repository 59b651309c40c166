//! Stable assignment: a customer's group (treated or held out) and
//! experiment variant are a hash of the campaign (or experiment) id and the
//! customer key, so a customer stays in one group across carts and
//! sessions, and deciding needs no randomness (the engine stays pure).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::CustomerKey;

/// Buckets per hundred percent: assignment has a resolution of 0.01%.
const BUCKETS: u64 = 10_000;

/// Whether a customer gets the campaign's messages or is held out to
/// measure what the messages change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Treated,
    HeldOut,
    /// A shadow campaign's cart: nothing it decides is ever sent.
    Shadow,
}

impl Group {
    pub fn as_str(self) -> &'static str {
        crate::enum_names::name_of(&self)
    }
}

/// The customer's bucket in `0..10_000` under `salt`: the first eight bytes
/// of SHA-256 over the salt and the key's stored form. Independent salts
/// give independent assignments (holdout and variant do not correlate).
pub fn bucket(salt: &str, key: &CustomerKey) -> u64 {
    let digest = Sha256::digest(format!("{salt}\u{1f}{key}"));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % BUCKETS
}

/// The customer's group in a live campaign holding out `holdout_percent`
/// percent of its customers (0 to 100).
pub fn assign_group(campaign_id: &str, holdout_percent: u8, key: &CustomerKey) -> Group {
    if bucket(&format!("holdout:{campaign_id}"), key) < u64::from(holdout_percent) * (BUCKETS / 100) {
        Group::HeldOut
    } else {
        Group::Treated
    }
}

/// The index of the customer's variant among `weights` (relative weights,
/// not all zero), stable for the experiment id; `None` when every weight is 0.
pub fn assign_variant(experiment_id: &str, weights: &[u32], key: &CustomerKey) -> Option<usize> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    // Scale the bucket onto the total weight, then walk the cumulative weights.
    let point = bucket(&format!("experiment:{experiment_id}"), key) * total / BUCKETS;
    let mut upto = 0;
    weights.iter().position(|w| {
        upto += u64::from(*w);
        point < upto
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(i: usize) -> CustomerKey {
        CustomerKey::Customer(format!("customer-{i}").as_str().into())
    }

    #[test]
    fn given_the_same_customer_when_assigned_twice_then_the_group_and_variant_are_the_same() {
        let key = customer(7);
        assert_eq!(assign_group("default", 10, &key), assign_group("default", 10, &key));
        assert_eq!(assign_variant("exp", &[1, 1], &key), assign_variant("exp", &[1, 1], &key));
    }

    #[test]
    fn given_10_percent_holdout_when_20000_customers_are_assigned_then_about_10_percent_are_held_out() {
        let held = (0..20_000).filter(|i| assign_group("default", 10, &customer(*i)) == Group::HeldOut).count();
        // Binomial(20000, 0.1): sd 42; 5 sd either side.
        assert!((1_790..=2_210).contains(&held), "{held} held out");
        assert!((0..1_000).all(|i| assign_group("default", 0, &customer(i)) == Group::Treated));
    }

    #[test]
    fn given_weights_1_to_3_when_assigned_then_variants_split_a_quarter_to_three_quarters() {
        let second = (0..20_000).filter(|i| assign_variant("exp", &[1, 3], &customer(*i)) == Some(1)).count();
        assert!((14_700..=15_300).contains(&second), "{second} in the second variant");
        assert_eq!(assign_variant("exp", &[0, 0], &customer(1)), None);
        assert_eq!(assign_variant("exp", &[0, 5], &customer(1)), Some(1));
    }

    #[test]
    fn given_two_salts_when_assigned_then_holdout_and_variant_are_independent() {
        // Among held-out customers the variant split is still about even.
        let held: Vec<usize> = (0..20_000).filter(|i| assign_group("c", 50, &customer(*i)) == Group::HeldOut).collect();
        let first = held.iter().filter(|i| assign_variant("c", &[1, 1], &customer(**i)) == Some(0)).count();
        let share = first as f64 / held.len() as f64;
        assert!((0.47..=0.53).contains(&share), "{share}");
    }
}
