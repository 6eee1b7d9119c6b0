/* Numbers each line of stdin on stdout: a payload blocked in read(0) between lines, for snapshots taken from
 * outside (km-cli); its count lives in memory, so a resumed copy goes on counting from the snapshot. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    char line[256];
    int count = 0;
    printf("ready\n");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        printf("%d %s", ++count, line);            /* @echo */
        fflush(stdout);
    }
    return 0;
}
