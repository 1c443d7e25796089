/* scores.c: the count table behind every compatibility score (BTC, BEC, NFR, PFR, NFI, churn,
 * accuracies; overall and per class). Every score is a ratio of its cells (bcml/scores.py).
 *
 * One pass over (h1, h2, y), in blocks of CT_BLOCK samples, each in two steps that stay in L1:
 *   1. codes[j] = y[j] * 8 + (h1 right) * 4 + (h2 right) * 2 + (h1 != h2), and the maxima of
 *      the labels, which check them: negative labels are huge as unsigned numbers, so one
 *      maximum checks both ends of the range. Plain C (ct_block, which compilers vectorise
 *      where 64-bit compares are cheap), and on x86-64 an AVX2 version chosen at run time
 *      (ct_run_avx2; the x86-64 baseline, SSE2, has no 64-bit compare).
 *   2. a histogram of the codes into 4 copies of the table, used round robin, so consecutive
 *      samples of one class do not wait on each other's increment (store-to-load forwarding).
 * Only a block that fails the check is scanned again, to find its first bad label (or, without
 * a class count, to grow the table for a larger y label).
 * The per-thread tables are bounded: together they hold at most as many bytes as the input
 * (64 bytes per class, 24 per sample), or CT_DENSE_MAX classes (4 MiB) each when that is more.
 * The codes of samples whose true class lies beyond (rare: labels are class indices, and huge
 * ones would otherwise grow each thread's table to (largest label + 1) x 64 bytes, 16 GiB near
 * 2^28, before any check) are kept in a per-thread list instead, at most 4 bytes per sample,
 * and counted into the result at the end, once its size (the class count) has been checked
 * against memory. Threads claim chunks of CT_CHUNK
 * samples from a shared counter (one that starts late, e.g. on a CPU that first has to wake
 * up, just takes fewer), each with its own tables, summed at the end (integer sums: the result
 * does not depend on the thread count or the scheduling). The pass is memory-bound for large inputs: 10 million samples (240 MB of
 * int64 labels) take about as long as reading the three arrays once. */
#include "bcml.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#ifndef CT_BLOCK
#define CT_BLOCK 64  /* samples per block: small, so the out-of-order core overlaps one block's
                      * histogram with the next block's loads (measured: 64 beats 256 and 1024) */
#endif
#define CT_SLOTS 8                      /* codes per class: 3 bits (h1 right, h2 right, differ) */
#define CT_COPIES_MAX_CAP 1024          /* 4 table copies up to this many classes, else 1 */
#define CT_CHUNK ((int64_t)1 << 16)  /* samples a thread claims at a time (a multiple of CT_BLOCK) */
#define CT_MIN_PER_THREAD ((int64_t)1 << 18) /* a thread costs ~50 us to start and join */
#define CT_MAX_THREADS 64
#define CT_INITIAL_CAP 16               /* classes of a table that grows (no class count given) */
#define CT_DENSE_MAX ((int64_t)1 << 16) /* classes a per-thread table may always hold (4 MiB) */

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(BCML_NO_DISPATCH)
#define CT_X86_DISPATCH 1
#include <immintrin.h>
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
    int64_t n;
    atomic_llong *next;          /* shared: the next chunk to claim */
    int64_t given;               /* class count, or -1: discover */
    uint64_t limit;              /* largest valid label */
    int64_t cap;                 /* classes the table holds */
    int64_t dense_max;           /* classes the table may grow to (larger ones are spilled) */
    int copies;                  /* 4 or 1 */
    int64_t *table;              /* (copies, cap, CT_SLOTS) */
    uint32_t *spill;             /* (nspill) codes of samples whose y label is >= cap */
    int64_t nspill, spill_cap;
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
/* Appends a code to the spill list (growing it). 0 on success. */
static int ct_spill(ct_job *jb, uint32_t code) {
    if (jb->nspill == jb->spill_cap) {
        int64_t cap = jb->spill_cap ? jb->spill_cap * 2 : 1024;
        uint32_t *sp = bcml_alloc((size_t)cap * sizeof *sp);
        if (!sp) return -1;
        if (jb->nspill) memcpy(sp, jb->spill, (size_t)jb->nspill * sizeof *sp);
        bcml_free(jb->spill);
        jb->spill = sp;
        jb->spill_cap = cap;
    }
    jb->spill[jb->nspill++] = code;
    return 0;
}

