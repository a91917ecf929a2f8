#!/usr/bin/env bash
# The moderation data compiled into the library (src/safety/data.h): the
# policy and lexicon from data/safety/, and the npm word lists turned into
# lexicon lines (data/safety/words.mjs, packages pinned in its lock file).
#   scripts/build-safety-data.sh OUT_C
set -euo pipefail
cd "$(dirname "$0")/.."
out_c=$1
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "cgpt: building the moderation data needs node and npm: 'make deps' installs them" >&2
  exit 1
fi
if [ ! -d data/safety/node_modules/naughty-words ] ||
   [ data/safety/package-lock.json -nt data/safety/node_modules/.package-lock.json ]; then
  echo "build-safety-data: npm ci in data/safety/"
  npm ci --prefix data/safety --prefer-offline --no-audit --no-fund --loglevel=error
fi
mkdir -p "$(dirname "$out_c")"
words="$(dirname "$out_c")/safety_words.txt"
node data/safety/words.mjs data/safety/lexicon.txt > "$words.tmp" && mv "$words.tmp" "$words"
scripts/embed.sh "$out_c" safety_policy_txt=data/safety/policy.txt \
  safety_lexicon_txt=data/safety/lexicon.txt safety_words_txt="$words"
