/* Runs one workload under one allocator and measures it from outside.
 *
 * usage: runner [--preload LIB] --report FILE -- COMMAND [ARGS...]
 *
 * Starts COMMAND with LD_PRELOAD=LIB (or with LD_PRELOAD removed when no --preload is
 * given; the runner itself never runs preloaded), waits for it with wait4 and writes one
 * line to FILE:
 *
 *     wall_seconds=1.234567 max_rss_kb=12345 status=0
 *
 * max_rss_kb is the kernel's peak resident set size of the child (ru_maxrss); status is
 * the exit code, or 128 + the signal that killed it. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void usage(void) {
    fprintf(stderr, "usage: runner [--preload LIB] --report FILE -- COMMAND [ARGS...]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *preload = NULL, *report = NULL;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else if (strcmp(argv[i], "--preload") == 0 && i + 1 < argc) {
            preload = argv[++i];
        } else if (strcmp(argv[i], "--report") == 0 && i + 1 < argc) {
            report = argv[++i];
        } else {
            usage();
        }
    }
    if (report == NULL || i >= argc) usage();

    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pid_t child = fork();
    if (child < 0) {
        perror("runner: fork");
        return 2;
    }
    if (child == 0) {
        if (preload != NULL)
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        execvp(argv[i], &argv[i]);
        fprintf(stderr, "runner: cannot run %s: %s\n", argv[i], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage usage_of_child;
    while (wait4(child, &status, 0, &usage_of_child) < 0)
        if (errno != EINTR) {
            perror("runner: wait4");
            return 2;
        }
    clock_gettime(CLOCK_MONOTONIC, &end);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    double wall = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;

    FILE *out = fopen(report, "w");
    if (out == NULL) {
        fprintf(stderr, "runner: cannot write %s: %s\n", report, strerror(errno));
        return 2;
    }
    fprintf(out, "wall_seconds=%.6f max_rss_kb=%ld status=%d\n", wall, usage_of_child.ru_maxrss, code);
    fclose(out);
    return code;
}
