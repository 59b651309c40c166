//! End to end, per order and cart source: the real `cartback dev` binary
//! with each platform's secret configured (environment or flag) takes the
//! platform's own documented sample payloads (`events/sources/`), signed
//! the platform's way, and drives a recovery: abandoned checkout in, one
//! email out; order in, nothing more. Every answer is checked against the
//! served OpenAPI document, and the server's log is scanned for the
//! contact data the payloads carried.

#[path = "support/dev.rs"]
mod dev;

use std::ops::Deref;
use std::process::Command;
use std::sync::Mutex;

use base64::Engine;
use cartback_core::signing::{sign_request, Secret, SignedRequest};
use cartback_core::sources::{base64_hmac_sha256, bigcommerce, segment};
use cartback_tests::fake_bigcommerce::FakeBigCommerce;
use cartback_tests::pii::Contacts;
use dev::{checked, Launch, SECRET as INGEST_SECRET};
use serde_json::{json, Value};

const SHOPIFY_SECRET: &str = "shpss_e2e_shopify_app_secret_0001";
const WOO_SECRET: &str = "woocommerce-e2e-webhook-secret-01";
const SEGMENT_SECRET: &str = "segment-e2e-shared-secret-000001";
const BIGCOMMERCE_SECRET: &str = "bigcommerce-e2e-client-secret-01";
const SFCC_SECRET: &str = "sfcc-e2e-source-secret-0000000001";
/// 24 virtual hours (the default campaign's second step, which must not
/// be sent after the order) pass in under 30 real seconds.
const SPEED: &str = "3000";

/// `cartback dev` with every source configured; when the test ends its log
/// is scanned for every contact value the payloads carried.
struct Dev {
    server: dev::Dev,
    contacts: Mutex<Contacts>,
}

impl Deref for Dev {
    type Target = dev::Dev;
    fn deref(&self) -> &dev::Dev {
        &self.server
    }
}

impl Dev {
    /// Shopify, WooCommerce, BigCommerce and SFCC from the environment,
    /// Segment from the `--source-secret` flag.
    fn start() -> Dev {
        let segment = format!("segment={SEGMENT_SECRET}");
        let server = dev::Dev::start(Launch {
            speed: SPEED,
            env: &[
                ("CARTBACK_SOURCE_SECRET_SHOPIFY", SHOPIFY_SECRET),
                ("CARTBACK_SOURCE_SECRET_WOOCOMMERCE", WOO_SECRET),
                ("CARTBACK_SOURCE_SECRET_BIGCOMMERCE", BIGCOMMERCE_SECRET),
                ("CARTBACK_SOURCE_SECRET_SFCC", SFCC_SECRET),
                ("CARTBACK_SHOP_CURRENCY", "USD"),
            ],
            args: &["--source-secret", &segment],
            rust_log: "info,cartback=trace,cartback_core=trace,cartback_local=trace,cartback_http=trace",
            ..Launch::default()
        });
        Dev { server, contacts: Mutex::default() }
    }

    /// POSTs a platform's payload with the platform's headers (no Cartback signature).
    fn post(&self, source: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
        if let Ok(json) = serde_json::from_slice::<Value>(body) {
            self.contacts.lock().unwrap().collect(&json);
        }
        let path = format!("/v1/sources/{source}");
        let mut request = ureq::post(&format!("{}{path}", self.base)).set("content-type", "application/json");
        for (name, value) in headers {
            request = request.set(name, value);
        }
        checked("POST", &path, request.send_bytes(body))
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.contacts.lock().unwrap().assert_absent_from("cartback dev", &self.log_text());
        }
    }
}

fn secret(text: &str) -> Secret {
    Secret::new(text.as_bytes().to_vec()).unwrap()
}

fn fixture(path: &str) -> Value {
    let full = format!("{}/../events/sources/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))).unwrap()
}

fn sent_messages(cart: &Value) -> usize {
    cart["timeline"].as_array().into_iter().flatten().filter(|e| e["kind"] == "message" && e["code"] == "sent").count()
}

fn decided(cart: &Value, code: &str) -> bool {
    cart["timeline"].as_array().into_iter().flatten().any(|e| e["kind"] == "decision" && e["code"] == code)
}

/// THEN-part shared by every source: the abandoned cart got exactly one
/// email to `to` naming `item`; after the order the cart is converted, the
/// next step decides `purchased`, and no other email went out.
fn recovery(dev: &Dev, cart_id: &str, to: &str, item: &str, order: impl FnOnce()) {
    let cart = dev.wait_for(cart_id, "one sent email", |c| sent_messages(c) == 1);
    let emails = dev.emails();
    assert_eq!(emails.len(), 1, "one email for step 1");
    let (_, email) = &emails[0];
    assert!(email.contains(&format!("To: {to}")), "{email}");
    assert!(email.contains(item), "the email shows the item {item}");
    assert_eq!(cart["status"], "active");
    order();
    let cart = dev.wait_for(cart_id, "the purchased decision", |c| decided(c, "purchased"));
    assert_eq!(cart["status"], "converted");
    assert_eq!(sent_messages(&cart), 1);
    assert_eq!(dev.emails().len(), 1, "nothing more after the order");
}

/// The Standard Webhooks headers BigCommerce sends with delivery `id` of `body`, signed now.
fn bigcommerce_signed(id: &str, body: &str) -> Vec<(&'static str, String)> {
    let t = chrono::Utc::now().timestamp();
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", t.to_string()),
        ("webhook-signature", bigcommerce::signature(BIGCOMMERCE_SECRET.as_bytes(), id, t, body.as_bytes())),
    ]
}

