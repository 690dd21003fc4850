"""A/B: this checkout's runner against prototypes of search.py, alternately, on one workload.

To measure a proposed change to the runner without touching the checkout, put a
changed copy of ``search.py`` alone in a directory and name that directory::

    PYTHONPATH=. /work/venv/bin/python benchmarks/ab.py --workload w1 --repeats 3 \\
        --variant main --variant /tmp/proto/ordered

``main`` is this checkout. Each variant's directory comes first on the
PYTHONPATH, so ``grids`` and ``state`` are still this checkout's. Prints, per
variant, the median wall, efficiency, start-up (spawn to first task) and
shut-down (last task to exit) time, and the median per-repeat wall ratio to the
first variant.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import run as bench


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["w1", "big", "boosting", "table", "forests"], default="w1")
    parser.add_argument("--variant", action="append", required=True,
                        help="`main` or a directory holding a prototype search.py; give two or more")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", help="only these families (e.g. lr,nb: a short run that measures start-up "
                        "and shut-down)")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--entry", choices=["module", "script"], default="module")
    parser.add_argument("--bench-dir", type=Path, default=bench.SHARED_BENCH)
    parser.add_argument("--nice", type=int, default=0, help="niceness increment of the measured processes")
    parser.add_argument("--quiet-below", type=float, default=0.3)
    parser.add_argument("--quiet-timeout", type=float, default=300.0)
    opts = parser.parse_args(argv)
    bench.NICE = opts.nice
    opts.out = Path(tempfile.mkdtemp(prefix="search-ab-"))
    opts.kills, opts.trace_loop, opts.runner_path = 0, False, None
    wl = {"name": opts.workload,
          "grids": opts.bench_dir / "w1.py" if opts.workload == "w1" else bench.HERE / f"{opts.workload}.py"}
    bench.warm_up(opts)
    runs: dict[str, list[dict]] = {v: [] for v in opts.variant}
    for r in range(opts.repeats):
        order = opts.variant if r % 2 == 0 else list(reversed(opts.variant))
        for i, v in enumerate(order):
            opts.runner_path = None if v == "main" else Path(v).resolve()
            res = bench.run_runner(wl, opts, f"ab-{r}-{i}")
            runs[v].append(res)
            tl = res["timeline"]
            print(f"[#{r}] {v:<30} wall {res['wall']:6.1f} s  eff {res['efficiency']:.3f}  "
                  f"startup {tl.get('startup', 0):.2f} s  shutdown {tl.get('shutdown', 0):.2f} s  "
                  f"other load {res['other_load']:.2f}", file=sys.stderr, flush=True)
    med = statistics.median
    first = opts.variant[0]
    print(f"\n{opts.workload}{' ' + opts.families if opts.families else ''}, {opts.repeats} repeats, medians")
    print(f"{'variant':<30} {'wall s':>8} {'ratio':>7} {'eff':>6} {'work s':>7} {'startup':>8} {'shutdown':>9} "
          f"{'idle between':>12} {'saves s':>8} {'other':>6}")
    for v, rs in runs.items():
        ratio = med(a["wall"] / b["wall"] for a, b in zip(rs, runs[first]))
        print(f"{v:<30} {med(x['wall'] for x in rs):8.2f} {ratio:7.3f} {med(x['efficiency'] for x in rs):6.3f} "
              f"{med(x['work'] for x in rs):7.1f} {med(x['timeline']['startup'] for x in rs):8.2f} "
              f"{med(x['timeline']['shutdown'] for x in rs):9.2f} "
              f"{med(x['timeline']['idle_core_s_between'] for x in rs):12.2f} "
              f"{med(x['save_time'] for x in rs):8.3f} {med(x['other_load'] for x in rs):6.2f}")


if __name__ == "__main__":
    main()
