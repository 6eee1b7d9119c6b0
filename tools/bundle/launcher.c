/* The km bundle's launcher (BUNDLE/bin/km, BUNDLE/bin/km-runtime): starts the bundle's own Python through the
 * bundle's own ld.so and libraries, so km runs unchanged in any image (glibc, musl or an empty one) and never
 * loads the image's libraries. Static, so it needs nothing from the image either. The bundle is found from
 * /proc/self/exe (BUNDLE/bin/NAME), which also names the program to run; argv[0] passes through unchanged
 * (km's symlink form). Built by tools/build_bundle.py; the Python side is monitor/self_exec.py. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *entry(const char *name) {
    if (strcmp(name, "km-runtime") == 0)
        return "import sys;from monitor.oci.cli import main;main(sys.argv[1:])";
    return "import sys;from monitor.cli import main;main(sys.argv[1:])";
}

int main(int argc, char **argv) {
    char exe[PATH_MAX], loader[PATH_MAX + 64], libdir[PATH_MAX + 64], python[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        if (!argv[0] || !realpath(argv[0], exe)) {
            fprintf(stderr, "km: bundle launcher: cannot find itself (is /proc mounted?)\n");
            return 127;
        }
    } else {
        exe[n] = 0;
    }
    char *slash = strrchr(exe, '/');                    /* BUNDLE/bin/NAME */
    if (!slash) return 127;
    *slash = 0;
    const char *name = slash + 1;
    char *bindir = strrchr(exe, '/');
    if (!bindir) return 127;
    *bindir = 0;                                        /* exe now holds BUNDLE */
    snprintf(loader, sizeof loader, "%s/lib/ld-linux-x86-64.so.2", exe);
    snprintf(libdir, sizeof libdir, "%s/lib", exe);
    snprintf(python, sizeof python, "%s/python/bin/python3", exe);
    char **args = calloc(argc + 10, sizeof *args);
    int i = 0;
    args[i++] = loader;
    args[i++] = "--library-path";
    args[i++] = libdir;
    args[i++] = python;
    args[i++] = "-I";                                   /* no user site, no PYTHON* variables, no cwd on sys.path */
    args[i++] = "-S";                                   /* no site module: everything km needs is on the stdlib path */
    args[i++] = "-c";
    args[i++] = (char *)entry(name);
    for (int j = 0; j < argc; j++)
        args[i++] = argv[j];
    args[i] = NULL;
    execv(loader, args);
    fprintf(stderr, "km: %s: %s\n", loader, strerror(errno));
    return 127;
}
