//! The pipeline's clients against the ECR-faithful front (support/ecr_front.rs): a real
//! docker-registry behind a proxy that adds ECR's referrers API, mount rule, dropped chunked
//! bodies, media type and size limits, tag immutability, PutImage throttling and ~2,000-character
//! tokens. Each test shows one behaviour with a real client (the `promote` binary, or a raw
//! HTTP client where the point is what a naive client meets), and, where it makes the point,
//! that docker-registry alone behaves otherwise.

use crate::support::cli::{self, Promote, num, str_field};
use crate::support::ecr_front::{
    ECR_MAX_MANIFEST_BYTES, EcrFront, FrontConfig, Immutability, Throttle,
};
use crate::support::images::{
    Format, OCI_INDEX, OCI_MANIFEST, Pushed, RegistryClient, nonce, push_image, push_index,
    random_bytes, to_manifest_bytes,
};
use crate::support::registry::TestRegistry;
use crate::support::sha256_digest;
use crate::support::sigstore::generate_key;
use crate::support::sigstore_js::{BUNDLE, sigstore_js_accepts};
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{Value, json};
use std::time::Duration;

const LAYERS: &[usize] = &[300 * 1024, 700 * 1024];
const PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64/v8", "linux/s390x"];
const KEY_PASSWORD: &str = "ecr-front-key-password";

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

/// `rb` with the front's ECR credentials.
fn ecr_auth(front: &EcrFront, rb: RequestBuilder) -> RequestBuilder {
    rb.basic_auth("AWS", front.password())
}

fn url(host: &str, path: &str) -> String {
    format!("http://{host}{path}")
}

