#!/usr/bin/env python3
"""Turns the results of scripts/bench.sh into the tables of docs/guide/performance.md and an SVG chart.

    python3 scripts/chart.py RESULTS_DIR SVG_PATH

RESULTS_DIR holds what scripts/bench.sh wrote (machine.tsv, guard.tsv, guard.log,
callgrind.tsv, code_lines.tsv, login.tsv, login.log, memory.tsv, wrk.*.txt); any
part may be missing.
Prints Markdown tables on stdout and writes the chart (hand-made SVG, no dependency).
"""

import glob
import os
import re
import statistics
import sys
from html import escape

UNITS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
# End-to-end servers, in table order.
E2E_SERVERS = ("bare", "map", "map2", "tutorial")
E2E_LABELS = {
    "bare": "`examples/bare.rs` (no auth)",
    "map": "`MAP_TOKEN=… examples/bare.rs` (the map-lookup floor)",
    "map2": "`MAP2_TOKEN=… examples/bare.rs` (the two-lookup floor: token → username → user)",
    "tutorial": "`examples/tutorial.rs` (the layer)",
}


def read_tsv(path):
    """Rows of a TSV file as lists of strings; [] if it does not exist."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def criterion_means(path):
    """{bench name: point estimate in ns} from criterion's console output."""
    means = {}
    if not os.path.exists(path):
        return means
    text = open(path, encoding="utf-8").read()
    pattern = re.compile(
        r"^(\S+?)/(\S+)\s+time:\s+\[\S+ \S+ ([\d.]+) (\S+) \S+ \S+\]", re.M
    )
    for _group, name, value, unit in pattern.findall(text):
        means[name] = float(value) * UNITS[unit]
    return means


def wrk_runs(results):
    """[(server, round, run, {rps, p50_us, p99_us, requests, cpu_us_per_request})]."""
    runs = []
    for path in sorted(glob.glob(os.path.join(results, "wrk.*.txt"))):
        server, rnd, run = os.path.basename(path).split(".")[1:4]
        text = open(path, encoding="utf-8").read()
        stats = {}
        m = re.search(r"Requests/sec:\s+([\d.]+)", text)
        if not m:
            continue
        stats["rps"] = float(m.group(1))
        for pct in ("50", "99"):
            m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % pct, text, re.M)
            if m:
                stats["p%s_us" % pct] = float(m.group(1)) * UNITS[m.group(2)] / 1e3
        m = re.search(r"(\d+) requests in", text)
        stats["requests"] = int(m.group(1)) if m else 0
        m = re.search(r"cpu_ns (\d+)", text)
        if m and stats["requests"]:
            stats["cpu_us"] = int(m.group(1)) / 1e3 / stats["requests"]
        runs.append((server, int(rnd), run, stats))
    return runs


def fmt(x, digits=0):
    return "–" if x is None else f"{x:,.{digits}f}"


def fmt_count(v):
    """A TSV cell: a count with thousands separators, anything else ("-") as is."""
    return fmt(int(v)) if v.isdigit() else v


