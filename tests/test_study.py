"""The transfer study: one CSV row per run, a table that matches it, a plot, and restarts that skip finished runs."""

import csv
import statistics
from pathlib import Path

import pytest
import yaml
from PIL import Image
from tiny_settings import TINY_CNN, TINY_RUN

import project.lab.study.runner as runner
from project.checkpoints.files import find_checkpoint
from project.config.shipped import config_dir
from project.lab.study.main import main
from project.lab.study.summary import chosen_on_validation, markdown_table, paired_gain_table


@pytest.fixture
def source(pretrained_run: Path) -> Path:
    """The session's tiny pretraining run's experiment folder: the study's source."""
    return pretrained_run.parent


def study_args(source: Path, output: Path, seeds: str = "[1, 2]") -> list[str]:
    return [
        f"--pretrained={source}", "--methods=[scratch, linear_probe]", "--budgets=[2, 3]", f"--seeds={seeds}",
        f"--output_dir={output}", f"--extra_args={[*TINY_RUN, TINY_CNN]}",
    ]


def read_rows(path: Path) -> list[dict]:
    with path.open() as file:
        return list(csv.DictReader(file))


def test_study_writes_a_row_per_run_a_matching_table_and_a_plot(tmp_path, source, capsys):
    main(study_args(source, tmp_path))
    rows = read_rows(tmp_path / "results.csv")
    assert sorted((r["method"], r["samples_per_class"], r["seed"]) for r in rows) == sorted(
        (m, b, s) for m in ("scratch", "linear_probe") for b in ("2", "3") for s in ("1", "2")
    )
    assert {r["labels_per_class"] for r in rows if r["samples_per_class"] == "3"} == {"3.0"}
    trained = {row["method"]: int(row["trained_params"]) for row in rows}
    probe, scratch = trained["linear_probe"], trained["scratch"]
    assert probe == 16 * 5 + 5 < scratch  # the linear probe trains only its 16→5 head

    table = (tmp_path / "results.md").read_text()
    for method in ("scratch", "linear_probe"):
        for budget in ("2", "3"):
            accs = [float(r["test_acc"]) for r in rows if (r["method"], r["samples_per_class"]) == (method, budget)]
            cell = f"{statistics.mean(accs):.3f} ± {statistics.stdev(accs):.3f}"
            assert cell in table.splitlines()[2 if method == "scratch" else 3]
    assert table.strip() in capsys.readouterr().out  # printed at the end too
    assert "| linear_probe | " in table.split("gain over scratch")[1]

    with Image.open(tmp_path / "results.png") as image:  # the accuracy curves, and the gains' forest plot beside
        assert image.size == (1280, 420)


def test_one_seed_has_no_spread_to_show():
    rows = [{"method": "full", "samples_per_class": "2", "seed": "1", "test_acc": "0.899"},
            {"method": "full", "samples_per_class": "all", "seed": "1", "test_acc": "0.5"},
            {"method": "full", "samples_per_class": "all", "seed": "2", "test_acc": "0.7"}]
    assert markdown_table(rows).splitlines()[2] == "| full | 0.899 | 0.600 ± 0.141 |"


def test_the_gain_over_scratch_is_paired_by_seed_and_budget():
    rows = [
        {"method": m, "samples_per_class": b, "seed": s, "test_acc": str(a)}
        for m, b, s, a in [
            ("scratch", "2", "1", 0.5), ("scratch", "2", "2", 0.9), ("scratch", "all", "1", 0.8),
            ("full", "2", "1", 0.6), ("full", "2", "2", 0.9), ("full", "all", "1", 0.7),
            ("full", "all", "2", 0.99),  # no scratch run of seed 2 at "all": left out, not paired with another
        ]
    ]
    table = paired_gain_table(rows).splitlines()
    assert table[0] == "| gain over scratch, same seed: mean [95 % CI] verdict (wins/ties/losses) | 2 | all |"
    # Budget 2: gains +0.1 and 0.0: mean +0.05, stdev 0.0707, t(0.975, 1 df) = 12.71, so +-0.635 around it;
    # budget all: one pair, -0.1, and no interval from one seed.
    assert table[2] == "| full | +0.050 [-0.585, +0.685] **unclear** (1/1/0) | -0.100 [–] **unclear** (0/0/1) |"


