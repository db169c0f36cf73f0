//! The address table and the URL checks of [`AddressPolicy`].

use std::net::IpAddr;

use reqwest::Url;

use super::*;

/// Each refused range at its edges, with its category.
const REFUSED: &[(&str, Category)] = &[
    ("0.0.0.0", Category::Unspecified),
    ("0.1.2.3", Category::ThisNetwork),
    ("0.255.255.255", Category::ThisNetwork),
    ("10.0.0.0", Category::Private),
    ("10.255.255.255", Category::Private),
    ("100.64.0.0", Category::SharedAddressSpace),
    ("100.127.255.255", Category::SharedAddressSpace),
    ("127.0.0.1", Category::Loopback),
    ("127.255.255.254", Category::Loopback),
    ("169.254.0.1", Category::LinkLocal),
    ("169.254.169.254", Category::CloudMetadata),
    ("169.254.255.255", Category::LinkLocal),
    ("172.16.0.0", Category::Private),
    ("172.31.255.255", Category::Private),
    ("192.0.0.8", Category::Reserved),
    ("192.0.2.1", Category::Documentation),
    ("192.168.0.1", Category::Private),
    ("192.168.255.255", Category::Private),
    ("198.18.0.0", Category::Benchmarking),
    ("198.19.255.255", Category::Benchmarking),
    ("198.51.100.7", Category::Documentation),
    ("203.0.113.200", Category::Documentation),
    ("224.0.0.1", Category::Multicast),
    ("239.255.255.250", Category::Multicast),
    ("240.0.0.1", Category::Reserved),
    ("255.255.255.255", Category::Broadcast),
    ("::", Category::Unspecified),
    ("::1", Category::Loopback),
    ("::7f00:1", Category::Reserved),
    ("100::1", Category::Reserved),
    ("2001:2::1", Category::Benchmarking),
    ("2001:db8::1", Category::Documentation),
    ("2001:db8:ffff:ffff::1", Category::Documentation),
    ("fc00::1", Category::UniqueLocal),
    ("fd12:3456::1", Category::UniqueLocal),
    ("fd00:ec2::254", Category::CloudMetadata),
    ("fe80::1", Category::LinkLocal),
    ("febf:ffff::1", Category::LinkLocal),
    ("fec0::1", Category::Private),
    ("ff02::1", Category::Multicast),
    // IPv4-mapped: judged as the IPv4 address.
    ("::ffff:127.0.0.1", Category::Loopback),
    ("::ffff:10.1.2.3", Category::Private),
    ("::ffff:169.254.169.254", Category::CloudMetadata),
    ("::ffff:0.0.0.0", Category::Unspecified),
    // NAT64: judged as the IPv4 address it carries.
    ("64:ff9b::a00:1", Category::Private),
    ("64:ff9b::7f00:1", Category::Loopback),
];

