//! The DNS resolver that only returns allowed addresses, and the HTTP client that uses it.
//!
//! ```
//! use std::time::Duration;
//! use floodgate_server::webhook::ssrf::{AddressPolicy, client};
//!
//! let policy = AddressPolicy { https_only: true, ..AddressPolicy::default() };
//! let url: reqwest::Url = "https://hooks.example.com/in".parse()?;
//! policy.check_url(&url)?; // always first: IP literals never reach the resolver
//! let http = client(policy, Duration::from_secs(5), Duration::from_secs(30))?;
//! let request = http.post(url).body("{}").build()?;
//! assert_eq!(request.method(), "POST");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::{AddressPolicy, Refused};

/// A [`Resolve`] for reqwest that looks names up with the system resolver
/// ([`tokio::net::lookup_host`]) and keeps only the addresses its [`AddressPolicy`] allows.
///
/// When none is left it fails with the [`Refused`] of the first address it dropped (find it in
/// the request's error with [`Refused::find_in`]). The connector then connects only to what
/// it returned, so the address checked is the address used.
///
/// Hosts that are IP literals are never resolved, so this never sees them: check URLs with
/// [`AddressPolicy::check_url`] before sending.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

/// A host name that could not be turned into addresses at all.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The system resolver failed.
    #[error(
        "could not resolve {host}: {source}; check the host name in the destination's URL \
         and this server's DNS settings"
    )]
    Lookup {
        /// The name looked up.
        host: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// The lookup succeeded with no address.
    #[error("{host} resolved to no address; check the host name in the destination's URL")]
    NoAddress {
        /// The name looked up.
        host: String,
    },
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        Self { policy }
    }

    /// The allowed addresses of `host`, with port 0 (the URL's port replaces it).
    pub async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, BoxError> {
        let found =
            tokio::net::lookup_host((host, 0))
                .await
                .map_err(|source| ResolveError::Lookup {
                    host: host.to_owned(),
                    source,
                })?;
        let mut allowed = Vec::new();
        let mut refused: Option<Refused> = None;
        for addr in found {
            match self.policy.check_host_ip(host, addr.ip()) {
                Ok(()) => allowed.push(addr),
                Err(refusal) => {
                    refused.get_or_insert(refusal);
                }
            }
        }
        match refused {
            Some(refusal) if allowed.is_empty() => Err(Box::new(refusal)),
            None if allowed.is_empty() => Err(Box::new(ResolveError::NoAddress {
                host: host.to_owned(),
            })),
            _ => Ok(allowed),
        }
    }
}

/// The error type reqwest's resolvers return: a [`Refused`] or a [`ResolveError`].
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let allowed = resolver.lookup(name.as_str()).await?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// An HTTP client for webhook deliveries under `policy`: host names go through a
/// [`GuardedResolver`]; redirects are not followed (a 3xx is the receiver's answer, not an
/// invitation to go elsewhere); proxies from the environment are ignored (a proxy would
/// resolve the name itself, past the guard); `http://` is refused by the client too when the
/// policy is `https_only`; `connect_timeout` bounds each connect and `timeout` the whole
/// request.
///
/// Call [`AddressPolicy::check_url`] before each request: IP-literal hosts skip the resolver.
///
/// Note: this crate turns on none of reqwest's TLS features yet, so `https://` requests fail
/// ("scheme is not http") until the delivery work picks one.
pub fn client(
    policy: AddressPolicy,
    connect_timeout: Duration,
    timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    let https_only = policy.https_only;
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver::new(Arc::new(policy))))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(https_only)
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .build()
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use axum::Router;
    use axum::http::{StatusCode, header};
    use axum::routing::get;

    use super::*;
    use crate::webhook::ssrf::Category;

    const SECOND: Duration = Duration::from_secs(1);

    /// A receiver on 127.0.0.1: `/` answers "delivered", `/moved` redirects to `/`.
    async fn receiver() -> (u16, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new()
            .route(
                "/",
                get(|| async { "delivered" }).post(|| async { "delivered" }),
            )
            .route(
                "/moved",
                get(|| async { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, "/")]) }),
            );
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (port, server)
    }

    fn private() -> AddressPolicy {
        AddressPolicy {
            allow_private: true,
            ..AddressPolicy::default()
        }
    }

    #[tokio::test]
    async fn localhost_is_refused_by_default_and_reached_with_allow_private() {
        let (port, server) = receiver().await;
        let url = format!("http://localhost:{port}/");

        let http = client(AddressPolicy::default(), SECOND, 5 * SECOND).unwrap();
        let err = http.post(&url).body("{}").send().await.unwrap_err();
        let refused = Refused::find_in(&err).unwrap_or_else(|| panic!("no refusal in {err:?}"));
        let Refused::Address {
            host,
            addr,
            category,
        } = refused
        else {
            panic!("{refused}")
        };
        assert_eq!(host, "localhost");
        assert!(addr.is_loopback(), "{addr}");
        assert_eq!(*category, Category::Loopback);
        let message = refused.to_string();
        assert!(
            message.starts_with("refusing to connect to localhost ("),
            "{message}"
        );
        assert!(message.contains("allow_private") && message.contains("allowed_subnets"));

        let http = client(private(), SECOND, 5 * SECOND).unwrap();
        let response = http.post(&url).body("{}").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "delivered");
        server.abort();
    }

    #[tokio::test]
    async fn an_allowed_subnet_reaches_localhost_too() {
        let (port, server) = receiver().await;
        let policy = AddressPolicy {
            allowed_subnets: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            ..AddressPolicy::default()
        };
        let http = client(policy, SECOND, 5 * SECOND).unwrap();
        let response = http
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        server.abort();
    }

    #[tokio::test]
    async fn redirects_are_returned_not_followed() {
        let (port, server) = receiver().await;
        let http = client(private(), SECOND, 5 * SECOND).unwrap();
        let response = http
            .get(format!("http://localhost:{port}/moved"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
        server.abort();
    }

    #[tokio::test]
    async fn ip_literals_skip_the_resolver_so_check_url_comes_first() {
        let (port, server) = receiver().await;
        let url: reqwest::Url = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let err = AddressPolicy::default().check_url(&url).unwrap_err();
        assert!(
            matches!(
                err,
                Refused::Address {
                    category: Category::Loopback,
                    ..
                }
            ),
            "{err}"
        );
        // What the check is for: the client alone connects to a literal without asking.
        let http = client(AddressPolicy::default(), SECOND, 5 * SECOND).unwrap();
        assert_eq!(http.get(url).send().await.unwrap().status(), 200);
        server.abort();
    }

    #[test]
    fn lookup_failures_name_the_host() {
        // Built by hand: a real failing lookup would ask this machine's DNS server.
        let source = io::Error::other("Name or service not known");
        let err = ResolveError::Lookup {
            host: "hooks.example.com".into(),
            source,
        };
        assert_eq!(
            err.to_string(),
            "could not resolve hooks.example.com: Name or service not known; check the host \
             name in the destination's URL and this server's DNS settings"
        );
    }

    #[tokio::test]
    async fn the_resolver_keeps_only_allowed_addresses() {
        let only_v4 = AddressPolicy {
            allowed_subnets: vec!["127.0.0.1/32".parse().unwrap()],
            ..AddressPolicy::default()
        };
        let resolver = GuardedResolver::new(Arc::new(only_v4));
        let addrs = resolver.lookup("localhost").await.unwrap();
        let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
        assert_eq!(ips, [IpAddr::from([127, 0, 0, 1])]);
    }
}
