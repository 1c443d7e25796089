/* scores.c: the count table behind every compatibility score (BTC, BEC, NFR, PFR, NFI, churn,
 * accuracies; overall and per class). Every score is a ratio of its cells (bcml/scores.py).
 *
 * One pass over (h1, h2, y), in blocks of CT_BLOCK samples, each in two steps that stay in L1:
 *   1. codes[j] = y[j] * 8 + (h1 right) * 4 + (h2 right) * 2 + (h1 != h2), and the unsigned
 *      maxima of the labels: a negative label is a huge unsigned value, so one maximum checks
 *      both ends of the range. This loop only loads, compares and stores codes, so it
 *      vectorises; on x86-64 an AVX2 copy is picked at run time (64-bit compares need more
 *      than the SSE2 baseline).
 *   2. a histogram of the codes into 4 copies of the table, used round robin, so consecutive
 *      samples of one class do not wait on each other's increment (store-to-load forwarding).
 * The label check happens per block on the maxima; only a block that fails is scanned again
 * to find the first bad label. Without a class count, tables grow as larger y labels appear.
 * Threads take contiguous chunks, each with its own tables, summed at the end in a fixed
 * order (integer sums: the result does not depend on the thread count). */
#include "bcml.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifndef CT_BLOCK
#define CT_BLOCK 64  /* samples per block: small, so the out-of-order core overlaps one block's
                      * histogram with the next block's loads (measured: 64 beats 256 and 1024) */
#endif
#define CT_SLOTS 8                      /* codes per class: 3 bits (h1 right, h2 right, differ) */
#define CT_COPIES_MAX_CAP 1024          /* 4 table copies up to this many classes, else 1 */
#define CT_MIN_PER_THREAD ((int64_t)1 << 16)
#define CT_MAX_THREADS 64
#define CT_INITIAL_CAP 16               /* classes of a table that grows (no class count given) */

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(BCML_NO_DISPATCH)
#define CT_X86_DISPATCH 1
#endif
#if defined(__GNUC__) || defined(__clang__)
#define CT_INLINE static inline __attribute__((always_inline))
#else
#define CT_INLINE static inline
#endif

enum { CT_BAD_NONE = 0, CT_BAD_NEGATIVE, CT_BAD_RANGE, CT_BAD_TOO_MANY, CT_BAD_NOMEM };
static const char *const ct_argnames[3] = {"h1_labels", "h2_labels", "y"};

typedef struct ct_job {
    const int64_t *h1, *h2, *y;  /* (n) each, whole arrays */
    int64_t lo, hi;              /* this job's samples [lo, hi) */
    int64_t given;               /* class count, or -1: discover */
    uint64_t limit;              /* largest valid label */
    int64_t cap;                 /* classes the table holds */
    int copies;                  /* 4 or 1 */
    int64_t *table;              /* (copies, cap, CT_SLOTS) */
    int avx2;
    uint64_t hmax, ymax;         /* largest h1/h2 label and y label seen */
    int bad;                     /* CT_BAD_*: the first bad label of this chunk */
    int bad_arg;                 /* 0 h1, 1 h2, 2 y */
    int64_t bad_index, bad_value;
} ct_job;

/* ---- step 1: codes and maxima of one block ------------------------------------------------ */
CT_INLINE void ct_codes_body(uint32_t *restrict codes,     /* (m) */
                             uint64_t *restrict hmax_out, uint64_t *restrict ymax_out,
                             const int64_t *restrict h1,   /* (m) */
                             const int64_t *restrict h2,   /* (m) */
                             const int64_t *restrict y,    /* (m) */
                             int64_t m) {
    uint64_t hmax = 0, ymax = 0;
    for (int64_t j = 0; j < m; j++) {
        uint64_t a = (uint64_t)h1[j], b = (uint64_t)h2[j], t = (uint64_t)y[j];
        hmax = a > hmax ? a : hmax;
        hmax = b > hmax ? b : hmax;
        ymax = t > ymax ? t : ymax;
        /* truncation is harmless: a code is used only once its block passed the label check */
        codes[j] = (uint32_t)(t << 3 | (uint64_t)(a == t) << 2 | (uint64_t)(b == t) << 1 |
                              (uint64_t)(a != b));
    }
    *hmax_out = hmax;
    *ymax_out = ymax;
}

