//! The OCI distribution API over HTTP(S).
//!
//! Requests go out through one `reqwest` client shared by every registry of a copy. When a
//! registry challenges (401), credentials come from the [`CredentialProvider`] and the challenge
//! (HTTP Basic, or the bearer-token flow) is run here; the resulting `Authorization` header is
//! cached per host (Basic) or per repository and access (Bearer). Credentials go only to the
//! registry's own scheme, host and port: a token realm elsewhere gets an anonymous request
//! ([`HttpRegistry::negotiate`]).
//!
//! Where the client may connect is [`crate::egress`]'s: no internal addresses unless the
//! configuration names the host. How long anything may take: [`HttpConfig`].
//!
//! Error messages name the operation, registry and object, never a credential, a token or an
//! upload-session URL (those carry state tokens in their query).

use crate::egress::{EgressError, Guard, GuardedResolver, RedirectHosts, same_origin};
use async_trait::async_trait;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};
use promotion_core::digest::Digest;
use promotion_core::manifest::{ACCEPT, Descriptor, MAX_MANIFEST_BYTES, ManifestDoc, RawManifest};
use promotion_core::reference::ImageRef;
use promotion_core::registry::auth::{CredentialProvider, Credentials};
use promotion_core::registry::{BlobStream, PutManifest, Registry, RegistryError, RetryPolicy};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::RwLock;

/// Settings of the HTTP adapter.
///
/// The time an operation may take is bounded by these and by `retry`: a request must be
/// answered (headers) within `first_byte_timeout`, connecting included; a body must then keep
/// up `min_throughput`; a blob upload must be answered within the time its size takes at that
/// throughput, plus `first_byte_timeout` and one window. Retries stop at `retry.budget`, so a
/// registry whose answers never begin ends an operation within [`HttpConfig::stalled_bound`]
/// (45 s by default), one that always fails at once within `retry.budget` and one answer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Hosts (`host[:port]`) spoken to over plain HTTP. Everything else is HTTPS. They may also
    /// be internal addresses (stand-ins on loopback).
    pub insecure_hosts: Vec<String>,
    /// Hosts (`host[:port]`; the port is not compared) that may be, or resolve to, internal
    /// addresses (loopback, private, link-local, …): the deployment's own registry behind a VPC
    /// endpoint, a registry on the user's network. Every other host is refused there.
    pub internal_hosts: Vec<String>,
    /// Hosts a registry may redirect to (or name as an upload `Location`) besides its own
    /// origin: `host`, `host:port` or `*.domain` (port 443 unless named) — the CDNs and object
    /// stores registries keep blobs in. An ECR registry's own layer bucket is always allowed.
    pub redirect_hosts: Vec<String>,
    /// Retries of transient failures of single requests (a blob transfer is retried whole by
    /// the copy engine, not here).
    pub retry: RetryPolicy,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// From sending a request to its answer's headers, connecting included (an upload's
    /// deadline also covers its body: see above).
    pub first_byte_timeout: Duration,
    /// The slowest a response body (or a blob upload) may be.
    pub min_throughput: Throughput,
    /// `User-Agent` sent with every request.
    pub user_agent: String,
    /// Where credentials come from, for the error when a registry wants some and none were
    /// found (the CLI names its flags, a Lambda its secrets).
    pub credentials_hint: String,
    /// At most this many manifest PUTs per second from this client, each attempt counted
    /// (ECR's PutImage quota is 10 per second per region; `promote sync` keeps under it);
    /// `None`: unpaced.
    pub manifest_puts_per_second: Option<f64>,
}

/// At least `bytes` in every `window`: a body slower than that is abandoned as
/// `Registry.Transient` (a slow-loris source must not hold a copy for the Lambda's lifetime).
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Bytes that must arrive in each window.
    pub bytes: u64,
    /// The window.
    pub window: Duration,
}

impl Throughput {
    /// How long `size` bytes may take at this throughput (whole windows, at least one).
    pub fn time_for(&self, size: u64) -> Duration {
        let windows = size.div_ceil(self.bytes.max(1)).max(1);
        self.window
            .saturating_mul(u32::try_from(windows).unwrap_or(u32::MAX))
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            insecure_hosts: Vec::new(),
            internal_hosts: Vec::new(),
            redirect_hosts: Vec::new(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(20),
            // 32 KiB/s, measured over 10 s windows.
            min_throughput: Throughput {
                bytes: 320 * 1024,
                window: Duration::from_secs(10),
            },
            user_agent: concat!("ecr-promotion/", env!("CARGO_PKG_VERSION")).to_owned(),
            credentials_hint: "use --src-creds/--dst-creds, Docker's config.json, or AWS \
                               credentials for ECR"
                .to_owned(),
            manifest_puts_per_second: None,
        }
    }
}

impl HttpConfig {
    /// The longest a single-request operation takes when the registry never answers: the last
    /// attempt starts within the retry budget and is abandoned at the first-byte deadline.
    pub fn stalled_bound(&self) -> Duration {
        self.retry.budget + self.first_byte_timeout
    }

