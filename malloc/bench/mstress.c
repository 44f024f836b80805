/* Random sizes across threads (the shape of mstress and rptest): each thread keeps an
 * array of live blocks and replaces random ones with blocks of a random size, drawn so that
 * small sizes dominate and a tail reaches 32 KiB (power of two 2^4..2^14 uniform, then a
 * uniform offset, with 1 in 64 up to 256 KiB). Every 16th block is not freed by its owner
 * but posted to the next thread's mailbox and freed there, so the size mix crosses
 * threads. Every round each thread also frees a random share of its blocks at once and
 * refills them (bursts of frees and allocations, so the live heap swings).
 *
 * usage: mstress [threads=4] [rounds=40] [ops_per_round=50000] [slots=1500] */
#include "bench.h"

#include <pthread.h>

enum { MAILBOX = 512 };

struct block {
    void *ptr;
    size_t size;
    uint64_t tag;
};

struct mailbox {
    pthread_mutex_t lock;
    long count;
    struct block blocks[MAILBOX];
};

static long threads, rounds, ops_per_round, slots;
static struct mailbox *mailboxes;

static size_t random_size(uint64_t *rng) {
    if (rng_range(rng, 0, 63) == 0) return rng_log_size(rng, 15, 17);
    return rng_log_size(rng, 4, 14);
}

static struct block new_block(uint64_t *rng) {
    struct block b = {.size = random_size(rng), .tag = rng_next(rng)};
    b.ptr = checked_malloc(b.size);
    tag_block(b.ptr, b.size, b.tag);
    return b;
}

static void free_block(struct block *b) {
    check_block(b->ptr, b->size, b->tag);
    free(b->ptr);
    b->ptr = NULL;
}

/* Frees the blocks other threads posted to this thread. */
static void drain(struct mailbox *own) {
    struct block taken[MAILBOX];
    pthread_mutex_lock(&own->lock);
    long count = own->count;
    memcpy(taken, own->blocks, sizeof taken[0] * (size_t)count);
    own->count = 0;
    pthread_mutex_unlock(&own->lock);
    for (long i = 0; i < count; i++) free_block(&taken[i]);
}

/* Posts a block to another thread; when its mailbox is full, frees it here instead. */
static void post(struct mailbox *to, struct block *b) {
    pthread_mutex_lock(&to->lock);
    int posted = to->count < MAILBOX;
    if (posted) to->blocks[to->count++] = *b;
    pthread_mutex_unlock(&to->lock);
    if (posted)
        b->ptr = NULL;
    else
        free_block(b);
}

struct worker {
    long index;
    unsigned long long ops;
};

static void *work(void *argument) {
    struct worker *w = argument;
    uint64_t rng = 15 + (uint64_t)w->index;
    struct block *own = checked_malloc(sizeof *own * (size_t)slots);
    for (long i = 0; i < slots; i++) own[i] = new_block(&rng);
    struct mailbox *next = &mailboxes[(w->index + 1) % threads];
    for (long round = 0; round < rounds; round++) {
        for (long op = 0; op < ops_per_round; op++) {
            struct block *b = &own[rng_next(&rng) % (uint64_t)slots];
            if ((op & 15) == 0)
                post(next, b);
            else
                free_block(b);
            *b = new_block(&rng);
            if ((op & 255) == 0) drain(&mailboxes[w->index]);
        }
        long burst = (long)rng_range(&rng, 0, (size_t)slots / 2);
        for (long i = 0; i < burst; i++) free_block(&own[i]);
        for (long i = 0; i < burst; i++) own[i] = new_block(&rng);
        w->ops += (unsigned long long)(ops_per_round + burst);
    }
    for (long i = 0; i < slots; i++) free_block(&own[i]);
    free(own);
    return NULL;
}

int main(int argc, char **argv) {
    threads = arg_or(argc, argv, 1, 4);
    rounds = arg_or(argc, argv, 2, 40);
    ops_per_round = arg_or(argc, argv, 3, 50000);
    slots = arg_or(argc, argv, 4, 1500);
    print_malloc_provider();
    mailboxes = checked_malloc(sizeof *mailboxes * (size_t)threads);
    for (long t = 0; t < threads; t++) {
        pthread_mutex_init(&mailboxes[t].lock, NULL);
        mailboxes[t].count = 0;
    }
    pthread_t *ids = checked_malloc(sizeof *ids * (size_t)threads);
    struct worker *workers = checked_malloc(sizeof *workers * (size_t)threads);

    double start = now_seconds();
    for (long t = 0; t < threads; t++) {
        workers[t] = (struct worker){.index = t, .ops = 0};
        if (pthread_create(&ids[t], NULL, work, &workers[t]) != 0) die("pthread_create failed");
    }
    unsigned long long ops = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        ops += workers[t].ops;
    }
    for (long t = 0; t < threads; t++) drain(&mailboxes[t]);
    double seconds = now_seconds() - start;

    free(ids);
    free(workers);
    free(mailboxes);
    print_result(seconds, ops, "malloc+free");
    return 0;
}
