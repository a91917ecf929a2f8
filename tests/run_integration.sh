#!/usr/bin/env bash
# Runs the integration suites: tests/cli/test_*.sh (the cgpt binary end to
# end) and tests/ref/test_*.py (the engine against the NumPy reference).
# Each suite exits non-zero on failure. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0; failed=()
for t in tests/cli/test_*.sh tests/cli/test_*.py tests/ref/test_*.py tests/chat/test_*.py tests/tokenizer/test_*.sh tests/sample/test_*.py; do
  [ -e "$t" ] || continue
  echo "== $t"
  case "$t" in
    *.py) /usr/bin/python3 "$t" ;;
    *) bash "$t" build/cgpt && { echo "== $t (ASan+UBSan binary)"; bash "$t" build/asan/cgpt; } ;;
  esac
  if [ $? -eq 0 ]; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$t"); fi
done
for f in "${failed[@]}"; do echo "FAILED: $f"; done
echo "integration: $pass passed, $fail failed"
[ $fail -eq 0 ]
