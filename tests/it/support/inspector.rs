//! Amazon Inspector for the end-to-end tests: `ListCoverage` answered here for the images an
//! ECR-faithful front holds, everything else (`ListFindings`) forwarded to moto_server.
//!
//! **This is a hand-written stand-in.** moto 5.2.5 has no Inspector2 `ListCoverage` (its
//! inspector2 backend answers findings only: test-infra.md §3), and nothing else available here
//! knows which images a registry holds. It reproduces what the Inspector2 API reference says of
//! `ListCoverage` (filterCriteria `ecrRepositoryName`, `resourceType`, `resourceId` with
//! `EQUALS`/`NOT_EQUALS`; `maxResults` 1–200; `nextToken`; `coveredResources[]` with `accountId`,
//! `resourceId` = `arn:aws:ecr:<region>:<account>:repository/<name>/<digest>`, `resourceType`
//! `AWS_ECR_CONTAINER_IMAGE`, `scanType` `PACKAGE`, `scanStatus{statusCode, reason}`,
//! `lastScannedAt`) and what the Inspector user guide says of ECR enhanced scanning: image
//! manifests in repositories under continuous scanning get a coverage record when pushed, stay
//! `PENDING_INITIAL_SCAN` until their first scan completes (`SUCCESSFUL`, statusCode `ACTIVE`),
//! images of an unsupported operating system are `INACTIVE`/`UNSUPPORTED_OS`, and indexes and
//! non-image artifacts are never scanned (no record for an index; `UNSUPPORTED_MEDIA_TYPE` for
//! an artifact, ASSUMED). A deleted image's record goes with it.
//!
//! The functions reach it through `AWS_ENDPOINT_URL_INSPECTOR2` (the AWS SDKs' service-specific
//! endpoint variable), so nothing in them knows it is there. A filter it does not implement is
//! refused with a `ValidationException` naming this file, never ignored.

use super::ecr_front::{Seen, SeenManifest};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What coverage the stand-in reports.
#[derive(Clone, Debug)]
pub struct CoverageConfig {
    /// Repositories under continuous scanning (name prefixes): the deployment scans quarantine
    /// and trusted.
    pub scanned_prefixes: Vec<String>,
    /// How long after its push an image stays `PENDING_INITIAL_SCAN`.
    pub pending_for: Duration,
    /// Repositories (name prefixes) whose images end `UNSUPPORTED_OS` instead of `SUCCESSFUL`.
    pub unsupported_prefixes: Vec<String>,
    /// The account in the resource ids.
    pub account: String,
    /// The Region in the resource ids.
    pub region: String,
}

/// A running stand-in; stopped on drop.
pub struct InspectorStandIn {
    url: String,
    state: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    config: Mutex<CoverageConfig>,
    seen: Seen,
    moto: String,
    client: reqwest::Client,
    answers: Mutex<Vec<(String, String)>>,
}

/// Image configs Inspector scans (OCI and Docker).
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];
const INDEXES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

