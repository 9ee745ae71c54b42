//! Integration tests: real loopback registries (Debian `docker-registry`), `skopeo`, and the
//! `promote` binary run as a child process. One binary, a module per area.
//!
//! Run with `cargo build -p promote-cli && cargo test -p integration-tests`. The tests need
//! `docker-registry`, `htpasswd` and `skopeo` on PATH (`scripts/test.sh` installs them) and fail,
//! never skip, without them.
//!
//! The `sign` tests also need trixie's skopeo 1.18 (`scripts/install-skopeo-sigstore.sh`, into
//! `.work/skopeo-trixie/`) as the independent cosign verifier, and `moto_server` in `.work/venv`
//! (`python3 -m venv .work/venv && .work/venv/bin/pip install "moto[server]"`) for KMS.

mod copy;
mod fixtures;
mod sign;
mod support;
