#!/usr/bin/env python3
"""One row of scripts/bench.sh's callgrind.tsv: what one request of CASE cost,
from two callgrind runs of it that differ by N requests (the larger run's totals
minus the smaller's, over N: start-up and the pool's filling cancel).

    callgrind_per_request.py CASE N SMALL.out LARGE.out

Columns: instructions, L1i misses, L1d misses (reads and writes), last-level
misses (instruction and data), mispredicted branches (conditional and indirect),
conditional branches executed; "-" where the run had no cache or branch
simulation."""
import sys


def totals(path):
    events, summary = None, None
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith(("summary:", "totals:")) and summary is None:
                summary = [int(v) for v in line.split()[1:]]
    if events is None or summary is None:
        sys.exit(f"{path}: no callgrind totals (did the run fail?)")
    return dict(zip(events, summary))


case, n, small, large = sys.argv[1], int(sys.argv[2]), totals(sys.argv[3]), totals(sys.argv[4])


def per_request(*names):
    if not all(name in small for name in names):
        return "-"
    # Rounded, not floored: a count that did not grow is 0, not -1.
    return str(round(sum(large[name] - small[name] for name in names) / n))


print(
    case,
    per_request("Ir"),
    per_request("I1mr"),
    per_request("D1mr", "D1mw"),
    per_request("ILmr", "DLmr", "DLmw"),
    per_request("Bcm", "Bim"),
    per_request("Bc"),
    sep="\t",
)
