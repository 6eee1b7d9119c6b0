/* Readiness: a socketpair ping-pong driven by poll and epoll, a pipe driven by select/pselect, timeouts of every
 * wait call, eventfd, timerfd, and km's own descriptors looking closed. Deterministic output, compared between
 * km and a native run by tests/integration/test_net_poll.py. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s: -1 errno %d\n", what, errno);
    else
        printf("%s: %ld\n", what, r);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void ping_pong(void)
{
    int sv[2];
    show("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1122334455667788ull};
    show("epoll_ctl add", epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev));
    char buf[16];
    for (int round = 0; round < 3; round++) {
        write(sv[0], "ping", 4);
        struct pollfd p = {.fd = sv[1], .events = POLLIN | POLLOUT};
        int n = poll(&p, 1, 1000);
        printf("round %d: poll %d revents %#x", round, n, p.revents);
        n = read(sv[1], buf, sizeof buf);
        printf(" got %.*s", n, buf);
        write(sv[1], "pong", 4);
        struct epoll_event out[4];
        memset(out, 0, sizeof out);
        n = epoll_wait(ep, out, 4, 1000);
        printf(" epoll %d events %#x data %#llx", n, out[0].events, (unsigned long long)out[0].data.u64);
        n = read(sv[0], buf, sizeof buf);
        printf(" got %.*s\n", n, buf);
    }
    ev.events = EPOLLOUT;
    show("epoll_ctl mod", epoll_ctl(ep, EPOLL_CTL_MOD, sv[0], &ev));
    struct epoll_event out[2];
    show("epoll_pwait EPOLLOUT", epoll_pwait(ep, out, 2, 0, NULL));
    show("epoll_ctl del", epoll_ctl(ep, EPOLL_CTL_DEL, sv[0], NULL));
    show("epoll_wait empty", epoll_wait(ep, out, 2, 0));
    show("epoll_wait maxevents 0", epoll_wait(ep, out, 0, 0));
    show("epoll_ctl add again", epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev));
    show("epoll_ctl add twice", epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev));
    printf("sizeof(struct epoll_event) %zu\n", sizeof(struct epoll_event));
    close(ep);
    close(sv[0]);
    struct pollfd hup = {.fd = sv[1], .events = POLLIN};
    show("poll after peer close", poll(&hup, 1, 0));
    printf("revents %#x\n", hup.revents & (POLLIN | POLLHUP));
    close(sv[1]);
}

static void selects(void)
{
    int p[2];
    show("pipe", pipe(p));
    fd_set r;
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    struct timeval tv = {0, 0};
    show("select empty", select(p[0] + 1, &r, NULL, NULL, &tv));
    write(p[1], "x", 1);
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    tv.tv_sec = 1;
    show("select ready", select(p[0] + 1, &r, NULL, NULL, &tv));
    printf("FD_ISSET %d\n", FD_ISSET(p[0], &r) != 0);
    fd_set w;
    FD_ZERO(&w);
    FD_SET(p[1], &w);
    struct timespec ts = {1, 0};
    show("pselect writable", pselect(p[1] + 1, NULL, &w, NULL, &ts, NULL));
    char c;
    read(p[0], &c, 1);
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    double t0 = now();
    tv.tv_sec = 0;
    tv.tv_usec = 30000;
    show("select 30ms timeout", select(p[0] + 1, &r, NULL, NULL, &tv));
    printf("waited >= 25ms: %d\n", now() - t0 >= 0.025);
    show("select nfds -1", select(-1, NULL, NULL, NULL, &tv));
    close(p[0]);
    close(p[1]);
}

static void timeouts(void)
{
    double t0 = now();
    show("poll no fds 30ms", poll(NULL, 0, 30));
    printf("waited >= 25ms: %d\n", now() - t0 >= 0.025);
    int p[2];
    pipe(p);
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    struct timespec ts = {0, 20000000};
    t0 = now();
    show("ppoll 20ms", ppoll(&pfd, 1, &ts, NULL));
    printf("waited >= 15ms: %d\n", now() - t0 >= 0.015);
    int ep = epoll_create(1);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = p[0]}, out[1];
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    t0 = now();
    show("epoll_wait 20ms", epoll_wait(ep, out, 1, 20));
    printf("waited >= 15ms: %d\n", now() - t0 >= 0.015);
    t0 = now();
    show("epoll_pwait2 20ms", syscall(SYS_epoll_pwait2, ep, out, 1, &ts, NULL, 8));
    printf("waited >= 15ms: %d\n", now() - t0 >= 0.015);
    write(p[1], "y", 1);
    show("epoll_pwait2 ready", syscall(SYS_epoll_pwait2, ep, out, 1, &ts, NULL, 8));
    printf("data.fd is the pipe: %d\n", out[0].data.fd == p[0]);
    int bad = epoll_create(0);          /* musl does not check size, glibc's kernel call does */
    show("epoll_create 0 fails or gives a descriptor", bad < 0 ? bad : 0);
    if (bad >= 0)
        close(bad);
    close(ep);
    close(p[0]);
    close(p[1]);
}

