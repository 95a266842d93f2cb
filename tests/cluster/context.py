"""Write a docker build context for the repository to stdout, as a tar stream.

The context is the repository root as git sees it (tracked and untracked files that are not
ignored: no .git, .venv or build/), plus, under build/ca-certificates/, this machine's extra CA
certificates for the build only:
    build/ca-certificates/extra/*.crt    the local CA directory used by update-ca-certificates
    build/ca-certificates/ca-bundle.pem  the system bundle (which includes them) + the extras;
                                         empty when the machine has neither
A Dockerfile uses them in a build stage only, e.g. `pip --cert`, never in the shipped image.

    python3 context.py REPO | docker build -f images/NAME/Dockerfile -t privatemodel/NAME:dev -
"""

import io
import os
import subprocess
import sys
import tarfile

LOCAL_CA_DIR = "/usr/local/share/ca-certificates"
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CA_PREFIX = "build/ca-certificates"


def repo_files(repo: str) -> list[str]:
    try:
        out = subprocess.run(["git", "-C", repo, "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], check=True, capture_output=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: all but the usual junk
        skip = {".git", ".venv", "build", "__pycache__", ".pytest_cache", ".cache"}
        names = []
        for root, dirs, files in os.walk(repo):
            dirs[:] = [d for d in dirs if d not in skip]
            names += [os.path.relpath(os.path.join(root, f), repo) for f in files]
    return sorted(n for n in names if os.path.lexists(os.path.join(repo, n)))


def extra_certs() -> list[str]:
    found = []
    for root, _, files in os.walk(LOCAL_CA_DIR):
        found += [os.path.join(root, f) for f in files if f.endswith(".crt")]
    return sorted(found)


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def main(repo: str) -> None:
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for name in repo_files(repo):
            tar.add(os.path.join(repo, name), arcname=name, recursive=False)
        certs = extra_certs()
        bundle = b""
        if os.path.exists(SYSTEM_BUNDLE):
            bundle = open(SYSTEM_BUNDLE, "rb").read()
        info = tarfile.TarInfo(CA_PREFIX + "/extra")
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        for path in certs:
            data = open(path, "rb").read()
            add_bytes(tar, f"{CA_PREFIX}/extra/{os.path.basename(path)}", data)
            bundle += b"\n" + data
        add_bytes(tar, f"{CA_PREFIX}/ca-bundle.pem", bundle)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
