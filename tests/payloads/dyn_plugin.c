/* dyn_plugin.c - a shared library nothing links against: dyn_dlopen.c loads it at run time, so a breakpoint
 * set in it before it is loaded stays pending until the dlopen (the gdb tests of dynamic payloads). Its __thread
 * counter lives in dynamic TLS (the DTV slot of a dlopen'ed module). */
__thread int km_plugin_calls;

double km_plugin_triple(double x) {
    double tripled = x * 3; /* @plugin_body */
    km_plugin_calls += 1;
    return tripled;
}
