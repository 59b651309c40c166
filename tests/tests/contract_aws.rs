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
    Adapters {
        state: Arc::new(
            DynamoStateStore::new(clients.dynamodb.clone(), state_table, Duration::days(90), Arc::new(SystemClock))
                // A day's facts then span several pages per partition.
                .with_fact_page_limit(FACT_PAGE_ITEMS),
        ),
        campaigns: Arc::new(DynamoCampaignStore::new(clients.dynamodb.clone(), config_table)),
        scheduler: Arc::new(EventBridgeScheduler::new(clients.scheduler.clone(), scheduler_config)),
        timers: Arc::new(ScheduleGroup { clients, group }),
        keep_alive: None,
    }
}

cartback_tests::contract_suite!(adapters);
