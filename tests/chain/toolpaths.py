"""Where the npm-installed chain tools live (anvil, solc-js, Aave v3 artifacts); clear errors."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO_ROOT / "node_modules"
CHAIN_DIR = Path(__file__).resolve().parent
CONTRACTS_DIR = CHAIN_DIR / "contracts"
BUILD_DIR = CHAIN_DIR / "build"

# The platform package is depended on directly: the @foundry-rs/anvil wrapper's lock file lists
# platform packages this registry doesn't serve, which breaks `npm ci`.
ANVIL_REL = "@foundry-rs/anvil-linux-amd64/bin/anvil"
SOLCJS_REL = "solc/solc.js"
AAVE_ARTIFACTS_REL = "@aave/core-v3/artifacts/contracts"
AAVE_SOURCES_REL = "@aave/core-v3/contracts"

INSTALL_HINT = (
    "run `make install` (or `npm ci --ignore-scripts` in the repository root) "
    "to install the chain test tools"
)


class ChainToolsMissingError(RuntimeError):
    """An npm-installed chain tool (anvil, solc-js, Aave artifacts) is not on disk."""


def node_path(relative: str, env_var: str | None = None) -> Path:
    """Return an existing path inside node_modules, or the path named by ``env_var`` if set."""
    override = os.environ.get(env_var) if env_var else None
    path = Path(override) if override else NODE_MODULES / relative
    if not path.exists():
        origin = f"${env_var}" if override else "node_modules"
        raise ChainToolsMissingError(f"{path} not found (from {origin}): {INSTALL_HINT}")
    return path


def anvil_binary() -> Path:
    """The anvil executable, from ``$ANVIL_BIN`` or node_modules."""
    path = node_path(ANVIL_REL, "ANVIL_BIN")
    if not os.access(path, os.X_OK):
        # npm keeps the mode bits from the tarball, but a copied tree may lose them.
        raise ChainToolsMissingError(f"{path} is not executable: chmod +x it or {INSTALL_HINT}")
    return path


def aave_artifacts_dir() -> Path:
    """The Hardhat artifacts of @aave/core-v3, from ``$AAVE_ARTIFACTS`` or node_modules."""
    return node_path(AAVE_ARTIFACTS_REL, "AAVE_ARTIFACTS")


def aave_sources_dir() -> Path:
    """The Solidity sources shipped in @aave/core-v3 (used for the error-code names)."""
    return node_path(AAVE_SOURCES_REL)


def solcjs_script() -> Path:
    """The solc-js command-line entry point."""
    return node_path(SOLCJS_REL, "SOLCJS")
