#!/usr/bin/env bash
# rush.sh: the seed's ticket rush from a plain shell. It creates a sale of
# COUNT tickets, starts N `ticket buy` processes in the background with &,
# waits for each one, tallies their exit codes (0 bought, 3 sold out,
# anything else an error), prints the tally and `ticket show`, and runs
# `ticket verify`. This is how to run buyers from your own scripts.
#
# Usage: scripts/rush.sh [-h] N COUNT
#
# The sale goes in a fresh temporary directory, removed at the end, or in
# $TICKET_FILE, which must not exist yet (ticket init refuses to replace a
# sale). The ticket program is $TICKET_BIN, else `ticket` from PATH.
# Exit status: 0 if every check passes; 1 if anything is off (oversold,
# lost updates, a buyer error, verify failed); 2 usage.
set -eu

usage() {
	sed -n '2,/^set -eu$/{/^set/d;s/^# \{0,1\}//;p}' "$0"
}
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then usage; exit 0; fi
if [ $# -ne 2 ] || ! [[ $1 =~ ^[1-9][0-9]*$ && $2 =~ ^[0-9]+$ ]]; then
	echo "rush.sh: want N (1 or more buyers) and COUNT (0 or more tickets)" >&2
	usage >&2
	exit 2
fi
n=$1 count=$2
ticket=${TICKET_BIN:-ticket}
if ! command -v "$ticket" >/dev/null; then
	echo "rush.sh: cannot find the ticket program '$ticket': put it on PATH or set TICKET_BIN" >&2
	exit 2
fi

if [ -n "${TICKET_FILE:-}" ]; then
	file=$TICKET_FILE
else
	dir=$(mktemp -d)
	trap 'rm -rf "$dir"' EXIT
	file=$dir/ticket.json
fi
"$ticket" init -f "$file" --count "$count" >/dev/null

# Start every buyer at once; each prints its own result line.
pids=()
for ((i = 0; i < n; i++)); do
	"$ticket" buy -f "$file" --buyer "person$i" &
	pids+=($!)
done

bought=0 soldout=0 errors=0
for pid in "${pids[@]}"; do
	code=0
	wait "$pid" || code=$?
	case $code in
	0) bought=$((bought + 1)) ;;
	3) soldout=$((soldout + 1)) ;;
	*) errors=$((errors + 1)) ;;
	esac
done

echo "buyers: $n  tickets: $count  bought: $bought  sold out: $soldout  errors: $errors"
"$ticket" show -f "$file"
left=$("$ticket" show -f "$file" --json | sed -n 's/.*"left":\([0-9]*\).*/\1/p')

ok=1
fail() { echo "rush.sh: $*" >&2; ok=0; }
want=$((n < count ? n : count))
[ "$bought" -le "$count" ] || fail "OVERSOLD: $bought buyers got a ticket, only $count tickets"
[ $((bought + left)) -eq "$count" ] || fail "lost updates: $bought bought + $left left is not $count"
[ "$bought" -eq "$want" ] || fail "$bought bought, want $want"
[ "$errors" -eq 0 ] || fail "$errors buyers failed"
"$ticket" verify -f "$file" || fail "ticket verify failed"
[ "$ok" -eq 1 ]
