#!/usr/bin/env python3
"""The seed's approach, as a benchmark peer: P processes loop "lock, read the
JSON, take one, write it back in place" until the count is 0. No fsync, no
atomic replace: what the lesson's code does, with fcntl.flock as the lock.

usage: seed_buyers.py DIR PROCS TICKETS   (prints "N buys/s")
"""
import fcntl, json, multiprocessing, os, sys, time


def buy_all(path, lock_path):
    with open(lock_path, "a") as lock:
        while True:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(path) as fp:
                    dic = json.load(fp)
                if dic["count"] <= 0:
                    return
                dic["count"] -= 1
                with open(path, "w") as fp:
                    json.dump(dic, fp)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def main():
    d, procs, tickets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    path, lock = os.path.join(d, "ticket"), os.path.join(d, "ticket.lock")
    with open(path, "w") as fp:
        json.dump({"count": tickets}, fp)
    ps = [multiprocessing.Process(target=buy_all, args=(path, lock)) for _ in range(procs)]
    start = time.perf_counter()
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    wall = time.perf_counter() - start
    with open(path) as fp:
        assert json.load(fp)["count"] == 0
    print("%.0f buys/s" % (tickets / wall))


if __name__ == "__main__":
    main()
