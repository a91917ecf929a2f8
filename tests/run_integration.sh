#!/usr/bin/env bash
# Runs the integration suites, each a program that exits non-zero on
# failure:
#   tests/cli/test_*.sh      the cgpt binary end to end, plain and ASan+UBSan builds
#   tests/cli/test_*.py      chat / run / template / tokenize / perplexity end to end,
#                            the README's and docs/SERVER.md's examples (test_readme.py)
#   tests/ref/test_*.py      the engine against the independent NumPy reference
#   tests/chat/test_*.py     templates against real Jinja2
#   tests/sample/test_*.py   sampling distributions against NumPy
#   tests/tokenizer/test_*.sh  tokenizers against npm implementations
#   tests/train/test_*.py    corpus, BPE trainer, gradients vs PyTorch, MPI, train end to end
#   tests/serve/test_*       cgpt serve: openai SDK, SSE framing, hostile input, isolation,
#                            structured outputs and tool calls (test_tools.mjs)
#   tests/web/test_*         the page in chromium, its /api, SIGKILL mid-stream (nothing lost)
#   tests/safety/test_*      moderation: the labelled sets, /v1/moderations, blocking end to end
#   tests/hub/test_pull.py   cgpt pull against a mock hub, the library
#   tests/hub/test_serve_library.py  cgpt serve over the library: models on demand
# Python suites run on Debian's /usr/bin/python3 (numpy, jinja2).
# Ends with "integration: N passed, N failed".
set -u
cd "$(dirname "$0")/.."
# An empty model library: `cgpt serve` without -m offers the library, and
# the suites expect the built-in model alone unless they make their own.
CGPT_HOME=$(mktemp -d /tmp/cgpt-it-home.XXXXXX)
export CGPT_HOME
trap 'rm -rf "$CGPT_HOME"' EXIT
unset CGPT_MODEL
pass=0; fail=0; failed=()
suite() { # NAME CMD...
  local name=$1; shift
  echo "== $name"
  local t0=$SECONDS
  if timeout 1200 "$@"; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$name"); fi
  echo "== $name: $((SECONDS - t0)) s"
}
# npm packages (the openai client, tokenizer oracles) for the suites and the README's examples
scripts/install-node-deps.sh
for t in tests/cli/test_*.sh; do
  suite "$t" bash "$t" build/cgpt
  suite "$t (ASan+UBSan binary)" bash "$t" build/asan/cgpt
done
for t in tests/cli/test_*.py tests/ref/test_*.py tests/chat/test_*.py tests/sample/test_*.py; do
  [ -e "$t" ] && suite "$t" /usr/bin/python3 "$t"
done
# the newer architectures' commands under the sanitizers too (serve's batching)
suite "tests/cli/test_archs.py (ASan+UBSan binary)" /usr/bin/python3 tests/cli/test_archs.py \
  build/asan/cgpt build/tools
for t in tests/tokenizer/test_*.sh; do
  [ -e "$t" ] && suite "$t" bash "$t"
done
# Training (issue 4); the tiny corpus comes from `make corpus-tiny` (make test builds it).
if [ -f build/corpus-tiny/MANIFEST.json ]; then
  suite tests/train/test_corpus.py /usr/bin/python3 tests/train/test_corpus.py build/corpus-tiny
  suite tests/train/test_bpe_train.py /usr/bin/python3 tests/train/test_bpe_train.py build/cgpt
  suite tests/train/test_torch.py /usr/bin/python3 tests/train/test_torch.py build/tools
  suite "mpirun -np 2 disttest" mpirun --allow-run-as-root --oversubscribe -np 2 build/tools/disttest
  suite tests/train/test_train.py /usr/bin/python3 tests/train/test_train.py build build/corpus-tiny
  suite "tests/train/test_train.py (ASan+UBSan binary)" /usr/bin/python3 tests/train/test_train.py build/asan build/corpus-tiny
  scripts/install-node-deps.sh
  suite "tests/train/test_llamacpp.sh (trained checkpoints in llama.cpp)" bash tests/train/test_llamacpp.sh build/cgpt
  suite "tests/train/test_llamacpp.sh (the built-in model in llama.cpp)" bash tests/train/test_llamacpp.sh build/cgpt models/cgpt-mini.gguf
