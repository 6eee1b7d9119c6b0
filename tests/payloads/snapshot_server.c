/* A small threaded server for snapshots taken from outside: main accepts on a listening TCP socket (bound to
 * port 0: the port is printed) and hands each connection to one of WORKERS threads, which wait on a condition
 * variable; a worker answers with the next fixed-width record of a data file (read(2) at the descriptor's offset)
 * and its thread id. `ready` lists the port and every thread id. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WORKERS 2
#define RECORD 8                     /* "line NN\n" */

static int data_fd, pending = -1, served;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER, idle = PTHREAD_COND_INITIALIZER;
static pid_t tids[WORKERS];

static void *worker(void *arg)
{
    tids[(long)arg] = gettid();
    for (;;) {
        pthread_mutex_lock(&lock);
        while (pending < 0)
            pthread_cond_wait(&work, &lock);            /* a snapshot finds the workers here */
        int conn = pending;
        pending = -1;
        pthread_cond_signal(&idle);
        pthread_mutex_unlock(&lock);
        char record[RECORD + 1] = {0}, reply[64];
        ssize_t n = read(data_fd, record, RECORD);
        int len = snprintf(reply, sizeof reply, "%d %.*s from %d\n", ++served, n > 0 ? (int)n - 1 : 0, record,
                           gettid());
        write(conn, reply, len);
        close(conn);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    data_fd = open(argv[1], O_RDONLY);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t size = sizeof addr;
    int one = 1;                        /* as servers do: the port's TIME_WAIT connections do not block a restart */
    if (data_fd < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) || bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 8) ||
        getsockname(listener, (struct sockaddr *)&addr, &size)) {
        perror("snapshot_server");
        return 1;
    }
    pthread_t threads[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        pthread_create(&threads[i], NULL, worker, (void *)i);
    while (!tids[WORKERS - 1] || !tids[0])
        usleep(1000);
    printf("ready %d %d %d %d\n", ntohs(addr.sin_port), getpid(), tids[0], tids[1]);
    fflush(stdout);
    for (;;) {
        int conn = accept(listener, NULL, NULL);        /* ... and main here */
        if (conn < 0)
            continue;
        pthread_mutex_lock(&lock);
        while (pending >= 0)
            pthread_cond_wait(&idle, &lock);
        pending = conn;
        pthread_cond_signal(&work);
        pthread_mutex_unlock(&lock);
    }
}
