//! The unsubscribe link of every email, `/u/{token}`:
//! - `POST` with `List-Unsubscribe=One-Click` (RFC 8058; a mailbox
//!   provider's "Unsubscribe" button): email consent withdrawn at once, 200;
//! - `GET`: the preference page, a plain HTML form (no script, no login);
//! - `POST` of that form (`form=preferences`): the choices applied, and a
//!   page saying what changed.
//!
//! Pages never show the token, an address or a phone number: the form posts
//! to the page's own URL (`action=""`), and the confirmation names channels
//! and reasons only.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use axum::http::StatusCode;

use cartback_core::consent::AnswerReason;
use cartback_core::message::Channel;
use cartback_core::service::{reason_sentence, Choices, PreferenceOutcome, MAX_ANSWER_TEXT_CHARS, SNOOZE_DAYS};

use crate::dashboard::escape;

/// The form field that tells a preference-page submission from a one-click
/// `POST` (whose body is `List-Unsubscribe=One-Click`).
pub const FORM_MARKER: (&str, &str) = ("form", "preferences");

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1d2433;background:#f5f6f8}\
main{max-width:36rem;margin:0 auto;padding:1rem}h1{font-size:1.4rem}\
fieldset{border:1px solid #c5cad3;border-radius:6px;margin:0 0 1rem;padding:.5rem 1rem;background:#fff}\
legend{font-weight:600;padding:0 .3rem}label{display:block;padding:.35rem 0}\
input[type=checkbox],input[type=radio]{width:1.2rem;height:1.2rem;margin-right:.5rem;vertical-align:middle}\
textarea{width:100%;box-sizing:border-box;font:inherit}\
button{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#0b6e4f;color:#fff}\
.error{color:#a1141f;font-weight:600}";

/// A whole page around `body`.
fn page(title: &str, body: &str) -> String {
    format!(
        concat!(
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8">"#,
            r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#,
            r#"<meta name="robots" content="noindex"><title>{title}</title><style>{style}</style></head>"#,
            r#"<body><main><h1>{title}</h1>{body}</main></body></html>"#
        ),
        title = escape(title),
        style = STYLE,
        body = body,
    )
}

const CHANNELS: [(Channel, &str); 4] = [
    (Channel::Email, "Email"),
    (Channel::Sms, "Text messages (SMS)"),
    (Channel::Push, "App notifications"),
    (Channel::WebPush, "Browser notifications"),
];

const REASONS: [(AnswerReason, &str); 4] = [
    (AnswerReason::AlreadyBought, "I already bought"),
    (AnswerReason::NotInterested, "I'm not interested in these items"),
    (AnswerReason::TooManyMessages, "Too many messages"),
    (AnswerReason::Other, "Another reason"),
];

/// The preference page: every control labelled, grouped in fieldsets.
pub fn form_page() -> String {
    let mut body = String::from(concat!(
        r#"<p>Choose what you receive about the cart you left. Nothing changes until you save.</p>"#,
        r#"<form method="post" action="" id="preferences">"#,
    ));
    let _ = write!(body, r#"<input type="hidden" name="{}" value="{}">"#, FORM_MARKER.0, FORM_MARKER.1);
    body.push_str(r#"<fieldset><legend>Stop cart reminders by</legend>"#);
    for (channel, label) in CHANNELS {
        let _ = write!(
            body,
            r#"<label><input type="checkbox" name="stop" value="{0}" id="stop-{0}"> {1}</label>"#,
            channel.as_str(),
            label
        );
    }
    body.push_str(r#"</fieldset><fieldset><legend>More</legend>"#);
    body.push_str(concat!(
        r#"<label><input type="checkbox" name="stop_all" value="on" id="stop-all"> "#,
        r#"Stop all marketing messages, on every channel</label>"#
    ));
    let _ = write!(
        body,
        r#"<label><input type="checkbox" name="snooze" value="on" id="snooze"> {}</label>"#,
        format_args!("Pause cart reminders for {SNOOZE_DAYS} days")
    );
    body.push_str(r#"</fieldset><fieldset><legend>Tell us why (optional)</legend>"#);
    for (reason, label) in REASONS {
        let _ = write!(
            body,
            r#"<label><input type="radio" name="reason" value="{0}" id="reason-{0}"> {1}</label>"#,
            reason.as_str(),
            label
        );
    }
    let _ = write!(
        body,
        concat!(
            r#"<label for="text">Anything else you want to tell us</label>"#,
            r#"<textarea id="text" name="text" rows="3" maxlength="{}"></textarea>"#
        ),
        MAX_ANSWER_TEXT_CHARS
    );
    body.push_str(r#"</fieldset><button type="submit" id="save">Save my choices</button></form>"#);
    page("Your message preferences", &body)
}

/// What the one-click `POST` answers (a person may see it in a mail client).
pub fn one_click_page() -> String {
    page(
        "You are unsubscribed",
        r#"<p id="done">You will get no more cart reminder emails from us. <a href="">Choose more options</a>.</p>"#,
    )
}

/// The answer to a submitted form: what changed, in words.
pub fn confirmation_page(outcome: &PreferenceOutcome) -> String {
    let mut items = Vec::new();
    if outcome.withdrawn.len() == Channel::PERSONAL.len() {
        items.push("No more marketing messages on any channel.".to_owned());
    } else if !outcome.withdrawn.is_empty() {
        let names: Vec<&str> =
            CHANNELS.iter().filter(|(c, _)| outcome.withdrawn.contains(c)).map(|(_, label)| *label).collect();
        items.push(format!("Cart reminders stopped by: {}.", names.join(", ")));
    }
    if let Some(until) = outcome.snoozed_until {
        items.push(format!("Cart reminders paused until {}.", until.date_naive()));
    }
    if let Some(reason) = outcome.answered {
        items.push(format!("Thank you for telling us: {}.", reason_sentence(reason)));
    }
    let mut body = String::from(r#"<ul id="changes">"#);
    if items.is_empty() {
        body.push_str("<li>You chose nothing, so nothing changed.</li>");
    }
    for item in &items {
        let _ = write!(body, "<li>{}</li>", escape(item));
    }
    body.push_str(r#"</ul><p><a href="">Back to your preferences</a></p>"#);
    page("Your choices are saved", &body)
}

/// A refusal or failure, as a sentence (never the token, never a cause).
pub fn error_page(sentence: &str) -> String {
    page("This link cannot be used", &format!(r#"<p class="error" id="error">{}</p>"#, escape(sentence)))
}

/// A failure to save, as a sentence (the cause is logged, never shown).
pub fn failure_page(sentence: &str) -> String {
    page("Not saved", &format!(r#"<p class="error" id="error">{}</p>"#, escape(sentence)))
}

/// A form field whose value is not one the page offers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FormError {
    pub field: &'static str,
    pub reason: String,
}

/// What a `POST /u/{token}` body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    /// RFC 8058's `List-Unsubscribe=One-Click`, or any body without the
    /// preference form's marker: a `POST` needs the token and is never sent
    /// by a link scanner, so it unsubscribes (a provider sending the field
    /// multipart-encoded is still honoured).
    OneClick,
    Preferences(Choices),
}

/// Reads a form-encoded body (duplicate `stop` fields are a list; other
/// fields take their last value).
pub fn parse_submission(body: &[u8]) -> Result<Submission, FormError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    if !pairs.iter().any(|(k, v)| k == FORM_MARKER.0 && v == FORM_MARKER.1) {
        return Ok(Submission::OneClick);
    }
    let mut choices = Choices::default();
    let mut stop = BTreeSet::new();
    for (key, value) in &pairs {
        match key.as_str() {
            "stop" => {
                let channel = CHANNELS.iter().find(|(c, _)| c.as_str() == value).map(|(c, _)| *c).ok_or_else(|| {
                    FormError { field: "stop", reason: "must be one of email, sms, push, web_push".into() }
                })?;
                stop.insert(channel);
            }
            "stop_all" => choices.stop_all = flag("stop_all", value)?,
            "snooze" => choices.snooze = flag("snooze", value)?,
            "reason" if value.is_empty() => choices.reason = None,
            "reason" => {
                choices.reason =
                    Some(REASONS.iter().find(|(r, _)| r.as_str() == value).map(|(r, _)| *r).ok_or_else(|| {
                        FormError {
                            field: "reason",
                            reason: "must be one of already_bought, not_interested, too_many_messages, other".into(),
                        }
                    })?);
            }
            "text" => choices.text = Some(value.clone()),
            // The marker, and fields a later page may add: ignored.
            _ => {}
        }
    }
    choices.stop = stop;
    Ok(Submission::Preferences(choices))
}

/// A checkbox: ticked (`on`, as browsers send it by default), or not sent.
fn flag(field: &'static str, value: &str) -> Result<bool, FormError> {
    match value {
        "on" | "true" | "1" => Ok(true),
        "" | "off" | "false" | "0" => Ok(false),
        _ => Err(FormError { field, reason: "must be on or off".into() }),
    }
}

/// Why an unsubscribe token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Malformed, cut, or its signature does not match.
    Invalid,
    Expired,
}

impl TokenRefusal {
    pub fn status(self) -> StatusCode {
        match self {
            TokenRefusal::Invalid => StatusCode::BAD_REQUEST,
            TokenRefusal::Expired => StatusCode::GONE,
        }
    }

    pub fn sentence(self) -> &'static str {
        match self {
            TokenRefusal::Invalid => {
                "This unsubscribe link is not valid. Copy the whole link from the email, or contact the shop."
            }
            TokenRefusal::Expired => {
                "This unsubscribe link has expired. Use the link in a more recent email, or contact the shop."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GIVEN the RFC 8058 body, an empty body and a multipart-looking body WHEN parsed THEN each is a one-click.
    #[test]
    fn given_a_body_without_the_form_marker_when_parsed_then_it_is_a_one_click_unsubscribe() {
        for body in [&b"List-Unsubscribe=One-Click"[..], b"", b"--x\r\nContent-Disposition: form-data"] {
            assert_eq!(parse_submission(body), Ok(Submission::OneClick), "{body:?}");
        }
    }

    /// GIVEN the page's form with two channels, snooze, a reason and text WHEN parsed THEN every choice is read.
    #[test]
    fn given_the_preference_form_when_parsed_then_each_choice_is_read() {
        let body = concat!(
            "form=preferences&stop=email&stop=web_push&snooze=on",
            "&reason=already_bought&text=Bought+it+%C3%A0+Paris"
        )
        .as_bytes();
        let Ok(Submission::Preferences(choices)) = parse_submission(body) else { panic!() };
        assert_eq!(choices.stop, BTreeSet::from([Channel::Email, Channel::WebPush]));
        assert!(choices.snooze && !choices.stop_all);
        assert_eq!(choices.reason, Some(AnswerReason::AlreadyBought));
        assert_eq!(choices.text.as_deref(), Some("Bought it à Paris"));
    }

    /// GIVEN a form with a channel or a reason the page does not offer WHEN parsed THEN the error names the field.
    #[test]
    fn given_an_unknown_value_when_parsed_then_the_error_names_the_field() {
        assert_eq!(parse_submission(b"form=preferences&stop=fax").unwrap_err().field, "stop");
        assert_eq!(parse_submission(b"form=preferences&reason=bored").unwrap_err().field, "reason");
        assert_eq!(parse_submission(b"form=preferences&snooze=maybe").unwrap_err().field, "snooze");
    }

    /// GIVEN the page WHEN rendered THEN it has a language, a viewport, labelled controls in fieldsets, and no script.
    #[test]
    fn given_the_preference_page_when_rendered_then_it_is_accessible_without_script() {
        let html = form_page();
        assert!(html.contains(r#"<html lang="en">"#) && html.contains(r#"name="viewport""#));
        assert!(!html.contains("<script"), "no script");
        assert_eq!(html.matches("<fieldset>").count(), 3);
        let inputs = html.matches("<input type=\"checkbox\"").count() + html.matches("<input type=\"radio\"").count();
        assert_eq!(inputs, 10);
        assert_eq!(html.matches("<label><input").count(), inputs, "each checkbox and radio sits in its label");
        assert!(html.contains(r#"<label for="text">"#));
        assert!(html.contains(r#"method="post" action="""#));
    }
}
