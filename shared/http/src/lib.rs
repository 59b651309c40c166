//! The one HTTP application of both runtimes: an axum [`Router`] that
//! `cartback dev` serves with hyper and the ingest Lambda runs through
//! `lambda_http` (API Gateway HTTP API). Routing, percent-decoding and the
//! API Gateway translation are the frameworks' job; this crate holds only
//! Cartback's routes, its signature check and its JSON error answers, so
//! the two runtimes answer byte for byte the same.

mod auth;
pub mod backtest;
pub mod dashboard;
mod error;
pub mod preferences;
mod svg;
mod templates;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY, RETRY_AFTER, USER_AGENT,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde_json::json;

use cartback_core::api::{cart_view, Api, OPENAPI_JSON};
use cartback_core::consent::ConsentSource;
use cartback_core::customer_data::{erasure_json, export_json};
use cartback_core::event::{BodyError, MAX_BODY_BYTES};
use cartback_core::ids::{parse_id, CartId, CustomerId};
use cartback_core::service::{
    parse_query, record_app_report, record_link_click, report, validate_voucher, AppReport, Choices, EngagementOutcome,
    IngestError, Preferences, ReportError, ValidateRequest,
};
use cartback_core::short_link::ShortToken;
use cartback_core::signing::{verify_dashboard_token, verify_link, verify_unsubscribe, LinkError, UnsubscribeClaims};
use cartback_core::sources::{self, Headers, Source, SourceError};

pub use auth::{Signed, SignedOrV1};
pub use backtest::backtest_router;
pub use error::ApiError;

/// The routes of the public API (see `shared/core/openapi.json`).
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .route("/v1/web-push/public-key", get(web_push_public_key))
        .route("/v1/events", post(post_events))
        .route("/v1/sources/{source}", post(post_source))
        .route("/v1/carts/{cart_id}", get(get_cart))
        .route("/v1/report", get(get_report))
        .route("/v1/customers/{customer_id}", delete(erase_customer))
        .route("/v1/customers/{customer_id}/export", get(export_customer))
        .route("/v1/vouchers/validate", post(validate_voucher_code))
        .route("/v1/engagement", post(post_engagement))
        .route("/r/{token}", get(redirect))
        .route("/u/{token}", get(preference_page).post(post_preferences))
        .route("/dashboard", get(dashboard_page))
        .route("/dashboard/templates", get(templates::list_page))
        .route("/dashboard/templates/{name}", get(templates::set_page))
        .route("/dashboard/templates/{name}/email", get(templates::email_page))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read up to the limit and no further; past it the
        // extractor answers the JSON 413 (see `auth::Signed`).
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

/// A JSON answer with the given status.
fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(CONTENT_TYPE, "application/json")], bytes).into_response()
}

async fn healthz(State(api): State<Arc<Api>>) -> Response {
    // `now` is Cartback's business clock (virtual under `cartback dev --clock-speed`).
    json_response(StatusCode::OK, &json!({ "status": "ok", "now": api.clock.now() }))
}

