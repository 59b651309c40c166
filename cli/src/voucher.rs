//! `cartback voucher list | show CODE | revoke CODE`: issued vouchers in the
//! local data folder or, with --aws, the DynamoDB state table. The
//! operator's own terminal shows whole codes (logs never do).

use std::process::ExitCode;

use anyhow::Context;
use cartback_core::ports::{Clock, SystemClock};
use cartback_core::voucher::{Discount, Voucher, VoucherCode, VoucherStatus};
use clap::Subcommand;

use crate::VoucherArgs;

/// The most vouchers `list` prints.
const MAX_LIST: usize = 1000;

#[derive(Subcommand)]
pub enum Action {
    /// The newest vouchers first: code, state, discount, cart, issue and expiry times.
    List {
        /// How many (at most 1000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print one voucher as JSON (case, spaces and dashes in the code do not matter).
    Show { code: String },
    /// Revoke an issued voucher: checkout refuses it from then on, and an
    /// order that uses it is recorded as an abuse attempt. A redeemed voucher
    /// stays redeemed.
    Revoke { code: String },
}

fn parse_code(text: &str) -> anyhow::Result<VoucherCode> {
    VoucherCode::parse(text).with_context(|| format!("{text:?} is not a voucher code"))
}

pub async fn run(args: VoucherArgs) -> anyhow::Result<ExitCode> {
    let stores = crate::stores::open(&args.store).await?;
    let state = &stores.state;
    match args.action {
        Action::List { limit, json } => {
            let vouchers = state.list_vouchers(limit.min(MAX_LIST)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&vouchers)?);
            } else if vouchers.is_empty() {
                println!("no vouchers");
            } else {
                print_table(&vouchers);
            }
        }
        Action::Show { code } => {
            let code = parse_code(&code)?;
            let Some(voucher) = state.voucher(&code).await? else {
                eprintln!("no voucher {code}");
                return Ok(ExitCode::FAILURE);
            };
            println!("{}", serde_json::to_string_pretty(&voucher)?);
        }
        Action::Revoke { code } => {
            let code = parse_code(&code)?;
            let Some(voucher) = state.revoke_voucher(&code, SystemClock.now()).await? else {
                eprintln!("no voucher {code}");
                return Ok(ExitCode::FAILURE);
            };
            match &voucher.status {
                VoucherStatus::Revoked { at } => println!("{code} revoked (at {})", at.to_rfc3339()),
                VoucherStatus::Redeemed { order_id, .. } => {
                    eprintln!("{code} was redeemed by order {order_id}; a redeemed voucher stays redeemed");
                    return Ok(ExitCode::FAILURE);
                }
                VoucherStatus::Issued => anyhow::bail!("{code} is still issued after the revocation"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn status_text(status: &VoucherStatus) -> String {
    match status {
        VoucherStatus::Issued => "issued".into(),
        VoucherStatus::Redeemed { order_id, .. } => format!("redeemed ({order_id})"),
        VoucherStatus::Revoked { .. } => "revoked".into(),
    }
}

fn discount_text(voucher: &Voucher) -> String {
    let currency = &voucher.terms.currency;
    match &voucher.terms.discount {
        Discount::PercentOff { percent, max_amount: Some(max) } => {
            format!("{}% (max {max} {currency})", percent.normalize())
        }
        Discount::PercentOff { percent, max_amount: None } => format!("{}%", percent.normalize()),
        Discount::AmountOff { amount } => format!("{amount} {currency}"),
        Discount::FreeShipping => "free shipping".into(),
    }
}

fn print_table(vouchers: &[Voucher]) {
    let rows: Vec<[String; 7]> = vouchers
        .iter()
        .map(|v| {
            [
                v.code.to_string(),
                status_text(&v.status),
                format!("{} {}", v.terms.tier.as_str(), discount_text(v)),
                v.cart_id.to_string(),
                v.campaign_id.clone(),
                v.issued_at.format("%Y-%m-%d %H:%M").to_string(),
                v.expires_at.format("%Y-%m-%d %H:%M").to_string(),
            ]
        })
        .collect();
    let header = ["CODE", "STATE", "OFFER", "CART", "CAMPAIGN", "ISSUED (UTC)", "EXPIRES (UTC)"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    }
}
