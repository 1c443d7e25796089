/* rng.c: xoshiro256** random numbers, seeded with splitmix64. No global state. */
#include "bcml.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void bcml_gen_seed(bcml_generator *g, uint64_t seed) {
    uint64_t x = seed;
    for (int k = 0; k < 4; k++) g->s[k] = splitmix64(&x);
    g->seed = seed;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t bcml_gen_next(bcml_generator *g) {
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double bcml_gen_uniform(bcml_generator *g) {
    return (double)(bcml_gen_next(g) >> 11) * 0x1.0p-53;
}

float bcml_gen_uniform_f(bcml_generator *g) {
    return (float)(bcml_gen_next(g) >> 40) * 0x1.0p-24f;
}

double bcml_gen_normal(bcml_generator *g) {
    /* Box-Muller, one value per call (keeps the stream position simple to reason about). */
    double u1 = 1.0 - bcml_gen_uniform(g); /* (0, 1] */
    double u2 = bcml_gen_uniform(g);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t bcml_gen_below(bcml_generator *g, uint64_t n) {
    /* Lemire's nearly divisionless method with rejection: unbiased. */
    uint64_t x = bcml_gen_next(g);
    __uint128_t m = (__uint128_t)x * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = (0 - n) % n;
        while (l < t) {
            x = bcml_gen_next(g);
            m = (__uint128_t)x * n;
            l = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

uint64_t bcml_gen_derive(uint64_t seed, uint64_t index) {
    uint64_t x = seed ^ 0x6a09e667f3bcc909ULL;
    uint64_t a = splitmix64(&x);
    uint64_t y = a ^ (index * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
    return splitmix64(&y);
}

void bcml_fill_uniform(float *x, int64_t n, float lo, float hi, bcml_generator *g) {
    float w = hi - lo;
    for (int64_t i = 0; i < n; i++) x[i] = lo + w * bcml_gen_uniform_f(g);
}

void bcml_fill_normal(float *x, int64_t n, float mean, float std, bcml_generator *g) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(mean + std * bcml_gen_normal(g));
}

void bcml_randperm(int64_t *out, int64_t n, bcml_generator *g) {
    for (int64_t i = 0; i < n; i++) out[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)bcml_gen_below(g, (uint64_t)i + 1);
        int64_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
}
