/* Linux gives open() the lowest free descriptor, even while another thread of the process makes a call km serves
 * by importing code late (a syscall family loaded on first use, the resource module behind getrlimit). Each round
 * forks a child that starts with nothing late loaded: its main thread opens and closes /dev/null in a tight loop
 * while a second thread makes those calls; every open must return the number the first one did. With "mmap" as
 * the second argument the second thread maps this program (code, private) from two descriptors in turn instead,
 * which km serves by keeping a descriptor of the file for itself. The other modes make km make a descriptor of its
 * own for a moment: "shared" maps shared anonymous memory (a memfd), "threads" starts threads that need new vCPUs
 * (KVM_CREATE_VCPU), "vfork" vforks children that exit (a pipe). "accept": the main thread accepts connections a
 * child process makes (a call that blocks, so it cannot wait at km's gate) while the second thread maps shared
 * anonymous memory; every accepted descriptor must have the number the first one had.
 * Prints "rounds N misnumbered M" (M counts opens that got another number). */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int go, done;
static const char *mode = "late";
static const char *program;          /* mmap mode: this program's path (argv[0]) */
static int images[2];                /* mmap mode: two descriptors of it, opened before the round's first open */

static void *idle(void *arg) {
    return arg;
}

static void *late_calls(void *arg) {
    (void)arg;
    while (!atomic_load(&go))
        ;
    if (!strcmp(mode, "shared")) {
        for (int i = 0; i < 300; i++) {
            void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            if (page != MAP_FAILED)
                munmap(page, 4096);
        }
    } else if (!strcmp(mode, "threads")) {
        pthread_t threads[12];
        for (int i = 0; i < 12; i++)
            pthread_create(&threads[i], NULL, idle, NULL);
        for (int i = 0; i < 12; i++)
            pthread_join(threads[i], NULL);
    } else if (!strcmp(mode, "vfork")) {
        for (int i = 0; i < 40; i++) {
            pid_t child = vfork();
            if (child == 0)
                _exit(0);
            waitpid(child, NULL, 0);
        }
    }
    if (strcmp(mode, "late") && strcmp(mode, "mmap")) {
        atomic_store(&done, 1);
        return NULL;
    }
    if (program) {
        for (int i = 0; i < 400; i++) {     /* each mapping's descriptor is another open file than the last's */
            void *image = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, images[i & 1], 0);
            if (image != MAP_FAILED)
                munmap(image, 4096);
        }
        atomic_store(&done, 1);
        return NULL;
    }
    struct rlimit limit;
    poll(NULL, 0, 0);                       /* a family none of the start-up ones serves */
    getrlimit(RLIMIT_STACK, &limit);        /* km asks the host through Python's resource module */
    atomic_store(&done, 1);
    return NULL;
}

static int round_of_opens(void) {
    pthread_t thread;
    if (program && ((images[0] = open(program, O_RDONLY)) < 0 || (images[1] = open(program, O_RDONLY)) < 0))
        return 101;
    if (pthread_create(&thread, NULL, late_calls, NULL) != 0)
        return 100;
    int lowest = open("/dev/null", O_RDONLY);
    close(lowest);
    int misnumbered = 0, after = 0;
    atomic_store(&go, 1);
    while (after < 200) {                   /* on until well after the late calls return */
        int fd = open("/dev/null", O_RDONLY);
        if (fd != lowest)
            misnumbered += misnumbered < 255;
        close(fd);
        if (atomic_load(&done))
            after++;
    }
    pthread_join(thread, NULL);
    return misnumbered;
}

static atomic_int accepting = 1;

static void *map_shared_while_accepting(void *arg) {
    (void)arg;
    while (atomic_load(&accepting)) {
        void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (page != MAP_FAILED)
            munmap(page, 4096);
    }
    return NULL;
}

static int round_of_accepts(void) {
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    snprintf(address.sun_path + 1, sizeof address.sun_path - 1, "km-fd-lowest-%d", (int)getpid());
    socklen_t length = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(address.sun_path + 1);
    int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, length) || listen(listener, 64))
        return 102;
    pid_t connector = fork();
    if (connector == 0) {
        for (int i = 0; i < 150; i++) {
            int s = socket(AF_UNIX, SOCK_STREAM, 0);
            if (connect(s, (struct sockaddr *)&address, length) == 0) {
                char byte;
                read(s, &byte, 1);              /* until the server closes: one connection at a time */
            }
            close(s);
        }
        _exit(0);
    }
    pthread_t thread;
    if (pthread_create(&thread, NULL, map_shared_while_accepting, NULL) != 0)
        return 100;
    int lowest = -1, misnumbered = 0;
    for (int i = 0; i < 150; i++) {
        int fd = accept(listener, NULL, NULL);
        if (lowest < 0)
            lowest = fd;
        if (fd != lowest)
            misnumbered += misnumbered < 255;
        close(fd);
    }
    atomic_store(&accepting, 0);
    pthread_join(thread, NULL);
    waitpid(connector, NULL, 0);
    return misnumbered;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 10, misnumbered = 0;
    if (argc > 2)
        mode = argv[2];
    if (!strcmp(mode, "mmap"))
        program = argv[0];
    for (int i = 0; i < rounds; i++) {
        pid_t child = fork();
        if (child == 0)
            _exit(strcmp(mode, "accept") ? round_of_opens() : round_of_accepts());
        int status;
        waitpid(child, &status, 0);
        misnumbered += WIFEXITED(status) ? WEXITSTATUS(status) : 1000;
    }
    printf("rounds %d misnumbered %d\n", rounds, misnumbered);
    return 0;
}
