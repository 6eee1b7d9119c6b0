/* Thread-local storage under gdb: each thread sets its own copy of `tls_counter` and stops in `checkpoint`. */
#include <pthread.h>
#include <stdio.h>

__thread int tls_counter = 5;
__thread char tls_name[16] = "main";

__attribute__((noinline)) void checkpoint(int id) {
    __asm__ volatile("" ::"r"(id) : "memory");          /* @checkpoint */
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg) {
    int id = (int)(long)arg;
    tls_counter = 100 + id;
    tls_name[0] = 'w';
    tls_name[1] = '0' + id;
    tls_name[2] = 0;
    pthread_mutex_lock(&lock);
    checkpoint(id);
    pthread_mutex_unlock(&lock);
    return 0;
}

int main(void) {
    pthread_t t;
    tls_counter = 42;
    checkpoint(0);
    pthread_create(&t, 0, worker, (void *)1L);
    pthread_join(t, 0);
    printf("main %d %s\n", tls_counter, tls_name);
    return 0;
}
