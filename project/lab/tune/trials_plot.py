"""trials.png: a sweep at a glance. Left, each trial's score in the order run (pruned trials at the last value
they reported) and the best so far; right of it, the score against each searched setting."""

from matplotlib.figure import Figure


def trials_figure(trials: list, space: dict[str, dict]) -> Figure:
    # Figure, not pyplot: no GUI backend is chosen and no global figure list is kept.
    figure = Figure(figsize=(4.2 * (1 + len(space)), 3.6), dpi=100, layout="constrained")
    axes = figure.subplots(1, 1 + len(space), squeeze=False)[0]
    scored = [(trial, score(trial)) for trial in trials if score(trial) is not None]
    complete = [(trial, value) for trial, value in scored if trial.state.name == "COMPLETE"]
    pruned = [(trial, value) for trial, value in scored if trial.state.name == "PRUNED"]
    order = axes[0]
    order.scatter([t.number for t, _ in complete], [v for _, v in complete], label="finished", color="C0")
    order.scatter([t.number for t, _ in pruned], [v for _, v in pruned], label="pruned", marker="x", color="C3")
    best, best_so_far = float("-inf"), []
    for trial, value in complete:
        best = max(best, value)
        best_so_far.append((trial.number, best))
    if best_so_far:
        order.step(*zip(*best_so_far, strict=True), where="post", color="C0", alpha=0.5, label="best so far")
    order.set(xlabel="trial", ylabel="mean validation accuracy", title="trials")
    order.legend(fontsize=8)
    for axis, (key, spec) in zip(axes[1:], space.items(), strict=True):
        axis.scatter([t.params[key] for t, _ in complete if key in t.params],
                     [v for t, v in complete if key in t.params], color="C0")
        axis.scatter([t.params[key] for t, _ in pruned if key in t.params],
                     [v for t, v in pruned if key in t.params], marker="x", color="C3")
        if spec.get("log"):
            axis.set_xscale("log")
        axis.set(xlabel=key, title=key)
    for axis in axes:
        axis.grid(alpha=0.3)
    return figure


def score(trial) -> float | None:
    """A finished trial's value; a pruned one's last reported (first-draw) validation accuracy."""
    if trial.value is not None:
        return trial.value
    steps = trial.intermediate_values
    return steps[max(steps)] if steps else None