/// `cartback dev` at `speed` with BigCommerce's fetch configured against a
/// loopback fake of its Management API (store `abcde`, taking `token`).
fn with_bigcommerce_api(token: &str, speed: &str) -> (FakeBigCommerce, Dev) {
    let api = FakeBigCommerce::start("abcde", token);
    let server = dev::Dev::start(Launch {
        speed,
        env: &[
            ("CARTBACK_SOURCE_SECRET_BIGCOMMERCE", BIGCOMMERCE_SECRET),
            ("CARTBACK_BIGCOMMERCE_STORE_HASH", "abcde"),
            ("CARTBACK_BIGCOMMERCE_API_TOKEN", token),
            ("CARTBACK_BIGCOMMERCE_API_URL", &api.url),
        ],
        ..Launch::default()
    });
    (api, Dev { server, contacts: Mutex::default() })
}

fn accepted(answer: &(u16, Value)) {
    assert_eq!(answer.0, 200, "{:#}", answer.1);
    assert_eq!(answer.1["accepted"], 1, "{:#}", answer.1);
}

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[test]
fn given_shopify_webhooks_when_a_checkout_is_abandoned_then_one_email_and_after_the_order_nothing_more() {
    let dev = Dev::start();
    let now = dev.now();
    let mut checkout = fixture("shopify/checkouts-create.json");
    checkout["updated_at"] = json!(iso(now));
    checkout["created_at"] = json!(iso(now));
    let body = checkout.to_string();
    let headers = |topic: &str, id: &str, body: &str| {
        vec![
            ("X-Shopify-Topic", topic.to_owned()),
            ("X-Shopify-Webhook-Id", id.to_owned()),
            ("X-Shopify-Hmac-Sha256", base64_hmac_sha256(SHOPIFY_SECRET.as_bytes(), body.as_bytes())),
        ]
    };
    accepted(&dev.post("shopify", &headers("checkouts/create", "wh-1", &body), body.as_bytes()));
    // Shopify retries a slow delivery with the same webhook id: a duplicate.
    let retry = dev.post("shopify", &headers("checkouts/create", "wh-1", &body), body.as_bytes());
    assert_eq!((retry.0, &retry.1["duplicates"]), (200, &json!(1)), "{:#}", retry.1);

    recovery(&dev, "123123123", "example@email.com", "IPod Nano", || {
        let mut order = fixture("shopify/orders-create.json");
        order["processed_at"] = json!(iso(dev.now()));
        let body = order.to_string();
        accepted(&dev.post("shopify", &headers("orders/create", "wh-2", &body), body.as_bytes()));
    });
}

#[test]
fn given_segment_track_calls_when_a_cart_is_abandoned_then_one_email_and_after_order_completed_nothing_more() {
    let dev = Dev::start();
    let mut added = fixture("segment/product-added.json");
    added["timestamp"] = json!(iso(dev.now()));
    let body = added.to_string();
    let signed = |body: &str| vec![("X-Signature", segment::signature(SEGMENT_SECRET.as_bytes(), body.as_bytes()))];
    accepted(&dev.post("segment", &signed(&body), body.as_bytes()));

    recovery(&dev, "skdjsidjsdkdj29j", "peter@example.com", "Monopoly", || {
        let mut order = fixture("segment/order-completed.json");
        order["timestamp"] = json!(iso(dev.now()));
        let body = order.to_string();
        accepted(&dev.post("segment", &signed(&body), body.as_bytes()));
    });
}

#[test]
fn given_woocommerce_order_webhooks_when_the_pending_order_is_abandoned_then_one_email_and_after_payment_nothing_more()
{
    const ORDER_KEY: &str = "wc_order_e2e_7a2d";
    let dev = Dev::start();
    let mut pending = fixture("woocommerce/order-created-pending.json");
    let now = dev.now();
    let gmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    pending["date_created_gmt"] = json!(gmt(now));
    pending["date_modified_gmt"] = json!(gmt(now));
    // The sample's own order key falls in the default campaign's holdout (a stable hash): this one is treated.
    pending["order_key"] = json!(ORDER_KEY);
    let body = pending.to_string();
    let headers = |topic: &str, body: &str| {
        vec![
            ("X-WC-Webhook-Topic", topic.to_owned()),
            ("X-WC-Webhook-Signature", base64_hmac_sha256(WOO_SECRET.as_bytes(), body.as_bytes())),
        ]
    };
    accepted(&dev.post("woocommerce", &headers("order.created", &body), body.as_bytes()));

    recovery(&dev, ORDER_KEY, "john.doe@example.com", "Woo Single #1", || {
        let mut paid = fixture("woocommerce/order-updated-processing.json");
        paid["date_modified_gmt"] = json!(gmt(dev.now()));
        paid["order_key"] = json!(ORDER_KEY);
        let body = paid.to_string();
        accepted(&dev.post("woocommerce", &headers("order.updated", &body), body.as_bytes()));
    });
}

