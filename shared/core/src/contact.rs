//! Contact data: the types that carry it, and the checks shared by event
//! conversion and the decision engine.
//!
//! [`Email`], [`Phone`], [`DeviceToken`] and [`WebPushSubscription`] print
//! redacted through both `Debug` and `Display`, so a `?job` or `%patch` in a
//! log line cannot leak them; a sender asks for the value with `expose()`.
//! They serialise as the plain value (stored and queued formats unchanged).
//! `parse` is for input from outside; `From` is for values Cartback stored
//! itself after parsing, and for tests.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::event::PushPlatform;

macro_rules! redacted_text {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The value itself, for the sender that delivers to it. Never log it.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                $name(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                $name(value.to_owned())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), redact(&self.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&redact(&self.0))
            }
        }
    };
}

redacted_text!(
    /// A deliverable email address (domain lower-cased).
    Email
);
redacted_text!(
    /// A phone number in E.164 form, e.g. `+14155550123`.
    Phone
);
redacted_text!(
    /// A mobile push token (APNs or FCM).
    DeviceToken
);

/// Why an email address cannot be mailed. Like every contact error, it never
/// quotes the value: the message may reach a log or a cart's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is not a valid email address")]
pub struct EmailError;

/// Why a phone number cannot be texted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a valid phone number in E.164 form, e.g. +14155550123")]
pub struct PhoneError;

/// Why a push token cannot reach a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeviceTokenError {
    #[error("must be a non-empty string")]
    Empty,
    #[error("must be the device token APNs issued: hexadecimal, at least 64 digits")]
    NotApns,
    #[error("must be the registration token FCM issued: letters, digits, '-', '_' and ':' only")]
    NotFcm,
}

/// Why a browser push subscription cannot be pushed to; names the part of
/// the `PushSubscription` JSON at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebPushError {
    #[error("must be the browser's PushSubscription object")]
    NotAnObject,
    #[error("must be the browser's https push endpoint")]
    Endpoint,
    #[error("must be the subscription's P-256 public key, 65 bytes in base64url")]
    P256dh,
    #[error("must be the subscription's authentication secret, 16 bytes in base64url")]
    Auth,
}

impl WebPushError {
    /// The part of the subscription at fault, as a path below it ("" for the whole).
    pub fn part(self) -> &'static str {
        match self {
            WebPushError::NotAnObject => "",
            WebPushError::Endpoint => "endpoint",
            WebPushError::P256dh => "keys.p256dh",
            WebPushError::Auth => "keys.auth",
        }
    }
}

impl Email {
    /// Normalises and checks an address from outside.
    pub fn parse(raw: &str) -> Result<Email, EmailError> {
        normalise_email(raw).map(Email).ok_or(EmailError)
    }
}

impl Phone {
    /// Parses a number with its country code into E.164.
    pub fn parse(raw: &str) -> Result<Phone, PhoneError> {
        normalise_e164(raw).map(Phone).ok_or(PhoneError)
    }
}

impl DeviceToken {
    /// Checks a token from outside against the form its platform issues:
    /// APNs tokens are hexadecimal (32 bytes today; Apple may lengthen
    /// them), FCM registration tokens are URL-safe text with colons.
    pub fn parse(platform: PushPlatform, raw: &str) -> Result<DeviceToken, DeviceTokenError> {
        let token = raw.trim();
        if token.is_empty() {
            return Err(DeviceTokenError::Empty);
        }
        let well_formed = match platform {
            PushPlatform::Apns => token.len() >= 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
            PushPlatform::Fcm => token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_:".contains(&b)),
        };
        match (well_formed, platform) {
            (true, _) => Ok(DeviceToken(token.to_owned())),
            (false, PushPlatform::Apns) => Err(DeviceTokenError::NotApns),
            (false, PushPlatform::Fcm) => Err(DeviceTokenError::NotFcm),
        }
    }
}

/// A browser's `PushSubscription` JSON. Parsed from outside, it holds
/// exactly `{"endpoint", "keys": {"p256dh", "auth"}}`: whatever else the
/// sender put beside them is left out, so nothing free-form is stored.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebPushSubscription(serde_json::Value);

