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
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "soerror"))
		return soerror(argv[2], atoi(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "syscalls"))
		return syscalls(atol(argv[2]));
	fprintf(stderr, "usage: probe soerror ADDR PORT | probe syscalls MS\n");
	return 2;
}
