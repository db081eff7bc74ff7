"""Lightning's output that is not about the run: its adverts for other products ("💡 Tip: ... litlogger",
"... litmodels"), which a new user reads as problems (audit 2026-12, new user, point 5)."""

import logging


class AdvertFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_lightning_adverts() -> None:
    """Drop Lightning's "💡 Tip" adverts from its log (once; the run's own notes stay)."""
    tips = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(existing, AdvertFilter) for existing in tips.filters):
        tips.addFilter(AdvertFilter())
