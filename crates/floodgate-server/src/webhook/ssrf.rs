//! Where a webhook delivery may connect: the guard against server-side request forgery.
//!
//! A webhook URL is chosen by whoever enqueues the job, so without a guard anyone who may
//! enqueue could make the server call its own admin ports, the cloud metadata service or any
//! host on the internal network. An [`AddressPolicy`] refuses those addresses unless the
//! destination allows them (`allow_private`, or a subnet in `allowed_subnets`).
//!
//! The check happens twice, and both are needed:
//!
//! 1. [`AddressPolicy::check_url`] before sending: the scheme, no credentials in the URL, and
//!    an IP-literal host (`http://127.0.0.1/`, `http://[::1]/`) right away. **Call it first**:
//!    an IP literal never reaches a DNS resolver, so nothing else checks it.
//! 2. The [`GuardedResolver`] that [`client`] installs: it resolves host names itself and hands
//!    the connector only the addresses the policy allows, so the address connected to is the
//!    address checked, and a DNS answer that changes between a check and the connect (DNS
//!    rebinding) cannot slip through.
//!
//! ```
//! use floodgate_server::webhook::ssrf::{AddressPolicy, Category, Refused};
//!
//! let policy = AddressPolicy::default();
//! policy.check_url(&"https://hooks.example.com/in".parse()?)?;
//!
//! let err = policy.check_url(&"http://169.254.169.254/latest/meta-data".parse()?).unwrap_err();
//! assert!(matches!(err, Refused::Address { category: Category::CloudMetadata, .. }));
//!
//! let internal = AddressPolicy { allowed_subnets: vec!["10.1.0.0/16".parse()?], ..policy };
//! internal.check_ip("10.1.2.3".parse()?)?;
//! assert!(internal.check_ip("10.2.0.1".parse()?).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ranges;
mod resolve;
#[cfg(test)]
mod tests;

use std::error::Error as StdError;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use reqwest::Url;

pub use ranges::Category;
pub use resolve::{GuardedResolver, ResolveError, client};

/// Which addresses webhook deliveries may connect to.
///
/// The default refuses every address that is not publicly routable (see [`Category`]) and
/// allows plain `http`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Allow every non-public address except the cloud metadata service (for a destination
    /// that is meant to be inside the network, such as a service on this host).
    pub allow_private: bool,
    /// Addresses allowed whatever their kind: the narrow way to reach one internal service.
    /// A subnet that holds a metadata address is the only way to allow that address.
    pub allowed_subnets: Vec<IpNet>,
    /// Refuse `http://` URLs.
    pub https_only: bool,
}

/// A delivery the [`AddressPolicy`] does not allow.
///
/// URLs are shown as scheme, host and port only: paths and queries of webhook URLs often carry
/// tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// A scheme other than `http` and `https`.
    #[error(
        "refusing to deliver to {url}: the scheme `{scheme}` is not allowed; use an http:// \
         or https:// URL"
    )]
    Scheme {
        /// The URL, without path, query and credentials.
        url: String,
        /// The scheme given.
        scheme: String,
    },
    /// `http://` while the policy is `https_only`.
    #[error(
        "refusing to deliver to {url}: this destination is https_only; use an https:// URL, \
         or turn https_only off for it"
    )]
    NotHttps {
        /// The URL, without path, query and credentials.
        url: String,
    },
    /// A URL without a host.
    #[error(
        "refusing to deliver to {url}: the URL has no host; give a full URL such as \
         https://hooks.example.com/in"
    )]
    NoHost {
        /// The URL, without path, query and credentials.
        url: String,
    },
    /// `user:password@` in the URL.
    #[error(
        "refusing to deliver to {url}: the URL carries credentials (user:password@); remove \
         them and send credentials in a header instead"
    )]
    UserInfo {
        /// The URL, without path, query and credentials.
        url: String,
    },
    /// An address the policy does not allow.
    #[error(
        "refusing to connect to {}: {addr} is {category}; {}",
        target(host, addr),
        remedy(*category, addr)
    )]
    Address {
        /// The host as written in the URL: a name, or the IP literal.
        host: String,
        /// The address refused.
        addr: IpAddr,
        /// What kind of address it is.
        category: Category,
    },
}

