#!/usr/bin/env bash
# scripts/bench.sh: measure ticket against its design's floor and its peers,
# side by side, in one run on this machine, on two kinds of file system, and
# write a table, the raw figures and a chart.
#
# Usage: scripts/bench.sh [-h] [-o DIR] [-r ROUNDS] [TICKETS]
#
#   TICKETS  tickets sold per run (default 20000; 2000 for a quick look)
#   -r N     rounds (default 3): every system runs once per round, in turn
#            with the others, and the median of the rounds is kept
#   -o DIR   where to write table.md, results.tsv, booking.tsv and chart.svg
#            (default: a new bench-results-TIME directory in the current one)
#
# File systems: the current directory's (the disk you are sizing), and,
# where it can (as root, with mkfs.ext4), an ext4 image with its journal,
# loop-mounted in a directory the script makes and removes: most users'
# ext4 has its journal, which changes what a commit costs.
# Systems, each at 1, 4, 16 and 64 processes, durable:
#   ticket    ticket bench (buyer processes started at once, each looping
#             "lock, read, decide, commit")
#   floor     the design's own floor (scripts/floor -design): flock, read,
#             append a line to a journal and fdatasync it, replace the
#             count by rename; nothing else
#   sqlite    Python's sqlite3, WAL, synchronous=FULL and =NORMAL (forked
#             workers held at a gate until connected, like ticket bench's)
#   redis     ticket bench against a redis-server on 127.0.0.1 keeping its
#             files on that file system, appendonly yes, appendfsync always
# Then, on the current directory's file system: ticket --no-sync at 4
# processes, 200 shell processes of flock+jq against 200 of ticket buy,
# 400 ticket buy processes in 4 lanes (xargs -P4) against 400 runs of a
# static program doing one naive durable replace (scripts/floor -once), the
# peak RSS of one ticket buy, and the packages a ticket process initializes.
# And a separate table, "booking" (booking.tsv; not in the chart), on the
# current directory's file system at 1 and 4 processes, durable, the same
# rounds alternating: ticket bench's plain buys beside --limit K (a per-buyer
# limit, K = TICKETS, checked on every buy and never reached) and --hold 1m
# (every buy a hold, then its confirm: buys/s and holds+confirms/s).
# Needs go, python3, flock, jq, redis-server; a missing peer's rows say so.
set -euo pipefail
usage() { sed -n '2,/^set -euo/{/^set/d;s/^# \{0,1\}//p}' "$0"; }
out="" rounds=3
while (($#)); do
  case $1 in
  -h | --help) usage; exit 0 ;;
  -o) out=${2:?-o needs a directory}; shift 2 ;;
  -r) rounds=${2:?-r needs a number}; shift 2 ;;
  -*) usage >&2; exit 2 ;;
  *) break ;;
  esac
done
N=${1:-20000}
if (($# > 1)) || ! [[ $N =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]]; then usage >&2; exit 2; fi
root=$(cd "$(dirname "$0")/.." && pwd)
[[ -n $out ]] || out=$PWD/bench-results-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
work=$(mktemp -d "$PWD/bench-XXXXXX")
redis_pids=() mnt=""
cleanup() {
  for p in "${redis_pids[@]}"; do { kill "$p" && wait "$p"; } 2>/dev/null || true; done
  if [[ -n $mnt ]]; then umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '%s\n' "$*" >&2; }
bin=$work/bin
mkdir -p "$bin"
say "bench.sh: building (static) ..."
(cd "$root" && CGO_ENABLED=0 go build -o "$bin/" ./cmd/ticket ./cmd/ticket-redis &&
  CGO_ENABLED=0 go build -o "$bin/floor" ./scripts/floor &&
  go build -o "$bin/maxrss" ./scripts/peers/maxrss && go build -o "$bin/benchchart" ./scripts/benchchart)

rate() { grep -o '^[0-9]*' <<<"$1" || echo 0; } # "1234 buys/s ..." -> 1234
median() { tr ' ' '\n' <<<"$*" | grep . | sort -n | awk '{a[NR]=$1} END{print (NR ? a[int((NR+1)/2)] : 0)}'; }
fresh() { mktemp -d "$1/run-XXXXXX"; }

have_python=0 have_redis=0
command -v python3 >/dev/null && have_python=1
command -v redis-server >/dev/null && have_redis=1

# The file systems: name and directory.
fs_names=("$(df -T "$work" | awk 'NR==2{print $2}') (this machine's disk)") fs_dirs=("$work/own")
mkdir -p "$work/own"
if [[ $(id -u) == 0 ]] && command -v mkfs.ext4 >/dev/null; then
  img=$work/ext4.img mnt=$work/ext4
  mkdir -p "$mnt"
  truncate -s 2G "$img"
  if mkfs.ext4 -q -F "$img" && mount -o loop "$img" "$mnt"; then
    fs_names+=("ext4 with its journal (loop image)") fs_dirs+=("$mnt")
  else
    say "bench.sh: could not make the ext4 image: measuring one file system only"
    mnt=""
  fi
else
  say "bench.sh: not root or no mkfs.ext4: no ext4-with-journal image, one file system only"
fi

redis_start() { # DIR: start a durable redis-server with its files in DIR; sets port
  local dir=$1 pid
  for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 20000))
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --daemonize no --loglevel warning \
      --appendonly yes --appendfsync always >"$dir/log" 2>&1 &
    pid=$!
    redis_pids+=("$pid") # stopped by cleanup, whatever happens
    sleep 0.3
    if kill -0 "$pid" 2>/dev/null; then return; fi
  done
  return 1
}

