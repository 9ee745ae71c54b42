//! No egress surprises, and retries that neither gang up nor nest (docs/DESIGN.md, invariant 13
//! and "Retries and deadlines"), through the `promote` binary against hand-written stand-in
//! registries (`support/standin.rs`) that record every request and its `Authorization` header:
//! a redirect to plain HTTP on loopback, a token realm on another host, a source on an internal
//! address nobody allowed, a blob that always answers 500 and one whose answer never starts.

use crate::support::cli::{self, Run};
use crate::support::sha256_digest;
use crate::support::standin::{Reply, Request, StandIn};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// A one-layer image: (manifest bytes, config bytes, layer bytes).
fn image() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = b"not really a tarball, but bytes all the same".to_vec();
    let desc =
        |mt: &str, b: &[u8]| json!({"mediaType": mt, "digest": sha256_digest(b), "size": b.len()});
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar", &layer)],
    });
    (serde_json::to_vec(&manifest).expect("json"), config, layer)
}

/// The answer to a manifest request.
fn manifest_reply(manifest: &[u8]) -> Reply {
    Reply::Answer(
        200,
        vec![
            ("Content-Type".into(), MANIFEST_TYPE.into()),
            ("Docker-Content-Digest".into(), sha256_digest(manifest)),
        ],
        manifest.to_vec(),
    )
}

