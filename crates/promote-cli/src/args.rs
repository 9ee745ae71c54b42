//! Argument groups several verbs share, flattened into each: the credentials flags, the
//! environments document, and `KEY=VALUE` entries.

use crate::Cli;
use crate::output::{self, Failure, input};
use clap::{Arg, Args};
use promotion_core::ImageRef;
use promotion_core::environment::Environments;
use promotion_core::mutate::Entries;
use promotion_registry::HttpRegistry;
use std::ffi::OsString;
use std::path::PathBuf;

/// `--src-creds` and `--dst-creds` (`copy`, `annotate`, `run`).
#[derive(Args)]
pub struct SrcDstCreds {
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

impl SrcDstCreds {
    /// The registry client, `--src-creds` for `src` and `--dst-creds` for every one of `dst`.
    pub fn registry(
        &self,
        cli: &Cli,
        src: &ImageRef,
        dst: &[&ImageRef],
    ) -> Result<HttpRegistry, Failure> {
        self.paced_registry(cli, src, dst, None)
    }

    /// As [`Self::registry`], at most `puts_per_second` manifest PUTs per second.
    pub fn paced_registry(
        &self,
        cli: &Cli,
        src: &ImageRef,
        dst: &[&ImageRef],
        puts_per_second: Option<f64>,
    ) -> Result<HttpRegistry, Failure> {
        let mut given = vec![(src, &self.src_creds, "--src-creds")];
        given.extend(dst.iter().map(|d| (*d, &self.dst_creds, "--dst-creds")));
        output::paced_registry(cli, &given, puts_per_second)
    }
}

/// `--creds`: the one registry's credentials, `PROMOTE_DST_CREDS` (`sign`, `verify`,
/// `discover`, `retag`, `approve`); `gate` flattens it with [`source_creds`].
#[derive(Args)]
pub struct Creds {
    /// Registry credentials USER:PASSWORD (prefer the environment variable).
    #[arg(
        long,
        env = "PROMOTE_DST_CREDS",
        hide_env_values = true,
        value_name = "USER:PASS"
    )]
    creds: Option<String>,
}

impl Creds {
    /// The registry client, `--creds` for `image`.
    pub fn registry(&self, cli: &Cli, image: &ImageRef) -> Result<HttpRegistry, Failure> {
        output::registry(cli, &[(image, &self.creds, "--creds")])
    }
}

/// `gate`'s `--creds` (`#[command(mut_arg("creds", source_creds))]`): the registry it resolves
/// platforms through, on the source side, so `PROMOTE_SRC_CREDS`.
pub fn source_creds(arg: Arg) -> Arg {
    arg.env("PROMOTE_SRC_CREDS")
        .help("Registry credentials USER:PASSWORD for resolving platforms (prefer the variable)")
}

/// `run`'s `--dst-creds` (`#[command(mut_arg("dst_creds", quarantine_and_trusted_creds))]`):
/// both of its destinations.
pub fn quarantine_and_trusted_creds(arg: Arg) -> Arg {
    arg.help("Quarantine and trusted credentials USER:PASSWORD (prefer the environment variable)")
}

/// Where the environments document comes from.
#[derive(Args)]
pub struct EnvFileArg {
    /// Environments document (JSON or YAML); default: dev, staging, prod in that order.
    #[arg(long, env = "PROMOTE_ENVIRONMENTS_FILE", value_name = "FILE")]
    environments_file: Option<PathBuf>,
}

impl EnvFileArg {
    /// Whether a document was named.
    pub fn is_given(&self) -> bool {
        self.environments_file.is_some()
    }

    /// The document, or the built-in `dev` → `staging` → `prod`.
    pub fn load(&self) -> Result<Environments, Failure> {
        match &self.environments_file {
            None => Ok(Environments::default()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    input(format!(
                        "--environments-file: cannot read {}: {e}",
                        p.display()
                    ))
                })?;
                Environments::parse(&text).map_err(|e| input(format!("{}: {e}", p.display())))
            }
        }
    }
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
