//! `cartback send FILE...`: signs each file's body and posts it.

use std::process::ExitCode;

use anyhow::Context;
use cartback_core::signing::sign_request;

use crate::SendArgs;

pub async fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let secret = crate::secret::require(&args.data)?;
    let base = args.url.trim_end_matches('/').to_owned();
    let url = format!("{base}/v1/events");
    let mut failed = false;
    for file in &args.files {
        let body = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let timestamp = server_time(&base).await.unwrap_or_else(chrono::Utc::now).timestamp();
        let signature = sign_request(&secret, timestamp, &body);
        let target = url.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let response = ureq::post(&target)
                .set("content-type", "application/json")
                .set("x-cartback-signature", &signature)
                .send_bytes(&body);
            match response {
                Ok(r) => Ok((r.status(), r.into_string().unwrap_or_default())),
                Err(ureq::Error::Status(code, r)) => Ok((code, r.into_string().unwrap_or_default())),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
        match answer {
            Ok((status, text)) => {
                println!("{} -> HTTP {status}", file.display());
                println!("{text}");
                failed |= status != 200;
            }
            Err(e) => {
                eprintln!("{}: cannot reach {url}: {e}", file.display());
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The server's clock from `/healthz`: under `--clock-speed` it runs ahead of
/// ours, and signatures must fall inside its replay window.
async fn server_time(base: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let url = format!("{base}/healthz");
    tokio::task::spawn_blocking(move || {
        let body: serde_json::Value = ureq::get(&url).call().ok()?.into_json().ok()?;
        body.get("now")?.as_str()?.parse().ok()
    })
    .await
    .ok()
    .flatten()
}
