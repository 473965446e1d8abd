#!/usr/bin/env bash
# Create .venv and install classiformer with the local CPU build of PyTorch.
# Each step says what it installs and how long it took: the whole run takes minutes on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# A progress bar on a terminal; plain "Collecting ..." lines in logs (CI), where a bar is noise.
if [ -t 1 ]; then BAR=on; else BAR=off; fi

# Machines whose pip config lists file:// indexes that lack a package print one "Location ... is
# ignored" warning per package looked up; only those lines are dropped, everything else (errors
# included) still reaches stderr.
quiet_ignored_locations() {
    awk '/^WARNING: Location .file:.* is ignored/ { n++; next } { print; fflush() }
         END { if (n) printf "(%d pip warnings about file:// index locations that lack a package not shown)\n", n }'
}

step() {  # step "what" command...: one line before, one line with the time it took after
    local what=$1 start=$SECONDS
    shift
    echo "==> $what"
    "$@" 2> >(quiet_ignored_locations >&2)
    echo "    done in $((SECONDS - start)) s"
}

pip_install() {
    .venv/bin/python -m pip install --disable-pip-version-check --progress-bar "$BAR" "$@"
}

if [ -x .venv/bin/python ]; then
    echo "==> using the existing .venv ($(.venv/bin/python --version))"
else
    step "creating .venv with $("$PY" --version)" "$PY" -m venv .venv
fi
# Pin torch first: an unpinned torch pulls a multi-GB CUDA build.
step "installing torch==2.13.0 (CPU build)" pip_install torch==2.13.0
step "installing classiformer (editable) with extras [${EXTRAS:-dev}]" pip_install -e ".[${EXTRAS:-dev}]"
# Optimum's ONNX Runtime models (optimum-onnx 0.1) need transformers < 4.58, older than the one
# classiformer runs on, so they live in a folder of their own beside the venv; the export tests
# and bench/inference.py run Optimum in a subprocess with that folder first on PYTHONPATH.
if [[ ",${EXTRAS:-dev}," == *",dev,"* || ",${EXTRAS:-dev}," == *",bench,"* ]]; then
    step "installing Optimum for ONNX Runtime into .venv/optimum-side (export tests, bench)" \
        pip_install --no-deps --upgrade --target .venv/optimum-side optimum==2.1.0 optimum-onnx==0.1.0 \
        transformers==4.57.6 huggingface_hub==0.36.2 tokenizers==0.22.2
fi
echo "==> ready: source .venv/bin/activate (or call .venv/bin/classiformer)"
