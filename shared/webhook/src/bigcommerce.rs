//! BigCommerce's Management API, read for what a thin webhook names (see
//! `cartback_core::sources::bigcommerce`), with the API account's token in
//! `X-Auth-Token`: a `store/cart/*` cart
//! (`GET {api}/stores/{store_hash}/v3/carts/{id}?include=line_items.physical_items.options`)
//! and for a registered customer's cart the customer
//! (`GET {api}/stores/{store_hash}/v3/customers?id:in={customer_id}`); a
//! `store/order/*` order (`GET …/v2/orders/{id}` and
//! `…/v2/orders/{id}/products?limit=250`, one page: more lines than an event holds);
//! a refund's order's refunds (`GET …/v3/orders/{id}/payment_actions/refunds`).
//! One or two short requests per thin delivery, on tokio's blocking pool.

use std::io::Read;
use std::sync::Arc;

use async_trait::async_trait;
use cartback_core::sources::{CartFetch, CartFetcher, FetchError, FetchedCart, FetchedOrder};
use serde_json::Value;

use crate::{check_url, REQUEST_TIMEOUT};

/// The store whose carts are fetched; with a token, turns the fetch on.
pub const STORE_HASH_VAR: &str = "CARTBACK_BIGCOMMERCE_STORE_HASH";
/// The API account's access token (scopes: Carts, Customers and Orders, read-only). On AWS the
/// ingest function reads it from Secrets Manager instead (`..._TOKEN_ARN`).
pub const TOKEN_VAR: &str = "CARTBACK_BIGCOMMERCE_API_TOKEN";
/// Where the API is (tests point it at a local fake).
pub const API_URL_VAR: &str = "CARTBACK_BIGCOMMERCE_API_URL";
pub const DEFAULT_API_URL: &str = "https://api.bigcommerce.com";
/// A cart answer larger than this is refused (a cart holds at most a few
/// hundred lines; Cartback keeps 300 items an event).
const MAX_ANSWER_BYTES: u64 = 1024 * 1024;
/// Order lines read (v2's largest page).
const PRODUCTS_PAGE: usize = 250;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BigCommerceSettingError {
    #[error("{STORE_HASH_VAR} must be the store hash of the API path (letters and digits, e.g. abc123)")]
    StoreHash,
    #[error("{var} must be the API account's access token (no spaces)")]
    Token { var: &'static str },
    #[error("{var} is required when {STORE_HASH_VAR} is set (the API account's access token)")]
    MissingToken { var: &'static str },
    #[error("{var} is set but {STORE_HASH_VAR} is not: set the store hash to turn the cart fetch on, or unset {var}")]
    WithoutStoreHash { var: &'static str },
    #[error(transparent)]
    Url(#[from] crate::SettingError),
}

/// The store whose API is read and where that API is, checked: the store
/// hash (letters and digits: it is a path segment) and the API's URL
/// (https, or http to this machine; default BigCommerce's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigCommerceStore {
    pub store_hash: String,
    pub api_url: String,
}

impl BigCommerceStore {
    pub fn parse(store_hash: &str, api_url: Option<&str>) -> Result<BigCommerceStore, BigCommerceSettingError> {
        let store_hash = store_hash.trim();
        if store_hash.is_empty() || !store_hash.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(BigCommerceSettingError::StoreHash);
        }
        let api_url = api_url.map(str::trim).filter(|u| !u.is_empty()).unwrap_or(DEFAULT_API_URL);
        check_url(API_URL_VAR, api_url)?;
        Ok(BigCommerceStore { store_hash: store_hash.to_owned(), api_url: api_url.trim_end_matches('/').to_owned() })
    }
}

/// Where and how carts are fetched: `None` when no store hash is set.
#[derive(Clone, PartialEq, Eq)]
pub struct BigCommerceSettings {
    pub store_hash: String,
    token: String,
    pub api_url: String,
}

impl std::fmt::Debug for BigCommerceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BigCommerceSettings")
            .field("store_hash", &self.store_hash)
            .field("token", &"***")
            .field("api_url", &self.api_url)
            .finish()
    }
}

impl BigCommerceSettings {
    /// From the values as set (empty counts as unset); `token_var` names
    /// where the token came from, for the error.
    pub fn parse(
        store_hash: Option<&str>,
        token: Option<&str>,
        token_var: &'static str,
        api_url: Option<&str>,
    ) -> Result<Option<BigCommerceSettings>, BigCommerceSettingError> {
        let set = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let (store_hash, token, api_url) = (set(store_hash), set(token), set(api_url));
        let Some(store_hash) = store_hash else {
            // A half-made setting is a mistake, not an intent to turn it off.
            return match (token, api_url) {
                (Some(_), _) => Err(BigCommerceSettingError::WithoutStoreHash { var: token_var }),
                (None, Some(_)) => Err(BigCommerceSettingError::WithoutStoreHash { var: API_URL_VAR }),
                (None, None) => Ok(None),
            };
        };
        let store = BigCommerceStore::parse(&store_hash, api_url.as_deref())?;
        let token = token.ok_or(BigCommerceSettingError::MissingToken { var: token_var })?;
        BigCommerceSettings::with_token(store, &token, token_var).map(Some)
    }

