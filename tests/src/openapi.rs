//! The served OpenAPI document as the oracle of the end-to-end suites: every
//! answer a test receives is checked against the operation (method + path
//! template) and status it documents, with a JSON Schema validator
//! (draft 2020-12, the dialect of OpenAPI 3.1). A status the document does
//! not list, a missing documented header, a body where none is documented or
//! a body that breaks its schema is a [`Violation`], so drift between the code
//! and the document fails a test.
//!
//! Each schema is compiled with the whole document as its root resource
//! (`{"$ref": "#/paths/..."}` beside the document's own members), so the
//! document's `#/components/...` references resolve as written.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::{Draft, Validator};
use serde_json::{Map, Value};

/// The document `GET /openapi.json` serves.
pub fn served() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let doc = serde_json::from_str(cartback_core::api::OPENAPI_JSON).expect("openapi.json is JSON");
        Contract::new(doc)
    })
}

/// One answer as a test observed it, whatever client received it.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub status: u16,
    /// Header names in any case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Observed {
    /// Sends `request` to the in-process application and records its answer.
    pub async fn from_app(app: &axum::Router, request: axum::http::Request<axum::body::Body>) -> Observed {
        use tower::ServiceExt;
        let response = app.clone().oneshot(request).await.unwrap_or_else(|never| match never {});
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
            .collect();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("an in-memory body").to_vec();
        Observed { status, headers, body }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Where an answer (or a request body) and the document disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    UnknownOperation { method: String, path: String },
    UndocumentedStatus { operation: String, status: u16 },
    MissingHeader { operation: String, status: u16, header: String },
    UnexpectedBody { operation: String, status: u16, bytes: usize },
    WrongContentType { operation: String, status: u16, content_type: Option<String> },
    NotJson { operation: String, status: u16, error: String },
    Schema { operation: String, status: Option<u16>, errors: Vec<String> },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::UnknownOperation { method, path } => {
                write!(f, "{method} {path}: no such operation in the document")
            }
            Violation::UndocumentedStatus { operation, status } => {
                write!(f, "{operation}: status {status} is not documented")
            }
            Violation::MissingHeader { operation, status, header } => {
                write!(f, "{operation} -> {status}: documented header {header} is missing")
            }
            Violation::UnexpectedBody { operation, status, bytes } => {
                write!(f, "{operation} -> {status}: no body is documented, got {bytes} bytes")
            }
            Violation::WrongContentType { operation, status, content_type } => {
                write!(f, "{operation} -> {status}: documented application/json, got content-type {content_type:?}")
            }
            Violation::NotJson { operation, status, error } => {
                write!(f, "{operation} -> {status}: body is not JSON: {error}")
            }
            Violation::Schema { operation, status, errors } => {
                let status = status.map(|s| format!(" -> {s}")).unwrap_or_default();
                write!(f, "{operation}{status}: body breaks the schema: {}", errors.join("; "))
            }
        }
    }
}

impl std::error::Error for Violation {}

pub struct Contract {
    doc: Value,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

impl Contract {
    pub fn new(doc: Value) -> Contract {
        Contract { doc, validators: Mutex::new(HashMap::new()) }
    }

    pub fn document(&self) -> &Value {
        &self.doc
    }

    /// The path template (`/v1/carts/{cart_id}`) that `path` (query ignored)
    /// matches for `method`.
    pub fn operation(&self, method: &str, path: &str) -> Result<String, Violation> {
        let path = path.split('?').next().unwrap_or_default();
        let unknown = || Violation::UnknownOperation { method: method.to_owned(), path: path.to_owned() };
        let paths = self.doc["paths"].as_object().ok_or_else(unknown)?;
        paths
            .iter()
            .find(|(template, item)| template_matches(template, path) && item.get(method.to_lowercase()).is_some())
            .map(|(template, _)| template.clone())
            .ok_or_else(unknown)
    }

