"""Writes the seed corpus of the libFuzzer harnesses (tests/fuzz/corpus/<name>/): valid calls that
reach deep code, which the fuzzer then mutates. Run it after changing an input format:

    python tests/fuzz/make_corpus.py

The encoders below follow the formats documented at the top of each fuzz_<name>.c and the tag
encodings of fuzz_common.h. Op ids are read from csrc/core/bcml.h, so new ops do not shift them.
"""
import re
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# ---- fuzz_common.h encodings -------------------------------------------------------------------
INT_SPECIAL = [-2**63, 2**63 - 1, -2**31, 2**31 - 1, 2**31, 2**32, -2**31 - 1, 2**62, -2**62,
               2**32 - 1, 2**40, 65535, 65536, 10**9, -10**9, 2**63 - 2, -2**63 + 1, 2**28,
               2**28 - 1, 2**53, 2**53 + 1, 255, 256, 1023, 1024, 4096, -100, -1000, 100000,
               2**62 + 1, (2**63 - 1) // 2]
FLOAT_SPECIAL = {"nan": 0, "inf": 1, "-inf": 2, 1e39: 3, -1e39: 4, 1e-5: 6, 1e-12: 7, 0.1: 11,
                 0.9: 12, 0.999: 13, 1e-8: 14, 1e30: 15, -1e30: 16, 0.5: 17, 100.0: 20,
                 -100.0: 21, 1e6: 22}


def fz_int(v):
    if -32 <= v <= 191:
        return bytes([v + 32])
    if v in INT_SPECIAL:
        return bytes([0xE0 + INT_SPECIAL.index(v)])
    return b"\xff" + struct.pack("<q", v)


def fz_double(v):
    if isinstance(v, str) or v in FLOAT_SPECIAL:
        return bytes([0xC0 + FLOAT_SPECIAL[v]])
    if -8 <= v <= 15.875 and (v * 8) == int(v * 8):
        return bytes([int(v * 8) + 64])
    return b"\xff" + struct.pack("<d", v)


def u8(*vs):
    return bytes(v & 0xFF for v in vs)


def u16(v):
    return struct.pack("<H", v)


def u64(v):
    return struct.pack("<Q", v)


# ---- fuzz_ops.c --------------------------------------------------------------------------------
def op_ids():
    text = (ROOT / "csrc/core/bcml.h").read_text()
    body = text[text.index("typedef enum {\n    BCML_OP_ADD"):]
    body = body[:body.index("} bcml_op;")]
    names = re.findall(r"^\s*BCML_OP_([A-Z0-9_]+)", body, re.M)
    return {n.lower(): i for i, n in enumerate(names) if n != "COUNT"}


OPS = op_ids()
F32, I64, BOOL = 0, 1, 2
# fill kinds of fuzz_ops.c: 0 zeros, 1 normal * (param+1)/16, 2 uniform [0,1), 3 ints [0,param),
# 4 ints [-param, param], 5 specials, 6 constant param/8 - 8, 7 raw bits
ZERO, NORMAL, UNIF, RANGE, SYM, SPECIAL, CONST, RAW = range(8)


def T(dtype, shape, kind=NORMAL, param=16, grad=False, view=0):
    """A new tensor (src byte 0x00)."""
    flags = (1 if grad else 0) | (2 | (view << 4) if view else 0)
    return u8(0, dtype, len(shape), *shape, kind, param, flags)


def R(k):
    """An earlier tensor of the pool (inputs and outputs of earlier steps, in creation order)."""
    return u8(0x80 + k)


NONE = u8(0xFF)


def step(op, inputs, i=(), f=()):
    return (u8(OPS[op], len(inputs)) + b"".join(inputs) + u8(len(i)) + b"".join(map(fz_int, i))
            + u8(len(f)) + b"".join(map(fz_double, f)))


def program(steps, grad=True, gen=False, threads2=False, twice=False, seed=1, backward=1,
            seed_grad=(SPECIAL, 0)):
    flags = (1 if grad else 0) | (2 if gen else 0) | (4 if threads2 else 0) | (8 if twice else 0)
    out = u8(flags) + u64(seed) + u8(len(steps) - 1) + b"".join(steps) + u8(backward)
    if backward in (2, 3):
        out += u8(*seed_grad)
    return out


def ops_corpus():
    x23 = T(F32, (2, 3), grad=True)
    c = {}
    for op in ("add", "sub", "mul", "div"):
        c[op] = program([step(op, [x23, T(F32, (3,), grad=True)])])
        c[op + "_bcast4d"] = program([step(op, [T(F32, (2, 1, 3, 1), grad=True), T(F32, (4, 1, 5), grad=True)])],
                                     backward=2)
    c["add_scalar"] = program([step("add_scalar", [x23], f=(2.0, 3.0))])
    c["rdiv_scalar"] = program([step("rdiv_scalar", [x23], f=(1.0,))])
    c["pow_scalar"] = program([step("pow_scalar", [T(F32, (4,), UNIF, grad=True)], f=(0.5,))])
    for op in ("exp", "log", "abs", "relu", "sigmoid", "tanh"):
        c[op] = program([step(op, [T(F32, (3, 4), UNIF if op == "log" else NORMAL, grad=True)])])
    c["clamp"] = program([step("clamp", [x23], i=(3,), f=(-0.5, 0.5))])
    for op in ("softmax", "log_softmax"):
        c[op] = program([step(op, [T(F32, (4, 5), grad=True)], i=(1,))], backward=2, seed_grad=(NORMAL, 16))
    for op in ("sum", "mean"):
        c[op + "_dim"] = program([step(op, [T(F32, (2, 3, 4), grad=True)], i=(1, 1, 0))])
        c[op + "_all"] = program([step(op, [T(F32, (2, 3, 4), grad=True)], i=(-1, 0, 1))])
    c["max_dim"] = program([step("max_dim", [T(F32, (3, 5), grad=True)], i=(1, 1))])
    c["argmax"] = program([step("argmax", [T(F32, (3, 5))], i=(1, 0, 0))], grad=False)
    c["matmul_2d"] = program([step("matmul", [T(F32, (3, 4), grad=True), T(F32, (4, 5), grad=True)])])
    c["matmul_batched"] = program([step("matmul", [T(F32, (2, 3, 4), grad=True), T(F32, (2, 4, 5), grad=True)])])
    c["matmul_vec"] = program([step("matmul", [T(F32, (4,), grad=True), T(F32, (4, 5), grad=True)])])
    c["linear"] = program([step("linear", [T(F32, (4, 6), grad=True), T(F32, (3, 6), grad=True),
                                           T(F32, (3,), grad=True)])])
    c["transpose"] = program([step("transpose", [T(F32, (2, 3, 4), grad=True)], i=(0, 2))])
    c["reshape"] = program([step("reshape", [T(F32, (2, 6), grad=True)], i=(3, 4, 0, 0, 2))])
    c["slice"] = program([step("slice", [T(F32, (6, 3), grad=True)], i=(0, 1, 5, 2))])
    c["index_select"] = program([step("index_select", [T(F32, (5, 3), grad=True), T(I64, (4,), RANGE, 5)], i=(0,))])
    c["mask_select"] = program([step("mask_select", [T(F32, (5, 3), grad=True), T(BOOL, (5,), NORMAL)])])
    c["cat"] = program([step("cat", [T(F32, (2, 3), grad=True), T(F32, (1, 3), grad=True),
                                     T(F32, (4, 3), grad=True)], i=(0,))])
    c["cast"] = program([step("cast", [T(F32, (2, 3), SYM, 5)], i=(1,)), step("cast", [R(1)], i=(2,))], grad=False)
    c["cmp"] = program([step("cmp", [T(F32, (2, 3), SYM, 2), T(F32, (3,), SYM, 2)], i=(2,))], grad=False)
    c["cmp_scalar_int"] = program([step("cmp_scalar", [T(I64, (2, 3), SYM, 5)], i=(4,), f=(0.5,))], grad=False)
    c["where"] = program([step("where", [T(BOOL, (3, 4)), T(F32, (3, 4), grad=True), T(F32, (4,), grad=True)])])
    c["dropout"] = program([step("dropout", [T(F32, (4, 5), grad=True)], i=(1,), f=(0.5,))], gen=True)
    c["dropout2d"] = program([step("dropout2d", [T(F32, (2, 3, 4, 4), grad=True)], i=(1,), f=(0.5,))], gen=True)
    c["batch_norm_train"] = program([step("batch_norm", [T(F32, (4, 3), grad=True), T(F32, (3,), grad=True),
                                                         T(F32, (3,), grad=True), T(F32, (3,), ZERO),
                                                         T(F32, (3,), CONST, 72), T(I64, (), ZERO)],
                                          i=(1,), f=(0.1, 1e-5))])
    c["batch_norm_eval_4d"] = program([step("batch_norm", [T(F32, (2, 3, 2, 2), grad=True), NONE, NONE,
                                                           T(F32, (3,), NORMAL), T(F32, (3,), UNIF)],
                                            i=(0,), f=(0.1, 1e-5))])
    c["nll_loss"] = program([step("log_softmax", [T(F32, (4, 5), grad=True)], i=(1,)),
                             step("nll_loss", [R(1), T(I64, (4,), RANGE, 5)], i=(1, -100))])
    c["cross_entropy_weight"] = program([step("cross_entropy", [T(F32, (4, 5), grad=True), T(I64, (4,), RANGE, 5),
                                                                T(F32, (5,), UNIF)], i=(1, 2))])
    c["bce"] = program([step("bce", [T(F32, (6,), UNIF, grad=True), T(F32, (6,), RANGE, 2)], i=(1,))])
    c["kl_div"] = program([step("kl_div", [T(F32, (4, 5), grad=True), T(F32, (4, 5), UNIF)], i=(3, 0))])
    c["conv2d"] = program([step("conv2d", [T(F32, (2, 3, 6, 6), grad=True), T(F32, (4, 3, 3, 3), grad=True),
                                           T(F32, (4,), grad=True)], i=(1, 1, 1, 1, 1, 1, 1))])
    c["conv2d_groups_stride"] = program([step("conv2d", [T(F32, (1, 4, 7, 7), grad=True), T(F32, (4, 2, 3, 3), grad=True)],
                                              i=(2, 2, 0, 1, 1, 2, 2))])
    c["max_pool2d"] = program([step("max_pool2d", [T(F32, (2, 3, 6, 6), grad=True)], i=(2, 2, 2, 2, 0, 0, 0, 1))])
    c["max_pool2d_ceil_pad"] = program([step("max_pool2d", [T(F32, (3, 7, 7), grad=True)], i=(3, 3, 2, 2, 1, 1, 1, 1))])
    c["avg_pool2d"] = program([step("avg_pool2d", [T(F32, (2, 3, 6, 6), grad=True)], i=(3, 3, 2, 2, 1, 1, 1, 1))])
    c["adaptive_avg_pool2d"] = program([step("adaptive_avg_pool2d", [T(F32, (2, 3, 7, 5), grad=True)], i=(3, 2))])
    c["compat_loss_nll_strict"] = program([step("log_softmax", [T(F32, (4, 5), grad=True)], i=(1,)),
                                           step("compat_loss", [R(1), T(I64, (4,), RANGE, 5), T(F32, (4, 5))],
                                                i=(0, 1, 1, 0), f=(0.5, 0.5))])
    c["compat_loss_bce"] = program([step("compat_loss", [T(F32, (6,), UNIF, grad=True), T(F32, (6,), RANGE, 2),
                                                         T(F32, (6,), UNIF)], i=(2, 0, 2, 0), f=(1.0, 0.5))])
    c["chain_mlp"] = program([
        step("linear", [T(F32, (8, 6)), T(F32, (5, 6), grad=True), T(F32, (5,), grad=True)]),
        step("relu", [R(3)]),
        step("log_softmax", [R(4)], i=(1,)),
        step("nll_loss", [R(5), T(I64, (8,), RANGE, 5)], i=(1, -100))], threads2=True, twice=True)
    c["chain_conv_views"] = program([
        step("conv2d", [T(F32, (2, 1, 5, 5), view=3), T(F32, (2, 1, 3, 3), grad=True)], i=(1, 1, 0, 0, 1, 1, 1)),
        step("max_pool2d", [R(2)], i=(2, 2, 1, 1, 0, 0, 0, 1)),
        step("reshape", [R(3)], i=(2, 8, 0, 0, 2)),
        step("cross_entropy", [R(4), T(I64, (2,), RANGE, 8)], i=(2, -100))], backward=1)
    # extreme arguments, refused without overflow (a mutation away from more of the same)
    x4 = T(F32, (2, 3, 6, 6), grad=True)
    c["x_conv2d_huge_groups"] = program([step("conv2d", [T(F32, (2, 4, 6, 6)), T(F32, (4, 4, 3, 3), grad=True)],
                                              i=(1, 1, 1, 1, 1, 1, 2**62))])
    c["x_max_pool2d_huge_kernel"] = program([step("max_pool2d", [x4], i=(2**31, 2**31, 1, 1, 2**30, 2**30, 0, 1))])
    c["x_avg_pool2d_huge_stride"] = program([step("avg_pool2d", [x4], i=(2, 2, 2**63 - 1, 2**62, 0, 0, 1, 0))])
    c["x_adaptive_huge_out"] = program([step("adaptive_avg_pool2d", [x4], i=(2**30, 2**62))])
    c["x_reshape_huge"] = program([step("reshape", [T(F32, (2, 6), grad=True)], i=(2**62, 2**62, -1, 0, 3))])
    c["x_cat_dim_min"] = program([step("cat", [T(F32, (2, 3), grad=True), T(F32, (2, 3))], i=(-2**63,))])
    c["x_transpose_dims"] = program([step("transpose", [T(F32, (2, 3), grad=True)], i=(2**63 - 1, -2**63))])
    c["x_sum_dim_min"] = program([step("sum", [T(F32, (2, 3), grad=True)], i=(-2**63, 1, 0))])
    c["x_index_select_special_idx"] = program([step("index_select", [T(F32, (5, 3), grad=True), T(I64, (4,), SPECIAL)],
                                                    i=(0,))])
    c["x_nll_ignore_min"] = program([step("nll_loss", [T(F32, (4, 5), grad=True), T(I64, (4,), SPECIAL)],
                                          i=(1, -2**63))])
    c["x_dropout_p_nan"] = program([step("dropout", [T(F32, (4, 5), grad=True)], i=(1,), f=("nan",))], gen=True)
    c["x_batch_norm_eps_inf"] = program([step("batch_norm", [T(F32, (4, 3), grad=True), NONE, NONE, T(F32, (3,)),
                                                             T(F32, (3,), UNIF)], i=(1,), f=(1e39, "inf"))])
    return c


# ---- fuzz_tensor.c -------------------------------------------------------------------------------
def tensor_corpus():
    def shape(*dims):
        return u8(len(dims)) + b"".join(fz_int(d) for d in dims)
    c = {}
    c["new_views"] = (u8(1) + shape(2, 3, 4) + u8(F32, 1) + u8(1) + shape(5, 5) + u8(I64, 0)
                      + u8(3, 0) + shape(3, 4) + u8(2, 4) + u8(3, 1) + shape(2, 5) + u8(0) + fz_int(40)
                      + u8(2, 0, BOOL, 1) + u8(5, 0, 1) + u8(6, 0) + fz_int(-2) + u8(8))
    c["sizes"] = (u8(0) + shape(2**31, 2**31, 4) + u8(F32) + u8(0) + shape(0, 2**62, 2**62) + u8(I64)
                  + u8(0) + shape(-1) + u8(F32) + u8(0) + shape(1, 1, 1, 1, 1) + u8(F32)
                  + u8(1) + shape(4096, 1024) + u8(F32, 0) + u8(0) + shape(3) + u8(7))
    c["wrap"] = (u8(4) + shape(3, 4) + u8(F32) + u16(48) + u8(4) + shape(6) + u8(I64) + u16(48)
                 + u8(3, 0) + shape(2, 2) + u8(1) + u64(2**64 - 8) + u8(5, 0, 1))
    return c


# ---- fuzz_scores.c --------------------------------------------------------------------------------
def scores_corpus():
    def inp(flags, num_classes, n, seed, kinds, overrides=()):
        sizes = [2**19 + 3, 65536 + 7, 65536, 65537, 4095, 1, 64 * 3 + 1, 1023]
        if n in sizes:
            size = 0xF8 + sizes.index(n)
            if size == 0xF8:
                flags |= 16
        else:
            assert n < 4 * 0xF8, n
            size, flags = n // 4, flags | (n % 4) << 6
        out = u8(flags) + (fz_int(num_classes) if flags & 1 else b"") + u8(size) + u64(seed)
        for k, p in kinds:
            out += u8(k, p)
        out += u8(len(overrides))
        for a, idx, v in overrides:
            out += u8(a) + struct.pack("<I", idx) + fz_int(v)
        return out
    c = {}
    c["given_small"] = inp(1 | (1 << 1), 10, 901, 7, [(1, 40), (1, 80), (0, 9)])
    c["discover"] = inp(0, -1, 600, 8, [(1, 30), (0, 12), (0, 12)])
    c["bad_labels"] = inp(1, 5, 500, 9, [(3, 4), (0, 4), (0, 4)], [(2, 100, -3), (0, 50, 2**62)])
    c["threads_long"] = inp(1 | (3 << 1), 6, 2**19 + 3, 10, [(1, 50), (1, 200), (0, 5)], [(1, 600000, 9)])
    c["outliers"] = inp(0, -1, 700, 11, [(2, 7), (0, 7), (2, 7)])
    c["chunk_edge"] = inp(0, -1, 65537, 13, [(1, 20), (1, 20), (0, 20)], [(0, 65536, 3), (2, 65535, 40)])
    c["huge_labels"] = inp(2 << 1, -1, 300, 12, [(0, 9), (0, 9), (0, 9)], [(2, 7, 2**28 - 1), (0, 3, 2**28)])
    return c


# ---- fuzz_compat_loss.c -------------------------------------------------------------------------------
def compat_corpus():
    def inp(kind, mode, red, dis, lam, pivot, B, C, faults, k2, k1, kt, gflags, seed=3):
        return (u8(kind + 1, mode, red, dis) + fz_double(lam) + fz_double(pivot) + u8(B, C, faults)
                + u64(seed) + u8(k2, 8, k1, 8, kt, gflags))
    c = {}
    for kind, name in enumerate(("nll", "ce", "bce", "kl")):
        k = 2 if kind == 2 else 1
        for mode in (0, 1):
            c["%s_%s" % (name, ("new_error", "strict")[mode])] = inp(kind, mode, 1, 0, 0.5, 0.5, 8, 4, 0, k, k, 0, 1)
    c["ce_none_specials"] = inp(1, 1, 0, 0, 2.0, 0.5, 6, 3, 0, 4, 4, 1, 1 | 4)
    c["bce_edges_sum"] = inp(2, 1, 2, 1, 1.0, 0.25, 9, 0, 0, 3, 3, 0, 1)
    c["kl_bad_shapes"] = inp(3, 0, 1, 0, 0.5, 0.5, 5, 3, 1 | 2, 1, 1, 0, 1)
    return c


def main():
    for name, files in (("ops", ops_corpus()), ("tensor", tensor_corpus()), ("scores", scores_corpus()),
                        ("compat_loss", compat_corpus())):
        d = HERE / "corpus" / name
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            old.unlink()
        for fname, data in files.items():
            (d / fname).write_bytes(data)
        print("%s: %d files" % (d.relative_to(ROOT), len(files)))


if __name__ == "__main__":
    main()
