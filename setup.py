"""Builds the compiled Gibbs kernel (rbmdiff/_native/bernoulli.c) when the package is installed.

The extension is optional: without a working C compiler the package installs without it and
rbmdiff samples with its torch kernel.  RBMDIFF_BUILD_NATIVE=0 skips the build.  The library
is a plain shared object that rbmdiff.native loads with ctypes; its AVX2+FMA path is chosen
at run time by the CPU's features, so the build needs no -mavx2.  OpenMP is used where the
compiler has it (the sweep shares chains among threads), else the sweep runs on one thread.
"""

from __future__ import annotations

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

FLAGS = ["-O3", "-std=gnu11", "-ffp-contract=off"]  # no fusing the C does not ask for


class OptionalOpenMPBuild(build_ext):
    """Compile with -fopenmp; where the compiler refuses it, compile again without."""

    def build_extension(self, ext: Extension) -> None:
        base_compile, base_link = list(ext.extra_compile_args), list(ext.extra_link_args)
        ext.extra_compile_args = [*base_compile, "-fopenmp"]
        ext.extra_link_args = [*base_link, "-fopenmp"]
        try:
            super().build_extension(ext)
        except Exception as exc:  # CompileError / LinkError: retry without OpenMP
            print(f"rbmdiff: building the Gibbs kernel with OpenMP failed ({exc}); "
                  "building it without")
            ext.extra_compile_args, ext.extra_link_args = base_compile, base_link
            super().build_extension(ext)

    def get_export_symbols(self, ext: Extension) -> list[str]:
        return []  # a ctypes library, not a Python module: no PyInit_ symbol


def extensions() -> list[Extension]:
    if os.environ.get("RBMDIFF_BUILD_NATIVE", "1").strip() == "0":
        return []
    return [Extension("rbmdiff._native._bernoulli", ["rbmdiff/_native/bernoulli.c"],
                      extra_compile_args=FLAGS, libraries=["m"], optional=True)]


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalOpenMPBuild})
