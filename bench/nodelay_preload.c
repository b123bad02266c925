// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* nodelay_preload.so — a diagnostic LD_PRELOAD shim for the benchmarks:
 * sets TCP_NODELAY on every TCP socket the process connects. compare.sh
 * uses it (only when asked, --ks-nodelay) to show how much of the key
 * server's latency is Nagle's algorithm meeting delayed ACKs, without
 * changing the key server. */
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	static int (*real)(int, const struct sockaddr *, socklen_t);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "connect");
	if (addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return real(fd, addr, len);
}
