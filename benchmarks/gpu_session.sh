#!/usr/bin/env bash
# The GPU measurements of issue 8, in stages that each fit one 10-minute device call.
#
#   bash benchmarks/gpu_session.sh STAGE [STAGE ...]
#
# To keep the console too, tee it deaf to the signals that stop a call (else its last lines are lost):
#   bash benchmarks/gpu_session.sh STAGE ... 2>&1 | (trap '' HUP INT TERM; exec tee "$OUT/console.log")
#
# Run from the repository root on a machine with a CUDA GPU, with real MNIST's
# IDX files in $HARNESS_GPU_DATA (default data/mnist, an ignored folder: copy
# ../shared/data/mnist there and carry it). Stages, in the order worth their
# device time:
#
#   check     install (no network needed), GPU facts, missing test modules, the `gpu`-marked tests
#   fast      mnist-fast, 5 seeds, eager and with --cuda-graphs: time to 99 %
#   seed002   the three seed-002 recipes (20 epochs), eager; GPU latency rows
#   graphs002 the same three with --cuda-graphs (batch-1 latency only: seed002 has the rest)
#   speed     benchmarks/train_speed.py: the seeds' DataLoader loop vs ours, several configurations,
#             and benchmarks/train_ab.py (is channels-last worth a CUDA default too?)
#   all       harness run --plugins all on MNIST, whole recipes, --cuda-graphs (HARNESS_GPU_ALL_OPTS), timed;
#             resumable: run the stage again to continue
#   bundle    results (no ONNX or weights) and logs packed into $OUT/gpu-session.tar.gz
#
# The bundle is made once per call, whatever happens: last when asked for (or implied by a budget),
# else when the script exits, also after an error or a SIGTERM, SIGINT or SIGHUP. Such a signal sent
# to the script's process group (Ctrl-C, a tool stopping the call) hands the command running then a
# SIGTERM (the harness stops and writes its reports) and waits for it, at most 25 s, before the
# bundle, and what it prints as it stops (the interrupted run's table, the --resume hint) still
# reaches the console and the stage's log; sent to the script alone, it takes effect once that
# command has ended. When the project cannot be installed, or torch sees no CUDA device while
# HARNESS_GPU_DEVICE is cuda (the default), the script says so in a loud line, skips the stages that
# need it (check still prints its facts) and still makes the bundle; the call then exits with status 1.
#
# With HARNESS_GPU_BUDGET=SECONDS the whole call keeps within that many seconds:
# each command gets only the time left, less 45 s kept for the bundle (a command still
# running at its limit gets SIGTERM, on which the harness stops and writes its reports,
# and SIGKILL 20 s later, so the bundle keeps 25 s), a stage that would start with
# under 15 s left is skipped with a line saying so, and the bundle is made last even
# when not asked for. So one device call can run every stage in priority order and
# still bring back what finished, e.g.
#   HARNESS_GPU_BUDGET=420 bash benchmarks/gpu_session.sh check fast graphs002 all
# 420 s and the machine's start-up (a minute or two) leave room in a 15-minute device
# allowance to rerun a stage; `all` comes last and gets only the time the others left
# (run it again in a later call to resume it). seed002 and speed were measured on an
# H200 on 2026-11-30 (reports/example/README.md). Timings there: check 40 s, fast 105 s
# (mnist-fast's earlier 4-epoch recipe), seed002 300 s, speed 245 s.
#
# When this tree is not the one Python imports, the script installs it (pip install -e .) into that Python;
# HARNESS_GPU_INSTALL=0 links it in place instead, leaving the environment as it was (the test suite sets it:
# under tox, whose install is not editable, a test reinstalled the project while other tests imported it).
#
# A dry run of the script's logic on a CPU machine, with tiny work:
#   HARNESS_GPU_DEVICE=cpu HARNESS_GPU_EXTRA="--epochs 1 --max-train-samples 512 --quick" \
#       bash benchmarks/gpu_session.sh fast seed002 bundle
#
# Each stage prints a short table last and leaves its logs in reports/gpu-session/logs/;
# the bundle packs them with the run folders into $OUT (what the device tool returns, at
# most 8 files), and everything stays under reports/gpu-session/ between calls while the
# machine is warm. Running a stage again continues its runs (--resume).
set -uo pipefail

