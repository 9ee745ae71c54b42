//! `promote`: every step of the promotion pipeline, run locally on the same core as the
//! Lambdas. Exit codes: 0 done; 1 failed; 2 usage error (bad flags or input); 3 gate denied.

mod annotate;
mod approve;
mod args;
mod copy;
mod creds;
mod discover;
mod execution;
mod gate;
mod inputs;
mod lifecycle;
mod output;
mod progress;
mod retag;
mod run;
mod sign;
mod sync;
mod verify;

use clap::{Parser, Subcommand};
use output::Failure;
use std::process::ExitCode;

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
    /// Allow this registry (HOST[:PORT]) to be, or resolve to, an internal address (loopback,
    /// private, link-local); repeatable. Other hosts are refused there, redirects included
    /// (--insecure-registry hosts are allowed too).
    #[arg(
        long = "allow-internal-registry",
        value_name = "HOST[:PORT]",
        global = true
    )]
    allow_internal_registry: Vec<String>,
    /// Let registries redirect blob downloads (or uploads) to this host: the CDN or object store
    /// a registry keeps its blobs in (HOST, HOST:PORT or *.DOMAIN; port 443 unless named);
    /// repeatable. A registry may always send the client to its own host, and an ECR registry
    /// to its layer bucket; any other redirect is refused and names the host.
    #[arg(long = "redirect-host", value_name = "HOST", global = true)]
    redirect_host: Vec<String>,
    /// Print the result as one JSON object on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// More logging (-v: debug for this tool, -vv: everything).
    #[arg(short = 'v', long = "debug", action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// AWS region for ECR, KMS, Inspector, Step Functions (default: the usual AWS chain).
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
    Copy(copy::CopyArgs),
    /// Gate an image on its vulnerability findings (Inspector or a findings file).
    Gate(gate::GateArgs),
    /// Copy an image adding annotations (index and every manifest) and labels (every config).
    Annotate(annotate::AnnotateArgs),
    /// Sign an image (and each platform) in cosign's format.
    Sign(sign::SignArgs),
    /// Verify an image's signatures against a key; exit 1 when none is valid.
    Verify(verify::VerifyArgs),
    /// Show the tree of an image's referrers (signatures, SBOMs, attestations).
    Discover(discover::DiscoverArgs),
    /// Tag a trusted digest for an environment (`<env>-<build>`); with --key, a full
    /// environment promotion (signature verified, gate re-run, order enforced).
    Retag(retag::RetagArgs),
    /// Push an approval referrer asking for an image's promotion to an environment.
    Approve(approve::ApproveArgs),
    /// Print the ECR lifecycle policy for a list of environments.
    Lifecycle(lifecycle::LifecycleArgs),
    /// The whole pipeline in-process: copy to quarantine, gate, promote and annotate, sign,
    /// tag for the environment.
    Run(run::RunArgs),
    /// Start the deployed pipeline (a Step Functions execution) for an image; with --wait,
    /// follow it and exit as it ended.
    Start(execution::StartArgs),
    /// Promote the tags of an upstream repository that the trusted repository lacks, each as
    /// `run` would.
    Sync(sync::SyncArgs),
    /// Print a pipeline execution's timeline and exit as it ended (0 while it runs).
    Status(execution::StatusArgs),
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
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(json, prints_verdict),
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

/// Each verb parses its arguments and runs its one operation.
async fn run(cli: &Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Copy(args) => copy::run(cli, args).await,
        Command::Gate(args) => gate::run(cli, args).await,
        Command::Annotate(args) => annotate::run(cli, args).await,
        Command::Sign(args) => sign::run(cli, args).await,
        Command::Verify(args) => verify::run(cli, args).await,
        Command::Discover(args) => discover::run(cli, args).await,
        Command::Retag(args) => retag::run(cli, args).await,
        Command::Approve(args) => approve::run(cli, args).await,
        Command::Lifecycle(args) => lifecycle::run(args),
        Command::Run(args) => run::run(cli, args).await,
        Command::Start(args) => execution::start(cli, args).await,
        Command::Sync(args) => sync::run(cli, args).await,
        Command::Status(args) => execution::status(cli, args).await,
    }
}
