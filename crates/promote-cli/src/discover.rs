//! `promote discover IMAGE`: the tree of an image's referrers (signatures, SBOMs,
//! attestations), like `oras discover`.

use crate::Cli;
use crate::args::Creds;
use crate::output::{Failure, parse_ref, print_json};
use clap::Args;
use promotion_core::sign::discover::{discover, render};

/// Arguments of `promote discover`.
#[derive(Args)]
pub struct DiscoverArgs {
    /// The image whose referrers to show.
    image: String,
    #[command(flatten)]
    creds: Creds,
}

/// Runs `promote discover`.
pub async fn run(cli: &Cli, args: &DiscoverArgs) -> Result<(), Failure> {
    let image = parse_ref(&args.image)?;
    let registry = args.creds.registry(cli, &image)?;
    let tree = discover(&registry, &image).await?;
    if cli.json {
        return print_json(&tree);
    }
    print!("{}", render(&image.repo_path(), &tree));
    Ok(())
}
