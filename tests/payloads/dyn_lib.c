/* dyn_lib.c - the shared library dyn_needs.c links against (built as libkmneeded.so). */
int km_needed_answer(void) { return 42; }
