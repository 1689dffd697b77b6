"""Issue 10's acceptance on a demo model: its occlusion map of a self-blended fake lies in the blended region.

The session's trained test model (tests/demo_model.py: `make demo`'s recipe at 112 px on 128 images per
class) is used. Its fakes are self-blends whose source is sharpened, the kind of evidence a blur fill removes;
fakes whose evidence is a color cast or missing detail are flagged by comparison with the rest of the face,
which an occlusion map cannot localize (README, "Operating points and explanations").
"""

import numpy as np

from training.explanation_check import check_face, real_faces
from training.model import FMCANet


def test_occlusion_heat_of_sharpened_self_blends_lies_in_the_blended_region(demo_model):
    assert demo_model.summary["best_score"] > 0.8, "the demo model did not learn (validation AUC), so the check means nothing"
    model = FMCANet.from_checkpoint(demo_model.checkpoint).eval()
    faces = real_faces(str(demo_model.data), "valid", 8)
    rows = [check_face(model, rgb, seed, fakes="demo", change="sharpen") for seed, (_, rgb) in enumerate(faces)]
    heat_inside = np.array([row["heat_in_changed"] for row in rows])
    area = np.array([row["area_of_changed"] for row in rows])
    # Measured over training seeds 0-3: mean share inside 0.77-0.98, more inside than outside on 7-8 of 8 faces.
    assert heat_inside.mean() > 0.65 and (heat_inside > 0.5).sum() >= 6  # more heat inside than outside
    assert (heat_inside > area).sum() >= 6  # and more than a map blind to the region would put there