async fn openapi() -> Response {
    (StatusCode::OK, [(CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// The VAPID public key a storefront passes to `pushManager.subscribe`
/// (`applicationServerKey`). Unsigned, because the shopper's browser asks
/// for it, and public by nature; cacheable for a day (it changes only when
/// the shop replaces its key, which invalidates every subscription anyway).
async fn web_push_public_key(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    let Some(key) = &api.settings.web_push_public_key else {
        return Err(ApiError::NotFound("web push is not configured (no VAPID key)".into()));
    };
    let mut response = json_response(StatusCode::OK, &json!({ "public_key": key }));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    Ok(response)
}

/// 200 when every event got its final answer; 503 with `Retry-After` and
/// the same per-event body when storage failed for some (status `retry`):
/// a client that reads only the status resends the whole batch, which the
/// `event_id`s make harmless, and one that reads the body resends just those.
async fn post_events(State(api): State<Arc<Api>>, SignedOrV1(body): SignedOrV1) -> Result<Response, ApiError> {
    match api.ingest.ingest_body(&body).await {
        Ok(answer) => {
            let status = if answer.retry > 0 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
            let mut response = json_response(status, &serde_json::to_value(answer).unwrap_or_default());
            if status == StatusCode::SERVICE_UNAVAILABLE {
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(error::RETRY_AFTER_SECONDS));
            }
            Ok(response)
        }
        Err(IngestError::Body(e @ (BodyError::TooLarge(_) | BodyError::TooManyEvents(_)))) => {
            Err(ApiError::PayloadTooLarge(e.to_string()))
        }
        Err(IngestError::Body(e)) => Err(ApiError::BadRequest(e.to_string())),
    }
}

/// A commerce platform's webhook (see `cartback_core::sources`): the
/// source must be configured (404 otherwise: an unconfigured source never
/// takes unsigned data), then its platform signature must hold (401), then
/// the payload is mapped and ingested event by event, answered like
/// `POST /v1/events` (200, or 503 with `Retry-After` when storage failed
/// for some: platforms retry, and the derived event ids make that harmless).
async fn post_source(
    State(api): State<Arc<Api>>,
    source: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = source.map_err(|_| ApiError::BadRequest("source: not valid percent-encoded UTF-8".into()))?;
    let source = Source::parse(&name).ok_or_else(|| ApiError::NotFound(SourceError::Unknown(name).to_string()))?;
    let secret = api
        .settings
        .sources
        .secret(source)
        .ok_or_else(|| ApiError::NotFound(SourceError::NotConfigured(source).to_string()))?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("request body is larger than the limit of {MAX_BODY_BYTES} bytes"))
        } else {
            ApiError::BadRequest(format!("the request body cannot be read: {}", rejection.body_text()))
        }
    })?;
    // A header value that is not text cannot carry a signature or a topic.
    let headers: Headers =
        headers.iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))).collect();
    sources::verify(source, secret, &headers, &body, api.wall_clock.now()).map_err(source_error)?;
    let to_fetch = match (source, &api.settings.sources.bigcommerce_carts) {
        (Source::BigCommerce, Some(fetcher)) => sources::bigcommerce::to_fetch(&body).map(|what| (fetcher, what)),
        _ => None,
    };
    // A delivery that costs an API call is checked against the deliveries
    // seen before the call: a retry spends no quota. (The signature held,
    // so the header is there.)
    let delivery =
        to_fetch.as_ref().and_then(|_| headers.get(sources::bigcommerce::ID_HEADER)).map(|id| format!("{source}:{id}"));
    if let Some(delivery) = &delivery {
        if api.ingest.delivery_seen(delivery).await? {
            let answer = api.ingest.seen_delivery_answer();
            return Ok(json_response(StatusCode::OK, &serde_json::to_value(answer).unwrap_or_default()));
        }
    }
    let fetched = match &to_fetch {
        Some((fetcher, what)) => Some(fetch(fetcher, what).await?),
        None => None,
    };
    let shop_currency = api.settings.sources.shop_currency.as_deref();
    let mapped =
        sources::map_fetched(source, &headers, &body, shop_currency, fetched.as_ref()).map_err(source_error)?;
    // Counts only: the payload holds contact data.
    tracing::info!(source = source.as_str(), events = mapped.len(), "source delivery mapped");
    let answer = api.ingest.ingest_mapped(mapped).await;
    let status = if answer.retry > 0 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    if let (Some(delivery), StatusCode::OK) = (&delivery, status) {
        // Not recorded, the retry fetches again: harmless, only a call more.
        if let Err(error) = api.ingest.record_delivery(delivery).await {
            tracing::warn!(%error, "source delivery not recorded as seen");
        }
    }
    let mut response = json_response(status, &serde_json::to_value(answer).unwrap_or_default());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(error::RETRY_AFTER_SECONDS));
    }
    Ok(response)
}

