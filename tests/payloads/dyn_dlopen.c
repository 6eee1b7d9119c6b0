/* dyn_dlopen.c - a dynamic program that loads libraries at run time: dlopen/dlsym/dlclose, a missing library's
 * dlerror, dl_iterate_phdr over what is loaded, and its own /proc/self/maps naming the library files.
 * usage: dyn_dlopen LIBRARY SYMBOL  (calls SYMBOL(2.0) as double(double)) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

static int count_objects(struct dl_phdr_info *info, size_t size, void *data) {
    (void)info; (void)size;
    ++*(int *)data;
    return 0;
}

static int maps_names(const char *needle) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    if (f) fclose(f);
    return n;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    void *missing = dlopen("libkm-no-such-library.so.7", RTLD_NOW);
    printf("missing: %s\n", missing ? "loaded?!" : dlerror());
    int before = 0, after = 0;
    dl_iterate_phdr(count_objects, &before);
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) { printf("dlopen: %s\n", dlerror()); return 1; }
    double (*fn)(double) = (double (*)(double))dlsym(lib, argv[2]);
    if (!fn) { printf("dlsym: %s\n", dlerror()); return 1; }
    printf("%s(2.0) = %.6f\n", argv[2], fn(2.0));
    dl_iterate_phdr(count_objects, &after);
    printf("objects: %d more after dlopen\n", after - before);
    printf("maps name %s: %s\n", argv[1], maps_names(argv[1]) > 0 ? "yes" : "no");
    printf("dlclose: %d\n", dlclose(lib));
    return 0;
}
