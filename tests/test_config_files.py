"""--config files that YAML or jsonargparse would take in a way the user did not mean, or fail on with a
traceback, are one line and exit 2 before anything is written (audit 2026-12: Y02, Y04, Y05, Y06, Y07, Y10)."""

import pytest

from project.models import ImageClassifier
from project.training.run import run_experiment

CASES = {
    "tabs": ("trainer:\n\tmax_epochs: 2\n", "is not valid YAML (while scanning for the next token found character"),
    "python_tag": ("seed_everything: !!python/object/apply:os.system [echo hi]\n",
                   "is not valid YAML (could not determine a constructor for the tag"),
    "two_documents": ("trainer: {max_epochs: 1}\n---\nmodel: {}\n", "is not valid YAML (expected a single document"),
    "repeated_key": ("trainer:\n  max_epochs: 2\n  max_epochs: 3\n",
                     "is not valid YAML (the key 'max_epochs' appears twice (keep one: the last would silently win)"),
    "empty": ("", "is empty: give a config with settings, or leave --config out"),
    "a_list": ("- trainer\n- model\n", "holds a list, not settings"),
    "section_list": ("data: [1, 2]\n", ": `data:` holds a list, not settings: write `data:` followed by indented"),
    "section_number": ("model: 5\n", ": `model:` holds a number, not settings"),
    "earlier_objective": ("objective: simclr\nmodel:\n  temperature: 0.2\n",
                          ": `objective:` is a setting of an earlier version; pretraining's objective is now its model "
                          "class: write `model:` with `class_path: project.models.SimCLRPretraining`"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_config_file_yaml_would_misread_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    content, message = CASES[case]
    config = tmp_path / f"{case}.yaml"
    config.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        run_experiment(ImageClassifier, "digits_pretrain.yaml", ["--config", str(config), f"--output_dir={tmp_path}/o"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: --config {str(config)!r}") and message in err
    assert sorted(path.name for path in tmp_path.iterdir()) == [config.name]  # nothing written
