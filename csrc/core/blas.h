/* blas.h: the one place that names the BLAS. Built either against a system OpenBLAS
 * (plain cblas_ names) or against scipy-openblas32 from PyPI (symbols prefixed scipy_). */
#ifndef BCML_BLAS_H
#define BCML_BLAS_H
#include <cblas.h>
#ifdef BCML_BLAS_SCIPY
#define BCML_BLAS(name) scipy_##name
#else
#define BCML_BLAS(name) name
#endif
#define bcml_sgemm BCML_BLAS(cblas_sgemm)
#define bcml_sgemv BCML_BLAS(cblas_sgemv)
#define bcml_openblas_set_num_threads BCML_BLAS(openblas_set_num_threads)
#define bcml_openblas_get_num_threads BCML_BLAS(openblas_get_num_threads)
#endif
