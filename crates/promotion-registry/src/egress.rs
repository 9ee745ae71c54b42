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
    /// The host may be internal, but not on this port.
    #[error(
        "refused to connect to {host}: the host is allowed to be internal on port {allowed} only; \
         allow {host} explicitly if it is meant"
    )]
    Port {
        /// The host and port as requested.
        host: String,
        /// The ports it is allowed on.
        allowed: String,
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

    /// Whether the name `host` may resolve to internal addresses. A resolver sees no port;
    /// [`Guard::check_url`] keeps a name to the ports it is allowed on.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.allowed.iter().any(|(h, _)| *h == host)
    }

    /// Refuse a URL whose host is written as an internal IP literal, unless that host is
    /// allowed on that port; and a URL naming an allowed host on a port it is not allowed on
    /// (a host named without a port is allowed on its scheme's default port). Names are also
    /// checked when they are resolved ([`GuardedResolver`]), where the port is not known: this
    /// check, run on every request and redirect, is what keeps an allowed name to its port.
    pub fn check_url(&self, url: &url::Url) -> Result<(), EgressError> {
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        let port = url.port_or_known_default();
        let default = default_port(url.scheme());
        let named: Vec<Option<u16>> = self
            .allowed
            .iter()
            .filter(|(h, _)| *h == host)
            .map(|(_, p)| p.or(default))
            .collect();
        if named.contains(&port) {
            return Ok(());
        }
        let requested = || match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let addr = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            // A name allowed on other ports only: refused here, since the resolver would let
            // it be internal on any port.
            _ if !named.is_empty() => {
                let allowed: Vec<String> = named.iter().flatten().map(u16::to_string).collect();
                return Err(EgressError::Port {
                    host: requested(),
                    allowed: allowed.join(", "),
                });
            }
            // Other names (`localhost` included) are checked by what they resolve to.
            _ => return Ok(()),
        };
        if !is_internal_ip(addr) {
            return Ok(());
        }
        Err(EgressError::Internal {
            host: requested(),
            addr,
        })
    }
}

/// The port a URL of `scheme` has when it names none.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
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

/// Where a registry may send the client: a redirect, or an upload `Location`, is followed only
/// to the registry's own origin (scheme, host and port), to a host the configuration names as
/// blob storage, or, for an ECR registry, to its region's layer bucket. A registry chosen by
/// whoever asks for a copy must not pick the hosts the pipeline talks to.
#[derive(Debug, Clone, Default)]
pub struct RedirectHosts {
    patterns: Vec<HostPattern>,
}

/// `host`, `*.domain` (any name below `domain`), each with an optional `:port` (else 443).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPattern {
    /// Lower-case host, or the domain after `*.`.
    host: String,
    /// Whether `host` is a domain whose subdomains match.
    below: bool,
    port: u16,
}

/// A malformed blob-storage host.
#[derive(Debug, thiserror::Error)]
#[error(
    "{entry:?} is not a blob-storage host (host, host:port or *.domain, no scheme or path): {why}"
)]
pub struct RedirectHostError {
    entry: String,
    why: &'static str,
}

impl RedirectHosts {
    /// The hosts named by the configuration (`host`, `host:port`, `*.domain[:port]`). A
    /// wildcard must name a domain of at least two labels (`*.example.com`, not `*.com`).
    pub fn new<'a>(
        entries: impl IntoIterator<Item = &'a String>,
    ) -> Result<Self, RedirectHostError> {
        let mut patterns = Vec::new();
        for entry in entries {
            let bad = |why| RedirectHostError {
                entry: entry.clone(),
                why,
            };
            let e = entry.trim().to_ascii_lowercase();
            if e.is_empty() {
                continue;
            }
            if e.contains("://") || e.contains('/') || e.contains('@') {
                return Err(bad("a host only"));
            }
            let (host, port) = match e.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| bad("the port is not a number"))?),
                None => (e.as_str(), 443),
            };
            let (host, below) = match host.strip_prefix("*.") {
                Some(domain) => (domain, true),
                None => (host, false),
            };
            let labels: Vec<&str> = host.split('.').collect();
            let label_ok = |l: &&str| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            };
            if !labels.iter().all(label_ok) {
                return Err(bad("a host name of letters, digits, '-' and '.'"));
            }
            if below && labels.len() < 2 {
                return Err(bad("a wildcard must name a domain of two labels or more"));
            }
            patterns.push(HostPattern {
                host: host.to_owned(),
                below,
                port,
            });
        }
        Ok(RedirectHosts { patterns })
    }

    /// Whether a registry asked at `from` may send the client to `to`.
    pub fn allows(&self, from: &url::Url, to: &url::Url) -> bool {
        let Some(host) = to.host_str().map(str::to_ascii_lowercase) else {
            return false;
        };
        let port = to.port_or_known_default();
        if same_origin(from, to) {
            return true;
        }
        if to.scheme() == "https"
            && port == Some(443)
            && from.host_str().is_some_and(|f| ecr_layer_bucket(f, &host))
        {
            return true;
        }
        self.patterns.iter().any(|p| {
            Some(p.port) == port
                && if p.below {
                    host.strip_suffix(p.host.as_str())
                        .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.'))
                } else {
                    host == p.host
                }
        })
    }
}

