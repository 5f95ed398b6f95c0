"""Minimal ABIs for the calls the tests (and later the on-chain executors) make.

Written as Solidity-style signatures and expanded to JSON ABI entries; `test_chain_deploy` checks
each entry against the real artifact, so a typo here fails loudly instead of mis-encoding calls.
"""

from __future__ import annotations

import re
from typing import Any

AbiEntry = dict[str, Any]

_SIGNATURE = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$")


def _params(text: str, *, allow_indexed: bool = False) -> list[dict[str, Any]]:
    """`"address indexed from, uint256 value"` -> ABI parameter dicts (no tuple types)."""
    params: list[dict[str, Any]] = []
    for raw in filter(None, (part.strip() for part in text.split(","))):
        words = raw.split()
        indexed = "indexed" in words[1:]
        if indexed and not allow_indexed:
            raise ValueError(f"'indexed' outside an event: {raw!r}")
        names = [w for w in words[1:] if w != "indexed"]
        param: dict[str, Any] = {"type": words[0], "name": names[0] if names else ""}
        if allow_indexed:
            param["indexed"] = indexed
        params.append(param)
    return params


def _split(signature: str) -> tuple[str, str]:
    match = _SIGNATURE.match(signature)
    if not match:
        raise ValueError(f"bad signature: {signature!r}")
    return match.group(1), match.group(2)


def fn(signature: str, returns: str = "", mutability: str = "nonpayable") -> AbiEntry:
    """A function entry from e.g. ``fn("balanceOf(address account)", "uint256", "view")``."""
    name, inputs = _split(signature)
    return {
        "type": "function",
        "name": name,
        "inputs": _params(inputs),
        "outputs": _params(returns),
        "stateMutability": mutability,
    }


def view(signature: str, returns: str) -> AbiEntry:
    return fn(signature, returns, "view")


def event(signature: str) -> AbiEntry:
    name, inputs = _split(signature)
    return {
        "type": "event",
        "name": name,
        "inputs": _params(inputs, allow_indexed=True),
        "anonymous": False,
    }


def error(signature: str) -> AbiEntry:
    name, inputs = _split(signature)
    return {"type": "error", "name": name, "inputs": _params(inputs)}


ERC20: list[AbiEntry] = [
    view("name()", "string"),
    view("symbol()", "string"),
    view("decimals()", "uint8"),
    view("totalSupply()", "uint256"),
    view("balanceOf(address account)", "uint256"),
    view("allowance(address owner, address spender)", "uint256"),
    fn("approve(address spender, uint256 amount)", "bool"),
    fn("transfer(address to, uint256 amount)", "bool"),
    fn("transferFrom(address from, address to, uint256 amount)", "bool"),
    event("Transfer(address indexed from, address indexed to, uint256 value)"),
    event("Approval(address indexed owner, address indexed spender, uint256 value)"),
]

# Aave's test token (open mint); the tests' USDT.
MINTABLE_ERC20: list[AbiEntry] = [*ERC20, fn("mint(address account, uint256 value)", "bool")]

WETH9: list[AbiEntry] = [
    *ERC20,
    fn("deposit()", mutability="payable"),
    fn("withdraw(uint256 wad)"),
    event("Deposit(address indexed dst, uint256 wad)"),
    event("Withdrawal(address indexed src, uint256 wad)"),
]

POOL_ADDRESSES_PROVIDER: list[AbiEntry] = [
    view("getMarketId()", "string"),
    view("getPool()", "address"),
    view("getPoolConfigurator()", "address"),
    view("getPriceOracle()", "address"),
    view("getACLManager()", "address"),
    view("getACLAdmin()", "address"),
    view("getPoolDataProvider()", "address"),
]

# Interest rate modes for borrow/repay (stable borrowing is disabled on the local market).
VARIABLE_RATE = 2

