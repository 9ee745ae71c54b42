//! `promote annotate SRC DST [--annotation K=V]... [--label K=V]...`

use crate::{Cli, Failure, build_registry, fixed_creds, input, parse_ref, print_json, progress};
use clap::Args;
use promotion_core::CopyOptions;
use promotion_core::annotate::{AnnotateOptions, annotate_image};
use promotion_core::error::Classify as _;
use promotion_core::mutate::Entries;
use std::ffi::OsString;
use std::sync::Arc;

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

/// `K=V` arguments as validated entries; non-UTF-8 input is named, not mangled.
pub fn entries(what: &str, flag: &str, raw: &[OsString]) -> Result<Entries, Failure> {
    let mut items = Vec::new();
    for r in raw {
        let s = r
            .to_str()
            .ok_or_else(|| input(format!("{flag}: {what} {r:?} is not valid UTF-8")))?;
        items.push(s.to_owned());
    }
    Entries::parse_kv(what, &items).map_err(|e| input(format!("{flag}: {e}")))
}

/// Run `promote annotate`.
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
    };
    let fixed = fixed_creds(&[
        (&src, &args.src_creds, "--src-creds"),
        (&dst, &args.dst_creds, "--dst-creds"),
    ])?;
    let registry = build_registry(cli, fixed)?;
    let bar = Arc::new(progress::Bar::new(&format!("{src} → {dst}")));
    let result = annotate_image(&registry, &src, &dst, &opts, bar.clone()).await;
    bar.finish();
    let report = result.map_err(|e| {
        tracing::debug!(operation = "annotate", source = %src, destination = %dst,
            outcome = "failed", error_type = %e.error_type(), "done");
        Failure::from(e)
    })?;
    tracing::info!(
        operation = "annotate",
        source = %report.source,
        destination = %report.destination,
        source_digest = %report.source_digest,
        digest = %report.digest,
        bytes_streamed = report.bytes_streamed,
        blobs_streamed = report.blobs_streamed,
        blobs_mounted = report.blobs_mounted,
        blobs_skipped = report.blobs_skipped,
        configs_pushed = report.configs_pushed,
        manifests_pushed = report.manifests_pushed,
        duration_ms = report.duration_ms,
        outcome = "ok",
        "done"
    );
    if cli.json {
        print_json(&report)?;
    } else {
        println!("annotated {} → {}", report.source, report.destination);
        println!("  source     {}", report.source_digest);
        println!("  digest     {}", report.digest);
        for p in &report.platforms {
            println!(
                "  platform   {:<16} {} (was {})",
                p.platform, p.digest, p.source_digest
            );
        }
        println!(
            "  blobs      {} streamed ({}), {} mounted, {} already present; {} configs written",
            report.blobs_streamed,
            progress::human_bytes(report.bytes_streamed),
            report.blobs_mounted,
            report.blobs_skipped,
            report.configs_pushed
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt as _;

    #[test]
    fn non_utf8_entries_are_named_not_mangled() {
        let bad = OsString::from_vec(b"k=\xff".to_vec());
        let e = match entries("annotation", "--annotation", &[bad]) {
            Ok(_) => panic!("accepted non-UTF-8"),
            Err(e) => e,
        };
        assert_eq!(e.kind, promotion_core::ErrorType::InputInvalid);
        assert!(e.message.contains("not valid UTF-8"), "{}", e.message);
        let ok = entries("label", "--label", &[OsString::from("a=b")]);
        assert!(ok.is_ok());
    }
}
