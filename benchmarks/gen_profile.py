"""Deterministic generator of a large collapsed-stack profile for the render benchmarks.

    python benchmarks/gen_profile.py OUT.collapsed [--stacks 100000] [--seed 1]

Writes ``--stacks`` unique stacks (root first, ``function (file:line)`` frames, depth
4..60, shared prefixes like a real program's call tree) with weights 1..1000.  The
same arguments always produce the same bytes (~40 MB for 100k stacks).
"""

from __future__ import annotations

import argparse
import random
import sys


def generate(n_stacks: int = 100_000, seed: int = 1, n_functions: int = 6000):
    rng = random.Random(seed)
    kinds = ["app/handlers", "app/models", "app/services", "lib/python3.12/json", "lib/python3.12/asyncio",
             "site-packages/sqlalchemy/orm", "site-packages/requests", "site-packages/numpy/core"]
    funcs = []
    for i in range(n_functions):
        kind = kinds[i % len(kinds)]
        funcs.append(f"{rng.choice(['get', 'load', 'run', 'parse', 'handle', 'compute', 'send', '_inner'])}_{i} "
                     f"(/srv/{kind}/mod_{i % 97}.py:{rng.randint(1, 900)})")
    roots = [f"<module> (/srv/app/main_{i}.py:1)" for i in range(3)]
    stacks: list[list[str]] = []
    seen: set[str] = set()
    while len(stacks) < n_stacks:
        if stacks and rng.random() < 0.97:
            parent = stacks[rng.randrange(len(stacks))]
            cut = rng.randint(1, len(parent))
            stack = parent[:cut]
        else:
            stack = [rng.choice(roots)]
        for _ in range(rng.randint(1, 8)):
            if len(stack) >= 60:
                break
            stack.append(funcs[rng.randrange(n_functions)])
        line = ";".join(stack)
        if line in seen:
            continue
        seen.add(line)
        stacks.append(stack)
    for stack in stacks:
        yield ";".join(stack), rng.randint(1, 1000)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--stacks", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    with open(args.out, "w", encoding="utf-8") as f:
        for line, w in generate(args.stacks, args.seed):
            f.write(f"{line} {w}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
