/* cpu.c: which instruction-set specific kernels run. The AVX-512 kernels (the direct
 * convolution, the narrow linear layers, the 2 x 2 max pool) are compiled for AVX-512F with a
 * target attribute in an otherwise portable build and taken only where the CPU has it; the
 * switch turns them all off, so that tests compare them with the portable kernels on one
 * machine. */
#include "ops.h"

#include <stdatomic.h>

static atomic_int avx512_on = 1;

int bcml_cpu_avx512(void) {
#if BCML_AVX512_BUILD
    static atomic_int known = -1;
    int k = atomic_load(&known);
    if (k < 0) {
        __builtin_cpu_init();
        k = __builtin_cpu_supports("avx512f") ? 1 : 0;
        atomic_store(&known, k);
    }
    return k;
#else
    return 0;
#endif
}

void bcml_set_avx512(int on) { atomic_store(&avx512_on, on ? 1 : 0); }
int bcml_get_avx512(void) { return atomic_load(&avx512_on); }
int bcml_have_avx512(void) { return atomic_load(&avx512_on) && bcml_cpu_avx512(); }
