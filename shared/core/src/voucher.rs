//! Recovery vouchers. An offer is campaign data (a tier per segment:
//! returners get the recovery tier, others the standard one); the engine
//! decides whether a step shows a voucher and why ([`VoucherChoice`]); the
//! checker issues one random, unique code per cart ([`Voucher`]), bound to
//! its owner, its cart's currency and minimum, and expiring; the storefront
//! validates it at checkout and a purchase redeems it once.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::campaign::CampaignError;
use crate::cart::money_text;
use crate::contact::Email;
use crate::enum_names;
use crate::ids::{CartId, CustomerId, CustomerKey};
use crate::reason::Reason;

/// The symbols of a code: digits and capitals without the look-alikes
/// (0/O, 1/I/L), so a code read aloud or copied by hand survives.
pub const CODE_ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Random symbols per code: 12 × log2(31) ≈ 59.4 bits of entropy.
pub const CODE_SYMBOLS: usize = 12;
/// The longest prefix a campaign may put before the code (`CB-...`).
pub const MAX_CODE_PREFIX_CHARS: usize = 8;

/// A voucher code in its normal form: an optional prefix, then the 12
/// random symbols in groups of four (`CB-7KQ4-M9XD-2PWE`). Parsing accepts
/// lower case, spaces and missing dashes, as customers type it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VoucherCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("must end in {CODE_SYMBOLS} code symbols (digits 2-9 and capitals without I, L and O)")]
    Symbols,
    #[error("has a prefix longer than {MAX_CODE_PREFIX_CHARS} letters or digits")]
    Prefix,
}

impl VoucherCode {
    /// Draws a new code from `rng` (the issuer passes the operating
    /// system's cryptographic source; tests a seeded one).
    pub fn generate(prefix: Option<&str>, rng: &mut impl rand::Rng) -> VoucherCode {
        let symbols: String =
            (0..CODE_SYMBOLS).map(|_| char::from(CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())])).collect();
        VoucherCode(normal_form(prefix.unwrap_or_default(), &symbols))
    }

    /// Reads a code as a customer or a storefront sends it.
    pub fn parse(text: &str) -> Result<VoucherCode, CodeError> {
        let compact: String =
            text.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
        let split = compact.len().checked_sub(CODE_SYMBOLS).ok_or(CodeError::Symbols)?;
        let (prefix, symbols) = (compact.get(..split).ok_or(CodeError::Symbols)?, &compact[split..]);
        if !symbols.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
            return Err(CodeError::Symbols);
        }
        if prefix.len() > MAX_CODE_PREFIX_CHARS || !prefix.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(CodeError::Prefix);
        }
        Ok(VoucherCode(normal_form(prefix, symbols)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn normal_form(prefix: &str, symbols: &str) -> String {
    let groups: Vec<&str> = [&symbols[..4], &symbols[4..8], &symbols[8..]].into();
    let body = groups.join("-");
    if prefix.is_empty() {
        body
    } else {
        format!("{}-{body}", prefix.to_ascii_uppercase())
    }
}

impl TryFrom<String> for VoucherCode {
    type Error = CodeError;
    fn try_from(text: String) -> Result<Self, CodeError> {
        VoucherCode::parse(&text)
    }
}

impl From<VoucherCode> for String {
    fn from(code: VoucherCode) -> String {
        code.0
    }
}

impl fmt::Display for VoucherCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Codes are credentials: logs show the prefix and the last group only.
impl fmt::Debug for VoucherCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = self.0.rsplit('-').next().unwrap_or_default();
        write!(f, "VoucherCode(…{tail})")
    }
}

// ---------------------------------------------------------------- campaign data

/// A step's offer (`[steps.offer]`): the tier each segment gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// Customers with a return within the campaign's `vouchers.returned_window`.
    #[serde(default = "Tier::default_recovery")]
    pub recovery: Tier,
    /// Everyone else.
    #[serde(default = "Tier::default_standard")]
    pub standard: Tier,
}

impl Default for Offer {
    fn default() -> Self {
        Offer { recovery: Tier::default_recovery(), standard: Tier::default_standard() }
    }
}

