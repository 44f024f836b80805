/* Large allocations: threads replace random blocks of 64 KiB – 8 MiB (log-uniform) in a
 * small window of live blocks and touch one byte per 4 KiB page of each new block, as a
 * program that fills its buffers would. This measures how an allocator serves requests
 * above its size classes: a fresh mmap per block (a page fault and zeroing per touched
 * page), or reuse of memory it kept (fewer faults, more resident memory).
 *
 * usage: large [threads=4] [ops_per_thread=4000] [window=8] */
#include "bench.h"

#include <pthread.h>

enum { PAGE = 4096 };

static long ops_per_thread, window;

struct block {
    unsigned char *ptr;
    size_t size;
    uint64_t tag;
};

static void *work(void *argument) {
    uint64_t rng = 15 + (uint64_t)(uintptr_t)argument;
    struct block *live = calloc((size_t)window, sizeof *live);
    if (live == NULL) die("calloc returned NULL");
    for (long op = 0; op < ops_per_thread; op++) {
        struct block *b = &live[rng_next(&rng) % (uint64_t)window];
        if (b->ptr != NULL) {
            check_block(b->ptr, b->size, b->tag);
            free(b->ptr);
        }
        b->size = rng_log_size(&rng, 16, 22);
        b->tag = rng_next(&rng);
        b->ptr = checked_malloc(b->size);
        for (size_t offset = 0; offset < b->size; offset += PAGE) b->ptr[offset] = (unsigned char)offset;
        tag_block(b->ptr, b->size, b->tag);
    }
    for (long i = 0; i < window; i++)
        if (live[i].ptr != NULL) {
            check_block(live[i].ptr, live[i].size, live[i].tag);
            free(live[i].ptr);
        }
    free(live);
    return NULL;
}

int main(int argc, char **argv) {
    long threads = arg_or(argc, argv, 1, 4);
    ops_per_thread = arg_or(argc, argv, 2, 4000);
    window = arg_or(argc, argv, 3, 8);
    print_malloc_provider();
    pthread_t *ids = checked_malloc(sizeof *ids * (size_t)threads);
    double start = now_seconds();
    for (long t = 0; t < threads; t++)
        if (pthread_create(&ids[t], NULL, work, (void *)(uintptr_t)t) != 0) die("pthread_create failed");
    for (long t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    double seconds = now_seconds() - start;
    free(ids);
    print_result(seconds, (unsigned long long)(threads * ops_per_thread), "allocations");
    return 0;
}
