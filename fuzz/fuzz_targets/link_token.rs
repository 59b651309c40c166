//! Link tokens (`/r/{token}`): input is lines `<token>\n<message id>\n<cart
//! id>\n<target>\n<expiry>`. Any token is verified without panicking; a link
//! Cartback signs for any claims verifies back to exactly those claims until
//! it expires, and never under another secret.
#![no_main]

use cartback_core::signing::{sign_link, verify_link, LinkClaims, Secret};
use chrono::DateTime;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_795_428_000;

fuzz_target!(|data: &[u8]| {
    let secret = Secret::new(b"fuzz-secret-0123456789".to_vec()).expect("a long secret");
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let token = lines.next().unwrap_or_default();
    let now = DateTime::from_timestamp(NOW, 0).expect("a time");
    let _ = verify_link(&secret, token, now);

    let mut field = || lines.next().unwrap_or_default().to_owned();
    let (message_id, cart_id, target) = (field(), field(), field());
    let expires = field().trim().parse::<i64>().unwrap_or(NOW);
    let claims = LinkClaims { message_id: message_id.into(), cart_id: cart_id.into(), target, expires };
    let signed = sign_link(&secret, &claims);
    if let Some(before_expiry) = DateTime::from_timestamp(expires, 0) {
        assert_eq!(verify_link(&secret, &signed, before_expiry), Ok(claims.clone()));
    }
    let other = Secret::new(b"another-secret-0123456789".to_vec()).expect("a long secret");
    assert!(verify_link(&other, &signed, now).is_err(), "a token verified under another secret");
});
