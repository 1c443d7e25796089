/* tensor.c: storage and tensor lifetime, shape checks, allocation. */
#define _POSIX_C_SOURCE 200809L
#include "bcml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

size_t bcml_dtype_size(bcml_dtype dt) {
    switch (dt) {
    case BCML_FLOAT32: return 4;
    case BCML_INT64: return 8;
    case BCML_BOOL: return 1;
    }
    return 0;
}

const char *bcml_dtype_name(bcml_dtype dt) {
    switch (dt) {
    case BCML_FLOAT32: return "float32";
    case BCML_INT64: return "int64";
    case BCML_BOOL: return "bool";
    }
    return "?";
}

/* ---- memory ---------------------------------------------------------------------------
 * Blocks of 4 KiB and more are kept, when freed, in a cache of size classes (four per power of
 * two) and handed out again: a training loop allocates the same sizes every step, and returning
 * them to the system each time costs a page fault per 4 KiB when they come back. The cache is
 * bounded (CACHE_MAX bytes) and shared by threads under a mutex. Each block carries a 64-byte
 * header with its class. Under AddressSanitizer nothing is cached, so use-after-free is seen. */
#if defined(__SANITIZE_ADDRESS__)
#define BCML_NO_CACHE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BCML_NO_CACHE 1
#endif
#endif

#define HDR 64
#define MIN_CACHED 4096
#define NCLASS 160
#define CACHE_MAX ((size_t)512 << 20)
#define CACHE_BLOCK_MAX ((size_t)128 << 20)

typedef struct block { struct block *next; } block;
static block *cache_head[NCLASS];
static size_t cache_bytes = 0;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* Size class of n (>= MIN_CACHED): 4 classes per power of two; *csize gets the class size. */
#ifndef BCML_NO_CACHE
static int size_class(size_t n, size_t *csize) {
    int e = 63 - __builtin_clzll((unsigned long long)n); /* 2^e <= n */
    size_t base = (size_t)1 << e, q = base >> 2;
    size_t k = (n - base + q - 1) / q; /* 0..4 */
    size_t c = base + k * q;
    *csize = c;
    return (e - 12) * 4 + (int)k; /* may reach the next power's class 0 with k == 4: same size */
}
#endif

void *bcml_alloc(size_t nbytes) {
    if (nbytes == 0) nbytes = 64;
    size_t need = (nbytes + 63) & ~(size_t)63;
    if (need < nbytes || need > SIZE_MAX - HDR) return NULL;
    int cls = -1;
#ifndef BCML_NO_CACHE
    if (need >= MIN_CACHED && need <= CACHE_BLOCK_MAX) {
        size_t csize;
        cls = size_class(need, &csize);
        if (cls >= NCLASS) cls = -1;
        else {
            need = csize;
            bcml_atfork_install();
            pthread_mutex_lock(&cache_lock);
            block *b = cache_head[cls];
            if (b) {
                cache_head[cls] = b->next;
                cache_bytes -= need;
            }
            pthread_mutex_unlock(&cache_lock);
            if (b) return b;
        }
    }
#endif
    void *p = NULL;
    if (posix_memalign(&p, 64, need + HDR) != 0) return NULL;
    *(int *)p = cls;
    *(size_t *)((char *)p + 8) = need;
    return (char *)p + HDR;
}

void bcml_free(void *ptr) {
    if (!ptr) return;
    char *p = (char *)ptr - HDR;
    int cls = *(int *)p;
    (void)cls;
#ifndef BCML_NO_CACHE
    if (cls >= 0) {
        size_t need = *(size_t *)(p + 8);
        pthread_mutex_lock(&cache_lock);
        if (cache_bytes + need <= CACHE_MAX) {
            block *b = (block *)ptr;
            b->next = cache_head[cls];
            cache_head[cls] = b;
            cache_bytes += need;
            ptr = NULL;
        }
        pthread_mutex_unlock(&cache_lock);
        if (!ptr) return;
    }
#endif
    free(p);
}

void bcml_release_cached_memory(void) {
    pthread_mutex_lock(&cache_lock);
    for (int c = 0; c < NCLASS; c++) {
        block *b = cache_head[c];
        while (b) {
            block *nx = b->next;
            free((char *)b - HDR);
            b = nx;
        }
        cache_head[c] = NULL;
    }
    cache_bytes = 0;
    pthread_mutex_unlock(&cache_lock);
}

