"""A film's perceptual fingerprint: the same film rescaled or re-encoded matches, another film does not.

The pixel hash (``imaging.sha256_of_pixels``) recognises only the very same pixels. A mini-MIAS film
at 512 px and at 1024 px, or saved again as JPEG, has other pixels: so a model's training film
uploaded at another size would be scored as if the model had never seen it (an optimistic score
shown as an honest one), and a submitted case that is a held-out film at another size would be
trained on and then judged on. The fingerprint is imagehash's perceptual hash (the low frequencies of
the film's discrete cosine transform, 256 bits) of the film's 256 px copy (``preprocess.small_copy``,
the copy its breast mask is found on). Measured on the 258 mini-MIAS films here: a film and its copy
at the other resolution, as 16-bit PNG or as JPEG (quality 60, resized) lie at most 4 bits apart; two
different films at least 44 (the eight CBIS-DDSM films at least 90 from each other and from any
mini-MIAS film). A copy is therefore one within :data:`MATCH_BITS`: loose enough for a copy whose
contrast was also changed (a brightness/contrast change of 20%: 0-12 bits), tight enough that the
same breast imaged again is not (the film shifted by 8 px, 1.6 mm: 14-38 bits; rotated 2 degrees:
12-50). A crop or a rotation of a film is not recognised as it. A mirror image is, by the fingerprint
of the image's own mirror (:class:`FilmIdentity`'s ``mirrored``): films are commonly shown mirrored,
and preprocessing turns every film to face one way, so a mirrored film is the very same input to a
model. On the 258 mini-MIAS films a film lies at least 38 bits from the mirror image of any other
(the other breast of the same woman included), 114 from its own. The pixels that a
small edit changes barely move the hash: a 12 mm bright disc painted onto a film leaves it 6-26 bits
from the original, so an edited copy can be taken for the film it was made from.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

import imagehash
import numpy as np
from PIL import Image

__all__ = ["HASH_SIZE", "MATCH_BITS", "film_fingerprint", "mirrored_fingerprint", "is_fingerprint",
           "bits_apart", "Fingerprints", "FilmIdentity", "KnownFilms", "LearntFilms"]

log = logging.getLogger(__name__)

HASH_SIZE = 16  # a 16 x 16 DCT block: 256 bits, 64 hex digits
_BYTES = HASH_SIZE ** 2 // 8
_WORDS = _BYTES // 8
MATCH_BITS = 16  # at most this many of the 256 bits apart: the same film (see above)


def film_fingerprint(small: np.ndarray) -> str:
    """The perceptual hash (64 hex digits) of a film's 256 px grey copy in ``[0, 1]``
    (``preprocess.small_copy(grey)``, or ``find_breast(grey).small``)."""
    pixels = np.clip(np.asarray(small, dtype=np.float32) * 255 + 0.5, 0, 255).astype(np.uint8)
    return str(imagehash.phash(Image.fromarray(pixels), hash_size=HASH_SIZE))


def mirrored_fingerprint(small: np.ndarray) -> str:
    """The fingerprint of the left-right mirror image of a film's 256 px copy (see
    :func:`film_fingerprint`)."""
    return film_fingerprint(np.ascontiguousarray(np.asarray(small)[:, ::-1]))


def is_fingerprint(text: object) -> bool:
    """Whether ``text`` is a fingerprint: 64 hex digits."""
    if not isinstance(text, str):
        return False
    try:
        _bytes(text)
    except ValueError:
        return False
    return True


def bits_apart(one: str, other: str) -> int:
    """How many of their 256 bits two fingerprints differ in."""
    return int(np.bitwise_count(_bytes(one) ^ _bytes(other)).sum())


Tag = TypeVar("Tag")  # what KnownFilms tells of a film


class Fingerprints:
    """The fingerprints of a set of films (a model's training films, the base data's films), to ask
    whether an image is a copy of one of them."""

    def __init__(self, fingerprints: Iterable[str]) -> None:
        hexes = list(fingerprints)
        # the films' 256 bits as four 64-bit words, one row of words per column of films: a distance to
        # every film is then four vector operations (a retrain asks it of each of 100 000 cases)
        rows = np.array([_words(h) for h in hexes], dtype=np.uint64).reshape(len(hexes), _WORDS)
        self._words = np.ascontiguousarray(rows.T)
        self._count = len(hexes)  # films held (room is kept for :meth:`add`)

    def __len__(self) -> int:
        return self._count

    def add(self, fingerprint: str) -> None:
        """One more film (room doubled as needed: adding n films costs O(n) copying)."""
        if self._count == self._words.shape[1]:
            room = np.empty((_WORDS, max(16, self._count)), np.uint64)
            self._words = np.concatenate([self._words, room], axis=1)
        self._words[:, self._count] = _words(fingerprint)
        self._count += 1

    def find(self, fingerprint: str, mirrored: str | None = None) -> int | None:
        """The index of the film ``fingerprint`` is a copy of (the nearest, within :data:`MATCH_BITS`),
        or, failing that, the film ``mirrored`` (the image's mirror image's fingerprint) is; None."""
        for query in (fingerprint, mirrored):
            if query is not None and (found := self._nearest(query)) is not None:
                return found
        return None

    def find_all(self, fingerprint: str, mirrored: str | None = None) -> list[int]:
        """The indices of every film the image of these fingerprints is a copy of (as it is or mirrored)."""
        near = np.zeros(self._count, bool)
        for query in (fingerprint, mirrored):
            if query is not None:
                near |= self._apart(query) <= MATCH_BITS
        return np.flatnonzero(near).tolist()

    def _nearest(self, fingerprint: str) -> int | None:
        if not self._count:
            return None
        apart = self._apart(fingerprint)
        nearest = int(np.argmin(apart))
        return nearest if apart[nearest] <= MATCH_BITS else None

    def _apart(self, fingerprint: str) -> np.ndarray:
        """How many bits each film lies from ``fingerprint``."""
        words = _words(fingerprint)
        apart = np.zeros(self._count, np.uint16)  # at most 256 bits apart
        for i in range(_WORDS):
            apart += np.bitwise_count(self._words[i, :self._count] ^ words[i])
        return apart


class FilmIdentity(NamedTuple):
    """What recognises a film: the hash of its very pixels (``imaging.sha256_of_pixels``), its
    fingerprint (:func:`film_fingerprint`, which a copy at another size or encoding shares) and its
    mirror image's (:func:`mirrored_fingerprint`: a mirrored copy of a film is its film too). Sets of
    films hold the first two; the mirror's is asked of them."""

    sha256: str
    fingerprint: str | None = None
    mirrored: str | None = None

    @classmethod
    def of(cls, sha256: str, small: np.ndarray) -> FilmIdentity:
        """The identity of the film of these pixels' hash and 256 px copy."""
        return cls(sha256, film_fingerprint(small), mirrored_fingerprint(small))


