# lib.sh - helpers the cgpt command-line test scripts share; source it after
# setting T (a scratch directory) and pass=0 fail=0.
#   ok / bad MSG       count a passed / failed check (bad prints FAIL: MSG)
#   expect_error DESC CMD...
#                      CMD exits 1 with exactly one stderr line starting
#                      "cgpt" and nothing on stdout

ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }

expect_error() {
  local desc=$1; shift
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  local lines; lines=$(wc -l <"$T/err")
  if [ $rc -ne 1 ]; then bad "$desc: exit $rc (want 1): $(head -c 300 "$T/err")"; return; fi
  if [ "$lines" -ne 1 ] || ! grep -q '^cgpt' "$T/err"; then
    bad "$desc: want one 'cgpt ...' line on stderr, got $lines: $(head -c 300 "$T/err")"; return
  fi
  [ -s "$T/out" ] && { bad "$desc: printed on stdout: $(head -c 200 "$T/out")"; return; }
  ok
}
