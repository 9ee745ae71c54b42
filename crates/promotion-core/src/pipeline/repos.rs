//! Where images come from and go to: one quarantine and one trusted repository per application
//! (docs/DESIGN.md, "Repositories per application").
//!
//! A deployment names a registry and three prefixes: an ECR push to `<ingress><app>` is copied
//! to `<quarantine><app>` and promoted to `<trusted><app>` (by default `incoming/app` →
//! `quarantine/app` → `trusted/app`). Environment tags, signatures and lifecycle rules live in
//! the application's own trusted repository, so two applications that both push `2.0.0` get
//! `trusted/a:dev-2.0.0` and `trusted/b:dev-2.0.0`, and neither can take the other's tag.
//!
//! `promote run --quarantine REPO --trusted REPO` names the two repositories of its one
//! application instead ([`Repositories::fixed`]).
//!
//! Every step checks the references it is handed against this layout: copy writes only to
//! quarantine, promote reads only quarantine and writes only to the same application's trusted
//! repository, sign and retag act only on trusted, the gate reads only the pipeline's own
//! repositories.

use super::{PipelineError, is_path_component, parse_repository};
use crate::reference::ImageRef;

/// The longest repository name ECR accepts.
const MAX_REPOSITORY_NAME: usize = 256;

/// The repositories of a deployment.
#[derive(Debug, Clone)]
pub struct Repositories {
    /// The registry host of the ingress repositories named by ECR push events.
    pub ingress_registry: Option<String>,
    layout: Layout,
}

#[derive(Debug, Clone)]
enum Layout {
    /// Per application, under prefixes of one registry.
    Prefixes {
        registry: String,
        ingress: String,
        quarantine: String,
        trusted: String,
        /// Where approvers push signed approvals (`None`: no approvals are read).
        approvals: Option<String>,
    },
    /// One application's two repositories.
    Fixed {
        quarantine: ImageRef,
        trusted: ImageRef,
    },
}

/// A validated application name: one or more repository path components
/// (`[a-z0-9]+([._-][a-z0-9]+)*`, separated by `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application(String);

