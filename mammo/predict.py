"""``Predictor``: thread-safe inference on a model folder; probabilities and heat map in one pass.

The probabilities of a calibrated model (``mammo.head`` in its config) are its calibrated ones.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .choices import DEFAULT_METHOD, DEFAULT_OPACITY, GRAD_CAM, HEATMAP_METHODS, LESION_MAP
from .errors import BadRequest
from .explain import has_linear_head, one_pass_cam, overlay, package_cam, within_cells
from .film import MIRROR_DIMS
from .fingerprint import FilmIdentity, LearntFilms, film_fingerprint, mirrored_fingerprint
from .imaging import MIN_SIDE, decode_image, refuse_blank, sha256_of_pixels
from .metrics import flagged_malignant, malignant_films
from .model import load
from .preprocess import (
    BreastMask,
    Geometry,
    PreprocessConfig,
    find_breast,
    fit_within,
    prepare,
    resize,
    to_original,
    to_tensor,
    whole_film_doubt,
)
from .runtime import onnx_backbone
from .values import echoed

__all__ = ["Prediction", "Predictor", "mirror_average", "ImageSource", "LoadedImage", "load_image",
           "cut_off_record", "DISPLAY_SIDE", "OVERLAY_FORMAT"]

ImageSource = str | os.PathLike | bytes | np.ndarray
# Predictions are drawn at display size: a 12-30 MP film is scaled to this longer side once, right
# after decoding; the model input and the heat map come from that copy. The full-resolution heat
# map is made on request (Prediction.full_heatmap).
DISPLAY_SIDE = 2048
OVERLAY_FORMAT = "jpeg"  # how the app sends overlays (a 2048 px PNG is ~10x the bytes and time)

torch.set_flush_denormal(True)  # denormals made one measurement here 50x slower


@dataclass(frozen=True)
class LoadedImage:
    """An image decoded once: its pixels at display size, its original (height, width), the SHA-256
    of its original pixels (``imaging.sha256_of_pixels``, as the case store hashes), its breast
    mask (found once, for the crop and the not-like-a-film check), its perceptual fingerprints
    (of the mask's copy, as it is and mirrored: :mod:`mammo.fingerprint`) and the share of its
    file's pixels in colour."""

    grey: np.ndarray
    shape: tuple[int, int]
    sha256: str
    breast: BreastMask = field(compare=False, repr=False)
    fingerprint: str = field(compare=False)
    coloured: float = field(default=0.0, compare=False)
    mirrored: str | None = field(default=None, compare=False)

    @property
    def identity(self) -> FilmIdentity:
        """What recognises its film (a copy of it at another size or encoding, or mirrored, too)."""
        return FilmIdentity(self.sha256, self.fingerprint, self.mirrored)


def load_image(image: ImageSource | LoadedImage, max_bytes: int | None = None,
               min_side: int = MIN_SIDE) -> LoadedImage:
    """Decode a file, bytes or grey array once and scale it to display size; a blank file is refused."""
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, np.ndarray):
        grey, coloured = image, 0.0
    else:
        grey, coloured = decode_image(image, max_bytes=max_bytes, min_side=min_side)
        refuse_blank(grey)  # a file with nothing to read (a stored case's may be read back: see the store)
    shown = fit_within(grey, DISPLAY_SIDE)
    breast = find_breast(shown)
    return LoadedImage(shown, grey.shape, sha256_of_pixels(grey), breast, film_fingerprint(breast.small),
                       coloured, mirrored_fingerprint(breast.small))


def cut_off_record(mammo: Mapping[str, Any]) -> dict | None:
    """How a model's review cut-off was set and what its flag did on held-out patients, from its
    config's ``mammo`` record: ``set_on`` is "out of fold" (cross-validation), "validation", or
    "validation it had learnt" (validation films the weights it was retrained from had trained on, so
    the cut-off is optimistic; "validation it may have learnt" when those weights record no list);
    ``held_out_flagged`` of ``held_out_malignant`` malignant held-out films
    were flagged (None when it records no held-out set). None when it records no cut-off."""
    if mammo.get("threshold") is None:
        return None
    rule = mammo.get("threshold_rule") or ""
    data = mammo.get("data") or {}
    seen = data.get("val_learnt_by_init", 0)  # None: the weights it started from record no list
    set_on = ("out of fold" if "out-of-fold" in rule else "validation it may have learnt" if seen is None
              else "validation it had learnt" if seen else "validation")
    metrics = mammo.get("metrics") or {}
    flagged = flagged_malignant(metrics) if (mammo.get("split") or {}).get("name") == "holdout" else None
    return {"set_on": set_on, "held_out_flagged": flagged,
            "held_out_malignant": None if flagged is None else malignant_films(metrics)}


