// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* One TCP connect made through io_uring (IORING_OP_CONNECT), never through
 * the connect() syscall: tests/io_uring.rs checks that tcpstate reports
 * its failure with this process. Usage: connect ADDRESS PORT (IPv4).
 * Prints the connect's result (0 or a negative errno) and exits 0. */
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct sockaddr_in to;
	struct io_uring ring;
	int fd, ret, res;

	if (argc != 3) {
		fprintf(stderr, "usage: %s ADDRESS PORT\n", argv[0]);
		return 2;
	}
	memset(&to, 0, sizeof(to));
	to.sin_family = AF_INET;
	to.sin_port = htons((unsigned short)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[1]);
		return 2;
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		perror("socket");
		return 2;
	}
	ret = io_uring_queue_init(4, &ring, 0);
	if (ret < 0) {
		fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-ret));
		return 2;
	}
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&to, sizeof(to));
	ret = io_uring_submit(&ring);
	if (ret != 1) {
		fprintf(stderr, "io_uring_submit: %d\n", ret);
		return 2;
	}
	ret = io_uring_wait_cqe(&ring, &cqe);
	if (ret < 0) {
		fprintf(stderr, "io_uring_wait_cqe: %s\n", strerror(-ret));
		return 2;
	}
	res = cqe->res;
	io_uring_cqe_seen(&ring, cqe);
	printf("%d\n", res);
	io_uring_queue_exit(&ring);
	close(fd);
	return 0;
}
