#!/usr/bin/env bash
# End-to-end checks of `cgpt key add|list|revoke`: the key is printed once
# and never stored or listed in clear, names and limits are validated, the
# data directory and database are private (0700 / 0600), --data-dir falls
# back to $CGPT_DATA_DIR then $HOME/.cgpt, and every error is exit 1 with one
# "cgpt ..." line on stderr. The on-disk hash is checked against Python's
# hashlib BLAKE2b-256 (an implementation independent of libsodium).
# Usage: tests/cli/test_key.sh [CGPT_BINARY]   (default build/cgpt)
set -u
cd "$(dirname "$0")/../.."
CGPT=${1:-build/cgpt}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
. tests/cli/lib.sh

expect_ok() {
  local desc=$1; shift
  if "$@" >"$T/out" 2>"$T/err"; then ok; else bad "$desc: exit $?: $(head -c 300 "$T/err")"; fi
}
KEY_RE='^sk-cgpt-[A-Za-z0-9_-]{43}$'

D=$T/data/nested
day0=$(date -u +%Y-%m-%d)
expect_ok "add alice" "$CGPT" key add alice --rpm 60 --tpm 10000 --max-streams 4 --data-dir "$D"
K1=$(cat "$T/out")
[ "$(wc -l <"$T/out")" -eq 1 ] && ok || bad "add printed $(wc -l <"$T/out") lines on stdout"
[[ $K1 =~ $KEY_RE ]] && ok || bad "key '$K1' does not look like sk-cgpt-<43 base64url>"
grep -qi 'once' "$T/err" && ok || bad "add: no note that the key is shown once: $(cat "$T/err")"
grep -qF -- "$K1" "$T/err" && bad "the key was printed on stderr" || ok
expect_ok "add bob" "$CGPT" key add bob --data-dir "$D"
K2=$(cat "$T/out")
[[ $K2 =~ $KEY_RE ]] && [ "$K1" != "$K2" ] && ok || bad "second key '$K2' (first '$K1')"

# Private files.
[ "$(stat -c %a "$T/data")" = 700 ] && ok || bad "parent dir mode $(stat -c %a "$T/data")"
[ "$(stat -c %a "$D")" = 700 ] && ok || bad "data dir mode $(stat -c %a "$D")"
[ "$(stat -c %a "$D/cgpt.db")" = 600 ] && ok || bad "cgpt.db mode $(stat -c %a "$D/cgpt.db")"
# Made under a permissive umask too.
(umask 000; "$CGPT" key add u --data-dir "$T/umask0" >/dev/null 2>&1) || bad "add under umask 000"
[ "$(stat -c %a "$T/umask0")" = 700 ] && [ "$(stat -c %a "$T/umask0/cgpt.db")" = 600 ] && ok \
  || bad "umask 000: modes $(stat -c %a "$T/umask0") $(stat -c %a "$T/umask0/cgpt.db")"

