//! `cartback campaign ...`: marketers' control over campaigns, against the
//! local data folder or (with --aws) the DynamoDB config table.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use cartback_core::campaign::Campaign;
use clap::Subcommand;

use crate::CampaignArgs;

#[derive(Subcommand)]
pub enum Action {
    /// One line per campaign.
    List,
    /// Print a campaign in the file format (TOML).
    Show { id: String },
    /// Switch a campaign on.
    Enable { id: String },
    /// Switch a campaign off: its pending steps are not sent.
    Disable { id: String },
    /// Validate a campaign file and store it (create or replace).
    Apply { file: PathBuf },
    /// Write a campaign file to stdout or --out.
    Export {
        id: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub async fn run(args: CampaignArgs) -> anyhow::Result<ExitCode> {
    let stores = crate::stores::open(&args.store).await?;
    let store = stores.campaigns.clone();
    let stored = store.list().await?;
    let find = |id: &str| -> anyhow::Result<Campaign> {
        if let Some(c) = stored.iter().find(|c| c.id == id) {
            return Ok(c.clone());
        }
        if stored.is_empty() && id == "default" {
            return Ok(Campaign::default_campaign());
        }
        bail!("no campaign {id:?}; `cartback campaign list` shows the ids")
    };
    match args.action {
        Action::List => {
            if stored.is_empty() {
                println!("(no campaign stored: the built-in default applies)");
            }
            let shown = if stored.is_empty() { vec![Campaign::default_campaign()] } else { stored.clone() };
            println!("{:<20} {:<8} {:>8}  {:<40} steps", "ID", "ENABLED", "PRIORITY", "NAME");
            for c in shown {
                let steps = c
                    .steps
                    .iter()
                    .map(|s| s.delay.to_std().map(humantime_short).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(" -> ");
                println!(
                    "{:<20} {:<8} {:>8}  {:<40} {steps}",
                    c.id,
                    if c.enabled { "yes" } else { "no" },
                    c.priority,
                    c.name
                );
            }
        }
        Action::Show { id } => print!("{}", find(&id)?.to_toml()),
        Action::Enable { id } => set_enabled(store.as_ref(), find(&id)?, true).await?,
        Action::Disable { id } => set_enabled(store.as_ref(), find(&id)?, false).await?,
        Action::Apply { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            // The sets a step may name: the shipped ones and those stored with `cartback template apply`.
            let stored: Vec<String> =
                stores.templates.list_templates().await?.into_iter().map(|set| set.name.to_string()).collect();
            let mut known: Vec<&str> = cartback_core::template::SHIPPED_NAMES.to_vec();
            known.extend(stored.iter().map(String::as_str));
            let targets = stores.webhook_targets.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            let checked = Campaign::from_toml_with_templates(&text, &known).and_then(|campaign| {
                let unknown = campaign.unknown_webhook_targets(targets);
                if unknown.is_empty() {
                    Ok(campaign)
                } else {
                    Err(unknown)
                }
            });
            match checked {
                Ok(campaign) => {
                    store.put(&campaign).await?;
                    println!(
                        "applied campaign {:?} ({}, {} steps)",
                        campaign.id,
                        if campaign.enabled { "enabled" } else { "disabled" },
                        campaign.steps.len()
                    );
                }
                Err(errors) => {
                    eprintln!("{} is not a valid campaign:", file.display());
                    for e in errors {
                        eprintln!("  {}: {}", e.field, e.message);
                    }
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Action::Export { id, out } => {
            let text = find(&id)?.to_toml();
            match out {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?
                }
                None => print!("{text}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_enabled(
    store: &dyn cartback_core::ports::CampaignStore,
    mut campaign: Campaign,
    enabled: bool,
) -> anyhow::Result<()> {
    campaign.enabled = enabled;
    store.put(&campaign).await?;
    println!(
        "campaign {:?} {}; running checkers pick this up within a minute",
        campaign.id,
        if enabled { "enabled" } else { "disabled" }
    );
    Ok(())
}

fn humantime_short(d: std::time::Duration) -> String {
    let minutes = d.as_secs() / 60;
    match minutes {
        m if m % 1440 == 0 => format!("{}d", m / 1440),
        m if m % 60 == 0 => format!("{}h", m / 60),
        m => format!("{m}m"),
    }
}
