/* signalfd(2): pending signals of a mask read as struct signalfd_siginfo, with poll, select and epoll readiness,
   SFD_NONBLOCK/SFD_CLOEXEC, a mask replaced in place, reads that block until a signal comes, SIGCHLD and fork.
   `sig_signalfd.km <test>`; the output is deterministic and compared with a native run. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static sigset_t set_of(int a, int b) {
    sigset_t s;
    sigemptyset(&s);
    if (a)
        sigaddset(&s, a);
    if (b)
        sigaddset(&s, b);
    return s;
}

static void block(int a, int b) {
    sigset_t s = set_of(a, b);
    sigprocmask(SIG_BLOCK, &s, NULL);
}

static int readable(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, 0);
    return n == 1 ? p.revents : -n;
}

static void show(const char *what, const struct signalfd_siginfo *si) {
    printf("%s: signo %u code %d pid ok %d uid ok %d int %d ptr %llu status %d\n", what, si->ssi_signo,
           si->ssi_code, si->ssi_pid == (unsigned)getpid(), si->ssi_uid == (unsigned)getuid(), si->ssi_int,
           (unsigned long long)si->ssi_ptr, si->ssi_status);
}

static void read_one(int fd, const char *what) {
    struct signalfd_siginfo si;
    ssize_t n = read(fd, &si, sizeof si);
    if (n != (ssize_t)sizeof si) {
        printf("%s: read %zd %s\n", what, n, n < 0 ? strerror(errno) : "");
        return;
    }
    show(what, &si);
}

static void report(const char *what, long result) {
    int err = errno;
    printf("%s %ld %s\n", what, result, result < 0 ? strerror(err) : "");
}

static volatile sig_atomic_t alarms;

static void on_alarm(int signo) {
    (void)signo;
    alarms++;
}

static void *send_later(void *arg) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    kill(getpid(), (int)(long)arg);
    return NULL;
}

static void basics(void) {
    block(SIGUSR1, SIGUSR2);
    sigset_t mask = set_of(SIGUSR1, SIGUSR2);
    int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    printf("signalfd >= 0 %d cloexec %d nonblock %d rdwr %d\n", fd >= 0, !!(fcntl(fd, F_GETFD) & FD_CLOEXEC),
           !!(fcntl(fd, F_GETFL) & O_NONBLOCK), (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR);
    char link[64] = "", path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    printf("link %s\n", readlink(path, link, sizeof link - 1) > 0 ? link : strerror(errno));
    struct signalfd_siginfo si[4];
    report("empty read", read(fd, si, sizeof si));
    report("short read", read(fd, si, sizeof si[0] - 1));
    ssize_t n;
    printf("poll before %d\n", readable(fd));
    kill(getpid(), SIGUSR1);
    printf("poll after kill %d\n", readable(fd));
    read_one(fd, "kill");
    printf("poll after read %d\n", readable(fd));

    union sigval v = {.sival_int = 42};
    sigqueue(getpid(), SIGUSR2, v);
    read_one(fd, "sigqueue");

    raise(SIGUSR2);
    kill(getpid(), SIGUSR1);
    n = read(fd, si, sizeof si);
    printf("two at once: %zd bytes\n", n);
    for (int i = 0; i < n / (ssize_t)sizeof si[0]; i++)
        show("  one", &si[i]);

    /* the mask of an existing signalfd is replaced: USR1 stays pending, unread */
    sigset_t only2 = set_of(SIGUSR2, 0);
    printf("update returns the fd %d\n", signalfd(fd, &only2, 0) == fd);
    kill(getpid(), SIGUSR1);
    sigset_t pending;
    sigpending(&pending);
    int ready = readable(fd);
    n = read(fd, si, sizeof si);
    int err = errno;
    printf("outside the mask: poll %d read %zd %s, pending %d\n", ready, n, strerror(err),
           sigismember(&pending, SIGUSR1));
    sigset_t only1 = set_of(SIGUSR1, 0);
    signalfd(fd, &only1, 0);
    printf("back in the mask: poll %d\n", readable(fd));
    read_one(fd, "updated");

    /* the same descriptor through select and epoll */
    kill(getpid(), SIGUSR1);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(fd, &rd);
    struct timeval tv = {0, 0};
    printf("select %d isset %d\n", select(fd + 1, &rd, NULL, NULL, &tv), FD_ISSET(fd, &rd));
    read_one(fd, "select");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7}, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    printf("epoll empty %d\n", epoll_wait(ep, &out, 1, 0));
    kill(getpid(), SIGUSR1);
    int k = epoll_wait(ep, &out, 1, 1000);
    printf("epoll %d events %#x data %llu\n", k, out.events, (unsigned long long)out.data.u64);
    read_one(fd, "epoll");

    /* readv spreads the records over its buffers; a signalfd cannot be written */
    signalfd(fd, &mask, 0);
    raise(SIGUSR1);
    kill(getpid(), SIGUSR2);
    struct iovec iov[2] = {{&si[0], sizeof si[0]}, {&si[1], sizeof si[1]}};
    n = readv(fd, iov, 2);
    printf("readv %zd: %u %u\n", n, si[0].ssi_signo, si[1].ssi_signo);
    report("write", write(fd, si, sizeof si[0]));

    /* made and closed again and again: nothing runs out */
    int made = 0;
    for (int i = 0; i < 3000; i++) {
        int f = signalfd(-1, &mask, SFD_CLOEXEC);
        made += f >= 0;
        close(f);
    }
    printf("made and closed %d\n", made);

    /* a dup reads the same signalfd */
    int copy = dup(fd);
    kill(getpid(), SIGUSR1);
    read_one(copy, "dup");
    close(copy);
    close(ep);
    close(fd);
}

