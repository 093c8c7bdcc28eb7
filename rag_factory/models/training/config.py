"""``FineTuneConfig``: every setting of a fine-tuning run; its defaults are the default recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rag_factory.errors import RagFactoryError
from rag_factory.models.embedding.hub import DEFAULT_BASE_MODEL
from rag_factory.models.embedding.names import check_name
from rag_factory.models.training.precision import Precision

DataFormat = Literal["auto", "beir", "llamaindex", "query_log"]
ContrastiveDirection = Literal["query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"]
HardnessMode = Literal["in_batch_negatives", "hard_negatives", "all_negatives"]

# Upper bounds: beyond them a value is a typo or an attack (a job that never ends, a batch that
# exhausts memory), never a plan. Jobs are started over the network with these options.
MAX_EPOCHS: Final = 1000
MAX_LEARNING_RATE: Final = 1.0
MAX_BATCH_SIZE: Final = 4096
MAX_SEQ_LENGTH: Final = 8192
MAX_COUNT: Final = 10_000_000  # corpus sizes, steps, pseudo-queries
PeakLearningRate = Annotated[float, Field(gt=0, le=MAX_LEARNING_RATE)]
EpochCount = Annotated[int, Field(gt=0, le=MAX_EPOCHS)]
BatchSize = Annotated[int, Field(gt=1, le=MAX_BATCH_SIZE)]


class SearchSpace(BaseModel):
    """Hyperparameter values tried by the search; every combination (grid) or a seeded sample of them."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    learning_rate: list[PeakLearningRate] = Field(
        default=[5e-5, 1e-4, 2e-4], min_length=1, max_length=64, description="Peak learning rates to try."
    )
    epochs: list[EpochCount] = Field(default=[2, 4], min_length=1, max_length=64, description="Epoch counts to try.")
    batch_size: list[BatchSize] = Field(default=[32], min_length=1, max_length=64, description="Batch sizes to try.")
    max_trials: int = Field(
        default=4, gt=0, le=1000, description="Trials run; a seeded random subset if the grid is larger."
    )
    trial_epochs_cap: int | None = Field(
        default=None,
        gt=0,
        le=MAX_EPOCHS,
        description="Cap on epochs per trial, to keep the search short (None: no cap).",
    )


