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

/// Maps a body; every mapped event must also pass Cartback's own validation
/// (a refund once ingest has given it its order's customer).
fn mapped(source: Source, headers: &Headers, body: &[u8]) -> Vec<MappedEvent> {
    let events = map(source, headers, body, Some("USD")).unwrap();
    for event in &events {
        if let Ok(raw) = &event.result {
            let mut raw = raw.clone();
            if event.owner_from_order.is_some() {
                raw["customer_id"] = json!("the-orders-customer");
            }
            validate_event(&raw, received()).unwrap_or_else(|e| panic!("{raw:#} fails validation: {e:?}"));
        }
    }
    events
}

/// The one event mapped, with the warnings its mapping left.
fn only_with_warnings(events: Vec<MappedEvent>) -> (Value, Vec<(String, String)>) {
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = events.into_iter().next().unwrap();
    let warnings = event.warnings.into_iter().map(|w| (w.field, w.message)).collect();
    (event.result.unwrap(), warnings)
}

/// A cart as the API returned it, without its customer.
fn fetched(cart: &Value) -> FetchedCart {
    FetchedCart { cart: cart.clone(), customer: None }
}

fn only(events: Vec<MappedEvent>) -> Value {
    assert_eq!(events.len(), 1, "{events:#?}");
    events.into_iter().next().unwrap().result.unwrap()
}

fn shopify(topic: &str, webhook_id: &str) -> Headers {
    headers(&[
        ("X-Shopify-Topic", topic),
        ("X-Shopify-Webhook-Id", webhook_id),
        ("X-Shopify-Shop-Domain", "shop.myshopify.com"),
    ])
}

// ---- Shopify -----------------------------------------------------------

#[test]
fn given_shopifys_checkout_sample_when_mapped_then_it_is_a_begin_checkout_snapshot_of_the_checkout_token() {
    let event = only(mapped(
        Source::Shopify,
        &shopify("checkouts/create", "b54557e4-bdd9"),
        &fixture("shopify/checkouts-create.json"),
    ));
    assert_eq!(event["event_id"], "shopify:b54557e4-bdd9");
    assert_eq!(event["type"], "begin_checkout");
    assert_eq!(event["cart_id"], "123123123");
    assert_eq!(event["customer_id"], "603851970716743426");
    assert_eq!(event["occurred_at"], "2026-11-23T15:01:00Z", "the offset time in UTC");
    assert_eq!(event["currency"], "USD");
    assert_eq!(
        event["items"],
        json!([{"item_id": "808950810", "item_name": "IPod Nano - 8GB", "variant": "Pink", "price": "199", "quantity": 1}])
    );
    assert_eq!(
        event["customer"],
        json!({"email": "example@email.com", "first_name": "John", "locale": "en", "consents": {"email": true}})
    );
}

/// GIVEN Shopify's checkout with the marketing box ticked WHEN the customer's recorded email consent is `pending`
/// (a double opt-in not confirmed), `not_subscribed`, or absent THEN only the last two grant consent.
#[test]
fn given_a_ticked_box_and_a_pending_double_opt_in_when_mapped_then_no_consent_is_granted() {
    let sample: Value = serde_json::from_slice(&fixture("shopify/checkouts-create.json")).unwrap();
    let consent_with = |state: Option<&str>| {
        let mut body = sample.clone();
        body["buyer_accepts_marketing"] = json!(true);
        match state {
            Some(state) => body["customer"]["email_marketing_consent"] = json!({"state": state}),
            None => {
                body["customer"].as_object_mut().unwrap().remove("email_marketing_consent");
            }
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        let event = only(mapped(Source::Shopify, &shopify("checkouts/update", "consent-1"), &bytes));
        event["customer"]["consents"]["email"].clone()
    };
    assert_eq!(consent_with(Some("pending")), Value::Null, "an unconfirmed double opt-in is no grant");
    assert_eq!(consent_with(Some("not_subscribed")), json!(true));
    assert_eq!(consent_with(None), json!(true));
    assert_eq!(consent_with(Some("unsubscribed")), json!(false), "the recorded withdrawal wins over the box");
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

/// GIVEN Shopify's `refunds/create` sample (no customer, no transaction) WHEN mapped THEN it is a return of
/// the order, keyed by the refund's id like the refunds of `orders/updated`, marked to take its customer
/// from the order's stored purchase, valued at its lines' subtotals.
#[test]
fn given_a_bare_refund_when_mapped_then_it_is_a_return_of_its_order_waiting_for_the_orders_customer() {
    let events = mapped(Source::Shopify, &shopify("refunds/create", "w4"), &fixture("shopify/refunds-create.json"));
    assert_eq!(events[0].owner_from_order.as_deref(), Some("order_id"));
    let event = only(events);
    assert_eq!(event["event_id"], "shopify:refund:890088186047892319", "the same id orders/updated gives it");
    assert_eq!(event["type"], "return");
    assert_eq!(event["order_id"], "820982911946154508");
    assert_eq!(event.get("customer_id"), None, "ingest fills it from the order");
    assert_eq!((event["value"].as_str(), event["currency"].as_str()), (Some("199"), Some("USD")));
}

/// GIVEN a refund as Shopify's Refund resource documents it, with a successful refund transaction (tax
/// included) and a failed one WHEN mapped THEN its value is what the successful transaction paid back, in its
/// currency, and its item is the refunded line at its unit price.
#[test]
fn given_a_refund_with_transactions_when_mapped_then_its_value_is_what_the_successful_ones_paid_back() {
    let event =
        only(mapped(Source::Shopify, &shopify("refunds/create", "w4b"), &fixture("shopify/refunds-create-paid.json")));
    assert_eq!((event["value"].as_str(), event["currency"].as_str()), (Some("202.98"), Some("USD")));
    assert_eq!(
        event["items"],
        json!([{"item_id": "808950810", "item_name": "IPod Nano - 8GB", "variant": "Pink", "price": "199", "quantity": 1}])
    );
}

/// GIVEN a shipping-only refund (`refund_line_items: []`, a successful 5.00 transaction), and the paid refund
/// with its only line unreadable WHEN mapped THEN each is a return worth what was paid back, with no items
/// (the second keeps the warning naming its line): the order's revenue is reduced, not the refund lost.
#[test]
fn given_a_refund_listing_no_readable_product_when_mapped_then_it_is_a_return_of_its_amount() {
    let body = fixture("shopify/refunds-create-shipping.json");
    let event = only(mapped(Source::Shopify, &shopify("refunds/create", "w4c"), &body));
    assert_eq!((event["type"].as_str(), event["value"].as_str()), (Some("return"), Some("5")));
    assert_eq!((event["currency"].as_str(), event["items"].clone()), (Some("USD"), json!([])));

    let mut bad_line: Value = serde_json::from_slice(&fixture("shopify/refunds-create-paid.json")).unwrap();
    bad_line["refund_line_items"][0]["quantity"] = json!("one");
    let (event, warnings) =
        only_with_warnings(mapped(Source::Shopify, &shopify("refunds/create", "w4d"), bad_line.to_string().as_bytes()));
    assert_eq!((event["value"].as_str(), event["items"].clone()), (Some("202.98"), json!([])));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].0, "refund_line_items[0].quantity");
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
    assert_eq!(
        first["items"],
        json!([{"item_id": "808950810", "item_name": "Draft", "variant": "151cm", "price": "199", "quantity": 1}])
    );
}

