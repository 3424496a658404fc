#!/usr/bin/env python3
"""Bytes per key for small lists, Cinnabar vs redis-server, side by side.

    benches/load/list-mem.py [keys]

Starts each server fresh (ports 7631/7632), reads its RSS, RPUSHes `keys`
lists of 1 and of 10 short items (item:N) through a pipe, and prints
(RSS after - RSS before) / keys and the A/B ratio. Needs
target/release/cinnabar and redis-server on PATH. (mem-per-key in
../shared/perf covers strings, hashes and sorted sets, not lists.)
"""
import socket, subprocess, time, sys
def rss(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])*1024
def cmd(*a):
    out=[b"*%d\r\n"%len(a)]
    for x in a:
        x=x if isinstance(x,bytes) else str(x).encode()
        out.append(b"$%d\r\n%s\r\n"%(len(x),x))
    return b"".join(out)
def run(argv, port, n, items):
    p=subprocess.Popen(argv+["--port",str(port),"--bind","127.0.0.1","--save",""],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
    time.sleep(0.7)
    s=socket.create_connection(("127.0.0.1",port))
    s.sendall(cmd("PING")); s.recv(100)
    r0=rss(p.pid)
    batch=[]
    for i in range(n):
        batch.append(cmd("RPUSH","list:%06d"%i,*["item:%d"%j for j in range(items)]))
        if len(batch)==1000:
            s.sendall(b"".join(batch)); batch=[]
            buf=b""
            while buf.count(b"\r\n")<1000: buf+=s.recv(1<<20)
    time.sleep(1)
    r1=rss(p.pid); p.kill(); p.wait()
    return (r1-r0)/n
import os
root=os.path.join(os.path.dirname(os.path.abspath(__file__)),"..","..")
keys=int(sys.argv[1]) if len(sys.argv)>1 else 100000
for items in (1,10):
    a=run([os.path.join(root,"target/release/cinnabar")],7631,keys,items)
    b=run(["redis-server","--appendonly","no"],7632,keys,items)
    print(f"lists x{items}: cinnabar {a:.1f} B/key redis {b:.1f} B/key A/B {a/b:.3f}")
