//! The environments document: which environments exist, in which order a digest may enter
//! them, how their tags look, whether their tags may move, how many images each keeps.
//!
//! ```yaml
//! approval_artifact_type: application/vnd.ecr-promotion.approval.v1+json   # optional
//! environments:
//!   - name: dev                    # first: no prerequisite
//!   - name: staging                # `after` defaults to the environment listed before
//!   - name: prod
//!     keep: 100                    # lifecycle: newest images kept (default 30)
//!     tag_template: "{env}-{build}"  # the default
//!     extra_tags: []               # more templates, same rules
//!     allow_move: false            # the default: an environment tag never moves
//!     after: [staging]             # explicit prerequisites; [] for none
//!     approval_required: true      # default: true for every environment but the first
//!     approvers:                   # who may approve (signed approvals, see `approval`)
//!       - name: release-manager
//!         key: awskms:///alias/release-approver
//!       - name: qa-lead
//!         key: "-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n"
//! ```
//!
//! Approvals fail closed: every environment but the first requires a signed approval unless
//! the document says `approval_required: false`, and an environment that requires one but lists
//! no approvers can never be entered (the refusal says so).
//!
//! Parsed once at the edge and validated whole: unknown keys, bad names, templates that make
//! invalid tags and environments whose tag prefixes overlap (`prod-*` would also match
//! `prod-eu-7`, so lifecycle rules and order checks would mix them up) are refused by name.

use super::EnvError;
use crate::reference::is_valid_tag;
use crate::sign::PublicKey;
use serde::Deserialize;

/// The artifact type of approval referrers unless the document names another.
pub const DEFAULT_APPROVAL_ARTIFACT_TYPE: &str = "application/vnd.ecr-promotion.approval.v1+json";
/// Images an environment keeps unless it says otherwise.
pub const DEFAULT_KEEP: u32 = 30;
/// The tag template unless an environment names another.
pub const DEFAULT_TAG_TEMPLATE: &str = "{env}-{build}";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    environments: Vec<EnvDoc>,
    #[serde(default)]
    approval_artifact_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvDoc {
    name: String,
    #[serde(default)]
    tag_template: Option<String>,
    #[serde(default)]
    extra_tags: Vec<String>,
    #[serde(default)]
    allow_move: bool,
    #[serde(default)]
    after: Option<Vec<String>>,
    #[serde(default)]
    keep: Option<u32>,
    #[serde(default)]
    approval_required: Option<bool>,
    #[serde(default)]
    approvers: Vec<ApproverDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproverDoc {
    name: String,
    key: String,
}

/// Where an approver's public key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproverKey {
    /// A PEM public key given in the document.
    Pem(PublicKey),
    /// An AWS KMS key (`awskms:///<key id, ARN or alias>`), resolved at start-up.
    Kms(String),
}

/// One approver of an environment: a name (reported with every approval it signs) and a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// The name the document gives it; approvals report this, never the name they claim.
    pub name: String,
    /// Its key.
    pub key: ApproverKey,
}

/// A tag template: a fixed prefix (with `{env}` already filled in) followed by the build id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    prefix: String,
}

impl TagTemplate {
    /// Parses `template` for environment `env`: `{build}` exactly once, at the end; `{env}`
    /// anywhere before it; nothing else in braces.
    pub fn parse(template: &str, env: &str) -> Result<TagTemplate, String> {
        let Some(before) = template.strip_suffix("{build}") else {
            return Err(format!("tag template {template:?} must end with {{build}}"));
        };
        let prefix = before.replace("{env}", env);
        if prefix.contains(['{', '}']) {
            return Err(format!(
                "tag template {template:?}: only {{env}} and {{build}} may appear in braces"
            ));
        }
        // A one-character build id must make a valid tag.
        if !is_valid_tag(&format!("{prefix}0")) {
            return Err(format!(
                "tag template {template:?} makes tags like {:?}, which break the tag grammar \
                 [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}",
                format!("{prefix}0")
            ));
        }
        Ok(TagTemplate { prefix })
    }

