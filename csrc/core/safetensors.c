/* safetensors.c: the strict safetensors header reader (rules in safetensors.h).
 *
 * A recursive-descent JSON parser whose recursion is bounded by BCML_ST_MAX_DEPTH (a deeper
 * container is refused before it is entered), then the format's checks on the entries. Every
 * allocation is bounded by the header's size and freed on every path. */
#include "safetensors.h"

#include <stdlib.h>
#include <string.h>

/* ---- dtypes ----------------------------------------------------------------------------- */
static const struct { const char *name; size_t size; } DTYPES[] = {
    {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2},
    {"F16", 2}, {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4}, {"F64", 8}, {"I64", 8}, {"U64", 8},
};
_Static_assert(sizeof DTYPES / sizeof DTYPES[0] == BCML_ST_NDTYPES, "one DTYPES row per bcml_st_dtype");

const char *bcml_st_dtype_name(bcml_st_dtype dt) {
    return (unsigned)dt < BCML_ST_NDTYPES ? DTYPES[dt].name : "?";
}

size_t bcml_st_dtype_size(bcml_st_dtype dt) {
    return (unsigned)dt < BCML_ST_NDTYPES ? DTYPES[dt].size : 0;
}

/* ---- parser state -------------------------------------------------------------------------- */
typedef struct {
    const unsigned char *s, *p, *end;  /* the header text; p: the next byte */
    char *out;                         /* decoded strings; capacity: the header's size */
    size_t out_len;
    bcml_err *err;
    bcml_status st;                    /* set by the first failure */
    bcml_st_entry *ent;                /* (n_ent) */
    int64_t *dim_at;                   /* (n_ent): where each entry's shape starts in dims */
    int64_t n_ent, cap_ent, cap_dim_at;
    int64_t *dims;
    int64_t n_dims, cap_dims;
    bcml_st_str *mk, *mv;              /* metadata keys and values (n_meta) */
    int64_t n_meta, cap_mk, cap_mv;
    int has_meta;
} parser;

#define FAIL(ps, ...) ((ps)->st = bcml_fail((ps)->err, BCML_EVALUE, __VA_ARGS__), -1)

static int fail_nomem(parser *ps) {
    ps->st = bcml_fail(ps->err, BCML_ENOMEM, "out of memory while reading the safetensors header");
    return -1;
}

static size_t at(const parser *ps) { return (size_t)(ps->p - ps->s); }

static int fail_json(parser *ps, const char *what) {
    return FAIL(ps, "invalid JSON in the header at byte %zu: %s", at(ps), what);
}

/* Grows *arr (elements of size elem) to hold at least need elements. */
static int grow(parser *ps, void **arr, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 0;
    int64_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > INT64_MAX / 2) return fail_nomem(ps);
        c *= 2;
    }
    if ((uint64_t)c > SIZE_MAX / elem) return fail_nomem(ps);
    void *q = realloc(*arr, (size_t)c * elem);
    if (!q) return fail_nomem(ps);
    *arr = q;
    *cap = c;
    return 0;
}

/* A name for messages: quoted, printable ASCII, at most about 60 characters. */
static const char *quote(char *buf, size_t cap, bcml_st_str s) {
    size_t o = 0;
    buf[o++] = '\'';
    for (size_t i = 0; i < s.len && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (o > 60) { memcpy(buf + o, "...", 3); o += 3; break; }
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
            buf[o++] = (char)c;
        } else {
            static const char hex[] = "0123456789abcdef";
            buf[o++] = '\\'; buf[o++] = 'x'; buf[o++] = hex[c >> 4]; buf[o++] = hex[c & 15];
        }
    }
    buf[o++] = '\'';
    buf[o] = 0;
    return buf;
}

static void ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int expect(parser *ps, unsigned char c, const char *what) {
    ws(ps);
    if (ps->p >= ps->end || *ps->p != c) return fail_json(ps, what);
    ps->p++;
    return 0;
}

