"""Compile the loopback library: `python -m privatemodel.runtime.mpc.loopback.build`."""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from privatemodel.runtime.mpc.loopback import LIBRARY_PATH

SOURCE_PATH = Path(__file__).with_name("loopback.c")


def build(library: Path = LIBRARY_PATH) -> None:
    if library.exists() and library.stat().st_mtime > SOURCE_PATH.stat().st_mtime:
        print(f"loopback library up to date: {library}")
        return
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise RuntimeError("gcc not found: install the Debian package gcc")
    with tempfile.TemporaryDirectory(dir=library.parent) as scratch:
        partial = Path(scratch) / library.name
        command = [compiler, "-O2", "-Wall", "-Werror", "-fPIC", "-shared", str(SOURCE_PATH), "-o", str(partial), "-ldl"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"compiling {SOURCE_PATH} failed:\n{' '.join(command)}\n{result.stderr}")
        os.replace(partial, library)
    print(f"built {library}")


if __name__ == "__main__":
    try:
        build()
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
