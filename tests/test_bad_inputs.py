"""docs/errors.md's promise for every mistake a user can make: exit status 2, one line `error: ...` on stderr naming
what was wrong and what to do, and nothing on disk changed (checksums of every file, before and after).

The cases are those of the bad-input audit (../shared/audits/bad-inputs-2026-11.md) that broke the promise, and a
sample of those that kept it. Each runs the script's main in-process, in its own empty working folder, against a
shared world of runs and crafted files that no case may touch.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from crafted_files import bad_checkpoints, image_folders
from tiny_settings import SCRIPTS, TINY_CNN, TINY_RUN

from project.checkpoints.files import find_checkpoint
from project.evaluation import evaluate, export, predict, run_report
from project.lab.study import main as study
from project.lab.transferability import main as transferability
from project.models import BackboneModule, ImageClassifier, TransferClassifier
from project.training.run import run_experiment

MAINS: dict[str, Callable[[list[str]], object]] = {
    "pretrain": lambda args: run_experiment(BackboneModule, "digits_pretrain.yaml", [*TINY_RUN, TINY_CNN, *args]),
    "finetune": lambda args: run_experiment(TransferClassifier, "digits_finetune.yaml", [*TINY_RUN, *args]),
    "evaluate": evaluate.main,
    "predict": predict.main,
    "export": export.main,
    "report": run_report.main,
    "study": lambda args: study.main([f"--extra_args={[*TINY_RUN, TINY_CNN]}", *args]),
    "transferability": transferability.main,
}
HELP = "(--help lists every option)"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pretrained_run: Path, finetuned_run: Path) -> dict[str, Path]:
    """Runs (a CNN, an MLP, a fine-tuned one), crafted image folders and checkpoints, and a plain file."""
    root = tmp_path_factory.mktemp("world")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        out = root / "runs"
        run_experiment(ImageClassifier, "digits_pretrain.yaml", [
            *TINY_RUN, f"--output_dir={out}", "--experiment=mlp", "--model.backbone=mlp",
            "--model.backbone_args={hidden_sizes: [8]}", "--trainer.logger=false",
        ])
    (root / "afile.txt").write_text("a file, not a folder")
    (root / "garbage_events").mkdir()
    (root / "garbage_events" / "events.out.tfevents.1.host.1.0").write_bytes(b"\x00\x01 not a TensorBoard record" * 9)
    places = {
        "root": root, "good": pretrained_run, "finetuned": finetuned_run, "mlp": out / "mlp" / "version_0",
        "afile": root / "afile.txt", "garbage_events": root / "garbage_events", **image_folders(root / "images"),
    }
    checkpoints = bad_checkpoints(root / "checkpoints", find_checkpoint(pretrained_run, "best"))
    return {**places, "good_best": find_checkpoint(pretrained_run, "best"),
            **{f"ckpt_{name}": path for name, path in checkpoints.items()}}


def checksums(*folders: Path) -> dict[str, str]:
    """Every file and link under `folders` with its content's hash (links by target): what must not change.

    The decode cache (data/cache) is left out: a rebuildable copy of decoded images, which a run that fails after
    reading its image folder may leave for the next one, as the README says.
    """
    sums = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.relative_to(folder).parts[:2] in (("data",), ("data", "cache")):
                continue
            if path.is_symlink():
                sums[str(path)] = f"link to {os.readlink(path)}"
            elif path.is_file():
                sums[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                sums[str(path)] = "folder"
    return sums


OTHER_SETTINGS = "with other training settings than it was started with"
KEEP_SETTINGS = ("resume with its own (its run folder's config.yaml), or start a new run without --ckpt_path to train "
                 "with these")
EXPERIMENT_HELP = ("name the run's folder under --output_dir with one plain name (no '/', '..' or control characters), "
                   "e.g. --experiment=my_images")
# (case id, script, arguments, the expected stderr line); {name} is a path of the world, {cwd} the case's folder.
CASES = [
    # Options that do not parse: one line naming the option, the value and what it takes (was ~65 lines of usage).
    ("P01", "pretrain", ["--data.dataset=foo"], "--data.dataset='foo' is not valid: expected one of 'digits', 'mnist', "
     f"'fashion_mnist', 'cifar10', 'cifar100', 'imagefolder' {HELP}"),
    ("P02", "pretrain", ["--model.backbone=foo"], "unknown backbone 'foo': choose one of ['cnn', 'efficientnet_b0', "
     "'mlp', 'mobilenet_v3_small', 'resnet18', 'resnet50'] or timm:<name> (any timm model)"),
    ("P02b", "pretrain", ["--model.backbone=timm:no_such_net"], "timm has no model 'no_such_net' (from "
     "'timm:no_such_net'): name one as timm.list_models() does, optionally with a pretrained tag, e.g. timm:resnet18 "
     "or timm:convnext_atto.d2_in1k"),
    ("P03", "pretrain", ["--trainer.max_epochs=abc"],
     f"--trainer.max_epochs='abc' is not valid: expected int or null {HELP}"),
    ("P39", "pretrain", ["--config", "{cwd}/nope.yaml"], "--config: File does not exist: '{cwd}/nope.yaml'"),
    ("P51", "pretrain", ["--data.channels=2"],
     f"--data.channels='2' is not valid: expected one of 1, 3 or null {HELP}"),
    ("P57", "pretrain", ["--seed_everything=abc"],
     f"--seed_everything='abc' is not valid: expected bool or int {HELP}"),
    ("P61", "pretrain", ["--model.optimizer=foo"],
     f"--model.optimizer='foo' is not valid: expected one of 'sgd', 'adamw' {HELP}"),
    ("P62", "pretrain", ["--model.scheduler=foo"],
     f"--model.scheduler='foo' is not valid: expected one of 'cosine', 'onecycle', 'warmup_cosine', 'none' {HELP}"),
    ("P63", "pretrain", ["--model.lrr=0.1"], "--model.lrr='0.1': the model class in use takes no lrr (--model.help "
     "<class> lists a class's options; another class's option needs that class chosen first, e.g. "
     "--model=SimCLRPretraining)"),
    ("F01", "finetune", ["--model.strategy=foo"],
     f"--model.strategy='foo' is not valid: expected one of 'linear_probe', 'logistic_probe', 'full', 'gradual', "
     f"'lp_ft' {HELP}"),
    ("E08", "evaluate", ["--ckpt_path={good}", "--data.dataset=foo"], "--data.dataset='foo' is not valid: expected one "
     f"of 'digits', 'mnist', 'fashion_mnist', 'cifar10', 'cifar100', 'imagefolder' {HELP}"),
    ("E15", "evaluate", [], f"the following arguments are required: ckpt_path {HELP}"),
    ("R06", "predict", ["--ckpt_path={good}", "{good}", "--top_k=abc"],
     f"--top_k='abc' is not valid: expected int {HELP}"),
    ("R13", "predict", ["--ckpt_path={good}"], f"the following arguments are required: inputs {HELP}"),
    ("X07", "export", [], f"the following arguments are required: ckpt_path {HELP}"),
    ("S07", "study", ["--seeds=abc", "--output_dir={cwd}/study"], f"--seeds='abc' is not valid: expected list {HELP}"),
    # Image folders: every file is read before anything is written (was tracebacks, and run folders left behind).
    ("P22", "pretrain", ["--data.dataset=imagefolder", "--data.classes=null", "--data.root={dangling}"],
     "image '{dangling}/c1/zzz.png' is a link to a file that does not exist: remove or replace it"),
    ("P66", "pretrain", ["--data.dataset=imagefolder", "--data.classes=null", "--data.root={bomb}"],
     "cannot read image '{bomb}/c1/zzz.png' (Image size (182250000 pixels) exceeds limit of 178956970 pixels, could "
     "be decompression bomb DOS attack.): remove or replace the file"),
    ("P18c", "pretrain", ["--data.dataset=imagefolder", "--data.classes=null", "--data.root={corrupt}",
                          "--data.in_memory=false", "--data.num_workers=1"],
     "cannot read image '{corrupt}/c1/zzz.jpg' (cannot identify image file '{corrupt}/c1/zzz.jpg'): remove or "
     "replace the file"),
    ("P20c", "pretrain", ["--data.dataset=imagefolder", "--data.classes=null", "--data.root={truncated}",
                          "--data.in_memory=false", "--data.num_workers=0"],
     "cannot read image '{truncated}/c1/zzz.png' (Truncated File Read): remove or replace the file"),
    ("E21", "evaluate", ["--ckpt_path={good}", "--data.dataset=imagefolder", "--data.root={dangling}",
                         "--data.classes=null"],
     "image '{dangling}/c1/zzz.png' is a link to a file that does not exist: remove or replace it"),
    # Runs that would train nothing or select on nothing (was exit 0).
    ("P25", "pretrain", ["--data.dataset=imagefolder", "--data.classes=null", "--data.root={one_each}"],
     "the validation split is empty (val_fraction=0.1, limit_val_batches=2), so no best checkpoint can be chosen: "
     "raise --data.val_fraction, or add --model_selection=last_epoch to test and hand on the last epoch's weights"),
    ("P45", "pretrain", ["--data.val_fraction=0"],
     "the validation split is empty (val_fraction=0.0, limit_val_batches=2), so no best checkpoint can be chosen: "
     "raise --data.val_fraction, or add --model_selection=last_epoch to test and hand on the last epoch's weights"),
    ("P56", "pretrain", ["--trainer.max_epochs=0"], "max_epochs=0: this run would train nothing; set "
     "--trainer.max_epochs to 1 or more"),
    ("P57", "pretrain", ["--trainer.limit_train_batches=0"], "limit_train_batches=0: this run would train nothing; "
     "set --trainer.limit_train_batches to 1 or more"),
    # Paths (was tracebacks).
    ("P37", "pretrain", ["--output_dir={afile}"],
     "--output_dir '{afile}' is a file: give a folder for the run folders"),
    ("P38", "pretrain", ["--output_dir={afile}/sub"], "--output_dir '{afile}/sub' is under the file '{afile}': give a "
     "folder"),
    ("R07", "predict", ["--ckpt_path={good}", "{good}", "--output_csv={afile}/out.csv"],
     "--output_csv '{afile}/out.csv' cannot be written: '{afile}' is not a writable folder"),
    ("R16", "predict", ["--ckpt_path={good}", "{good}", "--output_csv={afile}"],
     "--output_csv '{afile}' exists: give a new file name (earlier predictions are kept)"),
    ("S08", "study", ["--output_dir={afile}"], "--output_dir '{afile}' is a file: give a folder for the run folders"),
    ("T05", "report", ["{mlp}"], "'{mlp}' holds no TensorBoard event files (events.out.tfevents.*) and no "
     "metrics.csv: pass a run folder lightning_logs/<experiment>/version_N of a run that logged to TensorBoard or CSV"),
    ("T09", "report", ["{garbage_events}"], "'{garbage_events}' holds event files but no readable curves in them "
     "(damaged, or not TensorBoard's): pass the run folder of a run that logged to TensorBoard"),
    # Resuming with a checkpoint that does not fit (was tracebacks that wrote into the old run).
    ("P33", "pretrain", ["--ckpt_path={mlp}/checkpoints/last.ckpt"],
     "cannot resume from '{mlp}/checkpoints/last.ckpt': its model differs from the one this run builds (backbone "
     "'mlp' vs 'cnn'; backbone_args {{'hidden_sizes': [8]}} vs {{'channels': [4, 8], 'feature_size': 16, "
     "'batch_norm': True}}); resume with the script and settings that wrote it (its config.yaml is in its run "
     "folder), or drop --ckpt_path to start a new run"),
    ("P34", "pretrain", ["--ckpt_path={good}/checkpoints/last.ckpt", "--data.channels=3"],
     "cannot resume from '{good}/checkpoints/last.ckpt': its model differs from the one this run builds "
     "(input_shape [1, 28, 28] vs [3, 28, 28]); resume with the script and settings that wrote it (its config.yaml is "
     "in its run folder), or drop --ckpt_path to start a new run"),
    ("P35", "pretrain", ["--ckpt_path={finetuned}/checkpoints/last.ckpt", "--data.classes=[5, 6, 7, 8, 9]"],
     "cannot resume from '{finetuned}/checkpoints/last.ckpt': it is a TransferClassifier checkpoint but this run "
     "builds an ImageClassifier; resume with the script and settings that wrote it (its config.yaml is in its run "
     "folder), or drop --ckpt_path to start a new run"),
    ("P36", "pretrain", ["--ckpt_path={good}/checkpoints/last.ckpt", "--data.classes=[0, 1, 2]"],
     "cannot resume from '{good}/checkpoints/last.ckpt': its model differs from the one this run builds (num_classes "
     "5 vs 3; class_names ['0', '1', '2', '3', '4'] vs ['0', '1', '2']); resume with the script and settings that "
     "wrote it (its config.yaml is in its run folder), or drop --ckpt_path to start a new run"),
    # A resume with other training settings: refused before anything is written (audit D7: was accepted and
    # recorded as what ran, or a KeyError traceback after writing into the run for another optimizer).
    ("P65", "pretrain",
     ["--ckpt_path={good}/checkpoints/last.ckpt", "--model.lr=0.05", "--data.samples_per_class=1000"],
     f"cannot resume '{{good}}/checkpoints/last.ckpt' {OTHER_SETTINGS}: data.samples_per_class 1000 (was None); "
     f"{KEEP_SETTINGS}"),
    ("RS01", "pretrain", ["--ckpt_path={good}/checkpoints/last.ckpt", "--model.lr=0.5", "--data.batch_size=16"],
     f"cannot resume '{{good}}/checkpoints/last.ckpt' {OTHER_SETTINGS}: model.lr 0.5 (was 0.05); data.batch_size 16 "
     f"(was 64); {KEEP_SETTINGS}"),
    ("RS04", "pretrain", ["--ckpt_path={good}/checkpoints/last.ckpt", "--model.lr=0.05", "--model.optimizer=adamw",
                          "--model.scheduler=onecycle"],
     f"cannot resume '{{good}}/checkpoints/last.ckpt' {OTHER_SETTINGS}: model.optimizer 'adamw' (was 'sgd'); "
     f"model.scheduler 'onecycle' (was 'cosine'); {KEEP_SETTINGS}"),
    ("RS10", "pretrain", ["--ckpt_path={good}/checkpoints/last.ckpt", "--model.lr=0.05", "--seed_everything=999",
                          "--trainer.accumulate_grad_batches=4"],
     f"cannot resume '{{good}}/checkpoints/last.ckpt' {OTHER_SETTINGS}: seed_everything 999 (was 42); "
     f"trainer.accumulate_grad_batches 4 (was 1); {KEEP_SETTINGS}"),
    ("RS07", "finetune", ["--ckpt_path={finetuned}/checkpoints/last.ckpt", "--model.lr=0.05",
                          "--model.strategy=linear_probe"],
     f"cannot resume '{{finetuned}}/checkpoints/last.ckpt' {OTHER_SETTINGS}: model.strategy 'linear_probe' (was "
     f"'full'); {KEEP_SETTINGS}"),
    # Studies: checked whole before anything is written (was an empty folder or a study.json blocking the rerun).
    ("S01", "study", ["--methods=[scratch, foo]", "--output_dir={cwd}/study"], "unknown study method 'foo': choose "
     "from ['scratch', 'configured', 'fixmatch', 'fixmatch_scratch', 'full', 'gradual', 'linear_probe', "
     "'logistic_probe', 'lp_ft']"),
    ("S02", "study", ["--pretrained={cwd}/nope", "--output_dir={cwd}/study"], "checkpoint '{cwd}/nope' does not "
     "exist: give a .ckpt file, a run folder or an experiment folder"),
    # A study's budget errors name --budgets, what the user set (were the runs' --data.samples_per_class).
    ("S03", "study", ["--pretrained={good}", "--budgets=[0, 5]", "--output_dir={cwd}/study"],
     "--budgets [0]: each must be a positive number of labels per class (null: every label)"),
    ("S04", "study", ["--pretrained={good}", "--budgets=[5000]", "--output_dir={cwd}/study"],
     "--budgets 5000: samples_per_class=5000 but class '5' has only 131 training samples (after the held-out "
     "splits): lower --budgets"),
    # Messages that named the wrong remedy or values that were fine (found by a hostile trial).
    ("P70", "pretrain", ["--model.lr=-0.1"], "lr=-0.1 must be > 0"),
    ("P71", "pretrain", ["--model.backbone=mlp"], "bad backbone_args {{'channels': [4, 8], 'feature_size': 16, "
     "'batch_norm': True}} for backbone 'mlp' (MLPBackbone.__init__() got an unexpected keyword argument "
     "'channels'): give that backbone's own, e.g. --model.backbone_args='{{}}' for its defaults (a config's "
     "backbone_args belong to its backbone)"),
    ("P72", "pretrain", ["--model.test_time_flip=true"], "test_time_flip=true predicts from mirror images too, which "
     "a model trained without flips has never seen: set --data.augment=true, or --model.test_time_flip=false"),
    ("F30", "finetune", ["--model.pretrained={good}", "--data.image_size=16"], "'{good_best}' was pretrained on "
     "(1, 28, 28) (C, H, W) images but the data gives (1, 16, 16): if that is the wrong pretraining run (an "
     "experiment folder's newest one is taken), point --model.pretrained at the right one; if it is the right one, "
     "adapt the data to it with --data.channels=1 --data.image_size=28"),
    ("S09", "study", ["--pretrained={ckpt_evil}", "--output_dir={cwd}/study"],
     "refused to load '{ckpt_evil}': it holds objects other than weights and plain values, which could run code; "
     "only load checkpoints you trust, re-saved as plain state"),
    # The logistic probe's augmented views.
    ("F40", "finetune", ["--model.pretrained={good}", "--model.strategy=logistic_probe", "--model.reinit_blocks=0",
                         "--model.probe_views=2"],
     "probe_views=2 needs the training augmentation, whose crops and flips the views are: set --data.augment=true, "
     "or --model.probe_views=0"),
    ("F41", "finetune", ["--model.pretrained={good}", "--model.probe_views=-1"],
     "probe_views=-1 must be >= 0 (0: the labelled images alone)"),
    # A logger's own argument is named, not the logger option (was "--trainer.logger='often' is not valid").
    ("P70", "pretrain", ["--trainer.logger=CSVLogger", "--trainer.logger.flush_logs_every_n_steps=often"],
     "--trainer.logger.flush_logs_every_n_steps='often' is not valid: expected int (--help lists every option)"),
    ("P71", "pretrain", ["--trainer.logger=NeptuneLogger"], "--trainer.logger='NeptuneLogger' is not a class this "
     "installation knows: give one of Lightning's by name (e.g. CSVLogger for a logger) or a full import path, "
     "mypackage.MyClass (--help lists every option)"),
    # Semi-supervised fine-tuning: the model's method and the data's pool go together.
    ("F50", "finetune", ["--model.pretrained={good}", "--model.semi_supervised=fixmatch"],
     "semi_supervised='fixmatch' learns from unlabelled images: set --data.unlabelled_ratio (e.g. 4 unlabelled images "
     "per labelled one in every batch)"),
    ("F51", "finetune", ["--model.pretrained={good}", "--data.unlabelled_ratio=4"],
     "--data.unlabelled_ratio serves unlabelled images, which only semi-supervised fine-tuning reads: set "
     "--model.semi_supervised=fixmatch (scripts/finetune.py) or --data.unlabelled_ratio=0"),
    ("F52", "finetune", ["--model.pretrained={good}", "--data.unlabelled_ratio=-1"],
     "unlabelled_ratio=-1 must be >= 0 (0: no unlabelled pool)"),
    # Pretraining's model class, chosen LightningCLI's way (--model), and the option it replaced.
    ("P72", "pretrain", ["--model=Nope"], "--model='Nope' is not a model class: pretraining trains ImageClassifier "
     "(the labels) or SimCLRPretraining (no labels) (--model.help <class> lists a class's options)"),
    ("P73", "pretrain", ["--model=TransferClassifier"], "--model=TransferClassifier: pretraining trains "
     "ImageClassifier or SimCLRPretraining; fine-tuning (TransferClassifier) is scripts/finetune.py"),
    ("P74", "pretrain", ["--objective=simclr"], "unrecognized arguments: --objective=simclr; pretraining's objective "
     "is now its model class: --model=SimCLRPretraining (or ImageClassifier) (--help lists every option)"),
    ("P75", "pretrain", ["--model=SimCLRPretraining", "--model.temperature=-1"], "temperature=-1.0 must be > 0"),
    ("F54", "finetune", ["--model.pretrained={good}", "--model=SimCLRPretraining"], "--model='SimCLRPretraining': this "
     "command's model class is fixed; give its settings one by one (--model.<name>=...) or a YAML file of them "
     "(choosing a class is for scripts/pretrain.py's --model)"),
    ("F55", "finetune", ["--model.pretrained={good}", "--data=foo"], "--data='foo': this command's data class is "
     "fixed; give its settings one by one (--data.<name>=...) or a YAML file of them"),
    ("F53", "finetune", ["--model.pretrained={good}", "--model.semi_supervised=fixmatch", "--data.unlabelled_ratio=2",
                         "--data.samples_per_class=null"],
     "unlabelled_ratio=2 needs unlabelled images: set --data.samples_per_class (the training images beyond it form "
     "the pool) or --data.unlabelled_root, with --model.semi_supervised to learn from them"),
    # A sample of cases that kept the promise already.
    ("P06", "pretrain", ["--data.samples_per_class=500"], "samples_per_class=500 but class '0' has only 128 training "
     "samples (after the held-out splits): lower --data.samples_per_class"),
    ("P12", "pretrain", ["--data.classes=[0, 42]"], "class 42 is not in this dataset: use indices 0-9 or names ['0', "
     "'1', '2', '3', '4', '5', '6', '7', '8', '9']"),
    ("P15", "pretrain", ["--data.dataset=imagefolder", "--data.root={afile}"],
     "image folder '{afile}' is a file, not a folder: set --data.root to a folder of <class>/ image folders"),
    ("P27", "pretrain", ["--ckpt_path=last", "--experiment=never_ran"], "nothing to resume: 'lightning_logs/never_ran' "
     "holds no run of experiment 'never_ran' (check --experiment and --output_dir), or drop --ckpt_path to start a new "
     "run"),
    pytest.param("pretrain", ["--trainer.accelerator=gpu"], "No supported gpu backend found! Check the --trainer "
                 "settings (e.g. --trainer.accelerator=cpu).", id="P41",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
    ("P49", "pretrain", ["--data.dataset=mnist", "--data.root={cwd}/empty", "--data.download=false"],
     "mnist (train split) not found under '{cwd}/empty': set --data.download=true where the network allows, copy the "
     "files there, or use --data.dataset=digits (embedded, offline)"),
    ("P67", "pretrain", ["--optimizer=Adam"], f"unrecognized arguments: --optimizer=Adam {HELP}"),  # the model's own
    ("F20", "finetune", ["--model.pretrained={cwd}"], "no best checkpoint (best-*.ckpt) under '{cwd}': run the "
     "training that writes it first (e.g. python scripts/pretrain.py), or give the .ckpt path"),
    ("E02", "evaluate", ["--ckpt_path={ckpt_text}"],
     "'{ckpt_text}' is not a readable checkpoint (truncated, or another kind of file)"),
    ("T02", "report", ["{one_each}"], "'{one_each}' holds no TensorBoard event files (events.out.tfevents.*) and no "
     "metrics.csv: pass a run folder lightning_logs/<experiment>/version_N of a run that logged to TensorBoard or CSV"),
    ("P04", "pretrain", ["--data.batch_size=0"], "batch_size=0 must be a positive whole number"),
    ("P10", "pretrain", ["--data.classes=[0]"], "classes=[0] must name at least two different classes, each once"),
    ("P14", "pretrain", ["--data.dataset=imagefolder", "--data.root={cwd}/nope"],
     "image folder '{cwd}/nope' does not exist: set --data.root to a folder of <class>/ image folders"),
    ("P24", "pretrain", ["--data.dataset=imagefolder", "--data.classes=null", "--data.root={mixed_sizes}"],
     "image '{mixed_sizes}/c1/zzz.png' is 20×20 but '{mixed_sizes}/c0/000.png' is 16×16: set --data.image_size to "
     "resize them all to one size"),
    ("P29", "pretrain", ["--ckpt_path={ckpt_text}"],
     "'{ckpt_text}' is not a readable checkpoint (truncated, or another kind of file)"),
    ("P31", "pretrain", ["--ckpt_path={ckpt_evil}"], "refused to load '{ckpt_evil}': it holds objects other than "
     "weights and plain values, which could run code; only load checkpoints you trust, re-saved as plain state"),
    ("F02", "finetune", ["--model.pretrained={cwd}/nope.ckpt"],
     "checkpoint '{cwd}/nope.ckpt' does not exist: give a .ckpt file, a run folder or an experiment folder"),
    ("F04", "finetune", ["--model.pretrained={ckpt_truncated}"],
     "'{ckpt_truncated}' is not a readable checkpoint (truncated, or another kind of file)"),
    ("F12", "finetune", ["--model.pretrained={ckpt_no_state}"], "'{ckpt_no_state}' is not a checkpoint of this "
     "project (it has no state_dict): if it is a torchvision or timm model's state dict, set --model.backbone to its "
     "architecture, one of ['resnet18', 'resnet50', 'mobilenet_v3_small', 'efficientnet_b0'] or timm:<name>"),
    ("F13", "finetune", ["--model.pretrained={good}", "--model.pretrained_sha256=deadbeef"], "SHA"),
    ("E06", "evaluate", ["--ckpt_path={ckpt_reshaped}"], "'{ckpt_reshaped}' holds weights that do not fit the model "
     "its hyperparameters describe (Error(s) in loading state_dict for ImageClassifier:): it was edited, or written "
     "by another version of this project; retrain or use another checkpoint"),
    ("E09", "evaluate", ["--ckpt_path={good}", "--data.classes=[0, 1, 2]"], "the data has 3 classes ['0', '1', '2'] "
     "but the model predicts 5 ['0', '1', '2', '3', '4']: select them with --data.classes"),
    ("X05", "export", ["--ckpt_path={cwd}/nope"],
     "checkpoint '{cwd}/nope' does not exist: give a .ckpt file, a run folder or an experiment folder"),
    ("T01", "report", ["{cwd}/nope"],
     "run folder '{cwd}/nope' does not exist: pass lightning_logs/<experiment>/version_N"),
    ("C01", "transferability", ["--sources=[{ckpt_not_torch}]"], "'{ckpt_not_torch}' is not a readable checkpoint:"),
    # Normalization and channels of a fine-tuning run from weights (review of #22).
    ("F40", "finetune", ["--model.pretrained={good}", "--data.std=[0.3]"],
     "mean=None and std=[0.3]: set both (one value per channel), or neither"),
    ("F41", "finetune", ["--model.pretrained={good}", "--data.channels=3"], "'{good_best}' was pretrained on (1, 28, "
     "28) (C, H, W) images but the data gives (3, 28, 28): if that is the wrong pretraining run (an experiment "
     "folder's newest one is taken), point --model.pretrained at the right one; if it is the right one, adapt the "
     "data to it with --data.channels=1 --data.image_size=28"),
    ("E40", "evaluate", ["--ckpt_path={good}", "--data.mean=[0.1]", "--data.std=[0.2]"], "--data.mean:"),
    # Experiment names are one folder name: never a path out of --output_dir, nor one no folder can have (audit D6).
    ("N01", "pretrain", ["--output_dir={cwd}/out", "--experiment=../../escaped"], "--experiment '../../escaped' is a "
     f"path, not one folder name: {EXPERIMENT_HELP}"),
    ("N02", "pretrain", ["--output_dir={cwd}/out", "--experiment={cwd}/abs"], "--experiment '{cwd}/abs' is a path, "
     f"not one folder name: {EXPERIMENT_HELP}"),
    ("N03", "finetune", ["--output_dir={cwd}/out", "--experiment="], f"--experiment '' is empty: {EXPERIMENT_HELP}"),
    ("N04", "pretrain", ["--output_dir={cwd}/out", f"--experiment={'x' * 300}"], f"--experiment '{'x' * 300}' is over "
     f"200 bytes: {EXPERIMENT_HELP}"),
    ("N06", "pretrain", ["--output_dir={cwd}/out", "--experiment=.running"], "--experiment '.running' starts with '.' "
     f"(hidden, and the project's own markers are): {EXPERIMENT_HELP}"),
    ("N05", "pretrain", ["--output_dir={cwd}/out", "--experiment=a\nb"], "--experiment 'a\\nb' has control "
     f"characters: {EXPERIMENT_HELP}"),
]


def as_param(case) -> object:
    """A plain (id, script, args, expected) case as a pytest parameter; one made with pytest.param as it is."""
    return case if hasattr(case, "marks") else pytest.param(*case[1:], id=case[0])


@pytest.mark.parametrize(("script", "args", "expected"), [as_param(case) for case in CASES])
def test_a_bad_input_exits_2_with_one_line_and_changes_nothing(world, tmp_path, capfd, script, args, expected):
    places = {name: str(path) for name, path in world.items()} | {"cwd": str(tmp_path)}
    if expected == "SHA":  # the file's own hash is part of the message
        digest = hashlib.sha256(find_checkpoint(world["good"], "best").read_bytes()).hexdigest()[:12]
        expected = (f"'{find_checkpoint(world['good'], 'best')}' has sha256 {digest}… but pretrained_sha256 asks for "
                    f"deadbeef…: the pretrained checkpoint changed; point --model.pretrained at the original file or "
                    f"drop --model.pretrained_sha256")
    args = [arg.format(**places) for arg in args]
    before = checksums(world["root"], world["good"], world["finetuned"], tmp_path)
    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        MAINS[script](args)
    err = capfd.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.count("\n") == 1, err  # one line, and nothing else on stderr
    line = expected.format(**places)
    if line.endswith(":"):  # a message that ends in a library's own words: its start is ours
        assert err.startswith(f"error: {line}"), err
    else:
        assert err == f"error: {line}\n"
    assert checksums(world["root"], world["good"], world["finetuned"], tmp_path) == before
    assert not (world["root"] / "checkpoints" / "code-ran").exists()


def without_file_permission_override() -> list[str]:
    """A command prefix under which permissions apply even to root (CAP_DAC_OVERRIDE dropped), as for a user."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file permissions cannot be made to apply")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("pretrain.py", ["--output_dir={locked}/out"],
         "--output_dir '{locked}/out': '{locked}' is not writable: give a folder you can write"),
        ("finetune.py", ["--model.pretrained={locked}/good.ckpt"],
         "cannot read the pretrained checkpoint '{locked}/good.ckpt' (Permission denied)"),
        ("pretrain.py", ["--data.dataset=imagefolder", "--data.root={locked}"],
         "cannot read the image folder '{locked}' (permission denied): check its permissions"),
        ("evaluate.py", ["--ckpt_path={locked}/good.ckpt"],
         "cannot read '{locked}/good.ckpt' (Permission denied): check its permissions"),
        # Read-only output folders of the tools that write beside a run (audit E22, X21, T21): one line, no work.
        ("evaluate.py", ["--output_dir={locked}", "--ckpt_path={good}"],
         "--output_dir '{locked}' is not writable: give a folder you can write in"),
        ("export.py", ["--output_dir={locked}", "--ckpt_path={good}"],
         "--output_dir '{locked}' is not writable: give a folder you can write in"),
        ("report.py", ["--output_dir={locked}", "{good}"],
         "--output_dir '{locked}' is not writable: give a folder you can write in"),
    ],
    ids=["U08_read_only_output", "U07_unreadable_pretrained", "U04_unreadable_data_root", "U06_unreadable_checkpoint",
         "E22_read_only_evaluation", "X21_read_only_export", "T21_read_only_report"],
)
def test_unreadable_and_read_only_places_are_named(world, tmp_path, script, args, expected):
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.copy(find_checkpoint(world["good"], "best"), locked / "good.ckpt")
    (locked / "good.ckpt").chmod(0)
    locked.chmod(0o555 if "output_dir" in args[0] else 0o711)  # read-only; or enterable, its listing hidden
    if "imagefolder" in args[0]:
        locked.chmod(0)
    tiny = TINY_RUN if script in ("pretrain.py", "finetune.py") else []
    command = [sys.executable, str(SCRIPTS / script), *tiny,
               *(a.format(locked=locked, good=world["good"]) for a in args)]
    try:
        result = subprocess.run([*without_file_permission_override(), *command], cwd=tmp_path, capture_output=True,
                                text=True, timeout=300)
    finally:
        locked.chmod(0o700)
    assert result.returncode == 2 and result.stderr == f"error: {expected.format(locked=locked)}\n", result.stderr