/* ---- strings ------------------------------------------------------------------------------ */
/* Length of the valid UTF-8 sequence at p (no overlong forms, no surrogates), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    size_t k;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { k = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { k = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { k = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)(end - p) < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

static int hex4(parser *ps, uint32_t *v) {
    if (ps->end - ps->p < 4) return fail_json(ps, "truncated \\u escape");
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = ps->p[i];
        x <<= 4;
        if (c >= '0' && c <= '9') x |= c - '0';
        else if (c >= 'a' && c <= 'f') x |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') x |= c - 'A' + 10;
        else return fail_json(ps, "bad \\u escape");
    }
    ps->p += 4;
    *v = x;
    return 0;
}

static size_t put_utf8(char *dst, uint32_t cp) {
    if (cp < 0x80) { dst[0] = (char)cp; return 1; }
    if (cp < 0x800) { dst[0] = (char)(0xC0 | cp >> 6); dst[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | cp >> 12); dst[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | cp >> 18); dst[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    dst[2] = (char)(0x80 | (cp >> 6 & 0x3F)); dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a JSON string at p; when out is not NULL, stores its decoded bytes (never more than
 * the raw text's length, so the header's size bounds the storage) and points out at them. */
static int parse_string(parser *ps, bcml_st_str *out) {
    ws(ps);
    if (ps->p >= ps->end || *ps->p != '"') return fail_json(ps, "expected a string");
    ps->p++;
    char *dst = ps->out + ps->out_len;
    size_t n = 0;
    for (;;) {
        if (ps->p >= ps->end) return fail_json(ps, "unterminated string");
        unsigned c = *ps->p;
        if (c == '"') { ps->p++; break; }
        if (c < 0x20) return fail_json(ps, "control character in a string");
        if (c != '\\') {
            size_t k = utf8_len(ps->p, ps->end);
            if (!k) return fail_json(ps, "invalid UTF-8");
            if (out) memcpy(dst + n, ps->p, k);
            n += k;
            ps->p += k;
            continue;
        }
        ps->p++;
        if (ps->p >= ps->end) return fail_json(ps, "unterminated string");
        uint32_t cp;
        switch (*ps->p++) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (hex4(ps, &cp)) return -1;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail_json(ps, "lone low surrogate in a \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
                    return fail_json(ps, "lone high surrogate in a \\u escape");
                ps->p += 2;
                if (hex4(ps, &lo)) return -1;
                if (lo < 0xDC00 || lo > 0xDFFF) return fail_json(ps, "lone high surrogate in a \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            break;
        default:
            ps->p--;
            return fail_json(ps, "bad escape in a string");
        }
        if (out) n += put_utf8(dst + n, cp);
        else n += cp < 0x80 ? 1 : 4;
    }
    if (out) {
        out->ptr = dst;
        out->len = n;
        ps->out_len += n;
    }
    return 0;
}

static int str_is(bcml_st_str s, const char *lit) {
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* ---- numbers and other values ----------------------------------------------------------- */
/* Scans a JSON number at p. *is_uint: it is written as a non-negative integer (no sign, no
 * fraction, no exponent) that fits in 63 bits; then *u is its value. */
static int scan_number(parser *ps, int *is_uint, uint64_t *u) {
    const unsigned char *q = ps->p, *e = ps->end;
    int neg = 0, frac = 0, big = 0;
    uint64_t v = 0;
    if (q < e && *q == '-') { neg = 1; q++; }
    if (q >= e) return fail_json(ps, "invalid number");
    if (*q == '0') {
        q++;
    } else if (*q >= '1' && *q <= '9') {
        while (q < e && *q >= '0' && *q <= '9') {
            unsigned d = (unsigned)(*q - '0');
            if (v > ((uint64_t)INT64_MAX - d) / 10) big = 1;
            else v = v * 10 + d;
            q++;
        }
    } else {
        return fail_json(ps, "invalid value");
    }
    if (q < e && *q == '.') {
        q++;
        if (q >= e || *q < '0' || *q > '9') { ps->p = q; return fail_json(ps, "invalid number"); }
        while (q < e && *q >= '0' && *q <= '9') q++;
        frac = 1;
    }
    if (q < e && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < e && (*q == '+' || *q == '-')) q++;
        if (q >= e || *q < '0' || *q > '9') { ps->p = q; return fail_json(ps, "invalid number"); }
        while (q < e && *q >= '0' && *q <= '9') q++;
        frac = 1;
    }
    ps->p = q;
    *is_uint = !neg && !frac && !big;
    *u = v;
    return 0;
}

static int literal(parser *ps, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0) return fail_json(ps, "invalid value");
    ps->p += n;
    return 0;
}

static int fail_depth(parser *ps) {
    return FAIL(ps, "the header nests JSON deeper than the format allows (%d levels) at byte %zu",
                BCML_ST_MAX_DEPTH, at(ps));
}

