//! `cartback send FILE...`: signs each file's body and posts it.

use std::process::ExitCode;

use anyhow::Context;
use cartback_core::signing::{sign_request, SignedRequest};

use crate::SendArgs;

pub async fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let secret = crate::secret::require(&args.data)?;
    let base = args.url.trim_end_matches('/').to_owned();
    let path = "/v1/events";
    let url = format!("{base}{path}");
    let mut failed = false;
    for file in &args.files {
        let body = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        // Real time: the replay window is checked against the real clock,
        // even under `cartback dev --clock-speed`.
        let timestamp = chrono::Utc::now().timestamp();
        let signature =
            sign_request(&secret, timestamp, &SignedRequest { method: "POST", path_and_query: path, body: &body });
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
