//! Platforms (`os/arch[/variant]`) as they appear in index entries and on the command line.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An index entry's platform. Extra fields (`os.version`, `os.features`) are kept in the raw
/// document; only what selection needs is read here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// CPU variant (`v8`), when relevant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Whether `self` (a selector from the command line) selects `entry`. A selector without a
    /// variant selects every variant.
    pub fn selects(&self, entry: &Platform) -> bool {
        self.os == entry.os
            && self.architecture == entry.architecture
            && (self.variant.is_none() || self.variant == entry.variant)
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!(
                "invalid platform {s:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64/v8"
            )),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_selects() {
        let sel: Platform = "linux/arm64".parse().unwrap();
        let v8: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(sel.selects(&v8));
        assert!(!v8.selects(&"linux/arm64/v7".parse().unwrap()));
        assert_eq!(v8.to_string(), "linux/arm64/v8");
        assert!("linux".parse::<Platform>().unwrap_err().contains("OS/ARCH"));
        assert!("linux//x".parse::<Platform>().is_err());
    }
}