/* Checks (and skips) any JSON value; a container would sit at nesting level depth. */
static int skip_value(parser *ps, int depth) {
    ws(ps);
    if (ps->p >= ps->end) return fail_json(ps, "unexpected end of the header");
    unsigned c = *ps->p;
    if (c == '"') return parse_string(ps, NULL);
    if (c == 't') return literal(ps, "true");
    if (c == 'f') return literal(ps, "false");
    if (c == 'n') return literal(ps, "null");
    if (c == '{' || c == '[') {
        if (depth > BCML_ST_MAX_DEPTH) return fail_depth(ps);
        unsigned close = c == '{' ? '}' : ']';
        ps->p++;
        ws(ps);
        if (ps->p < ps->end && *ps->p == close) { ps->p++; return 0; }
        for (;;) {
            if (c == '{') {
                if (parse_string(ps, NULL) || expect(ps, ':', "expected ':'")) return -1;
            }
            if (skip_value(ps, depth + 1)) return -1;
            ws(ps);
            if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
            if (ps->p < ps->end && *ps->p == close) { ps->p++; return 0; }
            return fail_json(ps, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    int is_uint;
    uint64_t u;
    return scan_number(ps, &is_uint, &u);
}

/* ---- the header's parts --------------------------------------------------------------------- */
/* A list of non-negative integers (shape or data_offsets of tensor name), appended to dims. */
static int parse_uints(parser *ps, bcml_st_str name, const char *field, int64_t *count) {
    char qb[96];
    ws(ps);
    if (ps->p >= ps->end || *ps->p != '[')
        return FAIL(ps, "%s of tensor %s must be a list of non-negative integers", field,
                    quote(qb, sizeof qb, name));
    /* level 3: root object, entry object, this list */
    ps->p++;
    *count = 0;
    ws(ps);
    if (ps->p < ps->end && *ps->p == ']') { ps->p++; return 0; }
    for (;;) {
        ws(ps);
        int is_uint = 0;
        uint64_t u = 0;
        const unsigned char *tok = ps->p;
        if (ps->p < ps->end && (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))) {
            if (scan_number(ps, &is_uint, &u)) return -1;
        }
        if (!is_uint) {
            char qt[96];
            const char *kind = NULL;
            if (ps->p == tok) {  /* not a number: say what it is */
                unsigned c = tok < ps->end ? *tok : 0;
                kind = c == '"' ? "a string" : c == '[' ? "a list" : c == '{' ? "an object" :
                       c == 't' || c == 'f' ? "a bool" : c == 'n' ? "null" : "an invalid value";
            } else {
                size_t n = (size_t)(ps->p - tok);
                bcml_st_str t = {(const char *)tok, n > 24 ? 24 : n};
                kind = quote(qt, sizeof qt, t);
            }
            return FAIL(ps, "%s of tensor %s must hold non-negative integers below 2**63, got %s", field,
                        quote(qb, sizeof qb, name), kind);
        }
        if (grow(ps, (void **)&ps->dims, &ps->cap_dims, ps->n_dims + 1, sizeof *ps->dims)) return -1;
        ps->dims[ps->n_dims++] = (int64_t)u;
        ++*count;
        ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == ']') { ps->p++; return 0; }
        return fail_json(ps, "expected ',' or ']'");
    }
}

static int parse_entry(parser *ps, bcml_st_str name) {
    char qb[96];
    ws(ps);
    if (ps->p >= ps->end || *ps->p != '{')
        return FAIL(ps, "tensor %s must be described by an object with dtype, shape and data_offsets",
                    quote(qb, sizeof qb, name));
    ps->p++;
    if (grow(ps, (void **)&ps->ent, &ps->cap_ent, ps->n_ent + 1, sizeof *ps->ent) ||
        grow(ps, (void **)&ps->dim_at, &ps->cap_dim_at, ps->n_ent + 1, sizeof *ps->dim_at))
        return -1;
    bcml_st_entry *e = &ps->ent[ps->n_ent];
    memset(e, 0, sizeof *e);
    e->name = name;
    int seen_dtype = 0, seen_shape = 0, seen_offsets = 0;
    int64_t shape_at = ps->n_dims, offsets_at = 0;
    ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
    } else {
        for (;;) {
            size_t mark = ps->out_len;
            bcml_st_str key;
            if (parse_string(ps, &key) || expect(ps, ':', "expected ':'")) return -1;
            int which = str_is(key, "dtype") ? 1 : str_is(key, "shape") ? 2 : str_is(key, "data_offsets") ? 3 : 0;
            if ((which == 1 && seen_dtype) || (which == 2 && seen_shape) || (which == 3 && seen_offsets))
                return FAIL(ps, "tensor %s has a duplicate key %s", quote(qb, sizeof qb, name),
                            which == 1 ? "'dtype'" : which == 2 ? "'shape'" : "'data_offsets'");
            if (which == 1) {
                bcml_st_str v;
                ws(ps);
                if (ps->p >= ps->end || *ps->p != '"')
                    return FAIL(ps, "dtype of tensor %s must be a string", quote(qb, sizeof qb, name));
                if (parse_string(ps, &v)) return -1;
                int found = -1;
                for (int k = 0; k < BCML_ST_NDTYPES; k++)
                    if (str_is(v, DTYPES[k].name)) found = k;
                if (found < 0) {
                    char qd[96];
                    return FAIL(ps, "tensor %s: dtype %s is not supported", quote(qb, sizeof qb, name),
                                quote(qd, sizeof qd, v));
                }
                e->dtype = (bcml_st_dtype)found;
                seen_dtype = 1;
            } else if (which == 2) {
                shape_at = ps->n_dims;
                if (parse_uints(ps, name, "shape", &e->ndim)) return -1;
                seen_shape = 1;
            } else if (which == 3) {
                int64_t n;
                offsets_at = ps->n_dims;
                if (parse_uints(ps, name, "data_offsets", &n)) return -1;
                if (n != 2)
                    return FAIL(ps, "data_offsets of tensor %s must hold 2 integers [begin, end], got %lld",
                                quote(qb, sizeof qb, name), (long long)n);
                e->begin = (uint64_t)ps->dims[offsets_at];
                e->end = (uint64_t)ps->dims[offsets_at + 1];
                ps->n_dims -= 2;  /* the offsets are kept in e, not in dims */
                seen_offsets = 1;
            } else {
                if (skip_value(ps, BCML_ST_MAX_DEPTH)) return -1;
            }
            ps->out_len = mark;  /* the key (and dtype) strings are not needed any more */
            ws(ps);
            if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
            if (ps->p < ps->end && *ps->p == '}') { ps->p++; break; }
            return fail_json(ps, "expected ',' or '}'");
        }
    }
    if (!seen_dtype || !seen_shape || !seen_offsets)
        return FAIL(ps, "tensor %s lacks %s", quote(qb, sizeof qb, name),
                    !seen_dtype ? "'dtype'" : !seen_shape ? "'shape'" : "'data_offsets'");
    ps->dim_at[ps->n_ent] = shape_at;
    ps->n_ent++;
    return 0;
}