/* The largest tensor bcml_check_shape accepts: physical memory, or less when the build sets
 * BCML_TENSOR_BYTES_MAX (the fuzzing harnesses do, so that a shape that is merely too big
 * fails at once instead of allocating gigabytes). */
static uint64_t physical_memory(void) {
    /* read once (sysconf(_SC_PHYS_PAGES) is a system call, and every new tensor asks): threads
     * that race here compute and store the same value */
    static atomic_uint_fast64_t cached = 0;
    uint64_t m = atomic_load_explicit(&cached, memory_order_relaxed);
    if (m) return m;
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    m = pages <= 0 || size <= 0 ? (uint64_t)1 << 40 : (uint64_t)pages * (uint64_t)size;
#ifdef BCML_TENSOR_BYTES_MAX
    if (m > (uint64_t)(BCML_TENSOR_BYTES_MAX)) m = (uint64_t)(BCML_TENSOR_BYTES_MAX);
#endif
    atomic_store_explicit(&cached, m, memory_order_relaxed);
    return m;
}

bcml_status bcml_check_shape(int ndim, const int64_t *shape, bcml_dtype dt, int64_t *numel,
                             const char *argname, bcml_err *err) {
    if (!argname) argname = "shape";
    if (dt != BCML_FLOAT32 && dt != BCML_INT64 && dt != BCML_BOOL)
        return bcml_fail(err, BCML_ETYPE, "%s: unknown dtype %d", argname, (int)dt);
    if (ndim < 0 || ndim > BCML_MAX_DIMS)
        return bcml_fail(err, BCML_EVALUE, "%s: bcml tensors have at most %d dimensions, got %d",
                         argname, BCML_MAX_DIMS, ndim);
    uint64_t n = 1;
    int overflow = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return bcml_fail(err, BCML_EVALUE, "%s: dimension %d is negative (%lld)", argname, d,
                             (long long)shape[d]);
        if (shape[d] != 0 && n > (uint64_t)INT64_MAX / (uint64_t)shape[d]) overflow = 1;
        else n *= (uint64_t)shape[d];
    }
    /* a zero dimension makes any product 0, even after an overflowing prefix */
    for (int d = 0; d < ndim; d++) if (shape[d] == 0) { n = 0; overflow = 0; }
    size_t isz = bcml_dtype_size(dt);
    if (overflow || n > (uint64_t)INT64_MAX / isz || n * isz > physical_memory())
        return bcml_fail(err, BCML_EVALUE,
                         "%s: a tensor of this size (%s%llu elements of %s) does not fit in memory",
                         argname, overflow ? "more than " : "", (unsigned long long)n,
                         bcml_dtype_name(dt));
    *numel = (int64_t)n;
    return BCML_OK;
}

static bcml_tensor *header_new(bcml_dtype dt, int ndim, const int64_t *shape, int64_t numel) {
    bcml_tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    atomic_init(&t->refcount, 1);
    t->dtype = dt;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->numel = numel;
    return t;
}

static atomic_llong storage_bytes;   /* bytes of the storages bcml allocated that are alive */

int64_t bcml_storage_bytes(void) { return (int64_t)atomic_load(&storage_bytes); }

/* Zeroes a new buffer; large ones (gradient buffers backward adds into) on the pool's threads. */
static void zero_range(void *p, int64_t lo, int64_t hi) { memset((char *)p + lo, 0, (size_t)(hi - lo)); }

static void zero_fill(void *data, size_t nbytes) {
    if (nbytes < ((size_t)1 << 18)) memset(data, 0, nbytes);
    else bcml_parallel_for((int64_t)nbytes, (int64_t)1 << 17, zero_range, data);
}

