//! `promote discover IMAGE`: the tree of an image's referrers (signatures, SBOMs,
//! attestations, approvals), like `oras discover`. Approvals — the copies recorded in the
//! image's repository and, with `--approvals REPO`, those waiting in an approvals repository —
//! show whether they verify with the approvers' keys of the environments document.

use crate::Cli;
use crate::args::{Creds, EnvFileArg};
use crate::inputs::approver_keys;
use crate::output::{Failure, parse_ref, print_json};
use clap::Args;
use promotion_core::environment::approval;
use promotion_core::reference::ImageRef;
use promotion_core::sign::discover::{Node, discover, render};
use std::collections::HashMap;

/// Arguments of `promote discover`.
#[derive(Args)]
pub struct DiscoverArgs {
    /// The image whose referrers to show.
    image: String,
    /// Also list the image's approvals in this approvals repository.
    #[arg(long, value_name = "REPOSITORY")]
    approvals: Option<String>,
    #[command(flatten)]
    envs: EnvFileArg,
    #[command(flatten)]
    creds: Creds,
}

/// Runs `promote discover`.
pub async fn run(cli: &Cli, args: &DiscoverArgs) -> Result<(), Failure> {
    let image = parse_ref(&args.image)?;
    let registry = args.creds.registry(cli, &image)?;
    let mut tree = discover(&registry, &image).await?;
    let envs = args.envs.load()?;
    let pinned = image.pinned(tree.digest.clone());
    let has_approvals = |n: &Node| {
        fn any(n: &Node, t: &str) -> bool {
            n.artifact_type.as_deref() == Some(t) || n.referrers.iter().any(|c| any(c, t))
        }
        any(n, &envs.approval_artifact_type)
    };
    if args.approvals.is_some() || has_approvals(&tree) {
        let keys = approver_keys(cli, &envs).await?;
        let here = ImageRef::from_parts(image.registry(), image.repository(), None, None);
        let recorded: HashMap<_, _> = approval::statuses(&registry, &here, &pinned, &envs, &keys)
            .await?
            .into_iter()
            .collect();
        for n in &mut tree.referrers {
            if let Some(st) = recorded.get(&n.digest) {
                n.status = Some(st.clone());
            }
        }
        if let Some(a) = &args.approvals {
            let a = parse_ref(a)?;
            let repo = ImageRef::from_parts(a.registry(), a.repository(), None, None);
            for (digest, status) in
                approval::statuses(&registry, &repo, &pinned, &envs, &keys).await?
            {
                tree.referrers.push(Node {
                    digest,
                    media_type: promotion_core::manifest::OCI_MANIFEST.into(),
                    artifact_type: Some(envs.approval_artifact_type.clone()),
                    via: format!("approvals {}", repo.repo_path()),
                    annotations: Default::default(),
                    status: Some(status),
                    referrers: Vec::new(),
                });
            }
        }
    }
    if cli.json {
        return print_json(&tree);
    }
    print!("{}", render(&image.repo_path(), &tree));
    Ok(())
}