static int parse_metadata(parser *ps) {
    ws(ps);
    if (ps->p >= ps->end || *ps->p != '{')
        return FAIL(ps, "__metadata__ must be an object mapping strings to strings");
    ps->p++;
    ws(ps);
    if (ps->p < ps->end && *ps->p == '}') { ps->p++; return 0; }
    for (;;) {
        bcml_st_str k, v;
        if (parse_string(ps, &k) || expect(ps, ':', "expected ':'")) return -1;
        ws(ps);
        if (ps->p >= ps->end || *ps->p != '"') {
            char qb[96];
            return FAIL(ps, "__metadata__ must map strings to strings, but the value of %s is not a string",
                        quote(qb, sizeof qb, k));
        }
        if (parse_string(ps, &v)) return -1;
        if (grow(ps, (void **)&ps->mk, &ps->cap_mk, ps->n_meta + 1, sizeof *ps->mk) ||
            grow(ps, (void **)&ps->mv, &ps->cap_mv, ps->n_meta + 1, sizeof *ps->mv))
            return -1;
        ps->mk[ps->n_meta] = k;
        ps->mv[ps->n_meta] = v;
        ps->n_meta++;
        ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == '}') { ps->p++; return 0; }
        return fail_json(ps, "expected ',' or '}'");
    }
}

