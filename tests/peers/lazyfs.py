"""A FUSE pass-through filesystem that loses, at a simulated power cut, every write
that was not fsynced (in the spirit of LazyFS).

    lazyfs.py BACKING_DIR MOUNTPOINT --control SOCKET   mount (foreground)
    lazyfs.py --self-check                              prove the semantics below

Why FUSE: a power cut is simulated by a layer that knows which writes reached the
disk. The usual block-level tool, device-mapper's dm-flakey / dm-log-writes, is not
available on the machines this suite runs on; /dev/fuse is, and a FUSE file system
needs no kernel module of its own and no root beyond mounting.

What is buffered and what is not:

- Data writes and truncates of a regular file are kept in memory, as an overlay of
  4 KiB pages per file (plus the file's logical size and the lowest size it was
  truncated to). Reads merge the overlay over the backing file.
- fsync / fdatasync of a file writes that file's overlay into the backing file and
  fsyncs it. Nothing else does: close (FUSE flush / release) leaves the overlay in
  memory, as a kernel page cache would.
- Metadata operations (create, unlink, rename, mkdir, rmdir, chmod, chown, utimens,
  link, symlink) go straight to the backing directory: they are durable at once. A
  real file system may also lose a create or a rename that was not followed by an
  fsync of the directory; this layer does not simulate that.
- SQLite's `-shm` file (the WAL index) is passed through unbuffered: SQLite maps it
  with mmap, which on FUSE needs the kernel page cache, and SQLite rebuilds it from
  the WAL after a crash, so what it holds at a cut does not matter.
- Every other file is opened with direct_io, so the kernel keeps no page cache of it
  and every read comes here: after a cut the mounted view is exactly what was fsynced.
- Locks (fcntl, flock) are left to the kernel (local locks): correct for processes on
  this machine, which is all a test needs.

The control socket (a Unix stream socket) takes one command per line and answers one
line:

    cut      drop every unsynced overlay; "ok cut FILES BYTES" (files and bytes lost)
    status   "ok status FILES BYTES" (what a cut would drop now)

A test kills the programs writing to the mount before it cuts: a cut under a running
writer would be a cut that the writer survived, which no real power cut allows.

--self-check mounts a temporary directory, and checks that SQLite in WAL mode works
through the mount (from Python's sqlite3 module, in several processes), that a commit
made with synchronous=NORMAL by a process that then dies is lost at a cut, and that
one made with synchronous=FULL survives it. It exits 0 when all of that holds.
"""
import argparse
import errno
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

PAGE = 4096


def passthrough(path):
    """Files whose writes are never buffered (see the module docstring)."""
    return path.endswith("-shm")


class Node:
    """One backing file (by device and inode) and its unsynced overlay."""

    def __init__(self, fd, size, passthrough):
        self.fd = fd
        self.passthrough = passthrough
        self.handles = 0
        self.reset(size)

    def reset(self, size):
        self.dirty = False
        self.pages = {}
        self.size = size
        # Backing bytes at or past `floor` were truncated away in the overlay.
        self.floor = size

    def unsynced_bytes(self):
        return len(self.pages) * PAGE if self.dirty else 0