/// Public addresses, several just outside a refused range.
const PUBLIC: &[&str] = &[
    "1.1.1.1",
    "8.8.8.8",
    "9.255.255.255",
    "11.0.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "126.255.255.255",
    "128.0.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.0.3.0",
    "192.167.255.255",
    "192.169.0.0",
    "198.17.255.255",
    "198.20.0.0",
    "198.51.101.0",
    "203.0.114.0",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2001:db9::1",
    "2001:4860:4860::8888",
    "fbff:ffff::1",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
];

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn url(text: &str) -> Url {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn category_of(refused: Refused) -> Category {
    match refused {
        Refused::Address { category, .. } => category,
        other => panic!("not an address refusal: {other}"),
    }
}

#[test]
fn the_default_refuses_every_non_public_range() {
    let policy = AddressPolicy::default();
    for &(text, category) in REFUSED {
        let refused = policy.check_ip(ip(text)).expect_err(text);
        assert_eq!(category_of(refused), category, "{text}");
    }
}

#[test]
fn public_addresses_pass() {
    for text in PUBLIC {
        AddressPolicy::default()
            .check_ip(ip(text))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn allow_private_opens_all_but_the_metadata_service() {
    let policy = AddressPolicy {
        allow_private: true,
        ..AddressPolicy::default()
    };
    for &(text, category) in REFUSED {
        let result = policy.check_ip(ip(text));
        if category == Category::CloudMetadata {
            assert_eq!(category_of(result.expect_err(text)), category, "{text}");
        } else {
            result.unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn allowed_subnets_open_just_those_addresses() {
    let policy = AddressPolicy {
        allowed_subnets: vec![
            "10.1.0.0/16".parse().unwrap(),
            "169.254.169.254/32".parse().unwrap(),
            "fd00:1::/32".parse().unwrap(),
        ],
        ..AddressPolicy::default()
    };
    for allowed in [
        "10.1.0.1",
        "10.1.255.255",
        "169.254.169.254",
        "fd00:1::5",
        "::ffff:10.1.2.3",
    ] {
        policy
            .check_ip(ip(allowed))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for refused in [
        "10.0.255.255",
        "10.2.0.0",
        "169.254.169.253",
        "fd00:2::5",
        "127.0.0.1",
    ] {
        policy.check_ip(ip(refused)).expect_err(refused);
    }
}

#[test]
fn refusals_say_what_and_how_to_allow_it() {
    let err = AddressPolicy::default()
        .check_ip(ip("10.0.0.7"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "refusing to connect to 10.0.0.7: 10.0.0.7 is a private-network address; if the \
         destination is meant to be internal, set allow_private on it, or add a subnet holding \
         10.0.0.7 (such as 10.0.0.7/32) to its allowed_subnets"
    );
    let err = AddressPolicy::default()
        .check_url(&url("http://[fd00:ec2::254]/"))
        .unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("refusing to connect to [fd00:ec2::254]: fd00:ec2::254 is the"));
    assert!(
        message.contains("allow_private does not open it"),
        "{message}"
    );
    assert!(message.contains("fd00:ec2::254/128"), "{message}");
}

#[test]
fn only_http_and_https() {
    let policy = AddressPolicy::default();
    policy
        .check_url(&url("http://hooks.example.com/in"))
        .unwrap();
    policy
        .check_url(&url("https://hooks.example.com/in"))
        .unwrap();
    for text in [
        "ftp://hooks.example.com/x",
        "file:///etc/passwd",
        "gopher://h:70/",
        "ws://h/",
    ] {
        let err = policy.check_url(&url(text)).unwrap_err();
        assert!(matches!(err, Refused::Scheme { .. }), "{text}: {err}");
        assert!(
            err.to_string().contains("use an http:// or https:// URL"),
            "{err}"
        );
    }
}

#[test]
fn https_only_refuses_plain_http() {
    let policy = AddressPolicy {
        https_only: true,
        ..AddressPolicy::default()
    };
    policy
        .check_url(&url("https://hooks.example.com/in"))
        .unwrap();
    let err = policy
        .check_url(&url("http://hooks.example.com/in"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "refusing to deliver to http://hooks.example.com: this destination is https_only; use \
         an https:// URL, or turn https_only off for it"
    );
}

#[test]
fn credentials_in_the_url_are_refused_and_never_shown() {
    for text in [
        "https://user:hunter2@hooks.example.com/in",
        "https://user@hooks.example.com/in",
        "https://:hunter2@hooks.example.com/in",
    ] {
        let err = AddressPolicy::default().check_url(&url(text)).unwrap_err();
        assert!(matches!(err, Refused::UserInfo { .. }), "{text}: {err}");
        let message = err.to_string();
        assert!(message.starts_with("refusing to deliver to https://hooks.example.com:"));
        assert!(
            !message.contains("hunter2") && !message.contains("user@"),
            "{message}"
        );
    }
}

#[test]
fn paths_and_queries_stay_out_of_messages() {
    let policy = AddressPolicy {
        https_only: true,
        ..AddressPolicy::default()
    };
    let err = policy.check_url(&url("http://hooks.example.com:8080/T0/B1/s3cr3t?token=x"));
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains("http://hooks.example.com:8080:"),
        "{message}"
    );
    assert!(
        !message.contains("s3cr3t") && !message.contains("token"),
        "{message}"
    );
}

#[test]
fn ip_literals_are_checked_at_once_in_every_spelling() {
    let policy = AddressPolicy::default();
    for (text, category) in [
        ("http://127.0.0.1:8080/", Category::Loopback),
        ("http://[::1]/", Category::Loopback),
        ("http://[::ffff:127.0.0.1]/", Category::Loopback),
        ("http://[::ffff:a9fe:a9fe]/", Category::CloudMetadata),
        ("http://0x7f.1/", Category::Loopback),
        ("http://2130706433/", Category::Loopback),
        ("http://0177.0.0.1/", Category::Loopback),
        ("http://127.1/", Category::Loopback),
        ("http://0/", Category::Unspecified),
        ("https://10.0.0.1/", Category::Private),
        ("https://[fe80::1]/", Category::LinkLocal),
    ] {
        let refused = policy.check_url(&url(text)).expect_err(text);
        assert_eq!(category_of(refused), category, "{text}");
    }
    policy.check_url(&url("https://8.8.8.8/")).unwrap();
    policy
        .check_url(&url("https://[2606:4700:4700::1111]/"))
        .unwrap();
    // A name is left to the resolver, even one that spells an internal host.
    policy.check_url(&url("http://localhost/")).unwrap();
    let open = AddressPolicy {
        allow_private: true,
        ..AddressPolicy::default()
    };
    open.check_url(&url("http://127.0.0.1:8080/")).unwrap();
}

#[test]
fn a_refusal_is_found_in_an_error_chain() {
    #[derive(Debug, thiserror::Error)]
    #[error("request failed")]
    struct Outer(#[source] Refused);

    let refused = AddressPolicy::default()
        .check_ip(ip("127.0.0.1"))
        .unwrap_err();
    let outer = Outer(refused.clone());
    assert_eq!(Refused::find_in(&outer), Some(&refused));
    assert_eq!(Refused::find_in(&std::fmt::Error), None);
}
