"""Fetch Debian packages into a cache with `apt-get download` and unpack them
with `dpkg-deb -x`.  Nothing is installed."""
import glob
import os
import shutil
import subprocess

from util import BuildError, sha256_file

ENV = {"LC_ALL": "C", "LANG": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def _run(cmd, cwd=None):
    return subprocess.run(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=False)


def _compare_newer(a, b):
    """True when Debian version a > b (dpkg --compare-versions)."""
    return _run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0


def deb_field(path, field):
    r = _run(["dpkg-deb", "-f", path, field])
    if r.returncode != 0:
        raise BuildError("cannot read %s of %s: %s" % (field, path, r.stderr.decode(errors="replace").strip()))
    return r.stdout.decode().strip()


def _cached(cache, pkg):
    """Newest .deb of pkg in the cache, or None."""
    best = None
    best_ver = None
    for path in sorted(glob.glob(os.path.join(cache, pkg + "_*.deb"))):
        if deb_field(path, "Package") != pkg:
            continue
        ver = deb_field(path, "Version")
        if best is None or _compare_newer(ver, best_ver):
            best, best_ver = path, ver
    return best


def _download(cache, pkg):
    r = _run(["apt-get", "download", pkg], cwd=cache)
    if r.returncode == 0:
        return True
    if os.geteuid() != 0:
        raise BuildError("apt-get download %s failed in %s; run `apt-get update` as root "
                         "(or `cd %s && apt-get download %s`) and retry" % (pkg, cache, cache, pkg))
    _run(["apt-get", "update"])
    return _run(["apt-get", "download", pkg], cwd=cache).returncode == 0


class Package:
    def __init__(self, name, deb, root):
        self.name = name
        self.deb = deb
        self.root = root  # unpacked tree
        self.version = deb_field(deb, "Version")
        self.sha256 = sha256_file(deb)

    def path(self, rel):
        return os.path.join(self.root, rel.lstrip("/"))

    def must(self, rel):
        p = self.path(rel)
        if not os.path.exists(p):
            raise BuildError("package %s %s lacks %s" % (self.name, self.version, rel))
        return p

    def copyright_text(self):
        p = self.path("usr/share/doc/%s/copyright" % self.name)
        if not os.path.exists(p):
            return ""
        with open(p, encoding="utf-8", errors="replace") as f:
            return f.read()


def fetch(cache, pkg, unpack_dir):
    os.makedirs(cache, exist_ok=True)
    deb = _cached(cache, pkg)
    if deb is None:
        if not shutil.which("apt-get"):
            raise BuildError("package %s not in cache %s and apt-get is missing" % (pkg, cache))
        if not _download(cache, pkg):
            raise BuildError("apt-get download %s failed (after apt-get update)" % pkg)
        deb = _cached(cache, pkg)
        if deb is None:
            raise BuildError("apt-get download %s left no %s_*.deb in %s" % (pkg, pkg, cache))
    root = os.path.join(unpack_dir, pkg)
    if os.path.isdir(root):
        shutil.rmtree(root)
    os.makedirs(root)
    r = _run(["dpkg-deb", "-x", deb, root])
    if r.returncode != 0:
        raise BuildError("dpkg-deb -x %s failed: %s" % (deb, r.stderr.decode(errors="replace").strip()))
    return Package(pkg, deb, root)
