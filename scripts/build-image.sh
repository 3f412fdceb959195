#!/usr/bin/env bash
# Builds flowpol's images from Debian packages and pinned wheels, with one command:
#
#   scripts/build-image.sh [--engine podman|docker] [--relock]
#
#   flowpol-recorder:VERSION  the recorder DaemonSet's image (--target agent)
#   flowpol:VERSION           the tightening CronJob's image (--target full)
#
# 1. Two Debian 12 root filesystems with mmdebstrap: the packages listed in
#    recorder/deploy/image/debian-{agent,full}.txt, pinned to the exact versions of
#    debian-{agent,full}.lock; the result must list exactly those packages, or the build
#    stops. --relock takes the mirror's current versions and rewrites the locks instead
#    (review them with git diff). Imported as localhost/flowpol-base-{agent,full}.
# 2. The wheels of recorder/deploy/image/requirements-*.txt (scripts/lock_image.py),
#    downloaded and checked by hash into build/image/wheels.
# 3. The Containerfile, offline (--network none).
#
# Needs root (mmdebstrap), mmdebstrap, and podman or docker. Apt's downloads are kept in
# ${FLOWPOL_IMAGE_CACHE:-~/.cache/flowpol-image} for the next build.
set -euo pipefail
cd "$(dirname "$0")/.."

engine=podman
relock=0
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) engine="$2"; shift 2 ;;
    --relock) relock=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "build-image: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$engine" in podman|docker) ;; *) echo "build-image: --engine podman or docker" >&2; exit 2 ;; esac
for tool in mmdebstrap "$engine" python3; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool is not installed" >&2; exit 2; }
done

image=recorder/deploy/image
out=build/image
cache="${FLOWPOL_IMAGE_CACHE:-$HOME/.cache/flowpol-image}"
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' generator/version.py)
suite=bookworm
mirrors=(
  "deb http://deb.debian.org/debian $suite main"
  "deb http://deb.debian.org/debian $suite-updates main"
  "deb http://deb.debian.org/debian-security $suite-security main"
)

if ! python3 scripts/lock_image.py --check; then
  exit 2
fi
mkdir -p "$out/wheels" "$cache/apt"

for flavour in agent full; do
  lock="$image/debian-$flavour.lock"
  if [ "$relock" = 1 ]; then
    packages=$(grep -v '^#' "$image/debian-$flavour.txt" | paste -sd, -)
  else
    [ -f "$lock" ] || { echo "build-image: $lock is missing; run with --relock" >&2; exit 2; }
    packages=$(grep -v '^#' "$lock" | paste -sd, -)
  fi
  echo "build-image: [${SECONDS}s] Debian $suite base ($flavour) with mmdebstrap" >&2
  rm -f "$out/debian-$flavour.installed"
  # The hooks keep apt's downloads between builds (mmdebstrap's documented cache
  # recipe) and list what was installed, from outside the root filesystem.
  # force-unsafe-io: no fsync per unpacked file (the tarball is written once at the end).
  mmdebstrap --quiet --variant=essential --include="$packages" --dpkgopt=force-unsafe-io \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $cache/apt /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $cache/apt" \
    --customize-hook="dpkg-query --admindir=\"\$1/var/lib/dpkg\" -W -f='\${Package}=\${Version}\n' | LC_ALL=C sort > $out/debian-$flavour.installed" \
    "$suite" "$out/base-$flavour.tar" "${mirrors[@]}"
  if [ "$relock" = 1 ]; then
    { echo "# Debian $suite packages of the $flavour image: written by scripts/build-image.sh --relock"
      cat "$out/debian-$flavour.installed"; } > "$lock"
    echo "build-image: wrote $lock" >&2
  elif ! diff -u <(grep -v '^#' "$lock") "$out/debian-$flavour.installed" >&2; then
    echo "build-image: the $flavour base is not what $lock pins (above); --relock to accept" >&2
    exit 1
  fi
  "$engine" import "$out/base-$flavour.tar" "localhost/flowpol-base-$flavour:$version" >/dev/null
done

echo "build-image: [${SECONDS}s] wheels" >&2
python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
  $(python3 -c 'import sys; sys.path.insert(0, "scripts"); import lock_image; print(" ".join(lock_image.TARGET))') \
  --dest "$out/wheels" -r "$image/requirements-full.txt"
python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
  --dest "$out/wheels" -r "$image/requirements-build.txt"

# podman: commit each stage once, not every step (the builds start from fresh bases).
layers=()
[ "$engine" = podman ] && layers=(--layers=false)
for target in agent full; do
  name=flowpol-recorder
  [ "$target" = full ] && name=flowpol
  echo "build-image: [${SECONDS}s] $name:$version" >&2
  "$engine" build "${layers[@]}" --network none --file "$image/Containerfile" --target "$target" \
    --build-arg "AGENT_BASE=localhost/flowpol-base-agent:$version" \
    --build-arg "FULL_BASE=localhost/flowpol-base-full:$version" \
    --tag "$name:$version" .
done
echo "build-image: [${SECONDS}s] built flowpol-recorder:$version and flowpol:$version" >&2
