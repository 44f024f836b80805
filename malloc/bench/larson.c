/* Server pattern (the shape of Larson & Krishnan's benchmark): worker threads replace
 * random objects in an array of live objects, and the arrays change hands, so most frees
 * release an object that another thread allocated.
 *
 * Each epoch starts THREADS fresh threads (the previous ones have exited, leaving their
 * objects behind, as Larson's threads hand their arrays to successors). Within an epoch,
 * after every round the threads meet at a barrier and each moves on to the next thread's
 * array, freeing objects allocated by a live peer (remote frees). One operation frees one
 * random slot's object and puts a new random-size object (16 B – 1 KiB) in its place.
 *
 * usage: larson [threads=4] [epochs=10] [rounds=8] [ops_per_round=60000] [slots=2000] */
#include "bench.h"

#include <pthread.h>

struct slot {
    void *block;
    size_t size;
    uint64_t tag;
};

static long threads, epochs, rounds, ops_per_round, slots;
static struct slot **arrays;
static pthread_barrier_t barrier;

struct worker {
    long index;
    long epoch;
    uint64_t rng;
};

static void *work(void *argument) {
    struct worker *w = argument;
    for (long round = 0; round < rounds; round++) {
        struct slot *array = arrays[(w->index + w->epoch + round) % threads];
        for (long op = 0; op < ops_per_round; op++) {
            struct slot *s = &array[rng_next(&w->rng) % (uint64_t)slots];
            check_block(s->block, s->size, s->tag);
            free(s->block);
            s->size = rng_range(&w->rng, 16, 1024);
            s->tag = rng_next(&w->rng);
            s->block = checked_malloc(s->size);
            tag_block(s->block, s->size, s->tag);
        }
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

int main(int argc, char **argv) {
    threads = arg_or(argc, argv, 1, 4);
    epochs = arg_or(argc, argv, 2, 10);
    rounds = arg_or(argc, argv, 3, 8);
    ops_per_round = arg_or(argc, argv, 4, 60000);
    slots = arg_or(argc, argv, 5, 2000);
    print_malloc_provider();

    uint64_t seed = 15;
    arrays = checked_malloc(sizeof *arrays * (size_t)threads);
    for (long t = 0; t < threads; t++) {
        arrays[t] = checked_malloc(sizeof **arrays * (size_t)slots);
        for (long i = 0; i < slots; i++) {
            struct slot *s = &arrays[t][i];
            s->size = rng_range(&seed, 16, 1024);
            s->tag = rng_next(&seed);
            s->block = checked_malloc(s->size);
            tag_block(s->block, s->size, s->tag);
        }
    }
    pthread_barrier_init(&barrier, NULL, (unsigned)threads);
    pthread_t *ids = checked_malloc(sizeof *ids * (size_t)threads);
    struct worker *workers = checked_malloc(sizeof *workers * (size_t)threads);

    double start = now_seconds();
    for (long epoch = 0; epoch < epochs; epoch++) {
        for (long t = 0; t < threads; t++) {
            workers[t] = (struct worker){.index = t, .epoch = epoch, .rng = seed + (uint64_t)(epoch * threads + t)};
            if (pthread_create(&ids[t], NULL, work, &workers[t]) != 0) die("pthread_create failed");
        }
        for (long t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    }
    double seconds = now_seconds() - start;

    for (long t = 0; t < threads; t++) {
        for (long i = 0; i < slots; i++) {
            check_block(arrays[t][i].block, arrays[t][i].size, arrays[t][i].tag);
            free(arrays[t][i].block);
        }
        free(arrays[t]);
    }
    free(arrays);
    free(ids);
    free(workers);
    pthread_barrier_destroy(&barrier);
    print_result(seconds, (unsigned long long)(threads * epochs * rounds * ops_per_round), "malloc+free");
    return 0;
}
