/* A test guest's own client (tests/kernels/run builds it static for each
 * architecture; busybox has neither of these):
 *
 *   probe soerror ADDR PORT   non-blocking connect(), wait up to 700 ms,
 *                             getsockopt(SO_ERROR), close: a client that
 *                             reads the error away before it closes (curl,
 *                             Go, Java NIO do this). Prints the error read.
 *   probe syscalls MS         getppid() in a loop for MS milliseconds on
 *                             one thread; prints the calls per second: the
 *                             cost a tracer adds to processes that make no
 *                             connection.
 *   probe tcpecho MS          a TCP connection to itself on loopback:
 *                             64 bytes written on one end and read on the
 *                             other, in a loop for MS milliseconds;
 *                             prints the round trips per second: the cost
 *                             hooks on the TCP data path (tcp_sendmsg,
 *                             tcp_recvmsg) add to a TCP-heavy process.
 *   probe uring ADDR PORT     one connect through io_uring
 *                             (IORING_OP_CONNECT), never the connect()
 *                             syscall; prints its result. Raw syscalls, so
 *                             no liburing is needed for either
 *                             architecture. Exits 3 where the kernel has
 *                             no io_uring (or refuses it).
 *   probe rstserver ADDR PORT listen, accept one connection, and close it
 *                             with SO_LINGER 0: the kernel resets it (an
 *                             RST, not a FIN). Gives up after 5 s.
 *   probe dnsserver ADDR PORT SECS
 *                             a DNS server over TCP (one connection at a
 *                             time) and UDP for SECS seconds: NXDOMAIN
 *                             for every name but big.tcp.test and
 *                             a.udp.test, whose A is 127.0.0.77 (their
 *                             AAAA: no address), and drop.udp.test, which
 *                             it never answers.
 *   probe dnstcp SERVER NAME [PORT]
 *                             a lookup over TCP as glibc makes it (options
 *                             use-vc, or a truncated answer's retry):
 *                             connect to SERVER:53, writev() [length][A]
 *                             [length][AAAA], then for each answer read()
 *                             its 2-byte length, then its body. Prints each
 *                             rcode and the A record; with PORT, connects
 *                             to that address and port (a failure the
 *                             name should label).
 *   probe dnsudp SERVER NAME [PORT]
 *                             the same lookup over UDP as glibc makes it:
 *                             a connected socket, sendmmsg() of the A and
 *                             AAAA queries, then each answer recv()'d
 *                             (waiting 1 s at most, as `options
 *                             timeout:1`).
 */
#define _GNU_SOURCE /* sendmmsg */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int read_full(int fd, unsigned char *b, size_t n);

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int soerror(const char *addr, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct pollfd p;
	socklen_t len = sizeof(int);
	int fd, err = 0;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		return fprintf(stderr, "probe: bad address %s\n", addr), 2;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return perror("probe: socket"), 1;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) && errno != EINPROGRESS)
		return printf("connect: %s\n", strerror(errno)), 1;
	p.fd = fd;
	p.events = POLLOUT;
	poll(&p, 1, 700);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return perror("probe: getsockopt"), 1;
	/* The error is read away now: the socket closes with none left. */
	printf("SO_ERROR %d (%s)\n", err, strerror(err));
	close(fd);
	return 0;
}

static int syscalls(long ms)
{
	double start = now(), end = start + ms / 1e3, t;
	unsigned long n = 0;

	do {
		for (int i = 0; i < 1000; i++)
			syscall(SYS_getppid);
		n += 1000;
		t = now();
	} while (t < end);
	printf("%.0f\n", n / (t - start));
	return 0;
}

static int tcpecho(long ms)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	double start, end, t;
	unsigned long n = 0;
	char b[64] = { 0 };
	int l, c, s, one = 1;

	l = socket(AF_INET, SOCK_STREAM, 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&sin, sizeof(sin)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&sin, &len) ||
	    connect(c, (struct sockaddr *)&sin, sizeof(sin)))
		return perror("probe: loopback connection"), 1;
	s = accept(l, NULL, NULL);
	if (s < 0)
		return perror("probe: accept"), 1;
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	start = now();
	end = start + ms / 1e3;
	do {
		for (int i = 0; i < 100; i++) {
			if (write(c, b, sizeof(b)) != sizeof(b) || read_full(s, (unsigned char *)b, sizeof(b)))
				return perror("probe: echo"), 1;
		}
		n += 100;
		t = now();
	} while (t < end);
	printf("%.0f\n", n / (t - start));
	return 0;
}

