//! Web push as browsers accept it, shared by both runtimes: the payload is
//! encrypted for the subscription (RFC 8291, `aes128gcm` of RFC 8188, by
//! `web-push-native`, pure RustCrypto), the request carries a VAPID JWT
//! signed with the shop's P-256 key (RFC 8292), and `TTL`, `Urgency` and
//! `Topic` (RFC 8030). The client is `ureq` (blocking, rustls), run on
//! tokio's blocking pool, like the outgoing webhooks.
//!
//! The push service's answer decides what happens next: 2xx sent; 404 or
//! 410 the subscription is gone ([`SendError::Gone`]); 429 and 5xx are
//! retried (here, after a short `Retry-After`; longer ones by the queue);
//! any other 4xx is refused for good.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use cartback_core::contact::WebPushSubscription;
use cartback_core::message::{MessageJob, Outgoing};
use cartback_core::ports::{SendError, Sender};
use chrono::{DateTime, Utc};
use p256::ecdsa::signature::Signer as _;
use sha2::{Digest as _, Sha256};

/// The file in the data folder that holds `cartback dev`'s VAPID key.
pub const KEY_FILE: &str = "vapid_private_key";
/// `true`: plain `http` endpoints on this machine are posted to (tests and
/// a local push service); a browser's endpoint is always https.
pub const ALLOW_HTTP_LOOPBACK_VAR: &str = "CARTBACK_WEB_PUSH_ALLOW_HTTP_LOOPBACK";
/// The VAPID public key as published (AWS: the ingest function serves it,
/// the push sender checks its secret matches).
pub const PUBLIC_KEY_VAR: &str = "CARTBACK_WEB_PUSH_PUBLIC_KEY";
/// The VAPID `sub` claim: how the push service reaches the shop.
pub const CONTACT_VAR: &str = "CARTBACK_WEB_PUSH_CONTACT";
/// Used when no contact is set (a push service may refuse it: set yours).
pub const DEFAULT_CONTACT: &str = "mailto:webpush@cartback.invalid";

/// How long the push service keeps an undelivered message: a day, well
/// inside a restore link's life, and what `exp` of the JWT may reach.
pub const TTL: Duration = Duration::from_secs(24 * 3600);
/// The JWT's lifetime: RFC 8292 allows at most 24 hours.
const JWT_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// One attempt's time limit, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A `Retry-After` up to this is waited for here; a longer one goes back
/// to the queue (a Lambda must not sleep through its batch).
const MAX_INLINE_WAIT: Duration = Duration::from_secs(5);
/// Attempts within one send (the queue retries after them).
const ATTEMPTS: u32 = 3;
/// RFC 8291: the push service must accept 4096 bytes of encrypted record;
/// 86 of them are the header, 17 the padding delimiter and tag.
const MAX_PLAINTEXT: usize = 4096 - 86 - 17;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the VAPID private key must be 32 bytes, base64url (as `web-push generate-vapid-keys` prints it)")]
    Malformed,
    #[error("the VAPID public key must be an uncompressed P-256 point (65 bytes, base64url, starting with B)")]
    MalformedPublic,
    #[error("the VAPID private key does not belong to the configured public key")]
    Mismatch,
    #[error("cannot read or write the VAPID key at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The shop's VAPID key pair (P-256). `Debug` never shows the private key.
#[derive(Clone)]
pub struct VapidKey {
    signing: p256::ecdsa::SigningKey,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VapidKey(public {})", self.public_key())
    }
}

