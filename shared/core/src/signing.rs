//! Request signatures and signed, expiring link tokens for the redirect and
//! restore-cart links.
//!
//! A request signature is `t=<unix seconds>,v2=<hex HMAC-SHA256>` over
//! `"<t>.<METHOD>.<path with query>.<raw body>"`, like Stripe's webhook
//! signatures bound to the request the way SigV4's canonical request is: a
//! captured signature is good for that one method, path and body, within a
//! five-minute replay window of real time. The legacy v1 (over
//! `"<t>.<body>"` only) is accepted on `POST /v1/events` alone, and can be
//! refused (`CARTBACK_ACCEPT_V1_SIGNATURES=false`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const SIGNATURE_HEADER: &str = "x-cartback-signature";
pub const REPLAY_WINDOW_SECONDS: i64 = 300;
/// Candidate signatures a header may carry (several allow secret rotation).
pub const MAX_SIGNATURES: usize = 5;

/// The shared secret. Sub-keys are derived per purpose so a link token can
/// never pass as a request signature.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, SignatureError> {
        let bytes = bytes.into();
        if bytes.len() < 16 {
            return Err(SignatureError::WeakSecret);
        }
        Ok(Secret(bytes))
    }

    fn mac(&self, purpose: &str) -> HmacSha256 {
        let mut derive = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        derive.update(purpose.as_bytes());
        let key = derive.finalize().into_bytes();
        HmacSha256::new_from_slice(&key).expect("HMAC takes any key length")
    }

    fn request_mac(&self) -> HmacSha256 {
        #[cfg(test)]
        tests::REQUEST_MACS.with(|n| n.set(n.get() + 1));
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Cartback-Signature header")]
    Missing,
    #[error("malformed X-Cartback-Signature header; expected t=<unix seconds>,v2=<64 hex digits>")]
    Malformed,
    #[error("the X-Cartback-Signature header carries more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    #[error("this request needs a v2 signature (over time, method, path with query and body); v1 is refused")]
    V2Required,
    #[error("signature timestamp is outside the 5-minute replay window")]
    Expired,
    #[error("signature does not match")]
    Mismatch,
    /// The signed string ends `<path>.<body>`: a body on a GET could move
    /// the split (`/v1/carts/a.b` + `` == `/v1/carts/a` + `b`), so reads
    /// are signed over an empty body and any other is refused.
    #[error("a GET or HEAD request must have an empty body")]
    BodyOnRead,
    #[error("the secret must be at least 16 bytes")]
    WeakSecret,
}

/// What a v2 signature covers besides its timestamp: the request as sent.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// Upper case, as in the request line (`GET`, `POST`).
    pub method: &'a str,
    /// The path and query as in the request line (`/v1/carts/cart%3A1?x=1`);
    /// the path is signed in its canonical form
    /// ([`canonical_path_and_query`]).
    pub path_and_query: &'a str,
    /// The raw body bytes (empty for a GET).
    pub body: &'a [u8],
}

/// The signature scheme a request passed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// HMAC-SHA256 over `"<t>.<body>"`: accepted only on `POST /v1/events`,
    /// for storefronts not yet moved to v2, unless switched off.
    V1,
    /// HMAC-SHA256 over `"<t>.<METHOD>.<path with query>.<body>"`.
    V2,
}

/// Whether a route still takes the legacy v1 scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    V2Only,
    V1OrV2,
}

const TAG_BYTES: usize = 32;
type Tag = [u8; TAG_BYTES];