static void eventfds(void)
{
    int e = eventfd(3, EFD_NONBLOCK | EFD_CLOEXEC);
    uint64_t v = 4;
    show("eventfd write", write(e, &v, 8));
    struct pollfd pfd = {.fd = e, .events = POLLIN | POLLOUT};
    show("poll eventfd", poll(&pfd, 1, 0));
    printf("revents %#x\n", pfd.revents);
    v = 0;
    show("eventfd read", read(e, &v, 8));
    printf("value %llu\n", (unsigned long long)v);
    show("eventfd read empty", read(e, &v, 8));
    close(e);
    e = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    for (int i = 0; i < 3; i++) {
        v = 0;
        long n = read(e, &v, 8);
        printf("semaphore read %ld value %llu\n", n, (unsigned long long)v);
    }
    close(e);
}

static void timerfds(void)
{
    int t = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec spec = {.it_value = {0, 20000000}}, old, cur;
    show("timerfd_settime", timerfd_settime(t, 0, &spec, &old));
    printf("old value %ld.%09ld\n", (long)old.it_value.tv_sec, old.it_value.tv_nsec);
    show("timerfd_gettime", timerfd_gettime(t, &cur));
    printf("armed: %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 20000000);
    uint64_t expirations = 0;
    show("timerfd read (blocks)", read(t, &expirations, 8));
    printf("expirations %llu\n", (unsigned long long)expirations);
    timerfd_gettime(t, &cur);
    printf("disarmed: %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);
    close(t);
}

static void hidden_fds(void)
{
    /* km keeps its own descriptors at 1000 and above: the payload must see them as closed */
    struct pollfd pfd[2] = {{.fd = 1000, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
    show("poll fd 1000", poll(pfd, 2, 5000));
    printf("revents %#x %#x\n", pfd[0].revents, pfd[1].revents);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    show("epoll_ctl add fd 1000", epoll_ctl(ep, EPOLL_CTL_ADD, 1000, &ev));
    show("epoll_wait on fd 1001", epoll_wait(1001, &ev, 1, 0));
    close(ep);
}

static void nonblocking_connect(void)
{
    /* the pattern Go's net.Dial uses: connect → EINPROGRESS, wait for POLLOUT, read SO_ERROR */
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(l, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &len);
    listen(l, 1);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(c, (struct sockaddr *)&a, sizeof a);
    printf("nonblocking connect: 0 or EINPROGRESS: %d\n", r == 0 || errno == EINPROGRESS);
    struct pollfd p = {.fd = c, .events = POLLOUT};
    show("poll POLLOUT", poll(&p, 1, 5000));
    int err = -1;
    len = sizeof err;
    getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len);
    printf("SO_ERROR %d\n", err);
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    show("accept4 on a nonblocking listener, connection pending", s < 0 ? -1 : 0);
    show("accept4 on a nonblocking listener, none pending", accept4(l, NULL, NULL, 0));
    close(s);
    close(c);
    close(l);                                   /* nothing listens on that port now */
    c = socket(AF_INET, SOCK_STREAM, 0);
    show("blocking connect to a closed port", connect(c, (struct sockaddr *)&a, sizeof a));
    close(c);
}

static volatile int handled;
static void on_usr1(int signo) { handled++; }

static int usr1_blocked(void)
{
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    return sigismember(&cur, SIGUSR1);
}

static void sigmasks(void)
{
    /* ppoll/pselect/epoll_pwait replace the signal mask for the wait: a pending blocked signal cuts them short,
     * its handler runs, and the old mask is back afterwards */
    struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t block, empty;
    sigemptyset(&empty);
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, NULL);
    int p[2];
    pipe(p);
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    struct timespec second = {1, 0};
    raise(SIGUSR1);
    printf("pending, blocked: handled %d\n", handled);
    show("ppoll with an empty mask", ppoll(&pfd, 1, &second, &empty));
    printf("handled %d, blocked again %d\n", handled, usr1_blocked());
    raise(SIGUSR1);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    show("pselect with an empty mask", pselect(p[0] + 1, &r, NULL, NULL, &second, &empty));
    printf("handled %d, blocked again %d\n", handled, usr1_blocked());
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    raise(SIGUSR1);
    show("epoll_pwait with an empty mask", epoll_pwait(ep, &ev, 1, 1000, &empty));
    printf("handled %d, blocked again %d\n", handled, usr1_blocked());
    raise(SIGUSR1);
    show("poll while it stays blocked", poll(&pfd, 1, 20));
    show("ppoll with the same mask", ppoll(&pfd, 1, &(struct timespec){0, 20000000}, &block));
    printf("handled %d\n", handled);
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    printf("unblocked: handled %d\n", handled);
    close(ep);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    ping_pong();
    selects();
    timeouts();
    eventfds();
    timerfds();
    hidden_fds();
    sigmasks();
    nonblocking_connect();
    printf("done\n");
    return 0;
}
