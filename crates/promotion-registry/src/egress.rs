//! Where the registry client may connect.
//!
//! A source registry is chosen by whoever asks for a copy, and it answers with redirects and
//! token realms of its choosing: without a check, a name that resolves to `169.254.169.254` or
//! `127.0.0.1:9001` would turn the pipeline into a client of the instance metadata service, the
//! Lambda runtime API or the VPC. So every connection the client opens goes through
//! [`GuardedResolver`], which refuses a name resolving to an internal address (loopback,
//! private, link-local, shared, unspecified, multicast, broadcast), and every request URL is
//! checked before it is sent ([`Guard::check_url`]), since reqwest does not resolve IP
//! literals. Hosts named in the configuration as stand-ins or as the deployment's own registry
//! ([`Guard::new`]) are exempt: they are the operator's choice, not a registry's.
//!
//! A name that does not exist (NXDOMAIN) is not an outage: it is reported as such and not
//! retried; a resolver that cannot answer (`EAI_AGAIN`) is transient.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Why a connection was not opened.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The host is, or resolves to, an internal address and is not allowed to.
    #[error(
        "refused to connect to {host}: {addr} is an internal address (loopback, private, \
         link-local or similar); allow the host explicitly if it is meant"
    )]
    Internal {
        /// The host as named.
        host: String,
        /// The internal address it is or resolves to.
        addr: IpAddr,
    },
    /// The name does not exist.
    #[error("the host {host} does not exist (DNS: {detail})")]
    NoSuchHost {
        /// The host as named.
        host: String,
        /// The resolver's words.
        detail: String,
    },
    /// The resolver could not answer (try again later).
    #[error("cannot resolve {host} (DNS: {detail})")]
    Unavailable {
        /// The host as named.
        host: String,
        /// The resolver's words.
        detail: String,
    },
}

/// The hosts that may be internal, and the check.
#[derive(Debug, Default)]
pub struct Guard {
    /// Lower-case hosts (no brackets) with their port, if the configuration named one.
    allowed: Vec<(String, Option<u16>)>,
}

impl Guard {
    /// A guard exempting `hosts` (`host` or `host:port`).
    pub fn new<'a>(hosts: impl IntoIterator<Item = &'a String>) -> Self {
        Guard {
            allowed: hosts.into_iter().map(|h| split_host(h)).collect(),
        }
    }

    /// Whether the name `host` may resolve to internal addresses. A resolver sees no port, so a
    /// name allowed on one port is allowed on every port.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.allowed.iter().any(|(h, _)| *h == host)
    }

    /// Refuse a URL whose host is written as an internal IP literal, unless that host and port
    /// (or the host, named without a port) is allowed. Names are checked when they are resolved
    /// ([`GuardedResolver`]).
    pub fn check_url(&self, url: &url::Url) -> Result<(), EgressError> {
        let addr = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            // Names (`localhost` included) are checked by what they resolve to.
            _ => return Ok(()),
        };
        if !is_internal_ip(addr) {
            return Ok(());
        }
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        let port = url.port_or_known_default();
        let allowed = self
            .allowed
            .iter()
            .any(|(h, p)| *h == host && (p.is_none() || *p == port));
        if allowed {
            return Ok(());
        }
        Err(EgressError::Internal {
            host: match url.port() {
                Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
                None => url.host_str().unwrap_or_default().to_owned(),
            },
            addr,
        })
    }
}

/// `host[:port]` or `[v6]:port` as a lower-case host without brackets, and the port.
fn split_host(h: &str) -> (String, Option<u16>) {
    let h = h.trim().to_ascii_lowercase();
    if let Some(rest) = h.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return (host.to_owned(), port);
    }
    match h.split_once(':') {
        // One colon: host:port. More: a bare IPv6 address.
        Some((host, port)) if !port.contains(':') => (host.to_owned(), port.parse().ok()),
        _ => (h, None),
    }
}

/// The system resolver, refusing internal answers for hosts the [`Guard`] does not allow. An
/// answer with any internal address is refused whole: a name must not be able to pick the
/// public address for the check and the private one for the connection.
pub struct GuardedResolver(pub Arc<Guard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(resolve_guarded(self.0.clone(), name.as_str().to_owned()))
    }
}

