/* Blocking network calls block only their own thread: a pthread TCP server and client, waits woken from another
 * thread, and blocked calls cut by a signal (EINTR for poll even under SA_RESTART, restart for recv with
 * SA_RESTART, EINTR without it or when the socket has a timeout). Compared between km and a native run by
 * tests/integration/test_net_threads.py. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int listener;
static struct sockaddr_in server_addr;
static volatile int handled;

static void *server(void *arg)
{
    int c = accept(listener, NULL, NULL);       /* blocks while the client thread runs */
    char buf[32] = {0};
    int n = recv(c, buf, sizeof buf - 1, 0);
    char reply[64];
    int len = snprintf(reply, sizeof reply, "reply to '%.*s'", n, buf);
    send(c, reply, len, 0);
    close(c);
    return NULL;
}

static void *client(void *arg)
{
    static char answer[64];
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&server_addr, sizeof server_addr) < 0)
        snprintf(answer, sizeof answer, "connect: errno %d", errno);
    else {
        send(s, "request", 7, 0);
        int n = recv(s, answer, sizeof answer - 1, MSG_WAITALL);
        answer[n > 0 ? n : 0] = 0;
    }
    close(s);
    return answer;
}

static void tcp_threads(void)
{
    listener = socket(AF_INET, SOCK_STREAM, 0);
    server_addr.sin_family = AF_INET;
    server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener, (struct sockaddr *)&server_addr, sizeof server_addr);
    socklen_t len = sizeof server_addr;
    getsockname(listener, (struct sockaddr *)&server_addr, &len);
    listen(listener, 1);
    pthread_t st, ct;
    pthread_create(&st, NULL, server, NULL);
    usleep(50000);                              /* let the server block in accept first */
    pthread_create(&ct, NULL, client, NULL);
    void *answer;
    pthread_join(ct, &answer);
    pthread_join(st, NULL);
    printf("client got \"%s\"\n", (char *)answer);
    close(listener);
}

static int ep, efd;

static void *epoll_waiter(void *arg)
{
    struct epoll_event ev;
    int n = epoll_wait(ep, &ev, 1, -1);
    uint64_t v = 0;
    read(efd, &v, 8);
    printf("epoll_wait woke: %d, eventfd value %llu\n", n, (unsigned long long)v);
    return NULL;
}

static void wake_from_another_thread(void)
{
    ep = epoll_create1(0);
    efd = eventfd(0, 0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
    pthread_t t;
    pthread_create(&t, NULL, epoll_waiter, NULL);
    usleep(50000);
    uint64_t v = 42;
    write(efd, &v, 8);
    pthread_join(t, NULL);
    close(ep);
    close(efd);
}

static void on_usr1(int signo) { handled++; }

static int sv[2], ready[2];

static void about_to_block(void)
{
    write(ready[1], "r", 1);
}

static void *poller(void *arg)
{
    struct pollfd p = {.fd = sv[1], .events = POLLIN};
    about_to_block();
    int n = poll(&p, 1, 20000);                 /* 0 (after 20 s) would mean the signal came too early */
    printf("poll cut by a signal: %d errno %d\n", n, n < 0 ? errno : 0);
    return NULL;
}

static void *receiver(void *arg)
{
    char buf[16] = {0};
    struct timeval limit = {20, 0};             /* a socket timeout: never restarted (signal(7)) */
    if (arg)
        setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    about_to_block();
    int n = recv(sv[1], buf, sizeof buf - 1, 0);
    printf("recv after the signal: %d errno %d data '%s'\n", n, n < 0 ? errno : 0, n > 0 ? buf : "");
    return NULL;
}

static void signal_cuts(void *(*body)(void *), void *arg, int restart, int send_data)
{
    struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = restart ? SA_RESTART : 0};
    sigaction(SIGUSR1, &sa, NULL);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pipe(ready);
    handled = 0;
    pthread_t t;
    pthread_create(&t, NULL, body, arg);
    char r;
    read(ready[0], &r, 1);
    usleep(100000);                             /* a few syscalls from blocking: let it get there */
    pthread_kill(t, SIGUSR1);
    if (send_data) {
        usleep(50000);
        write(sv[0], "late", 4);
    }
    pthread_join(t, NULL);
    printf("handler ran %d time(s)\n", handled);
    close(sv[0]);
    close(sv[1]);
    close(ready[0]);
    close(ready[1]);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    tcp_threads();
    wake_from_another_thread();
    signal_cuts(poller, NULL, 1, 0);
    signal_cuts(receiver, NULL, 1, 1);          /* "late" is sent anyway: no hang if the signal came early */
    signal_cuts(receiver, NULL, 0, 0);
    signal_cuts(receiver, "SO_RCVTIMEO", 1, 0);
    printf("done\n");
    return 0;
}