    /// The fixed part every tag of this template starts with, e.g. `prod-`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The tag for `build`; `Input.Invalid` naming the tag when it breaks the grammar (bad
    /// characters, over 128 characters).
    pub fn render(&self, build: &str) -> Result<String, EnvError> {
        let tag = format!("{}{build}", self.prefix);
        if build.is_empty() || !is_valid_tag(&tag) {
            return Err(EnvError::Input(format!(
                "build id {build:?} makes the tag {:?}, which breaks the tag grammar \
                 [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}} ({} characters)",
                truncate(&tag),
                tag.len()
            )));
        }
        Ok(tag)
    }

    /// The build id of `tag` if the tag was made by this template.
    pub fn build_of<'t>(&self, tag: &'t str) -> Option<&'t str> {
        tag.strip_prefix(&self.prefix).filter(|b| !b.is_empty())
    }
}

fn truncate(s: &str) -> String {
    if s.len() <= 160 {
        s.to_owned()
    } else {
        format!("{}…", &s[..s.floor_char_boundary(160)])
    }
}

/// One environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Its name, e.g. `prod`.
    pub name: String,
    /// Its tag template.
    pub template: TagTemplate,
    /// Extra tag templates applied with the same build id and the same rules.
    pub extra: Vec<TagTemplate>,
    /// Whether its tags may be moved to another digest.
    pub allow_move: bool,
    /// Environments a digest must have entered first.
    pub after: Vec<String>,
    /// How many images the lifecycle policy keeps for it.
    pub keep: u32,
    /// Whether entering it needs a signed approval by one of `approvers`.
    pub approval_required: bool,
    /// Who may approve.
    pub approvers: Vec<Approver>,
}

/// The validated environments document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environments {
    list: Vec<Environment>,
    /// The artifact type of approval referrers.
    pub approval_artifact_type: String,
}

impl Default for Environments {
    /// `dev`, `staging`, `prod`, each after the one before, tags `<env>-<build>` that never move.
    fn default() -> Self {
        Environments::from_names(&["dev", "staging", "prod"], DEFAULT_KEEP)
            .expect("the built-in environments are valid")
    }
}

impl Environments {
    /// Parses a JSON or YAML document (JSON is YAML).
    pub fn parse(text: &str) -> Result<Environments, EnvError> {
        let doc: Doc = serde_yaml_ng::from_str(text)
            .map_err(|e| EnvError::Input(format!("environments document: {e}")))?;
        Self::build(doc.environments, doc.approval_artifact_type)
    }

    /// Environments with these names, in this order, each after the one before, with the
    /// default template and `keep` images each.
    pub fn from_names<S: AsRef<str>>(names: &[S], keep: u32) -> Result<Environments, EnvError> {
        let envs = names
            .iter()
            .map(|n| EnvDoc {
                name: n.as_ref().to_owned(),
                tag_template: None,
                extra_tags: Vec::new(),
                allow_move: false,
                after: None,
                keep: Some(keep),
                approval_required: None,
                approvers: Vec::new(),
            })
            .collect();
        Self::build(envs, None)
    }