/* ---- step 2: histogram of one block's codes ------------------------------------------------ */
CT_INLINE void ct_hist(int64_t *restrict table,       /* (copies, stride) */
                       int64_t stride, int copies,
                       const uint32_t *restrict codes, /* (m) */
                       int64_t m) {
    int64_t j = 0;
    if (copies == 4) {
        int64_t *t0 = table, *t1 = table + stride, *t2 = t1 + stride, *t3 = t2 + stride;
        for (; j + 4 <= m; j += 4) {
            t0[codes[j]]++;
            t1[codes[j + 1]]++;
            t2[codes[j + 2]]++;
            t3[codes[j + 3]]++;
        }
    }
    for (; j < m; j++) table[codes[j]]++;
}

/* ---- tables ----------------------------------------------------------------------------- */
static int ct_copies_for(int64_t cap) { return cap <= CT_COPIES_MAX_CAP ? 4 : 1; }

/* A zeroed table of cap classes holding old's counts (old may be NULL). 0 on success. */
static int ct_table_resize(ct_job *jb, int64_t cap) {
    int copies = ct_copies_for(cap);
    size_t nbytes = (size_t)copies * (size_t)cap * CT_SLOTS * sizeof(int64_t);
    int64_t *t = bcml_alloc(nbytes);
    if (!t) return -1;
    memset(t, 0, nbytes);
    if (jb->table) {
        int64_t old_stride = jb->cap * CT_SLOTS;
        for (int k = 0; k < jb->copies; k++)
            for (int64_t i = 0; i < old_stride; i++) t[i] += jb->table[k * old_stride + i];
        bcml_free(jb->table);
    }
    jb->table = t;
    jb->cap = cap;
    jb->copies = copies;
    return 0;
}

/* Scans a block whose maxima failed the check for its first bad label (h1, then h2, then y at
 * the same index). Returns 1 and records it, or 0 if the block is fine (a y label that only
 * needs a larger table). */
static int ct_find_bad(ct_job *jb, int64_t i0, int64_t m) {
    const int64_t *arrs[3] = {jb->h1, jb->h2, jb->y};
    for (int64_t i = i0; i < i0 + m; i++) {
        for (int a = 0; a < 3; a++) {
            int64_t v = arrs[a][i];
            if ((uint64_t)v > jb->limit) {
                jb->bad = v < 0 ? CT_BAD_NEGATIVE : jb->given >= 0 ? CT_BAD_RANGE : CT_BAD_TOO_MANY;
                jb->bad_arg = a;
                jb->bad_index = i;
                jb->bad_value = v;
                return 1;
            }
        }
    }
    return 0;
}

/* ---- one chunk ------------------------------------------------------------------------------ */
CT_INLINE void ct_run_body(ct_job *jb) {
    uint32_t codes[CT_BLOCK];
    for (int64_t i = jb->lo; i < jb->hi; i += CT_BLOCK) {
        int64_t m = jb->hi - i < CT_BLOCK ? jb->hi - i : CT_BLOCK;
        uint64_t hmax, ymax;
        ct_codes_body(codes, &hmax, &ymax, jb->h1 + i, jb->h2 + i, jb->y + i, m);
        if (hmax > jb->limit || ymax >= (uint64_t)jb->cap) {
            if ((hmax > jb->limit || ymax > jb->limit) && ct_find_bad(jb, i, m)) return;
            /* only without a class count: a y label needs a larger table */
            int64_t cap = jb->cap * 2 > (int64_t)ymax + 1 ? jb->cap * 2 : (int64_t)ymax + 1;
            if (cap > BCML_CT_MAX_CLASSES) cap = BCML_CT_MAX_CLASSES;
            if (ct_table_resize(jb, cap)) {
                jb->bad = CT_BAD_NOMEM;
                jb->bad_arg = 2;
                jb->bad_index = i;
                jb->bad_value = (int64_t)ymax;
                return;
            }
        }
        if (hmax > jb->hmax) jb->hmax = hmax;
        if (ymax > jb->ymax) jb->ymax = ymax;
        ct_hist(jb->table, jb->cap * CT_SLOTS, jb->copies, codes, m);
    }
}

