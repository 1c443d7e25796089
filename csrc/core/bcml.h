/* bcml.h: the pure-C11 core of bcml (no Python here).
 *
 * Tensors are contiguous, reference-counted views of a reference-counted storage.
 * Every op goes through one dispatcher, bcml_apply(), with an op id from the enum below,
 * a small argument block and up to BCML_MAX_IN input tensors; when gradients are enabled
 * and an input requires grad, the call records a node (op, args, inputs, saved buffers)
 * and bcml_backward() runs the recorded nodes in reverse. Every fallible function returns
 * a bcml_status and writes a message into a bcml_err. */
#ifndef BCML_H
#define BCML_H

#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>

#define BCML_MAX_DIMS 4
#define BCML_MAX_IN 6
#define BCML_MAX_OUT 2

typedef enum {
    BCML_OK = 0,
    BCML_EVALUE,   /* bad value, shape, size -> ValueError */
    BCML_ETYPE,    /* bad dtype -> TypeError */
    BCML_ENOMEM,   /* allocation failed -> MemoryError */
    BCML_EINDEX,   /* index out of range -> IndexError */
    BCML_EIO,      /* file error -> OSError */
    BCML_ERUNTIME  /* misuse (e.g. backward through a non-scalar) -> RuntimeError */
} bcml_status;

typedef struct bcml_err { char msg[512]; } bcml_err;

