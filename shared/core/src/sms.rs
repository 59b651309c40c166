//! What an SMS costs and how it ends: segment counting (GSM 03.38 against
//! UCS-2) and the opt-out instruction each destination country expects.
//! Pure functions: the checker applies them to a rendered SMS.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::campaign::CampaignError;

/// The instruction an SMS ends with where no country setting applies.
pub const DEFAULT_OPT_OUT: &str = "Reply STOP to opt out";

/// The GSM 03.38 default alphabet (one septet each). `\u{1b}` (the escape
/// itself) is left out: it is never text.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                          ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table: an escape septet plus one, so two each.
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{0c}";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// 7-bit GSM: 160 characters in one segment, 153 per part when split.
    Gsm7,
    /// 16-bit UCS-2, as soon as one character is outside GSM-7: 70 / 67.
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }

    /// Units in a message sent whole, and in each part of a split one (the
    /// rest of the part carries the concatenation header).
    fn capacity(self) -> (usize, usize) {
        match self {
            Encoding::Gsm7 => (160, 153),
            Encoding::Ucs2 => (70, 67),
        }
    }
}

/// How an SMS body travels: its encoding, its length in that encoding's
/// units (septets or UTF-16 code units) and the segments billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segments {
    pub encoding: Encoding,
    pub units: usize,
    pub segments: usize,
}

/// Counts `body` as a carrier does: GSM-7 if every character is in the
/// default alphabet or its extension (which costs two septets), else UCS-2
/// (a character outside the Basic Multilingual Plane, an emoji, is a
/// surrogate pair: two units). A split message is packed part by part, and
/// neither an escape pair nor a surrogate pair is cut between two parts.
pub fn segments(body: &str) -> Segments {
    let gsm7 = body.chars().map(gsm7_units).collect::<Option<Vec<usize>>>();
    let (encoding, widths) = match gsm7 {
        Some(widths) => (Encoding::Gsm7, widths),
        None => (Encoding::Ucs2, body.chars().map(char::len_utf16).collect()),
    };
    let units: usize = widths.iter().sum();
    let (whole, part) = encoding.capacity();
    if units <= whole {
        return Segments { encoding, units, segments: 1 };
    }
    let (mut segments, mut used) = (1, 0);
    for width in widths {
        if used + width > part {
            segments += 1;
            used = 0;
        }
        used += width;
    }
    Segments { encoding, units, segments }
}

fn gsm7_units(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// The opt-out instruction per destination country (ISO 3166 alpha-2, as
/// the phone number's country code gives it), and `default` for the rest.
/// A campaign's `[sms_opt_out]` table, edited without a deploy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OptOutTexts(BTreeMap<String, String>);

impl OptOutTexts {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The instruction for an SMS to `e164`: the table's entry for its
    /// country, else the shipped wording for that country (the languages
    /// of the shipped templates), else the table's `default`, else
    /// [`DEFAULT_OPT_OUT`].
    pub fn for_number(&self, e164: &str) -> &str {
        let country = crate::contact::phone_region(e164);
        let country = country.as_deref();
        country
            .and_then(|c| self.0.get(c).map(String::as_str))
            .or_else(|| country.and_then(shipped_opt_out))
            .or_else(|| self.0.get("default").map(String::as_str))
            .unwrap_or(DEFAULT_OPT_OUT)
    }

    /// Every bad key or text, with its field path under `sms_opt_out`.
    pub fn problems(&self) -> Vec<CampaignError> {
        let mut errors = Vec::new();
        for (key, text) in &self.0 {
            let field = format!("sms_opt_out.{key}");
            let country = key.len() == 2 && key.bytes().all(|b| b.is_ascii_uppercase());
            if !country && key != "default" {
                let message = "must be a two-letter country code in capitals (ISO 3166, e.g. FR) or default".into();
                errors.push(CampaignError { field: field.clone(), message });
            }
            // A carrier filters an SMS whose way out is missing or buried.
            if text.trim().is_empty() || text.chars().count() > 60 || text.contains(['\n', '\r']) {
                errors.push(CampaignError { field, message: "must be one line of 1 to 60 characters".into() });
            }
        }
        errors
    }
}

/// The shipped instruction in the language of a country the shipped
/// templates are written for.
fn shipped_opt_out(country: &str) -> Option<&'static str> {
    match country {
        "FR" => Some("STOP pour vous désabonner"),
        "DE" | "AT" => Some("Abmelden: STOP"),
        "ES" => Some("Responde STOP para darte de baja"),
        _ => None,
    }
}

/// `body` with the typography that has a GSM-7 twin replaced by it: the
/// no-break and thin spaces of formatted money and dates (`60,00 €` in
/// French) and curly quotes. One of them alone would switch the whole SMS
/// to UCS-2, cutting a segment from 160 characters to 70.
pub fn plain_typography(body: &str) -> String {
    body.chars()
        .map(|c| match c {
            '\u{a0}' | '\u{202f}' | '\u{2009}' => ' ',
            '\u{2018}' | '\u{2019}' => '\'',
            '\u{201c}' | '\u{201d}' => '"',
            other => other,
        })
        .collect()
}

