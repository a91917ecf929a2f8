"""Minimal reader for R lazy-load databases (*.rdb) holding character vectors
(r-cran-janeaustenr).  Each object is a 4-byte big-endian length followed by a
zlib stream of an R XDR serialization ("X\\n" header)."""
import struct
import zlib

from util import BuildError

STRSXP = 16
CHARSXP = 9


def _parse(buf, path):
    if buf[:2] != b"X\n":
        raise BuildError("%s: object is not XDR serialized (header %r)" % (path, buf[:2]))
    pos = 2
    version = struct.unpack(">i", buf[pos:pos + 4])[0]
    pos += 12
    if version == 3:
        n = struct.unpack(">i", buf[pos:pos + 4])[0]
        pos += 4 + n
    flags = struct.unpack(">I", buf[pos:pos + 4])[0]
    pos += 4
    if flags & 0xFF != STRSXP:
        return None
    count = struct.unpack(">i", buf[pos:pos + 4])[0]
    pos += 4
    out = []
    for _ in range(count):
        cflags, ln = struct.unpack(">Ii", buf[pos:pos + 8])
        pos += 8
        if cflags & 0xFF != CHARSXP:
            raise BuildError("%s: unexpected SEXP type %d in character vector" % (path, cflags & 0xFF))
        if ln < 0:
            out.append("")
            continue
        out.append(buf[pos:pos + ln].decode("utf-8", errors="replace"))
        pos += ln
    return out


def character_vectors(path):
    with open(path, "rb") as f:
        b = f.read()
    off = 0
    vecs = []
    while off < len(b):
        if off + 4 > len(b):
            raise BuildError("%s: truncated at offset %d" % (path, off))
        n = struct.unpack(">I", b[off:off + 4])[0]
        d = zlib.decompressobj()
        try:
            out = d.decompress(b[off + 4:])
        except zlib.error as e:
            raise BuildError("%s: bad zlib stream at offset %d: %s" % (path, off, e))
        if len(out) != n:
            raise BuildError("%s: object at %d inflates to %d bytes, header says %d" % (path, off, len(out), n))
        off = len(b) - len(d.unused_data)
        v = _parse(out, path)
        if v is not None:
            vecs.append(v)
    return vecs
