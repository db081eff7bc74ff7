"""scripts/benchmark.py on tiny generated data: it runs every path in interleaved rounds and prints its table."""

import json
import re
import statistics
import subprocess
import sys

import numpy as np
import pytest
from lightning.pytorch import seed_everything
from tiny_settings import SCRIPTS

from project.data import ImageDataModule
from project.lab.benchmarking import rounds as rounds_module
from project.lab.benchmarking.data_sources import mnist_root
from project.lab.benchmarking.machine_noise import machine_noise, rounds_to_pin
from project.lab.benchmarking.main import SEED, copy_of, interleaved_rounds, new_model, same_losses
from project.lab.benchmarking.main import main as benchmark_main
from project.lab.benchmarking.paths import lightning_fit, plain_loop
from project.lab.benchmarking.rounds import median_interval, paired, pinned, spread, step_ratios

MEDIAN_AND_RANGE = re.compile(r"^([\d,.]+) \(([\d,.]+)–([\d,.]+)\)$")


def median_and_range(cell: str) -> tuple[float, float, float]:
    """A table cell `median (min–max)` as numbers; fails the test on any other form."""
    match = MEDIAN_AND_RANGE.match(cell)
    assert match, f"not a 'median (min–max)' cell: {cell!r}"
    return tuple(float(part.replace(",", "")) for part in match.groups())


@pytest.mark.slow
def test_benchmark_prints_one_table_per_case_with_every_path_and_equal_losses(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "benchmark.py"), "--generated_size=120", "--batches=10", "--warmup=1",
         "--noise_seconds=0.5", "--batch_size=16", "--workers=[0]", "--repeats=2", "--max_minutes=0",
         "--whole_run_rounds=2", f"--rounds_file={tmp_path / 'rounds.json'}"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    paths = [row.split(" | ")[0] for row in rows if row[2].isdigit()]
    assert len(paths) == 10 and sum(path.startswith("| 4. same model and data") for path in paths) == 2
    assert sum(path.startswith("| 5. Lightning's floor") for path in paths) == 2
    for row in rows:
        if not row[2].isdigit() or row.startswith("| whole run"):
            continue
        label, rate, ratio, notes = row.removeprefix("| ").removesuffix(" |").split(" | ")
        for cell in (rate, ratio):  # a median within its range over the rounds
            median, low, high = median_and_range(cell)
            assert low <= median <= high
        assert median_and_range(rate)[1] > 0
        if label.startswith("1."):
            assert ratio == "1.00 (1.00–1.00)"
        if label.startswith("3."):
            assert median_and_range(notes.removeprefix("default/torchvision = "))[0] > 0
        if label.startswith("4."):
            lightning_over_plain, losses = notes.removeprefix("Lightning/plain = ").split("; ")
            assert median_and_range(lightning_over_plain)[0] > 0
            # 10 steps are 2 passes over the ~120 images, the first's last batch short: the plain loop's epochs are
            # seeded and shuffled as Lightning's
            assert losses == "losses equal to 5 decimals over 10 steps, in 2 of 2 rounds: yes"
        if label.startswith("5."):
            assert median_and_range(notes.removeprefix("minimal Lightning/plain = "))[0] > 0
    assert re.search(r"^machine noise: the same 0.25 s of MLP training steps timed \d+ times moved by [\d.]+% "
                     r"\(coefficient of variation\); at that noise a ratio's 95 % interval is 5% wide after about "
                     r"\d+ rounds$",
                     result.stdout, re.M)
    assert "mlp_mnist on cpu: generated MNIST-shaped data" in result.stdout
    assert "cnn_cifar on cpu: generated CIFAR-shaped PNGs" in result.stdout
    assert result.stdout.count("median of 2 interleaved rounds: samples/s (min–max), each ratio taken within a round "
                               "(the median's 95 % interval); ") == 2
    whole_run = [row.removeprefix("| ").removesuffix(" |").split(" | ") for row in rows[rows.index(
        "| phase | first run (decodes), s | runs reading the decode cache, s |") + 1:][:8]]
    assert [row[0] for row in whole_run[:6]] == ["data", "training", "validation", "checkpoints", "test", "total"]
    assert whole_run[6][0].startswith("compute: 1 epochs") and whole_run[7][0] == "whole run / compute"
    for _, first_run, cached_runs in whole_run:  # the first run timed once, the cached ones in rounds
        median, low, high = median_and_range(cached_runs)
        assert float(first_run) >= 0 and low <= median <= high
    assert "then 2 interleaved rounds of a run reading the decode cache and its compute alone" in result.stdout
    decoding = rows[rows.index("| decoding | images/s | × PIL alone |") + 1:]
    assert [row.split(" | ")[0] for row in decoding] == [
        "| PIL alone: open, convert to RGB, to an array",
        "| this project: files listed, decoded, stacked into one tensor (no cache)"]
    assert median_and_range(decoding[1].removesuffix(" |").split(" | ")[2])[0] > 0  # a ratio per round
    assert "decoding 120 images of the folder: 2 interleaved rounds" in result.stdout
    # Every round's timings, from which the table's figures come: its medians recomputed from the file.
    timings = json.loads((tmp_path / "rounds.json").read_text())
    assert list(timings) == ["mlp_mnist on cpu", "cnn_cifar on cpu", "whole_run on cpu", "decoding"]
    mlp = timings["mlp_mnist on cpu"]
    assert len(mlp) == 2 and set(mlp[0]) == {"compute", "default", "torchvision 0", "plain", "minimal"}
    default_over_plain = statistics.median(each["default"] / each["plain"] for each in mlp)
    lightning_row = next(row for row in rows if row.startswith("| 4.") and " on " not in row)
    assert f"Lightning/plain = {default_over_plain:.2f} (" in lightning_row
    whole = timings["whole_run on cpu"]
    assert len(whole) == 2 and set(whole[0]["run"]) == {"data", "training", "validation", "checkpoints", "test",
                                                        "total"}
    assert whole_run[7][2].startswith(f"{statistics.median(r['run']['total'] / r['compute'] for r in whole):.2f} (")
    assert len(timings["decoding"]) == 2 and set(timings["decoding"][0]) == {"project", "pil"}


