#!/usr/bin/env bash
# THE main job, on local stand-ins: no AWS account, no internet, no Docker daemon.
#
#   scripts/demo.sh
#
# Installs what it needs (scripts/setup.sh), builds the `promote` command and the Lambdas, then
# runs the real state machine (statemachine/promotion.asl.json, on aws-local-stepfunctions) with
# the real Lambda binaries (under `cargo lambda watch`) against docker-registry behind the
# ECR-faithful front (ECR's registry behaviours and its events), moto_server and Inspector's
# coverage stand-in: a three-platform image pushed to an ingress repository is promoted from the
# ECR push event the template's rule matched — copied to quarantine, gated on its (seeded)
# Inspector findings, annotated into the trusted repository, signed with a KMS key and tagged for
# `dev` — and the same event is run again to show that nothing is done twice. Prints a timeline
# per execution and the final state of the trusted repository (tags, annotations, signature
# verified). Honours CARGO_TARGET_DIR. Safe to run twice: everything it starts is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME}/.cargo/bin/cargo" ]]; then
  export PATH="${HOME}/.cargo/bin:${PATH}"
fi

bash "${ROOT}/scripts/setup.sh" system rust moto node cargo_lambda >&2
echo "demo: building promote, the Lambdas and the demo driver…" >&2
cargo build --quiet -p promote-cli -p integration-tests --bin promote --bin pipeline-demo >&2
# `cargo lambda watch` starts each function with `cargo run --bin <name>` and the stand-ins feature
# (the switches that point them at the local stand-ins): build them the same way first, so the
# timeline measures the pipeline, not the compiler.
for f in copy-to-quarantine scan-gate promote-and-annotate sign retag-for-environment sync-plan; do
  cargo build --quiet --bin "${f}" --features promotion-lambda/stand-ins >&2
done

TARGET="${CARGO_TARGET_DIR:-${ROOT}/target}"
PROMOTE_BIN="${TARGET}/debug/promote" exec "${TARGET}/debug/pipeline-demo"
