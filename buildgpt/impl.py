"""Which code a command runs: buildgpt's reference, or a student's own package (`--impl mygpt`).

`python -m autograder assemble` turns a student's completed notebooks into a package with the
same module layout as buildgpt (mygpt/model.py, mygpt/attention.py, ...). A command that builds,
trains or runs a model takes every model, optimizer, loss and trainer function from the object
`load_impl(args)` returns, so `--impl mygpt` runs the student's code:

    add_impl_argument(parser)       # in add_arguments
    impl = load_impl(args)          # in run; impl.model.GPT, impl.trainer.train, ...

`impl.NAME` is the package's module NAME; a module the package lacks (the hand-written
`resources` and `viz`, or a chapter newer than the package) is buildgpt's.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path


class Impl:
    """A package with buildgpt's module layout; `impl.model` is its model module."""

    def __init__(self, package, path: Path | None = None) -> None:
        self.package = package
        self.name = package.__name__
        self.path = path
        self._fallbacks: set[str] = set()

    @property
    def is_reference(self) -> bool:
        return self.name == "buildgpt"

    def __getattr__(self, module: str):
        if module.startswith("_"):
            raise AttributeError(module)
        try:
            return importlib.import_module(f"{self.name}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{self.name}.{module}":
                raise
        if module not in self._fallbacks and module not in ("resources", "viz"):
            self._fallbacks.add(module)
            print(f"note: {self.name} has no {module} module (no chapter you assembled writes it); "
                  f"using the course's buildgpt.{module}", flush=True)
        return importlib.import_module(f"buildgpt.{module}")

    def banner(self) -> str:
        """'using your code for 41 of 49 exercises; reference for ...' from the package's ASSEMBLY."""
        info = getattr(self.package, "ASSEMBLY", None)
        where = f" at {self.path}" if self.path is not None and str(self.path) != self.name else ""
        if not isinstance(info, dict):
            return f"using the implementation in {self.name}{where}"
        text = f"using your code for {info['yours']} of {info['total']} exercises"
        if info.get("reference"):
            text += "; reference for " + (info.get("reference_summary") or ", ".join(info["reference"]))
        return text + f" (package {self.name}{where}; REPORT.md there says which)"


def add_impl_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--impl", default=None, metavar="PACKAGE",
                        help="run your own code: a package made by `python -m autograder assemble` "
                             "(a folder such as mygpt/ or an importable name; default: buildgpt)")


def _error(message: str) -> Exception:
    from buildgpt.commands import CommandError

    return CommandError(message)


def _import_folder(path: Path):
    name = path.name
    if not name.isidentifier():
        raise _error(f"--impl {path}: the folder name {name!r} is not a Python name; rename it (e.g. mygpt)")
    if name == "buildgpt":
        raise _error(f"--impl {path}: a package named buildgpt would hide the course's library; assemble it as mygpt")
    init = path / "__init__.py"
    if not init.is_file():
        raise _error(f"--impl {path} is a folder without __init__.py; make the package with "
                     f"`python -m autograder assemble NOTEBOOKS --out {path}`")
    loaded = sys.modules.get(name)
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "") or "").resolve() == init.resolve():
            return loaded
        raise _error(f"--impl {path}: another module named {name} is already imported; give the folder another name")
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(path)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    try:
        spec.loader.exec_module(package)
    except Exception as exc:
        del sys.modules[name]
        raise _error(f"--impl {path} could not be imported ({type(exc).__name__}: {exc}); assemble it again") from None
    return package


def load_impl(args_or_spec=None, quiet: bool = False) -> Impl:
    """The implementation a command runs: buildgpt without --impl, else the named package.

    Takes the parsed arguments (their .impl) or the spec itself: a folder (mygpt, path/to/mygpt)
    or an importable package name. Prints the package's banner once unless quiet."""
    spec = getattr(args_or_spec, "impl", args_or_spec)
    if spec is None or spec == "buildgpt":
        import buildgpt

        return Impl(buildgpt)
    spec = str(spec)
    path = Path(spec)
    if path.is_dir():
        impl = Impl(_import_folder(path.resolve()), path)
    elif path.exists():
        raise _error(f"--impl {spec} is a file; give the package folder made by `python -m autograder assemble`")
    elif spec.replace(".", "").replace("_", "").isalnum() and not any(c in spec for c in "/\\"):
        try:
            impl = Impl(importlib.import_module(spec))
        except ModuleNotFoundError as exc:
            if exc.name != spec.split(".")[0] and exc.name != spec:
                raise _error(f"--impl {spec} could not be imported: it needs {exc.name}, which is missing") from None
            raise _error(f"--impl {spec}: there is no folder or importable package of that name; make it with "
                         f"`python -m autograder assemble NOTEBOOKS --out {spec}`") from None
    else:
        raise _error(f"--impl {spec} does not exist; make it with `python -m autograder assemble NOTEBOOKS --out {spec}`")
    if not quiet:
        print(impl.banner(), flush=True)
    return impl
