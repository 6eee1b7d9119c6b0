/* Descriptors across a snapshot the payload takes of itself: a pipe holding bytes, an eventfd's counter, an epoll
 * instance watching it, a disarmed timerfd, a file (argv[1], which the test removes before resuming), and both ends of a TCP connection to its own listener; the
 * resumed copy reports what each gives. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <km/snapshot.h>

static const char *outcome(ssize_t n, const char *data)
{
    static char text[64];
    if (n < 0)
        return strerrorname_np(errno);
    snprintf(text, sizeof text, "%.*s", (int)n, data);
    return text;
}

int main(int argc, char **argv)
{
    int p[2], one = 1;
    setvbuf(stdout, NULL, _IONBF, 0);
    pipe(p);
    write(p[1], "pipe bytes", 10);
    int ev = eventfd(5, 0);
    int ep = epoll_create1(0), timer = timerfd_create(CLOCK_MONOTONIC, 0);
    struct epoll_event watch = {.events = EPOLLIN, .data.u64 = 77}, ready = {0};
    epoll_ctl(ep, EPOLL_CTL_ADD, ev, &watch);
    int file = open(argv[1], O_RDONLY);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t size = sizeof addr;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bind(listener, (struct sockaddr *)&addr, sizeof addr);
    listen(listener, 1);
    getsockname(listener, (struct sockaddr *)&addr, &size);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    connect(client, (struct sockaddr *)&addr, sizeof addr);
    int server = accept(listener, NULL, NULL);
    if (km_snapshot_take("fds", "descriptors", 0) != KM_SNAPSHOT_RESUMED)
        return 1;
    char buf[64];
    uint64_t count = 0;
    ssize_t n = read(p[0], buf, sizeof buf);
    printf("pipe: %s\n", outcome(n, buf));
    int nready = epoll_wait(ep, &ready, 1, 0);
    printf("epoll: %d ready, data %llu\n", nready, (unsigned long long)ready.data.u64);
    struct itimerspec in_1ms = {.it_value = {0, 1000000}};
    uint64_t expirations = 0;
    timerfd_settime(timer, 0, &in_1ms, NULL);
    printf("timerfd: %s\n", read(timer, &expirations, 8) == 8 && expirations == 1 ? "fired" : strerrorname_np(errno));
    printf("eventfd: %s\n", read(ev, &count, 8) == 8 ? (count == 5 ? "5" : "other") : strerrorname_np(errno));
    n = read(file, buf, sizeof buf);
    printf("file: %s\n", outcome(n, buf));
    n = read(client, buf, sizeof buf);
    printf("connection: %s\n", n == 0 ? "end of file" : outcome(n, buf));
    n = write(server, "x", 1);
    printf("other end: %s\n", outcome(n, "x"));
    fcntl(listener, F_SETFL, O_NONBLOCK);                   /* listening, nobody waiting: EAGAIN (else EINVAL) */
    printf("listener: %s\n", accept(listener, NULL, NULL) < 0 ? strerrorname_np(errno) : "accepted");
    return 0;
}
