/* fuzz_isolation.c - what a payload must not reach of km: its descriptors (1000 and up), its /proc view, the
 * vDSO/vvar pages for writing. usage: fuzz_isolation fds|mem ("fds" compared with a native run under
 * RLIMIT_NOFILE 1000; "mem" is km's own answer: /proc/self/mem would be km's memory). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%-44s %s\n", what, r < 0 ? strerror(errno) : r == 0 ? "0" : "ok");
}

static unsigned long mapping(const char *name) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long start = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, name)) {
            start = strtoul(line, NULL, 16);
            break;
        }
    if (f)
        fclose(f);
    return start;
}

static int fds(void) {
    struct rlimit files = {1000, 1000};
    setrlimit(RLIMIT_NOFILE, &files);
    char buf[64];
    show("dup2(1, 1000)", dup2(1, 1000));
    show("dup3(1, 1003)", dup3(1, 1003, 0));
    show("fcntl(1000, F_GETFD)", fcntl(1000, F_GETFD));
    show("read(1001)", read(1001, buf, 1));
    show("close(1002)", close(1002));
    show("open /proc/self/fd/1000", open("/proc/self/fd/1000", O_RDONLY));
    show("open /proc/self/fdinfo/1001", open("/proc/self/fdinfo/1001", O_RDONLY));
    show("open /proc/self/../self/fd/1000", open("/proc/self/../self/fd/1000", O_RDONLY));
    show("readlink /proc/self/fd/1000", readlink("/proc/self/fd/1000", buf, sizeof buf));
    int high = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));)
        high += atoi(e->d_name) >= 1000;
    if (d)
        closedir(d);
    printf("%-44s %d\n", "/proc/self/fd entries >= 1000", high);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    char control[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {"x", 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS, c->cmsg_len = CMSG_LEN(sizeof(int));
    *(int *)CMSG_DATA(c) = 1000;
    show("sendmsg SCM_RIGHTS 1000", sendmsg(sv[0], &msg, 0));
    int zero = open("/dev/zero", O_RDONLY);
    unsigned long vdso = getauxval(AT_SYSINFO_EHDR), vvar = mapping("[vvar]");
    show("read into the vDSO", read(zero, (void *)vdso, 8));
    show("read into [vvar]", vvar ? read(zero, (void *)vvar, 8) : (errno = EFAULT, -1));
    show("close_range(3, ~0)", syscall(SYS_close_range, 3, ~0U, 0));
    printf("alive after close_range\n");
    return 0;
}

static int mem(void) {
    static long secret = 0x1122334455667788L;
    int fd = open("/proc/self/mem", O_RDWR);
    show("open /proc/self/mem", fd);
    show("open /proc/self/pagemap", open("/proc/self/pagemap", O_RDONLY));
    show("open /proc/thread-self/mem", open("/proc/thread-self/mem", O_RDONLY));
    int proc = open("/proc", O_RDONLY | O_DIRECTORY);
    show("openat(/proc, self/mem)", openat(proc, "self/mem", O_RDONLY));
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/mem", getpid(), gettid());
    show("open /proc/PID/task/TID/mem", open(path, O_RDONLY));
    long value = 0;
    if (fd >= 0)
        pread(fd, &value, sizeof value, (off_t)&secret);
    printf("%-44s %s\n", "the secret through it", value == secret ? "read" : "not read");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && !strcmp(argv[1], "fds"))
        return fds();
    if (argc > 1 && !strcmp(argv[1], "mem"))
        return mem();
    fprintf(stderr, "usage: %s fds|mem\n", argv[0]);
    return 2;
}
