"""Checks of the DataModule's settings, raised where a bad value enters, before anything is loaded."""

from typing import Any

from project.errors import UserError, refuse_wrong


def check_settings(hp: Any) -> None:
    """Reject values that cannot work, naming the setting, before anything is loaded."""
    refuse_wrong((f"val_fraction={hp.val_fraction} must be in [0, 1)", 0 <= hp.val_fraction < 1),
                 (f"test_fraction={hp.test_fraction} must be in [0, 1)", 0 <= hp.test_fraction < 1))
    for name in ("batch_size", "samples_per_class", "image_size"):
        value = hp[name]
        if value is not None and value < 1:
            raise UserError(f"{name}={value} must be a positive whole number")
    if isinstance(hp.val_samples_per_class, int) and hp.val_samples_per_class < 1:
        raise UserError(
            f"val_samples_per_class={hp.val_samples_per_class} must be a positive whole number, 'all' or null"
        )
    if hp.memory_limit_gb <= 0:
        raise UserError(f"memory_limit_gb={hp.memory_limit_gb} must be positive")
    if (hp.mean is None) != (hp.std is None):
        raise UserError(f"mean={hp.mean} and std={hp.std}: set both (one value per channel), or neither")
    if hp.mean is not None:
        refuse_wrong((f"mean={hp.mean} and std={hp.std} must have as many values, 1 or 3",
                      len(hp.mean) == len(hp.std) and len(hp.mean) in (1, 3)),
                     (f"std={hp.std} must be positive", all(value > 0 for value in hp.std)))
        if hp.channels is not None and len(hp.mean) == 1 and hp.channels == 3:
            raise UserError(f"mean={hp.mean} has one value but channels=3: give three values (one per channel)")
    if hp.unlabelled_ratio < 0:
        raise UserError(f"unlabelled_ratio={hp.unlabelled_ratio} must be >= 0 (0: no unlabelled pool)")
    if hp.unlabelled_ratio and hp.in_memory is False:
        raise UserError(f"unlabelled_ratio={hp.unlabelled_ratio}: the unlabelled pool is held in memory, and "
                        f"in_memory=false reads images from disk: set --data.in_memory=true")
    refuse_wrong((f"crop_padding={hp.crop_padding} must not be negative", hp.crop_padding >= 0),
                 (f"num_workers={hp.num_workers} must not be negative", (hp.num_workers or 0) >= 0))


def resolve_classes(classes: list[int | str] | None, names: list[str]) -> list[int]:
    """Class indices for a list of indices or names; all classes when None."""
    if classes is None:
        return list(range(len(names)))
    ids = []
    for entry in classes:
        if isinstance(entry, str) and entry in names:
            ids.append(names.index(entry))
        elif isinstance(entry, int) and 0 <= entry < len(names):
            ids.append(entry)
        else:
            raise UserError(
                f"class {entry!r} is not in this dataset: use indices 0-{len(names) - 1} or names {names[:10]}"
            )
    if len(set(ids)) != len(ids) or len(ids) < 2:
        raise UserError(f"classes={classes} must name at least two different classes, each once")
    return ids
