"""A warm stage server: ``python -m flows.stages NAME`` without importing torch every time.

``dvc repro`` starts one process per stage, and each paid ≈2 s of interpreter start and
imports (torch, pandas, pydantic, dwave) before its work: 18 s of a 66 s default run.  Here
the first stage command starts one server process and runs its own stage itself (prepare needs
no torch) while the server imports torch and what the train stage needs, then listens on a
Unix socket; the rest (dwave, matplotlib, …) it imports one module at a time whenever no
command is waiting.  Every later stage command connects and hands over its arguments, working
directory, environment, start time and its stdin/stdout/stderr; the server forks a child that
acknowledges the request and runs the stage exactly as the command would have, writing to the
command's own streams, and the command exits with the child's status (without the
acknowledgement, e.g. the server stopped first, it runs the stage itself).  The server exits
after ``RBMDIFF_STAGE_SERVER_IDLE`` seconds (default 120) without a stage running.

What keeps this from ever running stale or foreign code:

- the socket's name is a hash of the Python executable and version, ``sys.path``, the
  import-relevant environment and the content of every ``.py`` file of ``flows`` and
  ``rbmdiff`` as the command would import them: an edited source file, another checkout,
  another venv or another thread setting gets another server;
- the socket lives in a private folder (mode 0700, owned by this user), refused otherwise;
- the server forks only while it runs no Python thread but its main one and has computed
  nothing: the native threads that exist by then are idle pools that the libraries re-create
  in a forked child (OpenBLAS, jemalloc, torch register fork handlers for this; it is what
  ``multiprocessing``'s default fork start relies on on Linux).

A command that dies (SIGKILL from a test, Ctrl-C) closes its connection; its child sees that,
interrupts itself (``finally`` blocks remove temporary files) and is killed 10 s later if still
running, so no stage outlives the command that started it.  Outputs are atomic renames, so an
interrupted stage leaves the previous outputs as they were.

``RBMDIFF_STAGE_SERVER=0`` turns the server off; when one cannot be reached or started the
command runs the stage in its own process, as before.  Only the standard library is imported
on the command's side.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

ENV_SWITCH = "RBMDIFF_STAGE_SERVER"
ENV_IDLE = "RBMDIFF_STAGE_SERVER_IDLE"
DEFAULT_IDLE_S = 120.0
START_TIMEOUT_S = 120.0  # waiting for a server that another command started
KILL_GRACE_S = 10.0
STALE_S = 86400.0  # files of servers gone this long are swept when a new server starts
# environment variables read at import time by the modules the server preloads
KEY_ENV_PREFIXES = ("PYTHON", "OMP_", "MKL_", "KMP_", "OPENBLAS_", "TORCH", "LD_", "CUDA",
                    "PREFECT_", "MPLBACKEND", "MPLCONFIGDIR", "XDG_", "HOME", "TQDM")
# What the server imports before it listens: the train stage (the one after prepare, which
# runs in the first command's own process without torch), so that it waits for torch only.
PRELOAD = ("torch", "numpy", "pandas", "pyarrow.parquet", "yaml", "pydantic", "rbmdiff.train",
           "rbmdiff.io", "flows.config", "flows.layout", "flows.artefacts", "flows.stages.train")
# ... and then, one module at a time whenever no command is waiting, in the order the later
# stages need them (a child forked earlier imports what it lacks itself).
PRELOAD_LATER = (
    "networkx", "minorminer", "dimod", "dwave.system", "flows.stages.embed",
    "dwave.samplers", "rbmdiff.samplers.sde", "rbmdiff.samplers.gibbs",
    "rbmdiff.samplers.anneal", "rbmdiff.samplers.qpu", "rbmdiff.metrics", "rbmdiff.exact",
    "rbmdiff.data", "flows.stages.sample", "matplotlib.figure", "flows.figures",
    "flows.stages.report", "flows.stages.prepare",
)
_LEN = struct.Struct("!I")
ACK = b"A"  # a forked child has the request: from here on the stage runs there


# -- the command's side ---------------------------------------------------------------------
def enabled() -> bool:
    return (os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")
            and hasattr(socket, "AF_UNIX") and hasattr(socket, "send_fds"))


def source_files(package: str) -> list[Path]:
    """The package's ``.py`` files, where this interpreter would import it from (not importing
    it); [] when it cannot be found."""
    from importlib.util import find_spec

    try:
        spec = find_spec(package)
    except (ImportError, ValueError):
        return []
    roots = list(spec.submodule_search_locations or []) if spec else []
    return sorted(p for root in roots for p in Path(root).rglob("*.py"))


def server_key() -> str:
    """Hash of everything the server's preloaded state depends on."""
    h = hashlib.sha256()
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith(KEY_ENV_PREFIXES))
    path = [os.path.abspath(p or os.curdir) for p in sys.path]  # '' (python -c) is the cwd
    h.update(json.dumps([sys.executable, sys.version, path, env]).encode())
    for package in ("flows", "rbmdiff"):
        for path in source_files(package):
            h.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def socket_dir() -> Path | None:
    """A folder only this user can enter, for the sockets; None if that cannot be had."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    folder = base / f"rbmdiff-stages-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = folder.lstat()
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o077 or not folder.is_dir():
        return None
    return folder


def socket_path() -> Path | None:
    folder = socket_dir()
    return folder / f"{server_key()[:32]}.sock" if folder else None


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def _start_server(path: Path) -> subprocess.Popen:
    """Start a server for ``path`` in its own session (Ctrl-C in a terminal and a test's
    killpg reach the commands, which take their children down; the idle server times out).
    Its output, if any (why it could not serve), goes to ``<socket>.log``."""
    log = open(path.with_suffix(".log"), "ab")  # handed to the server, closed here
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "flows.stages.warm", str(path)], stdin=subprocess.DEVNULL,
            stdout=log, stderr=log, start_new_session=True, close_fds=True,
        )
    finally:
        log.close()


def connect_or_start() -> socket.socket | None:
    """A connection to this code's server; None if there is none yet (the command then runs
    the stage itself).  With none running, start one and return None at once: it imports in
    the background while this first stage runs here, on the other core.  With one starting,
    wait for it (up to START_TIMEOUT_S)."""
    path = socket_path()
    if path is None or path.with_suffix(".failed").exists():  # it failed for this code: once
        return None
    sock = _connect(path)
    if sock is not None:
        return sock
    pidfile = path.with_suffix(".pid")
    if _claim(pidfile):  # none running or starting: start one, warm it in the background
        pidfile.write_text(str(_start_server(path).pid))
        with contextlib.suppress(OSError):
            _sweep(path.parent)
        return None
    deadline = time.monotonic() + START_TIMEOUT_S  # another command started one: wait
    while time.monotonic() < deadline and not path.with_suffix(".failed").exists():
        sock = _connect(path)
        if sock is not None:
            return sock
        if not _alive(pidfile) and _age(pidfile) > 5.0:
            return None  # it died (or its starter did, before writing the pid)
        time.sleep(0.05)
    return None


def _sweep(folder: Path, age_s: float = STALE_S) -> None:
    """Remove what servers killed outright left (socket, log, failure marker) for code
    versions untouched for ``age_s``; a live server's files are kept."""
    for item in folder.iterdir():
        if item.suffix in (".sock", ".log", ".failed", ".pid") and _age(item) > age_s:
            if not _alive(item.with_suffix(".pid")):
                item.unlink(missing_ok=True)


