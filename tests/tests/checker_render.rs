//! A step whose template set is missing or fails to render is sent with the
//! shipped default of that channel, recorded on the cart's timeline
//! (`template_fallback`); a customer never gets Cartback's error text.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

use cartback_core::campaign::Campaign;
use cartback_core::message::{MessageStatus, Outgoing, QueueName};
use cartback_core::ports::{CampaignStore, Clock, MessageStore, PortError, TemplateStore, Timeline};
use cartback_core::service::{CheckOutcome, TemplateCache};
use cartback_core::template::{shipped_set, Brand, TemplateName, TemplateSet};
use cartback_tests::samples::LocalStack;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Template sets in memory (the SQLite and DynamoDB stores have their own contract tests).
#[derive(Default)]
struct Sets(Mutex<Vec<TemplateSet>>);

#[async_trait]
impl TemplateStore for Sets {
    async fn list_templates(&self) -> Result<Vec<TemplateSet>, PortError> {
        Ok(self.0.lock().unwrap().clone())
    }
    async fn put_template(&self, set: &TemplateSet) -> Result<(), PortError> {
        self.0.lock().unwrap().push(set.clone());
        Ok(())
    }
    async fn delete_template(&self, _: &TemplateName) -> Result<bool, PortError> {
        Ok(false)
    }
    async fn brand(&self) -> Result<Option<Brand>, PortError> {
        Ok(None)
    }
    async fn put_brand(&self, _: &Brand) -> Result<(), PortError> {
        Ok(())
    }
}