@pytest.mark.parametrize(
    ("gains", "expected"),
    [
        ([0.10, 0.11, 0.12], "+0.110 [+0.085, +0.135] **helps** (3/0/0)"),  # t(0.975, 2 df) = 4.303
        ([-0.10, -0.11, -0.12], "-0.110 [-0.135, -0.085] **hurts** (0/0/3)"),
        ([0.10, -0.05, 0.12], "+0.057 [-0.174, +0.287] **unclear** (2/0/1)"),
    ],
)
def test_each_gain_gets_a_t_interval_over_seeds_and_a_verdict(gains, expected):
    rows = [{"method": "scratch", "samples_per_class": "10", "seed": str(s), "test_acc": "0.5"} for s in range(3)]
    rows += [
        {"method": "full", "samples_per_class": "10", "seed": str(s), "test_acc": str(0.5 + gain)}
        for s, gain in enumerate(gains)
    ]
    assert paired_gain_table(rows).splitlines()[2] == f"| full | {expected} |"


def test_a_restarted_study_trains_only_what_is_missing(tmp_path, source, capsys):
    main(study_args(source, tmp_path, seeds="[1]"))
    rows = read_rows(tmp_path / "results.csv")
    assert len(rows) == 4
    capsys.readouterr()
    main(study_args(source, tmp_path, seeds="[1, 2]"))  # the same study, one more seed
    assert "8 runs, 4 already in" in capsys.readouterr().out
    again = read_rows(tmp_path / "results.csv")
    assert again[:4] == rows and len(again) == 8
    main(study_args(source, tmp_path, seeds="[1, 2]"))
    assert "0 to train" in capsys.readouterr().out and len(read_rows(tmp_path / "results.csv")) == 8


def test_configured_is_the_fine_tuning_config_as_it_is_on_the_pretrained_backbone(tmp_path, source):
    main([f"--pretrained={source}", "--methods=[scratch, configured]", "--budgets=[2]",
          "--seeds=[1]", f"--output_dir={tmp_path}", f"--extra_args={[*TINY_RUN, TINY_CNN]}"])
    configs = {
        method: yaml.safe_load((tmp_path / "runs" / f"{method}_2_seed1" / "version_0" / "config.yaml").read_text())
        for method in ("scratch", "configured")
    }
    assert configs["scratch"]["model"]["pretrained"] is None
    assert configs["configured"]["model"]["pretrained"] == str(find_checkpoint(source, "best").resolve())
    assert configs["configured"]["model"]["strategy"] == "full"  # digits_finetune.yaml's own, no overlay
    assert configs["configured"]["model"]["backbone_lr_ratio"] == 1.0


def test_a_rerun_with_other_settings_is_refused_before_training(tmp_path, source, capsys):
    main(study_args(source, tmp_path, seeds="[1]"))
    changed = [arg if not arg.startswith("--extra_args") else f"--extra_args={[*TINY_RUN, TINY_CNN, '--model.lr=0.5']}"
               for arg in study_args(source, tmp_path, seeds="[1, 2]")]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(changed)
    message = capsys.readouterr().err
    assert exit_info.value.code == 2 and "holds another study" in message
    assert "extra_args was [" in message and "'--model.lr=0.5']" in message  # what differs, old and new
    assert len(read_rows(tmp_path / "results.csv")) == 4  # nothing trained with the other settings


def test_scratch_trains_everything_whatever_strategy_the_fine_tuning_config_names(tmp_path, source):
    probe_config = tmp_path / "probe_finetune.yaml"
    config = yaml.safe_load((config_dir() / "digits_finetune.yaml").read_text())
    config["model"]["strategy"] = "linear_probe"
    probe_config.write_text(yaml.safe_dump(config))
    main([f"--finetune_config={probe_config}", f"--pretrained={source}", "--methods=[scratch]", "--budgets=[2]",
          "--seeds=[1]", f"--output_dir={tmp_path / 'study'}", f"--extra_args={[*TINY_RUN, TINY_CNN]}"])
    run = tmp_path / "study" / "runs" / "scratch_2_seed1" / "version_0"
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["strategy"] == "full"
    (row,) = read_rows(tmp_path / "study" / "results.csv")
    assert int(row["trained_params"]) > 16 * 5 + 5  # more than the head of a linear probe