impl InspectorStandIn {
    /// Starts on a random loopback port, answering coverage for what `seen` holds and forwarding
    /// the rest to `moto` (`http://127.0.0.1:PORT`).
    pub fn start(moto: &str, seen: Seen, config: CoverageConfig) -> InspectorStandIn {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind Inspector");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(Shared {
            config: Mutex::new(config),
            seen,
            moto: moto.to_owned(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            answers: Mutex::default(),
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let serving = state.clone();
        let thread = std::thread::Builder::new()
            .name("inspector-stand-in".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    loop {
                        let accepted = tokio::select! {
                            _ = &mut rx => return,
                            a = listener.accept() => a,
                        };
                        let Ok((stream, _)) = accepted else { continue };
                        let st = serving.clone();
                        tokio::spawn(async move {
                            let svc = hyper::service::service_fn(move |req| {
                                let st = st.clone();
                                async move { Ok::<_, Infallible>(handle(&st, req).await) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                });
            })
            .expect("spawn");
        InspectorStandIn {
            url,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_INSPECTOR2`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Every coverage record answered: (resource id, reason), in order.
    pub fn answers(&self) -> Vec<(String, String)> {
        self.state.answers.lock().expect("answers").clone()
    }

    /// Changes how images are reported from now on.
    pub fn configure(&self, change: impl FnOnce(&mut CoverageConfig)) {
        change(&mut self.state.config.lock().expect("config"));
    }
}

impl Drop for InspectorStandIn {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

fn answer(status: StatusCode, body: &Value, headers: &[(&str, &str)]) -> Response<Body> {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body.to_string())).boxed_unsync())
        .expect("response")
}

fn validation(message: &str) -> Response<Body> {
    answer(
        StatusCode::BAD_REQUEST,
        &json!({"message": message}),
        &[("x-amzn-errortype", "ValidationException")],
    )
}

async fn handle(st: &Shared, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return validation(&e.to_string()),
    };
    if parts.method == hyper::Method::POST && parts.uri.path() == "/coverage/list" {
        return match serde_json::from_slice::<Value>(&bytes) {
            Ok(request) => list_coverage(st, &request),
            Err(e) => validation(&format!("the request is not JSON: {e}")),
        };
    }
    // Everything else is moto's.
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let mut rb = st
        .client
        .request(parts.method.clone(), format!("{}{path}", st.moto));
    for (name, v) in &parts.headers {
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
            rb = rb.header(name, v);
        }
    }
    match rb.body(bytes).send().await {
        Ok(resp) => {
            let status = resp.status();
            let headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .filter(|(n, _)| {
                    !matches!(
                        n.as_str(),
                        "content-length" | "transfer-encoding" | "connection"
                    )
                })
                .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_owned())))
                .collect();
            let body = resp.bytes().await.unwrap_or_default();
            let mut b = Response::builder().status(status);
            for (n, v) in headers {
                b = b.header(n, v);
            }
            b.body(Full::new(body).boxed_unsync()).expect("response")
        }
        Err(e) => answer(
            StatusCode::BAD_GATEWAY,
            &json!({"message": format!("moto unreachable: {e}")}),
            &[],
        ),
    }
}

/// One string filter: `[{"comparison": "EQUALS"|"NOT_EQUALS", "value": ...}, ...]`, any of
/// which may match (the API's OR within a key).
fn matches(filters: &Value, value: &str) -> Result<bool, String> {
    let list = filters
        .as_array()
        .ok_or_else(|| format!("a filter is not a list: {filters}"))?;
    let mut any = false;
    for f in list {
        let v = f["value"]
            .as_str()
            .ok_or_else(|| format!("a filter has no value: {f}"))?;
        any |= match f["comparison"].as_str() {
            Some("EQUALS") => value == v,
            Some("NOT_EQUALS") => value != v,
            other => return Err(format!("comparison {other:?} is not implemented here")),
        };
    }
    Ok(any || list.is_empty())
}

/// The coverage record of one manifest, if Inspector would have one now.
fn record(config: &CoverageConfig, m: &SeenManifest, now: SystemTime) -> Option<Value> {
    if !config
        .scanned_prefixes
        .iter()
        .any(|p| m.repository.starts_with(p.as_str()))
        || INDEXES.contains(&m.media_type.as_str())
    {
        return None;
    }
    let scanned_at = m.pushed_at + config.pending_for;
    let image = m
        .artifact_type
        .as_deref()
        .is_some_and(|t| IMAGE_CONFIGS.contains(&t));
    let (code, reason, last) = if !image {
        ("INACTIVE", "UNSUPPORTED_MEDIA_TYPE", None)
    } else if now < scanned_at {
        ("ACTIVE", "PENDING_INITIAL_SCAN", None)
    } else if config
        .unsupported_prefixes
        .iter()
        .any(|p| m.repository.starts_with(p.as_str()))
    {
        ("INACTIVE", "UNSUPPORTED_OS", None)
    } else {
        ("ACTIVE", "SUCCESSFUL", Some(scanned_at))
    };
    let mut r = json!({
        "accountId": config.account,
        "resourceId": format!("arn:aws:ecr:{}:{}:repository/{}/{}",
            config.region, config.account, m.repository, m.digest),
        "resourceType": "AWS_ECR_CONTAINER_IMAGE",
        "scanType": "PACKAGE",
        "scanStatus": {"statusCode": code, "reason": reason},
        "resourceMetadata": {"ecrRepository": {"name": m.repository,
            "scanFrequency": "CONTINUOUS_SCAN"}, "ecrImage": {"tags": []}},
    });
    if let Some(at) = last {
        let secs = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        r["lastScannedAt"] = json!(secs);
    }
    Some(r)
}

fn list_coverage(st: &Shared, request: &Value) -> Response<Body> {
    let config = st.config.lock().expect("config").clone();
    let criteria = request["filterCriteria"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    const KEYS: [&str; 3] = ["ecrRepositoryName", "resourceType", "resourceId"];
    if let Some(k) = criteria.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return validation(&format!(
            "filterCriteria.{k} is not implemented by the coverage stand-in \
             (tests/it/support/inspector.rs): it answers {KEYS:?} only"
        ));
    }
    let max = request["maxResults"].as_u64().unwrap_or(100);
    if !(1..=200).contains(&max) {
        return validation("maxResults must be between 1 and 200");
    }
    let start: usize = match request["nextToken"].as_str() {
        None => 0,
        Some(t) => match t.parse() {
            Ok(n) => n,
            Err(_) => return validation("invalid nextToken"),
        },
    };
    let now = SystemTime::now();
    let mut all = Vec::new();
    for m in st.seen.manifests() {
        let Some(r) = record(&config, &m, now) else {
            continue;
        };
        let fields = [
            ("ecrRepositoryName", m.repository.as_str()),
            ("resourceType", "AWS_ECR_CONTAINER_IMAGE"),
            ("resourceId", r["resourceId"].as_str().unwrap_or_default()),
        ];
        let mut keep = true;
        for (key, value) in fields {
            if let Some(f) = criteria.get(key) {
                match matches(f, value) {
                    Ok(m) => keep &= m,
                    Err(e) => return validation(&e),
                }
            }
        }
        if keep {
            all.push(r);
        }
    }
    let end = (start + max as usize).min(all.len());
    let page: Vec<Value> = all
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    {
        let mut answers = st.answers.lock().expect("answers");
        for r in &page {
            answers.push((
                r["resourceId"].as_str().unwrap_or_default().to_owned(),
                r["scanStatus"]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
    }
    let mut body = json!({"coveredResources": page});
    if end < all.len() {
        body["nextToken"] = json!(end.to_string());
    }
    answer(StatusCode::OK, &body, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(repo: &str, artifact: Option<&str>, media: &str, ago: u64) -> SeenManifest {
        SeenManifest {
            repository: repo.into(),
            digest: "sha256:aa".into(),
            media_type: media.into(),
            artifact_type: artifact.map(str::to_owned),
            pushed_at: SystemTime::now() - Duration::from_secs(ago),
        }
    }

    #[test]
    fn images_are_pending_then_scanned_indexes_have_no_record_and_artifacts_are_unsupported() {
        let config = CoverageConfig {
            scanned_prefixes: vec!["quarantine/".into()],
            pending_for: Duration::from_secs(10),
            unsupported_prefixes: vec!["quarantine/old".into()],
            account: "123456789012".into(),
            region: "us-east-1".into(),
        };
        let oci = "application/vnd.oci.image.manifest.v1+json";
        let now = SystemTime::now();
        let reason = |m: &SeenManifest| {
            record(&config, m, now).map(|r| r["scanStatus"]["reason"].as_str().unwrap().to_owned())
        };
        let fresh = manifest("quarantine/app", Some(IMAGE_CONFIGS[0]), oci, 1);
        let old = manifest("quarantine/app", Some(IMAGE_CONFIGS[0]), oci, 20);
        assert_eq!(reason(&fresh).as_deref(), Some("PENDING_INITIAL_SCAN"));
        assert_eq!(reason(&old).as_deref(), Some("SUCCESSFUL"));
        assert!(record(&config, &old, now).unwrap()["lastScannedAt"].is_f64());
        assert!(record(&config, &fresh, now).unwrap()["lastScannedAt"].is_null());
        assert_eq!(
            reason(&manifest("quarantine/old", Some(IMAGE_CONFIGS[1]), oci, 20)).as_deref(),
            Some("UNSUPPORTED_OS")
        );
        assert_eq!(
            reason(&manifest("quarantine/app", None, INDEXES[0], 20)),
            None
        );
        assert_eq!(
            reason(&manifest("incoming/app", Some(IMAGE_CONFIGS[0]), oci, 20)),
            None
        );
        assert_eq!(
            reason(&manifest(
                "quarantine/app",
                Some("application/x-approval"),
                oci,
                20
            ))
            .as_deref(),
            Some("UNSUPPORTED_MEDIA_TYPE")
        );
        assert_eq!(
            record(&config, &old, now).unwrap()["resourceId"],
            "arn:aws:ecr:us-east-1:123456789012:repository/quarantine/app/sha256:aa"
        );
    }

    #[test]
    fn filters_match_as_the_api_describes_and_unknown_comparisons_are_refused() {
        let f = json!([{"comparison": "EQUALS", "value": "a"}]);
        assert_eq!(matches(&f, "a"), Ok(true));
        assert_eq!(matches(&f, "b"), Ok(false));
        let n = json!([{"comparison": "NOT_EQUALS", "value": "a"}]);
        assert_eq!(matches(&n, "b"), Ok(true));
        let p = json!([{"comparison": "PREFIX", "value": "a"}]);
        assert!(matches(&p, "a").is_err());
    }
}
