#!/usr/bin/env bash
# The baseline of bench/copy-bench.sh: the plainest streaming copy there is, with curl alone.
#
#   curl-copy.sh SRC DST REPO TAG MANIFEST_MEDIA_TYPE MANIFEST_DIGEST BLOB_DIGEST...
#
# For every blob: POST an upload session on DST, then GET the blob from SRC piped straight into
# one monolithic PUT ?digest= (chunked request body, nothing on disk, nothing buffered). Then the
# manifest, by digest from SRC, PUT under TAG on DST. Blobs go one after the other. Plain HTTP.
set -euo pipefail

src="$1" dst="$2" repo="$3" tag="$4" media_type="$5" manifest="$6"
shift 6

for digest in "$@"; do
  location="$(curl -fsS -X POST -o /dev/null -w '%header{location}' "http://${dst}/v2/${repo}/blobs/uploads/")"
  [[ "${location}" == http* ]] || location="http://${dst}${location}"
  [[ "${location}" == *\?* ]] && sep='&' || sep='?'
  curl -fsS "http://${src}/v2/${repo}/blobs/${digest}" |
    curl -fsS -o /dev/null -X PUT -T - -H 'Expect:' -H 'Content-Type: application/octet-stream' \
      "${location}${sep}digest=${digest}"
done

curl -fsS -H "Accept: ${media_type}" "http://${src}/v2/${repo}/manifests/${manifest}" |
  curl -fsS -o /dev/null -X PUT --data-binary @- -H "Content-Type: ${media_type}" \
    "http://${dst}/v2/${repo}/manifests/${tag}"