#[test]
fn given_a_customer_update_when_mapped_then_it_is_an_identify_with_the_recorded_consent() {
    let event =
        only(mapped(Source::Shopify, &shopify("customers/update", "w7"), &fixture("shopify/customers-update.json")));
    assert_eq!(event["type"], "identify");
    assert_eq!(event["customer_id"], "706405506930370084");
    assert_eq!(
        event["customer"],
        json!({"email": "bob@biller.com", "first_name": "Bob", "consents": {"email": false}})
    );
}

#[test]
fn given_unmapped_topics_when_mapped_then_they_are_acknowledged_with_no_event() {
    assert!(mapped(Source::Shopify, &shopify("products/update", "w8"), b"{\"id\": 1}").is_empty());
    let no_topic = map(Source::Shopify, &Headers::default(), b"{}", None).unwrap_err();
    assert_eq!(no_topic, SourceError::payload("X-Shopify-Topic", "is required: it names what the webhook is about"));
}

/// GIVEN Shopify's checkout with a second line whose price is not an amount, and a third that names no
/// product WHEN mapped THEN those lines are left out, each with a warning naming its field, and the checkout,
/// its good line, the contact and the consent are kept.
#[test]
fn given_a_checkout_with_bad_lines_when_mapped_then_only_those_lines_are_left_out_with_warnings() {
    let mut body: Value = serde_json::from_slice(&fixture("shopify/checkouts-create.json")).unwrap();
    let good = body["line_items"][0].clone();
    let mut unpriced = good.clone();
    unpriced["price"] = json!("one ninety-nine");
    let mut anonymous = good.clone();
    for field in ["variant_id", "product_id", "sku"] {
        anonymous.as_object_mut().unwrap().remove(field);
    }
    body["line_items"] = json!([good, unpriced, anonymous]);
    let (event, warnings) =
        only_with_warnings(mapped(Source::Shopify, &shopify("checkouts/update", "w9"), body.to_string().as_bytes()));
    assert_eq!(event["items"].as_array().unwrap().len(), 1, "{event:#}");
    let fields: Vec<&str> = warnings.iter().map(|(field, _)| field.as_str()).collect();
    assert_eq!(fields, ["line_items[1].price", "line_items[2].variant_id"]);
    assert!(warnings[0].1.contains("left out"), "{warnings:?}");
    assert_eq!(event["customer"]["email"], "example@email.com");
    assert_eq!(event["customer"]["consents"]["email"], true);
}

/// GIVEN a line that maps but that Cartback's own item rules refuse (a name past 500 characters) WHEN mapped
/// THEN it is left out like an unreadable one, the warning naming the line and the item's field.
#[test]
fn given_a_line_cartback_would_refuse_when_mapped_then_it_is_left_out_naming_the_line() {
    let mut body: Value = serde_json::from_slice(&fixture("shopify/checkouts-create.json")).unwrap();
    let mut long = body["line_items"][0].clone();
    long["title"] = json!("x".repeat(600));
    body["line_items"].as_array_mut().unwrap().push(long);
    let (event, warnings) =
        only_with_warnings(mapped(Source::Shopify, &shopify("checkouts/update", "w10"), body.to_string().as_bytes()));
    assert_eq!(event["items"].as_array().unwrap().len(), 1);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].0, "line_items[1]");
    assert!(warnings[0].1.contains("item_name"), "{warnings:?}");
}

