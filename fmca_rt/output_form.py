"""How a classifier's outputs become P(fake): the `output` entry of a model's metadata config.

    "softmax"  (FMCA-Net's form, and every schema-1 artifact): one logit per class name, P(fake) is the
               softmax column of the class named "fake" (in any position: (fake, real) models work as is).
    "sigmoid"  one logit; P(positive class) = sigmoid(logit), and `positive` names which class that is
               ("fake" when a large logit means fake, "real" when it means real).

Downstream code (the calibration's temperature, operating points, training.calibrate) works on softmax
logits; `softmax_logits` gives a sigmoid logit z that form as the pair (0, z), whose softmax column of the
positive class is sigmoid(z), and sigmoid(z / T) with a temperature T: one calibration for both forms.
Needs only numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SOFTMAX, SIGMOID = "softmax", "sigmoid"
OUTPUT_FORMS = (SOFTMAX, SIGMOID)


@dataclass(frozen=True)
class OutputForm:
    kind: str = SOFTMAX
    class_names: tuple[str, ...] = ("real", "fake")
    positive: str | None = None  # sigmoid only: the class a large logit means

    @classmethod
    def from_config(cls, config: dict) -> "OutputForm":
        """The form a metadata config states; a config without an `output` entry is softmax (schema 1)."""
        output = config.get("output") or {"form": SOFTMAX}
        return cls(output["form"], tuple(config["class_names"]), output.get("positive"))

    def to_config(self) -> dict:
        return {"form": self.kind} if self.kind == SOFTMAX else {"form": self.kind, "positive": self.positive}

    @property
    def width(self) -> int:
        """How many numbers the model outputs per face."""
        return 1 if self.kind == SIGMOID else len(self.class_names)

    @property
    def fake_index(self) -> int:
        """The column of P(fake) in `softmax_logits`."""
        if self.kind == SIGMOID:
            return 1 if self.positive == "fake" else 0
        names = list(self.class_names)
        return names.index("fake") if "fake" in names else len(names) - 1

    def softmax_logits(self, outputs: np.ndarray) -> np.ndarray:
        """B x width model outputs -> B x C logits whose softmax column `fake_index` is P(fake)."""
        outputs = np.asarray(outputs)
        if self.kind == SIGMOID:
            return np.concatenate([np.zeros_like(outputs[:, :1]), outputs[:, :1]], axis=1)
        return outputs

    def fake_probability(self, outputs: np.ndarray) -> np.ndarray:
        """Uncalibrated P(fake) (temperature 1) of B x width outputs, in float64."""
        logits = self.softmax_logits(np.asarray(outputs, dtype=np.float64))
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp[:, self.fake_index] / exp.sum(axis=1)

    def problems(self) -> list[str]:
        """What makes this form unusable (empty when it is usable)."""
        names = list(self.class_names)
        if self.kind not in OUTPUT_FORMS:
            return [f"output form {self.kind!r} is not one of {', '.join(OUTPUT_FORMS)}"]
        if self.kind == SIGMOID:
            if len(names) != 2 or "real" not in names:
                return [f"a sigmoid output needs the classes 'real' and 'fake', not {names!r}"]
            if self.positive not in ("real", "fake"):
                return [f"a sigmoid output's positive class must be 'real' or 'fake', not {self.positive!r}"]
        return []
