//! A Lambda Runtime API emulator reduced to what an init-time measurement
//! needs: a loopback HTTP server that notes when a function first asks for
//! work (`GET /2018-06-01/runtime/invocation/next`), the moment its init is
//! over. The request is never answered (Lambda long-polls it too), so the
//! function waits there until it is killed.
//!
//! [`time_to_first_next`] starts a bootstrap against it and returns the time
//! from process start to that request: the cold-start init a user pays,
//! without the download and sandbox set-up Lambda adds around it.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The path of the Runtime API's "next invocation" request.
pub const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";

/// A running emulator: its address (for `AWS_LAMBDA_RUNTIME_API`) and the
/// moments `/next` was asked for.
pub struct RuntimeApi {
    pub address: String,
    next: mpsc::Receiver<Instant>,
}

impl RuntimeApi {
    /// Listens on a free loopback port; every connection is read on its own
    /// thread (a runtime may open more than one).
    pub fn start() -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?.to_string();
        let (sender, next) = mpsc::channel();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sender = sender.clone();
                thread::spawn(move || {
                    // The connection is kept open (held by the reader) and never
                    // answered: the function stays parked in its long poll.
                    let mut reader = BufReader::new(stream);
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|read| read > 0) {
                        if is_next_request(&line) {
                            let _ = sender.send(Instant::now());
                        }
                        line.clear();
                    }
                });
            }
        });
        Ok(RuntimeApi { address, next })
    }

    /// Waits up to `timeout` from now for a `/next` request noted after `since`.
    fn next_after(&self, since: Instant, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.next.recv_timeout(left) {
                Ok(at) if at >= since => return Some(at),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

/// Whether an HTTP request line asks for the next invocation.
fn is_next_request(line: &str) -> bool {
    let mut parts = line.split_whitespace();
    parts.next() == Some("GET") && parts.next() == Some(NEXT_PATH)
}

/// Starts `bootstrap` (its environment already set) against `api` and
/// returns the time from spawning it to its first `/next`; the process is
/// killed afterwards. An error says why there was no figure: the process
/// would not start, exited first (with its stderr), or took over `timeout`.
pub fn time_to_first_next(api: &RuntimeApi, mut bootstrap: Command, timeout: Duration) -> Result<Duration, String> {
    bootstrap
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = bootstrap.spawn().map_err(|e| format!("{:?} did not start: {e}", bootstrap.get_program()))?;
    let outcome = wait_for_next(api, &mut child, started, timeout);
    let _ = child.kill();
    let status = child.wait();
    match outcome {
        Some(at) => Ok(at - started),
        None => {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            Err(format!(
                "{:?} asked for no invocation within {timeout:?} ({}); stderr: {tail}",
                bootstrap.get_program(),
                status.map_or_else(|e| e.to_string(), |s| s.to_string())
            ))
        }
    }
}

/// Polls for the first `/next`, giving up early when the process exits.
fn wait_for_next(api: &RuntimeApi, child: &mut Child, started: Instant, timeout: Duration) -> Option<Instant> {
    let step = Duration::from_millis(20);
    while started.elapsed() < timeout {
        if let Some(at) = api.next_after(started, step) {
            return Some(at);
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            // It may have asked just before exiting.
            return api.next_after(started, Duration::ZERO);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpStream;

    use super::*;

    #[test]
    fn a_next_request_is_noted_and_other_requests_are_not() {
        // GIVEN a running emulator
        let api = RuntimeApi::start().unwrap();
        let since = Instant::now();
        // WHEN a client posts an error, then asks for the next invocation
        let mut client = TcpStream::connect(&api.address).unwrap();
        write!(client, "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(api.next_after(since, Duration::from_millis(200)).is_none());
        write!(client, "GET {NEXT_PATH} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        // THEN only the `/next` request is noted
        assert!(api.next_after(since, Duration::from_secs(10)).is_some());
    }

    #[test]
    fn a_process_that_exits_without_asking_is_an_error_with_its_stderr() {
        // GIVEN a "bootstrap" that fails during init
        let api = RuntimeApi::start().unwrap();
        let mut bootstrap = Command::new("sh");
        bootstrap.args(["-c", "echo missing CARTBACK_STATE_TABLE >&2; exit 3"]);
        // WHEN it is timed
        let error = time_to_first_next(&api, bootstrap, Duration::from_secs(10)).unwrap_err();
        // THEN the error carries its exit and its last words, not a figure
        assert!(error.contains("exit status: 3"), "{error}");
        assert!(error.contains("missing CARTBACK_STATE_TABLE"), "{error}");
    }

    #[test]
    fn the_time_runs_from_spawn_to_the_first_next() {
        // GIVEN a "bootstrap" that sleeps 0.3 s, then asks for work over HTTP
        let api = RuntimeApi::start().unwrap();
        let port = api.address.rsplit(':').next().unwrap().to_owned();
        let mut bootstrap = Command::new("python3");
        bootstrap.args([
            "-c",
            &format!(
                "import socket,time; time.sleep(0.3); s=socket.create_connection(('127.0.0.1',{port})); \
                 s.sendall(b'GET {NEXT_PATH} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'); time.sleep(30)"
            ),
        ]);
        // WHEN it is timed
        let init = time_to_first_next(&api, bootstrap, Duration::from_secs(20)).unwrap();
        // THEN the figure includes the sleep (a lower bound only: no wall-clock ceiling)
        assert!(init >= Duration::from_millis(300), "{init:?}");
    }
}
