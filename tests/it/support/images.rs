//! Test images built on the fly and pushed with plain HTTP (blocking `reqwest`), independent of
//! the code under test.
//!
//! Manifests are serialised with an unusual indentation (three spaces and a trailing newline) on
//! purpose: a copy that re-serialises a manifest instead of moving its exact bytes changes the
//! digest, and the byte-exact assertions catch it.

use super::registry::TestRegistry;
use super::{digest_hex, sha256_digest};
use rand::RngCore as _;
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};
use std::time::Duration;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer media type.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI 1.1 empty descriptor media type (`{}` config of artifacts).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer media type.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// cosign's simple-signing payload layer media type.
pub const COSIGN_SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// Every manifest type, so the registry never down-converts or refuses (test-infra.md §1).
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Which family of media types a fixture uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OCI image manifest / OCI index.
    Oci,
    /// Docker schema 2 manifest / Docker manifest list.
    Docker,
}

/// A blob a fixture pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Length in bytes.
    pub size: u64,
    /// Media type in the referencing descriptor.
    pub media_type: String,
}

/// A manifest (image, index or artifact) a fixture pushed, with everything it references.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    /// The manifest's media type (also its Content-Type on PUT).
    pub media_type: String,
    /// Exact manifest bytes.
    pub bytes: Vec<u8>,
    /// Blobs of this manifest and (for an index) of all its children, without duplicates.
    pub blobs: Vec<Blob>,
    /// For an index: `(platform, child)` in index order, platform as `os/arch[/variant]`.
    pub children: Vec<(String, Pushed)>,
    /// `artifactType` of an artifact manifest.
    pub artifact_type: Option<String>,
}

impl Pushed {
    /// Sum of all blob sizes (what a copy to an empty registry must stream).
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }

    /// The child for `platform` (`os/arch[/variant]`, exact).
    pub fn child(&self, platform: &str) -> &Pushed {
        self.children
            .iter()
            .find(|(p, _)| p == platform)
            .map(|(_, c)| c)
            .unwrap_or_else(|| panic!("fixture has no child for {platform}"))
    }

    /// This manifest and, for an index, every child.
    pub fn manifests(&self) -> Vec<&Pushed> {
        let mut all = vec![self];
        all.extend(self.children.iter().map(|(_, c)| c));
        all
    }

    /// `sha256-<hex>`: the referrers tag-schema fallback tag of this manifest.
    pub fn fallback_tag(&self) -> String {
        format!("sha256-{}", digest_hex(&self.digest))
    }

    /// An OCI descriptor of this manifest.
    pub fn descriptor(&self) -> Value {
        json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.bytes.len(),
        })
    }
}

/// A minimal blocking registry client speaking the distribution HTTP API.
pub struct RegistryClient {
    host: String,
    http: Client,
    auth: Option<(String, String)>,
}

impl RegistryClient {
    /// A client for `registry`, using its basic-auth credentials if it has any.
    pub fn new(registry: &TestRegistry) -> Self {
        let mut c = Self::anonymous(&registry.host());
        c.auth = registry
            .credentials()
            .map(|(u, p)| (u.to_owned(), p.to_owned()));
        c
    }

    /// A client for `host` (`127.0.0.1:PORT`) with HTTP basic credentials, e.g. an ECR-faithful
    /// front's `AWS:<token>`.
    pub fn with_basic_auth(host: &str, user: &str, password: &str) -> Self {
        let mut c = Self::anonymous(host);
        c.auth = Some((user.to_owned(), password.to_owned()));
        c
    }

