"""Build of bcml._core: one extension from csrc/, linked to OpenBLAS.

BLAS choice (environment variable BCML_BLAS):
  auto (default)  a system OpenBLAS found through pkg-config, else scipy-openblas32 from PyPI
  system          pkg-config's openblas (fails if absent)
  scipy           scipy-openblas32 (symbols prefixed scipy_); then it is also a runtime dependency
Other knobs: BCML_SANITIZE=1 adds -fsanitize=address,undefined; BCML_NATIVE=1 adds -march=native.
"""
import glob
import os
import shlex
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out.stdout)


def blas_config():
    choice = os.environ.get("BCML_BLAS", "auto").lower()
    if choice not in ("auto", "system", "scipy"):
        raise SystemExit("BCML_BLAS must be auto, system or scipy, not %r" % choice)
    if choice in ("auto", "system"):
        cflags, libs = pkg_config("--cflags", "openblas"), pkg_config("--libs", "openblas")
        if cflags is not None and libs is not None:
            inc = [f[2:] for f in cflags if f.startswith("-I")]
            libdirs = [f[2:] for f in libs if f.startswith("-L")]
            names = [f[2:] for f in libs if f.startswith("-l")]
            return dict(kind="system", include_dirs=inc, library_dirs=libdirs, libraries=names,
                        runtime_library_dirs=libdirs, define_macros=[], requires=[])
        if choice == "system":
            raise SystemExit("BCML_BLAS=system but pkg-config finds no openblas "
                             "(install libopenblas-dev)")
    try:
        import scipy_openblas32 as sob
    except ImportError:
        raise SystemExit("bcml needs OpenBLAS: install libopenblas-dev (with pkg-config) or "
                         "the scipy-openblas32 package")
    return dict(kind="scipy", include_dirs=[sob.get_include_dir()],
                library_dirs=[sob.get_lib_dir()], libraries=[sob.get_library()],
                runtime_library_dirs=["$ORIGIN/../scipy_openblas32/lib"],
                define_macros=[("BCML_BLAS_SCIPY", "1")], requires=["scipy-openblas32"])


def numpy_include():
    import numpy
    return numpy.get_include()


blas = blas_config()
with open(os.path.join(HERE, "bcml", "_build_info.py"), "w") as f:
    f.write('"""Written by setup.py: how bcml._core was built."""\nBLAS = %r\n' % blas["kind"])

extra_compile = ["-std=c11", "-O3", "-Wall", "-Wextra", "-Wno-unused-parameter",
                 "-Wno-missing-field-initializers", "-Wno-cast-function-type"]
extra_link = []
if os.environ.get("BCML_NATIVE") == "1":
    extra_compile.append("-march=native")
if os.environ.get("BCML_SANITIZE") == "1":
    # BCML_POISON_FRESH: gradient buffers that an op's backward writes from scratch start as NaN,
    # so an element it fails to write shows in the tests' results (autograd.c; the tests also
    # switch it on in the normal build, conftest.py)
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1", "-DBCML_POISON_FRESH"]
    extra_compile = [f for f in extra_compile if f != "-O3"] + san
    extra_link += ["-fsanitize=address,undefined"]

sources = sorted(glob.glob("csrc/core/*.c")) + sorted(glob.glob("csrc/python/*.c"))
ext = Extension(
    "bcml._core",
    sources=sources,
    include_dirs=[numpy_include(), "csrc/core"] + blas["include_dirs"],
    library_dirs=blas["library_dirs"],
    libraries=blas["libraries"] + ["m", "pthread"],
    runtime_library_dirs=blas["runtime_library_dirs"],
    define_macros=blas["define_macros"] + [("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION")],
    extra_compile_args=extra_compile,
    extra_link_args=extra_link,
    depends=sorted(glob.glob("csrc/*/*.h")),
)



class BuildExt(build_ext):
    """Always recompiles: the object files depend on the BLAS choice and the sanitizer flags,
    which setuptools' timestamp check does not see."""

    def finalize_options(self):
        super().finalize_options()
        self.force = True


setup(ext_modules=[ext], install_requires=["numpy>=1.24"] + blas["requires"],
      cmdclass={"build_ext": BuildExt})