/// One tier of an offer: exactly one of `percent_off`, `amount_off`
/// (per currency) or `free_shipping`, with optional limits per currency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Percent off the cart's subtotal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_off: Option<Decimal>,
    /// A fixed amount off, per ISO 4217 currency code (`{ USD = "5.00" }`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub amount_off: BTreeMap<String, Decimal>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub free_shipping: bool,
    /// No voucher for a cart below this subtotal, per currency; the code
    /// is bound to it at checkout too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub min_cart_value: BTreeMap<String, Decimal>,
    /// The most a percentage takes off, per currency.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_discount: BTreeMap<String, Decimal>,
}

impl Tier {
    pub fn percent(percent: u32) -> Tier {
        Tier { percent_off: Some(Decimal::from(percent)), ..Tier::default() }
    }

    fn default_recovery() -> Tier {
        Tier::percent(10)
    }

    fn default_standard() -> Tier {
        Tier::percent(5)
    }
}

/// Campaign-wide voucher settings (`[vouchers]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoucherSettings {
    /// A return this recent makes the customer a returner (recovery tier).
    #[serde(with = "crate::campaign::human_duration")]
    pub returned_window: Duration,
    /// A code expires this long after the first message that showed it.
    #[serde(with = "crate::campaign::human_duration")]
    pub expires_after: Duration,
    /// No voucher for a customer who redeemed a promotion this recently.
    #[serde(with = "crate::campaign::human_duration")]
    pub recent_promotion_window: Duration,
    /// At most one voucher per customer in this window, across carts.
    #[serde(with = "crate::campaign::human_duration")]
    pub cap_window: Duration,
    /// Put before every code, e.g. `CB` gives `CB-7KQ4-M9XD-2PWE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_prefix: Option<String>,
}

impl Default for VoucherSettings {
    fn default() -> Self {
        VoucherSettings {
            returned_window: Duration::days(90),
            expires_after: Duration::days(7),
            recent_promotion_window: Duration::days(30),
            cap_window: Duration::days(30),
            code_prefix: Some("CB".into()),
        }
    }
}

// ---------------------------------------------------------------- validation

/// The most any window may span: a customer's purchase and return history
/// is kept 400 days, so a longer window would read nothing more.
const MAX_WINDOW_DAYS: i64 = 400;

impl Offer {
    /// What is wrong with the offer, with field paths under `path`
    /// (`steps[0].offer`).
    pub fn problems(&self, path: &str) -> Vec<CampaignError> {
        let mut errors = self.recovery.problems(&format!("{path}.recovery"));
        errors.extend(self.standard.problems(&format!("{path}.standard")));
        errors
    }
}

impl Tier {
    /// What is wrong with the tier, with field paths under `path`
    /// (`steps[0].offer.recovery`).
    pub fn problems(&self, path: &str) -> Vec<CampaignError> {
        let mut errors = Vec::new();
        let mut err = |field: String, message: String| errors.push(CampaignError { field, message });
        let kinds: Vec<&str> = [
            ("percent_off", self.percent_off.is_some()),
            ("amount_off", !self.amount_off.is_empty()),
            ("free_shipping", self.free_shipping),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        match kinds.as_slice() {
            [] => err(path.into(), "needs one of percent_off, amount_off or free_shipping".into()),
            [_] => {}
            several => err(path.into(), format!("gives one discount, not {}", several.join(" and "))),
        }
        if let Some(percent) = self.percent_off {
            if percent <= Decimal::ZERO || percent > Decimal::ONE_HUNDRED {
                err(format!("{path}.percent_off"), "must be above 0 and at most 100".into());
            } else if percent.normalize().scale() > 2 {
                err(format!("{path}.percent_off"), "allows at most 2 decimals".into());
            }
        }
        for (currency, amount) in &self.amount_off {
            if let Some(problem) = currency_problem(currency).or_else(|| amount_problem(*amount, true)) {
                err(format!("{path}.amount_off.{currency}"), problem.into());
            }
        }
        for (currency, amount) in &self.min_cart_value {
            if let Some(problem) = currency_problem(currency).or_else(|| amount_problem(*amount, false)) {
                err(format!("{path}.min_cart_value.{currency}"), problem.into());
            }
        }
        if !self.max_discount.is_empty() && self.percent_off.is_none() {
            err(format!("{path}.max_discount"), "applies only to percent_off (the other discounts are fixed)".into());
        }
        for (currency, amount) in &self.max_discount {
            if let Some(problem) = currency_problem(currency).or_else(|| amount_problem(*amount, true)) {
                err(format!("{path}.max_discount.{currency}"), problem.into());
            }
        }
        errors
    }
}

/// Why `code` is not an ISO 4217 currency code as carts carry them.
fn currency_problem(code: &str) -> Option<&'static str> {
    let valid = code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase());
    (!valid).then_some("is keyed by a currency code of three capital letters (ISO 4217, e.g. EUR)")
}