/// Puts a cart for a German-speaking customer in, fires its first timer
/// with `campaign`, and returns the queued email and the cart's timeline.
async fn first_email(stack: &LocalStack, campaign: Campaign) -> (Outgoing, Vec<cartback_core::ports::TimelineEntry>) {
    stack.db.put(&campaign).await.unwrap();
    let body = json!({ "events": [
        { "event_id": "add-1", "type": "add_to_cart", "occurred_at": "2026-11-23T10:00:00Z", "cart_id": "cart-r",
          "currency": "EUR", "items": [{ "item_id": "sku-mug", "item_name": "Becher", "price": "14.90" }],
          "customer": { "email": "ana@example.com", "locale": "de-AT", "consents": { "email": true } } }
    ]});
    assert_eq!(stack.api.ingest.ingest_body(body.to_string().as_bytes()).await.unwrap().accepted, 1);
    let timer = stack.timers.next_due(at("2030-01-01T00:00:00Z")).await.unwrap().expect("a timer is armed");
    stack.clock.set(timer.due_at);
    let outcome = stack.checker.on_timer(&timer).await.unwrap();
    let CheckOutcome::Decided { sent, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(sent.len(), 1, "the step is sent");
    let received = stack.queue.receive(QueueName::Email, timer.due_at, chrono::Duration::minutes(5)).await.unwrap();
    let job = received.expect("the email is queued").job;
    let record = stack.db.get_message(&job.message_id).await.unwrap().expect("the message is recorded");
    assert!(matches!(record.status, MessageStatus::Queued), "{:?}", record.status);
    (job.outgoing, stack.db.timeline(&"cart-r".into()).await.unwrap())
}

/// GIVEN a campaign whose first step names a template set that does not exist
/// WHEN the cart's timer fires
/// THEN the email is composed from the shipped reminder in the customer's language, and the timeline says so
/// without quoting an error; the cause is in the line's details for the operator.
#[tokio::test]
async fn given_a_step_naming_a_missing_set_when_checked_then_the_shipped_default_is_sent_and_recorded() {
    let stack = LocalStack::new(at("2026-11-23T10:00:00Z"));
    let mut campaign = Campaign::default_campaign();
    campaign.holdout_percent = 0;
    campaign.steps[0].template = "no_such_template".into();

    let (outgoing, timeline) = first_email(&stack, campaign).await;

    let Outgoing::Email { subject, text, html, .. } = outgoing else { panic!("{outgoing:?}") };
    assert_eq!(subject, "Dein Warenkorb wartet: 1 Artikel für dich gespeichert");
    assert!(text.contains("Becher x1  €\u{a0}14,90"), "Austrian money: {text}");
    assert!(!html.contains("no_such_template") && !text.contains("error"), "{text}");
    let line = timeline.iter().find(|e| e.code == "template_fallback").expect("the timeline explains the fallback");
    assert_eq!(
        line.message,
        "Step 1's email was composed from the shipped \"reminder\" template: the \"no_such_template\" template \
         could not be used."
    );
    assert_eq!(line.details["error"], "there is no template set \"no_such_template\"");
    assert_eq!(line.details["fallback"], "reminder");
}

/// GIVEN a stored "reminder" whose German subject fails when rendered (stored as it is: a store keeps what
/// it is given, and a set written by another version may not render)
/// WHEN a German-speaking customer's first step is sent
/// THEN the shipped reminder's German email goes out and the timeline records the fallback with the cause.
#[tokio::test]
async fn given_a_stored_set_that_fails_at_send_time_when_checked_then_the_shipped_default_is_sent() {
    let mut stack = LocalStack::new(at("2026-11-23T10:00:00Z"));
    let mut stored = shipped_set("reminder").unwrap();
    stored.locales.get_mut("de").unwrap().email_subject = Some("{{ item_count + first_name }} Artikel".into());
    let sets = Arc::new(Sets::default());
    sets.put_template(&stored).await.unwrap();
    let clock: Arc<dyn Clock> = stack.clock.clone();
    stack.checker.templates = Arc::new(TemplateCache::new(sets, clock, chrono::Duration::seconds(60)));
    let mut campaign = Campaign::default_campaign();
    campaign.holdout_percent = 0;

    let (outgoing, timeline) = first_email(&stack, campaign).await;

    let Outgoing::Email { subject, .. } = outgoing else { panic!("{outgoing:?}") };
    assert_eq!(subject, "Dein Warenkorb wartet: 1 Artikel für dich gespeichert");
    let line = timeline.iter().find(|e| e.code == "template_fallback").expect("the fallback is recorded");
    let cause = line.details["error"].as_str().unwrap();
    assert!(cause.starts_with("the \"reminder\" template could not be rendered"), "{cause}");
}

/// A template store that cannot be reached.
struct Unreachable;

#[async_trait]
impl TemplateStore for Unreachable {
    async fn list_templates(&self) -> Result<Vec<TemplateSet>, PortError> {
        Err(PortError::Unavailable("config table", "connection refused".into()))
    }
    async fn put_template(&self, _: &TemplateSet) -> Result<(), PortError> {
        Err(PortError::Unavailable("config table", "connection refused".into()))
    }
    async fn delete_template(&self, _: &TemplateName) -> Result<bool, PortError> {
        Err(PortError::Unavailable("config table", "connection refused".into()))
    }
    async fn brand(&self) -> Result<Option<Brand>, PortError> {
        Err(PortError::Unavailable("config table", "connection refused".into()))
    }
    async fn put_brand(&self, _: &Brand) -> Result<(), PortError> {
        Err(PortError::Unavailable("config table", "connection refused".into()))
    }
}

/// Stores `stored` as the only set and sends the first step of the default campaign.
async fn first_email_with(stored: TemplateSet) -> (Outgoing, Vec<cartback_core::ports::TimelineEntry>) {
    let mut stack = LocalStack::new(at("2026-11-23T10:00:00Z"));
    let sets = Arc::new(Sets::default());
    sets.put_template(&stored).await.unwrap();
    let clock: Arc<dyn Clock> = stack.clock.clone();
    stack.checker.templates = Arc::new(TemplateCache::new(sets, clock, chrono::Duration::seconds(60)));
    let mut campaign = Campaign::default_campaign();
    campaign.holdout_percent = 0;
    first_email(&stack, campaign).await
}

/// GIVEN a stored "reminder" whose German email shows the restore link only inside an HTML comment, or only
/// for customers with a first name (stored as it is: the store keeps what it is given)
/// WHEN a German-speaking customer without a first name gets the first step
/// THEN the rendered message is checked as sent: the shipped German email goes out with the real restore
/// link, and the timeline names the missing link.
#[tokio::test]
async fn given_a_stored_set_whose_rendered_email_lacks_the_restore_link_when_checked_then_the_shipped_default_is_sent()
{
    for (part, source) in [
        ("email_html", "{% extends \"layout.html\" %}{% block intro %}<!-- {{ restore_link }} -->{% endblock %}"),
        ("email_text", "{% if first_name %}{{ restore_link }}{% endif %} {{ unsubscribe_link }}"),
    ] {
        let mut stored = shipped_set("reminder").unwrap();
        let de = stored.locales.get_mut("de").unwrap();
        de.email_subject = Some("Gespeichert".into());
        if part == "email_html" {
            // Without the layout's button, the comment is the only place the link is.
            stored.shared.insert("layout.html".into(), "{% block intro %}{% endblock %} {{ unsubscribe_link }}".into());
            stored.locales.get_mut("de").unwrap().email_html = Some(source.into());
        } else {
            stored.locales.get_mut("de").unwrap().email_text = Some(source.into());
        }

        let (outgoing, timeline) = first_email_with(stored).await;

        let Outgoing::Email { subject, text, html, .. } = outgoing else { panic!("{outgoing:?}") };
        assert_eq!(subject, "Dein Warenkorb wartet: 1 Artikel für dich gespeichert", "{part}: the shipped one");
        assert!(text.contains("/r/") && html.contains("Warenkorb wiederherstellen"), "{part}: {text}");
        let line = timeline.iter().find(|e| e.code == "template_fallback").expect("the fallback is recorded");
        let cause = line.details["error"].as_str().unwrap();
        assert!(cause.contains(&format!("the rendered {part} does not show the restore link")), "{part}: {cause}");
    }
}

/// GIVEN a stored "reminder" whose German SMS-free email loops without end
/// WHEN the first step is sent
/// THEN the render runs out of fuel instead of hanging, and the shipped email goes out, recorded.
#[tokio::test]
async fn given_a_stored_set_that_loops_when_checked_then_it_runs_out_of_fuel_and_falls_back() {
    let mut stored = shipped_set("reminder").unwrap();
    stored.locales.get_mut("de").unwrap().email_subject =
        Some("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}Hallo".into());

    let (outgoing, timeline) = first_email_with(stored).await;

    let Outgoing::Email { subject, .. } = outgoing else { panic!("{outgoing:?}") };
    assert_eq!(subject, "Dein Warenkorb wartet: 1 Artikel für dich gespeichert");
    let line = timeline.iter().find(|e| e.code == "template_fallback").expect("the fallback is recorded");
    let cause = line.details["error"].as_str().unwrap();
    assert!(cause.contains("fuel"), "{cause}");
}

/// GIVEN a template store that cannot be reached
/// WHEN a German-speaking customer's first step is due
/// THEN the email is still sent, composed from the shipped German set, and the timeline says why.
#[tokio::test]
async fn given_an_unreachable_template_store_when_checked_then_the_shipped_sets_send_and_the_timeline_says_why() {
    let mut stack = LocalStack::new(at("2026-11-23T10:00:00Z"));
    let clock: Arc<dyn Clock> = stack.clock.clone();
    stack.checker.templates = Arc::new(TemplateCache::new(Arc::new(Unreachable), clock, chrono::Duration::seconds(60)));
    let mut campaign = Campaign::default_campaign();
    campaign.holdout_percent = 0;

    let (outgoing, timeline) = first_email(&stack, campaign).await;

    let Outgoing::Email { subject, .. } = outgoing else { panic!("{outgoing:?}") };
    assert_eq!(subject, "Dein Warenkorb wartet: 1 Artikel für dich gespeichert");
    let line = timeline.iter().find(|e| e.code == "template_fallback").expect("the fallback is recorded");
    let cause = line.details["error"].as_str().unwrap();
    assert!(cause.starts_with("the template store could not be read"), "{cause}");
}