DATA=${HARNESS_GPU_DATA:-data/mnist}
RUNS=${HARNESS_GPU_RUNS:-reports/gpu-session}
OUT=${OUT:-/tmp/harness-gpu-out}
PY=${PYTHON:-python3}
DEVICE=${HARNESS_GPU_DEVICE:-cuda}
read -r -a EXTRA <<<"${HARNESS_GPU_EXTRA:-}"
export PYTHONUNBUFFERED=1 HARNESS_OFFLINE=1 HARNESS_CACHE_DIR=${HARNESS_CACHE_DIR:-$RUNS/.cache}
# The device tool brings back at most 8 files from $OUT: logs go to $LOGS, inside the bundle,
# so $OUT ends with one file, gpu-session.tar.gz.
LOGS=$RUNS/logs
RUNNING=$RUNS/.running  # one empty file per command running under limited_for, named by its timeout's pid
mkdir -p "$RUNS" "$OUT" "$LOGS" "$RUNNING"

BUDGET=${HARNESS_GPU_BUDGET:-}
KILL_AFTER=20  # seconds between a command's SIGTERM at its limit (the harness stops and writes reports) and SIGKILL
RESERVE=45  # seconds kept for the bundle when a budget is set: KILL_AFTER and the bundle's own time
MIN_START=15  # a command or stage is not started with less time than this left
START=$SECONDS
BLOCKED=""  # why the stages that need the project (and, on cuda, a GPU) are skipped; empty when they run

left() {  # seconds this call may still spend before the bundle (a day without a budget)
    if [ -n "$BUDGET" ]; then echo $((BUDGET - RESERVE - (SECONDS - START))); else echo 86400; fi
}

limited_for() {  # limited_for SECONDS CMD...: run CMD within SECONDS and the time left, or skip it with a line
    local t
    t=$(left)
    [ "$1" -lt "$t" ] && t=$1
    shift
    if [ "$t" -lt "$MIN_START" ]; then
        echo "skipped, time budget spent: ${*:1:4} ..."
        return 124
    fi
    # One timeout, never two nested: an outer one's SIGKILL would end the inner timeout but not its command.
    # timeout runs in a process group of its own, which a signal to this script's group misses: its pid is
    # kept in $RUNNING while it runs, for stop_commands. In the background, so that `wait` lets a signal's
    # trap run at once.
    # In a stage's pipeline (CMD | readers ...) this runs in a subshell that a signal to the group reaches
    # too: the subshell stops CMD itself (stop_commands) and waits for it, since the script runs its own trap
    # only once the whole pipeline has ended, and the readers, deaf to the signal, end only when CMD has.
    # The status is then the signal's.
    local signalled=""
    [ "$BASHPID" != "$$" ] && trap 'signalled=1; stop_commands' HUP INT TERM
    timeout -k "$KILL_AFTER" "$t" "$@" &
    local pid=$!
    : >"$RUNNING/$pid"
    [ -n "$signalled" ] && stop_commands  # the signal came before the pid was kept
    wait "$pid"
    local rc=$?
    [ "$BASHPID" != "$$" ] && trap - HUP INT TERM
    rm -f "$RUNNING/$pid"
    [ "$rc" -eq 124 ] && echo "stopped after ${t} s, its time limit: ${*:1:4} ..."
    [ "$rc" -eq 137 ] && echo "killed ${KILL_AFTER} s after its time limit of ${t} s: ${*:1:4} ..."
    return "$rc"
}

limited() { limited_for 86400 "$@"; }  # limited CMD...: run CMD within the time left

harness() { limited "$PY" -m harness "$@"; }

# readers LOG LINES ends each stage's pipeline (CMD 2>&1 | readers LOG LINES): it appends CMD's output to LOG
# and shows its last LINES lines. It ignores SIGHUP, SIGINT and SIGTERM, and so do tee and tail (a signal
# ignored stays ignored across exec): a signal to the script's group (Ctrl-C, a tool stopping the call) would
# end them at once, and what the harness prints as it stops (the interrupted run's table, the --resume hint)
# would be lost from the console and LOG. They end at the end of CMD's output, once limited_for has stopped
# CMD. In braces, not a subshell of its own: the pipeline's process, which the script waits for, must outlive
# the signal too, or the script would bundle and exit while tee and tail still run. Only ever in a pipeline:
# in the script itself, it would make the script deaf to those signals.
readers() {
    trap '' HUP INT TERM
    tee -a "$1" | tail -n "$2"
}

