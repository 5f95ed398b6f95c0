"""`LiveChain`: the on-chain backend of live mode, sending signed EIP-1559 transactions through web3.py.

Same calls as `SimulatedChain` (`execute`, `advance`, `next_due`), same lifecycle grammar and result
shape. For each instruction it plans the transactions (wrap, approve, supply, …), refuses with a
recorded rejection whatever the chain would refuse (pre-flight `eth_simulateV1` / `eth_estimateGas`,
fee cap, balance), then per transaction: nonce, sign, `TransactionSubmitted` committed, broadcast,
`TransactionMined`, and after N confirmations `TransactionConfirmed` with the effects decoded from
the receipt (or `TransactionReverted` with the decoded reason). Dropped transactions are rebroadcast,
stuck ones replaced with both fee fields +12.5 %, reorged ones recorded and tracked until they land
again. A restart resolves what the ledger says was sent before it trades again (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any, Protocol

from eth_utils.address import is_address, to_checksum_address

from aggregates.transitions import State
from aggregates.values import MONEY
from executors import results
from executors.instructions import ChainInstruction
from executors.live import web3_parse as parse
from executors.live.chain_accruals import AccrualPoller
from executors.live.chain_client import ChainClient, ChainError, ChainSettings, RevertError
from executors.live.nonces import KnownTx, LedgerMemory, NonceAllocator, final_purpose, remember
from executors.market import usd_price

if TYPE_CHECKING:
    from executors.base import BaseExecutionInterface

ZERO = Decimal(0)
DUE_NOW = datetime(1970, 1, 1, tzinfo=UTC)  # "overdue": whatever time the engine advances to
VARIABLE_RATE = 2
AAVE_OPERATIONS = ("AAVE_SUPPLY", "AAVE_WITHDRAW", "AAVE_BORROW", "AAVE_REPAY")
# Node answers to a broadcast that mean "not accepted": the nonce was not used.
REFUSED_BROADCAST = (
    "nonce too low", "insufficient funds", "underpriced", "fee cap", "intrinsic gas",
    "exceeds block gas limit", "invalid", "max fee per gas less than block base fee",
)  # fmt: skip


class Refusal(Exception):
    """The instruction cannot go to the chain: a rejection code and a reason naming the field."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Step:
    """One transaction of an instruction's plan."""

    purpose: str
    to: str
    data: bytes = b""
    value: int = 0

    def call(self, sender: str) -> dict[str, Any]:
        return {"from": sender, "to": self.to, "data": self.data, "value": self.value}


@dataclass
class Sent:
    """A transaction we signed and track until it is confirmed, reverted or given up."""

    instruction_id: str
    purpose: str
    nonce: int
    fees: parse.Fees
    gas: int
    tx_hash: str
    raw: bytes | None  # None when recovered after a restart (the ledger keeps no signed bytes)
    step: Step | None
    candidates: list[str] = field(default_factory=list)  # every hash for this nonce (replacements)
    last_broadcast: float = 0.0
    missing_since: float | None = None
    replacements: int = 0
    block_number: int = 0
    block_hash: str = ""
    status: str = "pending"  # pending | confirmed | reverted | failed
    gas_used: int = 0
    effective_gas_price: int = 0
    gas_fee: Decimal = ZERO
    effects: list[dict[str, str]] = field(default_factory=list)
    reason: str = ""


@dataclass
class Run:
    """One instruction's plan and how far it got."""

    iface: BaseExecutionInterface
    op: ChainInstruction
    market: dict[str, Decimal]
    steps: list[Step]
    wallet: str
    gas_plan: list[int] = field(default_factory=list)
    fees: parse.Fees | None = None
    index: int = 0
    current: Sent | None = None
    sent: list[Sent] = field(default_factory=list)
    done: bool = False
    completes: bool = True  # False for UNSTAKE (the claim completes it)
    kind: str = "instruction"  # instruction | claim | recovered (after a restart) | reorg
    result: dict[str, Any] | None = None
    error: str = ""  # the last node failure while the run was open


@dataclass
class Claim:
    instruction_id: str
    request_id: int
    claimable_at: int  # chain timestamp
    op: ChainInstruction | None = None


class TransferLegs(Protocol):
    """The live transfer backend, as the chain sees it: which instructions are transfer legs, and what
    to record (in the confirmation's commit) once one is confirmed."""

    def is_leg(self, iface: BaseExecutionInterface, instruction_id: str) -> bool: ...

    def confirmed(
        self, iface: BaseExecutionInterface, agg: Any, instruction_id: str, tx_hash: str, ts: datetime
    ) -> None: ...


