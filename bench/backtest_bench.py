"""Backtest benchmark against NautilusTrader in the same run (SPEC §8).

    python bench/backtest_bench.py [--ticks N] [--every K] [--repeat R] [--roundtrip-ticks M]
                                   [--variants buy,roundtrip] [--views] [--quick] [--no-nautilus] [--json OUT]

Scenario: N quote ticks 100 ms apart, a market order every K ticks, the log persisted (ours: SQLite).
Two variants: `buy` (always buy) and `roundtrip` (alternate buy/sell). Each system runs in a fresh
subprocess per run; the reported time is the median of R runs (runs of the two systems interleaved).

- ours: `bench/ours_backtest.py` with this interpreter (the project's .venv), through the public engine
  API (`EventDrivenStrategyEngine.advance_to` + `execute_trade_with_interface`), timing the tick loop
  plus `close()` (flush + session end; the SQL views only with --views: they are `ledger rebuild`'s job).
- NautilusTrader 1.231.0: `bench/nautilus/setup.sh` creates bench/.venv-nautilus (CPython >= 3.12) once,
  then `bench/.venv-nautilus/bin/python bench/nautilus/run_nautilus.py` runs the classic BacktestEngine
  (one simulated venue, EUR/USD, default risk engine, NETTING OMS), timing `engine.run()`.

The round-trip variant is quadratic on NautilusTrader (a pandas concat per closed position in its
portfolio analyzer, and the matching engine re-scanning every order of the reused NETTING position after
each fill: ~2 min for 100k ticks here, hours for 1M), so it runs at `--roundtrip-ticks` (default
100,000, never more than --ticks) for BOTH systems; the output says so. The §8 target
(ours >= 3x NautilusTrader's fills/s) is read from the `buy` variant at --ticks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SETUP = BENCH / "nautilus" / "setup.sh"
NAUTILUS_PY = BENCH / ".venv-nautilus" / "bin" / "python"
NAUTILUS_RUN = BENCH / "nautilus" / "run_nautilus.py"
OURS_RUN = BENCH / "ours_backtest.py"
TARGET = 3.0
SYSTEMS = ("execution-ledger", "nautilus")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def setup_nautilus() -> tuple[bool, str]:
    """Run bench/nautilus/setup.sh; (ok, its last line on failure)."""
    try:
        p = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        return False, "bench/nautilus/setup.sh timed out"
    if p.stderr.strip():
        log(p.stderr.rstrip())
    if p.returncode != 0 or not NAUTILUS_PY.exists():
        lines = [ln for ln in (p.stderr + p.stdout).splitlines() if ln.strip()]
        return False, lines[-1] if lines else f"bench/nautilus/setup.sh exited {p.returncode}"
    return True, ""


def child_env(system: str) -> dict[str, str]:
    env = dict(os.environ)
    if system == "nautilus":  # keep the project's environment out of the peer's interpreter
        for k in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
            env.pop(k, None)
    return env


def one_run(system: str, variant: str, ticks: int, every: int, seed: int, timeout: float,
            views: bool = False) -> dict[str, Any]:
    common = ["--ticks", str(ticks), "--every", str(every), "--variant", variant, "--seed", str(seed)]
    if system == "nautilus":
        cmd = [str(NAUTILUS_PY), str(NAUTILUS_RUN), *common]
    else:
        cmd = [sys.executable, str(OURS_RUN), *common, *(["--views"] if views else [])]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                           env=child_env(system))
    except subprocess.TimeoutExpired:
        return {"system": system, "variant": variant, "ticks": ticks,
                "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-12:])
        return {"system": system, "variant": variant, "ticks": ticks,
                "error": f"exit {p.returncode}, no result line", "stderr_tail": tail}
    res: dict[str, Any] = json.loads(lines[-1])
    res["wall_s"] = round(wall, 2)
    if p.returncode != 0:
        res["error"] = f"exit {p.returncode}"
        res["stderr_tail"] = "\n".join(p.stderr.strip().splitlines()[-12:])
    return res


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    base = runs[0]
    out: dict[str, Any] = {"system": base["system"], "variant": base["variant"], "ticks": base["ticks"],
                           "runs": len(runs), "ok_runs": len(ok)}
    if not ok:
        out["error"] = runs[-1].get("error")
        out["stderr_tail"] = runs[-1].get("stderr_tail")
        return out
    secs = statistics.median(r["seconds"] for r in ok)
    fills = {r["fills"] for r in ok}
    out.update({
        "ticks": ok[0]["ticks"], "fills": ok[0]["fills"], "median_s": round(secs, 4),
        "all_s": [r["seconds"] for r in ok],
        "ticks_per_s": round(ok[0]["ticks"] / secs, 1), "fills_per_s": round(ok[0]["fills"] / secs, 1),
        "deterministic_fill_count": len(fills) == 1,
        "peak_rss_mb": max((r.get("peak_rss_mb") or 0) for r in ok) or None,
    })
    for k in ("events", "db_events", "db_table", "db_bytes", "views", "orders_filled", "version", "logging"):
        if k in ok[-1]:
            out[k] = ok[-1][k]
    if len(ok) < len(runs):
        out["error"] = f"{len(runs) - len(ok)} of {len(runs)} runs failed: {runs[-1].get('error')}"
    return out


def fmt(v: Any, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def table(results: list[dict[str, Any]], ratios: dict[str, float | None]) -> str:
    head = ("system", "variant", "ticks", "fills", "median s", "ticks/s", "fills/s", "ours/nautilus fills/s")
    rows = []
    for r in results:
        ratio = ratios.get(r["variant"]) if r["system"] == "execution-ledger" else None
        rows.append((r["system"], r["variant"], fmt(r.get("ticks")), fmt(r.get("fills")),
                     fmt(r.get("median_s"), ".2f"), fmt(r.get("ticks_per_s")), fmt(r.get("fills_per_s")),
                     "-" if ratio is None else f"{ratio:.2f}x") if "error" not in r or "median_s" in r
                    else (r["system"], r["variant"], fmt(r.get("ticks")), "FAILED", "", "", "", ""))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--roundtrip-ticks", type=int, default=100_000,
                    help="tick count of the roundtrip variant for both systems (capped at --ticks)")
    ap.add_argument("--variants", default="buy,roundtrip")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per child run")
    ap.add_argument("--quick", action="store_true", help="smoke size: 20,000 ticks, one run each")
    ap.add_argument("--views", action="store_true",
                    help="ours: let close() also write the SQL views, inside the timing")
    ap.add_argument("--no-nautilus", action="store_true", help="run ours only")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    if args.quick:
        args.ticks, args.repeat = 20_000, 1
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not set(variants) <= {"buy", "roundtrip"}:
        ap.error("--variants takes buy and/or roundtrip")
    sizes = {"buy": args.ticks, "roundtrip": min(args.roundtrip_ticks, args.ticks)}

    notes: list[str] = []
    systems = list(SYSTEMS)
    nautilus_missing = None
    if args.no_nautilus:
        systems.remove("nautilus")
        notes.append("NautilusTrader not run (--no-nautilus)")
    else:
        ok, why = setup_nautilus()
        if not ok:
            systems.remove("nautilus")
            nautilus_missing = why
            notes.append(f"NautilusTrader skipped: {why}")
            log(f"NOTE: NautilusTrader skipped: {why}")
    if "roundtrip" in variants and sizes["roundtrip"] < args.ticks:
        notes.append(f"roundtrip variant run at {sizes['roundtrip']:,} ticks for both systems, not "
                     f"{args.ticks:,}: it is quadratic on NautilusTrader (pandas concat per closed position, "
                     f"matching engine re-scanning the reused NETTING position's orders)")

    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for variant in variants:
        for rep in range(args.repeat):
            for system in systems:  # interleaved, so drift in the machine's speed hits both alike
                log(f"run {rep + 1}/{args.repeat}: {system} {variant} {sizes[variant]:,} ticks ...")
                r = one_run(system, variant, sizes[variant], args.every, args.seed, args.timeout, args.views)
                if "error" in r:
                    log(f"  FAILED: {r['error']}\n{r.get('stderr_tail', '')}")
                else:
                    log(f"  {r['seconds']:.2f} s, {r['fills']:,} fills, {r['fills_per_s']:,.0f} fills/s")
                runs.setdefault((system, variant), []).append(r)

    results = [summarise(runs[(s, v)]) for v in variants for s in systems]
    by = {(r["system"], r["variant"]): r for r in results}
    ratios: dict[str, float | None] = {}
    for v in variants:
        a, b = by.get(("execution-ledger", v)), by.get(("nautilus", v))
        ratios[v] = (round(a["fills_per_s"] / b["fills_per_s"], 3)
                     if a and b and a.get("fills_per_s") and b.get("fills_per_s") else None)

    print(f"Backtest: quote ticks 100 ms apart, a market order every {args.every} ticks, log on SQLite; "
          f"median of {args.repeat} fresh-process run(s) each; ours times the loop + close() "
          f"{'with' if args.views else 'without'} the SQL views")
    print(table(results, ratios))
    for n in notes:
        print(f"note: {n}")
    if "buy" in variants:
        buy = ratios.get("buy")
        verdict = ("not measured" if buy is None else
                   f"{buy:.2f}x -> {'met' if buy >= TARGET else 'NOT met'}")
        print(f"target (SPEC §8, buy variant, {sizes['buy']:,} ticks): ours >= {TARGET:.0f}x "
              f"NautilusTrader's fills/s; measured {verdict}")
    for r in results:
        if r["system"] == "execution-ledger" and "db_events" in r:
            print(f"ours {r['variant']}: {r.get('db_events'):,} events in SQLite table {r.get('db_table')} "
                  f"({(r.get('db_bytes') or 0) / 2**20:.1f} MiB)"
                  + (f", engine.event_count {r['events']:,}" if "events" in r else ""))

    failed = [r for r in results if "error" in r]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "backtest", "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpus": os.cpu_count()},
            "params": {"ticks": args.ticks, "roundtrip_ticks": sizes["roundtrip"], "every": args.every,
                       "repeat": args.repeat, "seed": args.seed, "variants": variants, "views": args.views},
            "target": {"ratio_fills_per_s": TARGET, "variant": "buy"},
            "results": results, "ratios_ours_over_nautilus_fills_per_s": ratios, "notes": notes,
            "runs": [r for rs in runs.values() for r in rs],
        }, indent=2, default=str) + "\n")
        print(f"results written to {args.json}")
    if failed:
        for r in failed:
            log(f"FAILED: {r['system']} {r['variant']}: {r['error']}")
        return 1
    if nautilus_missing and not args.quick:
        return 3  # a full run exists to give the ratio; without the peer it did not
    return 0


if __name__ == "__main__":
    sys.exit(main())