def main():
    results, svg_path = sys.argv[1], sys.argv[2]
    machine = dict((row[0], row[1]) for row in read_tsv(os.path.join(results, "machine.tsv")) if len(row) > 1)
    out = []
    say = out.append

    # --- in process -------------------------------------------------------------
    guard = {}
    guard_ratios = {}
    # `delta:NAME`: ns a DPoP row's request took beyond its proof's signature
    # verification (median over rounds, p25, p75).
    dpop_beyond = {}
    for row in read_tsv(os.path.join(results, "guard.tsv"))[1:]:
        if row[0].startswith("ratio:memory/"):
            guard_ratios[row[0][len("ratio:memory/"):]] = (float(row[1]), float(row[2]), float(row[3]))
        elif row[0].startswith("delta:"):
            dpop_beyond[row[0][len("delta:"):]] = (float(row[1]), float(row[2]), float(row[3]))
        else:
            guard[row[0]] = dict(median=float(row[1]), p25=float(row[2]), p75=float(row[3]), added=float(row[4]))
    guard_criterion = criterion_means(os.path.join(results, "guard.log"))
    callgrind = read_tsv(os.path.join(results, "callgrind.tsv"))
    ir = {row[0]: int(row[1]) for row in callgrind[1:]}
    if guard:
        say("In process, one `GET /users/me` through `tower::ServiceExt::oneshot` "
            "(`cargo bench --bench guard`):\n")
        say("| case | criterion mean | interleaved median (p25–p75) | added over `bare` | instructions | added instructions |")
        say("|---|---:|---:|---:|---:|---:|")
        for name, g in guard.items():
            added_ir = ir[name] - ir["bare"] if name in ir and "bare" in ir else None
            say(f"| `{name}` | {fmt(guard_criterion.get(name))} ns | {fmt(g['median'])} ns ({fmt(g['p25'])}–{fmt(g['p75'])}) "
                f"| {fmt(g['added'])} ns | {fmt(ir.get(name))} | {fmt(added_ir)} |")
        for floor in ("map_lookup", "map_lookup_arc"):
            lines = []
            if floor in guard_ratios:
                r = guard_ratios[floor]
                lines.append(f"time {r[0]:.2f}x (p25–p75 of the per-round ratio: {r[1]:.2f}–{r[2]:.2f})")
            if all(k in ir for k in ("bare", "memory", floor)):
                lines.append(f"instructions {(ir['memory'] - ir['bare']) / (ir[floor] - ir['bare']):.2f}x")
            if lines:
                say(f"\nOur guard's added cost over `{floor}`'s: {'; '.join(lines)} (target ≤ 1.20x).")

        paired = [name for name in dpop_beyond if "_paired-" in name]
        if paired:
            say("\nDPoP: what a request with a proof took beyond its proof's signature "
                "verification, per pair (`dpop_*_paired`; goal ≤ 2,000 ns):\n")
            say("| row | median over rounds (p25–p75) |")
            say("|---|---:|")
            for name in paired:
                median, p25, p75 = dpop_beyond[name]
                say(f"| `{name}` | {fmt(median)} ns ({fmt(p25)}–{fmt(p75)}) |")
    # With CACHE_SIM=0 the simulated columns hold "-": the instructions are above.
    if any(len(row) > 2 and row[2] != "-" for row in callgrind[1:]):
        say("\nPer request under callgrind (simulated 32 KiB L1i/L1d and 512 KiB L2, "
            "callgrind's branch predictors):\n")
        say("| case | " + " | ".join(callgrind[0][1:]) + " |")
        say("|---|" + "---:|" * (len(callgrind[0]) - 1))
        for row in callgrind[1:]:
            say(f"| `{row[0]}` | " + " | ".join(fmt_count(v) for v in row[1:]) + " |")

    code_lines = read_tsv(os.path.join(results, "code_lines.tsv"))
    if code_lines:
        say("\nDistinct 64-byte lines of machine code each request runs (callgrind; "
            "SHA-256 in software, ~150 lines, where a server uses `sha_ni`):\n")
        say("| case | lines | beyond | lines beyond it |")
        say("|---|---:|---|---:|")
        # In the bench's order, as the table above.
        order = {row[0]: i for i, row in enumerate(callgrind[1:])}
        for case, lines, beyond, lines_beyond in sorted(code_lines[1:], key=lambda row: order.get(row[0], len(order))):
            say(f"| `{case}` | {fmt_count(lines)} | {beyond} | {fmt_count(lines_beyond)} |")

    # --- login ------------------------------------------------------------------
    login = {}
    for row in read_tsv(os.path.join(results, "login.tsv"))[1:]:
        login[row[0]] = dict(median=float(row[1]), p25=float(row[2]), p75=float(row[3]), ratio=float(row[4]))
    login_criterion = criterion_means(os.path.join(results, "login.log"))
    if login:
        say("\nLogin, default Argon2id (m=19456 KiB, t=2, p=1) (`cargo bench --bench login`):\n")
        say("| case | criterion mean | interleaved median (p25–p75) | vs raw verify |")
        say("|---|---:|---:|---:|")
        for name, l in login.items():
            crit = login_criterion.get(name)
            say(f"| `{name}` | {fmt(crit / 1e6 if crit else None, 2)} ms | {l['median']:.2f} ms ({l['p25']:.2f}–{l['p75']:.2f}) | {l['ratio']:.3f}x |")
        if "token_endpoint" in login:
            say(f"\nToken endpoint / raw verify: {login['token_endpoint']['ratio']:.3f}x (target ≤ 1.10x).")

    # --- memory -----------------------------------------------------------------
    memory = dict((row[0], row[1]) for row in read_tsv(os.path.join(results, "memory.tsv")) if len(row) > 1)
    if memory:
        tokens = int(memory["tokens"])
        say(f"\nMemory token store at {tokens:,} live tokens (`cargo run --release --example token_memory`):\n")
        say("| | value |")
        say("|---|---:|")
        say(f"| heap per live token (bytes requested) | {float(memory['heap_bytes_per_token']):.0f} B |")
        say(f"| RSS per live token | {float(memory['rss_bytes_per_token']):.0f} B |")
        say(f"| issue (random bytes from the OS, insert) | {int(memory['issue_ns']):,} ns |")
        say(f"| all expired, before the next issue | {int(memory['held_after_expiry_before_issue']):,} tokens held |")
        say(f"| after {int(memory['issues_to_reclaim']):,} more issues ({float(memory['sweep_total_ms']):.0f} ms in all, "
            f"the longest {float(memory['sweep_ms']):.0f} ms) | {int(memory['held_after_sweep']):,} live tokens held |")
        if "worst_lookup_ms" in memory:
            say(f"| longest lookup of a live token during those sweeps (another thread) | {float(memory['worst_lookup_ms']):.1f} ms |")
        say(f"| heap still held after the sweep (the map's capacity) | {int(memory['heap_bytes_after_sweep']) / 2**20:.0f} MiB |")

    # --- end to end -------------------------------------------------------------
    all_runs = wrk_runs(results)
    runs = [r for r in all_runs if not r[0].startswith("paired-")]
    paired_runs = [r for r in all_runs if r[0].startswith("paired-")]
    e2e = {}
    e2e_ratio = None
    paired = None
    if runs:
        by_server = {}
        for server, _rnd, _run, stats in runs:
            by_server.setdefault(server, []).append(stats)
        for server, stats in by_server.items():
            def med(key):
                values = [s[key] for s in stats if key in s]
                return statistics.median(values) if values else None
            e2e[server] = dict(rps=med("rps"), p50=med("p50_us"), p99=med("p99_us"), cpu=med("cpu_us"), n=len(stats))
        rounds = {}
        for server, rnd, _run, stats in runs:
            rounds.setdefault(rnd, {}).setdefault(server, []).append(stats)
        def ratio_to(server, base="bare"):
            ratios = []
            for per in rounds.values():
                if base in per and server in per:
                    ratios.append(statistics.mean(s["rps"] for s in per[server]) / statistics.mean(s["rps"] for s in per[base]))
            return (statistics.median(ratios), min(ratios), max(ratios)) if ratios else None
        e2e_ratio = ratio_to("tutorial")
        map_ratio = ratio_to("map")
        map2_ratio = ratio_to("map2")
        conns = machine.get("connections", "?")
        say(f"\nEnd to end, `GET /users/me` on loopback, `wrk -t1 -c{conns} -d{machine.get('duration', '?')}s --latency`, "
            f"{len(rounds)} interleaved rounds (bare, tutorial, map, map2, map2, map, tutorial, bare), medians"
            f"{'; ' + machine['pinning'] if 'pinning' in machine else ''} (`scripts/bench.sh`):\n")
        say("| server | req/s | p50 | p99 | server CPU per request |")
        say("|---|---:|---:|---:|---:|")
        for server in E2E_SERVERS:
            if server in e2e:
                e = e2e[server]
                say(f"| {E2E_LABELS[server]} | {fmt(e['rps'])} | {fmt(e['p50'])} µs | {fmt(e['p99'])} µs | {fmt(e['cpu'], 1)} µs |")
        if e2e_ratio:
            say(f"\nTutorial / bare req/s, interleaved rounds: {e2e_ratio[0] * 100:.1f} % (median of per-round ratios; "
                f"range {e2e_ratio[1] * 100:.1f}–{e2e_ratio[2] * 100:.1f} %; target ≥ 97 %)"
                + (f"; the map-lookup floor: {map_ratio[0] * 100:.1f} % (range {map_ratio[1] * 100:.1f}–{map_ratio[2] * 100:.1f} %)"
                   if map_ratio else "")
                + (f"; the two-lookup floor: {map2_ratio[0] * 100:.1f} % (range {map2_ratio[1] * 100:.1f}–{map2_ratio[2] * 100:.1f} %)"
                   if map2_ratio else "") + ".")
            for floor, name in (("map", "map-lookup"), ("map2", "two-lookup")):
                against = ratio_to("tutorial", floor)
                if against:
                    say(f"Tutorial / the {name} floor, per round: {against[0] * 100:.1f} % "
                        f"(range {against[1] * 100:.1f}–{against[2] * 100:.1f} %; target ≥ 99 %).")
    if paired_runs:
        rounds, restart_of = {}, {}
        for server, rnd, run, stats in paired_runs:
            rounds.setdefault(rnd, {})[server[len("paired-"):]] = stats
            restart_of[rnd] = run
        def capacity(server):
            # Requests per core second relative to bare's: the ratio of CPU costs.
            cpu_ratios, costs = [], []
            for per in rounds.values():
                if "cpu_us" in per.get("bare", {}) and "cpu_us" in per.get(server, {}):
                    cpu_ratios.append(per["bare"]["cpu_us"] / per[server]["cpu_us"])
                    costs.append(per[server]["cpu_us"])
            if not cpu_ratios:
                return None
            return dict(capacity=statistics.median(cpu_ratios), low=min(cpu_ratios), high=max(cpu_ratios),
                        cpu=statistics.median(costs), n=len(cpu_ratios))
        paired = capacity("tutorial")
        paired_map = capacity("map")
        paired_map2 = capacity("map2")
        bare_cpu = capacity("bare")
        if paired and bare_cpu:
            say(f"\nPaired rounds ({paired['n']} × {machine.get('duration', '?')} s, all servers loaded at once on one core): "
                f"server CPU per request {bare_cpu['cpu']:.1f} µs (bare) vs {paired['cpu']:.1f} µs (tutorial)"
                + (f" and {paired_map['cpu']:.1f} µs (map-lookup floor)" if paired_map else "")
                + f", so the tutorial serves **{paired['capacity'] * 100:.1f} %** of the bare server's req/s per core "
                f"(median of per-round ratios, range {paired['low'] * 100:.1f}–{paired['high'] * 100:.1f} %; target ≥ 97 %)"
                + (f"; the map-lookup floor serves {paired_map['capacity'] * 100:.1f} % "
                   f"(range {paired_map['low'] * 100:.1f}–{paired_map['high'] * 100:.1f} %)" if paired_map else "")
                + (f"; the two-lookup floor {paired_map2['capacity'] * 100:.1f} % "
                   f"(range {paired_map2['low'] * 100:.1f}–{paired_map2['high'] * 100:.1f} %, "
                   f"{paired_map2['cpu']:.1f} µs)" if paired_map2 else "")
                + ".")
            for server, label in (("tutorial", "Tutorial"), ("layer", "The layer in bare.rs's binary (`LAYER=1`)")):
                for floor, name in (("map", "map-lookup"), ("map2", "two-lookup")):
                    by_restart = {}
                    for rnd, per in rounds.items():
                        if "cpu_us" in per.get(floor, {}) and "cpu_us" in per.get(server, {}):
                            by_restart.setdefault(restart_of[rnd], []).append(
                                per[floor]["cpu_us"] / per[server]["cpu_us"])
                    against = [ratio for ratios in by_restart.values() for ratio in ratios]
                    if against:
                        line = (f"{label} per core / the {name} floor's, per round: {statistics.median(against) * 100:.1f} % "
                                f"(range {min(against) * 100:.1f}–{max(against) * 100:.1f} %; target ≥ 99 %)")
                        if len(by_restart) > 1:
                            # Each restart is one draw of every server's layout.
                            medians = [statistics.median(ratios) for ratios in by_restart.values()]
                            line += (f"; over {len(medians)} restarts, the median of their medians "
                                     f"**{statistics.median(medians) * 100:.1f} %** "
                                     f"(restarts {min(medians) * 100:.1f}–{max(medians) * 100:.1f} %)")
                        say(line + ".")

    if machine:
        cpu = ", ".join(machine[key] for key in ("cpu", "cpu_id", "caches") if key in machine) or "?"
        say(f"\nMachine: {machine.get('cores', '?')} cores ({cpu}), {machine.get('memory', '?')}, "
            f"{machine.get('rustc', '?')}, {machine.get('date', '?')}.")
    print("\n".join(out))
    write_svg(svg_path, machine, guard, login, e2e, guard_ratios.get("map_lookup"), e2e_ratio, paired, ir)


