#!/usr/bin/env python3
"""The crate's module graph, checked: what imports what, and whether the tree reads
top-down.

Every file under `src/` is a module. An edge is an import from one module to
another: `use crate::…`, `use super::…`, `pub use self::…`, or a `crate::…` path
in code (doc comments and `#[cfg(test)] mod tests` are left out: tests may reach
anywhere). An edge goes to the module that *defines* the item when the path names
it there, or to the hub (`mod.rs`) the path runs through.

Checks, failing with a list when broken:

- no module imports from the crate root (`crate::Name`): the root re-exports a
  quick start's handful, and the crate itself never goes through them;
- the graph is a DAG (no cycle, hubs included);
- at most `MAX_UPWARD` edges run up the layers below (from a module to one in a
  higher layer): the file list reads top-down like the guide.

`python3 scripts/module_graph.py` prints the layers, every upward edge, and the
counts; `--dot` prints the graph for Graphviz.
"""

import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
MAX_UPWARD = 4

# Top to bottom. A module belongs to the layer of its longest matching prefix.
LAYERS = [
    ("the crate root and the guide", ["", "guide"]),
    ("integrations", ["axum", "openapi", "testing"]),
    ("the layer", ["layer"]),
    ("services", ["service", "endpoint::service", "guard::layer"]),
    (
        "request handling",
        [
            "endpoint::token",
            "endpoint::introspect",
            "endpoint::metadata",
            "guard::decide",
            "guard::require",
        ],
    ),
    ("configuration", ["config"]),
    (
        "request parts",
        [
            "endpoint::form",
            "endpoint::policy",
            "endpoint::throttle",
            "endpoint::client_addr",
            "endpoint::clients",
            "endpoint::jwks",
            "audit",
            "guard::bearer",
            "guard::paths",
            "http",
            "dpop",
            "dpop::replay",
        ],
    ),
    ("stores", ["token", "user", "password", "redis"]),
    ("vocabulary", ["base64url", "clock", "constant_time", "metrics", "scope", "store", "user::subject"]),
]
# Hubs (`mod.rs` of a directory) only declare and re-export; they sit with the
# highest of their children.
HUB_LAYER = {"endpoint": 3, "guard": 3, "http": 6, "token": 7, "user": 7}


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib"):
        rel = rel[:-1]
    return "::".join(rel)


def files():
    for root, _, names in os.walk(SRC):
        for name in sorted(names):
            if name.endswith(".rs"):
                yield os.path.join(root, name)


MODULES = {module_of(f): f for f in files()}


def layer(module):
    if module in HUB_LAYER:
        return HUB_LAYER[module]
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if module == p or (p and module.startswith(p + "::")):
                if len(p) > best:
                    best, rank = len(p), i
    if rank is None:
        if module == "":
            return 0
        raise SystemExit(f"module {module!r} is in no layer: add it to LAYERS")
    return rank


def code_of(path):
    text = open(path, encoding="utf-8").read()
    # `pub(super) mod tests` too: a test module may share helpers with its siblings'.
    cut = re.search(r"#\[cfg\(test\)\]\n(?:pub(?:\([^)]*\))? )?mod tests", text)
    if cut:
        text = text[: cut.start()]
    # Doc comments and line comments say nothing about imports.
    return "\n".join(
        line for line in text.split("\n") if not line.lstrip().startswith("//")
    )


def split_tree(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = tree.strip()
    brace = tree.find("{")
    if brace < 0:
        return [tree.split(" as ")[0].strip()]
    head = tree[:brace]
    inner = tree[brace + 1 : tree.rfind("}")]
    parts, depth, current = [], 0, ""
    for ch in inner:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [head + p for part in parts if part.strip() for p in split_tree(part)]


def target(module, path):
    """The module an import path lands in (or None: outside the crate)."""
    segments = [s for s in path.split("::") if s]
    if not segments:
        return None
    here = module.split("::") if module else []
    if segments[0] == "crate":
        base, rest = [], segments[1:]
    elif segments[0] == "super":
        base = here[:]
        while segments and segments[0] == "super":
            base = base[:-1]
            segments = segments[1:]
        rest = segments
    elif segments[0] == "self":
        base, rest = here[:], segments[1:]
    else:
        return None
    # The deepest module the path runs through.
    found = "::".join(base)
    for seg in rest:
        candidate = "::".join(base + [seg])
        if candidate in MODULES:
            base.append(seg)
            found = candidate
        else:
            break
    return found


USE = re.compile(r"^( *)(?:pub(?:\([a-z]+\))?\s+)?use\s+((?:crate|super|self)::[^;]+);", re.M)
# A path in code; `crate::name!` is a macro, which `#[macro_export]` puts at the root.
INLINE = re.compile(r"(?<![\w:$])crate::(?:[a-z_][a-z0-9_]*::)*[A-Za-z_][A-Za-z0-9_]*(?![\w!])")


def edges():
    result = set()
    for module, path in MODULES.items():
        code = code_of(path)
        paths = []
        for m in USE.finditer(code):
            tree = m.group(2)
            # Indented: inside an inline `mod`, whose `super` is this file's module.
            if m.group(1) and tree.startswith("super::"):
                tree = "self::" + tree[len("super::") :]
            paths += split_tree(tree)
        paths += INLINE.findall(USE.sub("", code))
        for p in paths:
            t = target(module, p)
            if t is not None and t != module:
                result.add((module, t, p.strip()))
    return result


def cycles(graph):
    state, stack, found = {}, [], []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def main():
    all_edges = edges()
    graph = {}
    for a, b, _ in all_edges:
        graph.setdefault(a, set()).add(b)
    if "--dot" in sys.argv:
        print("digraph modules {")
        for a, b in sorted({(a, b) for a, b, _ in all_edges}):
            colour = ' [color="orange"]' if layer(b) < layer(a) else ""
            print(f'  "{a or "crate"}" -> "{b or "crate"}"{colour};')
        print("}")
        return 0
    for i, (name, _) in enumerate(LAYERS):
        members = sorted(m for m in MODULES if layer(m) == i)
        print(f"{i} {name}: {', '.join(m or 'crate' for m in members)}")
    failures = []
    root = sorted((a, p) for a, b, p in all_edges if b == "" and a != "")
    for a, p in root:
        failures.append(f"{a} imports {p} through the crate root")
    upward = sorted({(a, b) for a, b, _ in all_edges if layer(b) < layer(a)})
    print(f"\n{len({(a, b) for a, b, _ in all_edges})} edges between {len(MODULES)} modules")
    print(f"{len(upward)} run up the layers (at most {MAX_UPWARD}):")
    for a, b in upward:
        print(f"  {a} -> {b}")
    if len(upward) > MAX_UPWARD:
        failures.append(f"{len(upward)} edges run up the layers, more than {MAX_UPWARD}")
    for cycle in cycles(graph):
        failures.append("cycle: " + " -> ".join(m or "crate" for m in cycle))
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print("no import through the crate root; no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
