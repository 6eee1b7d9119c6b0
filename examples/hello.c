/* The bundled example payload: `musl-gcc -static -o hello.km hello.c && km hello.km` */
#include <stdio.h>

int main(int argc, char **argv) {
    printf("Hello, world%s%s\n", argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
    for (int i = 2; i < argc; i++) printf("  arg %d: %s\n", i, argv[i]);
    return 0;
}