static int parse_root(parser *ps) {
    if (ps->p >= ps->end || *ps->p != '{') return FAIL(ps, "the header must start with '{'");
    ps->p++;
    ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
    } else {
        for (;;) {
            bcml_st_str key;
            if (parse_string(ps, &key) || expect(ps, ':', "expected ':'")) return -1;
            if (str_is(key, "__metadata__")) {
                if (ps->has_meta) return FAIL(ps, "the header has a duplicate key '__metadata__'");
                ps->has_meta = 1;
                if (parse_metadata(ps)) return -1;
            } else if (parse_entry(ps, key)) {
                return -1;
            }
            ws(ps);
            if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
            if (ps->p < ps->end && *ps->p == '}') { ps->p++; break; }
            return fail_json(ps, "expected ',' or '}'");
        }
    }
    ws(ps);
    if (ps->p != ps->end)
        return FAIL(ps, "the header has trailing characters after its JSON object (at byte %zu)", at(ps));
    return 0;
}

/* ---- the format's checks -------------------------------------------------------------------- */
static int cmp_str(const bcml_st_str *a, const bcml_st_str *b) {
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->ptr, b->ptr, n) : 0;
    if (c) return c;
    return (a->len > b->len) - (a->len < b->len);
}

static int cmp_name_ptr(const void *x, const void *y) {
    return cmp_str(*(const bcml_st_str *const *)x, *(const bcml_st_str *const *)y);
}

static int cmp_range(const void *x, const void *y) {
    const bcml_st_entry *a = *(const bcml_st_entry *const *)x, *b = *(const bcml_st_entry *const *)y;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    return (a->end > b->end) - (a->end < b->end);
}

/* Refuses a repeated string among strs[0, n) (what: "tensor name", "__metadata__ key"). */
static int check_unique(parser *ps, const bcml_st_str *strs, size_t stride, int64_t n, const char *what) {
    if (n < 2) return 0;
    const bcml_st_str **v = malloc((size_t)n * sizeof *v);
    if (!v) return fail_nomem(ps);
    for (int64_t i = 0; i < n; i++) v[i] = (const bcml_st_str *)((const char *)strs + (size_t)i * stride);
    qsort(v, (size_t)n, sizeof *v, cmp_name_ptr);
    int rc = 0;
    for (int64_t i = 1; i < n; i++) {
        if (cmp_str(v[i - 1], v[i]) == 0) {
            char qb[96];
            rc = FAIL(ps, "the header has a duplicate %s %s", what, quote(qb, sizeof qb, *v[i]));
            break;
        }
    }
    free(v);
    return rc;
}

static int check_entries(parser *ps, uint64_t data_size) {
    char qa[96], qb[96];
    for (int64_t i = 0; i < ps->n_ent; i++) {
        bcml_st_entry *e = &ps->ent[i];
        e->shape = ps->dims ? ps->dims + ps->dim_at[i] : NULL;  /* NULL only when every ndim is 0 */
        int64_t numel = 1;
        for (int64_t d = 0; d < e->ndim; d++) {
            int64_t s = e->shape[d];
            if (numel && s && numel > INT64_MAX / s)
                return FAIL(ps, "shape of tensor %s has more than 2**63-1 elements", quote(qa, sizeof qa, e->name));
            numel *= s;
        }
        e->numel = numel;
        uint64_t size = bcml_st_dtype_size(e->dtype);
        if ((uint64_t)numel > (uint64_t)INT64_MAX / size)
            return FAIL(ps, "tensor %s needs more than 2**63-1 bytes", quote(qa, sizeof qa, e->name));
        uint64_t nbytes = (uint64_t)numel * size;
        if (e->begin > e->end)
            return FAIL(ps, "tensor %s has data_offsets [%llu, %llu] out of order (end before begin)",
                        quote(qa, sizeof qa, e->name), (unsigned long long)e->begin, (unsigned long long)e->end);
        if (e->end > data_size)
            return FAIL(ps, "tensor %s has data_offsets [%llu, %llu] beyond the %llu-byte data buffer "
                        "(truncated file?)", quote(qa, sizeof qa, e->name), (unsigned long long)e->begin,
                        (unsigned long long)e->end, (unsigned long long)data_size);
        if (e->end - e->begin != nbytes)
            return FAIL(ps, "tensor %s has data_offsets [%llu, %llu] (%llu bytes), but dtype %s with %lld "
                        "elements needs %llu bytes", quote(qa, sizeof qa, e->name),
                        (unsigned long long)e->begin, (unsigned long long)e->end,
                        (unsigned long long)(e->end - e->begin), bcml_st_dtype_name(e->dtype),
                        (long long)numel, (unsigned long long)nbytes);
    }
    if (ps->n_ent > 1 && check_unique(ps, &ps->ent[0].name, sizeof(bcml_st_entry), ps->n_ent, "tensor name"))
        return -1;
    if (ps->n_ent == 0) {
        if (data_size) return FAIL(ps, "the data buffer has %llu bytes but the header describes no tensor",
                                   (unsigned long long)data_size);
        return 0;
    }
    const bcml_st_entry **v = malloc((size_t)ps->n_ent * sizeof *v);
    if (!v) return fail_nomem(ps);
    for (int64_t i = 0; i < ps->n_ent; i++) v[i] = &ps->ent[i];
    qsort(v, (size_t)ps->n_ent, sizeof *v, cmp_range);
    uint64_t pos = 0;
    int rc = 0;
    for (int64_t i = 0; i < ps->n_ent && !rc; i++) {
        const bcml_st_entry *e = v[i];
        if (e->begin < pos)
            rc = FAIL(ps, "data ranges overlap: tensor %s [%llu, %llu) and tensor %s [%llu, %llu)",
                      quote(qa, sizeof qa, v[i - 1]->name), (unsigned long long)v[i - 1]->begin,
                      (unsigned long long)v[i - 1]->end, quote(qb, sizeof qb, e->name),
                      (unsigned long long)e->begin, (unsigned long long)e->end);
        else if (e->begin > pos)
            rc = FAIL(ps, "the data buffer has a hole: bytes [%llu, %llu) belong to no tensor",
                      (unsigned long long)pos, (unsigned long long)e->begin);
        pos = e->end;
    }
    free(v);
    if (!rc && pos != data_size)
        rc = FAIL(ps, "the data buffer has %llu trailing bytes after the last tensor's data",
                  (unsigned long long)(data_size - pos));
    return rc;
}

