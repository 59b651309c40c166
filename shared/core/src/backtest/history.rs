//! The history a backtest replays: every cart's event log grouped the way
//! live caps reach across carts (a customer's carts; a guest's carts by the
//! voucher owner, their email address, since the voucher cap is counted
//! per owner), the customers' profiles, and the message records and
//! vouchers live traffic wrote (what the live campaign actually did). Read from a [`HistoryReader`] (a runtime's
//! store, never written) or from a JSON Lines export of canonical events.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::replay::Seeds;
use crate::consent::ConsentChange;
use crate::customer::{ConsentTimes, Customer};
use crate::event::{validate_event, ConsentPatch, Event, EventType};
use crate::ids::{CartId, CustomerId, CustomerKey, MessageId};
use crate::message::{Channel, MessageRecord};
use crate::ports::{CartRecord, HistoryReader, PortError};
use crate::voucher::{Voucher, VoucherOwner};

/// One customer's carts (a guest's: those bound to one voucher owner),
/// replayed together.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerCarts {
    /// The customer's key; for guests, the first cart's.
    pub key: CustomerKey,
    /// Whom the carts' vouchers are bound to (live's voucher cap counts per owner).
    pub owner: VoucherOwner,
    /// The stored profile as it is now; [`CustomerCarts::customer_at`] winds it back.
    pub customer: Option<Customer>,
    /// When Cartback first knew the customer: before it, the engine saw no
    /// profile (only what the cart itself carried).
    pub known_since: Option<DateTime<Utc>>,
    /// Each cart's events in (`occurred_at`, `event_id`) order.
    pub carts: Vec<CartRecord>,
}

impl CustomerCarts {
    /// The customer as the engine saw them at `at`: `None` before Cartback
    /// knew them; otherwise the stored profile with its consents, purchases
    /// and returns as they were then (consent changes applied in time order,
    /// not as they are now).
    pub fn customer_at(&self, at: DateTime<Utc>) -> Option<Customer> {
        let stored = self.customer.as_ref()?;
        if self.known_since.is_none_or(|since| since > at) {
            return None;
        }
        Some(customer_as_of(stored, at))
    }
}

/// `customer` as it stood at `at`: the consent history, consents and their
/// times, purchases, returns and redeemed promotions after `at` left out.
/// Contact details stay as stored (they are not kept with their history).
pub fn customer_as_of(customer: &Customer, at: DateTime<Utc>) -> Customer {
    let consent_history: Vec<ConsentChange> = customer.consent_history.iter().filter(|c| c.at <= at).cloned().collect();
    let stored = customer.profile.consents.unwrap_or_default();
    let times = customer.consents_as_of;
    let consent = |channel: Channel, value: Option<bool>, since: Option<DateTime<Utc>>| {
        let changes_known = customer.consent_history.iter().any(|c| c.channel == channel);
        if changes_known {
            let newest = consent_history.iter().rev().find(|c| c.channel == channel);
            (newest.map(|c| c.granted), newest.map(|c| c.at))
        } else if since.is_none_or(|t| t <= at) {
            // Set before consent history was kept, or never changed since.
            (value, since)
        } else {
            (None, None)
        }
    };
    let (email, email_at) = consent(Channel::Email, stored.email, times.email);
    let (sms, sms_at) = consent(Channel::Sms, stored.sms, times.sms);
    let (push, push_at) = consent(Channel::Push, stored.push, times.push);
    let (web_push, web_push_at) = consent(Channel::WebPush, stored.web_push, times.web_push);
    let mut profile = customer.profile.clone();
    profile.consents = customer.profile.consents.map(|c| ConsentPatch { email, sms, push, web_push, ..c });
    let until = |times: &[DateTime<Utc>]| times.iter().copied().filter(|t| *t <= at).collect::<Vec<_>>();
    Customer {
        customer_id: customer.customer_id.clone(),
        profile,
        profile_as_of: customer.profile_as_of.map(|t| t.min(at)),
        consents_as_of: ConsentTimes { email: email_at, sms: sms_at, push: push_at, web_push: web_push_at },
        purchases: until(&customer.purchases),
        returns: until(&customer.returns),
        promotions_redeemed: until(&customer.promotions_redeemed),
        applied_event_ids: Vec::new(),
        consent_history,
    }
}

