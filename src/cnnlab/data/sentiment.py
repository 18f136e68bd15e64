"""A procedural sentiment corpus, deterministic by seed: `[opener] subject verb [negation] [intensifier] adjective
[closer]`, labelled by the adjective's polarity flipped by a negation. A window of 4-5 tokens sees both, so the
sentence CNN learns it; a bag of words cannot (logistic regression on word counts: 58 % test accuracy)."""
from __future__ import annotations

import random
from typing import Any, Optional

from .common import DataBundle
from .options import check_count
from .textsets import BINARY, Part, text_bundle, text_options
from .text import tokenize

POSITIVE = ("good", "great", "wonderful", "funny", "moving", "clever", "charming", "brilliant", "fresh", "gripping")
NEGATIVE = ("bad", "dull", "boring", "awful", "clumsy", "tedious", "bland", "messy", "silly", "weak")
SUBJECTS = ("the film", "this movie", "the plot", "the acting", "the script", "the ending", "the cast",
            "the music", "the story", "the dialogue")
VERBS = ("is", "was", "seems", "feels")
INTENSIFIERS = ("very", "really", "truly", "quite", "extremely", "remarkably")
OPENERS = ("", "honestly ,", "overall ,", "i think", "in the end ,", "to be fair ,")
CLOSERS = ("", ".", "!", "to me .", "at times .", "for a while .")


def sentence(rng: random.Random) -> "tuple[str, int]":
    """One raw sentence and its label (1 = positive)."""
    positive = rng.random() < 0.5
    adjective = rng.choice(POSITIVE if positive else NEGATIVE)
    verb = rng.choice(VERBS)
    negation = rng.choice(("", "", "not", "never", "n't"))  # two in five sentences are negated
    if negation == "n't":  # a contraction, written as people do: "wasn't", "doesn't seem"
        verb = {"is": "isn't", "was": "wasn't", "seems": "doesn't seem", "feels": "doesn't feel"}[verb]
    words = [rng.choice(OPENERS), rng.choice(SUBJECTS), verb, negation if negation != "n't" else "",
             rng.choice(INTENSIFIERS) if rng.random() < 0.5 else "", adjective, rng.choice(CLOSERS)]
    return " ".join(w for w in words if w), int(positive != bool(negation))


def corpus(n: int, seed: int) -> "tuple[list[str], list[int]]":
    """`n` sentences and labels, the same for the same seed on every platform (Python's Mersenne Twister)."""
    rng = random.Random(seed)
    pairs = [sentence(rng) for _ in range(n)]
    return [s for s, _ in pairs], [y for _, y in pairs]


def build_sentiment_synthetic(num_train: int = 2000, num_val: int = 500, num_test: int = 500, seed: int = 0,
                              state: Optional[dict] = None, **options: Any) -> DataBundle:
    """The procedural corpus as a text DataBundle (train, val, test drawn in that order from one seeded stream)."""
    for key, value in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
        check_count(key, value)
    opts = text_options(options, state)
    texts, labels = corpus(num_train + num_val + num_test, seed)
    part = Part([tokenize(t, opts.lower) for t in texts], labels)
    bounds = (0, num_train, num_train + num_val, len(texts))
    train, val, test = (part.take(range(a, b)) for a, b in zip(bounds, bounds[1:]))
    return text_bundle("sentiment_synthetic", BINARY, train, val, test, opts, seed, state)
