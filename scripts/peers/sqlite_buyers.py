#!/usr/bin/env python3
"""SQLite as a benchmark peer: P processes loop
"BEGIN IMMEDIATE; UPDATE stock SET count = count - 1 WHERE count > 0; COMMIT"
until nothing is left, with the journal mode and synchronous setting given.
The processes are forked (no interpreter start) and held at a gate until
each has opened its connection, as ticket bench holds its buyers: the time
is that of the buys alone.

usage: sqlite_buyers.py DIR PROCS TICKETS MODE SYNC   (e.g. WAL FULL; prints "N buys/s")
"""
import multiprocessing, os, sqlite3, sys, time


def connect(path, mode, sync):
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    db.execute("PRAGMA journal_mode=%s" % mode)
    db.execute("PRAGMA synchronous=%s" % sync)
    return db


def buy_all(path, mode, sync, gate):
    db = connect(path, mode, sync)
    gate.wait()  # every process connected: the timer starts
    gate.wait()
    while True:
        db.execute("BEGIN IMMEDIATE")
        n = db.execute("UPDATE stock SET count = count - 1 WHERE count > 0").rowcount
        db.execute("COMMIT")
        if n == 0:
            return


def main():
    d, procs, tickets, mode, sync = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    path = os.path.join(d, "stock.db")
    db = connect(path, mode, sync)
    db.execute("CREATE TABLE stock (count INTEGER NOT NULL)")
    db.execute("INSERT INTO stock VALUES (?)", (tickets,))
    db.close()
    gate = multiprocessing.Barrier(procs + 1)
    ps = [multiprocessing.Process(target=buy_all, args=(path, mode, sync, gate)) for _ in range(procs)]
    for p in ps:
        p.start()
    gate.wait()  # all connected
    start = time.perf_counter()
    gate.wait()  # go
    for p in ps:
        p.join()
    wall = time.perf_counter() - start
    left = sqlite3.connect(path).execute("SELECT count FROM stock").fetchone()[0]
    assert left == 0, left
    print("%.0f buys/s" % (tickets / wall))


if __name__ == "__main__":
    main()