/// Why `amount` is not a money amount of a tier: positive (or, for a
/// minimum, not negative), with at most 2 decimals.
fn amount_problem(amount: Decimal, positive: bool) -> Option<&'static str> {
    if positive && amount <= Decimal::ZERO {
        return Some("must be positive");
    }
    if amount.is_sign_negative() && !amount.is_zero() {
        return Some("must not be negative");
    }
    (amount.normalize().scale() > 2).then_some("allows at most 2 decimals")
}

impl VoucherSettings {
    /// What is wrong with the settings, with field paths under `vouchers`.
    pub fn problems(&self) -> Vec<CampaignError> {
        let mut errors = Vec::new();
        let mut err =
            |field: &str, message: String| errors.push(CampaignError { field: format!("vouchers.{field}"), message });
        let max = Duration::days(MAX_WINDOW_DAYS);
        let history = "purchase and return history is kept 400 days";
        if self.returned_window < Duration::days(1) || self.returned_window > max {
            err("returned_window", format!("must be between 1d and 400d ({history})"));
        }
        if self.recent_promotion_window < Duration::zero() || self.recent_promotion_window > max {
            err("recent_promotion_window", format!("must be between 0 (no such rule) and 400d ({history})"));
        }
        if self.cap_window < Duration::zero() || self.cap_window > Duration::days(365) {
            err("cap_window", "must be between 0 (no cap) and 365d".into());
        }
        if self.expires_after < Duration::hours(1) || self.expires_after > Duration::days(90) {
            err(
                "expires_after",
                "must be between 1h (time to reach the checkout) and 90d (a code that lives longer ends up on coupon \
                 sites)"
                    .into(),
            );
        }
        if let Some(prefix) = &self.code_prefix {
            let valid = !prefix.is_empty()
                && prefix.len() <= MAX_CODE_PREFIX_CHARS
                && prefix.bytes().all(|b| b.is_ascii_alphanumeric());
            if !valid {
                err("code_prefix", format!("must be 1 to {MAX_CODE_PREFIX_CHARS} letters or digits"));
            }
        }
        errors
    }
}

// ---------------------------------------------------------------- terms and decisions

/// Which tier of an offer a voucher comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierName {
    /// Returners: at least one return within `returned_window`.
    Recovery,
    Standard,
}

impl TierName {
    pub const ALL: [TierName; 2] = [TierName::Recovery, TierName::Standard];

    pub fn as_str(self) -> &'static str {
        enum_names::name_of(&self)
    }
}

/// A tier resolved for one cart's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Discount {
    PercentOff {
        percent: Decimal,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_amount: Option<Decimal>,
    },
    AmountOff {
        amount: Decimal,
    },
    FreeShipping,
}

impl Discount {
    /// What the discount takes off an order of `subtotal` (never more than
    /// the subtotal). Free shipping: the order's shipping is not known here.
    pub fn amount_on(&self, subtotal: Decimal) -> Option<Decimal> {
        let amount = match self {
            Discount::PercentOff { percent, max_amount } => {
                let off = (subtotal * percent / Decimal::ONE_HUNDRED).round_dp(2);
                max_amount.map_or(off, |max| off.min(max))
            }
            Discount::AmountOff { amount } => *amount,
            Discount::FreeShipping => return None,
        };
        Some(amount.min(subtotal).max(Decimal::ZERO))
    }
}

impl Discount {
    /// The discount as messages and timelines say it: `10% off`, `10% off
    /// (at most 15.00 EUR)`, `5.00 EUR off`, `free shipping`.
    pub fn describe(&self, currency: &str) -> String {
        match self {
            Discount::PercentOff { percent, max_amount: None } => format!("{}% off", percent.normalize()),
            Discount::PercentOff { percent, max_amount: Some(max) } => {
                format!("{}% off (at most {} {currency})", percent.normalize(), money_text(*max))
            }
            Discount::AmountOff { amount } => format!("{} {currency} off", money_text(*amount)),
            Discount::FreeShipping => "free shipping".into(),
        }
    }
}