/// `body` ending with `instruction`, added after a space unless the body
/// already ends with it (a template that words its own way out).
pub fn with_opt_out(body: &str, instruction: &str) -> String {
    let body = body.trim_end();
    let bare = |s: &str| s.trim_end().trim_end_matches('.').to_lowercase();
    if bare(body).ends_with(&bare(instruction)) {
        return body.to_owned();
    }
    format!("{body} {instruction}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(body: &str) -> (Encoding, usize, usize) {
        let s = segments(body);
        (s.encoding, s.units, s.segments)
    }

    #[test]
    fn given_a_typical_reminder_with_a_short_link_when_counted_then_it_is_one_gsm7_segment() {
        // GIVEN the shipped English reminder with a short link and the default opt-out
        let body = "Ana, your cart (2 items, €42.50) is waiting: https://shop.example/r/Xk3f9Qa2Lm \
                    Reply STOP to opt out";
        // WHEN counted THEN GSM-7; € is an extension character (2 septets)
        assert_eq!(count(body), (Encoding::Gsm7, body.chars().count() + 1, 1));
    }

    #[test]
    fn given_gsm7_text_at_the_limits_when_counted_then_160_is_one_segment_and_161_is_two_of_153() {
        assert_eq!(count(&"a".repeat(160)), (Encoding::Gsm7, 160, 1));
        assert_eq!(count(&"a".repeat(161)), (Encoding::Gsm7, 161, 2));
        assert_eq!(count(&"a".repeat(306)), (Encoding::Gsm7, 306, 2));
        assert_eq!(count(&"a".repeat(307)), (Encoding::Gsm7, 307, 3));
    }

    #[test]
    fn given_extension_characters_when_counted_then_each_costs_two_septets_and_is_never_split() {
        // GIVEN 80 euro signs: 160 septets, still one segment
        assert_eq!(count(&"€".repeat(80)), (Encoding::Gsm7, 160, 1));
        // GIVEN 152 letters then a euro sign: the escape pair would straddle the first part's end
        let body = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        // THEN the pair moves whole to the second part: 152 + (2 + 10), two parts
        assert_eq!(count(&body), (Encoding::Gsm7, 164, 2));
    }

    #[test]
    fn given_accented_letters_when_counted_then_gsm_ones_keep_gsm7_and_others_switch_to_ucs2() {
        // é, ü, ñ and à are in the GSM alphabet
        assert_eq!(count("Café für Niño à"), (Encoding::Gsm7, 15, 1));
        // í and the typographic apostrophe are not: the whole message is UCS-2
        assert_eq!(count("Tu carrito (1 artículo)"), (Encoding::Ucs2, 23, 1));
        let french = format!("Votre panier n’attend plus {}", "x".repeat(50));
        assert_eq!(count(&french), (Encoding::Ucs2, 77, 2));
    }

    #[test]
    fn given_an_emoji_when_counted_then_it_is_a_surrogate_pair_of_two_ucs2_units() {
        assert_eq!(count("Your cart 🛒"), (Encoding::Ucs2, 12, 1));
        // 69 letters and one emoji: 71 units, over 70: two parts of at most 67
        let body = format!("{}🛒", "a".repeat(69));
        assert_eq!(count(&body), (Encoding::Ucs2, 71, 2));
        // 66 letters then an emoji: the pair does not fit the first part's last unit
        let body = format!("{}🛒{}", "a".repeat(66), "b".repeat(10));
        assert_eq!(count(&body), (Encoding::Ucs2, 78, 2));
        assert_eq!(count(&"🛒".repeat(67)), (Encoding::Ucs2, 134, 3));
    }

    #[test]
    fn given_country_settings_when_the_opt_out_is_chosen_then_the_numbers_country_wins_then_default() {
        // GIVEN a French text and a custom default
        let texts: OptOutTexts = toml::from_str("FR = \"STOP au 36180\"\ndefault = \"Text STOP to end\"").unwrap();
        // WHEN chosen per number THEN France gets its own, Germany its shipped wording, the UK the default
        assert_eq!(texts.for_number("+33612345678"), "STOP au 36180");
        assert_eq!(texts.for_number("+4915112345678"), "Abmelden: STOP");
        assert_eq!(texts.for_number("+447700900123"), "Text STOP to end");
        // AND with no settings at all, the shipped wording, else the built-in default
        assert_eq!(OptOutTexts::default().for_number("+33612345678"), "STOP pour vous désabonner");
        assert_eq!(OptOutTexts::default().for_number("+14155550123"), DEFAULT_OPT_OUT);
        assert_eq!(OptOutTexts::default().for_number("not a number"), DEFAULT_OPT_OUT);
    }

    #[test]
    fn given_bad_opt_out_settings_when_checked_then_each_names_its_field_and_why() {
        let texts: OptOutTexts = toml::from_str("fr = \"STOP\"\nDE = \"\"\nUS = \"Reply STOP\"").unwrap();
        let fields: Vec<String> = texts.problems().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["sms_opt_out.DE", "sms_opt_out.fr"]);
    }

    #[test]
    fn given_french_money_and_an_apostrophe_when_made_plain_then_the_sms_stays_gsm7() {
        let body = "Votre panier (60,00\u{a0}€) n\u{2019}attend que vous";
        assert_eq!(segments(body).encoding, Encoding::Ucs2);
        let plain = plain_typography(body);
        assert_eq!(plain, "Votre panier (60,00 €) n'attend que vous");
        assert_eq!(segments(&plain).encoding, Encoding::Gsm7);
    }

    #[test]
    fn given_a_body_when_the_opt_out_is_added_then_it_ends_the_sms_once() {
        assert_eq!(
            with_opt_out("Your cart: https://x/r/a ", DEFAULT_OPT_OUT),
            "Your cart: https://x/r/a Reply STOP to opt out"
        );
        // A template that already ends with it is kept as written.
        assert_eq!(with_opt_out("Cart: x. Reply STOP to opt out.", DEFAULT_OPT_OUT), "Cart: x. Reply STOP to opt out.");
    }
}