    /// The deadline of an upload of `size` bytes: its answer must come within the time the
    /// body takes at the minimum throughput, one more window, and the first-byte deadline.
    pub fn upload_deadline(&self, size: u64) -> Duration {
        self.min_throughput.time_for(size) + self.min_throughput.window + self.first_byte_timeout
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Access {
    Pull,
    Push,
}

/// The HTTP(S) registry client.
pub struct HttpRegistry {
    http: reqwest::Client,
    guard: Arc<Guard>,
    /// Where the registry may send us besides its own origin (redirects, upload `Location`s).
    redirects: RedirectHosts,
    creds: Arc<dyn CredentialProvider>,
    config: HttpConfig,
    /// Basic auth applies to a whole host; learnt once, sent pre-emptively afterwards.
    basic: RwLock<HashMap<String, HeaderValue>>,
    /// Bearer tokens are scoped to a repository and an access.
    bearer: RwLock<HashMap<(String, String, Access), HeaderValue>>,
    /// Manifest PUTs wait for their slot ([`HttpConfig::manifest_puts_per_second`]).
    pacer: Option<Pacer>,
}

/// Evenly spaced slots: each caller waits for the next one. A slot is taken before the wait,
/// so concurrent callers queue in order and none is starved.
struct Pacer {
    interval: Duration,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Pacer {
    fn new(per_second: f64) -> Option<Pacer> {
        (per_second.is_finite() && per_second > 0.0).then(|| Pacer {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        })
    }

    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(tokio::time::Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// The largest token answer read.
const MAX_TOKEN_BODY: usize = 64 * 1024;

/// Token services that serve a registry from another host, and may have its credentials:
/// Docker Hub's API is `index.docker.io` / `registry-1.docker.io`, its token service
/// `auth.docker.io` (documented by Docker: <https://docs.docker.com/registry/spec/auth/token/>).
/// Every other realm must be the registry's own origin to get credentials.
const KNOWN_TOKEN_SERVICES: &[(&str, &str)] = &[
    ("index.docker.io", "auth.docker.io"),
    ("registry-1.docker.io", "auth.docker.io"),
];

impl HttpRegistry {
    /// A client with `config`, asking `creds` when a registry wants credentials.
    pub fn new(
        config: HttpConfig,
        creds: Arc<dyn CredentialProvider>,
    ) -> Result<Self, RegistryError> {
        let guard = Arc::new(Guard::new(
            config.insecure_hosts.iter().chain(&config.internal_hosts),
        ));
        let redirects = RedirectHosts::new(&config.redirect_hosts)
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        let http = reqwest::Client::builder()
            .user_agent(&config.user_agent)
            .connect_timeout(config.connect_timeout)
            // No client-wide read timeout: reqwest's covers an upload's whole body too. Each
            // request has its own deadline ([`HttpRegistry::execute`]) and each body its
            // minimum throughput.
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            // Redirects to blob storage (S3 for ECR) must not carry our Authorization header;
            // reqwest strips it on redirects to another scheme, host or port. Where a registry
            // may send us at all: [`redirect_policy`].
            .redirect(redirect_policy(
                config.insecure_hosts.clone(),
                redirects.clone(),
                guard.clone(),
            ))
            .build()
            .map_err(|e| RegistryError::Config(format!("cannot build the HTTP client: {e}")))?;
        let pacer = config.manifest_puts_per_second.and_then(Pacer::new);
        Ok(HttpRegistry {
            http,
            guard,
            redirects,
            creds,
            config,
            basic: RwLock::default(),
            bearer: RwLock::default(),
            pacer,
        })
    }

    /// `scheme://host[:port]` of a repository's registry.
    fn origin(&self, repo: &ImageRef) -> String {
        let host = repo.api_host();
        let scheme = if self.config.insecure_hosts.iter().any(|h| h == host) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    }

    fn base(&self, repo: &ImageRef) -> String {
        format!("{}/v2/{}", self.origin(repo), repo.repository())
    }

    async fn cached_auth(&self, repo: &ImageRef, access: Access) -> Option<HeaderValue> {
        let host = repo.api_host();
        if let Some(h) = self.basic.read().await.get(host) {
            return Some(h.clone());
        }
        let bearer = self.bearer.read().await;
        let key = |a| (host.to_owned(), repo.repository().to_owned(), a);
        // A push token covers pulls too.
        bearer
            .get(&key(access))
            .or_else(|| bearer.get(&key(Access::Push)))
            .cloned()
    }

    /// Send one request: its URL checked by the egress guard (reqwest does not resolve IP
    /// literals, so they are checked here), its answer due within `deadline`.
    async fn execute(
        &self,
        rb: reqwest::RequestBuilder,
        what: &str,
        deadline: Duration,
    ) -> Result<Response, RegistryError> {
        let req = rb.build().map_err(|e| transport(what, e))?;
        self.guard
            .check_url(req.url())
            .map_err(|e| egress(what, &e))?;
        match tokio::time::timeout(deadline, self.http.execute(req)).await {
            Ok(r) => r.map_err(|e| transport(what, e)),
            Err(_) => Err(RegistryError::Transient {
                what: what.to_owned(),
                detail: format!("no answer within {deadline:?}"),
                retry_after: None,
            }),
        }
    }

    /// Run the registry's challenge (`challenge`, the 401's `WWW-Authenticate`) and cache the
    /// result. Returns the header, and a note when credentials were withheld from a token realm
    /// on another origin (reported if the registry then still refuses).
    ///
    /// Basic: the provider's credentials, for this host only. Bearer: a token from the realm,
    /// which must be HTTPS (or a plain-HTTP stand-in); the provider's credentials go with the
    /// token request only when the realm has the registry's own scheme, host and port (or is a
    /// [`KNOWN_TOKEN_SERVICES`] entry). Elsewhere the token is asked for anonymously: enough
    /// for public images, and a registry cannot collect another host's credentials by naming a
    /// realm.
    async fn negotiate(
        &self,
        repo: &ImageRef,
        access: Access,
        what: &str,
        challenge: Option<&HeaderValue>,
        refused: bool,
    ) -> Result<(HeaderValue, Option<String>), RegistryError> {
        let host = repo.api_host().to_owned();
        // Credentials the registry just refused are asked for again, fresh (a rotated secret).
        let provided = async || {
            if refused {
                self.creds.refreshed(&host).await
            } else {
                self.creds.credentials(&host).await
            }
        };
        let protocol = |detail: String| RegistryError::Protocol {
            what: what.to_owned(),
            detail,
        };
        let unauthorized = |detail: String| RegistryError::Unauthorized {
            what: what.to_owned(),
            detail,
        };
        let challenge = challenge
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
            .ok_or_else(|| protocol("401 without a Basic or Bearer challenge".into()))?;
        if challenge.scheme.eq_ignore_ascii_case("basic") {
            return match provided().await? {
                Credentials::Basic { username, password } => {
                    let b64 = base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{password}"));
                    let v = header_value(&format!("Basic {b64}"))?;
                    self.basic.write().await.insert(host, v.clone());
                    Ok((v, None))
                }
                Credentials::Anonymous => Err(unauthorized(format!(
                    "{host} requires credentials and none were found ({})",
                    self.config.credentials_hint
                ))),
            };
        }
        if !challenge.scheme.eq_ignore_ascii_case("bearer") {
            return Err(protocol(format!(
                "unsupported authentication scheme {}",
                truncate(&challenge.scheme)
            )));
        }
        let realm = challenge
            .param("realm")
            .ok_or_else(|| protocol("a Bearer challenge without a realm".into()))?;
        let mut url = url::Url::parse(realm)
            .map_err(|_| protocol("the token realm is not an absolute URL".into()))?;
        let realm_authority = authority(&url);
        let plain_ok =
            url.scheme() == "http" && self.config.insecure_hosts.contains(&realm_authority);
        if url.scheme() != "https" && !plain_ok {
            return Err(protocol(format!(
                "refused a token realm over plain {} at {}",
                url.scheme(),
                truncate(&realm_authority)
            )));
        }
        let own = url::Url::parse(&self.origin(repo))
            .map_err(|e| RegistryError::Config(format!("bad registry URL: {e}")))?;
        let same_origin = same_origin(&url, &own);
        let known = url.scheme() == "https"
            && url.port_or_known_default() == Some(443)
            && KNOWN_TOKEN_SERVICES
                .iter()
                .any(|(registry, service)| *registry == host && url.host_str() == Some(*service));
        let creds = if same_origin || known {
            provided().await?
        } else {
            tracing::warn!(registry = %host, realm_host = %truncate(&realm_authority),
                "the token realm is on another host: asking for a token without credentials");
            Credentials::Anonymous
        };
        let scope = match access {
            Access::Pull => format!("repository:{}:pull", repo.repository()),
            Access::Push => format!("repository:{}:pull,push", repo.repository()),
        };
        url.query_pairs_mut().append_pair("scope", &scope);
        if let Some(service) = challenge.param("service") {
            url.query_pairs_mut().append_pair("service", service);
        }
        let mut rb = self.http.get(url);
        if let Credentials::Basic { username, password } = &creds {
            rb = rb.basic_auth(username, Some(password));
        }
        let token_what = format!("{what} (token from {})", truncate(&realm_authority));
        let resp = self
            .execute(rb, &token_what, self.config.first_byte_timeout)
            .await?;
        if matches!(
            resp.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(unauthorized(format!(
                "the token service {} refused: HTTP {}",
                truncate(&realm_authority),
                resp.status().as_u16()
            )));
        }
        let resp = self.check(resp, &token_what).await?;
        let body = self.read_capped(resp, MAX_TOKEN_BODY, &token_what).await?;
        /// The token answer (Docker's `token`, OAuth's `access_token`).
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token = serde_json::from_slice::<Token>(&body)
            .ok()
            .and_then(|t| t.token.or(t.access_token))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| protocol("the token service answered no token".into()))?;
        let v = header_value(&format!("Bearer {token}"))?;
        self.bearer.write().await.insert(
            (host.clone(), repo.repository().to_owned(), access),
            v.clone(),
        );
        let note = (!same_origin && !known).then(|| {
            format!(
                "{host}'s token realm is on another host ({}); no credentials were sent there, \
                 and the anonymous token was not enough",
                truncate(&realm_authority)
            )
        });
        Ok((v, note))
    }

    /// Send a request built by `build`, authenticating once if the registry challenges.
    async fn send(
        &self,
        repo: &ImageRef,
        access: Access,
        what: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut auth = self.cached_auth(repo, access).await;
        let mut negotiated = false;
        let mut withheld = None;
        loop {
            let mut rb = build(&self.http);
            if let Some(h) = &auth {
                rb = rb.header(header::AUTHORIZATION, h.clone());
            }
            let resp = self
                .execute(rb, what, self.config.first_byte_timeout)
                .await?;
            if resp.status() == StatusCode::UNAUTHORIZED {
                if !negotiated {
                    let mut challenge = resp.headers().get(header::WWW_AUTHENTICATE).cloned();
                    if challenge.is_none() {
                        // Some registries challenge only on the API root (HEAD answers may
                        // carry no header): ask it, as docker and oci-client do.
                        let root = format!("{}/v2/", self.origin(repo));
                        let r = self
                            .execute(self.http.get(root), what, self.config.first_byte_timeout)
                            .await?;
                        challenge = r.headers().get(header::WWW_AUTHENTICATE).cloned();
                    }
                    let (h, note) = self
                        .negotiate(repo, access, what, challenge.as_ref(), auth.is_some())
                        .await?;
                    auth = Some(h);
                    withheld = note;
                    negotiated = true;
                    continue;
                }
                if let Some(detail) = withheld {
                    return Err(RegistryError::Unauthorized {
                        what: what.to_owned(),
                        detail,
                    });
                }
            }
            return Ok(resp);
        }
    }

    /// Turn a non-success answer into the matching error; pass successes through.
    async fn check(&self, resp: Response, what: &str) -> Result<Response, RegistryError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = retry_after(resp.headers());
        // An error body larger than the bound (or too slow) is not read: the status alone is
        // reported.
        let body = self
            .read_capped(resp, MAX_ERROR_BODY, what)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Err(status_error(status, what, &body, retry_after))
    }

    /// Read a body of at most `max` bytes, at the minimum throughput: a hostile registry must
    /// not make us buffer gigabytes, nor wait for ever.
    async fn read_capped(
        &self,
        resp: Response,
        max: usize,
        what: &str,
    ) -> Result<Bytes, RegistryError> {
        if resp.content_length().is_some_and(|l| l > max as u64) {
            return Err(too_large(
                what,
                resp.content_length().unwrap_or_default() as usize,
            ));
        }
        let mut body = BytesMut::new();
        let mut stream = self.body(resp, what);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > max {
                return Err(too_large(what, body.len() + chunk.len()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// A response's body as a stream held to the minimum throughput.
    fn body(&self, resp: Response, what: &str) -> BoxStream<'static, Result<Bytes, RegistryError>> {
        let w = what.to_owned();
        let inner = resp
            .bytes_stream()
            .map_err(move |e| transport(&w, e))
            .boxed();
        MinThroughput::new(inner, self.config.min_throughput, what.to_owned()).boxed()
    }

    async fn get_manifest_once(
        &self,
        repo: &ImageRef,
        reference: &str,
        what: &str,
    ) -> Result<RawManifest, RegistryError> {
        let url = format!("{}/manifests/{reference}", self.base(repo));
        let resp = self
            .send(repo, Access::Pull, what, |c| {
                c.get(&url).header(header::ACCEPT, ACCEPT.join(", "))
            })
            .await?;
        let resp = self.check(resp, what).await?;
        if resp
            .content_length()
            .is_some_and(|l| l > MAX_MANIFEST_BYTES as u64)
        {
            return Err(too_large(
                what,
                resp.content_length().unwrap_or_default() as usize,
            ));
        }
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let bytes = self.read_capped(resp, MAX_MANIFEST_BYTES, what).await?;
        let (_, _, media_type) =
            ManifestDoc::parse(&bytes, content_type.as_deref()).map_err(|source| {
                RegistryError::Manifest {
                    what: what.to_owned(),
                    source,
                }
            })?;
        let raw = RawManifest::new(bytes, media_type);
        // Verified bytes: by digest, the bytes must hash to it; by tag, they must hash to what
        // the registry says it served.
        let expected = reference.parse::<Digest>().ok().or(header_digest);
        if let Some(expected) = expected
            && expected != raw.digest
        {
            return Err(RegistryError::DigestMismatch {
                what: what.to_owned(),
                expected: expected.to_string(),
                actual: raw.digest.to_string(),
            });
        }
        Ok(raw)
    }
}

fn header_value(s: &str) -> Result<HeaderValue, RegistryError> {
    let mut v = HeaderValue::from_str(s).map_err(|_| {
        RegistryError::Config("credentials contain characters HTTP headers cannot carry".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

fn too_large(what: &str, n: usize) -> RegistryError {
    RegistryError::Manifest {
        what: what.to_owned(),
        source: promotion_core::manifest::ManifestError::TooLarge(n),
    }
}

/// Registry-supplied text as it may enter an error, a log line or an event: control characters
/// (newlines, escape sequences) become spaces, and at most 300 bytes are kept.
fn truncate(s: &str) -> String {
    const MAX: usize = 300;
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.len() <= MAX {
        clean
    } else {
        format!("{}…", &clean[..clean.floor_char_boundary(MAX)])
    }
}

/// Largest error body read (only its first OCI error is reported, bounded by [`truncate`]).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// `host[:port]` of a URL, as configuration names hosts.
fn authority(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => String::new(),
    }
}

/// A `WWW-Authenticate` challenge (RFC 7235): its scheme and auth-params.
#[derive(Debug, PartialEq, Eq)]
struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The first challenge of a `WWW-Authenticate` value: `Bearer realm="…",service="…"`. Values
/// are tokens or quoted strings (with `\` escapes); parsing stops at the next challenge.
fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, mut rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return None;
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            break;
        }
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim();
        if key.is_empty() || key.contains(|c: char| c.is_ascii_whitespace() || c == ',') {
            // `Basic realm=…` after a comma: the next challenge.
            break;
        }
        rest = rest[eq + 1..].trim_start();
        let val = if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            rest = &quoted[end?..];
            out
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let v = rest[..end].trim().to_owned();
            rest = &rest[end..];
            v
        };
        params.push((key.to_owned(), val));
    }
    Some(Challenge {
        scheme: scheme.to_owned(),
        params,
    })
}

/// A body stream that fails (`Registry.Transient`) when a window passes with fewer than the
/// minimum bytes, silence included: a source trickling bytes cannot hold a transfer open.
struct MinThroughput {
    inner: BoxStream<'static, Result<Bytes, RegistryError>>,
    min: Throughput,
    what: String,
    seen: u64,
    window_end: Pin<Box<tokio::time::Sleep>>,
    done: bool,
}

impl MinThroughput {
    fn new(
        inner: BoxStream<'static, Result<Bytes, RegistryError>>,
        min: Throughput,
        what: String,
    ) -> Self {
        MinThroughput {
            inner,
            min,
            what,
            seen: 0,
            window_end: Box::pin(tokio::time::sleep(min.window)),
            done: false,
        }
    }

    /// The window ended: fine if enough arrived (then the next window starts), else the error.
    fn window_passed(&mut self) -> Option<RegistryError> {
        if self.seen < self.min.bytes {
            self.done = true;
            return Some(RegistryError::Transient {
                what: self.what.clone(),
                detail: format!(
                    "slower than the minimum throughput: {} bytes in {:?}, at least {} needed",
                    self.seen, self.min.window, self.min.bytes
                ),
                retry_after: None,
            });
        }
        self.seen = 0;
        let next = tokio::time::Instant::now() + self.min.window;
        self.window_end.as_mut().reset(next);
        None
    }
}

impl Stream for MinThroughput {
    type Item = Result<Bytes, RegistryError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match this.inner.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.seen += chunk.len() as u64;
                    if this.window_end.is_elapsed()
                        && let Some(e) = this.window_passed()
                    {
                        return Poll::Ready(Some(Err(e)));
                    }
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Poll::Ready(other) => {
                    this.done = other.is_none() || matches!(other, Some(Err(_)));
                    return Poll::Ready(other);
                }
                Poll::Pending => {}
            }
            match this.window_end.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    if let Some(e) = this.window_passed() {
                        return Poll::Ready(Some(Err(e)));
                    }
                    // A new window: poll again so that its timer is registered.
                }
            }
        }
    }
}