declare -A samples # "fs|system|P" -> rates
run_one() {          # fsindex system P
  local i=$1 sys=$2 p=$3 dir=${fs_dirs[$1]} d r=0
  d=$(fresh "$dir")
  case $sys in
  ticket) r=$(rate "$(cd "$d" && "$bin/ticket" bench --tickets "$N" --procs "$p" 2>&1 | tail -1)") ;;
  floor) r=$(rate "$("$bin/floor" -design -procs "$p" -tickets "$N" -dir "$d" 2>&1 | tail -1)") ;;
  "sqlite WAL FULL") r=$(rate "$(python3 "$root/scripts/peers/sqlite_buyers.py" "$d" "$p" "$N" WAL FULL 2>&1 | tail -1)") ;;
  "sqlite WAL NORMAL") r=$(rate "$(python3 "$root/scripts/peers/sqlite_buyers.py" "$d" "$p" "$N" WAL NORMAL 2>&1 | tail -1)") ;;
  "redis always") r=$(rate "$("$bin/ticket" bench --tickets "$N" --procs "$p" --force --store "redis://127.0.0.1:${redis_port[$i]}/0?name=bench" 2>&1 | tail -1)") ;;
  esac
  rm -rf "$d"
  samples["$i|$sys|$p"]+="$r "
}

systems=(ticket floor)
((have_python)) && systems+=("sqlite WAL FULL" "sqlite WAL NORMAL")
((have_redis)) && systems+=("redis always")
((have_python)) || say "bench.sh: no python3: no sqlite rows"
((have_redis)) || say "bench.sh: no redis-server: no redis rows"
declare -a redis_port
if ((have_redis)); then
  for i in "${!fs_dirs[@]}"; do
    mkdir -p "${fs_dirs[$i]}/redis"
    redis_start "${fs_dirs[$i]}/redis"
    redis_port[$i]=$port
  done
fi

say "bench.sh: $N tickets per run, $rounds rounds, ${#fs_dirs[@]} file systems, systems: ${systems[*]}"
for ((r = 1; r <= rounds; r++)); do
  for i in "${!fs_dirs[@]}"; do
    for p in 1 4 16 64; do
      for sys in "${systems[@]}"; do
        say "  round $r/$rounds, ${fs_names[$i]}, $sys, P=$p"
        run_one "$i" "$sys" "$p"
      done
    done
  done
done

tsv=$out/results.tsv
printf 'filesystem\tsystem\tprocesses\tbuys_per_second\n' >"$tsv"
declare -A med
for i in "${!fs_dirs[@]}"; do
  for sys in "${systems[@]}"; do
    for p in 1 4 16 64; do
      med["$i|$sys|$p"]=$(median ${samples["$i|$sys|$p"]})
      printf '%s\t%s\t%s\t%s\n' "${fs_names[$i]}" "$sys" "$p" "${med["$i|$sys|$p"]}" >>"$tsv"
    done
  done