    /// Checks one answer to `method path` against what the document says of
    /// that operation and status.
    pub fn check_response(&self, method: &str, path: &str, observed: &Observed) -> Result<(), Violation> {
        let template = self.operation(method, path)?;
        let operation = format!("{method} {template}");
        let status = observed.status;
        let responses = &self.doc["paths"][&template][method.to_lowercase()]["responses"];
        let (key, response) = [status.to_string(), format!("{}XX", status / 100), "default".to_owned()]
            .into_iter()
            .find_map(|key| responses.get(&key).map(|r| (key, r)))
            .ok_or_else(|| Violation::UndocumentedStatus { operation: operation.clone(), status })?;
        let response = self.resolve(response);
        for (name, header) in response.get("headers").and_then(Value::as_object).into_iter().flatten() {
            let required = self.resolve(header).get("required").and_then(Value::as_bool).unwrap_or(false);
            if required && observed.header(name).is_none() {
                return Err(Violation::MissingHeader { operation, status, header: name.clone() });
            }
        }
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            if observed.body.is_empty() {
                return Ok(());
            }
            return Err(Violation::UnexpectedBody { operation, status, bytes: observed.body.len() });
        };
        let content_type = observed.header("content-type");
        // A page for people (the preference page): documented as HTML, checked as such, not validated.
        if content.contains_key("text/html") && content_type.is_some_and(|t| t.starts_with("text/html")) {
            return Ok(());
        }
        if !content.contains_key("application/json") || !content_type.is_some_and(|t| t.starts_with("application/json"))
        {
            return Err(Violation::WrongContentType {
                operation,
                status,
                content_type: content_type.map(str::to_owned),
            });
        }
        let body: Value = serde_json::from_slice(&observed.body).map_err(|e| Violation::NotJson {
            operation: operation.clone(),
            status,
            error: e.to_string(),
        })?;
        let pointer = format!(
            "#/paths/{}/{}/responses/{key}/content/application~1json/schema",
            escape(&template),
            method.to_lowercase()
        );
        self.validate(&pointer, &body).map_err(|errors| Violation::Schema { operation, status: Some(status), errors })
    }

    /// Checks a request body against the operation's `application/json`
    /// request schema.
    pub fn check_request(&self, method: &str, path: &str, body: &Value) -> Result<(), Violation> {
        let template = self.operation(method, path)?;
        let pointer = format!(
            "#/paths/{}/{}/requestBody/content/application~1json/schema",
            escape(&template),
            method.to_lowercase()
        );
        self.validate(&pointer, body).map_err(|errors| Violation::Schema {
            operation: format!("{method} {template} request"),
            status: None,
            errors,
        })
    }

    /// Validates `value` against the schema at `pointer` (a `#/...` JSON
    /// pointer into the document, e.g. `#/components/schemas/Event`); the
    /// errors name the instance path of each failure.
    pub fn validate(&self, pointer: &str, value: &Value) -> Result<(), Vec<String>> {
        let validator = self.validator(pointer);
        let errors: Vec<String> =
            validator.iter_errors(value).map(|e| format!("at {:?}: {e}", e.instance_path().as_str())).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn validator(&self, pointer: &str) -> Arc<Validator> {
        let mut cache = self.validators.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(v) = cache.get(pointer) {
            return v.clone();
        }
        assert!(self.doc.pointer(pointer.trim_start_matches('#')).is_some(), "the document has no schema at {pointer}");
        let mut root: Map<String, Value> = self.doc.as_object().cloned().unwrap_or_default();
        root.insert("$ref".into(), Value::String(uri_fragment(pointer)));
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}"));
        let validator = Arc::new(validator);
        cache.insert(pointer.to_owned(), validator.clone());
        validator
    }

    /// Follows a `$ref` to `#/components/...` (responses, headers).
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(r) => self.doc.pointer(r.trim_start_matches('#')).unwrap_or(value),
            None => value,
        }
    }
}

/// Panics with the violation: for tests.
pub fn assert_response(method: &str, path: &str, observed: &Observed) {
    if let Err(violation) = served().check_response(method, path, observed) {
        panic!(
            "the answer breaks the served OpenAPI document: {violation}\nbody: {}",
            String::from_utf8_lossy(&observed.body)
        );
    }
}

fn template_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| (t.starts_with('{') && t.ends_with('}')) || t == p)
}

/// A `#/...` JSON pointer as a URI fragment: characters a fragment may not
/// hold (`{`, `}` of path templates, ...) percent-encoded (RFC 6901 section 6).
fn uri_fragment(pointer: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?#".contains(c);
    pointer
        .chars()
        .map(|c| if allowed(c) { c.to_string() } else { c.to_string().bytes().map(|b| format!("%{b:02X}")).collect() })
        .collect()
}

