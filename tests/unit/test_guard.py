"""The test-session guard (tests/guard.py) is on in every run and fails a test that reaches outside the
repository, however the test hides it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests import guard
from tests.paths import REPO

OUTSIDE = REPO.parent / "guard-probe-that-does-not-exist.csv"  # next to the repository, outside it

PROBES = f'''
import os, subprocess, sys
from pathlib import Path

OUTSIDE = Path({str(OUTSIDE)!r})

def test_reads_outside_and_swallows_the_error():
    try:
        OUTSIDE.read_text()
    except OSError:
        pass

def test_lists_outside():
    try:
        os.listdir(OUTSIDE.parent / "no-such-folder")
    except OSError:
        pass

def test_hands_a_child_a_path_outside():
    subprocess.run([sys.executable, "-c", "pass", "--data", "../" + OUTSIDE.name], cwd={str(REPO)!r})

def test_follows_a_symlink_out(tmp_path):
    (tmp_path / "link").symlink_to(OUTSIDE.parent)
    try:
        (tmp_path / "link" / OUTSIDE.name).read_text()
    except OSError:
        pass

def test_runs_a_shell_line_naming_a_path_outside():
    subprocess.run("cat " + str(OUTSIDE) + " 2>/dev/null", shell=True)

def test_hands_a_child_code_that_opens_a_path_outside():
    subprocess.run([sys.executable, "-c", f"open({str(OUTSIDE)!r})"], capture_output=True)

def test_hands_a_child_a_glued_option_and_a_bare_relative_path():
    subprocess.run(["grep", "-f" + str(OUTSIDE), "tests/../../" + OUTSIDE.name], cwd={str(REPO)!r},
                   capture_output=True)

def test_hands_a_child_an_sqlite_url_outside():
    subprocess.run([sys.executable, "-c", "pass", "--db", "sqlite:///" + str(OUTSIDE)])

def test_stays_in_the_temporary_folder(tmp_path):
    (tmp_path / "x.csv").write_text("a")
    assert (tmp_path / "x.csv").read_text() == "a"
    subprocess.run([sys.executable, "-c", "pass", str(tmp_path / "x.csv")], cwd=tmp_path)

def test_reads_the_repository():
    assert Path({str(REPO / "data" / "README.md")!r}).read_text()
'''


def _inner(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(source)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.guard",
         "--rootdir", str(tmp_path), str(tmp_path / "test_probe.py")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )


def test_the_guard_is_on_in_this_run(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    assert request.config.pluginmanager.has_plugin("tests.guard")
    assert guard._installed
    # This session's own temporary folder, for pytest, tempfile and child processes alike.
    assert tempfile.gettempdir() == guard.session_tmp == os.environ["TMPDIR"]
    assert tmp_path.resolve().is_relative_to(guard.session_tmp)
    assert not Path(guard.session_tmp).is_relative_to(REPO) and not REPO.is_relative_to(guard.session_tmp)


def test_a_test_reaching_outside_fails_naming_the_path(tmp_path: Path) -> None:
    run = _inner(tmp_path, PROBES)
    out = run.stdout
    assert run.returncode == 1, out + run.stderr
    assert "8 failed, 2 passed" in out, out
    for name in ("reads_outside_and_swallows_the_error", "lists_outside", "hands_a_child_a_path_outside",
                 "follows_a_symlink_out", "runs_a_shell_line_naming_a_path_outside",
                 "hands_a_child_code_that_opens_a_path_outside",
                 "hands_a_child_a_glued_option_and_a_bare_relative_path",
                 "hands_a_child_an_sqlite_url_outside"):
        assert f"FAILED test_probe.py::test_{name}" in out, out
    assert f"opened {OUTSIDE}" in out
    assert f"listed {OUTSIDE.parent / 'no-such-folder'}" in out
    assert f"a child process given {OUTSIDE}" in out


def test_a_read_outside_while_collecting_stops_the_run(tmp_path: Path) -> None:
    source = f"try:\n    open({str(OUTSIDE)!r})\nexcept OSError:\n    pass\n\ndef test_nothing():\n    pass\n"
    run = _inner(tmp_path, source)
    assert run.returncode != 0
    assert "while being collected" in run.stderr and str(OUTSIDE) in run.stderr, run.stderr
    assert not OUTSIDE.exists()


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        (REPO / "data" / "seed" / "README.md", True),
        (REPO / ".venv" / "lib", True),
        (Path(sys.base_prefix) / "lib", True),
        (Path(guard.session_tmp) / "anything", True),
        (Path(guard.session_tmp).parent / "not-this-sessions-folder", False),
        (REPO.parent / "shared" / "data" / "seed", False),
        (REPO / ".." / "shared", False),
        (Path("/home") / "someone" / "data.csv", False),
    ],
)
def test_allowed_places(path: Path, inside: bool) -> None:
    assert guard.allowed(str(path)) is inside