/// The `errors[0].code` and `errors[0].message` of a distribution error answer.
fn error_of(resp: Response) -> (StatusCode, String, String) {
    let status = resp.status();
    let body: Value = resp.json().unwrap_or(Value::Null);
    (
        status,
        body["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// `promote --insecure-registry FRONT --json …` with the front's token for every registry role.
fn promote(front: &EcrFront) -> Promote {
    Promote::default()
        .arg("--insecure-registry")
        .arg(front.host())
        .arg("--json")
        .env("PROMOTE_SRC_CREDS", front.creds())
        .env("PROMOTE_DST_CREDS", front.creds())
}

/// The destination holds the source's exact manifests and every blob.
fn assert_exact_copy(c: &RegistryClient, repo: &str, tag: &str, src: &Pushed) {
    assert_eq!(
        c.manifest(repo, tag).0,
        src.bytes,
        "{repo}:{tag} byte-exact"
    );
    for m in src.manifests() {
        assert_eq!(
            c.manifest(repo, &m.digest).0,
            m.bytes,
            "{repo}@{}",
            m.digest
        );
    }
    for b in &src.blobs {
        assert!(c.blob_exists(repo, &b.digest), "{repo} lacks {}", b.digest);
    }
}

// ---- 2. Blob mounting -----------------------------------------------------------------------

/// With `BLOB_MOUNTING` on, a copy between two repositories of one ECR registry mounts every
/// blob and streams no layer byte; with it off ECR opens an upload session for every mount
/// request and the copy still succeeds, streaming every byte.
#[test]
fn copy_between_repositories_mounts_with_blob_mounting_and_streams_without() {
    for mounting in [true, false] {
        let reg = TestRegistry::start();
        let front = EcrFront::start(
            &reg,
            FrontConfig {
                blob_mounting: mounting,
                ..FrontConfig::ecr()
            },
        );
        let c = RegistryClient::new(&reg);
        let pushed = push_index(&c, "team/app", "1.0.0", Format::Oci, PLATFORMS, LAYERS);

        let run = promote(&front)
            .arg("copy")
            .arg(format!("{}/team/app:1.0.0", front.host()))
            .arg(format!("{}/prod/app:1.0.0", front.host()))
            .run();
        let v = run.assert_ok();
        assert_exact_copy(&c, "prod/app", "1.0.0", &pushed);
        let blobs = pushed.blobs.len() as u64;
        // HEAD through the front keeps docker-registry's Content-Length and digest.
        let layer = &pushed.blobs[pushed.blobs.len() - 1];
        let head = ecr_auth(
            &front,
            http().head(url(
                &front.host(),
                &format!("/v2/prod/app/blobs/{}", layer.digest),
            )),
        )
        .send()
        .expect("HEAD blob");
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(
            head.headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok()),
            Some(layer.size.to_string().as_str())
        );
        assert_eq!(
            head.headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok()),
            Some(layer.digest.as_str())
        );
        let decisions = front.mounts();
        eprintln!(
            "BLOB_MOUNTING {}: bytes_streamed {} (the front received {} upload bytes for \
             prod/app), blobs_mounted {}, {} mount requests",
            if mounting { "on" } else { "off" },
            num(&v, "bytes_streamed"),
            front.uploaded_bytes("prod/app"),
            num(&v, "blobs_mounted"),
            decisions.len()
        );
        if mounting {
            assert_eq!(num(&v, "blobs_mounted"), blobs, "{v:#}");
            assert_eq!(num(&v, "bytes_streamed"), 0, "{v:#}");
            assert_eq!(front.uploaded_bytes("prod/app"), 0, "not one byte uploaded");
            assert!(
                decisions.len() as u64 >= blobs && decisions.iter().all(|d| d.forwarded),
                "{decisions:#?}"
            );
        } else {
            assert_eq!(num(&v, "blobs_mounted"), 0, "{v:#}");
            assert_eq!(num(&v, "bytes_streamed"), pushed.blob_bytes(), "{v:#}");
            assert_eq!(num(&v, "blobs_streamed"), blobs, "{v:#}");
            assert_eq!(front.uploaded_bytes("prod/app"), pushed.blob_bytes());
            assert!(
                !decisions.is_empty() && decisions.iter().all(|d| !d.forwarded),
                "the client asked to mount and was refused: {decisions:#?}"
            );
        }
    }
}

/// ECR mounts only blobs that a manifest of the source repository references (#2860):
/// docker-registry mounts a lone blob (201), the front answers 202 and a fresh upload session.
#[test]
fn a_blob_no_manifest_references_is_not_mounted() {
    let reg = TestRegistry::start();
    let front = EcrFront::start(&reg, FrontConfig::ecr());
    let c = RegistryClient::new(&reg);
    let lone = c.push_blob("team/app", &random_bytes(4096), "application/octet-stream");
    let image = push_image(
        &c,
        "team/app",
        Some("1"),
        Format::Oci,
        "linux/amd64",
        &[2048],
    );
    let http = http();
    let mount = |host: &str, to: &str, digest: &str, auth: bool| {
        let rb = http.post(url(
            host,
            &format!("/v2/{to}/blobs/uploads/?mount={digest}&from=team/app"),
        ));
        let rb = if auth { ecr_auth(&front, rb) } else { rb };
        rb.send().expect("mount POST").status()
    };

    assert_eq!(mount(&reg.host(), "a/one", &lone.digest, false), 201);
    assert_eq!(
        mount(&front.host(), "a/two", &lone.digest, true),
        StatusCode::ACCEPTED,
        "ECR does not mount an unreferenced blob"
    );
    assert!(!c.blob_exists("a/two", &lone.digest));
    // A layer of a tagged image is referenced: mounted.
    let layer = &image.blobs[1].digest;
    assert_eq!(mount(&front.host(), "a/two", layer, true), 201);
    assert!(c.blob_exists("a/two", layer));
    let decisions = front.mounts();
    assert_eq!(decisions.len(), 2);
    assert!(
        !decisions[0].forwarded && decisions[1].forwarded,
        "{decisions:#?}"
    );
}

// ---- 6. PutImage throttling ---------------------------------------------------------------

/// The whole pipeline (`promote run`: quarantine copy, gate, annotate, sign, retag) of a
/// 4-platform image through PutImage throttling (10/s, burst 2): ECR answers 429 and the client's
/// retries absorb it.
#[test]
fn the_pipeline_absorbs_put_image_throttling() {
    let reg = TestRegistry::start();
    let front = EcrFront::start(
        &reg,
        FrontConfig {
            put_image_throttle: Some(Throttle {
                burst: 2,
                ..Throttle::ecr()
            }),
            ..FrontConfig::ecr()
        },
    );
    let c = RegistryClient::new(&reg);
    let app = push_index(
        &c,
        "upstream/app",
        "1.0",
        Format::Oci,
        &[
            "linux/amd64",
            "linux/arm64/v8",
            "linux/s390x",
            "linux/ppc64le",
        ],
        &[4096],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (private, public) = generate_key(dir.path(), "pipeline", KEY_PASSWORD);
    let findings = dir.path().join("findings.json");
    std::fs::write(&findings, r#"{"findings": []}"#).expect("findings");

    let run = promote(&front)
        .arg("run")
        .arg(format!("{}/upstream/app:1.0", front.host()))
        .arg("--quarantine")
        .arg(format!("{}/q/app", front.host()))
        .arg("--trusted")
        .arg(format!("{}/t/app", front.host()))
        .arg("--key")
        .arg(private.display().to_string())
        .arg("--findings")
        .arg(findings.display().to_string())
        .env("COSIGN_PASSWORD", KEY_PASSWORD)
        .run();
    let v = run.assert_ok();
    assert_eq!(str_field(&v, "outcome"), "PROMOTED", "{v:#}");
    let puts: Vec<_> = front
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/manifests/"))
        .collect();
    // The longest run of 429s one manifest met before it was stored (the client's margin: it
    // tries six times).
    let mut streak: std::collections::HashMap<&str, u32> = Default::default();
    let mut longest = 0;
    for r in &puts {
        let n = streak.entry(r.path.as_str()).or_default();
        *n = if r.status == 429 { *n + 1 } else { 0 };
        longest = longest.max(*n);
    }
    eprintln!(
        "the pipeline absorbed {} PutImage 429s ({} manifest PUT requests, {} stored, at most \
         {longest} 429s in a row for one manifest) in {:?}",
        front.throttled(),
        puts.len(),
        puts.iter().filter(|r| r.status == 201).count(),
        run.duration
    );
    assert!(front.throttled() > 0, "no throttling happened");
    assert_eq!(c.manifest("q/app", &app.digest).0, app.bytes);
    promote(&front)
        .arg("verify")
        .arg(format!("{}/t/app:dev-1.0", front.host()))
        .arg("--key")
        .arg(public.display().to_string())
        .run()
        .assert_ok();
}

// ---- 1. Referrers API ---------------------------------------------------------------------

/// The referrers of `digest` in `repo` as the front's referrers API lists them.
fn list_referrers(front: &EcrFront, repo: &str, digest: &str, filter: Option<&str>) -> Response {
    let mut path = format!("/v2/{repo}/referrers/{digest}");
    if let Some(f) = filter {
        path.push_str(&format!("?artifactType={f}"));
    }
    let resp = ecr_auth(front, http().get(url(&front.host(), &path)))
        .send()
        .expect("referrers GET");
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    resp
}

/// With the referrers API, `promote sign` stores its bundles as referrers the API lists and
/// writes no `sha256-<hex>` fallback tag, and the signatures verify; without it (docker-registry
/// as today) the fallback tag is written.
#[test]
fn signatures_use_the_referrers_api_when_there_is_one_and_the_fallback_tag_otherwise() {
    for referrers_api in [true, false] {
        let reg = TestRegistry::start();
        let front = EcrFront::start(
            &reg,
            FrontConfig {
                referrers_api,
                ..FrontConfig::ecr()
            },
        );
        let c = RegistryClient::new(&reg);
        let pushed = push_index(
            &c,
            "trusted/app",
            "1",
            Format::Oci,
            &["linux/amd64", "linux/arm64"],
            &[2048],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let (private, public) = generate_key(dir.path(), "cosign", KEY_PASSWORD);
        let image = format!("{}/trusted/app:1", front.host());

        let v = promote(&front)
            .arg("sign")
            .arg(&image)
            .arg("--key")
            .arg(private.display().to_string())
            .env("COSIGN_PASSWORD", KEY_PASSWORD)
            .run()
            .assert_ok();
        assert_eq!(num(&v, "signatures_created"), 2 * 3, "{v:#}");

        let tags = c.list_tags("trusted/app");
        let pem = std::fs::read_to_string(&public).expect("public key");
        for m in pushed.manifests() {
            let fallback = m.fallback_tag();
            assert!(
                tags.contains(&format!("{fallback}.sig")),
                "the legacy signature tag: {tags:?}"
            );
            if !referrers_api {
                assert!(tags.contains(&fallback), "fallback tag written: {tags:?}");
                continue;
            }
            assert!(
                !tags.contains(&fallback),
                "no fallback tag with a referrers API: {tags:?}"
            );
            let index: Value = list_referrers(&front, "trusted/app", &m.digest, None)
                .json()
                .expect("index");
            assert_eq!(index["mediaType"], OCI_INDEX);
            let entries = index["manifests"].as_array().expect("manifests");
            assert_eq!(entries.len(), 1, "{index:#}");
            assert_eq!(entries[0]["artifactType"], BUNDLE, "{index:#}");
            assert!(entries[0]["annotations"].is_object(), "{index:#}");
            // Filtered: the header says so; another type lists nothing.
            let filtered = list_referrers(&front, "trusted/app", &m.digest, Some(BUNDLE));
            assert_eq!(
                filtered
                    .headers()
                    .get("oci-filters-applied")
                    .and_then(|v| v.to_str().ok()),
                Some("artifactType")
            );
            let none: Value =
                list_referrers(&front, "trusted/app", &m.digest, Some("application/x-none"))
                    .json()
                    .expect("index");
            assert_eq!(none["manifests"], json!([]));
            // The bundle, read through the API's listing, verifies with sigstore-js.
            let (referrer, _) = c.manifest(
                "trusted/app",
                entries[0]["digest"].as_str().expect("digest"),
            );
            let referrer: Value = serde_json::from_slice(&referrer).expect("referrer");
            assert_eq!(referrer["subject"]["digest"], m.digest.as_str());
            let bundle = c.get_blob(
                "trusted/app",
                referrer["layers"][0]["digest"].as_str().expect("layer"),
            );
            sigstore_js_accepts(&[bundle], &pem, &m.digest)
                .unwrap_or_else(|e| panic!("{}: {e}", m.digest));
        }
        let ok = promote(&front)
            .arg("verify")
            .arg(&image)
            .arg("--key")
            .arg(public.display().to_string())
            .arg("--require")
            .arg("both")
            .run()
            .assert_ok();
        assert_eq!(ok["verified"], json!(["bundle", "legacy"]), "{ok:#}");
        // A second run adds nothing, whichever route listed the referrers.
        let again = promote(&front)
            .arg("sign")
            .arg(&image)
            .arg("--key")
            .arg(private.display().to_string())
            .env("COSIGN_PASSWORD", KEY_PASSWORD)
            .run()
            .assert_ok();
        assert_eq!(num(&again, "signatures_created"), 0, "{again:#}");
        if referrers_api {
            // A referrer deleted by digest leaves the listing.
            let listed: Value = list_referrers(&front, "trusted/app", &pushed.digest, None)
                .json()
                .expect("index");
            let referrer = listed["manifests"][0]["digest"].as_str().expect("digest");
            let deleted = ecr_auth(
                &front,
                http().delete(url(
                    &front.host(),
                    &format!("/v2/trusted/app/manifests/{referrer}"),
                )),
            )
            .send()
            .expect("DELETE");
            assert_eq!(deleted.status(), StatusCode::ACCEPTED);
            let after: Value = list_referrers(&front, "trusted/app", &pushed.digest, None)
                .json()
                .expect("index");
            assert_eq!(after["manifests"], json!([]), "{after:#}");
        }
    }
}

/// A manifest with a `subject` is answered with `OCI-Subject` (the registry indexed it), and
/// without it when there is no referrers API; the subject need not exist yet.
#[test]
fn a_manifest_with_a_subject_is_answered_with_oci_subject() {
    for referrers_api in [true, false] {
        let reg = TestRegistry::start();
        let front = EcrFront::start(
            &reg,
            FrontConfig {
                referrers_api,
                ..FrontConfig::ecr()
            },
        );
        let c = RegistryClient::new(&reg);
        let empty = c.push_blob("app/sub", b"{}", "application/vnd.oci.empty.v1+json");
        let layer = c.push_blob("app/sub", b"sbom", "application/spdx+json");
        let subject = sha256_digest(nonce().as_bytes());
        let manifest = to_manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/spdx+json",
            "config": {"mediaType": empty.media_type, "digest": empty.digest, "size": 2},
            "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": 4}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 100},
        }));
        let digest = sha256_digest(&manifest);
        let resp = put_manifest(
            Some(&front),
            &front.host(),
            "app/sub",
            &digest,
            OCI_MANIFEST,
            &manifest,
        );
        assert_eq!(resp.status(), StatusCode::CREATED);
        let header = resp
            .headers()
            .get("oci-subject")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if referrers_api {
            assert_eq!(header.as_deref(), Some(subject.as_str()));
            let listed: Value = list_referrers(&front, "app/sub", &subject, None)
                .json()
                .expect("index");
            assert_eq!(
                listed["manifests"],
                json!([{"mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len(),
                    "artifactType": "application/spdx+json"}])
            );
        } else {
            assert_eq!(header, None);
            let resp = ecr_auth(
                &front,
                http().get(url(
                    &front.host(),
                    &format!("/v2/app/sub/referrers/{subject}"),
                )),
            )
            .send()
            .expect("referrers GET");
            assert_eq!(
                resp.status(),
                StatusCode::NOT_FOUND,
                "docker-registry's answer"
            );
        }
    }
}

