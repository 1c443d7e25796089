/* status.c: error reporting (bcml_fail), in a file of its own so that a harness of one part of
 * the core (tests/fuzz/fuzz_safetensors.c) links it without the rest. */
#include "bcml.h"

#include <stdarg.h>
#include <stdio.h>

bcml_status bcml_fail(bcml_err *err, bcml_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}
