"""The words and figures the app's pages use, in plain words for clinicians and students."""

from __future__ import annotations

__all__ = ["GLOSSARY", "glossary_markdown"]

# term -> what it means here; in the order a visitor meets them (Predict, Retrain, Analytics, Models)
GLOSSARY: dict[str, str] = {
    "Malignancy score": "the model's probability (0-100%) that the film shows a malignant lesion. When "
    "it is calibrated, of 100 films scored about 30%, about 30 were malignant in the data it was "
    "calibrated on. Those data hold far more malignant films than a screening population, so at "
    "screening the same score means a much lower chance. It is not a diagnosis.",
    "Review cut-off and flag": "a film is flagged for review when its malignancy score is at or above "
    "the cut-off. The cut-off is set to catch 90% of the malignant films of cross-validation or "
    "validation patients (a retrained model's validation patients may be ones the model it started from "
    "had learnt, which makes its cut-off optimistic); Predict says which, and how many malignant films "
    "of the held-out patients the flag caught. Most flagged films are still not malignant.",
    "Uncertainty": "how far the class probabilities move when the film is scored again upside down "
    "(its vertical mirror image), in percentage points; 10 points or more is called high: the model "
    "is unsure.",
    "Heat map (Lesion map, Grad-CAM)": "where in the image the model's evidence lies. The Lesion map "
    "is the model's probability that each patch of tissue holds a lesion; Grad-CAM and its variants show "
    "what drove the most likely class. Neither outlines a lesion.",
    "AUC": "the chance that the model scores a randomly chosen malignant film above a randomly chosen "
    "other film (malignant-vs-rest): 0.5 is chance, 1.0 is perfect ranking. It says nothing about the "
    "cut-off. A macro or mean AUC averages the same figure over the classes, each against the rest.",
    "95% CI": "a range that, measured this way, holds the true figure 95 times in 100; it comes from "
    "resampling whole patients, a woman's films together (\"by patient\"; the intervals v1 to v3 "
    "recorded resampled the films one by one). A wide range means the figure rests on few films and "
    "is not yet known well.",
    "Cross-validation (CV)": "the patients are split into five groups; each group is scored by a model "
    "trained on the other four, so every film is scored by a model that never saw its patient. "
    "The fairest estimate here for patients the model has not seen.",
    "Out of fold": "the cross-validation's figures: every film scored by the fold's model that did not "
    "train on its patient, pooled over all films.",
    "Holdout and recorded split": "films of patients set aside and never trained on; a version "
    "records which patients went to training, validation and holdout (its split), and the promotion "
    "gate compares the served version and a retrained candidate on the same holdout films.",
    "Validation and epoch": "an epoch is one pass over the training films; the validation films "
    "(other patients) choose the best epoch and, in a retrain, fit the calibration and the cut-off, "
    "so figures on them are optimistic.",
    "Candidate": "the model a retrain makes; it is served only if the promotion gate passes it.",
    "Optimistic": "a figure measured on the same films that chose something (the training epoch, the "
    "cut-off, the calibration): it flatters the model.",
    "Promotion gate": "a retrained candidate is served only when it is no worse than the served version "
    "on the holdout (by the gate's metric and tolerance) and its review flag misses at most one more "
    "of the holdout's malignant films (5% on a larger holdout); otherwise it is kept as a rejected "
    "candidate and the served version stays.",
    "Calibration and ECE": "a model is calibrated when its scores match how often films scored like "
    "that are malignant. ECE (expected calibration error) is the average gap, in probability: 0 is "
    "perfect; the reliability plot draws it.",
    "Sensitivity and specificity": "sensitivity: the share of malignant films that were flagged; "
    "specificity: the share of other films that were not.",
    "Abnormal-vs-normal AUC": "the AUC of telling films with any finding (benign or malignant) from "
    "normal ones.",
    "Baseline": "a simple model (logistic regression on a small thumbnail, an intensity histogram and "
    "texture statistics) scored on the same films: what the neural network adds is the difference.",
    "Balanced accuracy": "the average, over the classes, of the share of each class's films given that "
    "class as most likely: a model that always says 'normal' scores 33%, not the share of normal films.",
    "Precision, recall, F1, support": "per class: precision is the share of the films given that "
    "class as most likely that had it, recall the share of its films given it, F1 their harmonic "
    "mean, support how many films had it.",
    "p50 and p95": "the median time (half the predictions took less) and the time 95 of 100 "
    "predictions took less than.",
    "Base data": "the public films the packaged model learnt from (mini-MIAS); a retrain trains on "
    "them and on the submitted cases. A case whose image is a base film, or a copy of one at another "
    "size or saved again, is left out of training, as its receipt and the retrain's report say. The "
    "count charts go by the very pixels: they count a case with a base film's pixels as 'cases of base "
    "films (left out)', and a copy at another size as an ordinary submitted case, though a retrain leaves "
    "it out.",
    "SHA-256 of the pixels and fingerprint": "the SHA-256 of an image's pixels recognises the very same "
    "pixels without keeping the image. A copy at another size or saved again has other pixels, so a "
    "perceptual fingerprint (256 bits of the film's coarse pattern) also recognises copies of the films "
    "a model learnt from and of the base data: in Predict's note, receipts and retrains. The duplicate "
    "check and the count charts go by the pixels alone.",
    "Corrected and withdrawn cases": "a stored case's label can be corrected, and a case that should "
    "not be in the dataset (an identifier in the image, the wrong image, consent withdrawn) can be "
    "withdrawn: it is then left out of the counts, the lists and every retrain, but its image stays "
    "in the dataset's files until a maintainer erases it. Both are audited.",
}


def glossary_markdown() -> str:
    """The glossary as a Markdown list, one term per line."""
    return "\n".join(f"- **{term}**: {meaning}" for term, meaning in GLOSSARY.items())
