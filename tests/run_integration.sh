#!/usr/bin/env bash
# Runs the integration suites, each a program that exits non-zero on
# failure:
#   tests/cli/test_*.sh      the cgpt binary end to end, plain and ASan+UBSan builds
#   tests/cli/test_*.py      chat / run / template / tokenize / perplexity end to end
#   tests/ref/test_*.py      the engine against the independent NumPy reference
#   tests/chat/test_*.py     templates against real Jinja2
#   tests/sample/test_*.py   sampling distributions against NumPy
#   tests/tokenizer/test_*.sh  tokenizers against npm implementations
# Python suites run on Debian's /usr/bin/python3 (numpy, jinja2).
# Ends with "integration: N passed, N failed".
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0; failed=()
suite() { # NAME CMD...
  local name=$1; shift
  echo "== $name"
  local t0=$SECONDS
  if timeout 1200 "$@"; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$name"); fi
  echo "== $name: $((SECONDS - t0)) s"
}
for t in tests/cli/test_*.sh; do
  suite "$t" bash "$t" build/cgpt
  suite "$t (ASan+UBSan binary)" bash "$t" build/asan/cgpt
done
for t in tests/cli/test_*.py tests/ref/test_*.py tests/chat/test_*.py tests/sample/test_*.py; do
  [ -e "$t" ] && suite "$t" /usr/bin/python3 "$t"
done
for t in tests/tokenizer/test_*.sh; do
  [ -e "$t" ] && suite "$t" bash "$t"
done
for f in "${failed[@]}"; do echo "FAILED: $f"; done
echo "integration: $pass passed, $fail failed"
[ $fail -eq 0 ]