static int ct_nomem(ct_job *jb, int64_t i, uint64_t ymax) {
    jb->bad = CT_BAD_NOMEM;
    jb->bad_arg = 2;
    jb->bad_index = i;
    jb->bad_value = (int64_t)ymax;
    return 1;
}

/* One block [i, i + m) in plain C: codes, label check (and table growth, up to CT_DENSE_MAX
 * classes), histogram (samples of larger classes go to the spill list).
 * Returns 1 when the chunk must stop (a bad label, or no memory), else 0. */
static int ct_block(ct_job *jb, int64_t i, int64_t m, uint32_t *codes /* (CT_BLOCK) */) {
    uint64_t hmax, ymax;
    ct_codes_body(codes, &hmax, &ymax, jb->h1 + i, jb->h2 + i, jb->y + i, m);
    if (hmax > jb->limit || ymax >= (uint64_t)jb->cap) {
        if ((hmax > jb->limit || ymax > jb->limit) && ct_find_bad(jb, i, m)) return 1;
        /* a y label beyond the table: grow it while it is below the bound (no class count
         * given, or a class count above the bound) */
        if (ymax >= (uint64_t)jb->cap && jb->cap < jb->dense_max) {
            int64_t cap = jb->cap * 2 > (int64_t)ymax + 1 ? jb->cap * 2 : (int64_t)ymax + 1;
            if (cap > jb->dense_max) cap = jb->dense_max;
            if (jb->given >= 0 && cap > jb->given) cap = jb->given;
            if (ct_table_resize(jb, cap)) return ct_nomem(jb, i, ymax);
        }
        if (ymax >= (uint64_t)jb->cap) { /* still beyond: those samples are spilled */
            if (hmax > jb->hmax) jb->hmax = hmax;
            if (ymax > jb->ymax) jb->ymax = ymax;
            const int64_t *y = jb->y + i;
            for (int64_t j = 0; j < m; j++) {
                if ((uint64_t)y[j] < (uint64_t)jb->cap) jb->table[codes[j]]++;
                else if (ct_spill(jb, codes[j])) return ct_nomem(jb, i + j, (uint64_t)y[j]);
            }
            return 0;
        }
    }
    if (hmax > jb->hmax) jb->hmax = hmax;
    if (ymax > jb->ymax) jb->ymax = ymax;
    ct_hist(jb->table, jb->cap * CT_SLOTS, jb->copies, codes, m);
    return 0;
}

/* Samples [lo, hi); returns 1 when the job must stop. */
static int ct_range_base(ct_job *jb, int64_t lo, int64_t hi) {
    uint32_t codes[CT_BLOCK];
    for (int64_t i = lo; i < hi; i += CT_BLOCK)
        if (ct_block(jb, i, hi - i < CT_BLOCK ? hi - i : CT_BLOCK, codes)) return 1;
    return 0;
}

#ifdef CT_X86_DISPATCH
/* AVX2, 8 samples per step. The label check runs on 32-bit halves: a 64-bit label is valid
 * (0 <= v <= limit < 2^28) exactly when its high half is 0 and its low half <= limit, so
 * unsigned 32-bit maxima (vpmaxud, one instruction) against [limit, 0, limit, 0, ...] check
 * both ends. Codes are histogrammed in any order, so two vectors of 64-bit codes are packed
 * into one of 32-bit codes with a shift and an or. Blocks that fail the check (and the last,
 * partial block) go through ct_block, which finds the bad label or grows the table. */
