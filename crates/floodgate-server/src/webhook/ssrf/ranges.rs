//! The address ranges that are not publicly routable, each with its [`Category`].
//!
//! ```
//! use floodgate_server::webhook::ssrf::{AddressPolicy, Category, Refused};
//!
//! let refused = AddressPolicy::default().check_ip("100.64.0.1".parse()?).unwrap_err();
//! let Refused::Address { category, .. } = refused else { unreachable!() };
//! assert_eq!(category, Category::SharedAddressSpace);
//! assert_eq!(category.to_string(), "a shared (carrier-grade NAT) address");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Why an address is not a public one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Category {
    /// `0.0.0.0` or `::` (on Linux, connecting there reaches this host).
    Unspecified,
    /// `0.0.0.0/8`, "this network".
    ThisNetwork,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, and the deprecated IPv6 site-local
    /// `fec0::/10`.
    Private,
    /// `100.64.0.0/10`, shared address space (carrier-grade NAT).
    SharedAddressSpace,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// `fc00::/7`.
    UniqueLocal,
    /// `169.254.169.254` and `fd00:ec2::254`: cloud instance metadata, which hands out
    /// credentials. `allow_private` does not open it.
    CloudMetadata,
    /// `255.255.255.255`.
    Broadcast,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// Other special-purpose ranges: `192.0.0.0/24`, `240.0.0.0/4`, the deprecated
    /// IPv4-compatible `::/96`, the discard prefix `100::/64`.
    Reserved,
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "the unspecified address",
            Self::ThisNetwork => "a \"this network\" address (0.0.0.0/8)",
            Self::Loopback => "a loopback address",
            Self::Private => "a private-network address",
            Self::SharedAddressSpace => "a shared (carrier-grade NAT) address",
            Self::LinkLocal => "a link-local address",
            Self::UniqueLocal => "a unique-local address",
            Self::CloudMetadata => "the cloud metadata service's address",
            Self::Broadcast => "the broadcast address",
            Self::Multicast => "a multicast address",
            Self::Documentation => "a documentation address",
            Self::Benchmarking => "a benchmarking address",
            Self::Reserved => "a reserved address",
        })
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(segments: [u16; 8], len: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// IPv4 ranges, the narrower before the wider: the first match names the category.
const V4: &[(Ipv4Net, Category)] = &[
    (v4(0, 0, 0, 0, 32), Category::Unspecified),
    (v4(0, 0, 0, 0, 8), Category::ThisNetwork),
    (v4(10, 0, 0, 0, 8), Category::Private),
    (v4(100, 64, 0, 0, 10), Category::SharedAddressSpace),
    (v4(127, 0, 0, 0, 8), Category::Loopback),
    (v4(169, 254, 169, 254, 32), Category::CloudMetadata),
    (v4(169, 254, 0, 0, 16), Category::LinkLocal),
    (v4(172, 16, 0, 0, 12), Category::Private),
    (v4(192, 0, 0, 0, 24), Category::Reserved),
    (v4(192, 0, 2, 0, 24), Category::Documentation),
    (v4(192, 168, 0, 0, 16), Category::Private),
    (v4(198, 18, 0, 0, 15), Category::Benchmarking),
    (v4(198, 51, 100, 0, 24), Category::Documentation),
    (v4(203, 0, 113, 0, 24), Category::Documentation),
    (v4(224, 0, 0, 0, 4), Category::Multicast),
    (v4(255, 255, 255, 255, 32), Category::Broadcast),
    (v4(240, 0, 0, 0, 4), Category::Reserved),
];

/// IPv6 ranges, the narrower before the wider. `::ffff:0:0/96` (IPv4-mapped) and
/// `64:ff9b::/96` (NAT64) are not here: they are judged by the IPv4 address they carry.
const V6: &[(Ipv6Net, Category)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), Category::Unspecified),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), Category::Loopback),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 96), Category::Reserved),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), Category::Reserved),
    (
        v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48),
        Category::Benchmarking,
    ),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        Category::Documentation,
    ),
    (
        v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128),
        Category::CloudMetadata,
    ),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), Category::UniqueLocal),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), Category::LinkLocal),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), Category::Private),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), Category::Multicast),
];

/// The NAT64 well-known prefix (RFC 6052): the last 32 bits are an IPv4 address.
const NAT64: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);

/// The category of a non-public address; `None` for a public one.
pub(super) fn classify(addr: IpAddr) -> Option<Category> {
    match addr {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(mapped) = v6.to_ipv4_mapped() {
                return classify_v4(mapped);
            }
            if NAT64.contains(&v6) {
                let [.., a, b, c, d] = v6.octets();
                return classify_v4(Ipv4Addr::new(a, b, c, d));
            }
            V6.iter()
                .find(|(net, _)| net.contains(&v6))
                .map(|&(_, category)| category)
        }
    }
}

fn classify_v4(addr: Ipv4Addr) -> Option<Category> {
    V4.iter()
        .find(|(net, _)| net.contains(&addr))
        .map(|&(_, category)| category)
}
