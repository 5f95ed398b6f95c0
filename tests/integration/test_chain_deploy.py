"""The chain harness itself: anvil lifecycle and determinism, the Aave deployment as seen through
the PoolAddressesProvider, minimal ABIs checked against the real artifacts, the committed
StakedEther artifact, and the clear errors for missing tools or stale builds."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import ContractLogicError

from tests.chain import abi, staking
from tests.chain.aave import (
    ETH_PRICE,
    MARKET_ID,
    SEED_USDT,
    STKETH_PARAMS,
    USDT_PARAMS,
    USDT_PRICE,
    WETH_PARAMS,
    AaveRevert,
    ReserveParams,
    decode_aave_revert,
    receipt_token_price,
)
from tests.chain.anvil import (
    BLOCK_INTERVAL_S,
    GENESIS_TIMESTAMP,
    AnvilControl,
    AnvilError,
    AnvilNode,
)
from tests.chain.build_contracts import compile_all, stale_artifacts
from tests.chain.deploy import ArtifactError, aave_artifact
from tests.chain.harness import ETHER, Chain
from tests.chain.staking import INITIAL_RATE
from tests.chain.toolpaths import ChainToolsMissingError

pytest_plugins = ["tests.chain.fixtures"]


async def test_pool_addresses_resolve_from_the_addresses_provider(chain: Chain) -> None:
    """Every market address is registered in the PoolAddressesProvider and holds code."""
    provider = chain.addresses_provider.functions
    market = chain.market
    assert await provider.getMarketId().call() == MARKET_ID
    assert await provider.getPool().call() == market.pool
    assert await provider.getPoolConfigurator().call() == market.pool_configurator
    assert await provider.getPriceOracle().call() == market.oracle
    assert await provider.getACLManager().call() == market.acl_manager
    assert await provider.getACLAdmin().call() == market.admin
    assert await provider.getPoolDataProvider().call() == market.data_provider
    for address in (market.pool, market.pool_configurator, market.oracle, market.data_provider):
        assert len(await chain.w3.eth.get_code(address)) > 0
    assert await chain.pool.functions.getReservesList().call() == [
        market.usdt,
        market.weth,
        market.stketh,
    ]


@pytest.mark.parametrize(
    ("asset", "decimals", "params"),
    [("usdt", 6, USDT_PARAMS), ("weth", 18, WETH_PARAMS), ("stketh", 18, STKETH_PARAMS)],
)
async def test_reserves_are_configured_priced_and_seeded(
    chain: Chain, asset: str, decimals: int, params: ReserveParams
) -> None:
    """Each reserve has its risk parameters, an oracle price and seed liquidity."""
    address = getattr(chain.market, asset)
    token = chain.erc20(address)
    assert await token.functions.decimals().call() == decimals
    assert await token.functions.symbol().call() == params.symbol
    config = await chain.data_provider.functions.getReserveConfigurationData(address).call()
    dec, ltv, threshold, bonus, factor, collateral, borrowing, stable, active, frozen = config
    assert (dec, ltv, threshold, bonus, factor) == (
        decimals,
        params.ltv,
        params.liquidation_threshold,
        params.liquidation_bonus,
        params.reserve_factor,
    )
    assert (collateral, borrowing, stable, active, frozen) == (
        True,
        params.borrowing,
        False,
        True,
        False,
    )
    expected_price = {
        "usdt": USDT_PRICE,
        "weth": ETH_PRICE,
        "stketh": receipt_token_price(ETH_PRICE, INITIAL_RATE),
    }[asset]
    assert await chain.oracle.functions.getAssetPrice(address).call() == expected_price
    a_token, _, _ = await chain.data_provider.functions.getReserveTokensAddresses(address).call()
    assert await chain.erc20(a_token).functions.totalSupply().call() > 0
    if asset == "usdt":
        assert await chain.erc20(a_token).functions.totalSupply().call() == SEED_USDT


def _shape(entry: dict[str, Any]) -> tuple[Any, ...]:
    """What an ABI entry's encoding depends on (parameter names are ours to choose)."""
    return (
        entry["type"],
        entry.get("name"),
        tuple((i["type"], i.get("indexed", False)) for i in entry.get("inputs", [])),
        tuple(o["type"] for o in entry.get("outputs", [])),
        entry.get("stateMutability"),
    )


@pytest.mark.parametrize(
    ("minimal", "artifact"),
    [
        (abi.MINTABLE_ERC20, "MintableERC20"),
        (abi.WETH9, "WETH9"),
        (abi.POOL_ADDRESSES_PROVIDER, "PoolAddressesProvider"),
        (abi.POOL, "Pool"),
        (abi.AAVE_ORACLE, "AaveOracle"),
        (abi.POOL_DATA_PROVIDER, "AaveProtocolDataProvider"),
        (abi.MOCK_AGGREGATOR, "MockAggregator"),
        (abi.STAKED_ETHER, "StakedEther"),
    ],
)
def test_minimal_abis_match_the_real_artifacts(
    minimal: list[dict[str, Any]], artifact: str
) -> None:
    """Every hand-written ABI entry exists, identically typed, in the real contract's ABI."""
    real_abi = (
        staking.staked_ether_artifact().abi
        if artifact == "StakedEther"
        else aave_artifact(artifact).abi
    )
    real = {_shape(entry) for entry in real_abi}
    missing = [entry["name"] for entry in minimal if _shape(entry) not in real]
    assert missing == []


