"""Run one student notebook in a sandboxed kernel and record what every cell did.

Four layers, from the outside in:
- `run_many` (the grader's process): one worker process per notebook, `jobs` at a time, each in
  its own session so that a stuck worker and everything it started can be killed;
- `pool` (`python -m autograder.sandbox pool`, one per job slot and batch): imports nbclient,
  ipykernel and torch once, then forks a fresh worker for each notebook (it never runs or reads
  a notebook itself), so a notebook no longer pays for a Python and its imports twice;
- `worker` (`python -m autograder.sandbox run IN OUT`, or forked by the pool): forks the
  kernel-to-be first, makes a throwaway folder, starts the kernel there, runs the cells one by
  one with a per-cell timeout and a total time budget, polices the number of processes, and
  writes the executed notebook and a summary as JSON;
- `kernel` (`python -m autograder.sandbox kernel -f CONNECTION`, or the forked child): the
  kernel's launcher. It caps
  memory (RLIMIT_AS), file size (RLIMIT_FSIZE) and processes (RLIMIT_NPROC; as root it first
  becomes an unprivileged user of its own, so the cap is per notebook and the grading files are
  out of reach), forbids writing outside the throwaway folder (Linux Landlock, when the kernel
  has it), then becomes an ordinary IPython kernel with the course's guard loaded (GUARD below).

Scoring happens elsewhere (by errors only); this module only records, for each cell, whether it
ran, its outputs, and for a cell that did not finish, why.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import hmac
import json
import os
import shutil
import signal
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ENV_PREFIX = "BUILDGPT_SANDBOX_"
WORKER_ATTEMPTS = 3  # runs of a notebook whose worker dies without writing its record
BASE_UID = 61000  # as root, notebook slot k runs as uid BASE_UID + k (no such user needs to exist)
# Set to Limits.threads for every kernel: the BLAS libraries read the first four when torch is
# imported, the chapters' buildgpt.threads.set_threads() reads the last (it would follow the load).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TORCH_NUM_THREADS", "BUILDGPT_THREADS")


@dataclass
class Limits:
    cell_timeout: float = 600.0  # seconds a cell may run
    budget: float = 1800.0  # seconds the whole notebook may run
    memory_mb: int = 4096  # address space of the kernel process
    max_procs: int = 32  # processes the notebook may start (the kernel included)
    file_mb: int = 512  # largest file the notebook may write
    threads: int = 1  # torch / BLAS threads per kernel (one kernel per core)


# ----------------------------------------------------------------------------------------
# The guard, loaded into every kernel before the first cell (an IPython start-up file).
# `restore()` runs before every test cell: whatever an answer cell patched in builtins, torch,
# math, ... is put back, and the next cell runs with `==` in asserts checked against objects that
# claim to equal everything and with tensor subclasses' __torch_function__ switched off.

GUARD = r'''
def _buildgpt_install_guard():
    import ast, builtins, gc, hashlib, hmac, os, sys, threading, types
    import math, operator, functools, itertools, collections, random, re, time, copy
    import torch, torch.nn, torch.nn.functional, torch.testing, torch.linalg
    try:
        import numpy
    except ImportError:
        numpy = None
    ip = get_ipython()
    sentinel = object()
    key_file = os.path.join(os.environ["HOME"], ".guard-key")  # the worker's secret: read, then gone
    with open(key_file, "rb") as f:
        guard_key = f.read()
    os.unlink(key_file)

    def says_yes(x, op):
        try:
            r = op(x, sentinel)
        except Exception:
            return False
        return r is True

    def eq(a, b):
        result = a == b
        if result is True and (says_yes(a, operator.eq) or says_yes(b, operator.eq)):
            raise AssertionError("an object that says it equals everything was compared; "
                                 "return real values (tensors, numbers, lists), not look-alikes")
        return result

    def ne(a, b):
        result = a != b
        if result is True and (says_yes(a, operator.ne) or says_yes(b, operator.ne)):
            raise AssertionError("an object that says it differs from everything was compared; "
                                 "return real values (tensors, numbers, lists), not look-alikes")
        return result

    builtins.__buildgpt_eq__ = eq
    builtins.__buildgpt_ne__ = ne
    state = {"test": False}

    class Strict(ast.NodeTransformer):
        """In test cells: `a == b` inside an assert becomes __buildgpt_eq__(a, b); the cell body runs
        with tensor subclasses' __torch_function__ off."""

        def visit_Assert(self, node):
            node.test = Compare().visit(node.test)
            return node

        def visit_Module(self, node):
            self.generic_visit(node)
            if not state["test"] or not node.body:
                return node
            state["test"] = False
            ctx = ast.parse("__buildgpt_no_torch_function__()").body[0].value
            wrapped = ast.With(items=[ast.withitem(context_expr=ctx)], body=node.body)
            state["code"] = compile(ast.fix_missing_locations(ast.Module(body=[wrapped], type_ignores=[])),
                                    "<test cell>", "exec")
            node.body = ast.parse("__buildgpt_run_test__()").body
            return ast.fix_missing_locations(node)

    class Compare(ast.NodeTransformer):
        def visit_Compare(self, node):
            self.generic_visit(node)
            if len(node.ops) == 1 and isinstance(node.ops[0], (ast.Eq, ast.NotEq)):
                name = "__buildgpt_eq__" if isinstance(node.ops[0], ast.Eq) else "__buildgpt_ne__"
                call = ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=[node.left, node.comparators[0]], keywords=[])
                return ast.copy_location(call, node)
            return node

    builtins.__buildgpt_no_torch_function__ = torch._C.DisableTorchFunctionSubclass

    def run_test():
        """A test cell runs in a copy of the notebook's namespace: what the student's code rebinds
        while the test runs (the test's own helpers) is not what the test sees; the test's own
        definitions are copied back afterwards."""
        code = state.pop("code")
        ns = dict(ip.user_ns)
        before = dict(ns)
        try:
            exec(code, ns)
        finally:
            for k, v in ns.items():
                if before.get(k, sentinel) is not v:
                    ip.user_ns[k] = v

    builtins.__buildgpt_run_test__ = run_test
    transformer = Strict()
    ip.ast_transformers.append(transformer)

    modules = [builtins, torch, torch.nn, torch.nn.functional, torch.testing, torch.linalg, math, operator,
               functools, itertools, collections, random, re, time, copy]
    if numpy is not None:
        modules.append(numpy)
    classes = [torch.Tensor, torch.nn.Module, torch.nn.Linear, torch.nn.Embedding, torch.nn.Parameter]
    saved_modules = {m: dict(vars(m)) for m in modules}
    saved_classes = {c: dict(vars(c)) for c in classes}
    saved_sys_modules = {m.__name__: m for m in modules}
    saved_hooks = (ip.custom_exceptions, ip.CustomTB, ip.showtraceback, ip.run_cell, sys.excepthook,
                   list(ip.ast_transformers), list(ip.input_transformers_post))
    saved_cleanup = list(ip.input_transformers_cleanup)
    saved_parts = (ip.input_transformer_manager, ip.compile)
    saved_events = {k: list(v) for k, v in ip.events.callbacks.items()}
    code_kinds = (types.FunctionType, staticmethod, classmethod, property)
    # The machinery that turns a cell into code and runs it: its methods, on classes and instances
    machine_classes = {c for o in (ip, ip.kernel, ip.input_transformer_manager, ip.compile, transformer)
                       for c in type(o).__mro__ if c is not object}
    saved_class_hooks = {c: {k: v for k, v in vars(c).items() if isinstance(v, code_kinds)} for c in machine_classes}
    instances = (ip, ip.kernel, ip.input_transformer_manager, ip.compile, transformer)
    hook_names = {"showtraceback", "run_cell", "run_cell_async", "run_ast_nodes", "run_code", "transform_cell",
                  "transform_ast", "should_run_async", "do_execute", "execute_request", "do_token_transforms",
                  "do_one_token_transform", "ast_parse", "cache", "visit", "visit_Module", "generic_visit",
                  "visit_Assert", "check_complete"}
    saved_instance = {id(o): {k: v for k, v in vars(o).items() if k in hook_names} for o in instances}
    baseline_threads = {t.ident for t in threading.enumerate()}

    def restore(test=True, nonce=None):
        changed = []
        for module, saved in saved_modules.items():
            now = vars(module)
            for key, value in saved.items():
                if now.get(key, sentinel) is not value:
                    if module is builtins and key in ("input", "raw_input", "getpass"):
                        continue  # the kernel sets these for every request
                    try:
                        setattr(module, key, value)
                        changed.append(f"{module.__name__}.{key}")
                    except Exception:
                        pass
            if module is builtins:
                for key in [k for k in now if k not in saved]:
                    if key != "_":
                        del now[key]
                        changed.append(f"builtins.{key}")
        for cls, saved in saved_classes.items():
            now = vars(cls)
            for key, value in saved.items():
                if now.get(key, sentinel) is not value:
                    setattr(cls, key, value)
                    changed.append(f"{cls.__name__}.{key}")
            for key in [k for k in now if k not in saved]:
                delattr(cls, key)
                changed.append(f"{cls.__name__}.{key}")
        for name, module in saved_sys_modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                changed.append(f"sys.modules[{name!r}]")
        custom, custom_tb, showtb, run_cell, excepthook, transformers, post = saved_hooks
        ip.custom_exceptions, ip.CustomTB = custom, custom_tb
        for obj in instances:
            saved = saved_instance[id(obj)]
            for name, value in list(vars(obj).items()):
                if name in hook_names and saved.get(name, sentinel) is not value:
                    if name in saved:
                        setattr(obj, name, saved[name])
                    else:
                        delattr(obj, name)
                    changed.append(f"{type(obj).__name__}.{name}")
        for cls, saved in saved_class_hooks.items():
            for name, value in saved.items():
                if vars(cls).get(name) is not value:
                    setattr(cls, name, value)
                    changed.append(f"{cls.__name__}.{name}")
            for name in [k for k, v in vars(cls).items() if isinstance(v, code_kinds) and k not in saved]:
                delattr(cls, name)
                changed.append(f"{cls.__name__}.{name}")
        if (ip.input_transformer_manager, ip.compile) != saved_parts:
            ip.input_transformer_manager, ip.compile = saved_parts
            changed.append("IPython's cell compiler")
        if ip.input_transformers_cleanup != saved_cleanup:
            changed.append("IPython input transformers")
        ip.input_transformers_cleanup[:] = saved_cleanup
        if ip.input_transformers_post != post:
            changed.append("IPython input transformers")
        if ip.ast_transformers != transformers:
            changed.append("IPython AST transformers")
        for k in list(ip.events.callbacks):  # matplotlib's inline backend adds its own: kept
            now = ip.events.callbacks[k]
            foreign = [f for f in now if f not in saved_events.get(k, []) and not
                       str(getattr(f, "__module__", "") or "").startswith(("matplotlib", "IPython", "ipykernel"))]
            if foreign:
                changed.append(f"IPython {k} callbacks")
                now[:] = [f for f in now if f not in foreign]
        ip.ast_transformers[:] = transformers
        ip.input_transformers_post[:] = post
        sys.settrace(None)
        sys.setprofile(None)
        threading.settrace(None)
        threading.setprofile(None)
        for name in ("__buildgpt_eq__", "__buildgpt_ne__", "__buildgpt_no_torch_function__", "__buildgpt_run_test__"):
            ip.user_ns.pop(name, None)
        state["test"] = test
        extra = [t.name for t in threading.enumerate() if t.ident not in baseline_threads and t.is_alive()]
        if nonce is None:
            return changed, extra
        return changed, extra, hmac.new(guard_key, nonce.encode(), hashlib.sha256).hexdigest()

    guard = types.ModuleType("_buildgpt_guard")
    guard.restore = restore
    sys.modules["_buildgpt_guard"] = guard


