#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine:
# the kernel tools the root-tier tests drive for real, and a virtualenv with the
# project and its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in conntrack:conntrack iptables:iptables tcpdump:tcpdump ip:iproute2 chromium:chromium \
            git:git sshd:openssh-server mmdebstrap:mmdebstrap podman:podman runc:runc jq:jq; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "test-deps: not root; root-tier tests will skip (missing: ${need[*]})" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