impl Application {
    /// Validate `s` as an application name; `field` names it in the error.
    pub fn parse(field: &str, s: &str) -> Result<Application, PipelineError> {
        if s.is_empty() || s.len() > 200 || !s.split('/').all(is_path_component) {
            return Err(PipelineError::Input(format!(
                "{field}: {s:?} is not an application name: lowercase letters, digits and . _ - \
                 between slashes, at most 200 characters"
            )));
        }
        Ok(Application(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A prefix: repository path components ending in `/`.
fn prefix(what: &str, s: &str) -> Result<String, PipelineError> {
    let bad = || {
        PipelineError::Input(format!(
            "{what}: {s:?} must be a repository path prefix ending in '/', e.g. \"quarantine/\""
        ))
    };
    let path = s.strip_suffix('/').ok_or_else(bad)?;
    Application::parse(what, path).map_err(|_| bad())?;
    Ok(s.to_owned())
}

impl Repositories {
    /// Per-application repositories under three prefixes of `registry`. None of the prefixes
    /// may be a prefix of another: a push into quarantine or trusted must never look like an
    /// ingress push (a loop), nor quarantine like trusted.
    pub fn per_application(
        registry: &str,
        ingress: &str,
        quarantine: &str,
        trusted: &str,
        ingress_registry: Option<String>,
    ) -> Result<Repositories, PipelineError> {
        // The registry host, checked as a repository reference's host is.
        parse_repository("registry", &format!("{registry}/x"))?;
        let ingress = prefix("ingress prefix", ingress)?;
        let quarantine = prefix("quarantine prefix", quarantine)?;
        let trusted = prefix("trusted prefix", trusted)?;
        let all = [
            ("ingress", &ingress),
            ("quarantine", &quarantine),
            ("trusted", &trusted),
        ];
        for (a, pa) in all {
            for (b, pb) in all {
                if a != b && pb.starts_with(pa.as_str()) {
                    return Err(PipelineError::Input(format!(
                        "the {a} prefix {pa:?} is a prefix of the {b} prefix {pb:?}: the \
                         pipeline's repositories must not overlap"
                    )));
                }
            }
        }
        Ok(Repositories {
            ingress_registry,
            layout: Layout::Prefixes {
                registry: registry.to_owned(),
                ingress,
                quarantine,
                trusted,
                approvals: None,
            },
        })
    }

    /// Each application's approvals repository is `<prefix><app>` in the same registry; the
    /// prefix must not overlap the other three (an approval push must never look like an
    /// ingress push, nor an approvals repository like a trusted one).
    pub fn with_approvals_prefix(mut self, prefix_str: &str) -> Result<Self, PipelineError> {
        let p = prefix("approvals prefix", prefix_str)?;
        if let Layout::Prefixes {
            ingress,
            quarantine,
            trusted,
            approvals,
            ..
        } = &mut self.layout
        {
            for (name, other) in [
                ("ingress", &*ingress),
                ("quarantine", &*quarantine),
                ("trusted", &*trusted),
            ] {
                if other.starts_with(p.as_str()) || p.starts_with(other.as_str()) {
                    return Err(PipelineError::Input(format!(
                        "the approvals prefix {p:?} and the {name} prefix {other:?} overlap: the \
                         pipeline's repositories must not overlap"
                    )));
                }
            }
            *approvals = Some(p);
        }
        Ok(self)
    }

    /// The approvals repository of the application whose trusted repository holds `image`:
    /// `<approvals prefix><app>` (per application), or the trusted repository itself for
    /// `promote run`'s one application. `Input.Invalid` when `image` is not in a trusted
    /// repository or no approvals prefix is configured.
    pub fn approvals_for(&self, image: &ImageRef, field: &str) -> Result<ImageRef, PipelineError> {
        let app = self.in_trusted(image, field)?;
        match &self.layout {
            Layout::Prefixes {
                registry,
                approvals: Some(a),
                ..
            } => repository(registry, a, &app),
            Layout::Prefixes {
                approvals: None, ..
            } => Err(PipelineError::Input(
                "no approvals repositories are configured (APPROVALS_PREFIX)".into(),
            )),
            Layout::Fixed { trusted, .. } => Ok(trusted.clone()),
        }
    }

    /// The repository named `repository` (as an ECR event names it) in the pipeline's registry,
    /// which must be an approvals repository; with the trusted repository of its application.
    pub fn approvals_named(
        &self,
        repository: &str,
        field: &str,
    ) -> Result<(ImageRef, ImageRef), PipelineError> {
        let (registry, approvals) = match &self.layout {
            Layout::Prefixes {
                registry,
                approvals: Some(a),
                ..
            } => (registry.as_str(), a.as_str()),
            Layout::Prefixes {
                approvals: None, ..
            } => {
                return Err(PipelineError::Input(
                    "no approvals repositories are configured (APPROVALS_PREFIX)".into(),
                ));
            }
            Layout::Fixed { trusted, .. } => {
                let repo =
                    parse_repository(field, &format!("{}/{repository}", trusted.registry()))?;
                self.in_trusted(&repo, field)?;
                return Ok((repo.clone(), repo));
            }
        };
        let repo = parse_repository(field, &format!("{registry}/{repository}"))?;
        let refuse = || {
            PipelineError::Input(format!(
                "{field}: {repository:?} is not an approvals repository of this deployment \
                 ({registry}/{approvals}<application>)"
            ))
        };
        let app = repository
            .strip_prefix(approvals)
            .ok_or_else(refuse)
            .and_then(|a| Application::parse(field, a).map_err(|_| refuse()))?;
        Ok((repo, self.trusted_of(&app)?))
    }

    /// One application's quarantine and trusted repositories (`promote run`).
    pub fn fixed(
        quarantine: ImageRef,
        trusted: ImageRef,
        ingress_registry: Option<String>,
    ) -> Result<Repositories, PipelineError> {
        if quarantine.same_registry(&trusted) && quarantine.repository() == trusted.repository() {
            return Err(PipelineError::Input(
                "the quarantine and trusted repositories must be different repositories".into(),
            ));
        }
        Ok(Repositories {
            ingress_registry,
            layout: Layout::Fixed {
                quarantine: bare(&quarantine),
                trusted: bare(&trusted),
            },
        })
    }

    /// The application a source is promoted as: `given` (validated), else the path below the
    /// ingress prefix for a push to the ingress registry, else the source's repository path
    /// (without Docker Hub's `library/`).
    pub fn application_of_source(
        &self,
        src: &ImageRef,
        given: Option<&str>,
    ) -> Result<Application, PipelineError> {
        if let Some(g) = given {
            return Application::parse("application", g);
        }
        let path = src.repository();
        let below_ingress = match &self.layout {
            Layout::Prefixes { ingress, .. }
                if self.ingress_registry.as_deref() == Some(src.registry()) =>
            {
                path.strip_prefix(ingress.as_str())
            }
            _ => None,
        };
        let derived = match below_ingress {
            Some(rest) => rest,
            None if src.registry() == "docker.io" => path.strip_prefix("library/").unwrap_or(path),
            None => path,
        };
        Application::parse("application (from the source repository)", derived)
    }

    /// The quarantine repository of `app`.
    pub fn quarantine_of(&self, app: &Application) -> Result<ImageRef, PipelineError> {
        match &self.layout {
            Layout::Prefixes {
                registry,
                quarantine,
                ..
            } => repository(registry, quarantine, app),
            Layout::Fixed { quarantine, .. } => Ok(quarantine.clone()),
        }
    }

    /// The trusted repository of `app`.
    pub fn trusted_of(&self, app: &Application) -> Result<ImageRef, PipelineError> {
        match &self.layout {
            Layout::Prefixes {
                registry, trusted, ..
            } => repository(registry, trusted, app),
            Layout::Fixed { trusted, .. } => Ok(trusted.clone()),
        }
    }

    /// The application of `image` when it lies in a quarantine repository; `Input.Invalid`
    /// naming `field` otherwise.
    pub fn in_quarantine(
        &self,
        image: &ImageRef,
        field: &str,
    ) -> Result<Application, PipelineError> {
        self.locate(image, field, Which::Quarantine)
    }

    /// The application of `image` when it lies in a trusted repository; `Input.Invalid` naming
    /// `field` otherwise.
    pub fn in_trusted(&self, image: &ImageRef, field: &str) -> Result<Application, PipelineError> {
        self.locate(image, field, Which::Trusted)
    }

    /// The repository named `repository` in the pipeline's registry (an ECR event names
    /// repositories without their registry), which must be a trusted one.
    pub fn trusted_named(&self, repository: &str, field: &str) -> Result<ImageRef, PipelineError> {
        let registry = match &self.layout {
            Layout::Prefixes { registry, .. } => registry.as_str(),
            Layout::Fixed { trusted, .. } => trusted.registry(),
        };
        let repo = parse_repository(field, &format!("{registry}/{repository}"))?;
        self.in_trusted(&repo, field)?;
        Ok(repo)
    }

    /// The deployment's own registries: the pipeline's and the ingress registry.
    pub fn own_registries(&self) -> impl Iterator<Item = &str> {
        let pipeline = match &self.layout {
            Layout::Prefixes { registry, .. } => registry.as_str(),
            Layout::Fixed { quarantine, .. } => quarantine.registry(),
        };
        std::iter::once(pipeline).chain(self.ingress_registry.as_deref())
    }

    /// `image` lies in one of the pipeline's own repositories (the gate reads nothing else).
    pub fn in_pipeline(&self, image: &ImageRef, field: &str) -> Result<(), PipelineError> {
        self.in_quarantine(image, field)
            .or_else(|_| self.in_trusted(image, field))
            .map(drop)
            .map_err(|_| {
                PipelineError::Input(format!(
                    "{field}: {image} is not in a quarantine or trusted repository of this \
                     deployment ({})",
                    self.describe()
                ))
            })
    }

    fn locate(
        &self,
        image: &ImageRef,
        field: &str,
        which: Which,
    ) -> Result<Application, PipelineError> {
        let name = which.name();
        let refuse = || {
            PipelineError::Input(format!(
                "{field}: {image} is not in the {name} repository {}",
                self.describe_one(which)
            ))
        };
        match &self.layout {
            Layout::Prefixes {
                registry,
                quarantine,
                trusted,
                ..
            } => {
                let p = match which {
                    Which::Quarantine => quarantine,
                    Which::Trusted => trusted,
                };
                if image.registry() != registry {
                    return Err(refuse());
                }
                let app = image
                    .repository()
                    .strip_prefix(p.as_str())
                    .ok_or_else(refuse)?;
                Application::parse(field, app).map_err(|_| refuse())
            }
            Layout::Fixed {
                quarantine,
                trusted,
            } => {
                let r = match which {
                    Which::Quarantine => quarantine,
                    Which::Trusted => trusted,
                };
                if !(image.same_registry(r) && image.repository() == r.repository()) {
                    return Err(refuse());
                }
                let last = r.repository().rsplit('/').next().unwrap_or_default();
                Application::parse(field, last).map_err(|_| refuse())
            }
        }
    }

    fn describe_one(&self, which: Which) -> String {
        match (&self.layout, which) {
            (
                Layout::Prefixes {
                    registry,
                    quarantine,
                    ..
                },
                Which::Quarantine,
            ) => {
                format!("{registry}/{quarantine}<application>")
            }
            (
                Layout::Prefixes {
                    registry, trusted, ..
                },
                Which::Trusted,
            ) => {
                format!("{registry}/{trusted}<application>")
            }
            (Layout::Fixed { quarantine, .. }, Which::Quarantine) => quarantine.repo_path(),
            (Layout::Fixed { trusted, .. }, Which::Trusted) => trusted.repo_path(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}, {}",
            self.describe_one(Which::Quarantine),
            self.describe_one(Which::Trusted)
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Quarantine,
    Trusted,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Quarantine => "quarantine",
            Which::Trusted => "trusted",
        }
    }
}

/// The repository alone, without tag or digest.
fn bare(r: &ImageRef) -> ImageRef {
    ImageRef::from_parts(r.registry(), r.repository(), None, None)
}

fn repository(registry: &str, prefix: &str, app: &Application) -> Result<ImageRef, PipelineError> {
    let name = format!("{prefix}{app}");
    if name.len() > MAX_REPOSITORY_NAME {
        return Err(PipelineError::Input(format!(
            "application {app:?}: the repository name {name:?} is longer than ECR's \
             {MAX_REPOSITORY_NAME} characters"
        )));
    }
    Ok(ImageRef::from_parts(registry, &name, None, None))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorType};

    fn repos() -> Repositories {
        Repositories::per_application(
            "reg.test",
            "incoming/",
            "quarantine/",
            "trusted/",
            Some("reg.test".into()),
        )
        .unwrap()
    }

    fn r(s: &str) -> ImageRef {
        s.parse().unwrap()
    }

    #[test]
    fn each_application_has_its_own_quarantine_and_trusted_repository() {
        let repos = repos();
        for (src, given, app) in [
            ("reg.test/incoming/a:2.0.0", None, "a"),
            ("reg.test/incoming/team/b:2.0.0", None, "team/b"),
            ("docker.io/library/nginx:1.27", None, "nginx"),
            ("ghcr.io/org/tool:1", None, "org/tool"),
            ("ghcr.io/org/tool:1", Some("tools/t"), "tools/t"),
        ] {
            let a = repos.application_of_source(&r(src), given).unwrap();
            assert_eq!(a.as_str(), app, "{src}");
            let q = repos.quarantine_of(&a).unwrap();
            let t = repos.trusted_of(&a).unwrap();
            assert_eq!(q.repo_path(), format!("reg.test/quarantine/{app}"));
            assert_eq!(t.repo_path(), format!("reg.test/trusted/{app}"));
            let pinned = q.pinned(crate::digest::Digest::of(b"x"));
            assert_eq!(repos.in_quarantine(&pinned, "q").unwrap(), a);
            assert!(repos.in_trusted(&pinned, "t").is_err());
            assert!(repos.in_pipeline(&pinned, "image").is_ok());
        }
    }

    #[test]
    fn foreign_repositories_overlapping_prefixes_and_bad_names_are_refused() {
        let repos = repos();
        for outside in [
            "reg.test/incoming/a@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "other.test/trusted/a@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "reg.test/trustedx/a@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            let e = repos.in_pipeline(&r(outside), "image").unwrap_err();
            assert_eq!(e.error_type(), ErrorType::InputInvalid);
            assert!(
                e.to_string().contains("not in a quarantine or trusted"),
                "{e}"
            );
        }
        for (i, q, t) in [
            ("incoming/", "incoming/quarantine/", "trusted/"),
            ("promotion/", "promotion/quarantine/", "promotion/trusted/"),
            ("incoming/", "quarantine/", "quarantine/"),
        ] {
            let e = Repositories::per_application("reg.test", i, q, t, None).unwrap_err();
            assert!(e.to_string().contains("must not overlap"), "{e}");
        }
        for bad in ["quarantine", "/quarantine/", "Quarantine/", "a//"] {
            let e = Repositories::per_application("reg.test", "incoming/", bad, "trusted/", None)
                .unwrap_err();
            assert!(e.to_string().contains("quarantine prefix"), "{bad}: {e}");
        }
        for bad in ["", "A", "a/../b", "a//b", "-a"] {
            assert!(Application::parse("application", bad).is_err(), "{bad:?}");
        }
        let long = "a".repeat(200);
        let a = Application::parse("application", &long).unwrap();
        let deep = Repositories::per_application(
            "reg.test",
            "incoming/",
            &format!("{}/", "q".repeat(60)),
            "trusted/",
            None,
        )
        .unwrap();
        assert!(
            deep.quarantine_of(&a)
                .unwrap_err()
                .to_string()
                .contains("256")
        );
    }

    #[test]
    fn each_application_has_an_approvals_repository_that_overlaps_nothing() {
        let repos = repos().with_approvals_prefix("approvals/").unwrap();
        let trusted = r(
            "reg.test/trusted/team/b@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        );
        assert_eq!(
            repos.approvals_for(&trusted, "image").unwrap().repo_path(),
            "reg.test/approvals/team/b"
        );
        let (a, t) = repos
            .approvals_named("approvals/team/b", "approval")
            .unwrap();
        assert_eq!(a.repo_path(), "reg.test/approvals/team/b");
        assert_eq!(t.repo_path(), "reg.test/trusted/team/b");
        for not in ["trusted/team/b", "incoming/b", "approvalsx/b"] {
            let e = repos.approvals_named(not, "approval").unwrap_err();
            assert!(
                e.to_string().contains("not an approvals repository"),
                "{not}: {e}"
            );
        }
        let q = r(
            "reg.test/quarantine/b@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        );
        assert!(repos.approvals_for(&q, "image").is_err());
        for bad in [
            "trusted/",
            "trusted/approvals/",
            "incoming/a/",
            "quarantine/",
        ] {
            let e = self::tests::repos().with_approvals_prefix(bad).unwrap_err();
            assert!(e.to_string().contains("overlap"), "{bad}: {e}");
        }
        let e = self::tests::repos()
            .approvals_for(&trusted, "image")
            .unwrap_err();
        assert!(e.to_string().contains("APPROVALS_PREFIX"), "{e}");
    }
}
