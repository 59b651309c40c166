//! `cartback dashboard`: prints a signed link to the evaluation dashboard (`GET /dashboard`) that expires
//! after `--ttl` (12 hours unless told). The link is signed with the ingest secret under the dashboard's own
//! purpose, so it opens the dashboard and nothing else; expiry is real time, whatever the server's clock speed.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use cartback_core::signing::{dashboard_token, Secret};

use crate::DashboardArgs;

/// The longest a link may live: a leaked link should not open the numbers for long.
pub const MAX_TTL: Duration = Duration::from_secs(31 * 24 * 3600);

pub async fn run(args: DashboardArgs) -> anyhow::Result<ExitCode> {
    let secret = if args.store.aws { aws_secret().await? } else { crate::secret::require(&args.store.data)? };
    let now = chrono::Utc::now().timestamp();
    let (link, expires) = link(&secret, &args.url, args.ttl, now)?;
    println!("{link}");
    let until = chrono::DateTime::from_timestamp(expires, 0).map(|t| t.to_rfc3339()).unwrap_or_default();
    eprintln!("The link opens the evaluation dashboard until {until}; anyone holding it can read the report.");
    Ok(ExitCode::SUCCESS)
}

/// The dashboard link under `base` and its expiry (unix seconds).
pub fn link(secret: &Secret, base: &str, ttl: Duration, now: i64) -> anyhow::Result<(String, i64)> {
    if ttl.is_zero() || ttl > MAX_TTL {
        bail!("--ttl: expected a duration from 1s to {}", humantime::format_duration(MAX_TTL));
    }
    let base = base.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        bail!("--url: expected an http:// or https:// base URL, got {base:?}");
    }
    let expires = now + i64::try_from(ttl.as_secs()).context("--ttl is too long")?;
    Ok((format!("{base}/dashboard?token={}", dashboard_token(secret, expires)), expires))
}

/// On AWS the key is the stack's ingest secret: CARTBACK_INGEST_SECRET when the operator has it at hand,
/// or read from Secrets Manager by CARTBACK_INGEST_SECRET_ARN (the stack's `IngestSecretArn` output).
#[cfg(feature = "aws")]
async fn aws_secret() -> anyhow::Result<Secret> {
    use cartback_aws::config::INGEST_SECRET_ARN;
    if let Ok(value) = std::env::var(crate::secret::ENV) {
        return Secret::new(value.into_bytes()).with_context(|| format!("{} is too short", crate::secret::ENV));
    }
    let arn = std::env::var(INGEST_SECRET_ARN)
        .with_context(|| format!("set {INGEST_SECRET_ARN} to the stack's IngestSecretArn output"))?;
    let clients = cartback_aws::clients::Clients::new(&cartback_aws::clients::load_sdk_config().await);
    Ok(cartback_aws::wiring::load_secret(&clients, &arn).await?)
}

#[cfg(not(feature = "aws"))]
async fn aws_secret() -> anyhow::Result<Secret> {
    bail!("this cartback was built without AWS support; build it with `cargo install --path cli --features aws`")
}

#[cfg(test)]
mod tests {
    use cartback_core::signing::{verify_dashboard_token, LinkError};

    use super::*;

    fn secret() -> Secret {
        Secret::new(b"cli-test-secret-0123456789".to_vec()).unwrap()
    }

    /// GIVEN a base URL with a trailing slash and the default 12 hours WHEN a link is made THEN it points at
    /// /dashboard under that base and its token opens the page until, and only until, 12 hours later.
    #[test]
    fn given_a_base_and_a_ttl_when_a_link_is_made_then_its_token_holds_exactly_that_long() {
        let now = 1_700_000_000;
        let (link, expires) = link(&secret(), "http://127.0.0.1:8080/", Duration::from_secs(12 * 3600), now).unwrap();
        assert_eq!(expires, now + 12 * 3600);
        let token = link.strip_prefix("http://127.0.0.1:8080/dashboard?token=").unwrap();
        let at = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap();
        assert_eq!(verify_dashboard_token(&secret(), token, at(expires)), Ok(expires));
        assert_eq!(verify_dashboard_token(&secret(), token, at(expires + 1)), Err(LinkError::Expired));
    }

    #[test]
    fn given_a_zero_or_too_long_ttl_or_a_base_without_scheme_when_a_link_is_made_then_the_option_is_named() {
        let error = |base: &str, ttl: u64| link(&secret(), base, Duration::from_secs(ttl), 0).unwrap_err().to_string();
        assert!(error("http://x", 0).starts_with("--ttl:"));
        assert!(error("http://x", MAX_TTL.as_secs() + 1).starts_with("--ttl:"));
        assert!(error("127.0.0.1:8080", 60).starts_with("--url:"));
    }
}