POOL: list[AbiEntry] = [
    fn("supply(address asset, uint256 amount, address onBehalfOf, uint16 referralCode)"),
    fn("withdraw(address asset, uint256 amount, address to)", "uint256"),
    fn(
        "borrow(address asset, uint256 amount, uint256 interestRateMode, uint16 referralCode,"
        " address onBehalfOf)"
    ),
    fn(
        "repay(address asset, uint256 amount, uint256 interestRateMode, address onBehalfOf)",
        "uint256",
    ),
    fn("setUserUseReserveAsCollateral(address asset, bool useAsCollateral)"),
    view(
        "getUserAccountData(address user)",
        "uint256 totalCollateralBase, uint256 totalDebtBase, uint256 availableBorrowsBase,"
        " uint256 currentLiquidationThreshold, uint256 ltv, uint256 healthFactor",
    ),
    view("getReservesList()", "address[]"),
    event(
        "Supply(address indexed reserve, address user, address indexed onBehalfOf,"
        " uint256 amount, uint16 indexed referralCode)"
    ),
    event(
        "Borrow(address indexed reserve, address user, address indexed onBehalfOf,"
        " uint256 amount, uint8 interestRateMode, uint256 borrowRate,"
        " uint16 indexed referralCode)"
    ),
    event(
        "Repay(address indexed reserve, address indexed user, address indexed repayer,"
        " uint256 amount, bool useATokens)"
    ),
    event(
        "Withdraw(address indexed reserve, address indexed user, address indexed to,"
        " uint256 amount)"
    ),
]

AAVE_ORACLE: list[AbiEntry] = [
    view("getAssetPrice(address asset)", "uint256"),
    view("getSourceOfAsset(address asset)", "address"),
    fn("setAssetSources(address[] assets, address[] sources)"),
]

POOL_DATA_PROVIDER: list[AbiEntry] = [
    view(
        "getReserveTokensAddresses(address asset)",
        "address aTokenAddress, address stableDebtTokenAddress, address variableDebtTokenAddress",
    ),
    view(
        "getReserveConfigurationData(address asset)",
        "uint256 decimals, uint256 ltv, uint256 liquidationThreshold, uint256 liquidationBonus,"
        " uint256 reserveFactor, bool usageAsCollateralEnabled, bool borrowingEnabled,"
        " bool stableBorrowRateEnabled, bool isActive, bool isFrozen",
    ),
    view(
        "getUserReserveData(address asset, address user)",
        "uint256 currentATokenBalance, uint256 currentStableDebt, uint256 currentVariableDebt,"
        " uint256 principalStableDebt, uint256 scaledVariableDebt, uint256 stableBorrowRate,"
        " uint256 liquidityRate, uint40 stableRateLastUpdated, bool usageAsCollateralEnabled",
    ),
]

STAKED_ETHER: list[AbiEntry] = [
    *ERC20,
    fn("stake()", "uint256 shares", "payable"),
    view("exchangeRate()", "uint256"),
    view("unstakeDelay()", "uint256"),
    view("pendingClaims()", "uint256"),
    view("previewStake(uint256 ethAmount)", "uint256"),
    view("previewUnstake(uint256 shares)", "uint256"),
    fn("requestUnstake(uint256 shares)", "uint256 requestId"),
    fn("claim(uint256 requestId)", "uint256 ethAmount"),
    view(
        "getRequest(uint256 requestId)",
        "address account, uint256 ethAmount, uint256 claimableAt, bool claimed",
    ),
    fn("setExchangeRate(uint256 newRate)"),
    fn("setUnstakeDelay(uint256 newDelay)"),
    fn("topUp()", mutability="payable"),
    event("Staked(address indexed account, uint256 ethAmount, uint256 shares, uint256 rate)"),
    event(
        "UnstakeRequested(uint256 indexed requestId, address indexed account, uint256 shares,"
        " uint256 ethAmount, uint256 claimableAt)"
    ),
    event("Claimed(uint256 indexed requestId, address indexed account, uint256 ethAmount)"),
    error("ClaimNotReady(uint256 requestId, uint256 claimableAt, uint256 nowTimestamp)"),
    error("NotRequestOwner(uint256 requestId, address caller)"),
    error("AlreadyClaimed(uint256 requestId)"),
    error("InsufficientBalance(address account, uint256 balance, uint256 needed)"),
    error("ZeroAmount()"),
]

# Aave's price feed mock, swapped in by `AaveOracle.setAssetSources` to move a price.
MOCK_AGGREGATOR: list[AbiEntry] = [view("latestAnswer()", "int256")]
