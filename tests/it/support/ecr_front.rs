//! An ECR-faithful front: a small HTTP proxy in front of one real `docker-registry`
//! (distribution 2.8) that adds what Amazon ECR does and distribution does not.
//!
//! **This is a hand-written stand-in.** No program available here behaves like ECR's registry
//! endpoint: distribution 2.8 has no referrers API, mounts any blob it holds, accepts chunked
//! uploads, media types with parameters, moving tags and any number of manifest PUTs, and its
//! htpasswd (bcrypt) cannot hold a 2,000-character ECR token (test-infra.md §1). So the real
//! distribution server keeps doing storage and the protocol, and this front only decides, before
//! or after forwarding, what ECR would answer differently. Every behaviour is switchable
//! ([`FrontConfig`]) and names its source where it is implemented; the sources are in
//! ../shared/reference/aws-oci-facts.md §4 and its 2026 update unless a comment says otherwise:
//!
//! 1. the OCI 1.1 referrers API and `OCI-Subject` (ECR since 2024-06-27; distribution-spec 1.1);
//! 2. blob mounting only of blobs a manifest of the source repository references (ECR
//!    `BLOB_MOUNTING`, since 2026-01-20; aws/containers-roadmap#2860), else a new upload session;
//! 3. the body of every `PATCH` after the first in an upload session silently dropped
//!    (aws/containers-roadmap#2831);
//! 4. media types with parameters (`;`) refused (sigstore-js#1058, aws/containers-roadmap#2306);
//! 5. tag immutability, `IMMUTABLE` and `IMMUTABLE_WITH_EXCLUSION` with wildcard filters, refused
//!    with ECR's `TAG_INVALID` message (cosign#313, open-bank-oss#8981, containers-roadmap#862);
//! 6. PutImage throttling, 10 per second, answered `429 TOOMANYREQUESTS` (ECR service quotas and
//!    troubleshooting pages);
//! 7. HTTP Basic `AWS:<token>` with a token over 1,000 characters (ECR tokens are ~2,000),
//!    checked here; docker-registry gets its own short credentials, or none;
//! 8. manifests over 4,194,304 bytes refused (PutImage `imageManifest` length constraint);
//! 9. the EventBridge event ECR sends for every manifest PUT and DELETE, put on the `default`
//!    bus of moto's EventBridge, whose rules (the template's patterns) decide what starts an
//!    execution (aws-oci-facts.md §1.1, §1.2 and the 2026 update: one `ECR Image Action` per
//!    manifest of a multi-arch push; `ECR Referrer Action` for a manifest with a subject, as the
//!    OCI 1.1 announcement shows).
//!
//! What it records for assertions: every request (method, path, status), the bytes of blob
//! uploads per repository (received from the client, dropped or not), the 429s it gave, its
//! mount decisions, the events it put, and when each manifest was pushed (for the Inspector
//! coverage stand-in, tests/it/support/inspector.rs).
//!
//! It runs on its own tokio runtime thread (hyper 1 server, reqwest to the upstream), so blocking
//! tests use it like any registry; it stops when dropped. Plain HTTP on 127.0.0.1, random port.
//! Blob bodies are streamed both ways; only manifests are buffered.

