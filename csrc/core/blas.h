/* blas.h: the one place that names the BLAS. Built either against a system OpenBLAS
 * (plain cblas_ names) or against scipy-openblas32 from PyPI (symbols prefixed scipy_).
 *
 * Every call into the BLAS goes through the wrappers below, which hold bcml's BLAS lock in shared
 * mode for the call (threads.c): a fork() waits, in its atfork prepare handler, until no bcml
 * thread is inside OpenBLAS, so the child never inherits one of OpenBLAS's internal locks (its
 * buffer allocator's) held by a thread that does not exist there. Call sites cannot forget it:
 * the library's own names are not used anywhere else. */
#ifndef BCML_BLAS_H
#define BCML_BLAS_H
#include <cblas.h>

#include "bcml.h"

#ifdef BCML_BLAS_SCIPY
#define BCML_BLAS(name) scipy_##name
#else
#define BCML_BLAS(name) name
#endif

static inline void bcml_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta,
                              enum CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k,
                              float alpha, const float *a, blasint lda, const float *b,
                              blasint ldb, float beta, float *c, blasint ldc) {
    bcml_blas_enter();
    BCML_BLAS(cblas_sgemm)(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    bcml_blas_leave();
}

static inline void bcml_sgemv(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE trans, blasint m,
                              blasint n, float alpha, const float *a, blasint lda,
                              const float *x, blasint incx, float beta, float *y, blasint incy) {
    bcml_blas_enter();
    BCML_BLAS(cblas_sgemv)(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy);
    bcml_blas_leave();
}

static inline void bcml_openblas_set_num_threads(int n) {
    bcml_blas_enter();
    BCML_BLAS(openblas_set_num_threads)(n);
    bcml_blas_leave();
}

static inline int bcml_openblas_get_num_threads(void) {
    bcml_blas_enter();
    int n = BCML_BLAS(openblas_get_num_threads)();
    bcml_blas_leave();
    return n;
}
#endif
