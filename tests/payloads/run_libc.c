/* run_libc.c - ordinary libc use, printed for a differential run: malloc of small and large blocks (brk and mmap),
 * stdio on files, formatted floats, qsort, strftime in UTC, directory listing, realpath, atexit, and the status. */
#define _GNU_SOURCE
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
static int cmps(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static void bye(void) { printf("atexit handler ran\n"); }

int main(int argc, char **argv) {
    atexit(bye);
    /* allocations: many small (brk), a few large (mmap), freed and reused */
    unsigned long sum = 0;
    char *blocks[2000];
    for (int i = 0; i < 2000; i++) {
        blocks[i] = malloc(16 + i * 7);
        memset(blocks[i], i & 0xff, 16 + i * 7);
    }
    for (int i = 0; i < 2000; i += 2) free(blocks[i]);
    for (int i = 1; i < 2000; i += 2) sum += (unsigned char)blocks[i][i * 3];
    char *big = malloc(32 << 20);
    for (size_t i = 0; i < (32 << 20); i += 4096) big[i] = (char)(i >> 12);
    for (size_t i = 0; i < (32 << 20); i += 4096 * 64) sum += (unsigned char)big[i];
    big = realloc(big, 64 << 20);
    sum += (unsigned char)big[4096 * 3];
    free(big);
    printf("malloc checksum %lu\n", sum);
    /* numbers */
    printf("floats %.6f %.3e %g %.10f\n", sqrt(2.0), exp(10.0), 1.0 / 3.0, sin(1.0));
    printf("strtod %.4f strtol %ld\n", strtod("  -12.5e1x", NULL), strtol("0x7fff", NULL, 0));
    int v[64];
    srand(42);
    for (int i = 0; i < 64; i++) v[i] = rand() % 1000;
    qsort(v, 64, sizeof *v, cmp);
    printf("sorted %d %d %d ... %d\n", v[0], v[1], v[2], v[63]);
    /* time in UTC from a fixed epoch second */
    time_t t = 1700000000;
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %a", gmtime(&t));
    printf("gmtime %s\n", when);
    /* files through stdio */
    char path[] = "libc-test-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w+");
    for (int i = 0; i < 1000; i++) fprintf(f, "line %d of %s\n", i, "the file");
    rewind(f);
    char line[128];
    int lines = 0;
    while (fgets(line, sizeof line, f)) lines++;
    printf("stdio lines %d last [%.*s]\n", lines, (int)strlen(line) - 1, line);
    fclose(f);
    char real[PATH_MAX];
    printf("realpath ends with the name: %d\n", realpath(path, real) && strstr(real, "libc-test-") != NULL);
    unlink(path);
    /* a directory listing */
    DIR *d = opendir("/usr/include/linux");
    char *names[4096];
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 4096) if (e->d_name[0] == 'k') names[n++] = strdup(e->d_name);
    if (d) closedir(d);
    qsort(names, n, sizeof *names, cmps);
    printf("readdir k* entries %d, first %s\n", n, n ? names[0] : "-");
    printf("argv[0] basename %s, argc %d\n", strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0], argc);
    fflush(stdout);
    return argc > 1 ? atoi(argv[1]) : 0;
}
