"""`python -m fx_pipeline <step>`: run one pipeline step by hand (same code as the DAG tasks)."""

from __future__ import annotations

import argparse
import json
import logging

from . import tasks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fx-pipeline")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="fetch candles into bronze")
    c.add_argument("--instrument", default="USD_SGD")
    sub.add_parser("features", help="bronze -> silver features")
    sub.add_parser("materialize", help="feast apply + materialize to Redis")
    t = sub.add_parser("train", help="train, register, maybe promote")
    t.add_argument("--instrument", default="USD_SGD")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.cmd == "collect":
        out = tasks.collect_candles(args.instrument)
    elif args.cmd == "features":
        out = tasks.build_feature_table()
    elif args.cmd == "materialize":
        out = tasks.materialize_online()
    else:
        out = tasks.train_model(args.instrument)
    print(json.dumps(out, default=str))
    return 0
