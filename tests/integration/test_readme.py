"""The README's commands run as written.

Every fenced `sh` block runs, in README order, with bash (`set -euo pipefail`) in one scratch folder that
looks like a fresh clone (the repository's top-level entries linked into it, outputs written beside
them), `.venv/bin` first on PATH. Lines that run `make test` are left out (this is `make test`); a block
whose first line is `# no-run: <reason>` is not run and is listed with its reason. Every `python` block
runs too, in the same folder, as its own process (top-level `await` allowed). Long backtest windows are
shortened only through the one documented variable, LEDGER_MAX_DAYS (README: "Backtests").
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from tests.paths import REPO

README = REPO / "README.md"
MAX_DAYS = "3"  # LEDGER_MAX_DAYS for the README run
NO_RUN = re.compile(r"^#\s*no-run:\s*(\S.*)$")
MAKE_TEST = re.compile(r"^\s*make\s+test\s*(#.*)?$")
SKIP_LINKS = {".git", "README.md"}  # the scratch folder gets its own copy of what it may write next to
RUNNER = """
import ast, asyncio, sys, types
source = open(sys.argv[1]).read()
code = compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
module = types.ModuleType("__main__")
sys.modules["__main__"] = module
result = eval(code, module.__dict__)
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


@dataclass(frozen=True)
class Block:
    lang: str
    line: int  # 1-based line of the opening fence
    text: str

    @property
    def no_run(self) -> str | None:
        first = self.text.strip().splitlines()[0] if self.text.strip() else ""
        match = NO_RUN.match(first.strip())
        return match.group(1) if match else None

    @property
    def runnable(self) -> str:
        return "\n".join(line for line in self.text.splitlines() if not MAKE_TEST.match(line))


def blocks() -> list[Block]:
    tokens = MarkdownIt().parse(README.read_text(encoding="utf-8"))
    out = []
    for t in tokens:
        if t.type == "fence" and t.map is not None:
            lang = t.info.strip().split()[0] if t.info.strip() else ""
            out.append(Block(lang, t.map[0] + 1, t.content))
    return out


RUN = [b for b in blocks() if b.lang in ("sh", "python") and b.no_run is None]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that looks like a fresh clone: the repository's entries linked, nothing generated.

    `.venv` and `node_modules` are linked too, so `make demo` there must find them installed from the
    current pyproject and lock file: otherwise its install step would run `npm ci` through the link and
    empty the repository's node_modules. `make test` installs first; a bare pytest run is refused."""
    stale = subprocess.run(["make", "-q", "install"], cwd=REPO, capture_output=True)
    if stale.returncode != 0:
        pytest.fail("the README test needs the environment installed from the current pyproject.toml and "
                    "package-lock.json: run `make install` (make test does) and run it again")
    root = tmp_path_factory.mktemp("readme")
    ignored = set(
        subprocess.run(["git", "ls-files", "-o", "-i", "--exclude-standard", "--directory"], cwd=REPO,
                       capture_output=True, text=True, check=True).stdout.split()
    )
    keep = {".venv/", "node_modules/"}  # installed tools, not outputs
    for entry in sorted(REPO.iterdir()):
        rel = entry.name + ("/" if entry.is_dir() else "")
        if entry.name in SKIP_LINKS or (rel in ignored and rel not in keep):
            continue
        (root / entry.name).symlink_to(entry)
    shutil.copy(README, root / "README.md")
    return root


def _env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        LEDGER_MAX_DAYS=MAX_DAYS,
        PYTHONHASHSEED="0",
        COLUMNS="80",
        MPLCONFIGDIR=str(workdir / ".matplotlib"),
    )
    env.pop("LEDGER_CIPHER_KEY", None)
    return env


def test_the_readme_has_runnable_blocks_and_lists_what_it_does_not_run() -> None:
    found = blocks()
    shell = [b for b in found if b.lang == "sh"]
    assert len(shell) >= 10 and [b for b in found if b.lang == "python"]
    skipped = [(b.line, b.no_run) for b in shell if b.no_run is not None]
    for line, reason in skipped:
        assert len(reason or "") >= 10, f"README.md:{line}: a no-run block needs a reason"
    print("\nREADME blocks not run:\n" + "\n".join(f"  README.md:{line}: {why}" for line, why in skipped))
    # Shell commands belong in `sh` blocks: no `bash`/`console`/unlabelled fences with commands.
    loose = [b.line for b in found if b.lang in ("", "bash", "shell", "console")]
    assert loose == [], f"README.md lines {loose}: label shell blocks `sh` (or `text` for output)"


@pytest.mark.parametrize("block", RUN, ids=[f"{b.lang}-line{b.line}" for b in RUN])
def test_readme_block_runs(block: Block, workdir: Path) -> None:
    env = _env(workdir)
    if block.lang == "sh":
        script = "set -euo pipefail\n" + block.runnable
        run = subprocess.run(["bash", "-c", script], cwd=workdir, env=env, capture_output=True, text=True,
                             timeout=600)
    else:
        source = workdir / f"readme_block_{block.line}.py"
        source.write_text(block.text)
        run = subprocess.run([sys.executable, "-c", RUNNER, str(source)], cwd=workdir, env=env,
                             capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (
        f"README.md:{block.line} ({block.lang}) exited {run.returncode}\n--- stdout\n{run.stdout[-3000:]}"
        f"\n--- stderr\n{run.stderr[-3000:]}"
    )
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