    /// The settings of a store checked before (on AWS at start, while the
    /// token is read from Secrets Manager only at cold start).
    pub fn with_token(
        store: BigCommerceStore,
        token: &str,
        token_var: &'static str,
    ) -> Result<BigCommerceSettings, BigCommerceSettingError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(BigCommerceSettingError::MissingToken { var: token_var });
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(BigCommerceSettingError::Token { var: token_var });
        }
        let BigCommerceStore { store_hash, api_url } = store;
        Ok(BigCommerceSettings { store_hash, token: token.to_owned(), api_url })
    }

    /// The fetcher the source route uses.
    pub fn fetcher(&self) -> CartFetcher {
        // A redirect would carry the token elsewhere: not followed.
        let agent = ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).redirects(0).build();
        CartFetcher(Arc::new(BigCommerceCarts { agent, settings: self.clone() }))
    }
}

/// Reads carts from the Management API.
struct BigCommerceCarts {
    agent: ureq::Agent,
    settings: BigCommerceSettings,
}

#[async_trait]
impl CartFetch for BigCommerceCarts {
    async fn fetch_cart(&self, cart_id: &str) -> Result<Option<FetchedCart>, FetchError> {
        // Cart ids are UUIDs; anything else is no cart of this API (and
        // must not reach the request path).
        if cart_id.is_empty() || !cart_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Ok(None);
        }
        let s = &self.settings;
        let url = format!(
            "{}/stores/{}/v3/carts/{cart_id}?include=line_items.physical_items.options",
            s.api_url, s.store_hash
        );
        let Some(cart) = self.get(url).await? else { return Ok(None) };
        let Some(cart) = cart.get("data").filter(|c| c.is_object()).cloned() else {
            return Err(FetchError::Failed("BigCommerce's answer has no cart in `data`".into()));
        };
        // A registered customer's consent and contact data are on the
        // customer, not the cart; 0 is a guest.
        let customer = match cart.get("customer_id").and_then(Value::as_u64).filter(|id| *id > 0) {
            None => None,
            Some(id) => {
                let url = format!("{}/stores/{}/v3/customers?id:in={id}", s.api_url, s.store_hash);
                match self.get(url).await? {
                    Some(answer) => match answer.get("data") {
                        Some(Value::Array(found)) => found.first().filter(|c| c.is_object()).cloned(),
                        _ => {
                            return Err(FetchError::Failed(
                                "BigCommerce's answer has no customer list in `data`".into(),
                            ))
                        }
                    },
                    None => None,
                }
            }
        };
        Ok(Some(FetchedCart { cart, customer }))
    }

    async fn fetch_order(&self, order_id: &str) -> Result<Option<FetchedOrder>, FetchError> {
        // Order ids are numbers; anything else is no order of this API.
        if !numeric(order_id) {
            return Ok(None);
        }
        let s = &self.settings;
        let Some(order) = self.get(format!("{}/stores/{}/v2/orders/{order_id}", s.api_url, s.store_hash)).await? else {
            return Ok(None);
        };
        if !order.is_object() {
            return Err(FetchError::Failed("BigCommerce's answer is not an order".into()));
        }
        // v2 lists 50 lines a page unless asked for more; 250, its largest
        // page, is more than an event may hold (200 items).
        let url = format!("{}/stores/{}/v2/orders/{order_id}/products?limit={PRODUCTS_PAGE}", s.api_url, s.store_hash);
        let products = match self.get(url).await? {
            Some(Value::Array(lines)) => lines,
            // No content: an order without lines (v2 answers 204 for an empty list).
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(FetchError::Failed("BigCommerce's answer is not a list of order products".into())),
        };
        if products.len() >= PRODUCTS_PAGE {
            tracing::warn!(
                lines = products.len(),
                "BigCommerce order has a full page of lines; later pages are not read"
            );
        }
        Ok(Some(FetchedOrder { order, products }))
    }

    async fn fetch_refunds(&self, order_id: &str) -> Result<Option<Vec<Value>>, FetchError> {
        if !numeric(order_id) {
            return Ok(None);
        }
        let s = &self.settings;
        let url = format!("{}/stores/{}/v3/orders/{order_id}/payment_actions/refunds", s.api_url, s.store_hash);
        let Some(answer) = self.get(url).await? else { return Ok(None) };
        match answer.get("data") {
            Some(Value::Array(refunds)) => Ok(Some(refunds.clone())),
            _ => Err(FetchError::Failed("BigCommerce's answer has no refund list in `data`".into())),
        }
    }
}

