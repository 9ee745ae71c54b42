//! An in-memory registry for handler tests (feature `test-util`).
//!
//! Hand-written because no real registry can do what these tests need: count every call,
//! answer a mount with 202, fail the next N blob reads, serve corrupt bytes, or pretend to have
//! the referrers API. Behaviour that a real server can show is tested against Debian's
//! `docker-registry` in `tests/`.

use super::{BlobStream, PutManifest, Registry, RegistryError};
use crate::digest::Digest;
use crate::manifest::{Descriptor, ManifestDoc, RawManifest};
use crate::reference::ImageRef;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Default)]
struct Repo {
    manifests: HashMap<Digest, RawManifest>,
    tags: BTreeMap<String, Digest>,
    blobs: HashMap<Digest, Bytes>,
}

/// Calls observed, for assertions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Calls {
    /// Blob uploads committed.
    pub blob_uploads: usize,
    /// Bytes received in committed uploads.
    pub bytes_uploaded: u64,
    /// Mount requests (accepted or not).
    pub mounts: usize,
    /// Manifest PUTs.
    pub manifest_puts: usize,
    /// Manifest GETs by tag (resolutions).
    pub tag_gets: usize,
}

/// Knobs for fault injection.
#[derive(Debug, Default, Clone)]
pub struct Behaviour {
    /// Answer mounts with 202 (declined).
    pub decline_mounts: bool,
    /// Pretend to implement the referrers API.
    pub referrers_api: bool,
    /// Fail this many blob GETs with a transient error mid-stream.
    pub fail_blob_reads: usize,
    /// Answer 405 to a manifest whose `subject` is an index, as ECR does
    /// (containers-roadmap#2783).
    pub refuse_index_subjects: bool,
    /// Once, right after a PUT of this tag, put this manifest under it as a concurrent writer
    /// would whose read came before ours (a lost update).
    pub clobber_after_put: Option<(String, RawManifest)>,
}

/// The in-memory registry. Keys are `registry/repository`.
#[derive(Default)]
pub struct MemoryRegistry {
    repos: Mutex<HashMap<String, Repo>>,
    calls: Mutex<Calls>,
    behaviour: Mutex<Behaviour>,
}

