//! `promote copy SRC DST`: an image, index or artifact byte for byte (every platform by default).

use crate::Cli;
use crate::args::SrcDstCreds;
use crate::output::{Failure, parse_ref, print_json, transfer_done};
use crate::progress;
use clap::Args;
use promotion_core::CopyOptions;
use promotion_core::platform::Platform;
use std::time::Instant;

/// Arguments of `promote copy`.
#[derive(Args)]
pub struct CopyArgs {
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
    #[command(flatten)]
    creds: SrcDstCreds,
}

/// Runs `promote copy`.
pub async fn run(cli: &Cli, args: &CopyArgs) -> Result<(), Failure> {
    let src = parse_ref(&args.src)?;
    let dst = parse_ref(&args.dst)?;
    let registry = args.creds.registry(cli, &src, &[&dst])?;
    let opts = CopyOptions {
        platforms: args.platforms.clone(),
        referrers: args.referrers,
        concurrency: usize::from(args.concurrency),
        ..CopyOptions::default()
    };
    let started = Instant::now();
    let report = progress::transfer("copy", &src, &dst, Some(started), |bar| {
        promotion_core::copy_image(&registry, &src, &dst, &opts, bar)
    })
    .await?;
    transfer_done!("copy", report, referrers_copied = report.referrers_copied,);
    if cli.json {
        return print_json(&report);
    }
    println!("copied {} → {}", report.source, report.destination);
    println!("  digest     {}", report.digest);
    for p in &report.platforms {
        println!("  platform   {:<16} {}", p.platform, p.digest);
    }
    let blobs = progress::blobs_line!(report);
    println!("{blobs}");
    println!(
        "  manifests  {} pushed, {} already present",
        report.counts.manifests_pushed, report.counts.manifests_skipped
    );
    if args.referrers {
        println!("  referrers  {} copied", report.referrers_copied);
    }
    Ok(())
}