/// Everything a backtest reads, grouped for the replay.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub customers: Vec<CustomerCarts>,
    /// Live traffic's message records, by id (a cart's step and channel).
    pub messages: HashMap<MessageId, MessageRecord>,
    /// Vouchers live traffic issued.
    pub vouchers: Vec<Voucher>,
    /// The newest time anywhere in the history: replayed timers stop here,
    /// since live traffic had not got further.
    pub latest: Option<DateTime<Utc>>,
    pub cart_count: u64,
}

/// Collects carts, customers and messages in any order, then groups them.
#[derive(Debug, Default)]
pub struct HistoryBuilder {
    carts: HashMap<VoucherOwner, Vec<CartRecord>>,
    customers: HashMap<CustomerId, Customer>,
    messages: HashMap<MessageId, MessageRecord>,
    vouchers: Vec<Voucher>,
    latest: Option<DateTime<Utc>>,
}

impl HistoryBuilder {
    fn saw(&mut self, at: DateTime<Utc>) {
        self.latest = self.latest.max(Some(at));
    }

    /// Keeps the cart's events only: its live progress is what the replay
    /// works out again. Items keep what the engine reads (id, price,
    /// quantity, variant), not how a message shows them (name, image,
    /// link): a year of carts holds gigabytes of those, and no decision
    /// reads them.
    pub fn add_cart(&mut self, mut record: CartRecord) {
        for item in record.events.iter_mut().flat_map(|e| e.items.iter_mut()) {
            (item.item_name, item.image_url, item.url) = (None, None, None);
        }
        if let Some(last) = record.events.last() {
            self.saw(last.occurred_at);
        }
        let customer_id = record.events.iter().rev().find_map(|e| e.customer_id.as_ref());
        let key = CustomerKey::for_cart(customer_id, &record.cart_id);
        // A guest's vouchers are capped by the address the cart carries.
        let email = record.events.iter().rev().find_map(|e| e.customer.as_ref()?.email.as_ref());
        let owner = VoucherOwner::for_cart(&key, email, &record.cart_id);
        let compact = CartRecord { progress: Default::default(), shadow: Default::default(), ..record };
        self.carts.entry(owner).or_default().push(compact);
    }

    /// Leaves out the ids of the events folded into the profile: ingest's
    /// duplicate check, which the replay never makes (up to 100 a customer).
    pub fn add_customer(&mut self, mut customer: Customer) {
        customer.applied_event_ids = Vec::new();
        let times = [customer.profile_as_of, customer.consent_history.last().map(|c| c.at)];
        let lists = [&customer.purchases, &customer.returns].map(|l| l.last().copied());
        for at in times.into_iter().chain(lists).flatten() {
            self.saw(at);
        }
        self.customers.insert(customer.customer_id.clone(), customer);
    }

    pub fn add_message(&mut self, message: MessageRecord) {
        self.saw(message.decided_at);
        self.messages.insert(message.message_id.clone(), message);
    }

    pub fn add_voucher(&mut self, voucher: Voucher) {
        self.saw(voucher.issued_at);
        self.vouchers.push(voucher);
    }

    pub fn build(self) -> History {
        let HistoryBuilder { carts, mut customers, messages, vouchers, latest } = self;
        let mut cart_count = 0;
        let mut grouped: Vec<CustomerCarts> = carts
            .into_iter()
            .filter_map(|(owner, mut carts)| {
                carts.sort_by(|a, b| a.cart_id.cmp(&b.cart_id));
                cart_count += carts.len() as u64;
                let first = carts.first()?;
                let customer_id = first.events.iter().rev().find_map(|e| e.customer_id.as_ref());
                let key = CustomerKey::for_cart(customer_id, &first.cart_id);
                let customer = key.customer().and_then(|id| customers.remove(id));
                let known_since = customer.as_ref().and_then(|c| known_since(c, &carts));
                Some(CustomerCarts { key, owner, customer, known_since, carts })
            })
            .collect();
        // Stable order: the same history gives the same report, line for line.
        grouped.sort_by(|a, b| a.owner.cmp(&b.owner));
        History { customers: grouped, messages, vouchers, latest, cart_count }
    }
}

