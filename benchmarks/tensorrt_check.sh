#!/usr/bin/env bash
# What documents cannot settle, in about five minutes on a machine with TensorRT and an NVIDIA GPU:
#   - FP32 and FP16 engines of a small model against ONNX Runtime float32 (the build's own accuracy gate);
#   - --plugins engines (the Triton kernels as AOT plugins) at head size 32 and at head size 96, whose attention
#     tiles need the most shared memory, and once more with Triton's hidden scratch parameters left in the
#     PTX entries (kernels.aot --keep-hidden-parameters) to see whether TensorRT's launcher tolerates them;
#   - CUDA graph replay across changing batch sizes, and inference from several threads, against ONNX Runtime.
# Usage (from the repository, with fmca-rt installed): benchmarks/tensorrt_check.sh [WORKDIR]
# Writes benchmarks/tensorrt-check-<TensorRT version>-sm<arch>.md; everything else stays in WORKDIR
# (default build/tensorrt-check). TENSORRT_CHECK_DRY_RUN=1 prints the commands without running them.
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WORK=${1:-build/tensorrt-check}
DRY=${TENSORRT_CHECK_DRY_RUN:-0}
RESULTS="$WORK/results.jsonl"
ENGINES="$WORK/engines"

run() {  # print a command, then run it unless this is a dry run
    echo "+ $*"
    [ "$DRY" = 1 ] || "$@"
}

build() {  # build NAME ARGS...: an engine under $ENGINES; a failure is a table row, not the end of the check
    local name=$1
    shift
    local command=("$PY" -m export.build_engine "$@" --batch 1:2:4 --output "$ENGINES/$name.engine")
    echo "+ ${command[*]}"
    [ "$DRY" = 1 ] && return
    if ! "${command[@]}" 2> "$WORK/$name.err"; then
        cat "$WORK/$name.err" >&2
        "$PY" -c 'import json, sys; print(json.dumps({"check": "build " + sys.argv[1], "passed": False,
            "detail": (open(sys.argv[2]).read().strip().splitlines() or ["no output"])[-1]}))' \
            "$name" "$WORK/$name.err" >> "$RESULTS"
    fi
}

if [ "$DRY" = 1 ]; then
    ARCH=87 TAG=dry-run
else
    ERR=$(mktemp)
    if ! GPU=$("$PY" -c 'import tensorrt as t; from fmca_rt.backends.tensorrt_env import current_gpu as g
print(t.__version__, g().arch)' 2> "$ERR"); then
        echo "tensorrt_check: needs NVIDIA TensorRT's Python package and an NVIDIA GPU here ($(tail -n 1 "$ERR"))" >&2
        rm -f "$ERR"
        exit 2
    fi
    rm -f "$ERR"
    ARCH=${GPU#* } TAG="${GPU% *}-sm${GPU#* }"
    mkdir -p "$ENGINES"
    rm -f "$RESULTS"
fi
SECONDS=0

run "$PY" -m export.trt_check models --out "$WORK"
for model in tiny s14-d96; do
    run "$PY" -m export.onnx --checkpoint "$WORK/$model.pth" --output "$WORK/$model.onnx"
    run "$PY" -m export.onnx --checkpoint "$WORK/$model.pth" --output "$WORK/$model.plugins.onnx" --plugins
done

build tiny-fp32 --onnx "$WORK/tiny.onnx"
build tiny-fp16 --onnx "$WORK/tiny.onnx" --fp16

run "$PY" -m kernels.aot --arch "$ARCH" --out "$WORK/kernels" --head-dim 32 96
build tiny-plugins --onnx "$WORK/tiny.plugins.onnx" --fp16 --plugins --kernels "$WORK/kernels"
build s14-d96-plugins --onnx "$WORK/s14-d96.plugins.onnx" --fp16 --plugins --kernels "$WORK/kernels"
KERNEL_DIRS=("$WORK/kernels")
run "$PY" -m kernels.aot --arch "$ARCH" --out "$WORK/kernels-hidden" --head-dim 32 --keep-hidden-parameters
build tiny-plugins-hidden --onnx "$WORK/tiny.plugins.onnx" --fp16 --plugins --kernels "$WORK/kernels-hidden"
KERNEL_DIRS+=("$WORK/kernels-hidden")

for engine in tiny-fp16 tiny-plugins; do
    if [ "$DRY" = 1 ] || [ -f "$ENGINES/$engine.engine" ]; then
        run "$PY" -m export.trt_check replay --engine "$ENGINES/$engine.engine" --onnx "$WORK/tiny.onnx" --results "$RESULTS"
        run "$PY" -m export.trt_check threads --engine "$ENGINES/$engine.engine" --onnx "$WORK/tiny.onnx" --results "$RESULTS"
    fi
done

run "$PY" -m export.trt_check table --results "$RESULTS" --engines "$ENGINES" --kernels "${KERNEL_DIRS[@]}" \
    --out "benchmarks/tensorrt-check-$TAG.md"
echo "tensorrt_check: done in ${SECONDS} s"
