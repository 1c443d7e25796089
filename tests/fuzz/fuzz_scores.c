// sources: csrc/core/*.c (+ -lopenblas)
/* fuzz_scores.c: the count table behind every compatibility score (bcml_count_table) with
 * fuzzed labels, lengths, class counts and thread counts, checked against a plain loop.
 *
 * Input: u8 flags (bit0: num_classes given, bits 1-3: nthreads 0..7, bit4: long, bit5: fname
 *   NULL, bits 6-7: added to n), fz_int num_classes, u8 size (< 0xF8: n = 4 size + flags >> 6;
 *   else one of sizes[] at the block and chunk edges; 0xF8 with the long bit: 2^19 + 3 samples,
 *   enough for two threads), u64 seed, then for each of h1, h2, y: u8 kind, u8 param (kind % 4:
 *   0 labels in [0, param], 1 a copy of y with a fraction param/256 changed, 2 labels in
 *   [0, param] + 2^k outliers, 3 labels in [-1, param]); then u8 count of overrides (% 16), each
 *   u8 array (% 3), u32 index (% n), fz_int value.
 * Checked: the status matches the oracle (EVALUE for n == 0, a bad class count, the first bad
 *   label (smallest index; h1, h2, y at one index), named in the message; or a table that
 *   would not fit); on success the class count and every cell equal the plain count. */
#include "fuzz_common.h"

#define TENSOR_BYTES_MAX ((int64_t)16 << 20) /* run.sh's BCML_TENSOR_BYTES_MAX */
#define LONG_N (((int64_t)1 << 19) + 3)          /* two threads' worth of samples */

static const char *const argnames[3] = {"h1_labels", "h2_labels", "y"};

/* The harness's own loops over up to 2^20 samples are not instrumented for coverage (they
 * would dominate the run time and tell the fuzzer nothing about the code under test). */
static FZ_NOCOV void gen_labels(int64_t *arr[3], int64_t n, const uint8_t kind[3], const uint8_t param[3],
                                uint64_t *seed) {
    /* y first: h1 and h2 may copy it; past 8192 samples the first 8192 repeat (cheap) */
    int64_t m = n < 8192 ? n : 8192;
    for (int ai = 0; ai < 3; ai++) {
        int a = (ai + 2) % 3;
        int64_t *x = arr[a];
        uint64_t p = param[a];
        for (int64_t i = 0; i < m; i++) {
            uint64_t r = fz_mix(seed);
            switch (kind[a]) {
            case 0: x[i] = (int64_t)(r % (p + 1)); break;
            case 1: x[i] = a != 2 && (r & 255) >= p ? arr[2][i] : (int64_t)((r >> 8) % (p + 1)); break;
            case 2: x[i] = (r & 1023) ? (int64_t)(r % (p + 1)) : (int64_t)1 << ((r >> 10) % 30); break;
            default: x[i] = (int64_t)((r >> 4) % (p + 2)) - 1; break;
            }
        }
        for (int64_t i = m; i < n; i += m) memcpy(x + i, x, (size_t)(n - i < m ? n - i : m) * sizeof *x);
    }
}

/* The first label (smallest index; h1, h2, y at one index) above limit, and the largest label. */
static FZ_NOCOV void scan_labels(int64_t *const arr[3], int64_t n, uint64_t limit, int *bad_arg,
                                 int64_t *bad_index, uint64_t *mx) {
    for (int64_t i = 0; i < n && *bad_arg < 0; i++)
        for (int a = 0; a < 3; a++) {
            uint64_t v = (uint64_t)arr[a][i];
            if (v > limit) { *bad_arg = a; *bad_index = i; break; }
            if (v > *mx) *mx = v;
        }
}

