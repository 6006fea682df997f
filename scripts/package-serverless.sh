#!/usr/bin/env bash
# Package Corral for AWS Lambda, offline apart from PyPI: no Docker, no AWS calls.
#
#   scripts/package-serverless.sh [OUTDIR] [STAGE] [REGION]
#   scripts/package-serverless.sh --install-tools    # npm ci (osls); `make deps` runs it
#   scripts/package-serverless.sh --artifact         # build build/lambda/corral.zip only
#   scripts/package-serverless.sh --requirements     # print what goes into it
#
# 1. Dependencies: the few the Lambda functions import (falcon, pydantic, redis,
#    rq, apig-wsgi; boto3 is in the Lambda runtime), at pyproject's versions,
#    installed by pip as wheels for the Lambda platform
#    (manylinux2014 x86_64, CPython 3.11) into build/lambda/deps. Rebuilt only
#    when that list changes.
# 2. The artifact build/lambda/corral.zip: handlers/, services/, infra/ (less the
#    host drivers, infra/drivers/: workers use them, next to the hosts), shared/
#    and those dependencies at the zip root, with their bytecode (unchecked-hash .pyc, as
#    /var/task is read-only), and fixed timestamps so an unchanged tree gives
#    the same zip (and a deploy skips the upload).
#    Why not a Lambda layer: for a layer, `osls package` asks CloudFormation for
#    the deployed layer's hash, which needs AWS; a prebuilt artifact does not.
# 3. `osls package` compiles serverless.yml into OUTDIR (default .serverless);
#    `npx osls deploy --package OUTDIR --stage S --region R` deploys exactly that.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"
OSLS="$ROOT/node_modules/.bin/osls"
BUILD_DIR="$ROOT/build/lambda"
DEPS_DIR="$BUILD_DIR/deps"
ARTIFACT="$BUILD_DIR/corral.zip"
LAMBDA_PYTHON_VERSION=3.11
LAMBDA_PLATFORM=manylinux2014_x86_64

install_tools() {
  # package-lock.json pins osls and everything below it; redone only when it changes.
  local stamp="node_modules/.corral-lock-sha256"
  local want
  want="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [ -x "$OSLS" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  if ! command -v npm >/dev/null; then
    echo "npm is not installed: osls needs Node.js ^20.19 or >=22.13 with npm" >&2
    exit 1
  fi
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
}

lambda_requirements() {
  "$PYTHON" - <<'PY'
import re
import tomllib

# What the Lambda functions import, beyond boto3 (the Lambda runtime has it).
# An allow-list, so that host-side libraries (docker, paramiko...) never ride
# along; tests/deploy imports the packaged handlers from the artifact alone, so
# a missing name here fails there. Versions come from pyproject when it lists them.
LAMBDA = {"falcon": "falcon", "pydantic": "pydantic", "redis": "redis", "hiredis": "hiredis",
          "rq": "rq", "apig-wsgi": "apig-wsgi>=2.20"}


def name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower().replace("_", "-")


with open("pyproject.toml", "rb") as fh:
    declared = {name(r): r for r in tomllib.load(fh)["project"]["dependencies"]}
print("\n".join(sorted(declared.get(n, default) for n, default in LAMBDA.items())))
PY
}

build_deps() {
  local reqs stamp
  reqs="$(lambda_requirements)"
  stamp="$(printf '%s\n%s %s\n' "$reqs" "$LAMBDA_PLATFORM" "$LAMBDA_PYTHON_VERSION" | sha256sum | cut -c1-16)"
  if [ -f "$DEPS_DIR/.stamp" ] && [ "$(cat "$DEPS_DIR/.stamp")" = "$stamp" ]; then
    return 0
  fi
  echo "installing the Lambda dependencies into $DEPS_DIR:" $reqs >&2
  rm -rf "$DEPS_DIR"
  mkdir -p "$DEPS_DIR"
  printf '%s\n' "$reqs" > "$BUILD_DIR/requirements.txt"
  # Our copies shadow the runtime's, so keep what the runtime's botocore needs.
  printf 'python-dateutil<3\nurllib3<3\n' > "$BUILD_DIR/constraints.txt"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile \
    --target "$DEPS_DIR" \
    --platform "$LAMBDA_PLATFORM" --implementation cp \
    --python-version "$LAMBDA_PYTHON_VERSION" --only-binary=:all: \
    -r "$BUILD_DIR/requirements.txt" -c "$BUILD_DIR/constraints.txt"
  # Entry-point scripts (rq, croniter...) are of no use in a Lambda.
  rm -rf "$DEPS_DIR/bin"
  echo "$stamp" > "$DEPS_DIR/.stamp"
}

