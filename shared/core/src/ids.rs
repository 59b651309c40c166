//! Identifiers. Each kind of id is its own type, so a cart id cannot be
//! passed where a customer id is expected. They serialise as plain strings
//! (`serde(transparent)`): stored records and JSON answers are unchanged.
//!
//! Ids from outside (request bodies) are checked once, by [`parse_id`] in the
//! event conversion; ids Cartback reads back from its own storage or makes
//! itself (message ids, feedback dedupe ids) are trusted and built with
//! `From`.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest id accepted from outside.
pub const MAX_ID_LEN: usize = 128;

/// Why a text is not an acceptable id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to 128 characters without spaces or control characters")]
pub struct InvalidId;

/// Checks an id received from outside: 1 to 128 characters, no spaces or
/// control characters.
pub fn parse_id<T: From<String>>(text: &str) -> Result<T, InvalidId> {
    if text.is_empty() || text.len() > MAX_ID_LEN || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(InvalidId);
    }
    Ok(T::from(text.to_owned()))
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl From<&$name> for $name {
            fn from(id: &$name) -> Self {
                id.clone()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl From<&String> for $name {
            fn from(id: &String) -> Self {
                $name(id.clone())
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == &other.0
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

string_id!(
    /// A storefront cart.
    CartId
);
string_id!(
    /// A known customer (the storefront's account id).
    CustomerId
);
string_id!(
    /// An event's idempotency key; also the dedupe key of feedback effects.
    EventId
);
string_id!(
    /// A message per cart, step and channel (`m_…`).
    MessageId
);

/// Whose message history a message counts in: a known customer's, or, for
/// a guest, the cart's own. Stored as `customer:<id>` or `guest:<cart_id>`:
/// the text before the first `:` names the kind, so no customer id can be
/// mistaken for a guest cart (a customer named `cart:x` is `customer:cart:x`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CustomerKey {
    Customer(CustomerId),
    Guest(CartId),
}

const CUSTOMER_PREFIX: &str = "customer:";
const GUEST_PREFIX: &str = "guest:";
/// The guest form written before the tagged encoding.
const LEGACY_GUEST_PREFIX: &str = "cart:";

impl CustomerKey {
    pub fn for_cart(customer_id: Option<&CustomerId>, cart_id: &CartId) -> Self {
        match customer_id {
            Some(id) => CustomerKey::Customer(id.clone()),
            None => CustomerKey::Guest(cart_id.clone()),
        }
    }

    /// The known customer, if any.
    pub fn customer(&self) -> Option<&CustomerId> {
        match self {
            CustomerKey::Customer(id) => Some(id),
            CustomerKey::Guest(_) => None,
        }
    }

    /// Reads the stored form. Records written before the tagged form held
    /// the bare customer id or `cart:<cart_id>`; they read as before.
    pub fn from_stored(text: &str) -> Self {
        if let Some(id) = text.strip_prefix(CUSTOMER_PREFIX) {
            CustomerKey::Customer(id.into())
        } else if let Some(id) = text.strip_prefix(GUEST_PREFIX) {
            CustomerKey::Guest(id.into())
        } else if let Some(id) = text.strip_prefix(LEGACY_GUEST_PREFIX) {
            CustomerKey::Guest(id.into())
        } else {
            CustomerKey::Customer(text.into())
        }
    }
}

impl fmt::Display for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CustomerKey::Customer(id) => write!(f, "{CUSTOMER_PREFIX}{id}"),
            CustomerKey::Guest(id) => write!(f, "{GUEST_PREFIX}{id}"),
        }
    }
}

impl Serialize for CustomerKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CustomerKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(CustomerKey::from_stored(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_customer_named_like_a_guest_cart_when_encoded_then_the_keys_differ() {
        let customer = CustomerKey::for_cart(Some(&CustomerId::from("cart:x")), &CartId::from("c9"));
        let guest = CustomerKey::for_cart(None, &CartId::from("x"));
        assert_ne!(customer.to_string(), guest.to_string());
        assert_eq!(CustomerKey::from_stored(&customer.to_string()), customer);
        assert_eq!(CustomerKey::from_stored(&guest.to_string()), guest);
    }

    #[test]
    fn given_keys_stored_in_the_old_form_when_read_then_they_mean_what_they_meant() {
        assert_eq!(CustomerKey::from_stored("cart:c1"), CustomerKey::Guest("c1".into()));
        assert_eq!(CustomerKey::from_stored("u1"), CustomerKey::Customer("u1".into()));
    }

    #[test]
    fn given_ids_when_serialised_then_they_are_plain_strings() {
        assert_eq!(serde_json::to_string(&CartId::from("c1")).unwrap(), "\"c1\"");
        let key: CustomerKey = serde_json::from_str("\"guest:c1\"").unwrap();
        assert_eq!(key, CustomerKey::Guest("c1".into()));
        assert_eq!(serde_json::to_string(&key).unwrap(), "\"guest:c1\"");
    }

    #[test]
    fn given_outside_text_when_parsed_as_an_id_then_blank_long_or_spaced_text_is_refused() {
        assert_eq!(parse_id::<CartId>("c-1"), Ok(CartId::from("c-1")));
        for bad in ["", "a b", "tab\t", &"x".repeat(129)] {
            assert_eq!(parse_id::<CartId>(bad), Err(InvalidId), "{bad:?}");
        }
    }
}