static void ct_run_base(ct_job *jb) { ct_run_body(jb); }

#ifdef CT_X86_DISPATCH
__attribute__((target("avx2"))) static void ct_run_avx2(ct_job *jb) { ct_run_body(jb); }
#endif

static void ct_run(ct_job *jb) {
#ifdef CT_X86_DISPATCH
    if (jb->avx2) { ct_run_avx2(jb); return; }
#endif
    ct_run_base(jb);
}

static void *ct_thread(void *arg) {
    ct_run((ct_job *)arg);
    return NULL;
}

/* Which of the four cells each code counts in (codes 2, 4 and 7 cannot occur: h1 == h2 == y
 * makes both right, and two right labels are equal). */
static const int ct_cell_of[CT_SLOTS] = {
    BCML_CT_WW, BCML_CT_WW, BCML_CT_WR, BCML_CT_WR, BCML_CT_RW, BCML_CT_RW, BCML_CT_RR, BCML_CT_RR,
};

static bcml_status ct_report_bad(const ct_job *jb, const char *fname, bcml_err *err) {
    const char *arg = ct_argnames[jb->bad_arg];
    long long v = (long long)jb->bad_value, i = (long long)jb->bad_index;
    switch (jb->bad) {
    case CT_BAD_NEGATIVE:
        return bcml_fail(err, BCML_EVALUE,
                         "%s: %s must hold class labels >= 0, got %lld at index %lld", fname, arg,
                         v, i);
    case CT_BAD_RANGE:
        return bcml_fail(err, BCML_EVALUE,
                         "%s: %s must hold class labels below num_classes=%lld, got %lld at index %lld",
                         fname, arg, (long long)jb->given, v, i);
    case CT_BAD_TOO_MANY:
        return bcml_fail(err, BCML_EVALUE,
                         "%s: %s holds label %lld at index %lld, but at most %lld classes are "
                         "supported (labels must be class indices 0 .. num_classes-1)",
                         fname, arg, v, i, (long long)BCML_CT_MAX_CLASSES);
    default:
        return bcml_fail(err, BCML_ENOMEM,
                         "%s: out of memory allocating a count table for label %lld of y", fname,
                         v);
    }
}

/* Fails unless a (classes, 13) int64 table (the tables plus the result) fits in memory. */
static bcml_status ct_check_classes(int64_t classes, const char *fname, const char *what,
                                    bcml_err *err) {
    int64_t shape[2] = {classes, CT_SLOTS + BCML_CT_CELLS}, numel;
    if (classes < 1 || classes > BCML_CT_MAX_CLASSES ||
        bcml_check_shape(2, shape, BCML_INT64, &numel, what, NULL) != BCML_OK)
        return bcml_fail(err, BCML_EVALUE, "%s: %s must be between 1 and %lld (and fit in memory), got %lld",
                         fname, what, (long long)BCML_CT_MAX_CLASSES, (long long)classes);
    return BCML_OK;
}