/// GIVEN one bad line in a WooCommerce order, a CoCart cart, a BigCommerce snapshot, a Segment `Checkout
/// Started` and an SFCC basket WHEN mapped THEN each keeps its event and its good lines, and names the bad
/// line in a warning; AND GIVEN a cart snapshot whose every line is bad THEN it is refused naming the first
/// (an empty snapshot would empty the cart).
#[test]
fn given_one_bad_line_on_each_platform_when_mapped_then_the_line_is_left_out_and_the_rest_kept() {
    let bad_line = |source: Source, headers: Headers, file: &str, pointer: &str, field: &str, expect: &str| {
        let mut body: Value = serde_json::from_slice(&fixture(file)).unwrap();
        let lines = body.pointer_mut(pointer).and_then(Value::as_array_mut).unwrap();
        let mut bad = lines[0].clone();
        bad[field] = json!("not a number");
        lines.push(bad);
        let (event, warnings) = only_with_warnings(mapped(source, &headers, body.to_string().as_bytes()));
        assert!(!event["items"].as_array().unwrap().is_empty(), "{file}: {event:#}");
        let fields: Vec<&str> = warnings.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, [expect], "{file}");
    };
    let woo = |topic: &str| headers(&[("X-WC-Webhook-Topic", topic)]);
    let n = |file: &str, pointer: &str| {
        let body: Value = serde_json::from_slice(&fixture(file)).unwrap();
        body.pointer(pointer).and_then(Value::as_array).unwrap().len()
    };
    let woo_lines = n("woocommerce/order-created-pending.json", "/line_items");
    bad_line(
        Source::WooCommerce,
        woo("order.created"),
        "woocommerce/order-created-pending.json",
        "/line_items",
        "price",
        &format!("line_items[{woo_lines}].price"),
    );
    let cart_lines = n("woocommerce/cart-updated.json", "/items");
    bad_line(
        Source::WooCommerce,
        woo("cart.updated"),
        "woocommerce/cart-updated.json",
        "/items",
        "price",
        &format!("items[{cart_lines}].price"),
    );
    let physical = n("bigcommerce/cart-updated-snapshot.json", "/data/cart/line_items/physical_items");
    bad_line(
        Source::BigCommerce,
        Headers::default(),
        "bigcommerce/cart-updated-snapshot.json",
        "/data/cart/line_items/physical_items",
        "quantity",
        &format!("data.cart.line_items.physical_items[{physical}].quantity"),
    );
    let baskets = n("sfcc/basket-scapi.json", "/productItems");
    bad_line(
        Source::Sfcc,
        Headers::default(),
        "sfcc/basket-scapi.json",
        "/productItems",
        "basePrice",
        &format!("productItems[{baskets}].basePrice"),
    );
    let mut started: Value = serde_json::from_slice(&fixture("segment/order-completed.json")).unwrap();
    started["event"] = json!("Checkout Started");
    started["messageId"] = json!("checkout-started-1");
    let products = started["properties"]["products"].as_array().unwrap().len();
    let mut bad = started["properties"]["products"][0].clone();
    bad["price"] = json!("free");
    started["properties"]["products"].as_array_mut().unwrap().push(bad);
    let (event, warnings) =
        only_with_warnings(mapped(Source::Segment, &Headers::default(), started.to_string().as_bytes()));
    assert_eq!(event["items"].as_array().unwrap().len(), products);
    assert_eq!(warnings[0].0, format!("properties.products[{products}].price"));

    // Every line of a snapshot bad: refused, naming the first, rather than emptying the cart.
    let mut cart: Value = serde_json::from_slice(&fixture("woocommerce/cart-updated.json")).unwrap();
    for line in cart["items"].as_array_mut().unwrap() {
        line["price"] = json!("n/a");
    }
    let events = mapped(Source::WooCommerce, &woo("cart.updated"), cart.to_string().as_bytes());
    let error = events[0].result.clone().unwrap_err();
    assert_eq!(error.field, "items[0].price");
    assert!(error.message.contains("left as it was"), "{error:?}");
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
    assert_eq!(
        verify(Source::Shopify, &secret, &signed(vector), br#"{"hello":"World"}"#, received()),
        Err(bad.clone())
    );
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
        json!([{"item_id": "507f1f77bcf86cd799439011", "item_name": "Monopoly: 3rd Edition", "variant": "200 pieces",
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

/// GIVEN an `Order Refunded` with a total but no products (an amount-only refund), and one with neither
/// WHEN mapped THEN the first is a return of its total; the second is refused naming `properties.products`.
#[test]
fn given_segments_order_refunded_without_products_when_mapped_then_its_total_is_the_return() {
    let mut call: Value = serde_json::from_slice(&fixture("segment/order-refunded.json")).unwrap();
    call["properties"].as_object_mut().unwrap().remove("products");
    let refund = only(mapped(Source::Segment, &Headers::default(), call.to_string().as_bytes()));
    assert_eq!((refund["value"].as_str(), refund["items"].clone()), (Some("30"), json!([])));
    call["properties"].as_object_mut().unwrap().remove("total");
    let events = mapped(Source::Segment, &Headers::default(), call.to_string().as_bytes());
    assert_eq!(events[0].result.clone().unwrap_err().field, "properties.products");
}

/// GIVEN a `Cart Viewed` call without `products` (a page view of the cart, tracked bare) WHEN mapped
/// THEN it maps to nothing, so the stored cart keeps its items; with `products: []` it is an emptied cart.
#[test]
fn given_segments_cart_viewed_without_products_when_mapped_then_the_cart_is_not_touched() {
    let mut call = json!({"type": "track", "event": "Cart Viewed", "messageId": "cv-1", "anonymousId": "anon-1",
                          "timestamp": "2026-11-24T17:05:00.000Z", "properties": {"cart_id": "c-1"}});
    assert!(mapped(Source::Segment, &Headers::default(), call.to_string().as_bytes()).is_empty());
    call["properties"]["products"] = json!([]);
    let emptied = only(mapped(Source::Segment, &Headers::default(), call.to_string().as_bytes()));
    assert_eq!((emptied["type"].as_str(), emptied["items"].clone()), (Some("cart_update"), json!([])));
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

// ---- WooCommerce -------------------------------------------------------

fn woo(topic: &str) -> Headers {
    headers(&[("X-WC-Webhook-Topic", topic), ("X-WC-Webhook-Source", "https://example.com/"), ("X-WC-Webhook-ID", "3")])
}

/// GIVEN a paid WooCommerce order with a line whose product was deleted (ids 0) WHEN mapped THEN it is still the
/// purchase (a purchase reads no items); AND GIVEN the order `on-hold` (placed, awaiting payment) THEN nothing.
#[test]
fn given_a_paid_order_with_a_deleted_product_or_an_order_on_hold_when_mapped_then_purchase_and_nothing() {
    let mut order: Value = serde_json::from_slice(&fixture("woocommerce/order-created-pending.json")).unwrap();
    order["status"] = json!("processing");
    order["line_items"][0]["product_id"] = json!(0);
    order["line_items"][0]["variation_id"] = json!(0);
    let event = only(mapped(Source::WooCommerce, &woo("order.updated"), &serde_json::to_vec(&order).unwrap()));
    assert_eq!((event["type"].as_str(), event["order_id"].as_str()), (Some("purchase"), Some("727")));
    order["status"] = json!("on-hold");
    assert!(mapped(Source::WooCommerce, &woo("order.updated"), &serde_json::to_vec(&order).unwrap()).is_empty());
}

/// GIVEN WooCommerce's creation ping (`webhook_id=7`, sent unsigned) WHEN verified and mapped THEN it passes and
/// maps to nothing; a body that only starts like one is still checked.
#[test]
fn given_woocommerces_unsigned_creation_ping_when_verified_then_it_is_acknowledged_and_ingests_nothing() {
    let secret = SourceSecret::new("woo-secret-0123456789").unwrap();
    let now = Utc.timestamp_opt(1_795_446_100, 0).unwrap();
    assert_eq!(verify(Source::WooCommerce, &secret, &Headers::default(), b"webhook_id=7", now), Ok(()));
    assert!(map(Source::WooCommerce, &Headers::default(), b"webhook_id=7", None).unwrap().is_empty());
    assert!(verify(Source::WooCommerce, &secret, &Headers::default(), b"webhook_id=7&x={}", now).is_err());
}

#[test]
fn given_a_pending_woocommerce_order_when_mapped_then_it_is_the_abandoned_checkout_of_its_order_key() {
    let event =
        only(mapped(Source::WooCommerce, &woo("order.created"), &fixture("woocommerce/order-created-pending.json")));
    assert_eq!(event["type"], "begin_checkout");
    assert_eq!(event["event_id"], "woocommerce:order:727:checkout:2026-11-23T19:28:08");
    assert_eq!(event["cart_id"], "wc_order_58d2d042d1d");
    assert!(event.get("customer_id").is_none(), "customer_id 0 is a guest");
    assert_eq!(event["occurred_at"], "2026-11-23T19:28:08Z", "the _gmt time is UTC");
    assert_eq!(event["device"], "desktop");
    assert_eq!(
        event["items"],
        json!([
            {"item_id": "93", "item_name": "Woo Single #1", "price": "3", "quantity": 2},
            {"item_id": "23", "item_name": "Ship Your Idea &ndash; Color: Black, Size: M Test", "price": "12",
             "quantity": 1, "image_url": "https://example.com/wp-content/uploads/2026/11/ship-your-idea.jpg"}
        ])
    );
    assert_eq!(
        event["customer"],
        json!({"email": "john.doe@example.com", "phone": "(555) 555-5555", "first_name": "John",
               "consents": {"email": true}})
    );
}

/// GIVEN a WooCommerce order whose variation carries a global attribute (slug `blue`, shown `Blue`) the name
/// does not show, a custom one the name shows, and a gift-message plugin's meta of 250 characters
/// WHEN mapped
/// THEN the variant is the attribute's display value alone: no plugin text, no slug, no repeat of the name.
#[test]
fn given_woocommerce_meta_when_mapped_then_the_variant_is_the_attributes_display_values_only() {
    let mut body: Value = serde_json::from_slice(&fixture("woocommerce/order-created-pending.json")).unwrap();
    body["line_items"][1]["name"] = json!("Ship Your Idea - Size: M Test");
    body["line_items"][1]["meta_data"] = json!([
        {"id": 1, "key": "pa_color", "value": "blue", "display_key": "Color", "display_value": "Blue"},
        {"id": 2, "key": "size", "value": "M Test"},
        {"id": 3, "key": "gift_message", "value": "x".repeat(250)},
        {"id": 4, "key": "_reduced_stock", "value": "1"}
    ]);
    let event = only(mapped(Source::WooCommerce, &woo("order.created"), body.to_string().as_bytes()));
    assert_eq!(event["items"][1]["variant"], "Blue");
}

/// GIVEN a Shopify checkout whose line's variant title is 250 characters (Shopify allows 3 options of 255)
/// WHEN mapped
/// THEN the checkout is kept (it passes Cartback's validation) with the variant cut to 200 characters, an
/// ellipsis last.
#[test]
fn given_a_250_character_variant_when_mapped_then_the_order_is_kept_with_the_variant_cut() {
    let mut body: Value = serde_json::from_slice(&fixture("shopify/checkouts-create.json")).unwrap();
    body["line_items"][0]["variant_title"] = json!(format!("{} / {}", "é".repeat(124), "M".repeat(123)));
    let event = only(mapped(Source::Shopify, &shopify("checkouts/create", "w9"), body.to_string().as_bytes()));
    let variant = event["items"][0]["variant"].as_str().unwrap();
    assert_eq!(variant.chars().count(), 200, "{variant}");
    assert!(variant.starts_with("éé") && variant.ends_with("M…"), "{variant}");
}

#[test]
fn given_the_order_paid_when_mapped_then_it_is_one_purchase_per_order_whatever_the_updates() {
    let body = fixture("woocommerce/order-updated-processing.json");
    let event = only(mapped(Source::WooCommerce, &woo("order.updated"), &body));
    assert_eq!(event["type"], "purchase");
    assert_eq!(event["event_id"], "woocommerce:order:727:purchase");
    assert_eq!((event["order_id"].as_str(), event["value"].as_str()), (Some("727"), Some("29.35")));
    assert_eq!((event["cart_id"].as_str(), event["coupon"].as_str()), (Some("wc_order_58d2d042d1d"), Some("autumn10")));
    let mut completed: Value = serde_json::from_slice(&body).unwrap();
    completed["status"] = json!("completed");
    let again = only(mapped(Source::WooCommerce, &woo("order.updated"), completed.to_string().as_bytes()));
    assert_eq!(again["event_id"], event["event_id"], "completing the order repeats the purchase: a duplicate");
}

#[test]
fn given_a_refunded_guest_order_and_a_cancelled_one_when_mapped_then_customer_id_is_named_and_cancel_maps_to_nothing() {
    let mut order: Value = serde_json::from_slice(&fixture("woocommerce/order-updated-processing.json")).unwrap();
    order["status"] = json!("refunded");
    let events = mapped(Source::WooCommerce, &woo("order.updated"), order.to_string().as_bytes());
    assert_eq!(events[0].result.clone().unwrap_err().field, "customer_id");
    order["customer_id"] = json!(12);
    let refund = only(mapped(Source::WooCommerce, &woo("order.updated"), order.to_string().as_bytes()));
    assert_eq!((refund["type"].as_str(), refund["customer_id"].as_str()), (Some("return"), Some("12")));
    order["status"] = json!("cancelled");
    assert!(mapped(Source::WooCommerce, &woo("order.updated"), order.to_string().as_bytes()).is_empty());
}

#[test]
fn given_a_cart_plugins_cart_and_the_creation_ping_when_mapped_then_the_cart_is_a_snapshot_and_the_ping_nothing() {
    let event = only(mapped(Source::WooCommerce, &woo("cart.updated"), &fixture("woocommerce/cart-updated.json")));
    assert_eq!(
        (event["type"].as_str(), event["cart_id"].as_str()),
        (Some("cart_update"), Some("c8d3e0a1f5b2a9e47d6c"))
    );
    assert_eq!(event["items"], json!([{"item_id": "93", "item_name": "Woo Single #1", "price": "3", "quantity": 2}]));
    assert!(mapped(Source::WooCommerce, &woo("order.created"), b"webhook_id=3").is_empty());
}

#[test]
fn given_woocommerce_signature_vectors_when_verified_then_the_base64_hmac_sha256_must_match() {
    let secret = SourceSecret::new("woocommerce-webhook-secret-0123").unwrap();
    let signed = |tag: &str| headers(&[("X-WC-Webhook-Signature", tag)]);
    let hello = br#"{"hello":"world"}"#;
    let vector = "akV3ocw4Jucwp1QYOASjUrSNlr09FCqgzh6pbw+4zeI=";
    assert_eq!(verify(Source::WooCommerce, &secret, &signed(vector), hello, received()), Ok(()));
    let bad = Err(SourceError::BadSignature("X-WC-Webhook-Signature"));
    assert_eq!(verify(Source::WooCommerce, &secret, &signed(vector), b"{}", received()), bad);
}

// ---- BigCommerce -------------------------------------------------------

/// GIVEN the cart BigCommerce's `GET /v3/carts/{id}` answers (its documented shape) WHEN a thin
/// `store/cart/updated` or `store/cart/lineItem/created` is mapped with it THEN each is the cart's snapshot:
/// physical and digital lines, currency, email and customer; the cart to fetch is `data.id`, for a line item
/// `data.cartId`, and none for a delivery that carries its snapshot.
#[test]
fn given_a_thin_cart_webhook_and_the_fetched_cart_when_mapped_then_the_fetched_cart_is_the_snapshot() {
    let answer: Value = serde_json::from_slice(&fixture("bigcommerce/api-cart.json")).unwrap();
    let cart_id = "09346904-4175-44fd-be53-f7e598531b6c";
    for file in ["bigcommerce/cart-updated-thin.json", "bigcommerce/line-item-added-thin.json"] {
        let thin = fixture(file);
        assert_eq!(bigcommerce::to_fetch(&thin), Some(bigcommerce::ToFetch::Cart(cart_id.into())), "{file}");
        let events =
            map_with_cart(Source::BigCommerce, &Headers::default(), &thin, None, Some(&fetched(&answer["data"])))
                .unwrap();
        let event = only(events);
        assert_eq!(event["type"], "cart_update");
        assert_eq!(event["cart_id"], cart_id);
        assert_eq!(event["customer_id"], "11");
        assert_eq!(event["currency"], "USD");
        assert_eq!(event["customer"], json!({"email": "jane.doe@example.com"}));
        let items: Vec<(&str, u64)> = event["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["item_id"].as_str().unwrap(), i["quantity"].as_u64().unwrap()))
            .collect();
        assert_eq!(items, [("358", 2), ("401", 1)]);
    }
    assert_eq!(bigcommerce::to_fetch(&fixture("bigcommerce/cart-updated-snapshot.json")), None);
}

/// GIVEN one thin `store/cart/updated` body (one `hash` for every update of the cart) WHEN mapped with the
/// fetched cart, then with the cart as changed later THEN the event ids differ (the later contents are a new
/// event), and the same fetched version mapped again has the same id (a retry is a duplicate).
#[test]
fn given_the_same_thin_body_when_the_fetched_cart_changed_then_it_is_a_new_event() {
    let thin = fixture("bigcommerce/cart-updated-thin.json");
    let mut cart: Value =
        serde_json::from_slice::<Value>(&fixture("bigcommerce/api-cart.json")).unwrap()["data"].clone();
    let id = |cart: &Value| {
        only(map_with_cart(Source::BigCommerce, &Headers::default(), &thin, None, Some(&fetched(cart))).unwrap())
            ["event_id"]
            .clone()
    };
    let first = id(&cart);
    assert_eq!(first, id(&cart), "a retry of the same version");
    cart["updated_time"] = json!("2026-11-24T10:05:00+00:00");
    cart["line_items"]["physical_items"][0]["quantity"] = json!(5);
    let later = id(&cart);
    assert_ne!(first, later);
    assert_eq!(later, "bigcommerce:cart:09346904-4175-44fd-be53-f7e598531b6c:2026-11-24T10:05:00+00:00");
}

/// GIVEN a thin delivery, the fetched cart of customer 11 and that customer as the Customers API lists it
/// (opted in to abandoned-cart emails) WHEN mapped THEN the cart carries the customer's consent and name.
#[test]
fn given_a_fetched_cart_with_its_customer_when_mapped_then_the_customers_consent_is_the_carts() {
    let thin = fixture("bigcommerce/cart-updated-thin.json");
    let cart = serde_json::from_slice::<Value>(&fixture("bigcommerce/api-cart.json")).unwrap()["data"].clone();
    let snapshot: Value = serde_json::from_slice(&fixture("bigcommerce/cart-updated-snapshot.json")).unwrap();
    let fetched = FetchedCart { cart, customer: Some(snapshot["data"]["customer"].clone()) };
    let event = only(map_with_cart(Source::BigCommerce, &Headers::default(), &thin, None, Some(&fetched)).unwrap());
    assert_eq!(
        event["customer"],
        json!({"email": "jane.doe@example.com", "first_name": "Jane", "consents": {"email": true}})
    );
}

/// BigCommerce's order answers (`GET /v2/orders/252` and its products) as the fetch returns them.
fn fetched_order() -> Fetched {
    let order: Value = serde_json::from_slice(&fixture("bigcommerce/api-order.json")).unwrap();
    let products: Value = serde_json::from_slice(&fixture("bigcommerce/api-order-products.json")).unwrap();
    Fetched::Order(FetchedOrder { order, products: products.as_array().unwrap().clone() })
}

fn fetched_refunds() -> Fetched {
    let answer: Value = serde_json::from_slice(&fixture("bigcommerce/api-order-refunds.json")).unwrap();
    Fetched::Refunds(answer["data"].as_array().unwrap().clone())
}

fn map_bigcommerce(body: &[u8], fetched: &Fetched) -> Vec<MappedEvent> {
    map_fetched(Source::BigCommerce, &Headers::default(), body, None, Some(fetched)).unwrap()
}

/// GIVEN thin `store/order/*` webhooks WHEN asked what to fetch THEN the order they name (a refund's order
/// too), and nothing for a cart delivery that carries its snapshot.
#[test]
fn given_thin_order_webhooks_when_asked_what_to_fetch_then_the_order_or_its_refunds() {
    use bigcommerce::{to_fetch, ToFetch};
    assert_eq!(to_fetch(&fixture("bigcommerce/order-created.json")), Some(ToFetch::Order("252".into())));
    assert_eq!(to_fetch(&fixture("bigcommerce/order-status-updated.json")), Some(ToFetch::Order("252".into())));
    assert_eq!(to_fetch(&fixture("bigcommerce/order-refund-created.json")), Some(ToFetch::Refunds("252".into())));
    let with_order_id = br#"{"scope":"store/order/refund/created","data":{"type":"order","order_id":7}}"#;
    assert_eq!(to_fetch(with_order_id), Some(ToFetch::Refunds("7".into())));
    assert_eq!(to_fetch(&fixture("bigcommerce/cart-updated-snapshot.json")), None);
    // With the fetch, a converted cart's order is read: the purchase is the order's.
    assert_eq!(to_fetch(&fixture("bigcommerce/cart-converted.json")), Some(ToFetch::Order("252".into())));
}

/// GIVEN the fetched order 252 (Awaiting Fulfillment, cart 0934…, customer 11) and its two lines WHEN
/// `store/order/created` and `store/order/statusUpdated` are mapped THEN each is the same purchase (one event
/// id per order) of that cart: value, currency, lines, the billing email, the order's creation time.
#[test]
fn given_a_placed_order_fetched_when_its_webhooks_are_mapped_then_each_is_one_purchase_of_its_cart() {
    let created = only(map_bigcommerce(&fixture("bigcommerce/order-created.json"), &fetched_order()));
    assert_eq!(created["event_id"], "bigcommerce:order:252");
    assert_eq!(created["type"], "purchase");
    assert_eq!(created["order_id"], "252");
    assert_eq!(created["cart_id"], "09346904-4175-44fd-be53-f7e598531b6c");
    assert_eq!(created["customer_id"], "11");
    assert_eq!(created["value"], "114");
    assert_eq!(created["currency"], "USD");
    assert_eq!(created["occurred_at"], "2026-11-23T16:00:00Z");
    assert_eq!(created["customer"], json!({"email": "jane.doe@example.com", "first_name": "Jane"}));
    let items: Vec<(&str, &str, u64)> = created["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["item_id"].as_str().unwrap(), i["price"].as_str().unwrap(), i["quantity"].as_u64().unwrap()))
        .collect();
    assert_eq!(items, [("358", "49.5", 2), ("401", "15", 1)]);
    validate_event(&created, received()).unwrap();
    let updated = only(map_bigcommerce(&fixture("bigcommerce/order-status-updated.json"), &fetched_order()));
    assert_eq!(updated, created, "one order, one purchase");
}

/// GIVEN the fetch configured WHEN `store/cart/converted` is mapped with its order fetched THEN it is the
/// order's purchase (`store/order/created`'s event, value included); with the order not at the API (404) it
/// is still keyed by the order, without a value; without the fetch it keeps the delivery's hash.
#[test]
fn given_a_converted_cart_when_its_order_is_fetched_then_it_is_the_orders_one_purchase() {
    let converted = fixture("bigcommerce/cart-converted.json");
    let created = only(map_bigcommerce(&fixture("bigcommerce/order-created.json"), &fetched_order()));
    assert_eq!(only(map_bigcommerce(&converted, &fetched_order())), created);

    let missing = only(map_bigcommerce(&converted, &Fetched::NotFound));
    assert_eq!(missing["event_id"], "bigcommerce:order:252");
    assert_eq!(missing["cart_id"], "09346904-4175-44fd-be53-f7e598531b6c");
    assert!(missing.get("value").is_none(), "{missing}");

    let unfetched = only(map_fetched(Source::BigCommerce, &Headers::default(), &converted, None, None).unwrap());
    assert_eq!(unfetched["event_id"], "bigcommerce:7ee22b2b2bd13bf6d2ec32f4c93a0b3a4c16c8e2");
}

/// GIVEN a refund delivery naming its order in `data.order_id` WHEN mapped THEN the return's order lookup
/// names that field; GIVEN one naming a refund the fetched list lacks THEN refused, but marked to be retried
/// while fresh (from the delivery's `created_at`).
#[test]
fn given_refund_deliveries_when_mapped_then_the_order_field_is_the_one_sent_and_an_unlisted_refund_waits() {
    let mut body: Value = serde_json::from_slice(&fixture("bigcommerce/order-refund-created.json")).unwrap();
    body["data"]["order_id"] = json!(252);
    let events = map_bigcommerce(body.to_string().as_bytes(), &fetched_refunds());
    assert_eq!(events[0].owner_from_order.as_deref(), Some("data.order_id"));

    body["data"]["refund"]["refund_id"] = json!(4);
    let mut events = map_bigcommerce(body.to_string().as_bytes(), &fetched_refunds());
    let unlisted = events.remove(0);
    assert_eq!(unlisted.result.unwrap_err().field, "data.refund.refund_id");
    let not_yet = unlisted.not_yet.expect("a retry while fresh");
    assert_eq!(not_yet.occurred_at.timestamp(), 1795514400);
    assert!(not_yet.reason.contains("refund 4"), "{}", not_yet.reason);
}

/// GIVEN the fetched order in each of BigCommerce's statuses WHEN mapped THEN only a placed order (paid, or
/// checkout completed awaiting payment or verification) is a purchase; Incomplete, Pending, Cancelled,
/// Declined and Refunded map to nothing.
#[test]
fn given_an_order_in_each_status_when_mapped_then_only_a_placed_one_is_a_purchase() {
    let body = fixture("bigcommerce/order-created.json");
    for status in 0..=14u64 {
        let Fetched::Order(mut order) = fetched_order() else { unreachable!() };
        order.order["status_id"] = json!(status);
        let events = map_bigcommerce(&body, &Fetched::Order(order));
        let placed = [2, 3, 7, 8, 9, 10, 11, 12, 13, 14].contains(&status);
        assert_eq!(events.len(), usize::from(placed), "status {status}: {events:?}");
    }
}

/// GIVEN a fetched order with a line whose quantity is not a number, or a total that is not an amount WHEN
/// mapped THEN the line is left out with a warning, the total refuses the purchase, each naming the field
/// in the fetched answer (not in the webhook, which has neither).
#[test]
fn given_bad_fields_in_fetched_data_when_mapped_then_errors_and_warnings_name_the_fetched_answer() {
    let body = fixture("bigcommerce/order-created.json");
    let Fetched::Order(mut order) = fetched_order() else { unreachable!() };
    order.products[1]["quantity"] = json!("many");
    let (event, warnings) = only_with_warnings(map_bigcommerce(&body, &Fetched::Order(order.clone())));
    assert_eq!(event["items"].as_array().unwrap().len(), 1);
    assert_eq!(warnings[0].0, "fetched order products: [1].quantity", "{warnings:?}");
    order.order["total_inc_tax"] = json!("n/a");
    let refused = map_bigcommerce(&body, &Fetched::Order(order)).remove(0).result.unwrap_err();
    assert_eq!(refused.field, "fetched order: total_inc_tax");

    // GIVEN a fetched cart with a bad line, and the same cart carried in the delivery THEN the warnings name
    // where each came from
    let thin = fixture("bigcommerce/cart-updated-thin.json");
    let mut cart = serde_json::from_slice::<Value>(&fixture("bigcommerce/api-cart.json")).unwrap()["data"].clone();
    cart["line_items"]["physical_items"][0]["sale_price"] = json!("call us");
    let events = map_with_cart(Source::BigCommerce, &Headers::default(), &thin, None, Some(&fetched(&cart))).unwrap();
    let (_, warnings) = only_with_warnings(events);
    assert_eq!(warnings[0].0, "fetched cart: line_items.physical_items[0].sale_price");
    let mut carried: Value = serde_json::from_slice(&fixture("bigcommerce/cart-updated-snapshot.json")).unwrap();
    carried["data"]["cart"]["line_items"]["physical_items"][0]["sale_price"] = json!("call us");
    let (_, warnings) = only_with_warnings(
        map(Source::BigCommerce, &Headers::default(), carried.to_string().as_bytes(), None).unwrap(),
    );
    assert_eq!(warnings[0].0, "data.cart.line_items.physical_items[0].sale_price");
}

/// GIVEN `store/order/refund/created` naming refund 3 of order 252 and the order's refunds as the API lists
/// them WHEN mapped THEN one return keyed by the refund, worth what its payment paid back, whose customer
/// ingest takes from the order (`data.id`); a refund not in the list is refused naming
/// `data.refund.refund_id`; a refund whose every payment was declined maps to nothing.
#[test]
fn given_a_refund_webhook_and_the_fetched_refunds_when_mapped_then_one_return_of_the_order() {
    let body = fixture("bigcommerce/order-refund-created.json");
    let events = map_bigcommerce(&body, &fetched_refunds());
    assert_eq!(events[0].owner_from_order.as_deref(), Some("data.id"));
    let event = only(events);
    assert_eq!(
        event,
        json!({"event_id": "bigcommerce:refund:3", "type": "return", "order_id": "252",
               "occurred_at": "2026-11-24T10:00:00Z", "value": "49.5"})
    );
    let mut other: Value = serde_json::from_slice(&body).unwrap();
    other["data"]["refund"]["refund_id"] = json!(9);
    let refused = map_bigcommerce(other.to_string().as_bytes(), &fetched_refunds()).remove(0).result.unwrap_err();
    assert_eq!(refused.field, "data.refund.refund_id");
    let Fetched::Refunds(mut refunds) = fetched_refunds() else { unreachable!() };
    refunds[0]["payments"][0]["is_declined"] = json!(true);
    assert!(map_bigcommerce(&body, &Fetched::Refunds(refunds)).is_empty());
}

/// GIVEN an order BigCommerce's API does not have (404) WHEN its webhook is mapped THEN it is refused naming
/// the order's id, not silently acknowledged.
#[test]
fn given_an_order_the_api_does_not_have_when_mapped_then_it_is_refused_naming_the_order() {
    let refused = map_bigcommerce(&fixture("bigcommerce/order-created.json"), &Fetched::NotFound).remove(0);
    assert_eq!(refused.event_id.as_deref(), Some("bigcommerce:order:252"));
    let error = refused.result.unwrap_err();
    assert_eq!(error.field, "data.id");
    assert!(error.message.contains("order 252") && error.message.contains("404"), "{}", error.message);
}

#[test]
fn given_a_thin_cart_webhook_when_mapped_then_it_is_acknowledged_and_changes_nothing() {
    let thin = fixture("bigcommerce/cart-updated-thin.json");
    assert!(mapped(Source::BigCommerce, &Headers::default(), &thin).is_empty());
    // Without the configured fetch an order delivery names nothing Cartback can read.
    for file in ["order-created.json", "order-status-updated.json", "order-refund-created.json"] {
        let body = fixture(&format!("bigcommerce/{file}"));
        assert!(mapped(Source::BigCommerce, &Headers::default(), &body).is_empty(), "{file}");
    }
}

#[test]
fn given_a_cart_webhook_with_its_snapshot_when_mapped_then_every_line_item_and_the_opt_in_are_kept() {
    let event =
        only(mapped(Source::BigCommerce, &Headers::default(), &fixture("bigcommerce/cart-updated-snapshot.json")));
    assert_eq!(event["event_id"], "bigcommerce:5b0ba2b9c8e1f5b2cd3a8d1d2c6a6e4a1f0e9d8c");
    assert_eq!(event["type"], "cart_update");
    assert_eq!(event["cart_id"], "09346904-4175-44fd-be53-f7e598531b6c");
    assert_eq!(event["customer_id"], "11");
    assert_eq!(event["occurred_at"], "2026-11-23T15:05:00Z");
    assert_eq!(event["items"][0]["item_id"], "358");
    assert_eq!(event["items"][0]["price"], "49.5");
    assert_eq!(event["items"][1]["item_name"], "[Sample] Brewing Guide (PDF)");
    assert_eq!(
        event["customer"],
        json!({"email": "jane.doe@example.com", "first_name": "Jane", "consents": {"email": true}})
    );
}

#[test]
fn given_a_converted_cart_when_mapped_then_it_is_the_purchase_of_that_cart() {
    let event = only(mapped(Source::BigCommerce, &Headers::default(), &fixture("bigcommerce/cart-converted.json")));
    assert_eq!(event["type"], "purchase");
    assert_eq!(
        (event["cart_id"].as_str(), event["order_id"].as_str()),
        (Some("09346904-4175-44fd-be53-f7e598531b6c"), Some("252"))
    );
    assert_eq!(event["occurred_at"], "2026-11-23T16:00:00Z", "created_at is unix seconds");
}

#[test]
fn given_bigcommerce_standard_webhook_signatures_when_verified_then_id_timestamp_and_body_are_all_bound() {
    let secret = SourceSecret::new("bigcommerce-client-secret-0123").unwrap();
    let hello = br#"{"hello":"world"}"#;
    let now = Utc.timestamp_opt(1_795_446_100, 0).unwrap();
    let vector = "v1,vztxzJqpmeqp0Fmy6nz5Dod3YNfDf48WA9rqXp+wRKQ=";
    assert_eq!(bigcommerce::signature(b"bigcommerce-client-secret-0123", "msg_1", 1_795_446_000, hello), vector);
    let signed = |id: &str, t: &str, sig: &str| {
        headers(&[("webhook-id", id), ("webhook-timestamp", t), ("webhook-signature", sig)])
    };
    assert_eq!(verify(Source::BigCommerce, &secret, &signed("msg_1", "1795446000", vector), hello, now), Ok(()));
    let rotated = format!("v1,b2xkLXNlY3JldA== {vector}");
    assert_eq!(verify(Source::BigCommerce, &secret, &signed("msg_1", "1795446000", &rotated), hello, now), Ok(()));
    let bad = Err(SourceError::BadSignature("webhook-signature"));
    assert_eq!(verify(Source::BigCommerce, &secret, &signed("msg_2", "1795446000", vector), hello, now), bad);
    let later = now + chrono::Duration::minutes(10);
    assert_eq!(
        verify(Source::BigCommerce, &secret, &signed("msg_1", "1795446000", vector), hello, later),
        Err(SourceError::Stale("webhook-timestamp"))
    );
    assert_eq!(
        verify(Source::BigCommerce, &secret, &Headers::default(), hello, now),
        Err(SourceError::MissingSignature("webhook-signature"))
    );
}

/// GIVEN the Standard Webhooks specification's published test vector (a `whsec_` secret, whose base64 part is
/// the key) WHEN signed and verified THEN the published signature comes out and verifies.
#[test]
fn given_the_standard_webhooks_specification_vector_when_signed_then_the_published_signature_comes_out() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = br#"{"test": 2432232314}"#;
    let published = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    assert_eq!(
        bigcommerce::signature(secret.as_bytes(), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
        published
    );
    let headers = headers(&[
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("webhook-timestamp", "1614265330"),
        ("webhook-signature", published),
    ]);
    let now = Utc.timestamp_opt(1_614_265_360, 0).unwrap();
    assert_eq!(verify(Source::BigCommerce, &SourceSecret::new(secret).unwrap(), &headers, body, now), Ok(()));
}

// ---- Salesforce Commerce Cloud -----------------------------------------

#[test]
fn given_a_scapi_basket_when_mapped_then_it_is_a_cart_snapshot_with_unit_prices() {
    let event = only(mapped(Source::Sfcc, &Headers::default(), &fixture("sfcc/basket-scapi.json")));
    assert_eq!(event["event_id"], "sfcc:basket:a10ff320829cb0eef93ca5310a:2026-11-23T15:04:00.000Z");
    assert_eq!(
        (event["type"].as_str(), event["cart_id"].as_str()),
        (Some("cart_update"), Some("a10ff320829cb0eef93ca5310a"))
    );
    assert_eq!(
        event["items"],
        json!([{"item_id": "701643108633M", "item_name": "Long Sleeve Crew Neck", "price": "19.99", "quantity": 2}])
    );
    assert_eq!(
        event["customer"],
        json!({"email": "sfcc.shopper@example.com", "phone": "+1 617-555-0192", "first_name": "Stephanie",
               "consents": {"email": true}})
    );
}

#[test]
fn given_an_ocapi_order_when_mapped_then_it_is_the_purchase_of_its_basket() {
    let event = only(mapped(Source::Sfcc, &Headers::default(), &fixture("sfcc/order-ocapi.json")));
    assert_eq!(event["event_id"], "sfcc:order:00000603");
    assert_eq!(
        (event["cart_id"].as_str(), event["value"].as_str()),
        (Some("a10ff320829cb0eef93ca5310a"), Some("42.98"))
    );
    assert_eq!(event["coupon"], "WINTER5");
    assert_eq!(
        map(Source::Sfcc, &Headers::default(), b"{}", None).unwrap_err().to_string(),
        "basketId: is required (or orderNo for an order)"
    );
}

#[test]
fn given_an_sfcc_post_signed_like_cartbacks_own_api_when_verified_then_the_window_and_path_hold() {
    use crate::signing::{sign_request, Secret, SignedRequest};
    let text = "sfcc-source-secret-0123456789";
    let secret = SourceSecret::new(text).unwrap();
    let body = fixture("sfcc/basket-scapi.json");
    let now = received();
    let sign = |path: &str| {
        let request = SignedRequest { method: "POST", path_and_query: path, body: &body };
        sign_request(&Secret::new(text.as_bytes().to_vec()).unwrap(), now.timestamp(), &request)
    };
    let signed = |value: String| headers(&[("X-Cartback-Signature", value.as_str())]);
    assert_eq!(verify(Source::Sfcc, &secret, &signed(sign("/v1/sources/sfcc")), &body, now), Ok(()));
    let bad = Err(SourceError::BadSignature("X-Cartback-Signature"));
    assert_eq!(verify(Source::Sfcc, &secret, &signed(sign("/v1/events")), &body, now), bad);
    let stale = now + chrono::Duration::minutes(6);
    assert_eq!(
        verify(Source::Sfcc, &secret, &signed(sign("/v1/sources/sfcc")), &body, stale),
        Err(SourceError::Stale("X-Cartback-Signature"))
    );
}