/// A refused or unresolvable host as the registry error it is: an internal address is refused
/// (`Input.Invalid`, naming what to configure); a name that does not exist is
/// `Registry.NotFound` (not retried: a typo does not heal); a resolver that cannot answer is
/// transient.
fn egress(what: &str, e: &EgressError) -> RegistryError {
    match e {
        EgressError::Internal { .. } | EgressError::Port { .. } => RegistryError::Refused {
            what: what.to_owned(),
            detail: format!(
                "{} (the CLI: --insecure-registry or --allow-internal-registry; the Lambdas: \
                 INSECURE_REGISTRIES)",
                truncate(&e.to_string())
            ),
        },
        EgressError::NoSuchHost { .. } => RegistryError::NotFound {
            what: format!("{what}: {}", truncate(&e.to_string())),
        },
        EgressError::Unavailable { .. } => RegistryError::Transient {
            what: what.to_owned(),
            detail: truncate(&e.to_string()),
            retry_after: None,
        },
    }
}

/// At most 5 redirects, each to where the registry may send us ([`RedirectHosts`]: its own
/// origin, a configured blob-storage host, an ECR registry's layer bucket); never from HTTPS down
/// to plain HTTP, and never to an internal address written as an IP literal (loopback, private,
/// link-local — the instance metadata service at 169.254.169.254 —, shared, unspecified) or an
/// allowed internal host on another port: a hostile registry must not turn the pipeline into a
/// client of the Lambda runtime API, of the VPC or of any host it likes. A stand-in host named
/// in `insecure` (plain HTTP on loopback in tests) may be spoken to over HTTP, and `guard` lets
/// the hosts it allows be internal. Names that *resolve* to internal addresses are refused
/// when connecting ([`GuardedResolver`]).
fn redirect_policy(
    insecure: Vec<String>,
    targets: RedirectHosts,
    guard: Arc<Guard>,
) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        // The first of `previous` is the request's own URL, the rest are redirects.
        if attempt.previous().len() > 5 {
            return attempt.error("refused to follow more than 5 redirects");
        }
        let url = attempt.url();
        if url.host_str().is_none() {
            return attempt.error("refused a redirect without a host");
        }
        let host = authority(url);
        if let Some(from) = attempt.previous().first()
            && !targets.allows(from, url)
        {
            let why = refused_target("a redirect", from, &host);
            return attempt.error(why);
        }
        if url.scheme() != "https" && !insecure.contains(&host) {
            let why = format!("refused a redirect to plain {} at {host}", url.scheme());
            return attempt.error(why);
        }
        if let Err(e) = guard.check_url(url) {
            return attempt.error(format!(
                "refused a redirect to the internal address {host}: {e}"
            ));
        }
        attempt.follow()
    })
}

/// Why a registry at `from` may not send the client to `to`, and what to configure.
fn refused_target(what: &str, from: &url::Url, to: &str) -> String {
    format!(
        "refused {what} from {} to {to}: not the registry's own host nor a blob-storage host \
         (BLOB_REDIRECT_HOSTS; the CLI: --redirect-host); name {to} there if this registry \
         keeps its blobs there",
        authority(from)
    )
}

/// Whether `url` names an internal address literally (or is `localhost`).
#[cfg(test)]
fn is_internal(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => crate::egress::is_internal_ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => crate::egress::is_internal_ip(ip.into()),
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        None => true,
    }
}

/// A transport failure (no HTTP answer): refused, reset, timed out, transient; a host the egress
/// guard refused or DNS does not know, as [`egress`] says.
fn transport(what: &str, e: reqwest::Error) -> RegistryError {
    // The egress guard refused the host, or DNS could not resolve it (the resolver's error is
    // in the connect error's source chain).
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = cur {
        if let Some(g) = s.downcast_ref::<EgressError>() {
            return egress(what, g);
        }
        cur = s.source();
    }
    if e.is_builder() {
        return RegistryError::Config(format!("{what}: cannot build the request"));
    }
    if e.is_redirect() {
        // Our redirect policy refused (or the registry looped): not an outage to retry.
        let mut cause = e.to_string();
        let mut cur = std::error::Error::source(&e);
        while let Some(s) = cur {
            cause = s.to_string();
            cur = s.source();
        }
        return RegistryError::Protocol {
            what: what.to_owned(),
            detail: truncate(&cause),
        };
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "connection dropped while transferring"
    } else {
        "request failed"
    };
    // `without_url`: upload locations carry session state in their query. reqwest's own
    // message is terse ("error sending request"); the cause (connection refused) is at the end
    // of its source chain.
    let e = e.without_url();
    let mut root = None;
    let mut cur = std::error::Error::source(&e);
    while let Some(s) = cur {
        root = Some(s.to_string());
        cur = s.source();
    }
    let detail = match root {
        Some(r) => format!("{kind}: {e} ({r})"),
        None => format!("{kind}: {e}"),
    };
    RegistryError::Transient {
        what: what.to_owned(),
        detail: truncate(&detail),
        retry_after: None,
    }
}