/// What a verified thin BigCommerce delivery names, from the configured
/// Management API. A failed fetch answers 503: BigCommerce retries the
/// delivery, and it is read then.
async fn fetch(
    fetcher: &sources::CartFetcher,
    what: &sources::bigcommerce::ToFetch,
) -> Result<sources::Fetched, ApiError> {
    sources::bigcommerce::fetch(&*fetcher.0, what).await.map_err(|error| {
        match error {
            // Every delivery fails alike until the token is fixed, and BigCommerce
            // deactivates a hook that keeps failing: the operator must act.
            sources::FetchError::Refused(_) => tracing::error!(
                %error,
                "BigCommerce refused the API token: check that it is the store's and has read access to Carts, \
                 Customers and Orders; thin deliveries are answered 503 until it is fixed"
            ),
            sources::FetchError::Failed(_) => {
                tracing::warn!(%error, "BigCommerce fetch failed; answered 503 for a retry")
            }
        }
        ApiError::Unavailable(format!(
            "what the webhook names could not be read from BigCommerce ({error}); retry later"
        ))
    })
}

fn source_error(error: SourceError) -> ApiError {
    match error {
        SourceError::Unknown(_) | SourceError::NotConfigured(_) => ApiError::NotFound(error.to_string()),
        SourceError::MissingSignature(_) | SourceError::BadSignature(_) | SourceError::Stale(_) => {
            ApiError::SourceUnauthorized(error.to_string())
        }
        SourceError::Payload(_) => ApiError::BadRequest(error.to_string()),
    }
}

/// The signature is checked before the cart id is looked at: `Signed`
/// rejects before this body runs, and a path that does not decode is
/// answered only to a signed caller.
async fn get_cart(
    State(api): State<Arc<Api>>,
    cart_id: Result<Path<String>, PathRejection>,
    _signed: Signed,
) -> Result<Response, ApiError> {
    let Path(cart_id) = cart_id.map_err(|_| ApiError::BadRequest("cart_id: not valid percent-encoded UTF-8".into()))?;
    let cart_id = CartId::from(cart_id);
    let record =
        api.store.get_cart(&cart_id).await?.ok_or_else(|| ApiError::NotFound(format!("no cart {cart_id:?}")))?;
    let timeline = api.store.timeline(&cart_id).await?;
    Ok(json_response(StatusCode::OK, &cart_view(&record, &timeline)))
}

/// The customer id of a `/v1/customers/{customer_id}` path, read after the
/// signature held.
fn customer_path(customer_id: Result<Path<String>, PathRejection>) -> Result<CustomerId, ApiError> {
    let Path(customer_id) =
        customer_id.map_err(|_| ApiError::BadRequest("customer_id: not valid percent-encoded UTF-8".into()))?;
    parse_id(&customer_id).map_err(|e| ApiError::BadRequest(format!("customer_id: {e}")))
}

/// Erases everything held about the customer (GDPR art. 17, CCPA; see
/// `cartback_core::customer_data`) and answers what went, per item type.
/// Idempotent: erasing again answers zeros.
async fn erase_customer(
    State(api): State<Arc<Api>>,
    customer_id: Result<Path<String>, PathRejection>,
    _signed: Signed,
) -> Result<Response, ApiError> {
    let customer_id = customer_path(customer_id)?;
    let erasure = api.store.erase_customer(&customer_id, api.clock.now()).await?;
    // Counts only: the id is the shop's, but a log has no need of it.
    tracing::info!(items = erasure.total(), "customer data erased");
    Ok(json_response(StatusCode::OK, &erasure_json(&customer_id, &erasure)))
}

/// Everything held about the customer as JSON (GDPR art. 15); 404 when
/// nothing is.
async fn export_customer(
    State(api): State<Arc<Api>>,
    customer_id: Result<Path<String>, PathRejection>,
    _signed: Signed,
) -> Result<Response, ApiError> {
    let customer_id = customer_path(customer_id)?;
    let data = api.store.customer_data(&customer_id).await?;
    if data.is_empty() {
        return Err(ApiError::NotFound(format!("nothing is held about customer {customer_id:?}")));
    }
    Ok(json_response(StatusCode::OK, &export_json(&data)))
}

