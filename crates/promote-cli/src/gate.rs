//! `promote gate IMAGE [--policy FILE] [--findings FILE] [--environment ENV]`: the scan gate,
//! locally.
//!
//! - Findings come from Amazon Inspector (`--aws-region`, `--aws-endpoint-url`), or from a file
//!   of `aws inspector2 list-findings` output with `--findings`.
//! - The image's platforms are resolved through the registry (an index is gated platform by
//!   platform); `--platform-digest` names them instead, for offline use with a findings file.
//! - With Inspector the command waits: it polls until every platform is scanned and the findings
//!   have settled, up to the policy's `max_wait_seconds` (or `--max-wait`). Still PENDING then:
//!   one error line and exit 1 (`Gate.Timeout`).
//! - Exit codes: 0 PASSED; 3 FAILED (the table says what blocks and why); 1 on any error.
//!   `--json` prints the verdict summary (the same object the state machine carries).

use crate::Cli;
use crate::args::{self, Creds};
use crate::inputs::{findings_source, load_policy};
use crate::output::{Failure, done, parse_ref};
use clap::Args;
use promotion_core::ErrorType;
use promotion_core::clock::SystemClock;
use promotion_core::digest::Digest;
use promotion_core::ecr::EcrRegistry;
use promotion_core::gate::verdict::Blocker;
use promotion_core::gate::{self, Decision, GateError, ScannedImage, Verdict};
use promotion_core::poll::{Next, Poll, Schedule, repeat};
use std::cell::RefCell;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `promote gate`.
#[derive(Args)]
#[command(mut_arg("creds", args::source_creds))]
pub struct GateArgs {
    /// The image (tag or digest); every platform of it is gated.
    image: String,
    /// Policy file, JSON or YAML. Without one: block CRITICAL and HIGH, fail closed on
    /// unscannable images.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Findings file (the JSON `aws inspector2 list-findings` prints) instead of Inspector.
    #[arg(long, value_name = "FILE")]
    findings: Option<PathBuf>,
    /// Apply this environment's policy overrides.
    #[arg(long, value_name = "ENV")]
    environment: Option<String>,
    /// Gate exactly these platform manifest digests instead of resolving IMAGE through the
    /// registry (offline use with --findings); repeatable.
    #[arg(long = "platform-digest", value_name = "DIGEST")]
    platform_digests: Vec<Digest>,
    /// Wait at most this long for scans and settling (overrides the policy's
    /// max_wait_seconds; 0 answers after one read).
    #[arg(long, value_name = "SECONDS")]
    max_wait: Option<u64>,
    /// Treat every platform as scanned without asking Inspector's ListCoverage. Only for
    /// stand-ins that lack ListCoverage (moto_server); never for real gating.
    #[arg(long)]
    assume_scanned: bool,
    #[command(flatten)]
    creds: Creds,
}