def test_a_decompression_bomb_is_skipped_by_predict_with_its_name(world, tmp_path, capfd):
    predict.main([f"--ckpt_path={world['good']}", str(world["bomb"] / "c1")])
    err = capfd.readouterr().err
    assert f"skipped: cannot read image '{world['bomb'] / 'c1' / 'zzz.png'}' (Image size" in err


def test_a_failed_study_leaves_nothing_and_its_corrected_rerun_runs(world, tmp_path, capfd):
    with pytest.raises(SystemExit):
        MAINS["study"]([f"--pretrained={world['good']}", "--budgets=[5000]", f"--output_dir={tmp_path / 'study'}"])
    assert not (tmp_path / "study").exists()
    MAINS["study"]([f"--pretrained={world['good']}", "--methods=[scratch]", "--budgets=[2]", "--seeds=[1]",
                      f"--output_dir={tmp_path / 'study'}"])
    assert (tmp_path / "study" / "results.csv").read_text().count("\n") == 2


def test_a_failed_download_removes_what_it_made(tmp_path, no_network, capfd):
    with pytest.raises(SystemExit) as exit_info:
        MAINS["pretrain"](["--data.dataset=cifar10", f"--data.root={tmp_path / 'cifar'}"])
    assert exit_info.value.code == 2 and "could not be downloaded" in capfd.readouterr().err
    assert not (tmp_path / "cifar").exists()


@pytest.mark.slow
def test_a_resume_into_a_read_only_checkpoints_folder_is_one_line_before_training(world, tmp_path):
    run = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0"
    shutil.copytree(world["good"], run)
    (run / "checkpoints").chmod(0o555)
    before = checksums(run)
    command = [sys.executable, str(SCRIPTS / "pretrain.py"), *TINY_RUN, "--model.lr=0.05", "--ckpt_path=last",
               "--trainer.max_epochs=3"]
    try:
        result = subprocess.run([*without_file_permission_override(), *command], cwd=tmp_path, capture_output=True,
                                text=True, timeout=300)
    finally:
        (run / "checkpoints").chmod(0o755)
    assert result.returncode == 2 and result.stderr == (
        "error: cannot resume 'lightning_logs/digits_pretrain/version_0/checkpoints/last.ckpt': "
        "'lightning_logs/digits_pretrain/version_0/checkpoints' is not writable (a resumed run writes its checkpoints "
        "there); restore its permissions, or start a new run\n"), result.stderr
    assert checksums(run) == before
