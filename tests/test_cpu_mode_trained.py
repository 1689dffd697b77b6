"""The CPU mode on a trained model: every form it may choose, checked against PyTorch float32 (an engine it
does not use), on its own check crops and on held-out labelled crops it never saw, whose P(fake) spans [0, 1].

An untrained model scores every face near 0.5, where any small logit error shows but nothing structured
happens; a trained one has the larger, structured activations that quantization meets in use.
"""

import importlib.util

import numpy as np
import pytest

from fmca_rt.backends import cpu_mode
from fmca_rt.backends.cpu_mode import FORMS, CpuBackend
from fmca_rt.backends.cpu_profile import ACCURACY_BOUND, FLOAT_FORM, batched_logits
from fmca_rt.backends.torch import TorchBackend
from fmca_rt.bench.accuracy import compare_outputs
from fmca_rt.preprocess import preprocess

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytest.importorskip("skimage")

@pytest.fixture(scope="module")
def chosen(demo_onnx, cpu_mode_cache):
    """The CPU mode on the session's trained model (tests/demo_model.py), its cache shared with the other tests."""
    backend = CpuBackend(demo_onnx, cache_dir=cpu_mode_cache).activate()
    yield backend, cpu_mode_cache
    backend.deactivate()


def torch_logits(checkpoint, pixels):
    with TorchBackend(checkpoint, device="cpu") as backend:
        return backend.infer(pixels)


def pixels_of(crops, metadata):
    return preprocess(crops, metadata.image_size, metadata.mean, metadata.std, metadata.preprocessing)


def test_the_chosen_form_keeps_the_bound_against_pytorch_where_p_fake_spans_both_classes(demo_model, chosen,
                                                                                        held_out):
    backend, _ = chosen
    assert demo_model.summary["best_score"] > 0.8, "the demo model did not learn (validation AUC): the check means nothing"
    pixels = pixels_of(held_out.crops, backend.metadata)
    reference = torch_logits(demo_model.checkpoint, pixels)
    p_fake = np.exp(reference[:, 1]) / np.exp(reference).sum(axis=1)
    assert p_fake.min() < 0.1 and p_fake.max() > 0.9 and ((p_fake > 0.2) & (p_fake < 0.8)).sum() >= 3
    delta = compare_outputs(reference, backend.infer(pixels), fake_index=1)
    assert delta["max_abs_fake_prob_diff"] <= ACCURACY_BOUND, backend.describe()
    assert backend.profile.chosen in (*FORMS, FLOAT_FORM) and "chosen on this machine" in backend.describe()


def test_each_measured_form_s_delta_is_what_pytorch_says(demo_model, chosen):
    """The profile's accuracy figures, recomputed against PyTorch for every form it measured (in calls of the
    same size as the profile's check: ONNX Runtime's dynamic INT8 depends a little on which crops share a call)."""
    backend, cache = chosen
    crops, _ = cpu_mode.face_crops()
    pixels = pixels_of(crops, backend.metadata)
    reference = torch_logits(demo_model.checkpoint, pixels)
    measured = set(backend.profile.forms)
    have_openvino = all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf"))
    assert measured >= ({"onnxruntime-int8", "openvino-int8"} if have_openvino else {"onnxruntime-int8"})
    assert len(backend.profile.notes) == len(set(FORMS) - measured)  # each form left out says why
    for form, measured in backend.profile.forms.items():
        with CpuBackend(backend.model_path, cache_dir=cache, form=form) as other:
            delta = compare_outputs(reference, batched_logits(other, pixels), fake_index=1)["max_abs_fake_prob_diff"]
        assert delta == pytest.approx(measured.max_abs_fake_prob_diff, abs=1e-4), form
        assert measured.eligible == (measured.max_abs_fake_prob_diff <= ACCURACY_BOUND)


def test_a_second_start_reads_the_stored_profile_instead_of_measuring(chosen, monkeypatch):
    backend, cache = chosen

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again although a profile for this machine is stored")

    monkeypatch.setattr(cpu_mode, "measure", no_measuring)
    with CpuBackend(backend.model_path, cache_dir=cache) as again:
        assert again.profile == backend.profile and again.describe() == backend.describe()
