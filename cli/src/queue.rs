//! `cartback queue ...`: the local channel queues and their dead letters.
//! On AWS the same job is done by `infra/redrive-dlq.sh`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cartback_core::message::QueueName;
use cartback_local::{Database, SqliteQueue};
use clap::{Args, Subcommand, ValueEnum};

#[derive(Args)]
pub struct QueueArgs {
    /// The local data folder (the one `cartback dev` uses).
    #[arg(long, default_value = ".cartback", env = "CARTBACK_DATA", global = true)]
    pub data: PathBuf,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand)]
pub enum Action {
    /// Ready, delayed and dead jobs per channel queue.
    Stats,
    /// Jobs that used up their attempts, with their last error.
    DeadLetters {
        #[arg(value_enum)]
        channel: Channel,
    },
    /// Move a channel's dead letters back onto its queue.
    Redrive {
        #[arg(value_enum)]
        channel: Channel,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Channel {
    Email,
    Sms,
    Push,
    Webhook,
}

impl From<Channel> for QueueName {
    fn from(c: Channel) -> QueueName {
        match c {
            Channel::Email => QueueName::Email,
            Channel::Sms => QueueName::Sms,
            Channel::Push => QueueName::Push,
            Channel::Webhook => QueueName::Webhook,
        }
    }
}

pub async fn run(args: QueueArgs) -> anyhow::Result<ExitCode> {
    let db =
        Database::open(&args.data).with_context(|| format!("cannot open the database in {}", args.data.display()))?;
    let queue = SqliteQueue::new(db);
    let now = chrono::Utc::now();
    match args.action {
        Action::Stats => {
            println!("{:<8} {:>6} {:>8} {:>6}", "QUEUE", "READY", "DELAYED", "DEAD");
            for name in QueueName::ALL {
                let s = queue.stats(name, now).await?;
                println!("{:<8} {:>6} {:>8} {:>6}", name.as_str(), s.ready, s.delayed, s.dead);
            }
        }
        Action::DeadLetters { channel } => {
            let letters = queue.dead_letters(channel.into()).await?;
            if letters.is_empty() {
                println!("no dead letters");
            }
            for d in letters {
                println!(
                    "{}  message {}  attempts {}  failed {}  error: {}",
                    d.id,
                    d.message_id.as_deref().unwrap_or("(unreadable job)"),
                    d.attempts,
                    d.failed_at.to_rfc3339(),
                    d.last_error
                );
            }
        }
        Action::Redrive { channel } => {
            let moved = queue.redrive(channel.into(), now).await?;
            println!("{moved} job(s) moved back to the {} queue", QueueName::from(channel).as_str());
        }
    }
    Ok(ExitCode::SUCCESS)
}
