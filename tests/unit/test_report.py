"""Backtest report writer: files, exact Decimal formatting, determinism, errors and console output."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from rich.console import Console

from aggregates.errors import LedgerError
from ledger.report import ReportError, max_drawdown, money, quantity, render_console, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T0 = datetime(2024, 6, 1, tzinfo=UTC)


def _ts(hours: int) -> str:
    return (T0 + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def _summary() -> dict[str, Any]:
    return {
        "strategy": "eth-basis", "start": _ts(0), "end": _ts(5), "seed": 7, "events": 1200, "fills": 14,
        "digest": "sha256:" + "c0ffee" * 10, "initial_equity": D("100000"), "final_equity": D("101234.5"),
        "apy": D("0.0342"),
        "balances": {"binance": {"USDT": D("49000.5"), "ETH": D("0.02")}, "aave": {"WETH": D("10.5")}},
        "positions": [{"venue": "binance", "instrument": "ETH/USDT:USDT", "market_type": "perp",
                       "quantity": D("-10"), "avg_entry": D("3001.5"), "realised": D("1234.5"),
                       "fees": D("-12.345")}],
        "exposure": {"ETH": D("0.02"), "USD": D("99000")},
        "pnl": {"realised": D("1234.5"), "unrealised": D("-50"), "fees": D("-12.345"), "funding": D("88.1"),
                "gas": D("-3.2"), "interest": D("10"), "rewards": D("0"), "total": D("1267.055")},
        "risk": {"health_factor": {"aave": D("1.8523")}, "margin_use": {"binance": D("0.153")},
                 "breaches": ["health factor aave 1.0500 < 1.1"]},
        "in_transit": {"USDT": D("500")},
        "notes": ["Funding is applied every 8 hours <script>alert(1)</script>"],
    }


EQUITY = [(_ts(h), D(v)) for h, v in enumerate(["100000", "100500", "99000", "101000", "100800", "101234.5"])]
EXPOSURE = [(_ts(h), {"ETH": D(e), "USD": D("99000")}) for h, e in enumerate(["0", "0.02", "0.02", "-0.01"])]


def test_writes_four_files_and_valid_pngs(tmp_path: Path) -> None:
    """write_report creates the folder and returns the paths of two valid PNGs, the Markdown and the HTML."""
    paths = write_report(tmp_path / "new" / "report", _summary(), EQUITY, EXPOSURE)
    assert set(paths) == {"equity_png", "exposure_png", "markdown", "html"}
    assert all(p.is_file() and p.parent == tmp_path / "new" / "report" for p in paths.values())
    for key in ("equity_png", "exposure_png"):
        assert paths[key].read_bytes().startswith(PNG_SIGNATURE)
        with Image.open(paths[key]) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 500
    for key in ("markdown", "html"):
        text = paths[key].read_text()
        assert "equity.png" in text and "exposure.png" in text and str(tmp_path) not in text


def test_markdown_has_digest_pnl_lines_and_exact_decimal_numbers(tmp_path: Path) -> None:
    """The Markdown page holds the digest at the end, every P&L line, and numbers formatted from Decimals."""
    md = write_report(tmp_path, _summary(), EQUITY, EXPOSURE)["markdown"].read_text()
    assert md.rstrip().endswith(f"Digest: `{_summary()['digest']}`")
    for line, amount in [("realised", "1,234.50"), ("unrealised", "-50.00"), ("fees", "-12.34"),
                         ("funding", "88.10"), ("gas", "-3.20"), ("interest", "10.00"), ("rewards", "0.00"),
                         ("total", "1,267.06")]:
        assert f"| {line} | {amount} |" in md
    for text in ("| binance | USDT | 49,000.50 |", "| binance | ETH | 0.02 |", "| USD | 99,000.00 |",
                 "| initial equity (USD) | 100,000.00 |", "| final equity (USD) | 101,234.50 |",
                 "| return | 1.23% |", "| APY (annualised) | 3.42% |",
                 "| max drawdown | 1.49% |", "| aave | 1.8523 | — |",
                 "| binance | — | 15.30% |", "- health factor aave 1.0500 < 1.1", "| USDT | 500.00 |"):
        assert text in md


def test_formatting_never_goes_through_float() -> None:
    """money and quantity round the Decimal itself, which a float could not represent exactly."""
    assert money(D("1234.5")) == "1,234.50"
    assert money(D("1234567890123.005")) == "1,234,567,890,123.00"  # half-even on the exact Decimal
    assert quantity(D("123456789012.12345678")) == "123,456,789,012.12345678"
    assert quantity(D("-0.000000001")) == "0.00" and money(D("-0.001")) == "0.00"
    assert money(D("Infinity")) == "∞" and money(None) == "—"


def test_two_calls_give_byte_identical_files(tmp_path: Path) -> None:
    """Equal inputs give byte-identical PNG, Markdown and HTML files (no timestamps or version stamps)."""
    first = write_report(tmp_path / "a", _summary(), EQUITY, EXPOSURE)
    second = write_report(tmp_path / "b", _summary(), EQUITY, EXPOSURE)
    for key, path in first.items():
        assert path.read_bytes() == second[key].read_bytes(), key


def test_file_in_the_way_raises_report_error_naming_the_folder(tmp_path: Path) -> None:
    """A regular file where the folder should be raises ReportError, a LedgerError, naming that path."""
    blocker = tmp_path / "report"
    blocker.write_text("not a folder")
    with pytest.raises(ReportError, match=r"cannot write report to .*report: ") as info:
        write_report(blocker, _summary(), EQUITY, EXPOSURE)
    assert isinstance(info.value, LedgerError) and str(blocker) in str(info.value)
    assert "\n" not in str(info.value) and blocker.read_text() == "not a folder"


def test_max_drawdown_on_a_hand_computed_series() -> None:
    """Peak 120 to trough 90 is a 25% drawdown, larger than the later 130 to 117 (10%)."""
    series = [(_ts(h), D(v)) for h, v in enumerate(["100", "120", "90", "130", "117"])]
    assert max_drawdown(series) == D("0.25")
    assert max_drawdown([(_ts(0), D("100")), (_ts(1), D("110"))]) == 0
    assert max_drawdown([]) == 0
    assert max_drawdown(EQUITY).quantize(D("1e-9")) == D("0.014925373")  # (100500 - 99000) / 100500


def test_empty_series_and_missing_keys_give_notes_not_a_crash(tmp_path: Path) -> None:
    """An empty equity and exposure series and a bare summary still write the report, with clear notes."""
    paths = write_report(tmp_path, {"strategy": "idle"}, [], [])
    md = paths["markdown"].read_text()
    assert "No equity points were recorded" in md and "No exposure points were recorded" in md
    assert "| max drawdown | — |" in md and "| initial equity (USD) | — |" in md
    assert all(paths[k].read_bytes().startswith(PNG_SIGNATURE) for k in ("equity_png", "exposure_png"))


def test_html_escapes_all_text(tmp_path: Path) -> None:
    """Text from the summary and the title is HTML-escaped in the page."""
    page = write_report(tmp_path, _summary(), EQUITY, EXPOSURE, title="P&L <run>")["html"].read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<h1>P&amp;L &lt;run&gt;</h1>" in page and '<img src="equity.png"' in page
    assert "<td class=n>1,234.50</td>" in page


def test_bad_timestamp_raises_report_error_naming_the_point(tmp_path: Path) -> None:
    """A point whose time is not ISO-8601 raises ReportError naming the series and index."""
    with pytest.raises(ReportError, match=r"equity\[1\]: not an ISO-8601 timestamp: 'yesterday'"):
        write_report(tmp_path, _summary(), [EQUITY[0], ("yesterday", D("1"))], EXPOSURE)


def test_render_console_prints_headline_and_tables() -> None:
    """render_console prints the headline and the balances, positions, exposure, P&L and risk numbers."""
    console = Console(record=True, width=120)
    render_console(_summary(), console, EQUITY)
    out = console.export_text()
    # The headline is console text: equity by the CLI's one number rule (positional, no separators, as
    # recorded here: 100000 and 101234.5), percentages with 2 decimals: return 1234.5 / 100000 = 1.2345%,
    # max drawdown 1500 / 100500 = 1.4925...%; counts plain.
    assert ("eth-basis: equity 100000 -> 101234.5 USD (1.23%), APY (annualised) 3.42%, max drawdown 1.49%, "
            "1200 events, 14 fills") in out
    # The console tables follow the CLI's one rule (ledger.cli_output.number): amounts exact, positional,
    # without separators; derived numbers to 12 decimals. The report page keeps money and quantity.
    for text in ("Balances per venue", "49000.5", "10.5", "Positions", "ETH/USDT:USDT", "3001.5",
                 "-10", "Net exposure", "99000", "P&L by line (USD)", "1267.055", "1.8523", "0.153",
                 "risk breach: health factor aave 1.0500 < 1.1", _summary()["digest"]):
        assert text in out.replace("│", " ").split() or text in out, text


def test_render_console_fits_80_columns_and_never_cuts_a_number() -> None:
    """At 80 columns every table fits (no line longer than 80) and every amount appears whole, even an
    18-decimal one in a wide positions table."""
    summary = _summary()
    summary["positions"][0]["avg_entry"] = D("3001.123456789012345678")  # derived: 12 decimals shown
    summary["balances"]["binance"]["ETH"] = D("0.000000000000000001")
    console = Console(record=True, width=80)
    render_console(summary, console, EQUITY)
    out = console.export_text()
    assert max(len(line) for line in out.splitlines()) <= 80 and "…" not in out
    words = out.replace("│", " ").split()
    for text in ("0.000000000000000001", "3001.123456789012", "49000.5", "-12.345", "1267.055"):
        assert text in words, text


def test_render_console_keeps_recorded_position_amounts_exact_and_wide_puts_a_row_on_one_line() -> None:
    """A position's realised P&L and fees are recorded amounts (they move balances): exact in the console,
    like the balances, while its average entry (a quotient) shows 12 decimals. `wide=True`: the positions
    table is framed, every position on one line, whatever the width of the console."""
    summary = _summary()
    realised, fees = D("1234.567890123456789"), D("-12.3456789012345678")
    summary["positions"][0].update(realised=realised, fees=fees, avg_entry=D("3001.123456789012345678"))
    console = Console(record=True, width=80)
    render_console(summary, console, EQUITY)
    words = console.export_text().replace("│", " ").split()
    assert {"1234.567890123456789", "-12.3456789012345678", "3001.123456789012"} <= set(words)
    wide = Console(record=True, width=100_000)
    render_console(summary, wide, EQUITY, wide=True)
    row = [line for line in wide.export_text().splitlines() if "ETH/USDT:USDT" in line]
    assert len(row) == 1 and row[0].startswith("│") and len(row[0]) > 80
    assert all(text in row[0] for text in ("binance", "perp", "-10", "1234.567890123456789",
                                           "-12.3456789012345678"))


def test_render_console_prints_the_runs_notes_before_the_digest() -> None:
    """The notes (a renormalised hedge split, filled gaps) reach the terminal, not only the report page."""
    summary = _summary()
    summary["notes"] = ["hedge_split: no OKX ETH perp data for 2024-06-01 → 2024-08-01; the default "
                        "40/30/30 split was renormalised to binance 4/7, bybit 3/7"]
    console = Console(record=True, width=80)
    render_console(summary, console, EQUITY)
    lines = console.export_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("note: hedge_split: no OKX ETH perp"))
    assert " ".join(line.strip() for line in lines[at:at + 3]).startswith(
        "note: " + summary["notes"][0])
    assert lines[-1].startswith("digest: ") and at < len(lines) - 1


def test_headline_prints_equity_as_the_tables_do_and_never_separates_thousands() -> None:
    """The headline's equity follows the CLI's derived-number rule (positional, no separators, rounded
    half-even to 12 decimals), not the page's money format; percentages keep 2 decimals, without
    separators; the page keeps its money format."""
    from ledger.report import headline

    summary = {"strategy": "s", "initial_equity": D("1234567.1234567890125"), "apy": D("12.5"),
               "final_equity": D("2469134.24691357802500001"), "events": 12345, "fills": 1000}
    # final / initial - 1 = 1.0000000000000000000000...: a 100.00% return; APY 12.5 = 1250.00%.
    assert headline(summary) == ("s: equity 1234567.123456789012 -> 2469134.246913578025 USD (100.00%), "
                                 "APY (annualised) 1250.00%, 12345 events, 1000 fills")


def test_render_console_keeps_a_huge_equity_exact_and_the_digest_on_one_line() -> None:
    """A 1e16 capital (more digits than the default 28-digit Decimal context holds with 12 decimals)
    prints exactly, rounded to 12 decimals where derived; at 40 columns, and on a console narrower than
    that, the last line is the whole `digest: <64 hex>` (grep '^digest:' finds it)."""
    digest = "0123456789abcdef" * 4
    summary = {**_summary(), "digest": digest, "initial_equity": D("10000000000000000"),
               "final_equity": D("10000000000000037.6234567890123456789"),
               "pnl": {"interest": D("37.6234567890123456789"), "total": D("37.6234567890123456789")}}
    for width in (40, 5):
        console = Console(record=True, width=width)
        render_console(summary, console, EQUITY)
        lines = console.export_text().splitlines()
        assert lines[-1] == f"digest: {digest}", lines[-3:]
        words = " ".join(lines).replace("│", " ").split()
        assert "10000000000000000" in words and "10000000000000037.623456789012" in words  # headline
        assert "37.623456789012" in words  # the P&L lines: derived, 12 decimals
        assert all(len(line) <= 40 for line in lines[:-1]), [line for line in lines if len(line) > 40]