/// Whether a code may be used at the storefront's checkout (see
/// `cartback_core::voucher::Voucher::check`): 200 with `valid` and the
/// reason, a bad field 400 naming it. Signed: an open route would let
/// anyone probe codes. Expiry is business time (`api.clock`).
async fn validate_voucher_code(State(api): State<Arc<Api>>, Signed(body): Signed) -> Result<Response, ApiError> {
    let request = ValidateRequest::parse(&body, api.clock.now())
        .map_err(|e| ApiError::BadRequest(format!("{}: {}", e.field, e.message)))?;
    let answer = validate_voucher(&*api.store, &request).await?;
    Ok(json_response(StatusCode::OK, &serde_json::to_value(answer).unwrap_or_default()))
}

/// The shop's app or SDK reporting a push opened or clicked (see
/// `cartback_core::service::record_app_report`): the signature first, then
/// the body (400 naming the field), then the message (404 unknown, 409
/// never sent). 200 says whether this report was the first of its kind
/// (`recorded`) or a repeat that changed nothing.
async fn post_engagement(State(api): State<Arc<Api>>, Signed(body): Signed) -> Result<Response, ApiError> {
    let report = AppReport::parse(&body, api.clock.now())
        .map_err(|e| ApiError::BadRequest(format!("{}: {}", e.field, e.message)))?;
    let (recorded, classified) = match record_app_report(&*api.store, &report).await? {
        EngagementOutcome::First(classified) => (true, classified),
        EngagementOutcome::Repeat { classified, .. } => (false, classified),
        EngagementOutcome::UnknownMessage => {
            return Err(ApiError::NotFound(format!("message_id: no message {:?}", report.message_id.as_str())))
        }
        EngagementOutcome::NotSent => {
            return Err(ApiError::NotSent(format!(
                "message_id: message {:?} was never sent (held out, cancelled, refused or still queued)",
                report.message_id.as_str()
            )))
        }
    };
    let answer = json!({ "message_id": report.message_id, "recorded": recorded, "label": classified.label });
    Ok(json_response(StatusCode::OK, &answer))
}

/// The measurement report (see `cartback_core::measure::report`): the
/// signature is checked first, then the parameters (400 naming the one at
/// fault), then the campaign (404).
async fn get_report(
    State(api): State<Arc<Api>>,
    params: Result<Query<BTreeMap<String, String>>, QueryRejection>,
    _signed: Signed,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|_| ApiError::BadRequest("the query string cannot be read".into()))?;
    let today = api.clock.now().date_naive();
    let query = parse_query(&params, today).map_err(report_error)?;
    let campaigns = api.ingest.campaigns.get().await?;
    let answer = report(&*api.store, &campaigns, &query, &api.settings.prices, today).await.map_err(report_error)?;
    Ok(json_response(StatusCode::OK, &serde_json::to_value(answer).unwrap_or_default()))
}

fn report_error(error: ReportError) -> ApiError {
    match error {
        ReportError::BadParameter { .. } => ApiError::BadRequest(error.to_string()),
        ReportError::UnknownCampaign(_) => ApiError::NotFound(error.to_string()),
        ReportError::Storage(e) => ApiError::Storage(e),
    }
}

/// A click on a tracked link: labelled (a person, or a link scanner by its
/// user agent or its speed) and counted on the message, one write however
/// often the link is followed; see `cartback_core::service::record_link_click`.
async fn redirect(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    token: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let now = api.clock.now();
    let invalid = || ApiError::NotFound("This link is not valid.".into());
    let Path(token) = token.map_err(|_| invalid())?;
    // An SMS's short token is looked up; one no longer stored has expired
    // (stores drop links after their expiry), and is answered as such.
    let claims = match ShortToken::parse(&token) {
        Some(short) => match api.store.short_link(&short).await.map_err(ApiError::Storage)? {
            Some(link) if now.timestamp() <= link.claims.expires => link.claims,
            _ => return Err(ApiError::LinkExpired),
        },
        None => match verify_link(&api.settings.secret, &token, now) {
            Ok(c) => c,
            Err(LinkError::Expired) => return Err(ApiError::LinkExpired),
            Err(_) => return Err(invalid()),
        },
    };
    // Failing to record a click must not break the link.
    let user_agent = headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
    if let Err(error) = record_link_click(&*api.store, &claims.message_id, &claims.cart_id, user_agent, now).await {
        tracing::warn!(%error, "click not recorded");
    }
    Ok((StatusCode::FOUND, [(LOCATION, claims.target.as_str()), (CACHE_CONTROL, "no-store")]).into_response())
}

