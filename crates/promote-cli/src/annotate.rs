//! `promote annotate SRC DST [--annotation K=V]... [--label K=V]...`

use crate::Cli;
use crate::args::{SrcDstCreds, entries};
use crate::output::{Failure, parse_ref, print_json, transfer_done};
use crate::progress;
use clap::Args;
use promotion_core::CopyOptions;
use promotion_core::annotate::{AnnotateOptions, annotate_image};
use std::ffi::OsString;

/// Arguments of `promote annotate`.
#[derive(Args)]
pub struct AnnotateArgs {
    /// Source reference.
    src: String,
    /// Destination reference (same registry: layers are mounted, never re-uploaded).
    dst: String,
    /// OCI annotation KEY=VALUE for the index and every manifest; repeatable.
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    annotations: Vec<OsString>,
    /// Label KEY=VALUE for every image config; repeatable.
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE")]
    labels: Vec<OsString>,
    /// Blobs transferred at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    #[command(flatten)]
    creds: SrcDstCreds,
}

/// Runs `promote annotate`.
pub async fn run(cli: &Cli, args: &AnnotateArgs) -> Result<(), Failure> {
    let src = parse_ref(&args.src)?;
    let dst = parse_ref(&args.dst)?;
    let opts = AnnotateOptions {
        annotations: entries("annotation", "--annotation", &args.annotations)?,
        labels: entries("label", "--label", &args.labels)?,
        copy: CopyOptions {
            concurrency: usize::from(args.concurrency),
            ..CopyOptions::default()
        },
        ..AnnotateOptions::default()
    };
    let registry = args.creds.registry(cli, &src, &[&dst])?;
    let report = progress::transfer("annotate", &src, &dst, None, |bar| {
        annotate_image(&registry, &src, &dst, &opts, bar)
    })
    .await?;
    transfer_done!("annotate", report, configs_pushed = report.configs_pushed,);
    if cli.json {
        return print_json(&report);
    }
    println!("annotated {} → {}", report.source, report.destination);
    println!("  source     {}", report.source_digest);
    println!("  digest     {}", report.digest);
    for p in &report.platforms {
        println!(
            "  platform   {:<16} {} (was {})",
            p.platform, p.digest, p.source_digest
        );
    }
    let blobs = progress::blobs_line!(report);
    println!("{blobs}; {} configs written", report.configs_pushed);
    Ok(())
}