/// A voucher's terms: its tier resolved for the cart's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherTerms {
    pub tier: TierName,
    pub discount: Discount,
    /// The cart's currency: the code is refused in another.
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cart_value: Option<Decimal>,
}

/// What the engine decided about a voucher for the step it sends (or holds
/// out). Every case but `NotOffered` carries the reason for the timeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "voucher", rename_all = "snake_case")]
pub enum VoucherChoice {
    /// The step carries no offer.
    #[default]
    NotOffered,
    /// Issue a voucher on these terms, expiring `expires_after` (seconds)
    /// after this message; the checker issues it with a new random code.
    Issue { terms: VoucherTerms, expires_after_seconds: i64, reason: Reason },
    /// The cart already has a voucher (shown by an earlier step): show the
    /// same code again.
    Reuse { code: VoucherCode, reason: Reason },
    /// The step offers one and this cart gets none (`recent_promotion`,
    /// `voucher_cap`, `held_out`, ...): the message goes out without it.
    Withheld { reason: Reason },
}

impl VoucherChoice {
    pub fn is_not_offered(&self) -> bool {
        matches!(self, VoucherChoice::NotOffered)
    }

    pub fn reason(&self) -> Option<&Reason> {
        match self {
            VoucherChoice::NotOffered => None,
            VoucherChoice::Issue { reason, .. }
            | VoucherChoice::Reuse { reason, .. }
            | VoucherChoice::Withheld { reason } => Some(reason),
        }
    }
}

impl VoucherTerms {
    /// The discount, and the minimum when there is one: `10% off, on
    /// orders of 30.00 EUR or more`.
    pub fn describe(&self) -> String {
        let discount = self.discount.describe(&self.currency);
        match self.min_cart_value {
            Some(min) => format!("{discount}, on orders of {} {} or more", money_text(min), self.currency),
            None => discount,
        }
    }
}

// ---------------------------------------------------------------- issued vouchers

/// Whom a voucher is bound to, in a stored form that holds no address: a
/// known customer's id, a guest's email address hashed, or for a guest
/// without one the cart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VoucherOwner(String);

impl VoucherOwner {
    pub fn customer(customer_id: &CustomerId) -> VoucherOwner {
        VoucherOwner(format!("customer:{customer_id}"))
    }

    pub fn guest_email(email: &Email) -> VoucherOwner {
        let digest = Sha256::digest(email.expose().to_lowercase().as_bytes());
        VoucherOwner(format!("email:{}", hex::encode(digest)))
    }

    pub fn guest_cart(cart_id: &CartId) -> VoucherOwner {
        VoucherOwner(format!("cart:{cart_id}"))
    }

    /// The owner of a voucher for this cart: its customer, else the
    /// guest's email address, else the cart.
    pub fn for_cart(key: &CustomerKey, email: Option<&Email>, cart_id: &CartId) -> VoucherOwner {
        match (key.customer(), email) {
            (Some(id), _) => VoucherOwner::customer(id),
            (None, Some(email)) => VoucherOwner::guest_email(email),
            (None, None) => VoucherOwner::guest_cart(cart_id),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads the stored form.
    pub fn from_stored(text: impl Into<String>) -> VoucherOwner {
        VoucherOwner(text.into())
    }
}

/// An issued voucher, as stored (one per cart; the code is unique).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Voucher {
    pub code: VoucherCode,
    pub cart_id: CartId,
    pub owner: VoucherOwner,
    /// Whose caps and facts it counts in (as on the cart's messages).
    pub customer_key: CustomerKey,
    pub campaign_id: String,
    /// The step (0-based, as on messages) whose message first showed it.
    pub step: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub terms: VoucherTerms,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub status: VoucherStatus,
    /// When the storefront acknowledged its `voucher.issued` webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum VoucherStatus {
    Issued,
    Redeemed {
        order_id: String,
        at: DateTime<Utc>,
        /// What it took off the order, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        discount: Option<Decimal>,
    },
    Revoked {
        at: DateTime<Utc>,
    },
}

/// Why a code is refused at checkout (`POST /v1/vouchers/validate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    Unknown,
    Expired,
    NotYours,
    AlreadyRedeemed,
    BelowMinimum,
    WrongCurrency,
    Revoked,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        enum_names::name_of(&self)
    }
}

