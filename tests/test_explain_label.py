"""``explain --label NAME`` and ``label`` in /v1/explain: attributions for any one label, predicted
or not; by default each label a multi-label model predicts, a single-label model's class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import classiformer
from classiformer import Classifier, resolve_config
from classiformer.cli import main
from classiformer.explain import integrated_gradients
from classiformer.server import create_app

from .conftest import make_texts

TWO = "goal team stock market the a"  # sports and money
NONE = "the a of today"  # no topic word


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    folder = tmp_path_factory.mktemp("explain-label") / "run"
    classiformer.fit(resolve_config("tiny", train={"epochs": 3, "batch_size": 16, "lr": 3e-2}), make_texts(150, seed=3),
                     folder, progress=False)
    return Classifier.load(folder)


def ig(clf: Classifier, text: str, label: str) -> np.ndarray:
    """Integrated gradients of ``label``'s own probability, computed directly."""
    target = clf.labels.index(label)
    ids = torch.as_tensor(clf.tokenizer.encode([text])[0])[None]
    t = float(clf.label_temperatures[target]) if clf.multi_label else clf.temperature
    return integrated_gradients(clf.model, ids, torch.ones_like(ids), target, temperature=t,
                                sigmoid=clf.multi_label).detach().numpy()


def test_multi_label_default_explains_each_predicted_label(multilabel_classifier: Classifier) -> None:
    clf = multilabel_classifier
    predicted = clf.predict([TWO])[0]
    assert predicted == ["money", "sports"]
    explained = clf.explain_labels(TWO, methods=("rollout", "gradient"))
    assert [e.label for e in explained] == predicted
    for e in explained:
        assert e.predicted == predicted and e.is_predicted and e.multi_label
        np.testing.assert_allclose(e.importance["gradient"], ig(clf, TWO, e.label), atol=1e-6)
        np.testing.assert_allclose(list(e.probabilities.values()), clf.predict_proba([TWO])[0], atol=1e-5)
    # Attention does not depend on the label; the gradients do.
    assert explained[0].importance["rollout"] == explained[1].importance["rollout"]
    assert not np.allclose(explained[0].importance["gradient"], explained[1].importance["gradient"])
    # explain(label=...) gives the same explanation one label at a time.
    assert clf.explain(TWO, methods=("rollout", "gradient"), label="sports").to_dict() == explained[1].to_dict()


def test_a_label_not_predicted_and_a_text_with_no_label(multilabel_classifier: Classifier) -> None:
    clf = multilabel_classifier
    e = clf.explain(TWO, methods=("gradient",), label="tech")
    assert e.label == "tech" and not e.is_predicted and e.predicted == ["money", "sports"]
    np.testing.assert_allclose(e.importance["gradient"], ig(clf, TWO, "tech"), atol=1e-6)
    assert clf.predict([NONE])[0] == []
    (only,) = clf.explain_labels(NONE, methods=("gradient",))
    assert only.label == clf.labels[int(np.argmax(clf.predict_proba([NONE])[0]))] and not only.is_predicted
    assert any("No label reaches its decision threshold" in n for n in only.notes)
    # Named labels come in the order given, predicted or not.
    assert [x.label for x in clf.explain_labels(TWO, ["tech", "money"], methods=("gradient",))] == ["tech", "money"]


@pytest.mark.parametrize("which", ["single", "multi"])
def test_an_unknown_label_is_a_clear_error(which: str, single: Classifier, multilabel_classifier: Classifier) -> None:
    clf = single if which == "single" else multilabel_classifier
    with pytest.raises(ValueError, match="unknown label 'weather': this model's labels are money, sports, tech"):
        clf.explain(TWO, label="weather")
    with pytest.raises(ValueError, match="unknown label"):
        clf.explain_labels(TWO, ["money", "weather"])


def test_single_label_default_is_the_prediction_and_any_class_can_be_explained(single: Classifier) -> None:
    text = "chip robot code"
    pred = single.predict([text])[0]
    (default,) = single.explain_labels(text, methods=("gradient",))
    assert default.label == pred and default.predicted == [pred] and not default.multi_label
    assert default.to_dict() == single.explain(text, methods=("gradient",)).to_dict()
    other = next(lbl for lbl in single.labels if lbl != pred)
    e = single.explain(text, methods=("gradient",), label=other)
    assert e.label == other and not e.is_predicted and e.predicted == [pred]
    np.testing.assert_allclose(e.importance["gradient"], ig(single, text, other), atol=1e-6)


