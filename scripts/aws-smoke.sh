#!/usr/bin/env bash
# The real-account smoke run of the promotion pipeline: deploys infra/template.yaml into a real
# AWS account under a unique stack name, pushes one small two-platform image to an ingress
# repository, waits for the promotion that push starts, checks what it produced, and deletes
# everything it created.
#
#   ECR_PROMOTION_SMOKE=1 AWS_PROFILE=sandbox AWS_REGION=eu-west-1 scripts/aws-smoke.sh
#   scripts/aws-smoke.sh --help
#
# NOT PART OF CI, and it must never run there by accident: under CI (CI set to anything but
# "", "false" or "0") it refuses to start unless ECR_PROMOTION_SMOKE=1 is set too. It touches
# the account the environment's credentials name (AWS_PROFILE, or AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY with AWS_SESSION_TOKEN for temporary ones) in the Region AWS_REGION (or
# AWS_DEFAULT_REGION, or --region): without them it refuses to start (exit 2) before any AWS call.
#
# Step by step:
#   1. refuses (exit 2, one line on stderr) without credentials and a Region, under CI without
#      the opt-in, without aws, sam (1.170 or later), cargo, cargo-lambda, skopeo, jq or python3,
#      when `aws sts get-caller-identity` fails, when the stack name is taken, when Inspector's
#      ECR scanning is off or would not scan the run's quarantine repository (the gate fails
#      closed: the run could not pass), or when it could not clean up after itself (below);
#   2. reads ECR's BLOB_MOUNTING account setting; --enable-blob-mounting enables it for the run
#      and restores the previous value at cleanup; without it and with the setting off, promotion
#      copies layers instead of mounting them, and the run reports the bytes it streamed;
#   3. builds `promote` (cargo) and the Lambdas (`sam build`), deploys the stack
#      (`ecr-promotion-smoke-<id>`, or --stack-name) with repository prefixes of its own
#      (`smoke-<id>/incoming/`, `…/quarantine/`, `…/trusted/`, `…/approvals/`), so nothing
#      collides with a real deployment;
#   4. creates the ingress repository `smoke-<id>/incoming/app` (no creation template covers
#      the ingress prefix: the stack's templates cover quarantine, trusted and approvals only),
#      generates a two-platform OCI image (linux/amd64, linux/arm64, one tiny layer each) with
#      python3 and pushes it with `skopeo copy --all` as `app:1.0.0`;
#   5. finds the execution the push started, waits for it (--timeout, default 30 minutes), prints
#      its status (and its error and cause when it failed), and after a settle period checks that
#      the push started exactly one execution (none for the platform manifests, none for the
#      pipeline's own pushes into quarantine and trusted) and that the dead-letter queue is empty;
#   6. checks the repositories ECR created on push carry the creation templates' settings, that
#      `dev-1.0.0` in trusted names the promoted digest, and verifies the promoted digest's
#      signatures and promotion attestation with `promote verify --require both --attestation`
#      (and with `cosign verify` when cosign is on PATH; skipped, and said so, otherwise);
#   7. cleans up, always (an EXIT trap, also on failure and Ctrl-C; --keep skips it and prints
#      what is left): stops a still-running execution, deletes the stack (`sam delete`, which
#      also removes its uploaded artifacts), deletes the repositories it created and those ECR
#      created on push under its prefix (`aws ecr delete-repository --force`: the stack does not
#      own them), schedules the retained KMS signing key for deletion (7 days, the minimum),
#      restores the registry scanning configuration (with --configure-registry-scanning) and the
#      BLOB_MOUNTING setting it changed. Every resource is written to a ledger when it is
#      created; cleanup removes what the ledger names and nothing else;
#   8. prints a summary (each check PASS, FAIL, SKIP or INFO; push → execution start and the
#      execution's duration) and exits 1 when any check failed, 0 otherwise (130 on Ctrl-C).
#
# Cleanup and the break-glass role: the repository policies the creation templates set deny
# BatchDeleteImage and DeleteRepository to everyone but the stack's BreakGlassRoleName. The run
# therefore deploys with BreakGlassRoleName set to the IAM role it runs as, so that it can delete
# the repositories it made; that needs credentials of an IAM role without a path (an assumed
# role; SSO roles live under a path and cannot be named). With other credentials (an IAM user,
# a role with a path) it refuses to start, unless --keep (then an administrator with the
# break-glass role deletes the repositories afterwards).
#
# The image is synthetic: an Alpine-like /etc/os-release and apk database (one package) so that
# Inspector has an operating system to recognise, plus a file naming the run. Whether Inspector
# scans it or calls it UNSUPPORTED_OS is not known before a run, so the stack's gate policy is the
# default (CRITICAL and HIGH block) with allow_unscannable: true, and the summary reports what
# the gate saw per platform.
#
# What it costs (assumptions to check against the AWS pricing pages; they change): Step
# Functions, Lambda and KMS requests for one promotion are well under one cent (README, "What a
# promotion costs"); Inspector bills each image scan (about $0.09 per initial scan is the
# README's assumption: two platforms in quarantine and two in trusted, about $0.36); the KMS key
# costs $1 per month prorated while it exists (it is scheduled for deletion in 7 days; whether
# the waiting period is billed: see the KMS pricing page); ECR storage, CloudWatch Logs (1-day
# retention), EventBridge, SQS and the S3 artifacts (tens of MB, deleted with the stack) are
# fractions of a cent. Roughly half a dollar in all. It takes 15-45 minutes, most of it the
# builds, the deployment and Inspector's first scan.
#
# What it proves that the local stand-ins (tests/it, README "Tested against") cannot: that the
# template deploys (CloudFormation, not only cfn-lint and moto); that ECR's push events for a
# multi-arch image start exactly one execution through the rule, its role and its retry policy;
# that create on push applies the creation templates (encryption, tag immutability, repository
# and lifecycle policies) before the pipeline's first image lands; that the least-privilege
# roles, the repository policies, the key policy and SignFunctionSourceGuard let the pipeline do
# its work (nothing stands in for resource-based policies here); real Inspector coverage and
# findings; the BLOB_MOUNTING setting as ECR applies it; the real Step Functions service and the
# arm64 Lambdas at 128 MB; signatures made with the real KMS key verifying with `promote verify`.
#
# Left behind on purpose: the SAM CLI's shared artifacts stack (`aws-sam-cli-managed-default`,
# created by `--resolve-s3` when the account had none: the run says so) and ECR's service-linked
# role for creation templates (AWSServiceRoleForECRTemplate), both account-wide.
#
# Never run here: the project's workplace has no AWS account and no internet. Nothing in this
# file has been run against AWS; tests/it/smoke.rs checks only its refusals, offline.
set -euo pipefail

PROG=aws-smoke.sh
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OPT_IN=ECR_PROMOTION_SMOKE
APP=app
TAG=1.0.0
ENV_TAG="dev-${TAG}"
# After the execution ends: how long to wait for executions that should not start.
SETTLE_SECONDS=60
# How long the push's execution may take to appear (EventBridge delivery, retries).
START_WAIT_SECONDS=300
POLL_SECONDS=15
# The oldest SAM CLI that builds BuildMethod: rust-cargolambda without beta flags.
SAM_MIN_VERSION=1.170.0
# The gate policy of the smoke stack: the template's default plus allow_unscannable (see above).
GATE_POLICY='{"block_severities":["CRITICAL","HIGH"],"allow_unscannable":true}'

