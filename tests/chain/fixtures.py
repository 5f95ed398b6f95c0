"""pytest fixtures: one anvil node and Aave deployment per session, a snapshot/revert per test.

Use from a test module with ``pytest_plugins = ["tests.chain.fixtures"]`` (or from a conftest).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from web3 import Web3

from tests.chain.aave import AaveMarket, deploy_aave_market
from tests.chain.anvil import AnvilNode, DevAccounts, dev_accounts
from tests.chain.deploy import ArtifactError
from tests.chain.harness import Chain
from tests.chain.toolpaths import ChainToolsMissingError


def _start_node() -> AnvilNode:
    try:
        return AnvilNode().start()
    except ChainToolsMissingError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def dev_keys() -> DevAccounts:
    """anvil's ten prefunded accounts: #0 admin/deployer, #1 liquidity provider, #9 treasury."""
    return dev_accounts()


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[AnvilNode]:
    """A session-wide anvil on a free loopback port, killed at teardown."""
    node = _start_node()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def aave_market(anvil_node: AnvilNode, dev_keys: DevAccounts) -> AaveMarket:
    """The real Aave v3 market (USDT, WETH, stkETH reserves, seeded) deployed once per session."""
    w3 = Web3(Web3.HTTPProvider(anvil_node.rpc_url))
    try:
        return deploy_aave_market(w3, dev_keys[0], dev_keys[1], treasury=dev_keys[9].address)
    except (ChainToolsMissingError, ArtifactError) as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
async def chain(
    anvil_node: AnvilNode, aave_market: AaveMarket, dev_keys: DevAccounts
) -> AsyncIterator[Chain]:
    """The shared node and market, rolled back to the post-deployment state after the test."""
    session = Chain.connect(anvil_node, aave_market, dev_keys)
    snapshot_id = await session.control.snapshot()
    try:
        yield session
    finally:
        # Mining mode and the mempool are not part of a snapshot: restore them explicitly.
        await session.control.set_automine(True)
        await session.control.drop_all_transactions()
        await session.control.revert(snapshot_id)
        await session.close()


@pytest.fixture
def fresh_anvil() -> Iterator[AnvilNode]:
    """A private, empty anvil for tests that must not share the session node."""
    node = _start_node()
    try:
        yield node
    finally:
        node.stop()