/* ---- entry point ------------------------------------------------------------------------------ */
void bcml_st_free(bcml_st_header *h) {
    if (!h) return;
    free(h->entries);
    free(h->meta_keys);
    free(h->meta_values);
    free(h->strings_);
    free(h->dims_);
    free(h);
}

bcml_status bcml_st_parse(const unsigned char *file, size_t len, bcml_st_header **out, bcml_err *err) {
    *out = NULL;
    if (len < 8)
        return bcml_fail(err, BCML_EVALUE, "not a safetensors file: %zu bytes, fewer than the 8 of the "
                         "header size", len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | file[i];
    if (n > BCML_ST_MAX_HEADER)
        return bcml_fail(err, BCML_EVALUE, "header size %llu exceeds the format's limit of %llu bytes",
                         (unsigned long long)n, (unsigned long long)BCML_ST_MAX_HEADER);
    if (n > len - 8)
        return bcml_fail(err, BCML_EVALUE, "header of %llu bytes is longer than the file (%zu bytes): "
                         "truncated file?", (unsigned long long)n, len);
    parser ps;
    memset(&ps, 0, sizeof ps);
    ps.s = ps.p = file + 8;
    ps.end = ps.s + n;
    ps.err = err;
    ps.out = malloc((size_t)n + 1);
    bcml_st_header *h = calloc(1, sizeof *h);
    if (!ps.out || !h) {
        ps.st = bcml_fail(err, BCML_ENOMEM, "out of memory while reading the safetensors header");
        goto fail;
    }
    uint64_t data_size = (uint64_t)(len - 8) - n;
    if (parse_root(&ps)) goto fail;
    if (check_unique(&ps, ps.mk, sizeof *ps.mk, ps.n_meta, "__metadata__ key")) goto fail;
    if (check_entries(&ps, data_size)) goto fail;
    h->entries = ps.ent;
    h->n_entries = ps.n_ent;
    h->has_metadata = ps.has_meta;
    h->meta_keys = ps.mk;
    h->meta_values = ps.mv;
    h->n_meta = ps.n_meta;
    h->data_start = 8 + n;
    h->data_size = data_size;
    h->strings_ = ps.out;
    h->dims_ = ps.dims;
    free(ps.dim_at);
    *out = h;
    return BCML_OK;
fail:
    free(ps.out);
    free(ps.ent);
    free(ps.dim_at);
    free(ps.dims);
    free(ps.mk);
    free(ps.mv);
    free(h);
    return ps.st ? ps.st : BCML_EVALUE;
}