imports_here() {  # prints why, and fails, unless harness and harness_plugins both import from this tree
    "$PY" -c '
import os, sys
here = os.path.realpath(os.getcwd())
try:
    import harness, harness_plugins
except Exception as exc:
    sys.exit(f"the project does not import: {type(exc).__name__}: {exc}")
for module in (harness, harness_plugins):
    path = os.path.realpath(module.__file__)
    if os.path.commonpath([here, path]) != here:
        sys.exit(f"{module.__name__} imports from {path}, not from this tree ({here})")
' 2>&1
}

ensure_installed() {  # this tree importable (another checkout's install does not count); status 1 when it is not
    local why
    why=$(imports_here) && return 0
    if [ "${HARNESS_GPU_INSTALL:-1}" = 0 ]; then  # leave the environment as it is (a test suite running in it)
        echo "$why: linking this tree in place (HARNESS_GPU_INSTALL=0)" | tee "$LOGS/install.log"
    else
        echo "$why: installing this tree" | tee "$LOGS/install.log"
        # --no-index --no-deps --no-build-isolation: the GPU machine has no network but has the card's packages.
        if "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . >>"$LOGS/install.log" 2>&1; then
            why=$(imports_here) && return 0
            echo "pip installed it, but $why (PYTHONPATH?); linking it in place" | tee -a "$LOGS/install.log"
        else
            echo "pip could not install the project (tail of $LOGS/install.log below); linking it in place"
            tail -5 "$LOGS/install.log"
        fi
    fi
    # An older setuptools there cannot build this pyproject: put the tree first on the path instead, with
    # a dist-info that carries the entry points (how plugins are found) and harness_plugins -> plugins/.
    local site
    site="$(cd "$RUNS" && pwd)/.site"
    if ! "$PY" - "$site" >>"$LOGS/install.log" 2>&1 <<'PYEOF'; then
import re, sys, tomllib
from pathlib import Path
site = Path(sys.argv[1])
project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
# pyproject's version is dynamic: it is written once, as harness.__version__.
version = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", Path("harness/__init__.py").read_text(), re.M).group(1)
info = site / f"harness-{version}.dist-info"
info.mkdir(parents=True, exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: harness\nVersion: {version}\n")
(info / "entry_points.txt").write_text("".join(
    f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in names.items()) + "\n"
    for group, names in project["entry-points"].items()))
link = site / "harness_plugins"
if not link.is_symlink():
    link.symlink_to(Path.cwd() / "plugins", target_is_directory=True)
print(f"linked harness {version} in place: {site}")
PYEOF
        echo "could not link the project in place (tail of $LOGS/install.log below)"
        tail -5 "$LOGS/install.log"
        return 1
    fi
    export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
    why=$(imports_here) && { echo "using this tree through PYTHONPATH=$PYTHONPATH"; return 0; }
    echo "$why" | tee -a "$LOGS/install.log"
    return 1
}

loud() {  # loud LINE: a line no one scrolling the output can miss
    printf '!!!!!!!!!!\n!!! %s\n!!!!!!!!!!\n' "$1"
}

summary() {  # summary RUN_DIR...: the Training and Seeds sections of the joined report
    local dest="$RUNS/summary-$1"
    shift
    harness report "$@" --out "$dest" >/dev/null 2>&1 || harness report "$@" --out "$dest"
    sed -n '/^## Seeds/,/^## Accuracy vs latency/p;/^## Training$/,/^## Training curves/p' "$dest/report.md" \
        | grep -v '^## Accuracy vs latency\|^## Training curves'
}

again() {  # again RUN_ID: --resume when that run folder exists (a rerun, or one the budget stopped)
    [ -f "$RUNS/$1/results.json" ] && echo --resume
}

common=(--datasets mnist --data-dir "$DATA" --device "$DEVICE" --no-progress --out "$RUNS" "${EXTRA[@]}")

stage_check() {
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>&1 \
        | tee "$LOGS/gpu.txt" || echo "nvidia-smi failed (above)"
    "$PY" - <<'EOF' 2>&1 | tee -a "$LOGS/gpu.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "cuda available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(p.name, p.multi_processor_count, "SMs", round(p.total_memory / 2**30, 1), "GiB")
EOF
    # What the tests import before any test runs (conftest: hypothesis; pyproject's addopts: pytest-benchmark)
    # and what the harness needs: one line that explains a failure below.
    "$PY" -c '
import importlib
missing = []
for name in ("hypothesis", "pytest_benchmark", "click", "rich", "tabulate", "pluggy", "onnx", "onnxscript",
             "matplotlib", "onnxruntime"):
    try:
        importlib.import_module(name)
    except Exception as exc:
        missing.append(f"{name} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc!r})")
print("modules the tests need, missing:", "; ".join(missing) if missing else "none")
' 2>&1 | tee -a "$LOGS/gpu.txt"
    if [ -n "$BLOCKED" ]; then
        echo "gpu tests skipped: $BLOCKED"
        return 1
    fi
    limited "$PY" -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | readers "$LOGS/gpu-tests.log" 15
}

