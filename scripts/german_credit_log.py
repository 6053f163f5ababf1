"""Turn the German Credit data into a decision log, for the worked example in docs/OPERATIONS.md.

Gives each of the 1,000 applicants in ``tests/data/german_credit.csv`` (UCI Statlog German
Credit, CC BY 4.0) a decision time — applicant i decided at START + i × 864 s, so ten days
of 100 decisions each — and writes them as one CSV per day into a folder (a lender's daily
exports), and/or as a table ``decisions`` in a database (a lender's decision table).

    python scripts/german_credit_log.py --days 3 --folder examples/german_credit/decisions
    python scripts/german_credit_log.py --days 10 --folder examples/german_credit/decisions \
        --from-day 3                         # the next seven days "arrive"
    python scripts/german_credit_log.py --sqlite examples/german_credit/lender.db

START defaults to ten days before today (UTC midnight), so the newest decisions are recent
and a ``24h`` window finds some. Nothing here is part of the monitor.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "german_credit.csv"
PER_DAY = 100


def decision_log(start: datetime) -> pd.DataFrame:
    """The German Credit rows with a ``decided_at`` column (ISO 8601, UTC)."""
    df = pd.read_csv(DATA)
    step = timedelta(days=1) / PER_DAY
    df["decided_at"] = [(start + i * step).isoformat() for i in range(len(df))]
    return df


def main() -> None:
    """Write the requested days as CSV files and/or a SQLite table."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, help="write one CSV per day here")
    parser.add_argument("--sqlite", type=Path, help="write table 'decisions' to this file")
    parser.add_argument("--from-day", type=int, default=0, help="first day to write (0-9)")
    parser.add_argument("--days", type=int, default=10, help="write days up to this (1-10)")
    parser.add_argument(
        "--start",
        type=datetime.fromisoformat,
        default=today - timedelta(days=9),
        help="time of the first decision (default: 9 days before today)",
    )
    args = parser.parse_args()
    if args.folder is None and args.sqlite is None:
        parser.error("give --folder and/or --sqlite")
    if not 0 <= args.from_day < args.days <= 10:
        parser.error("expected 0 <= --from-day < --days <= 10")
    start = args.start if args.start.tzinfo else args.start.replace(tzinfo=UTC)
    df = decision_log(start).iloc[args.from_day * PER_DAY : args.days * PER_DAY]
    if args.folder is not None:
        args.folder.mkdir(parents=True, exist_ok=True)
        for day, part in df.groupby(df.index // PER_DAY):
            name = (start + timedelta(days=int(day))).strftime("decisions-%Y-%m-%d.csv")
            part.to_csv(args.folder / name, index=False)
            print(f"wrote {args.folder / name} ({len(part)} decisions)")
    if args.sqlite is not None:
        from sqlalchemy import create_engine

        args.sqlite.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{args.sqlite.resolve()}")
        df.to_sql("decisions", engine, index=False, if_exists="append")
        engine.dispose()
        print(f"appended {len(df)} decisions to table 'decisions' in {args.sqlite}")


if __name__ == "__main__":
    main()