fn numeric(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

impl BigCommerceCarts {
    async fn get(&self, url: String) -> Result<Option<Value>, FetchError> {
        let (agent, token) = (self.agent.clone(), self.settings.token.clone());
        tokio::task::spawn_blocking(move || get_json(&agent, &url, &token))
            .await
            .map_err(|e| FetchError::Failed(format!("the request did not complete: {e}")))?
    }
}

/// One attempt: the answer's JSON, `None` for 404. Errors name the status
/// or the kind of transport failure, never the URL or the answer (it holds
/// the shopper's email).
fn get_json(agent: &ureq::Agent, url: &str, token: &str) -> Result<Option<Value>, FetchError> {
    let request = agent.get(url).set("X-Auth-Token", token).set("Accept", "application/json");
    match request.call() {
        Ok(response) if response.status() == 204 => Ok(Some(Value::Null)),
        Ok(response) if response.status() == 200 => {
            let mut bytes = Vec::new();
            response
                .into_reader()
                .take(MAX_ANSWER_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| FetchError::Failed(format!("BigCommerce's answer could not be read: {}", e.kind())))?;
            if bytes.len() as u64 > MAX_ANSWER_BYTES {
                return Err(FetchError::Failed(format!(
                    "BigCommerce's answer is larger than {MAX_ANSWER_BYTES} bytes"
                )));
            }
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| FetchError::Failed("BigCommerce's answer is not JSON".into()))
        }
        Ok(response) => Err(FetchError::Failed(format!(
            "BigCommerce answered HTTP {} (redirects are not followed)",
            response.status()
        ))),
        // The cart is gone (converted or deleted since): nothing to read, now or later.
        Err(ureq::Error::Status(404, _)) => Ok(None),
        Err(ureq::Error::Status(status @ (401 | 403), _)) => {
            Err(FetchError::Refused(format!("BigCommerce refused the API token (HTTP {status})")))
        }
        Err(ureq::Error::Status(status, _)) => Err(FetchError::Failed(format!("BigCommerce answered HTTP {status}"))),
        Err(ureq::Error::Transport(transport)) => {
            Err(FetchError::Failed(format!("BigCommerce could not be reached: {}", transport.kind())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_bigcommerce_values_when_parsed_then_half_made_or_malformed_settings_name_the_variable() {
        // GIVEN nothing set THEN the fetch is off
        assert_eq!(BigCommerceSettings::parse(None, None, TOKEN_VAR, None), Ok(None));
        // GIVEN a store hash and a token THEN the default API
        let settings = BigCommerceSettings::parse(Some("abc123"), Some("tok_0123"), TOKEN_VAR, None).unwrap().unwrap();
        assert_eq!(settings.api_url, DEFAULT_API_URL);
        assert_eq!(settings.store_hash, "abc123");
        assert!(!format!("{settings:?}").contains("tok_0123"), "Debug hides the token");
        // GIVEN half a setting THEN an error naming what is missing
        let missing = BigCommerceSettings::parse(Some("abc123"), None, TOKEN_VAR, None).unwrap_err();
        assert!(missing.to_string().starts_with(TOKEN_VAR), "{missing}");
        let orphan = BigCommerceSettings::parse(None, Some("tok"), TOKEN_VAR, None).unwrap_err();
        assert!(orphan.to_string().starts_with(TOKEN_VAR), "{orphan}");
        // GIVEN a hash that would change the path, or a clear-text API elsewhere THEN refused
        assert_eq!(
            BigCommerceSettings::parse(Some("abc/../x"), Some("tok"), TOKEN_VAR, None),
            Err(BigCommerceSettingError::StoreHash)
        );
        let clear = BigCommerceSettings::parse(Some("abc"), Some("tok"), TOKEN_VAR, Some("http://api.example.com"));
        assert!(clear.unwrap_err().to_string().starts_with(API_URL_VAR));
        let local = BigCommerceSettings::parse(Some("abc"), Some("tok"), TOKEN_VAR, Some("http://127.0.0.1:9/"));
        assert_eq!(local.unwrap().unwrap().api_url, "http://127.0.0.1:9");
    }

    /// GIVEN a store checked once (as the AWS configuration does at start) WHEN the token read at cold start is
    /// added THEN the settings are those `parse` makes from the same values; an empty or spaced token is
    /// refused naming where it came from.
    #[test]
    fn given_a_checked_store_when_the_token_is_added_then_the_settings_equal_a_full_parse() {
        let store = BigCommerceStore::parse("abc123", Some("http://127.0.0.1:9/")).unwrap();
        let parsed = BigCommerceSettings::parse(Some("abc123"), Some("tok"), TOKEN_VAR, Some("http://127.0.0.1:9/"));
        assert_eq!(BigCommerceSettings::with_token(store.clone(), " tok ", TOKEN_VAR), Ok(parsed.unwrap().unwrap()));
        let spaced = BigCommerceSettings::with_token(store.clone(), "to k", "CARTBACK_BIGCOMMERCE_API_TOKEN_ARN");
        assert!(spaced.unwrap_err().to_string().starts_with("CARTBACK_BIGCOMMERCE_API_TOKEN_ARN"));
        assert!(BigCommerceSettings::with_token(store, "", TOKEN_VAR).is_err());
        assert_eq!(BigCommerceStore::parse("", None), Err(BigCommerceSettingError::StoreHash));
    }
}