usage() {
  cat <<EOF
Usage: scripts/aws-smoke.sh [options]

Deploys the pipeline into a real AWS account under a unique stack name, pushes a small
two-platform image, waits for its promotion, verifies it, and deletes everything it created.
NOT part of CI. Costs roughly half a dollar (mostly Inspector scans); see the script's header.

Needs in the environment: AWS_REGION (or AWS_DEFAULT_REGION, or --region) and credentials
(AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN]) of an IAM
role without a path; programs aws, sam (>= ${SAM_MIN_VERSION}), cargo, cargo-lambda, skopeo,
jq, python3 (cosign optional). Under CI (CI=true) it refuses unless ${OPT_IN}=1.

Options:
  --stack-name NAME               stack name (default: ecr-promotion-smoke-<random id>);
                                  must not exist yet; at most 75 characters
  --region REGION                 AWS Region (default: AWS_REGION, else AWS_DEFAULT_REGION)
  --timeout DURATION              how long to wait for the promotion after the push: minutes,
                                  or N followed by s, m or h (default: 30)
  --keep                          do not clean up; print what was left and how to remove it
  --enable-blob-mounting          set ECR's BLOB_MOUNTING account setting to ENABLED for the
                                  run (restored at cleanup) when it is not
  --configure-registry-scanning   deploy with ConfigureRegistryScanning=true: REPLACES the
                                  account's registry scanning configuration in the Region for
                                  the run (the previous one is restored at cleanup)
  -h, --help                      print this help and exit

Exit status: 0 every check passed; 1 a check failed (or the run stopped early); 2 refused to
start (missing credentials, Region, program, opt-in) or bad options; 130 interrupted.
EOF
}

usage_error() {
  echo "${PROG}: $*" >&2
  usage >&2
  exit 2
}

refuse() {
  echo "${PROG}: refusing to start: $*" >&2
  exit 2
}

# ------------------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------------------
STACK=""
REGION_OPT=""
TIMEOUT_OPT=30
KEEP=0
ENABLE_BLOB_MOUNTING=0
CONFIGURE_SCANNING=0
while (($# > 0)); do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --stack-name | --region | --timeout)
      (($# >= 2)) || usage_error "$1 needs a value"
      case "$1" in
        --stack-name) STACK="$2" ;;
        --region) REGION_OPT="$2" ;;
        --timeout) TIMEOUT_OPT="$2" ;;
      esac
      shift 2
      ;;
    --stack-name=*) STACK="${1#*=}" && shift ;;
    --region=*) REGION_OPT="${1#*=}" && shift ;;
    --timeout=*) TIMEOUT_OPT="${1#*=}" && shift ;;
    --keep) KEEP=1 && shift ;;
    --enable-blob-mounting) ENABLE_BLOB_MOUNTING=1 && shift ;;
    --configure-registry-scanning) CONFIGURE_SCANNING=1 && shift ;;
    *) usage_error "unknown option: $1" ;;
  esac
done

