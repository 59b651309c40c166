//! Outgoing webhooks signed as the Standard Webhooks specification says
//! (<https://www.standardwebhooks.com>), so receivers can verify them with
//! any of its libraries: three headers, `webhook-id`, `webhook-timestamp`
//! (Unix seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` over
//! `{id}.{timestamp}.{body}`, keyed with the bytes of a `whsec_<base64>`
//! secret). Used for `voucher.issued` and for the webhook channel's
//! `cart.abandoned_reminder`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::contact::{Email, Phone};
use crate::event::Item;
use crate::ids::{CartId, CustomerId, CustomerKey, MessageId};
use crate::voucher::{Discount, Voucher};

/// The prefix of a Standard Webhooks signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewer key bytes than this are refused (the specification's secrets
/// carry 24 to 64; an HMAC-SHA256 key should not be shorter than 16).
pub const MIN_SECRET_BYTES: usize = 16;
pub const MAX_SECRET_BYTES: usize = 64;

/// A webhook signing secret: the decoded key of a `whsec_<base64>` string.
/// Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSecretError {
    #[error("must start with `whsec_` followed by the key in base64 (a Standard Webhooks secret)")]
    Prefix,
    #[error("is not valid base64 after `whsec_`")]
    Base64,
    #[error("must carry {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} key bytes (has {0})")]
    Length(usize),
}

