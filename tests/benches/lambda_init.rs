//! Cold-start init of every Lambda bootstrap beside a hello world: the time
//! from process start to its first `GET /runtime/invocation/next`, against
//! the Runtime API emulator (`cartback_tests::lambda_api`), with the AWS
//! calls init makes (secrets, sources) answered by moto over loopback.
//!
//! Input: `LAMBDA_INIT_DIR`, a cargo-lambda output directory holding
//! `<function>/bootstrap` for `hello-lambda` and each function, all built
//! for this machine with one profile (scripts/bench.sh builds them with
//! `lambda`). `LAMBDA_INIT_RUNS` starts per bootstrap (default 30); the runs
//! are interleaved so a noisy neighbour hits every bootstrap alike.
//! Prints median and p90 per bootstrap and the ratio of medians to the hello
//! world (the goal: at most 1.5).

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use cartback_tests::lambda_api::{time_to_first_next, RuntimeApi};
use cartback_tests::moto::{Moto, Stack, REGION};

const HELLO: &str = "hello-lambda";
const FUNCTIONS: [&str; 6] = ["checker", "feedback", "ingest", "send-email", "send-push", "send-sms"];

fn main() {
    let Some(dir) = std::env::var_os("LAMBDA_INIT_DIR").map(PathBuf::from) else {
        eprintln!("lambda_init: set LAMBDA_INIT_DIR to the cargo-lambda output directory (scripts/bench.sh does)");
        std::process::exit(2);
    };
    let runs: usize = std::env::var("LAMBDA_INIT_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(30);
    let moto = Moto::global();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stack = runtime.block_on(async { Stack::create(moto.clients().await, 3).await });
    let api = RuntimeApi::start().unwrap();

    let names: Vec<&str> = std::iter::once(HELLO).chain(FUNCTIONS).collect();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); names.len()];
    for _ in 0..runs {
        for (name, times) in names.iter().zip(&mut samples) {
            let mut bootstrap = Command::new(dir.join(name).join("bootstrap"));
            bootstrap
                .envs(&stack.env)
                .env("AWS_LAMBDA_FUNCTION_NAME", name)
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_REGION", REGION)
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_ENDPOINT_URL", &moto.endpoint)
                .env("RUST_LOG", "warn");
            match time_to_first_next(&api, bootstrap, Duration::from_secs(30)) {
                Ok(init) => times.push(init),
                Err(error) => {
                    eprintln!("lambda_init: {name}: {error}");
                    std::process::exit(1);
                }
            }
        }
    }

    let hello = median(&mut samples[0].clone());
    println!("lambda init: process start to first /next, {runs} runs each (median, p90; ratio of medians to {HELLO})");
    for (name, times) in names.iter().zip(&mut samples) {
        let (mid, p90) = (median(times), percentile(times, 0.9));
        println!(
            "  {name:<12} {:>7.1} ms {:>7.1} ms  {:>5.2}x",
            ms(mid),
            ms(p90),
            mid.as_secs_f64() / hello.as_secs_f64()
        );
    }
}

fn percentile(times: &mut [Duration], q: f64) -> Duration {
    times.sort();
    let rank = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len());
    times[rank - 1]
}

fn median(times: &mut [Duration]) -> Duration {
    percentile(times, 0.5)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