    /// A client without credentials for `host` (`127.0.0.1:PORT`).
    pub fn anonymous(host: &str) -> Self {
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("build HTTP client");
        Self {
            host: host.to_owned(),
            http,
            auth: None,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn with_auth(&self, req: RequestBuilder) -> RequestBuilder {
        match &self.auth {
            Some((u, p)) => req.basic_auth(u, Some(p)),
            None => req,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.host, path)
    }

    /// Uploads `bytes` to `repo` (POST, then PUT `?digest=`), returning its descriptor.
    pub fn push_blob(&self, repo: &str, bytes: &[u8], media_type: &str) -> Blob {
        let digest = sha256_digest(bytes);
        let resp = self
            .with_auth(
                self.http
                    .post(self.url(&format!("/v2/{repo}/blobs/uploads/"))),
            )
            .send()
            .expect("POST blob upload");
        assert_eq!(
            resp.status(),
            StatusCode::ACCEPTED,
            "POST /v2/{repo}/blobs/uploads/: {}",
            resp.text().unwrap_or_default()
        );
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("upload Location header")
            .to_owned();
        let mut put_url = if location.starts_with("http") {
            location
        } else {
            self.url(&location)
        };
        put_url.push(if put_url.contains('?') { '&' } else { '?' });
        put_url.push_str(&format!("digest={digest}"));
        let resp = self
            .with_auth(self.http.put(put_url))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .expect("PUT blob");
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "PUT blob {digest} to {repo}: {}",
            resp.text().unwrap_or_default()
        );
        Blob {
            digest,
            size: bytes.len() as u64,
            media_type: media_type.to_owned(),
        }
    }

    /// PUTs a manifest under `reference` (tag or digest) and returns its digest.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let digest = sha256_digest(bytes);
        // A registry that throttles PutImage (ECR, the ECR-faithful front) answers 429: wait
        // and try again, as every ECR client must (at most 20 times, 100 ms apart).
        let mut attempts = 0;
        let resp = loop {
            let resp = self
                .with_auth(
                    self.http
                        .put(self.url(&format!("/v2/{repo}/manifests/{reference}"))),
                )
                .header("content-type", media_type)
                .body(bytes.to_vec())
                .send()
                .expect("PUT manifest");
            attempts += 1;
            if resp.status() != StatusCode::TOO_MANY_REQUESTS || attempts == 20 {
                break resp;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let status = resp.status();
        let header = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(
            status,
            StatusCode::CREATED,
            "PUT manifest {repo}:{reference}: {}",
            resp.text().unwrap_or_default()
        );
        if let Some(h) = header {
            assert_eq!(h, digest, "registry computed another digest");
        }
        digest
    }

    /// The manifest at `reference` (tag or digest) with its Content-Type, `None` when absent.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Option<(Vec<u8>, String)> {
        let resp = self
            .with_auth(
                self.http
                    .get(self.url(&format!("/v2/{repo}/manifests/{reference}"))),
            )
            .header("accept", ACCEPT_ALL)
            .send()
            .expect("GET manifest");
        match resp.status() {
            StatusCode::OK => {
                let ct = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                Some((resp.bytes().expect("manifest body").to_vec(), ct))
            }
            StatusCode::NOT_FOUND => None,
            other => panic!(
                "GET manifest {repo}:{reference}: {other}: {}",
                resp.text().unwrap_or_default()
            ),
        }
    }

    /// `GET /v2/<repo>/referrers/<digest>`: the OCI 1.1 referrers API's index (a registry
    /// without it, such as docker-registry, fails the test).
    pub fn referrers(&self, repo: &str, digest: &str) -> Value {
        let resp = self
            .with_auth(
                self.http
                    .get(self.url(&format!("/v2/{repo}/referrers/{digest}"))),
            )
            .send()
            .expect("GET referrers");
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "GET referrers of {repo}@{digest}"
        );
        resp.json().expect("a referrers index")
    }

    /// The manifest at `reference`, panicking with context when it is absent.
    pub fn manifest(&self, repo: &str, reference: &str) -> (Vec<u8>, String) {
        self.get_manifest(repo, reference).unwrap_or_else(|| {
            panic!(
                "no manifest {}/{repo} at {reference}; tags there: {:?}",
                self.host,
                self.list_tags(repo)
            )
        })
    }

    /// Whether `repo` has `digest` as a blob (HEAD answers 200).
    pub fn blob_exists(&self, repo: &str, digest: &str) -> bool {
        let resp = self
            .with_auth(
                self.http
                    .head(self.url(&format!("/v2/{repo}/blobs/{digest}"))),
            )
            .send()
            .expect("HEAD blob");
        match resp.status() {
            StatusCode::OK => true,
            StatusCode::NOT_FOUND => false,
            other => panic!("HEAD blob {repo}@{digest}: {other}"),
        }
    }

