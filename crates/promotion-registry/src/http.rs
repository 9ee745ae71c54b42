//! The OCI distribution API over HTTP(S).
//!
//! Requests go out through one `reqwest` client shared by every registry of a copy. When a
//! registry challenges (401), credentials come from the [`CredentialProvider`] and the challenge
//! itself (HTTP Basic, or the bearer-token flow) is run by `oci-client`; the resulting
//! `Authorization` header is cached per host (Basic) or per repository and access (Bearer).
//!
//! Error messages name the operation, registry and object, never a credential, a token or an
//! upload-session URL (those carry state tokens in their query).

use async_trait::async_trait;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use oci_client::RegistryOperation;
use oci_client::secrets::RegistryAuth;
use promotion_core::digest::Digest;
use promotion_core::manifest::{ACCEPT, Descriptor, MAX_MANIFEST_BYTES, ManifestDoc, RawManifest};
use promotion_core::reference::ImageRef;
use promotion_core::registry::auth::{CredentialProvider, Credentials, normalise_host};
use promotion_core::registry::{BlobStream, PutManifest, Registry, RegistryError, RetryPolicy};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::RwLock;

/// Settings of the HTTP adapter.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Hosts (`host[:port]`) spoken to over plain HTTP. Everything else is HTTPS.
    pub insecure_hosts: Vec<String>,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response.
    pub read_timeout: Duration,
    /// `User-Agent` sent with every request.
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            insecure_hosts: Vec::new(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
            user_agent: concat!("ecr-promotion/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
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
    oci: oci_client::Client,
    creds: Arc<dyn CredentialProvider>,
    config: HttpConfig,
    /// Basic auth applies to a whole host; learnt once, sent pre-emptively afterwards.
    basic: RwLock<HashMap<String, HeaderValue>>,
    /// Bearer tokens are scoped to a repository and an access.
    bearer: RwLock<HashMap<(String, String, Access), HeaderValue>>,
}

impl HttpRegistry {
    /// A client with `config`, asking `creds` when a registry wants credentials.
    pub fn new(
        config: HttpConfig,
        creds: Arc<dyn CredentialProvider>,
    ) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .user_agent(&config.user_agent)
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            // Redirects to blob storage (S3 for ECR) must not carry our Authorization header;
            // reqwest strips it on cross-host redirects. Where a registry may send us at all:
            // [`redirect_policy`].
            .redirect(redirect_policy(config.insecure_hosts.clone()))
            .build()
            .map_err(|e| RegistryError::Config(format!("cannot build the HTTP client: {e}")))?;
        let oci = oci_client::Client::new(oci_client::client::ClientConfig {
            protocol: oci_client::client::ClientProtocol::HttpsExcept(
                config.insecure_hosts.clone(),
            ),
            user_agent: "ecr-promotion",
            connect_timeout: Some(config.connect_timeout),
            read_timeout: Some(config.read_timeout),
            ..Default::default()
        });
        Ok(HttpRegistry {
            http,
            oci,
            creds,
            config,
            basic: RwLock::default(),
            bearer: RwLock::default(),
        })
    }

    fn base(&self, repo: &ImageRef) -> String {
        let host = repo.api_host();
        let scheme = if self.config.insecure_hosts.iter().any(|h| h == host) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}/v2/{}", repo.repository())
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

    /// Run the registry's challenge with the provider's credentials and cache the result.
    async fn negotiate(
        &self,
        repo: &ImageRef,
        access: Access,
        what: &str,
    ) -> Result<HeaderValue, RegistryError> {
        let host = repo.api_host().to_owned();
        let creds = self.creds.credentials(&host).await?;
        let auth = match &creds {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
        };
        let reference = oci_client::Reference::with_tag(
            repo.registry().to_owned(),
            repo.repository().to_owned(),
            "latest".to_owned(),
        );
        let op = match access {
            Access::Pull => RegistryOperation::Pull,
            Access::Push => RegistryOperation::Push,
        };
        let unauthorized = |detail: String| RegistryError::Unauthorized {
            what: what.to_owned(),
            detail,
        };
        match self.oci.auth(&reference, &auth, op).await {
            Ok(Some(token)) => {
                let v = header_value(&format!("Bearer {token}"))?;
                self.bearer
                    .write()
                    .await
                    .insert((host, repo.repository().to_owned(), access), v.clone());
                Ok(v)
            }
            Ok(None) => match creds {
                Credentials::Basic { username, password } => {
                    let b64 = base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{password}"));
                    let v = header_value(&format!("Basic {b64}"))?;
                    self.basic.write().await.insert(host, v.clone());
                    Ok(v)
                }
                Credentials::Anonymous => Err(unauthorized(format!(
                    "{host} requires credentials and none were found (use --src-creds/--dst-creds, \
                     Docker's config.json, or AWS credentials for ECR)"
                ))),
            },
            Err(oci_client::errors::OciDistributionError::RequestError(e)) => {
                Err(transport(what, e))
            }
            Err(e) => Err(unauthorized(format!(
                "authentication with {host} failed: {}",
                truncate(&e.to_string())
            ))),
        }
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
        loop {
            let mut rb = build(&self.http);
            if let Some(h) = &auth {
                rb = rb.header(header::AUTHORIZATION, h.clone());
            }
            let resp = rb.send().await.map_err(|e| transport(what, e))?;
            if resp.status() == StatusCode::UNAUTHORIZED && !negotiated {
                auth = Some(self.negotiate(repo, access, what).await?);
                negotiated = true;
                continue;
            }
            return Ok(resp);
        }
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
        let resp = check(resp, what).await?;
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
        let bytes = read_capped(resp, MAX_MANIFEST_BYTES, what).await?;
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

/// Read a body of at most `max` bytes: a hostile registry must not make us buffer gigabytes.
async fn read_capped(resp: Response, max: usize, what: &str) -> Result<Bytes, RegistryError> {
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(too_large(
            what,
            resp.content_length().unwrap_or_default() as usize,
        ));
    }
    let mut body = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| transport(what, e))?;
        if body.len() + chunk.len() > max {
            return Err(too_large(what, body.len() + chunk.len()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// At most 5 redirects; never from HTTPS down to plain HTTP, and never to an internal address
/// written as an IP literal or `localhost` (loopback, private, link-local — the instance metadata
/// service at 169.254.169.254 —, shared, unspecified): a hostile registry must not turn the
/// pipeline into a client of the Lambda runtime API or of the VPC. A stand-in host named in
/// `insecure` (plain HTTP on loopback in tests) is allowed. Names that *resolve* to internal
/// addresses are not caught here (no resolver hook covers the token client too).
fn redirect_policy(insecure: Vec<String>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > 5 {
            return attempt.error("refused to follow more than 5 redirects");
        }
        let url = attempt.url();
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return attempt.error("refused a redirect without a host"),
        };
        if insecure.contains(&host) {
            return attempt.follow();
        }
        if url.scheme() != "https" {
            let why = format!("refused a redirect to plain {} at {host}", url.scheme());
            return attempt.error(why);
        }
        if is_internal(url) {
            return attempt.error(format!("refused a redirect to the internal address {host}"));
        }
        attempt.follow()
    })
}

/// Whether `url` names an internal address literally.
fn is_internal(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => internal_v4(ip),
        Some(url::Host::Ipv6(ip)) => {
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some_and(internal_v4)
        }
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        None => true,
    }
}

