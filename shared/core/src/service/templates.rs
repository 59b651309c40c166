use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use crate::ports::{Clock, PortError, TemplateStore};
use crate::template::{self, Brand, TemplateSet};

/// The template sets in force and the stored brand, as one snapshot.
#[derive(Debug, Clone)]
pub struct Templates {
    /// By name: the shipped sets, each replaced by a stored set of the same name.
    pub sets: BTreeMap<String, TemplateSet>,
    /// The stored `[brand]`, if any (a send falls back to
    /// [`Brand::fallback`] with the settings' postal address).
    pub brand: Option<Brand>,
}

impl Templates {
    pub fn set(&self, name: &str) -> Option<&TemplateSet> {
        self.sets.get(name)
    }

    /// The shipped sets alone, no brand.
    pub fn shipped() -> Templates {
        Templates { sets: template::shipped().into_iter().map(|s| (s.name.to_string(), s)).collect(), brand: None }
    }
}

type Snapshot = (DateTime<Utc>, Arc<Templates>);

/// Where sets are read from, and how long a read is kept.
struct Source {
    store: Arc<dyn TemplateStore>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
}

/// Template sets and the brand read through a short cache (like
/// [`super::CampaignCache`]): a marketer's change takes effect within `ttl`
/// without a config store read per message.
pub struct TemplateCache {
    /// None: the shipped sets only (a runtime without a template store).
    source: Option<Source>,
    shipped: Arc<Templates>,
    cached: Mutex<Option<Snapshot>>,
}

impl TemplateCache {
    pub fn new(store: Arc<dyn TemplateStore>, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        let source = Some(Source { store, clock, ttl });
        TemplateCache { source, shipped: Arc::new(Templates::shipped()), cached: Mutex::new(None) }
    }

    /// The shipped sets and no brand, never read from a store.
    pub fn shipped_only() -> Self {
        TemplateCache { source: None, shipped: Arc::new(Templates::shipped()), cached: Mutex::new(None) }
    }

    /// The shipped sets and no brand: what sends use when the store cannot be read.
    pub fn shipped(&self) -> Arc<Templates> {
        self.shipped.clone()
    }

    /// The sets in force: stored sets overlaid on the shipped ones.
    pub async fn get(&self) -> Result<Arc<Templates>, PortError> {
        let Some(Source { store, clock, ttl }) = &self.source else {
            return Ok(self.shipped.clone());
        };
        let now = clock.now();
        if let Some((at, templates)) = self.cached.lock().expect("cache lock").as_ref() {
            if now < *at + *ttl && now >= *at {
                return Ok(templates.clone());
            }
        }
        let mut sets = self.shipped.sets.clone();
        for set in store.list_templates().await? {
            sets.insert(set.name.to_string(), set);
        }
        let templates = Arc::new(Templates { sets, brand: store.brand().await? });
        *self.cached.lock().expect("cache lock") = Some((now, templates.clone()));
        Ok(templates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::TemplateName;
    use async_trait::async_trait;

    /// A store in memory that counts its reads.
    #[derive(Default)]
    struct Memory {
        sets: Mutex<Vec<TemplateSet>>,
        brand: Mutex<Option<Brand>>,
        reads: Mutex<u32>,
    }

    #[async_trait]
    impl TemplateStore for Memory {
        async fn list_templates(&self) -> Result<Vec<TemplateSet>, PortError> {
            *self.reads.lock().unwrap() += 1;
            Ok(self.sets.lock().unwrap().clone())
        }
        async fn put_template(&self, set: &TemplateSet) -> Result<(), PortError> {
            let mut sets = self.sets.lock().unwrap();
            sets.retain(|s| s.name != set.name);
            sets.push(set.clone());
            Ok(())
        }
        async fn delete_template(&self, name: &TemplateName) -> Result<bool, PortError> {
            let mut sets = self.sets.lock().unwrap();
            let before = sets.len();
            sets.retain(|s| &s.name != name);
            Ok(sets.len() < before)
        }
        async fn brand(&self) -> Result<Option<Brand>, PortError> {
            Ok(self.brand.lock().unwrap().clone())
        }
        async fn put_brand(&self, brand: &Brand) -> Result<(), PortError> {
            *self.brand.lock().unwrap() = Some(brand.clone());
            Ok(())
        }
    }

    struct FixedClock(Mutex<DateTime<Utc>>);

    impl Clock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    /// GIVEN a store holding its own "reminder" and a new "summer" set, and a brand
    /// WHEN read through the cache, then again within and after the TTL
    /// THEN stored sets replace shipped ones of the same name, the others stay, and the store is read once per TTL.
    #[tokio::test]
    async fn given_stored_sets_when_read_through_the_cache_then_they_overlay_the_shipped_ones_once_per_ttl() {
        let store = Arc::new(Memory::default());
        let mut reminder = template::shipped_set("reminder").unwrap();
        reminder.locales.get_mut("en").unwrap().push_title = Some("Still thinking it over?".into());
        store.put_template(&reminder).await.unwrap();
        let summer = TemplateSet { name: TemplateName::parse("summer").unwrap(), ..reminder.clone() };
        store.put_template(&summer).await.unwrap();
        store.put_brand(&Brand::sample()).await.unwrap();
        let clock = Arc::new(FixedClock(Mutex::new("2026-11-23T10:00:00Z".parse().unwrap())));
        let cache = TemplateCache::new(store.clone(), clock.clone(), Duration::seconds(60));

        let templates = cache.get().await.unwrap();
        let names: Vec<&str> = templates.sets.keys().map(String::as_str).collect();
        assert_eq!(names, ["last_call", "reminder", "summer"]);
        assert_eq!(
            templates.set("reminder").unwrap().locales["en"].push_title.as_deref(),
            Some("Still thinking it over?")
        );
        assert_eq!(templates.set("last_call"), template::shipped_set("last_call").as_ref());
        assert_eq!(templates.brand, Some(Brand::sample()));

        store.delete_template(&summer.name).await.unwrap();
        assert!(cache.get().await.unwrap().set("summer").is_some(), "cached within the TTL");
        *clock.0.lock().unwrap() += Duration::seconds(61);
        assert!(cache.get().await.unwrap().set("summer").is_none(), "read again after it");
        assert_eq!(*store.reads.lock().unwrap(), 2);
        assert!(TemplateCache::shipped_only().get().await.unwrap().brand.is_none());
    }
}