use super::registry::TestRegistry;
use super::sha256_digest;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use http_body_util::{BodyExt as _, BodyStream, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// ECR's documented manifest limit: PutImage's `imageManifest` is at most 4,194,304 characters
/// (AWS API reference, PutImage; aws-oci-facts.md §4 "Quotas").
pub const ECR_MAX_MANIFEST_BYTES: usize = 4_194_304;

/// Every manifest media type, so docker-registry never refuses or down-converts a read
/// (test-infra.md §1 "Accept header").
const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Which of ECR's behaviours the front adds, each switchable; [`FrontConfig::ecr`] is ECR as it
/// behaves with the `BLOB_MOUNTING` account setting enabled. Tests switch one off with
/// `FrontConfig { referrers_api: false, ..FrontConfig::ecr() }`.
#[derive(Clone, Debug)]
pub struct FrontConfig {
    /// 1. Answer `GET /v2/<name>/referrers/<digest>` and send `OCI-Subject` (off: docker-registry's
    ///    404, the client falls back to the `sha256-<hex>` tag).
    pub referrers_api: bool,
    /// 2. Mount only blobs that a manifest of the `from` repository references (off: every mount
    ///    request is refused with a new upload session, ECR without `BLOB_MOUNTING`).
    pub blob_mounting: bool,
    /// 3. Drop the body of every `PATCH` after the first in an upload session.
    pub drop_later_patch_bodies: bool,
    /// 4. Refuse manifests whose `Content-Type` or media type fields carry parameters (`;`).
    pub refuse_media_type_parameters: bool,
    /// 5. Immutable repositories (prefix match on the repository name).
    pub tag_immutability: Vec<Immutability>,
    /// 6. PutImage (manifest PUT) throttling.
    pub put_image_throttle: Option<Throttle>,
    /// 7. The ECR password clients must send as HTTP Basic `AWS:<password>` (over 1,000
    ///    characters); `None`: anonymous, as docker-registry is.
    pub password: Option<String>,
    /// 8. Refuse manifest PUTs larger than this many bytes.
    pub max_manifest_bytes: Option<usize>,
    /// 9. Where to put the events ECR would send (`None`: no events).
    pub events: Option<EventBridge>,
}

/// An EventBridge API endpoint (moto_server) and the account and Region the events name.
#[derive(Clone, Debug)]
pub struct EventBridge {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The Region the request is signed for (moto keeps one backend per Region).
    pub region: String,
}

impl FrontConfig {
    /// Every behaviour on, as ECR behaves (with `BLOB_MOUNTING` enabled): referrers API, mount
    /// rule, dropped `PATCH` bodies, no media type parameters, PutImage at 10/s (burst 10),
    /// a fresh ~2,000-character token, 4 MiB manifests. Repositories are `MUTABLE`, ECR's
    /// default: add [`Immutability`] rules where a test needs them.
    pub fn ecr() -> Self {
        FrontConfig {
            referrers_api: true,
            blob_mounting: true,
            drop_later_patch_bodies: true,
            refuse_media_type_parameters: true,
            tag_immutability: Vec::new(),
            put_image_throttle: Some(Throttle::ecr()),
            password: Some(ecr_like_token()),
            max_manifest_bytes: Some(ECR_MAX_MANIFEST_BYTES),
            events: None,
        }
    }
}

/// A token bucket on manifest PUTs (ECR's PutImage).
#[derive(Clone, Copy, Debug)]
pub struct Throttle {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size: PUTs that may go through at once after a quiet spell.
    pub burst: u32,
    /// Seconds to name in `Retry-After`; `None` sends no header, as ECR is not documented to.
    pub retry_after: Option<u64>,
}

impl Throttle {
    /// ECR's PutImage quota: 10 per second per account and Region (service quotas page, "Rate of
    /// PutImage requests", adjustable). ECR documents no PutImage burst; the troubleshooting
    /// page describes its throttles as token buckets (GetAuthorizationToken: 20/s refill,
    /// 200 credits). A burst of one second's worth (10) is ASSUMED.
    pub fn ecr() -> Self {
        Throttle {
            per_second: 10.0,
            burst: 10,
            retry_after: None,
        }
    }
}

/// One repository rule of ECR's tag mutability setting.
#[derive(Clone, Debug)]
pub struct Immutability {
    /// Repositories whose name starts with this.
    pub repository_prefix: String,
    /// `imageTagMutabilityExclusionFilters` (`filterType: WILDCARD`, `*` matches any run of
    /// characters): empty is `IMMUTABLE`, else `IMMUTABLE_WITH_EXCLUSION` (ECR allows up to 5).
    pub exclusions: Vec<String>,
}

impl Immutability {
    /// `IMMUTABLE`.
    pub fn immutable(prefix: &str) -> Self {
        Immutability {
            repository_prefix: prefix.to_owned(),
            exclusions: Vec::new(),
        }
    }

    /// `IMMUTABLE_WITH_EXCLUSION` with wildcard `filters` (e.g. `sha256-*`).
    pub fn with_exclusions(prefix: &str, filters: &[&str]) -> Self {
        assert!(filters.len() <= 5, "ECR allows at most 5 exclusion filters");
        Immutability {
            repository_prefix: prefix.to_owned(),
            exclusions: filters.iter().map(|f| (*f).to_owned()).collect(),
        }
    }
}

/// A password shaped like ECR's: the token `GetAuthorizationToken` returns is base64 of
/// `AWS:<password>` and the password is itself ~2,000 base64 characters (aws-oci-facts.md §4
/// "Auth"). Random, so it cannot appear by accident.
pub fn ecr_like_token() -> String {
    let mut raw = vec![0u8; 1500];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// One request the front answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// `GET`, `PUT`, …
    pub method: String,
    /// Path and query as the client sent them.
    pub path: String,
    /// The status the front answered.
    pub status: u16,
}

/// A mount request and what the front did with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountDecision {
    /// The repository mounted into.
    pub repository: String,
    /// The blob.
    pub digest: String,
    /// The `from` repository.
    pub from: String,
    /// Forwarded as a mount (true) or as a plain upload POST (false).
    pub forwarded: bool,
}

/// An event the front put on the bus.
#[derive(Clone, Debug)]
pub struct Emitted {
    /// `ECR Image Action` or `ECR Referrer Action`.
    pub detail_type: String,
    /// The event's `detail`.
    pub detail: Value,
    /// What PutEvents answered: `Ok(event id)` or the failure.
    pub put: Result<String, String>,
}

/// A manifest the front holds, as Inspector's coverage sees ECR images.
#[derive(Clone, Debug)]
pub struct SeenManifest {
    /// The repository.
    pub repository: String,
    /// The manifest's digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its `artifactType`, else its config's media type (`None` for an index).
    pub artifact_type: Option<String>,
    /// When it was first pushed.
    pub pushed_at: std::time::SystemTime,
}

/// A live view of the manifests pushed through a front (shared with its server).
#[derive(Clone)]
pub struct Seen(Arc<State>);

