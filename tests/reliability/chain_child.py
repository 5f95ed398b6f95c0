"""Crash-test child for tests/reliability/test_chain_kill9.py: a live engine on a file SQLite ledger
against anvil, killed with SIGKILL while one of its transactions waits in the node's mempool.

    python tests/reliability/chain_child.py SPEC.json

SPEC holds the engine config (the wallet key among it: the file lives in the test's temporary
directory and nothing here prints it), the instruction to send and the `prepare` instructions to run
first. The child runs the preparation to completion, prints `READY`, waits for a line on stdin (the
parent turns automine off in between), then sends the instruction and prints `SENDING <id>`; it
never returns from that call on its own (the confirmation wait is long and nothing mines).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


async def main(path: str) -> None:
    from ledger.engine import EventDrivenStrategyEngine

    with open(path, encoding="utf-8") as fh:
        spec: dict[str, Any] = json.load(fh)
    engine = EventDrivenStrategyEngine(spec["config"])
    for instruction in spec.get("prepare", []):
        result = await engine.execute_trade_with_interface(instruction)
        if result["status"] != "CONFIRMED":
            sys.stderr.write(f"preparation failed: {result.get('code')} {result.get('reason')}\n")
            sys.exit(2)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    await asyncio.to_thread(sys.stdin.readline)
    instruction = spec["instruction"]
    sys.stdout.write(f"SENDING {instruction['instruction_id']}\n")
    sys.stdout.flush()
    result = await engine.execute_trade_with_interface(instruction)
    sys.stdout.write(f"RETURNED {result['status']}\n")  # not expected: the parent kills first
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