impl VapidKey {
    pub fn generate() -> VapidKey {
        VapidKey { signing: p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng) }
    }

    /// From the base64url private scalar (padding and spaces tolerated).
    pub fn parse(text: &str) -> Result<VapidKey, KeyError> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim().trim_end_matches('=')).map_err(|_| KeyError::Malformed)?;
        let signing = p256::ecdsa::SigningKey::from_slice(&bytes).map_err(|_| KeyError::Malformed)?;
        Ok(VapidKey { signing })
    }

    /// The private key as stored (base64url): only for the key file.
    pub fn private_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signing.to_bytes())
    }

    /// The public key as a storefront passes it to `pushManager.subscribe`
    /// (`applicationServerKey`): the uncompressed point, base64url.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signing.verifying_key().to_encoded_point(false).as_bytes())
    }

    /// Checks a public key's form: an uncompressed P-256 point, base64url.
    pub fn parse_public(text: &str) -> Result<String, KeyError> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim().trim_end_matches('=')).map_err(|_| KeyError::MalformedPublic)?;
        let point = p256::PublicKey::from_sec1_bytes(&bytes).map_err(|_| KeyError::MalformedPublic)?;
        if bytes.len() != 65 {
            return Err(KeyError::MalformedPublic);
        }
        Ok(URL_SAFE_NO_PAD.encode(p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&point, false)))
    }

    /// The key in `dir/vapid_private_key`, made on first use (readable by
    /// the owner only) and the same ever after: subscriptions are bound to it.
    pub fn load_or_create(dir: &Path) -> Result<VapidKey, KeyError> {
        let path = dir.join(KEY_FILE);
        let io = |source| KeyError::Io { path: path.display().to_string(), source };
        match std::fs::read_to_string(&path) {
            Ok(text) => return VapidKey::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let key = VapidKey::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                std::io::Write::write_all(&mut file, format!("{}\n", key.private_key()).as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(key)
            }
            // Another process made it first: theirs is the key.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                VapidKey::parse(&std::fs::read_to_string(&path).map_err(io)?)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The `Authorization` header value: `vapid t=<JWT>, k=<public key>`
    /// with `aud` the endpoint's origin, `exp` `now` + 12 h and `sub`.
    pub fn authorization(&self, origin: &str, contact: &str, now: DateTime<Utc>) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let exp = now.timestamp() + JWT_LIFETIME.as_secs() as i64;
        let claims = serde_json::json!({ "aud": origin, "exp": exp, "sub": contact });
        let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        // ES256 in a JWS is r || s (64 bytes), not DER.
        let signature: p256::ecdsa::Signature = self.signing.sign(signing_input.as_bytes());
        let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        format!("vapid t={jwt}, k={}", self.public_key())
    }
}

/// Why a subscription or a payload cannot be sent (for good).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the web push subscription has no usable endpoint (https, or http to this machine when allowed)")]
    Endpoint,
    #[error("the web push subscription's keys.p256dh is not a P-256 public key")]
    P256dh,
    #[error("the web push subscription's keys.auth is not 16 bytes of base64url")]
    Auth,
    #[error("the web push payload is {0} bytes; at most {MAX_PLAINTEXT} fit one encrypted record")]
    TooLarge(usize),
    #[error("cannot encrypt the web push payload: {0}")]
    Encrypt(String),
}

/// RFC 8030 `Urgency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    VeryLow,
    Low,
    Normal,
    High,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

/// A push request as it goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct PushRequest {
    pub endpoint: String,
    pub headers: Vec<(&'static str, String)>,
    /// The `aes128gcm` record.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for PushRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The endpoint is a bearer capability: never printed.
        write!(f, "PushRequest({} bytes)", self.body.len())
    }
}

impl PushRequest {
    /// The request as the local outbox keeps it (the body base64).
    pub fn to_json(&self) -> serde_json::Value {
        let headers: serde_json::Map<String, serde_json::Value> =
            self.headers.iter().map(|(n, v)| ((*n).to_owned(), v.clone().into())).collect();
        serde_json::json!({ "method": "POST", "url": self.endpoint, "headers": headers, "body_base64": STANDARD.encode(&self.body) })
    }
}

/// `scheme://host[:port]` of an endpoint accepted by [`check_endpoint`].
fn origin(endpoint: &str) -> Option<String> {
    let (scheme, rest) = endpoint.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = match (scheme, authority.rsplit_once(':')) {
        ("https", Some((host, "443"))) | ("http", Some((host, "80"))) => host,
        _ => authority,
    };
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// https anywhere; plain http only to this machine, and only when allowed.
pub fn check_endpoint(endpoint: &str, allow_http_loopback: bool) -> Result<(), RequestError> {
    if !endpoint.starts_with("https://") && !allow_http_loopback {
        return Err(RequestError::Endpoint);
    }
    cartback_webhook::check_url("web_push_subscription.endpoint", endpoint).map_err(|_| RequestError::Endpoint)
}

/// A topic per cart (RFC 8030: at most 32 base64url characters): a newer
/// reminder for the same cart replaces one the browser has not fetched yet.
pub fn topic(cart_id: &str) -> String {
    let digest = Sha256::digest(cart_id.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..24])
}