static FZ_NOCOV void ref_table(int64_t *ref, int64_t *const arr[3], int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        int64_t h1 = arr[0][i], h2 = arr[1][i], y = arr[2][i];
        int r1 = h1 == y, r2 = h2 == y;
        int cell = r1 ? (r2 ? BCML_CT_RR : BCML_CT_RW) : (r2 ? BCML_CT_WR : BCML_CT_WW);
        ref[y * BCML_CT_CELLS + cell]++;
        if (h1 != h2) ref[y * BCML_CT_CELLS + BCML_CT_DIFF]++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz f = {data, size};
    uint8_t flags = fz_u8(&f);
    int64_t given = (flags & 1) ? fz_int(&f) : -1;
    int nthreads = (flags >> 1) & 7;
    /* mostly short inputs (fast); sizes at the block and chunk edges; two long ones, which split
     * over threads (2^18 samples each) */
    static const int64_t sizes[8] = {LONG_N, 65536 + 7, 65536, 65537, 4095, 1, 64 * 3 + 1, 1023};
    uint8_t nb = fz_u8(&f);
    int64_t n = nb < 0xF8 ? (int64_t)nb * 4 + (flags >> 6) : sizes[nb - 0xF8];
    int is_long = n == LONG_N && (flags & 16); /* two conditions: long inputs stay rare */
    if (n == LONG_N && !is_long) n = 2 * 65536 + 1;
    uint64_t seed = fz_u64(&f);
    int64_t *arr[3];
    /* a long input lives at the end of a buffer allocated once (no page faults per input; a
     * read past its end still hits ASan's redzone); others get their own allocation */
    static int64_t *long_buf[3];
    for (int a = 0; a < 3; a++) {
        if (is_long) {
            if (!long_buf[a] && !(long_buf[a] = malloc((size_t)LONG_N * sizeof(int64_t)))) abort();
            arr[a] = long_buf[a];
            continue;
        }
        arr[a] = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
        if (!arr[a]) abort();
    }
    uint8_t kind[3], param[3];
    for (int a = 0; a < 3; a++) { kind[a] = fz_u8(&f) % 4; param[a] = fz_u8(&f); }
    gen_labels(arr, n, kind, param, &seed);
    int nover = fz_u8(&f) % 16;
    for (int k = 0; k < nover; k++) {
        int a = fz_u8(&f) % 3;
        uint32_t idx = (uint32_t)fz_u16(&f) | ((uint32_t)fz_u16(&f) << 16);
        int64_t v = fz_int(&f);
        if (n) arr[a][idx % n] = v;
    }

    /* the oracle */
    int expect_ok = 1, bad_arg = -1;
    int64_t bad_index = -1;
    if (n == 0) expect_ok = 0;
    if (given >= 0 && (given < 1 || given > BCML_CT_MAX_CLASSES || given * 13 * 8 > TENSOR_BYTES_MAX))
        expect_ok = 0;
    uint64_t limit = given >= 0 ? (uint64_t)given - 1 : (uint64_t)BCML_CT_MAX_CLASSES - 1;
    int64_t C = given;
    if (expect_ok) {
        uint64_t mx = 0;
        scan_labels(arr, n, limit, &bad_arg, &bad_index, &mx);
        if (bad_arg >= 0) expect_ok = 0;
        else if (given < 0) C = (int64_t)mx + 1;
    }
    /* a class count that is valid but whose table does not fit may fail (EVALUE or ENOMEM) */
    int may_fail = expect_ok && C * 13 * 8 > TENSOR_BYTES_MAX;

    int64_t *counts = NULL, nc = given;
    bcml_err err = {{0}};
    bcml_status st = bcml_count_table(&counts, &nc, arr[0], arr[1], arr[2], n, nthreads,
                                      (flags & 32) ? NULL : "fuzz_scores", &err);
    FZ_CHECK_STATUS(st, err, "count_table");
    if (st) {
        FZ_ASSERT(!expect_ok || may_fail, "count_table failed on a valid input: %s", err.msg);
        FZ_ASSERT(counts == NULL, "counts after an error");
        FZ_ASSERT(st == BCML_EVALUE || st == BCML_ENOMEM, "status %d: %s", (int)st, err.msg);
        if (bad_arg >= 0 && !may_fail) {
            char idx[32];
            snprintf(idx, sizeof idx, "index %lld", (long long)bad_index);
            FZ_ASSERT(strstr(err.msg, argnames[bad_arg]) && strstr(err.msg, idx),
                      "the first bad label is %s[%lld] = %lld, the message says: %s",
                      argnames[bad_arg], (long long)bad_index, (long long)arr[bad_arg][bad_index], err.msg);
        }
    } else {
        FZ_ASSERT(expect_ok, "count_table accepted an invalid input (first bad: %d at %lld)", bad_arg,
                  (long long)bad_index);
        FZ_ASSERT(nc == C, "num_classes %lld, expected %lld", (long long)nc, (long long)C);
        int64_t *ref = calloc((size_t)C * BCML_CT_CELLS, sizeof(int64_t));
        FZ_ASSERT(ref != NULL, "oracle table");
        ref_table(ref, arr, n);
        for (int64_t c = 0; c < C * BCML_CT_CELLS; c++)
            FZ_ASSERT(counts[c] == ref[c], "class %lld cell %lld: %lld, expected %lld",
                      (long long)(c / BCML_CT_CELLS), (long long)(c % BCML_CT_CELLS),
                      (long long)counts[c], (long long)ref[c]);
        free(ref);
        bcml_free(counts);
    }
    if (!is_long)
        for (int a = 0; a < 3; a++) free(arr[a]);
    return 0;
}
