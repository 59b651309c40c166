//! The HTTP contract, independent of any server: both `cartback dev` (hyper)
//! and the ingest Lambda (API Gateway) translate to and from these types, so
//! the two runtimes answer byte for byte the same.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::ports::TimelineKind;
use crate::event::BodyError;
use crate::ids::CartId;
use crate::ports::{Clock, PortError, StateStore, TimelineEntry};
use crate::service::{Ingest, IngestError, Settings};
use crate::signing::{verify_link, verify_request, LinkError, SIGNATURE_HEADER};

pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn json(status: u16, body: &Value) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(body).expect("JSON values serialise"),
        }
    }

    fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
        Response::json(status, &json!({ "error": { "code": code, "message": message.into() } }))
    }

    fn unavailable(error: &PortError) -> Response {
        // The cause is logged; the client only learns that it may retry.
        tracing::error!(%error, "storage or scheduler unavailable");
        let mut r = Response::error(503, "unavailable", "Cartback cannot reach its storage right now; retry with backoff.");
        r.headers.push(("retry-after".into(), "5".into()));
        r
    }
}

pub struct Api {
    pub ingest: Ingest,
    pub store: Arc<dyn StateStore>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
}

impl Api {
    pub async fn handle(&self, request: &Request) -> Response {
        let path = request.path.split('?').next().unwrap_or_default();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            // `now` is Cartback's clock (virtual under `cartback dev --clock-speed`):
            // clients sign with it so the replay window holds at any speed.
            ("GET", ["healthz"]) => Response::json(200, &json!({ "status": "ok", "now": self.clock.now() })),
            ("GET", ["openapi.json"]) => Response {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: OPENAPI_JSON.as_bytes().to_vec(),
            },
            ("POST", ["v1", "events"]) => self.post_events(request).await,
            ("GET", ["v1", "carts", cart_id]) => self.get_cart(request, cart_id).await,
            ("GET", ["r", token]) => self.redirect(token).await,
            (_, ["healthz"] | ["openapi.json"] | ["v1", "events"] | ["v1", "carts", _] | ["r", _]) => {
                Response::error(405, "method_not_allowed", format!("{} is not allowed on {path}", request.method))
            }
            _ => Response::error(404, "not_found", format!("no route for {path}")),
        }
    }

    fn authenticate(&self, request: &Request) -> Result<(), Response> {
        verify_request(&self.settings.secret, request.header(SIGNATURE_HEADER), &request.body, self.clock.now())
            .map_err(|e| Response::error(401, "unauthorized", e.to_string()))
    }

    async fn post_events(&self, request: &Request) -> Response {
        if request.body.len() > crate::event::MAX_BODY_BYTES {
            return Response::error(413, "payload_too_large", BodyError::TooLarge(request.body.len()).to_string());
        }
        if let Err(denied) = self.authenticate(request) {
            return denied;
        }
        match self.ingest.ingest_body(&request.body).await {
            Ok(answer) => Response::json(200, &serde_json::to_value(answer).expect("answers serialise")),
            Err(IngestError::Body(e @ (BodyError::TooLarge(_) | BodyError::TooManyEvents(_)))) => {
                Response::error(413, "payload_too_large", e.to_string())
            }
            Err(IngestError::Body(e)) => Response::error(400, "bad_request", e.to_string()),
            Err(IngestError::Store(e)) => Response::unavailable(&e),
        }
    }

    async fn get_cart(&self, request: &Request, cart_id: &str) -> Response {
        if let Err(denied) = self.authenticate(request) {
            return denied;
        }
        let cart_id = percent_decode(cart_id);
        let cart_id = CartId::from(cart_id);
        let record = match self.store.get_cart(&cart_id).await {
            Ok(Some(record)) => record,
            Ok(None) => return Response::error(404, "not_found", format!("no cart {cart_id:?}")),
            Err(e) => return Response::unavailable(&e),
        };
        let timeline = match self.store.timeline(&cart_id).await {
            Ok(t) => t,
            Err(e) => return Response::unavailable(&e),
        };
        Response::json(200, &cart_view(&record, &timeline))
    }

    async fn redirect(&self, token: &str) -> Response {
        let now = self.clock.now();
        let claims = match verify_link(&self.settings.secret, token, now) {
            Ok(c) => c,
            Err(LinkError::Expired) => return Response::error(410, "link_expired", "This link has expired."),
            Err(_) => return Response::error(404, "not_found", "This link is not valid."),
        };
        // A click is engagement; failing to record it must not break the link.
        if let Err(error) = self.store.record_engagement(&claims.message_id, now).await {
            tracing::warn!(%error, "click not recorded");
        } else {
            let entry = TimelineEntry {
                at: now,
                kind: TimelineKind::Engagement,
                code: "click".into(),
                message: "The customer clicked a link in the message.".into(),
                details: json!({ "message_id": claims.message_id }),
            };
            if let Err(error) = self.store.append_timeline(&claims.cart_id, &entry).await {
                tracing::warn!(%error, "click not added to timeline");
            }
        }
        Response {
            status: 302,
            headers: vec![("location".into(), claims.target), ("cache-control".into(), "no-store".into())],
            body: Vec::new(),
        }
    }
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

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