// ---- 3. Chunked uploads -----------------------------------------------------------------

/// POST, two PATCHes and the closing PUT: the registry stores only what it kept.
fn chunked_upload(host: &str, repo: &str, blob: &[u8], auth: Option<&EcrFront>) -> Response {
    let http = http();
    let with = |rb: RequestBuilder| match auth {
        Some(f) => ecr_auth(f, rb),
        None => rb,
    };
    let absolute = |loc: &str| {
        if loc.starts_with("http") {
            loc.to_owned()
        } else {
            url(host, loc)
        }
    };
    let location = |r: &Response| {
        absolute(
            r.headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .expect("Location"),
        )
    };
    let resp = with(http.post(url(host, &format!("/v2/{repo}/blobs/uploads/"))))
        .send()
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let mut next = location(&resp);
    let half = blob.len() / 2;
    for (start, chunk) in [(0, &blob[..half]), (half, &blob[half..])] {
        let resp = with(http.patch(&next))
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{start}-{}", start + chunk.len() - 1),
            )
            .body(chunk.to_vec())
            .send()
            .expect("PATCH");
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "PATCH at {start}");
        assert_eq!(
            resp.headers().get("range").and_then(|v| v.to_str().ok()),
            Some(format!("0-{}", start + chunk.len() - 1).as_str()),
            "the answer claims every byte so far was stored"
        );
        next = location(&resp);
    }
    let sep = if next.contains('?') { '&' } else { '?' };
    with(http.put(format!("{next}{sep}digest={}", sha256_digest(blob))))
        .send()
        .expect("PUT")
}

