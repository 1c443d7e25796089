/* fuzz_common.h: the byte reader shared by the libFuzzer harnesses of tests/fuzz/.
 *
 * A harness reads its input as a stream of small fields. Every reader returns 0 (or the
 * neutral value) once the input is used up, so any byte string is a valid input and a short one
 * means "defaults for the rest". The encodings are chosen so that a seed corpus file can be
 * written by hand (tests/fuzz/make_corpus.py): most integers and floats are one tag byte that
 * maps to a small value, with a few tags reserved for the extremes that break size arithmetic
 * (INT64_MIN, 2^31, NaN, 1e39, ...). */
#ifndef BCML_FUZZ_COMMON_H
#define BCML_FUZZ_COMMON_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bcml.h"

typedef struct fz {
    const uint8_t *p;
    size_t n;
} fz;

static inline uint8_t fz_u8(fz *f) {
    if (!f->n) return 0;
    f->n--;
    return *f->p++;
}

static inline uint16_t fz_u16(fz *f) { return (uint16_t)(fz_u8(f) | (fz_u8(f) << 8)); }

static inline uint64_t fz_u64(fz *f) {
    uint64_t v = 0;
    for (int k = 0; k < 8; k++) v |= (uint64_t)fz_u8(f) << (8 * k);
    return v;
}

/* Integers: tag < 0xE0 -> tag - 32 (so -32 .. 191); 0xE0 .. 0xFF -> the extremes below (the
 * last reads 8 raw bytes). */
static const int64_t fz_int_special[31] = {
    INT64_MIN, INT64_MAX, INT32_MIN, INT32_MAX, (int64_t)1 << 31, (int64_t)1 << 32,
    -((int64_t)1 << 31) - 1, (int64_t)1 << 62, -((int64_t)1 << 62), UINT32_MAX,
    (int64_t)1 << 40, 65535, 65536, 1000000000, -1000000000, INT64_MAX - 1, INT64_MIN + 1,
    (int64_t)1 << 28, ((int64_t)1 << 28) - 1, (int64_t)1 << 53, ((int64_t)1 << 53) + 1, 255, 256,
    1023, 1024, 4096, -100, -1000, 100000, ((int64_t)1 << 62) + 1, INT64_MAX / 2};

static inline int64_t fz_int(fz *f) {
    uint8_t t = fz_u8(f);
    if (t < 0xE0) return (int64_t)t - 32;
    if (t == 0xFF) return (int64_t)fz_u64(f);
    return fz_int_special[t - 0xE0];
}

/* Floats (double): tag < 0xC0 -> (tag - 64) / 8 (so -8 .. 15.875 in steps of 1/8); above, the
 * values below (the last reads 8 raw bytes). */
static inline double fz_double(fz *f) {
    uint8_t t = fz_u8(f);
    if (t < 0xC0) return ((double)t - 64.0) / 8.0;
    switch (t - 0xC0) {
    case 0: return NAN;
    case 1: return INFINITY;
    case 2: return -INFINITY;
    case 3: return 1e39;
    case 4: return -1e39;
    case 5: return DBL_MAX;
    case 6: return 1e-5;
    case 7: return 1e-12;
    case 8: return 5e-324;
    case 9: return -0.0;
    case 10: return FLT_MAX;
    case 11: return 0.1;
    case 12: return 0.9;
    case 13: return 0.999;
    case 14: return 1e-8;
    case 15: return 1e30;
    case 16: return -1e30;
    case 17: return 0.5;
    case 18: return 1.0 - 1e-7;
    case 19: return 1e-45;
    case 20: return 100.0;
    case 21: return -100.0;
    case 22: return 1e6;
    case 23: return 2.0;
    default: {
        uint64_t bits = fz_u64(f);
        double d;
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    }
}

/* Marks a harness's own bulk loops (data generation, oracles) as not instrumented for coverage. */
#if defined(__clang__)
#define FZ_NOCOV __attribute__((no_sanitize("coverage"), noinline))
#else
#define FZ_NOCOV
#endif

/* splitmix64: data that an input describes by a seed rather than byte by byte. */
static inline uint64_t fz_mix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static const float fz_float_special[12] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, FLT_MAX,
                                           -FLT_MAX, 1e-45f, 1.0f, -1.0f, 1e30f, -1e30f};

/* The element count of a shape, -1 when it overflows int64 (a zero dim makes it 0 whatever the
 * other dims are). */
static inline int64_t fz_numel(int ndim, const int64_t *shape) {
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0) return 0;
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0 || __builtin_mul_overflow(n, shape[d], &n)) return -1;
    return n;
}

/* FUZZ_TRACE=1 in the environment: harnesses print what each call returned (to check that a
 * corpus file reaches what it is meant to). */
static inline int fz_trace(void) {
    static int t = -1;
    if (t < 0) t = getenv("FUZZ_TRACE") != NULL;
    return t;
}

/* The invariant of every harness: a failing call names what is wrong. */
#define FZ_CHECK_STATUS(st, err, what)                                                         \
    do {                                                                                       \
        if ((st) != BCML_OK && ((int)(st) < 0 || (int)(st) > BCML_ERUNTIME || !(err).msg[0])) { \
            fprintf(stderr, "%s: status %d with message \"%s\"\n", (what), (int)(st),        \
                    (err).msg);                                                                \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

#define FZ_ASSERT(cond, ...)                                                                   \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "assertion failed: %s: ", #cond);                                  \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

#endif
