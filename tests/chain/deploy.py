"""Load Hardhat/solc artifacts, link library references, and deploy them with a sync `Web3`.

Deployment runs once per test session, so it uses the plain sync client (no event-loop scoping
issues with session fixtures); tests then talk to the contracts through `AsyncWeb3`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import Contract, ContractFunction
from web3.types import TxReceipt

from tests.chain.anvil import CHAIN_ID
from tests.chain.toolpaths import aave_artifacts_dir
from tests.chain.tx import with_gas_margin

ADDRESS_HEX_LEN = 40
# Deployment uses fixed fees: anvil starts at a 1 gwei base fee and the deploy blocks are small.
DEPLOY_MAX_FEE = 20 * 10**9
DEPLOY_TIP = 10**9


class ArtifactError(RuntimeError):
    """An artifact is missing, ambiguous or cannot be linked."""


@dataclass(frozen=True)
class Artifact:
    """The parts of a compiler artifact needed to deploy and call a contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    link_references: dict[str, dict[str, list[dict[str, int]]]] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_file(cls, path: Path) -> Artifact:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            name=data["contractName"],
            abi=data["abi"],
            bytecode=data["bytecode"],
            link_references=data.get("linkReferences") or {},
            path=path,
        )

    @property
    def libraries(self) -> set[str]:
        return {lib for libs in self.link_references.values() for lib in libs}

    def linked(self, libraries: Mapping[str, str]) -> str:
        """Bytecode with each library reference's 20 bytes replaced by the library's address."""
        missing = self.libraries - libraries.keys()
        if missing:
            raise ArtifactError(f"{self.name} needs libraries {sorted(missing)}")
        code = self.bytecode.removeprefix("0x")
        for libs in self.link_references.values():
            for lib, refs in libs.items():
                address = libraries[lib].removeprefix("0x").lower()
                for ref in refs:
                    start, length = 2 * ref["start"], 2 * ref["length"]
                    placeholder = code[start : start + length]
                    if length != ADDRESS_HEX_LEN or not placeholder.startswith("__"):
                        raise ArtifactError(f"{self.name}: bad link reference {lib} at {ref}")
                    code = code[:start] + address + code[start + length :]
        if "__" in code:
            raise ArtifactError(f"{self.name}: unlinked placeholder left in bytecode")
        return "0x" + code


@cache
def _aave_artifact_index(root: Path) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = {}
    for path in root.rglob("*.json"):
        if not path.name.endswith(".dbg.json"):
            index.setdefault(path.stem, []).append(path)
    return index


def aave_artifact(name: str) -> Artifact:
    """A contract artifact shipped in @aave/core-v3, by contract name."""
    paths = _aave_artifact_index(aave_artifacts_dir()).get(name, [])
    if len(paths) != 1:
        raise ArtifactError(f"expected one @aave/core-v3 artifact named {name}, found {paths}")
    return Artifact.from_file(paths[0])


class SyncDeployer:
    """Deploys and calls contracts from one funded account, with a local nonce counter."""

    def __init__(self, w3: Web3, account: LocalAccount) -> None:
        self.w3 = w3
        self.account = account
        self.nonce = w3.eth.get_transaction_count(account.address, "pending")
        self.tx_count = 0
        self.gas_used = 0

    def _send(self, tx: dict[str, Any]) -> TxReceipt:
        tx = {
            "type": 2,
            "chainId": CHAIN_ID,
            "nonce": self.nonce,
            "maxFeePerGas": DEPLOY_MAX_FEE,
            "maxPriorityFeePerGas": DEPLOY_TIP,
            "value": 0,
            **tx,
        }
        if "gas" not in tx:
            estimate = self.w3.eth.estimate_gas({**tx, "from": self.account.address})
            tx["gas"] = with_gas_margin(estimate)
        signed = self.account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self.nonce += 1
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.005)
        if receipt["status"] != 1:
            raise ArtifactError(f"deployment transaction {tx_hash.hex()} reverted")
        self.tx_count += 1
        self.gas_used += int(receipt["gasUsed"])
        return receipt

    def deploy(
        self, artifact: Artifact, *args: Any, libraries: Mapping[str, str] | None = None
    ) -> Contract:
        """Deploy `artifact` with constructor `args`; returns a bound contract."""
        bytecode = artifact.linked(libraries or {})
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=bytecode)
        data = factory.constructor(*args).data_in_transaction
        receipt = self._send({"data": data})
        address = receipt["contractAddress"]
        if address is None:
            raise ArtifactError(f"{artifact.name}: no contract address in receipt")
        return self.w3.eth.contract(address=address, abi=artifact.abi)

    def transact(self, call: ContractFunction, value: int = 0) -> TxReceipt:
        """Send a state-changing contract call and wait for its successful receipt."""
        tx = call.build_transaction(
            {
                "from": self.account.address,
                "nonce": self.nonce,
                "value": value,
                "maxFeePerGas": DEPLOY_MAX_FEE,
                "maxPriorityFeePerGas": DEPLOY_TIP,
                "chainId": CHAIN_ID,
            }
        )
        tx.pop("from", None)
        tx["gas"] = with_gas_margin(int(tx["gas"]))
        return self._send(dict(tx))
