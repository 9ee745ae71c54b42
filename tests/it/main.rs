//! Integration tests: real loopback registries (Debian `docker-registry`), `skopeo`, the
//! `promote` binary run as a child process, and the whole pipeline (the real ASL on
//! aws-local-stepfunctions, the real Lambdas under `cargo lambda watch`). One binary, a module
//! per area.
//!
//! Run with `cargo build --workspace --bins && cargo test -p integration-tests`. The tests need
//! `docker-registry`, `htpasswd` and `skopeo` on PATH, `moto_server` and `cargo-lambda` in
//! `.work/venv`, trixie's skopeo 1.18 (`.work/skopeo-trixie/`) as the independent verifier of
//! legacy cosign signatures, Node 22 with aws-local-stepfunctions, asl-validator and
//! `@sigstore/verify` (the independent verifier of Sigstore bundles) in `.work/node`, and cfn-lint
//! with the SAM CLI (`.work/sam-venv`); `scripts/test.sh` installs all of them
//! (`scripts/setup.sh`). Tests fail, never skip, without them, naming what is missing.

mod copy;
mod deploy;
mod docs;
mod ecr_front;
mod egress;
mod environment;
mod fixtures;
mod gate;
mod infra;
mod pipeline;
mod run;
mod sign;
mod smoke;
mod stand_ins;
mod start;
mod support;
mod sync;