bcml_status bcml_tensor_new(bcml_tensor **out, bcml_dtype dt, int ndim, const int64_t *shape,
                            int zero, bcml_err *err) {
    int64_t numel;
    bcml_status st = bcml_check_shape(ndim, shape, dt, &numel, "shape", err);
    if (st) return st;
    size_t nbytes = (size_t)numel * bcml_dtype_size(dt);
    bcml_tensor *t = header_new(dt, ndim, shape, numel);
    bcml_storage *s = calloc(1, sizeof *s);
    void *data = bcml_alloc(nbytes);
    if (!t || !s || !data) {
        free(t); free(s); bcml_free(data);
        return bcml_fail(err, BCML_ENOMEM, "out of memory allocating %zu bytes for a tensor",
                         nbytes);
    }
    if (zero) zero_fill(data, nbytes);
    atomic_init(&s->refcount, 1);
    s->data = data;
    s->nbytes = nbytes;
    atomic_fetch_add(&storage_bytes, (long long)nbytes);
    t->storage = s;
    *out = t;
    return BCML_OK;
}

bcml_status bcml_tensor_new_like(bcml_tensor **out, const bcml_tensor *like, bcml_dtype dt,
                                 int zero, bcml_err *err) {
    return bcml_tensor_new(out, dt, like->ndim, like->shape, zero, err);
}

bcml_status bcml_tensor_wrap(bcml_tensor **out, void *data, bcml_dtype dt, int ndim,
                             const int64_t *shape, void *owner, void (*release)(void *),
                             bcml_err *err) {
    int64_t numel;
    bcml_status st = bcml_check_shape(ndim, shape, dt, &numel, "array", err);
    if (st) return st;
    bcml_tensor *t = header_new(dt, ndim, shape, numel);
    bcml_storage *s = calloc(1, sizeof *s);
    if (!t || !s) {
        free(t); free(s);
        return bcml_fail(err, BCML_ENOMEM, "out of memory wrapping an array");
    }
    atomic_init(&s->refcount, 1);
    s->data = data;
    s->nbytes = (size_t)numel * bcml_dtype_size(dt);
    s->owner = owner;
    s->release = release;
    t->storage = s;
    *out = t;
    return BCML_OK;
}

bcml_status bcml_tensor_alias(bcml_tensor **out, const bcml_tensor *t, int ndim,
                              const int64_t *shape, size_t offset, bcml_err *err) {
    int64_t numel;
    bcml_status st = bcml_check_shape(ndim, shape, t->dtype, &numel, "shape", err);
    if (st) return st;
    size_t isz = bcml_dtype_size(t->dtype), nbytes = t->storage->nbytes;
    /* offset > nbytes first: offset + size could wrap around */
    if (offset > nbytes || (size_t)numel * isz > nbytes - offset)
        return bcml_fail(err, BCML_EVALUE,
                         "view of %lld elements at byte offset %zu does not fit the storage of %zu bytes",
                         (long long)numel, offset, nbytes);
    if (offset % isz)
        return bcml_fail(err, BCML_EVALUE, "view at byte offset %zu is not aligned to its %s elements",
                         offset, bcml_dtype_name(t->dtype));
    bcml_tensor *a = header_new(t->dtype, ndim, shape, numel);
    if (!a) return bcml_fail(err, BCML_ENOMEM, "out of memory creating a view");
    atomic_fetch_add(&t->storage->refcount, 1);
    a->storage = t->storage;
    a->offset = offset;
    *out = a;
    return BCML_OK;
}

bcml_tensor *bcml_tensor_ref(bcml_tensor *t) {
    if (t) atomic_fetch_add(&t->refcount, 1);
    return t;
}

static void storage_unref(bcml_storage *s) {
    if (!s || atomic_fetch_sub(&s->refcount, 1) != 1) return;
    if (s->owner) {
        if (s->release) s->release(s->owner);
    } else {
        atomic_fetch_sub(&storage_bytes, (long long)s->nbytes);
        bcml_free(s->data);
    }
    free(s);
}

/* ---- release without recursion ----------------------------------------------------------
 * A graph is a chain tensor -> node -> input tensor -> node ... of any length (a loop of a
 * million ops makes one). Freeing it recursively would use C stack in proportion to its depth,
 * so objects whose last reference goes are pushed on this thread's release lists (linked
 * through their own next_free fields: no allocation) and the outermost call frees them one by
 * one; dropping their references may push more, never recurse. */
typedef struct {
    bcml_tensor *tensors;
    bcml_node *nodes;
    int releasing;
} release_lists;
static _Thread_local release_lists dead;   /* one TLS lookup per call (bcml is a shared object) */

