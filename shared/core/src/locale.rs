//! Locales as messages need them: a customer's tag matched to the closest
//! translation of a template set, the writing direction, and money written
//! the way the customer reads it (`€14.90`, `14,90 €`, `¥1,490`).
//!
//! Separators, grouping, digits, currency symbols and their placement,
//! and percent patterns come from CLDR through ICU4X (`icu_decimal`,
//! `icu_experimental`'s currency and percent formatters, their data
//! compiled in). The rounding follows ISO 4217's minor units.

use icu_decimal::input::Decimal as IcuDecimal;
use icu_decimal::DecimalFormatter;
use icu_experimental::dimension::currency::formatter::CurrencyFormatter;
use icu_experimental::dimension::currency::CurrencyType;
use icu_experimental::dimension::percent::formatter::PercentFormatter;
use icu_locale_core::Locale;
use rust_decimal::Decimal;
use writeable::Writeable;

/// A locale tag as stored on a customer (`de-AT`, `fr_CA`, `EN`, or a
/// POSIX locale such as `de_DE.UTF-8` or `de_DE@euro`), made canonical
/// (`de-AT`, `fr-CA`, `en`, `de-DE`): language lower case, script title
/// case, region upper case; a POSIX codeset and modifier dropped.
pub fn canonical_tag(tag: &str) -> String {
    let tag = tag.trim();
    tag.split(['.', '@'])
        .next()
        .unwrap_or(tag)
        .split(['-', '_'])
        .enumerate()
        .map(|(i, part)| match (i, part.len()) {
            (0, _) => part.to_ascii_lowercase(),
            (_, 4) if part.chars().all(|c| c.is_ascii_alphabetic()) => {
                let mut chars = part.chars();
                let first = chars.next().map(|c| c.to_ascii_uppercase()).into_iter();
                first.chain(chars.map(|c| c.to_ascii_lowercase())).collect()
            }
            (_, 2) => part.to_ascii_uppercase(),
            _ => part.to_ascii_lowercase(),
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Whether `tag` is a well-formed BCP 47 tag in canonical form as template
/// sets key their locales: a 2-3 letter language (`en`), optionally a
/// script (`zh-Hant`) and a region (`fr-CA`, `es-419`).
pub fn is_well_formed(tag: &str) -> bool {
    if canonical_tag(tag) != tag {
        return false;
    }
    let mut parts = tag.split('-');
    let language = parts.next().unwrap_or_default();
    if !(2..=3).contains(&language.len()) || !language.chars().all(|c| c.is_ascii_lowercase()) {
        return false;
    }
    let rest: Vec<&str> = parts.collect();
    let (script, region) = match rest.as_slice() {
        [] => (None, None),
        [one] if one.len() == 4 => (Some(*one), None),
        [one] => (None, Some(*one)),
        [script, region] => (Some(*script), Some(*region)),
        _ => return false,
    };
    let script_ok = script.is_none_or(|s| s.len() == 4 && s.chars().all(|c| c.is_ascii_alphabetic()));
    let region_ok = region.is_none_or(|r| {
        (r.len() == 2 && r.chars().all(|c| c.is_ascii_uppercase()))
            || (r.len() == 3 && r.chars().all(|c| c.is_ascii_digit()))
    });
    script_ok && region_ok
}

/// The language of a tag: `de` for `de-AT`.
pub fn language_of(tag: &str) -> String {
    canonical_tag(tag).split('-').next().unwrap_or_default().to_owned()
}

/// Which of `available` a customer with `wanted` reads: the exact tag, then
/// its language alone (`de` for `de-AT`), then another variant of the same
/// language (`fr-CA` for `fr-BE`), then `default`.
pub fn closest<'a>(
    wanted: Option<&str>,
    available: impl IntoIterator<Item = &'a str> + Clone,
    default: &'a str,
) -> &'a str {
    let Some(wanted) = wanted.map(canonical_tag).filter(|t| !t.is_empty()) else {
        return default;
    };
    let language = language_of(&wanted);
    let found = available.clone().into_iter().find(|t| canonical_tag(t) == wanted);
    let found = found.or_else(|| available.clone().into_iter().find(|t| canonical_tag(t) == language));
    let found = found.or_else(|| available.into_iter().find(|t| language_of(t) == language));
    found.unwrap_or(default)
}

/// Languages written right to left.
const RIGHT_TO_LEFT: [&str; 9] = ["ar", "he", "fa", "ur", "ps", "yi", "dv", "sd", "ckb"];

/// `rtl` for Arabic, Hebrew, Persian, Urdu (...), otherwise `ltr`: the
/// `dir` attribute of an email's `<html>`.
pub fn direction(tag: &str) -> &'static str {
    if RIGHT_TO_LEFT.contains(&language_of(tag).as_str()) {
        "rtl"
    } else {
        "ltr"
    }
}