#[test]
fn given_bigcommerce_cart_webhooks_when_the_snapshot_is_abandoned_then_one_email_and_after_conversion_nothing_more() {
    let dev = Dev::start();
    let mut snapshot = fixture("bigcommerce/cart-updated-snapshot.json");
    snapshot["created_at"] = json!(dev.now().timestamp());
    snapshot["data"]["cart"]["updated_time"] = json!(iso(dev.now()));
    // The thin webhook BigCommerce sends first is acknowledged and changes nothing.
    let thin = fixture("bigcommerce/cart-updated-thin.json").to_string();
    let answer = dev.post("bigcommerce", &bigcommerce_signed("msg-0", &thin), thin.as_bytes());
    assert_eq!((answer.0, &answer.1["results"]), (200, &json!([])), "{:#}", answer.1);
    let body = snapshot.to_string();
    accepted(&dev.post("bigcommerce", &bigcommerce_signed("msg-1", &body), body.as_bytes()));

    recovery(&dev, "09346904-4175-44fd-be53-f7e598531b6c", "jane.doe@example.com", "Chemex", || {
        let mut converted = fixture("bigcommerce/cart-converted.json");
        converted["created_at"] = json!(dev.now().timestamp());
        let body = converted.to_string();
        accepted(&dev.post("bigcommerce", &bigcommerce_signed("msg-2", &body), body.as_bytes()));
    });
}

/// GIVEN the cart fetch configured with a token the API refuses (401) WHEN a thin cart webhook arrives THEN 503
/// (BigCommerce retries) and the log holds an ERROR saying the token was refused, not a routine warning.
#[test]
fn given_a_token_bigcommerce_refuses_when_a_thin_webhook_arrives_then_503_and_an_error_naming_the_token() {
    let api = FakeBigCommerce::start("abcde", "the-right-token");
    let server = dev::Dev::start(Launch {
        speed: SPEED,
        env: &[
            ("CARTBACK_SOURCE_SECRET_BIGCOMMERCE", BIGCOMMERCE_SECRET),
            ("CARTBACK_BIGCOMMERCE_STORE_HASH", "abcde"),
            ("CARTBACK_BIGCOMMERCE_API_TOKEN", "a-revoked-token"),
            ("CARTBACK_BIGCOMMERCE_API_URL", &api.url),
        ],
        ..Launch::default()
    });
    let dev = Dev { server, contacts: Mutex::default() };
    let thin = fixture("bigcommerce/cart-updated-thin.json").to_string();
    let t = chrono::Utc::now().timestamp();
    let headers = vec![
        ("webhook-id", "msg-401".to_owned()),
        ("webhook-timestamp", t.to_string()),
        ("webhook-signature", bigcommerce::signature(BIGCOMMERCE_SECRET.as_bytes(), "msg-401", t, thin.as_bytes())),
    ];
    let (status, _) = dev.post("bigcommerce", &headers, thin.as_bytes());
    assert_eq!(status, 503);
    let log = dev.log_text();
    let line = log.lines().find(|l| l.contains("refused the API token")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("ERROR") && line.contains("HTTP 401"), "{line}");
    assert!(!line.contains("a-revoked-token"), "the token is never logged: {line}");
}

/// GIVEN the cart fetch configured (the fake Management API holds the cart of registered customer 11 and that
/// customer, opted in to abandoned-cart emails) WHEN only thin webhooks arrive and the cart is abandoned THEN the
/// customer is read from the Customers API, one email goes out, and after `store/cart/converted` nothing more.
#[test]
fn given_bigcommerces_fetch_and_thin_webhooks_when_the_cart_is_abandoned_then_one_email_and_after_conversion_nothing_more(
) {
    const TOKEN: &str = "bc-e2e-api-token-0002";
    let (api, dev) = with_bigcommerce_api(TOKEN, SPEED);
    let mut answer = fixture("bigcommerce/api-cart.json");
    answer["data"]["updated_time"] = json!(iso(dev.now()));
    let customer = fixture("bigcommerce/cart-updated-snapshot.json")["data"]["customer"].clone();
    dev.contacts.lock().unwrap().collect(&answer);
    dev.contacts.lock().unwrap().collect(&customer);
    api.put_cart(answer);
    api.put_customer(customer);
    let mut thin = fixture("bigcommerce/cart-updated-thin.json");
    thin["created_at"] = json!(dev.now().timestamp());
    let thin = thin.to_string();
    accepted(&dev.post("bigcommerce", &bigcommerce_signed("msg-1", &thin), thin.as_bytes()));
    assert!(api.seen().iter().any(|(path, _)| path == "/stores/abcde/v3/customers?id:in=11"), "{:?}", api.seen());

    recovery(&dev, "09346904-4175-44fd-be53-f7e598531b6c", "jane.doe@example.com", "Chemex", || {
        let mut converted = fixture("bigcommerce/cart-converted.json");
        converted["created_at"] = json!(dev.now().timestamp());
        let body = converted.to_string();
        accepted(&dev.post("bigcommerce", &bigcommerce_signed("msg-2", &body), body.as_bytes()));
    });
}