/// ECR drops the body of every PATCH after the first (#2831): a client uploading in chunks
/// ends with a digest error where docker-registry stores the blob; `promote`'s single-PUT
/// uploads are unaffected.
#[test]
fn later_patch_bodies_are_dropped_and_a_single_put_upload_still_copies() {
    let reg = TestRegistry::start();
    let front = EcrFront::start(&reg, FrontConfig::ecr());
    let blob = random_bytes(64 * 1024);

    let direct = chunked_upload(&reg.host(), "raw/direct", &blob, None);
    assert_eq!(
        direct.status(),
        StatusCode::CREATED,
        "docker-registry alone"
    );
    let (status, code, message) = error_of(chunked_upload(
        &front.host(),
        "raw/front",
        &blob,
        Some(&front),
    ));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{code}: {message}");
    assert_eq!(code, "DIGEST_INVALID", "{message}");
    assert_eq!(front.uploaded_bytes("raw/front"), blob.len() as u64);
    let c = RegistryClient::new(&reg);
    assert!(!c.blob_exists("raw/front", &sha256_digest(&blob)));

    // promote copy from another registry into the front: every blob goes POST + one PUT.
    let src = TestRegistry::start();
    let pushed = push_index(
        &RegistryClient::new(&src),
        "team/app",
        "2",
        Format::Docker,
        PLATFORMS,
        LAYERS,
    );
    let v = Promote::default()
        .arg("--insecure-registry")
        .arg(src.host())
        .arg("--insecure-registry")
        .arg(front.host())
        .arg("--json")
        .arg("copy")
        .arg(format!("{}/team/app:2", src.host()))
        .arg(format!("{}/prod/app:2", front.host()))
        .env("PROMOTE_DST_CREDS", front.creds())
        .run()
        .assert_ok();
    assert_eq!(num(&v, "bytes_streamed"), pushed.blob_bytes(), "{v:#}");
    assert_exact_copy(&c, "prod/app", "2", &pushed);
    for b in &pushed.blobs {
        assert_eq!(sha256_digest(&c.get_blob("prod/app", &b.digest)), b.digest);
    }
    let patches = front
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/prod/app/"))
        .count();
    assert!(
        patches <= pushed.blobs.len(),
        "at most one PATCH per blob: {patches}"
    );
}

