/* safetensors.h: a strict reader of safetensors headers (pure C11, no Python).
 *
 * The format: 8 bytes N (u64, little-endian), N bytes of UTF-8 JSON (the header), then the
 * data buffer. The header is one JSON object that starts with '{' and may be padded with
 * whitespace after its closing '}'. Each key is a tensor name mapped to
 *     {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]}
 * ([BEGIN, END) relative to the data buffer), except the optional "__metadata__", an object of
 * string values. Rules checked here (every violation is BCML_EVALUE with a message saying what
 * is wrong; the caller adds the file's name):
 *   - N <= 100,000,000 (the format's limit) and 8 + N <= the file's size;
 *   - strict JSON (RFC 8259, UTF-8 without surrogates), nested at most 3 levels deep (the
 *     format needs object -> entry -> shape); no duplicate tensor name, metadata key or entry
 *     field;
 *   - every entry has a known dtype, a shape of non-negative integers and two integer offsets
 *     with BEGIN <= END and END - BEGIN = product(shape) * itemsize (no overflow);
 *   - the ranges, sorted by BEGIN, tile the data buffer exactly: no overlap, no hole, no
 *     trailing byte, nothing past the end of the file.
 * Unknown keys inside an entry are skipped (after checking them as JSON), as the reference
 * implementation does. Entries may appear in any order in the header. */
#ifndef BCML_SAFETENSORS_H
#define BCML_SAFETENSORS_H

#include "bcml.h"

#define BCML_ST_MAX_HEADER 100000000ull  /* bytes: the format's limit on N */
#define BCML_ST_MAX_DEPTH 3              /* JSON nesting the format needs */

/* Every dtype the format defines with a whole number of bytes. */
typedef enum {
    BCML_ST_BOOL = 0, BCML_ST_U8, BCML_ST_I8, BCML_ST_F8_E5M2, BCML_ST_F8_E4M3, BCML_ST_I16,
    BCML_ST_U16, BCML_ST_F16, BCML_ST_BF16, BCML_ST_I32, BCML_ST_U32, BCML_ST_F32, BCML_ST_F64,
    BCML_ST_I64, BCML_ST_U64, BCML_ST_NDTYPES
} bcml_st_dtype;

const char *bcml_st_dtype_name(bcml_st_dtype dt);  /* "F32", ... */
size_t bcml_st_dtype_size(bcml_st_dtype dt);       /* bytes per element */

/* A decoded JSON string: UTF-8, not NUL-terminated (it may contain NUL bytes). */
typedef struct bcml_st_str { const char *ptr; size_t len; } bcml_st_str;

typedef struct bcml_st_entry {
    bcml_st_str name;
    bcml_st_dtype dtype;
    int64_t ndim;
    const int64_t *shape;   /* (ndim), each >= 0 */
    int64_t numel;
    uint64_t begin, end;    /* [begin, end) in the data buffer */
} bcml_st_entry;

typedef struct bcml_st_header {
    bcml_st_entry *entries;        /* (n_entries), in header order */
    int64_t n_entries;
    int has_metadata;              /* the header has a "__metadata__" object */
    bcml_st_str *meta_keys;        /* (n_meta), in header order */
    bcml_st_str *meta_values;      /* (n_meta) */
    int64_t n_meta;
    uint64_t data_start;           /* 8 + N: the data buffer's offset in the file */
    uint64_t data_size;            /* the data buffer's size in bytes */
    char *strings_;                /* private: storage of the decoded strings */
    int64_t *dims_;                /* private: storage of the shapes */
} bcml_st_header;

/* Parses and checks file[0, len) (the whole file: its size is needed for the range checks).
 * On success *out is a new header to release with bcml_st_free; on failure *out is NULL. */
bcml_status bcml_st_parse(const unsigned char *file, size_t len, bcml_st_header **out,
                          bcml_err *err);
void bcml_st_free(bcml_st_header *h);  /* NULL is fine */

#endif