_buildgpt_install_guard()
del _buildgpt_install_guard
'''

# What the worker runs before each test cell (not part of the notebook).
# ... and after it, quietly: what a test cell itself patched and put back is not the student's doing.
SETTLE = "__import__('sys').modules['_buildgpt_guard'].restore(False)"
# The real guard answers a fresh nonce with an HMAC under a key the notebook never saw, so a guard
# the notebook replaced (or a cell it kept from running) is found out.
# ... and once before the first cell, to know the kernel started with the guard in place (a kernel
# that cannot start or load the guard is the grader's failure, never the student's 0).
STARTUP = ("import sys as _s\n"
           "print('BUILDGPT-GUARD', repr(_s.modules['_buildgpt_guard'].restore(False, nonce={nonce!r})))\n"
           "del _s")
RESTORE = ("import sys as _s\n"
           "_g = _s.modules['_buildgpt_guard'].restore(nonce={nonce!r})\n"
           "print('BUILDGPT-GUARD', repr(_g))\n"
           "del _s, _g")


# ----------------------------------------------------------------------------------------
# The kernel's launcher


def landlock_abi() -> int:
    """The Landlock ABI version of this Linux; 0 when it has none (then files are not fenced)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        return max(0, libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1)))
    except (OSError, AttributeError):
        return 0


READ_FILE, READ_DIR = 1 << 2, 1 << 3
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1


def readable_paths() -> list[str]:
    """What a kernel may read: the system, the Python installation and its packages, and of the
    course only buildgpt/ and datasets/ (never solutions/, autograder/ with its chapter_tests.json,
    or the grading folder)."""
    import sysconfig

    paths = ["/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev", "/opt", "/run"]
    paths += [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    paths += [v for k, v in sysconfig.get_paths().items() if k in ("stdlib", "platstdlib", "purelib", "platlib")]
    course = Path(__file__).resolve().parent.parent
    paths += [str(course / "buildgpt"), str(course / "datasets")]
    # Folders of packages on sys.path from elsewhere (a venv whose .pth adds another venv's
    # site-packages); never the course itself or a folder above it, solutions/ or autograder/.
    closed = [course / "solutions", course / "autograder"]
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        path = Path(entry).resolve()
        if path == course or path in course.parents or any(c == path or c in path.parents for c in closed):
            continue
        paths.append(str(path))
    return list(dict.fromkeys(paths))


def _landlock(writable: list[str], readable: list[str] | None = None) -> str:
    """Forbid writing anywhere but under `writable`, reading anywhere but under `readable` and
    `writable`, and signalling or connecting to (abstract Unix sockets)
    any process outside this kernel's own tree; return '' or why not (or what could not be done)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))  # landlock_create_ruleset: ABI version
    if abi < 1:
        return "this Linux has no Landlock"
    write = 0
    for bit in (1, 4, 5, 6, 7, 8, 9, 10, 11, 12):  # write file, remove dir/file, make char/dir/reg/sock/fifo/block/sym
        write |= 1 << bit
    if abi >= 2:
        write |= 1 << 13  # refer (rename across folders)
    if abi >= 3:
        write |= 1 << 14  # truncate
    read = READ_FILE | READ_DIR if readable is not None else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = (ctypes.c_uint64 * 3)(write | read, 0, scoped)
    fd = libc.syscall(444, ctypes.byref(attr), ctypes.c_size_t(24 if abi >= 6 else 8), ctypes.c_uint32(0))
    if fd < 0:
        return "Landlock refused a rule set"

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    def allow(path, access):
        try:
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return
        if not os.path.isdir(path):
            access &= (1 << 1) | READ_FILE | ((1 << 14) if abi >= 3 else 0)  # what a rule on a file may hold
        rule = PathBeneath(access, pfd)
        libc.syscall(445, ctypes.c_int(fd), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0))
        os.close(pfd)

    for path in readable or []:
        allow(path, READ_FILE | READ_DIR)
    for path in writable:
        allow(path, write | read)
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS, required for an unprivileged restrict_self
    if libc.syscall(446, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
        return "Landlock could not be switched on"
    os.close(fd)
    if not scoped:
        return f"this Linux's Landlock (ABI {abi}) cannot stop signals; student code could signal other processes of its user"
    return ""


def _drop_capabilities() -> None:
    """A kernel that must stay root (its Python is in a folder only root can read): no capabilities,
    now or after an exec, so root's powers (kill anyone, ptrace, mount, read any file) are gone."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(28, 0x2F, 0, 0, 0)  # PR_SET_SECUREBITS: no root magic on exec, no keeping caps, locked
    for cap in range(64):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP, until the kernel knows no more
            break

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    libc.capset(ctypes.byref(Header(0x20080522, 0)), ctypes.byref((Data * 2)()))


def user_tasks(uid: int) -> int:
    """Processes and threads of `uid` now (RLIMIT_NPROC counts both)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                status = Path(entry.path, "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if int(fields.get("Uid", "-1").split()[0]) == uid:
                count += int(fields.get("Threads", "1").strip())
    return count


def kernel(argv: list[str], in_process: bool = False) -> None:
    """Fence this process in, then become the IPython kernel: by exec (a fresh Python) or, in a
    process forked from a worker that has imported ipykernel and torch already, in this process."""
    import resource

    env = os.environ
    work = env[ENV_PREFIX + "WORKDIR"]
    memory = int(env.get(ENV_PREFIX + "MEMORY_MB", "0"))
    procs = int(env.get(ENV_PREFIX + "PROCS", "0"))
    file_mb = int(env.get(ENV_PREFIX + "FILE_MB", "0"))
    uid = int(env.get(ENV_PREFIX + "UID", "-1"))
    notes = list(_process_notes)
    if file_mb:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb << 20, file_mb << 20))
    if uid >= 0 and os.geteuid() == 0:
        conn = argv[argv.index("-f") + 1] if "-f" in argv else None
        if conn:
            os.chown(conn, uid, uid)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if procs:
        # As root each notebook is a user of its own, so the cap is the notebook's own; otherwise
        # the count is shared with everything else the user runs, so the cap sits above it.
        limit = procs * 8 if uid >= 0 else user_tasks(os.getuid()) + procs * 16
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
    conn = argv[argv.index("-f") + 1] if "-f" in argv else None
    why = _landlock([work, "/dev/null"], readable_paths() + ([conn] if conn else []))
    if why:
        notes.append(f"sandbox: {why}")
    if os.geteuid() == 0:  # no user of its own to become (see worker): root without root's powers
        _drop_capabilities()
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory << 20, memory << 20))
    Path(work, "sandbox-notes.txt").write_text("\n".join(notes))
    if not in_process:
        os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *argv])
    from ipykernel.kernelapp import IPKernelApp

    sys.argv = [sys.executable, "-m", "ipykernel_launcher", *argv]  # what `ps` and the kernel itself see
    IPKernelApp.launch_instance(argv=list(argv))


# ----------------------------------------------------------------------------------------
# A kernel forked, not started: the worker's process has imported ipykernel and torch (in a
# grading batch, once per job slot: see `pool` below), so a kernel forked from it starts in a
# fraction of a second instead of importing them again. The fork is made before the worker
# starts any thread or reads anything but its own notebook; the child then waits for the launch
# (its connection file, environment and folder) and fences itself in exactly as a started kernel
# does (`kernel` above) before it becomes the kernel.


def _fork_kernel() -> tuple[int, int]:
    """Fork the kernel-to-be; return (its pid, the pipe to send it the launch on)."""
    read_fd, write_fd = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid == 0:
        os.close(write_fd)
        _kernel_child(read_fd)  # never returns
    os.close(read_fd)
    return pid, write_fd


def _kernel_child(read_fd: int) -> None:
    import traceback

    code = 1
    try:
        os.setsid()  # as a started kernel: a session of its own, so that an interrupt reaches it alone
        _enter_own_pid_namespace()  # from here on this is the kernel (pid 2 of its namespace, where Linux allows)
        chunks = []
        while chunk := os.read(read_fd, 1 << 16):
            chunks.append(chunk)
        if not chunks:  # the worker ended without starting its kernel
            os._exit(0)
        launch = json.loads(b"".join(chunks))
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.closerange(3, 1 << 16)  # nothing of the worker's: pipes, log, sockets
        os.environ.clear()
        os.environ.update(launch["env"])
        os.chdir(launch["cwd"])
        sys.path[0] = launch["cwd"]  # as `python -m ipykernel_launcher` started in the kernel's folder
        sys.dont_write_bytecode = True
        tempfile.tempdir = None  # TMPDIR is the kernel's own folder now
        import random

        random.seed()  # not the same random numbers in every kernel of the batch
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        argv = launch["argv"]
        argv = argv[argv.index("kernel") + 1:]
        # ipykernel read JPY_PARENT_PID when imported (in the pool): say it again. Not in a namespace of
        # its own, where the parent is pid 1 (which ipykernel takes for "the parent has gone"): there
        # the kernel ends with its stand-in, which ends with the worker.
        if _namespaced:
            os.environ.pop("JPY_PARENT_PID", None)
        elif os.environ.get("JPY_PARENT_PID"):
            argv.append(f"--IPKernelApp.parent_handle={int(os.environ['JPY_PARENT_PID'])}")
        kernel(argv, in_process=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    except BaseException:  # noqa: BLE001 - the worker sees a dead kernel and says so
        traceback.print_exc()
    finally:
        _exit_now(code)


# Other processes: the kernel runs in a PID namespace of its own, with a /proc of its own in a mount
# namespace of its own, so that listing /proc shows the kernel and what it started, never the
# grader, classmates' kernels or anything else on the machine (their command lines name the grading
# folder and whatever else they were started with). The forked child makes the namespaces (an
# ordinary user needs a user namespace for that, in which it keeps its own uid and gid) and stays
# behind as the kernel's stand-in: the worker sees it as the kernel; it passes the interrupt on,
# ends the kernel when asked to end, and ends as the kernel ends. Inside, pid 1 is a small init
# that mounts the /proc, reaps orphans and, when it ends, ends everything in the namespace; the
# kernel is its child. Where Linux refuses, the kernel runs as before and the report says so.

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 1 << 14, 1 << 18
PR_SET_PDEATHSIG = 1
_process_notes: list[str] = []  # what the kernel's launcher adds to the record's notes
_namespaced = False  # whether this kernel runs in a PID namespace of its own


def _enter_own_pid_namespace() -> None:
    """Put this forked kernel-to-be in PID and mount namespaces of its own: return in the kernel
    (pid 2 of the namespace), or, when Linux refuses, in this same process, with a note."""
    import ctypes

    global _namespaced
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid, parent = os.geteuid(), os.getegid(), os.getppid()
    flags = CLONE_NEWNS | CLONE_NEWPID | (CLONE_NEWUSER if uid != 0 else 0)
    why = ""
    if libc.unshare(ctypes.c_int(flags)) != 0:
        why = f"unshare: {os.strerror(ctypes.get_errno())}"
    elif uid != 0:  # keep the same uid and gid inside the user namespace
        try:
            Path("/proc/self/setgroups").write_text("deny")
            Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
            Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
        except OSError as error:
            why = f"the user namespace's ids: {error.strerror}"
    if why:
        _process_notes.append("sandbox: this Linux gave the kernel no process namespace of its own "
                              f"({why}); student code could list other processes and read their command lines")
        return
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the worker gone, the stand-in goes, and so on inward
    if os.getppid() != parent:
        os._exit(1)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    init = os.fork()
    if init:
        _stand_in(init, signal.SIGKILL)  # never returns
    os.setpgid(0, 0)  # a group of its own: what the worker sends the stand-in's group reaches the stand-in alone
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # A /proc of this namespace, not seen outside it (the mounts of this namespace made private first)
    if libc.mount(None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None) != 0:
        why = f"making its mounts private: {os.strerror(ctypes.get_errno())}"
    elif libc.mount(b"proc", b"/proc", b"proc", ctypes.c_ulong(MS_NOSUID | MS_NODEV | MS_NOEXEC), None) != 0:
        why = f"mounting its /proc: {os.strerror(ctypes.get_errno())}"
    if why:
        _process_notes.append(f"sandbox: the kernel could not have a /proc of its own ({why}); "
                              "student code could list other processes and read their command lines")
    kernel_pid = os.fork()
    if kernel_pid:
        _stand_in(kernel_pid, signal.SIGKILL, reap_all=True)  # pid 1: never returns
    os.setpgid(0, 0)  # a group of its own, as a started kernel's: the interrupt reaches it and what it started
    if uid != 0:  # root in its user namespace: no more (it could unmount that /proc)
        _drop_capabilities()
    _namespaced = True


def _stand_in(pid: int, end_with: int, reap_all: bool = False) -> None:
    """Wait for `pid` (the leader of a process group of its own), then end with its exit status.
    An interrupt is passed on to its group, once; SIGTERM, SIGHUP or SIGQUIT end it (with
    `end_with`: the first process of a PID namespace takes from outside only the signals it
    handles, and SIGKILL). As pid 1 (`reap_all`), reap every orphan too, and end with 128 + the
    signal that killed `pid`."""
    try:
        os.setpgid(pid, pid)  # as the child does itself: whichever comes first
    except OSError:
        pass

    def forward(signum, frame):
        try:
            os.killpg(pid, signal.SIGINT if signum == signal.SIGINT else end_with)
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    os.closerange(0, 1 << 16)
    while True:
        try:
            done, status = os.waitpid(-1 if reap_all else pid, 0)
        except ChildProcessError:
            os._exit(1)
        if done == pid:
            break
    code = os.waitstatus_to_exitcode(status)
    if code < 0 and not reap_all:  # killed: so is its stand-in, by the same signal
        try:
            signal.signal(-code, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), -code)
    os._exit(code & 0xFF if code >= 0 else 128 - code)


def _exit_now(code: int) -> None:
    """Flush stdout and stderr, then end this forked process at once (no atexit, nothing of the parent's)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


class _ForkedProcess:
    """What jupyter_client keeps of a kernel it started (a Popen), for a forked kernel."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already (psutil's wait in _kill_all)
                self.returncode = -signal.SIGKILL
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=None):
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, signum):
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)


def _forked_kernel_manager(child: tuple[int, int] | None):
    """A KernelManager whose first launch hands the launch to the forked child; a second one
    (a restart) starts a kernel the ordinary way."""
    from jupyter_client import KernelManager

    class ForkedKernelManager(KernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            nonlocal child
            if child is None:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            pid, write_fd = child
            child = None
            cwd = str(kw.get("cwd") or os.getcwd())
            env = dict(kw.get("env") or os.environ)
            env["JPY_PARENT_PID"] = str(os.getpid())  # as jupyter_client's launcher: the kernel ends with us
            launch = {"argv": list(kernel_cmd), "env": env, "cwd": cwd}
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(json.dumps(launch).encode())
            provisioner = self.provisioner
            provisioner.process = _ForkedProcess(pid)
            provisioner.pid = provisioner.pgid = pid
            provisioner.cwd = cwd
            self._reconcile_connection_info(provisioner.connection_info)

    return ForkedKernelManager


# ----------------------------------------------------------------------------------------
# The worker: one notebook


def _descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _kill_all(uid: int | None) -> None:
    """Kill every process this worker started (and, as root, everything the notebook's uid runs)."""
    import psutil

    for _ in range(3):
        procs = _descendants(os.getpid())
        for p in procs:
            try:
                p.kill()
            except psutil.Error:
                pass
        if uid is not None and os.geteuid() == 0:
            child = os.fork()
            if child == 0:  # become the notebook's user and kill all of its processes at once
                try:
                    os.setgid(uid)
                    os.setuid(uid)
                    os.kill(-1, signal.SIGKILL)
                finally:
                    os._exit(0)
            os.waitpid(child, 0)
        psutil.wait_procs(procs, timeout=1)
        if not _descendants(os.getpid()):
            return


class Watchdog(threading.Thread):
    """Kills the notebook's processes when there are more than `limit` of them (a fork bomb)."""

    def __init__(self, limit: int, uid: int | None):
        super().__init__(daemon=True)
        self.limit, self.uid, self.tripped, self.stop = limit, uid, False, threading.Event()

    def run(self):
        while not self.stop.wait(0.02):
            try:
                count = len(_descendants(os.getpid()))
            except Exception:  # noqa: BLE001 - /proc races while processes come and go
                continue
            if count > self.limit:
                self.tripped = True
                _kill_all(self.uid)


def _cpu_seconds(km) -> float | None:
    """CPU seconds (user + system) the kernel has used so far, with its stand-in and what it runs
    now (the kernel itself is the stand-in's grandchild); None when it is gone."""
    import psutil

    try:
        top = psutil.Process(km.provisioner.process.pid)
        total = 0.0
        for proc in [top, *top.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total
    except (AttributeError, psutil.Error):
        return None


def _alive(km) -> bool:
    """Whether the kernel process still runs (read from /proc: no call into the kernel manager's loop)."""
    import psutil

    try:
        pid = km.provisioner.process.pid
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (AttributeError, psutil.Error):
        return True  # not started yet, or not a local process: nbclient's own checks apply


def _others_can_run_python() -> bool:
    """Whether another user could run this Python (its files are not in a private folder such as /root)."""
    import sysconfig

    for start in {sys.executable, os.path.realpath(sys.executable), sysconfig.get_paths()["stdlib"], sys.prefix}:
        path = Path(start).resolve()
        for folder in [path, *path.parents]:
            try:
                mode = folder.stat().st_mode
            except OSError:
                return False
            if folder.is_dir() and not mode & 0o001:
                return False
    return True


def _error(ename: str, evalue: str) -> dict:
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}


def worker(nb_path: Path, out_path: Path, limits: Limits, slot: int, tests: list[str]) -> None:
    """Run the notebook at nb_path, write {"cells": [...], "notes": [...], "stopped": ...} to out_path."""
    import ctypes

    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of the notebook stay ours
    child = _fork_kernel()  # first, before any thread, any secret, anything read
    nb = nbformat.read(nb_path, as_version=4)
    root = Path(tempfile.mkdtemp(prefix="buildgpt-sandbox-"))
    os.chmod(root, 0o711)  # the notebook's own user must reach work/ (kernels/ stays the grader's)
    work = root / "work"
    uid = BASE_UID + slot if os.geteuid() == 0 and _others_can_run_python() else None
    for d in (work / ".ipython" / "profile_default" / "startup", work / "runtime", work / ".config" / "matplotlib"):
        d.mkdir(parents=True, exist_ok=True)
    (work / ".ipython" / "profile_default" / "startup" / "00-buildgpt-guard.py").write_text(GUARD)
    key = secrets.token_bytes(32)
    (work / ".guard-key").write_bytes(key)
    kernels = root / "kernels" / "buildgpt-sandbox"
    kernels.mkdir(parents=True)
    env = {
        "HOME": str(work), "TMPDIR": str(work), "IPYTHONDIR": str(work / ".ipython"),
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"), "MPLCONFIGDIR": str(work / ".config" / "matplotlib"),
        "MPLBACKEND": "Agg", "NBGRADER_EXECUTION": "autograde", "PYTHONDONTWRITEBYTECODE": "1",
        **{var: str(limits.threads) for var in THREAD_VARS},
        ENV_PREFIX + "WORKDIR": str(work), ENV_PREFIX + "MEMORY_MB": str(limits.memory_mb),
        ENV_PREFIX + "PROCS": str(limits.max_procs), ENV_PREFIX + "FILE_MB": str(limits.file_mb),
        ENV_PREFIX + "UID": str(uid if uid is not None else -1),
    }
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "autograder.sandbox", "kernel", "-f", "{connection_file}"],
        "display_name": "buildgpt sandbox", "language": "python", "env": env}))
    (work / ".guard-key").chmod(0o600)
    if uid is not None:
        for path in [work, *work.rglob("*")]:
            os.chown(path, uid, uid)
    work.chmod(0o700)  # the notebook's own: another slot's user cannot look in, even without Landlock
    os.environ["JUPYTER_RUNTIME_DIR"] = str(work / "runtime")

    km = _forked_kernel_manager(child)(kernel_name="buildgpt-sandbox", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(root / "kernels")]))
    client = NotebookClient(nb, km=km, timeout=limits.cell_timeout, allow_errors=True, interrupt_on_timeout=False,
                            startup_timeout=120, resources={"metadata": {"path": str(work)}})
    watchdog = Watchdog(limits.max_procs, uid)
    record = {"cells": [], "notes": [], "stopped": "", "tampered": [], "threads": []}
    start = time.monotonic()
    state = {"stopped": "", "cell_started": None, "limit": 0.0}
    reply: dict = {}
    client.on_cell_executed = lambda **kw: reply.update(kw)

    def run_cell(cell, index, timeout):
        """Run one cell; the supervisor below interrupts it after `timeout` seconds."""
        client.timeout = int(timeout) + 60  # nbclient's own limit is only a backstop
        state["token"] = state.get("token", 0) + 1
        state["cell_started"], state["limit"] = time.monotonic(), timeout
        own = nb.cells[index]
        try:
            client.execute_cell(cell, index)
        finally:
            state["cell_started"] = None
            nb.cells[index] = own  # nbclient puts the cell it ran at `index`; a guard cell is not the notebook's
        if state.pop("interrupted", None) == state["token"]:
            cell.outputs.append(_error("TimeoutError", f"this cell ran longer than {timeout:.0f} s and was interrupted"))

    def not_run(index, cell):
        cell.outputs = [_error("NotRun", f"this cell did not run: {state['stopped']}")]
        record["cells"].append({"index": index, "ran": False})

    def ask_guard(index, timeout, template):
        """Run the guard's probe; (its answer when the real guard gave it, else None, the probe cell)."""
        nonce = secrets.token_hex(16)
        probe = nbformat.v4.new_code_cell(template.format(nonce=nonce))
        run_cell(probe, index, timeout)
        text = "".join(o.get("text", "") for o in probe.outputs if o.get("output_type") == "stream")
        answer = None
        if "BUILDGPT-GUARD" in text and not any(o.get("output_type") == "error" for o in probe.outputs):
            try:
                answer = ast.literal_eval(text.split("BUILDGPT-GUARD", 1)[1].strip().splitlines()[0])
            except (ValueError, SyntaxError, IndexError):
                answer = None
        want = hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()
        real = isinstance(answer, tuple) and len(answer) == 3 and hmac.compare_digest(str(answer[2]), want)
        return (answer if real else None), probe

    def guard(index, left) -> bool:
        """Run the guard before a test cell; False when the notebook broke it."""
        answer, probe = ask_guard(index, min(60, left), RESTORE)
        if answer is None:
            said = any("BUILDGPT-GUARD" in o.get("text", "") for o in probe.outputs)
            why = ("the grader's guard was replaced: its answer before a test cell was not the real guard's" if said else
                   "the grader's guard could not run before a test cell")
            if why not in record["tampered"]:
                record["tampered"].append(why)
            return False
        changed, threads, _ = answer
        record["tampered"] += [c for c in changed if c not in record["tampered"]]
        record["threads"] = sorted(set(record["threads"]) | set(threads))
        return True

    def execute():
        with client.setup_kernel():
            watchdog.start()
            answer, probe = ask_guard(0, 60, STARTUP) if nb.cells else (True, None)
            if answer is None:  # before any cell of the student's: the grader's own failure
                error = next((o for o in probe.outputs if o.get("output_type") == "error"), None)
                state["kernel_failed"] = ("the kernel started without the grader's guard"
                                          + (f" ({error.get('ename')}: {error.get('evalue')})" if error else ""))
                return
            state["ready"] = True
            state["cpu_ready"] = _cpu_seconds(km)  # the kernel's own CPU time from here on: the cells'
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                left = limits.budget - (time.monotonic() - start)
                if left <= 1 and not state["stopped"]:
                    state["stopped"] = f"the notebook used up its time budget of {limits.budget:g} s"
                if state["stopped"]:
                    not_run(index, cell)
                    continue
                try:
                    if cell.get("id") in tests and not guard(index, left):
                        cell.outputs = [_error("GuardError", "the notebook broke the grader's guard; the test counts as failed")]
                        record["cells"].append({"index": index, "ran": True, "status": "error"})
                        continue
                    reply.clear()
                    run_cell(cell, index, min(limits.cell_timeout, left))
                    failed = any(o.get("output_type") == "error" for o in cell.outputs)
                    if not failed and (reply.get("execute_reply") or {}).get("content", {}).get("status", "ok") != "ok":
                        cell.outputs.append(_error("Error", "the cell failed without showing an error"))
                        failed = True
                    record["cells"].append({"index": index, "ran": True, "status": "error" if failed else "ok"})
                    if cell.get("id") in tests:
                        run_cell(nbformat.v4.new_code_cell(SETTLE), index, 60)
                except CellTimeoutError:
                    cell.outputs.append(_error("TimeoutError", "this cell ran too long and its kernel stopped answering"))
                    record["cells"].append({"index": index, "ran": True, "status": "error"})
                    state["stopped"] = "a cell ran too long and its kernel stopped answering"
                    _kill_all(uid)
                except DeadKernelError:
                    cell.outputs.append(_error("DeadKernelError", "the kernel died while this cell ran"))
                    record["cells"].append({"index": index, "ran": True, "status": "error"})
                    state["stopped"] = "the kernel died (the notebook exited, crashed or ran out of memory)"
                if watchdog.tripped and not state["stopped"]:
                    state["stopped"] = f"the notebook started more than {limits.max_procs} processes and was stopped"

    def execute_safely():
        try:
            execute()
        except Exception as exc:  # noqa: BLE001 - a kernel that never started, or died at start
            if not state.get("ready"):
                state["kernel_failed"] = f"the kernel could not start ({type(exc).__name__}: {str(exc)[:300]})"
            state["stopped"] = state["stopped"] or f"the kernel could not run the notebook ({type(exc).__name__}: {exc})"

    runner = threading.Thread(target=execute_safely, daemon=True)
    runner.start()
    tripped_at = interrupted_at = None
    while runner.is_alive():  # the supervisor: time limits, and nbclient can wait forever on a killed kernel
        runner.join(0.1)
        now = time.monotonic()
        if watchdog.tripped and tripped_at is None:
            tripped_at = now
        started, token = state["cell_started"], state.get("token")
        if started is not None and now - started > state["limit"] and state.get("interrupted") != token:
            state["interrupted"], interrupted_at = token, now
            try:
                km.interrupt_kernel()  # a plain infinite loop stops with KeyboardInterrupt; the notebook goes on
            except Exception:  # noqa: BLE001 - already dead: the checks below see to it
                pass
        why = ""
        if started is not None and now - started > 1 and not _alive(km):
            why = "the kernel died (the notebook exited, crashed or ran out of memory)"
        elif tripped_at is not None and now - tripped_at > 5:
            why = f"the notebook started more than {limits.max_procs} processes and was stopped"
        elif started is not None and state.get("interrupted") == token and now - interrupted_at > 10:
            why = f"a cell ran past its {state['limit']:.0f} s limit and ignored the interrupt, so its kernel was killed"
        elif now - start > limits.budget + 60:
            why = f"the notebook used up its time budget of {limits.budget:g} s"
        if why and runner.is_alive():
            state["stopped"] = state["stopped"] or why
            break
    cpu_end = _cpu_seconds(km)
    if cpu_end is not None and state.get("cpu_ready") is not None:
        record["cells_cpu"] = round(cpu_end - state["cpu_ready"], 3)  # for benchmarks/grading.py
    watchdog.stop.set()
    _kill_all(uid)
    if not state.get("ready") and not state.get("kernel_failed"):
        state["kernel_failed"] = f"the kernel died before the notebook's first cell ({state['stopped'] or 'no reason given'})"
    if watchdog.tripped:
        state["stopped"] = f"the notebook started more than {limits.max_procs} processes and was stopped"
    done = {c["index"] for c in record["cells"]}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and index not in done:
            not_run(index, cell)
    notes = work / "sandbox-notes.txt"
    if notes.exists():
        record["notes"] += [n for n in notes.read_text().splitlines() if n]
    shutil.rmtree(root, ignore_errors=True)
    record["stopped"] = state["stopped"]
    if state.get("kernel_failed"):
        record["kernel_failed"] = record["stopped"] = state["kernel_failed"]
    record["seconds"] = round(time.monotonic() - start, 2)
    record["notebook"] = nb
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(out_path)
    if runner.is_alive():
        os._exit(0)  # the runner thread is stuck on a dead kernel's sockets


# ----------------------------------------------------------------------------------------
# The pool: one process per job slot, started once per batch, that has imported what a worker and
# a kernel need (nbformat, nbclient, jupyter_client, ipykernel, torch). For each notebook it forks
# a worker (a session of its own, its output to a log file beside the record) and waits for it;
# the worker forks the kernel. The pool never runs a student's code and never reads a job: it
# reads the job's bytes into a buffer, forks, and wipes the buffer, so a worker (and the kernel
# forked from it) holds nothing of any other notebook. Protocol: the grader writes a 4-byte length
# and a JSON job; the pool answers lines "BUILDGPT-POOL {json}": ready, the worker's pid, its exit.

POOL_SAYS = "BUILDGPT-POOL "


def _read_into(fd: int, buf: bytearray) -> bool:
    """Fill buf from fd; False at end of input."""
    view, got = memoryview(buf), 0
    while got < len(buf):
        n = os.readv(fd, [view[got:]])
        if n == 0:
            return False
        got += n
    return True


def pool(slot: int, limits: Limits) -> None:
    import ctypes

    for var in THREAD_VARS:
        os.environ[var] = str(limits.threads)
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: what a dead worker leaves is ours to end
    import IPython  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401
    import jupyter_client  # noqa: F401
    import nbclient  # noqa: F401
    import nbformat  # noqa: F401
    import psutil
    import torch  # noqa: F401
    try:
        import numpy  # noqa: F401
    except ImportError:
        pass

    def say(**message):
        sys.stdout.write(POOL_SAYS + json.dumps(message) + "\n")
        sys.stdout.flush()

    import gc

    gc.collect()
    gc.freeze()  # what was imported stays put: the collector of a forked worker or kernel never walks (and copies) it
    say(ready=True)
    header = bytearray(4)
    while _read_into(0, header):
        buf = bytearray(int.from_bytes(header, "big"))
        if not _read_into(0, buf):
            break
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _pool_worker(buf, limits, slot)  # never returns
        buf[:] = bytes(len(buf))  # wipe the job before the next fork
        say(pid=pid)
        _, status = os.waitpid(pid, 0)
        orphans = psutil.Process().children(recursive=True)  # a killed worker's kernel, say
        for orphan in orphans:
            try:
                orphan.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(orphans, timeout=5)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:  # and any other zombie
                pass
        except ChildProcessError:
            pass
        say(exit=os.waitstatus_to_exitcode(status))


def _pool_worker(buf: bytearray, limits: Limits, slot: int) -> None:
    import traceback

    code = 1
    try:
        os.setsid()  # the grader can kill this worker's whole session, as a started one
        job = json.loads(bytes(buf))
        log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        worker(Path(job["notebook"]), Path(job["out"]), limits, slot, job["tests"])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    except BaseException:  # noqa: BLE001 - the grader reads the log's last line
        traceback.print_exc()
    finally:
        _exit_now(code)


class _Pool:
    """The grader's side of one slot's pool process."""

    def __init__(self, slot: int, limits: Limits):
        self.limits = limits
        command = [sys.executable, "-m", "autograder.sandbox", "pool", "--slot", str(slot),
                   "--limits", json.dumps(asdict(limits))]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True, bufsize=0)
        self.pending, self.tail = b"", []
        # Only imports: a pool that fails says so at once (end of output); one that is slow is starved
        # of CPU by other work (seen here: over 5 minutes), so it gets as long as a notebook does, or more.
        self.ready = self.read(time.monotonic() + max(limits.budget, 1800) + 120)

    def read(self, deadline: float):
        """The pool's next message; None at end of output; "timeout" past the deadline."""
        import select

        while True:
            if b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(POOL_SAYS):
                    return json.loads(text[len(POOL_SAYS):])
                if text.strip():
                    self.tail = (self.tail + [text.strip()])[-5:]
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 1.0))
            if ready:
                data = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not data:
                    return None
                self.pending += data

    def send(self, job: dict) -> bool:
        data = json.dumps(job).encode()
        try:
            self.proc.stdin.write(len(data).to_bytes(4, "big") + data)
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def alive(self) -> bool:
        return isinstance(self.ready, dict) and self.proc.poll() is None

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        _kill_session(self.proc)
        self.proc.stdout.close()


_pools: dict[int, _Pool] = {}


def _pool_for(slot: int, limits: Limits) -> _Pool:
    current = _pools.get(slot)
    if current is not None and (current.limits != limits or not current.alive()):
        current.close()
        current = None
    if current is None:
        current = _pools[slot] = _Pool(slot, limits)
    return current


def close_pools() -> None:
    while _pools:
        _pools.popitem()[1].close()


# ----------------------------------------------------------------------------------------
# The grader's side: many notebooks, `jobs` at a time


@dataclass
class Job:
    key: str  # who and what, for the progress bar and errors
    notebook: Path  # the clean copy to run
    result: Path  # where the worker writes its record
    tests: list[str]  # ids of the test cells (the guard runs before each)


def run_many(jobs: list[Job], limits: Limits, workers: int, progress=None,
             results: dict[str, dict] | None = None) -> dict[str, dict]:
    """Run every job; return key -> record (a record with "stopped" set when a worker failed).
    `progress(job)` is called as each job ends, its record already in `results`."""
    from concurrent.futures import ThreadPoolExecutor
    from queue import Queue

    slots: Queue = Queue()
    for k in range(max(1, workers)):
        slots.put(k)
    results = {} if results is None else results

    def one(job: Job) -> None:
        slot = slots.get()
        try:
            # A worker that dies without a record (killed from outside, a crash of the grader's own
            # code) is not the student's doing as far as anyone can tell: run it again, twice.
            for attempt in range(WORKER_ATTEMPTS):
                record = _run_worker(job, limits, slot)
                if record.get("kernel_failed"):  # no cell of the student's ran: the grader's failure
                    continue
                if "notebook" in record or record.get("timed_out"):
                    break
            else:
                record["grader_failed"] = True
            results[job.key] = record
        finally:
            slots.put(slot)
            if progress is not None:
                progress(job)

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for future in [pool.submit(one, job) for job in jobs]:
                future.result()
    finally:
        close_pools()
    return results


def _run_worker(job: Job, limits: Limits, slot: int) -> dict:
    """Run one notebook in a worker forked by the slot's pool (started on first use)."""
    job.result.unlink(missing_ok=True)
    log = job.result.with_suffix(".log")
    deadline = limits.budget + 120  # the worker polices the budget; this catches a worker that hangs
    pool = _pool_for(slot, limits)
    out, worker_pid = "", None
    try:
        if not pool.alive():
            out = (pool.tail or ["the grader's pool process did not start in time; is the machine busy?"])[-1]
        elif not pool.send({"notebook": str(job.notebook), "out": str(job.result), "log": str(log), "tests": job.tests}):
            out = "the pool process stopped taking notebooks"
        else:
            end = time.monotonic() + deadline
            answer = pool.read(end)
            if isinstance(answer, dict) and "pid" in answer:
                worker_pid = answer["pid"]
                answer = pool.read(end)
            if answer == "timeout":
                if worker_pid is not None:
                    _kill_group(worker_pid)
                if not isinstance(pool.read(time.monotonic() + 15), dict):  # the pool cleans up after it
                    _pools.pop(slot, None)
                    pool.close()
                return {"stopped": f"the notebook's worker did not finish within {deadline:g} s and was killed",
                        "cells": [], "timed_out": True}
            if not isinstance(answer, dict):  # the pool itself died (killed from outside, say)
                _pools.pop(slot, None)
                pool.close()
                out = (pool.tail or ["the pool process died"])[-1]
        if job.result.exists():
            try:
                return json.loads(job.result.read_text())
            except ValueError:
                pass
        if log.exists():
            out = (log.read_text(errors="replace").strip().splitlines() or [out])[-1] or out
        return {"stopped": f"the notebook's worker failed ({(out or 'no output')[:200]})", "cells": []}
    finally:
        if worker_pid is not None:
            _kill_group(worker_pid)
        log.unlink(missing_ok=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_session(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "kernel":
        kernel(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m autograder.sandbox")
    parser.add_argument("mode", choices=["run", "pool"])
    parser.add_argument("notebook", type=Path, nargs="?")
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--slot", type=int, default=0)
    parser.add_argument("--tests", default="")
    parser.add_argument("--limits", default="{}")
    args = parser.parse_args(argv)
    if args.mode == "pool":
        pool(args.slot, Limits(**json.loads(args.limits)))
        return 0
    if args.notebook is None or args.out is None:
        parser.error("run needs NOTEBOOK and OUT")
    worker(args.notebook, args.out, Limits(**json.loads(args.limits)), args.slot, [t for t in args.tests.split(",") if t])
    return 0


if __name__ == "__main__":
    sys.exit(main())
