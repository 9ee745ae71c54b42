#!/usr/bin/env bash
# The baseline of bench/copy-bench.sh: the plainest streaming copy there is, with curl alone.
#
#   curl-copy.sh SRC DST REPO TAG MANIFEST_MEDIA_TYPE MANIFEST_DIGEST BLOB_DIGEST...
#
# For every blob: POST an upload session on DST, then GET the blob from SRC piped straight into
# one monolithic PUT ?digest= (chunked request body, nothing on disk, nothing buffered). Then the
# manifest, by digest from SRC, PUT under TAG on DST. Blobs go one after the other. Plain HTTP,
# or HTTPS with CURL_COPY_CACERT=FILE (the CA both registries' certificates chain to; how
# bench/lambda-bench.sh measures the floor of a TLS copy without hashing).
set -euo pipefail

src="$1" dst="$2" repo="$3" tag="$4" media_type="$5" manifest="$6"
shift 6
scheme=http
tls=()
if [[ -n "${CURL_COPY_CACERT:-}" ]]; then
  scheme=https
  tls=(--cacert "${CURL_COPY_CACERT}")
fi

for digest in "$@"; do
  location="$(curl -fsS "${tls[@]}" -X POST -o /dev/null -w '%header{location}' "${scheme}://${dst}/v2/${repo}/blobs/uploads/")"
  [[ "${location}" == http* ]] || location="${scheme}://${dst}${location}"
  [[ "${location}" == *\?* ]] && sep='&' || sep='?'
  curl -fsS "${tls[@]}" "${scheme}://${src}/v2/${repo}/blobs/${digest}" |
    curl -fsS "${tls[@]}" -o /dev/null -X PUT -T - -H 'Expect:' -H 'Content-Type: application/octet-stream' \
      "${location}${sep}digest=${digest}"
done

curl -fsS "${tls[@]}" -H "Accept: ${media_type}" "${scheme}://${src}/v2/${repo}/manifests/${manifest}" |
  curl -fsS "${tls[@]}" -o /dev/null -X PUT --data-binary @- -H "Content-Type: ${media_type}" \
    "${scheme}://${dst}/v2/${repo}/manifests/${tag}"
