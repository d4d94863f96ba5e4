#!/usr/bin/env bash
# bench/gpu_infer.sh: gbifxdl infer on an NVIDIA GPU (issue 21), ready to run on a machine that has one.
#
#   bash bench/gpu_infer.sh                       # MobileNet-sized model, 2,000 real-size JPEGs, 2 rounds
#   bash bench/gpu_infer.sh --large --images 500  # ViT-B-sized: the model is the cost
#   bash bench/gpu_infer.sh --workers 15          # any option of bench/infer.py
#
# 1. Makes a virtual environment (bench/.venv-gpu, or $VENV) with gbifxdl and its `gpu` extra
#    (onnxruntime-gpu; the CPU onnxruntime is removed from it: both install the module
#    `onnxruntime`, and the CPU one would win) and onnx (the bench builds its model with it).
#    Needs the NVIDIA driver, and CUDA 12 and cuDNN 9 libraries: the system's, or NVIDIA's
#    pip packages (CUDA_FROM_PIP=1 installs them; ONNX Runtime 1.21+ loads them itself).
# 2. Says which GPU and which ONNX Runtime providers it found.
# 3. Runs bench/infer.py --device cuda, which prints, side by side: the GPU session alone on
#    tensors in memory (the model-only ceiling), the decode alone on the CPUs, gbifxdl infer on
#    the GPU against both, the one-image-at-a-time loop, and gbifxdl infer on this machine's
#    CPU (the CPU figure). Without the CUDA provider it stops with a one-line error: it never
#    measures the CPU in the GPU's place.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-bench/.venv-gpu}

command -v nvidia-smi >/dev/null || { echo "error: no nvidia-smi: this machine has no NVIDIA driver (or GPU)" >&2; exit 2; }
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
if "$VENV/bin/python" -m pip show -q onnxruntime 2>/dev/null; then
    # both packages install the module `onnxruntime`: the CPU one goes, and the GPU one is put back whole
    "$VENV/bin/python" -m pip uninstall -q -y onnxruntime onnxruntime-gpu
fi
"$VENV/bin/python" -m pip install -q -e '.[gpu]' 'onnx>=1.15'
if [ "${CUDA_FROM_PIP:-0}" = 1 ]; then
    "$VENV/bin/python" -m pip install -q nvidia-cuda-runtime-cu12 nvidia-cublas-cu12 nvidia-cufft-cu12 \
        nvidia-curand-cu12 nvidia-cuda-nvrtc-cu12 nvidia-cudnn-cu12
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$VENV/bin/python" -c "import onnxruntime as o; print('onnxruntime', o.__version__, 'providers:', ', '.join(o.get_available_providers()))"
exec "$VENV/bin/python" bench/infer.py --device cuda "$@"
