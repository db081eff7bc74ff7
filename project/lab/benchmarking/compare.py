"""`scripts/compare_benchmarks.py`: two benchmark runs side by side, every ratio the tables print, from each run's
`--rounds_file`, and how far apart.

    python scripts/compare_benchmarks.py first.json second.json

Each ratio as the table computes it (the median over the rounds of each round's own ratio), its value in both
runs, and the larger over the smaller minus one: whether a change between two runs is more than the runs' own drift.
"""

import json
import statistics
import sys
from pathlib import Path

from jsonargparse import ArgumentParser

from project.errors import UserError, exits_on_user_error
from project.lab.benchmarking.rounds import step_ratios


def ratios(timings: dict[str, list[dict]]) -> dict[str, float]:
    """Every ratio of one run's tables, named `case: top / bottom`, from its rounds."""
    found = {}
    for case, rounds in timings.items():
        if case.startswith("whole_run"):
            found[f"{case}: whole run / compute"] = statistics.median(r["run"]["total"] / r["compute"] for r in rounds)
        elif case == "decoding":
            found[f"{case}: project / PIL alone"] = statistics.median(r["project"] / r["pil"] for r in rounds)
        else:
            for top, bottom in step_ratios(rounds[0]):
                found[f"{case}: {top} / {bottom}"] = statistics.median(r[top] / r[bottom] for r in rounds)
    return found


def read(path: str) -> dict[str, list[dict]]:
    try:
        return json.loads(Path(path).read_text())
    except OSError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror}); a rounds file is written by "
                        f"`scripts/benchmark.py --rounds_file=FILE`") from None
    except ValueError as error:
        raise UserError(f"{path}: not a benchmark's rounds file ({error}); write one with "
                        f"`scripts/benchmark.py --rounds_file=FILE`") from None


def compare(first: dict[str, list[dict]], second: dict[str, list[dict]]) -> list[tuple[str, float, float, float]]:
    """(ratio, first run's, second run's, apart) for every ratio both runs measured; apart = larger/smaller - 1."""
    one, two = ratios(first), ratios(second)
    return [(name, one[name], two[name], max(one[name], two[name]) / min(one[name], two[name]) - 1)
            for name in one if name in two]


def main(args: list[str] | None = None) -> None:
    parser = ArgumentParser(exit_on_error=False, description=__doc__)
    parser.add_argument("first", type=str, help="a rounds file (scripts/benchmark.py --rounds_file=FILE)")
    parser.add_argument("second", type=str, help="another, from a run of the same cases")
    with exits_on_user_error():
        config = parser.parse_args(sys.argv[1:] if args is None else args)
        args = [config.first, config.second]
        first, second = read(args[0]), read(args[1])
        try:
            rows = compare(first, second)
        except (AttributeError, IndexError, KeyError, TypeError, ZeroDivisionError) as error:
            raise UserError(f"{args[0]} or {args[1]} is not a benchmark's rounds file as this version writes it "
                            f"({type(error).__name__}: {error}); rerun `scripts/benchmark.py --rounds_file=FILE`"
                            ) from None
        if not rows:
            raise UserError(f"{args[0]} and {args[1]} share no case: run the benchmark with the same --cases")
    print("| ratio | first run | second run | apart |\n|---|---:|---:|---:|")
    for name, one, two, apart in rows:
        print(f"| {name} | {one:.2f} | {two:.2f} | {apart:.1%} |")
    print(f"\nlargest apart: {max(apart for *_, apart in rows):.1%} ({len(rows)} ratios)")


if __name__ == "__main__":
    main()