/// Same scheme, host and port: where a registry's credentials may go, and where it may always
/// send the client.
pub(crate) fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Whether `host` is the S3 bucket ECR serves the layers of the registry `ecr_host` from:
/// `prod-<region>-starport-layer-bucket` (named in ECR's guide to interface VPC endpoints,
/// whose S3 gateway endpoint policy must allow `arn:aws:s3:::prod-<region>-starport-layer-bucket/*`),
/// on an S3 endpoint: `s3`, `s3.<region>`, `s3-<region>` or `s3.dualstack.<region>`, under
/// `amazonaws.com` (or `.com.cn`). The bucket is AWS's; the whole host is matched so that a
/// bucket whose name merely begins the same way does not pass.
fn ecr_layer_bucket(ecr_host: &str, host: &str) -> bool {
    let Some(ecr) = promotion_core::ecr::EcrRegistry::from_host(&ecr_host.to_ascii_lowercase())
    else {
        return false;
    };
    let bucket = format!("prod-{}-starport-layer-bucket.", ecr.region);
    let Some(endpoint) = host.strip_prefix(bucket.as_str()) else {
        return false;
    };
    let Some(endpoint) = endpoint
        .strip_suffix(".amazonaws.com")
        .or_else(|| endpoint.strip_suffix(".amazonaws.com.cn"))
    else {
        return false;
    };
    let region = |r: &str| {
        !r.is_empty()
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    endpoint == "s3"
        || endpoint.strip_prefix("s3.dualstack.").is_some_and(region)
        || endpoint.strip_prefix("s3.").is_some_and(region)
        || endpoint.strip_prefix("s3-").is_some_and(region)
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
        // A literal is allowed on the port named (its scheme's default when none was).
        assert!(g.check_url(&u("http://127.0.0.1:5000/v2/")).is_ok());
        assert!(g.check_url(&u("http://[::1]:5000/v2/")).is_ok());
        assert!(g.check_url(&u("https://10.0.0.7/v2/")).is_ok());
        for (bad, host) in [
            ("http://127.0.0.1:9001/v2/", "127.0.0.1:9001"),
            ("https://10.0.0.7:8443/v2/", "10.0.0.7:8443"),
        ] {
            let e = g.check_url(&u(bad)).unwrap_err();
            assert!(matches!(e, EgressError::Internal { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(host), "{bad}: {e}");
        }
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

    #[test]
    fn an_allowed_name_is_allowed_on_its_port_only() {
        let g = Guard::new(&["localhost:5000".to_owned(), "registry.corp".to_owned()]);
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(g.check_url(&u("http://localhost:5000/v2/")).is_ok());
        assert!(g.check_url(&u("https://registry.corp/v2/")).is_ok());
        assert!(g.check_url(&u("https://REGISTRY.corp:443/v2/")).is_ok());
        // The resolver would let these names be internal on any port: refused before sending
        // (the Lambda runtime API is 127.0.0.1:9001; a realm or redirect may name any port).
        for (bad, allowed) in [
            (
                "http://localhost:9001/2018-06-01/runtime/invocation/next",
                "5000",
            ),
            ("https://registry.corp:8443/v2/", "443"),
        ] {
            let e = g.check_url(&u(bad)).unwrap_err();
            assert!(matches!(e, EgressError::Port { .. }), "{bad}: {e}");
            assert!(
                e.to_string().contains(&format!("on port {allowed} only")),
                "{e}"
            );
        }
        // A name nobody allowed is the resolver's to judge.
        assert!(g.check_url(&u("https://registry.example:8443/v2/")).is_ok());
    }

    fn redirect_allowed(named: &[&str], from: &str, to: &str) -> bool {
        let named: Vec<String> = named.iter().map(|h| (*h).to_owned()).collect();
        let u = |s: &str| url::Url::parse(s).unwrap();
        RedirectHosts::new(&named).unwrap().allows(&u(from), &u(to))
    }

    #[test]
    fn redirects_go_to_the_registrys_origin_named_hosts_and_ecrs_layer_bucket() {
        let reg = "https://registry.example/v2/app/blobs/sha256:00";
        // The registry's own origin only: scheme, host and port.
        assert!(redirect_allowed(&[], reg, "https://REGISTRY.example/other"));
        assert!(!redirect_allowed(
            &[],
            reg,
            "https://registry.example:8443/x"
        ));
        assert!(!redirect_allowed(&[], reg, "http://registry.example/x"));
        assert!(!redirect_allowed(&[], reg, "https://cdn.example/x"));
        // Named hosts: exact, or any name below a wildcard's domain; port 443 unless named.
        let named = ["cdn.example", "*.blobs.example", "store.example:8443"];
        for ok in [
            "https://cdn.example/x",
            "https://eu.blobs.example/x",
            "https://a.b.blobs.example/x",
            "https://store.example:8443/x",
        ] {
            assert!(redirect_allowed(&named, reg, ok), "{ok}");
        }
        for bad in [
            "https://blobs.example/x",
            "https://evilblobs.example/x",
            "https://cdn.example.evil/x",
            "https://cdn.example:8443/x",
            "https://store.example/x",
            "https://x.cdn.example/x",
        ] {
            assert!(!redirect_allowed(&named, reg, bad), "{bad}");
        }
        // ECR: its region's layer bucket on an S3 endpoint, and nothing like it.
        let ecr = "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com/v2/app/blobs/sha256:00";
        for ok in [
            "https://prod-eu-west-1-starport-layer-bucket.s3.eu-west-1.amazonaws.com/x?X-Amz-Signature=1",
            "https://prod-eu-west-1-starport-layer-bucket.s3.amazonaws.com/x",
            "https://prod-eu-west-1-starport-layer-bucket.s3.dualstack.eu-west-1.amazonaws.com/x",
            "https://prod-eu-west-1-starport-layer-bucket.s3-eu-west-1.amazonaws.com/x",
        ] {
            assert!(redirect_allowed(&[], ecr, ok), "{ok}");
        }
        for bad in [
            "https://prod-us-east-1-starport-layer-bucket.s3.amazonaws.com/x",
            "https://prod-eu-west-1-starport-layer-bucket.evil.s3.amazonaws.com/x",
            "https://prod-eu-west-1-starport-layer-bucket.s3.amazonaws.com.evil/x",
            "https://prod-eu-west-1-starport-layer-bucket.s3.eu-west-1.amazonaws.com:8443/x",
            "http://prod-eu-west-1-starport-layer-bucket.s3.amazonaws.com/x",
            "https://my-bucket.s3.eu-west-1.amazonaws.com/x",
        ] {
            assert!(!redirect_allowed(&[], ecr, bad), "{bad}");
        }
        // Only an ECR registry may send the client to ECR's bucket.
        let bucket = "https://prod-eu-west-1-starport-layer-bucket.s3.amazonaws.com/x";
        assert!(!redirect_allowed(&[], reg, bucket));
    }

    #[test]
    fn blob_storage_hosts_are_host_names_and_wildcards_name_a_domain() {
        let parse = |h: &str| RedirectHosts::new(&[h.to_owned()]);
        for ok in [
            "cdn.example",
            "CDN.example:8443",
            "*.blobs.example",
            " x-1.y ",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://cdn.example",
            "cdn.example/path",
            "user@cdn.example",
            "*",
            "*.com",
            "*cdn.example",
            "cdn..example",
            "cdn.example:port",
            "-cdn.example",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.to_string().contains("is not a blob-storage host"),
                "{bad}: {e}"
            );
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