done

# The extra rows, on the current directory's file system.
extra=()
nosync=$(cd "$(fresh "$work/own")" && "$bin/ticket" bench --tickets "$N" --procs 4 --no-sync | tail -1)
extra+=("ticket P=4 --no-sync: $(rate "$nosync") buys/s")
cpu=$(cd "$(fresh "$work/own")" && "$bin/ticket" bench --tickets "$((N / 4 + 1))" --procs 1 --json | sed -n 's/.*"cpu_per_buy_ns":\([0-9]*\).*/\1/p')
cpuns=$(cd "$(fresh "$work/own")" && "$bin/ticket" bench --tickets "$((N / 4 + 1))" --procs 1 --no-sync --json | sed -n 's/.*"cpu_per_buy_ns":\([0-9]*\).*/\1/p')
extra+=("ticket P=1: CPU $((cpu / 1000)) us per buy durable, $((cpuns / 1000)) us with --no-sync (goal: under 100 us beyond fsync waits)")
shellway() { # kind n: n processes at once, each one buy
  local kind=$1 n=$2 d start end
  d=$(fresh "$work/own")
  "$bin/ticket" init --count "$n" -f "$d/t.json" >/dev/null
  start=$(date +%s%N)
  for _ in $(seq "$n"); do
    if [[ $kind == ticket ]]; then
      "$bin/ticket" buy -f "$d/t.json" >/dev/null &
    else
      flock "$d/t.json.lock" sh -c 'n=$(jq .count "$1"); [ "$n" -gt 0 ] && jq ".count = $((n-1))" "$1" >"$1.jq" && mv "$1.jq" "$1"' sh "$d/t.json" &
    fi
  done
  wait
  end=$(date +%s%N)
  echo "$((n * 1000000000 / (end - start)))"
}
if command -v jq >/dev/null && command -v flock >/dev/null; then
  extra+=("shell, 200 processes at once: flock+jq $(shellway jq 200) buys/s; ticket buy $(shellway ticket 200) buys/s")
fi
# One ticket buy process against one naive durable replace, 400 of each
# in 4 lanes, alternating, median of 3.
lanes() { # kind: 400 processes, 4 at a time; prints ms
  local kind=$1 d start end
  d=$(fresh "$work/own")
  "$bin/ticket" init --count 400 -f "$d/t.json" >/dev/null
  printf 400 >"$d/count"
  start=$(date +%s%N)
  if [[ $kind == ticket ]]; then
    seq 400 | xargs -P4 -I{} "$bin/ticket" buy -f "$d/t.json" >/dev/null
  else
    seq 400 | xargs -P4 -I{} "$bin/floor" -once -dir "$d"
  fi
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}
tl=() fl=()
for _ in 1 2 3; do tl+=("$(lanes ticket)"); fl+=("$(lanes floor)"); done
t_ms=$(median "${tl[@]}") f_ms=$(median "${fl[@]}")
extra+=("400 shell ticket buy in 4 lanes: ${t_ms} ms; 400 naive durable replaces (a static Go program each): ${f_ms} ms; ratio $(awk -v a="$t_ms" -v b="$f_ms" 'BEGIN{printf "%.2f", b ? a/b : 0}') (goal <= 1.3)")
d=$(fresh "$work/own")
"$bin/ticket" init --count 1 -f "$d/t.json" >/dev/null
extra+=("peak RSS of one ticket buy: $("$bin/maxrss" "$bin/ticket" buy -f "$d/t.json" | tail -1) KiB (goal < 6144)")
extra+=("packages a ticket process initializes: $(GODEBUG=inittrace=1 "$bin/ticket" --version 2>&1 >/dev/null | grep -c '^init ') (GODEBUG=inittrace=1); binary $(($(stat -c %s "$bin/ticket") / 1024)) KiB")

