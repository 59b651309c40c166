//! `cartback explain CART_ID`: why each message was or was not sent.

use std::process::ExitCode;
use std::sync::Arc;

use cartback_core::engine::Decision;
use cartback_core::ids::CartId;
use cartback_core::ports::SystemClock;
use cartback_core::service::{decide_now, CampaignCache};

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
    if args.json {
        let mut view = cartback_core::api::cart_view(&record, &timeline);
        view["messages"] = serde_json::to_value(&messages)?;
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(ExitCode::SUCCESS);
    }
    let cart = record.cart();
    let totals = cart.totals();
    println!(
        "cart {}: {:?}, {} item(s), {} {}",
        cart.cart_id,
        cart.status,
        totals.item_count,
        cartback_core::cart::money_text(totals.subtotal),
        totals.currency.unwrap_or_default()
    );
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
    Ok(ExitCode::SUCCESS)
}
