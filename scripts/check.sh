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
step() { printf '\n== %s\n' "$*"; }

step "tools the tests need"
missing=()
command -v flock >/dev/null || missing+=(util-linux)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
command -v gcc >/dev/null || missing+=(gcc)
command -v truncate >/dev/null || missing+=(coreutils)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v python3 >/dev/null || missing+=(python3)
command -v jq >/dev/null || missing+=(jq)
if ((${#missing[@]})); then
  if [[ ${CI:-} == true && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]} (install with: sudo apt-get install ${missing[*]}; the tests that need them skip and say why)"
  fi
fi
echo "ok"

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n $unformatted ]]; then
  echo "needs gofmt: $unformatted"
  exit 1
fi
echo "ok"

step "go vet"
go vet ./...
echo "ok"

step "go mod tidy"
go mod tidy -diff
echo "ok"

step "staticcheck"
go tool staticcheck ./...
echo "ok"

step "go test -race"
go test -race -count=1 -timeout 20m "${short[@]}" ./...
