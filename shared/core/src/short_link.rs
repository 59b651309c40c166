//! Short opaque links for SMS: `<base>/r/<token>` with a random 10-symbol
//! base62 token (about 59.5 bits: guessing one live link among a million
//! takes ~10^12 tries) stored server-side with what a signed link carries.
//! A signed token always holds a `.`; a short one never does, so both share
//! the `/r/` route. Email keeps the signed links (no store read per click).

use serde::{Deserialize, Serialize};

use crate::signing::LinkClaims;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const TOKEN_LEN: usize = 10;

/// A short link's token: exactly [`TOKEN_LEN`] base62 symbols.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShortToken(String);

impl ShortToken {
    /// A fresh token drawn from `rng` (the checker passes the operating
    /// system's cryptographic source; tests a seeded one).
    pub fn generate(rng: &mut impl rand::Rng) -> ShortToken {
        ShortToken((0..TOKEN_LEN).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect())
    }

    /// The token of a `/r/{token}` path, if it has a short token's shape.
    pub fn parse(text: &str) -> Option<ShortToken> {
        (text.len() == TOKEN_LEN && text.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| ShortToken(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ShortToken {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        ShortToken::parse(&text).ok_or_else(|| format!("{text:?} is not a short link token"))
    }
}

impl From<ShortToken> for String {
    fn from(token: ShortToken) -> String {
        token.0
    }
}

impl std::fmt::Display for ShortToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored short link: its token and the claims a signed link would carry
/// (message, cart, target, expiry). Stores keep it until `claims.expires`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShortLink {
    pub token: ShortToken,
    pub claims: LinkClaims,
}

impl ShortLink {
    /// A new link to `claims` with a token from the system's CSPRNG.
    pub fn new(claims: LinkClaims) -> ShortLink {
        ShortLink { token: ShortToken::generate(&mut rand::rngs::OsRng), claims }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn given_generated_tokens_when_read_back_then_each_is_ten_base62_symbols_and_they_differ() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let tokens: std::collections::HashSet<String> =
            (0..10_000).map(|_| ShortToken::generate(&mut rng).to_string()).collect();
        assert_eq!(tokens.len(), 10_000, "no repeat in 10,000 draws");
        assert!(tokens.iter().all(|t| ShortToken::parse(t).is_some()));
    }

    #[test]
    fn given_signed_or_odd_paths_when_parsed_then_they_are_not_short_tokens() {
        for text in ["eyJtIjoi.abc", "short", "Xk3f9Qa2Lm1", "Xk3f9Qa2L-", "Xk3f9Qa2Lé"] {
            assert_eq!(ShortToken::parse(text), None, "{text}");
        }
        assert_eq!(ShortToken::parse("Xk3f9Qa2Lm").map(String::from).as_deref(), Some("Xk3f9Qa2Lm"));
    }
}