#[allow(clippy::unwrap_used)] // test double: a poisoned lock is a failed test anyway
impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Change the fault knobs.
    pub fn set_behaviour(&self, b: Behaviour) {
        *self.behaviour.lock().unwrap() = b;
    }

    /// Calls so far.
    pub fn calls(&self) -> Calls {
        self.calls.lock().unwrap().clone()
    }

    /// Store a blob directly (fixtures).
    pub fn put_blob_bytes(&self, repo: &ImageRef, bytes: Bytes) -> Digest {
        let d = Digest::of(&bytes);
        self.repos
            .lock()
            .unwrap()
            .entry(repo.repo_path())
            .or_default()
            .blobs
            .insert(d.clone(), bytes);
        d
    }

    /// Replace a stored blob's bytes without changing its digest key (corruption).
    pub fn corrupt_blob(&self, repo: &ImageRef, digest: &Digest, bytes: Bytes) {
        self.repos
            .lock()
            .unwrap()
            .entry(repo.repo_path())
            .or_default()
            .blobs
            .insert(digest.clone(), bytes);
    }

    /// Store a manifest directly, optionally under a tag (fixtures).
    pub fn put_manifest_bytes(&self, repo: &ImageRef, tag: Option<&str>, m: RawManifest) {
        let mut repos = self.repos.lock().unwrap();
        let r = repos.entry(repo.repo_path()).or_default();
        if let Some(t) = tag {
            r.tags.insert(t.to_owned(), m.digest.clone());
        }
        r.manifests.insert(m.digest.clone(), m);
    }

    /// Point a tag elsewhere (a tag that moves mid-execution).
    pub fn retag(&self, repo: &ImageRef, tag: &str, digest: &Digest) {
        self.repos
            .lock()
            .unwrap()
            .entry(repo.repo_path())
            .or_default()
            .tags
            .insert(tag.to_owned(), digest.clone());
    }

    /// Whether the repository has a blob.
    pub fn has_blob(&self, repo: &ImageRef, digest: &Digest) -> bool {
        self.blob(repo, digest).is_some()
    }

    /// A stored blob's bytes.
    pub fn blob(&self, repo: &ImageRef, digest: &Digest) -> Option<Bytes> {
        self.repos
            .lock()
            .unwrap()
            .get(&repo.repo_path())
            .and_then(|r| r.blobs.get(digest).cloned())
    }

    /// The digest a tag names.
    pub fn tag(&self, repo: &ImageRef, tag: &str) -> Option<Digest> {
        self.repos
            .lock()
            .unwrap()
            .get(&repo.repo_path())
            .and_then(|r| r.tags.get(tag).cloned())
    }

    /// Every tag of a repository.
    pub fn tags(&self, repo: &ImageRef) -> Vec<String> {
        self.repos
            .lock()
            .unwrap()
            .get(&repo.repo_path())
            .map(|r| r.tags.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A stored manifest by digest.
    pub fn manifest(&self, repo: &ImageRef, digest: &Digest) -> Option<RawManifest> {
        self.repos
            .lock()
            .unwrap()
            .get(&repo.repo_path())
            .and_then(|r| r.manifests.get(digest).cloned())
    }

    fn lookup(&self, repo: &ImageRef, reference: &str) -> Option<RawManifest> {
        let repos = self.repos.lock().unwrap();
        let r = repos.get(&repo.repo_path())?;
        let digest = match reference.parse::<Digest>() {
            Ok(d) => d,
            Err(_) => r.tags.get(reference)?.clone(),
        };
        r.manifests.get(&digest).cloned()
    }
}

fn not_found(what: String) -> RegistryError {
    RegistryError::NotFound { what }
}

#[allow(clippy::unwrap_used)]
#[async_trait]
impl Registry for MemoryRegistry {
    async fn get_manifest(
        &self,
        repo: &ImageRef,
        reference: &str,
    ) -> Result<RawManifest, RegistryError> {
        if reference.parse::<Digest>().is_err() {
            self.calls.lock().unwrap().tag_gets += 1;
        }
        self.lookup(repo, reference)
            .ok_or_else(|| not_found(format!("manifest {}", repo.at(reference))))
    }

    async fn head_manifest(
        &self,
        repo: &ImageRef,
        reference: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        Ok(self.lookup(repo, reference).map(|m| m.digest))
    }

    async fn put_manifest(
        &self,
        repo: &ImageRef,
        reference: &str,
        m: &RawManifest,
    ) -> Result<PutManifest, RegistryError> {
        // Like a real registry: every referenced blob and child must already be there.
        let (doc, _, _) = ManifestDoc::parse(&m.bytes, Some(&m.media_type)).map_err(|e| {
            RegistryError::Protocol {
                what: "put manifest".into(),
                detail: e.to_string(),
            }
        })?;
        if self.behaviour.lock().unwrap().refuse_index_subjects
            && doc.subject.as_ref().is_some_and(|s| {
                s.media_type == crate::manifest::OCI_INDEX
                    || s.media_type == crate::manifest::DOCKER_MANIFEST_LIST
            })
        {
            return Err(RegistryError::Protocol {
                what: "put manifest".into(),
                detail: "HTTP 405: UNSUPPORTED a subject that is an index".into(),
            });
        }
        let mut repos = self.repos.lock().unwrap();
        let r = repos.entry(repo.repo_path()).or_default();
        for b in doc.blobs() {
            if !r.blobs.contains_key(&b.digest) {
                return Err(RegistryError::Protocol {
                    what: "put manifest".into(),
                    detail: format!("MANIFEST_BLOB_UNKNOWN {}", b.digest),
                });
            }
        }
        for c in &doc.manifests {
            if !r.manifests.contains_key(&c.digest) {
                return Err(RegistryError::Protocol {
                    what: "put manifest".into(),
                    detail: format!("MANIFEST_BLOB_UNKNOWN {}", c.digest),
                });
            }
        }
        if let Ok(d) = reference.parse::<Digest>() {
            if d != m.digest {
                return Err(RegistryError::Protocol {
                    what: "put manifest".into(),
                    detail: "DIGEST_INVALID".into(),
                });
            }
        } else {
            r.tags.insert(reference.to_owned(), m.digest.clone());
        }
        r.manifests.insert(m.digest.clone(), m.clone());
        self.calls.lock().unwrap().manifest_puts += 1;
        let clobber = {
            let mut b = self.behaviour.lock().unwrap();
            match &b.clobber_after_put {
                Some((tag, _)) if tag == reference => b.clobber_after_put.take(),
                _ => None,
            }
        };
        if let Some((tag, theirs)) = clobber {
            r.tags.insert(tag, theirs.digest.clone());
            r.manifests.insert(theirs.digest.clone(), theirs);
        }
        let subject_processed =
            self.behaviour.lock().unwrap().referrers_api && doc.subject.is_some();
        Ok(PutManifest {
            digest: m.digest.clone(),
            subject_processed,
        })
    }

    async fn head_blob(
        &self,
        repo: &ImageRef,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let repos = self.repos.lock().unwrap();
        Ok(repos
            .get(&repo.repo_path())
            .and_then(|r| r.blobs.get(digest))
            .map(|b| b.len() as u64))
    }

    async fn get_blob(
        &self,
        repo: &ImageRef,
        digest: &Digest,
    ) -> Result<BlobStream, RegistryError> {
        let bytes = {
            let repos = self.repos.lock().unwrap();
            repos
                .get(&repo.repo_path())
                .and_then(|r| r.blobs.get(digest))
                .cloned()
        }
        .ok_or_else(|| not_found(format!("blob {digest}")))?;
        let fail = {
            let mut b = self.behaviour.lock().unwrap();
            let f = b.fail_blob_reads > 0;
            b.fail_blob_reads = b.fail_blob_reads.saturating_sub(1);
            f
        };
        let size = Some(bytes.len() as u64);
        // Serve in small chunks so streaming code sees more than one.
        let chunks: Vec<Result<Bytes, RegistryError>> = bytes
            .chunks(1024)
            .enumerate()
            .map(|(i, c)| {
                if fail && i == 1 {
                    Err(RegistryError::Transient {
                        what: "blob".into(),
                        detail: "connection reset".into(),
                        retry_after: None,
                    })
                } else {
                    Ok(Bytes::copy_from_slice(c))
                }
            })
            .collect();
        Ok(BlobStream {
            size,
            stream: futures_util::stream::iter(chunks).boxed(),
        })
    }

    async fn mount_blob(
        &self,
        repo: &ImageRef,
        digest: &Digest,
        from: &ImageRef,
    ) -> Result<bool, RegistryError> {
        self.calls.lock().unwrap().mounts += 1;
        if self.behaviour.lock().unwrap().decline_mounts {
            return Ok(false);
        }
        let mut repos = self.repos.lock().unwrap();
        let Some(bytes) = repos
            .get(&ImageRef::from_parts(repo.registry(), from.repository(), None, None).repo_path())
            .and_then(|r| r.blobs.get(digest))
            .cloned()
        else {
            return Ok(false);
        };
        repos
            .entry(repo.repo_path())
            .or_default()
            .blobs
            .insert(digest.clone(), bytes);
        Ok(true)
    }

    async fn put_blob(
        &self,
        repo: &ImageRef,
        digest: &Digest,
        size: u64,
        mut body: BlobStream,
    ) -> Result<(), RegistryError> {
        let mut buf = Vec::new();
        while let Some(chunk) = body.stream.next().await {
            // An error mid-body aborts the upload: nothing is committed.
            buf.extend_from_slice(&chunk?);
        }
        if buf.len() as u64 != size || Digest::of(&buf) != *digest {
            return Err(RegistryError::Protocol {
                what: "upload".into(),
                detail: "DIGEST_INVALID".into(),
            });
        }
        self.repos
            .lock()
            .unwrap()
            .entry(repo.repo_path())
            .or_default()
            .blobs
            .insert(digest.clone(), Bytes::from(buf));
        let mut c = self.calls.lock().unwrap();
        c.blob_uploads += 1;
        c.bytes_uploaded += size;
        Ok(())
    }

    async fn list_tags(&self, repo: &ImageRef) -> Result<Vec<String>, RegistryError> {
        Ok(self.tags(repo))
    }

    async fn referrers(
        &self,
        repo: &ImageRef,
        digest: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        if !self.behaviour.lock().unwrap().referrers_api {
            return Ok(None);
        }
        let repos = self.repos.lock().unwrap();
        let Some(r) = repos.get(&repo.repo_path()) else {
            return Ok(Some(Vec::new()));
        };
        let mut out = Vec::new();
        for m in r.manifests.values() {
            if let Ok((doc, _, _)) = ManifestDoc::parse(&m.bytes, Some(&m.media_type))
                && doc.subject.as_ref().is_some_and(|s| s.digest == *digest)
            {
                let mut d = m.descriptor();
                d.artifact_type = doc
                    .artifact_type
                    .clone()
                    .or(doc.config.as_ref().map(|c| c.media_type.clone()));
                out.push(d);
            }
        }
        Ok(Some(out))
    }
}
