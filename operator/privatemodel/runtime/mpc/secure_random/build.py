"""Compile the secure random op against the installed TensorFlow.

    python -m privatemodel.runtime.mpc.secure_random.build

Skips the build when the library is newer than its source and was built for the
installed TensorFlow version (the version is embedded in the library itself).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from privatemodel.runtime.mpc.secure_random import LIBRARY_PATH

SOURCE_PATH = Path(__file__).with_name("secure_random.cc")
VERSION_MARKER = b"privatemodel-secure-random-built-for-tensorflow="


class BuildError(RuntimeError):
    pass


def is_up_to_date(library: Path, source: Path, tensorflow_version: str) -> bool:
    if not library.exists() or library.stat().st_mtime <= source.stat().st_mtime:
        return False
    # The marker ends with a NUL byte, so "2.12.1" does not match "2.12.10".
    return VERSION_MARKER + tensorflow_version.encode() + b"\0" in library.read_bytes()


def find_compiler() -> str:
    compiler = shutil.which("g++")
    if compiler is None:
        raise BuildError("g++ not found: install the Debian package g++ (apt-get install -y g++)")
    return compiler


def find_static_libsodium(compiler: str) -> str:
    """Return the path of libsodium.a, after checking sodium.h is there too."""
    header_check = subprocess.run(
        [compiler, "-E", "-x", "c++", "-", "-o", os.devnull],
        input="#include <sodium.h>\n",
        capture_output=True,
        text=True,
    )
    archive = subprocess.run(
        [compiler, "-print-file-name=libsodium.a"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # g++ echoes the bare name back when it cannot find the file.
    if header_check.returncode != 0 or not os.path.isabs(archive):
        raise BuildError(
            "libsodium headers or static library (sodium.h, libsodium.a) not found: "
            "install the Debian package libsodium-dev (apt-get install -y libsodium-dev)"
        )
    return archive


def compile_library(compiler: str, libsodium: str, output: Path) -> None:
    import tensorflow as tf

    command = [
        compiler,
        *tf.sysconfig.get_compile_flags(),
        # After TF's own --std=c++17, so this one wins.
        "-std=gnu++17",
        "-O2",
        "-fPIC",
        "-shared",
        f'-DPRIVATEMODEL_TENSORFLOW_VERSION="{tf.__version__}"',
        str(SOURCE_PATH),
        "-o",
        str(output),
        # Linked in statically and kept private, so the library needs no libsodium at run time.
        libsodium,
        "-Wl,--exclude-libs,ALL",
        *tf.sysconfig.get_link_flags(),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"compiling {SOURCE_PATH} failed:\n{' '.join(command)}\n{result.stderr}")


def build(library: Path = LIBRARY_PATH) -> None:
    import tensorflow as tf

    if is_up_to_date(library, SOURCE_PATH, tf.__version__):
        print(f"secure random op up to date: {library}")
        return
    compiler = find_compiler()
    libsodium = find_static_libsodium(compiler)
    print(f"building secure random op for TensorFlow {tf.__version__} ...", flush=True)
    started = time.monotonic()
    # Built beside the target and renamed into place, so no process ever loads a half-written file.
    with tempfile.TemporaryDirectory(dir=library.parent) as scratch:
        partial = Path(scratch) / library.name
        compile_library(compiler, libsodium, partial)
        os.replace(partial, library)
    print(f"built {library} in {time.monotonic() - started:.1f} s")


def main() -> int:
    try:
        build()
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
