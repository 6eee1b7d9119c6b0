/* Not a payload: a launcher run natively that makes the kernel refuse one system call (seccomp, as a container's
   profile or an older kernel would), then executes the rest of its command line (km).
   seccomp_refuse clone-vm|pidfd_open|close_range PROGRAM ARGS...
   clone-vm: clone(2) sharing the address space, not as a thread or a vfork (teardown.py's holder), EPERM;
   pidfd_open and close_range: ENOSYS, as on kernels before 5.3 and 5.9. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOAD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define REFUSE(err) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err))

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: seccomp_refuse clone-vm|pidfd_open|close_range PROGRAM ARGS...\n");
        return 2;
    }
    struct sock_filter clone_vm[] = {
        LOAD(arch), BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0), ALLOW,
        LOAD(nr), BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 1, 0), ALLOW,
        LOAD(args[0]), BPF_STMT(BPF_ALU | BPF_AND | BPF_K, CLONE_VM | CLONE_THREAD | CLONE_VFORK),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, CLONE_VM, 0, 1), REFUSE(EPERM), ALLOW,
    };
    struct sock_filter one[] = {
        LOAD(arch), BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0), ALLOW,
        LOAD(nr), BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1), REFUSE(ENOSYS), ALLOW,
    };
    struct sock_fprog prog;
    if (!strcmp(argv[1], "clone-vm")) {
        prog.filter = clone_vm;
        prog.len = sizeof clone_vm / sizeof clone_vm[0];
    } else {
        one[4].k = !strcmp(argv[1], "pidfd_open") ? 434 : !strcmp(argv[1], "close_range") ? 436 : ~0U;
        prog.filter = one;
        prog.len = sizeof one / sizeof one[0];
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
        perror("seccomp_refuse: seccomp");
        return 2;
    }
    execvp(argv[2], argv + 2);
    perror("seccomp_refuse: exec");
    return 2;
}