class LazyFS:
    use_ns = True

    def __init__(self, backing):
        self.root = os.path.realpath(backing)
        self.mutex = threading.RLock()
        self.nodes = {}  # (st_dev, st_ino) -> Node
        self.handles = {}  # fh -> (key, Node)
        self.next_fh = 1

    # ---- helpers --------------------------------------------------------------

    def real(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def node_for(self, path, fd=None):
        """The node of the file at `path`, opening its backing file when new. Returns
        (key, node); `fd`, when given, is an open O_RDWR descriptor for it."""
        st = os.fstat(fd) if fd is not None else os.stat(self.real(path))
        key = (st.st_dev, st.st_ino)
        node = self.nodes.get(key)
        if node is None:
            if fd is None:
                fd = self.open_backing(self.real(path))
            node = Node(fd, st.st_size, passthrough(path))
            self.nodes[key] = node
        elif fd is not None:
            os.close(fd)
        return key, node

    @staticmethod
    def open_backing(real):
        try:
            return os.open(real, os.O_RDWR | os.O_CLOEXEC)
        except PermissionError:
            return os.open(real, os.O_RDONLY | os.O_CLOEXEC)

    def forget(self, key):
        """Drops a node nobody holds open and whose file is gone or fully synced."""
        node = self.nodes.get(key)
        if node is None or node.handles > 0:
            return
        try:
            gone = os.fstat(node.fd).st_nlink == 0
        except OSError:
            gone = True
        if gone or not node.dirty:
            del self.nodes[key]
            os.close(node.fd)

    def base_page(self, node, index):
        """Page `index` as the backing file holds it, cut at the overlay's floor."""
        start = index * PAGE
        want = max(0, min(PAGE, node.floor - start))
        data = os.pread(node.fd, want, start) if want else b""
        return data + bytes(PAGE - len(data))

    def sync(self, node):
        if node.dirty:
            if os.fstat(node.fd).st_size > node.floor:
                os.ftruncate(node.fd, node.floor)
            for index in sorted(node.pages):
                start = index * PAGE
                if start >= node.size:
                    continue
                data = node.pages[index][: min(PAGE, node.size - start)]
                os.pwrite(node.fd, bytes(data), start)
            if os.fstat(node.fd).st_size != node.size:
                os.ftruncate(node.fd, node.size)
        os.fsync(node.fd)
        node.reset(os.fstat(node.fd).st_size)

    def truncate_node(self, node, length):
        if node.passthrough:
            os.ftruncate(node.fd, length)
            node.reset(length)
            return
        node.dirty = True
        node.size = length
        node.floor = min(node.floor, length)
        for index in [i for i in node.pages if i * PAGE >= length]:
            del node.pages[index]
        tail = length % PAGE
        page = node.pages.get(length // PAGE)
        if page is not None and tail:
            page[tail:] = bytes(PAGE - tail)

    def cut(self):
        with self.mutex:
            files = 0
            lost = 0
            for key in list(self.nodes):
                node = self.nodes[key]
                if node.dirty:
                    files += 1
                    lost += node.unsynced_bytes()
                    node.reset(os.fstat(node.fd).st_size)
                self.forget(key)
            return files, lost

    def status(self):
        with self.mutex:
            dirty = [n for n in self.nodes.values() if n.dirty]
            return len(dirty), sum(n.unsynced_bytes() for n in dirty)

    # ---- FUSE operations ------------------------------------------------------

    def init_with_config(self, conn_info, config):
        if config is not None:
            # The kernel asks for sizes every time: after a cut a file may be shorter.
            config.entry_timeout = 0.0
            config.attr_timeout = 0.0
            config.negative_timeout = 0.0

    def getattr(self, path, fh=None):
        with self.mutex:
            st = os.lstat(self.real(path))
            attrs = {
                k: getattr(st, k)
                for k in (
                    "st_mode",
                    "st_ino",
                    "st_nlink",
                    "st_uid",
                    "st_gid",
                    "st_size",
                    "st_blocks",
                    "st_atime_ns",
                    "st_mtime_ns",
                    "st_ctime_ns",
                )
            }
            attrs["st_atime"] = attrs.pop("st_atime_ns")
            attrs["st_mtime"] = attrs.pop("st_mtime_ns")
            attrs["st_ctime"] = attrs.pop("st_ctime_ns")
            attrs["st_blksize"] = PAGE
            node = self.nodes.get((st.st_dev, st.st_ino)) if stat.S_ISREG(st.st_mode) else None
            if node is not None and node.dirty:
                attrs["st_size"] = node.size
                attrs["st_blocks"] = (node.size + 511) // 512
            return attrs

    def access(self, path, amode):
        if not os.access(self.real(path), amode):
            raise OSError(errno.EACCES, "access")
        return 0

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self.real(path))

    def readlink(self, path):
        return os.readlink(self.real(path))

    def statfs(self, path):
        sv = os.statvfs(self.real(path))
        return {
            k: getattr(sv, k)
            for k in (
                "f_bavail",
                "f_bfree",
                "f_blocks",
                "f_bsize",
                "f_favail",
                "f_ffree",
                "f_files",
                "f_flag",
                "f_frsize",
                "f_namemax",
            )
        }

    def mkdir(self, path, mode):
        os.mkdir(self.real(path), mode)
        return 0

    def rmdir(self, path):
        os.rmdir(self.real(path))
        return 0

    def mknod(self, path, mode, dev):
        os.mknod(self.real(path), mode, dev)
        return 0

    def symlink(self, target, source):
        os.symlink(source, self.real(target))
        return 0

    def link(self, target, source):
        os.link(self.real(source), self.real(target))
        return 0

    def chmod(self, path, mode):
        os.chmod(self.real(path), mode)
        return 0

    def chown(self, path, uid, gid):
        os.lchown(self.real(path), uid, gid)
        return 0

    def utimens(self, path, times=None):
        if times is None:
            os.utime(self.real(path), follow_symlinks=False)
        else:
            os.utime(self.real(path), ns=tuple(times), follow_symlinks=False)
        return 0

    def unlink(self, path):
        with self.mutex:
            real = self.real(path)
            st = os.lstat(real)
            os.unlink(real)
            self.forget((st.st_dev, st.st_ino))
            return 0

    def rename(self, old, new):
        with self.mutex:
            try:
                replaced = os.lstat(self.real(new))
            except FileNotFoundError:
                replaced = None
            os.rename(self.real(old), self.real(new))
            if replaced is not None:
                self.forget((replaced.st_dev, replaced.st_ino))
            return 0

    def open_handle(self, path, key, node, fi):
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = (key, node)
        node.handles += 1
        fi.fh = fh
        # Page cache only where mmap needs it (see the module docstring).
        fi.direct_io = 0 if node.passthrough else 1
        fi.keep_cache = 0
        return 0

    def open(self, path, fi):
        with self.mutex:
            key, node = self.node_for(path)
            if fi.flags & os.O_TRUNC:
                self.truncate_node(node, 0)
            return self.open_handle(path, key, node, fi)

    def create(self, path, mode, fi):
        with self.mutex:
            real = self.real(path)
            try:
                fd = os.open(real, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            except FileExistsError:
                if fi.flags & os.O_EXCL:
                    raise
                return self.open(path, fi)
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            stale = self.nodes.pop(key, None)  # an inode number used again
            if stale is not None:
                os.close(stale.fd)
            self.nodes[key] = Node(fd, 0, passthrough(path))
            return self.open_handle(path, key, self.nodes[key], fi)

    def release(self, path, fi):
        with self.mutex:
            entry = self.handles.pop(fi.fh, None)
            if entry is not None:
                key, node = entry
                node.handles -= 1
                if self.nodes.get(key) is node:
                    self.forget(key)
                elif node.handles == 0:
                    os.close(node.fd)  # replaced by a newer file of the same inode number
            return 0

    def flush(self, path, fi):
        return 0  # close is not a sync

    def handle(self, path, fi):
        if fi is not None and fi.fh in self.handles:
            return self.handles[fi.fh][1]
        return self.node_for(path)[1]

    def read(self, path, size, offset, fi):
        with self.mutex:
            node = self.handle(path, fi)
            if not node.dirty:
                return os.pread(node.fd, size, offset)
            end = min(offset + size, node.size)
            if end <= offset:
                return b""
            out = bytearray()
            pos = offset
            while pos < end:
                index = pos // PAGE
                page = node.pages.get(index)
                if page is None:
                    page = self.base_page(node, index)
                start = pos - index * PAGE
                take = min(PAGE - start, end - pos)
                out += page[start : start + take]
                pos += take
            return bytes(out)

    def write(self, path, data, offset, fi):
        with self.mutex:
            node = self.handle(path, fi)
            if node.passthrough:
                return os.pwrite(node.fd, data, offset)
            node.dirty = True
            pos = 0
            while pos < len(data):
                at = offset + pos
                index = at // PAGE
                page = node.pages.get(index)
                if page is None:
                    page = bytearray(self.base_page(node, index))
                    node.pages[index] = page
                start = at - index * PAGE
                take = min(PAGE - start, len(data) - pos)
                page[start : start + take] = data[pos : pos + take]
                pos += take
            node.size = max(node.size, offset + len(data))
            return len(data)

    def truncate(self, path, length, fi=None):
        with self.mutex:
            self.truncate_node(self.handle(path, fi), length)
            return 0

    def fallocate(self, path, mode, offset, size, fi):
        raise OSError(errno.EOPNOTSUPP, "fallocate")

    def fsync(self, path, datasync, fi):
        with self.mutex:
            self.sync(self.handle(path, fi))
            return 0

    def fsyncdir(self, path, datasync, fi):
        fd = os.open(self.real(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return 0


def serve_control(fs, path):
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)

    def answer(conn):
        with conn, conn.makefile("rw") as f:
            for line in f:
                command = line.strip()
                if command == "cut":
                    files, lost = fs.cut()
                    print(f"lazyfs: cut: dropped {lost} unsynced bytes in {files} file(s)", file=sys.stderr, flush=True)
                    f.write(f"ok cut {files} {lost}\n")
                elif command == "status":
                    files, size = fs.status()
                    f.write(f"ok status {files} {size}\n")
                else:
                    f.write(f"error unknown command {command!r}\n")
                f.flush()

    def loop():
        while True:
            conn, _ = server.accept()
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def mount(backing, mountpoint, control):
    import mfusepy

    # mfusepy wraps our methods; subclassing Operations leaves the rest unset, so the
    # kernel keeps fcntl and flock locks itself.
    ops = type("LazyFSOps", (LazyFS, mfusepy.Operations), {})(backing)
    serve_control(ops, control)
    mfusepy.FUSE(
        ops,
        mountpoint,
        foreground=True,
        raw_fi=True,
        nothreads=False,
        fsname="lazyfs",
        default_permissions=True,
    )


# ---- self-check ---------------------------------------------------------------

WRITER = r"""
import os, sqlite3, sys
db, mode, value = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(db, isolation_level=None)
assert c.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
c.execute(f"PRAGMA synchronous={mode}")
c.execute("INSERT INTO t (v) VALUES (?)", (value,))
# A reader in another process sees the commit through the shared -shm.
os.write(1, b"committed\n")
sys.stdin.readline()
os._exit(0)  # die without closing: no checkpoint, like kill -9
"""


def control_command(path, command):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        return s.makefile().readline().strip()


def self_check():
    import sqlite3

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        backing = os.path.join(tmp, "backing")
        mnt = os.path.join(tmp, "mnt")
        sock = os.path.join(tmp, "control.sock")
        os.mkdir(backing)
        os.mkdir(mnt)
        fs = subprocess.Popen([sys.executable, os.path.abspath(__file__), backing, mnt, "--control", sock])
        try:
            deadline = time.monotonic() + 10
            while not (os.path.ismount(mnt) and os.path.exists(sock)):
                if time.monotonic() > deadline or fs.poll() is not None:
                    print("self-check: the mount did not come up", file=sys.stderr)
                    return 1
                time.sleep(0.05)
            db = os.path.join(mnt, "check.db")
            c = sqlite3.connect(db, isolation_level=None)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=FULL")
            c.execute("CREATE TABLE t (v TEXT)")
            c.execute("INSERT INTO t (v) VALUES ('base')")
            c.close()  # checkpoint and fsync: the base is durable
            for mode, survives in (("NORMAL", False), ("FULL", True)):
                writer = subprocess.Popen(
                    [sys.executable, "-c", WRITER, db, mode, mode.lower()],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert writer.stdout.readline().strip() == "committed"
                r = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                seen = [v for (v,) in r.execute("SELECT v FROM t")]
                r.close()
                writer.communicate("\n")  # let it die without closing the database
                answer = control_command(sock, "cut")
                r = sqlite3.connect(db, isolation_level=None)
                after = [v for (v,) in r.execute("SELECT v FROM t")]
                integrity = r.execute("PRAGMA integrity_check").fetchone()[0]
                r.close()
                kept = mode.lower() in after
                good = mode.lower() in seen and "base" in after and integrity == "ok" and kept == survives
                ok &= good
                print(
                    f"self-check: synchronous={mode}: another process saw the commit: {mode.lower() in seen}; "
                    f"{answer}; after the cut: {after}, integrity {integrity}: "
                    f"{'survived' if kept else 'lost'} ({'as expected' if good else 'WRONG'})"
                )
                # Clean slate for the next mode: the lost row is gone, keep only the base.
                c = sqlite3.connect(db, isolation_level=None)
                c.execute("PRAGMA synchronous=FULL")
                c.execute("DELETE FROM t WHERE v <> 'base'")
                c.close()
        finally:
            subprocess.run(["fusermount3", "-u", "-z", mnt], check=False)
            try:
                fs.wait(timeout=10)
            except subprocess.TimeoutExpired:
                fs.kill()
                fs.wait()
    print("self-check: ok" if ok else "self-check: FAILED")
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backing", nargs="?")
    parser.add_argument("mountpoint", nargs="?")
    parser.add_argument("--control", help="Unix socket for the cut command")
    parser.add_argument("--self-check", action="store_true")
    args = parser.parse_args()
    if args.self_check:
        sys.exit(self_check())
    if not (args.backing and args.mountpoint and args.control):
        parser.error("BACKING_DIR, MOUNTPOINT and --control are required")
    mount(args.backing, args.mountpoint, args.control)


if __name__ == "__main__":
    main()