// ---- 4. Media types with parameters ---------------------------------------------------------

/// A small OCI image pushed by digest straight to docker-registry; returns its manifest JSON
/// (not pushed) so a test can vary it.
fn image_manifest(c: &RegistryClient, repo: &str) -> Value {
    let image = push_image(c, repo, None, Format::Oci, "linux/amd64", &[1024]);
    serde_json::from_slice(&image.bytes).expect("manifest")
}

fn put_manifest(
    front: Option<&EcrFront>,
    host: &str,
    repo: &str,
    reference: &str,
    content_type: &str,
    bytes: &[u8],
) -> Response {
    let rb = http()
        .put(url(host, &format!("/v2/{repo}/manifests/{reference}")))
        .header("content-type", content_type)
        .body(bytes.to_vec());
    match front {
        Some(f) => ecr_auth(f, rb),
        None => rb,
    }
    .send()
    .expect("PUT manifest")
}

/// ECR refuses media types with parameters, in the `Content-Type` and in the manifest
/// (`…+json;version=0.2`); docker-registry accepts both.
#[test]
fn media_types_with_parameters_are_refused() {
    let reg = TestRegistry::start();
    let front = EcrFront::start(&reg, FrontConfig::ecr());
    let c = RegistryClient::new(&reg);
    let manifest = image_manifest(&c, "app/params");
    let bytes = to_manifest_bytes(&manifest);
    let mut artifact = manifest.clone();
    artifact["artifactType"] = json!("application/vnd.dev.sigstore.bundle+json;version=0.2");
    let artifact = to_manifest_bytes(&artifact);
    let with_charset = format!("{OCI_MANIFEST}; charset=utf-8");

    for (ct, body) in [(with_charset.as_str(), &bytes), (OCI_MANIFEST, &artifact)] {
        let (status, code, message) = error_of(put_manifest(
            Some(&front),
            &front.host(),
            "app/params",
            "v1",
            ct,
            body,
        ));
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{ct}: {message}");
        assert_eq!(code, "UNSUPPORTED", "{message}");
        assert!(message.contains(';'), "names the media type: {message}");
        let direct = put_manifest(None, &reg.host(), "app/params", "direct", ct, body);
        assert_eq!(
            direct.status(),
            StatusCode::CREATED,
            "docker-registry accepts {ct}"
        );
    }
    let ok = put_manifest(
        Some(&front),
        &front.host(),
        "app/params",
        "v1",
        OCI_MANIFEST,
        &bytes,
    );
    assert_eq!(ok.status(), StatusCode::CREATED);
}

// ---- 8. Manifest size ----------------------------------------------------------------------

/// `manifest` padded with an annotation to exactly `size` bytes.
fn padded(manifest: &Value, size: usize) -> Vec<u8> {
    let mut m = manifest.clone();
    m["annotations"] = json!({"org.example.padding": ""});
    let base = to_manifest_bytes(&m).len();
    assert!(size > base);
    m["annotations"]["org.example.padding"] = json!("x".repeat(size - base));
    let bytes = to_manifest_bytes(&m);
    assert_eq!(bytes.len(), size);
    bytes
}

