#!/usr/bin/env bash
# The copy engine alone on local stand-ins (the main job, the whole pipeline, is scripts/demo.sh).
#
# Starts two throw-away OCI registries on 127.0.0.1 (an ingress registry and a trusted one),
# pushes a generated two-platform image into the ingress one, then shows `promote copy`:
#   1. ingress/incoming/app:1.0.0  -> trusted/quarantine/app:1.0.0   (blobs streamed)
#   2. trusted/quarantine          -> trusted/trusted/app:1.0.0      (same registry: blobs mounted)
#   3. step 1 again                                                  (nothing streamed)
# and checks that every copy kept the source digest byte for byte.
#
# Environment: DEMO_LAYER_MIB (size of each random layer, default 8), PROMOTE_BIN (use this
# promote binary instead of building one). Safe to run twice; everything it starts is stopped
# and its temp dir removed on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "${ROOT}/scripts/lib.sh"

LAYER_MIB="${DEMO_LAYER_MIB:-8}"
[[ "${LAYER_MIB}" =~ ^[0-9]+$ ]] || fail "DEMO_LAYER_MIB must be a whole number of MiB"

TMP="$(mktemp -d -t promote-demo.XXXXXX)"
cleanup() {
  registry_stop_all
  rm -rf "${TMP}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CHECKS_FAILED=0
check() { # check DESCRIPTION EXPECTED ACTUAL
  if [[ "$2" == "$3" ]]; then
    printf '  ok    %s (%s)\n' "$1" "$3"
  else
    printf '  FAIL  %s: expected %s, got %s\n' "$1" "$2" "$3"
    CHECKS_FAILED=1
  fi
}

# promote_copy NAME SRC DST: runs `promote --json copy`, prints the command and its JSON result,
# and keeps the result in ${TMP}/NAME.json.
promote_copy() {
  local name="$1" src="$2" dst="$3"
  printf '$ promote --insecure-registry %s --insecure-registry %s --json copy %s %s\n' \
    "${INGRESS}" "${TRUSTED}" "${src}" "${dst}"
  "${PROMOTE}" --insecure-registry "${INGRESS}" --insecure-registry "${TRUSTED}" --json \
    copy "${src}" "${dst}" >"${TMP}/${name}.json"
  jq . "${TMP}/${name}.json"
}

field() { jq -r ".$2" "${TMP}/$1.json"; }

# manifest_digest HOSTPORT REPO REF: the digest the registry serves for REPO:REF.
manifest_digest() {
  curl -fsSI \
    -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$1/v2/$2/manifests/$3" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'
}

section "1. Set up (system packages; skipped when present)"
bash "${ROOT}/scripts/setup.sh"

section "2. Build promote"
if [[ -n "${PROMOTE_BIN:-}" ]]; then
  PROMOTE="${PROMOTE_BIN}"
  [[ -x "${PROMOTE}" ]] || fail "PROMOTE_BIN=${PROMOTE} is not executable"
else
  build_promote
fi
echo "using ${PROMOTE}"

section "3. Start two local registries (docker-registry on 127.0.0.1, random ports)"
registry_start "${TMP}/ingress" INGRESS
registry_start "${TMP}/trusted" TRUSTED
echo "ingress registry: http://${INGRESS}   (stands in for Docker Hub, GHCR, a CI registry...)"
echo "trusted registry: http://${TRUSTED}   (stands in for the trusted Amazon ECR registry)"

section "4. Seed ${INGRESS}/incoming/app:1.0.0 (OCI index, linux/amd64 + linux/arm64/v8, ${LAYER_MIB} MiB layers)"
python3 "${ROOT}/scripts/seed_image.py" --registry "${INGRESS}" --repository incoming/app \
  --tag 1.0.0 --platform linux/amd64 --platform linux/arm64/v8 \
  --layers 2 --shared-layers 1 --layer-bytes $((LAYER_MIB * 1024 * 1024)) >"${TMP}/seed.json"
SRC_DIGEST="$(jq -r .digest "${TMP}/seed.json")"
jq -r '"  \(.media_type) \(.digest)", (.platforms[] | "    \(.platform)  \(.digest)  \(.layers | length) layers")' \
  "${TMP}/seed.json"
echo "  ${SRC_DIGEST}: $(jq -r .blobs "${TMP}/seed.json") distinct blobs, $(jq -r .blob_bytes "${TMP}/seed.json") bytes"

section "5. Copy ingress -> quarantine (every platform, byte for byte)"
promote_copy quarantine "${INGRESS}/incoming/app:1.0.0" "${TRUSTED}/quarantine/app:1.0.0"

section "6. Copy quarantine -> trusted repository in the same registry (blobs mounted, not re-sent)"
promote_copy trusted "${TRUSTED}/quarantine/app:1.0.0" "${TRUSTED}/trusted/app:1.0.0"

section "7. Run step 5 again (idempotent: everything is already there)"
promote_copy rerun "${INGRESS}/incoming/app:1.0.0" "${TRUSTED}/quarantine/app:1.0.0"

section "8. The result: skopeo inspect --raw ${TRUSTED}/trusted/app:1.0.0"
echo "\$ skopeo inspect --raw --tls-verify=false docker://${TRUSTED}/trusted/app:1.0.0"
skopeo inspect --raw --tls-verify=false "docker://${TRUSTED}/trusted/app:1.0.0" | tee "${TMP}/raw.json" | jq .
echo

section "9. Checks"
check "quarantine digest equals source digest" "${SRC_DIGEST}" "$(manifest_digest "${TRUSTED}" quarantine/app 1.0.0)"
check "trusted digest equals source digest" "${SRC_DIGEST}" "$(manifest_digest "${TRUSTED}" trusted/app 1.0.0)"
check "skopeo sees the same bytes" "${SRC_DIGEST}" "sha256:$(sha256sum "${TMP}/raw.json" | cut -d' ' -f1)"
check "copy 5 reports the source digest" "${SRC_DIGEST}" "$(field quarantine digest)"
check "copy 5 copied both platforms" "2" "$(field quarantine 'platforms | length')"
check "copy 5 streamed every byte" "true" \
  "$(jq --argjson want "$(jq .blob_bytes "${TMP}/seed.json")" '.bytes_streamed >= $want' "${TMP}/quarantine.json")"
check "copy 6 streamed nothing" "0" "$(field trusted bytes_streamed)"
check "copy 6 mounted the blobs" "true" "$(jq '.blobs_mounted > 0' "${TMP}/trusted.json")"
check "re-run streamed nothing" "0" "$(field rerun bytes_streamed)"
check "re-run mounted nothing" "0" "$(field rerun blobs_mounted)"

if ((CHECKS_FAILED)); then
  echo
  echo "demo: some checks failed" >&2
  exit 1
fi
echo
echo "demo: done. The registries are stopped and their temp dir is removed on exit."