bcml_status bcml_count_table(int64_t **counts, int64_t *num_classes, const int64_t *h1,
                             const int64_t *h2, const int64_t *y, int64_t n, int nthreads,
                             const char *fname, bcml_err *err) {
    if (!fname) fname = "count_table";
    *counts = NULL;
    if (n < 0) return bcml_fail(err, BCML_EVALUE, "%s: n must be >= 0, got %lld", fname, (long long)n);
    if (n == 0)
        return bcml_fail(err, BCML_EVALUE,
                         "%s: h1_labels, h2_labels and y are empty; scores need at least one sample",
                         fname);
    int64_t given = *num_classes;
    bcml_status st;
    if (given >= 0 && (st = ct_check_classes(given, fname, "num_classes", err))) return st;

    /* threads: each must have enough samples to be worth its start and its tables */
    int64_t per = CT_MIN_PER_THREAD;
    if (given >= 0 && given * CT_SLOTS * 4 > per) per = given * CT_SLOTS * 4;
    int64_t T = nthreads < 1 ? 1 : nthreads;
    if (T > CT_MAX_THREADS) T = CT_MAX_THREADS;
    if (T > n / per) T = n / per > 0 ? n / per : 1;

    ct_job jobs[CT_MAX_THREADS];
    int avx2 = 0;
#ifdef CT_X86_DISPATCH
    avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
#endif
    int64_t blocks = (n + CT_BLOCK - 1) / CT_BLOCK;
    int64_t cap0 = given >= 0 ? given : CT_INITIAL_CAP;
    st = BCML_OK;
    int64_t njobs = 0;
    for (int64_t k = 0; k < T; k++) {
        ct_job *jb = &jobs[k];
        memset(jb, 0, sizeof *jb);
        jb->h1 = h1;
        jb->h2 = h2;
        jb->y = y;
        jb->lo = blocks * k / T * CT_BLOCK;
        jb->hi = k + 1 == T ? n : blocks * (k + 1) / T * CT_BLOCK;
        jb->given = given;
        jb->limit = given >= 0 ? (uint64_t)given - 1 : (uint64_t)BCML_CT_MAX_CLASSES - 1;
        jb->avx2 = avx2;
        njobs++;
        if (ct_table_resize(jb, cap0)) {
            st = bcml_fail(err, BCML_ENOMEM, "%s: out of memory allocating a count table of %lld classes",
                           fname, (long long)cap0);
            break;
        }
    }
    if (st == BCML_OK) {
        pthread_t tids[CT_MAX_THREADS];
        int started[CT_MAX_THREADS] = {0};
        for (int64_t k = 1; k < T; k++)
            started[k] = pthread_create(&tids[k], NULL, ct_thread, &jobs[k]) == 0;
        ct_run(&jobs[0]);
        for (int64_t k = 1; k < T; k++) {
            if (started[k]) pthread_join(tids[k], NULL);
            else ct_run(&jobs[k]);  /* no thread available: run it here */
        }
        /* the first bad label overall is in the first chunk that has one */
        for (int64_t k = 0; k < T && st == BCML_OK; k++)
            if (jobs[k].bad) st = ct_report_bad(&jobs[k], fname, err);
    }
    int64_t C = given;
    if (st == BCML_OK && C < 0) {
        uint64_t mx = 0;
        for (int64_t k = 0; k < T; k++) {
            if (jobs[k].hmax > mx) mx = jobs[k].hmax;
            if (jobs[k].ymax > mx) mx = jobs[k].ymax;
        }
        C = (int64_t)mx + 1; /* <= BCML_CT_MAX_CLASSES: larger labels were rejected */
        st = ct_check_classes(C, fname, "the class count (max label + 1)", err);
    }
    if (st == BCML_OK) {
        size_t nbytes = (size_t)C * BCML_CT_CELLS * sizeof(int64_t);
        int64_t *out = bcml_alloc(nbytes); /* (C, 5) */
        if (!out) {
            st = bcml_fail(err, BCML_ENOMEM, "%s: out of memory allocating a count table of %lld classes",
                           fname, (long long)C);
        } else {
            memset(out, 0, nbytes);
            for (int64_t k = 0; k < T; k++) {
                const ct_job *jb = &jobs[k];
                int64_t classes = jb->cap < C ? jb->cap : C; /* rows above C are all zero */
                for (int cp = 0; cp < jb->copies; cp++) {
                    const int64_t *t = jb->table + (int64_t)cp * jb->cap * CT_SLOTS; /* (cap, 8) */
                    for (int64_t c = 0; c < classes; c++) {
                        for (int s = 0; s < CT_SLOTS; s++) {
                            int64_t v = t[c * CT_SLOTS + s];
                            out[c * BCML_CT_CELLS + ct_cell_of[s]] += v;
                            if (s & 1) out[c * BCML_CT_CELLS + BCML_CT_DIFF] += v;
                        }
                    }
                }
            }
            *counts = out;
            *num_classes = C;
        }
    }
    for (int64_t k = 0; k < njobs; k++) bcml_free(jobs[k].table);
    return st;
}
