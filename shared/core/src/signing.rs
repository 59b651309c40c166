//! Request signatures (HMAC-SHA256 over "<t>.<body>" with a replay window)
//! and signed, expiring link tokens for the redirect and restore-cart links.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const SIGNATURE_HEADER: &str = "x-cartback-signature";
pub const REPLAY_WINDOW_SECONDS: i64 = 300;

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
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Cartback-Signature header")]
    Missing,
    #[error("malformed X-Cartback-Signature header; expected t=<unix seconds>,v1=<hex HMAC-SHA256>")]
    Malformed,
    #[error("signature timestamp is outside the 5-minute replay window")]
    Expired,
    #[error("signature does not match")]
    Mismatch,
    #[error("the secret must be at least 16 bytes")]
    WeakSecret,
}

/// Signs a request body the way clients must: `t=<t>,v1=<hex>`.
pub fn sign_request(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = secret.request_mac();
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Verifies a signature header in constant time and within the replay window.
pub fn verify_request(secret: &Secret, header: Option<&str>, body: &[u8], now: DateTime<Utc>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => signatures.push(hex::decode(sig).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // abs_diff: a subtraction overflows for t near i64::MIN (a panic in debug builds).
    if now.timestamp().abs_diff(timestamp) > REPLAY_WINDOW_SECONDS.unsigned_abs() {
        return Err(SignatureError::Expired);
    }
    // Several v1 values allow secret rotation: any match passes.
    for signature in signatures {
        let mut mac = secret.request_mac();
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        if mac.verify_slice(&signature).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
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
    let claims: LinkClaims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| LinkError::Malformed)?)
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new(b"test-secret-0123456789".to_vec()).unwrap()
    }

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).unwrap()
    }

    #[test]
    fn given_a_signed_body_when_verified_within_the_window_then_it_passes() {
        let header = sign_request(&secret(), 1_700_000_000, b"{}");
        assert_eq!(verify_request(&secret(), Some(&header), b"{}", at(1_700_000_100)), Ok(()));
    }

    #[test]
    fn given_tampering_or_staleness_when_verified_then_each_is_refused_for_its_reason() {
        let header = sign_request(&secret(), 1_700_000_000, b"{}");
        assert_eq!(verify_request(&secret(), Some(&header), b"{ }", at(1_700_000_000)), Err(SignatureError::Mismatch));
        assert_eq!(verify_request(&secret(), Some(&header), b"{}", at(1_700_000_301)), Err(SignatureError::Expired));
        assert_eq!(verify_request(&secret(), Some(&header), b"{}", at(1_699_999_600)), Err(SignatureError::Expired));
        assert_eq!(verify_request(&secret(), None, b"{}", at(1_700_000_000)), Err(SignatureError::Missing));
        assert_eq!(verify_request(&secret(), Some("v1=zz"), b"{}", at(1_700_000_000)), Err(SignatureError::Malformed));
        assert_eq!(verify_request(&secret(), Some("t=1700000000"), b"{}", at(1_700_000_000)), Err(SignatureError::Malformed));
        let other = Secret::new(b"another-secret-987654".to_vec()).unwrap();
        assert_eq!(verify_request(&other, Some(&header), b"{}", at(1_700_000_000)), Err(SignatureError::Mismatch));
    }

    #[test]
    fn given_a_timestamp_at_the_ends_of_i64_when_verified_then_it_is_refused_as_stale_without_overflow() {
        for t in [i64::MIN, i64::MIN + 1, i64::MAX] {
            let header = format!("t={t},v1=00");
            let verdict = verify_request(&secret(), Some(&header), b"{}", at(1_700_000_000));
            assert_eq!(verdict, Err(SignatureError::Expired), "t={t}");
        }
    }

    #[test]
    fn given_a_link_token_when_verified_then_it_round_trips_until_it_expires() {
        let claims = LinkClaims { message_id: "m1".into(), cart_id: "c1".into(), target: "https://shop.example/p".into(), expires: 1_700_000_000 };
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
}
