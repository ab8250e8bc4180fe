"""Installs the nvrar package and, where it finds one, bundles a built libnvrar_c.so (with the libnvrar_gpu.so beside
it) into nvrar/lib/, so that the installed package needs no NVRAR_LIBRARY. Looked for, first match wins:
NVRAR_LIBRARY (the file), then ../build/gpu and ../build/release (scripts/gpu-check.sh's and the release preset's
build folders) relative to this file. None found: the package installs without it and searches at run time
(nvrar/_library.py)."""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def built_library():
    explicit = os.environ.get("NVRAR_LIBRARY", "")
    if explicit:
        if not os.path.isfile(explicit):
            raise SystemExit(f"nvrar setup: NVRAR_LIBRARY={explicit} is not a file")
        return explicit
    for build in ("build/gpu", "build/release"):
        path = os.path.join(HERE, "..", build, "libnvrar_c.so")
        if os.path.isfile(path):
            return os.path.normpath(path)
    return None


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "nvrar", "lib")
        shutil.rmtree(target, ignore_errors=True)  # never a copy left from an earlier build
        library = built_library()
        if library is None:
            print("nvrar setup: no built libnvrar_c.so found (NVRAR_LIBRARY, ../build/gpu, ../build/release); "
                  "the package will look for it at run time")
            return
        os.makedirs(target, exist_ok=True)
        for name in ("libnvrar_c.so", "libnvrar_gpu.so"):
            source = os.path.join(os.path.dirname(library), name)
            if os.path.isfile(source):
                shutil.copy2(source, target)
                print(f"nvrar setup: bundled {source}")


setup(cmdclass={"build_py": BuildWithLibrary})
