/*
 * Fault injection for tests, loaded with LD_PRELOAD (never part of the
 * addon): sendmmsg fails with EIO on the first message that carries
 * UDP_SEGMENT, as kernels before 6.11 do for a route whose device has no
 * checksum offload, and as any kernel does over xfrm. Messages before it
 * are sent, so the caller sees the same partial result the kernel gives.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#define UDP_SEGMENT_OPT 103

int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	static int (*real)(int, struct mmsghdr *, unsigned int, int);
	unsigned int i;

	if (!real)
		real = (int (*)(int, struct mmsghdr *, unsigned int, int))dlsym(RTLD_NEXT, "sendmmsg");
	for (i = 0; i < n; i++) {
		struct msghdr *h = &v[i].msg_hdr;
		struct cmsghdr *c;

		for (c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
			if (c->cmsg_level != SOL_UDP || c->cmsg_type != UDP_SEGMENT_OPT)
				continue;
			if (i > 0)
				return real(fd, v, i, flags);
			errno = EIO;
			return -1;
		}
	}
	return real(fd, v, n, flags);
}