/// Loopback, private, link-local, shared (100.64/10), unspecified or broadcast.
fn internal_v4(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || (a == 100 && (64..128).contains(&b))
}

/// A transport failure (no HTTP answer): refused, reset, timed out. Always transient.
fn transport(what: &str, e: reqwest::Error) -> RegistryError {
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

/// Turn a non-success answer into the matching error; pass successes through.
async fn check(resp: Response, what: &str) -> Result<Response, RegistryError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = retry_after(resp.headers());
    // An error body larger than the bound is not read at all: the status alone is reported.
    let body = read_capped(resp, MAX_ERROR_BODY, what)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    Err(status_error(status, what, &body, retry_after))
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
                let resp = check(resp, &what).await?;
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
                let resp = self
                    .send(repo, Access::Push, &what, |c| {
                        c.put(&url)
                            .header(header::CONTENT_TYPE, &manifest.media_type)
                            .body(manifest.bytes.clone())
                    })
                    .await?;
                let resp = check(resp, &what).await?;
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
                let resp = check(resp, &what).await?;
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
        let what = format!("blob {}@{digest}", repo.repo_path());
        let url = format!("{}/blobs/{digest}", self.base(repo));
        let resp = self
            .config
            .retry
            .run("get_blob", || async {
                check(
                    self.send(repo, Access::Pull, &what, |c| c.get(&url))
                        .await?,
                    &what,
                )
                .await
            })
            .await?;
        let size = resp.content_length();
        let stream = resp
            .bytes_stream()
            .map_err(move |e| transport(&what, e))
            .boxed();
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
        let query = [("mount", digest.as_str()), ("from", from.repository())];
        self.config
            .retry
            .run("mount_blob", || async {
                let resp = self
                    .send(repo, Access::Push, &what, |c| {
                        c.post(&url).query(&query).header(header::CONTENT_LENGTH, 0)
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
                        {
                            let _ = self
                                .send(repo, Access::Push, &what, |c| {
                                    c.request(Method::DELETE, u.clone())
                                })
                                .await;
                        }
                        Ok(false)
                    }
                    _ => check(resp, &what).await.map(|_| false),
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
        let resp = self
            .config
            .retry
            .run("start_upload", || async {
                check(
                    self.send(repo, Access::Push, &what, |c| {
                        c.post(&url).header(header::CONTENT_LENGTH, 0)
                    })
                    .await?,
                    &what,
                )
                .await
            })
            .await?;
        let put = upload_url(&url, &location(&resp, &what)?, digest)?;
        // Credentials go only to the registry itself, never to a host its Location names.
        let put_host = match (put.host_str(), put.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => String::new(),
        };
        let same_host = normalise_host(&put_host) == normalise_host(repo.api_host());
        // One PUT with the whole body: the upload commits only if every byte arrives and
        // hashes to `digest`, so a failure half-way leaves nothing behind. The body cannot be
        // replayed, so this request is not retried here: the caller retries the whole transfer.
        let mut rb = self
            .http
            .put(put)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(body.stream));
        if same_host && let Some(h) = self.cached_auth(repo, Access::Push).await {
            rb = rb.header(header::AUTHORIZATION, h);
        }
        let resp = rb.send().await.map_err(|e| transport(&what, e))?;
        check(resp, &what).await.map(|_| ())
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
                    let resp = check(resp, &what).await?;
                    let next = resp
                        .headers()
                        .get(header::LINK)
                        .and_then(|v| v.to_str().ok())
                        .and_then(next_link);
                    let bytes = read_capped(resp, MAX_MANIFEST_BYTES, &what).await?;
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
                let resp = check(resp, &what).await?;
                let bytes = read_capped(resp, MAX_MANIFEST_BYTES, &what).await?;
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

    use crate::testing::{FaultServer, answer};
    use std::sync::Mutex as StdMutex;

    impl FaultServer {
        fn registry(&self, creds: StaticCredentials) -> HttpRegistry {
            let config = HttpConfig {
                insecure_hosts: vec![self.host.clone()],
                retry: RetryPolicy {
                    max_retries: 3,
                    min_delay: Duration::from_millis(1),
                    max_delay: Duration::from_secs(5),
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

    #[tokio::test]
    async fn redirects_to_plain_http_or_internal_addresses_are_refused_and_never_followed() {
        let elsewhere = FaultServer::start(|_, _| answer("200 OK", &[])).await;
        let target = elsewhere.host.clone();
        let srv = FaultServer::start(move |_, head| {
            let to = if head.contains("/blobs/sha256:") {
                format!("http://{target}/steal")
            } else {
                format!("https://{target}/steal")
            };
            answer("307 Temporary Redirect", &[&format!("Location: {to}")])
        })
        .await;
        let mut creds = StaticCredentials::default();
        creds.insert(
            &srv.host,
            Credentials::Basic {
                username: "u".into(),
                password: "secret".into(),
            },
        );
        let reg = srv.registry(creds);
        // Plain HTTP elsewhere: refused at once, not retried, and the other host hears nothing.
        let err = reg
            .get_blob(&srv.repo(), &Digest::of(b"x"))
            .await
            .err()
            .expect("refused");
        assert_eq!(
            err.error_type(),
            promotion_core::error::ErrorType::RegistryProtocol,
            "{err}"
        );
        assert!(
            err.to_string().contains("refused a redirect to plain http"),
            "{err}"
        );
        // HTTPS to a loopback literal (the Lambda runtime API, the metadata service): refused.
        let err = reg.get_manifest(&srv.repo(), "1").await.unwrap_err();
        assert!(err.to_string().contains("internal address"), "{err}");
        assert!(
            elsewhere.requests().is_empty(),
            "{:?}",
            elsewhere.requests()
        );
        assert_eq!(srv.requests().len(), 2, "one request each, no retries");
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
}
