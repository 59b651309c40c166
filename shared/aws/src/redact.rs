//! Scrubbing provider error texts before they reach logs or the timeline:
//! SES and SNS may quote the recipient's address or number.

use cartback_core::contact::redact;

/// Replaces every word that looks like an email address, a phone number or
/// a long opaque token with its redacted form.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if !word.is_empty() {
            let trimmed = word.trim_matches(|c: char| {
                matches!(c, '.' | ',' | ';' | ':' | '"' | '\'' | '(' | ')' | '[' | ']' | '<' | '>')
            });
            let digits = trimmed.chars().filter(char::is_ascii_digit).count();
            let sensitive = trimmed.contains('@')
                || (trimmed.starts_with('+') && digits >= 6)
                || (trimmed.len() >= 32
                    && trimmed.chars().all(|c| c.is_ascii_alphanumeric() || "-_:".contains(c))
                    && !trimmed.starts_with("arn"));
            if sensitive {
                out.push_str(&word.replace(trimmed, &redact(trimmed)));
            } else {
                out.push_str(word);
            }
            word.clear();
        }
    };
    for c in text.chars() {
        if c.is_whitespace() {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_provider_error_quoting_contacts_when_redacted_then_they_are_masked() {
        let text = "Email address is not verified: ana@example.com, phone +33612345678.";
        let out = redact_text(text);
        assert!(!out.contains("ana@example.com") && !out.contains("+33612345678"), "{out}");
        assert!(out.starts_with("Email address is not verified: a***@example.com,"), "{out}");
    }
}

/// What went wrong in a JSON document, without serde's message: serde_json
/// quotes the offending value (`invalid type: string "ana@example.com"`),
/// and these bodies carry contact data. Category and position only.
pub fn json_error_summary(error: &serde_json::Error) -> String {
    let category = match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "the wrong shape",
        serde_json::error::Category::Eof => "cut short",
    };
    format!("{category} (line {}, column {})", error.line(), error.column())
}

#[cfg(test)]
mod json_error_tests {
    use super::json_error_summary;

    #[test]
    fn given_a_body_whose_error_would_quote_an_email_when_summarised_then_the_address_is_not_in_it() {
        let error = serde_json::from_str::<u32>("\"ana@example.com\"").expect_err("a string is not a number");
        assert!(error.to_string().contains("ana@example.com"), "serde quotes the value: {error}");
        let summary = json_error_summary(&error);
        assert!(!summary.contains("ana@example.com"), "{summary}");
        assert_eq!(summary, "the wrong shape (line 1, column 17)");
    }
}