/// JSON pointer escaping of one reference token (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_answer(status: u16, body: &Value) -> Observed {
        Observed {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(body).unwrap(),
        }
    }

    fn good_ingest_answer() -> Value {
        json!({
            "received_at": "2026-11-23T10:00:00Z", "accepted": 1, "duplicates": 0, "rejected": 1, "retry": 0,
            "results": [
                {"index": 0, "event_id": "e1", "status": "accepted"},
                {"index": 1, "status": "rejected", "error": {"field": "event_id", "message": "is required"}}
            ]
        })
    }

    #[test]
    fn given_a_documented_answer_when_checked_then_it_passes() {
        assert_eq!(served().check_response("POST", "/v1/events", &json_answer(200, &good_ingest_answer())), Ok(()));
        let error = json!({"error": {"code": "not_found", "message": "no cart"}});
        assert_eq!(served().check_response("GET", "/v1/carts/c%2F1?x=1", &json_answer(404, &error)), Ok(()));
    }

    #[test]
    fn given_deliberately_broken_answers_when_checked_then_each_fails_validation() {
        let contract = served();
        let mut missing_field = good_ingest_answer();
        missing_field.as_object_mut().unwrap().remove("accepted");
        let mut undocumented_field = good_ingest_answer();
        undocumented_field["extra"] = json!(true);
        let mut rejected_without_error = good_ingest_answer();
        rejected_without_error["results"][1].as_object_mut().unwrap().remove("error");
        let mut wrong_type = good_ingest_answer();
        wrong_type["received_at"] = json!("yesterday");
        for broken in [missing_field, undocumented_field, rejected_without_error, wrong_type] {
            let outcome = contract.check_response("POST", "/v1/events", &json_answer(200, &broken));
            assert!(matches!(outcome, Err(Violation::Schema { .. })), "{broken} passed: {outcome:?}");
        }
    }

    /// Issue 9 items 3 and 12: per-event `retry` (with its reason, answered
    /// 503 with `Retry-After`) and `warnings` on accepted events are
    /// documented exactly: anywhere else they break the schema.
    #[test]
    fn given_retry_and_warning_results_when_checked_then_only_their_documented_forms_pass() {
        let contract = served();
        let warning = json!({"field": "customer.phone", "message": "must be a valid phone number"});
        let answer = json!({
            "received_at": "2026-11-23T10:00:00Z", "accepted": 1, "duplicates": 0, "rejected": 0, "retry": 1,
            "results": [
                {"index": 0, "event_id": "e1", "status": "accepted", "warnings": [warning]},
                {"index": 1, "event_id": "e2", "status": "retry", "reason": "send it again"}
            ]
        });
        let mut busy = json_answer(503, &answer);
        busy.headers.push(("Retry-After".into(), "5".into()));
        assert_eq!(contract.check_response("POST", "/v1/events", &busy), Ok(()));

        let mut retry_without_reason = answer.clone();
        retry_without_reason["results"][1].as_object_mut().unwrap().remove("reason");
        let mut warnings_on_rejected = answer.clone();
        warnings_on_rejected["results"][0]["status"] = json!("rejected");
        warnings_on_rejected["results"][0]["error"] = json!({"field": "type", "message": "unknown"});
        let mut error_on_retry = answer.clone();
        error_on_retry["results"][1]["error"] = json!({"field": "", "message": "store"});
        let mut empty_warnings = answer;
        empty_warnings["results"][0]["warnings"] = json!([]);
        for broken in [retry_without_reason, warnings_on_rejected, error_on_retry, empty_warnings] {
            let mut observed = json_answer(503, &broken);
            observed.headers.push(("Retry-After".into(), "5".into()));
            let outcome = contract.check_response("POST", "/v1/events", &observed);
            assert!(matches!(outcome, Err(Violation::Schema { .. })), "{broken} passed: {outcome:?}");
        }
    }

    #[test]
    fn given_an_undocumented_status_route_header_or_body_when_checked_then_it_is_named() {
        let contract = served();
        let error = json!({"error": {"code": "unavailable", "message": "later"}});
        assert!(matches!(
            contract.check_response("GET", "/r/token", &json_answer(418, &error)),
            Err(Violation::UndocumentedStatus { status: 418, .. })
        ));
        assert!(matches!(
            contract.check_response("DELETE", "/v1/events", &json_answer(200, &error)),
            Err(Violation::UnknownOperation { .. })
        ));
        assert!(matches!(
            contract.check_response("POST", "/v1/events", &json_answer(503, &error)),
            Err(Violation::MissingHeader { .. })
        ));
        let redirect = Observed {
            status: 302,
            headers: vec![("location".into(), "https://shop".into()), ("cache-control".into(), "no-store".into())],
            body: b"moved".to_vec(),
        };
        assert!(matches!(contract.check_response("GET", "/r/t", &redirect), Err(Violation::UnexpectedBody { .. })));
        let text =
            Observed { status: 200, headers: vec![("content-type".into(), "text/plain".into())], body: b"ok".to_vec() };
        assert!(matches!(contract.check_response("GET", "/healthz", &text), Err(Violation::WrongContentType { .. })));
    }

    #[test]
    fn given_request_bodies_when_checked_then_a_batch_of_good_events_passes_and_a_bad_price_is_located() {
        let contract = served();
        let good = json!({"event_id": "e1", "type": "add_to_cart", "cart_id": "c1", "currency": "EUR",
                          "items": [{"item_id": "sku", "price": "12.50"}]});
        assert_eq!(contract.check_request("POST", "/v1/events", &json!({"events": [good.clone()]})), Ok(()));
        let mut bad = good;
        bad["items"][0]["price"] = json!("twelve");
        assert!(contract
            .validate("#/components/schemas/Event", &bad)
            .unwrap_err()
            .iter()
            .any(|e| e.contains("/items/0/price")));
    }
}
