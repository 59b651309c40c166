//! The port contract suite (`cartback_tests::contract`) against the AWS
//! adapters: DynamoDB state and campaigns, EventBridge Scheduler timers,
//! over HTTP on the test binary's moto server. Each test gets its own
//! tables and schedule group.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;

use cartback_aws::clients::Clients;
use cartback_aws::config::SchedulerConfig;
use cartback_aws::dynamo::{DynamoCampaignStore, DynamoStateStore};
use cartback_aws::scheduler::EventBridgeScheduler;
use cartback_aws::templates::DynamoTemplateStore;
use cartback_core::ports::{SystemClock, TimerPayload};
use cartback_tests::contract::{Adapters, ArmedTimers};
use cartback_tests::moto::{create_table, unique, Moto, CHECKER_ARN, SCHEDULER_ROLE_ARN, TIMER_DLQ_ARN};

/// Items per page of a facts query: small, so the facts contract checks
/// (1,500 facts on one day, ~94 per partition) read several pages of each.
const FACT_PAGE_ITEMS: u32 = 25;

/// Reads armed timers back from EventBridge Scheduler: the schedules in
/// the group, each one's target input parsed as the timer payload.
struct ScheduleGroup {
    clients: Clients,
    group: String,
}

#[async_trait]
impl ArmedTimers for ScheduleGroup {
    async fn armed_for(&self, cart_id: &str) -> Result<Vec<TimerPayload>, String> {
        let scheduler = &self.clients.scheduler;
        let mut timers = Vec::new();
        let mut next = None;
        loop {
            let page = scheduler
                .list_schedules()
                .group_name(&self.group)
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            for summary in page.schedules {
                let name = summary.name.unwrap_or_default();
                let got = scheduler
                    .get_schedule()
                    .name(&name)
                    .group_name(&self.group)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let input = got.target.and_then(|t| t.input).ok_or("schedule without input")?;
                let timer: TimerPayload = serde_json::from_str(&input).map_err(|e| e.to_string())?;
                if timer.cart_id == cart_id {
                    timers.push(timer);
                }
            }
            match page.next_token {
                Some(token) => next = Some(token),
                None => return Ok(timers),
            }
        }
    }
}

async fn adapters() -> Adapters {
    adapters_and_table().await.0
}

/// The adapters, with the moto clients and the state table's name.
async fn adapters_and_table() -> (Adapters, Clients, String) {
    let clients = Moto::global().clients().await;
    let (state_table, config_table, group) =
        (unique("contract-state"), unique("contract-config"), unique("contract-timers"));
    create_table(&clients, &state_table, true).await;
    create_table(&clients, &config_table, false).await;
    clients.scheduler.create_schedule_group().name(&group).send().await.expect("schedule group");
    let scheduler_config = SchedulerConfig {
        group: group.clone(),
        role_arn: SCHEDULER_ROLE_ARN.into(),
        checker_arn: CHECKER_ARN.into(),
        dead_letter_arn: TIMER_DLQ_ARN.into(),
    };
    let adapters = Adapters {
        state: Arc::new(
            DynamoStateStore::new(clients.dynamodb.clone(), &state_table, Duration::days(90), Arc::new(SystemClock))
                // A day's facts then span several pages per partition.
                .with_fact_page_limit(FACT_PAGE_ITEMS),
        ),
        campaigns: Arc::new(DynamoCampaignStore::new(clients.dynamodb.clone(), &config_table)),
        templates: Arc::new(DynamoTemplateStore::new(clients.dynamodb.clone(), config_table)),
        scheduler: Arc::new(EventBridgeScheduler::new(clients.scheduler.clone(), scheduler_config)),
        timers: Arc::new(ScheduleGroup { clients: clients.clone(), group }),
        keep_alive: None,
    };
    (adapters, clients, state_table)
}

cartback_tests::contract_suite!(adapters);

/// GIVEN a customer with a profile, carts (one a guest cart identified
/// later), messages sent and queued, ledgers and facts, beside another
/// customer WHEN erased THEN a scan of every item left in the state table
/// finds none carrying the customer's id, email address, phone, push token,
/// web push endpoint, cart ids or order id: the anonymous facts carry
/// pseudonyms only, and the other customer's items are all still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_erased_customer_when_every_item_left_in_the_table_is_listed_then_none_carries_their_identifiers() {
    let (adapters, clients, table) = adapters_and_table().await;
    let seeded = cartback_tests::customer_contract::seed_customer(&adapters).await;
    let before = scan(&clients, &table).await;
    let holds = |items: &[String], needle: &str| items.iter().any(|item| item.contains(needle));
    for identifier in seeded.identifiers() {
        assert!(holds(&before, &identifier), "the seeded table holds {identifier} before the erasure");
    }

    adapters.state.erase_customer(&seeded.customer_id, chrono::Utc::now()).await.unwrap();

    let after = scan(&clients, &table).await;
    for identifier in seeded.identifiers() {
        let carriers: Vec<&String> = after.iter().filter(|item| item.contains(&identifier)).collect();
        assert!(carriers.is_empty(), "{identifier} is still in {carriers:#?}");
    }
    assert!(holds(&after, "erased-"), "the anonymous facts are kept");
    for other in [seeded.other_customer.as_str(), seeded.other_cart.as_str(), seeded.other_message.as_str()] {
        assert!(holds(&after, other), "the other customer's {other} is untouched");
    }
}

/// Every item of the table, each as the text of its attributes.
async fn scan(clients: &Clients, table: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = clients.dynamodb.scan().table_name(table).set_exclusive_start_key(start).send().await.expect("scan");
        items.extend(page.items.unwrap_or_default().iter().map(|item| format!("{item:?}")));
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return items,
        }
    }
}

/// GIVEN a template set of four locales whose HTML takes 360 KB in all
/// WHEN put in the config table THEN it is refused before DynamoDB is asked,
/// the error naming the set and its size, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_set_over_350_kb_when_put_then_it_is_refused_naming_the_set_and_nothing_is_stored() {
    let adapters = adapters().await;
    let name = cartback_core::template::TemplateName::parse("huge").unwrap();
    let mut set = cartback_tests::template_contract::full_set(&name, &["en", "de", "fr", "es"]);
    for parts in set.locales.values_mut() {
        parts.email_html = Some("<p>x</p>".repeat(90 * 1024 / 8));
    }
    let err = adapters.templates.put_template(&set).await.unwrap_err();
    assert!(matches!(err, cartback_core::ports::PortError::Refused(..)), "{err:?}");
    assert!(err.to_string().contains("template set huge takes 36"), "{err}");
    assert!(adapters.templates.list_templates().await.unwrap().is_empty(), "nothing is stored");
}