__attribute__((target("avx2"))) static int ct_range_avx2(ct_job *jb, int64_t lo, int64_t hi) {
    uint32_t codes[CT_BLOCK] __attribute__((aligned(32)));
    const __m256i zero = _mm256_setzero_si256();
    const __m256i one = _mm256_set1_epi64x(1), two = _mm256_set1_epi64x(2),
                  four = _mm256_set1_epi64x(4);
    const __m256i hlim = _mm256_set1_epi64x((int64_t)jb->limit); /* dwords [limit, 0] */
    __m256i hall = zero, yall = zero; /* maxima of the blocks that passed */
    int64_t cap = -1;
    __m256i ylim = zero;
    for (int64_t i = lo; i < hi; i += CT_BLOCK) {
        if (hi - i < CT_BLOCK) {
            if (ct_block(jb, i, hi - i, codes)) return 1;
            continue;
        }
        if (cap != jb->cap) { /* the table grew */
            cap = jb->cap;
            ylim = _mm256_set1_epi64x(cap - 1);
        }
        const int64_t *h1 = jb->h1 + i, *h2 = jb->h2 + i, *y = jb->y + i;
        __m256i hm = zero, ym = zero;
        for (int j = 0; j < CT_BLOCK; j += 8) {
            __m256i a0 = _mm256_loadu_si256((const __m256i *)(h1 + j));
            __m256i a1 = _mm256_loadu_si256((const __m256i *)(h1 + j + 4));
            __m256i b0 = _mm256_loadu_si256((const __m256i *)(h2 + j));
            __m256i b1 = _mm256_loadu_si256((const __m256i *)(h2 + j + 4));
            __m256i t0 = _mm256_loadu_si256((const __m256i *)(y + j));
            __m256i t1 = _mm256_loadu_si256((const __m256i *)(y + j + 4));
            hm = _mm256_max_epu32(hm, _mm256_max_epu32(_mm256_max_epu32(a0, b0),
                                                       _mm256_max_epu32(a1, b1)));
            ym = _mm256_max_epu32(ym, _mm256_max_epu32(t0, t1));
            __m256i c0 = _mm256_slli_epi64(t0, 3), c1 = _mm256_slli_epi64(t1, 3);
            c0 = _mm256_or_si256(c0, _mm256_and_si256(_mm256_cmpeq_epi64(a0, t0), four));
            c1 = _mm256_or_si256(c1, _mm256_and_si256(_mm256_cmpeq_epi64(a1, t1), four));
            c0 = _mm256_or_si256(c0, _mm256_and_si256(_mm256_cmpeq_epi64(b0, t0), two));
            c1 = _mm256_or_si256(c1, _mm256_and_si256(_mm256_cmpeq_epi64(b1, t1), two));
            c0 = _mm256_or_si256(c0, _mm256_andnot_si256(_mm256_cmpeq_epi64(a0, b0), one));
            c1 = _mm256_or_si256(c1, _mm256_andnot_si256(_mm256_cmpeq_epi64(a1, b1), one));
            /* codes < 2^31 when the block is valid: c1 goes to the high halves */
            _mm256_store_si256((__m256i *)(codes + j), _mm256_or_si256(c0, _mm256_slli_epi64(c1, 32)));
        }
        int ok = _mm256_movemask_epi8(_mm256_cmpeq_epi32(_mm256_max_epu32(hm, hlim), hlim)) == -1 &&
                 _mm256_movemask_epi8(_mm256_cmpeq_epi32(_mm256_max_epu32(ym, ylim), ylim)) == -1;
        if (!ok) {
            if (ct_block(jb, i, CT_BLOCK, codes)) return 1;
            continue;
        }
        hall = _mm256_max_epu32(hall, hm);
        yall = _mm256_max_epu32(yall, ym);
        ct_hist(jb->table, jb->cap * CT_SLOTS, jb->copies, codes, CT_BLOCK);
    }
    /* valid lanes hold [value, 0]: the 64-bit lanes are the maxima */
    uint64_t hv[4], yv[4];
    _mm256_storeu_si256((__m256i *)hv, hall);
    _mm256_storeu_si256((__m256i *)yv, yall);
    for (int k = 0; k < 4; k++) {
        if (hv[k] > jb->hmax) jb->hmax = hv[k];
        if (yv[k] > jb->ymax) jb->ymax = yv[k];
    }
    return 0;
}
#endif

