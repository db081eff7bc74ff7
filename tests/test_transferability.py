"""Feature probes (LogME, k-NN, logistic regression) against references, and the transferability check end to end."""

import math
import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, cross_val_score

from project.feature_probes.knn import knn_accuracy, usable_k
from project.feature_probes.logistic import PENALTIES, fit_logistic_probe
from project.feature_probes.logme import logme_score
from project.lab.transferability.main import SourceReport, main, verdict
from project.lab.transferability.scores import FeatureScores


def clustered(n: int, d: int, classes: int, spread: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` features in `d` dimensions around one random centre per class; `spread` is the noise around it."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = torch.randn(classes, d, generator=generator)
    return centres[labels] + spread * torch.randn(n, d, generator=generator), labels


def logme_by_eigendecomposition(features: torch.Tensor, labels: torch.Tensor) -> float:
    """LogME as published (You et al. 2021): the D×D eigendecomposition of F^T F and MacKay's updates."""
    f = features.double()
    n, d = f.shape
    sigma, v = torch.linalg.eigh(f.T @ f)
    sigma = sigma.clamp_min(0)
    evidences = []
    for label in labels.unique():
        y = (labels == label).double()
        projected, alpha, beta = v.T @ (f.T @ y), 1.0, 1.0
        for _ in range(20):
            gamma = float((beta * sigma / (alpha + beta * sigma)).sum())
            m = v @ (beta * projected / (alpha + beta * sigma))
            weight_norm, residual = float(m @ m), float(((y - f @ m) ** 2).sum())
            new_alpha, new_beta = gamma / (weight_norm + 1e-5), (n - gamma) / (residual + 1e-5)
            done = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 0.01
            alpha, beta = new_alpha, new_beta
            if done:
                break
        log_det = float(torch.log(alpha + beta * sigma).sum())
        evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - 0.5 * log_det
                    - beta / 2 * residual - alpha / 2 * weight_norm - n / 2 * math.log(2 * math.pi))
        evidences.append(evidence / n)
    return sum(evidences) / len(evidences)


@pytest.mark.parametrize(("n", "d"), [(40, 128), (300, 16)], ids=["fewer_images_than_features", "more_images"])
def test_logme_equals_the_published_eigendecomposition_form(n, d):
    features, labels = clustered(n, d, classes=4, spread=1.0)
    assert logme_score(features, labels) == pytest.approx(logme_by_eigendecomposition(features, labels), abs=1e-9)


def test_logme_and_knn_rank_class_structured_features_above_noise():
    structured, labels = clustered(100, 32, classes=5, spread=0.5)
    noise = torch.randn(100, 32, generator=torch.Generator().manual_seed(1))
    assert logme_score(structured, labels) > logme_score(noise, labels)
    assert knn_accuracy(structured, labels) == 1.0 and knn_accuracy(noise, labels) < 0.5


def test_knn_leaves_each_sample_out():
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # Each sample's only other neighbour is of the other class: with itself counted it would score 1.
    assert knn_accuracy(features, torch.tensor([0, 1]), k=1) == 0.0


def test_knn_with_fewer_samples_per_class_than_neighbours_votes_with_fewer_neighbours():
    # Three tight clusters of 3 around a common direction (every cosine similarity positive, as with ReLU
    # features): with k = 20 every other sample votes, the other classes' 6 outvote a sample's own 2, and the
    # accuracy read 0 for perfect features.
    features, labels = clustered(9, 8, classes=3, spread=0.01)
    features = features + 5.0
    assert knn_accuracy(features, labels, k=20) == 1.0
    assert usable_k(labels, 20) == 2 and usable_k(labels, 1) == 1


def test_the_logistic_probe_is_sklearns_optimum_at_the_penalty_cross_validation_chose():
    features, labels = clustered(30, 64, classes=3, spread=2.0)
    probe = fit_logistic_probe(features, labels)
    x = features.double().numpy()
    mean, std = x.mean(0), x.std(0) + 1e-8
    direct = LogisticRegression(C=probe.penalty_c, max_iter=5000, tol=1e-10).fit((x - mean) / std, labels.numpy())
    queries = torch.randn(10, 64, generator=torch.Generator().manual_seed(3))
    direct_logits = direct.decision_function((queries.double().numpy() - mean) / std)
    probe_logits = (queries @ probe.weight.T + probe.bias).numpy()
    np.testing.assert_allclose(probe_logits, direct_logits, atol=2e-3)  # the projection onto the data's span is exact
    assert probe.cv_accuracy is not None and 0 <= probe.cv_accuracy <= 1


def weak_few_label_features(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """10 classes whose centres sit close together in 128 dimensions: a 20-25 % probe, like few-label features."""
    generator = torch.Generator().manual_seed(2)  # the same class centres for every draw
    centres = 0.15 * torch.randn(10, 128, generator=generator)
    labels = torch.arange(10).repeat_interleave(per_class)
    noise = torch.randn(len(labels), 128, generator=torch.Generator().manual_seed(seed))
    return centres[labels] + noise, labels


def test_the_penalty_is_the_one_with_the_lowest_cross_validated_log_loss_not_the_best_accuracy():
    features, labels = weak_few_label_features(per_class=10, seed=7)
    probe = fit_logistic_probe(features, labels, seed=0)
    x = features.double().numpy()
    mean, std = x.mean(0), x.std(0) + 1e-8
    standardized, y = (x - mean) / std, labels.numpy()
    splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(standardized, y))

    def cross_validated(c: float, scoring: str) -> float:
        return cross_val_score(LogisticRegression(C=c, max_iter=1000), standardized, y, cv=splits,
                               scoring=scoring).mean()

    log_losses = [-cross_validated(c, "neg_log_loss") for c in PENALTIES]
    accuracies = [cross_validated(c, "accuracy") for c in PENALTIES]
    assert probe.penalty_c == PENALTIES[np.argmin(log_losses)] <= 1
    assert probe.cv_log_loss == pytest.approx(min(log_losses), abs=1e-3)
    # Two held-out images per class make accuracy a coarse, noisy score: here its best is a weak penalty...
    by_accuracy = PENALTIES[np.argmax(accuracies)]
    assert by_accuracy >= 10
    # ...whose probe is overconfident on images it has never seen.
    unseen, unseen_labels = weak_few_label_features(per_class=100, seed=7)
    overconfident = LogisticRegression(C=by_accuracy, max_iter=1000).fit(standardized, y)
    unseen_standardized = (unseen.double().numpy() - mean) / std
    chosen_logits = unseen @ probe.weight.T + probe.bias
    assert (torch.nn.functional.cross_entropy(chosen_logits, unseen_labels).item() + 0.5
            < log_loss(unseen_labels.numpy(), overconfident.predict_proba(unseen_standardized)))


def test_with_one_image_in_a_class_the_probe_takes_the_default_penalty():
    features, labels = clustered(7, 8, classes=3, spread=0.1)  # class 0 has 3, 1 has 2, 2 has 2
    probe = fit_logistic_probe(features[:5], torch.tensor([0, 0, 1, 1, 2]))
    assert probe.penalty_c == 1.0 and probe.cv_accuracy is None


def test_cross_validation_holds_out_all_views_of_an_image_together():
    # Four identical "views" of each of 60 noise images with random labels: a fold that held out one view while
    # training on the others would score the memorized copies (near 1); grouped by image it scores chance.
    features, _ = clustered(60, 32, classes=3, spread=1.0)
    labels = torch.randperm(60, generator=torch.Generator().manual_seed(1)) % 3
    views, view_labels, images = features.repeat(4, 1), labels.repeat(4), torch.arange(60).repeat(4)
    assert fit_logistic_probe(views, view_labels).cv_accuracy > 0.9  # what ungrouped folds report
    assert fit_logistic_probe(views, view_labels, images=images).cv_accuracy < 0.6


def test_views_weigh_as_much_as_their_image_so_identical_views_give_the_probe_of_the_images_alone():
    # Unweighted, 11 views of each image would make the data term 11 times heavier and every C 11 times weaker.
    features, labels = clustered(60, 32, classes=3, spread=4.0)  # overlapping classes: an interior C (0.1)
    alone = fit_logistic_probe(features, labels)
    views = fit_logistic_probe(features.repeat(11, 1), labels.repeat(11), images=torch.arange(60).repeat(11))
    assert views.penalty_c == alone.penalty_c
    torch.testing.assert_close(views.weight, alone.weight, atol=1e-3, rtol=1e-3)


def test_a_penalty_at_the_edge_of_the_grid_gets_a_note_and_no_warning_of_its_own():
    # The transferability check fits probes on random weights, where the strongest penalty is the expected pick:
    # whether to say it is the caller's choice (the logistic_probe strategy does), not a warning every time.
    noise, _ = clustered(60, 32, classes=3, spread=1.0)
    random_labels = torch.randperm(60, generator=torch.Generator().manual_seed(1)) % 3
    separable, labels = clustered(60, 32, classes=3, spread=0.01)
    between, between_labels = clustered(60, 32, classes=3, spread=4.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        strongest = fit_logistic_probe(noise, random_labels)
        weakest = fit_logistic_probe(separable, labels)
        inside = fit_logistic_probe(between, between_labels)
    assert re.search(r"C=0.001, the strongest .* may carry little about these labels", strongest.edge_note())
    assert re.search(r"C=1000, the weakest .* likely separable", weakest.edge_note())
    assert inside.edge_note() is None
    assert fit_logistic_probe(noise[:5], torch.tensor([0, 0, 1, 1, 2])).edge_note() is None  # not cross-validated


def test_with_one_image_in_a_class_its_views_do_not_make_folds():
    features, _ = clustered(5, 8, classes=3, spread=0.1)
    labels = torch.tensor([0, 0, 1, 1, 2])  # class 2 has one image, in four views
    probe = fit_logistic_probe(features.repeat(4, 1), labels.repeat(4), images=torch.arange(5).repeat(4))
    assert probe.penalty_c == 1.0 and probe.cv_accuracy is None


def scores(logme: float, knn: float, probe: float) -> FeatureScores:
    return FeatureScores(logme, knn, probe)


def test_the_verdict_flags_a_source_no_better_than_random_weights():
    random = [scores(0.1, 0.5, 0.5), scores(0.2, 0.6, 0.55)]
    good = SourceReport("a.ckpt", "cnn", scores(0.5, 0.9, 0.8), random, (50, 50))
    assert verdict(good).startswith("a.ckpt: above every random initialization on all 3 scores")
    tied = SourceReport("b.ckpt", "cnn", scores(0.15, 0.6, 0.8), random, (50, 50))
    assert verdict(tied) == ("FLAG b.ckpt: not above every random initialization of the same architecture on "
                             "LogME, k-NN acc (within their spread or below): "
                             "expect fine-tuning from it to tie or lose to training from scratch")


def test_the_check_scores_a_pretraining_run_and_its_random_twins_on_the_budgeted_labels(pretrained_run, capsys):
    source = pretrained_run.parent
    main([f"--sources=[{source}]", "--random_inits=2", "--data.samples_per_class=4"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| source (20 training + 20 validation labelled images) | weights | LogME |")
    assert "| pretrained |" in out[2] and out[3].startswith("| cnn, same architecture | random ×2 |")
    assert out[4].startswith((f"FLAG {source}", str(source)))  # either verdict, named
    assert out[5].startswith("scored in ")


def test_a_missing_source_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([f"--sources=[{tmp_path / 'nope.ckpt'}]"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: checkpoint '{tmp_path / 'nope.ckpt'}' does not exist")


def test_a_source_trained_with_the_targets_own_labels_is_refused(finetuned_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([f"--sources=[{finetuned_run}]", "--random_inits=1"])  # digits 5-9, the default target's classes
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "was trained with the labels of ['5', '6', '7', '8', '9'] of this very data (digits at data)" in err


def test_an_empty_source_list_is_refused_not_replaced_by_the_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--sources=[]"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--sources '[]' names no source" in err
