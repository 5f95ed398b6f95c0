"""The repository stands alone: the market data ships in data/ with its checksums, and nothing the
project runs or documents points outside the repository."""

from __future__ import annotations

import hashlib
import re
import subprocess

from tests.paths import DATA, FIXTURES, REPO


def _listed() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (DATA / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        out[name.removeprefix("./")] = digest
    return out


def test_every_data_file_is_listed_with_its_checksum() -> None:
    listed = _listed()
    on_disk = sorted(
        str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file() and p.name != "SHA256SUMS"
    )
    assert sorted(listed) == on_disk
    for name, digest in listed.items():
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, name


def test_the_data_carries_its_provenance() -> None:
    for readme in ("README.md", "seed/README.md", "binance/README.md"):
        assert (DATA / readme).stat().st_size > 1000, readme
    # The Binance README's per-file sha256 column agrees with the checksum list.
    listed = _listed()
    table = (DATA / "binance/README.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \|.*\| ([0-9a-f]{64}) \|$", table, re.M)
    assert len(rows) == 9
    for name, digest in rows:
        assert listed[f"binance/{name}"] == digest, name


def test_the_request_oracle_is_a_fixture_of_the_repository() -> None:
    assert (FIXTURES / "oracles" / "ccxt-static-requests.json").stat().st_size > 1000


OUTSIDE = re.compile(r"\.\./shared|\bshared/(data|oracles|notes|seed)\b|LEDGER_SHARED_DATA|SHARED_DIR")


def test_nothing_tracked_points_at_the_folder_outside_the_repository() -> None:
    """No code, test, example, Makefile target or README refers to ../shared (the data's old home)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        if name.startswith("data/") or name == "tests/unit/test_shipped_data.py":
            continue  # the data's own READMEs cite their sources' folders
        path = REPO / name
        if not path.is_file() or path.suffix not in {".py", ".md", ".toml", ".json", ".sh", ".cfg", ""}:
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{name}:{i}" for i, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert offenders == []
