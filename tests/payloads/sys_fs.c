/* sys_fs.c - file syscalls, each through syscall(2) where libc might pick another call; prints what it sees.
 * Run with the working directory set to an empty scratch directory; stdin may be a pty (ioctl section).
 * Lines starting with '~' depend on the run (paths, inode numbers) and are checked by the test, not diffed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#define CHECK(name, expr) do { long r_ = (long)(expr); int e_ = errno; \
    printf("%s = %ld%s%s\n", name, r_, r_ < 0 ? " " : "", r_ < 0 ? errname(e_) : ""); } while (0)

static const char *errname(int e) {
    switch (e) {
    case EBADF: return "EBADF"; case ENOENT: return "ENOENT"; case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL"; case ENOTDIR: return "ENOTDIR"; case ERANGE: return "ERANGE";
    case EFAULT: return "EFAULT"; case ENOTTY: return "ENOTTY"; case EACCES: return "EACCES";
    case ENOSYS: return "ENOSYS"; case ENOMEM: return "ENOMEM"; case EPERM: return "EPERM";
    default: return "E?";
    }
}

struct linux_dirent64 { unsigned long d_ino; long d_off; unsigned short d_reclen; unsigned char d_type; char d_name[]; };

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void files(void) {
    char buf[64] = {0};
    int fd = syscall(SYS_openat, AT_FDCWD, "a.txt", O_CREAT | O_RDWR | O_TRUNC, 0640);
    printf("openat fd>=3: %d\n", fd >= 3);
    CHECK("write", syscall(SYS_write, fd, "hello world\n", 12));
    struct iovec wv[2] = {{"abc", 3}, {"defg\n", 5}};
    CHECK("writev", syscall(SYS_writev, fd, wv, 2));
    CHECK("pwrite64", syscall(SYS_pwrite64, fd, "HELLO", 5, 0));
    CHECK("lseek SEEK_CUR", syscall(SYS_lseek, fd, 0, SEEK_CUR));
    CHECK("lseek SEEK_SET", syscall(SYS_lseek, fd, 6, SEEK_SET));
    CHECK("read", syscall(SYS_read, fd, buf, 5));
    printf("read got [%s]\n", buf);
    memset(buf, 0, sizeof buf);
    CHECK("pread64", syscall(SYS_pread64, fd, buf, 8, 12));
    printf("pread got [%.8s]\n", buf);
    char x[4] = {0}, y[32] = {0};
    struct iovec rv[2] = {{x, 3}, {y, 31}};
    CHECK("lseek SEEK_SET 0", syscall(SYS_lseek, fd, 0, SEEK_SET));
    CHECK("readv", syscall(SYS_readv, fd, rv, 2));
    printf("readv got [%s][%s]", x, y);
    CHECK("read at EOF", syscall(SYS_read, fd, buf, 5));
    CHECK("lseek SEEK_END", syscall(SYS_lseek, fd, 0, SEEK_END));
    CHECK("lseek bad whence", syscall(SYS_lseek, fd, 0, 42));

    struct stat st;
    CHECK("fstat", syscall(SYS_fstat, fd, &st));
    printf("fstat size=%ld mode=%o regular=%d\n", (long)st.st_size, st.st_mode & 0777, S_ISREG(st.st_mode));
    struct stat st2;
    CHECK("newfstatat", syscall(SYS_newfstatat, AT_FDCWD, "a.txt", &st2, 0));
    printf("same inode: %d\n", st.st_ino == st2.st_ino);
    CHECK("newfstatat missing", syscall(SYS_newfstatat, AT_FDCWD, "nope", &st2, 0));
    CHECK("newfstatat AT_EMPTY_PATH", syscall(SYS_newfstatat, fd, "", &st2, AT_EMPTY_PATH));
    unsigned char sx[256];     /* struct statx (include/uapi/linux/stat.h): stx_mode u16 at 28, stx_size u64 at 40 */
    CHECK("statx", syscall(SYS_statx, AT_FDCWD, "a.txt", 0, 0x2 | 0x200 /* STATX_MODE | STATX_SIZE */, sx));
    printf("statx size=%lu mode=%o\n", *(unsigned long *)(sx + 40), *(unsigned short *)(sx + 28) & 0777);

    CHECK("fcntl F_GETFD", syscall(SYS_fcntl, fd, F_GETFD));
    CHECK("fcntl F_SETFD", syscall(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC));
    CHECK("fcntl F_GETFD again", syscall(SYS_fcntl, fd, F_GETFD));
    CHECK("fcntl F_GETFL & O_ACCMODE", syscall(SYS_fcntl, fd, F_GETFL) & O_ACCMODE);
    int d = syscall(SYS_fcntl, fd, F_DUPFD, 50);
    printf("F_DUPFD 50 -> %d\n", d);
    CHECK("close dupfd", syscall(SYS_close, d));
    int d1 = syscall(SYS_dup, fd);
    printf("dup > fd: %d\n", d1 > fd);
    CHECK("dup2 to 40", syscall(SYS_dup2, fd, 40));
    CHECK("dup2 same", syscall(SYS_dup2, 40, 40));
    CHECK("dup3 to 41", syscall(SYS_dup3, fd, 41, O_CLOEXEC));
    CHECK("dup3 same", syscall(SYS_dup3, 41, 41, 0));
    CHECK("fcntl F_GETFD 41", syscall(SYS_fcntl, 41, F_GETFD));
    CHECK("close 40", syscall(SYS_close, 40));
    CHECK("close 40 again", syscall(SYS_close, 40));
    CHECK("close 41", syscall(SYS_close, 41));
    CHECK("close dup", syscall(SYS_close, d1));
    CHECK("close bad", syscall(SYS_close, 999));
    CHECK("read bad fd", syscall(SYS_read, -5, buf, 1));

    int out = syscall(SYS_openat, AT_FDCWD, "copy.txt", O_CREAT | O_WRONLY | O_TRUNC, 0600);
    off_t off = 6;
    CHECK("sendfile with offset", syscall(SYS_sendfile, out, fd, &off, 5));
    printf("offset after: %ld\n", (long)off);
    CHECK("lseek 0", syscall(SYS_lseek, fd, 0, SEEK_SET));
    CHECK("sendfile", syscall(SYS_sendfile, out, fd, NULL, 100));
    CHECK("close copy", syscall(SYS_close, out));
    CHECK("close a", syscall(SYS_close, fd));
    CHECK("stat copy size", (stat("copy.txt", &st), st.st_size));
}