impl Seen {
    /// Every manifest pushed through the front and not deleted since.
    pub fn manifests(&self) -> Vec<SeenManifest> {
        let pushed = self.0.pushed.lock().expect("pushed");
        let mut out: Vec<SeenManifest> = pushed
            .iter()
            .flat_map(|(repo, list)| {
                list.iter().map(move |k| SeenManifest {
                    repository: repo.clone(),
                    digest: k.digest.clone(),
                    media_type: k.descriptor["mediaType"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    artifact_type: k.descriptor["artifactType"].as_str().map(str::to_owned),
                    pushed_at: k.pushed_at,
                })
            })
            .collect();
        out.sort_by_key(|m| m.pushed_at);
        out
    }
}

/// The running front; stopped on drop.
pub struct EcrFront {
    host: String,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EcrFront {
    /// Starts a front for `upstream` (forwarding with its basic-auth credentials, if it has any).
    pub fn start(upstream: &TestRegistry, config: FrontConfig) -> EcrFront {
        if let Some(p) = &config.password {
            assert!(
                p.len() > 1000,
                "the front's password stands in for an ECR token (~2,000 characters): give one \
                 over 1,000 characters (ecr_like_token)"
            );
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the ECR front");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let host = listener.local_addr().expect("front address").to_string();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("build the front's upstream client");
        let state = Arc::new(State {
            config,
            upstream: upstream.host(),
            upstream_auth: upstream
                .credentials()
                .map(|(u, p)| (u.to_owned(), p.to_owned())),
            front: host.clone(),
            client,
            requests: Mutex::default(),
            throttled: AtomicU64::new(0),
            bucket: Mutex::new(None),
            uploaded: Mutex::default(),
            sessions: Mutex::default(),
            pushed: Mutex::default(),
            parsed: Mutex::default(),
            mounts: Mutex::default(),
            emitted: Mutex::default(),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ecr-front-{host}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("the front's tokio runtime");
                rt.block_on(serve(listener, serving, rx));
                rt.shutdown_background();
            })
            .expect("spawn the front's thread");
        EcrFront {
            host,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// The ECR password clients must send (user `AWS`), if the front requires one.
    pub fn password(&self) -> Option<&str> {
        self.state.config.password.as_deref()
    }

    /// `AWS:<password>`, as `PROMOTE_SRC_CREDS` / `PROMOTE_DST_CREDS` take it.
    pub fn creds(&self) -> String {
        format!(
            "AWS:{}",
            self.password().expect("this front requires no password")
        )
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("requests").clone()
    }

    /// How many manifest PUTs were answered 429.
    pub fn throttled(&self) -> u64 {
        self.state.throttled.load(Ordering::SeqCst)
    }

    /// Bytes of blob upload bodies (POST, PATCH, PUT) received for `repository`.
    pub fn uploaded_bytes(&self, repository: &str) -> u64 {
        self.state
            .uploaded
            .lock()
            .expect("uploaded")
            .get(repository)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }

    /// Every mount request and the decision.
    pub fn mounts(&self) -> Vec<MountDecision> {
        self.state.mounts.lock().expect("mounts").clone()
    }

    /// Every event put on the bus so far, in order.
    pub fn emitted(&self) -> Vec<Emitted> {
        self.state.emitted.lock().expect("emitted").clone()
    }

    /// A live view of the manifests pushed through this front.
    pub fn seen(&self) -> Seen {
        Seen(self.state.clone())
    }
}

impl Drop for EcrFront {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A manifest PUT through the front.
struct Known {
    digest: String,
    /// Blobs and child manifests it references.
    references: Vec<String>,
    /// `subject.digest`, for the referrers API.
    subject: Option<String>,
    /// Its descriptor in a referrers answer.
    descriptor: Value,
    /// When it was first pushed.
    pushed_at: std::time::SystemTime,
}

/// An upload session's `PATCH`es.
#[derive(Default)]
struct Session {
    patches: u64,
    /// The end offset docker-registry reported after the first `PATCH`.
    stored: u64,
    /// Bytes dropped since.
    dropped: u64,
}

struct State {
    config: FrontConfig,
    upstream: String,
    upstream_auth: Option<(String, String)>,
    front: String,
    client: reqwest::Client,
    requests: Mutex<Vec<Recorded>>,
    throttled: AtomicU64,
    /// (tokens, when last refilled); `None` until the first PUT (a full bucket).
    bucket: Mutex<Option<(f64, Instant)>>,
    uploaded: Mutex<HashMap<String, Arc<AtomicU64>>>,
    sessions: Mutex<HashMap<String, Session>>,
    /// Manifests PUT through the front, per repository, in PUT order.
    pushed: Mutex<HashMap<String, Vec<Known>>>,
    /// References of manifests read from docker-registry, by digest (manifests by digest never
    /// change).
    parsed: Mutex<HashMap<String, Vec<String>>>,
    mounts: Mutex<Vec<MountDecision>>,
    emitted: Mutex<Vec<Emitted>>,
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let st = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let st = st.clone();
                async move { Ok::<_, Infallible>(handle(st, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The path's shape, as far as the front cares.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Referrers { repo: String, digest: String },
    Manifest { repo: String, reference: String },
    UploadStart { repo: String },
    Upload { repo: String, uuid: String },
    Other,
}

fn route(path: &str) -> Route {
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Route::Other;
    };
    if let Some(i) = rest.find("/blobs/uploads/") {
        let repo = rest[..i].to_owned();
        let uuid = &rest[i + "/blobs/uploads/".len()..];
        return if uuid.is_empty() {
            Route::UploadStart { repo }
        } else {
            Route::Upload {
                repo,
                uuid: uuid.to_owned(),
            }
        };
    }
    if let Some(i) = rest.rfind("/manifests/") {
        return Route::Manifest {
            repo: rest[..i].to_owned(),
            reference: rest[i + "/manifests/".len()..].to_owned(),
        };
    }
    if let Some(i) = rest.rfind("/referrers/") {
        return Route::Referrers {
            repo: rest[..i].to_owned(),
            digest: rest[i + "/referrers/".len()..].to_owned(),
        };
    }
    Route::Other
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let resp = dispatch(&st, req).await;
    st.requests.lock().expect("requests").push(Recorded {
        method: method.to_string(),
        path: path_and_query,
        status: resp.status().as_u16(),
    });
    resp
}

async fn dispatch(st: &State, req: Request<Incoming>) -> Response<Body> {
    if let Some(refused) = check_auth(st, req.headers()) {
        return refused;
    }
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let method = req.method().clone();
    match route(&path) {
        Route::Referrers { repo, digest } if method == Method::GET && st.config.referrers_api => {
            referrers(st, &repo, &digest, &query)
        }
        Route::Manifest { repo, reference } if method == Method::PUT => {
            put_manifest(st, req, &repo, &reference).await
        }
        Route::Manifest { repo, reference } if method == Method::DELETE => {
            let resp = forward_streaming(st, req, None).await;
            if resp.status() == StatusCode::ACCEPTED {
                // Forget a deleted referrer (and what it referenced).
                if let Some(list) = st.pushed.lock().expect("pushed").get_mut(&repo) {
                    list.retain(|k| k.digest != reference);
                }
                // ECR Image Action, action-type DELETE (aws-oci-facts.md §1.1). The registry
                // API deletes by digest only; which other fields ECR sends is ASSUMED.
                let detail = json!({"result": "SUCCESS", "repository-name": repo,
                    "image-digest": reference, "action-type": "DELETE"});
                emit(st, "ECR Image Action", detail).await;
            }
            resp
        }
        Route::UploadStart { repo } if method == Method::POST => {
            upload_start(st, req, &repo, &query).await
        }
        Route::Upload { repo, uuid } if method == Method::PATCH => {
            patch(st, req, &repo, &uuid).await
        }
        Route::Upload { repo, .. } if method == Method::PUT => {
            let counter = st.counter(&repo);
            forward_streaming(st, req, Some(counter)).await
        }
        _ => forward_streaming(st, req, None).await,
    }
}

impl State {
    fn counter(&self, repo: &str) -> Arc<AtomicU64> {
        self.uploaded
            .lock()
            .expect("uploaded")
            .entry(repo.to_owned())
            .or_default()
            .clone()
    }
}

// ---- 7. Authentication ---------------------------------------------------------------------

/// ECR's registry endpoint takes HTTP Basic `AWS:<password>`, the password being the ~2,000
/// characters `GetAuthorizationToken` returns base64-encoded with the `AWS:` prefix
/// (aws-oci-facts.md §4 "Auth"; AWS ECR user guide, "Registry authentication"). It is checked
/// here because docker-registry's htpasswd cannot: bcrypt reads 72 bytes and `htpasswd` refuses
/// passwords over 256 characters (test-infra.md §1).
///
/// The 401's shape (`WWW-Authenticate: Basic realm="https://<registry>/",service=
/// "ecr.amazonaws.com"`, body `Not Authorized`) is ASSUMED from curl transcripts of ECR; only
/// the status and the Basic challenge matter to clients.
fn check_auth(st: &State, headers: &HeaderMap) -> Option<Response<Body>> {
    let password = st.config.password.as_deref()?;
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(str::trim);
    if given == Some(expected.as_str()) {
        return None;
    }
    let mut resp = plain(StatusCode::UNAUTHORIZED, "Not Authorized\n", "text/plain");
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        value(&format!(
            "Basic realm=\"http://{}/\",service=\"ecr.amazonaws.com\"",
            st.front
        )),
    );
    Some(resp)
}

// ---- 1. Referrers API --------------------------------------------------------------------------

/// `GET /v2/<name>/referrers/<digest>[?artifactType=]`: 200 and an OCI index of the manifests
/// whose `subject` is `digest`, each descriptor with `artifactType` (the manifest's, else its
/// config media type) and the manifest's `annotations`; filtered answers carry
/// `OCI-Filters-Applied: artifactType`; no referrers is an empty index, never a 404
/// (distribution-spec v1.1 "Listing Referrers"; ECR supports it since 2024-06-27,
/// aws-oci-facts.md §4 "OCI 1.1" and §6). Only manifests PUT through this front are known.
fn referrers(st: &State, repo: &str, digest: &str, query: &str) -> Response<Body> {
    let wanted: Option<String> = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "artifactType")
        .map(|(_, v)| v.into_owned());
    let manifests: Vec<Value> = st
        .pushed
        .lock()
        .expect("pushed")
        .get(repo)
        .into_iter()
        .flatten()
        .filter(|k| k.subject.as_deref() == Some(digest))
        .filter(|k| {
            wanted
                .as_deref()
                .is_none_or(|w| k.descriptor["artifactType"] == w)
        })
        .map(|k| k.descriptor.clone())
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    let mut resp = plain(StatusCode::OK, &index.to_string(), OCI_INDEX);
    if wanted.is_some() {
        resp.headers_mut().insert(
            HeaderName::from_static("oci-filters-applied"),
            HeaderValue::from_static("artifactType"),
        );
    }
    resp
}

// ---- Manifest PUT: 6. throttling, 8. size, 4. media types, 5. immutability, 1. OCI-Subject -----

async fn put_manifest(
    st: &State,
    req: Request<Incoming>,
    repo: &str,
    reference: &str,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    // Manifests are buffered (the rules read them); read the whole body before answering so
    // that a refusal reaches the client instead of a reset connection.
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return plain(StatusCode::BAD_REQUEST, &e.to_string(), "text/plain"),
    };
    if let Some(refused) = throttle(st) {
        return refused;
    }
    if let Some(max) = st.config.max_manifest_bytes
        && bytes.len() > max
    {
        // PutImage: "imageManifest … Length Constraints: Minimum length of 1. Maximum length of
        // 4194304" (AWS API reference). ECR answers its manifest constraint failures on the
        // registry API as 405 UNSUPPORTED "Invalid parameter at 'ImageManifest' failed to
        // satisfy constraint: '…'" (seen in openai/tart#890, chainguard-dev/apko#450,
        // ko-build/ko#878); that ECR uses this shape for the length, and the constraint's
        // wording, are ASSUMED. (docker-registry 2.8 refuses over 4 MiB as well, with 400
        // MANIFEST_INVALID "http: request body too large": the front answers first, in ECR's
        // shape.)
        return ecr_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            &format!(
                "Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Member \
                 must have length less than or equal to {max}'"
            ),
        );
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let doc: Option<Value> = serde_json::from_slice(&bytes).ok();
    if st.config.refuse_media_type_parameters
        && let Some(bad) = media_type_with_parameters(&content_type, doc.as_ref())
    {
        // ECR refuses media types containing `;` (sigstore-js#1058: "the issue of ECR not
        // accepting content types which contain a `;` character remains";
        // aws/containers-roadmap#2306 for `artifactType` and layer `mediaType`;
        // aws-oci-facts.md §4 "OCI gaps" and 2026 update). The status and code follow ECR's
        // other manifest refusals (405 UNSUPPORTED, above); the message is ASSUMED.
        return ecr_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            &format!(
                "Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid \
                 media type {bad}'"
            ),
        );
    }
    let digest = sha256_digest(&bytes);
    if !reference.starts_with("sha256:")
        && let Some(refused) = immutable_tag(st, repo, reference, &digest).await
    {
        return refused;
    }
    let resp = match forward(st, &parts, Some(reqwest::Body::from(bytes.clone()))).await {
        Ok(r) => r,
        Err(e) => return bad_gateway(&e),
    };
    let created = resp.status() == StatusCode::CREATED;
    let mut out = relay(st, resp);
    if created && let Some(doc) = doc {
        let subject = doc["subject"]["digest"].as_str().map(str::to_owned);
        if st.config.referrers_api
            && let Some(s) = &subject
        {
            // "OCI-Subject: <digest>" tells the client the registry processed `subject`, so it
            // writes no fallback tag (distribution-spec v1.1 "Pushing Manifests with Subject").
            out.headers_mut()
                .insert(HeaderName::from_static("oci-subject"), value(s));
        }
        let media_type = doc["mediaType"]
            .as_str()
            .map_or(content_type.clone(), str::to_owned);
        let artifact_type = doc["artifactType"]
            .as_str()
            .or_else(|| doc["config"]["mediaType"].as_str())
            .map(str::to_owned);
        let mut descriptor =
            json!({"mediaType": media_type, "digest": digest, "size": bytes.len()});
        if let Some(t) = artifact_type {
            descriptor["artifactType"] = json!(t);
        }
        if doc["annotations"].is_object() {
            descriptor["annotations"] = doc["annotations"].clone();
        }
        let event = push_event(repo, reference, &digest, &descriptor, subject.is_some());
        {
            let mut pushed = st.pushed.lock().expect("pushed");
            let list = pushed.entry(repo.to_owned()).or_default();
            if !list.iter().any(|k| k.digest == digest) {
                list.push(Known {
                    digest,
                    references: references_of(&doc),
                    subject,
                    descriptor,
                    pushed_at: std::time::SystemTime::now(),
                });
            }
        }
        // Put before answering, so that when the client's PUT returns its event is already
        // routed (ECR's delivery is asynchronous and best-effort: the tests wait for nothing).
        emit(st, event.0, event.1).await;
    }
    out
}

// ---- 9. Events ---------------------------------------------------------------------------------

/// The event ECR sends for a successful manifest PUT: (detail-type, detail).
///
/// `ECR Image Action` (aws-oci-facts.md §1.1, from the ECR user guide's "Amazon ECR events and
/// EventBridge"): `result`, `repository-name` (the plain name), `image-digest`, `action-type`
/// `PUSH`, `image-tag`, `manifest-media-type`, `artifact-media-type` (the config's media type,
/// or the manifest's `artifactType`). Each manifest of a multi-arch push is its own event, the
/// platform manifests (pushed by digest) with an empty `image-tag` (§4 2026 update); an index
/// has no config, so no `artifact-media-type` (ASSUMED).
///
/// A manifest with a `subject` is an `ECR Referrer Action` with the same fields (the OCI 1.1
/// announcement's example; §1.2 says ECR's documentation does not settle it, and the template's
/// approval rule accepts both detail-types). Its `image-digest` is the referrer's own digest
/// (ASSUMED: AWS does not say; the gate accepts the subject's as well).
fn push_event(
    repo: &str,
    reference: &str,
    digest: &str,
    descriptor: &Value,
    referrer: bool,
) -> (&'static str, Value) {
    let tag = if reference.starts_with("sha256:") {
        ""
    } else {
        reference
    };
    let mut detail = json!({"result": "SUCCESS", "repository-name": repo,
        "image-digest": digest, "action-type": "PUSH", "image-tag": tag,
        "manifest-media-type": descriptor["mediaType"]});
    if let Some(t) = descriptor["artifactType"].as_str() {
        detail["artifact-media-type"] = json!(t);
    }
    let detail_type = if referrer {
        "ECR Referrer Action"
    } else {
        "ECR Image Action"
    };
    (detail_type, detail)
}

/// Puts one `aws.ecr` event on the `default` bus (EventBridge's JSON protocol,
/// `AWSEvents.PutEvents`) and records the answer. The signature is moto's usual dummy: moto
/// reads the Region from the credential scope and checks nothing else.
async fn emit(st: &State, detail_type: &str, detail: Value) {
    let Some(bus) = &st.config.events else {
        return;
    };
    let body = json!({"Entries": [{"Source": "aws.ecr", "DetailType": detail_type,
        "Detail": detail.to_string(), "Resources": [], "EventBusName": "default"}]});
    let put = async {
        let resp = st
            .client
            .post(&bus.endpoint)
            .header("X-Amz-Target", "AWSEvents.PutEvents")
            .header(header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .header(
                header::AUTHORIZATION,
                format!(
                    "AWS4-HMAC-SHA256 Credential=test/20260101/{}/events/aws4_request, \
                     SignedHeaders=host, Signature=0",
                    bus.region
                ),
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let answer: Value = resp.json().await.map_err(|e| e.to_string())?;
        match answer["Entries"][0]["EventId"].as_str() {
            Some(id) if status.is_success() && answer["FailedEntryCount"] == 0 => Ok(id.to_owned()),
            _ => Err(format!("PutEvents answered {status}: {answer}")),
        }
    }
    .await;
    st.emitted.lock().expect("emitted").push(Emitted {
        detail_type: detail_type.to_owned(),
        detail,
        put,
    });
}

/// Behaviour 6, PutImage throttling: a token bucket of `burst` tokens refilled at `per_second`.
/// ECR's quota is 10 PutImage per second, adjustable (service quotas page; aws-oci-facts.md §4
/// "Quotas": "PutImage is the bulk-retag bottleneck"). A throttled call gets HTTP 429; with
/// Docker ≥ 1.12 it shows as `TOOMANYREQUESTS: Rate exceeded` (ECR troubleshooting page, "HTTP
/// 429: Too Many Requests or ThrottleException", as quoted in mitogen-hq/mitogen#790), i.e. the
/// distribution error `{"code":"TOOMANYREQUESTS","message":"Rate exceeded"}`. ECR documents no
/// `Retry-After`, so none is sent unless a test asks for one.
fn throttle(st: &State) -> Option<Response<Body>> {
    let t = st.config.put_image_throttle?;
    let mut bucket = st.bucket.lock().expect("bucket");
    let now = Instant::now();
    let (tokens, last) = bucket.get_or_insert((f64::from(t.burst), now));
    *tokens =
        (*tokens + now.duration_since(*last).as_secs_f64() * t.per_second).min(f64::from(t.burst));
    *last = now;
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        return None;
    }
    drop(bucket);
    st.throttled.fetch_add(1, Ordering::SeqCst);
    let mut resp = ecr_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TOOMANYREQUESTS",
        "Rate exceeded",
    );
    if let Some(s) = t.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, value(&s.to_string()));
    }
    Some(resp)
}

/// Behaviour 4: the first media type carrying parameters: the `Content-Type` of the PUT, or a
/// `mediaType` / `artifactType` of the manifest, its config, layers, children or subject.
fn media_type_with_parameters(content_type: &str, doc: Option<&Value>) -> Option<String> {
    if content_type.contains(';') {
        return Some(content_type.to_owned());
    }
    let doc = doc?;
    let mut candidates = vec![&doc["mediaType"], &doc["artifactType"]];
    candidates.push(&doc["config"]["mediaType"]);
    candidates.push(&doc["subject"]["mediaType"]);
    for list in ["layers", "manifests", "blobs"] {
        for d in doc[list].as_array().into_iter().flatten() {
            candidates.push(&d["mediaType"]);
            candidates.push(&d["artifactType"]);
        }
    }
    candidates
        .into_iter()
        .filter_map(Value::as_str)
        .find(|t| t.contains(';'))
        .map(str::to_owned)
}

/// Behaviour 5, tag immutability: in an `IMMUTABLE` repository an existing tag cannot be moved
/// to another digest; with `IMMUTABLE_WITH_EXCLUSION` the tags matching a wildcard filter stay
/// mutable (aws-oci-facts.md §4 "Tag immutability" and 2026 update, ECR since 2025-07). The
/// refusal is ECR's `TAG_INVALID` with "The image tag '<tag>' already exists in the '<repo>'
/// repository and cannot be overwritten because the tag is immutable" (cosign#313,
/// open-bank-oss#8981; docker shows it as "tag invalid: …", aws/containers-roadmap#862). The
/// status, 400, is distribution's for `TAG_INVALID` and ASSUMED for ECR. Pushing the same digest
/// again is allowed.
async fn immutable_tag(st: &State, repo: &str, tag: &str, digest: &str) -> Option<Response<Body>> {
    let rule = st
        .config
        .tag_immutability
        .iter()
        .find(|r| repo.starts_with(&r.repository_prefix))?;
    if rule.exclusions.iter().any(|f| wildcard_match(f, tag)) {
        return None;
    }
    let current = upstream_request(st, Method::HEAD, &format!("/v2/{repo}/manifests/{tag}"))
        .header(header::ACCEPT, ACCEPT_ALL)
        .send()
        .await
        .ok()?;
    if current.status() != StatusCode::OK {
        return None;
    }
    let existing = current
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if existing == digest {
        return None;
    }
    Some(ecr_error(
        StatusCode::BAD_REQUEST,
        "TAG_INVALID",
        &format!(
            "The image tag '{tag}' already exists in the '{repo}' repository and cannot be \
             overwritten because the tag is immutable."
        ),
    ))
}

/// ECR's `WILDCARD` filter: `*` matches any run of characters, everything else itself.
fn wildcard_match(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Digests a manifest references: config, layers (and `blobs`), child manifests.
fn references_of(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(d) = doc["config"]["digest"].as_str() {
        out.push(d.to_owned());
    }
    for list in ["layers", "manifests", "blobs"] {
        for d in doc[list].as_array().into_iter().flatten() {
            if let Some(d) = d["digest"].as_str() {
                out.push(d.to_owned());
            }
        }
    }
    out
}

// ---- 2. Blob mounting ------------------------------------------------------------------------

/// `POST /v2/<dst>/blobs/uploads/?mount=<digest>&from=<src>`. ECR mounts (201) only with the
/// `BLOB_MOUNTING` account setting enabled (since 2026-01-20, opt-in per Region; AWS ECR user
/// guide "Blob mounting") and only a blob that a manifest in the source repository references;
/// otherwise it opens an upload session (202) and the client must upload
/// (aws/containers-roadmap#2860; aws-oci-facts.md §4 "Cross-repo blob mount").
/// docker-registry mounts any blob the source repository holds, so the front decides first and,
/// refusing, forwards a plain POST without `mount`/`from`.
///
/// "Referenced" means: by a manifest PUT through this front into `src` (config, layers, child
/// manifests of an index), or by a manifest reachable from one of `src`'s tags in
/// docker-registry (tags → manifests → index children), so fixtures pushed straight to
/// docker-registry count as ECR would count them. Untagged manifests pushed around the front
/// are not seen.
async fn upload_start(
    st: &State,
    req: Request<Incoming>,
    repo: &str,
    query: &str,
) -> Response<Body> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let counter = st.counter(repo);
    let (Some(digest), Some(from)) = (get("mount"), get("from")) else {
        return forward_streaming(st, req, Some(counter)).await;
    };
    let mount = st.config.blob_mounting && referenced(st, &from, &digest).await;
    st.mounts.lock().expect("mounts").push(MountDecision {
        repository: repo.to_owned(),
        digest: digest.clone(),
        from: from.clone(),
        forwarded: mount,
    });
    if mount {
        return forward_streaming(st, req, Some(counter)).await;
    }
    let rest: Vec<&(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "mount" && k != "from")
        .collect();
    let mut path = format!("/v2/{repo}/blobs/uploads/");
    if !rest.is_empty() {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in rest {
            q.append_pair(k, v);
        }
        path.push('?');
        path.push_str(&q.finish());
    }
    let (mut parts, body) = req.into_parts();
    parts.uri = path.parse().expect("an upload path");
    let body = counted(body, counter);
    match forward(st, &parts, Some(reqwest::Body::wrap_stream(body))).await {
        Ok(r) => relay(st, r),
        Err(e) => bad_gateway(&e),
    }
}

/// Whether a manifest of `repo` references `digest` (see [`upload_start`]).
async fn referenced(st: &State, repo: &str, digest: &str) -> bool {
    let through_front = st
        .pushed
        .lock()
        .expect("pushed")
        .get(repo)
        .is_some_and(|list| {
            list.iter()
                .any(|k| k.references.iter().any(|r| r == digest))
        });
    if through_front {
        return true;
    }
    let Ok(resp) = upstream_request(st, Method::GET, &format!("/v2/{repo}/tags/list?n=10000"))
        .send()
        .await
    else {
        return false;
    };
    let Ok(tags) = resp.json::<Value>().await else {
        return false;
    };
    let mut queue: Vec<String> = tags["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    let mut seen = std::collections::HashSet::new();
    while let Some(reference) = queue.pop() {
        if !seen.insert(reference.clone()) {
            continue;
        }
        let cached = st.parsed.lock().expect("parsed").get(&reference).cloned();
        let refs = match cached {
            Some(r) => r,
            None => {
                let Some((manifest_digest, refs)) = read_references(st, repo, &reference).await
                else {
                    continue;
                };
                st.parsed
                    .lock()
                    .expect("parsed")
                    .insert(manifest_digest, refs.clone());
                refs
            }
        };
        if refs.iter().any(|r| r == digest) {
            return true;
        }
        // Children of an index are manifests: walk them too (a blob of a platform image counts).
        queue.extend(refs);
    }
    false
}

/// The digest and references of the manifest at `reference` in docker-registry; `None` when it
/// is not a manifest (a blob digest queued as a possible child answers 404).
async fn read_references(st: &State, repo: &str, reference: &str) -> Option<(String, Vec<String>)> {
    let resp = upstream_request(
        st,
        Method::GET,
        &format!("/v2/{repo}/manifests/{reference}"),
    )
    .header(header::ACCEPT, ACCEPT_ALL)
    .send()
    .await
    .ok()?;
    if resp.status() != StatusCode::OK {
        return None;
    }
    let bytes = resp.bytes().await.ok()?;
    let doc: Value = serde_json::from_slice(&bytes).ok()?;
    Some((sha256_digest(&bytes), references_of(&doc)))
}

// ---- 3. Chunked uploads ----------------------------------------------------------------------

/// `PATCH /v2/<name>/blobs/uploads/<uuid>`: the first one in a session is forwarded; the body of
/// every later one is read and dropped, and the answer claims it was stored (202, `Range` up to
/// the bytes the client sent, `Location` the session it named). ECR behaves so with chunked
/// uploads (aws/containers-roadmap#2831, 2026-06; tart#273; kitops PR #822; aws-oci-facts.md §4
/// "Blob upload"), so a client uploading in several chunks ends with a digest mismatch at the
/// closing `PUT`. (ECR also answers an intermediate `PATCH` with 201 instead of 202; the front
/// keeps 202 so that only the dropped bytes differ.)
async fn patch(st: &State, req: Request<Incoming>, repo: &str, uuid: &str) -> Response<Body> {
    let counter = st.counter(repo);
    let first = {
        let mut sessions = st.sessions.lock().expect("sessions");
        let s = sessions.entry(uuid.to_owned()).or_default();
        s.patches += 1;
        s.patches == 1
    };
    if first || !st.config.drop_later_patch_bodies {
        let resp = forward_streaming(st, req, Some(counter)).await;
        if first && let Some(end) = range_end(resp.headers()) {
            st.sessions
                .lock()
                .expect("sessions")
                .entry(uuid.to_owned())
                .or_default()
                .stored = end;
        }
        return resp;
    }
    let location = format!(
        "http://{}{}",
        st.front,
        req.uri()
            .path_and_query()
            .map_or(req.uri().path(), |p| p.as_str())
    );
    let mut body = req.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    n += d.len() as u64;
                }
            }
            Err(e) => return plain(StatusCode::BAD_REQUEST, &e.to_string(), "text/plain"),
        }
    }
    counter.fetch_add(n, Ordering::SeqCst);
    let end = {
        let mut sessions = st.sessions.lock().expect("sessions");
        let s = sessions.entry(uuid.to_owned()).or_default();
        s.dropped += n;
        s.stored + s.dropped
    };
    let mut resp = plain(StatusCode::ACCEPTED, "", "text/plain");
    let h = resp.headers_mut();
    h.remove(header::CONTENT_TYPE);
    h.insert(header::LOCATION, value(&location));
    h.insert(
        header::RANGE,
        value(&format!("0-{}", end.saturating_sub(1))),
    );
    h.insert(HeaderName::from_static("docker-upload-uuid"), value(uuid));
    resp
}