static int uring(const char *addr, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct io_uring_params p;
	struct io_uring_sqe *sqes, *sqe;
	struct io_uring_cqe *cqe;
	unsigned int *sq_tail, *sq_array, *cq_head;
	char *sq, *cq;
	int ring, fd;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		return fprintf(stderr, "probe: bad address %s\n", addr), 2;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return perror("probe: socket"), 1;
	memset(&p, 0, sizeof(p));
	ring = syscall(__NR_io_uring_setup, 4, &p);
	if (ring < 0)
		return printf("io_uring_setup: %s\n", strerror(errno)), 3;
	/* Single mmap (IORING_FEAT_SINGLE_MMAP, 5.4+) is not assumed. */
	sq = mmap(NULL, p.sq_off.array + p.sq_entries * sizeof(unsigned int),
		  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
	cq = mmap(NULL, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe),
		  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
	sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
		return perror("probe: mmap"), 1;
	sq_tail = (unsigned int *)(sq + p.sq_off.tail);
	sq_array = (unsigned int *)(sq + p.sq_off.array);
	cq_head = (unsigned int *)(cq + p.cq_off.head);
	sqe = &sqes[0];
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_CONNECT;
	sqe->fd = fd;
	sqe->addr = (unsigned long)&sin;
	sqe->off = sizeof(sin); /* the address length */
	sq_array[*sq_tail & *(unsigned int *)(sq + p.sq_off.ring_mask)] = 0;
	__atomic_store_n(sq_tail, *sq_tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return printf("io_uring_enter: %s\n", strerror(errno)), 3;
	cqe = (struct io_uring_cqe *)(cq + p.cq_off.cqes) +
	      (__atomic_load_n(cq_head, __ATOMIC_ACQUIRE) & *(unsigned int *)(cq + p.cq_off.ring_mask));
	if (cqe->res == -EINVAL || cqe->res == -EOPNOTSUPP)
		return printf("io_uring connect: %s\n", strerror(-cqe->res)), 3;
	printf("io_uring connect: %d (%s)\n", cqe->res, strerror(-cqe->res));
	close(fd);
	return 0;
}

static int rstserver(const char *addr, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct linger l = { .l_onoff = 1, .l_linger = 0 };
	struct pollfd p;
	int fd, c, one = 1;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		return fprintf(stderr, "probe: bad address %s\n", addr), 2;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return perror("probe: socket"), 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 1))
		return perror("probe: bind/listen"), 1;
	p.fd = fd;
	p.events = POLLIN;
	if (poll(&p, 1, 5000) != 1)
		return printf("rstserver: nobody connected\n"), 1;
	c = accept(fd, NULL, NULL);
	if (c < 0)
		return perror("probe: accept"), 1;
	/* The client is established and waiting to read. */
	usleep(200000);
	setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(c);
	close(fd);
	printf("rstserver: reset one connection\n");
	return 0;
}

/* Reads exactly n bytes, or fails. */
static int read_full(int fd, unsigned char *b, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = read(fd, b + got, n - got);
		if (r <= 0)
			return -1;
		got += r;
	}
	return 0;
}

/* The question's name (lower case, dotted) and where the question ends. */
static size_t question(const unsigned char *m, size_t len, char *name, size_t cap)
{
	size_t off = 12, out = 0;

	while (off < len && m[off]) {
		size_t l = m[off++];

		if (l > 63 || off + l > len || out + l + 2 > cap)
			return 0;
		if (out)
			name[out++] = '.';
		for (size_t i = 0; i < l; i++) {
			unsigned char c = m[off + i];

			name[out++] = c >= 'A' && c <= 'Z' ? c + 32 : c;
		}
		off += l;
	}
	name[out] = 0;
	return off + 5 <= len ? off + 5 : 0;
}

/* The answer to query q: its header and question, and the A record of the
 * names that have one; 0 for none. */
