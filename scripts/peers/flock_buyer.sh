#!/bin/sh
# flock_buyer.sh PATH: take one ticket from the sale at PATH, following the
# lock protocol with flock(1) and jq, as the README shows: exit 0 with the
# ticket, 3 when none is left, 1 on an error.
#
# The lock file is opened on descriptor 9 and locked; then the shell checks
# that the file it locked is still the one at PATH.lock (someone may have
# deleted it as "stale" while it waited, and another process locked a new
# one): if not, it closes it and starts again. Without that check, a
# deleted lock file lets two buyers in at once.
set -u
f=$1
while :; do
  exec 9>>"$f.lock" || exit 1
  flock 9 || exit 1
  [ /proc/self/fd/9 -ef "$f.lock" ] && break
  exec 9>&-
done
n=$(jq .count "$f") || exit 1
[ "$n" -ge 1 ] || exit 3
jq '.count -= 1' "$f" >"$f.sh.$$" && mv "$f.sh.$$" "$f"
