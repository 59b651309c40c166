//! Each source against its platform's documented sample payloads (written
//! out by hand under `events/sources/`) and signature test vectors
//! computed independently (Python's `hmac`), not by the code under test.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::event::validate_event;

fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/../../events/sources/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().copied().collect()
}

/// Maps a body; every mapped event must also pass Cartback's own validation.
fn mapped(source: Source, headers: &Headers, body: &[u8]) -> Vec<MappedEvent> {
    let events = map(source, headers, body, Some("USD")).unwrap();
    for event in &events {
        if let Ok(raw) = &event.result {
            validate_event(raw, received()).unwrap_or_else(|e| panic!("{raw:#} fails validation: {e:?}"));
        }
    }
    events
}

fn only(events: Vec<MappedEvent>) -> Value {
    assert_eq!(events.len(), 1, "{events:#?}");
    events.into_iter().next().unwrap().result.unwrap()
}

fn shopify(topic: &str, webhook_id: &str) -> Headers {
    headers(&[("X-Shopify-Topic", topic), ("X-Shopify-Webhook-Id", webhook_id), ("X-Shopify-Shop-Domain", "shop.myshopify.com")])
}

// ---- Shopify -----------------------------------------------------------

#[test]
fn given_shopifys_checkout_sample_when_mapped_then_it_is_a_begin_checkout_snapshot_of_the_checkout_token() {
    let event = only(mapped(Source::Shopify, &shopify("checkouts/create", "b54557e4-bdd9"), &fixture("shopify/checkouts-create.json")));
    assert_eq!(event["event_id"], "shopify:b54557e4-bdd9");
    assert_eq!(event["type"], "begin_checkout");
    assert_eq!(event["cart_id"], "123123123");
    assert_eq!(event["customer_id"], "603851970716743426");
    assert_eq!(event["occurred_at"], "2026-11-23T15:01:00Z", "the offset time in UTC");
    assert_eq!(event["currency"], "USD");
    assert_eq!(
        event["items"],
        json!([{"item_id": "808950810", "item_name": "IPod Nano - 8GB - Pink", "price": "199", "quantity": 1}])
    );
    assert_eq!(
        event["customer"],
        json!({"email": "example@email.com", "first_name": "John", "locale": "en", "consents": {"email": true}})
    );
}