static void errors(void) {
    sigset_t mask = set_of(SIGUSR1, 0);
    int null = open("/dev/null", O_RDONLY);
    report("bad size", syscall(SYS_signalfd4, -1, &mask, 4, 0));
    report("bad flags", syscall(SYS_signalfd4, -1, &mask, 8, 1));
    report("not a signalfd", signalfd(null, &mask, 0));
    report("closed fd", signalfd(900, &mask, 0));
    report("bad mask", syscall(SYS_signalfd4, -1, (void *)8, 8, 0));
    report("SIGKILL alone", syscall(SYS_signalfd4, -1, &(sigset_t){{1UL << (SIGKILL - 1)}}, 8, 0) >= 0);
}

static void blocking(void) {
    block(SIGUSR1, SIGUSR2);
    sigset_t mask = set_of(SIGUSR1, SIGUSR2);
    int fd = signalfd(-1, &mask, 0);
    pthread_t t;
    pthread_create(&t, NULL, send_later, (void *)(long)SIGUSR2);
    read_one(fd, "blocking read");
    pthread_join(t, NULL);

    /* a handled signal outside the mask cuts the wait short; under SA_RESTART the read goes on */
    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval soon = {.it_value = {0, 20 * 1000}};
    setitimer(ITIMER_REAL, &soon, NULL);
    pthread_create(&t, NULL, send_later, (void *)(long)SIGUSR1);
    read_one(fd, "restarted read");
    printf("restarted read: handler ran %d\n", alarms);
    pthread_join(t, NULL);

    /* SIGCHLD of a child's exit, read instead of handled */
    block(SIGCHLD, 0);
    sigset_t chld = set_of(SIGCHLD, 0);
    int cfd = signalfd(-1, &chld, SFD_CLOEXEC);
    pid_t child = fork();
    if (child == 0)
        _exit(7);
    struct signalfd_siginfo si;
    ssize_t n = read(cfd, &si, sizeof si);
    printf("sigchld: %zd signo %u code %d (CLD_EXITED %d) status %d pid is the child's %d\n", n, si.ssi_signo,
           si.ssi_code, CLD_EXITED, si.ssi_status, si.ssi_pid == (unsigned)child);
    waitpid(child, NULL, 0);

    /* after fork, the child's copy reads the child's signals */
    child = fork();
    if (child == 0) {
        printf("child: poll %d\n", readable(fd));
        kill(getpid(), SIGUSR1);
        read_one(fd, "child");
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    printf("parent after child: poll %d\n", readable(fd));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *test = argc > 1 ? argv[1] : "";
    if (!strcmp(test, "basics"))
        basics();
    else if (!strcmp(test, "errors"))
        errors();
    else if (!strcmp(test, "blocking"))
        blocking();
    else
        return 2;
    return 0;
}