def write_svg(path, machine, guard, login, e2e, guard_ratio, e2e_ratio, paired, ir):
    width, label_w, bar_w = 880, 190, 400
    x0 = label_w
    row_h, gap = 24, 8
    parts = []
    y = 34
    parts.append(f'<text x="20" y="24" class="h1">tower-oauth2-password: per-request cost per configuration</text>')

    def panel(title, note, rows, unit, digits):
        """rows: (label, base, added, text, highlight)."""
        nonlocal y
        y += 22
        parts.append(f'<text x="20" y="{y}" class="h2">{escape(title)}</text>')
        y += 6
        if note:
            y += 14
            parts.append(f'<text x="20" y="{y}" class="note">{escape(note)}</text>')
        y += 8
        top = max(base + added for _l, base, added, _t, _h in rows) or 1
        scale = bar_w / top
        for label, base, added, text, highlight in rows:
            parts.append(f'<text x="{x0 - 8}" y="{y + row_h * 0.68:.1f}" class="label" text-anchor="end">{escape(label)}</text>')
            parts.append(f'<rect x="{x0}" y="{y}" width="{base * scale:.1f}" height="{row_h}" class="base"/>')
            if added > 0:
                cls = "ours" if highlight else "other"
                parts.append(f'<rect x="{x0 + base * scale:.1f}" y="{y}" width="{added * scale:.1f}" height="{row_h}" class="{cls}"/>')
            parts.append(f'<text x="{x0 + (base + added) * scale + 6:.1f}" y="{y + row_h * 0.68:.1f}" class="value">{escape(text)}</text>')
            y += row_h + gap

    if guard:
        bare = guard.get("bare", {}).get("median", 0)
        rows = []
        for name, g in guard.items():
            added = max(g["median"] - bare, 0) if name != "bare" else 0
            text = f"{g['median']:,.0f} ns" + (f"  (+{g['added']:,.0f})" if name != "bare" else "")
            if name in ir:
                text += f"  · {ir[name]:,} instr."
            ours = name in ("memory", "missing_header", "invalid_token")
            rows.append((name, min(bare, g["median"]), added, text, ours))
        note = "grey: request + handler (bare); colour: the guard's added cost. Median of interleaved rounds."
        if guard_ratio:
            note += f" Ours/map_lookup added: {guard_ratio[0]:.2f}x (target ≤ 1.2x)."
        panel("In process: ns per request through tower::ServiceExt::oneshot", note, rows, "ns", 0)

    if login:
        floor = login.get("raw_argon2_verify", {}).get("median", 0)
        rows = []
        for name, l in login.items():
            added = max(l["median"] - floor, 0) if name != "raw_argon2_verify" else 0
            rows.append((name, min(floor, l["median"]), added, f"{l['median']:.1f} ms  ({l['ratio']:.3f}x raw)", name != "raw_argon2_verify"))
        panel("Login: ms per request, default Argon2id", "grey: a raw argon2 verify of the same hash (the floor).", rows, "ms", 1)

    if e2e:
        bare = e2e.get("bare")
        rows = []
        for server in E2E_SERVERS:
            if server not in e2e:
                continue
            e = e2e[server]
            cost = 1e6 / e["rps"]
            base = 1e6 / bare["rps"] if bare else cost
            text = f"{e['rps']:,.0f} req/s · p50 {e['p50']:,.0f} µs · p99 {e['p99']:,.0f} µs"
            label = {"bare": "bare hyper", "map": "map_lookup floor", "map2": "two-lookup floor", "tutorial": "tutorial (layer)"}[server]
            rows.append((label, min(base, cost), max(cost - base, 0), text, server == "tutorial"))
        note = "µs per request = 1 / (req/s)" + ("; server pinned to one core, wrk to the other." if "pinning" in machine else ".")
        if e2e_ratio:
            note += f" Tutorial/bare req/s: {e2e_ratio[0] * 100:.1f} %"
            if paired:
                note += f"; paired, per core: {paired['capacity'] * 100:.1f} %"
            note += " (target ≥ 97 %)."
        panel("End to end over loopback: µs per request (1 / throughput)", note, rows, "µs", 1)

    y += 10
    footer = (f"{machine.get('cores', '?')} cores, {machine.get('cpu', '?')}, {machine.get('rustc', '')}, "
              f"{machine.get('date', '')}. Regenerate: scripts/bench.sh")
    parts.append(f'<text x="20" y="{y}" class="note">{escape(footer)}</text>')
    height = y + 14
    style = """
  text { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; fill: #222; }
  .h1 { font-size: 16px; font-weight: 600; }
  .h2 { font-size: 13px; font-weight: 600; }
  .note { font-size: 11px; fill: #555; }
  .label { font-size: 12px; font-family: ui-monospace, Menlo, Consolas, monospace; }
  .value { font-size: 11px; }
  .base { fill: #c8c8c8; }
  .ours { fill: #d9534f; }
  .other { fill: #4a86c8; }
"""
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">\n<style>{style}</style>\n'
           f'<rect width="100%" height="100%" fill="#fff"/>\n' + "\n".join(parts) + "\n</svg>\n")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(svg)


if __name__ == "__main__":
    main()
