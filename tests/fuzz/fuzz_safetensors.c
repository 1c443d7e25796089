// sources: safetensors.c status.c
/* fuzz_safetensors.c: libFuzzer harness for the safetensors reader (csrc/core/safetensors.c).
 * Each input is a whole file. The reader must return a status (never crash, leak or hit UB);
 * on success every entry it returns must lie inside the data buffer, and the entries must tile
 * the buffer exactly, which this harness re-checks independently.
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc/core tests/fuzz/fuzz_safetensors.c \
 *         csrc/core/safetensors.c csrc/core/status.c -o /tmp/fz
 *   /tmp/fz -max_total_time=60 -print_final_stats=1 tests/fuzz/corpus/safetensors */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

static void check(int ok) {
    if (!ok) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bcml_err err;
    bcml_st_header *h = NULL;
    bcml_status st = bcml_st_parse(data, size, &h, &err);
    if (st != BCML_OK) {
        check(h == NULL);
        check(st == BCML_EVALUE || st == BCML_ENOMEM);
        check(memchr(err.msg, 0, sizeof err.msg) != NULL && err.msg[0] != 0);
        return 0;
    }
    check(h != NULL);
    check(h->data_start + h->data_size == size);
    uint64_t total = 0;
    for (int64_t i = 0; i < h->n_entries; i++) {
        const bcml_st_entry *e = &h->entries[i];
        check(e->begin <= e->end && e->end <= h->data_size);
        uint64_t numel = 1;
        for (int64_t d = 0; d < e->ndim; d++) {
            check(e->shape[d] >= 0);
            numel *= (uint64_t)e->shape[d];
        }
        check(numel == (uint64_t)e->numel);
        check(e->end - e->begin == numel * bcml_st_dtype_size(e->dtype));
        total += e->end - e->begin;
        volatile unsigned char sink = 0;  /* touch the names and the data: ASan checks the bounds */
        for (size_t k = 0; k < e->name.len; k++) sink ^= (unsigned char)e->name.ptr[k];
        if (e->end > e->begin) {
            sink ^= data[h->data_start + e->begin];
            sink ^= data[h->data_start + e->end - 1];
        }
        (void)sink;
    }
    check(total == h->data_size);  /* ranges are disjoint and cover the buffer */
    for (int64_t i = 0; i < h->n_meta; i++) {
        volatile unsigned char sink = 0;
        for (size_t k = 0; k < h->meta_keys[i].len; k++) sink ^= (unsigned char)h->meta_keys[i].ptr[k];
        for (size_t k = 0; k < h->meta_values[i].len; k++) sink ^= (unsigned char)h->meta_values[i].ptr[k];
        (void)sink;
    }
    bcml_st_free(h);
    return 0;
}