# The booking table, on the current directory's file system.
booking_variants=(buy --limit --hold)
declare -A bsamples bops # "variant|P" -> buys/s, and holds+confirms/s for --hold
booking_one() {          # variant P
  local v=$1 p=$2 d line flags=()
  case $v in
  --limit) flags=(--limit "$N") ;;
  --hold) flags=(--hold 1m) ;;
  esac
  d=$(fresh "$work/own")
  line=$(cd "$d" && "$bin/ticket" bench --tickets "$N" --procs "$p" "${flags[@]}" 2>&1 | tail -1)
  rm -rf "$d"
  bsamples["$v|$p"]+="$(rate "$line") "
  if [[ $v == --hold ]]; then
    bops["$v|$p"]+="$(grep -o '[0-9]* holds+confirms/s' <<<"$line" | grep -o '^[0-9]*' || echo 0) "
  fi
}
for ((r = 1; r <= rounds; r++)); do
  for p in 1 4 16; do
    for v in "${booking_variants[@]}"; do
      say "  booking round $r/$rounds, ${fs_names[0]}, $v, P=$p"
      booking_one "$v" "$p"
    done
  done
done
btsv=$out/booking.tsv
printf 'filesystem\tvariant\tprocesses\tbuys_per_second\tholds_confirms_per_second\n' >"$btsv"
declare -A bmed
for v in "${booking_variants[@]}"; do
  for p in 1 4 16; do
    bmed["$v|$p"]=$(median ${bsamples["$v|$p"]})
    ops=""
    [[ $v == --hold ]] && ops=$(median ${bops["$v|$p"]})
    printf '%s\t%s\t%s\t%s\t%s\n' "${fs_names[0]}" "$v" "$p" "${bmed["$v|$p"]}" "$ops" >>"$btsv"
  done
done

# The table.
machine="$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), $(go version | cut -d' ' -f3), $(date -u +%Y-%m-%d)"
{
  echo "# scripts/bench.sh results"
  echo
  echo "Machine: $machine. $N tickets per run, median of $rounds alternating rounds, durable (fdatasync) unless said."
  echo
  for i in "${!fs_dirs[@]}"; do
    echo "## ${fs_names[$i]}"
    echo
    printf '| processes |'
    for sys in "${systems[@]}"; do printf ' %s |' "$sys"; done
    printf ' ticket / floor |'
    ((have_python)) && printf ' ticket / sqlite WAL FULL |'
    echo
    printf '| ---: |'
    for _ in "${systems[@]}"; do printf ' ---: |'; done
    printf ' ---: |'
    ((have_python)) && printf ' ---: |'
    echo
    for p in 1 4 16 64; do
      printf '| %s |' "$p"
      for sys in "${systems[@]}"; do printf ' %s |' "${med["$i|$sys|$p"]}"; done
      awk -v a="${med["$i|ticket|$p"]}" -v b="${med["$i|floor|$p"]}" 'BEGIN{printf " %.2fx |", b ? a/b : 0}'
      ((have_python)) && awk -v a="${med["$i|ticket|$p"]}" -v b="${med["$i|sqlite WAL FULL|$p"]}" 'BEGIN{printf " %.2fx |", b ? a/b : 0}'
      echo
    done
    echo
  done
  echo "## One process, start-up and the rest"
  echo
  for e in "${extra[@]}"; do echo "- $e"; done
  echo
  echo "## Booking: ${fs_names[0]}"
  echo
  echo "ticket bench, buys/s: plain buys; --limit $N (a per-buyer limit checked on every buy, each worker its own buyer); --hold 1m (each buy a hold, then its confirm)."
  echo
  echo "| processes | buy | --limit | --hold | --hold: holds+confirms/s | --limit / buy | --hold / buy |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for p in 1 4 16; do
    printf '| %s | %s | %s | %s | %s |' "$p" "${bmed["buy|$p"]}" "${bmed["--limit|$p"]}" "${bmed["--hold|$p"]}" "$(median ${bops["--hold|$p"]})"
    awk -v a="${bmed["--limit|$p"]}" -v h="${bmed["--hold|$p"]}" -v b="${bmed["buy|$p"]}" 'BEGIN{printf " %.2fx | %.2fx |\n", b ? a/b : 0, b ? h/b : 0}'
  done
} >"$out/table.md"
"$bin/benchchart" -title "ticket and its peers: buys/s, durable ($machine)" <"$tsv" >"$out/chart.svg"
cat "$out/table.md"
say "bench.sh: wrote $out/table.md, $out/results.tsv, $out/booking.tsv and $out/chart.svg"
