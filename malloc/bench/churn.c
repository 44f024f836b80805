/* A computation that churns many small, short-lived objects (the shape of cfrac and
 * espresso): symbolic differentiation. Each step builds a random expression tree over four
 * variables, differentiates it twice with respect to x, simplifies each result (every pass
 * builds a new tree and frees the old one), checks the simplified tree against the
 * unsimplified one at a random point, and frees everything. Nodes are 16–24 bytes, and
 * variable names are separate 2–8 byte strings: almost every allocation is tiny and dies
 * within microseconds, on one thread.
 *
 * usage: churn [steps=8000] [depth=8] */
#include "bench.h"

#include <math.h>

enum kind { CONSTANT, VARIABLE, ADD, SUB, MUL };

struct node {
    enum kind kind;
};
struct constant {
    struct node base;
    double value;
};
struct variable {
    struct node base;
    char *name;
};
struct binary {
    struct node base;
    struct node *left, *right;
};

static unsigned long long allocations;

static void *node_alloc(size_t size, enum kind kind) {
    struct node *n = checked_malloc(size);
    n->kind = kind;
    allocations++;
    return n;
}

static struct node *constant(double value) {
    struct constant *c = node_alloc(sizeof *c, CONSTANT);
    c->value = value;
    return &c->base;
}

static const char *const NAMES[] = {"x", "yy", "zeta", "omega_w"};

static struct node *variable(const char *name) {
    struct variable *v = node_alloc(sizeof *v, VARIABLE);
    size_t length = strlen(name) + 1;
    v->name = checked_malloc(length);
    allocations++;
    memcpy(v->name, name, length);
    return &v->base;
}

static struct node *binary(enum kind kind, struct node *left, struct node *right) {
    struct binary *b = node_alloc(sizeof *b, kind);
    b->left = left;
    b->right = right;
    return &b->base;
}

static void release(struct node *n) {
    switch (n->kind) {
    case CONSTANT: break;
    case VARIABLE: free(((struct variable *)n)->name); break;
    default:
        release(((struct binary *)n)->left);
        release(((struct binary *)n)->right);
    }
    free(n);
}

static struct node *copy(const struct node *n) {
    switch (n->kind) {
    case CONSTANT: return constant(((const struct constant *)n)->value);
    case VARIABLE: return variable(((const struct variable *)n)->name);
    default: {
        const struct binary *b = (const struct binary *)n;
        return binary(n->kind, copy(b->left), copy(b->right));
    }
    }
}

static struct node *random_tree(uint64_t *rng, int depth) {
    if (depth == 0 || rng_range(rng, 0, 9) < 2) {
        if (rng_next(rng) & 1) return constant((double)rng_range(rng, 0, 4));
        return variable(NAMES[rng_range(rng, 0, 3)]);
    }
    static const enum kind OPS[] = {ADD, SUB, MUL, MUL};
    enum kind kind = OPS[rng_range(rng, 0, 3)];
    struct node *left = random_tree(rng, depth - 1);
    return binary(kind, left, random_tree(rng, depth - 1));
}

/* d/dx of n, as a new tree (n is left alone). */
static struct node *derive(const struct node *n) {
    switch (n->kind) {
    case CONSTANT: return constant(0.0);
    case VARIABLE: return constant(strcmp(((const struct variable *)n)->name, "x") == 0 ? 1.0 : 0.0);
    case MUL: {
        const struct binary *b = (const struct binary *)n;
        return binary(ADD, binary(MUL, derive(b->left), copy(b->right)),
                      binary(MUL, copy(b->left), derive(b->right)));
    }
    default: {
        const struct binary *b = (const struct binary *)n;
        return binary(n->kind, derive(b->left), derive(b->right));
    }
    }
}

static int is_constant(const struct node *n, double value) {
    return n->kind == CONSTANT && ((const struct constant *)n)->value == value;
}

/* A simplified copy of n: constants folded, x+0, x-0, x*1 and x*0 removed. */
static struct node *simplify(const struct node *n) {
    if (n->kind == CONSTANT || n->kind == VARIABLE) return copy(n);
    const struct binary *b = (const struct binary *)n;
    struct node *left = simplify(b->left), *right = simplify(b->right);
    if (left->kind == CONSTANT && right->kind == CONSTANT) {
        double l = ((struct constant *)left)->value, r = ((struct constant *)right)->value;
        release(left);
        release(right);
        return constant(n->kind == ADD ? l + r : n->kind == SUB ? l - r : l * r);
    }
    if (n->kind == MUL && (is_constant(left, 0.0) || is_constant(right, 0.0))) {
        release(left);
        release(right);
        return constant(0.0);
    }
    if ((n->kind == MUL && is_constant(left, 1.0)) || (n->kind == ADD && is_constant(left, 0.0))) {
        release(left);
        return right;
    }
    if ((n->kind == MUL || n->kind == ADD || n->kind == SUB) &&
        is_constant(right, n->kind == MUL ? 1.0 : 0.0)) {
        release(right);
        return left;
    }
    return binary(n->kind, left, right);
}

static double evaluate(const struct node *n, const double point[4]) {
    switch (n->kind) {
    case CONSTANT: return ((const struct constant *)n)->value;
    case VARIABLE: {
        const char *name = ((const struct variable *)n)->name;
        for (int i = 0; i < 4; i++)
            if (strcmp(name, NAMES[i]) == 0) return point[i];
        die("unknown variable");
    }
    default: {
        const struct binary *b = (const struct binary *)n;
        double l = evaluate(b->left, point), r = evaluate(b->right, point);
        return n->kind == ADD ? l + r : n->kind == SUB ? l - r : l * r;
    }
    }
}

static void check_same_value(const struct node *a, const struct node *b, uint64_t *rng) {
    double point[4];
    for (int i = 0; i < 4; i++) point[i] = (double)rng_range(rng, 1, 1000) / 500.0;
    double x = evaluate(a, point), y = evaluate(b, point);
    if (fabs(x - y) > 1e-6 * (1.0 + fabs(x))) die("simplification changed an expression's value");
}

int main(int argc, char **argv) {
    long steps = arg_or(argc, argv, 1, 8000);
    int depth = (int)arg_or(argc, argv, 2, 8);
    print_malloc_provider();
    uint64_t rng = 15;
    double start = now_seconds();
    for (long step = 0; step < steps; step++) {
        struct node *tree = random_tree(&rng, depth);
        struct node *first = derive(tree);
        struct node *first_simple = simplify(first);
        check_same_value(first, first_simple, &rng);
        struct node *second = derive(first_simple);
        struct node *second_simple = simplify(second);
        check_same_value(second, second_simple, &rng);
        release(tree);
        release(first);
        release(first_simple);
        release(second);
        release(second_simple);
    }
    double seconds = now_seconds() - start;
    print_result(seconds, allocations, "allocations");
    return 0;
}