if [[ "${TIMEOUT_OPT}" =~ ^([0-9]+)([smh]?)$ ]]; then
  case "${BASH_REMATCH[2]}" in
    s) TIMEOUT_SECONDS=$((10#${BASH_REMATCH[1]})) ;;
    h) TIMEOUT_SECONDS=$((10#${BASH_REMATCH[1]} * 3600)) ;;
    *) TIMEOUT_SECONDS=$((10#${BASH_REMATCH[1]} * 60)) ;;
  esac
  ((TIMEOUT_SECONDS >= 60)) || usage_error "--timeout must be at least one minute"
else
  usage_error "--timeout takes minutes, or a number followed by s, m or h: ${TIMEOUT_OPT}"
fi
if [[ -n "${STACK}" && ! "${STACK}" =~ ^[A-Za-z][A-Za-z0-9-]{0,74}$ ]]; then
  # 75: the template names its sync state machine <stack>-sync, and Step Functions allows 80.
  usage_error "--stack-name must be a letter then letters, digits or '-', at most 75 characters: ${STACK}"
fi
if [[ -n "${REGION_OPT}" && ! "${REGION_OPT}" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]]; then
  usage_error "--region is not a Region name: ${REGION_OPT}"
fi

# ------------------------------------------------------------------------------------------------
# Refusals: nothing below touches an account until the last of them passed.
# ------------------------------------------------------------------------------------------------
case "${CI:-}" in
  "" | false | 0) ;;
  *)
    if [[ "${!OPT_IN:-}" != 1 ]]; then
      refuse "CI=${CI} and ${OPT_IN} is not 1: this script deploys into a real AWS account and is not part of CI; set ${OPT_IN}=1 to run it on purpose"
    fi
    ;;
esac

REGION="${REGION_OPT:-${AWS_REGION:-${AWS_DEFAULT_REGION:-}}}"
missing=()
if [[ -z "${AWS_PROFILE:-}" && (-z "${AWS_ACCESS_KEY_ID:-}" || -z "${AWS_SECRET_ACCESS_KEY:-}") ]]; then
  partial=""
  if [[ -n "${AWS_ACCESS_KEY_ID:-}${AWS_SECRET_ACCESS_KEY:-}${AWS_SESSION_TOKEN:-}" ]]; then
    [[ -n "${AWS_ACCESS_KEY_ID:-}" ]] || partial+=" AWS_ACCESS_KEY_ID is missing;"
    [[ -n "${AWS_SECRET_ACCESS_KEY:-}" ]] || partial+=" AWS_SECRET_ACCESS_KEY is missing;"
    partial=" (${partial# }"
    partial="${partial%;})"
  fi
  missing+=("AWS credentials (AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, with AWS_SESSION_TOKEN for temporary ones)${partial}")
fi
if [[ -z "${REGION}" ]]; then
  missing+=("an AWS Region (AWS_REGION or AWS_DEFAULT_REGION, or --region)")
elif [[ ! "${REGION}" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]]; then
  missing+=("a valid AWS Region (AWS_REGION/AWS_DEFAULT_REGION is '${REGION}')")
fi
if ((${#missing[@]} > 0)); then
  joined="$(printf '%s and ' "${missing[@]}")"
  refuse "missing from the environment: ${joined% and }; no AWS call was made"
fi
export AWS_REGION="${REGION}" AWS_DEFAULT_REGION="${REGION}"
# No pager (AWS CLI v2 pipes output through less on a terminal), no SAM telemetry unless asked.
export AWS_PAGER=""
export SAM_CLI_TELEMETRY="${SAM_CLI_TELEMETRY:-0}"

if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME:-/nonexistent}/.cargo/bin/cargo" ]]; then
  export PATH="${HOME}/.cargo/bin:${PATH}"
fi
missing=()
for program in aws sam cargo cargo-lambda skopeo jq python3; do
  command -v "${program}" >/dev/null 2>&1 || missing+=("${program}")
done
if ((${#missing[@]} > 0)); then
  refuse "missing program(s): ${missing[*]} (README.md \"Deploy\", Prerequisites; \`scripts/setup.sh sam cargo_lambda\` installs sam and cargo-lambda under .work/)"
fi
sam_version="$(sam --version 2>/dev/null | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1 || true)"
if [[ -z "${sam_version}" ]] ||
  [[ "$(printf '%s\n%s\n' "${SAM_MIN_VERSION}" "${sam_version}" | sort -V | head -n 1)" != "${SAM_MIN_VERSION}" ]]; then
  refuse "program sam is ${sam_version:-of an unknown version}; ${SAM_MIN_VERSION} or later is needed (BuildMethod: rust-cargolambda)"
fi

if ! identity="$(aws sts get-caller-identity --output json 2>&1)"; then
  refuse "the credentials do not work: aws sts get-caller-identity failed: $(printf '%s' "${identity}" | tr '\n' ' ' | cut -c1-300)"
fi
ACCOUNT="$(jq -r '.Account' <<<"${identity}")"
CALLER_ARN="$(jq -r '.Arn' <<<"${identity}")"
PARTITION="$(cut -d: -f2 <<<"${CALLER_ARN}")"
URL_SUFFIX=amazonaws.com
[[ "${PARTITION}" == aws-cn ]] && URL_SUFFIX=amazonaws.com.cn
REGISTRY="${ACCOUNT}.dkr.ecr.${REGION}.${URL_SUFFIX}"

RUN_ID="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
STACK="${STACK:-ecr-promotion-smoke-${RUN_ID}}"
PREFIX="smoke-${RUN_ID}/"
INGRESS_PREFIX="${PREFIX}incoming/"
QUARANTINE_PREFIX="${PREFIX}quarantine/"
TRUSTED_PREFIX="${PREFIX}trusted/"
APPROVALS_PREFIX="${PREFIX}approvals/"
INGRESS_REPO="${INGRESS_PREFIX}${APP}"
QUARANTINE_REPO="${QUARANTINE_PREFIX}${APP}"
TRUSTED_REPO="${TRUSTED_PREFIX}${APP}"

echo "== ${PROG}: account ${ACCOUNT}, Region ${REGION}, as ${CALLER_ARN}"
echo "   stack ${STACK}, repositories under ${PREFIX}, image ${REGISTRY}/${INGRESS_REPO}:${TAG}"

# Cleanup deletes repositories whose policy lets only BreakGlassRoleName delete them: the run is
# that role (see the header).
BREAK_GLASS_ROLE=""
if [[ "${CALLER_ARN}" =~ ^arn:[a-z-]+:sts::[0-9]{12}:assumed-role/([^/]+)/ ]]; then
  role_name="${BASH_REMATCH[1]}"
  if role_path="$(aws iam get-role --role-name "${role_name}" --query Role.Path --output text 2>&1)"; then
    [[ "${role_path}" == / ]] && BREAK_GLASS_ROLE="${role_name}"
  else
    echo "${PROG}: warning: cannot read role ${role_name} (iam:GetRole): assuming it has no path" >&2
    BREAK_GLASS_ROLE="${role_name}"
  fi
fi
if [[ -z "${BREAK_GLASS_ROLE}" ]]; then
  if ((KEEP == 0)); then
    refuse "cleanup must delete repositories only the stack's break-glass role may delete, and the caller (${CALLER_ARN}) cannot be named as one (an IAM user, the root user or a role with a path): run as an IAM role without a path, or pass --keep and delete the repositories under ${PREFIX} with the break-glass role afterwards"
  fi
  BREAK_GLASS_ROLE=ecr-promotion-break-glass
  echo "${PROG}: warning: --keep: the repositories ECR creates on push can only be deleted by role ${BREAK_GLASS_ROLE}" >&2
fi

stack_lookup="$(aws cloudformation describe-stacks --stack-name "${STACK}" --query 'Stacks[0].StackStatus' --output text 2>&1 || true)"
if [[ "${stack_lookup}" != *"does not exist"* ]]; then
  refuse "stack ${STACK} already exists or cannot be looked up (${stack_lookup//$'\n'/ }): the run deletes its stack at the end, so it only uses a new one"
fi
existing="$(aws ecr describe-repositories --query "repositories[?starts_with(repositoryName, '${PREFIX}')].repositoryName" --output text 2>&1)" ||
  refuse "cannot list the ECR repositories: ${existing//$'\n'/ }"
if [[ -n "${existing}" && "${existing}" != None ]]; then
  refuse "repositories under ${PREFIX} already exist (${existing}): run again for another id"
fi

if inspector="$(aws inspector2 batch-get-account-status --account-ids "${ACCOUNT}" --output json 2>&1)"; then
  ecr_scanning="$(jq -r '.accounts[0].resourceState.ecr.status // "UNKNOWN"' <<<"${inspector}")"
  if [[ "${ecr_scanning}" != ENABLED ]]; then
    refuse "Amazon Inspector's ECR scanning is ${ecr_scanning} in ${REGION}: the gate fails closed and nothing would be promoted (aws inspector2 enable --resource-types ECR)"
  fi
  echo "   Inspector ECR scanning: ENABLED"
else
  echo "${PROG}: warning: cannot read Inspector's status (${inspector//$'\n'/ }); the gate needs ECR scanning enabled" >&2
fi

if ! scanning="$(aws ecr get-registry-scanning-configuration --output json 2>&1)"; then
  refuse "cannot read the registry scanning configuration: ${scanning//$'\n'/ }"
fi
# Does the account's configuration (ENHANCED, a continuous or on-push wildcard filter) scan REPO?
scanned_by_account() {
  local repo="$1" filter
  [[ "$(jq -r '.scanningConfiguration.scanType // ""' <<<"${scanning}")" == ENHANCED ]] || return 1
  while IFS= read -r filter; do
    # shellcheck disable=SC2053 # ECR's wildcard filters are globs: `*` matches any characters.
    [[ -n "${filter}" && "${repo}" == ${filter} ]] && return 0
  done < <(jq -r '.scanningConfiguration.rules[]?
      | select(.scanFrequency == "CONTINUOUS_SCAN" or .scanFrequency == "SCAN_ON_PUSH")
      | .repositoryFilters[]? | select(.filterType == "WILDCARD") | .filter' <<<"${scanning}")
  return 1
}
if ((CONFIGURE_SCANNING == 1)); then
  {
    echo
    echo "  !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "  !! --configure-registry-scanning: the stack REPLACES this account's registry scanning"
    echo "  !! configuration in ${REGION} (account-wide) with continuous scanning of ${QUARANTINE_PREFIX}* and ${TRUSTED_PREFIX}* only."
    echo "  !! Every other repository the account scans stops being scanned until cleanup puts the"
    echo "  !! current configuration back (saved now; with --keep it is NOT restored):"
    echo "  !!   $(jq -c '.scanningConfiguration' <<<"${scanning}")"
    echo "  !! Ctrl-C within 15 seconds to stop."
    echo "  !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo
  } >&2
  sleep 15
elif ! scanned_by_account "${QUARANTINE_REPO}"; then
  refuse "the registry scanning configuration does not scan ${QUARANTINE_REPO} (it needs ENHANCED with a continuous or on-push wildcard filter such as 'smoke-*'): the gate would fail closed with Gate.Timeout; add such a filter, or pass --configure-registry-scanning (replaces the account's configuration for the run)"
elif ! scanned_by_account "${TRUSTED_REPO}"; then
  echo "${PROG}: warning: the registry scanning configuration does not scan ${TRUSTED_REPO}: later environment gates could not pass (this run does not need them)" >&2
fi

if blob_mounting="$(aws ecr get-account-setting --name BLOB_MOUNTING --query value --output text 2>&1)"; then
  echo "   ECR BLOB_MOUNTING: ${blob_mounting}"
else
  ((ENABLE_BLOB_MOUNTING == 0)) || refuse "cannot read ECR's BLOB_MOUNTING setting to change it: ${blob_mounting//$'\n'/ } (an AWS CLI that knows \`aws ecr get-account-setting\` is needed)"
  echo "${PROG}: warning: cannot read ECR's BLOB_MOUNTING setting (${blob_mounting//$'\n'/ }): mounting is not asserted" >&2
  blob_mounting=UNKNOWN
fi

# ------------------------------------------------------------------------------------------------
# From here on the run creates things: each one is written to the ledger first, and the EXIT
# trap removes exactly what the ledger names.
# ------------------------------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ecr-promotion-smoke.XXXXXX")"
chmod 700 "${WORK}"
LEDGER="${WORK}/ledger.tsv"
: >"${LEDGER}"
SAMCONFIG="${WORK}/samconfig.toml"
# An empty SAM configuration: a samconfig.toml in the checkout (a real deployment's, with its
# profile, stack and parameters) must not leak into the smoke stack.
printf 'version = 0.1\n' >"${SAMCONFIG}"
STATE_MACHINE_ARN=""
INTERRUPTED=0
FAILED_AT=""
CHECK_NAMES=()
CHECK_RESULTS=()
CHECK_DETAILS=()
DURATIONS=()
LEFT=()

stamp() { date -u +%H:%M:%S; }
step() { printf '\n[%s] == %s\n' "$(stamp)" "$*"; }
say() { printf '[%s] %s\n' "$(stamp)" "$*"; }
warn() { printf '[%s] warning: %s\n' "$(stamp)" "$*" >&2; }

# check RESULT NAME [DETAIL]: RESULT is PASS, FAIL, SKIP or INFO.
check() {
  CHECK_RESULTS+=("$1")
  CHECK_NAMES+=("$2")
  CHECK_DETAILS+=("${3:-}")
  say "$1: $2${3:+ ($3)}"
}

# record KIND VALUE: what cleanup must undo, written before (or as) it is created.
record() {
  printf '%s\t%s\n' "$1" "$2" >>"${LEDGER}"
  say "recorded for cleanup: $1 $2"
}

recorded() { cut -f1 "${LEDGER}" | grep -qx -- "$1"; }
recorded_values() { awk -F '\t' -v k="$1" '$1 == k { print $2 }' "${LEDGER}"; }

now() { date +%s; }

# epoch TIMESTAMP: seconds since the epoch of a timestamp the AWS CLI printed (ISO 8601, or
# seconds with the CLI's `cli_timestamp_format = none`).
epoch() {
  python3 -c '
import datetime, sys
v = sys.argv[1]
try:
    print(float(v))
except ValueError:
    print(datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp())
' "$1"
}

seconds_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

human() {
  awk -v s="$1" 'BEGIN { if (s >= 60) printf "%dm%04.1fs", int(s / 60), s - 60 * int(s / 60); else printf "%.1fs", s }'
}

stack_output() {
  aws cloudformation describe-stacks --stack-name "${STACK}" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

# stack_status: the stack's status, NONE when it does not exist (or is deleted), UNKNOWN when
# CloudFormation could not be asked.
stack_status() {
  local out
  if out="$(aws cloudformation describe-stacks --stack-name "${STACK}" --query 'Stacks[0].StackStatus' --output text 2>&1)"; then
    echo "${out}"
  elif [[ "${out}" == *"does not exist"* ]]; then
    echo NONE
  else
    echo UNKNOWN
  fi
}

# ------------------------------------------------------------------------------------------------
# Cleanup and summary (the EXIT trap)
# ------------------------------------------------------------------------------------------------
delete_stack() {
  local status key waited=0
  # The signing key is retained by the stack (even by a rolled-back creation): find it first.
  if ! recorded kms-key; then
    key="$(aws cloudformation describe-stack-resource --stack-name "${STACK}" --logical-resource-id SigningKey \
      --query StackResourceDetail.PhysicalResourceId --output text 2>/dev/null || true)"
    [[ -n "${key}" && "${key}" != None ]] && record kms-key "${key}"
  fi
  status="$(stack_status)"
  while [[ "${status}" == *_IN_PROGRESS && "${status}" != REVIEW_IN_PROGRESS && "${status}" != DELETE_IN_PROGRESS ]] &&
    ((waited < 2700)); do
    say "stack ${STACK} is ${status}: waiting for it to settle before deleting it"
    sleep 30
    waited=$((waited + 30))
    status="$(stack_status)"
  done
  if [[ "${status}" != NONE && "${status}" != DELETE_COMPLETE ]]; then
    if ! sam delete --stack-name "${STACK}" --region "${REGION}" --no-prompts --s3-prefix "${STACK}" \
      --config-file "${SAMCONFIG}"; then
      warn "sam delete failed; deleting with CloudFormation"
      aws cloudformation delete-stack --stack-name "${STACK}" || true
      aws cloudformation wait stack-delete-complete --stack-name "${STACK}" || true
    fi
  fi
  status="$(stack_status)"
  [[ "${status}" == NONE || "${status}" == DELETE_COMPLETE ]]
}

cleanup() {
  local arn repo repos key deletion previous rules scan_type started prefix
  step "cleanup: removing what the ledger names"
  started="$(now)"
  if [[ -n "${STATE_MACHINE_ARN}" ]]; then
    for arn in $(aws stepfunctions list-executions --state-machine-arn "${STATE_MACHINE_ARN}" --status-filter RUNNING \
      --query 'executions[].executionArn' --output text 2>/dev/null || true); do
      [[ "${arn}" == None ]] && continue
      if aws stepfunctions stop-execution --execution-arn "${arn}" --cause "${PROG} cleanup" >/dev/null; then
        say "stopped execution ${arn}"
      else
        LEFT+=("execution ${arn} (still running; the stack deletion ends it)")
      fi
    done
  fi
  if recorded stack; then
    if delete_stack; then
      check PASS "cleanup: stack ${STACK} deleted"
    else
      check FAIL "cleanup: stack ${STACK} deleted" "status $(stack_status)"
      LEFT+=("stack ${STACK}: sam delete --stack-name ${STACK} --region ${REGION} --no-prompts")
    fi
  fi
  if recorded repository || recorded repository-prefix; then
    repos="$(
      {
        recorded_values repository
        while IFS= read -r prefix; do
          aws ecr describe-repositories --query "repositories[?starts_with(repositoryName, '${prefix}')].repositoryName" \
            --output text 2>/dev/null | tr '\t' '\n' | grep -v '^None$' || true
        done < <(recorded_values repository-prefix)
      } | sort -u
    )"
    for repo in ${repos}; do
      if ! aws ecr describe-repositories --repository-names "${repo}" >/dev/null 2>&1; then
        continue # never created (or already gone)
      fi
      if aws ecr delete-repository --repository-name "${repo}" --force >/dev/null; then
        check PASS "cleanup: repository ${repo} deleted (with its images)"
      else
        check FAIL "cleanup: repository ${repo} deleted" "its policy lets only role ${BREAK_GLASS_ROLE} delete it"
        LEFT+=("repository ${repo}: aws ecr delete-repository --repository-name ${repo} --force (as ${BREAK_GLASS_ROLE})")
      fi
    done
  fi
  while IFS= read -r key; do
    [[ -n "${key}" ]] || continue
    if deletion="$(aws kms schedule-key-deletion --key-id "${key}" --pending-window-in-days 7 \
      --query DeletionDate --output text 2>&1)"; then
      check PASS "cleanup: KMS key ${key} scheduled for deletion" "on ${deletion}, after the 7-day minimum; undo with aws kms cancel-key-deletion --key-id ${key}"
    elif [[ "${deletion}" == *"pending deletion"* || "${deletion}" == *PendingDeletion* ]]; then
      check PASS "cleanup: KMS key ${key} scheduled for deletion" "already pending deletion"
    else
      check FAIL "cleanup: KMS key ${key} scheduled for deletion" "${deletion//$'\n'/ }"
      LEFT+=("KMS key ${key}: aws kms schedule-key-deletion --key-id ${key} --pending-window-in-days 7")
    fi
  done < <(recorded_values kms-key)
  while IFS= read -r previous; do
    [[ -n "${previous}" ]] || continue
    scan_type="$(jq -r '.scanningConfiguration.scanType // "BASIC"' "${previous}")"
    rules="$(jq -c '.scanningConfiguration.rules // []' "${previous}")"
    if aws ecr put-registry-scanning-configuration --scan-type "${scan_type}" --rules "${rules}" >/dev/null; then
      check PASS "cleanup: registry scanning configuration restored" "${scan_type}, ${rules}"
    else
      check FAIL "cleanup: registry scanning configuration restored" "saved in ${previous}"
      LEFT+=("registry scanning configuration: aws ecr put-registry-scanning-configuration --scan-type ${scan_type} --rules '${rules}'")
      KEEP_WORK=1
    fi
  done < <(recorded_values scanning-configuration)
  while IFS= read -r previous; do
    [[ -n "${previous}" ]] || continue
    if aws ecr put-account-setting --name BLOB_MOUNTING --value "${previous}" >/dev/null; then
      check PASS "cleanup: BLOB_MOUNTING restored to ${previous}"
    else
      check FAIL "cleanup: BLOB_MOUNTING restored to ${previous}"
      LEFT+=("BLOB_MOUNTING: aws ecr put-account-setting --name BLOB_MOUNTING --value ${previous}")
    fi
  done < <(recorded_values blob-mounting)
  DURATIONS+=("cleanup: $(human "$(($(now) - started))")")
}

print_kept() {
  local kind value
  step "--keep: nothing was cleaned up; left in the account"
  while IFS=$'\t' read -r kind value; do
    case "${kind}" in
      stack) echo "  stack ${value}: sam delete --stack-name ${value} --region ${REGION} --no-prompts" ;;
      repository) echo "  repository ${value}: aws ecr delete-repository --repository-name ${value} --force" ;;
      repository-prefix) echo "  repositories ECR created on push under ${value}: aws ecr delete-repository --force each, as role ${BREAK_GLASS_ROLE}" ;;
      kms-key) echo "  KMS key ${value} (retained by the stack): aws kms schedule-key-deletion --key-id ${value} --pending-window-in-days 7" ;;
      scanning-configuration) echo "  the registry scanning configuration was replaced; the previous one: $(jq -c '.scanningConfiguration' "${value}") (aws ecr put-registry-scanning-configuration)" ;;
      blob-mounting) echo "  BLOB_MOUNTING was changed; the previous value: aws ecr put-account-setting --name BLOB_MOUNTING --value ${value}" ;;
      *) echo "  ${kind} ${value}" ;;
    esac
  done <"${LEDGER}"
  if ! recorded kms-key && recorded stack; then
    echo "  the stack's KMS key (output SigningKeyArn), retained when the stack is deleted"
  fi
  echo "  the ledger: ${LEDGER}"
}

summary() {
  local i failed=0 passed=0 skipped=0
  step "summary: stack ${STACK}, account ${ACCOUNT}, Region ${REGION}"
  for i in "${!CHECK_NAMES[@]}"; do
    printf '  %-4s  %s%s\n' "${CHECK_RESULTS[i]}" "${CHECK_NAMES[i]}" "${CHECK_DETAILS[i]:+ (${CHECK_DETAILS[i]})}"
    case "${CHECK_RESULTS[i]}" in
      PASS) passed=$((passed + 1)) ;;
      FAIL) failed=$((failed + 1)) ;;
      SKIP) skipped=$((skipped + 1)) ;;
    esac
  done
  if ((${#DURATIONS[@]} > 0)); then
    echo "  durations:"
    printf '    %s\n' "${DURATIONS[@]}"
  fi
  if ((${#LEFT[@]} > 0)); then
    echo "  LEFT IN THE ACCOUNT (remove by hand):"
    printf '    %s\n' "${LEFT[@]}"
  fi
  echo "  ${passed} passed, ${failed} failed, ${skipped} skipped"
  SUMMARY_FAILED="${failed}"
}

KEEP_WORK=0
finish() {
  local status=$?
  set +e
  trap '' INT TERM HUP
  if ((status != 0 && INTERRUPTED == 0)) && [[ -n "${FAILED_AT}" || " ${CHECK_RESULTS[*]} " != *" FAIL "* ]]; then
    check FAIL "the run went to its end" "stopped with status ${status}${FAILED_AT:+ at ${FAILED_AT}}"
  elif ((INTERRUPTED == 1)); then
    check FAIL "the run went to its end" "interrupted"
  fi
  rm -rf "${WORK}/docker"
  if ((KEEP == 1)); then
    print_kept
    KEEP_WORK=1
  else
    echo "(cleaning up: Ctrl-C is ignored until it is done, or resources would be left behind)"
    cleanup
  fi
  summary
  if ((KEEP_WORK == 0)); then
    rm -rf "${WORK}"
  else
    echo "  work directory kept: ${WORK}"
  fi
  if ((INTERRUPTED == 1)); then
    exit 130
  elif ((SUMMARY_FAILED > 0 || status != 0)); then
    exit 1
  fi
  exit 0
}
trap finish EXIT
trap 'INTERRUPTED=1; exit 130' INT TERM HUP
trap 'FAILED_AT="line ${LINENO}: ${BASH_COMMAND}"' ERR

# ------------------------------------------------------------------------------------------------
# 2. BLOB_MOUNTING
# ------------------------------------------------------------------------------------------------
step "ECR blob mounting"
if [[ "${blob_mounting}" != ENABLED && ${ENABLE_BLOB_MOUNTING} == 1 ]]; then
  record blob-mounting "${blob_mounting}"
  aws ecr put-account-setting --name BLOB_MOUNTING --value ENABLED >/dev/null
  blob_mounting="$(aws ecr get-account-setting --name BLOB_MOUNTING --query value --output text)"
  say "BLOB_MOUNTING set to ${blob_mounting} for the run (restored at cleanup)"
fi
if [[ "${blob_mounting}" == ENABLED ]]; then
  check INFO "BLOB_MOUNTING is ENABLED" "promotion must mount layers: asserted below"
elif [[ "${blob_mounting}" == UNKNOWN ]]; then
  check INFO "BLOB_MOUNTING could not be read" "mounting is not asserted"
else
  check INFO "BLOB_MOUNTING is ${blob_mounting}" "the promotion will copy layers instead of mounting them; mounting is not asserted, --enable-blob-mounting tests it"
fi

if ((CONFIGURE_SCANNING == 1)); then
  jq . <<<"${scanning}" >"${WORK}/registry-scanning-before.json"
  record scanning-configuration "${WORK}/registry-scanning-before.json"
fi

# ------------------------------------------------------------------------------------------------
# 3. Build and deploy
# ------------------------------------------------------------------------------------------------
step "building promote (release) and the Lambdas (sam build)"
started="$(now)"
(cd "${ROOT}" && cargo build --release --locked -p promote-cli --bin promote)
(cd "${ROOT}" && sam build -t infra/template.yaml --build-dir "${WORK}/sam-build" --config-file "${SAMCONFIG}")
DURATIONS+=("builds: $(human "$(($(now) - started))")")

step "deploying stack ${STACK}"
managed_before="$(aws cloudformation describe-stacks --stack-name aws-sam-cli-managed-default \
  --query 'Stacks[0].StackStatus' --output text 2>/dev/null || echo NONE)"
# Scan waits end before the run gives up, so a scan that never finishes fails as Gate.Timeout.
scan_max_wait=$((TIMEOUT_SECONDS - 300))
((scan_max_wait >= 60)) || scan_max_wait=60
((scan_max_wait <= 86400)) || scan_max_wait=86400
scanning_flag=false
((CONFIGURE_SCANNING == 0)) || scanning_flag=true
record repository-prefix "${PREFIX}"
record stack "${STACK}"
started="$(now)"
deployed=0
# CAPABILITY_IAM only: the template's roles have no names (CAPABILITY_NAMED_IAM would also let
# a future named role through unacknowledged). Values with quotes are single-quoted for SAM's
# parameter parser.
if sam deploy --template-file "${WORK}/sam-build/template.yaml" --stack-name "${STACK}" --region "${REGION}" \
  --config-file "${SAMCONFIG}" --capabilities CAPABILITY_IAM --resolve-s3 --s3-prefix "${STACK}" \
  --no-confirm-changeset --no-fail-on-empty-changeset --no-progressbar \
  --tags "ecr-promotion-smoke=${RUN_ID}" \
  --parameter-overrides \
  "IngressRepositoryPrefix=${INGRESS_PREFIX}" \
  "QuarantineRepositoryPrefix=${QUARANTINE_PREFIX}" \
  "TrustedRepositoryPrefix=${TRUSTED_PREFIX}" \
  "ApprovalsRepositoryPrefix=${APPROVALS_PREFIX}" \
  "BreakGlassRoleName=${BREAK_GLASS_ROLE}" \
  "ConfigureRegistryScanning=${scanning_flag}" \
  "GatePolicy='${GATE_POLICY}'" \
  "ScanMaxWaitSeconds=${scan_max_wait}" \
  "LogRetentionDays=1"; then
  deployed=1
fi
DURATIONS+=("deployment: $(human "$(($(now) - started))")")
if [[ "${managed_before}" == NONE ]] &&
  aws cloudformation describe-stacks --stack-name aws-sam-cli-managed-default >/dev/null 2>&1; then
  LEFT+=("stack aws-sam-cli-managed-default: the SAM CLI's artifacts bucket, created by --resolve-s3 (shared by every SAM deployment in the Region; not removed)")
fi
if ((deployed == 0)); then
  check FAIL "deploy stack ${STACK}" "status $(stack_status)"
  exit 1
fi
check PASS "deploy stack ${STACK}"
STATE_MACHINE_ARN="$(stack_output StateMachineArn)"
KEY_ARN="$(stack_output SigningKeyArn)"
DLQ_URL="$(stack_output DeadLetterQueueUrl)"
record kms-key "${KEY_ARN}"
trusted_uri="$(stack_output TrustedRepositoryPrefixUri)"
if [[ "${trusted_uri}" != "${REGISTRY}/${TRUSTED_PREFIX}" ]]; then
  warn "the stack's TrustedRepositoryPrefixUri is ${trusted_uri}, not ${REGISTRY}/${TRUSTED_PREFIX}"
fi

# ------------------------------------------------------------------------------------------------
# 4. The image and its push
# ------------------------------------------------------------------------------------------------
step "creating ${INGRESS_REPO} and a two-platform image"
record repository "${INGRESS_REPO}"
# The same encryption as the creation templates (AES256): ECR mounts blobs only between
# repositories encrypted alike.
aws ecr create-repository --repository-name "${INGRESS_REPO}" \
  --encryption-configuration encryptionType=AES256 --image-tag-mutability MUTABLE \
  --tags "Key=ecr-promotion-smoke,Value=${RUN_ID}" >/dev/null

python3 - "${WORK}/image" "${RUN_ID}" "${TAG}" >"${WORK}/image.json" <<'PY'
# An OCI image layout: one index, two platform images of one gzip layer each (an Alpine-like
# os-release and apk database, and a file naming the run, so every run's digests are new).
import gzip, hashlib, io, json, os, sys, tarfile

out, run_id, tag = sys.argv[1:4]
os.makedirs(os.path.join(out, "blobs", "sha256"))


def put(data):
    hexd = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", hexd), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + hexd, "size": len(data)}


def layer(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        made = set()
        for path, content in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in made:
                    made.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    t.addfile(info)
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            t.addfile(info, io.BytesIO(content))
    tar = raw.getvalue()
    return tar, gzip.compress(tar, mtime=0)


OS_RELEASE = b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME="Alpine Linux v3.20"\n'
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
platforms = []
for arch, variant, apk_arch in (("amd64", None, "x86_64"), ("arm64", "v8", "aarch64")):
    apk = (
        "P:alpine-baselayout-data\nV:3.6.5-r0\nA:%s\nT:Alpine base dir structure\n"
        "L:GPL-2.0-only\no:alpine-baselayout\nF:etc\nR:os-release\n\n" % apk_arch
    ).encode()
    tar, gz = layer([
        ("etc/os-release", OS_RELEASE),
        ("etc/alpine-release", b"3.20.3\n"),
        ("lib/apk/db/installed", apk),
        ("smoke/run", ("ecr-promotion smoke run %s, linux/%s\n" % (run_id, arch)).encode()),
    ])
    platform = {"architecture": arch, "os": "linux"}
    if variant:
        platform["variant"] = variant
    config = dict(platform)
    config.update({
        "created": "1970-01-01T00:00:00Z",
        "config": {"Labels": {"org.opencontainers.image.title": "ecr-promotion smoke " + run_id}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "scripts/aws-smoke.sh"}],
    })
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": dict(mediaType="application/vnd.oci.image.config.v1+json",
                       **put(json.dumps(config, sort_keys=True).encode())),
        "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **put(gz))],
    }
    desc = dict(mediaType=MANIFEST, **put(json.dumps(manifest, sort_keys=True).encode()))
    desc["platform"] = platform
    platforms.append(desc)

INDEX = "application/vnd.oci.image.index.v1+json"
index = put(json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": platforms},
                       sort_keys=True).encode())
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [dict(
        mediaType=INDEX, annotations={"org.opencontainers.image.ref.name": tag}, **index)]}, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
print(json.dumps({"index": index["digest"],
                  "platforms": {"linux/" + p["platform"]["architecture"]: p["digest"] for p in platforms}}))
PY
INDEX_DIGEST="$(jq -r .index "${WORK}/image.json")"
say "index ${INDEX_DIGEST}; platforms $(jq -c .platforms "${WORK}/image.json")"

# Registry credentials in a private Docker config (skopeo and cosign both read it), never on a
# command line.
mkdir -m 700 "${WORK}/docker"
ECR_TOKEN="$(aws ecr get-login-password)"
ECR_AUTH="$(printf 'AWS:%s' "${ECR_TOKEN}" | base64 | tr -d '\n')" REGISTRY="${REGISTRY}" \
  jq -n '{auths: {($ENV.REGISTRY): {auth: $ENV.ECR_AUTH}}}' >"${WORK}/docker/config.json"
chmod 600 "${WORK}/docker/config.json"

step "pushing ${REGISTRY}/${INGRESS_REPO}:${TAG} (skopeo copy --all)"
push_started="$(now)"
if ! skopeo copy --all --preserve-digests --retry-times 3 --dest-authfile "${WORK}/docker/config.json" \
  "oci:${WORK}/image:${TAG}" "docker://${REGISTRY}/${INGRESS_REPO}:${TAG}"; then
  check FAIL "push the two-platform image" "skopeo copy failed"
  exit 1
fi
push_done="$(now)"
check PASS "push the two-platform image" "${INDEX_DIGEST}, $((push_done - push_started)) s"

# ------------------------------------------------------------------------------------------------
# 5. The execution the push started
# ------------------------------------------------------------------------------------------------
step "waiting for the execution the push starts (up to ${START_WAIT_SECONDS} s)"
EXECUTION=""
while :; do
  # The earliest (jq sorts the timestamps however the CLI prints them: ISO 8601 or epoch).
  EXECUTION="$(aws stepfunctions list-executions --state-machine-arn "${STATE_MACHINE_ARN}" --output json 2>/dev/null |
    jq -r '.executions | sort_by(.startDate) | .[0].executionArn // empty' 2>/dev/null || true)"
  [[ -n "${EXECUTION}" ]] && break
  (($(now) - push_done < START_WAIT_SECONDS)) || break
  sleep 5
