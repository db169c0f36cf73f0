//! The Standard Webhooks test vector, rotation, tampering, secrets and headers.

use super::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TIMESTAMP: i64 = 1614265330;
const BODY: &[u8] = br#"{"test": 2432232314}"#;
const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn secret() -> Secret {
    SECRET.parse().unwrap()
}

#[test]
fn the_standard_webhooks_test_vector() {
    assert_eq!(sign(&[secret()], ID, TIMESTAMP, BODY), EXPECTED);
    assert!(verify(&secret(), ID, TIMESTAMP, BODY, EXPECTED));
}

#[test]
fn the_prefix_is_optional_and_padding_too() {
    let bare = Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert_eq!(bare, secret());
    assert_eq!(bare.to_whsec(), SECRET);
    // 2 key bytes: "AAE=" padded, "AAE" not; both read the same.
    assert_eq!(
        Secret::parse("whsec_AAE").unwrap(),
        Secret::parse("AAE=").unwrap()
    );
    assert_eq!(Secret::parse(&format!("  {SECRET}\n")).unwrap(), secret());
}

#[test]
fn bad_secrets_are_refused_with_a_way_out() {
    for empty in ["", "whsec_", "  "] {
        let err = Secret::parse(empty).unwrap_err();
        assert!(matches!(err, SecretError::Empty), "{empty:?}: {err}");
    }
    let err = Secret::parse("whsec_not base64!").unwrap_err();
    assert!(matches!(err, SecretError::Base64(_)));
    assert!(err.to_string().contains("write it as `whsec_`"), "{err}");
    // Another provider's prefix is not base64 either.
    assert!(Secret::parse("whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    assert!(matches!(
        Secret::from_bytes(Vec::new()),
        Err(SecretError::Empty)
    ));
}

#[test]
fn debug_never_shows_the_key() {
    let shown = format!("{:?}", secret());
    assert_eq!(shown, "Secret(24 bytes, redacted)");
}

#[test]
fn rotation_signs_with_every_secret_and_each_verifies() {
    let new = Secret::from_bytes(*b"a brand new key of 32 bytes!!!!!").unwrap();
    let header = sign(&[secret(), new.clone()], ID, TIMESTAMP, BODY);
    let entries: Vec<&str> = header.split(' ').collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0], EXPECTED);
    assert_ne!(entries[1], EXPECTED);
    assert!(verify(&secret(), ID, TIMESTAMP, BODY, &header));
    assert!(verify(&new, ID, TIMESTAMP, BODY, &header));
    let stranger = Secret::from_bytes(*b"someone else").unwrap();
    assert!(!verify(&stranger, ID, TIMESTAMP, BODY, &header));
}

#[test]
fn anything_tampered_fails() {
    assert!(!verify(
        &secret(),
        ID,
        TIMESTAMP,
        br#"{"test": 2432232315}"#,
        EXPECTED
    ));
    assert!(!verify(&secret(), ID, TIMESTAMP + 1, BODY, EXPECTED));
    assert!(!verify(&secret(), "msg_other", TIMESTAMP, BODY, EXPECTED));
    let flipped = EXPECTED.replace("g0hM", "g0hN");
    assert!(!verify(&secret(), ID, TIMESTAMP, BODY, &flipped));
    assert!(!verify(&secret(), ID, TIMESTAMP, BODY, ""));
    // The same signature under another version tag does not count.
    let v2 = EXPECTED.replace("v1,", "v2,");
    assert!(!verify(&secret(), ID, TIMESTAMP, BODY, &v2));
}

#[test]
fn unknown_and_broken_entries_are_skipped() {
    let header = format!("v1a,c29tZXRoaW5n v1,!!notbase64!! {EXPECTED}");
    assert!(verify(&secret(), ID, TIMESTAMP, BODY, &header));
    // A truncated signature is not a match.
    assert!(!verify(&secret(), ID, TIMESTAMP, BODY, "v1,g0hM9SsE"));
}

#[test]
fn the_three_headers() {
    let [id, timestamp, signature] = headers(&[secret()], ID, TIMESTAMP, BODY).unwrap();
    assert_eq!((id.0.as_str(), id.1.to_str().unwrap()), ("webhook-id", ID));
    assert_eq!(timestamp.0, "webhook-timestamp");
    assert_eq!(timestamp.1, "1614265330");
    assert_eq!(signature.0, "webhook-signature");
    assert_eq!(signature.1, EXPECTED);
}

#[test]
fn headers_refuse_no_secret_and_unsendable_ids() {
    let err = headers(&[], ID, TIMESTAMP, BODY).unwrap_err();
    assert!(matches!(err, HeaderError::NoSecrets), "{err}");
    for id in ["", "msg\n1"] {
        let err = headers(&[secret()], id, TIMESTAMP, BODY).unwrap_err();
        assert!(matches!(err, HeaderError::BadId { .. }), "{id:?}: {err}");
        assert!(err.to_string().contains("visible ASCII"), "{err}");
    }
}