/// The evaluation dashboard (see [`dashboard`]): only with a link from `cartback dashboard`, checked against
/// real time like request signatures (a virtual clock must not stretch or shorten a person's access).
/// Refusals and bad fields are answered as HTML, for a person reads them.
async fn dashboard_page(
    State(api): State<Arc<Api>>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Response {
    // A query string that does not decode carries no usable token either: answered as a missing link.
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let token = match dashboard_access(&api, &query) {
        Ok(token) => token,
        Err(refusal) => return *refusal,
    };
    let today = api.clock.now().date_naive();
    let campaigns = match api.ingest.campaigns.get().await {
        Ok(list) => list,
        Err(error) => return dashboard_failure(ApiError::Storage(error)),
    };
    let ids: Vec<String> = campaigns.iter().map(|c| c.id.clone()).collect();
    let form = match dashboard::DashboardForm::parse(&query, today) {
        Ok(form) => form,
        Err(error) => {
            // Show the form again with the defaults, and say which field to fix.
            let defaults = dashboard::DashboardForm::parse(&BTreeMap::new(), today).expect("defaults are valid");
            return html_response(StatusCode::BAD_REQUEST, dashboard::page(&defaults, token, &ids, Err(&error)));
        }
    };
    match report(&*api.store, &campaigns, &form.query, &api.settings.prices, today).await {
        Ok(answer) => html_response(StatusCode::OK, dashboard::page(&form, token, &ids, Ok(&answer))),
        Err(ReportError::UnknownCampaign(id)) => {
            let error = dashboard::FieldError { field: "campaign".into(), reason: format!("no campaign {id:?}") };
            html_response(StatusCode::NOT_FOUND, dashboard::page(&form, token, &ids, Err(&error)))
        }
        Err(error) => dashboard_failure(report_error(error)),
    }
}

/// The dashboard link's token in `query`, or the 401 page refusing a
/// missing, forged or expired one. Every dashboard page is behind it.
pub(crate) fn dashboard_access<'q>(api: &Api, query: &'q BTreeMap<String, String>) -> Result<&'q str, Box<Response>> {
    let token = query.get("token").map(String::as_str).unwrap_or_default();
    let refused = |sentence: &str| Box::new(html_response(StatusCode::UNAUTHORIZED, dashboard::refusal_page(sentence)));
    if token.is_empty() {
        return Err(refused("This page needs a dashboard link."));
    }
    match verify_dashboard_token(&api.settings.secret, token, api.wall_clock.now()) {
        Ok(_) => Ok(token),
        Err(LinkError::Expired) => Err(refused("This dashboard link has expired.")),
        Err(_) => Err(refused("This dashboard link is not valid.")),
    }
}

/// The claims of an unsubscribe token, checked against business time like
/// the other email links, or why it is refused.
fn unsubscribe_claims(
    api: &Api,
    token: Result<Path<String>, PathRejection>,
) -> Result<UnsubscribeClaims, preferences::TokenRefusal> {
    let Ok(Path(token)) = token else { return Err(preferences::TokenRefusal::Invalid) };
    verify_unsubscribe(&api.settings.secret, &token, api.clock.now()).map_err(|e| match e {
        LinkError::Expired => preferences::TokenRefusal::Expired,
        _ => preferences::TokenRefusal::Invalid,
    })
}

/// The HTML page refusing a token (400 malformed or forged, 410 expired); the token is never echoed.
fn token_refusal(refusal: preferences::TokenRefusal) -> Response {
    html_response(refusal.status(), preferences::error_page(refusal.sentence()))
}