/// The byte count a `Range: 0-<last>` upload answer reports (`last + 1`).
fn range_end(h: &HeaderMap) -> Option<u64> {
    let v = h.get(header::RANGE)?.to_str().ok()?;
    let last: u64 = v.split('-').nth(1)?.trim().parse().ok()?;
    Some(last + 1)
}

// ---- Forwarding ------------------------------------------------------------------------------

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded; `Host` and `Authorization` are set by
/// the front itself.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "authorization"
    )
}

fn upstream_request(st: &State, method: Method, path_and_query: &str) -> reqwest::RequestBuilder {
    let rb = st
        .client
        .request(method, format!("http://{}{path_and_query}", st.upstream));
    match &st.upstream_auth {
        Some((u, p)) => rb.basic_auth(u, Some(p)),
        None => rb,
    }
}

/// Forwards a request with its body streamed (counted into `counter` when given).
async fn forward_streaming(
    st: &State,
    req: Request<Incoming>,
    counter: Option<Arc<AtomicU64>>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let has_body = !matches!(parts.method, Method::GET | Method::HEAD | Method::DELETE);
    let body = has_body.then(|| {
        let counter = counter.unwrap_or_default();
        reqwest::Body::wrap_stream(counted(body, counter))
    });
    match forward(st, &parts, body).await {
        Ok(r) => relay(st, r),
        Err(e) => bad_gateway(&e),
    }
}

