//! A cart's event log is bounded so it always fits one DynamoDB item, but
//! the bound never refuses what matters: a purchase always lands.

use std::sync::Arc;

use cartback_core::event::validate_event;
use cartback_core::ports::{CartStore, Clock};
use cartback_core::service::{CampaignCache, EventStatus, Ingest, MAX_EVENTS_PER_CART};
use cartback_local::testing::ManualClock;
use cartback_local::{Database, SqliteScheduler};
use serde_json::json;

fn ingest() -> (Ingest<Database>, Database, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new("2026-11-23T10:00:00Z".parse().unwrap()));
    let db = Database::open_in_memory().unwrap().with_clock(clock.clone());
    let campaigns = Arc::new(CampaignCache::new(Arc::new(db.clone()), clock.clone(), chrono::Duration::seconds(60)));
    let ingest = Ingest {
        store: Arc::new(db.clone()),
        scheduler: Arc::new(SqliteScheduler::new(db.clone())),
        campaigns,
        clock: clock.clone(),
    };
    (ingest, db, clock)
}

async fn send(ingest: &Ingest<Database>, clock: &ManualClock, raw: serde_json::Value) -> Result<EventStatus, String> {
    let event = validate_event(&raw, clock.now()).unwrap();
    ingest.apply(&event, clock.now()).await.unwrap().into_result().map_err(|e| e.field)
}

#[tokio::test]
async fn given_a_full_cart_when_more_edits_arrive_then_they_are_refused_by_field_but_a_purchase_still_lands() {
    let (ingest, db, clock) = ingest();
    for n in 0..MAX_EVENTS_PER_CART {
        let edit = json!({"event_id": format!("e{n}"), "type": "add_to_cart", "cart_id": "big", "items": [{"item_id": format!("sku{}", n % 5)}]});
        assert_eq!(send(&ingest, &clock, edit).await, Ok(EventStatus::Accepted));
    }
    let one_more = json!({"event_id": "extra", "type": "add_to_cart", "cart_id": "big", "items": [{"item_id": "x"}]});
    assert_eq!(send(&ingest, &clock, one_more).await, Err("cart_id".to_owned()));

    let purchase = json!({"event_id": "buy", "type": "purchase", "cart_id": "big", "order_id": "o1"});
    assert_eq!(send(&ingest, &clock, purchase).await, Ok(EventStatus::Accepted));
    let cart = db.get_cart(&"big".into()).await.unwrap().unwrap().cart();
    assert_eq!(cart.status, cartback_core::cart::CartStatus::Converted);
}

#[tokio::test]
async fn given_repeated_views_of_one_item_when_ingested_then_each_is_accepted_but_the_log_grows_once() {
    let (ingest, db, clock) = ingest();
    for n in 0..20 {
        let view =
            json!({"event_id": format!("v{n}"), "type": "view_item", "cart_id": "c", "items": [{"item_id": "sku-1"}]});
        assert_eq!(send(&ingest, &clock, view).await, Ok(EventStatus::Accepted));
    }
    let record = db.get_cart(&"c".into()).await.unwrap().unwrap();
    assert_eq!(record.events.len(), 1);
    assert_eq!(record.cart().items_viewed, 1);
    let again = json!({"event_id": "v3", "type": "view_item", "cart_id": "c", "items": [{"item_id": "sku-1"}]});
    assert_eq!(
        send(&ingest, &clock, again).await,
        Ok(EventStatus::Duplicate),
        "a repeated event_id is still a duplicate"
    );
}

/// Found by the simulation: a repeated view that carries a guest's contact
/// data or the customer id was dropped with what it carried.
#[tokio::test]
async fn given_a_repeated_view_carrying_contact_data_or_a_customer_id_when_ingested_then_the_cart_keeps_them() {
    let (ingest, db, clock) = ingest();
    let view = |id: &str, extra: serde_json::Value| {
        let mut event = json!({"event_id": id, "type": "view_item", "cart_id": "c", "items": [{"item_id": "sku-1"}]});
        event.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        event
    };
    assert_eq!(send(&ingest, &clock, view("v1", json!({}))).await, Ok(EventStatus::Accepted));
    let with_email = view("v2", json!({"customer": {"email": "guest@example.com"}}));
    assert_eq!(send(&ingest, &clock, with_email).await, Ok(EventStatus::Accepted));
    assert_eq!(send(&ingest, &clock, view("v3", json!({"customer_id": "u1"}))).await, Ok(EventStatus::Accepted));
    assert_eq!(send(&ingest, &clock, view("v4", json!({"customer_id": "u1"}))).await, Ok(EventStatus::Accepted));

    let record = db.get_cart(&"c".into()).await.unwrap().unwrap();
    let cart = record.cart();
    assert_eq!(
        (cart.contact.email.as_ref().map(|e| e.expose()), cart.customer_id.as_deref()),
        (Some("guest@example.com"), Some("u1"))
    );
    assert_eq!(record.events.len(), 3, "the plain repeat v4 is still not stored");
}
