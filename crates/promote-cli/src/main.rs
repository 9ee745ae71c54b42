//! `promote`: every step of the promotion pipeline, run locally on the same core as the
//! Lambdas. Exit codes: 0 done; 1 failed; 2 usage error (bad flags or input); 3 gate denied.

mod annotate;
mod creds;
mod env;
mod gate;
mod progress;
mod run;
mod sign;

use clap::{Args, Parser, Subcommand};
use promotion_core::error::Classify;
use promotion_core::platform::Platform;
use promotion_core::registry::auth::Credentials;
use promotion_registry::{HttpConfig, HttpRegistry};
use promotion_core::{CopyOptions, ErrorType, ImageRef};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "promote",
    version,
    about = "Promote container images into a trusted registry"
)]
struct Cli {
    /// Speak plain HTTP to this registry (HOST[:PORT]); repeatable. For local registries only.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]", global = true)]
    insecure_registry: Vec<String>,
    /// Print the result as one JSON object on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// More logging (-v: debug for this tool, -vv: everything).
    #[arg(short = 'v', long = "debug", action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// AWS region for ECR, KMS, Inspector (default: the usual AWS chain).
    #[arg(long, global = true, value_name = "REGION")]
    aws_region: Option<String>,
    /// Endpoint for every AWS API (a local stand-in such as moto_server).
    #[arg(long, global = true, value_name = "URL")]
    aws_endpoint_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Copy an image, index or artifact byte for byte (every platform by default).
    Copy(CopyArgs),
    /// Gate an image on its vulnerability findings (Inspector or a findings file).
    Gate(gate::GateArgs),
    /// Copy an image adding annotations (index and every manifest) and labels (every config).
    Annotate(annotate::AnnotateArgs),
    /// Sign an image (and each platform) in cosign's format.
    Sign(sign::SignArgs),
    /// Verify an image's signatures against a key; exit 1 when none is valid.
    Verify(sign::VerifyArgs),
    /// Show the tree of an image's referrers (signatures, SBOMs, attestations).
    Discover(sign::DiscoverArgs),
    /// Tag a trusted digest for an environment (`<env>-<build>`); with --key, a full
    /// environment promotion (signature verified, gate re-run, order enforced).
    Retag(env::RetagArgs),
    /// Push an approval referrer asking for an image's promotion to an environment.
    Approve(env::ApproveArgs),
    /// Print the ECR lifecycle policy for a list of environments.
    Lifecycle(env::LifecycleArgs),
    /// The whole pipeline in-process: copy to quarantine, gate, promote and annotate, sign,
    /// tag for the environment.
    Run(run::RunArgs),
}

#[derive(Args)]
struct CopyArgs {
    /// Source reference (`busybox` means docker.io/library/busybox:latest).
    src: String,
    /// Destination reference.
    dst: String,
    /// Keep only this platform (OS/ARCH[/VARIANT]); repeatable.
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]")]
    platforms: Vec<Platform>,
    /// Also copy signatures, SBOMs and attestations that refer to the copied digests.
    #[arg(long)]
    referrers: bool,
    /// Blobs transferred at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Source credentials USER:PASSWORD (prefer the environment variable).
    #[arg(
        long,
        env = "PROMOTE_SRC_CREDS",
        hide_env_values = true,
        value_name = "USER:PASS"
    )]
    src_creds: Option<String>,
    /// Destination credentials USER:PASSWORD (prefer the environment variable).
    #[arg(
        long,
        env = "PROMOTE_DST_CREDS",
        hide_env_values = true,
        value_name = "USER:PASS"
    )]
    dst_creds: Option<String>,
}

/// A failure with its stable name; the exit code follows from the name.
struct Failure {
    kind: ErrorType,
    message: String,
}

impl<E: Classify + std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            kind: e.error_type(),
            message: e.to_string(),
        }
    }
}

fn input(message: String) -> Failure {
    Failure {
        kind: ErrorType::InputInvalid,
        message,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let json = cli.json;
    // `gate` and `run` print the verdict themselves when the gate denies.
    let prints_verdict = matches!(cli.command, Command::Gate(_) | Command::Run(_));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let line = f.message.lines().next().unwrap_or_default().to_owned();
            eprintln!("error: {line} [{}]", f.kind);
            // A denied gate has already printed its verdict (gate, run).
            if json && !(prints_verdict && f.kind == ErrorType::GateDenied) {
                println!(
                    "{}",
                    serde_json::json!({"error": {"type": f.kind.as_str(), "message": f.message}})
                );
            }
            ExitCode::from(match f.kind {
                ErrorType::InputInvalid => 2,
                ErrorType::GateDenied => 3,
                _ => 1,
            })
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "promote=info,promotion_core=warn",
        1 => "promote=debug,promotion_core=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PROMOTE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Copy(ref args) => copy(&cli, args).await,
        Command::Gate(ref args) => gate::run(&cli, args).await,
        Command::Annotate(ref args) => annotate::run(&cli, args).await,
        Command::Sign(ref args) => sign::sign(&cli, args).await,
        Command::Verify(ref args) => sign::verify(&cli, args).await,
        Command::Discover(ref args) => sign::discover(&cli, args).await,
        Command::Retag(ref args) => env::retag(&cli, args).await,
        Command::Approve(ref args) => env::approve(&cli, args).await,
        Command::Lifecycle(ref args) => env::lifecycle(args),
        Command::Run(ref args) => run::run(&cli, args).await,
    }
}