#[test]
fn given_sfcc_basket_documents_when_the_basket_is_abandoned_then_one_email_and_after_the_order_nothing_more() {
    let dev = Dev::start();
    let mut basket = fixture("sfcc/basket-scapi.json");
    basket["lastModified"] = json!(iso(dev.now()));
    let signed = |body: &str| {
        let request = SignedRequest { method: "POST", path_and_query: "/v1/sources/sfcc", body: body.as_bytes() };
        vec![("X-Cartback-Signature", sign_request(&secret(SFCC_SECRET), chrono::Utc::now().timestamp(), &request))]
    };
    let body = basket.to_string();
    accepted(&dev.post("sfcc", &signed(&body), body.as_bytes()));

    recovery(&dev, "a10ff320829cb0eef93ca5310a", "sfcc.shopper@example.com", "Long Sleeve Crew Neck", || {
        let mut order = fixture("sfcc/order-ocapi.json");
        order["creation_date"] = json!(iso(dev.now()));
        let body = order.to_string();
        accepted(&dev.post("sfcc", &signed(&body), body.as_bytes()));
    });
}

#[test]
fn given_unsigned_forged_or_unknown_source_requests_when_posted_then_401_or_404_and_nothing_is_stored() {
    let dev = Dev::start();
    let body = fixture("shopify/checkouts-create.json").to_string();
    let topic = ("X-Shopify-Topic", "checkouts/create".to_owned());
    let (status, answer) = dev.post("shopify", std::slice::from_ref(&topic), body.as_bytes());
    assert_eq!((status, answer["error"]["message"].as_str()), (401, Some("missing X-Shopify-Hmac-Sha256 header")));
    let forged = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let (status, _) = dev.post("shopify", &[topic, ("X-Shopify-Hmac-Sha256", forged)], body.as_bytes());
    assert_eq!(status, 401);
    let (status, answer) = dev.post("magento", &[], b"{}");
    assert_eq!(status, 404, "{answer}");
    let (status, _) = dev.post("shopify", &[("X-Shopify-Hmac-Sha256", "x".into())], b"not json");
    assert_eq!(status, 401, "the signature is checked before the body is read as JSON");
    let (status, _) = dev.cart("123123123");
    assert_eq!(status, 404, "nothing was stored");
}

#[test]
fn given_a_source_without_a_secret_when_posted_then_404_even_when_signed() {
    let server = dev::Dev::start(Launch::default());
    let body = br#"{"id": 1}"#;
    let request = ureq::post(&format!("{}/v1/sources/shopify", server.base))
        .set("X-Shopify-Topic", "orders/create")
        .set("X-Shopify-Hmac-Sha256", &base64_hmac_sha256(SHOPIFY_SECRET.as_bytes(), body));
    let (status, answer) = checked("POST", "/v1/sources/shopify", request.send_bytes(body));
    assert_eq!(status, 404);
    assert_eq!(answer["error"]["message"], "the shopify source is not configured on this Cartback (it has no secret)");
}

/// The SFCC cartridge (`examples/sfcc/`), run under Node against stand-ins
/// for the dw.* APIs: the signed events its basket hooks post are taken by
/// Cartback as they are, and drive the same recovery. Needs `node`.
#[test]
fn given_the_sfcc_cartridges_hooks_when_their_requests_reach_cartback_then_one_email_and_after_the_order_nothing_more()
{
    let node = Command::new("node").arg("--version").output();
    assert!(node.is_ok_and(|o| o.status.success()), "this test runs the SFCC cartridge with node; install it");
    let dev = Dev::start();
    let script = format!("{}/../examples/sfcc/test/run-hooks.js", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("node")
        .args([&script, INGEST_SECRET, "bk-cartridge-1", &iso(dev.now()), "with-order"])
        .output()
        .expect("node runs the hooks");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let requests: Vec<Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(requests.len(), 6, "add, update quantity, add, remove, checkout, order placed");
    let replay = |request: &Value| {
        assert_eq!((request["method"].as_str(), request["path"].as_str()), (Some("POST"), Some("/v1/events")));
        let body = request["body"].as_str().unwrap();
        self_contacts(&dev, body);
        let url = format!("{}/v1/events", dev.base);
        let sent = ureq::post(&url)
            .set("content-type", "application/json")
            .set("x-cartback-signature", request["signature"].as_str().unwrap())
            .send_bytes(body.as_bytes());
        let answer = checked("POST", "/v1/events", sent);
        accepted(&answer);
    };
    let (baskets, order) = requests.split_at(5);
    baskets.iter().for_each(replay);
    let (_, cart) = dev.cart("bk-cartridge-1");
    assert_eq!(cart["items"][0]["quantity"], 2, "the quantity update, and the removed scarf is gone: {cart:#}");
    assert_eq!(cart["items"].as_array().map(Vec::len), Some(1));
    recovery(&dev, "bk-cartridge-1", "sfcc.cartridge@example.com", "Long Sleeve Crew Neck", || replay(&order[0]));
}

fn self_contacts(dev: &Dev, body: &str) {
    if let Ok(json) = serde_json::from_str::<Value>(body) {
        dev.contacts.lock().unwrap().collect(&json);
    }
}

#[test]
fn given_a_segment_batch_with_good_bad_and_irrelevant_calls_when_posted_then_the_good_is_stored_and_each_bad_one_named()
{
    let dev = Dev::start();
    let mut batch = fixture("segment/batch-mixed.json");
    let now = iso(dev.now());
    for call in batch["batch"].as_array_mut().unwrap() {
        call["timestamp"] = json!(now);
    }
    let body = batch.to_string();
    let signature = segment::signature(SEGMENT_SECRET.as_bytes(), body.as_bytes());
    let (status, answer) = dev.post("segment", &[("X-Signature", signature)], body.as_bytes());
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!((answer["accepted"].as_u64(), answer["rejected"].as_u64()), (Some(1), Some(2)), "{answer:#}");
    let fields: Vec<&str> =
        answer["results"].as_array().unwrap().iter().filter_map(|r| r["error"]["field"].as_str()).collect();
    assert_eq!(fields, ["batch[2].properties.product_id", "batch[3].properties.price"]);
    let (status, cart) = dev.cart("anon-9");
    assert_eq!((status, &cart["items"][0]["item_id"]), (200, &json!("sku-1")), "the valid call is stored: {cart:#}");
}

/// A spike's retries: Shopify redelivers a slow answer, so the same
/// delivery may arrive many times at once. Exactly one is stored.
#[test]
fn given_one_shopify_delivery_arriving_twenty_times_at_once_when_ingested_then_exactly_one_is_accepted() {
    let dev = Dev::start();
    let mut checkout = fixture("shopify/checkouts-create.json");
    checkout["updated_at"] = json!(iso(dev.now()));
    let body = checkout.to_string();
    let headers = vec![
        ("X-Shopify-Topic", "checkouts/update".to_owned()),
        ("X-Shopify-Webhook-Id", "wh-spike".to_owned()),
        ("X-Shopify-Hmac-Sha256", base64_hmac_sha256(SHOPIFY_SECRET.as_bytes(), body.as_bytes())),
    ];
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let posts: Vec<_> = (0..20).map(|_| scope.spawn(|| dev.post("shopify", &headers, body.as_bytes()))).collect();
        posts.into_iter().map(|p| p.join().unwrap()).collect()
    });
    let count = |key: &str| answers.iter().filter_map(|(_, a)| a[key].as_u64()).sum::<u64>();
    assert!(answers.iter().all(|(status, _)| *status == 200 || *status == 503), "{answers:?}");
    let retried = count("retry");
    assert_eq!((count("accepted"), count("duplicates") + retried), (1, 19), "{answers:?}");
    let (_, cart) = dev.cart("123123123");
    let events = cart["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "event").count();
    assert_eq!(events, 1, "one event on the timeline: {cart:#}");
}

