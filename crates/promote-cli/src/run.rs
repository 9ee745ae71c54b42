//! `promote run SRC --quarantine REPO --trusted REPO …`: the whole pipeline in-process, in the
//! state machine's order and with its invariants, for laptops and CI systems without Step
//! Functions: copy to quarantine (the source resolved once) → gate (polling while PENDING, up to
//! the policy's maximum wait) → promote and annotate (the gate re-checked first) → sign → tag
//! for the environment (signature verified first).
//!
//! The same `promotion_core::pipeline` functions the Lambdas call do the work; a local key file
//! and a findings file stand in for KMS and Inspector (both real services work too).

use crate::Cli;
use crate::args::{self, EnvFileArg, SrcDstCreds, entries};
use crate::inputs::{findings_source, load_policy, signer};
use crate::output::{Failure, done, input, parse_ref, print_json};
use clap::Args;
use promotion_aws::kms::KmsMessageMode;
use promotion_core::clock::SystemClock;
use promotion_core::ecr::EcrRegistry;
use promotion_core::gate::{Decision, GateError};
use promotion_core::pipeline::{
    self, CopyRequest, CopySettings, GateRequest, GateSettings, PromoteRequest, PromoteSettings,
    Repositories, RetagRequest, RetagSettings, SignRequest,
};
use promotion_core::poll::{Poll, repeat};
use promotion_core::sign::store::SignMode;
use serde_json::json;
use std::cell::RefCell;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `promote run`.
#[derive(Args)]
pub struct RunArgs {
    /// The image to promote (a tag is resolved once).
    src: String,
    #[command(flatten)]
    opts: RunOptions,
}

/// Where and how `run` promotes (and `sync`, for each tag).
#[derive(Args)]
#[command(mut_arg("dst_creds", args::quarantine_and_trusted_creds))]
pub struct RunOptions {
    /// The quarantine repository (REGISTRY/PATH, no tag).
    #[arg(long, value_name = "REPO")]
    quarantine: String,
    /// The trusted repository (REGISTRY/PATH, no tag).
    #[arg(long, value_name = "REPO")]
    trusted: String,
    /// The environment to tag for (default: the first one); its gate rules apply.
    #[arg(long, short = 'e', value_name = "ENV")]
    environment: Option<String>,
    /// Build id for the environment tag (default: the source tag, else the digest).
    #[arg(long, value_name = "ID")]
    build: Option<String>,
    /// Annotation KEY=VALUE for the index and every manifest; repeatable.
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    annotations: Vec<OsString>,
    /// Label KEY=VALUE for every image config; repeatable.
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE")]
    labels: Vec<OsString>,
    /// Signing key: `awskms:///KEY` or a private key file (cosign's, or PEM PKCS#8). Required
    /// (but by `sync --dry-run`, which signs nothing).
    #[arg(long, value_name = "awskms:///KEY | FILE")]
    key: Option<String>,
    /// KMS message mode (`digest`, or `raw` for stand-ins whose DIGEST mode is wrong).
    #[arg(long, default_value = "digest", value_name = "digest|raw")]
    kms_message_mode: KmsMessageMode,
    /// Signature formats: Sigstore bundle (cosign v3), legacy `.sig` tag, or both.
    #[arg(long, default_value = "both", value_name = "bundle|legacy|both")]
    sign_mode: SignMode,
    /// Promote without mutation: the trusted digest is the upstream one, upstream signatures,
    /// SBOMs and attestations (inert referrers) come along, and the annotations and labels
    /// become claims of the signature and the attestation. Implies --referrers.
    #[arg(long)]
    preserve_digest: bool,
    /// Copy the source's inert referrers (signatures, SBOMs, attestations) into quarantine.
    #[arg(long)]
    referrers: bool,
    /// Gate policy file (JSON or YAML); default: block CRITICAL and HIGH.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Findings file (`aws inspector2 list-findings` output) instead of Inspector.
    #[arg(long, value_name = "FILE")]
    findings: Option<PathBuf>,
    /// Treat every platform as scanned (stand-ins without ListCoverage only).
    #[arg(long)]
    assume_scanned: bool,
    #[command(flatten)]
    envs: EnvFileArg,
    #[command(flatten)]
    creds: SrcDstCreds,
}

