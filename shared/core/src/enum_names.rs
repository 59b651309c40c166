//! The string form of unit enum variants, read from their serde derive.
//!
//! An enum's serde attributes (`rename_all`, `rename`, `alias`) are the one
//! place its strings are written: `name_of` and `from_name` read them back,
//! so an `as_str` or `parse` can never drift from the JSON, SQLite and
//! DynamoDB forms.

use serde::de::value::{Error as DeError, StrDeserializer};
use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::ser::{Error, Impossible, Serialize, Serializer};

/// The serialised name of a unit variant: `Channel::WebPush` -> `"web_push"`.
///
/// # Panics
/// When `T` does not serialise as a unit variant: a programming error (the
/// helper is only called from the `as_str` of unit enums), caught by each
/// enum's round-trip test.
pub fn name_of<T: Serialize>(value: &T) -> &'static str {
    match value.serialize(VariantName) {
        Ok(name) => name,
        Err(NotUnitVariant) => panic!("{} does not serialise as a unit variant", std::any::type_name::<T>()),
    }
}

/// The variant whose serde name or alias is `text`.
pub fn from_name<T: DeserializeOwned>(text: &str) -> Option<T> {
    let deserializer: StrDeserializer<'_, DeError> = text.into_deserializer();
    T::deserialize(deserializer).ok()
}

/// A serde serializer that only accepts a unit variant and answers its name.
struct VariantName;

#[derive(Debug)]
struct NotUnitVariant;

impl std::fmt::Display for NotUnitVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a unit enum variant")
    }
}

impl std::error::Error for NotUnitVariant {}

impl Error for NotUnitVariant {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        NotUnitVariant
    }
}

type Rejected = Result<&'static str, NotUnitVariant>;
type Never = Impossible<&'static str, NotUnitVariant>;

/// Every serializer method but `serialize_unit_variant` refuses.
macro_rules! refuse {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Rejected { Err(NotUnitVariant) })*
    };
}

impl Serializer for VariantName {
    type Ok = &'static str;
    type Error = NotUnitVariant;
    type SerializeSeq = Never;
    type SerializeTuple = Never;
    type SerializeTupleStruct = Never;
    type SerializeTupleVariant = Never;
    type SerializeMap = Never;
    type SerializeStruct = Never;
    type SerializeStructVariant = Never;

    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Rejected {
        Ok(variant)
    }

    refuse! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32); serialize_i64(i64);
        serialize_u8(u8); serialize_u16(u16); serialize_u32(u32); serialize_u64(u64);
        serialize_f32(f32); serialize_f64(f64); serialize_char(char); serialize_str(&str); serialize_bytes(&[u8]);
        serialize_none(); serialize_unit(); serialize_unit_struct(&'static str);
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Rejected {
        Err(NotUnitVariant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, _: &T) -> Rejected {
        Err(NotUnitVariant)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Rejected {
        Err(NotUnitVariant)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Never, NotUnitVariant> {
        Err(NotUnitVariant)
    }
    fn serialize_tuple(self, _: usize) -> Result<Never, NotUnitVariant> {
        Err(NotUnitVariant)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Never, NotUnitVariant> {
        Err(NotUnitVariant)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Never, NotUnitVariant> {
        Err(NotUnitVariant)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Never, NotUnitVariant> {
        Err(NotUnitVariant)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Never, NotUnitVariant> {
        Err(NotUnitVariant)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Never, NotUnitVariant> {
        Err(NotUnitVariant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Colour {
        DeepBlue,
        #[serde(alias = "crimson")]
        Red,
    }

    #[test]
    fn given_a_unit_variant_when_named_then_its_serde_rename_is_answered() {
        assert_eq!((name_of(&Colour::DeepBlue), name_of(&Colour::Red)), ("deep_blue", "red"));
    }

    #[test]
    fn given_a_name_or_an_alias_when_parsed_then_the_variant_is_found_and_anything_else_is_none() {
        assert_eq!(from_name::<Colour>("deep_blue"), Some(Colour::DeepBlue));
        assert_eq!(from_name::<Colour>("crimson"), Some(Colour::Red));
        assert_eq!(from_name::<Colour>("DeepBlue"), None);
        assert_eq!(from_name::<Colour>(""), None);
    }

    #[test]
    fn given_every_event_type_and_device_when_named_then_the_name_is_the_json_string_and_parses_back() {
        use crate::event::{Device, EventType};
        for kind in EventType::ALL {
            assert_eq!(serde_json::to_value(kind).expect("serialisable"), kind.as_str());
            assert_eq!(from_name::<EventType>(kind.as_str()), Some(kind));
        }
        for device in [Device::Mobile, Device::Desktop, Device::Tablet] {
            let json = serde_json::to_value(device).expect("serialisable");
            assert_eq!(from_name::<Device>(json.as_str().expect("a string")), Some(device));
        }
        assert_eq!(EventType::AddToCart.as_str(), "add_to_cart");
    }

    #[test]
    #[should_panic(expected = "does not serialise as a unit variant")]
    fn given_a_value_that_is_not_a_unit_variant_when_named_then_it_is_a_programming_error() {
        name_of(&"plain text");
    }
}