/// A code presented at checkout (`POST /v1/vouchers/validate`): who
/// presents it, for which cart, and the order as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkout {
    /// The signed-in customer, or for a guest the address given at checkout.
    pub presenter: Presenter,
    pub cart_id: CartId,
    pub subtotal: Decimal,
    /// ISO 4217, capitals.
    pub currency: String,
    pub at: DateTime<Utc>,
}

/// Who presents a code: exactly one of a customer id or an email address.
#[derive(Debug, Clone, PartialEq)]
pub enum Presenter {
    Customer(CustomerId),
    Guest(Email),
}

impl Voucher {
    /// Whether the code may be used at this checkout, else the first reason
    /// it may not. Ownership comes first, so a stranger holding a leaked
    /// code learns nothing about it beyond `not_yours`.
    pub fn check(&self, checkout: &Checkout) -> Result<(), Refusal> {
        if !self.belongs_to(checkout) {
            return Err(Refusal::NotYours);
        }
        match self.status {
            VoucherStatus::Issued => {}
            VoucherStatus::Redeemed { .. } => return Err(Refusal::AlreadyRedeemed),
            VoucherStatus::Revoked { .. } => return Err(Refusal::Revoked),
        }
        if checkout.at >= self.expires_at {
            return Err(Refusal::Expired);
        }
        if !checkout.currency.eq_ignore_ascii_case(&self.terms.currency) {
            return Err(Refusal::WrongCurrency);
        }
        if self.terms.min_cart_value.is_some_and(|min| checkout.subtotal < min) {
            return Err(Refusal::BelowMinimum);
        }
        Ok(())
    }

    /// A customer's voucher is theirs alone; a guest's is the address's
    /// (hashed the same way); a guest voucher without an address is bound
    /// to its cart, which the checkout must then be.
    fn belongs_to(&self, checkout: &Checkout) -> bool {
        let presented = match &checkout.presenter {
            Presenter::Customer(id) => VoucherOwner::customer(id),
            Presenter::Guest(email) => VoucherOwner::guest_email(email),
        };
        let bound_to_its_cart = self.owner == VoucherOwner::guest_cart(&self.cart_id);
        presented == self.owner || (bound_to_its_cart && checkout.cart_id == self.cart_id)
    }
}

/// A purchase that used a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    pub order_id: String,
    pub at: DateTime<Utc>,
    pub discount: Option<Decimal>,
}

/// What a store answers to [`crate::ports::VoucherStore::issue_voucher`].
// Answered once per call and matched at once: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum IssueOutcome {
    Issued,
    /// The cart has a voucher already (a retry, a racing checker): this one.
    CartHasOne(Voucher),
    /// The code exists (on another cart): draw another.
    CodeTaken,
}

/// What a store answers to [`crate::ports::VoucherStore::redeem_voucher`].
// Answered once per call and matched at once: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RedeemOutcome {
    /// Redeemed now by this order.
    Redeemed(Voucher),
    /// Redeemed earlier by this same order (a replayed purchase event).
    AlreadyThisOrder(Voucher),
    /// Redeemed by another order, or revoked: this order's use is an
    /// abuse attempt, recorded and reported.
    Refused(Voucher, Refusal),
    /// No such code.
    Unknown,
}

/// What a message shows of its cart's voucher: the code, the discount and
/// the expiry, in the customer's time zone and locale.
#[derive(Debug, Clone, PartialEq)]
pub struct ShownVoucher {
    pub code: VoucherCode,
    pub terms: VoucherTerms,
    pub expires_at: DateTime<Utc>,
    pub time_zone: chrono_tz::Tz,
    /// The customer's locale (`customer.locale`, e.g. `de-DE`), if known.
    pub locale: Option<String>,
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn given_a_prefix_when_a_code_is_drawn_then_it_has_twelve_unambiguous_symbols_in_groups_of_four() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let code = VoucherCode::generate(Some("cb"), &mut rng);
        let parts: Vec<&str> = code.as_str().split('-').collect();
        assert_eq!(parts.len(), 4, "{code}");
        assert_eq!(parts[0], "CB");
        for group in &parts[1..] {
            assert_eq!(group.len(), 4);
            assert!(group.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
        }
        assert!(!code.as_str()[3..].contains(['0', 'O', '1', 'I', 'L']));
    }