stage_fast() {
    local config="$RUNS/fast-seeds.toml"
    # Time to 99 % is what this stage is for: batch-1 latency only and no cold starts (about 4 s a job on
    # the H200, where its b256 and cold-start figures were measured already: reports/example/mnist-fast).
    printf 'models = ["mnist-fast"]\nbatch_sizes = [1]\n[sweep]\nseed = [0, 1, 2, 3, 4]\n' >"$config"
    harness run --config "$config" "${common[@]}" --run-id fast-eager $(again fast-eager) --no-torch-latency \
        --cold-runs 0 2>&1 | readers "$LOGS/fast-eager.log" 3
    # fp32: on an H200, bf16 autocast made mnist-fast's graphed epoch slower (0.37 s against 0.32 s).
    harness run --config "$config" "${common[@]}" --run-id fast-graphs $(again fast-graphs) --cuda-graphs \
        --no-torch-latency --cold-runs 0 2>&1 | readers "$LOGS/fast-graphs.log" 3
    summary fast "$RUNS/fast-eager" "$RUNS/fast-graphs"
}

seed002=mnist-rough-cnn,mnist-cake-cnn,mnist-ultralight-cnn

stage_seed002() {
    # One thread for the CPU rows: the rough CNN at batch 256 already takes up to 12 s a row.
    harness run --models "$seed002" "${common[@]}" --run-id seed002-eager $(again seed002-eager) --batch-sizes 1,32,256 \
        2>&1 | readers "$LOGS/seed002-eager.log" 6
    summary seed002 "$RUNS/seed002-eager"
}

stage_graphs002() {
    # fp32 graphs (bf16 did not help these launch-bound models on an H200); batch 1 only and no cold starts,
    # since graphs change training, not the exported model, and the rough CNN's CPU rows at 256 take 45 s.
    harness run --models "$seed002" "${common[@]}" --run-id seed002-graphs $(again seed002-graphs) --cuda-graphs \
        --batch-sizes 1 --cold-runs 0 2>&1 | readers "$LOGS/seed002-graphs.log" 6
    # Beside the eager run: this call's, else the published example's (measured on an H200).
    local eager=$RUNS/seed002-eager
    [ -f "$eager/results.json" ] || eager=reports/example/seed002
    if [ -f "$eager/results.json" ]; then
        summary graphs002 "$eager" "$RUNS/seed002-graphs"
    else
        summary graphs002 "$RUNS/seed002-graphs"
    fi
}

stage_speed() {
    limited "$PY" benchmarks/train_speed.py --model mnist-ultralight-cnn --dataset mnist --data-dir "$DATA" \
        --device "$DEVICE" --epochs 1 --rounds 2 \
        --configs eager,channels-last,cuda-graphs,channels-last+cuda-graphs,bf16+cuda-graphs 2>&1 \
        | readers "$LOGS/train-speed-ultralight.log" 8
    limited "$PY" benchmarks/train_speed.py --model mnist-fast --dataset mnist --data-dir "$DATA" \
        --device "$DEVICE" --epochs 1 --rounds 2 --configs eager,cuda-graphs,bf16+cuda-graphs 2>&1 \
        | readers "$LOGS/train-speed-fast.log" 6
    limited "$PY" benchmarks/train_ab.py --option channels-last --dataset mnist --data-dir "$DATA" --samples 20000 --device "$DEVICE" \
        2>&1 | readers "$LOGS/channels-last.log" 18
}

stage_all() {
    # fp32 with CUDA graphs by default: the same arithmetic as eager, without the launch overhead.
    local resume=() opts
    read -r -a opts <<<"${HARNESS_GPU_ALL_OPTS:---cuda-graphs}"
    [ -f "$RUNS/all/results.json" ] && resume=(--resume)
    local start=$SECONDS
    # The stage's own limit inside the call's budget: whichever ends first stops the run.
    limited_for "${HARNESS_GPU_ALL_LIMIT:-540}" "$PY" -m harness run --plugins all "${common[@]}" --run-id all \
        "${opts[@]}" "${resume[@]}" 2>&1 | readers "$LOGS/all.log" 25
    echo "stage all: $((SECONDS - start)) s this call (exit ${PIPESTATUS[0]}; 124 or 137 = time limit, run the" \
        "stage again to resume)"
}