done
exec_status=NONE
if [[ -z "${EXECUTION}" ]]; then
  check FAIL "the push started an execution" "none within ${START_WAIT_SECONDS} s; look in the dead-letter queue ${DLQ_URL}"
else
  record execution "${EXECUTION}"
  description="$(aws stepfunctions describe-execution --execution-arn "${EXECUTION}" --output json)"
  exec_started="$(epoch "$(jq -r .startDate <<<"${description}")")"
  DURATIONS+=("push done → execution start: $(human "$(seconds_between "${push_done}" "${exec_started}")") (local clock against Step Functions')")
  trigger="$(jq -r '.input | fromjson | [.source, .["detail-type"], .detail["repository-name"], .detail["image-tag"], .detail["image-digest"]] | join(" ")' <<<"${description}" 2>/dev/null || true)"
  if [[ "${trigger}" == "aws.ecr ECR Image Action ${INGRESS_REPO} ${TAG} ${INDEX_DIGEST}" ]]; then
    check PASS "the push started an execution" "${EXECUTION##*:}, from the ECR push event of ${TAG}@${INDEX_DIGEST}"
  else
    check FAIL "the push started an execution" "its input is not the push of ${TAG}@${INDEX_DIGEST}: ${trigger:-unreadable}"
  fi

  step "waiting for ${EXECUTION##*:} to end (up to $(human "${TIMEOUT_SECONDS}") after the push)"
  deadline=$((push_done + TIMEOUT_SECONDS))
  last_report="$(now)"
  while :; do
    if description="$(aws stepfunctions describe-execution --execution-arn "${EXECUTION}" --output json 2>&1)"; then
      exec_status="$(jq -r .status <<<"${description}")"
      [[ "${exec_status}" == RUNNING || "${exec_status}" == PENDING_REDRIVE ]] || break
    else
      warn "describe-execution failed: ${description//$'\n'/ }"
      exec_status=UNKNOWN
    fi
    if (($(now) >= deadline)); then
      exec_status=TIMED_OUT
      break
    fi
    if (($(now) - last_report >= 60)); then
      say "still ${exec_status} after $(human "$(($(now) - push_done))")"
      last_report="$(now)"
    fi
    sleep "${POLL_SECONDS}"
  done
  say "execution ${exec_status}"
  if [[ "${exec_status}" == TIMED_OUT ]]; then
    check FAIL "the promotion succeeded" "still running after $(human "${TIMEOUT_SECONDS}") (--timeout); stopped at cleanup"
  else
    stop_date="$(jq -r '.stopDate // empty' <<<"${description}")"
    if [[ -n "${stop_date}" ]]; then
      DURATIONS+=("execution: $(human "$(seconds_between "${exec_started}" "$(epoch "${stop_date}")")")")
    fi
    if [[ "${exec_status}" == SUCCEEDED ]]; then
      check PASS "the promotion succeeded"
    else
      check FAIL "the promotion succeeded" "${exec_status}: $(jq -r '[.error // "no error", .cause // "no cause"] | join(": ")' <<<"${description}" | cut -c1-2000)"
    fi
  fi
  aws stepfunctions get-execution-history --execution-arn "${EXECUTION}" --output json >"${WORK}/history.json" ||
    warn "cannot read the execution's history"
