//! Integration tests: real loopback registries (Debian `docker-registry`), `skopeo`, and the
//! `promote` binary run as a child process. One binary, a module per area.
//!
//! Run with `cargo build -p promote-cli && cargo test -p integration-tests`. The tests need
//! `docker-registry`, `htpasswd` and `skopeo` on PATH (`scripts/test.sh` installs them) and fail,
//! never skip, without them.

mod copy;
mod fixtures;
mod sign;
mod support;