/// A manifest of 4 MiB is stored; one byte more is refused with ECR's shape (docker-registry 2.8
/// refuses it as well, with its own 400 `MANIFEST_INVALID`).
#[test]
fn a_manifest_over_four_mebibytes_is_refused() {
    let reg = TestRegistry::start();
    let front = EcrFront::start(&reg, FrontConfig::ecr());
    let c = RegistryClient::new(&reg);
    let manifest = image_manifest(&c, "app/big");

    let at_limit = padded(&manifest, ECR_MAX_MANIFEST_BYTES);
    let resp = put_manifest(
        Some(&front),
        &front.host(),
        "app/big",
        "limit",
        OCI_MANIFEST,
        &at_limit,
    );
    assert_eq!(resp.status(), StatusCode::CREATED, "{:?}", resp.text());

    let over = padded(&manifest, ECR_MAX_MANIFEST_BYTES + 1);
    let (status, code, message) = error_of(put_manifest(
        Some(&front),
        &front.host(),
        "app/big",
        "over",
        OCI_MANIFEST,
        &over,
    ));
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{message}");
    assert_eq!(code, "UNSUPPORTED");
    assert!(message.contains("4194304"), "{message}");
    assert_eq!(c.list_tags("app/big"), vec!["limit".to_owned()]);
    // docker-registry 2.8 refuses it too, in its own shape.
    let (status, code, _) = error_of(put_manifest(
        None,
        &reg.host(),
        "app/big",
        "direct",
        OCI_MANIFEST,
        &over,
    ));
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
}

// ---- 5. Tag immutability ---------------------------------------------------------------------

/// An OCI index listing `entries` (a fallback-tag-shaped document).
fn index_of(entries: &[&Pushed]) -> Vec<u8> {
    let manifests: Vec<Value> = entries.iter().map(|p| p.descriptor()).collect();
    to_manifest_bytes(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests,
            "annotations": {"org.example.nonce": nonce()}}),
    )
}

/// `IMMUTABLE_WITH_EXCLUSION`: a release tag cannot move (ECR's `TAG_INVALID`), the excluded
/// `sha256-*` tags can; `IMMUTABLE` refuses to move `sha256-*` too, so a second signature (a
/// rewritten `.sig` tag) fails there and succeeds with the exclusion.
#[test]
fn immutable_tags_are_refused_while_excluded_tags_move() {
    let reg = TestRegistry::start();
    let front = EcrFront::start(
        &reg,
        FrontConfig {
            tag_immutability: vec![
                Immutability::with_exclusions("prod/", &["sha256-*"]),
                Immutability::immutable("locked/"),
            ],
            ..FrontConfig::ecr()
        },
    );
    let c = RegistryClient::new(&reg);
    let host = front.host();
    for repo in ["prod/app", "locked/app"] {
        let a = push_image(&c, repo, None, Format::Oci, "linux/amd64", &[1024]);
        let b = push_image(&c, repo, None, Format::Oci, "linux/arm64", &[1024]);
        let put = |tag: &str, bytes: &[u8], ct: &str| {
            put_manifest(Some(&front), &host, repo, tag, ct, bytes)
        };
        assert_eq!(
            put("1.0", &a.bytes, OCI_MANIFEST).status(),
            StatusCode::CREATED
        );
        assert_eq!(
            put("1.0", &a.bytes, OCI_MANIFEST).status(),
            StatusCode::CREATED,
            "the same digest again is no move"
        );
        let (status, code, message) = error_of(put("1.0", &b.bytes, OCI_MANIFEST));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
        assert_eq!(code, "TAG_INVALID");
        assert_eq!(
            message,
            format!(
                "The image tag '1.0' already exists in the '{repo}' repository and cannot be \
                 overwritten because the tag is immutable."
            )
        );
        assert_eq!(c.manifest(repo, "1.0").0, a.bytes, "the tag did not move");

        let fallback = a.fallback_tag();
        assert_eq!(
            put(&fallback, &index_of(&[&b]), OCI_INDEX).status(),
            StatusCode::CREATED
        );
        let moved = put(&fallback, &index_of(&[&b, &a]), OCI_INDEX).status();
        if repo == "prod/app" {
            assert_eq!(moved, StatusCode::CREATED, "sha256-* is excluded");
        } else {
            assert_eq!(moved, StatusCode::BAD_REQUEST, "IMMUTABLE has no exclusion");
        }
    }

    // The pipeline's signer: a second key rewrites the `.sig` tag (cosign#313).
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, _) = generate_key(dir.path(), "first", KEY_PASSWORD);
    let (second, _) = generate_key(dir.path(), "second", KEY_PASSWORD);
    for repo in ["prod/app", "locked/app"] {
        let sign = |key: &std::path::Path| {
            promote(&front)
                .arg("sign")
                .arg(format!("{host}/{repo}:1.0"))
                .arg("--key")
                .arg(key.display().to_string())
                .arg("--mode")
                .arg("legacy")
                .env("COSIGN_PASSWORD", KEY_PASSWORD)
                .run()
        };
        sign(&first).assert_ok();
        let run = sign(&second);
        if repo == "prod/app" {
            run.assert_ok();
        } else {
            assert_eq!(run.code, 1, "{}", run.describe());
            eprintln!(
                "a second signature in an IMMUTABLE repository: {}",
                run.error_line()
            );
            assert!(
                run.stderr.contains("immutable"),
                "ECR's message reaches the operator: {}",
                run.describe()
            );
        }
    }
}

