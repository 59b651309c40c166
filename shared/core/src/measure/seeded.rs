//! A small seeded generator (SplitMix64) for the measurement tests'
//! simulations: the same draws on every run.

pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    /// A draw from [0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Successes in `trials` independent trials of probability `p`.
    pub(crate) fn successes(&mut self, trials: u64, p: f64) -> u64 {
        (0..trials).filter(|_| self.uniform() < p).count() as u64
    }
}