fn counted(
    body: Incoming,
    counter: Arc<AtomicU64>,
) -> impl futures_util::Stream<Item = Result<Bytes, hyper::Error>> + Send + 'static {
    BodyStream::new(body)
        .try_filter_map(|frame| async move { Ok(frame.into_data().ok()) })
        .inspect_ok(move |b| {
            counter.fetch_add(b.len() as u64, Ordering::SeqCst);
        })
}

async fn forward(
    st: &State,
    parts: &hyper::http::request::Parts,
    body: Option<reqwest::Body>,
) -> Result<reqwest::Response, reqwest::Error> {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let mut rb = upstream_request(st, parts.method.clone(), path_and_query);
    for (name, v) in &parts.headers {
        if !hop_by_hop(name) {
            rb = rb.header(name, v);
        }
    }
    if let Some(b) = body {
        rb = rb.body(b);
    }
    rb.send().await
}

/// The upstream's answer, streamed back: status and headers as they are, but hop-by-hop ones,
/// with `Location` pointing at the front.
fn relay(st: &State, resp: reqwest::Response) -> Response<Body> {
    let mut out = Response::builder().status(resp.status());
    let upstream = format!("//{}", st.upstream);
    let front = format!("//{}", st.front);
    for (name, v) in resp.headers() {
        if hop_by_hop(name) {
            continue;
        }
        if name == header::LOCATION
            && let Ok(s) = v.to_str()
        {
            out = out.header(name, s.replacen(&upstream, &front, 1));
            continue;
        }
        out = out.header(name, v);
    }
    let stream = resp
        .bytes_stream()
        .map_ok(Frame::data)
        .map_err(|e| Box::new(e) as BoxError);
    out.body(StreamBody::new(stream.boxed()).boxed_unsync())
        .expect("a relayed response")
}

