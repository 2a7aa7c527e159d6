#!/usr/bin/env bash
# coop.sh: one rush where ticket's buyers share a sale with programs that
# follow the lock protocol without ticket: a Python script
# (scripts/peers/protocol_buyer.py) and a flock + jq line of shell. It
# creates a sale of COUNT tickets, starts N buyers of the three kinds at
# once (every third ticket buyer is killed with kill -9 along the way),
# tallies their exit codes, runs `ticket repair` (which records what the
# other programs took) and `ticket verify`, and checks that exactly the
# stock went to buyers that were told they got a ticket (a killed buyer's
# sale may stand), with each ticket buyer's sale in the journal once.
#
# Usage: scripts/coop.sh [-h] N COUNT
#
# The ticket program is $TICKET_BIN, else `ticket` from PATH; python3, jq
# and flock must be installed. Exit status: 0 every check passes; 1 a
# violation (oversold, a sale lost or doubled, verify failed); 2 usage or a
# missing program.
set -eu

usage() {
	sed -n '2,/^set -eu$/{/^set/d;s/^# \{0,1\}//;p}' "$0"
}
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then usage; exit 0; fi
if [ $# -ne 2 ] || ! [[ $1 =~ ^[1-9][0-9]*$ && $2 =~ ^[0-9]+$ ]]; then
	echo "coop.sh: want N (1 or more buyers) and COUNT (0 or more tickets)" >&2
	usage >&2
	exit 2
fi
n=$1 count=$2
ticket=${TICKET_BIN:-ticket}
here=$(cd "$(dirname "$0")" && pwd)
for p in "$ticket" python3 jq flock; do
	if ! command -v "$p" >/dev/null; then
		echo "coop.sh: cannot find '$p' (ticket: put it on PATH or set TICKET_BIN; python3, jq, flock: apt-get install python3 jq util-linux)" >&2
		exit 2
	fi
done

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
file=$dir/ticket.json
"$ticket" init -f "$file" --count "$count" >/dev/null

# Every buyer first waits for a shared lock on the gate, held here until
# all are started, then becomes the buyer in the same process (exec), so
# that kill -9 of its pid kills the buyer itself.
gate=$dir/gate
exec 8>"$gate"
flock 8
jqbuyer='exec flock "$1.lock" sh -c '\''n=$(jq .count "$1") || exit 1; [ "$n" -ge 1 ] || exit 3; jq ".count -= 1" "$1" >"$1.jq.$$" && mv "$1.jq.$$" "$1"'\'' sh "$1"'
gated() { sh -c 'flock -s "$0" true && exec "$@"' "$gate" "$@"; }
kinds=() pids=()
for ((i = 0; i < n; i++)); do
	case $((i % 4)) in
	0 | 2) kinds+=(ticket) ; gated "$ticket" buy -f "$file" --buyer "person$i" >"$dir/out.$i" 2>&1 & ;;
	1) kinds+=(python) ; gated python3 "$here/peers/protocol_buyer.py" "$file" >"$dir/out.$i" 2>&1 & ;;
	3) kinds+=(jq) ; gated sh -c "$jqbuyer" sh "$file" >"$dir/out.$i" 2>&1 & ;;
	esac
	pids+=($!)
done
sleep 0.2 # let them reach the gate
flock -u 8
for ((i = 0; i < n; i += 6)); do # every third ticket buyer
	kill -9 "${pids[$i]}" 2>/dev/null || true
done

won=0 ticketwon=0 soldout=0 killed=0 errors=0
exec 3>&2 # the shell's own "Killed" notes go to /dev/null, this script's to fd 3
for ((i = 0; i < n; i++)); do
	code=0
	wait "${pids[$i]}" 2>/dev/null || code=$?
	case $code in
	0) won=$((won + 1)); [ "${kinds[$i]}" = ticket ] && ticketwon=$((ticketwon + 1)) ;;
	3) soldout=$((soldout + 1)) ;;
	137) killed=$((killed + 1)) ;;
	*) errors=$((errors + 1)); echo "coop.sh: buyer $i (${kinds[$i]}) exited $code: $(cat "$dir/out.$i")" >&3 ;;
	esac
	if grep -qE 'panic:|fatal error:|SIGBUS|goroutine ' "$dir/out.$i"; then
		errors=$((errors + 1)); echo "coop.sh: buyer $i crashed: $(cat "$dir/out.$i")" >&3
	fi
done 2>/dev/null

"$ticket" repair -f "$file" >/dev/null
v=$("$ticket" verify -f "$file" --json) || { echo "$v"; echo "coop.sh: ticket verify failed" >&2; exit 1; }
num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$v"; }
left=$(num left) sales=$(num sales) outside=$(num outside)
outside=${outside:-0}
echo "buyers: $n  tickets: $count  told they got one: $won (ticket $ticketwon)  sold out: $soldout  killed: $killed  errors: $errors  journal: $sales sales, $outside taken outside ticket  left: $left"

ok=1
fail() { echo "coop.sh: $*" >&2; ok=0; }
[ "$won" -le "$count" ] || fail "OVERSOLD: $won buyers were told they got one of $count tickets"
[ $((sales + outside + left)) -eq "$count" ] || fail "the books do not add up: $sales sales + $outside outside + $left left is not $count"
[ "$((won - ticketwon))" -eq "$outside" ] || fail "$((won - ticketwon)) buyers without ticket got one, but $outside are recorded as taken outside ticket"
[ "$sales" -ge "$ticketwon" ] && [ "$sales" -le $((ticketwon + killed)) ] || fail "$sales sales in the journal for $ticketwon ticket buyers told they got one and $killed killed"
[ "$errors" -eq 0 ] || fail "$errors buyers failed"
if [ "$n" -gt $((count + killed)) ] && [ "$left" -ne 0 ]; then fail "$left left with more buyers than tickets"; fi
for ((i = 0; i < n; i++)); do
	if [ "${kinds[$i]}" = ticket ] && grep -q "^person$i got [0-9]" "$dir/out.$i"; then
		k=$("$ticket" show -f "$file" --sales --json | grep -c "\"buyer\":\"person$i\"" || true)
		[ "$k" -eq 1 ] || fail "person$i was told it got a ticket but has $k sales in the journal"
	fi
done
[ "$ok" -eq 1 ]
