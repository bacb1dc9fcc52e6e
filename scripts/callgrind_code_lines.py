#!/usr/bin/env python3
"""How much machine code one request runs, from scripts/bench.sh's callgrind
runs (made with --dump-instr=yes): the distinct 64-byte lines of code holding
an instruction that ran on every one of the N requests by which a case's two
runs differ (its count grew by at least 0.9 N; start-up and the pool's filling
run once and drop out).

    callgrind_code_lines.py DIR

reads DIR/callgrind.CASE.ITERS.out (two ITERS per case) and prints a TSV row
per case: its lines, the yardstick it is compared with, and its lines that
the yardstick's runs do not also run every request. Yardsticks: `bare` for
every case, and for `dpop_x` the union of `memory` (the guard's Bearer path)
and `verify_x` (the bare signature check): what the proof check adds.

Why lines: a server's proof check runs after another request's signature
verification, which leaves the core's instruction caches and branch
predictors holding its own code; what the check then pays grows with how much
distinct code it runs, which instruction counts do not tell. Valgrind hides
the CPU's SHA extensions, so SHA-256's software rounds (some 150 lines) count
here that a server does not run."""
import collections
import glob
import os
import re
import sys

LINE = 64


def executed(path):
    """Instruction address -> times it ran, from a callgrind profile."""
    counts = collections.Counter()
    # Positions are "instr line" (absolute, +/- relative, or * for the same);
    # the cost line after a `calls=` line is the call's inclusive cost.
    address, after_call = 0, False
    with open(path) as f:
        for line in f:
            if line.startswith("calls="):
                after_call = True
                continue
            if not line or line[0] not in "0123456789+-*":
                continue
            fields = line.split()
            position = fields[0]
            if position.startswith("0x"):
                address = int(position, 16)
            elif position[0] in "+-":
                address += int(position)
            elif position != "*":
                address = int(position)
            if after_call:
                after_call = False
            elif len(fields) >= 3:
                counts[address] += int(fields[2])
    return counts


def every_request(small, large, n):
    """Addresses that ran on every one of the n requests between two runs."""
    return {a for a, c in large.items() if c - small.get(a, 0) >= 0.9 * n}


def main():
    results = sys.argv[1]
    runs = collections.defaultdict(dict)
    for path in glob.glob(os.path.join(results, "callgrind.*.out")):
        m = re.match(r"callgrind\.(.+)\.(\d+)\.out$", os.path.basename(path))
        if m:
            runs[m.group(1)][int(m.group(2))] = path
    lines = {}
    for case, by_iters in runs.items():
        if len(by_iters) != 2:
            continue
        small, large = sorted(by_iters)
        addresses = every_request(executed(by_iters[small]), executed(by_iters[large]), large - small)
        lines[case] = {a // LINE for a in addresses}
    print("case\tcode_lines\tbeyond\tcode_lines_beyond")
    for case in sorted(lines):
        if case.startswith("dpop_"):
            yardstick = ["memory", "verify_" + case[len("dpop_"):]]
        elif case != "bare":
            yardstick = ["bare"]
        else:
            yardstick = []
        if not all(y in lines for y in yardstick):
            yardstick = []
        ran = set().union(*(lines[y] for y in yardstick))
        beyond = len(lines[case] - ran) if yardstick else "-"
        print(case, len(lines[case]), "+".join(yardstick) or "-", beyond, sep="\t")


main()
