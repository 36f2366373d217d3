"""The shipped FER2013 model is the model card's, answers with probabilities, and reads the
expressions of synthetic faces it never saw."""

from __future__ import annotations

import numpy as np

from ferops.inference.runtime import load_classifier
from ferops.models.shipped import ACCURATE, FAST, MODEL_CARD


def test_the_shipped_model_is_the_card_s_and_answers_with_probabilities(tiny_faceset):
    classifier = load_classifier(ACCURATE.verified())
    assert classifier.preprocessing.contrast == "clahe"  # from the sidecar, as trained
    faces = tiny_faceset["test"].x[:8]
    probabilities = classifier.probabilities(faces)
    assert probabilities.shape == (8, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probabilities, classifier.probabilities(faces))  # no dropout
    assert MODEL_CARD.read_text().count(ACCURATE.sha256) == 1


def test_it_reads_the_synthetic_faces_expressions_it_never_saw():
    """Trained on FER2013 photos only, it still calls the generator's open-mouthed faces
    surprised and finds its smiles happier than its neutral faces: a check on the whole path
    (sidecar contrast, input layout, class order) that any broken step would fail."""
    from ferops.data.synthetic import balanced_labels, generate_faces
    from ferops.kernel.emotions import EMOTIONS

    rng = np.random.default_rng(0)
    labels = balanced_labels(30, rng=rng)
    faces = generate_faces(labels, rng=rng)
    probabilities = load_classifier(ACCURATE.verified()).probabilities(faces)
    happy, surprise, neutral = (EMOTIONS.index(e) for e in ("happy", "surprise", "neutral"))
    said = probabilities.argmax(axis=1)
    assert np.mean(said[labels == surprise] == surprise) > 0.8  # chance: 1/7
    smiles, calm = probabilities[labels == happy], probabilities[labels == neutral]
    assert smiles[:, happy].mean() > 2 * calm[:, happy].mean()


def test_the_fast_model_is_the_card_s_int8_onnx_file_and_answers_like_the_accurate_one(
    tiny_faceset,
):
    import onnx

    from ferops.inference.resolve import resolve_model
    from ferops.inference.runtime import open_classifier

    files = resolve_model("fast", layout=None, register=None)
    assert files.onnx == FAST.verified() and files.keras is None
    fast = open_classifier(files)
    assert fast.runtime == "onnx" and fast.preprocessing.contrast == "clahe"
    nodes = {node.op_type for node in onnx.load(files.onnx).graph.node}
    assert "QuantizeLinear" in nodes  # int8, as the card says
    faces = tiny_faceset["test"].x[:8]
    probabilities = fast.probabilities(faces)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    card = MODEL_CARD.read_text()
    assert card.count(FAST.sha256) == 1