def _claim(pidfile: Path) -> bool:
    """Create ``pidfile`` exclusively (one command of several starting at once wins); a file
    left by a server that has exited is taken over."""
    for _ in range(2):
        try:
            os.close(os.open(pidfile, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            return True
        except FileExistsError:
            if _alive(pidfile) or _age(pidfile) < 5.0:
                return False  # running, or just claimed and its pid not yet written
            pidfile.unlink(missing_ok=True)
    return False


def _age(path: Path) -> float:
    """Seconds since ``path`` was last written (inf when it is missing)."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _alive(pidfile: Path) -> bool:
    """Whether the server process named in ``pidfile`` still runs."""
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    try:  # a zombie (exited, not yet reaped by the command that started it) does not count
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def run_in_server(argv: list[str], started: float) -> int | None:
    """Run ``python -m flows.stages ARGV`` in a forked child of the warm server.
    -> its exit status, or None when there is no server (run the stage here instead)."""
    if not enabled():
        return None
    sock = connect_or_start()
    if sock is None:
        return None
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                          "started": started}).encode()
    try:
        socket.send_fds(sock, [b"R"], [0, 1, 2])
        sock.sendall(_LEN.pack(len(request)) + request)
    except OSError:
        sock.close()
        return None  # the server went away (idle exit) between connect and send
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = [signal.signal(s, lambda signum, frame: os._exit(128 + signum)) for s in signals]
    if _recv_exact(sock, 1) != ACK:  # the server exited without taking the request
        sock.close()
        for s, handler in zip(signals, before, strict=True):
            signal.signal(s, handler)
        return None
    reply = _recv_exact(sock, 4)  # a signal now exits this command; its child follows
    if reply is None:
        print("python -m flows.stages: error: the stage process ended without an exit status "
              "(killed?); rerun, or set RBMDIFF_STAGE_SERVER=0 to run stages in-process",
              file=sys.stderr)
        return 1
    return struct.unpack("!i", reply)[0]


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


# -- the server's side ----------------------------------------------------------------------
def _preload(name: str, *, required: bool = True) -> bool:
    """Import ``name``; False if that left a Python thread running (one could hold a lock at
    a fork), and the server must stop.  A module that is not ``required`` may fail to import
    (an extra not installed, a broken plugin): noted in the log, and a stage that needs it
    imports it itself and reports the error."""
    import importlib

    try:
        importlib.import_module(name)
    except Exception as exc:
        if required:
            raise
        print(f"preloading {name} failed ({exc!r}); stages import it themselves",
              file=sys.stderr)
    if threading.active_count() != 1:
        print(f"stopping: {threading.enumerate()} run after importing {name}", file=sys.stderr)
        return False
    return True


def serve(path: Path, idle_s: float) -> int:
    import select

    if not all(_preload(name) for name in PRELOAD):
        return 1
    warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
    except OSError:  # taken: another server won the race, or a stale socket file
        if _connect(path) is not None:
            return 0
        path.unlink(missing_ok=True)
        listener.bind(str(path))
    listener.listen(16)
    ident = path.stat().st_ino
    children: set[int] = set()
    last_busy = time.monotonic()
    listener.settimeout(1.0)
    later, code = list(PRELOAD_LATER), 0
    while True:
        children -= {pid for pid in children if _reaped(pid)}
        if children:
            last_busy = time.monotonic()
        elif time.monotonic() - last_busy > idle_s or not _still_ours(path, ident):
            break
        if later and not select.select([listener], [], [], 0)[0]:  # nobody waiting: import
            if not _preload(later.pop(0), required=False):
                code = 1  # commands waiting now get no ACK and run their stage themselves
                break
            continue
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        try:
            _, fds, _, _ = socket.recv_fds(conn, 1, 3)
            size = _recv_exact(conn, _LEN.size)
            body = _recv_exact(conn, _LEN.unpack(size)[0]) if size else None
            if body is None or len(fds) != 3:
                raise OSError("incomplete request")
            request = json.loads(body)
        except (OSError, ValueError):
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            listener.close()
            native = sys.modules.get("rbmdiff.native")
            if native is not None:  # this server has computed nothing: OpenMP is still usable
                native.openmp_usable_after_fork()
            _child(conn, fds, request)  # never returns
        children.add(pid)
        for fd in fds:
            os.close(fd)
        conn.close()
        last_busy = time.monotonic()
    if _still_ours(path, ident):
        path.unlink(missing_ok=True)
    log = path.with_suffix(".log")
    if log.is_file() and log.stat().st_size == 0:
        log.unlink(missing_ok=True)
    return code


def _reaped(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid


def _still_ours(path: Path, ident: int) -> bool:
    try:
        return path.stat().st_ino == ident
    except OSError:
        return False


def _child(conn: socket.socket, fds: list[int], request: dict) -> None:
    """Become the stage command: its streams, folder, environment and arguments."""
    code = 1
    try:
        conn.sendall(ACK)
        os.setpgid(0, 0)  # its own group, so a kill of the group reaches all it may start
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdout.reconfigure(line_buffering=os.isatty(1))
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["python -m flows.stages", *request["argv"]]
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.Thread(target=_follow, args=(conn,), daemon=True).start()
        import flows.stages.__main__ as command

        command.START_WALL, command.WHERE = request["started"], "in a warm server's child"
        try:
            code = command.main(request["argv"])
        except SystemExit as exc:  # argparse's usage errors, --help
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except KeyboardInterrupt:
            code = 130
        except BaseException:  # as the command would: the traceback, status 1
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command exits once it has the status
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(struct.pack("!i", code))
        except (OSError, ValueError):
            pass
        os._exit(code)


def _follow(conn: socket.socket) -> None:
    """Interrupt the stage when its command goes away (the connection closes), then kill it if
    it has not stopped within KILL_GRACE_S."""
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(KILL_GRACE_S)
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m flows.stages.warm SOCKET (started by python -m flows.stages)",
              file=sys.stderr)
        return 2
    path = Path(args[0])
    try:
        idle_s = float(os.environ.get(ENV_IDLE, DEFAULT_IDLE_S))
    except ValueError:
        idle_s = DEFAULT_IDLE_S
    code = 1
    try:
        code = serve(path, idle_s)
    finally:
        if code != 0:  # commands stop trying this code's server; the reason is in the .log
            path.with_suffix(".failed").touch()
        pidfile = path.with_suffix(".pid")
        if pidfile.is_file() and pidfile.read_text().strip() == str(os.getpid()):
            pidfile.unlink(missing_ok=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