impl WebPushSubscription {
    /// Parses the browser's `PushSubscription.toJSON()`: an https endpoint
    /// (or plain http to this machine, for a local push service),
    /// the P-256 public key (65 bytes, uncompressed) and the 16-byte
    /// authentication secret, both base64url as browsers write them (RFC 8291).
    pub fn parse(raw: &serde_json::Value) -> Result<WebPushSubscription, WebPushError> {
        if !raw.is_object() {
            return Err(WebPushError::NotAnObject);
        }
        let endpoint = raw.get("endpoint").and_then(serde_json::Value::as_str).unwrap_or_default();
        // Plain http only to this machine: a local push service (tests, a
        // developer's); senders refuse it unless told to allow it.
        let loopback =
            ["http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:", "http://localhost/", "http://[::1]"]
                .iter()
                .find_map(|prefix| endpoint.strip_prefix(prefix).map(|_| &endpoint["http://".len()..]));
        let host_follows = endpoint.strip_prefix("https://").or(loopback).is_some_and(|rest| {
            !rest.is_empty() && !rest.starts_with('/') && !rest.contains(|c: char| c.is_whitespace() || c.is_control())
        });
        if !host_follows {
            return Err(WebPushError::Endpoint);
        }
        let key = |name: &str, bytes: usize| {
            let text = raw.pointer(&format!("/keys/{name}")).and_then(serde_json::Value::as_str)?;
            let decoded = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()?;
            (decoded.len() == bytes).then(|| (text.to_owned(), decoded))
        };
        let p256dh = key("p256dh", 65).filter(|(_, point)| point[0] == 0x04).ok_or(WebPushError::P256dh)?.0;
        let auth = key("auth", 16).ok_or(WebPushError::Auth)?.0;
        Ok(WebPushSubscription(serde_json::json!({ "endpoint": endpoint, "keys": { "p256dh": p256dh, "auth": auth } })))
    }

    pub fn expose(&self) -> &serde_json::Value {
        &self.0
    }
}

impl From<serde_json::Value> for WebPushSubscription {
    fn from(value: serde_json::Value) -> Self {
        WebPushSubscription(value)
    }
}

impl fmt::Debug for WebPushSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebPushSubscription(***)")
    }
}

impl fmt::Display for WebPushSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Lower-cases the domain (the local part is case-sensitive by RFC 5321) and
/// rejects what no mail server would accept. Returns `None` when invalid.
pub fn normalise_email(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (local, domain) = raw.rsplit_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c) || !c.is_ascii());
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
        });
    (local_ok && domain_ok).then(|| format!("{local}@{}", domain.to_lowercase()))
}

/// Parses a phone number that must carry its country code (`+…`) and returns
/// it in E.164 form when the numbering plan says it is a valid number.
pub fn normalise_e164(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if !raw.starts_with('+') {
        return None;
    }
    let number = phonenumber::parse(None, raw).ok()?;
    phonenumber::is_valid(&number).then(|| number.format().mode(phonenumber::Mode::E164).to_string())
}

/// The ISO 3166 region of an E.164 number, e.g. "FR".
pub fn phone_region(e164: &str) -> Option<String> {
    let number = phonenumber::parse(None, e164).ok()?;
    number.country().id().map(|id| format!("{id:?}"))
}

/// A representative IANA zone for a phone region, used only when the
/// customer's profile has no time zone. For regions spanning several zones
/// the most populous is chosen; quiet hours then err by at most the spread.
pub fn region_time_zone(region: &str) -> Option<Tz> {
    let name = match region {
        "US" => "America/New_York",
        "CA" => "America/Toronto",
        "MX" => "America/Mexico_City",
        "BR" => "America/Sao_Paulo",
        "AR" => "America/Argentina/Buenos_Aires",
        "GB" => "Europe/London",
        "IE" => "Europe/Dublin",
        "FR" => "Europe/Paris",
        "DE" => "Europe/Berlin",
        "ES" => "Europe/Madrid",
        "PT" => "Europe/Lisbon",
        "IT" => "Europe/Rome",
        "NL" => "Europe/Amsterdam",
        "BE" => "Europe/Brussels",
        "CH" => "Europe/Zurich",
        "AT" => "Europe/Vienna",
        "SE" => "Europe/Stockholm",
        "NO" => "Europe/Oslo",
        "DK" => "Europe/Copenhagen",
        "FI" => "Europe/Helsinki",
        "PL" => "Europe/Warsaw",
        "CZ" => "Europe/Prague",
        "GR" => "Europe/Athens",
        "RO" => "Europe/Bucharest",
        "UA" => "Europe/Kyiv",
        "TR" => "Europe/Istanbul",
        "RU" => "Europe/Moscow",
        "IL" => "Asia/Jerusalem",
        "AE" => "Asia/Dubai",
        "IN" => "Asia/Kolkata",
        "CN" => "Asia/Shanghai",
        "HK" => "Asia/Hong_Kong",
        "JP" => "Asia/Tokyo",
        "KR" => "Asia/Seoul",
        "SG" => "Asia/Singapore",
        "AU" => "Australia/Sydney",
        "NZ" => "Pacific/Auckland",
        "ZA" => "Africa/Johannesburg",
        "NG" => "Africa/Lagos",
        "EG" => "Africa/Cairo",
        _ => return None,
    };
    Tz::from_str(name).ok()
}

