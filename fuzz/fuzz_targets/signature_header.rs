//! The request signature: input is `<header>\n<body>`. Any header is refused
//! or accepted without panicking, and a header Cartback signs for any body and
//! timestamp verifies at that time.
#![no_main]

use cartback_core::signing::{sign_request, verify_request, Accept, Scheme, Secret, SignedRequest};
use chrono::DateTime;
use libfuzzer_sys::fuzz_target;

/// 2026-11-23T10:00:00Z, the seeds' timestamp.
const NOW: i64 = 1_795_428_000;

fuzz_target!(|data: &[u8]| {
    let secret = Secret::new(b"fuzz-secret-0123456789".to_vec()).expect("a long secret");
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (header, body) = (String::from_utf8_lossy(&data[..split]), data.get(split + 1..).unwrap_or_default());
    let now = DateTime::from_timestamp(NOW, 0).expect("a time");
    let request = SignedRequest { method: "POST", path_and_query: "/v1/events", body };
    let _ = verify_request(&secret, Some(&header), &request, now, Accept::V1OrV2);

    let t = header.split(',').find_map(|p| p.trim().strip_prefix("t=")?.parse::<i64>().ok()).unwrap_or(NOW);
    if let Some(at) = DateTime::from_timestamp(t, 0) {
        let signed = sign_request(&secret, t, &request);
        assert_eq!(verify_request(&secret, Some(&signed), &request, at, Accept::V2Only), Ok(Scheme::V2), "{signed}");
    }
});
