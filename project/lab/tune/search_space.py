"""A sweep's search space, as YAML gives it: any run setting (a dotted config key) and the values to try.

    search_space:
      model.lr: {low: 0.001, high: 0.2, log: true}     # a float, sampled on a log scale
      trainer.max_epochs: {low: 5, high: 30, step: 5}  # ints when low, high (and step) are ints
      model.strategy: {choices: [full, lp_ft]}          # one of a list

The best trial's values become a config overlay (`{model: {lr: ...}}`) that `--config` takes after the
fine-tuning config, in a run or in a study's per_method_args.
"""

from project.errors import UserError

RUN_OWNED = ("output_dir", "experiment", "ckpt_path", "seed_everything", "data.samples_per_class", "data.split_seed",
             "data.budget_seed", "model.pretrained")  # what the sweep sets itself for every run


def check_search_space(space: dict) -> None:
    """Every key a run setting the sweep does not own, every range well formed: one line naming what is wrong."""
    if not space:
        raise UserError("search_space is empty: name at least one setting, e.g. {model.lr: {low: 0.001, high: 0.1, "
                        "log: true}}")
    for key, spec in space.items():
        where = f"search_space.{key}"
        if key in RUN_OWNED or key.lstrip("-") in RUN_OWNED:
            raise UserError(f"{where}: the sweep sets {key} for each run (the label draws, the budget and the source "
                            f"are the sweep's own settings); search another setting")
        if not isinstance(spec, dict) or not ({"choices"} <= spec.keys() or {"low", "high"} <= spec.keys()):
            raise UserError(f"{where}: give {{low: ..., high: ...}} (with log: true or step: ...) or {{choices: "
                            f"[...]}}, got {spec!r}")
        unknown = set(spec) - {"low", "high", "log", "step", "choices"}
        if unknown:
            raise UserError(f"{where}: unknown field(s) {sorted(unknown)}: use low, high, log, step or choices")
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise UserError(f"{where}.choices must be a non-empty list, got {spec['choices']!r}")
            continue
        low, high = spec["low"], spec["high"]
        if not all(isinstance(value, int | float) and not isinstance(value, bool) for value in (low, high)):
            raise UserError(f"{where}: low and high must be numbers, got {low!r} and {high!r}")
        if not low < high:
            raise UserError(f"{where}: low={low} must be below high={high}")
        if spec.get("log") and low <= 0:
            raise UserError(f"{where}: a log scale needs low > 0, got low={low}")
        if spec.get("log") and spec.get("step") is not None:
            raise UserError(f"{where}: log and step cannot be combined (Optuna samples one or the other)")


def suggest(trial, space: dict) -> dict[str, object]:
    """The trial's values for every key of the space (Optuna's suggest_* calls, by the spec's form)."""
    values = {}
    for key, spec in space.items():
        if "choices" in spec:
            values[key] = trial.suggest_categorical(key, spec["choices"])
        elif all(isinstance(spec[bound], int) for bound in ("low", "high")) and isinstance(spec.get("step", 1), int):
            values[key] = trial.suggest_int(key, spec["low"], spec["high"], step=spec.get("step") or 1,
                                            log=bool(spec.get("log")))
        else:
            values[key] = trial.suggest_float(key, spec["low"], spec["high"], step=spec.get("step"),
                                              log=bool(spec.get("log")))
    return values


def overlay(values: dict[str, object]) -> dict:
    """{"model.lr": 0.01} -> {"model": {"lr": 0.01}}: a config file that sets these values."""
    nested: dict = {}
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested

