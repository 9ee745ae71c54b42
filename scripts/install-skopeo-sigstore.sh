#!/usr/bin/env bash
# Fetch Debian trixie's skopeo (>= 1.18, sigstore enabled) and its libc into .work/skopeo-trixie/
# without touching the system's apt state, and write a wrapper .work/skopeo-trixie/skopeo that runs
# it with trixie's dynamic loader (../shared/reference/test-infra.md §2). Idempotent: does nothing when the
# wrapper already works.
#
# bookworm's skopeo 1.9.3 has sigstore patched out; the integration tests use this one as the
# independent verifier of our cosign signatures. The mirror is derived from the machine's own apt
# sources (the first bookworm "deb" entry, suite changed to trixie): no host is hard-coded.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
D="$ROOT/.work/skopeo-trixie"
WRAPPER="$D/skopeo"

if [[ -x "$WRAPPER" ]] && "$WRAPPER" --version 2>/dev/null | grep -q 'skopeo version'; then
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
echo "deb [trusted=yes] $uri trixie main" > "$D/trixie.list"

O=(-o "Dir::Etc::sourcelist=$D/trixie.list" -o "Dir::Etc::sourceparts=-"
   -o "Dir::State::Lists=$D/lists" -o "Dir::Cache=$D/cache"
   -o "Dir::State::status=/dev/null" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
apt-get "${O[@]}" -qq update
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
