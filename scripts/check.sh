#!/usr/bin/env bash
# scripts/check.sh: every check the project has, in one command; .ci/run runs it.
#
# Usage: scripts/check.sh [-h] [-short]
#
# It looks for what the tests need and a fresh Debian machine may lack
# (flock from util-linux, mkfs.ext4 from e2fsprogs, gcc for the race
# detector, redis-server for the Redis backend's tests, python3 and jq for
# the buyers that share a sale without ticket). With CI=true (as .ci/run
# runs it, as root) it installs what is missing with apt-get; otherwise it
# says what is missing and how to install it, and the tests that need it
# skip, saying why. Then it runs, stopping at the first failure: gofmt, go
# vet, go mod tidy (go.mod and go.sum must already be tidy), staticcheck
# (pinned in go.mod as a tool), and go test -race over every package.
# -short passes -short to go test. With TICKET_TEST_LONG=1 in the
# environment (.ci/run sets it) the soaks and long loops run at their full
# size; without it, at the size that keeps go test ./... quick.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,18s/^# \{0,1\}//p' "$0"
  exit 0
fi
short=()
[[ ${1:-} == -short ]] && short=(-short)

cd "$(dirname "$0")/.."
# step prints a stage's header; done_step its end, with how long it took.
t0=
step() { printf '\n== %s\n' "$*"; t0=$SECONDS; }
done_step() { echo "ok ($((SECONDS - t0)) s)"; }

step "tools the tests need"
# command, Debian package, what happens without it
tools=(
  "flock util-linux the tests of buyers written with flock(1) skip"
  "mkfs.ext4 e2fsprogs the full-disk test skips (it also needs root)"
  "chattr e2fsprogs the immutable-file case of the bad-files test skips (it also needs root)"
  "gcc gcc go test -race cannot build, so this check fails"
  "truncate coreutils the truncated-file cases skip"
  "redis-server redis-server the Redis backend's tests skip"
  "python3 python3 the tests of buyers written in Python skip"
  "jq jq the tests of buyers written with flock(1) and jq skip"
)
missing=() pkgs=()
for t in "${tools[@]}"; do
  read -r cmd pkg what <<<"$t"
  if ! command -v "$cmd" >/dev/null; then
    missing+=("$cmd (Debian package $pkg): $what")
    [[ " ${pkgs[*]} " == *" $pkg "* ]] || pkgs+=("$pkg")
  fi
done
if ((${#pkgs[@]})); then
  if [[ ${CI:-} == true && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing (CI=true): ${pkgs[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  else
    printf 'missing: %s\n' "${missing[@]}"
    echo "to install them: sudo apt-get install ${pkgs[*]}"
    echo "(check.sh installs them itself only with CI=true, as .ci/run sets; it goes on without them)"
  fi
fi
done_step

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n $unformatted ]]; then
  echo "needs gofmt: $unformatted"
  exit 1
fi
done_step

step "go vet"
go vet ./...
done_step

step "go mod tidy"
go mod tidy -diff
done_step

step "staticcheck"
go tool staticcheck ./...
done_step

step "go test -race${short:+ -short}: a line per package, in order; cmd/internal/cli, the longest, comes first, after minutes"
# go test prints nothing until the first package is done: say every minute
# that it is still at work.
# The ticker kills its own sleep when told to stop, so that no process is
# left holding this script's output; stop_ticker may run twice (at the end
# and on exit), and a second kill finding nothing must not fail the script
# under set -e.
(
  trap 'kill $nap 2>/dev/null; exit 0' TERM
  while :; do
    sleep 60 &
    nap=$!
    wait $nap
    echo "   ... go test still running ($((SECONDS - t0)) s)"
  done
) &
ticker=$!
stop_ticker() { kill $ticker 2>/dev/null || true; wait $ticker 2>/dev/null || true; }
trap stop_ticker EXIT
go test -race -count=1 -timeout 20m "${short[@]}" ./...
stop_ticker
done_step
echo
echo "all checks passed in $SECONDS s"
