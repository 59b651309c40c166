//! What the HTTP API serves, independent of any server or framework: the
//! services behind it, the OpenAPI document and the cart view. The routes
//! themselves are one axum router in `cartback-http`, which `cartback dev`
//! serves and the ingest Lambda runs through `lambda_http`; the core stays
//! free of HTTP frameworks because every Lambda (checker, senders) links it.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::ports::{Clock, StateStore, TemplateStore, TimelineEntry};
use crate::service::{Ingest, Settings};

pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// The services and settings the HTTP routes use.
pub struct Api {
    pub ingest: Ingest,
    pub store: Arc<dyn StateStore>,
    /// Business time (virtual under `cartback dev --clock-speed`): what
    /// `/healthz` reports, link expiry, what the services stamp.
    pub clock: Arc<dyn Clock>,
    /// Real time, always: the signature replay window is a security
    /// property of real time, so it never follows a virtual clock.
    pub wall_clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    /// Whether `POST /v1/events` still takes legacy v1 signatures
    /// (`CARTBACK_ACCEPT_V1_SIGNATURES`); every other route needs v2.
    pub accept_v1_signatures: bool,
    /// The stored template sets and brand the dashboard previews.
    pub templates: Arc<dyn TemplateStore>,
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
