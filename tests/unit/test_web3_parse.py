"""`executors.live.web3_parse` on payloads recorded from a real anvil + AAVE v3 run
(`fixtures/web3/receipts.json`, written by `fixtures/web3/capture.py`). The expected effects are
written here by hand from the instructions the capture ran, never copied from the capture."""

from __future__ import annotations

import json
import os
from decimal import Decimal as D
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from hexbytes import HexBytes

from executors.live import web3_parse as parse
from executors.live.nonces import NonceAllocator, final_purpose

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "web3" / "receipts.json").read_text())
CTX_RAW = FIXTURE["context"]
ME = CTX_RAW["address"]
WALLET = "desk-wallet"
GWEI = 10**9


def context(address: str = ME) -> parse.ParseContext:
    tokens = {
        CTX_RAW["usdt"].lower(): parse.Token("USDT", 6),
        CTX_RAW["weth"].lower(): parse.Token("WETH", 18),
        CTX_RAW["staking"].lower(): parse.Token("STKETH", 18),
    }
    return parse.ParseContext(address=address, wallet=WALLET, pool=CTX_RAW["pool"], weth=CTX_RAW["weth"],
                              staking=CTX_RAW["staking"], receipt_symbol="STKETH", tokens=tokens)


def receipt(name: str) -> dict[str, Any]:
    return dict(FIXTURE["receipts"][name])


def kinds(effects: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(e["kind"], e["asset"], e["amount"]) for e in effects]


# ---- effects from recorded receipts -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("wrap", [("wrapped", "ETH", "10")]),
        ("approve", [("approved", "WETH", "10")]),
        ("aave_supply", [("supplied", "WETH", "10")]),
        ("aave_borrow", [("borrowed", "USDT", "5000")]),
        ("approve_2", [("approved", "USDT", "2000")]),
        ("aave_repay", [("repaid", "USDT", "2000")]),
        ("aave_withdraw", [("withdrawn", "WETH", "3")]),
        ("unwrap", [("unwrapped", "ETH", "3")]),
        ("stake", [("staked", "ETH", "12")]),
        ("unstake", [("unstake_requested", "ETH", "4.8")]),
        ("claim", [("unstaked", "ETH", "4.8")]),
        ("transfer_erc20", [("sent", "USDT", "100.5")]),
    ],
)
def test_each_recorded_receipt_gives_exactly_its_protocol_effect(name: str, expected: list[Any]) -> None:
    """Protocol events are the effects; the ERC-20 Transfer/Approval plumbing inside them is not counted."""
    effects = parse.effects(receipt(name), context())
    assert kinds(effects) == expected
    tx_hash = receipt(name)["transactionHash"].lower()
    for effect in effects:
        assert effect["wallet"] == WALLET
        prefix, index = effect["trade_id"].split(":")
        assert prefix == tx_hash and index.isdigit()


def test_supply_receipt_ignores_the_pull_and_the_atoken_mint() -> None:
    """The supply receipt holds the WETH pull and the aWETH mint (ERC-20 Transfers) beside the
    Pool's Supply event; only Supply becomes an effect, with the Supply log's index."""
    rc = receipt("aave_supply")
    transfers = [log for log in rc["logs"] if log["topics"][0] == parse.TRANSFER]
    assert len(transfers) >= 2
    (effect,) = parse.effects(rc, context())
    (supply_log,) = [log for log in rc["logs"] if log["topics"][0] == parse.SUPPLY]
    assert effect["trade_id"].endswith(f":{int(supply_log['logIndex'], 16)}")


def test_staking_effects_carry_the_receipt_token_and_the_request() -> None:
    """Staked 12 ETH at rate 1.2 mints 10 receipt tokens; unstaking 4 owes 4.8 ETH, claimable later."""
    (staked,) = parse.effects(receipt("stake"), context())
    assert (staked["receipt_asset"], staked["receipt_amount"], staked["rate"]) == ("STKETH", "10", "1.2")
    (requested,) = parse.effects(receipt("unstake"), context())
    assert (requested["receipt_asset"], requested["receipt_amount"]) == ("STKETH", "4")
    assert requested["request_id"] == "0"
    mined_at = parse.as_int(FIXTURE["receipts"]["unstake"]["blockTimestamp"])  # anvil adds it
    assert int(requested["claimable_at"]) == mined_at + 3 * 24 * 3600  # the contract's delay
    (claimed,) = parse.effects(receipt("claim"), context())
    assert claimed["request_id"] == requested["request_id"]