/// The first time an event wrote the customer's profile (contact data, a
/// purchase, a return) or their consent changed.
fn known_since(customer: &Customer, carts: &[CartRecord]) -> Option<DateTime<Utc>> {
    let from_events = carts.iter().flat_map(|c| &c.events).filter(|e| {
        e.customer_id.as_ref() == Some(&customer.customer_id)
            && (e.customer.is_some() || matches!(e.kind, EventType::Purchase | EventType::Return))
    });
    let times = from_events
        .map(|e| e.occurred_at)
        .chain(customer.consent_history.first().map(|c| c.at))
        .chain(customer.purchases.first().copied())
        .chain(customer.returns.first().copied());
    times.min()
}

/// Reads the whole history through `reader` (read-only); `progress` is told
/// how many records have been read so far.
pub async fn load_history(
    reader: &dyn HistoryReader,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<History, PortError> {
    let mut builder = HistoryBuilder::default();
    let mut read = 0u64;
    reader
        .scan_carts(&mut |cart| {
            builder.add_cart(cart);
            read += 1;
            if read.is_multiple_of(1024) {
                progress(read);
            }
        })
        .await?;
    reader.scan_customers(&mut |customer| builder.add_customer(customer)).await?;
    reader.scan_messages(&mut |message| builder.add_message(message)).await?;
    reader.scan_vouchers(&mut |voucher| builder.add_voucher(voucher)).await?;
    progress(read);
    Ok(builder.build())
}

/// Why a line of an events file was refused: its number and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct EventLineError {
    pub line: usize,
    pub message: String,
}

/// The history in a JSON Lines file of canonical events (the `/v1/events`
/// format, one event a line): carts and customers are folded from them as
/// ingest would; there are no messages (nothing was sent by Cartback).
/// Blank lines are skipped; a bad line is an error naming the line and the
/// field. `now` is the reference for events without `occurred_at`.
pub fn history_from_events(text: &str, now: DateTime<Utc>) -> Result<History, EventLineError> {
    history_from_reader(text.as_bytes(), now)
}

/// [`history_from_events`] read line by line (an export of a year is
/// gigabytes: only one line of it is held at a time, beside the events).
pub fn history_from_reader(mut reader: impl std::io::BufRead, now: DateTime<Utc>) -> Result<History, EventLineError> {
    let mut events = Vec::new();
    let mut buffer = Vec::new();
    for line in 1.. {
        buffer.clear();
        let error = |message: String| EventLineError { line, message };
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(error(format!("cannot be read: {e}"))),
        }
        let text = std::str::from_utf8(&buffer).map_err(|e| error(format!("not UTF-8 text: {e}")))?.trim();
        if text.is_empty() {
            continue;
        }
        let raw: serde_json::Value = serde_json::from_str(text).map_err(|e| error(format!("not JSON: {e}")))?;
        let event = validate_event(&raw, now).map_err(|e| error(format!("{}: {}", e.field, e.message)))?;
        events.push(event);
    }
    Ok(history_from_event_list(events))
}

/// [`history_from_events`] over parsed events, in any order; a repeated
/// `event_id` counts once.
pub fn history_from_event_list(mut events: Vec<Event>) -> History {
    events.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
    events.dedup_by(|a, b| a.event_id == b.event_id);
    let mut carts: HashMap<CartId, CartRecord> = HashMap::new();
    let mut customers: HashMap<CustomerId, Customer> = HashMap::new();
    let mut builder = HistoryBuilder::default();
    if let Some(last) = events.last() {
        // The export reaches its newest event, cart or not.
        builder.saw(last.occurred_at);
    }
    for event in events {
        if let Some(id) = &event.customer_id {
            customers.entry(id.clone()).or_insert_with(|| Customer::new(id.clone())).apply(&event);
        }
        if let Some(cart_id) = &event.cart_id {
            let record =
                carts.entry(cart_id.clone()).or_insert_with(|| CartRecord::new(cart_id.clone(), event.occurred_at));
            record.insert_event(event);
        }
    }
    carts.into_values().for_each(|c| builder.add_cart(c));
    customers.into_values().for_each(|c| builder.add_customer(c));
    builder.build()
}

