//! The ingest body: any bytes through `parse_body` (the one entry both
//! runtimes use); every accepted event survives the JSON round trip the stores
//! make, and accepted cart events fold into a cart whose totals and money text
//! never panic.
#![no_main]

use cartback_core::cart::{money_text, Cart};
use cartback_core::event::{parse_body, Event};
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let received_at: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().expect("a time");
    let Ok(parsed) = parse_body(data, received_at) else {
        return;
    };
    let events: Vec<Event> = parsed.into_iter().filter_map(|p| p.result.ok()).collect();
    for event in &events {
        let stored = serde_json::to_vec(event).expect("events serialise");
        let read: Event = serde_json::from_slice(&stored).expect("a stored event reads back");
        assert_eq!(&read, event, "the store's round trip changed the event");
    }
    let in_cart: Vec<Event> = events.iter().filter(|e| e.cart_id.as_deref() == Some("c")).cloned().collect();
    let cart = Cart::from_events("c", &in_cart);
    let _ = money_text(cart.totals().subtotal);
});