fn status_error(
    status: StatusCode,
    what: &str,
    body: &str,
    retry_after: Option<Duration>,
) -> RegistryError {
    let what = what.to_owned();
    // The OCI error envelope: {"errors":[{"code":"MANIFEST_UNKNOWN","message":"…"}]}.
    let first = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errors")?.get(0).cloned());
    let code = first
        .as_ref()
        .and_then(|e| e.get("code")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    let detail = first
        .map(|e| {
            format!(
                "{code} {}",
                e.get("message").and_then(|c| c.as_str()).unwrap_or("")
            )
        })
        .map(|d| format!("HTTP {}: {}", status.as_u16(), truncate(d.trim())))
        .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
    // The registry hashed what arrived and it did not match: the digest mismatch it is, not a
    // protocol failure (distribution-spec: DIGEST_INVALID on a blob or manifest upload).
    if status == StatusCode::BAD_REQUEST && code == "DIGEST_INVALID" {
        return RegistryError::DigestMismatch {
            what,
            expected: "the digest given".into(),
            actual: format!("something else, says the registry ({detail})"),
        };
    }
    match status.as_u16() {
        401 | 403 => RegistryError::Unauthorized { what, detail },
        404 => RegistryError::NotFound { what },
        408 | 429 | 500..=599 => RegistryError::Transient {
            what,
            detail,
            retry_after,
        },
        _ => RegistryError::Protocol { what, detail },
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare for registries and treated as absent).
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    h.get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Resolve an upload `Location` (absolute or relative) and add `digest` to its query.
fn upload_url(base: &str, location: &str, digest: &Digest) -> Result<url::Url, RegistryError> {
    let base = url::Url::parse(base)
        .map_err(|e| RegistryError::Config(format!("bad registry URL: {e}")))?;
    let mut u = base.join(location).map_err(|_| RegistryError::Protocol {
        what: "blob upload".into(),
        detail: "unusable Location header".into(),
    })?;
    u.query_pairs_mut().append_pair("digest", digest.as_str());
    Ok(u)
}

fn location(resp: &Response, what: &str) -> Result<String, RegistryError> {
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| RegistryError::Protocol {
            what: what.to_owned(),
            detail: "no Location header".into(),
        })
}

#[async_trait]
impl Registry for HttpRegistry {
    async fn get_manifest(
        &self,
        repo: &ImageRef,
        reference: &str,
    ) -> Result<RawManifest, RegistryError> {
        let what = format!("manifest {}", repo.at(reference));
        self.config
            .retry
            .run("get_manifest", || {
                self.get_manifest_once(repo, reference, &what)
            })
            .await
    }

    async fn head_manifest(
        &self,
        repo: &ImageRef,
        reference: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        let what = format!("manifest {}", repo.at(reference));
        let url = format!("{}/manifests/{reference}", self.base(repo));
        self.config
            .retry
            .run("head_manifest", || async {
                let resp = self
                    .send(repo, Access::Pull, &what, |c| {
                        c.head(&url).header(header::ACCEPT, ACCEPT.join(", "))
                    })
                    .await?;
                if resp.status() == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                let resp = self.check(resp, &what).await?;
                let digest = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match digest {
                    Some(d) => {
                        d.parse()
                            .map(Some)
                            .map_err(|e: promotion_core::digest::DigestError| {
                                RegistryError::Protocol {
                                    what: what.clone(),
                                    detail: e.to_string(),
                                }
                            })
                    }
                    // Some registries omit the header on HEAD: fall back to reading the bytes.
                    None => Ok(Some(
                        self.get_manifest_once(repo, reference, &what).await?.digest,
                    )),
                }
            })
            .await
    }

    async fn put_manifest(
        &self,
        repo: &ImageRef,
        reference: &str,
        manifest: &RawManifest,
    ) -> Result<PutManifest, RegistryError> {
        let what = format!("push manifest {}", repo.at(reference));
        let url = format!("{}/manifests/{reference}", self.base(repo));
        self.config
            .retry
            .run("put_manifest", || async {
                if let Some(p) = &self.pacer {
                    p.wait().await;
                }
                let resp = self
                    .send(repo, Access::Push, &what, |c| {
                        c.put(&url)
                            .header(header::CONTENT_TYPE, &manifest.media_type)
                            .body(manifest.bytes.clone())
                    })
                    .await?;
                let resp = self.check(resp, &what).await?;
                let subject_processed = resp.headers().contains_key("oci-subject");
                if let Some(d) = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    && d != manifest.digest.as_str()
                {
                    return Err(RegistryError::DigestMismatch {
                        what: what.clone(),
                        expected: manifest.digest.to_string(),
                        actual: d.to_owned(),
                    });
                }
                Ok(PutManifest {
                    digest: manifest.digest.clone(),
                    subject_processed,
                })
            })
            .await
    }

    async fn head_blob(
        &self,
        repo: &ImageRef,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let what = format!("blob {}@{digest}", repo.repo_path());
        let url = format!("{}/blobs/{digest}", self.base(repo));
        self.config
            .retry
            .run("head_blob", || async {
                let resp = self
                    .send(repo, Access::Pull, &what, |c| c.head(&url))
                    .await?;
                if resp.status() == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                let resp = self.check(resp, &what).await?;
                // Not `content_length()`: on a HEAD answer that is the (empty) body's length.
                let len = resp
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_default();
                Ok(Some(len))
            })
            .await
    }

    async fn get_blob(
        &self,
        repo: &ImageRef,
        digest: &Digest,
    ) -> Result<BlobStream, RegistryError> {
        // One attempt: the copy engine retries a transfer whole (a fresh GET and a fresh
        // upload), and retrying the GET here as well would multiply the two.
        let what = format!("blob {}@{digest}", repo.repo_path());
        let url = format!("{}/blobs/{digest}", self.base(repo));
        let resp = self
            .send(repo, Access::Pull, &what, |c| c.get(&url))
            .await?;
        let resp = self.check(resp, &what).await?;
        let size = resp.content_length();
        let stream = self.body(resp, &what);
        Ok(BlobStream { size, stream })
    }

    async fn mount_blob(
        &self,
        repo: &ImageRef,
        digest: &Digest,
        from: &ImageRef,
    ) -> Result<bool, RegistryError> {
        let what = format!(
            "mount blob {digest} into {} from {}",
            repo.repo_path(),
            from.repository()
        );
        let url = format!("{}/blobs/uploads/", self.base(repo));
        let mut mount = url::Url::parse(&url)
            .map_err(|e| RegistryError::Config(format!("bad registry URL: {e}")))?;
        mount
            .query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from.repository());
        self.config
            .retry
            .run("mount_blob", || async {
                let resp = self
                    .send(repo, Access::Push, &what, |c| {
                        c.post(mount.clone()).header(header::CONTENT_LENGTH, 0)
                    })
                    .await?;
                match resp.status() {
                    StatusCode::CREATED => Ok(true),
                    StatusCode::ACCEPTED => {
                        // Declined: the registry opened an upload session instead. Cancel it
                        // (best effort) so it does not linger; the caller uploads afresh.
                        if let Ok(loc) = location(&resp, &what)
                            && let Ok(base) = url::Url::parse(&url)
                            && let Ok(u) = base.join(&loc)
                            && self.redirects.allows(&base, &u)
                        {
                            let _ = self
                                .send(repo, Access::Push, &what, |c| {
                                    c.request(Method::DELETE, u.clone())
                                })
                                .await;
                        }
                        Ok(false)
                    }
                    _ => self.check(resp, &what).await.map(|_| false),
                }
            })
            .await
    }

    async fn put_blob(
        &self,
        repo: &ImageRef,
        digest: &Digest,
        size: u64,
        body: BlobStream,
    ) -> Result<(), RegistryError> {
        let what = format!("upload blob {digest} to {}", repo.repo_path());
        let url = format!("{}/blobs/uploads/", self.base(repo));
        // One attempt, like `get_blob`: the caller retries the transfer whole.
        let resp = self
            .send(repo, Access::Push, &what, |c| {
                c.post(&url).header(header::CONTENT_LENGTH, 0)
            })
            .await?;
        let resp = self.check(resp, &what).await?;
        let put = upload_url(&url, &location(&resp, &what)?, digest)?;
        // The image goes only where a redirect could send us ([`RedirectHosts`]), and
        // credentials only to the registry itself, never to a host its Location names.
        let own = url::Url::parse(&url)
            .map_err(|e| RegistryError::Config(format!("bad registry URL: {e}")))?;
        if !self.redirects.allows(&own, &put) {
            return Err(RegistryError::Protocol {
                what,
                detail: refused_target("an upload Location", &own, &authority(&put)),
            });
        }
        let same_host = same_origin(&put, &own);
        // One PUT with the whole body: the upload commits only if every byte arrives and
        // hashes to `digest`, so a failure half-way leaves nothing behind. The body cannot be
        // replayed, so this request is not retried here: the caller retries the whole transfer.
        // Its answer is due within the time the body takes at the minimum throughput.
        let mut rb = self
            .http
            .put(put)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(body.stream));
        if same_host && let Some(h) = self.cached_auth(repo, Access::Push).await {
            rb = rb.header(header::AUTHORIZATION, h);
        }
        let resp = self
            .execute(rb, &what, self.config.upload_deadline(size))
            .await?;
        self.check(resp, &what).await.map(|_| ())
    }

    async fn list_tags(&self, repo: &ImageRef) -> Result<Vec<String>, RegistryError> {
        /// One page of `tags/list`.
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let what = format!("tags of {}", repo.repo_path());
        let base = self.base(repo);
        // `scheme://host`, which relative `Link` targets are resolved against.
        let origin = base[..base.len() - repo.repository().len() - "/v2/".len()].to_owned();
        let mut url = format!("{base}/tags/list?n=1000");
        let mut out = Vec::new();
        // Bounded: a registry that keeps answering `next` must not loop forever.
        for _ in 0..10_000 {
            let (page, next) = self
                .config
                .retry
                .run("tags/list", || async {
                    let resp = self
                        .send(repo, Access::Pull, &what, |c| c.get(&url))
                        .await?;
                    if resp.status() == StatusCode::NOT_FOUND {
                        return Ok((Page { tags: None }, None));
                    }
                    let resp = self.check(resp, &what).await?;
                    let next = resp
                        .headers()
                        .get(header::LINK)
                        .and_then(|v| v.to_str().ok())
                        .and_then(next_link);
                    let bytes = self.read_capped(resp, MAX_MANIFEST_BYTES, &what).await?;
                    let page: Page =
                        serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
                            what: what.clone(),
                            detail: format!("the tag list is not JSON: {e}"),
                        })?;
                    Ok((page, next))
                })
                .await?;
            out.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) if n.starts_with('/') => url = format!("{origin}{n}"),
                Some(n) => url = n,
                None => return Ok(out),
            }
        }
        Err(RegistryError::Protocol {
            what,
            detail: "more than 10000 pages of tags".into(),
        })
    }

    async fn referrers(
        &self,
        repo: &ImageRef,
        digest: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        let what = format!("referrers of {}@{digest}", repo.repo_path());
        let url = format!("{}/referrers/{digest}", self.base(repo));
        self.config
            .retry
            .run("referrers", || async {
                let resp = self
                    .send(repo, Access::Pull, &what, |c| {
                        c.get(&url)
                            .header(header::ACCEPT, promotion_core::manifest::OCI_INDEX)
                    })
                    .await?;
                if resp.status() == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                let resp = self.check(resp, &what).await?;
                let bytes = self.read_capped(resp, MAX_MANIFEST_BYTES, &what).await?;
                let doc: ManifestDoc =
                    serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
                        what: what.clone(),
                        detail: format!("the referrers answer is not an index: {e}"),
                    })?;
                Ok(Some(doc.manifests))
            })
            .await
    }
}