class FineTuneConfig(BaseModel):
    """A fine-tuning run. The defaults are the DEFAULT RECIPE (chosen on a validation split of SciFact train).

    The recipe: MultipleNegativesRankingLoss over (query, positive, one hard negative mined with the
    base model) plus in-batch negatives, batch 32 without duplicate texts per batch, peak learning
    rate 1e-4 with 10 % warm-up, no dropout, documents truncated to 128 tokens for training (inference
    keeps the base's 256), up to 9 epochs with a validation nDCG@10 check every epoch and early
    stopping after 3 epochs without gain. The result is the mean of the checkpoints on the validation
    plateau (within 4 % of the best), kept only if it validates at least as well as the best epoch.
    20 % of the training queries are held out for validation.

    Every choice was made on validation queries carved from SciFact train, never on test; the
    comparisons are in ``docs/benchmarks.md`` (``benchmarks/recipe_validation.py``). Averaging the
    plateau beat the best single epoch by 0.013 nDCG@10 when half of the validation queries chose and
    the other half judged. Holding out only 10 % gave a noisier choice and longer runs, so 20 % stays.
    """

    # No NaN or infinity anywhere: a learning rate of inf used to be accepted and ruin the run.
    model_config = ConfigDict(protected_namespaces=(), frozen=True, allow_inf_nan=False)

    data: Path = Field(description="BEIR directory, LlamaIndex JSON file, or query-log JSONL file.")
    data_format: DataFormat = Field(default="auto", description="Format of `data`; 'auto' infers it from the path.")
    corpus: Path | None = Field(default=None, description="Corpus JSONL (BEIR form) for query logs.")
    train_split: str = Field(
        default="train",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="BEIR qrels split used for training and validation.",
    )
    test_split: str | None = Field(
        default="test",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="BEIR split evaluated once after training (never used for choices); None skips.",
    )
    base_model: str = Field(
        default=DEFAULT_BASE_MODEL,
        description="Registry reference (id, name@version, name@alias) with a registry, else a path or hub id.",
    )
    registry_path: Path | None = Field(default=None, description="Model registry to resolve the base and register in.")
    model_name: str | None = Field(
        default=None, description="Registered name of the result; defaults to the base's model name."
    )
    strategy: str = Field(default="hard_negative", description="Training strategy name (see strategies.STRATEGIES).")
    epochs: int = Field(default=9, gt=0, le=MAX_EPOCHS, description="Maximum epochs (early stopping may end sooner).")
    learning_rate: float = Field(
        default=1e-4, gt=0, le=MAX_LEARNING_RATE, description="Peak learning rate (AdamW, linear decay)."
    )
    batch_size: int = Field(
        default=32, gt=1, le=MAX_BATCH_SIZE, description="Rows per step; in-batch negatives grow with it."
    )
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1, description="Share of steps with linear warm-up.")
    weight_decay: float = Field(default=0.01, ge=0, le=1, description="AdamW weight decay.")
    train_max_seq_length: int = Field(
        default=128,
        gt=0,
        le=MAX_SEQ_LENGTH,
        description="Token limit while training (shorter is faster; inference keeps its own).",
    )
    max_seq_length: int | None = Field(
        default=None, gt=0, le=MAX_SEQ_LENGTH, description="Token limit of the saved model; None keeps the base's."
    )
    attention_dropout: float | None = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Dropout on attention probabilities while training; None keeps the base's. At 0 PyTorch "
        "runs its fused attention kernel (about 1.4x faster steps on CPU).",
    )
    hidden_dropout: float | None = Field(
        default=0.0, ge=0, lt=1, description="Every other dropout while training; None keeps the base's."
    )
    seed: int = Field(
        default=0, ge=0, lt=2**32, description="Seed of the split, sampling, initialisation and data order."
    )
    validation_fraction: float = Field(
        default=0.2, ge=0, lt=1, description="Share of training queries held out for validation."
    )
    validation_corpus_size: int = Field(
        default=1000,
        gt=0,
        le=MAX_COUNT,
        description="Documents searched by the validation evaluator: positives, the base's top hits, random fill.",
    )
    eval_steps: int | None = Field(
        default=None, gt=0, le=MAX_COUNT, description="Evaluate every N steps; None evaluates once per epoch."
    )
    early_stopping_patience: int = Field(
        default=3,
        ge=0,
        le=MAX_EPOCHS,
        description="Evaluations without improvement before stopping; 0 disables early stopping.",
    )
    average_checkpoints: bool = Field(
        default=True,
        description="Average the weights of every checkpoint on the validation plateau (see averaging_tolerance); "
        "the mean is kept only when it validates at least as well as the best checkpoint alone.",
    )
    averaging_tolerance: float = Field(
        default=0.04,
        ge=0,
        lt=1,
        description="The plateau: checkpoints whose validation nDCG@10 is within this fraction of the best.",
    )
    contrastive_directions: list[ContrastiveDirection] = Field(
        default=["query_to_doc"],
        min_length=1,
        description="Similarity terms of the in-batch losses (one joint softmax); adding query_to_query, "
        "doc_to_query and doc_to_doc gives GTE's improved contrastive loss at no extra encoding cost.",
    )
    hardness_mode: HardnessMode | None = Field(
        default=None, description="Which negatives get hardness weighting in the in-batch losses; None: off."
    )
    hardness_strength: float = Field(
        default=0.0, ge=0, le=100, description="Weight of the hardness term (alpha); ignored without hardness_mode."
    )
    num_negatives: int = Field(default=1, gt=0, le=64, description="Mined negatives per query for n-tuple strategies.")
    mining_top_k: int = Field(default=30, gt=0, le=10_000, description="Candidates the miner examines per query.")
    mining_margin: float = Field(
        default=0.95, gt=0, le=1, description="Skip candidates scoring above margin x the positive's score."
    )
    title_pseudo_queries: int = Field(
        default=0,
        ge=0,
        le=MAX_COUNT,
        description="Add up to N (title -> abstract) pairs from corpus documents that are not validation or "
        "test positives; 0 disables.",
    )
    teacher_model: str | None = Field(
        default=None, description="Distillation teacher (path, hub id or registry ref); None uses the base."
    )
    student_layers: int = Field(default=3, gt=0, le=128, description="Transformer layers of a distillation student.")
    output_dir: Path | None = Field(
        default=None, description="Receives the sentence-transformers directory; None uses a directory under work_dir."
    )
    work_dir: Path = Field(default=Path(".rag_factory_training"), description="Checkpoints and caches.")
    embedding_cache_dir: Path | None = Field(
        default=None,
        description="An evaluation embedding cache (evaluate's cache_dir) that receives the corpus vectors the "
        "run computed for the base and the registered result (BEIR data with a test split, fp32) when the result "
        "is published (rag_factory.jobs.publishing), so a later evaluation of either on the model's own backend "
        "skips embedding the corpus; None stores nothing.",
    )
    device: Literal["cpu", "cuda"] = Field(default="cpu", description="Training device.")
    precision: Precision = Field(
        default="auto",
        description="Arithmetic of training and of the run's own encoding: fp32, or bf16 autocast (weights stay "
        "fp32). 'auto' is bf16 on GPUs that support it and fp32 on CPUs (see training/precision.py).",
    )
    export_onnx: bool = Field(default=True, description="Also write onnx/model.onnx and onnx/model_int8.onnx.")
    register_result: bool = Field(
        default=True, description="Register the result when a registry is given (and the result is published)."
    )
    tags: list[str] = Field(default_factory=list, description="Extra tags of the registered version.")
    search: SearchSpace | None = Field(
        default=None, description="Hyperparameter search on validation before the final run; None disables."
    )
    show_progress: bool = Field(default=False, description="tqdm bars for mining, training and evaluation.")

    @field_validator("model_name")
    @classmethod
    def _name_can_be_registered(cls, name: str | None) -> str | None:
        # Checked before training, not when registering the result minutes later ("default" is reserved).
        if name is not None:
            try:
                check_name("model_name", name)
            except RagFactoryError as exc:
                raise ValueError(exc.message) from None
        return name

    @field_validator("contrastive_directions")
    @classmethod
    def _directions_score_the_pair(cls, directions: list[str]) -> list[str]:
        # query_to_doc is the term that holds each query's own positive; without it nothing is learned.
        if "query_to_doc" not in directions:
            raise ValueError("contrastive_directions must include 'query_to_doc'")
        if len(set(directions)) != len(directions):
            raise ValueError("contrastive_directions lists a direction twice")
        return directions


DEFAULT_RECIPE = FineTuneConfig(data=Path("."))
"""The default recipe (``data`` is a placeholder); ``FineTuneConfig(data=...)`` gets the same values."""