    #[test]
    fn given_the_alphabet_and_length_then_a_code_carries_at_least_50_bits() {
        let bits = CODE_SYMBOLS as f64 * (CODE_ALPHABET.len() as f64).log2();
        assert!(bits >= 50.0, "{bits}");
    }

    #[test]
    fn given_10000_draws_then_no_code_repeats_and_every_symbol_appears() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let codes: std::collections::HashSet<String> =
            (0..10_000).map(|_| VoucherCode::generate(None, &mut rng).to_string()).collect();
        assert_eq!(codes.len(), 10_000);
        for symbol in CODE_ALPHABET {
            assert!(codes.iter().any(|c| c.as_bytes().contains(symbol)), "{}", char::from(*symbol));
        }
    }

    #[test]
    fn given_a_code_as_customers_type_it_when_parsed_then_it_is_the_normal_form() {
        let code = VoucherCode::parse("CB-7KQ4-M9XD-2PWE").unwrap();
        for typed in ["cb-7kq4-m9xd-2pwe", "CB 7KQ4 M9XD 2PWE", "CB7KQ4M9XD2PWE", " cb-7KQ4M9XD-2pwe "] {
            assert_eq!(VoucherCode::parse(typed).unwrap(), code, "{typed}");
        }
        assert_eq!(VoucherCode::parse("7KQ4M9XD2PWE").unwrap().as_str(), "7KQ4-M9XD-2PWE");
    }

    #[test]
    fn given_codes_that_are_not_ours_when_parsed_then_they_are_refused() {
        for text in ["SAVE10", "", "CB-7KQ4-M9XD-2PW0", "CB-7KQ4-M9XD-2PWI", "TOOLONGPREFIX-7KQ4-M9XD-2PWE"] {
            assert!(VoucherCode::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn given_a_code_when_debug_printed_then_only_its_last_group_shows() {
        let code = VoucherCode::parse("CB-7KQ4-M9XD-2PWE").unwrap();
        assert_eq!(format!("{code:?}"), "VoucherCode(…2PWE)");
    }

    #[test]
    fn given_discounts_when_applied_to_a_subtotal_then_caps_and_the_subtotal_bound_them() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let ten = Discount::PercentOff { percent: d("10"), max_amount: Some(d("15.00")) };
        assert_eq!(ten.amount_on(d("89.90")), Some(d("8.99")));
        assert_eq!(ten.amount_on(d("400")), Some(d("15.00")));
        assert_eq!(Discount::AmountOff { amount: d("5") }.amount_on(d("3.50")), Some(d("3.50")));
        assert_eq!(Discount::FreeShipping.amount_on(d("20")), None);
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn issued_voucher(owner: VoucherOwner) -> Voucher {
        Voucher {
            code: VoucherCode::parse("CB-7KQ4-M9XD-2PWE").unwrap(),
            cart_id: "cart-1".into(),
            owner,
            customer_key: CustomerKey::Guest("cart-1".into()),
            campaign_id: "abandoned-cart".into(),
            step: 0,
            variant: None,
            terms: VoucherTerms {
                tier: TierName::Standard,
                discount: Discount::PercentOff { percent: Decimal::from(5), max_amount: None },
                currency: "EUR".into(),
                min_cart_value: Some(Decimal::from(20)),
            },
            issued_at: at("2026-11-23T10:00:00Z"),
            expires_at: at("2026-11-30T10:00:00Z"),
            status: VoucherStatus::Issued,
            published_at: None,
        }
    }

    fn checkout(presenter: Presenter) -> Checkout {
        Checkout {
            presenter,
            cart_id: "cart-2".into(),
            subtotal: Decimal::from(50),
            currency: "EUR".into(),
            at: at("2026-11-25T10:00:00Z"),
        }
    }

    fn ana() -> Presenter {
        Presenter::Customer("ana".into())
    }

    #[test]
    fn given_the_owner_at_checkout_within_the_terms_when_checked_then_the_code_is_valid() {
        let voucher = issued_voucher(VoucherOwner::customer(&"ana".into()));
        assert_eq!(voucher.check(&checkout(ana())), Ok(()));
        let at_minimum = Checkout { subtotal: Decimal::from(20), currency: "eur".into(), ..checkout(ana()) };
        assert_eq!(voucher.check(&at_minimum), Ok(()));
    }

    #[test]
    fn given_someone_else_when_checked_then_it_is_not_theirs_whatever_the_state_of_the_code() {
        let mut voucher = issued_voucher(VoucherOwner::customer(&"ana".into()));
        voucher.status = VoucherStatus::Revoked { at: at("2026-11-24T00:00:00Z") };
        assert_eq!(voucher.check(&checkout(Presenter::Customer("bob".into()))), Err(Refusal::NotYours));
        let guest = Presenter::Guest(Email::parse("ana@example.com").unwrap());
        assert_eq!(voucher.check(&checkout(guest)), Err(Refusal::NotYours));
    }

    #[test]
    fn given_a_guests_voucher_when_checked_then_their_address_in_any_case_owns_it_and_another_does_not() {
        let owner = VoucherOwner::guest_email(&Email::parse("ana@example.com").unwrap());
        let voucher = issued_voucher(owner);
        let same = Presenter::Guest(Email::parse("Ana@Example.COM").unwrap());
        assert_eq!(voucher.check(&checkout(same)), Ok(()));
        let other = Presenter::Guest(Email::parse("bob@example.com").unwrap());
        assert_eq!(voucher.check(&checkout(other)), Err(Refusal::NotYours));
    }

    #[test]
    fn given_a_guest_voucher_bound_to_its_cart_when_checked_then_only_that_cart_may_use_it() {
        let voucher = issued_voucher(VoucherOwner::guest_cart(&"cart-1".into()));
        let guest = || Presenter::Guest(Email::parse("ana@example.com").unwrap());
        assert_eq!(voucher.check(&Checkout { cart_id: "cart-1".into(), ..checkout(guest()) }), Ok(()));
        assert_eq!(voucher.check(&checkout(guest())), Err(Refusal::NotYours));
    }

    #[test]
    fn given_a_used_or_revoked_voucher_when_its_owner_checks_it_then_the_state_is_the_reason() {
        let mut voucher = issued_voucher(VoucherOwner::customer(&"ana".into()));
        voucher.status =
            VoucherStatus::Redeemed { order_id: "o1".into(), at: at("2026-11-24T00:00:00Z"), discount: None };
        assert_eq!(voucher.check(&checkout(ana())), Err(Refusal::AlreadyRedeemed));
        voucher.status = VoucherStatus::Revoked { at: at("2026-11-24T00:00:00Z") };
        assert_eq!(voucher.check(&checkout(ana())), Err(Refusal::Revoked));
    }

    #[test]
    fn given_the_expiry_instant_when_checked_then_the_code_has_expired() {
        let voucher = issued_voucher(VoucherOwner::customer(&"ana".into()));
        let just_before = Checkout { at: voucher.expires_at - Duration::seconds(1), ..checkout(ana()) };
        assert_eq!(voucher.check(&just_before), Ok(()));
        assert_eq!(voucher.check(&Checkout { at: voucher.expires_at, ..checkout(ana()) }), Err(Refusal::Expired));
    }

    #[test]
    fn given_another_currency_or_a_subtotal_below_the_minimum_when_checked_then_each_is_its_reason() {
        let voucher = issued_voucher(VoucherOwner::customer(&"ana".into()));
        assert_eq!(voucher.check(&Checkout { currency: "USD".into(), ..checkout(ana()) }), Err(Refusal::WrongCurrency));
        let below = Checkout { subtotal: "19.99".parse().unwrap(), ..checkout(ana()) };
        assert_eq!(voucher.check(&below), Err(Refusal::BelowMinimum));
    }

    #[test]
    fn given_a_guest_email_when_made_an_owner_then_the_address_is_not_in_it() {
        let email = Email::parse("Ana@Example.com").unwrap();
        let owner = VoucherOwner::guest_email(&email);
        assert!(owner.as_str().starts_with("email:"));
        assert!(!owner.as_str().to_lowercase().contains("ana"));
        assert_eq!(owner, VoucherOwner::guest_email(&Email::parse("ana@example.com").unwrap()));
    }
}