static void dirs(void) {
    char cwd[PATH_MAX];
    CHECK("mkdir", syscall(SYS_mkdir, "sub", 0755));
    CHECK("mkdir again", syscall(SYS_mkdir, "sub", 0755));
    CHECK("mkdirat", syscall(SYS_mkdirat, AT_FDCWD, "sub/deeper", 0700));
    CHECK("rename", syscall(SYS_rename, "copy.txt", "sub/moved.txt"));
    CHECK("rename missing", syscall(SYS_rename, "copy.txt", "sub/x"));
    CHECK("renameat", syscall(SYS_renameat, AT_FDCWD, "sub/moved.txt", AT_FDCWD, "sub/m2.txt"));
    CHECK("access a.txt R_OK", syscall(SYS_access, "a.txt", R_OK));
    CHECK("access missing", syscall(SYS_access, "missing", F_OK));
    CHECK("faccessat", syscall(SYS_faccessat, AT_FDCWD, "sub/m2.txt", W_OK));
    CHECK("symlink", syscall(SYS_symlink, "a.txt", "link"));
    char target[64] = {0};
    CHECK("readlink link", syscall(SYS_readlink, "link", target, sizeof target));
    printf("readlink got [%s]\n", target);
    CHECK("readlink not a link", syscall(SYS_readlink, "a.txt", target, sizeof target));
    CHECK("readlink size 0", syscall(SYS_readlink, "link", target, 0));
    CHECK("readlink /proc/self/exe size 0", syscall(SYS_readlink, "/proc/self/exe", target, 0));
    CHECK("readlink /proc/self/exe size 4", syscall(SYS_readlink, "/proc/self/exe", target, 4));
    long n = syscall(SYS_getcwd, cwd, sizeof cwd);
    printf("~getcwd %ld %s\n", n, cwd);
    CHECK("getcwd too small", syscall(SYS_getcwd, cwd, 1));
    CHECK("chdir", syscall(SYS_chdir, "sub"));
    char cwd2[PATH_MAX];
    syscall(SYS_getcwd, cwd2, sizeof cwd2);
    printf("chdir moved into sub: %d\n", strlen(cwd2) == strlen(cwd) + 4 && !strcmp(cwd2 + strlen(cwd), "/sub"));
    CHECK("open ../a.txt", syscall(SYS_openat, AT_FDCWD, "../a.txt", O_RDONLY) >= 3);
    int dfd = syscall(SYS_openat, AT_FDCWD, ".", O_RDONLY | O_DIRECTORY);
    char dbuf[4096];
    char *names[32];
    int count = 0;
    long got;
    while ((got = syscall(SYS_getdents64, dfd, dbuf, sizeof dbuf)) > 0)
        for (long pos = 0; pos < got; ) {
            struct linux_dirent64 *e = (void *)(dbuf + pos);
            if (count < 32) names[count++] = strdup(e->d_name);
            pos += e->d_reclen;
        }
    printf("getdents64 last = %ld\n", got);
    qsort(names, count, sizeof *names, cmp);
    for (int i = 0; i < count; i++) printf("entry %s\n", names[i]);
    CHECK("getdents64 on a file", syscall(SYS_getdents64, 0 + syscall(SYS_openat, AT_FDCWD, "m2.txt", O_RDONLY), dbuf, sizeof dbuf));
    CHECK("unlink", syscall(SYS_unlink, "m2.txt"));
    CHECK("unlink again", syscall(SYS_unlink, "m2.txt"));
    CHECK("unlinkat dir", syscall(SYS_unlinkat, AT_FDCWD, "deeper", AT_REMOVEDIR));
    CHECK("chdir ..", syscall(SYS_chdir, ".."));
    CHECK("rmdir", syscall(SYS_rmdir, "sub"));
    CHECK("chdir missing", syscall(SYS_chdir, "sub"));
    static char long_path[5000];
    memset(long_path, 'p', sizeof long_path - 1);
    long r = syscall(SYS_openat, AT_FDCWD, long_path, O_RDONLY);
    printf("openat 4999-byte path = %ld %s\n", r, r < 0 && errno == ENAMETOOLONG ? "ENAMETOOLONG" : "?");
}

