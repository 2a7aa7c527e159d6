#!/usr/bin/env python3
"""protocol_buyer.py: a ticket buyer written without ticket, following the
lock protocol that makes any program a safe peer of ticket's own buyers:

  1. open PATH.lock (create it if missing; opening it for writing, which
     truncates it, is fine) and take an exclusive flock(2) on it;
  2. check that the file locked is still the one at PATH.lock (someone may
     have deleted it meanwhile): if not, close it and start again;
  3. read PATH (JSON), change "count" (the tickets left), keep every other
     member as it is;
  4. write the new version to a temporary file in the same directory, fsync
     it, rename it over PATH (atomic: readers see the old or the new file)
     and fsync the directory (a change that must survive a power cut);
  5. close the lock file, which releases the lock.

ticket records such a change as tickets taken (or added) outside ticket the
next time it holds the lock; its books balance, and nothing is sold twice.

Usage: protocol_buyer.py [options] PATH
  --qty K          tickets to take (default 1), all or nothing
  --add K          add K tickets instead (stock added by hand)
  --keep-sold      also add K to "sold", as a client that keeps the books would
  --count-only     write {"count": N} only, dropping the other members
  --no-lock        UNSAFE: skip the lock (the tests' negative control)
  --slow MS        wait MS milliseconds between reading and writing
Exit status: 0 done, 3 fewer than K left, 2 usage, 1 other error.
"""
import fcntl
import json
import os
import sys
import time


def lock(path):
    """Take the exclusive lock on path, on the file that is there now."""
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # deleted or replaced while we waited: lock the new one


def main(argv):
    args, qty, add = [], 1, 0
    keep_sold = count_only = no_lock = False
    slow = 0
    it = iter(argv)
    for a in it:
        if a == "--qty":
            qty = int(next(it, "x"), 10)
        elif a == "--add":
            add = int(next(it, "x"), 10)
        elif a == "--keep-sold":
            keep_sold = True
        elif a == "--count-only":
            count_only = True
        elif a == "--no-lock":
            no_lock = True
        elif a == "--slow":
            slow = int(next(it, "x"), 10)
        elif a.startswith("-"):
            print(__doc__, file=sys.stderr)
            return 2
        else:
            args.append(a)
    if len(args) != 1 or qty < 1 or add < 0:
        print(__doc__, file=sys.stderr)
        return 2
    path = args[0]
    fd = None if no_lock else lock(path + ".lock")
    try:
        with open(path) as f:
            state = json.load(f)
        time.sleep(slow / 1000)
        if add:
            state["count"] += add
            if keep_sold and "total" in state:
                state["total"] += add
        else:
            if state["count"] < qty:
                print(f"{os.getpid()} got no ticket: {state['count']} left", flush=True)
                return 3
            state["count"] -= qty
            if keep_sold and "sold" in state:
                state["sold"] += qty
        if count_only:
            state = {"count": state["count"]}
        tmp = f"{path}.{os.getpid()}.new"
        with open(tmp, "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        # The rename survives a power cut only once the directory is synced.
        d = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(d)
        finally:
            os.close(d)
        print(f"{os.getpid()} got {qty if not add else -add} ({state['count']} left)", flush=True)
        return 0
    finally:
        if fd is not None:
            os.close(fd)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ValueError:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