impl Refused {
    /// The refusal somewhere in `err`'s chain of sources, such as in the `reqwest::Error` of a
    /// request that the [`GuardedResolver`] stopped. Delivery treats it as final: retrying
    /// will not change the policy.
    pub fn find_in<'e>(err: &'e (dyn StdError + 'static)) -> Option<&'e Refused> {
        let mut current = Some(err);
        while let Some(e) = current {
            if let Some(refused) = e.downcast_ref::<Refused>() {
                return Some(refused);
            }
            current = e.source();
        }
        None
    }
}

fn target(host: &str, addr: &IpAddr) -> String {
    if addr.to_string() == host.trim_start_matches('[').trim_end_matches(']') {
        host.to_owned()
    } else {
        format!("{host} ({addr})")
    }
}

fn remedy(category: Category, addr: &IpAddr) -> String {
    let subnet = IpNet::from(*addr);
    if category == Category::CloudMetadata {
        format!(
            "allow_private does not open it; if the destination really is this service, add \
             {subnet} to the destination's allowed_subnets"
        )
    } else {
        format!(
            "if the destination is meant to be internal, set allow_private on it, or add a \
             subnet holding {addr} (such as {subnet}) to its allowed_subnets"
        )
    }
}

/// How a URL is shown in errors: scheme, host and port, never credentials, path or query.
fn shown(url: &Url) -> impl fmt::Display {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{}{port}", url.scheme(), url.host_str().unwrap_or(""))
}

impl AddressPolicy {
    /// Checks what can be checked before connecting: an `http` or `https` scheme (`https` only
    /// when [`https_only`](Self::https_only)), a host, no credentials in the URL, and an IP
    /// literal host against [`check_ip`](Self::check_ip). Host names are checked when they
    /// are resolved, by the [`GuardedResolver`].
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        match url.scheme() {
            "https" => {}
            "http" if !self.https_only => {}
            "http" => {
                return Err(Refused::NotHttps {
                    url: shown(url).to_string(),
                });
            }
            other => {
                return Err(Refused::Scheme {
                    url: shown(url).to_string(),
                    scheme: other.to_owned(),
                });
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused::UserInfo {
                url: shown(url).to_string(),
            });
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(Refused::NoHost {
                url: shown(url).to_string(),
            });
        };
        // IPv6 literals come bracketed; names never parse as addresses (the URL parser has
        // already turned forms such as `0x7f.1` or `2130706433` into dotted IPv4).
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match literal.parse::<IpAddr>() {
            Ok(addr) => self.check_host_ip(host, addr),
            Err(_) => Ok(()),
        }
    }

    /// Refuses an address that is not publicly routable ([`Category`]) unless it is in
    /// [`allowed_subnets`](Self::allowed_subnets) or [`allow_private`](Self::allow_private)
    /// is on (which does not open [`Category::CloudMetadata`]). An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) is judged as the IPv4 address it maps.
    pub fn check_ip(&self, addr: IpAddr) -> Result<(), Refused> {
        self.check_host_ip(&addr.to_string(), addr)
    }

    /// [`check_ip`](Self::check_ip), naming `host` in the refusal.
    pub(crate) fn check_host_ip(&self, host: &str, addr: IpAddr) -> Result<(), Refused> {
        let canonical = addr.to_canonical();
        if self
            .allowed_subnets
            .iter()
            .any(|net| net.contains(&addr) || net.contains(&canonical))
        {
            return Ok(());
        }
        match ranges::classify(addr) {
            None => Ok(()),
            Some(category) if self.allow_private && category != Category::CloudMetadata => Ok(()),
            Some(category) => Err(Refused::Address {
                host: host.to_owned(),
                addr,
                category,
            }),
        }
    }
}