impl RunOptions {
    /// `--key`, or the usage error saying it is needed.
    pub fn key(&self) -> Result<&str, Failure> {
        self.key
            .as_deref()
            .ok_or_else(|| input("--key: a signing key is needed to promote".into()))
    }

    /// Whether `--build` was given.
    pub fn build_given(&self) -> bool {
        self.build.is_some()
    }

    /// `--environment`.
    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }
}

fn repo(flag: &str, s: &str) -> Result<promotion_core::ImageRef, Failure> {
    pipeline::parse_repository(flag, s).map_err(Failure::from)
}

/// The steps done so far: each on stderr as it ends (unless `--json`), all in the JSON.
struct Timeline {
    json: bool,
    steps: Vec<serde_json::Value>,
}

impl Timeline {
    /// Step `name`, started at `t0`, did `what`.
    fn step(&mut self, name: &str, t0: Instant, what: String) {
        let ms = t0.elapsed().as_millis() as u64;
        if !self.json {
            eprintln!("{name:<22} {ms:>7} ms  {what}");
        }
        self.steps
            .push(json!({"step": name, "ms": ms, "detail": what}));
    }
}

/// What a promotion needs, built once: the registry client, the repositories, the documents,
/// the findings source, the signer and the approvers' keys.
pub struct Pipeline<'a> {
    cli: &'a Cli,
    opts: &'a RunOptions,
    json: bool,
    registry: promotion_registry::HttpRegistry,
    repos: Repositories,
    trusted: promotion_core::ImageRef,
    envs: promotion_core::environment::Environments,
    annotations: promotion_core::mutate::Entries,
    labels: promotion_core::mutate::Entries,
    policy: promotion_core::gate::Policy,
    findings: Box<dyn promotion_core::gate::FindingsSource>,
    /// Built at the first promotion: planning (`sync --dry-run`) needs no key.
    signer: tokio::sync::OnceCell<Box<dyn promotion_core::sign::Signer>>,
    approvers: promotion_core::environment::ApproverKeys,
}

/// A promotion's result per step and its timeline: `--json`'s object.
#[derive(serde::Serialize)]
pub struct Promotion {
    operation: &'static str,
    outcome: &'static str,
    /// Copy to quarantine.
    pub copy: pipeline::CopyResult,
    /// The gate's verdict.
    pub gate: pipeline::GateResult,
    /// Promote and annotate.
    pub promote: pipeline::PromoteResult,
    /// Sign.
    pub sign: pipeline::SignResult,
    /// Retag for the environment.
    pub retag: pipeline::RetagResult,
    timeline: Vec<serde_json::Value>,
}

/// How one promotion ended, when it ran to a verdict.
pub enum Outcome {
    /// Promoted.
    Promoted(Box<Promotion>),
    /// The gate denied: the `--json` result and the `Gate.Denied` failure.
    Rejected(serde_json::Value, Failure),
}