    fn build(envs: Vec<EnvDoc>, approval: Option<String>) -> Result<Environments, EnvError> {
        let bad = |m: String| EnvError::Input(format!("environments document: {m}"));
        if envs.is_empty() {
            return Err(bad("no environment is listed".into()));
        }
        let mut list: Vec<Environment> = Vec::with_capacity(envs.len());
        for (i, doc) in envs.into_iter().enumerate() {
            let EnvDoc {
                name,
                tag_template: template,
                extra_tags: extra,
                allow_move,
                after,
                keep,
                approval_required,
                approvers,
            } = doc;
            if !valid_name(&name) {
                return Err(bad(format!(
                    "environment name {name:?} must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,62}}"
                )));
            }
            if list.iter().any(|e| e.name == name) {
                return Err(bad(format!("environment {name:?} is listed twice")));
            }
            let template =
                TagTemplate::parse(template.as_deref().unwrap_or(DEFAULT_TAG_TEMPLATE), &name)
                    .map_err(|m| bad(format!("{name}: {m}")))?;
            let extra = extra
                .iter()
                .map(|t| TagTemplate::parse(t, &name).map_err(|m| bad(format!("{name}: {m}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let after = match after {
                Some(a) => a,
                None if i == 0 => Vec::new(),
                None => vec![list[i - 1].name.clone()],
            };
            let keep = keep.unwrap_or(DEFAULT_KEEP);
            if keep == 0 {
                return Err(bad(format!("{name}: keep must be at least 1")));
            }
            let approvers = approvers
                .into_iter()
                .map(|a| approver(&name, a))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            for (j, a) in approvers.iter().enumerate() {
                if approvers[..j].iter().any(|b| b.name == a.name) {
                    return Err(bad(format!(
                        "{name}: approver {:?} is listed twice",
                        a.name
                    )));
                }
            }
            list.push(Environment {
                name,
                template,
                extra,
                allow_move,
                after,
                keep,
                approval_required: approval_required.unwrap_or(i > 0),
                approvers,
            });
        }
        for e in &list {
            for a in &e.after {
                if !list.iter().any(|x| &x.name == a) {
                    return Err(bad(format!(
                        "{}: `after` names unknown environment {a:?}",
                        e.name
                    )));
                }
                if a == &e.name {
                    return Err(bad(format!(
                        "{}: an environment cannot come after itself",
                        e.name
                    )));
                }
            }
        }
        check_cycles(&list).map_err(bad)?;
        // Every tag of one environment must be told apart from every tag of another.
        let prefixes: Vec<(&str, &str)> = list
            .iter()
            .flat_map(|e| {
                std::iter::once(&e.template)
                    .chain(&e.extra)
                    .map(move |t| (e.name.as_str(), t.prefix()))
            })
            .collect();
        for (a, pa) in &prefixes {
            for (b, pb) in &prefixes {
                if a != b && pb.starts_with(pa) {
                    return Err(bad(format!(
                        "the tags of {a:?} ({pa}*) would also match those of {b:?} ({pb}*); \
                         rename one or change its tag_template"
                    )));
                }
            }
        }
        let approval_artifact_type =
            approval.unwrap_or_else(|| DEFAULT_APPROVAL_ARTIFACT_TYPE.to_owned());
        if !valid_media_type(&approval_artifact_type) {
            return Err(bad(format!(
                "approval_artifact_type {approval_artifact_type:?} is not a media type"
            )));
        }
        Ok(Environments {
            list,
            approval_artifact_type,
        })
    }

    /// Every environment, in document order.
    pub fn all(&self) -> &[Environment] {
        &self.list
    }

    /// The environment called `name`; `Input.Invalid` listing the known ones otherwise.
    pub fn get(&self, name: &str) -> Result<&Environment, EnvError> {
        self.list.iter().find(|e| e.name == name).ok_or_else(|| {
            EnvError::Input(format!(
                "unknown environment {name:?} (known: {})",
                self.names().join(", ")
            ))
        })
    }

    /// The names, in document order.
    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(|e| e.name.as_str()).collect()
    }

    /// The first environment (where a freshly promoted digest is tagged).
    pub fn first(&self) -> &Environment {
        &self.list[0]
    }

    /// The environment whose tag template made `tag`, with the build id.
    pub fn owner_of<'t>(&self, tag: &'t str) -> Option<(&Environment, &'t str)> {
        self.list.iter().find_map(|e| {
            std::iter::once(&e.template)
                .chain(&e.extra)
                .find_map(|t| t.build_of(tag))
                .map(|b| (e, b))
        })
    }
}

/// An approver entry: a valid name and a PEM public key or an `awskms:///` URI.
fn approver(env: &str, a: ApproverDoc) -> Result<Approver, String> {
    if !valid_name(&a.name) {
        return Err(format!(
            "{env}: approver name {:?} must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,62}}",
            a.name
        ));
    }
    let key = if let Some(id) = a.key.strip_prefix("awskms:///") {
        if id.is_empty() || id.len() > 2048 || id.chars().any(|c| c.is_whitespace()) {
            return Err(format!(
                "{env}: approver {:?}: {:?} is not awskms:///<key id, ARN or alias>",
                a.name, a.key
            ));
        }
        ApproverKey::Kms(a.key.clone())
    } else {
        ApproverKey::Pem(PublicKey::from_pem(&a.key).map_err(|e| {
            format!(
                "{env}: approver {:?}: the key is neither awskms:///<key> nor a PEM public key \
                 ({e})",
                a.name
            )
        })?)
    };
    Ok(Approver { name: a.name, key })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_media_type(t: &str) -> bool {
    let Some((top, sub)) = t.split_once('/') else {
        return false;
    };
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    ok(top) && ok(sub)
}

/// `after` must not loop (`a` after `b` after `a`): no environment could ever be entered.
fn check_cycles(list: &[Environment]) -> Result<(), String> {
    fn visit<'a>(
        list: &'a [Environment],
        name: &'a str,
        path: &mut Vec<&'a str>,
    ) -> Result<(), String> {
        if path.contains(&name) {
            path.push(name);
            return Err(format!("`after` forms a cycle: {}", path.join(" → ")));
        }
        path.push(name);
        if let Some(e) = list.iter().find(|e| e.name == name) {
            for a in &e.after {
                visit(list, a, path)?;
            }
        }
        path.pop();
        Ok(())
    }
    for e in list {
        visit(list, &e.name, &mut Vec::new())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_dev_staging_prod_in_order() {
        let envs = Environments::default();
        assert_eq!(envs.names(), ["dev", "staging", "prod"]);
        assert!(envs.get("dev").unwrap().after.is_empty());
        assert_eq!(envs.get("prod").unwrap().after, ["staging"]);
        assert_eq!(envs.get("prod").unwrap().template.prefix(), "prod-");
        assert_eq!(envs.approval_artifact_type, DEFAULT_APPROVAL_ARTIFACT_TYPE);
    }

    #[test]
    fn a_document_sets_templates_order_moves_and_keep() {
        let envs = Environments::parse(
            "environments:\n  - name: dev\n    allow_move: true\n  - name: qa\n    after: []\n  \
             - name: prod\n    tag_template: release-{env}-v{build}\n    extra_tags: ['live-{build}']\n    \
             after: [dev, qa]\n    keep: 100\napproval_artifact_type: application/x.approval\n",
        )
        .unwrap();
        let prod = envs.get("prod").unwrap();
        assert_eq!(prod.template.render("7").unwrap(), "release-prod-v7");
        assert_eq!(prod.extra[0].render("7").unwrap(), "live-7");
        assert_eq!(prod.after, ["dev", "qa"]);
        assert_eq!(prod.keep, 100);
        assert!(envs.get("dev").unwrap().allow_move);
        assert!(envs.get("qa").unwrap().after.is_empty());
        assert_eq!(envs.approval_artifact_type, "application/x.approval");
        let (owner, build) = envs.owner_of("release-prod-v42").unwrap();
        assert_eq!((owner.name.as_str(), build), ("prod", "42"));
        assert!(envs.owner_of("latest").is_none());
    }

    #[test]
    fn bad_documents_name_what_is_wrong() {
        let cases = [
            ("environments: []", "no environment"),
            ("environments: [{name: dev, colour: red}]", "colour"),
            ("environments: [{name: 'Dev Env'}]", "Dev Env"),
            ("environments: [{name: dev}, {name: dev}]", "listed twice"),
            (
                "environments: [{name: dev, tag_template: '{build}-{env}'}]",
                "must end with",
            ),
            (
                "environments: [{name: dev, tag_template: '{env}-{sha}{build}'}]",
                "braces",
            ),
            (
                "environments: [{name: dev, tag_template: '-{env}{build}'}]",
                "tag grammar",
            ),
            (
                "environments: [{name: dev, after: [qa]}]",
                "unknown environment \"qa\"",
            ),
            ("environments: [{name: a, after: [b]}, {name: b}]", "cycle"),
            (
                "environments: [{name: prod}, {name: prod-eu}]",
                "would also match",
            ),
            ("environments: [{name: dev, keep: 0}]", "at least 1"),
            (
                "environments: [{name: dev}]\napproval_artifact_type: approval",
                "not a media type",
            ),
        ];
        for (doc, needle) in cases {
            let err = Environments::parse(doc).unwrap_err().to_string();
            assert!(err.contains(needle), "{doc}: {err}");
        }
        let err = Environments::default().get("qa").unwrap_err().to_string();
        assert!(
            err.contains("unknown environment \"qa\" (known: dev, staging, prod)"),
            "{err}"
        );
    }

    #[test]
    fn approvals_are_required_past_the_first_environment_unless_said_and_keys_are_checked() {
        let envs = Environments::default();
        let required: Vec<bool> = envs.all().iter().map(|e| e.approval_required).collect();
        assert_eq!(required, [false, true, true], "fail closed by default");
        assert!(envs.all().iter().all(|e| e.approvers.is_empty()));

        use crate::sign::Signer as _;
        let pem = crate::sign::local::LocalSigner::generate_p256()
            .public_key()
            .to_pem()
            .unwrap();
        let doc = serde_json::json!({"environments": [
            {"name": "dev", "approval_required": true,
             "approvers": [{"name": "ci", "key": "awskms:///alias/dev-approver"}]},
            {"name": "staging", "approval_required": false},
            {"name": "prod", "approvers": [{"name": "qa-lead", "key": pem}]},
        ]})
        .to_string();
        let envs = Environments::parse(&doc).unwrap();
        let dev = envs.get("dev").unwrap();
        assert!(dev.approval_required);
        assert_eq!(
            dev.approvers[0].key,
            ApproverKey::Kms("awskms:///alias/dev-approver".into())
        );
        assert!(!envs.get("staging").unwrap().approval_required);
        let prod = envs.get("prod").unwrap();
        assert!(prod.approval_required);
        assert!(matches!(prod.approvers[0].key, ApproverKey::Pem(_)));

        for (approvers, needle) in [
            (r#"[{"name": "a", "key": "not a key"}]"#, "neither awskms"),
            (r#"[{"name": "a", "key": "awskms:///"}]"#, "is not awskms"),
            (
                r#"[{"name": "a b", "key": "awskms:///k"}]"#,
                "approver name",
            ),
            (
                r#"[{"name": "a", "key": "awskms:///k"}, {"name": "a", "key": "awskms:///j"}]"#,
                "listed twice",
            ),
            (r#"[{"name": "a"}]"#, "key"),
        ] {
            let doc =
                format!(r#"{{"environments": [{{"name": "dev", "approvers": {approvers}}}]}}"#);
            let err = Environments::parse(&doc).unwrap_err().to_string();
            assert!(err.contains(needle), "{approvers}: {err}");
        }
    }

    #[test]
    fn render_refuses_bad_characters_and_over_long_tags() {
        let t = TagTemplate::parse(DEFAULT_TAG_TEMPLATE, "prod").unwrap();
        assert_eq!(t.render("1234").unwrap(), "prod-1234");
        assert!(
            t.render("a/b")
                .unwrap_err()
                .to_string()
                .contains("tag grammar")
        );
        assert!(t.render("").is_err());
        let long = "9".repeat(123);
        assert_eq!(t.render(&long).unwrap().len(), 128);
        let err = t.render(&format!("{long}9")).unwrap_err().to_string();
        assert!(err.contains("129 characters"), "{err}");
    }
}