fi

# The output of the last time STATE was left, or nothing.
state_output() {
  [[ -s "${WORK}/history.json" ]] || return 0
  jq -c --arg s "$1" '[.events[] | select(.stateExitedEventDetails.name? == $s) | .stateExitedEventDetails.output]
    | last // empty | fromjson' "${WORK}/history.json"
}

TRUSTED_REF=""
if [[ "${exec_status}" == SUCCEEDED ]]; then
  output="$(jq -r .output <<<"${description}")"
  TRUSTED_REF="$(jq -r '.trusted // empty' <<<"${output}")"
  say "promoted: ${TRUSTED_REF}"
  say "gate: $(jq -r '.gate // "?"' <<<"${output}")"
  say "tags: $(jq -r '(.tags // []) | join(", ")' <<<"${output}"); signatures created: $(jq -r '.signaturesCreated // "?"' <<<"${output}")"
  gate_summary="$(state_output Gate | jq -c '.gate.summary // empty' 2>/dev/null || true)"
  [[ -z "${gate_summary}" ]] || check INFO "what the gate saw" "${gate_summary}"
fi

# Blob mounting: copy (ingress → quarantine) and promote (quarantine → trusted) stay in one
# registry, so with BLOB_MOUNTING on neither streams a layer byte.
copy_result="$(state_output Copy | jq -c '.copy // empty' 2>/dev/null || true)"
promote_result="$(state_output PromoteAndAnnotate | jq -c '.promote // empty' 2>/dev/null || true)"
for step_result in "copy:${copy_result}" "promote:${promote_result}"; do
  name="${step_result%%:*}"
  result="${step_result#*:}"
  if [[ -z "${result}" ]]; then
    check SKIP "${name} mounted its layers" "no ${name} result in the execution's history"
    continue
  fi
  streamed="$(jq -r '.bytesStreamed // "?"' <<<"${result}")"
  mounted="$(jq -r 'if has("blobsMounted") then ", blobs mounted: \(.blobsMounted)" else "" end' <<<"${result}")"
  if [[ "${blob_mounting}" == ENABLED ]]; then
    if [[ "${streamed}" == 0 ]]; then
      check PASS "${name} mounted its layers" "0 layer bytes streamed${mounted}"
    else
      check FAIL "${name} mounted its layers" "${streamed} layer bytes streamed with BLOB_MOUNTING ENABLED"
    fi
  else
    check INFO "${name} streamed ${streamed} layer bytes" "BLOB_MOUNTING is ${blob_mounting}: mounting not asserted"
  fi
