"""Loading weights into a backbone exactly: a missing, unexpected or reshaped key is one clear error, not
torch's multi-line report."""

from torch import Tensor, nn

from project.errors import UserError


def load_exactly(module: nn.Module, state: dict[str, Tensor], weights: str, hint: str) -> None:
    """Load `state` into `module` strictly; `weights` names them in the error, `hint` says what to do."""
    own = module.state_dict()
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    reshaped = [f"{key} {tuple(state[key].shape)} vs {tuple(own[key].shape)}"
                for key in sorted(own.keys() & state.keys()) if state[key].shape != own[key].shape]
    if missing or unexpected or reshaped:
        raise UserError(f"{weights} do not fit: {len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} "
                        f"unexpected (e.g. {unexpected[:3]}), {len(reshaped)} of another shape (e.g. {reshaped[:3]}); "
                        f"{hint}")
    module.load_state_dict(state)