/* Claims chunks in order until none is left or a bad label stops the job. A job stops at the
 * first bad label of the chunks it claimed, and every chunk before that one was claimed by
 * some job, so the smallest index over the jobs is the first bad label of the input. */
static void ct_run(ct_job *jb) {
    for (;;) {
        int64_t lo = (int64_t)atomic_fetch_add(jb->next, 1) * CT_CHUNK;
        if (lo >= jb->n) return;
        int64_t hi = jb->n - lo < CT_CHUNK ? jb->n : lo + CT_CHUNK;
#ifdef CT_X86_DISPATCH
        if (jb->avx2) {
            if (ct_range_avx2(jb, lo, hi)) return;
            continue;
        }
#endif
        if (ct_range_base(jb, lo, hi)) return;
    }
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
                         "%s: out of memory counting label %lld of y at index %lld", fname, v, i);
    }
}

/* Fails unless a (classes, 13) int64 table (the result, with room to spare) fits in memory. */
static int ct_classes_fit(int64_t classes) {
    int64_t shape[2] = {classes, CT_SLOTS + BCML_CT_CELLS}, numel;
    return classes >= 1 && classes <= BCML_CT_MAX_CLASSES &&
           bcml_check_shape(2, shape, BCML_INT64, &numel, "num_classes", NULL) == BCML_OK;
}

static bcml_status ct_check_classes(int64_t classes, const char *fname, const char *what,
                                    bcml_err *err) {
    if (!ct_classes_fit(classes))
        return bcml_fail(err, BCML_EVALUE, "%s: %s must be between 1 and %lld (and fit in memory), got %lld",
                         fname, what, (long long)BCML_CT_MAX_CLASSES, (long long)classes);
    return BCML_OK;
}

/* The class count max label + 1 found without num_classes is too large: names the argument
 * and the index holding that label. */
static bcml_status ct_report_classes(uint64_t mx, const int64_t *const arrs[3], int64_t n,
                                     const char *fname, bcml_err *err) {
    int arg = 2;
    int64_t at = 0;
    for (int a = 0; a < 3; a++) {
        int64_t i = 0;
        while (i < n && (uint64_t)arrs[a][i] != mx) i++;
        if (i < n) { arg = a; at = i; break; }
    }
    return bcml_fail(err, BCML_EVALUE,
                     "%s: %s holds label %llu at index %lld: a count table of %llu classes (largest label "
                     "+ 1) does not fit in memory (labels must be class indices 0 .. num_classes-1)",
                     fname, ct_argnames[arg], (unsigned long long)mx, (long long)at,
                     (unsigned long long)mx + 1);
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
    /* classes a table may hold: the tables together no larger than the input (24 bytes per
     * sample against 64 per class), or CT_DENSE_MAX each */
    int64_t dense_max = n / 8 * 3 > CT_DENSE_MAX ? n / 8 * 3 : CT_DENSE_MAX;
    int64_t dense = given >= 0 && given < dense_max ? given : dense_max;
    int64_t per = CT_MIN_PER_THREAD;
    if (given >= 0 && dense * CT_SLOTS * 4 > per) per = dense * CT_SLOTS * 4;
    int64_t T = nthreads < 1 ? 1 : nthreads;
    if (T > CT_MAX_THREADS) T = CT_MAX_THREADS;
    if (T > n / per) T = n / per > 0 ? n / per : 1;
    dense_max = dense_max / T > CT_DENSE_MAX ? dense_max / T : CT_DENSE_MAX;
    if (dense > dense_max) dense = dense_max;

    ct_job jobs[CT_MAX_THREADS];
    int avx2 = 0;
#ifdef CT_X86_DISPATCH
    avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
#endif
    atomic_llong next;
    atomic_init(&next, 0);
    int64_t cap0 = given >= 0 ? dense : CT_INITIAL_CAP;
    st = BCML_OK;
    int64_t njobs = 0;
    for (int64_t k = 0; k < T; k++) {
        ct_job *jb = &jobs[k];
        memset(jb, 0, sizeof *jb);
        jb->h1 = h1;
        jb->h2 = h2;
        jb->y = y;
        jb->n = n;
        jb->next = &next;
        jb->given = given;
        jb->limit = given >= 0 ? (uint64_t)given - 1 : (uint64_t)BCML_CT_MAX_CLASSES - 1;
        jb->avx2 = avx2;
        jb->dense_max = given >= 0 && given < dense_max ? given : dense_max;
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
        const ct_job *first = NULL; /* the first bad label (see ct_run) */
        for (int64_t k = 0; k < T; k++)
            if (jobs[k].bad && (!first || jobs[k].bad_index < first->bad_index)) first = &jobs[k];
        if (first) st = ct_report_bad(first, fname, err);
    }
    int64_t C = given;
    if (st == BCML_OK && C < 0) {
        uint64_t mx = 0;
        for (int64_t k = 0; k < T; k++) {
            if (jobs[k].hmax > mx) mx = jobs[k].hmax;
            if (jobs[k].ymax > mx) mx = jobs[k].ymax;
        }
        C = (int64_t)mx + 1; /* <= BCML_CT_MAX_CLASSES: larger labels were rejected */
        if (!ct_classes_fit(C)) {
            const int64_t *const arrs[3] = {h1, h2, y};
            st = ct_report_classes(mx, arrs, n, fname, err);
        }
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
                for (int64_t j = 0; j < jb->nspill; j++) { /* class = code >> 3 < C */
                    uint32_t code = jb->spill[j];
                    int64_t *row = out + (int64_t)(code >> 3) * BCML_CT_CELLS;
                    row[ct_cell_of[code & 7]]++;
                    if (code & 1) row[BCML_CT_DIFF]++;
                }
            }
            *counts = out;
            *num_classes = C;
        }
    }
    for (int64_t k = 0; k < njobs; k++) {
        bcml_free(jobs[k].table);
        bcml_free(jobs[k].spill);
    }
    return st;
}