done

# ------------------------------------------------------------------------------------------------
# 6. What the promotion produced
# ------------------------------------------------------------------------------------------------
if [[ -n "${TRUSTED_REF}" ]]; then
  step "checking the repositories and the promoted digest"
  TRUSTED_DIGEST="${TRUSTED_REF##*@}"
  if [[ "${TRUSTED_REF}" == "${REGISTRY}/${TRUSTED_REPO}@sha256:"* ]]; then
    check PASS "promoted into ${TRUSTED_REPO}" "${TRUSTED_DIGEST}"
  else
    check FAIL "promoted into ${TRUSTED_REPO}" "the output names ${TRUSTED_REF}"
  fi

  # Create on push: the repositories ECR made carry the creation templates' settings.
  for pair in "${QUARANTINE_REPO}:MUTABLE" "${TRUSTED_REPO}:IMMUTABLE_WITH_EXCLUSION"; do
    repo="${pair%%:*}"
    want="${pair#*:}"
    if settings="$(aws ecr describe-repositories --repository-names "${repo}" \
      --query 'repositories[0].[imageTagMutability, encryptionConfiguration.encryptionType]' --output text 2>&1)"; then
      policy=absent
      lifecycle=absent
      aws ecr get-repository-policy --repository-name "${repo}" >/dev/null 2>&1 && policy=present
      aws ecr get-lifecycle-policy --repository-name "${repo}" >/dev/null 2>&1 && lifecycle=present
      got="$(tr -s '\t ' ' ' <<<"${settings}") policy ${policy} lifecycle ${lifecycle}"
      if [[ "${got}" == "${want} AES256 policy present lifecycle present" ]]; then
        check PASS "${repo} was created on push from its creation template" "${got}"
      else
        check FAIL "${repo} was created on push from its creation template" "${got}; expected ${want} AES256 with a policy and a lifecycle policy"
      fi
    else
      check FAIL "${repo} was created on push from its creation template" "${settings//$'\n'/ }"
    fi
  done

  env_digest="$(aws ecr describe-images --repository-name "${TRUSTED_REPO}" --image-ids "imageTag=${ENV_TAG}" \
    --query 'imageDetails[0].imageDigest' --output text 2>&1 || true)"
  if [[ "${env_digest}" == "${TRUSTED_DIGEST}" ]]; then
    check PASS "${TRUSTED_REPO}:${ENV_TAG} names the promoted digest"
  else
    check FAIL "${TRUSTED_REPO}:${ENV_TAG} names the promoted digest" "${env_digest//$'\n'/ }"
  fi

  step "promote verify ${TRUSTED_REF}"
  if (cd "${ROOT}" && PROMOTE_DST_CREDS="AWS:${ECR_TOKEN}" cargo run --release --locked --quiet --bin promote -- \
    --aws-region "${REGION}" verify "${TRUSTED_REF}" --key "awskms:///${KEY_ARN}" --require both --attestation); then
    check PASS "promote verify --require both --attestation"
  else
    check FAIL "promote verify --require both --attestation" "exit $?"
  fi

  if command -v cosign >/dev/null 2>&1; then
    step "cosign verify ${TRUSTED_REF}"
    if DOCKER_CONFIG="${WORK}/docker" cosign verify --key "awskms:///${KEY_ARN}" --insecure-ignore-tlog=true \
      "${TRUSTED_REF}" >"${WORK}/cosign.json"; then
      check PASS "cosign verify --insecure-ignore-tlog=true" "with the KMS key"
    else
      check FAIL "cosign verify --insecure-ignore-tlog=true" "exit $?"
    fi
  else
    check SKIP "cosign verify" "cosign is not on PATH; it is optional"
  fi