fn parse_ref(s: &str) -> Result<ImageRef, Failure> {
    s.parse::<ImageRef>().map_err(Failure::from)
}

async fn copy(cli: &Cli, args: &CopyArgs) -> Result<(), Failure> {
    let src = parse_ref(&args.src)?;
    let dst = parse_ref(&args.dst)?;
    let fixed = fixed_creds(&[
        (&src, &args.src_creds, "--src-creds"),
        (&dst, &args.dst_creds, "--dst-creds"),
    ])?;
    let registry = build_registry(cli, fixed)?;
    let opts = CopyOptions {
        platforms: args.platforms.clone(),
        referrers: args.referrers,
        concurrency: usize::from(args.concurrency),
        ..CopyOptions::default()
    };
    let started = Instant::now();
    let bar = Arc::new(progress::Bar::new(&format!("{src} → {dst}")));
    let result = promotion_core::copy_image(&registry, &src, &dst, &opts, bar.clone()).await;
    bar.finish();
    let report = result.map_err(|e| {
        // On failure the error line is the canonical line (exactly one line on stderr); the
        // structured version is there with -v.
        tracing::debug!(operation = "copy", source = %src, destination = %dst, outcome = "failed",
            error_type = %e.error_type(), duration_ms = started.elapsed().as_millis() as u64, "done");
        Failure::from(e)
    })?;
    // The canonical line: one per operation, every figure an operator greps for.
    tracing::info!(
        operation = "copy",
        source = %report.source,
        destination = %report.destination,
        source_digest = %report.source_digest,
        digest = %report.digest,
        bytes_streamed = report.bytes_streamed,
        blobs_streamed = report.blobs_streamed,
        blobs_mounted = report.blobs_mounted,
        blobs_skipped = report.blobs_skipped,
        manifests_pushed = report.manifests_pushed,
        referrers_copied = report.referrers_copied,
        duration_ms = report.duration_ms,
        outcome = "ok",
        "done"
    );
    if cli.json {
        print_json(&report)?;
    } else {
        println!("copied {} → {}", report.source, report.destination);
        println!("  digest     {}", report.digest);
        for p in &report.platforms {
            println!("  platform   {:<16} {}", p.platform, p.digest);
        }
        println!(
            "  blobs      {} streamed ({}), {} mounted, {} already present",
            report.blobs_streamed,
            progress::human_bytes(report.bytes_streamed),
            report.blobs_mounted,
            report.blobs_skipped
        );
        println!(
            "  manifests  {} pushed, {} already present",
            report.manifests_pushed, report.manifests_skipped
        );
        if args.referrers {
            println!("  referrers  {} copied", report.referrers_copied);
        }
    }
    Ok(())
}

/// Credentials given on the command line, by registry host.
fn fixed_creds(
    given: &[(&ImageRef, &Option<String>, &str)],
) -> Result<Vec<(String, Credentials)>, Failure> {
    let mut fixed = Vec::new();
    for (r, c, flag) in given {
        if let Some(c) = c {
            let creds =
                Credentials::parse_user_pass(c).map_err(|e| input(format!("{flag}: {e}")))?;
            fixed.push((r.api_host().to_owned(), creds));
        }
    }
    Ok(fixed)
}

/// Print `v` as one JSON line on stdout (`--json`).
fn print_json<T: serde::Serialize>(v: &T) -> Result<(), Failure> {
    println!(
        "{}",
        serde_json::to_string(v).map_err(|e| input(e.to_string()))?
    );
    Ok(())
}

fn build_registry(cli: &Cli, fixed: Vec<(String, Credentials)>) -> Result<HttpRegistry, Failure> {
    let config = HttpConfig {
        insecure_hosts: cli.insecure_registry.clone(),
        ..HttpConfig::default()
    };
    let provider = creds::chain(fixed, cli.aws_region.clone(), cli.aws_endpoint_url.clone());
    HttpRegistry::new(config, Arc::new(provider)).map_err(Failure::from)
}