// ---- Answers ---------------------------------------------------------------------------------

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("a header value")
}

fn plain(status: StatusCode, body: &str, content_type: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(
            Full::new(Bytes::from(body.to_owned()))
                .map_err(|e: Infallible| match e {})
                .boxed_unsync(),
        )
        .expect("a response")
}

/// A distribution-style error body `{"errors":[{"code","message"}]}`, the shape ECR's registry
/// endpoint answers with (e.g. openai/tart#890).
fn ecr_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = json!({"errors": [{"code": code, "message": message}]});
    plain(status, &body.to_string(), "application/json; charset=utf-8")
}

fn bad_gateway(e: &reqwest::Error) -> Response<Body> {
    plain(
        StatusCode::BAD_GATEWAY,
        &format!("the ECR front cannot reach docker-registry: {e}"),
        "text/plain",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_filters_match_as_ecr_describes() {
        assert!(wildcard_match("sha256-*", "sha256-abc"));
        assert!(wildcard_match("sha256-*", "sha256-abc.sig"));
        assert!(!wildcard_match("sha256-*", "dev-1"));
        assert!(wildcard_match("*-rc*", "1.0-rc2"));
        assert!(wildcard_match("latest", "latest"));
        assert!(!wildcard_match("latest", "latest2"));
        assert!(wildcard_match("a*b*c", "aXbYc"));
        assert!(!wildcard_match("a*b*c", "acb"));
        assert!(!wildcard_match("ab*ba", "aba"));
    }

    #[test]
    fn routes_name_repositories_with_slashes() {
        let s = |v: &str| v.to_owned();
        assert_eq!(
            route("/v2/a/b/manifests/1"),
            Route::Manifest {
                repo: s("a/b"),
                reference: s("1")
            }
        );
        assert_eq!(
            route("/v2/a/b/blobs/uploads/"),
            Route::UploadStart { repo: s("a/b") }
        );
        assert_eq!(
            route("/v2/a/blobs/uploads/u-1"),
            Route::Upload {
                repo: s("a"),
                uuid: s("u-1")
            }
        );
        assert_eq!(
            route("/v2/a/referrers/sha256:x"),
            Route::Referrers {
                repo: s("a"),
                digest: s("sha256:x")
            }
        );
        assert_eq!(route("/v2/"), Route::Other);
    }
}