fn v1_tag(secret: &Secret, timestamp: i64, body: &[u8]) -> Tag {
    let mut mac = secret.request_mac();
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Every byte but RFC 3986's unreserved characters is percent-encoded in a
/// canonical path segment (as in AWS SigV4's canonical URI).
const NOT_UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `text` with every byte but RFC 3986's unreserved characters
/// percent-encoded: safe in any part of a URL.
pub fn encode_url_component(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

/// The path as v2 signs it: each segment percent-decoded, then encoded with
/// one rule; the query stays as sent. A client and the server may spell one
/// path differently (`%3a` or `%3A` or `:`; API Gateway HTTP APIs even hand
/// the function the decoded path), and the signature must not depend on it.
pub fn canonical_path_and_query(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let mut canonical = path
        .split('/')
        .map(|segment| {
            let decoded: Vec<u8> = percent_encoding::percent_decode_str(segment).collect();
            percent_encoding::percent_encode(&decoded, NOT_UNRESERVED).to_string()
        })
        .collect::<Vec<_>>()
        .join("/");
    if let Some(query) = query {
        canonical.push('?');
        canonical.push_str(query);
    }
    canonical
}

fn v2_tag(secret: &Secret, timestamp: i64, request: &SignedRequest<'_>) -> Tag {
    let mut mac = secret.request_mac();
    let path_and_query = canonical_path_and_query(request.path_and_query);
    for part in [timestamp.to_string().as_bytes(), request.method.as_bytes(), path_and_query.as_bytes()] {
        mac.update(part);
        mac.update(b".");
    }
    mac.update(request.body);
    mac.finalize().into_bytes().into()
}

/// Signs a request the way clients must: `t=<t>,v2=<hex>`.
pub fn sign_request(secret: &Secret, timestamp: i64, request: &SignedRequest<'_>) -> String {
    format!("t={timestamp},v2={}", hex::encode(v2_tag(secret, timestamp, request)))
}

/// The legacy v1 signature over the body alone: `t=<t>,v1=<hex>`. Only
/// `POST /v1/events` takes it, and only while v1 is accepted.
pub fn sign_request_v1(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(v1_tag(secret, timestamp, body)))
}

/// A signature header, parsed: at most [`MAX_SIGNATURES`] well-formed
/// candidates, so what verifying it costs does not depend on the header.
struct Header<'a> {
    timestamp: i64,
    v1: Vec<&'a str>,
    v2: Vec<&'a str>,
}

fn parse_header(header: &str) -> Result<Header<'_>, SignatureError> {
    let mut timestamp = None;
    let (mut v1, mut v2) = (Vec::new(), Vec::new());
    let mut candidates = 0;
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        let list = match key {
            "t" if timestamp.is_none() => {
                timestamp = Some(value.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
                continue;
            }
            "t" => return Err(SignatureError::Malformed),
            "v1" => &mut v1,
            "v2" => &mut v2,
            // Other schemes are ignored (as Stripe does), so a client can
            // send a future scheme beside v2.
            _ => continue,
        };
        candidates += 1;
        if candidates > MAX_SIGNATURES {
            return Err(SignatureError::TooManySignatures);
        }
        list.push(value);
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if v1.is_empty() && v2.is_empty() {
        return Err(SignatureError::Malformed);
    }
    Ok(Header { timestamp, v1, v2 })
}

/// Each value must be exactly 64 hex digits (an empty one is malformed).
fn decode_tags(values: &[&str]) -> Result<Vec<Tag>, SignatureError> {
    values
        .iter()
        .map(|value| {
            let mut tag = [0u8; TAG_BYTES];
            hex::decode_to_slice(value, &mut tag).map_err(|_| SignatureError::Malformed)?;
            Ok(tag)
        })
        .collect()
}