// ---- 7. Long passwords ---------------------------------------------------------------------

/// The front takes `AWS:<~2,000-character token>` and nothing shorter (not even the token's
/// first 72 bytes, all that bcrypt would check), and speaks to a docker-registry that has its own
/// short htpasswd credentials.
#[test]
fn only_the_long_ecr_token_is_accepted() {
    let reg = TestRegistry::start_with_basic_auth("AWS", &format!("upstream-{}", nonce()));
    let front = EcrFront::start(&reg, FrontConfig::ecr());
    let token = front.password().expect("token").to_owned();
    assert!(token.len() > 1000, "{}", token.len());
    let http = http();
    let v2 = url(&front.host(), "/v2/");

    let none = http.get(&v2).send().expect("GET /v2/");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let challenge = none
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    for short in [&token[..72], "short"] {
        let resp = http
            .get(&v2)
            .basic_auth("AWS", Some(short))
            .send()
            .expect("GET /v2/");
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "{} chars",
            short.len()
        );
    }
    let resp = http
        .get(&v2)
        .basic_auth("AWS", Some(&token))
        .send()
        .expect("GET /v2/");
    assert_eq!(resp.status(), StatusCode::OK);

    // The CLI with the long token copies; with a short one it is refused.
    let c = RegistryClient::new(&reg);
    let pushed = push_image(
        &c,
        "team/app",
        Some("1"),
        Format::Oci,
        "linux/amd64",
        LAYERS,
    );
    let copy = |creds: String| {
        cli::copy(
            &[&front.host()],
            &format!("{}/team/app:1", front.host()),
            &format!("{}/prod/app:1", front.host()),
        )
        .env("PROMOTE_SRC_CREDS", creds.clone())
        .env("PROMOTE_DST_CREDS", creds)
        .run()
    };
    copy(format!("AWS:{}", &token[..72])).assert_failed("Registry.Unauthorized");
    let v = copy(front.creds()).assert_ok();
    assert_eq!(str_field(&v, "digest"), pushed.digest);
    assert_exact_copy(&c, "prod/app", "1", &pushed);
    assert!(
        front.requests().iter().any(|r| r.status == 401),
        "the CLI met the challenge first"
    );
}

// ---- 9. ECR's events through the template's rules ------------------------------------------