/* Formats a message into err (may be NULL) and returns status. */
bcml_status bcml_fail(bcml_err *err, bcml_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

typedef enum { BCML_FLOAT32 = 0, BCML_INT64 = 1, BCML_BOOL = 2 } bcml_dtype;
size_t bcml_dtype_size(bcml_dtype dt);
const char *bcml_dtype_name(bcml_dtype dt);

/* ---- storage ---------------------------------------------------------------------- */
typedef struct bcml_storage {
    atomic_long refcount;
    atomic_long version;           /* bumped by every in-place write; shared by all views */
    void *data;
    size_t nbytes;
    void *owner;                   /* external owner (e.g. a NumPy array) or NULL */
    void (*release)(void *owner);  /* called once when the storage dies, if owner */
} bcml_storage;

/* ---- tensor ------------------------------------------------------------------------ */
struct bcml_node;
struct bcml_hook;
typedef struct bcml_tensor {
    atomic_long refcount;
    bcml_dtype dtype;
    int ndim;
    int64_t shape[BCML_MAX_DIMS];
    int64_t numel;
    bcml_storage *storage;   /* owned */
    size_t offset;           /* in bytes, into storage->data */
    int requires_grad;
    struct bcml_tensor *grad;      /* owned, accumulated by backward for leaves; read and written
                                      only through bcml_grad_get / bcml_grad_set / backward, under
                                      the core's grad lock (threads may race on it) */
    struct bcml_node *grad_fn;     /* owned, NULL for leaves */
    struct bcml_tensor *base;      /* owned: for a pinned snapshot of a leaf that requires grad,
                                      the tensor whose .grad receives its gradient; else NULL */
    struct bcml_tensor *next_free; /* tensor.c's release list (no recursion on deep graphs) */
    struct bcml_hook *hooks;       /* owned: backward hooks of a leaf (bcml_hook_add), or NULL */
} bcml_tensor;

static inline void *bcml_data(const bcml_tensor *t) {
    return (char *)t->storage->data + t->offset;
}
static inline float *bcml_f32(const bcml_tensor *t) { return (float *)bcml_data(t); }
static inline int64_t *bcml_i64(const bcml_tensor *t) { return (int64_t *)bcml_data(t); }
static inline uint8_t *bcml_u8(const bcml_tensor *t) { return (uint8_t *)bcml_data(t); }

/* Checks a shape (0 <= ndim <= 4, dims >= 0, no overflow, fits in memory); fills *numel. */
bcml_status bcml_check_shape(int ndim, const int64_t *shape, bcml_dtype dt, int64_t *numel,
                             const char *argname, bcml_err *err);
/* New tensor with uninitialised (or zeroed) memory. */
bcml_status bcml_tensor_new(bcml_tensor **out, bcml_dtype dt, int ndim, const int64_t *shape,
                            int zero, bcml_err *err);
/* New tensor with the shape of like (dtype may differ). */
bcml_status bcml_tensor_new_like(bcml_tensor **out, const bcml_tensor *like, bcml_dtype dt,
                                 int zero, bcml_err *err);
/* Wraps external memory (contiguous); release(owner) is called when the storage dies. */
bcml_status bcml_tensor_wrap(bcml_tensor **out, void *data, bcml_dtype dt, int ndim,
                             const int64_t *shape, void *owner, void (*release)(void *),
                             bcml_err *err);
/* A new tensor header sharing t's storage with another shape (same numel) and byte offset,
 * no grad_fn, no grad. */
bcml_status bcml_tensor_alias(bcml_tensor **out, const bcml_tensor *t, int ndim,
                              const int64_t *shape, size_t offset, bcml_err *err);
bcml_tensor *bcml_tensor_ref(bcml_tensor *t);
/* NULL is fine. Frees iteratively: dropping the last reference to a graph of any depth uses
 * constant C stack. */
void bcml_tensor_unref(bcml_tensor *t);
/* A pinned snapshot of t: a new header sharing t's storage (referenced), with t's dtype, shape,
 * offset, requires_grad and grad_fn, and base = the tensor whose .grad receives gradients for a
 * leaf that requires grad. A snapshot never changes, whatever is later done to t (.data =), so
 * kernels that run without the caller's lock (the binding's GIL) and autograd nodes read
 * snapshots, never the caller's headers. */
bcml_status bcml_tensor_pin(bcml_tensor **out, const bcml_tensor *t, bcml_err *err);
/* Releases t's storage (t keeps its shape; its data must never be read again): what a node
 * keeps of its inputs after a backward without retain_graph. For the core's own snapshots only. */
void bcml_tensor_drop_storage(bcml_tensor *t);
/* The tensor whose .grad a leaf's gradient goes to (t->base for a snapshot, else t). */
static inline bcml_tensor *bcml_grad_owner(bcml_tensor *t) { return t->base ? t->base : t; }
/* Version counter of t's storage (shared by every view of it), and its bump after an in-place
 * write. Backward refuses to use a saved tensor whose version moved. */
static inline int64_t bcml_tensor_version(const bcml_tensor *t) {
    return (int64_t)atomic_load_explicit(&t->storage->version, memory_order_acquire);
}
static inline void bcml_tensor_bump_version(bcml_tensor *t) {
    if (t && t->storage) atomic_fetch_add_explicit(&t->storage->version, 1, memory_order_acq_rel);
}
/* Makes t view src's storage with src's shape and offset (the `.data =` assignment; same dtype
 * required). t's old storage has its version bumped first, so graphs that saved it refuse to
 * backpropagate; t's .grad is dropped when its shape no longer matches. The caller serialises
 * this with every other use of the header t (the binding: the GIL; GIL-free calls use pins). */
bcml_status bcml_tensor_set_data(bcml_tensor *t, const bcml_tensor *src, bcml_err *err);
/* t's .grad as a new reference (NULL if none), and its replacement (g may be NULL; a new
 * reference to g is taken). Thread-safe against backward and other callers. */
bcml_tensor *bcml_grad_get(bcml_tensor *t);
void bcml_grad_set(bcml_tensor *t, bcml_tensor *g);
/* t's .grad, created zeroed with like's shape when absent, as a new reference (ERUNTIME when an
 * attached .grad does not match like). */
bcml_status bcml_grad_acquire(bcml_tensor *t, const bcml_tensor *like, bcml_tensor **out, bcml_err *err);
int bcml_same_shape(const bcml_tensor *a, const bcml_tensor *b);
size_t bcml_nbytes(const bcml_tensor *t);
/* Writes "(2, 3)" into buf. */
const char *bcml_shape_str(const bcml_tensor *t, char *buf, size_t n);
/* 64-byte aligned allocation helpers for kernels' scratch memory. */
void *bcml_alloc(size_t nbytes);
void bcml_free(void *p);
/* Returns the blocks kept by bcml_free's cache to the system. */
void bcml_release_cached_memory(void);
/* Bytes held by the live storages bcml allocated (tensors wrapping NumPy memory not counted). */
int64_t bcml_storage_bytes(void);

/* ---- threads (threads.c) ------------------------------------------------------------------- */
/* A task of a split op: k in [0, n). */
typedef void (*bcml_task_fn)(void *arg, int64_t k, int64_t n);
/* Runs every task once on up to bcml_get_num_threads() threads: each thread starts with its own
 * block of tasks and then takes tasks others have not started (see threads.c). */
void bcml_parallel(int64_t ntasks, bcml_task_fn fn, void *arg);
/* For tests: runs n tasks (1 <= n <= 1024) through bcml_parallel, the caller's first task waiting
 * (up to two seconds) until every other task has run, so that with two threads or more the
 * caller's other tasks must be taken by another thread. runs[k]: times task k ran; by_caller[k]: 1
 * if the calling thread ran it. */
bcml_status bcml_parallel_selftest(int64_t n, int64_t *runs, int64_t *by_caller, bcml_err *err);
/* A chunk [lo, hi) of an elementwise loop. */
typedef void (*bcml_range_fn)(void *arg, int64_t lo, int64_t hi);
/* Runs fn over [0, n) in chunks of at least grain elements (at most 8 chunks), the chunks fixed
 * by n and grain alone (never the thread count), in parallel; small n runs in one call. For
 * loops whose elements are independent (the result is the same bits with any thread count). */
void bcml_parallel_for(int64_t n, int64_t grain, bcml_range_fn fn, void *arg);
/* Threads bcml's kernels may use (the process default; starts pool threads as needed). */
void bcml_set_num_threads(int n);
int bcml_get_num_threads(void);
/* Winograd convolution for 3x3 stride-1 convolutions: 1 on (the default), 0 off; 4 runs F(4x4)
 * where F(2x2) would run (tests and benchmarks only) (winograd.c). */
void bcml_set_winograd(int mode);
int bcml_get_winograd(void);
/* The direct convolution kernels for small channel counts (conv_direct.c): 1 on where the CPU has
 * AVX-512 (the default), 0 off (tests and benchmarks). */
void bcml_set_conv_direct(int on);
int bcml_get_conv_direct(void);
/* Every AVX-512 kernel (direct convolution, narrow linear, 2 x 2 max pool): 1 on where the CPU
 * has AVX-512F (the default), 0 off: the portable kernels everywhere (tests) (cpu.c). */
void bcml_set_avx512(int on);
int bcml_get_avx512(void);
/* 1 where this build and CPU can run them (x86-64 with AVX-512F). */
int bcml_cpu_avx512(void);
/* Caps the calling thread (e.g. 1 inside a sweep job); 0 removes the cap. */
void bcml_set_thread_limit(int n);
/* Fork safety (threads.c). Every call into the BLAS holds the BLAS lock in shared mode
 * (blas.h's wrappers call enter/leave); the fork handlers take it exclusively (writers first:
 * new callers wait while a fork waits) and then tensor.c's locks (allocator cache, .grad), so
 * a child never inherits a lock held by a thread it does not have. The handlers are registered
 * once, on the first call of bcml_atfork_install (bcml_set_num_threads, the BLAS lock, the
 * allocator and the .grad accessors call it). bcml_tensor_fork_lock/unlock (tensor.c) are for
 * those handlers only. */
void bcml_blas_enter(void);
void bcml_blas_leave(void);
void bcml_atfork_install(void);
void bcml_tensor_fork_lock(void);
void bcml_tensor_fork_unlock(void);

/* ---- random numbers ------------------------------------------------------------------ */
/* xoshiro256** seeded through splitmix64. Never global: callers pass a generator in. */
typedef struct bcml_generator { uint64_t s[4]; uint64_t seed; } bcml_generator;
void bcml_gen_seed(bcml_generator *g, uint64_t seed);
uint64_t bcml_gen_next(bcml_generator *g);
double bcml_gen_uniform(bcml_generator *g);          /* [0, 1) with 53 bits */
float bcml_gen_uniform_f(bcml_generator *g);         /* [0, 1) with 24 bits */
double bcml_gen_normal(bcml_generator *g);           /* N(0, 1) */
uint64_t bcml_gen_below(bcml_generator *g, uint64_t n); /* uniform in [0, n), n > 0 */
/* Derives the seed of child generator `index` of a parent seed (sweep jobs). */
uint64_t bcml_gen_derive(uint64_t seed, uint64_t index);
void bcml_fill_uniform(float *x, int64_t n, float lo, float hi, bcml_generator *g);
void bcml_fill_normal(float *x, int64_t n, float mean, float std, bcml_generator *g);
void bcml_randperm(int64_t *out, int64_t n, bcml_generator *g);

/* ---- ops ------------------------------------------------------------------------------ */
/* The op table. Keep in step with bcml_ops[] in ops.c (a static assert checks the count).
 * Argument block meanings are documented beside each op's forward function. */
typedef enum {
    BCML_OP_ADD = 0,       /* a + b (broadcast) */
    BCML_OP_SUB,           /* a - b (broadcast) */
    BCML_OP_MUL,           /* a * b (broadcast) */
    BCML_OP_DIV,           /* a / b (broadcast) */
    BCML_OP_ADD_SCALAR,    /* a * f[1] + f[0]: covers x + s, x - s, s - x, -x, x * s;
                              i[0] = 1: int64 a * i[2] + i[1], exact */
    BCML_OP_RDIV_SCALAR,   /* f[0] / a */
    BCML_OP_POW_SCALAR,    /* a ** f[0] */
    BCML_OP_EXP,
    BCML_OP_LOG,
    BCML_OP_ABS,
    BCML_OP_CLAMP,         /* clamp(a, f[0], f[1]); i[0] bit0: has min, bit1: has max */
    BCML_OP_RELU,
    BCML_OP_SIGMOID,
    BCML_OP_TANH,
    BCML_OP_SOFTMAX,       /* i[0] = dim */
    BCML_OP_LOG_SOFTMAX,   /* i[0] = dim */
    BCML_OP_SUM,           /* i[0] = dim (-1 for all after normalisation: see i[2]), i[1] = keepdim, i[2] = all */
    BCML_OP_MEAN,          /* as SUM */
    BCML_OP_MAX_DIM,       /* out0 values, out1 int64 indices; i[0] = dim, i[1] = keepdim */
    BCML_OP_ARGMAX,        /* i[0] = dim, i[1] = keepdim, i[2] = all */
    BCML_OP_MATMUL,        /* (n,k)@(k,m), (k)@(k,m), (n,k)@(k), (b,n,k)@(b,k,m) */
    BCML_OP_LINEAR,        /* x @ W^T + b; in: x (.., C), W (OC, C), b (OC) or NULL */
    BCML_OP_TRANSPOSE,     /* swap dims i[0], i[1] (copy) */
    BCML_OP_RESHAPE,       /* new shape i[0..ndim-1], ndim = i[4] */
    BCML_OP_SLICE,         /* along dim i[0]: start i[1], stop i[2], step i[3] */
    BCML_OP_INDEX_SELECT,  /* rows (dim i[0]) picked by int64 index tensor in[1] */
    BCML_OP_MASK_SELECT,   /* rows (dim 0) picked by a bool mask in[1] of length shape[0] */
    BCML_OP_CAT,           /* concatenate in[0..n) along dim i[0] */
    BCML_OP_CAST,          /* to dtype i[0] */
    BCML_OP_CMP,           /* bool out: a ? b, broadcast; i[0]: 0 eq 1 ne 2 lt 3 le 4 gt 5 ge */
    BCML_OP_CMP_SCALAR,    /* bool out: a ? f[0]; i[0] as CMP; i[1] = 1: a ? i[2] (int64, exact) */
    BCML_OP_WHERE,         /* where(cond in[0], a in[1], b in[2]) */
    BCML_OP_DROPOUT,       /* p = f[0]; i[0] = training; uses the generator */
    BCML_OP_BATCH_NORM,    /* in: x (N,C[,L]) or (N,C,H,W), weight, bias, running_mean, running_var,
                              num_batches_tracked (each may be NULL; the last is incremented when training);
                              f[0] = momentum, f[1] = eps; i[0] = training */
    BCML_OP_NLL_LOSS,      /* in: logp (B,C), target int64 (B); i[0] = reduction (0 none, 1 mean, 2 sum), i[1] = ignore_index */
    BCML_OP_CROSS_ENTROPY, /* in: logits (B,C), target (B), weight (C) or NULL; i[0] = reduction, i[1] = ignore_index */
    BCML_OP_BCE,           /* in: p, target (same numel), weight or NULL; i[0] = reduction */
    BCML_OP_KL_DIV,        /* in: input (log-probs), target (probs or log-probs); i[0] = reduction (3 batchmean), i[1] = log_target */
    BCML_OP_CONV2D,        /* in: x (N,C,H,W), weight (OC, C/groups, KH, KW), bias (OC) or NULL;
                              i[0..1] stride h,w; i[2..3] padding h,w; i[4..5] dilation h,w; i[6] groups */
    BCML_OP_MAX_POOL2D,    /* in: x (N,C,H,W) or (C,H,W); i[0..1] kernel h,w; i[2..3] stride h,w;
                              i[4..5] padding h,w; i[6] ceil_mode; i[7] dilation (same both ways) */
    BCML_OP_AVG_POOL2D,    /* as MAX_POOL2D for i[0..6]; i[7] count_include_pad */
    BCML_OP_ADAPTIVE_AVG_POOL2D, /* in: x (N,C,H,W) or (C,H,W); i[0..1] output size h,w */
    BCML_OP_DROPOUT2D,     /* in: x of rank >= 2 (N,C,...) as PyTorch 2.13 (3-D is (N,C,L)); f[0] p; zeroes whole
                              (n, c) slices; uses the generator */
    BCML_OP_COMPAT_LOSS,   /* in: h2 output, target, h1 output; i[0] kind (0 nll 1 ce 2 bce 3 kl), i[1] mode
                              (0 new-error 1 strict-imitation), i[2] reduction, i[3] dissonance only;
                              f[0] lambda_c, f[1] discriminant pivot (see compat_loss.c) */
    BCML_OP_CONV2D_BN_RELU, /* eval-mode conv (no bias) + batch norm (+ ReLU), forward only: in: x, weight,
                               running_mean, running_var, bn weight, bn bias (OC each); i[0..6] as
                               CONV2D, i[7] relu; f[0] eps */
    BCML_OP_PC_LOSS,       /* in: h2 logits, target, h1 logits; i[0] kind (0 focal kl 1 focal l2 2 ldi), i[1]
                              reduction, i[2] top_k, i[3] penalty only; f[0] lambda_c, f[1..3] (see pc_loss.c) */
    BCML_OP_COUNT
} bcml_op;

typedef struct bcml_args {
    int64_t i[8];
    double f[4];
} bcml_args;

typedef struct bcml_ctx {
    int grad_enabled;
    bcml_generator *gen;   /* may be NULL for ops that draw nothing */
    int pinned;            /* 1: the inputs are private snapshots (bcml_tensor_pin) already */
} bcml_ctx;

typedef struct bcml_node {
    atomic_long refcount;
    int op;
    bcml_args args;
    int n_in;
    bcml_tensor *in[BCML_MAX_IN];     /* owned refs; NULL for an absent optional input */
    int needs_grad[BCML_MAX_IN];
    bcml_tensor *saved[4];            /* owned: op-specific buffers (masks, stats, output data) */
    int64_t out_shape[BCML_MAX_DIMS];
    int out_ndim;
    bcml_tensor *grad_acc;            /* owned, only during backward */
    int recording;                    /* forward: 1 when the node will be kept (save what backward needs) */
    atomic_long owner;                /* engine bookkeeping: id of the backward visiting the node */
    int64_t in_version[BCML_MAX_IN];  /* version of each input when the node was made */
    int64_t saved_version[4];         /* version of each saved buffer after the forward */
    int freed;                        /* saved data released by a backward without retain_graph */
    int has_saved;                    /* backward reads saved data (inputs or buffers) */
    struct bcml_node *next_free;      /* tensor.c's release list */
    struct bcml_hook *hooks;          /* owned: hooks on the gradient of the node's output, or NULL */
    unsigned fresh;                   /* during backward: bit k set when din[k] is a new buffer, not yet
                                         written (only for inputs in its op's fresh_ok) */
} bcml_node;

typedef bcml_status (*bcml_forward_fn)(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out,
                                       bcml_err *err);
/* din[k] is non-NULL where n->needs_grad[k]: a buffer with in[k]'s shape that backward ADDS
 * into (zero-initialised or partly accumulated), except where bit k of n->fresh is set: then
 * it is a new buffer whose contents are undefined, and backward must WRITE every element. */
typedef bcml_status (*bcml_backward_fn)(bcml_node *n, const bcml_tensor *dout,
                                        bcml_tensor **din, bcml_err *err);

typedef struct bcml_opdef {
    const char *name;
    int n_in_min, n_in_max;   /* inputs accepted (n_in_max of -1 for variadic up to BCML_MAX_IN) */
    int n_out;
    bcml_forward_fn forward;
    bcml_backward_fn backward;   /* NULL: not differentiable */
    unsigned fresh_ok;           /* bit k: backward can write din[k] from scratch (n->fresh); the
                                    engine then skips zeroing that gradient buffer */
} bcml_opdef;

extern const bcml_opdef bcml_ops[];   /* BCML_OP_COUNT entries (ops.c checks the count) */
/* Tests: new gradient buffers an op's backward must write from scratch (fresh_ok) start as NaN. */
void bcml_set_poison_fresh(int on);
int bcml_get_poison_fresh(void);
/* Checks that every op has a complete table entry (called once at import). */
bcml_status bcml_ops_check(bcml_err *err);

/* Runs op on inputs; out[0..n_out) receive new references. Records a node on out[0] when
 * ctx->grad_enabled, the op is differentiable and an input requires grad. The op's kernels read
 * pinned snapshots of the inputs (bcml_tensor_pin), made here unless ctx->pinned says the
 * caller passes snapshots already. */
bcml_status bcml_apply(bcml_ctx *ctx, int op, const bcml_args *args, bcml_tensor *const *in,
                       int n_in, bcml_tensor **out, bcml_err *err);
/* Backpropagates from root with seed gradient grad (NULL: ones, root must have 1 element).
 * Before any kernel runs, every saved tensor's version is checked (ERUNTIME naming the op and
 * the tensor's shape when an in-place write moved it). Without retain_graph the saved data of
 * every node it ran is released, and a later backward through a node that needed it fails
 * with ERUNTIME. Two threads backpropagating through the same node at once: the second gets
 * ERUNTIME. Leaf gradients are accumulated under the grad lock into buffers it holds
 * references to, so another thread's zero_grad cannot free them mid-kernel. */
bcml_status bcml_backward(bcml_tensor *root, const bcml_tensor *grad, int retain_graph, bcml_err *err);
void bcml_node_unref(bcml_node *n);

/* ---- backward hooks (autograd.c) --------------------------------------------------------
 * A hook is called by bcml_backward with the gradient of the tensor it was added to, once that
 * gradient is complete (all of its consumers have run): for a tensor made by an op, just before
 * the op's backward; for a leaf, just before the gradient is added into its .grad. It may set
 * *replacement to a new reference to a float32 tensor of grad's shape, which is used from then
 * on in grad's place (by the next hook, the op's backward, the .grad); NULL keeps grad. grad must
 * not be written. A failing hook stops the backward with its status. Hooks run in the order they
 * were added, on the thread that called bcml_backward; the binding serialises adding hooks with
 * backward (the GIL). */
typedef bcml_status (*bcml_hook_fn)(void *user, bcml_tensor *grad, bcml_tensor **replacement, bcml_err *err);
typedef struct bcml_hook {
    bcml_hook_fn fn;
    void *user;
    void (*release)(void *user);      /* called once when the hook is freed with the tensor or node */
    struct bcml_hook *next;
} bcml_hook;
/* Adds a hook to t (which must require grad: ERUNTIME otherwise). Non-leaf tensors keep it on
 * their grad_fn node (freed with the graph), leaves on the tensor whose .grad they fill. On
 * success the hook owns user (release is called when it is freed); on failure the caller does. */
bcml_status bcml_hook_add(bcml_tensor *t, bcml_hook_fn fn, void *user, void (*release)(void *),
                          bcml_err *err);
/* The user data of t's first hook whose function is fn, or NULL. */
void *bcml_hook_find(const bcml_tensor *t, bcml_hook_fn fn);
/* 1 when t, or the node that made it, has a hook. */
int bcml_has_hooks(const bcml_tensor *t);
/* Frees a hook list (calling each release). */
void bcml_hooks_free(bcml_hook *h);

/* Helpers for op implementations. */
/* out = a (copy) */
bcml_status bcml_saved_alias(bcml_tensor **saved, const bcml_tensor *t, bcml_err *err);
/* numpy-style broadcast of two shapes into out (ndim returned via *ondim). */
bcml_status bcml_broadcast_shape(const bcml_tensor *a, const bcml_tensor *b, int *ondim,
                                 int64_t *oshape, bcml_err *err);
/* shape (ndim <= 4 dims) padded with leading 1s to 4 dims. */
void bcml_pad4(int64_t d4[4], int ndim, const int64_t *shape);
/* Element strides of a contiguous tensor of that shape in the padded 4-dim space, 0 along dims
 * of size 1 (so that indexing a broadcast output reads the right element). */
void bcml_broadcast_strides4(int64_t s4[4], int ndim, const int64_t *shape);
/* Sums grad (shape gshape, gndim) into dst whose shape broadcasts to it. */
void bcml_reduce_broadcast_add(float *dst, int dndim, const int64_t *dshape, const float *g,
                               int gndim, const int64_t *gshape);
/* Normalises a dim in [-ndim, ndim) to [0, ndim). */
bcml_status bcml_norm_dim(int64_t *dim, int ndim, const char *argname, bcml_err *err);
/* Requires dtype; names the argument in the message. */
bcml_status bcml_require_dtype(const bcml_tensor *t, bcml_dtype dt, const char *opname,
                               const char *argname, bcml_err *err);

/* ---- optimizers (optim.c) ------------------------------------------------------------ */
/* Each updates every parameter with a gradient, in place, as torch.optim does (foreach off). */
typedef struct bcml_sgd_opts {
    double lr, momentum, dampening, weight_decay;
    int nesterov, maximize;
} bcml_sgd_opts;
/* bufs[k] may be NULL on entry (first step): created then. */
bcml_status bcml_sgd_step(bcml_tensor **params, bcml_tensor **bufs, int64_t n,
                          const bcml_sgd_opts *o, bcml_err *err);
typedef struct bcml_adam_opts {
    double lr, beta1, beta2, eps, weight_decay;
    int amsgrad, maximize;
} bcml_adam_opts;
/* m, v, vmax (amsgrad) may be NULL on entry; steps[k] counts each parameter's updates. */
bcml_status bcml_adam_step(bcml_tensor **params, bcml_tensor **m, bcml_tensor **v,
                           bcml_tensor **vmax, int64_t *steps, int64_t n,
                           const bcml_adam_opts *o, bcml_err *err);

/* ---- record and replay (plan.c) ----------------------------------------------------------
 * A training step run once eagerly is recorded as the list of bcml_apply calls it made (with
 * the tensors each read and produced). bcml_plan_build turns the record into a plan: every
 * tensor becomes a slot (a data input of the step, a constant such as a parameter, or the
 * output of an earlier call), so the same calls can be replayed on the next batch's inputs
 * with no Python in between. */
#define BCML_REC_ALIAS (-1)   /* a recorded call that makes a new header on in[0] (detach) */
/* Steps of a whole training step (bcml.compile), recorded where the eager step ran them: */
#define BCML_REC_BACKWARD (-2)   /* backward from in[0] with seed in[1] (NULL: ones); i[0] retain_graph */
#define BCML_REC_OPTIM (-3)      /* an optimizer step: i[0] indexes the sets given to bcml_plan_exec */
#define BCML_REC_GRAD_CLEAR (-4) /* in[0]'s .grad: i[0] 0 set to none, 1 zeroed in place when present */
#define BCML_PLAN_MAX_IO 8    /* data inputs / outputs of a plan */

typedef struct bcml_rec_call {
    int op;                           /* an op id, or BCML_REC_ALIAS */
    bcml_args args;
    int n_in, n_out;
    bcml_tensor *in[BCML_MAX_IN];     /* owned refs; NULL for an absent optional input */
    bcml_tensor *out[BCML_MAX_OUT];   /* owned refs */
    int grad_enabled;
    bcml_generator *gen;              /* the caller keeps it alive as long as the plan */
} bcml_rec_call;

typedef struct bcml_recorder {
    bcml_rec_call *calls;
    int64_t n, cap;
    int tainted;                      /* the step read or wrote tensor data outside the ops */
    char why[160];
} bcml_recorder;

/* Appends a call (takes new references to its tensors). */
bcml_status bcml_recorder_add(bcml_recorder *r, const bcml_rec_call *c, bcml_err *err);
/* Marks the record unusable for replay; the first reason is kept. */
void bcml_recorder_taint(bcml_recorder *r, const char *why);
/* Releases every call (the recorder can be reused). */
void bcml_recorder_clear(bcml_recorder *r);

typedef struct bcml_plan_step {
    int op;
    bcml_args args;
    int n_in, n_out;
    int32_t in_slot[BCML_MAX_IN];     /* -1 for an absent input */
    int32_t out_slot[BCML_MAX_OUT];
    int grad_enabled;
    bcml_generator *gen;
} bcml_plan_step;

typedef struct bcml_plan {
    int32_t n_slots, n_steps, n_inputs, n_outputs;
    bcml_plan_step *steps;            /* (n_steps) */
    bcml_tensor **consts;             /* (n_slots): owned constants, NULL for other slots */
    int32_t *last_use;                /* (n_slots): last step reading the slot; n_steps: kept */
    int32_t input_slot[BCML_PLAN_MAX_IO];
    int32_t output_slot[BCML_PLAN_MAX_IO];
    int32_t loss_slot;                /* -1: no loss (forward only) */
    int32_t n_sets;                   /* optimizer sets its BCML_REC_OPTIM steps index (0: none) */
    uint8_t in_used[BCML_PLAN_MAX_IO];   /* 0: no kept step reads input j (it may be NULL) */
    bcml_dtype in_dtype[BCML_PLAN_MAX_IO];
    int in_ndim[BCML_PLAN_MAX_IO];
    int64_t in_shape[BCML_PLAN_MAX_IO][BCML_MAX_DIMS];
} bcml_plan;

/* Builds a plan from a record. inputs: the step's data tensors (distinct, the same objects the
 * recorded calls read); loss: the tensor to backpropagate from (NULL for none); outputs: tensors
 * to hand back per batch. EVALUE if the record is tainted or a loss/output is not produced. */
bcml_status bcml_plan_build(bcml_plan **out, const bcml_recorder *r, bcml_tensor *const *inputs,
                            int n_inputs, bcml_tensor *loss, bcml_tensor *const *outputs,
                            int n_outputs, bcml_err *err);
void bcml_plan_free(bcml_plan *p);
/* A shallow copy of p whose constants are pinned snapshots (bcml_tensor_pin) of p's: made while
 * the caller holds its lock (the GIL), it can be replayed without it whatever other threads do to
 * the constants' headers. Freed with bcml_plan_unpin (never bcml_plan_free). */
bcml_status bcml_plan_pin(const bcml_plan *p, bcml_plan **out, bcml_err *err);
void bcml_plan_unpin(bcml_plan *pinned);
/* 1 when inputs have the shapes and dtypes the plan was recorded with (an input no step reads
 * may be NULL). */
int bcml_plan_matches(const bcml_plan *p, bcml_tensor *const *inputs, int n_inputs);
/* Replays the plan on new inputs; *loss (if the plan has one) and outputs[0..n_outputs) receive
 * new references. */
bcml_status bcml_plan_run(const bcml_plan *p, bcml_tensor *const *inputs, bcml_tensor **loss,
                          bcml_tensor **outputs, bcml_err *err);

/* An optimizer's parameter group, updated in C after each replayed backward. */
typedef struct bcml_optim_group {
    int kind;                         /* 0 SGD, 1 Adam */
    bcml_sgd_opts sgd;
    bcml_adam_opts adam;
    int64_t n;
    bcml_tensor **params;             /* (n) borrowed */
    bcml_tensor **s0, **s1, **s2;     /* (n) state, may hold NULL (created, owned by caller):
                                         SGD momentum buffers; Adam m, v, vmax */
    int64_t *steps;                   /* (n) Adam step counts */
} bcml_optim_group;

/* The parameter groups of one optimizer, for a plan's BCML_REC_OPTIM steps. */
typedef struct bcml_optim_set {
    bcml_optim_group *groups;
    int n_groups;
} bcml_optim_set;

/* Replays a whole recorded step (bcml.compile): its ops, backward passes, gradient clears and
 * optimizer steps (sets[i] for BCML_REC_OPTIM i; the gradients stay, as after an eager step), in
 * the recorded order; outputs[0..n_outputs) receive new references. */
bcml_status bcml_plan_exec(const bcml_plan *p, bcml_tensor *const *inputs, bcml_optim_set *sets,
                           int n_sets, bcml_tensor **outputs, bcml_err *err);

/* The batches of one epoch: batch b holds rows order[bounds[b] .. bounds[b+1]) (rows in order
 * when order is NULL) of every full[j]. */
typedef struct bcml_batches {
    int n_data;
    bcml_tensor *full[BCML_PLAN_MAX_IO];   /* (N, ...) each, borrowed */
    const int64_t *order;                  /* (N) or NULL */
    const int64_t *bounds;                 /* (nb + 1) */
    int64_t nb;
} bcml_batches;

/* Checks bounds/order against the full tensors' row count (EVALUE naming the problem). */
bcml_status bcml_batches_check(const bcml_batches *d, bcml_err *err);
/* Batch b's tensors: views of full[j] when rows are in order, gathered copies otherwise. */
bcml_status bcml_batch_get(const bcml_batches *d, int64_t b, bcml_tensor **out, bcml_err *err);
/* As bcml_batch_get for the j with want[j] set (want NULL: all); out[j] = NULL for the rest. */
bcml_status bcml_batch_get_some(const bcml_batches *d, int64_t b, const uint8_t *want, bcml_tensor **out,
                                bcml_err *err);

/* Trains on batches [start, nb): for each, the plan whose inputs match runs forward, backward
 * from its loss, every group's update, then every parameter's grad is dropped (zero_grad).
 * losses[b] gets the loss value. Stops at the first batch no plan matches: *next = its index
 * (nb when all ran). */
bcml_status bcml_plan_train(bcml_plan *const *plans, int n_plans, const bcml_batches *d,
                            int64_t start, bcml_optim_group *groups, int n_groups,
                            float *losses, int64_t *next, bcml_err *err);
/* Forward only: output j of batch b is copied into outs[j] (N, ...) at the batch's rows. */
bcml_status bcml_plan_predict(bcml_plan *const *plans, int n_plans, const bcml_batches *d,
                              int64_t start, bcml_tensor *const *outs, int n_outs, int64_t *next,
                              bcml_err *err);

/* ---- compatibility scores (scores.c) ------------------------------------------------ */
/* The cells of the count table, per class c (the true label y): */
enum {
    BCML_CT_RR = 0,    /* h1 right & h2 right */
    BCML_CT_RW = 1,    /* h1 right & h2 wrong (negative flip) */
    BCML_CT_WR = 2,    /* h1 wrong & h2 right (positive flip) */
    BCML_CT_WW = 3,    /* both wrong */
    BCML_CT_DIFF = 4,  /* h1 label != h2 label (churn) */
    BCML_CT_CELLS = 5
};
/* Largest class count a table may have (labels are class indices, not arbitrary ids). */
#define BCML_CT_MAX_CLASSES ((int64_t)1 << 28)
/* One pass over h1 (n), h2 (n), y (n) fills *counts (num_classes, BCML_CT_CELLS), allocated
 * here with bcml_alloc (the caller frees it with bcml_free). *num_classes: in, the class count
 * or -1 to take max label + 1 over the three arrays (found in the same pass); out, the class
 * count used. Labels must be >= 0 and, when the class count is given, below it: EVALUE naming
 * the argument (h1_labels, h2_labels or y), the index and the value; n == 0 is EVALUE too.
 * nthreads <= 1 runs on the calling thread; more splits the input (results do not depend on
 * the thread count). fname prefixes messages (e.g. "trust_compatibility_score"). */
bcml_status bcml_count_table(int64_t **counts,     /* out: (num_classes, 5) */
                             int64_t *num_classes, /* in/out */
                             const int64_t *h1,    /* (n) */
                             const int64_t *h2,    /* (n) */
                             const int64_t *y,     /* (n) */
                             int64_t n, int nthreads, const char *fname, bcml_err *err);
/* Bootstrap of count tables: out[s, b, :] ~ Multinomial(sum(tables[s]), tables[s] / sum), for
 * S tables of K disjoint cells and b < n_boot (what a per-sample bootstrap of the samples
 * behind each table gives). Draw (s, b) uses a generator seeded with bcml_gen_derive(seed,
 * s * n_boot + b): the result does not depend on nthreads. EVALUE on a negative count. */
bcml_status bcml_bootstrap_tables(int64_t *out,           /* out: (S, n_boot, K) */
                                  const int64_t *tables,  /* (S, K) */
                                  int64_t S, int64_t K, int64_t n_boot, uint64_t seed,
                                  int nthreads, const char *fname, bcml_err *err);

#endif