else
  check SKIP "the promoted digest's checks: creation templates, ${ENV_TAG}, promote verify, cosign verify" "nothing was promoted"
fi

# ------------------------------------------------------------------------------------------------
# 5 (end). Exactly one execution; nothing in the dead-letter queue
# ------------------------------------------------------------------------------------------------
if [[ -n "${EXECUTION}" ]]; then
  step "settling ${SETTLE_SECONDS} s, then counting executions"
  sleep "${SETTLE_SECONDS}"
  executions="$(aws stepfunctions list-executions --state-machine-arn "${STATE_MACHINE_ARN}" \
    --query 'executions[].name' --output json)"
  count="$(jq 'length' <<<"${executions}")"
  if [[ "${count}" == 1 ]]; then
    check PASS "exactly one execution for the multi-arch push" "none for its platform manifests nor for the pipeline's own pushes"
  else
    check FAIL "exactly one execution for the multi-arch push" "${count}: $(jq -c . <<<"${executions}")"
  fi
fi
dlq="$(aws sqs get-queue-attributes --queue-url "${DLQ_URL}" \
  --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible \
  --query 'Attributes.[ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible]' --output text 2>&1 || true)"
if [[ "$(tr -s '\t ' ' ' <<<"${dlq}")" == "0 0" ]]; then
  check PASS "the dead-letter queue is empty"
else
  check FAIL "the dead-letter queue is empty" "${dlq//$'\n'/ }"
fi
# The EXIT trap cleans up, prints the summary and sets the exit status.
