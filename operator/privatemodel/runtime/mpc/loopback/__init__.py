"""Keep this process's TensorFlow server on loopback (see loopback.c).

The `privatemodel` command runs every party that starts a TensorFlow server with this library
preloaded (`ensure_preloaded` re-executes it), and `check_active` refuses to go on without it.
"""
import ctypes
import os
import sys
from pathlib import Path

LIBRARY_PATH = Path(__file__).with_name("_loopback.so")
PUBLIC_PORTS_VARIABLE = "PRIVATEMODEL_PUBLIC_PORTS"
_HOW_TO_FIX = "build it with `make install` (or `python -m privatemodel.runtime.mpc.loopback.build`)"


class LoopbackError(RuntimeError):
    pass


def is_active() -> bool:
    try:
        ctypes.c_int.in_dll(ctypes.CDLL(None), "privatemodel_loopback_active")
    except ValueError:
        return False
    return True


def ensure_preloaded(public_ports=(), module="privatemodel") -> None:
    """Re-execute this command (`python -m module ARGS`) with the library preloaded, unless it already is."""
    if is_active():
        return
    if not LIBRARY_PATH.exists():
        raise LoopbackError(f"loopback library {LIBRARY_PATH} is missing: {_HOW_TO_FIX}")
    environment = dict(os.environ)
    environment["LD_PRELOAD"] = " ".join(filter(None, [str(LIBRARY_PATH), environment.get("LD_PRELOAD")]))
    environment[PUBLIC_PORTS_VARIABLE] = ",".join(str(port) for port in public_ports)
    os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], environment)


def check_active() -> None:
    """Called before a TensorFlow server starts: without the library it would listen on every interface."""
    if not is_active():
        raise LoopbackError(
            f"this process would expose TensorFlow's server on every interface: run it through the "
            f"`privatemodel` command, which preloads {LIBRARY_PATH.name}"
        )