@pytest.fixture
def no_collections(monkeypatch):
    """A round's garbage collection before each path costs ~0.2 s in the suite's large heap: 100 of them in these
    tests of the loop's logic alone took half a minute."""
    monkeypatch.setattr(rounds_module.gc, "collect", lambda: 0)


def test_the_paths_are_timed_in_rounds_each_in_its_own_seeded_order(no_collections):
    calls = []
    paths = {name: (lambda name=name: calls.append(name) or (len(calls), [])) for name in "abcdef"}
    rounds = interleaved_rounds(paths, 4)
    orders = [calls[i:i + 6] for i in range(0, 24, 6)]
    assert all(sorted(order) == list("abcdef") for order in orders)  # every path once per round, rounds in turn
    assert len({tuple(order) for order in orders}) == 4  # and not in the same order each round
    assert [{name: rate for name, (rate, _) in each.items()} for each in rounds] == [
        {name: 6 * index + order.index(name) + 1 for name in "abcdef"} for index, order in enumerate(orders)
    ]
    calls.clear()
    interleaved_rounds(paths, 4)
    assert [calls[i:i + 6] for i in range(0, 24, 6)] == orders  # the same orders on every run of the benchmark


def test_a_ratio_is_taken_within_each_round_then_its_median():
    # Round 2 ran under a burst of load that halved both paths, round 3 ran plain alone under one: paired, the
    # burst cancels (2.00) and the lone one shows as the maximum, where the ratio of the medians would read 2.50.
    rounds = [{"lightning": (100.0, []), "plain": (50.0, [])}, {"lightning": (50.0, []), "plain": (25.0, [])},
              {"lightning": (120.0, []), "plain": (40.0, [])}]
    assert paired(rounds, "lightning", "plain") == "2.00 (2.00–3.00)"
    assert spread([rate for rate, _ in (each["lightning"] for each in rounds)], ",.0f") == "100 (50–120)"
    assert spread([1200.0, 900.0, 1500.0, 1000.0], ",.0f") == "1,100 (900–1,500)"  # an even count: the middle two