def test_plain_eth_transfer_needs_the_transaction() -> None:
    """A value transfer to an address has no logs: its effect comes from the transaction, keyed
    `<hash>:value`; without the transaction there is nothing to decode."""
    rc, tx = receipt("transfer_eth"), FIXTURE["transactions"]["transfer_eth"]
    assert rc["logs"] == []
    assert parse.effects(rc, context()) == []
    (sent,) = parse.effects(rc, context(), tx)
    assert kinds([sent]) == [("sent", "ETH", "1.25")]
    assert sent["to"] == "0x" + "ab" * 20
    assert sent["trade_id"] == rc["transactionHash"].lower() + ":value"


def test_the_recipient_of_a_token_transfer_sees_it_received() -> None:
    """Read against the recipient's address the same receipt is a receipt of funds, and the sender's
    wallet gets nothing twice."""
    recipient = "0x" + "cd" * 20
    (effect,) = parse.effects(receipt("transfer_erc20"), context(recipient))
    assert (effect["kind"], effect["amount"], effect["from"]) == ("received", "100.5", ME.lower())
    assert parse.effects(receipt("aave_supply"), context("0x" + "99" * 20)) == []


def test_web3_formatted_receipts_decode_like_raw_json() -> None:
    """web3.py hands over ints and HexBytes instead of hex text; the effects are the same."""
    for name in ("wrap", "aave_supply", "aave_borrow", "stake", "transfer_erc20"):
        raw = receipt(name)
        formatted = _web3_style(raw)
        assert parse.effects(formatted, context()) == parse.effects(raw, context())
        assert parse.receipt_facts(formatted) == parse.receipt_facts(raw)


def _web3_style(raw: dict[str, Any]) -> dict[str, Any]:
    def log(entry: dict[str, Any]) -> dict[str, Any]:
        return {**entry, "topics": [HexBytes(t) for t in entry["topics"]], "data": HexBytes(entry["data"]),
                "logIndex": int(entry["logIndex"], 16)}

    return {**raw, "logs": [log(x) for x in raw["logs"]], "status": int(raw["status"], 16),
            "blockNumber": int(raw["blockNumber"], 16), "gasUsed": int(raw["gasUsed"], 16),
            "effectiveGasPrice": int(raw["effectiveGasPrice"], 16),
            "transactionHash": HexBytes(raw["transactionHash"]), "blockHash": HexBytes(raw["blockHash"])}


def test_receipt_facts_and_gas_fee() -> None:
    """Gas fee in ETH is gas used times the effective gas price, exactly."""
    rc = receipt("aave_borrow")
    facts = parse.receipt_facts(rc)
    assert facts.status == 1
    assert facts.gas_used == int(rc["gasUsed"], 16)
    assert facts.gas_fee == D(int(rc["gasUsed"], 16) * int(rc["effectiveGasPrice"], 16)) / D(10**18)
    assert facts.block_hash == rc["blockHash"].lower()


# ---- reverts ----------------------------------------------------------------------------------------


def test_recorded_simulation_of_an_over_borrow_names_aaves_error() -> None:
    """`eth_simulateV1` with a 1M USDT borrow against 7 WETH: the call fails with Aave's code 36, named;
    the account-data call after it still answers (health factor with the existing debt)."""
    borrow, account = parse.simulated_calls(FIXTURE["simulate_over_borrow"])
    assert not borrow.ok
    assert borrow.reason == "COLLATERAL_CANNOT_COVER_NEW_BORROW (Aave error 36)"
    assert account.ok and account.gas_used > 0
    hf = parse.health_factor(account.return_data)
    assert hf is not None and hf > 1


def test_custom_errors_and_panics_are_decoded() -> None:
    """The staking contract's custom error (recorded), a panic and an empty revert read clearly."""
    assert parse.decode_revert(FIXTURE["already_claimed_data"]) == "AlreadyClaimed(requestId=0)"
    panic = parse.PANIC + abi_encode(["uint256"], [0x11])
    assert parse.decode_revert(panic) == "panic 0x11: arithmetic underflow or overflow"
    assert parse.decode_revert("0x") == "reverted without a reason"
    text = parse.ERROR_STRING + abi_encode(["string"], ["ERC20: insufficient allowance"])
    assert parse.decode_revert(text) == "ERC20: insufficient allowance"
    assert parse.decode_revert("0xdeadbeef").startswith("reverted with data 0xdeadbeef")


def test_node_messages_without_data() -> None:
    assert parse.reason_from_message("execution reverted: 26") == "INVALID_AMOUNT (Aave error 26)"
    assert parse.reason_from_message("execution reverted") == "reverted without a reason"
    assert parse.reason_from_message("out of gas") == "out of gas"