/// Minor units of the ISO 4217 currencies that do not have two: JPY has
/// none, KWD three. (CLDR rounds a few more to whole units in cash only;
/// a cart total is not cash.)
fn minor_units(currency: &str) -> u32 {
    const NONE: [&str; 17] = [
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF",
        "XPF",
    ];
    const THREE: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    if NONE.contains(&currency) {
        0
    } else if THREE.contains(&currency) {
        3
    } else {
        2
    }
}

/// `amount` rounded half away from zero to `digits` fraction digits, and
/// written with exactly that many (`14.90`), as ICU4X reads a decimal.
fn rounded(amount: Decimal, digits: u32) -> Option<IcuDecimal> {
    let mut rounded = amount.round_dp_with_strategy(digits, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(digits);
    rounded.to_string().parse().ok()
}

/// The ICU4X locale of a tag; an unknown one reads as the root locale.
fn icu_locale(tag: &str) -> Locale {
    Locale::try_from_str(&canonical_tag(tag)).unwrap_or(Locale::UNKNOWN)
}

/// The tag to write with: the customer's, or English when there is none.
fn tag_or_english(locale: Option<&str>) -> String {
    locale.map(canonical_tag).filter(|t| !t.is_empty()).unwrap_or_else(|| "en".to_owned())
}

/// The number alone, in the locale's separators, grouping and digits.
fn number_text(amount: Decimal, digits: u32, tag: &str) -> String {
    let number = rounded(amount, digits);
    let formatter = DecimalFormatter::try_new((&icu_locale(tag)).into(), Default::default())
        .or_else(|_| DecimalFormatter::try_new(Default::default(), Default::default()));
    match (formatter, number) {
        (Ok(formatter), Some(number)) => formatter.format(&number).to_string(),
        _ => amount.round_dp(digits).to_string(),
    }
}

/// An amount in `currency` as a customer in `locale` reads it: `€14.90`
/// (en), `14,90 €` (de, fr, es), `¥1,490` (JPY has no minor units),
/// `CHF 14.90`, `₺1.234,50` (tr). Symbol, its place and spacing,
/// separators and digits are CLDR's (ICU4X's currency formatter, its data
/// compiled in); the rounding is ISO 4217's minor units. No locale reads as
/// English; no currency writes the number alone.
pub fn money(amount: Decimal, currency: &str, locale: Option<&str>) -> String {
    let tag = tag_or_english(locale);
    let currency = currency.trim();
    let digits = minor_units(currency);
    if currency.is_empty() {
        return number_text(amount, digits, &tag);
    }
    let formatter = CurrencyType::try_from_str(&currency.to_ascii_lowercase())
        .ok()
        .and_then(|code| CurrencyFormatter::try_new_symbol((&icu_locale(&tag)).into(), code, Default::default()).ok());
    match (formatter, rounded(amount, digits)) {
        (Some(formatter), Some(number)) => formatter.format_fixed_decimal(&number).write_to_string().into_owned(),
        // Not an ISO code (compiled data answers every locale, the root at
        // worst): the text as it came, before the number.
        _ => format!("{currency}\u{a0}{}", number_text(amount, digits, &tag)),
    }
}

/// A percentage as `locale` writes it (CLDR, through ICU4X): `10%` (en),
/// `10 %` (de, es: no-break space), `10 %` (fr: narrow no-break space),
/// `%10` (tr), `12,5 %`.
pub fn percent(value: Decimal, locale: Option<&str>) -> String {
    let tag = tag_or_english(locale);
    let value = value.normalize();
    let formatter = PercentFormatter::try_new((&icu_locale(&tag)).into(), Default::default());
    match (formatter, rounded(value, value.scale())) {
        (Ok(formatter), Some(number)) => formatter.format(&number).write_to_string().into_owned(),
        _ => format!("{}%", number_text(value, value.scale(), &tag)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    /// GIVEN 14.90 EUR, 1490 JPY, 14.9 CHF and 1234.5 EUR
    /// WHEN written for en, de, fr, es, ja and an Arabic (right-to-left) locale
    /// THEN each reads as CLDR writes it: symbol place, separators, minor units.
    #[test]
    fn given_amounts_when_written_per_locale_then_symbol_separators_and_minor_units_follow_cldr() {
        assert_eq!(money(d("14.9"), "EUR", Some("en")), "€14.90");
        assert_eq!(money(d("14.9"), "EUR", None), "€14.90", "no locale reads English");
        assert_eq!(money(d("14.9"), "EUR", Some("de-DE")), "14,90\u{a0}€");
        assert_eq!(money(d("14.9"), "EUR", Some("fr")), "14,90\u{a0}€");
        assert_eq!(money(d("14.9"), "EUR", Some("es_ES")), "14,90\u{a0}€");
        assert_eq!(money(d("1490"), "JPY", Some("en")), "¥1,490");
        assert_eq!(money(d("1490.4"), "JPY", Some("ja-JP")), "￥1,490");
        assert_eq!(money(d("14.9"), "CHF", Some("en")), "CHF\u{a0}14.90");
        assert_eq!(money(d("1234.5"), "EUR", Some("de")), "1.234,50\u{a0}€");
        assert_eq!(money(d("1234.5"), "EUR", Some("fr")), "1\u{202f}234,50\u{a0}€");
        assert_eq!(money(d("1234.5"), "EUR", Some("es")), "1234,50\u{a0}€", "Spanish groups from 5 digits");
        assert_eq!(money(d("12345.5"), "EUR", Some("es")), "12.345,50\u{a0}€");
        assert_eq!(money(d("1234.5"), "USD", Some("en-US")), "$1,234.50");
        assert_eq!(money(d("14.9"), "EUR", Some("nl")), "€\u{a0}14,90");
        assert_eq!(money(d("1.2345"), "KWD", Some("en")), "KWD\u{a0}1.235", "three minor units, rounded");
        // Egyptian Arabic writes Arabic-Indic digits and its own separators (CLDR `arab` numbering), after a
        // right-to-left mark (CLDR's pattern; the hand table before ICU4X's formatter had none).
        assert_eq!(money(d("1234.5"), "EUR", Some("ar-EG")), "\u{200f}١٬٢٣٤٫٥٠\u{a0}€");
    }

    /// GIVEN 1234.50 in SEK, DKK, NOK, PLN, CZK and HUF
    /// WHEN written in each currency's own language, and in English and German
    /// THEN the own language uses CLDR's symbol after the number (`kr`, `kr.`, `zł`, `Kč`, `Ft`), the others the code.
    #[test]
    fn given_nordic_and_central_european_currencies_when_written_then_their_own_language_uses_the_symbol() {
        assert_eq!(money(d("1234.5"), "SEK", Some("sv-SE")), "1\u{a0}234,50\u{a0}kr");
        assert_eq!(money(d("1234.5"), "DKK", Some("da")), "1.234,50\u{a0}kr.");
        assert_eq!(money(d("1234.5"), "NOK", Some("nb-NO")), "1\u{a0}234,50\u{a0}kr");
        assert_eq!(money(d("1234.5"), "PLN", Some("pl")), "1234,50\u{a0}zł", "Polish groups from 5 digits");
        assert_eq!(money(d("1234.5"), "CZK", Some("cs-CZ")), "1\u{a0}234,50\u{a0}Kč");
        // CLDR writes forints whole (ISO 4217 keeps two minor units no one pays in).
        assert_eq!(money(d("1234.5"), "HUF", Some("hu")), "1235\u{a0}Ft");
        assert_eq!(money(d("1234.5"), "SEK", Some("en")), "SEK\u{a0}1,234.50");
        assert_eq!(money(d("1234.5"), "SEK", Some("de")), "1.234,50\u{a0}SEK");
    }

    /// GIVEN customers whose locale is a POSIX one (`de_DE.UTF-8`, `de_DE@euro`, `fr_FR.UTF-8@euro`)
    /// WHEN money is written and a translation picked
    /// THEN they read as de-DE and fr-FR do.
    #[test]
    fn given_a_posix_locale_when_used_then_it_reads_as_its_language_and_region() {
        for posix in ["de_DE.UTF-8", "de_DE@euro", "de_DE.ISO-8859-15@euro"] {
            assert_eq!(canonical_tag(posix), "de-DE");
            assert_eq!(money(d("1234.5"), "EUR", Some(posix)), "1.234,50\u{a0}€", "{posix}");
        }
        assert_eq!(money(d("1234.5"), "EUR", Some("fr_FR.UTF-8@euro")), "1\u{202f}234,50\u{a0}€");
        assert_eq!(closest(Some("de_AT.UTF-8"), ["en", "de"], "en"), "de");
    }

    /// GIVEN currencies the hand table had no symbol or place for (TRY, RUB, ZAR, THB; USD in Spanish)
    /// WHEN written in their own locales
    /// THEN CLDR's symbol and placement are used (ICU4X's currency formatter), not the ISO code.
    #[test]
    fn given_currencies_beyond_a_hand_table_when_written_then_cldr_symbols_and_places_are_used() {
        assert_eq!(money(d("1234.5"), "TRY", Some("tr-TR")), "₺1.234,50");
        assert_eq!(money(d("1234.5"), "RUB", Some("ru")), "1\u{a0}234,50\u{a0}₽");
        assert_eq!(money(d("1234.5"), "ZAR", Some("en-ZA")), "R1\u{a0}234,50");
        assert_eq!(money(d("1234.5"), "THB", Some("th")), "฿1,234.50");
        assert_eq!(money(d("1234.5"), "USD", Some("es")), "1234,50\u{a0}US$");
        assert_eq!(percent(d("10"), Some("tr")), "%10");
    }

    #[test]
    fn given_percentages_when_written_per_locale_then_the_locales_spacing_is_used() {
        assert_eq!(percent(d("10"), Some("en")), "10%");
        assert_eq!(percent(d("10"), Some("de")), "10\u{a0}%");
        // CLDR's French percent pattern has a no-break space (the hand table had a narrow one).
        assert_eq!(percent(d("12.5"), Some("fr-FR")), "12,5\u{a0}%");
        assert_eq!(percent(d("10.0"), Some("es")), "10\u{a0}%");
    }

    /// GIVEN a set with en, de and fr-CA
    /// WHEN customers with de-AT, fr-BE, FR_ca, pt-BR and no locale are matched
    /// THEN exact tag, then language, then another variant of it, then the default.
    #[test]
    fn given_a_customers_locale_when_matched_then_exact_then_language_then_default() {
        let available = ["en", "de", "fr-CA"];
        let pick = |wanted: Option<&str>| closest(wanted, available.iter().copied(), "en");
        assert_eq!(pick(Some("de-AT")), "de");
        assert_eq!(pick(Some("FR_ca")), "fr-CA");
        assert_eq!(pick(Some("fr-BE")), "fr-CA");
        assert_eq!(pick(Some("pt-BR")), "en");
        assert_eq!(pick(None), "en");
        assert_eq!(pick(Some("")), "en");
    }

    #[test]
    fn given_tags_when_checked_then_only_canonical_bcp47_ones_are_well_formed() {
        for good in ["en", "de-AT", "fr-CA", "zh-Hant", "zh-Hant-TW", "es-419"] {
            assert!(is_well_formed(good), "{good}");
        }
        for bad in ["", "EN", "en_US", "english", "e", "de-at", "fr-CA-x", "12"] {
            assert!(!is_well_formed(bad), "{bad}");
        }
        assert_eq!(canonical_tag("ZH_hant_tw"), "zh-Hant-TW");
    }

    #[test]
    fn given_right_to_left_languages_when_asked_then_the_direction_is_rtl() {
        for tag in ["ar", "he-IL", "fa", "ur-PK"] {
            assert_eq!(direction(tag), "rtl", "{tag}");
        }
        assert_eq!(direction("en"), "ltr");
        assert_eq!(direction("de-AT"), "ltr");
    }
}
