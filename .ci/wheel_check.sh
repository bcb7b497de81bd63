#!/usr/bin/env bash
# The package as a user gets it: build the wheel from a clean copy of this tree, install it into a fresh venv
# (core dependencies only, no extras), and from an empty folder run `workbench devices`, `workbench spaces` and
# `workbench quickstart`; then run the tests that need no repository files against the installed package
# (WORKBENCH_TEST_INSTALLED=1 makes tests/test_packaging.py check that workbench and its data come from
# site-packages). Run alone with `bash .ci/wheel_check.sh` (needs python3.11 and pip's usual index/find-links).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d /tmp/workbench-wheel.XXXXXX)
trap 'rm -rf "$work"' EXIT
step() { echo "[wheel_check $(date +%H:%M:%S)] $*"; }

# 1. the wheel, built from the files git would commit (no stale build/ or egg-info of this tree can leak in)
step "building the wheel"
mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
done | tar --null -T - -cf - | tar -xf - -C "$work/src"
"$PYTHON" -m pip wheel --quiet --no-deps -w "$work/dist" "$work/src"
wheel=$(ls "$work"/dist/tinyml_workbench-*.whl)
if unzip -l "$wheel" | grep -E '__pycache__|\.egg-info|/build/'; then
    echo "wheel_check: the wheel carries build leftovers (above)" >&2; exit 1
fi

# 2. a fresh venv with the wheel and its core dependencies (torch first: the pinned CPU build)
step "installing $(basename "$wheel") into a fresh venv"
"$PYTHON" -m venv "$work/venv"
venv="$work/venv/bin"
"$venv/python" -m pip install --quiet --upgrade pip
"$venv/pip" install --quiet torch==2.13.0
"$venv/pip" install --quiet "$wheel" pytest hypothesis

# 3. the commands, from an empty folder, with an empty user folder
mkdir "$work/empty"
export WORKBENCH_HOME="$work/home"
(
    cd "$work/empty"
    step "workbench devices / spaces / quickstart from $PWD"
    "$venv/workbench" devices | tee "$work/devices.txt" | tail -1
    "$venv/workbench" spaces | tee "$work/spaces.txt" | tail -1
    for name in stm32f746 stm32l4r5 rpi4 host-cpu; do grep -q "^$name " "$work/devices.txt"; done
    for name in vision sensor-imu audio-kws mlperf-kws; do grep -q "^$name " "$work/spaces.txt"; done
    "$venv/workbench" quickstart > "$work/quickstart.txt" 2> "$work/quickstart.err" \
        || { tail -20 "$work/quickstart.err"; exit 1; }  # its progress lines: shown only when it fails
    grep -q "^Pareto front on stm32f746" "$work/quickstart.txt"
    tail -4 "$work/quickstart.txt"
)
test ! -e "$WORKBENCH_HOME"  # nothing of the above writes into the user folder

# 4. tests against the installed package: a copy of tests/ (and pyproject.toml for pytest's settings) elsewhere
step "tests against the installed wheel"
mkdir "$work/t"
cp -r tests pyproject.toml "$work/t/"
find "$work/t" -name __pycache__ -prune -exec rm -rf {} +
cd "$work/t"
WORKBENCH_TEST_INSTALLED=1 "$venv/python" -m pytest -q -p no:cacheprovider -m "not repo" \
    tests/test_packaging.py tests/test_spaces.py tests/test_cli.py tests/test_trust.py tests/test_calibrate.py \
    tests/test_cost.py
step "done"
