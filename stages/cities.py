"""DVC stage `cities`: propose new PyData cities from a mixture fitted to past editions.

    python stages/cities.py --events data/pydata_events.csv --out reports/cities
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genmodels.cities import CitiesConfig, propose, read_events, render_map, world_cities
from genmodels.config import as_dict, load_section
from genmodels.io import atomic_open
from genmodels.stage import run_stage
from genmodels.tracking import start_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=Path, required=True, help="CSV of past editions")
    parser.add_argument("--out", type=Path, required=True, help="folder for metrics, CSV, map")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    return run_stage("cities", lambda: cities(args))


def cities(args: argparse.Namespace) -> None:
    cfg = load_section(args.params, "cities", CitiesConfig)
    events = read_events(args.events)
    with start_run("cities", as_dict(cfg), metrics_path=args.out / "metrics.json") as run:
        result = propose(events, world_cities(cfg.min_population), cfg)
        with atomic_open(args.out / "proposals.csv") as f:
            result["proposals"].to_csv(f, index=False, float_format="%.5f")
        render_map(events, result, world_cities(), args.out / "map.png")
        run.log(result["metrics"])
        run.log_artifact(args.out / "map.png")
        run.log_artifact(args.out / "proposals.csv")
    names = ", ".join(f"{r.city} ({r.country})" for r in result["proposals"].itertuples())
    print(f"cities: {result['metrics']}\nproposed: {names}")


if __name__ == "__main__":
    sys.exit(main())