else
  fail=$((fail+1)); failed+=("training suites: build/corpus-tiny missing (make corpus-tiny)")
fi
# The newer architectures (issue 17) in the real llama.cpp, beside tests/ref.
suite "tests/model/test_llamacpp_archs.sh (the newer architectures in llama.cpp)" \
  bash tests/model/test_llamacpp_archs.sh build/cgpt
# The server (issue 5): the official openai npm client, curl-level SSE framing,
# hostile input, tenant isolation; all but isolation also on the ASan+UBSan binary.
scripts/install-node-deps.sh
for b in build/cgpt build/asan/cgpt; do
  suite "tests/serve/test_sdk.mjs ($b)" node tests/serve/test_sdk.mjs $b
  suite "tests/serve/test_sse.sh ($b)" bash tests/serve/test_sse.sh $b
done
# Structured outputs and tool calls (issue 18): the SDK's parse / runTools /
# stream helpers, ajv and zod as oracles; 1008 random generations per schema
# (64 under the sanitizers).
suite tests/serve/test_tools.mjs node tests/serve/test_tools.mjs build/cgpt 1008
suite "tests/serve/test_tools.mjs (ASan+UBSan binary)" node tests/serve/test_tools.mjs build/asan/cgpt 64
# Embeddings (issue 18): /v1/embeddings against the NumPy reference and the SDK.
for b in build/cgpt build/asan/cgpt; do
  suite "tests/serve/test_embeddings.py ($b)" /usr/bin/python3 tests/serve/test_embeddings.py $b
done
suite tests/serve/test_hostile.py /usr/bin/python3 tests/serve/test_hostile.py build/cgpt
suite "tests/serve/test_hostile.py (ASan+UBSan binary)" /usr/bin/python3 tests/serve/test_hostile.py build/asan/cgpt
suite tests/serve/test_isolation.py /usr/bin/python3 tests/serve/test_isolation.py build/cgpt
# Moderation (issue 14): the built-in classifier on the labelled sets.
suite tests/safety/test_eval.py /usr/bin/python3 tests/safety/test_eval.py build/cgpt
for b in build/cgpt build/asan/cgpt; do
  suite "tests/safety/test_moderation.py ($b)" /usr/bin/python3 tests/safety/test_moderation.py $b
  suite "tests/safety/test_guard.py ($b)" /usr/bin/python3 tests/safety/test_guard.py $b
done
# Models (issue 15): cgpt pull against a local mock of Hugging Face's HTTP
# interface (tests/hub/mock_hf.py), the library, -m NAME.
for b in build/cgpt build/asan/cgpt; do
  suite "tests/hub/test_pull.py ($b)" /usr/bin/python3 tests/hub/test_pull.py $b
  suite "tests/hub/test_serve_library.py ($b)" /usr/bin/python3 tests/hub/test_serve_library.py $b \
    $([ "$b" = build/asan/cgpt ] && echo --asan)
  suite "tests/model/test_split.py ($b)" /usr/bin/python3 tests/model/test_split.py $b
done
# The page (issue 13): chromium via playwright-core, the /api routes (plain and
# ASan+UBSan), and kills while replies stream.
suite tests/web/test_page.mjs node tests/web/test_page.mjs build/cgpt
for b in build/cgpt build/asan/cgpt; do
  suite "tests/web/test_api.py ($b)" /usr/bin/python3 tests/web/test_api.py $b
done
suite tests/web/test_crash.py /usr/bin/python3 tests/web/test_crash.py build/cgpt
suite "tests/web/test_crash.py (ASan+UBSan binary)" /usr/bin/python3 tests/web/test_crash.py build/asan/cgpt 5
for f in "${failed[@]}"; do echo "FAILED: $f"; done
echo "integration: $pass passed, $fail failed"
[ $fail -eq 0 ]