def heading(path: Path) -> str:
    page = path.read_text(encoding="utf-8")
    return page[page.index("<h1>") + 4 : page.index("</h1>")]


def test_cli_multi_label_files_per_label(multilabel_classifier: Classifier, tmp_path: Path, capsys) -> None:
    model, out = str(multilabel_classifier.path), tmp_path / "out"
    assert main(["explain", model, TWO, "--output", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in printed] == ["money", "sports"]
    assert all(" predicted)" in line for line in printed)
    names = sorted(p.name for p in out.iterdir())
    pngs = [n for n in names if n.endswith(".png")]
    assert pngs and all(n.startswith("explanation_layer") for n in pngs)  # attention: once per text
    assert [n for n in names if not n.endswith(".png")] == [
        "explanation_money.html", "explanation_money.json", "explanation_sports.html", "explanation_sports.json"]
    for label in ("money", "sports"):
        data = json.loads((out / f"explanation_{label}.json").read_text())
        assert data["label"] == label and data["predicted"] == ["money", "sports"] and data["multi_label"] is True
        assert heading(out / f"explanation_{label}.html").startswith(f"Label explained: {label} (")
        assert heading(out / f"explanation_{label}.html").endswith(", predicted)")
    # --label: one label, predicted or not, in files named after it.
    assert main(["explain", model, TWO, "--label", "tech", "--output", str(tmp_path / "tech")]) == 0
    assert "tech (" in capsys.readouterr().out
    page = tmp_path / "tech" / "explanation_tech.html"
    assert heading(page).endswith(", not predicted)")
    assert "The model&#x27;s labels for this text: money, sports." in page.read_text(encoding="utf-8")


def test_cli_single_label_label_and_errors(single: Classifier, tmp_path: Path, capsys) -> None:
    model, text = str(single.path), "chip robot code"
    pred = single.predict([text])[0]
    other = next(lbl for lbl in single.labels if lbl != pred)
    assert main(["explain", model, text, "--output", str(tmp_path / "a")]) == 0  # as before: the prediction
    assert heading(tmp_path / "a" / "explanation.html").startswith(f"Predicted: {pred} (")
    assert main(["explain", model, text, "--label", other, "--label", pred, "--output", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert heading(tmp_path / "b" / f"explanation_{other}.html").startswith(f"Class explained: {other} (")
    assert heading(tmp_path / "b" / f"explanation_{other}.html").endswith("not the prediction)")
    assert heading(tmp_path / "b" / f"explanation_{pred}.html").startswith(f"Predicted: {pred} (")
    assert main(["explain", model, text, "--label", "weather", "--output", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "unknown label 'weather': this model's labels are money, sports, tech" in err
    assert not (tmp_path / "c").exists()  # nothing written


def test_server_explain_label(multilabel_classifier: Classifier) -> None:
    clf = multilabel_classifier
    with TestClient(create_app(clf)) as client:
        default = client.post("/v1/explain", json={"text": TWO, "methods": ["gradient"]})
        tech = client.post("/v1/explain", json={"text": TWO, "methods": ["gradient"], "label": "tech"})
        bad = client.post("/v1/explain", json={"text": TWO, "label": "weather"})
    assert default.status_code == 200 and tech.status_code == 200, (default.text, tech.text)
    top = clf.labels[int(np.argmax(clf.predict_proba([TWO])[0]))]
    assert default.json()["label"] == top and default.json()["predicted"] == ["money", "sports"]
    assert tech.json()["label"] == "tech" and tech.json()["predicted"] == ["money", "sports"]
    np.testing.assert_allclose(tech.json()["importance"]["gradient"], ig(clf, TWO, "tech"), atol=1e-6)
    assert bad.status_code == 422
    assert "unknown label 'weather': this model's labels are money, sports, tech" in bad.json()["error"]["message"]