@dataclass(frozen=True)
class Prediction:
    """One image's result. ``heatmap`` and ``overlay`` are at display size (the input's size when
    its longer side is at most DISPLAY_SIDE); ``image_shape`` is the input's (height, width)."""

    probabilities: dict[str, float]
    label: str
    malignancy: float | None  # P(malignant), None when the model has no malignant class
    above_threshold: bool | None  # malignancy >= the model's operating threshold
    threshold: float | None
    heatmap: np.ndarray | None
    overlay: np.ndarray | None
    model_version: str
    method: str | None
    calibrated: bool = False
    image_sha256: str | None = None  # of the pixels (``imaging.sha256_of_pixels``)
    in_training_data: bool | None = None  # None: the model records no training images
    stored_case: str | None = None  # the case store's id for these pixels, when the service knows one
    stored_label: str | None = None  # that case's confirmed label
    film_doubt: str | None = None  # why the image does not look like a whole-breast film (None: it does)
    image_shape: tuple[int, int] | None = None
    uncertainty: float | None = None  # test-time flip spread, 0-100 (see Predictor)
    cut_off: dict | None = None  # how the threshold was set (:func:`cut_off_record`)

    def full_heatmap(self) -> np.ndarray | None:
        """The heat map at the input's full resolution (it is smooth: scaled up from display size)."""
        if self.heatmap is None or self.image_shape is None or self.heatmap.shape == self.image_shape:
            return self.heatmap
        return np.clip(resize(self.heatmap, self.image_shape), 0, 1)

    def details(self) -> dict:
        """JSON-safe summary (no arrays), full precision.

        ``malignancy_score`` and ``threshold`` share one scale, 0-100 (100 x P(malignant));
        ``probabilities`` are 0-1, as ``gr.Label`` takes them.
        """
        return {
            "model_version": self.model_version,
            "label": self.label,
            "probabilities": self.probabilities,
            "malignancy_score": _percent(self.malignancy),
            "threshold": _percent(self.threshold),
            "above_threshold": self.above_threshold,
            "cut_off": self.cut_off,
            "heatmap_method": self.method,
            "calibrated": self.calibrated,
            "image_sha256": self.image_sha256,
            "in_training_data": self.in_training_data,
            "stored_case": self.stored_case,
            "stored_label": self.stored_label,
            "not_like_a_film": self.film_doubt,
            "uncertainty": None if self.uncertainty is None else {
                "spread": self.uncertainty, "high": self.uncertainty >= HIGH_UNCERTAINTY,
                "method": UNCERTAINTY_METHOD},
        }


def _percent(probability: float | None) -> float | None:
    return None if probability is None else 100 * probability


# Uncertainty: the film is scored again upside down (a vertical flip: the breast stays on the left);
# the spread is the largest difference between the two class probabilities, in points of 100.
# Measured (scripts/compare_predict_cost.py): one more forward pass without a heat map. The
# served models have no dropout, so MC-dropout would have nothing to sample.
UNCERTAINTY_METHOD = ("test-time flip: largest difference between the class probabilities of the "
                      "film and of its vertical mirror image, 0-100")
HIGH_UNCERTAINTY = 10.0  # points: the two views disagree by at least this much


