#!/usr/bin/env bash
# The GPU checks of issue 25, as one script for the lent device machine (nothing here runs on a
# machine without CUDA): the GPU parity tests, then one evaluation and the time to a finished
# picture on the GPU. Results land in bench/results/ (time_to_picture.json is merged).
#   bash bench/gpu.sh            # from the repository root, with the project's venv active
set -euo pipefail
python -m pip install -q ".[test,gpu]" 2>/dev/null || python -m pip install -q ".[test]"
minivgg weights fetch vgg16
pytest -q tests/test_gpu.py tests/test_cuda_kernels.py
python -m bench.time_to_picture --device gpu --pairs tubingen+starry_night --routes before after
