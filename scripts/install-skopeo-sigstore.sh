#!/usr/bin/env bash
# Fetch Debian trixie's skopeo (>= 1.18, sigstore enabled) and its libc into .work/skopeo-trixie/
# without touching the system's apt state, and write a wrapper .work/skopeo-trixie/skopeo that runs
# it with trixie's dynamic loader (../shared/reference/test-infra.md §2). Idempotent: does nothing when the
# wrapper already works.
#
# bookworm's skopeo 1.9.3 has sigstore patched out; the integration tests use this one as the
# independent verifier of our cosign signatures. The mirror is derived from the machine's own apt
# sources (the first bookworm "deb" entry, suite changed to trixie): no host is hard-coded. The
# trixie index is verified with Debian's archive keyring (signed-by), never trusted=yes.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
D="$ROOT/.work/skopeo-trixie"
WRAPPER="$D/skopeo"

# Debian's archive keys (package debian-archive-keyring; scripts/setup.sh installs it): apt checks
# trixie's InRelease signature with them, and every downloaded .deb against the signed index.
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# Written after a verified download: an install from before (trusted=yes) is redone.
VERIFIED="$D/verified-with"

if [[ -x "$WRAPPER" && -f "$VERIFIED" && "$(cat "$VERIFIED")" == "signed-by=$KEYRING" ]] \
  && "$WRAPPER" --version 2>/dev/null | grep -q 'skopeo version'; then
  echo "trixie skopeo already installed: $("$WRAPPER" --version)"
  exit 0
fi

mkdir -p "$D/lists/partial" "$D/cache/archives/partial"

# The machine's first "deb" URI for the main Debian archive (deb822 .sources or one-line lists).
uri=""
for f in /etc/apt/sources.list.d/*.sources; do
  [[ -f "$f" ]] || continue
  uri=$(awk '
    /^Types:/ { deb = ($0 ~ /(^|[ \t])deb([ \t]|$)/) }
    /^URIs:/  { u = $2 }
    /^Suites:/ { if (deb && $0 ~ /bookworm([ \t]|$)/ && u !~ /security/) { print u; exit } }
    /^$/ { deb = 0; u = "" }' "$f")
  [[ -n "$uri" ]] && break
done
if [[ -z "$uri" && -f /etc/apt/sources.list ]]; then
  uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
fi
if [[ -z "$uri" ]]; then
  echo "cannot find a Debian archive URI in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources" >&2
  exit 1
fi
if [[ ! -s "$KEYRING" ]]; then
  echo "$KEYRING missing: apt-get install -y debian-archive-keyring (scripts/setup.sh skopeo_sigstore does)" >&2
  exit 1
fi
echo "deb [signed-by=$KEYRING] $uri trixie main" > "$D/trixie.list"
rm -f "$VERIFIED"

O=(-o "Dir::Etc::sourcelist=$D/trixie.list" -o "Dir::Etc::sourceparts=-"
   -o "Dir::State::Lists=$D/lists" -o "Dir::Cache=$D/cache"
   -o "Dir::State::status=/dev/null" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
if ! apt-get "${O[@]}" -qq update || [[ -z "$(find "$D/lists" -name '*trixie*InRelease' -print -quit)" ]]; then
  echo "apt-get update of trixie failed, or its InRelease did not verify with $KEYRING (too old a debian-archive-keyring? trixie's keys came in 2023.3)" >&2
  exit 1
fi
cd "$D"
rm -f ./*.deb
apt-get "${O[@]}" -qq download skopeo libc6
rm -rf x
dpkg-deb -x skopeo_*.deb x
dpkg-deb -x libc6_*.deb x

cat > "$WRAPPER" <<WRAP
#!/bin/sh
# trixie's skopeo run with trixie's loader and libc; other libraries come from the system.
X="$D/x"
exec "\$X/usr/lib64/ld-linux-x86-64.so.2" --library-path "\$X/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu" "\$X/usr/bin/skopeo" "\$@"
WRAP
chmod +x "$WRAPPER"
"$WRAPPER" --version
echo "signed-by=$KEYRING" > "$VERIFIED"
