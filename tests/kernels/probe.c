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
 *   probe uring ADDR PORT     one connect through io_uring
 *                             (IORING_OP_CONNECT), never the connect()
 *                             syscall; prints its result. Raw syscalls, so
 *                             no liburing is needed for either
 *                             architecture. Exits 3 where the kernel has
 *                             no io_uring (or refuses it).
 *   probe rstserver ADDR PORT listen, accept one connection, and close it
 *                             with SO_LINGER 0: the kernel resets it (an
 *                             RST, not a FIN). Gives up after 5 s.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "soerror"))
		return soerror(argv[2], atoi(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "syscalls"))
		return syscalls(atol(argv[2]));
	if (argc == 4 && !strcmp(argv[1], "uring"))
		return uring(argv[2], atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "rstserver"))
		return rstserver(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: probe soerror ADDR PORT | probe syscalls MS | probe uring ADDR PORT"
		" | probe rstserver ADDR PORT\n");
	return 2;
}
