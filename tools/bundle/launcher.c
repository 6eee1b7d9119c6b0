/* The km bundle's launcher (BUNDLE/bin/km, BUNDLE/bin/km-runtime): starts the bundle's own Python through the
 * bundle's own ld.so and libraries, so km runs unchanged in any image (glibc, musl or an empty one) and never
 * loads the image's libraries. Static, so it needs nothing from the image either. The bundle is found from
 * /proc/self/exe (BUNDLE/bin/NAME), which also names the program to run; argv[0] passes through unchanged
 * (km's symlink form). Built by tools/build_bundle.py; the Python side is monitor/process/self_exec.py.
 *
 * km-runtime's commands other than create/run/exec only hand their argv to the delegate (runc): the launcher
 * does that itself, without starting Python, because engines call the runtime three or four times per container
 * and Python's start-up would triple the runtime's cost. It resolves the delegate exactly as
 * monitor/oci/settings.py does (KM_RUNTIME_DELEGATE, else "delegate" in the first config file found, else runc on
 * PATH and the usual directories) and leaves anything unusual (an escaped string) to Python. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
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

/* runc's global options that take a value (monitor/oci/cli.py GLOBAL_VALUE_OPTIONS) */
static const char *const global_value_options[] = {"root", "log", "log-format", "log-level", "criu", "rootless",
                                                   "cgroup-manager", NULL};

static const char *subcommand(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0)
            return a;
        if (strcmp(a, "--") == 0)
            return i + 1 < argc ? argv[i + 1] : "";
        while (*a == '-')
            a++;
        if (strchr(a, '='))
            continue;
        for (const char *const *o = global_value_options; *o; o++)
            if (strcmp(a, *o) == 0) {
                i++;
                break;
            }
    }
    return "";
}

/* the "delegate" string of a JSON config file: 1 found (copied to out), 0 absent, -1 unusual (ask Python) */
static int delegate_in(const char *path, char *out, size_t size) {
    static char text[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n < 0 || n == sizeof text - 1)
        return -1;
    text[n] = 0;
    char *p = strstr(text, "\"delegate\"");
    if (!p)
        return 0;
    p += strlen("\"delegate\"");
    while (isspace((unsigned char)*p)) p++;
    if (*p++ != ':')
        return -1;
    while (isspace((unsigned char)*p)) p++;
    if (*p++ != '"')
        return -1;
    char *end = strchr(p, '"');
    if (!end || memchr(p, '\\', end - p) || (size_t)(end - p) >= size || end == p)
        return -1;
    memcpy(out, p, end - p);
    out[end - p] = 0;
    return 1;
}

static int find_on_path(const char *name, char *out, size_t size) {
    if (strchr(name, '/')) {
        snprintf(out, size, "%s", name);
        return access(out, X_OK) == 0;
    }
    const char *env = getenv("PATH");
    char path[8192];
    snprintf(path, sizeof path, "%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", env ? env : "");
    for (char *dir = strtok(path, ":"); dir; dir = strtok(NULL, ":")) {
        if (!*dir)
            continue;
        if ((size_t)snprintf(out, size, "%s/%s", dir, name) >= size)
            continue;
        if (access(out, X_OK) == 0)
            return 1;
    }
    return 0;
}

/* km-runtime COMMAND other than create/run/exec: exec the delegate; returns only when Python must decide */
static void pass_through(const char *bundle, int argc, char **argv) {
    const char *cmd = subcommand(argc, argv);
    if (!strcmp(cmd, "create") || !strcmp(cmd, "run") || !strcmp(cmd, "exec"))
        return;
    char name[PATH_MAX], conf[PATH_MAX + 64], delegate[PATH_MAX];
    const char *env = getenv("KM_RUNTIME_DELEGATE");
    int found = 0;
    if (env && *env) {
        snprintf(name, sizeof name, "%s", env);
        found = 1;
    } else {
        const char *explicit_conf = getenv("KM_RUNTIME_CONFIG");
        snprintf(conf, sizeof conf, "%s/etc/km-runtime.json", bundle);
        const char *confs[] = {explicit_conf ? explicit_conf : conf, explicit_conf ? NULL : "/etc/km/runtime.json",
                               NULL};
        for (int i = 0; confs[i] && !found; i++) {
            int r = delegate_in(confs[i], name, sizeof name);
            if (r < 0)
                return;
            if (r > 0)
                found = 1;
            else if (access(confs[i], F_OK) == 0)
                break;                                  /* the first file found decides, as in Python */
        }
        if (!found)
            snprintf(name, sizeof name, "runc");
    }
    if (!find_on_path(name, delegate, sizeof delegate))
        return;                                         /* Python says what is missing, where the engine shows it */
    argv[0] = delegate;
    execv(delegate, argv);
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
    if (strcmp(name, "km-runtime") == 0)
        pass_through(exe, argc, argv);
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