class KnownFilms(Generic[Tag]):
    """Films, each with a tag (its label, its part of a split, or both), recognised by their very pixels
    or, as a copy at another size or encoding, by their fingerprint."""

    def __init__(self, films: Iterable[tuple[FilmIdentity, Tag]] = ()) -> None:
        self.tag_by_hash: dict[str, Tag] = {}
        self._copies = Fingerprints(())
        self._tags: list[Tag] = []
        for identity, tag in films:
            self.add(identity, tag)

    def __len__(self) -> int:
        return len(self._tags)

    def add(self, identity: FilmIdentity, tag: Tag) -> None:
        """One more film (fingerprinted) with its tag (a film of the same pixels keeps the first's)."""
        if identity.fingerprint is None:
            raise ValueError("a known film needs its fingerprint")
        self.tag_by_hash.setdefault(identity.sha256, tag)
        self._copies.add(identity.fingerprint)
        self._tags.append(tag)

    def tags_of(self, sha256: str, fingerprint: str | None = None, mirrored: str | None = None) -> list[Tag]:
        """The tags of every film this image is (its pixels) or is a copy of (by its fingerprints), in
        the order they were added, each once."""
        same = [self.tag_by_hash[sha256]] if sha256 in self.tag_by_hash else []
        copies = self._copies.find_all(fingerprint, mirrored) if fingerprint is not None else []
        return list(dict.fromkeys([*same, *(self._tags[i] for i in copies)]))

    def tag_of(self, sha256: str, fingerprint: str | None = None, mirrored: str | None = None) -> Tag | None:
        """The tag of the film with these pixels or, failing that, of the film the image of these
        fingerprints (:class:`FilmIdentity`) is a copy of; None when it is none of them."""
        tag = self.tag_by_hash.get(sha256)
        if tag is None and fingerprint is not None and (
                copy := self._copies.find(fingerprint, mirrored)) is not None:
            tag = self._tags[copy]
        return tag


class LearntFilms:
    """The films a model learnt from (trained or validated on), as its ``config.json`` records them in
    ``mammo.data``: their pixel hashes (``image_sha256``) and fingerprints (``image_fingerprints``;
    none in models made before they were recorded, or when the list is malformed: logged, and then
    only the very pixels are recognised)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.hashes = frozenset(data.get("image_sha256") or ())
        try:
            self.copies = Fingerprints(data.get("image_fingerprints") or ())
        except (ValueError, TypeError) as error:
            log.warning("the model's recorded fingerprints are not used (%s): its films are recognised "
                        "by their pixels only", error)
            self.copies = Fingerprints(())

    def holds(self, sha256: str, fingerprint: str | None = None, mirrored: str | None = None) -> bool:
        """Whether the film of these pixels, or the film the image of these fingerprints
        (:class:`FilmIdentity`) is a copy of, is one of them."""
        copy = None if fingerprint is None else self.copies.find(fingerprint, mirrored)
        return sha256 in self.hashes or copy is not None


def _words(fingerprint: str) -> np.ndarray:
    """The four 64-bit words of a fingerprint's hex digits."""
    return _bytes(fingerprint).view(np.uint64)


def _bytes(fingerprint: str) -> np.ndarray:
    """The 32 bytes of a fingerprint's hex digits."""
    if len(fingerprint) != 2 * _BYTES:
        raise ValueError(f"a fingerprint is {2 * _BYTES} hex digits, got {len(fingerprint)!r}")
    return np.frombuffer(bytes.fromhex(fingerprint), dtype=np.uint8)
