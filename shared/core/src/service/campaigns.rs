use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use crate::campaign::Campaign;
use crate::ports::{CampaignStore, Clock, PortError};

type Snapshot = (DateTime<Utc>, Arc<Vec<Campaign>>);

/// Campaigns read through a short cache so a marketer's change takes effect
/// within `ttl` without hitting the config store on every event.
pub struct CampaignCache {
    store: Arc<dyn CampaignStore>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    /// When the list was read, and the list.
    cached: Mutex<Option<Snapshot>>,
}

impl CampaignCache {
    pub fn new(store: Arc<dyn CampaignStore>, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        CampaignCache { store, clock, ttl, cached: Mutex::new(None) }
    }

    /// The campaigns in force. An empty store means the built-in default.
    pub async fn get(&self) -> Result<Arc<Vec<Campaign>>, PortError> {
        let now = self.clock.now();
        if let Some((at, campaigns)) = self.cached.lock().expect("cache lock").as_ref() {
            if now < *at + self.ttl && now >= *at {
                return Ok(campaigns.clone());
            }
        }
        let mut campaigns = self.store.list().await?;
        if campaigns.is_empty() {
            campaigns.push(Campaign::default_campaign());
        }
        let campaigns = Arc::new(campaigns);
        *self.cached.lock().expect("cache lock") = Some((now, campaigns.clone()));
        Ok(campaigns)
    }

    /// The shortest first-step delay of the enabled campaigns, shadow ones
    /// and every experiment variant included: when a cart's timer must fire
    /// at the latest after its last activity.
    pub async fn first_check_delay(&self) -> Result<Duration, PortError> {
        Ok(first_check_delay(&self.get().await?))
    }
}

/// How soon after a cart's last activity its first check is due: the
/// earliest first step of the enabled campaigns (and their variants).
pub fn first_check_delay(campaigns: &[Campaign]) -> Duration {
    campaigns
        .iter()
        .filter(|c| c.enabled)
        .flat_map(|c| {
            let variants = c.experiment.as_ref().map_or(0, |e| e.variants.len());
            let own = c.steps.first().map(|s| s.delay);
            own.into_iter().chain((0..variants).filter_map(|i| c.with_variant(i).steps.first().map(|s| s.delay)))
        })
        .min()
        .unwrap_or_else(|| Duration::minutes(30))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::{CampaignMode, Experiment, StepOverride, Variant};

    #[test]
    fn given_a_shadow_and_a_variant_with_shorter_first_steps_when_the_first_check_is_armed_then_the_shortest_counts() {
        let live = Campaign::default_campaign();
        assert_eq!(first_check_delay(std::slice::from_ref(&live)), Duration::minutes(30));
        let shadow = Campaign {
            id: "draft".into(),
            mode: CampaignMode::Shadow,
            steps: vec![crate::campaign::Step { delay: Duration::minutes(20), ..live.steps[0].clone() }],
            ..live.clone()
        };
        assert_eq!(first_check_delay(&[live.clone(), shadow]), Duration::minutes(20));
        let quick = StepOverride { delay: Some(Duration::minutes(5)), ..Default::default() };
        let experiment = Experiment {
            id: "timing".into(),
            variants: vec![
                Variant { name: "a".into(), weight: 1, steps: vec![] },
                Variant { name: "b".into(), weight: 1, steps: vec![quick] },
            ],
            control: None,
        };
        let tested = Campaign { experiment: Some(experiment), ..live };
        assert_eq!(first_check_delay(&[tested]), Duration::minutes(5));
    }
}
