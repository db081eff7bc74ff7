"""Test-time TensorBoard output: the confusion matrix agrees with the logged accuracy, figures, HPARAMS metrics."""

import io

import pytest
import torch
from event_files import run_events, scalar_values, summary_values
from lightning.pytorch import Trainer
from PIL import Image
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from tiny_settings import TINY_CNN, TINY_RUN

from project.data import ImageDataModule
from project.figures import confusion_matrix_figure, predictions_figure
from project.models import ImageClassifier
from project.training.callbacks import evaluation_figures
from project.training.callbacks.evaluation_figures import LogEvaluationFigures
from project.training.run import run_experiment


def test_the_confusion_matrix_covers_the_test_set_and_its_diagonal_is_the_logged_accuracy(tmp_path, monkeypatch):
    drawn = []
    draw = evaluation_figures.confusion_matrix_figure

    def record_and_draw(matrix: torch.Tensor, class_names: list[str]):
        drawn.append(matrix)
        return draw(matrix, class_names)

    monkeypatch.setattr(evaluation_figures, "confusion_matrix_figure", record_and_draw)
    metrics = run_experiment(
        ImageClassifier, "digits_pretrain.yaml",
        [*TINY_RUN, TINY_CNN, f"--output_dir={tmp_path}", "--trainer.limit_test_batches=1.0"],  # the whole test split
    )
    (matrix,) = drawn
    datamodule = ImageDataModule(dataset="digits", classes=[0, 1, 2, 3, 4])  # the config's data
    datamodule.setup()
    assert matrix.shape == (5, 5) and matrix.sum() == len(datamodule.test_set)
    assert (matrix.diagonal().sum() / matrix.sum()).item() == pytest.approx(metrics["test/acc"], abs=1e-6)

    events = run_events(tmp_path / "digits_pretrain" / "version_0")
    for tag in ("test/confusion_matrix", "test/predictions"):
        (value,) = summary_values(events, tag)
        assert Image.open(io.BytesIO(value.image.encoded_image_string)).size == (value.image.width, value.image.height)
    # HPARAMS tab: the hyperparameters, and the test metrics as its columns, with their values as scalars.
    (experiment,) = summary_values(events, "_hparams_/experiment")
    plugin_data = HParamsPluginData.FromString(experiment.metadata.plugin_data.content)
    assert {info.name.tag for info in plugin_data.experiment.metric_infos} == {"test/acc", "test/loss"}
    assert {"lr", "backbone", "class_names"} <= {info.name for info in plugin_data.experiment.hparam_infos}
    assert scalar_values(events, "test/acc")[-1] == pytest.approx(metrics["test/acc"])


def test_confusion_matrix_figure_labels_the_axes_with_class_names_and_each_cell_with_its_count():
    matrix = torch.tensor([[3, 1, 0], [0, 2, 0], [4, 0, 5]])
    figure = confusion_matrix_figure(matrix, ["cat", "dog", "ship"])
    (axes,) = figure.axes
    assert [label.get_text() for label in axes.get_xticklabels()] == ["cat", "dog", "ship"]
    assert [label.get_text() for label in axes.get_yticklabels()] == ["cat", "dog", "ship"]
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("predicted", "true")
    cells = {(text.get_position(), text.get_text()) for text in axes.texts}
    assert cells == {((column, row), str(int(matrix[row, column]))) for row in range(3) for column in range(3)}
    figure.savefig(io.BytesIO(), format="png")  # renders without a display


@pytest.mark.parametrize("channels", [1, 3])
def test_predictions_figure_shows_at_most_16_min_max_scaled_images_titled_true_over_predicted(channels):
    images = torch.randn(20, channels, 8, 8) * 3 + 5  # normalized data is not in [0, 1]
    labels, predictions = torch.arange(20) % 3, torch.zeros(20, dtype=torch.long)
    figure = predictions_figure(images, labels, predictions, ["cat", "dog", "ship"])
    assert len(figure.axes) == 16
    names = ["cat", "dog", "ship"]
    assert [axes.get_title() for axes in figure.axes] == [f"{names[label]} / cat" for label in labels[:16]]
    assert [axes.title.get_color() for axes in figure.axes[:3]] == ["black", "red", "red"]
    for axes in figure.axes:
        pixels = axes.images[0].get_array()
        assert pixels.shape == ((8, 8) if channels == 1 else (8, 8, 3))
        assert pixels.min() == pytest.approx(0) and pixels.max() == pytest.approx(1)


def test_without_a_logger_the_callback_adds_no_forward_passes_and_logs_nothing(tmp_path):
    datamodule = ImageDataModule(dataset="digits", classes=[0, 1], batch_size=16)
    model = ImageClassifier(backbone_args={"channels": [4, 8], "feature_size": 16}, num_classes=2)
    forward_calls = []
    model.register_forward_hook(lambda *args: forward_calls.append(1))
    callback = LogEvaluationFigures()
    trainer = Trainer(
        logger=False, callbacks=[callback], limit_test_batches=2, accelerator="cpu", devices=1,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )
    trainer.test(model, datamodule=datamodule, verbose=False)
    assert callback.confusion is None and callback.samples == []
    assert len(forward_calls) == 2  # test_step's own, one per batch
    assert list(tmp_path.iterdir()) == []
