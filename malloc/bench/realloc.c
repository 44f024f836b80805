/* Realloc growth: buffers grown by appending, the way naive string and vector building
 * grows them (realloc to the exact new length, no capacity doubling). BUFFERS buffers are
 * grown in random interleaving, each by 1–512 bytes per step, until it reaches its target
 * length (4 KiB – 256 KiB, log-uniform); then its whole content is verified, it is freed
 * and a new one starts. The interleaving keeps neighbours alive, so growing in place is not
 * free: an allocator must either leave room, move the block cheaply (mremap for large
 * ones), or copy.
 *
 * usage: realloc [steps=2500000] [buffers=128] */
#include "bench.h"

struct buffer {
    unsigned char *data;
    size_t length, target;
    unsigned char seed;
};

static unsigned char byte_at(const struct buffer *b, size_t offset) {
    return (unsigned char)(b->seed + offset * 31 + (offset >> 9));
}

static void start(struct buffer *b, uint64_t *rng) {
    b->data = NULL;
    b->length = 0;
    b->target = rng_log_size(rng, 12, 17);
    b->seed = (unsigned char)rng_next(rng);
}

static void finish(struct buffer *b) {
    for (size_t i = 0; i < b->length; i++)
        if (b->data[i] != byte_at(b, i)) die("realloc lost a buffer's contents");
    free(b->data);
}

int main(int argc, char **argv) {
    long steps = arg_or(argc, argv, 1, 2500000);
    long count = arg_or(argc, argv, 2, 128);
    print_malloc_provider();
    uint64_t rng = 15;
    struct buffer *buffers = checked_malloc(sizeof *buffers * (size_t)count);
    for (long i = 0; i < count; i++) start(&buffers[i], &rng);

    unsigned long long reallocs = 0;
    double begin = now_seconds();
    for (long step = 0; step < steps; step++) {
        struct buffer *b = &buffers[rng_next(&rng) % (uint64_t)count];
        size_t grow = rng_range(&rng, 1, 512);
        unsigned char *data = realloc(b->data, b->length + grow);
        if (data == NULL) die("realloc returned NULL");
        if (b->length > 0 && (data[0] != byte_at(b, 0) || data[b->length - 1] != byte_at(b, b->length - 1)))
            die("realloc did not keep a buffer's contents");
        for (size_t i = 0; i < grow; i++) data[b->length + i] = byte_at(b, b->length + i);
        b->data = data;
        b->length += grow;
        reallocs++;
        if (b->length >= b->target) {
            finish(b);
            start(b, &rng);
        }
    }
    for (long i = 0; i < count; i++)
        if (buffers[i].data != NULL) finish(&buffers[i]);
    double seconds = now_seconds() - begin;
    free(buffers);
    print_result(seconds, reallocs, "reallocs");
    return 0;
}
