//! The proof that logs carry no personal data: the end-to-end suites collect
//! every contact value their events hold (email addresses, phone numbers,
//! push tokens, web push subscriptions) and scan what the process logged for
//! each of them. Local: `cartback dev`'s stderr. AWS: the Lambda handlers'
//! JSON tracing output, captured in process by [`LambdaLogs`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

/// Contact values seen in the events a test sent.
#[derive(Debug, Default, Clone)]
pub struct Contacts(BTreeSet<String>);

impl Contacts {
    /// Collects the contact values of an event, an `{"events": [...]}` batch
    /// or any JSON holding `customer` objects.
    pub fn collect(&mut self, json: &Value) {
        match json {
            Value::Object(map) => {
                for (key, value) in map {
                    match key.as_str() {
                        "email" | "phone" | "push_tokens" | "web_push_subscription" | "device_token" => {
                            self.strings(value)
                        }
                        _ => self.collect(value),
                    }
                }
            }
            Value::Array(values) => values.iter().for_each(|v| self.collect(v)),
            _ => {}
        }
    }

    fn strings(&mut self, json: &Value) {
        match json {
            // Short strings ("", "x") would match anything; real contact
            // values are longer.
            Value::String(s) if s.len() >= 6 => {
                self.0.insert(s.clone());
                // A phone number may be logged without its `+`.
                if let Some(digits) = s.strip_prefix('+') {
                    self.0.insert(digits.to_owned());
                }
            }
            Value::Array(values) => values.iter().for_each(|v| self.strings(v)),
            Value::Object(map) => map.values().for_each(|v| self.strings(v)),
            _ => {}
        }
    }

    /// Adds a value to scan for that no event carried: a restore link's or
    /// an unsubscribe link's token, read from a message Cartback sent.
    pub fn add(&mut self, value: &str) {
        if value.len() >= 6 {
            self.0.insert(value.to_owned());
        }
    }

    /// The link tokens in a message's text: what follows `/r/` (tracked
    /// redirects), `/u/` (unsubscribe and preference links) or `t=` (a
    /// restore link's own token) up to the end of the URL.
    pub fn link_tokens(text: &str) -> Vec<String> {
        let mut tokens = Vec::new();
        for marker in ["/r/", "/u/", "t="] {
            for (at, _) in text.match_indices(marker) {
                let token: String = text[at + marker.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '%'))
                    .collect();
                if token.len() >= 16 {
                    tokens.push(token);
                }
            }
        }
        tokens
    }

    /// Panics naming every value found in `text`, an output that must hold
    /// no contact data or token (a page, a report, a timer's payload).
    pub fn assert_not_in(&self, source: &str, text: &str) {
        let leaked: Vec<&String> = self.0.iter().filter(|value| text.contains(value.as_str())).collect();
        assert!(leaked.is_empty(), "{source} holds contact data or tokens {leaked:?} ({} bytes scanned)", text.len());
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Panics naming every contact value found in `log` (test data only).
    pub fn assert_absent_from(&self, source: &str, log: &str) {
        let leaked: Vec<&String> = self.0.iter().filter(|value| log.contains(value.as_str())).collect();
        assert!(leaked.is_empty(), "{source} logged contact data {leaked:?} ({} bytes of log scanned)", log.len());
    }
}

/// The Lambda handlers' log output (their own JSON format, every level down
/// to `trace` for Cartback's crates), captured for the whole test process.
pub struct LambdaLogs(Arc<Mutex<Vec<u8>>>);

impl LambdaLogs {
    /// Installs the capture as the process's global subscriber (once).
    pub fn capture() -> &'static LambdaLogs {
        static LOGS: OnceLock<LambdaLogs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = SharedBuffer(buffer.clone());
            let filter = tracing_subscriber::EnvFilter::new(
                "info,cartback_core=trace,cartback_aws=trace,cartback_http=trace,aws_smithy_runtime=debug",
            );
            let subscriber = cartback_aws::lambda_log_subscriber(move || writer.clone(), filter);
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
            LambdaLogs(buffer)
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[derive(Clone)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn given_a_batch_with_every_contact_kind_when_collected_then_each_value_is_scanned_for() {
        let mut contacts = Contacts::default();
        contacts.collect(&json!({"events": [{"customer": {
            "email": "ana@example.com", "phone": "+4915112345678", "first_name": "Ana",
            "push_tokens": ["device-token-123"],
            "web_push_subscription": {"endpoint": "https://push.example.com/abc", "keys": {"p256dh": "BNcR", "auth": "tBHItJI5"}}
        }}]}));
        let found = contacts.0.iter().map(String::as_str).collect::<Vec<_>>();
        assert_eq!(
            found,
            [
                "+4915112345678",
                "4915112345678",
                "ana@example.com",
                "device-token-123",
                "https://push.example.com/abc",
                "tBHItJI5"
            ]
        );
    }

    #[test]
    fn given_a_log_quoting_an_address_when_scanned_then_the_scan_fails() {
        let mut contacts = Contacts::default();
        contacts.collect(&json!({"customer": {"email": "ana@example.com"}}));
        let scan = std::panic::catch_unwind(|| contacts.assert_absent_from("test", "sent to ana@example.com"));
        assert!(scan.is_err());
        contacts.assert_absent_from("test", "sent to a***@example.com");
    }

    #[test]
    fn given_a_message_with_links_when_read_then_their_tokens_are_found_and_a_page_holding_one_fails_the_scan() {
        let text = "Restore: http://127.0.0.1:8080/r/eyJhbGciOi.abcdefghijklmnop\n\
                    <a href=\"https://shop.example/c?t=tok_0123456789abcdef\">x</a> /u/short";
        let tokens = Contacts::link_tokens(text);
        assert_eq!(tokens, ["eyJhbGciOi.abcdefghijklmnop", "tok_0123456789abcdef"]);
        let mut contacts = Contacts::default();
        tokens.iter().for_each(|t| contacts.add(t));
        assert!(std::panic::catch_unwind(|| contacts.assert_not_in("page", "<p>tok_0123456789abcdef</p>")).is_err());
        contacts.assert_not_in("page", "<p>nothing personal</p>");
    }
}
