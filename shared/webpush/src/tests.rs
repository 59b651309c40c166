use super::*;

#[test]
fn given_a_data_folder_when_the_key_is_loaded_twice_then_it_is_made_once_and_reused() {
    // GIVEN an empty data folder
    let dir = tempfile::tempdir().unwrap();
    // WHEN the key is loaded, then loaded again
    let first = VapidKey::load_or_create(dir.path()).unwrap();
    let second = VapidKey::load_or_create(dir.path()).unwrap();
    // THEN the same key both times: a 65-byte uncompressed point, private file owner-only
    assert_eq!(first.public_key(), second.public_key());
    let point = URL_SAFE_NO_PAD.decode(first.public_key()).unwrap();
    assert_eq!((point.len(), point[0]), (65, 0x04));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(!format!("{first:?}").contains(&first.private_key()), "Debug never shows the private key");
}

#[test]
fn given_bad_key_text_when_parsed_then_the_error_says_the_expected_form() {
    for bad in ["", "not base64!", "AAAA", &URL_SAFE_NO_PAD.encode([0u8; 32])] {
        let error = VapidKey::parse(bad).unwrap_err();
        assert!(error.to_string().contains("32 bytes, base64url"), "{bad}: {error}");
    }
    let key = VapidKey::generate();
    assert_eq!(VapidKey::parse(&format!(" {}=\n", key.private_key())).unwrap().public_key(), key.public_key());
}

#[test]
fn given_endpoints_when_their_origin_is_taken_then_default_ports_drop_and_others_stay() {
    assert_eq!(origin("https://fcm.googleapis.com/fcm/send/x").as_deref(), Some("https://fcm.googleapis.com"));
    assert_eq!(origin("https://Push.Example:443/x").as_deref(), Some("https://push.example"));
    assert_eq!(origin("http://127.0.0.1:8123/p?q").as_deref(), Some("http://127.0.0.1:8123"));
}

#[test]
fn given_endpoints_when_checked_then_https_always_and_http_only_to_loopback_when_allowed() {
    assert_eq!(check_endpoint("https://push.example/x", false), Ok(()));
    assert_eq!(check_endpoint("http://127.0.0.1:9/x", false), Err(RequestError::Endpoint));
    assert_eq!(check_endpoint("http://127.0.0.1:9/x", true), Ok(()));
    assert_eq!(check_endpoint("http://push.example/x", true), Err(RequestError::Endpoint));
    assert_eq!(check_endpoint("https://localhost@evil.example/x", true), Err(RequestError::Endpoint));
}

#[test]
fn given_a_subscription_when_a_request_is_built_then_it_is_encrypted_signed_and_bounded() {
    // GIVEN a subscription whose private key we hold
    let ua = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let p256dh = URL_SAFE_NO_PAD.encode(ua.public_key().to_sec1_bytes());
    let auth = [7u8; 16];
    let subscription = WebPushSubscription::from(serde_json::json!({
        "endpoint": "https://push.example/s/1",
        "keys": { "p256dh": p256dh, "auth": URL_SAFE_NO_PAD.encode(auth) }
    }));
    let key = VapidKey::generate();
    let now = Utc::now();
    // WHEN a request is built
    let request = build_request(&subscription, b"hello", &key, DEFAULT_CONTACT, "t", false, now).unwrap();
    // THEN the body decrypts back (RFC 8291) and the headers are set
    let plain = web_push_native::decrypt(request.body.clone(), &ua, &web_push_native::Auth::clone_from_slice(&auth));
    assert_eq!(plain.unwrap(), b"hello");
    let header = |name: &str| request.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
    assert_eq!(header("Content-Encoding"), Some("aes128gcm"));
    assert_eq!(header("TTL"), Some("86400"));
    assert!(header("Authorization").unwrap().ends_with(&format!(", k={}", key.public_key())));
    assert!(!format!("{request:?}").contains("push.example"), "Debug never shows the endpoint");
    // AND a payload over one record, or a bad key, is refused by name
    let big = vec![b'x'; MAX_PLAINTEXT + 1];
    let too_large = build_request(&subscription, &big, &key, DEFAULT_CONTACT, "t", false, now).unwrap_err();
    assert_eq!(too_large, RequestError::TooLarge(MAX_PLAINTEXT + 1));
    let mut bad = subscription.expose().clone();
    bad["keys"]["auth"] = "AAAA".into();
    let error = build_request(&bad.into(), b"x", &key, DEFAULT_CONTACT, "t", false, now).unwrap_err();
    assert_eq!(error, RequestError::Auth);
}

#[test]
fn given_retry_after_values_when_read_then_seconds_and_http_dates_both_count() {
    let now: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
    assert_eq!(retry_after(Some("30"), now), Some(Duration::from_secs(30)));
    assert_eq!(retry_after(Some("Wed, 25 Nov 2026 10:01:00 GMT"), now), Some(Duration::from_secs(60)));
    assert_eq!(retry_after(Some("soon"), now), None);
    assert_eq!(retry_after(None, now), None);
}

#[test]
fn given_cart_ids_when_topics_are_made_then_they_fit_rfc_8030() {
    let topic = topic("cart-42");
    assert_eq!(topic.len(), 32);
    assert!(topic.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    assert_ne!(topic, super::topic("cart-43"));
}