/// Verifies a signature header within the replay window around `now` (real
/// time), in constant time. Each scheme's MAC is computed at most once,
/// whatever the header carries; several values of one scheme allow secret
/// rotation (any match passes).
pub fn verify_request(
    secret: &Secret,
    header: Option<&str>,
    request: &SignedRequest<'_>,
    now: DateTime<Utc>,
    accept: Accept,
) -> Result<Scheme, SignatureError> {
    let header = parse_header(header.ok_or(SignatureError::Missing)?)?;
    if matches!(request.method, "GET" | "HEAD") && !request.body.is_empty() {
        return Err(SignatureError::BodyOnRead);
    }
    // abs_diff: a subtraction overflows for t near i64::MIN (a panic in debug builds).
    if now.timestamp().abs_diff(header.timestamp) > REPLAY_WINDOW_SECONDS.unsigned_abs() {
        return Err(SignatureError::Expired);
    }
    let (v1, v2) = (decode_tags(&header.v1)?, decode_tags(&header.v2)?);
    let matches = |candidates: &[Tag], expected: Tag| candidates.iter().any(|c| constant_time_eq(c, &expected));
    if !v2.is_empty() && matches(&v2, v2_tag(secret, header.timestamp, request)) {
        return Ok(Scheme::V2);
    }
    match accept {
        Accept::V1OrV2 if !v1.is_empty() && matches(&v1, v1_tag(secret, header.timestamp, request.body)) => {
            Ok(Scheme::V1)
        }
        Accept::V2Only if header.v2.is_empty() => Err(SignatureError::V2Required),
        _ => Err(SignatureError::Mismatch),
    }
}

/// What a link token stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkClaims {
    /// Message the link was sent in (engagement is recorded against it).
    #[serde(rename = "m")]
    pub message_id: crate::ids::MessageId,
    #[serde(rename = "c")]
    pub cart_id: crate::ids::CartId,
    /// Where the redirect goes.
    #[serde(rename = "u")]
    pub target: String,
    /// Expiry, unix seconds.
    #[serde(rename = "x")]
    pub expires: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("link is malformed")]
    Malformed,
    #[error("link signature does not match")]
    BadSignature,
    #[error("link has expired")]
    Expired,
}

pub fn sign_link(secret: &Secret, claims: &LinkClaims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
    let mut mac = secret.mac("cartback-link-v1");
    mac.update(payload.as_bytes());
    let tag = URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16]);
    format!("{payload}.{tag}")
}

pub fn verify_link(secret: &Secret, token: &str, now: DateTime<Utc>) -> Result<LinkClaims, LinkError> {
    let (payload, tag) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| LinkError::Malformed)?;
    if tag.len() != 16 {
        return Err(LinkError::BadSignature);
    }
    let mut mac = secret.mac("cartback-link-v1");
    mac.update(payload.as_bytes());
    mac.verify_truncated_left(&tag).map_err(|_| LinkError::BadSignature)?;
    let claims: LinkClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| LinkError::Malformed)?)
            .map_err(|_| LinkError::Malformed)?;
    if now.timestamp() > claims.expires {
        return Err(LinkError::Expired);
    }
    Ok(claims)
}

/// The restore-cart token a storefront checks before rebuilding a cart on
/// any device: HMAC over "<cart_id>.<expiry>" with the restore sub-key.
pub fn restore_token(secret: &Secret, cart_id: &str, expires: i64) -> String {
    let mut mac = secret.mac("cartback-restore-v1");
    mac.update(format!("{cart_id}.{expires}").as_bytes());
    format!("{expires}.{}", hex::encode(&mac.finalize().into_bytes()[..16]))
}

pub fn verify_restore_token(secret: &Secret, cart_id: &str, token: &str, now: DateTime<Utc>) -> Result<(), LinkError> {
    let (expires, _) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let expires: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
    let expected = restore_token(secret, cart_id, expires);
    if !constant_time_eq(expected.as_bytes(), token.as_bytes()) {
        return Err(LinkError::BadSignature);
    }
    if now.timestamp() > expires {
        return Err(LinkError::Expired);
    }
    Ok(())
}

/// The dashboard access token (`cartback dashboard` prints a link with it):
/// `"<expiry unix seconds>.<hex HMAC>"` with the dashboard's own sub-key, so
/// neither a restore token nor a tracked link opens the dashboard.
pub fn dashboard_token(secret: &Secret, expires: i64) -> String {
    let mut mac = secret.mac("cartback-dashboard-v1");
    mac.update(expires.to_string().as_bytes());
    format!("{expires}.{}", hex::encode(&mac.finalize().into_bytes()[..16]))
}