/* ---- bootstrap of count tables --------------------------------------------------------------
 * A per-sample bootstrap (n draws with replacement) of a data set whose samples fall into K
 * disjoint cells gives a table distributed as Multinomial(n, counts / n): each table is drawn
 * here as K conditional binomials, cell k ~ Binomial(n left, counts[k] / counts left), so one
 * resample costs K binomials instead of n draws, whatever n is.
 *
 * Binomial(t, p), exact: while t * min(p, 1 - p) is large, split on an order statistic (Knuth,
 * TAOCP vol. 2, 3.4.1): the a-th smallest of t uniforms, a = 1 + t / 2, is X ~ Beta(a, t + 1 - a).
 * If X >= p, the count below p is that of a - 1 uniforms on [0, X): Binomial(a - 1, p / X); else
 * it is a plus that of the t - a uniforms on (X, 1]: Binomial(t - a, (p - X) / (1 - X)). Each
 * split halves t. Beta from two gamma variates (Marsaglia and Tsang's method, shape >= 1). The
 * rest, t * p <= BT_SPLIT, by inversion (a sequential search from 0, about t * p + 1 steps). */

#define BT_SPLIT 16.0

static double bt_gamma(bcml_generator *g, double a) { /* a >= 1 */
    double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = bcml_gen_normal(g), v = 1.0 + c * x;
        if (v <= 0.0) continue;
        v = v * v * v;
        double u = 1.0 - bcml_gen_uniform(g); /* (0, 1] */
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
    }
}

/* Binomial(t, p) for t * p small (p <= 0.5): inversion. */
static int64_t bt_invert(bcml_generator *g, int64_t t, double p) {
    if (t == 0 || p <= 0.0) return 0;
    double q = 1.0 - p, s = p / q, r = exp((double)t * log1p(-p)), u = bcml_gen_uniform(g);
    int64_t x = 0;
    while (u > r && x < t) {
        u -= r;
        x++;
        r *= s * (double)(t - x + 1) / (double)x;
        if (r <= 0.0) break; /* the tail left is below double precision */
    }
    return x;
}