def test_per_method_args_reach_only_their_method_and_belong_to_the_study(tmp_path, source, capsys):
    args = [*study_args(source, tmp_path, seeds="[1]"), "--budgets=[2]",
            "--per_method_args={scratch: [--model.lr=0.013]}"]
    main(args)
    lrs = {
        method: yaml.safe_load((tmp_path / "runs" / f"{method}_2_seed1" / "version_0" / "config.yaml").read_text())
        ["model"]["lr"]
        for method in ("scratch", "linear_probe")
    }
    assert lrs == {"scratch": 0.013, "linear_probe": 0.05}
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # the same folder with scratch at another lr: another study
        main([*args[:-1], "--per_method_args={scratch: [--model.lr=0.02]}"])
    assert exit_info.value.code == 2 and "per_method_args was {'scratch': ['--model.lr=0.013']}, now {'scratch': " \
        "['--model.lr=0.02']}" in capsys.readouterr().err


def test_per_method_args_for_a_method_not_run_are_refused_before_anything_is_written(tmp_path, source, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*study_args(source, tmp_path / "study"), "--per_method_args={full: [--model.lr=0.02]}"])
    assert exit_info.value.code == 2 and "per_method_args names ['full']" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()


def test_the_validation_choice_takes_each_runs_best_candidate_on_its_own_validation_split():
    runs = [  # method, budget, seed, validation accuracy, test accuracy
        ("scratch", "10", "1", 0.30, 0.30), ("scratch", "10", "2", 0.30, 0.30), ("scratch", "10", "3", 0.3, 0.3),
        ("probe", "10", "1", 0.40, 0.35), ("probe", "10", "2", 0.50, 0.45), ("probe", "10", "3", 0.60, 0.50),
        ("lp_ft", "10", "1", 0.45, 0.33), ("lp_ft", "10", "2", 0.50, 0.60), ("lp_ft", "10", "3", "", 0.70),
    ]
    rows = [{"method": m, "samples_per_class": b, "seed": s, "val_acc": str(v), "test_acc": str(t)}
            for m, b, s, v, t in runs]
    rows, line = chosen_on_validation(rows, ["probe", "lp_ft"])
    chosen = [r for r in rows if r["method"] == "val-chosen: probe / lp_ft"]
    # Seed 1: lp_ft validates better (and tests worse: test is never consulted); seed 2: a tie goes to the first
    # listed; seed 3: lp_ft has no validation accuracy, so no choice is made for it.
    assert [(r["seed"], r["test_acc"]) for r in chosen] == [("1", "0.33"), ("2", "0.45")]
    assert line.endswith("10: lp_ft (seed 1), probe (seed 2)")
    assert "| val-chosen: probe / lp_ft | +0.090 [" in paired_gain_table(rows)


def test_a_study_reports_the_validation_choice_as_a_method_of_its_own(tmp_path, source, capsys):
    args = [*study_args(source, tmp_path, seeds="[1, 2]"), "--budgets=[2]", "--methods=[scratch, linear_probe, full]"]
    main([*args, "--select_on_val=[linear_probe, full]"])
    rows = read_rows(tmp_path / "results.csv")
    assert {r["method"] for r in rows} == {"scratch", "linear_probe", "full"}  # the runs, unchanged
    table = (tmp_path / "results.md").read_text()
    picks = []
    for seed in ("1", "2"):
        candidates = [r for r in rows if r["seed"] == seed and r["method"] != "scratch"]
        picks.append(max(candidates, key=lambda r: float(r["val_acc"])))  # ties: linear_probe, listed first
    accuracies = [float(r["test_acc"]) for r in picks]
    row = next(line for line in table.splitlines() if line.startswith("| val-chosen: linear_probe / full | "))
    assert f"{statistics.mean(accuracies):.3f} ± {statistics.stdev(accuracies):.3f}" in row
    assert f"2: {picks[0]['method']} (seed 1), {picks[1]['method']} (seed 2)" in table
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # a candidate that did not run is refused before any training
        main([*args, "--select_on_val=[linear_probe, gradual]"])
    assert exit_info.value.code == 2 and "select_on_val names ['gradual']" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--select_on_val=[full]"])
    assert exit_info.value.code == 2 and "at least two methods" in capsys.readouterr().err


def test_a_run_setting_the_runs_would_refuse_is_refused_before_the_study_writes_anything(tmp_path, source, capsys):
    # An empty validation split with best-checkpoint selection failed in the first run, after study.json was
    # written, and the corrected command was then refused as "another study".
    with pytest.raises(SystemExit) as exit_info:
        no_validation = [*TINY_RUN, TINY_CNN, "--data.val_fraction=0"]
        main([*study_args(source, tmp_path / "study"), f"--extra_args={no_validation}"])
    assert exit_info.value.code == 2 and "the validation split is empty" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()
    main([*study_args(source, tmp_path / "study", seeds="[1]"), "--budgets=[2]"])  # the corrected command runs


