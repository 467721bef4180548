#!/usr/bin/env python3
"""A hostile DNS peer for tests/dns.rs (issue 29), standard library only.

serve ADDR MODE [ARG]   answer UDP queries on ADDR:53:
    bogus             16 addresses 10.99.X.Y, TTL 2^31-1, whatever is asked
    swap BANK=ADDR    a question starting "shop" is answered for BANK, A
                      ADDR; any other honestly, with the server's address
    flood ADDR        each question honestly, one address counting from
                      10.100.0.0, TTL 300
ask SERVER NAME COUNT   send COUNT queries for NAME ({i}: the number) to
                      SERVER:53 from one socket, 64 in flight, and read
                      the answers
trick NAME ADDR       send this process an answer for NAME (A ADDR) and
                      read it with recvfrom(addrlen=0) over a sockaddr
                      pre-filled with 198.18.0.2 port 53
"""
import ctypes
import random
import socket
import struct
import sys


def qname(name):
    out = b""
    for label in name.strip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(qid, name, qtype=1):
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname(name) + struct.pack(">HH", qtype, 1)


def answer(qid, name, addrs, ttl, qtype=1):
    """A response: A records only, and none to a question of another type."""
    if qtype != 1:
        addrs = []
    out = struct.pack(">HHHHHH", qid, 0x8180, 1, len(addrs), 0, 0)
    out += qname(name) + struct.pack(">HH", qtype, 1)
    for a in addrs:
        out += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, ttl, 4) + socket.inet_aton(a)
    return out


def question(msg):
    """The id, question name and type of a query."""
    qid = struct.unpack(">H", msg[:2])[0]
    labels, i = [], 12
    while msg[i]:
        n = msg[i]
        labels.append(msg[i + 1:i + 1 + n].decode())
        i += 1 + n
    return qid, ".".join(labels), struct.unpack(">H", msg[i + 1:i + 3])[0]


def serve(addr, mode, arg):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    n = 0
    while True:
        msg, peer = s.recvfrom(512)
        qid, name, qtype = question(msg)
        if mode == "bogus":
            base = random.randrange(1 << 16)
            addrs = ["10.99.%d.%d" % ((base + i) >> 8 & 255, (base + i) & 255) for i in range(16)]
            reply = answer(qid, name, addrs, 2**31 - 1, qtype)
        elif mode == "swap":
            bank, at = arg.split("=")
            if name.startswith("shop"):
                reply = answer(qid, bank, [at], 60, qtype)
            else:
                reply = answer(qid, name, [addr], 60, qtype)
        else:
            n += 1
            a = socket.inet_ntoa(struct.pack(">I", 0x0A640000 + n))
            reply = answer(qid, name, [a], 300, qtype)
        s.sendto(reply, peer)


def ask(server, name, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    done = 0
    while done < count:
        batch = min(64, count - done)
        for i in range(done, done + batch):
            s.sendto(query(i & 0xFFFF, name.replace("{i}", str(i))), (server, 53))
        for _ in range(batch):
            try:
                s.recvfrom(512)
            except socket.timeout:
                break
        done += batch


def trick(name, addr):
    libc = ctypes.CDLL(None, use_errno=True)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.sendto(answer(0x4242, name, [addr], 600), a.getsockname())
    # A sockaddr_in that says 198.18.0.2:53, and a length of 0: the kernel
    # copies no address over it.
    frm = ctypes.create_string_buffer(struct.pack("=H", socket.AF_INET) + struct.pack(">H", 53) + socket.inet_aton("198.18.0.2") + b"\0" * 8)
    flen = ctypes.c_uint32(0)
    buf = ctypes.create_string_buffer(512)
    n = libc.recvfrom(a.fileno(), buf, 512, 0, frm, ctypes.byref(flen))
    assert n > 0, ctypes.get_errno()
    assert frm.raw[2:4] == b"\x00\x35", "the kernel wrote the address"


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "")
    elif cmd == "ask":
        ask(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "trick":
        trick(sys.argv[2], sys.argv[3])
