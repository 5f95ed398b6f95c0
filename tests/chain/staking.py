"""The Lido/wstETH-style staking contract used as an Aave collateral: artifact, deploy, math.

`contracts/StakedEther.sol` is compiled ahead of time into `build/StakedEther.json` by
`build_contracts.py`; loading checks the artifact's source hash so an edited contract whose
artifact was not rebuilt fails with the command that fixes it.
"""

from __future__ import annotations

import json

from web3.contract.contract import Contract

from tests.chain.build_contracts import source_sha256
from tests.chain.deploy import Artifact, ArtifactError, SyncDeployer
from tests.chain.toolpaths import BUILD_DIR, CONTRACTS_DIR, REPO_ROOT

RATE_UNIT = 10**18
# Where wstETH traded for much of 2025: 1 receipt token is worth ~1.2 ETH.
INITIAL_RATE = 1_200_000_000_000_000_000
# Lido's withdrawal queue takes days to finalize; the tests travel in time past this.
UNSTAKE_DELAY_S = 3 * 24 * 3600

REBUILD_HINT = "run `.venv/bin/python -m tests.chain.build_contracts` and commit tests/chain/build"


def staked_ether_artifact() -> Artifact:
    """The committed StakedEther artifact, checked against the current source."""
    path = BUILD_DIR / "StakedEther.json"
    if not path.exists():
        raise ArtifactError(f"{path.relative_to(REPO_ROOT)} is missing: {REBUILD_HINT}")
    recorded = json.loads(path.read_text(encoding="utf-8"))["sourceSha256"]
    if recorded != source_sha256(CONTRACTS_DIR / "StakedEther.sol"):
        raise ArtifactError(f"{path.relative_to(REPO_ROOT)} is stale: {REBUILD_HINT}")
    return Artifact.from_file(path)


def deploy_staked_ether(
    deployer: SyncDeployer, rate: int = INITIAL_RATE, delay: int = UNSTAKE_DELAY_S
) -> Contract:
    """Deploy StakedEther owned by the deployer, at `rate` wei per receipt token."""
    return deployer.deploy(staked_ether_artifact(), rate, delay)


def shares_for_eth(eth_wei: int, rate: int) -> int:
    """Receipt tokens minted for `eth_wei` at `rate` (the contract rounds down)."""
    return eth_wei * RATE_UNIT // rate


def eth_for_shares(shares: int, rate: int) -> int:
    """ETH owed for `shares` receipt tokens at `rate` (the contract rounds down)."""
    return shares * rate // RATE_UNIT