# Never in clear on disk; the BLAKE2b-256 of the key is what is stored.
for k in "$K1" "$K2"; do
  if grep -qaF -- "${k#sk-cgpt-}" "$D"/*; then bad "key text found in $D"; else ok; fi
  h=$(/usr/bin/python3 -c 'import hashlib,sys; print(hashlib.blake2b(sys.argv[1].encode(), digest_size=32).hexdigest())' "$k")
  if od -An -v -tx1 "$D/cgpt.db" | tr -d ' \n' | grep -q "$h"; then ok; else bad "BLAKE2b-256 of the key not in cgpt.db"; fi
done

# list: names, UTC time, status, limits; no keys, no hashes.
expect_ok "list" "$CGPT" key list --data-dir "$D"
L=$T/list; cp "$T/out" "$L"
[ "$(wc -l <"$L")" -eq 3 ] && ok || bad "list: $(wc -l <"$L") lines (want header + 2)"
day1=$(date -u +%Y-%m-%d)
grep -Eq "^alice +(${day0}|${day1})T[0-9]{2}:[0-9]{2}:[0-9]{2}Z +active +60 +10000 +4\$" "$L" && ok \
  || bad "list: alice row wrong: $(grep alice "$L")"
grep -Eq '^bob +[0-9-]{10}T[0-9:]{8}Z +active +default +default +default$' "$L" && ok \
  || bad "list: bob row wrong: $(grep bob "$L")"
grep -qF -- "${K1#sk-cgpt-}" "$L" && bad "list shows a key" || ok
grep -Eq '[0-9a-f]{16}' "$L" && bad "list shows something like a hash" || ok
grep -q 'sk-cgpt' "$L" && bad "list shows a key prefix" || ok

# Duplicates, bad names, bad limits, bad usage.
expect_error "duplicate active name" "$CGPT" key add alice --data-dir "$D"
grep -q alice "$T/err" && ok || bad "duplicate: message does not name the key"
expect_error "empty name" "$CGPT" key add "" --data-dir "$D"
expect_error "name with a space" "$CGPT" key add "a b" --data-dir "$D"
expect_error "name with a slash" "$CGPT" key add "a/b" --data-dir "$D"
expect_error "name with a newline" "$CGPT" key add $'a\nb' --data-dir "$D"
expect_error "65-byte name" "$CGPT" key add "$(printf 'n%.0s' $(seq 65))" --data-dir "$D"
expect_ok "64-byte name" "$CGPT" key add "$(printf 'n%.0s' $(seq 64))" --data-dir "$D"
expect_error "negative rpm" "$CGPT" key add carol --rpm -1 --data-dir "$D"
expect_error "rpm not a number" "$CGPT" key add carol --rpm lots --data-dir "$D"
expect_error "tpm too big" "$CGPT" key add carol --tpm 99999999999 --data-dir "$D"
expect_error "--max-streams without value" "$CGPT" key add carol --data-dir "$D" --max-streams
expect_error "add without name" "$CGPT" key add --data-dir "$D"
expect_error "two names" "$CGPT" key add carol dave --data-dir "$D"
expect_error "unknown option" "$CGPT" key add carol --frob --data-dir "$D"
expect_error "limits on revoke" "$CGPT" key revoke alice --rpm 3 --data-dir "$D"
expect_error "name on list" "$CGPT" key list alice --data-dir "$D"
expect_error "no subcommand" "$CGPT" key
expect_error "unknown subcommand" "$CGPT" key rotate alice --data-dir "$D"
expect_error "--data-dir without value" "$CGPT" key list --data-dir
expect_ok "key --help" "$CGPT" key --help
grep -q 'cgpt key add' "$T/out" && ok || bad "key --help does not describe add"
"$CGPT" --help | grep -q '^  cgpt key ' && ok || bad "cgpt --help does not list key"
"$CGPT" key list --data-dir "$D" | grep -q carol && bad "a refused add left a key behind" || ok

# revoke.
expect_ok "revoke alice" "$CGPT" key revoke alice --data-dir "$D"
[ -s "$T/out" ] && bad "revoke printed on stdout" || ok
"$CGPT" key list --data-dir "$D" | grep -Eq '^alice +\S+ +revoked ' && ok || bad "alice not revoked in list"
expect_error "revoke twice" "$CGPT" key revoke alice --data-dir "$D"
expect_error "revoke unknown" "$CGPT" key revoke zed --data-dir "$D"
expect_ok "add alice again" "$CGPT" key add alice --data-dir "$D"
K3=$(cat "$T/out")
[ "$K3" != "$K1" ] && ok || bad "re-added alice got the old key"
n_alice=$("$CGPT" key list --data-dir "$D" | grep -c '^alice ')
[ "$n_alice" -eq 2 ] && ok || bad "list shows $n_alice alice rows (want revoked + active)"

# Default data directory: $CGPT_DATA_DIR, else $HOME/.cgpt.
expect_ok "CGPT_DATA_DIR" env CGPT_DATA_DIR="$T/envdir" "$CGPT" key add e1
[ -f "$T/envdir/cgpt.db" ] && ok || bad "CGPT_DATA_DIR not used"
expect_ok "HOME/.cgpt" env -u CGPT_DATA_DIR HOME="$T/home" "$CGPT" key add h1
[ -f "$T/home/.cgpt/cgpt.db" ] && ok || bad "\$HOME/.cgpt not used"
env CGPT_DATA_DIR="$T/envdir" HOME="$T/home" "$CGPT" key list | grep -q '^e1 ' && ok \
  || bad "CGPT_DATA_DIR does not take precedence over HOME"
env CGPT_DATA_DIR="$T/envdir" "$CGPT" key list --data-dir "$T/home/.cgpt" | grep -q '^h1 ' && ok \
  || bad "--data-dir does not take precedence over CGPT_DATA_DIR"
expect_error "no HOME, no CGPT_DATA_DIR" env -u CGPT_DATA_DIR -u HOME "$CGPT" key list

# Broken data directories.
: >"$T/afile"
expect_error "data dir is a file" "$CGPT" key list --data-dir "$T/afile"
mkdir -p "$T/junk"; head -c 4096 /dev/urandom >"$T/junk/cgpt.db"
expect_error "cgpt.db is not a database" "$CGPT" key list --data-dir "$T/junk"
grep -qF "$T/junk/cgpt.db" "$T/err" && ok || bad "message does not name the file: $(cat "$T/err")"
if [ "$(id -u)" -ne 0 ]; then
  mkdir -p "$T/ro"; chmod 500 "$T/ro"
  expect_error "unwritable parent" "$CGPT" key add x --data-dir "$T/ro/sub"
fi

echo "test_key: $pass passed, $fail failed"
[ $fail -eq 0 ]