    /// The blob's bytes.
    pub fn get_blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let resp = self
            .with_auth(
                self.http
                    .get(self.url(&format!("/v2/{repo}/blobs/{digest}"))),
            )
            .send()
            .expect("GET blob");
        assert_eq!(resp.status(), StatusCode::OK, "GET blob {repo}@{digest}");
        resp.bytes().expect("blob body").to_vec()
    }

    /// Tags of `repo`, sorted; empty when the repository does not exist.
    pub fn list_tags(&self, repo: &str) -> Vec<String> {
        let resp = self
            .with_auth(self.http.get(self.url(&format!("/v2/{repo}/tags/list"))))
            .send()
            .expect("GET tags");
        if resp.status() == StatusCode::NOT_FOUND {
            return Vec::new();
        }
        assert_eq!(resp.status(), StatusCode::OK, "GET /v2/{repo}/tags/list");
        let body: Value = resp.json().expect("tags JSON");
        let mut tags: Vec<String> = body["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// Repositories in the registry (`/v2/_catalog`), sorted.
    pub fn catalog(&self) -> Vec<String> {
        let resp = self
            .with_auth(self.http.get(self.url("/v2/_catalog")))
            .send()
            .expect("GET catalog");
        assert_eq!(resp.status(), StatusCode::OK, "GET /v2/_catalog");
        let body: Value = resp.json().expect("catalog JSON");
        let mut repos: Vec<String> = body["repositories"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        repos.sort();
        repos
    }
}

/// `n` random (incompressible) bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

/// A short random hex string, to make names and configs unique.
pub fn nonce() -> String {
    hex::encode(random_bytes(6))
}

/// Serialises a manifest the way the fixtures do (see the module docs).
pub fn to_manifest_bytes(value: &Value) -> Vec<u8> {
    use serde::Serialize as _;
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    value.serialize(&mut ser).expect("serialise manifest");
    out.push(b'\n');
    out
}

/// A platform as `os/arch[/variant]`.
#[derive(Clone, Debug)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `arm64`.
    pub architecture: String,
    /// e.g. `v8`.
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Self {
        let mut parts = s.split('/');
        let os = parts.next().expect("os").to_owned();
        let architecture = parts
            .next()
            .unwrap_or_else(|| panic!("platform {s} has no architecture"))
            .to_owned();
        let variant = parts.next().map(str::to_owned);
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The `platform` object of an index entry.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"architecture": self.architecture, "os": self.os});
        if let Some(variant) = &self.variant {
            v["variant"] = json!(variant);
        }
        v
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn descriptor(blob: &Blob) -> Value {
    json!({"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size})
}

/// Pushes a single-platform image with random layers of `layer_sizes` bytes. It is tagged `tag`
/// when given, else pushed by digest only.
pub fn push_image(
    c: &RegistryClient,
    repo: &str,
    tag: Option<&str>,
    format: Format,
    platform: &str,
    layer_sizes: &[usize],
) -> Pushed {
    let platform = Platform::parse(platform);
    let (manifest_type, config_type, layer_type) = match format {
        Format::Oci => (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
        Format::Docker => (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
    };
    let layers: Vec<Blob> = layer_sizes
        .iter()
        .map(|&n| c.push_blob(repo, &random_bytes(n), layer_type))
        .collect();
    // The layers are opaque random bytes, so their "uncompressed" digests are their own.
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let history: Vec<Value> = (0..layers.len())
        .map(|i| json!({"created": "2026-01-01T00:00:00Z", "created_by": format!("fixture layer {i}")}))
        .collect();
    let mut config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": "2026-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"org.example.fixture": nonce()},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    if let Some(v) = &platform.variant {
        config["variant"] = json!(v);
    }
    let config_blob = c.push_blob(
        repo,
        &serde_json::to_vec(&config).expect("config"),
        config_type,
    );
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": descriptor(&config_blob),
        "layers": layers.iter().map(descriptor).collect::<Vec<_>>(),
    });
    if format == Format::Oci {
        manifest["annotations"] =
            json!({"org.opencontainers.image.created": "2026-01-01T00:00:00Z"});
    }
    let bytes = to_manifest_bytes(&manifest);
    let digest = sha256_digest(&bytes);
    c.push_manifest(repo, tag.unwrap_or(&digest), manifest_type, &bytes);
    let mut blobs = vec![config_blob];
    blobs.extend(layers);
    Pushed {
        digest,
        media_type: manifest_type.to_owned(),
        bytes,
        blobs,
        children: Vec::new(),
        artifact_type: None,
    }
}

/// Pushes one image per platform (by digest) and an index (OCI index or Docker manifest list,
/// per `format`) over them, tagged `tag`.
pub fn push_index(
    c: &RegistryClient,
    repo: &str,
    tag: &str,
    format: Format,
    platforms: &[&str],
    layer_sizes: &[usize],
) -> Pushed {
    push_index_with(c, repo, tag, format, platforms, layer_sizes, &json!({}))
}

/// As [`push_index`], with `annotations` (an object) added to the index (OCI only), e.g. the
/// record promote-and-annotate writes into an image it promotes.
pub fn push_index_with(
    c: &RegistryClient,
    repo: &str,
    tag: &str,
    format: Format,
    platforms: &[&str],
    layer_sizes: &[usize],
    annotations: &Value,
) -> Pushed {
    let index_type = match format {
        Format::Oci => OCI_INDEX,
        Format::Docker => DOCKER_LIST,
    };
    let children: Vec<(String, Pushed)> = platforms
        .iter()
        .map(|p| {
            let child = push_image(c, repo, None, format, p, layer_sizes);
            (Platform::parse(p).to_string(), child)
        })
        .collect();
    let entries: Vec<Value> = children
        .iter()
        .map(|(p, child)| {
            let mut d = child.descriptor();
            d["platform"] = Platform::parse(p).to_json();
            d
        })
        .collect();
    let mut index = json!({"schemaVersion": 2, "mediaType": index_type, "manifests": entries});
    if format == Format::Oci {
        let mut a = json!({"org.example.fixture": nonce()});
        for (k, v) in annotations.as_object().into_iter().flatten() {
            a[k] = v.clone();
        }
        index["annotations"] = a;
    }
    let bytes = to_manifest_bytes(&index);
    let digest = c.push_manifest(repo, tag, index_type, &bytes);
    let mut blobs: Vec<Blob> = Vec::new();
    for (_, child) in &children {
        for b in &child.blobs {
            if !blobs.contains(b) {
                blobs.push(b.clone());
            }
        }
    }
    Pushed {
        digest,
        media_type: index_type.to_owned(),
        bytes,
        blobs,
        children,
        artifact_type: None,
    }
}

/// Pushes a two-platform OCI index (`linux/amd64`, `linux/arm64`) whose amd64 entry wears
/// BuildKit's attestation annotations (`vnd.docker.reference.type: attestation-manifest`,
/// naming the arm64 entry) while keeping its real platform: an image in disguise, which a
/// runtime on amd64 runs and which must therefore be gated like any other.
pub fn push_disguised_index(c: &RegistryClient, repo: &str, tag: &str) -> Pushed {
    let amd64 = push_image(c, repo, None, Format::Oci, "linux/amd64", &[1024]);
    let arm64 = push_image(c, repo, None, Format::Oci, "linux/arm64", &[1024]);
    let mut disguised = amd64.descriptor();
    disguised["platform"] = Platform::parse("linux/amd64").to_json();
    disguised["annotations"] = json!({
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": arm64.digest,
    });
    let mut plain = arm64.descriptor();
    plain["platform"] = Platform::parse("linux/arm64").to_json();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [disguised, plain], "annotations": {"org.example.fixture": nonce()}});
    let bytes = to_manifest_bytes(&index);
    let digest = c.push_manifest(repo, tag, OCI_INDEX, &bytes);
    let mut blobs = amd64.blobs.clone();
    blobs.extend(arm64.blobs.iter().cloned());
    Pushed {
        digest,
        media_type: OCI_INDEX.to_owned(),
        bytes,
        blobs,
        children: vec![("linux/amd64".into(), amd64), ("linux/arm64".into(), arm64)],
        artifact_type: None,
    }
}