alive() {  # alive PID: the timeout a limited_for started is still running (not gone, not a zombie)
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = timeout ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]
}

stop_commands() {  # the commands still running when the call ends (a signal): SIGTERM, so that the harness stops
    # and writes its reports before the bundle, and a wait until they end (timeout kills them KILL_AFTER s later)
    local file pid pids=() waited=0
    for file in "$RUNNING"/*; do
        pid=${file##*/}
        [ -f "$file" ] && alive "$pid" && pids+=("$pid")
        rm -f "$file"
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    echo "stopping what still runs (timeout pid ${pids[*]}), at most $((KILL_AFTER + 5)) s"
    kill -TERM "${pids[@]}" 2>/dev/null
    while [ "$waited" -lt $((KILL_AFTER + 5)) ]; do
        for pid in "${pids[@]}"; do alive "$pid" && break; pid=""; done
        [ -z "$pid" ] && return 0
        sleep 1
        waited=$((waited + 1))
    done
}

BUNDLED=""

stage_bundle() {
    BUNDLED=1  # first, so that an interrupted bundle is not started again on exit
    tar -czf "$OUT/gpu-session.tar.gz" --exclude='*.onnx' --exclude='*.onnx.data' --exclude='*.pt' \
        --exclude='.cache' --exclude='.site' --exclude='.running' -C "$(dirname "$RUNS")" "$(basename "$RUNS")"
    ls -la "$OUT"
}

on_exit() {  # the EXIT trap: the bundle, unless a bundle stage made it already; the call's status is kept
    local rc=$?
    trap - EXIT HUP INT TERM
    # A signal to the group may have ended what reads this script's output (a caller's `| tee console.log`):
    # a line written then must fail, not end the script (SIGPIPE) before the harness is stopped and bundled.
    trap '' PIPE
    stop_commands
    if [ -z "$BUNDLED" ]; then
        echo "== bundle (on exit, status $rc, $((SECONDS - START)) s into this call)"
        stage_bundle
    fi
    exit "$rc"
}

[ $# -gt 0 ] || { awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 2; }
stages=("$@")
for stage in "${stages[@]}"; do
    case $stage in
        check | fast | seed002 | graphs002 | speed | all | bundle) ;;
        *) echo "unknown stage $stage (check, fast, seed002, graphs002, speed, all, bundle)"; exit 2 ;;
    esac
done
# With a budget the bundle always comes last, so whatever finished comes back.
if [ -n "$BUDGET" ] && [ "${stages[-1]}" != bundle ]; then
    stages+=(bundle)
fi
# From here on, whatever ends the call (its last stage, an error, a signal) leaves the bundle in $OUT.
# Each signal becomes an exit, which runs the EXIT trap (bash runs it once the command in progress ends).
trap on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
if ! ensure_installed; then
    BLOCKED="the project cannot be installed or imported from this tree ($LOGS/install.log)"
elif [[ $DEVICE == cuda* ]]; then
    # Checked once, here: without a GPU every harness run would stop with exit 2, one stage after another.
    no_cuda=$("$PY" -c '
import torch
if not torch.cuda.is_available():
    print(f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) sees no CUDA device")' \
        2>"$LOGS/cuda-check.log") || no_cuda="torch does not import: $(tail -1 "$LOGS/cuda-check.log")"
    # standard output only: a warning torch's import prints (a NumPy mismatch) is not a missing GPU
    [ -n "$no_cuda" ] && BLOCKED="$no_cuda, but HARNESS_GPU_DEVICE is $DEVICE"
fi
[ -n "$BLOCKED" ] && loud "$BLOCKED: the GPU stages are skipped, the bundle still comes"
for stage in "${stages[@]}"; do
    if [ "$stage" != bundle ] && [ "$(left)" -lt "$MIN_START" ]; then
        echo "== $stage skipped: time budget spent ($((SECONDS - START)) s of $BUDGET s used)"
        continue
    fi
    if [ -n "$BLOCKED" ] && [ "$stage" != bundle ] && [ "$stage" != check ]; then
        echo "== $stage skipped: $BLOCKED"
        continue
    fi
    echo "== $stage ($((SECONDS - START)) s into this call)"
    "stage_$stage"
done
# A call whose stages could not run failed: status 1, after the bundle (the EXIT trap keeps the status).
[ -z "$BLOCKED" ]