static size_t answer(const unsigned char *q, size_t qlen, unsigned char *a)
{
	static const unsigned char rr[] = { 0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 127, 0, 0, 77 };
	char name[256];
	size_t end = question(q, qlen, name, sizeof(name)), n;
	int big, qtype;

	if (!end)
		return 0;
	if (!strcmp(name, "drop.udp.test"))
		return 0; /* never answered */
	big = !strcmp(name, "big.tcp.test") || !strcmp(name, "a.udp.test");
	qtype = q[end - 4] << 8 | q[end - 3];
	memcpy(a, q, end);
	a[2] = 0x80 | (q[2] & 0x01); /* QR, RD as asked */
	a[3] = 0x80 | (big ? 0 : 3); /* RA; NOERROR or NXDOMAIN */
	memset(a + 6, 0, 6);
	n = end;
	if (big && qtype == 1) {
		a[7] = 1;
		memcpy(a + n, rr, sizeof(rr));
		n += sizeof(rr);
	}
	return n;
}

static int dnsserver(const char *addr, int port, int secs)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	unsigned char q[1024], a[1100];
	double end = now() + secs;
	struct pollfd p[2];
	int fd, u, c, one = 1;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		return fprintf(stderr, "probe: bad address %s\n", addr), 2;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	u = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || u < 0)
		return perror("probe: socket"), 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 4))
		return perror("probe: bind/listen"), 1;
	if (bind(u, (struct sockaddr *)&sin, sizeof(sin)))
		return perror("probe: bind UDP"), 1;
	p[0] = (struct pollfd){ .fd = fd, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = u, .events = POLLIN };
	while (now() < end) {
		if (poll(p, 2, 200) < 1)
			continue;
		if (p[1].revents & POLLIN) {
			struct sockaddr_in from;
			socklen_t flen = sizeof(from);
			ssize_t len = recvfrom(u, q, sizeof(q), 0, (struct sockaddr *)&from, &flen);
			size_t n = len > 0 ? answer(q, len, a) : 0;

			if (n)
				sendto(u, a, n, 0, (struct sockaddr *)&from, flen);
		}
		if (!(p[0].revents & POLLIN))
			continue;
		c = accept(fd, NULL, NULL);
		if (c < 0)
			continue;
		for (;;) {
			size_t len, n;

			if (read_full(c, q, 2))
				break;
			len = q[0] << 8 | q[1];
			if (len > sizeof(q) || read_full(c, q, len))
				break;
			n = answer(q, len, a + 2);
			if (!n)
				break;
			a[0] = n >> 8;
			a[1] = n & 0xff;
			if (write(c, a, n + 2) != (ssize_t)(n + 2))
				break;
		}
		close(c);
	}
	close(fd);
	close(u);
	return 0;
}

/* A query for name and type, with id, in q; its length. */
static size_t query(const char *name, int type, int id, unsigned char *q)
{
	size_t n = 12;
	const char *l = name;

	memset(q, 0, 12);
	q[0] = id >> 8;
	q[1] = id & 0xff;
	q[2] = 0x01; /* RD */
	q[5] = 1;
	while (*l) {
		const char *dot = strchr(l, '.');
		size_t len = dot ? (size_t)(dot - l) : strlen(l);

		q[n++] = len;
		memcpy(q + n, l, len);
		n += len;
		l += len + (dot ? 1 : 0);
	}
	q[n++] = 0;
	q[n++] = 0;
	q[n++] = type;
	q[n++] = 0;
	q[n++] = 1;
	return n;
}

/* Prints an answer's rcode; keeps its A record, if any, in found. */
static void read_answer(const char *who, const unsigned char *a, size_t n, struct in_addr *found)
{
	char qname[256];
	size_t off;

	printf("%s: answer id %#x rcode %d answers %d\n", who, a[0] << 8 | a[1], a[3] & 15, a[7]);
	off = question(a, n, qname, sizeof(qname));
	/* The first record, as this server writes it: a name pointer. */
	if (off && a[7] && off + 16 <= n && a[off + 2] == 0 && a[off + 3] == 1 && a[off + 10] == 0 &&
	    a[off + 11] == 4)
		memcpy(found, a + off + 12, 4);
}

/* After a lookup: connects to its address on port, if both; then stays a
 * moment, alive while tcpstate reads this process's resolv.conf. */
static int looked_up(const char *who, struct in_addr found, int port)
{
	if (found.s_addr) {
		printf("%s: A %s\n", who, inet_ntoa(found));
		if (port) {
			struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port),
						  .sin_addr = found };
			int fd = socket(AF_INET, SOCK_STREAM, 0);

			if (connect(fd, (struct sockaddr *)&to, sizeof(to)))
				printf("%s: connect: %s\n", who, strerror(errno));
			close(fd);
		}
	}
	usleep(300000);
	return 0;
}

