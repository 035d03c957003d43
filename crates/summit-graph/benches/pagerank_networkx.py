#!/usr/bin/env python3
"""Times NetworkX's personalized PageRank on the InceptionV1-sized fixture
graph, for comparison with `cargo bench -p summit-graph --bench pagerank`.

    python3 crates/summit-graph/benches/pagerank_networkx.py [--python-repeats N]

Reports nx.pagerank (the SciPy implementation NetworkX 3.x uses) and the
pure-Python `_pagerank_python`, each the best of several runs, plus the graph
build time.
"""

import argparse
import gzip
import json
import os
import sys
import time

import networkx as nx
from networkx.algorithms.link_analysis.pagerank_alg import _pagerank_python

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
from make_pagerank import build_nx  # noqa: E402


def best_of(n, f):
    best = float("inf")
    out = None
    for _ in range(n):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scipy-repeats", type=int, default=10)
    ap.add_argument("--python-repeats", type=int, default=3)
    args = ap.parse_args()
    with gzip.open(os.path.join(HERE, "..", "tests", "fixtures", "pagerank_inception.json.gz")) as f:
        fx = json.load(f)
    channels = [l["channels"] for l in fx["layers"]]
    t_build, (G, pers) = best_of(1, lambda: build_nx(channels, fx["excluded"], fx["counts"], fx["edges"]))
    print(f"graph: {G.number_of_nodes()} vertices, {G.number_of_edges()} edges (build {t_build:.2f} s)")
    t_sp, pr_sp = best_of(
        args.scipy_repeats, lambda: nx.pagerank(G, alpha=0.85, personalization=pers, weight="weight")
    )
    print(f"networkx {nx.__version__} pagerank (scipy): {t_sp * 1e3:.1f} ms (best of {args.scipy_repeats})")
    t_py, pr_py = best_of(
        args.python_repeats,
        lambda: _pagerank_python(G, alpha=0.85, personalization=pers, weight="weight"),
    )
    print(f"networkx {nx.__version__} _pagerank_python: {t_py:.2f} s (best of {args.python_repeats})")
    diff = max(abs(pr_sp[k] - pr_py[k]) for k in pr_sp)
    print(f"max |scipy - python| = {diff:.2e}")


if __name__ == "__main__":
    main()
