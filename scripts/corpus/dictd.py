"""Read dictd databases (*.index + *.dict.dz)."""
import gzip

from util import BuildError

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _num(s):
    n = 0
    for c in s:
        if c not in _B64:
            raise BuildError("bad dictd base64 number %r" % s)
        n = n * 64 + _B64[c]
    return n


def entries(index_path, dict_path):
    """[(headword, body)] in index order, skipping the 00database* entries."""
    with gzip.open(dict_path, "rb") as f:
        data = f.read()
    out = []
    with open(index_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            t = line.rstrip("\n").split("\t")
            if len(t) < 3:
                raise BuildError("%s:%d: unparsable dictd index line" % (index_path, lineno))
            if t[0].startswith("00database") or t[0].startswith("00-database"):
                continue
            off, ln = _num(t[1]), _num(t[2])
            if off + ln > len(data):
                raise BuildError("%s:%d: entry past end of %s" % (index_path, lineno, dict_path))
            out.append((t[0], data[off:off + ln].decode("utf-8", errors="replace")))
    return out