async fn resolve_guarded(
    guard: Arc<Guard>,
    host: String,
) -> Result<Addrs, Box<dyn std::error::Error + Send + Sync>> {
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
        Ok(a) => a.collect(),
        Err(e) => return Err(Box::new(dns_error(&host, &e))),
    };
    if addrs.is_empty() {
        return Err(Box::new(EgressError::NoSuchHost {
            host,
            detail: "no addresses".into(),
        }));
    }
    if !guard.allows(&host)
        && let Some(bad) = addrs.iter().find(|a| is_internal_ip(a.ip()))
    {
        return Err(Box::new(EgressError::Internal {
            host,
            addr: bad.ip(),
        }));
    }
    Ok(Box::new(addrs.into_iter()))
}

/// getaddrinfo's failure: `EAI_AGAIN` ("Temporary failure in name resolution") may pass;
/// anything else (`EAI_NONAME`: "Name or service not known", `EAI_NODATA`) is a name that does
/// not exist. std reports only the resolver's message, so it is read.
fn dns_error(host: &str, e: &std::io::Error) -> EgressError {
    let detail = e.to_string();
    let lower = detail.to_ascii_lowercase();
    if lower.contains("temporary failure") || lower.contains("try again") {
        EgressError::Unavailable {
            host: host.to_owned(),
            detail,
        }
    } else {
        EgressError::NoSuchHost {
            host: host.to_owned(),
            detail,
        }
    }
}

/// Loopback, private, link-local (the metadata service at 169.254.169.254), shared
/// (100.64/10), unspecified, multicast or broadcast; for IPv6 also unique-local (fc00::/7),
/// link-local (fe80::/10) and IPv4-mapped internal addresses.
pub fn is_internal_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(internal_v4)
        }
    }
}

/// The IPv4 half of [`is_internal_ip`].
pub fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || (a == 100 && (64..128).contains(&b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal_ip(a.parse().unwrap()), "{a}");
        }
        for a in ["1.2.3.4", "100.128.0.1", "172.32.0.1", "2a00:1450::1"] {
            assert!(!is_internal_ip(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn literals_are_refused_unless_their_host_is_allowed() {
        let g = Guard::new(&[
            "127.0.0.1:5000".to_owned(),
            "[::1]:5000".to_owned(),
            "10.0.0.7".to_owned(),
        ]);
        let u = |s: &str| url::Url::parse(s).unwrap();
        // A literal is allowed on the port named (any port when none was).
        assert!(g.check_url(&u("http://127.0.0.1:5000/v2/")).is_ok());
        assert!(g.check_url(&u("http://[::1]:5000/v2/")).is_ok());
        assert!(g.check_url(&u("https://10.0.0.7:8443/v2/")).is_ok());
        let e = g.check_url(&u("http://127.0.0.1:9001/v2/")).unwrap_err();
        assert!(e.to_string().contains("127.0.0.1:9001"), "{e}");
        // A resolver sees names only.
        assert!(g.allows("127.0.0.1") && g.allows("::1") && !g.allows("10.0.0.8"));
        assert!(g.check_url(&u("https://registry.example/v2/")).is_ok());
        // Names are the resolver's to judge.
        assert!(g.check_url(&u("https://localhost/v2/")).is_ok());
        for bad in [
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.1/v2/",
            "https://[fe80::1]/v2/",
        ] {
            let e = g.check_url(&u(bad)).unwrap_err();
            assert!(e.to_string().contains("internal address"), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn the_resolver_refuses_internal_answers_and_reports_missing_names() {
        let strict = GuardedResolver(Arc::new(Guard::default()));
        let err = strict
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .unwrap();
        let e = err.downcast_ref::<EgressError>().unwrap();
        assert!(matches!(e, EgressError::Internal { .. }), "{e}");

        let allowed = GuardedResolver(Arc::new(Guard::new(&["localhost:5000".to_owned()])));
        let addrs: Vec<_> = allowed
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");

        // RFC 6761: `.invalid` never resolves.
        let err = strict
            .resolve("no-such-registry.invalid".parse().unwrap())
            .await
            .err()
            .unwrap();
        let e = err.downcast_ref::<EgressError>().unwrap();
        assert!(
            matches!(e, EgressError::NoSuchHost { .. }),
            "{e} (a sandbox without any resolver answers EAI_AGAIN)"
        );
    }
}
