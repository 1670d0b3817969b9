#!/usr/bin/env bash
# The CUDA check, for a machine with an NVIDIA GPU (H100/H200): CUDA-marked tests, then the GPU
# benchmark, then (if `lenet train` exists and full MNIST is found) a timed MNIST run.
# Everything prints on stdout; paste it into docs/benchmarks.md. Budget: under 5 minutes.
#
#   bash benchmarks/cuda_check.sh            # from the repository root
#   MNIST_DIR=/path/to/mnist bash benchmarks/cuda_check.sh
#
# It installs nothing beyond the README's `pip install -e '.[test]'`, and only when lenet_cli
# is not importable yet.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
stage() { echo; echo "== $* ($(date +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"; }

if ! python -c "import lenet_cli, pytest" 2>/dev/null; then
    stage "install (README): pip install -e '.[test]'"
    pip install -q -e '.[test]' || exit 1
fi
stage "machine"
python - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
print("available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0))
PY
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv 2>/dev/null

stage "CUDA-marked tests"
timeout 120 python -m pytest -q -m cuda tests/ -p no:cacheprovider || status=1

for precision in fp32 bf16-mixed fp16-mixed; do
    stage "lenet bench --device cuda --precision $precision"
    timeout 45 python -m lenet_cli bench --device cuda --precision "$precision" \
        --batch-sizes 256,1024,4096 --images 60000 --repeats 5 --threads 1 || status=1
done
stage "lenet bench --device cuda, NCHW, fp32 (layout comparison)"
timeout 30 python -m lenet_cli bench --device cuda --no-channels-last --batch-sizes 1024 \
    --images 60000 --repeats 5 --threads 1 || status=1
stage "lenet bench --device cuda --compile, bf16-mixed (compile time is the warm-up column in --json)"
timeout 90 python -m lenet_cli bench --device cuda --compile --precision bf16-mixed \
    --batch-sizes 1024 --images 60000 --repeats 5 --threads 1 --json \
    | python -c "import json,sys; d=json.load(sys.stdin); r=d['results'][0]; print({k: r[k] for k in ('batch_size','train_images_per_s','train_epoch_s','train_warmup_s','infer_images_per_s')})" \
    || status=1

MNIST_DIR="${MNIST_DIR:-}"
for d in shared/data/mnist ../shared/data/mnist "${LENET_DATA_DIR:-/nonexistent}" "$HOME/.cache/lenet/mnist"; do
    [ -z "$MNIST_DIR" ] && [ -e "$d/train-images-idx3-ubyte.gz" ] && MNIST_DIR="$d"
done
stage "full MNIST to >= 99.0% in < 10 s (wall, data loading included)"
if ! python -m lenet_cli train --help >/dev/null 2>&1; then
    echo "skipped: this checkout has no \`lenet train\`"
elif [ -z "$MNIST_DIR" ]; then
    echo "skipped: full MNIST not found (set MNIST_DIR to a directory with the 4 IDX files)"
elif n=$(python -c "import gzip,struct,sys; f=gzip.open(sys.argv[1]); print(struct.unpack('>II', f.read(8))[1])" \
        "$MNIST_DIR/train-images-idx3-ubyte.gz") && [ "$n" -lt 60000 ]; then
    echo "skipped: $MNIST_DIR holds $n training images, not full MNIST's 60,000 (set MNIST_DIR)"
else
    start=$(python -c 'import time; print(time.time())')
    timeout 60 python -m lenet_cli train --device cuda --data mnist --data-dir "$MNIST_DIR" \
        --epochs 8 --batch-size 256 --optimizer adamw --lr 0.004 --scheduler onecycle \
        --out /tmp/lenet-cuda-check --progress none || status=1
    python -c "import time; print(f'wall seconds: {time.time() - $start:.1f}')"
fi
stage "1-GPU data-parallel smoke: torchrun, nccl, one rank (the bundled sample, 2 epochs)"
if python -m lenet_cli train --help 2>/dev/null | grep -q -- "--nproc"; then
    timeout 120 python -m torch.distributed.run --standalone --nproc-per-node=1 -m lenet_cli train \
        --device cuda --data mnist-sample --epochs 2 --batch-size 256 \
        --out /tmp/lenet-cuda-check --progress plain || status=1
else
    echo "skipped: this checkout has no data-parallel training"
fi
echo
echo "cuda_check: $([ $status = 0 ] && echo OK || echo 'FAILED (see above)')"
exit $status