@pytest.mark.parametrize("repeats", ["0", "-2"])
def test_repeats_below_one_exit_2_with_one_line(repeats, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main([f"--repeats={repeats}", "--cases=[mlp_mnist]"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err == f"error: --repeats {repeats} must be at least 1 (9, the default, is what the tables use)\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--batches=0"], "--batches 0 must be at least 1 (null: each case's own)"),
    (["--noise_seconds=-1"], "--noise_seconds -1.0 must be at least 0 (0: no noise check)"),
    (["--generated_size=50"], "--generated_size 50 is too few for --cases ['mlp_mnist', 'cnn_cifar', 'whole_run']: "
                              "at least 100 (one image a class for a step case, ten a class for the whole run's 10 % "
                              "validation split)"),
    (["--generated_size=5", "--cases=[mlp_mnist]"], "--generated_size 5 is too few for --cases ['mlp_mnist']: at "
                                                   "least 10 (one image a class for a step case, ten a class for the "
                                                   "whole run's 10 % validation split)"),
    (["--warmup=60"], "--warmup 60 must be at least 0 and below cnn_cifar's --batches 60"),
    (["--warmup=5", "--batches=5"], "--warmup 5 must be at least 0 and below mlp_mnist's --batches 5"),
])
def test_settings_that_leave_nothing_to_time_exit_2_with_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main(args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_the_step_paths_count_the_samples_of_their_timed_steps_over_several_passes(tmp_path):
    """120 images in batches of 16 make 8 batches a pass, the last of 8: steps 3-10 of 10 take 5 × 16 + 8 + 2 × 16
    = 120 samples, and the plain loop takes the same batches as Lightning over the pass boundary (equal losses)."""
    root, _ = mnist_root(tmp_path, None, 120)
    data = ImageDataModule("mnist", root=root, download=False, val_fraction=0.0, batch_size=16)
    data.setup()
    template = new_model("mlp_mnist", data)
    seed_everything(SEED, verbose=False)
    stopwatch = lightning_fit(copy_of(template), 10, 2, "cpu", datamodule=data)
    assert stopwatch.samples == 120 and len(stopwatch.losses) == 10
    _, losses = plain_loop(template, data, 10, 2, "cpu", SEED)
    assert same_losses(losses, stopwatch.losses)


def test_a_batch_size_below_one_exits_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main(["--batch_size=0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: --batch_size 0 must be at least 1 (null: each case's own)\n"


def test_the_backbone_benchmark_prints_a_row_per_case_with_both_phases(capsys):
    from project.lab.benchmarking.backbone_speed import main as backbone_main

    backbone_main(["--cases=[resnet18@32, timm:test_resnet@48]", "--steps=1", "--batch_size=2", "--epoch_images=100"])
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(row[0], row[1]) for row in rows] == [("| resnet18", "32"), ("| timm:test_resnet", "48")]
    assert all(float(row[2]) > 0 and float(row[3]) > 0 and row[4].endswith("× |") for row in rows)


@pytest.mark.parametrize("args", [["--cases=[resnet18]"], ["--cases=[resnet18@x]"], ["--cases=[nope@32]"],
                                  ["--cases=[resnet18@8]"], ["--cases=[]"], ["--batch_size=1"]])
def test_a_bad_backbone_benchmark_setting_exits_2_with_one_line(args, capsys):
    from project.lab.benchmarking.backbone_speed import main as backbone_main

    with pytest.raises(SystemExit) as exit_info:
        backbone_main([*args, "--steps=1"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ")


def test_more_rounds_until_the_ratios_are_pinned_within_the_time_given(no_collections):
    from project.lab.benchmarking.main import MAX_ROUNDS, interleaved_rounds

    paths = {"a": lambda: (1.0, []), "b": lambda: (2.0, [])}
    assert len(interleaved_rounds(paths, 2, lambda rounds: len(rounds) >= 5, 60)) == 5  # until settled
    assert len(interleaved_rounds(paths, 7, lambda rounds: True, 60)) == 7  # never fewer than asked
    assert len(interleaved_rounds(paths, 2, lambda rounds: False, 60)) == MAX_ROUNDS  # and never endless
    assert len(interleaved_rounds(paths, 3, lambda rounds: False, 0)) == 3  # no time: the rounds asked for


def test_the_median_interval_is_the_distribution_free_order_statistic_one():
    assert median_interval([5.0, 1.0, 3.0]) == (1.0, 5.0)  # too few for 95 %: min–max
    assert median_interval(range(1, 10)) == (2, 8)  # 9: the 2nd and 8th, coverage 1 - 2 * 10/512 = 96 %
    assert median_interval(range(1, 31)) == (10, 21)  # 30: P(B <= 9) = 0.021, P(B <= 10) = 0.049
    # The rule on ratios: pinned when every ratio's interval is within the precision.
    steady = [{"a": (1.0 + 0.001 * i, []), "b": (1.0, [])} for i in range(9)]
    noisy = [{"a": (1.0 + 0.03 * i, []), "b": (1.0, [])} for i in range(9)]
    assert pinned(steady, [("a", "b")], 0.05) and not pinned(noisy, [("a", "b")], 0.05)
    from project.lab.benchmarking.main import precision_verdict

    both = [{**each, "c": (1.0, [])} for each in noisy]  # a/b's interval is 1.03-1.21 wide, c/b's nothing
    assert precision_verdict(both, [("c", "b"), ("a", "b")], 0.05) == (
        "NOT every ratio's interval within 5% (the widest, a / b: 17%): the machine was busy; rerun, or raise "
        "--max_minutes")
    assert precision_verdict(both, [("c", "b")], 0.05) == "every ratio's interval within 5%"
    assert step_ratios(["compute", "default", "torchvision 0", "plain", "minimal"]) == [
        ("default", "compute"), ("torchvision 0", "compute"), ("plain", "compute"), ("minimal", "compute"),
        ("default", "torchvision 0"), ("default", "plain"), ("minimal", "plain")]


@pytest.mark.parametrize(("option", "message"), [
    ("--whole_run_rounds=0", "must each be at least 1"), ("--whole_run_epochs=0", "must each be at least 1"),
    ("--precision=0", "must be above 0 and --max_minutes"), ("--max_minutes=-1", "must be above 0 and --max_minutes"),
])
def test_a_count_precision_or_time_out_of_range_exits_2_with_one_line(option, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main([option, "--cases=[whole_run]"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and message in err


def test_a_rounds_file_in_a_folder_that_does_not_exist_exits_2_before_any_timing(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main([f"--rounds_file={tmp_path / 'nowhere' / 'rounds.json'}", "--cases=[mlp_mnist]"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (f"error: --rounds_file {tmp_path / 'nowhere' / 'rounds.json'}: its folder does "
                                       f"not exist; create it, or name another file\n")


def test_an_existing_rounds_file_is_never_written_over(tmp_path, capsys):
    earlier = tmp_path / "rounds.json"
    earlier.write_text('{"decoding": [{"project": 1.0, "pil": 2.0}]}\n')
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main([f"--rounds_file={earlier}", "--cases=[mlp_mnist]"])
    assert exit_info.value.code == 2 and capsys.readouterr().err == (
        f"error: --rounds_file {earlier} exists already: name a new file (the benchmark never writes over one)\n")
    assert earlier.read_text() == '{"decoding": [{"project": 1.0, "pil": 2.0}]}\n'  # the earlier run's rounds kept


def test_compare_prints_every_ratio_of_two_runs_and_how_far_apart(tmp_path, capsys):
    from project.lab.benchmarking.compare import main as compare_main

    def rounds(default: float, whole: float) -> dict:
        step = [{"compute": 100.0, "default": default, "torchvision 0": 10.0, "plain": 80.0, "minimal": 60.0},
                {"compute": 50.0, "default": default / 2, "torchvision 0": 5.0, "plain": 40.0, "minimal": 30.0}]
        return {"mlp_mnist on cpu": step, "whole_run on cpu": [{"run": {"total": whole}, "compute": 10.0}],
                "decoding": [{"project": 1.0, "pil": 2.0}, {"project": 3.0, "pil": 4.0}, {"project": 1.0, "pil": 5.0}]}

    (tmp_path / "a.json").write_text(json.dumps(rounds(default=50.0, whole=12.0)))
    (tmp_path / "b.json").write_text(json.dumps(rounds(default=55.0, whole=12.0)))
    compare_main([str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    out = capsys.readouterr().out.splitlines()
    assert out[2:6] == ["| mlp_mnist on cpu: default / compute | 0.50 | 0.55 | 10.0% |",
                        "| mlp_mnist on cpu: torchvision 0 / compute | 0.10 | 0.10 | 0.0% |",
                        "| mlp_mnist on cpu: plain / compute | 0.80 | 0.80 | 0.0% |",
                        "| mlp_mnist on cpu: minimal / compute | 0.60 | 0.60 | 0.0% |"]
    assert "| mlp_mnist on cpu: default / torchvision 0 | 5.00 | 5.50 | 10.0% |" in out
    assert "| mlp_mnist on cpu: default / plain | 0.62 | 0.69 | 10.0% |" in out
    assert "| whole_run on cpu: whole run / compute | 1.20 | 1.20 | 0.0% |" in out
    assert "| decoding: project / PIL alone | 0.50 | 0.50 | 0.0% |" in out  # the median of 0.5, 0.75, 0.2
    assert out[-1] == "largest apart: 10.0% (9 ratios)"


@pytest.mark.parametrize("content", ["not json", '{"mlp_mnist on cpu": [{"compute": 1.0}]}', "[1, 2]"])
def test_compare_refuses_a_file_that_is_not_a_rounds_file_with_one_line(content, tmp_path, capsys):
    from project.lab.benchmarking.compare import main as compare_main

    (tmp_path / "bad.json").write_text(content)
    (tmp_path / "good.json").write_text('{"decoding": [{"project": 1.0, "pil": 2.0}]}')
    with pytest.raises(SystemExit) as exit_info:
        compare_main([str(tmp_path / "bad.json"), str(tmp_path / "good.json")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "rounds file" in err


def test_the_noise_check_times_equal_chunks_and_says_how_many_rounds_its_noise_needs():
    noise, chunks = machine_noise(0.3, chunk_seconds=0.05)
    assert chunks == 6 and 0 <= noise < 1
    # The rounds it names make a ratio's median interval (rounds.median_interval, the table's) about `precision`
    # wide: simulated rounds whose two paths each move by `noise`, independently (from 30 rounds up, where the
    # normal median's arithmetic holds for it).
    rng = np.random.default_rng(0)
    for noise, precision in ((0.05, 0.05), (0.04, 0.05), (0.1, 0.1), (0.2, 0.05)):
        rounds = rounds_to_pin(noise, precision)
        widths = []
        for _ in range(300):
            ratios = rng.normal(1, noise, rounds) / rng.normal(1, noise, rounds)
            low, high = median_interval(ratios)
            widths.append(high / low - 1)
        assert 0.8 * precision < statistics.median(widths) < 1.2 * precision, (noise, precision, rounds)