/// Live traffic's messages and vouchers, found by whom they count for.
pub struct SeedIndex<'a> {
    messages: HashMap<&'a CustomerKey, Vec<&'a MessageRecord>>,
    vouchers_by_owner: HashMap<&'a VoucherOwner, Vec<&'a Voucher>>,
    vouchers_by_cart: HashMap<&'a CartId, Vec<&'a Voucher>>,
}

impl SeedIndex<'_> {
    /// What live traffic did for `group` on carts the replay does not run
    /// (`replayed` says which it runs): the messages of its customer key and
    /// its carts' guest keys, the vouchers of its owner and its carts.
    pub fn seeds(&self, group: &CustomerCarts, replayed: impl Fn(&CartRecord) -> bool) -> Seeds {
        let running: std::collections::HashSet<&CartId> =
            group.carts.iter().filter(|c| replayed(c)).map(|c| &c.cart_id).collect();
        let guests = group.carts.iter().map(|c| CustomerKey::Guest(c.cart_id.clone()));
        let keys: Vec<CustomerKey> = std::iter::once(group.key.clone()).chain(guests).collect();
        let mut seen = std::collections::HashSet::new();
        let messages = keys
            .iter()
            .flat_map(|key| self.messages.get(key).into_iter().flatten())
            .filter(|m| !running.contains(&m.cart_id) && seen.insert(&m.message_id))
            .map(|m| (*m).clone())
            .collect();
        let by_cart = group.carts.iter().flat_map(|c| self.vouchers_by_cart.get(&c.cart_id).into_iter().flatten());
        let mut codes = std::collections::HashSet::new();
        let vouchers = self
            .vouchers_by_owner
            .get(&group.owner)
            .into_iter()
            .flatten()
            .chain(by_cart)
            .filter(|v| !running.contains(&v.cart_id) && codes.insert(&v.code))
            .map(|v| (*v).clone())
            .collect();
        Seeds { messages, vouchers }
    }
}

impl History {
    /// The index [`SeedIndex::seeds`] reads.
    pub fn seed_index(&self) -> SeedIndex<'_> {
        let mut index =
            SeedIndex { messages: HashMap::new(), vouchers_by_owner: HashMap::new(), vouchers_by_cart: HashMap::new() };
        for message in self.messages.values() {
            index.messages.entry(&message.customer_key).or_default().push(message);
        }
        for voucher in &self.vouchers {
            index.vouchers_by_owner.entry(&voucher.owner).or_default().push(voucher);
            index.vouchers_by_cart.entry(&voucher.cart_id).or_default().push(voucher);
        }
        index
    }

    /// The live campaign that entered the most carts (by its message
    /// records), the default to put a draft beside; `None` before any traffic.
    /// The live campaign a draft is put beside unless one is named: the
    /// draft's own id when that campaign is stored and live (the draft is its
    /// new version), else the one live traffic entered most.
    pub fn default_against(&self, live: &[crate::campaign::Campaign], draft_id: &str) -> Option<String> {
        if live.iter().any(|c| c.id == draft_id && c.enabled && !c.is_shadow()) {
            return Some(draft_id.to_owned());
        }
        self.busiest_campaign(live)
    }

    pub fn busiest_campaign(&self, live: &[crate::campaign::Campaign]) -> Option<String> {
        let mut carts: HashMap<&str, std::collections::HashSet<&CartId>> = HashMap::new();
        for message in self.messages.values() {
            if live.iter().any(|c| c.id == message.campaign_id && !c.is_shadow()) {
                carts.entry(message.campaign_id.as_str()).or_default().insert(&message.cart_id);
            }
        }
        let busiest = carts.into_iter().max_by(|(a, x), (b, y)| x.len().cmp(&y.len()).then_with(|| b.cmp(a)));
        busiest.map(|(id, _)| id.to_owned())
    }

    /// The first and last day a cart of the history started, if any.
    pub fn days(&self) -> Option<(chrono::NaiveDate, chrono::NaiveDate)> {
        let firsts = self.customers.iter().flat_map(|c| &c.carts).filter_map(|r| r.events.first());
        let days: Vec<chrono::NaiveDate> = firsts.map(|e| e.occurred_at.date_naive()).collect();
        Some((*days.iter().min()?, *days.iter().max()?))
    }
}

