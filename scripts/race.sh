#!/usr/bin/env bash
# race.sh: repeat rushes of varying size and stop at the first violation.
# Each round runs scripts/rush.sh with 1 to $RACE_MAX_TICKETS tickets (default
# 8) and, in turn, three times as many buyers as tickets, exactly as many,
# and one fewer (then with at least 2 tickets). Every other round is a
# cooperation round instead (scripts/coop.sh: ticket's buyers with Python
# and flock + jq buyers following the lock protocol, some ticket buyers
# killed with kill -9), when python3, jq and flock are installed (else it
# says so once and runs plain rounds). On a violation it prints what that
# round saw and exits 1; at the end it prints the rounds run and the
# processes started.
#
# Usage: scripts/race.sh [-h] [ROUNDS]    (default 10 rounds)
#
# The ticket program is $TICKET_BIN, else `ticket` from PATH.
# Exit status: 0 no violation; 1 a violation (the round's output is shown);
# 2 usage or no ticket program.
set -eu

usage() {
	sed -n '2,/^set -eu$/{/^set/d;s/^# \{0,1\}//;p}' "$0"
}
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then usage; exit 0; fi
rounds=${1:-10}
max=${RACE_MAX_TICKETS:-8}
if [ $# -gt 1 ] || ! [[ $rounds =~ ^[0-9]+$ && $max =~ ^[1-9][0-9]*$ ]]; then usage >&2; exit 2; fi
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v "${TICKET_BIN:-ticket}" >/dev/null; then
	echo "race.sh: cannot find the ticket program '${TICKET_BIN:-ticket}': put it on PATH or set TICKET_BIN" >&2
	exit 2
fi
coop=1
for p in python3 jq flock; do
	if ! command -v "$p" >/dev/null; then
		echo "race.sh: $p is not installed: no cooperation rounds (apt-get install python3 jq util-linux)"
		coop=0
		break
	fi
done

procs=0
for ((r = 1; r <= rounds; r++)); do
	count=$((RANDOM % max + 1))
	case $((r % 3)) in
	1) n=$((count * 3)) ;;
	2) n=$count ;;
	0) count=$((count < 2 ? 2 : count)) n=$((count - 1)) ;;
	esac
	script=rush.sh
	if ((coop && r % 2 == 0)); then
		script=coop.sh n=$((count * 3))
	fi
	procs=$((procs + n + 4)) # the buyers, init, show or repair, verify
	code=0
	out=$("$here/$script" "$n" "$count" 2>&1) || code=$?
	if [ "$code" -ne 0 ]; then
		echo "$out"
		echo "race.sh: violation in round $r ($n buyers, $count tickets): $script exited $code"
		echo "race.sh: rounds run: $r, processes started: $procs"
		exit 1
	fi
	echo "round $r ($script): $(grep '^buyers:' <<<"$out")"
done
echo "race.sh: rounds run: $rounds, processes started: $procs, no violation"
