//! What the HTTP API serves, independent of any server or framework: the
//! services behind it, the OpenAPI document and the cart view. The routes
//! themselves are one axum router in `cartback-http`, which `cartback dev`
//! serves and the ingest Lambda runs through `lambda_http`; the core stays
//! free of HTTP frameworks because every Lambda (checker, senders) links it.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::ports::{Clock, StateStore, TimelineEntry};
use crate::service::{Ingest, Settings};

pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// The services and settings the HTTP routes use.
pub struct Api {
    pub ingest: Ingest,
    pub store: Arc<dyn StateStore>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
}

pub fn cart_view(record: &crate::ports::CartRecord, timeline: &[TimelineEntry]) -> Value {
    let cart = record.cart();
    let totals = cart.totals();
    json!({
        "cart_id": cart.cart_id,
        "status": cart.status,
        "customer_id": cart.customer_id,
        "device": cart.device,
        "items": cart.items,
        "totals": { "currency": totals.currency, "subtotal": crate::cart::money_text(totals.subtotal), "item_count": totals.item_count },
        "last_activity_at": cart.last_activity_at,
        "campaign": record.progress,
        "next_check_at": record.timer_armed_for,
        "timeline": timeline,
    })
}
