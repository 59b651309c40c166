//! A timer cannot be dropped on AWS (issue 9, item 14), on moto: the
//! checker fails three times (DynamoDB answers 503 through the proxy until
//! the SDK gives up, as in a throttled table or a bad deploy), so Lambda
//! gives the invocation up. The cart still gets its message, once, by
//! either path: the dead-letter queue redriven into the checker's timer
//! queue, or the sweep that re-arms overdue timers from the sparse index.
//!
//! What AWS itself does is emulated, and only that: Lambda putting its
//! invocation record in the OnFailure destination, SQS's message move task
//! (`infra/redrive-dlq.sh timers`), the event source mappings and the
//! schedules firing (moto never fires them).

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use cartback_aws::handlers;
use cartback_aws::sweep::TimerSweep;
use cartback_aws::wiring;
use cartback_core::ports::{CartStore, PortError, Scheduler, Timeline, TimerPayload};
use cartback_tests::moto::{post_events, response_json, Fault, Moto, Proxy, Stack, TestClock};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

struct World {
    stack: Stack,
    proxy: Proxy,
    clock: std::sync::Arc<TestClock>,
    timer: TimerPayload,
}

/// GIVEN an abandoned cart (identify + one add to cart at 10:01) whose
/// timer is armed for 10:31, and a clock at 10:31:40.
async fn abandoned_cart() -> World {
    let moto = Moto::global();
    let stack = Stack::create(moto.clients().await, 3).await;
    let proxy = Proxy::start(moto.port);
    let clock = TestClock::new(at("2026-11-23T10:03:00Z"));
    let app = stack.http_app(clock.clone());
    let body = json!({ "events": [
        { "event_id": "t-identify", "type": "identify", "occurred_at": "2026-11-23T10:00:00Z", "customer_id": "cust-t",
          "customer": { "email": "t@example.com", "timezone": "Europe/Paris", "consents": { "email": true } } },
        { "event_id": "t-add", "type": "add_to_cart", "occurred_at": "2026-11-23T10:01:00Z", "cart_id": "cart-t",
          "customer_id": "cust-t", "currency": "EUR",
          "items": [{ "item_id": "sku-mug", "item_name": "Stoneware mug", "price": "14.90", "quantity": 1 }] }
    ] });
    let answer = response_json(&handlers::ingest(&app, post_events(&body, &stack.secret(), clock_now(&clock))).await);
    assert_eq!(answer["accepted"], 2, "{answer}");
    let armed = stack.schedules().await;
    assert_eq!(armed.len(), 1);
    let (timer, dead_letter) = armed[0].clone();
    assert_eq!(timer, TimerPayload { cart_id: "cart-t".into(), due_at: at("2026-11-23T10:31:00Z") });
    assert_eq!(dead_letter.as_deref(), Some(stack.queues["timers"].dlq_arn.as_str()), "the schedule has a DLQ");
    clock.set(at("2026-11-23T10:31:40Z"));
    World { stack, proxy, clock, timer }
}

fn clock_now(clock: &TestClock) -> DateTime<Utc> {
    cartback_core::ports::Clock::now(clock)
}

impl World {
    /// WHEN the checker fails on its first try and both of Lambda's retries.
    async fn checker_fails_three_times(&self) {
        let proxied = self.stack.with_clients(self.proxy.clients().await);
        let checker =
            wiring::checker(&proxied.clients, &proxied.checker_config(), self.stack.secret(), self.clock.clone());
        let sweep = wiring::timer_sweep(&proxied.clients, &proxied.checker_config(), self.clock.clone());
        let attempts = cartback_aws::clients::MAX_ATTEMPTS;
        self.proxy.inject("dynamodb", "GetItem", Fault::Unavailable, 3 * attempts);
        for invocation in 1..=3 {
            let payload = serde_json::to_value(&self.timer).unwrap();
            let result = handlers::checker_function(&checker, &sweep, payload).await;
            assert!(result.is_err(), "invocation {invocation} was meant to fail: {result:?}");
        }
        assert_eq!(self.proxy.count("dynamodb", "GetItem"), 3 * attempts as usize);
        assert_eq!(self.proxy.count("sqs", "SendMessage"), 0, "nothing was queued");
    }

    async fn checker(&self) -> (cartback_core::service::Checker, cartback_aws::sweep::TimerSweep) {
        let config = self.stack.checker_config();
        (
            wiring::checker(&self.stack.clients, &config, self.stack.secret(), self.clock.clone()),
            wiring::timer_sweep(&self.stack.clients, &config, self.clock.clone()),
        )
    }

    /// The send-email function on whatever the email queue holds.
    async fn deliver_emails(&self) {
        let delivery = wiring::email_delivery(&self.stack.clients, &self.stack.email_config(), self.clock.clone());
        loop {
            let batch = self.stack.receive("email").await;
            if batch.records.is_empty() {
                return;
            }
            let result = handlers::sender(&delivery, batch.clone()).await;
            assert!(result.batch_item_failures.is_empty());
            self.stack.settle("email", &batch, &result).await;
        }
    }