def test_aave_codes_match_the_installed_package() -> None:
    """The table shipped in the executor equals `Errors.sol` of the pinned @aave/core-v3."""
    from tests.chain.aave import aave_error_names
    from tests.chain.toolpaths import ChainToolsMissingError

    try:
        names = aave_error_names()
    except (ChainToolsMissingError, FileNotFoundError):
        if os.environ.get("CI"):
            raise  # `make install` puts the package there: in CI its absence is a failure, not a skip
        pytest.skip("node_modules/@aave/core-v3 is not installed (make install)")
    assert names == parse.AAVE_ERRORS


# ---- fees, units, nonces -----------------------------------------------------------------------------


def test_eip1559_fees_and_the_cap() -> None:
    """Tip: the node's suggestion held to the tip cap; max fee 2 x base + tip held to the cap; when
    base + tip alone is above the cap the fee cap refuses."""
    fees = parse.eip1559_fees(10 * GWEI, 3 * GWEI // 2, 100 * GWEI, 2 * GWEI)
    assert fees == parse.Fees(21 * GWEI + GWEI // 2, 3 * GWEI // 2)
    assert parse.eip1559_fees(10 * GWEI, 5 * GWEI, None, 1 * GWEI) == parse.Fees(21 * GWEI, GWEI)
    assert parse.eip1559_fees(60 * GWEI, GWEI, 100 * GWEI, None) == parse.Fees(100 * GWEI, GWEI)
    with pytest.raises(parse.FeeCapError, match=r"needs 100\.5 gwei now .* above the cap of 100 gwei"):
        parse.eip1559_fees(99 * GWEI + GWEI // 2, GWEI, 100 * GWEI, None)


def test_replacement_bumps_both_fields_at_least_12_5_percent() -> None:
    fees = parse.Fees(30 * GWEI + 1, 1 * GWEI + 1)
    bumped = fees.bumped()
    assert Fraction(bumped.max_fee_per_gas, fees.max_fee_per_gas) >= Fraction(9, 8)
    assert Fraction(bumped.max_priority_fee_per_gas, fees.max_priority_fee_per_gas) >= Fraction(9, 8)
    assert parse.bump_within_cap(fees, 33 * GWEI) is None
    assert parse.bump_within_cap(fees, 40 * GWEI) == bumped


def test_units_are_exact() -> None:
    assert parse.units(10**24, 18) == "1000000"
    assert parse.units(1, 18) == "0.000000000000000001"
    assert parse.units(2**256 - 1, 6) == str(2**256 - 1)[:-6] + "." + str(2**256 - 1)[-6:]
    assert parse.to_base_units(D("100.5"), 6) == 100_500_000
    assert parse.to_base_units(D("1.0000001"), 6) is None
    assert parse.to_base_units(D("123456789.123456789123456789"), 18) == 123456789123456789123456789
    assert parse.gas_fee_eth(21_000, 2 * GWEI) == D("0.000042")


def test_calldata_round_trip() -> None:
    data = parse.encode_call("transfer(address,uint256)", "0x" + "11" * 20, 5)
    assert data[:4] == parse.selector("transfer(address,uint256)")
    assert parse.decode_words(["address", "uint256"], data[4:]) == ("0x" + "11" * 20, 5)
    assert parse.encode_call("stake()") == parse.selector("stake()")


def test_final_purpose_of_each_plan() -> None:
    assert final_purpose("AAVE_SUPPLY", "ETH") == "AAVE_SUPPLY"
    assert final_purpose("AAVE_BORROW", "ETH") == "UNWRAP"
    assert final_purpose("AAVE_WITHDRAW", "USDT") == "AAVE_WITHDRAW"
    assert final_purpose("TRANSFER", "ETH") == "TRANSFER_ETH"
    assert final_purpose("UNSTAKE", "STKETH") == "CLAIM"


async def test_nonce_allocator_hands_out_in_order_and_takes_back_a_released_one() -> None:
    """The larger of the ledger's next nonce and the chain's mined count; a released nonce (never
    broadcast) is handed out again, so no gap is left."""
    nonces = NonceAllocator()
    assert nonces.seed(ledger_next=7, chain_mined=5) == 7
    async with nonces.reserve() as first:
        assert first.nonce == 7
    async with nonces.reserve() as second:
        second.release()
    async with nonces.reserve() as third:
        assert third.nonce == 8
    assert nonces.seed(ledger_next=0, chain_mined=12) == 12


def test_an_unlimited_approval_keeps_a_number_and_says_so() -> None:
    """An approval of 2**256 - 1 is recorded as that amount with `unlimited` beside it."""
    rc = receipt("approve")
    log = dict(rc["logs"][0])
    log["data"] = "0x" + "ff" * 32
    (effect,) = parse.effects({**rc, "logs": [log]}, context())
    assert effect["unlimited"] == "true"
    assert effect["amount"] == parse.units(2**256 - 1, 18)
