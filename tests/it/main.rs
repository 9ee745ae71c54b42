//! Integration tests: real loopback registries (Debian `docker-registry`), `skopeo`, and the
//! `promote` binary run as a child process. One binary, a module per area.
//!
//! Run with `cargo build -p promote-cli && cargo test -p integration-tests`. The tests need
//! `docker-registry`, `htpasswd` and `skopeo` on PATH, `moto_server` in `.work/venv` or on PATH
//! (`scripts/install-moto.sh`), and trixie's skopeo 1.18 as the independent cosign verifier
//! (`scripts/install-skopeo-sigstore.sh`, into `.work/skopeo-trixie/`); `scripts/test.sh`
//! installs all of them. Tests fail, never skip, without them.

mod copy;
mod environment;
mod fixtures;
mod gate;
mod infra;
mod pipeline;
mod run;
mod sign;
mod support;
