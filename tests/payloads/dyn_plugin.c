/* dyn_plugin.c - a shared library nothing links against: dyn_dlopen.c loads it at run time, so a breakpoint
 * set in it before it is loaded stays pending until the dlopen (the gdb tests of dynamic payloads). */
double km_plugin_triple(double x) {
    double tripled = x * 3; /* @plugin_body */
    return tripled;
}