/// Checks a dashboard token against real time; answers its expiry.
pub fn verify_dashboard_token(secret: &Secret, token: &str, now: DateTime<Utc>) -> Result<i64, LinkError> {
    let (expires, _) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let expires: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
    let expected = dashboard_token(secret, expires);
    if !constant_time_eq(expected.as_bytes(), token.as_bytes()) {
        return Err(LinkError::BadSignature);
    }
    if now.timestamp() > expires {
        return Err(LinkError::Expired);
    }
    Ok(expires)
}

/// How long an unsubscribe link works: 400 days. The law asks for at least
/// 30 (CAN-SPAM) and the issue for 60, but people unsubscribe from old mail
/// they find months later, and honouring a withdrawal late harms no one; 400
/// days also outlives the facts the report keeps, so every message still
/// counted can still be unsubscribed from.
pub const UNSUBSCRIBE_TTL_DAYS: i64 = 400;

/// What an unsubscribe token stands for: the message it was sent in, its
/// cart, and the customer (`None` for a guest cart, whose contact lives on
/// the cart). Short keys keep the token small enough for a mail header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsubscribeClaims {
    #[serde(rename = "m")]
    pub message_id: crate::ids::MessageId,
    #[serde(rename = "c")]
    pub cart_id: crate::ids::CartId,
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<crate::ids::CustomerId>,
    /// Expiry, unix seconds.
    #[serde(rename = "x")]
    pub expires: i64,
}

const UNSUBSCRIBE_PURPOSE: &str = "cartback-unsubscribe-v1";

/// `<base64url JSON claims>.<base64url 128-bit tag>` with the unsubscribe
/// sub-key: URL-safe, so it goes in `/u/{token}` as it is.
pub fn sign_unsubscribe(secret: &Secret, claims: &UnsubscribeClaims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
    let mut mac = secret.mac(UNSUBSCRIBE_PURPOSE);
    mac.update(payload.as_bytes());
    let tag = URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16]);
    format!("{payload}.{tag}")
}