/// Builds the encrypted, signed request for one subscription.
pub fn build_request(
    subscription: &WebPushSubscription,
    plaintext: &[u8],
    key: &VapidKey,
    contact: &str,
    topic: &str,
    allow_http_loopback: bool,
    now: DateTime<Utc>,
) -> Result<PushRequest, RequestError> {
    let raw = subscription.expose();
    let text = |pointer: &str| raw.pointer(pointer).and_then(serde_json::Value::as_str).unwrap_or_default();
    let endpoint = text("/endpoint");
    check_endpoint(endpoint, allow_http_loopback)?;
    let origin = origin(endpoint).ok_or(RequestError::Endpoint)?;
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok();
    let ua_public = decode(text("/keys/p256dh"))
        .and_then(|b| p256::PublicKey::from_sec1_bytes(&b).ok())
        .ok_or(RequestError::P256dh)?;
    let auth = decode(text("/keys/auth")).filter(|b| b.len() == 16).ok_or(RequestError::Auth)?;
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(RequestError::TooLarge(plaintext.len()));
    }
    let auth = web_push_native::Auth::clone_from_slice(&auth);
    let body = web_push_native::encrypt(plaintext.to_vec(), &ua_public, &auth)
        .map_err(|e| RequestError::Encrypt(e.to_string()))?;
    let headers = vec![
        ("Authorization", key.authorization(&origin, contact, now)),
        ("Content-Encoding", "aes128gcm".to_owned()),
        ("Content-Type", "application/octet-stream".to_owned()),
        ("TTL", TTL.as_secs().to_string()),
        ("Urgency", Urgency::Normal.as_str().to_owned()),
        ("Topic", topic.to_owned()),
    ];
    Ok(PushRequest { endpoint: endpoint.to_owned(), headers, body })
}

/// The JSON a service worker shows (`self.registration.showNotification`).
pub fn payload(job: &MessageJob) -> Option<serde_json::Value> {
    let Outgoing::WebPush { title, body, url, .. } = &job.outgoing else {
        return None;
    };
    Some(serde_json::json!({ "title": title, "body": body, "url": url, "message_id": job.message_id }))
}

/// What the push service answered to one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Accepted { location: Option<String> },
    Status { status: u16, retry_after: Option<Duration> },
}

/// `Retry-After` in seconds, or as an HTTP date.
fn retry_after(value: Option<&str>, now: DateTime<Utc>) -> Option<Duration> {
    let value = value?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or_default())
}

/// What an answer means for the message. `None`: try again.
fn classify(status: u16) -> Option<SendError> {
    let text = |why: &str| format!("the push service answered HTTP {status} ({why})");
    match status {
        404 | 410 => Some(SendError::Gone(text("the subscription expired or the browser unsubscribed"))),
        429 | 500..=599 => None,
        413 => Some(SendError::Permanent(text("payload too large"))),
        401 | 403 => Some(SendError::Permanent(text("the VAPID signature or key was refused"))),
        _ => Some(SendError::Permanent(text("the request was refused"))),
    }
}

/// Sends web push jobs (the push queue's web push half on both runtimes).
#[derive(Clone)]
pub struct WebPushSender {
    agent: ureq::Agent,
    key: Arc<VapidKey>,
    contact: String,
    allow_http_loopback: bool,
}

impl std::fmt::Debug for WebPushSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebPushSender({:?}, http loopback {})", self.key, self.allow_http_loopback)
    }
}

/// One send: the request as posted and the service's message location.
#[derive(Debug, Clone)]
pub struct Sent {
    pub request: PushRequest,
    pub location: Option<String>,
}

