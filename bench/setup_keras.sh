#!/usr/bin/env bash
# The lesson's Keras model is a benchmark peer (bench/keras_lesson.py). TensorFlow gets its own
# environment so that it never shares one with torch: .venv-keras next to .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-keras/bin/python ]; then
    python3 -m venv .venv-keras
fi
.venv-keras/bin/pip install --quiet tensorflow-cpu==2.21.0 keras==3.15.1
.venv-keras/bin/python -c "import tensorflow as tf, keras; print('tensorflow', tf.__version__, 'keras', keras.__version__)"
