#!/usr/bin/env python3
"""Reads the figures of a benchmark run and prints them with their ratio, target and verdict.

Every flowgate benchmark prints one JSON object per figure on a line of its own (see
bench/bench_report.h); other lines (build output, logs) are skipped. A figure PASSes when it
meets its absolute target and its target ratio, whichever it has; MISS otherwise; '-' when it
has neither.

  cmake --build build --target bench 2>&1 | tee run.jsonl
  bench/compare.py run.jsonl                      # table on the terminal
  bench/compare.py run.jsonl --previous old.jsonl # and how each figure moved
  bench/compare.py run.jsonl --markdown           # the table of BENCHMARKS.md
  ... | bench/compare.py                          # reads standard input

--strict exits 1 if a figure misses its target. A figure moving the wrong way by more than
--threshold (default 10%) since the previous run is marked 'worse'.
"""

import argparse
import json
import sys


def read_figures(stream):
    figures = {}
    for line in stream:
        line = line.strip()
        start = line.find('{"bench"')
        if start < 0:
            continue
        try:
            figure = json.loads(line[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(figure, dict) and "bench" in figure and "value" in figure:
            figures[figure["bench"]] = figure  # a figure printed twice: the last one counts
    return figures


def meets(value, goal, higher):
    return value >= goal if higher else value <= goal


def verdict(figure):
    higher = figure.get("better", "higher") == "higher"
    checks = []
    if figure.get("target") is not None:
        checks.append(meets(figure["value"], figure["target"], higher))
    if figure.get("target_ratio") is not None:
        ratio = figure.get("ratio")
        checks.append(ratio is not None and meets(ratio, figure["target_ratio"], higher))
    if not checks:
        return "-"
    return "PASS" if all(checks) else "MISS"


def number(value):
    if value is None:
        return ""
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.2f}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.1f}k"
    if magnitude >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.3g}"


def target_text(figure):
    sign = ">=" if figure.get("better", "higher") == "higher" else "<="
    parts = []
    if figure.get("target") is not None:
        parts.append(f"{sign} {number(figure['target'])}")
    if figure.get("target_ratio") is not None:
        parts.append(f"ratio {sign} {figure['target_ratio']:g}")
    return ", ".join(parts)


def movement(figure, previous, threshold):
    old = previous.get(figure["bench"])
    if old is None or not old.get("value"):
        return "", ""
    change = figure["value"] / old["value"]
    higher = figure.get("better", "higher") == "higher"
    worse = change < 1 - threshold if higher else change > 1 + threshold
    return number(old["value"]), f"{change:.2f}x" + (" worse" if worse else "")


def rows(figures, previous, threshold):
    header = ["figure", "value", "unit", "baseline", "ratio", "target", "result"]
    if previous is not None:
        header += ["previous", "change"]
    table = [header]
    for name, f in figures.items():
        ratio = f.get("ratio")
        row = [
            name,
            number(f["value"]),
            f.get("unit", ""),
            f.get("baseline") or "",
            f"{ratio:.3g}" if ratio is not None else "",
            target_text(f),
            verdict(f),
        ]
        if previous is not None:
            row += list(movement(f, previous, threshold))
        table.append(row)
    return table


def print_plain(table, out):
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for n, row in enumerate(table):
        out.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


def print_markdown(table, out):
    out.write("| " + " | ".join(table[0]) + " |\n")
    out.write("|" + "|".join("---" for _ in table[0]) + "|\n")
    for row in table[1:]:
        cells = [f"`{row[0]}`"] + [c.replace("|", "\\|") for c in row[1:]]
        out.write("| " + " | ".join(cells) + " |\n")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("run", nargs="?", help="JSON lines of a run (default: standard input)")
    parser.add_argument("--previous", help="JSON lines of an earlier run to compare with")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 if any figure misses its target")
    parser.add_argument("--threshold", type=float, default=0.10,
                        help="relative change marked 'worse' (default 0.10)")
    args = parser.parse_args()

    if args.run:
        with open(args.run, encoding="utf-8", errors="replace") as stream:
            figures = read_figures(stream)
    else:
        figures = read_figures(sys.stdin)
    if not figures:
        sys.stderr.write("compare.py: no figures found (lines starting with {\"bench\": ...)\n")
        return 2
    previous = None
    if args.previous:
        with open(args.previous, encoding="utf-8", errors="replace") as stream:
            previous = read_figures(stream)

    table = rows(figures, previous, args.threshold)
    (print_markdown if args.markdown else print_plain)(table, sys.stdout)
    misses = [row[0] for row in table[1:] if row[6] == "MISS"]
    if not args.markdown:
        passed = sum(1 for row in table[1:] if row[6] == "PASS")
        print(f"\n{len(figures)} figures, {passed} PASS, {len(misses)} MISS"
              + (f": {', '.join(misses)}" if misses else ""))
    return 1 if args.strict and misses else 0


if __name__ == "__main__":
    sys.exit(main())
