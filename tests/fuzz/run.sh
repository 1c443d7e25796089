#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS [NAME...]: builds every libFuzzer harness tests/fuzz/fuzz_*.c (or only
# the NAMEs given, e.g. "ops") with clang (-fsanitize=fuzzer,address,undefined) against the
# csrc/core sources its "// sources:" line names (all of csrc/core/*.c without one) and OpenBLAS,
# and runs each for SECONDS with -print_final_stats=1 on a temporary
# copy of its seed corpus tests/fuzz/corpus/<name>/ (the repository is never written).
#
# Fails (exit 1) if any harness finds a crash, undefined behaviour, a leak, an out-of-memory or a
# timeout, or executes fewer than FUZZ_MIN_EXECS inputs (default 10000). Crashing inputs are
# kept in the artifacts directory it prints (FUZZ_ARTIFACTS, default a new temporary directory);
# a harness re-runs one with: <binary> <crash file>.
#
# Environment: CC (default clang), FUZZ_BUILD (build directory, default a temporary one that is
# removed at the end), FUZZ_ARTIFACTS, FUZZ_MIN_EXECS, FUZZ_TIMEOUT (seconds one input may take,
# default 25), FUZZ_EXTRA (more libFuzzer flags, e.g. "-jobs=2").
set -euo pipefail
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS [NAME...]" >&2
  exit 2
fi
SECONDS_EACH=$1
shift
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CC=${CC:-clang}
MIN_EXECS=${FUZZ_MIN_EXECS:-10000}
TIMEOUT=${FUZZ_TIMEOUT:-25}

if [ -n "${FUZZ_BUILD:-}" ]; then
  BUILD=$FUZZ_BUILD
  mkdir -p "$BUILD"
else
  BUILD=$(mktemp -d -t bcml-fuzz-build.XXXXXX)
  trap 'rm -rf "$BUILD"' EXIT
fi
ARTIFACTS=${FUZZ_ARTIFACTS:-$(mktemp -d -t bcml-fuzz-artifacts.XXXXXX)}
mkdir -p "$ARTIFACTS"

BLAS_CFLAGS=$(pkg-config --cflags openblas 2>/dev/null || true)
BLAS_LIBS=$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
# Tensors are capped at 16 MiB in these builds (tensor.c), so that a shape that is merely too
# big fails at once instead of allocating gigabytes; -fno-sanitize-recover makes UBSan fatal.
FLAGS=(-g -O1 -std=c11 -fno-omit-frame-pointer -fsanitize=address,undefined
       -fno-sanitize-recover=all -DBCML_TENSOR_BYTES_MAX='((uint64_t)16<<20)'
       -I"$ROOT/csrc/core" $BLAS_CFLAGS)

echo "== building the core ($CC) into $BUILD"
for src in "$ROOT"/csrc/core/*.c; do
  "$CC" "${FLAGS[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$BUILD/core_$(basename "${src%.c}").o"
done

# The core objects a harness links: the .c files named on its "// sources:" line (names without
# a directory are in csrc/core; globs allowed), or all of csrc/core when it has no such line.
harness_objs() {
  local line words w f
  line=$(grep -m1 -E '^// sources:' "$1" || true)
  words=()
  if [ -n "$line" ]; then
    for w in ${line#// sources:}; do
      case $w in *.c) words+=("$w") ;; esac
    done
  fi
  [ ${#words[@]} -gt 0 ] || words=("csrc/core/*.c")
  for w in "${words[@]}"; do
    case $w in */*) ;; *) w="csrc/core/$w" ;; esac
    for f in "$ROOT"/$w; do
      [ -f "$f" ] || { echo "$1: no source $w" >&2; return 1; }
      echo "$BUILD/core_$(basename "${f%.c}").o"
    done
  done
}

if [ $# -gt 0 ]; then
  HARNESSES=()
  for name in "$@"; do HARNESSES+=("$ROOT/tests/fuzz/fuzz_$name.c"); done
else
  HARNESSES=("$ROOT"/tests/fuzz/fuzz_*.c)
fi

export ASAN_OPTIONS=${FUZZ_ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

status=0
SUMMARY=()
for h in "${HARNESSES[@]}"; do
  name=$(basename "${h%.c}")
  name=${name#fuzz_}
  bin="$BUILD/fuzz_$name"
  echo "== $name: building"
  mapfile -t objs < <(harness_objs "$h")
  "$CC" "${FLAGS[@]}" -fsanitize=fuzzer "$h" "${objs[@]}" $BLAS_LIBS -lm -lpthread -o "$bin"
  corpus="$BUILD/corpus_$name"
  rm -rf "$corpus"
  mkdir -p "$corpus"
  if [ -d "$ROOT/tests/fuzz/corpus/$name" ]; then
    cp -r "$ROOT/tests/fuzz/corpus/$name/." "$corpus/"
  fi
  log="$BUILD/fuzz_$name.log"
  echo "== $name: fuzzing for $SECONDS_EACH s ($(ls "$corpus" | wc -l) seed files)"
  rc=0
  # shellcheck disable=SC2086
  (cd "$BUILD" && "$bin" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
      -timeout="$TIMEOUT" -artifact_prefix="$ARTIFACTS/$name-" ${FUZZ_EXTRA:-} "$corpus") \
      >"$log" 2>&1 || rc=$?
  grep -E '^(Done [0-9]+ runs|stat::|SUMMARY|==[0-9]+==ERROR|ERROR: libFuzzer)' "$log" || true
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  execs=${execs:-0}
  if [ "$rc" -ne 0 ]; then
    echo "!! $name: libFuzzer exited with $rc; the end of its log:"
    tail -n 60 "$log"
    SUMMARY+=("$name: FAILED (exit $rc, $execs inputs; artifacts in $ARTIFACTS)")
    status=1
  elif [ "$execs" -lt "$MIN_EXECS" ]; then
    SUMMARY+=("$name: FAILED (only $execs inputs, fewer than $MIN_EXECS)")
    status=1
  else
    SUMMARY+=("$name: ok ($execs inputs in $SECONDS_EACH s)")
  fi
done

echo "== summary"
printf '  %s\n' "${SUMMARY[@]}"
if [ "$status" -eq 0 ] && [ -z "${FUZZ_ARTIFACTS:-}" ]; then
  rmdir "$ARTIFACTS" 2>/dev/null || true
fi
exit "$status"