static int dnstcp(const char *server, const char *name, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(53) };
	unsigned char q4[300], q6[300], l4[2], l6[2], a[2048];
	struct in_addr found = { 0 };
	struct iovec v[4];
	size_t n4, n6;
	int fd;

	if (inet_pton(AF_INET, server, &sin.sin_addr) != 1 || strlen(name) > 200)
		return fprintf(stderr, "probe: bad server or name\n"), 2;
	n4 = query(name, 1, 0x3201, q4);
	n6 = query(name, 28, 0x3202, q6);
	l4[0] = n4 >> 8, l4[1] = n4 & 0xff;
	l6[0] = n6 >> 8, l6[1] = n6 & 0xff;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
		return perror("probe: connect to the server"), 1;
	v[0] = (struct iovec){ l4, 2 };
	v[1] = (struct iovec){ q4, n4 };
	v[2] = (struct iovec){ l6, 2 };
	v[3] = (struct iovec){ q6, n6 };
	if (writev(fd, v, 4) != (ssize_t)(n4 + n6 + 4))
		return perror("probe: writev"), 1;
	for (int i = 0; i < 2; i++) {
		unsigned char len[2];
		size_t n;

		if (read_full(fd, len, 2))
			return printf("dnstcp: no answer\n"), 1;
		n = len[0] << 8 | len[1];
		if (n > sizeof(a) || n < 12 || read_full(fd, a, n))
			return printf("dnstcp: bad answer\n"), 1;
		read_answer("dnstcp", a, n, &found);
	}
	close(fd);
	return looked_up("dnstcp", found, port);
}

/* A lookup over UDP as glibc makes it: one connected socket, both queries
 * in one sendmmsg(), the answers as they come. */
static int dnsudp(const char *server, const char *name, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(53) };
	unsigned char q4[300], q6[300], a[2048];
	struct in_addr found = { 0 };
	struct mmsghdr m[2];
	struct iovec v[2];
	int fd;

	if (inet_pton(AF_INET, server, &sin.sin_addr) != 1 || strlen(name) > 200)
		return fprintf(stderr, "probe: bad server or name\n"), 2;
	v[0] = (struct iovec){ q4, query(name, 1, 0x3301, q4) };
	v[1] = (struct iovec){ q6, query(name, 28, 0x3302, q6) };
	memset(m, 0, sizeof(m));
	for (int i = 0; i < 2; i++) {
		m[i].msg_hdr.msg_iov = &v[i];
		m[i].msg_hdr.msg_iovlen = 1;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
		return perror("probe: connect to the server"), 1;
	if (sendmmsg(fd, m, 2, 0) != 2)
		return perror("probe: sendmmsg"), 1;
	for (int got = 0; got < 2;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 1000) != 1) {
			printf("dnsudp: no answer\n");
			break;
		}
		n = recv(fd, a, sizeof(a), 0);
		if (n < 12)
			continue;
		got++;
		read_answer("dnsudp", a, n, &found);
	}
	close(fd);
	return looked_up("dnsudp", found, port);
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "soerror"))
		return soerror(argv[2], atoi(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "syscalls"))
		return syscalls(atol(argv[2]));
	if (argc == 3 && !strcmp(argv[1], "tcpecho"))
		return tcpecho(atol(argv[2]));
	if (argc == 4 && !strcmp(argv[1], "uring"))
		return uring(argv[2], atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "rstserver"))
		return rstserver(argv[2], atoi(argv[3]));
	if (argc == 5 && !strcmp(argv[1], "dnsserver"))
		return dnsserver(argv[2], atoi(argv[3]), atoi(argv[4]));
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "dnstcp"))
		return dnstcp(argv[2], argv[3], argc == 5 ? atoi(argv[4]) : 0);
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "dnsudp"))
		return dnsudp(argv[2], argv[3], argc == 5 ? atoi(argv[4]) : 0);
	fprintf(stderr, "usage: probe soerror ADDR PORT | probe syscalls MS | probe tcpecho MS"
		" | probe uring ADDR PORT"
		" | probe rstserver ADDR PORT | probe dnsserver ADDR PORT SECS"
		" | probe dnstcp SERVER NAME [PORT] | probe dnsudp SERVER NAME [PORT]\n");
	return 2;
}