    async fn armed_for(&self) -> Option<DateTime<Utc>> {
        let store = wiring::state_store(&self.stack.clients, &self.stack.timer_config().common, self.clock.clone());
        store.get_cart(&"cart-t".into()).await.unwrap().unwrap().timer_armed_for
    }
}

#[tokio::test]
async fn given_a_timer_whose_checker_failed_three_times_when_its_dead_letter_is_redriven_then_the_email_goes_out_once()
{
    let world = abandoned_cart().await;
    world.checker_fails_three_times().await;
    let stack = &world.stack;
    let timers = &stack.queues["timers"];

    // Lambda gives up and sends its invocation record to the OnFailure
    // destination (the record's documented shape).
    let record = json!({
        "version": "1.0",
        "timestamp": "2026-11-23T10:34:00.000Z",
        "requestContext": { "requestId": "r-1", "functionArn": format!("{}:$LATEST", cartback_tests::moto::CHECKER_ARN),
                            "condition": "RetriesExhausted", "approximateInvokeCount": 3 },
        "requestPayload": world.timer,
        "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
        "responsePayload": { "errorMessage": "dynamodb unavailable", "errorType": "HandlerError" }
    });
    stack.clients.sqs.send_message().queue_url(&timers.dlq_url).message_body(record.to_string()).send().await.unwrap();
    // A schedule that could not invoke the checker at all leaves its input.
    let spare = TimerPayload { cart_id: "cart-t".into(), due_at: world.timer.due_at };
    let body = serde_json::to_string(&spare).unwrap();
    stack.clients.sqs.send_message().queue_url(&timers.dlq_url).message_body(body).send().await.unwrap();
    assert_eq!(stack.queue_depth(&timers.dlq_url).await, 2);

    // infra/redrive-dlq.sh timers: SQS moves the dead letters to TimerQueue.
    let dead = stack.clients.sqs.receive_message().queue_url(&timers.dlq_url).max_number_of_messages(10).send().await;
    for message in dead.unwrap().messages.unwrap_or_default() {
        let body = message.body.unwrap();
        stack.clients.sqs.send_message().queue_url(&timers.url).message_body(body).send().await.unwrap();
        let handle = message.receipt_handle.unwrap();
        stack.clients.sqs.delete_message().queue_url(&timers.dlq_url).receipt_handle(handle).send().await.unwrap();
    }

    // THEN the checker, fed by TimerQueue, checks the cart and queues the email.
    world.clock.advance(Duration::minutes(30));
    let (checker, sweep) = world.checker().await;
    let batch = stack.receive("timers").await;
    assert_eq!(batch.records.len(), 2);
    let answer = handlers::checker_function(&checker, &sweep, serde_json::to_value(&batch).unwrap()).await.unwrap();
    let response: aws_lambda_events::sqs::SqsBatchResponse = serde_json::from_value(answer.clone()).unwrap();
    assert!(response.batch_item_failures.is_empty(), "{answer}");
    stack.settle("timers", &batch, &response).await;
    world.deliver_emails().await;
    assert_eq!(stack.sent_emails().len(), 1, "one email for the cart, not one per redriven timer");
    assert_ne!(world.armed_for().await, Some(world.timer.due_at), "the dropped timer is handled");
    assert_eq!(stack.queue_depth(&timers.dlq_url).await + stack.queue_depth(&timers.url).await, 0);
}

#[tokio::test]
async fn given_a_timer_whose_checker_failed_three_times_when_nobody_redrives_it_then_the_sweep_rearms_it_and_the_email_goes_out(
) {
    let world = abandoned_cart().await;
    world.checker_fails_three_times().await;
    let stack = &world.stack;
    let (checker, sweep) = world.checker().await;

    // Within the grace period the timer may still be on its way: left alone.
    world.clock.set(world.timer.due_at + Duration::minutes(cartback_aws::sweep::GRACE_MINUTES - 1));
    let report = handlers::checker_function(&checker, &sweep, json!({ "sweep": {} })).await.unwrap();
    assert_eq!(report["overdue"], 0, "{report}");
    assert_eq!(stack.schedules().await.len(), 1);

    // Past it, the sweep re-arms the cart a minute later.
    world.clock.set(world.timer.due_at + Duration::minutes(cartback_aws::sweep::GRACE_MINUTES + 1));
    let report = handlers::checker_function(&checker, &sweep, json!({ "sweep": {} })).await.unwrap();
    assert_eq!((report["overdue"].as_u64(), report["rearmed"].as_u64()), (Some(1), Some(1)), "{report}");
    let (rearmed, dead_letter) = stack.schedules().await[0].clone();
    let expected = cartback_aws::sweep::rearm_time(clock_now(&world.clock));
    assert_eq!(rearmed, TimerPayload { cart_id: "cart-t".into(), due_at: expected });
    assert!(dead_letter.is_some());
    assert_eq!(world.armed_for().await, Some(expected));

    // A second sweep before it fires finds nothing overdue: no second timer.
    let report = handlers::checker_function(&checker, &sweep, json!({ "sweep": {} })).await.unwrap();
    assert_eq!(report["overdue"], 0, "{report}");

    // The re-armed schedule fires; the email goes out once.
    world.clock.set(expected + Duration::seconds(30));
    let outcome: Value =
        handlers::checker_function(&checker, &sweep, serde_json::to_value(&rearmed).unwrap()).await.unwrap();
    assert_eq!(outcome["sent"].as_array().map(Vec::len), Some(1), "{outcome}");
    world.deliver_emails().await;
    assert_eq!(stack.sent_emails().len(), 1);

    // The cart waits for its next step now: not overdue, however late.
    world.clock.advance(Duration::minutes(cartback_aws::sweep::GRACE_MINUTES + 1));
    let report = handlers::checker_function(&checker, &sweep, json!({ "sweep": {} })).await.unwrap();
    assert_eq!(report["overdue"], 0, "{report}");
}