impl WebhookSecret {
    pub fn parse(text: &str) -> Result<WebhookSecret, WebhookSecretError> {
        let encoded = text.trim().strip_prefix(SECRET_PREFIX).ok_or(WebhookSecretError::Prefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| WebhookSecretError::Base64)?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(WebhookSecretError::Length(key.len()));
        }
        Ok(WebhookSecret(key))
    }

    /// A new random secret in its `whsec_` form (24 bytes, as the
    /// specification's examples).
    pub fn generate(rng: &mut impl rand::RngCore) -> String {
        let mut key = [0u8; 24];
        rng.fill_bytes(&mut key);
        format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; the length was checked at parse.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    /// The `webhook-signature` value for one delivery attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// Whether one of the space-separated `v1,` signatures in `header` is
    /// this secret's over the request (compared in constant time). The
    /// caller checks the timestamp's age.
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let mut content = format!("{id}.{timestamp}.").into_bytes();
        content.extend_from_slice(body);
        header.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|signature| {
            let Ok(expected) = STANDARD.decode(signature) else { return false };
            let mut mac = self.mac();
            mac.update(&content);
            mac.verify_slice(&expected).is_ok()
        })
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// One signed webhook request, ready for any HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedWebhook {
    pub body: Vec<u8>,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature` and the content type.
    pub headers: Vec<(&'static str, String)>,
}

/// Signs `body` for delivery at `now`. `id` is the same on every attempt of
/// one event, so a receiver drops repeats.
pub fn sign_request(secret: &WebhookSecret, id: &str, body: Vec<u8>, now: DateTime<Utc>) -> SignedWebhook {
    let timestamp = now.timestamp();
    let signature = secret.sign(id, timestamp, &body);
    SignedWebhook {
        headers: vec![
            ("content-type", "application/json".to_owned()),
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ],
        body,
    }
}

/// The event type of an issued voucher.
pub const VOUCHER_ISSUED: &str = "voucher.issued";

/// What a storefront learns of an issued voucher: enough to create the
/// code on its side and bind it as Cartback does (never an email address:
/// a guest's voucher names its owner as `email:` and the SHA-256 of the
/// lower-cased address, which the storefront compares at checkout).
#[derive(Debug, Serialize)]
struct VoucherIssuedData<'a> {
    code: &'a str,
    cart_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<&'a str>,
    /// `customer:<id>`, `email:<sha256 hex>` or `cart:<id>`.
    owner: &'a str,
    discount: &'a Discount,
    currency: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_cart_value: Option<rust_decimal::Decimal>,
    expires_at: String,
}

#[derive(Debug, Serialize)]
struct Envelope<'a, T> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: String,
    data: T,
}

/// The `voucher.issued` event: its stable id and its JSON body
/// (`{"type":"voucher.issued","timestamp":…,"data":{…}}`, the timestamp
/// being when the voucher was issued).
pub fn voucher_issued(voucher: &Voucher) -> (String, Vec<u8>) {
    let customer_id = match &voucher.customer_key {
        CustomerKey::Customer(id) => Some(id.as_str()),
        CustomerKey::Guest(_) => None,
    };
    let envelope = Envelope {
        kind: VOUCHER_ISSUED,
        timestamp: voucher.issued_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        data: VoucherIssuedData {
            code: voucher.code.as_str(),
            cart_id: voucher.cart_id.as_str(),
            customer_id,
            owner: voucher.owner.as_str(),
            discount: &voucher.terms.discount,
            currency: &voucher.terms.currency,
            min_cart_value: voucher.terms.min_cart_value,
            expires_at: voucher.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        },
    };
    // Serialising plain strings, decimals and enums cannot fail.
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    (voucher_event_id(voucher), body)
}

/// One id per voucher for every attempt, derived from the code without
/// revealing it (ids end up in receivers' logs).
fn voucher_event_id(voucher: &Voucher) -> String {
    let digest = Sha256::digest(format!("{VOUCHER_ISSUED}:{}", voucher.code.as_str()).as_bytes());
    format!("msg_{}", &hex::encode(digest)[..32])
}

/// The event type the webhook channel sends.
pub const CART_ABANDONED_REMINDER: &str = "cart.abandoned_reminder";

/// The name of a webhook target (`crm`, `chat_bot`): 1 to 32 lower-case
/// ASCII letters, digits or `_`, so it maps one to one onto the variable
/// names that configure it (`CARTBACK_WEBHOOK_TARGET_<NAME>_URL`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookTargetName(String);

impl WebhookTargetName {
    pub fn parse(text: &str) -> Result<WebhookTargetName, String> {
        let valid = !text.is_empty()
            && text.len() <= 32
            && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(WebhookTargetName(text.to_owned()))
        } else {
            Err(format!("{text:?} is not a webhook target name (1 to 32 of a-z, 0-9 and _)"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for WebhookTargetName {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        WebhookTargetName::parse(&text)
    }
}

impl From<WebhookTargetName> for String {
    fn from(name: WebhookTargetName) -> String {
        name.0
    }
}

impl std::fmt::Display for WebhookTargetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A contact field a target may be allowed to see. None is by default: a
/// target gets the customer id, and the shop's system looks the rest up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactField {
    Email,
    Phone,
    FirstName,
}

impl ContactField {
    pub const ALL: [ContactField; 3] = [ContactField::Email, ContactField::Phone, ContactField::FirstName];

    pub fn as_str(self) -> &'static str {
        crate::enum_names::name_of(&self)
    }

    pub fn parse(text: &str) -> Option<ContactField> {
        ContactField::ALL.into_iter().find(|f| f.as_str() == text)
    }
}

/// The contact values a webhook job carries beside its event; the sender
/// keeps those the target's allow-list names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookContact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
}

impl WebhookContact {
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.phone.is_none() && self.first_name.is_none()
    }

    /// Only the fields in `allowed`.
    pub fn only(&self, allowed: &[ContactField]) -> WebhookContact {
        let keep = |field| allowed.contains(&field);
        WebhookContact {
            email: self.email.clone().filter(|_| keep(ContactField::Email)),
            phone: self.phone.clone().filter(|_| keep(ContactField::Phone)),
            first_name: self.first_name.clone().filter(|_| keep(ContactField::FirstName)),
        }
    }
}

/// The `data` of a `cart.abandoned_reminder` event (documented in the
/// README, "Webhook channel"): what a CRM or a chat bot needs to remind
/// the customer itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartReminder {
    pub message_id: MessageId,
    pub cart_id: CartId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    pub campaign_id: String,
    /// 1 for the campaign's first step.
    pub step: u32,
    pub items: Vec<Item>,
    pub item_count: u32,
    /// A decimal string with two decimals at least, as the cart API shows it.
    pub subtotal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The signed restore link (it records the click, then opens the cart).
    pub restore_url: String,
    pub restore_expires_at: DateTime<Utc>,
    pub decided_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct ReminderData<'a> {
    #[serde(flatten)]
    reminder: &'a CartReminder,
    /// Always present, empty unless the target is allowed fields.
    contact: WebhookContact,
}

/// The webhook id (the message id: the same on every attempt, so a
/// receiver drops repeats) and the JSON body
/// `{"type":"cart.abandoned_reminder","timestamp":…,"data":{…,"contact":{…}}}`
/// with only the contact fields in `allowed`.
pub fn cart_reminder_body(
    reminder: &CartReminder,
    contact: &WebhookContact,
    allowed: &[ContactField],
) -> (String, Vec<u8>) {
    let envelope = Envelope {
        kind: CART_ABANDONED_REMINDER,
        timestamp: reminder.decided_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        data: ReminderData { reminder, contact: contact.only(allowed) },
    };
    // Strings, decimals, times and the items' plain fields always serialise.
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    (reminder.message_id.as_str().to_owned(), body)
}

#[cfg(test)]
pub(crate) mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::voucher::{TierName, VoucherCode, VoucherOwner, VoucherStatus, VoucherTerms};

    /// The specification's published example (also in its reference libraries' tests).
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1614265330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn given_the_specifications_test_vector_when_signed_then_the_signature_is_the_published_one() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(secret.sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes()), SPEC_SIGNATURE);
        assert!(secret.verify(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes(), &format!("v1,bm9wZQ== {SPEC_SIGNATURE}")));
    }

    #[test]
    fn given_a_changed_body_timestamp_or_id_when_verified_then_the_signature_fails() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        assert!(!secret.verify(SPEC_ID, SPEC_TIMESTAMP, br#"{"test": 2432232315}"#, SPEC_SIGNATURE));
        assert!(!secret.verify(SPEC_ID, SPEC_TIMESTAMP + 1, SPEC_BODY.as_bytes(), SPEC_SIGNATURE));
        assert!(!secret.verify("msg_other", SPEC_TIMESTAMP, SPEC_BODY.as_bytes(), SPEC_SIGNATURE));
        assert!(!secret.verify(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes(), "v2,whatever"));
    }

    #[test]
    fn given_bad_secrets_when_parsed_then_each_is_refused_with_its_cause() {
        assert_eq!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(WebhookSecretError::Prefix));
        assert_eq!(WebhookSecret::parse("whsec_not base64!"), Err(WebhookSecretError::Base64));
        assert_eq!(WebhookSecret::parse("whsec_c2hvcnQ="), Err(WebhookSecretError::Length(5)));
        let generated = WebhookSecret::generate(&mut rand::rngs::StdRng::seed_from_u64(3));
        assert!(WebhookSecret::parse(&generated).is_ok(), "{generated}");
        assert_eq!(format!("{:?}", WebhookSecret::parse(SPEC_SECRET).unwrap()), "WebhookSecret(***)");
    }

    fn voucher(customer_key: CustomerKey) -> Voucher {
        let at: DateTime<Utc> = "2026-11-23T10:30:00Z".parse().unwrap();
        Voucher {
            code: VoucherCode::parse("CB-7KQ4-M9XD-2PWE").unwrap(),
            cart_id: "cart-1".into(),
            owner: VoucherOwner::guest_cart(&"cart-1".into()),
            customer_key,
            campaign_id: "default".into(),
            step: 0,
            variant: None,
            terms: VoucherTerms {
                tier: TierName::Recovery,
                discount: Discount::PercentOff { percent: 10.into(), max_amount: None },
                currency: "USD".into(),
                min_cart_value: Some(rust_decimal::Decimal::new(2000, 2)),
            },
            issued_at: at,
            expires_at: at + chrono::Duration::days(7),
            status: VoucherStatus::Issued,
            published_at: None,
        }
    }

    #[test]
    fn given_a_customers_voucher_when_its_event_is_built_then_the_body_carries_the_terms_and_the_id_not_the_code() {
        let (id, body) = voucher_issued(&voucher(CustomerKey::Customer("cus-9".into())));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["type"], "voucher.issued");
        assert_eq!(json["timestamp"], "2026-11-23T10:30:00Z");
        let data = &json["data"];
        assert_eq!(data["code"], "CB-7KQ4-M9XD-2PWE");
        assert_eq!(data["cart_id"], "cart-1");
        assert_eq!(data["customer_id"], "cus-9");
        assert_eq!(data["discount"]["kind"], "percent_off");
        assert_eq!(data["currency"], "USD");
        assert_eq!(data["min_cart_value"], serde_json::to_value(rust_decimal::Decimal::new(2000, 2)).unwrap());
        assert_eq!(data["expires_at"], "2026-11-30T10:30:00Z");
        assert!(id.starts_with("msg_") && !id.contains("7KQ4"), "{id}");
        assert_eq!(voucher_issued(&voucher(CustomerKey::Customer("cus-9".into()))).0, id, "stable per voucher");
    }

    #[test]
    fn given_a_guests_voucher_when_its_event_is_built_then_it_names_no_customer_and_binds_by_the_hashed_address() {
        let mut guest = voucher(CustomerKey::Guest("cart-1".into()));
        let email = crate::contact::Email::parse("ana@example.com").unwrap();
        guest.owner = VoucherOwner::guest_email(&email);
        let (_, body) = voucher_issued(&guest);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(json["data"].get("customer_id").is_none(), "{json}");
        let digest = hex::encode(Sha256::digest(b"ana@example.com"));
        assert_eq!(json["data"]["owner"], format!("email:{digest}"), "a storefront hashes the address the same way");
        assert!(!String::from_utf8_lossy(&body).contains("ana@"), "never the address");
    }

    #[test]
    fn given_a_body_when_signed_for_a_request_then_the_headers_verify_with_the_secret() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        let now: DateTime<Utc> = "2026-11-23T10:30:05Z".parse().unwrap();
        let signed = sign_request(&secret, "msg_1", b"{}".to_vec(), now);
        let header = |name: &str| signed.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(header("webhook-timestamp"), now.timestamp().to_string());
        assert!(secret.verify("msg_1", now.timestamp(), &signed.body, &header("webhook-signature")));
    }

    /// A reminder for cart `cart-1`, step 1 of campaign `default`.
    pub(crate) fn reminder() -> CartReminder {
        let at: DateTime<Utc> = "2026-11-23T10:30:00Z".parse().unwrap();
        CartReminder {
            message_id: "m_0123".into(),
            cart_id: "cart-1".into(),
            customer_id: Some("cus-9".into()),
            campaign_id: "default".into(),
            step: 1,
            items: vec![Item {
                item_id: "sku-mug".into(),
                item_name: Some("Stoneware mug".into()),
                variant: None,
                price: Some(rust_decimal::Decimal::new(3000, 2)),
                quantity: 2,
                image_url: None,
                url: None,
            }],
            item_count: 2,
            subtotal: "60.00".into(),
            currency: Some("USD".into()),
            restore_url: "https://cartback.example/r/token".into(),
            restore_expires_at: at + chrono::Duration::hours(48),
            decided_at: at,
        }
    }

    fn contact() -> WebhookContact {
        WebhookContact {
            email: Some(Email::from("ana@example.com")),
            phone: Some(Phone::from("+33612345678")),
            first_name: Some("Ana".into()),
        }
    }

    #[test]
    fn given_a_target_allowed_nothing_when_the_reminder_is_built_then_the_body_carries_the_cart_and_no_contact_value() {
        // GIVEN a reminder whose customer has an email, a phone and a first name
        // WHEN built for a target with the default (empty) allow-list
        let (id, body) = cart_reminder_body(&reminder(), &contact(), &[]);
        // THEN the cart is there, documented field by field, and no contact value is
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(id, "m_0123", "the message id: the same on every attempt");
        assert_eq!(json["type"], "cart.abandoned_reminder");
        assert_eq!(json["timestamp"], "2026-11-23T10:30:00Z");
        let data = &json["data"];
        assert_eq!(data["message_id"], "m_0123");
        assert_eq!(data["cart_id"], "cart-1");
        assert_eq!(data["customer_id"], "cus-9");
        assert_eq!((&data["campaign_id"], &data["step"]), (&serde_json::json!("default"), &serde_json::json!(1)));
        assert_eq!(data["items"][0]["item_name"], "Stoneware mug");
        assert_eq!(data["item_count"], 2);
        assert_eq!(data["subtotal"], "60.00");
        assert_eq!(data["currency"], "USD");
        assert_eq!(data["restore_url"], "https://cartback.example/r/token");
        assert_eq!(data["restore_expires_at"], "2026-11-25T10:30:00Z");
        assert_eq!(data["contact"], serde_json::json!({}));
        let text = String::from_utf8_lossy(&body);
        for value in ["ana@", "612345678", "\"Ana\""] {
            assert!(!text.contains(value), "{value} leaks into {text}");
        }
    }

    #[test]
    fn given_a_target_allowed_the_email_when_the_reminder_is_built_then_only_the_email_is_added() {
        let (_, body) = cart_reminder_body(&reminder(), &contact(), &[ContactField::Email]);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["data"]["contact"], serde_json::json!({"email": "ana@example.com"}));
        let (_, all) = cart_reminder_body(&reminder(), &contact(), &ContactField::ALL);
        let json: serde_json::Value = serde_json::from_slice(&all).unwrap();
        let expected = serde_json::json!({"email": "ana@example.com", "phone": "+33612345678", "first_name": "Ana"});
        assert_eq!(json["data"]["contact"], expected);
    }

    #[test]
    fn given_target_names_when_parsed_then_only_lower_case_letters_digits_and_underscores_are_names() {
        for ok in ["crm", "chat_bot", "crm2"] {
            assert_eq!(WebhookTargetName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "CRM", "chat-bot", "a b", &"x".repeat(33)] {
            assert!(WebhookTargetName::parse(bad).is_err(), "{bad}");
        }
        let err = serde_json::from_value::<WebhookTargetName>(serde_json::json!("Chat-Bot")).unwrap_err();
        assert!(err.to_string().contains("not a webhook target name"), "{err}");
    }
}
