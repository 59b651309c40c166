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

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

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

impl Email {
    /// Normalises and checks an address from outside; `None` when invalid.
    pub fn parse(raw: &str) -> Option<Email> {
        normalise_email(raw).map(Email)
    }
}

impl Phone {
    /// Parses a number with its country code into E.164; `None` when invalid.
    pub fn parse(raw: &str) -> Option<Phone> {
        normalise_e164(raw).map(Phone)
    }
}

/// A browser's `PushSubscription` JSON (endpoint and keys).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebPushSubscription(serde_json::Value);

impl WebPushSubscription {
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

    #[test]
    fn given_contact_data_when_redacted_then_it_cannot_be_read_back() {
        assert_eq!(redact("ana@example.com"), "a***@example.com");
        assert_eq!(redact("+33612345678"), "+33*******78");
    }
}