#[cfg(test)]
mod reader_tests {
    use super::*;

    #[test]
    fn given_a_cart_with_item_names_images_and_links_when_added_then_only_what_the_engine_reads_is_kept() {
        // GIVEN a cart whose item has a name, an image and a link
        let now: DateTime<Utc> = "2026-07-01T00:00:00Z".parse().unwrap();
        let line = r#"{"event_id":"e1","type":"add_to_cart","cart_id":"c1","occurred_at":"2026-06-01T10:00:00Z","currency":"EUR","items":[{"item_id":"sku","item_name":"Mug","price":"9.90","quantity":2,"image_url":"https://shop.example.com/m.jpg","url":"https://shop.example.com/m"}]}"#;

        // WHEN it is read into a history
        let history = history_from_events(line, now).unwrap();

        // THEN the item keeps its id, price and quantity, and nothing of how it is shown
        let item = &history.customers[0].carts[0].events[0].items[0];
        assert_eq!((item.item_id.as_str(), item.price, item.quantity), ("sku", Some("9.90".parse().unwrap()), 2));
        assert_eq!((&item.item_name, &item.image_url, &item.url), (&None, &None, &None));
    }

    #[test]
    fn given_a_customer_folded_from_events_when_added_then_the_profile_is_kept_without_ingests_event_ids() {
        // GIVEN ana's add to cart with her address and email consent
        let now: DateTime<Utc> = "2026-07-01T00:00:00Z".parse().unwrap();
        let line = r#"{"event_id":"e1","type":"add_to_cart","cart_id":"c1","customer_id":"ana","occurred_at":"2026-06-01T10:00:00Z","items":[{"item_id":"sku","quantity":1}],"customer":{"email":"ana@example.com","consents":{"email":true}}}"#;
        let mut folded = Customer::new("ana");
        folded.apply(&validate_event(&serde_json::from_str(line).unwrap(), now).unwrap());
        assert_eq!(folded.applied_event_ids.len(), 1, "ingest keeps the id");

        // WHEN read into a history
        let history = history_from_events(line, now).unwrap();

        // THEN the profile and consents are there, the id list is not
        let customer = history.customers[0].customer.as_ref().unwrap();
        assert!(customer.profile.email.is_some());
        assert_eq!(customer.profile.consents.unwrap().email, Some(true));
        assert!(customer.applied_event_ids.is_empty());
    }

    #[test]
    fn given_an_export_read_line_by_line_when_a_line_is_not_utf8_then_the_error_names_that_line() {
        // GIVEN two good lines, a blank one, then bytes that are not UTF-8
        let now: DateTime<Utc> = "2026-07-01T00:00:00Z".parse().unwrap();
        let good = r#"{"event_id":"e1","type":"add_to_cart","cart_id":"c1","occurred_at":"2026-06-01T10:00:00Z","items":[{"item_id":"sku","quantity":1}]}"#;
        let mut export = format!("{good}\n\n{}\n", good.replace("e1", "e2")).into_bytes();

        // WHEN read from a reader, as `--events` reads a file
        let history = history_from_reader(export.as_slice(), now).unwrap();
        export.extend_from_slice(b"{\"event_id\":\"\xff\"}\n");
        let error = history_from_reader(export.as_slice(), now).unwrap_err();

        // THEN the good lines make one cart of two events; the bad line is named
        assert_eq!((history.cart_count, history.customers[0].carts[0].events.len()), (1, 2));
        assert_eq!(error.line, 4);
        assert!(error.message.starts_with("not UTF-8 text"), "{error}");
    }
}
