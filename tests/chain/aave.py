"""Deploy the real Aave v3 market from the @aave/core-v3 npm artifacts onto anvil.

The order (each step needs what the earlier ones deployed): test assets, PoolAddressesProvider,
ACLManager, the logic libraries, the linked Pool and PoolConfigurator (proxied by the provider),
data provider, oracle with mock Chainlink feeds, token implementations, reserves, risk parameters, then seed
liquidity so borrows never hit the rate strategy's underflow on an empty reserve.
Also decodes Aave's numeric revert codes (names read from the package's Errors.sol).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import AsyncWeb3, Web3
from web3.exceptions import ContractLogicError

from tests.chain import abi
from tests.chain.deploy import Artifact, SyncDeployer, aave_artifact
from tests.chain.staking import INITIAL_RATE, RATE_UNIT, deploy_staked_ether
from tests.chain.toolpaths import aave_sources_dir
from tests.chain.tx import AsyncSender

RAY = 10**27
WAD = 10**18
PRICE_UNIT = 10**8  # the oracle's base currency is USD with 8 decimals, like Chainlink feeds
ETH_PRICE = 3_000 * PRICE_UNIT
USDT_PRICE = 1 * PRICE_UNIT
MARKET_ID = "Execution Ledger Local Market"
# Interest rate parameters (ray): optimal usage 90%, base 0, slopes 4% / 60%, stable disabled.
RATE_STRATEGY = (
    RAY * 90 // 100,
    0,
    RAY * 4 // 100,
    RAY * 60 // 100,
    RAY * 5 // 1000,
    RAY * 60 // 100,
    RAY * 1 // 100,
    RAY * 8 // 100,
    RAY * 20 // 100,
)
LOGIC_LIBRARIES = (
    "SupplyLogic",
    "BorrowLogic",
    "LiquidationLogic",
    "EModeLogic",
    "BridgeLogic",
    "PoolLogic",
    "ConfiguratorLogic",
)
# Seed liquidity supplied by the liquidity provider account at deployment.
SEED_USDT = 10_000_000 * 10**6
SEED_WETH = 1_000 * 10**18
SEED_STAKE_ETH = 100 * 10**18


@dataclass(frozen=True)
class ReserveParams:
    """Risk parameters (basis points) for one listed reserve."""

    symbol: str
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    reserve_factor: int
    borrowing: bool


USDT_PARAMS = ReserveParams("USDT", 7_500, 8_000, 10_500, 1_000, borrowing=True)
WETH_PARAMS = ReserveParams("WETH", 8_000, 8_250, 10_500, 1_000, borrowing=True)
# Liquid-staking receipts are collateral-only on Aave (wstETH: LTV 70-80%, not borrowable here).
STKETH_PARAMS = ReserveParams("stkETH", 7_000, 7_500, 10_700, 1_000, borrowing=False)


@dataclass(frozen=True)
class AaveMarket:
    """Addresses of a deployed local Aave v3 market and its assets."""

    addresses_provider: str
    pool: str
    pool_configurator: str
    acl_manager: str
    oracle: str
    data_provider: str
    usdt: str
    weth: str
    stketh: str
    aggregators: dict[str, str]
    admin: str
    liquidity_provider: str
    deploy_block: int
    tx_count: int
    gas_used: int

    @property
    def reserves(self) -> dict[str, str]:
        return {"USDT": self.usdt, "WETH": self.weth, "stkETH": self.stketh}


def receipt_token_price(eth_price: int, rate: int) -> int:
    """USD price (8 decimals) of one staking receipt token worth `rate` wei of ETH."""
    return eth_price * rate // RATE_UNIT


def aave_health_factor(collateral_base: int, liquidation_threshold_bps: int, debt_base: int) -> int:
    """Health factor (wad) as Aave computes it: percentMul then wadDiv, both rounding half up."""
    if debt_base == 0:
        return 2**256 - 1
    weighted = (collateral_base * liquidation_threshold_bps + 5_000) // 10_000
    return (weighted * WAD + debt_base // 2) // debt_base


def _init_reserve_input(
    asset: Any,
    decimals: int,
    symbol: str,
    impls: Mapping[str, str],
    strategy: str,
    treasury: str,
) -> tuple[Any, ...]:
    """One `ConfiguratorInputTypes.InitReserveInput`, as a tuple in ABI field order."""
    return (
        impls["AToken"],
        impls["StableDebtToken"],
        impls["VariableDebtToken"],
        decimals,
        strategy,
        asset,
        treasury,
        "0x0000000000000000000000000000000000000000",  # no incentives controller
        f"Aave Local {symbol}",
        f"aLoc{symbol}",
        f"Aave Local Variable Debt {symbol}",
        f"variableDebtLoc{symbol}",
        f"Aave Local Stable Debt {symbol}",
        f"stableDebtLoc{symbol}",
        b"",
    )


def deploy_aave_market(
    w3: Web3, admin: LocalAccount, liquidity_provider: LocalAccount, treasury: str
) -> AaveMarket:
    """Deploy Aave v3 core plus USDT, WETH9 and the staking receipt as reserves, then seed them."""
    d = SyncDeployer(w3, admin)
    me = admin.address

    # 1. Test assets: Aave's own test ERC20 as USDT, the package's WETH9, our staking receipt.
    usdt = d.deploy(aave_artifact("MintableERC20"), "Tether USD", "USDT", 6)
    weth = d.deploy(aave_artifact("WETH9"))
    stketh = deploy_staked_ether(d)

    # 2-3. Addresses provider and access control.
    provider = d.deploy(aave_artifact("PoolAddressesProvider"), MARKET_ID, me)
    d.transact(provider.functions.setACLAdmin(me))
    acl = d.deploy(aave_artifact("ACLManager"), provider.address)
    d.transact(provider.functions.setACLManager(acl.address))
    for grant in ("addPoolAdmin", "addRiskAdmin", "addEmergencyAdmin", "addAssetListingAdmin"):
        d.transact(getattr(acl.functions, grant)(me))

    # 4. Logic libraries; FlashLoanLogic itself links BorrowLogic.
    libraries = {name: d.deploy(aave_artifact(name)).address for name in LOGIC_LIBRARIES}
    libraries["FlashLoanLogic"] = d.deploy(
        aave_artifact("FlashLoanLogic"), libraries=libraries
    ).address

    # 5. Pool implementation; the provider deploys the proxy and initializes it.
    pool_artifact = aave_artifact("Pool")
    pool_impl = d.deploy(pool_artifact, provider.address, libraries=libraries)
    d.transact(pool_impl.functions.initialize(provider.address))
    d.transact(provider.functions.setPoolImpl(pool_impl.address))
    pool = w3.eth.contract(address=provider.functions.getPool().call(), abi=pool_artifact.abi)

    # 6. PoolConfigurator, likewise behind a provider-made proxy.
    configurator_artifact = aave_artifact("PoolConfigurator")
    configurator_impl = d.deploy(configurator_artifact, libraries=libraries)
    d.transact(configurator_impl.functions.initialize(provider.address))
    d.transact(provider.functions.setPoolConfiguratorImpl(configurator_impl.address))
    configurator = w3.eth.contract(
        address=provider.functions.getPoolConfigurator().call(), abi=configurator_artifact.abi
    )

    # 7. Data provider.
    data_provider = d.deploy(aave_artifact("AaveProtocolDataProvider"), provider.address)
    d.transact(provider.functions.setPoolDataProvider(data_provider.address))

    # 8. Oracle: USD base with 8 decimals, one mock Chainlink feed per asset.
    aggregator = aave_artifact("MockAggregator")
    prices = {
        usdt.address: USDT_PRICE,
        weth.address: ETH_PRICE,
        stketh.address: receipt_token_price(ETH_PRICE, INITIAL_RATE),
    }
    feeds = {asset: d.deploy(aggregator, price).address for asset, price in prices.items()}
    zero = "0x0000000000000000000000000000000000000000"
    oracle = d.deploy(
        aave_artifact("AaveOracle"),
        provider.address,
        list(feeds),
        list(feeds.values()),
        zero,
        zero,
        PRICE_UNIT,
    )
    d.transact(provider.functions.setPriceOracle(oracle.address))

    # 9. Token implementations (bound to the pool proxy) and one rate strategy for all reserves.
    impls = {
        name: d.deploy(aave_artifact(name), pool.address).address
        for name in ("AToken", "StableDebtToken", "VariableDebtToken")
    }
    strategy = d.deploy(
        aave_artifact("DefaultReserveInterestRateStrategy"), provider.address, *RATE_STRATEGY
    ).address

    # 10. List the reserves.
    listed = ((usdt, 6, USDT_PARAMS), (weth, 18, WETH_PARAMS), (stketh, 18, STKETH_PARAMS))
    inputs = [
        _init_reserve_input(token.address, decimals, params.symbol, impls, strategy, treasury)
        for token, decimals, params in listed
    ]
    d.transact(configurator.functions.initReserves(inputs))

    # 11. Risk parameters.
    for token, _, params in listed:
        d.transact(
            configurator.functions.configureReserveAsCollateral(
                token.address, params.ltv, params.liquidation_threshold, params.liquidation_bonus
            )
        )
        d.transact(configurator.functions.setReserveFactor(token.address, params.reserve_factor))
        if params.borrowing:
            d.transact(configurator.functions.setReserveBorrowing(token.address, True))

    # 12. Seed liquidity from a separate account, so test users borrow real supplied funds.
    lp = SyncDeployer(w3, liquidity_provider)
    lp_address = liquidity_provider.address
    lp.transact(usdt.functions.mint(lp_address, SEED_USDT))
    lp.transact(weth.functions.deposit(), value=SEED_WETH)
    lp.transact(stketh.functions.stake(), value=SEED_STAKE_ETH)
    seeded = (
        (usdt, SEED_USDT),
        (weth, SEED_WETH),
        (stketh, stketh.functions.balanceOf(lp_address).call()),
    )
    for token, amount in seeded:
        lp.transact(token.functions.approve(pool.address, amount))
        lp.transact(pool.functions.supply(token.address, amount, lp_address, 0))

    return AaveMarket(
        addresses_provider=provider.address,
        pool=pool.address,
        pool_configurator=configurator.address,
        acl_manager=acl.address,
        oracle=oracle.address,
        data_provider=data_provider.address,
        usdt=usdt.address,
        weth=weth.address,
        stketh=stketh.address,
        aggregators=feeds,
        admin=me,
        liquidity_provider=lp_address,
        deploy_block=w3.eth.block_number,
        tx_count=d.tx_count + lp.tx_count,
        gas_used=d.gas_used + lp.gas_used,
    )


async def set_asset_price(
    w3: AsyncWeb3, admin: AsyncSender, oracle: str, asset: str, price: int
) -> str:
    """Point the Aave oracle at a fresh MockAggregator answering `price`; returns its address."""
    aggregator: Artifact = aave_artifact("MockAggregator")
    factory = w3.eth.contract(abi=aggregator.abi, bytecode=aggregator.bytecode)
    data = factory.constructor(price).data_in_transaction
    receipt = await admin.transact({"data": data})
    feed = receipt["contractAddress"]
    oracle_contract = w3.eth.contract(address=oracle, abi=abi.AAVE_ORACLE)
    await admin.transact(oracle_contract.functions.setAssetSources([asset], [feed]))
    return str(feed)


# ---- revert codes ----

_ERROR_CONSTANT = re.compile(r"string public constant (\w+) = '(\d+)';")
_ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
_REVERT_MESSAGE = re.compile(r"execution reverted:?\s*(\d+)\s*$")


@cache
def aave_error_names() -> dict[int, str]:
    """Aave's numeric revert codes mapped to their names, read from the package's Errors.sol."""
    source = aave_sources_dir() / "protocol/libraries/helpers/Errors.sol"
    return {int(code): name for name, code in _ERROR_CONSTANT.findall(source.read_text())}


@dataclass(frozen=True)
class AaveRevert:
    """An Aave revert: the numeric code from `Errors.sol` and its constant's name."""

    code: int
    name: str


def decode_aave_revert(exc: ContractLogicError) -> AaveRevert | None:
    """The Aave error code carried by a web3 revert, or None if it is not an Aave code.

    Aave reverts with `require(cond, Errors.X)`, i.e. `Error(string)` whose string is a number;
    the ABI-encoded data is preferred, the message text is the fallback.
    """
    reason: str | None = None
    data = exc.data
    if isinstance(data, str) and data.startswith("0x"):
        raw = HexBytes(data)
        if raw[:4] == _ERROR_STRING_SELECTOR:
            (reason,) = abi_decode(["string"], raw[4:])
    if reason is None and exc.message:
        match = _REVERT_MESSAGE.search(exc.message)
        reason = match.group(1) if match else None
    if reason is None or not reason.isdigit():
        return None
    code = int(reason)
    name = aave_error_names().get(code)
    return AaveRevert(code, name) if name else None