fn shopify_headers(topic: &str, id: &str, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-Shopify-Topic", topic.to_owned()),
        ("X-Shopify-Webhook-Id", id.to_owned()),
        ("X-Shopify-Hmac-Sha256", base64_hmac_sha256(SHOPIFY_SECRET.as_bytes(), body.as_bytes())),
    ]
}

/// GIVEN Shopify's order sample ingested (`orders/create`) WHEN its refunds arrive as `refunds/create`, whose
/// payload names no customer (Shopify's webhook sample, and the Refund resource's sample with a transaction)
/// THEN each is accepted as a return of the order's customer, on the order's cart's timeline; the same refund
/// arriving again inside `orders/updated` is a duplicate; AND GIVEN a refund of an order Cartback never
/// received THEN it is rejected naming `order_id` with a 200 (a retry cannot help), and nothing is stored for it.
#[test]
fn given_a_stored_shopify_order_when_its_refunds_arrive_without_a_customer_then_they_are_returns_of_its_customer() {
    let dev = Dev::start();
    let mut order = fixture("shopify/orders-create.json");
    order["processed_at"] = json!(iso(dev.now()));
    let body = order.to_string();
    accepted(&dev.post("shopify", &shopify_headers("orders/create", "wh-order", &body), body.as_bytes()));

    for (file, delivery) in [("shopify/refunds-create.json", "wh-r1"), ("shopify/refunds-create-paid.json", "wh-r2")] {
        let mut refund = fixture(file);
        refund["created_at"] = json!(iso(dev.now()));
        let body = refund.to_string();
        let answer = dev.post("shopify", &shopify_headers("refunds/create", delivery, &body), body.as_bytes());
        accepted(&answer);
    }
    let (_, cart) = dev.cart("123123123");
    let returns = cart["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "event" && e["code"] == "return");
    assert_eq!(returns.count(), 2, "both returns on the order's cart: {cart:#}");
    let (status, export) = dev.call("GET", "/v1/customers/115310627314723954/export", b"");
    assert_eq!(status, 200, "{export:#}");
    let text = export.to_string();
    assert!(text.contains("shopify:refund:929361464") && text.contains("202.98"), "the paid refund: {export:#}");

    // The first refund again, now inside an update of its order: the same return, a duplicate.
    order["refunds"] = json!([fixture("shopify/refunds-create.json")]);
    let body = order.to_string();
    let again = dev.post("shopify", &shopify_headers("orders/updated", "wh-upd", &body), body.as_bytes());
    assert_eq!((again.0, &again.1["duplicates"]), (200, &json!(1)), "{:#}", again.1);

    let mut stranger = fixture("shopify/refunds-create.json");
    stranger["id"] = json!(77);
    stranger["order_id"] = json!(4242);
    let body = stranger.to_string();
    let (status, answer) = dev.post("shopify", &shopify_headers("refunds/create", "wh-r3", &body), body.as_bytes());
    assert_eq!((status, answer["rejected"].as_u64()), (200, Some(1)), "{answer:#}");
    let error = &answer["results"][0]["error"];
    assert_eq!(error["field"], "order_id");
    assert!(error["message"].as_str().unwrap().contains("has not received"), "{error}");
}

/// GIVEN a Shopify checkout whose second line's price is not an amount WHEN it arrives THEN the checkout is
/// accepted with its good line, its contact and its consent, and the answer and the cart's timeline name the
/// line left out.
#[test]
fn given_a_shopify_checkout_with_a_bad_line_when_posted_then_the_cart_is_kept_and_the_line_named() {
    let dev = Dev::start();
    let mut checkout = fixture("shopify/checkouts-create.json");
    checkout["updated_at"] = json!(iso(dev.now()));
    let mut bad = checkout["line_items"][0].clone();
    bad["variant_id"] = json!(999);
    bad["price"] = json!("call us");
    checkout["line_items"].as_array_mut().unwrap().push(bad);
    let body = checkout.to_string();
    let answer = dev.post("shopify", &shopify_headers("checkouts/create", "wh-bad", &body), body.as_bytes());
    accepted(&answer);
    let warnings = &answer.1["results"][0]["warnings"];
    assert_eq!(warnings[0]["field"], "line_items[1].price", "{:#}", answer.1);
    let (_, cart) = dev.cart("123123123");
    assert_eq!(cart["items"].as_array().map(Vec::len), Some(1), "{cart:#}");
    let event = cart["timeline"].as_array().unwrap().iter().find(|e| e["kind"] == "event").unwrap().clone();
    assert!(event["message"].as_str().unwrap().contains("line_items[1].price"), "{event:#}");
}

/// GIVEN `cartback dev` with BigCommerce's cart fetch configured (store hash, API token, and the API at a
/// loopback fake answering the documented `GET /v3/carts/{id}`) WHEN a thin `store/cart/updated` arrives
/// while the API fails THEN 503 with `Retry-After` and nothing is stored; WHEN BigCommerce retries it THEN the
/// cart is fetched with the token and stored with its lines, currency and customer; a thin line item webhook
/// fetches by `data.cartId`; a cart the API no longer has is acknowledged with no event.
#[test]
fn given_bigcommerces_cart_fetch_configured_when_thin_cart_webhooks_arrive_then_the_fetched_cart_is_stored() {
    const TOKEN: &str = "bc-e2e-api-token-0001";
    const CART: &str = "09346904-4175-44fd-be53-f7e598531b6c";
    let (api, dev) = with_bigcommerce_api(TOKEN, SPEED);
    let mut answer = fixture("bigcommerce/api-cart.json");
    answer["data"]["updated_time"] = json!(iso(dev.now()));
    dev.contacts.lock().unwrap().collect(&answer);
    api.put_cart(answer);
    let thin = fixture("bigcommerce/cart-updated-thin.json").to_string();

    api.fail(true);
    let (status, failed) = dev.post("bigcommerce", &bigcommerce_signed("msg-1", &thin), thin.as_bytes());
    assert_eq!((status, failed["error"]["code"].as_str()), (503, Some("unavailable")), "{failed:#}");
    assert_eq!(dev.cart(CART).0, 404, "nothing stored");

    api.fail(false);
    accepted(&dev.post("bigcommerce", &bigcommerce_signed("msg-1", &thin), thin.as_bytes()));
    let (_, cart) = dev.cart(CART);
    let items: Vec<(&str, u64)> = cart["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["item_id"].as_str().unwrap(), i["quantity"].as_u64().unwrap()))
        .collect();
    assert_eq!(items, [("358", 2), ("401", 1)], "{cart:#}");
    assert_eq!((cart["customer_id"].as_str(), cart["totals"]["currency"].as_str()), (Some("11"), Some("USD")));
    let path = format!("/stores/abcde/v3/carts/{CART}?include=line_items.physical_items.options");
    let customer = "/stores/abcde/v3/customers?id:in=11".to_owned();
    let token = Some(TOKEN.to_owned());
    assert_eq!(
        api.seen()[api.seen().len() - 2..],
        [(path, token.clone()), (customer, token)],
        "the documented requests, with the token: the cart, then its customer"
    );

    let line = fixture("bigcommerce/line-item-added-thin.json").to_string();
    let (status, answer) = dev.post("bigcommerce", &bigcommerce_signed("msg-2", &line), line.as_bytes());
    assert_eq!(status, 200, "{answer:#}");
    assert!(api.seen().iter().rev().nth(1).unwrap().0.contains(CART), "fetched by data.cartId");

    // WHEN the shopper changes the cart and BigCommerce sends the same thin body again (same `hash`)
    // THEN it is a new event: the new contents are stored, not answered `duplicate`
    let mut changed = fixture("bigcommerce/api-cart.json");
    changed["data"]["updated_time"] = json!(iso(dev.now() + chrono::Duration::seconds(1)));
    changed["data"]["line_items"]["physical_items"][0]["quantity"] = json!(5);
    api.put_cart(changed);
    accepted(&dev.post("bigcommerce", &bigcommerce_signed("msg-4", &thin), thin.as_bytes()));
    let (_, cart) = dev.cart(CART);
    assert_eq!(cart["items"][0]["quantity"], 5, "{cart:#}");

    let mut gone = fixture("bigcommerce/cart-updated-thin.json");
    gone["data"]["id"] = json!("5e1b0c1e-0000-4000-8000-000000000000");
    gone["hash"] = json!("gone-cart-hash");
    let gone = gone.to_string();
    let (status, answer) = dev.post("bigcommerce", &bigcommerce_signed("msg-3", &gone), gone.as_bytes());
    assert_eq!((status, &answer["results"]), (200, &json!([])), "{answer:#}");
}

/// BigCommerce's order answers for order 252 of cart 0934…, placed `at` (`date_created`), held by `api`.
fn put_order_252(api: &FakeBigCommerce, dev: &Dev, at: chrono::DateTime<chrono::Utc>) {
    let mut order = fixture("bigcommerce/api-order.json");
    order["date_created"] = json!(at.to_rfc2822());
    dev.contacts.lock().unwrap().collect(&order);
    api.put_order(order, fixture("bigcommerce/api-order-products.json"));
}

/// GIVEN BigCommerce's fetch configured WHEN a thin cart webhook is abandoned THEN one email; WHEN
/// `store/order/created` names order 252 (placed, of that cart) THEN the order and its lines are fetched with
/// the token and the purchase converts the cart: the next step decides `purchased`, nothing more is sent. The
/// same delivery again is a duplicate answered before any request to the API.
#[test]
fn given_bigcommerces_fetch_when_store_order_created_names_the_abandoned_carts_order_then_purchase_and_nothing_more() {
    const TOKEN: &str = "bc-e2e-api-token-0003";
    let (api, dev) = with_bigcommerce_api(TOKEN, SPEED);
    let mut cart = fixture("bigcommerce/api-cart.json");
    cart["data"]["updated_time"] = json!(iso(dev.now()));
    // Customer 11, opted in to abandoned-cart emails.
    let customer = fixture("bigcommerce/cart-updated-snapshot.json")["data"]["customer"].clone();
    dev.contacts.lock().unwrap().collect(&cart);
    dev.contacts.lock().unwrap().collect(&customer);
    api.put_cart(cart);
    api.put_customer(customer);
    let mut thin = fixture("bigcommerce/cart-updated-thin.json");
    thin["created_at"] = json!(dev.now().timestamp());
    let thin = thin.to_string();
    accepted(&dev.post("bigcommerce", &bigcommerce_signed("msg-cart", &thin), thin.as_bytes()));

    let mut created = fixture("bigcommerce/order-created.json");
    recovery(&dev, "09346904-4175-44fd-be53-f7e598531b6c", "jane.doe@example.com", "Chemex", || {
        put_order_252(&api, &dev, dev.now());
        created["created_at"] = json!(dev.now().timestamp());
        let body = created.to_string();
        let answer = dev.post("bigcommerce", &bigcommerce_signed("msg-order", &body), body.as_bytes());
        accepted(&answer);
        assert_eq!(answer.1["results"][0]["event_id"], "bigcommerce:order:252", "{:#}", answer.1);
    });
    let token = Some(TOKEN.to_owned());
    let seen = api.seen();
    assert_eq!(
        seen[seen.len() - 2..],
        [
            ("/stores/abcde/v2/orders/252".to_owned(), token.clone()),
            ("/stores/abcde/v2/orders/252/products?limit=250".to_owned(), token)
        ],
    );
    let (_, cart) = dev.cart("09346904-4175-44fd-be53-f7e598531b6c");
    let purchase = cart["timeline"].as_array().unwrap().iter().find(|e| e["code"] == "purchase").cloned();
    assert!(purchase.is_some(), "the purchase is on the cart's timeline: {cart:#}");

    // WHEN BigCommerce retries the order delivery THEN a duplicate, and the API is not asked again
    let body = created.to_string();
    let (status, again) = dev.post("bigcommerce", &bigcommerce_signed("msg-order", &body), body.as_bytes());
    assert_eq!((status, &again["duplicates"]), (200, &json!(1)), "{again:#}");
    assert_eq!(api.seen().len(), seen.len(), "no request for a delivery seen before");
}

/// GIVEN BigCommerce's fetch configured and the business clock at real speed WHEN a refund of order 252
/// arrives before the order THEN 503 with the return answered `retry` (BigCommerce resends); WHEN the order
/// arrives and the refund is resent THEN the return is stored on the order's cart, for its customer. An
/// order the API does not have is rejected naming its id.
#[test]
fn given_a_refund_before_its_order_when_posted_then_retry_and_after_the_order_a_return_of_its_customer() {
    const TOKEN: &str = "bc-e2e-api-token-0004";
    let (api, dev) = with_bigcommerce_api(TOKEN, "1");
    let mut refunds = fixture("bigcommerce/api-order-refunds.json");
    refunds["data"][0]["created"] = json!(iso(dev.now()));
    api.put_refunds(252, refunds);
    let refund = fixture("bigcommerce/order-refund-created.json").to_string();

    let (status, early) = dev.post("bigcommerce", &bigcommerce_signed("msg-refund", &refund), refund.as_bytes());
    assert_eq!((status, &early["retry"]), (503, &json!(1)), "{early:#}");
    assert_eq!(early["results"][0]["status"], "retry");
    assert!(early["results"][0]["reason"].as_str().unwrap().contains("\"252\""), "{early:#}");

    put_order_252(&api, &dev, dev.now());
    let order = fixture("bigcommerce/order-created.json").to_string();
    accepted(&dev.post("bigcommerce", &bigcommerce_signed("msg-order", &order), order.as_bytes()));
    let answer = dev.post("bigcommerce", &bigcommerce_signed("msg-refund", &refund), refund.as_bytes());
    accepted(&answer);
    assert_eq!(answer.1["results"][0]["event_id"], "bigcommerce:refund:3");
    let (_, cart) = dev.cart("09346904-4175-44fd-be53-f7e598531b6c");
    let returns = cart["timeline"].as_array().unwrap().iter().filter(|e| e["code"] == "return").count();
    assert_eq!(returns, 1, "{cart:#}");
    // The order's customer (11), worth the refund's payment.
    let (status, export) = dev.call("GET", "/v1/customers/11/export", b"");
    assert_eq!(status, 200, "{export:#}");
    let text = export.to_string();
    assert!(text.contains("bigcommerce:refund:3"), "{export:#}");
    assert!(text.contains(r#""type":"return","value":"49.5""#), "customer 11's return, its value: {export:#}");

    // WHEN a refund BigCommerce's API does not list yet is delivered THEN retry, not a refusal
    let mut later = fixture("bigcommerce/order-refund-created.json");
    later["data"]["refund"]["refund_id"] = json!(4);
    later["created_at"] = json!(dev.now().timestamp());
    let later = later.to_string();
    let (status, early) = dev.post("bigcommerce", &bigcommerce_signed("msg-refund-4", &later), later.as_bytes());
    assert_eq!((status, &early["results"][0]["status"]), (503, &json!("retry")), "{early:#}");
    assert!(early["results"][0]["reason"].as_str().unwrap().contains("refund 4"), "{early:#}");

    let mut unknown = fixture("bigcommerce/order-created.json");
    unknown["data"]["id"] = json!(999);
    let unknown = unknown.to_string();
    let (status, answer) = dev.post("bigcommerce", &bigcommerce_signed("msg-999", &unknown), unknown.as_bytes());
    assert_eq!((status, &answer["rejected"]), (200, &json!(1)), "{answer:#}");
    let error = &answer["results"][0]["error"];
    assert_eq!(error["field"], "data.id");
    assert!(error["message"].as_str().unwrap().contains("order 999"), "{error}");
}

/// GIVEN BigCommerce's fetch configured and both `store/cart/*` and `store/order/*` subscribed WHEN an order
/// arrives as `store/cart/converted` and as `store/order/created`, in either order THEN one purchase,
/// `bigcommerce:order:252`, worth the fetched order's 114 USD; the second delivery is a duplicate.
#[test]
fn given_both_hooks_when_converted_and_order_created_arrive_in_either_order_then_one_purchase_with_its_value() {
    for converted_first in [true, false] {
        let (api, dev) = with_bigcommerce_api("bc-e2e-api-token-0005", SPEED);
        put_order_252(&api, &dev, dev.now());
        let mut converted = fixture("bigcommerce/cart-converted.json");
        converted["created_at"] = json!(dev.now().timestamp());
        let mut created = fixture("bigcommerce/order-created.json");
        created["created_at"] = json!(dev.now().timestamp());
        let (converted, created) = (converted.to_string(), created.to_string());
        let mut deliveries = [("msg-converted", converted), ("msg-created", created)];
        if !converted_first {
            deliveries.reverse();
        }
        let answers: Vec<_> = deliveries
            .iter()
            .map(|(id, body)| dev.post("bigcommerce", &bigcommerce_signed(id, body), body.as_bytes()))
            .collect();
        accepted(&answers[0]);
        assert_eq!(answers[0].1["results"][0]["event_id"], "bigcommerce:order:252", "{:#}", answers[0].1);
        assert_eq!((answers[1].0, &answers[1].1["duplicates"]), (200, &json!(1)), "{:#}", answers[1].1);

        let (_, cart) = dev.cart("09346904-4175-44fd-be53-f7e598531b6c");
        let purchases = cart["timeline"].as_array().unwrap().iter().filter(|e| e["code"] == "purchase").count();
        assert_eq!(purchases, 1, "converted first: {converted_first}; {cart:#}");
        let (status, export) = dev.call("GET", "/v1/customers/11/export", b"");
        assert_eq!(status, 200, "{export:#}");
        let text = export.to_string();
        assert!(text.contains("bigcommerce:order:252"), "{export:#}");
        assert!(text.contains(r#""type":"purchase","value":"114""#), "the order's value: {export:#}");
    }
}

/// GIVEN BigCommerce's fetch configured and order 252 with 60 lines (more than the API's default page of 50)
/// WHEN `store/order/created` arrives THEN the purchase holds all 60.
#[test]
fn given_an_order_of_more_lines_than_a_default_page_when_fetched_then_its_purchase_holds_every_line() {
    let (api, dev) = with_bigcommerce_api("bc-e2e-api-token-0006", SPEED);
    let line = fixture("bigcommerce/api-order-products.json")[0].clone();
    let lines: Vec<Value> = (0..60)
        .map(|i| {
            let mut line = line.clone();
            line["variant_id"] = json!(1000 + i);
            line
        })
        .collect();
    let mut order = fixture("bigcommerce/api-order.json");
    order["date_created"] = json!(dev.now().to_rfc2822());
    api.put_order(order, Value::Array(lines));
    let mut created = fixture("bigcommerce/order-created.json");
    created["created_at"] = json!(dev.now().timestamp());
    let body = created.to_string();
    accepted(&dev.post("bigcommerce", &bigcommerce_signed("msg-60", &body), body.as_bytes()));

    let (status, export) = dev.call("GET", "/v1/customers/11/export", b"");
    assert_eq!(status, 200, "{export:#}");
    let text = export.to_string();
    assert_eq!(text.matches(r#""item_id":"10"#).count(), 60, "every line in the purchase: {export:#}");
}