def test_committed_staking_artifact_is_reproducible_with_solcjs() -> None:
    """Recompiling contracts/*.sol with the npm solc-js yields the committed build/*.json."""
    assert stale_artifacts(compile_all()) == []


def test_edited_contract_without_rebuild_is_reported_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading the artifact for a source that changed names the rebuild command."""
    edited = tmp_path / "StakedEther.sol"
    shutil.copy(staking.CONTRACTS_DIR / "StakedEther.sol", edited)
    edited.write_text(edited.read_text() + "\n// edited\n")
    monkeypatch.setattr(staking, "CONTRACTS_DIR", tmp_path)
    with pytest.raises(ArtifactError, match=r"stale: run .*build_contracts"):
        staking.staked_ether_artifact()


def test_missing_node_modules_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the npm tools the harness says to run `make install` / `npm ci`."""
    monkeypatch.setenv("ANVIL_BIN", "/nonexistent/node_modules/.bin/anvil")
    with pytest.raises(ChainToolsMissingError, match=r"make install.*npm ci"):
        AnvilNode().start()
    monkeypatch.setenv("AAVE_ARTIFACTS", "/nonexistent/artifacts")
    with pytest.raises(ChainToolsMissingError, match="make install"):
        aave_artifact("Pool")


def test_anvil_picks_a_free_port_and_is_killed_at_stop(fresh_anvil: AnvilNode) -> None:
    """Two nodes get different OS-chosen ports; stop() reaps the process and closes the port."""
    with AnvilNode() as second:
        assert second.port != fresh_anvil.port
        url, proc_pid = second.rpc_url, second.pid
        assert second.is_running()
        assert int(second.rpc("eth_chainId"), 16) == 31337
    assert not second.is_running()
    assert proc_pid is not None
    assert not Path(f"/proc/{proc_pid}").exists()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


async def test_block_timestamps_depend_only_on_block_history(fresh_anvil: AnvilNode) -> None:
    """Timestamps are genesis + a fixed step per block (no wall clock), and revert restores them."""
    w3 = AsyncWeb3(AsyncHTTPProvider(fresh_anvil.rpc_url))
    control = AnvilControl(w3)
    try:
        await control.mine(3)
        assert await control.latest_timestamp() == GENESIS_TIMESTAMP + 3 * BLOCK_INTERVAL_S
        snapshot_id = await control.snapshot()
        await control.mine_at(GENESIS_TIMESTAMP + 10_000)
        await control.mine()
        assert await control.latest_timestamp() == GENESIS_TIMESTAMP + 10_000 + BLOCK_INTERVAL_S
        await control.revert(snapshot_id)
        await control.mine()
        assert await control.latest_timestamp() == GENESIS_TIMESTAMP + 4 * BLOCK_INTERVAL_S
    finally:
        await w3.provider.disconnect()


async def test_snapshot_revert_restores_state_and_ids_are_single_use(
    fresh_anvil: AnvilNode,
) -> None:
    """evm_revert restores balances and height; reusing a snapshot id is an error."""
    w3 = AsyncWeb3(AsyncHTTPProvider(fresh_anvil.rpc_url))
    control = AnvilControl(w3)
    who = "0x000000000000000000000000000000000000bEEF"
    try:
        snapshot_id = await control.snapshot()
        await control.set_balance(who, 5 * ETHER)
        await control.mine(2)
        assert await w3.eth.get_balance(who) == 5 * ETHER
        await control.revert(snapshot_id)
        assert await w3.eth.get_balance(who) == 0
        assert await w3.eth.block_number == 0
        with pytest.raises(AnvilError, match="returned false"):
            await control.revert(snapshot_id)
    finally:
        await w3.provider.disconnect()


def _error_string(reason: str) -> str:
    return "0x08c379a0" + abi_encode(["string"], [reason]).hex()


def test_aave_revert_codes_decode_from_data_or_message() -> None:
    """Aave codes are read from Error(string) data, else from the message; others are None."""
    from_data = ContractLogicError("execution reverted", data=_error_string("36"))
    assert decode_aave_revert(from_data) == AaveRevert(36, "COLLATERAL_CANNOT_COVER_NEW_BORROW")
    from_message = ContractLogicError("execution reverted: 26", data=None)
    assert decode_aave_revert(from_message) == AaveRevert(26, "INVALID_AMOUNT")
    not_aave = ContractLogicError(
        "execution reverted: ERC20: transfer amount exceeds balance",
        data=_error_string("ERC20: transfer amount exceeds balance"),
    )
    assert decode_aave_revert(not_aave) is None
    unknown_code = ContractLogicError("execution reverted: 48", data=_error_string("48"))
    assert decode_aave_revert(unknown_code) is None  # 48 is unused in Errors.sol
