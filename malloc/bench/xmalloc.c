/* Producer–consumer (the shape of xmalloc-test): producer threads allocate small objects
 * and hand them over in batches; consumer threads check and free them. Every free is a
 * remote free, and no thread ever frees what it allocated, so an allocator must move
 * memory from the consumers back to the producers or its footprint grows without bound.
 *
 * Batches (arrays of BATCH pointers, themselves malloc'ed by the producer and freed by
 * the consumer) pass through a bounded queue under a mutex; the queue bounds the live
 * memory to a few MiB.
 *
 * usage: xmalloc [producers=2] [consumers=2] [objects_per_producer=6000000] */
#include "bench.h"

#include <pthread.h>

enum { BATCH = 256, QUEUE = 64 };

struct object {
    size_t size;
    uint64_t tag;
};

struct batch {
    void *blocks[BATCH];
    struct object meta[BATCH];
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    struct batch *items[QUEUE];
    long head, count, producers_left;
} queue = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0};

static long objects_per_producer;

static void *produce(void *argument) {
    uint64_t rng = (uint64_t)(uintptr_t)argument;
    for (long made = 0; made < objects_per_producer; made += BATCH) {
        struct batch *b = checked_malloc(sizeof *b);
        for (int i = 0; i < BATCH; i++) {
            size_t size = rng_range(&rng, 16, 256);
            uint64_t tag = rng_next(&rng);
            b->blocks[i] = checked_malloc(size);
            tag_block(b->blocks[i], size, tag);
            b->meta[i] = (struct object){size, tag};
        }
        pthread_mutex_lock(&queue.lock);
        while (queue.count == QUEUE) pthread_cond_wait(&queue.not_full, &queue.lock);
        queue.items[(queue.head + queue.count) % QUEUE] = b;
        queue.count++;
        pthread_cond_signal(&queue.not_empty);
        pthread_mutex_unlock(&queue.lock);
    }
    pthread_mutex_lock(&queue.lock);
    queue.producers_left--;
    pthread_cond_broadcast(&queue.not_empty);
    pthread_mutex_unlock(&queue.lock);
    return NULL;
}

static void *consume(void *argument) {
    unsigned long long *freed = argument;
    for (;;) {
        pthread_mutex_lock(&queue.lock);
        while (queue.count == 0 && queue.producers_left > 0) pthread_cond_wait(&queue.not_empty, &queue.lock);
        if (queue.count == 0) {
            pthread_mutex_unlock(&queue.lock);
            return NULL;
        }
        struct batch *b = queue.items[queue.head];
        queue.head = (queue.head + 1) % QUEUE;
        queue.count--;
        pthread_cond_signal(&queue.not_full);
        pthread_mutex_unlock(&queue.lock);
        for (int i = 0; i < BATCH; i++) {
            check_block(b->blocks[i], b->meta[i].size, b->meta[i].tag);
            free(b->blocks[i]);
        }
        free(b);
        *freed += BATCH;
    }
}

int main(int argc, char **argv) {
    long producers = arg_or(argc, argv, 1, 2);
    long consumers = arg_or(argc, argv, 2, 2);
    objects_per_producer = arg_or(argc, argv, 3, 6000000);
    print_malloc_provider();
    queue.producers_left = producers;
    pthread_t *ids = checked_malloc(sizeof *ids * (size_t)(producers + consumers));
    unsigned long long *freed = calloc((size_t)consumers, sizeof *freed);
    if (freed == NULL) die("calloc returned NULL");

    double start = now_seconds();
    for (long p = 0; p < producers; p++)
        if (pthread_create(&ids[p], NULL, produce, (void *)(uintptr_t)(p + 1)) != 0) die("pthread_create failed");
    for (long c = 0; c < consumers; c++)
        if (pthread_create(&ids[producers + c], NULL, consume, &freed[c]) != 0) die("pthread_create failed");
    for (long t = 0; t < producers + consumers; t++) pthread_join(ids[t], NULL);
    double seconds = now_seconds() - start;

    unsigned long long total = 0;
    for (long c = 0; c < consumers; c++) total += freed[c];
    long batches = (objects_per_producer + BATCH - 1) / BATCH;
    if (total != (unsigned long long)(producers * batches * BATCH)) die("objects were lost between threads");
    free(ids);
    free(freed);
    print_result(seconds, total, "objects");
    return 0;
}
