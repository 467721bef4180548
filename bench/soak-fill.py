"""bench/soak's fill: every table of tcpstate at its default bound at once.

Run as root:
  soak-fill.py SLICE NETNS METRICS_URL
  (a cgroup v2 directory to make units in; the network namespace to
  connect from, by name; tcpstate's /metrics as HOST:PORT, read when the table is full)
- series:  300 units (cgroups), each failing to 40 destinations: 12,000
           unit x destination pairs, past the 10,000-series cap;
- dns:     8 units asking 8,000 unique names each (dnsmasq's synth-domain
           answers each with its own address): 64,000 pairs, past the DNS
           memory's bound;
- established: 40,000 connections made (and closed) to a listener here:
           past the 32,768 connections remembered for connection_broken;
- pending: 65,536 connects left in SYN_SENT at once (the server drops
           them), tcpstate's --max-pending, held 20 s, then abandoned.
Each step is paced within what the ring buffer holds between drains: it
fills tcpstate's tables, not its ring (whose losses are counted apart).
"""
import ctypes, os, socket, struct, sys, time

slice_dir, netns, metrics = sys.argv[1], sys.argv[2], sys.argv[3]
me = str(os.getpid())
# Into the client's network namespace, keeping this mount namespace (where
# `ip netns exec` would remount /sys without the cgroup tree).
# A socket made before entering the client's namespace stays in this one,
# where /metrics listens on loopback: for one scrape when the table is full.
host_sock = socket.socket()


def scrape():
    host, port = metrics.rsplit(":", 1)
    host_sock.settimeout(5)
    host_sock.connect((host, int(port)))
    host_sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    body = b""
    while chunk := host_sock.recv(65536):
        body += chunk
    return body.decode(errors="replace").splitlines()


# (os.setns is 3.12+; Debian 12 has 3.11.)
with open(f"/run/netns/{netns}") as f:
    if ctypes.CDLL(None, use_errno=True).setns(f.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
        sys.exit(f"setns {netns}: {os.strerror(ctypes.get_errno())}")


def unit(name):
    d = os.path.join(slice_dir, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "cgroup.procs"), "w") as f:
        f.write(me)


def leave():
    with open(os.path.join(slice_dir, "cgroup.procs"), "w") as f:
        f.write(me)


def say(what):
    print(f"fill: {what} at {time.strftime('%H:%M:%S')}", flush=True)


# series: refused, each unit to its 40 ports.
for u in range(300):
    unit(f"fill-s{u}.scope")
    for p in range(40):
        s = socket.socket()
        s.connect_ex(("198.18.119.2", 20000 + p))
        s.close()
leave()
say("series: 300 units x 40 destinations")

# dns: A queries for 198-18-a-b.synth.test, answered by synth-domain.
def query(sock, qid, name):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", 1, 1)
    sock.sendto(q, ("198.18.119.2", 53))
    try:
        sock.recvfrom(512)
    except socket.timeout:
        pass

n = 0
for u in range(8):
    unit(f"fill-d{u}.scope")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    for _ in range(8000):
        a, b = divmod(n, 250)
        query(s, n & 0xFFFF, f"198-18-{a % 256}-{b + 1}.synth.test")
        n += 1
    s.close()
leave()
say("dns: 64,000 unique names from 8 units")

# established: connections that succeed, to a listener on the client's
# own address. The server closes first, so TIME_WAIT is on its side and
# the client's ports are free again at once.
import threading
lst = socket.socket()
lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("198.18.119.1", 5000))
lst.listen(1024)


def accept_all():
    while True:
        try:
            c, _ = lst.accept()
        except OSError:
            return
        c.close()


threading.Thread(target=accept_all, daemon=True).start()
unit("fill-e.scope")
for k in range(40000):
    s = socket.socket()
    s.connect(("198.18.119.1", 5000))
    s.recv(1)
    s.close()
leave()
lst.close()
say("established: 40,000 connections made")

# pending: 65,536 SYNs the server drops, from 4 processes (a process may
# hold 20,000 fds here).
unit("fill-p.scope")
children = []
for c in range(4):
    pid = os.fork()
    if pid == 0:
        socks = []
        for k in range(c * 16384, (c + 1) * 16384):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("198.18.119.4" if k < 32768 else "198.18.119.5", 1 + k % 32768))
            socks.append(s)
            # About 6,500 a second in all: within what the ring buffer
            # holds between drains, so the table (not the ring) fills.
            if k % 64 == 63:
                time.sleep(0.04)
        time.sleep(20)
        for s in socks:
            s.close()
        os._exit(0)
    children.append(pid)
time.sleep(15)
pending = [l for l in scrape() if l.startswith("tcpstate_attempts_pending ")]
say(f"pending: 65,536 in SYN_SENT ({' '.join(pending)})")
for pid in children:
    os.waitpid(pid, 0)
leave()
say("pending: abandoned")