impl WebPushSender {
    pub fn new(key: VapidKey, contact: Option<&str>, allow_http_loopback: bool) -> WebPushSender {
        // A redirect is not an acceptance, and would carry the request elsewhere.
        let agent = ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).redirects(0).build();
        let contact = contact.map(str::trim).filter(|c| !c.is_empty()).unwrap_or(DEFAULT_CONTACT).to_owned();
        WebPushSender { agent, key: Arc::new(key), contact, allow_http_loopback }
    }

    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// Encrypts, signs and posts `job`, retrying 429 and 5xx answers here
    /// while their `Retry-After` is short.
    pub async fn deliver(&self, job: &MessageJob) -> Result<Sent, SendError> {
        let Outgoing::WebPush { subscription, .. } = &job.outgoing else {
            return Err(SendError::Permanent(format!("the web push sender got a {} job", job.channel.as_str())));
        };
        let plaintext = payload(job).map(|p| p.to_string()).unwrap_or_default();
        // The JWT is checked against the push service's clock: the wall
        // clock signs it, never the runtime's (`cartback dev` may run fast).
        let request = build_request(
            subscription,
            plaintext.as_bytes(),
            &self.key,
            &self.contact,
            &topic(job.cart_id.as_str()),
            self.allow_http_loopback,
            Utc::now(),
        )
        .map_err(|e| SendError::Permanent(e.to_string()))?;
        let mut waited = Duration::ZERO;
        for attempt in 1..=ATTEMPTS {
            let (agent, owned) = (self.agent.clone(), request.clone());
            let answer = tokio::task::spawn_blocking(move || post(&agent, &owned))
                .await
                .map_err(|e| SendError::Retryable(format!("the push request did not complete: {e}")))??;
            let (status, after) = match answer {
                Answer::Accepted { location } => {
                    tracing::info!(message_id = %job.message_id, attempt, "web push accepted");
                    return Ok(Sent { request, location });
                }
                Answer::Status { status, retry_after } => (status, retry_after),
            };
            if let Some(error) = classify(status) {
                tracing::warn!(message_id = %job.message_id, status, "web push refused");
                return Err(error);
            }
            let wait = after.unwrap_or(Duration::from_millis(200 * u64::from(attempt)));
            if attempt == ATTEMPTS || waited + wait > MAX_INLINE_WAIT {
                let later = after.map_or_else(String::new, |d| format!("; Retry-After {} s", d.as_secs()));
                return Err(SendError::Retryable(format!("the push service answered HTTP {status}{later}")));
            }
            tracing::info!(message_id = %job.message_id, status, wait_ms = wait.as_millis() as u64, "web push retried");
            tokio::time::sleep(wait).await;
            waited += wait;
        }
        unreachable!("the last attempt returns")
    }
}

/// One attempt. Errors name the status or the kind of transport failure,
/// never the endpoint (a bearer capability).
fn post(agent: &ureq::Agent, request: &PushRequest) -> Result<Answer, SendError> {
    let mut call = agent.post(&request.endpoint);
    for (name, value) in &request.headers {
        call = call.set(name, value);
    }
    match call.send_bytes(&request.body) {
        Ok(response) if (200..300).contains(&response.status()) => {
            Ok(Answer::Accepted { location: response.header("Location").map(str::to_owned) })
        }
        Ok(response) => Ok(Answer::Status { status: response.status(), retry_after: None }),
        Err(ureq::Error::Status(status, response)) => {
            Ok(Answer::Status { status, retry_after: retry_after(response.header("Retry-After"), Utc::now()) })
        }
        Err(ureq::Error::Transport(transport)) => {
            let kind = transport.kind();
            let text = format!("web push transport: {kind}");
            match kind {
                // Nothing reached the push service.
                ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed => Err(SendError::Retryable(text)),
                ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => Err(SendError::Permanent(text)),
                // Sent, answer lost: it may have been taken.
                _ => Err(SendError::Unknown(text)),
            }
        }
    }
}

#[async_trait]
impl Sender for WebPushSender {
    async fn send(&self, job: &MessageJob, _now: DateTime<Utc>) -> Result<String, SendError> {
        let sent = self.deliver(job).await?;
        Ok(sent.location.unwrap_or_else(|| format!("webpush-{}", job.message_id)))
    }
}

#[cfg(test)]
mod tests;
