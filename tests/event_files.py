"""Read a run's TensorBoard event files event by event, independently of the EventAccumulator the report uses."""

from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
from tensorboard.compat.proto.event_pb2 import Event


def run_events(run: Path) -> list[Event]:
    """Every event of every event file in `run`, in the order written."""
    events = [event for path in run.glob("events.out.tfevents.*") for event in LegacyEventFileLoader(str(path)).Load()]
    return sorted(events, key=lambda event: event.wall_time)


def scalar_values(events: list[Event], tag: str) -> list[float]:
    return [value.simple_value for event in events for value in event.summary.value if value.tag == tag]


def summary_values(events: list[Event], tag: str) -> list:
    """The summary values (images, plugin data) logged under `tag`."""
    return [value for event in events for value in event.summary.value if value.tag == tag]