def mirror_average(own: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """Class probabilities of the mean of two calibrated logit rows, from their probabilities (the
    calibration is linear: the same as calibrating the mean of the two films' scores)."""
    logits = (np.log(np.clip(own, 1e-12, None)) + np.log(np.clip(mirrored, 1e-12, None))) / 2
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class Predictor:
    """Loads a model folder once; ``predict``/``predict_many`` may be called from many threads.

    Args:
        model_dir: a model folder (``model.safetensors`` + ``config.json``).
        uncertainty: also score each film's vertical mirror image for the uncertainty spread.
        fast: run the backbone through ONNX Runtime (:mod:`mammo.runtime`) where it matches PyTorch.
    """

    def __init__(self, model_dir: Path, uncertainty: bool = True, fast: bool = True) -> None:
        self.model_dir = Path(model_dir)
        self.uncertainty = uncertainty
        self.model, self.config = load(self.model_dir)
        # channels-last convolutions (PyTorch: 175 -> 106 ms for v2's 512 px forward pass on one CPU
        # thread); Grad-CAM and any model ONNX Runtime cannot serve run here
        self.model = self.model.to(memory_format=torch.channels_last)
        mammo = self.config.get("mammo", {})
        self.version: str = mammo.get("version") or self.model_dir.name
        self.labels: list[str] = list(self.config["label_names"])
        self.threshold: float | None = mammo.get("threshold")
        self.cut_off = cut_off_record(mammo)
        self.preprocess = PreprocessConfig.from_dict(mammo.get("preprocess", {}))
        # the smallest image side it reads: lowered for models of 28 px benchmark images
        self.min_side = int((mammo.get("preprocess") or {}).get("min_side", MIN_SIDE))
        cfg = self.config["pretrained_cfg"]
        self.mean, self.std = tuple(cfg["mean"]), tuple(cfg["std"])
        self._malignant = self.labels.index("malignant") if "malignant" in self.labels else None
        self._one_pass = has_linear_head(self.model)
        self.has_lesion_map: bool = bool(getattr(self.model, "has_lesion_map", False))
        self.calibrated: bool = bool((mammo.get("head") or {}).get("weight"))
        self._cam_lock = threading.Lock()  # pytorch_grad_cam registers hooks on the shared model
        data = mammo.get("data") or {}
        # the films it trained (and validated) on; None when it records none
        self.learnt: LearntFilms | None = LearntFilms(data) if data.get("image_sha256") is not None else None
        self._onnx = onnx_backbone(self.model, self._example_input()) if fast else None
        # test-time mirror averaging the model was cross-validated with (None: the film as it is)
        self.mirror: str | None = getattr(getattr(self.model, "head", None), "mirror", None)

    def learnt_from(self, film: FilmIdentity) -> bool | None:
        """Whether the model trained or validated on this film (its very pixels, or a copy of it at another
        size or encoding, or mirrored); None when it records no training films."""
        return None if self.learnt is None else self.learnt.holds(*film)

    def _example_input(self) -> torch.Tensor:
        """A prepared input of this model's shape (random pixels), to export and check it on."""
        side = self.preprocess.image_size
        return self.prepare(np.random.default_rng(0).random((side, side), dtype=np.float32))[0]

    @property
    def runtime(self) -> str:
        """What runs the backbone: "onnxruntime" or "pytorch"."""
        return "onnxruntime" if self._onnx is not None else "pytorch"

    def drawn_method(self, method: str | None) -> str | None:
        """The heat-map method drawn when ``method`` is asked for: Grad-CAM for a Lesion map on a model
        without one (not of the patch recipe)."""
        return GRAD_CAM if method == LESION_MAP and not self.has_lesion_map else method

    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        return self._onnx(batch) if self._onnx is not None else self.model.forward_features(batch)

    def _scored(self, batch: torch.Tensor) -> tuple[np.ndarray, torch.Tensor | None, torch.Tensor]:
        """Class probabilities (N, C) of prepared inputs, the positions their scores pooled (N, h, w;
        None: all, or a model without a breast mask) and the feature map they came from."""
        positions = getattr(self.model, "positions", None)  # a film model pools the breast only
        with torch.inference_mode():
            features = self._features(batch)
            if positions is None:
                return self.model.forward_head(features).softmax(dim=1).numpy(), None, features
            pooled = positions(batch, features)
            return self.model.forward_head(features, pooled).softmax(dim=1).numpy(), pooled, features

    def prepare(self, grey: np.ndarray, found: BreastMask | None = None) -> tuple[torch.Tensor, Geometry]:
        """A grey image as this model's normalised input tensor (1, S, S), with its geometry; ``found``:
        its breast mask, when known."""
        square, geometry = prepare(grey, self.preprocess, found)
        return to_tensor(square, self.mean, self.std), geometry

    def probabilities(self, batch: torch.Tensor) -> np.ndarray:
        """Class probabilities (N, C) for prepared inputs, no heat map."""
        return self._scored(batch)[0]

    def predict(
        self, image: ImageSource | LoadedImage, method: str = DEFAULT_METHOD, opacity: float = DEFAULT_OPACITY
    ) -> Prediction:
        """Probabilities, label, heat map and overlay for one image (path, bytes, grey array or
        an image already loaded)."""
        return self.predict_many([image], method=method, opacity=opacity)[0]

    def predict_many(
        self,
        images: Sequence[ImageSource | LoadedImage],
        method: str | None = DEFAULT_METHOD,
        opacity: float = DEFAULT_OPACITY,
    ) -> list[Prediction]:
        """Batched prediction; ``method=None`` skips heat maps.

        ``Lesion map`` on a model without one (not of the patch recipe) gives Grad-CAM; the
        result's ``method`` says which map was drawn.
        """
        if method is not None and method not in HEATMAP_METHODS:
            raise BadRequest(f"Unknown heat-map method {echoed(method)}; choose one of "
                             f"{', '.join(HEATMAP_METHODS)}.")
        method = self.drawn_method(method)
        loaded = [load_image(image, min_side=self.min_side) for image in images]
        prepared = [self.prepare(image.grey, image.breast) for image in loaded]
        batch = torch.stack([tensor for tensor, _ in prepared])
        mirrored: dict[str, np.ndarray] = {}  # the mirror images' probabilities, by axis, each scored once

        def mirror_probabilities(axis: str) -> np.ndarray:
            if axis not in mirrored:
                flipped = batch.flip(dims=[MIRROR_DIMS[axis]]).contiguous(memory_format=torch.channels_last)
                mirrored[axis] = self.probabilities(flipped)
            return mirrored[axis]

        mirror = None if self.mirror is None else mirror_probabilities(self.mirror)
        own, cams = self._forward(batch, method, mirror)
        cam_list = [None] * len(loaded) if cams is None else list(cams)
        probs = own if mirror is None else mirror_average(own, mirror)
        spreads: list[float | None] = [None] * len(loaded)
        if self.uncertainty:
            spreads = (100 * np.abs(mirror_probabilities("vertical") - own).max(axis=1)).tolist()
        return [
            self._result(image, geometry, row, cam, method, opacity, spread)
            for image, (_, geometry), row, cam, spread in zip(loaded, prepared, probs, cam_list, spreads,
                                                             strict=True)
        ]

    def _forward(self, batch: torch.Tensor, method: str | None,
                 mirrored: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The films' own probabilities and CAMs; Grad-CAM on a linear head comes from the same
        forward pass. With ``mirrored`` (a mirror-averaged model's mirror images) the CAM explains the
        class shown, that of the averaged probabilities."""
        size = tuple(batch.shape[-2:])
        batch = batch.contiguous(memory_format=torch.channels_last)
        if method == LESION_MAP:
            probs, pooled, features = self._scored(batch)
            with torch.inference_mode():
                lesion = self.model.lesion_map(features, pooled)[:, None]  # what the score pools
                heat = F.interpolate(lesion, size=size, mode="bilinear", align_corners=False)[:, 0]
            return probs, heat.clamp(0, 1).numpy()
        if method == GRAD_CAM and self._one_pass:
            with torch.inference_mode():
                features = self._features(batch)
                logits = self.model.forward_head(features)
                top = logits.argmax(dim=1)
                cams = one_pass_cam(features, self.model.get_classifier(), top, size)
            return logits.softmax(dim=1).numpy(), cams
        probs, pooled, _ = self._scored(batch)
        if method is None:
            return probs, None
        shown = probs if mirrored is None else mirror_average(probs, mirrored)
        with self._cam_lock:
            cams = package_cam(self.model, batch, shown.argmax(axis=1).tolist(), method)
        # a film model's score reads only the cells of its pooled positions' windows: a CAM elsewhere
        # (the film's edge, the background) would draw evidence the model never used
        return probs, cams if pooled is None else within_cells(cams, self.model.read_cells(pooled))

    def _result(
        self,
        image: LoadedImage,
        geometry: Geometry,
        probs: np.ndarray,
        cam: np.ndarray | None,
        method: str | None,
        opacity: float,
        spread: float | None = None,
    ) -> Prediction:
        malignancy = None if self._malignant is None else float(probs[self._malignant])
        above = None
        if malignancy is not None and self.threshold is not None:
            above = malignancy >= self.threshold
        heat = None if cam is None else to_original(cam, geometry, image.grey.shape)
        return Prediction(
            probabilities={label: float(p) for label, p in zip(self.labels, probs, strict=True)},
            label=self.labels[int(np.argmax(probs))],
            malignancy=malignancy,
            above_threshold=above,
            threshold=self.threshold,
            cut_off=self.cut_off,
            heatmap=heat,
            overlay=None if heat is None else overlay(image.grey, heat, opacity),
            model_version=self.version,
            method=method if cam is not None else None,
            calibrated=self.calibrated,
            image_sha256=image.sha256,
            in_training_data=self.learnt_from(image.identity),
            image_shape=tuple(image.shape),
            uncertainty=spread,
            film_doubt=whole_film_doubt(image.grey, image.breast, image.coloured),
        )
