#!/bin/sh
# flowpol's periodic tightening, as the CronJob of components/tightening runs it:
# check that git reaches the remote (before the long part), collect what the recorders
# wrote, snapshot the cluster, and propose a tightened set of NetworkPolicies through
# git (`flowpol propose-git`: nothing is pushed when nothing changes, and the same
# proposal is never pushed twice).
#
# Settings (environment; the flowpol-tightening ConfigMap):
#   FLOWPOL_GIT_REMOTE     the repository holding the policies (ssh:// or https:// URL)
#   FLOWPOL_GIT_BASE       its branch to start from (main)
#   FLOWPOL_GIT_PATH       the directory of the policies in it (.)
#   FLOWPOL_BRANCH_PREFIX  branches are named PREFIX/<proposal id> (flowpol/tighten)
#   FLOWPOL_WINDOW         use is counted over this last part of the recording (7d)
#   FLOWPOL_MIN_OBSERVATION  nothing is removed before this much recording (7d)
#   FLOWPOL_MIN_FLOWS      --min-flows of flowpol diff (1)
#   FLOWPOL_COLLECT        direct (from the recorders' port), proxy (through the API
#                          server), or none (the segments are already in
#                          $FLOWPOL_WORK/segments, e.g. on a volume)
#   FLOWPOL_COLLECT_SINCE  collect only segments that overlap this last part of the
#                          recording (8d; empty: everything the recorders hold). Keep
#                          it above FLOWPOL_WINDOW and FLOWPOL_MIN_OBSERVATION.
#   FLOWPOL_TOKEN_FILE     the token the recorders accept (the job's projected token)
#   FLOWPOL_NAMESPACE      the recorders' namespace (flowpol-system)
#   FLOWPOL_GIT_CREDENTIALS  directory of the git Secret's files (/etc/flowpol/git)
#   FLOWPOL_WORK           working directory (/work)
set -eu

work="${FLOWPOL_WORK:-/work}"
namespace="${FLOWPOL_NAMESPACE:-flowpol-system}"
if [ -z "${FLOWPOL_GIT_REMOTE:-}" ]; then
  echo "tighten.sh: set FLOWPOL_GIT_REMOTE in the flowpol-tightening ConfigMap" >&2
  exit 2
fi

collect="${FLOWPOL_COLLECT:-direct}"
case "$collect" in
  direct|proxy|none) ;;
  *) echo "tighten.sh: FLOWPOL_COLLECT must be direct, proxy or none" >&2; exit 2 ;;
esac

# The proposal's command, first only checking that git reaches the remote: wrong
# credentials or a wrong remote should not wait for a full collect to show.
propose() {
  flowpol propose-git "$work/segments" \
    --snapshot "$work/cluster.json" \
    --out "$work/proposal" \
    --remote "$FLOWPOL_GIT_REMOTE" \
    --base "${FLOWPOL_GIT_BASE:-main}" \
    --path "${FLOWPOL_GIT_PATH:-.}" \
    --branch-prefix "${FLOWPOL_BRANCH_PREFIX:-flowpol/tighten}" \
    --credentials "${FLOWPOL_GIT_CREDENTIALS:-/etc/flowpol/git}" \
    --window "${FLOWPOL_WINDOW:-7d}" \
    --min-observation "${FLOWPOL_MIN_OBSERVATION:-7d}" \
    --min-flows "${FLOWPOL_MIN_FLOWS:-1}" \
    "$@"
}
propose --check-remote

mkdir -p "$work/segments"
if [ "$collect" != none ]; then
  set -- --out "$work/segments" --namespace "$namespace"
  if [ "$collect" = direct ]; then
    set -- "$@" --direct
  fi
  since="${FLOWPOL_COLLECT_SINCE-8d}"
  if [ -n "$since" ]; then
    set -- "$@" --since "$since"
  fi
  flowpol collect "$@"
fi

flowpol snapshot --out "$work/cluster.json"

propose