/// The target of a `Link: <…>; rel="next"` header (RFC 5988), as the distribution API pages
/// `tags/list`.
fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use promotion_core::error::Classify;
    use promotion_core::registry::auth::StaticCredentials;

    use crate::testing::{FaultServer, STALL, TRICKLE, answer, authorization};
    use std::sync::Mutex as StdMutex;

    impl FaultServer {
        fn registry(&self, creds: StaticCredentials) -> HttpRegistry {
            let config = HttpConfig {
                insecure_hosts: vec![self.host.clone()],
                retry: RetryPolicy {
                    max_retries: 3,
                    min_delay: Duration::from_millis(1),
                    max_delay: Duration::from_secs(5),
                    ..RetryPolicy::default()
                },
                ..HttpConfig::default()
            };
            HttpRegistry::new(config, Arc::new(creds)).unwrap()
        }

        fn repo(&self) -> ImageRef {
            format!("{}/team/app", self.host).parse().unwrap()
        }
    }

    fn json_answer(body: &str, extra: &str) -> Option<String> {
        Some(format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    #[tokio::test]
    async fn list_tags_follows_link_pages_and_an_unknown_repository_has_none() {
        let srv = FaultServer::start(|_, head| {
            if head.contains("last=b") {
                json_answer(r#"{"name":"team/app","tags":["c"]}"#, "")
            } else if head.contains("/v2/team/app/tags/list") {
                json_answer(
                    r#"{"name":"team/app","tags":["a","b"]}"#,
                    "Link: </v2/team/app/tags/list?n=1000&last=b>; rel=\"next\"\r\n",
                )
            } else {
                answer("404 Not Found", &[])
            }
        })
        .await;
        let reg = srv.registry(StaticCredentials::default());
        assert_eq!(reg.list_tags(&srv.repo()).await.unwrap(), ["a", "b", "c"]);
        let other: ImageRef = format!("{}/team/none", srv.host).parse().unwrap();
        assert!(reg.list_tags(&other).await.unwrap().is_empty());
    }

    #[test]
    fn next_link_reads_the_rel_next_target_only() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=x&n=2")
        );
        assert_eq!(next_link(r#"<https://x/y>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[tokio::test]
    async fn honours_retry_after_on_503_and_429_then_succeeds() {
        let srv = FaultServer::start(|n, _| match n {
            0 => answer("503 Service Unavailable", &["Retry-After: 1"]),
            1 => answer("429 Too Many Requests", &["Retry-After: 1"]),
            _ => answer("200 OK", &["Content-Length: 5"]),
        })
        .await;
        let started = std::time::Instant::now();
        let size = srv
            .registry(StaticCredentials::default())
            .head_blob(&srv.repo(), &Digest::of(b"x"))
            .await
            .unwrap();
        assert_eq!(size, Some(5));
        assert_eq!(srv.requests().len(), 3);
        // The backoff alone would wait milliseconds; the registry asked for a second each time.
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn dropped_connections_are_retried_and_then_reported_as_transient() {
        let srv = FaultServer::start(|_, _| None).await;
        let err = srv
            .registry(StaticCredentials::default())
            .head_blob(&srv.repo(), &Digest::of(b"x"))
            .await
            .unwrap_err();
        assert_eq!(
            err.error_type(),
            promotion_core::error::ErrorType::RegistryTransient,
            "{err}"
        );
        assert_eq!(srv.requests().len(), 4, "first attempt and three retries");
    }

    #[tokio::test]
    async fn basic_challenge_is_answered_with_the_providers_credentials_and_never_echoed() {
        let srv = FaultServer::start(|_, head| {
            // "AWS:s3cret" in base64.
            if head.contains("Authorization: Basic QVdTOnMzY3JldA==")
                || head.contains("authorization: Basic QVdTOnMzY3JldA==")
            {
                answer("200 OK", &["Content-Length: 7"])
            } else {
                answer(
                    "401 Unauthorized",
                    &["WWW-Authenticate: Basic realm=\"test\""],
                )
            }
        })
        .await;
        let mut creds = StaticCredentials::default();
        creds.insert(
            &srv.host,
            Credentials::parse_user_pass("AWS:s3cret").unwrap(),
        );
        let reg = srv.registry(creds);
        assert_eq!(
            reg.head_blob(&srv.repo(), &Digest::of(b"x")).await.unwrap(),
            Some(7)
        );
        // Learnt once per host: the next request goes out with credentials straight away.
        let before = srv.requests().len();
        reg.head_blob(&srv.repo(), &Digest::of(b"y")).await.unwrap();
        assert_eq!(srv.requests().len(), before + 1);

        let mut wrong = StaticCredentials::default();
        wrong.insert(
            &srv.host,
            Credentials::parse_user_pass("AWS:wrong-password").unwrap(),
        );
        let err = srv
            .registry(wrong)
            .head_blob(&srv.repo(), &Digest::of(b"x"))
            .await
            .unwrap_err();
        assert_eq!(
            err.error_type(),
            promotion_core::error::ErrorType::RegistryUnauthorized
        );
        assert!(
            !format!("{err} {err:?}").contains("wrong-password"),
            "{err:?}"
        );
    }

    /// A provider whose source rotates: `credentials` answers what it read last,
    /// `refreshed` reads the source again.
    struct Rotating {
        cached: std::sync::Mutex<String>,
        source: std::sync::Mutex<String>,
    }

    #[async_trait]
    impl CredentialProvider for Rotating {
        async fn credentials(&self, _: &str) -> Result<Credentials, RegistryError> {
            let p = self.cached.lock().unwrap().clone();
            Ok(Credentials::parse_user_pass(&format!("robot:{p}")).unwrap())
        }
        async fn refreshed(&self, registry: &str) -> Result<Credentials, RegistryError> {
            *self.cached.lock().unwrap() = self.source.lock().unwrap().clone();
            self.credentials(registry).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn manifest_puts_are_paced_to_the_configured_rate() {
        let pacer = Pacer::new(10.0).unwrap();
        let start = tokio::time::Instant::now();
        let mut at = Vec::new();
        for _ in 0..5 {
            pacer.wait().await;
            at.push(start.elapsed().as_millis());
        }
        // The first at once, then one every 100 ms: never two within a tenth of a second.
        assert_eq!(at, [0, 100, 200, 300, 400]);
        assert!(Pacer::new(0.0).is_none() && Pacer::new(f64::NAN).is_none());
    }

    #[tokio::test]
    async fn refused_credentials_are_asked_for_again_fresh() {
        use base64::Engine as _;
        let accepted = Arc::new(std::sync::Mutex::new("old".to_owned()));
        let now = accepted.clone();
        let srv = FaultServer::start(move |_, head| {
            let b64 = base64::engine::general_purpose::STANDARD
                .encode(format!("robot:{}", now.lock().unwrap()));
            if head
                .to_ascii_lowercase()
                .contains(&format!("authorization: basic {b64}").to_ascii_lowercase())
            {
                answer("200 OK", &["Content-Length: 7"])
            } else {
                answer(
                    "401 Unauthorized",
                    &["WWW-Authenticate: Basic realm=\"test\""],
                )
            }
        })
        .await;
        let provider = Arc::new(Rotating {
            cached: std::sync::Mutex::new("old".into()),
            source: std::sync::Mutex::new("old".into()),
        });
        let reg = HttpRegistry::new(short(&srv), provider.clone()).unwrap();
        assert_eq!(
            reg.head_blob(&srv.repo(), &Digest::of(b"x")).await.unwrap(),
            Some(7)
        );
        // The secret rotates: the registry refuses the cached header, the provider is asked
        // for fresh credentials, and the request goes through with them.
        *accepted.lock().unwrap() = "new".into();
        *provider.source.lock().unwrap() = "new".into();
        assert_eq!(
            reg.head_blob(&srv.repo(), &Digest::of(b"y")).await.unwrap(),
            Some(7)
        );
        assert_eq!(*provider.cached.lock().unwrap(), "new");
    }

    #[tokio::test]
    async fn bearer_challenge_fetches_a_scoped_token_and_reuses_it() {
        // GHCR/Docker Hub style: 401 with a Bearer challenge, a token endpoint, then the token.
        let host = Arc::new(StdMutex::new(String::new()));
        let h = host.clone();
        let srv = FaultServer::start(move |_, head| {
            let realm = format!("http://{}/token", h.lock().unwrap());
            if head.starts_with("GET /token?") {
                let body = r#"{"token":"tok-123","expires_in":300}"#;
                let mut a = answer(
                    "200 OK",
                    &[
                        &format!("Content-Length: {}", body.len()),
                        "Content-Type: application/json",
                    ],
                )
                .unwrap();
                a.push_str(body);
                Some(a)
            } else if head
                .to_lowercase()
                .contains("authorization: bearer tok-123")
            {
                answer("200 OK", &["Content-Length: 3"])
            } else {
                answer(
                    "401 Unauthorized",
                    &[&format!(
                        "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"test\""
                    )],
                )
            }
        })
        .await;
        *host.lock().unwrap() = srv.host.clone();
        let reg = srv.registry(StaticCredentials::default());
        assert_eq!(
            reg.head_blob(&srv.repo(), &Digest::of(b"x")).await.unwrap(),
            Some(3)
        );
        let token_requests: Vec<String> = srv
            .requests()
            .into_iter()
            .filter(|r| r.starts_with("GET /token?"))
            .collect();
        assert_eq!(token_requests.len(), 1);
        assert!(
            token_requests[0].contains("scope=repository%3Ateam%2Fapp%3Apull"),
            "{}",
            token_requests[0]
        );
        // Cached for this repository and access: no second token request.
        reg.head_blob(&srv.repo(), &Digest::of(b"y")).await.unwrap();
        assert_eq!(
            srv.requests()
                .iter()
                .filter(|r| r.starts_with("GET /token?"))
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn anonymous_access_refused_names_the_missing_credentials() {
        let srv = FaultServer::start(|_, _| {
            answer("401 Unauthorized", &["WWW-Authenticate: Basic realm=\"r\""])
        })
        .await;
        let err = srv
            .registry(StaticCredentials::default())
            .get_manifest(&srv.repo(), "1.0")
            .await
            .unwrap_err();
        assert_eq!(
            err.error_type(),
            promotion_core::error::ErrorType::RegistryUnauthorized
        );
        assert!(err.to_string().contains("requires credentials"), "{err}");
    }

    #[tokio::test]
    async fn a_manifest_that_does_not_hash_to_its_digest_is_refused() {
        let body = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let srv = FaultServer::start(move |_, _| {
            let mut a = answer(
                "200 OK",
                &[
                    &format!("Content-Length: {}", body.len()),
                    "Content-Type: application/vnd.oci.image.index.v1+json",
                ],
            )
            .unwrap();
            a.push_str(body);
            Some(a)
        })
        .await;
        let wrong = Digest::of(b"something else");
        let err = srv
            .registry(StaticCredentials::default())
            .get_manifest(&srv.repo(), wrong.as_str())
            .await
            .unwrap_err();
        assert_eq!(
            err.error_type(),
            promotion_core::error::ErrorType::ImageDigestMismatch,
            "{err}"
        );
        // By tag, the bytes are accepted and their own digest computed.
        let ok = srv
            .registry(StaticCredentials::default())
            .get_manifest(&srv.repo(), "1.0")
            .await
            .unwrap();
        assert_eq!(ok.digest, Digest::of(body.as_bytes()));
    }

    #[tokio::test]
    async fn oversized_manifests_are_refused_before_reading_them() {
        let srv = FaultServer::start(|_, _| {
            answer(
                "200 OK",
                &[
                    "Content-Length: 5000000",
                    "Content-Type: application/vnd.oci.image.manifest.v1+json",
                ],
            )
        })
        .await;
        let err = srv
            .registry(StaticCredentials::default())
            .get_manifest(&srv.repo(), "big")
            .await
            .unwrap_err();
        assert_eq!(
            err.error_type(),
            promotion_core::error::ErrorType::ImageInvalid
        );
        assert!(err.to_string().contains("4 MiB"), "{err}");
    }

    #[tokio::test]
    async fn oversized_referrer_and_tag_answers_are_refused_before_reading_them() {
        let srv = FaultServer::start(|_, _| {
            answer(
                "200 OK",
                &["Content-Length: 5000000", "Content-Type: application/json"],
            )
        })
        .await;
        let reg = srv.registry(StaticCredentials::default());
        let err = reg
            .referrers(&srv.repo(), &Digest::of(b"x"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("4 MiB"), "{err}");
        let err = reg.list_tags(&srv.repo()).await.unwrap_err();
        assert!(err.to_string().contains("4 MiB"), "{err}");
    }

    #[test]
    fn registry_text_in_errors_has_no_control_characters_and_is_bounded() {
        let hostile = format!(
            r#"{{"errors":[{{"code":"DENIED","message":"nope\n\u001b[2Jforged line\r{}"}}]}}"#,
            "x".repeat(5000)
        );
        let e = status_error(StatusCode::BAD_REQUEST, "op", &hostile, None).to_string();
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert!(e.contains("DENIED nope"), "{e}");
        assert!(e.len() < 400, "{} bytes", e.len());
    }

    /// A client of `srv` speaking plain HTTP to `insecure` and following redirects to `named`.
    fn redirecting_client(insecure: &[&str], named: &[&str]) -> HttpRegistry {
        let own = |v: &[&str]| v.iter().map(|h| (*h).to_owned()).collect();
        let mut creds = StaticCredentials::default();
        creds.insert(insecure[0], basic("u", "secret"));
        HttpRegistry::new(
            HttpConfig {
                insecure_hosts: own(insecure),
                redirect_hosts: own(named),
                ..HttpConfig::default()
            },
            Arc::new(creds),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn redirects_go_only_to_the_registrys_own_host_or_named_blob_storage() {
        let storage = FaultServer::start(|_, _| answer("200 OK", &["Content-Length: 0"])).await;
        let target = storage.host.clone();
        let (own, tls) = (Digest::of(b""), Digest::of(b"tls"));
        let (own_path, tls_path) = (own.to_string(), tls.to_string());
        let srv = FaultServer::start(move |_, head| {
            let to = if head.contains("/moved/") {
                return answer("200 OK", &["Content-Length: 0"]);
            } else if head.contains(&own_path) {
                "/v2/team/app/moved/blob".to_owned()
            } else if head.contains(&tls_path) {
                format!("https://{target}/blob")
            } else {
                format!("http://{target}/blob")
            };
            answer("307 Temporary Redirect", &[&format!("Location: {to}")])
        })
        .await;
        let (reg, sto) = (srv.host.as_str(), storage.host.as_str());
        let elsewhere = Digest::of(b"elsewhere");
        let protocol = promotion_core::error::ErrorType::RegistryProtocol;

        // Storage not named: only the registry's own origin is followed; another host (even on
        // the same address, another port) is refused at once, naming the host to configure.
        let unnamed = redirecting_client(&[reg, sto], &[]);
        let blob = unnamed.get_blob(&srv.repo(), &own).await.unwrap();
        assert_eq!(blob.size, Some(0));
        let err = unnamed
            .get_blob(&srv.repo(), &elsewhere)
            .await
            .err()
            .unwrap();
        assert_eq!(err.error_type(), protocol, "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("refused a redirect from {reg} to {sto}")),
            "{msg}"
        );
        assert!(
            msg.contains("BLOB_REDIRECT_HOSTS") && msg.contains("--redirect-host"),
            "{msg}"
        );
        assert!(storage.requests().is_empty(), "{:?}", storage.requests());

        // Named but plain HTTP (not a stand-in): refused; over HTTPS on a loopback literal (the
        // Lambda runtime API, the metadata service) that is not allowed internal: refused.
        let https_only = redirecting_client(&[reg], &[sto]);
        let err = https_only
            .get_blob(&srv.repo(), &elsewhere)
            .await
            .err()
            .unwrap();
        assert_eq!(err.error_type(), protocol, "{err}");
        assert!(
            err.to_string().contains("refused a redirect to plain http"),
            "{err}"
        );
        let err = https_only.get_blob(&srv.repo(), &tls).await.err().unwrap();
        assert_eq!(err.error_type(), protocol, "{err}");
        assert!(err.to_string().contains("internal address"), "{err}");
        assert!(storage.requests().is_empty(), "{:?}", storage.requests());
        assert_eq!(srv.requests().len(), 5, "one request each, no retries");

        // Named: followed, without the registry's credentials.
        let named = redirecting_client(&[reg, sto], &[sto]);
        let blob = named.get_blob(&srv.repo(), &elsewhere).await.unwrap();
        assert_eq!(blob.size, Some(0));
        let heard = storage.requests();
        assert_eq!(heard.len(), 1, "{heard:?}");
        assert_eq!(authorization(&heard[0]), None, "{heard:?}");
    }

    #[tokio::test]
    async fn an_upload_location_on_another_host_is_refused_unless_named() {
        let storage =
            FaultServer::start(|_, _| answer("201 Created", &["Content-Length: 0"])).await;
        let target = storage.host.clone();
        let srv = FaultServer::start(move |_, _| {
            answer(
                "202 Accepted",
                &[&format!("Location: http://{target}/upload/1?state=s")],
            )
        })
        .await;
        let (reg, sto) = (srv.host.as_str(), storage.host.as_str());
        let empty = || BlobStream {
            size: Some(0),
            stream: futures_util::stream::empty().boxed(),
        };
        let unnamed = redirecting_client(&[reg, sto], &[]);
        let err = unnamed
            .put_blob(&srv.repo(), &Digest::of(b""), 0, empty())
            .await
            .unwrap_err();
        assert_eq!(
            err.error_type(),
            promotion_core::error::ErrorType::RegistryProtocol,
            "{err}"
        );
        assert!(
            err.to_string().contains("refused an upload Location"),
            "{err}"
        );
        assert!(storage.requests().is_empty(), "{:?}", storage.requests());

        let named = redirecting_client(&[reg, sto], &[sto]);
        named
            .put_blob(&srv.repo(), &Digest::of(b""), 0, empty())
            .await
            .unwrap();
        let heard = storage.requests();
        assert_eq!(heard.len(), 1, "{heard:?}");
        assert!(
            heard[0].starts_with("PUT /upload/1?state=s&digest="),
            "{heard:?}"
        );
        assert_eq!(authorization(&heard[0]), None, "{heard:?}");
    }

    #[tokio::test]
    async fn a_declined_mount_cancels_its_session_only_where_a_redirect_could_go() {
        let storage = FaultServer::start(|_, _| answer("204 No Content", &[])).await;
        let target = storage.host.clone();
        // The registry declines the mount and names an upload session on another host.
        let srv = FaultServer::start(move |_, _| {
            answer(
                "202 Accepted",
                &[&format!("Location: http://{target}/upload/1?state=s")],
            )
        })
        .await;
        let (reg, sto) = (srv.host.as_str(), storage.host.as_str());
        let from: ImageRef = format!("{reg}/team/base").parse().unwrap();
        let unnamed = redirecting_client(&[reg, sto], &[]);
        let mounted = unnamed
            .mount_blob(&srv.repo(), &Digest::of(b"x"), &from)
            .await
            .unwrap();
        assert!(!mounted);
        assert!(storage.requests().is_empty(), "{:?}", storage.requests());

        let named = redirecting_client(&[reg, sto], &[sto]);
        let mounted = named
            .mount_blob(&srv.repo(), &Digest::of(b"x"), &from)
            .await
            .unwrap();
        assert!(!mounted);
        let heard = storage.requests();
        assert_eq!(heard.len(), 1, "{heard:?}");
        assert!(
            heard[0].starts_with("DELETE /upload/1?state=s"),
            "{heard:?}"
        );
        assert_eq!(authorization(&heard[0]), None, "{heard:?}");
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for u in [
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://169.254.169.254/latest",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://localhost:9001/",
        ] {
            assert!(is_internal(&url::Url::parse(u).unwrap()), "{u}");
        }
        for u in [
            "https://1.2.3.4/",
            "https://prod-us-east-1-starport-layer-bucket.s3.example/",
        ] {
            assert!(!is_internal(&url::Url::parse(u).unwrap()), "{u}");
        }
    }

    #[test]
    fn status_codes_map_to_stable_error_types() {
        use promotion_core::error::{Classify, ErrorType};
        let env = r#"{"errors":[{"code":"DENIED","message":"nope"}]}"#;
        let cases = [
            (401, ErrorType::RegistryUnauthorized),
            (403, ErrorType::RegistryUnauthorized),
            (404, ErrorType::RegistryNotFound),
            (429, ErrorType::RegistryTransient),
            (503, ErrorType::RegistryTransient),
            (400, ErrorType::RegistryProtocol),
            (405, ErrorType::RegistryProtocol),
        ];
        for (code, ty) in cases {
            let e = status_error(StatusCode::from_u16(code).unwrap(), "op", env, None);
            assert_eq!(e.error_type(), ty, "{code}");
        }
        let e = status_error(StatusCode::BAD_REQUEST, "op", env, None);
        assert!(e.to_string().contains("DENIED nope"), "{e}");
        // DIGEST_INVALID after an upload is the digest mismatch it is.
        let bad = r#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}"#;
        let e = status_error(StatusCode::BAD_REQUEST, "op", bad, None);
        assert_eq!(e.error_type(), ErrorType::ImageDigestMismatch, "{e}");
        assert!(e.to_string().contains("DIGEST_INVALID"), "{e}");
    }

    #[test]
    fn retry_after_seconds_are_read() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn upload_url_keeps_session_state_and_adds_the_digest() {
        let d = Digest::of(b"x");
        let u = upload_url(
            "http://h:5000/v2/r/blobs/uploads/",
            "/v2/r/blobs/uploads/abc?_state=s",
            &d,
        )
        .unwrap();
        assert_eq!(u.path(), "/v2/r/blobs/uploads/abc");
        let q: Vec<_> = u.query_pairs().collect();
        assert_eq!(q[0].1, "s");
        assert_eq!(q[1].1, d.as_str());
        let abs = upload_url(
            "http://h:5000/v2/r/blobs/uploads/",
            "https://other/up/1",
            &d,
        )
        .unwrap();
        assert_eq!(abs.host_str(), Some("other"));
    }

    fn basic(user: &str, password: &str) -> Credentials {
        Credentials::Basic {
            username: user.into(),
            password: password.into(),
        }
    }

    /// What a registry stand-in that wants `Bearer good` answers, its challenge naming `realm`.
    fn bearer_registry(realm: String) -> impl Fn(usize, &str) -> Option<String> {
        move |_, head: &str| {
            if authorization(head).as_deref() == Some("Bearer good") {
                answer("200 OK", &["Content-Length: 3"])
            } else {
                answer(
                    "401 Unauthorized",
                    &[&format!(
                        "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"reg\""
                    )],
                )
            }
        }
    }

    fn token_answer(token: &str) -> Option<String> {
        let body = format!(r#"{{"token":"{token}"}}"#);
        json_answer(&body, "")
    }

    #[tokio::test]
    async fn a_token_realm_on_another_host_gets_no_credentials() {
        // The realm is on another host (`localhost`, another port): it hears an anonymous
        // token request only, whatever credentials the registry has.
        let realm_srv = FaultServer::start(|_, _| token_answer("anonymous")).await;
        let realm_port = realm_srv.host.rsplit(':').next().unwrap().to_owned();
        let realm_host = format!("localhost:{realm_port}");
        let srv = FaultServer::start(bearer_registry(format!("http://{realm_host}/token"))).await;
        let mut creds = StaticCredentials::default();
        creds.insert(&srv.host, basic("u", "s3cret"));
        let reg = HttpRegistry::new(
            HttpConfig {
                insecure_hosts: vec![srv.host.clone(), realm_host.clone()],
                ..srv.registry(StaticCredentials::default()).config
            },
            Arc::new(creds),
        )
        .unwrap();
        let err = reg
            .head_blob(&srv.repo(), &Digest::of(b"x"))
            .await
            .unwrap_err();
        assert_eq!(
            err.error_type(),
            promotion_core::error::ErrorType::RegistryUnauthorized,
            "{err}"
        );
        assert!(
            err.to_string().contains("no credentials were sent there"),
            "{err}"
        );
        let heard = realm_srv.requests();
        assert_eq!(heard.len(), 1, "{heard:?}");
        assert!(heard[0].starts_with("GET /token?"), "{heard:?}");
        assert_eq!(authorization(&heard[0]), None, "{heard:?}");
        // The registry never saw the password either (only tokens).
        for h in srv.requests() {
            assert!(
                !authorization(&h).is_some_and(|a| a.starts_with("Basic")),
                "{h}"
            );
        }
    }

    #[tokio::test]
    async fn a_token_realm_on_the_registrys_own_origin_gets_its_credentials() {
        let host = Arc::new(StdMutex::new(String::new()));
        let h = host.clone();
        let srv = FaultServer::start(move |n, head| {
            if head.starts_with("GET /token?") {
                // "u:s3cret" in base64.
                if authorization(head).as_deref() == Some("Basic dTpzM2NyZXQ=") {
                    token_answer("good")
                } else {
                    answer("401 Unauthorized", &[])
                }
            } else {
                bearer_registry(format!("http://{}/token", h.lock().unwrap()))(n, head)
            }
        })
        .await;
        *host.lock().unwrap() = srv.host.clone();
        let mut creds = StaticCredentials::default();
        creds.insert(&srv.host, basic("u", "s3cret"));
        assert_eq!(
            srv.registry(creds)
                .head_blob(&srv.repo(), &Digest::of(b"x"))
                .await
                .unwrap(),
            Some(3)
        );
    }

    #[tokio::test]
    async fn credentials_do_not_follow_a_redirect_to_another_host() {
        let storage = FaultServer::start(|_, _| answer("200 OK", &["Content-Length: 0"])).await;
        let port = storage.host.rsplit(':').next().unwrap().to_owned();
        let storage_host = format!("localhost:{port}");
        let target = format!("http://{storage_host}/blob");
        let srv = FaultServer::start(move |_, head| {
            if authorization(head).is_none() {
                answer("401 Unauthorized", &["WWW-Authenticate: Basic realm=\"r\""])
            } else {
                answer("307 Temporary Redirect", &[&format!("Location: {target}")])
            }
        })
        .await;
        let mut creds = StaticCredentials::default();
        creds.insert(&srv.host, basic("u", "s3cret"));
        let reg = HttpRegistry::new(
            HttpConfig {
                insecure_hosts: vec![srv.host.clone(), storage_host.clone()],
                redirect_hosts: vec![storage_host],
                ..srv.registry(StaticCredentials::default()).config
            },
            Arc::new(creds),
        )
        .unwrap();
        let blob = reg.get_blob(&srv.repo(), &Digest::of(b"")).await.unwrap();
        assert_eq!(blob.size, Some(0));
        let heard = storage.requests();
        assert_eq!(heard.len(), 1, "{heard:?}");
        assert_eq!(authorization(&heard[0]), None, "{heard:?}");
        assert!(srv.requests().iter().any(|h| authorization(h).is_some()));
    }

    #[tokio::test]
    async fn internal_hosts_are_refused_before_connecting_unless_allowed() {
        let srv = FaultServer::start(|_, _| answer("200 OK", &["Content-Length: 1"])).await;
        let port = srv.host.rsplit(':').next().unwrap().to_owned();
        let strict = HttpRegistry::new(
            HttpConfig::default(),
            Arc::new(StaticCredentials::default()),
        )
        .unwrap();
        let started = std::time::Instant::now();
        // An IP literal (reqwest resolves nothing: checked before sending) and a name resolving
        // to loopback (refused by the client's resolver).
        for host in [srv.host.clone(), format!("localhost:{port}")] {
            let repo: ImageRef = format!("{host}/team/app").parse().unwrap();
            let err = strict
                .head_blob(&repo, &Digest::of(b"x"))
                .await
                .unwrap_err();
            assert_eq!(
                err.error_type(),
                promotion_core::error::ErrorType::InputInvalid,
                "{host}: {err}"
            );
            let msg = err.to_string();
            assert!(msg.contains("internal address"), "{msg}");
            assert!(msg.contains("--allow-internal-registry"), "{msg}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "fast, not retried"
        );
        assert!(srv.requests().is_empty(), "{:?}", srv.requests());
        // Allowed by name: the request goes out (over HTTPS, which this stand-in cannot speak).
        let allowed = HttpRegistry::new(
            HttpConfig {
                internal_hosts: vec![srv.host.clone()],
                retry: RetryPolicy::none(),
                ..HttpConfig::default()
            },
            Arc::new(StaticCredentials::default()),
        )
        .unwrap();
        let err = allowed
            .head_blob(&srv.repo(), &Digest::of(b"x"))
            .await
            .unwrap_err();
        assert_ne!(
            err.error_type(),
            promotion_core::error::ErrorType::InputInvalid,
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_host_that_does_not_exist_is_not_found_and_not_retried() {
        let reg = HttpRegistry::new(
            HttpConfig::default(),
            Arc::new(StaticCredentials::default()),
        )
        .unwrap();
        let repo: ImageRef = "no-such-registry.invalid/team/app".parse().unwrap();
        let started = std::time::Instant::now();
        let err = reg.get_manifest(&repo, "1").await.unwrap_err();
        assert_eq!(
            err.error_type(),
            promotion_core::error::ErrorType::RegistryNotFound,
            "{err}"
        );
        assert!(err.to_string().contains("does not exist"), "{err}");
        // The default policy's first wait alone could be 250 ms; none was taken.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_blob_get_is_attempted_once_the_transfer_is_what_retries() {
        let srv = FaultServer::start(|_, _| answer("500 Internal Server Error", &[])).await;
        let err = srv
            .registry(StaticCredentials::default())
            .get_blob(&srv.repo(), &Digest::of(b"x"))
            .await
            .err()
            .expect("500");
        assert_eq!(
            err.error_type(),
            promotion_core::error::ErrorType::RegistryTransient
        );
        assert_eq!(srv.requests().len(), 1);
    }

    /// Short deadlines, so that a stalled registry is a test of seconds.
    fn short(srv: &FaultServer) -> HttpConfig {
        HttpConfig {
            insecure_hosts: vec![srv.host.clone()],
            retry: RetryPolicy {
                max_retries: 5,
                min_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(50),
                budget: Duration::from_millis(1000),
            },
            first_byte_timeout: Duration::from_millis(400),
            min_throughput: Throughput {
                bytes: 100,
                window: Duration::from_millis(300),
            },
            ..HttpConfig::default()
        }
    }

    #[tokio::test]
    async fn a_stalled_answer_ends_at_the_first_byte_deadline_within_the_budget() {
        let srv = FaultServer::start(|_, _| Some(STALL.to_owned())).await;
        let config = short(&srv);
        let bound = config.stalled_bound();
        let reg = HttpRegistry::new(config, Arc::new(StaticCredentials::default())).unwrap();
        let started = std::time::Instant::now();
        let err = reg
            .head_blob(&srv.repo(), &Digest::of(b"x"))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert_eq!(
            err.error_type(),
            promotion_core::error::ErrorType::RegistryTransient,
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("no answer within 400ms"), "{msg}");
        assert!(msg.contains("gave up after"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg:?}");
        assert!(srv.requests().len() >= 2, "retried: {:?}", srv.requests());
        assert!(
            took <= bound + Duration::from_millis(300),
            "{took:?} > {bound:?}"
        );
    }

    #[tokio::test]
    async fn a_trickling_body_fails_the_minimum_throughput() {
        let body = "x".repeat(2000);
        let srv = FaultServer::start(move |_, _| {
            Some(format!(
                "{TRICKLE}HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ))
        })
        .await;
        let reg = HttpRegistry::new(short(&srv), Arc::new(StaticCredentials::default())).unwrap();
        let started = std::time::Instant::now();
        let mut blob = reg.get_blob(&srv.repo(), &Digest::of(b"x")).await.unwrap();
        let mut got = 0;
        let err = loop {
            match blob.stream.next().await {
                Some(Ok(c)) => got += c.len(),
                Some(Err(e)) => break e,
                None => panic!("a 20 bytes/s body passed a 100 bytes per 300 ms minimum"),
            }
        };
        assert_eq!(
            err.error_type(),
            promotion_core::error::ErrorType::RegistryTransient
        );
        assert!(
            err.to_string()
                .contains("slower than the minimum throughput"),
            "{err}"
        );
        assert!(got < 100, "{got}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn the_production_deadlines_state_their_budget() {
        let c = HttpConfig::default();
        // A registry that never answers: the last attempt starts within the retry budget and
        // is abandoned at the first-byte deadline: 25 s + 20 s.
        assert_eq!(c.stalled_bound(), Duration::from_secs(45));
        assert!(c.stalled_bound() <= Duration::from_secs(90));
        // One that always fails at once: no retry starts after 25 s.
        assert!(c.retry.budget + Duration::from_secs(5) <= Duration::from_secs(30));
        // 32 KiB/s over 10 s windows; an upload is due within its size at that rate, one more
        // window and the first-byte deadline.
        assert_eq!(c.min_throughput.bytes, 320 * 1024);
        assert_eq!(c.upload_deadline(0), Duration::from_secs(40));
        assert_eq!(c.upload_deadline(3200 * 1024), Duration::from_secs(130));
        assert_eq!(c.upload_deadline(3200 * 1024 + 1), Duration::from_secs(140));
    }

    #[test]
    fn challenges_are_parsed_with_quoted_values_and_stop_at_the_next_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a\"b:pull", Basic realm="x""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("SERVICE"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:a\"b:pull"));
        assert_eq!(c.params.len(), 3);
        let b = parse_challenge("Basic realm=r").unwrap();
        assert_eq!((b.scheme.as_str(), b.param("realm")), ("Basic", Some("r")));
        assert!(parse_challenge("").is_none());
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
    }
}