static void pipes_and_tty(void) {
    int p[2];
    CHECK("pipe2", syscall(SYS_pipe2, p, O_CLOEXEC));
    CHECK("write pipe", syscall(SYS_write, p[1], "through the pipe", 16));
    char buf[32] = {0};
    CHECK("read pipe", syscall(SYS_read, p[0], buf, sizeof buf));
    printf("pipe got [%s]\n", buf);
    CHECK("fcntl pipe CLOEXEC", syscall(SYS_fcntl, p[0], F_GETFD));
    CHECK("close w", syscall(SYS_close, p[1]));
    CHECK("read eof", syscall(SYS_read, p[0], buf, sizeof buf));
    CHECK("close r", syscall(SYS_close, p[0]));
    struct termios t;
    struct winsize ws = {0};
    long r = syscall(SYS_ioctl, 0, TCGETS, &t);
    printf("TCGETS stdin = %ld%s\n", r, r < 0 ? (errno == ENOTTY ? " ENOTTY" : " ?") : "");
    r = syscall(SYS_ioctl, 0, TIOCGWINSZ, &ws);
    printf("TIOCGWINSZ stdin = %ld rows=%d cols=%d\n", r, ws.ws_row, ws.ws_col);
    int fd = syscall(SYS_openat, AT_FDCWD, "a.txt", O_RDONLY);
    r = syscall(SYS_ioctl, fd, TCGETS, &t);
    printf("TCGETS file = %ld%s\n", r, r < 0 && errno == ENOTTY ? " ENOTTY" : "");
    syscall(SYS_close, fd);
}

static void self_exe(const char *argv0) {
    char exe[PATH_MAX] = {0}, want[PATH_MAX];
    long n = syscall(SYS_readlink, "/proc/self/exe", exe, sizeof exe - 1);
    realpath(argv0, want);
    printf("readlink /proc/self/exe is the program: %d\n", n > 0 && !strcmp(exe, want));
    if (n <= 0 || strcmp(exe, want)) printf("~exe %s want %s\n", exe, want);
}

/* write to a pipe with no reader: SIGPIPE kills (status 141) unless ignored, then EPIPE */
static int broken_pipe(int ignore) {
    int p[2];
    syscall(SYS_pipe2, p, 0);
    syscall(SYS_close, p[0]);
    if (ignore) signal(SIGPIPE, SIG_IGN);
    printf("writing to a pipe without reader\n");
    long r = syscall(SYS_write, p[1], "x", 1);
    printf("write = %ld %s\n", r, r < 0 && errno == EPIPE ? "EPIPE" : "?");
    struct iovec v = {"y", 1};
    r = syscall(SYS_writev, p[1], &v, 1);
    printf("writev = %ld %s\n", r, r < 0 && errno == EPIPE ? "EPIPE" : "?");
    return 0;
}

/* open until the descriptor limit: EMFILE at RLIMIT_NOFILE, every descriptor handed out usable */
static int fd_limit(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    int n = 0, last = -1, unusable = 0, p[2];
    long r;
    while ((r = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY)) >= 0) {
        struct stat st;
        n++;
        last = (int)r;
        unusable += syscall(SYS_fstat, last, &st) != 0;
    }
    printf("open stopped with %s after %s descriptors\n", errno == EMFILE ? "EMFILE" : "?", n > 900 ? "900+" : "few");
    printf("last below the limit %d, unusable %d\n", last < (long)rl.rlim_cur, unusable);
    r = syscall(SYS_pipe2, p, 0);
    printf("pipe2 at the limit %ld %s\n", r, r < 0 && errno == EMFILE ? "EMFILE" : "?");
    r = syscall(SYS_dup, 0);
    printf("dup at the limit %ld %s\n", r, r < 0 && errno == EMFILE ? "EMFILE" : "?");
    r = syscall(SYS_fcntl, 0, F_DUPFD, (long)rl.rlim_cur);
    printf("F_DUPFD at the limit %ld %s\n", r, r < 0 && errno == EINVAL ? "EINVAL" : "?");
    for (int fd = 3; fd <= last; fd++) syscall(SYS_close, fd);
    printf("pipe2 after closing %ld\n", syscall(SYS_pipe2, p, 0));
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && !strcmp(argv[1], "fdlimit")) return fd_limit();
    if (argc > 1 && !strcmp(argv[1], "sigpipe")) return broken_pipe(0);
    if (argc > 1 && !strcmp(argv[1], "epipe")) return broken_pipe(1);
    (void)argc;
    files();
    dirs();
    pipes_and_tty();
    self_exe(argv[0]);
    return 0;
}