/// A scheduler that refuses to arm chosen carts and arms the others.
struct RefusingScheduler {
    inner: std::sync::Arc<dyn Scheduler>,
    refused: &'static str,
}

#[async_trait::async_trait]
impl Scheduler for RefusingScheduler {
    async fn arm(&self, timer: &TimerPayload) -> Result<(), PortError> {
        if timer.cart_id.as_str() == self.refused {
            return Err(PortError::Unavailable("scheduler", "throttled".into()));
        }
        self.inner.arm(timer).await
    }
}

#[tokio::test]
async fn given_two_overdue_carts_and_a_scheduler_failing_for_one_when_the_sweep_runs_then_the_other_is_still_rearmed() {
    let world = abandoned_cart().await;
    let stack = &world.stack;
    let app = stack.http_app(world.clock.clone());
    world.clock.set(at("2026-11-23T10:01:00Z"));
    let body = json!({ "events": [{ "event_id": "u-add", "type": "add_to_cart", "occurred_at": "2026-11-23T10:01:00Z",
        "cart_id": "cart-u", "items": [{ "item_id": "sku-mug" }] }] });
    let answer =
        response_json(&handlers::ingest(&app, post_events(&body, &stack.secret(), clock_now(&world.clock))).await);
    assert_eq!(answer["accepted"], 1, "{answer}");
    // GIVEN both timers missed (nobody fired them) and are past the grace period.
    world.clock.set(world.timer.due_at + Duration::minutes(cartback_aws::sweep::GRACE_MINUTES + 1));
    let sweep = world.checker().await.1;
    let sweep = TimerSweep {
        scheduler: std::sync::Arc::new(RefusingScheduler { inner: sweep.scheduler, refused: "cart-t" }),
        ..sweep
    };

    // WHEN the sweep runs with the scheduler failing for cart-t.
    let report = sweep.run().await.unwrap();

    // THEN cart-u is re-armed anyway, and cart-t is counted failed, not lost
    // (nor counted as a re-arm): it is still overdue for the next run.
    assert_eq!((report.overdue, report.rearmed, report.failed), (2, 1, 1), "{report:?}");
    let armed: Vec<String> = stack.schedules().await.iter().map(|(t, _)| t.cart_id.to_string()).collect();
    assert!(armed.contains(&"cart-u".to_owned()), "{armed:?}");
    world.clock.advance(Duration::minutes(cartback_aws::sweep::GRACE_MINUTES + 2));
    let healed = world.checker().await.1.run().await.unwrap();
    assert_eq!((healed.overdue, healed.rearmed, healed.failed), (2, 2, 0), "{healed:?}");
}

#[tokio::test]
async fn given_a_cart_whose_check_never_completes_when_the_sweep_keeps_finding_it_then_it_gives_up_after_max_rearms_with_a_timeline_line(
) {
    let world = abandoned_cart().await;
    let sweep = world.checker().await.1;
    let max = cartback_aws::sweep::MAX_REARMS as usize;
    let mut rearms = 0;
    // GIVEN a cart whose re-armed timer never leads to a completed check
    // (the checker fails for good), WHEN the sweep finds it overdue run after run.
    for _ in 0..=max {
        world.clock.advance(Duration::minutes(cartback_aws::sweep::GRACE_MINUTES + 2));
        let report = sweep.run().await.unwrap();
        assert_eq!(report.overdue, 1, "{report:?}");
        rearms += report.rearmed;
        if report.given_up == 1 {
            break;
        }
    }
    // THEN it re-armed it MAX_REARMS times, then gave up, said so on the
    // cart's timeline, and later runs leave it alone.
    assert_eq!(rearms, max);
    world.clock.advance(Duration::minutes(cartback_aws::sweep::GRACE_MINUTES + 2));
    assert_eq!(sweep.run().await.unwrap().overdue, 0);
    assert_eq!(world.armed_for().await, None, "no armed time left for a later cart write to put back");
    let store = wiring::state_store(&world.stack.clients, &world.stack.timer_config().common, world.clock.clone());
    let timeline = store.timeline(&"cart-t".into()).await.unwrap();
    assert_eq!(timeline.iter().filter(|e| e.code == "timer_given_up").count(), 1, "{timeline:?}");
}
