/* Bad guest pointers and km's descriptors as the network and readiness calls see them: EFAULT, EBADF, EMFILE as
 * on Linux. Raw syscall() so that libc wrappers never touch the pointers themselves. Compared between km and a
 * native run by tests/integration/test_net_sockets.py. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define BAD ((void *)8)

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s: -1 errno %d\n", what, errno);
    else
        printf("%s: ok\n", what);
}

static void bad_pointers(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    show("bind bad addr", syscall(SYS_bind, s, BAD, sizeof a));
    show("bind", syscall(SYS_bind, s, &a, sizeof a));
    show("getsockname bad addr", syscall(SYS_getsockname, s, BAD, &len));
    show("getsockname bad addrlen", syscall(SYS_getsockname, s, &a, BAD));
    show("getsockname", syscall(SYS_getsockname, s, &a, &len));
    show("connect bad addr", syscall(SYS_connect, s, BAD, sizeof a));
    show("sendto bad buffer", syscall(SYS_sendto, s, BAD, 10, 0, &a, sizeof a));
    show("sendto bad addr", syscall(SYS_sendto, s, "x", 1, 0, BAD, sizeof a));
    show("sendmsg bad msghdr", syscall(SYS_sendmsg, s, BAD, 0));
    struct msghdr msg = {.msg_name = &a, .msg_namelen = sizeof a, .msg_iov = BAD, .msg_iovlen = 1};
    show("sendmsg bad iov", syscall(SYS_sendmsg, s, &msg, 0));
    show("recvmsg bad msghdr", syscall(SYS_recvmsg, s, BAD, MSG_DONTWAIT));
    int type;
    socklen_t type_len = sizeof type;
    show("getsockopt bad optval", syscall(SYS_getsockopt, s, SOL_SOCKET, SO_TYPE, BAD, &type_len));
    show("getsockopt bad optlen", syscall(SYS_getsockopt, s, SOL_SOCKET, SO_TYPE, &type, BAD));
    show("setsockopt bad optval", syscall(SYS_setsockopt, s, SOL_SOCKET, SO_RCVBUF, BAD, sizeof(int)));
    show("socketpair bad sv", syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, BAD));
    show("sendto self", syscall(SYS_sendto, s, "data", 4, 0, &a, sizeof a));
    show("recvfrom bad buffer", syscall(SYS_recvfrom, s, BAD, 10, 0, NULL, NULL));
    close(s);

    show("poll bad fds", syscall(SYS_poll, BAD, 1, 0));
    fd_set r;
    FD_ZERO(&r);
    show("select bad set", syscall(SYS_select, 3, BAD, NULL, NULL, NULL));
    struct timeval tv = {0, 0};
    show("select bad timeout", syscall(SYS_select, 1, &r, NULL, NULL, BAD));
    show("select ok", syscall(SYS_select, 1, &r, NULL, NULL, &tv));
    int ep = epoll_create1(0), e = eventfd(1, 0);
    show("epoll_ctl bad event", syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, e, BAD));
    struct epoll_event ev = {.events = EPOLLIN};
    show("epoll_ctl", syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, e, &ev));
    show("epoll_wait bad events (one ready)", syscall(SYS_epoll_wait, ep, BAD, 1, 0));
    int t = timerfd_create(CLOCK_MONOTONIC, 0);
    show("timerfd_settime bad value", syscall(SYS_timerfd_settime, t, 0, BAD, NULL));
    show("timerfd_gettime bad value", syscall(SYS_timerfd_gettime, t, BAD));
    close(t);
    close(e);
    close(ep);
}

static void km_descriptors(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    show("getsockname fd 1000", syscall(SYS_getsockname, 1000, &a, &len));
    show("connect fd 1001", syscall(SYS_connect, 1001, &a, sizeof a));
    show("sendto fd 1002", syscall(SYS_sendto, 1002, "x", 1, 0, NULL, 0));
    show("recvfrom fd 1000", syscall(SYS_recvfrom, 1000, &a, 1, MSG_DONTWAIT, NULL, NULL));
    show("setsockopt fd 1000", syscall(SYS_setsockopt, 1000, SOL_SOCKET, SO_RCVBUF, &len, sizeof len));
    show("shutdown fd 1000", syscall(SYS_shutdown, 1000, SHUT_RDWR));
    show("accept fd 1000", syscall(SYS_accept4, 1000, NULL, NULL, SOCK_NONBLOCK));
    show("timerfd_gettime fd 1000", syscall(SYS_timerfd_gettime, 1000, &a));
}

static void descriptor_limit(void)
{
    /* km answers 1000 for RLIMIT_NOFILE; natively the same limit is set here. New descriptors that would land in
     * km's range are closed and answered EMFILE. */
    struct rlimit lim = {1000, 1000};
    setrlimit(RLIMIT_NOFILE, &lim);
    int last = -1, fd;
    while ((fd = dup(0)) >= 0)
        last = fd;
    printf("dup stops with errno %d, last %d\n", errno, last);
    show("socket at the limit", socket(AF_INET, SOCK_STREAM, 0));
    show("eventfd at the limit", eventfd(0, 0));
    show("epoll_create1 at the limit", epoll_create1(0));
    show("timerfd_create at the limit", timerfd_create(CLOCK_MONOTONIC, 0));
    close(last);
    int sv[2];
    show("socketpair with one free", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    int s = socket(AF_INET, SOCK_STREAM, 0);
    printf("socket with one free: %d\n", s);
    for (fd = 3; fd <= last; fd++)
        close(fd);
    show("socket after closing", s = socket(AF_INET, SOCK_STREAM, 0));
    close(s);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    bad_pointers();
    km_descriptors();
    descriptor_limit();
    printf("done\n");
    return 0;
}