class LiveChain:
    """The live chain venue behind `OnChainExecutionInterface` (web3.py 8, `AsyncWeb3`)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.settings = ChainSettings.from_config(config)
        self.client = ChainClient(self.settings)
        self.account = self.settings.account()
        self.nonces = NonceAllocator()
        self.chain_id = self.settings.chain_id or 0
        self.pool = ""
        self.ctx = parse.ParseContext(address=self.settings.address, wallet="")
        self.decimals: dict[str, int] = dict(self.settings.decimals)
        self.runs: dict[str, Run] = {}
        self.recovering: list[Run] = []
        self.watch: list[Sent] = []  # confirmed transactions still inside the reorg window
        self.claims: list[Claim] = []
        self.plans: dict[str, tuple[str, str]] = {}  # instruction id -> (operation, token)
        self.completed: set[str] = set()
        self.legs: TransferLegs | None = None  # the live transfers whose chain legs this sends
        self.accruals = AccrualPoller(self, config)  # AAVE interest and staking value as they accrue
        self.ready = False
        self._ready_lock = asyncio.Lock()
        self._approvals = asyncio.Lock()

    @property
    def address(self) -> str:
        return self.settings.address

    # ---- start-up and recovery -------------------------------------------------------------------

    async def start(self, iface: BaseExecutionInterface) -> None:
        """Connect, check the chain, then resolve what the ledger says was sent (once)."""
        if self.ready:
            return
        async with self._ready_lock:
            if self.ready:
                return
            chain_id = await self.client.chain_id()
            if self.settings.chain_id is not None and chain_id != self.settings.chain_id:
                raise ChainError(
                    "wrong_chain", f"chain_id: the node is on chain {chain_id}, the config says "
                    f"{self.settings.chain_id}"
                )
            self.chain_id = chain_id
            if self.settings.pool_addresses_provider:
                self.pool = await self.client.call_address(self.settings.pool_addresses_provider, "getPool()")
            await self._load_tokens(iface)
            await self._recover(iface)
            self.ready = True

    async def _load_tokens(self, iface: BaseExecutionInterface) -> None:
        tokens: dict[str, parse.Token] = {}
        for symbol, where in self.settings.tokens.items():
            try:
                decimals = await self._decimals(symbol)
            except ChainError:
                continue  # instructions naming it are refused with the reason
            tokens[where.lower()] = parse.Token(symbol, decimals)
        self.ctx = parse.ParseContext(
            address=self.address,
            wallet=iface.wallet(iface.chain_venue),
            pool=self.pool,
            weth=self.settings.tokens.get("WETH", ""),
            staking=self.settings.staking_contract,
            receipt_symbol=self.settings.receipt_symbol,
            tokens=tokens,
        )

    async def _decimals(self, symbol: str) -> int:
        if symbol not in self.decimals:
            where = self.settings.tokens[symbol]
            self.decimals[symbol] = await self.client.call_uint(where, "decimals()")
        return self.decimals[symbol]

    async def _recover(self, iface: BaseExecutionInterface) -> None:
        """Resolve every transaction the ledger says was sent and is not final; seed the nonces."""
        logger, venue = iface.logger, iface.chain_venue
        agg = logger.venue(venue)
        memory = _memory(iface, agg)
        wallet = iface.wallet(venue)
        for iid, ins in memory.instructions.items():
            self.plans[iid] = (ins.get("operation", ins.get("kind", "")), ins.get("asset", ""))
        self.completed |= memory.completed
        for known in memory.unresolved(wallet):
            sent = _recovered(known)
            op = _placeholder(known.instruction_id, venue)
            run = Run(iface, op, {}, [], wallet, kind="recovered", current=sent)
            run.sent.append(sent)
            self.recovering.append(run)
        await self._resolve_recovering()
        memory = _memory(iface, agg)  # what the resolution just recorded counts too
        self.nonces.seed(memory.next_nonce(wallet), await self.client.mined_nonce(self.address))
        self._recover_claims(memory, wallet)
        head = await self.client.block_number()
        for known in memory.of_wallet(wallet):
            if known.status == "confirmed" and head - known.block_number <= self.settings.reorg_window:
                watched = _recovered(known)
                watched.status = "confirmed"
                self.watch.append(watched)  # a reorg across the restart is still seen
        pending = {r.op.instruction_id for r in self.recovering}
        for iid in sorted(set(memory.instructions) - pending):
            if memory.wallets.get(iid) != wallet or iid in memory.completed | memory.failed:
                continue
            self._settle(iface, iid, memory.last_tx(iid), recovered=True)

    def _settle(
        self, iface: BaseExecutionInterface, iid: str, last: KnownTx | Sent | None, recovered: bool
    ) -> None:
        """After a restart or a reorg: complete an instruction whose final transaction is confirmed,
        fail one that stopped part way, leave an unstake waiting for its claim."""
        logger = iface.logger
        agg = logger.venue(iface.chain_venue)
        state = agg.state_of(iid)
        operation, token = self.plans.get(iid, ("", ""))
        now = logger.now()
        if state is State.ACCEPTED and recovered:
            agg.record_rejected(iid, "interrupted", "the process stopped before any transaction was "
                                "signed; nothing was sent", {}, now)
        elif state is State.TX_CONFIRMED and last is not None:
            if last.purpose == final_purpose(operation, token) and (recovered or iid in self.completed):
                agg.record_completed(iid, now)
                self.completed.add(iid)
            elif last.purpose == "UNSTAKE":
                pass  # the claim completes it once the protocol's delay has passed
            elif recovered:
                agg.record_failed(iid, "interrupted", "the process stopped part way through the "
                                  "instruction's transactions; the remaining ones were not sent", now)
        elif state in (State.TX_DROPPED, State.TX_PENDING, State.TX_MINED) and recovered:
            agg.record_failed(iid, "interrupted", "the process stopped before this instruction's "
                              "transactions were resolved", now)
        logger.commit(agg)

    def _recover_claims(self, memory: LedgerMemory, wallet: str) -> None:
        for tx in memory.of_wallet(wallet):
            if tx.status != "confirmed" or tx.instruction_id in memory.completed | memory.failed:
                continue
            for effect in tx.effects:
                if effect.get("kind") == "unstake_requested":
                    self.claims.append(Claim(tx.instruction_id, int(effect["request_id"]),
                                             int(effect["claimable_at"])))

    # ---- the interface's calls -------------------------------------------------------------------

    async def execute(
        self, iface: BaseExecutionInterface, op: ChainInstruction, market: dict[str, Decimal], raw: Any
    ) -> dict[str, Any]:
        # Two supplies or repays planned at once would both see the old allowance, and an exact
        # approval of the second would undercut the first: those run one at a time.
        approving = op.operation in ("AAVE_SUPPLY", "AAVE_REPAY")
        async with self._approvals if approving else contextlib.nullcontext():
            return await self._execute(iface, op, market, raw)

    async def send_leg(
        self, iface: BaseExecutionInterface, op: ChainInstruction, market: dict[str, Decimal], raw: Any,
        record: dict[str, str],
    ) -> dict[str, Any]:
        """The chain leg of a live transfer: `op` is the TRANSFER to the other venue's deposit address,
        accepted with the transfer's `record`; once confirmed, `legs.confirmed` records `TransferSent`
        in the same commit, and nothing completes the instruction here (the arrival does)."""
        return await self._execute(iface, op, market, raw, record)

    async def _execute(
        self, iface: BaseExecutionInterface, op: ChainInstruction, market: dict[str, Decimal], raw: Any,
        record: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        wallet = iface.wallet(op.venue)
        try:
            await self.start(iface)
            if self.recovering:
                await self._resolve_recovering()
            if self.recovering:
                pending = ", ".join(r.current.tx_hash for r in self.recovering if r.current)
                raise Refusal("unresolved_transactions", f"venue: transactions sent before the restart "
                              f"are not resolved yet ({pending}); trading at {op.venue} resumes after")
            steps = await self._plan(op)
            fees = await self._fees()
            gas = await self._preflight(iface, op, steps, fees)
        except Refusal as r:
            return iface.reject(op.venue, op.instruction_id, r.code, r.reason, raw, op)
        except ChainError as e:
            return iface.reject(op.venue, op.instruction_id, e.code, str(e), raw, op)
        logger = iface.logger
        agg = logger.venue(op.venue)
        agg.record_accepted(op.instruction_id, record or op.record(wallet), market, logger.now())
        logger.commit(agg)
        self.plans[op.instruction_id] = (op.operation, op.token)
        run = Run(iface, op, market, steps, wallet, gas_plan=gas, fees=fees,
                  completes=op.operation != "UNSTAKE" and record is None)
        self.runs[op.instruction_id] = run
        await self._drive(run, self.settings.confirm_timeout_s)
        if run.result is not None:
            return run.result
        still_open = self._result(run, "SUBMITTED")
        still_open["reason"] = run.error or (
            f"not confirmed within {self.settings.confirm_timeout_s:g} s; followed by advance_to"
        )
        return still_open

    def next_due(self, iface: BaseExecutionInterface) -> datetime | None:
        """Already due while anything is tracked (pending, inside the reorg window, recovering);
        else the earliest claimable unstake."""
        if self.recovering or self.watch or any(not r.done for r in self.runs.values()):
            return DUE_NOW
        if not self.claims:
            return self.accruals.next_due(iface)
        claim = datetime.fromtimestamp(min(c.claimable_at for c in self.claims), UTC)
        return min(claim, self.accruals.next_due(iface) or claim)

    async def advance(self, iface: BaseExecutionInterface, ts: datetime, market: dict[str, Decimal]) -> None:
        """Move every tracked transaction on by one look at the chain; claim unstakes that are due."""
        try:
            await self.start(iface)
            await self._resolve_recovering()
            for run in [r for r in self.runs.values() if not r.done]:
                await self._drive(run, 0)
            await self._watch_reorgs(iface)
            await self._claim_due(iface, market)
            await self.accruals.poll(iface)
        except ChainError:
            return  # the node is unreachable: nothing is recorded, the next advance looks again
        self.runs = {k: r for k, r in self.runs.items() if not r.done}

    async def reconcile(self, iface: BaseExecutionInterface) -> dict[str, Any]:
        """Resolve what is in flight, then record `BalanceObserved` for ETH and every configured token
        (chain balance against the ledger's); returns both and what stays unresolved."""
        await self.start(iface)
        await self._resolve_recovering()
        venue, wallet = iface.chain_venue, iface.wallet(iface.chain_venue)
        observed = {"ETH": parse.units(await self.client.balance(self.address), parse.WEI_DECIMALS)}
        for symbol, where in sorted(self.settings.tokens.items()):
            if symbol in self.decimals:
                raw = await self.client.call_uint(where, "balanceOf(address)", self.address)
                observed[symbol] = parse.units(raw, self.decimals[symbol])
        logger = iface.logger
        agg = logger.venue(venue)
        report: dict[str, Any] = {"venue": venue, "balances": {}, "unresolved": [
            r.current.tx_hash for r in self.recovering if r.current]}
        for asset, text in observed.items():
            chain, ours = Decimal(text), iface.monitor.balance(asset, venue, wallet)
            agg.record_balance_observed(wallet, asset, chain, ours, logger.now())
            report["balances"][asset] = {"chain": chain, "ledger": ours, "difference": chain - ours}
        logger.commit(agg)
        return report

    async def close(self) -> None:
        await self.client.close()

    async def _resolve_recovering(self) -> None:
        for run in self.recovering:
            await self._drive(run, 0)
        self.recovering = [r for r in self.recovering if not r.done]

    # ---- planning and pre-flight -----------------------------------------------------------------

    def _token(self, symbol: str) -> tuple[str, int]:
        where = self.settings.tokens.get(symbol)
        if where is None:
            known = ", ".join(sorted(self.settings.tokens)) or "none"
            raise Refusal("unknown_token", f"token: {symbol} has no address in the config (known: {known})")
        decimals = self.decimals.get(symbol)
        if decimals is None:
            raise Refusal("unknown_token", f"token: could not read {symbol}'s decimals from {where}")
        return where, decimals

    def _base_units(self, amount: Decimal, symbol: str, decimals: int) -> int:
        value = parse.to_base_units(amount, decimals)
        if value is None or value <= 0:
            raise Refusal("invalid_amount", f"amount: {amount} has more decimals than {symbol}'s {decimals}")
        return value

    async def _plan(self, op: ChainInstruction) -> list[Step]:
        me = self.address
        if op.operation == "TRANSFER":
            if not is_address(op.to_address):
                raise Refusal("invalid_address", f"to: {op.to_address!r} is not an Ethereum address")
            to = to_checksum_address(op.to_address)
            if op.token == "ETH":
                return [Step("TRANSFER_ETH", to, b"", self._base_units(op.amount, "ETH", 18))]
            token, decimals = self._token(op.token)
            amount = self._base_units(op.amount, op.token, decimals)
            return [Step("TRANSFER_ERC20", token, parse.encode_call("transfer(address,uint256)", to, amount))]
        if op.operation in ("STAKE", "UNSTAKE"):
            staking = self.settings.staking_contract
            if not staking:
                raise Refusal("not_configured", f"staking_contract: {op.operation} needs the staking "
                              "contract's address in the config")
            receipt = self.settings.receipt_symbol
            if op.operation == "STAKE":
                if op.token != "ETH":
                    raise Refusal("invalid_field", f"token: STAKE takes ETH, got {op.token}")
                wei = self._base_units(op.amount, "ETH", 18)
                return [Step("STAKE", staking, parse.encode_call("stake()"), wei)]
            if op.token == "ETH":
                wei = self._base_units(op.amount, "ETH", 18)
                shares = await self.client.call_uint(staking, "previewStake(uint256)", wei)
            elif op.token == receipt:
                _, decimals = self._token(receipt)
                shares = self._base_units(op.amount, receipt, decimals)
            else:
                raise Refusal("invalid_field", f"token: UNSTAKE takes {receipt} (or ETH), got {op.token}")
            return [Step("UNSTAKE", staking, parse.encode_call("requestUnstake(uint256)", shares))]
        if not self.pool:
            raise Refusal("not_configured", f"pool_addresses_provider: {op.operation} needs the AAVE "
                          "PoolAddressesProvider's address in the config")
        eth = op.token == "ETH"
        symbol = "WETH" if eth else op.token
        asset, decimals = self._token(symbol)
        amount = self._base_units(op.amount, symbol, decimals)
        wrap = [Step("WRAP", asset, parse.encode_call("deposit()"), amount)] if eth else []
        unwrap = [Step("UNWRAP", asset, parse.encode_call("withdraw(uint256)", amount))] if eth else []
        pool = self.pool
        if op.operation in ("AAVE_SUPPLY", "AAVE_REPAY"):
            approve = await self._approval(asset, amount)
            if op.operation == "AAVE_SUPPLY":
                call = parse.encode_call("supply(address,uint256,address,uint16)", asset, amount, me, 0)
            else:
                call = parse.encode_call("repay(address,uint256,uint256,address)", asset, amount,
                                         VARIABLE_RATE, me)
            return [*wrap, *approve, Step(op.operation, pool, call)]
        if op.operation == "AAVE_WITHDRAW":
            call = parse.encode_call("withdraw(address,uint256,address)", asset, amount, me)
        else:
            call = parse.encode_call("borrow(address,uint256,uint256,uint16,address)", asset, amount,
                                     VARIABLE_RATE, 0, me)
        return [Step(op.operation, pool, call), *unwrap]

    async def _approval(self, token: str, amount: int) -> list[Step]:
        allowance = await self.client.call_uint(token, "allowance(address,address)", self.address, self.pool)
        if allowance >= amount:
            return []
        value = parse.MAX_UINT256 if self.settings.approval == "unlimited" else amount
        return [Step("APPROVE", token, parse.encode_call("approve(address,uint256)", self.pool, value))]

    async def _fees(self) -> parse.Fees:
        block = await self.client.block("latest")
        try:
            return parse.eip1559_fees(
                int(block["baseFeePerGas"]), await self.client.tip(), self.settings.max_fee_cap,
                self.settings.tip_cap,
            )
        except parse.FeeCapError as e:
            raise Refusal("fee_cap", str(e)) from None

    async def _preflight(
        self, iface: BaseExecutionInterface, op: ChainInstruction, steps: list[Step], fees: parse.Fees
    ) -> list[int]:
        """Gas per step from a simulation of the whole plan; a would-be revert, a health factor
        below the limit or too little ETH for values and gas is a `Refusal` (nothing is signed)."""
        me = self.address
        calls = [s.call(me) for s in steps]
        check_health = op.operation in ("AAVE_BORROW", "AAVE_WITHDRAW")
        if check_health:
            calls.append({"from": me, "to": self.pool,
                          "data": parse.encode_call("getUserAccountData(address)", me)})
        simulated = await self.client.simulate(calls)
        if simulated is None:  # the node has no eth_simulateV1: the first step is checked alone
            try:
                first = await self.client.estimate_gas(steps[0].call(me))
            except RevertError as e:
                raise Refusal("would_revert", f"{steps[0].purpose} would revert: {e.reason}") from None
            gas = [_gas_limit(steps[0], first)] + [0] * (len(steps) - 1)
        else:
            for step, result in zip(steps, simulated, strict=False):
                if not result.ok:
                    raise Refusal("would_revert", f"{step.purpose} would revert: {result.reason}")
            gas = [_gas_limit(s, r.gas_used) for s, r in zip(steps, simulated, strict=False)]
            if check_health and len(simulated) > len(steps) and simulated[-1].ok:
                hf = parse.health_factor(simulated[-1].return_data)
                minimum = iface.limits.min_health_factor
                if hf is not None and hf < minimum:
                    raise Refusal("health_factor", f"amount: health factor after the "
                                  f"{op.operation.removeprefix('AAVE_').lower()} would be {hf:.4f}, "
                                  f"below {minimum}")
        need = sum(s.value for s in steps) + sum(g for g in gas) * fees.max_fee_per_gas
        have = await self.client.balance(me)
        if need > have:
            raise Refusal("insufficient_balance", f"amount: needs {parse.units(need, 18)} ETH for values "
                          f"and gas at {op.venue}/{me}, the wallet holds {parse.units(have, 18)}")
        return gas

    # ---- sending and tracking --------------------------------------------------------------------

    async def _drive(self, run: Run, budget_s: float) -> None:
        """Send the run's next transactions and follow them until done or `budget_s` is spent."""
        deadline = time.monotonic() + budget_s
        try:
            await self._steps(run, deadline)
        except ChainError as e:
            # The node stopped answering after something was sent: the outcome is open, the run stays
            # tracked and the next `advance` looks again.
            run.error = str(e)

    async def _steps(self, run: Run, deadline: float) -> None:
        while not run.done:
            if run.current is None:
                if run.index >= len(run.steps):
                    self._finish(run)
                    break
                await self._send(run)
                if run.done or run.current is None:
                    continue
            outcome = await self._poll(run, run.current)
            if outcome == "confirmed":
                run.current = None
                run.index += 1
                continue
            if outcome in ("reverted", "failed"):
                self._end(run, "FAILED", "reverted" if outcome == "reverted" else "failed",
                          run.sent[-1].reason if run.sent else outcome)
                break
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(self.settings.poll_s)

    async def _send(self, run: Run) -> None:
        iface, op = run.iface, run.op
        step = run.steps[run.index]
        first = not run.sent
        try:
            try:
                estimate = await self.client.estimate_gas(step.call(self.address))
            except RevertError as e:
                raise Refusal("would_revert", f"{step.purpose} would revert: {e.reason}") from None
            planned = run.gas_plan[run.index] if run.index < len(run.gas_plan) else 0
            gas = max(_gas_limit(step, estimate), planned)
            fees = run.fees if first and run.fees is not None else await self._fees()
        except (Refusal, ChainError) as e:
            code = e.code
            reason = e.reason if isinstance(e, Refusal) else str(e)
            self._stop(run, code, reason)
            return
        logger = iface.logger
        agg = logger.venue(op.venue)
        async with self.nonces.reserve() as reservation:
            tx: dict[str, Any] = {
                "type": 2, "chainId": self.chain_id, "nonce": reservation.nonce, "to": step.to,
                "value": step.value, "data": step.data, "gas": gas,
                "maxFeePerGas": fees.max_fee_per_gas, "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
            }  # fmt: skip
            signed = self.account.sign_transaction(tx)
            tx_hash = parse.as_hex(signed.hash)
            while tx_hash in agg.txs:
                # The same bytes as a transaction already in the ledger (a lost one re-planned with its
                # nonce): one wei more of tip makes it a transaction of its own.
                tx["maxPriorityFeePerGas"] += 1
                tx["maxFeePerGas"] = max(tx["maxFeePerGas"], tx["maxPriorityFeePerGas"])
                fees = parse.Fees(tx["maxFeePerGas"], tx["maxPriorityFeePerGas"])
                signed = self.account.sign_transaction(tx)
                tx_hash = parse.as_hex(signed.hash)
            # Write-ahead: the signed transaction is in the ledger before the node ever sees it.
            agg.record_tx_submitted(op.instruction_id, tx_hash, reservation.nonce, fees.max_fee_per_gas,
                                    fees.max_priority_fee_per_gas, gas, step.purpose, logger.now())
            logger.commit(agg)
            sent = Sent(op.instruction_id, step.purpose, reservation.nonce, fees, gas, tx_hash,
                        bytes(signed.raw_transaction), step, candidates=[tx_hash])
            try:
                await self.client.send_raw(sent.raw or b"")
            except ChainError as e:
                if e.code == "rpc_error" and _refused(str(e)):
                    reservation.release()
                    agg.record_tx_dropped(op.instruction_id, tx_hash, logger.now())
                    logger.commit(agg)
                    if "nonce too low" in str(e).lower():
                        self.nonces.seed(0, await self.client.mined_nonce(self.address))
                    run.sent.append(sent)
                    sent.status, sent.reason = "failed", f"the node refused the transaction: {e}"
                    self._end(run, "FAILED", "broadcast_refused", sent.reason)
                    return
                # Unknown whether it arrived: keep the nonce and track it (rebroadcast if it is missing).
            sent.last_broadcast = time.monotonic()
        run.sent.append(sent)
        run.current = sent

    async def _poll(self, run: Run, sent: Sent) -> str:
        """One look at the chain for `sent`: records what changed; 'pending' until it is final."""
        receipt = None
        for tx_hash in reversed(sent.candidates):
            receipt = await self.client.receipt(tx_hash)
            if receipt is not None:
                break
        if receipt is None:
            return await self._missing(run, sent)
        sent.missing_since = None
        facts = parse.receipt_facts(receipt)
        logger = run.iface.logger
        agg = logger.venue(run.op.venue)
        sent.tx_hash = facts.tx_hash
        if sent.block_hash != facts.block_hash:
            block = await self.client.block(facts.block_number)
            sent.block_number, sent.block_hash = facts.block_number, facts.block_hash
            agg.record_tx_mined(sent.instruction_id, facts.tx_hash, facts.block_number, facts.block_hash,
                                _chain_time(block), logger.now())
            logger.commit(agg)
        head = await self.client.block_number()
        if head - facts.block_number + 1 < self.settings.confirmations:
            return "pending"
        block = await self.client.block(facts.block_number)
        if parse.as_hex(block["hash"]) != facts.block_hash:
            sent.block_hash = ""  # reorged before it was confirmed: look again
            return "pending"
        sent.gas_used, sent.effective_gas_price = facts.gas_used, facts.effective_gas_price
        sent.gas_fee = facts.gas_fee
        ts = _chain_time(block)
        if facts.status == 1:
            tx = await self.client.transaction(facts.tx_hash)
            sent.effects = parse.effects(receipt, self.ctx, tx)
            leg = self.legs is not None and self.legs.is_leg(run.iface, sent.instruction_id)
            if leg:
                sent.effects = [{**e, "kind": "transfer_out"} if e.get("kind") == "sent" else e
                                for e in sent.effects]
            agg.record_tx_confirmed(sent.instruction_id, facts.tx_hash, facts.block_number, facts.block_hash,
                                    facts.gas_used, facts.effective_gas_price, facts.gas_fee, sent.effects,
                                    ts, logger.now())
            if leg and self.legs is not None:
                self.legs.confirmed(run.iface, agg, sent.instruction_id, facts.tx_hash, ts)
            logger.commit(agg)
            sent.status = "confirmed"
            self.watch.append(sent)
            self._after_confirmed(run, sent)
            return "confirmed"
        tx = await self.client.transaction(facts.tx_hash)
        reason = await self.client.replay_revert(tx, facts.block_number) if tx else "reverted"
        sent.status, sent.reason = "reverted", f"{sent.purpose} reverted: {reason}"
        agg.record_tx_reverted(sent.instruction_id, facts.tx_hash, sent.reason, facts.gas_fee, ts,
                               logger.now())
        logger.commit(agg)
        return "reverted"

    async def _missing(self, run: Run, sent: Sent) -> str:
        """No receipt: still in the pool (maybe stuck), gone (dropped), or its nonce used by another."""
        known = None
        for tx_hash in reversed(sent.candidates):
            known = await self.client.transaction(tx_hash)
            if known is not None:
                break
        now = time.monotonic()
        logger = run.iface.logger
        agg = logger.venue(run.op.venue)
        if known is not None:
            sent.missing_since = None
            if (
                known.get("blockNumber") is None
                and now - sent.last_broadcast >= self.settings.replace_after_s
                and sent.replacements < self.settings.max_replacements
                and sent.raw is not None
                and agg.state_of(sent.instruction_id) is State.TX_PENDING
            ):
                await self._replace(run, sent)
            return "pending"
        mined = await self.client.mined_nonce(self.address)
        if mined > sent.nonce:
            # The nonce is used, yet none of our hashes has a receipt: look once more (a receipt can
            # appear between the two reads), else another transaction took it.
            for tx_hash in sent.candidates:
                if await self.client.receipt(tx_hash) is not None:
                    return "pending"
            agg.record_tx_dropped(sent.instruction_id, sent.tx_hash, logger.now())
            sent.status = "failed"
            sent.reason = f"nonce {sent.nonce} was used by a transaction this ledger did not send"
            logger.commit(agg)
            return "failed"
        if sent.missing_since is None:
            sent.missing_since = now
            return "pending"
        if now - sent.missing_since < self.settings.drop_after_s:
            return "pending"
        if agg.txs.get(sent.tx_hash) not in ("dropped",):
            agg.record_tx_dropped(sent.instruction_id, sent.tx_hash, logger.now())
            logger.commit(agg)
        if sent.raw is None:
            sent.status = "failed"
            sent.reason = (f"transaction {sent.tx_hash} is gone from the node and its signed bytes were "
                           "lost with the restart; its nonce is free again")
            self._rewind(sent.nonce)
            return "failed"
        # Dropped: the same signed bytes again (same hash, same nonce); the ledger already has its intent.
        try:
            await self.client.send_raw(sent.raw)
        except ChainError as e:
            if not ("already known" in str(e).lower() or "known transaction" in str(e).lower()):
                sent.missing_since = now  # try again after another drop interval
                return "pending"
        sent.missing_since = None
        sent.last_broadcast = now
        return "pending"

    def _rewind(self, nonce: int) -> None:
        if self.nonces.next is not None and nonce < self.nonces.next:
            self.nonces._next = nonce

    async def _replace(self, run: Run, sent: Sent) -> None:
        """Same nonce, same call, both fee fields raised by 12.5 % (never above the cap)."""
        bumped = parse.bump_within_cap(sent.fees, self.settings.max_fee_cap)
        if bumped is None or sent.step is None:
            return
        step = sent.step
        tx: dict[str, Any] = {
            "type": 2, "chainId": self.chain_id, "nonce": sent.nonce, "to": step.to, "value": step.value,
            "data": step.data, "gas": sent.gas, "maxFeePerGas": bumped.max_fee_per_gas,
            "maxPriorityFeePerGas": bumped.max_priority_fee_per_gas,
        }  # fmt: skip
        signed = self.account.sign_transaction(tx)
        new_hash = parse.as_hex(signed.hash)
        logger = run.iface.logger
        agg = logger.venue(run.op.venue)
        agg.record_tx_replaced(sent.instruction_id, sent.tx_hash, new_hash, bumped.max_fee_per_gas,
                               bumped.max_priority_fee_per_gas, logger.now())
        logger.commit(agg)
        sent.candidates.append(new_hash)
        sent.tx_hash, sent.fees, sent.raw = new_hash, bumped, bytes(signed.raw_transaction)
        sent.replacements += 1
        sent.last_broadcast = time.monotonic()
        with contextlib.suppress(ChainError):  # the old one may still win; both hashes stay candidates
            await self.client.send_raw(sent.raw)

    def _after_confirmed(self, run: Run, sent: Sent) -> None:
        for effect in sent.effects:
            if effect.get("kind") == "unstake_requested":
                self.claims.append(Claim(sent.instruction_id, int(effect["request_id"]),
                                         int(effect["claimable_at"]), run.op))

    async def _watch_reorgs(self, iface: BaseExecutionInterface) -> None:
        """A confirmed transaction whose block hash is no longer canonical is recorded as reorged
        (the projection undoes its effects) and tracked again until it lands."""
        if not self.watch:
            return
        head = await self.client.block_number()
        keep: list[Sent] = []
        for sent in self.watch:
            if sent.status != "confirmed":
                continue
            if head - sent.block_number > self.settings.reorg_window:
                continue
            canonical = await self.client.block_hash(sent.block_number)
            if canonical == sent.block_hash:
                keep.append(sent)
                continue
            logger = iface.logger
            agg = logger.venue(iface.chain_venue)
            agg.record_tx_reorged(sent.instruction_id, sent.tx_hash, sent.block_hash, logger.now())
            logger.commit(agg)
            sent.status, sent.block_hash, sent.missing_since = "pending", "", None
            sent.last_broadcast = time.monotonic()
            op = _placeholder(sent.instruction_id, iface.chain_venue)
            run = Run(iface, op, {}, [], iface.wallet(iface.chain_venue), kind="reorg", current=sent)
            run.sent.append(sent)
            self.runs[f"reorg:{sent.tx_hash}"] = run
        self.watch = keep

    async def _claim_due(self, iface: BaseExecutionInterface, market: dict[str, Decimal]) -> None:
        if not self.claims:
            return
        latest = await self.client.block("latest")
        now = int(latest["timestamp"])
        for claim in [c for c in self.claims if c.claimable_at <= now]:
            if any(r.op.instruction_id == claim.instruction_id and not r.done for r in self.runs.values()):
                continue
            self.claims.remove(claim)
            op = claim.op or ChainInstruction(claim.instruction_id, iface.chain_venue, "UNSTAKE", "ETH", "",
                                              ZERO, "")
            step = Step("CLAIM", self.settings.staking_contract,
                        parse.encode_call("claim(uint256)", claim.request_id))
            run = Run(iface, op, market, [step], iface.wallet(iface.chain_venue), kind="claim")
            self.runs[f"claim:{claim.instruction_id}"] = run
            await self._drive(run, self.settings.confirm_timeout_s)

    # ---- endings ---------------------------------------------------------------------------------

    def _finish(self, run: Run) -> None:
        run.done = True
        iid = run.op.instruction_id
        if run.kind in ("recovered", "reorg"):
            others = any(r is not run and not r.done and r.op.instruction_id == iid
                         for r in [*self.runs.values(), *self.recovering])
            if not others:
                self._settle(run.iface, iid, run.sent[-1] if run.sent else None, run.kind == "recovered")
            run.iface.notify({"status": "CONFIRMED", "venue": run.op.venue, "instruction_id": iid})
            return
        logger = run.iface.logger
        agg = logger.venue(run.op.venue)
        if run.completes and agg.state_of(iid) is State.TX_CONFIRMED:
            agg.record_completed(iid, logger.now())
            logger.commit(agg)
            self.completed.add(iid)
        run.result = self._result(run, "CONFIRMED")
        run.iface.notify(run.result)

    def _stop(self, run: Run, code: str, reason: str) -> None:
        """A step cannot be sent: before anything was signed it is a rejection, after, a failure."""
        logger = run.iface.logger
        agg = logger.venue(run.op.venue)
        iid = run.op.instruction_id
        if not run.sent and agg.state_of(iid) is State.ACCEPTED:
            agg.record_rejected(iid, code, reason, {"operation": repr(run.op.operation)}, logger.now())
            logger.commit(agg)
            run.done = True
            run.result = results.rejected(run.iface.execution_mode, iid, code, reason, run.op.venue, run.op)
            run.iface.notify(run.result)
            return
        self._end(run, "FAILED", code, reason)

    def _end(self, run: Run, status: str, code: str, reason: str) -> None:
        logger = run.iface.logger
        agg = logger.venue(run.op.venue)
        iid = run.op.instruction_id
        if code != "reverted" and agg.state_of(iid) not in (State.FAILED, State.TX_REVERTED, None):
            agg.record_failed(iid, code, reason, logger.now())
            logger.commit(agg)
        run.done = True
        if run.kind in ("recovered", "reorg"):
            return
        run.result = self._result(run, status)
        run.result.update(code=code, reason=reason)
        run.iface.notify(run.result)

    def _result(self, run: Run, status: str) -> dict[str, Any]:
        op = run.op
        with localcontext(MONEY):
            gas_cost = sum((s.gas_fee for s in run.sent), ZERO)
            gas_used = sum(s.gas_used for s in run.sent)
            last = run.sent[-1] if run.sent else None
            amount_out, token_out = _amount_out(op, last.effects if last else [])
            return results.chain(
                run.iface.execution_mode, op, status, amount_out, token_out, last.tx_hash if last else "",
                gas_used, last.effective_gas_price if last else 0, gas_cost,
                usd_price(run.market, op.token) or ZERO,
            )


# ---- helpers -------------------------------------------------------------------------------------


def _gas_limit(step: Step, estimate: int) -> int:
    if not step.data and estimate <= 21_000:
        return 21_000  # a plain ETH transfer costs exactly this
    return parse.with_gas_margin(estimate)


def _refused(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in REFUSED_BROADCAST)


def _chain_time(block: Any) -> datetime:
    return datetime.fromtimestamp(int(block["timestamp"]), UTC)


def _amount_out(op: ChainInstruction, effects: list[dict[str, str]]) -> tuple[Decimal, str]:
    """What came back, as the simulator reports it: the last effect's receipt amount or amount."""
    main = [e for e in effects if e.get("kind") != "approved"]
    if not main:
        return ZERO, ""
    last = main[-1]
    if op.operation == "UNSTAKE":
        return Decimal(last["amount"]), "ETH"
    amount = Decimal(last.get("receipt_amount", last["amount"]))
    if op.operation in ("STAKE",):
        return amount, last.get("receipt_asset", last["asset"])
    return Decimal(last["amount"]), last["asset"]


def _memory(iface: BaseExecutionInterface, agg: Any) -> LedgerMemory:
    """What the chain venue's stored stream says we sent (empty for loggers without a store)."""
    ledger = getattr(iface.logger, "ledger", None)
    events = getattr(ledger, "events", None)
    if events is None:
        return LedgerMemory()
    return remember(events.get(agg.id))


def _recovered(known: KnownTx) -> Sent:
    return Sent(
        known.instruction_id, known.purpose, known.nonce,
        parse.Fees(known.max_fee_per_gas, known.max_priority_fee_per_gas), known.gas_limit, known.tx_hash,
        None, None, candidates=[known.tx_hash], last_broadcast=time.monotonic(),
        block_number=known.block_number, block_hash=known.block_hash,
    )  # fmt: skip


def _placeholder(instruction_id: str, venue: str) -> ChainInstruction:
    """The instruction a recovered or reorged transaction belongs to (only its id and venue matter)."""
    return ChainInstruction(instruction_id, venue, "", "ETH", "", ZERO, "")


class ChainNotConfigured:
    """Live mode without a wallet: every on-chain instruction is a recorded `not_configured`
    rejection, and the other venues keep trading."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def execute(
        self, iface: BaseExecutionInterface, op: ChainInstruction, market: dict[str, Decimal], raw: Any
    ) -> dict[str, Any]:
        return iface.reject(op.venue, op.instruction_id, "not_configured", self.reason, raw, op)

    def advance(self, iface: BaseExecutionInterface, ts: datetime, market: dict[str, Decimal]) -> None:
        return None

    def next_due(self, iface: BaseExecutionInterface) -> datetime | None:
        return None


def live_chain(config: dict[str, Any]) -> LiveChain | ChainNotConfigured:
    """The live backend; a config with no wallet key at all (a CEX-only live run) gets one that
    refuses on-chain instructions instead of failing the whole engine. A wallet key with a bad
    rest of the config is a `ConfigError`."""
    table = config.get("chain") or {}
    if not (table.get("wallet_private_key") or config.get("wallet_private_key")
            or os.environ.get("WALLET_PRIVATE_KEY")):
        return ChainNotConfigured(
            "wallet_private_key: live on-chain execution needs a wallet key (config or WALLET_PRIVATE_KEY)"
        )
    return LiveChain(config)