/* Drops one reference; the last one queues the object for drain(). */
static void push_tensor(release_lists *r, bcml_tensor *t) {
    if (!t || atomic_fetch_sub(&t->refcount, 1) != 1) return;
    t->next_free = r->tensors;
    r->tensors = t;
}

static void push_node(release_lists *r, bcml_node *n) {
    if (!n || atomic_fetch_sub(&n->refcount, 1) != 1) return;
    n->next_free = r->nodes;
    r->nodes = n;
}

static void drain(release_lists *r) {
    if (r->releasing) return;
    r->releasing = 1;
    for (;;) {
        if (r->tensors) {
            bcml_tensor *t = r->tensors;
            r->tensors = t->next_free;
            storage_unref(t->storage);
            push_tensor(r, t->grad);
            push_tensor(r, t->base);
            push_node(r, t->grad_fn);
            bcml_hooks_free(t->hooks);
            free(t);
        } else if (r->nodes) {
            bcml_node *n = r->nodes;
            r->nodes = n->next_free;
            for (int k = 0; k < BCML_MAX_IN; k++) push_tensor(r, n->in[k]);
            for (int k = 0; k < 4; k++) push_tensor(r, n->saved[k]);
            push_tensor(r, n->grad_acc);
            bcml_hooks_free(n->hooks);
            free(n);
        } else {
            break;
        }
    }
    r->releasing = 0;
}

void bcml_tensor_unref(bcml_tensor *t) {
    /* a reference that is not the last (the common case) touches no thread-local state */
    if (!t || atomic_fetch_sub(&t->refcount, 1) != 1) return;
    release_lists *r = &dead;
    t->next_free = r->tensors;
    r->tensors = t;
    drain(r);
}

void bcml_node_unref(bcml_node *n) {
    if (!n || atomic_fetch_sub(&n->refcount, 1) != 1) return;
    release_lists *r = &dead;
    n->next_free = r->nodes;
    r->nodes = n;
    drain(r);
}

void bcml_tensor_drop_storage(bcml_tensor *t) {
    bcml_storage *s = t->storage;
    t->storage = NULL;
    storage_unref(s);
}

bcml_status bcml_tensor_pin(bcml_tensor **out, const bcml_tensor *t, bcml_err *err) {
    bcml_tensor *a = header_new(t->dtype, t->ndim, t->shape, t->numel);
    if (!a) return bcml_fail(err, BCML_ENOMEM, "out of memory pinning a tensor");
    if (t->storage) atomic_fetch_add(&t->storage->refcount, 1);
    a->storage = t->storage;
    a->offset = t->offset;
    a->requires_grad = t->requires_grad;
    if (t->grad_fn) atomic_fetch_add(&t->grad_fn->refcount, 1);
    a->grad_fn = t->grad_fn;
    if (t->base) a->base = bcml_tensor_ref(t->base);
    else if (!t->grad_fn && t->requires_grad) a->base = bcml_tensor_ref((bcml_tensor *)t);
    *out = a;
    return BCML_OK;
}

bcml_status bcml_tensor_set_data(bcml_tensor *t, const bcml_tensor *src, bcml_err *err) {
    if (t->dtype != src->dtype)
        return bcml_fail(err, BCML_ETYPE, "data: assigned tensor must have the same dtype (%s), got %s",
                         bcml_dtype_name(t->dtype), bcml_dtype_name(src->dtype));
    if (!src->storage)
        return bcml_fail(err, BCML_ERUNTIME, "data: the assigned tensor's storage was freed");
    atomic_fetch_add(&src->storage->refcount, 1);
    bcml_tensor_bump_version(t);
    bcml_storage *old = t->storage;
    t->storage = src->storage;
    t->offset = src->offset;
    t->ndim = src->ndim;
    memcpy(t->shape, src->shape, sizeof t->shape);
    t->numel = src->numel;
    storage_unref(old);
    bcml_tensor *g = bcml_grad_get(t);
    if (g && !bcml_same_shape(g, t)) bcml_grad_set(t, NULL);
    bcml_tensor_unref(g);
    return BCML_OK;
}

/* ---- .grad under a lock --------------------------------------------------------------------
 * backward (with the GIL released) creates and fills leaves' .grad while other threads may read
 * it or set it to None (zero_grad); every access to the pointer goes through this lock, and
 * users of the buffer hold a reference to it, so a buffer dropped by zero_grad lives until the
 * last user lets go. */