build_artifact() {
  build_deps
  "$PYTHON" - "$ARTIFACT" "$DEPS_DIR" "$LAMBDA_PYTHON_VERSION" <<'PY'
import importlib.util
import os
import py_compile
import sys
import tempfile
import zipfile
from pathlib import Path

artifact, deps, lambda_python = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
SOURCES = ("handlers", "services", "infra", "shared")
# The host drivers run in workers, next to the hosts, never in a Lambda; nor does the
# ASGI app gunicorn serves (handlers/asgi.py, handlers/waits.py, with a2wsgi and
# redis.asyncio). workers/, devstack/ (the local stack), tests/, bench/ and
# scripts/ are not in SOURCES.
# Nor are metrics (infra/metrics.py, prometheus_client): gunicorn's app serves them.
LEFT_OUT = {Path("infra/drivers"), Path("handlers/asgi.py"), Path("handlers/waits.py"),
            Path("infra/metrics.py")}
FIXED_TIME = (2020, 1, 1, 0, 0, 0)
# /var/task is read-only, so without bytecode in the zip every cold start
# compiles every module again (about a second here). Unchecked-hash .pyc files
# are used as they are, whatever the files' times.
with_bytecode = f"{sys.version_info[0]}.{sys.version_info[1]}" == lambda_python
if not with_bytecode:
    print(f"python {sys.version.split()[0]} is not the Lambda's {lambda_python}: "
          "the artifact gets no bytecode (slower cold starts)", file=sys.stderr)


def files(root: Path, base: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d != "__pycache__" and Path(dirpath, d) not in LEFT_OUT
        )
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path in LEFT_OUT:
                continue
            if path.suffix not in {".pyc", ".pyo"} and name != ".stamp":
                yield path, path.relative_to(base).as_posix()


def bytecode(path: Path, arcname: str, scratch: Path):
    try:
        py_compile.compile(
            str(path), cfile=str(scratch), dfile=arcname, doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    except py_compile.PyCompileError:
        return None  # not valid for this Python (a template, a backport): left as source
    return importlib.util.cache_from_source(arcname), scratch.read_bytes()


def add(zf: zipfile.ZipFile, arcname: str, data: bytes) -> None:
    info = zipfile.ZipInfo(arcname, FIXED_TIME)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


entries = [e for source in SOURCES for e in files(Path(source), Path("."))]
entries += files(deps, deps)
# GET /docs's script and stylesheet (swagger-ui-dist, pinned in package-lock.json),
# where handlers/reference.py looks first.
for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
    entries.append((Path("node_modules/swagger-ui-dist") / name,
                    f"handlers/static/swagger-ui/{name}"))
tmp = artifact.with_suffix(".tmp")
compiled = 0
with zipfile.ZipFile(tmp, "w") as zf, tempfile.TemporaryDirectory() as scratch_dir:
    scratch = Path(scratch_dir) / "module.pyc"
    for path, arcname in sorted(entries, key=lambda e: e[1]):
        add(zf, arcname, path.read_bytes())
        if with_bytecode and path.suffix == ".py":
            pyc = bytecode(path, arcname, scratch)
            if pyc is not None:
                add(zf, *pyc)
                compiled += 1
tmp.replace(artifact)
print(f"{artifact}: {len(entries)} files, {compiled} compiled, "
      f"{artifact.stat().st_size // 1024} KiB", file=sys.stderr)
PY
}

package() {
  local outdir="${1:-.serverless}" stage="${2:-ci}" region="${3:-us-east-1}"
  if [ ! -x "$OSLS" ]; then
    echo "osls is not installed: run '$0 --install-tools' (npm ci)" >&2
    exit 1
  fi
  build_artifact
  # Offline and quiet: dummy credentials (package makes no AWS call), no
  # telemetry, no update or notification checks.
  AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-AKIAIOSFODNN7EXAMPLE}" \
  AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY}" \
  SLS_TELEMETRY_DISABLED=1 SLS_TRACKING_DISABLED=1 SLS_NOTIFICATIONS_MODE=off \
  SLS_INTERACTIVE_SETUP_DISABLE=1 AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE=1 \
  NODE_NO_WARNINGS=1 \
    "$OSLS" package --stage "$stage" --region "$region" --package "$outdir"
}

case "${1:-}" in
  --install-tools) install_tools ;;
  --artifact) build_artifact ;;
  --requirements) lambda_requirements ;;
  *) package "$@" ;;
esac