/// Masks contact data for logs: `a***@example.com`, `+33******78`.
pub fn redact(value: &str) -> String {
    if let Some((local, domain)) = value.split_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 6 {
        return "***".into();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_emails_when_normalised_then_only_deliverable_shapes_pass() {
        assert_eq!(normalise_email(" Ana.B+cart@Example.COM ").as_deref(), Some("Ana.B+cart@example.com"));
        for bad in
            ["", "ana", "ana@", "@example.com", "ana@example", "an a@example.com", "ana..b@example.com", "ana@-x.com"]
        {
            assert_eq!(normalise_email(bad), None, "{bad}");
        }
    }

    #[test]
    fn given_phone_numbers_when_normalised_then_only_valid_international_numbers_pass() {
        assert_eq!(normalise_e164("+33 6 12 34 56 78").as_deref(), Some("+33612345678"));
        assert_eq!(normalise_e164("06 12 34 56 78"), None, "no country code");
        assert_eq!(normalise_e164("+1 555"), None);
        assert_eq!(normalise_e164("+999123456789"), None);
    }

    #[test]
    fn given_a_french_mobile_when_its_region_is_looked_up_then_paris_time_applies() {
        let region = phone_region("+33612345678").unwrap();
        assert_eq!(region, "FR");
        assert_eq!(region_time_zone(&region), Some(chrono_tz::Europe::Paris));
    }

    #[test]
    fn given_contact_values_when_debug_or_display_printed_then_they_are_redacted() {
        let email = Email::parse("ana.lopez@example.com").unwrap();
        let phone = Phone::parse("+33 6 12 34 56 78").unwrap();
        let token = DeviceToken::from("fcm-secret-token-123");
        let sub = WebPushSubscription::from(serde_json::json!({"endpoint": "https://push.example/s/secret"}));
        for shown in [
            format!("{email:?} {email}"),
            format!("{phone:?} {phone}"),
            format!("{token:?} {token}"),
            format!("{sub:?} {sub}"),
        ] {
            for secret in ["ana.lopez", "612345678", "secret-token", "s/secret"] {
                assert!(!shown.contains(secret), "{shown} shows {secret}");
            }
        }
        assert_eq!(email.expose(), "ana.lopez@example.com");
        assert_eq!(phone.expose(), "+33612345678");
        assert_eq!(serde_json::to_string(&phone).unwrap(), "\"+33612345678\"");
    }

    const P256DH: &str = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
    const AUTH: &str = "tBHItJI5svbpez7KI4CCXg";

    #[test]
    fn given_push_tokens_when_parsed_then_each_platform_takes_only_its_own_form() {
        let apns = "a".repeat(64);
        assert_eq!(DeviceToken::parse(PushPlatform::Apns, &format!(" {apns} ")).map(|t| t.expose().len()), Ok(64));
        assert_eq!(DeviceToken::parse(PushPlatform::Apns, "abc123"), Err(DeviceTokenError::NotApns));
        assert_eq!(DeviceToken::parse(PushPlatform::Apns, &"g".repeat(64)), Err(DeviceTokenError::NotApns));
        assert!(DeviceToken::parse(PushPlatform::Fcm, "dXk3:APA91bH-x_y").is_ok());
        assert_eq!(DeviceToken::parse(PushPlatform::Fcm, "has space"), Err(DeviceTokenError::NotFcm));
        assert_eq!(DeviceToken::parse(PushPlatform::Fcm, "  "), Err(DeviceTokenError::Empty));
    }

    #[test]
    fn given_web_push_subscriptions_when_parsed_then_only_a_browsers_shape_passes_and_the_part_is_named() {
        let good = serde_json::json!({"endpoint": "https://fcm.googleapis.com/fcm/send/x", "expirationTime": null,
                                      "keys": {"p256dh": P256DH, "auth": format!("{AUTH}==")}});
        let parsed = WebPushSubscription::parse(&good).unwrap();
        assert_eq!(parsed.expose()["keys"]["auth"], format!("{AUTH}=="));
        assert!(parsed.expose().get("expirationTime").is_none());
        let with = |pointer: &str, value: serde_json::Value| {
            let mut sub = good.clone();
            *sub.pointer_mut(pointer).unwrap() = value;
            WebPushSubscription::parse(&sub).map(|_| ()).map_err(WebPushError::part)
        };
        assert_eq!(with("/endpoint", "http://push.example/s".into()), Err("endpoint"));
        assert_eq!(with("/endpoint", "http://localhost.evil.example/s".into()), Err("endpoint"));
        assert_eq!(with("/endpoint", "http://127.0.0.1:8123/push/s".into()), Ok(()), "a local push service");
        assert_eq!(with("/endpoint", "https:///path".into()), Err("endpoint"));
        assert_eq!(with("/keys/p256dh", AUTH.into()), Err("keys.p256dh"), "16 bytes where 65 belong");
        assert_eq!(with("/keys/auth", "not base64!".into()), Err("keys.auth"));
        let text = serde_json::Value::from("https://push.example");
        assert_eq!(WebPushSubscription::parse(&text).map(|_| ()), Err(WebPushError::NotAnObject));
    }

    #[test]
    fn given_contact_data_when_redacted_then_it_cannot_be_read_back() {
        assert_eq!(redact("ana@example.com"), "a***@example.com");
        assert_eq!(redact("+33612345678"), "+33*******78");
    }
}
