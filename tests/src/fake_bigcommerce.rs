//! BigCommerce's Management API for tests: a real HTTP/1.1 listener on
//! loopback that answers `GET /stores/{hash}/v3/carts/{id}`,
//! `GET /stores/{hash}/v3/customers?id:in={id}`, `GET /stores/{hash}/v2/orders/{id}`,
//! `GET /stores/{hash}/v2/orders/{id}/products` (paged: `limit`, default 50, and `page`) and
//! `GET /stores/{hash}/v3/orders/{id}/payment_actions/refunds` the way the
//! API documents them, for the token it was started with, and keeps every
//! request it receives.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::webhook_endpoint::read_request;

/// One request the API received: its path with the query, and its `X-Auth-Token`.
pub type Seen = (String, Option<String>);

pub struct FakeBigCommerce {
    /// What `CARTBACK_BIGCOMMERCE_API_URL` is set to.
    pub url: String,
    carts: Arc<Mutex<HashMap<String, Value>>>,
    customers: Arc<Mutex<HashMap<String, Value>>>,
    /// By path after the store hash (`v2/orders/252`, `v2/orders/252/products`, ...).
    orders: Arc<Mutex<HashMap<String, Value>>>,
    failing: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeBigCommerce {
    /// The API of store `store_hash`, taking `token`: a cart it holds is
    /// answered 200 with the cart in `data`, another 404, a wrong token
    /// 401, everything 500 while [`FakeBigCommerce::fail`] is on.
    pub fn start(store_hash: &str, token: &str) -> FakeBigCommerce {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let fake = FakeBigCommerce {
            url,
            carts: Arc::default(),
            customers: Arc::default(),
            orders: Arc::default(),
            failing: Arc::default(),
            seen: Arc::default(),
        };
        let (carts, customers, orders) = (fake.carts.clone(), fake.customers.clone(), fake.orders.clone());
        let orders_prefix = format!("GET /stores/{store_hash}/");
        let (failing, seen) = (fake.failing.clone(), fake.seen.clone());
        let (prefix, token) = (format!("GET /stores/{store_hash}/v3/carts/"), token.to_owned());
        let customers_prefix = format!("GET /stores/{store_hash}/v3/customers?id:in=");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (line, headers, _) = read_request(&stream);
                let given = headers.iter().find(|(n, _)| n == "x-auth-token").map(|(_, v)| v.clone());
                let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                seen.lock().unwrap().push((path, given.clone()));
                let cart = line.strip_prefix(&prefix).and_then(|rest| rest.split(['?', ' ']).next());
                let customer = line.strip_prefix(&customers_prefix).and_then(|rest| rest.split(' ').next());
                let order = line
                    .strip_prefix(&orders_prefix)
                    .and_then(|rest| rest.split(' ').next())
                    .filter(|rest| rest.starts_with("v2/orders/") || rest.starts_with("v3/orders/"));
                let (status, body) = match cart {
                    _ if failing.load(Ordering::SeqCst) => {
                        ("500 Internal Server Error", r#"{"status":500}"#.to_owned())
                    }
                    _ if given.as_deref() != Some(token.as_str()) => {
                        ("401 Unauthorized", r#"{"status":401}"#.to_owned())
                    }
                    Some(id) => match carts.lock().unwrap().get(id) {
                        Some(answer) => ("200 OK", answer.to_string()),
                        None => ("404 Not Found", r#"{"status":404,"title":"Cart not found"}"#.to_owned()),
                    },
                    None if order.is_some() => match order.and_then(|path| held_order(&orders, path)) {
                        Some(Value::Null) => ("204 No Content", String::new()),
                        Some(answer) => ("200 OK", answer.to_string()),
                        None => (
                            "404 Not Found",
                            r#"{"status":404,"title":"The requested resource was not found."}"#.to_owned(),
                        ),
                    },
                    // The list answer: the customers found (none is an empty list).
                    None if customer.is_some() => {
                        let found: Vec<Value> =
                            customer.and_then(|id| customers.lock().unwrap().get(id).cloned()).into_iter().collect();
                        let total = found.len();
                        let meta = serde_json::json!({"pagination": {"total": total, "count": total, "per_page": 50,
                                                                     "current_page": 1, "total_pages": 1}});
                        ("200 OK", serde_json::json!({"data": found, "meta": meta}).to_string())
                    }
                    None => ("404 Not Found", r#"{"status":404}"#.to_owned()),
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        fake
    }

    /// Holds the cart of a `GET /v3/carts/{id}` answer (`{"data": {...}}`), by its `data.id`.
    pub fn put_cart(&self, answer: Value) {
        let id = answer["data"]["id"].as_str().expect("the answer's data.id").to_owned();
        self.carts.lock().unwrap().insert(id, answer);
    }

    /// Holds a customer as the Customers API lists it, by its `id`.
    pub fn put_customer(&self, customer: Value) {
        let id = customer["id"].as_u64().expect("the customer's numeric id").to_string();
        self.customers.lock().unwrap().insert(id, customer);
    }

    /// Holds an order (the `GET /v2/orders/{id}` answer, by its `id`) and its
    /// lines (the `GET /v2/orders/{id}/products` answer).
    pub fn put_order(&self, order: Value, products: Value) {
        let id = order["id"].as_u64().expect("the order's numeric id");
        let mut orders = self.orders.lock().unwrap();
        orders.insert(format!("v2/orders/{id}"), order);
        orders.insert(format!("v2/orders/{id}/products"), products);
    }

    /// Holds the `GET /v3/orders/{id}/payment_actions/refunds` answer of order `order_id`.
    pub fn put_refunds(&self, order_id: u64, answer: Value) {
        self.orders.lock().unwrap().insert(format!("v3/orders/{order_id}/payment_actions/refunds"), answer);
    }

    /// While on, every request is answered 500.
    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// The held answer of an order path; a list of lines is answered one page
/// (`limit`, default 50, `page` from 1), an empty page as `Null` (204).
fn held_order(orders: &Mutex<HashMap<String, Value>>, path: &str) -> Option<Value> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let answer = orders.lock().unwrap().get(path).cloned()?;
    let Value::Array(lines) = answer else { return Some(answer) };
    let param = |name: &str| {
        query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')?.parse::<usize>().ok())
    };
    let (limit, page) = (param("limit").unwrap_or(50), param("page").unwrap_or(1).max(1));
    let page: Vec<Value> = lines.into_iter().skip(limit * (page - 1)).take(limit).collect();
    Some(if page.is_empty() { Value::Null } else { Value::Array(page) })
}