impl<'a> Pipeline<'a> {
    /// Check the options and build the clients; `src` is the source whose registry
    /// `--src-creds` is for; at most `puts_per_second` manifest PUTs per second.
    pub async fn prepare(
        cli: &'a Cli,
        opts: &'a RunOptions,
        src: &promotion_core::ImageRef,
        puts_per_second: Option<f64>,
    ) -> Result<Pipeline<'a>, Failure> {
        let (quarantine, trusted) = (
            repo("--quarantine", &opts.quarantine)?,
            repo("--trusted", &opts.trusted)?,
        );
        let registries = [quarantine.clone(), trusted.clone()];
        let repos =
            Repositories::fixed(quarantine, trusted.clone(), None).map_err(Failure::from)?;
        let envs = opts.envs.load()?;
        if let Some(e) = &opts.environment {
            envs.get(e)?;
        }
        let annotations = entries("annotation", "--annotation", &opts.annotations)?;
        let labels = entries("label", "--label", &opts.labels)?;
        let policy = load_policy(opts.policy.as_ref())?;
        let registry = opts.creds.paced_registry(
            cli,
            src,
            &[&registries[0], &registries[1]],
            puts_per_second,
        )?;
        let region = EcrRegistry::from_host(registries[1].registry()).map(|e| e.region);
        let findings =
            findings_source(cli, opts.findings.as_ref(), opts.assume_scanned, region).await?;
        let approvers = crate::inputs::approver_keys(cli, &envs).await?;
        Ok(Pipeline {
            cli,
            opts,
            json: cli.json,
            registry,
            repos,
            trusted,
            envs,
            annotations,
            labels,
            policy,
            findings,
            signer: tokio::sync::OnceCell::new(),
            approvers,
        })
    }

    /// The registry client (`sync` lists and resolves tags with it).
    pub fn registry(&self) -> &promotion_registry::HttpRegistry {
        &self.registry
    }

    /// The trusted repository.
    pub fn trusted(&self) -> &promotion_core::ImageRef {
        &self.trusted
    }

    /// The environments document.
    pub fn environments(&self) -> &promotion_core::environment::Environments {
        &self.envs
    }

    /// Promote `src` with `build` (default: the source tag), each step on stderr as it ends
    /// (unless `--json`).
    pub async fn promote(&self, src: &str, build: Option<&str>) -> Result<Outcome, Failure> {
        let started = Instant::now();
        let opts = self.opts;
        let signer = self
            .signer
            .get_or_try_init(async || signer(self.cli, opts.key()?, opts.kms_message_mode).await)
            .await?;
        let (registry, repos, envs, policy) =
            (&self.registry, &self.repos, &self.envs, &self.policy);
        let build = build.map(str::to_owned).or_else(|| opts.build.clone());
        let rules = policy.rules(opts.environment.as_deref());
        let mut timeline = Timeline {
            json: self.json,
            steps: Vec::new(),
        };

        // 1. copy to quarantine
        let t = Instant::now();
        let copy = pipeline::copy_to_quarantine(
            registry,
            repos,
            &CopyRequest {
                reference: Some(src.to_owned()),
                build: build.clone(),
                ..CopyRequest::default()
            },
            &CopySettings {
                copy: promotion_core::CopyOptions {
                    referrers: opts.referrers || opts.preserve_digest,
                    inert_referrers_only: true,
                    ..promotion_core::CopyOptions::default()
                },
                limits: policy.limits(),
                environments: envs,
                // The user named the source on the command line; internal addresses still need
                // --insecure-registry or --allow-internal-registry (the registry client's guard).
                sources: &pipeline::SourceRegistries::any(),
            },
        )
        .await?;
        timeline.step(
            "copy-to-quarantine",
            t,
            format!("{} → {}", copy.source, copy.quarantine),
        );

        // 2. gate, polling while PENDING
        let t = Instant::now();
        let settings = GateSettings {
            policy,
            environments: envs,
            approvers: &self.approvers,
            poll_seconds: rules.poll_seconds(),
            max_wait_seconds: rules.max_wait_seconds,
            clock: &SystemClock,
        };
        // Polls so far and the previous read travel in the request, as in the state machine.
        let req = &RefCell::new(GateRequest {
            image: Some(copy.quarantine.clone()),
            environment: opts.environment.clone(),
            ..GateRequest::default()
        });
        let (findings_ref, settings) = (self.findings.as_ref(), &settings);
        let json = self.json;
        let verdict = repeat(&SystemClock, move || async move {
            let mut r = req.take();
            let v = pipeline::scan_gate(registry, repos, findings_ref, settings, &r).await?;
            if v.decision != Decision::Pending {
                return Ok::<_, Failure>(Poll::Ready(v));
            }
            if !json {
                eprintln!("{:<22} {:>7}     {}", "scan-gate", "…", v.message);
            }
            r.polls = v.polls;
            r.observation = v.observation.clone();
            req.replace(r);
            Ok(Poll::Pending {
                wait: Duration::from_secs(v.wait_seconds),
            })
        })
        .await?;
        timeline.step("scan-gate", t, verdict.summary.clone());
        if verdict.decision == Decision::Failed {
            let failure =
                GateError::Denied(format!("{}: {}", copy.quarantine, verdict.message)).into();
            return Ok(Outcome::Rejected(
                json!({"operation": "run", "outcome": "REJECTED", "gate": verdict, "timeline": timeline.steps}),
                failure,
            ));
        }

        // 3. promote and annotate (the gate is re-checked inside)
        let t = Instant::now();
        let promoted = pipeline::promote_and_annotate(
            registry,
            repos,
            self.findings.as_ref(),
            &PromoteSettings {
                policy,
                environments: envs,
                annotations: &self.annotations,
                labels: &self.labels,
                clock: &SystemClock,
                copy: promotion_core::CopyOptions::default(),
                preserve_digest: opts.preserve_digest,
            },
            &PromoteRequest {
                quarantine: copy.quarantine.clone(),
                source: Some(copy.origin.clone()),
                environment: opts.environment.clone(),
                build: build.clone(),
                source_tag: copy.source_tag.clone(),
                ..PromoteRequest::default()
            },
        )
        .await?;
        timeline.step("promote-and-annotate", t, promoted.trusted.clone());

        // 4. sign
        let t = Instant::now();
        let signed = pipeline::sign(
            registry,
            repos,
            signer.as_ref(),
            opts.sign_mode,
            &SystemClock,
            &SignRequest {
                image: promoted.trusted.clone(),
                quarantine: Some(copy.quarantine.clone()),
                gate: Some(promoted.gate_record.clone()),
                claims: promoted.claims.clone(),
            },
        )
        .await?;
        timeline.step(
            "sign",
            t,
            format!(
                "{} digests, {} new signatures, attestation {}",
                signed.digests_signed,
                signed.signatures_created,
                if signed.attestation_created {
                    "written"
                } else {
                    "present"
                }
            ),
        );

        // 5. retag for the environment (the signature is verified first)
        let t = Instant::now();
        let retagged = pipeline::retag_for_environment(
            registry,
            repos,
            self.findings.as_ref(),
            &RetagSettings {
                environments: envs,
                policy,
                key: signer.public_key(),
                approvers: &self.approvers,
                clock: &SystemClock,
            },
            &RetagRequest {
                image: promoted.trusted.clone(),
                environment: opts.environment.clone(),
                build,
                source_tag: copy.source_tag.clone(),
                regate: false,
            },
        )
        .await?;
        timeline.step("retag-for-environment", t, retagged.tags.join(", "));

        done!(
            operation = "run",
            source = %copy.source,
            quarantine = %copy.quarantine,
            trusted = %promoted.trusted,
            environment = %retagged.environment,
            tags = %retagged.tags.join(","),
            signatures_created = signed.signatures_created,
            bytes_streamed = copy.bytes_streamed + promoted.bytes_streamed,
            duration_ms = started.elapsed().as_millis() as u64,
        );
        Ok(Outcome::Promoted(Box::new(Promotion {
            operation: "run",
            outcome: "PROMOTED",
            copy,
            gate: verdict,
            promote: promoted,
            sign: signed,
            retag: retagged,
            timeline: timeline.steps,
        })))
    }
}

/// Runs `promote run`.
pub async fn run(cli: &Cli, args: &RunArgs) -> Result<(), Failure> {
    args.opts.key()?;
    let src = parse_ref(&args.src)?;
    let pipeline = Pipeline::prepare(cli, &args.opts, &src, None).await?;
    match pipeline.promote(&args.src, None).await? {
        Outcome::Rejected(result, failure) => {
            if cli.json {
                print_json(&result)?;
            }
            Err(failure)
        }
        Outcome::Promoted(p) => {
            if cli.json {
                print_json(&p)?;
            } else {
                println!("promoted {} → {}", p.copy.source, p.promote.trusted);
                println!("  gate       {}", p.gate.summary);
                println!(
                    "  signed     {} digests ({} new signatures)",
                    p.sign.digests_signed, p.sign.signatures_created
                );
                println!(
                    "  tags       {} ({})",
                    p.retag.tags.join(", "),
                    p.retag.environment
                );
            }
            Ok(())
        }
    }
}