static pthread_mutex_t grad_lock = PTHREAD_MUTEX_INITIALIZER;

/* For the fork handlers of threads.c (the one registration of bcml's atfork handlers): the
 * allocator cache's mutex and the grad lock are held across fork() and released in parent and
 * child. Neither is held while taking the other. */
void bcml_tensor_fork_lock(void) {
    pthread_mutex_lock(&cache_lock);
    pthread_mutex_lock(&grad_lock);
}
void bcml_tensor_fork_unlock(void) {
    pthread_mutex_unlock(&grad_lock);
    pthread_mutex_unlock(&cache_lock);
}

bcml_tensor *bcml_grad_get(bcml_tensor *t) {
    bcml_atfork_install();
    pthread_mutex_lock(&grad_lock);
    bcml_tensor *g = bcml_tensor_ref(t->grad);
    pthread_mutex_unlock(&grad_lock);
    return g;
}

void bcml_grad_set(bcml_tensor *t, bcml_tensor *g) {
    bcml_atfork_install();
    bcml_tensor_ref(g);
    pthread_mutex_lock(&grad_lock);
    bcml_tensor *old = t->grad;
    t->grad = g;
    pthread_mutex_unlock(&grad_lock);
    bcml_tensor_unref(old);
}

/* The leaf gradient buffer of t (created zeroed with t's shape when absent), as a new
 * reference; EVALUE when an existing .grad does not match t. */
bcml_status bcml_grad_acquire(bcml_tensor *t, const bcml_tensor *like, bcml_tensor **out, bcml_err *err) {
    bcml_atfork_install();
    *out = NULL;
    pthread_mutex_lock(&grad_lock);
    bcml_tensor *g = bcml_tensor_ref(t->grad);
    pthread_mutex_unlock(&grad_lock);
    if (!g) {
        bcml_tensor *fresh = NULL;
        bcml_status st = bcml_tensor_new(&fresh, BCML_FLOAT32, like->ndim, like->shape, 1, err);
        if (st) return st;
        pthread_mutex_lock(&grad_lock);
        if (!t->grad) t->grad = bcml_tensor_ref(fresh);   /* else another thread was first: use its */
        g = bcml_tensor_ref(t->grad);
        pthread_mutex_unlock(&grad_lock);
        bcml_tensor_unref(fresh);
    }
    if (g->numel != like->numel || g->dtype != BCML_FLOAT32) {
        bcml_tensor_unref(g);
        return bcml_fail(err, BCML_ERUNTIME, "backward: a .grad of the wrong shape or dtype is attached to a leaf");
    }
    *out = g;
    return BCML_OK;
}

int bcml_same_shape(const bcml_tensor *a, const bcml_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

size_t bcml_nbytes(const bcml_tensor *t) { return (size_t)t->numel * bcml_dtype_size(t->dtype); }

const char *bcml_shape_str(const bcml_tensor *t, char *buf, size_t n) {
    size_t used = 0;
    used += (size_t)snprintf(buf + used, n - used, "(");
    for (int d = 0; d < t->ndim && used < n; d++)
        used += (size_t)snprintf(buf + used, n - used, d ? ", %lld" : "%lld",
                                 (long long)t->shape[d]);
    if (used < n) snprintf(buf + used, n - used, t->ndim == 1 ? ",)" : ")");
    return buf;
}

bcml_status bcml_norm_dim(int64_t *dim, int ndim, const char *argname, bcml_err *err) {
    int n = ndim == 0 ? 1 : ndim;
    if (*dim < -n || *dim >= n)
        return bcml_fail(err, BCML_EINDEX,
                         "%s: dimension out of range (expected to be in range of [%d, %d], but got %lld)",
                         argname, -n, n - 1, (long long)*dim);
    if (*dim < 0) *dim += n;
    return BCML_OK;
}

bcml_status bcml_require_dtype(const bcml_tensor *t, bcml_dtype dt, const char *opname,
                               const char *argname, bcml_err *err) {
    if (t->dtype == dt) return BCML_OK;
    return bcml_fail(err, BCML_ETYPE, "%s: %s must be a %s tensor, got %s", opname, argname,
                     bcml_dtype_name(dt), bcml_dtype_name(t->dtype));
}