#[test]
fn given_a_completed_checkout_when_mapped_then_nothing_is_ingested_for_its_order_follows() {
    let mut body: Value = serde_json::from_slice(&fixture("shopify/checkouts-create.json")).unwrap();
    body["completed_at"] = json!("2026-11-23T10:05:00-05:00");
    let events = mapped(Source::Shopify, &shopify("checkouts/update", "w2"), body.to_string().as_bytes());
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn given_shopifys_order_sample_when_mapped_then_it_is_a_purchase_of_the_checkout_with_device_and_coupon() {
    let event = only(mapped(Source::Shopify, &shopify("orders/create", "w3"), &fixture("shopify/orders-create.json")));
    assert_eq!(event["type"], "purchase");
    assert_eq!(event["order_id"], "820982911946154508");
    assert_eq!(event["cart_id"], "123123123");
    assert_eq!(event["value"], "388");
    assert_eq!(event["coupon"], "WELCOME10");
    assert_eq!(event["device"], "mobile", "from client_details.user_agent");
    assert_eq!(event["occurred_at"], "2026-11-23T17:00:00Z");
}

#[test]
fn given_a_bare_refund_when_mapped_then_it_is_refused_naming_order_id_and_saying_where_the_customer_is() {
    let events = mapped(Source::Shopify, &shopify("refunds/create", "w4"), &fixture("shopify/refunds-create.json"));
    let error = events[0].result.clone().unwrap_err();
    assert_eq!(error.field, "order_id");
    assert!(error.message.contains("orders/updated"), "{error:?}");
    assert_eq!(events[0].event_id.as_deref(), Some("shopify:w4"));
}

#[test]
fn given_an_updated_order_with_a_refund_when_mapped_then_each_refund_is_a_return_keyed_by_its_own_id() {
    let mut order: Value = serde_json::from_slice(&fixture("shopify/orders-create.json")).unwrap();
    order["refunds"] = json!([serde_json::from_slice::<Value>(&fixture("shopify/refunds-create.json")).unwrap()]);
    let body = order.to_string();
    let first = only(mapped(Source::Shopify, &shopify("orders/updated", "w5"), body.as_bytes()));
    let again = only(mapped(Source::Shopify, &shopify("orders/updated", "w6"), body.as_bytes()));
    assert_eq!(first["event_id"], "shopify:refund:890088186047892319");
    assert_eq!(first["event_id"], again["event_id"], "a later update repeats the refund: a duplicate");
    assert_eq!(first["type"], "return");
    assert_eq!(first["customer_id"], "115310627314723954");
    assert_eq!(first["items"], json!([{"item_id": "808950810", "item_name": "Draft - 151cm", "price": "199", "quantity": 1}]));
}

#[test]
fn given_a_customer_update_when_mapped_then_it_is_an_identify_with_the_recorded_consent() {
    let event = only(mapped(Source::Shopify, &shopify("customers/update", "w7"), &fixture("shopify/customers-update.json")));
    assert_eq!(event["type"], "identify");
    assert_eq!(event["customer_id"], "706405506930370084");
    assert_eq!(event["customer"], json!({"email": "bob@biller.com", "first_name": "Bob", "consents": {"email": false}}));
}

#[test]
fn given_unmapped_topics_when_mapped_then_they_are_acknowledged_with_no_event() {
    assert!(mapped(Source::Shopify, &shopify("products/update", "w8"), b"{\"id\": 1}").is_empty());
    let no_topic = map(Source::Shopify, &Headers::default(), b"{}", None).unwrap_err();
    assert_eq!(no_topic, SourceError::payload("X-Shopify-Topic", "is required: it names what the webhook is about"));
}

#[test]
fn given_a_line_item_with_a_price_that_is_not_an_amount_when_mapped_then_the_shopify_field_is_named() {
    let mut body: Value = serde_json::from_slice(&fixture("shopify/checkouts-create.json")).unwrap();
    body["line_items"][0]["price"] = json!("one ninety-nine");
    let events = mapped(Source::Shopify, &shopify("checkouts/update", "w9"), body.to_string().as_bytes());
    assert_eq!(events[0].result.clone().unwrap_err().field, "line_items[0].price");
}

#[test]
fn given_the_same_delivery_twice_when_mapped_then_the_event_id_repeats_and_without_a_webhook_id_the_body_keys_it() {
    let body = fixture("shopify/checkouts-create.json");
    let a = only(mapped(Source::Shopify, &shopify("checkouts/update", "same"), &body));
    let b = only(mapped(Source::Shopify, &shopify("checkouts/update", "same"), &body));
    assert_eq!(a["event_id"], b["event_id"]);
    let topic_only = headers(&[("X-Shopify-Topic", "checkouts/update")]);
    let c = only(mapped(Source::Shopify, &topic_only, &body));
    let d = only(mapped(Source::Shopify, &topic_only, &body));
    assert_eq!(c["event_id"], d["event_id"]);
    assert_ne!(a["event_id"], c["event_id"]);
}

#[test]
fn given_shopify_signature_vectors_when_verified_then_only_the_exact_body_and_secret_pass() {
    let secret = SourceSecret::new("shpss_cartback_test_vector_secret").unwrap();
    let signed = |tag: &str| headers(&[("X-Shopify-Hmac-Sha256", tag)]);
    let hello = br#"{"hello":"world"}"#;
    let vector = "F9bkjVGdlElSUtzCT4CtOO+JbVYWHUEi2jzUks0FUys=";
    assert_eq!(base64_hmac_sha256(b"shpss_cartback_test_vector_secret", hello), vector);
    assert_eq!(verify(Source::Shopify, &secret, &signed(vector), hello, received()), Ok(()));
    let sample = fixture("shopify/checkouts-create.json");
    let sample_vector = signed("U5XaijRVEZFccbN8BJaseUPuBaVTx+l7v6mgggGS+is=");
    assert_eq!(verify(Source::Shopify, &secret, &sample_vector, &sample, received()), Ok(()));
    let bad = SourceError::BadSignature("X-Shopify-Hmac-Sha256");
    assert_eq!(verify(Source::Shopify, &secret, &signed(vector), br#"{"hello":"World"}"#, received()), Err(bad.clone()));
    assert_eq!(verify(Source::Shopify, &secret, &signed("not base64!"), hello, received()), Err(bad.clone()));
    let other = SourceSecret::new("shpss_another_apps_secret_000").unwrap();
    assert_eq!(verify(Source::Shopify, &other, &signed(vector), hello, received()), Err(bad));
    assert_eq!(
        verify(Source::Shopify, &secret, &Headers::default(), hello, received()),
        Err(SourceError::MissingSignature("X-Shopify-Hmac-Sha256"))
    );
}

// ---- Segment -----------------------------------------------------------

#[test]
fn given_segments_product_added_sample_when_mapped_then_it_is_an_add_to_cart_of_the_spec_cart() {
    let event = only(mapped(Source::Segment, &Headers::default(), &fixture("segment/product-added.json")));
    assert_eq!(event["event_id"], "segment:ajs-next-1795433100000-5f2c0d6e-7b1d-4c55-9f55-2f0a8c1d3b1e");
    assert_eq!(event["type"], "add_to_cart");
    assert_eq!(event["cart_id"], "skdjsidjsdkdj29j");
    assert_eq!(event["customer_id"], "97980cfea0067");
    assert_eq!(event["device"], "desktop", "from context.userAgent");
    assert_eq!(event["currency"], "USD", "the shop's, as the call names none");
    assert_eq!(
        event["items"],
        json!([{"item_id": "507f1f77bcf86cd799439011", "item_name": "Monopoly: 3rd Edition - 200 pieces",
                "price": "18.99", "quantity": 1, "url": "https://www.example.com/product/path",
                "image_url": "https://www.example.com/product/path.jpg"}])
    );
}

#[test]
fn given_segments_order_completed_sample_when_mapped_then_it_is_a_purchase_valued_at_revenue() {
    let event = only(mapped(Source::Segment, &Headers::default(), &fixture("segment/order-completed.json")));
    assert_eq!(event["type"], "purchase");
    assert_eq!((event["order_id"].as_str(), event["value"].as_str()), (Some("50314b8e9bcf000000000000"), Some("25")));
    assert_eq!((event["cart_id"].as_str(), event["coupon"].as_str()), (Some("skdjsidjsdkdj29j"), Some("hasbros")));
}

#[test]
fn given_segments_order_refunded_and_identify_samples_when_mapped_then_they_are_a_return_and_an_identify() {
    let refund = only(mapped(Source::Segment, &Headers::default(), &fixture("segment/order-refunded.json")));
    assert_eq!((refund["type"].as_str(), refund["value"].as_str()), (Some("return"), Some("30")));
    let identify = only(mapped(Source::Segment, &Headers::default(), &fixture("segment/identify.json")));
    assert_eq!(identify["type"], "identify");
    assert_eq!(identify["device"], "mobile");
    assert_eq!(
        identify["customer"],
        json!({"email": "peter@example.com", "first_name": "Peter", "locale": "en-US",
               "timezone": "America/New_York", "consents": {"email": true}})
    );
}

#[test]
fn given_a_batch_with_good_bad_and_irrelevant_calls_when_mapped_then_good_ones_are_kept_and_bad_ones_named() {
    let events = mapped(Source::Segment, &Headers::default(), &fixture("segment/batch-mixed.json"));
    assert_eq!(events.len(), 3, "the page call maps to nothing");
    let good = events[0].result.clone().unwrap();
    assert_eq!((good["cart_id"].as_str(), good["currency"].as_str()), (Some("anon-9"), Some("EUR")));
    assert_eq!(events[1].result.clone().unwrap_err().field, "batch[2].properties.product_id");
    assert_eq!(events[1].event_id.as_deref(), Some("segment:batch-add-2"));
    assert_eq!(events[2].result.clone().unwrap_err().field, "batch[3].properties.price");
}

#[test]
fn given_segment_signature_vectors_when_verified_then_the_hex_hmac_sha1_must_match() {
    let secret = SourceSecret::new("segment-shared-secret-for-tests").unwrap();
    let signed = |tag: &str| headers(&[("X-Signature", tag)]);
    let hello = br#"{"hello":"world"}"#;
    let vector = "68c09d60f5cc0a49649f39ba0127082576319d12";
    assert_eq!(segment::signature(b"segment-shared-secret-for-tests", hello), vector);
    assert_eq!(verify(Source::Segment, &secret, &signed(vector), hello, received()), Ok(()));
    let sample = fixture("segment/product-added.json");
    let sample_vector = signed("ca34574f320d91aa9e3e99eec03d6e8e9eee78c9");
    assert_eq!(verify(Source::Segment, &secret, &sample_vector, &sample, received()), Ok(()));
    let bad = Err(SourceError::BadSignature("X-Signature"));
    assert_eq!(verify(Source::Segment, &secret, &signed(vector), b"{}", received()), bad);
    assert_eq!(verify(Source::Segment, &secret, &signed("zz"), hello, received()), bad);
}
