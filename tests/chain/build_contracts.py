"""Compile tests/chain/contracts/*.sol with the npm solc-js into committed tests/chain/build/*.json.

Run from the repository root after editing a contract:

    .venv/bin/python -m tests.chain.build_contracts          # rewrite the artifacts
    .venv/bin/python -m tests.chain.build_contracts --check  # exit 1 if they are stale

The test session loads the committed artifacts and only checks each one's source hash, so CI needs
no compiler run; `--check` (and the reproducibility test) recompile to prove the bytes match.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Allow `python tests/chain/build_contracts.py` as well as `python -m tests.chain....`.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.chain.toolpaths import (
    BUILD_DIR,
    CONTRACTS_DIR,
    solcjs_script,
)

SOLC_VERSION = "0.8.37"
# Pinned so that the bytecode does not change with the compiler's default EVM version.
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "outputSelection": {
        "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]},
    },
}


class CompileError(RuntimeError):
    """solc-js reported errors, or did not run."""


def source_sha256(path: Path) -> str:
    """Hex SHA-256 of a source file's bytes (stored in its artifact to detect staleness)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def contract_sources() -> list[Path]:
    """The Solidity files to compile, in a stable order."""
    return sorted(CONTRACTS_DIR.glob("*.sol"))


def compile_all() -> dict[str, dict[str, Any]]:
    """Compile every contract source with solc-js; return artifacts keyed by contract name."""
    sources = contract_sources()
    standard_input = {
        "language": "Solidity",
        "sources": {p.name: {"content": p.read_text(encoding="utf-8")} for p in sources},
        "settings": SETTINGS,
    }
    try:
        proc = subprocess.run(
            ["node", str(solcjs_script()), "--standard-json"],
            input=json.dumps(standard_input),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    except FileNotFoundError as exc:
        raise CompileError("`node` is not on PATH; solc-js needs Node.js") from exc
    # solcjs may print warnings before the JSON document.
    start = proc.stdout.find("{")
    if proc.returncode != 0 or start < 0:
        raise CompileError(f"solc-js failed (rc={proc.returncode}): {proc.stderr or proc.stdout}")
    output = json.loads(proc.stdout[start:])
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(e.get("formattedMessage", e["message"]) for e in errors))

    artifacts: dict[str, dict[str, Any]] = {}
    for path in sources:
        for name, contract in output["contracts"][path.name].items():
            artifacts[name] = {
                "contractName": name,
                "sourceName": f"tests/chain/contracts/{path.name}",
                "sourceSha256": source_sha256(path),
                "compiler": {"name": "solc-js", "version": SOLC_VERSION, "settings": SETTINGS},
                "abi": contract["abi"],
                "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
            }
    return artifacts


def render(artifact: dict[str, Any]) -> str:
    """The exact text committed for an artifact (stable key order, trailing newline)."""
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def stale_artifacts(artifacts: dict[str, dict[str, Any]]) -> list[str]:
    """Names whose committed file differs from the freshly compiled one (or is missing)."""
    stale = []
    for name, artifact in artifacts.items():
        path = BUILD_DIR / f"{name}.json"
        if not path.exists() or path.read_text(encoding="utf-8") != render(artifact):
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale artifacts")
    args = parser.parse_args(argv)
    artifacts = compile_all()
    if args.check:
        stale = stale_artifacts(artifacts)
        if stale:
            print(f"stale artifacts: {', '.join(stale)}; run python -m tests.chain.build_contracts")
            return 1
        print(f"{len(artifacts)} artifacts up to date")
        return 0
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    for name, artifact in artifacts.items():
        (BUILD_DIR / f"{name}.json").write_text(render(artifact), encoding="utf-8")
        print(f"wrote {BUILD_DIR / f'{name}.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
