#!/usr/bin/env python3
"""Memory per key of many tiny collections: used_memory growth over N
pipelined writes, each creating one key (a one-member set, a one-field
hash, ...), on a server that is already running.

    benches/load/small-collections-mem.py PORT KIND [N]

KIND: set (one string member), set3 (three), intset (three integers),
hash (one field), list (one item), zset (one member). Start each server
fresh (the figure includes the keyspace's own growth) and run the same
KIND and N against Cinnabar and redis-server to compare.
"""
import socket
import sys
import time

COMMANDS = {
    "set": lambda i: ("SADD", "ss:%07d" % i, "alpha"),
    "set3": lambda i: ("SADD", "ss:%07d" % i, "alpha", "beta", "gamma"),
    "intset": lambda i: ("SADD", "ss:%07d" % i, "1", "2", "3"),
    "hash": lambda i: ("HSET", "hh:%07d" % i, "a", "b"),
    "list": lambda i: ("LPUSH", "ll:%07d" % i, "a"),
    "zset": lambda i: ("ZADD", "zz:%07d" % i, "1", "a"),
}


def enc(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def reply(self):
        line = self.f.readline()
        if line[:1] == b"$":
            n = int(line[1:])
            return self.f.read(n + 2)[:-2] if n >= 0 else None
        return line

    def used_memory(self):
        self.s.sendall(enc(("INFO", "memory")))
        info = self.reply().decode()
        for l in info.split("\r\n"):
            if l.startswith("used_memory:"):
                return int(l.split(":")[1])
        raise SystemExit("no used_memory in INFO")


def main():
    port, kind = int(sys.argv[1]), sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
    make = COMMANDS[kind]
    c = Conn(port)
    before = c.used_memory()
    batch = 1000
    for start in range(0, n, batch):
        idx = range(start, min(n, start + batch))
        c.s.sendall(b"".join(enc(make(i)) for i in idx))
        for _ in idx:
            c.reply()
    time.sleep(0.3)
    after = c.used_memory()
    print("%-7s %d keys: %.1f bytes/key" % (kind, n, (after - before) / n))


if __name__ == "__main__":
    main()