/// A source stand-in serving the image's manifest under any tag, and `blob` for blob requests.
fn source(blob: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> StandIn {
    let (manifest, ..) = image();
    StandIn::start(move |r| {
        if r.path.contains("/manifests/") {
            manifest_reply(&manifest)
        } else if r.path.contains("/blobs/") {
            blob(r)
        } else {
            Reply::status(404)
        }
    })
}

/// A destination stand-in that has nothing and accepts nothing (404 to everything): a copy that
/// fails at its source never gets further than asking it for blobs.
fn empty_destination() -> StandIn {
    StandIn::start(|_| Reply::status(404))
}

fn copy(insecure: &[&str], src: &str, dst: &str) -> Run {
    cli::copy(insecure, src, dst).run()
}

/// No manifest was written to `dst` (and so nothing points at a bad blob).
fn assert_nothing_written(dst: &StandIn, run: &Run) {
    let writes: Vec<Request> = dst
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" || r.method == "POST" || r.method == "PATCH")
        .collect();
    assert!(writes.is_empty(), "{writes:?}\n{}", run.describe());
}

#[test]
fn a_redirect_to_plain_http_on_loopback_fails_fast_and_is_not_followed() {
    let elsewhere = StandIn::start(|_| Reply::status(200));
    let target = format!("http://127.0.0.1:{}/latest/meta-data/", elsewhere.port());
    let src = StandIn::start(move |_| Reply::with_header(307, "Location", &target));
    let dst = empty_destination();
    let run = copy(
        &[&src.host, &dst.host],
        &format!("{}/team/app:1", src.host),
        &format!("{}/team/app:1", dst.host),
    );
    run.assert_failed("Registry.Protocol");
    let line = run.error_line();
    assert!(
        line.contains(&format!(
            "refused a redirect from {} to {}",
            src.host, elsewhere.host
        )) && line.contains("--redirect-host"),
        "{}",
        run.describe()
    );
    assert!(run.duration < Duration::from_secs(5), "{}", run.describe());
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
    assert_eq!(src.requests().len(), 1, "not retried: {:?}", src.requests());
    assert_nothing_written(&dst, &run);
}

#[test]
fn blobs_redirected_to_storage_are_fetched_only_from_a_named_host_and_without_credentials() {
    let (manifest, config, layer) = image();
    let blobs = [config, layer];
    // The registry's blob storage (`localhost`: another origin than the registry's
    // 127.0.0.1): serves any blob by its digest.
    let storage = StandIn::start(move |r| {
        blobs
            .iter()
            .find(|b| r.path.ends_with(&sha256_digest(b)))
            .map_or_else(
                || Reply::status(404),
                |b| Reply::body("application/octet-stream", b),
            )
    });
    let storage_host = format!("localhost:{}", storage.port());
    let to = format!("http://{storage_host}/blobs");
    // The source wants Basic credentials and sends every blob to its storage.
    let src = StandIn::start(move |r| {
        if r.authorization.is_none() {
            Reply::with_header(401, "WWW-Authenticate", "Basic realm=\"source\"")
        } else if r.path.contains("/manifests/") {
            manifest_reply(&manifest)
        } else if let Some((_, digest)) = r.path.split_once("/blobs/") {
            Reply::with_header(307, "Location", &format!("{to}/{digest}"))
        } else {
            Reply::status(404)
        }
    });
    let image_src = format!("{}/team/app:1", src.host);

    // Not named: refused at the first blob, naming the host to configure; nothing fetched
    // from storage, nothing written.
    let dst = empty_destination();
    let run = cli::copy(
        &[&src.host, &storage_host, &dst.host],
        &image_src,
        &format!("{}/team/app:1", dst.host),
    )
    .env("PROMOTE_SRC_CREDS", "alice:s3cret-password")
    .run();
    run.assert_failed("Registry.Protocol");
    assert!(
        run.error_line().contains(&format!("to {storage_host}"))
            && run.error_line().contains("--redirect-host"),
        "{}",
        run.describe()
    );
    assert!(storage.requests().is_empty(), "{:?}", storage.requests());
    assert_nothing_written(&dst, &run);

    // Named: the copy completes, and storage never sees the source's credentials.
    let registry = crate::support::registry::TestRegistry::start();
    let dst = registry.host();
    let run = cli::copy(
        &[&src.host, &storage_host, &dst],
        &image_src,
        &format!("{dst}/team/app:1"),
    )
    .global(storage_host.clone())
    .global("--redirect-host")
    .env("PROMOTE_SRC_CREDS", "alice:s3cret-password")
    .run();
    run.assert_ok();
    let heard = storage.requests();
    assert_eq!(heard.len(), 2, "config and layer: {heard:?}");
    for r in &heard {
        assert_eq!(r.authorization, None, "{r:?}");
    }
    assert!(
        src.requests().iter().any(|r| r
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic"))),
        "the source had the credentials"
    );
}

#[test]
fn a_token_realm_on_another_host_never_receives_the_registrys_credentials() {
    // The realm is `localhost` on another port: another origin than the registry's.
    let realm = StandIn::start(|_| Reply::body("application/json", br#"{"token":"anonymous"}"#));
    let realm_host = format!("localhost:{}", realm.port());
    let challenge = format!("Bearer realm=\"http://{realm_host}/token\",service=\"reg\"");
    let src = StandIn::start(move |r| {
        if r.authorization.as_deref() == Some("Bearer only-for-the-real-user") {
            Reply::status(200)
        } else {
            Reply::with_header(401, "WWW-Authenticate", &challenge)
        }
    });
    let dst = empty_destination();
    let run = cli::copy(
        &[&src.host, &realm_host, &dst.host],
        &format!("{}/team/app:1", src.host),
        &format!("{}/team/app:1", dst.host),
    )
    .env("PROMOTE_SRC_CREDS", "alice:s3cret-password")
    .run();
    run.assert_failed("Registry.Unauthorized");
    assert!(
        run.error_line().contains("no credentials were sent there"),
        "{}",
        run.describe()
    );
    let heard = realm.requests();
    assert!(!heard.is_empty(), "the token was asked for anonymously");
    for r in &heard {
        assert_eq!(r.authorization, None, "{r:?}");
    }
    for r in src.requests() {
        assert!(
            !r.authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Basic")),
            "{r:?}"
        );
    }
    assert!(
        !run.stderr.contains("s3cret-password") && !run.stdout.contains("s3cret-password"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_source_on_an_internal_address_nobody_allowed_is_refused_before_connecting() {
    let listening = StandIn::start(|_| Reply::status(200));
    let dst = empty_destination();
    for src in [
        "127.0.0.1:9001/x:1".to_owned(),
        format!("{}/x:1", listening.host),
    ] {
        let run = copy(&[&dst.host], &src, &format!("{}/x:1", dst.host));
        assert_eq!(run.code, 2, "Input.Invalid exits 2\n{}", run.describe());
        let line = run.error_line();
        assert!(line.ends_with("[Input.Invalid]"), "{}", run.describe());
        assert!(line.contains("internal address"), "{}", run.describe());
        assert!(
            line.contains("--allow-internal-registry"),
            "{}",
            run.describe()
        );
        let host = src.split('/').next().expect("host");
        assert!(line.contains(host), "names {host}\n{}", run.describe());
        assert!(run.duration < Duration::from_secs(5), "{}", run.describe());
    }
    assert!(
        listening.requests().is_empty(),
        "{:?}",
        listening.requests()
    );
    assert!(dst.requests().is_empty(), "{:?}", dst.requests());
}

#[test]
fn a_blob_that_always_answers_500_ends_within_30_s_with_one_line() {
    let src = source(|_| Reply::status(500));
    let dst = empty_destination();
    let run = copy(
        &[&src.host, &dst.host],
        &format!("{}/team/app:1", src.host),
        &format!("{}/team/app:1", dst.host),
    );
    run.assert_failed("Registry.Transient");
    let line = run.only_stderr_line();
    assert!(line.contains("HTTP 500"), "{}", run.describe());
    assert!(line.contains("gave up after"), "{}", run.describe());
    assert!(
        run.duration <= Duration::from_secs(30),
        "{}",
        run.describe()
    );
    // One retry layer: each blob's GET is tried at most 6 times (nested retries made it 36).
    let blob_gets = src
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/"))
        .count();
    assert!(blob_gets <= 12, "{blob_gets} blob GETs\n{}", run.describe());
    assert_nothing_written(&dst, &run);
    eprintln!(
        "always-500 blob: ended after {:?}, {blob_gets} blob GETs",
        run.duration
    );
}

#[test]
fn a_blob_answer_that_never_starts_ends_within_90_s_with_one_line() {
    let stalled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = stalled.clone();
    let src = source(move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Reply::Stall
    });
    let dst = empty_destination();
    // The production deadlines: 20 s to the first byte, no retry after 25 s.
    let run = copy(
        &[&src.host, &dst.host],
        &format!("{}/team/app:1", src.host),
        &format!("{}/team/app:1", dst.host),
    );
    run.assert_failed("Registry.Transient");
    let line = run.only_stderr_line();
    assert!(line.contains("no answer within 20s"), "{}", run.describe());
    assert!(
        run.duration <= Duration::from_secs(90),
        "{}",
        run.describe()
    );
    assert!(
        stalled.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "retried within the budget\n{}",
        run.describe()
    );
    assert_nothing_written(&dst, &run);
    eprintln!("stalled blob: ended after {:?}", run.duration);
}
