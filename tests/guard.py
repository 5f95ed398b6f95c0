"""A test-session guard: no test may read or write outside the repository and the temporary folders.

The repository must stand alone: the market data and fixtures its tests use ship in `data/` and
`tests/fixtures/`. A Python audit hook (PEP 578) sees every file the test process opens (`open`,
`os.listdir`, `os.scandir`, `sqlite3.connect`) and every path handed to a child process
(`subprocess.Popen` arguments and working folder), and records those outside the allowed places.
A test that caused one fails, naming the path; one found while collecting stops the run. Recording
(instead of raising inside the hook) means code that catches `OSError` cannot hide it. A path counts
where it leads: a symlink inside the repository that points outside is outside.

Child processes are not hooked; what they are given is checked instead: the working folder, every
argument that is a path (relative ones against the child's working folder, `--opt=PATH`, `-fPATH`,
`sqlite:///PATH`), the words of a shell command line, and absolute paths written inside an argument
(`python -c "open('/elsewhere/x')"`) whose top folder exists. Not seen, so not guarded: paths a child
finds in its environment, files SQLite opens by itself (`ATTACH`), and native code calling the C
library directly.

Allowed: the repository (its `.venv` and `node_modules` included), a temporary folder of this session's
own (made at start-up and set as `tempfile.tempdir` and `TMPDIR`, so pytest's `tmp_path`, `tempfile`
and child processes all use it; removed after a passing run), matplotlib's font cache, the Python
installation, the operating system's own folders (`/dev`, `/proc`, `/sys`, `/etc`, `/usr`, ...) that
interpreters, TLS and native libraries read, and the user's font folders (matplotlib lists them).
Everything else — the repository's parent folder first of all — is a violation. The guard is
registered by tests/conftest.py, so it is on in every run. Only this session's temporary folder is
allowed, not the whole system one, so the guard holds when the repository itself sits in /tmp.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import site
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SYSTEM = ("/dev", "/proc", "/sys", "/etc", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/run", "/var/lib",
          "/var/run", "/var/cache/fontconfig", "/nix")


def _roots(session_tmp: str, font_cache: str) -> tuple[str, ...]:
    places = {str(REPO), session_tmp, font_cache, *SYSTEM}
    places |= {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    places |= {p for p in sysconfig.get_paths().values() if p}
    places |= set(site.getsitepackages()) | {site.getusersitepackages()}
    home = os.path.expanduser("~")
    places |= {os.path.join(home, ".fonts"), os.path.join(home, ".local", "share", "fonts")}  # matplotlib
    places |= {os.path.realpath(p) for p in list(places)}
    return tuple(sorted(p.rstrip("/") or "/" for p in places))


ROOTS: tuple[str, ...] = ()  # set by `install`
violations: list[str] = []


def _inside(full: str) -> bool:
    return any(full == root or full.startswith(root + "/") for root in ROOTS)


def allowed(path: str) -> bool:
    """Whether `path` (absolute or relative to the current folder) lies inside an allowed place, both
    as written and where its symlinks lead."""
    full = os.path.abspath(path)
    return _inside(full) and _inside(os.path.realpath(full))


def _check(path: Any, what: str) -> None:
    if isinstance(path, int) or path is None:  # an open file descriptor, or no path at all
        return
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    text = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(text, str) or not text or text == ":memory:":
        return
    if text.startswith("file:"):  # an SQLite URI: the path sits between `file:` and `?`
        if "mode=memory" in text:
            return
        text = text[5:].split("?", 1)[0]
        if not text:
            return
    if not allowed(text):
        violations.append(f"{what} {os.path.abspath(text)}")


EMBEDDED = re.compile(r"(?<![\w:/.~-])(/[\w.~+-]+(?:/[\w.~+-]*)*)")  # an absolute path inside a word
GLUED = re.compile(r"^-[A-Za-z](?=[/.~])")  # -f/path, -I./include


def _argument_paths(args: Any, cwd: Any) -> Iterator[tuple[str, str]]:
    if cwd is not None:
        yield os.fspath(cwd), "a child process working in"
    base = os.fspath(cwd) if cwd is not None else os.getcwd()
    if isinstance(args, str | bytes):  # a shell command line: its words, the program first
        items = shlex.split(os.fsdecode(args) if isinstance(args, bytes) else args, posix=True)
    else:
        items = [args] if isinstance(args, os.PathLike) else list(args or [])
    for item in items[1:]:  # the program itself may live anywhere on PATH
        text = os.fsdecode(item) if isinstance(item, bytes) else os.fspath(item)
        for part in _path_parts(str(text)):
            yield os.path.join(base, os.path.expanduser(part)), "a child process given"


def _path_parts(text: str) -> Iterator[str]:
    """The paths an argument may name: itself, after `=`, after a glued one-letter option, after
    `sqlite:///`, and absolute paths inside it whose top folder exists."""
    word = GLUED.sub("", text.split("=", 1)[-1] if text.startswith("-") else text)
    word = word.removeprefix("sqlite:///")  # sqlite:///rel.db, sqlite:////abs.db
    looks_like_a_path = "://" not in word and " " not in word and ("/" in word or word in (".", "..", "~"))
    if looks_like_a_path and (not word.startswith("/") or _top_exists(word)):  # "/api/v3" is no path
        yield word
    for found in EMBEDDED.findall(text):
        if found != word and _top_exists(found):
            yield found


def _top_exists(path: str) -> bool:
    top = path.strip("/").split("/", 1)[0]
    return bool(top) and os.path.isdir("/" + top)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event == "open":
        _check(args[0], "opened")
    elif event in ("os.listdir", "os.scandir"):
        _check(args[0] if args else None, "listed")
    elif event == "sqlite3.connect":
        _check(args[0], "opened the SQLite database")
    elif event == "subprocess.Popen":
        _exe, popen_args, cwd, _env = args
        for path, what in _argument_paths(popen_args, cwd):
            _check(path, what)


_installed = False
session_tmp = ""
owner = False  # whether this process made the session's temporary folder (and so removes it)
SESSION_VAR = "LEDGER_TEST_SESSION_TMP"  # inherited by xdist workers and pytest runs inside a test


def install(rootdir: Path = REPO) -> None:
    """Give the session its own temporary folder and add the audit hook, once per process (hooks
    cannot be removed; the flag keeps it single). `rootdir` (pytest's; the repository in a normal run)
    is allowed too."""
    global _installed, session_tmp, ROOTS, owner
    if _installed:
        return
    # matplotlib keeps its font cache in the home folder unless told otherwise: one in the system's
    # temporary folder, kept across runs (built once); workers inherit the setting
    font_cache = os.environ.setdefault(
        "MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), "execution-ledger-matplotlib"))
    inherited = os.environ.get(SESSION_VAR, "")
    if inherited and os.path.isdir(inherited):  # a worker, or a pytest run by a test: the same folder
        session_tmp = inherited
    else:
        session_tmp = os.path.realpath(tempfile.mkdtemp(prefix="execution-ledger-tests-"))
        os.environ[SESSION_VAR] = session_tmp
        owner = True
    tempfile.tempdir = session_tmp
    os.environ["TMPDIR"] = session_tmp
    ROOTS = tuple(sorted({*_roots(session_tmp, font_cache), str(rootdir.resolve())}))
    sys.addaudithook(_hook)
    _installed = True


def take() -> list[str]:
    """The violations recorded since the last call, cleared."""
    found = list(dict.fromkeys(violations))
    violations.clear()
    return found


def pytest_configure(config: pytest.Config) -> None:
    install(config.rootpath)


def pytest_collection_finish(session: pytest.Session) -> None:
    found = take()
    if found:
        raise pytest.UsageError(
            "tests read outside the repository while being collected (tests/guard.py): " + "; ".join(found)
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    found = take()
    if found:
        print("\nerror: paths outside the repository were used after the last test (tests/guard.py): "
              + "; ".join(found), file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if session.exitstatus == pytest.ExitCode.OK and session_tmp and owner:
        shutil.rmtree(session_tmp, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """The test itself (and its fixtures' set-up) fails when it used a path outside."""
    result = yield
    found = take()
    if found:
        pytest.fail(
            "this test used paths outside the repository and the temporary folders (tests/guard.py): "
            + "; ".join(found),
            pytrace=False,
        )
    return result


@pytest.fixture(autouse=True)
def _stay_inside_the_repository() -> Iterator[None]:
    earlier = take()
    if earlier:  # a module or session fixture's teardown, between two tests
        pytest.fail("a fixture used paths outside the repository and the temporary folders between tests "
                    "(tests/guard.py): " + "; ".join(earlier), pytrace=False)
    yield
    found = take()
    if found:  # the teardown of one of the test's fixtures
        pytest.fail(
            "a fixture's teardown used paths outside the repository and the temporary folders "
            "(tests/guard.py): " + "; ".join(found),
            pytrace=False,
        )