/// `GET /u/{token}`: the preference page. Reading it changes nothing (link
/// scanners open links too).
async fn preference_page(State(api): State<Arc<Api>>, token: Result<Path<String>, PathRejection>) -> Response {
    match unsubscribe_claims(&api, token) {
        Ok(_) => html_response(StatusCode::OK, preferences::form_page()),
        Err(refusal) => token_refusal(refusal),
    }
}

/// `POST /u/{token}`: the one-click unsubscribe (RFC 8058) or the
/// preference form; see [`preferences`]. The token is checked first, then the form.
async fn post_preferences(
    State(api): State<Arc<Api>>,
    token: Result<Path<String>, PathRejection>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Response {
    let claims = match unsubscribe_claims(&api, token) {
        Ok(claims) => claims,
        Err(refusal) => return token_refusal(refusal),
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let sentence = format!("The form is too large: the limit is {MAX_BODY_BYTES} bytes.");
            return html_response(StatusCode::PAYLOAD_TOO_LARGE, preferences::failure_page(&sentence));
        }
        Err(_) => {
            return html_response(StatusCode::BAD_REQUEST, preferences::failure_page("The form could not be read."));
        }
    };
    let (choices, source, one_click) = match preferences::parse_submission(&body) {
        Ok(preferences::Submission::OneClick) => (Choices::one_click(), ConsentSource::UnsubscribeLink, true),
        Ok(preferences::Submission::Preferences(choices)) => (choices, ConsentSource::PreferencePage, false),
        Err(error) => {
            return html_response(StatusCode::BAD_REQUEST, preferences::error_page(&error.to_string()));
        }
    };
    let service = Preferences { store: api.store.clone(), clock: api.clock.clone() };
    match service.apply(&claims, &choices, source).await {
        Ok(_) if one_click => html_response(StatusCode::OK, preferences::one_click_page()),
        Ok(outcome) => html_response(StatusCode::OK, preferences::confirmation_page(&outcome)),
        Err(cause) => {
            // The cause is logged for an operator; the person learns only to retry.
            tracing::error!(error = %cause, "preferences not saved");
            let status = ApiError::Storage(cause).status();
            let sentence = "Your choices could not be saved right now. Please try again in a minute.";
            let mut response = html_response(status, preferences::failure_page(sentence));
            if status == StatusCode::SERVICE_UNAVAILABLE {
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(error::RETRY_AFTER_SECONDS));
            }
            response
        }
    }
}

/// A failure a person can only retry, as a sentence (the cause is logged, never shown).
pub(crate) fn dashboard_failure(error: ApiError) -> Response {
    let status = error.status();
    if let ApiError::Storage(cause) = &error {
        tracing::error!(error = %cause, "the dashboard's report failed");
    }
    html_response(status, dashboard::refusal_page(&error.to_string()))
}

/// An HTML answer that no cache keeps and no other origin frames or feeds: the page carries its access token.
pub(crate) fn html_response(status: StatusCode, body: String) -> Response {
    html_response_with(
        status,
        body,
        concat!(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; ",
            "frame-ancestors 'none'; base-uri 'none'"
        ),
    )
}

/// [`html_response`] under its own content security policy (a page that
/// frames another, a page framed).
pub(crate) fn html_response_with(status: StatusCode, body: String, policy: &'static str) -> Response {
    let headers = [
        (CONTENT_TYPE, "text/html; charset=utf-8"),
        (CACHE_CONTROL, "no-store"),
        (REFERRER_POLICY, "no-referrer"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (CONTENT_SECURITY_POLICY, policy),
    ];
    (status, headers, body).into_response()
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", shown_path(&uri)))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", shown_path(&uri)))
}

/// The path as an error may repeat it: a link's token (`/r/…`, `/u/…`)
/// stands for a customer and is never echoed.
fn shown_path(uri: &Uri) -> String {
    let path = uri.path();
    match ["/r/", "/u/"].into_iter().find(|prefix| path.starts_with(prefix)) {
        Some(prefix) => format!("{prefix}{{token}}"),
        None => path.to_owned(),
    }
}