/// Pushes an OCI artifact whose config is not an image config (`config_media_type`), with
/// `artifactType` set and one payload layer, tagged `tag`.
pub fn push_artifact(
    c: &RegistryClient,
    repo: &str,
    tag: &str,
    artifact_type: &str,
    config_media_type: &str,
    payload_media_type: &str,
    payload: &[u8],
) -> Pushed {
    let config = json!({"tool": "integration-tests", "nonce": nonce()});
    let config_blob = c.push_blob(
        repo,
        &serde_json::to_vec(&config).expect("config"),
        config_media_type,
    );
    let layer = c.push_blob(repo, payload, payload_media_type);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor(&config_blob),
        "layers": [descriptor(&layer)],
        "annotations": {"org.opencontainers.image.title": "fixture artifact"},
    });
    let bytes = to_manifest_bytes(&manifest);
    let digest = c.push_manifest(repo, tag, OCI_MANIFEST, &bytes);
    Pushed {
        digest,
        media_type: OCI_MANIFEST.to_owned(),
        bytes,
        blobs: vec![config_blob, layer],
        children: Vec::new(),
        artifact_type: Some(artifact_type.to_owned()),
    }
}

/// Pushes an OCI 1.1 referrer of `subject` (by digest, untagged, as referrers are): empty config,
/// `artifactType`, one `payload` layer and a `subject` descriptor.
pub fn push_referrer(
    c: &RegistryClient,
    repo: &str,
    subject: &Pushed,
    artifact_type: &str,
    payload_media_type: &str,
    payload: &[u8],
) -> Pushed {
    push_referrer_with(
        c,
        repo,
        subject,
        artifact_type,
        payload_media_type,
        payload,
        &json!({}),
    )
}

