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