/// Checks an unsubscribe token against business time; the tag is checked
/// before the payload is decoded, so nothing unsigned is ever parsed.
pub fn verify_unsubscribe(secret: &Secret, token: &str, now: DateTime<Utc>) -> Result<UnsubscribeClaims, LinkError> {
    let (payload, tag) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| LinkError::Malformed)?;
    if tag.len() != 16 {
        return Err(LinkError::BadSignature);
    }
    let mut mac = secret.mac(UNSUBSCRIBE_PURPOSE);
    mac.update(payload.as_bytes());
    mac.verify_truncated_left(&tag).map_err(|_| LinkError::BadSignature)?;
    let claims: UnsubscribeClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| LinkError::Malformed)?)
            .map_err(|_| LinkError::Malformed)?;
    if now.timestamp() > claims.expires {
        return Err(LinkError::Expired);
    }
    Ok(claims)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_one_path_spelled_three_ways_when_canonicalised_then_each_gives_the_same_signed_path() {
        // Upper- or lower-case escapes, an escaped unreserved character, or
        // the decoded form API Gateway HTTP APIs hand the function.
        for spelling in ["/v1/carts/shop%3Acart%C3%A4-1", "/v1/carts/shop%3acart%c3%a4%2D1", "/v1/carts/shop:cartä-1"]
        {
            assert_eq!(canonical_path_and_query(spelling), "/v1/carts/shop%3Acart%C3%A4-1", "{spelling}");
        }
    }

    #[test]
    fn given_an_escaped_slash_or_a_query_when_canonicalised_then_segments_and_query_stay_as_sent() {
        assert_eq!(canonical_path_and_query("/v1/carts/a%2Fb"), "/v1/carts/a%2Fb");
        assert_ne!(canonical_path_and_query("/v1/carts/a%2Fb"), canonical_path_and_query("/v1/carts/a/b"));
        assert_eq!(canonical_path_and_query("/v1/x?b=%3A&a=1"), "/v1/x?b=%3A&a=1");
        assert_eq!(canonical_path_and_query("/r/tok.en_~-"), "/r/tok.en_~-");
    }

    #[test]
    fn given_a_signature_over_the_encoded_path_when_the_server_sees_it_decoded_then_it_verifies() {
        let secret = Secret::new("s".repeat(32)).unwrap();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let header = sign_request(&secret, now.timestamp(), &get("/v1/carts/shop%3Acart%C3%A4"));
        assert!(verify_request(&secret, Some(&header), &get("/v1/carts/shop:cartä"), now, Accept::V2Only).is_ok());
        assert!(verify_request(&secret, Some(&header), &get("/v1/carts/shop:cartb"), now, Accept::V2Only).is_err());
    }

    thread_local! {
        /// Request MACs computed on this thread: the work a header can cost.
        pub(super) static REQUEST_MACS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// The request MACs `f` computes.
    fn macs_computed<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let before = REQUEST_MACS.with(|n| n.get());
        let out = f();
        (out, REQUEST_MACS.with(|n| n.get()) - before)
    }

    /// GIVEN a header with thousands of `v1=` values and a 1 MiB body (no secret needed to forge it)
    /// WHEN it is verified
    /// THEN it is refused without computing a single MAC; with the most values allowed, one MAC is computed.
    #[test]
    fn given_thousands_of_candidate_signatures_when_verified_then_the_work_is_bounded_by_one_mac() {
        let body = vec![b' '; 1024 * 1024];
        let bad = format!("v1={}", "ab".repeat(32));
        let many = format!("t=1700000000,{}", vec![bad.as_str(); 3000].join(","));
        let (answer, macs) = macs_computed(|| verify(Some(&many), &post(&body), at(1_700_000_000)));
        assert_eq!(answer, Err(SignatureError::TooManySignatures));
        assert_eq!(macs, 0, "thousands of candidates are refused before any MAC");
        let most = format!("t=1700000000,{}", [bad.as_str(); MAX_SIGNATURES].join(","));
        let (answer, macs) = macs_computed(|| verify(Some(&most), &post(&body), at(1_700_000_000)));
        assert_eq!(answer, Err(SignatureError::Mismatch));
        assert_eq!(macs, 1, "the MAC is computed once, whatever the number of candidates");
    }

    /// GIVEN empty or malformed candidate values WHEN verified THEN each is refused as malformed, with no MAC.
    #[test]
    fn given_empty_or_malformed_candidates_when_verified_then_they_are_refused_without_work() {
        let good = sign_request_v1(&secret(), 1_700_000_000, b"{}");
        for header in
            [format!("{good},v1="), "t=1700000000,v1=".to_owned(), format!("{good},v1=abc"), "t=,v1=00".to_owned()]
        {
            let (answer, macs) = macs_computed(|| verify(Some(&header), &post(b"{}"), at(1_700_000_000)));
            assert_eq!(answer, Err(SignatureError::Malformed), "{header}");
            assert_eq!(macs, 0, "{header}");
        }
    }

    fn secret() -> Secret {
        Secret::new(b"test-secret-0123456789".to_vec()).unwrap()
    }

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).unwrap()
    }

    fn post(body: &[u8]) -> SignedRequest<'_> {
        SignedRequest { method: "POST", path_and_query: "/v1/events", body }
    }

    fn get(path_and_query: &str) -> SignedRequest<'_> {
        SignedRequest { method: "GET", path_and_query, body: b"" }
    }

    fn verify(header: Option<&str>, request: &SignedRequest<'_>, now: DateTime<Utc>) -> Result<Scheme, SignatureError> {
        verify_request(&secret(), header, request, now, Accept::V1OrV2)
    }

    #[test]
    fn given_a_cart_read_signature_when_its_path_is_split_into_a_shorter_path_and_a_body_then_it_is_refused() {
        let header = sign_request(&secret(), 1_700_000_000, &get("/v1/carts/shop.123"));
        assert_eq!(verify(Some(&header), &get("/v1/carts/shop.123"), at(1_700_000_000)), Ok(Scheme::V2));
        // Same signed string "<t>.GET./v1/carts/shop.123." read another way.
        let moved = SignedRequest { method: "GET", path_and_query: "/v1/carts/shop", body: b"123." };
        assert_eq!(verify(Some(&header), &moved, at(1_700_000_000)), Err(SignatureError::BodyOnRead));
    }

    #[test]
    fn given_a_signed_body_when_verified_within_the_window_then_it_passes() {
        let header = sign_request_v1(&secret(), 1_700_000_000, b"{}");
        assert_eq!(verify(Some(&header), &post(b"{}"), at(1_700_000_100)), Ok(Scheme::V1));
        let header = sign_request(&secret(), 1_700_000_000, &post(b"{}"));
        assert_eq!(verify(Some(&header), &post(b"{}"), at(1_700_000_100)), Ok(Scheme::V2));
    }

    #[test]
    fn given_tampering_or_staleness_when_verified_then_each_is_refused_for_its_reason() {
        let header = sign_request_v1(&secret(), 1_700_000_000, b"{}");
        assert_eq!(verify(Some(&header), &post(b"{ }"), at(1_700_000_000)), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some(&header), &post(b"{}"), at(1_700_000_301)), Err(SignatureError::Expired));
        assert_eq!(verify(Some(&header), &post(b"{}"), at(1_699_999_600)), Err(SignatureError::Expired));
        assert_eq!(verify(None, &post(b"{}"), at(1_700_000_000)), Err(SignatureError::Missing));
        assert_eq!(verify(Some("v1=zz"), &post(b"{}"), at(1_700_000_000)), Err(SignatureError::Malformed));
        assert_eq!(verify(Some("t=1700000000"), &post(b"{}"), at(1_700_000_000)), Err(SignatureError::Malformed));
        let other = Secret::new(b"another-secret-987654".to_vec()).unwrap();
        let request = post(b"{}");
        assert_eq!(
            verify_request(&other, Some(&header), &request, at(1_700_000_000), Accept::V1OrV2),
            Err(SignatureError::Mismatch)
        );
    }

    /// GIVEN a captured v2 signature of `GET /v1/carts/A`
    /// WHEN it is replayed on another cart, another method, another query or another body
    /// THEN each is refused: the signature is bound to the request.
    #[test]
    fn given_a_captured_v2_signature_when_replayed_on_another_request_then_it_is_refused() {
        let header = sign_request(&secret(), 1_700_000_000, &get("/v1/carts/A"));
        let now = at(1_700_000_010);
        assert_eq!(verify(Some(&header), &get("/v1/carts/A"), now), Ok(Scheme::V2));
        assert_eq!(verify(Some(&header), &get("/v1/carts/B"), now), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some(&header), &get("/v1/carts/A?x=1"), now), Err(SignatureError::Mismatch));
        let delete = SignedRequest { method: "DELETE", path_and_query: "/v1/carts/A", body: b"" };
        assert_eq!(verify(Some(&header), &delete, now), Err(SignatureError::Mismatch));
        let posted = sign_request(&secret(), 1_700_000_000, &post(b"{}"));
        assert_eq!(verify(Some(&posted), &post(b"{ }"), now), Err(SignatureError::Mismatch));
    }

    /// GIVEN a v1 signature WHEN a route takes v2 only THEN it is refused and the answer says v2 is required;
    /// a v2 value beside it still passes.
    #[test]
    fn given_a_v1_signature_when_the_route_takes_v2_only_then_it_is_refused() {
        let v1 = sign_request_v1(&secret(), 1_700_000_000, b"");
        let now = at(1_700_000_000);
        assert_eq!(
            verify_request(&secret(), Some(&v1), &get("/v1/carts/A"), now, Accept::V2Only),
            Err(SignatureError::V2Required)
        );
        let v1 = sign_request_v1(&secret(), 1_700_000_000, b"{}");
        assert_eq!(
            verify_request(&secret(), Some(&v1), &post(b"{}"), now, Accept::V2Only),
            Err(SignatureError::V2Required)
        );
        let v2 = sign_request(&secret(), 1_700_000_000, &post(b"{}"));
        let both = format!("{v1},{}", v2.split_once(',').unwrap().1);
        assert_eq!(verify_request(&secret(), Some(&both), &post(b"{}"), now, Accept::V2Only), Ok(Scheme::V2));
    }

    #[test]
    fn given_a_timestamp_at_the_ends_of_i64_when_verified_then_it_is_refused_as_stale_without_overflow() {
        for t in [i64::MIN, i64::MIN + 1, i64::MAX] {
            let header = format!("t={t},v1=00");
            let verdict = verify(Some(&header), &post(b"{}"), at(1_700_000_000));
            assert_eq!(verdict, Err(SignatureError::Expired), "t={t}");
        }
    }

    #[test]
    fn given_a_link_token_when_verified_then_it_round_trips_until_it_expires() {
        let claims = LinkClaims {
            message_id: "m1".into(),
            cart_id: "c1".into(),
            target: "https://shop.example/p".into(),
            expires: 1_700_000_000,
        };
        let token = sign_link(&secret(), &claims);
        assert_eq!(verify_link(&secret(), &token, at(1_699_999_999)), Ok(claims));
        assert_eq!(verify_link(&secret(), &token, at(1_700_000_001)), Err(LinkError::Expired));
        let forged = format!("{}x", token);
        assert!(verify_link(&secret(), &forged, at(1_699_999_999)).is_err());
    }

    #[test]
    fn given_a_restore_token_when_checked_for_another_cart_then_it_is_refused() {
        let token = restore_token(&secret(), "c1", 1_700_000_000);
        assert_eq!(verify_restore_token(&secret(), "c1", &token, at(1_699_000_000)), Ok(()));
        assert_eq!(verify_restore_token(&secret(), "c2", &token, at(1_699_000_000)), Err(LinkError::BadSignature));
        assert_eq!(verify_restore_token(&secret(), "c1", &token, at(1_700_000_001)), Err(LinkError::Expired));
    }

    /// GIVEN a dashboard token WHEN checked before, after its expiry, altered, or as a restore token
    /// THEN only the unaltered token before its expiry opens the dashboard.
    #[test]
    fn given_a_dashboard_token_when_checked_then_only_the_unaltered_unexpired_token_passes() {
        let token = dashboard_token(&secret(), 1_700_000_000);
        assert_eq!(verify_dashboard_token(&secret(), &token, at(1_700_000_000)), Ok(1_700_000_000));
        assert_eq!(verify_dashboard_token(&secret(), &token, at(1_700_000_001)), Err(LinkError::Expired));
        let later = token.replacen("1700000000", "1800000000", 1);
        assert_eq!(verify_dashboard_token(&secret(), &later, at(1_700_000_000)), Err(LinkError::BadSignature));
        let restore = restore_token(&secret(), "", 1_700_000_000);
        assert_eq!(verify_dashboard_token(&secret(), &restore, at(1_699_000_000)), Err(LinkError::BadSignature));
        assert_eq!(verify_dashboard_token(&secret(), "nonsense", at(1_699_000_000)), Err(LinkError::Malformed));
        let other = Secret::new(b"another-secret-987654".to_vec()).unwrap();
        assert_eq!(verify_dashboard_token(&other, &token, at(1_699_000_000)), Err(LinkError::BadSignature));
    }

    fn unsubscribe_claims(customer: Option<&str>) -> UnsubscribeClaims {
        UnsubscribeClaims {
            message_id: "m_0123456789abcdef01234567".into(),
            cart_id: "shop:cart-1".into(),
            customer_id: customer.map(Into::into),
            expires: 1_700_000_000 + UNSUBSCRIBE_TTL_DAYS * 86_400,
        }
    }

    /// GIVEN unsubscribe tokens for a known customer and for a guest cart
    /// WHEN verified within their 400 days
    /// THEN each gives back its message, cart and customer, and is URL-safe and header-sized.
    #[test]
    fn given_an_unsubscribe_token_when_verified_then_it_round_trips_for_a_customer_and_a_guest() {
        for claims in [unsubscribe_claims(Some("cust-42")), unsubscribe_claims(None)] {
            let token = sign_unsubscribe(&secret(), &claims);
            assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)), "{token}");
            assert!(token.len() < 200, "{} characters", token.len());
            assert_eq!(verify_unsubscribe(&secret(), &token, at(1_700_000_000 + 60 * 86_400)), Ok(claims));
        }
    }

    /// GIVEN an unsubscribe token WHEN checked after its expiry THEN it is refused as expired.
    #[test]
    fn given_an_unsubscribe_token_past_its_expiry_when_verified_then_it_is_expired() {
        let claims = unsubscribe_claims(None);
        let token = sign_unsubscribe(&secret(), &claims);
        assert_eq!(verify_unsubscribe(&secret(), &token, at(claims.expires)), Ok(claims.clone()));
        assert_eq!(verify_unsubscribe(&secret(), &token, at(claims.expires + 1)), Err(LinkError::Expired));
    }

    /// GIVEN an unsubscribe token WHEN its claims are swapped for another cart's, its tag altered, or it is
    /// cut THEN it is refused.
    #[test]
    fn given_a_tampered_unsubscribe_token_when_verified_then_it_is_refused() {
        let token = sign_unsubscribe(&secret(), &unsubscribe_claims(Some("cust-42")));
        let (_, tag) = token.split_once('.').unwrap();
        let other = sign_unsubscribe(&secret(), &unsubscribe_claims(Some("cust-43")));
        let (other_payload, _) = other.split_once('.').unwrap();
        let now = at(1_700_000_000);
        assert_eq!(verify_unsubscribe(&secret(), &format!("{other_payload}.{tag}"), now), Err(LinkError::BadSignature));
        let flipped = if tag.starts_with('A') { tag.replacen('A', "B", 1) } else { format!("A{}", &tag[1..]) };
        let (payload, _) = token.split_once('.').unwrap();
        assert_eq!(verify_unsubscribe(&secret(), &format!("{payload}.{flipped}"), now), Err(LinkError::BadSignature));
        assert_eq!(verify_unsubscribe(&secret(), payload, now), Err(LinkError::Malformed));
        assert_eq!(verify_unsubscribe(&secret(), "", now), Err(LinkError::Malformed));
        let other_secret = Secret::new(b"another-secret-987654".to_vec()).unwrap();
        assert_eq!(verify_unsubscribe(&other_secret, &token, now), Err(LinkError::BadSignature));
    }

    /// GIVEN a tracked-link token, a restore token and a dashboard token
    /// WHEN presented as unsubscribe tokens (and the other way round)
    /// THEN each is refused: every purpose has its own sub-key.
    #[test]
    fn given_other_purposes_tokens_when_used_to_unsubscribe_then_they_are_refused() {
        let now = at(1_699_000_000);
        let target = "https://x".to_owned();
        let claims = LinkClaims { message_id: "m1".into(), cart_id: "c1".into(), target, expires: 1_700_000_000 };
        let link = sign_link(&secret(), &claims);
        assert_eq!(verify_unsubscribe(&secret(), &link, now), Err(LinkError::BadSignature));
        for token in [restore_token(&secret(), "c1", 1_700_000_000), dashboard_token(&secret(), 1_700_000_000)] {
            assert!(verify_unsubscribe(&secret(), &token, now).is_err(), "{token}");
        }
        let unsubscribe = sign_unsubscribe(&secret(), &unsubscribe_claims(None));
        assert_eq!(verify_link(&secret(), &unsubscribe, now), Err(LinkError::BadSignature));
        assert!(verify_dashboard_token(&secret(), &unsubscribe, now).is_err());
    }

    /// GIVEN a cart id with a space, a slash and a non-ASCII letter
    /// WHEN put into a restore URL
    /// THEN only RFC 3986's unreserved characters stay as they are.
    #[test]
    fn given_reserved_and_non_ascii_characters_when_encoded_for_a_url_then_only_unreserved_ones_stay() {
        assert_eq!(encode_url_component("cart 1/é-x_y.z~"), "cart%201%2F%C3%A9-x_y.z~");
    }
}
