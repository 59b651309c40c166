//! `cartback explain CART_ID`: why each message was or was not sent.

use std::process::ExitCode;
use std::sync::Arc;

use cartback_core::cart::Cart;
use cartback_core::consent::{ConsentChange, CustomerAnswer};
use cartback_core::customer::Customer;
use cartback_core::engine::Decision;
use cartback_core::ids::CartId;
use cartback_core::ports::{CartRecord, SystemClock};
use cartback_core::service::{decide_now, CampaignCache};
use cartback_core::voucher::VoucherChoice;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::ExplainArgs;

pub async fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let stores = crate::stores::open(&args.store).await?;
    let cart_id = CartId::from(args.cart_id.as_str());
    let Some(record) = stores.state.get_cart(&cart_id).await? else {
        eprintln!("no cart {:?}", args.cart_id);
        return Ok(ExitCode::FAILURE);
    };
    let timeline = stores.state.timeline(&cart_id).await?;
    // The cart's messages, with their opens and clicks counted per label
    // (the timeline shows only the first of each).
    let mut messages = Vec::new();
    for step in &record.progress.steps {
        if let Some(message) = stores.state.get_message(&step.message_id).await? {
            messages.push(message);
        }
    }
    let cart = record.cart();
    let customer = match &cart.customer_id {
        Some(id) => stores.state.get_customer(id).await?.map(|(customer, _)| customer),
        None => None,
    };
    let choices = Choices::of(&record, &cart, customer.as_ref());
    if args.json {
        let mut view = cartback_core::api::cart_view(&record, &timeline);
        view["messages"] = serde_json::to_value(&messages)?;
        view["consent_history"] = serde_json::to_value(choices.history)?;
        view["snoozed_until"] = serde_json::to_value(choices.snoozed_until)?;
        view["answers"] = choices
            .answers
            .iter()
            .map(|(at, answer)| {
                json!({
                    "at": at,
                    "reason": answer.reason,
                    "text": answer.text.as_deref().map(hide_contact_data),
                    "message_id": answer.message_id,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(ExitCode::SUCCESS);
    }
    let totals = cart.totals();
    println!(
        "cart {}: {:?}, {} item(s), {} {}",
        cart.cart_id,
        cart.status,
        totals.item_count,
        cartback_core::cart::money_text(totals.subtotal),
        totals.currency.unwrap_or_default()
    );
    for line in choices.lines() {
        println!("{line}");
    }
    for entry in &timeline {
        println!("{}  {:<10} {:<24} {}", entry.at.format("%Y-%m-%d %H:%M:%S"), entry.kind, entry.code, entry.message);
    }
    for message in &messages {
        println!(
            "message {} (step {}, {}, {}):",
            message.message_id,
            message.step + 1,
            message.channel.as_str(),
            message.status.name()
        );
        let engagement = message.engagement.summary();
        if engagement.is_empty() {
            println!("  no opens or clicks");
        }
        for line in engagement {
            println!("  {line}");
        }
    }
    let clock = Arc::new(SystemClock);
    let cache = CampaignCache::new(stores.campaigns.clone(), clock.clone(), chrono::Duration::zero());
    let now = chrono::Utc::now();
    let next = decide_now(stores.state.as_ref(), &cache, &record, &stores.channels, now).await?;
    let what = match &next {
        Decision::Wait { until, .. } => format!("wait until {}", until.to_rfc3339()),
        Decision::Send { channel, step, .. } => format!("send step {} by {}", step + 1, channel.as_str()),
        Decision::Withhold { channel, step, group, .. } => {
            format!("hold out step {} by {} ({}: nothing is sent)", step + 1, channel.as_str(), group.as_str())
        }
        Decision::Skip { step, .. } => format!("skip step {} (too late to send)", step + 1),
        Decision::Stop { .. } => "stop".into(),
    };
    println!(
        "now ({}): {what} [{}] {}",
        now.format("%Y-%m-%d %H:%M:%S"),
        next.reason().code.as_str(),
        next.reason().message
    );
    if let Some(line) = next.voucher().and_then(voucher_line) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The next decision's voucher, as a line under it: what the message would
/// show and why, never the code (a credential).
fn voucher_line(choice: &VoucherChoice) -> Option<String> {
    let what = match choice {
        VoucherChoice::NotOffered => return None,
        VoucherChoice::Issue { .. } => "issue a new one",
        VoucherChoice::Reuse { .. } => "show the cart's own again",
        VoucherChoice::Withheld { .. } => "none",
    };
    let reason = choice.reason()?;
    Some(format!("  voucher: {what} [{}] {}", reason.code.as_str(), reason.message))
}

/// What the customer chose about this cart's reminders: the consent
/// changes (the known customer's, else the guest cart's, as the engine
/// reads them), the snooze and the answers on the preference page.
struct Choices<'a> {
    /// Whose consents these are.
    whose: String,
    history: &'a [ConsentChange],
    snoozed_until: Option<DateTime<Utc>>,
    /// Each answer with the time it was given (its event's).
    answers: Vec<(DateTime<Utc>, &'a CustomerAnswer)>,
}

impl<'a> Choices<'a> {
    fn of(record: &'a CartRecord, cart: &'a Cart, customer: Option<&'a Customer>) -> Choices<'a> {
        let (whose, history, snoozed_until) = match customer {
            Some(c) => (format!("customer {}", c.customer_id), &c.consent_history[..], c.profile.snoozed_until),
            None => ("this cart (guest)".to_owned(), &cart.consent_history[..], cart.contact.snoozed_until),
        };
        let mut answers: Vec<_> =
            record.events.iter().filter_map(|e| Some((e.occurred_at, e.answer.as_ref()?))).collect();
        answers.sort_by_key(|(at, _)| *at);
        Choices { whose, history, snoozed_until, answers }
    }

    /// One line per consent change, then the snooze and the answers. No
    /// contact data: channels, times, sources and bases only; answers'
    /// free text with anything like an address or a number hidden.
    fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.history.is_empty() {
            lines.push(format!("consent history of {}: no change on record", self.whose));
        } else {
            lines.push(format!("consent history of {}:", self.whose));
        }
        for change in self.history {
            lines.push(format!(
                "  {}  {:<9} {:<9} source {:<16} basis {}",
                change.at.format("%Y-%m-%d %H:%M:%S"),
                change.channel.as_str(),
                if change.granted { "granted" } else { "withdrawn" },
                change.source.as_str(),
                change.basis.map_or("-", |b| b.as_str())
            ));
        }
        if let Some(until) = self.snoozed_until {
            lines.push(format!("reminders snoozed until {}", until.format("%Y-%m-%d %H:%M:%S")));
        }
        for (at, answer) in &self.answers {
            let text = answer.text.as_deref().map(|t| format!(": {:?}", hide_contact_data(t))).unwrap_or_default();
            let about = answer.message_id.as_ref().map(|m| format!(" (message {m})")).unwrap_or_default();
            lines.push(format!("answer {}  {}{about}{text}", at.format("%Y-%m-%d %H:%M:%S"), answer.reason.as_str()));
        }
        lines
    }
}

/// A customer's free text with what looks like contact data hidden: a
/// word with an `@`, and a run of number-like words holding 7 digits or
/// more (a phone number, however it is spaced; the run's punctuation goes
/// with it).
fn hide_contact_data(text: &str) -> String {
    let numeric = |word: &str| {
        let bare = word.trim_end_matches([',', ';', ':', '.', '!', '?']);
        !bare.is_empty() && bare.chars().all(|c| c.is_ascii_digit() || "+-()./".contains(c))
    };
    let digits = |word: &str| word.chars().filter(char::is_ascii_digit).count();
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut shown = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        if words[i].contains('@') {
            shown.push("[hidden]");
            i += 1;
            continue;
        }
        let run = words[i..].iter().take_while(|w| numeric(w)).count();
        if run > 0 && words[i..i + run].iter().map(|w| digits(w)).sum::<usize>() >= 7 {
            shown.push("[hidden]");
            i += run;
        } else {
            shown.extend(&words[i..i + run.max(1)]);
            i += run.max(1);
        }
    }
    shown.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartback_core::consent::{AnswerReason, ConsentSource, LegalBasis};
    use cartback_core::event::{ConsentPatch, CustomerPatch, Event};

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn event(id: &str, when: &str, customer: Option<CustomerPatch>, answer: Option<CustomerAnswer>) -> Event {
        Event { cart_id: Some("c".into()), customer, answer, ..Event::identify(id.into(), at(when)) }
    }

    #[test]
    fn given_a_guest_cart_with_consents_a_snooze_and_answers_when_explained_then_each_shows_in_time_order() {
        let mut record = CartRecord::new("c", at("2026-11-23T09:00:00Z"));
        let granted = ConsentPatch { email: Some(true), basis: Some(LegalBasis::Consent), ..Default::default() };
        let link =
            ConsentPatch { email: Some(false), source: Some(ConsentSource::UnsubscribeLink), ..Default::default() };
        let patch = |consents| CustomerPatch { consents: Some(consents), ..Default::default() };
        let snooze = CustomerPatch { snoozed_until: Some(at("2026-12-23T10:00:00Z")), ..Default::default() };
        let note = "Stop, write to ana@example.com";
        let answer = CustomerAnswer {
            reason: AnswerReason::TooManyMessages,
            text: Some(note.into()),
            message_id: Some("m_1".into()),
        };
        record.insert_event(event("4", "2026-11-23T10:30:00Z", None, Some(answer)));
        record.insert_event(event("3", "2026-11-23T10:00:00Z", Some(snooze), None));
        record.insert_event(event("2", "2026-11-23T09:30:00Z", Some(patch(link)), None));
        record.insert_event(event("1", "2026-11-23T09:00:00Z", Some(patch(granted)), None));
        let cart = record.cart();
        let lines = Choices::of(&record, &cart, None).lines();
        assert_eq!(
            lines,
            [
                "consent history of this cart (guest):",
                "  2026-11-23 09:00:00  email     granted   source event            basis consent",
                "  2026-11-23 09:30:00  email     withdrawn source unsubscribe_link basis -",
                "reminders snoozed until 2026-12-23 10:00:00",
                "answer 2026-11-23 10:30:00  too_many_messages (message m_1): \"Stop, write to [hidden]\"",
            ]
        );
    }

    #[test]
    fn given_free_text_with_contact_data_when_shown_then_addresses_and_phone_numbers_are_hidden() {
        let shown = hide_contact_data("Mail ana@example.com or call +33 6 12 34 56 78, I bought 2 mugs in 2026");
        assert_eq!(shown, "Mail [hidden] or call [hidden] I bought 2 mugs in 2026");
        assert_eq!(hide_contact_data("call 0612345678. Thanks"), "call [hidden] Thanks");
        assert_eq!(hide_contact_data("too many - 3 in 2 days"), "too many - 3 in 2 days");
    }

    /// GIVEN the next decision's voucher choices
    /// WHEN explained
    /// THEN each is one line with its reason, the code never shown; no line without an offer.
    #[test]
    fn given_a_voucher_choice_when_explained_then_one_line_names_it_and_its_reason_without_the_code() {
        use cartback_core::reason::{Reason, ReasonCode};
        use cartback_core::voucher::VoucherCode;
        assert_eq!(voucher_line(&VoucherChoice::NotOffered), None);
        let withheld = VoucherChoice::Withheld {
            reason: Reason::new(ReasonCode::RecentPromotion, "No voucher: the customer redeemed a promotion."),
        };
        assert_eq!(
            voucher_line(&withheld).as_deref(),
            Some("  voucher: none [recent_promotion] No voucher: the customer redeemed a promotion.")
        );
        let reuse = VoucherChoice::Reuse {
            code: VoucherCode::parse("CB-7KQ4-M9XD-2PWE").unwrap(),
            reason: Reason::new(ReasonCode::VoucherOffered, "Shows the cart's voucher again."),
        };
        let line = voucher_line(&reuse).unwrap();
        assert_eq!(line, "  voucher: show the cart's own again [voucher_offered] Shows the cart's voucher again.");
        assert!(!line.contains("2PWE"));
    }
}