def test_a_validation_choice_without_validation_splits_is_refused_before_anything_is_written(tmp_path, source,
                                                                                             capsys):
    no_validation = [*TINY_RUN, TINY_CNN, "--data.val_fraction=0", "--model_selection=last_epoch"]
    args = [*study_args(source, tmp_path / "study"), "--methods=[scratch, linear_probe, full]",
            f"--extra_args={no_validation}"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--select_on_val=[linear_probe, full]"])
    assert exit_info.value.code == 2 and "the linear_probe runs would have none" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()
    validating = [*study_args(source, tmp_path / "study"), "--methods=[scratch, linear_probe, full]"]
    for no_validation_for_one in (  # validation batches switched off, or one candidate's own overrides
        [f"--extra_args={[*TINY_RUN, TINY_CNN, '--trainer.limit_val_batches=0', '--model_selection=last_epoch']}"],
        ["--per_method_args={full: [--data.val_fraction=0, --model_selection=last_epoch]}"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main([*validating, *no_validation_for_one, "--select_on_val=[linear_probe, full]"])
        assert exit_info.value.code == 2 and "runs would have none" in capsys.readouterr().err
        assert not (tmp_path / "study").exists()
    with pytest.raises(SystemExit) as exit_info:  # an empty choice is a mistake too, not "no choice"
        main([*args, "--select_on_val=[]"])
    assert exit_info.value.code == 2 and "at least two methods" in capsys.readouterr().err


def test_the_checks_build_each_distinct_run_once(tmp_path, source, monkeypatch):
    built = []
    real_preview = runner.preview_run
    monkeypatch.setattr(runner, "preview_run", lambda args: built.append(args) or real_preview(args))
    main([*study_args(source, tmp_path, seeds="[1]"), "--methods=[scratch, linear_probe, full]",
          "--select_on_val=[linear_probe, full]"])
    # linear_probe at budgets 2 and 3 (the extremes), then the candidates at budget 2: linear_probe's is built.
    assert len(built) == len({tuple(args) for args in built}) == 3


def test_a_row_cut_by_a_kill_is_dropped_and_its_run_trained_again(tmp_path, source, capsys):
    main(study_args(source, tmp_path, seeds="[1]"))
    results = tmp_path / "results.csv"
    complete = read_rows(results)
    text = results.read_text()
    results.write_text(text[: len(text) - 9])  # the last row cut mid-write, as SIGKILL leaves it
    capsys.readouterr()
    main(study_args(source, tmp_path, seeds="[1, 2]"))
    out = capsys.readouterr().out
    assert "1 incomplete, unreadable or repeated row(s)" in out and "8 runs, 3 already in" in out
    rows = read_rows(results)
    assert len(rows) == 8 and rows[:3] == complete[:3]  # nothing glued to the cut row, nothing lost
    assert sorted((row["method"], row["samples_per_class"], row["seed"]) for row in rows) == sorted(
        (m, b, s) for m in ("scratch", "linear_probe") for b in ("2", "3") for s in ("1", "2"))


def test_a_damaged_study_json_is_one_line_saying_what_to_do(tmp_path, source, capsys):
    main(study_args(source, tmp_path, seeds="[1]"))
    capsys.readouterr()  # the first study's own output (on a slow machine, progress lines too)
    (tmp_path / "study.json").write_text('{"finetune_config": "/x')  # cut, as a kill of an older version left it
    with pytest.raises(SystemExit) as exit_info:
        main(study_args(source, tmp_path, seeds="[1]"))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "study.json' is damaged" in err and "delete it and start the same command again" in err


def test_a_second_study_in_the_same_folder_is_refused_while_the_first_runs(tmp_path, source, capsys):
    import socket
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        tmp_path.mkdir(exist_ok=True)
        (tmp_path / ".running").write_text(f"{holder.pid} {socket.gethostname()}\n")
        with pytest.raises(SystemExit) as exit_info:
            main(study_args(source, tmp_path, seeds="[1]"))
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"another process (pid {holder.pid}" in err
    assert "give this one another --output_dir" in err and not (tmp_path / "results.csv").exists()


@pytest.mark.parametrize(("override", "message"), [
    ("--seeds=[1, 1]", "--seeds names 1 more than once: give each once"),
    ("--methods=[scratch, scratch]", "--methods names scratch more than once: give each once"),
    (f"--extra_args={[*TINY_RUN, '--output_dir=elsewhere']}", "--extra_args ['--output_dir=elsewhere']: the study "
     "sets these for each run"),
])
def test_a_repeated_seed_or_method_or_a_run_setting_of_the_study_is_refused(tmp_path, source, override, message,
                                                                            capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*study_args(source, tmp_path), override])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and not (tmp_path / "results.csv").exists()


def test_the_same_pretrained_file_with_other_weights_is_another_study(tmp_path, source, capsys):
    import shutil

    import torch

    copy = tmp_path / "source.ckpt"
    shutil.copy(find_checkpoint(source, "best"), copy)
    output = tmp_path / "study"
    main(study_args(copy, output, seeds="[1]"))
    checkpoint = torch.load(copy, weights_only=True)
    checkpoint["state_dict"] = {key: value + 1 if value.is_floating_point() else value
                                for key, value in checkpoint["state_dict"].items()}
    torch.save(checkpoint, copy)  # re-saved with other weights under the same name
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(study_args(copy, output, seeds="[1, 2]"))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "holds another study" in err and "pretrained_sha256 was" in err


def test_a_repeated_or_unreadable_row_is_dropped_and_its_run_trained_again(tmp_path, source, capsys):
    main(study_args(source, tmp_path, seeds="[1]"))
    results = tmp_path / "results.csv"
    lines = results.read_text().splitlines(keepends=True)
    broken = lines[2].split(",")
    broken[3] = "nan"  # test_acc
    results.write_text("".join([*lines, lines[1], ",".join(broken)]))  # a duplicate, and a row that is no number
    capsys.readouterr()
    main(study_args(source, tmp_path, seeds="[1]"))
    assert "2 incomplete, unreadable or repeated row(s)" in capsys.readouterr().out
    rows = read_rows(results)
    assert len(rows) == 4 and len({(r["method"], r["samples_per_class"], r["seed"]) for r in rows}) == 4


def test_a_semi_supervised_method_is_paired_with_scratch_and_with_the_same_start_without_the_pool(
    tmp_path, source, capsys
):
    args = [*study_args(source, tmp_path, seeds="[1, 2]"), "--budgets=[2]", "--methods=[scratch, full, fixmatch]"]
    main([*args, "--paired_with=[full]"])
    rows = read_rows(tmp_path / "results.csv")
    assert {r["method"] for r in rows} == {"scratch", "full", "fixmatch"}
    accuracy = {(r["method"], r["seed"]): float(r["test_acc"]) for r in rows}
    gains = [accuracy[("fixmatch", seed)] - accuracy[("full", seed)] for seed in ("1", "2")]
    table = (tmp_path / "results.md").read_text()
    over_full = table.split("gain over full, same seed")[1]
    row = next(line for line in over_full.splitlines() if line.startswith("| fixmatch | "))
    assert f"{statistics.mean(gains):+.3f}" in row
    assert "| scratch | " in over_full and "| fixmatch | " in table.split("gain over scratch")[1]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # a baseline that did not run is refused before any training
        main([*args, "--paired_with=[lp_ft]"])
    assert exit_info.value.code == 2 and "paired_with names ['lp_ft']" in capsys.readouterr().err
    main([*args, "--select_on_val=[full, fixmatch]", "--paired_with=[val-chosen]"])  # the runs are done: a summary
    assert "| gain over val-chosen: full / fixmatch, same seed" in (tmp_path / "results.md").read_text()


def test_a_method_whose_overlay_starts_from_random_weights_is_not_handed_the_source(tmp_path):
    settings = runner.StudySettings(
        finetune_config=config_dir() / "digits_finetune.yaml", pretrained="source", methods=["fixmatch_scratch"],
        budgets=[2], seeds=[1], output_dir=tmp_path, extra_args=[], source="/runs/source.ckpt",
    )
    assert "--model.pretrained=null" in runner.run_args(settings, "fixmatch_scratch", 2, 1)
    assert "--model.pretrained=/runs/source.ckpt" in runner.run_args(settings, "fixmatch", 2, 1)
    assert runner.trains_from_scratch("scratch") and not runner.trains_from_scratch("lp_ft")