/// [`push_referrer`] with more `annotations` on the manifest.
pub fn push_referrer_with(
    c: &RegistryClient,
    repo: &str,
    subject: &Pushed,
    artifact_type: &str,
    payload_media_type: &str,
    payload: &[u8],
    annotations: &Value,
) -> Pushed {
    let empty = c.push_blob(repo, b"{}", OCI_EMPTY);
    let layer = c.push_blob(repo, payload, payload_media_type);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor(&empty),
        "layers": [descriptor(&layer)],
        "subject": subject.descriptor(),
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z", "org.example.nonce": nonce()},
    });
    let mut manifest = manifest;
    for (k, v) in annotations.as_object().into_iter().flatten() {
        manifest["annotations"][k] = v.clone();
    }
    let bytes = to_manifest_bytes(&manifest);
    let digest = sha256_digest(&bytes);
    c.push_manifest(repo, &digest, OCI_MANIFEST, &bytes);
    Pushed {
        digest,
        media_type: OCI_MANIFEST.to_owned(),
        bytes,
        blobs: vec![empty, layer],
        children: Vec::new(),
        artifact_type: Some(artifact_type.to_owned()),
    }
}

/// Writes the OCI referrers tag-schema fallback index of `subject` (tag `sha256-<hex>`) listing
/// `referrers`, as a client must on a registry without the referrers API.
pub fn write_referrers_fallback(
    c: &RegistryClient,
    repo: &str,
    subject: &Pushed,
    referrers: &[&Pushed],
) -> Pushed {
    let entries: Vec<Value> = referrers
        .iter()
        .map(|r| {
            let mut d = r.descriptor();
            if let Some(t) = &r.artifact_type {
                d["artifactType"] = json!(t);
            }
            d["annotations"] = json!({"org.opencontainers.image.created": "2026-01-01T00:00:00Z"});
            d
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    let bytes = to_manifest_bytes(&index);
    let digest = c.push_manifest(repo, &subject.fallback_tag(), OCI_INDEX, &bytes);
    Pushed {
        digest,
        media_type: OCI_INDEX.to_owned(),
        bytes,
        blobs: Vec::new(),
        children: Vec::new(),
        artifact_type: None,
    }
}

/// Pushes a cosign-style legacy signature at tag `sha256-<hex>.<suffix>` (`sig`, `att`, `sbom`).
pub fn push_cosign_tag(c: &RegistryClient, repo: &str, subject: &Pushed, suffix: &str) -> Pushed {
    let payload = serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": format!("{}/{repo}", c.host())},
            "image": {"docker-manifest-digest": subject.digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .expect("payload");
    let layer = c.push_blob(repo, &payload, COSIGN_SIMPLESIGNING);
    let config = json!({
        "architecture": "",
        "os": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
    });
    let config_blob = c.push_blob(
        repo,
        &serde_json::to_vec(&config).expect("config"),
        OCI_CONFIG,
    );
    let mut layer_desc = descriptor(&layer);
    layer_desc["annotations"] =
        json!({"dev.cosignproject.cosign/signature": hex::encode(random_bytes(64))});
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(&config_blob),
        "layers": [layer_desc],
    });
    let bytes = to_manifest_bytes(&manifest);
    let tag = format!("{}.{suffix}", subject.fallback_tag());
    let digest = c.push_manifest(repo, &tag, OCI_MANIFEST, &bytes);
    Pushed {
        digest,
        media_type: OCI_MANIFEST.to_owned(),
        bytes,
        blobs: vec![config_blob, layer],
        children: Vec::new(),
        artifact_type: None,
    }
}