static int64_t bt_binomial(bcml_generator *g, int64_t t, double p) {
    if (p <= 0.0 || t == 0) return 0;
    if (p >= 1.0) return t;
    int flip = p > 0.5;
    if (flip) p = 1.0 - p;
    int64_t acc = 0, t0 = t;
    while ((double)t * p > BT_SPLIT) {
        int64_t a = 1 + t / 2;
        double ga = bt_gamma(g, (double)a), gb = bt_gamma(g, (double)(t + 1 - a));
        double x = ga / (ga + gb);
        if (x >= p) {
            t = a - 1;
            p = p / x;
        } else {
            acc += a;
            t -= a;
            p = (p - x) / (1.0 - x);
        }
        if (p > 0.5) { /* the rest with p > 0.5: drawn as its complement (a call on t / 2) */
            acc += bt_binomial(g, t, p);
            t = 0;
            break;
        }
    }
    if (t > 0) acc += bt_invert(g, t, p);
    return flip ? t0 - acc : acc;
}

typedef struct bt_job {
    int64_t *out;          /* (S, n_boot, K) */
    const int64_t *tables; /* (S, K) */
    int64_t K, n_boot, lo, hi; /* draws [lo, hi) of S * n_boot */
    uint64_t seed;
} bt_job;

static void bt_run(bt_job *jb) {
    for (int64_t d = jb->lo; d < jb->hi; d++) {
        const int64_t *c = jb->tables + (d / jb->n_boot) * jb->K;
        int64_t *o = jb->out + d * jb->K;
        bcml_generator g;
        bcml_gen_seed(&g, bcml_gen_derive(jb->seed, (uint64_t)d));
        int64_t left = 0;
        for (int64_t k = 0; k < jb->K; k++) left += c[k];
        int64_t n = left; /* draws left to place */
        for (int64_t k = 0; k < jb->K; k++) {
            int64_t x;
            if (c[k] == 0) x = 0;
            else if (c[k] == left) x = n;
            else x = bt_binomial(&g, n, (double)c[k] / (double)left);
            o[k] = x;
            n -= x;
            left -= c[k];
        }
    }
}

static void *bt_thread(void *arg) {
    bt_run((bt_job *)arg);
    return NULL;
}

bcml_status bcml_bootstrap_tables(int64_t *out, const int64_t *tables, int64_t S, int64_t K,
                                  int64_t n_boot, uint64_t seed, int nthreads, const char *fname,
                                  bcml_err *err) {
    if (S < 0 || K < 1 || n_boot < 1)
        return bcml_fail(err, BCML_EVALUE, "%s: a bootstrap needs n_boot >= 1 and cells >= 1, got %lld and %lld",
                         fname, (long long)n_boot, (long long)K);
    for (int64_t s = 0; s < S; s++) {
        int64_t total = 0;
        for (int64_t k = 0; k < K; k++) {
            int64_t v = tables[s * K + k];
            if (v < 0 || v > INT64_MAX - total)
                return bcml_fail(err, BCML_EVALUE, "%s: count table %lld holds a negative count or overflows "
                                 "(cell %lld is %lld)", fname, (long long)s, (long long)k, (long long)v);
            total += v;
        }
    }
    int64_t draws = S * n_boot;
    int64_t T = nthreads < 1 ? 1 : nthreads;
    if (T > CT_MAX_THREADS) T = CT_MAX_THREADS;
    if (T > draws / 64) T = draws / 64 > 1 ? draws / 64 : 1; /* a thread per 64 draws at least */
    bt_job jobs[CT_MAX_THREADS];
    pthread_t tids[CT_MAX_THREADS];
    int started[CT_MAX_THREADS] = {0};
    for (int64_t k = 0; k < T; k++) {
        jobs[k] = (bt_job){out, tables, K, n_boot, draws * k / T, draws * (k + 1) / T, seed};
        if (k > 0) started[k] = pthread_create(&tids[k], NULL, bt_thread, &jobs[k]) == 0;
    }
    if (T > 0) bt_run(&jobs[0]);
    for (int64_t k = 1; k < T; k++) {
        if (started[k]) pthread_join(tids[k], NULL);
        else bt_run(&jobs[k]);
    }
    return BCML_OK;
}
