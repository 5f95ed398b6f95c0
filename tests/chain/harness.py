"""`Chain`: what an on-chain test gets — an `AsyncWeb3` client, anvil controls, the deployed
market's contracts bound to the minimal ABIs, and funded, deterministically keyed actors."""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.contract import AsyncContract
from web3.types import TxReceipt

from tests.chain import abi
from tests.chain.aave import ETH_PRICE, AaveMarket, receipt_token_price, set_asset_price
from tests.chain.anvil import AnvilControl, AnvilNode, DevAccounts
from tests.chain.tx import AsyncSender, actor_key

ETHER = 10**18
USDT_UNIT = 10**6
DEFAULT_ACTOR_BALANCE = 1_000 * ETHER


@dataclass
class Chain:
    """One test's view of the session's anvil node and Aave market."""

    node: AnvilNode
    w3: AsyncWeb3
    control: AnvilControl
    market: AaveMarket
    accounts: DevAccounts
    _actors: dict[str, AsyncSender] = field(default_factory=dict)

    @classmethod
    def connect(cls, node: AnvilNode, market: AaveMarket, accounts: DevAccounts) -> Chain:
        w3 = AsyncWeb3(AsyncHTTPProvider(node.rpc_url))
        return cls(node=node, w3=w3, control=AnvilControl(w3), market=market, accounts=accounts)

    async def close(self) -> None:
        await self.w3.provider.disconnect()

    # ---- contracts (minimal ABIs, as an executor would ship them) ----

    def _contract(self, address: str, contract_abi: list[abi.AbiEntry]) -> AsyncContract:
        return self.w3.eth.contract(address=self.w3.to_checksum_address(address), abi=contract_abi)

    @property
    def addresses_provider(self) -> AsyncContract:
        return self._contract(self.market.addresses_provider, abi.POOL_ADDRESSES_PROVIDER)

    @property
    def pool(self) -> AsyncContract:
        return self._contract(self.market.pool, abi.POOL)

    @property
    def oracle(self) -> AsyncContract:
        return self._contract(self.market.oracle, abi.AAVE_ORACLE)

    @property
    def data_provider(self) -> AsyncContract:
        return self._contract(self.market.data_provider, abi.POOL_DATA_PROVIDER)

    @property
    def usdt(self) -> AsyncContract:
        return self._contract(self.market.usdt, abi.MINTABLE_ERC20)

    @property
    def weth(self) -> AsyncContract:
        return self._contract(self.market.weth, abi.WETH9)

    @property
    def stketh(self) -> AsyncContract:
        return self._contract(self.market.stketh, abi.STAKED_ETHER)

    def erc20(self, address: str) -> AsyncContract:
        return self._contract(address, abi.ERC20)

    # ---- actors ----

    @property
    def admin(self) -> AsyncSender:
        """The deployer: pool/risk admin of the market and owner of the staking contract."""
        return self.sender(self.accounts[0])

    def sender(self, account: LocalAccount) -> AsyncSender:
        return AsyncSender(self.w3, account)

    async def actor(self, label: str, balance: int = DEFAULT_ACTOR_BALANCE) -> AsyncSender:
        """A fresh account with a key derived from `label`, funded via `anvil_setBalance`."""
        if label not in self._actors:
            account = Account.from_key(actor_key(label))
            await self.control.set_balance(account.address, balance)
            self._actors[label] = self.sender(account)
        return self._actors[label]

    # ---- market operations that need the admin ----

    async def set_price(self, asset: str, price: int) -> None:
        """Move an asset's oracle price (USD, 8 decimals)."""
        await set_asset_price(self.w3, self.admin, self.market.oracle, asset, price)

    async def set_staking_rate(self, rate: int, eth_price: int = ETH_PRICE) -> None:
        """Set the receipt token's exchange rate and re-price it in the oracle to match."""
        await self.admin.transact(self.stketh.functions.setExchangeRate(rate))
        await self.set_price(self.market.stketh, receipt_token_price(eth_price, rate))


async def receipt_is_canonical(w3: AsyncWeb3, receipt: TxReceipt) -> bool:
    """Whether the block at the receipt's height still has the receipt's block hash."""
    block = await w3.eth.get_block(receipt["blockNumber"])
    return bool(block["hash"] == receipt["blockHash"])
