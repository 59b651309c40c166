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

    /// The shortest first-step delay of the enabled campaigns: when a cart's
    /// timer must fire at the latest after its last activity.
    pub async fn first_check_delay(&self) -> Result<Duration, PortError> {
        Ok(self
            .get()
            .await?
            .iter()
            .filter(|c| c.enabled)
            .filter_map(|c| c.steps.first().map(|s| s.delay))
            .min()
            .unwrap_or_else(|| Duration::minutes(30)))
    }
}
