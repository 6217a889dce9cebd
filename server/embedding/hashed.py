"""A deterministic embedder for tests and offline checks: hashed bag of words, no model weights."""

import hashlib
import math
import re
from collections.abc import Sequence

_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    """Bag of words hashed into 384 signed buckets, normalized: texts sharing words embed close together.

    A real, deterministic :class:`~debrief.server.embedding.embedder.Embedder` (not a mock), fast enough for
    property and multi-process tests; it knows no meaning beyond shared words.
    """

    def __init__(self, dimension: int = 384, name: str = "test-hashed-bag-of-words") -> None:
        self._dimension = dimension
        self._name = name

    @property
    def name(self) -> str:
        """The embedder's name, recorded with every collection."""
        return self._name

    @property
    def dimension(self) -> int:
        """Length of every vector."""
        return self._dimension

    def vector(self, text: str) -> list[float]:
        """The unit vector of one text."""
        vector = [0.0] * self._dimension
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self._dimension
            vector[index] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in vector))
        if norm == 0.0:
            vector[0], norm = 1.0, 1.0
        return [x / norm for x in vector]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for ``texts``, in order."""
        return [self.vector(text) for text in texts]