/// Runs `promote gate`.
pub async fn run(cli: &Cli, args: &GateArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let image = parse_ref(&args.image)?;
    let ecr = EcrRegistry::from_host(image.registry());
    let account = ecr.as_ref().map(|e| e.account.clone());

    let policy = load_policy(args.policy.as_ref())?;
    if let Some(env) = &args.environment
        && policy.environments().next().is_some()
        && !policy.environments().any(|e| e == env)
    {
        tracing::warn!(
            environment = %env,
            "the policy has no section for this environment; its base rules apply"
        );
    }
    let rules = policy.rules(args.environment.as_deref());

    let region = ecr.as_ref().map(|e| e.region.clone());
    let source = findings_source(cli, args.findings.as_ref(), args.assume_scanned, region).await?;

    let (digest, platforms) = if args.platform_digests.is_empty() {
        let registry = args.creds.registry(cli, &image)?;
        let (digest, platforms) =
            gate::resolve_platforms(&registry, &image, account.as_deref(), &policy.limits())
                .await?;
        (Some(digest), platforms)
    } else {
        let platforms: Vec<ScannedImage> = args
            .platform_digests
            .iter()
            .map(|d| ScannedImage {
                registry: account.clone(),
                repository: image.repository().to_owned(),
                digest: d.clone(),
                platform: None,
            })
            .collect();
        (image.digest().cloned(), platforms)
    };

    // Poll until decided; the schedule counts polls (each followed by one wait) and gives up
    // once the next wait would pass the maximum.
    let schedule = Schedule {
        poll_seconds: rules.poll_seconds(),
        max_wait_seconds: args.max_wait.unwrap_or(rules.max_wait_seconds),
    };
    let interactive = std::io::stderr().is_terminal();
    // Polls so far and the previous read, for settling.
    let state = &RefCell::new((0u32, None));
    let (source, platforms, rules, image) = (source.as_ref(), &platforms, &rules, &image);
    let verdict = repeat(&SystemClock, move || async move {
        let (polls, previous) = state.take();
        let v = gate::evaluate(source, platforms, rules, &SystemClock, previous.as_ref()).await?;
        if v.decision != Decision::Pending {
            return Ok(Poll::Ready(v));
        }
        match schedule.after(polls) {
            Next::GiveUp { waited_seconds } => Err(Failure::from(GateError::Timeout {
                waited_seconds,
                message: v.message,
            })),
            Next::Wait(wait) => {
                tracing::debug!(image = %image, message = %v.message, "gate pending");
                if interactive {
                    eprintln!("waiting: {}", v.message);
                }
                state.replace((polls + 1, v.observation));
                Ok(Poll::Pending { wait })
            }
        }
    })
    .await?;

    if cli.json {
        println!("{}", verdict.to_json());
    } else {
        print_report(&image.to_string(), digest.as_ref(), &verdict);
    }
    if verdict.decision == Decision::Failed {
        // The error line is the canonical line of a denied gate.
        return Err(Failure::new(ErrorType::GateDenied, verdict.message));
    }
    done!(
        operation = "gate",
        image = %image,
        digest = digest.as_ref().map(Digest::as_str).unwrap_or("-"),
        environment = rules.environment.as_deref().unwrap_or("-"),
        decision = "PASSED",
        platforms = verdict.platforms.len(),
        findings = verdict.counts.values().sum::<u32>(),
        suppressed = verdict.suppressed,
        allowlisted = verdict.allowlisted.iter().map(|a| a.findings).sum::<u32>(),
        duration_ms = started.elapsed().as_millis() as u64,
    );
    Ok(())
}

/// How many blocking rows the table shows before summarising the rest.
const MAX_ROWS: usize = 200;

fn print_report(image: &str, digest: Option<&Digest>, v: &Verdict) {
    let decision = match v.decision {
        Decision::Passed => "PASSED",
        Decision::Failed => "FAILED",
        Decision::Pending => "PENDING",
    };
    println!("gate {decision}  {image}");
    if let Some(d) = digest {
        println!("  digest     {d}");
    }
    if let Some(e) = &v.environment {
        println!("  policy     environment {e}");
    }
    println!("  {}", v.message);
    println!();
    if !v.blockers.is_empty() {
        print_blockers(&v.blockers);
        println!();
    }
    for p in &v.platforms {
        let what = p.platform.as_deref().unwrap_or("-");
        let reason = p
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        println!(
            "  platform   {what:<14} {}  {}{reason}  {} findings, {} blocking",
            p.digest, p.scan, p.findings, p.blocking
        );
    }
    let counts: Vec<String> = v.counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!(
        "  findings   {}; {} suppressed",
        counts.join(", "),
        v.suppressed
    );
    for a in &v.allowlisted {
        println!(
            "  allowed    {}{}{}: {} finding(s)",
            a.id,
            a.package
                .as_deref()
                .map(|p| format!(" in {p}"))
                .unwrap_or_default(),
            a.expires
                .as_deref()
                .map(|e| format!(" (until {e})"))
                .unwrap_or_default(),
            a.findings
        );
    }
    for a in &v.expired_allowlist {
        println!(
            "  expired    {} (allowlist entry expired {}): {} finding(s) judged without it",
            a.id,
            a.expires.as_deref().unwrap_or("?"),
            a.findings
        );
    }
}

fn print_blockers(blockers: &[Blocker]) {
    let headers = ["ID", "SEVERITY", "PACKAGE", "PLATFORM", "REASON"];
    let rows: Vec<[String; 5]> = blockers
        .iter()
        .take(MAX_ROWS)
        .map(|b| {
            [
                b.id.clone(),
                b.severity.to_string(),
                if b.package.is_empty() {
                    "-".into()
                } else {
                    b.package.clone()
                },
                b.platform.clone(),
                b.reason.clone(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count()).min(48);
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            if i == 4 {
                s.push_str(&format!(" {c}"));
            } else {
                s.push_str(&format!(" {c:<w$}", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(headers);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    if blockers.len() > MAX_ROWS {
        println!(
            "  … and {} more blocking findings",
            blockers.len() - MAX_ROWS
        );
    }
}
