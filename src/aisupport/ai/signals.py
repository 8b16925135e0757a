"""What a customer's message says besides its question, read offline (decision 0055):

- its language (py3langid, whose model ships in the package), with a probability;
- whether it asks for a person, in any words or language: its meaning (the bundled e5 sentence encoder)
  close to phrasings of that request, and closer to them than to ordinary support questions;
- whether it touches one of the organization's sensitive topics: every word of the topic in the message,
  or the message close in meaning to the topic;
- its sentiment: the nearest of a few phrasings of each kind, turned into probabilities;
- its urgency (the priority): explicit cues ("urgent", "fraud", "charged twice", "no rush"...).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from aisupport.ai.compose import words
from aisupport.ai.intents import Encoder

ASKS_FOR_PERSON = (
    "I want to talk to a human",
    "can I speak to a real person please",
    "connect me with an agent",
    "let me talk to someone from your team",
    "transfer me to a customer service representative",
    "this bot is useless, get me a person",
    "I need a human being, not a machine",
    "is there a live agent available?",
    "operator please",
    "quiero hablar con una persona",
    "falar com um atendente humano",
    "je veux parler à un conseiller",
    "ich möchte mit einem Mitarbeiter sprechen",
)
ORDINARY = (
    "How do I do this?",
    "I have a problem with my account",
    "Can you help me change a setting?",
    "Why did this happen?",
    "How do I contact someone?",
    "Where do I find this?",
    "please do this for me",
    "How do I talk to my friends?",
    "send a message to someone",
)
# Measured on hand-written phrasings and CLINC150's development messages (decision 0055).
PERSON_SIMILARITY = 0.88
PERSON_MARGIN = 0.01
TOPIC_SIMILARITY = 0.86

SENTIMENTS = {
    "negative": (
        "this is terrible, I am very angry",
        "I'm frustrated, nothing works and nobody helps",
        "worst service ever, I want my money back",
        "I am disappointed and upset",
    ),
    "neutral": (
        "how do I change my address?",
        "I have a question about my account",
        "where can I find my invoice?",
        "please update my details",
    ),
    "positive": (
        "thank you so much, great service!",
        "I love this app, it works perfectly",
        "thanks, that solved it, you are awesome",
        "I'm happy with the help I got",
    ),
}
# Priority cues, strongest first. A sentence encoder reads a message's topic far more than its urgency
# (measured: "When will my card be delivered?" came out nearest to "fraud on my card right now"), so the
# offline priority reads explicit cues, and without one says `normal` with a confidence below the
# default threshold: a suggestion, never an applied guess (decision 0057).
PRIORITY_CUES = (
    (
        "urgent",
        0.9,
        re.compile(
            r"\b(urgent(ly)?|emergency|asap|immediately|right now|fraud(ulent)?|stolen|hacked|compromised|"
            r"unauthori[sz]ed|locked out|someone (used|took|stole)|urgente|dringend|urgence)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "high",
        0.8,
        re.compile(
            r"\b(charged twice|double charged|can'?t (log|sign) ?in|cannot (log|sign) ?in|not working|"
            r"doesn'?t work|failed|declined|wrong amount|still (waiting|not)|never (arrived|received)|"
            r"broken|crash(es|ed|ing)?|error)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "low",
        0.75,
        re.compile(
            r"\b(suggestion|feedback|feature request|just (wondering|curious)|no rush|whenever you can|typo|"
            r"would be nice)\b",
            re.IGNORECASE,
        ),
    ),
)
NO_CUE = 0.55  # `normal` without a cue: below every default threshold
TEMPERATURE = 0.02  # cosines of this encoder sit close together: differences of 0.02 are meaningful


@dataclass(frozen=True)
class Reading:
    value: str
    confidence: float

    def shown(self) -> dict[str, Any]:
        return {"value": self.value, "confidence": round(self.confidence, 4)}


_lock = threading.Lock()


@cache
def _language_identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    with _lock:
        return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def language(text: str) -> Reading:
    code, probability = _language_identifier().classify(text)
    return Reading(str(code), float(probability))


@cache
def _prototypes(encode: Encoder, phrasings: tuple[str, ...]) -> np.ndarray:
    return encode(list(phrasings))


def asks_for_person(vector: np.ndarray, encode: Encoder) -> bool:
    person = float((_prototypes(encode, ASKS_FOR_PERSON) @ vector).max())
    ordinary = float((_prototypes(encode, ORDINARY) @ vector).max())
    return person >= PERSON_SIMILARITY and person - ordinary >= PERSON_MARGIN


def sensitive_topic(text: str, vector: np.ndarray, topics: list[str], encode: Encoder) -> str | None:
    """The first of `topics` the message touches, if any."""
    if not topics:
        return None
    said = words(text)
    for topic in topics:
        needed = words(topic)
        if needed and needed <= said:
            return topic
    similarities = _prototypes(encode, tuple(topics)) @ vector
    best = int(np.argmax(similarities))
    return topics[best] if float(similarities[best]) >= TOPIC_SIMILARITY else None


def _nearest_kind(vector: np.ndarray, kinds: Mapping[str, tuple[str, ...]], encode: Encoder) -> Reading:
    names = list(kinds)
    closest = np.array([float((_prototypes(encode, kinds[name]) @ vector).max()) for name in names])
    weights = np.exp((closest - closest.max()) / TEMPERATURE)
    probabilities = weights / weights.sum()
    best = int(np.argmax(probabilities))
    return Reading(names[best], float(probabilities[best]))


def sentiment(vector: np.ndarray, encode: Encoder) -> Reading:
    return _nearest_kind(vector, SENTIMENTS, encode)


def urgency(text: str) -> Reading:
    for priority, confidence, cue in PRIORITY_CUES:
        if cue.search(text):
            return Reading(priority, confidence)
    return Reading("normal", NO_CUE)