/// Every manifest PUT and DELETE through the front is the event ECR would send, put on moto's
/// default bus, where the template's own rules (support/pipeline.rs `Rules`: the patterns read
/// from infra/template.yaml, each routed to an SQS queue) decide what would start an execution:
/// a multi-arch push to an ingress repository matches exactly once (its tagged index), a signed
/// approval's push to an approvals repository matches the approval rule, and nothing the
/// pipeline or anyone else pushes into quarantine, trusted or approvals (an image, a referrer of
/// another type, a deletion) matches anything.
#[test]
fn pushes_send_ecr_events_and_only_an_ingress_tag_or_an_approval_matches_a_rule() {
    use crate::support::ecr_front::EventBridge;
    use crate::support::images::push_referrer;
    use crate::support::moto::{Moto, REGION};
    use crate::support::pipeline::{APPROVAL_TYPE, Rules};
    let moto = Moto::start();
    let registry = TestRegistry::start();
    let front = EcrFront::start(
        &registry,
        FrontConfig {
            events: Some(EventBridge {
                endpoint: moto.url(),
                region: REGION.into(),
            }),
            ..FrontConfig::ecr()
        },
    );
    let rules = Rules::route(&moto);
    let c = RegistryClient::with_basic_auth(&front.host(), "AWS", front.password().expect("token"));
    let sent = |from: usize| -> Vec<Value> {
        let emitted = front.emitted();
        for e in &emitted {
            assert!(e.put.is_ok(), "PutEvents failed: {e:?}");
        }
        emitted[from..]
            .iter()
            .map(|e| json!({"detail-type": e.detail_type, "detail": e.detail}))
            .collect()
    };

    // A multi-arch push: one ECR Image Action per manifest, the platforms with an empty tag;
    // the ingress rule matches the tagged index only.
    let app = push_index(&c, "incoming/app", "1.0", Format::Oci, PLATFORMS, &[1024]);
    let events = sent(0);
    assert_eq!(events.len(), PLATFORMS.len() + 1, "{events:#?}");
    for e in &events[..PLATFORMS.len()] {
        assert_eq!(e["detail"]["image-tag"], "", "{e:#}");
        assert_eq!(e["detail"]["manifest-media-type"], OCI_MANIFEST, "{e:#}");
        assert_eq!(
            e["detail"]["artifact-media-type"],
            "application/vnd.oci.image.config.v1+json"
        );
    }
    let last = &events[PLATFORMS.len()];
    assert_eq!(last["detail"]["image-tag"], "1.0", "{last:#}");
    assert_eq!(last["detail"]["image-digest"], app.digest.as_str());
    let matched = rules.matched(&moto);
    assert_eq!(matched.len(), 1, "{matched:#?}");
    assert_eq!(matched[0].0, "IngressPushRule");
    let event = &matched[0].1;
    assert_eq!(event["source"], "aws.ecr");
    assert_eq!(event["detail-type"], "ECR Image Action");
    assert_eq!(event["detail"]["image-digest"], app.digest.as_str());
    assert_eq!(event["detail"]["repository-name"], "incoming/app");

    // Pushes that must start nothing: a digest-only push to ingress; images in the pipeline's
    // own repositories; referrers of another type; an approval-typed referrer outside approvals.
    let before = front.emitted().len();
    c.push_manifest("incoming/app", &app.digest, &app.media_type, &app.bytes);
    for repo in ["quarantine/app", "trusted/app", "approvals/app"] {
        push_index(&c, repo, "1.0", Format::Oci, &["linux/amd64"], &[512]);
    }
    let in_trusted = push_index(
        &c,
        "trusted/app",
        "dev-1.0",
        Format::Oci,
        &["linux/amd64"],
        &[512],
    );
    push_referrer(
        &c,
        "approvals/app",
        &in_trusted,
        "application/spdx+json",
        "application/spdx+json",
        b"{}",
    );
    push_referrer(
        &c,
        "trusted/app",
        &in_trusted,
        APPROVAL_TYPE,
        "application/vnd.oci.empty.v1+json",
        b"{}",
    );
    let quiet = sent(before);
    assert_eq!(quiet.len(), 11, "{quiet:#?}");
    let matched = rules.matched(&moto);
    assert!(matched.is_empty(), "{matched:#?}");

    // An approval pushed to the approvals repository: ECR Referrer Action, the approval rule.
    let before = front.emitted().len();
    let approval = push_referrer(
        &c,
        "approvals/app",
        &in_trusted,
        APPROVAL_TYPE,
        "application/vnd.oci.empty.v1+json",
        b"{}",
    );
    let events = sent(before);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["detail-type"], "ECR Referrer Action");
    assert_eq!(events[0]["detail"]["artifact-media-type"], APPROVAL_TYPE);
    let matched = rules.matched(&moto);
    assert_eq!(matched.len(), 1, "{matched:#?}");
    assert_eq!(matched[0].0, "ApprovalReferrerRule");
    assert_eq!(
        matched[0].1["detail"]["image-digest"],
        approval.digest.as_str()
    );

    // Its deletion is an event too, which no rule takes for an approval.
    let resp = ecr_auth(
        &front,
        http().delete(url(
            &front.host(),
            &format!("/v2/approvals/app/manifests/{}", approval.digest),
        )),
    )
    .send()
    .expect("DELETE");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let events = sent(before + 1);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["detail"]["action-type"], "DELETE");
    assert!(rules.matched(&moto).is_empty());

    // The shapes ECR documents but the front does not send: a digest-only push without any
    // `image-tag` (aws-oci-facts.md §1.1) matches nothing; an approval reported as an ECR Image
    // Action (whether ECR uses it for referrers is undocumented, §1.2) matches the approval rule.
    let put = |detail_type: &str, detail: Value| {
        moto.events(
            "PutEvents",
            json!({"Entries": [{"Source": "aws.ecr", "DetailType": detail_type,
                "Detail": detail.to_string(), "EventBusName": "default"}]}),
        );
    };
    put(
        "ECR Image Action",
        json!({"result": "SUCCESS", "action-type": "PUSH", "repository-name": "incoming/app",
            "image-digest": app.digest, "manifest-media-type": OCI_INDEX}),
    );
    assert!(rules.matched(&moto).is_empty());
    put(
        "ECR Image Action",
        json!({"result": "SUCCESS", "action-type": "PUSH", "repository-name": "approvals/app",
            "image-digest": approval.digest, "manifest-media-type": OCI_MANIFEST,
            "artifact-media-type": APPROVAL_TYPE}),
    );
    let matched = rules.matched(&moto);
    assert_eq!(matched.len(), 1, "{matched:#?}");
    assert_eq!(matched[0].0, "ApprovalReferrerRule");
    // A failed push is no push.
    put(
        "ECR Image Action",
        json!({"result": "FAILED", "action-type": "PUSH", "repository-name": "incoming/app",
            "image-digest": app.digest, "image-tag": "1.0"}),
    );
    assert!(rules.matched(&moto).is_empty());
}
